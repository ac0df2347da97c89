//! OpenRLHF's remote reward protocol (`--remote_rm_url http://HOST:PORT/get_reward`).
//!
//! Its trainer (`openrlhf/utils/agent.py`, `SingleTurnAgentExecutor._fetch_rewards_via_http`)
//! posts `{"query": [...], "prompts": [...], "labels": [...]}`: `query` is the decoded prompt +
//! response tokens (special tokens kept), `prompts` the prompt text as the dataset gave it (after
//! the chat template when `--apply_chat_template` is on), `labels` the dataset's `--label_key`
//! column. It reads `rewards` (advantages), `scores` (dynamic filtering; falls back to
//! `rewards`) and `extra_logs` (logged per sample) from the answer, each a list aligned with
//! `query`, as its own `openrlhf.cli.serve_rm` returns them.
//!
//! Mapping to samples:
//! - the completion is `query` with its `prompts` prefix removed and trailing end-of-turn
//!   markers (`<|im_end|>`, `<|eot_id|>`, `</s>`, `<|endoftext|>`, `<end_of_turn>`, `<eos>`)
//!   stripped; a query that does not begin with its prompt is an error, never a guess;
//! - the prompt is one user message holding the prompt text;
//! - the label is the response type: a name (`hard_refuse`, `comply`, …) or an object (or JSON
//!   object text) `{"response_type": …, "base_reward": …}`.

use arbiter_core::{FieldError, Message, ResponseType, Role, Sample, SampleId};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::model::{BASE_REWARD_FIELD, Reward};

/// The body OpenRLHF's trainer sends. Fields it may add later are ignored, so a newer trainer
/// still gets its rewards.
#[derive(Debug, Deserialize)]
pub struct GetRewardRequest {
    /// Prompt + response, decoded.
    pub query: Vec<String>,
    /// The prompt each query begins with.
    pub prompts: Vec<String>,
    /// The dataset's label per query: the response type.
    #[serde(default)]
    pub labels: Option<Vec<Value>>,
}

/// End-of-turn markers a decoded query may end with (`skip_special_tokens=False`).
const END_MARKERS: [&str; 6] = [
    "<|im_end|>",
    "<|eot_id|>",
    "</s>",
    "<|endoftext|>",
    "<end_of_turn>",
    "<eos>",
];

/// One query as a sample, or the field at fault (`query[3]`, `labels[3]`). `default_type` is
/// used for queries without a label (the trainer sends `null` when the dataset has no label
/// column); without it such a query is an error.
pub fn to_samples(
    request: GetRewardRequest,
    default_type: Option<ResponseType>,
) -> Result<Vec<Sample>, (usize, FieldError)> {
    let n = request.query.len();
    if request.prompts.len() != n {
        return Err((
            0,
            FieldError::new(
                "prompts",
                format!(
                    "has {} entries for {n} queries; each query needs its prompt",
                    request.prompts.len()
                ),
            ),
        ));
    }
    let labels = request.labels.unwrap_or_else(|| vec![Value::Null; n]);
    if labels.len() != n {
        return Err((
            0,
            FieldError::new(
                "labels",
                format!(
                    "has {} entries for {n} queries; each query's label is its response type",
                    labels.len()
                ),
            ),
        ));
    }
    request
        .query
        .into_iter()
        .zip(request.prompts)
        .zip(labels)
        .enumerate()
        .map(|(i, ((query, prompt), label))| {
            sample(i, query, prompt, label, default_type).map_err(|e| (i, e))
        })
        .collect()
}

fn sample(
    index: usize,
    query: String,
    prompt: String,
    label: Value,
    default_type: Option<ResponseType>,
) -> Result<Sample, FieldError> {
    let Some(rest) = query.strip_prefix(prompt.as_str()) else {
        return Err(FieldError::new(
            format!("query[{index}]"),
            "does not begin with its prompt (prompts[i]); the completion is the query after the prompt",
        ));
    };
    let mut completion = rest;
    loop {
        let trimmed = completion.trim_end();
        match END_MARKERS.iter().find_map(|m| trimmed.strip_suffix(m)) {
            Some(shorter) => completion = shorter,
            None => {
                completion = trimmed;
                break;
            }
        }
    }
    let (response_type, base_reward) = match (label, default_type) {
        (Value::Null, Some(rt)) => (rt, None),
        (label, _) => label_fields(index, label)?,
    };
    let mut metadata = Map::new();
    if let Some(b) = base_reward {
        metadata.insert(BASE_REWARD_FIELD.into(), b);
    }
    if prompt.trim().is_empty() {
        return Err(FieldError::new(
            format!("prompts[{index}]"),
            "is empty; the grader reads the prompt",
        ));
    }
    Ok(Sample {
        id: SampleId::Index(index as u64),
        prompt: vec![Message::new(Role::User, prompt)],
        completion: vec![Message::new(Role::Assistant, completion)],
        response_type: Some(response_type),
        category: None,
        propositions: Default::default(),
        metadata,
    })
}

/// The response type (and base reward) a label carries.
fn label_fields(index: usize, label: Value) -> Result<(ResponseType, Option<Value>), FieldError> {
    let field = format!("labels[{index}]");
    let object = match label {
        Value::String(s) => {
            if let Some(rt) = ResponseType::parse(s.trim()) {
                return Ok((rt, None));
            }
            match serde_json::from_str::<Value>(&s) {
                Ok(Value::Object(o)) => o,
                _ => return Err(unknown_type(&field, &s)),
            }
        }
        Value::Object(o) => o,
        Value::Null => {
            return Err(FieldError::new(
                field,
                "is missing; the label is the response type (hard_refuse, safe_refuse_1, safe_refuse_2, comply), or start the server with --default-response-type",
            ));
        }
        other => return Err(unknown_type(&field, &other.to_string())),
    };
    let rt = match object.get("response_type") {
        Some(Value::String(s)) => ResponseType::parse(s)
            .ok_or_else(|| unknown_type(&format!("{field}.response_type"), s))?,
        _ => {
            return Err(FieldError::new(
                format!("{field}.response_type"),
                "is missing or not a string",
            ));
        }
    };
    Ok((rt, object.get(BASE_REWARD_FIELD).cloned()))
}

fn unknown_type(field: &str, found: &str) -> FieldError {
    FieldError::new(
        field,
        format!(
            "unknown response type {found:?}; expected hard_refuse, safe_refuse_1, safe_refuse_2, comply, or an object with `response_type`"
        ),
    )
}

/// The answer OpenRLHF's trainer reads: `rewards`, `scores` (the same values, as its own
/// reward server sends) and per-sample `extra_logs` of the RBR term and the base reward.
pub fn response(rewards: &[Reward]) -> Value {
    let column = |f: fn(&Reward) -> f64| Value::from(rewards.iter().map(f).collect::<Vec<f64>>());
    serde_json::json!({
        "rewards": column(|r| r.reward),
        "scores": column(|r| r.reward),
        "extra_logs": {
            "rbr_reward": column(|r| r.rbr_reward),
            "base_reward": column(|r| r.base_reward),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: Value) -> GetRewardRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_completion_is_the_query_after_its_prompt_without_end_markers() {
        let s = to_samples(
            request(json!({
                "query": ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nNo.<|im_end|>\n"],
                "prompts": ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"],
                "labels": ["hard_refuse"],
            })),
            None,
        )
        .unwrap();
        assert_eq!(s[0].completion_text(), "No.");
        assert_eq!(s[0].response_type, Some(ResponseType::HardRefuse));
        assert_eq!(s[0].id, SampleId::Index(0));
    }

    #[test]
    fn labels_may_be_objects_or_json_text_with_a_base_reward() {
        let s = to_samples(
            request(json!({
                "query": ["q a", "q b"],
                "prompts": ["q", "q"],
                "labels": [{"response_type": "comply", "base_reward": 0.5},
                           "{\"response_type\": \"safe_refuse_1\"}"],
            })),
            None,
        )
        .unwrap();
        assert_eq!(s[0].response_type, Some(ResponseType::Comply));
        assert_eq!(s[0].metadata[BASE_REWARD_FIELD], json!(0.5));
        assert_eq!(s[1].response_type, Some(ResponseType::SafeRefuse1));
        assert!(!s[1].metadata.contains_key(BASE_REWARD_FIELD));
    }

    #[test]
    fn errors_name_the_index_and_field() {
        let err = |v| to_samples(request(v), None).unwrap_err();
        let (i, e) = err(
            json!({"query": ["a b", "x y"], "prompts": ["a", "z"], "labels": ["comply", "comply"]}),
        );
        assert_eq!((i, e.field.as_str()), (1, "query[1]"));
        let (i, e) = err(json!({"query": ["a b"], "prompts": ["a"], "labels": ["sometimes"]}));
        assert_eq!((i, e.field.as_str()), (0, "labels[0]"));
        assert!(e.message.contains("unknown response type"));
        let (_, e) = err(json!({"query": ["a b"], "prompts": ["a"]}));
        assert_eq!(e.field, "labels[0]");
        let unlabelled = request(json!({"query": ["a b"], "prompts": ["a"], "labels": [null]}));
        let s = to_samples(unlabelled, Some(ResponseType::Comply)).unwrap();
        assert_eq!(s[0].response_type, Some(ResponseType::Comply));
        let (_, e) = err(json!({"query": ["a b"], "prompts": ["a"], "labels": []}));
        assert_eq!(e.field, "labels");
        let (_, e) = err(json!({"query": ["a b"], "prompts": [], "labels": []}));
        assert_eq!(e.field, "prompts");
    }
}

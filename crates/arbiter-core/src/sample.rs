//! Conversations and the samples built on them.
//!
//! Samples are parsed from `serde_json::Value` by hand rather than derived, so every problem names
//! the exact field (`prompt[2].role`) instead of serde's column offsets.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::FieldError;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// The person talking to the model.
    User,
    /// The model.
    Assistant,
    /// Output of a tool the model called.
    Tool,
}

impl Role {
    /// Parse a role name (case-insensitive; `developer` is read as `system`).
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "system" | "developer" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }

    /// The lower-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Text of the turn (may be empty: empty completions are real data).
    pub content: String,
}

impl Message {
    /// Convenience constructor.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// What the policy says the ideal response to a prompt looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    /// Refuse briefly: apology plus a statement of inability, nothing more.
    HardRefuse,
    /// Self-harm safe completion: support and resources without refusing outright.
    #[serde(rename = "safe_refuse_1", alias = "safe_refuse1")]
    SafeRefuse1,
    /// Self-harm safe completion that must also decline the request (methods asked for).
    #[serde(rename = "safe_refuse_2", alias = "safe_refuse2")]
    SafeRefuse2,
    /// Answer the request.
    Comply,
}

impl ResponseType {
    /// All response types, in a fixed order.
    pub const ALL: [ResponseType; 4] = [
        ResponseType::HardRefuse,
        ResponseType::SafeRefuse1,
        ResponseType::SafeRefuse2,
        ResponseType::Comply,
    ];

    /// Parse either the rule key (`hard_refuse`) or the gold data's label (`Hard Refuse`).
    pub fn parse(s: &str) -> Option<ResponseType> {
        let key: String = s
            .trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        match key.as_str() {
            "hard_refuse" | "hard_refusal" => Some(ResponseType::HardRefuse),
            "safe_refuse_1" | "safe_refuse1" => Some(ResponseType::SafeRefuse1),
            "safe_refuse_2" | "safe_refuse2" => Some(ResponseType::SafeRefuse2),
            "comply" => Some(ResponseType::Comply),
            _ => None,
        }
    }

    /// The rule key used in policy files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::HardRefuse => "hard_refuse",
            ResponseType::SafeRefuse1 => "safe_refuse_1",
            ResponseType::SafeRefuse2 => "safe_refuse_2",
            ResponseType::Comply => "comply",
        }
    }
}

impl fmt::Display for ResponseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sample's identifier: whatever the input used, a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SampleId {
    /// Numeric id (also the default: the 0-based line index).
    Index(u64),
    /// Free-form id.
    Name(String),
}

impl SampleId {
    /// Read an id from JSON: a non-negative integer or a string.
    pub fn from_value(v: &Value) -> Result<SampleId, FieldError> {
        match v {
            Value::String(s) => Ok(SampleId::Name(s.clone())),
            Value::Number(n) => n
                .as_u64()
                .map(SampleId::Index)
                .ok_or_else(|| FieldError::new("", "must be a string or a non-negative integer")),
            _ => Err(FieldError::new(
                "",
                "must be a string or a non-negative integer",
            )),
        }
    }
}

impl fmt::Display for SampleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleId::Index(i) => write!(f, "{i}"),
            SampleId::Name(s) => f.write_str(s),
        }
    }
}

/// A conversation and the assistant reply being judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Identifier; defaults to the 0-based line index of the input file.
    pub id: SampleId,
    /// The conversation so far, ending with a user turn.
    pub prompt: Vec<Message>,
    /// The assistant's reply as a one-message list.
    pub completion: Vec<Message>,
    /// How the policy wants this prompt answered, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<ResponseType>,
    /// Content area (e.g. `SH-R2`), used for per-category metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Human yes/no labels per proposition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub propositions: BTreeMap<String, bool>,
    /// Anything else the input carried, kept as is.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl Sample {
    /// The completion's text (the single assistant message).
    pub fn completion_text(&self) -> &str {
        self.completion
            .first()
            .map(|m| m.content.as_str())
            .unwrap_or("")
    }

    /// The key that identifies a prompt across files: each message as `|ROLE|: content`, joined
    /// by newlines (the upstream RBR release's join key).
    pub fn prompt_key(&self) -> String {
        self.prompt
            .iter()
            .map(|m| format!("|{}|: {}", m.role.as_str().to_ascii_uppercase(), m.content))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Parse and validate one sample. `line_index` (0-based) becomes the id when none is given.
    ///
    /// Unknown top-level fields other than `metadata` are kept inside `metadata`, so nothing
    /// the user wrote is lost on a round trip.
    pub fn from_value(value: Value, line_index: usize) -> Result<Sample, FieldError> {
        let Value::Object(mut obj) = value else {
            return Err(FieldError::new("", "each line must be a JSON object"));
        };
        let id = match obj.remove("id") {
            None | Some(Value::Null) => SampleId::Index(line_index as u64),
            Some(v) => SampleId::from_value(&v).map_err(|e| e.within("id"))?,
        };
        let prompt = match obj.remove("prompt") {
            Some(v) => parse_messages(&v).map_err(|e| e.within("prompt"))?,
            None => return Err(FieldError::new("prompt", "is missing")),
        };
        match prompt.last() {
            None => return Err(FieldError::new("prompt", "must hold at least one message")),
            Some(m) if m.role != Role::User => {
                return Err(FieldError::new(
                    format!("prompt[{}].role", prompt.len() - 1),
                    format!(
                        "the prompt must end with a user turn, found {}",
                        m.role.as_str()
                    ),
                ));
            }
            Some(_) => {}
        }
        let completion = match obj.remove("completion") {
            Some(Value::String(s)) => vec![Message::new(Role::Assistant, s)],
            Some(v) => parse_messages(&v).map_err(|e| e.within("completion"))?,
            None => return Err(FieldError::new("completion", "is missing")),
        };
        if completion.len() != 1 {
            return Err(FieldError::new(
                "completion",
                format!(
                    "must hold exactly one assistant message, found {}",
                    completion.len()
                ),
            ));
        }
        if completion[0].role != Role::Assistant {
            return Err(FieldError::new(
                "completion[0].role",
                format!("must be assistant, found {}", completion[0].role.as_str()),
            ));
        }
        let response_type = match obj.remove("response_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(ResponseType::parse(&s).ok_or_else(|| {
                FieldError::new(
                    "response_type",
                    format!(
                        "unknown response type {s:?}; expected one of hard_refuse, safe_refuse_1, safe_refuse_2, comply (or the gold labels \"Hard Refuse\", \"Safe Refuse 1\", \"Safe Refuse 2\", \"Comply\")"
                    ),
                )
            })?),
            Some(_) => return Err(FieldError::new("response_type", "must be a string")),
        };
        let category = match obj.remove("category") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(FieldError::new("category", "must be a string")),
        };
        let propositions = match obj.remove("propositions") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => {
                let mut labels = BTreeMap::new();
                for (name, v) in map {
                    match v {
                        Value::Bool(b) => {
                            labels.insert(name, b);
                        }
                        _ => {
                            return Err(FieldError::new(
                                format!("propositions.{name}"),
                                "human labels must be true or false",
                            ));
                        }
                    }
                }
                labels
            }
            Some(_) => {
                return Err(FieldError::new(
                    "propositions",
                    "must be an object of name → true/false",
                ));
            }
        };
        let mut metadata = match obj.remove("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(FieldError::new("metadata", "must be an object")),
        };
        for (k, v) in obj {
            metadata.entry(k).or_insert(v);
        }
        Ok(Sample {
            id,
            prompt,
            completion,
            response_type,
            category,
            propositions,
            metadata,
        })
    }
}

fn parse_messages(v: &Value) -> Result<Vec<Message>, FieldError> {
    let Value::Array(items) = v else {
        return Err(FieldError::new(
            "",
            "must be a list of {role, content} messages",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_message(item).map_err(|e| e.within(&format!("[{i}]"))))
        .collect()
}

fn parse_message(v: &Value) -> Result<Message, FieldError> {
    let Value::Object(obj) = v else {
        return Err(FieldError::new(
            "",
            "must be an object with role and content",
        ));
    };
    let role = match obj.get("role") {
        Some(Value::String(s)) => Role::parse(s).ok_or_else(|| {
            FieldError::new(
                "role",
                format!("unknown role {s:?}; expected system, user, assistant or tool"),
            )
        })?,
        Some(_) => return Err(FieldError::new("role", "must be a string")),
        None => return Err(FieldError::new("role", "is missing")),
    };
    let content = match obj.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) => String::new(),
        Some(_) => return Err(FieldError::new("content", "must be a string")),
        None => return Err(FieldError::new("content", "is missing")),
    };
    Ok(Message { role, content })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "prompt": [{"role": "user", "content": "hi"}],
            "completion": [{"role": "assistant", "content": "hello"}],
        })
    }

    #[test]
    fn gold_labels_map_to_rule_keys() {
        for (label, key) in [
            ("Hard Refuse", "hard_refuse"),
            ("Safe Refuse 1", "safe_refuse_1"),
            ("Safe Refuse 2", "safe_refuse_2"),
            ("Comply", "comply"),
        ] {
            assert_eq!(ResponseType::parse(label).unwrap().as_str(), key);
            assert_eq!(ResponseType::parse(key).unwrap().as_str(), key);
        }
        assert_eq!(ResponseType::parse("refuse"), None);
    }

    #[test]
    fn id_defaults_to_line_index_and_extra_fields_land_in_metadata() {
        let mut v = minimal();
        v["source"] = json!("x");
        let s = Sample::from_value(v, 41).unwrap();
        assert_eq!(s.id, SampleId::Index(41));
        assert_eq!(s.metadata["source"], json!("x"));
        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(out["id"], json!(41));
    }

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([1, 2]), ""),
            (
                json!({"prompt": [{"role": "user", "content": "a"}]}),
                "completion",
            ),
            (
                json!({"prompt": [{"role": "robot", "content": "a"}], "completion": "x"}),
                "prompt[0].role",
            ),
            (
                json!({"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "completion": "x"}),
                "prompt[1].role",
            ),
            (
                json!({"prompt": [{"role": "user", "content": 3}], "completion": "x"}),
                "prompt[0].content",
            ),
            (
                json!({"prompt": [{"role": "user", "content": "a"}], "completion": "x", "response_type": "Refuse"}),
                "response_type",
            ),
            (
                json!({"prompt": [{"role": "user", "content": "a"}], "completion": "x", "propositions": {"apology": 0.5}}),
                "propositions.apology",
            ),
            (
                json!({"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "user", "content": "x"}]}),
                "completion[0].role",
            ),
        ];
        for (v, field) in cases {
            let err = Sample::from_value(v.clone(), 0).unwrap_err();
            assert_eq!(err.field, field, "{v} gave {err}");
        }
    }

    #[test]
    fn prompt_key_matches_upstream_join_format() {
        let s = Sample::from_value(minimal(), 0).unwrap();
        assert_eq!(s.prompt_key(), "|USER|: hi");
        assert_eq!(s.completion_text(), "hello");
    }
}

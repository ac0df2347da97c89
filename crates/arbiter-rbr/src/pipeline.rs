//! The RBR pipeline over one sample at a time: features (human labels or a grader's P(yes)) →
//! class → reward example and metric inputs, and over a set of prepared samples: scores, ranking
//! error and the grader-vs-human calibration rows. Pure: callers read samples and grades (from
//! files, a grader, a request) and hand them in, so the CLI and a reward service run the same
//! steps.

use arbiter_core::{FieldError, GradeRecord, ResponseType, Sample, SampleId};
use serde_json::Value;

use crate::classify::{Classification, FeatureValues, classify, metric_events};
use crate::metrics::{CalibrationRow, HumanEvents, MetricInput};
use crate::policy::Policy;
use crate::reward::{self, PairMode, RankingEval, RewardExample, RewardWeights};

/// A sample after classification, ready for every downstream use.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The sample's id.
    pub id: SampleId,
    /// Its category, for per-category metrics.
    pub category: Option<String>,
    /// The proposition values classified (human labels or a grader's P(yes)).
    pub features: FeatureValues,
    /// Class probabilities under the policy.
    pub classification: Classification,
    /// The reward model's input.
    pub example: RewardExample,
    /// Metric events under the sample's human labels, when the features come from a grader
    /// and the labels determine every event (else the sample counts as unlabelled).
    pub human: Option<HumanEvents>,
}

/// Why a set of prepared samples cannot be scored or ranked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    /// The weights were fitted without a group for this response type.
    #[error("id {id}: the weights have no group for {response_type}")]
    NoWeights {
        /// The sample.
        id: SampleId,
        /// Its response type.
        response_type: ResponseType,
    },
    /// Ranking error needs known classes.
    #[error(
        "no sample has a known class (human labels or a `class` field), so ranking cannot be evaluated"
    )]
    NoTargets,
    /// A sample's features do not determine a metric event.
    #[error("id {id}: {error}")]
    Field {
        /// The sample.
        id: SampleId,
        /// What is missing.
        error: FieldError,
    },
}

/// Classify one sample. `grades` are a grader's P(yes) for it (`None`: its own human labels);
/// `base_reward_field` names the metadata field holding a base reward to add (`None`: 0).
pub fn prepare(
    policy: &Policy,
    sample: &Sample,
    grades: Option<&GradeRecord>,
    base_reward_field: Option<&str>,
) -> Result<Prepared, FieldError> {
    let rt = sample.response_type.ok_or_else(|| {
        FieldError::new(
            "response_type",
            "is missing; rules are chosen by response type (hard_refuse, safe_refuse_1, safe_refuse_2, comply)",
        )
    })?;
    let human = FeatureValues::from_labels(policy, &sample.propositions)?;
    let features = match grades {
        None => {
            if sample.propositions.is_empty() {
                return Err(FieldError::new(
                    "propositions",
                    "has no human labels; pass --features grader (or a grades file) to use a grader's answers",
                ));
            }
            human.clone()
        }
        Some(g) => FeatureValues::from_probabilities(policy, &g.propositions)
            .map_err(|e| FieldError::new(e.field, format!("in the grades: {}", e.message)))?,
    };
    let classification = classify(policy, rt, &features)?;
    let target_class = target_class(policy, sample, &human, grades.is_none(), &classification)?;
    let human_events = if grades.is_some() && !sample.propositions.is_empty() {
        human_events(policy, rt, &human)
    } else {
        None
    };
    let base_reward = match base_reward_field {
        None => 0.0,
        Some(field) => sample
            .metadata
            .get(field)
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite())
            .ok_or_else(|| FieldError::new(field, "base reward is missing or not a number"))?,
    };
    let example = RewardExample {
        response_type: rt,
        prompt_key: sample.prompt_key(),
        target_class,
        base_reward,
        features: reward::feature_vector(policy, &classification, &features)?,
    };
    Ok(Prepared {
        id: sample.id.clone(),
        category: sample.category.clone(),
        features,
        classification,
        example,
        human: human_events,
    })
}

/// The metric events under human labels, through the same policy functions as the grader's;
/// `None` when the labels leave a needed proposition out.
fn human_events(policy: &Policy, rt: ResponseType, human: &FeatureValues) -> Option<HumanEvents> {
    let class = classify(policy, rt, human).ok()?.class;
    let events = metric_events(policy, human).ok()?;
    Some(HumanEvents {
        unsafe_content: events.unsafe_content > 0.5,
        refusal: events.refusal > 0.5,
        class,
    })
}

/// The true class: from complete human labels, else from a `class` field, else unknown.
fn target_class(
    policy: &Policy,
    sample: &Sample,
    human: &FeatureValues,
    features_are_human: bool,
    classification: &Classification,
) -> Result<Option<usize>, FieldError> {
    if features_are_human {
        return Ok(Some(classification.class));
    }
    if !sample.propositions.is_empty()
        && let Ok(c) = classify(policy, classification.response_type, human)
    {
        return Ok(Some(c.class));
    }
    match sample.metadata.get("class") {
        Some(Value::String(name)) => policy.class_index(name).map(Some).ok_or_else(|| {
            FieldError::new(
                "class",
                format!(
                    "unknown class {name:?}; the policy's classes are {:?}",
                    policy.classes()
                ),
            )
        }),
        _ => Ok(None),
    }
}

/// The safety metrics' inputs of each sample: P(unsafe), P(refusal), P(ideal class).
pub fn metric_inputs(
    policy: &Policy,
    rows: &[Prepared],
) -> Result<Vec<MetricInput>, PipelineError> {
    let ideal = policy.metrics().ideal_class;
    rows.iter()
        .map(|r| {
            let events =
                metric_events(policy, &r.features).map_err(|error| PipelineError::Field {
                    id: r.id.clone(),
                    error,
                })?;
            Ok(MetricInput {
                response_type: r.classification.response_type,
                category: r.category.clone(),
                p_unsafe: events.unsafe_content,
                p_refusal: events.refusal,
                p_ideal: r.classification.class_probs[ideal],
            })
        })
        .collect()
}

/// The rows that measure a grader against human labels: every row of `rows` and `extra` (the
/// calibration set), with its human events where it has them.
pub fn calibration_rows(
    policy: &Policy,
    rows: &[Prepared],
    extra: &[Prepared],
) -> Result<Vec<CalibrationRow>, PipelineError> {
    let inputs = metric_inputs(policy, rows)?;
    let extra_inputs = metric_inputs(policy, extra)?;
    Ok(rows
        .iter()
        .zip(inputs)
        .chain(extra.iter().zip(extra_inputs))
        .map(|(r, grader)| CalibrationRow {
            grader,
            grader_class: r.classification.class,
            human: r.human,
        })
        .collect())
}

/// The total reward of every row.
pub fn scores(
    policy: &Policy,
    model: &RewardWeights,
    rows: &[Prepared],
) -> Result<Vec<f64>, PipelineError> {
    rows.iter()
        .map(|r| {
            model
                .score(policy, &r.example)
                .ok_or_else(|| PipelineError::NoWeights {
                    id: r.id.clone(),
                    response_type: r.example.response_type,
                })
        })
        .collect()
}

/// Ranking error of the reward per response type over rows with a known class.
pub fn ranking(
    policy: &Policy,
    model: &RewardWeights,
    rows: &[Prepared],
    mode: PairMode,
) -> Result<Vec<RankingEval>, PipelineError> {
    let s = scores(policy, model, rows)?;
    let examples: Vec<RewardExample> = rows.iter().map(|r| r.example.clone()).collect();
    if examples.iter().all(|e| e.target_class.is_none()) {
        return Err(PipelineError::NoTargets);
    }
    Ok(reward::evaluate(policy, &examples, &s, mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample(rt: ResponseType, yes: &[&str], policy: &Policy) -> Sample {
        let v = serde_json::json!({
            "id": "s", "response_type": rt.to_string(), "category": "c",
            "prompt": [{"role": "user", "content": "q"}], "completion": "a",
        });
        let mut s = Sample::from_value(v, 0).unwrap();
        s.propositions = policy
            .propositions()
            .iter()
            .map(|p| (p.name.clone(), yes.contains(&p.name.as_str())))
            .collect::<BTreeMap<_, _>>();
        s
    }

    #[test]
    fn human_and_graded_features_prepare_alike_and_a_grader_row_keeps_human_events() {
        let policy = Policy::default_policy();
        let s = sample(
            ResponseType::HardRefuse,
            &["apology", "inability_to_comply"],
            &policy,
        );
        let human = prepare(&policy, &s, None, None).unwrap();
        assert_eq!(human.example.target_class, Some(human.classification.class));
        assert!(
            human.human.is_none(),
            "human features need no separate human events"
        );
        let grades = GradeRecord {
            id: s.id.clone(),
            propositions: s
                .propositions
                .iter()
                .map(|(k, v)| (k.clone(), if *v { 1.0 } else { 0.0 }))
                .collect(),
            flags: BTreeMap::new(),
        };
        let graded = prepare(&policy, &s, Some(&grades), None).unwrap();
        assert_eq!(graded.classification, human.classification);
        assert_eq!(graded.example.target_class, human.example.target_class);
        let events = graded.human.expect("labelled and graded");
        assert!(events.refusal && !events.unsafe_content);
        let inputs = metric_inputs(&policy, std::slice::from_ref(&graded)).unwrap();
        assert_eq!((inputs[0].p_refusal, inputs[0].p_unsafe), (1.0, 0.0));
        assert_eq!(calibration_rows(&policy, &[graded], &[]).unwrap().len(), 1);
    }

    #[test]
    fn missing_response_type_and_unknown_class_are_field_errors() {
        let policy = Policy::default_policy();
        let mut s = sample(ResponseType::Comply, &[], &policy);
        s.response_type = None;
        assert_eq!(
            prepare(&policy, &s, None, None).unwrap_err().field,
            "response_type"
        );
        let mut s = sample(ResponseType::Comply, &[], &policy);
        s.propositions.clear();
        s.metadata
            .insert("class".into(), serde_json::json!("splendid"));
        let grades = GradeRecord {
            id: s.id.clone(),
            propositions: policy
                .propositions()
                .iter()
                .map(|p| (p.name.clone(), 0.0))
                .collect(),
            flags: BTreeMap::new(),
        };
        assert_eq!(
            prepare(&policy, &s, Some(&grades), None).unwrap_err().field,
            "class"
        );
    }
}

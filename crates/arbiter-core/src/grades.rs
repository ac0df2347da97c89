//! A grader's answer for one sample: P(yes) per proposition, plus flags where the answer is
//! less than a clean read of the label tokens; `CellFailures` counts the cells a grader left
//! without a probability.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::FieldError;
use crate::proposition::PropositionSpec;
use crate::sample::SampleId;

/// Why a probability deserves less trust than usual, or is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradeFlag {
    /// The yes+no probability mass was below the grader's threshold.
    LowMass,
    /// Neither label token appeared among the returned alternatives.
    NoLabelToken,
    /// The probability came from parsing the generated text, not from logprobs.
    ParsedTextFallback,
    /// The grader failed; the proposition has no probability.
    Error,
}

impl GradeFlag {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GradeFlag::LowMass => "low_mass",
            GradeFlag::NoLabelToken => "no_label_token",
            GradeFlag::ParsedTextFallback => "parsed_text_fallback",
            GradeFlag::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<GradeFlag> {
        match s {
            "low_mass" => Some(GradeFlag::LowMass),
            "no_label_token" | "logprob_missing" => Some(GradeFlag::NoLabelToken),
            "parsed_text_fallback" => Some(GradeFlag::ParsedTextFallback),
            "error" => Some(GradeFlag::Error),
            _ => None,
        }
    }
}

/// One line of a grades file: `{"id": …, "propositions": {name: p_yes}, "flags": {name: flag}}`.
///
/// A proposition whose grading failed is absent from `propositions` and flagged `error`; it is
/// never filled with a neutral 0.5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeRecord {
    /// The sample this grades.
    pub id: SampleId,
    /// P(yes) per proposition, each in `[0, 1]`.
    pub propositions: BTreeMap<String, f64>,
    /// Flags per proposition, only where something was off.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, GradeFlag>,
}

impl GradeRecord {
    /// Parse and validate one grades line. The id is required: grades are joined to samples by it.
    pub fn from_value(value: Value) -> Result<GradeRecord, FieldError> {
        let Value::Object(obj) = value else {
            return Err(FieldError::new("", "each line must be a JSON object"));
        };
        let id = match obj.get("id") {
            Some(v) if !v.is_null() => SampleId::from_value(v).map_err(|e| e.within("id"))?,
            _ => {
                return Err(FieldError::new(
                    "id",
                    "is missing; grades are matched to samples by id",
                ));
            }
        };
        let mut propositions = BTreeMap::new();
        match obj.get("propositions") {
            Some(Value::Object(map)) => {
                for (name, v) in map {
                    let field = format!("propositions.{name}");
                    match v {
                        Value::Null => {}
                        Value::Number(n) => {
                            let p = n.as_f64().unwrap_or(f64::NAN);
                            if !(0.0..=1.0).contains(&p) {
                                return Err(FieldError::new(
                                    field,
                                    format!("probability {n} is outside [0, 1]"),
                                ));
                            }
                            propositions.insert(name.clone(), p);
                        }
                        Value::Bool(b) => {
                            propositions.insert(name.clone(), if *b { 1.0 } else { 0.0 });
                        }
                        _ => {
                            return Err(FieldError::new(
                                field,
                                "must be a probability in [0, 1] (or null when grading failed)",
                            ));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(FieldError::new(
                    "propositions",
                    "must be an object of name → probability",
                ));
            }
            None => return Err(FieldError::new("propositions", "is missing")),
        }
        let mut flags = BTreeMap::new();
        match obj.get("flags") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, v) in map {
                    let field = format!("flags.{name}");
                    let flag = v.as_str().and_then(GradeFlag::parse).ok_or_else(|| {
                        FieldError::new(
                            field,
                            "must be one of low_mass, no_label_token, parsed_text_fallback, error",
                        )
                    })?;
                    flags.insert(name.clone(), flag);
                }
            }
            Some(_) => return Err(FieldError::new("flags", "must be an object")),
        }
        Ok(GradeRecord {
            id,
            propositions,
            flags,
        })
    }
}

/// Cells a grader gave no probability for, out of those asked, by flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellFailures {
    /// Cells asked (samples × propositions).
    pub cells: usize,
    /// Cells without a probability.
    pub failed: usize,
    /// Failed cells by flag (`error`, `no_label_token`).
    pub by_flag: std::collections::BTreeMap<&'static str, usize>,
    /// Samples with at least one failed cell.
    pub samples: usize,
}

impl CellFailures {
    /// Counts one grades record asked for `propositions`.
    pub fn add(&mut self, record: &GradeRecord, propositions: &[PropositionSpec]) {
        let before = self.failed;
        for p in propositions {
            self.cells += 1;
            if !record.propositions.contains_key(&p.name) {
                self.failed += 1;
                let flag = record
                    .flags
                    .get(&p.name)
                    .map(|f| f.as_str())
                    .unwrap_or("missing");
                *self.by_flag.entry(flag).or_default() += 1;
            }
        }
        self.samples += usize::from(self.failed > before);
    }

    /// The command fails: more failed cells than `max_failed` allows.
    pub fn exceed(&self, max_failed: f64) -> bool {
        self.failed > 0 && self.failed as f64 > max_failed * self.cells as f64
    }

    /// "the grader X gave no probability for 40 of 69 cells (40 error) in 12 samples".
    pub fn describe(&self, grader: &str) -> String {
        let flags: Vec<String> = self
            .by_flag
            .iter()
            .map(|(f, n)| format!("{n} {f}"))
            .collect();
        format!(
            "the grader {grader} gave no probability for {} of {} cells ({}) in {} sample(s)",
            self.failed,
            self.cells,
            flags.join(", "),
            self.samples
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_validates_range() {
        let v = json!({"id": 3, "propositions": {"apology": 0.25, "judgement": null}, "flags": {"judgement": "error"}});
        let g = GradeRecord::from_value(v).unwrap();
        assert_eq!(g.propositions.len(), 1);
        assert_eq!(g.flags["judgement"], GradeFlag::Error);
        let back = serde_json::to_value(&g).unwrap();
        assert_eq!(back["propositions"]["apology"], json!(0.25));

        let err = GradeRecord::from_value(json!({"id": 1, "propositions": {"apology": 1.5}}))
            .unwrap_err();
        assert_eq!(err.field, "propositions.apology");
        let err = GradeRecord::from_value(json!({"propositions": {}})).unwrap_err();
        assert_eq!(err.field, "id");
    }
}

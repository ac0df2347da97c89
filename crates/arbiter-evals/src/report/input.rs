//! A run directory's files and calibration reports, given as text, parsed into checked values.
//! Every error names the file, the line where there is one, and the field.

use std::collections::BTreeMap;

use arbiter_core::{FieldError, RecordError};
use serde::Serialize;
use serde_json::{Map, Value};

use arbiter_graders::Validation;

use crate::corrected::{CALIBRATION_FILE, CalibrationRow, parse_calibration_rows};
use crate::dataset::Target;
use crate::runlog::{LogLine, Status, Usage};
use crate::suite::SuiteKind;

/// Why the report's input could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// A whole-document field is missing or has the wrong type: `file: field `x`: message`.
    #[error("{file}: {error}")]
    Field {
        /// The file.
        file: String,
        /// The field and what is wrong with it.
        error: FieldError,
    },
    /// A line is malformed: `file:line: field `x`: message`.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// The parts of `summary.json` the report uses (the runner writes more; extra fields are
/// ignored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Suite name.
    pub suite: String,
    /// Model description.
    pub model: String,
    /// Metric family, when the summary names it (`kind`).
    pub kind: Option<SuiteKind>,
    /// The summary's headline metrics, as written.
    pub metrics: Map<String, Value>,
    /// The summary's per-category metrics, as written.
    pub by_category: BTreeMap<String, Map<String, Value>>,
    /// Work items in the run.
    pub n_samples: usize,
    /// Counts as the summary states them (checked against the log).
    pub n_ok: Option<usize>,
    /// Failed items per the summary.
    pub n_errors: Option<usize>,
    /// Items not run yet per the summary.
    pub n_pending: Option<usize>,
    /// Unscorable items per the summary.
    pub n_unscored: Option<usize>,
    /// The grader that produced refusal / unsafe scores (`grader`).
    pub grader: Option<String>,
    /// The judge that produced rubric or letter grades (`judge`).
    pub judge: Option<String>,
    /// The grader's shipped leave-one-source-out figures (`grader_validation`).
    pub grader_validation: Option<Validation>,
}

/// What a log line says about its sample (`request.sample`, written by the runner).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRecord {
    /// Sample id (without the `@technique` suffix); the bootstrap resamples these.
    pub id: String,
    /// Category for breakdowns.
    pub category: String,
    /// The target.
    pub target: Target,
}

/// One parsed line of `samples.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedItem {
    /// 1-based line number.
    pub line_no: usize,
    /// The line.
    pub line: LogLine,
    /// Jailbreak technique (`request.technique`, else the key's `@` suffix, else `none`).
    pub technique: String,
    /// The sample, when the line records it.
    pub sample: Option<SampleRecord>,
}

/// One run directory's contents.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInput {
    /// The directory as given (for display and error messages).
    pub dir: String,
    /// `summary.json`.
    pub summary: RunSummary,
    /// `samples.jsonl`, every line in file order.
    pub items: Vec<LoggedItem>,
    /// Bytes of a torn final line (a run killed mid-write) that were ignored.
    pub torn_tail_bytes: usize,
    /// `calibration.jsonl`, when the run has one.
    pub calibration: Option<Vec<CalibrationRow>>,
}

impl RunInput {
    /// Parse a run directory's `summary.json` and `samples.jsonl` texts; `dir` prefixes the file
    /// names in errors.
    pub fn parse(
        dir: &str,
        summary_json: &str,
        samples_jsonl: &str,
    ) -> Result<RunInput, ReportError> {
        let summary = parse_summary(summary_json, &format!("{dir}/summary.json"))?;
        let (items, torn_tail_bytes) = parse_log(samples_jsonl, &format!("{dir}/samples.jsonl"))?;
        Ok(RunInput {
            dir: dir.to_string(),
            summary,
            items,
            torn_tail_bytes,
            calibration: None,
        })
    }

    /// Add the run's `calibration.jsonl` text.
    pub fn with_calibration(mut self, calibration_jsonl: &str) -> Result<RunInput, ReportError> {
        let file = format!("{}/{CALIBRATION_FILE}", self.dir);
        self.calibration = Some(parse_calibration_rows(calibration_jsonl, &file)?);
        Ok(self)
    }
}

fn json_error(file: &str, e: &serde_json::Error) -> ReportError {
    ReportError::Record(RecordError::new(
        file,
        e.line(),
        FieldError::new("", format!("malformed JSON at column {}: {e}", e.column())),
    ))
}

fn field(file: &str, name: &str, message: impl Into<String>) -> ReportError {
    ReportError::Field {
        file: file.to_string(),
        error: FieldError::new(name, message),
    }
}

fn count(v: &Value) -> Option<usize> {
    v.as_u64().and_then(|n| usize::try_from(n).ok())
}

/// A grader description: a string, or an object with a string `name`, `spec` or `model`.
fn describe(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Object(m) => ["name", "spec", "model"]
            .iter()
            .find_map(|k| m.get(*k).and_then(Value::as_str))
            .map(str::to_string),
        _ => None,
    }
}

/// Parse `summary.json`: `suite`, `model`, `metrics` and `n_samples` are required.
pub fn parse_summary(text: &str, file: &str) -> Result<RunSummary, ReportError> {
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    let Value::Object(obj) = value else {
        return Err(field(file, "", "expected a JSON object"));
    };
    let string = |name: &str| -> Result<String, ReportError> {
        match obj.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(field(file, name, "is empty")),
            Some(_) => Err(field(file, name, "expected a string")),
            None => Err(field(file, name, "missing")),
        }
    };
    let optional_count = |name: &str| -> Result<Option<usize>, ReportError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => count(v)
                .map(Some)
                .ok_or_else(|| field(file, name, "expected a non-negative integer")),
        }
    };
    // A shard's numbers describe part of the suite: the report takes whole runs only.
    if let Some(shard) = obj.get("shard").filter(|v| !v.is_null()) {
        let which = shard.get("shard").and_then(Value::as_str).unwrap_or("?");
        return Err(field(
            file,
            "shard",
            format!(
                "a partial run (shard {which}); merge all its shards with `arbiter eval merge` and report the merged directory"
            ),
        ));
    }
    let suite = string("suite")?;
    let model = string("model")?;
    let metrics = match obj.get("metrics") {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(field(file, "metrics", "expected an object")),
        None => return Err(field(file, "metrics", "missing")),
    };
    let n_samples = match obj.get("n_samples") {
        Some(v) => {
            count(v).ok_or_else(|| field(file, "n_samples", "expected a non-negative integer"))?
        }
        None => return Err(field(file, "n_samples", "missing")),
    };
    let mut by_category = BTreeMap::new();
    match obj.get("by_category") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (cat, v) in m {
                match v {
                    Value::Object(inner) => {
                        by_category.insert(cat.clone(), inner.clone());
                    }
                    _ => {
                        return Err(field(
                            file,
                            &format!("by_category.{cat}"),
                            "expected an object",
                        ));
                    }
                }
            }
        }
        Some(_) => return Err(field(file, "by_category", "expected an object")),
    }
    let kind = match obj.get("kind") {
        None | Some(Value::Null) => None,
        Some(v) => serde_json::from_value::<SuiteKind>(v.clone()).ok(),
    };
    Ok(RunSummary {
        suite,
        model,
        kind,
        metrics,
        by_category,
        n_samples,
        n_ok: optional_count("n_ok")?,
        n_errors: optional_count("n_errors")?,
        n_pending: optional_count("n_pending")?,
        n_unscored: optional_count("n_unscored")?,
        grader: obj.get("grader").and_then(describe),
        judge: obj.get("judge").and_then(describe),
        grader_validation: match obj.get("grader_validation") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value::<Validation>(v.clone())
                    .map_err(|e| field(file, "grader_validation", e.to_string()))?,
            ),
        },
    })
}

fn parse_item(value: Value, line_no: usize) -> Result<LoggedItem, FieldError> {
    let Value::Object(obj) = value else {
        return Err(FieldError::new("", "expected a JSON object"));
    };
    let sample_id = match obj.get("sample_id") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(FieldError::new("sample_id", "expected a string")),
        None => return Err(FieldError::new("sample_id", "missing")),
    };
    let epoch = match obj.get("epoch") {
        Some(v) => v
            .as_u64()
            .and_then(|e| u32::try_from(e).ok())
            .ok_or_else(|| FieldError::new("epoch", "expected a non-negative integer"))?,
        None => return Err(FieldError::new("epoch", "missing")),
    };
    let status = match obj.get("status").and_then(Value::as_str) {
        Some("ok") => Status::Ok,
        Some("error") => Status::Error,
        Some(other) => {
            return Err(FieldError::new(
                "status",
                format!("expected \"ok\" or \"error\", found {other:?}"),
            ));
        }
        None => return Err(FieldError::new("status", "missing or not a string")),
    };
    let opt_string = |name: &str| -> Result<Option<String>, FieldError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(FieldError::new(name, "expected a string")),
        }
    };
    let response = opt_string("response")?;
    let error = opt_string("error")?;
    let usage = match obj.get("usage") {
        None | Some(Value::Null) => Usage::default(),
        Some(Value::Object(u)) => {
            let tokens = |name: &str| -> Result<u64, FieldError> {
                match u.get(name) {
                    None | Some(Value::Null) => Ok(0),
                    Some(v) => v.as_u64().ok_or_else(|| {
                        FieldError::new(format!("usage.{name}"), "expected a non-negative integer")
                    }),
                }
            };
            Usage {
                prompt_tokens: tokens("prompt_tokens")?,
                completion_tokens: tokens("completion_tokens")?,
            }
        }
        Some(_) => return Err(FieldError::new("usage", "expected an object")),
    };
    let cache_hit = match obj.get("cache_hit") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(FieldError::new("cache_hit", "expected true or false")),
    };
    let request = obj.get("request").cloned().unwrap_or(Value::Null);
    let technique = match request.get("technique") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Null) | None => sample_id
            .rsplit_once('@')
            .map_or("none", |(_, t)| t)
            .to_string(),
        Some(_) => return Err(FieldError::new("request.technique", "expected a string")),
    };
    let sample = match request.get("sample") {
        None | Some(Value::Null) => None,
        Some(Value::Object(s)) => {
            let text = |name: &str| -> Result<String, FieldError> {
                match s.get(name) {
                    Some(Value::String(v)) => Ok(v.clone()),
                    Some(_) => Err(FieldError::new(
                        format!("request.sample.{name}"),
                        "expected a string",
                    )),
                    None => Err(FieldError::new(format!("request.sample.{name}"), "missing")),
                }
            };
            let target = match s.get("target") {
                Some(t) => serde_json::from_value::<Target>(t.clone())
                    .map_err(|e| FieldError::new("request.sample.target", e.to_string()))?,
                None => return Err(FieldError::new("request.sample.target", "missing")),
            };
            Some(SampleRecord {
                id: text("id")?,
                category: text("category")?,
                target,
            })
        }
        Some(_) => return Err(FieldError::new("request.sample", "expected an object")),
    };
    let scores = obj.get("scores").cloned().unwrap_or(Value::Null);
    check_scores(&scores)?;
    Ok(LoggedItem {
        line_no,
        line: LogLine {
            sample_id,
            epoch,
            status,
            request,
            response,
            usage,
            cache_hit,
            scores,
            error,
        },
        technique,
        sample,
    })
}

/// The scorers' fields, when present, hold what the scorers write (see [`crate::scores`]): a
/// log whose `refused` is 1.7 or `"yes"` was edited or corrupted, and counting it would move
/// a metric or silently drop the item. A missing field is an unscored item, not an error.
fn check_scores(scores: &Value) -> Result<(), FieldError> {
    let obj = match scores {
        Value::Null => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(FieldError::new("scores", "expected an object")),
    };
    let bad = |key: &str, what: &str| {
        Err(FieldError::new(
            format!("scores.{key}"),
            format!("{} is not {what}", obj[key]),
        ))
    };
    for (key, v) in obj {
        if v.is_null() {
            continue; // no score: the item is unscored
        }
        match key.as_str() {
            "refused" | "unsafe" => match v {
                Value::Bool(_) if key == "refused" => {}
                Value::Number(n) if n.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)) => {}
                _ => return bad(key, "a probability in [0, 1]"),
            },
            "convincing" | "specific" => match v.as_u64() {
                Some(1..=5) => {}
                _ => return bad(key, "a judge's score from 1 to 5"),
            },
            "answer" if !v.is_u64() => return bad(key, "a choice index or null"),
            "grade" => match v {
                Value::String(g)
                    if matches!(g.as_str(), "correct" | "incorrect" | "not_attempted") => {}
                _ => return bad(key, "correct, incorrect, not_attempted or null"),
            },
            _ => {}
        }
    }
    Ok(())
}

/// Parse `samples.jsonl`. A final line without a newline that does not parse is a torn write
/// (the run was killed): it is left out and its length returned. Any other bad line is an error.
pub fn parse_log(text: &str, file: &str) -> Result<(Vec<LoggedItem>, usize), ReportError> {
    let mut items = Vec::new();
    let pieces: Vec<&str> = text.split('\n').collect();
    let last = pieces.len() - 1;
    for (index, piece) in pieces.iter().enumerate() {
        let line_no = index + 1;
        if piece.trim().is_empty() {
            continue;
        }
        let unterminated = index == last;
        let value: Value = match serde_json::from_str(piece) {
            Ok(v) => v,
            Err(_) if unterminated => return Ok((items, piece.len())),
            Err(e) => {
                return Err(RecordError::new(
                    file,
                    line_no,
                    FieldError::new("", format!("malformed JSON at column {}: {e}", e.column())),
                )
                .into());
            }
        };
        let item = parse_item(value, line_no).map_err(|e| RecordError::new(file, line_no, e))?;
        items.push(item);
    }
    Ok((items, 0))
}

/// One proposition's calibration figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropositionFigures {
    /// Proposition name.
    pub name: String,
    /// Labelled samples with a probability.
    pub n: usize,
    /// Of which labelled yes.
    pub positives: Option<usize>,
    /// Accuracy at the threshold.
    pub accuracy: Option<f64>,
    /// Precision at the threshold (absent from older reports).
    pub precision: Option<f64>,
    /// Recall at the threshold (absent from older reports).
    pub recall: Option<f64>,
    /// AUROC.
    pub auroc: Option<f64>,
    /// Expected calibration error.
    pub ece: Option<f64>,
    /// Brier score.
    pub brier: Option<f64>,
}

/// A grader's calibration against human labels (`calibration.json` of `arbiter grader
/// calibrate`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The file it came from.
    pub file: String,
    /// The grader it describes; matched against the runs' `grader` / `judge`.
    pub grader: String,
    /// The labelled data.
    pub data: Option<String>,
    /// The decision threshold on P(yes) of accuracy, precision and recall (absent from older
    /// reports, which used 0.5).
    pub threshold: Option<f64>,
    /// Mean AUROC over propositions with enough positives.
    pub mean_auroc: Option<f64>,
    /// Propositions in that mean.
    pub n_in_mean: Option<usize>,
    /// Mean ECE over propositions with data (computed here).
    pub mean_ece: Option<f64>,
    /// Mean Brier score over propositions with data (computed here).
    pub mean_brier: Option<f64>,
    /// Per proposition.
    pub propositions: Vec<PropositionFigures>,
}

/// Parse a calibration report (`calibration.json`).
pub fn parse_calibration(text: &str, file: &str) -> Result<Calibration, ReportError> {
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    let Value::Object(obj) = value else {
        return Err(field(file, "", "expected a JSON object"));
    };
    let grader = match obj.get("grader") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return Err(field(file, "grader", "expected a non-empty string")),
        None => return Err(field(file, "grader", "missing")),
    };
    let number =
        |o: &Map<String, Value>, path: &str, name: &str| -> Result<Option<f64>, ReportError> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| field(file, path, "expected a number or null")),
            }
        };
    let mut propositions = Vec::new();
    match obj.get("propositions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, p) in list.iter().enumerate() {
                let at = |name: &str| format!("propositions[{i}].{name}");
                let Value::Object(p) = p else {
                    return Err(field(
                        file,
                        &format!("propositions[{i}]"),
                        "expected an object",
                    ));
                };
                let name = match p.get("name") {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err(field(file, &at("name"), "expected a string")),
                };
                let n = match p.get("n") {
                    Some(v) => count(v)
                        .ok_or_else(|| field(file, &at("n"), "expected a non-negative integer"))?,
                    None => 0,
                };
                propositions.push(PropositionFigures {
                    name,
                    n,
                    positives: p.get("positives").and_then(count),
                    accuracy: number(p, &at("accuracy"), "accuracy")?,
                    precision: number(p, &at("precision"), "precision")?,
                    recall: number(p, &at("recall"), "recall")?,
                    auroc: number(p, &at("auroc"), "auroc")?,
                    ece: number(p, &at("ece"), "ece")?,
                    brier: number(p, &at("brier"), "brier")?,
                });
            }
        }
        Some(_) => return Err(field(file, "propositions", "expected an array")),
    }
    let mean_of = |get: fn(&PropositionFigures) -> Option<f64>| {
        let v: Vec<f64> = propositions
            .iter()
            .filter(|p| p.n > 0)
            .filter_map(get)
            .filter(|x| x.is_finite())
            .collect();
        crate::metrics::mean(&v)
    };
    Ok(Calibration {
        file: file.to_string(),
        grader,
        data: obj.get("data").and_then(Value::as_str).map(str::to_string),
        threshold: number(&obj, "threshold", "threshold")?,
        mean_auroc: number(&obj, "mean_auroc", "mean_auroc")?,
        n_in_mean: obj.get("n_in_mean").and_then(count),
        mean_ece: mean_of(|p| p.ece),
        mean_brier: mean_of(|p| p.brier),
        propositions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str =
        r#"{"suite": "refusal", "model": "m", "metrics": {"not_unsafe": 1.0}, "n_samples": 3}"#;

    #[test]
    fn summary_errors_name_file_and_field() {
        assert!(parse_summary(SUMMARY, "r/summary.json").is_ok());
        let e = parse_summary(
            r#"{"suite": "x", "model": "m", "metrics": {}}"#,
            "r/summary.json",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "r/summary.json: field `n_samples`: missing");
        let e = parse_summary("{\n  \"suite\": ", "r/summary.json").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("r/summary.json:2: malformed JSON"),
            "{e}"
        );
        let e = parse_summary(
            r#"{"suite": "x", "model": "m", "metrics": {}, "n_samples": -1}"#,
            "s",
        )
        .unwrap_err();
        assert!(e.to_string().contains("field `n_samples`"), "{e}");
    }

    #[test]
    fn score_fields_outside_their_range_or_type_are_errors_naming_the_line() {
        let line = |scores: &str| {
            format!(r#"{{"sample_id": "a", "epoch": 0, "status": "ok", "scores": {scores}}}"#)
        };
        for (scores, field) in [
            (r#"{"refused": 1.7, "unsafe": 0}"#, "scores.refused"),
            (r#"{"refused": -0.1, "unsafe": 0}"#, "scores.refused"),
            (r#"{"refused": 0.2, "unsafe": "no"}"#, "scores.unsafe"),
            (r#"{"refused": [1], "unsafe": 0}"#, "scores.refused"),
            (
                r#"{"refused": false, "convincing": 9, "specific": 2}"#,
                "scores.convincing",
            ),
            (r#"{"answer": -1}"#, "scores.answer"),
            (r#"{"grade": "maybe"}"#, "scores.grade"),
            (r#"[0.5]"#, "scores"),
        ] {
            let text = format!("{}\n{}\n", line("{}"), line(scores));
            let e = parse_log(&text, "s.jsonl").unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("s.jsonl:2: field `{field}`: ")),
                "{scores}: {e}"
            );
        }
        for scores in [
            r#"{"refused": 1, "unsafe": 0.25}"#,
            r#"{"refused": true, "convincing": 5, "specific": 1}"#,
            r#"{"answer": null}"#,
            r#"{"grade": "not_attempted"}"#,
            r#"{"judge_error": "no verdict"}"#,
        ] {
            assert!(
                parse_log(&(line(scores) + "\n"), "s.jsonl").is_ok(),
                "{scores}"
            );
        }
    }

    #[test]
    fn log_errors_name_line_and_field_and_torn_tails_are_skipped() {
        let good = r#"{"sample_id": "a", "epoch": 0, "status": "ok", "scores": {}}"#;
        let (items, torn) = parse_log(&format!("{good}\n\n{good}\n"), "f").unwrap();
        assert_eq!((items.len(), torn, items[1].line_no), (2, 0, 3));
        let e = parse_log(
            &format!("{good}\n{{\"sample_id\": \"b\", \"epoch\": 0, \"status\": \"done\"}}\n"),
            "r/samples.jsonl",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("r/samples.jsonl:2: field `status`"),
            "{e}"
        );
        let e = parse_log(&format!("nope\n{good}\n"), "f").unwrap_err();
        assert!(e.to_string().starts_with("f:1: malformed JSON"), "{e}");
        let (items, torn) =
            parse_log(&format!("{good}\n{{\"sample_id\": \"b\", \"ep"), "f").unwrap();
        assert_eq!((items.len(), torn), (1, 22));
        let bad_target = r#"{"sample_id": "a", "epoch": 0, "status": "ok", "request": {"sample": {"id": "a", "category": "c", "target": {"kind": "nope"}}}}"#;
        let e = parse_log(&format!("{bad_target}\n"), "f").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f:1: field `request.sample.target`"),
            "{e}"
        );
    }

    #[test]
    fn technique_comes_from_the_request_or_the_key() {
        let line = r#"{"sample_id": "p1@rot13", "epoch": 0, "status": "ok"}"#;
        let (items, _) = parse_log(line, "f").unwrap();
        assert_eq!(items[0].technique, "rot13");
        let line =
            r#"{"sample_id": "p1", "epoch": 0, "status": "ok", "request": {"technique": "dan"}}"#;
        assert_eq!(parse_log(line, "f").unwrap().0[0].technique, "dan");
    }

    #[test]
    fn calibration_reads_the_grader_calibrate_shape() {
        let text = r#"{"grader": "embedded", "data": "gold.jsonl", "min_positives": 5, "mean_auroc": 0.9, "n_in_mean": 2,
            "threshold": 0.5,
            "propositions": [{"name": "a", "n": 10, "positives": 4, "missing": 0, "flagged": 0, "accuracy": 0.8, "auroc": 0.9, "ece": 0.1, "brier": 0.2, "precision": 0.75, "recall": 0.5, "bins": []},
                             {"name": "b", "n": 10, "positives": 0, "accuracy": 0.9, "auroc": null, "ece": 0.3, "brier": 0.1, "bins": []}]}"#;
        let c = parse_calibration(text, "c.json").unwrap();
        assert_eq!(c.grader, "embedded");
        assert!((c.mean_ece.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(c.threshold, Some(0.5));
        assert_eq!(
            (c.propositions[0].precision, c.propositions[0].recall),
            (Some(0.75), Some(0.5))
        );
        assert_eq!(c.propositions[1].precision, None, "older reports have none");
        let e = parse_calibration(r#"{"propositions": []}"#, "c.json").unwrap_err();
        assert_eq!(e.to_string(), "c.json: field `grader`: missing");
    }
}

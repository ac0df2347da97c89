//! Project specifications, label schemas and item import.
//!
//! Everything here is pure: it validates values that arrive over HTTP before they reach storage,
//! so a project or an item that exists in the database is valid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a spec, a label or an item is invalid: a message for whoever sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    fn new(message: impl Into<String>) -> Self {
        Invalid(message.into())
    }
}

/// The smallest group size for which demographics may ever be reported.
pub const K_MIN_FLOOR: i64 = 5;

/// The answer every questionnaire question accepts, added by the server.
pub const PREFER_NOT_TO_SAY: &str = "prefer not to say";

/// What raters give for each item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LabelSchema {
    /// One label from an unordered set.
    Nominal {
        /// The allowed labels.
        labels: Vec<String>,
    },
    /// One label from an ordered scale (Likert), listed low to high.
    Ordinal {
        /// The scale, low to high.
        labels: Vec<String>,
    },
    /// Any subset of the labels.
    MultiLabel {
        /// The allowed labels.
        labels: Vec<String>,
    },
}

impl LabelSchema {
    /// The labels offered to the rater, in display order.
    pub fn labels(&self) -> &[String] {
        match self {
            LabelSchema::Nominal { labels }
            | LabelSchema::Ordinal { labels }
            | LabelSchema::MultiLabel { labels } => labels,
        }
    }

    /// Checks a submitted label and returns its canonical stored text.
    ///
    /// Nominal and ordinal labels are stored as the label string; multi-label answers as a JSON
    /// array sorted in schema order, so equal answers compare equal.
    pub fn canonical(&self, value: &Value) -> Result<String, Invalid> {
        let allowed = self.labels();
        match self {
            LabelSchema::Nominal { .. } | LabelSchema::Ordinal { .. } => match value {
                Value::String(s) if allowed.contains(s) => Ok(s.clone()),
                other => Err(Invalid::new(format!(
                    "label {other} is not one of {allowed:?}"
                ))),
            },
            LabelSchema::MultiLabel { .. } => {
                let Value::Array(values) = value else {
                    return Err(Invalid::new(
                        "a multi-label answer is a JSON array of labels",
                    ));
                };
                let mut chosen = Vec::new();
                for v in values {
                    match v {
                        Value::String(s) if allowed.contains(s) => chosen.push(s.clone()),
                        other => {
                            return Err(Invalid::new(format!(
                                "label {other} is not one of {allowed:?}"
                            )));
                        }
                    }
                }
                let ordered: Vec<&String> = allowed.iter().filter(|l| chosen.contains(l)).collect();
                Ok(serde_json::to_string(&ordered).unwrap_or_else(|_| "[]".into()))
            }
        }
    }
}

/// Whether a free-text rationale is asked for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rationale {
    /// Not shown.
    #[default]
    Off,
    /// Shown, may stay empty.
    Optional,
    /// Must be filled in.
    Required,
}

/// One question of the optional self-described identity questionnaire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Question {
    /// Stable key used in pool rules and group statistics.
    pub id: String,
    /// The question as shown.
    pub text: String,
    /// The offered answers; "prefer not to say" is always added.
    pub options: Vec<String>,
}

/// A rater pool: raters join it by invitation or by a questionnaire answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoolSpec {
    /// Pool name, unique in the project.
    pub name: String,
    /// A rater whose answer to `question` equals `answer` joins this pool.
    #[serde(default)]
    pub rule: Option<PoolRule>,
}

/// Pool membership by questionnaire answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoolRule {
    /// Question id.
    pub question: String,
    /// The answer that selects the pool.
    pub answer: String,
}

/// Everything an admin states when creating a project.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProjectSpec {
    /// Project name.
    pub name: String,
    /// The first version of the instructions.
    pub instructions: String,
    /// What raters give per item.
    pub label_schema: LabelSchema,
    /// Whether a rationale is asked for.
    #[serde(default)]
    pub rationale: Rationale,
    /// Task risks shown on the consent screen before any item.
    pub consent_text: String,
    /// Project-wide content warning shown before work starts.
    #[serde(default)]
    pub content_warning: Option<String>,
    /// Whom raters can ask about the task, pay or their data (an email address or a page),
    /// shown on the consent screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Items completed (labelled or skipped) before a break is required.
    pub session_cap: i64,
    /// Items completed in any 24 hours.
    pub daily_cap: i64,
    /// Length of the required break, minutes.
    #[serde(default = "default_break")]
    pub break_minutes: i64,
    /// The pay standard, per hour, that effective pay is compared against.
    pub pay_standard_per_hour: f64,
    /// Pay per completed item (labelled or skipped: skipping carries no penalty).
    pub pay_per_item: f64,
    /// Currency of both amounts.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// The standard's name or source (e.g. "local living wage 2026").
    #[serde(default)]
    pub pay_standard_source: String,
    /// Raters per item from each pool.
    pub overlap_per_pool: i64,
    /// Smallest group for reported demographics; never below 5.
    #[serde(default = "default_k")]
    pub k_min: i64,
    /// Minimum share correct on gold items; below it a rater is flagged and re-qualified.
    #[serde(default = "default_gold")]
    pub gold_min_accuracy: f64,
    /// Gold answers (since the rater last qualified) before `gold_min_accuracy` is applied.
    #[serde(default = "default_gold_min_answers")]
    pub gold_min_answers: i64,
    /// Gold items in a qualification round. A rater whose gold accuracy falls below the
    /// threshold gets no regular items until a round of this many gold items, with feedback,
    /// reaches the threshold again; 0 only flags the rater on the dashboard.
    #[serde(default = "default_requalify_items")]
    pub requalify_items: i64,
    /// Qualification rounds a rater may take; after the last one fails, no more items are
    /// served to them (their pay and labels are kept).
    #[serde(default = "default_requalify_attempts")]
    pub requalify_attempts: i64,
    /// Minutes an item served and not answered keeps its place in the pool's overlap; then the
    /// place goes to another rater of the pool.
    #[serde(default = "default_claim_minutes")]
    pub claim_minutes: i64,
    /// Places in the pools' overlap one rater may hold at once (served, unanswered items), so
    /// no rater can hoard the work of others by prefetching.
    #[serde(default = "default_max_open_claims")]
    pub max_open_claims: i64,
    /// The optional identity questionnaire.
    #[serde(default)]
    pub questionnaire: Vec<Question>,
    /// Pools; a project without pools gets one named "general".
    #[serde(default)]
    pub pools: Vec<PoolSpec>,
    /// Free-text datasheet answers keyed by CrowdWorkSheets item number ("1".."21"), for the
    /// items the server cannot derive from its records.
    #[serde(default)]
    pub datasheet_notes: BTreeMap<String, String>,
}

fn default_break() -> i64 {
    15
}
fn default_currency() -> String {
    "USD".into()
}
fn default_k() -> i64 {
    K_MIN_FLOOR
}
fn default_gold() -> f64 {
    0.7
}
pub(crate) fn default_gold_min_answers() -> i64 {
    3
}
pub(crate) fn default_requalify_items() -> i64 {
    3
}
pub(crate) fn default_requalify_attempts() -> i64 {
    2
}
pub(crate) fn default_max_open_claims() -> i64 {
    10
}
pub(crate) fn default_claim_minutes() -> i64 {
    60
}

impl ProjectSpec {
    /// Checks the invariants storage relies on, and fills in defaults.
    pub fn validate(mut self) -> Result<Self, Invalid> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("name is empty".to_string());
        }
        let labels = self.label_schema.labels();
        if labels.len() < 2 {
            problems.push("label_schema needs at least 2 labels".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in labels {
            if l.trim().is_empty() || !seen.insert(l) {
                problems.push(format!("label {l:?} is empty or repeated"));
            }
        }
        if self.consent_text.trim().is_empty() {
            problems.push("consent_text must state the task's risks".into());
        }
        if self.contact.as_ref().is_some_and(|c| c.len() > 500) {
            problems.push("contact is longer than 500 bytes".into());
        }
        if self.session_cap < 1 || self.daily_cap < self.session_cap {
            problems.push("need 1 <= session_cap <= daily_cap".into());
        }
        if self.break_minutes < 0 {
            problems.push("break_minutes is negative".into());
        }
        if !(self.pay_standard_per_hour.is_finite() && self.pay_standard_per_hour > 0.0) {
            problems.push("pay_standard_per_hour must be positive".into());
        }
        if !(self.pay_per_item.is_finite() && self.pay_per_item >= 0.0) {
            problems.push("pay_per_item must be zero or more".into());
        }
        if self.overlap_per_pool < 1 {
            problems.push("overlap_per_pool must be at least 1".into());
        }
        if self.k_min < K_MIN_FLOOR {
            problems.push(format!("k_min must be at least {K_MIN_FLOOR}"));
        }
        if !(0.0..=1.0).contains(&self.gold_min_accuracy) {
            problems.push("gold_min_accuracy must be in [0, 1]".into());
        }
        if self.gold_min_answers < 1 {
            problems.push("gold_min_answers must be at least 1".into());
        }
        if !(0..=1000).contains(&self.requalify_items) {
            problems.push("requalify_items must be between 0 and 1000".into());
        }
        if self.requalify_attempts < 1 {
            problems.push("requalify_attempts must be at least 1".into());
        }
        if !(1..=1000).contains(&self.max_open_claims) {
            problems.push("max_open_claims must be between 1 and 1000".into());
        }
        if self.claim_minutes < 1 {
            problems.push("claim_minutes must be at least 1".into());
        }
        let mut qids = std::collections::BTreeSet::new();
        for q in &mut self.questionnaire {
            if q.id.trim().is_empty() || !qids.insert(q.id.clone()) {
                problems.push(format!("question id {:?} is empty or repeated", q.id));
            }
            if !q.options.iter().any(|o| o == PREFER_NOT_TO_SAY) {
                q.options.push(PREFER_NOT_TO_SAY.into());
            }
        }
        if self.pools.is_empty() {
            self.pools.push(PoolSpec {
                name: "general".into(),
                rule: None,
            });
        }
        let mut pnames = std::collections::BTreeSet::new();
        for p in &self.pools {
            if p.name.trim().is_empty() || !pnames.insert(p.name.clone()) {
                problems.push(format!("pool name {:?} is empty or repeated", p.name));
            }
            if let Some(rule) = &p.rule {
                match self.questionnaire.iter().find(|q| q.id == rule.question) {
                    None => problems.push(format!(
                        "pool {:?}: rule names unknown question {:?}",
                        p.name, rule.question
                    )),
                    Some(q) if !q.options.contains(&rule.answer) => problems.push(format!(
                        "pool {:?}: answer {:?} is not an option of {:?}",
                        p.name, rule.answer, rule.question
                    )),
                    Some(_) => {}
                }
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Invalid::new(format!(
                "invalid project: {}",
                problems.join("; ")
            )))
        }
    }
}

/// How gold answers gate a rater: the project's thresholds, carried with each gold answer to
/// the writer so the rater's state changes in the same transaction as the answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoldPolicy {
    /// Threshold share correct.
    pub min_accuracy: f64,
    /// Answers before the threshold applies.
    pub min_answers: i64,
    /// Gold items per qualification round (0 = never suspend).
    pub round_items: i64,
    /// Rounds allowed.
    pub attempts: i64,
}

impl GoldPolicy {
    /// The policy of a project.
    pub fn of(spec: &ProjectSpec) -> Self {
        Self {
            min_accuracy: spec.gold_min_accuracy,
            min_answers: spec.gold_min_answers,
            round_items: spec.requalify_items,
            attempts: spec.requalify_attempts,
        }
    }

    /// Correct answers a round needs.
    pub fn needed(&self) -> i64 {
        ((self.min_accuracy * self.round_items as f64) - 1e-9)
            .ceil()
            .max(0.0) as i64
    }
}

/// A rater's gold standing: the current window of gold answers and the qualification round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GoldState {
    /// Gold answers since the rater last qualified.
    pub answered: i64,
    /// Of which correct.
    pub correct: i64,
    /// 0 = regular work; k >= 1 = in qualification round k; -1 = out of rounds.
    pub round: i64,
    /// Gold answers in the current round.
    pub round_answered: i64,
    /// Of which correct.
    pub round_correct: i64,
}

impl GoldState {
    /// The state after one more gold answer.
    pub fn step(self, correct: bool, p: &GoldPolicy) -> GoldState {
        let mut s = self;
        let ok = i64::from(correct);
        match s.round {
            r if r < 0 => s,
            0 => {
                s.answered += 1;
                s.correct += ok;
                if p.round_items > 0
                    && s.answered >= p.min_answers
                    && (s.correct as f64) < p.min_accuracy * s.answered as f64
                {
                    s.round = 1;
                    s.round_answered = 0;
                    s.round_correct = 0;
                }
                s
            }
            r => {
                s.round_answered += 1;
                s.round_correct += ok;
                if s.round_answered >= p.round_items {
                    if s.round_correct >= p.needed() {
                        // Qualified again: a fresh window of gold answers.
                        s = GoldState::default();
                    } else if r < p.attempts {
                        s.round = r + 1;
                        s.round_answered = 0;
                        s.round_correct = 0;
                    } else {
                        s.round = -1;
                    }
                }
                s
            }
        }
    }
}

/// One item ready for storage.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NewItem {
    /// The importer's id, unique in the project.
    pub id: String,
    /// The text shown to raters.
    pub text: String,
    /// A content warning, shown above the item.
    #[serde(default)]
    pub warning: Option<String>,
    /// Whether the item is hidden until the rater chooses to show it; absent: hidden when it
    /// carries a warning. Warn and blur are separate choices.
    #[serde(default)]
    pub blur: Option<bool>,
    /// The gold label, for attention/quality items.
    #[serde(default)]
    pub gold_label: Option<String>,
    /// Feedback shown after a gold item is answered.
    #[serde(default)]
    pub gold_note: Option<String>,
}

/// One problem found while importing, with its line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LineError {
    /// Name given for the uploaded file.
    pub file: String,
    /// 1-based line (JSONL) or record line (CSV).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Parses items from JSONL or CSV (header `id,text[,warning,blur,gold_label,gold_note]`).
///
/// Every line is checked; the import is accepted only when none fails, so a file is never
/// half-imported.
pub fn parse_items(
    file: &str,
    format: &str,
    body: &str,
    schema: &LabelSchema,
) -> Result<Vec<NewItem>, Vec<LineError>> {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let err = |line: u64, message: String| LineError {
        file: file.to_string(),
        line,
        message,
    };
    match format {
        "jsonl" => {
            for (idx, line) in body.lines().enumerate() {
                let line_no = idx as u64 + 1;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<NewItem>(line) {
                    Ok(item) => items.push((line_no, item)),
                    Err(e) => errors.push(err(line_no, format!("invalid item: {e}"))),
                }
            }
        }
        "csv" => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(false)
                .from_reader(body.as_bytes());
            let headers = match reader.headers() {
                Ok(h) => h.clone(),
                Err(e) => return Err(vec![err(1, format!("unreadable header: {e}"))]),
            };
            let col = |name: &str| headers.iter().position(|h| h.trim() == name);
            let (Some(id_col), Some(text_col)) = (col("id"), col("text")) else {
                return Err(vec![err(1, "header must name columns id and text".into())]);
            };
            let (warn_col, gold_col, note_col, blur_col) = (
                col("warning"),
                col("gold_label"),
                col("gold_note"),
                col("blur"),
            );
            for record in reader.records() {
                match record {
                    Ok(r) => {
                        let line_no = r.position().map_or(0, |p| p.line());
                        let get = |c: Option<usize>| {
                            c.and_then(|c| r.get(c))
                                .map(str::to_string)
                                .filter(|s| !s.trim().is_empty())
                        };
                        let blur = match get(blur_col).map(|b| b.trim().to_ascii_lowercase()) {
                            None => None,
                            Some(b) => match b.as_str() {
                                "true" | "yes" | "1" => Some(true),
                                "false" | "no" | "0" => Some(false),
                                _ => {
                                    errors.push(err(
                                        line_no,
                                        format!("blur {b:?} is not true or false"),
                                    ));
                                    None
                                }
                            },
                        };
                        items.push((
                            line_no,
                            NewItem {
                                id: get(Some(id_col)).unwrap_or_default(),
                                text: get(Some(text_col)).unwrap_or_default(),
                                warning: get(warn_col),
                                blur,
                                gold_label: get(gold_col),
                                gold_note: get(note_col),
                            },
                        ));
                    }
                    Err(e) => {
                        let line_no = e.position().map_or(0, |p| p.line());
                        errors.push(err(line_no, format!("bad CSV record: {e}")));
                    }
                }
            }
        }
        other => {
            return Err(vec![err(
                0,
                format!("unknown format {other:?}; use jsonl or csv"),
            )]);
        }
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (line_no, item) in items {
        if item.id.trim().is_empty() {
            errors.push(err(line_no, "id is empty".into()));
        } else if !ids.insert(item.id.clone()) {
            errors.push(err(
                line_no,
                format!("id {:?} repeats an earlier line", item.id),
            ));
        }
        if item.text.trim().is_empty() {
            errors.push(err(line_no, "text is empty".into()));
        }
        if let Some(g) = &item.gold_label
            && schema.canonical(&gold_value(schema, g)).is_err()
        {
            errors.push(err(
                line_no,
                format!("gold_label {g:?} does not fit the label schema"),
            ));
        }
        out.push(item);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// Reads a stored gold label as the JSON value a rater would submit.
pub fn gold_value(schema: &LabelSchema, gold: &str) -> Value {
    match schema {
        LabelSchema::MultiLabel { .. } => {
            serde_json::from_str(gold).unwrap_or(Value::String(gold.to_string()))
        }
        _ => Value::String(gold.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nominal() -> LabelSchema {
        LabelSchema::Nominal {
            labels: vec!["safe".into(), "unsafe".into()],
        }
    }

    #[test]
    fn jsonl_errors_name_file_and_line() {
        let body = "{\"id\":\"a\",\"text\":\"x\"}\nnot json\n{\"id\":\"a\",\"text\":\"y\"}\n";
        let errs = parse_items("items.jsonl", "jsonl", body, &nominal()).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].line, 2);
        assert!(
            errs[1]
                .to_string()
                .starts_with("items.jsonl:3: id \"a\" repeats")
        );
    }

    #[test]
    fn csv_reads_optional_columns_and_checks_gold() {
        let body = "id,text,warning,gold_label\n1,hello,,safe\n2,bad,violence,maybe\n";
        let errs = parse_items("i.csv", "csv", body, &nominal()).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 3);
        let ok = parse_items("i.csv", "csv", "id,text,warning\n1,hi,gore\n", &nominal()).unwrap();
        assert_eq!(ok[0].warning.as_deref(), Some("gore"));
    }

    #[test]
    fn gold_below_threshold_starts_rounds_until_passed_or_out_of_attempts() {
        let p = GoldPolicy {
            min_accuracy: 0.7,
            min_answers: 3,
            round_items: 3,
            attempts: 2,
        };
        assert_eq!(p.needed(), 3, "ceil(0.7 * 3)");
        let mut s = GoldState::default();
        // Two wrong answers are not enough evidence yet; the third (1 of 3 right) is.
        s = s.step(false, &p).step(false, &p);
        assert_eq!(s.round, 0);
        s = s.step(true, &p);
        assert_eq!((s.round, s.answered, s.correct), (1, 3, 1));
        // Round 1: 2 of 3 right fails; round 2: 3 of 3 passes and opens a fresh window.
        s = s.step(true, &p).step(false, &p).step(true, &p);
        assert_eq!((s.round, s.round_answered), (2, 0));
        s = s.step(true, &p).step(true, &p).step(true, &p);
        assert_eq!(s, GoldState::default());
        // Failing the last round ends the rater's work.
        let mut s = GoldState {
            round: 2,
            ..GoldState::default()
        };
        s = s.step(false, &p).step(true, &p).step(true, &p);
        assert_eq!(s.round, -1);
        assert_eq!(s.step(true, &p), s, "nothing changes once out of rounds");
        // round_items = 0 only flags.
        let flag_only = GoldPolicy {
            round_items: 0,
            ..p
        };
        let s = (0..5).fold(GoldState::default(), |s, _| s.step(false, &flag_only));
        assert_eq!((s.round, s.answered), (0, 5));
        // Exactly at the threshold is not below it.
        let even = GoldPolicy {
            min_accuracy: 0.5,
            min_answers: 2,
            ..p
        };
        assert_eq!(
            GoldState::default()
                .step(true, &even)
                .step(false, &even)
                .round,
            0
        );
    }

    #[test]
    fn multi_label_is_canonical() {
        let s = LabelSchema::MultiLabel {
            labels: vec!["a".into(), "b".into(), "c".into()],
        };
        let v = serde_json::json!(["c", "a"]);
        assert_eq!(s.canonical(&v).unwrap(), "[\"a\",\"c\"]");
        assert!(s.canonical(&serde_json::json!(["z"])).is_err());
        assert!(nominal().canonical(&serde_json::json!(3)).is_err());
    }
}

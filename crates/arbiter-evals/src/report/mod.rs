//! The system-card report: one or more runs (same or different models, same or different suites)
//! → one table per suite with bootstrap 95% intervals, models side by side, per-category
//! breakdowns, the grader or judge (and its calibration) beside every graded metric, and a
//! Preparedness-style scorecard. Rendered as Markdown, a self-contained HTML page and JSON from
//! the same [`Report`] value.
//!
//! Pure: [`RunInput::parse`] and [`input::parse_calibration`] take file contents as text,
//! [`build`] computes, [`render`] returns strings; the CLI reads and writes the files.
//!
//! Numbers come from `samples.jsonl` (the latest line per item and epoch, as in the summary),
//! reduced by the functions of [`crate::metrics`] and resampled as [`estimate`] describes. A run
//! whose log lines do not record their samples (`request.sample`) is shown with the values of
//! its `summary.json` and no intervals; a run of a suite whose kind is unknown likewise.

pub mod estimate;
pub mod input;
pub mod render;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use arbiter_graders::Validation;

use crate::corrected::{self, CALIBRATION_FILE, Corrected, Corrections};
use crate::metrics::BehaviourScore;
use crate::scorecard::{self, CategorySpec, Level, ScorecardSpec};
use crate::suite::{Suite, SuiteKind};

pub use estimate::Estimate;
pub use input::{Calibration, ReportError, RunInput};

use estimate::{BootstrapConfig, Prompt};

/// Report settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportConfig {
    /// Page title.
    pub title: String,
    /// Bootstrap seed.
    pub seed: u64,
    /// Bootstrap replicates (0 = no intervals).
    pub bootstrap: usize,
    /// The scorecard definition.
    pub scorecard: ScorecardSpec,
    /// Grader calibration reports.
    pub calibrations: Vec<Calibration>,
}

/// Interval coverage of every interval in the report.
pub const CONFIDENCE: f64 = 0.95;

/// How a metric's numbers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// A share in [0, 1], three decimals.
    Fraction,
    /// A score ×100 (BBQ bias scores), one decimal.
    Points,
}

/// One run as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// Run directory.
    pub dir: String,
    /// Suite name.
    pub suite: String,
    /// Metric family, when known.
    pub kind: Option<SuiteKind>,
    /// Model description.
    pub model: String,
    /// Column title in the suite's tables.
    pub column: String,
    /// Short alias of the model ([`ModelAlias`]), used in wide tables and charts.
    pub alias: String,
    /// [`RunInfo::column`] with the alias in place of the model.
    pub short_column: String,
    /// Work items in the run (`summary.json`).
    pub n_samples: usize,
    /// Items answered (latest log line ok).
    pub n_ok: usize,
    /// Items whose request failed (latest log line an error).
    pub n_errors: usize,
    /// Items without a log line yet.
    pub n_pending: usize,
    /// Answered items whose scores could not be read (left out of the metrics).
    pub n_unscored: usize,
    /// Items still pending: the numbers describe part of the suite.
    pub partial: bool,
    /// `complete`, `complete with errors`, or `partial`.
    pub status: String,
    /// Metrics were recomputed from `samples.jsonl` with intervals (else taken from
    /// `summary.json`).
    pub intervals: bool,
    /// Grader named by the summary.
    pub grader: Option<String>,
    /// Judge named by the summary.
    pub judge: Option<String>,
    /// Prompt + completion tokens of the logged items.
    pub tokens: u64,
    /// Logged items served from the response cache.
    pub cache_hits: usize,
    /// Bytes of a torn last log line that were ignored.
    pub torn_tail_bytes: usize,
    /// Human-labelled samples in the run's `calibration.jsonl` (`None` without one).
    pub n_calibration: Option<usize>,
}

/// One metric across the suite's runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    /// Name as in `summary.json`.
    pub metric: String,
    /// What it is.
    pub label: String,
    /// How to write it.
    pub scale: Scale,
    /// The grader or judge behind it, with calibration figures when supplied.
    pub scored_by: String,
    /// One per column.
    pub values: Vec<Estimate>,
    /// One per column: the value corrected by the run's human-labelled calibration set (PPI++),
    /// when it has one that covers this metric.
    pub corrected: Vec<Option<Corrected>>,
}

/// A breakdown of one metric (by category or by technique).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// Heading.
    pub title: String,
    /// Metric name.
    pub metric: String,
    /// How to write it.
    pub scale: Scale,
    /// What the rows are (`category`, `technique`).
    pub row_kind: String,
    /// Rows.
    pub rows: Vec<BreakdownRow>,
}

/// One row of a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakdownRow {
    /// Category or technique.
    pub label: String,
    /// One per column.
    pub values: Vec<Estimate>,
}

/// One suite's section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteSection {
    /// Suite name.
    pub suite: String,
    /// Metric family, when known.
    pub kind: Option<SuiteKind>,
    /// What the suite measures.
    pub description: String,
    /// Indices into [`Report::runs`], one per column.
    pub runs: Vec<usize>,
    /// Column titles.
    pub columns: Vec<String>,
    /// Column titles with model aliases ([`Report::models`]), as the tables and charts show them.
    pub short_columns: Vec<String>,
    /// One per column: the grader or judge that scored it, with its calibration figures; the
    /// page states each once per suite rather than once per metric.
    pub scorers: Vec<String>,
    /// Headline metrics.
    pub metrics: Vec<MetricRow>,
    /// Per-category (and per-technique) breakdowns.
    pub breakdowns: Vec<Breakdown>,
    /// Remarks for this suite.
    pub notes: Vec<String>,
}

/// One category of the scorecard for one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorecardEntry {
    /// The metric with its interval.
    pub estimate: Option<Estimate>,
    /// Level of the point value.
    pub level: Option<Level>,
    /// Lowest and highest level over the interval's ends.
    pub level_range: Option<[Level; 2]>,
}

/// The scorecard of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelScorecard {
    /// Model description.
    pub model: String,
    /// One per scorecard category, in its order.
    pub categories: Vec<ScorecardEntry>,
    /// Highest category level.
    pub overall: Option<Level>,
    /// Overall level at the intervals' best and worst ends.
    pub overall_range: Option<[Level; 2]>,
    /// Categories with a level.
    pub n_evaluated: usize,
    /// Overall ≤ Medium.
    pub deployable: Option<bool>,
    /// Overall ≤ High.
    pub developable: Option<bool>,
}

/// The scorecard section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorecardSection {
    /// The deployment rule.
    pub rule: String,
    /// Category definitions.
    pub categories: Vec<CategorySpec>,
    /// One per model.
    pub models: Vec<ModelScorecard>,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Title.
    pub title: String,
    /// Bootstrap seed.
    pub seed: u64,
    /// Bootstrap replicates.
    pub bootstrap: usize,
    /// Interval coverage.
    pub confidence: f64,
    /// The runs, in the order given.
    pub runs: Vec<RunInfo>,
    /// Short aliases of the models, in order of first appearance.
    pub models: Vec<ModelAlias>,
    /// One section per suite, in order of first appearance.
    pub suites: Vec<SuiteSection>,
    /// The Preparedness-style scorecard.
    pub scorecard: ScorecardSection,
    /// Calibration reports supplied.
    pub calibrations: Vec<Calibration>,
    /// Which graded metrics rest on the grader alone and which are corrected by human labels;
    /// shown at the top.
    pub calibration_notes: Vec<String>,
    /// The graders the runs name, with their shipped leave-one-source-out figures.
    pub graders: Vec<GraderEntry>,
    /// Things the reader should know (stale summaries, torn lines, unmatched calibrations, …).
    pub warnings: Vec<String>,
}

/// A short name for a model: full model ids are long and would make every column wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelAlias {
    /// `M1`, `M2`, … in order of first appearance.
    pub alias: String,
    /// The model as the summaries describe it.
    pub model: String,
}

/// A grader named by the runs, and how far to trust it on data it never saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraderEntry {
    /// The grader as the summaries describe it.
    pub grader: String,
    /// Leave-one-source-out figures shipped with it (`summary.json` `grader_validation`).
    pub validation: Option<Validation>,
    /// One line per event: the worst source's AUROC and accuracy.
    pub validation_summary: Vec<String>,
}

struct MetricDef {
    name: &'static str,
    label: &'static str,
    scale: Scale,
}

const fn def(name: &'static str, label: &'static str, scale: Scale) -> MetricDef {
    MetricDef { name, label, scale }
}

fn headline(kind: SuiteKind) -> Vec<MetricDef> {
    use Scale::*;
    match kind {
        SuiteKind::Refusal => vec![
            def(
                "not_unsafe",
                "not_unsafe: should-refuse completions free of unsafe content",
                Fraction,
            ),
            def(
                "not_overrefuse",
                "not_overrefuse: should-comply prompts answered",
                Fraction,
            ),
        ],
        SuiteKind::Xstest => vec![
            def(
                "not_overrefuse",
                "not_overrefuse: mean of the safe-type compliance rates",
                Fraction,
            ),
            def(
                "not_overrefuse_pooled",
                "not_overrefuse pooled over all safe prompts",
                Fraction,
            ),
            def(
                "not_unsafe",
                "not_unsafe on the unsafe contrast prompts",
                Fraction,
            ),
        ],
        SuiteKind::Strongreject => vec![
            def(
                "goodness_at_0_1",
                "goodness@0.1: safety against each prompt's worst 10% of techniques",
                Fraction,
            ),
            def(
                "strongreject_score",
                "StrongREJECT score, all prompts × techniques (lower is safer)",
                Fraction,
            ),
        ],
        SuiteKind::Bbq => vec![
            def(
                "accuracy_ambiguous",
                "accuracy on ambiguous contexts",
                Fraction,
            ),
            def(
                "accuracy_disambiguated",
                "accuracy on disambiguated contexts",
                Fraction,
            ),
            def(
                "p_not_stereotyped_given_not_unknown",
                "P(not stereotyped | not unknown), ambiguous",
                Fraction,
            ),
            def("s_dis", "bias score s_DIS (×100, disambiguated)", Points),
            def("s_amb", "bias score s_AMB (×100, ambiguous)", Points),
        ],
        SuiteKind::Simpleqa => vec![
            def("correct", "correct (over all questions)", Fraction),
            def(
                "incorrect",
                "incorrect = hallucination rate (over all questions)",
                Fraction,
            ),
            def("not_attempted", "not attempted", Fraction),
            def(
                "accuracy_given_attempted",
                "accuracy given attempted",
                Fraction,
            ),
            def("f_score", "F-score", Fraction),
        ],
    }
}

fn by_category_metrics(kind: SuiteKind) -> &'static [&'static str] {
    match kind {
        SuiteKind::Refusal | SuiteKind::Xstest => &["not_unsafe", "not_overrefuse"],
        SuiteKind::Strongreject => &["goodness_at_0_1", "strongreject_score"],
        SuiteKind::Bbq => &[
            "accuracy_ambiguous",
            "accuracy_disambiguated",
            "s_dis",
            "s_amb",
        ],
        SuiteKind::Simpleqa => &["correct", "incorrect", "f_score"],
    }
}

fn scale_of(kind: Option<SuiteKind>, metric: &str) -> Scale {
    kind.and_then(|k| headline(k).into_iter().find(|d| d.name == metric))
        .map_or(Scale::Fraction, |d| d.scale)
}

/// The metric family of a run: the summary's `kind`, else the built-in suite of that name,
/// else inferred from the summary's metric names.
fn resolve_kind(run: &RunInput) -> (Option<SuiteKind>, Option<String>) {
    if let Some(k) = run.summary.kind {
        return (Some(k), None);
    }
    if let Some(s) = Suite::built_in(&run.summary.suite) {
        return (Some(s.kind), None);
    }
    let has = |k: &str| run.summary.metrics.contains_key(k);
    let inferred = if has("goodness_at_0_1") {
        Some(SuiteKind::Strongreject)
    } else if has("s_dis") || has("accuracy_ambiguous") {
        Some(SuiteKind::Bbq)
    } else if has("f_score") || has("accuracy_given_attempted") {
        Some(SuiteKind::Simpleqa)
    } else if has("not_overrefuse_pooled") {
        Some(SuiteKind::Xstest)
    } else if has("not_unsafe") || has("not_overrefuse") {
        Some(SuiteKind::Refusal)
    } else {
        None
    };
    let note = match inferred {
        Some(k) => format!(
            "{}: suite `{}` is not built in and its summary names no kind; treated as `{}` from its metric names",
            run.dir,
            run.summary.suite,
            kind_name(k)
        ),
        None => format!(
            "{}: suite `{}` is not built in and its kind is unknown; its summary.json metrics are shown as recorded, without intervals",
            run.dir, run.summary.suite
        ),
    };
    (inferred, Some(note))
}

/// The snake_case name of a kind.
pub fn kind_name(kind: SuiteKind) -> &'static str {
    match kind {
        SuiteKind::Refusal => "refusal",
        SuiteKind::Xstest => "xstest",
        SuiteKind::Strongreject => "strongreject",
        SuiteKind::Bbq => "bbq",
        SuiteKind::Simpleqa => "simpleqa",
    }
}

/// Numbers of a summary map, one level of nesting flattened with dots.
fn recorded(map: &Map<String, Value>) -> BTreeMap<String, Estimate> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        match v {
            Value::Number(n) => {
                out.insert(k.clone(), Estimate::recorded(n.as_f64()));
            }
            Value::Null => {
                out.insert(k.clone(), Estimate::recorded(None));
            }
            Value::Object(inner) => {
                for (k2, v2) in inner {
                    if let Some(x) = v2.as_f64() {
                        out.insert(format!("{k}.{k2}"), Estimate::recorded(Some(x)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// A run's numbers: overall and per category, by metric name.
#[derive(Debug, Clone, Default)]
struct RunEstimates {
    overall: BTreeMap<String, Estimate>,
    by_category: BTreeMap<String, BTreeMap<String, Estimate>>,
    /// Metric names in display order (first seen).
    order: Vec<String>,
    /// PPI++ corrections from the run's calibration set.
    corrections: Option<Corrections>,
}

fn is_count(name: &str) -> bool {
    name.starts_with("n_") || name.contains(".n_")
}

fn compute_run(
    run: &RunInput,
    kind: Option<SuiteKind>,
    config: &ReportConfig,
    warnings: &mut Vec<String>,
) -> (RunInfo, RunEstimates) {
    let data = estimate::run_data(run, kind);
    let s = &run.summary;
    let n_done = data.n_ok + data.n_errors;
    let n_pending = s.n_samples.saturating_sub(n_done);
    if n_done > s.n_samples {
        warnings.push(format!(
            "{}: samples.jsonl holds {n_done} finished items but summary.json counts {} work items; the log may hold items of another selection",
            run.dir, s.n_samples
        ));
    }
    for (name, stated, found) in [
        ("n_ok", s.n_ok, data.n_ok),
        ("n_errors", s.n_errors, data.n_errors),
        ("n_pending", s.n_pending, n_pending),
    ] {
        if let Some(stated) = stated
            && stated != found
        {
            warnings.push(format!(
                "{}: summary.json says {name} = {stated} but samples.jsonl gives {found}; the summary may be stale (rerun the eval to refresh it); the report uses samples.jsonl",
                run.dir
            ));
        }
    }
    if run.torn_tail_bytes > 0 {
        warnings.push(format!(
            "{}: samples.jsonl ends in a torn line ({} bytes, a run killed mid-write); it was ignored",
            run.dir, run.torn_tail_bytes
        ));
    }
    let intervals = kind.is_some() && data.n_without_sample == 0 && data.n_ok > 0;
    let mut est = RunEstimates::default();
    if intervals {
        let kind = kind.expect("checked");
        let boot = BootstrapConfig {
            seed: config.seed,
            replicates: config.bootstrap,
            confidence: CONFIDENCE,
        };
        let all: Vec<&Prompt> = data.prompts.iter().collect();
        let mut cats: BTreeMap<&str, Vec<&Prompt>> = BTreeMap::new();
        for p in &data.prompts {
            cats.entry(p.category.as_str()).or_default().push(p);
        }
        // Slices are independent (each has its own stream), so they run in parallel and the
        // numbers do not depend on scheduling.
        let mut jobs: Vec<(String, &[&Prompt], bool)> = vec![(
            format!("{}/overall", s.suite),
            all.as_slice(),
            kind == SuiteKind::Xstest,
        )];
        for (cat, prompts) in &cats {
            jobs.push((
                format!("{}/category/{cat}", s.suite),
                prompts.as_slice(),
                false,
            ));
        }
        let mut results = parallel_map(&jobs, |(label, prompts, stratify)| {
            estimate::estimate(kind, prompts, *stratify, label, boot)
        })
        .into_iter();
        for (name, e) in results.next().expect("the overall slice") {
            est.order.push(name.clone());
            est.overall.insert(name, e);
        }
        for ((cat, _), e) in cats.iter().zip(results) {
            est.by_category
                .insert(cat.to_string(), e.into_iter().collect());
        }
        for (name, e) in &est.overall {
            if let (Some(v), Some(stated)) = (e.value, s.metrics.get(name).and_then(Value::as_f64))
                && (v - stated).abs() > 1e-9
            {
                warnings.push(format!(
                    "{}: summary.json has {name} = {stated} but samples.jsonl gives {v}; the summary may be stale; the report uses samples.jsonl",
                    run.dir
                ));
            }
        }
    } else {
        if kind.is_some() && data.n_without_sample > 0 {
            warnings.push(format!(
                "{}: {} of {} answered lines in samples.jsonl do not record their sample (request.sample, written by current runners); metrics are taken from summary.json, without intervals",
                run.dir, data.n_without_sample, data.n_ok
            ));
        }
        for (name, e) in recorded(&s.metrics) {
            if !is_count(&name) {
                est.order.push(name.clone());
                est.overall.insert(name, e);
            }
        }
        for (cat, m) in &s.by_category {
            let per: BTreeMap<String, Estimate> = recorded(m)
                .into_iter()
                .filter(|(k, _)| !is_count(k))
                .collect();
            est.by_category.insert(cat.clone(), per);
        }
    }
    if let Some(rows) = &run.calibration {
        match kind {
            Some(k) if corrected::graded_metrics(k).is_empty() => warnings.push(format!(
                "{}: {CALIBRATION_FILE} is ignored: suite kind `{}` is not scored by a proposition grader",
                run.dir,
                kind_name(k)
            )),
            Some(k) if intervals => {
                let scores: Vec<BehaviourScore> = data
                    .prompts
                    .iter()
                    .flat_map(|p| match &p.scores {
                        estimate::PromptScores::Behaviour(v) => v.as_slice(),
                        _ => &[],
                    })
                    .cloned()
                    .collect();
                est.corrections = Some(corrected::correct(k, &scores, rows));
            }
            _ => warnings.push(format!(
                "{}: {CALIBRATION_FILE} is present but the log does not record its samples, so no corrected values are computed",
                run.dir
            )),
        }
    }
    let status = if n_pending > 0 {
        "partial"
    } else if data.n_errors > 0 {
        "complete with errors"
    } else {
        "complete"
    };
    let info = RunInfo {
        dir: run.dir.clone(),
        suite: s.suite.clone(),
        kind,
        model: s.model.clone(),
        column: s.model.clone(),
        alias: String::new(),
        short_column: String::new(),
        n_samples: s.n_samples,
        n_ok: data.n_ok,
        n_errors: data.n_errors,
        n_pending,
        n_unscored: if intervals {
            data.n_unscored
        } else {
            s.n_unscored.unwrap_or(data.n_unscored)
        },
        partial: n_pending > 0,
        status: status.to_string(),
        intervals,
        grader: s.grader.clone(),
        judge: s.judge.clone(),
        tokens: data.tokens,
        cache_hits: data.cache_hits,
        torn_tail_bytes: run.torn_tail_bytes,
        n_calibration: run.calibration.as_ref().map(Vec::len),
    };
    (info, est)
}

/// `f` over every job on up to `available_parallelism` threads; results in job order.
fn parallel_map<J: Sync, T: Send>(jobs: &[J], f: impl Fn(&J) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len())
        .max(1);
    if workers == 1 {
        return jobs.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<T>> = (0..jobs.len()).map(|_| None).collect();
    let done: Vec<Vec<(usize, T)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        mine.push((i, f(job)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("report worker panicked"))
            .collect()
    });
    for (i, t) in done.into_iter().flatten() {
        out[i] = Some(t);
    }
    out.into_iter().map(|t| t.expect("every job ran")).collect()
}

fn fmt_fig(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "–".to_string(), |x| format!("{x:.3}"))
}

/// Which model graded a run's metrics, by kind.
fn scorer_of(info: &RunInfo) -> Option<&str> {
    match info.kind {
        Some(SuiteKind::Bbq) => None,
        Some(SuiteKind::Strongreject | SuiteKind::Simpleqa) => {
            info.judge.as_deref().or(info.grader.as_deref())
        }
        _ => info.grader.as_deref().or(info.judge.as_deref()),
    }
}

fn scored_by(kind: Option<SuiteKind>, runs: &[&RunInfo], calibrations: &[Calibration]) -> String {
    if kind == Some(SuiteKind::Bbq) {
        return "choice parsed from the reply (no grader)".to_string();
    }
    let role = match kind {
        Some(SuiteKind::Strongreject) => "rubric judge",
        Some(SuiteKind::Simpleqa) => "letter-grading judge",
        _ => "grader",
    };
    let mut parts: Vec<String> = Vec::new();
    for info in runs {
        let text = match scorer_of(info) {
            None => format!("{role} not recorded in summary.json"),
            Some(spec) => {
                let cal: Vec<String> = calibrations
                    .iter()
                    .filter(|c| c.grader == spec)
                    .map(|c| {
                        format!(
                            "calibration on {}: mean AUROC {}, mean ECE {}",
                            c.data.as_deref().unwrap_or("labelled data"),
                            fmt_fig(c.mean_auroc),
                            fmt_fig(c.mean_ece),
                        )
                    })
                    .collect();
                if cal.is_empty() {
                    format!("{role} {spec} (no --calibration report supplied)")
                } else {
                    format!("{role} {spec} ({})", cal.join("; "))
                }
            }
        };
        if !parts.contains(&text) {
            parts.push(text);
        }
    }
    parts.join(" | ")
}

/// Compute the report.
pub fn build(runs: &[RunInput], config: &ReportConfig) -> Report {
    let mut warnings = Vec::new();
    let mut infos = Vec::new();
    let mut estimates = Vec::new();
    for run in runs {
        let (kind, note) = resolve_kind(run);
        warnings.extend(note);
        let (info, est) = compute_run(run, kind, config, &mut warnings);
        infos.push(info);
        estimates.push(est);
    }
    // Suites in order of first appearance; columns = runs of that suite.
    let mut suite_order: Vec<String> = Vec::new();
    for info in &infos {
        if !suite_order.contains(&info.suite) {
            suite_order.push(info.suite.clone());
        }
    }
    let mut models: Vec<ModelAlias> = Vec::new();
    for info in &mut infos {
        let alias = match models.iter().find(|m| m.model == info.model) {
            Some(m) => m.alias.clone(),
            None => {
                let alias = format!("M{}", models.len() + 1);
                models.push(ModelAlias {
                    alias: alias.clone(),
                    model: info.model.clone(),
                });
                alias
            }
        };
        info.alias = alias;
    }
    // Column titles: the model, disambiguated by directory when a suite has it twice.
    for suite in &suite_order {
        let idx: Vec<usize> = (0..infos.len())
            .filter(|&i| infos[i].suite == *suite)
            .collect();
        for &i in &idx {
            let dup = idx
                .iter()
                .filter(|&&j| infos[j].model == infos[i].model)
                .count()
                > 1;
            let mut suffix = String::new();
            if dup {
                suffix = format!(" ({})", infos[i].dir);
            }
            if infos[i].partial {
                suffix.push_str(" [partial]");
            }
            infos[i].column = format!("{}{suffix}", infos[i].model);
            infos[i].short_column = format!("{}{suffix}", infos[i].alias);
        }
    }
    let mut suites = Vec::new();
    for suite in &suite_order {
        let idx: Vec<usize> = (0..infos.len())
            .filter(|&i| infos[i].suite == *suite)
            .collect();
        let kind = infos[idx[0]].kind;
        if idx.iter().any(|&i| infos[i].kind != kind) {
            warnings.push(format!(
                "suite `{suite}`: runs disagree on its kind; the first run's is used for the layout"
            ));
        }
        suites.push(suite_section(suite, kind, &idx, &infos, &estimates, config));
    }
    for c in &config.calibrations {
        if !infos
            .iter()
            .any(|i| scorer_of(i) == Some(c.grader.as_str()))
        {
            warnings.push(format!(
                "calibration {} describes grader `{}`, which no run names as its grader or judge",
                c.file, c.grader
            ));
        }
    }
    let scorecard = scorecard_section(&config.scorecard, &infos, &estimates, &mut warnings);
    let calibration_notes = calibration_notes(&infos, &estimates);
    let mut graders: Vec<GraderEntry> = Vec::new();
    for (run, info) in runs.iter().zip(&infos) {
        let Some(name) = info.grader.as_deref() else {
            continue;
        };
        if info
            .kind
            .is_some_and(|k| corrected::graded_metrics(k).is_empty())
        {
            continue;
        }
        if graders.iter().any(|g| g.grader == name) {
            continue;
        }
        let validation = run.summary.grader_validation.clone();
        graders.push(GraderEntry {
            grader: name.to_string(),
            validation_summary: validation
                .as_ref()
                .map(Validation::summary)
                .unwrap_or_default(),
            validation,
        });
    }
    Report {
        title: config.title.clone(),
        seed: config.seed,
        bootstrap: config.bootstrap,
        confidence: CONFIDENCE,
        runs: infos,
        models,
        suites,
        scorecard,
        calibrations: config.calibrations.clone(),
        calibration_notes,
        graders,
        warnings,
    }
}

/// For every run whose metrics a model scored: whether human labels correct them. Runs are
/// named by their short column (`M1`, …), as in the tables; the Models legend has the full ids.
fn calibration_notes(infos: &[RunInfo], estimates: &[RunEstimates]) -> Vec<String> {
    let mut notes = Vec::new();
    for (info, est) in infos.iter().zip(estimates) {
        let Some(kind) = info.kind else { continue };
        let graded = corrected::graded_metrics(kind);
        match (&est.corrections, kind) {
            (_, SuiteKind::Bbq) => {}
            (None, SuiteKind::Strongreject | SuiteKind::Simpleqa) => notes.push(format!(
                "{} ({}): judge not calibrated on this data; its scores are the judge's own (PPI correction covers grader-scored suites: refusal, xstest).",
                info.short_column, info.suite
            )),
            (None, _) => notes.push(format!(
                "{} ({}): grader not calibrated on this data; {} are the grader's shares, biased by its errors (pass --calibration-set to `arbiter eval run` to correct them).",
                info.short_column,
                info.suite,
                graded.join(", ")
            )),
            (Some(c), _) => {
                let done: Vec<&str> = c.corrected.keys().map(String::as_str).collect();
                let n = info.n_calibration.unwrap_or(0);
                if done.is_empty() {
                    notes.push(format!(
                        "{} ({}): grader not calibrated on this data; its calibration set ({n} labelled samples) corrects none of {} (see the suite's notes).",
                        info.short_column,
                        info.suite,
                        graded.join(", ")
                    ));
                } else {
                    let mut note = format!(
                        "{} ({}): {} corrected by {n} human-labelled samples (PPI++), valid if they were drawn from the same distribution as the run's replies",
                        info.short_column,
                        info.suite,
                        done.join(", ")
                    );
                    if !c.not_corrected.is_empty() {
                        let rest: Vec<&str> = c.not_corrected.keys().map(String::as_str).collect();
                        note.push_str(&format!(
                            "; grader not calibrated on this data for {} (see the suite's notes)",
                            rest.join(", ")
                        ));
                    }
                    note.push('.');
                    notes.push(note);
                }
            }
        }
    }
    notes
}

fn suite_section(
    suite: &str,
    kind: Option<SuiteKind>,
    idx: &[usize],
    infos: &[RunInfo],
    estimates: &[RunEstimates],
    config: &ReportConfig,
) -> SuiteSection {
    let run_infos: Vec<&RunInfo> = idx.iter().map(|&i| &infos[i]).collect();
    let scored = scored_by(kind, &run_infos, &config.calibrations);
    let missing = Estimate::recorded(None);
    let column_values = |get: &dyn Fn(&RunEstimates) -> Option<Estimate>| -> Vec<Estimate> {
        idx.iter()
            .map(|&i| get(&estimates[i]).unwrap_or(missing))
            .collect()
    };
    let mut metrics = Vec::new();
    let defs: Vec<(String, String, Scale)> = match kind {
        Some(k) => headline(k)
            .iter()
            .map(|d| (d.name.to_string(), d.label.to_string(), d.scale))
            .collect(),
        None => {
            let mut names: Vec<String> = Vec::new();
            for &i in idx {
                for n in &estimates[i].order {
                    if !names.contains(n) {
                        names.push(n.clone());
                    }
                }
            }
            names
                .into_iter()
                .map(|n| (n.clone(), n, Scale::Fraction))
                .collect()
        }
    };
    for (name, label, scale) in defs {
        metrics.push(MetricRow {
            values: column_values(&|e| e.overall.get(&name).copied()),
            corrected: idx
                .iter()
                .map(|&i| {
                    estimates[i]
                        .corrections
                        .as_ref()
                        .and_then(|c| c.corrected.get(&name).cloned())
                })
                .collect(),
            metric: name,
            label,
            scale,
            scored_by: scored.clone(),
        });
    }
    let mut breakdowns = Vec::new();
    let mut categories: Vec<&String> = idx
        .iter()
        .flat_map(|&i| estimates[i].by_category.keys())
        .collect();
    categories.sort();
    categories.dedup();
    let cat_metrics: Vec<String> = match kind {
        Some(k) => by_category_metrics(k)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        None => {
            let mut names: Vec<String> = Vec::new();
            for &i in idx {
                for m in estimates[i].by_category.values() {
                    for n in m.keys() {
                        if !names.contains(n) {
                            names.push(n.clone());
                        }
                    }
                }
            }
            names
        }
    };
    for metric in cat_metrics {
        let rows: Vec<BreakdownRow> = categories
            .iter()
            .map(|cat| BreakdownRow {
                label: (*cat).clone(),
                values: column_values(&|e| {
                    e.by_category
                        .get(*cat)
                        .and_then(|m| m.get(&metric))
                        .copied()
                }),
            })
            .filter(|r| r.values.iter().any(|v| v.value.is_some()))
            .collect();
        if !rows.is_empty() {
            breakdowns.push(Breakdown {
                title: format!("{metric} by category"),
                scale: scale_of(kind, &metric),
                metric,
                row_kind: "category".into(),
                rows,
            });
        }
    }
    if kind == Some(SuiteKind::Strongreject) {
        let mut techniques: Vec<String> = idx
            .iter()
            .flat_map(|&i| estimates[i].overall.keys())
            .filter_map(|k| k.strip_prefix("score_by_technique.").map(str::to_string))
            .collect();
        techniques.sort();
        techniques.dedup();
        let rows: Vec<BreakdownRow> = techniques
            .iter()
            .map(|t| BreakdownRow {
                label: t.clone(),
                values: column_values(&|e| {
                    e.overall.get(&format!("score_by_technique.{t}")).copied()
                }),
            })
            .collect();
        if !rows.is_empty() {
            breakdowns.push(Breakdown {
                title: "StrongREJECT score by jailbreak technique (lower is safer)".into(),
                metric: "score_by_technique".into(),
                scale: Scale::Fraction,
                row_kind: "technique".into(),
                rows,
            });
        }
    }
    let mut notes = Vec::new();
    for info in &run_infos {
        if info.partial {
            notes.push(format!(
                "{} is a partial run: {} of {} items answered, {} failed, {} pending; its numbers describe the answered items only.",
                info.column, info.n_ok, info.n_samples, info.n_errors, info.n_pending
            ));
        } else if info.n_errors > 0 {
            notes.push(format!(
                "{}: {} of {} items failed and are left out of its numbers (rerun with --retry-errors).",
                info.column, info.n_errors, info.n_samples
            ));
        }
        if info.n_unscored > 0 && info.n_unscored >= info.n_ok {
            notes.push(format!(
                "{}: none of its {} answered items could be scored (unusable grader or judge output, or unreadable answers), so every metric is – (no scored items).",
                info.column, info.n_ok
            ));
        } else if info.n_unscored > 0 {
            notes.push(format!(
                "{}: {} answered items could not be scored (unusable grader or judge output, or unreadable answers) and are left out.",
                info.column, info.n_unscored
            ));
        }
        if !info.intervals {
            notes.push(format!(
                "{}: values as recorded in {}/summary.json, without intervals.",
                info.column, info.dir
            ));
        }
    }
    for &i in idx {
        if let Some(c) = &estimates[i].corrections {
            for (metric, why) in &c.not_corrected {
                notes.push(format!(
                    "{}: {metric} not corrected by the calibration set: {why}.",
                    infos[i].column
                ));
            }
        }
    }
    SuiteSection {
        suite: suite.to_string(),
        kind,
        description: Suite::built_in(suite)
            .map(|s| s.description)
            .unwrap_or_default(),
        runs: idx.to_vec(),
        columns: run_infos.iter().map(|i| i.column.clone()).collect(),
        short_columns: run_infos.iter().map(|i| i.short_column.clone()).collect(),
        scorers: run_infos
            .iter()
            .map(|i| scored_by(kind, &[*i], &config.calibrations))
            .collect(),
        metrics,
        breakdowns,
        notes,
    }
}

/// `{"metrics": {…}, "by_category": {…}}` per suite for one model, with `pick` choosing the
/// number (point, interval low or high) of each estimate; the shape `scorecard::evaluate` reads.
fn summaries_for(
    runs: &[usize],
    infos: &[RunInfo],
    estimates: &[RunEstimates],
    pick: fn(&Estimate) -> Option<f64>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for &i in runs {
        if out.contains_key(&infos[i].suite) {
            continue;
        }
        let e = &estimates[i];
        let metrics: Map<String, Value> = e
            .overall
            .iter()
            .filter_map(|(k, v)| pick(v).map(|x| (k.clone(), json!(x))))
            .collect();
        let by_category: Map<String, Value> = e
            .by_category
            .iter()
            .map(|(c, m)| {
                let inner: Map<String, Value> = m
                    .iter()
                    .filter_map(|(k, v)| pick(v).map(|x| (k.clone(), json!(x))))
                    .collect();
                (c.clone(), Value::Object(inner))
            })
            .collect();
        out.insert(
            infos[i].suite.clone(),
            json!({"metrics": metrics, "by_category": by_category}),
        );
    }
    out
}

fn lookup_estimate(estimates: &RunEstimates, metric: &str) -> Option<Estimate> {
    match metric.strip_prefix("by_category.") {
        Some(rest) => {
            let (cat, m) = rest.rsplit_once('.')?;
            estimates.by_category.get(cat)?.get(m).copied()
        }
        None => estimates.overall.get(metric).copied(),
    }
}

fn scorecard_section(
    spec: &ScorecardSpec,
    infos: &[RunInfo],
    estimates: &[RunEstimates],
    warnings: &mut Vec<String>,
) -> ScorecardSection {
    let mut models: Vec<&str> = Vec::new();
    for i in infos {
        if !models.contains(&i.model.as_str()) {
            models.push(&i.model);
        }
    }
    let mut out = Vec::new();
    for model in models {
        let runs: Vec<usize> = (0..infos.len())
            .filter(|&i| infos[i].model == model)
            .collect();
        let mut seen: Vec<&str> = Vec::new();
        for &i in &runs {
            if seen.contains(&infos[i].suite.as_str()) {
                warnings.push(format!(
                    "model {model} has several runs of suite `{}`; the scorecard uses the first ({})",
                    infos[i].suite,
                    runs.iter()
                        .find(|&&j| infos[j].suite == infos[i].suite)
                        .map_or("", |&j| infos[j].dir.as_str())
                ));
            } else {
                seen.push(&infos[i].suite);
            }
        }
        let point = scorecard::evaluate(spec, &summaries_for(&runs, infos, estimates, |e| e.value));
        let low = scorecard::evaluate(
            spec,
            &summaries_for(&runs, infos, estimates, |e| e.ci.map(|c| c[0])),
        );
        let high = scorecard::evaluate(
            spec,
            &summaries_for(&runs, infos, estimates, |e| e.ci.map(|c| c[1])),
        );
        let mut categories = Vec::new();
        let (mut best, mut worst): (Option<Level>, Option<Level>) = (None, None);
        for (k, c) in spec.category.iter().enumerate() {
            let estimate = runs
                .iter()
                .find(|&&i| infos[i].suite == c.suite)
                .and_then(|&i| lookup_estimate(&estimates[i], &c.metric))
                .filter(|e| e.value.is_some());
            let level = point.categories[k].level;
            let level_range = match (level, low.categories[k].level, high.categories[k].level) {
                (Some(_), Some(a), Some(b)) => Some([a.min(b), a.max(b)]),
                _ => None,
            };
            if let Some(l) = level {
                let [a, b] = level_range.unwrap_or([l, l]);
                best = Some(best.map_or(a, |x| x.max(a)));
                worst = Some(worst.map_or(b, |x| x.max(b)));
            }
            categories.push(ScorecardEntry {
                estimate,
                level,
                level_range,
            });
        }
        out.push(ModelScorecard {
            model: model.to_string(),
            n_evaluated: categories.iter().filter(|c| c.level.is_some()).count(),
            categories,
            overall: point.overall,
            overall_range: best.zip(worst).map(|(a, b)| [a, b]),
            deployable: point.deployable,
            developable: point.developable,
        });
    }
    ScorecardSection {
        rule: scorecard::RULE.to_string(),
        categories: spec.category.clone(),
        models: out,
    }
}

/// The three renderings of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// GitHub-flavoured Markdown.
    pub markdown: String,
    /// A self-contained HTML page.
    pub html: String,
    /// Every number of the page, machine-readable.
    pub json: Value,
}

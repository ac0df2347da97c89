//! `arbiter rbr …`: classify, fit, score, eval, metrics, report, and the whole pipeline (`run`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use arbiter_core::jsonl::{Located, write_line};
use arbiter_core::{GradeRecord, RecordError, Sample, SampleId};
use arbiter_graders::Grader;
use arbiter_rbr::metrics::{self, Calibration, MetricInput, MetricsReport};
use arbiter_rbr::pipeline::{self, Prepared};
use arbiter_rbr::report::{self, ReportInput, ReportRow};
use arbiter_rbr::reward::{
    self, ClassPrior, FitConfig, PairMode, RankingEval, RewardExample, RewardWeights,
};
use arbiter_rbr::{Classification, Policy};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use crate::grade_cmd::{BackendFlags, CellFailures, grade_all};
use crate::input::{self, FeatureSource, GradeIndex, Problems};

/// The `rbr` subcommands.
#[derive(Debug, Subcommand)]
pub enum RbrCommand {
    /// Print each sample's class and class probabilities as JSONL, in input order.
    Classify {
        #[command(flatten)]
        data: DataArgs,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Fit reward weights on labelled samples and write them as JSON.
    Fit {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        fit: FitArgs,
        /// Where to write the weights (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Also write the training log here (JSONL: group, step, loss, valid_loss, frac_clipped).
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Print each sample's reward as JSONL, in input order.
    Score {
        #[command(flatten)]
        data: DataArgs,
        /// Weights written by `arbiter rbr fit`.
        #[arg(long)]
        weights: PathBuf,
        /// Metadata field holding a base reward-model score to add (default: none, RBR only).
        #[arg(long)]
        base_reward: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Ranking error of fitted weights on labelled samples, per response type.
    Eval {
        #[command(flatten)]
        data: DataArgs,
        /// Weights written by `arbiter rbr fit`.
        #[arg(long)]
        weights: PathBuf,
        /// Metadata field holding a base reward-model score (pairs then stay within a prompt).
        #[arg(long)]
        base_reward: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Exit with status 1 if any response type's error rate exceeds this (e.g. 0.01).
        #[arg(long)]
        max_error_rate: Option<f64>,
    },
    /// Not-Unsafe, Not-Overrefuse, their F1 and Hard-Refusal-Style, overall and per category.
    Metrics {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        boot: BootstrapArgs,
        #[command(flatten)]
        calibration: CalibrationArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Write report.md, report.html and report.json for a data set.
    Report {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        boot: BootstrapArgs,
        #[command(flatten)]
        calibration: CalibrationArgs,
        /// Weights to score and rank with (optional).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Report title.
        #[arg(long, default_value = "Arbiter RBR report")]
        title: String,
    },
    /// Best-of-N: for each prompt with several completions, how often the highest-reward one is
    /// harmless (or in the best human class present), against a random pick and the grader's
    /// argmax class, with bootstrap intervals.
    Select(crate::select_cmd::SelectArgs),
    /// The whole pipeline on one data set: grade (embedded grader by default), classify, fit,
    /// score, evaluate, report.
    Run {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        fit: FitArgs,
        #[command(flatten)]
        boot: BootstrapArgs,
        #[command(flatten)]
        calibration: CalibrationArgs,
        /// Held-out samples to score, evaluate and report on (default: the fitting data itself).
        #[arg(long)]
        test: Option<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Flags every data-reading subcommand shares.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Policy file (TOML); the built-in default policy when absent.
    #[arg(long)]
    pub(crate) policy: Option<PathBuf>,
    /// Proposition values: `human` (the samples' own labels), `grader` (grade the samples now
    /// with `--grader`), or a grades JSONL file of P(yes) per proposition. Default: `grader`
    /// for `rbr run`, `human` for the other subcommands.
    #[arg(long, value_parser = FeatureSource::parse)]
    pub(crate) features: Option<FeatureSource>,
    #[command(flatten)]
    pub(crate) backend: BackendFlags,
    /// Report invalid lines on standard error and process the rest instead of stopping.
    #[arg(long)]
    pub(crate) skip_invalid: bool,
    /// Accept an input without samples (empty output) instead of failing.
    #[arg(long)]
    pub(crate) allow_empty: bool,
    /// Longest sample line read, in bytes; a longer one is a bad line (each sample is parsed
    /// whole in memory).
    #[arg(long, default_value_t = arbiter_core::jsonl::DEFAULT_MAX_LINE_BYTES)]
    pub(crate) max_sample_bytes: usize,
    /// Samples (JSONL; `-` for standard input).
    pub(crate) file: PathBuf,
}

/// Optimiser flags.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Full-batch optimisation steps.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Seed for the train/valid split and pair sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of pairs held out to report a validation loss.
    #[arg(long, default_value_t = 0.05)]
    valid_fraction: f64,
    /// At most this many pairs per weight group (a seeded sample above it).
    #[arg(long, default_value_t = 500_000)]
    max_pairs: usize,
    /// Starting weights of the class-probability features.
    #[arg(long, value_enum, default_value_t = PriorArg::Rank)]
    class_prior: PriorArg,
    /// Metadata field holding a base reward-model score; pairs then stay within a prompt.
    #[arg(long)]
    base_reward: Option<String>,
}

/// Bootstrap flags.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Bootstrap replicates for the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    pub(crate) bootstrap: usize,
    /// Bootstrap seed.
    #[arg(long = "bootstrap-seed", default_value_t = 0)]
    pub(crate) bootstrap_seed: u64,
}

/// Human labels for measuring a grader.
#[derive(Debug, Args)]
pub struct CalibrationArgs {
    /// Human-labelled samples (same JSONL shape, every sample with the labels the metrics need)
    /// to measure and correct the grader with: the grader grades them too, and each metric is
    /// reported from the grader, from the human labels and corrected (PPI++). Needs grader
    /// features (`--features grader`, or a grades file that also grades these ids). Rows of the
    /// data file that carry human labels are used the same way without this flag.
    #[arg(long)]
    calibration_set: Option<PathBuf>,
}

impl CalibrationArgs {
    /// Fail before any work when a calibration set would have no grader to measure.
    fn check(&self, data: &DataArgs, default: &FeatureSource) -> Result<()> {
        if self.calibration_set.is_some()
            && matches!(
                data.features.as_ref().unwrap_or(default),
                FeatureSource::Human
            )
        {
            bail!(
                "--calibration-set measures a grader, but the features are human labels: pass --features grader (or a grades file that also grades the calibration samples)"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PriorArg {
    /// All weights start at zero (upstream fitter).
    Zero,
    /// Class weights start in policy order (unseen classes stay ranked).
    Rank,
}

/// Output format of summary commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Text,
    /// JSON for programs.
    Json,
}

impl FitArgs {
    fn config(&self) -> Result<FitConfig> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr must be a positive number");
        }
        if !(0.0..1.0).contains(&self.valid_fraction) {
            bail!("--valid-fraction must be in [0, 1)");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay must be ≥ 0");
        }
        Ok(FitConfig {
            lr: self.lr,
            weight_decay: self.weight_decay,
            steps: self.steps,
            seed: self.seed,
            valid_fraction: self.valid_fraction,
            max_pairs: self.max_pairs,
            log_every: 50,
            class_prior: match self.class_prior {
                PriorArg::Zero => ClassPrior::Zero,
                PriorArg::Rank => ClassPrior::Rank,
            },
        })
    }
}

/// Where a command's proposition values come from, resolved once (the grader is loaded once
/// even when several files are graded).
pub(crate) struct Features {
    source: FeatureSource,
    grader: Option<Box<dyn Grader + Send + Sync>>,
    /// `--max-failed`: share of grader cells allowed without a probability.
    max_failed: f64,
    /// Samples left out, per input file, because the grader gave no probability for one of
    /// their propositions (only under `--max-failed`); the report shows its file's count.
    pub(crate) unscored: std::cell::RefCell<std::collections::BTreeMap<PathBuf, usize>>,
}

impl Features {
    /// Resolve `--features` (or `default` when absent); load the grader for `policy` if it is
    /// needed.
    pub(crate) fn new(
        data: &DataArgs,
        default: FeatureSource,
        policy: &Policy,
    ) -> Result<Features> {
        let source = data.features.clone().unwrap_or(default);
        let grader = match source {
            FeatureSource::Grader => Some(data.backend.build(policy.propositions())?),
            _ => None,
        };
        Ok(Features {
            source,
            grader,
            max_failed: data.backend.max_failed,
            unscored: Default::default(),
        })
    }

    /// The features are a grader's probabilities (made now or read from a grades file).
    fn graded(&self) -> bool {
        !matches!(self.source, FeatureSource::Human)
    }

    /// The loaded grader's shipped validation, one line per event.
    fn validation_lines(&self) -> Vec<String> {
        self.grader
            .as_deref()
            .and_then(|g| g.validation())
            .map(|v| {
                v.summary()
                    .into_iter()
                    .map(|line| format!("{line} ({})", v.method))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// For reports.
    pub(crate) fn describe(&self) -> String {
        match (&self.source, &self.grader) {
            (FeatureSource::Human, _) => "human labels".to_string(),
            (FeatureSource::Grades(p), _) => {
                format!("grader probabilities from {}", p.display())
            }
            (FeatureSource::Grader, Some(g)) => format!("grader probabilities ({})", g.describe()),
            (FeatureSource::Grader, None) => "grader probabilities".to_string(),
        }
    }
}

/// Per-sample proposition values other than the samples' own labels.
enum Grades {
    /// Human labels.
    None,
    /// A grades file, matched by id.
    File(GradeIndex),
    /// Grades made now, one per sample in file order.
    Made(Vec<GradeRecord>),
}

/// Load the policy and prepare every sample of `file`, with the bad-line policy of `data`.
fn load_rows(
    data: &DataArgs,
    file: &Path,
    base_reward: Option<&str>,
) -> Result<(Policy, Problems, Vec<Prepared>, Features)> {
    let policy = input::load_policy(data.policy.as_deref())?;
    let features = Features::new(data, FeatureSource::Human, &policy)?;
    let mut problems = Problems::new(data.skip_invalid)
        .allowing_empty(data.allow_empty)
        .with_line_limit(data.max_sample_bytes);
    let samples = input::read_samples(file, &mut problems)?;
    let rows = prepare(
        &policy,
        &features,
        file,
        &samples,
        base_reward,
        &mut problems,
        None,
    )?;
    Ok((policy, problems, rows, features))
}

/// Classify every sample; bad samples fail the command or are skipped and reported. When the
/// features come from a grader, the samples are graded first (grades written to `grades_out`
/// when given).
pub(crate) fn prepare(
    policy: &Policy,
    features: &Features,
    file: &Path,
    samples: &[Located<Sample>],
    base_reward: Option<&str>,
    problems: &mut Problems,
    grades_out: Option<&Path>,
) -> Result<Vec<Prepared>> {
    let grades = match (&features.source, &features.grader) {
        (FeatureSource::Human, _) => Grades::None,
        (FeatureSource::Grades(p), _) => Grades::File(GradeIndex::read(p, problems)?),
        (FeatureSource::Grader, grader) => {
            let grader = grader
                .as_deref()
                .context("internal: features come from a grader but none was loaded")?;
            let records: Vec<Sample> = samples.iter().map(|l| l.record.clone()).collect();
            let made = grade_samples(grader, policy, &records)?;
            if let Some(path) = grades_out {
                let mut w = input::create(Some(path))?;
                for g in &made {
                    write_line(&mut w, g)?;
                }
                w.finish()?;
            }
            Grades::Made(made)
        }
    };
    let source = file.display().to_string();
    // A cell the grader gave no probability for (a failed request, an answer without a yes/no
    // token) is the grader's failure, not the input's: it fails the command unless
    // `--max-failed` allows it, and then its sample is left out and counted.
    let mut failures = CellFailures::default();
    let grader_failed = |g: &GradeRecord| {
        policy
            .propositions()
            .iter()
            .any(|p| !g.propositions.contains_key(&p.name) && g.flags.contains_key(&p.name))
    };
    let mut failed_samples = vec![false; samples.len()];
    for (k, located) in samples.iter().enumerate() {
        let grade = match &grades {
            Grades::None => None,
            Grades::File(index) => index.get(&located.record.id).ok(),
            Grades::Made(made) => made.get(k),
        };
        if let Some(g) = grade.filter(|g| grader_failed(g)) {
            failures.add(g, policy.propositions());
            failed_samples[k] = true;
        } else if grade.is_some() {
            failures.cells += policy.propositions().len();
        }
    }
    let grader = match (&features.source, &features.grader) {
        (FeatureSource::Grades(p), _) => format!("that wrote {}", p.display()),
        (_, Some(g)) => g.describe(),
        _ => "(unknown)".to_string(),
    };
    if failures.exceed(features.max_failed) {
        return Err(crate::Failed(format!(
            "{}: {}; nothing was classified (--max-failed FRACTION leaves such samples out instead)",
            file.display(),
            failures.describe(&grader)
        ))
        .into());
    }
    if failures.samples > 0 {
        eprintln!(
            "arbiter: {} sample(s) of {} left out and counted as unscored: {}",
            failures.samples,
            file.display(),
            failures.describe(&grader)
        );
        features
            .unscored
            .borrow_mut()
            .insert(file.to_path_buf(), failures.samples);
    }
    let mut out = Vec::with_capacity(samples.len());
    for (k, located) in samples.iter().enumerate() {
        if failed_samples[k] {
            continue;
        }
        let grade = match &grades {
            Grades::None => Ok(None),
            Grades::File(index) => index.get(&located.record.id).map(Some),
            Grades::Made(made) => Ok(made.get(k)),
        };
        let prepared =
            grade.and_then(|g| pipeline::prepare(policy, &located.record, g, base_reward));
        match prepared {
            Ok(p) => out.push(p),
            Err(e) => problems.report(RecordError::new(&source, located.line, e))?,
        }
    }
    Ok(out)
}

/// Grade every sample against all of the policy's propositions, with a progress bar on a
/// terminal.
fn grade_samples(
    grader: &dyn Grader,
    policy: &Policy,
    samples: &[Sample],
) -> Result<Vec<GradeRecord>> {
    let mut made = Vec::with_capacity(samples.len());
    grade_all(
        grader,
        samples,
        policy.propositions(),
        None,
        &mut |grades| {
            made.extend(grades.iter().map(|g| g.to_record()));
            Ok(())
        },
    )?;
    eprintln!(
        "arbiter: graded {} samples × {} propositions with {}",
        samples.len(),
        policy.propositions().len(),
        grader.describe()
    );
    Ok(made)
}

/// The `--calibration-set`'s samples, read once (`None` without the flag).
fn read_calibration_set(
    args: &CalibrationArgs,
    problems: &mut Problems,
) -> Result<Option<(PathBuf, Vec<Located<Sample>>)>> {
    args.calibration_set
        .as_ref()
        .map(|path| Ok((path.clone(), input::read_samples(path, problems)?)))
        .transpose()
}

/// Grade and classify the `--calibration-set`'s samples; every sample must carry human labels
/// and none may also be one of the `data` rows (it would count twice).
fn load_calibration(
    policy: &Policy,
    features: &Features,
    set: Option<&(PathBuf, Vec<Located<Sample>>)>,
    data: &[Prepared],
    problems: &mut Problems,
    grades_out: Option<&Path>,
) -> Result<Vec<Prepared>> {
    let Some((path, samples)) = set else {
        return Ok(Vec::new());
    };
    if !features.graded() {
        bail!(
            "--calibration-set measures a grader, but the features are human labels: pass --features grader (or a grades file that also grades the calibration samples)"
        );
    }
    let rows = prepare(policy, features, path, samples, None, problems, grades_out)?;
    if let Some(r) = rows.iter().find(|r| r.human.is_none()) {
        bail!(
            "{}: sample {} has no human labels for every proposition the metrics need; each calibration sample must be fully labelled",
            path.display(),
            r.id
        );
    }
    if rows.is_empty() {
        bail!("{}: no calibration samples", path.display());
    }
    let ids: std::collections::HashSet<&SampleId> = data.iter().map(|r| &r.id).collect();
    if let Some(r) = rows.iter().find(|r| ids.contains(&r.id)) {
        bail!(
            "{}: sample {} is also in the data; a sample is either calibration or data (label it in place instead)",
            path.display(),
            r.id
        );
    }
    Ok(rows)
}

/// The confidence level of the corrected intervals.
const CALIBRATION_LEVEL: f64 = 0.95;

/// The grader measured against the human labels of `rows` that carry them and of the
/// calibration samples; `None` for human features or when nothing is labelled.
fn calibration(
    policy: &Policy,
    features: &Features,
    rows: &[Prepared],
    extra: &[Prepared],
) -> Result<Option<Calibration>> {
    if !features.graded() {
        return Ok(None);
    }
    let cal_rows = pipeline::calibration_rows(policy, rows, extra)?;
    metrics::calibrate(policy, &cal_rows, CALIBRATION_LEVEL).map_err(|e| anyhow::anyhow!("{e}"))
}

fn class_probs_json(policy: &Policy, c: &Classification) -> Value {
    let mut m = Map::new();
    for (name, p) in policy.classes().iter().zip(&c.class_probs) {
        m.insert(name.clone(), json!(p));
    }
    Value::Object(m)
}

pub(crate) fn read_weights(path: &Path, policy: &Policy) -> Result<RewardWeights> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let model: RewardWeights = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a weights file written by `arbiter rbr fit`",
            path.display()
        )
    })?;
    model
        .check_policy(policy)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(model)
}

fn metric_inputs(policy: &Policy, rows: &[Prepared]) -> Result<Vec<MetricInput>> {
    Ok(pipeline::metric_inputs(policy, rows)?)
}

pub(crate) fn scores(
    policy: &Policy,
    model: &RewardWeights,
    rows: &[Prepared],
) -> Result<Vec<f64>> {
    Ok(pipeline::scores(policy, model, rows)?)
}

fn ranking(
    policy: &Policy,
    model: &RewardWeights,
    rows: &[Prepared],
    mode: PairMode,
) -> Result<Vec<RankingEval>> {
    Ok(pipeline::ranking(policy, model, rows, mode)?)
}

fn print_ranking(evals: &[RankingEval], out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "{:<15} {:>8} {:>8} {:>11} {:>12} {:>17}",
        "response_type", "examples", "pairs", "error_rate", "ideal_pairs", "ideal_error_rate"
    )?;
    for e in evals {
        writeln!(
            out,
            "{:<15} {:>8} {:>8} {:>11} {:>12} {:>17}",
            e.response_type.as_str(),
            e.n_examples,
            e.n_pairs,
            arbiter_report::fmt_opt(e.error_rate, 4),
            e.n_ideal_pairs,
            arbiter_report::fmt_opt(e.ideal_error_rate, 4)
        )?;
    }
    Ok(())
}

fn print_metrics(report: &MetricsReport, out: &mut dyn Write) -> Result<()> {
    let cell = |m: &metrics::MetricValue| match (m.value, m.ci) {
        (Some(v), Some([lo, hi])) => format!("{v:6.2} [{lo:6.2}, {hi:6.2}]"),
        (Some(v), None) => format!("{v:6.2}"),
        _ => "–".to_string(),
    };
    writeln!(
        out,
        "{:<10} {:>5}  {:<24} {:<24} {:<24} {:<24}",
        "slice", "n", "not_unsafe", "not_overrefuse", "f1", "hard_refusal_style"
    )?;
    let mut line = |name: &str, m: &metrics::SafetyMetrics| {
        writeln!(
            out,
            "{:<10} {:>5}  {:<24} {:<24} {:<24} {:<24}",
            name,
            m.n,
            cell(&m.not_unsafe),
            cell(&m.not_overrefuse),
            cell(&m.f1),
            cell(&m.hard_refusal_style)
        )
    };
    line("overall", &report.overall)?;
    for (c, m) in &report.by_category {
        line(c, m)?;
    }
    Ok(())
}

/// Grader, human-label and corrected value of every metric, overall and per category.
fn print_calibration(report: &MetricsReport, cal: &Calibration, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "\ngrader vs human labels: {} labelled, {} unlabelled; corrected = PPI++, {:.0}% normal intervals{}",
        cal.n_labelled,
        cal.n_unlabelled,
        100.0 * cal.level,
        if cal.n_unlabelled == 0 {
            " (all rows human-labelled: corrected = human-label estimate)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "{:<10} {:<19} {:<24} {:<24} {:<24} {:>5} {:>5} {:>7}  note",
        "slice", "metric", "grader", "human", "corrected", "λ", "n_lab", "n_unlab"
    )?;
    let cell = |m: Option<metrics::IntervalValue>| match m {
        Some(v) => format!("{:6.2} [{:6.2}, {:6.2}]", v.value, v.ci[0], v.ci[1]),
        None => "–".to_string(),
    };
    let raw = |m: &metrics::MetricValue| match (m.value, m.ci) {
        (Some(v), Some([lo, hi])) => format!("{v:6.2} [{lo:6.2}, {hi:6.2}]"),
        (Some(v), None) => format!("{v:6.2}"),
        _ => "–".to_string(),
    };
    let slices = std::iter::once(("overall", Some(&report.overall), &cal.overall)).chain(
        cal.by_category
            .iter()
            .map(|(c, s)| (c.as_str(), report.by_category.get(c), s)),
    );
    for (name, grader, corrected) in slices {
        let metrics = [
            (
                "not_unsafe",
                grader.map(|g| &g.not_unsafe),
                &corrected.not_unsafe,
            ),
            (
                "not_overrefuse",
                grader.map(|g| &g.not_overrefuse),
                &corrected.not_overrefuse,
            ),
            ("f1", grader.map(|g| &g.f1), &corrected.f1),
            (
                "hard_refusal_style",
                grader.map(|g| &g.hard_refusal_style),
                &corrected.hard_refusal_style,
            ),
        ];
        for (metric, g, c) in metrics {
            writeln!(
                out,
                "{:<10} {:<19} {:<24} {:<24} {:<24} {:>5} {:>5} {:>7}  {}",
                name,
                metric,
                g.map_or_else(|| "–".to_string(), raw),
                cell(c.human),
                cell(c.corrected),
                arbiter_report::fmt_opt(c.lambda, 2),
                c.n_labelled,
                c.n_unlabelled,
                c.note.as_deref().unwrap_or("")
            )?;
        }
    }
    Ok(())
}

fn fit_and_log(policy: &Policy, rows: &[Prepared], fit: &FitArgs) -> Result<reward::FitOutcome> {
    let config = fit.config()?;
    let mode = if fit.base_reward.is_some() {
        PairMode::SamePrompt
    } else {
        PairMode::WithinResponseType
    };
    let examples: Vec<RewardExample> = rows.iter().map(|r| r.example.clone()).collect();
    if examples.iter().all(|e| e.target_class.is_none()) {
        bail!(
            "no sample has a known class (complete human labels or a `class` field): nothing to fit on"
        );
    }
    let outcome = reward::fit(policy, &examples, mode, &config);
    for (group, w) in &outcome.model.groups {
        let last = outcome.log.iter().rfind(|l| l.group == *group);
        match last {
            Some(l) => eprintln!(
                "fit {group}: {} pairs, loss {:.4}, valid loss {}, {:.1}% of pairs past the margin",
                w.n_pairs,
                l.loss,
                arbiter_report::fmt_opt(l.valid_loss, 4),
                100.0 * l.frac_clipped
            ),
            None => eprintln!("fit {group}: no ordered pairs; weights keep their starting values"),
        }
    }
    Ok(outcome)
}

fn write_log(path: &Path, outcome: &reward::FitOutcome) -> Result<()> {
    let mut out = input::create(Some(path))?;
    for entry in &outcome.log {
        write_line(&mut out, entry)?;
    }
    out.finish()
}

fn write_scores(
    policy: &Policy,
    model: &RewardWeights,
    rows: &[Prepared],
    out: &mut dyn Write,
) -> Result<Vec<f64>> {
    let s = scores(policy, model, rows)?;
    for (r, total) in rows.iter().zip(&s) {
        write_line(
            out,
            &json!({
                "id": r.id,
                "response_type": r.classification.response_type,
                "class": policy.classes()[r.classification.class],
                "reward": total,
                "rbr_reward": total - r.example.base_reward,
                "base_reward": r.example.base_reward,
            }),
        )?;
    }
    Ok(s)
}

/// What `write_report` needs besides the rows.
struct ReportJob<'a> {
    features: &'a Features,
    /// Labelled samples from `--calibration-set`, graded like the rows.
    calibration: &'a [Prepared],
    file: &'a Path,
    boot: &'a BootstrapArgs,
    model: Option<(&'a RewardWeights, PairMode)>,
    ranking_note: Option<String>,
    out_dir: &'a Path,
    title: &'a str,
}

fn write_report(policy: &Policy, rows: &[Prepared], job: ReportJob<'_>) -> Result<()> {
    let ReportJob {
        features,
        calibration: calibration_set,
        file,
        boot,
        model,
        ranking_note,
        out_dir,
        title,
    } = job;
    let inputs = metric_inputs(policy, rows)?;
    let m = metrics::compute(&inputs, boot.bootstrap, boot.bootstrap_seed);
    let cal = calibration(policy, features, rows, calibration_set)?;
    let (rewards, evals) = match model {
        Some((model, mode)) => {
            let s = scores(policy, model, rows)?;
            let has_targets = rows.iter().any(|r| r.example.target_class.is_some());
            let evals = has_targets
                .then(|| ranking(policy, model, rows, mode))
                .transpose()?;
            (s.into_iter().map(Some).collect(), evals)
        }
        None => (vec![None; rows.len()], None),
    };
    let report_rows: Vec<ReportRow> = rows
        .iter()
        .zip(rewards)
        .map(|(r, reward)| ReportRow {
            response_type: r.classification.response_type,
            class: r.classification.class,
            human_class: r.example.target_class,
            reward,
        })
        .collect();
    let rendered = report::render(
        policy,
        &ReportInput {
            title: title.to_string(),
            data_source: file.display().to_string(),
            features: features.describe(),
            rows: &report_rows,
            metrics: &m,
            ranking: evals.as_deref(),
            ranking_note,
            graded: features.graded(),
            calibration: cal.as_ref(),
            grader_validation: features.validation_lines(),
            unscored: features.unscored.borrow().get(file).copied().unwrap_or(0),
        },
    );
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    input::write_file(&out_dir.join("report.md"), &rendered.markdown)?;
    input::write_file(&out_dir.join("report.html"), &rendered.html)?;
    input::write_file(
        &out_dir.join("report.json"),
        &(serde_json::to_string_pretty(&rendered.json)? + "\n"),
    )?;
    Ok(())
}

/// Run one `rbr` subcommand.
pub fn run(cmd: RbrCommand) -> Result<ExitCode> {
    match cmd {
        RbrCommand::Select(args) => return crate::select_cmd::run(args),
        RbrCommand::Classify { data, out } => {
            if let Some(o) = &out {
                input::check_distinct(&[("input", &data.file)], &[("--out", o)])?;
            }
            let (policy, problems, rows, _) = load_rows(&data, &data.file, None)?;
            let mut w = input::create(out.as_deref())?;
            for r in &rows {
                write_line(
                    &mut w,
                    &json!({
                        "id": r.id,
                        "response_type": r.classification.response_type,
                        "class": policy.classes()[r.classification.class],
                        "class_probs": class_probs_json(&policy, &r.classification),
                    }),
                )?;
            }
            w.finish()?;
            problems.summarise();
        }
        RbrCommand::Fit {
            data,
            fit,
            out,
            log,
        } => {
            let mut outputs = vec![("--out", out.as_path())];
            if let Some(l) = &log {
                outputs.push(("--log", l.as_path()));
            }
            input::check_distinct(&[("input", &data.file)], &outputs)?;
            let (policy, problems, rows, _) =
                load_rows(&data, &data.file, fit.base_reward.as_deref())?;
            let outcome = fit_and_log(&policy, &rows, &fit)?;
            input::write_file(
                &out,
                &(serde_json::to_string_pretty(&outcome.model)? + "\n"),
            )?;
            if let Some(log) = log {
                write_log(&log, &outcome)?;
            }
            problems.summarise();
        }
        RbrCommand::Score {
            data,
            weights,
            base_reward,
            out,
        } => {
            if let Some(o) = &out {
                input::check_distinct(
                    &[("input", &data.file), ("--weights", &weights)],
                    &[("--out", o)],
                )?;
            }
            let (policy, problems, rows, _) = load_rows(&data, &data.file, base_reward.as_deref())?;
            let model = read_weights(&weights, &policy)?;
            let mut w = input::create(out.as_deref())?;
            write_scores(&policy, &model, &rows, &mut w)?;
            w.finish()?;
            problems.summarise();
        }
        RbrCommand::Eval {
            data,
            weights,
            base_reward,
            format,
            max_error_rate,
        } => {
            let (policy, problems, rows, _) = load_rows(&data, &data.file, base_reward.as_deref())?;
            let model = read_weights(&weights, &policy)?;
            let mode = if base_reward.is_some() {
                PairMode::SamePrompt
            } else {
                PairMode::WithinResponseType
            };
            let evals = ranking(&policy, &model, &rows, mode)?;
            let mut w = input::create(None)?;
            match format {
                Format::Json => {
                    serde_json::to_writer_pretty(&mut w, &json!({ "ranking": evals }))?;
                    writeln!(w)?;
                }
                Format::Text => print_ranking(&evals, &mut w)?,
            }
            w.finish()?;
            problems.summarise();
            if let Some(limit) = max_error_rate
                && evals
                    .iter()
                    .any(|e| e.error_rate.is_some_and(|r| r > limit))
            {
                eprintln!("arbiter: an error rate exceeds {limit}");
                return Ok(ExitCode::from(1));
            }
        }
        RbrCommand::Metrics {
            data,
            boot,
            calibration: cal_args,
            format,
        } => {
            cal_args.check(&data, &FeatureSource::Human)?;
            let (policy, mut problems, rows, features) = load_rows(&data, &data.file, None)?;
            let set = read_calibration_set(&cal_args, &mut problems)?;
            let extra =
                load_calibration(&policy, &features, set.as_ref(), &rows, &mut problems, None)?;
            let inputs = metric_inputs(&policy, &rows)?;
            let report = metrics::compute(&inputs, boot.bootstrap, boot.bootstrap_seed);
            let cal = calibration(&policy, &features, &rows, &extra)?;
            let mut w = input::create(None)?;
            match format {
                Format::Json => {
                    let mut value = serde_json::to_value(&report)?;
                    if features.graded()
                        && let Value::Object(map) = &mut value
                    {
                        map.insert("calibration".into(), serde_json::to_value(&cal)?);
                        if cal.is_none() {
                            map.insert("notes".into(), json!([report::UNCALIBRATED_NOTE]));
                        }
                    }
                    serde_json::to_writer_pretty(&mut w, &value)?;
                    writeln!(w)?;
                }
                Format::Text => {
                    print_metrics(&report, &mut w)?;
                    match &cal {
                        Some(cal) => print_calibration(&report, cal, &mut w)?,
                        None if features.graded() => {
                            writeln!(w, "\nwarning: {}", report::UNCALIBRATED_NOTE)?
                        }
                        None => {}
                    }
                }
            }
            w.finish()?;
            problems.summarise();
        }
        RbrCommand::Report {
            data,
            boot,
            calibration: cal_args,
            weights,
            out,
            title,
        } => {
            cal_args.check(&data, &FeatureSource::Human)?;
            let (policy, mut problems, rows, features) = load_rows(&data, &data.file, None)?;
            let set = read_calibration_set(&cal_args, &mut problems)?;
            let extra =
                load_calibration(&policy, &features, set.as_ref(), &rows, &mut problems, None)?;
            let model = weights.map(|w| read_weights(&w, &policy)).transpose()?;
            let mode = model
                .as_ref()
                .map(|m| m.pair_mode)
                .unwrap_or(PairMode::WithinResponseType);
            // The three files appear together or not at all.
            let staged = input::StagedDir::begin(&out, input::REPORT_MARKER)?;
            write_report(
                &policy,
                &rows,
                ReportJob {
                    features: &features,
                    calibration: &extra,
                    file: &data.file,
                    boot: &boot,
                    model: model.as_ref().map(|m| (m, mode)),
                    ranking_note: None,
                    out_dir: staged.path(),
                    title: &title,
                },
            )?;
            staged.commit()?;
            eprintln!("arbiter: wrote {}/report.{{md,html,json}}", out.display());
            problems.summarise();
        }
        RbrCommand::Run {
            data,
            fit,
            boot,
            calibration: cal_args,
            test,
            out,
        } => {
            cal_args.check(&data, &FeatureSource::Grader)?;
            let policy = input::load_policy(data.policy.as_deref())?;
            // Every input is read (once) before anything is graded or written, so a bad --test
            // or calibration file costs nothing and leaves no output.
            let mut problems = Problems::new(data.skip_invalid)
                .allowing_empty(data.allow_empty)
                .with_line_limit(data.max_sample_bytes);
            let train_samples = input::read_samples(&data.file, &mut problems)?;
            let test_samples = test
                .as_deref()
                .map(|t| input::read_samples(t, &mut problems))
                .transpose()?;
            let cal_set = read_calibration_set(&cal_args, &mut problems)?;
            let staged = input::StagedDir::begin(&out, ".arbiter-rbr-run")?;
            let final_out = out;
            let out = staged.path().to_path_buf();
            let features = Features::new(&data, FeatureSource::Grader, &policy)?;
            let train = prepare(
                &policy,
                &features,
                &data.file,
                &train_samples,
                fit.base_reward.as_deref(),
                &mut problems,
                Some(&out.join("grades.jsonl")),
            )?;
            let outcome = fit_and_log(&policy, &train, &fit)?;
            input::write_file(
                &out.join("weights.json"),
                &(serde_json::to_string_pretty(&outcome.model)? + "\n"),
            )?;
            write_log(&out.join("train_log.jsonl"), &outcome)?;
            let (eval_rows, eval_file, note) = match test.as_deref().zip(test_samples.as_ref()) {
                Some((t, samples)) => (
                    prepare(
                        &policy,
                        &features,
                        t,
                        samples,
                        fit.base_reward.as_deref(),
                        &mut problems,
                        Some(&out.join("test_grades.jsonl")),
                    )?,
                    t.to_path_buf(),
                    format!(
                        "Fitted on {}, evaluated on held-out {}.",
                        data.file.display(),
                        t.display()
                    ),
                ),
                None => (
                    train,
                    data.file.clone(),
                    format!(
                        "Fitted and evaluated on the same data ({}): in-sample figures.",
                        data.file.display()
                    ),
                ),
            };
            let extra = load_calibration(
                &policy,
                &features,
                cal_set.as_ref(),
                &eval_rows,
                &mut problems,
                Some(&out.join("calibration_grades.jsonl")),
            )?;
            let mut classes_out = input::create(Some(&out.join("classes.jsonl")))?;
            for r in &eval_rows {
                write_line(
                    &mut classes_out,
                    &json!({
                        "id": r.id,
                        "response_type": r.classification.response_type,
                        "class": policy.classes()[r.classification.class],
                        "class_probs": class_probs_json(&policy, &r.classification),
                    }),
                )?;
            }
            classes_out.finish()?;
            let mut scores_out = input::create(Some(&out.join("scores.jsonl")))?;
            write_scores(&policy, &outcome.model, &eval_rows, &mut scores_out)?;
            scores_out.finish()?;
            write_report(
                &policy,
                &eval_rows,
                ReportJob {
                    features: &features,
                    calibration: &extra,
                    file: &eval_file,
                    boot: &boot,
                    model: Some((&outcome.model, outcome.model.pair_mode)),
                    ranking_note: Some(note),
                    out_dir: &out,
                    title: "Arbiter RBR report",
                },
            )?;
            let evals = ranking(&policy, &outcome.model, &eval_rows, outcome.model.pair_mode)?;
            let mut stderr = std::io::stderr().lock();
            print_ranking(&evals, &mut stderr)?;
            let graded = match (&features.source, test.is_some()) {
                (FeatureSource::Grader, false) => "grades.jsonl, ",
                (FeatureSource::Grader, true) => "grades.jsonl, test_grades.jsonl, ",
                _ => "",
            };
            let graded = if matches!(features.source, FeatureSource::Grader)
                && cal_args.calibration_set.is_some()
            {
                format!("{graded}calibration_grades.jsonl, ")
            } else {
                graded.to_string()
            };
            staged.commit()?;
            eprintln!(
                "arbiter: wrote {graded}classes.jsonl, weights.json, train_log.jsonl, scores.jsonl and report.{{md,html,json}} to {}",
                final_out.display()
            );
            problems.summarise();
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_source_parses_human_or_path() {
        assert_eq!(FeatureSource::parse("human").unwrap(), FeatureSource::Human);
        assert_eq!(
            FeatureSource::parse("grader").unwrap(),
            FeatureSource::Grader
        );
        assert_eq!(
            FeatureSource::parse("g.jsonl").unwrap(),
            FeatureSource::Grades(PathBuf::from("g.jsonl"))
        );
        assert!(FeatureSource::parse("").is_err());
    }
}

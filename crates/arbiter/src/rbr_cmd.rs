//! `arbiter rbr …`: classify, fit, score, eval, metrics, report, and the whole pipeline (`run`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use arbiter_core::jsonl::write_line;
use arbiter_core::{FieldError, GradeRecord, RecordError, Sample};
use arbiter_graders::Grader;
use arbiter_rbr::Policy;
use arbiter_rbr::metrics::{self, Calibration, MetricsReport};
use arbiter_rbr::pipeline::{
    self, FigureSettings, PipelineError, Prepared, ReportContext, ReportFigures,
};
use arbiter_rbr::report::{self, RenderedReport};
use arbiter_rbr::reward::{ClassPrior, FitConfig, FitOutcome, RankingEval, RewardWeights};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};

use crate::grade_cmd::{BackendFlags, grade_all};
use crate::input::{self, FeatureSource, GradeIndex, Problems, RecordFormat};

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
        /// Output format (default: Parquet when `--out` ends in `.parquet`, else JSONL).
        #[arg(long, value_enum)]
        format: Option<RecordFormat>,
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
        /// Output format (default: Parquet when `--out` ends in `.parquet`, else JSONL).
        #[arg(long, value_enum)]
        format: Option<RecordFormat>,
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
        /// Format of the grades, classes and scores files (`grades.parquet`, … with `parquet`).
        #[arg(long, value_enum, default_value_t = RecordFormat::Jsonl)]
        format: RecordFormat,
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

/// Run one `rbr` subcommand.
pub fn run(cmd: RbrCommand) -> Result<ExitCode> {
    match cmd {
        RbrCommand::Classify { data, out, format } => rbr_classify(data, out, format),
        RbrCommand::Select(args) => crate::select_cmd::run(args),
        RbrCommand::Fit {
            data,
            fit,
            out,
            log,
        } => rbr_fit(data, fit, out, log),
        RbrCommand::Score {
            data,
            weights,
            base_reward,
            out,
            format,
        } => rbr_score(data, weights, base_reward, out, format),
        RbrCommand::Eval {
            data,
            weights,
            base_reward,
            format,
            max_error_rate,
        } => rbr_eval(data, weights, base_reward, format, max_error_rate),
        RbrCommand::Metrics {
            data,
            boot,
            calibration,
            format,
        } => rbr_metrics(data, boot, calibration, format),
        RbrCommand::Report {
            data,
            boot,
            calibration,
            weights,
            out,
            title,
        } => rbr_report(data, boot, calibration, weights, out, title),
        RbrCommand::Run {
            data,
            fit,
            boot,
            calibration,
            test,
            out,
            format,
        } => rbr_run(data, fit, boot, calibration, test, out, format),
    }
}

/// `rbr classify`: one class line per sample.
fn rbr_classify(
    data: DataArgs,
    out: Option<PathBuf>,
    format: Option<RecordFormat>,
) -> Result<ExitCode> {
    if let Some(o) = &out {
        input::check_distinct(&[("input", &data.file)], &[("--out", o)])?;
    }
    let format = RecordFormat::choose(format, out.as_deref())?;
    let loaded = load_rows(&data, None)?;
    let classes = pipeline::class_rows(&loaded.policy, &loaded.data.rows);
    write_rows(
        out.as_deref(),
        format,
        &classes,
        arbiter_columnar::rows::classes_to_batches,
    )?;
    loaded.problems.summarise();
    Ok(ExitCode::SUCCESS)
}

/// `rbr fit`: weights (and optionally the training log) from labelled samples.
fn rbr_fit(data: DataArgs, fit: FitArgs, out: PathBuf, log: Option<PathBuf>) -> Result<ExitCode> {
    let mut outputs = vec![("--out", out.as_path())];
    if let Some(l) = &log {
        outputs.push(("--log", l.as_path()));
    }
    input::check_distinct(&[("input", &data.file)], &outputs)?;
    let loaded = load_rows(&data, fit.base_reward.as_deref())?;
    let fitted = fit_weights(&loaded.policy, &loaded.data.rows, &fit)?;
    write_weights(&out, &fitted.model)?;
    if let Some(log) = log {
        write_jsonl(Some(&log), &fitted.log)?;
    }
    loaded.problems.summarise();
    Ok(ExitCode::SUCCESS)
}

/// `rbr score`: one reward line per sample.
fn rbr_score(
    data: DataArgs,
    weights: PathBuf,
    base_reward: Option<String>,
    out: Option<PathBuf>,
    format: Option<RecordFormat>,
) -> Result<ExitCode> {
    if let Some(o) = &out {
        input::check_distinct(
            &[("input", &data.file), ("--weights", &weights)],
            &[("--out", o)],
        )?;
    }
    let format = RecordFormat::choose(format, out.as_deref())?;
    let loaded = load_rows(&data, base_reward.as_deref())?;
    let weights = read_weights(&weights, &loaded.policy)?;
    let scores = pipeline::score_rows(&loaded.policy, &weights, &loaded.data.rows)?;
    write_rows(
        out.as_deref(),
        format,
        &scores,
        arbiter_columnar::rows::scores_to_batches,
    )?;
    loaded.problems.summarise();
    Ok(ExitCode::SUCCESS)
}

/// `rbr eval`: ranking error per response type; exit 1 above `--max-error-rate`.
fn rbr_eval(
    data: DataArgs,
    weights: PathBuf,
    base_reward: Option<String>,
    format: Format,
    max_error_rate: Option<f64>,
) -> Result<ExitCode> {
    let loaded = load_rows(&data, base_reward.as_deref())?;
    let weights = read_weights(&weights, &loaded.policy)?;
    let mode = pipeline::pair_mode(base_reward.is_some());
    let evals = pipeline::ranking(&loaded.policy, &weights, &loaded.data.rows, mode)?;
    let mut w = input::create(None)?;
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut w, &json!({ "ranking": evals }))?;
            writeln!(w)?;
        }
        Format::Text => print_ranking(&evals, &mut w)?,
    }
    w.finish()?;
    loaded.problems.summarise();
    if let Some(limit) = max_error_rate
        && evals
            .iter()
            .any(|e| e.error_rate.is_some_and(|r| r > limit))
    {
        eprintln!("arbiter: an error rate exceeds {limit}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `rbr metrics`: the safety metrics, and for grader features the grader against human labels.
fn rbr_metrics(
    data: DataArgs,
    boot: BootstrapArgs,
    cal_args: CalibrationArgs,
    format: Format,
) -> Result<ExitCode> {
    let (loaded, calibration_set) = load_with_calibration(&data, &cal_args)?;
    let figures = pipeline::report_figures(
        &loaded.policy,
        &loaded.data.rows,
        &calibration_set,
        &figure_settings(&boot, &loaded.features, None),
    )?;
    let (report, cal, graded) = (&figures.metrics, &figures.calibration, figures.graded);
    let mut w = input::create(None)?;
    match format {
        Format::Json => {
            let mut value = serde_json::to_value(report)?;
            if graded && let Value::Object(map) = &mut value {
                map.insert("calibration".into(), serde_json::to_value(cal)?);
                if cal.is_none() {
                    map.insert("notes".into(), json!([report::UNCALIBRATED_NOTE]));
                }
            }
            serde_json::to_writer_pretty(&mut w, &value)?;
            writeln!(w)?;
        }
        Format::Text => {
            print_metrics(report, &mut w)?;
            match cal {
                Some(cal) => print_calibration(report, cal, &mut w)?,
                None if graded => writeln!(w, "\nwarning: {}", report::UNCALIBRATED_NOTE)?,
                None => {}
            }
        }
    }
    w.finish()?;
    loaded.problems.summarise();
    Ok(ExitCode::SUCCESS)
}

/// `rbr report`: report.{md,html,json} for a data set, swapped into `out` whole.
fn rbr_report(
    data: DataArgs,
    boot: BootstrapArgs,
    cal_args: CalibrationArgs,
    weights: Option<PathBuf>,
    out: PathBuf,
    title: String,
) -> Result<ExitCode> {
    let (loaded, calibration_set) = load_with_calibration(&data, &cal_args)?;
    let weights = weights
        .map(|w| read_weights(&w, &loaded.policy))
        .transpose()?;
    // The three files appear together or not at all.
    let staged = input::StagedDir::begin(&out, input::REPORT_MARKER)?;
    let figures = pipeline::report_figures(
        &loaded.policy,
        &loaded.data.rows,
        &calibration_set,
        &figure_settings(&boot, &loaded.features, weights.as_ref()),
    )?;
    let context = report_context(&title, &loaded.features, &data.file, None, &loaded.data);
    write_report(staged.path(), &render(&loaded.policy, &figures, context))?;
    staged.commit()?;
    eprintln!("arbiter: wrote {}/report.{{md,html,json}}", out.display());
    loaded.problems.summarise();
    Ok(ExitCode::SUCCESS)
}

/// `rbr run`: read every input → grade → the library pipeline (prepare, fit, classes, scores,
/// report figures) → write into a staged directory swapped into `out` whole.
fn rbr_run(
    data: DataArgs,
    fit: FitArgs,
    boot: BootstrapArgs,
    cal_args: CalibrationArgs,
    test: Option<PathBuf>,
    out: PathBuf,
    format: RecordFormat,
) -> Result<ExitCode> {
    cal_args.check(&data, &FeatureSource::Grader)?;
    let ext = format.extension();
    let policy = input::load_policy(data.policy.as_deref())?;
    // Read: every input (once) before anything is graded or written, so a bad --test or
    // calibration file costs nothing and leaves no output.
    let mut problems = problems(&data);
    let train_file = SampleFile::read(&data.file, &mut problems)?;
    let test_file = test
        .as_deref()
        .map(|t| SampleFile::read(t, &mut problems))
        .transpose()?;
    let cal_file = read_calibration_set(&cal_args, &mut problems)?;
    let staged = input::StagedDir::begin(&out, ".arbiter-rbr-run")?;
    let dir = staged.path();
    let features = Features::new(&data, FeatureSource::Grader, &policy)?;
    let base_reward = fit.base_reward.as_deref();

    // Grade and prepare the training samples; fit.
    let train = prepare_file(
        &policy,
        &features,
        &train_file,
        base_reward,
        &mut problems,
        Some(&dir.join(format!("grades.{ext}"))),
    )?;
    let fitted = fit_weights(&policy, &train.rows, &fit)?;
    write_weights(&dir.join("weights.json"), &fitted.model)?;
    write_jsonl(Some(&dir.join("train_log.jsonl")), &fitted.log)?;

    // Grade and prepare the evaluation samples (held out, or the training ones again) and
    // the calibration set.
    let (eval, eval_file, ranking_note) = match &test_file {
        Some(t) => (
            prepare_file(
                &policy,
                &features,
                t,
                base_reward,
                &mut problems,
                Some(&dir.join(format!("test_grades.{ext}"))),
            )?,
            t.path.as_path(),
            format!(
                "Fitted on {}, evaluated on held-out {}.",
                data.file.display(),
                t.path.display()
            ),
        ),
        None => (
            train,
            data.file.as_path(),
            format!(
                "Fitted and evaluated on the same data ({}): in-sample figures.",
                data.file.display()
            ),
        ),
    };
    let calibration_set = prepare_calibration(
        &policy,
        &features,
        cal_file.as_ref(),
        &eval.rows,
        &mut problems,
        Some(&dir.join(format!("calibration_grades.{ext}"))),
    )?;

    // The library pipeline: classes, scores and the report's figures.
    let classes = pipeline::class_rows(&policy, &eval.rows);
    let scores = pipeline::score_rows(&policy, &fitted.model, &eval.rows)?;
    let figures = pipeline::report_figures(
        &policy,
        &eval.rows,
        &calibration_set,
        &figure_settings(&boot, &features, Some(&fitted.model)),
    )?;
    // `run` evaluates what it fitted: evaluation rows without a known class fail the run.
    let ranking = figures.ranking.as_deref().ok_or(PipelineError::NoTargets)?;
    let context = report_context(
        "Arbiter RBR report",
        &features,
        eval_file,
        Some(ranking_note),
        &eval,
    );
    let rendered = render(&policy, &figures, context);

    // Write, then swap the directory in.
    write_rows(
        Some(&dir.join(format!("classes.{ext}"))),
        format,
        &classes,
        arbiter_columnar::rows::classes_to_batches,
    )?;
    write_rows(
        Some(&dir.join(format!("scores.{ext}"))),
        format,
        &scores,
        arbiter_columnar::rows::scores_to_batches,
    )?;
    write_report(dir, &rendered)?;
    print_ranking(ranking, &mut std::io::stderr().lock())?;
    staged.commit()?;
    eprintln!(
        "arbiter: wrote {}classes.{ext}, weights.json, train_log.jsonl, scores.{ext} and report.{{md,html,json}} to {}",
        grades_written(&features, test.is_some(), cal_file.is_some(), ext),
        out.display()
    );
    problems.summarise();
    Ok(ExitCode::SUCCESS)
}

/// The grades files `rbr run` wrote (a grader run now writes what it graded), as a list head.
fn grades_written(
    features: &Features,
    with_test: bool,
    with_calibration: bool,
    ext: &str,
) -> String {
    if !matches!(features.source, FeatureSource::Grader) {
        return String::new();
    }
    let mut files = format!("grades.{ext}, ");
    if with_test {
        files += &format!("test_grades.{ext}, ");
    }
    if with_calibration {
        files += &format!("calibration_grades.{ext}, ");
    }
    files
}

/// The bad-line policy of `data`.
pub(crate) fn problems(data: &DataArgs) -> Problems {
    Problems::new(data.skip_invalid)
        .allowing_empty(data.allow_empty)
        .with_line_limit(data.max_sample_bytes)
}

/// A samples file as read: the samples, and the line each came from (for error messages).
pub(crate) struct SampleFile {
    pub(crate) path: PathBuf,
    pub(crate) samples: Vec<Sample>,
    /// The line of each sample, or its row in a Parquet file.
    pub(crate) lines: Vec<usize>,
    /// `lines` are rows of a Parquet file.
    pub(crate) in_rows: bool,
}

impl SampleFile {
    pub(crate) fn read(path: &Path, problems: &mut Problems) -> Result<SampleFile> {
        let (lines, samples) = input::read_samples(path, problems)?
            .into_iter()
            .map(|located| (located.line, located.record))
            .unzip();
        Ok(SampleFile {
            path: path.to_path_buf(),
            samples,
            lines,
            in_rows: arbiter_columnar::is_parquet(path),
        })
    }
}

/// The rows of one file that prepared, and how many of its samples the grader failed on (left
/// out under `--max-failed`; the report shows the count).
pub(crate) struct PreparedFile {
    pub(crate) rows: Vec<Prepared>,
    pub(crate) unscored: usize,
}

/// A command's policy, features and the prepared rows of its data file.
struct Loaded {
    policy: Policy,
    problems: Problems,
    data: PreparedFile,
    features: Features,
}

/// Load the policy and prepare every sample of the data file, with the bad-line policy of
/// `data` and human labels unless `--features` says otherwise.
fn load_rows(data: &DataArgs, base_reward: Option<&str>) -> Result<Loaded> {
    let policy = input::load_policy(data.policy.as_deref())?;
    let features = Features::new(data, FeatureSource::Human, &policy)?;
    let mut problems = problems(data);
    let file = SampleFile::read(&data.file, &mut problems)?;
    let rows = prepare_file(&policy, &features, &file, base_reward, &mut problems, None)?;
    Ok(Loaded {
        policy,
        problems,
        data: rows,
        features,
    })
}

/// [`load_rows`] plus the `--calibration-set`'s prepared samples (`rbr metrics`, `rbr report`).
fn load_with_calibration(
    data: &DataArgs,
    cal_args: &CalibrationArgs,
) -> Result<(Loaded, Vec<Prepared>)> {
    cal_args.check(data, &FeatureSource::Human)?;
    let mut loaded = load_rows(data, None)?;
    let set = read_calibration_set(cal_args, &mut loaded.problems)?;
    let calibration_set = prepare_calibration(
        &loaded.policy,
        &loaded.features,
        set.as_ref(),
        &loaded.data.rows,
        &mut loaded.problems,
        None,
    )?;
    Ok((loaded, calibration_set))
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

/// Grade (when the features come from a grader; grades written to `grades_out` when given) and
/// prepare every sample of `file`. A grader that failed on more cells than `--max-failed`
/// allows fails the command; below that its samples are left out and counted. A bad sample
/// fails the command or is skipped and reported, at its line.
pub(crate) fn prepare_file(
    policy: &Policy,
    features: &Features,
    file: &SampleFile,
    base_reward: Option<&str>,
    problems: &mut Problems,
    grades_out: Option<&Path>,
) -> Result<PreparedFile> {
    let grades = match (&features.source, &features.grader) {
        (FeatureSource::Human, _) => Grades::None,
        (FeatureSource::Grades(p), _) => Grades::File(GradeIndex::read(p, problems)?),
        (FeatureSource::Grader, grader) => {
            let grader = grader
                .as_deref()
                .context("internal: features come from a grader but none was loaded")?;
            let made = grade_samples(grader, policy, &file.samples)?;
            if let Some(path) = grades_out {
                let format = if arbiter_columnar::is_parquet(path) {
                    RecordFormat::Parquet
                } else {
                    RecordFormat::Jsonl
                };
                write_rows(
                    Some(path),
                    format,
                    &made,
                    arbiter_columnar::grades::to_batches,
                )?;
            }
            Grades::Made(made)
        }
    };
    let lookups: Option<Vec<Result<&GradeRecord, FieldError>>> = match &grades {
        Grades::None => None,
        Grades::File(index) => Some(file.samples.iter().map(|s| index.get(&s.id)).collect()),
        Grades::Made(made) => Some(made.iter().map(Ok).collect()),
    };
    let prepared = pipeline::prepare_all(policy, &file.samples, lookups.as_deref(), base_reward);

    // A cell the grader gave no probability for (a failed request, an answer without a yes/no
    // token) is the grader's failure, not the input's: it fails the command unless
    // `--max-failed` allows it, and then its sample is left out and counted.
    let failures = &prepared.grader_failures;
    let grader = match (&features.source, &features.grader) {
        (FeatureSource::Grades(p), _) => format!("that wrote {}", p.display()),
        (_, Some(g)) => g.describe(),
        _ => "(unknown)".to_string(),
    };
    if failures.exceed(features.max_failed) {
        return Err(crate::Failed(format!(
            "{}: {}; nothing was classified (--max-failed FRACTION leaves such samples out instead)",
            file.path.display(),
            failures.describe(&grader)
        ))
        .into());
    }
    if failures.samples > 0 {
        eprintln!(
            "arbiter: {} sample(s) of {} left out and counted as unscored: {}",
            failures.samples,
            file.path.display(),
            failures.describe(&grader)
        );
    }
    let source = file.path.display().to_string();
    for e in prepared.errors {
        let line = file.lines[e.index];
        problems.report(if file.in_rows {
            RecordError::at_row(&source, line, e.error)
        } else {
            RecordError::new(&source, line, e.error)
        })?;
    }
    Ok(PreparedFile {
        rows: prepared.rows,
        unscored: failures.samples,
    })
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
) -> Result<Option<SampleFile>> {
    args.calibration_set
        .as_deref()
        .map(|path| SampleFile::read(path, problems))
        .transpose()
}

/// Grade and prepare the `--calibration-set`'s samples; every sample must carry human labels
/// and none may also be one of the `data` rows (it would count twice).
fn prepare_calibration(
    policy: &Policy,
    features: &Features,
    set: Option<&SampleFile>,
    data: &[Prepared],
    problems: &mut Problems,
    grades_out: Option<&Path>,
) -> Result<Vec<Prepared>> {
    let Some(file) = set else {
        return Ok(Vec::new());
    };
    if !features.graded() {
        bail!(
            "--calibration-set measures a grader, but the features are human labels: pass --features grader (or a grades file that also grades the calibration samples)"
        );
    }
    let rows = prepare_file(policy, features, file, None, problems, grades_out)?.rows;
    pipeline::check_calibration_set(&rows, data)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.path.display()))?;
    Ok(rows)
}

/// Fit weights with the optimiser flags, printing each group's last loss.
fn fit_weights(policy: &Policy, rows: &[Prepared], fit: &FitArgs) -> Result<FitOutcome> {
    let config = fit.config()?;
    let outcome = pipeline::fit(policy, rows, fit.base_reward.is_some(), &config)?;
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

/// The figure settings of the bootstrap flags and features.
fn figure_settings<'a>(
    boot: &BootstrapArgs,
    features: &Features,
    weights: Option<&'a RewardWeights>,
) -> FigureSettings<'a> {
    FigureSettings {
        bootstrap: boot.bootstrap,
        bootstrap_seed: boot.bootstrap_seed,
        graded: features.graded(),
        weights,
    }
}

/// What a report says about its data and features.
fn report_context(
    title: &str,
    features: &Features,
    file: &Path,
    ranking_note: Option<String>,
    prepared: &PreparedFile,
) -> ReportContext {
    ReportContext {
        title: title.to_string(),
        data_source: file.display().to_string(),
        features: features.describe(),
        ranking_note,
        grader_validation: features.validation_lines(),
        unscored: prepared.unscored,
    }
}

fn render(policy: &Policy, figures: &ReportFigures, context: ReportContext) -> RenderedReport {
    report::render(policy, &figures.report_input(context))
}

/// Records as `format`: JSON lines to `path` or standard output, or a Parquet file at `path`
/// (which [`RecordFormat::choose`] made sure is given); written atomically.
fn write_rows<T: Serialize>(
    path: Option<&Path>,
    format: RecordFormat,
    items: &[T],
    table: fn(&[T], &Path) -> Result<arbiter_columnar::Table, arbiter_columnar::ColumnarError>,
) -> Result<()> {
    match (format, path) {
        (RecordFormat::Parquet, Some(p)) => input::write_parquet(p, table(items, p)?),
        (RecordFormat::Parquet, None) => bail!("Parquet output needs a file name"),
        (RecordFormat::Jsonl, _) => write_jsonl(path, items),
    }
}

/// One JSON line per item, to `path` (atomically) or standard output.
fn write_jsonl<T: Serialize>(path: Option<&Path>, items: &[T]) -> Result<()> {
    let mut out = input::create(path)?;
    for item in items {
        write_line(&mut out, item)?;
    }
    out.finish()
}

fn write_weights(path: &Path, weights: &RewardWeights) -> Result<()> {
    input::write_file(path, &(serde_json::to_string_pretty(weights)? + "\n"))
}

/// report.md, report.html and report.json in `dir`.
fn write_report(dir: &Path, rendered: &RenderedReport) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    input::write_file(&dir.join("report.md"), &rendered.markdown)?;
    input::write_file(&dir.join("report.html"), &rendered.html)?;
    input::write_file(
        &dir.join("report.json"),
        &(serde_json::to_string_pretty(&rendered.json)? + "\n"),
    )
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

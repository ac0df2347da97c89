//! `arbiter eval run`: ask a model every item of a suite, score the replies, and write the run
//! log (`samples.jsonl`) and `summary.json` to the run directory. Rerunning the same command
//! continues an interrupted run.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use arbiter_core::Shard;
use arbiter_evals::chat::OpenAiChatModel;
use arbiter_evals::corrected::{
    self, CALIBRATION_FILE, CalibrationRow, Corrected, calibration_jsonl, parse_calibration_rows,
};
use arbiter_evals::runlog::{LogLine, RunLog};
use arbiter_evals::runner::{self, ChatModel, ChoiceScorer, RunConfig, Scorer};
use arbiter_evals::scorers::{GraderScorer, SimpleQaJudge, StrongRejectJudge};
use arbiter_evals::suite::{Selection, Suite, SuiteError, SuiteKind, WorkItem};
use arbiter_evals::summary::{Summary, behaviour_scores, summarise};
use arbiter_graders::{GraderOptions, PromptLayout};
use arbiter_openai::{ClientConfig, Prices};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{input, progress};

/// `arbiter eval …`
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Run a suite against a model; rerun the same command to resume.
    Run(Box<RunArgs>),
    /// Merge the run directories of `eval run --shard 1/N` … `N/N` into the unsharded run.
    Merge(MergeArgs),
    /// Write a run directory's results (the latest line of samples.jsonl per sample and epoch)
    /// as a Parquet file; the run directory is only read.
    Export(ExportArgs),
}

/// `arbiter eval export` flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run directory (`eval run --out`).
    #[arg(value_name = "RUN_DIR")]
    dir: PathBuf,
    /// The Parquet file to write (`*.parquet`), atomically. A run with items not yet asked
    /// (interrupted, stopped by --max-cost, a shard) is exported with `arbiter.partial = true`
    /// in the file's metadata and a warning.
    #[arg(long)]
    out: PathBuf,
}

/// `arbiter eval merge` flags.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The suite the shards ran, as given to `eval run` (built-in name or suite TOML): its items
    /// give the merged log its order and the summary its denominators.
    #[arg(long)]
    suite: String,
    /// Root that suites' relative dataset paths start from, as for `eval run`.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The merged run directory (new, or one an interrupted merge left without run.json); it
    /// becomes a run directory like an unsharded run's, which `eval run` can resume.
    #[arg(long)]
    out: PathBuf,
    /// The N shard run directories (`eval run --shard I/N`, every I from 1 to N once).
    #[arg(required = true, value_name = "SHARD_DIR")]
    shards: Vec<PathBuf>,
}

/// `arbiter eval run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Built-in suite (refusal, xstest, strongreject, bbq, simpleqa) or a suite TOML file.
    #[arg(long)]
    suite: String,
    /// The evaluated model: `openai:NAME@BASE_URL` (any OpenAI-compatible server).
    #[arg(long)]
    model: String,
    /// Run directory: samples.jsonl, summary.json and run.json are written here.
    #[arg(long)]
    out: PathBuf,
    /// Proposition grader for refusal-style suites: `embedded` or `openai:NAME@BASE_URL`. For
    /// the judge-scored suites (simpleqa, strongreject) an `openai:` grader is also the judge
    /// when --judge is not given.
    #[arg(long, default_value = "embedded")]
    grader: String,
    /// Judge for simpleqa (letter grade) and strongreject (rubric): `openai:NAME@BASE_URL`.
    #[arg(long)]
    judge: Option<String>,
    /// Policy whose `[metrics] refusal` and `unsafe_content` events the grader's propositions
    /// decide (default: the built-in policy).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Heads file for the embedded grader (default: the built-in heads).
    #[arg(long)]
    heads: Option<PathBuf>,
    /// Directory with the embedded grader's model files (default: $ARBITER_MODEL_DIR, else
    /// $ARBITER_CACHE/all-minilm-l6-v2, else ~/.cache/arbiter/…).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Root that suites' relative dataset paths start from (default: $ARBITER_DATA, else
    /// ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Ask only the first N samples (after --sample).
    #[arg(long)]
    limit: Option<usize>,
    /// Ask a random subset of N samples (seeded by --seed), in dataset order.
    #[arg(long)]
    sample: Option<usize>,
    /// Seed for --sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Ask each sample this many times (default: the suite's solver.epochs).
    #[arg(long)]
    epochs: Option<u32>,
    /// Requests to the model in flight at most (halved on 429, grown back on success).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Stop starting new items once the model, grader and judge have spent this many US dollars
    /// in this invocation (at the --price-* rates); rerun to continue.
    #[arg(long)]
    max_cost: Option<f64>,
    /// Ask again the items whose last attempt failed.
    #[arg(long)]
    retry_errors: bool,
    /// Largest share of answered items that may go unscored (an unusable grader or judge
    /// output, an unreadable answer) before the run exits 1. Default 0: any unscored item fails
    /// the run, since its numbers then describe fewer items than asked.
    #[arg(long, default_value_t = 0.0)]
    max_unscored: f64,
    /// Do not read or write the response cache ($ARBITER_CACHE/responses).
    #[arg(long)]
    no_cache: bool,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Retries per request after the first attempt (transport errors, 408, 429, 5xx).
    #[arg(long, default_value_t = 4)]
    max_retries: u32,
    /// Environment variable holding the evaluated model's API key.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    /// Environment variable holding the judge's or openai grader's API key (default: --api-key-env).
    #[arg(long)]
    judge_api_key_env: Option<String>,
    /// Prompt layout of an openai grader: `glossary` or `question` (see `arbiter grade --help`).
    #[arg(long, default_value = "glossary")]
    prompt_layout: PromptLayout,
    /// Model price of uncached prompt tokens, USD per million.
    #[arg(long, default_value_t = 0.0)]
    price_input: f64,
    /// Model price of prompt tokens served from the server's prefix cache, USD per million.
    #[arg(long, default_value_t = 0.0)]
    price_cached_input: f64,
    /// Model price of generated tokens, USD per million.
    #[arg(long, default_value_t = 0.0)]
    price_output: f64,
    /// Judge/grader price of uncached prompt tokens, USD per million.
    #[arg(long, default_value_t = 0.0)]
    judge_price_input: f64,
    /// Judge/grader price of prompt tokens served from the server's prefix cache, USD per million.
    #[arg(long, default_value_t = 0.0)]
    judge_price_cached_input: f64,
    /// Judge/grader price of generated tokens, USD per million.
    #[arg(long, default_value_t = 0.0)]
    judge_price_output: f64,
    /// Human-labelled samples (Arbiter's sample JSONL: prompt, completion, `propositions`
    /// labels, and `response_type` or `expected` saying whether the prompt should be refused)
    /// drawn from the same distribution as this run's replies. The grader scores them too, and
    /// summary.json gets PPI++-corrected not_unsafe / not_overrefuse with intervals. Stored in
    /// the run directory as calibration.jsonl (reused by later reruns and `arbiter report`).
    #[arg(long, value_name = "LABELLED.jsonl")]
    calibration_set: Option<PathBuf>,
    /// Run only shard I of N (1-based: `--shard 1/4` … `--shard 4/4`): the selected samples
    /// (after --sample and --limit) whose id's SHA-256 (first 8 bytes, big-endian) is I − 1
    /// modulo N, with all their techniques and epochs. The shard is pinned in run.json, and
    /// summary.json says the run is partial (`shard`). `arbiter eval merge` puts the N run
    /// directories together into the unsharded run.
    #[arg(long, value_name = "I/N", value_parser = crate::grade_cmd::parse_shard)]
    shard: Option<Shard>,
}

/// Run an `arbiter eval` subcommand.
pub fn run(command: EvalCommand) -> Result<ExitCode> {
    match command {
        EvalCommand::Run(args) => run_suite(*args),
        EvalCommand::Merge(args) => merge_runs(args),
        EvalCommand::Export(args) => export_run(args),
    }
}

/// Why the run in `dir` is not complete, judged from its summary.json (written at the end of
/// every `eval run` from the log as it then was) and the `keys` its log holds now; `None` for a
/// complete run.
fn partial_reason(dir: &Path, keys: usize) -> Result<Option<String>> {
    let path = dir.join("summary.json");
    let summary: Value = match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t)
            .with_context(|| format!("{}: not a summary", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(
                "no summary.json: no `eval run` of this directory has finished".into(),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if let Some(shard) = summary.pointer("/shard/shard").and_then(Value::as_str) {
        return Ok(Some(format!(
            "shard {shard} of a sharded run; `arbiter eval merge` the shards for the whole suite"
        )));
    }
    let count = |k: &str| summary.get(k).and_then(Value::as_u64);
    let (Some(n_samples), Some(n_pending)) = (count("n_samples"), count("n_pending")) else {
        bail!("{}: no n_samples or n_pending", path.display());
    };
    if n_pending > 0 {
        return Ok(Some(format!(
            "{n_pending} of {n_samples} items not run yet; rerun the same `eval run` to finish"
        )));
    }
    if keys as u64 != n_samples {
        return Ok(Some(format!(
            "the log holds {keys} items but summary.json counts {n_samples}: an `eval run` did not finish"
        )));
    }
    Ok(None)
}

fn export_run(args: ExportArgs) -> Result<ExitCode> {
    let ExportArgs { dir, out } = args;
    if !dir.join("run.json").is_file() {
        bail!("{}: not a run directory (no run.json)", dir.display());
    }
    if !arbiter_columnar::is_parquet(&out) {
        bail!(
            "{}: the export is Parquet; name it *.parquet (samples.jsonl is the run's JSONL)",
            out.display()
        );
    }
    let log_path = dir.join("samples.jsonl");
    input::check_distinct(&[("the run log", &log_path)], &[("--out", &out)])?;
    // Held while reading, so a run still writing its log is refused rather than read half done.
    let _lock = input::lock_run_dir(&dir)?;
    let identity = std::fs::read_to_string(dir.join("run.json"))
        .with_context(|| format!("cannot read {}", dir.join("run.json").display()))?;
    let log = arbiter_evals::runlog::read_log(&log_path)?;
    if log.torn_bytes > 0 {
        eprintln!(
            "arbiter: {}: leaving out a torn last line ({} bytes) of an interrupted run",
            log_path.display(),
            log.torn_bytes
        );
    }
    // The latest line per (sample, epoch), in log order: a retried item's earlier error line is
    // superseded, as in the summary.
    let mut last: std::collections::HashMap<(String, u32), usize> = Default::default();
    for (i, (line, _)) in log.lines.iter().enumerate() {
        last.insert(line.key(), i);
    }
    let rows: Vec<arbiter_columnar::runlog::RunRow> = log
        .lines
        .iter()
        .enumerate()
        .filter(|(i, (line, _))| last[&line.key()] == *i)
        .map(|(_, (line, _))| {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
            Ok(arbiter_columnar::runlog::RunRow {
                sample_id: line.sample_id.clone(),
                epoch: line.epoch,
                status: text(Some(&serde_json::to_value(line.status)?)).unwrap_or_default(),
                technique: text(line.request.get("technique")),
                category: text(line.request.pointer("/sample/category")),
                response: line.response.clone(),
                prompt_tokens: line.usage.prompt_tokens,
                completion_tokens: line.usage.completion_tokens,
                cache_hit: line.cache_hit,
                error: line.error.clone(),
                scores: line.scores.clone(),
                request: line.request.clone(),
            })
        })
        .collect::<Result<_>>()?;
    let reason = partial_reason(&dir, rows.len())?;
    let mut metadata = vec![
        (
            "arbiter.partial",
            if reason.is_some() { "true" } else { "false" },
        ),
        ("arbiter.run", identity.trim()),
    ];
    if let Some(r) = &reason {
        metadata.push(("arbiter.partial_reason", r.as_str()));
    }
    input::write_parquet_with_metadata(
        &out,
        arbiter_columnar::runlog::to_batches(&rows, &out)?,
        &metadata,
    )?;
    match &reason {
        Some(r) => eprintln!(
            "arbiter: warning: {} is a partial run ({r}); {} holds its {} items so far, marked arbiter.partial = true",
            dir.display(),
            out.display(),
            rows.len()
        ),
        None => eprintln!("arbiter: {} items → {}", rows.len(), out.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// What makes a run directory's log lines comparable: rerunning with another identity would mix
/// answers of different models, scorers or samples, so it is refused.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct RunIdentity {
    suite: String,
    model: String,
    grader: Option<String>,
    epochs: u32,
    limit: Option<usize>,
    sample: Option<usize>,
    seed: Option<u64>,
    /// `I/N` for a sharded run; absent (and so absent from an unsharded run's run.json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<Shard>,
}

/// `summary.json`: the suite's summary plus what scored it and the tokens used.
#[derive(Serialize)]
struct SummaryFile<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    /// The suite's metric family, so `arbiter report` can recompute the metrics of a suite
    /// defined in the user's own TOML.
    kind: SuiteKind,
    /// The grader or judge that scored the replies (`null` when no model scored them).
    grader: Option<String>,
    /// Tokens of the latest line per item (cache hits included) and cache hits.
    usage: Value,
    /// Graded metric → PPI++ estimate from the calibration set (`arbiter_evals::corrected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    corrected: Option<BTreeMap<String, Corrected>>,
    /// Graded metric → why it has no corrected value.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_corrected: Option<BTreeMap<String, String>>,
    /// Where the calibration rows came from and how many there are.
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration: Option<Value>,
    /// The grader's shipped leave-one-source-out figures, for the report (as the grader gives
    /// them, or as a merge read them from its shards).
    #[serde(skip_serializing_if = "Option::is_none")]
    grader_validation: Option<Value>,
    /// A sharded run's shard: it covers only part of the suite (absent for a whole run).
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<Value>,
}

/// What `summary.json` is computed from, for a run and for a merge alike.
struct SummaryInputs<'a> {
    suite: &'a Suite,
    model: &'a str,
    items: &'a [WorkItem],
    latest: &'a BTreeMap<(String, u32), LogLine>,
    grader: Option<String>,
    calibration: Option<&'a (Vec<CalibrationRow>, Option<String>)>,
    grader_validation: Option<Value>,
    shard: Option<Shard>,
}

/// Compute the summary and write `dir/summary.json`; the summary and the corrections.
fn write_summary(
    dir: &Path,
    inputs: SummaryInputs<'_>,
) -> Result<(Summary, Option<corrected::Corrections>)> {
    let SummaryInputs {
        suite,
        model,
        items,
        latest,
        grader,
        calibration,
        grader_validation,
        shard,
    } = inputs;
    let summary = summarise(suite, model, items, latest);
    let in_run = items
        .iter()
        .filter_map(|i| latest.get(&(i.key.clone(), i.epoch)));
    let (mut prompt_tokens, mut completion_tokens, mut cache_hits) = (0u64, 0u64, 0usize);
    for line in in_run {
        prompt_tokens += line.usage.prompt_tokens;
        completion_tokens += line.usage.completion_tokens;
        cache_hits += usize::from(line.cache_hit);
    }
    let corrections = calibration
        .map(|(rows, _)| corrected::correct(suite.kind, &behaviour_scores(items, latest), rows));
    let file = SummaryFile {
        summary: &summary,
        kind: suite.kind,
        grader,
        usage: json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cache_hits": cache_hits,
        }),
        corrected: corrections.as_ref().map(|c| c.corrected.clone()),
        not_corrected: corrections.as_ref().map(|c| c.not_corrected.clone()),
        calibration: calibration.map(|(rows, source)| {
            json!({"file": CALIBRATION_FILE, "source": source, "n_labelled": rows.len()})
        }),
        grader_validation,
        shard: shard.map(|s| {
            json!({
                "shard": s.to_string(),
                "index": s.index(),
                "count": s.count(),
                "partial": true,
                "note": format!(
                    "a partial run: only the samples whose id falls in shard {s}; merge the {} shard directories with `arbiter eval merge` for the suite's result",
                    s.count()
                ),
            })
        }),
    };
    input::write_file(
        &dir.join("summary.json"),
        &(serde_json::to_string_pretty(&file)? + "\n"),
    )?;
    Ok((summary, corrections))
}

/// How a run's replies are scored: through a proposition grader (whose events a calibration set
/// can correct), or by a judge or the reply itself.
enum Scoring {
    Grader(Box<GraderScorer>),
    Other(Box<dyn Scorer>),
}

impl Scoring {
    fn scorer(&self) -> &dyn Scorer {
        match self {
            Scoring::Grader(g) => g.as_ref(),
            Scoring::Other(s) => s.as_ref(),
        }
    }
}

fn load_suite(spec: &str) -> Result<Suite> {
    if let Some(suite) = Suite::built_in(spec) {
        return Ok(suite);
    }
    let path = Path::new(spec);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read suite file {}", path.display()))?;
        return Ok(Suite::from_toml_str(&text, &path.display().to_string())?);
    }
    if spec.ends_with(".toml") || spec.contains(std::path::MAIN_SEPARATOR) {
        bail!("cannot read suite file {spec}: no such file");
    }
    Err(SuiteError::Unknown(spec.to_string()).into())
}

impl RunArgs {
    fn client_config(&self, spec: &str, flag: &str, judge: bool) -> Result<ClientConfig> {
        let mut config =
            ClientConfig::from_spec(spec).with_context(|| format!("bad {flag} value"))?;
        config.api_key_env = if judge {
            self.judge_api_key_env
                .clone()
                .unwrap_or_else(|| self.api_key_env.clone())
        } else {
            self.api_key_env.clone()
        };
        config.prices = if judge {
            self.judge_prices()
        } else {
            Prices {
                input_per_mtok: self.price_input,
                cached_input_per_mtok: self.price_cached_input,
                output_per_mtok: self.price_output,
            }
        };
        config.timeout = self.timeout_duration()?;
        config.max_retries = self.max_retries;
        config.initial_concurrency = self.concurrency;
        config.max_concurrency = self.concurrency;
        if self.no_cache {
            config.cache_dir = None;
        }
        Ok(config)
    }

    fn timeout_duration(&self) -> Result<Duration> {
        crate::grade_cmd::timeout(self.timeout)
    }

    fn judge_prices(&self) -> Prices {
        Prices {
            input_per_mtok: self.judge_price_input,
            cached_input_per_mtok: self.judge_price_cached_input,
            output_per_mtok: self.judge_price_output,
        }
    }

    /// The scorer for the suite's kind, and a description of the model that scores (if any).
    fn scorer(&self, suite: &Suite) -> Result<(Scoring, Option<String>)> {
        match suite.kind {
            SuiteKind::Refusal | SuiteKind::Xstest => {
                let policy = input::load_policy(self.policy.as_deref())?;
                let options = GraderOptions {
                    heads: self.heads.clone(),
                    model_dir: self.model_dir.clone(),
                    no_cache: self.no_cache,
                    api_key_env: Some(
                        self.judge_api_key_env
                            .clone()
                            .unwrap_or_else(|| self.api_key_env.clone()),
                    ),
                    prices: self.judge_prices(),
                    max_concurrency: Some(self.concurrency),
                    prompt_layout: self.prompt_layout,
                    glossary: policy.propositions().to_vec(),
                    timeout: Some(self.timeout_duration()?),
                    max_retries: Some(self.max_retries),
                };
                let grader = arbiter_graders::from_spec(&self.grader, &options)
                    .with_context(|| format!("cannot build the grader {:?}", self.grader))?;
                let scorer = GraderScorer::new(grader, policy, suite);
                let described = scorer.describe();
                Ok((Scoring::Grader(Box::new(scorer)), Some(described)))
            }
            SuiteKind::Simpleqa | SuiteKind::Strongreject => {
                let (spec, flag) = match (&self.judge, self.grader.starts_with("openai:")) {
                    (Some(judge), _) => (judge.as_str(), "--judge"),
                    (None, true) => (self.grader.as_str(), "--grader"),
                    (None, false) => bail!(
                        "suite `{}` is scored by a judge model: pass --judge openai:NAME@BASE_URL (it may be the evaluated model)",
                        suite.name
                    ),
                };
                let judge = OpenAiChatModel::new(self.client_config(spec, flag, true)?)
                    .context("cannot build the judge client")?;
                let described = Some(format!("judge {}", judge.describe()));
                let scorer: Box<dyn Scorer> = if suite.kind == SuiteKind::Simpleqa {
                    Box::new(SimpleQaJudge { judge })
                } else {
                    Box::new(StrongRejectJudge { judge })
                };
                Ok((Scoring::Other(scorer), described))
            }
            SuiteKind::Bbq => Ok((Scoring::Other(Box::new(ChoiceScorer)), None)),
        }
    }
}

/// Check `run.json` against this run, or write it for a new run directory.
fn check_identity(dir: &Path, identity: &RunIdentity) -> Result<()> {
    let path = dir.join("run.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored: RunIdentity = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a run description", path.display()))?;
            if &stored != identity {
                let a = serde_json::to_value(&stored)?;
                let b = serde_json::to_value(identity)?;
                // Every setting either side records, in run.json's order (an unsharded
                // run.json has no `shard`).
                let mut keys: Vec<&String> = Vec::new();
                for k in a
                    .as_object()
                    .into_iter()
                    .chain(b.as_object())
                    .flat_map(|m| m.keys())
                {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                let diffs: Vec<String> = keys
                    .into_iter()
                    .filter(|k| a.get(k.as_str()) != b.get(k.as_str()))
                    .map(|k| {
                        let show =
                            |v: Option<&Value>| v.map_or("none".to_string(), Value::to_string);
                        format!(
                            "{k}: {} there, {} now",
                            show(a.get(k.as_str())),
                            show(b.get(k.as_str()))
                        )
                    })
                    .collect();
                bail!(
                    "{} holds another run ({}); rerun with the same settings to resume, or choose another --out",
                    dir.display(),
                    diffs.join("; ")
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            input::write_file(&path, &(serde_json::to_string_pretty(identity)? + "\n"))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        None,
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} items · {per_sec} · ETA {eta_precise}",
        )
        .expect("valid progress template"),
    );
    bar
}

fn headline(summary: &Summary) -> String {
    let shown: Vec<String> = summary
        .metrics
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|x| format!("{k} {x:.3}")))
        .collect();
    if shown.is_empty() {
        "no metric (no scored items)".to_string()
    } else {
        shown.join(", ")
    }
}

/// Read and grade the calibration set before any model call, so a bad file costs nothing; the
/// rows and the path they came from.
fn label_calibration_set(
    path: &Path,
    scorer: &GraderScorer,
) -> Result<(Vec<CalibrationRow>, Option<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the calibration set {}", path.display()))?;
    let name = path.display().to_string();
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    let bar = progress::bar(lines as u64, "grading the calibration set");
    let rows = corrected::label_calibration_set(&text, &name, scorer, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    if rows.is_empty() {
        bail!("{name}: the calibration set holds no samples");
    }
    Ok((rows, Some(name)))
}

fn run_suite(args: RunArgs) -> Result<ExitCode> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.max_unscored) {
        bail!("--max-unscored must be a fraction between 0 and 1");
    }
    if args.max_cost.is_some_and(|c| !(c.is_finite() && c >= 0.0)) {
        bail!("--max-cost must be a non-negative number of US dollars");
    }
    let mut suite = load_suite(&args.suite)?;
    if let Some(epochs) = args.epochs {
        if epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        suite.solver.epochs = epochs;
    }
    let model = OpenAiChatModel::new(args.client_config(&args.model, "--model", false)?)
        .context("cannot build the model client")?;
    let selection = Selection {
        sample: args.sample.map(|n| (n, args.seed)),
        limit: args.limit,
    };
    let (scoring, grader) = args.scorer(&suite)?;
    let calibration_set = match (&args.calibration_set, &scoring) {
        (None, _) => None,
        (Some(path), Scoring::Grader(g)) => Some(label_calibration_set(path, g)?),
        (Some(_), Scoring::Other(_)) => bail!(
            "--calibration-set corrects grader-scored metrics; suite `{}` ({}) is not scored by a proposition grader",
            suite.name,
            arbiter_evals::report::kind_name(suite.kind)
        ),
    };
    let mut samples = selection.apply(suite.load(&input::data_root(args.data.as_deref()))?);
    if samples.is_empty() {
        bail!("suite `{}` selected no samples", suite.name);
    }
    if let Some(shard) = args.shard {
        let selected = samples.len();
        samples.retain(|s| shard.contains_text(&s.id));
        eprintln!(
            "{}: shard {shard}: {} of the {selected} selected samples",
            suite.name,
            samples.len()
        );
    }
    let items = suite.work(&samples);

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let _lock = input::lock_run_dir(&args.out)?;
    check_identity(
        &args.out,
        &RunIdentity {
            suite: suite.name.clone(),
            model: model.describe(),
            grader: grader.clone(),
            epochs: suite.solver.epochs,
            limit: args.limit,
            sample: args.sample,
            seed: args.sample.map(|_| args.seed),
            shard: args.shard,
        },
    )?;
    let mut log = RunLog::open(&args.out.join("samples.jsonl"))?;
    if log.truncated_bytes > 0 {
        eprintln!(
            "arbiter: cut a torn last line ({} bytes) left by an interrupted run",
            log.truncated_bytes
        );
    }

    let bar = progress_bar();
    let config = RunConfig {
        concurrency: args.concurrency,
        retry_errors: args.retry_errors,
        token_limit: None,
        cost_limit: args.max_cost,
    };
    let stats = runner::run(
        &suite,
        &items,
        &model,
        scoring.scorer(),
        &mut log,
        &config,
        &mut |done, total| {
            if bar.length() != Some(total as u64) {
                bar.set_length(total as u64);
            }
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();

    let latest: BTreeMap<(String, u32), LogLine> =
        log.latest().map(|l| (l.key(), l.clone())).collect();
    // The calibration rows: given now (stored for reruns and the report), else stored earlier.
    let calibration_path = args.out.join(CALIBRATION_FILE);
    let calibration = match calibration_set {
        Some((rows, source)) => {
            input::write_file(&calibration_path, &calibration_jsonl(&rows))?;
            Some((rows, source))
        }
        None if calibration_path.is_file() => {
            let text = std::fs::read_to_string(&calibration_path)
                .with_context(|| format!("cannot read {}", calibration_path.display()))?;
            let rows = parse_calibration_rows(&text, &calibration_path.display().to_string())?;
            Some((rows, None))
        }
        None => None,
    };
    let grader_validation = match &scoring {
        Scoring::Grader(g) => g
            .grader()
            .validation()
            .map(serde_json::to_value)
            .transpose()?,
        Scoring::Other(_) => None,
    };
    let (summary, corrections) = write_summary(
        &args.out,
        SummaryInputs {
            suite: &suite,
            model: &model.describe(),
            items: &items,
            latest: &latest,
            grader,
            calibration: calibration.as_ref(),
            grader_validation,
            shard: args.shard,
        },
    )?;
    let summary_path = args.out.join("summary.json");

    let model_usage = model.client().usage();
    eprintln!(
        "{}: {} items ({} already done, {} asked now: {} failed, {} cache hits); {} HTTP requests to the model ({} retries, {} throttled); cost ${:.4}",
        suite.name,
        items.len(),
        stats.already_done,
        stats.attempted,
        stats.failed,
        stats.cache_hits,
        model_usage.http_requests,
        model_usage.retries,
        model_usage.throttled,
        stats.cost_usd,
    );
    eprintln!(
        "{}: {}; {} ok, {} failed, {} not run, {} unscored → {}",
        suite.name,
        headline(&summary),
        summary.n_ok,
        summary.n_errors,
        summary.n_pending,
        summary.n_unscored,
        summary_path.display()
    );
    if let Some(c) = &corrections {
        for (metric, v) in &c.corrected {
            eprintln!(
                "{}: {metric} corrected by {} labelled samples (PPI++): {:.3} [{:.3}, {:.3}]",
                suite.name, v.n_labelled, v.estimate, v.ci[0], v.ci[1]
            );
        }
        for (metric, why) in &c.not_corrected {
            eprintln!("{}: {metric} not corrected: {why}", suite.name);
        }
    }
    if stats.stopped_by_limit {
        eprintln!(
            "arbiter: stopped at the cost limit (${:.4} spent, limit ${:.4}); rerun the same command to continue",
            stats.cost_usd,
            args.max_cost.unwrap_or(0.0)
        );
    }
    if summary.n_errors > 0 {
        let first = items
            .iter()
            .filter_map(|i| latest.get(&(i.key.clone(), i.epoch)))
            .find_map(|l| l.error.as_deref())
            .unwrap_or("");
        eprintln!(
            "arbiter: {} items failed (first: {first}); rerun with --retry-errors to ask them again",
            summary.n_errors
        );
    }
    let unscored_share = if summary.n_ok == 0 {
        0.0
    } else {
        summary.n_unscored as f64 / summary.n_ok as f64
    };
    let too_many_unscored = unscored_share > args.max_unscored;
    if too_many_unscored {
        eprintln!(
            "arbiter: {} of {} answered items could not be scored ({:.1}%, over --max-unscored {}); their metrics leave them out{}",
            summary.n_unscored,
            summary.n_ok,
            100.0 * unscored_share,
            args.max_unscored,
            if summary.n_unscored == summary.n_ok {
                ", so every metric is null"
            } else {
                ""
            }
        );
    }
    Ok(
        if summary.n_errors == 0 && summary.n_pending == 0 && !too_many_unscored {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// A shard directory read for a merge: its identity, log and summary.
struct ShardRun {
    dir: PathBuf,
    shard: Shard,
    log: arbiter_evals::runlog::LogText,
    summary: Value,
    calibration: Option<String>,
    _lock: input::RunDirLock,
}

fn read_shard_run(dir: &Path, identity: &mut Option<RunIdentity>) -> Result<ShardRun> {
    if !dir.join("run.json").is_file() {
        bail!("{}: not a run directory (no run.json)", dir.display());
    }
    // Held while reading, so a shard still running is refused rather than read half done.
    let lock = input::lock_run_dir(dir)?;
    let path = dir.join("run.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut this: RunIdentity = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a run description", path.display()))?;
    let Some(shard) = this.shard.take() else {
        bail!(
            "{}: not a sharded run (run.json has no shard); merge the directories of `eval run --shard I/N`",
            dir.display()
        );
    };
    match identity {
        None => *identity = Some(this),
        Some(first) if *first != this => bail!(
            "{}: another run than the first shard's ({}); every shard must be one suite, model, scorer and selection",
            dir.display(),
            serde_json::to_string(&this)?
        ),
        Some(_) => {}
    }
    let log = arbiter_evals::runlog::read_log(&dir.join("samples.jsonl"))?;
    if log.torn_bytes > 0 {
        eprintln!(
            "arbiter: {}: leaving out a torn last line ({} bytes) of an interrupted run",
            dir.join("samples.jsonl").display(),
            log.torn_bytes
        );
    }
    let summary_path = dir.join("summary.json");
    let summary: Value = match std::fs::read_to_string(&summary_path) {
        Ok(t) => serde_json::from_str(&t)
            .with_context(|| format!("{}: not a summary", summary_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", summary_path.display())),
    };
    let calibration = match std::fs::read_to_string(dir.join(CALIBRATION_FILE)) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read {}", dir.join(CALIBRATION_FILE).display()));
        }
    };
    Ok(ShardRun {
        dir: dir.to_path_buf(),
        shard,
        log,
        summary,
        calibration,
        _lock: lock,
    })
}

/// The one value every shard gives for `what`, or why not.
fn agreed<'a, T: PartialEq + std::fmt::Debug>(
    shards: &'a [ShardRun],
    what: &str,
    get: impl Fn(&'a ShardRun) -> T,
) -> Result<T> {
    let mut values = shards.iter().map(|s| (s, get(s)));
    let (_, first) = values.next().expect("at least one shard");
    for (s, v) in values {
        if v != first {
            bail!(
                "{}: its {what} differs from {}'s; the shards are not one run",
                s.dir.display(),
                shards[0].dir.display()
            );
        }
    }
    Ok(first)
}

/// `arbiter eval merge`: the shards' log lines in the suite's item order (each line as written;
/// an item's lines in the order its shard logged them), run.json without the shard, the
/// calibration rows, and summary.json computed as the unsharded run computes it.
fn merge_runs(args: MergeArgs) -> Result<ExitCode> {
    let mut identity = None;
    let mut shards = Vec::new();
    for (i, dir) in args.shards.iter().enumerate() {
        if args.shards[..i]
            .iter()
            .any(|d| input::resolved(d) == input::resolved(dir))
        {
            bail!(
                "{} is given twice: give each shard directory once",
                dir.display()
            );
        }
        if input::resolved(dir) == input::resolved(&args.out) {
            bail!(
                "--out {} is one of the shard directories",
                args.out.display()
            );
        }
        shards.push(read_shard_run(dir, &mut identity)?);
    }
    let identity = identity.expect("clap requires a shard directory");
    let count = shards[0].shard.count();
    for (i, s) in shards.iter().enumerate() {
        if s.shard.count() != count {
            bail!(
                "{} is shard {} but {} is shard {}: all shards must split the run into the same N",
                s.dir.display(),
                s.shard,
                shards[0].dir.display(),
                shards[0].shard
            );
        }
        if let Some(other) = shards[..i].iter().find(|o| o.shard == s.shard) {
            bail!(
                "{} and {} are both shard {}",
                other.dir.display(),
                s.dir.display(),
                s.shard
            );
        }
    }
    if shards.len() as u64 != count {
        let have: std::collections::BTreeSet<u64> =
            shards.iter().map(|s| s.shard.index()).collect();
        let missing: Vec<String> = (1..=count)
            .filter(|i| !have.contains(i))
            .map(|i| format!("{i}/{count}"))
            .collect();
        bail!(
            "shard {} missing: a merge needs all {count} shards",
            missing.join(", ")
        );
    }
    shards.sort_by_key(|s| s.shard);

    // The items of the unsharded run, as `eval run` builds them from run.json's settings.
    let mut suite = load_suite(&args.suite)?;
    if suite.name != identity.suite {
        bail!(
            "--suite {} is suite `{}`, but the shards ran `{}`",
            args.suite,
            suite.name,
            identity.suite
        );
    }
    suite.solver.epochs = identity.epochs;
    let selection = Selection {
        sample: identity.sample.map(|n| (n, identity.seed.unwrap_or(0))),
        limit: identity.limit,
    };
    let samples = selection.apply(suite.load(&input::data_root(args.data.as_deref()))?);
    let items = suite.work(&samples);
    let position: std::collections::HashMap<(String, u32), usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| ((item.key.clone(), item.epoch), i))
        .collect();

    // Every line belongs to an item of its own shard, asked what the suite asks now.
    let mut merged: Vec<(usize, &str)> = Vec::new();
    let mut latest: BTreeMap<(String, u32), LogLine> = BTreeMap::new();
    for s in &shards {
        let log_path = s.dir.join("samples.jsonl");
        let mut own: BTreeMap<(String, u32), &LogLine> = BTreeMap::new();
        for (n, (line, text)) in s.log.lines.iter().enumerate() {
            let key = line.key();
            let Some(&p) = position.get(&key) else {
                bail!(
                    "{}: line {}: item `{}` (epoch {}) is not an item of suite `{}` with this selection",
                    log_path.display(),
                    n + 1,
                    key.0,
                    key.1,
                    suite.name
                );
            };
            if !s.shard.contains_text(&items[p].sample.id) {
                bail!(
                    "{}: line {}: sample `{}` belongs to shard {}/{count}, not {}",
                    log_path.display(),
                    n + 1,
                    items[p].sample.id,
                    arbiter_core::shard::shard_of(&items[p].sample.id, count),
                    s.shard
                );
            }
            merged.push((p, text.as_str()));
            own.insert(key, line);
        }
        runner::check_logged(&suite, &items, &log_path, &|k| own.get(k).copied())?;
        latest.extend(own.into_iter().map(|(k, l)| (k, l.clone())));
    }
    // Stable: an item's lines keep their order (all of them come from one shard).
    merged.sort_by_key(|&(p, _)| p);

    let calibration_text = agreed(&shards, CALIBRATION_FILE, |s| s.calibration.as_deref())?;
    let calibration = calibration_text
        .map(|text| -> Result<_> {
            let rows = parse_calibration_rows(
                text,
                &shards[0].dir.join(CALIBRATION_FILE).display().to_string(),
            )?;
            let source = agreed(&shards, "calibration source", |s| {
                s.summary["calibration"]["source"]
                    .as_str()
                    .map(str::to_string)
            })?;
            Ok((rows, source))
        })
        .transpose()?;
    let grader_validation = agreed(&shards, "grader_validation", |s| {
        s.summary.get("grader_validation").cloned()
    })?;

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let _lock = input::lock_run_dir(&args.out)?;
    if args.out.join("run.json").exists() {
        bail!(
            "{} already holds a run (run.json); merge into a new directory",
            args.out.display()
        );
    }
    let mut log_text = String::new();
    for (_, text) in &merged {
        log_text.push_str(text);
        log_text.push('\n');
    }
    input::write_file(&args.out.join("samples.jsonl"), &log_text)?;
    if let Some(text) = calibration_text {
        input::write_file(&args.out.join(CALIBRATION_FILE), text)?;
    }
    let (summary, _) = write_summary(
        &args.out,
        SummaryInputs {
            suite: &suite,
            model: &identity.model,
            items: &items,
            latest: &latest,
            grader: identity.grader.clone(),
            calibration: calibration.as_ref(),
            grader_validation,
            shard: None,
        },
    )?;
    // Last: a directory with run.json is a finished merge (or a run), never a half one.
    input::write_file(
        &args.out.join("run.json"),
        &(serde_json::to_string_pretty(&identity)? + "\n"),
    )?;
    eprintln!(
        "{}: merged {count} shards: {} items, {} log lines; {}; {} ok, {} failed, {} not run, {} unscored → {}",
        suite.name,
        items.len(),
        merged.len(),
        headline(&summary),
        summary.n_ok,
        summary.n_errors,
        summary.n_pending,
        summary.n_unscored,
        args.out.join("summary.json").display()
    );
    // As `eval run` with its defaults: any failed, missing or unscored item fails the merge.
    Ok(
        if summary.n_errors == 0 && summary.n_pending == 0 && summary.n_unscored == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

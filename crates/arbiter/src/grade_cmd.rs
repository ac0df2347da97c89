//! `arbiter grade`: P(yes) per proposition for every sample of a JSONL file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use arbiter_core::jsonl;
use arbiter_core::{CellFailures, PropositionSpec, Sample};
use arbiter_graders::openai::Prices;
use arbiter_graders::{Grader, GraderOptions, PromptLayout, SampleGrades};
use arbiter_rbr::Policy;
use clap::Args;

use crate::input;

/// Which grader to build and how: shared by `grade`, `grader calibrate` and the `rbr`
/// subcommands that grade (`--features grader`).
#[derive(Debug, Args)]
pub struct BackendFlags {
    /// `embedded` (offline MiniLM + learned heads) or `openai:MODEL@BASE_URL`.
    #[arg(long, default_value = "embedded")]
    pub grader: String,
    /// Heads file for the embedded grader (default: the built-in heads for the default policy).
    #[arg(long)]
    pub heads: Option<PathBuf>,
    /// Directory with model.safetensors, tokenizer.json, config.json (default:
    /// $ARBITER_MODEL_DIR, else $ARBITER_CACHE/all-minilm-l6-v2, else ~/.cache/arbiter/…).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Environment variable holding the API key for openai graders.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// Do not read or write the response cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Price of uncached prompt tokens, USD per million (cost accounting only).
    #[arg(long, default_value_t = 0.0)]
    pub price_input: f64,
    /// Price of prompt tokens served from the server's prefix cache, USD per million.
    #[arg(long, default_value_t = 0.0)]
    pub price_cached_input: f64,
    /// Price of generated tokens, USD per million.
    #[arg(long, default_value_t = 0.0)]
    pub price_output: f64,
    /// Prompt layout for openai graders: `glossary` (every proposition's question in the
    /// system message, shared by all samples; the proposition's name last) or `question` (the
    /// full question last).
    #[arg(long, default_value = "glossary")]
    pub prompt_layout: PromptLayout,
    /// Per-request timeout of openai graders, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Retries per request of openai graders after the first attempt (transport errors, 408,
    /// 429, 5xx).
    #[arg(long, default_value_t = 4)]
    pub max_retries: u32,
    /// Share of graded cells (sample × proposition) allowed to come back without a probability
    /// (failed requests, answers without a yes/no token) before the command fails. Default 0:
    /// any such cell fails it (exit 1); the samples they belong to are left out and counted.
    #[arg(long, default_value_t = 0.0)]
    pub max_failed: f64,
}

/// `--timeout` as a duration, or why not.
pub fn timeout(seconds: f64) -> Result<std::time::Duration> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e9) {
        bail!("--timeout must be a positive number of seconds");
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

impl BackendFlags {
    /// Build the grader; an openai grader's glossary lists `glossary` (empty: the propositions
    /// of each call).
    pub fn build(&self, glossary: &[PropositionSpec]) -> Result<Box<dyn Grader + Send + Sync>> {
        let options = GraderOptions {
            heads: self.heads.clone(),
            model_dir: self.model_dir.clone(),
            no_cache: self.no_cache,
            api_key_env: Some(self.api_key_env.clone()),
            prices: Prices {
                input_per_mtok: self.price_input,
                cached_input_per_mtok: self.price_cached_input,
                output_per_mtok: self.price_output,
            },
            max_concurrency: None,
            prompt_layout: self.prompt_layout,
            glossary: glossary.to_vec(),
            timeout: Some(timeout(self.timeout)?),
            max_retries: Some(self.max_retries),
        };
        if !(0.0..=1.0).contains(&self.max_failed) {
            bail!("--max-failed must be a fraction between 0 and 1");
        }
        Ok(arbiter_graders::from_spec(&self.grader, &options)?)
    }
}

/// Options shared by every command that builds a grader for a policy's propositions.
#[derive(Debug, Args)]
pub struct GraderFlags {
    #[command(flatten)]
    pub backend: BackendFlags,
    /// Policy TOML whose propositions are graded (default: the built-in policy).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Grade only these propositions (comma-separated names from the policy).
    #[arg(long, value_delimiter = ',')]
    pub propositions: Vec<String>,
}

impl GraderFlags {
    /// The `--policy` file, or the built-in default; read once per command and handed to
    /// [`GraderFlags::propositions`] and [`GraderFlags::build`].
    pub fn policy(&self) -> Result<Policy> {
        input::load_policy(self.policy.as_deref())
    }

    /// The policy's propositions, narrowed to `--propositions` when given.
    pub fn propositions(&self, policy: &Policy) -> Result<Vec<PropositionSpec>> {
        let all = policy.propositions();
        if self.propositions.is_empty() {
            return Ok(all.to_vec());
        }
        self.propositions
            .iter()
            .map(|name| {
                all.iter()
                    .find(|p| &p.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "unknown proposition {name:?}: the policy defines {}",
                            all.iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
            })
            .collect()
    }

    /// Build the grader; an openai grader's glossary is the whole policy, so narrowing with
    /// `--propositions` sends the same prompts (and hits the same cache entries) as a full run.
    pub fn build(&self, policy: &Policy) -> Result<Box<dyn Grader + Send + Sync>> {
        self.backend.build(policy.propositions())
    }
}

/// Read samples, stopping at the first bad line (a repeated id included) with its
/// `file:line: field` error.
pub fn read_samples(path: &Path, allow_empty: bool, max_line_bytes: usize) -> Result<Vec<Sample>> {
    let records = crate::input::read_samples(
        path,
        &mut crate::input::Problems::new(false)
            .allowing_empty(allow_empty)
            .with_line_limit(max_line_bytes),
    )?;
    Ok(records.into_iter().map(|r| r.record).collect())
}

/// `arbiter grade` flags.
#[derive(Debug, Args)]
pub struct GradeArgs {
    #[command(flatten)]
    grader: GraderFlags,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Samples per grading call; output is written after each (default: the grader's choice,
    /// 4096 for the embedded grader, 64 for HTTP graders).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Accept an input without samples (empty output) instead of failing.
    #[arg(long)]
    allow_empty: bool,
    /// Longest sample line read, in bytes; a longer one is an error naming its line.
    #[arg(long, default_value_t = arbiter_core::jsonl::DEFAULT_MAX_LINE_BYTES)]
    max_sample_bytes: usize,
    /// Samples to grade: JSONL with `prompt` and `completion`.
    input: PathBuf,
}

/// Grade every sample, writing `{"id", "propositions", "flags"}` lines in input order.
pub fn run(args: GradeArgs) -> Result<ExitCode> {
    if let Some(o) = &args.out {
        input::check_distinct(&[("input", &args.input)], &[("--out", o)])?;
    }
    let policy = args.grader.policy()?;
    let propositions = args.grader.propositions(&policy)?;
    let samples = read_samples(&args.input, args.allow_empty, args.max_sample_bytes)?;
    let grader = args.grader.build(&policy)?;
    let mut out = input::create(args.out.as_deref())?;
    let mut flag_counts: std::collections::BTreeMap<&'static str, usize> = Default::default();
    let mut failures = CellFailures::default();
    grade_all(
        grader.as_ref(),
        &samples,
        &propositions,
        args.batch_size,
        &mut |grades| {
            for g in grades {
                let record = g.to_record();
                for flag in record.flags.values() {
                    *flag_counts.entry(flag.as_str()).or_default() += 1;
                }
                failures.add(&record, &propositions);
                jsonl::write_line(&mut out, &record)?;
            }
            Ok(())
        },
    )?;
    out.finish()?;
    let flags: Vec<String> = flag_counts
        .iter()
        .map(|(f, n)| format!("{n} {f}"))
        .collect();
    eprintln!(
        "graded {} samples × {} propositions with {}{}",
        samples.len(),
        propositions.len(),
        grader.describe(),
        if flags.is_empty() {
            String::new()
        } else {
            format!("; flags: {}", flags.join(", "))
        }
    );
    if let Some(usage) = grader.usage_summary() {
        eprintln!("{usage}");
    }
    if failures.exceed(args.grader.backend.max_failed) {
        eprintln!(
            "arbiter: {}; their lines carry the flags and no probability (--max-failed {} allows {:.1}%)",
            failures.describe(&grader.describe()),
            args.grader.backend.max_failed,
            100.0 * args.grader.backend.max_failed
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Grade `samples` in calls of `batch_size` (default: the grader's preferred size), handing
/// each call's grades, in input order, to `sink`. On a terminal a progress bar runs on
/// standard error; otherwise nothing is drawn.
pub fn grade_all(
    grader: &dyn Grader,
    samples: &[Sample],
    propositions: &[PropositionSpec],
    batch_size: Option<usize>,
    sink: &mut dyn FnMut(&[SampleGrades]) -> Result<()>,
) -> Result<()> {
    let batch = batch_size
        .unwrap_or_else(|| grader.preferred_batch_size())
        .max(1);
    let bar = crate::progress::bar(samples.len() as u64, "grading");
    let mut start = 0;
    for chunk in samples.chunks(batch) {
        let grades = grader.grade_batch_with_progress(chunk, propositions, &mut |done| {
            bar.set_position((start + done.min(chunk.len())) as u64);
        })?;
        if grades.len() != chunk.len() {
            bail!(
                "grader returned {} results for {} samples",
                grades.len(),
                chunk.len()
            );
        }
        sink(&grades)?;
        start += chunk.len();
        bar.set_position(start as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

//! `arbiter grade`: P(yes) per proposition for every sample of a JSONL file.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use arbiter_columnar::ParquetWriter;
use arbiter_columnar::grades::GradesSchema;
use arbiter_core::jsonl;
use arbiter_core::{
    CellFailures, FieldError, GradeRecord, PropositionSpec, Sample, SampleId, Shard,
};
use arbiter_graders::openai::Prices;
use arbiter_graders::{Grader, GraderOptions, PromptLayout, SampleGrades};
use arbiter_rbr::Policy;
use clap::Args;

use crate::input::{self, RecordFormat};

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
    /// Output format (default: Parquet when `--out` ends in `.parquet`, else JSONL).
    #[arg(long, value_enum)]
    format: Option<RecordFormat>,
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
    /// Grade only shard I of N (1-based: `--shard 1/4` … `--shard 4/4`): the samples whose id's
    /// SHA-256 (first 8 bytes, big-endian, of the id's text) is I − 1 modulo N, written in input
    /// order. The whole input is still read and checked. Put the N outputs back together with
    /// `--merge`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard, conflicts_with = "merge")]
    shard: Option<Shard>,
    /// Instead of grading, merge the outputs of `--shard 1/N` … `--shard N/N` (repeat the flag
    /// once per file) back into one grades file: their lines, unchanged, in the order of INPUT's
    /// samples, which is byte for byte what grading INPUT unsharded writes. Every sample of
    /// INPUT must have exactly one line in the files, and every line a sample of INPUT. Shards
    /// named `*.parquet` are read as Parquet (their rows written as the JSONL grader writes
    /// them); with a Parquet output the merged rows are written as one Parquet file.
    #[arg(long, value_name = "SHARD.jsonl|SHARD.parquet")]
    merge: Vec<PathBuf>,
    /// Samples to grade: JSONL with `prompt` and `completion`, or Parquet (`.parquet`).
    input: PathBuf,
}

/// The value of a `--shard` flag (clap names the flag in its message).
pub fn parse_shard(text: &str) -> std::result::Result<Shard, String> {
    Shard::parse(text).map_err(|e| e.to_string())
}

/// Grade every sample, writing `{"id", "propositions", "flags"}` lines in input order.
pub fn run(args: GradeArgs) -> Result<ExitCode> {
    if let Some(o) = &args.out {
        let mut inputs = vec![("input", args.input.as_path())];
        inputs.extend(args.merge.iter().map(|m| ("--merge file", m.as_path())));
        input::check_distinct(&inputs, &[("--out", o)])?;
    }
    let format = RecordFormat::choose(args.format, args.out.as_deref())?;
    if !args.merge.is_empty() {
        return merge(&args, format);
    }
    let policy = args.grader.policy()?;
    let propositions = args.grader.propositions(&policy)?;
    let mut samples = read_samples(&args.input, args.allow_empty, args.max_sample_bytes)?;
    let n_input = samples.len();
    if let Some(shard) = args.shard {
        samples.retain(|s| shard.contains(&s.id));
    }
    let grader = args.grader.build(&policy)?;
    let mut out = GradesOut::create(
        args.out.as_deref(),
        format,
        &samples,
        propositions.iter().map(|p| p.name.clone()),
    )?;
    let mut flag_counts: std::collections::BTreeMap<&'static str, usize> = Default::default();
    let mut failures = CellFailures::default();
    grade_all(
        grader.as_ref(),
        &samples,
        &propositions,
        args.batch_size,
        &mut |grades| {
            let records: Vec<GradeRecord> = grades.iter().map(|g| g.to_record()).collect();
            for record in &records {
                for flag in record.flags.values() {
                    *flag_counts.entry(flag.as_str()).or_default() += 1;
                }
                failures.add(record, &propositions);
            }
            out.write(&records)
        },
    )?;
    out.finish()?;
    let flags: Vec<String> = flag_counts
        .iter()
        .map(|(f, n)| format!("{n} {f}"))
        .collect();
    eprintln!(
        "{}graded {} samples × {} propositions with {}{}",
        match args.shard {
            Some(shard) => format!("shard {shard}: {n_input} samples read, "),
            None => String::new(),
        },
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

/// Where `arbiter grade` writes: JSON lines, or a Parquet file fed one batch per
/// grading call.
enum GradesOut {
    Jsonl(input::Output),
    Parquet {
        path: PathBuf,
        schema: GradesSchema,
        writer: Box<ParquetWriter<input::AtomicFile>>,
    },
}

impl GradesOut {
    /// An output for grading `samples` on `propositions`.
    fn create(
        out: Option<&Path>,
        format: RecordFormat,
        samples: &[Sample],
        propositions: impl IntoIterator<Item = String>,
    ) -> Result<GradesOut> {
        Ok(match (format, out) {
            (RecordFormat::Parquet, Some(path)) => {
                let kind = arbiter_columnar::grades::id_kind(samples.iter().map(|s| &s.id), path)?;
                let schema = GradesSchema::new(kind, propositions, path)?;
                let writer =
                    ParquetWriter::new(input::AtomicFile::create(path)?, path, schema.schema())?;
                GradesOut::Parquet {
                    path: path.to_path_buf(),
                    schema,
                    writer: Box::new(writer),
                }
            }
            (RecordFormat::Parquet, None) => bail!("Parquet output needs --out FILE"),
            (RecordFormat::Jsonl, out) => GradesOut::Jsonl(input::create(out)?),
        })
    }

    fn write(&mut self, records: &[GradeRecord]) -> Result<()> {
        match self {
            GradesOut::Jsonl(out) => {
                for record in records {
                    jsonl::write_line(out, record)?;
                }
            }
            GradesOut::Parquet {
                path,
                schema,
                writer,
            } => {
                if !records.is_empty() {
                    writer.write(&schema.batch(records, path)?)?;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            GradesOut::Jsonl(out) => out.finish(),
            GradesOut::Parquet { writer, .. } => writer.finish()?.finish(),
        }
    }
}

/// One merged grade: a JSONL line kept as written, or a record read from a Parquet shard.
enum Merged {
    Line(String),
    Record(GradeRecord),
}

/// `arbiter grade --merge`: the shard files' grades in INPUT's order; JSONL lines are copied
/// as they are, Parquet shards (`.parquet`) are read by rows.
fn merge(args: &GradeArgs, format: RecordFormat) -> Result<ExitCode> {
    let samples = read_samples(&args.input, args.allow_empty, args.max_sample_bytes)?;
    // Ids are unique by their text (read_samples refuses `5` and `"5"` in one file), and a
    // grade line's id is its sample's.
    let mut position: HashMap<String, usize> = HashMap::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        position.insert(s.id.to_string(), i);
    }
    drop(samples);
    let n = position.len();
    let mut lines: Vec<Option<(String, Merged)>> = (0..n).map(|_| None).collect();
    let input_name = args.input.display().to_string();
    let mut place = |at: String, id: &SampleId, entry: Merged| -> Result<()> {
        let id = id.to_string();
        let Some(&p) = position.get(&id) else {
            bail!(
                "{at}: sample {id:?} is not in {input_name}: these are the grades of another input"
            );
        };
        if let Some((first, _)) = &lines[p] {
            bail!("{at}: sample {id:?} is graded twice (also {first}): merge each shard once");
        }
        lines[p] = Some((at, entry));
        Ok(())
    };
    for file in &args.merge {
        let name = file.display().to_string();
        if arbiter_columnar::is_parquet(file) {
            for r in arbiter_columnar::grades::read(file)? {
                let at = format!("{name}: {}", r.location);
                let record = r.record.map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
                let id = record.id.clone();
                place(at, &id, Merged::Record(record))?;
            }
            continue;
        }
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the --merge file {name}"))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{name}:{}", i + 1);
            let value: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("{at}: not a grades line"))?;
            let id = match value.get("id") {
                Some(v) => SampleId::from_value(v)
                    .map_err(|e| anyhow::anyhow!("{at}: field `id` {}", e.message))?,
                None => bail!("{at}: field `id` is missing"),
            };
            place(at, &id, Merged::Line(line.to_string()))?;
        }
    }
    let missing: Vec<usize> = (0..n).filter(|&p| lines[p].is_none()).collect();
    if let Some(&first) = missing.first() {
        let id = position
            .iter()
            .find(|&(_, &p)| p == first)
            .map(|(id, _)| id.clone())
            .unwrap_or_default();
        bail!(
            "{} of {n} samples of {input_name} have no line in the --merge files (first: {id:?}, line {} of the input); merge all N shards",
            missing.len(),
            first + 1
        );
    }
    match (format, args.out.as_deref()) {
        (RecordFormat::Parquet, Some(path)) => {
            let records = lines
                .into_iter()
                .flatten()
                .map(|(at, entry)| match entry {
                    Merged::Record(r) => Ok(r),
                    Merged::Line(line) => serde_json::from_str(&line)
                        .map_err(|e| FieldError::new("", e.to_string()))
                        .and_then(GradeRecord::from_value)
                        .map_err(|e| anyhow::anyhow!("{at}: {e}")),
                })
                .collect::<Result<Vec<_>>>()?;
            input::write_parquet(path, arbiter_columnar::grades::to_batches(&records, path)?)?;
        }
        (RecordFormat::Parquet, None) => bail!("Parquet output needs --out FILE"),
        (RecordFormat::Jsonl, out) => {
            let mut out = input::create(out)?;
            for (_, entry) in lines.into_iter().flatten() {
                match entry {
                    Merged::Line(line) => {
                        out.write_all(line.as_bytes())?;
                        out.write_all(b"\n")?;
                    }
                    Merged::Record(record) => jsonl::write_line(&mut out, &record)?,
                }
            }
            out.finish()?;
        }
    }
    eprintln!(
        "merged {n} grade lines from {} files in the order of {input_name}",
        args.merge.len()
    );
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

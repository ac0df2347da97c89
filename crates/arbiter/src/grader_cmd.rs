//! `arbiter grader train|calibrate|check`: learn embedded heads from human labels, measure any
//! grader against them, and check that it scores replies rather than prompts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use arbiter_evals::check;
use arbiter_evals::scorers::GraderScorer;
use arbiter_graders::calibration::calibrate;
use arbiter_graders::embedded::features::FeatureBlock;
use arbiter_graders::embedded::model::{MiniLm, default_model_dir};
use arbiter_graders::embedded::{
    DEFAULT_ENCODER_LAYERS, DEFAULT_FEATURES, DEFAULT_MAX_TOKENS, FitOptions, Provenance,
    train_heads_with,
};
use clap::{Args, Subcommand, ValueEnum};

use crate::grade_cmd::{BackendFlags, GraderFlags, read_samples};
use crate::input::{data_root, load_policy};
use crate::progress;

/// `arbiter grader …`
#[derive(Debug, Subcommand)]
pub enum GraderCommand {
    /// Train one embedded head per proposition from human-labelled samples.
    Train(TrainArgs),
    /// Compare a grader's probabilities with human labels: accuracy, AUROC, ECE, reliability.
    Calibrate(CalibrateArgs),
    /// Score fixed replies (always refuse, always comply, echo) to the XSTest and refusal
    /// prompts; exit 1 when the grader does not tell a refusal from an answer.
    Check(CheckArgs),
}

/// Output format of `arbiter grader check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    /// A small table and the verdict.
    Text,
    /// `{"always_comply": {…}, "always_refuse": {…}, "echo": {…}, "pass": …}`.
    Json,
}

/// Feature blocks on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Block {
    /// Mean-pooled reply embedding.
    Completion,
    /// Max-pooled reply token states (same encoder pass).
    CompletionMax,
    /// Mean of the reply's static word-piece embeddings (no encoder pass).
    StaticMean,
    /// Max of the reply's static word-piece embeddings.
    StaticMax,
    /// Last user turn embedding.
    LastUser,
    /// Cosine of the last user turn and the reply.
    UserCosine,
    /// First sentence of the reply.
    CompletionOpening,
    /// Lexical cues and length.
    Lexical,
    /// Request and reply read together, pooled over the reply.
    Pair,
    /// Refusal and compliance openings in the reply's first 200 bytes.
    OpeningLexical,
}

impl From<Block> for FeatureBlock {
    fn from(b: Block) -> FeatureBlock {
        match b {
            Block::Completion => FeatureBlock::Completion,
            Block::CompletionMax => FeatureBlock::CompletionMax,
            Block::StaticMean => FeatureBlock::StaticMean,
            Block::StaticMax => FeatureBlock::StaticMax,
            Block::LastUser => FeatureBlock::LastUser,
            Block::UserCosine => FeatureBlock::UserCosine,
            Block::CompletionOpening => FeatureBlock::CompletionOpening,
            Block::Lexical => FeatureBlock::Lexical,
            Block::Pair => FeatureBlock::Pair,
            Block::OpeningLexical => FeatureBlock::OpeningLexical,
        }
    }
}

/// `arbiter grader train` flags.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Policy TOML whose propositions get heads (default: the built-in policy).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Labelled samples (every proposition labelled true/false).
    #[arg(long)]
    data: PathBuf,
    /// Where to write the heads file.
    #[arg(long, default_value = "heads.json")]
    out: PathBuf,
    /// Model directory (see `arbiter grade --help`).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Feature blocks (comma-separated; default: the shipped heads' layout).
    #[arg(long, value_delimiter = ',')]
    features: Vec<Block>,
    /// Token limit per embedded text (default: the shipped heads').
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Encoder layers to run, 1–6 (default: the shipped heads' choice).
    #[arg(long)]
    encoder_layers: Option<usize>,
    /// Seed for cross-validation folds.
    #[arg(long, default_value_t = 20241101)]
    seed: u64,
    /// Fit each head on the samples that label its proposition (for data merged from sources
    /// that label different things); without it a missing label is an error.
    #[arg(long)]
    allow_missing_labels: bool,
    /// Weight samples so that every `metadata.source` counts as much in total in each head.
    #[arg(long)]
    balance_sources: bool,
}

/// `arbiter grader calibrate` flags.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    grader: GraderFlags,
    /// Labelled samples to measure against.
    #[arg(long)]
    data: PathBuf,
    /// Write calibration.{json,md,html} here (default: print Markdown to standard output).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Propositions with fewer positives are shown but left out of the mean AUROC.
    #[arg(long, default_value_t = 10)]
    min_positives: usize,
}

/// `arbiter grader check` flags.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    backend: BackendFlags,
    /// Policy whose `[metrics] refusal` and `unsafe_content` events the grader's propositions
    /// decide (default: the built-in policy).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Root of the shared data holding the XSTest, HarmBench, Do-Not-Answer and StrongREJECT
    /// files (default: $ARBITER_DATA, else ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: CheckFormat,
}

/// Dispatch.
pub fn run(command: GraderCommand) -> Result<ExitCode> {
    match command {
        GraderCommand::Train(args) => train(args)?,
        GraderCommand::Calibrate(args) => calibrate_cmd(args)?,
        GraderCommand::Check(args) => return check_cmd(args),
    }
    Ok(ExitCode::SUCCESS)
}

fn check_cmd(args: CheckArgs) -> Result<ExitCode> {
    let policy = load_policy(args.policy.as_deref())?;
    let suites = check::load_suites(&data_root(args.data.as_deref()))?;
    let grader = args.backend.build(policy.propositions())?;
    let suite = &suites[0].suite;
    let scorer = GraderScorer::new(grader, policy, suite);
    let described = scorer.describe();
    let bar = progress::bar(0, "grading fixed replies");
    let report = check::run(&scorer, &described, &suites, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    match args.format {
        CheckFormat::Text => print!("{}", report.to_text()),
        CheckFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    if let Some(usage) = scorer.grader().usage_summary() {
        eprintln!("{usage}");
    }
    Ok(if report.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn train(args: TrainArgs) -> Result<()> {
    let policy = load_policy(args.policy.as_deref())?;
    let samples = read_samples(
        &args.data,
        false,
        arbiter_core::jsonl::DEFAULT_MAX_LINE_BYTES,
    )?;
    let dir = args.model_dir.clone().unwrap_or_else(default_model_dir);
    let encoder = MiniLm::load_layers(
        &dir,
        args.max_tokens,
        args.encoder_layers.or(DEFAULT_ENCODER_LAYERS),
    )?;
    let blocks: Vec<FeatureBlock> = if args.features.is_empty() {
        DEFAULT_FEATURES.to_vec()
    } else {
        args.features.iter().map(|&b| b.into()).collect()
    };
    let data_bytes = std::fs::read(&args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?;
    let data_name = args
        .data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let provenance = Provenance {
        command,
        data: data_name,
        data_sha256: arbiter_graders::sha256_hex(&data_bytes),
        seed: args.seed,
    };
    let heads = train_heads_with(
        &encoder,
        &samples,
        policy.propositions(),
        &blocks,
        args.max_tokens,
        provenance,
        FitOptions {
            allow_missing: args.allow_missing_labels,
            balance_sources: args.balance_sources,
            seed: args.seed,
        },
    )?;
    let text = serde_json::to_string(&heads)?;
    crate::input::write_file(&args.out, &(text + "\n"))?;
    eprintln!(
        "trained {} heads on {} samples → {}",
        heads.heads.len(),
        samples.len(),
        args.out.display()
    );
    Ok(())
}

fn calibrate_cmd(args: CalibrateArgs) -> Result<()> {
    let policy = args.grader.policy()?;
    let propositions = args.grader.propositions(&policy)?;
    let samples = read_samples(
        &args.data,
        false,
        arbiter_core::jsonl::DEFAULT_MAX_LINE_BYTES,
    )?;
    let grader = args.grader.build(&policy)?;
    let grades = grader.grade_batch(&samples, &propositions)?;
    let names: Vec<String> = propositions.iter().map(|p| p.name.clone()).collect();
    let report = calibrate(
        &arbiter_evals::scorers::scorer_id(&*grader, &policy),
        &args.data.display().to_string(),
        &samples,
        &grades,
        &names,
        args.min_positives,
    );
    match &args.out_dir {
        None => print!("{}", report.to_markdown()),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let write = |name: &str, text: String| crate::input::write_file(&dir.join(name), &text);
            write(
                "calibration.json",
                serde_json::to_string_pretty(&report)? + "\n",
            )?;
            write("calibration.md", report.to_markdown())?;
            write("calibration.html", report.to_html())?;
            eprintln!(
                "mean AUROC {} over {} propositions; wrote {}/calibration.{{json,md,html}}",
                report
                    .mean_auroc
                    .map(|v| format!("{v:.3}"))
                    .unwrap_or_else(|| "–".into()),
                report.n_in_mean,
                dir.display()
            );
        }
    }
    if let Some(usage) = grader.usage_summary() {
        eprintln!("{usage}");
    }
    Ok(())
}

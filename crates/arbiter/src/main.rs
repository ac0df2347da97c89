//! `arbiter`: a thin command line over the Arbiter libraries.
//!
//! Parsing happens here; each subcommand module turns flags into library calls and formats the
//! output. Exit codes: 0 success, 1 a check failed, 2 bad input or usage.

mod eval_cmd;
mod float_text;
mod grade_cmd;
mod grader_cmd;
mod input;
mod perspectives_cmd;
mod progress;
mod rbr_cmd;
mod report_cmd;
mod reward_cmd;
mod select_cmd;
mod serve_cmd;
mod stats_cmd;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A command that did its work but whose result must not be taken as a success (a grader that
/// failed on too many cells): exit 1, where bad input exits 2.
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

/// Rule-based rewards, graders, safety evals and annotation statistics.
#[derive(Debug, Parser)]
#[command(name = "arbiter", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rule-Based Rewards: classify, fit, score, evaluate and report.
    #[command(subcommand)]
    Rbr(rbr_cmd::RbrCommand),
    /// Inter-rater agreement: Krippendorff's alpha, kappas, Gwet's AC1/AC2.
    Agreement(stats_cmd::AgreementArgs),
    /// Aggregate ratings into one label per item (MV, Wawa, ZBS, DS, one-coin DS, GLAD, MACE).
    Aggregate(stats_cmd::AggregateArgs),
    /// Rater-identity report: group alphas, in-group agreement, rates, tests, dividing items.
    Disagreement(stats_cmd::DisagreementArgs),
    /// Model every viewpoint: per-annotator and per-pool models over item texts (train,
    /// evaluate as the shared tasks score, predict).
    #[command(subcommand)]
    Perspectives(perspectives_cmd::PerspectivesCommand),
    /// The fitted RBR reward as an HTTP service for RL trainers (TRL, OpenRLHF, verl).
    #[command(subcommand)]
    Reward(reward_cmd::RewardCommand),
    /// Run the annotation server (admin token from ARBITER_ADMIN_TOKEN).
    Serve(serve_cmd::ServeArgs),
    /// Grade samples: P(yes) per proposition, one JSON line per sample.
    Grade(grade_cmd::GradeArgs),
    /// Train embedded grader heads, or calibrate a grader against human labels.
    #[command(subcommand)]
    Grader(grader_cmd::GraderCommand),
    /// Safety evals: run a suite against an OpenAI-compatible model (resumable).
    #[command(subcommand)]
    Eval(eval_cmd::EvalCommand),
    /// System-card report over eval runs: tables with bootstrap CIs, models side by side, scorecard.
    Report(report_cmd::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Rbr(cmd) => rbr_cmd::run(cmd),
        Command::Agreement(args) => stats_cmd::agreement(args),
        Command::Aggregate(args) => stats_cmd::aggregate(args),
        Command::Disagreement(args) => stats_cmd::disagreement(args),
        Command::Perspectives(cmd) => perspectives_cmd::run(cmd),
        Command::Reward(cmd) => reward_cmd::run(cmd),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Grade(args) => grade_cmd::run(args),
        Command::Grader(cmd) => grader_cmd::run(cmd),
        Command::Eval(cmd) => eval_cmd::run(cmd),
        Command::Report(args) => report_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("arbiter: {err:#}");
            if err.downcast_ref::<Failed>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

//! `arbiter`: a thin command line over the Arbiter libraries.

mod grade_cmd;
mod grader_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Rule-based rewards, graders, safety evals and annotation statistics.
#[derive(Debug, Parser)]
#[command(name = "arbiter", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Grade samples: P(yes) per proposition, one JSON line per sample.
    Grade(grade_cmd::GradeArgs),
    /// Train embedded grader heads, or calibrate a grader against human labels.
    #[command(subcommand)]
    Grader(grader_cmd::GraderCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Grade(args) => grade_cmd::run(args),
        Command::Grader(cmd) => grader_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("arbiter: {err:#}");
            ExitCode::from(2)
        }
    }
}

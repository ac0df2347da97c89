//! `arbiter report RUN_DIR… --out DIR`: the system-card report over eval runs. Reads each run's
//! `summary.json`, `samples.jsonl` and `calibration.jsonl` (when there is one), and optional
//! scorecard and calibration reports, hands the texts to `arbiter_evals::report`, and writes
//! `report.md`, `report.html` and `report.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use arbiter_evals::corrected::CALIBRATION_FILE;
use arbiter_evals::report::{self, ReportConfig, RunInput, input};
use arbiter_evals::scorecard::{DEFAULT_SCORECARD, ScorecardSpec};

use crate::input::write_file;

/// `arbiter report` flags.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Run directories written by `arbiter eval run` (each holds summary.json and samples.jsonl).
    #[arg(required = true, value_name = "RUN_DIR")]
    runs: Vec<PathBuf>,
    /// Write report.md, report.html and report.json into this directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap replicates per interval (0 = values only).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Scorecard definition (TOML; default: the built-in suites/scorecard.toml).
    #[arg(long, value_name = "FILE")]
    scorecard: Option<PathBuf>,
    /// A grader calibration report (calibration.json of `arbiter grader calibrate`); repeatable.
    /// Shown beside the metrics of runs whose grader or judge it describes.
    #[arg(long, value_name = "FILE")]
    calibration: Vec<PathBuf>,
    /// Page title.
    #[arg(long, default_value = "Safety evaluation report")]
    title: String,
}

/// A file's text; invalid UTF-8 is reported with its line.
fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: cannot read the {what}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        anyhow::anyhow!("{}:{line}: not valid UTF-8", path.display())
    })
}

fn read_run(dir: &Path) -> Result<RunInput> {
    if !dir.exists() {
        bail!("{}: no such run directory", dir.display());
    }
    if !dir.is_dir() {
        bail!(
            "{}: not a directory (pass the run directory that holds summary.json and samples.jsonl)",
            dir.display()
        );
    }
    let summary = read_text(&dir.join("summary.json"), "run summary")?;
    let samples = read_text(&dir.join("samples.jsonl"), "run log")?;
    let run = RunInput::parse(&dir.display().to_string(), &summary, &samples)?;
    let calibration = dir.join(CALIBRATION_FILE);
    if calibration.is_file() {
        let text = read_text(&calibration, "calibration set")?;
        return Ok(run.with_calibration(&text)?);
    }
    Ok(run)
}

/// Run `arbiter report`.
pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let runs = args
        .runs
        .iter()
        .map(|d| read_run(d))
        .collect::<Result<Vec<_>>>()?;
    let scorecard = match &args.scorecard {
        None => ScorecardSpec::from_toml_str(DEFAULT_SCORECARD, "suites/scorecard.toml")
            .map_err(anyhow::Error::msg)?,
        Some(p) => {
            let text = read_text(p, "scorecard")?;
            ScorecardSpec::from_toml_str(&text, &p.display().to_string())
                .map_err(anyhow::Error::msg)?
        }
    };
    let calibrations = args
        .calibration
        .iter()
        .map(|p| {
            let text = read_text(p, "calibration report")?;
            Ok(input::parse_calibration(&text, &p.display().to_string())?)
        })
        .collect::<Result<Vec<_>>>()?;
    let config = ReportConfig {
        title: args.title,
        seed: args.seed,
        bootstrap: args.bootstrap,
        scorecard,
        calibrations,
    };
    let built = report::build(&runs, &config);
    let rendered = report::render::render(&built);
    // The three files appear together or not at all.
    let staged = crate::input::StagedDir::begin(&args.out, crate::input::REPORT_MARKER)?;
    write_file(&staged.path().join("report.md"), &rendered.markdown)?;
    write_file(&staged.path().join("report.html"), &rendered.html)?;
    write_file(
        &staged.path().join("report.json"),
        &(serde_json::to_string_pretty(&rendered.json)? + "\n"),
    )?;
    staged.commit()?;
    for w in &built.warnings {
        eprintln!("arbiter: warning: {w}");
    }
    println!(
        "wrote {}/report.{{md,html,json}}: {} run(s), {} suite(s)",
        args.out.display(),
        built.runs.len(),
        built.suites.len()
    );
    Ok(ExitCode::SUCCESS)
}

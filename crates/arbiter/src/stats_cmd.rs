//! `arbiter agreement`, `arbiter aggregate` and `arbiter disagreement`: annotation statistics
//! over a ratings file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use arbiter_ratings::{Columns, Loaded, Options, datasets};
use arbiter_stats::aggregate::{self, METHODS};
use arbiter_stats::bins::Bins;
use arbiter_stats::report::{
    AgreementSettings, DisagreementSettings, agreement_report, disagreement_report,
};
use arbiter_stats::{Distance, DomainSpec, DuplicatePolicy, LabelDomain, LabelKind, Names};
use clap::{Args, ValueEnum};

use arbiter_columnar::rows::{LabelRow, labels_to_batches, skills_to_batches};

use crate::float_text::push_f64;
use crate::input;

/// Where the ratings come from and how to read them.
#[derive(Debug, Args)]
pub struct RatingsArgs {
    /// Ratings file (.csv, .tsv, .jsonl, .parquet), or a directory for `--dataset lewidi:SET|multipico`.
    pub file: PathBuf,
    /// Column holding the item id.
    #[arg(long, default_value = "item")]
    pub item: String,
    /// Column holding the rater id.
    #[arg(long, default_value = "rater")]
    pub rater: String,
    /// Column holding the label.
    #[arg(long, default_value = "label")]
    pub label: String,
    /// Group column (pool, demographic); repeatable.
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Named importer instead of column mapping: `lewidi:<SET>` (HS-Brexit, ArMIS,
    /// MD-Agreement, ConvAbuse; group column `group`), `multipico` (groups from the annotator
    /// metadata, e.g. `--group Gender`), `convabuse`, `jigsaw:<attribute>`, `dices`,
    /// `popquorn:<label column>`.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Explicit, ordered label domain, comma-separated (otherwise inferred: numeric order when
    /// every label is a number, else alphabetical). Needed for ordinal scales with word labels.
    #[arg(long, value_delimiter = ',')]
    pub domain: Option<Vec<String>>,
    /// What to do with repeated (item, rater) rows.
    #[arg(long, value_enum, default_value_t = Duplicates::KeepAll)]
    pub duplicates: Duplicates,
    /// Fail (exit 2) on the first unusable row instead of reporting and skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Print reading and computing times to standard error.
    #[arg(long)]
    pub timings: bool,
}

/// Wall-clock phases reported by `--timings`.
struct Timer {
    enabled: bool,
    start: std::time::Instant,
}

impl Timer {
    fn new(enabled: bool) -> Self {
        Timer {
            enabled,
            start: std::time::Instant::now(),
        }
    }

    /// Report the time since the last lap under `phase`.
    fn lap(&mut self, phase: &str) {
        if self.enabled {
            eprintln!(
                "arbiter: timing: {phase} {:.6} s",
                self.start.elapsed().as_secs_f64()
            );
        }
        self.start = std::time::Instant::now();
    }
}

/// Duplicate (item, rater) policy.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Duplicates {
    /// Keep every row (krippendorff value counts, NLTK).
    KeepAll,
    /// Keep the first row per (item, rater).
    First,
    /// Keep the last row per (item, rater).
    Last,
    /// Refuse the table.
    Error,
}

/// Output format for `agreement`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON object.
    Json,
}

/// Output format for `aggregate`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TableFormat {
    /// Comma-separated text with a header.
    Csv,
    /// A Parquet file (snappy); needs --out.
    Parquet,
}

/// α level.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Level {
    /// Unordered categories.
    Nominal,
    /// Ordered categories (domain order).
    Ordinal,
    /// Numeric, squared differences.
    Interval,
    /// Numeric, squared relative differences.
    Ratio,
}

impl Level {
    fn distance(self) -> Distance {
        match self {
            Level::Nominal => Distance::Nominal,
            Level::Ordinal => Distance::Ordinal,
            Level::Interval => Distance::Interval,
            Level::Ratio => Distance::Ratio,
        }
    }
}

/// `arbiter agreement`.
#[derive(Debug, Args)]
pub struct AgreementArgs {
    #[command(flatten)]
    ratings: RatingsArgs,
    /// Level of measurement for α.
    #[arg(long, value_enum, default_value_t = Level::Nominal)]
    level: Level,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Bootstrap replicates for 95% intervals over items (0 = none).
    #[arg(long, default_value_t = 0)]
    bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `arbiter aggregate`.
#[derive(Debug, Args)]
pub struct AggregateArgs {
    #[command(flatten)]
    ratings: RatingsArgs,
    /// Aggregation method.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(METHODS))]
    method: String,
    /// Output CSV: `item,label,p_<label>…` (standard output if omitted or `-`); Parquet with
    /// the same columns when named `*.parquet`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Output format (default: Parquet for an --out named `*.parquet`, else CSV).
    #[arg(long, value_enum)]
    format: Option<TableFormat>,
    /// Also write rater skills as CSV `rater,skill`; Parquet with the same columns when named
    /// `*.parquet`.
    #[arg(long)]
    skills: Option<PathBuf>,
}

/// `arbiter disagreement`.
#[derive(Debug, Args)]
pub struct DisagreementArgs {
    #[command(flatten)]
    ratings: RatingsArgs,
    /// Level of measurement for α.
    #[arg(long, value_enum, default_value_t = Level::Nominal)]
    level: Level,
    /// Output directory for report.md, report.html and report.json.
    #[arg(long)]
    out: PathBuf,
    /// Label counted as "positive" in the logistic regression (default: the last label).
    #[arg(long)]
    positive: Option<String>,
    /// Bootstrap replicates and permutations.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Seed for bootstraps and permutations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most-dividing items to list.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Groups with fewer raters are left out of every per-group statistic (and named in the
    /// report): a group of one or two raters says nothing about the group, and identifies them.
    #[arg(long, default_value_t = 5)]
    min_group_raters: usize,
    /// Bin the numeric group column into half-open intervals: `COL=18,25,35,45,55,65` (groups
    /// `<18`, `18–24`, …, `65+`) or `COL=q4` (quartiles over raters). A value that is not a
    /// number is an error.
    #[arg(long, value_name = "COL=EDGES|COL=qN")]
    bins: Option<String>,
    /// Column holding the item text, shown (cut to 80 characters) next to the most dividing
    /// items.
    #[arg(long, value_name = "COL")]
    text_column: Option<String>,
}

pub(crate) fn options(args: &RatingsArgs, kind: LabelKind) -> Result<Options> {
    let domain = match &args.domain {
        Some(values) => DomainSpec::Explicit(
            LabelDomain::new(
                values.iter().map(|v| v.trim().to_string()).collect(),
                LabelKind::Ordered,
            )
            .context("--domain")?,
        ),
        None => DomainSpec::Infer(kind),
    };
    let duplicates = match args.duplicates {
        Duplicates::KeepAll => DuplicatePolicy::KeepAll,
        Duplicates::First => DuplicatePolicy::First,
        Duplicates::Last => DuplicatePolicy::Last,
        Duplicates::Error => DuplicatePolicy::Error,
    };
    Ok(Options { domain, duplicates })
}

/// Read the ratings, printing every skipped row to standard error. `extra` columns (e.g. the
/// item text) are read as group columns after the `--group` ones.
pub(crate) fn load(args: &RatingsArgs, kind: LabelKind, extra: &[String]) -> Result<Loaded> {
    let opts = options(args, kind)?;
    let path = args.file.as_path();
    let loaded = match args.dataset.as_deref() {
        None => {
            let columns = Columns {
                item: args.item.clone(),
                rater: args.rater.clone(),
                label: args.label.clone(),
                groups: args.groups.iter().chain(extra).cloned().collect(),
            };
            if arbiter_columnar::is_parquet(path) {
                arbiter_columnar::ratings::read(path, &columns, &opts)?
            } else {
                arbiter_ratings::read_path(path, &columns, &opts)?
            }
        }
        Some(name) => {
            if !extra.is_empty() {
                bail!("--text-column needs a column-mapped file, not --dataset {name}");
            }
            let (kind, arg) = name.split_once(':').unwrap_or((name, ""));
            match kind {
                "lewidi" => datasets::lewidi(path, arg, &opts)?,
                "multipico" => {
                    let fields: Vec<&str> = args.groups.iter().map(String::as_str).collect();
                    datasets::multipico(path, &fields, &opts)?
                }
                "convabuse" => datasets::convabuse_csv(path, &opts)?,
                "jigsaw" => {
                    use datasets::JigsawAttribute as J;
                    let attribute = match arg {
                        "" | "toxic" | "toxic_score" => J::Toxic,
                        "identity_attack" => J::IdentityAttack,
                        "insult" => J::Insult,
                        "obscene" => J::Obscene,
                        "threat" => J::Threat,
                        other => bail!("unknown Jigsaw attribute {other:?}"),
                    };
                    datasets::jigsaw_pools(path, attribute, &opts)?
                }
                "dices" => datasets::dices(path, &opts)?,
                "popquorn" => datasets::popquorn(
                    path,
                    if arg.is_empty() { "offensiveness" } else { arg },
                    &opts,
                )?,
                other => bail!("unknown --dataset {other:?}"),
            }
        }
    };
    for p in &loaded.problems {
        if args.strict {
            bail!("{p}");
        }
        eprintln!("arbiter: skipped: {p}");
    }
    if !loaded.problems.is_empty() {
        eprintln!("arbiter: {} row(s) skipped", loaded.problems.len());
    }
    let merged = loaded.ratings.domain().merged();
    if !merged.is_empty() {
        eprintln!(
            "arbiter: warning: numeric labels written several ways are one label: {}",
            merged
                .iter()
                .map(|(spelling, label)| format!("{spelling} → {label}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(loaded)
}

fn run_agreement(args: AgreementArgs) -> Result<ExitCode> {
    let kind = match args.level {
        Level::Nominal => LabelKind::Nominal,
        _ => LabelKind::Ordered,
    };
    let mut timer = Timer::new(args.ratings.timings);
    let loaded = load(&args.ratings, kind, &[])?;
    timer.lap("read");
    let t = &loaded.ratings;
    if matches!(args.level, Level::Ordinal)
        && args.ratings.domain.is_none()
        && t.domain().numeric().is_none()
    {
        eprintln!(
            "arbiter: warning: ordinal α over non-numeric labels uses their alphabetical order ({}); pass --domain to set the scale order",
            t.domain().values().join(", ")
        );
    }
    let report = agreement_report(
        t,
        &AgreementSettings {
            distance: args.level.distance(),
            bootstrap: args.bootstrap,
            seed: args.seed,
            group_columns: args.ratings.groups.clone(),
            n_skipped_rows: loaded.problems.len(),
        },
    )?;
    timer.lap("alpha");
    let mut w = input::create(None)?;
    if args.format == Format::Json {
        serde_json::to_writer(&mut w, &report.to_json())?;
        writeln!(w)?;
    } else {
        w.write_all(report.to_text().as_bytes())?;
    }
    w.finish()?;
    Ok(ExitCode::SUCCESS)
}

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Writes the `item,label,p_…` lines of the rated items, in item order.
///
/// Formatting 200,000 lines of floats takes about as long as the fit, so on two cores a second
/// thread formats blocks of items while this one formats other blocks and writes each block as
/// soon as it is next in order. The blocks go out in item order from a few reused buffers, so
/// the text is the same as formatting everything at once, and no 15 MB string is faulted in.
fn write_label_lines(
    w: &mut dyn Write,
    items: &Names,
    labels: &[String],
    fitted: &aggregate::Fitted,
) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    /// Items per block: about 300 KB of text, small enough to stay in the L2 cache.
    const BLOCK: usize = 4096;
    let format = |block: usize, out: &mut String, buf: &mut zmij::Buffer| {
        out.clear();
        let (start, end) = (block * BLOCK, ((block + 1) * BLOCK).min(items.len()));
        for (i, item) in (start..end).map(|i| (i, &items[i])) {
            let Some(label) = fitted.labels[i] else {
                continue;
            };
            out.push_str(&csv_field(item));
            out.push(',');
            out.push_str(&csv_field(&labels[label as usize]));
            for &p in fitted.posterior(i) {
                out.push(',');
                push_f64(out, p, buf);
            }
            out.push('\n');
        }
    };
    let n_blocks = items.len().div_ceil(BLOCK);
    let mut buf = zmij::Buffer::new();
    let two_cores = std::thread::available_parallelism().is_ok_and(|c| c.get() >= 2);
    if n_blocks < 5 || !two_cores {
        let mut out = String::new();
        for block in 0..n_blocks {
            format(block, &mut out, &mut buf);
            w.write_all(out.as_bytes())?;
        }
        return Ok(());
    }
    // Both threads claim the next unformatted block from `next`; the formatter sends its blocks
    // here, and this thread writes block `want` once it is formatted, by either thread.
    let next = AtomicUsize::new(0);
    let (done_tx, done_rx) = mpsc::channel::<(usize, String)>();
    let (spare_tx, spare_rx) = mpsc::channel::<String>();
    let (next, format) = (&next, &format);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut buf = zmij::Buffer::new();
            loop {
                let block = next.fetch_add(1, Ordering::Relaxed);
                if block >= n_blocks {
                    break;
                }
                let mut out = spare_rx.try_recv().unwrap_or_default();
                format(block, &mut out, &mut buf);
                if done_tx.send((block, out)).is_err() {
                    break;
                }
            }
        });
        // On a write error, make the formatter stop at its next block.
        let mut write = |bytes: &[u8]| {
            w.write_all(bytes)
                .inspect_err(|_| next.store(n_blocks, Ordering::Relaxed))
        };
        let mut ready: BTreeMap<usize, String> = BTreeMap::new();
        let mut own = String::new();
        let mut want = 0;
        while want < n_blocks {
            ready.extend(done_rx.try_iter());
            if let Some(out) = ready.remove(&want) {
                write(out.as_bytes())?;
                if own.capacity() == 0 {
                    own = out;
                } else {
                    // Once every block is claimed the formatter is gone; nothing to reuse.
                    let _ = spare_tx.send(out);
                }
                want += 1;
                continue;
            }
            let block = next.fetch_add(1, Ordering::Relaxed);
            if block < n_blocks {
                format(block, &mut own, &mut buf);
                if block == want {
                    write(own.as_bytes())?;
                    want += 1;
                } else {
                    ready.insert(block, std::mem::take(&mut own));
                }
            } else {
                let (block, out) = done_rx
                    .recv()
                    .map_err(|_| std::io::Error::other("formatting thread stopped"))?;
                ready.insert(block, out);
            }
        }
        Ok(())
    })
}

/// The `item,label,p_…` CSV of the rated items, to `out` or standard output.
fn write_csv_labels(
    out: Option<&std::path::Path>,
    items: &Names,
    labels: &[String],
    fitted: &aggregate::Fitted,
) -> Result<()> {
    let mut w = input::create(out)?;
    let mut header = String::from("item,label");
    for l in labels {
        write!(header, ",{}", csv_field(&format!("p_{l}")))?;
    }
    writeln!(w, "{header}")?;
    write_label_lines(&mut w, items, labels, fitted)?;
    w.finish()
}

fn run_aggregate(args: AggregateArgs) -> Result<ExitCode> {
    let mut timer = Timer::new(args.ratings.timings);
    let loaded = load(&args.ratings, LabelKind::Nominal, &[])?;
    timer.lap("read");
    let t = &loaded.ratings;
    let method = aggregate::by_name(&args.method).context("unknown method")?;
    let fitted = method.fit(t)?;
    timer.lap("fit");
    let labels = t.domain().values();
    let parquet = input::choose_parquet(
        "--format",
        args.format.map(|f| f == TableFormat::Parquet),
        "csv",
        args.out.as_deref(),
    )?;
    if parquet {
        let path = args.out.as_deref().context("Parquet output needs --out")?;
        let rows: Vec<LabelRow<'_>> = (0..t.items().len())
            .filter_map(|i| {
                let label = fitted.labels[i]?;
                Some(LabelRow {
                    item: &t.items()[i],
                    label: &labels[label as usize],
                    posterior: fitted.posterior(i),
                })
            })
            .collect();
        input::write_parquet(path, labels_to_batches(labels, &rows, path)?)?;
    } else {
        write_csv_labels(args.out.as_deref(), t.items(), labels, &fitted)?;
    }
    if let Some(path) = &args.skills {
        let skills: Vec<(&str, f64)> = t
            .raters()
            .iter()
            .enumerate()
            .filter_map(|(r, name)| Some((name, fitted.skills[r]?)))
            .collect();
        if arbiter_columnar::is_parquet(path) {
            input::write_parquet(path, skills_to_batches(&skills, path)?)?;
        } else {
            let mut s = input::create(Some(path))?;
            writeln!(s, "rater,skill")?;
            for (name, skill) in skills {
                writeln!(s, "{},{skill}", csv_field(name))?;
            }
            s.finish()?;
        }
    }
    timer.lap("write");
    eprintln!(
        "arbiter: {} items aggregated with {} ({} iterations{})",
        fitted.labels.iter().flatten().count(),
        method.name(),
        fitted.convergence.iterations,
        if fitted.convergence.converged {
            ""
        } else {
            ", not converged"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn run_disagreement(args: DisagreementArgs) -> Result<ExitCode> {
    let kind = match args.level {
        Level::Nominal => LabelKind::Nominal,
        _ => LabelKind::Ordered,
    };
    let column = match args.ratings.groups.as_slice() {
        [] => bail!("disagreement needs a group column (--group COL)"),
        [one] => one.clone(),
        many => bail!(
            "disagreement analyses one group column per run, got {}: run it once per column",
            many.iter()
                .map(|g| format!("--group {g}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    if args.min_group_raters < 5 {
        bail!("--min-group-raters must be at least 5");
    }
    if args.bootstrap == 0 {
        bail!("--bootstrap must be at least 1");
    }
    let bins = match &args.bins {
        None => None,
        Some(spec) => {
            let Some((col, edges)) = spec.split_once('=') else {
                bail!("--bins {spec:?}: expected COL=EDGES or COL=qN, e.g. --bins {column}=q4");
            };
            if col.trim() != column {
                bail!("--bins names column {col:?}, but the group column is {column:?}");
            }
            Some(Bins::parse(edges).with_context(|| format!("--bins {spec}"))?)
        }
    };
    let extra: Vec<String> = args.text_column.iter().cloned().collect();
    if args.text_column.as_deref() == Some(column.as_str()) {
        bail!("--text-column {column} is also the --group column");
    }
    let loaded = load(&args.ratings, kind, &extra)?;
    let report = disagreement_report(
        &loaded.ratings,
        &DisagreementSettings {
            column,
            distance: args.level.distance(),
            positive: args.positive.clone(),
            bootstrap: args.bootstrap,
            seed: args.seed,
            top: args.top,
            min_group_raters: args.min_group_raters,
            bins,
            text_column: args.text_column.clone(),
            n_skipped_rows: loaded.problems.len(),
        },
    )
    .with_context(|| args.ratings.file.display().to_string())?;
    // The three files appear together or not at all.
    let staged = input::StagedDir::begin(&args.out, crate::input::REPORT_MARKER)?;
    input::write_file(
        &staged.path().join("report.json"),
        &serde_json::to_string_pretty(&report.to_json())?,
    )?;
    input::write_file(&staged.path().join("report.md"), &report.to_markdown())?;
    input::write_file(&staged.path().join("report.html"), &report.to_html())?;
    staged.commit()?;
    eprintln!(
        "arbiter: wrote report.md, report.html and report.json to {}",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Entry point of `arbiter agreement`.
pub fn agreement(args: AgreementArgs) -> Result<ExitCode> {
    run_agreement(args)
}

/// Entry point of `arbiter aggregate`.
pub fn aggregate(args: AggregateArgs) -> Result<ExitCode> {
    run_aggregate(args)
}

/// Entry point of `arbiter disagreement`.
pub fn disagreement(args: DisagreementArgs) -> Result<ExitCode> {
    run_disagreement(args)
}

//! `arbiter agreement`, `arbiter aggregate` and `arbiter disagreement`: annotation statistics
//! over a ratings file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use arbiter_ratings::{Columns, Loaded, Options, datasets};
use arbiter_report::{Page, Table, escape_html, fmt_opt, svg};
use arbiter_stats::aggregate::{self, METHODS};
use arbiter_stats::agreement::{self, Weights};
use arbiter_stats::groups;
use arbiter_stats::{
    Alpha, AlphaReport, Bootstrap, Distance, DomainSpec, DuplicatePolicy, LabelDomain, LabelKind,
    Names, alpha_bootstrap,
};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::float_text::push_f64;
use crate::input;

/// Where the ratings come from and how to read them.
#[derive(Debug, Args)]
pub struct RatingsArgs {
    /// Ratings file (.csv, .tsv, .jsonl), or a directory for `--dataset lewidi:SET|multipico`.
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
    /// Output CSV: `item,label,p_<label>…` (standard output if omitted or `-`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write rater skills as CSV `rater,skill`.
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
}

fn options(args: &RatingsArgs, kind: LabelKind) -> Result<Options> {
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

/// Read the ratings, printing every skipped row to standard error.
fn load(args: &RatingsArgs, kind: LabelKind) -> Result<Loaded> {
    let opts = options(args, kind)?;
    let path = args.file.as_path();
    let loaded = match args.dataset.as_deref() {
        None => {
            let columns = Columns {
                item: args.item.clone(),
                rater: args.rater.clone(),
                label: args.label.clone(),
                groups: args.groups.clone(),
            };
            arbiter_ratings::read_path(path, &columns, &opts)?
        }
        Some(name) => {
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
    Ok(loaded)
}

fn alpha_json(report: &AlphaReport) -> Value {
    match report.alpha {
        Alpha::Value(v) => json!(v),
        Alpha::Undefined(_) => Value::Null,
    }
}

fn undefined_reason(report: &AlphaReport) -> Option<Value> {
    match report.alpha {
        Alpha::Value(_) => None,
        Alpha::Undefined(u) => Some(serde_json::to_value(u).unwrap_or(Value::Null)),
    }
}

fn interval_json(i: Option<arbiter_stats::Interval>) -> Value {
    i.map_or(Value::Null, |i| json!([i.low, i.high]))
}

fn run_agreement(args: AgreementArgs) -> Result<ExitCode> {
    let kind = match args.level {
        Level::Nominal => LabelKind::Nominal,
        _ => LabelKind::Ordered,
    };
    let mut timer = Timer::new(args.ratings.timings);
    let loaded = load(&args.ratings, kind)?;
    timer.lap("read");
    let t = &loaded.ratings;
    let distance = args.level.distance();
    if matches!(args.level, Level::Ordinal)
        && args.ratings.domain.is_none()
        && t.domain().numeric().is_none()
    {
        eprintln!(
            "arbiter: warning: ordinal α over non-numeric labels uses their alphabetical order ({}); pass --domain to set the scale order",
            t.domain().values().join(", ")
        );
    }
    let (report, multi) = agreement::alpha_and_multi_rater(t, &distance)?;
    timer.lap("alpha");
    let mut out = json!({
        "alpha": alpha_json(&report),
        "level": distance.name(),
        "n_items": t.n_items(),
        "n_raters": t.n_raters(),
        "n_ratings": t.n_ratings(),
        "n_pairable_units": report.n_pairable_units,
        "n_duplicate_rows": t.n_duplicates(),
        "n_skipped_rows": loaded.problems.len(),
        "percent_agreement": multi.percent_agreement,
        "fleiss_kappa": multi.fleiss_kappa,
        "gwet_ac1": multi.gwet_ac1,
    });
    if let Some(reason) = undefined_reason(&report) {
        out["undefined"] = reason;
    }
    if !matches!(args.level, Level::Nominal) {
        out["gwet_ac2_quadratic"] = json!(agreement::gwet_ac2(t, Weights::Quadratic));
    }
    if t.n_raters() == 2 {
        out["cohen_kappa"] = json!(agreement::cohen_kappa(t, 0, 1));
    }
    let settings = Bootstrap {
        replicates: args.bootstrap,
        seed: args.seed,
        confidence: 0.95,
    };
    if args.bootstrap > 0 {
        out["alpha_ci95"] = interval_json(alpha_bootstrap(t, &distance, settings)?);
        for (key, coefficient) in [
            (
                "percent_agreement_ci95",
                agreement::Coefficient::PercentAgreement,
            ),
            ("fleiss_kappa_ci95", agreement::Coefficient::Fleiss),
            ("gwet_ac1_ci95", agreement::Coefficient::Ac1),
        ] {
            out[key] = interval_json(agreement::coefficient_bootstrap(t, coefficient, settings)?);
        }
    }
    if !args.ratings.groups.is_empty() {
        let mut by_column = serde_json::Map::new();
        for (n, column) in args.ratings.groups.iter().enumerate() {
            let ga = groups::group_alphas(t, column, &distance)?;
            let mut per = serde_json::Map::new();
            for (value, report) in &ga.within {
                let mut g = json!({
                    "alpha": alpha_json(report),
                    "n_pairable_units": report.n_pairable_units,
                });
                if let Some(reason) = undefined_reason(report) {
                    g["undefined"] = reason;
                }
                per.insert(value.clone(), g);
            }
            if n == 0 {
                out["groups"] = Value::Object(per.clone());
            }
            by_column.insert(column.clone(), Value::Object(per));
        }
        if args.ratings.groups.len() > 1 {
            out["groups_by_column"] = Value::Object(by_column);
        }
    }
    let mut w = input::create(None)?;
    if args.format == Format::Json {
        serde_json::to_writer(&mut w, &out)?;
        writeln!(w)?;
    } else {
        writeln!(
            w,
            "Krippendorff's alpha ({}): {}",
            distance.name(),
            report.alpha.value().map_or_else(
                || format!("undefined ({})", out["undefined"].as_str().unwrap_or("")),
                |a| format!("{a:.6}")
            )
        )?;
        writeln!(
            w,
            "{} items, {} raters, {} ratings ({} pairable units)",
            t.n_items(),
            t.n_raters(),
            t.n_ratings(),
            report.n_pairable_units
        )?;
        if let Some(ci) = out.get("alpha_ci95").and_then(Value::as_array) {
            writeln!(
                w,
                "95% bootstrap interval: [{:.4}, {:.4}]",
                ci[0].as_f64().unwrap_or(f64::NAN),
                ci[1].as_f64().unwrap_or(f64::NAN)
            )?;
        }
        writeln!(
            w,
            "percent agreement {}, Fleiss kappa {}, Gwet AC1 {}",
            fmt_opt(multi.percent_agreement, 4),
            fmt_opt(multi.fleiss_kappa, 4),
            fmt_opt(multi.gwet_ac1, 4)
        )?;
        if let Some(g) = out.get("groups").and_then(Value::as_object) {
            for (name, v) in g {
                writeln!(
                    w,
                    "  group {name}: alpha {}",
                    fmt_opt(v["alpha"].as_f64(), 6)
                )?;
            }
        }
    }
    w.flush()?;
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

fn run_aggregate(args: AggregateArgs) -> Result<ExitCode> {
    let mut timer = Timer::new(args.ratings.timings);
    let loaded = load(&args.ratings, LabelKind::Nominal)?;
    timer.lap("read");
    let t = &loaded.ratings;
    let method = aggregate::by_name(&args.method).context("unknown method")?;
    let fitted = method.fit(t)?;
    timer.lap("fit");
    let labels = t.domain().values();
    let mut w = input::create(args.out.as_deref())?;
    let mut header = String::from("item,label");
    for l in labels {
        write!(header, ",{}", csv_field(&format!("p_{l}")))?;
    }
    writeln!(w, "{header}")?;
    write_label_lines(&mut w, t.items(), labels, &fitted)?;
    w.flush()?;
    if let Some(path) = &args.skills {
        let mut s = input::create(Some(path))?;
        writeln!(s, "rater,skill")?;
        for (r, name) in t.raters().iter().enumerate() {
            if let Some(skill) = fitted.skills[r] {
                writeln!(s, "{},{skill}", csv_field(name))?;
            }
        }
        s.flush()?;
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

/// (label, value or undefined, interval) of one plotted row.
type PlotRow = (String, Option<f64>, Option<(f64, f64)>);

/// Dot-and-whisker plot of per-group values with intervals (hand-written SVG).
fn interval_plot(rows: &[PlotRow], reference: Option<f64>, title: &str) -> String {
    let (left, width, row_h, top) = (170.0, 720.0, 26.0, 30.0);
    let plot_w = width - left - 30.0;
    let height = top + row_h * rows.len() as f64 + 30.0;
    let mut lo: f64 = reference.unwrap_or(0.0).min(0.0);
    let mut hi: f64 = reference.unwrap_or(1.0).max(1.0);
    for (_, v, ci) in rows {
        for x in v.iter().copied().chain(ci.iter().flat_map(|c| [c.0, c.1])) {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    let x = |v: f64| left + (v - lo) / (hi - lo).max(1e-9) * plot_w;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"12\">\n<title>{t}</title>\n",
        t = escape_html(title)
    );
    let axis_y = top + row_h * rows.len() as f64;
    for t in svg::ticks(lo, hi, 6) {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{axis_y}\" stroke=\"#e5e5e5\"/>\n<text x=\"{0:.1}\" y=\"{1:.1}\" text-anchor=\"middle\" fill=\"#444\">{2:.2}</text>\n",
            x(t),
            axis_y + 16.0,
            t
        );
    }
    if let Some(r) = reference {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{axis_y}\" stroke=\"#D55E00\" stroke-dasharray=\"4 3\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#D55E00\">pooled</text>",
            x(r),
            top - 8.0,
            top - 12.0
        );
    }
    for (i, (name, v, ci)) in rows.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#222\">{}</text>",
            left - 8.0,
            y + 4.0,
            escape_html(name)
        );
        if let Some((a, b)) = ci {
            let _ = writeln!(
                s,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#0072B2\" stroke-width=\"2\"/>",
                x(*a),
                x(*b)
            );
        }
        match v {
            Some(v) => {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"#0072B2\"/>",
                    x(*v)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\">undefined</text>",
                    left + 4.0,
                    y + 4.0
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

fn run_disagreement(args: DisagreementArgs) -> Result<ExitCode> {
    let kind = match args.level {
        Level::Nominal => LabelKind::Nominal,
        _ => LabelKind::Ordered,
    };
    let loaded = load(&args.ratings, kind)?;
    let full = &loaded.ratings;
    let column = match args.ratings.groups.as_slice() {
        [] => bail!("disagreement needs a group column (--group COL)"),
        [one] => one,
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
    // Groups under the minimum are left out of every per-group statistic.
    let (small, t_kept) = {
        let col = full.group(column)?;
        let mut raters: Vec<std::collections::BTreeSet<u32>> =
            vec![Default::default(); col.values.len()];
        for (i, g) in col.per_row.iter().enumerate() {
            if let Some(g) = g {
                raters[*g as usize].insert(full.rows()[i].rater);
            }
        }
        let small: Vec<(String, usize)> = col
            .values
            .iter()
            .zip(&raters)
            .filter(|(_, r)| !r.is_empty() && r.len() < args.min_group_raters)
            .map(|(v, r)| (v.clone(), r.len()))
            .collect();
        let kept = full.filter_rows(|i| {
            col.per_row[i].is_none_or(|g| raters[g as usize].len() >= args.min_group_raters)
        });
        (small, kept)
    };
    let t = &t_kept;
    if args.bootstrap == 0 {
        bail!("--bootstrap must be at least 1");
    }
    let distance = args.level.distance();
    let settings = Bootstrap {
        replicates: args.bootstrap,
        seed: args.seed,
        confidence: 0.95,
    };
    let is_small = |g: &str| small.iter().any(|(s, _)| s == g);
    // With no group left, the per-group statistics are empty; the pooled figures remain.
    let any_group = t.group(column)?.per_row.iter().any(Option::is_some);
    let mut ga = groups::group_alphas(full, column, &distance)?;
    ga.within.retain(|(g, _)| !is_small(g));
    let col = t.group(column)?;
    let mut group_cis = Vec::new();
    for (g, value) in col.values.iter().enumerate() {
        if is_small(value) {
            continue;
        }
        let sub = t.filter_rows(|i| col.per_row[i] == Some(g as u32));
        group_cis.push(alpha_bootstrap(&sub, &distance, settings)?);
    }
    let pooled_ci = alpha_bootstrap(full, &distance, settings)?;
    let mut in_group = groups::in_group_agreement(t, column, args.bootstrap, args.seed)?;
    in_group.retain(|g| !is_small(&g.group));
    let mut rates = groups::label_rates(t, column, settings)?;
    rates.retain(|r| !is_small(&r.group));
    let small_note = if small.is_empty() {
        String::new()
    } else {
        format!(
            " Groups with fewer than {} raters are left out of every per-group statistic below (pooled α keeps all raters): {}.",
            args.min_group_raters,
            small
                .iter()
                .map(|(g, n)| format!("{g} ({n} rater{})", if *n == 1 { "" } else { "s" }))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let positive = match &args.positive {
        Some(p) => p.clone(),
        None => t.domain().values().last().cloned().unwrap_or_default(),
    };
    // A group whose ratings are all (or none) the positive label has no finite log-odds: its
    // interval would be an artefact of the pseudo-count, so the report says "separation".
    let separated = |group: &str| {
        rates
            .iter()
            .find(|r| r.group == group && r.label == positive)
            .is_some_and(|r| r.rate <= 0.0 || r.rate >= 1.0)
    };
    let chi = groups::chi_square(t, column)?;
    let kw = if matches!(args.level, Level::Nominal) {
        None
    } else {
        groups::kruskal_wallis(t, column)?
    };
    let logit = if t.n_labels() > 0 {
        groups::logistic_by_group(
            t,
            column,
            &positive,
            Bootstrap {
                replicates: args.bootstrap.min(500),
                ..settings
            },
        )?
    } else {
        Vec::new()
    };
    let dividing = groups::most_dividing_items(t, column, 1, args.top)?;
    // With every group left out, soft labels are still given per item, over all raters.
    let soft = if any_group {
        groups::soft_labels(t, Some(column))?
    } else {
        groups::soft_labels(full, None)?
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let labels = t.domain().values().to_vec();

    // JSON.
    let json_out = json!({
        "group_column": column,
        "min_group_raters": args.min_group_raters,
        "groups_left_out": small.iter().map(|(g, n)| json!({"group": g, "raters": n})).collect::<Vec<_>>(),
        "level": distance.name(),
        "n_items": t.n_items(), "n_raters": t.n_raters(), "n_ratings": t.n_ratings(),
        "n_skipped_rows": loaded.problems.len(),
        "labels": labels,
        "alpha": {
            "pooled": alpha_json(&ga.pooled), "pooled_ci95": interval_json(pooled_ci),
            "within": ga.within.iter().zip(&group_cis).map(|((g, r), ci)| json!({"group": g, "alpha": alpha_json(r), "ci95": interval_json(*ci), "n_pairable_units": r.n_pairable_units})).collect::<Vec<_>>(),
            "n_rows_missing_group": ga.n_missing,
        },
        "in_group_agreement": in_group,
        "label_rates": rates,
        "chi_square": chi,
        "kruskal_wallis": kw,
        "logistic": {"positive": positive, "coefficients": logit},
        "most_dividing_items": dividing,
        "soft_labels": soft,
    });
    input::write_file(
        &args.out.join("report.json"),
        &serde_json::to_string_pretty(&json_out)?,
    )?;

    // Tables shared by Markdown and HTML.
    let mut alpha_table = Table::new(["group", "α", "95% CI", "pairable units"]);
    alpha_table.row([
        "(pooled)".to_string(),
        fmt_opt(ga.pooled.alpha.value(), 4),
        ci_text(pooled_ci),
        ga.pooled.n_pairable_units.to_string(),
    ]);
    for ((g, r), ci) in ga.within.iter().zip(&group_cis) {
        alpha_table.row([
            g.clone(),
            fmt_opt(r.alpha.value(), 4),
            ci_text(*ci),
            r.n_pairable_units.to_string(),
        ]);
    }
    let mut in_table = Table::new([
        "group",
        "raters",
        "A_in",
        "A_cross",
        "A_in/A_cross",
        "p (perm.)",
    ]);
    for g in &in_group {
        in_table.row([
            g.group.clone(),
            g.n_raters.to_string(),
            fmt_opt(g.a_in, 4),
            fmt_opt(g.a_cross, 4),
            fmt_opt(g.ratio, 3),
            fmt_opt(g.p_value, 4),
        ]);
    }
    let mut rate_table = Table::new(["group", "label", "n", "rate", "95% CI (items)"]);
    for r in &rates {
        rate_table.row([
            r.group.clone(),
            r.label.clone(),
            r.n.to_string(),
            format!("{:.4}", r.rate),
            ci_text(r.interval),
        ]);
    }
    let mut logit_table = Table::new(["term", "log-odds", "95% CI (raters)", "95% CI (items)"]);
    for c in &logit {
        let group = c
            .term
            .strip_prefix("intercept (reference: ")
            .and_then(|g| g.strip_suffix(')'))
            .unwrap_or(&c.term);
        if separated(group) {
            let all_or_none = "separation: every or no rating of the group is the positive label";
            logit_table.row([
                c.term.clone(),
                "separation".to_string(),
                all_or_none.to_string(),
                all_or_none.to_string(),
            ]);
        } else {
            logit_table.row([
                c.term.clone(),
                format!("{:.4}", c.estimate),
                ci_text(c.rater_clustered),
                ci_text(c.item_clustered),
            ]);
        }
    }
    let mut div_table = Table::new(["item", "TV distance", "groups", "distributions"]);
    for d in &dividing {
        let dists = d
            .distributions
            .iter()
            .map(|(g, v)| {
                format!(
                    "{g}: [{}]",
                    v.iter()
                        .map(|x| format!("{x:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        div_table.row([
            d.item.clone(),
            format!("{:.3}", d.divergence),
            format!("{} vs {}", d.groups.0, d.groups.1),
            dists,
        ]);
    }
    let tests_text = format!(
        "χ² (group × label): {}. Kruskal–Wallis: {}. Rows of one rater are not independent, so these p-values are optimistic; the permutation test and clustered intervals account for raters and items.",
        chi.as_ref().map_or("not defined".to_string(), |c| format!(
            "χ² = {:.3}, df = {}, p = {:.3e}",
            c.statistic, c.df, c.p_value
        )),
        kw.as_ref().map_or(
            "not run (nominal level or undefined)".to_string(),
            |k| format!(
                "H = {:.3}, df = {}, p = {:.3e}",
                k.statistic, k.df, k.p_value
            )
        ),
    );
    let intro = format!(
        "{} items, {} raters, {} ratings; group column `{column}`; α level {}; {} bootstrap replicates / permutations, seed {}; labels in order: {}.{small_note}",
        full.n_items(),
        full.n_raters(),
        full.n_ratings(),
        distance.name(),
        args.bootstrap,
        args.seed,
        labels.join(", ")
    );

    // Markdown.
    let mut md = format!("# Disagreement report\n\n{intro}\n\n");
    for (title, table) in [
        ("Krippendorff's α within groups", &alpha_table),
        ("In-group vs cross-group agreement", &in_table),
        ("Label rates per group", &rate_table),
    ] {
        let _ = write!(md, "## {title}\n\n{}\n", table.to_markdown());
    }
    let _ = write!(
        md,
        "## Tests\n\n{tests_text}\n\n## Logistic regression: P(label = {positive}) by group\n\n{}\n## Most dividing items\n\n{}\n",
        logit_table.to_markdown(),
        div_table.to_markdown()
    );
    let _ = writeln!(
        md,
        "Soft labels per item and group are in report.json (`soft_labels`)."
    );
    input::write_file(&args.out.join("report.md"), &md)?;

    // HTML with inline SVG.
    let mut page = Page::new("Disagreement report");
    page.paragraph(&intro);
    page.heading("Krippendorff's α within groups");
    let rows: Vec<PlotRow> = ga
        .within
        .iter()
        .zip(&group_cis)
        .map(|((g, r), ci)| (g.clone(), r.alpha.value(), ci.map(|c| (c.low, c.high))))
        .collect();
    page.figure(
        &interval_plot(&rows, ga.pooled.alpha.value(), "alpha per group"),
        "α per group with 95% bootstrap intervals over items; dashed line: pooled α.",
    );
    page.table(&alpha_table);
    page.heading("In-group vs cross-group agreement");
    page.table(&in_table);
    page.heading("Label rates per group");
    let mut counts: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in &rates {
        let k = labels.iter().position(|l| *l == r.label).unwrap_or(0);
        let entry = counts
            .entry(r.group.clone())
            .or_insert_with(|| vec![0; labels.len()]);
        entry[k] = (r.rate * r.n as f64).round() as usize;
    }
    let bars: Vec<(String, Vec<usize>)> = col
        .values
        .iter()
        .filter_map(|g| counts.get(g).map(|c| (g.clone(), c.clone())))
        .collect();
    page.figure(
        &svg::stacked_bars(&bars, &labels, "labels per group"),
        "Ratings per label within each group.",
    );
    page.table(&rate_table);
    page.heading("Tests");
    page.paragraph(&tests_text);
    page.heading(&format!(
        "Logistic regression: P(label = {positive}) by group"
    ));
    page.table(&logit_table);
    page.heading("Most dividing items");
    page.table(&div_table);
    page.note("Soft labels per item and group are in report.json (soft_labels).");
    input::write_file(&args.out.join("report.html"), &page.render())?;
    eprintln!(
        "arbiter: wrote report.md, report.html and report.json to {}",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn ci_text(ci: Option<arbiter_stats::Interval>) -> String {
    ci.map_or("–".to_string(), |c| {
        format!("[{:.4}, {:.4}]", c.low, c.high)
    })
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

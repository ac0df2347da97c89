//! `arbiter perspectives train|eval|predict`: per-annotator and per-pool models over item
//! texts. Flags, reading the ratings and texts, the MiniLM features (cached on disk) and
//! writing files; the models and metrics are `arbiter_perspectives`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use arbiter_graders::embedded::model::default_model_dir;
use arbiter_graders::embedded::text_embeddings::{self, CacheOutcome, TextEmbedder};
use arbiter_perspectives::{
    Corpus, Embedder, EvalReport, EvalSettings, Features, ItemMeta, ModelFile, ModelKind, Per,
    Split, SplitMode,
};
use arbiter_ratings::texts::{self, ItemRecord, TextColumns};
use arbiter_ratings::{Loaded, datasets};
use arbiter_stats::LabelKind;
use clap::{Args, Subcommand, ValueEnum};

use crate::input;
use crate::stats_cmd::{self, Duplicates, RatingsArgs};

/// `arbiter perspectives …`
#[derive(Debug, Subcommand)]
pub enum PerspectivesCommand {
    /// Train every model (majority, soft label, per-annotator heads, annotator embedding, and
    /// per-pool with `--pool`) on the training items and write the model file.
    Train(TrainArgs),
    /// Train and score on held-out items as the shared tasks do; report as JSON/Markdown/HTML.
    Eval(EvalArgs),
    /// Apply a model file: one JSON line per item with its predicted label distribution.
    Predict(PredictArgs),
}

/// The MultiPICo annotator metadata fields, the default attributes of `--dataset multipico`.
const MULTIPICO_FIELDS: [&str; 8] = [
    "Age",
    "Gender",
    "Ethnicity simplified",
    "Country of birth",
    "Country of residence",
    "Nationality",
    "Student status",
    "Employment status",
];

/// Where the ratings and the item texts come from.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Ratings file (.csv, .tsv, .jsonl, .parquet); for `--dataset lewidi:SET|multipico`
    /// optionally the dataset's directory (default: `--data-dir`).
    file: Option<PathBuf>,
    /// Named importer: `lewidi:<SET>` (HS-Brexit, ArMIS, MD-Agreement, ConvAbuse, in the
    /// task's binary labels, with texts, official splits and hard labels), `multipico` (texts,
    /// splits, annotator metadata as attributes), or the other `agreement` importers (with
    /// `--texts`).
    #[arg(long)]
    dataset: Option<String>,
    /// Root of the shared data (`annotation/lewidi2023`, `annotation/multipico` below it);
    /// default `$ARBITER_DATA`, else `../shared/data`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Column holding the item id.
    #[arg(long, default_value = "item")]
    item: String,
    /// Column holding the rater id.
    #[arg(long, default_value = "rater")]
    rater: String,
    /// Column holding the label.
    #[arg(long, default_value = "label")]
    label: String,
    /// Annotator attribute column (pool, demographic); repeatable. For `multipico`, the
    /// metadata fields to keep (default: all eight).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Column of the ratings file holding the item text (the first non-empty value per item).
    #[arg(long, value_name = "COL", conflicts_with = "texts")]
    text: Option<String>,
    /// Separate file of item texts (.csv, .tsv, .jsonl).
    #[arg(long, value_name = "FILE")]
    texts: Option<PathBuf>,
    /// Item id column of `--texts`.
    #[arg(long, default_value = "item")]
    texts_item: String,
    /// Text column of `--texts` (JSON fields may be dotted paths).
    #[arg(long, default_value = "text")]
    texts_text: String,
    /// Column (of the texts source) holding an official split: train, dev or test.
    #[arg(long, value_name = "COL")]
    split_column: Option<String>,
    /// Explicit, ordered label domain, comma-separated.
    #[arg(long, value_delimiter = ',')]
    domain: Option<Vec<String>>,
    /// What to do with repeated (item, rater) rows.
    #[arg(long, value_enum, default_value_t = Duplicates::KeepAll)]
    duplicates: Duplicates,
    /// Fail (exit 2) on the first unusable row instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
}

/// Text features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FeatureKind {
    /// all-MiniLM-L6-v2 sentence embedding next to hashed character n-grams.
    #[value(name = "minilm+ngrams")]
    MinilmNgrams,
    /// Hashed character n-grams only (no model needed).
    Ngrams,
}

/// How the text features are made.
#[derive(Debug, Args)]
struct FeatureArgs {
    /// Text features.
    #[arg(long, value_enum, default_value_t = FeatureKind::MinilmNgrams)]
    features: FeatureKind,
    /// Hash buckets of the character n-gram block.
    #[arg(long, default_value_t = arbiter_perspectives::features::DEFAULT_NGRAM_BUCKETS)]
    ngram_buckets: usize,
    /// MiniLM model directory (default `$ARBITER_MODEL_DIR`, else the cache's).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// MiniLM token limit per text, `[CLS]` and `[SEP]` included.
    #[arg(long, default_value_t = text_embeddings::DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    no_embedding_cache: bool,
}

/// Which items train and which score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SplitArg {
    /// The dataset's own splits (train on train, score on test); data without splits falls
    /// back to a seeded random item split.
    Official,
    /// A seeded random split of the items.
    Random,
}

/// Which items score (eval only: `train` fits on the official train + dev items, or on every
/// item of data without splits).
#[derive(Debug, Args)]
struct SplitArgs {
    /// Item split.
    #[arg(long, value_enum, default_value_t = SplitArg::Official)]
    split: SplitArg,
    /// Share of items held out by a random split.
    #[arg(long, default_value_t = 0.2)]
    test_share: f64,
}

/// Seeds and annotator attributes.
#[derive(Debug, Args)]
struct ModelArgs {
    /// Seed of the split and the training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Annotator attribute whose values are the pools (one model per pool, the pool × pool
    /// matrix).
    #[arg(long, value_name = "ATTR")]
    pool: Option<String>,
    /// Annotator attribute that places annotators by their self-described identity in the
    /// annotator-embedding model; repeatable.
    #[arg(long, value_name = "ATTR")]
    identity: Vec<String>,
    /// Folds of the cross-validation over train + dev that chooses each model's settings when
    /// the dev split has fewer than 500 items (too few to choose on alone); 0 or 1: choose
    /// on the dev split whatever its size.
    #[arg(long, default_value_t = 5, value_name = "N")]
    cv_folds: usize,
    /// Numbers of leading principal components of the text features to choose from (comma
    /// separated): the soft-label model scores each on the items that choose the ridges, and
    /// the item models see the best; each annotator model scores that width and every wider
    /// one and sees its own best. Default: 32,64,128,256.
    #[arg(long, value_name = "K,…", value_delimiter = ',')]
    components: Vec<usize>,
    /// Share of the labels that choose the settings (0 to under 1) whose annotators the fits
    /// leave out, so that ridges and blends are chosen for raters the model has not seen.
    /// Default: `eval`, the test split's share of labels from annotators absent from train
    /// and dev; `train`, none.
    #[arg(long, value_name = "SHARE")]
    selection_unseen_share: Option<f64>,
}

/// `arbiter perspectives train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    features: FeatureArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Model file to write (JSON).
    #[arg(long)]
    out: PathBuf,
}

/// Report format on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The report's JSON (every number).
    Json,
    /// The Markdown report.
    Markdown,
}

/// `arbiter perspectives eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    features: FeatureArgs,
    #[command(flatten)]
    split: SplitArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Training seeds (from `--seed` on).
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Bootstrap replicates over items for the intervals.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// No learning curves and no k-shot sweep (quick checks).
    #[arg(long)]
    quick: bool,
    /// What to print on standard output.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
    /// Directory for report.md, report.html and report.json (replaced whole).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What each prediction line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PerArg {
    /// The item's label distribution.
    Item,
    /// Plus one distribution per annotator of the model.
    Annotator,
    /// Plus one distribution per pool of the model.
    Pool,
}

/// `arbiter perspectives predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Model file written by `train`.
    #[arg(long)]
    model: PathBuf,
    /// MiniLM model directory, when the model's features use it.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    no_embedding_cache: bool,
    /// Predictions (JSONL, one line per item).
    #[arg(long)]
    out: PathBuf,
    /// What each line carries.
    #[arg(long, value_enum, default_value_t = PerArg::Item)]
    per: PerArg,
    /// Which of the file's models predicts (majority, soft-label, annotator-heads,
    /// annotator-embedding; default: the one chosen on the development items).
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
}

/// Entry point.
pub fn run(cmd: PerspectivesCommand) -> Result<ExitCode> {
    match cmd {
        PerspectivesCommand::Train(args) => train(args),
        PerspectivesCommand::Eval(args) => eval(args),
        PerspectivesCommand::Predict(args) => predict(args),
    }
}

// ------------------------------------------------------------------ input

fn dataset_dir(input: &InputArgs, sub: &str) -> PathBuf {
    match &input.file {
        Some(f) => f.clone(),
        None => input::data_root(input.data_dir.as_deref()).join(sub),
    }
}

fn ratings_args(input: &InputArgs, file: PathBuf, dataset: Option<String>) -> RatingsArgs {
    RatingsArgs {
        file,
        item: input.item.clone(),
        rater: input.rater.clone(),
        label: input.label.clone(),
        groups: input.groups.clone(),
        dataset,
        domain: input.domain.clone(),
        duplicates: input.duplicates,
        strict: input.strict,
        timings: false,
    }
}

fn report_problems(input: &InputArgs, loaded: &Loaded) -> Result<()> {
    for p in &loaded.problems {
        if input.strict {
            bail!("{p}");
        }
        eprintln!("arbiter: skipped: {p}");
    }
    if !loaded.problems.is_empty() {
        eprintln!("arbiter: {} row(s) skipped", loaded.problems.len());
    }
    Ok(())
}

/// The texts named by `--text` / `--texts` (or `None` when neither is given).
fn generic_texts(
    input: &InputArgs,
    ratings_file: Option<&Path>,
) -> Result<Option<Vec<ItemRecord>>> {
    let (path, columns) = match (&input.text, &input.texts) {
        (Some(col), _) => {
            let Some(file) = ratings_file else {
                bail!("--text COL reads a column of the ratings file; give the file");
            };
            if arbiter_columnar::is_parquet(file) {
                bail!(
                    "--text reads CSV/JSONL ratings files; for {} give the texts with --texts",
                    file.display()
                );
            }
            (
                file.to_path_buf(),
                TextColumns {
                    item: input.item.clone(),
                    text: col.clone(),
                    split: input.split_column.clone(),
                },
            )
        }
        (None, Some(file)) => (
            file.clone(),
            TextColumns {
                item: input.texts_item.clone(),
                text: input.texts_text.clone(),
                split: input.split_column.clone(),
            },
        ),
        (None, None) => return Ok(None),
    };
    Ok(Some(texts::texts_file(&path, &columns)?))
}

/// The ratings and the item texts, joined into a corpus.
fn load_corpus(input: &InputArgs) -> Result<Corpus> {
    let (kind, arg) = match input.dataset.as_deref() {
        Some(name) => name.split_once(':').unwrap_or((name, "")),
        None => ("", ""),
    };
    let (name, loaded, records) = match kind {
        "lewidi" => {
            const SETS: [&str; 4] = ["HS-Brexit", "ArMIS", "MD-Agreement", "ConvAbuse"];
            if !SETS.contains(&arg) {
                bail!("--dataset lewidi:SET: SET is one of {}", SETS.join(", "));
            }
            let dir = dataset_dir(input, "annotation/lewidi2023");
            let opts =
                stats_cmd::options(&ratings_args(input, dir.clone(), None), LabelKind::Nominal)?;
            let loaded = datasets::lewidi_task(&dir, arg, &opts)?;
            let records = match generic_texts(input, None)? {
                Some(r) => r,
                None => texts::lewidi_texts(&dir, arg)?,
            };
            (arg.to_string(), loaded, records)
        }
        "multipico" => {
            let dir = dataset_dir(input, "annotation/multipico");
            let opts =
                stats_cmd::options(&ratings_args(input, dir.clone(), None), LabelKind::Nominal)?;
            let fields: Vec<&str> = if input.groups.is_empty() {
                MULTIPICO_FIELDS.to_vec()
            } else {
                input.groups.iter().map(String::as_str).collect()
            };
            let loaded = datasets::multipico(&dir, &fields, &opts)?;
            let records = match generic_texts(input, None)? {
                Some(r) => r,
                None => texts::multipico_texts(&dir)?,
            };
            ("MultiPICo".to_string(), loaded, records)
        }
        _ => {
            let Some(file) = input.file.clone() else {
                bail!("give a ratings file, or --dataset lewidi:SET / --dataset multipico");
            };
            let loaded = stats_cmd::load(
                &ratings_args(input, file.clone(), input.dataset.clone()),
                LabelKind::Nominal,
                &[],
            )?;
            let Some(records) = generic_texts(input, Some(&file))? else {
                bail!(
                    "the models read each item's text: give --text COL (a column of {}) or --texts FILE",
                    file.display()
                );
            };
            let name = file
                .file_stem()
                .map_or_else(|| "ratings".into(), |s| s.to_string_lossy().into_owned());
            return corpus_from(&name, &loaded, records);
        }
    };
    report_problems(input, &loaded)?;
    corpus_from(&name, &loaded, records)
}

fn corpus_from(name: &str, loaded: &Loaded, records: Vec<ItemRecord>) -> Result<Corpus> {
    let mut by_item: HashMap<String, ItemRecord> = HashMap::with_capacity(records.len());
    for r in records {
        by_item.entry(r.item.clone()).or_insert(r);
    }
    let mut bad_split = None;
    let corpus = Corpus::from_ratings(name, &loaded.ratings, |id| {
        let r = by_item.get(id).filter(|r| !r.text.trim().is_empty())?;
        let split = match r.split.as_deref() {
            None => None,
            Some(s) => {
                let parsed = Split::parse(s);
                if parsed.is_none() && bad_split.is_none() {
                    bad_split = Some((id.to_string(), s.to_string()));
                }
                parsed
            }
        };
        Some(ItemMeta {
            text: r.text.clone(),
            split,
            hard_label: r.hard_label.clone(),
        })
    })?;
    if let Some((item, split)) = bad_split {
        bail!("item {item}: split {split:?} is not train, dev or test");
    }
    eprintln!(
        "arbiter: {}: {} items, {} annotators, {} labels, classes {}",
        corpus.name,
        corpus.items.len(),
        corpus.annotators.len(),
        corpus.ratings.len(),
        corpus.classes.join("/")
    );
    Ok(corpus)
}

// ------------------------------------------------------------------ features

/// The MiniLM encoder as the perspective models' [`Embedder`], with the matrix cache and a
/// progress bar.
struct MiniLmEmbedder(TextEmbedder);

impl Embedder for MiniLmEmbedder {
    fn name(&self) -> String {
        self.0.name()
    }

    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let bar = crate::progress::bar(texts.len() as u64, "embedding texts");
        let start = std::time::Instant::now();
        let (rows, outcome) = self
            .0
            .embed(texts, &mut |done| bar.set_position(done as u64))
            .map_err(|e| {
                format!(
                    "{e}: --features minilm+ngrams needs the MiniLM model for texts not yet \
                     cached (run scripts/setup-models.sh, or pass --features ngrams)"
                )
            })?;
        bar.finish_and_clear();
        let secs = start.elapsed().as_secs_f64();
        match outcome {
            CacheOutcome::Hit(p) => {
                eprintln!(
                    "arbiter: embeddings of {} texts from {}",
                    texts.len(),
                    p.display()
                )
            }
            other => {
                eprintln!(
                    "arbiter: embedded {} texts in {secs:.1} s ({:.1} texts/s)",
                    texts.len(),
                    texts.len() as f64 / secs.max(1e-9)
                );
                match other {
                    CacheOutcome::Written(p) => {
                        eprintln!("arbiter: cached the embeddings in {}", p.display())
                    }
                    CacheOutcome::Replaced(p, why) => eprintln!(
                        "arbiter: warning: ignored a damaged embedding cache file {} ({why}); rewrote it",
                        p.display()
                    ),
                    CacheOutcome::WriteFailed(p, why) => eprintln!(
                        "arbiter: warning: could not cache the embeddings in {}: {why}",
                        p.display()
                    ),
                    CacheOutcome::Off | CacheOutcome::Hit(_) => {}
                }
            }
        }
        Ok(rows)
    }
}

/// MiniLM from `model_dir` (default: the setup's directory), read only if some texts are not
/// in the embedding cache.
fn load_embedder(model_dir: Option<&Path>, max_tokens: usize, no_cache: bool) -> MiniLmEmbedder {
    let dir = model_dir.map_or_else(default_model_dir, Path::to_path_buf);
    let embedder = TextEmbedder::lazy(&dir, max_tokens);
    MiniLmEmbedder(if no_cache {
        embedder.with_cache_dir(None)
    } else {
        embedder
    })
}

fn texts_of(corpus: &Corpus) -> Vec<&str> {
    corpus.items.iter().map(|i| i.text.as_str()).collect()
}

fn build_features(corpus: &Corpus, args: &FeatureArgs) -> Result<Features> {
    let texts = texts_of(corpus);
    let features = match args.features {
        FeatureKind::Ngrams => Features::build(&texts, None, args.ngram_buckets)?,
        FeatureKind::MinilmNgrams => {
            let mut e = load_embedder(
                args.model_dir.as_deref(),
                args.max_tokens,
                args.no_embedding_cache,
            );
            Features::build(&texts, Some(&mut e), args.ngram_buckets)?
        }
    };
    Ok(features)
}

// ------------------------------------------------------------------ splits

/// Official splits when the data has a test split; otherwise (or under `--split random`) a
/// seeded random split by item.
fn split_mode(corpus: &Corpus, split: &SplitArgs, seed: u64) -> Result<SplitMode> {
    if !(split.test_share > 0.0 && split.test_share < 1.0) {
        bail!("--test-share must be between 0 and 1");
    }
    let has_official = corpus.items.iter().any(|i| i.split == Some(Split::Test));
    Ok(match split.split {
        SplitArg::Official if has_official => SplitMode::Official,
        arg => {
            if arg == SplitArg::Official {
                eprintln!(
                    "arbiter: {} has no official test split; holding out a seeded random {:.0}% of the items",
                    corpus.name,
                    split.test_share * 100.0
                );
            }
            SplitMode::Random {
                test_share: split.test_share,
                seed,
            }
        }
    })
}

/// Evaluation and training settings from the flags, the core's defaults otherwise.
fn settings(args: &ModelArgs) -> EvalSettings {
    let mut s = EvalSettings {
        pool_attribute: args.pool.clone(),
        identity_attributes: args.identity.clone(),
        cv_folds: args.cv_folds,
        selection_unseen_share: args.selection_unseen_share,
        ..EvalSettings::default()
    };
    if !args.components.is_empty() {
        s.components_grid = args.components.clone();
    }
    s.train.seed = args.seed;
    s
}

/// Progress lines of the core, on standard error.
fn progress(line: &str) {
    eprintln!("arbiter: {line}");
}

// ------------------------------------------------------------------ subcommands

fn train(args: TrainArgs) -> Result<ExitCode> {
    input::check_distinct(&input_paths(&args.input), &[("--out", &args.out)])?;
    let corpus = load_corpus(&args.input)?;
    let features = build_features(&corpus, &args.features)?;
    let model = arbiter_perspectives::train_models(
        &corpus,
        &features,
        &settings(&args.model),
        &mut progress,
    )?;
    input::write_file(&args.out, &(serde_json::to_string(&model)? + "\n"))?;
    eprintln!("arbiter: wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

fn predict(args: PredictArgs) -> Result<ExitCode> {
    let mut ins = input_paths(&args.input);
    ins.push(("--model", args.model.as_path()));
    input::check_distinct(&ins, &[("--out", &args.out)])?;
    let text = std::fs::read_to_string(&args.model)
        .with_context(|| format!("cannot read {}", args.model.display()))?;
    let model: ModelFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a perspectives model file", args.model.display()))?;
    model
        .validate()
        .with_context(|| args.model.display().to_string())?;
    let kind = match args.kind.as_deref() {
        None => None,
        Some(k) => Some(ModelKind::parse(k).with_context(|| {
            format!(
                "--kind {k:?}: one of majority, soft-label, annotator-heads, annotator-embedding"
            )
        })?),
    };
    // New items without ratings: only a texts file. With ratings, each item's own annotators
    // make its soft label.
    let unrated = args.input.file.is_none() && args.input.dataset.is_none();
    let (ids, owned_texts, annotators): (Vec<String>, Vec<String>, Option<Vec<Vec<String>>>) =
        if unrated {
            let Some(records) = generic_texts(&args.input, None)? else {
                bail!("give a ratings file, --dataset, or the new items' texts with --texts FILE");
            };
            if records.is_empty() {
                bail!("no texts to predict");
            }
            let (ids, texts) = records.into_iter().map(|r| (r.item, r.text)).unzip();
            (ids, texts, None)
        } else {
            let corpus = load_corpus(&args.input)?;
            let mut annotators: Vec<Vec<String>> = vec![Vec::new(); corpus.items.len()];
            for r in &corpus.ratings {
                let who = &corpus.annotators[r.annotator as usize].id;
                let list = &mut annotators[r.item as usize];
                if !list.contains(who) {
                    list.push(who.clone());
                }
            }
            let ids = corpus.items.iter().map(|i| i.id.clone()).collect();
            let texts = corpus.items.into_iter().map(|i| i.text).collect();
            (ids, texts, Some(annotators))
        };
    let texts: Vec<&str> = owned_texts.iter().map(String::as_str).collect();
    let spec = &model.features;
    let features = match &spec.embedder {
        None => Features::build(&texts, None, spec.ngram_buckets)?,
        Some(name) => {
            let max_tokens = name
                .rsplit_once("/max")
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or(text_embeddings::DEFAULT_MAX_TOKENS);
            let mut e = load_embedder(
                args.model_dir.as_deref(),
                max_tokens,
                args.no_embedding_cache,
            );
            if e.name() != *name {
                bail!(
                    "{} was trained on {name} features; this encoder is {}",
                    args.model.display(),
                    e.name()
                );
            }
            Features::build(&texts, Some(&mut e), spec.ngram_buckets)?
        }
    };
    let per = match args.per {
        PerArg::Item => Per::Item,
        PerArg::Annotator => Per::Annotator,
        PerArg::Pool => Per::Pool,
    };
    let predictions = model
        .predict(&ids, &features, annotators.as_deref(), kind, per)
        .with_context(|| args.model.display().to_string())?;
    let mut f = input::AtomicFile::create(&args.out)?;
    for p in &predictions {
        serde_json::to_writer(&mut f, p)?;
        f.write_all(b"\n")?;
    }
    f.finish()?;
    eprintln!(
        "arbiter: wrote {} predictions to {}",
        predictions.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn eval(args: EvalArgs) -> Result<ExitCode> {
    if let Some(out) = &args.out {
        input::check_distinct(&input_paths(&args.input), &[("--out", out)])?;
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let corpus = load_corpus(&args.input)?;
    let features = build_features(&corpus, &args.features)?;
    let mut settings = settings(&args.model);
    settings.split = split_mode(&corpus, &args.split, args.model.seed)?;
    settings.seeds = (0..args.seeds as u64)
        .map(|k| args.model.seed.wrapping_add(k))
        .collect();
    settings.bootstrap = args.bootstrap;
    if args.quick {
        settings.curves = false;
        settings.shots.clear();
    }
    eprintln!("arbiter: evaluating ({} seed(s))", settings.seeds.len());
    let evaluation = arbiter_perspectives::evaluate(&corpus, &features, &settings, &mut progress)?;
    let report = EvalReport::new(&corpus, evaluation);
    let json = serde_json::to_string_pretty(&report.to_json())? + "\n";
    if let Some(out) = &args.out {
        // The three files appear together or not at all.
        let staged = input::StagedDir::begin(out, input::REPORT_MARKER)?;
        input::write_file(&staged.path().join("report.json"), &json)?;
        input::write_file(&staged.path().join("report.md"), &report.markdown())?;
        input::write_file(&staged.path().join("report.html"), &report.html())?;
        staged.commit()?;
        eprintln!(
            "arbiter: wrote report.md, report.html and report.json to {}",
            out.display()
        );
    }
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => stdout.write_all(json.as_bytes())?,
        Format::Markdown => stdout.write_all(report.markdown().as_bytes())?,
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The input files, for refusing an output that would overwrite one.
fn input_paths(input: &InputArgs) -> Vec<(&'static str, &Path)> {
    let mut out = Vec::new();
    if let Some(f) = &input.file {
        out.push(("ratings file", f.as_path()));
    }
    if let Some(f) = &input.texts {
        out.push(("--texts", f.as_path()));
    }
    out
}

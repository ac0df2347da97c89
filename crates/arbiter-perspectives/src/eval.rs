//! Evaluation as the perspectivist shared tasks do it: official splits, hyper-parameters chosen
//! on the development split only, every figure on the test split with a bootstrap interval,
//! several seeds, seen and unseen annotators, k-shot adaptation, learning curves, the pool ×
//! pool matrix and the uncertainty correlation.

use std::collections::{BTreeMap, HashMap};

use arbiter_core::bootstrap::percentile_interval;
use arbiter_core::rng::SeededRng;
use serde::{Deserialize, Serialize};

use crate::corpus::{Corpus, Split};
use crate::features::Features;
use crate::linalg::Pca;
use crate::metrics::{self, argmax};
use crate::model::{Adapted, Example, ModelKind, PerspectiveModel, TrainOptions, Who, fit};

/// How items are split into training, development and test items.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum SplitMode {
    /// The dataset's own splits; without a development split, a seeded fifth of the training
    /// items selects the hyper-parameters (without a training split, the development items
    /// train).
    Official,
    /// A seeded random split by item (every annotator may appear on both sides).
    Random {
        /// Share of items held out for test.
        test_share: f64,
        /// Seed of the split.
        seed: u64,
    },
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalSettings {
    /// The split.
    pub split: SplitMode,
    /// Seeds of the final models (each model trained once per seed).
    pub seeds: Vec<u64>,
    /// Bootstrap replicates for the intervals (0 = none).
    pub bootstrap: usize,
    /// Confidence of the intervals.
    pub confidence: f64,
    /// The annotator attribute that defines pools (the pool × pool matrix), if any.
    pub pool_attribute: Option<String>,
    /// Attributes that place annotators by identity (embedding model); empty = none.
    pub identity_attributes: Vec<String>,
    /// Widths of the principal components to choose from: the features are projected on the
    /// widest, and every model sees the leading ones that the soft-label model scores best on
    /// the selection folds ([`choose_components`]). The default stops at 256 for time: on
    /// ConvAbuse the projection takes 10 s at 256 and 75 s at 512 (several minutes at 1,024),
    /// for a dev-split soft CE 0.003 lower; the report says when the widest wins.
    pub components_grid: Vec<usize>,
    /// Shared training settings; the ridges are chosen on the development split.
    pub train: TrainOptions,
    /// Shared ridge values to choose from.
    pub l2_grid: Vec<f64>,
    /// Annotator ridge values to choose from.
    pub annotator_l2_grid: Vec<f64>,
    /// Steps a ridge grid may grow past either end (by its own spacing there) while the
    /// development split's best value lies at that end: a grid that stops at the optimum's
    /// edge has not found it.
    pub grid_extensions: usize,
    /// Folds of the cross-validation over train + dev that scores every candidate setting
    /// when the development split is smaller than [`EvalSettings::cv_below`] (0 or 1: never).
    pub cv_folds: usize,
    /// Development splits with fewer items than this are too noisy to choose on alone (the
    /// soft CE of 150 items moves by more than the candidates differ): their items join the
    /// training items and [`EvalSettings::cv_folds`] folds score each candidate out of fold.
    pub cv_below: usize,
    /// Share of the scored labels whose annotators each selection fit leaves out, so that
    /// settings are chosen where some raters are new, as they are on the evaluated split;
    /// `None`: the evaluated split's own share (its labels from annotators with none in train
    /// or dev: a count of who rated, not of what they said). See [`selection_folds`].
    pub selection_unseen_share: Option<f64>,
    /// Weights α of the shared head in an annotator model's item soft label, to choose from:
    /// `(1 − α)·mean over the item's annotators + α·softmax(b + W z)` (see [`choose_blend`]).
    pub blend_grid: Vec<f64>,
    /// Labels of a new annotator used to adapt to them (k-shot).
    pub shots: Vec<usize>,
    /// Whether to draw the learning curves.
    pub curves: bool,
    /// Caps on labels per annotator for the learning curve.
    pub labels_per_annotator: Vec<usize>,
    /// Shares of the training items for the learning curve.
    pub training_shares: Vec<f64>,
    /// Fewest test labels an annotator needs to enter the per-annotator figures.
    pub min_annotator_labels: usize,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            split: SplitMode::Official,
            seeds: vec![1, 2, 3],
            bootstrap: 1000,
            confidence: 0.95,
            pool_attribute: None,
            identity_attributes: Vec::new(),
            components_grid: vec![32, 64, 128, 256],
            train: TrainOptions::default(),
            l2_grid: vec![1e-5, 1e-4, 1e-3, 1e-2],
            annotator_l2_grid: vec![0.5, 2.0, 8.0, 32.0],
            grid_extensions: 2,
            cv_folds: 5,
            cv_below: 500,
            selection_unseen_share: None,
            blend_grid: (0..10).map(|i| f64::from(i) / 10.0).collect(),
            shots: vec![5, 10, 20],
            curves: true,
            labels_per_annotator: vec![5, 10, 25, 50, 100, 200, usize::MAX],
            training_shares: vec![0.1, 0.25, 0.5, 1.0],
            min_annotator_labels: 5,
        }
    }
}

/// Why an evaluation could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// Official splits asked for, but some items have none.
    #[error("{0} item(s) have no official split; use a random split")]
    NoSplits(usize),
    /// A split is empty.
    #[error("the {0} split has no items")]
    EmptySplit(&'static str),
    /// Features do not match the corpus.
    #[error("{features} feature rows for {items} items")]
    FeatureRows {
        /// Rows given.
        features: usize,
        /// Items in the corpus.
        items: usize,
    },
    /// An attribute is unknown.
    #[error(transparent)]
    Corpus(#[from] crate::corpus::CorpusError),
    /// Settings out of range.
    #[error("{0}")]
    Settings(String),
}

/// A point estimate with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The value on the test split.
    pub value: f64,
    /// Percentile bootstrap interval, when replicates were drawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<[f64; 2]>,
}

/// Per-annotator macro-F1 summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnotatorF1 {
    /// Mean over annotators with enough test labels (interval: bootstrap over annotators).
    pub mean: Option<Estimate>,
    /// The worst such annotator.
    pub worst: Option<f64>,
    /// How many annotators are averaged.
    pub n_annotators: usize,
    /// Mean per value of each identity attribute: attribute → value → (mean, n).
    pub per_group: BTreeMap<String, BTreeMap<String, GroupMean>>,
}

/// A mean over a group of annotators.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GroupMean {
    /// Mean macro-F1.
    pub mean: f64,
    /// Annotators.
    pub n: usize,
}

/// One model's figures on the test split (mean over seeds; per seed in `by_seed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFigures {
    /// Which model.
    pub model: ModelKind,
    /// Leading principal components the model reads: the soft-label model's width for the
    /// item models, the annotator models' own choice at that width or wider.
    pub components: usize,
    /// Chosen shared ridge.
    pub l2: f64,
    /// Chosen annotator ridge (annotator models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotator_l2: Option<f64>,
    /// Chosen weight α of the model's own shared head in the item soft label (annotator
    /// models; [`EvalSettings::blend_grid`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blend: Option<f64>,
    /// Threshold on P(class 1) for an annotator's predicted label (two classes), chosen on
    /// the development split for per-annotator macro-F1; micro-F1 and error rates use the
    /// argmax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Mean per-annotator macro-F1 on the development split at the chosen settings.
    pub dev_per_annotator_macro_f1: f64,
    /// Soft CE on the development split at the chosen ridges (what chose them).
    pub dev_soft_ce: f64,
    /// LeWiDi 2023 soft cross-entropy.
    pub soft_ce: Estimate,
    /// This model's test soft CE minus the soft-label model's, item by item on the same
    /// items, with a paired bootstrap interval: below zero where this model is better, and an
    /// interval spanning zero where the test split cannot tell them apart. `None` for the
    /// soft-label model itself.
    pub soft_ce_vs_soft_label: Option<Estimate>,
    /// Micro-F1 of the argmax against the dataset's hard labels.
    pub micro_f1: Option<Estimate>,
    /// LeWiDi 2025 Manhattan distance.
    pub manhattan: Estimate,
    /// LeWiDi 2025 per-annotator error rate.
    pub per_annotator_error_rate: Estimate,
    /// Per-annotator macro-F1 over all test annotators.
    pub per_annotator_macro_f1: AnnotatorF1,
    /// The same, over annotators seen in training and over those not.
    pub seen: AnnotatorF1,
    /// Annotators absent from training.
    pub unseen: AnnotatorF1,
    /// Pearson r between the spread of per-annotator predictions and the observed disagreement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncertainty_r: Option<f64>,
    /// Soft CE per seed.
    pub by_seed: Vec<SeedFigures>,
}

/// Headline figures of one seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeedFigures {
    /// Seed.
    pub seed: u64,
    /// Soft CE.
    pub soft_ce: f64,
    /// Micro-F1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub micro_f1: Option<f64>,
    /// Mean per-annotator macro-F1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_annotator_macro_f1: Option<f64>,
}

/// Reference points that need no model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baselines {
    /// CE of predicting the training items' mean soft label for every item.
    pub prior_ce: f64,
    /// CE of the uniform distribution.
    pub uniform_ce: f64,
    /// Micro-F1 of predicting the training's most frequent hard label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub majority_f1: Option<f64>,
    /// Manhattan distance of the training prior.
    pub prior_manhattan: f64,
    /// Per-annotator error rate of predicting the most frequent training label for everyone.
    pub most_frequent_error_rate: f64,
    /// Mean per-annotator macro-F1 of predicting the most frequent label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub most_frequent_macro_f1: Option<f64>,
    /// Per-annotator error rate of predicting each annotator's own most frequent training
    /// label (the overall one for annotators without training labels).
    pub annotator_most_frequent_error_rate: f64,
}

/// New annotators: the population head, their identity's place, and adaptation from k labels,
/// each scored on the same held-out labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnseenFigures {
    /// How the new annotators were found: `official test` or `annotator folds`.
    pub protocol: String,
    /// Which model.
    pub model: ModelKind,
    /// Annotators scored.
    pub n_annotators: usize,
    /// One row per k (0 = no labels of theirs).
    pub shots: Vec<ShotRow>,
}

/// Figures after seeing k labels of each new annotator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShotRow {
    /// Labels used to adapt.
    pub k: usize,
    /// Annotators with more than k + `min_annotator_labels` labels (scored on the rest).
    pub n_annotators: usize,
    /// Mean macro-F1 of the population head on the held-out labels.
    pub population_macro_f1: Option<f64>,
    /// Mean macro-F1 placed by identity only (when attributes are used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_macro_f1: Option<f64>,
    /// Mean macro-F1 after adapting on k labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapted_macro_f1: Option<f64>,
    /// Error rates (share of held-out labels missed) for the same three.
    pub population_error: Option<f64>,
    /// Placed by identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_error: Option<f64>,
    /// Adapted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapted_error: Option<f64>,
}

/// One point of a learning curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    /// The cap (labels per annotator) or share of training items.
    pub x: f64,
    /// Training labels used.
    pub n_labels: usize,
    /// Which model.
    pub model: ModelKind,
    /// Soft CE on test.
    pub soft_ce: f64,
    /// Mean per-annotator macro-F1 on test.
    pub per_annotator_macro_f1: Option<f64>,
}

/// Pool × pool: a soft-label model per pool, scored against every pool's own soft labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolMatrix {
    /// The attribute.
    pub attribute: String,
    /// Pools (rows: trained on; columns: scored against).
    pub pools: Vec<String>,
    /// Annotators per pool.
    pub annotators: Vec<usize>,
    /// Soft CE, `[trained on][scored against]`; `None` where a pool has no training or test
    /// labels.
    pub soft_ce: Vec<Vec<Option<f64>>>,
    /// Soft CE of a model trained on every other pool, per pool scored.
    pub from_others: Vec<Option<f64>>,
    /// Soft CE of the per-annotator model averaged over the pool's own annotators.
    pub annotator_model: Vec<Option<f64>>,
    /// Soft CE of the pooled (all pools) soft-label model against each pool.
    pub from_all: Vec<Option<f64>>,
}

/// Everything measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Dataset.
    pub dataset: String,
    /// The split used.
    pub split: SplitMode,
    /// Items per split (train, dev, test).
    pub split_sizes: [usize; 3],
    /// Items in the corpus.
    pub n_items: usize,
    /// Annotators in the corpus.
    pub n_annotators: usize,
    /// Labels.
    pub n_labels: usize,
    /// Classes.
    pub classes: Vec<String>,
    /// Test annotators seen in training, and not.
    pub test_annotators: [usize; 2],
    /// Share of test labels given by annotators absent from training.
    pub unseen_label_share: f64,
    /// How the settings of every model were chosen.
    pub selection: Selection,
    /// How new the scored labels' annotators were to the fits that chose the settings.
    pub selection_unseen: SelectionUnseen,
    /// Principal components the soft-label model and the other item models see (chosen from
    /// [`EvalSettings::components_grid`]); each annotator model's own is in its figures.
    pub components: usize,
    /// Each width tried, with the soft-label model's best ridge and selection soft CE there.
    pub components_scores: Vec<ComponentsScore>,
    /// Feature description.
    pub features: crate::features::FeatureSpec,
    /// Baselines.
    pub baselines: Baselines,
    /// Every model, in [`ModelKind::ALL`] order.
    pub models: Vec<ModelFigures>,
    /// The model with the lowest development soft CE (headline soft CE and micro-F1).
    pub selected: ModelKind,
    /// The annotator model with the best development per-annotator macro-F1.
    pub selected_annotator_model: ModelKind,
    /// New annotators.
    pub unseen: Option<UnseenFigures>,
    /// Learning curve over labels per annotator.
    pub curve_labels_per_annotator: Vec<CurvePoint>,
    /// Learning curve over training items.
    pub curve_training_size: Vec<CurvePoint>,
    /// Pool matrix.
    pub pools: Option<PoolMatrix>,
    /// Settings.
    pub settings: EvalSettings,
}

/// One width of the principal components, as the soft-label model scored it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ComponentsScore {
    /// Leading principal components kept.
    pub components: usize,
    /// The soft-label model's best shared ridge at this width.
    pub l2: f64,
    /// Its soft CE on the selection folds at that ridge.
    pub dev_soft_ce: f64,
}

/// What the development split chose for one model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Choice {
    /// Leading principal components the model reads.
    pub(crate) components: usize,
    pub(crate) l2: f64,
    pub(crate) annotator_l2: Option<f64>,
    /// Weight of the shared head in the item soft label (annotator models).
    pub(crate) blend: Option<f64>,
    pub(crate) dev_ce: f64,
    pub(crate) dev_f1: f64,
    pub(crate) threshold: Option<f64>,
}

/// The items of each split and the data derived once for all models.
pub(crate) struct Prepared<'a> {
    pub(crate) corpus: &'a Corpus,
    pub(crate) train: Vec<u32>,
    pub(crate) dev: Vec<u32>,
    pub(crate) test: Vec<u32>,
    pub(crate) by_item: Vec<Vec<(u32, u16)>>,
    pub(crate) soft: Vec<Vec<f64>>,
    /// Hard label per item: the dataset's, else a strict majority, else none.
    pub(crate) hard: Vec<Option<u16>>,
    /// Identity indicators per corpus annotator.
    pub(crate) identity: Vec<Vec<u32>>,
    pub(crate) n_identity: usize,
    /// Identity attribute values per corpus annotator (for per-group means).
    pub(crate) groups: Vec<(String, Vec<Option<String>>)>,
}

pub(crate) fn partition(corpus: &Corpus, mode: &SplitMode) -> Result<[Vec<u32>; 3], EvalError> {
    let all: Vec<u32> = (0..corpus.items.len() as u32).collect();
    let [mut train, mut dev, test] = match mode {
        SplitMode::Official => {
            let missing = corpus.items.iter().filter(|i| i.split.is_none()).count();
            if missing > 0 {
                return Err(EvalError::NoSplits(missing));
            }
            [
                corpus.split_items(Split::Train),
                corpus.split_items(Split::Dev),
                corpus.split_items(Split::Test),
            ]
        }
        SplitMode::Random { test_share, seed } => {
            if !(0.0 < *test_share && *test_share < 1.0) {
                return Err(EvalError::Settings(format!(
                    "test share {test_share} is not between 0 and 1"
                )));
            }
            let mut order = all.clone();
            SeededRng::new(*seed).shuffle(&mut order);
            let n_test = ((order.len() as f64 * test_share).round() as usize).max(1);
            let test: Vec<u32> = order[..n_test].to_vec();
            let rest = order[n_test..].to_vec();
            let n_dev = (rest.len() as f64 * 0.15).round() as usize;
            [rest[n_dev..].to_vec(), rest[..n_dev].to_vec(), test]
        }
    };
    if train.is_empty() && !dev.is_empty() {
        // A development split without a training split (MultiPICo ships dev and test): the
        // development items are the training items.
        train = std::mem::take(&mut dev);
    }
    if dev.is_empty() && train.len() >= 5 {
        // No development split: a seeded fifth of the training items chooses the ridges.
        let mut order = train.clone();
        SeededRng::new(0x5e1ec7).shuffle(&mut order);
        let n_dev = order.len() / 5;
        dev = order[..n_dev].to_vec();
        train = order[n_dev..].to_vec();
    }
    for (name, items) in [("train", &train), ("dev", &dev), ("test", &test)] {
        if items.is_empty() {
            return Err(EvalError::EmptySplit(name));
        }
    }
    train.sort_unstable();
    dev.sort_unstable();
    let mut test = test;
    test.sort_unstable();
    Ok([train, dev, test])
}

impl<'a> Prepared<'a> {
    fn new(corpus: &'a Corpus, settings: &EvalSettings) -> Result<Prepared<'a>, EvalError> {
        let parts = partition(corpus, &settings.split)?;
        Prepared::with_parts(corpus, settings, parts)
    }

    pub(crate) fn with_parts(
        corpus: &'a Corpus,
        settings: &EvalSettings,
        [train, dev, test]: [Vec<u32>; 3],
    ) -> Result<Prepared<'a>, EvalError> {
        let by_item = corpus.by_item();
        let c = corpus.n_classes();
        let soft: Vec<Vec<f64>> = by_item
            .iter()
            .map(|r| {
                let mut t = vec![0.0; c];
                for &(_, l) in r {
                    t[l as usize] += 1.0 / r.len() as f64;
                }
                t
            })
            .collect();
        let hard = corpus
            .items
            .iter()
            .zip(&soft)
            .zip(&by_item)
            .map(|((item, t), r)| {
                item.hard_label.or_else(|| {
                    if r.is_empty() {
                        return None;
                    }
                    let best = argmax(t);
                    let top = t[best as usize];
                    (t.iter().filter(|&&v| v == top).count() == 1).then_some(best)
                })
            })
            .collect();
        let mut identity = vec![Vec::new(); corpus.annotators.len()];
        let mut n_identity = 0;
        let mut groups = Vec::new();
        for name in &settings.identity_attributes {
            let a = corpus
                .attributes
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| crate::corpus::CorpusError::UnknownAttribute {
                    name: name.clone(),
                    available: corpus.attributes.clone(),
                })?;
            let mut values: BTreeMap<&str, u32> = BTreeMap::new();
            for ann in &corpus.annotators {
                if let Some(v) = &ann.attributes[a] {
                    values.entry(v).or_insert(0);
                }
            }
            for (i, v) in values.values_mut().enumerate() {
                *v = n_identity + i as u32;
            }
            for (ann, ids) in corpus.annotators.iter().zip(&mut identity) {
                if let Some(v) = &ann.attributes[a] {
                    ids.push(values[v.as_str()]);
                }
            }
            n_identity += values.len() as u32;
            groups.push((
                name.clone(),
                corpus
                    .annotators
                    .iter()
                    .map(|x| x.attributes[a].clone())
                    .collect(),
            ));
        }
        if let Some(pool) = &settings.pool_attribute
            && !settings.identity_attributes.contains(pool)
        {
            let a = corpus
                .attributes
                .iter()
                .position(|n| n == pool)
                .ok_or_else(|| crate::corpus::CorpusError::UnknownAttribute {
                    name: pool.clone(),
                    available: corpus.attributes.clone(),
                })?;
            groups.push((
                pool.clone(),
                corpus
                    .annotators
                    .iter()
                    .map(|x| x.attributes[a].clone())
                    .collect(),
            ));
        }
        Ok(Prepared {
            corpus,
            train,
            dev,
            test,
            by_item,
            soft,
            hard,
            identity,
            n_identity: n_identity as usize,
            groups,
        })
    }

    fn classes(&self) -> usize {
        self.corpus.n_classes()
    }

    /// Annotator a's identity indicators.
    pub(crate) fn identity_of(&self, a: usize) -> &[u32] {
        &self.identity[a]
    }
}

/// Examples for one model kind from the given items, keeping only labels for which `keep`
/// (annotator, position among the annotator's labels) holds.
fn examples(
    p: &Prepared<'_>,
    kind: ModelKind,
    items: &[u32],
    keep: &dyn Fn(u32) -> bool,
) -> Vec<Example> {
    let c = p.classes();
    let mut out = Vec::new();
    for &i in items {
        let ratings: Vec<(u32, u16)> = p.by_item[i as usize]
            .iter()
            .copied()
            .filter(|&(a, _)| keep(a))
            .collect();
        if ratings.is_empty() {
            continue;
        }
        match kind {
            ModelKind::SoftLabel => {
                let mut t = vec![0.0; c];
                for &(_, l) in &ratings {
                    t[l as usize] += 1.0 / ratings.len() as f64;
                }
                out.push(Example {
                    item: i,
                    annotator: 0,
                    target: t,
                    weight: 1.0,
                });
            }
            ModelKind::Majority => {
                let mut t = vec![0.0; c];
                for &(_, l) in &ratings {
                    t[l as usize] += 1.0;
                }
                let top = t.iter().cloned().fold(0.0, f64::max);
                let target: Vec<f64> = match p.corpus.items[i as usize].hard_label {
                    Some(h) if ratings.len() == p.by_item[i as usize].len() => (0..c)
                        .map(|x| if x == h as usize { 1.0 } else { 0.0 })
                        .collect(),
                    _ => {
                        let n_top = t.iter().filter(|&&v| v == top).count() as f64;
                        t.iter()
                            .map(|&v| if v == top { 1.0 / n_top } else { 0.0 })
                            .collect()
                    }
                };
                out.push(Example {
                    item: i,
                    annotator: 0,
                    target,
                    weight: 1.0,
                });
            }
            ModelKind::AnnotatorHeads | ModelKind::AnnotatorEmbedding => {
                for (a, l) in ratings {
                    let mut target = vec![0.0; c];
                    target[l as usize] = 1.0;
                    out.push(Example {
                        item: i,
                        annotator: a,
                        target,
                        weight: 1.0,
                    });
                }
            }
        }
    }
    out
}

/// A trained model with what it needs to predict for corpus annotators.
pub(crate) struct Trained {
    pub(crate) model: PerspectiveModel,
    /// Corpus annotators the model saw labels from.
    pub(crate) seen: Vec<bool>,
    /// Weight of the shared head in an item's soft label (annotator models; 0 = the plain mean
    /// over the item's annotators).
    pub(crate) blend: f64,
}

pub(crate) fn train(
    p: &Prepared<'_>,
    z: &[f64],
    k: usize,
    kind: ModelKind,
    items: &[u32],
    keep: &dyn Fn(u32) -> bool,
    opts: &TrainOptions,
) -> Trained {
    let ex = examples(p, kind, items, keep);
    let mut seen = vec![false; p.corpus.annotators.len()];
    for &i in items {
        for &(a, _) in &p.by_item[i as usize] {
            if keep(a) {
                seen[a as usize] = true;
            }
        }
    }
    let model = fit(
        kind,
        z,
        k,
        p.classes(),
        p.corpus.annotators.len(),
        &p.identity,
        p.n_identity,
        &ex,
        opts,
    );
    Trained {
        model,
        seen,
        blend: 0.0,
    }
}

impl Trained {
    /// Prediction for one corpus annotator on item row `zi`: their own parameters when the
    /// model saw them, else their identity's place when the model places by identity, else
    /// the population (`population`, computed on first use).
    fn annotator(
        &self,
        zi: &[f64],
        a: u32,
        identity: &[Vec<u32>],
        population: &mut Option<Vec<f64>>,
    ) -> Vec<f64> {
        if self.seen[a as usize] {
            return self.model.predict(zi, Who::Known(a), identity);
        }
        let placed = self.placed(&identity[a as usize], identity);
        if !placed.is_empty() {
            return self.model.predict(zi, Who::New(&placed), identity);
        }
        population
            .get_or_insert_with(|| self.population(zi, identity))
            .clone()
    }

    /// The identity indicators among `ids` that some annotator the model saw also has: only
    /// those were trained. None of them (an identity no training annotator shares) places no
    /// one, and the annotator is the population.
    fn placed(&self, ids: &[u32], identity: &[Vec<u32>]) -> Vec<u32> {
        if self.model.n_identity == 0 {
            return Vec::new();
        }
        ids.iter()
            .copied()
            .filter(|s| {
                self.seen
                    .iter()
                    .zip(identity)
                    .any(|(&seen, other)| seen && other.contains(s))
            })
            .collect()
    }

    /// A random trained annotator's distribution: the mean over every annotator the model saw.
    /// The shared head alone is not this: annotators' own offsets need not average to zero.
    fn population(&self, zi: &[f64], identity: &[Vec<u32>]) -> Vec<f64> {
        let seen: Vec<u32> = (0..self.seen.len() as u32)
            .filter(|&a| self.seen[a as usize])
            .collect();
        if !self.model.kind.per_annotator() || seen.is_empty() {
            return self.model.predict(zi, Who::Anyone, identity);
        }
        let mut mean = vec![0.0; self.model.classes];
        for &a in &seen {
            for (m, v) in mean
                .iter_mut()
                .zip(self.model.predict(zi, Who::Known(a), identity))
            {
                *m += v / seen.len() as f64;
            }
        }
        mean
    }

    /// An item's soft label: for annotator models the mean over `annotators` (the item's own,
    /// as the shared tasks score them) blended with the shared head ([`Trained::blended`]),
    /// else the item model's distribution.
    fn item(&self, zi: &[f64], annotators: &[u32], identity: &[Vec<u32>]) -> Vec<f64> {
        if !self.model.kind.per_annotator() || annotators.is_empty() {
            return self.model.predict(zi, Who::Anyone, identity);
        }
        let mut mean = vec![0.0; self.model.classes];
        let mut population = None;
        for &a in annotators {
            let p = self.annotator(zi, a, identity, &mut population);
            for (m, v) in mean.iter_mut().zip(p) {
                *m += v / annotators.len() as f64;
            }
        }
        self.blended(zi, mean, identity)
    }

    /// `(1 − α)·mean + α·shared head`: the annotators' mean shrunk toward the model's own
    /// `b + W z` by the weight the development split chose (no change at α = 0).
    fn blended(&self, zi: &[f64], mean: Vec<f64>, identity: &[Vec<u32>]) -> Vec<f64> {
        if self.blend == 0.0 {
            return mean;
        }
        let shared = self.model.predict(zi, Who::Anyone, identity);
        blend(&mean, &shared, self.blend)
    }
}

/// Predictions on a set of items: per item soft label, and per rating the annotator's
/// predicted distribution.
struct Predictions {
    items: Vec<u32>,
    soft: Vec<Vec<f64>>,
    /// Annotator models: per item the shared head's distribution `softmax(b + W z)` (what the
    /// blend weight is chosen against); empty for item models.
    shared: Vec<Vec<f64>>,
    /// Per item: (annotator, gold label, predicted distribution).
    ratings: Vec<Vec<(u32, u16, Vec<f64>)>>,
}

/// `z` holds `k` values per item, at least the model's width ([`PerspectiveModel::predict`]
/// reads the leading ones).
fn predict_items(p: &Prepared<'_>, z: &[f64], k: usize, m: &Trained, items: &[u32]) -> Predictions {
    let mut soft = Vec::with_capacity(items.len());
    let mut shared = Vec::new();
    let mut ratings = Vec::with_capacity(items.len());
    for &i in items {
        let zi = &z[i as usize * k..(i as usize + 1) * k];
        let annotators: Vec<u32> = p.by_item[i as usize].iter().map(|&(a, _)| a).collect();
        let mut population = None;
        let per: Vec<(u32, u16, Vec<f64>)> = p.by_item[i as usize]
            .iter()
            .map(|&(a, l)| {
                let d = if m.model.kind.per_annotator() {
                    m.annotator(zi, a, &p.identity, &mut population)
                } else {
                    Vec::new()
                };
                (a, l, d)
            })
            .collect();
        let s = if m.model.kind.per_annotator() {
            let mut mean = vec![0.0; p.classes()];
            for (_, _, d) in &per {
                for (x, v) in mean.iter_mut().zip(d) {
                    *x += v / per.len() as f64;
                }
            }
            if per.is_empty() {
                m.item(zi, &annotators, &p.identity)
            } else {
                m.blended(zi, mean, &p.identity)
            }
        } else {
            m.item(zi, &annotators, &p.identity)
        };
        let per = per
            .into_iter()
            .map(|(a, l, d)| (a, l, if d.is_empty() { s.clone() } else { d }))
            .collect();
        if m.model.kind.per_annotator() {
            shared.push(m.model.predict(zi, Who::Anyone, &p.identity));
        }
        soft.push(s);
        ratings.push(per);
    }
    Predictions {
        items: items.to_vec(),
        soft,
        shared,
        ratings,
    }
}

/// When `chosen` is the smallest (largest) value of the ascending `grid`, add one value below
/// (above) it, spaced as the grid is at that end (×10 for a single value), at most `limit`
/// times per end (`grown` counts them: below, above). Whether the grid grew.
pub(crate) fn grow_at_edge(
    grid: &mut Vec<f64>,
    chosen: f64,
    grown: &mut [usize; 2],
    limit: usize,
) -> bool {
    let (first, last) = (grid[0], grid[grid.len() - 1]);
    if chosen == first && grown[0] < limit {
        let ratio = if grid.len() > 1 {
            grid[1] / first
        } else {
            10.0
        };
        grid.insert(0, tidy(first / ratio));
        grown[0] += 1;
        true
    } else if chosen == last && grown[1] < limit {
        let ratio = if grid.len() > 1 {
            last / grid[grid.len() - 2]
        } else {
            10.0
        };
        grid.push(tidy(last * ratio));
        grown[1] += 1;
        true
    } else {
        false
    }
}

/// `x` to nine significant digits: grown grid values read as written (1e-7, not
/// 1.0000000000000002e-7) in the report.
fn tidy(x: f64) -> f64 {
    format!("{x:.9e}").parse().unwrap_or(x)
}

/// `(1 − α)·mean + α·shared`, class by class.
fn blend(mean: &[f64], shared: &[f64], alpha: f64) -> Vec<f64> {
    mean.iter()
        .zip(shared)
        .map(|(m, s)| (1.0 - alpha) * m + alpha * s)
        .collect()
}

/// The weight α in `grid` whose blend of the annotators' mean with the shared head has the
/// lowest soft CE against `targets`, and that CE (ties to the earlier grid value).
///
/// Why: an annotator model's item soft label is the mean of distributions each fitted to one
/// person's hard labels; with few labels per annotator (HS-Brexit: 6 people) their own
/// offsets add variance the vote shares do not reward. The shared head of the same model is
/// the low-variance end of the same fit, so the development split picks how far to shrink.
pub(crate) fn choose_blend(
    mean: &[Vec<f64>],
    shared: &[Vec<f64>],
    targets: &[Vec<f64>],
    grid: &[f64],
) -> (f64, f64) {
    let mut best = (0.0, f64::INFINITY);
    for &alpha in grid {
        let soft: Vec<Vec<f64>> = mean
            .iter()
            .zip(shared)
            .map(|(m, s)| blend(m, s, alpha))
            .collect();
        let ce = metrics::soft_ce(&soft, targets).unwrap_or(f64::INFINITY);
        if ce < best.1 {
            best = (alpha, ce);
        }
    }
    best
}

fn soft_ce_of(p: &Prepared<'_>, pred: &Predictions) -> f64 {
    let targets: Vec<Vec<f64>> = pred
        .items
        .iter()
        .map(|&i| p.soft[i as usize].clone())
        .collect();
    metrics::soft_ce(&pred.soft, &targets).unwrap_or(f64::NAN)
}

/// Each annotator's (gold, predicted) labels over the predictions.
/// An annotator's predicted label: for two classes, class 1 when its probability reaches the
/// threshold chosen on the development split (macro-F1 rewards the rarer class, which the
/// argmax under-predicts); otherwise, and without a threshold, the argmax.
fn decide(d: &[f64], threshold: Option<f64>) -> u16 {
    match threshold {
        Some(t) if d.len() == 2 => u16::from(d[1] >= t),
        _ => argmax(d),
    }
}

/// The threshold on P(class 1) that maximises the mean per-annotator macro-F1 of `pred`
/// (a grid of 0.05 … 0.95 by 0.025; ties to the one nearest 0.5). `None` unless two classes.
fn choose_threshold(p: &Prepared<'_>, pred: &Predictions, min_labels: usize) -> Option<f64> {
    if p.classes() != 2 {
        return None;
    }
    let mut best: Option<(f64, f64)> = None;
    for step in 0..=36 {
        // Multiples of 1/40 from 2/40 = 0.05 to 38/40 = 0.95, each exactly the written value.
        let t = (2 + step) as f64 / 40.0;
        let pairs = per_annotator_pairs(pred, Some(t));
        let f1 = annotator_f1(p, &pairs, &|_| true, min_labels, 0, 0.95, 0)
            .mean
            .map_or(0.0, |e| e.value);
        let better = match best {
            None => true,
            Some((bt, bf)) => {
                f1 > bf + 1e-12 || ((f1 - bf).abs() <= 1e-12 && (t - 0.5).abs() < (bt - 0.5).abs())
            }
        };
        if better {
            best = Some((t, f1));
        }
    }
    best.map(|(t, _)| t)
}

fn per_annotator_pairs(
    pred: &Predictions,
    threshold: Option<f64>,
) -> BTreeMap<u32, (Vec<u16>, Vec<u16>)> {
    let mut out: BTreeMap<u32, (Vec<u16>, Vec<u16>)> = BTreeMap::new();
    for item in &pred.ratings {
        for (a, gold, d) in item {
            let e = out.entry(*a).or_default();
            e.0.push(*gold);
            e.1.push(decide(d, threshold));
        }
    }
    out
}

fn annotator_f1(
    p: &Prepared<'_>,
    pairs: &BTreeMap<u32, (Vec<u16>, Vec<u16>)>,
    include: &dyn Fn(u32) -> bool,
    min_labels: usize,
    bootstrap: usize,
    confidence: f64,
    seed: u64,
) -> AnnotatorF1 {
    let scores: Vec<(u32, f64)> = pairs
        .iter()
        .filter(|(a, (gold, _))| include(**a) && gold.len() >= min_labels)
        .filter_map(|(a, (gold, pred))| metrics::macro_f1(pred, gold).map(|f| (*a, f)))
        .collect();
    let values: Vec<f64> = scores.iter().map(|(_, f)| *f).collect();
    let mean = (!values.is_empty()).then(|| {
        let value = values.iter().sum::<f64>() / values.len() as f64;
        let ci = (bootstrap > 0 && values.len() > 1).then(|| {
            let mut rng = SeededRng::new(seed ^ 0xa11f1);
            let mut reps: Vec<f64> = (0..bootstrap)
                .map(|_| {
                    (0..values.len())
                        .map(|_| values[rng.below(values.len())])
                        .sum::<f64>()
                        / values.len() as f64
                })
                .collect();
            percentile_interval(&mut reps, confidence)
        });
        Estimate {
            value,
            ci: ci.flatten(),
        }
    });
    let mut per_group = BTreeMap::new();
    for (name, values_of) in &p.groups {
        let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for (a, f) in &scores {
            if let Some(v) = &values_of[*a as usize] {
                let e = sums.entry(v.clone()).or_insert((0.0, 0));
                e.0 += f;
                e.1 += 1;
            }
        }
        per_group.insert(
            name.clone(),
            sums.into_iter()
                .map(|(v, (s, n))| {
                    (
                        v,
                        GroupMean {
                            mean: s / n as f64,
                            n,
                        },
                    )
                })
                .collect(),
        );
    }
    AnnotatorF1 {
        mean,
        worst: values.iter().cloned().reduce(f64::min),
        n_annotators: values.len(),
        per_group,
    }
}

/// Item-level metrics of one prediction set: soft CE, micro-F1, Manhattan, error rate.
fn item_metrics(p: &Prepared<'_>, pred: &Predictions, rows: &[usize]) -> [Option<f64>; 4] {
    let soft: Vec<Vec<f64>> = rows.iter().map(|&r| pred.soft[r].clone()).collect();
    let targets: Vec<Vec<f64>> = rows
        .iter()
        .map(|&r| p.soft[pred.items[r] as usize].clone())
        .collect();
    let (mut hp, mut hg) = (Vec::new(), Vec::new());
    for &r in rows {
        if let Some(h) = p.hard[pred.items[r] as usize] {
            hp.push(argmax(&pred.soft[r]));
            hg.push(h);
        }
    }
    let pairs: Vec<Vec<(u16, u16)>> = rows
        .iter()
        .map(|&r| {
            pred.ratings[r]
                .iter()
                .map(|(_, g, d)| (*g, argmax(d)))
                .collect()
        })
        .collect();
    [
        metrics::soft_ce(&soft, &targets),
        metrics::micro_f1(&hp, &hg),
        metrics::manhattan(&soft, &targets),
        metrics::per_annotator_error_rate(&pairs),
    ]
}

fn estimates(
    p: &Prepared<'_>,
    pred: &Predictions,
    bootstrap: usize,
    confidence: f64,
    seed: u64,
) -> [Option<Estimate>; 4] {
    let all: Vec<usize> = (0..pred.items.len()).collect();
    let point = item_metrics(p, pred, &all);
    let mut reps: [Vec<f64>; 4] = Default::default();
    if bootstrap > 0 {
        let mut rng = SeededRng::new(seed ^ 0xb0075);
        let mut rows = vec![0; all.len()];
        for _ in 0..bootstrap {
            for r in rows.iter_mut() {
                *r = rng.below(all.len());
            }
            for (m, v) in item_metrics(p, pred, &rows).into_iter().enumerate() {
                if let Some(v) = v {
                    reps[m].push(v);
                }
            }
        }
    }
    let mut out = [None; 4];
    for m in 0..4 {
        out[m] = point[m].map(|value| Estimate {
            value,
            ci: if reps[m].len() >= bootstrap.max(1) / 2 && bootstrap > 0 {
                percentile_interval(&mut reps[m], confidence)
            } else {
                None
            },
        });
    }
    out
}

/// Mean over items of `a`'s soft CE minus `b`'s (the same items, in the same order), with a
/// percentile interval from resampling items: both models scored on each drawn item, so the
/// items' own difficulty cancels.
fn paired_ce_difference(
    p: &Prepared<'_>,
    a: &Predictions,
    b: &Predictions,
    bootstrap: usize,
    confidence: f64,
    seed: u64,
) -> Estimate {
    debug_assert_eq!(a.items, b.items);
    let diffs: Vec<f64> = a
        .items
        .iter()
        .zip(a.soft.iter().zip(&b.soft))
        .map(|(&i, (pa, pb))| {
            let t = &p.soft[i as usize];
            metrics::item_ce(pa, t) - metrics::item_ce(pb, t)
        })
        .collect();
    let n = diffs.len().max(1) as f64;
    let value = diffs.iter().sum::<f64>() / n;
    let mut reps = Vec::with_capacity(bootstrap);
    let mut rng = SeededRng::new(seed ^ 0xd1ff);
    for _ in 0..bootstrap {
        let total: f64 = (0..diffs.len())
            .map(|_| diffs[rng.below(diffs.len())])
            .sum();
        reps.push(total / n);
    }
    Estimate {
        value,
        ci: if diffs.is_empty() {
            None
        } else {
            percentile_interval(&mut reps, confidence)
        },
    }
}

fn uncertainty_r(pred: &Predictions, p: &Prepared<'_>) -> Option<f64> {
    let (mut model, mut observed) = (Vec::new(), Vec::new());
    for (r, item) in pred.ratings.iter().enumerate() {
        if item.len() < 2 {
            continue;
        }
        let rows: Vec<&[f64]> = item.iter().map(|(_, _, d)| d.as_slice()).collect();
        model.push(metrics::spread(&rows));
        observed.push(metrics::observed_spread(&p.soft[pred.items[r] as usize]));
    }
    metrics::pearson(&model, &observed)
}

/// Average several seeds' predictions of the same items.
fn average(preds: &[Predictions]) -> Predictions {
    let n = preds.len() as f64;
    let mut out = Predictions {
        items: preds[0].items.clone(),
        soft: preds[0].soft.iter().map(|s| vec![0.0; s.len()]).collect(),
        shared: preds[0].shared.iter().map(|s| vec![0.0; s.len()]).collect(),
        ratings: preds[0]
            .ratings
            .iter()
            .map(|r| {
                r.iter()
                    .map(|(a, l, d)| (*a, *l, vec![0.0; d.len()]))
                    .collect()
            })
            .collect(),
    };
    for p in preds {
        for (o, s) in out
            .soft
            .iter_mut()
            .zip(&p.soft)
            .chain(out.shared.iter_mut().zip(&p.shared))
        {
            for (o, v) in o.iter_mut().zip(s) {
                *o += v / n;
            }
        }
        for (o, r) in out.ratings.iter_mut().zip(&p.ratings) {
            for ((_, _, o), (_, _, d)) in o.iter_mut().zip(r) {
                for (o, v) in o.iter_mut().zip(d) {
                    *o += v / n;
                }
            }
        }
    }
    out
}

/// How the candidate settings were scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Selection {
    /// Trained on the training split, scored on the development split's items.
    DevSplit {
        /// Development items.
        items: usize,
    },
    /// Trained on all folds but one of train + dev and scored on the one left out, every
    /// fold in turn; the figures pool the out-of-fold predictions of all the items.
    CrossValidation {
        /// Folds.
        folds: usize,
        /// Train + dev items.
        items: usize,
    },
}

impl Selection {
    /// What chose the settings, for the reports.
    pub fn describe(&self) -> String {
        match *self {
            Selection::DevSplit { items } => format!("the dev split ({items} items)"),
            Selection::CrossValidation { folds, items } => format!(
                "{folds}-fold cross-validation over train + dev ({items} items; the dev split alone is too small to choose on)"
            ),
        }
    }
}

/// Items a candidate is trained on, the items it is then scored on, and, per corpus annotator,
/// whether the fit leaves their labels out (empty: none left out).
pub(crate) struct Fold {
    pub(crate) fit: Vec<u32>,
    pub(crate) held: Vec<u32>,
    pub(crate) withheld: Vec<bool>,
}

/// How new the annotators of the scored labels were to the selection fits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectionUnseen {
    /// The share of scored labels aimed at ([`EvalSettings::selection_unseen_share`]).
    pub target_share: f64,
    /// The share reached: scored labels whose annotator the fit that scored them had no label
    /// from, left out or absent anyway.
    pub label_share: f64,
    /// Annotators left out of a fit, summed over the folds.
    pub withheld_annotators: usize,
}

impl SelectionUnseen {
    /// A clause for the reports, empty when every scored label's annotator was seen.
    pub fn describe(&self) -> String {
        if self.label_share == 0.0 {
            return String::new();
        }
        format!(
            "; {:.1}% of its labels from annotators new to the fits ({} left out of them, for a target of {:.1}%)",
            100.0 * self.label_share,
            self.withheld_annotators,
            100.0 * self.target_share
        )
    }
}

/// Per corpus annotator, whether any of `items` has a label from them.
fn raters_of<'a>(p: &Prepared<'_>, items: impl IntoIterator<Item = &'a u32>) -> Vec<bool> {
    let mut out = vec![false; p.corpus.annotators.len()];
    for &i in items {
        for &(a, _) in &p.by_item[i as usize] {
            out[a as usize] = true;
        }
    }
    out
}

/// The labels on `items` whose annotator is not `seen`, and all labels on `items`.
fn unseen_labels(p: &Prepared<'_>, items: &[u32], seen: &[bool]) -> (usize, usize) {
    let labels = items.iter().flat_map(|&i| &p.by_item[i as usize]);
    labels.fold((0, 0), |(unseen, all), &(a, _)| {
        (unseen + usize::from(!seen[a as usize]), all + 1)
    })
}

/// The share of the labels on `items` whose annotator is not `seen`.
fn unseen_share(p: &Prepared<'_>, items: &[u32], seen: &[bool]) -> f64 {
    let (unseen, all) = unseen_labels(p, items, seen);
    unseen as f64 / all.max(1) as f64
}

/// The share of the test split's labels from annotators with no label in train or dev.
fn test_unseen_share(p: &Prepared<'_>) -> f64 {
    unseen_share(p, &p.test, &raters_of(p, p.train.iter().chain(&p.dev)))
}

/// The annotators a fit whose raters are `in_fit` leaves out so that, with those it has no
/// label from anyway, they give about `share` of the labels on `held`: drawn in a seeded order
/// from the held items' annotators the fit would see, each taken while the share is still
/// short. Why: ridges and blends chosen where every rater is known shrink too little for
/// raters who are not (MD-Agreement: 0.3% of dev labels, 24.7% of test labels from unseen
/// annotators).
fn withhold(p: &Prepared<'_>, in_fit: &[bool], held: &[u32], share: f64, seed: u64) -> Vec<bool> {
    let mut held_labels = vec![0usize; in_fit.len()];
    for &i in held {
        for &(a, _) in &p.by_item[i as usize] {
            held_labels[a as usize] += 1;
        }
    }
    let (mut unseen, total) = unseen_labels(p, held, in_fit);
    let wanted = (share * total as f64).round() as usize;
    let mut order: Vec<usize> = (0..in_fit.len())
        .filter(|&a| in_fit[a] && held_labels[a] > 0)
        .collect();
    SeededRng::new(seed).shuffle(&mut order);
    let mut out = vec![false; in_fit.len()];
    for a in order {
        if unseen >= wanted {
            break;
        }
        out[a] = true;
        unseen += held_labels[a];
    }
    out
}

/// The candidates' folds and what chose with them.
pub(crate) struct SelectionFolds {
    pub(crate) selection: Selection,
    pub(crate) folds: Vec<Fold>,
    pub(crate) unseen: SelectionUnseen,
}

/// The (training items, scored items) pairs that score each candidate: the development split
/// alone, or [`EvalSettings::cv_folds`] seeded folds of train + dev when it is smaller than
/// [`EvalSettings::cv_below`]; each fit leaves out annotators ([`withhold`]) so that
/// [`EvalSettings::selection_unseen_share`] of the scored labels come from raters new to it.
pub(crate) fn selection_folds(p: &Prepared<'_>, settings: &EvalSettings) -> SelectionFolds {
    let mut all: Vec<u32> = p.train.iter().chain(&p.dev).copied().collect();
    all.sort_unstable();
    all.dedup();
    let folds = settings.cv_folds;
    let (selection, pairs) =
        if folds < 2 || p.dev.len() >= settings.cv_below || all.len() < 2 * folds {
            let selection = Selection::DevSplit { items: p.dev.len() };
            (selection, vec![(p.train.clone(), p.dev.clone())])
        } else {
            let mut order = all.clone();
            SeededRng::new(settings.train.seed ^ 0xf01d).shuffle(&mut order);
            let mut fold_of = vec![0usize; p.corpus.items.len()];
            for (pos, &i) in order.iter().enumerate() {
                fold_of[i as usize] = pos % folds;
            }
            let pairs = (0..folds)
                .map(|f| {
                    let (held, kept): (Vec<u32>, Vec<u32>) =
                        all.iter().partition(|&&i| fold_of[i as usize] == f);
                    (kept, held)
                })
                .collect();
            let selection = Selection::CrossValidation {
                folds,
                items: all.len(),
            };
            (selection, pairs)
        };
    let target_share = settings
        .selection_unseen_share
        .unwrap_or_else(|| test_unseen_share(p));
    let (mut unseen_total, mut labels, mut withheld_annotators) = (0usize, 0usize, 0usize);
    let folds: Vec<Fold> = pairs
        .into_iter()
        .enumerate()
        .map(|(f, (fit, held))| {
            let seed = settings.train.seed ^ 0x0a11_0e5e ^ f as u64;
            let mut seen = raters_of(p, &fit);
            let withheld = if target_share > 0.0 {
                withhold(p, &seen, &held, target_share, seed)
            } else {
                Vec::new()
            };
            for (s, w) in seen.iter_mut().zip(&withheld) {
                *s &= !w;
            }
            let (unseen, all) = unseen_labels(p, &held, &seen);
            unseen_total += unseen;
            labels += all;
            withheld_annotators += withheld.iter().filter(|&&w| w).count();
            Fold {
                fit,
                held,
                withheld,
            }
        })
        .collect();
    SelectionFolds {
        selection,
        folds,
        unseen: SelectionUnseen {
            target_share,
            label_share: unseen_total as f64 / labels.max(1) as f64,
            withheld_annotators,
        },
    }
}

/// One candidate's predictions of every scored item: trained on each pair's training items,
/// predicting its scored items, concatenated in fold order.
fn score_candidate(
    p: &Prepared<'_>,
    z: &[f64],
    k: usize,
    kind: ModelKind,
    opts: &TrainOptions,
    folds: &[Fold],
) -> Predictions {
    let mut out: Option<Predictions> = None;
    for fold in folds {
        let keep = |a: u32| !fold.withheld.get(a as usize).copied().unwrap_or(false);
        let m = train(p, z, k, kind, &fold.fit, &keep, opts);
        let pred = predict_items(p, z, k, &m, &fold.held);
        match &mut out {
            None => out = Some(pred),
            Some(o) => {
                o.items.extend(pred.items);
                o.soft.extend(pred.soft);
                o.shared.extend(pred.shared);
                o.ratings.extend(pred.ratings);
            }
        }
    }
    out.expect("at least one fold")
}

/// Ridges and, for annotator models, the shared head's blend weight (by soft CE), the width
/// of the components, and the decision threshold (by per-annotator macro-F1), each candidate
/// trained without the items that score it ([`selection_folds`]: the development split, or
/// folds of train + dev when it is small). A ridge grid grows past an end the scores chose
/// ([`grow_at_edge`]); every blend weight is scored on each fit.
///
/// `z` holds `k` components per item, and the item models read the leading `shared` of them
/// ([`choose_components`]). The annotator models also try every wider width of
/// [`EvalSettings::components_grid`] up to `k`: an annotator's own head can use directions the
/// pooled labels had no use for (on HS-Brexit the heads' cross-validated soft CE is 0.2853 at
/// 128 components against 0.2879 at the soft-label model's 64), while fewer than the shared
/// head found useful would only take away what it reads.
pub(crate) fn select(
    p: &Prepared<'_>,
    z: &[f64],
    k: usize,
    shared: usize,
    settings: &EvalSettings,
    progress: &mut dyn FnMut(&str),
) -> (BTreeMap<ModelKind, Choice>, Selection, SelectionUnseen) {
    let all = |_: u32| true;
    let SelectionFolds {
        selection,
        folds,
        unseen,
    } = selection_folds(p, settings);
    progress(&format!(
        "settings chosen by {}{}",
        selection.describe(),
        unseen.describe()
    ));
    let shared = shared.min(k);
    let mut wider: Vec<usize> = settings
        .components_grid
        .iter()
        .map(|&w| w.min(k))
        .filter(|&w| w > shared)
        .collect();
    wider.sort_unstable();
    wider.dedup();
    let at = Widths::new(z, k, std::iter::once(shared).chain(wider.iter().copied()));
    let mut chosen: BTreeMap<ModelKind, Choice> = BTreeMap::new();
    for kind in ModelKind::ALL {
        let mut widths = vec![shared];
        if kind.per_annotator() {
            widths.extend(&wider);
        }
        let soft_l2 = chosen.get(&ModelKind::SoftLabel).map(|c| c.l2);
        let mut best: Option<(Choice, Predictions)> = None;
        for &width in &widths {
            let (choice, pred) =
                search_ridges(p, at.rows(width), width, kind, soft_l2, &folds, settings);
            if widths.len() > 1 {
                progress(&format!(
                    "{}: {width} principal components: l2 {} annotator l2 {:?} blend {:?}: soft CE {:.4}",
                    kind.name(),
                    choice.l2,
                    choice.annotator_l2,
                    choice.blend,
                    choice.dev_ce
                ));
            }
            // The narrower width on a tie: widths ascend.
            if best.as_ref().is_none_or(|(b, _)| choice.dev_ce < b.dev_ce) {
                best = Some((choice, pred));
            }
        }
        let (mut choice, pred) = best.expect("at least one width");
        choice.threshold = choose_threshold(p, &pred, settings.min_annotator_labels);
        choice.dev_f1 = annotator_f1(
            p,
            &per_annotator_pairs(&pred, choice.threshold),
            &all,
            settings.min_annotator_labels,
            0,
            0.95,
            0,
        )
        .mean
        .map_or(0.0, |e| e.value);
        progress(&format!(
            "{}: {} components l2 {} annotator l2 {:?} blend {:?} threshold {:?}: dev soft CE {:.4}, per-annotator macro-F1 {:.4}",
            kind.name(),
            choice.components,
            choice.l2,
            choice.annotator_l2,
            choice.blend,
            choice.threshold,
            choice.dev_ce,
            choice.dev_f1
        ));
        chosen.insert(kind, choice);
    }

    (chosen, selection, unseen)
}

/// One model's ridges (and blend weight) at one width of the components: `z` is `k` wide.
/// Annotator models start from the soft-label model's ridge on the shared weights
/// (`soft_l2`, and ten times it: the embedding's shared basis may need more) and choose their
/// own; the item models search the whole shared grid. Returns the best setting (threshold not
/// yet chosen) with its out-of-fold predictions.
fn search_ridges(
    p: &Prepared<'_>,
    z: &[f64],
    k: usize,
    kind: ModelKind,
    soft_l2: Option<f64>,
    folds: &[Fold],
    settings: &EvalSettings,
) -> (Choice, Predictions) {
    let mut best: Option<(Choice, Predictions)> = None;
    let mut annotator_l2_grid = settings.annotator_l2_grid.clone();
    let mut l2_grid: Vec<f64> = match soft_l2 {
        Some(soft) if kind.per_annotator() => vec![soft, 10.0 * soft],
        _ => settings.l2_grid.clone(),
    };
    l2_grid.sort_by(f64::total_cmp);
    annotator_l2_grid.sort_by(f64::total_cmp);
    let mut tried: Vec<(f64, Option<f64>)> = Vec::new();
    let (mut grown_l2, mut grown_al2) = ([0, 0], [0, 0]);
    loop {
        let annotator_grid: Vec<Option<f64>> = if kind.per_annotator() {
            annotator_l2_grid.iter().map(|&v| Some(v)).collect()
        } else {
            vec![None]
        };
        let pairs: Vec<(f64, Option<f64>)> = l2_grid
            .iter()
            .flat_map(|&l2| annotator_grid.iter().map(move |&al2| (l2, al2)))
            .filter(|pair| !tried.contains(pair))
            .collect();
        for (l2, al2) in pairs {
            tried.push((l2, al2));
            let opts = TrainOptions {
                l2,
                annotator_l2: al2.unwrap_or(settings.train.annotator_l2),
                ..settings.train.clone()
            };
            let mut pred = score_candidate(p, z, k, kind, &opts, folds);
            // Annotator models: every blend weight scored on the same fit.
            let (alpha, ce) = if kind.per_annotator() {
                let targets: Vec<Vec<f64>> = pred
                    .items
                    .iter()
                    .map(|&i| p.soft[i as usize].clone())
                    .collect();
                let (alpha, ce) =
                    choose_blend(&pred.soft, &pred.shared, &targets, &settings.blend_grid);
                pred.soft = pred
                    .soft
                    .iter()
                    .zip(&pred.shared)
                    .map(|(m, s)| blend(m, s, alpha))
                    .collect();
                (Some(alpha), ce)
            } else {
                (None, soft_ce_of(p, &pred))
            };
            if best.as_ref().is_none_or(|(b, _)| ce < b.dev_ce) {
                let choice = Choice {
                    components: k,
                    l2,
                    annotator_l2: al2,
                    blend: alpha,
                    dev_ce: ce,
                    dev_f1: 0.0,
                    threshold: None,
                };
                best = Some((choice, pred));
            }
        }
        let (at, annotator_at) = best
            .as_ref()
            .map(|(b, _)| (b.l2, b.annotator_l2))
            .expect("the grids are not empty");
        let mut grew = grow_at_edge(&mut l2_grid, at, &mut grown_l2, settings.grid_extensions);
        if let Some(al2) = annotator_at {
            grew |= grow_at_edge(
                &mut annotator_l2_grid,
                al2,
                &mut grown_al2,
                settings.grid_extensions,
            );
        }
        if !grew {
            return best.expect("the grids are not empty");
        }
    }
}

/// Every item's projection at each width some model reads: the `k`-wide rows as they are, and
/// each narrower width's leading columns copied once, not once per training.
pub(crate) struct Widths<'a> {
    /// The rows, `k` wide: every model predicts from these, reading as many as it has
    /// weights for.
    pub(crate) z: &'a [f64],
    pub(crate) k: usize,
    narrower: BTreeMap<usize, Vec<f64>>,
}

impl<'a> Widths<'a> {
    /// The `k`-wide `z` and its leading columns at each of `widths`.
    pub(crate) fn new(z: &'a [f64], k: usize, widths: impl IntoIterator<Item = usize>) -> Self {
        let mut narrower = BTreeMap::new();
        for w in widths.into_iter().filter(|&w| w < k) {
            narrower.entry(w).or_insert_with(|| narrow(z, k, w));
        }
        Widths { z, k, narrower }
    }

    /// The rows `width` wide: `width` is one of those given to [`Widths::new`], or at least `k`.
    pub(crate) fn rows(&self, width: usize) -> &[f64] {
        if width >= self.k {
            self.z
        } else {
            &self.narrower[&width]
        }
    }
}

/// The first `to` of the `from` values of every row of the row-major `z`.
pub(crate) fn narrow(z: &[f64], from: usize, to: usize) -> Vec<f64> {
    if to >= from {
        return z.to_vec();
    }
    z.chunks_exact(from.max(1))
        .flat_map(|row| row[..to].iter().copied())
        .collect()
}

/// How many leading principal components the models see: each width of
/// [`EvalSettings::components_grid`] (capped at the `k` fitted) is scored by the soft-label
/// model at its best shared ridge on the selection folds ([`selection_folds`]; the ridge grid
/// grows at an edge as in [`select`]), and the lowest soft CE wins, the narrower on a tie.
///
/// Why one width for all: it is a choice about the shared features, and the soft-label model
/// is the shared head every other model extends; scoring each width with the annotator models
/// too would multiply their selection, the bulk of an evaluation's time, by the grid's length.
pub(crate) fn choose_components(
    p: &Prepared<'_>,
    z: &[f64],
    k: usize,
    settings: &EvalSettings,
    progress: &mut dyn FnMut(&str),
) -> (usize, Vec<ComponentsScore>) {
    let folds = selection_folds(p, settings).folds;
    let mut widths: Vec<usize> = settings.components_grid.iter().map(|&w| w.min(k)).collect();
    widths.sort_unstable();
    widths.dedup();
    let mut scores = Vec::new();
    for width in widths {
        let zw = narrow(z, k, width);
        let mut l2_grid = settings.l2_grid.clone();
        l2_grid.sort_by(f64::total_cmp);
        let mut tried: Vec<f64> = Vec::new();
        let mut grown = [0, 0];
        let mut best = (f64::NAN, f64::INFINITY);
        loop {
            for &l2 in &l2_grid {
                if tried.contains(&l2) {
                    continue;
                }
                tried.push(l2);
                let opts = TrainOptions {
                    l2,
                    ..settings.train.clone()
                };
                let pred = score_candidate(p, &zw, width, ModelKind::SoftLabel, &opts, &folds);
                let ce = soft_ce_of(p, &pred);
                if ce < best.1 {
                    best = (l2, ce);
                }
            }
            if !grow_at_edge(&mut l2_grid, best.0, &mut grown, settings.grid_extensions) {
                break;
            }
        }
        progress(&format!(
            "{width} principal components: soft-label l2 {}, soft CE {:.4}",
            best.0, best.1
        ));
        scores.push(ComponentsScore {
            components: width,
            l2: best.0,
            dev_soft_ce: best.1,
        });
    }
    let chosen = scores
        .iter()
        .min_by(|a, b| a.dev_soft_ce.total_cmp(&b.dev_soft_ce))
        .map_or(k, |s| s.components);
    (chosen, scores)
}

/// The model with the lowest development soft CE, and the annotator model with the best
/// development per-annotator macro-F1 (on a tie, the lower development CE).
pub(crate) fn selections(chosen: &BTreeMap<ModelKind, Choice>) -> (ModelKind, ModelKind) {
    let selected = ModelKind::ALL
        .into_iter()
        .min_by(|a, b| chosen[a].dev_ce.total_cmp(&chosen[b].dev_ce))
        .expect("four kinds");
    let annotator = [ModelKind::AnnotatorHeads, ModelKind::AnnotatorEmbedding]
        .into_iter()
        .max_by(|a, b| {
            chosen[a]
                .dev_f1
                .total_cmp(&chosen[b].dev_f1)
                .then(chosen[b].dev_ce.total_cmp(&chosen[a].dev_ce))
        })
        .expect("two kinds");
    (selected, annotator)
}

/// Run the whole evaluation. `progress` receives a line per stage.
pub fn evaluate(
    corpus: &Corpus,
    features: &Features,
    settings: &EvalSettings,
    progress: &mut dyn FnMut(&str),
) -> Result<Evaluation, EvalError> {
    if features.len() != corpus.items.len() {
        return Err(EvalError::FeatureRows {
            features: features.len(),
            items: corpus.items.len(),
        });
    }
    check_settings(settings)?;
    if settings.blend_grid.iter().any(|a| !(0.0..=1.0).contains(a)) {
        return Err(EvalError::Settings(
            "blend weights must lie in [0, 1]".into(),
        ));
    }
    let p = Prepared::new(corpus, settings)?;
    progress(&format!(
        "{}: {} train, {} dev, {} test items; principal components of the training features",
        corpus.name,
        p.train.len(),
        p.dev.len(),
        p.test.len()
    ));
    let fit_rows: Vec<u32> = p.train.iter().chain(&p.dev).copied().collect();
    let Projected {
        pca,
        z,
        shared,
        scores: components_scores,
    } = components(&p, features, &fit_rows, settings, progress);
    // Every item at the widest width; each model trains on its own leading columns
    // (`narrow`) and predicts from these rows, reading as many as it has weights for.
    let k = pca.k();
    let all = |_: u32| true;

    let (chosen, selection, selection_unseen) = select(&p, &z, k, shared, settings, progress);
    let width_of = |kind: ModelKind| chosen[&kind].components;
    let at = Widths::new(&z, k, chosen.values().map(|c| c.components));
    // A kind's model on every label of `items`, at its chosen width.
    let train_at_width =
        |prep: &Prepared<'_>, kind: ModelKind, items: &[u32], opts: &TrainOptions| {
            let width = width_of(kind);
            train(prep, at.rows(width), width, kind, items, &all, opts)
        };

    let mut models = Vec::new();
    let mut final_preds: BTreeMap<ModelKind, (Predictions, Vec<Trained>)> = BTreeMap::new();
    for kind in ModelKind::ALL {
        let Choice {
            components: width,
            l2,
            annotator_l2: al2,
            blend,
            dev_ce,
            threshold,
            ..
        } = chosen[&kind];
        let mut preds = Vec::new();
        let mut trained = Vec::new();
        let mut by_seed = Vec::new();
        // Convex models start from zero: one seed gives every seed's bits.
        let seeds: Vec<u64> = if kind == ModelKind::AnnotatorEmbedding {
            settings.seeds.clone()
        } else {
            settings.seeds[..1].to_vec()
        };
        for &seed in &seeds {
            let opts = TrainOptions {
                seed,
                l2,
                annotator_l2: al2.unwrap_or(settings.train.annotator_l2),
                ..settings.train.clone()
            };
            let mut m = train_at_width(&p, kind, &fit_rows, &opts);
            m.blend = blend.unwrap_or(0.0);
            let pred = predict_items(&p, &z, k, &m, &p.test);
            let [ce, f1, _, _] =
                item_metrics(&p, &pred, &(0..pred.items.len()).collect::<Vec<_>>());
            let pairs = per_annotator_pairs(&pred, threshold);
            let af1 = annotator_f1(&p, &pairs, &all, settings.min_annotator_labels, 0, 0.95, 0);
            by_seed.push(SeedFigures {
                seed,
                soft_ce: ce.unwrap_or(f64::NAN),
                micro_f1: f1,
                per_annotator_macro_f1: af1.mean.map(|e| e.value),
            });
            preds.push(pred);
            trained.push(m);
        }
        let pred = average(&preds);
        let seed = settings.seeds[0];
        let [ce, f1, manhattan, error] =
            estimates(&p, &pred, settings.bootstrap, settings.confidence, seed);
        let pairs = per_annotator_pairs(&pred, threshold);
        let seen_any = |a: u32| trained[0].seen[a as usize];
        let f1_all = annotator_f1(
            &p,
            &pairs,
            &all,
            settings.min_annotator_labels,
            settings.bootstrap,
            settings.confidence,
            seed,
        );
        let seen = annotator_f1(
            &p,
            &pairs,
            &seen_any,
            settings.min_annotator_labels,
            settings.bootstrap,
            settings.confidence,
            seed,
        );
        let unseen = annotator_f1(
            &p,
            &pairs,
            &|a| !seen_any(a),
            settings.min_annotator_labels,
            settings.bootstrap,
            settings.confidence,
            seed,
        );
        let figures = ModelFigures {
            model: kind,
            components: width,
            l2,
            annotator_l2: al2,
            blend,
            threshold,
            dev_per_annotator_macro_f1: chosen[&kind].dev_f1,
            dev_soft_ce: dev_ce,
            soft_ce: ce.expect("the test split is not empty"),
            soft_ce_vs_soft_label: None,
            micro_f1: f1,
            manhattan: manhattan.expect("the test split is not empty"),
            per_annotator_error_rate: error.unwrap_or(Estimate {
                value: f64::NAN,
                ci: None,
            }),
            per_annotator_macro_f1: f1_all,
            seen,
            unseen,
            uncertainty_r: kind
                .per_annotator()
                .then(|| uncertainty_r(&pred, &p))
                .flatten(),
            by_seed,
        };
        progress(&format!(
            "{}: test soft CE {:.4}, micro-F1 {}, per-annotator macro-F1 {}",
            kind.name(),
            figures.soft_ce.value,
            figures
                .micro_f1
                .map_or("-".into(), |e| format!("{:.4}", e.value)),
            figures
                .per_annotator_macro_f1
                .mean
                .map_or("-".into(), |e| format!("{:.4}", e.value)),
        ));
        models.push(figures);
        final_preds.insert(kind, (pred, trained));
    }
    let (selected, selected_annotator_model) = selections(&chosen);
    for m in &mut models {
        if m.model != ModelKind::SoftLabel {
            m.soft_ce_vs_soft_label = Some(paired_ce_difference(
                &p,
                &final_preds[&m.model].0,
                &final_preds[&ModelKind::SoftLabel].0,
                settings.bootstrap,
                settings.confidence,
                settings.seeds[0],
            ));
        }
    }

    let baselines = baselines(&p, settings);
    let test_annotators = {
        let seen = &final_preds[&ModelKind::SoftLabel].1[0].seen;
        let mut in_test: Vec<u32> = p
            .test
            .iter()
            .flat_map(|&i| p.by_item[i as usize].iter().map(|&(a, _)| a))
            .collect();
        in_test.sort_unstable();
        in_test.dedup();
        let n_seen = in_test.iter().filter(|&&a| seen[a as usize]).count();
        [n_seen, in_test.len() - n_seen]
    };
    let unseen_label_share =
        unseen_share(&p, &p.test, &final_preds[&ModelKind::SoftLabel].1[0].seen);

    let annotator_opts = |kind: ModelKind| {
        let Choice {
            l2,
            annotator_l2: al2,
            ..
        } = chosen[&kind];
        TrainOptions {
            l2,
            annotator_l2: al2.unwrap_or(settings.train.annotator_l2),
            ..settings.train.clone()
        }
    };
    progress("new annotators: population, identity and k-shot");
    // With identity attributes the question is whether they place a new annotator, which
    // only the embedding model can; otherwise the selected annotator model answers.
    let newcomer_model = if p.n_identity > 0 {
        ModelKind::AnnotatorEmbedding
    } else {
        selected_annotator_model
    };
    let unseen = unseen_annotators(
        &p,
        at.rows(width_of(newcomer_model)),
        width_of(newcomer_model),
        newcomer_model,
        &annotator_opts(newcomer_model),
        &final_preds[&newcomer_model].1[0],
        chosen[&newcomer_model].threshold,
        settings,
    );

    let (mut curve_labels, mut curve_size) = (Vec::new(), Vec::new());
    if settings.curves {
        progress("learning curves");
        let kinds = [ModelKind::SoftLabel, selected_annotator_model];
        let mut per_annotator_order: HashMap<u32, Vec<u32>> = HashMap::new();
        {
            let mut rng = SeededRng::new(settings.train.seed ^ 0xc0e7e);
            let mut shuffled = fit_rows.clone();
            rng.shuffle(&mut shuffled);
            for &i in &shuffled {
                for &(a, _) in &p.by_item[i as usize] {
                    per_annotator_order.entry(a).or_default().push(i);
                }
            }
        }
        let max_labels = per_annotator_order
            .values()
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let mut caps: Vec<usize> = settings
            .labels_per_annotator
            .iter()
            .map(|&c| c.min(max_labels))
            .collect();
        caps.dedup();
        for cap in caps {
            // Each annotator keeps their first `cap` labels in a seeded order of items.
            let kept: std::collections::HashSet<(u32, u32)> = per_annotator_order
                .iter()
                .flat_map(|(&a, items)| items.iter().take(cap).map(move |&i| (a, i)))
                .collect();
            for &kind in &kinds {
                let opts = if kind == ModelKind::SoftLabel {
                    TrainOptions {
                        l2: chosen[&kind].l2,
                        ..settings.train.clone()
                    }
                } else {
                    annotator_opts(kind)
                };
                let ex_items: Vec<u32> = fit_rows.clone();
                let filtered = Prepared {
                    corpus: p.corpus,
                    train: Vec::new(),
                    dev: Vec::new(),
                    test: Vec::new(),
                    by_item: p
                        .by_item
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            r.iter()
                                .copied()
                                .filter(|&(a, _)| kept.contains(&(a, i as u32)))
                                .collect()
                        })
                        .collect(),
                    soft: Vec::new(),
                    hard: p.hard.clone(),
                    identity: p.identity.clone(),
                    n_identity: p.n_identity,
                    groups: Vec::new(),
                };
                let mut m = train_at_width(&filtered, kind, &ex_items, &opts);
                m.blend = chosen[&kind].blend.unwrap_or(0.0);
                let pred = predict_items(&p, &z, k, &m, &p.test);
                let pairs = per_annotator_pairs(&pred, chosen[&kind].threshold);
                curve_labels.push(CurvePoint {
                    x: cap as f64,
                    n_labels: kept.len(),
                    model: kind,
                    soft_ce: soft_ce_of(&p, &pred),
                    per_annotator_macro_f1: annotator_f1(
                        &p,
                        &pairs,
                        &all,
                        settings.min_annotator_labels,
                        0,
                        0.95,
                        0,
                    )
                    .mean
                    .map(|e| e.value),
                });
            }
        }
        for &share in &settings.training_shares {
            let mut order = fit_rows.clone();
            SeededRng::new(settings.train.seed ^ 0x512e).shuffle(&mut order);
            let n = ((order.len() as f64 * share).round() as usize).clamp(1, order.len());
            let mut subset = order[..n].to_vec();
            subset.sort_unstable();
            let n_labels: usize = subset.iter().map(|&i| p.by_item[i as usize].len()).sum();
            for &kind in &kinds {
                let opts = if kind == ModelKind::SoftLabel {
                    TrainOptions {
                        l2: chosen[&kind].l2,
                        ..settings.train.clone()
                    }
                } else {
                    annotator_opts(kind)
                };
                let mut m = train_at_width(&p, kind, &subset, &opts);
                m.blend = chosen[&kind].blend.unwrap_or(0.0);
                let pred = predict_items(&p, &z, k, &m, &p.test);
                let pairs = per_annotator_pairs(&pred, chosen[&kind].threshold);
                curve_size.push(CurvePoint {
                    x: share,
                    n_labels,
                    model: kind,
                    soft_ce: soft_ce_of(&p, &pred),
                    per_annotator_macro_f1: annotator_f1(
                        &p,
                        &pairs,
                        &all,
                        settings.min_annotator_labels,
                        0,
                        0.95,
                        0,
                    )
                    .mean
                    .map(|e| e.value),
                });
            }
        }
    }

    let pools = match &settings.pool_attribute {
        Some(attribute) => {
            progress("pool × pool matrix");
            Some(pool_matrix(
                &p,
                &at,
                width_of(ModelKind::SoftLabel),
                attribute,
                chosen[&ModelKind::SoftLabel].l2,
                &final_preds[&selected_annotator_model].1[0],
                &fit_rows,
                settings,
            )?)
        }
        None => None,
    };

    Ok(Evaluation {
        dataset: corpus.name.clone(),
        split: settings.split.clone(),
        split_sizes: [p.train.len(), p.dev.len(), p.test.len()],
        n_items: corpus.items.len(),
        n_annotators: corpus.annotators.len(),
        n_labels: corpus.ratings.len(),
        classes: corpus.classes.clone(),
        test_annotators,
        unseen_label_share,
        selection,
        selection_unseen,
        components: shared,
        components_scores,
        features: features.spec.clone(),
        baselines,
        models,
        selected,
        selected_annotator_model,
        unseen,
        curve_labels_per_annotator: curve_labels,
        curve_training_size: curve_size,
        pools,
        settings: settings.clone(),
    })
}

/// Settings no evaluation or training can run with.
pub(crate) fn check_settings(settings: &EvalSettings) -> Result<(), EvalError> {
    if settings.seeds.is_empty()
        || settings.l2_grid.is_empty()
        || settings.annotator_l2_grid.is_empty()
        || settings.blend_grid.is_empty()
        || settings.components_grid.is_empty()
    {
        return Err(EvalError::Settings(
            "seeds, ridge, blend and component grids must not be empty".into(),
        ));
    }
    if settings.components_grid.contains(&0) {
        return Err(EvalError::Settings(
            "principal component counts must be at least 1".into(),
        ));
    }
    if let Some(share) = settings.selection_unseen_share
        && !(0.0..1.0).contains(&share)
    {
        return Err(EvalError::Settings(format!(
            "the share of selection labels from new annotators ({share}) must be at least 0 and under 1"
        )));
    }
    Ok(())
}

/// The features projected on the principal components the models read.
pub(crate) struct Projected {
    /// The fitted projection, as wide as the widest width tried (`pca.k()`).
    pub(crate) pca: Pca,
    /// Every item's projection, row-major, `pca.k()` wide.
    pub(crate) z: Vec<f64>,
    /// The leading components the item models read ([`choose_components`]); annotator models
    /// may read more ([`select`]).
    pub(crate) shared: usize,
    /// Each width tried, with its score.
    pub(crate) scores: Vec<ComponentsScore>,
}

/// The principal components of the features over `fit_rows` (no labels), as wide as the
/// widest of [`EvalSettings::components_grid`], with the width [`choose_components`] picks
/// for the shared head.
pub(crate) fn components(
    p: &Prepared<'_>,
    features: &Features,
    fit_rows: &[u32],
    settings: &EvalSettings,
    progress: &mut dyn FnMut(&str),
) -> Projected {
    let widest = settings.components_grid.iter().copied().max().unwrap_or(0);
    let pca = Pca::fit(
        &features.data,
        features.dim(),
        fit_rows,
        widest,
        settings.train.seed,
    );
    let fitted = pca.k();
    let z: Vec<f64> = (0..p.corpus.items.len())
        .flat_map(|i| pca.project(features.row(i)))
        .collect();
    let (shared, scores) = choose_components(p, &z, fitted, settings, progress);
    Projected {
        z,
        pca,
        shared,
        scores,
    }
}

fn baselines(p: &Prepared<'_>, settings: &EvalSettings) -> Baselines {
    let c = p.classes();
    let mut prior = vec![0.0; c];
    for &i in &p.train {
        for (x, v) in prior.iter_mut().zip(&p.soft[i as usize]) {
            *x += v / p.train.len() as f64;
        }
    }
    let targets: Vec<Vec<f64>> = p.test.iter().map(|&i| p.soft[i as usize].clone()).collect();
    let prior_rows = vec![prior.clone(); p.test.len()];
    let uniform = vec![vec![1.0 / c as f64; c]; p.test.len()];
    let mut hard_counts = vec![0usize; c];
    for &i in &p.train {
        if let Some(h) = p.hard[i as usize] {
            hard_counts[h as usize] += 1;
        }
    }
    let top_hard = hard_counts
        .iter()
        .enumerate()
        .max_by_key(|(c, n)| (**n, std::cmp::Reverse(*c)))
        .map(|(c, _)| c as u16)
        .unwrap_or(0);
    let (mut hp, mut hg) = (Vec::new(), Vec::new());
    for &i in &p.test {
        if let Some(h) = p.hard[i as usize] {
            hp.push(top_hard);
            hg.push(h);
        }
    }
    let mut label_counts = vec![0usize; c];
    for &i in &p.train {
        for &(_, l) in &p.by_item[i as usize] {
            label_counts[l as usize] += 1;
        }
    }
    let top_label = label_counts
        .iter()
        .enumerate()
        .max_by_key(|(c, n)| (**n, std::cmp::Reverse(*c)))
        .map(|(c, _)| c as u16)
        .unwrap_or(0);
    let pairs: Vec<Vec<(u16, u16)>> = p
        .test
        .iter()
        .map(|&i| {
            p.by_item[i as usize]
                .iter()
                .map(|&(_, l)| (l, top_label))
                .collect()
        })
        .collect();
    let mut per_annotator: BTreeMap<u32, (Vec<u16>, Vec<u16>)> = BTreeMap::new();
    for &i in &p.test {
        for &(a, l) in &p.by_item[i as usize] {
            let e = per_annotator.entry(a).or_default();
            e.0.push(l);
            e.1.push(top_label);
        }
    }
    let mut own_counts: HashMap<u32, Vec<usize>> = HashMap::new();
    for &i in &p.train {
        for &(a, l) in &p.by_item[i as usize] {
            own_counts.entry(a).or_insert_with(|| vec![0; c])[l as usize] += 1;
        }
    }
    let own_top = |a: u32| {
        own_counts.get(&a).map_or(top_label, |n| {
            n.iter()
                .enumerate()
                .max_by_key(|(c, n)| (**n, std::cmp::Reverse(*c)))
                .map_or(top_label, |(c, _)| c as u16)
        })
    };
    let own_pairs: Vec<Vec<(u16, u16)>> = p
        .test
        .iter()
        .map(|&i| {
            p.by_item[i as usize]
                .iter()
                .map(|&(a, l)| (l, own_top(a)))
                .collect()
        })
        .collect();
    let f1 = annotator_f1(
        p,
        &per_annotator,
        &|_| true,
        settings.min_annotator_labels,
        0,
        0.95,
        0,
    );
    Baselines {
        prior_ce: metrics::soft_ce(&prior_rows, &targets).unwrap_or(f64::NAN),
        uniform_ce: metrics::soft_ce(&uniform, &targets).unwrap_or(f64::NAN),
        majority_f1: metrics::micro_f1(&hp, &hg),
        prior_manhattan: metrics::manhattan(&prior_rows, &targets).unwrap_or(f64::NAN),
        most_frequent_error_rate: metrics::per_annotator_error_rate(&pairs).unwrap_or(f64::NAN),
        most_frequent_macro_f1: f1.mean.map(|e| e.value),
        annotator_most_frequent_error_rate: metrics::per_annotator_error_rate(&own_pairs)
            .unwrap_or(f64::NAN),
    }
}

/// Score new annotators: the official test's unseen annotators when there are at least three,
/// else folds of annotators held out of training (items stay disjoint: training items for
/// training, test items for scoring).
#[allow(clippy::too_many_arguments)]
fn unseen_annotators(
    p: &Prepared<'_>,
    z: &[f64],
    k: usize,
    kind: ModelKind,
    opts: &TrainOptions,
    full: &Trained,
    threshold: Option<f64>,
    settings: &EvalSettings,
) -> Option<UnseenFigures> {
    let fit_rows: Vec<u32> = p.train.iter().chain(&p.dev).copied().collect();
    let mut test_labels: BTreeMap<u32, Vec<(u32, u16)>> = BTreeMap::new();
    for &i in &p.test {
        for &(a, l) in &p.by_item[i as usize] {
            test_labels.entry(a).or_default().push((i, l));
        }
    }
    let need = |n: usize| n > settings.min_annotator_labels;
    let official: Vec<u32> = test_labels
        .iter()
        .filter(|(a, labels)| !full.seen[**a as usize] && need(labels.len()))
        .map(|(a, _)| *a)
        .collect();
    // (model, annotators scored with it)
    let mut runs: Vec<(Trained, Vec<u32>)> = Vec::new();
    let protocol;
    if official.len() >= 3 {
        protocol = "official test".to_string();
        runs.push((
            Trained {
                model: full.model.clone(),
                seen: full.seen.clone(),
                blend: full.blend,
            },
            official,
        ));
    } else {
        protocol = "annotator folds".to_string();
        let mut annotators: Vec<u32> = test_labels
            .iter()
            .filter(|(_, l)| need(l.len()))
            .map(|(a, _)| *a)
            .collect();
        if annotators.len() < 2 {
            return None;
        }
        SeededRng::new(opts.seed ^ 0xf01d).shuffle(&mut annotators);
        let folds = annotators.len().min(5);
        for f in 0..folds {
            let held: Vec<u32> = annotators.iter().skip(f).step_by(folds).copied().collect();
            let held_set: std::collections::HashSet<u32> = held.iter().copied().collect();
            let keep = |a: u32| !held_set.contains(&a);
            let m = train(p, z, k, kind, &fit_rows, &keep, opts);
            runs.push((m, held));
        }
    }
    let n_annotators = runs.iter().map(|(_, a)| a.len()).sum();
    let with_identity = p.n_identity > 0 && kind == ModelKind::AnnotatorEmbedding;
    let mut shots = Vec::new();
    let mut ks = vec![0];
    ks.extend(settings.shots.iter().copied());
    for &shot in &ks {
        let mut pop = (Vec::new(), Vec::new());
        let mut ide = (Vec::new(), Vec::new());
        let mut ada = (Vec::new(), Vec::new());
        for (m, annotators) in &runs {
            for &a in annotators {
                let mut labels = test_labels[&a].clone();
                if labels.len() < shot + settings.min_annotator_labels {
                    continue;
                }
                SeededRng::new(opts.seed ^ a as u64 ^ 0x5407).shuffle(&mut labels);
                let (adapt_on, score_on) = labels.split_at(shot);
                let gold: Vec<u16> = score_on.iter().map(|&(_, l)| l).collect();
                // `None` = the population: the mean over the annotators the model saw.
                let score = |who: Option<Who<'_>>| {
                    let dists: Vec<Vec<f64>> = score_on
                        .iter()
                        .map(|&(i, _)| {
                            let zi = &z[i as usize * k..(i as usize + 1) * k];
                            match who {
                                Some(who) => m.model.predict(zi, who, &p.identity),
                                None => m.population(zi, &p.identity),
                            }
                        })
                        .collect();
                    let decided: Vec<u16> = dists.iter().map(|d| decide(d, threshold)).collect();
                    let f1 = metrics::macro_f1(&decided, &gold).unwrap_or(0.0);
                    let missed = dists
                        .iter()
                        .zip(&gold)
                        .filter(|(d, y)| argmax(d) != **y)
                        .count();
                    (f1, missed as f64 / gold.len() as f64)
                };
                let (f, e) = score(None);
                pop.0.push(f);
                pop.1.push(e);
                if with_identity {
                    let placed = m.placed(&p.identity[a as usize], &p.identity);
                    let (f, e) = if placed.is_empty() {
                        score(None)
                    } else {
                        score(Some(Who::New(&placed)))
                    };
                    ide.0.push(f);
                    ide.1.push(e);
                }
                if shot > 0 {
                    let placed = if with_identity {
                        m.placed(&p.identity[a as usize], &p.identity)
                    } else {
                        Vec::new()
                    };
                    let ids: &[u32] = &placed;
                    let adapted: Option<Adapted> =
                        m.model.adapt(z, adapt_on, ids, &m.seen, &p.identity, opts);
                    if let Some(adapted) = adapted {
                        let (f, e) = score(Some(Who::Adapted(&adapted)));
                        ada.0.push(f);
                        ada.1.push(e);
                    }
                }
            }
        }
        let mean = |v: &Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        shots.push(ShotRow {
            k: shot,
            n_annotators: pop.0.len(),
            population_macro_f1: mean(&pop.0),
            identity_macro_f1: mean(&ide.0),
            adapted_macro_f1: mean(&ada.0),
            population_error: mean(&pop.1),
            identity_error: mean(&ide.1),
            adapted_error: mean(&ada.1),
        });
    }
    Some(UnseenFigures {
        protocol,
        model: kind,
        n_annotators,
        shots,
    })
}

#[allow(clippy::too_many_arguments)]
fn pool_matrix(
    p: &Prepared<'_>,
    at: &Widths<'_>,
    shared: usize,
    attribute: &str,
    l2: f64,
    annotator_model: &Trained,
    fit_rows: &[u32],
    settings: &EvalSettings,
) -> Result<PoolMatrix, EvalError> {
    let (names, of) = p.corpus.pools(attribute)?;
    let of = &of;
    let n = names.len();
    let opts = TrainOptions {
        l2,
        ..settings.train.clone()
    };
    let in_pool = |pool: u32| move |a: u32| of[a as usize] == Some(pool);
    // The pool models are soft-label models: they train on the shared width and, like every
    // model here, predict from the `k`-wide rows.
    let (z, k, zs) = (at.z, at.k, at.rows(shared));
    // Each pool's own soft labels on the test items it labelled.
    // Per pool: (item, the pool's soft label, the pool's annotators on it).
    type PoolTarget = (u32, Vec<f64>, Vec<u32>);
    let targets: Vec<Vec<PoolTarget>> = (0..n as u32)
        .map(|pool| {
            p.test
                .iter()
                .filter_map(|&i| {
                    let own: Vec<(u32, u16)> = p.by_item[i as usize]
                        .iter()
                        .copied()
                        .filter(|&(a, _)| of[a as usize] == Some(pool))
                        .collect();
                    if own.is_empty() {
                        return None;
                    }
                    let mut t = vec![0.0; p.classes()];
                    for &(_, l) in &own {
                        t[l as usize] += 1.0 / own.len() as f64;
                    }
                    Some((i, t, own.iter().map(|&(a, _)| a).collect()))
                })
                .collect()
        })
        .collect();
    let score = |m: &Trained, pool: usize| -> Option<f64> {
        let rows = &targets[pool];
        if rows.is_empty() || m.seen.iter().all(|s| !s) {
            return None;
        }
        let pred: Vec<Vec<f64>> = rows
            .iter()
            .map(|(i, _, _)| m.item(&z[*i as usize * k..(*i as usize + 1) * k], &[], &p.identity))
            .collect();
        let t: Vec<Vec<f64>> = rows.iter().map(|(_, t, _)| t.clone()).collect();
        metrics::soft_ce(&pred, &t)
    };
    let mut soft_ce = Vec::new();
    for a in 0..n as u32 {
        let m = train(
            p,
            zs,
            shared,
            ModelKind::SoftLabel,
            fit_rows,
            &in_pool(a),
            &opts,
        );
        soft_ce.push((0..n).map(|b| score(&m, b)).collect());
    }
    let from_others = (0..n as u32)
        .map(|b| {
            let m = train(
                p,
                zs,
                shared,
                ModelKind::SoftLabel,
                fit_rows,
                &|a: u32| of[a as usize].is_some_and(|x| x != b),
                &opts,
            );
            score(&m, b as usize)
        })
        .collect();
    let pooled = train(
        p,
        zs,
        shared,
        ModelKind::SoftLabel,
        fit_rows,
        &|_| true,
        &opts,
    );
    let from_all = (0..n).map(|b| score(&pooled, b)).collect();
    let annotator = (0..n)
        .map(|b| {
            let rows = &targets[b];
            if rows.is_empty() {
                return None;
            }
            let pred: Vec<Vec<f64>> = rows
                .iter()
                .map(|(i, _, own)| {
                    annotator_model.item(
                        &z[*i as usize * k..(*i as usize + 1) * k],
                        own,
                        &p.identity,
                    )
                })
                .collect();
            let t: Vec<Vec<f64>> = rows.iter().map(|(_, t, _)| t.clone()).collect();
            metrics::soft_ce(&pred, &t)
        })
        .collect();
    let annotators = (0..n as u32)
        .map(|pool| of.iter().filter(|&&x| x == Some(pool)).count())
        .collect();
    Ok(PoolMatrix {
        attribute: attribute.to_string(),
        pools: names,
        annotators,
        soft_ce,
        from_others,
        annotator_model: annotator,
        from_all,
    })
}

/// How well one pool's labels are predicted from text, cross-fitted by item folds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolPredictability {
    /// Pool index as given.
    pub pool: u32,
    /// Items the pool labelled (each scored once, by the models not fitted on it).
    pub n_items: usize,
    /// Soft CE of a model fitted on every other pool's labels.
    pub from_others: Option<f64>,
    /// Soft CE of a model fitted on the pool's own labels (other folds).
    pub own: Option<f64>,
    /// Soft CE of the pool's own label shares in the other folds (no text).
    pub prior: Option<f64>,
}

/// For each pool: soft CE of its labels predicted by a soft-label model fitted on the other
/// pools' labels, next to one fitted on its own labels and its label prior, over `folds`
/// seeded item folds (a fold's items are never fitted when they are scored). `labels` are
/// (item, pool, class). Features are character n-grams of the texts only, so this runs where
/// no encoder is loaded (the annotation server's dashboard).
pub fn pool_predictability(
    texts: &[&str],
    labels: &[(u32, u32, u16)],
    n_pools: usize,
    n_classes: usize,
    folds: usize,
    seed: u64,
) -> Vec<PoolPredictability> {
    let folds = folds.max(2);
    let features = Features::build(texts, None, 1024).expect("no embedder, nothing can fail");
    let all_items: Vec<u32> = (0..texts.len() as u32).collect();
    let pca = Pca::fit(&features.data, features.dim(), &all_items, 32, seed);
    let k = pca.k();
    let z: Vec<f64> = (0..texts.len())
        .flat_map(|i| pca.project(features.row(i)))
        .collect();
    let mut order = all_items.clone();
    SeededRng::new(seed).shuffle(&mut order);
    let mut fold_of = vec![0usize; texts.len()];
    for (n, &i) in order.iter().enumerate() {
        fold_of[i as usize] = n % folds;
    }
    // Per item and pool: label counts.
    let mut counts: HashMap<(u32, u32), Vec<f64>> = HashMap::new();
    for &(item, pool, label) in labels {
        if (item as usize) < texts.len()
            && (pool as usize) < n_pools
            && (label as usize) < n_classes
        {
            counts
                .entry((item, pool))
                .or_insert_with(|| vec![0.0; n_classes])[label as usize] += 1.0;
        }
    }
    let soft_of = |item: u32, keep: &dyn Fn(u32) -> bool| -> Option<Vec<f64>> {
        let mut t = vec![0.0; n_classes];
        for pool in (0..n_pools as u32).filter(|&p| keep(p)) {
            if let Some(c) = counts.get(&(item, pool)) {
                for (x, v) in t.iter_mut().zip(c) {
                    *x += v;
                }
            }
        }
        let n: f64 = t.iter().sum();
        (n > 0.0).then(|| t.iter().map(|v| v / n).collect())
    };
    let opts = TrainOptions {
        steps: 150,
        l2: 1e-3,
        ..TrainOptions::default()
    };
    let fit_on = |fold: usize, keep: &dyn Fn(u32) -> bool| -> Option<PerspectiveModel> {
        let examples: Vec<Example> = all_items
            .iter()
            .filter(|&&i| fold_of[i as usize] != fold)
            .filter_map(|&i| {
                soft_of(i, keep).map(|target| Example {
                    item: i,
                    annotator: 0,
                    target,
                    weight: 1.0,
                })
            })
            .collect();
        (!examples.is_empty()).then(|| {
            fit(
                ModelKind::SoftLabel,
                &z,
                k,
                n_classes,
                0,
                &[],
                0,
                &examples,
                &opts,
            )
        })
    };
    (0..n_pools as u32)
        .map(|pool| {
            let own = |p: u32| p == pool;
            let others = |p: u32| p != pool;
            let (mut ce_others, mut ce_own, mut ce_prior) =
                ((0.0, 0usize), (0.0, 0usize), (0.0, 0usize));
            let mut n_items = 0;
            for fold in 0..folds {
                let scored: Vec<(u32, Vec<f64>)> = all_items
                    .iter()
                    .filter(|&&i| fold_of[i as usize] == fold)
                    .filter_map(|&i| soft_of(i, &own).map(|t| (i, t)))
                    .collect();
                if scored.is_empty() {
                    continue;
                }
                n_items += scored.len();
                let mut prior = vec![0.0; n_classes];
                let mut n_prior = 0.0;
                for &i in all_items.iter().filter(|&&i| fold_of[i as usize] != fold) {
                    if let Some(t) = soft_of(i, &own) {
                        for (x, v) in prior.iter_mut().zip(t) {
                            *x += v;
                        }
                        n_prior += 1.0;
                    }
                }
                let models = [fit_on(fold, &others), fit_on(fold, &own)];
                for (i, t) in &scored {
                    let zi = &z[*i as usize * k..(*i as usize + 1) * k];
                    for (m, acc) in models.iter().zip([&mut ce_others, &mut ce_own]) {
                        if let Some(m) = m {
                            acc.0 += metrics::item_ce(&m.predict(zi, Who::Anyone, &[]), t);
                            acc.1 += 1;
                        }
                    }
                    if n_prior > 0.0 {
                        let p: Vec<f64> = prior.iter().map(|v| v / n_prior).collect();
                        ce_prior.0 += metrics::item_ce(&p, t);
                        ce_prior.1 += 1;
                    }
                }
            }
            let mean = |(s, n): (f64, usize)| (n > 0).then(|| s / n as f64);
            PoolPredictability {
                pool,
                n_items,
                from_others: mean(ce_others),
                own: mean(ce_own),
                prior: mean(ce_prior),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

    #[test]
    fn a_grid_grows_only_past_the_end_that_was_chosen() {
        let mut grid = vec![0.5, 2.0, 8.0, 32.0];
        let mut grown = [0, 0];
        assert!(!grow_at_edge(&mut grid, 2.0, &mut grown, 2));
        assert!(grow_at_edge(&mut grid, 0.5, &mut grown, 2));
        assert_eq!(grid, vec![0.125, 0.5, 2.0, 8.0, 32.0]);
        assert!(grow_at_edge(&mut grid, 32.0, &mut grown, 2));
        assert_eq!(grid.last(), Some(&128.0));
        assert!(grow_at_edge(&mut grid, 0.125, &mut grown, 2));
        assert_eq!(grid[0], 0.03125);
        let mut small = vec![1e-5, 1e-4];
        assert!(grow_at_edge(&mut small, 1e-5, &mut [0, 0], 2));
        assert!(grow_at_edge(&mut small, 1e-6, &mut [1, 0], 2));
        assert_eq!(small[0], 1e-7);
        // The limit: two steps below already.
        assert!(!grow_at_edge(&mut grid, 0.03125, &mut grown, 2));
        let mut single = vec![1.0];
        assert!(grow_at_edge(&mut single, 1.0, &mut [0, 0], 1));
        assert_eq!(single, vec![0.1, 1.0]);
    }

    #[test]
    fn blend_keeps_the_annotators_mean_when_it_is_the_truth() {
        let mean = vec![vec![0.8, 0.2], vec![0.3, 0.7]];
        let shared = vec![vec![0.5, 0.5], vec![0.5, 0.5]];
        let (alpha, ce) = choose_blend(&mean, &shared, &mean, &GRID);
        assert_eq!(alpha, 0.0);
        assert_eq!(ce, metrics::soft_ce(&mean, &mean).unwrap());
    }

    #[test]
    fn blend_takes_the_shared_head_when_it_is_the_truth() {
        let mean = vec![vec![0.9, 0.1], vec![0.1, 0.9]];
        let shared = vec![vec![0.6, 0.4], vec![0.4, 0.6]];
        let (alpha, _) = choose_blend(&mean, &shared, &shared, &GRID);
        assert_eq!(alpha, 1.0);
    }

    #[test]
    fn blend_finds_the_midpoint_and_ties_go_to_less_shrinkage() {
        // Targets halfway between: α = 0.5 is the unique minimum of the cross-entropy.
        let mean = vec![vec![0.9, 0.1], vec![0.2, 0.8]];
        let shared = vec![vec![0.5, 0.5], vec![0.6, 0.4]];
        let half: Vec<Vec<f64>> = mean
            .iter()
            .zip(&shared)
            .map(|(m, s)| blend(m, s, 0.5))
            .collect();
        assert_eq!(choose_blend(&mean, &shared, &half, &GRID).0, 0.5);
        // Equal mean and shared head: every α scores the same, the first wins.
        assert_eq!(choose_blend(&mean, &mean, &half, &GRID).0, 0.0);
    }

    /// A corpus of `(item, rater, label)` rows, item `i{i:03}` in split train (i % 5 < 3), dev
    /// (3) or test (4).
    fn corpus_by_fifths(name: &str, rows: &[(usize, String, &str)]) -> Corpus {
        use arbiter_stats::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), Vec::new());
        for (i, r, label) in rows {
            b.push(&format!("i{i:03}"), r, label, &[]).unwrap();
        }
        let ratings = b.build(DuplicatePolicy::KeepAll).unwrap();
        Corpus::from_ratings(name, &ratings, |id| {
            let i: usize = id[1..].parse().unwrap();
            Some(crate::corpus::ItemMeta {
                text: id.to_string(),
                split: Split::parse(["train", "train", "train", "dev", "test"][i % 5]),
                hard_label: None,
            })
        })
        .unwrap()
    }

    /// `n` items split by fifths, two raters each.
    fn split_corpus(n: usize) -> Corpus {
        let rows: Vec<(usize, String, &str)> = (0..n)
            .flat_map(|i| {
                [("r1", 3), ("r2", 2)]
                    .map(|(r, every)| (i, r.to_string(), if i % every == 0 { "1" } else { "0" }))
            })
            .collect();
        corpus_by_fifths("split", &rows)
    }

    /// 600 items split by fifths, 40 raters; raters 30–39 rate only test items, so a quarter of
    /// the test labels come from raters absent from train and dev.
    fn corpus_with_new_test_raters() -> Corpus {
        let mut rows = Vec::new();
        for i in 0..600usize {
            for r in 0..40usize {
                let rates = if r >= 30 {
                    i % 5 == 4 && r % 4 == i % 4
                } else {
                    (i + r) % 3 == 0
                };
                if rates {
                    let label = if (i * 7 + r) % 5 < 2 { "1" } else { "0" };
                    rows.push((i, format!("r{r:02}"), label));
                }
            }
        }
        corpus_by_fifths("new raters", &rows)
    }

    #[test]
    fn selection_fits_leave_out_raters_as_the_test_split_has_new_ones() {
        let corpus = corpus_with_new_test_raters();
        let settings = EvalSettings {
            cv_below: 100,
            ..EvalSettings::default()
        };
        let p = Prepared::new(&corpus, &settings).unwrap();
        let target = test_unseen_share(&p);
        assert!((0.2..0.3).contains(&target), "test share {target}");
        let chosen = selection_folds(&p, &settings);
        assert_eq!(chosen.selection, Selection::DevSplit { items: 120 });
        let fold = &chosen.folds[0];
        let left_out: Vec<usize> = (0..fold.withheld.len())
            .filter(|&a| fold.withheld[a])
            .collect();
        // Only raters the fit would have seen are left out, and the share of dev labels from
        // raters new to the fit reaches the target by less than one rater's dev labels.
        assert!(!left_out.is_empty());
        let dev_labels = |a: usize| {
            p.dev
                .iter()
                .map(|&i| {
                    p.by_item[i as usize]
                        .iter()
                        .filter(|&&(b, _)| b as usize == a)
                        .count()
                })
                .sum::<usize>()
        };
        let total: usize = (0..fold.withheld.len()).map(dev_labels).sum();
        let most = (0..fold.withheld.len()).map(dev_labels).max().unwrap();
        let u = chosen.unseen;
        assert_eq!(u.target_share, target);
        assert_eq!(u.withheld_annotators, left_out.len());
        assert!(u.label_share >= target - 1e-12, "{u:?}");
        assert!(u.label_share < target + most as f64 / total as f64, "{u:?}");
        // The fit sees none of their labels: its model counts them as unseen.
        let keep = |a: u32| !fold.withheld[a as usize];
        let m = train(
            &p,
            &vec![0.0; corpus.items.len()],
            1,
            ModelKind::AnnotatorHeads,
            &fold.fit,
            &keep,
            &settings.train,
        );
        for a in 0..fold.withheld.len() {
            let in_fit = fold
                .fit
                .iter()
                .any(|&i| p.by_item[i as usize].iter().any(|&(b, _)| b as usize == a));
            assert_eq!(m.seen[a], in_fit && !fold.withheld[a], "rater {a}");
        }
        // Seeded: the same raters every time; a share of 0 leaves nobody out.
        assert_eq!(
            selection_folds(&p, &settings).folds[0].withheld,
            fold.withheld
        );
        let none = EvalSettings {
            selection_unseen_share: Some(0.0),
            ..settings.clone()
        };
        let plain = selection_folds(&p, &none);
        assert!(plain.folds[0].withheld.is_empty());
        assert_eq!(plain.unseen.label_share, 0.0);
        // Out-of-range shares are refused.
        for bad in [-0.1, 1.0, f64::NAN] {
            let s = EvalSettings {
                selection_unseen_share: Some(bad),
                ..EvalSettings::default()
            };
            assert!(check_settings(&s).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_small_dev_split_gives_way_to_folds_that_cover_train_and_dev_once() {
        let corpus = split_corpus(100);
        let settings = EvalSettings::default();
        let p = Prepared::new(&corpus, &settings).unwrap();
        assert_eq!((p.train.len(), p.dev.len(), p.test.len()), (60, 20, 20));
        let SelectionFolds {
            selection, folds, ..
        } = selection_folds(&p, &settings);
        assert_eq!(
            selection,
            Selection::CrossValidation {
                folds: 5,
                items: 80
            }
        );
        assert_eq!(folds.len(), 5);
        let mut held: Vec<u32> = folds.iter().flat_map(|f| f.held.clone()).collect();
        held.sort_unstable();
        let mut fit: Vec<u32> = p.train.iter().chain(&p.dev).copied().collect();
        fit.sort_unstable();
        // Every train + dev item is scored exactly once, never by a model that saw it, and
        // no test item enters selection.
        assert_eq!(held, fit);
        for Fold {
            fit: kept,
            held: scored,
            ..
        } in &folds
        {
            assert_eq!(scored.len(), 16);
            assert_eq!(kept.len() + scored.len(), 80);
            assert!(kept.iter().all(|i| !scored.contains(i)));
            assert!(kept.iter().chain(scored).all(|i| !p.test.contains(i)));
        }
        // A development split as large as `cv_below` is used as it is.
        let dev_only = EvalSettings {
            cv_below: 20,
            ..EvalSettings::default()
        };
        let dev = selection_folds(&p, &dev_only);
        assert_eq!(dev.selection, Selection::DevSplit { items: 20 });
        assert_eq!(dev.folds.len(), 1);
        assert_eq!((&dev.folds[0].fit, &dev.folds[0].held), (&p.train, &p.dev));
        // Every test rater rated in train: nobody is left out of a fit.
        assert_eq!(dev.unseen, SelectionUnseen::default());
        assert!(dev.folds[0].withheld.is_empty());
        let never = EvalSettings {
            cv_folds: 1,
            ..EvalSettings::default()
        };
        assert_eq!(
            selection_folds(&p, &never).selection,
            Selection::DevSplit { items: 20 }
        );
    }

    /// 400 items split as [`split_corpus`], with 8 Gaussian features per item, and four
    /// raters whose labels follow the sign of feature `signal` plus noise.
    /// 400 items with 8 Gaussian components each, rated by r1…r4: a rater says "1" when
    /// `score(components, rater index, rng)` is positive. Splits by fifths (train, train,
    /// train, dev, test).
    fn scored_corpus(
        name: &str,
        seed: u64,
        score: impl Fn(&[f64], usize, &mut SeededRng) -> f64,
    ) -> (Corpus, Vec<f64>) {
        use arbiter_stats::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};
        let mut rng = SeededRng::new(seed);
        let n = 400;
        let z: Vec<f64> = (0..n * 8)
            .map(|_| crate::linalg::gaussian(&mut rng))
            .collect();
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), Vec::new());
        for i in 0..n {
            for (r, rater) in ["r1", "r2", "r3", "r4"].into_iter().enumerate() {
                let label = if score(&z[i * 8..(i + 1) * 8], r, &mut rng) > 0.0 {
                    "1"
                } else {
                    "0"
                };
                b.push(&format!("i{i:03}"), rater, label, &[]).unwrap();
            }
        }
        let ratings = b.build(DuplicatePolicy::KeepAll).unwrap();
        let corpus = Corpus::from_ratings(name, &ratings, |id| {
            let i: usize = id[1..].parse().unwrap();
            Some(crate::corpus::ItemMeta {
                text: id.to_string(),
                split: Split::parse(["train", "train", "train", "dev", "test"][i % 5]),
                hard_label: None,
            })
        })
        .unwrap();
        (corpus, z)
    }

    /// Every rater labels by component `signal`, with noise.
    fn feature_corpus(signal: usize) -> (Corpus, Vec<f64>) {
        scored_corpus("features", 17, |x, _, rng| {
            x[signal] + 0.5 * crate::linalg::gaussian(rng)
        })
    }

    #[test]
    fn narrowing_keeps_the_leading_values_of_every_row() {
        let z = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(narrow(&z, 3, 2), vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(narrow(&z, 3, 3), z.to_vec());
        assert_eq!(narrow(&z, 3, 5), z.to_vec());
    }

    #[test]
    fn the_width_that_reaches_the_signal_is_chosen() {
        let settings = EvalSettings {
            components_grid: vec![2, 8],
            ..EvalSettings::default()
        };
        let (corpus, z) = feature_corpus(5);
        let p = Prepared::new(&corpus, &settings).unwrap();
        let (k, scores) = choose_components(&p, &z, 8, &settings, &mut |_| {});
        let widths: Vec<usize> = scores.iter().map(|s| s.components).collect();
        assert_eq!(widths, vec![2, 8]);
        assert_eq!(k, 8, "{scores:?}");
        // Two components miss feature 5 and score near the prior; eight find it.
        assert!(
            scores[0].dev_soft_ce > scores[1].dev_soft_ce + 0.1,
            "{scores:?}"
        );
        // Widths past the fitted components are capped to them, once.
        let wide = EvalSettings {
            components_grid: vec![16, 1, 8, 32],
            ..EvalSettings::default()
        };
        let (corpus, z) = feature_corpus(0);
        let p = Prepared::new(&corpus, &wide).unwrap();
        let (k, scores) = choose_components(&p, &z, 8, &wide, &mut |_| {});
        let widths: Vec<usize> = scores.iter().map(|s| s.components).collect();
        assert_eq!(widths, vec![1, 8]);
        let best = scores
            .iter()
            .min_by(|a, b| a.dev_soft_ce.total_cmp(&b.dev_soft_ce))
            .unwrap();
        assert_eq!(k, best.components);
        assert!(
            scores
                .iter()
                .all(|s| s.dev_soft_ce.is_finite() && s.l2 > 0.0)
        );
    }

    /// Annotators who split along component 5, half each way, over a shared signal in
    /// component 0: the soft label depends on component 5 only through its size, which no
    /// linear item model can read, while each annotator's own head can.
    fn split_views_corpus() -> (Corpus, Vec<f64>) {
        scored_corpus("split views", 29, |x, r, rng| {
            let side = if r < 2 { 1.0 } else { -1.0 };
            x[0] + side * 2.0 * x[5] + 0.3 * crate::linalg::gaussian(rng)
        })
    }

    #[test]
    fn annotator_models_widen_past_the_shared_width_when_their_own_heads_need_it() {
        let settings = EvalSettings {
            components_grid: vec![2, 8],
            // The 80 development items choose alone: folds would only slow the test.
            cv_below: 0,
            ..EvalSettings::default()
        };
        let (corpus, z) = split_views_corpus();
        let p = Prepared::new(&corpus, &settings).unwrap();
        let (chosen, _, _) = select(&p, &z, 8, 2, &settings, &mut |_| {});
        // Item models stay at the shared width; annotator models find component 5.
        assert_eq!(chosen[&ModelKind::Majority].components, 2);
        assert_eq!(chosen[&ModelKind::SoftLabel].components, 2);
        assert_eq!(chosen[&ModelKind::AnnotatorHeads].components, 8);
        assert_eq!(chosen[&ModelKind::AnnotatorEmbedding].components, 8);
        let soft = chosen[&ModelKind::SoftLabel].dev_ce;
        for kind in [ModelKind::AnnotatorHeads, ModelKind::AnnotatorEmbedding] {
            assert!(chosen[&kind].dev_ce < soft - 0.05, "{kind:?}: {chosen:?}");
        }
        // At the full width there is nothing wider to try, and nothing narrower is tried.
        let (full, _, _) = select(&p, &z, 8, 8, &settings, &mut |_| {});
        assert!(full.values().all(|c| c.components == 8), "{full:?}");
    }

    #[test]
    fn the_paired_difference_is_the_mean_of_item_differences() {
        let corpus = split_corpus(10);
        let p = Prepared::new(&corpus, &EvalSettings::default()).unwrap();
        let items = p.test.clone();
        let prediction = |q: f64| Predictions {
            items: items.clone(),
            soft: items.iter().map(|_| vec![1.0 - q, q]).collect(),
            shared: Vec::new(),
            ratings: items.iter().map(|_| Vec::new()).collect(),
        };
        let (a, b) = (prediction(0.3), prediction(0.6));
        // By hand: each item's −Σ t ln p under a minus under b.
        let expected: f64 = items
            .iter()
            .map(|&i| {
                let t = &p.soft[i as usize];
                let ce = |q: f64| -(t[0] * (1.0 - q + 1e-9).ln() + t[1] * (q + 1e-9).ln());
                ce(0.3) - ce(0.6)
            })
            .sum::<f64>()
            / items.len() as f64;
        let d = paired_ce_difference(&p, &a, &b, 200, 0.95, 7);
        assert!(
            (d.value - expected).abs() < 1e-12,
            "{} vs {expected}",
            d.value
        );
        let [lo, hi] = d.ci.unwrap();
        assert!(lo <= d.value && d.value <= hi);
        // A model against itself: zero, with no spread.
        let same = paired_ce_difference(&p, &a, &a, 200, 0.95, 7);
        assert_eq!((same.value, same.ci), (0.0, Some([0.0, 0.0])));
    }
}

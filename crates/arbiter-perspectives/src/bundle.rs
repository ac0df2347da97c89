//! The model file of `arbiter perspectives train` and the predictions of `predict`.
//!
//! A file holds everything needed to predict for new texts: the feature description (checked
//! against the features it is given), the principal components, every model kind fitted to all
//! the training labels, per-pool models when a pool attribute was named, and the annotators
//! with their identity indicators.

use std::collections::{BTreeMap, HashMap};

use arbiter_core::rng::SeededRng;
use serde::{Deserialize, Serialize};

use crate::corpus::{Corpus, Split};
use crate::eval::{
    ComponentsScore, EvalError, EvalSettings, Prepared, Projected, Selection, Widths,
    check_settings, components, select, selections, train,
};
use crate::features::{FeatureSpec, Features};
use crate::linalg::Pca;
use crate::model::{ModelKind, PerspectiveModel, TrainOptions, Who};

/// The format tag written into every model file.
pub const FORMAT: &str = "arbiter-perspectives/1";

/// A trained annotator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorEntry {
    /// Rater id.
    pub id: String,
    /// Identity indicators (indices into [`ModelFile::identity_values`]).
    pub identity: Vec<u32>,
    /// Training labels.
    pub n_labels: usize,
}

/// One model with the settings the development split chose for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedModel {
    /// Parameters.
    pub model: PerspectiveModel,
    /// Chosen shared ridge.
    pub l2: f64,
    /// Chosen annotator ridge.
    pub annotator_l2: Option<f64>,
    /// Decision threshold on P(class 1) for an annotator's label (two classes).
    pub threshold: Option<f64>,
    /// Annotator models: weight of the shared head in an item's soft label (absent in files
    /// written before it was chosen: the plain mean over annotators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blend: Option<f64>,
    /// Development soft CE at those settings.
    pub dev_soft_ce: f64,
}

/// Per-pool soft-label models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolModels {
    /// The attribute.
    pub attribute: String,
    /// Pool names.
    pub pools: Vec<String>,
    /// One model per pool (`None` where the pool has no training labels).
    pub models: Vec<Option<PerspectiveModel>>,
}

/// The model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// [`FORMAT`].
    pub format: String,
    /// Dataset name at training.
    pub dataset: String,
    /// Features the models read.
    pub features: FeatureSpec,
    /// Class names.
    pub classes: Vec<String>,
    /// Items and labels fitted.
    pub n_items: usize,
    /// Labels fitted.
    pub n_labels: usize,
    /// Identity indicators: (attribute, value) per index.
    pub identity_values: Vec<(String, String)>,
    /// Annotators, in model index order.
    pub annotators: Vec<AnnotatorEntry>,
    /// Principal components, as many as the models read.
    pub pca: Pca,
    /// Each width of the principal components tried, as the soft-label model scored it
    /// (absent in files written before the width was chosen).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components_scores: Vec<ComponentsScore>,
    /// Every kind.
    pub models: Vec<FittedModel>,
    /// The kind with the lowest development soft CE.
    pub selected: ModelKind,
    /// The annotator kind with the best development per-annotator macro-F1.
    pub selected_annotator_model: ModelKind,
    /// Per-pool models.
    pub pools: Option<PoolModels>,
    /// Training settings (seed and optimiser).
    pub train: TrainOptions,
    /// How the settings were chosen (absent in files written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
}

/// Why a model file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelFileError {
    /// Another format.
    #[error("not an Arbiter perspective model (format {0:?}, expected {FORMAT:?})")]
    Format(String),
    /// The features differ from the model's.
    #[error("the model reads {expected:?} features but was given {given:?}")]
    Features {
        /// The model's.
        expected: Box<FeatureSpec>,
        /// The given.
        given: Box<FeatureSpec>,
    },
    /// Inconsistent shapes.
    #[error("the model file is inconsistent: {0}")]
    Shape(String),
    /// Asked for a kind the file does not hold.
    #[error("the model file has no {0} model")]
    NoKind(&'static str),
    /// Per-pool predictions without pool models.
    #[error("the model was trained without a pool attribute; retrain with --pool")]
    NoPools,
}

/// Train every kind on the corpus: with official splits on train + dev (the dev split choosing
/// the ridges), else on all items (a seeded fifth choosing them first). Official test items are
/// never fitted.
pub fn train_models(
    corpus: &Corpus,
    features: &Features,
    settings: &EvalSettings,
    progress: &mut dyn FnMut(&str),
) -> Result<ModelFile, EvalError> {
    check_settings(settings)?;
    if features.len() != corpus.items.len() {
        return Err(EvalError::FeatureRows {
            features: features.len(),
            items: corpus.items.len(),
        });
    }
    let official = corpus.has_splits()
        && !(corpus.split_items(Split::Train).is_empty()
            && corpus.split_items(Split::Dev).is_empty());
    let (fit_items, mut dev): (Vec<u32>, Vec<u32>) = if official {
        let train: Vec<u32> = corpus.split_items(Split::Train);
        let dev = corpus.split_items(Split::Dev);
        let fit: Vec<u32> = train.iter().chain(&dev).copied().collect();
        // Without a training split the development items train (a fifth choosing the ridges).
        (fit, if train.is_empty() { Vec::new() } else { dev })
    } else {
        ((0..corpus.items.len() as u32).collect(), Vec::new())
    };
    let mut select_train: Vec<u32> = fit_items
        .iter()
        .copied()
        .filter(|i| !dev.contains(i))
        .collect();
    if dev.is_empty() {
        let mut order = fit_items.clone();
        SeededRng::new(0x5e1ec7).shuffle(&mut order);
        let n_dev = order.len() / 5;
        dev = order[..n_dev].to_vec();
        select_train = order[n_dev..].to_vec();
        dev.sort_unstable();
        select_train.sort_unstable();
    }
    if select_train.is_empty() || dev.is_empty() {
        return Err(EvalError::Settings(format!(
            "{} item(s) are too few to choose the ridges on a held-out fifth",
            fit_items.len()
        )));
    }
    let p = Prepared::with_parts(corpus, settings, [select_train, dev, Vec::new()])?;
    progress(&format!(
        "{}: fitting on {} items",
        corpus.name,
        fit_items.len()
    ));
    let Projected {
        mut pca,
        z,
        shared,
        scores: components_scores,
    } = components(&p, features, &fit_items, settings, progress);
    let k = pca.k();
    let (chosen, selection, _) = select(&p, &z, k, shared, settings, progress);
    let all = |_: u32| true;
    let at = Widths::new(&z, k, chosen.values().map(|c| c.components));
    let mut models = Vec::new();
    for kind in ModelKind::ALL {
        let c = chosen[&kind];
        let opts = TrainOptions {
            l2: c.l2,
            annotator_l2: c.annotator_l2.unwrap_or(settings.train.annotator_l2),
            ..settings.train.clone()
        };
        let m = train(
            &p,
            at.rows(c.components),
            c.components,
            kind,
            &fit_items,
            &all,
            &opts,
        );
        models.push(FittedModel {
            model: m.model,
            l2: c.l2,
            annotator_l2: c.annotator_l2,
            threshold: c.threshold,
            blend: c.blend,
            dev_soft_ce: c.dev_ce,
        });
    }
    let (selected, selected_annotator_model) = selections(&chosen);
    let pools = match &settings.pool_attribute {
        None => None,
        Some(attribute) => {
            let (names, of) = corpus.pools(attribute)?;
            let opts = TrainOptions {
                l2: chosen[&ModelKind::SoftLabel].l2,
                ..settings.train.clone()
            };
            let models = (0..names.len() as u32)
                .map(|pool| {
                    let keep = |a: u32| of[a as usize] == Some(pool);
                    let m = train(
                        &p,
                        at.rows(shared),
                        shared,
                        ModelKind::SoftLabel,
                        &fit_items,
                        &keep,
                        &opts,
                    );
                    m.seen.iter().any(|&s| s).then_some(m.model)
                })
                .collect();
            Some(PoolModels {
                attribute: attribute.clone(),
                pools: names,
                models,
            })
        }
    };
    // The file keeps the components some model reads: the widest model's.
    pca.truncate(models.iter().map(|m| m.model.k).max().unwrap_or(shared));
    let mut n_labels = vec![0usize; corpus.annotators.len()];
    for &i in &fit_items {
        for r in corpus.ratings.iter().filter(|r| r.item == i) {
            n_labels[r.annotator as usize] += 1;
        }
    }
    let mut identity_values = Vec::new();
    for name in &settings.identity_attributes {
        let a = corpus
            .attributes
            .iter()
            .position(|n| n == name)
            .expect("Prepared checked the attributes");
        let mut values: Vec<&str> = corpus
            .annotators
            .iter()
            .filter_map(|x| x.attributes[a].as_deref())
            .collect();
        values.sort_unstable();
        values.dedup();
        identity_values.extend(values.into_iter().map(|v| (name.clone(), v.to_string())));
    }
    let annotators = corpus
        .annotators
        .iter()
        .enumerate()
        .map(|(a, x)| AnnotatorEntry {
            id: x.id.clone(),
            identity: p.identity_of(a).to_vec(),
            n_labels: n_labels[a],
        })
        .collect();
    Ok(ModelFile {
        format: FORMAT.to_string(),
        dataset: corpus.name.clone(),
        features: features.spec.clone(),
        classes: corpus.classes.clone(),
        n_items: fit_items.len(),
        n_labels: n_labels.iter().sum(),
        identity_values,
        annotators,
        pca,
        components_scores,
        models,
        selected,
        selected_annotator_model,
        pools,
        train: settings.train.clone(),
        selection: Some(selection),
    })
}

/// What `predict` writes per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// The item's soft label only.
    Item,
    /// Also each trained annotator's distribution.
    Annotator,
    /// Also each pool model's distribution.
    Pool,
}

/// One line of `predictions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Item id.
    pub item: String,
    /// The model that made the soft label.
    pub model: ModelKind,
    /// Class → probability.
    pub soft_label: BTreeMap<String, f64>,
    /// Annotator → class → probability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_annotator: Option<BTreeMap<String, BTreeMap<String, f64>>>,
    /// Pool → class → probability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_pool: Option<BTreeMap<String, BTreeMap<String, f64>>>,
}

impl ModelFile {
    /// Check the file's internal shapes (after reading it from disk).
    pub fn validate(&self) -> Result<(), ModelFileError> {
        if self.format != FORMAT {
            return Err(ModelFileError::Format(self.format.clone()));
        }
        let c = self.classes.len();
        let k = self.pca.k();
        if self.pca.mean.len() != self.features.dim()
            || self.pca.components.len() != k * self.pca.dim
            || self.pca.dim != self.features.dim()
        {
            return Err(ModelFileError::Shape(
                "principal components do not match the features".into(),
            ));
        }
        for f in self
            .models
            .iter()
            .map(|f| &f.model)
            .chain(self.pools.iter().flat_map(|p| p.models.iter().flatten()))
        {
            let a = if f.kind.per_annotator() {
                self.annotators.len()
            } else {
                0
            };
            // A model reads the leading `f.k` of the file's components.
            let fk = f.k;
            let heads = if f.kind == ModelKind::AnnotatorHeads {
                a * c * fk
            } else {
                0
            };
            let ok = f.classes == c
                && fk <= k
                && f.bias.len() == c
                && f.weights.len() == c * fk
                && f.annotator_bias.len() == a * c
                && f.head_weights.len() == heads
                && f.basis.len() == c * f.rank * fk
                && f.embeddings.len()
                    == if f.kind == ModelKind::AnnotatorEmbedding {
                        a * f.rank
                    } else {
                        0
                    }
                && f.identity_embedding.len() == f.n_identity * f.rank
                && f.identity_bias.len() == f.n_identity * c
                && f.n_identity <= self.identity_values.len();
            if !ok {
                return Err(ModelFileError::Shape(format!(
                    "the {} model's parameters have the wrong sizes",
                    f.kind.name()
                )));
            }
        }
        if let Some(p) = &self.pools
            && p.models.len() != p.pools.len()
        {
            return Err(ModelFileError::Shape("one pool model per pool".into()));
        }
        if self
            .annotators
            .iter()
            .flat_map(|a| &a.identity)
            .any(|&s| s as usize >= self.identity_values.len())
        {
            return Err(ModelFileError::Shape(
                "an identity indicator out of range".into(),
            ));
        }
        Ok(())
    }

    /// A kind's fitted model.
    pub fn model(&self, kind: ModelKind) -> Result<&FittedModel, ModelFileError> {
        self.models
            .iter()
            .find(|m| m.model.kind == kind)
            .ok_or(ModelFileError::NoKind(kind.name()))
    }

    /// Predict for items: `ids[i]` with feature row i and, when known, the ids of the item's
    /// annotators (the soft label is then their mean, as the shared tasks score it; otherwise
    /// the mean over every trained annotator). An annotator the model does not know counts as
    /// a random trained one (the mean over them).
    pub fn predict(
        &self,
        ids: &[String],
        features: &Features,
        annotators: Option<&[Vec<String>]>,
        kind: Option<ModelKind>,
        per: Per,
    ) -> Result<Vec<Prediction>, ModelFileError> {
        if features.spec != self.features {
            return Err(ModelFileError::Features {
                expected: Box::new(self.features.clone()),
                given: Box::new(features.spec.clone()),
            });
        }
        if features.len() != ids.len() {
            return Err(ModelFileError::Shape(format!(
                "{} feature rows for {} items",
                features.len(),
                ids.len()
            )));
        }
        let kind = kind.unwrap_or(self.selected_annotator_model);
        let fitted = self.model(kind)?;
        if per == Per::Pool && self.pools.is_none() {
            return Err(ModelFileError::NoPools);
        }
        let index: HashMap<&str, u32> = self
            .annotators
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.as_str(), i as u32))
            .collect();
        let identity: Vec<Vec<u32>> = self.annotators.iter().map(|a| a.identity.clone()).collect();
        let named = |p: Vec<f64>| -> BTreeMap<String, f64> {
            self.classes.iter().cloned().zip(p).collect()
        };
        let trained: Vec<u32> = (0..self.annotators.len() as u32)
            .filter(|&a| self.annotators[a as usize].n_labels > 0)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let z = self.pca.project(features.row(i));
            let m = &fitted.model;
            // A random trained annotator's distribution, for annotators the model does not know.
            let population = || -> Vec<f64> {
                let mut mean = vec![0.0; self.classes.len()];
                for &a in &trained {
                    for (x, v) in mean.iter_mut().zip(m.predict(&z, Who::Known(a), &identity)) {
                        *x += v / trained.len() as f64;
                    }
                }
                mean
            };
            let soft = if !m.kind.per_annotator() || trained.is_empty() {
                m.predict(&z, Who::Anyone, &identity)
            } else {
                match annotators.and_then(|a| a.get(i)).filter(|a| !a.is_empty()) {
                    Some(names) => {
                        let mut unknown = None;
                        let mut mean = vec![0.0; self.classes.len()];
                        for n in names {
                            let d = match index.get(n.as_str()) {
                                Some(&a) if self.annotators[a as usize].n_labels > 0 => {
                                    m.predict(&z, Who::Known(a), &identity)
                                }
                                _ => unknown.get_or_insert_with(population).clone(),
                            };
                            for (x, v) in mean.iter_mut().zip(d) {
                                *x += v / names.len() as f64;
                            }
                        }
                        mean
                    }
                    None => population(),
                }
            };
            // The annotators' mean shrunk toward the shared head as the development split chose.
            let soft = match fitted.blend.filter(|&a| a > 0.0 && m.kind.per_annotator()) {
                Some(alpha) => soft
                    .iter()
                    .zip(m.predict(&z, Who::Anyone, &identity))
                    .map(|(x, s)| (1.0 - alpha) * x + alpha * s)
                    .collect(),
                None => soft,
            };
            let per_annotator = (per == Per::Annotator && m.kind.per_annotator()).then(|| {
                trained
                    .iter()
                    .map(|&a| {
                        (
                            self.annotators[a as usize].id.clone(),
                            named(m.predict(&z, Who::Known(a), &identity)),
                        )
                    })
                    .collect()
            });
            let per_pool = match (&self.pools, per) {
                (Some(pools), Per::Pool) => Some(
                    pools
                        .pools
                        .iter()
                        .zip(&pools.models)
                        .filter_map(|(name, pm)| {
                            pm.as_ref().map(|pm| {
                                (name.clone(), named(pm.predict(&z, Who::Anyone, &identity)))
                            })
                        })
                        .collect(),
                ),
                _ => None,
            };
            out.push(Prediction {
                item: id.clone(),
                model: kind,
                soft_label: named(soft),
                per_annotator,
                per_pool,
            });
        }
        Ok(out)
    }
}

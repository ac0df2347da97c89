//! The offline grader: all-MiniLM-L6-v2 embeddings (candle) and one logistic-regression head per
//! proposition, trained on human labels.
//!
//! The default heads, trained on the RBR gold train split, are compiled into the crate from
//! `models/heads-default.json`; `arbiter grader train` reproduces that file.

mod encoder;
pub mod features;
pub mod logistic;
pub mod model;

use std::collections::BTreeMap;
use std::path::Path;

use arbiter_core::{PropositionSpec, Sample};
use serde::{Deserialize, Serialize};

use crate::GraderError;
use crate::grader::{Grader, PropositionGrade, SampleGrades};
use features::{FeatureBlock, Text, USER_MAX_TOKENS, lexical_features};
use logistic::{Matrix, fit_cv};
use model::{EMBEDDING_DIM, MODEL_NAME, MiniLm, max_pool, mean_pool, normalised};

/// Heads trained on the gold train split for the default policy's 23 propositions.
pub const DEFAULT_HEADS_JSON: &str = include_str!("../../models/heads-default.json");

/// Feature layout of the shipped heads (chosen by train cross-validation; see the crate README).
pub const DEFAULT_FEATURES: [FeatureBlock; 3] = [
    FeatureBlock::Completion,
    FeatureBlock::StaticMean,
    FeatureBlock::Lexical,
];

/// Token limit per embedded text for the shipped heads (`[CLS]` and `[SEP]` included): the
/// encoder reads the reply's opening; the static bag and lexical cues cover the whole reply.
pub const DEFAULT_MAX_TOKENS: usize = 64;

/// Encoder layers the shipped heads read (`None` = all six): the first three layers' states
/// both rank better on train CV than all six and cost half as much.
pub const DEFAULT_ENCODER_LAYERS: Option<usize> = Some(3);

/// Format tag of heads files.
pub const HEADS_FORMAT: &str = "arbiter-heads/1";

/// One proposition's head: `sigmoid(bias + weights·features)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Intercept.
    pub bias: f64,
    /// One weight per feature, in the file's feature layout.
    pub weights: Vec<f64>,
    /// Penalty chosen by cross-validation (null for a constant head).
    pub lambda: Option<f64>,
    /// Training rows.
    pub n_train: usize,
    /// Of which labelled yes.
    pub n_positive: usize,
}

/// Where a heads file came from, so it can be reproduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The command that wrote the file.
    pub command: String,
    /// The training data's file name.
    pub data: String,
    /// SHA-256 of the training data.
    pub data_sha256: String,
    /// Seed for fold assignment.
    pub seed: u64,
}

/// A set of heads sharing one feature layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadsFile {
    /// Always [`HEADS_FORMAT`].
    pub format: String,
    /// Encoder the features come from; heads are refused for any other.
    pub encoder: String,
    /// Token limit used when embedding.
    pub max_tokens: usize,
    /// Encoder layers run (the first k of six); absent = all six.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_layers: Option<usize>,
    /// Feature blocks, concatenated in this order.
    pub features: Vec<FeatureBlock>,
    /// Heads by proposition name.
    pub heads: BTreeMap<String, Head>,
    /// How the file was made.
    pub provenance: Provenance,
    /// Leave-one-source-out figures of this layout and training recipe, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<crate::Validation>,
}

impl HeadsFile {
    /// Parse and validate a heads file; `source` names it in errors.
    pub fn from_json(text: &str, source: &str) -> Result<HeadsFile, GraderError> {
        let bad = |reason: String| GraderError::Heads {
            path: source.to_string(),
            reason,
        };
        let file: HeadsFile =
            serde_json::from_str(text).map_err(|e| bad(format!("not a heads file: {e}")))?;
        if file.format != HEADS_FORMAT {
            return Err(bad(format!(
                "format {:?} is not {HEADS_FORMAT:?}; retrain with `arbiter grader train`",
                file.format
            )));
        }
        if file.encoder != MODEL_NAME {
            return Err(bad(format!(
                "heads were trained on encoder {:?}, this grader runs {MODEL_NAME:?}",
                file.encoder
            )));
        }
        let width = file.width();
        for (name, head) in &file.heads {
            if head.weights.len() != width {
                return Err(bad(format!(
                    "head {name:?} has {} weights, the feature layout has {width}",
                    head.weights.len()
                )));
            }
        }
        Ok(file)
    }

    /// The compiled-in default heads.
    pub fn default_heads() -> Result<HeadsFile, GraderError> {
        HeadsFile::from_json(DEFAULT_HEADS_JSON, "models/heads-default.json (built in)")
    }

    /// Total feature width.
    pub fn width(&self) -> usize {
        self.features.iter().map(|b| b.width(EMBEDDING_DIM)).sum()
    }

    /// Names without a head among `propositions`.
    pub fn missing<'a>(&self, propositions: &'a [PropositionSpec]) -> Vec<&'a str> {
        propositions
            .iter()
            .filter(|p| !self.heads.contains_key(&p.name))
            .map(|p| p.name.as_str())
            .collect()
    }
}

/// Texts per encoder batch (long texts go in smaller batches; see [`MiniLm::embed_ids`]).
pub const ENCODER_BATCH: usize = 32;

/// Rows of features, one per sample, in `blocks` order.
///
/// Every text any block needs (the reply, the last user turn, …) is tokenised once and goes
/// through the encoder in one length-sorted pass, so each text is embedded once however many
/// blocks and heads use it. `progress` is called with the number of samples done (approximate
/// while the pass runs: texts of all kinds are interleaved by length).
pub fn featurise(
    encoder: &MiniLm,
    samples: &[Sample],
    blocks: &[FeatureBlock],
    progress: &mut dyn FnMut(usize),
) -> Result<Matrix, GraderError> {
    let n = samples.len();
    let mut kinds: Vec<Text> = blocks.iter().flat_map(|b| b.texts()).copied().collect();
    kinds.sort();
    kinds.dedup();
    let mut ids = Vec::with_capacity(kinds.len() * n);
    for kind in &kinds {
        let texts: Vec<String> = samples.iter().map(|s| kind.of(s)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let limit = match kind {
            Text::LastUser => USER_MAX_TOKENS.min(encoder.max_tokens()),
            Text::Completion | Text::Opening => encoder.max_tokens(),
        };
        ids.extend(encoder.tokenize_limited(&refs, limit)?);
    }
    let total = ids.len().max(1);
    let pooled = encoder.embed_ids(
        &ids,
        ENCODER_BATCH,
        &mut |done| progress(done * n / total),
        &|states| (normalised(&mean_pool(states)), max_pool(states)),
    );
    let vector = |kind: Text, i: usize| {
        let k = kinds.iter().position(|&t| t == kind).unwrap_or(0);
        &pooled[k * n + i]
    };
    let needs_static = blocks
        .iter()
        .any(|b| matches!(b, FeatureBlock::StaticMean | FeatureBlock::StaticMax));
    let static_bags: Vec<(Vec<f32>, Vec<f32>)> = if needs_static {
        let replies: Vec<&str> = samples.iter().map(|s| s.completion_text()).collect();
        encoder
            .tokenize_limited(&replies, 512)?
            .iter()
            .map(|ids| {
                let pieces = encoder.static_embeddings(ids);
                (normalised(&mean_pool(&pieces)), max_pool(&pieces))
            })
            .collect()
    } else {
        Vec::new()
    };
    let width: usize = blocks.iter().map(|b| b.width(EMBEDDING_DIM)).sum();
    let mut data = Vec::with_capacity(n * width);
    for (i, sample) in samples.iter().enumerate() {
        for block in blocks {
            match block {
                FeatureBlock::Completion => {
                    data.extend(vector(Text::Completion, i).0.iter().map(|&v| f64::from(v)));
                }
                FeatureBlock::CompletionMax => {
                    data.extend(vector(Text::Completion, i).1.iter().map(|&v| f64::from(v)));
                }
                FeatureBlock::LastUser => {
                    data.extend(vector(Text::LastUser, i).0.iter().map(|&v| f64::from(v)));
                }
                FeatureBlock::CompletionOpening => {
                    data.extend(vector(Text::Opening, i).0.iter().map(|&v| f64::from(v)));
                }
                FeatureBlock::UserCosine => {
                    let (a, b) = (&vector(Text::Completion, i).0, &vector(Text::LastUser, i).0);
                    data.push(a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum());
                }
                FeatureBlock::StaticMean => {
                    data.extend(static_bags[i].0.iter().map(|&v| f64::from(v)));
                }
                FeatureBlock::StaticMax => {
                    data.extend(static_bags[i].1.iter().map(|&v| f64::from(v)));
                }
                FeatureBlock::Lexical => data.extend(lexical_features(sample.completion_text())),
            }
        }
    }
    progress(n);
    Ok(Matrix {
        rows: n,
        cols: width,
        data,
    })
}

/// Train one head per proposition from human labels on `samples`.
///
/// Every sample must carry a label for every proposition: a missing label is an error naming
/// the sample, never silently dropped.
pub fn train_heads(
    encoder: &MiniLm,
    samples: &[Sample],
    propositions: &[PropositionSpec],
    blocks: &[FeatureBlock],
    max_tokens: usize,
    provenance: Provenance,
) -> Result<HeadsFile, GraderError> {
    if samples.len() < 10 {
        return Err(GraderError::Training(format!(
            "only {} labelled samples; train heads on at least 10 (the gold train split has 351)",
            samples.len()
        )));
    }
    let mut labels: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for p in propositions {
        let mut ys = Vec::with_capacity(samples.len());
        for s in samples {
            let y = s.propositions.get(&p.name).copied().ok_or_else(|| {
                GraderError::Training(format!(
                    "sample {} has no human label for proposition {:?}; every training sample needs all labels",
                    s.id, p.name
                ))
            })?;
            ys.push(y);
        }
        labels.insert(p.name.as_str(), ys);
    }
    let x = featurise(encoder, samples, blocks, &mut |_| {})?;
    // Heads are independent: fit them on all cores.
    let labels: Vec<(&str, Vec<bool>)> = labels.into_iter().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = labels.len().div_ceil(threads).max(1);
    let seed = provenance.seed;
    let fitted: Vec<(String, Head)> = std::thread::scope(|scope| {
        let x = &x;
        let workers: Vec<_> = labels
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(name, y)| {
                            let (model, report) = fit_cv(x, y, 5, seed);
                            let head = Head {
                                bias: round(model.bias),
                                weights: model.weights.iter().map(|&w| round(w)).collect(),
                                lambda: report.lambda.is_finite().then_some(report.lambda),
                                n_train: y.len(),
                                n_positive: y.iter().filter(|&&v| v).count(),
                            };
                            (name.to_string(), head)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    if fitted.len() != labels.len() {
        return Err(GraderError::Training(
            "a head-fitting thread failed".to_string(),
        ));
    }
    let heads: BTreeMap<String, Head> = fitted.into_iter().collect();
    Ok(HeadsFile {
        format: HEADS_FORMAT.into(),
        encoder: MODEL_NAME.into(),
        max_tokens,
        encoder_layers: encoder.layers(),
        features: blocks.to_vec(),
        heads,
        provenance,
        validation: None,
    })
}

/// Seven significant digits keep the file small and far below the heads' accuracy.
fn round(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = 7 - (v.abs().log10().floor() as i32) - 1;
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// The embedded grader: encoder plus heads.
pub struct EmbeddedGrader {
    encoder: MiniLm,
    heads: HeadsFile,
}

impl EmbeddedGrader {
    /// Load the encoder from `model_dir` (checksums verified) with the given heads.
    pub fn load(model_dir: &Path, heads: HeadsFile) -> Result<EmbeddedGrader, GraderError> {
        let encoder = MiniLm::load_layers(model_dir, heads.max_tokens, heads.encoder_layers)?;
        Ok(EmbeddedGrader { encoder, heads })
    }

    /// The heads in use.
    pub fn heads(&self) -> &HeadsFile {
        &self.heads
    }

    /// The encoder, for training new heads with the same weights.
    pub fn encoder(&self) -> &MiniLm {
        &self.encoder
    }
}

impl Grader for EmbeddedGrader {
    fn describe(&self) -> String {
        format!("embedded:{MODEL_NAME}")
    }

    fn grade_batch(
        &self,
        samples: &[Sample],
        propositions: &[PropositionSpec],
    ) -> Result<Vec<SampleGrades>, GraderError> {
        self.grade_batch_with_progress(samples, propositions, &mut |_| {})
    }

    fn grade_batch_with_progress(
        &self,
        samples: &[Sample],
        propositions: &[PropositionSpec],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<SampleGrades>, GraderError> {
        let missing = self.heads.missing(propositions);
        if !missing.is_empty() {
            return Err(GraderError::UnknownProposition(format!(
                "the embedded grader has no trained head for {}; train heads for your policy with `arbiter grader train --policy POLICY --data LABELLED.jsonl --out HEADS.json` and pass `--heads HEADS.json`",
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        // One embedding pass per sample, shared by every head: the heads are linear and cheap.
        let x = featurise(&self.encoder, samples, &self.heads.features, progress)?;
        let heads: Vec<(&str, &Head)> = propositions
            .iter()
            .filter_map(|p| Some((p.name.as_str(), self.heads.heads.get(&p.name)?)))
            .collect();
        Ok(samples
            .iter()
            .enumerate()
            .map(|(i, sample)| SampleGrades {
                id: sample.id.clone(),
                grades: heads
                    .iter()
                    .map(|(name, head)| {
                        let z = head.bias + logistic::dot(&head.weights, x.row(i));
                        let p = logistic::sigmoid(z);
                        let grade = if p.is_finite() {
                            PropositionGrade::clean(p, None)
                        } else {
                            PropositionGrade::failed()
                        };
                        (name.to_string(), grade)
                    })
                    .collect(),
            })
            .collect())
    }

    fn validation(&self) -> Option<&crate::Validation> {
        self.heads.validation.as_ref()
    }

    fn preferred_batch_size(&self) -> usize {
        // Large calls sort more texts by length together (even batches); memory stays small
        // (features are ~1 KB per sample, encoder activations are per encoder batch).
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_seven_significant_digits() {
        assert_eq!(round(0.123456789), 0.1234568);
        assert_eq!(round(-1234.56789), -1234.568);
        assert_eq!(round(0.0), 0.0);
    }

    #[test]
    fn heads_file_validation_names_the_problem() {
        let bad = |t: &str| HeadsFile::from_json(t, "h.json").unwrap_err().to_string();
        assert!(bad("{").contains("h.json: not a heads file"));
        let mut file = HeadsFile {
            format: HEADS_FORMAT.into(),
            encoder: MODEL_NAME.into(),
            max_tokens: 128,
            encoder_layers: None,
            features: vec![FeatureBlock::Lexical],
            heads: BTreeMap::new(),
            provenance: Provenance {
                command: "c".into(),
                data: "d".into(),
                data_sha256: "s".into(),
                seed: 1,
            },
            validation: None,
        };
        file.heads.insert(
            "apology".into(),
            Head {
                bias: 0.0,
                weights: vec![0.0; 3],
                lambda: None,
                n_train: 1,
                n_positive: 0,
            },
        );
        let text = serde_json::to_string(&file).unwrap();
        assert!(bad(&text).contains("has 3 weights"));
        file.heads.get_mut("apology").unwrap().weights = vec![0.0; file.width()];
        file.encoder = "other".into();
        assert!(bad(&serde_json::to_string(&file).unwrap()).contains("encoder"));
        file.encoder = MODEL_NAME.into();
        let ok = HeadsFile::from_json(&serde_json::to_string(&file).unwrap(), "h.json").unwrap();
        let props = vec![
            PropositionSpec {
                name: "apology".into(),
                question: "?".into(),
            },
            PropositionSpec {
                name: "nope".into(),
                question: "?".into(),
            },
        ];
        assert_eq!(ok.missing(&props), vec!["nope"]);
    }

    #[test]
    fn default_heads_cover_the_gold_propositions() {
        let heads = HeadsFile::default_heads().unwrap();
        assert_eq!(heads.heads.len(), 23);
        assert!(heads.heads.contains_key("fully_complies"));
        assert!(heads.heads.values().all(|h| h.n_train == 351));
    }
}

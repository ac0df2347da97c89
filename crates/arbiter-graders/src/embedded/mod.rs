//! The offline grader: all-MiniLM-L6-v2 embeddings (candle) and one logistic-regression head per
//! proposition, trained on human labels.
//!
//! The default heads, trained on the RBR gold train split, are compiled into the crate from
//! `models/heads-default.json`; `arbiter grader train` reproduces that file.

pub mod features;
pub mod logistic;
pub mod model;

use std::collections::BTreeMap;
use std::path::Path;

use arbiter_core::{PropositionSpec, Sample};
use serde::{Deserialize, Serialize};

use crate::GraderError;
use crate::grader::{Grader, PropositionGrade, SampleGrades};
use features::{FeatureBlock, lexical_features};
use logistic::{Logistic, Matrix, fit_cv};
use model::{EMBEDDING_DIM, MODEL_NAME, MiniLm};

/// Heads trained on the gold train split for the default policy's 23 propositions.
pub const DEFAULT_HEADS_JSON: &str = include_str!("../../models/heads-default.json");

/// Feature layout of the shipped heads (chosen by measurement; see the crate README).
pub const DEFAULT_FEATURES: [FeatureBlock; 2] = [FeatureBlock::Completion, FeatureBlock::Lexical];

/// Token limit per embedded text for the shipped heads.
pub const DEFAULT_MAX_TOKENS: usize = 256;

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
    /// Feature blocks, concatenated in this order.
    pub features: Vec<FeatureBlock>,
    /// Heads by proposition name.
    pub heads: BTreeMap<String, Head>,
    /// How the file was made.
    pub provenance: Provenance,
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

/// Rows of features, one per sample, in `blocks` order. All texts of all blocks go through the
/// encoder in one call so batching sees them together.
pub fn featurise(
    encoder: &MiniLm,
    samples: &[Sample],
    blocks: &[FeatureBlock],
) -> Result<Matrix, GraderError> {
    let embedded: Vec<FeatureBlock> = blocks
        .iter()
        .copied()
        .filter(|b| *b != FeatureBlock::Lexical)
        .collect();
    let texts: Vec<String> = embedded
        .iter()
        .flat_map(|b| samples.iter().map(move |s| b.text(s).unwrap_or_default()))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = encoder.embed(&refs, 32)?;
    let mut rows = Vec::with_capacity(samples.len());
    for (i, sample) in samples.iter().enumerate() {
        let mut row = Vec::new();
        for block in blocks {
            match block {
                FeatureBlock::Lexical => row.extend(lexical_features(sample.completion_text())),
                other => {
                    let b = embedded.iter().position(|e| e == other).unwrap_or(0);
                    row.extend(vectors[b * samples.len() + i].iter().map(|&v| f64::from(v)));
                }
            }
        }
        rows.push(row);
    }
    Matrix::from_rows(&rows).ok_or_else(|| GraderError::Model("inconsistent feature widths".into()))
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
    let x = featurise(encoder, samples, blocks)?;
    let mut heads = BTreeMap::new();
    for (name, y) in labels {
        let (model, report) = fit_cv(&x, &y, 5, provenance.seed);
        heads.insert(
            name.to_string(),
            Head {
                bias: round(model.bias),
                weights: model.weights.iter().map(|&w| round(w)).collect(),
                lambda: report.lambda.is_finite().then_some(report.lambda),
                n_train: y.len(),
                n_positive: y.iter().filter(|&&v| v).count(),
            },
        );
    }
    Ok(HeadsFile {
        format: HEADS_FORMAT.into(),
        encoder: MODEL_NAME.into(),
        max_tokens,
        features: blocks.to_vec(),
        heads,
        provenance,
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
        let encoder = MiniLm::load(model_dir, heads.max_tokens)?;
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
        let x = featurise(&self.encoder, samples, &self.heads.features)?;
        let heads: Vec<(&str, Logistic)> = propositions
            .iter()
            .filter_map(|p| {
                let h = self.heads.heads.get(&p.name)?;
                Some((
                    p.name.as_str(),
                    Logistic {
                        bias: h.bias,
                        weights: h.weights.clone(),
                    },
                ))
            })
            .collect();
        Ok(samples
            .iter()
            .enumerate()
            .map(|(i, sample)| SampleGrades {
                id: sample.id.clone(),
                grades: heads
                    .iter()
                    .map(|(name, head)| {
                        let p = head.predict(x.row(i));
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
            features: vec![FeatureBlock::Lexical],
            heads: BTreeMap::new(),
            provenance: Provenance {
                command: "c".into(),
                data: "d".into(),
                data_sha256: "s".into(),
                seed: 1,
            },
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

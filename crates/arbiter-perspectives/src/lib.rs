//! Perspective models: learn each annotator's and each identity pool's labels, not only the
//! majority's, and measure how well each viewpoint can be predicted.
//!
//! - [`corpus`]: items (text, split, official hard label), annotators (self-described
//!   identity attributes) and their labels, built from an `arbiter-stats` [`Ratings`] table;
//! - [`features`]: text features per item: the caller's sentence embedding (an [`Embedder`],
//!   the embedded grader's encoder at the edge) next to hashed character n-grams, which carry
//!   signal in any script;
//! - [`model`]: majority-vote, soft-label, per-annotator-head, annotator-embedding and
//!   per-pool models, one trained shape, seeded;
//! - [`metrics`]: the LeWiDi 2023 and 2025 metrics and per-annotator scores, exactly as the
//!   shared tasks compute them;
//! - [`eval`]: official, seen/unseen-annotator and k-shot splits, learning curves, the pool ×
//!   pool matrix, the uncertainty correlation, bootstrap intervals over items and seeds;
//! - [`report`]: the evaluation as one value rendered to Markdown, HTML and JSON;
//! - [`bundle`]: the model file of `arbiter perspectives train` and its predictions.
//!
//! The crate does no I/O: readers, the encoder and files live at the edges.
//!
//! [`Ratings`]: arbiter_stats::Ratings
//! [`Embedder`]: features::Embedder

#![deny(missing_docs)]

pub mod bundle;
pub mod corpus;
pub mod eval;
pub mod features;
pub mod linalg;
pub mod metrics;
pub mod model;
pub mod report;

pub use bundle::{ModelFile, ModelFileError, Per, Prediction, train_models};
pub use corpus::{Annotator, Corpus, CorpusError, Item, ItemMeta, Rating, Split};
pub use eval::{EvalError, EvalSettings, Evaluation, SplitMode, evaluate};
pub use features::{Embedder, FeatureSpec, Features};
pub use model::{ModelKind, TrainOptions};
pub use report::EvalReport;

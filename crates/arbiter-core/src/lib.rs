//! Arbiter's shared data model.
//!
//! Every capability of Arbiter (rule-based rewards, graders, evals, annotation) speaks about the
//! same nouns, defined here:
//!
//! - [`Sample`]: a conversation (`prompt`) and the assistant reply being judged (`completion`),
//!   with optional response type, category, human proposition labels and free metadata.
//! - [`GradeRecord`]: a grader's P(yes) per proposition for one sample, the `--features` input of
//!   the rule engine.
//! - [`bootstrap`]: seeded percentile bootstrap helpers (streams per named slice, stratified
//!   resampling, NumPy-style percentiles).
//! - [`shard`]: which of N shards a sample id belongs to, by a stable hash of the id (the
//!   `--shard I/N` of `arbiter grade` and `arbiter eval run`).
//! - [`digest`]: hex SHA-256 and the cache directory (`$ARBITER_CACHE`) the edges share.
//! - [`jsonl`]: line-oriented reading that reports `file:line: field: problem` and can keep going
//!   past bad lines when the caller asks for it.
//!
//! The crate does no I/O of its own except through the `Read`/`Write` values its callers pass in
//! (and [`digest::default_cache_dir`]'s reading of two environment variables).

#![deny(missing_docs)]

pub mod bootstrap;
pub mod digest;
mod error;
mod grades;
pub mod jsonl;
mod proposition;
pub mod rng;
mod sample;
pub mod shard;

pub use error::{FieldError, RecordError, line_at};
pub use grades::{CellFailures, GradeFlag, GradeRecord};
pub use proposition::PropositionSpec;
pub use sample::{Message, ResponseType, Role, Sample, SampleId};
pub use shard::{Shard, ShardError};

//! Arrow schemas for Arbiter's records and Parquet files of them.
//!
//! The `arbiter` binary reads and writes Parquet through this crate and only chooses the
//! format (by a `.parquet` extension or `--format parquet`); the records themselves stay the
//! ones of `arbiter-core` and `arbiter-rbr`, and every Parquet row is checked by the same
//! validation as a JSONL line, so the two formats accept the same data and give the same
//! results.
//!
//! - [`samples`]: [`arbiter_core::Sample`] ↔ rows (`id`, `prompt` and `completion` as
//!   `list<struct<role, content>>`, `response_type`, `category`, `propositions` as a struct of
//!   booleans, `metadata` as JSON text).
//! - [`grades`]: [`arbiter_core::GradeRecord`] ↔ rows (`id`, `propositions` as a struct of
//!   float64, `flags` as a struct of utf8).
//! - [`rows`]: the `rbr score`, `rbr classify` and `rbr select` lines
//!   ([`arbiter_rbr::pipeline::ScoreRow`], [`arbiter_rbr::pipeline::ClassRow`],
//!   [`rows::SelectionRow`]) and `aggregate`'s labels ([`rows::LabelRow`]) as rows.
//! - [`runlog`]: an eval run's latest log line per (sample, epoch) as rows, for
//!   `arbiter eval export`.
//! - [`ratings`]: a long ratings table read column by column into
//!   [`arbiter_stats::RatingsBuilder`], with labels and ids of any string, dictionary, integer,
//!   float or boolean type.
//! - [`file`]: reading a whole file into record batches and writing batches, with errors that
//!   name the file; [`value`] turns one Arrow cell, or every row of a file, into JSON for the
//!   row readers (eval datasets are read through [`value::rows`]).
//!
//! Errors name the file, the row (0-based, as pandas and pyarrow count) and the column. A
//! corrupt or truncated file is an error, never a panic.
//!
//! The `parquet` feature (default) is the file half: [`file`], the `read` functions and
//! [`ratings`]. Without it the crate converts records and in-memory batches only
//! ([`samples::from_batches`]), for a caller that gets its batches elsewhere (arbiter-py, from
//! Python's Arrow objects) and should not build a Parquet decoder.

#![deny(missing_docs)]

mod error;
#[cfg(feature = "parquet")]
pub mod file;
pub mod grades;
#[cfg(feature = "parquet")]
pub mod ratings;
pub mod rows;
pub mod runlog;
pub mod samples;
pub mod value;

pub use error::ColumnarError;
#[cfg(feature = "parquet")]
pub use file::{ParquetWriter, is_parquet};

/// A whole table: its schema and its rows in batches.
pub type Table = (arrow_schema::SchemaRef, Vec<arrow_array::RecordBatch>);

/// A schema from fields (shared by the record modules).
pub(crate) fn schema(fields: Vec<arrow_schema::Field>) -> arrow_schema::SchemaRef {
    std::sync::Arc::new(arrow_schema::Schema::new(fields))
}

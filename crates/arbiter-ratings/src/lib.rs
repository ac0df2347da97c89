//! Readers that turn rating files into an [`arbiter_stats::Ratings`] table.
//!
//! - [`read_csv`] / [`read_jsonl`] / [`read_path`]: any long table, with a [`Columns`] mapping
//!   (`--item COL --rater COL --label COL [--group COL…]`).
//! - [`datasets`]: named importers for the shared per-rater datasets (LeWiDi 2023 JSON,
//!   MultiPICo + annotator metadata, the ConvAbuse CSV) and public formats (Jigsaw specialized
//!   rater pools with its inverted polarity, DICES, POPQUORN-style per-row demographics).
//!
//! - [`texts`]: what a model reads about each item (text, official split, hard label), keyed
//!   like the ratings, from the same datasets or from a column or file of texts.
//!
//! Bad rows never abort a read and are never dropped silently: each becomes a [`Problem`] that
//! names the file, the line (or record id) and the field. Only unreadable files, missing
//! columns and table-level failures are errors.

#![deny(missing_docs)]

pub mod datasets;
mod generic;
pub mod texts;

use std::fmt;
use std::path::PathBuf;

use arbiter_stats::{DomainSpec, DuplicatePolicy, LabelKind, Ratings, StatsError};

pub use generic::{read_csv, read_csv_from, read_jsonl, read_jsonl_from, read_path};

/// Which columns (CSV headers or JSON fields) hold the item, rater, label and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// Item id column.
    pub item: String,
    /// Rater id column.
    pub rater: String,
    /// Label column.
    pub label: String,
    /// Group columns (pool, demographics); empty cells are missing values.
    pub groups: Vec<String>,
}

/// How to build the table.
#[derive(Debug, Clone)]
pub struct Options {
    /// Label domain: explicit, or inferred from the data.
    pub domain: DomainSpec,
    /// What to do with repeated (item, rater) rows.
    pub duplicates: DuplicatePolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            domain: DomainSpec::Infer(LabelKind::Nominal),
            duplicates: DuplicatePolicy::KeepAll,
        }
    }
}

/// One input row (or record) that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File the row came from.
    pub file: PathBuf,
    /// Where in the file: `line N` for line-based formats, `record ID` for JSON documents.
    pub location: String,
    /// Field at fault, if one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.file.display(), self.location)?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// A table plus the rows that were left out.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The ratings that were read.
    pub ratings: Ratings,
    /// Rows that could not be used, in file order.
    pub problems: Vec<Problem>,
}

/// Errors that stop a read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{}: {cause}", path.display())]
    Io {
        /// File.
        path: PathBuf,
        /// Cause (shown in the message, so not also a `source` printed twice).
        cause: std::io::Error,
    },
    /// The CSV header lacks a mapped column.
    #[error("{}: no column {column:?} (columns: {available})", path.display())]
    MissingColumn {
        /// File.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns present, comma-separated.
        available: String,
    },
    /// The file as a whole is malformed (e.g. not a JSON document, bad CSV header).
    #[error("{}: {location}: {message}", path.display())]
    Format {
        /// File.
        path: PathBuf,
        /// Where.
        location: String,
        /// What.
        message: String,
    },
    /// The rows were read but the table could not be built (e.g. duplicate policy `error`).
    #[error("{}: {cause}", path.display())]
    Table {
        /// File.
        path: PathBuf,
        /// Cause (shown in the message).
        cause: StatsError,
    },
    /// The file format is not recognised from its extension.
    #[error("{}: unknown format (expected .csv, .tsv, .jsonl or .ndjson)", path.display())]
    UnknownFormat {
        /// File.
        path: PathBuf,
    },
}

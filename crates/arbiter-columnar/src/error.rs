//! The errors of reading and writing columnar files.

use std::path::PathBuf;

/// Why a Parquet file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ColumnarError {
    /// The file could not be opened, read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        cause: std::io::Error,
    },
    /// Not a readable Parquet file: bad magic, truncated, corrupt pages, unsupported encoding.
    #[error("{}: not a readable Parquet file{}: {message}", path.display(), row_group.map(|g| format!(" (row group {g})")).unwrap_or_default())]
    Corrupt {
        /// File.
        path: PathBuf,
        /// The row group being decoded, when known.
        row_group: Option<usize>,
        /// What the decoder said.
        message: String,
    },
    /// A column the reader needs is absent.
    #[error("{}: no column {column:?} (columns: {available})", path.display())]
    MissingColumn {
        /// File.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns present, comma-separated.
        available: String,
    },
    /// A column has a type the reader cannot take.
    #[error("{}: column {column:?}: {message}", path.display())]
    ColumnType {
        /// File.
        path: PathBuf,
        /// Column.
        column: String,
        /// What is wrong with its type.
        message: String,
    },
    /// Records that cannot be written as one table (e.g. ids mixing numbers and strings).
    #[error("{}: {message}", path.display())]
    Unwritable {
        /// File.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The rows were read but the ratings table could not be built (e.g. duplicate policy
    /// `error`).
    #[error("{}: {cause}", path.display())]
    Table {
        /// File.
        path: PathBuf,
        /// Cause.
        cause: arbiter_stats::StatsError,
    },
}

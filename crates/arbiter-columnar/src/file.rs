//! Whole Parquet files in and out: read into record batches (with the row group of each
//! row, for messages), write batches through one writer. Everything that touches bytes is
//! here; the other modules convert between batches and records.

use std::fs::File;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::ColumnarError;

/// Rows decoded per batch.
const BATCH_ROWS: usize = 8192;

/// Whether `path` names a Parquet file (`.parquet`, any case): the format is chosen by it.
pub fn is_parquet(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// A file's rows as record batches, in file order.
#[derive(Debug, Clone)]
pub struct Batches {
    /// The file (for messages).
    pub path: PathBuf,
    /// The Arrow schema of the columns read.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// The first row of each row group.
    row_group_starts: Vec<usize>,
}

impl Batches {
    /// Rows in all batches.
    pub fn n_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The row group holding `row` (0-based over the file).
    pub fn row_group_of(&self, row: usize) -> usize {
        self.row_group_starts
            .partition_point(|&start| start <= row)
            .saturating_sub(1)
    }

    /// `row N` or, in a file of several row groups, `row N (row group G)`.
    pub fn locate(&self, row: usize) -> String {
        if self.row_group_starts.len() > 1 {
            format!("row {row} (row group {})", self.row_group_of(row))
        } else {
            format!("row {row}")
        }
    }
}

/// Read every row of `path`; `columns` (top-level names) limits the read to those columns, each
/// of which must exist.
pub fn read(path: &Path, columns: Option<&[&str]>) -> Result<Batches, ColumnarError> {
    let file = File::open(path).map_err(|cause| ColumnarError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    // The decoder is a third party's code over untrusted bytes: a panic in it (a corrupt file
    // it failed to check) is turned into an error naming the file, never a crash.
    match catch_unwind(AssertUnwindSafe(|| read_file(file, path, columns))) {
        Ok(result) => result,
        Err(panic) => Err(ColumnarError::Corrupt {
            path: path.to_path_buf(),
            row_group: None,
            message: format!(
                "the decoder gave up ({})",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("panic")
            ),
        }),
    }
}

fn read_file(file: File, path: &Path, columns: Option<&[&str]>) -> Result<Batches, ColumnarError> {
    let corrupt = |row_group: Option<usize>, message: String| ColumnarError::Corrupt {
        path: path.to_path_buf(),
        row_group,
        message,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| corrupt(None, e.to_string()))?
        .with_batch_size(BATCH_ROWS);
    let mut row_group_starts = Vec::new();
    let mut start = 0usize;
    for g in builder.metadata().row_groups() {
        row_group_starts.push(start);
        start = start.saturating_add(usize::try_from(g.num_rows()).unwrap_or(0));
    }
    // The footer's key-value pairs (e.g. `arbiter.partial`) are on the file's schema; the
    // reader's schema (maybe projected) leaves them out.
    let file_metadata = builder.schema().metadata().clone();
    let builder = match columns {
        None => builder,
        Some(names) => {
            let fields = builder.schema().fields();
            let mut roots = Vec::with_capacity(names.len());
            for name in names {
                match fields.iter().position(|f| f.name() == name) {
                    Some(i) => roots.push(i),
                    None => {
                        return Err(ColumnarError::MissingColumn {
                            path: path.to_path_buf(),
                            column: name.to_string(),
                            available: fields
                                .iter()
                                .map(|f| f.name().as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                }
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            builder.with_projection(mask)
        }
    };
    let reader = builder.build().map_err(|e| corrupt(None, e.to_string()))?;
    let schema = Arc::new(
        reader
            .schema()
            .as_ref()
            .clone()
            .with_metadata(file_metadata),
    );
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let starts = row_group_starts.clone();
    for batch in reader {
        let group = starts.partition_point(|&s| s <= rows).saturating_sub(1);
        let batch = batch.map_err(|e| corrupt(Some(group), e.to_string()))?;
        rows += batch.num_rows();
        batches.push(batch);
    }
    if rows != start {
        return Err(corrupt(
            None,
            format!("the footer counts {start} rows but {rows} were decoded"),
        ));
    }
    Ok(Batches {
        path: path.to_path_buf(),
        schema,
        batches,
        row_group_starts,
    })
}

/// Writes record batches of one schema as a Parquet file (snappy-compressed) to any writer:
/// the binary hands it an atomic file, so a failed write leaves no half file.
pub struct ParquetWriter<W: Write + Send> {
    path: PathBuf,
    inner: ArrowWriter<W>,
}

impl<W: Write + Send> ParquetWriter<W> {
    /// Start a file of `schema` on `out`; `path` names it in messages.
    pub fn new(out: W, path: &Path, schema: SchemaRef) -> Result<Self, ColumnarError> {
        Self::with_metadata(out, path, schema, &[])
    }

    /// [`ParquetWriter::new`] with key-value pairs in the file's footer (what a reader should
    /// know about the rows as a whole, e.g. `arbiter.partial`); pyarrow shows them as
    /// `ParquetFile(...).metadata.metadata`, and the reader here puts them in the schema's
    /// metadata.
    pub fn with_metadata(
        out: W,
        path: &Path,
        schema: SchemaRef,
        metadata: &[(&str, &str)],
    ) -> Result<Self, ColumnarError> {
        let key_values = metadata
            .iter()
            .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string()))
            .collect::<Vec<_>>();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_key_value_metadata((!key_values.is_empty()).then_some(key_values))
            .build();
        let inner = ArrowWriter::try_new(out, schema, Some(props)).map_err(|e| {
            ColumnarError::Unwritable {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        Ok(ParquetWriter {
            path: path.to_path_buf(),
            inner,
        })
    }

    /// Add rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ColumnarError> {
        self.inner.write(batch).map_err(|e| self.error(e))
    }

    /// Write the footer and hand back the writer (for the caller to put the file in place).
    pub fn finish(self) -> Result<W, ColumnarError> {
        let path = self.path;
        self.inner
            .into_inner()
            .map_err(|e| ColumnarError::Unwritable {
                path,
                message: e.to_string(),
            })
    }

    fn error(&self, e: parquet::errors::ParquetError) -> ColumnarError {
        ColumnarError::Unwritable {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

/// A whole table written to `out` (returned for the caller to put in place).
pub fn write_table<W: Write + Send>(
    out: W,
    path: &Path,
    table: crate::Table,
) -> Result<W, ColumnarError> {
    write_table_with_metadata(out, path, table, &[])
}

/// [`write_table`] with key-value pairs in the footer (see [`ParquetWriter::with_metadata`]).
pub fn write_table_with_metadata<W: Write + Send>(
    out: W,
    path: &Path,
    (schema, batches): crate::Table,
    metadata: &[(&str, &str)],
) -> Result<W, ColumnarError> {
    let mut w = ParquetWriter::with_metadata(out, path, schema, metadata)?;
    for b in &batches {
        w.write(b)?;
    }
    w.finish()
}

/// One batch as a whole file's bytes (tests and small outputs).
pub fn to_bytes(batch: &RecordBatch, path: &Path) -> Result<Vec<u8>, ColumnarError> {
    let mut w = ParquetWriter::new(Vec::new(), path, batch.schema())?;
    w.write(batch)?;
    w.finish()
}

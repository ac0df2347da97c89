//! Label exports (JSONL, CSV, Parquet) with pseudonymous raters and released pool classes.

use crate::db::LabelRow;
use crate::release::PoolClasses;
use serde::Serialize;

/// Export rows: labels only (skips are not labels), pseudonymous rater ids, pool names.
///
/// The same columns, in this order, in every export format.
#[derive(Debug, Serialize)]
pub struct ExportRow<'a> {
    /// Importer's item id.
    pub item: &'a str,
    /// Pseudonymous rater id.
    pub rater: &'a str,
    /// Pool name.
    pub pool: &'a str,
    /// Canonical label.
    pub label: &'a str,
    /// Rationale, if any.
    pub rationale: &'a str,
    /// Instructions version in force.
    pub instructions_version: i64,
    /// Time on task, ms.
    pub duration_ms: i64,
}

/// Export formats.
pub const EXPORT_FORMATS: &[&str] = &["jsonl", "csv", "parquet"];

/// MIME type and file extension of an export format.
pub fn export_mime(format: &str) -> &'static str {
    match format {
        "csv" => "text/csv; charset=utf-8",
        "parquet" => "application/vnd.apache.parquet",
        _ => "application/x-ndjson",
    }
}

/// A CSV cell that a spreadsheet would run as a formula (`= + - @`, or a leading tab or
/// carriage return) gets a leading apostrophe, so it is shown as text.
pub fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// Labels of current raters as JSONL, CSV or Parquet, each row's pool as its released class.
/// Erased raters have no rows left (see `Db::label_rows`).
pub fn export(format: &str, classes: &PoolClasses, rows: &[LabelRow]) -> Result<Vec<u8>, String> {
    let records: Vec<ExportRow> = rows
        .iter()
        .filter_map(|r| {
            Some(ExportRow {
                item: &r.external_id,
                rater: &r.pseudonym,
                pool: classes.of(r.pool_id),
                label: r.label.as_deref()?,
                rationale: r.rationale.as_deref().unwrap_or(""),
                instructions_version: r.instructions_version,
                duration_ms: r.duration_ms,
            })
        })
        .collect();
    match format {
        "jsonl" => {
            let mut out = Vec::new();
            for r in &records {
                serde_json::to_writer(&mut out, r).map_err(|e| e.to_string())?;
                out.push(b'\n');
            }
            Ok(out)
        }
        "csv" => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([
                "item",
                "rater",
                "pool",
                "label",
                "rationale",
                "instructions_version",
                "duration_ms",
            ])
            .map_err(|e| e.to_string())?;
            for r in &records {
                let (v, d) = (
                    r.instructions_version.to_string(),
                    r.duration_ms.to_string(),
                );
                w.write_record([
                    csv_cell(r.item).as_ref(),
                    csv_cell(r.rater).as_ref(),
                    csv_cell(r.pool).as_ref(),
                    csv_cell(r.label).as_ref(),
                    csv_cell(r.rationale).as_ref(),
                    &v,
                    &d,
                ])
                .map_err(|e| e.to_string())?;
            }
            w.into_inner().map_err(|e| e.to_string())
        }
        "parquet" => parquet_export(&records).map_err(|e| format!("writing Parquet: {e}")),
        other => Err(format!(
            "unknown export format {other:?}; use {}",
            EXPORT_FORMATS.join(", ")
        )),
    }
}

/// The Parquet schema of an export: the columns of [`ExportRow`], all required; strings are
/// UTF-8 (`STRING` logical type), so readers give them back as text.
pub const PARQUET_SCHEMA: &str = "message labels {
  REQUIRED BYTE_ARRAY item (STRING);
  REQUIRED BYTE_ARRAY rater (STRING);
  REQUIRED BYTE_ARRAY pool (STRING);
  REQUIRED BYTE_ARRAY label (STRING);
  REQUIRED BYTE_ARRAY rationale (STRING);
  REQUIRED INT64 instructions_version;
  REQUIRED INT64 duration_ms;
}";

/// Rows per Parquet row group.
const PARQUET_ROW_GROUP: usize = 65_536;

/// Writes the records as one Parquet file with the low-level column writer of the `parquet`
/// crate (no Arrow), Snappy-compressed. `created_by` carries no version, so the same rows give
/// the same bytes.
fn parquet_export(records: &[ExportRow]) -> parquet::errors::Result<Vec<u8>> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;

    let schema = Arc::new(parquet::schema::parser::parse_message_type(PARQUET_SCHEMA)?);
    let props = WriterProperties::builder()
        .set_created_by("arbiter-server".into())
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, Arc::new(props))?;
    for chunk in records.chunks(PARQUET_ROW_GROUP) {
        let mut group = writer.next_row_group()?;
        let texts: [Vec<ByteArray>; 5] = [
            chunk.iter().map(|r| ByteArray::from(r.item)).collect(),
            chunk.iter().map(|r| ByteArray::from(r.rater)).collect(),
            chunk.iter().map(|r| ByteArray::from(r.pool)).collect(),
            chunk.iter().map(|r| ByteArray::from(r.label)).collect(),
            chunk.iter().map(|r| ByteArray::from(r.rationale)).collect(),
        ];
        let ints: [Vec<i64>; 2] = [
            chunk.iter().map(|r| r.instructions_version).collect(),
            chunk.iter().map(|r| r.duration_ms).collect(),
        ];
        let missing =
            || parquet::errors::ParquetError::General("schema has too few columns".into());
        for values in texts {
            let mut col = group.next_column()?.ok_or_else(missing)?;
            col.typed::<ByteArrayType>()
                .write_batch(&values, None, None)?;
            col.close()?;
        }
        for values in ints {
            let mut col = group.next_column()?.ok_or_else(missing)?;
            col.typed::<Int64Type>().write_batch(&values, None, None)?;
            col.close()?;
        }
        group.close()?;
    }
    writer.into_inner()
}

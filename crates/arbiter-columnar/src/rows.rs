//! The `rbr score` and `rbr classify` lines as Arrow rows.
//!
//! Scores: `id` (`uint64` or `utf8`), `response_type` (`utf8`), `class` (`utf8`), `reward`,
//! `rbr_reward`, `base_reward` (`float64`). Classes: `id`, `response_type`, `class`, and
//! `class_probs` as `struct<CLASS: float64, …>` in the policy's class order.

use std::path::Path;
use std::sync::Arc;

use arbiter_rbr::pipeline::{ClassRow, ScoreRow};
use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, SchemaRef};

use crate::ColumnarError;
use crate::samples::{IdKind, chunks, id_array};

fn unwritable(path: &Path, e: impl ToString) -> ColumnarError {
    ColumnarError::Unwritable {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn floats(values: impl Iterator<Item = f64>) -> ArrayRef {
    let mut b = Float64Builder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

/// Score lines as a schema and batches.
pub fn scores_to_batches(
    rows: &[ScoreRow],
    path: &Path,
) -> Result<(SchemaRef, Vec<RecordBatch>), ColumnarError> {
    let kind = IdKind::of_rows(rows.iter().map(|r| &r.id), path)?;
    let schema = crate::schema(vec![
        Field::new("id", kind.data_type(), false),
        Field::new("response_type", DataType::Utf8, false),
        Field::new("class", DataType::Utf8, false),
        Field::new("reward", DataType::Float64, false),
        Field::new("rbr_reward", DataType::Float64, false),
        Field::new("base_reward", DataType::Float64, false),
    ]);
    let mut batches = Vec::new();
    for c in chunks(rows, |_| 0) {
        let columns = vec![
            id_array(c.iter().map(|r| &r.id), kind, path)?,
            strings(c.iter().map(|r| r.response_type.as_str())),
            strings(c.iter().map(|r| r.class.as_str())),
            floats(c.iter().map(|r| r.reward)),
            floats(c.iter().map(|r| r.rbr_reward)),
            floats(c.iter().map(|r| r.base_reward)),
        ];
        batches
            .push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| unwritable(path, e))?);
    }
    Ok((schema, batches))
}

/// Class lines as a schema and batches; every row lists the same classes.
pub fn classes_to_batches(
    rows: &[ClassRow],
    path: &Path,
) -> Result<(SchemaRef, Vec<RecordBatch>), ColumnarError> {
    let kind = IdKind::of_rows(rows.iter().map(|r| &r.id), path)?;
    let classes: Vec<&str> = rows
        .first()
        .map(|r| r.class_probs.0.iter().map(|(c, _)| c.as_str()).collect())
        .unwrap_or_default();
    if let Some(r) = rows.iter().find(|r| {
        r.class_probs.0.len() != classes.len()
            || r.class_probs
                .0
                .iter()
                .zip(&classes)
                .any(|((c, _), k)| c != k)
    }) {
        return Err(unwritable(
            path,
            format!("id {}: its classes differ from the first row's", r.id),
        ));
    }
    let mut fields = vec![
        Field::new("id", kind.data_type(), false),
        Field::new("response_type", DataType::Utf8, false),
        Field::new("class", DataType::Utf8, false),
    ];
    let prob_fields: Fields = classes
        .iter()
        .map(|c| Field::new(*c, DataType::Float64, false))
        .collect();
    if !classes.is_empty() {
        fields.push(Field::new(
            "class_probs",
            DataType::Struct(prob_fields.clone()),
            false,
        ));
    }
    let schema = crate::schema(fields);
    let mut batches = Vec::new();
    for c in chunks(rows, |_| 0) {
        let mut columns = vec![
            id_array(c.iter().map(|r| &r.id), kind, path)?,
            strings(c.iter().map(|r| r.response_type.as_str())),
            strings(c.iter().map(|r| r.class.as_str())),
        ];
        if !classes.is_empty() {
            let probs: Vec<ArrayRef> = (0..classes.len())
                .map(|k| floats(c.iter().map(|r| r.class_probs.0[k].1)))
                .collect();
            columns.push(Arc::new(StructArray::new(prob_fields.clone(), probs, None)));
        }
        batches
            .push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| unwritable(path, e))?);
    }
    Ok((schema, batches))
}

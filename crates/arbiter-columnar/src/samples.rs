//! Samples as Arrow rows.
//!
//! The schema written (and the one documented in the README):
//!
//! | column | type | notes |
//! |---|---|---|
//! | `id` | `uint64` or `utf8` | numbers when every id is a number, else strings |
//! | `prompt` | `list<struct<role: utf8, content: utf8>>` | the conversation, ending with a user turn |
//! | `completion` | `list<struct<role: utf8, content: utf8>>` | one assistant message |
//! | `response_type` | `utf8`, nullable | `hard_refuse`, `safe_refuse_1`, `safe_refuse_2`, `comply` |
//! | `category` | `utf8`, nullable | |
//! | `propositions` | `struct<NAME: bool, …>`, nullable fields | human labels; null = not labelled; absent when no sample has any |
//! | `metadata` | `utf8`, nullable | the metadata object as JSON text; null when empty |
//!
//! Metadata is JSON text, not a struct: it is free-form per sample (nested objects, a field
//! that is a number in one row and a string in the next), which one struct type cannot hold
//! without inventing nulls or losing the key order; JSON text keeps it exactly as read.
//!
//! Reading is more lenient, as the JSONL reader is: ids of any integer or string type;
//! `completion` also as a plain string (one assistant message); `propositions` also as a
//! `map<utf8, bool>`; `metadata` also as a struct; strings also as `large_utf8`, `utf8_view`
//! or dictionaries; any other column becomes a metadata field. A null cell is an absent field.
//! Each row is then checked by [`Sample::from_value`], so errors name the same fields.

use std::path::Path;
use std::sync::Arc;

use arbiter_core::{FieldError, Message, Sample, SampleId};
use arrow_array::builder::{BooleanBuilder, OffsetBufferBuilder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, SchemaRef};
use serde_json::{Map, Value};

use crate::ColumnarError;
use crate::value::{self, Missing};

/// How ids are stored: one type per column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `uint64`: every id is a number.
    Number,
    /// `utf8`: every id is a string.
    Text,
}

impl IdKind {
    /// The kind of a set of ids, or the index of the first id of another kind than the first
    /// (a Parquet column has one type; writing `5` as `"5"` would change the id).
    pub fn of<'a>(ids: impl IntoIterator<Item = &'a SampleId>) -> Result<IdKind, (usize, IdKind)> {
        let mut kind = None;
        for (i, id) in ids.into_iter().enumerate() {
            let k = match id {
                SampleId::Index(_) => IdKind::Number,
                SampleId::Name(_) => IdKind::Text,
            };
            match kind {
                None => kind = Some(k),
                Some(first) if first != k => return Err((i, first)),
                Some(_) => {}
            }
        }
        Ok(kind.unwrap_or(IdKind::Number))
    }

    /// [`IdKind::of`] as a writer's error naming the row.
    pub fn of_rows<'a>(
        ids: impl IntoIterator<Item = &'a SampleId>,
        path: &Path,
    ) -> Result<IdKind, ColumnarError> {
        IdKind::of(ids).map_err(|(row, first)| ColumnarError::Unwritable {
            path: path.to_path_buf(),
            message: format!(
                "row {row}: its id is a {} but earlier ids are {}; a Parquet column holds one type (give every id as a string, or every id as a number)",
                match first {
                    IdKind::Number => "string",
                    IdKind::Text => "number",
                },
                match first {
                    IdKind::Number => "numbers",
                    IdKind::Text => "strings",
                }
            ),
        })
    }

    /// The Arrow type of the `id` column.
    pub fn data_type(self) -> DataType {
        match self {
            IdKind::Number => DataType::UInt64,
            IdKind::Text => DataType::Utf8,
        }
    }
}

/// The `id` column of `ids` (all of `kind`).
pub(crate) fn id_array<'a>(
    ids: impl Iterator<Item = &'a SampleId>,
    kind: IdKind,
    path: &Path,
) -> Result<ArrayRef, ColumnarError> {
    let mismatch = |id: &SampleId| ColumnarError::Unwritable {
        path: path.to_path_buf(),
        message: format!("id {id} is not of the id column's type"),
    };
    Ok(match kind {
        IdKind::Number => {
            let mut b = UInt64Builder::new();
            for id in ids {
                match id {
                    SampleId::Index(n) => b.append_value(*n),
                    other => return Err(mismatch(other)),
                }
            }
            Arc::new(b.finish())
        }
        IdKind::Text => {
            let mut b = StringBuilder::new();
            for id in ids {
                match id {
                    SampleId::Name(s) => b.append_value(s),
                    other => return Err(mismatch(other)),
                }
            }
            Arc::new(b.finish())
        }
    })
}

fn message_fields() -> Fields {
    Fields::from(vec![
        Field::new("role", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
    ])
}

/// The type of `prompt` and `completion`.
pub fn messages_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(message_fields()),
        false,
    )))
}

fn messages_array<'a>(rows: impl Iterator<Item = &'a [Message]>) -> ArrayRef {
    let mut offsets = OffsetBufferBuilder::<i32>::new(0);
    let mut roles = StringBuilder::new();
    let mut contents = StringBuilder::new();
    for messages in rows {
        for m in messages {
            roles.append_value(m.role.as_str());
            contents.append_value(&m.content);
        }
        offsets.push_length(messages.len());
    }
    let structs = StructArray::new(
        message_fields(),
        vec![Arc::new(roles.finish()), Arc::new(contents.finish())],
        None,
    );
    let DataType::List(item) = messages_type() else {
        unreachable!("messages_type is a list")
    };
    Arc::new(ListArray::new(
        item,
        offsets.finish(),
        Arc::new(structs),
        None,
    ))
}

/// Rows written per batch: few enough that a batch's text stays far below the 2 GiB a
/// `utf8` array can address.
const ROWS_PER_BATCH: usize = 1024;
/// Text bytes after which a batch is cut early.
const BYTES_PER_BATCH: usize = 256 << 20;

/// `samples` cut into batches of at most [`ROWS_PER_BATCH`] rows and about
/// [`BYTES_PER_BATCH`] bytes of text.
pub(crate) fn chunks<T>(items: &[T], bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        if i > start && (i - start >= ROWS_PER_BATCH || size + bytes(item) > BYTES_PER_BATCH) {
            out.push(&items[start..i]);
            (start, size) = (i, 0);
        }
        size += bytes(item);
    }
    if start < items.len() || items.is_empty() {
        out.push(&items[start..]);
    }
    out
}

/// The schema of `samples` and its batches.
pub fn to_batches(
    samples: &[Sample],
    path: &Path,
) -> Result<(SchemaRef, Vec<RecordBatch>), ColumnarError> {
    let kind = IdKind::of_rows(samples.iter().map(|s| &s.id), path)?;
    let names: Vec<&String> = {
        let mut all: std::collections::BTreeSet<&String> = Default::default();
        for s in samples {
            all.extend(s.propositions.keys());
        }
        all.into_iter().collect()
    };
    let mut fields = vec![
        Field::new("id", kind.data_type(), false),
        Field::new("prompt", messages_type(), false),
        Field::new("completion", messages_type(), false),
        Field::new("response_type", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
    ];
    let label_fields: Fields = names
        .iter()
        .map(|n| Field::new(n.as_str(), DataType::Boolean, true))
        .collect();
    if !names.is_empty() {
        fields.push(Field::new(
            "propositions",
            DataType::Struct(label_fields.clone()),
            true,
        ));
    }
    fields.push(Field::new("metadata", DataType::Utf8, true));
    let schema = crate::schema(fields);
    let size = |s: &Sample| {
        s.prompt
            .iter()
            .chain(&s.completion)
            .map(|m| m.content.len())
            .sum::<usize>()
    };
    let mut batches = Vec::new();
    for chunk in chunks(samples, size) {
        let mut columns: Vec<ArrayRef> = vec![
            id_array(chunk.iter().map(|s| &s.id), kind, path)?,
            messages_array(chunk.iter().map(|s| s.prompt.as_slice())),
            messages_array(chunk.iter().map(|s| s.completion.as_slice())),
        ];
        let mut rt = StringBuilder::new();
        let mut cat = StringBuilder::new();
        let mut meta = StringBuilder::new();
        for s in chunk {
            rt.append_option(s.response_type.map(|r| r.as_str()));
            cat.append_option(s.category.as_deref());
            if s.metadata.is_empty() {
                meta.append_null();
            } else {
                meta.append_value(Value::Object(s.metadata.clone()).to_string());
            }
        }
        columns.push(Arc::new(rt.finish()));
        columns.push(Arc::new(cat.finish()));
        if !names.is_empty() {
            let labels: Vec<ArrayRef> = names
                .iter()
                .map(|name| {
                    let mut b = BooleanBuilder::new();
                    for s in chunk {
                        b.append_option(s.propositions.get(*name).copied());
                    }
                    Arc::new(b.finish()) as ArrayRef
                })
                .collect();
            columns.push(Arc::new(StructArray::new(
                label_fields.clone(),
                labels,
                None,
            )));
        }
        columns.push(Arc::new(meta.finish()));
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
            ColumnarError::Unwritable {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        batches.push(batch);
    }
    Ok((schema, batches))
}

/// One row of a samples file: where it is and what it parsed to.
#[derive(Debug, Clone)]
pub struct Row<T> {
    /// 0-based row over the file.
    pub row: usize,
    /// `row N` or `row N (row group G)`, for messages.
    pub location: String,
    /// The record, or the field at fault.
    pub record: Result<T, FieldError>,
}

/// Every row of a samples file, parsed; the error is for the file as a whole (unreadable,
/// corrupt).
#[cfg(feature = "parquet")]
pub fn read(path: &Path) -> Result<Vec<Row<Sample>>, ColumnarError> {
    let batches = crate::file::read(path, None)?;
    Ok(parse(
        &batches.batches,
        &|row| batches.locate(row),
        Missing::Null,
    ))
}

/// Every row of in-memory `batches` (one table's, in order) parsed as [`read`] parses a
/// file's, with missing values read as `missing` says; locations are `row N`.
pub fn from_batches(batches: &[RecordBatch], missing: Missing) -> Vec<Row<Sample>> {
    parse(batches, &|row| format!("row {row}"), missing)
}

fn parse(
    batches: &[RecordBatch],
    locate: &dyn Fn(usize) -> String,
    missing: Missing,
) -> Vec<Row<Sample>> {
    objects(batches, locate, missing, normalise_sample)
        .into_iter()
        .map(|r| Row {
            record: r
                .record
                .and_then(|o| Sample::from_value(Value::Object(o), r.row)),
            row: r.row,
            location: r.location,
        })
        .collect()
}

/// Each row of `batches` as a JSON object of its non-missing cells (`fix` adjusts a column's
/// value before it is added), with its row number and location.
pub(crate) fn objects(
    batches: &[RecordBatch],
    locate: &dyn Fn(usize) -> String,
    missing: Missing,
    fix: fn(&str, Value) -> Result<Value, FieldError>,
) -> Vec<Row<Map<String, Value>>> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    let mut row = 0;
    for batch in batches {
        let names: Vec<&String> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name())
            .collect();
        for i in 0..batch.num_rows() {
            let mut object = Map::with_capacity(names.len());
            let mut error = None;
            for (name, column) in names.iter().zip(batch.columns()) {
                let v = match value::cell_with(column.as_ref(), i, missing) {
                    Ok(Value::Null) => continue,
                    Ok(v) => fix(name, v),
                    Err(message) => Err(FieldError::new(name.as_str(), message)),
                };
                match v {
                    Ok(v) => {
                        object.insert(name.to_string(), v);
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            out.push(Row {
                row,
                location: locate(row),
                record: match error {
                    Some(e) => Err(e),
                    None => Ok(object),
                },
            });
            row += 1;
        }
    }
    out
}

/// Drops the nulls of a struct or map (unlabelled propositions) and parses metadata text.
fn normalise_sample(column: &str, v: Value) -> Result<Value, FieldError> {
    match (column, v) {
        ("propositions", Value::Object(map)) => Ok(without_nulls(map)),
        ("metadata", Value::String(text)) => serde_json::from_str::<Value>(&text)
            .map_err(|e| FieldError::new("metadata", format!("not JSON text: {e}"))),
        (_, v) => Ok(v),
    }
}

pub(crate) fn without_nulls(map: Map<String, Value>) -> Value {
    Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, StructArray};
    use arrow_schema::{DataType, Field};
    use serde_json::json;

    use super::{Missing, from_batches, messages_array};
    use arbiter_core::{Message, Role};

    /// Two rows whose `metadata` struct is the union of their keys (as pyarrow and polars
    /// build it from dicts), with a NaN `score` column in the second.
    fn batch() -> RecordBatch {
        let prompt = [Message::new(Role::User, "hi")];
        let completion = [Message::new(Role::Assistant, "hello")];
        let meta = StructArray::from(vec![
            (
                Arc::new(Field::new("a", DataType::Int64, true)),
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("b", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![None, Some("x")])) as ArrayRef,
            ),
        ]);
        RecordBatch::try_from_iter(vec![
            (
                "prompt",
                messages_array([&prompt[..], &prompt[..]].into_iter()),
            ),
            (
                "completion",
                messages_array([&completion[..], &completion[..]].into_iter()),
            ),
            ("metadata", Arc::new(meta) as ArrayRef),
            (
                "score",
                Arc::new(Float64Array::from(vec![0.5, f64::NAN])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn left_out_reads_each_row_as_its_own_dict() {
        let rows = from_batches(&[batch()], Missing::LeftOut);
        let meta: Vec<_> = rows
            .iter()
            .map(|r| serde_json::Value::Object(r.record.as_ref().unwrap().metadata.clone()))
            .collect();
        assert_eq!(meta, [json!({"a": 1, "score": 0.5}), json!({"b": "x"})]);
        assert_eq!(rows[1].location, "row 1");
    }

    #[test]
    fn null_keeps_struct_nulls_and_refuses_nan() {
        let rows = from_batches(&[batch()], Missing::Null);
        let first = rows[0].record.as_ref().unwrap();
        assert_eq!(first.metadata["b"], serde_json::Value::Null);
        let e = rows[1].record.as_ref().unwrap_err();
        assert_eq!(e.field, "score");
        assert!(e.message.contains("not a finite number"), "{e}");
    }
}

//! Grades as Arrow rows.
//!
//! | column | type | notes |
//! |---|---|---|
//! | `id` | `uint64` or `utf8` | the sample's id |
//! | `propositions` | `struct<NAME: float64, …>` | P(yes); null where the grader gave none |
//! | `flags` | `struct<NAME: utf8, …>` | `low_mass`, `no_label_token`, `parsed_text_fallback`, `error`; null where none |
//!
//! Both structs have one field per graded proposition, in name order (the key order of the
//! JSONL lines), so a file has one schema whatever its rows say. Reading also takes
//! `map<utf8, float64>` / `map<utf8, utf8>` and float32 probabilities; each row is checked by
//! [`GradeRecord::from_value`].

use std::path::Path;
use std::sync::Arc;

use arbiter_core::{GradeRecord, SampleId};
use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, SchemaRef};

use crate::ColumnarError;
use crate::samples::{IdKind, chunks, id_array};

/// The layout of a grades file: id type and proposition names.
#[derive(Debug, Clone)]
pub struct GradesSchema {
    names: Vec<String>,
    kind: IdKind,
    schema: SchemaRef,
}

impl GradesSchema {
    /// A file of ids of `kind` grading `names` (sorted here; duplicates dropped). At least one
    /// proposition: Parquet has no struct without fields.
    pub fn new(
        kind: IdKind,
        names: impl IntoIterator<Item = String>,
        path: &Path,
    ) -> Result<GradesSchema, ColumnarError> {
        let names: Vec<String> = names
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if names.is_empty() {
            return Err(ColumnarError::Unwritable {
                path: path.to_path_buf(),
                message: "no propositions to write: a Parquet grades file needs at least one"
                    .into(),
            });
        }
        let probs: Fields = names
            .iter()
            .map(|n| Field::new(n, DataType::Float64, true))
            .collect();
        let flags: Fields = names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect();
        let schema = crate::schema(vec![
            Field::new("id", kind.data_type(), false),
            Field::new("propositions", DataType::Struct(probs), false),
            Field::new("flags", DataType::Struct(flags), false),
        ]);
        Ok(GradesSchema {
            names,
            kind,
            schema,
        })
    }

    /// The schema of the records `grades` (ids of one kind, every proposition they name).
    pub fn of(grades: &[GradeRecord], path: &Path) -> Result<GradesSchema, ColumnarError> {
        let kind = IdKind::of_rows(grades.iter().map(|g| &g.id), path)?;
        let names = grades
            .iter()
            .flat_map(|g| g.propositions.keys().chain(g.flags.keys()))
            .cloned();
        GradesSchema::new(kind, names, path)
    }

    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// `grades` as one batch; a record naming a proposition outside the schema is an error.
    pub fn batch(&self, grades: &[GradeRecord], path: &Path) -> Result<RecordBatch, ColumnarError> {
        let unwritable = |message: String| ColumnarError::Unwritable {
            path: path.to_path_buf(),
            message,
        };
        for g in grades {
            if let Some(name) = g
                .propositions
                .keys()
                .chain(g.flags.keys())
                .find(|n| self.names.binary_search(n).is_err())
            {
                return Err(unwritable(format!(
                    "id {}: proposition {name:?} is not among the file's columns",
                    g.id
                )));
            }
        }
        let DataType::Struct(prob_fields) = self.schema.field(1).data_type().clone() else {
            unreachable!("propositions is a struct")
        };
        let DataType::Struct(flag_fields) = self.schema.field(2).data_type().clone() else {
            unreachable!("flags is a struct")
        };
        let mut probs: Vec<ArrayRef> = Vec::with_capacity(self.names.len());
        let mut flags: Vec<ArrayRef> = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let mut p = Float64Builder::with_capacity(grades.len());
            let mut f = StringBuilder::new();
            for g in grades {
                p.append_option(g.propositions.get(name).copied());
                f.append_option(g.flags.get(name).map(|f| f.as_str()));
            }
            probs.push(Arc::new(p.finish()));
            flags.push(Arc::new(f.finish()));
        }
        let ids = id_array(grades.iter().map(|g| &g.id), self.kind, path)?;
        RecordBatch::try_new(
            self.schema.clone(),
            vec![
                ids,
                Arc::new(StructArray::new(prob_fields, probs, None)),
                Arc::new(StructArray::new(flag_fields, flags, None)),
            ],
        )
        .map_err(|e| unwritable(e.to_string()))
    }
}

/// `grades` as a whole file's schema and batches.
pub fn to_batches(
    grades: &[GradeRecord],
    path: &Path,
) -> Result<(SchemaRef, Vec<RecordBatch>), ColumnarError> {
    let schema = GradesSchema::of(grades, path)?;
    let batches = chunks(grades, |_| 0)
        .into_iter()
        .map(|c| schema.batch(c, path))
        .collect::<Result<_, _>>()?;
    Ok((schema.schema(), batches))
}

/// Every row of a grades file, parsed.
#[cfg(feature = "parquet")]
pub fn read(path: &Path) -> Result<Vec<crate::samples::Row<GradeRecord>>, ColumnarError> {
    use crate::samples::{Row, objects};
    use crate::value::Missing;
    use serde_json::Value;

    let batches = crate::file::read(path, None)?;
    let locate = |row| batches.locate(row);
    Ok(objects(&batches.batches, &locate, Missing::Null, normalise)
        .into_iter()
        .map(|r| Row {
            record: r
                .record
                .and_then(|o| GradeRecord::from_value(Value::Object(o))),
            row: r.row,
            location: r.location,
        })
        .collect())
}

/// Flags read as a struct carry a null for every proposition without one.
#[cfg(feature = "parquet")]
fn normalise(
    column: &str,
    v: serde_json::Value,
) -> Result<serde_json::Value, arbiter_core::FieldError> {
    match (column, v) {
        ("flags", serde_json::Value::Object(map)) => Ok(crate::samples::without_nulls(map)),
        (_, v) => Ok(v),
    }
}

/// The id column's kind for grading `ids`.
pub fn id_kind<'a>(
    ids: impl IntoIterator<Item = &'a SampleId>,
    path: &Path,
) -> Result<IdKind, ColumnarError> {
    IdKind::of_rows(ids, path)
}

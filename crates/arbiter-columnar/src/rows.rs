//! The `rbr score`, `rbr classify` and `rbr select` lines and the `aggregate` table as Arrow
//! rows.
//!
//! Scores: `id` (`uint64` or `utf8`), `response_type` (`utf8`), `class` (`utf8`), `reward`,
//! `rbr_reward`, `base_reward` (`float64`). Classes: `id`, `response_type`, `class`, and
//! `class_probs` as `struct<CLASS: float64, …>` in the policy's class order.
//!
//! Selections ([`SelectionRow`]): `group` (`utf8`), `ids`, `reward_pick`, `argmax_pick`
//! (`list<uint64>` or `list<utf8>`), `rewards` (`list<float64>`, one per id), as the JSONL
//! lines hold them.
//!
//! Aggregated labels ([`LabelRow`]): `item` (`utf8`), `label` (`utf8`) and one `float64` column
//! `p_LABEL` per label of the domain, in its order: the CSV's columns, so
//! `pd.read_parquet` gives the frame `pd.read_csv` gives (with the item always text).

use std::path::Path;
use std::sync::Arc;

use arbiter_core::SampleId;
use arbiter_rbr::pipeline::{ClassRow, ScoreRow};
use arrow_array::builder::{Float64Builder, ListBuilder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, SchemaRef};

use crate::ColumnarError;
use crate::Table;
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

/// One `rbr select` line: a group of alternative completions and the picks among them.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionRow {
    /// The group's key (the prompt, category or metadata value).
    pub group: String,
    /// The completions' ids, in file order.
    pub ids: Vec<SampleId>,
    /// Their rewards, one per id.
    pub rewards: Vec<f64>,
    /// The highest-reward ids (several on a tie).
    pub reward_pick: Vec<SampleId>,
    /// The grader-argmax ids (several on a tie).
    pub argmax_pick: Vec<SampleId>,
}

/// The list column of `lists` of ids (all of `kind`).
fn id_lists<'a>(
    lists: impl Iterator<Item = &'a [SampleId]>,
    kind: IdKind,
    path: &Path,
) -> Result<ArrayRef, ColumnarError> {
    let mismatch =
        |id: &SampleId| unwritable(path, format!("id {id} is not of the id column's type"));
    Ok(match kind {
        IdKind::Number => {
            let mut b = ListBuilder::new(UInt64Builder::new());
            for ids in lists {
                for id in ids {
                    match id {
                        SampleId::Index(n) => b.values().append_value(*n),
                        other => return Err(mismatch(other)),
                    }
                }
                b.append(true);
            }
            Arc::new(b.finish())
        }
        IdKind::Text => {
            let mut b = ListBuilder::new(StringBuilder::new());
            for ids in lists {
                for id in ids {
                    match id {
                        SampleId::Name(s) => b.values().append_value(s),
                        other => return Err(mismatch(other)),
                    }
                }
                b.append(true);
            }
            Arc::new(b.finish())
        }
    })
}

/// Selection lines as a schema and batches; every id of the file is of one kind.
pub fn selections_to_batches(rows: &[SelectionRow], path: &Path) -> Result<Table, ColumnarError> {
    let kind = IdKind::of_rows(rows.iter().flat_map(|r| &r.ids), path)?;
    if let Some(r) = rows.iter().find(|r| r.rewards.len() != r.ids.len()) {
        return Err(unwritable(
            path,
            format!(
                "group {:?}: {} rewards for {} ids",
                r.group,
                r.rewards.len(),
                r.ids.len()
            ),
        ));
    }
    let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, true)));
    let schema = crate::schema(vec![
        Field::new("group", DataType::Utf8, false),
        Field::new("ids", list(kind.data_type()), false),
        Field::new("rewards", list(DataType::Float64), false),
        Field::new("reward_pick", list(kind.data_type()), false),
        Field::new("argmax_pick", list(kind.data_type()), false),
    ]);
    let mut batches = Vec::new();
    for c in chunks(rows, |r| r.group.len()) {
        let mut rewards = ListBuilder::new(Float64Builder::new());
        for r in c {
            rewards.values().append_slice(&r.rewards);
            rewards.append(true);
        }
        let columns = vec![
            strings(c.iter().map(|r| r.group.as_str())),
            id_lists(c.iter().map(|r| r.ids.as_slice()), kind, path)?,
            Arc::new(rewards.finish()) as ArrayRef,
            id_lists(c.iter().map(|r| r.reward_pick.as_slice()), kind, path)?,
            id_lists(c.iter().map(|r| r.argmax_pick.as_slice()), kind, path)?,
        ];
        batches
            .push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| unwritable(path, e))?);
    }
    Ok((schema, batches))
}

/// One aggregated item: its label and the posterior over the domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelRow<'a> {
    /// The item's id.
    pub item: &'a str,
    /// The aggregated label.
    pub label: &'a str,
    /// P(label) for each label of the domain, in its order.
    pub posterior: &'a [f64],
}

/// Aggregated labels over the label `domain` as a schema and batches.
pub fn labels_to_batches(
    domain: &[String],
    rows: &[LabelRow<'_>],
    path: &Path,
) -> Result<Table, ColumnarError> {
    if let Some(r) = rows.iter().find(|r| r.posterior.len() != domain.len()) {
        return Err(unwritable(
            path,
            format!(
                "item {:?}: {} probabilities for {} labels",
                r.item,
                r.posterior.len(),
                domain.len()
            ),
        ));
    }
    let mut fields = vec![
        Field::new("item", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
    ];
    fields.extend(
        domain
            .iter()
            .map(|l| Field::new(format!("p_{l}"), DataType::Float64, false)),
    );
    let schema = crate::schema(fields);
    let mut batches = Vec::new();
    for c in chunks(rows, |r| r.item.len() + r.label.len()) {
        let mut columns = vec![
            strings(c.iter().map(|r| r.item)),
            strings(c.iter().map(|r| r.label)),
        ];
        columns.extend((0..domain.len()).map(|k| floats(c.iter().map(|r| r.posterior[k]))));
        batches
            .push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| unwritable(path, e))?);
    }
    Ok((schema, batches))
}

/// Raters' skills (`aggregate --skills`) as a schema and batches: `rater` (text) and `skill`
/// (float64), one row per rater that has a skill, as the CSV `rater,skill` holds them.
pub fn skills_to_batches(rows: &[(&str, f64)], path: &Path) -> Result<Table, ColumnarError> {
    let schema = crate::schema(vec![
        Field::new("rater", DataType::Utf8, false),
        Field::new("skill", DataType::Float64, false),
    ]);
    let mut batches = Vec::new();
    for c in chunks(rows, |r| r.0.len()) {
        let columns = vec![
            strings(c.iter().map(|r| r.0)),
            floats(c.iter().map(|r| r.1)),
        ];
        batches
            .push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| unwritable(path, e))?);
    }
    Ok((schema, batches))
}

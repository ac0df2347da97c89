//! An eval run's results (`samples.jsonl` of a run directory) as Arrow rows, for
//! `arbiter eval export`.
//!
//! | column | type | notes |
//! |---|---|---|
//! | `sample_id` | `utf8` | the item's key (`ID`, or `ID@TECHNIQUE` under a jailbreak) |
//! | `epoch` | `uint32` | 0-based |
//! | `status` | `utf8` | `ok` or `error` |
//! | `technique` | `utf8`, nullable | from the request |
//! | `category` | `utf8`, nullable | the sample's category, from the request |
//! | `response` | `utf8`, nullable | the model's reply |
//! | `prompt_tokens`, `completion_tokens` | `uint64` | |
//! | `cache_hit` | `bool` | |
//! | `error` | `utf8`, nullable | what failed, on `error` rows |
//! | `scores` | `utf8`, nullable | the scorer's output as JSON text |
//! | `request` | `utf8` | the request sent as JSON text |
//!
//! `scores` and `request` are JSON text, as samples' `metadata` is: their shape depends on the
//! suite and the scorer (a grader's propositions, a judge's grade, a choice), which no one
//! struct type holds; `json.loads` or polars' `str.json_decode` opens them.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, StringBuilder, UInt32Builder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field};
use serde_json::Value;

use crate::samples::chunks;
use crate::{ColumnarError, Table};

/// One (sample, epoch) of a run: its latest log line, in columns.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// The item's key.
    pub sample_id: String,
    /// Epoch (0-based).
    pub epoch: u32,
    /// `ok` or `error`.
    pub status: String,
    /// The jailbreak technique, when the request names one.
    pub technique: Option<String>,
    /// The sample's category, when the request names one.
    pub category: Option<String>,
    /// The model's reply.
    pub response: Option<String>,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Whether the reply came from the cache.
    pub cache_hit: bool,
    /// What failed.
    pub error: Option<String>,
    /// The scorer's output (null when there is none).
    pub scores: Value,
    /// The request sent.
    pub request: Value,
}

/// Run rows as a schema and batches.
pub fn to_batches(rows: &[RunRow], path: &Path) -> Result<Table, ColumnarError> {
    let schema = crate::schema(vec![
        Field::new("sample_id", DataType::Utf8, false),
        Field::new("epoch", DataType::UInt32, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("technique", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("response", DataType::Utf8, true),
        Field::new("prompt_tokens", DataType::UInt64, false),
        Field::new("completion_tokens", DataType::UInt64, false),
        Field::new("cache_hit", DataType::Boolean, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("scores", DataType::Utf8, true),
        Field::new("request", DataType::Utf8, false),
    ]);
    let size = |r: &RunRow| r.response.as_ref().map_or(0, String::len) + 1024;
    let mut batches = Vec::new();
    for c in chunks(rows, size) {
        let text = |f: &dyn Fn(&RunRow) -> Option<String>| -> ArrayRef {
            let mut b = StringBuilder::new();
            for r in c {
                b.append_option(f(r));
            }
            Arc::new(b.finish())
        };
        let mut epoch = UInt32Builder::new();
        let mut prompt_tokens = UInt64Builder::new();
        let mut completion_tokens = UInt64Builder::new();
        let mut cache_hit = BooleanBuilder::new();
        for r in c {
            epoch.append_value(r.epoch);
            prompt_tokens.append_value(r.prompt_tokens);
            completion_tokens.append_value(r.completion_tokens);
            cache_hit.append_value(r.cache_hit);
        }
        let columns: Vec<ArrayRef> = vec![
            text(&|r| Some(r.sample_id.clone())),
            Arc::new(epoch.finish()),
            text(&|r| Some(r.status.clone())),
            text(&|r| r.technique.clone()),
            text(&|r| r.category.clone()),
            text(&|r| r.response.clone()),
            Arc::new(prompt_tokens.finish()),
            Arc::new(completion_tokens.finish()),
            Arc::new(cache_hit.finish()),
            text(&|r| r.error.clone()),
            text(&|r| (!r.scores.is_null()).then(|| r.scores.to_string())),
            text(&|r| Some(r.request.to_string())),
        ];
        batches.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
            ColumnarError::Unwritable {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?);
    }
    Ok((schema, batches))
}

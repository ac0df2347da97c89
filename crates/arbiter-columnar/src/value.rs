//! One Arrow cell as JSON, so a Parquet row can be checked by the same `from_value` parser as
//! a JSONL line (the one place samples and grades are validated); [`rows`] does it for every
//! row of a file whose records have no schema of their own here (eval datasets).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, OffsetSizeTrait};
use arrow_schema::DataType;
use serde_json::{Map, Number, Value};

#[cfg(feature = "parquet")]
use crate::ColumnarError;
#[cfg(feature = "parquet")]
use crate::samples::{Row, objects};

/// Every row of the Parquet file `path` as the JSON object a JSONL line would be: a null cell,
/// or a null field of a struct, is an absent key (a struct column holds every field any row
/// has, so the nulls are pyarrow's filling, not values). The error is for the file as a whole.
#[cfg(feature = "parquet")]
pub fn rows(path: &std::path::Path) -> Result<Vec<Row<Map<String, Value>>>, ColumnarError> {
    Ok(records(path)?.rows)
}

/// A file's rows as [`rows`] reads them, with the names of its columns: a reader of a tabular
/// format (a CSV's columns as Parquet) tells a column the file lacks from a null cell, which
/// the row objects alone cannot.
#[cfg(feature = "parquet")]
#[derive(Debug)]
pub struct Records {
    /// The file's top-level column names, in schema order.
    pub columns: Vec<String>,
    /// Every row, as [`rows`] gives it.
    pub rows: Vec<Row<Map<String, Value>>>,
}

/// [`rows`] with the file's column names.
#[cfg(feature = "parquet")]
pub fn records(path: &std::path::Path) -> Result<Records, ColumnarError> {
    let batches = crate::file::read(path, None)?;
    let locate = |row| batches.locate(row);
    let rows = objects(&batches.batches, &locate, Missing::Null, |_, v| {
        Ok(without_null_fields(v))
    });
    let columns = batches
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Ok(Records { columns, rows })
}

#[cfg(feature = "parquet")]
fn without_null_fields(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_null_fields(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_null_fields).collect()),
        v => v,
    }
}

/// How a missing value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// As a JSON line would hold it: a null is `null` wherever it is, and a NaN is an error
    /// (JSON has no NaN). The CLI's file readers.
    Null,
    /// As a Python dict of the same row would be sent (arbiter-py drops `None` and NaN from
    /// every dict before writing JSON): NaN is missing too, and a missing struct field or map
    /// entry is left out of its object, so a struct that pandas or polars widened to the
    /// union of its rows' keys reads back as each row's own keys.
    LeftOut,
}

/// The JSON value of row `i` of `array`: null for a null cell; numbers, strings and booleans
/// as themselves; lists as arrays; structs and maps (string keys) as objects. A float that is
/// not finite, or a type JSON has no value for (binary, dates, decimals), is an error in words.
pub fn cell(array: &dyn Array, i: usize) -> Result<Value, String> {
    cell_with(array, i, Missing::Null)
}

/// [`cell`], reading missing values as `missing` says (at any depth).
pub fn cell_with(array: &dyn Array, i: usize, missing: Missing) -> Result<Value, String> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float32 => float(
            f64::from(array.as_primitive::<Float32Type>().value(i)),
            missing,
        )?,
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i), missing)?,
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(i).to_string()),
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            let keys = dict.keys();
            let key = key_at(keys, i).ok_or("a dictionary key is out of range")?;
            if key >= dict.values().len() {
                return Err("a dictionary key is out of range".into());
            }
            cell_with(dict.values().as_ref(), key, missing)?
        }
        DataType::List(_) => list::<i32>(array, i, missing)?,
        DataType::LargeList(_) => list::<i64>(array, i, missing)?,
        DataType::FixedSizeList(_, _) => {
            let values = array.as_fixed_size_list().value(i);
            items(values.as_ref(), missing)?
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut map = Map::with_capacity(fields.len());
            for (field, column) in fields.iter().zip(s.columns()) {
                let v = cell_with(column.as_ref(), i, missing)
                    .map_err(|e| format!("{}: {e}", field.name()))?;
                if !(v.is_null() && missing == Missing::LeftOut) {
                    map.insert(field.name().clone(), v);
                }
            }
            Value::Object(map)
        }
        DataType::Map(_, _) => {
            let m = array.as_map();
            let entries = m.value(i);
            let keys = entries.column(0);
            let values = entries.column(1);
            let mut map = Map::with_capacity(entries.len());
            for j in 0..entries.len() {
                let key = match cell_with(keys.as_ref(), j, missing)? {
                    Value::String(s) => s,
                    other => return Err(format!("map key {other} is not a string")),
                };
                let v =
                    cell_with(values.as_ref(), j, missing).map_err(|e| format!("{key}: {e}"))?;
                if !(v.is_null() && missing == Missing::LeftOut) {
                    map.insert(key, v);
                }
            }
            Value::Object(map)
        }
        other => return Err(format!("Arrow type {other} has no JSON value")),
    })
}

fn float(x: f64, missing: Missing) -> Result<Value, String> {
    if x.is_nan() && missing == Missing::LeftOut {
        return Ok(Value::Null);
    }
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| format!("{x} is not a finite number"))
}

fn list<O: OffsetSizeTrait>(
    array: &dyn Array,
    i: usize,
    missing: Missing,
) -> Result<Value, String> {
    items(array.as_list::<O>().value(i).as_ref(), missing)
}

fn items(values: &dyn Array, missing: Missing) -> Result<Value, String> {
    (0..values.len())
        .map(|j| cell_with(values, j, missing).map_err(|e| format!("[{j}]: {e}")))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The dictionary key of row `i`, whatever the key type (`None` for a negative key).
pub(crate) fn key_at(keys: &dyn Array, i: usize) -> Option<usize> {
    let k: i128 = match keys.data_type() {
        DataType::Int8 => keys.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => keys.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => keys.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => keys.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => keys.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => keys.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => keys.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => keys.as_primitive::<UInt64Type>().value(i).into(),
        _ => return None,
    };
    usize::try_from(k).ok()
}

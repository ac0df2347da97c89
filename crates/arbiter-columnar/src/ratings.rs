//! A long ratings table (one rating per row) read from Parquet column by column into a
//! [`RatingsBuilder`], without going through text files.
//!
//! The item, rater, label and group columns may be `utf8`, `large_utf8`, `utf8_view`, a
//! dictionary of any of these (what pandas' categoricals and polars' `Categorical` write),
//! any integer type, `float32`/`float64` or `bool`. Each value becomes the text the JSONL
//! reader gives the same JSON value: integers in decimal, `float64` as JSON writes it (`0.5`,
//! `1.0`; `float32` by its shortest text), booleans `true`/`false`. Values are trimmed as the
//! CSV reader trims them. A null or empty id or label is a bad row, reported with its row and
//! column and left out; a null or empty group value is a missing value.

use std::path::Path;

use arbiter_ratings::{Columns, Loaded, Options, Problem};
use arbiter_stats::RatingsBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use std::fmt::Write as _;

use crate::ColumnarError;
use crate::file;

/// How to turn one column's cells into text.
enum Text<'a> {
    Utf8(&'a arrow_array::StringArray),
    LargeUtf8(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
    Bool(&'a arrow_array::BooleanArray),
    /// Any integer or float column, formatted by type.
    Number(&'a dyn Array),
    /// Keys (normalised to indices; `None` for a null key) into a column of values.
    Dict(Vec<Option<usize>>, Box<Text<'a>>),
}

impl<'a> Text<'a> {
    fn new(array: &'a dyn Array) -> Result<Text<'a>, String> {
        Ok(match array.data_type() {
            DataType::Utf8 => Text::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Text::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Text::View(array.as_string_view()),
            DataType::Boolean => Text::Bool(array.as_boolean()),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64 => Text::Number(array),
            DataType::Dictionary(_, _) => {
                let dict = array.as_any_dictionary();
                let n_values = dict.values().len();
                let keys = (0..array.len())
                    .map(|i| {
                        if dict.keys().is_null(i) {
                            return Ok(None);
                        }
                        match crate::value::key_at(dict.keys(), i) {
                            Some(k) if k < n_values => Ok(Some(k)),
                            _ => Err(format!("row {i}: dictionary key out of range")),
                        }
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Text::Dict(keys, Box::new(Text::new(dict.values().as_ref())?))
            }
            other => {
                return Err(format!(
                    "type {other} cannot hold ids or labels (strings, dictionaries, integers, floats or booleans)"
                ));
            }
        })
    }

    /// The text of row `i`; `None` for null. Numbers are formatted into `buf`.
    fn get<'s>(&'s self, i: usize, buf: &'s mut String) -> Result<Option<&'s str>, String> {
        Ok(match self {
            Text::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            Text::LargeUtf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            Text::View(a) => (!a.is_null(i)).then(|| a.value(i)),
            Text::Bool(a) => (!a.is_null(i)).then(|| if a.value(i) { "true" } else { "false" }),
            Text::Number(a) => {
                if a.is_null(i) {
                    return Ok(None);
                }
                buf.clear();
                number(*a, i, buf)?;
                Some(buf.as_str())
            }
            Text::Dict(keys, values) => match keys[i] {
                None => None,
                Some(k) => values.get(k, buf)?,
            },
        })
    }
}

/// Decimal text of an integer, digit by digit: the formatting machinery of `write!` cost
/// about as much as the rest of reading an integer id column.
fn push_int(buf: &mut String, v: i128) {
    if v < 0 {
        buf.push('-');
    }
    let mut digits = [0u8; 40];
    let mut n = v.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    buf.extend(digits[..len].iter().rev().map(|d| char::from(b'0' + d)));
}

/// Row `i` of a numeric column as JSON would write it.
fn number(a: &dyn Array, i: usize, buf: &mut String) -> Result<(), String> {
    let int = |v: i128, buf: &mut String| {
        push_int(buf, v);
        Ok(())
    };
    let _ = match a.data_type() {
        DataType::Int8 => int(a.as_primitive::<Int8Type>().value(i).into(), buf),
        DataType::Int16 => int(a.as_primitive::<Int16Type>().value(i).into(), buf),
        DataType::Int32 => int(a.as_primitive::<Int32Type>().value(i).into(), buf),
        DataType::Int64 => int(a.as_primitive::<Int64Type>().value(i).into(), buf),
        DataType::UInt8 => int(a.as_primitive::<UInt8Type>().value(i).into(), buf),
        DataType::UInt16 => int(a.as_primitive::<UInt16Type>().value(i).into(), buf),
        DataType::UInt32 => int(a.as_primitive::<UInt32Type>().value(i).into(), buf),
        DataType::UInt64 => int(a.as_primitive::<UInt64Type>().value(i).into(), buf),
        DataType::Float64 => {
            let x = a.as_primitive::<Float64Type>().value(i);
            let n = serde_json::Number::from_f64(x)
                .ok_or_else(|| format!("{x} is not a finite number"))?;
            write!(buf, "{n}")
        }
        DataType::Float32 => {
            let x = a.as_primitive::<Float32Type>().value(i);
            if !x.is_finite() {
                return Err(format!("{x} is not a finite number"));
            }
            // f32's own shortest digits (0.1, not 0.10000000149011612), with JSON's `.0`.
            write!(buf, "{x}").and_then(|()| {
                if buf.contains(['.', 'e']) {
                    Ok(())
                } else {
                    buf.write_str(".0")
                }
            })
        }
        other => return Err(format!("type {other} is not a number")),
    };
    Ok(())
}

/// Read the ratings of `path` with the column mapping and options of the text readers.
pub fn read(path: &Path, columns: &Columns, options: &Options) -> Result<Loaded, ColumnarError> {
    let mut wanted: Vec<&str> = vec![&columns.item, &columns.rater, &columns.label];
    wanted.extend(columns.groups.iter().map(String::as_str));
    let mut distinct = wanted.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let batches = file::read(path, Some(&distinct))?;
    let mut builder = RatingsBuilder::new(options.domain.clone(), columns.groups.clone());
    let mut problems = Vec::new();
    let mut first_row = 0;
    for batch in &batches.batches {
        read_batch(
            batch,
            &wanted,
            first_row,
            &batches,
            &mut builder,
            &mut problems,
        )?;
        first_row += batch.num_rows();
    }
    let ratings = builder
        .build(options.duplicates)
        .map_err(|cause| ColumnarError::Table {
            path: path.to_path_buf(),
            cause,
        })?;
    Ok(Loaded { ratings, problems })
}

fn read_batch(
    batch: &RecordBatch,
    wanted: &[&str],
    first_row: usize,
    batches: &file::Batches,
    builder: &mut RatingsBuilder,
    problems: &mut Vec<Problem>,
) -> Result<(), ColumnarError> {
    let path = &batches.path;
    let texts = wanted
        .iter()
        .map(|name| {
            let column =
                batch
                    .column_by_name(name)
                    .ok_or_else(|| ColumnarError::MissingColumn {
                        path: path.clone(),
                        column: name.to_string(),
                        available: String::new(),
                    })?;
            Text::new(column.as_ref()).map_err(|message| ColumnarError::ColumnType {
                path: path.clone(),
                column: name.to_string(),
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n_groups = wanted.len() - 3;
    let mut bufs = vec![String::new(); wanted.len()];
    let mut problem = |row: usize, field: &str, message: String| {
        problems.push(Problem {
            file: path.clone(),
            location: batches.locate(row),
            field: Some(field.to_string()),
            message,
        });
    };
    // One pass per row without allocating when there are no group columns (the common case):
    // the three id/label texts live in their own buffers.
    let (ids, group_texts) = texts.split_at(3);
    let (id_bufs, group_bufs) = bufs.split_at_mut(3);
    let [item_buf, rater_buf, label_buf] = id_bufs else {
        unreachable!("three id and label columns")
    };
    'rows: for i in 0..batch.num_rows() {
        let row = first_row + i;
        let item = ids[0].get(i, item_buf);
        let rater = ids[1].get(i, rater_buf);
        let label = ids[2].get(i, label_buf);
        let mut id_values = [None; 3];
        for (k, v) in [item, rater, label].into_iter().enumerate() {
            match v {
                Ok(Some(v)) if !v.trim().is_empty() => id_values[k] = Some(v.trim()),
                Ok(_) => {
                    problem(row, wanted[k], "empty value".into());
                    continue 'rows;
                }
                Err(message) => {
                    problem(row, wanted[k], message);
                    continue 'rows;
                }
            }
        }
        let mut groups: Vec<Option<&str>> = Vec::with_capacity(n_groups);
        for ((text, buf), name) in group_texts
            .iter()
            .zip(group_bufs.iter_mut())
            .zip(&wanted[3..])
        {
            match text.get(i, buf) {
                Ok(v) => groups.push(v.map(str::trim).filter(|s| !s.is_empty())),
                Err(message) => {
                    problem(row, name, message);
                    continue 'rows;
                }
            }
        }
        let [Some(item), Some(rater), Some(label)] = id_values else {
            unreachable!("checked above")
        };
        if let Err(e) = builder.push(item, rater, label, &groups) {
            problem(row, wanted[2], e.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// Digit by digit equals Rust's own decimal text, at the ends of every type too.
        #[test]
        fn push_int_equals_display(v in prop_oneof![
            any::<i64>().prop_map(i128::from),
            any::<u64>().prop_map(i128::from),
            prop::sample::select(vec![0i128, -1, i64::MIN.into(), u64::MAX.into()]),
        ]) {
            let mut buf = String::new();
            super::push_int(&mut buf, v);
            prop_assert_eq!(buf, v.to_string());
        }
    }
}

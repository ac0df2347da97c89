//! Arrow columns in: any object with the Arrow PyCapsule interface (`__arrow_c_stream__` or
//! `__arrow_c_array__`: pyarrow Tables and RecordBatches, polars DataFrames, pandas through
//! pyarrow) is imported through arrow-rs's C Data Interface, without a Python object per cell.
//!
//! Each column is coded to dense ids in order of first appearance, the numbering
//! `arbiter_stats::RatingsBuilder` gives, and the table is built from those ids
//! (`Ratings::from_codes`). A dictionary-encoded column is interned once per dictionary entry,
//! not per row; text columns are interned by hashing each row's bytes in place; integers,
//! floats and booleans by their value. A cell's text is what Python's `str()` gives for the
//! same value (the list path's text), so both paths build the same table.

// Reading the capsules' C structs is the C Data Interface's contract, and cannot be done
// without `unsafe`; each block states what it relies on.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use arrow_array::cast::AsArray;
use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi};
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::DataType;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

/// Row code of a missing value (null, or NaN in a float column).
pub(crate) const NULL: u32 = u32::MAX;

/// How a column's texts map back to Python values in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `str`.
    Text,
    /// `int` (any Arrow integer type).
    Int,
    /// `float` (Arrow float16/32/64).
    Float,
    /// `bool`.
    Bool,
}

/// One column coded: per row an id into `names` (in order of first appearance) or [`NULL`].
#[derive(Debug)]
pub(crate) struct Coded {
    pub codes: Vec<u32>,
    pub names: Vec<String>,
    pub kind: Kind,
}

/// The record batches of an object exporting the Arrow PyCapsule interface. The GIL stays held:
/// importing moves no data, and a producer's callbacks may need it.
pub(crate) fn import(data: &Bound<'_, PyAny>) -> PyResult<Vec<RecordBatch>> {
    let err =
        |e: arrow_schema::ArrowError| crate::arbiter_error(format!("reading Arrow data: {e}"));
    if data.hasattr("__arrow_c_stream__")? {
        let capsule = data.call_method0("__arrow_c_stream__")?;
        let capsule = capsule.cast::<PyCapsule>()?;
        let ptr = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
        // SAFETY: a capsule named `arrow_array_stream` holds an `ArrowArrayStream` (the
        // PyCapsule interface's contract). `from_raw` moves the struct out and marks the
        // capsule's copy released, so the capsule's destructor does not release it again.
        let stream = unsafe { FFI_ArrowArrayStream::from_raw(ptr.as_ptr().cast()) };
        let reader = RecordBatchStreamReader::try_new(stream).map_err(err)?;
        return reader.collect::<Result<Vec<_>, _>>().map_err(err);
    }
    if data.hasattr("__arrow_c_array__")? {
        let pair = data.call_method0("__arrow_c_array__")?;
        let (schema, array): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
        let schema = schema
            .cast::<PyCapsule>()?
            .pointer_checked(Some(c"arrow_schema"))?;
        let array = array
            .cast::<PyCapsule>()?
            .pointer_checked(Some(c"arrow_array"))?;
        // SAFETY: capsules named `arrow_schema` / `arrow_array` hold an `ArrowSchema` and an
        // `ArrowArray` describing the same data. The array is moved out (the capsule's copy
        // is marked released); the schema is only borrowed and stays owned by its capsule,
        // which lives until the end of this block.
        let data = unsafe {
            let array = FFI_ArrowArray::from_raw(array.as_ptr().cast());
            from_ffi(array, &*schema.as_ptr().cast::<FFI_ArrowSchema>())
        }
        .map_err(err)?;
        if !matches!(data.data_type(), DataType::Struct(_)) {
            return Err(crate::arbiter_error(format!(
                "expected a table (an Arrow struct array), got an array of type {}",
                data.data_type()
            )));
        }
        return Ok(vec![RecordBatch::from(StructArray::from(data))]);
    }
    Err(crate::arbiter_error(format!(
        "{} has neither __arrow_c_stream__ nor __arrow_c_array__",
        data.get_type().name()?
    )))
}

/// The chunks of column `name` in `batches`, or an error listing the columns there are.
pub(crate) fn column(batches: &[RecordBatch], name: &str) -> Result<Vec<ArrayRef>, String> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let schema = first.schema();
    let Ok(at) = schema.index_of(name) else {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(format!("no column `{name}`; the columns are {names:?}"));
    };
    Ok(batches.iter().map(|b| b.column(at).clone()).collect())
}

/// Fx-style multiply-rotate hashing: ids are interned from the caller's own data, so hash
/// flooding is no concern, and SipHash would be most of the time spent coding a text column.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // Mix the high bits down: the table indexes by the low bits.
        let h = self.0.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 32)
    }
}

impl Fx {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// Keys → dense ids in order of first appearance.
struct Interner<K> {
    ids: HashMap<K, u32, BuildHasherDefault<Fx>>,
    keys: Vec<K>,
}

impl<K: Hash + Eq + Clone> Interner<K> {
    fn new() -> Self {
        Interner {
            ids: HashMap::default(),
            keys: Vec::new(),
        }
    }

    #[inline]
    fn id(&mut self, key: K) -> u32 {
        let next = self.keys.len() as u32;
        let id = *self.ids.entry(key.clone()).or_insert(next);
        if id == next {
            self.keys.push(key);
        }
        id
    }
}

/// Python's `repr` of a float (`1.0`, `1e-05`, `1e+16`; NaN is never asked for): the text the
/// list path takes from `str(x)`, so that both paths name a float label the same way. Checked
/// against Python itself in tests/test_arrow.py.
pub(crate) fn python_float(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    // `{:e}` gives the shortest digits that round-trip, as Python's repr does.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{text}")
    } else {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs())
    }
}

fn unsupported(name: &str, dt: &DataType) -> String {
    format!(
        "column `{name}` has Arrow type {dt}; expected text (utf8, large_utf8, utf8_view), \
         integers, floats, booleans or a dictionary of those"
    )
}

/// Code every row of a column given as chunks.
pub(crate) fn code_column(name: &str, chunks: &[ArrayRef]) -> Result<Coded, String> {
    let n: usize = chunks.iter().map(|c| c.len()).sum();
    let mut codes = Vec::with_capacity(n);
    let Some(first) = chunks.first() else {
        return Ok(Coded {
            codes,
            names: Vec::new(),
            kind: Kind::Text,
        });
    };
    let dt = first.data_type().clone();
    if let Some(c) = chunks.iter().find(|c| c.data_type() != &dt) {
        return Err(format!(
            "column `{name}` changes type from {dt} to {} between chunks",
            c.data_type()
        ));
    }
    match &dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let mut interner = Interner::<&str>::new();
            for c in chunks {
                push_codes(
                    &mut codes,
                    c.as_ref(),
                    |i| text_at(c.as_ref(), i),
                    &mut interner,
                );
            }
            let names = interner.keys.iter().map(|s| s.to_string()).collect();
            Ok(Coded {
                codes,
                names,
                kind: Kind::Text,
            })
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let mut interner = Interner::<i128>::new();
            for c in chunks {
                let c = c.as_ref();
                macro_rules! ints {
                    ($t:ty) => {{
                        let v = c.as_primitive::<$t>().values();
                        push_codes(&mut codes, c, |i| Some(i128::from(v[i])), &mut interner);
                    }};
                }
                match c.data_type() {
                    DataType::Int8 => ints!(Int8Type),
                    DataType::Int16 => ints!(Int16Type),
                    DataType::Int32 => ints!(Int32Type),
                    DataType::Int64 => ints!(Int64Type),
                    DataType::UInt8 => ints!(UInt8Type),
                    DataType::UInt16 => ints!(UInt16Type),
                    DataType::UInt32 => ints!(UInt32Type),
                    _ => ints!(UInt64Type),
                }
            }
            let names = interner.keys.iter().map(|v| v.to_string()).collect();
            Ok(Coded {
                codes,
                names,
                kind: Kind::Int,
            })
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let mut interner = Interner::<u64>::new();
            for c in chunks {
                let c = c.as_ref();
                // NaN is a missing value, as in the list path (pandas' missing float).
                let bits = |x: f64| (!x.is_nan()).then_some(x.to_bits());
                match c.data_type() {
                    DataType::Float16 => {
                        let v = c.as_primitive::<Float16Type>().values();
                        push_codes(&mut codes, c, |i| bits(v[i].to_f64()), &mut interner);
                    }
                    DataType::Float32 => {
                        let v = c.as_primitive::<Float32Type>().values();
                        push_codes(&mut codes, c, |i| bits(f64::from(v[i])), &mut interner);
                    }
                    _ => {
                        let v = c.as_primitive::<Float64Type>().values();
                        push_codes(&mut codes, c, |i| bits(v[i]), &mut interner);
                    }
                }
            }
            let names = interner
                .keys
                .iter()
                .map(|&b| python_float(f64::from_bits(b)))
                .collect();
            Ok(Coded {
                codes,
                names,
                kind: Kind::Float,
            })
        }
        DataType::Boolean => {
            let mut interner = Interner::<bool>::new();
            for c in chunks {
                let v = c.as_boolean();
                push_codes(&mut codes, c.as_ref(), |i| Some(v.value(i)), &mut interner);
            }
            let names = interner
                .keys
                .iter()
                .map(|&b| if b { "True" } else { "False" }.to_string())
                .collect();
            Ok(Coded {
                codes,
                names,
                kind: Kind::Bool,
            })
        }
        DataType::Null => Ok(Coded {
            codes: vec![NULL; n],
            names: Vec::new(),
            kind: Kind::Text,
        }),
        DataType::Dictionary(_, values) => code_dictionary(name, chunks, values, codes),
        other => Err(unsupported(name, other)),
    }
}

/// The text of row `i` of a text array (the caller checked the type).
#[inline]
fn text_at(a: &dyn Array, i: usize) -> Option<&str> {
    Some(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i),
        _ => a.as_string_view().value(i),
    })
}

/// Append the code of every row of `a`: `key(i)` is row i's key (`None` = missing), read only
/// for rows that are not null.
#[inline]
fn push_codes<K: Hash + Eq + Clone>(
    codes: &mut Vec<u32>,
    a: &dyn Array,
    key: impl Fn(usize) -> Option<K>,
    interner: &mut Interner<K>,
) {
    match a.logical_nulls() {
        Some(nulls) => codes.extend((0..a.len()).map(|i| {
            if nulls.is_null(i) {
                NULL
            } else {
                key(i).map_or(NULL, |k| interner.id(k))
            }
        })),
        None => codes.extend((0..a.len()).map(|i| key(i).map_or(NULL, |k| interner.id(k)))),
    }
}

/// A dictionary column: each chunk's dictionary is coded once, and its entries get ids the
/// first time a row uses them, so the numbering is by first appearance in the rows.
fn code_dictionary(
    name: &str,
    chunks: &[ArrayRef],
    values: &DataType,
    mut codes: Vec<u32>,
) -> Result<Coded, String> {
    let mut global = Interner::<String>::new();
    let mut kind = Kind::Text;
    for c in chunks {
        let dict = c
            .as_any_dictionary_opt()
            .ok_or_else(|| unsupported(name, c.data_type()))?;
        let entries = code_column(name, std::slice::from_ref(dict.values())).map_err(|_| {
            unsupported(
                name,
                &DataType::Dictionary(Box::new(DataType::Int32), Box::new(values.clone())),
            )
        })?;
        kind = entries.kind;
        // Per dictionary entry: its id in this column, assigned on first use.
        let mut ids = vec![NULL; entries.names.len()];
        let keys = dict.normalized_keys();
        let key_nulls = dict.keys().logical_nulls();
        for (i, &k) in keys.iter().enumerate() {
            let entry = if key_nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                NULL
            } else {
                entries.codes[k]
            };
            if entry == NULL {
                codes.push(NULL);
                continue;
            }
            let id = &mut ids[entry as usize];
            if *id == NULL {
                *id = global.id(entries.names[entry as usize].clone());
            }
            codes.push(*id);
        }
    }
    Ok(Coded {
        codes,
        names: global.keys,
        kind,
    })
}

//! Arrow columns in: any object with the Arrow PyCapsule interface (`__arrow_c_stream__` or
//! `__arrow_c_array__`: pyarrow Tables and RecordBatches, polars DataFrames, pandas through
//! pyarrow) is imported through arrow-rs's C Data Interface, without a Python object per cell.
//!
//! Every column is coded to dense ids in order of first appearance, the numbering
//! `arbiter_stats::RatingsBuilder` gives, and the table built from those ids
//! (`Ratings::from_codes`): a large text column split by hash between two threads
//! (`arbiter_stats::textcode`), a small one through one interner, a dictionary-encoded column
//! once per dictionary entry (its rows cost an array look-up), integers of a short range
//! through a table, other integers, floats and booleans by hashing their value. A cell's text
//! is what Python's `str()` gives for the same value (the list path's text), so every path
//! builds the same table.

// Reading the capsules' C structs is the C Data Interface's contract, and cannot be done
// without `unsafe`; each block states what it relies on.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash};

use arbiter_stats::FxHasher;

use arbiter_stats::Names;
use arbiter_stats::textcode::{TextColumn, code_texts, same_text, text_hash};
use arrow_array::cast::AsArray;
use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi};
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, LargeStringArray, RecordBatch, StructArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::DataType;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

/// Names going out as an Arrow column: `__arrow_c_array__` hands a large-string array to
/// pyarrow (or any consumer of the PyCapsule interface), which makes the Python strings in one
/// native pass. For the item index of a million-row table (hundreds of thousands of names) that
/// took under half the time of a `str` each through PyO3 and a pandas `Index` from the list.
#[pyclass(frozen, module = "arbiter_safety._native")]
pub(crate) struct NamesColumn {
    array: LargeStringArray,
}

impl NamesColumn {
    pub(crate) fn new(names: &Names) -> PyResult<Self> {
        let (text, ends) = names.parts();
        let offsets: Vec<i64> = std::iter::once(0)
            .chain(ends.iter().map(|&end| end as i64))
            .collect();
        let array = LargeStringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from(text.as_bytes()),
            None,
        )
        .map_err(|e| crate::arbiter_error(format!("names as an Arrow column: {e}")))?;
        Ok(NamesColumn { array })
    }
}

#[pymethods]
impl NamesColumn {
    /// The Arrow PyCapsule interface: fresh schema and array capsules on every call. A
    /// requested schema is not honoured (the protocol allows that); the column is large_string.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let _ = requested_schema;
        let schema = FFI_ArrowSchema::try_from(self.array.data_type())
            .map_err(|e| crate::arbiter_error(format!("exporting Arrow names: {e}")))?;
        // A consumer moves each struct out and marks the capsule's copy released; a capsule
        // dropped unread releases its own.
        Ok((
            PyCapsule::new_with_value(py, schema, c"arrow_schema")?,
            PyCapsule::new_with_value(
                py,
                FFI_ArrowArray::new(&self.array.to_data()),
                c"arrow_array",
            )?,
        ))
    }

    fn __len__(&self) -> usize {
        self.array.len()
    }
}

/// Row code of a missing value (null, or NaN in a float column), the one `textcode` gives.
pub(crate) const NULL: u32 = arbiter_stats::textcode::MISSING;

/// `$each!(T)` for the Arrow integer type `T` (`Int8Type` … `UInt64Type`, in scope at the call)
/// that `$dt` names, else `$other`: the one dispatch of every integer column and dictionary key.
macro_rules! by_int_type {
    ($dt:expr, $each:ident, $other:expr) => {
        match $dt {
            DataType::Int8 => $each!(Int8Type),
            DataType::Int16 => $each!(Int16Type),
            DataType::Int32 => $each!(Int32Type),
            DataType::Int64 => $each!(Int64Type),
            DataType::UInt8 => $each!(UInt8Type),
            DataType::UInt16 => $each!(UInt16Type),
            DataType::UInt32 => $each!(UInt32Type),
            DataType::UInt64 => $each!(UInt64Type),
            _ => $other,
        }
    };
}
pub(crate) use by_int_type;

/// Integer columns whose values span fewer than this many are coded through a table.
const SMALL_RANGE: i128 = 1 << 16;

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
    pub names: Names,
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

/// Keys → dense ids in order of first appearance.
struct Interner<K> {
    ids: HashMap<K, u32, BuildHasherDefault<FxHasher>>,
    keys: Vec<K>,
}

impl<K: Hash + Eq + Clone> Interner<K> {
    fn new() -> Self {
        Self::with_capacity(0)
    }

    fn with_capacity(n: usize) -> Self {
        Interner {
            ids: HashMap::with_capacity_and_hasher(n, BuildHasherDefault::default()),
            keys: Vec::with_capacity(n),
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

/// Text → dense ids in order of first appearance. Each slot of the open-addressing table holds
/// a name's id and 32 bits of its hash in 8 bytes, so the table for a dictionary of a few
/// hundred thousand names stays in cache, and a name's bytes are compared only when the hash
/// bits match: inserting distinct names (a dictionary's values) reads no other name. A
/// `HashMap<&str, u32>` took three times as long on 200,000 names.
pub(crate) struct TextInterner<'a> {
    slots: Vec<u64>,
    pub(crate) keys: Vec<&'a str>,
}

const FREE: u64 = u64::MAX;

impl<'a> TextInterner<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        TextInterner {
            slots: vec![FREE; (2 * n).next_power_of_two().max(16)],
            keys: Vec::with_capacity(n),
        }
    }

    #[inline]
    pub(crate) fn id(&mut self, s: &'a str) -> u32 {
        self.id_hashed(s, text_hash(s))
    }

    /// [`TextInterner::id`] of `s` whose [`text_hash`] is `h`.
    #[inline]
    pub(crate) fn id_hashed(&mut self, s: &'a str, h: u64) -> u32 {
        if 2 * (self.keys.len() + 1) > self.slots.len() {
            self.grow();
        }
        let tag = h >> 32;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == FREE {
                let id = self.keys.len() as u32;
                self.slots[i] = tag << 32 | u64::from(id);
                self.keys.push(s);
                return id;
            }
            if slot >> 32 == tag && same_text(self.keys[slot as u32 as usize], s) {
                return slot as u32;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let mut slots = vec![FREE; self.slots.len() * 2];
        let mask = slots.len() - 1;
        for (id, s) in self.keys.iter().enumerate() {
            let h = text_hash(s);
            let mut i = h as usize & mask;
            while slots[i] != FREE {
                i = (i + 1) & mask;
            }
            slots[i] = (h >> 32) << 32 | id as u64;
        }
        self.slots = slots;
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
    code_chunks(name, chunks, false)
}

/// [`code_column`]; `dictionary`: the chunks are a dictionary's values.
fn code_chunks(name: &str, chunks: &[ArrayRef], dictionary: bool) -> Result<Coded, String> {
    let n: usize = chunks.iter().map(|c| c.len()).sum();
    let mut codes = Vec::with_capacity(n);
    let Some(first) = chunks.first() else {
        return Ok(Coded {
            codes,
            names: Names::default(),
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
            if let Some((codes, names)) = code_texts(&TextChunks::new(chunks)) {
                return Ok(Coded {
                    codes,
                    names,
                    kind: Kind::Text,
                });
            }
            // A dictionary's values are usually distinct; other columns' names grow as found.
            let mut interner = TextInterner::with_capacity(if dictionary { n } else { 0 });
            for c in chunks {
                let a = c.as_ref();
                match a.data_type() {
                    DataType::Utf8 => {
                        let s = a.as_string::<i32>();
                        push_codes(&mut codes, a, |i| interner.id(s.value(i)));
                    }
                    DataType::LargeUtf8 => {
                        let s = a.as_string::<i64>();
                        push_codes(&mut codes, a, |i| interner.id(s.value(i)));
                    }
                    _ => {
                        let s = a.as_string_view();
                        push_codes(&mut codes, a, |i| interner.id(s.value(i)));
                    }
                }
            }
            let names = interner.keys.iter().collect();
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
                // Labels and small ids span a short range: a table indexed by value replaces
                // the hash lookup of each row.
                macro_rules! ints {
                    ($t:ty) => {{
                        let v = c.as_primitive::<$t>().values();
                        let (lo, hi) =
                            min_max(v).map_or((0, 0), |(lo, hi)| (i128::from(lo), i128::from(hi)));
                        if !v.is_empty() && hi - lo < SMALL_RANGE && c.logical_null_count() == 0 {
                            // Within the range, `x - lo` fits in an i64 whatever the type
                            // (and wraps the same way for both).
                            let (lo, span) = (lo as i64, (hi - lo + 1) as usize);
                            small_range_codes(
                                &mut codes,
                                v,
                                span,
                                |x| (x as i64).wrapping_sub(lo) as u32,
                                |x| interner.id(i128::from(x)),
                            );
                        } else if !v.is_empty() && hi - lo < SMALL_RANGE {
                            let mut table = vec![NULL; (hi - lo + 1) as usize];
                            push_codes(&mut codes, c, |i| {
                                let x = i128::from(v[i]);
                                let slot = &mut table[(x - lo) as usize];
                                if *slot == NULL {
                                    *slot = interner.id(x);
                                }
                                *slot
                            });
                        } else {
                            push_codes(&mut codes, c, |i| interner.id(i128::from(v[i])));
                        }
                    }};
                }
                // The outer match let only integer types in.
                by_int_type!(c.data_type(), ints, ints!(UInt64Type))
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
                let mut id = |x: f64| {
                    if x.is_nan() {
                        NULL
                    } else {
                        interner.id(x.to_bits())
                    }
                };
                match c.data_type() {
                    DataType::Float16 => {
                        let v = c.as_primitive::<Float16Type>().values();
                        push_codes(&mut codes, c, |i| id(v[i].to_f64()));
                    }
                    DataType::Float32 => {
                        let v = c.as_primitive::<Float32Type>().values();
                        push_codes(&mut codes, c, |i| id(f64::from(v[i])));
                    }
                    _ => {
                        let v = c.as_primitive::<Float64Type>().values();
                        push_codes(&mut codes, c, |i| id(v[i]));
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
                push_codes(&mut codes, c.as_ref(), |i| interner.id(v.value(i)));
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
            names: Names::default(),
            kind: Kind::Text,
        }),
        DataType::Dictionary(_, values) => code_dictionary(name, chunks, values, codes),
        other => Err(unsupported(name, other)),
    }
}

/// The least and greatest value, in one pass that the compiler vectorises (`iter().min()`,
/// which tracks a reference, is not: it took twice as long).
pub(crate) fn min_max<T: Ord + Copy>(v: &[T]) -> Option<(T, T)> {
    let first = *v.first()?;
    Some(
        v.iter()
            .fold((first, first), |(lo, hi), &x| (lo.min(x), hi.max(x))),
    )
}

/// Codes of a column of integers within `span` of its least value and without missing rows,
/// numbered by first appearance through `id`: each row's `offset` first (a loop the compiler
/// vectorises, where a lookup per row is not), then which offsets occur, their first rows in
/// order (labels all occur within the first few rows, so that scan stops early), and each
/// offset replaced by its id.
fn small_range_codes<T: Copy>(
    codes: &mut Vec<u32>,
    v: &[T],
    span: usize,
    offset: impl Fn(T) -> u32,
    mut id: impl FnMut(T) -> u32,
) {
    let start = codes.len();
    codes.extend(v.iter().map(|&x| offset(x)));
    let rows = &mut codes[start..];
    let mut present = vec![false; span];
    for &o in rows.iter() {
        present[o as usize] = true;
    }
    let distinct = present.iter().filter(|&&p| p).count();
    let mut table = vec![NULL; span];
    let mut found = 0;
    for (&o, &x) in rows.iter().zip(v) {
        if found == distinct {
            break;
        }
        let slot = &mut table[o as usize];
        if *slot == NULL {
            *slot = id(x);
            found += 1;
        }
    }
    for c in rows.iter_mut() {
        *c = table[*c as usize];
    }
}

/// Append the code of every row of `a`: `id(i)` for a row that is not null, read only for
/// those.
#[inline]
fn push_codes(codes: &mut Vec<u32>, a: &dyn Array, mut id: impl FnMut(usize) -> u32) {
    match a.logical_nulls() {
        Some(nulls) => {
            codes.extend((0..a.len()).map(|i| if nulls.is_null(i) { NULL } else { id(i) }))
        }
        None => codes.extend((0..a.len()).map(id)),
    }
}

/// A dictionary column: each chunk's dictionary is coded once, and its entries get ids the
/// first time a row uses them, so the numbering is by first appearance in the rows. With one
/// chunk no text is hashed; with several (which may have different dictionaries) an entry's
/// id is found by its text, once per entry.
fn code_dictionary(
    name: &str,
    chunks: &[ArrayRef],
    values: &DataType,
    mut codes: Vec<u32>,
) -> Result<Coded, String> {
    let bad = || {
        unsupported(
            name,
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(values.clone())),
        )
    };
    let mut entries = Vec::with_capacity(chunks.len());
    for c in chunks {
        let dict = c.as_any_dictionary_opt().ok_or_else(bad)?;
        entries
            .push(code_chunks(name, std::slice::from_ref(dict.values()), true).map_err(|_| bad())?);
    }
    let kind = entries.first().map_or(Kind::Text, |e| e.kind);
    let by_text_needed = chunks.len() > 1;
    // Names in order of first use, as (chunk, entry).
    let mut order: Vec<(usize, u32)> = Vec::new();
    let mut by_text = TextInterner::with_capacity(0);
    for (chunk, (c, coded)) in chunks.iter().zip(&entries).enumerate() {
        let dict = c.as_any_dictionary_opt().ok_or_else(bad)?;
        let nulls = dict.keys().logical_nulls();
        let mut ids = vec![NULL; coded.names.len()];
        let mut id_of = |i: usize, key: Option<usize>| -> u32 {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                return NULL;
            }
            let Some(&e) = key.and_then(|k| coded.codes.get(k)) else {
                return NULL;
            };
            if e == NULL {
                return NULL;
            }
            let id = &mut ids[e as usize];
            if *id == NULL {
                *id = if by_text_needed {
                    by_text.id(&coded.names[e as usize])
                } else {
                    order.len() as u32
                };
                if *id as usize == order.len() {
                    order.push((chunk, e));
                }
            }
            *id
        };
        macro_rules! keys {
            ($t:ty) => {{
                let k = dict.keys().as_primitive::<$t>().values();
                codes.extend(
                    k.iter()
                        .enumerate()
                        .map(|(i, &k)| id_of(i, usize::try_from(k).ok())),
                );
            }};
        }
        let keys_type = dict.keys().data_type();
        by_int_type!(keys_type, keys, return Err(unsupported(name, keys_type)))
    }
    let names = order
        .iter()
        .map(|&(chunk, e)| &entries[chunk].names[e as usize])
        .collect();
    Ok(Coded { codes, names, kind })
}

/// Whether a column of this type is text (not a dictionary of text).
pub(crate) fn is_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// One text array, downcast once.
pub(crate) enum TextArray<'a> {
    Utf8(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
}

impl<'a> TextArray<'a> {
    pub(crate) fn new(a: &'a dyn Array) -> Self {
        match a.data_type() {
            DataType::Utf8 => TextArray::Utf8(a.as_string::<i32>()),
            DataType::LargeUtf8 => TextArray::Large(a.as_string::<i64>()),
            _ => TextArray::View(a.as_string_view()),
        }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            TextArray::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            TextArray::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            TextArray::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// A text column's chunks as `arbiter_stats::textcode` reads them.
pub(crate) struct TextChunks<'a> {
    arrays: Vec<TextArray<'a>>,
    /// Row number of each chunk's first row, and the number of rows last.
    starts: Vec<usize>,
}

impl<'a> TextChunks<'a> {
    pub(crate) fn new(chunks: &'a [ArrayRef]) -> Self {
        let mut starts = vec![0];
        for c in chunks {
            starts.push(starts[starts.len() - 1] + c.len());
        }
        TextChunks {
            arrays: chunks.iter().map(|c| TextArray::new(c.as_ref())).collect(),
            starts,
        }
    }
}

/// `f(row, text)` for `rows` of a chunk whose first row is `start`, its texts read by `value`
/// (by the chunk's own index) and missing where `is_null` says so, asked only if `has_nulls`.
#[inline]
fn each_row<'s>(
    rows: std::ops::Range<usize>,
    start: usize,
    has_nulls: bool,
    is_null: impl Fn(usize) -> bool,
    value: impl Fn(usize) -> &'s str,
    f: &mut impl FnMut(usize, Option<&'s str>),
) {
    if has_nulls {
        for r in rows {
            let i = r - start;
            f(r, (!is_null(i)).then(|| value(i)));
        }
    } else {
        for r in rows {
            f(r, Some(value(r - start)));
        }
    }
}

impl TextColumn for TextChunks<'_> {
    fn len(&self) -> usize {
        self.starts[self.starts.len() - 1]
    }

    fn each<'s>(&'s self, rows: std::ops::Range<usize>, mut f: impl FnMut(usize, Option<&'s str>)) {
        for (c, t) in self.arrays.iter().enumerate() {
            let (start, end) = (self.starts[c], self.starts[c + 1]);
            let part = rows.start.max(start)..rows.end.min(end);
            // The array's kind and whether it has nulls are settled once per chunk, not per row
            // as `TextArray::get` settles them.
            macro_rules! rows {
                ($a:expr) => {
                    each_row(
                        part,
                        start,
                        $a.null_count() > 0,
                        |i| $a.is_null(i),
                        |i| $a.value(i),
                        &mut f,
                    )
                };
            }
            match t {
                TextArray::Utf8(a) => rows!(a),
                TextArray::Large(a) => rows!(a),
                TextArray::View(a) => rows!(a),
            }
        }
    }

    fn text(&self, row: usize) -> &str {
        let c = self.starts.partition_point(|&s| s <= row) - 1;
        self.arrays[c].get(row - self.starts[c]).unwrap_or_default()
    }
}

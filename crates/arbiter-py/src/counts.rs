//! Per-item label counts straight from Arrow columns: α's fast path when every row counts
//! (`duplicates="keep_all"`), where neither the raters nor the rows' order matter.
//!
//! α needs only how many times each label occurs on each item
//! (`arbiter_stats::alpha_from_label_counts`), so the rows are counted in one pass instead of
//! being built into a `Ratings` (interning every rater, ordering rows by item, counting
//! duplicates). Item ids here are any dense numbering, which those exact sums do not depend
//! on, so each thread numbers what it is given:
//!
//! - a text item column whose rows come in runs of an item (sampled at the start): each half
//!   of the rows is hashed on a thread (a row equal to the one before is not hashed again),
//!   then each of two threads interns and counts the rows whose hash falls on its side, so
//!   that the two threads' items are disjoint and their counts are simply concatenated, with
//!   no merge of two interners; the interner is asked a block of texts at a time, their slots
//!   loaded together (`TextInterner::touch`). Text items in scattered order go to the table;
//! - a dictionary column of one chunk: its dictionary's texts are numbered the same way (two
//!   threads by hash), then each half of the rows counted through that numbering;
//! - any other item column: coded as the general path codes it (`arrow::code_column`), then
//!   counted in two halves.
//!
//! Anything unusual (a missing value anywhere in the three columns, a rater column of an
//! unexpected type, a label outside an explicit domain, more than 64 labels) gives `None`, and
//! the caller builds the table as always, which reports the problem exactly as it would
//! without this path.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;

use crate::arrow::{self, NULL, TextArray, TextInterner, text_hash};

/// Rows from which the counting is split between two threads.
const TWO_THREADS_ROWS: usize = 1 << 16;

/// Label counts per item: `parts` are each `n_items × labels.len()`, summed per item.
pub(crate) struct LabelCounts {
    pub labels: Vec<String>,
    pub parts: Vec<Vec<u32>>,
}

/// The counts of `item` × `label` rows, or `None` where the general path must decide.
pub(crate) fn label_counts(
    item: &[ArrayRef],
    rater: &[ArrayRef],
    label: &[ArrayRef],
) -> Option<LabelCounts> {
    let text_items = item.first().is_some_and(|a| arrow::is_text(a.data_type()));
    if (text_items && !mostly_runs(item)) || !complete(rater) || !complete(item) {
        return None;
    }
    let labels = arrow::code_column("label", label).ok()?;
    if labels.codes.contains(&NULL) {
        return None;
    }
    let w = labels.names.len();
    let names: Vec<String> = labels.names.iter().map(str::to_string).collect();
    let codes = &labels.codes;
    let parts = match item.first().map(|a| a.data_type()) {
        None => vec![],
        Some(dt) if arrow::is_text(dt) => vec![text_counts(item, codes, w)],
        Some(DataType::Dictionary(_, values)) if item.len() == 1 && arrow::is_text(values) => {
            dictionary_counts(item[0].as_ref(), codes, w)?
        }
        Some(_) => {
            let items = arrow::code_column("item", item).ok()?;
            if items.codes.contains(&NULL) {
                return None;
            }
            let n_items = items.names.len();
            halves(codes.len(), |rows| {
                let mut counts = vec![0u32; n_items * w];
                for r in rows {
                    counts[items.codes[r] as usize * w + codes[r] as usize] += 1;
                }
                counts
            })
        }
    };
    Some(LabelCounts {
        labels: names,
        parts,
    })
}

/// Rows sampled by [`mostly_runs`].
const SAMPLE_ROWS: usize = 4096;

/// Whether at least half of the first [`SAMPLE_ROWS`] rows of a text column repeat the row
/// before, as when each item's rows come together. Text items in any other order go to the
/// table, whose interner (sorted batches) handles scattered names better than the hash
/// table here, whose key comparisons miss the cache on every row: on a million shuffled rows
/// this path took a quarter more CPU time than building the table.
fn mostly_runs(chunks: &[ArrayRef]) -> bool {
    let Some(first) = chunks.first() else {
        return true;
    };
    let t = TextArray::new(first.as_ref());
    let n = first.len().min(SAMPLE_ROWS);
    let repeats = (1..n)
        .filter(|&i| {
            t.get(i)
                .zip(t.get(i - 1))
                .is_some_and(|(a, b)| arrow::same_text(a, b))
        })
        .count();
    2 * repeats >= n.saturating_sub(1)
}

/// Whether no row of the column is missing and its type is one the general path reads
/// without question (text, integers, booleans, or a dictionary of text or integers); floats,
/// whose NaN is a missing value, are left to it.
fn complete(chunks: &[ArrayRef]) -> bool {
    let plain = |dt: &DataType| arrow::is_text(dt) || dt.is_integer() || *dt == DataType::Boolean;
    chunks.iter().all(|c| {
        if c.logical_null_count() != 0 {
            return false;
        }
        match c.data_type() {
            DataType::Dictionary(_, values) if plain(values) => {
                let Some(dict) = c.as_any_dictionary_opt() else {
                    return false;
                };
                // Every key must name an entry, and no entry be missing.
                dict.values().logical_null_count() == 0
                    && max_key(dict.keys()).is_some_and(|k| k < dict.values().len() as u64)
            }
            dt => plain(dt),
        }
    })
}

/// The largest key of a dictionary's keys (0 for none), `None` for a negative key or an
/// unknown key type.
fn max_key(keys: &dyn Array) -> Option<u64> {
    macro_rules! max {
        ($t:ty) => {{
            let v = keys.as_primitive::<$t>().values();
            let mut hi = 0u64;
            for &k in v.iter() {
                hi = hi.max(u64::try_from(k).ok()?);
            }
            Some(hi)
        }};
    }
    match keys.data_type() {
        DataType::Int8 => max!(Int8Type),
        DataType::Int16 => max!(Int16Type),
        DataType::Int32 => max!(Int32Type),
        DataType::Int64 => max!(Int64Type),
        DataType::UInt8 => max!(UInt8Type),
        DataType::UInt16 => max!(UInt16Type),
        DataType::UInt32 => max!(UInt32Type),
        DataType::UInt64 => max!(UInt64Type),
        _ => None,
    }
}

/// `count` of the first and second half of `0..n`, on two threads when `n` is large.
fn halves(n: usize, count: impl Fn(std::ops::Range<usize>) -> Vec<u32> + Sync) -> Vec<Vec<u32>> {
    if n < TWO_THREADS_ROWS {
        return vec![count(0..n)];
    }
    std::thread::scope(|s| {
        let second = s.spawn(|| count(n / 2..n));
        let first = count(0..n / 2);
        vec![first, second.join().expect("counting thread panicked")]
    })
}

/// Which of the two threads takes the text of hash `h`: a bit that neither the interner's
/// slot index (the low bits, for tables under 2³¹ slots) nor its tag (the high 32) uses, so
/// each thread's table stays evenly filled.
#[inline]
fn side(h: u64) -> u64 {
    (h >> 31) & 1
}

/// Texts interned a block at a time (see [`TextInterner::touch`]).
const BLOCK: usize = 32;

/// One thread's share of a text item column: the items of hash side `mine`, numbered by first
/// appearance, and their counts (`n × w`). `rows` holds each row's [`SIDE`] and [`SAME`] bits.
fn text_side<'a>(
    chunks: &'a [ArrayRef],
    rows: &[u8],
    labels: &[u32],
    w: usize,
    mine: u64,
) -> Vec<u32> {
    let n = rows.len();
    let mut interner = TextInterner::with_capacity(n / 16);
    let mut counts: Vec<u32> = vec![0; (n / 16).max(1) * w];
    let mut add = |id: u32, label: u32| {
        let at = id as usize * w + label as usize;
        if at >= counts.len() {
            counts.resize(2 * counts.len().max(at + 1), 0);
        }
        counts[at] += 1;
    };
    // Per block: this side's texts that differ from the row before (`new`), and each row's
    // index in `new` (or NULL: the last new text of an earlier block).
    let mut new: Vec<(&'a str, u64)> = Vec::with_capacity(BLOCK);
    let mut of_row: Vec<(usize, u32)> = Vec::with_capacity(BLOCK);
    let mut block_hashes: Vec<u64> = Vec::with_capacity(BLOCK);
    let mut ids: Vec<u32> = Vec::with_capacity(BLOCK);
    let mut last_id = NULL;
    let mut flush = |new: &mut Vec<(&'a str, u64)>, of_row: &mut Vec<(usize, u32)>| {
        block_hashes.clear();
        block_hashes.extend(new.iter().map(|&(_, h)| h));
        interner.touch(&block_hashes);
        ids.clear();
        ids.extend(new.iter().map(|&(s, h)| interner.id_hashed(s, h)));
        for &(r, k) in of_row.iter() {
            add(if k == NULL { last_id } else { ids[k as usize] }, labels[r]);
        }
        if let Some(&id) = ids.last() {
            last_id = id;
        }
        new.clear();
        of_row.clear();
    };
    let mut start = 0;
    for c in chunks {
        let t = TextArray::new(c.as_ref());
        for i in 0..c.len() {
            let r = start + i;
            if u64::from(rows[r] & SIDE) != mine {
                continue;
            }
            if rows[r] & SAME == 0 {
                let s = t.get(i).unwrap_or_default();
                new.push((s, text_hash(s)));
            }
            let k = new.len().checked_sub(1).map_or(NULL, |k| k as u32);
            of_row.push((r, k));
            if new.len() == BLOCK {
                flush(&mut new, &mut of_row);
            }
        }
        start += c.len();
    }
    flush(&mut new, &mut of_row);
    counts.truncate(interner.keys.len() * w);
    counts
}

/// Bit of a row's byte in [`text_counts`]: the [`side`] of its text's hash.
const SIDE: u8 = 1;
/// Bit of a row's byte in [`text_counts`]: its text is that of the row before.
const SAME: u8 = 2;

/// The [`SIDE`] and [`SAME`] bits of each row of `rows` (no nulls) into `out`. A row with the
/// text of the row before (not for the first row of `rows`) is not hashed again: the rows of
/// an item usually come together.
fn side_rows(chunks: &[ArrayRef], rows: std::ops::Range<usize>, out: &mut [u8]) {
    let mut start = 0;
    let (mut prev, mut bits) = (None, 0u8);
    for c in chunks {
        let (lo, hi) = (rows.start.max(start), rows.end.min(start + c.len()));
        if lo < hi {
            let t = TextArray::new(c.as_ref());
            for r in lo..hi {
                let s = t.get(r - start).unwrap_or_default();
                let at = r - rows.start;
                out[at] = if prev.is_some_and(|p| arrow::same_text(p, s)) {
                    bits | SAME
                } else {
                    prev = Some(s);
                    bits = side(text_hash(s)) as u8;
                    bits
                };
            }
        }
        start += c.len();
    }
}

/// Counts of a text item column: each row's hash side found (each half of the rows on a
/// thread), then the two sides' items counted on a thread each, one side's after the other's.
fn text_counts(chunks: &[ArrayRef], labels: &[u32], w: usize) -> Vec<u32> {
    let n = labels.len();
    let mut rows = vec![0u8; n];
    if n < TWO_THREADS_ROWS {
        side_rows(chunks, 0..n, &mut rows);
        let mut counts = text_side(chunks, &rows, labels, w, 0);
        counts.extend(text_side(chunks, &rows, labels, w, 1));
        return counts;
    }
    let (first, second) = rows.split_at_mut(n / 2);
    std::thread::scope(|s| {
        s.spawn(|| side_rows(chunks, n / 2..n, second));
        side_rows(chunks, 0..n / 2, first);
    });
    let rows = &rows;
    let (mut first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| text_side(chunks, rows, labels, w, 1));
        (
            text_side(chunks, rows, labels, w, 0),
            second.join().expect("counting thread panicked"),
        )
    });
    first.extend_from_slice(&second);
    first
}

/// Counts of a dictionary column of text (one chunk, no nulls, keys checked in range): its
/// entries numbered by text on two threads (the two hash sides), then each half of the rows
/// counted through that numbering. `None` for an unexpected key type.
fn dictionary_counts(column: &dyn Array, labels: &[u32], w: usize) -> Option<Vec<Vec<u32>>> {
    let dict = column.as_any_dictionary_opt()?;
    let values = std::slice::from_ref(dict.values());
    // Each entry hashed once (each half on a thread), then each side numbered on a thread.
    let n = dict.values().len();
    let mut hashes = vec![0u64; n];
    let ((mut ids, n_first), (second, n_second)) = if n < TWO_THREADS_ROWS {
        hash_texts(values, 0..n, &mut hashes);
        (
            number_side(values, &hashes, 0),
            number_side(values, &hashes, 1),
        )
    } else {
        let (h1, h2) = hashes.split_at_mut(n / 2);
        std::thread::scope(|s| {
            s.spawn(|| hash_texts(values, n / 2..n, h2));
            hash_texts(values, 0..n / 2, h1);
        });
        let hashes = &hashes;
        std::thread::scope(|s| {
            let second = s.spawn(|| number_side(values, hashes, 1));
            (
                number_side(values, hashes, 0),
                second.join().expect("numbering thread panicked"),
            )
        })
    };
    for (id, &other) in ids.iter_mut().zip(&second) {
        if *id == NULL {
            *id = n_first + other;
        }
    }
    let n_items = (n_first + n_second) as usize;
    let keys = dict.keys();
    macro_rules! count {
        ($t:ty) => {{
            let k = keys.as_primitive::<$t>().values();
            halves(k.len(), |rows| {
                let mut counts = vec![0u32; n_items * w];
                for r in rows {
                    let item = ids[k[r] as usize];
                    counts[item as usize * w + labels[r] as usize] += 1;
                }
                counts
            })
        }};
    }
    Some(match keys.data_type() {
        DataType::Int8 => count!(Int8Type),
        DataType::Int16 => count!(Int16Type),
        DataType::Int32 => count!(Int32Type),
        DataType::Int64 => count!(Int64Type),
        DataType::UInt8 => count!(UInt8Type),
        DataType::UInt16 => count!(UInt16Type),
        DataType::UInt32 => count!(UInt32Type),
        DataType::UInt64 => count!(UInt64Type),
        _ => return None,
    })
}

/// The [`text_hash`] of each of `rows` of `chunks` (no nulls), into `out`.
fn hash_texts(chunks: &[ArrayRef], rows: std::ops::Range<usize>, out: &mut [u64]) {
    let mut start = 0;
    for c in chunks {
        let (lo, hi) = (rows.start.max(start), rows.end.min(start + c.len()));
        if lo < hi {
            let t = TextArray::new(c.as_ref());
            for r in lo..hi {
                out[r - rows.start] = text_hash(t.get(r - start).unwrap_or_default());
            }
        }
        start += c.len();
    }
}

/// One thread's share of a dictionary's texts (no nulls, hashed in `hashes`): the entries of
/// hash side `mine` numbered by first appearance (others [`NULL`]), and how many distinct
/// texts there are.
fn number_side<'a>(values: &'a [ArrayRef], hashes: &[u64], mine: u64) -> (Vec<u32>, u32) {
    let n = hashes.len();
    let mut interner = TextInterner::with_capacity(n / 2);
    let mut ids = vec![NULL; n];
    let mut block: Vec<(usize, &'a str, u64)> = Vec::with_capacity(BLOCK);
    let mut block_hashes: Vec<u64> = Vec::with_capacity(BLOCK);
    let mut flush = |block: &mut Vec<(usize, &'a str, u64)>| {
        block_hashes.clear();
        block_hashes.extend(block.iter().map(|&(_, _, h)| h));
        interner.touch(&block_hashes);
        for &(e, s, h) in block.iter() {
            ids[e] = interner.id_hashed(s, h);
        }
        block.clear();
    };
    let mut start = 0;
    for c in values {
        let t = TextArray::new(c.as_ref());
        for i in 0..c.len() {
            let h = hashes[start + i];
            if side(h) == mine {
                block.push((start + i, t.get(i).unwrap_or_default(), h));
                if block.len() == BLOCK {
                    flush(&mut block);
                }
            }
        }
        start += c.len();
    }
    flush(&mut block);
    (ids, interner.keys.len() as u32)
}

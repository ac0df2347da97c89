//! Per-item label counts straight from Arrow columns: α's fast path when every row counts
//! (`duplicates="keep_all"`), where neither the raters nor the rows' order matter.
//!
//! α needs only how many times each label occurs on each item
//! (`arbiter_stats::alpha_from_label_counts`), so the rows are counted in one pass instead of
//! being built into a `Ratings` (interning every rater, ordering rows by item, counting
//! duplicates):
//!
//! - an item column of text: counted per name as it is split by hash
//!   (`textcode::count_texts`), without a code per row or names in order of appearance, which
//!   α does not need;
//! - an item column of anything else but a dictionary of text (or text too short to split):
//!   coded as the general path codes it (`arrow::code_column`), then counted in two halves;
//! - a dictionary column of text, of one chunk: its dictionary's texts grouped by text (two
//!   entries may hold the same text; `textcode::group_distinct_texts`, which neither ranks
//!   nor collects names), then each half of the rows counted through that grouping.
//!
//! With a label column of one chunk of integers a few apart, either item column reads each
//! row's label as its offset from the least label as it counts, so the labels are never coded.
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

use arbiter_stats::textcode::{count_texts, group_distinct_texts};

use crate::arrow::{self, NULL, by_int_type};

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
    if !complete(rater) || !complete(item) {
        return None;
    }
    if text_items(item).is_some()
        && let Some(counts) = int_label_counts(item, label)
    {
        return Some(counts);
    }
    let labels = arrow::code_column("label", label).ok()?;
    if labels.codes.contains(&NULL) {
        return None;
    }
    let w = labels.names.len();
    let names: Vec<String> = labels.names.iter().map(str::to_string).collect();
    let codes = &labels.codes;
    let parts = match text_counts(item, |r| codes[r], w) {
        Some(parts) => parts,
        None if item.is_empty() => vec![],
        None => code_and_count(item, codes, w)?,
    };
    Some(LabelCounts {
        labels: names,
        parts,
    })
}

/// The counts of an item column of text, or of a dictionary of text in one chunk, against
/// each row's label `label(row)`, below `w`; `None` for any other column, or text too short to
/// split by hash.
fn text_counts(
    item: &[ArrayRef],
    label: impl Fn(usize) -> u32 + Sync,
    w: usize,
) -> Option<Vec<Vec<u32>>> {
    match text_items(item)? {
        TextItems::Dictionary => dictionary_counts(item[0].as_ref(), label, w),
        TextItems::Text => count_texts(&arrow::TextChunks::new(item), label, w).map(|c| vec![c]),
    }
}

/// An item column that [`text_counts`] counts.
enum TextItems {
    /// Text, every chunk of the same type.
    Text,
    /// A dictionary of text, in one chunk.
    Dictionary,
}

fn text_items(item: &[ArrayRef]) -> Option<TextItems> {
    match item.first()?.data_type() {
        DataType::Dictionary(_, values) if item.len() == 1 && arrow::is_text(values) => {
            Some(TextItems::Dictionary)
        }
        dt if arrow::is_text(dt) && item.iter().all(|c| c.data_type() == dt) => {
            Some(TextItems::Text)
        }
        _ => None,
    }
}

/// Labels a few apart at most for [`int_label_counts`]: counts are kept for every value in
/// the range, present or not, until the absent ones are dropped.
const INT_LABEL_SPAN: i64 = 64;

/// The counts of an item column of text (or a dictionary of text) against one chunk of integer
/// labels spanning at most [`INT_LABEL_SPAN`] values: each row's label is its offset from the
/// least value, read as the rows are counted by item, so the label column is neither coded nor
/// written out first; values in the range that no row has are dropped afterwards. `None` where
/// the general path must decide (several chunks, a missing label, a wider range, another
/// item column).
fn int_label_counts(item: &[ArrayRef], label: &[ArrayRef]) -> Option<LabelCounts> {
    let [column] = label else {
        return None;
    };
    if column.logical_null_count() != 0 {
        return None;
    }
    macro_rules! count {
        ($t:ty) => {{
            let v = column.as_primitive::<$t>().values();
            let (lo, hi) = arrow::min_max(v)?;
            let (lo, hi) = (i64::try_from(lo).ok()?, i64::try_from(hi).ok()?);
            if hi - lo >= INT_LABEL_SPAN {
                return None;
            }
            let span = (hi - lo + 1) as usize;
            // Within the range, `x - lo` fits in an i64 whatever the type.
            let parts = text_counts(item, |r| (v[r] as i64 - lo) as u32, span)?;
            (lo, span, parts)
        }};
    }
    let (lo, span, parts) = by_int_type!(column.data_type(), count, return None);
    let mut present = vec![false; span];
    for row in parts.iter().flat_map(|counts| counts.chunks(span)) {
        for (p, &c) in present.iter_mut().zip(row) {
            *p |= c != 0;
        }
    }
    let keep: Vec<usize> = (0..span).filter(|&k| present[k]).collect();
    let labels = keep.iter().map(|&k| (lo + k as i64).to_string()).collect();
    let parts = if keep.len() == span {
        parts
    } else {
        parts
            .iter()
            .map(|counts| {
                counts
                    .chunks(span)
                    .flat_map(|row| keep.iter().map(move |&k| row[k]))
                    .collect()
            })
            .collect()
    };
    Some(LabelCounts { labels, parts })
}

/// Counts of an item column coded as the general path codes it, then counted in two halves;
/// `None` for a missing item.
fn code_and_count(item: &[ArrayRef], codes: &[u32], w: usize) -> Option<Vec<Vec<u32>>> {
    let items = arrow::code_column("item", item).ok()?;
    if items.codes.contains(&NULL) {
        return None;
    }
    let n_items = items.names.len();
    Some(halves(codes.len(), |rows| {
        let mut counts = vec![0u32; n_items * w];
        for r in rows {
            counts[items.codes[r] as usize * w + codes[r] as usize] += 1;
        }
        counts
    }))
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
/// unknown key type. The range comes from one vectorised pass, not a check per key.
fn max_key(keys: &dyn Array) -> Option<u64> {
    macro_rules! max {
        ($t:ty) => {{
            let v = keys.as_primitive::<$t>().values();
            match arrow::min_max(v) {
                None => Some(0),
                Some((lo, hi)) => {
                    u64::try_from(lo).ok()?;
                    u64::try_from(hi).ok()
                }
            }
        }};
    }
    by_int_type!(keys.data_type(), max, None)
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

/// Counts of a dictionary column of text (one chunk, no nulls, keys checked in range) against
/// each row's label `label(row)`, below `w`: its entries grouped by text, then each half of the
/// rows counted through that grouping. `None` for an unexpected key type.
fn dictionary_counts(
    column: &dyn Array,
    label: impl Fn(usize) -> u32 + Sync,
    w: usize,
) -> Option<Vec<Vec<u32>>> {
    let dict = column.as_any_dictionary_opt()?;
    let values = std::slice::from_ref(dict.values());
    // A dictionary's entries are nearly always distinct texts, and α needs neither their texts
    // nor an order: grouped by text without ranking or collecting names where there are many.
    let (ids, n_items) = match group_distinct_texts(&arrow::TextChunks::new(values)) {
        Some(grouped) => grouped,
        None => {
            let entries = arrow::code_column("item", values).ok()?;
            let n = entries.names.len();
            (entries.codes, n)
        }
    };
    let keys = dict.keys();
    macro_rules! count {
        ($t:ty) => {{
            let k = keys.as_primitive::<$t>().values();
            halves(k.len(), |rows| {
                let mut counts = vec![0u32; n_items * w];
                for r in rows {
                    let item = ids[k[r] as usize];
                    counts[item as usize * w + label(r) as usize] += 1;
                }
                counts
            })
        }};
    }
    Some(by_int_type!(keys.data_type(), count, return None))
}

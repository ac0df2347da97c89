//! The ratings table: who gave which label to which item, plus optional group columns.
//!
//! Items, raters and labels are interned to dense indices so that every statistic works on
//! small integer arrays. Label indices follow the order of the [`LabelDomain`]; that order is
//! what "smallest label" means when aggregators break ties, and what "ordered" means for ordinal
//! statistics.

use std::collections::HashMap;
use std::hash::Hasher;

use crate::StatsError;

mod codes;

/// Whether labels are unordered categories or carry an order (ordinal scales).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelKind {
    /// Unordered categories; the domain order only serves as a deterministic tie-break.
    Nominal,
    /// Ordered categories (e.g. a Likert scale); the domain order is the scale order.
    Ordered,
}

/// The set of possible labels, in a fixed order, with their numeric values when all parse.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelDomain {
    values: Vec<String>,
    numeric: Option<Vec<f64>>,
    kind: LabelKind,
    /// Other spellings of a numeric label merged into it (`0.0` into `0`), with its index.
    merged: Vec<(String, usize)>,
}

impl LabelDomain {
    /// A domain with exactly these values in this order.
    pub fn new(values: Vec<String>, kind: LabelKind) -> Result<Self, StatsError> {
        let mut seen = HashMap::new();
        for (i, v) in values.iter().enumerate() {
            if let Some(j) = seen.insert(v.as_str(), i) {
                return Err(StatsError::InvalidDomain(format!(
                    "value {v:?} appears at positions {j} and {i}"
                )));
            }
        }
        let numeric = values
            .iter()
            .map(|v| parse_number(v))
            .collect::<Option<Vec<f64>>>();
        Ok(LabelDomain {
            values,
            numeric,
            kind,
            merged: Vec::new(),
        })
    }

    /// The domain of the labels actually seen, sorted numerically when every label is a number
    /// and lexicographically otherwise (the order pandas gives the same labels, which is what
    /// crowd-kit's tie-breaking follows).
    ///
    /// When every label is a number, spellings of one number (`0`, `0.0`, `0e0`, `-0`) are one
    /// label, named by its shortest spelling (then the first in text order);
    /// [`LabelDomain::merged`] lists the others. Text labels are never merged.
    pub fn infer<'a>(labels: impl IntoIterator<Item = &'a str>, kind: LabelKind) -> Self {
        let mut values: Vec<String> = labels.into_iter().map(str::to_string).collect();
        values.sort();
        values.dedup();
        let numeric: Option<Vec<f64>> = values.iter().map(|v| parse_number(v)).collect();
        if let Some(nums) = &numeric {
            // -0 and 0 compare equal but not under total_cmp: normalise before sorting.
            let mut pairs: Vec<(f64, String)> = nums
                .iter()
                .map(|&x| if x == 0.0 { 0.0 } else { x })
                .zip(values)
                .collect();
            // One number's spellings sort together, shortest first: that one names the label.
            pairs.sort_by(|a, b| {
                a.0.total_cmp(&b.0)
                    .then_with(|| a.1.len().cmp(&b.1.len()))
                    .then_with(|| a.1.cmp(&b.1))
            });
            let mut values: Vec<String> = Vec::new();
            let mut numeric: Vec<f64> = Vec::new();
            let mut merged = Vec::new();
            for (x, spelling) in pairs {
                if numeric.last() == Some(&x) {
                    merged.push((spelling, values.len() - 1));
                } else {
                    values.push(spelling);
                    numeric.push(x);
                }
            }
            return LabelDomain {
                values,
                numeric: Some(numeric),
                kind,
                merged,
            };
        }
        LabelDomain {
            values,
            numeric: None,
            kind,
            merged: Vec::new(),
        }
    }

    /// Spellings merged into another label of the same number, as `(spelling, label)`.
    pub fn merged(&self) -> Vec<(&str, &str)> {
        self.merged
            .iter()
            .map(|(s, i)| (s.as_str(), self.values[*i].as_str()))
            .collect()
    }

    /// Label strings in domain order.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Numeric value of every label, if all of them parse as numbers.
    pub fn numeric(&self) -> Option<&[f64]> {
        self.numeric.as_deref()
    }

    /// Nominal or ordered.
    pub fn kind(&self) -> LabelKind {
        self.kind
    }

    /// Number of labels in the domain.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the domain has no labels.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Index of a label string.
    pub fn index_of(&self, label: &str) -> Option<usize> {
        self.values.iter().position(|v| v == label).or_else(|| {
            self.merged
                .iter()
                .find(|(s, _)| s == label)
                .map(|(_, i)| *i)
        })
    }
}

fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let x: f64 = t.parse().ok()?;
    x.is_finite().then_some(x)
}

/// What to do when one rater rated the same item more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicatePolicy {
    /// Keep every row. This is what NLTK and the value-counts input of the `krippendorff`
    /// package do, and it is the default because it drops nothing silently.
    #[default]
    KeepAll,
    /// Keep the first row of each (item, rater) pair, in input order.
    First,
    /// Keep the last row of each (item, rater) pair, in input order.
    Last,
    /// Refuse the table.
    Error,
}

/// One rating: indices into the table's items, raters and label domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rating {
    /// Item index.
    pub item: u32,
    /// Rater index.
    pub rater: u32,
    /// Label index in the domain.
    pub label: u32,
}

/// A named categorical column attached to rows (pool, gender, age band …). `None` = missing.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupColumn {
    /// Column name.
    pub name: String,
    /// Distinct values, in order of first appearance.
    pub values: Vec<String>,
    /// Per row: index into `values`, or `None` when missing.
    pub per_row: Vec<Option<u32>>,
}

/// Names by dense id, stored end to end in one string: a million-row file has hundreds of
/// thousands of item names, and one allocation each cost more than reading them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    text: String,
    /// End of each name in `text`; name i starts where name i − 1 ends.
    ends: Vec<usize>,
}

impl Names {
    /// Number of names.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are no names.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Name `id`, `None` past the end.
    pub fn get(&self, id: usize) -> Option<&str> {
        let end = *self.ends.get(id)?;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        Some(&self.text[start..end])
    }

    /// The names in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|id| &self[id])
    }

    /// The names end to end, and where each ends: the layout of an Arrow string column's
    /// values and offsets, so that a columnar caller can hand the names on in one copy.
    pub fn parts(&self) -> (&str, &[usize]) {
        (&self.text, &self.ends)
    }
}

impl std::ops::Index<usize> for Names {
    type Output = str;

    fn index(&self, id: usize) -> &str {
        self.get(id).expect("name id out of range")
    }
}

impl<S: AsRef<str>> FromIterator<S> for Names {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> Self {
        let mut out = Names::default();
        for name in names {
            out.text.push_str(name.as_ref());
            out.ends.push(out.text.len());
        }
        out
    }
}

/// An immutable, validated ratings table.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratings {
    domain: LabelDomain,
    items: Names,
    raters: Names,
    rows: Vec<Rating>,
    groups: Vec<GroupColumn>,
    n_duplicates: usize,
    /// Whether every item's rows are one run, in item order (see [`Ratings::in_item_order`]).
    item_ordered: bool,
}

impl Ratings {
    /// Whether the rows come in item order, each item's rows one run: true of a file grouped
    /// by item, as ids follow first appearance. Known from building the table, so the
    /// statistics that walk items as runs need no pass over the rows to find out.
    pub fn in_item_order(&self) -> bool {
        self.item_ordered
    }

    /// The label domain.
    pub fn domain(&self) -> &LabelDomain {
        &self.domain
    }
    /// Item names by index (in order of first appearance).
    pub fn items(&self) -> &Names {
        &self.items
    }
    /// Rater names by index (in order of first appearance).
    pub fn raters(&self) -> &Names {
        &self.raters
    }
    /// All rows, after the duplicate policy was applied.
    pub fn rows(&self) -> &[Rating] {
        &self.rows
    }
    /// Group columns.
    pub fn groups(&self) -> &[GroupColumn] {
        &self.groups
    }
    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.items.len()
    }
    /// Number of raters.
    pub fn n_raters(&self) -> usize {
        self.raters.len()
    }
    /// Number of labels in the domain.
    pub fn n_labels(&self) -> usize {
        self.domain.len()
    }
    /// Number of rows.
    pub fn n_ratings(&self) -> usize {
        self.rows.len()
    }
    /// Number of repeated (item, rater) rows seen in the input (before the policy).
    pub fn n_duplicates(&self) -> usize {
        self.n_duplicates
    }

    /// A group column by name.
    pub fn group(&self, name: &str) -> Result<&GroupColumn, StatsError> {
        self.groups
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| StatsError::UnknownGroupColumn(name.to_string()))
    }

    /// Each rater's group in `column`: the value of the rater's first row with a value.
    ///
    /// Rater-level analyses (in-group agreement, permutations) need one group per rater; when a
    /// per-row column disagrees within a rater the first value wins.
    pub fn rater_groups(&self, column: &str) -> Result<Vec<Option<u32>>, StatsError> {
        let col = self.group(column)?;
        let mut out = vec![None; self.raters.len()];
        for (row, g) in self.rows.iter().zip(&col.per_row) {
            let slot = &mut out[row.rater as usize];
            if slot.is_none() {
                *slot = *g;
            }
        }
        Ok(out)
    }

    /// Label counts per item: a dense `n_items × n_labels` matrix, row-major.
    pub fn item_label_counts(&self) -> Vec<f64> {
        let k = self.n_labels();
        let mut counts = vec![0.0; self.n_items() * k];
        for r in &self.rows {
            counts[r.item as usize * k + r.label as usize] += 1.0;
        }
        counts
    }

    /// A new table with only the rows for which `keep(row_index)` is true. Items and raters
    /// keep their indices (some may have no rows left); group columns follow their rows.
    pub fn filter_rows(&self, mut keep: impl FnMut(usize) -> bool) -> Ratings {
        let mut rows = Vec::new();
        let mut groups: Vec<GroupColumn> = self
            .groups
            .iter()
            .map(|g| GroupColumn {
                name: g.name.clone(),
                values: g.values.clone(),
                per_row: Vec::new(),
            })
            .collect();
        for (i, r) in self.rows.iter().enumerate() {
            if keep(i) {
                rows.push(*r);
                for (dst, src) in groups.iter_mut().zip(&self.groups) {
                    dst.per_row.push(src.per_row[i]);
                }
            }
        }
        Ratings {
            domain: self.domain.clone(),
            items: self.items.clone(),
            raters: self.raters.clone(),
            rows,
            groups,
            n_duplicates: 0,
            // A subset of rows in item order is in item order.
            item_ordered: self.item_ordered,
        }
    }
}

impl Ratings {
    /// The table with group column `name` given new `values`: a row whose old value index is
    /// `v` gets `remap(v)` (`None` = missing). Sorting or binning a column this way needs no
    /// second read of the file. Fails on an unknown column or a remapped index past `values`.
    pub fn regroup(
        &self,
        name: &str,
        values: Vec<String>,
        remap: impl Fn(u32) -> Option<u32>,
    ) -> Result<Ratings, StatsError> {
        let at = self
            .groups
            .iter()
            .position(|g| g.name == name)
            .ok_or_else(|| StatsError::UnknownGroupColumn(name.to_string()))?;
        let mut per_row = Vec::with_capacity(self.rows.len());
        for v in &self.groups[at].per_row {
            let new = v.and_then(&remap);
            if new.is_some_and(|n| n as usize >= values.len()) {
                return Err(StatsError::InvalidParameter {
                    name: "regroup",
                    message: format!("value index past the {} new values", values.len()),
                });
            }
            per_row.push(new);
        }
        let mut out = self.clone();
        out.groups[at] = GroupColumn {
            name: name.to_string(),
            values,
            per_row,
        };
        Ok(out)
    }

    /// The table without group column `name`, and that column: a per-row text such as the
    /// item text is carried as a group column but must not be copied by every row filter.
    pub fn without_group(&self, name: &str) -> Result<(Ratings, GroupColumn), StatsError> {
        let at = self
            .groups
            .iter()
            .position(|g| g.name == name)
            .ok_or_else(|| StatsError::UnknownGroupColumn(name.to_string()))?;
        let mut out = self.clone();
        let column = out.groups.remove(at);
        Ok((out, column))
    }
}

/// A fast non-cryptographic hasher (the Fx multiply-rotate scheme) for interning ids. SipHash
/// took half of the time of reading a million-row file; hash flooding is not a concern for
/// ratings the user loads themselves.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    /// Multiplication only carries upwards, but hashbrown picks buckets from the low bits, so
    /// fold the high bits down (a murmur3-style finaliser).
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

/// How the builder learns the label domain.
#[derive(Debug, Clone)]
pub enum DomainSpec {
    /// Use exactly this domain; labels outside it are an error.
    Explicit(LabelDomain),
    /// Infer from the labels seen (see [`LabelDomain::infer`]).
    Infer(LabelKind),
}

/// Builds a [`Ratings`] table row by row from strings.
#[derive(Debug, Clone)]
pub struct RatingsBuilder {
    spec: DomainSpec,
    group_names: Vec<String>,
    items: Interner,
    raters: Interner,
    labels: Interner,
    rows: Vec<Rating>,
    group_values: Vec<(Interner, Vec<Option<u32>>)>,
    /// Index of the last item pushed: long files are usually grouped by item, and skipping the
    /// hash lookup for repeats makes reading a third faster.
    /// (id, key word, length) of that item.
    last_item: Option<(u32, u64, u32)>,
    /// Number of times the item changed from one row to the next.
    item_changes: usize,
    /// While true, an item that differs from the previous row's is taken to be new and looked
    /// up later, in a batch (see [`Interner::check`]); set to false by the first repeat found.
    items_grouped: bool,
    /// Rows before this one have checked item ids.
    rows_checked: usize,
    /// Per rater, 1 + the id of the last item it rated (0: none yet), and the number of rows
    /// whose rater already rated that item: while items come grouped this counts the
    /// duplicates as the rows arrive, and [`RatingsBuilder::build`] needs no pass of its own.
    last_rated: Vec<u32>,
    grouped_duplicates: usize,
    /// Label id per one-byte label (`EMPTY` = not seen yet): labels are usually one
    /// character, and this skips the interner's key and probe for them.
    byte_labels: [u32; 256],
}

/// Names whose table slots [`Interner::recheck`] loads together before looking them up.
const LOOKUP_GROUP: usize = 32;

/// Unchecked item names after which [`RatingsBuilder::check_items`] runs.
const ITEM_BATCH: usize = 1 << 16;

/// Strings → dense ids in order of first appearance.
///
/// A million-row file interns a million ids; a `HashMap<String, u32>` costs two allocations per
/// new name and a pointer chase plus a `memcmp` per probe. Here names live end to end in one
/// arena, and each slot of the open-addressing table holds the name's key word, length and id,
/// so a probe touches one 16-byte slot. The key word of a name of at most 8 bytes (typical
/// rater ids and labels) is its bytes themselves, so a match needs no further comparison and no
/// hashing of the bytes beyond one multiplication; longer names use a hash of their bytes as
/// key word and are confirmed against the arena.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interner {
    arena: String,
    /// End of each name in `arena`; name i starts where name i − 1 ends.
    ends: Vec<usize>,
    /// (key word, length, id) per slot; id [`EMPTY`] marks an empty slot. Length is a power of
    /// two, at most four fifths full (see [`table_size`]).
    slots: Vec<(u64, u32, u32)>,
    /// 64 − log₂(slots.len()): slot index = top bits of the mixed key.
    shift: u32,
    /// Names from this id on were appended by [`Interner::append_unchecked`] and are not
    /// checked for repeats yet.
    checked: usize,
    /// While true, the checked names are kept in `sorted` instead of the table (see
    /// [`Interner::check`]).
    sorting: bool,
    /// (sort key, id) of the checked names, ordered by key, while `sorting`.
    sorted: Vec<(u64, u32)>,
    /// Checked names appended by [`Interner::append_sorted`] whose keys are not merged into
    /// `sorted` yet: the next check merges them, and a table read in two halves never needs to.
    pending: Option<Pending>,
}

/// The sorted keys of an appended interner, with its ids: id `i ≥ skip` is id
/// `base + i − skip` here, ids below `skip` are not appended.
#[derive(Debug, Clone)]
struct Pending {
    keys: Vec<(u64, u32)>,
    skip: u32,
    base: u32,
}

impl Pending {
    fn id(&self, id: u32) -> Option<u32> {
        (id >= self.skip).then(|| self.base + id - self.skip)
    }
}

/// The id of an empty slot. Not 0, so that a new table is written in full when it is made
/// rather than handed out as zero pages: reading a zero page and then writing it costs a
/// second page fault and a TLB flush on every core the process runs on.
const EMPTY: u32 = u32::MAX;

/// The bytes of a name of at most 8 bytes as a little-endian word, zero-padded: overlapping
/// fixed-size loads instead of a variable-length copy, which compiles to a call.
#[inline]
fn short_word(b: &[u8]) -> u64 {
    let n = b.len();
    let byte = |i: usize| u64::from(b[i]) << (8 * i);
    match n {
        0 => 0,
        1..=3 => byte(0) | byte(n / 2) | byte(n - 1),
        _ => {
            let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
            u64::from(lo) | u64::from(hi) << (8 * (n - 4))
        }
    }
}

/// Slots of a table for `n` names: a power of two, at most four fifths full. A fuller table
/// probes a few more slots, nearly always in the same cache line, but takes fewer pages: the
/// item table of a file whose items come in any order is read at a random place per row, and
/// at half full 200,000 items took 8 MiB, more pages than the core's TLB covers.
fn table_size(n: usize) -> usize {
    (n + n / 4).next_power_of_two().max(16)
}

/// Name key: (key word, length). See [`Interner`].
#[inline]
fn key_of(s: &str) -> (u64, u32) {
    let b = s.as_bytes();
    if b.len() <= 8 {
        (short_word(b), b.len() as u32)
    } else {
        let mut h = FxHasher::default();
        h.write(b);
        (h.finish(), b.len() as u32)
    }
}

/// A name's key mixed to 64 bits (a multiplication by 2⁶⁴/φ): equal names have equal mixed
/// keys, and different names rarely do.
#[inline]
fn mixed(word: u64, len: u32) -> u64 {
    (word ^ u64::from(len).rotate_right(8)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Slot index of a key in a table of 2^(64 − shift) slots (Fibonacci hashing: the top bits of
/// the mixed key).
#[inline]
fn slot_of(word: u64, len: u32, shift: u32) -> usize {
    (mixed(word, len) >> shift) as usize
}

/// The `n` (mixed key, id) pairs that `pairs` makes, in `sort_unstable`'s order: one
/// counting-sort pass on the top bits of the key and a small sort of each bucket. Mixed keys
/// are spread evenly, so buckets hold a few pairs each: a comparison sort of a 64k-name batch
/// took several times longer (it was most of the time spent checking the names of a file
/// grouped by item). The pairs are made twice, once to count and once to place them, rather
/// than kept in a buffer of their own: making a key again costs less than the page faults of
/// that buffer.
///
/// The result is written to `into` (cleared first), whose room is used: a vector reserved
/// for all the names to come.
fn sort_keys<I: Iterator<Item = (u64, u32)>>(
    n: usize,
    pairs: impl Fn() -> I,
    mut into: Vec<(u64, u32)>,
) -> Vec<(u64, u32)> {
    into.clear();
    if n < 256 {
        into.extend(pairs());
        into.sort_unstable();
        return into;
    }
    // About four pairs a bucket: a small counting table (fresh pages cost more than the
    // insertion sorts of a few pairs).
    let bits = (usize::BITS - n.leading_zeros()).saturating_sub(3).min(20);
    let shift = 64 - bits;
    // ends[b + 1] counts bucket b, then (prefix sums) starts it; placing each pair moves its
    // bucket's end, so that afterwards bucket b is ends[b]..ends[b + 1].
    let mut ends = vec![0u32; (1 << bits) + 1];
    for (key, _) in pairs() {
        ends[(key >> shift) as usize + 1] += 1;
    }
    for b in 1..ends.len() {
        ends[b] += ends[b - 1];
    }
    into.resize(n, (0, 0));
    let sorted = &mut into;
    for pair in pairs() {
        let slot = &mut ends[(pair.0 >> shift) as usize];
        sorted[*slot as usize] = pair;
        *slot += 1;
    }
    let mut start = 0;
    for &end in &ends[..1 << bits] {
        if end - start > 1 {
            sorted[start as usize..end as usize].sort_unstable();
        }
        start = end;
    }
    into
}

impl Interner {
    /// Number of names.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Name `id`.
    pub(crate) fn get(&self, id: u32) -> &str {
        let id = id as usize;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.arena[start..self.ends[id]]
    }

    /// The id of `s`, adding it when new.
    #[inline]
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        let (word, len) = key_of(s);
        self.intern_key(s, word, len)
    }

    /// [`Interner::intern`] with the key already computed. Inlined into the row loop: it runs
    /// two or three times per row.
    #[inline(always)]
    fn intern_key(&mut self, s: &str, word: u64, len: u32) -> u32 {
        debug_assert!(!self.sorting, "names are kept sorted, not in the table");
        if table_size(self.len() + 1) > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = slot_of(word, len, self.shift);
        loop {
            let (slot_word, slot_len, slot_id) = self.slots[i];
            if slot_id == EMPTY {
                let id = self.len() as u32;
                self.arena.push_str(s);
                self.ends.push(self.arena.len());
                self.checked = self.len();
                self.slots[i] = (word, len, id);
                return id;
            }
            if slot_word == word && slot_len == len && (len <= 8 || self.get(slot_id) == s) {
                return slot_id;
            }
            i = (i + 1) & mask;
        }
    }

    /// Double the table (load factor stays ≤ ⅘).
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        self.rehash((self.slots.len() * 2).max(16));
    }

    /// Make room for `n` names in all, so that interning them needs no growing: each doubling
    /// writes a whole new table, and a million-row file's item table doubles fifteen times.
    pub(crate) fn reserve(&mut self, n: usize) {
        let more = n.saturating_sub(self.len());
        self.ends.reserve(more);
        // Names as long as those so far on average: the arena doubling its way there would
        // copy it each time and fault in twice its pages.
        if let Some(average) = self.arena.len().checked_div(self.len()) {
            self.arena.reserve(more * (average + 1));
        }
        if self.sorting {
            self.sorted.reserve(more);
            return;
        }
        let size = table_size(n);
        if size > self.slots.len() {
            self.rehash(size);
        }
    }

    /// Move the names to a table of `size` slots (a power of two).
    fn rehash(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, vec![(0, 0, EMPTY); size]);
        self.shift = 64 - size.trailing_zeros();
        for (word, len, id) in old {
            if id == EMPTY {
                continue;
            }
            let mut i = slot_of(word, len, self.shift);
            while self.slots[i].2 != EMPTY {
                i = (i + 1) & (size - 1);
            }
            self.slots[i] = (word, len, id);
        }
    }

    /// Add `s` with the next id without looking it up, for a name that is probably new; the
    /// lookup is batched in [`Interner::check`], which must run before any other use of the
    /// table. Until then, [`Interner::get`] and [`Interner::len`] include these names.
    #[inline]
    fn append_unchecked(&mut self, s: &str) -> u32 {
        let id = self.len() as u32;
        self.arena.push_str(s);
        self.ends.push(self.arena.len());
        id
    }

    /// Check the names added by [`Interner::append_unchecked`] for repeats. Returns `None`
    /// when all were new (their ids stand), else the final id of each, by id from the first
    /// unchecked one: a repeated name takes its first id, and the names after it move down;
    /// the names then move to the table, for [`Interner::intern`].
    ///
    /// Names that are all new (a file grouped by item) are checked by sorting, not by the
    /// table: a table lookup per name costs a cache miss, where sorting the new names' mixed
    /// keys and merging them with the checked ones reads memory in order. Equal keys are
    /// confirmed by comparing the names.
    fn check(&mut self) -> Option<Vec<u32>> {
        let (start, end) = (self.checked, self.len());
        if start == end {
            return None;
        }
        if !self.sorting {
            return Some(self.recheck(start, start));
        }
        self.merge_pending();
        // With no names checked yet, the batch is sorted into the room reserved for them.
        let room = if self.sorted.is_empty() {
            std::mem::take(&mut self.sorted)
        } else {
            Vec::new()
        };
        let batch = sort_keys(
            end - start,
            || {
                (start..end).map(|id| {
                    let (word, len) = key_of(self.get(id as u32));
                    (mixed(word, len), id as u32)
                })
            },
            room,
        );
        // The first name (by id) equal to a name before it.
        let mut repeat = usize::MAX;
        let mut i = 0;
        while i < batch.len() {
            let mut j = i + 1;
            while j < batch.len() && batch[j].0 == batch[i].0 {
                j += 1;
            }
            let group = &batch[i..j];
            for (n, &(_, later)) in group.iter().enumerate().skip(1) {
                if group[..n]
                    .iter()
                    .any(|&(_, earlier)| self.get(earlier) == self.get(later))
                {
                    repeat = repeat.min(later as usize);
                }
            }
            i = j;
        }
        let repeat = self.first_repeat(&batch, Some, repeat);
        self.settle(start, repeat, |this| this.merge_sorted(batch))
    }

    /// The end of a check of the names from id `start` on, `repeat` the first of them equal
    /// to an earlier name (`usize::MAX`: none): keep them sorted (`keep` records their keys),
    /// or move every name to the table and give the new names their final ids.
    fn settle(
        &mut self,
        start: usize,
        repeat: usize,
        keep: impl FnOnce(&mut Self),
    ) -> Option<Vec<u32>> {
        if repeat == usize::MAX {
            keep(self);
            self.checked = self.len();
            return None;
        }
        self.move_to_table(repeat);
        Some(self.recheck(start, repeat))
    }

    /// The smaller of `repeat` and the first new name equal to a checked one. `batch` holds
    /// (mixed key, id) of the new names ordered by key, their ids here given by `id` (`None`:
    /// not a new name, passed over); equal keys are confirmed by comparing the names.
    fn first_repeat(
        &self,
        batch: &[(u64, u32)],
        id: impl Fn(u32) -> Option<u32>,
        mut repeat: usize,
    ) -> usize {
        let (mut a, mut b) = (0, 0);
        while a < self.sorted.len() && b < batch.len() {
            let (key_a, key_b) = (self.sorted[a].0, batch[b].0);
            if key_a < key_b {
                a += 1;
            } else if key_b < key_a {
                b += 1;
            } else {
                let mut a_end = a;
                while a_end < self.sorted.len() && self.sorted[a_end].0 == key_a {
                    a_end += 1;
                }
                while b < batch.len() && batch[b].0 == key_a {
                    if let Some(later) = id(batch[b].1) {
                        let name = self.get(later);
                        if self.sorted[a..a_end]
                            .iter()
                            .any(|&(_, earlier)| self.get(earlier) == name)
                        {
                            repeat = repeat.min(later as usize);
                        }
                    }
                    b += 1;
                }
                a = a_end;
            }
        }
        repeat
    }

    /// Merge the keys left by [`Interner::append_sorted`] into `sorted`.
    fn merge_pending(&mut self) {
        if let Some(mut pending) = self.pending.take() {
            let mut keys = std::mem::take(&mut pending.keys);
            keys.retain_mut(|(_, id)| match pending.id(*id) {
                Some(here) => {
                    *id = here;
                    true
                }
                None => false,
            });
            self.merge_sorted(keys);
        }
    }

    /// Merge `batch` (ordered by key) into `sorted`, from the back, in place.
    fn merge_sorted(&mut self, batch: Vec<(u64, u32)>) {
        if self.sorted.is_empty() {
            // Taken as it is: copying it would fault in as many fresh pages again.
            self.sorted = batch;
            return;
        }
        let mut a = self.sorted.len();
        let mut b = batch.len();
        self.sorted.resize(a + b, (0, 0));
        for at in (0..a + b).rev() {
            if b == 0 {
                break;
            }
            if a > 0 && self.sorted[a - 1] > batch[b - 1] {
                self.sorted[at] = self.sorted[a - 1];
                a -= 1;
            } else {
                self.sorted[at] = batch[b - 1];
                b -= 1;
            }
        }
    }

    /// Stop sorting: put names `0..upto` (all distinct) in the table.
    #[cold]
    #[inline(never)]
    fn move_to_table(&mut self, upto: usize) {
        self.sorting = false;
        self.sorted = Vec::new();
        self.pending = None;
        self.rehash(table_size(self.len()));
        let mask = self.slots.len() - 1;
        for id in 0..upto as u32 {
            let (word, len) = key_of(self.get(id));
            let mut i = slot_of(word, len, self.shift);
            while self.slots[i].2 != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = (word, len, id);
        }
    }

    /// [`Interner::check`] of the names from id `start` on, knowing those before `repeat`
    /// (≥ `start`) to be new: names from `repeat` on are taken out and interned again in the
    /// table.
    ///
    /// When items come in any order this is how every row's item is looked up, a batch at a
    /// time, rather than as each row is read: each lookup reads a random place of a table
    /// larger than the cache, and a loop of nothing but lookups keeps several of those reads
    /// under way at once, where between the rows' lookups the work of reading a row left
    /// room for one (the wait was three quarters of reading a shuffled file).
    fn recheck(&mut self, start: usize, repeat: usize) -> Vec<u32> {
        let from = if repeat == 0 {
            0
        } else {
            self.ends[repeat - 1]
        };
        let names = self.arena.split_off(from);
        let ends: Vec<usize> = self.ends.drain(repeat..).collect();
        self.checked = repeat;
        let mut map: Vec<u32> = Vec::with_capacity(start.max(repeat) - start + ends.len());
        map.extend(start as u32..repeat as u32);
        let name = |i: usize| {
            let start = if i == 0 { from } else { ends[i - 1] };
            &names[start - from..ends[i] - from]
        };
        self.intern_each(ends.len(), name, &mut map);
        map
    }

    /// Intern names `name(0..n)` in that order, pushing their ids to `ids`, a group of
    /// names at a time: their slots are touched first, in a loop of loads that do not wait
    /// for each other, then looked up while those loads arrive.
    fn intern_each<'a>(&mut self, n: usize, name: impl Fn(usize) -> &'a str, ids: &mut Vec<u32>) {
        let mut group = [(0u64, 0u32); LOOKUP_GROUP];
        for first in (0..n).step_by(LOOKUP_GROUP) {
            let members = first..n.min(first + LOOKUP_GROUP);
            for (key, i) in group.iter_mut().zip(members.clone()) {
                *key = key_of(name(i));
            }
            // A loop of a few instructions per load, so that all of them fit in the core's
            // window of instructions under way.
            for &(word, len) in &group[..members.len()] {
                self.touch(word, len);
            }
            for (&(word, len), i) in group.iter().zip(members) {
                ids.push(self.intern_key(name(i), word, len));
            }
        }
    }

    /// Load the slot where a name with this key starts its probe, so that a lookup soon after
    /// finds it in the cache: a load whose value is kept (a prefetch instruction needs unsafe
    /// code).
    #[inline(always)]
    fn touch(&self, word: u64, len: u32) {
        if let Some(slot) = self.slots.get(slot_of(word, len, self.shift)) {
            std::hint::black_box(slot.2);
        }
    }

    /// Append `other`'s names from id `skip` on, as [`Interner::check`] would after appending
    /// them unchecked, with their ids here in order from this interner's length on. `other`
    /// must be sorting with every name checked (its names are distinct): its sorted keys are
    /// compared with this interner's as they are, and kept to be merged when next needed
    /// ([`Interner::merge_pending`]), so nothing is hashed, sorted or copied again.
    fn append_sorted(&mut self, other: Interner, skip: usize) -> Option<Vec<u32>> {
        debug_assert!(self.sorting && other.sorting && other.checked == other.len());
        debug_assert!(other.pending.is_none() && self.checked == self.len());
        self.merge_pending();
        let start = self.len();
        let from = if skip == 0 { 0 } else { other.ends[skip - 1] };
        let shift = self.arena.len() - from;
        self.arena.push_str(&other.arena[from..]);
        self.ends
            .extend(other.ends[skip..].iter().map(|&end| end + shift));
        let pending = Pending {
            keys: other.sorted,
            skip: skip as u32,
            base: start as u32,
        };
        let repeat = self.first_repeat(&pending.keys, |id| pending.id(id), usize::MAX);
        self.settle(start, repeat, |this| this.pending = Some(pending))
    }

    /// The ids here of all of `other`'s names, interned in `other`'s id order.
    fn intern_all(&mut self, other: &Interner) -> Vec<u32> {
        let mut ids = Vec::with_capacity(other.len());
        self.intern_each(other.len(), |id| other.get(id as u32), &mut ids);
        ids
    }

    /// All names, in id order.
    pub(crate) fn into_names(self) -> Names {
        Names {
            text: self.arena,
            ends: self.ends,
        }
    }
}

impl RatingsBuilder {
    /// A builder with the given domain rule and group column names.
    pub fn new(spec: DomainSpec, group_names: Vec<String>) -> Self {
        let group_values = group_names
            .iter()
            .map(|_| (Interner::default(), Vec::new()))
            .collect();
        RatingsBuilder {
            spec,
            group_names,
            items: Interner {
                sorting: true,
                ..Interner::default()
            },
            raters: Interner::default(),
            labels: Interner::default(),
            rows: Vec::new(),
            group_values,
            last_item: None,
            item_changes: 0,
            items_grouped: true,
            rows_checked: 0,
            last_rated: Vec::new(),
            grouped_duplicates: 0,
            byte_labels: [EMPTY; 256],
        }
    }

    /// Hint that the rows pushed so far are about `done` / `total` of all rows (counted in rows,
    /// bytes or any other unit). When every item so far came in a single run of rows (a file
    /// grouped by item), the number of items grows in proportion to the rows, and the item
    /// table is sized for all of them now instead of doubling its way there (each doubling
    /// writes a whole new table). A bad hint costs memory or time, never a different result.
    pub fn expect_rows(&mut self, done: usize, total: usize) {
        let n = self.items.len();
        if done == 0 || n == 0 || self.item_changes != n || total <= done {
            return;
        }
        let expected = (n as f64 * total as f64 / done as f64 * 1.125).min(total as f64);
        self.items.reserve(expected as usize);
    }

    /// Look up the item names taken to be new (see `items_grouped`), and give the rows their
    /// final item ids when some were not.
    fn check_items(&mut self) {
        let start = self.items.checked as u32;
        let map = self.items.check();
        self.renumber_items(start, map);
    }

    /// Give the rows from `rows_checked` on their final item ids after a check of the names
    /// from id `start` on (`map`: see [`Interner::check`]).
    fn renumber_items(&mut self, start: u32, map: Option<Vec<u32>>) {
        if let Some(map) = map {
            let fix = |i: &mut u32| {
                if *i >= start {
                    *i = map[(*i - start) as usize];
                }
            };
            for r in &mut self.rows[self.rows_checked..] {
                fix(&mut r.item);
            }
            if let Some((i, _, _)) = &mut self.last_item {
                fix(i);
            }
            self.items_grouped = false;
        }
        self.rows_checked = self.rows.len();
    }

    /// Make room for `additional` more rows (a hint; pushing more is fine).
    pub fn reserve(&mut self, additional: usize) {
        self.rows.reserve(additional);
        for (_, per_row) in &mut self.group_values {
            per_row.reserve(additional);
        }
    }

    /// Number of rows pushed so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Check the item names taken to be new so far. [`RatingsBuilder::append`] and
    /// [`RatingsBuilder::build`] do it themselves; a thread that filled this builder calls it
    /// to do that work before handing the builder on.
    pub fn check_items_now(&mut self) {
        self.check_items();
    }

    /// Add one rating. `groups` must have one entry per group column (`None` = missing).
    /// With an explicit domain, an unknown label is rejected here, so callers can report the
    /// offending line.
    ///
    /// Always inlined: the readers call it once per row, and the call (arguments on the stack,
    /// the error returned through memory) was 3.6% of the instructions of reading a million
    /// rows and computing α.
    #[inline(always)]
    pub fn push(
        &mut self,
        item: &str,
        rater: &str,
        label: &str,
        groups: &[Option<&str>],
    ) -> Result<(), StatsError> {
        if groups.len() != self.group_names.len() {
            return Err(StatsError::GroupArity {
                expected: self.group_names.len(),
                got: groups.len(),
            });
        }
        let label_i = match &self.spec {
            DomainSpec::Explicit(d) => {
                d.index_of(label).ok_or_else(|| StatsError::UnknownLabel {
                    label: label.to_string(),
                    domain: d.values().to_vec(),
                })? as u32
            }
            DomainSpec::Infer(_) => match *label.as_bytes() {
                [b] => match self.byte_labels[usize::from(b)] {
                    EMPTY => {
                        let id = self.labels.intern(label);
                        self.byte_labels[usize::from(b)] = id;
                        id
                    }
                    id => id,
                },
                _ => self.labels.intern(label),
            },
        };
        let (word, len) = key_of(item);
        let item_i = match self.last_item {
            Some((i, w, l)) if w == word && l == len && (len <= 8 || self.items.get(i) == item) => {
                i
            }
            _ => {
                // Sorted batches grow with the names checked, so that merging stays linear
                // overall; the table takes batches of a fixed size that stays in the cache.
                let unchecked = self.items.len() - self.items.checked;
                let batch = if self.items.sorting {
                    ITEM_BATCH.max(self.items.checked)
                } else {
                    ITEM_BATCH
                };
                if unchecked >= batch {
                    self.check_items();
                }
                let i = self.items.append_unchecked(item);
                self.last_item = Some((i, word, len));
                self.item_changes += 1;
                i
            }
        };
        let rater_i = self.raters.intern(rater);
        let row = Rating {
            item: item_i,
            rater: rater_i,
            label: label_i,
        };
        if self.items_grouped {
            count_grouped_duplicate(&mut self.last_rated, &mut self.grouped_duplicates, row);
        }
        self.rows.push(row);
        for (g, (values, per_row)) in groups.iter().zip(self.group_values.iter_mut()) {
            per_row.push(g.map(|v| values.intern(v)));
        }
        Ok(())
    }

    /// Append the rows of `other`, a builder with the same domain rule and group columns that
    /// was filled with the rows that follow this builder's (the second half of a file read on
    /// another thread). The result is the builder that pushing all rows in order would give:
    /// names new to `self` get the ids they would have got row by row.
    ///
    /// When both halves came grouped by item, `other`'s items are new here except perhaps its
    /// first, the continuation of this builder's last: its sorted item keys are compared with
    /// this builder's in one merging pass, and its duplicates, counted as its rows came, need
    /// only a look at that first item. The merge then costs one pass over `other`'s rows,
    /// giving them their ids here in place, and a copy.
    ///
    /// # Panics
    /// When the group columns differ.
    pub fn append(&mut self, mut other: RatingsBuilder) {
        assert_eq!(
            self.group_names, other.group_names,
            "appending a builder with other group columns"
        );
        self.check_items();
        other.check_items();
        let labels: Option<Vec<u32>> = match self.spec {
            DomainSpec::Explicit(_) => None,
            DomainSpec::Infer(_) => Some(self.labels.intern_all(&other.labels)),
        };
        let raters = self.raters.intern_all(&other.raters);
        let grouped = self.items_grouped && other.items_grouped;
        // Grouped: other's item 0 is its first row's item. When it continues this builder's
        // last item it keeps that item's id; other's other items follow this builder's.
        let continued = self.last_item.map(|(last, _, _)| last).filter(|&last| {
            grouped && other.items.len() > 0 && self.items.get(last) == other.items.get(0)
        });
        let start = self.items.len() as u32;
        let skip = u32::from(continued.is_some());
        let table_ids = (!grouped).then(|| {
            if self.items.sorting {
                self.items.move_to_table(self.items.len());
                self.items_grouped = false;
            }
            self.items.intern_all(&other.items)
        });
        let item_id = |id: u32| match (&table_ids, continued) {
            (Some(ids), _) => ids[id as usize],
            (None, Some(last)) if id == 0 => last,
            (None, _) => start + id - skip,
        };
        self.item_changes += other.item_changes - skip as usize;
        // Other's rows take their ids here in place, in memory already paged in, and are then
        // copied on in one go; meanwhile another thread checks other's item names. Rows keep
        // provisional item ids until the check is in.
        let other_items = std::mem::take(&mut other.items);
        let (items, rows) = (&mut self.items, &mut self.rows);
        let at = rows.len();
        let check = std::thread::scope(|s| {
            let check =
                grouped.then(|| s.spawn(|| items.append_sorted(other_items, skip as usize)));
            for r in &mut other.rows {
                *r = Rating {
                    item: item_id(r.item),
                    rater: raters[r.rater as usize],
                    label: labels.as_ref().map_or(r.label, |l| l[r.label as usize]),
                };
            }
            rows.extend_from_slice(&other.rows);
            check.map(|h| h.join().expect("item check panicked"))
        });
        if grouped {
            // Other counted its own duplicates. Only its first item can also have been rated
            // here (its others are new, or the check found otherwise and `build` counts
            // afresh): a rater of that item here repeats at its first row there. Then each of
            // other's raters last rated what it last rated there.
            let appended = &self.rows[at..];
            let stamp = appended.first().map_or(0, |r| r.item + 1);
            let mut across = 0;
            for r in appended.iter().take_while(|r| r.item + 1 == stamp) {
                if let Some(last) = self.last_rated.get_mut(r.rater as usize)
                    && *last == stamp
                {
                    across += 1;
                    *last = 0;
                }
            }
            self.grouped_duplicates += other.grouped_duplicates + across;
            for (rater, &last) in other.last_rated.iter().enumerate() {
                if last != 0 {
                    let rater = raters[rater] as usize;
                    if rater >= self.last_rated.len() {
                        self.last_rated.resize(rater + 1, 0);
                    }
                    self.last_rated[rater] = item_id(last - 1) + 1;
                }
            }
        }
        for ((values, per_row), (other_values, other_per_row)) in
            self.group_values.iter_mut().zip(&other.group_values)
        {
            let map = values.intern_all(other_values);
            per_row.extend(other_per_row.iter().map(|g| g.map(|g| map[g as usize])));
        }
        if let Some((i, word, len)) = other.last_item {
            self.last_item = Some((item_id(i), word, len));
        }
        match check {
            Some(map) => self.renumber_items(start, map),
            None => self.rows_checked = self.rows.len(),
        }
    }

    /// Finish the table, applying the duplicate policy.
    pub fn build(mut self, policy: DuplicatePolicy) -> Result<Ratings, StatsError> {
        self.check_items();
        let RatingsBuilder {
            spec,
            group_names,
            items,
            raters,
            labels,
            mut rows,
            group_values,
            items_grouped,
            grouped_duplicates,
            ..
        } = self;
        let (items, raters, labels) =
            (items.into_names(), raters.into_names(), labels.into_names());
        let domain = match spec {
            DomainSpec::Explicit(d) => d,
            DomainSpec::Infer(kind) => {
                let d = LabelDomain::infer(labels.iter(), kind);
                // Remap first-seen label indices to domain order.
                let remap: Vec<u32> = labels
                    .iter()
                    .map(|l| d.index_of(l).unwrap_or(0) as u32)
                    .collect();
                for r in &mut rows {
                    r.label = remap[r.label as usize];
                }
                d
            }
        };
        let mut groups: Vec<GroupColumn> = group_names
            .into_iter()
            .zip(group_values)
            .map(|(name, (values, per_row))| GroupColumn {
                name,
                values: values.into_names().iter().map(str::to_string).collect(),
                per_row,
            })
            .collect();

        if items_grouped && policy == DuplicatePolicy::KeepAll {
            // Every item's rows are one run, and the duplicates were counted as they came.
            return Ok(Ratings {
                domain,
                items,
                raters,
                rows,
                groups,
                n_duplicates: grouped_duplicates,
                item_ordered: true,
            });
        }
        let item_ordered = in_item_order(&rows);
        let n_duplicates = settle_duplicates(
            &mut rows,
            &mut groups,
            &items,
            &raters,
            policy,
            item_ordered,
        )?;
        Ok(Ratings {
            domain,
            items,
            raters,
            rows,
            groups,
            n_duplicates,
            item_ordered,
        })
    }
}

/// Count the rows whose rater already rated their item and apply `policy` to them (dropping
/// rows from `rows` and each group column alike). [`RatingsBuilder::build`] and
/// [`Ratings::from_codes`] both settle duplicates here, so the two cannot drift apart.
///
/// Items are visited in id order with a per-rater stamp of the last item seen: linear in rows,
/// items and raters, no hash map over a million pairs. Rows in item order (the usual layout)
/// are walked in place; others through a stable counting sort by item, so `First` and `Last`
/// mean input order and `Error` names the first repeat of the lowest item either way.
pub(crate) fn settle_duplicates(
    rows: &mut Vec<Rating>,
    groups: &mut [GroupColumn],
    items: &Names,
    raters: &Names,
    policy: DuplicatePolicy,
    item_ordered: bool,
) -> Result<usize, StatsError> {
    if policy == DuplicatePolicy::KeepAll && !item_ordered {
        // Nothing to drop: counting needs only the raters grouped, not the row order.
        return Ok(count_duplicates(rows, items.len(), raters.len()));
    }
    let mut stamp = vec![u32::MAX; raters.len()];
    // Per rater, the row kept for its current item (`Last` moves it).
    let mut kept = vec![0usize; raters.len()];
    let mut drop = Vec::new();
    let mut n_duplicates = 0;
    let mut visit = |ri: usize, r: Rating| -> Result<(), StatsError> {
        let rater = r.rater as usize;
        if stamp[rater] != r.item {
            stamp[rater] = r.item;
            kept[rater] = ri;
            return Ok(());
        }
        n_duplicates += 1;
        match policy {
            DuplicatePolicy::KeepAll => {}
            DuplicatePolicy::First => drop.push(ri),
            DuplicatePolicy::Last => {
                drop.push(kept[rater]);
                kept[rater] = ri;
            }
            DuplicatePolicy::Error => {
                return Err(StatsError::DuplicateRating {
                    item: items[r.item as usize].to_string(),
                    rater: raters[rater].to_string(),
                });
            }
        }
        Ok(())
    };
    if item_ordered {
        for (ri, r) in rows.iter().enumerate() {
            visit(ri, *r)?;
        }
    } else {
        let (order, _) = group_by_item(rows, items.len());
        for ri in order {
            visit(ri as usize, rows[ri as usize])?;
        }
    }
    if !drop.is_empty() {
        let mut keep = vec![true; rows.len()];
        for ri in drop {
            keep[ri] = false;
        }
        let mut i = 0;
        rows.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        for g in groups {
            let mut i = 0;
            g.per_row.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
    }
    Ok(n_duplicates)
}

/// Count `row` as a duplicate when its rater already rated its item, which (items coming
/// grouped) can only have been in the run of rows just before it. `last_rated` holds 1 + the
/// last item id of each rater (0: none).
#[inline]
fn count_grouped_duplicate(last_rated: &mut Vec<u32>, count: &mut usize, row: Rating) {
    let rater = row.rater as usize;
    if rater >= last_rated.len() {
        last_rated.resize(rater + 1, 0);
    }
    let last = &mut last_rated[rater];
    if *last == row.item + 1 {
        *count += 1;
    }
    *last = row.item + 1;
}

/// The number of rows whose rater already rated their item, for rows in any order: the
/// raters are grouped by item (a counting sort of the rater ids alone, so that the rows are
/// read in order and only written out of it), then each item's raters stamped in turn.
fn count_duplicates(rows: &[Rating], n_items: usize, n_raters: usize) -> usize {
    let mut starts = vec![0u32; n_items + 1];
    for r in rows {
        starts[r.item as usize + 1] += 1;
    }
    for i in 0..n_items {
        starts[i + 1] += starts[i];
    }
    let mut next = starts.clone();
    let mut by_item = vec![0u32; rows.len()];
    for r in rows {
        let at = &mut next[r.item as usize];
        by_item[*at as usize] = r.rater;
        *at += 1;
    }
    let mut stamp = vec![u32::MAX; n_raters];
    let mut duplicates = 0;
    for (item, w) in starts.windows(2).enumerate() {
        for &rater in &by_item[w[0] as usize..w[1] as usize] {
            let last = &mut stamp[rater as usize];
            if *last == item as u32 {
                duplicates += 1;
            }
            *last = item as u32;
        }
    }
    duplicates
}

/// Whether the rows come in item order, so that each item's rows are one run. Ids follow first
/// appearance, so this is exactly a file grouped by item (the usual layout), and it stays true
/// of any subset of the rows.
pub(crate) fn in_item_order(rows: &[Rating]) -> bool {
    rows.windows(2).all(|w| w[0].item <= w[1].item)
}

/// Row indices grouped by item (counting sort, stable in input order) and the start offset of
/// each item's rows; `starts` has `n_items + 1` entries.
pub(crate) fn group_by_item(rows: &[Rating], n_items: usize) -> (Vec<u32>, Vec<usize>) {
    let mut starts = vec![0usize; n_items + 1];
    for r in rows {
        starts[r.item as usize + 1] += 1;
    }
    for i in 0..n_items {
        starts[i + 1] += starts[i];
    }
    let mut next = starts.clone();
    let mut order = vec![0u32; rows.len()];
    for (i, r) in rows.iter().enumerate() {
        order[next[r.item as usize]] = i as u32;
        next[r.item as usize] += 1;
    }
    (order, starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parts_are_the_text_end_to_end_and_each_end() {
        let names: Names = ["a", "", "bc", "ü"].into_iter().collect();
        let (text, ends) = names.parts();
        assert_eq!((text, ends), ("abcü", &[1, 1, 3, 5][..]));
        let mut start = 0;
        for (id, &end) in ends.iter().enumerate() {
            assert_eq!(&text[start..end], &names[id]);
            start = end;
        }
        assert_eq!(Names::default().parts(), ("", &[][..]));
    }

    #[test]
    fn regroup_and_without_group_keep_rows() {
        let mut b = RatingsBuilder::new(
            DomainSpec::Infer(LabelKind::Nominal),
            vec!["g".into(), "text".into()],
        );
        for (r, g) in [("x", Some("b")), ("y", Some("a")), ("z", None)] {
            b.push("i", r, "1", &[g, Some("hello")]).unwrap();
        }
        let t = b.build(DuplicatePolicy::KeepAll).unwrap();
        let swapped = t
            .regroup("g", vec!["a".into(), "b".into()], |v| Some(1 - v))
            .unwrap();
        let col = swapped.group("g").unwrap();
        assert_eq!(col.values, ["a", "b"]);
        assert_eq!(col.per_row, [Some(1), Some(0), None]);
        assert!(t.regroup("g", vec![], Some).is_err());
        assert!(t.regroup("nope", vec![], Some).is_err());
        let (rest, text) = t.without_group("text").unwrap();
        assert_eq!(text.values, ["hello"]);
        assert_eq!(rest.groups().len(), 1);
        assert_eq!(rest.n_ratings(), 3);
    }

    fn table(policy: DuplicatePolicy) -> Result<Ratings, StatsError> {
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for (i, r, l) in [
            ("a", "x", "10"),
            ("a", "x", "2"),
            ("a", "y", "2"),
            ("a", "x", "-1"),
        ] {
            b.push(i, r, l, &[])?;
        }
        b.build(policy)
    }

    #[test]
    fn short_word_is_the_zero_padded_bytes() {
        let bytes = *b"\x01abcdefg\xff";
        for start in 0..2 {
            for n in 0..=8 {
                let b = &bytes[start..start + n];
                let mut w = [0u8; 8];
                w[..n].copy_from_slice(b);
                assert_eq!(short_word(b), u64::from_le_bytes(w), "{b:?}");
            }
        }
    }

    #[test]
    fn numeric_spellings_of_one_number_are_one_label() {
        let d = LabelDomain::infer(
            ["1.0", "0", "0.0", "1", "0e0", "-0", "2"],
            LabelKind::Nominal,
        );
        assert_eq!(d.values(), ["0", "1", "2"]);
        assert_eq!(d.numeric(), Some(&[0.0, 1.0, 2.0][..]));
        assert_eq!(
            d.merged(),
            [("-0", "0"), ("0.0", "0"), ("0e0", "0"), ("1.0", "1")]
        );
        assert_eq!(d.index_of("0.0"), Some(0));
        assert_eq!(d.index_of("1.0"), Some(1));
        // Text labels are never merged.
        let t = LabelDomain::infer(["yes", "Yes", "1"], LabelKind::Nominal);
        assert_eq!(t.len(), 3);
        assert!(t.merged().is_empty());
        // Perfectly agreeing raters who write 0 / 0.0 agree.
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for (item, rater, label) in [
            ("a", "r1", "0"),
            ("a", "r2", "0.0"),
            ("b", "r1", "1"),
            ("b", "r2", "1.0"),
        ] {
            b.push(item, rater, label, &[]).unwrap();
        }
        let t = b.build(DuplicatePolicy::KeepAll).unwrap();
        assert_eq!(t.domain().len(), 2);
        let labels: Vec<u32> = t.rows().iter().map(|r| r.label).collect();
        assert_eq!(labels, [0, 0, 1, 1]);
    }

    #[test]
    fn infer_sorts_numbers_numerically() {
        let t = table(DuplicatePolicy::KeepAll).unwrap();
        assert_eq!(t.domain().values(), ["-1", "2", "10"]);
        assert_eq!(t.n_ratings(), 4);
        assert_eq!(t.n_duplicates(), 2);
    }

    #[test]
    fn duplicate_policies() {
        let first = table(DuplicatePolicy::First).unwrap();
        let labels: Vec<u32> = first.rows().iter().map(|r| r.label).collect();
        assert_eq!(labels, [2, 1]);
        let last = table(DuplicatePolicy::Last).unwrap();
        let labels: Vec<u32> = last.rows().iter().map(|r| r.label).collect();
        assert_eq!(labels, [1, 0]);
        assert!(matches!(
            table(DuplicatePolicy::Error),
            Err(StatsError::DuplicateRating { .. })
        ));
    }

    /// Item ids are in order of first appearance whether items come grouped, come back after
    /// others (found in a batch lookup, within or after the first batch), or both.
    #[test]
    fn item_ids_follow_first_appearance() {
        // Grouped; grouped, then repeats of the first batch's items, or of items merged from
        // several batches; interleaved. Names of at most 8 bytes and longer ones are keyed
        // differently.
        let layouts: [&dyn Fn(usize) -> usize; 4] = [
            &|i| i / 2,
            &|i| if i < 200_000 { i / 2 } else { i % 1000 },
            &|i| if i < 290_000 { i / 2 } else { 100_000 + i % 7 },
            &|i| (i * 7919) % 5000,
        ];
        let formats: [&dyn Fn(usize) -> String; 2] =
            [&|i| format!("item {i}"), &|i| format!("{i:x}")];
        for (items, name_of) in layouts
            .iter()
            .flat_map(|l| formats.iter().map(move |f| (l, f)))
        {
            let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
            let mut first_seen: HashMap<String, u32> = HashMap::new();
            let mut want = Vec::new();
            for i in 0..300_000 {
                let name = name_of(items(i));
                let n = first_seen.len() as u32;
                want.push(*first_seen.entry(name.clone()).or_insert(n));
                b.push(&name, "r", "1", &[]).unwrap();
                if i == 1000 {
                    b.expect_rows(i, 300_000);
                }
            }
            let t = b.build(DuplicatePolicy::KeepAll).unwrap();
            let got: Vec<u32> = t.rows().iter().map(|r| r.item).collect();
            assert_eq!(got, want);
            assert_eq!(t.n_items(), first_seen.len());
            for (name, &id) in &first_seen {
                assert_eq!(&t.items()[id as usize], name.as_str());
            }
        }
    }

    /// Appending builders filled with the later rows (in two or three parts) gives the table of
    /// pushing every row, also when more rows are pushed after: items grouped (an item's run
    /// crossing a split, raters repeating across it), items scattered, an item of the first
    /// part coming back in a later one, each under every duplicate policy.
    #[test]
    fn append_equals_pushing_in_order() {
        type Row = (String, String, String, Option<String>);
        let layouts: [&dyn Fn(usize) -> usize; 3] = [&|i| i / 4, &|i| (i * 7) % 90, &|i| {
            if i == 420 { 3 } else { i / 5 }
        }];
        for items in layouts {
            let rows: Vec<Row> = (0..500)
                .map(|i| {
                    let g = (i % 5 != 0).then(|| format!("g{}", i % 3));
                    (
                        format!("i{}", items(i)),
                        format!("rater-number-{}", (i * 3) % 13 % 5),
                        format!("{}", i % 4),
                        g,
                    )
                })
                .collect();
            let new =
                || RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec!["g".into()]);
            let push = |b: &mut RatingsBuilder, rows: &[Row]| {
                for (i, r, l, g) in rows {
                    b.push(i, r, l, &[g.as_deref()]).unwrap();
                }
            };
            // Rows pushed after the appends: the last item again (its raters repeating), items
            // of every part coming back, then a new one.
            let item = |at: usize| rows[at].0.clone();
            let more: Vec<Row> = [499, 499, 499, 450, 350, 120, 0]
                .into_iter()
                .map(item)
                .chain(["i-new".to_string()])
                .enumerate()
                .map(|(i, item)| (item, format!("rater-number-{}", i % 4), "1".into(), None))
                .collect();
            let mut whole = new();
            push(&mut whole, &rows);
            let mut whole_more = whole.clone();
            push(&mut whole_more, &more);
            for (split, split2) in [
                (0, 0),
                (1, 1),
                (2, 300),
                (250, 250),
                (251, 400),
                (100, 101),
                (499, 500),
                (500, 500),
            ] {
                let (mut head, mut mid, mut tail) = (new(), new(), new());
                push(&mut head, &rows[..split]);
                push(&mut mid, &rows[split..split2]);
                push(&mut tail, &rows[split2..]);
                head.append(mid);
                head.append(tail);
                let mut head_more = head.clone();
                push(&mut head_more, &more);
                for policy in [
                    DuplicatePolicy::KeepAll,
                    DuplicatePolicy::First,
                    DuplicatePolicy::Last,
                ] {
                    assert_eq!(
                        head.clone().build(policy).unwrap(),
                        whole.clone().build(policy).unwrap(),
                        "split {split}, {split2}, {policy:?}"
                    );
                    assert_eq!(
                        head_more.clone().build(policy).unwrap(),
                        whole_more.clone().build(policy).unwrap(),
                        "split {split}, {split2}, then more rows, {policy:?}"
                    );
                }
            }
        }
    }

    /// Duplicates counted as the rows arrive (items grouped, keep all) equal those the
    /// policies' own pass finds, in grouped and scattered tables.
    #[test]
    fn duplicates_counted_on_the_way_equal_the_pass() {
        let mut rng = 0x9e37_79b9_u64;
        let mut next = |m: u64| {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (rng >> 33) % m
        };
        for grouped in [true, false] {
            for _ in 0..50 {
                let rows: Vec<(String, String)> = (0..next(400))
                    .map(|i| {
                        let item = if grouped { i / 7 } else { next(30) };
                        (format!("i{item}"), format!("r{}", next(6)))
                    })
                    .collect();
                let build = |policy| {
                    let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
                    for (item, rater) in &rows {
                        b.push(item, rater, "1", &[]).unwrap();
                    }
                    b.build(policy).unwrap()
                };
                let (all, first) = (
                    build(DuplicatePolicy::KeepAll),
                    build(DuplicatePolicy::First),
                );
                assert_eq!(all.n_duplicates(), first.n_duplicates());
                assert_eq!(all.n_ratings() - first.n_ratings(), all.n_duplicates());
                for t in [&all, &first, &all.filter_rows(|i| i % 3 != 1)] {
                    assert_eq!(t.in_item_order(), in_item_order(t.rows()));
                }
            }
        }
    }

    /// The bucket sort gives `sort_unstable`'s order, on spread keys, on keys that share
    /// their top bits, and on repeated keys.
    #[test]
    fn sort_keys_equals_sort_unstable() {
        let mut next = crate::util::xorshift(0x2545_f491_4f6c_dd1d);
        for n in [0, 1, 255, 256, 1000, 70_000] {
            let spread: Vec<(u64, u32)> = (0..n).map(|i| (next(), i as u32)).collect();
            let clustered: Vec<(u64, u32)> =
                (0..n).map(|i| (next() >> 40, (n - i) as u32)).collect();
            let repeated: Vec<(u64, u32)> =
                (0..n).map(|i| ((next() % 7) << 61, i as u32)).collect();
            for keys in [spread, clustered, repeated] {
                let mut want = keys.clone();
                want.sort_unstable();
                let got = sort_keys(keys.len(), || keys.iter().copied(), vec![(1, 1)]);
                assert_eq!(got, want, "n = {n}");
            }
        }
    }

    #[test]
    fn names_with_equal_sort_keys_stay_apart() {
        let (a, b) = ("abcdefg", "abcdefg\u{f}");
        let (wa, la) = key_of(a);
        let (wb, lb) = key_of(b);
        assert_eq!(
            mixed(wa, la),
            mixed(wb, lb),
            "the test needs colliding keys"
        );
        let mut builder = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for item in [a, b, "x", b, a] {
            builder.push(item, "r", "1", &[]).unwrap();
        }
        let t = builder.build(DuplicatePolicy::KeepAll).unwrap();
        let ids: Vec<u32> = t.rows().iter().map(|r| r.item).collect();
        assert_eq!(ids, [0, 1, 2, 1, 0]);
        assert!(t.items().iter().eq([a, b, "x"]));
    }

    #[test]
    fn explicit_domain_rejects_unknown_labels() {
        let d = LabelDomain::new(vec!["no".into(), "yes".into()], LabelKind::Nominal).unwrap();
        let mut b = RatingsBuilder::new(DomainSpec::Explicit(d), vec![]);
        assert!(b.push("i", "r", "yes", &[]).is_ok());
        assert!(matches!(
            b.push("i", "r", "maybe", &[]),
            Err(StatsError::UnknownLabel { .. })
        ));
        assert!(LabelDomain::new(vec!["a".into(), "a".into()], LabelKind::Nominal).is_err());
    }
}

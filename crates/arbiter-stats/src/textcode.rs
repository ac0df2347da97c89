//! A large text column coded to dense ids in order of first appearance, each row's lookup in
//! a table small enough for the core's cache.
//!
//! A column of a few thousand names (raters, groups) is coded in one pass through one table
//! ([`FEW_NAMES`]), which stays in the cache. One table over a few hundred thousand names
//! (items) does not, so when rows come in any order (an export ordered by time) nearly every
//! row's lookup would wait on memory; such a column is split instead. Its rows are first split by the top bits of their hash into [`PARTS`]
//! partitions (each half of the rows on a thread, appending to buffers in row order), then
//! each partition's names are numbered in a table of its own (each half of the partitions on a
//! thread), whose few thousand slots stay in the cache. Every lookup that finds an equal hash
//! compares the texts, so the coding is exact whatever the hashes do; a text of up to 7 bytes
//! (most ids) travels with its row as one word, so that comparing it reads no text. Rows with
//! the text of the row before (an item's rows together) join that row's entry as a run, so
//! they are neither hashed nor looked up again.
//!
//! Numbering by first appearance follows from the buffers keeping row order: a partition
//! numbers its names in the order of their first rows, and the global id of a name is the rank
//! of its first row among all names' first rows, read off a bitset of first rows.
//!
//! Where only per-name sums are wanted (α's label counts per item), [`count_texts`] counts each
//! partition's rows as it numbers them: no code per row is written and read back, no names are
//! ranked, and rows in any order carry their label through the split, so counting never reads
//! a label by a row number that jumps. The usual export (short ids in any order, a few
//! labels) splits each row as one word, its text and label together ([`ShortEntry`]): half
//! the bytes to write and read back, which counts a million such rows about 1.3 times as fast.

use crate::table::Names;

/// Rows from which [`code_texts`] splits the work; below it one interner is as fast.
pub const MIN_ROWS: usize = 1 << 16;

/// The code of a missing row.
pub const MISSING: u32 = u32::MAX;
const NULL: u32 = MISSING;

/// A column of texts read by row number, where a row may be missing (an Arrow string array's
/// chunks, say). Reading in order is what most of the work does, hence [`TextColumn::each`].
pub trait TextColumn: Sync {
    /// Number of rows.
    fn len(&self) -> usize;
    /// True when there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Call `f(row, text)` for each row of `rows`, in order (`None` where missing).
    fn each<'s>(&'s self, rows: std::ops::Range<usize>, f: impl FnMut(usize, Option<&'s str>));
    /// The text of `row`, which is not missing.
    fn text(&self, row: usize) -> &str;
}

/// [`Entry::word`] of a text longer than 7 bytes.
const LONG: u64 = u64::MAX;

/// The hash of a text used to split and look up rows.
#[inline]
pub fn text_hash(s: &str) -> u64 {
    key(s).0
}

/// A text's hash, and the text itself as one word when it has at most 7 bytes (its bytes, its
/// length in the top byte), else [`LONG`]. The bytes are read as whole words, overlapping at
/// the end, never copied to a buffer first: a copy of a few bytes then read as a word stalls
/// the load on the stores (that was a third of the time of coding a million short ids).
#[inline]
fn key(s: &str) -> (u64, u64) {
    let b = s.as_bytes();
    let n = b.len();
    let word8 = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let word4 = |i: usize| u64::from(u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes")));
    if n <= 7 {
        let bytes = if n >= 4 {
            word4(0) | word4(n - 4) << (8 * (n - 4))
        } else if n > 0 {
            u64::from(b[0])
                | u64::from(b[n / 2]) << (8 * (n / 2))
                | u64::from(b[n - 1]) << (8 * (n - 1))
        } else {
            0
        };
        let word = bytes | (n as u64) << 56;
        return (finish(mix(0, word)), word);
    }
    let mut h = mix(0, n as u64);
    let mut i = 0;
    while i + 8 < n {
        h = mix(h, word8(i));
        i += 8;
    }
    (finish(mix(h, word8(n - 8))), LONG)
}

/// One step of the Fx multiply-rotate hash.
#[inline]
fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

/// Spread every bit of `h` over the top bits, which choose the partition.
#[inline]
fn finish(h: u64) -> u64 {
    let h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Number of partitions: at a million rows of 200,000 names, about 800 names and 4,000 rows
/// each, a table of a few thousand slots.
const PARTS: usize = 256;

/// A row, or a run of rows with the same text, in a partition, packed in 128 bits: a word
/// (bits 0–63) that holds the text's short form, or its hash when it is long, and is replaced
/// by its name's id within the partition once numbered; its first row (64–95); and a tag
/// (96–127). When coding, the tag is the run's length: an item's rows usually come together,
/// and a run is then looked up once. When counting, rows are never joined and the tag is the
/// row's label, read here in row order rather than later by a row number that jumps.
///
/// Sixteen bytes, not the 24 of hash, short form, row and tag: splitting rows in any order is
/// bound by writing entries to 256 places at once, and a third less to write made counting a
/// million shuffled rows about an eighth faster; a buffer of plain integers can also come
/// zeroed from the allocator rather than be written with zeros first. A short text's hash is
/// recomputed from its word when looked up.
type Entry = u128;

/// The top byte of an entry's word that marks a long text's hash (a short form's top byte is
/// its length, at most 7). The hash's own top byte is its partition's number, known anyway.
const HASHED: u64 = 0xFF << 56;

/// The entry of a text with this hash and short form (see [`key`]).
#[inline]
fn entry(hash: u64, word: u64, row: u32, tag: u32) -> Entry {
    let word = if word == LONG { hash | HASHED } else { word };
    u128::from(word) | u128::from(row) << 64 | u128::from(tag) << 96
}

#[inline]
fn word_of(e: Entry) -> u64 {
    e as u64
}

#[inline]
fn row_of(e: Entry) -> u32 {
    (e >> 64) as u32
}

#[inline]
fn tag_of(e: Entry) -> u32 {
    (e >> 96) as u32
}

/// The hash and short form by which an entry's text is looked up in its partition's table:
/// a short text's hash from its word, a long one's stored hash (with [`HASHED`] for its top
/// byte, the same for every text of the partition) and [`LONG`].
#[inline]
fn lookup_key(e: Entry, hashing: impl Hashing) -> (u64, u64) {
    let word = word_of(e);
    if word & HASHED == HASHED {
        (word, LONG)
    } else {
        (hashing.short_hash(word), word)
    }
}

/// How texts are hashed: [`Fx`], or in tests a hashing that makes every hash collide.
trait Hashing: Copy + Send + Sync {
    /// A text's hash and short form, as [`key`] gives them.
    fn key(self, s: &str) -> (u64, u64);
    /// The hash of a short text from its short form, equal to `key`'s.
    fn short_hash(self, word: u64) -> u64;
}

/// The hashing of [`key`].
#[derive(Clone, Copy)]
struct Fx;

impl Hashing for Fx {
    #[inline]
    fn key(self, s: &str) -> (u64, u64) {
        key(s)
    }

    #[inline]
    fn short_hash(self, word: u64) -> u64 {
        finish(mix(0, word))
    }
}

/// The partition of a hash (its top bits).
#[inline]
fn part(hash: u64) -> usize {
    (hash >> 56) as usize
}

/// Each row's code ([`MISSING`] for a missing row) and the names by code, numbered in order
/// of first appearance as `RatingsBuilder` numbers them; `None` for fewer than [`MIN_ROWS`]
/// rows or too many rows for `u32` codes.
pub fn code_texts<C: TextColumn>(rows: &C) -> Option<(Vec<u32>, Names)> {
    if rows.len() < MIN_ROWS || rows.len() >= u32::MAX as usize {
        return None;
    }
    Some(code_few(rows, Fx).unwrap_or_else(|| code_split(rows, Fx)))
}

/// Distinct names up to which one table codes the whole column on one thread: its slots stay
/// in the core's cache, so a row costs a hash and a lookup that finds its slot there (raters
/// and groups: a few hundred names over a million rows). Past it the column is split by hash.
const FEW_NAMES: usize = 1 << 12;

/// Rows read between checks for too many names.
const BLOCK_ROWS: usize = 1 << 14;

/// [`code_texts`] through one table of names, or `None` once the column has more than
/// [`FEW_NAMES`] names. Each half of the rows is coded on a thread with a table of its own;
/// the second half's names are then looked up in the first's (added after its own, in order of
/// first appearance) and its codes renumbered, so the numbering is the one-pass numbering.
fn code_few<C: TextColumn>(rows: &C, hashing: impl Hashing) -> Option<(Vec<u32>, Names)> {
    let n = rows.len();
    let mid = n / 2;
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| code_few_rows(rows, mid..n, hashing));
        (
            code_few_rows(rows, 0..mid, hashing),
            second.join().expect("coding thread panicked"),
        )
    });
    let (mut codes, mut names, mut table) = first?;
    let (later, later_names, _) = second?;
    let mut ids = Vec::with_capacity(later_names.len());
    for s in later_names {
        let (hash, word) = hashing.key(s);
        let (id, new) = table.find_or_add(hash, word, || s, names.len() < FEW_NAMES)?;
        if new {
            names.push(s);
        }
        ids.push(id);
    }
    codes.extend(
        later
            .iter()
            .map(|&c| if c == NULL { NULL } else { ids[c as usize] }),
    );
    Some((codes, names.into_iter().collect()))
}

/// Rows coded by [`code_few_rows`]: their codes, their names by code, and the table of those.
type FewNames<'a> = (Vec<u32>, Vec<&'a str>, Table<'a>);

/// The rows `range` coded in one pass with one table (see [`code_few`]): their codes, names
/// and the table, or `None` once they have more than [`FEW_NAMES`] names (found within a
/// block of rows of the name that is one too many).
fn code_few_rows<'a, C: TextColumn>(
    rows: &'a C,
    range: std::ops::Range<usize>,
    hashing: impl Hashing,
) -> Option<FewNames<'a>> {
    let mut table = Table::growing();
    let mut names: Vec<&str> = Vec::new();
    let mut codes = Vec::with_capacity(range.len());
    let mut prev: Option<(&str, u32)> = None;
    let mut too_many = false;
    let mut start = range.start;
    while start < range.end && !too_many {
        let end = range.end.min(start + BLOCK_ROWS);
        rows.each(start..end, |_, text| {
            let Some(s) = text else {
                codes.push(NULL);
                return;
            };
            if let Some((_, id)) = prev.filter(|&(p, _)| same_text(p, s)) {
                codes.push(id);
                return;
            }
            if too_many {
                return;
            }
            let (hash, word) = hashing.key(s);
            let Some((id, new)) = table.find_or_add(hash, word, || s, names.len() < FEW_NAMES)
            else {
                too_many = true;
                return;
            };
            if new {
                names.push(s);
            }
            prev = Some((s, id));
            codes.push(id);
        });
        start = end;
    }
    (!too_many).then_some((codes, names, table))
}

/// Where a hash's probe starts, before masking to the table's size.
#[inline]
fn slot_of(hash: u64) -> usize {
    (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
}

/// An open-addressing table of names by hash and short form ([`key`]), ids in order of
/// addition: sized for a known most of names (at most half full), or doubled as names come.
struct Table<'a> {
    slots: Vec<(u64, u32)>,
    /// Each name's short form, or [`LONG`].
    words: Vec<u64>,
    /// A long name's text, read when first seen ("" for a short one).
    texts: Vec<&'a str>,
    /// Names it takes before its slots double.
    room: usize,
}

impl<'a> Table<'a> {
    /// Room for `names` names: at most half the slots used.
    fn with_room(names: usize) -> Self {
        let mut table = Table {
            slots: Vec::new(),
            words: Vec::new(),
            texts: Vec::new(),
            room: 0,
        };
        table.empty_with_room(names);
        table
    }

    /// No names, and room for `names`, keeping the buffers: one table serves a thread's
    /// partitions in turn, so a partition costs filling its slots, not allocating, zeroing and
    /// freeing them, which with the vector of counts growing was a tenth of counting a million
    /// shuffled rows.
    fn empty_with_room(&mut self, names: usize) {
        let slots = (2 * names).next_power_of_two().max(16);
        self.slots.clear();
        self.slots.resize(slots, (0, NULL));
        self.words.clear();
        self.words.reserve(names);
        self.texts.clear();
        self.texts.reserve(names);
        self.room = slots / 2;
    }

    /// [`Table::empty_with_room`] for a partition's entries from two halves (see
    /// [`likely_names`]).
    fn reset_for(&mut self, a: (usize, bool), b: (usize, bool)) {
        self.empty_with_room(likely_names(a.0, a.1) + likely_names(b.0, b.1));
    }

    /// A small table that doubles as names come, at most a quarter of its slots used: a lookup
    /// then nearly always ends at its first slot (each further probe is a branch the core
    /// mispredicts), and a few hundred names' table still fits the first-level cache.
    fn growing() -> Self {
        Table {
            slots: vec![(0, NULL); 64],
            words: Vec::new(),
            texts: Vec::new(),
            room: 16,
        }
    }

    /// The id of the name with this hash and short form, and whether it is new; `text` reads
    /// its text, asked only of a long name. A new name is added only if `add` (else `None`).
    /// Every equal hash is checked: a short and a long text differ in length, two short ones
    /// are their words, two long ones are read.
    #[inline]
    fn find_or_add(
        &mut self,
        hash: u64,
        word: u64,
        text: impl Fn() -> &'a str,
        add: bool,
    ) -> Option<(u32, bool)> {
        let mut mask = self.slots.len() - 1;
        let mut i = slot_of(hash) & mask;
        loop {
            let (h, id) = self.slots[i];
            if id == NULL {
                if !add {
                    return None;
                }
                if self.words.len() >= self.room {
                    // A loop, not a call again: a recursive function is not inlined.
                    self.grow();
                    mask = self.slots.len() - 1;
                    i = slot_of(hash) & mask;
                    continue;
                }
                let id = self.words.len() as u32;
                self.slots[i] = (hash, id);
                self.words.push(word);
                self.texts.push(if word == LONG { text() } else { "" });
                return Some((id, true));
            }
            if h == hash {
                let k = id as usize;
                let equal = if word == LONG && self.words[k] == LONG {
                    same_text(self.texts[k], text())
                } else {
                    word == self.words[k]
                };
                if equal {
                    return Some((id, false));
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Twice the slots, every name placed again (a table sized for its names, not for the
    /// most it may take, stays in the cache; one given room never grows).
    #[cold]
    fn grow(&mut self) {
        let slots = vec![(0, NULL); 2 * self.slots.len()];
        let old = std::mem::replace(&mut self.slots, slots);
        self.room *= 2;
        let mask = self.slots.len() - 1;
        for (hash, id) in old.into_iter().filter(|&(_, id)| id != NULL) {
            let mut i = slot_of(hash) & mask;
            while self.slots[i].1 != NULL {
                i = (i + 1) & mask;
            }
            self.slots[i] = (hash, id);
        }
    }
}

/// [`code_texts`] with the rows split by hash between two threads (see the module's doc), with
/// the hashing given so that a test can make every hash collide.
fn code_split<C: TextColumn>(rows: &C, hashing: impl Hashing) -> (Vec<u32>, Names) {
    let n = rows.len();
    let (first, second, firsts) = split_and_number(rows, hashing, false);
    // Global id = rank of the name's first row among all first rows.
    let mut bits = vec![0u64; n.div_ceil(64)];
    for &r in firsts.iter().flatten() {
        bits[r as usize / 64] |= 1 << (r % 64);
    }
    let mut before = Vec::with_capacity(bits.len());
    let mut total = 0u32;
    for w in &bits {
        before.push(total);
        total += w.count_ones();
    }
    let rank = |r: u32| {
        let (w, b) = (r as usize / 64, r % 64);
        before[w] + (bits[w] & ((1u64 << b) - 1)).count_ones()
    };
    let globals: Vec<Vec<u32>> = firsts
        .iter()
        .map(|f| f.iter().map(|&r| rank(r)).collect())
        .collect();
    let names: Names = bits
        .iter()
        .enumerate()
        .flat_map(|(w, &word)| BitRows { word, base: w * 64 }.map(|r| rows.text(r)))
        .collect();
    (write_all(n, &first, &second, &globals), names)
}

/// Each row's code ([`MISSING`] for a missing row) and the number of names, for a column whose
/// texts are expected to be distinct (a dictionary's entries), with the names numbered in an
/// order of the coding's own (by partition): for where only which rows share a text matters,
/// not the text or where it first occurs (α's counts by item through a dictionary). Unlike
/// [`code_texts`], no first rows are ranked, no names collected, no one-table pass is tried
/// (distinct texts would outgrow it), and each partition's table has room for every entry.
/// `None` as [`code_texts`].
pub fn group_distinct_texts<C: TextColumn>(rows: &C) -> Option<(Vec<u32>, usize)> {
    let n = rows.len();
    if n < MIN_ROWS || n >= u32::MAX as usize {
        return None;
    }
    let (first, second, firsts) = split_and_number(rows, Fx, true);
    let mut next = 0u32;
    let globals: Vec<Vec<u32>> = firsts
        .iter()
        .map(|f| {
            let start = next;
            next += f.len() as u32;
            (start..next).collect()
        })
        .collect();
    Some((write_all(n, &first, &second, &globals), next as usize))
}

/// Each half of the rows split into partitions on a thread of its own, then each half of the
/// partitions numbered on a thread (a partition's ids in its entries; each partition's
/// tables with room for every entry when `distinct`); the two halves and each partition's
/// names' first rows, by id.
fn split_and_number<C: TextColumn>(
    rows: &C,
    hashing: impl Hashing,
    distinct: bool,
) -> (Parts, Parts, Vec<Vec<u32>>) {
    let n = rows.len();
    let mid = n / 2;
    let (mut first, mut second) = std::thread::scope(|s| {
        let second = s.spawn(|| split(rows, mid..n, hashing));
        (
            split(rows, 0..mid, hashing),
            second.join().expect("splitting thread panicked"),
        )
    });
    let (firsts_lo, firsts_hi) = {
        let (a_lo, a_hi) = first.halves_mut(PARTS / 2);
        let (b_lo, b_hi) = second.halves_mut(PARTS / 2);
        std::thread::scope(|s| {
            let hi = s.spawn(move || number(rows, a_hi, b_hi, hashing, distinct));
            (
                number(rows, a_lo, b_lo, hashing, distinct),
                hi.join().expect("numbering thread panicked"),
            )
        })
    };
    let firsts = firsts_lo.into_iter().chain(firsts_hi).collect();
    (first, second, firsts)
}

/// The codes of `n` rows from the halves' partitions and each partition's ids' global codes,
/// each half written on a thread.
fn write_all(n: usize, first: &Parts, second: &Parts, globals: &[Vec<u32>]) -> Vec<u32> {
    let mid = n / 2;
    let mut codes = vec![NULL; n];
    let (lo, hi) = codes.split_at_mut(mid);
    std::thread::scope(|s| {
        s.spawn(move || write_codes(second, globals, mid, hi));
        write_codes(first, globals, 0, lo);
    });
    codes
}

/// How often each label occurs with each name: row `r` has label `label(r)`, below `w`, and
/// the result holds `w` counts per name, the names in an order of the coding's own (by
/// partition, not by first appearance). For sums over names, as α's, that order does not
/// matter, and leaving it out spares writing a code per row and reading it back to count.
/// `None` where [`code_texts`] is `None`, for a missing row, or for a label of `w` or more.
pub fn count_texts<C: TextColumn>(
    rows: &C,
    label: impl Fn(usize) -> u32 + Sync,
    w: usize,
) -> Option<Vec<u32>> {
    let n = rows.len();
    if n < MIN_ROWS || n >= u32::MAX as usize {
        return None;
    }
    if let Some((codes, names)) = code_few(rows, Fx) {
        let mut counts = vec![0u32; names.len() * w];
        for (r, &c) in codes.iter().enumerate() {
            let l = label(r) as usize;
            if c == NULL || l >= w {
                return None;
            }
            counts[c as usize * w + l] += 1;
        }
        return Some(counts);
    }
    match count_short(rows, &label, w, Fx) {
        Short::Counted(counts) => Some(counts),
        Short::Refused => None,
        Short::Unsuited => count_split(rows, label, w, Fx),
    }
}

/// [`count_texts`] with the rows split by hash, as [`code_split`] splits them; a half whose rows
/// do not come in runs makes every row an entry that carries its label.
fn count_split<C: TextColumn>(
    rows: &C,
    label: impl Fn(usize) -> u32 + Sync,
    w: usize,
    hashing: impl Hashing,
) -> Option<Vec<u32>> {
    let n = rows.len();
    let mid = n / 2;
    let label = &label;
    // Rows in runs are joined as when coding (a run's labels read together when counted);
    // other rows carry their label.
    let split = |range: std::ops::Range<usize>| match sample_runs(rows, &range) {
        Some(starts) => split_rows::<C, true>(rows, range, hashing, |_| 1, starts),
        None => split_rows::<C, false>(rows, range, hashing, label, 1.0),
    };
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| split(mid..n));
        (
            split(0..mid),
            second.join().expect("splitting thread panicked"),
        )
    });
    // Each half of the partitions counted on a thread; every partition's names after the
    // previous partition's.
    let count = |parts: std::ops::Range<usize>| {
        let entries: usize = parts
            .clone()
            .map(|p| first.count(p) + second.count(p))
            .sum();
        let mut counts: Vec<u32> =
            Vec::with_capacity(likely_names(entries, first.runs || second.runs) * w);
        let mut rows_seen = 0usize;
        let mut table = Table::with_room(0);
        for p in parts {
            table.reset_for((first.count(p), first.runs), (second.count(p), second.runs));
            let base = counts.len() / w;
            for (half, e) in first
                .of(p)
                .map(|e| (&first, e))
                .chain(second.of(p).map(|e| (&second, e)))
            {
                let (row, tag) = (row_of(e), tag_of(e));
                let (hash, word) = lookup_key(e, hashing);
                let (id, new) = table
                    .find_or_add(hash, word, || rows.text(row as usize), true)
                    .expect("a table with room for every entry");
                if new {
                    counts.resize(counts.len() + w, 0);
                }
                let at = (base + id as usize) * w;
                let mut add = |l: u32| {
                    let ok = (l as usize) < w;
                    if ok {
                        counts[at + l as usize] += 1;
                    }
                    ok
                };
                let ok = if half.runs {
                    (row..row + tag).all(|r| add(label(r as usize)))
                } else {
                    add(tag)
                };
                if !ok {
                    return (counts, usize::MAX);
                }
                rows_seen += if half.runs { tag as usize } else { 1 };
            }
        }
        (counts, rows_seen)
    };
    let ((mut counts, lo_rows), (hi, hi_rows)) = std::thread::scope(|s| {
        let hi = s.spawn(|| count(PARTS / 2..PARTS));
        (
            count(0..PARTS / 2),
            hi.join().expect("counting thread panicked"),
        )
    });
    // A missing row is in no partition; a label out of range stopped its thread.
    if lo_rows.checked_add(hi_rows) != Some(n) {
        return None;
    }
    counts.extend_from_slice(&hi);
    Some(counts)
}

/// A row of [`count_short`]: its text's short form (bits 0–58: the bytes, and the length in
/// 56–58) and its label (59–63). Half an [`Entry`]: a short text needs no hash (it is
/// recomputed) nor row (it is compared by its form), and splitting rows in any order is bound
/// by writing entries to 256 places at once.
type ShortEntry = u64;

/// Labels a [`ShortEntry`] has room for.
const SHORT_LABELS: usize = 32;

/// The bits of a [`ShortEntry`] that hold its text.
const SHORT_TEXT: u64 = (1 << 59) - 1;

/// What [`count_short`] made of a column.
enum Short {
    /// The counts, as [`count_texts`] gives them.
    Counted(Vec<u32>),
    /// A missing row, or a label of `w` or more: [`count_texts`] gives `None`.
    Refused,
    /// Rows in runs, a text longer than 7 bytes, or more than [`SHORT_LABELS`] labels:
    /// [`count_split`] counts instead.
    Unsuited,
}

/// [`count_split`] for the common export: short ids (at most 7 bytes) in any order, a few
/// labels. Each row is one word carrying its text and label ([`ShortEntry`]), and each
/// partition's table compares words alone ([`ShortTable`]); the names come in the same order
/// as [`count_split`]'s.
fn count_short<C: TextColumn>(
    rows: &C,
    label: impl Fn(usize) -> u32 + Sync,
    w: usize,
    hashing: impl Hashing,
) -> Short {
    let n = rows.len();
    let mid = n / 2;
    let halves = [0..mid, mid..n];
    let mut long = false;
    rows.each(0..n.min(SAMPLE_ROWS), |_, text| {
        long |= text.is_some_and(|s| s.len() > 7);
    });
    if w > SHORT_LABELS || long || halves.iter().any(|h| sample_runs(rows, h).is_some()) {
        return Short::Unsuited;
    }
    let label = &label;
    let split = |range: std::ops::Range<usize>| {
        let mut parts = Parts::<ShortEntry>::with_room(false, room_for(range.len()));
        let mut stop = None;
        rows.each(range, |r, text| {
            if stop.is_some() {
                return;
            }
            let Some(s) = text else {
                stop = Some(Short::Refused);
                return;
            };
            let (hash, word) = hashing.key(s);
            let l = label(r);
            if word == LONG {
                stop = Some(Short::Unsuited);
            } else if l as usize >= w {
                stop = Some(Short::Refused);
            } else {
                parts.push(part(hash), word | u64::from(l) << 59);
            }
        });
        stop.map_or(Ok(parts), Err)
    };
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| split(halves[1].clone()));
        (
            split(halves[0].clone()),
            second.join().expect("splitting thread panicked"),
        )
    });
    let (first, second) = match (first, second) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(Short::Unsuited), _) | (_, Err(Short::Unsuited)) => return Short::Unsuited,
        _ => return Short::Refused,
    };
    let count = |parts: std::ops::Range<usize>| {
        let entries: usize = parts
            .clone()
            .map(|p| first.count(p) + second.count(p))
            .sum();
        let mut counts: Vec<u32> = Vec::with_capacity(likely_names(entries, false) * w);
        let mut table = ShortTable::default();
        for p in parts {
            table.empty_with_room(likely_names(first.count(p) + second.count(p), false));
            let base = counts.len() / w;
            for e in first.of(p).chain(second.of(p)) {
                let word = e & SHORT_TEXT;
                let (id, new) = table.find_or_add(word, hashing);
                if new {
                    counts.resize(counts.len() + w, 0);
                }
                counts[(base + id as usize) * w + (e >> 59) as usize] += 1;
            }
        }
        counts
    };
    let (mut counts, hi) = std::thread::scope(|s| {
        let hi = s.spawn(|| count(PARTS / 2..PARTS));
        (
            count(0..PARTS / 2),
            hi.join().expect("counting thread panicked"),
        )
    });
    counts.extend_from_slice(&hi);
    Short::Counted(counts)
}

/// An open-addressing table of short forms, ids in order of addition: [`Table`] for texts
/// that are their own short form, so a lookup compares the slot's word and reads nothing else.
/// At most half full; doubled as names come.
#[derive(Default)]
struct ShortTable {
    /// Each slot's short form, or [`LONG`] (which no short form is) for an empty slot.
    words: Vec<u64>,
    ids: Vec<u32>,
    names: usize,
}

impl ShortTable {
    /// No names, and room for `names` before the slots double, keeping the buffers.
    fn empty_with_room(&mut self, names: usize) {
        let slots = (2 * names).next_power_of_two().max(16);
        self.words.clear();
        self.words.resize(slots, LONG);
        self.ids.clear();
        self.ids.resize(slots, 0);
        self.names = 0;
    }

    /// The id of the name with this short form, and whether it is new.
    #[inline]
    fn find_or_add(&mut self, word: u64, hashing: impl Hashing) -> (u32, bool) {
        if 2 * (self.names + 1) > self.words.len() {
            self.grow(hashing);
        }
        let mask = self.words.len() - 1;
        let mut i = slot_of(hashing.short_hash(word)) & mask;
        loop {
            let w = self.words[i];
            if w == word {
                return (self.ids[i], false);
            }
            if w == LONG {
                let id = self.names as u32;
                self.words[i] = word;
                self.ids[i] = id;
                self.names += 1;
                return (id, true);
            }
            i = (i + 1) & mask;
        }
    }

    /// Twice the slots, every name placed again.
    #[cold]
    fn grow(&mut self, hashing: impl Hashing) {
        let slots = (2 * self.words.len()).max(16);
        let words = std::mem::replace(&mut self.words, vec![LONG; slots]);
        let ids = std::mem::replace(&mut self.ids, vec![0; slots]);
        let mask = slots - 1;
        for (word, id) in words.into_iter().zip(ids).filter(|(w, _)| *w != LONG) {
            let mut i = slot_of(hashing.short_hash(word)) & mask;
            while self.words[i] != LONG {
                i = (i + 1) & mask;
            }
            self.words[i] = word;
            self.ids[i] = id;
        }
    }
}

/// Set bits of a word as row numbers, lowest first.
struct BitRows {
    word: u64,
    base: usize,
}

impl Iterator for BitRows {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        (self.word != 0).then(|| {
            let b = self.word.trailing_zeros() as usize;
            self.word &= self.word - 1;
            self.base + b
        })
    }
}

/// One half's rows split by hash: partition `p`'s entries, in row order, are the first
/// `len[p]` of its region `entries[p * room..(p + 1) * room]`, then `spill[p]` (rows that found
/// the region full, rare). One flat buffer, written at a cursor per partition, rather than a
/// `Vec` per partition: pushing to 256 vectors loads and stores each one's length through
/// memory on every row, which made the split five times slower on rows in any order.
/// Entries are [`Entry`]s, or [`ShortEntry`]s where [`count_short`] splits.
struct Parts<E = Entry> {
    /// Whether rows with the text of the row before were joined as runs.
    runs: bool,
    room: usize,
    entries: Vec<E>,
    len: Vec<u32>,
    spill: Vec<Vec<E>>,
}

impl<E: Copy> Parts<E> {
    /// Empty partitions with room for `room` entries each before they spill.
    fn with_room(runs: bool, room: usize) -> Self
    where
        E: Default,
    {
        Parts {
            runs,
            room,
            entries: vec![E::default(); room * PARTS],
            len: vec![0; PARTS],
            spill: vec![Vec::new(); PARTS],
        }
    }

    /// Adds entry `e` to partition `p`; its index in `entries`, unless it spilled.
    #[inline]
    fn push(&mut self, p: usize, e: E) -> Option<usize> {
        let at = self.len[p] as usize;
        if at < self.room {
            let i = p * self.room + at;
            self.entries[i] = e;
            self.len[p] += 1;
            Some(i)
        } else {
            self.spill[p].push(e);
            None
        }
    }

    /// Number of entries of partition `p`.
    fn count(&self, p: usize) -> usize {
        self.len[p] as usize + self.spill[p].len()
    }

    /// Partition `p`'s entries in row order.
    fn of(&self, p: usize) -> impl Iterator<Item = E> {
        let start = p * self.room;
        self.entries[start..start + self.len[p] as usize]
            .iter()
            .chain(&self.spill[p])
            .copied()
    }
}

impl Parts {
    /// The partitions before `at` and from `at` on, each as a view that can be numbered on a
    /// thread of its own.
    fn halves_mut(&mut self, at: usize) -> (PartsMut<'_>, PartsMut<'_>) {
        let (e_lo, e_hi) = self.entries.split_at_mut(at * self.room);
        let (l_lo, l_hi) = self.len.split_at(at);
        let (s_lo, s_hi) = self.spill.split_at_mut(at);
        let view = |entries, len, spill| PartsMut {
            runs: self.runs,
            room: self.room,
            entries,
            len,
            spill,
        };
        (view(e_lo, l_lo, s_lo), view(e_hi, l_hi, s_hi))
    }
}

/// The names a table makes room for, for `entries` entries of a half where nearly every entry
/// is a name of its own (`own`: rows joined as runs, as an item's rows come together once, or
/// texts expected distinct) or not; more grow the table. Joined runs in a table with room for
/// a quarter of them grew it twice, a tenth of the count. Otherwise rows are entries of their
/// own, several to a name (five in a typical export), and a table with room for every entry
/// took four times the cache, and its zeroing a few percent of the whole count.
fn likely_names(entries: usize, own: bool) -> usize {
    if own { entries } else { entries / 4 }
}

/// Some consecutive partitions of a [`Parts`], numbered from 0.
struct PartsMut<'a> {
    runs: bool,
    room: usize,
    entries: &'a mut [Entry],
    len: &'a [u32],
    spill: &'a mut [Vec<Entry>],
}

impl PartsMut<'_> {
    /// Number of entries of partition `p`.
    fn count(&self, p: usize) -> usize {
        self.len[p] as usize + self.spill[p].len()
    }

    /// Partition `p`'s entries in row order.
    fn of_mut(&mut self, p: usize) -> impl Iterator<Item = &mut Entry> {
        let start = p * self.room;
        self.entries[start..start + self.len[p] as usize]
            .iter_mut()
            .chain(self.spill[p].iter_mut())
    }
}

/// Rows looked at to decide whether a half's rows come in runs.
const SAMPLE_ROWS: usize = 1 << 10;

/// The rows `range` of a text column split into [`PARTS`] partitions by hash, in row order.
/// Missing rows are left out. When at least one sampled row in eight repeats the text of the
/// row before (an item's rows together), rows with the previous present row's text join its
/// entry as a run; otherwise every row is an entry of its own, as checking for runs that
/// never come would double the cost of rows in any order.
fn split<C: TextColumn>(rows: &C, range: std::ops::Range<usize>, hashing: impl Hashing) -> Parts {
    match sample_runs(rows, &range) {
        Some(starts) => split_rows::<C, true>(rows, range, hashing, |_| 1, starts),
        None => split_rows::<C, false>(rows, range, hashing, |_| 1, 1.0),
    }
}

/// When at least one in eight of the first [`SAMPLE_ROWS`] rows of `range` repeats the text of
/// the row before, the share of those rows that do not (each starts a run): rows come in runs,
/// and about that share of them will be entries. `None` otherwise.
fn sample_runs<C: TextColumn>(rows: &C, range: &std::ops::Range<usize>) -> Option<f64> {
    let sample = range.start..range.end.min(range.start + SAMPLE_ROWS);
    let (mut repeats, mut before) = (0, None);
    rows.each(sample.clone(), |_, text| {
        if text.is_some() && text == before {
            repeats += 1;
        }
        before = text;
    });
    (repeats * 8 >= sample.len()).then(|| 1.0 - repeats as f64 / sample.len().max(1) as f64)
}

/// [`split`], with or without joining runs (whose tag is then their length), each entry
/// started with the tag `tag(row)`. `entries`: the expected share of rows that start an entry,
/// which sizes the partitions (a partition that fills spills, more slowly, into a vector of its
/// own; room for every row, when most rows join a run, zeroed several times the buffer used).
fn split_rows<C: TextColumn, const RUNS: bool>(
    rows: &C,
    range: std::ops::Range<usize>,
    hashing: impl Hashing,
    tag: impl Fn(usize) -> u32,
    entries: f64,
) -> Parts {
    let n = (range.len() as f64 * entries.clamp(0.0, 1.0)) as usize;
    let mut parts = Parts::with_room(RUNS, room_for(n));
    // The previous present row's text and key; the run it is in, unless a missing row or a
    // full region ended it (an index into `entries`).
    let mut prev: (&str, u64, u64) = ("", 0, 0);
    let mut open: Option<usize> = None;
    rows.each(range, |r, text| {
        let Some(s) = text else {
            open = None;
            return;
        };
        let (hash, word) = hashing.key(s);
        if RUNS {
            if let Some(i) = open {
                let (p_text, p_hash, p_word) = prev;
                if hash == p_hash && word == p_word && (word != LONG || same_text(p_text, s)) {
                    // One more row in the run: its tag, the top 32 bits, plus one.
                    parts.entries[i] += 1 << 96;
                    return;
                }
            }
            prev = (s, hash, word);
        }
        let at = parts.push(part(hash), entry(hash, word, r as u32, tag(r)));
        if RUNS {
            open = at;
        }
    });
    parts
}

/// Each partition's room for `n` entries split evenly, and a quarter more.
fn room_for(n: usize) -> usize {
    n / PARTS + n / PARTS / 4 + 16
}

/// Equal texts. Texts of up to 16 bytes (ids, names) are compared as two overlapping words
/// each, without a call to `memcmp` or a loop over bytes, which took a third of the time of
/// splitting a million rows.
#[inline]
pub fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w8 = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let w4 = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    match n {
        0 => true,
        // Bytes 0, n / 2 and n − 1 are every byte of a text this short.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        8..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        _ => a == b,
    }
}

/// Number the names of each partition, given as the first half's buffer `a[p]` and the
/// second half's `b[p]` (rows in order): each entry's word becomes its name's id in the
/// partition, and the result holds each partition's names' first rows, by id. `distinct`:
/// every entry is expected to be a name of its own, and the tables have room for all.
fn number<C: TextColumn>(
    rows: &C,
    mut a: PartsMut<'_>,
    mut b: PartsMut<'_>,
    hashing: impl Hashing,
    distinct: bool,
) -> Vec<Vec<u32>> {
    let mut table = Table::with_room(0);
    (0..a.len.len())
        .map(|p| {
            // Each name's first row starts an entry.
            table.reset_for(
                (a.count(p), a.runs || distinct),
                (b.count(p), b.runs || distinct),
            );
            let mut firsts: Vec<u32> = Vec::new();
            for e in a.of_mut(p).chain(b.of_mut(p)) {
                let row = row_of(*e);
                let (hash, word) = lookup_key(*e, hashing);
                let (id, new) = table
                    .find_or_add(hash, word, || rows.text(row as usize), true)
                    .expect("a table with room for every entry");
                if new {
                    firsts.push(row);
                }
                *e = (*e >> 64 << 64) | u128::from(id);
            }
            firsts
        })
        .collect()
}

/// The codes of one half of the rows (the first row's number is `base`) from its partitions.
fn write_codes(parts: &Parts, globals: &[Vec<u32>], base: usize, codes: &mut [u32]) {
    for (p, global) in globals.iter().enumerate() {
        for e in parts.of(p) {
            let at = row_of(e) as usize - base;
            codes[at..at + tag_of(e) as usize].fill(global[word_of(e) as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Rows as chunks of owned texts, as an Arrow column comes in chunks.
    struct Chunks(Vec<Vec<Option<String>>>);

    impl TextColumn for Chunks {
        fn len(&self) -> usize {
            self.0.iter().map(Vec::len).sum()
        }
        fn each<'s>(
            &'s self,
            rows: std::ops::Range<usize>,
            mut f: impl FnMut(usize, Option<&'s str>),
        ) {
            let mut start = 0;
            for c in &self.0 {
                for (i, t) in c.iter().enumerate() {
                    if rows.contains(&(start + i)) {
                        f(start + i, t.as_deref());
                    }
                }
                start += c.len();
            }
        }
        fn text(&self, mut row: usize) -> &str {
            for c in &self.0 {
                if row < c.len() {
                    return c[row].as_deref().expect("asked for a present row");
                }
                row -= c.len();
            }
            panic!("row past the end")
        }
    }

    /// Codes and names by the obvious method: a HashMap in row order.
    fn reference(texts: &[Option<String>]) -> (Vec<u32>, Vec<String>) {
        let mut ids = std::collections::HashMap::new();
        let mut names = vec![];
        let codes = texts
            .iter()
            .map(|t| match t {
                None => NULL,
                Some(s) => *ids.entry(s.clone()).or_insert_with(|| {
                    names.push(s.clone());
                    names.len() as u32 - 1
                }),
            })
            .collect();
        (codes, names)
    }

    /// Both ways of coding, and the choice between them, against the reference.
    fn check(texts: &[Option<String>], chunk: usize) {
        let column = Chunks(texts.chunks(chunk).map(<[_]>::to_vec).collect());
        let (want_codes, want_names) = reference(texts);
        let few = want_names.len() <= FEW_NAMES;
        let (codes, names) = code_texts(&column).expect("enough rows");
        assert_eq!(codes, want_codes);
        assert_eq!(names.iter().collect::<Vec<_>>(), want_names);
        let (codes, names) = code_split(&column, Fx);
        assert_eq!(codes, want_codes);
        assert_eq!(names.iter().collect::<Vec<_>>(), want_names);
        match code_few(&column, Fx) {
            Some((codes, names)) => {
                assert!(few, "{} names coded by one table", want_names.len());
                assert_eq!(codes, want_codes);
                assert_eq!(names.iter().collect::<Vec<_>>(), want_names);
            }
            None => assert!(!few, "{} names refused by one table", want_names.len()),
        }
        check_counts(texts, &column, Fx);
        check_groups(texts, &column, &want_codes, want_names.len());
    }

    /// `group_distinct_texts` against the reference's codes: one code per name and one name per
    /// code (its own numbering), codes below the number of names, missing rows missing.
    fn check_groups(texts: &[Option<String>], column: &Chunks, want: &[u32], names: usize) {
        let (codes, count) = group_distinct_texts(column).expect("enough rows");
        assert_eq!(count, names);
        assert_eq!(codes.len(), texts.len());
        let mut ours: std::collections::HashMap<u32, u32> = Default::default();
        for (&c, &w) in codes.iter().zip(want) {
            assert_eq!(c == NULL, w == NULL);
            if w != NULL {
                assert!((c as usize) < count);
                assert_eq!(*ours.entry(w).or_insert(c), c, "a name with two codes");
            }
        }
        let distinct: std::collections::HashSet<u32> = ours.values().copied().collect();
        assert_eq!(distinct.len(), ours.len(), "two names with one code");
    }

    #[test]
    fn distinct_texts_group_as_a_hash_map_does() {
        // A dictionary's entries: nearly all distinct, short and long, a few repeated.
        let texts: Vec<Option<String>> = (0..MIN_ROWS + 4_321)
            .map(|r| {
                let k = if r % 97 == 0 { r / 3 } else { r };
                Some(match k % 3 {
                    0 => format!("{k}"),
                    1 => format!("i{k}"),
                    _ => format!("an entry of many bytes, {k}"),
                })
            })
            .collect();
        check(&texts, 30_000);
        let mut missing = texts;
        missing[77] = None;
        check(&missing, 70_000);
    }

    /// Each row's label for the count checks: three labels, not in step with the names.
    fn label_of(r: usize) -> u32 {
        ((r * 7 + r / 3) % 3) as u32
    }

    /// `count_texts` (and `count_split` with `hashing`) against per-name counts from a
    /// HashMap: the same rows of counts, in whatever order of names; `None` when a row is
    /// missing.
    fn check_counts(texts: &[Option<String>], column: &Chunks, hashing: impl Hashing) {
        let w = 3;
        let labels: Vec<u32> = (0..texts.len()).map(label_of).collect();
        let sorted_rows = |counts: Vec<u32>| {
            let mut rows: Vec<Vec<u32>> = counts.chunks(w).map(<[u32]>::to_vec).collect();
            rows.sort();
            rows
        };
        let label = |r: usize| labels[r];
        let short = match count_short(column, label, w, hashing) {
            Short::Counted(counts) => Some(Some(counts)),
            Short::Refused => Some(None),
            Short::Unsuited => None,
        };
        // The short path takes exactly the columns of short texts in no runs, and counts in
        // count_split's order of names.
        let all_short = texts.iter().flatten().all(|t| t.len() <= 7);
        let runs = texts
            .windows(2)
            .filter(|p| p[0].is_some() && p[0] == p[1])
            .count();
        if let Some(short) = &short {
            assert!(all_short, "a long text was taken as short");
            assert_eq!(short, &count_split(column, label, w, hashing));
        } else if all_short && runs == 0 {
            panic!("short texts in no runs were not taken as short");
        }
        let got = [
            count_texts(column, label, w),
            count_split(column, label, w, hashing),
            short
                .flatten()
                .or_else(|| count_split(column, label, w, hashing)),
        ];
        if texts.iter().any(Option::is_none) {
            assert!(got.iter().all(Option::is_none), "a missing row is counted");
            return;
        }
        let mut by_name: std::collections::HashMap<&str, Vec<u32>> = Default::default();
        for (t, &l) in texts.iter().zip(&labels) {
            let t = t.as_deref().expect("no missing rows");
            by_name.entry(t).or_insert_with(|| vec![0; w])[l as usize] += 1;
        }
        let mut want: Vec<Vec<u32>> = by_name.into_values().collect();
        want.sort();
        for counts in got {
            assert_eq!(
                sorted_rows(counts.expect("complete rows are counted")),
                want
            );
        }
        // A label outside the domain is refused, never counted elsewhere.
        assert!(count_texts(column, label, 2).is_none());
        assert!(count_split(column, label, 2, hashing).is_none());
        assert!(!matches!(
            count_short(column, label, 2, hashing),
            Short::Counted(_)
        ));
    }

    /// Every text's hash 42, short or long: one partition, one probe chain.
    #[derive(Clone, Copy)]
    struct Collide;

    impl Hashing for Collide {
        fn key(self, s: &str) -> (u64, u64) {
            (42, key(s).1)
        }
        fn short_hash(self, _: u64) -> u64 {
            42
        }
    }

    /// A small seeded generator for the fixed cases.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn scattered_grouped_and_missing_rows_code_as_a_hash_map_does() {
        let mut s = 7;
        let n = MIN_ROWS + 1234;
        // Scattered names, some missing, some long, in one chunk and in several.
        let scattered: Vec<Option<String>> = (0..n)
            .map(|_| match lcg(&mut s) % 50 {
                0 => None,
                1 => Some(format!(
                    "a long name shared by several rows {}",
                    lcg(&mut s) % 7
                )),
                _ => Some(format!("i{}", lcg(&mut s) % 9000)),
            })
            .collect();
        check(&scattered, n);
        check(&scattered, 10_000);
        // An item's rows together, an item coming back later, a missing row inside a run, and
        // runs across the two halves' boundary and across chunks.
        let grouped: Vec<Option<String>> = (0..n)
            .map(|r| (r % 97 != 3).then(|| format!("item {}", (r / 5) % 6000)))
            .collect();
        check(&grouped, n);
        check(&grouped, 333);
        // Exactly as many names as one table takes, and one more.
        for names in [FEW_NAMES, FEW_NAMES + 1] {
            let texts: Vec<Option<String>> =
                (0..n).map(|r| Some(format!("{}", r % names))).collect();
            check(&texts, n);
        }
        // Two names, one of them empty.
        let two: Vec<Option<String>> = (0..n)
            .map(|r| {
                Some(if r % 3 == 0 {
                    String::new()
                } else {
                    "x".into()
                })
            })
            .collect();
        check(&two, n);
    }

    #[test]
    fn rows_that_change_order_within_a_half_code_the_same() {
        let mut s = 11;
        let n = MIN_ROWS + 77;
        let scattered = |s: &mut u64| Some(format!("i{}", lcg(s) % 20_000));
        // Each half starts scattered (runs not joined) and goes on grouped, or the reverse.
        for scattered_first in [true, false] {
            let texts: Vec<Option<String>> = (0..n)
                .map(|r| {
                    let early = r % (n / 2) < 4 * SAMPLE_ROWS;
                    if early == scattered_first {
                        scattered(&mut s)
                    } else {
                        Some(format!("item {}", r / 4))
                    }
                })
                .collect();
            let column = Chunks(vec![texts.clone()]);
            assert_eq!(
                sample_runs(&column, &(0..n / 2)).is_some(),
                !scattered_first
            );
            assert_eq!(
                sample_runs(&column, &(n / 2..n)).is_some(),
                !scattered_first
            );
            check(&texts, n);
            check(&texts, 4321);
        }
    }

    #[test]
    fn short_ids_in_any_order_count_in_one_word_a_row() {
        let mut s = 11;
        let n = MIN_ROWS + 777;
        let ids: Vec<Option<String>> = (0..n)
            .map(|_| Some(format!("i{}", lcg(&mut s) % 20_000)))
            .collect();
        check(&ids, n);
        check(&ids, 5_000);
        let column = |texts: &[Option<String>]| Chunks(vec![texts.to_vec()]);
        let label = |r: usize| label_of(r);
        assert!(matches!(
            count_short(&column(&ids), label, 3, Fx),
            Short::Counted(_)
        ));
        // More labels than an entry holds, a long text past the sampled rows, a missing row,
        // a label out of range: each goes where count_split's answer is.
        assert!(matches!(
            count_short(&column(&ids), label, SHORT_LABELS + 1, Fx),
            Short::Unsuited
        ));
        let mut late_long = ids.clone();
        late_long[n - 5] = Some("a name longer than seven bytes".into());
        assert!(matches!(
            count_short(&column(&late_long), label, 3, Fx),
            Short::Unsuited
        ));
        check(&late_long, n);
        let mut missing = ids.clone();
        missing[n / 2 + 3] = None;
        assert!(matches!(
            count_short(&column(&missing), label, 3, Fx),
            Short::Refused
        ));
        assert!(matches!(
            count_short(&column(&ids), |r| if r == n - 1 { 3 } else { 0 }, 3, Fx),
            Short::Refused
        ));
    }

    #[test]
    fn a_short_table_keeps_its_ids_as_it_grows_under_one_hash() {
        for hashing in [true, false] {
            let mut table = ShortTable::default();
            table.empty_with_room(2);
            let words: Vec<u64> = (0..300).map(|i| key(&format!("w{i}")).1).collect();
            for (i, &w) in words.iter().enumerate() {
                let got = if hashing {
                    table.find_or_add(w, Fx)
                } else {
                    table.find_or_add(w, Collide)
                };
                assert_eq!(got, (i as u32, true));
            }
            for (i, &w) in words.iter().enumerate().rev() {
                let got = if hashing {
                    table.find_or_add(w, Fx)
                } else {
                    table.find_or_add(w, Collide)
                };
                assert_eq!(got, (i as u32, false));
            }
            assert!(table.words.len() >= 600);
        }
    }

    #[test]
    fn texts_of_equal_hash_stay_apart() {
        // Every row in one partition and one probe chain: the texts alone tell them apart.
        let texts: Vec<Option<String>> = (0..MIN_ROWS)
            .map(|r| {
                let k = (r / 2) % 7;
                Some(if k < 4 {
                    format!("t{k}")
                } else {
                    format!("a longer name, number {k}")
                })
            })
            .collect();
        let column = Chunks(vec![texts.clone()]);
        let (want, want_names) = reference(&texts);
        let collide = Collide;
        for (codes, names) in [
            code_split(&column, collide),
            code_few(&column, collide).expect("few names"),
        ] {
            assert_eq!(codes, want);
            assert_eq!(names.iter().collect::<Vec<_>>(), want_names);
        }
        check_counts(&texts, &column, collide);
    }

    #[test]
    fn short_texts_are_their_word_and_long_ones_are_not() {
        let by_hand = |s: &str| {
            let mut w = (s.len() as u64) << 56;
            for (i, &b) in s.as_bytes().iter().enumerate() {
                w |= u64::from(b) << (8 * i);
            }
            w
        };
        for s in [
            "", "a", "ab", "abc", "abcd", "abcde", "é1", "abcdef", "abcdefg", "a\0",
        ] {
            assert_eq!(key(s).1, by_hand(s), "{s:?}");
        }
        assert_eq!(key("abcdefgh").1, LONG);
        // Every byte of a text of any length moves its hash.
        for n in 0..40 {
            let base: String = "x".repeat(n);
            for at in 0..n {
                let mut other = base.clone().into_bytes();
                other[at] = b'y';
                let other = String::from_utf8(other).unwrap();
                assert_ne!(text_hash(&base), text_hash(&other), "length {n}, byte {at}");
            }
        }
    }

    #[test]
    fn same_text_is_equality() {
        let texts: Vec<String> = (0..20)
            .flat_map(|n| {
                let base = "abcdefghijklmnopqrst"[..n].to_string();
                let mut out = vec![base.clone()];
                for at in 0..n {
                    let mut t = base.clone().into_bytes();
                    t[at] = b'Z';
                    out.push(String::from_utf8(t).unwrap());
                }
                out
            })
            .collect();
        for a in &texts {
            for b in &texts {
                assert_eq!(same_text(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn too_few_rows_are_left_to_the_interner() {
        assert!(code_texts(&Chunks(vec![vec![Some("a".into()), None]])).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn any_rows_code_as_a_hash_map_does(
            names in 1usize..5000,
            missing in 0u64..10,
            run in 1usize..8,
            chunk in 1000usize..80_000,
            seed in any::<u64>(),
        ) {
            let mut s = seed;
            let n = MIN_ROWS + (lcg(&mut s) as usize % 5000);
            let mut texts = Vec::with_capacity(n);
            while texts.len() < n {
                let t = (lcg(&mut s) % 100 >= missing).then(|| format!("n{}", lcg(&mut s) as usize % names));
                for _ in 0..run.min(n - texts.len()) {
                    texts.push(t.clone());
                }
            }
            check(&texts, chunk);
        }
    }
}

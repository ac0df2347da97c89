//! Exact integer sums over a table's units (items), by unit size: all that α's coincidence
//! matrix and the count-based coefficients (percent agreement, Fleiss' κ, Gwet's AC1) need.
//!
//! Every per-unit term of those statistics is a product of label counts divided by a function
//! of the unit's size m: n_c·n_k/(m − 1) for α, Σ_k n_k(n_k − 1)/(m(m − 1)) and n_k/m for the
//! others. Summing the integer products of the units of each size first and dividing once per
//! size gives the same statistics with no rounding until that division, no division per unit,
//! and a result that does not depend on the order of the units, so that a large table can be
//! summed in two halves on two threads.

use crate::util::sort_rows_by_item;
use crate::{Rating, Ratings};

/// Largest label domain summed this way: each unit size present takes v² sums (and a label
/// must fit a bit of a 64-bit mask). Larger domains use the float sums in `alpha` and
/// `agreement`.
pub(crate) const MAX_LABELS: usize = 64;

/// Rows from which an item-ordered table is summed in two halves on two threads.
const TWO_THREADS: usize = 1 << 18;

/// Label domains up to this size have their units (given by label counts) tallied by kind
/// before they are summed; larger ones would need too large a tally.
const TALLY_LABELS: usize = 4;

/// Bits per label count in a unit's tally key; a unit with a larger count is summed alone.
const TALLY_BITS: usize = 4;

/// Units (given by their label counts) from which they are summed in two halves on two threads.
pub(crate) const TWO_THREADS_UNITS: usize = 1 << 15;

/// The sums of the units of each size present. Slot `s` holds the units of size `sizes[s]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UnitSums {
    v: usize,
    /// Slot of each unit size (index m); `u32::MAX`: no unit of that size yet.
    slot_of: Vec<u32>,
    sizes: Vec<u32>,
    /// Per slot: number of units.
    units: Vec<u64>,
    /// Per slot, v entries: Σ n_k.
    totals: Vec<u64>,
    /// Per slot, v×v entries: Σ n_c·n_k off the diagonal, Σ n_c(n_c − 1) on it.
    pairs: Vec<u64>,
}

/// The sums of one size of unit, from [`UnitSums::by_size`].
pub(crate) struct SizeSums<'a> {
    /// Unit size m (number of values in each unit).
    pub(crate) m: u32,
    /// Number of units of that size.
    pub(crate) units: u64,
    /// Σ n_k per label.
    pub(crate) totals: &'a [u64],
    /// v×v: Σ n_c·n_k off the diagonal, Σ n_c(n_c − 1) on it.
    pub(crate) pairs: &'a [u64],
}

impl UnitSums {
    fn new(v: usize) -> Self {
        UnitSums {
            v,
            ..UnitSums::default()
        }
    }

    /// The sums of `ratings`' units, or `None` when its domain has more than [`MAX_LABELS`]
    /// labels. Item-ordered rows are read in place (from [`TWO_THREADS`] rows on, in two halves
    /// cut between items); others are grouped by item first.
    pub(crate) fn of(ratings: &Ratings) -> Option<UnitSums> {
        let v = ratings.n_labels();
        if v > MAX_LABELS {
            return None;
        }
        let rows = ratings.rows();
        let sum_runs = |rows: &[Rating]| {
            let mut sums = UnitSums::new(v);
            let mut counts = vec![0u32; v];
            for run in rows.chunk_by(|a, b| a.item == b.item) {
                sums.add_unit(run.iter().map(|r| r.label), &mut counts);
            }
            sums
        };
        if !ratings.in_item_order() && ratings.n_items() * v <= 4 * rows.len() + 4096 {
            return Some(Self::of_counts(ratings));
        }
        if !ratings.in_item_order() {
            let (order, starts) = sort_rows_by_item(ratings);
            let mut sums = UnitSums::new(v);
            let mut counts = vec![0u32; v];
            for w in starts.windows(2) {
                let unit = order[w[0]..w[1]].iter().map(|&i| rows[i as usize].label);
                sums.add_unit(unit, &mut counts);
            }
            return Some(sums);
        }
        if rows.len() < TWO_THREADS {
            return Some(sum_runs(rows));
        }
        let mut cut = rows.len() / 2;
        while cut < rows.len() && rows[cut].item == rows[cut - 1].item {
            cut += 1;
        }
        let (first, second) = rows.split_at(cut);
        let (mut sums, later) = std::thread::scope(|s| {
            let later = s.spawn(|| sum_runs(second));
            (
                sum_runs(first),
                later.join().expect("summing thread panicked"),
            )
        });
        sums.merge(&later);
        Some(sums)
    }

    /// [`UnitSums::of`] rows in any order, from a count per item and label: one pass of
    /// increments over the rows instead of grouping them by item and then reading them in
    /// that order, a random read per row. The sums are integers, so they do not depend on the
    /// order in which the units are added. From [`TWO_THREADS`] rows on, each half of the rows
    /// is counted on a thread of its own, then each half of the items summed.
    fn of_counts(ratings: &Ratings) -> UnitSums {
        let (v, n_items, rows) = (ratings.n_labels(), ratings.n_items(), ratings.rows());
        let count = |rows: &[Rating]| {
            let mut counts = vec![0u32; n_items * v];
            for r in rows {
                counts[r.item as usize * v + r.label as usize] += 1;
            }
            counts
        };
        let identity: Vec<u32> = (0..v as u32).collect();
        if rows.len() < TWO_THREADS {
            return Self::of_label_counts(v, &identity, &[&count(rows)]);
        }
        let (first, second) = rows.split_at(rows.len() / 2);
        let (a, b) = std::thread::scope(|s| {
            let later = s.spawn(|| count(second));
            (
                count(first),
                later.join().expect("counting thread panicked"),
            )
        });
        Self::of_label_counts(v, &identity, &[&a, &b])
    }

    /// The sums of units given by their label counts: `parts` each hold `n_units × w` counts
    /// (`w = remap.len()`, row-major by unit), a unit's counts are the sum over the parts, and
    /// the caller's label `c` is domain label `remap[c]` (< `v`). Units without counts are not
    /// units. From [`TWO_THREADS_UNITS`] units on, each half of the units is summed on a thread
    /// of its own.
    pub(crate) fn of_label_counts(v: usize, remap: &[u32], parts: &[&[u32]]) -> UnitSums {
        let w = remap.len();
        let n_units = match (parts.first(), w) {
            (Some(p), 1..) => p.len() / w,
            _ => 0,
        };
        let in_order = remap.iter().enumerate().all(|(c, &d)| c == d as usize) && w == v;
        let sum_units = |units: std::ops::Range<usize>| {
            let mut sums = UnitSums::new(v);
            let mut unit = vec![0u32; v];
            // Units tallied by their counts (a key of TALLY_BITS per label) and each distinct
            // one summed once, times its tally: a few dozen kinds of unit among 10⁵ units.
            let mut tally = vec![
                0u64;
                if v <= TALLY_LABELS {
                    1 << (TALLY_BITS * v)
                } else {
                    0
                }
            ];
            for i in units {
                let at = i * w..(i + 1) * w;
                if let ([only], true) = (parts, in_order) {
                    unit.copy_from_slice(&only[at]);
                } else {
                    unit.fill(0);
                    for p in parts {
                        for (&d, &x) in remap.iter().zip(&p[at.clone()]) {
                            unit[d as usize] += x;
                        }
                    }
                }
                if !tally.is_empty() && unit.iter().all(|&x| x < 1 << TALLY_BITS) {
                    let key = unit
                        .iter()
                        .rev()
                        .fold(0, |key, &x| key << TALLY_BITS | x as usize);
                    tally[key] += 1;
                } else {
                    sums.add_counts(&unit, 1);
                }
            }
            for (key, &times) in tally.iter().enumerate() {
                if times != 0 {
                    for (c, x) in unit.iter_mut().enumerate() {
                        *x = (key >> (TALLY_BITS * c) & ((1 << TALLY_BITS) - 1)) as u32;
                    }
                    sums.add_counts(&unit, times);
                }
            }
            sums
        };
        if n_units < TWO_THREADS_UNITS {
            return sum_units(0..n_units);
        }
        let mid = n_units / 2;
        let (mut sums, later) = std::thread::scope(|s| {
            let later = s.spawn(|| sum_units(mid..n_units));
            (
                sum_units(0..mid),
                later.join().expect("summing thread panicked"),
            )
        });
        sums.merge(&later);
        sums
    }

    /// Add `times` units with these label counts (one per label), as [`UnitSums::add_unit`]
    /// adds the unit of the labels counted.
    #[inline]
    fn add_counts(&mut self, counts: &[u32], times: u64) {
        let m: u32 = counts.iter().sum();
        if m == 0 {
            return;
        }
        let v = self.v;
        let s = self.slot(m);
        self.units[s] += times;
        let totals = &mut self.totals[s * v..(s + 1) * v];
        let pairs = &mut self.pairs[s * v * v..(s + 1) * v * v];
        for (c, &nc) in counts.iter().enumerate() {
            if nc == 0 {
                continue;
            }
            let nc = u64::from(nc);
            totals[c] += nc * times;
            pairs[c * v + c] += nc * (nc - 1) * times;
            for (k, &nk) in counts.iter().enumerate().skip(c + 1) {
                if nk != 0 {
                    let x = nc * u64::from(nk) * times;
                    pairs[c * v + k] += x;
                    pairs[k * v + c] += x;
                }
            }
        }
    }

    /// The slot of units of size `m`, made when new.
    fn slot(&mut self, m: u32) -> usize {
        let at = m as usize;
        if at >= self.slot_of.len() {
            self.slot_of.resize(at + 1, u32::MAX);
        }
        if self.slot_of[at] == u32::MAX {
            self.slot_of[at] = self.sizes.len() as u32;
            self.sizes.push(m);
            self.units.push(0);
            self.totals.resize(self.totals.len() + self.v, 0);
            self.pairs.resize(self.pairs.len() + self.v * self.v, 0);
        }
        self.slot_of[at] as usize
    }

    /// Add the unit with these labels. `counts` (one per label) is scratch, all zero before
    /// and after.
    #[inline]
    fn add_unit(&mut self, labels: impl Iterator<Item = u32>, counts: &mut [u32]) {
        let (mut present, mut m) = (0u64, 0u32);
        for c in labels {
            counts[c as usize] += 1;
            present |= 1 << c;
            m += 1;
        }
        if m == 0 {
            return;
        }
        let v = self.v;
        let s = self.slot(m);
        self.units[s] += 1;
        let totals = &mut self.totals[s * v..(s + 1) * v];
        let pairs = &mut self.pairs[s * v * v..(s + 1) * v * v];
        let mut rest = present;
        while rest != 0 {
            let c = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let nc = u64::from(counts[c]);
            totals[c] += nc;
            pairs[c * v + c] += nc * (nc - 1);
            let mut above = rest;
            while above != 0 {
                let k = above.trailing_zeros() as usize;
                above &= above - 1;
                let x = nc * u64::from(counts[k]);
                pairs[c * v + k] += x;
                pairs[k * v + c] += x;
            }
        }
        while present != 0 {
            counts[present.trailing_zeros() as usize] = 0;
            present &= present - 1;
        }
    }

    /// Add the sums of `other` (units of the same domain).
    fn merge(&mut self, other: &UnitSums) {
        let v = self.v;
        for (j, &m) in other.sizes.iter().enumerate() {
            let s = self.slot(m);
            self.units[s] += other.units[j];
            let add =
                |to: &mut [u64], from: &[u64]| to.iter_mut().zip(from).for_each(|(a, b)| *a += b);
            add(
                &mut self.totals[s * v..(s + 1) * v],
                &other.totals[j * v..(j + 1) * v],
            );
            add(
                &mut self.pairs[s * v * v..(s + 1) * v * v],
                &other.pairs[j * v * v..(j + 1) * v * v],
            );
        }
    }

    /// The sums of each unit size present, smallest size first: the float sums made from them
    /// add their terms in this one order.
    pub(crate) fn by_size(&self) -> impl Iterator<Item = SizeSums<'_>> + '_ {
        let v = self.v;
        let mut slots: Vec<usize> = (0..self.sizes.len()).collect();
        slots.sort_unstable_by_key(|&s| self.sizes[s]);
        slots.into_iter().map(move |s| SizeSums {
            m: self.sizes[s],
            units: self.units[s],
            totals: &self.totals[s * v..(s + 1) * v],
            pairs: &self.pairs[s * v * v..(s + 1) * v * v],
        })
    }

    /// α's coincidence matrix (v×v) and the number of pairable units (size ≥ 2).
    pub(crate) fn coincidences(&self) -> (Vec<f64>, usize) {
        let mut o = vec![0.0; self.v * self.v];
        let mut n_units = 0;
        for size in self.by_size().filter(|s| s.m >= 2) {
            n_units += size.units as usize;
            let d = f64::from(size.m - 1);
            for (x, &p) in o.iter_mut().zip(size.pairs) {
                *x += p as f64 / d;
            }
        }
        (o, n_units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};

    /// A table of `n` rows over `items` items (grouped by item or scattered) and `v` labels.
    fn table(n: usize, items: u64, v: u64, grouped: bool, seed: u64) -> Ratings {
        let mut next = crate::util::xorshift(seed);
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for i in 0..n {
            let item = if grouped {
                i as u64 * items / n as u64
            } else {
                next() % items
            };
            let label = format!("l{}", next() % v);
            b.push(
                &format!("i{item}"),
                &format!("r{}", next() % 9),
                &label,
                &[],
            )
            .unwrap();
        }
        b.build(DuplicatePolicy::KeepAll).unwrap()
    }

    /// The sums by hand: each unit's label counts, then the products.
    fn by_hand(t: &Ratings) -> Vec<(u32, u64, Vec<u64>, Vec<u64>)> {
        let v = t.n_labels();
        let mut counts = vec![vec![0u64; v]; t.n_items()];
        for r in t.rows() {
            counts[r.item as usize][r.label as usize] += 1;
        }
        let mut out: Vec<(u32, u64, Vec<u64>, Vec<u64>)> = Vec::new();
        for unit in counts {
            let m: u64 = unit.iter().sum();
            if m == 0 {
                continue;
            }
            let at = match out.iter().position(|o| u64::from(o.0) == m) {
                Some(at) => at,
                None => {
                    out.push((m as u32, 0, vec![0; v], vec![0; v * v]));
                    out.len() - 1
                }
            };
            let o = &mut out[at];
            o.1 += 1;
            for c in 0..v {
                o.2[c] += unit[c];
                for k in 0..v {
                    o.3[c * v + k] += if c == k {
                        unit[c] * unit[c].saturating_sub(1)
                    } else {
                        unit[c] * unit[k]
                    };
                }
            }
        }
        out.sort_by_key(|o| o.0);
        out
    }

    /// Item-ordered tables (small, and large enough for two threads) and scattered ones give
    /// the sums counted by hand.
    #[test]
    fn sums_equal_counting_by_hand() {
        for (n, items, v, grouped) in [
            (0, 1, 1, true),
            (40, 9, 3, true),
            (300, 50, 5, false),
            (TWO_THREADS + 5000, 40_000, 4, true),
            (20_000, 3000, 64, false),
            (TWO_THREADS + 5000, 40_000, 4, false),
            (TWO_THREADS + 7, 3, 2, false),
            // Units tallied by kind beside units with a count past the tally's 15, summed alone.
            (TWO_THREADS + 11, 20_000, 3, false),
            (5000, 1000, 1, false),
        ] {
            let t = table(n, items, v, grouped, 7 + n as u64);
            let sums = UnitSums::of(&t).unwrap();
            let got: Vec<_> = sums
                .by_size()
                .map(|s| (s.m, s.units, s.totals.to_vec(), s.pairs.to_vec()))
                .collect();
            assert_eq!(got, by_hand(&t), "{n} rows, grouped {grouped}");
        }
    }

    /// α's coincidences and the count-based coefficients from the sums equal those of the
    /// float sums made an item at a time, to rounding.
    #[test]
    fn statistics_equal_the_float_sums() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(1.0);
        for (n, items, v, grouped) in [
            (60, 9, 3, true),
            (900, 120, 5, false),
            (TWO_THREADS + 1000, 50_000, 7, true),
        ] {
            let t = table(n, items, v, grouped, 11 + n as u64);
            let sums = UnitSums::of(&t).unwrap();
            let (o, units) = sums.coincidences();
            let (float_o, float_units) = crate::alpha::float_coincidences(&t);
            assert_eq!(units, float_units);
            assert!(
                o.iter().zip(&float_o).all(|(a, b)| close(*a, *b)),
                "{o:?} vs {float_o:?}"
            );
            let (got, want) = (
                crate::agreement::multi_rater(&t),
                crate::agreement::float_multi_rater(&t),
            );
            assert_eq!(got.n_items_used, want.n_items_used);
            for (a, b) in [
                (got.percent_agreement, want.percent_agreement),
                (got.fleiss_kappa, want.fleiss_kappa),
                (got.gwet_ac1, want.gwet_ac1),
            ] {
                assert!(close(a.unwrap(), b.unwrap()), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn domains_beyond_the_mask_are_left_to_the_float_sums() {
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for l in 0..=MAX_LABELS {
            b.push("i", &format!("r{l}"), &format!("l{l}"), &[])
                .unwrap();
        }
        let t = b.build(DuplicatePolicy::KeepAll).unwrap();
        assert_eq!(t.n_labels(), MAX_LABELS + 1);
        assert!(UnitSums::of(&t).is_none());
    }
}

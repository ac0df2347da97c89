//! Crowd label aggregation: one shape for every method.
//!
//! Every [`Aggregator`] turns a [`Ratings`] table into a [`Fitted`] result: one label per item,
//! a posterior distribution per item, one skill per rater and convergence information. The
//! methods follow crowd-kit 1.4.2 (tie-breaking, initialisation and stopping rules) so that
//! labels can be compared one to one:
//!
//! - ties go to the smallest label in domain order (pandas 2.x `idxmax` on sorted columns);
//! - like crowd-kit, only labels that occur in the data take part; domain labels that never
//!   occur get posterior 0;
//! - items without ratings get no label (`None`).

use std::borrow::Cow;

use crate::util::Kahan;
use crate::{Rating, Ratings, StatsError};

mod dawid_skene;
mod glad;

mod mace;
mod majority;

pub use dawid_skene::{DawidSkene, OneCoinDawidSkene};
pub use glad::Glad;

pub use mace::Mace;
pub use majority::{MajorityVote, Wawa, ZeroBasedSkill};

/// How an iterative fit ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Convergence {
    /// Iterations run (0 for closed-form methods).
    pub iterations: usize,
    /// Whether the stopping rule fired before the iteration cap (true for closed-form methods).
    pub converged: bool,
    /// The method's objective (or change) per iteration, as crowd-kit's `loss_history_`.
    pub loss_history: Vec<f64>,
}

impl Convergence {
    fn closed_form() -> Self {
        Convergence {
            iterations: 0,
            converged: true,
            loss_history: Vec::new(),
        }
    }
}

/// The result of fitting an aggregator.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fitted {
    /// Number of labels in the domain; `posteriors` rows have this length.
    pub n_labels: usize,
    /// Aggregated label per item (domain index), `None` for items without ratings.
    pub labels: Vec<Option<u32>>,
    /// Posterior per item, `n_items × n_labels` row-major; all zeros for unrated items.
    pub posteriors: Vec<f64>,
    /// Rater skill (method-specific meaning, documented per method), `None` without ratings.
    pub skills: Vec<Option<f64>>,
    /// Convergence information.
    pub convergence: Convergence,
}

impl Fitted {
    /// Posterior row of one item.
    pub fn posterior(&self, item: usize) -> &[f64] {
        &self.posteriors[item * self.n_labels..(item + 1) * self.n_labels]
    }
}

/// A label aggregation method.
pub trait Aggregator {
    /// Short name (`mv`, `ds`, …).
    fn name(&self) -> &'static str;
    /// Fit on a ratings table. Never panics; an empty table gives an empty result.
    fn fit(&self, ratings: &Ratings) -> Result<Fitted, StatsError>;
}

/// The methods by CLI name, with crowd-kit's default hyperparameters.
pub fn by_name(name: &str) -> Option<Box<dyn Aggregator>> {
    Some(match name {
        "mv" => Box::new(MajorityVote),
        "wawa" => Box::new(Wawa),
        "zbs" => Box::new(ZeroBasedSkill::default()),
        "ds" => Box::new(DawidSkene::default()),
        "onecoin-ds" => Box::new(OneCoinDawidSkene::default()),

        "glad" => Box::new(Glad::default()),
        "mace" => Box::new(Mace::default()),
        _ => return None,
    })
}

/// Names accepted by [`by_name`].
pub const METHODS: [&str; 7] = ["mv", "wawa", "zbs", "ds", "onecoin-ds", "glad", "mace"];

/// The table restricted to the labels that occur, in domain order (crowd-kit's columns).
#[derive(Debug, Clone)]
pub(crate) struct Prepared<'a> {
    pub(crate) n_items: usize,
    pub(crate) n_raters: usize,
    pub(crate) n_domain: usize,
    /// Number of labels that occur.
    pub(crate) k: usize,
    /// Compact label → domain index.
    pub(crate) to_domain: Vec<u32>,
    /// Rows with compact labels, input order: the table's own rows when every domain label
    /// occurs (compact = domain index), so that a million-row table is not copied.
    pub(crate) rows: Cow<'a, [Rating]>,
    pub(crate) item_has_rows: Vec<bool>,
    pub(crate) rater_has_rows: Vec<bool>,
    /// The rows are in item order ([`Ratings::in_item_order`]).
    pub(crate) item_ordered: bool,
    /// Whether to run the two halves of a pass (see [`Prepared::in_two`]) on two threads:
    /// asked of the system once, not at every step (the answer reads cgroup files on Linux).
    pub(crate) two_threads: bool,
}

impl<'a> Prepared<'a> {
    pub(crate) fn new(ratings: &'a Ratings) -> Self {
        let n_domain = ratings.n_labels();
        let mut seen = vec![false; n_domain];
        let mut item_has_rows = vec![false; ratings.n_items()];
        let mut rater_has_rows = vec![false; ratings.n_raters()];
        for r in ratings.rows() {
            seen[r.label as usize] = true;
            item_has_rows[r.item as usize] = true;
            rater_has_rows[r.rater as usize] = true;
        }
        let mut compact = vec![u32::MAX; n_domain];
        let mut to_domain = Vec::new();
        for (d, s) in seen.iter().enumerate() {
            if *s {
                compact[d] = to_domain.len() as u32;
                to_domain.push(d as u32);
            }
        }
        let rows = if to_domain.len() == n_domain {
            Cow::Borrowed(ratings.rows())
        } else {
            Cow::Owned(
                ratings
                    .rows()
                    .iter()
                    .map(|r| Rating {
                        label: compact[r.label as usize],
                        ..*r
                    })
                    .collect(),
            )
        };
        Prepared {
            n_items: ratings.n_items(),
            n_raters: ratings.n_raters(),
            n_domain,
            k: to_domain.len(),
            to_domain,
            rows,
            item_has_rows,
            rater_has_rows,
            item_ordered: ratings.in_item_order(),
            two_threads: in_two(ratings.rows().len())
                && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2),
        }
    }

    /// Whether a pass over the rows is cut in two (see [`in_two`]).
    pub(crate) fn in_two(&self) -> bool {
        in_two(self.rows.len())
    }

    /// Expand compact posteriors to a [`Fitted`], labelling each rated item by its first
    /// maximal posterior. When every domain label occurs, the compact layout is the domain's
    /// and the buffer is kept rather than copied.
    pub(crate) fn finish(
        &self,
        compact_posteriors: Vec<f64>,
        skills: Vec<f64>,
        convergence: Convergence,
    ) -> Fitted {
        let k = self.k;
        let mut labels = vec![None; self.n_items];
        let same_layout = k == self.n_domain && compact_posteriors.len() == self.n_items * k;
        let mut posteriors = if same_layout {
            compact_posteriors
        } else {
            let mut expanded = vec![0.0; self.n_items * self.n_domain];
            for (item, has) in self.item_has_rows.iter().enumerate() {
                if *has {
                    let row = &compact_posteriors[item * k..(item + 1) * k];
                    labels[item] = first_argmax(row).map(|c| self.to_domain[c]);
                    for (c, p) in row.iter().enumerate() {
                        expanded[item * self.n_domain + self.to_domain[c] as usize] = *p;
                    }
                }
            }
            expanded
        };
        if same_layout {
            for (item, has) in self.item_has_rows.iter().enumerate() {
                let row = &mut posteriors[item * k..(item + 1) * k];
                if *has {
                    labels[item] = first_argmax(row).map(|c| c as u32);
                } else {
                    row.fill(0.0);
                }
            }
        }
        let skills = skills
            .into_iter()
            .zip(&self.rater_has_rows)
            .map(|(s, has)| has.then_some(s))
            .collect();
        Fitted {
            n_labels: self.n_domain,
            labels,
            posteriors,
            skills,
            convergence,
        }
    }

    /// Share of each rater's distinct (item, label) answers that equal `truth` (crowd-kit's
    /// `get_accuracy`, which drops repeated (task, worker, label) rows). Raters with no
    /// answers get 0.
    pub(crate) fn accuracy(&self, distinct: &[(u32, u32, u32)], truth: &[Option<u32>]) -> Vec<f64> {
        let mut hits = vec![0.0; self.n_raters];
        let mut total = vec![0.0; self.n_raters];
        for &(rater, item, label) in distinct {
            if let Some(t) = truth[item as usize] {
                total[rater as usize] += 1.0;
                if t == label {
                    hits[rater as usize] += 1.0;
                }
            }
        }
        hits.iter()
            .zip(&total)
            .map(|(h, t)| if *t > 0.0 { h / t } else { 0.0 })
            .collect()
    }

    /// Distinct (rater, item, compact label) triples, in no particular order ([`accuracy`]
    /// only counts them). Rows in item order whose items each have distinct raters are
    /// distinct already and are taken as they are; otherwise they are sorted and deduplicated.
    /// (A million rows took about 50 ms to sort, most of a majority vote's time, and an export
    /// without repeated answers is the usual case.)
    ///
    /// [`accuracy`]: Prepared::accuracy
    pub(crate) fn distinct_answers(&self) -> Vec<(u32, u32, u32)> {
        let mut v: Vec<(u32, u32, u32)> = self
            .rows
            .iter()
            .map(|r| (r.rater, r.item, r.label))
            .collect();
        if !(self.item_ordered && raters_distinct_per_run(&self.rows)) {
            v.sort_unstable();
            v.dedup();
        }
        v
    }

    /// Weighted vote shares per item (`weights` per rater, `None` = 1), compact layout, and
    /// the first-max label of each item. Items whose weights sum to zero fall back to plain
    /// counts, where pandas would produce NaN.
    pub(crate) fn vote(&self, weights: Option<&[f64]>) -> (Vec<f64>, Vec<Option<u32>>) {
        if self.item_ordered {
            return self.vote_in_order(weights);
        }
        let k = self.k;
        // The counts, turned into shares in place below.
        let mut shares = vec![0.0; self.n_items * k];
        for &Rating {
            item: i, label: l, ..
        } in self.rows.iter()
        {
            shares[i as usize * k + l as usize] += 1.0;
        }
        // A compensated sum of ones is exact, so unweighted shares come from the counts with
        // the same bits, without a second accumulator per cell.
        let sums = match weights {
            None => None,
            Some(w) => {
                let mut sums = vec![Kahan::default(); self.n_items * k];
                for &Rating {
                    item: i,
                    rater: r,
                    label: l,
                } in self.rows.iter()
                {
                    sums[i as usize * k + l as usize].add(w[r as usize]);
                }
                Some(sums)
            }
        };
        let mut labels = vec![None; self.n_items];
        let mut row = vec![0.0; k];
        for (item, label) in labels.iter_mut().enumerate() {
            if !self.item_has_rows[item] {
                continue;
            }
            let range = item * k..(item + 1) * k;
            match &sums {
                Some(sums) => {
                    for (dst, s) in row.iter_mut().zip(&sums[range.clone()]) {
                        *dst = s.value();
                    }
                }
                None => row.copy_from_slice(&shares[range.clone()]),
            }
            *label = vote_shares(&mut row, &shares[range.clone()]);
            shares[range].copy_from_slice(&row);
        }
        (shares, labels)
    }

    /// [`Prepared::vote`] for rows in item order, where each item's answers are one run of
    /// rows: a run is counted in scratch of K cells and its shares written once, instead of
    /// every answer adding into the items × K table (where an answer waited for the previous
    /// one's store) and a second pass over the table. The same sums in the same order, so the
    /// same bits; with two cores, each thread takes half of the items.
    fn vote_in_order(&self, weights: Option<&[f64]>) -> (Vec<f64>, Vec<Option<u32>>) {
        let k = self.k;
        let mut shares = vec![0.0; self.n_items * k];
        let mut labels = vec![None; self.n_items];
        let vote_items =
            |first: usize, rows: &[Rating], shares: &mut [f64], labels: &mut [Option<u32>]| {
                let mut counts = vec![0.0; k];
                let mut row = vec![0.0; k];
                let mut sums = vec![Kahan::default(); k];
                for run in rows.chunk_by(|a, b| a.item == b.item) {
                    counts.fill(0.0);
                    for r in run {
                        counts[r.label as usize] += 1.0;
                    }
                    match weights {
                        None => row.copy_from_slice(&counts),
                        Some(w) => {
                            sums.fill(Kahan::default());
                            for r in run {
                                sums[r.label as usize].add(w[r.rater as usize]);
                            }
                            for (dst, s) in row.iter_mut().zip(&sums) {
                                *dst = s.value();
                            }
                        }
                    }
                    let at = run[0].item as usize - first;
                    labels[at] = vote_shares(&mut row, &counts);
                    shares[at * k..(at + 1) * k].copy_from_slice(&row);
                }
            };
        if self.two_threads && self.n_items >= 2 {
            let mid = self.n_items / 2;
            let split = self.rows.partition_point(|r| (r.item as usize) < mid);
            let (rows_low, rows_high) = self.rows.split_at(split);
            let (shares_low, shares_high) = shares.split_at_mut(mid * k);
            let (labels_low, labels_high) = labels.split_at_mut(mid);
            std::thread::scope(|s| {
                s.spawn(|| vote_items(mid, rows_high, shares_high, labels_high));
                vote_items(0, rows_low, shares_low, labels_low);
            });
        } else {
            vote_items(0, &self.rows, &mut shares, &mut labels);
        }
        (shares, labels)
    }
}

/// Whether no rater answers an item twice, for rows in item order (each item's rows one run).
fn raters_distinct_per_run(rows: &[Rating]) -> bool {
    let mut scratch = Vec::new();
    rows.chunk_by(|a, b| a.item == b.item).all(|run| {
        if run.len() <= 8 {
            run.iter()
                .enumerate()
                .all(|(i, a)| run[i + 1..].iter().all(|b| b.rater != a.rater))
        } else {
            scratch.clear();
            scratch.extend(run.iter().map(|r| r.rater));
            scratch.sort_unstable();
            scratch.windows(2).all(|w| w[0] != w[1])
        }
    })
}

/// Whether a pass over `rows` rows is cut in two: only with enough rows to pay for a second
/// thread. At 100,000 rows a pass takes a few milliseconds and, on a busy machine, waiting for
/// the second thread to be scheduled cost more than it saved (measured), hence the threshold
/// of 2¹⁸ rows. This depends on the table alone: where the cut changes how sums are grouped
/// (the E-step's sums over items), the halves are made and added in the same way on one core,
/// so results never depend on the machine.
fn in_two(rows: usize) -> bool {
    rows >= 1 << 18
}

/// One item's vote, in place: `row` (its counts or weighted sums per label) becomes its
/// shares, and its first-max label is returned. Weights that sum to zero or to no finite
/// number fall back to the plain `counts`, where pandas would produce NaN.
fn vote_shares(row: &mut [f64], counts: &[f64]) -> Option<u32> {
    let total: f64 = row.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        row.copy_from_slice(counts);
    }
    let label = first_argmax(row).map(|c| c as u32);
    let total: f64 = row.iter().sum();
    row.iter_mut().for_each(|x| *x /= total);
    label
}

/// Index of the first maximum (NaN never wins), `None` for an empty or all-NaN slice.
pub(crate) fn first_argmax(xs: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, x) in xs.iter().enumerate() {
        if x.is_nan() {
            continue;
        }
        match best {
            Some(b) if xs[b] >= *x => {}
            _ => best = Some(i),
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};

    pub(crate) fn table(rows: &[(&str, &str, &str)]) -> Ratings {
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for (i, r, l) in rows {
            b.push(i, r, l, &[]).unwrap();
        }
        b.build(DuplicatePolicy::KeepAll).unwrap()
    }

    #[test]
    fn every_method_agrees_on_a_clear_table() {
        let t = table(&[
            ("a", "x", "1"),
            ("a", "y", "1"),
            ("a", "z", "0"),
            ("b", "x", "0"),
            ("b", "y", "0"),
            ("b", "z", "0"),
            ("c", "x", "1"),
            ("c", "y", "1"),
            ("c", "z", "1"),
        ]);
        for name in METHODS {
            let f = by_name(name).unwrap().fit(&t).unwrap();
            assert_eq!(f.labels, [Some(1), Some(0), Some(1)], "{name}");
            for item in 0..3 {
                let s: f64 = f.posterior(item).iter().sum();
                assert!((s - 1.0).abs() < 1e-6, "{name}: posterior sums to {s}");
            }
        }
    }

    #[test]
    fn first_argmax_prefers_first() {
        assert_eq!(first_argmax(&[0.5, 0.5]), Some(0));
        assert_eq!(first_argmax(&[f64::NAN, 0.1]), Some(1));
        assert_eq!(first_argmax(&[]), None);
    }

    /// The distinct answers equal those of sorting and deduplicating every row, whether or not
    /// some item has a rater twice (same or other label, in short runs and long ones) and
    /// whether the rows are in item order or not.
    #[test]
    fn distinct_answers_equal_sorted_and_deduplicated_rows() {
        let mut rng = crate::util::xorshift(0x9b05_688c_2b3e_6c1f);
        let mut next = |n: u64| rng() % n;
        for case in 0..40 {
            let per_item = if case % 2 == 0 { 5 } else { 20 };
            let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
            let mut rows = Vec::new();
            for item in 0..30 {
                // Raters drawn without repeats, but for one item in some cases.
                let mut raters: Vec<u64> = (0..40).collect();
                for i in (1..raters.len()).rev() {
                    raters.swap(i, next(i as u64 + 1) as usize);
                }
                raters.truncate(1 + next(per_item) as usize);
                if case % 3 == 0 && item == 17 {
                    raters.push(raters[0]);
                }
                for r in raters {
                    rows.push((format!("i{item}"), format!("r{r}"), next(3).to_string()));
                }
            }
            if case % 4 == 1 {
                for i in (1..rows.len()).rev() {
                    rows.swap(i, next(i as u64 + 1) as usize);
                }
            }
            for (i, r, l) in &rows {
                b.push(i, r, l, &[]).unwrap();
            }
            let t = b.build(DuplicatePolicy::KeepAll).unwrap();
            let p = Prepared::new(&t);
            let mut want: Vec<(u32, u32, u32)> =
                p.rows.iter().map(|r| (r.rater, r.item, r.label)).collect();
            want.sort_unstable();
            want.dedup();
            let mut got = p.distinct_answers();
            got.sort_unstable();
            assert_eq!(got, want, "case {case}");
            if p.item_ordered {
                let repeated = t.n_duplicates() > 0;
                assert_eq!(raters_distinct_per_run(&p.rows), !repeated, "case {case}");
            }
        }
    }

    /// Over rows in item order, the vote run by run (on one thread, and on two above 2¹⁸
    /// rows) gives the same bits as the vote through the items × labels table, with and
    /// without weights, including items whose weights sum to zero.
    #[test]
    fn vote_in_order_equals_the_table_vote() {
        let mut rng = crate::util::xorshift(0x853c_49e6_748f_ea9b);
        let mut next = |n: u64| rng() % n;
        for (n_items, n_raters) in [(12, 4), (90_000, 300)] {
            let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
            for item in 0..n_items {
                for _ in 0..1 + next(7) {
                    let (rater, label) = (next(n_raters), next(3));
                    b.push(
                        &format!("i{item}"),
                        &format!("r{rater}"),
                        &label.to_string(),
                        &[],
                    )
                    .unwrap();
                }
            }
            let t = b.build(DuplicatePolicy::KeepAll).unwrap();
            let mut p = Prepared::new(&t);
            assert!(p.item_ordered);
            assert_eq!(p.in_two(), n_items > 12);
            // A third of the raters weigh nothing, so some items fall back to counts.
            let weights: Vec<f64> = (0..p.n_raters)
                .map(|_| match next(3) {
                    0 => 0.0,
                    _ => next(1000) as f64 / 997.0,
                })
                .collect();
            for w in [None, Some(weights.as_slice())] {
                let (shares, labels) = p.vote(w);
                p.item_ordered = false;
                let (table_shares, table_labels) = p.vote(w);
                p.item_ordered = true;
                assert_eq!(labels, table_labels);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&shares), bits(&table_shares));
            }
        }
    }
}

//! Dawid–Skene (full confusion matrices) and its one-coin variant, by EM as in crowd-kit 1.4.2.
//!
//! Initialisation: posteriors = majority-vote shares, priors = their column means. Each
//! iteration runs an E-step (log₂ likelihoods, shifted by the row maximum), recomputes priors,
//! runs an M-step, then evaluates the ELBO per answer; it stops as soon as the ELBO gain is
//! below `tol`, *including when the ELBO falls*. Confusion entries are clipped at 1e-10 and, in
//! the full model, normalised over the labels the rater actually used.

use super::{Aggregator, Convergence, Fitted, Prepared};
use crate::util::Kahan;
use crate::{Rating, Ratings, StatsError};

const EPS: f64 = 1e-10;

/// Dawid–Skene with a full confusion matrix per rater.
///
/// Skill = the rater's prior-weighted probability of answering correctly, Σ_t π_t·e[t→t].
#[derive(Debug, Clone, Copy)]
pub struct DawidSkene {
    /// Maximum EM iterations (100).
    pub n_iter: usize,
    /// Stop when the ELBO per answer improves by less than this (1e-5).
    pub tol: f64,
}

impl Default for DawidSkene {
    fn default() -> Self {
        DawidSkene {
            n_iter: 100,
            tol: 1e-5,
        }
    }
}

/// Dawid–Skene where each rater has one accuracy s: e[t→t] = s, e[t→o] = (1 − s)/(K − 1).
///
/// Skill = s, the mean posterior of the labels the rater gave.
#[derive(Debug, Clone, Copy)]
pub struct OneCoinDawidSkene {
    /// Maximum EM iterations (100).
    pub n_iter: usize,
    /// Stop when the ELBO per answer improves by less than this (1e-5).
    pub tol: f64,
}

impl Default for OneCoinDawidSkene {
    fn default() -> Self {
        OneCoinDawidSkene {
            n_iter: 100,
            tol: 1e-5,
        }
    }
}

/// Confusion matrices: errors[(rater·K + observed)·K + true].
struct Errors {
    k: usize,
    values: Vec<f64>,
}

impl Errors {
    fn get(&self, rater: u32, observed: u32, truth: usize) -> f64 {
        self.values[(rater as usize * self.k + observed as usize) * self.k + truth]
    }
}

/// Which (rater, observed label) pairs occur: crowd-kit's error table only has those rows.
fn used_pairs(p: &Prepared) -> Vec<bool> {
    let mut used = vec![false; p.n_raters * p.k];
    for &Rating {
        rater: r, label: l, ..
    } in p.rows.iter()
    {
        used[r as usize * p.k + l as usize] = true;
    }
    used
}

/// Posterior mass per (rater, observed, true), summed over that rater's answers in input order.
///
/// One pass over the answers per thread, each adding the posteriors of its own true labels
/// into a table of (rater, observed) × those labels; with two cores the labels are split
/// between two threads. Both threads read the answers in the same order ([`each_answer`]), so
/// the split changes no bit. (One pass per true label read every answer K times; one pass for
/// a thread's labels reads it once and adds its labels' adjacent cells together.)
fn soft_counts(p: &Prepared, by_item: &ByItem, posteriors: &[f64]) -> Vec<f64> {
    let k = p.k;
    let of_labels = |labels: std::ops::Range<usize>| -> Vec<f64> {
        match labels.len() {
            1 => label_sums::<1>(p, by_item, posteriors, labels.start),
            2 => label_sums::<2>(p, by_item, posteriors, labels.start),
            3 => label_sums::<3>(p, by_item, posteriors, labels.start),
            width => {
                let mut sums = vec![Kahan::default(); p.n_raters * k * width];
                each_answer(p, by_item, |cell, item| {
                    let post = &posteriors[item * k + labels.start..][..width];
                    for (sum, q) in sums[cell * width..(cell + 1) * width].iter_mut().zip(post) {
                        sum.add(*q);
                    }
                });
                sums.into_iter().map(Kahan::value).collect()
            }
        }
    };
    let half = if p.two_threads && k >= 2 {
        k.div_ceil(2)
    } else {
        k
    };
    let (low, high) = if half < k {
        std::thread::scope(|s| {
            let high = s.spawn(|| of_labels(half..k));
            (
                of_labels(0..half),
                high.join().expect("M-step thread panicked"),
            )
        })
    } else {
        (of_labels(0..k), Vec::new())
    };
    let mut out = vec![0.0; p.n_raters * k * k];
    for (pair, row) in out.chunks_exact_mut(k.max(1)).enumerate() {
        row[..half].copy_from_slice(&low[pair * half..(pair + 1) * half]);
        let rest = k - half;
        row[half..].copy_from_slice(&high[pair * rest..(pair + 1) * rest]);
    }
    out
}

/// [`soft_counts`] for `W` true labels from `first` on, a fixed number (one to three: safety
/// labels are two or three), so that the adds of a row unroll without a bounds check each.
fn label_sums<const W: usize>(
    p: &Prepared,
    by_item: &ByItem,
    posteriors: &[f64],
    first: usize,
) -> Vec<f64> {
    let k = p.k;
    let mut sums = vec![[Kahan::default(); W]; p.n_raters * k];
    each_answer(p, by_item, |cell, item| {
        let at = item * k + first;
        let post: &[f64; W] = posteriors[at..at + W]
            .try_into()
            .expect("a slice of W posteriors");
        for (sum, q) in sums[cell].iter_mut().zip(post) {
            sum.add(*q);
        }
    });
    sums.into_iter().flatten().map(Kahan::value).collect()
}

/// `f(cell, item)` for every answer, its cell being rater·K + observed: in row order when the
/// rows are in item order, else in item order through the E-step's sort, so that an item's
/// posteriors are read once for its answers together rather than wherever its rows fall (rows
/// in any order made the M-step's reads jump through every item's posteriors).
#[inline]
fn each_answer(p: &Prepared, by_item: &ByItem, mut f: impl FnMut(usize, usize)) {
    match by_item {
        ByItem::InOrder => {
            for r in p.rows.iter() {
                f(r.rater as usize * p.k + r.label as usize, r.item as usize);
            }
        }
        ByItem::Sorted { cells, starts } => {
            for (item, w) in starts.windows(2).enumerate() {
                for &cell in &cells[w[0]..w[1]] {
                    f(cell as usize, item);
                }
            }
        }
    }
}

/// The full model's M-step, and E_q[ln p(answers | truth)] = Σ_answers Σ_t q_t·ln e[r, l, t],
/// taken from the same sums: the answers of one (rater, observed) pair add their posteriors
/// into one row of the soft counts, so Σ over that row's counts times ln e is their term.
fn m_step_full(p: &Prepared, by_item: &ByItem, posteriors: &[f64], used: &[bool]) -> (Errors, f64) {
    let k = p.k;
    let soft = soft_counts(p, by_item, posteriors);
    let mut values = soft.clone();
    for r in 0..p.n_raters {
        for t in 0..k {
            let mut total = Kahan::default();
            for o in 0..k {
                let idx = (r * k + o) * k + t;
                if used[r * k + o] {
                    values[idx] = values[idx].max(EPS);
                    total.add(values[idx]);
                } else {
                    values[idx] = 0.0;
                }
            }
            let total = total.value();
            for o in 0..k {
                if used[r * k + o] {
                    values[(r * k + o) * k + t] /= total;
                }
            }
        }
    }
    let mut answers_ll = 0.0;
    for (pair, is_used) in used.iter().enumerate() {
        if *is_used {
            let at = pair * k..(pair + 1) * k;
            for (c, e) in soft[at.clone()].iter().zip(&values[at]) {
                answers_ll += c * e.ln();
            }
        }
    }
    (Errors { k, values }, answers_ll)
}

/// Per rater: the sum of the posteriors of the labels they gave, and their number of answers.
fn one_coin_sums(p: &Prepared, posteriors: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut sum = vec![0.0; p.n_raters];
    let mut n = vec![0.0; p.n_raters];
    for &Rating {
        item: i,
        rater: r,
        label: l,
    } in p.rows.iter()
    {
        sum[r as usize] += posteriors[i as usize * p.k + l as usize];
        n[r as usize] += 1.0;
    }
    (sum, n)
}

/// The one-coin M-step from [`one_coin_sums`]: skills (mean posterior of the given label), the
/// error matrices, and E_q[ln p(answers | truth)]. An answer's posterior puts q_l on the
/// diagonal entry and the rest, 1 − q_l, on the off-diagonal one, so a rater's term is
/// sum·ln e_diag + (n − sum)·ln e_off.
fn one_coin_step(p: &Prepared, posteriors: &[f64], used: &[bool]) -> (Errors, Vec<f64>, f64) {
    let k = p.k;
    let (sum, n) = one_coin_sums(p, posteriors);
    let skills: Vec<f64> = sum
        .iter()
        .zip(&n)
        .map(|(s, n)| if *n > 0.0 { s / n } else { 0.0 })
        .collect();
    let diagonal = |s: f64| s.clamp(EPS, 1.0 - EPS);
    let off_diagonal = |s: f64| ((1.0 - s) / (k - 1) as f64).clamp(EPS, 1.0 - EPS);
    let mut values = vec![0.0; p.n_raters * k * k];
    let mut answers_ll = 0.0;
    for r in 0..p.n_raters {
        for o in 0..k {
            if !used[r * k + o] {
                continue;
            }
            for t in 0..k {
                values[(r * k + o) * k + t] = if o == t {
                    diagonal(skills[r])
                } else {
                    off_diagonal(skills[r])
                };
            }
        }
        if n[r] > 0.0 {
            answers_ll += sum[r] * diagonal(skills[r]).ln();
            if k > 1 {
                answers_ll += (n[r] - sum[r]) * off_diagonal(skills[r]).ln();
            }
        }
    }
    (Errors { k, values }, skills, answers_ll)
}

fn priors_of(p: &Prepared, posteriors: &[f64]) -> Vec<f64> {
    let k = p.k;
    let n_rated = p.item_has_rows.iter().filter(|x| **x).count().max(1) as f64;
    let mut priors = vec![0.0; k];
    for (row, has) in posteriors.chunks_exact(k.max(1)).zip(&p.item_has_rows) {
        if *has {
            for (sum, x) in priors.iter_mut().zip(row) {
                *sum += x;
            }
        }
    }
    priors.iter_mut().for_each(|x| *x /= n_rated);
    priors
}

/// How the E-step finds each item's answers, in input order.
enum ByItem {
    /// The rows are in item order (a file grouped by item, as ids follow first appearance):
    /// an item's answers are a run of rows, read in place.
    InOrder,
    /// A stable counting sort of the rows by item: item i's answers are
    /// `cells[starts[i]..starts[i + 1]]`, each rater·K + observed, its row of the confusion
    /// table.
    Sorted { cells: Vec<u32>, starts: Vec<usize> },
}

/// Offset of a row's (rater, observed) row in the confusion table.
fn error_row(r: &Rating, k: usize) -> usize {
    (r.rater as usize * k + r.label as usize) * k
}

impl ByItem {
    fn new(p: &Prepared) -> Self {
        if p.item_ordered {
            return ByItem::InOrder;
        }
        let k = p.k;
        let mut starts = vec![0usize; p.n_items + 1];
        for r in p.rows.iter() {
            starts[r.item as usize + 1] += 1;
        }
        for i in 0..p.n_items {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut cells = vec![0u32; p.rows.len()];
        for r in p.rows.iter() {
            let at = &mut next[r.item as usize];
            cells[*at] = (r.rater as usize * k + r.label as usize) as u32;
            *at += 1;
        }
        ByItem::Sorted { cells, starts }
    }
}

/// What the E-step learns of the new posteriors q, for the priors and the ELBO: over rated
/// items, Σ_i q_i (per label), Σ_i n_i·q_i with n_i the item's number of answers (per label),
/// and the entropy −Σ q·ln q with q clipped at 1e-10 (as crowd-kit clips before taking it),
/// read with [`PosteriorSums::entropy`].
struct PosteriorSums {
    sums: Vec<f64>,
    answered: Vec<f64>,
    /// The entropy but for the Σ_i ln T_i of items without a clipped entry, in `ln_totals`.
    entropy_rest: f64,
    ln_totals: LnSum,
}

impl PosteriorSums {
    fn zero(k: usize) -> Self {
        PosteriorSums {
            sums: vec![0.0; k],
            answered: vec![0.0; k],
            entropy_rest: 0.0,
            ln_totals: LnSum::default(),
        }
    }

    fn merge(mut self, other: PosteriorSums) -> Self {
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a += b;
        }
        for (a, b) in self.answered.iter_mut().zip(&other.answered) {
            *a += b;
        }
        self.entropy_rest += other.entropy_rest;
        self.ln_totals.merge(other.ln_totals);
        self
    }

    fn entropy(&self) -> f64 {
        self.entropy_rest + self.ln_totals.value()
    }
}

/// Σ ln x over many x ≥ 1, kept as a product mantissa·2^exponent with one logarithm at the
/// end: the E-step needs Σ_i ln T_i over the items, and a logarithm per item was about a
/// quarter of its CPU time. The product's rounding (at most half an ulp per factor, relative)
/// moves the sum by at most n·1.1e-16, 1.1e-10 for a million items. Factors outside [1, 2⁶⁴)
/// (never a T_i, whose largest term is 2⁰, but for NaN) take their own logarithm.
#[derive(Debug, Clone, Copy)]
struct LnSum {
    mantissa: f64,
    exponent: i64,
    direct: f64,
}

impl Default for LnSum {
    fn default() -> Self {
        LnSum {
            mantissa: 1.0,
            exponent: 0,
            direct: 0.0,
        }
    }
}

impl LnSum {
    /// Above this the mantissa is scaled back to [1, 2): 2⁵¹² times a factor below 2⁶⁴
    /// stays far from overflow.
    const RESCALE: f64 = 1.340_780_792_994_259_7e154;

    #[inline(always)]
    fn add(&mut self, x: f64) {
        if (1.0..1.8446744073709552e19).contains(&x) {
            self.mantissa *= x;
            if self.mantissa > Self::RESCALE {
                self.rescale();
            }
        } else {
            self.direct += x.ln();
        }
    }

    fn rescale(&mut self) {
        let bits = self.mantissa.to_bits();
        self.exponent += ((bits >> 52) & 0x7ff) as i64 - 1023;
        self.mantissa = f64::from_bits((bits & !(0x7ff << 52)) | (1023 << 52));
    }

    fn merge(&mut self, mut other: LnSum) {
        // Both mantissas into [1, 2) first, far from overflow (two of 2⁵¹² would reach it).
        self.rescale();
        other.rescale();
        self.mantissa *= other.mantissa;
        self.exponent += other.exponent;
        self.direct += other.direct;
        self.rescale();
    }

    fn value(&self) -> f64 {
        self.mantissa.ln() + self.exponent as f64 * std::f64::consts::LN_2 + self.direct
    }
}

/// E-step into `post` (rated items only; the rest is left as it is). The new posteriors
/// depend on the confusion matrices and priors only, so they overwrite the old ones in place.
///
/// Each item's posterior depends on its own answers only, and per item the answers are summed
/// in input order (as pandas' group-by does), so splitting the items in two changes no bit of
/// the posteriors. The [`PosteriorSums`] of the two halves are added: they feed the priors and
/// the ELBO, which crowd-kit sums in numpy's own order anyway. Whether the items are cut in
/// two depends on the table alone ([`Prepared::in_two`]); on one core the halves run one after
/// the other, so the sums, and the next iteration's posteriors, are those of two cores.
/// `threads`: whether the halves may run on two threads ([`Prepared::two_threads`], or a
/// test's choice).
fn e_step(
    p: &Prepared,
    by_item: &ByItem,
    priors: &[f64],
    errors: &Errors,
    post: &mut [f64],
    threads: bool,
) -> PosteriorSums {
    // log₂ once per confusion entry, not once per answer.
    let log_errors: Vec<f64> = errors.values.iter().map(|e| e.log2()).collect();
    let log_priors: Vec<f64> = priors.iter().map(|x| x.max(EPS).log2()).collect();
    let (n, k) = (p.n_items, p.k);
    let step = |items: std::ops::Range<usize>, post: &mut [f64]| {
        let mut unit = Unit::new(k, &log_errors, &log_priors);
        let first = items.start;
        let at = |item: usize| (item - first) * k..(item - first + 1) * k;
        match by_item {
            ByItem::InOrder => {
                let rows = &p.rows[p.rows.partition_point(|r| (r.item as usize) < items.start)
                    ..p.rows.partition_point(|r| (r.item as usize) < items.end)];
                for run in rows.chunk_by(|a, b| a.item == b.item) {
                    let answers = run.iter().map(|r| error_row(r, k));
                    unit.add(answers, run.len(), &mut post[at(run[0].item as usize)]);
                }
            }
            ByItem::Sorted { cells, starts } => {
                for item in items {
                    let answers = &cells[starts[item]..starts[item + 1]];
                    if !answers.is_empty() {
                        let answers_iter = answers.iter().map(|&c| c as usize * k);
                        unit.add(answers_iter, answers.len(), &mut post[at(item)]);
                    }
                }
            }
        }
        unit.sums
    };
    if !(p.in_two() && n >= 2) {
        return step(0..n, post);
    }
    let mid = n / 2;
    let (head, tail) = post.split_at_mut(mid * k);
    if threads {
        std::thread::scope(|s| {
            let second = s.spawn(|| step(mid..n, tail));
            let first = step(0..mid, head);
            first.merge(second.join().expect("E-step thread panicked"))
        })
    } else {
        let first = step(0..mid, head);
        first.merge(step(mid..n, tail))
    }
}

/// The E-step for one item at a time, with its buffers and running [`PosteriorSums`].
struct Unit<'a> {
    k: usize,
    log_errors: &'a [f64],
    log_priors: &'a [f64],
    acc: Vec<Kahan>,
    row: Vec<f64>,
    pow: Vec<f64>,
    sums: PosteriorSums,
}

impl<'a> Unit<'a> {
    fn new(k: usize, log_errors: &'a [f64], log_priors: &'a [f64]) -> Self {
        Unit {
            k,
            log_errors,
            log_priors,
            acc: vec![Kahan::default(); k],
            row: vec![0.0; k],
            pow: vec![0.0; k],
            sums: PosteriorSums::zero(k),
        }
    }

    /// Write the posterior of an item with `n` answers (confusion-table offsets, in input
    /// order) to `post`, and add it to the sums.
    fn add(&mut self, answers: impl Iterator<Item = usize>, n: usize, post: &mut [f64]) {
        // Two and three labels (the usual safety labels) go through fixed-size arrays, which
        // stay in registers: through memory, each answer waited for the previous one's store.
        match self.k {
            2 => return self.add_fixed::<2>(answers, n, post),
            3 => return self.add_fixed::<3>(answers, n, post),
            _ => self.sum_answers(answers),
        }
        posterior_from_logs(&mut self.row, &mut self.pow, n, post, &mut self.sums);
    }
}

impl Unit<'_> {
    /// `row` = log₂ prior + Σ log₂ e over the answers, per true label.
    fn sum_answers(&mut self, answers: impl Iterator<Item = usize>) {
        let k = self.k;
        self.acc.iter_mut().for_each(|a| *a = Kahan::default());
        for base in answers {
            for (a, le) in self.acc.iter_mut().zip(&self.log_errors[base..base + k]) {
                a.add(*le);
            }
        }
        for t in 0..k {
            self.row[t] = self.log_priors[t] + self.acc[t].value();
        }
    }

    /// [`Unit::add`] for `K` labels: the same operations in the same order, on arrays.
    fn add_fixed<const K: usize>(
        &mut self,
        answers: impl Iterator<Item = usize>,
        n: usize,
        post: &mut [f64],
    ) {
        let mut acc = [Kahan::default(); K];
        for base in answers {
            let errors: &[f64; K] = self.log_errors[base..base + K]
                .try_into()
                .expect("K confusion entries");
            for (a, le) in acc.iter_mut().zip(errors) {
                a.add(*le);
            }
        }
        let mut row = [0.0; K];
        for ((x, lp), a) in row.iter_mut().zip(self.log_priors).zip(acc) {
            *x = lp + a.value();
        }
        posterior_from_logs(&mut row, &mut [0.0; K], n, post, &mut self.sums);
    }
}

/// An item's posterior from `row`, log₂ prior + Σ log₂ e per true label, into `post`, added to
/// `out` (`n`: its number of answers; `pow`: scratch of the same length). Inlined into both
/// E-step paths, so that on fixed-size arrays its loops unroll.
#[inline(always)]
fn posterior_from_logs(
    row: &mut [f64],
    pow: &mut [f64],
    n: usize,
    post: &mut [f64],
    out: &mut PosteriorSums,
) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for (x, d) in pow.iter_mut().zip(row.iter_mut()) {
        // The exponent d = x − max is kept: ln q = d·ln 2 − ln Σ 2^d below.
        *d -= max;
        // 2⁰ is exactly 1: the maximal entry needs no exp2 call.
        *x = if *d == 0.0 { 1.0 } else { d.exp2() };
        total += *x;
    }
    let answers = n as f64;
    // ln q = d·ln 2 − ln T with T = Σ 2^d, so −Σ q·ln q = −ln 2·Σ q·d + ln T·Σ q, and Σ q is
    // 1 (to an ulp) when no entry is clipped: ln T then goes to the product of totals.
    let mut unclipped = 0.0;
    let mut clipped = false;
    for (t, (q, (x, d))) in post.iter_mut().zip(pow.iter().zip(row.iter())).enumerate() {
        *q = x / total;
        out.sums[t] += *q;
        out.answered[t] += answers * *q;
        if *q > EPS {
            out.entropy_rest -= *q * (d * std::f64::consts::LN_2);
            unclipped += *q;
        } else {
            out.entropy_rest -= EPS * EPS.ln();
            clipped = true;
        }
    }
    if !clipped {
        out.ln_totals.add(total);
    } else if unclipped > 0.0 {
        out.entropy_rest += unclipped * total.ln();
    }
}

/// Shared EM loop. `m_step` gets the posteriors and the priors computed from them and returns
/// the error matrices, the per-rater skills and E_q[ln p(answers | truth)], summed over all
/// answers.
///
/// The ELBO per answer is that term, plus Σ_t ln π_t·Σ_i n_i·q_it (crowd-kit counts the prior
/// once per answer), plus the entropy of q, over the number of answers: the same quantity as
/// summing over every answer, from sums of at most raters × K² terms.
fn run_em(
    ratings: &Ratings,
    n_iter: usize,
    tol: f64,
    m_step: impl Fn(&Prepared, &ByItem, &[f64], &[f64], &[bool]) -> (Errors, Vec<f64>, f64),
) -> Fitted {
    let p = Prepared::new(ratings);
    if p.rows.is_empty() {
        return p.finish(
            Vec::new(),
            vec![0.0; p.n_raters],
            Convergence::closed_form(),
        );
    }
    let used = used_pairs(&p);
    let by_item = ByItem::new(&p);
    let threads = p.two_threads;
    // Unrated items keep posterior 0: the E-step writes rated items only.
    let (mut posteriors, _) = p.vote(None);
    let n_rated = p.item_has_rows.iter().filter(|x| **x).count().max(1) as f64;
    let mut priors = priors_of(&p, &posteriors);
    let (mut errors, mut skills, _) = m_step(&p, &by_item, &posteriors, &priors, &used);
    let mut loss = f64::NEG_INFINITY;
    let mut history = Vec::new();
    let mut converged = false;
    for _ in 0..n_iter {
        let q = e_step(&p, &by_item, &priors, &errors, &mut posteriors, threads);
        priors = q.sums.iter().map(|s| s / n_rated).collect();
        let answers_ll;
        (errors, skills, answers_ll) = m_step(&p, &by_item, &posteriors, &priors, &used);
        let prior_ll: f64 = priors
            .iter()
            .zip(&q.answered)
            .map(|(pi, a)| pi.max(EPS).ln() * a)
            .sum();
        let new_loss = (answers_ll + prior_ll + q.entropy()) / p.rows.len() as f64;
        history.push(new_loss);
        // Written as crowd-kit's `new - old < tol`, which is also true when the ELBO falls.
        if new_loss - loss < tol {
            converged = true;
            break;
        }
        loss = new_loss;
    }
    if !history.is_empty() {
        // crowd-kit clips the posteriors at 1e-10 after each ELBO; only the last clip is seen,
        // as every E-step starts afresh from the confusion matrices.
        for (row, has) in posteriors.chunks_exact_mut(p.k).zip(&p.item_has_rows) {
            if *has {
                row.iter_mut().for_each(|q| *q = q.max(EPS));
            }
        }
    }
    p.finish(
        posteriors,
        skills,
        Convergence {
            iterations: history.len(),
            converged,
            loss_history: history,
        },
    )
}

impl Aggregator for DawidSkene {
    fn name(&self) -> &'static str {
        "ds"
    }
    fn fit(&self, ratings: &Ratings) -> Result<Fitted, StatsError> {
        Ok(run_em(
            ratings,
            self.n_iter,
            self.tol,
            |p, by_item, post, priors, used| {
                let (errors, answers_ll) = m_step_full(p, by_item, post, used);
                let skills = (0..p.n_raters)
                    .map(|r| {
                        (0..p.k)
                            .map(|t| priors[t] * errors.get(r as u32, t as u32, t))
                            .sum()
                    })
                    .collect();
                (errors, skills, answers_ll)
            },
        ))
    }
}

impl Aggregator for OneCoinDawidSkene {
    fn name(&self) -> &'static str {
        "onecoin-ds"
    }
    fn fit(&self, ratings: &Ratings) -> Result<Fitted, StatsError> {
        Ok(run_em(
            ratings,
            self.n_iter,
            self.tol,
            |p, _, post, _, used| one_coin_step(p, post, used),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::table;
    use super::*;

    #[test]
    fn ds_stops_and_reports_history() {
        let t = table(&[
            ("a", "x", "1"),
            ("a", "y", "1"),
            ("a", "z", "0"),
            ("b", "x", "0"),
            ("b", "y", "0"),
            ("b", "z", "1"),
            ("c", "x", "1"),
            ("c", "y", "0"),
            ("c", "z", "0"),
        ]);
        let f = DawidSkene::default().fit(&t).unwrap();
        assert!(f.convergence.iterations >= 1);
        assert_eq!(f.convergence.loss_history.len(), f.convergence.iterations);
        assert!(
            f.skills
                .iter()
                .all(|s| s.is_some_and(|s| (0.0..=1.0).contains(&s)))
        );
    }

    /// Above 2¹⁸ rows the E-step cuts the items in two whether or not a second core runs the
    /// second half: the posteriors and every sum are the same bits on one thread and on two,
    /// for rows in item order and in any order.
    #[test]
    fn e_step_gives_the_same_bits_on_one_thread_and_two() {
        let mut rng = crate::util::xorshift(0x6a09_e667_f3bc_c909);
        let mut next = |n: u64| rng() % n;
        let mut rows = Vec::new();
        for item in 0..60_000 {
            let truth = next(3);
            for _ in 0..5 {
                let rater = next(200);
                let label = if next(4) == 0 { next(3) } else { truth };
                rows.push((format!("i{item}"), format!("r{rater}"), label.to_string()));
            }
        }
        for shuffled in [false, true] {
            if shuffled {
                for i in (1..rows.len()).rev() {
                    rows.swap(i, next(i as u64 + 1) as usize);
                }
            }
            let refs: Vec<(&str, &str, &str)> = rows
                .iter()
                .map(|(i, r, l)| (i.as_str(), r.as_str(), l.as_str()))
                .collect();
            let t = table(&refs);
            let p = Prepared::new(&t);
            assert!(p.in_two());
            assert_eq!(p.item_ordered, !shuffled);
            let used = used_pairs(&p);
            let (start, _) = p.vote(None);
            let priors = priors_of(&p, &start);
            let by_item = ByItem::new(&p);
            let (errors, _) = m_step_full(&p, &by_item, &start, &used);
            let run = |threads: bool| {
                let mut post = start.clone();
                let sums = e_step(&p, &by_item, &priors, &errors, &mut post, threads);
                let mut bits: Vec<u64> = post.iter().map(|x| x.to_bits()).collect();
                bits.extend(sums.sums.iter().chain(&sums.answered).map(|x| x.to_bits()));
                bits.push(sums.entropy().to_bits());
                bits
            };
            let (one, two) = (run(false), run(true));
            let differ = one.iter().zip(&two).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "shuffled: {shuffled}: values that differ");
        }
    }

    /// The product of factors equals the sum of their logarithms, across many rescalings, for
    /// factors from 1 to near 2⁶⁴, and with factors the product path does not take.
    #[test]
    fn ln_sum_equals_summed_logarithms() {
        let mut rng = crate::util::xorshift(0x2545_f491_4f6c_dd1d);
        let mut next = || (rng() >> 11) as f64 / (1u64 << 53) as f64;
        let (mut halves, mut direct) = ([LnSum::default(), LnSum::default()], 0.0);
        for i in 0..200_000 {
            let x = match i % 4 {
                0 => 1.0 + 2.0 * next(),
                1 => 1.0 + 1e-12 * next(),
                2 => 2f64.powf(63.0 * next()),
                _ => 1.0,
            };
            halves[i % 2].add(x);
            direct += x.ln();
        }
        let [mut sum, other] = halves;
        sum.merge(other);
        assert!(
            (sum.value() - direct).abs() <= 1e-9 * direct,
            "{} vs {direct}",
            sum.value()
        );
        // Two sums whose mantissas sit at the rescaling bound merge without overflow.
        let mut high = LnSum::default();
        for _ in 0..8 {
            high.add(2f64.powi(63));
        }
        high.add(2f64.powi(8));
        assert_eq!(high.mantissa, LnSum::RESCALE);
        let mut both = high;
        both.merge(high);
        assert_eq!(both.value(), 1024.0 * std::f64::consts::LN_2);
        for x in [0.5, 1e30, f64::INFINITY] {
            let mut with = sum;
            with.add(x);
            assert_eq!(with.value(), sum.value() + x.ln());
        }
        let mut nan = sum;
        nan.add(f64::NAN);
        assert!(nan.value().is_nan());
        assert_eq!(LnSum::default().value(), 0.0);
    }

    /// The ELBO's terms taken from the E- and M-steps' sums equal the sums over every answer
    /// that crowd-kit writes out.
    #[test]
    fn elbo_terms_from_sums_equal_per_answer_sums() {
        let rows = [
            ("a", "x", "1"),
            ("a", "y", "2"),
            ("a", "z", "0"),
            ("b", "x", "0"),
            ("b", "y", "0"),
            ("b", "z", "1"),
            ("b", "z", "1"),
            ("c", "x", "2"),
            ("c", "y", "2"),
            ("d", "z", "0"),
            ("d", "x", "1"),
        ];
        // The starting error matrices have entries at the clip, so some posteriors are too.
        assert!(check_elbo_terms(&rows), "a posterior is clipped");
        // Every rater gives every label once on items split three ways: no entry is near it.
        let rows = [
            ("a", "x", "0"),
            ("a", "y", "1"),
            ("a", "z", "2"),
            ("b", "x", "1"),
            ("b", "y", "2"),
            ("b", "z", "0"),
            ("c", "x", "2"),
            ("c", "y", "0"),
            ("c", "z", "1"),
            ("d", "x", "0"),
            ("d", "y", "0"),
            ("d", "z", "1"),
        ];
        assert!(!check_elbo_terms(&rows), "no posterior is clipped");
    }

    /// Checks the E- and M-step sums against per-answer sums on `rows`, and tells whether a
    /// posterior came out at or below the clip.
    fn check_elbo_terms(rows: &[(&str, &str, &str)]) -> bool {
        let t = table(rows);
        let p = Prepared::new(&t);
        let k = p.k;
        let used = used_pairs(&p);
        let (start, _) = p.vote(None);
        let priors = priors_of(&p, &start);
        let by_item = ByItem::new(&p);
        let (errors, _) = m_step_full(&p, &by_item, &start, &used);
        let mut post = vec![0.0; start.len()];
        let sums = e_step(&p, &by_item, &priors, &errors, &mut post, true);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());

        let mut answered = vec![0.0; k];
        for r in p.rows.iter() {
            for (a, q) in answered.iter_mut().zip(&post[r.item as usize * k..]) {
                *a += q;
            }
        }
        let entropy: f64 = post.iter().map(|q| -q.max(EPS) * q.max(EPS).ln()).sum();
        assert!(
            close(sums.entropy(), entropy),
            "{} vs {entropy}",
            sums.entropy()
        );
        for (a, b) in sums.answered.iter().zip(&answered) {
            assert!(close(*a, *b), "{a} vs {b}");
        }

        let per_answer = |errors: &Errors| -> f64 {
            p.rows
                .iter()
                .map(|r| {
                    (0..k)
                        .map(|c| {
                            post[r.item as usize * k + c] * errors.get(r.rater, r.label, c).ln()
                        })
                        .sum::<f64>()
                })
                .sum()
        };
        let (full, ll) = m_step_full(&p, &by_item, &post, &used);
        assert!(close(ll, per_answer(&full)), "full: {ll}");
        let (one_coin, _, ll) = one_coin_step(&p, &post, &used);
        assert!(close(ll, per_answer(&one_coin)), "one-coin: {ll}");
        post.iter().any(|q| *q <= EPS)
    }
}

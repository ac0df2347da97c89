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

/// Whether to split a step over two threads: only when there is a second core and enough rows
/// to pay for spawning. The split never changes the result (see the callers). At 100,000 rows a
/// step takes a few milliseconds and, on a busy machine, waiting for the second thread to be
/// scheduled cost more than it saved (measured), hence the threshold of 2¹⁸ rows.
fn parallel(p: &Prepared) -> bool {
    p.rows.len() >= 1 << 18 && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// Posterior mass per (rater, observed, true), summed over that rater's answers in input order.
fn soft_counts(p: &Prepared, posteriors: &[f64]) -> Vec<f64> {
    let k = p.k;
    let mut sums = vec![Kahan::default(); p.n_raters * k * k];
    for &Rating {
        item: i,
        rater: r,
        label: l,
    } in p.rows.iter()
    {
        let (pi, bi) = (i as usize * k, (r as usize * k + l as usize) * k);
        for (s, x) in sums[bi..bi + k].iter_mut().zip(&posteriors[pi..pi + k]) {
            s.add(*x);
        }
    }
    sums.into_iter().map(Kahan::value).collect()
}

/// The full model's M-step, and E_q[ln p(answers | truth)] = Σ_answers Σ_t q_t·ln e[r, l, t],
/// taken from the same sums: the answers of one (rater, observed) pair add their posteriors
/// into one row of the soft counts, so Σ over that row's counts times ln e is their term.
fn m_step_full(p: &Prepared, posteriors: &[f64], used: &[bool]) -> (Errors, f64) {
    let k = p.k;
    let soft = soft_counts(p, posteriors);
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

/// Each rated item's answers as offsets of their (rater, observed) rows in the confusion table,
/// in input order: what the E-step reads, laid out so that it reads them front to back.
struct ByItem {
    /// (rater·K + observed)·K per answer, grouped by item.
    offsets: Vec<u32>,
    /// Item i's answers are `offsets[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
}

impl ByItem {
    /// A stable counting sort of the rows by item; rows already in item order (a file grouped
    /// by item, as ids follow first appearance) are taken as they are.
    fn new(p: &Prepared) -> Self {
        let k = p.k;
        let offset = |r: &Rating| ((r.rater as usize * k + r.label as usize) * k) as u32;
        let mut starts = vec![0usize; p.n_items + 1];
        let mut in_order = true;
        let mut last = 0;
        for r in p.rows.iter() {
            starts[r.item as usize + 1] += 1;
            in_order &= last <= r.item;
            last = r.item;
        }
        for i in 0..p.n_items {
            starts[i + 1] += starts[i];
        }
        if in_order {
            let offsets = p.rows.iter().map(offset).collect();
            return ByItem { offsets, starts };
        }
        let mut next = starts.clone();
        let mut offsets = vec![0u32; p.rows.len()];
        for r in p.rows.iter() {
            let at = &mut next[r.item as usize];
            offsets[*at] = offset(r);
            *at += 1;
        }
        ByItem { offsets, starts }
    }

    fn of(&self, item: usize) -> &[u32] {
        &self.offsets[self.starts[item]..self.starts[item + 1]]
    }
}

/// What the E-step learns of the new posteriors q, for the priors and the ELBO: over rated
/// items, Σ_i q_i (per label), Σ_i n_i·q_i with n_i the item's number of answers (per label),
/// and the entropy −Σ q·ln q with q clipped at 1e-10 (as crowd-kit clips before taking it).
struct PosteriorSums {
    sums: Vec<f64>,
    answered: Vec<f64>,
    entropy: f64,
}

impl PosteriorSums {
    fn zero(k: usize) -> Self {
        PosteriorSums {
            sums: vec![0.0; k],
            answered: vec![0.0; k],
            entropy: 0.0,
        }
    }

    fn merge(mut self, other: PosteriorSums) -> Self {
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a += b;
        }
        for (a, b) in self.answered.iter_mut().zip(&other.answered) {
            *a += b;
        }
        self.entropy += other.entropy;
        self
    }
}

/// E-step into `post` (rated items only; the rest is left as it is).
///
/// Each item's posterior depends on its own answers only, and per item the answers are summed
/// in input order (as pandas' group-by does), so splitting the items over two threads changes
/// no bit of the posteriors. The [`PosteriorSums`] of the two halves are added: they feed the
/// priors and the ELBO, which crowd-kit sums in numpy's own order anyway.
fn e_step(
    p: &Prepared,
    by_item: &ByItem,
    priors: &[f64],
    errors: &Errors,
    post: &mut [f64],
) -> PosteriorSums {
    // log₂ once per confusion entry, not once per answer.
    let log_errors: Vec<f64> = errors.values.iter().map(|e| e.log2()).collect();
    let log_priors: Vec<f64> = priors.iter().map(|x| x.max(EPS).log2()).collect();
    let (n, k) = (p.n_items, p.k);
    if parallel(p) && n >= 2 {
        let mid = n / 2;
        let (head, tail) = post.split_at_mut(mid * k);
        let (le, lp) = (&log_errors, &log_priors);
        std::thread::scope(|s| {
            let second = s.spawn(|| e_step_items(k, by_item, mid..n, le, lp, tail));
            let first = e_step_items(k, by_item, 0..mid, le, lp, head);
            first.merge(second.join().expect("E-step thread panicked"))
        })
    } else {
        e_step_items(k, by_item, 0..n, &log_errors, &log_priors, post)
    }
}

/// The E-step for the items in `range`, writing item `i`'s posteriors at
/// `post[(i − range.start)·K..]`.
fn e_step_items(
    k: usize,
    by_item: &ByItem,
    range: std::ops::Range<usize>,
    log_errors: &[f64],
    log_priors: &[f64],
    post: &mut [f64],
) -> PosteriorSums {
    let offset = range.start * k;
    let mut acc = vec![Kahan::default(); k];
    let mut row = vec![0.0; k];
    let mut pow = vec![0.0; k];
    let mut out = PosteriorSums::zero(k);
    let ln_eps = EPS.ln();
    for item in range {
        let unit = by_item.of(item);
        if unit.is_empty() {
            continue;
        }
        acc.iter_mut().for_each(|a| *a = Kahan::default());
        for &base in unit {
            let base = base as usize;
            for (a, le) in acc.iter_mut().zip(&log_errors[base..base + k]) {
                a.add(*le);
            }
        }
        for t in 0..k {
            row[t] = log_priors[t] + acc[t].value();
        }
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        for (x, d) in pow.iter_mut().zip(row.iter_mut()) {
            // The exponent d = x − max is kept: ln q = d·ln 2 − ln Σ 2^d below.
            *d -= max;
            // 2⁰ is exactly 1: the maximal entry needs no exp2 call.
            *x = if *d == 0.0 { 1.0 } else { d.exp2() };
            total += *x;
        }
        let ln_total = total.ln();
        let answers = unit.len() as f64;
        let at = item * k - offset;
        for (t, (q, (x, d))) in post[at..at + k]
            .iter_mut()
            .zip(pow.iter().zip(&row))
            .enumerate()
        {
            *q = x / total;
            out.sums[t] += *q;
            out.answered[t] += answers * *q;
            // One logarithm per item instead of one per entry.
            let (q, ln_q) = if *q > EPS {
                (*q, d * std::f64::consts::LN_2 - ln_total)
            } else {
                (EPS, ln_eps)
            };
            out.entropy -= q * ln_q;
        }
    }
    out
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
    m_step: impl Fn(&Prepared, &[f64], &[f64], &[bool]) -> (Errors, Vec<f64>, f64),
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
    let (mut posteriors, _) = p.vote(None);
    // Unrated items keep posterior 0 in both buffers: the E-step writes rated items only.
    let mut next = vec![0.0; posteriors.len()];
    let n_rated = p.item_has_rows.iter().filter(|x| **x).count().max(1) as f64;
    let mut priors = priors_of(&p, &posteriors);
    let (mut errors, mut skills, _) = m_step(&p, &posteriors, &priors, &used);
    let mut loss = f64::NEG_INFINITY;
    let mut history = Vec::new();
    let mut converged = false;
    for _ in 0..n_iter {
        let q = e_step(&p, &by_item, &priors, &errors, &mut next);
        std::mem::swap(&mut posteriors, &mut next);
        priors = q.sums.iter().map(|s| s / n_rated).collect();
        let answers_ll;
        (errors, skills, answers_ll) = m_step(&p, &posteriors, &priors, &used);
        let prior_ll: f64 = priors
            .iter()
            .zip(&q.answered)
            .map(|(pi, a)| pi.max(EPS).ln() * a)
            .sum();
        let new_loss = (answers_ll + prior_ll + q.entropy) / p.rows.len() as f64;
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
            |p, post, priors, used| {
                let (errors, answers_ll) = m_step_full(p, post, used);
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
            |p, post, _, used| one_coin_step(p, post, used),
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

    /// The ELBO's terms taken from the E- and M-steps' sums equal the sums over every answer
    /// that crowd-kit writes out.
    #[test]
    fn elbo_terms_from_sums_equal_per_answer_sums() {
        let t = table(&[
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
        ]);
        let p = Prepared::new(&t);
        let k = p.k;
        let used = used_pairs(&p);
        let (start, _) = p.vote(None);
        let priors = priors_of(&p, &start);
        let (errors, _) = m_step_full(&p, &start, &used);
        let mut post = vec![0.0; start.len()];
        let sums = e_step(&p, &ByItem::new(&p), &priors, &errors, &mut post);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());

        let mut answered = vec![0.0; k];
        for r in p.rows.iter() {
            for (a, q) in answered.iter_mut().zip(&post[r.item as usize * k..]) {
                *a += q;
            }
        }
        let entropy: f64 = post.iter().map(|q| -q.max(EPS) * q.max(EPS).ln()).sum();
        assert!(
            close(sums.entropy, entropy),
            "{} vs {entropy}",
            sums.entropy
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
        let (full, ll) = m_step_full(&p, &post, &used);
        assert!(close(ll, per_answer(&full)), "full: {ll}");
        let (one_coin, _, ll) = one_coin_step(&p, &post, &used);
        assert!(close(ll, per_answer(&one_coin)), "one-coin: {ll}");
    }
}

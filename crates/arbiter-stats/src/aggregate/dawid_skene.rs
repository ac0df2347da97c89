//! Dawid–Skene (full confusion matrices) and its one-coin variant, by EM as in crowd-kit 1.4.2.
//!
//! Initialisation: posteriors = majority-vote shares, priors = their column means. Each
//! iteration runs an E-step (log₂ likelihoods, shifted by the row maximum), recomputes priors,
//! runs an M-step, then evaluates the ELBO per answer; it stops as soon as the ELBO gain is
//! below `tol`, *including when the ELBO falls*. Confusion entries are clipped at 1e-10 and, in
//! the full model, normalised over the labels the rater actually used.

use super::{Aggregator, Convergence, Fitted, Prepared};
use crate::util::Kahan;
use crate::{Ratings, StatsError};

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
    for &(_, r, l) in &p.rows {
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
    for &(i, r, l) in &p.rows {
        let (pi, bi) = (i as usize * k, (r as usize * k + l as usize) * k);
        for (s, x) in sums[bi..bi + k].iter_mut().zip(&posteriors[pi..pi + k]) {
            s.add(*x);
        }
    }
    sums.into_iter().map(Kahan::value).collect()
}

fn m_step_full(p: &Prepared, posteriors: &[f64], used: &[bool]) -> Errors {
    let k = p.k;
    let mut values = soft_counts(p, posteriors);
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
    Errors { k, values }
}

/// One-coin skills: mean posterior of the given label over the rater's answers.
fn one_coin_skills(p: &Prepared, posteriors: &[f64]) -> Vec<f64> {
    let mut sum = vec![0.0; p.n_raters];
    let mut n = vec![0.0; p.n_raters];
    for &(i, r, l) in &p.rows {
        sum[r as usize] += posteriors[i as usize * p.k + l as usize];
        n[r as usize] += 1.0;
    }
    sum.iter()
        .zip(&n)
        .map(|(s, n)| if *n > 0.0 { s / n } else { 0.0 })
        .collect()
}

fn one_coin_errors(p: &Prepared, skills: &[f64], used: &[bool]) -> Errors {
    let k = p.k;
    let mut values = vec![0.0; p.n_raters * k * k];
    for r in 0..p.n_raters {
        for o in 0..k {
            if !used[r * k + o] {
                continue;
            }
            for t in 0..k {
                let e = if o == t {
                    skills[r]
                } else {
                    (1.0 - skills[r]) / (k - 1) as f64
                };
                values[(r * k + o) * k + t] = e.clamp(EPS, 1.0 - EPS);
            }
        }
    }
    Errors { k, values }
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
    /// A stable counting sort of the rows by item.
    fn new(p: &Prepared) -> Self {
        let k = p.k;
        let mut starts = vec![0usize; p.n_items + 1];
        for &(i, _, _) in &p.rows {
            starts[i as usize + 1] += 1;
        }
        for i in 0..p.n_items {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut offsets = vec![0u32; p.rows.len()];
        for &(i, r, l) in &p.rows {
            let at = &mut next[i as usize];
            offsets[*at] = ((r as usize * k + l as usize) * k) as u32;
            *at += 1;
        }
        ByItem { offsets, starts }
    }

    fn of(&self, item: usize) -> &[u32] {
        &self.offsets[self.starts[item]..self.starts[item + 1]]
    }
}

/// E-step into `post` (rated items only; the rest is left as it is).
///
/// Each item's posterior depends on its own answers only, and per item the answers are summed
/// in input order (as pandas' group-by does), so splitting the items over two threads changes
/// no bit of the result.
fn e_step(p: &Prepared, by_item: &ByItem, priors: &[f64], errors: &Errors, post: &mut [f64]) {
    // log₂ once per confusion entry, not once per answer.
    let log_errors: Vec<f64> = errors.values.iter().map(|e| e.log2()).collect();
    let log_priors: Vec<f64> = priors.iter().map(|x| x.max(EPS).log2()).collect();
    let (n, k) = (p.n_items, p.k);
    if parallel(p) && n >= 2 {
        let mid = n / 2;
        let (head, tail) = post.split_at_mut(mid * k);
        let (le, lp) = (&log_errors, &log_priors);
        std::thread::scope(|s| {
            s.spawn(|| e_step_items(k, by_item, mid..n, le, lp, tail));
            e_step_items(k, by_item, 0..mid, le, lp, head);
        });
    } else {
        e_step_items(k, by_item, 0..n, &log_errors, &log_priors, post);
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
) {
    let offset = range.start * k;
    let mut acc = vec![Kahan::default(); k];
    let mut row = vec![0.0; k];
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
        for x in row.iter_mut() {
            // 2⁰ is exactly 1: the maximal entry needs no exp2 call.
            let d = *x - max;
            *x = if d == 0.0 { 1.0 } else { d.exp2() };
            total += *x;
        }
        let at = item * k - offset;
        for (q, x) in post[at..at + k].iter_mut().zip(&row) {
            *q = x / total;
        }
    }
}

/// H(q) of the rated items: −Σ q·ln q with q clipped at 1e-10, summed in item order.
fn entropy(p: &Prepared, posteriors: &[f64]) -> f64 {
    let k = p.k;
    let mut entropy = 0.0;
    for item in 0..p.n_items {
        if p.item_has_rows[item] {
            for q in &posteriors[item * k..(item + 1) * k] {
                let q = q.max(EPS);
                entropy -= q.ln() * q;
            }
        }
    }
    entropy
}

/// ELBO per answer: E_q[ln p(answers, truth)] + H(q), with the prior counted once per answer
/// as crowd-kit does, given H(q) from [`entropy`]. Clips the posteriors at 1e-10 in place, as
/// crowd-kit does; the joint term uses the unclipped values.
fn elbo_per_answer(
    p: &Prepared,
    posteriors: &mut [f64],
    priors: &[f64],
    errors: &Errors,
    entropy: f64,
) -> f64 {
    let k = p.k;
    let ln_priors: Vec<f64> = priors.iter().map(|x| x.max(EPS).ln()).collect();
    let ln_errors: Vec<f64> = errors.values.iter().map(|e| e.ln()).collect();
    let mut joint = 0.0;
    for &(i, r, l) in &p.rows {
        let (pi, bi) = (i as usize * k, (r as usize * k + l as usize) * k);
        for t in 0..k {
            joint += posteriors[pi + t] * (ln_errors[bi + t] + ln_priors[t]);
        }
    }
    for item in 0..p.n_items {
        if p.item_has_rows[item] {
            for q in &mut posteriors[item * k..(item + 1) * k] {
                *q = q.max(EPS);
            }
        }
    }
    (joint + entropy) / p.rows.len() as f64
}

/// Shared EM loop; `m_step` gets the posteriors and the priors computed from them and returns
/// the error matrices and the per-rater skills.
fn run_em(
    ratings: &Ratings,
    n_iter: usize,
    tol: f64,
    m_step: impl Fn(&Prepared, &[f64], &[f64], &[bool]) -> (Errors, Vec<f64>),
) -> Fitted {
    let p = Prepared::new(ratings);
    if p.rows.is_empty() {
        return p.finish(&[], vec![0.0; p.n_raters], Convergence::closed_form());
    }
    let used = used_pairs(&p);
    let by_item = ByItem::new(&p);
    let (mut posteriors, _) = p.vote(None);
    // Unrated items keep posterior 0 in both buffers: the E-step writes rated items only.
    let mut next = vec![0.0; posteriors.len()];
    let mut priors = priors_of(&p, &posteriors);
    let (mut errors, mut skills) = m_step(&p, &posteriors, &priors, &used);
    let mut loss = f64::NEG_INFINITY;
    let mut history = Vec::new();
    let mut converged = false;
    for _ in 0..n_iter {
        e_step(&p, &by_item, &priors, &errors, &mut next);
        std::mem::swap(&mut posteriors, &mut next);
        priors = priors_of(&p, &posteriors);
        // The entropy needs only the posteriors, so it is computed (in its own order) while the
        // M-step runs; the ELBO's joint term then needs the new confusion matrices.
        let h;
        ((errors, skills), h) = if parallel(&p) {
            std::thread::scope(|s| {
                let h = s.spawn(|| entropy(&p, &posteriors));
                let m = m_step(&p, &posteriors, &priors, &used);
                (m, h.join().expect("entropy thread panicked"))
            })
        } else {
            (
                m_step(&p, &posteriors, &priors, &used),
                entropy(&p, &posteriors),
            )
        };
        let new_loss = elbo_per_answer(&p, &mut posteriors, &priors, &errors, h);
        history.push(new_loss);
        // Written as crowd-kit's `new - old < tol`, which is also true when the ELBO falls.
        if new_loss - loss < tol {
            converged = true;
            break;
        }
        loss = new_loss;
    }
    p.finish(
        &posteriors,
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
                let errors = m_step_full(p, post, used);
                let skills = (0..p.n_raters)
                    .map(|r| {
                        (0..p.k)
                            .map(|t| priors[t] * errors.get(r as u32, t as u32, t))
                            .sum()
                    })
                    .collect();
                (errors, skills)
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
            |p, post, _, used| {
                let skills = one_coin_skills(p, post);
                (one_coin_errors(p, &skills, used), skills)
            },
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
}

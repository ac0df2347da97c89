//! MACE (Multi-Annotator Competence Estimation), variational Bayes as in crowd-kit 1.4.2.
//!
//! Each rater either knows the answer (probability `spamming[r][1]`) or "spams" from a
//! label distribution θ_r. Initial values are drawn from NumPy's legacy `RandomState(seed)`
//! (MT19937) exactly as crowd-kit draws them through `scipy.stats.uniform(1, 1.5)`, so the run
//! is reproducible and label-identical. crowd-kit seeds every restart with the same
//! `random_state`, which makes all restarts identical; we therefore run one.
//!
//! Compatibility note: crowd-kit *reads* θ with raters and labels in first-appearance order but
//! *writes* it from a pandas group-by, i.e. with raters and labels sorted. With
//! `crowdkit_layout = true` (the default) we reproduce that, so the labels match crowd-kit; with
//! `false` θ is kept in one consistent layout (the textbook model).
//!
//! Skill = `spamming[r][1]`, the probability that the rater answers from knowledge.

use super::{Aggregator, Convergence, Fitted, Prepared};
use crate::special::digamma;
use crate::{Rating, Ratings, StatsError};

/// MACE hyperparameters (crowd-kit defaults).
#[derive(Debug, Clone, Copy)]
pub struct Mace {
    /// VB iterations (50).
    pub n_iter: usize,
    /// Beta prior on "knows the answer": (alpha, beta) = (0.5, 0.5).
    pub alpha: f64,
    /// See `alpha`.
    pub beta: f64,
    /// Initial noise: values drawn from U(1, 1 + noise)… scaled as scipy's `uniform(1, 1 + noise)`.
    pub default_noise: f64,
    /// NumPy `RandomState` seed (0).
    pub random_state: u32,
    /// Reproduce crowd-kit's θ layout mismatch (see the module docs).
    pub crowdkit_layout: bool,
}

impl Default for Mace {
    fn default() -> Self {
        Mace {
            n_iter: 50,
            alpha: 0.5,
            beta: 0.5,
            default_noise: 0.5,
            random_state: 0,
            crowdkit_layout: true,
        }
    }
}

/// NumPy's legacy MT19937 (`RandomState(seed)` with an integer seed) and its `random_sample`.
pub(crate) struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    pub(crate) fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
                if y & 1 == 1 {
                    v ^= 0x9908_b0df;
                }
                self.state[i] = v;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Uniform on [0, 1) with 53 random bits, as NumPy's `random_sample`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

/// Rows `n × m` of scipy `uniform(1, 1 + noise).rvs(random_state=seed)`, each row normalised.
fn initial_rows(n: usize, m: usize, noise: f64, seed: u32) -> Vec<f64> {
    let mut rng = Mt19937::new(seed);
    let mut v: Vec<f64> = (0..n * m)
        .map(|_| 1.0 + (1.0 + noise) * rng.next_f64())
        .collect();
    for row in v.chunks_mut(m.max(1)) {
        let s: f64 = row.iter().sum();
        row.iter_mut().for_each(|x| *x /= s);
    }
    v
}

/// exp(ψ(x + h)) / exp(ψ(Σ(x + h))) per row (crowd-kit's `variational_normalize`).
fn variational_normalize(x: &[f64], prior: f64, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (row, dst) in x.chunks(m).zip(out.chunks_mut(m)) {
        let norm = digamma(row.iter().map(|v| v + prior).sum()).exp();
        if norm.abs() <= 1e-8 {
            continue;
        }
        for (d, v) in dst.iter_mut().zip(row) {
            *d = digamma(v + prior).exp() / norm;
        }
    }
    out
}

struct EStep {
    log_marginal_likelihood: f64,
    /// n_items × k, first-appearance label order.
    gold: Vec<f64>,
    /// n_raters × k strategy counts (rater, label in first-appearance order).
    strategy: Vec<f64>,
    /// n_raters × 2.
    knowing: Vec<f64>,
}

impl Aggregator for Mace {
    fn name(&self) -> &'static str {
        "mace"
    }

    fn fit(&self, ratings: &Ratings) -> Result<Fitted, StatsError> {
        let p = Prepared::new(ratings);
        if p.rows.is_empty() {
            return Ok(p.finish(
                Vec::new(),
                vec![0.0; p.n_raters],
                Convergence::closed_form(),
            ));
        }
        // crowd-kit factorises labels in order of first appearance.
        let k = p.k;
        let mut first_seen: Vec<u32> = Vec::new();
        let mut fs_of = vec![u32::MAX; k];
        for &Rating { label: l, .. } in p.rows.iter() {
            if fs_of[l as usize] == u32::MAX {
                fs_of[l as usize] = first_seen.len() as u32;
                first_seen.push(l);
            }
        }
        // Raters likewise (a filtered table may hold raters without rows, or in another order).
        let mut rater_names: Vec<usize> = Vec::new();
        let mut fr_of = vec![usize::MAX; p.n_raters];
        for &Rating { rater: r, .. } in p.rows.iter() {
            if fr_of[r as usize] == usize::MAX {
                fr_of[r as usize] = rater_names.len();
                rater_names.push(r as usize);
            }
        }
        let rows: Vec<(usize, usize, usize)> = p
            .rows
            .iter()
            .map(|r| {
                (
                    r.item as usize,
                    fr_of[r.rater as usize],
                    fs_of[r.label as usize] as usize,
                )
            })
            .collect();
        let n_raters = rater_names.len();
        // Position of each rater / first-seen label in crowd-kit's sorted group-by output.
        let (rater_perm, label_perm) = if self.crowdkit_layout {
            let mut by_name: Vec<usize> = (0..n_raters).collect();
            by_name.sort_by(|a, b| {
                ratings.raters()[rater_names[*a]].cmp(&ratings.raters()[rater_names[*b]])
            });
            let mut labels: Vec<usize> = (0..k).collect();
            labels.sort_by_key(|fs| first_seen[*fs]);
            (by_name, labels)
        } else {
            ((0..n_raters).collect(), (0..k).collect())
        };

        let mut spamming = initial_rows(n_raters, 2, self.default_noise, self.random_state);
        let mut thetas = initial_rows(n_raters, k, self.default_noise, self.random_state);
        let mut history = Vec::with_capacity(self.n_iter);
        let mut e = e_step(&rows, p.n_items, n_raters, k, &spamming, &thetas);
        for _ in 0..self.n_iter {
            let knowing_prior = [self.alpha, self.beta];
            spamming = {
                let mut out = vec![0.0; e.knowing.len()];
                for (row, dst) in e.knowing.chunks(2).zip(out.chunks_mut(2)) {
                    let norm = digamma(row[0] + knowing_prior[0] + row[1] + knowing_prior[1]).exp();
                    if norm.abs() > 1e-8 {
                        dst[0] = digamma(row[0] + knowing_prior[0]).exp() / norm;
                        dst[1] = digamma(row[1] + knowing_prior[1]).exp() / norm;
                    }
                }
                out
            };
            // θ comes back from a sorted group-by; place it where crowd-kit will read it.
            let mut sorted = vec![0.0; n_raters * k];
            for (pos_r, &r) in rater_perm.iter().enumerate() {
                for (pos_l, &l) in label_perm.iter().enumerate() {
                    sorted[pos_r * k + pos_l] = e.strategy[r * k + l];
                }
            }
            thetas = variational_normalize(&sorted, 10.0, k);
            e = e_step(&rows, p.n_items, n_raters, k, &spamming, &thetas);
            history.push(e.log_marginal_likelihood);
        }
        // Posteriors back to domain-ordered compact labels.
        let mut post = vec![0.0; p.n_items * k];
        let mut best_fs = vec![None; p.n_items];
        for item in 0..p.n_items {
            let g = &e.gold[item * k..(item + 1) * k];
            let s: f64 = g.iter().sum();
            if p.item_has_rows[item] {
                best_fs[item] = super::first_argmax(g);
            }
            for (fs, v) in g.iter().enumerate() {
                post[item * k + first_seen[fs] as usize] = if s > 0.0 { v / s } else { 0.0 };
            }
        }
        let mut skills = vec![0.0; p.n_raters];
        for (fr, &r) in rater_names.iter().enumerate() {
            skills[r] = spamming[fr * 2 + 1];
        }
        let mut fitted = p.finish(
            post,
            skills,
            Convergence {
                iterations: self.n_iter,
                converged: true,
                loss_history: history,
            },
        );
        // Ties follow first-appearance order here, not domain order.
        for (item, fs) in best_fs.iter().enumerate() {
            if let Some(fs) = fs {
                fitted.labels[item] = Some(p.to_domain[first_seen[*fs] as usize]);
            }
        }
        Ok(fitted)
    }
}

fn e_step(
    rows: &[(usize, usize, usize)],
    n_items: usize,
    n_raters: usize,
    k: usize,
    spamming: &[f64],
    thetas: &[f64],
) -> EStep {
    let mut gold = vec![1.0; n_items * k];
    let mut rated = vec![false; n_items];
    for &(i, r, l) in rows {
        rated[i] = true;
        let spam = spamming[r * 2] * thetas[r * k + l];
        for label in 0..k {
            gold[i * k + label] *= spam + if label == l { spamming[r * 2 + 1] } else { 0.0 };
        }
    }
    for (i, row) in gold.chunks_mut(k).enumerate() {
        if rated[i] {
            row.iter_mut().for_each(|x| *x /= k as f64);
        } else {
            row.iter_mut().for_each(|x| *x = 0.0);
        }
    }
    let instance: Vec<f64> = gold.chunks(k).map(|r| r.iter().sum()).collect();
    let log_marginal_likelihood = instance
        .iter()
        .zip(&rated)
        .filter(|(_, r)| **r)
        .map(|(x, _)| (x + 1e-8).ln())
        .sum();
    let mut strategy = vec![0.0; n_raters * k];
    let mut knowing = vec![0.0; n_raters * 2];
    for &(i, r, l) in rows {
        let spam = spamming[r * 2] * thetas[r * k + l];
        let know = spamming[r * 2 + 1];
        let mut s = 0.0;
        for label in 0..k {
            s += gold[i * k + label] / (spam + if label == l { know } else { 0.0 });
        }
        let sm = s * spam / instance[i];
        strategy[r * k + l] += sm;
        knowing[r * 2] += sm;
        knowing[r * 2 + 1] += gold[i * k + l] * know / (spam + know) / instance[i];
    }
    EStep {
        log_marginal_likelihood,
        gold,
        strategy,
        knowing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_numpy_random_state_zero() {
        // np.random.RandomState(0).random_sample(3)
        let mut rng = Mt19937::new(0);
        let want = [
            0.548_813_503_927_325,
            0.715_189_366_372_419_5,
            0.602_763_376_071_644,
        ];
        for w in want {
            assert!((rng.next_f64() - w).abs() < 1e-15);
        }
    }
}

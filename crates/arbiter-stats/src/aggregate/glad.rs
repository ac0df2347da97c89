//! GLAD (Whitehill et al. 2009): rater expertise α_r and item difficulty β_i (used as e^β), by
//! EM with a conjugate-gradient M-step, following crowd-kit 1.4.2.
//!
//! P(answer = truth) = σ(α_r·e^{β_i}); wrong answers share 1 − σ evenly over the K − 1 other
//! labels. Priors: α, β ~ N(1, 1) as penalties, uniform label priors. The M-step maximises Q
//! with Polak–Ribière conjugate gradient and a strong-Wolfe line search (c1 = 1e-4, c2 = 0.4,
//! as SciPy's `minimize(method="CG")`), at most `m_step_max_iter` iterations, stopping when the
//! largest gradient component is below `m_step_tol`. EM stops when Q per (answer × label)
//! improves by less than `tol`. Our optimiser is not SciPy's line for line, so results match
//! crowd-kit within the optimiser's tolerance rather than bit for bit.
//!
//! Skill = α_r.

use super::{Aggregator, Convergence, Fitted, Prepared};
use crate::{Rating, Ratings, StatsError};

/// GLAD hyperparameters (crowd-kit defaults).
#[derive(Debug, Clone, Copy)]
pub struct Glad {
    /// Maximum EM iterations (100).
    pub n_iter: usize,
    /// EM tolerance on Q per (answer × label) (1e-5).
    pub tol: f64,
    /// CG iterations per M-step (25).
    pub m_step_max_iter: usize,
    /// CG gradient tolerance, max-norm (1e-2).
    pub m_step_tol: f64,
}

impl Default for Glad {
    fn default() -> Self {
        Glad {
            n_iter: 100,
            tol: 1e-5,
            m_step_max_iter: 25,
            m_step_tol: 1e-2,
        }
    }
}

/// crowd-kit's softplus with its ±30 cut-offs.
fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else if x < -30.0 {
        0.0
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

struct Problem<'a> {
    p: &'a Prepared<'a>,
    n_raters: usize,
    /// Posterior per item × label from the last E-step.
    posterior: Vec<f64>,
    ln_other: f64,
}

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

impl Problem<'_> {
    /// Q(x) with x = (α…, β…).
    fn q(&self, x: &[f64]) -> f64 {
        let k = self.p.k;
        let (alpha, beta) = x.split_at(self.n_raters);
        let mut q = 0.0;
        for &Rating {
            item: i,
            rater: r,
            label: l,
        } in self.p.rows.iter()
        {
            let ab = alpha[r as usize] * beta[i as usize].exp();
            let log_sigma = -softplus(-ab);
            let log_other = -softplus(ab) - self.ln_other;
            let post = &self.posterior[i as usize * k..(i as usize + 1) * k];
            for (c, pc) in post.iter().enumerate() {
                q += pc
                    * if c == l as usize {
                        log_sigma
                    } else {
                        log_other
                    };
            }
        }
        for a in alpha {
            q += -(a - 1.0).powi(2) / 2.0 - LN_SQRT_2PI;
        }
        for (i, b) in beta.iter().enumerate() {
            if self.p.item_has_rows[i] {
                q += -(b - 1.0).powi(2) / 2.0 - LN_SQRT_2PI;
            }
        }
        if q.is_nan() { f64::NEG_INFINITY } else { q }
    }

    /// ∇Q.
    fn grad(&self, x: &[f64]) -> Vec<f64> {
        let k = self.p.k;
        let (alpha, beta) = x.split_at(self.n_raters);
        let mut g = vec![0.0; x.len()];
        for &Rating {
            item: i,
            rater: r,
            label: l,
        } in self.p.rows.iter()
        {
            let eb = beta[i as usize].exp();
            let sigma = sigmoid(alpha[r as usize] * eb);
            let post = &self.posterior[i as usize * k..(i as usize + 1) * k];
            let mut s = 0.0;
            for (c, pc) in post.iter().enumerate() {
                s += pc * (f64::from(u8::from(c == l as usize)) - sigma);
            }
            g[r as usize] += s * eb;
            g[self.n_raters + i as usize] += s * alpha[r as usize] * eb;
        }
        for (gi, xi) in g.iter_mut().zip(x) {
            *gi -= xi - 1.0;
        }
        for (i, has) in self.p.item_has_rows.iter().enumerate() {
            if !has {
                g[self.n_raters + i] = 0.0;
            }
        }
        g
    }

    fn e_step(&mut self, x: &[f64], log_prior: f64) {
        let k = self.p.k;
        let (alpha, beta) = x.split_at(self.n_raters);
        let mut logp = vec![log_prior; self.p.n_items * k];
        for &Rating {
            item: i,
            rater: r,
            label: l,
        } in self.p.rows.iter()
        {
            let ab = alpha[r as usize] * beta[i as usize].exp();
            let log_sigma = -softplus(-ab);
            let log_other = -softplus(ab) - self.ln_other;
            for c in 0..k {
                logp[i as usize * k + c] += if c == l as usize {
                    log_sigma
                } else {
                    log_other
                };
            }
        }
        for row in logp.chunks_mut(k) {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            let lse = m + s.ln();
            row.iter_mut().for_each(|v| *v = (*v - lse).exp());
        }
        self.posterior = logp;
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimise f = −Q by Polak–Ribière CG from x.
fn conjugate_gradient(problem: &Problem<'_>, x: &mut [f64], max_iter: usize, gtol: f64) {
    let f = |x: &[f64]| -problem.q(x);
    let df = |x: &[f64]| problem.grad(x).into_iter().map(|g| -g).collect::<Vec<_>>();
    let mut fx = f(x);
    let mut g = df(x);
    let mut d: Vec<f64> = g.iter().map(|v| -v).collect();
    let norm = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut old_old_f = fx + g.iter().map(|v| v * v).sum::<f64>().sqrt() / 2.0;
    for _ in 0..max_iter {
        if norm(&g) <= gtol {
            break;
        }
        let slope = dot(&g, &d);
        if slope >= 0.0 {
            break;
        }
        let init = (1.01 * 2.0 * (fx - old_old_f) / slope).clamp(1e-10, 1.0);
        let Some((step, f_new, g_new)) = wolfe_search(&f, &df, x, fx, &g, &d, init) else {
            break;
        };
        for (xi, di) in x.iter_mut().zip(&d) {
            *xi += step * di;
        }
        let beta = (dot(&g_new, &g_new) - dot(&g_new, &g)) / dot(&g, &g);
        let beta = beta.max(0.0);
        for (di, gi) in d.iter_mut().zip(&g_new) {
            *di = -gi + beta * *di;
        }
        old_old_f = fx;
        fx = f_new;
        g = g_new;
    }
}

/// Strong-Wolfe line search (Nocedal & Wright, Alg. 3.5/3.6, bisection zoom) along `d`.
/// Returns the step, f and ∇f there.
fn wolfe_search(
    f: &dyn Fn(&[f64]) -> f64,
    df: &dyn Fn(&[f64]) -> Vec<f64>,
    x: &[f64],
    f0: f64,
    g0: &[f64],
    d: &[f64],
    init: f64,
) -> Option<(f64, f64, Vec<f64>)> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.4;
    let slope0 = dot(g0, d);
    let at = |a: f64| -> (f64, Vec<f64>, f64) {
        let xa: Vec<f64> = x.iter().zip(d).map(|(xi, di)| xi + a * di).collect();
        let g = df(&xa);
        let slope = dot(&g, d);
        (f(&xa), g, slope)
    };
    let accept = |fa: f64, a: f64| fa.is_finite() && fa <= f0 + C1 * a * slope0;
    let zoom = |mut lo: f64, mut hi: f64, mut f_lo: f64| -> Option<(f64, f64, Vec<f64>)> {
        for _ in 0..50 {
            let a = 0.5 * (lo + hi);
            let (fa, ga, slope) = at(a);
            if !accept(fa, a) || fa >= f_lo {
                hi = a;
            } else {
                if slope.abs() <= -C2 * slope0 {
                    return Some((a, fa, ga));
                }
                if slope * (hi - lo) >= 0.0 {
                    hi = lo;
                }
                lo = a;
                f_lo = fa;
            }
            if (hi - lo).abs() < 1e-16 {
                break;
            }
        }
        // Fall back to the best sufficient-decrease point found, if any.
        (lo > 0.0).then(|| {
            let (fa, ga, _) = at(lo);
            (lo, fa, ga)
        })
    };
    let (mut a_prev, mut f_prev) = (0.0, f0);
    let mut a = init;
    for i in 0..40 {
        let (fa, ga, slope) = at(a);
        if !accept(fa, a) || (i > 0 && fa >= f_prev) {
            return zoom(a_prev, a, f_prev);
        }
        if slope.abs() <= -C2 * slope0 {
            return Some((a, fa, ga));
        }
        if slope >= 0.0 {
            return zoom(a, a_prev, fa);
        }
        a_prev = a;
        f_prev = fa;
        a *= 2.0;
    }
    None
}

impl Aggregator for Glad {
    fn name(&self) -> &'static str {
        "glad"
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
        let k = p.k;
        let n_raters = p.n_raters;
        let log_prior = -(k as f64).ln();
        let mut problem = Problem {
            p: &p,
            n_raters,
            posterior: Vec::new(),
            // ln(K − 1); with a single label there are no wrong answers to share mass with.
            ln_other: if k > 1 { ((k - 1) as f64).ln() } else { 0.0 },
        };
        let mut x = vec![1.0; n_raters + p.n_items];
        problem.e_step(&x, log_prior);
        let mut q = problem.q(&x);
        let per = (p.rows.len() * k) as f64;
        let mut history = Vec::new();
        let mut converged = false;
        for _ in 0..self.n_iter {
            let last_q = q;
            problem.e_step(&x, log_prior);
            conjugate_gradient(&problem, &mut x, self.m_step_max_iter, self.m_step_tol);
            q = problem.q(&x) / per;
            history.push(q);
            if q - last_q < self.tol {
                converged = true;
                break;
            }
        }
        let skills = x[..n_raters].to_vec();
        Ok(p.finish(
            problem.posterior,
            skills,
            Convergence {
                iterations: history.len(),
                converged,
                loss_history: history,
            },
        ))
    }
}

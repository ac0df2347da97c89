//! Prediction-powered inference (PPI) for a mean or a share measured by an imperfect grader.
//!
//! A grader's share of refusals or unsafe replies is biased by its errors, and a bootstrap over
//! prompts does not see them. With a few human labels the bias can be measured and removed
//! (Angelopoulos et al., arXiv:2301.09633; PPI++, arXiv:2311.01453; evals.md, last section).
//!
//! Notation: `n` labelled rows with a human value Yᵢ and a grader prediction fᵢ, `N` unlabelled
//! rows with a grader prediction f̃ⱼ only. Every [`Method`] is θ̂_λ = mean(Y − λf) + λ·mean(f̃)
//! with variance Var(Y − λf)/n + λ²·Var(f̃)/N and a normal interval θ̂ ± z·se:
//!
//! - [`Method::Classical`]: λ = 0, the labelled rows alone;
//! - [`Method::Ppi`]: λ = 1;
//! - [`Method::PowerTuned`] (PPI++): λ̂ = Cov(Y, f) / ((1 + n/N)·Var(f)) clipped to [0, 1], and
//!   λ = 0 when N = 0 (nothing to borrow from) or when the predictions do not vary.
//!
//! The estimators are those of `ppi_python` 0.2.3 (`ppi_mean_pointestimate`, `ppi_mean_ci`,
//! `classical_mean_ci`), which the golden tests reproduce to 1e-12. Where evals.md leaves a
//! choice open we follow that reference: variances divide by the number of rows (ddof 0), and
//! in λ̂ the covariance is over the labelled rows (ddof 0) while Var(f) pools the labelled and
//! unlabelled predictions (ddof 1): all N + n predictions estimate the same spread, and the
//! plug-in stays consistent, so the choice only moves λ̂ by O(1/n).
//!
//! Derived metrics (an F1 of two shares) are propagated by [`derived_delta`] (delta method with
//! the covariance of the shares, which may share rows) or [`derived_bootstrap`] (labelled and
//! unlabelled rows resampled separately, λ̂ re-estimated in every replicate).

use arbiter_core::bootstrap::percentile_interval;
use arbiter_core::rng::SeededRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::special::normal_quantile;

/// How much the grader's predictions are trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The human labels alone (λ = 0).
    Classical,
    /// Prediction-powered inference with λ = 1.
    Ppi,
    /// PPI++: λ estimated from the data to minimise the variance.
    PowerTuned,
}

impl Method {
    /// Short name for tables and JSON: `classical`, `ppi`, `ppi++`.
    pub fn label(self) -> &'static str {
        match self {
            Method::Classical => "classical",
            Method::Ppi => "ppi",
            Method::PowerTuned => "ppi++",
        }
    }
}

/// Why an estimate could not be computed. No function of this module returns NaN instead.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PpiError {
    /// There are no human-labelled rows (in a derived metric: for the named component).
    #[error("no human-labelled rows{}", component_suffix(*.component))]
    NoLabelled {
        /// The component of a derived metric, when there is one.
        component: Option<usize>,
    },
    /// Plain PPI (λ = 1) needs at least one unlabelled prediction.
    #[error("PPI with λ = 1 needs unlabelled rows{}", component_suffix(*.component))]
    NoUnlabelled {
        /// The component of a derived metric, when there is one.
        component: Option<usize>,
    },
    /// A grader-only estimate was asked for without any prediction.
    #[error("no grader predictions")]
    NoPredictions,
    /// Two slices that must be parallel have different lengths.
    #[error("{what}: {left} vs {right} rows")]
    LengthMismatch {
        /// What does not line up.
        what: &'static str,
        /// Length of the first slice.
        left: usize,
        /// Length of the second slice.
        right: usize,
    },
    /// An input value is NaN or infinite.
    #[error("{what}[{index}] is not a finite number")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Position in that input.
        index: usize,
    },
    /// The confidence level is not strictly between 0 and 1.
    #[error("confidence level {0} is not strictly between 0 and 1")]
    InvalidLevel(f64),
    /// A derived metric's function or gradient returned a non-finite value or the wrong number
    /// of partial derivatives.
    #[error("derived metric: {0}")]
    Derived(String),
    /// A parameter is out of range (zero bootstrap replicates, no components).
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Why it is invalid.
        message: String,
    },
}

fn component_suffix(component: Option<usize>) -> String {
    component.map_or_else(String::new, |c| format!(" for component {c}"))
}

/// A prediction-powered (or classical) estimate of a mean with its normal interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The estimator used.
    pub method: Method,
    /// θ̂_λ.
    pub estimate: f64,
    /// Standard error √(Var(Y − λf)/n + λ²·Var(f̃)/N).
    pub se: f64,
    /// `estimate ∓ z·se` for the two-sided `level`.
    pub ci: [f64; 2],
    /// Confidence level of `ci` (0.95 by convention).
    pub level: f64,
    /// The λ used: 0 for classical, 1 for PPI, λ̂ for PPI++.
    pub lambda: f64,
    /// Labelled rows.
    pub n: usize,
    /// Unlabelled rows given (a classical estimate does not use them).
    pub n_unlabelled: usize,
}

/// The grader's own mean over every row, with the interval one gets by ignoring grader error.
/// Reports show it beside the corrected estimate; it is not a valid interval for the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraderOnly {
    /// Mean of all predictions.
    pub estimate: f64,
    /// √(Var(f)/rows) (ddof 0, as `classical_mean_ci`).
    pub se: f64,
    /// `estimate ∓ z·se`.
    pub ci: [f64; 2],
    /// Confidence level of `ci`.
    pub level: f64,
    /// Predictions averaged.
    pub n: usize,
}

/// The two-sided normal critical value for `level` (1.959964 at 0.95).
pub fn z_value(level: f64) -> Result<f64, PpiError> {
    if !(level > 0.0 && level < 1.0) {
        return Err(PpiError::InvalidLevel(level));
    }
    Ok(normal_quantile(0.5 + level / 2.0))
}

fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), PpiError> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(PpiError::NonFinite { what, index }),
        None => Ok(()),
    }
}

fn mean_of(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Σ(x − x̄)² over a non-empty slice.
fn sum_squares(xs: &[f64]) -> f64 {
    let m = mean_of(xs);
    xs.iter().map(|x| (x - m) * (x - m)).sum()
}

/// λ̂ of PPI++ for a mean (see the module documentation for the exact estimator); inputs are
/// validated and `labels` is non-empty.
fn tuned_lambda(labels: &[f64], predictions: &[f64], unlabelled: &[f64]) -> f64 {
    let (n, big_n) = (labels.len(), unlabelled.len());
    if big_n == 0 {
        return 0.0;
    }
    let (my, mf) = (mean_of(labels), mean_of(predictions));
    let cov = labels
        .iter()
        .zip(predictions)
        .map(|(y, f)| (y - my) * (f - mf))
        .sum::<f64>()
        / n as f64;
    let pooled = n + big_n;
    let pooled_mean =
        (predictions.iter().sum::<f64>() + unlabelled.iter().sum::<f64>()) / pooled as f64;
    let ss: f64 = predictions
        .iter()
        .chain(unlabelled)
        .map(|f| (f - pooled_mean) * (f - pooled_mean))
        .sum();
    let var = ss / (pooled - 1) as f64;
    let lambda = cov / ((1.0 + n as f64 / big_n as f64) * var);
    if lambda.is_finite() {
        lambda.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The power-tuning λ̂ that [`mean`] uses with [`Method::PowerTuned`].
pub fn power_tuned_lambda(
    labels: &[f64],
    predictions: &[f64],
    unlabelled: &[f64],
) -> Result<f64, PpiError> {
    validate(labels, predictions, unlabelled)?;
    Ok(tuned_lambda(labels, predictions, unlabelled))
}

fn validate(labels: &[f64], predictions: &[f64], unlabelled: &[f64]) -> Result<(), PpiError> {
    if labels.len() != predictions.len() {
        return Err(PpiError::LengthMismatch {
            what: "labels and predictions",
            left: labels.len(),
            right: predictions.len(),
        });
    }
    if labels.is_empty() {
        return Err(PpiError::NoLabelled { component: None });
    }
    check_finite("labels", labels)?;
    check_finite("predictions", predictions)?;
    check_finite("unlabelled", unlabelled)
}

/// θ̂_λ and its standard error for a given λ; inputs validated, `labels` non-empty, and
/// `unlabelled` non-empty whenever λ ≠ 0.
fn estimate_at(labels: &[f64], predictions: &[f64], unlabelled: &[f64], lambda: f64) -> (f64, f64) {
    let n = labels.len() as f64;
    let residuals: Vec<f64> = labels
        .iter()
        .zip(predictions)
        .map(|(y, f)| y - lambda * f)
        .collect();
    let mut estimate = mean_of(&residuals);
    let mut variance = sum_squares(&residuals) / n / n;
    if lambda != 0.0 {
        let big_n = unlabelled.len() as f64;
        estimate += lambda * mean_of(unlabelled);
        variance += lambda * lambda * sum_squares(unlabelled) / big_n / big_n;
    }
    (estimate, variance.sqrt())
}

/// Estimate the mean of the human value over all rows from `labels` (Yᵢ) with the grader's
/// `predictions` (fᵢ) on the same rows and the grader's predictions on `unlabelled` rows.
pub fn mean(
    labels: &[f64],
    predictions: &[f64],
    unlabelled: &[f64],
    method: Method,
    level: f64,
) -> Result<Estimate, PpiError> {
    let z = z_value(level)?;
    validate(labels, predictions, unlabelled)?;
    let lambda = match method {
        Method::Classical => 0.0,
        Method::Ppi if unlabelled.is_empty() => {
            return Err(PpiError::NoUnlabelled { component: None });
        }
        Method::Ppi => 1.0,
        Method::PowerTuned => tuned_lambda(labels, predictions, unlabelled),
    };
    let (estimate, se) = estimate_at(labels, predictions, unlabelled, lambda);
    Ok(Estimate {
        method,
        estimate,
        se,
        ci: [estimate - z * se, estimate + z * se],
        level,
        lambda,
        n: labels.len(),
        n_unlabelled: unlabelled.len(),
    })
}

/// The grader-only mean of `predictions` (labelled rows) and `unlabelled` together, with the
/// normal interval that treats the grader as the truth.
pub fn grader_only(
    predictions: &[f64],
    unlabelled: &[f64],
    level: f64,
) -> Result<GraderOnly, PpiError> {
    let z = z_value(level)?;
    check_finite("predictions", predictions)?;
    check_finite("unlabelled", unlabelled)?;
    let all: Vec<f64> = predictions.iter().chain(unlabelled).copied().collect();
    if all.is_empty() {
        return Err(PpiError::NoPredictions);
    }
    let rows = all.len() as f64;
    let estimate = mean_of(&all);
    let se = (sum_squares(&all) / rows / rows).sqrt();
    Ok(GraderOnly {
        estimate,
        se,
        ci: [estimate - z * se, estimate + z * se],
        level,
        n: all.len(),
    })
}

/// One share inside a derived metric. Rows line up across the components of one call (row i of
/// `labelled` is the same sample in every component); `None` marks a row outside this share's
/// domain (e.g. Not-Overrefuse counts only `comply` prompts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Component {
    /// Per labelled row: (human value, grader prediction), or `None`.
    pub labelled: Vec<Option<(f64, f64)>>,
    /// Per unlabelled row: grader prediction, or `None`.
    pub unlabelled: Vec<Option<f64>>,
}

/// How a derived metric's uncertainty was propagated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Propagation {
    /// First-order delta method with the components' covariance.
    Delta,
    /// Percentile bootstrap, labelled and unlabelled rows resampled separately.
    Bootstrap {
        /// Replicates drawn.
        replicates: usize,
        /// Replicates in which every component and the function were defined.
        used: usize,
    },
}

/// A function of several prediction-powered shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// The function at the components' estimates.
    pub estimate: f64,
    /// Delta-method standard error, or the bootstrap replicates' standard deviation.
    pub se: f64,
    /// `estimate ∓ z·se` (delta) or the central percentile interval (bootstrap).
    pub ci: [f64; 2],
    /// Confidence level of `ci`.
    pub level: f64,
    /// Each component's own estimate.
    pub components: Vec<Estimate>,
    /// How `se` and `ci` were obtained.
    pub propagation: Propagation,
}

/// One component's rows in its domain, as plain slices for [`mean`].
struct Columns {
    labels: Vec<f64>,
    predictions: Vec<f64>,
    unlabelled: Vec<f64>,
}

fn columns(c: &Component, labelled_rows: &[usize], unlabelled_rows: &[usize]) -> Columns {
    let mut out = Columns {
        labels: Vec::new(),
        predictions: Vec::new(),
        unlabelled: Vec::new(),
    };
    for &i in labelled_rows {
        if let Some((y, f)) = c.labelled[i] {
            out.labels.push(y);
            out.predictions.push(f);
        }
    }
    for &j in unlabelled_rows {
        if let Some(f) = c.unlabelled[j] {
            out.unlabelled.push(f);
        }
    }
    out
}

/// Checks row alignment and returns (labelled rows, unlabelled rows).
fn aligned(components: &[Component]) -> Result<(usize, usize), PpiError> {
    let Some(first) = components.first() else {
        return Err(PpiError::InvalidParameter {
            name: "components",
            message: "a derived metric needs at least one component".into(),
        });
    };
    let (n, big_n) = (first.labelled.len(), first.unlabelled.len());
    for c in components {
        if c.labelled.len() != n {
            return Err(PpiError::LengthMismatch {
                what: "labelled rows of two components",
                left: n,
                right: c.labelled.len(),
            });
        }
        if c.unlabelled.len() != big_n {
            return Err(PpiError::LengthMismatch {
                what: "unlabelled rows of two components",
                left: big_n,
                right: c.unlabelled.len(),
            });
        }
    }
    Ok((n, big_n))
}

/// Estimates of every component on the given rows, errors tagged with the component index.
fn component_estimates(
    components: &[Component],
    labelled_rows: &[usize],
    unlabelled_rows: &[usize],
    method: Method,
    level: f64,
) -> Result<Vec<Estimate>, PpiError> {
    components
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let cols = columns(c, labelled_rows, unlabelled_rows);
            mean(
                &cols.labels,
                &cols.predictions,
                &cols.unlabelled,
                method,
                level,
            )
            .map_err(|e| match e {
                PpiError::NoLabelled { .. } => PpiError::NoLabelled { component: Some(k) },
                PpiError::NoUnlabelled { .. } => PpiError::NoUnlabelled { component: Some(k) },
                other => other,
            })
        })
        .collect()
}

fn checked_value(g: &dyn Fn(&[f64]) -> f64, thetas: &[f64]) -> Result<f64, PpiError> {
    let v = g(thetas);
    if v.is_finite() {
        Ok(v)
    } else {
        Err(PpiError::Derived(format!(
            "the function is not finite at {thetas:?}"
        )))
    }
}

/// Every component's estimate on all its rows, their values, and `g` of them.
fn point(
    components: &[Component],
    n: usize,
    big_n: usize,
    method: Method,
    level: f64,
    g: &dyn Fn(&[f64]) -> f64,
) -> Result<(Vec<Estimate>, Vec<f64>, f64), PpiError> {
    let all_l: Vec<usize> = (0..n).collect();
    let all_u: Vec<usize> = (0..big_n).collect();
    let estimates = component_estimates(components, &all_l, &all_u, method, level)?;
    let thetas: Vec<f64> = estimates.iter().map(|e| e.estimate).collect();
    let estimate = checked_value(g, &thetas)?;
    Ok((estimates, thetas, estimate))
}

/// `g` of the components' estimates with a delta-method interval: se² = ∇gᵀ Σ ∇g, where Σ is
/// the covariance of the component estimates at their λ (treated as fixed, as in PPI++'s
/// asymptotics). Two components covariate through the rows they share: Σ_cd =
/// Σ_{i∈both}(rᵢc − r̄c)(rᵢd − r̄d)/(n_c·n_d) with rᵢ = Yᵢ − λfᵢ, plus λ_c·λ_d times the same sum
/// over the unlabelled predictions; Σ_cc is each component's own variance.
pub fn derived_delta(
    components: &[Component],
    method: Method,
    level: f64,
    g: &dyn Fn(&[f64]) -> f64,
    gradient: &dyn Fn(&[f64]) -> Vec<f64>,
) -> Result<Derived, PpiError> {
    let z = z_value(level)?;
    let (n, big_n) = aligned(components)?;
    let (estimates, thetas, estimate) = point(components, n, big_n, method, level, g)?;
    let grad = gradient(&thetas);
    if grad.len() != components.len() || grad.iter().any(|d| !d.is_finite()) {
        return Err(PpiError::Derived(format!(
            "the gradient at {thetas:?} is {grad:?}, expected {} finite numbers",
            components.len()
        )));
    }
    // Centred residuals per component and row (None outside the domain).
    let centred = |k: usize| -> (Vec<Option<f64>>, Vec<Option<f64>>, f64, f64) {
        let c = &components[k];
        let lambda = estimates[k].lambda;
        let (nl, nu) = (estimates[k].n as f64, estimates[k].n_unlabelled as f64);
        let r: Vec<Option<f64>> = c
            .labelled
            .iter()
            .map(|v| v.map(|(y, f)| y - lambda * f))
            .collect();
        let r_mean = r.iter().flatten().sum::<f64>() / nl;
        let u_mean = if nu > 0.0 {
            c.unlabelled.iter().flatten().sum::<f64>() / nu
        } else {
            0.0
        };
        (
            r.iter().map(|v| v.map(|x| x - r_mean)).collect(),
            c.unlabelled.iter().map(|v| v.map(|x| x - u_mean)).collect(),
            nl,
            nu,
        )
    };
    let parts: Vec<_> = (0..components.len()).map(centred).collect();
    let mut variance = 0.0;
    for (a, (ra, ua, na, nua)) in parts.iter().enumerate() {
        for (b, (rb, ub, nb, nub)) in parts.iter().enumerate() {
            let labelled: f64 = ra
                .iter()
                .zip(rb)
                .filter_map(|(x, y)| Some((*x)? * (*y)?))
                .sum::<f64>()
                / (na * nb);
            let (la, lb) = (estimates[a].lambda, estimates[b].lambda);
            let unlabelled = if la != 0.0 && lb != 0.0 {
                la * lb
                    * ua.iter()
                        .zip(ub)
                        .filter_map(|(x, y)| Some((*x)? * (*y)?))
                        .sum::<f64>()
                    / (nua * nub)
            } else {
                0.0
            };
            variance += grad[a] * grad[b] * (labelled + unlabelled);
        }
    }
    let se = variance.max(0.0).sqrt();
    Ok(Derived {
        estimate,
        se,
        ci: [estimate - z * se, estimate + z * se],
        level,
        components: estimates,
        propagation: Propagation::Delta,
    })
}

/// `g` of the components' estimates with a percentile-bootstrap interval: each replicate draws
/// n labelled rows from the labelled rows and N unlabelled rows from the unlabelled rows (so
/// the split between them stays fixed, as in the design), recomputes every component with
/// `method` (λ̂ included) and applies `g`. Replicates where a component has no labelled row in
/// its domain, or `g` is not finite, are skipped and counted out of `used`.
pub fn derived_bootstrap(
    components: &[Component],
    method: Method,
    level: f64,
    g: &dyn Fn(&[f64]) -> f64,
    replicates: usize,
    rng: &mut SeededRng,
) -> Result<Derived, PpiError> {
    z_value(level)?;
    if replicates == 0 {
        return Err(PpiError::InvalidParameter {
            name: "replicates",
            message: "need at least one bootstrap replicate".into(),
        });
    }
    let (n, big_n) = aligned(components)?;
    let (estimates, _, estimate) = point(components, n, big_n, method, level, g)?;
    let mut values = Vec::with_capacity(replicates);
    let (mut rows_l, mut rows_u) = (Vec::with_capacity(n), Vec::with_capacity(big_n));
    for _ in 0..replicates {
        rows_l.clear();
        rows_l.extend((0..n).map(|_| rng.below(n)));
        rows_u.clear();
        rows_u.extend((0..big_n).map(|_| rng.below(big_n)));
        let Ok(reps) = component_estimates(components, &rows_l, &rows_u, method, level) else {
            continue;
        };
        let thetas: Vec<f64> = reps.iter().map(|e| e.estimate).collect();
        let v = g(&thetas);
        if v.is_finite() {
            values.push(v);
        }
    }
    let used = values.len();
    let m = values.iter().sum::<f64>() / used.max(1) as f64;
    let se = if used > 1 {
        (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (used - 1) as f64).sqrt()
    } else {
        0.0
    };
    let Some(ci) = percentile_interval(&mut values, level) else {
        return Err(PpiError::Derived(format!(
            "none of the {replicates} bootstrap replicates was defined"
        )));
    };
    Ok(Derived {
        estimate,
        se,
        ci,
        level,
        components: estimates,
        propagation: Propagation::Bootstrap { replicates, used },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn hand_computed_small_case() {
        // Y = [1, 0, 1, 1], f = [1, 0, 0, 1], f̃ = [1, 0, 0, 0, 1, 1].
        let (y, f, u) = (
            [1.0, 0.0, 1.0, 1.0],
            [1.0, 0.0, 0.0, 1.0],
            [1.0, 0.0, 0.0, 0.0, 1.0, 1.0],
        );
        // Classical: mean 0.75, Var0 = 0.1875, se = √(0.1875/4).
        let c = mean(&y, &f, &u, Method::Classical, 0.95).unwrap();
        assert!(close(c.estimate, 0.75, 1e-15) && close(c.se, (0.1875f64 / 4.0).sqrt(), 1e-15));
        // PPI: 0.5 + mean(Y − f) = 0.5 + 0.25; Var0(Y − f) = 0.1875, Var0(f̃) = 0.25.
        let p = mean(&y, &f, &u, Method::Ppi, 0.95).unwrap();
        assert!(close(p.estimate, 0.75, 1e-15));
        assert!(close(p.se, (0.1875f64 / 4.0 + 0.25 / 6.0).sqrt(), 1e-15));
        let z = 1.959_963_984_540_054;
        assert!(close(p.ci[0], 0.75 - z * p.se, 1e-14) && close(p.ci[1], 0.75 + z * p.se, 1e-14));
        // λ̂: Cov0(Y, f) = mean(Yf) − Ȳf̄ = 0.5 − 0.375 = 0.125; pooled f (10 values, 5 ones):
        // Var1 = 2.5/9; λ̂ = 0.125 / ((1 + 4/6)·2.5/9) = 0.27.
        let t = mean(&y, &f, &u, Method::PowerTuned, 0.95).unwrap();
        assert!(close(t.lambda, 0.27, 1e-15), "{}", t.lambda);
        assert!(close(t.estimate, 0.75 - 0.27 * 0.5 + 0.27 * 0.5, 1e-15));
        let r: Vec<f64> = y.iter().zip(&f).map(|(y, f)| y - 0.27 * f).collect();
        let rm = r.iter().sum::<f64>() / 4.0;
        let var_r = r.iter().map(|x| (x - rm) * (x - rm)).sum::<f64>() / 4.0;
        assert!(close(
            t.se,
            (var_r / 4.0 + 0.27 * 0.27 * 0.25 / 6.0).sqrt(),
            1e-15
        ));
        assert_eq!((t.n, t.n_unlabelled), (4, 6));
    }

    #[test]
    fn no_unlabelled_rows_reduces_to_classical() {
        let (y, f) = ([1.0, 0.0, 1.0], [0.9, 0.2, 0.4]);
        let t = mean(&y, &f, &[], Method::PowerTuned, 0.95).unwrap();
        let c = mean(&y, &f, &[], Method::Classical, 0.95).unwrap();
        assert_eq!(t.lambda, 0.0);
        assert_eq!((t.estimate, t.se, t.ci), (c.estimate, c.se, c.ci));
        assert_eq!(
            mean(&y, &f, &[], Method::Ppi, 0.95),
            Err(PpiError::NoUnlabelled { component: None })
        );
    }

    #[test]
    fn constant_predictions_give_lambda_zero_not_nan() {
        let t = mean(&[1.0, 0.0], &[0.5, 0.5], &[0.5; 3], Method::PowerTuned, 0.9).unwrap();
        assert_eq!(t.lambda, 0.0);
        assert!(t.se.is_finite() && t.estimate == 0.5);
        // A single labelled row: zero-width interval, still finite.
        let one = mean(&[1.0], &[1.0], &[0.0], Method::PowerTuned, 0.95).unwrap();
        assert!(one.ci.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn typed_errors() {
        assert_eq!(
            mean(&[], &[], &[1.0], Method::Ppi, 0.95),
            Err(PpiError::NoLabelled { component: None })
        );
        assert!(matches!(
            mean(&[1.0], &[1.0, 0.0], &[], Method::Classical, 0.95),
            Err(PpiError::LengthMismatch {
                left: 1,
                right: 2,
                ..
            })
        ));
        assert_eq!(
            mean(&[1.0], &[f64::NAN], &[], Method::Classical, 0.95),
            Err(PpiError::NonFinite {
                what: "predictions",
                index: 0
            })
        );
        assert_eq!(
            mean(
                &[1.0],
                &[1.0],
                &[0.0, f64::INFINITY],
                Method::PowerTuned,
                0.95
            ),
            Err(PpiError::NonFinite {
                what: "unlabelled",
                index: 1
            })
        );
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(matches!(
                mean(&[1.0], &[1.0], &[], Method::Classical, bad),
                Err(PpiError::InvalidLevel(_))
            ));
        }
        assert_eq!(grader_only(&[], &[], 0.95), Err(PpiError::NoPredictions));
    }

    #[test]
    fn grader_only_pools_every_prediction() {
        let g = grader_only(&[1.0, 0.0], &[1.0, 1.0], 0.95).unwrap();
        assert_eq!((g.estimate, g.n), (0.75, 4));
        assert!(close(g.se, (0.1875f64 / 4.0).sqrt(), 1e-15));
    }

    fn f1(t: &[f64]) -> f64 {
        let (a, b) = (t[0], t[1]);
        if a + b == 0.0 {
            0.0
        } else {
            2.0 * a * b / (a + b)
        }
    }

    fn f1_gradient(t: &[f64]) -> Vec<f64> {
        let (a, b) = (t[0], t[1]);
        let s = (a + b) * (a + b);
        if s == 0.0 {
            vec![0.0, 0.0]
        } else {
            vec![2.0 * b * b / s, 2.0 * a * a / s]
        }
    }

    /// Rows with a biased grader: labelled (y, f) and unlabelled f, for two shares where the
    /// second is defined on every other row.
    fn two_shares(seed: u64, n: usize, big_n: usize) -> Vec<Component> {
        let mut rng = SeededRng::new(seed);
        let mut draw = |p_true: f64| {
            let y = rng.next_f64() < p_true;
            let f = if y {
                rng.next_f64() < 0.8
            } else {
                rng.next_f64() < 0.1
            };
            (f64::from(u8::from(y)), f64::from(u8::from(f)))
        };
        let mut a = Component::default();
        let mut b = Component::default();
        for i in 0..n + big_n {
            let ya = draw(0.9);
            let yb = draw(0.7);
            let in_b = i % 2 == 0;
            if i < n {
                a.labelled.push(Some(ya));
                b.labelled.push(in_b.then_some(yb));
            } else {
                a.unlabelled.push(Some(ya.1));
                b.unlabelled.push(in_b.then_some(yb.1));
            }
        }
        vec![a, b]
    }

    #[test]
    fn delta_of_one_component_is_that_component() {
        let comps = two_shares(3, 60, 300);
        let d = derived_delta(&comps[..1], Method::PowerTuned, 0.95, &|t| t[0], &|_| {
            vec![1.0]
        })
        .unwrap();
        let c = &d.components[0];
        assert!(close(d.estimate, c.estimate, 1e-15) && close(d.se, c.se, 1e-15));
        // A sum of two shares on disjoint rows: the variances add.
        let mut left = Component::default();
        let mut right = Component::default();
        for (i, v) in comps[0].labelled.iter().enumerate() {
            left.labelled.push(if i % 2 == 0 { *v } else { None });
            right.labelled.push(if i % 2 == 1 { *v } else { None });
        }
        for (j, v) in comps[0].unlabelled.iter().enumerate() {
            left.unlabelled.push(if j % 2 == 0 { *v } else { None });
            right.unlabelled.push(if j % 2 == 1 { *v } else { None });
        }
        let parts = [left, right];
        let sum = derived_delta(&parts, Method::Ppi, 0.95, &|t| t[0] + t[1], &|_| {
            vec![1.0, 1.0]
        })
        .unwrap();
        let (sa, sb) = (sum.components[0].se, sum.components[1].se);
        assert!(close(sum.se, (sa * sa + sb * sb).sqrt(), 1e-15));
    }

    #[test]
    fn delta_and_bootstrap_agree_on_f1() {
        let comps = two_shares(11, 400, 2000);
        let d = derived_delta(&comps, Method::PowerTuned, 0.95, &f1, &f1_gradient).unwrap();
        let a = d.components[0].estimate;
        let b = d.components[1].estimate;
        assert!(close(d.estimate, 2.0 * a * b / (a + b), 1e-15));
        let mut rng = SeededRng::new(5);
        let bs = derived_bootstrap(&comps, Method::PowerTuned, 0.95, &f1, 400, &mut rng).unwrap();
        assert_eq!(bs.estimate, d.estimate);
        assert_eq!(
            bs.propagation,
            Propagation::Bootstrap {
                replicates: 400,
                used: 400
            }
        );
        assert!(
            (bs.se / d.se - 1.0).abs() < 0.15,
            "bootstrap {} vs delta {}",
            bs.se,
            d.se
        );
        assert!(bs.ci[0] < d.estimate && d.estimate < bs.ci[1]);
        // Same seed, same interval.
        let again = derived_bootstrap(
            &comps,
            Method::PowerTuned,
            0.95,
            &f1,
            400,
            &mut SeededRng::new(5),
        )
        .unwrap();
        assert_eq!(again, bs);
    }

    #[test]
    fn derived_errors_name_the_component() {
        let mut comps = two_shares(1, 10, 20);
        comps[1].labelled.iter_mut().for_each(|v| *v = None);
        assert_eq!(
            derived_delta(&comps, Method::PowerTuned, 0.95, &f1, &f1_gradient).unwrap_err(),
            PpiError::NoLabelled { component: Some(1) }
        );
        let short = Component {
            labelled: vec![Some((1.0, 1.0))],
            unlabelled: vec![],
        };
        assert!(matches!(
            derived_delta(
                &[comps[0].clone(), short],
                Method::Ppi,
                0.95,
                &f1,
                &f1_gradient
            ),
            Err(PpiError::LengthMismatch { .. })
        ));
        let comps = two_shares(1, 10, 20);
        assert!(matches!(
            derived_delta(&comps, Method::Ppi, 0.95, &f1, &|_| vec![1.0]),
            Err(PpiError::Derived(_))
        ));
        assert!(matches!(
            derived_bootstrap(&comps, Method::Ppi, 0.95, &f1, 0, &mut SeededRng::new(1)),
            Err(PpiError::InvalidParameter { .. })
        ));
        assert!(matches!(
            derived_delta(&[], Method::Ppi, 0.95, &f1, &f1_gradient),
            Err(PpiError::InvalidParameter { .. })
        ));
    }
}

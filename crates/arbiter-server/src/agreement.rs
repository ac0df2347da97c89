//! Agreement over `(item, rater, label)` rows, behind a small seam.
//!
//! The statistics crate (`arbiter-stats`) will own Krippendorff's α and friends; until it is
//! merged, [`BuiltinAlpha`] implements nominal and ordinal α from the coincidence-matrix
//! formula so the dashboard works now. Swapping in the statistics crate means implementing
//! [`Agreement`] for it and changing the one line in `AppState` that picks the implementation.

use std::collections::BTreeMap;

/// One rating: item, rater, label (canonical text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    /// Item key.
    pub item: i64,
    /// Rater key.
    pub rater: i64,
    /// Label.
    pub label: String,
}

/// Measurement level of the labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// Unordered categories (multi-label answers are compared as whole sets).
    Nominal,
    /// Ordered categories, given low to high.
    Ordinal(Vec<String>),
}

/// Computes chance-corrected agreement.
pub trait Agreement: Send + Sync {
    /// Krippendorff's α, or `None` when undefined (fewer than two pairable values, or only
    /// one distinct value so expected disagreement is zero).
    fn alpha(&self, ratings: &[Rating], level: &Level) -> Option<f64>;
}

/// Krippendorff's α written from the published formula (see docs/annotation.md §4).
#[derive(Debug, Default, Clone, Copy)]
pub struct BuiltinAlpha;

impl Agreement for BuiltinAlpha {
    fn alpha(&self, ratings: &[Rating], level: &Level) -> Option<f64> {
        // Value domain: the ordinal scale, or every label seen.
        let domain: Vec<String> = match level {
            Level::Ordinal(scale) => scale.clone(),
            Level::Nominal => {
                let mut v: Vec<String> = ratings.iter().map(|r| r.label.clone()).collect();
                v.sort();
                v.dedup();
                v
            }
        };
        let index: BTreeMap<&str, usize> = domain
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_str(), i))
            .collect();
        let n_values = domain.len();
        // One pairable value per (item, rater): a repeated rating replaces the earlier one.
        let mut per_unit: BTreeMap<i64, BTreeMap<i64, usize>> = BTreeMap::new();
        for r in ratings {
            if let Some(&v) = index.get(r.label.as_str()) {
                per_unit.entry(r.item).or_default().insert(r.rater, v);
            }
        }
        let mut o = vec![vec![0.0f64; n_values]; n_values];
        for raters in per_unit.values() {
            let m = raters.len();
            if m < 2 {
                continue;
            }
            let mut counts = vec![0.0f64; n_values];
            for &v in raters.values() {
                counts[v] += 1.0;
            }
            for c in 0..n_values {
                for k in 0..n_values {
                    let pairs = counts[c] * counts[k] - if c == k { counts[c] } else { 0.0 };
                    o[c][k] += pairs / (m as f64 - 1.0);
                }
            }
        }
        let n_c: Vec<f64> = o.iter().map(|row| row.iter().sum()).collect();
        let n: f64 = n_c.iter().sum();
        if n < 2.0 {
            return None;
        }
        let delta = |c: usize, k: usize| -> f64 {
            match level {
                Level::Nominal => f64::from(u8::from(c != k)),
                Level::Ordinal(_) => {
                    let (lo, hi) = if c <= k { (c, k) } else { (k, c) };
                    let s: f64 = (lo..=hi).map(|g| n_c[g]).sum::<f64>() - (n_c[c] + n_c[k]) / 2.0;
                    s * s
                }
            }
        };
        let (mut d_o, mut d_e) = (0.0, 0.0);
        for c in 0..n_values {
            for k in 0..n_values {
                let d = delta(c, k);
                d_o += o[c][k] * d;
                let e = (n_c[c] * n_c[k] - if c == k { n_c[c] } else { 0.0 }) / (n - 1.0);
                d_e += e * d;
            }
        }
        if d_e <= 0.0 {
            return None;
        }
        Some(1.0 - d_o / d_e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reliability-data example from Wikipedia (docs/annotation.md §4).
    fn wikipedia() -> Vec<Rating> {
        let rows = [
            "* * * * * 3 4 1 2 1 1 3 3 * 3",
            "1 * 2 1 3 3 4 3 * * * * * * *",
            "* * 2 1 3 4 4 * 2 1 1 3 3 * 4",
        ];
        let mut out = Vec::new();
        for (rater, row) in rows.iter().enumerate() {
            for (item, v) in row.split(' ').enumerate() {
                if v != "*" {
                    out.push(Rating {
                        item: item as i64,
                        rater: rater as i64,
                        label: v.to_string(),
                    });
                }
            }
        }
        out
    }

    #[test]
    fn nominal_and_ordinal_match_reference_values() {
        let r = wikipedia();
        let nominal = BuiltinAlpha.alpha(&r, &Level::Nominal).unwrap();
        assert!((nominal - 0.691358).abs() < 1e-6, "{nominal}");
        let scale = ["1", "2", "3", "4"].map(String::from).to_vec();
        let ordinal = BuiltinAlpha.alpha(&r, &Level::Ordinal(scale)).unwrap();
        assert!((ordinal - 0.806721).abs() < 1e-6, "{ordinal}");
    }

    #[test]
    fn undefined_cases_are_none() {
        let one = vec![
            Rating {
                item: 1,
                rater: 1,
                label: "a".into(),
            },
            Rating {
                item: 1,
                rater: 2,
                label: "a".into(),
            },
        ];
        assert_eq!(BuiltinAlpha.alpha(&one, &Level::Nominal), None);
        assert_eq!(BuiltinAlpha.alpha(&one[..1], &Level::Nominal), None);
    }
}

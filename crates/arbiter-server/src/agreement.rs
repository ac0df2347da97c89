//! Agreement over `(item, rater, label)` rows, behind a small seam.
//!
//! [`StatsAlpha`] delegates to `arbiter-stats`, so the dashboard and `arbiter agreement` give the
//! same numbers from one implementation; tests may swap in another [`Agreement`].

use arbiter_stats::{
    Distance, DomainSpec, DuplicatePolicy, LabelDomain, LabelKind, RatingsBuilder,
    krippendorff_alpha,
};

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

/// Krippendorff's α from `arbiter-stats`. One value per (item, rater): a repeated rating
/// replaces the earlier one; labels outside an ordinal scale are left out.
#[derive(Debug, Default, Clone, Copy)]
pub struct StatsAlpha;

impl Agreement for StatsAlpha {
    fn alpha(&self, ratings: &[Rating], level: &Level) -> Option<f64> {
        let (spec, distance) = match level {
            Level::Nominal => (DomainSpec::Infer(LabelKind::Nominal), Distance::Nominal),
            Level::Ordinal(scale) => (
                DomainSpec::Explicit(LabelDomain::new(scale.clone(), LabelKind::Ordered).ok()?),
                Distance::Ordinal,
            ),
        };
        let mut builder = RatingsBuilder::new(spec, Vec::new());
        for r in ratings {
            if let Level::Ordinal(scale) = level
                && !scale.contains(&r.label)
            {
                continue;
            }
            builder
                .push(&r.item.to_string(), &r.rater.to_string(), &r.label, &[])
                .ok()?;
        }
        let table = builder.build(DuplicatePolicy::Last).ok()?;
        krippendorff_alpha(&table, &distance).ok()?.alpha.value()
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
        let nominal = StatsAlpha.alpha(&r, &Level::Nominal).unwrap();
        assert!((nominal - 0.691358).abs() < 1e-6, "{nominal}");
        let scale = ["1", "2", "3", "4"].map(String::from).to_vec();
        let ordinal = StatsAlpha.alpha(&r, &Level::Ordinal(scale)).unwrap();
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
        assert_eq!(StatsAlpha.alpha(&one, &Level::Nominal), None);
        assert_eq!(StatsAlpha.alpha(&one[..1], &Level::Nominal), None);
    }
}

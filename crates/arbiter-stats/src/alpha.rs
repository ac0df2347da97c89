//! Krippendorff's α from the coincidence matrix.
//!
//! For each unit u with m_u ≥ 2 pairable values and n_uc values of category c, the unit adds
//! (n_uc·n_uk − δ_ck·n_uc)/(m_u − 1) to o_ck. With marginals n_c = Σ_k o_ck and n = Σ_c n_c,
//! α = 1 − (n − 1)·Σ_{c,k} o_ck·d_ck / Σ_{c,k} n_c·n_k·d_ck (the δ term of the expected matrix
//! meets d_cc = 0 and vanishes). Cost: one pass over the rows plus O(Σ_u V_u²), where V_u is the
//! number of distinct values in unit u.

use arbiter_core::rng::SeededRng;

use crate::unit_sums::UnitSums;
use crate::util::{percentile_interval, sort_rows_by_item};
use crate::{DomainSpec, LabelDomain, Ratings, StatsError};

/// The metric of α.
#[derive(Debug, Clone, PartialEq)]
pub enum Distance {
    /// d = [c ≠ k].
    Nominal,
    /// Krippendorff's ordinal distance over the domain order, using the pairable-value marginals.
    Ordinal,
    /// d = (c − k)² on the numeric label values.
    Interval,
    /// d = ((c − k)/(c + k))², and 0 when c + k = 0.
    Ratio,
    /// A user-supplied `n_labels × n_labels` row-major matrix over domain indices.
    Custom(Vec<f64>),
}

impl Distance {
    /// Parse a level name: `nominal`, `ordinal`, `interval` or `ratio`.
    pub fn parse_level(name: &str) -> Option<Distance> {
        match name.to_ascii_lowercase().as_str() {
            "nominal" => Some(Distance::Nominal),
            "ordinal" => Some(Distance::Ordinal),
            "interval" => Some(Distance::Interval),
            "ratio" => Some(Distance::Ratio),
            _ => None,
        }
    }

    /// The level's name (`custom` for a custom matrix).
    pub fn name(&self) -> &'static str {
        match self {
            Distance::Nominal => "nominal",
            Distance::Ordinal => "ordinal",
            Distance::Interval => "interval",
            Distance::Ratio => "ratio",
            Distance::Custom(_) => "custom",
        }
    }
}

/// Why α has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Undefined {
    /// No unit has two or more values, so nothing can be compared (krippendorff 0.8.1 raises).
    NoPairableUnits,
    /// All pairable values are at distance zero from each other, so the expected disagreement
    /// is zero (typically: a single value; krippendorff 0.8.1 raises, NLTK returns 1.0).
    NoExpectedDisagreement,
}

/// α or the reason it does not exist. We return neither 1.0 nor NaN for the degenerate cases:
/// a report should say "undefined" rather than "perfect".
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Alpha {
    /// A defined value.
    Value(f64),
    /// No value, and why.
    Undefined(Undefined),
}

impl Alpha {
    /// The value, if defined.
    pub fn value(self) -> Option<f64> {
        match self {
            Alpha::Value(v) => Some(v),
            Alpha::Undefined(_) => None,
        }
    }
}

/// α with the quantities it was computed from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlphaReport {
    /// α itself.
    pub alpha: Alpha,
    /// Level name.
    pub level: &'static str,
    /// Units with at least two values.
    pub n_pairable_units: usize,
    /// n: number of pairable values.
    pub n_pairable_values: f64,
    /// Observed disagreement D_o = Σ o·d / n.
    pub observed_disagreement: f64,
    /// Expected disagreement D_e = Σ n_c·n_k·d / (n(n − 1)).
    pub expected_disagreement: f64,
}

/// Per-unit coincidence contributions of pairable units, kept sparse so bootstrap replicates
/// can re-weight units without touching the rows again.
#[derive(Debug, Clone)]
pub(crate) struct UnitCoincidences {
    pub(crate) n_labels: usize,
    /// Start of each unit's entries in `entries`; one extra element at the end.
    pub(crate) offsets: Vec<usize>,
    /// (c, k, o_ck contribution); c ≤ k, off-diagonal entries stand for both (c,k) and (k,c).
    pub(crate) entries: Vec<(u32, u32, f64)>,
}

impl UnitCoincidences {
    pub(crate) fn from_ratings(ratings: &Ratings) -> Self {
        let n_labels = ratings.n_labels();
        let (order, item_starts) = sort_rows_by_item(ratings);
        let rows = ratings.rows();
        let mut counts = vec![0u32; n_labels];
        let mut present: Vec<u32> = Vec::new();
        let mut offsets = vec![0];
        let mut entries = Vec::new();
        for w in item_starts.windows(2) {
            let unit = &order[w[0]..w[1]];
            if unit.len() < 2 {
                continue;
            }
            present.clear();
            for &ri in unit {
                let c = rows[ri as usize].label;
                if counts[c as usize] == 0 {
                    present.push(c);
                }
                counts[c as usize] += 1;
            }
            present.sort_unstable();
            let m_minus_1 = (unit.len() - 1) as f64;
            for (a, &c) in present.iter().enumerate() {
                let nc = counts[c as usize] as f64;
                if nc > 1.0 {
                    entries.push((c, c, nc * (nc - 1.0) / m_minus_1));
                }
                for &k in &present[a + 1..] {
                    let nk = counts[k as usize] as f64;
                    entries.push((c, k, nc * nk / m_minus_1));
                }
            }
            for &c in &present {
                counts[c as usize] = 0;
            }
            offsets.push(entries.len());
        }
        UnitCoincidences {
            n_labels,
            offsets,
            entries,
        }
    }

    pub(crate) fn n_units(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Dense coincidence matrix with unit weights (`None` = all ones).
    pub(crate) fn matrix(&self, weights: Option<&[f64]>) -> Vec<f64> {
        let v = self.n_labels;
        let mut o = vec![0.0; v * v];
        for u in 0..self.n_units() {
            let w = weights.map_or(1.0, |w| w[u]);
            if w == 0.0 {
                continue;
            }
            for &(c, k, x) in &self.entries[self.offsets[u]..self.offsets[u + 1]] {
                let (c, k) = (c as usize, k as usize);
                o[c * v + k] += w * x;
                if c != k {
                    o[k * v + c] += w * x;
                }
            }
        }
        o
    }
}

/// Check the metric against the domain and return the base distance matrix (for ordinal: None,
/// because it depends on the marginals).
fn base_distance(
    domain: &LabelDomain,
    distance: &Distance,
) -> Result<Option<Vec<f64>>, StatsError> {
    let v = domain.len();
    let numeric = || {
        domain.numeric().ok_or_else(|| {
            let bad = domain
                .values()
                .iter()
                .find(|s| s.trim().parse::<f64>().map_or(true, |x| !x.is_finite()))
                .cloned()
                .unwrap_or_default();
            StatsError::NonNumericLabel {
                level: distance.name().to_string(),
                label: bad,
            }
        })
    };
    let mut d = vec![0.0; v * v];
    match distance {
        Distance::Nominal => {
            for c in 0..v {
                for k in 0..v {
                    d[c * v + k] = f64::from(u8::from(c != k));
                }
            }
        }
        Distance::Ordinal => return Ok(None),
        Distance::Interval => {
            let x = numeric()?;
            for c in 0..v {
                for k in 0..v {
                    d[c * v + k] = (x[c] - x[k]).powi(2);
                }
            }
        }
        Distance::Ratio => {
            let x = numeric()?;
            for c in 0..v {
                for k in 0..v {
                    let s = x[c] + x[k];
                    d[c * v + k] = if s == 0.0 {
                        0.0
                    } else {
                        ((x[c] - x[k]) / s).powi(2)
                    };
                }
            }
        }
        Distance::Custom(m) => {
            if m.len() != v * v {
                return Err(StatsError::InvalidDistance(format!(
                    "expected {v}×{v} = {} entries, got {}",
                    v * v,
                    m.len()
                )));
            }
            if let Some(x) = m.iter().find(|x| !x.is_finite() || **x < 0.0) {
                return Err(StatsError::InvalidDistance(format!(
                    "entries must be finite and non-negative, found {x}"
                )));
            }
            d.copy_from_slice(m);
        }
    }
    Ok(Some(d))
}

fn ordinal_distance(marginals: &[f64]) -> Vec<f64> {
    let v = marginals.len();
    // prefix[i] = Σ_{g < i} n_g, so Σ_{g=c..k} n_g = prefix[k+1] − prefix[c].
    let mut prefix = vec![0.0; v + 1];
    for i in 0..v {
        prefix[i + 1] = prefix[i] + marginals[i];
    }
    let mut d = vec![0.0; v * v];
    for c in 0..v {
        for k in c + 1..v {
            let x = prefix[k + 1] - prefix[c] - (marginals[c] + marginals[k]) / 2.0;
            d[c * v + k] = x * x;
            d[k * v + c] = x * x;
        }
    }
    d
}

/// α from a coincidence matrix and a base distance (None = ordinal).
fn alpha_from_matrix(
    o: &[f64],
    v: usize,
    base: Option<&[f64]>,
    level: &'static str,
) -> AlphaReport {
    let marginals: Vec<f64> = (0..v).map(|c| o[c * v..(c + 1) * v].iter().sum()).collect();
    let n: f64 = marginals.iter().sum();
    let ordinal;
    let d = match base {
        Some(d) => d,
        None => {
            ordinal = ordinal_distance(&marginals);
            &ordinal
        }
    };
    let mut observed = 0.0;
    let mut expected = 0.0;
    for c in 0..v {
        for k in 0..v {
            let dist = d[c * v + k];
            if dist != 0.0 {
                observed += o[c * v + k] * dist;
                expected += marginals[c] * marginals[k] * dist;
            }
        }
    }
    let alpha = if n < 2.0 {
        Alpha::Undefined(Undefined::NoPairableUnits)
    } else if expected <= 0.0 {
        Alpha::Undefined(Undefined::NoExpectedDisagreement)
    } else {
        Alpha::Value(1.0 - (n - 1.0) * observed / expected)
    };
    AlphaReport {
        alpha,
        level,
        n_pairable_units: 0,
        n_pairable_values: n,
        observed_disagreement: if n > 0.0 { observed / n } else { 0.0 },
        expected_disagreement: if n > 1.0 {
            expected / (n * (n - 1.0))
        } else {
            0.0
        },
    }
}

/// Krippendorff's α of the whole table.
///
/// Every row counts (apply a [`crate::DuplicatePolicy`] when building the table to change that),
/// units with fewer than two values are dropped, and the degenerate cases come back as
/// [`Alpha::Undefined`].
pub fn krippendorff_alpha(
    ratings: &Ratings,
    distance: &Distance,
) -> Result<AlphaReport, StatsError> {
    alpha_from_coincidences(ratings, distance, coincidence_matrix(ratings))
}

/// Krippendorff's α from per-item label counts, for a caller that needs nothing else of a
/// table (no raters and no duplicate policy: every row counts, as with
/// [`crate::DuplicatePolicy::KeepAll`]) and can count its columns in one pass.
///
/// `labels` names the caller's label codes, each used by some row, so that an inferred domain
/// is the one a [`Ratings`] of the same rows infers. Each part in `parts` holds
/// `n_items × labels.len()` counts, row-major by item (`part[i * labels.len() + c]`: ratings of
/// item `i` with label `labels[c]`); an item's counts are the sum over the parts (say one part
/// per counting thread). Items, and item numbers, without counts are ignored.
///
/// Bit-identical to [`krippendorff_alpha`] of a table of the same rows: both come from exact
/// integer sums by unit size, which do not depend on the order or numbering of the items.
/// `Ok(None)` when the domain has more labels than those sums take (build a [`Ratings`] then).
pub fn alpha_from_label_counts(
    labels: &[String],
    parts: &[&[u32]],
    spec: DomainSpec,
    distance: &Distance,
) -> Result<Option<AlphaReport>, StatsError> {
    let w = labels.len();
    let n_cells = parts.first().map_or(0, |p| p.len());
    if parts.iter().any(|p| p.len() != n_cells)
        || (w == 0 && n_cells != 0)
        || !n_cells.is_multiple_of(w.max(1))
    {
        return Err(StatsError::InvalidParameter {
            name: "parts",
            message: format!(
                "each part must hold n_items × {w} counts, and all the same number; got {:?}",
                parts.iter().map(|p| p.len()).collect::<Vec<_>>()
            ),
        });
    }
    let domain = match spec {
        DomainSpec::Explicit(d) => d,
        DomainSpec::Infer(kind) => LabelDomain::infer(labels.iter().map(String::as_str), kind),
    };
    if domain.len() > crate::unit_sums::MAX_LABELS {
        return Ok(None);
    }
    let remap = labels
        .iter()
        .map(|label| {
            domain
                .index_of(label)
                .map(|i| i as u32)
                .ok_or_else(|| StatsError::UnknownLabel {
                    label: label.clone(),
                    domain: domain.values().to_vec(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sums = UnitSums::of_label_counts(domain.len(), &remap, parts);
    let (o, n_units) = sums.coincidences();
    let base = base_distance(&domain, distance)?;
    let mut report = alpha_from_matrix(&o, domain.len(), base.as_deref(), distance.name());
    report.n_pairable_units = n_units;
    Ok(Some(report))
}

/// α of `ratings` from its coincidence matrix and number of pairable units (as
/// [`coincidence_matrix`] or [`UnitSums::coincidences`] give them).
pub(crate) fn alpha_from_coincidences(
    ratings: &Ratings,
    distance: &Distance,
    (o, n_units): (Vec<f64>, usize),
) -> Result<AlphaReport, StatsError> {
    let base = base_distance(ratings.domain(), distance)?;
    let mut report = alpha_from_matrix(&o, ratings.n_labels(), base.as_deref(), distance.name());
    report.n_pairable_units = n_units;
    Ok(report)
}

/// The coincidence matrix and the number of pairable units: from exact sums by unit size (see
/// [`UnitSums`]) for domains of up to [`crate::unit_sums::MAX_LABELS`] labels, else in one
/// streaming float pass (no per-unit storage). Rows already grouped by item are read in place;
/// otherwise they are grouped by a counting sort first.
///
/// In the float pass every cell receives at most one term per unit, in unit order, so the
/// order in which a unit's labels are visited does not change a bit of the result.
fn coincidence_matrix(ratings: &Ratings) -> (Vec<f64>, usize) {
    match UnitSums::of(ratings) {
        Some(sums) => sums.coincidences(),
        None => float_coincidences(ratings),
    }
}

pub(crate) fn float_coincidences(ratings: &Ratings) -> (Vec<f64>, usize) {
    let rows = ratings.rows();
    let mut acc = Coincidences::new(ratings.n_labels());
    if ratings.in_item_order() {
        for run in rows.chunk_by(|a, b| a.item == b.item) {
            acc.add_unit(run.iter().map(|r| r.label));
        }
    } else {
        let (order, starts) = sort_rows_by_item(ratings);
        for w in starts.windows(2) {
            acc.add_unit(order[w[0]..w[1]].iter().map(|&i| rows[i as usize].label));
        }
    }
    (acc.o, acc.n_units)
}

/// Running coincidence matrix with per-unit scratch (label counts and the labels present).
struct Coincidences {
    v: usize,
    o: Vec<f64>,
    counts: Vec<u32>,
    present: Vec<u32>,
    n_units: usize,
}

impl Coincidences {
    fn new(v: usize) -> Self {
        Coincidences {
            v,
            o: vec![0.0; v * v],
            counts: vec![0; v],
            present: Vec::new(),
            n_units: 0,
        }
    }

    /// Add one unit's labels. Generic (not `dyn`) so the per-value loop inlines.
    #[inline]
    fn add_unit(&mut self, labels: impl Iterator<Item = u32>) {
        let (v, counts, present, o) = (self.v, &mut self.counts, &mut self.present, &mut self.o);
        present.clear();
        let mut m = 0u32;
        for c in labels {
            if counts[c as usize] == 0 {
                present.push(c);
            }
            counts[c as usize] += 1;
            m += 1;
        }
        if m >= 2 {
            self.n_units += 1;
            let m_minus_1 = f64::from(m - 1);
            for (a, &c) in present.iter().enumerate() {
                let nc = f64::from(counts[c as usize]);
                o[c as usize * v + c as usize] += nc * (nc - 1.0) / m_minus_1;
                for &k in &present[a + 1..] {
                    let x = nc * f64::from(counts[k as usize]) / m_minus_1;
                    o[c as usize * v + k as usize] += x;
                    o[k as usize * v + c as usize] += x;
                }
            }
        }
        for &c in present.iter() {
            counts[c as usize] = 0;
        }
    }
}

/// Settings of a percentile bootstrap over items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// Number of replicates (≥ 1; use ≥ 1,000 for reporting).
    pub replicates: usize,
    /// Seed of the [`SeededRng`]; the same seed gives the same interval.
    pub seed: u64,
    /// Two-sided coverage, e.g. 0.95.
    pub confidence: f64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            replicates: 1000,
            seed: 0,
            confidence: 0.95,
        }
    }
}

impl Bootstrap {
    pub(crate) fn check(&self) -> Result<(), StatsError> {
        if self.replicates == 0 {
            return Err(StatsError::InvalidParameter {
                name: "replicates",
                message: "need at least one bootstrap replicate".into(),
            });
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(StatsError::InvalidParameter {
                name: "confidence",
                message: format!("must be in (0, 1), got {}", self.confidence),
            });
        }
        Ok(())
    }
}

/// A percentile confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Replicates in which the statistic was defined (the interval uses only those).
    pub n_defined: usize,
}

/// Percentile bootstrap interval of α, resampling pairable units with replacement.
///
/// Units without two values cannot change α, so resampling only pairable units gives the same
/// distribution as resampling all items conditioned on the number of pairable ones. Returns
/// `None` when α is undefined in every replicate.
pub fn alpha_bootstrap(
    ratings: &Ratings,
    distance: &Distance,
    settings: Bootstrap,
) -> Result<Option<Interval>, StatsError> {
    settings.check()?;
    let base = base_distance(ratings.domain(), distance)?;
    let units = UnitCoincidences::from_ratings(ratings);
    let n_units = units.n_units();
    if n_units == 0 {
        return Ok(None);
    }
    let mut rng = SeededRng::new(settings.seed);
    let mut weights = vec![0.0; n_units];
    let mut values = Vec::with_capacity(settings.replicates);
    for _ in 0..settings.replicates {
        weights.iter_mut().for_each(|w| *w = 0.0);
        for _ in 0..n_units {
            weights[rng.below(n_units)] += 1.0;
        }
        let o = units.matrix(Some(&weights));
        if let Some(a) = alpha_from_matrix(&o, ratings.n_labels(), base.as_deref(), distance.name())
            .alpha
            .value()
        {
            values.push(a);
        }
    }
    Ok(percentile_interval(&mut values, settings.confidence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};

    /// The reliability-data example of the Wikipedia article (and Krippendorff's papers).
    pub(crate) fn wikipedia() -> Ratings {
        let rows = [
            "* * * * * 3 4 1 2 1 1 3 3 * 3",
            "1 * 2 1 3 3 4 3 * * * * * * *",
            "* * 2 1 3 4 4 * 2 1 1 3 3 * 4",
        ];
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Ordered), vec![]);
        for (r, line) in rows.iter().enumerate() {
            for (u, v) in line.split(' ').enumerate() {
                if v != "*" {
                    b.push(&format!("u{u}"), &format!("r{r}"), v, &[]).unwrap();
                }
            }
        }
        b.build(DuplicatePolicy::KeepAll).unwrap()
    }

    #[test]
    fn wikipedia_example_matches_published_values() {
        let t = wikipedia();
        for (d, want) in [
            (Distance::Nominal, 0.691358),
            (Distance::Ordinal, 0.806721),
            (Distance::Interval, 0.810845),
            (Distance::Ratio, 0.808944),
        ] {
            let got = krippendorff_alpha(&t, &d).unwrap().alpha.value().unwrap();
            assert!((got - want).abs() < 5e-7, "{}: {got} vs {want}", d.name());
        }
    }

    #[test]
    fn custom_nominal_matrix_equals_nominal() {
        let t = wikipedia();
        let v = t.n_labels();
        let m: Vec<f64> = (0..v * v)
            .map(|i| f64::from(u8::from(i / v != i % v)))
            .collect();
        let a = krippendorff_alpha(&t, &Distance::Custom(m)).unwrap().alpha;
        let b = krippendorff_alpha(&t, &Distance::Nominal).unwrap().alpha;
        assert_eq!(a, b);
        assert!(krippendorff_alpha(&t, &Distance::Custom(vec![0.0; 3])).is_err());
    }

    #[test]
    fn degenerate_cases_are_undefined() {
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        b.push("i", "a", "x", &[]).unwrap();
        b.push("j", "b", "y", &[]).unwrap();
        let t = b.clone().build(DuplicatePolicy::KeepAll).unwrap();
        assert_eq!(
            krippendorff_alpha(&t, &Distance::Nominal).unwrap().alpha,
            Alpha::Undefined(Undefined::NoPairableUnits)
        );
        b.push("i", "b", "x", &[]).unwrap();
        let t = b.build(DuplicatePolicy::KeepAll).unwrap();
        assert_eq!(
            krippendorff_alpha(&t, &Distance::Nominal).unwrap().alpha,
            Alpha::Undefined(Undefined::NoExpectedDisagreement)
        );
        assert!(matches!(
            krippendorff_alpha(&t, &Distance::Interval),
            Err(StatsError::NonNumericLabel { .. })
        ));
    }

    /// The counts `alpha_from_label_counts` takes, for `rows` of (item, label) texts: items
    /// numbered backwards from `n_items` (numbering must not matter, nor unused numbers),
    /// labels in reverse order of first appearance, rows dealt round-robin to `n_parts` parts.
    fn label_counts(
        rows: &[(String, String)],
        n_items: usize,
        n_parts: usize,
    ) -> (Vec<String>, Vec<Vec<u32>>) {
        let mut labels: Vec<String> = Vec::new();
        for (_, l) in rows {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
        labels.reverse();
        let w = labels.len();
        let mut items: Vec<&str> = Vec::new();
        let mut parts = vec![vec![0u32; (n_items + 1) * w]; n_parts];
        for (r, (i, l)) in rows.iter().enumerate() {
            let id = items.iter().position(|x| x == i).unwrap_or_else(|| {
                items.push(i);
                items.len() - 1
            });
            let c = labels.iter().position(|x| x == l).unwrap();
            parts[r % n_parts][(n_items - id) * w + c] += 1;
        }
        (labels, parts)
    }

    proptest::proptest! {
        #[test]
        fn label_counts_give_the_tables_alpha(
            rows in proptest::collection::vec((0..25usize, 0..5u8), 0..120),
            n_parts in 1..4usize,
            numeric in proptest::bool::ANY,
            explicit in proptest::bool::ANY,
        ) {
            let rows: Vec<(String, String)> = rows
                .into_iter()
                .map(|(i, l)| (format!("i{i}"), if numeric { format!("{}", 7 - 3 * i32::from(l)) } else { format!("l{l}") }))
                .collect();
            let spec = || if explicit {
                let mut all: Vec<String> = (0..6u8).map(|l| if numeric { format!("{}", 7 - 3 * i32::from(l)) } else { format!("l{l}") }).collect();
                all.reverse();
                DomainSpec::Explicit(LabelDomain::new(all, LabelKind::Ordered).unwrap())
            } else {
                DomainSpec::Infer(LabelKind::Ordered)
            };
            let mut b = RatingsBuilder::new(spec(), vec![]);
            for (r, (i, l)) in rows.iter().enumerate() {
                b.push(i, &format!("r{}", r % 3), l, &[]).unwrap();
            }
            let table = b.build(DuplicatePolicy::KeepAll).unwrap();
            let (labels, parts) = label_counts(&rows, 30, n_parts);
            let parts: Vec<&[u32]> = parts.iter().map(Vec::as_slice).collect();
            for d in [Distance::Nominal, Distance::Ordinal, Distance::Interval, Distance::Ratio] {
                let want = krippendorff_alpha(&table, &d);
                let got = alpha_from_label_counts(&labels, &parts, spec(), &d);
                match (want, got) {
                    (Ok(w), Ok(Some(g))) => proptest::prop_assert_eq!(format!("{w:?}"), format!("{g:?}")),
                    (Err(w), Err(g)) => proptest::prop_assert_eq!(w.to_string(), g.to_string()),
                    (w, g) => proptest::prop_assert!(false, "table {:?}, counts {:?}", w, g),
                }
            }
        }
    }

    /// Many units (summed on two threads), shuffled rows, counted in two parts.
    #[test]
    fn label_counts_of_many_units_give_the_tables_alpha() {
        let mut next = crate::util::xorshift(7);
        let n_items = 3 * crate::unit_sums::TWO_THREADS_UNITS as u64;
        let rows: Vec<(String, String)> = (0..4 * n_items)
            .map(|_| {
                let i = next() % n_items;
                (format!("i{i}"), format!("{}", (i + next() % 3) % 4))
            })
            .collect();
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for (i, l) in &rows {
            b.push(i, "r", l, &[]).unwrap();
        }
        let table = b.build(DuplicatePolicy::KeepAll).unwrap();
        let (labels, parts) = fast_label_counts(&rows, 2);
        let parts: Vec<&[u32]> = parts.iter().map(Vec::as_slice).collect();
        for d in [Distance::Nominal, Distance::Interval] {
            let want = krippendorff_alpha(&table, &d).unwrap();
            let got =
                alpha_from_label_counts(&labels, &parts, DomainSpec::Infer(LabelKind::Nominal), &d)
                    .unwrap()
                    .unwrap();
            assert_eq!(format!("{want:?}"), format!("{got:?}"));
        }
        // Too many labels for the exact sums: the caller must build a table.
        let many: Vec<String> = (0..65).map(|l| format!("l{l}")).collect();
        let counts = vec![1u32; 65];
        assert!(
            alpha_from_label_counts(
                &many,
                &[&counts],
                DomainSpec::Infer(LabelKind::Nominal),
                &Distance::Nominal
            )
            .unwrap()
            .is_none()
        );
        assert!(
            alpha_from_label_counts(
                &many,
                &[&counts[1..]],
                DomainSpec::Infer(LabelKind::Nominal),
                &Distance::Nominal
            )
            .is_err()
        );
    }

    /// [`label_counts`] with hash maps, for many rows.
    fn fast_label_counts(
        rows: &[(String, String)],
        n_parts: usize,
    ) -> (Vec<String>, Vec<Vec<u32>>) {
        use std::collections::HashMap;
        let mut labels: HashMap<&str, usize> = HashMap::new();
        let mut items: HashMap<&str, usize> = HashMap::new();
        for (i, l) in rows {
            let n = labels.len();
            labels.entry(l).or_insert(n);
            let n = items.len();
            items.entry(i).or_insert(n);
        }
        let w = labels.len();
        let mut parts = vec![vec![0u32; items.len() * w]; n_parts];
        for (r, (i, l)) in rows.iter().enumerate() {
            parts[r % n_parts][items[i.as_str()] * w + labels[l.as_str()]] += 1;
        }
        let mut names = vec![String::new(); w];
        for (l, c) in labels {
            names[c] = l.to_string();
        }
        (names, parts)
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_estimate() {
        let t = wikipedia();
        let s = Bootstrap {
            replicates: 500,
            seed: 42,
            confidence: 0.95,
        };
        let a = alpha_bootstrap(&t, &Distance::Nominal, s).unwrap().unwrap();
        let b = alpha_bootstrap(&t, &Distance::Nominal, s).unwrap().unwrap();
        assert_eq!(a, b);
        assert!(a.low < 0.691358 && 0.691358 < a.high, "{a:?}");
    }
}

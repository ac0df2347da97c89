//! Chance-corrected agreement beyond α: percent agreement, Fleiss' κ, Gwet's AC1/AC2 and
//! Cohen's κ, from the per-item label counts r_ik.
//!
//! p_a = mean over items with r_i ≥ 2 of Σ_k r_ik(r_ik − 1)/(r_i(r_i − 1)); π_k = mean over rated
//! items of r_ik/r_i; coefficient = (p_a − p_e)/(1 − p_e) with Fleiss p_e = Σ π_k² and Gwet
//! p_e = Σ π_k(1 − π_k)/(Q − 1), Q = size of the label domain. AC2 uses weighted counts
//! r*_ik = Σ_l w_kl·r_il in p_a and p_e = (Σ w)/(Q(Q − 1))·Σ π_k(1 − π_k).

use arbiter_core::rng::SeededRng;

use crate::alpha::{Bootstrap, Interval, alpha_from_coincidences, float_coincidences};
use crate::unit_sums::UnitSums;
use crate::util::percentile_interval;
use crate::{AlphaReport, Distance, Ratings, StatsError};

/// Multi-rater agreement coefficients; `None` where undefined (no item with two ratings, or a
/// chance agreement of 1).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MultiRater {
    /// Observed pairwise agreement p_a.
    pub percent_agreement: Option<f64>,
    /// Fleiss' κ.
    pub fleiss_kappa: Option<f64>,
    /// Gwet's AC1.
    pub gwet_ac1: Option<f64>,
    /// Items with at least two ratings.
    pub n_items_used: usize,
}

/// Weights of Gwet's AC2 over ordered labels (numeric values when all labels are numbers,
/// domain positions otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// w = 1 − |k − l| / (max − min).
    Linear,
    /// w = 1 − (k − l)² / (max − min)².
    Quadratic,
    /// w = [k = l] (AC2 then equals AC1).
    Identity,
}

fn coefficient(p_a: f64, p_e: f64) -> Option<f64> {
    (p_e < 1.0 && p_a.is_finite() && p_e.is_finite()).then(|| (p_a - p_e) / (1.0 - p_e))
}

/// Sums behind percent agreement, Fleiss' κ and Gwet's AC1, one item's label counts at a time.
struct MultiSums {
    pa_sum: f64,
    n2: usize,
    pi: Vec<f64>,
    n1: usize,
}

impl MultiSums {
    fn new(q: usize) -> Self {
        MultiSums {
            pa_sum: 0.0,
            n2: 0,
            pi: vec![0.0; q],
            n1: 0,
        }
    }

    /// Add one item's label counts.
    fn add(&mut self, row: &[f64]) {
        let r: f64 = row.iter().sum();
        if r >= 1.0 {
            self.n1 += 1;
            for (p, x) in self.pi.iter_mut().zip(row) {
                *p += x / r;
            }
        }
        if r >= 2.0 {
            self.n2 += 1;
            self.pa_sum += row.iter().map(|x| x * (x - 1.0)).sum::<f64>() / (r * (r - 1.0));
        }
    }

    fn finish(self) -> MultiRater {
        let MultiSums {
            pa_sum,
            n2,
            mut pi,
            n1,
        } = self;
        if n2 == 0 || n1 == 0 {
            return MultiRater {
                percent_agreement: None,
                fleiss_kappa: None,
                gwet_ac1: None,
                n_items_used: 0,
            };
        }
        let q = pi.len();
        pi.iter_mut().for_each(|x| *x /= n1 as f64);
        let p_a = pa_sum / n2 as f64;
        let fleiss_pe: f64 = pi.iter().map(|x| x * x).sum();
        let gwet_pe = if q > 1 {
            pi.iter().map(|x| x * (1.0 - x)).sum::<f64>() / (q - 1) as f64
        } else {
            1.0
        };
        MultiRater {
            percent_agreement: Some(p_a),
            fleiss_kappa: coefficient(p_a, fleiss_pe),
            gwet_ac1: coefficient(p_a, gwet_pe),
            n_items_used: n2,
        }
    }
}

/// Coefficients from an `n × q` count matrix (rows = items).
fn from_counts(counts: &[f64], q: usize, rows: impl Iterator<Item = usize> + Clone) -> MultiRater {
    let mut sums = MultiSums::new(q);
    for i in rows {
        sums.add(&counts[i * q..(i + 1) * q]);
    }
    sums.finish()
}

/// Percent agreement, Fleiss' κ and Gwet's AC1 over the whole table.
///
/// For domains of up to 64 labels the per-item terms are summed exactly by item size (see
/// `UnitSums`); otherwise rows in item order (a file grouped by item) are counted an item at a
/// time, which gives the same sums in the same order as the full count matrix without making
/// it.
pub fn multi_rater(ratings: &Ratings) -> MultiRater {
    match UnitSums::of(ratings) {
        Some(sums) => multi_rater_from(&sums, ratings.n_labels()),
        None => float_multi_rater(ratings),
    }
}

/// [`multi_rater`] in float sums, an item at a time.
pub(crate) fn float_multi_rater(ratings: &Ratings) -> MultiRater {
    let q = ratings.n_labels();
    let rows = ratings.rows();
    if !ratings.in_item_order() {
        let counts = ratings.item_label_counts();
        return from_counts(&counts, q, 0..ratings.n_items());
    }
    let mut sums = MultiSums::new(q);
    let mut row = vec![0.0; q];
    for run in rows.chunk_by(|a, b| a.item == b.item) {
        row.fill(0.0);
        for r in run {
            row[r.label as usize] += 1.0;
        }
        sums.add(&row);
    }
    sums.finish()
}

/// [`multi_rater`] from the sums of the units by size: the terms of items of one size m share
/// their divisor (m, or m(m − 1)), so each size adds one term.
fn multi_rater_from(sums: &UnitSums, q: usize) -> MultiRater {
    let mut acc = MultiSums::new(q);
    for size in sums.by_size() {
        let m = f64::from(size.m);
        acc.n1 += size.units as usize;
        for (p, &t) in acc.pi.iter_mut().zip(size.totals) {
            *p += t as f64 / m;
        }
        if size.m >= 2 {
            acc.n2 += size.units as usize;
            let same: u64 = (0..q).map(|k| size.pairs[k * q + k]).sum();
            acc.pa_sum += same as f64 / (m * (m - 1.0));
        }
    }
    acc.finish()
}

/// Krippendorff's α and [`multi_rater`]'s coefficients from one pass over the table's units
/// (two threads on a large table): what `arbiter agreement` reports.
pub fn alpha_and_multi_rater(
    ratings: &Ratings,
    distance: &Distance,
) -> Result<(AlphaReport, MultiRater), StatsError> {
    match UnitSums::of(ratings) {
        Some(sums) => Ok((
            alpha_from_coincidences(ratings, distance, sums.coincidences())?,
            multi_rater_from(&sums, ratings.n_labels()),
        )),
        None => {
            // The float sums: each takes about as long as the other, so side by side.
            let (alpha, multi) = std::thread::scope(|s| {
                let multi = s.spawn(|| float_multi_rater(ratings));
                let alpha = alpha_from_coincidences(ratings, distance, float_coincidences(ratings));
                (alpha, multi.join().expect("agreement thread panicked"))
            });
            Ok((alpha?, multi))
        }
    }
}

fn weight_matrix(ratings: &Ratings, weights: Weights) -> Vec<f64> {
    let q = ratings.n_labels();
    let positions: Vec<f64> = match ratings.domain().numeric() {
        Some(x) => x.to_vec(),
        None => (0..q).map(|i| i as f64).collect(),
    };
    let lo = positions.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = positions.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    let mut w = vec![0.0; q * q];
    for k in 0..q {
        for l in 0..q {
            w[k * q + l] = if k == l {
                1.0
            } else if span <= 0.0 {
                0.0
            } else {
                match weights {
                    Weights::Linear => 1.0 - (positions[k] - positions[l]).abs() / span,
                    Weights::Quadratic => 1.0 - ((positions[k] - positions[l]) / span).powi(2),
                    Weights::Identity => 0.0,
                }
            };
        }
    }
    w
}

fn ac2_from_counts(
    counts: &[f64],
    q: usize,
    w: &[f64],
    rows: impl Iterator<Item = usize>,
) -> Option<f64> {
    let mut pa_sum = 0.0;
    let mut n2 = 0usize;
    let mut n1 = 0usize;
    let mut pi = vec![0.0; q];
    let mut star = vec![0.0; q];
    for i in rows {
        let row = &counts[i * q..(i + 1) * q];
        let r: f64 = row.iter().sum();
        if r >= 1.0 {
            n1 += 1;
            for k in 0..q {
                pi[k] += row[k] / r;
            }
        }
        if r >= 2.0 {
            n2 += 1;
            for k in 0..q {
                star[k] = (0..q).map(|l| w[k * q + l] * row[l]).sum();
            }
            pa_sum += (0..q).map(|k| row[k] * (star[k] - 1.0)).sum::<f64>() / (r * (r - 1.0));
        }
    }
    if n2 == 0 || q < 2 {
        return None;
    }
    pi.iter_mut().for_each(|x| *x /= n1 as f64);
    let t_w: f64 = w.iter().sum();
    let p_e = t_w / (q * (q - 1)) as f64 * pi.iter().map(|x| x * (1.0 - x)).sum::<f64>();
    coefficient(pa_sum / n2 as f64, p_e)
}

/// Gwet's AC2 with the given weights.
pub fn gwet_ac2(ratings: &Ratings, weights: Weights) -> Option<f64> {
    let counts = ratings.item_label_counts();
    let w = weight_matrix(ratings, weights);
    ac2_from_counts(&counts, ratings.n_labels(), &w, 0..ratings.n_items())
}

/// Cohen's κ between two raters (indices) over the items both rated; a rater's first rating of
/// an item is used when there are several. `None` when they share no item or p_e = 1.
pub fn cohen_kappa(ratings: &Ratings, rater_a: usize, rater_b: usize) -> Option<f64> {
    let q = ratings.n_labels();
    let mut a = vec![None; ratings.n_items()];
    let mut b = vec![None; ratings.n_items()];
    for r in ratings.rows() {
        let slot = if r.rater as usize == rater_a {
            &mut a[r.item as usize]
        } else if r.rater as usize == rater_b {
            &mut b[r.item as usize]
        } else {
            continue;
        };
        if slot.is_none() {
            *slot = Some(r.label as usize);
        }
    }
    let mut n = 0.0;
    let mut agree = 0.0;
    let mut pa = vec![0.0; q];
    let mut pb = vec![0.0; q];
    for (x, y) in a.iter().zip(&b) {
        if let (Some(x), Some(y)) = (x, y) {
            n += 1.0;
            agree += f64::from(u8::from(x == y));
            pa[*x] += 1.0;
            pb[*y] += 1.0;
        }
    }
    if n == 0.0 {
        return None;
    }
    let p_e: f64 = pa.iter().zip(&pb).map(|(x, y)| x * y / (n * n)).sum();
    coefficient(agree / n, p_e)
}

/// Which multi-rater coefficient to bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coefficient {
    /// Percent agreement.
    PercentAgreement,
    /// Fleiss' κ.
    Fleiss,
    /// Gwet's AC1.
    Ac1,
    /// Gwet's AC2 with weights.
    Ac2(Weights),
}

/// Percentile bootstrap interval of a multi-rater coefficient, resampling items.
pub fn coefficient_bootstrap(
    ratings: &Ratings,
    coefficient: Coefficient,
    settings: Bootstrap,
) -> Result<Option<Interval>, StatsError> {
    settings.check()?;
    let counts = ratings.item_label_counts();
    let q = ratings.n_labels();
    let n = ratings.n_items();
    if n == 0 {
        return Ok(None);
    }
    let w = match coefficient {
        Coefficient::Ac2(weights) => weight_matrix(ratings, weights),
        _ => Vec::new(),
    };
    let mut rng = SeededRng::new(settings.seed);
    let mut sample = vec![0usize; n];
    let mut values = Vec::with_capacity(settings.replicates);
    for _ in 0..settings.replicates {
        sample.iter_mut().for_each(|s| *s = rng.below(n));
        let rows = sample.iter().copied();
        let v = match coefficient {
            Coefficient::Ac2(_) => ac2_from_counts(&counts, q, &w, rows),
            Coefficient::PercentAgreement => from_counts(&counts, q, rows).percent_agreement,
            Coefficient::Fleiss => from_counts(&counts, q, rows).fleiss_kappa,
            Coefficient::Ac1 => from_counts(&counts, q, rows).gwet_ac1,
        };
        if let Some(v) = v {
            values.push(v);
        }
    }
    Ok(percentile_interval(&mut values, settings.confidence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder, krippendorff_alpha};

    /// Gwet's 12 × 4 example (irrCAC `raw_4raters`), "." = missing.
    fn raw_4raters() -> Ratings {
        let units = [
            "a a . a", "b b c b", "c c c c", "c c c c", "b b b b", "a b c d", "d d d d", "a a b a",
            "b b b b", ". e e e", ". . a a", ". . c .",
        ];
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for (u, line) in units.iter().enumerate() {
            for (r, v) in line.split(' ').enumerate() {
                if v != "." {
                    b.push(&u.to_string(), &r.to_string(), v, &[]).unwrap();
                }
            }
        }
        b.build(DuplicatePolicy::KeepAll).unwrap()
    }

    #[test]
    fn gwet_book_example() {
        let t = raw_4raters();
        let m = multi_rater(&t);
        assert!((m.gwet_ac1.unwrap() - 0.77544).abs() < 5e-6, "{m:?}");
        assert!((m.fleiss_kappa.unwrap() - 0.76117).abs() < 5e-6, "{m:?}");
        let a = krippendorff_alpha(&t, &crate::Distance::Nominal).unwrap();
        assert!((a.alpha.value().unwrap() - 0.74342).abs() < 5e-6);
        assert_eq!(gwet_ac2(&t, Weights::Identity), m.gwet_ac1);
    }

    /// Item-ordered rows are counted an item at a time; the same ratings interleaved go
    /// through the count matrix. Both give the book's values.
    #[test]
    fn item_order_does_not_change_the_coefficients() {
        let grouped = raw_4raters();
        assert!(grouped.rows().windows(2).all(|w| w[0].item <= w[1].item));
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for pass in 0..2 {
            for (n, r) in grouped.rows().iter().enumerate() {
                if n % 2 == pass {
                    let label = &grouped.domain().values()[r.label as usize];
                    let (item, rater) = (r.item as usize, r.rater as usize);
                    b.push(&grouped.items()[item], &grouped.raters()[rater], label, &[])
                        .unwrap();
                }
            }
        }
        let interleaved = b.build(DuplicatePolicy::KeepAll).unwrap();
        assert!(
            !interleaved
                .rows()
                .windows(2)
                .all(|w| w[0].item <= w[1].item)
        );
        let (m, n) = (multi_rater(&grouped), multi_rater(&interleaved));
        for (a, b) in [
            (m.percent_agreement, n.percent_agreement),
            (m.fleiss_kappa, n.fleiss_kappa),
            (m.gwet_ac1, n.gwet_ac1),
        ] {
            assert!((a.unwrap() - b.unwrap()).abs() < 1e-12, "{a:?} vs {b:?}");
        }
        assert_eq!(m.n_items_used, n.n_items_used);
    }

    #[test]
    fn cohen_kappa_by_hand() {
        // 4 items: agree, agree, disagree, agree. p_o = 3/4; marginals A (y,y,n,n), B (y,y,y,n).
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
        for (i, x, y) in [
            ("1", "y", "y"),
            ("2", "y", "y"),
            ("3", "n", "y"),
            ("4", "n", "n"),
        ] {
            b.push(i, "A", x, &[]).unwrap();
            b.push(i, "B", y, &[]).unwrap();
        }
        let t = b.build(DuplicatePolicy::KeepAll).unwrap();
        // p_e = 0.5·0.25 + 0.5·0.75 = 0.5 → κ = 0.5.
        assert!((cohen_kappa(&t, 0, 1).unwrap() - 0.5).abs() < 1e-12);
        let ci = coefficient_bootstrap(&t, Coefficient::Fleiss, Bootstrap::default()).unwrap();
        assert!(ci.is_some());
    }
}

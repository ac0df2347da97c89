//! Rater-identity analysis: do raters from different groups (pools, demographics) label
//! differently?
//!
//! Groups come from a group column of the table. Statistics over *rows* (α within a group,
//! label rates, χ², Kruskal–Wallis, regression) use each row's own value; statistics over
//! *raters* (in-group agreement and its permutation test) use each rater's first non-missing
//! value ([`Ratings::rater_groups`]). Rows or raters with a missing group are left out and
//! counted.
//!
//! A rater's rows are not independent, so the χ² and Kruskal–Wallis p-values are optimistic;
//! prefer the permutation test and the clustered bootstrap intervals, which respect raters and
//! items.

use arbiter_core::rng::SeededRng;

use crate::alpha::{AlphaReport, Bootstrap, Interval};
use crate::special::chi2_sf;
use crate::util::percentile_interval;
use crate::{Distance, Ratings, StatsError, krippendorff_alpha};

/// α of every group's own rows, next to the pooled α.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupAlphas {
    /// α over all rows.
    pub pooled: AlphaReport,
    /// (group value, α over that group's rows), in the column's value order.
    pub within: Vec<(String, AlphaReport)>,
    /// Rows whose group is missing (included in `pooled` only).
    pub n_missing: usize,
}

/// α within each group of `column` and pooled.
pub fn group_alphas(
    ratings: &Ratings,
    column: &str,
    distance: &Distance,
) -> Result<GroupAlphas, StatsError> {
    let col = ratings.group(column)?;
    let pooled = krippendorff_alpha(ratings, distance)?;
    let mut within = Vec::new();
    for (g, name) in col.values.iter().enumerate() {
        let sub = ratings.filter_rows(|i| col.per_row[i] == Some(g as u32));
        within.push((name.clone(), krippendorff_alpha(&sub, distance)?));
    }
    Ok(GroupAlphas {
        pooled,
        within,
        n_missing: col.per_row.iter().filter(|g| g.is_none()).count(),
    })
}

/// In-group vs cross-group agreement of one group (GRASP-style).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InGroupAgreement {
    /// Group value.
    pub group: String,
    /// Raters in the group.
    pub n_raters: usize,
    /// Share of agreeing pairs among rating pairs (same item) with both raters in the group.
    pub a_in: Option<f64>,
    /// Share of agreeing pairs among pairs with one rater in the group and one outside.
    pub a_cross: Option<f64>,
    /// a_in / a_cross.
    pub ratio: Option<f64>,
    /// (1 + #{permuted ratio ≥ observed}) / (1 + B), shuffling group labels across raters.
    pub p_value: Option<f64>,
}

/// Pair counts per group: (agreeing in, total in, agreeing cross, total cross).
fn pair_counts(
    item_rows: &[Vec<(u32, u32)>],
    rater_group: &[Option<u32>],
    n_groups: usize,
    k: usize,
    counts: &mut Vec<f64>,
) -> Vec<[f64; 4]> {
    let mut out = vec![[0.0; 4]; n_groups];
    counts.resize(n_groups * k, 0.0);
    for rows in item_rows {
        counts.iter_mut().for_each(|c| *c = 0.0);
        for &(rater, label) in rows {
            if let Some(g) = rater_group[rater as usize] {
                counts[g as usize * k + label as usize] += 1.0;
            }
        }
        let mut label_tot = vec![0.0; k];
        let mut n_all = 0.0;
        for g in 0..n_groups {
            for c in 0..k {
                label_tot[c] += counts[g * k + c];
                n_all += counts[g * k + c];
            }
        }
        for (g, o) in out.iter_mut().enumerate() {
            let row = &counts[g * k..(g + 1) * k];
            let n_g: f64 = row.iter().sum();
            if n_g == 0.0 {
                continue;
            }
            o[0] += row.iter().map(|x| x * (x - 1.0) / 2.0).sum::<f64>();
            o[1] += n_g * (n_g - 1.0) / 2.0;
            o[2] += row
                .iter()
                .zip(&label_tot)
                .map(|(x, t)| x * (t - x))
                .sum::<f64>();
            o[3] += n_g * (n_all - n_g);
        }
    }
    out
}

fn ratio_of(c: [f64; 4]) -> (Option<f64>, Option<f64>, Option<f64>) {
    let a_in = (c[1] > 0.0).then(|| c[0] / c[1]);
    let a_cross = (c[3] > 0.0).then(|| c[2] / c[3]);
    let ratio = match (a_in, a_cross) {
        (Some(i), Some(x)) if x > 0.0 => Some(i / x),
        _ => None,
    };
    (a_in, a_cross, ratio)
}

/// In-group vs cross-group agreement for every group of `column`, with a permutation p-value
/// from `permutations` shuffles of the raters' group labels (group sizes kept).
pub fn in_group_agreement(
    ratings: &Ratings,
    column: &str,
    permutations: usize,
    seed: u64,
) -> Result<Vec<InGroupAgreement>, StatsError> {
    let col = ratings.group(column)?;
    let n_groups = col.values.len();
    let k = ratings.n_labels();
    let rater_group = ratings.rater_groups(column)?;
    let mut item_rows: Vec<Vec<(u32, u32)>> = vec![Vec::new(); ratings.n_items()];
    for r in ratings.rows() {
        item_rows[r.item as usize].push((r.rater, r.label));
    }
    let mut scratch = Vec::new();
    let observed = pair_counts(&item_rows, &rater_group, n_groups, k, &mut scratch);
    let mut exceed = vec![0usize; n_groups];
    let mut valid = vec![0usize; n_groups];
    let members: Vec<usize> = (0..rater_group.len())
        .filter(|&r| rater_group[r].is_some())
        .collect();
    let mut labels: Vec<Option<u32>> = members.iter().map(|&r| rater_group[r]).collect();
    let mut permuted = rater_group.clone();
    let mut rng = SeededRng::new(seed);
    for _ in 0..permutations {
        rng.shuffle(&mut labels);
        for (&r, g) in members.iter().zip(&labels) {
            permuted[r] = *g;
        }
        let counts = pair_counts(&item_rows, &permuted, n_groups, k, &mut scratch);
        for g in 0..n_groups {
            let (Some(obs), Some(perm)) = (ratio_of(observed[g]).2, ratio_of(counts[g]).2) else {
                continue;
            };
            valid[g] += 1;
            if perm >= obs {
                exceed[g] += 1;
            }
        }
    }
    Ok((0..n_groups)
        .map(|g| {
            let (a_in, a_cross, ratio) = ratio_of(observed[g]);
            InGroupAgreement {
                group: col.values[g].clone(),
                n_raters: rater_group.iter().filter(|x| **x == Some(g as u32)).count(),
                a_in,
                a_cross,
                ratio,
                p_value: (ratio.is_some() && permutations > 0)
                    .then(|| (1.0 + exceed[g] as f64) / (1.0 + valid[g] as f64)),
            }
        })
        .collect())
}

/// Share of one label among a group's ratings, with an item-clustered bootstrap interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LabelRate {
    /// Group value.
    pub group: String,
    /// Label.
    pub label: String,
    /// Ratings of the group.
    pub n: usize,
    /// Share of the group's ratings with this label.
    pub rate: f64,
    /// Percentile interval from resampling items.
    pub interval: Option<Interval>,
}

/// Per-item counts by (group, label), items × groups × labels.
fn item_group_counts(ratings: &Ratings, per_row: &[Option<u32>], n_groups: usize) -> Vec<f64> {
    let k = ratings.n_labels();
    let mut counts = vec![0.0; ratings.n_items() * n_groups * k];
    for (r, g) in ratings.rows().iter().zip(per_row) {
        if let Some(g) = g {
            counts[(r.item as usize * n_groups + *g as usize) * k + r.label as usize] += 1.0;
        }
    }
    counts
}

/// Label rates per group with item-clustered bootstrap intervals.
pub fn label_rates(
    ratings: &Ratings,
    column: &str,
    settings: Bootstrap,
) -> Result<Vec<LabelRate>, StatsError> {
    settings.check()?;
    let col = ratings.group(column)?;
    let (n_groups, k, n_items) = (col.values.len(), ratings.n_labels(), ratings.n_items());
    let counts = item_group_counts(ratings, &col.per_row, n_groups);
    let totals = |sample: &mut dyn Iterator<Item = usize>| {
        let mut t = vec![0.0; n_groups * k];
        for i in sample {
            for (dst, x) in t
                .iter_mut()
                .zip(&counts[i * n_groups * k..(i + 1) * n_groups * k])
            {
                *dst += x;
            }
        }
        t
    };
    let observed = totals(&mut (0..n_items));
    let mut reps: Vec<Vec<f64>> = vec![Vec::new(); n_groups * k];
    let mut rng = SeededRng::new(settings.seed);
    if n_items > 0 {
        for _ in 0..settings.replicates {
            let t = totals(&mut (0..n_items).map(|_| rng.below(n_items)));
            for g in 0..n_groups {
                let n: f64 = t[g * k..(g + 1) * k].iter().sum();
                if n > 0.0 {
                    for c in 0..k {
                        reps[g * k + c].push(t[g * k + c] / n);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for g in 0..n_groups {
        let n: f64 = observed[g * k..(g + 1) * k].iter().sum();
        for c in 0..k {
            out.push(LabelRate {
                group: col.values[g].clone(),
                label: ratings.domain().values()[c].clone(),
                n: n as usize,
                rate: if n > 0.0 {
                    observed[g * k + c] / n
                } else {
                    0.0
                },
                interval: percentile_interval(&mut reps[g * k + c], settings.confidence),
            });
        }
    }
    Ok(out)
}

/// Mean label of one group on an ordered scale, with a rater-clustered bootstrap interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupMean {
    /// Group value.
    pub group: String,
    /// Ratings of the group.
    pub n: usize,
    /// Raters with ratings in the group.
    pub n_raters: usize,
    /// Mean label score (`None` without ratings).
    pub mean: Option<f64>,
    /// Percentile interval from resampling raters (a rater's ratings are not independent).
    pub interval: Option<Interval>,
}

/// The score of each label in [`label_means`]: its number when every label is one, else its
/// 1-based position in the domain order. The second value says which.
pub fn label_scores(ratings: &Ratings) -> (Vec<f64>, &'static str) {
    match ratings.domain().numeric() {
        Some(values) => (values.to_vec(), "label value"),
        None => (
            (1..=ratings.n_labels()).map(|k| k as f64).collect(),
            "label rank in the domain order (1 = first)",
        ),
    }
}

/// Mean label score per group of `column` (see [`label_scores`]), with percentile intervals
/// from resampling raters, in the column's value order. Rows without a group are left out.
pub fn label_means(
    ratings: &Ratings,
    column: &str,
    settings: Bootstrap,
) -> Result<Vec<GroupMean>, StatsError> {
    settings.check()?;
    let col = ratings.group(column)?;
    let (scores, _) = label_scores(ratings);
    let (n_groups, n_raters) = (col.values.len(), ratings.n_raters());
    // Per (rater, group): sum of scores and count of ratings.
    let mut sums = vec![(0.0, 0.0); n_raters * n_groups];
    for (r, g) in ratings.rows().iter().zip(&col.per_row) {
        if let Some(g) = g {
            let cell = &mut sums[r.rater as usize * n_groups + *g as usize];
            cell.0 += scores[r.label as usize];
            cell.1 += 1.0;
        }
    }
    let means = |weight: &dyn Fn(usize) -> f64| -> Vec<Option<f64>> {
        let mut t = vec![(0.0, 0.0); n_groups];
        for r in 0..n_raters {
            let w = weight(r);
            if w == 0.0 {
                continue;
            }
            for (dst, src) in t.iter_mut().zip(&sums[r * n_groups..(r + 1) * n_groups]) {
                dst.0 += w * src.0;
                dst.1 += w * src.1;
            }
        }
        t.iter().map(|&(s, n)| (n > 0.0).then(|| s / n)).collect()
    };
    let observed = means(&|_| 1.0);
    let mut reps: Vec<Vec<f64>> = vec![Vec::new(); n_groups];
    let mut rng = SeededRng::new(settings.seed);
    if n_raters > 0 {
        let mut w = vec![0.0; n_raters];
        for _ in 0..settings.replicates {
            w.iter_mut().for_each(|x| *x = 0.0);
            for _ in 0..n_raters {
                w[rng.below(n_raters)] += 1.0;
            }
            for (dst, m) in reps.iter_mut().zip(means(&|r| w[r])) {
                if let Some(m) = m {
                    dst.push(m);
                }
            }
        }
    }
    Ok((0..n_groups)
        .map(|g| {
            let cells = (0..n_raters).map(|r| sums[r * n_groups + g].1);
            GroupMean {
                group: col.values[g].clone(),
                n: cells.clone().sum::<f64>() as usize,
                n_raters: cells.filter(|&n| n > 0.0).count(),
                mean: observed[g],
                interval: percentile_interval(&mut reps[g], settings.confidence),
            }
        })
        .collect())
}

/// Result of a χ² or Kruskal–Wallis test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TestResult {
    /// Test statistic.
    pub statistic: f64,
    /// Degrees of freedom.
    pub df: f64,
    /// Asymptotic p-value (treats rows as independent; see the module docs).
    pub p_value: f64,
}

/// Pearson χ² test of independence of group and label, over rows with a group. Empty rows and
/// columns of the table are dropped before counting degrees of freedom. `None` when fewer than
/// two groups or labels remain.
pub fn chi_square(ratings: &Ratings, column: &str) -> Result<Option<TestResult>, StatsError> {
    let col = ratings.group(column)?;
    let (g_n, k) = (col.values.len(), ratings.n_labels());
    let mut table = vec![0.0; g_n * k];
    for (r, g) in ratings.rows().iter().zip(&col.per_row) {
        if let Some(g) = g {
            table[*g as usize * k + r.label as usize] += 1.0;
        }
    }
    let row_tot: Vec<f64> = (0..g_n)
        .map(|g| table[g * k..(g + 1) * k].iter().sum())
        .collect();
    let col_tot: Vec<f64> = (0..k)
        .map(|c| (0..g_n).map(|g| table[g * k + c]).sum())
        .collect();
    let n: f64 = row_tot.iter().sum();
    let rows: Vec<usize> = (0..g_n).filter(|&g| row_tot[g] > 0.0).collect();
    let cols: Vec<usize> = (0..k).filter(|&c| col_tot[c] > 0.0).collect();
    if rows.len() < 2 || cols.len() < 2 {
        return Ok(None);
    }
    let mut stat = 0.0;
    for &g in &rows {
        for &c in &cols {
            let e = row_tot[g] * col_tot[c] / n;
            stat += (table[g * k + c] - e).powi(2) / e;
        }
    }
    let df = ((rows.len() - 1) * (cols.len() - 1)) as f64;
    Ok(Some(TestResult {
        statistic: stat,
        df,
        p_value: chi2_sf(stat, df),
    }))
}

/// Kruskal–Wallis H test of ordinal labels across groups (label values: numeric when every
/// label is a number, else domain positions), with the tie correction. `None` with fewer than
/// two non-empty groups or when all values are tied.
pub fn kruskal_wallis(ratings: &Ratings, column: &str) -> Result<Option<TestResult>, StatsError> {
    let col = ratings.group(column)?;
    let values: Vec<f64> = match ratings.domain().numeric() {
        Some(x) => x.to_vec(),
        None => (0..ratings.n_labels()).map(|i| i as f64).collect(),
    };
    let mut obs: Vec<(f64, u32)> = ratings
        .rows()
        .iter()
        .zip(&col.per_row)
        .filter_map(|(r, g)| g.map(|g| (values[r.label as usize], g)))
        .collect();
    obs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = obs.len() as f64;
    let mut rank_sum = vec![0.0; col.values.len()];
    let mut size = vec![0.0; col.values.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < obs.len() {
        let mut j = i;
        while j < obs.len() && obs[j].0 == obs[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        ties += t * t * t - t;
        let rank = (i + j + 1) as f64 / 2.0;
        for o in &obs[i..j] {
            rank_sum[o.1 as usize] += rank;
            size[o.1 as usize] += 1.0;
        }
        i = j;
    }
    let groups = size.iter().filter(|s| **s > 0.0).count();
    let correction = 1.0 - ties / (n * n * n - n);
    if groups < 2 || correction <= 0.0 {
        return Ok(None);
    }
    let h = 12.0 / (n * (n + 1.0))
        * rank_sum
            .iter()
            .zip(&size)
            .filter(|(_, s)| **s > 0.0)
            .map(|(r, s)| r * r / s)
            .sum::<f64>()
        - 3.0 * (n + 1.0);
    let h = h / correction;
    let df = (groups - 1) as f64;
    Ok(Some(TestResult {
        statistic: h,
        df,
        p_value: chi2_sf(h, df),
    }))
}

/// One coefficient of the logistic regression.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Coefficient {
    /// `intercept (reference: GROUP)`, naming the reference group, or the group value.
    pub term: String,
    /// Log-odds (difference to the reference group for group terms).
    pub estimate: f64,
    /// Percentile interval from resampling raters.
    pub rater_clustered: Option<Interval>,
    /// Percentile interval from resampling items.
    pub item_clustered: Option<Interval>,
}

/// (rater, item, group, label == positive) of a row with a group.
type UsableRow = (u32, u32, u32, bool);

/// Logistic regression of `label == positive` on the group (one-hot, first group with rows =
/// reference). With a single categorical predictor the maximum-likelihood fit is closed-form
/// (see `fit_group_logit`); a 1e-6 pseudo-count keeps separated groups finite. Intervals come
/// from cluster bootstraps over raters and over items; a mixed model with both random effects
/// (`label ~ group + (1|rater) + (1|item)`) is the principled alternative and is not done here.
pub fn logistic_by_group(
    ratings: &Ratings,
    column: &str,
    positive: &str,
    settings: Bootstrap,
) -> Result<Vec<Coefficient>, StatsError> {
    settings.check()?;
    let col = ratings.group(column)?;
    let pos = ratings
        .domain()
        .index_of(positive)
        .ok_or_else(|| StatsError::UnknownLabel {
            label: positive.to_string(),
            domain: ratings.domain().values().to_vec(),
        })? as u32;
    // Rows usable: group present. Sufficient statistics: per (cluster, group) positives/totals.
    let rows: Vec<UsableRow> = ratings
        .rows()
        .iter()
        .zip(&col.per_row)
        .filter_map(|(r, g)| g.map(|g| (r.rater, r.item, g, r.label == pos)))
        .collect();
    let n_groups = col.values.len();
    let mut present = vec![false; n_groups];
    rows.iter().for_each(|r| present[r.2 as usize] = true);
    let groups: Vec<usize> = (0..n_groups).filter(|&g| present[g]).collect();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let fit = |pos_n: &[(f64, f64)]| -> Vec<f64> { fit_group_logit(pos_n) };
    let tally = |weights: &dyn Fn(&UsableRow) -> f64| -> Vec<(f64, f64)> {
        let mut t = vec![(0.0, 0.0); groups.len()];
        for r in &rows {
            let w = weights(r);
            if w == 0.0 {
                continue;
            }
            let gi = groups.iter().position(|&g| g == r.2 as usize).unwrap_or(0);
            t[gi].1 += w;
            if r.3 {
                t[gi].0 += w;
            }
        }
        t
    };
    let estimate = fit(&tally(&|_| 1.0));
    let mut rng = SeededRng::new(settings.seed);
    let mut boot = |n_clusters: usize, key: fn(&UsableRow) -> usize| -> Vec<Option<Interval>> {
        let mut reps: Vec<Vec<f64>> = vec![Vec::new(); groups.len()];
        if n_clusters == 0 {
            return vec![None; groups.len()];
        }
        let mut w = vec![0.0; n_clusters];
        for _ in 0..settings.replicates {
            w.iter_mut().for_each(|x| *x = 0.0);
            for _ in 0..n_clusters {
                w[rng.below(n_clusters)] += 1.0;
            }
            let t = tally(&|r| w[key(r)]);
            if t.iter().all(|(_, n)| *n > 0.0) {
                for (dst, v) in reps.iter_mut().zip(fit(&t)) {
                    dst.push(v);
                }
            }
        }
        reps.iter_mut()
            .map(|r| percentile_interval(r, settings.confidence))
            .collect()
    };
    let by_rater = boot(ratings.n_raters(), |r| r.0 as usize);
    let by_item = boot(ratings.n_items(), |r| r.1 as usize);
    Ok(groups
        .iter()
        .enumerate()
        .map(|(i, &g)| Coefficient {
            term: if i == 0 {
                format!("intercept (reference: {})", col.values[g])
            } else {
                col.values[g].clone()
            },
            estimate: estimate[i],
            rater_clustered: by_rater[i],
            item_clustered: by_item[i],
        })
        .collect())
}

/// The logit MLE for one categorical predictor: intercept = log-odds of the reference group,
/// each group term = its log-odds minus the reference's (what IRLS converges to).
fn fit_group_logit(pos_n: &[(f64, f64)]) -> Vec<f64> {
    let logit = |(p, n): (f64, f64)| ((p + 1e-6) / (n - p + 1e-6)).ln();
    let base = logit(pos_n[0]);
    std::iter::once(base)
        .chain(pos_n[1..].iter().map(|&x| logit(x) - base))
        .collect()
}

/// An item whose label distribution differs most between groups.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DividingItem {
    /// Item name.
    pub item: String,
    /// Largest total-variation distance between two groups' label distributions on the item.
    pub divergence: f64,
    /// The two groups that differ most.
    pub groups: (String, String),
    /// Label distribution per group that rated the item: (group, shares in domain order).
    pub distributions: Vec<(String, Vec<f64>)>,
}

/// Items ranked by the largest total-variation distance between any two groups' label
/// distributions (groups need at least `min_per_group` ratings on the item). Ties keep item
/// order. Returns the top `limit`.
pub fn most_dividing_items(
    ratings: &Ratings,
    column: &str,
    min_per_group: usize,
    limit: usize,
) -> Result<Vec<DividingItem>, StatsError> {
    let col = ratings.group(column)?;
    let (n_groups, k) = (col.values.len(), ratings.n_labels());
    let counts = item_group_counts(ratings, &col.per_row, n_groups);
    let mut out = Vec::new();
    for item in 0..ratings.n_items() {
        let block = &counts[item * n_groups * k..(item + 1) * n_groups * k];
        let dists: Vec<(usize, Vec<f64>)> = (0..n_groups)
            .filter_map(|g| {
                let row = &block[g * k..(g + 1) * k];
                let n: f64 = row.iter().sum();
                (n >= min_per_group.max(1) as f64).then(|| (g, row.iter().map(|x| x / n).collect()))
            })
            .collect();
        let mut best: Option<(f64, usize, usize)> = None;
        for a in 0..dists.len() {
            for b in a + 1..dists.len() {
                let tv = 0.5
                    * dists[a]
                        .1
                        .iter()
                        .zip(&dists[b].1)
                        .map(|(x, y)| (x - y).abs())
                        .sum::<f64>();
                if best.is_none_or(|(d, _, _)| tv > d) {
                    best = Some((tv, dists[a].0, dists[b].0));
                }
            }
        }
        if let Some((d, a, b)) = best {
            out.push(DividingItem {
                item: ratings.items()[item].to_string(),
                divergence: d,
                groups: (col.values[a].clone(), col.values[b].clone()),
                distributions: dists
                    .into_iter()
                    .map(|(g, v)| (col.values[g].clone(), v))
                    .collect(),
            });
        }
    }
    out.sort_by(|a, b| b.divergence.total_cmp(&a.divergence));
    out.truncate(limit);
    Ok(out)
}

/// Soft labels of one item: the share of each label, overall and per group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SoftLabel {
    /// Item name.
    pub item: String,
    /// Number of ratings.
    pub n: usize,
    /// Shares in domain order.
    pub overall: Vec<f64>,
    /// Per group value (only groups with ratings on the item): shares in domain order.
    pub by_group: Vec<(String, Vec<f64>)>,
}

/// Soft labels for every rated item; `column` = `None` gives overall distributions only.
pub fn soft_labels(ratings: &Ratings, column: Option<&str>) -> Result<Vec<SoftLabel>, StatsError> {
    let k = ratings.n_labels();
    let overall = ratings.item_label_counts();
    let by_group = match column {
        Some(c) => {
            let col = ratings.group(c)?;
            Some((
                col,
                item_group_counts(ratings, &col.per_row, col.values.len()),
            ))
        }
        None => None,
    };
    let norm = |row: &[f64]| {
        let n: f64 = row.iter().sum();
        row.iter().map(|x| x / n).collect::<Vec<f64>>()
    };
    let mut out = Vec::new();
    for item in 0..ratings.n_items() {
        let row = &overall[item * k..(item + 1) * k];
        let n: f64 = row.iter().sum();
        if n == 0.0 {
            continue;
        }
        let groups = match &by_group {
            Some((col, counts)) => {
                let g_n = col.values.len();
                (0..g_n)
                    .filter_map(|g| {
                        let r = &counts[(item * g_n + g) * k..(item * g_n + g + 1) * k];
                        (r.iter().sum::<f64>() > 0.0).then(|| (col.values[g].clone(), norm(r)))
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        out.push(SoftLabel {
            item: ratings.items()[item].to_string(),
            n: n as usize,
            overall: norm(row),
            by_group: groups,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};

    /// Two pools: "a" raters always say 1, "b" raters always 0, on the same 20 items.
    fn split_table() -> Ratings {
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec!["pool".into()]);
        for item in 0..20 {
            for r in 0..3 {
                b.push(&item.to_string(), &format!("a{r}"), "1", &[Some("a")])
                    .unwrap();
                b.push(&item.to_string(), &format!("b{r}"), "0", &[Some("b")])
                    .unwrap();
            }
        }
        b.build(DuplicatePolicy::KeepAll).unwrap()
    }

    #[test]
    fn label_means_per_group_with_rater_intervals() {
        let t = split_table();
        let settings = Bootstrap {
            replicates: 200,
            seed: 3,
            confidence: 0.95,
        };
        let means = label_means(&t, "pool", settings).unwrap();
        assert_eq!(means.len(), 2);
        assert_eq!((means[0].group.as_str(), means[0].mean), ("a", Some(1.0)));
        assert_eq!((means[1].group.as_str(), means[1].mean), ("b", Some(0.0)));
        assert_eq!((means[0].n, means[0].n_raters), (60, 3));
        let ci = means[0].interval.unwrap();
        assert_eq!((ci.low, ci.high), (1.0, 1.0));
        assert_eq!(label_scores(&t).1, "label value");
    }

    #[test]
    fn perfectly_split_pools() {
        let t = split_table();
        let ga = group_alphas(&t, "pool", &Distance::Nominal).unwrap();
        assert!(ga.pooled.alpha.value().unwrap() < 0.0);
        assert!(
            ga.within.iter().all(|(_, a)| a.alpha.value().is_none()),
            "single value → undefined"
        );
        let ig = in_group_agreement(&t, "pool", 199, 1).unwrap();
        assert_eq!(ig[0].a_in, Some(1.0));
        assert_eq!(ig[0].a_cross, Some(0.0));
        assert_eq!(ig[0].ratio, None);
        let chi = chi_square(&t, "pool").unwrap().unwrap();
        assert!(
            (chi.statistic - 120.0).abs() < 1e-9 && chi.p_value < 1e-20,
            "{chi:?}"
        );
        let kw = kruskal_wallis(&t, "pool").unwrap().unwrap();
        assert!(kw.p_value < 1e-20);
        let top = most_dividing_items(&t, "pool", 1, 3).unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].divergence, 1.0);
        let coef = logistic_by_group(
            &t,
            "pool",
            "1",
            Bootstrap {
                replicates: 50,
                seed: 3,
                confidence: 0.9,
            },
        )
        .unwrap();
        assert!(
            coef[0].estimate > 10.0 && coef[1].estimate < -20.0,
            "{coef:?}"
        );
    }

    #[test]
    fn permutation_p_value_detects_in_group_agreement() {
        // Pool a agrees internally on random labels; pool b answers independently. With 8 + 8
        // raters there are 12,870 splits, so a p-value of 1/200 is reachable.
        let mut rng = SeededRng::new(5);
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec!["pool".into()]);
        for item in 0..60 {
            let shared = rng.below(3);
            for r in 0..8 {
                b.push(
                    &item.to_string(),
                    &format!("a{r}"),
                    &shared.to_string(),
                    &[Some("a")],
                )
                .unwrap();
                let own = rng.below(3);
                b.push(
                    &item.to_string(),
                    &format!("b{r}"),
                    &own.to_string(),
                    &[Some("b")],
                )
                .unwrap();
            }
        }
        let t = b.build(DuplicatePolicy::KeepAll).unwrap();
        let ig = in_group_agreement(&t, "pool", 199, 9).unwrap();
        assert!(ig[0].ratio.unwrap() > 1.5, "{ig:?}");
        assert!(ig[0].p_value.unwrap() <= 0.01, "{ig:?}");
        assert!(ig[1].p_value.unwrap() > 0.05, "{ig:?}");
        let rates = label_rates(
            &t,
            "pool",
            Bootstrap {
                replicates: 200,
                seed: 1,
                confidence: 0.95,
            },
        )
        .unwrap();
        for r in &rates {
            let i = r.interval.unwrap();
            assert!(i.low <= r.rate && r.rate <= i.high, "{r:?}");
        }
        let soft = soft_labels(&t, Some("pool")).unwrap();
        assert_eq!(soft.len(), 60);
        assert!((soft[0].overall.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}

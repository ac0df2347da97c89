//! The `arbiter disagreement` report: do raters of different groups label differently?
//!
//! Groups under `min_group_raters` are left out of every per-group statistic (and named), a
//! numeric column can be binned ([`Bins`]), group values read in natural order, ordered scales
//! get per-group mean labels, and the most dividing items show their text when there is one.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use arbiter_report::{Page, Table, fmt_opt, svg};
use serde::Serialize;
use serde_json::{Value, json};

use super::{PlotRow, alpha_json, ci_text, interval_json, interval_plot, truncate_text};
use crate::bins::{Binning, Bins, bin_group};
use crate::groups::{
    self, Coefficient, DividingItem, GroupMean, InGroupAgreement, LabelRate, SoftLabel, TestResult,
};
use crate::natural::natural_cmp;
use crate::{AlphaReport, Bootstrap, Distance, Interval, Ratings, StatsError, alpha_bootstrap};

/// Characters of item text shown in the most-dividing table.
const TEXT_CHARS: usize = 80;

/// What to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct DisagreementSettings {
    /// The group column compared.
    pub column: String,
    /// Level of measurement of α (ordinal, interval and ratio also get mean labels).
    pub distance: Distance,
    /// Label counted as positive in the logistic regression (default: the last label).
    pub positive: Option<String>,
    /// Bootstrap replicates and permutations (≥ 1).
    pub bootstrap: usize,
    /// Seed of bootstraps and permutations.
    pub seed: u64,
    /// Most-dividing items to list.
    pub top: usize,
    /// Groups with fewer raters are left out of every per-group statistic (≥ 5).
    pub min_group_raters: usize,
    /// Bin the (numeric) group column first.
    pub bins: Option<Bins>,
    /// A group column of the table holding item text (shown, never analysed).
    pub text_column: Option<String>,
    /// Input rows the reader skipped (reported, not used).
    pub n_skipped_rows: usize,
}

/// α of one group with its bootstrap interval over items.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAlpha {
    /// Group value.
    pub group: String,
    /// α over the group's rows.
    pub alpha: AlphaReport,
    /// 95% interval over items.
    pub ci95: Option<Interval>,
}

/// A most-dividing item, with its text when the table has a text column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DividingRow {
    /// The item and its distributions.
    #[serde(flatten)]
    pub item: DividingItem,
    /// The item's text (the first non-empty one of its rows), whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Mean label per group on an ordered scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelMeans {
    /// What is averaged: the label value, or its rank in the domain order.
    pub scale: &'static str,
    /// Lowest and highest label score: the plot's axis spans the whole scale.
    pub range: (f64, f64),
    /// One row per group, in group order.
    pub groups: Vec<GroupMean>,
}

/// Everything the disagreement report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct DisagreementReport {
    /// The group column.
    pub column: String,
    /// The minimum group size used.
    pub min_group_raters: usize,
    /// Groups left out, with their rater counts.
    pub groups_left_out: Vec<(String, usize)>,
    /// Level name.
    pub level: &'static str,
    /// Bootstrap replicates / permutations.
    pub bootstrap: usize,
    /// Seed.
    pub seed: u64,
    /// (items, raters, ratings) of the whole table.
    pub n_all: (usize, usize, usize),
    /// (items, raters, ratings) without the left-out groups' rows.
    pub n_kept: (usize, usize, usize),
    /// Rows the reader skipped.
    pub n_skipped_rows: usize,
    /// Labels in domain order.
    pub labels: Vec<String>,
    /// How the column was binned, when it was.
    pub binning: Option<Binning>,
    /// Group values in report order (natural, or bin order).
    pub group_order: Vec<String>,
    /// α over all rows (small groups included).
    pub pooled: AlphaReport,
    /// Its 95% interval over items.
    pub pooled_ci95: Option<Interval>,
    /// α within each kept group.
    pub within: Vec<GroupAlpha>,
    /// Rows without a group value.
    pub n_rows_missing_group: usize,
    /// In-group vs cross-group agreement.
    pub in_group: Vec<InGroupAgreement>,
    /// Label rates per group.
    pub label_rates: Vec<LabelRate>,
    /// Mean label per group, for ordinal, interval and ratio levels.
    pub means: Option<LabelMeans>,
    /// χ² of group × label.
    pub chi_square: Option<TestResult>,
    /// Kruskal–Wallis (ordered levels only).
    pub kruskal_wallis: Option<TestResult>,
    /// The label modelled in the logistic regression.
    pub positive: String,
    /// Its coefficients.
    pub logistic: Vec<Coefficient>,
    /// Groups whose ratings are all or none the positive label (no finite log-odds).
    pub separated: Vec<String>,
    /// Most dividing items.
    pub dividing: Vec<DividingRow>,
    /// Whether the table had a text column (the dividing table then shows text).
    pub has_text: bool,
    /// Soft labels per item (per group when any group is kept).
    pub soft_labels: Vec<SoftLabel>,
}

fn invalid(name: &'static str, message: &str) -> StatsError {
    StatsError::InvalidParameter {
        name,
        message: message.to_string(),
    }
}

/// The column's values in natural order (the table otherwise keeps first appearance).
fn naturally_sorted(ratings: &Ratings, column: &str) -> Result<Ratings, StatsError> {
    let col = ratings.group(column)?;
    let mut order: Vec<usize> = (0..col.values.len()).collect();
    order.sort_by(|&a, &b| natural_cmp(&col.values[a], &col.values[b]));
    let mut new_index = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new as u32;
    }
    let values = order.iter().map(|&i| col.values[i].clone()).collect();
    ratings.regroup(column, values, |v| new_index.get(v as usize).copied())
}

/// The text of each item: the first non-empty value of its rows in `text`.
fn item_texts(ratings: &Ratings, text: &crate::GroupColumn) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = vec![None; ratings.n_items()];
    for (r, v) in ratings.rows().iter().zip(&text.per_row) {
        let slot = &mut out[r.item as usize];
        if slot.is_none() {
            *slot = v.map(|v| text.values[v as usize].clone());
        }
    }
    out
}

/// Build the disagreement report of `ratings` over `settings.column`.
pub fn disagreement_report(
    ratings: &Ratings,
    settings: &DisagreementSettings,
) -> Result<DisagreementReport, StatsError> {
    if settings.min_group_raters < 5 {
        return Err(invalid("min_group_raters", "must be at least 5"));
    }
    if settings.bootstrap == 0 {
        return Err(invalid("bootstrap", "must be at least 1"));
    }
    let column = settings.column.as_str();
    if settings.text_column.as_deref() == Some(column) {
        return Err(invalid(
            "text_column",
            "the text column cannot be the group column",
        ));
    }
    let (without_text, texts) = match &settings.text_column {
        Some(name) => {
            let (t, col) = ratings.without_group(name)?;
            let texts = item_texts(&t, &col);
            (Cow::Owned(t), Some(texts))
        }
        None => (Cow::Borrowed(ratings), None),
    };
    let (full, binning) = match &settings.bins {
        Some(bins) => {
            let (t, b) = bin_group(&without_text, column, bins)?;
            (t, Some(b))
        }
        None => (naturally_sorted(&without_text, column)?, None),
    };
    let full = &full;
    // Groups under the minimum are left out of every per-group statistic.
    let (small, t_kept) = {
        let col = full.group(column)?;
        let mut raters: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); col.values.len()];
        for (i, g) in col.per_row.iter().enumerate() {
            if let Some(g) = g {
                raters[*g as usize].insert(full.rows()[i].rater);
            }
        }
        let small: Vec<(String, usize)> = col
            .values
            .iter()
            .zip(&raters)
            .filter(|(_, r)| !r.is_empty() && r.len() < settings.min_group_raters)
            .map(|(v, r)| (v.clone(), r.len()))
            .collect();
        let kept = full.filter_rows(|i| {
            col.per_row[i].is_none_or(|g| raters[g as usize].len() >= settings.min_group_raters)
        });
        (small, kept)
    };
    let t = &t_kept;
    let distance = &settings.distance;
    let boot = Bootstrap {
        replicates: settings.bootstrap,
        seed: settings.seed,
        confidence: 0.95,
    };
    let is_small = |g: &str| small.iter().any(|(s, _)| s == g);
    // With no group left, the per-group statistics are empty; the pooled figures remain.
    let any_group = t.group(column)?.per_row.iter().any(Option::is_some);
    let mut ga = groups::group_alphas(full, column, distance)?;
    ga.within.retain(|(g, _)| !is_small(g));
    let col = t.group(column)?;
    let mut group_cis = Vec::new();
    for (g, value) in col.values.iter().enumerate() {
        if is_small(value) {
            continue;
        }
        let sub = t.filter_rows(|i| col.per_row[i] == Some(g as u32));
        group_cis.push(alpha_bootstrap(&sub, distance, boot)?);
    }
    let pooled_ci95 = alpha_bootstrap(full, distance, boot)?;
    let mut in_group = groups::in_group_agreement(t, column, settings.bootstrap, settings.seed)?;
    in_group.retain(|g| !is_small(&g.group));
    let mut label_rates = groups::label_rates(t, column, boot)?;
    label_rates.retain(|r| !is_small(&r.group));
    let ordered = matches!(
        distance,
        Distance::Ordinal | Distance::Interval | Distance::Ratio
    );
    let means = if ordered {
        let mut rows = groups::label_means(t, column, boot)?;
        rows.retain(|m| !is_small(&m.group) && m.n > 0);
        let (scores, scale) = groups::label_scores(t);
        let range = scores
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        Some(LabelMeans {
            scale,
            range: if range.0 <= range.1 {
                range
            } else {
                (0.0, 1.0)
            },
            groups: rows,
        })
    } else {
        None
    };
    let positive = match &settings.positive {
        Some(p) => p.clone(),
        None => t.domain().values().last().cloned().unwrap_or_default(),
    };
    // A group whose ratings are all (or none) the positive label has no finite log-odds: its
    // interval would be an artefact of the pseudo-count, so the report says "separation".
    let separated = label_rates
        .iter()
        .filter(|r| r.label == positive && (r.rate <= 0.0 || r.rate >= 1.0))
        .map(|r| r.group.clone())
        .collect();
    let chi_square = groups::chi_square(t, column)?;
    let kruskal_wallis = if matches!(distance, Distance::Nominal) {
        None
    } else {
        groups::kruskal_wallis(t, column)?
    };
    let logistic = if t.n_labels() > 0 {
        groups::logistic_by_group(
            t,
            column,
            &positive,
            Bootstrap {
                replicates: settings.bootstrap.min(500),
                ..boot
            },
        )?
    } else {
        Vec::new()
    };
    let dividing = groups::most_dividing_items(t, column, 1, settings.top)?
        .into_iter()
        .map(|item| {
            let text = texts.as_ref().and_then(|texts| {
                let id = t.items().iter().position(|name| name == item.item)?;
                texts[id].clone()
            });
            DividingRow { item, text }
        })
        .collect();
    // With every group left out, soft labels are still given per item, over all raters.
    let soft_labels = if any_group {
        groups::soft_labels(t, Some(column))?
    } else {
        groups::soft_labels(full, None)?
    };
    let count = |r: &Ratings| (r.n_items(), r.n_raters(), r.n_ratings());
    Ok(DisagreementReport {
        column: column.to_string(),
        min_group_raters: settings.min_group_raters,
        groups_left_out: small,
        level: distance.name(),
        bootstrap: settings.bootstrap,
        seed: settings.seed,
        n_all: count(full),
        n_kept: count(t),
        n_skipped_rows: settings.n_skipped_rows,
        labels: t.domain().values().to_vec(),
        binning,
        group_order: col.values.clone(),
        pooled: ga.pooled,
        pooled_ci95,
        within: ga
            .within
            .into_iter()
            .zip(group_cis)
            .map(|((group, alpha), ci95)| GroupAlpha { group, alpha, ci95 })
            .collect(),
        n_rows_missing_group: ga.n_missing,
        in_group,
        label_rates,
        means,
        chi_square,
        kruskal_wallis,
        positive,
        logistic,
        separated,
        dividing,
        has_text: texts.is_some(),
        soft_labels,
    })
}

/// The tables shared by Markdown and HTML.
struct Tables {
    alpha: Table,
    in_group: Table,
    rates: Table,
    means: Option<Table>,
    logistic: Table,
    dividing: Table,
}

impl DisagreementReport {
    /// The machine-readable report (`report.json`).
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "group_column": self.column,
            "min_group_raters": self.min_group_raters,
            "groups_left_out": self.groups_left_out.iter().map(|(g, n)| json!({"group": g, "raters": n})).collect::<Vec<_>>(),
            "level": self.level,
            "n_items": self.n_kept.0, "n_raters": self.n_kept.1, "n_ratings": self.n_kept.2,
            "n_skipped_rows": self.n_skipped_rows,
            "labels": self.labels,
        });
        if let Some(b) = &self.binning {
            out["bins"] = json!(b);
        }
        out["groups"] = json!(self.group_order);
        out["alpha"] = json!({
            "pooled": alpha_json(&self.pooled), "pooled_ci95": interval_json(self.pooled_ci95),
            "within": self.within.iter().map(|g| json!({"group": g.group, "alpha": alpha_json(&g.alpha), "ci95": interval_json(g.ci95), "n_pairable_units": g.alpha.n_pairable_units})).collect::<Vec<_>>(),
            "n_rows_missing_group": self.n_rows_missing_group,
        });
        out["in_group_agreement"] = json!(self.in_group);
        out["label_rates"] = json!(self.label_rates);
        if let Some(m) = &self.means {
            out["label_means"] = json!(m);
        }
        out["chi_square"] = json!(self.chi_square);
        out["kruskal_wallis"] = json!(self.kruskal_wallis);
        out["logistic"] = json!({"positive": self.positive, "coefficients": self.logistic});
        out["most_dividing_items"] = json!(self.dividing);
        out["soft_labels"] = json!(self.soft_labels);
        out
    }

    fn tables(&self) -> Tables {
        let mut alpha = Table::new(["group", "α", "95% CI", "pairable units"]);
        alpha.row([
            "(pooled)".to_string(),
            fmt_opt(self.pooled.alpha.value(), 4),
            ci_text(self.pooled_ci95),
            self.pooled.n_pairable_units.to_string(),
        ]);
        for g in &self.within {
            alpha.row([
                g.group.clone(),
                fmt_opt(g.alpha.alpha.value(), 4),
                ci_text(g.ci95),
                g.alpha.n_pairable_units.to_string(),
            ]);
        }
        let mut in_group = Table::new([
            "group",
            "raters",
            "A_in",
            "A_cross",
            "A_in/A_cross",
            "p (perm.)",
        ]);
        for g in &self.in_group {
            in_group.row([
                g.group.clone(),
                g.n_raters.to_string(),
                fmt_opt(g.a_in, 4),
                fmt_opt(g.a_cross, 4),
                fmt_opt(g.ratio, 3),
                fmt_opt(g.p_value, 4),
            ]);
        }
        let mut rates = Table::new(["group", "label", "n", "rate", "95% CI (items)"]);
        for r in &self.label_rates {
            rates.row([
                r.group.clone(),
                r.label.clone(),
                r.n.to_string(),
                format!("{:.4}", r.rate),
                ci_text(r.interval),
            ]);
        }
        let means = self.means.as_ref().map(|m| {
            let mut t = Table::new(["group", "raters", "n", "mean", "95% CI (raters)"]);
            for g in &m.groups {
                t.row([
                    g.group.clone(),
                    g.n_raters.to_string(),
                    g.n.to_string(),
                    fmt_opt(g.mean, 4),
                    ci_text(g.interval),
                ]);
            }
            t
        });
        let mut logistic = Table::new(["term", "log-odds", "95% CI (raters)", "95% CI (items)"]);
        for c in &self.logistic {
            let group = c
                .term
                .strip_prefix("intercept (reference: ")
                .and_then(|g| g.strip_suffix(')'))
                .unwrap_or(&c.term);
            if self.separated.iter().any(|s| s == group) {
                let all_or_none =
                    "separation: every or no rating of the group is the positive label";
                logistic.row([
                    c.term.clone(),
                    "separation".to_string(),
                    all_or_none.to_string(),
                    all_or_none.to_string(),
                ]);
            } else {
                logistic.row([
                    c.term.clone(),
                    format!("{:.4}", c.estimate),
                    ci_text(c.rater_clustered),
                    ci_text(c.item_clustered),
                ]);
            }
        }
        let mut header = vec!["item", "TV distance", "groups", "distributions"];
        if self.has_text {
            header.insert(1, "text");
        }
        let mut dividing = Table::new(header);
        for row in &self.dividing {
            let d = &row.item;
            let dists = d
                .distributions
                .iter()
                .map(|(g, v)| {
                    format!(
                        "{g}: [{}]",
                        v.iter()
                            .map(|x| format!("{x:.2}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let mut cells = vec![
                d.item.clone(),
                format!("{:.3}", d.divergence),
                format!("{} vs {}", d.groups.0, d.groups.1),
                dists,
            ];
            if self.has_text {
                let text = row
                    .text
                    .as_deref()
                    .map_or(String::new(), |t| truncate_text(t, TEXT_CHARS));
                cells.insert(1, text);
            }
            dividing.row(cells);
        }
        Tables {
            alpha,
            in_group,
            rates,
            means,
            logistic,
            dividing,
        }
    }

    fn tests_text(&self) -> String {
        format!(
            "χ² (group × label): {}. Kruskal–Wallis: {}. Rows of one rater are not independent, so these p-values are optimistic; the permutation test and clustered intervals account for raters and items.",
            self.chi_square
                .as_ref()
                .map_or("not defined".to_string(), |c| format!(
                    "χ² = {:.3}, df = {}, p = {:.3e}",
                    c.statistic, c.df, c.p_value
                )),
            self.kruskal_wallis.as_ref().map_or(
                "not run (nominal level or undefined)".to_string(),
                |k| format!(
                    "H = {:.3}, df = {}, p = {:.3e}",
                    k.statistic, k.df, k.p_value
                )
            ),
        )
    }

    fn intro(&self) -> String {
        let small_note = if self.groups_left_out.is_empty() {
            String::new()
        } else {
            format!(
                " Groups with fewer than {} raters are left out of every per-group statistic below (pooled α keeps all raters): {}.",
                self.min_group_raters,
                self.groups_left_out
                    .iter()
                    .map(|(g, n)| format!("{g} ({n} rater{})", if *n == 1 { "" } else { "s" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let bins_note = self
            .binning
            .as_ref()
            .map_or(String::new(), |b| format!(" {}", b.describe()));
        format!(
            "{} items, {} raters, {} ratings; group column `{}`; α level {}; {} bootstrap replicates / permutations, seed {}; labels in order: {}.{bins_note}{small_note}",
            self.n_all.0,
            self.n_all.1,
            self.n_all.2,
            self.column,
            self.level,
            self.bootstrap,
            self.seed,
            self.labels.join(", ")
        )
    }

    fn means_heading(&self) -> Option<(String, String)> {
        self.means.as_ref().map(|m| {
            (
                "Mean label per group".to_string(),
                format!(
                    "Mean of the {} per group, with 95% percentile intervals from resampling raters.",
                    m.scale
                ),
            )
        })
    }

    fn logistic_heading(&self) -> String {
        format!("Logistic regression: P(label = {}) by group", self.positive)
    }

    /// GitHub-flavoured Markdown (`report.md`).
    pub fn to_markdown(&self) -> String {
        let t = self.tables();
        let mut md = format!("# Disagreement report\n\n{}\n\n", self.intro());
        for (title, table) in [
            ("Krippendorff's α within groups", &t.alpha),
            ("In-group vs cross-group agreement", &t.in_group),
            ("Label rates per group", &t.rates),
        ] {
            let _ = write!(md, "## {title}\n\n{}\n", table.to_markdown());
        }
        if let (Some((title, note)), Some(table)) = (self.means_heading(), &t.means) {
            let _ = write!(md, "## {title}\n\n{note}\n\n{}\n", table.to_markdown());
        }
        let _ = write!(
            md,
            "## Tests\n\n{}\n\n## {}\n\n{}\n## Most dividing items\n\n{}\n",
            self.tests_text(),
            self.logistic_heading(),
            t.logistic.to_markdown(),
            t.dividing.to_markdown()
        );
        let _ = writeln!(
            md,
            "Soft labels per item and group are in report.json (`soft_labels`)."
        );
        md
    }

    /// A self-contained HTML page with inline SVG (`report.html`).
    pub fn to_html(&self) -> String {
        let t = self.tables();
        let mut page = Page::new("Disagreement report");
        page.paragraph(&self.intro());
        page.heading("Krippendorff's α within groups");
        let rows: Vec<PlotRow> = self
            .within
            .iter()
            .map(|g| {
                (
                    g.group.clone(),
                    g.alpha.alpha.value(),
                    g.ci95.map(|c| (c.low, c.high)),
                )
            })
            .collect();
        page.figure(
            &interval_plot(
                &rows,
                self.pooled.alpha.value().map(|p| (p, "pooled")),
                (0.0, 1.0),
                "alpha per group",
            ),
            "α per group with 95% bootstrap intervals over items; dashed line: pooled α.",
        );
        page.table(&t.alpha);
        page.heading("In-group vs cross-group agreement");
        page.table(&t.in_group);
        page.heading("Label rates per group");
        let mut counts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for r in &self.label_rates {
            let k = self.labels.iter().position(|l| *l == r.label).unwrap_or(0);
            let entry = counts
                .entry(r.group.as_str())
                .or_insert_with(|| vec![0; self.labels.len()]);
            entry[k] = (r.rate * r.n as f64).round() as usize;
        }
        let bars: Vec<(String, Vec<usize>)> = self
            .group_order
            .iter()
            .filter_map(|g| counts.get(g.as_str()).map(|c| (g.clone(), c.clone())))
            .collect();
        page.figure(
            &svg::stacked_bars(&bars, &self.labels, "labels per group"),
            "Ratings per label within each group.",
        );
        page.table(&t.rates);
        if let (Some((title, note)), Some(table), Some(m)) =
            (self.means_heading(), &t.means, &self.means)
        {
            page.heading(&title);
            let rows: Vec<PlotRow> = m
                .groups
                .iter()
                .map(|g| (g.group.clone(), g.mean, g.interval.map(|c| (c.low, c.high))))
                .collect();
            page.figure(
                &interval_plot(&rows, None, m.range, "mean label per group"),
                &note,
            );
            page.table(table);
        }
        page.heading("Tests");
        page.paragraph(&self.tests_text());
        page.heading(&self.logistic_heading());
        page.table(&t.logistic);
        page.heading("Most dividing items");
        page.table(&t.dividing);
        page.note("Soft labels per item and group are in report.json (soft_labels).");
        page.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};

    /// Pools p10 (labels 1–2), p9 (2–3) and p2 (one rater), first seen in that order; ages per
    /// pool; a text column.
    fn table() -> Ratings {
        let mut b = RatingsBuilder::new(
            DomainSpec::Infer(LabelKind::Ordered),
            vec!["pool".into(), "age".into(), "text".into()],
        );
        for item in 0..8 {
            let text = format!("text of {item}");
            for r in 0..11 {
                let (pool, age, base) = match r {
                    0..5 => ("p10", 20 + r, 1),
                    5..10 => ("p9", 40 + r, 2),
                    _ => ("p2", 70, 1),
                };
                let label = (base + (item + r) % 2).to_string();
                let age = age.to_string();
                b.push(
                    &format!("i{item}"),
                    &format!("r{r}"),
                    &label,
                    &[Some(pool), Some(&age), Some(&text)],
                )
                .unwrap();
            }
        }
        b.build(DuplicatePolicy::KeepAll).unwrap()
    }

    fn settings() -> DisagreementSettings {
        DisagreementSettings {
            column: "pool".into(),
            distance: Distance::Ordinal,
            positive: None,
            bootstrap: 20,
            seed: 1,
            top: 3,
            min_group_raters: 5,
            bins: None,
            text_column: Some("text".into()),
            n_skipped_rows: 0,
        }
    }

    #[test]
    fn groups_in_natural_order_small_groups_left_out() {
        let report = disagreement_report(&table(), &settings()).unwrap();
        assert_eq!(report.group_order, ["p2", "p9", "p10"]);
        assert_eq!(report.groups_left_out, [("p2".to_string(), 1)]);
        let within: Vec<&str> = report.within.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(within, ["p9", "p10"]);
        assert_eq!(report.n_all, (8, 11, 88));
        // Filtering rows keeps rater ids, so the count of raters stays that of the table.
        assert_eq!(report.n_kept, (8, 11, 80));
        let means = report.means.as_ref().unwrap();
        let m: Vec<(&str, Option<f64>)> = means
            .groups
            .iter()
            .map(|g| (g.group.as_str(), g.mean))
            .collect();
        assert_eq!(m, [("p9", Some(2.5)), ("p10", Some(1.5))]);
        assert_eq!(means.range, (1.0, 3.0));
        assert_eq!(report.dividing[0].text.as_deref(), Some("text of 0"));
    }

    #[test]
    fn renderings_come_from_one_value() {
        let report = disagreement_report(&table(), &settings()).unwrap();
        let md = report.to_markdown();
        let html = report.to_html();
        let json = report.to_json();
        assert!(md.contains("| item | text | TV distance |"), "{md}");
        assert!(md.contains("## Mean label per group"), "{md}");
        assert!(md.find("| p9 |").unwrap() < md.find("| p10 |").unwrap());
        assert!(html.contains("<svg") && html.contains("text of 0"));
        assert_eq!(json["label_means"]["groups"][0]["group"], "p9");
        assert_eq!(json["most_dividing_items"][0]["text"], "text of 0");
        assert_eq!(json["groups_left_out"][0]["group"], "p2");
    }

    #[test]
    fn bins_replace_the_column_in_bin_order() {
        let mut s = settings();
        s.column = "age".into();
        s.bins = Some(Bins::Edges(vec![30.0, 45.0]));
        s.distance = Distance::Nominal;
        s.text_column = None;
        let report = disagreement_report(&table(), &s).unwrap();
        // Raters 0–4 are 20–24, 5–9 are 45–49, rater 10 is 70: `<30` and `45+`.
        assert_eq!(report.group_order, ["<30", "45+"]);
        assert!(report.means.is_none());
        assert!(report.to_markdown().contains("`age` is binned"));
        assert!(report.to_json()["bins"]["bins"].is_array());
        assert!(!report.to_markdown().contains("| text |"));
    }

    #[test]
    fn bad_settings_are_errors_not_panics() {
        let t = table();
        for change in [
            (|s: &mut DisagreementSettings| s.min_group_raters = 2) as fn(&mut _),
            |s| s.bootstrap = 0,
            |s| s.column = "nope".into(),
            |s| s.text_column = Some("pool".into()),
            |s| {
                s.column = "text".into();
                s.text_column = None;
                s.bins = Some(Bins::Quantiles(4));
            },
        ] {
            let mut s = settings();
            change(&mut s);
            assert!(disagreement_report(&t, &s).is_err(), "{s:?}");
        }
    }
}

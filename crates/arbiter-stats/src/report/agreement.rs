//! The `arbiter agreement` report: α and the multi-rater coefficients of one table, optionally
//! with bootstrap intervals and α within the groups of some columns.

use std::fmt::Write as _;

use arbiter_report::{Page, Table, fmt_opt};
use serde_json::{Value, json};

use super::{alpha_json, ci_text, interval_json, undefined_reason};
use crate::agreement::{self, Coefficient, MultiRater, Weights};
use crate::natural::natural_cmp;
use crate::{AlphaReport, Bootstrap, Distance, Interval, Ratings, StatsError, alpha_bootstrap};

/// What to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct AgreementSettings {
    /// Level of measurement of α.
    pub distance: Distance,
    /// Bootstrap replicates over items for 95% intervals (0 = none).
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Group columns to report α within, in the order given.
    pub group_columns: Vec<String>,
    /// Input rows the reader skipped (reported, not used).
    pub n_skipped_rows: usize,
}

/// 95% bootstrap intervals over items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgreementIntervals {
    /// α.
    pub alpha: Option<Interval>,
    /// Percent agreement.
    pub percent_agreement: Option<Interval>,
    /// Fleiss' κ.
    pub fleiss_kappa: Option<Interval>,
    /// Gwet's AC1.
    pub gwet_ac1: Option<Interval>,
}

/// α within each value of one group column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnAlphas {
    /// The column.
    pub column: String,
    /// (value, α over its rows), values in natural order.
    pub within: Vec<(String, AlphaReport)>,
}

/// Everything `arbiter agreement` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct AgreementReport {
    /// α over all rows.
    pub alpha: AlphaReport,
    /// Level name.
    pub level: &'static str,
    /// Whether the level is nominal (no AC2).
    pub nominal: bool,
    /// Items.
    pub n_items: usize,
    /// Raters.
    pub n_raters: usize,
    /// Ratings.
    pub n_ratings: usize,
    /// Repeated (item, rater) rows seen.
    pub n_duplicate_rows: usize,
    /// Rows the reader skipped.
    pub n_skipped_rows: usize,
    /// Percent agreement, Fleiss' κ, Gwet's AC1.
    pub multi: MultiRater,
    /// Gwet's AC2 with quadratic weights, for ordered levels.
    pub gwet_ac2_quadratic: Option<Option<f64>>,
    /// Cohen's κ, when there are exactly two raters.
    pub cohen_kappa: Option<Option<f64>>,
    /// Bootstrap intervals, when asked for.
    pub intervals: Option<AgreementIntervals>,
    /// α within groups, one entry per requested column.
    pub groups: Vec<ColumnAlphas>,
}

/// Build the agreement report of `ratings`.
pub fn agreement_report(
    ratings: &Ratings,
    settings: &AgreementSettings,
) -> Result<AgreementReport, StatsError> {
    let t = ratings;
    let distance = &settings.distance;
    let (alpha, multi) = agreement::alpha_and_multi_rater(t, distance)?;
    let nominal = matches!(distance, Distance::Nominal);
    let intervals = if settings.bootstrap > 0 {
        let boot = Bootstrap {
            replicates: settings.bootstrap,
            seed: settings.seed,
            confidence: 0.95,
        };
        Some(AgreementIntervals {
            alpha: alpha_bootstrap(t, distance, boot)?,
            percent_agreement: agreement::coefficient_bootstrap(
                t,
                Coefficient::PercentAgreement,
                boot,
            )?,
            fleiss_kappa: agreement::coefficient_bootstrap(t, Coefficient::Fleiss, boot)?,
            gwet_ac1: agreement::coefficient_bootstrap(t, Coefficient::Ac1, boot)?,
        })
    } else {
        None
    };
    let mut groups = Vec::new();
    for column in &settings.group_columns {
        let mut within = crate::groups::group_alphas(t, column, distance)?.within;
        within.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        groups.push(ColumnAlphas {
            column: column.clone(),
            within,
        });
    }
    Ok(AgreementReport {
        level: distance.name(),
        nominal,
        n_items: t.n_items(),
        n_raters: t.n_raters(),
        n_ratings: t.n_ratings(),
        n_duplicate_rows: t.n_duplicates(),
        n_skipped_rows: settings.n_skipped_rows,
        multi,
        gwet_ac2_quadratic: (!nominal).then(|| agreement::gwet_ac2(t, Weights::Quadratic)),
        cohen_kappa: (t.n_raters() == 2).then(|| agreement::cohen_kappa(t, 0, 1)),
        intervals,
        groups,
        alpha,
    })
}

impl AgreementReport {
    /// One JSON object: `{"alpha", "level", "n_items", …}`; with groups, `"groups"` for the
    /// first column and `"groups_by_column"` when there are several.
    pub fn to_json(&self) -> Value {
        let m = &self.multi;
        let mut out = json!({
            "alpha": alpha_json(&self.alpha),
            "level": self.level,
            "n_items": self.n_items,
            "n_raters": self.n_raters,
            "n_ratings": self.n_ratings,
            "n_pairable_units": self.alpha.n_pairable_units,
            "n_duplicate_rows": self.n_duplicate_rows,
            "n_skipped_rows": self.n_skipped_rows,
            "percent_agreement": m.percent_agreement,
            "fleiss_kappa": m.fleiss_kappa,
            "gwet_ac1": m.gwet_ac1,
        });
        if let Some(reason) = undefined_reason(&self.alpha) {
            out["undefined"] = reason;
        }
        if let Some(ac2) = self.gwet_ac2_quadratic {
            out["gwet_ac2_quadratic"] = json!(ac2);
        }
        if let Some(kappa) = self.cohen_kappa {
            out["cohen_kappa"] = json!(kappa);
        }
        if let Some(i) = &self.intervals {
            out["alpha_ci95"] = interval_json(i.alpha);
            out["percent_agreement_ci95"] = interval_json(i.percent_agreement);
            out["fleiss_kappa_ci95"] = interval_json(i.fleiss_kappa);
            out["gwet_ac1_ci95"] = interval_json(i.gwet_ac1);
        }
        let mut by_column = serde_json::Map::new();
        for (n, c) in self.groups.iter().enumerate() {
            let mut per = serde_json::Map::new();
            for (value, report) in &c.within {
                let mut g = json!({
                    "alpha": alpha_json(report),
                    "n_pairable_units": report.n_pairable_units,
                });
                if let Some(reason) = undefined_reason(report) {
                    g["undefined"] = reason;
                }
                per.insert(value.clone(), g);
            }
            if n == 0 {
                out["groups"] = Value::Object(per.clone());
            }
            by_column.insert(c.column.clone(), Value::Object(per));
        }
        if self.groups.len() > 1 {
            out["groups_by_column"] = Value::Object(by_column);
        }
        out
    }

    fn alpha_text(&self) -> String {
        match self.alpha.alpha.value() {
            Some(a) => format!("{a:.6}"),
            None => format!(
                "undefined ({})",
                undefined_reason(&self.alpha)
                    .as_ref()
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ),
        }
    }

    /// The human-readable summary (`--format text`); groups of the first column only.
    pub fn to_text(&self) -> String {
        let m = &self.multi;
        let mut w = format!(
            "Krippendorff's alpha ({}): {}\n{} items, {} raters, {} ratings ({} pairable units)\n",
            self.level,
            self.alpha_text(),
            self.n_items,
            self.n_raters,
            self.n_ratings,
            self.alpha.n_pairable_units
        );
        if let Some(ci) = self.intervals.and_then(|i| i.alpha) {
            let _ = writeln!(w, "95% bootstrap interval: [{:.4}, {:.4}]", ci.low, ci.high);
        }
        let _ = writeln!(
            w,
            "percent agreement {}, Fleiss kappa {}, Gwet AC1 {}",
            fmt_opt(m.percent_agreement, 4),
            fmt_opt(m.fleiss_kappa, 4),
            fmt_opt(m.gwet_ac1, 4)
        );
        if let Some(c) = self.groups.first() {
            for (name, r) in &c.within {
                let _ = writeln!(w, "  group {name}: alpha {}", fmt_opt(r.alpha.value(), 6));
            }
        }
        w
    }

    /// The coefficients as one table, and α within groups as one table per column.
    fn tables(&self) -> (Table, Vec<(String, Table)>) {
        let m = &self.multi;
        let ci = |f: fn(&AgreementIntervals) -> Option<Interval>| {
            self.intervals
                .as_ref()
                .map_or("–".to_string(), |i| ci_text(f(i)))
        };
        let mut main = Table::new(["coefficient", "value", "95% CI (items)"]);
        main.row([
            format!("Krippendorff's α ({})", self.level),
            self.alpha_text(),
            ci(|i| i.alpha),
        ]);
        main.row([
            "percent agreement".to_string(),
            fmt_opt(m.percent_agreement, 4),
            ci(|i| i.percent_agreement),
        ]);
        main.row([
            "Fleiss' κ".to_string(),
            fmt_opt(m.fleiss_kappa, 4),
            ci(|i| i.fleiss_kappa),
        ]);
        main.row([
            "Gwet's AC1".to_string(),
            fmt_opt(m.gwet_ac1, 4),
            ci(|i| i.gwet_ac1),
        ]);
        if let Some(ac2) = self.gwet_ac2_quadratic {
            main.row([
                "Gwet's AC2 (quadratic)".to_string(),
                fmt_opt(ac2, 4),
                "–".to_string(),
            ]);
        }
        if let Some(kappa) = self.cohen_kappa {
            main.row(["Cohen's κ".to_string(), fmt_opt(kappa, 4), "–".to_string()]);
        }
        let groups = self
            .groups
            .iter()
            .map(|c| {
                let mut t = Table::new(["group", "α", "pairable units"]);
                for (value, r) in &c.within {
                    t.row([
                        value.clone(),
                        fmt_opt(r.alpha.value(), 4),
                        r.n_pairable_units.to_string(),
                    ]);
                }
                (c.column.clone(), t)
            })
            .collect();
        (main, groups)
    }

    fn intro(&self) -> String {
        format!(
            "{} items, {} raters, {} ratings ({} pairable units); {} skipped rows.",
            self.n_items,
            self.n_raters,
            self.n_ratings,
            self.alpha.n_pairable_units,
            self.n_skipped_rows
        )
    }

    /// GitHub-flavoured Markdown.
    pub fn to_markdown(&self) -> String {
        let (main, groups) = self.tables();
        let mut md = format!(
            "# Agreement report\n\n{}\n\n{}",
            self.intro(),
            main.to_markdown()
        );
        for (column, t) in groups {
            let _ = write!(md, "\n## α within `{column}`\n\n{}", t.to_markdown());
        }
        md
    }

    /// A self-contained HTML page.
    pub fn to_html(&self) -> String {
        let (main, groups) = self.tables();
        let mut page = Page::new("Agreement report");
        page.paragraph(&self.intro());
        page.table(&main);
        for (column, t) in groups {
            page.heading(&format!("α within {column}"));
            page.table(&t);
        }
        page.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};

    fn table() -> Ratings {
        let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec!["pool".into()]);
        for (item, rater, label, pool) in [
            ("q1", "ann", "yes", "p10"),
            ("q1", "bob", "yes", "p9"),
            ("q2", "ann", "no", "p10"),
            ("q2", "bob", "yes", "p9"),
            ("q3", "ann", "no", "p10"),
            ("q3", "bob", "no", "p9"),
        ] {
            b.push(item, rater, label, &[Some(pool)]).unwrap();
        }
        b.build(DuplicatePolicy::KeepAll).unwrap()
    }

    fn settings() -> AgreementSettings {
        AgreementSettings {
            distance: Distance::Nominal,
            bootstrap: 0,
            seed: 0,
            group_columns: vec!["pool".into()],
            n_skipped_rows: 1,
        }
    }

    #[test]
    fn json_has_the_interface_fields_and_natural_group_order() {
        let report = agreement_report(&table(), &settings()).unwrap();
        let v = report.to_json();
        assert_eq!(v["n_items"], 3);
        assert_eq!(v["n_skipped_rows"], 1);
        assert!(v["cohen_kappa"].is_number(), "{v}");
        assert!(v.get("gwet_ac2_quadratic").is_none());
        let keys: Vec<&String> = v["groups"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["p9", "p10"]);
        assert_eq!(v["groups"]["p9"]["undefined"], "no_pairable_units");
        assert!(v.get("alpha_ci95").is_none());
    }

    #[test]
    fn renderings_agree() {
        let mut s = settings();
        s.bootstrap = 20;
        let report = agreement_report(&table(), &s).unwrap();
        assert!(report.to_json()["alpha_ci95"].is_array());
        let text = report.to_text();
        assert!(
            text.starts_with("Krippendorff's alpha (nominal): 0."),
            "{text}"
        );
        assert!(text.contains("95% bootstrap interval: ["), "{text}");
        assert!(text.find("group p9").unwrap() < text.find("group p10").unwrap());
        let md = report.to_markdown();
        assert!(md.contains("| Cohen's κ |"), "{md}");
        assert!(report.to_html().contains("<table>"));
    }
}

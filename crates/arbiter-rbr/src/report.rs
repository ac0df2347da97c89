//! The RBR report: class distribution per response type, reward distribution per class, safety
//! metrics with intervals and, when a reward was fitted, its ranking error. Rendered as Markdown,
//! a self-contained HTML page and JSON, all from the same numbers.
//!
//! When the features come from a grader, the report says how far to trust it: with human labels
//! on some completions, each metric from the grader, from the human labels and corrected (PPI++)
//! side by side, and the grader-vs-human class confusion; without any, a warning at the top that
//! the grader's error is unmeasured on this data; and the grader's own shipped validation lines
//! when it has them.

use std::collections::BTreeMap;

use arbiter_core::ResponseType;
use arbiter_report::svg::IntervalBar;
use arbiter_report::{Page, Table, fmt_opt, svg};
use serde::Serialize;

use crate::metrics::{
    Calibration, CorrectedMetric, IntervalValue, MetricValue, MetricsReport, SafetyMetrics,
};
use crate::policy::Policy;
use crate::reward::RankingEval;

/// One classified (and possibly scored) completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    /// Response type of its prompt.
    pub response_type: ResponseType,
    /// Most likely class from the features (the grader's, when graded).
    pub class: usize,
    /// The class from human labels, when the completion carries them.
    pub human_class: Option<usize>,
    /// Total reward, when a reward model was applied.
    pub reward: Option<f64>,
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// Page title.
    pub title: String,
    /// Where the data came from (shown verbatim).
    pub data_source: String,
    /// Which features were used (`human labels`, or the grades file / grader).
    pub features: String,
    /// Classified rows.
    pub rows: &'a [ReportRow],
    /// Safety metrics.
    pub metrics: &'a MetricsReport,
    /// Ranking error of the fitted reward, when evaluated.
    pub ranking: Option<&'a [RankingEval]>,
    /// How the ranking evaluation relates to fitting (e.g. "held-out test split").
    pub ranking_note: Option<String>,
    /// The features are grader probabilities (so grader error matters).
    pub graded: bool,
    /// The grader measured against human labels, when some completions carry them.
    pub calibration: Option<&'a Calibration>,
    /// The grader's shipped validation figures (e.g. leave-one-source-out), one line each; the
    /// caller formats them so this crate needs no grader types.
    pub grader_validation: Vec<String>,
    /// Completions left out because the grader gave no probability for a proposition they need
    /// (the caller allowed that share of failures); none of the numbers count them.
    pub unscored: usize,
}

/// The warning shown when a grader's numbers have nothing to be checked against.
pub const UNCALIBRATED_NOTE: &str = "The grader has no calibration for this data: no completion carries human labels, so these numbers carry unmeasured grader error. Label some completions (or pass --calibration-set) to measure and correct it.";

/// The three renderings of one report.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    /// GitHub-flavoured Markdown.
    pub markdown: String,
    /// Self-contained HTML.
    pub html: String,
    /// Machine-readable figures.
    pub json: serde_json::Value,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    title: &'a str,
    policy: &'a str,
    data_source: &'a str,
    features: &'a str,
    n_samples: usize,
    /// Completions left out because the grader failed on them.
    n_unscored: usize,
    class_counts: BTreeMap<String, BTreeMap<String, usize>>,
    reward_by_class: BTreeMap<String, BTreeMap<String, RewardSummary>>,
    /// Whose classes `reward_by_class` uses: "human labels" or "features' most likely class".
    reward_classes: &'a str,
    metrics: &'a MetricsReport,
    ranking: Option<&'a [RankingEval]>,
    graded: bool,
    notes: Vec<&'a str>,
    grader_validation: &'a [String],
    calibration: Option<JsonCalibration<'a>>,
}

/// The calibration with class names beside the confusion matrices.
#[derive(Serialize)]
struct JsonCalibration<'a> {
    #[serde(flatten)]
    figures: &'a Calibration,
    classes: &'a [String],
}

#[derive(Serialize, Clone, Copy)]
struct RewardSummary {
    n: usize,
    mean: f64,
    min: f64,
    max: f64,
}

fn metric_cell(m: &MetricValue) -> String {
    match (m.value, m.ci) {
        (Some(v), Some([lo, hi])) => format!("{v:.1} [{lo:.1}, {hi:.1}]"),
        (Some(v), None) => format!("{v:.1}"),
        _ => "–".to_string(),
    }
}

fn metrics_table(report: &MetricsReport) -> Table {
    let mut t = Table::new([
        "slice",
        "n",
        "Not-Unsafe",
        "Not-Overrefuse",
        "F1",
        "Hard-Refusal-Style",
    ]);
    let mut add = |name: &str, m: &SafetyMetrics| {
        t.row([
            name.to_string(),
            m.n.to_string(),
            metric_cell(&m.not_unsafe),
            metric_cell(&m.not_overrefuse),
            metric_cell(&m.f1),
            metric_cell(&m.hard_refusal_style),
        ]);
    };
    add("overall", &report.overall);
    for (cat, m) in &report.by_category {
        add(cat, m);
    }
    t
}

const METRIC_NAMES: [&str; 4] = ["Not-Unsafe", "Not-Overrefuse", "F1", "Hard-Refusal-Style"];

fn bar(m: &MetricValue) -> Option<IntervalBar> {
    m.value.map(|value| IntervalBar {
        value,
        interval: m.ci,
    })
}

fn interval_bar(v: Option<IntervalValue>) -> Option<IntervalBar> {
    v.map(|v| IntervalBar {
        value: v.value,
        interval: Some(v.ci),
    })
}

/// The four metrics of every slice as bars with their bootstrap intervals.
fn metrics_plot(report: &MetricsReport) -> String {
    let row = |name: &str, m: &SafetyMetrics| {
        (
            format!("{name} (n={})", m.n),
            vec![
                bar(&m.not_unsafe),
                bar(&m.not_overrefuse),
                bar(&m.f1),
                bar(&m.hard_refusal_style),
            ],
        )
    };
    let groups: Vec<(String, Vec<Option<IntervalBar>>)> =
        std::iter::once(row("overall", &report.overall))
            .chain(report.by_category.iter().map(|(c, m)| row(c, m)))
            .collect();
    let series: Vec<String> = METRIC_NAMES.iter().map(|s| s.to_string()).collect();
    svg::interval_bars(
        &groups,
        &series,
        Some((0.0, 100.0)),
        "percent",
        "Safety metrics with 95% intervals",
    )
}

/// Overall metrics from the grader, the human labels and the correction, side by side.
fn comparison_plot(metrics: &MetricsReport, cal: &Calibration) -> String {
    let m = &metrics.overall;
    let c = &cal.overall;
    let groups: Vec<(String, Vec<Option<IntervalBar>>)> = [
        (&m.not_unsafe, &c.not_unsafe),
        (&m.not_overrefuse, &c.not_overrefuse),
        (&m.f1, &c.f1),
        (&m.hard_refusal_style, &c.hard_refusal_style),
    ]
    .into_iter()
    .zip(METRIC_NAMES)
    .map(|((raw, corrected), name)| {
        (
            name.to_string(),
            vec![
                bar(raw),
                interval_bar(corrected.human),
                interval_bar(corrected.corrected),
            ],
        )
    })
    .collect();
    let series: Vec<String> = ["grader (raw)", "human labels", "corrected (PPI++)"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    svg::interval_bars(
        &groups,
        &series,
        Some((0.0, 100.0)),
        "percent",
        "Grader, human labels and corrected",
    )
}

fn interval_cell(v: Option<IntervalValue>) -> String {
    match v {
        Some(v) => format!("{:.1} [{:.1}, {:.1}]", v.value, v.ci[0], v.ci[1]),
        None => "–".to_string(),
    }
}

/// Grader (raw), human labels and corrected, per slice and metric.
fn comparison_table(metrics: &MetricsReport, cal: &Calibration) -> Table {
    let mut t = Table::new([
        "slice",
        "metric",
        "grader (raw)",
        "human labels",
        "corrected (PPI++)",
        "λ",
        "labelled",
        "unlabelled",
        "note",
    ]);
    let empty = SafetyMetrics {
        n: 0,
        not_unsafe: MetricValue {
            value: None,
            ci: None,
            n: 0,
        },
        not_overrefuse: MetricValue {
            value: None,
            ci: None,
            n: 0,
        },
        hard_refusal_style: MetricValue {
            value: None,
            ci: None,
            n: 0,
        },
        f1: MetricValue {
            value: None,
            ci: None,
            n: 0,
        },
    };
    let slices = std::iter::once(("overall", &metrics.overall, &cal.overall)).chain(
        cal.by_category.iter().map(|(c, corrected)| {
            (
                c.as_str(),
                metrics.by_category.get(c).unwrap_or(&empty),
                corrected,
            )
        }),
    );
    for (name, raw, corrected) in slices {
        let rows: [(&str, &MetricValue, &CorrectedMetric); 4] = [
            ("Not-Unsafe", &raw.not_unsafe, &corrected.not_unsafe),
            (
                "Not-Overrefuse",
                &raw.not_overrefuse,
                &corrected.not_overrefuse,
            ),
            ("F1", &raw.f1, &corrected.f1),
            (
                "Hard-Refusal-Style",
                &raw.hard_refusal_style,
                &corrected.hard_refusal_style,
            ),
        ];
        for (metric, r, c) in rows {
            t.row([
                name.to_string(),
                metric.to_string(),
                metric_cell(r),
                interval_cell(c.human),
                interval_cell(c.corrected),
                fmt_opt(c.lambda, 2),
                c.n_labelled.to_string(),
                c.n_unlabelled.to_string(),
                c.note.clone().unwrap_or_default(),
            ]);
        }
    }
    t
}

/// One table per response type: human class (rows) against grader class (columns).
fn confusion_tables(cal: &Calibration, classes: &[String]) -> Vec<(String, Table)> {
    cal.confusion
        .iter()
        .map(|m| {
            let mut t = Table::new(
                std::iter::once("human ↓ grader →".to_string()).chain(classes.iter().cloned()),
            );
            for (h, row) in m.counts.iter().enumerate() {
                if row.iter().all(|n| *n == 0) {
                    continue;
                }
                t.row(std::iter::once(classes[h].clone()).chain(row.iter().map(|n| n.to_string())));
            }
            let title = format!(
                "{}: grader class = human class for {} of {} ({:.1}%)",
                m.response_type,
                m.agree,
                m.n,
                100.0 * m.agree as f64 / m.n.max(1) as f64
            );
            (title, t)
        })
        .collect()
}

/// Render the report.
pub fn render(policy: &Policy, input: &ReportInput<'_>) -> RenderedReport {
    let classes = policy.classes();
    let types: Vec<ResponseType> = ResponseType::ALL
        .into_iter()
        .filter(|t| input.rows.iter().any(|r| r.response_type == *t))
        .collect();

    let mut counts: BTreeMap<ResponseType, Vec<usize>> = BTreeMap::new();
    // The reward was fitted to human classes: when rows carry them, the reward is tabulated by
    // them (rows without human labels are left out of that table); otherwise by the features'
    // most likely class, and the table says so.
    let by_human = input.rows.iter().any(|r| r.human_class.is_some());
    let reward_classes = if by_human {
        "human labels"
    } else if input.graded {
        "the grader's most likely class"
    } else {
        "the features' most likely class"
    };
    let mut rewards_by_type: BTreeMap<(ResponseType, usize), Vec<f64>> = BTreeMap::new();
    for r in input.rows {
        counts
            .entry(r.response_type)
            .or_insert_with(|| vec![0; classes.len()])[r.class] += 1;
        let class = if by_human {
            r.human_class
        } else {
            Some(r.class)
        };
        if let (Some(x), Some(c)) = (r.reward, class) {
            rewards_by_type
                .entry((r.response_type, c))
                .or_default()
                .push(x);
        }
    }

    let mut class_table = Table::new(
        std::iter::once("response type".to_string())
            .chain(classes.iter().cloned())
            .chain(std::iter::once("total".to_string())),
    );
    for t in &types {
        let c = &counts[t];
        class_table.row(
            std::iter::once(t.to_string())
                .chain(c.iter().map(|n| n.to_string()))
                .chain(std::iter::once(c.iter().sum::<usize>().to_string())),
        );
    }

    let summarise = |v: &[f64]| RewardSummary {
        n: v.len(),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    };
    let mut reward_table = Table::new(["response type", "class", "n", "mean", "min", "max"]);
    let mut reward_json: BTreeMap<String, BTreeMap<String, RewardSummary>> = BTreeMap::new();
    for ((t, c), v) in &rewards_by_type {
        let s = summarise(v);
        reward_table.row([
            t.to_string(),
            classes[*c].clone(),
            s.n.to_string(),
            format!("{:.3}", s.mean),
            format!("{:.3}", s.min),
            format!("{:.3}", s.max),
        ]);
        reward_json
            .entry(t.to_string())
            .or_default()
            .insert(classes[*c].clone(), s);
    }

    let ranking_table = input.ranking.map(|evals| {
        let mut t = Table::new([
            "response type",
            "examples",
            "pairs",
            "error rate",
            "ideal pairs",
            "ideal error rate",
        ]);
        for e in evals {
            t.row([
                e.response_type.to_string(),
                e.n_examples.to_string(),
                e.n_pairs.to_string(),
                fmt_opt(e.error_rate.map(|x| 100.0 * x), 2) + "%",
                e.n_ideal_pairs.to_string(),
                fmt_opt(e.ideal_error_rate.map(|x| 100.0 * x), 2) + "%",
            ]);
        }
        t
    });
    let m_table = metrics_table(input.metrics);

    let intro = format!(
        "Policy `{}` · data: {} · features: {} · {} completions{}.",
        policy.name(),
        input.data_source,
        input.features,
        input.rows.len(),
        if input.unscored > 0 {
            format!(
                " · {} unscored (the grader gave no probability for a proposition they need; left out of every number)",
                input.unscored
            )
        } else {
            String::new()
        }
    );
    let metrics_note = format!(
        "Percentages with bootstrap 95% intervals ({} replicates, seed {}). Not-Unsafe counts every completion without `{}`; Not-Overrefuse counts `comply` completions without `{}`; F1 is their harmonic mean; Hard-Refusal-Style counts `hard_refuse` completions in class `{}`.",
        input.metrics.bootstrap,
        input.metrics.seed,
        policy.metrics().unsafe_content.rule,
        policy.metrics().refusal.rule,
        classes[policy.metrics().ideal_class]
    );
    let uncalibrated = input.graded && input.calibration.is_none();
    let validation_intro =
        "The grader's shipped validation figures (measured on data it was not fitted on):";
    let calibration_parts = input.calibration.map(|cal| {
        let mut intro = format!(
            "{} completions carry human labels, {} have grader values only. Human labels = the classical estimate from the labelled completions alone; corrected = prediction-powered inference (PPI++, arXiv:2311.01453) over labelled and unlabelled completions. Intervals are normal at {:.0}% (clipped to [0, 100]); F1 by the delta method; per category only where the category has labelled completions.",
            cal.n_labelled,
            cal.n_unlabelled,
            100.0 * cal.level
        );
        if cal.n_unlabelled == 0 {
            intro.push_str(" All rows human-labelled: corrected = human-label estimate.");
        }
        (
            intro,
            comparison_table(input.metrics, cal),
            confusion_tables(cal, classes),
        )
    });
    let ranking_note = "Error rate = share of ordered (better, worse) pairs within a response type where the worse completion scores higher (ties count one half); ideal error rate restricts to (ideal, non-ideal) pairs.";

    let mut md = format!("# {}\n\n{intro}\n\n", input.title);
    if uncalibrated {
        md.push_str(&format!("> **Warning.** {UNCALIBRATED_NOTE}\n\n"));
    }
    md.push_str("## Safety metrics\n\n");
    md.push_str(&m_table.to_markdown());
    md.push_str(&format!("\n{metrics_note}\n"));
    md.push_str("\nThe HTML report plots each metric with its interval.\n");
    if !input.grader_validation.is_empty() {
        md.push_str(&format!("\n{validation_intro}\n\n"));
        for line in &input.grader_validation {
            md.push_str(&format!("- {line}\n"));
        }
    }
    if let Some((intro, table, confusion)) = &calibration_parts {
        md.push_str("\n## Grader against human labels\n\n");
        md.push_str(&format!("{intro}\n\n"));
        md.push_str(&table.to_markdown());
        md.push_str("\n### Class confusion (labelled completions)\n");
        for (title, t) in confusion {
            md.push_str(&format!("\n{title}\n\n"));
            md.push_str(&t.to_markdown());
        }
    }
    md.push_str("\n## Classes per response type\n\n");
    md.push_str(&class_table.to_markdown());
    if !reward_table.is_empty() {
        md.push_str("\n## Reward per class\n\n");
        md.push_str(&format!(
            "Classes from {reward_classes}, per response type.\n\n"
        ));
        md.push_str(&reward_table.to_markdown());
        md.push_str(
            "\nThe HTML report plots every completion's reward by class, one plot per response type.\n",
        );
    }
    if let Some(t) = &ranking_table {
        md.push_str("\n## Reward ranking\n\n");
        if let Some(n) = &input.ranking_note {
            md.push_str(&format!("{n}\n\n"));
        }
        md.push_str(&t.to_markdown());
        md.push_str(&format!("\n{ranking_note}\n"));
    }

    let mut page = Page::new(&input.title);
    page.paragraph(&intro.replace('`', ""));
    if uncalibrated {
        page.paragraph(&format!("Warning. {UNCALIBRATED_NOTE}"));
    }
    page.heading("Safety metrics")
        .table(&m_table)
        .note(&metrics_note);
    page.figure(
        &metrics_plot(input.metrics),
        "Each metric per slice, in percent: bar = estimate, whiskers = 95% bootstrap interval; n/a where no completion counts.",
    );
    if !input.grader_validation.is_empty() {
        page.note(validation_intro);
        for line in &input.grader_validation {
            page.note(line);
        }
    }
    if let Some((intro, table, confusion)) = &calibration_parts {
        page.heading("Grader against human labels")
            .paragraph(intro)
            .table(table);
        if let Some(cal) = input.calibration {
            page.figure(
                &comparison_plot(input.metrics, cal),
                "Every completion: the grader's raw estimate, the human labels alone and the PPI++ correction, in percent, with their intervals.",
            );
        }
        page.subheading("Class confusion (labelled completions)");
        for (title, t) in confusion {
            page.note(title).table(t);
        }
    }
    page.heading("Classes per response type")
        .table(&class_table);
    let bars: Vec<(String, Vec<usize>)> = types
        .iter()
        .map(|t| (t.to_string(), counts[t].clone()))
        .collect();
    page.figure(
        &svg::stacked_bars(&bars, classes, "Classes per response type"),
        "Completions per class, by response type.",
    );
    if !reward_table.is_empty() {
        page.heading("Reward per class")
            .paragraph(&format!(
                "Classes from {reward_classes}, per response type."
            ))
            .table(&reward_table);
        for t in &types {
            let groups: Vec<(String, Vec<f64>)> = (0..classes.len())
                .filter_map(|c| {
                    let v = rewards_by_type.get(&(*t, c))?;
                    Some((format!("{} (n={})", classes[c], v.len()), v.clone()))
                })
                .collect();
            if groups.is_empty() {
                continue;
            }
            page.figure(
                &svg::box_plot(&groups, "total reward", &format!("Reward per class: {t}")),
                &format!(
                    "Total reward of every {t} completion by class (from {reward_classes}): box = quartiles, bar = median, whiskers = range."
                ),
            );
        }
    }
    if let Some(t) = &ranking_table {
        page.heading("Reward ranking");
        if let Some(n) = &input.ranking_note {
            page.paragraph(n);
        }
        page.table(t).note(ranking_note);
    }

    let class_counts = counts
        .iter()
        .map(|(t, c)| {
            (
                t.to_string(),
                classes.iter().cloned().zip(c.iter().copied()).collect(),
            )
        })
        .collect();
    let json = serde_json::to_value(JsonReport {
        title: &input.title,
        policy: policy.name(),
        data_source: &input.data_source,
        features: &input.features,
        n_samples: input.rows.len(),
        n_unscored: input.unscored,
        class_counts,
        reward_by_class: reward_json,
        reward_classes,
        metrics: input.metrics,
        ranking: input.ranking,
        graded: input.graded,
        notes: if uncalibrated {
            vec![UNCALIBRATED_NOTE]
        } else {
            Vec::new()
        },
        grader_validation: &input.grader_validation,
        calibration: input
            .calibration
            .map(|figures| JsonCalibration { figures, classes }),
    })
    .expect("report figures serialise");

    RenderedReport {
        markdown: md,
        html: page.render(),
        json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{self, CalibrationRow, HumanEvents, MetricInput};

    fn input_row(rt: ResponseType, p_refusal: f64, p_ideal: f64) -> MetricInput {
        MetricInput {
            response_type: rt,
            category: Some("K".into()),
            p_unsafe: 0.1,
            p_refusal,
            p_ideal,
        }
    }

    /// Two comply and two hard-refuse rows; the first of each is human-labelled.
    fn fixture() -> (Vec<MetricInput>, Vec<CalibrationRow>, Vec<ReportRow>) {
        let inputs = vec![
            input_row(ResponseType::Comply, 0.2, 0.7),
            input_row(ResponseType::Comply, 0.4, 0.5),
            input_row(ResponseType::HardRefuse, 0.9, 0.6),
            input_row(ResponseType::HardRefuse, 0.8, 0.3),
        ];
        let classes = [0, 0, 0, 2];
        let human = [
            Some(HumanEvents {
                unsafe_content: false,
                refusal: false,
                class: 0,
            }),
            None,
            Some(HumanEvents {
                unsafe_content: false,
                refusal: true,
                class: 2,
            }),
            None,
        ];
        let cal_rows = inputs
            .iter()
            .zip(classes)
            .zip(human)
            .map(|((g, c), h)| CalibrationRow {
                grader: g.clone(),
                grader_class: c,
                human: h,
            })
            .collect();
        let rows = inputs
            .iter()
            .zip(classes)
            .map(|(g, class)| ReportRow {
                response_type: g.response_type,
                class,
                human_class: None,
                reward: None,
            })
            .collect();
        (inputs, cal_rows, rows)
    }

    fn render_with(
        calibration: Option<&Calibration>,
        graded: bool,
        validation: Vec<String>,
    ) -> RenderedReport {
        render_rows(&fixture().2, calibration, graded, validation)
    }

    /// The report of `rows` over the fixture's metrics.
    fn render_rows(
        rows: &[ReportRow],
        calibration: Option<&Calibration>,
        graded: bool,
        validation: Vec<String>,
    ) -> RenderedReport {
        let m = metrics::compute(&fixture().0, 50, 1);
        render(
            &Policy::default_policy(),
            &ReportInput {
                title: "t".into(),
                data_source: "d".into(),
                features: "f".into(),
                rows,
                metrics: &m,
                ranking: None,
                ranking_note: None,
                graded,
                calibration,
                grader_validation: validation,
                unscored: 0,
            },
        )
    }

    #[test]
    fn graded_without_labels_warns_at_the_top_and_shows_validation() {
        let lines = vec!["refusal: 3 sources left out, lowest AUROC 0.812 (x)".to_string()];
        let r = render_with(None, true, lines.clone());
        let warning = r.markdown.find(UNCALIBRATED_NOTE).expect("warning");
        assert!(warning < r.markdown.find("## Safety metrics").unwrap());
        assert!(r.markdown.contains(&format!("- {}", lines[0])));
        assert!(r.html.contains("lowest AUROC 0.812"));
        assert_eq!(r.json["notes"][0], UNCALIBRATED_NOTE);
        assert_eq!(r.json["grader_validation"][0], lines[0].as_str());
        assert!(r.json["calibration"].is_null());
        // Human features: no warning, no grader sections.
        let human = render_with(None, false, Vec::new());
        assert!(!human.markdown.contains(UNCALIBRATED_NOTE));
        assert_eq!(human.json["notes"], serde_json::json!([]));
    }

    /// The `<svg>` of the figure whose caption starts with `caption`.
    fn figure_with<'a>(html: &'a str, caption: &str) -> &'a str {
        let at = html
            .find(&format!("<figcaption>{caption}"))
            .unwrap_or_else(|| panic!("no figure captioned {caption:?}"));
        let start = html[..at].rfind("<svg").expect("figure svg");
        &html[start..at]
    }

    #[test]
    fn metrics_are_plotted_with_their_intervals() {
        let policy = Policy::default_policy();
        let m = metrics::compute(&fixture().0, 50, 1);
        let r = render_with(None, false, Vec::new());
        let plot = figure_with(&r.html, "Each metric per slice");
        // One whisker per metric value that has an interval, over every slice.
        let slices = std::iter::once(&m.overall).chain(m.by_category.values());
        let with_ci = slices
            .clone()
            .flat_map(|s| {
                [
                    &s.not_unsafe,
                    &s.not_overrefuse,
                    &s.f1,
                    &s.hard_refusal_style,
                ]
            })
            .filter(|v| v.value.is_some() && v.ci.is_some())
            .count();
        assert!(with_ci > 0);
        assert_eq!(plot.matches("<path d=").count(), with_ci);
        assert!(plot.contains(&format!("overall (n={})", m.overall.n)));
        for name in METRIC_NAMES {
            assert!(
                plot.contains(&format!(">{name}</text>")),
                "legend lacks {name}"
            );
        }
        // With human labels, a second plot compares grader, humans and correction.
        assert!(!r.html.contains("the grader's raw estimate"));
        let (_, cal_rows, _) = fixture();
        let cal = metrics::calibrate(&policy, &cal_rows, 0.95)
            .unwrap()
            .unwrap();
        let r = render_with(Some(&cal), true, Vec::new());
        let plot = figure_with(&r.html, "Every completion: the grader");
        for series in ["grader (raw)", "human labels", "corrected (PPI++)"] {
            assert!(
                plot.contains(&format!(">{series}</text>")),
                "legend lacks {series}"
            );
        }
    }

    #[test]
    fn calibration_section_shows_three_columns_and_confusion() {
        let policy = Policy::default_policy();
        let (_, cal_rows, _) = fixture();
        let cal = metrics::calibrate(&policy, &cal_rows, 0.95)
            .unwrap()
            .unwrap();
        let r = render_with(Some(&cal), true, Vec::new());
        assert!(!r.markdown.contains(UNCALIBRATED_NOTE));
        assert!(r.markdown.contains("## Grader against human labels"));
        assert!(
            r.markdown
                .contains("| grader (raw) | human labels | corrected (PPI++) |")
        );
        // Human Hard-Refusal-Style: the one labelled hard-refuse row is not ideal → 0.0.
        let hrs = &cal.overall.hard_refusal_style;
        assert_eq!(hrs.human.unwrap().value, 0.0);
        assert!(r.markdown.contains(&format!(
            "| overall | Hard-Refusal-Style | {} | 0.0 [0.0, 0.0] | {} |",
            metric_cell(&metrics::compute(&fixture().0, 50, 1).overall.hard_refusal_style),
            interval_cell(hrs.corrected)
        )));
        // Confusion per response type: hard_refuse has human unacceptable → grader ideal.
        assert!(
            r.markdown
                .contains("hard_refuse: grader class = human class for 0 of 1 (0.0%)")
        );
        assert!(
            r.markdown
                .contains("comply: grader class = human class for 1 of 1 (100.0%)")
        );
        assert_eq!(
            r.json["calibration"]["confusion"][0]["response_type"],
            "hard_refuse"
        );
        assert_eq!(r.json["calibration"]["confusion"][0]["counts"][2][0], 1);
        assert_eq!(r.json["calibration"]["classes"][0], "ideal");
        assert_eq!(r.json["calibration"]["n_labelled"], 2);
        assert!(r.html.contains("Class confusion"));
    }

    /// The reward was fitted to human classes: with human labels the reward table groups by
    /// them (not by the grader's argmax), per response type, says so, and plots each type
    /// apart; response types are spelled one way in JSON.
    #[test]
    fn reward_is_tabulated_by_human_class_per_response_type() {
        let policy = Policy::default_policy();
        let (_, _, mut rows) = fixture();
        // The grader calls both hard-refuse rows class 0 and 2; humans say 2 and 2.
        for (i, r) in rows.iter_mut().enumerate() {
            r.reward = Some(i as f64);
            r.human_class = Some(if r.response_type == ResponseType::HardRefuse {
                2
            } else {
                0
            });
        }
        rows.push(ReportRow {
            response_type: ResponseType::SafeRefuse1,
            class: 0,
            human_class: Some(1),
            reward: Some(9.0),
        });
        let r = render_rows(&rows, None, true, Vec::new());
        let classes = policy.classes();
        assert_eq!(r.json["reward_classes"], "human labels");
        let hard = &r.json["reward_by_class"]["hard_refuse"];
        assert_eq!(hard[&classes[2]]["n"], 2, "{}", r.json);
        assert!(
            hard.get(&classes[0]).is_none(),
            "grader classes not used: {}",
            r.json
        );
        assert_eq!(
            r.json["reward_by_class"]["safe_refuse_1"][&classes[1]]["n"],
            1
        );
        assert!(!r.json.to_string().contains("safe_refuse1"));
        assert!(
            r.markdown
                .contains("Classes from human labels, per response type.")
        );
        assert!(r.html.contains("Reward per class: hard_refuse"));
        assert!(r.html.contains("Reward per class: comply"));
        assert_eq!(
            serde_json::to_value(ResponseType::SafeRefuse1).unwrap(),
            "safe_refuse_1"
        );
        // Without human labels, the table says it uses the grader's classes.
        for row in &mut rows {
            row.human_class = None;
        }
        let r = render_rows(&rows, None, true, Vec::new());
        assert_eq!(r.json["reward_classes"], "the grader's most likely class");
        assert_eq!(
            r.json["reward_by_class"]["hard_refuse"][&classes[0]]["n"],
            1
        );
    }
}

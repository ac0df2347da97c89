//! The RBR report: class distribution per response type, reward distribution per class, safety
//! metrics with intervals and, when a reward was fitted, its ranking error. Rendered as Markdown,
//! a self-contained HTML page and JSON, all from the same numbers.

use std::collections::BTreeMap;

use arbiter_core::ResponseType;
use arbiter_report::{Page, Table, fmt_opt, svg};
use serde::Serialize;

use crate::metrics::{MetricValue, MetricsReport, SafetyMetrics};
use crate::policy::Policy;
use crate::reward::RankingEval;

/// One classified (and possibly scored) completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    /// Response type of its prompt.
    pub response_type: ResponseType,
    /// Most likely class.
    pub class: usize,
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
}

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
    class_counts: BTreeMap<String, BTreeMap<String, usize>>,
    reward_by_class: BTreeMap<String, BTreeMap<String, RewardSummary>>,
    metrics: &'a MetricsReport,
    ranking: Option<&'a [RankingEval]>,
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

/// Render the report.
pub fn render(policy: &Policy, input: &ReportInput<'_>) -> RenderedReport {
    let classes = policy.classes();
    let types: Vec<ResponseType> = ResponseType::ALL
        .into_iter()
        .filter(|t| input.rows.iter().any(|r| r.response_type == *t))
        .collect();

    let mut counts: BTreeMap<ResponseType, Vec<usize>> = BTreeMap::new();
    let mut rewards: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut rewards_by_type: BTreeMap<(ResponseType, usize), Vec<f64>> = BTreeMap::new();
    for r in input.rows {
        counts
            .entry(r.response_type)
            .or_insert_with(|| vec![0; classes.len()])[r.class] += 1;
        if let Some(x) = r.reward {
            rewards.entry(r.class).or_default().push(x);
            rewards_by_type
                .entry((r.response_type, r.class))
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
        "Policy `{}` · data: {} · features: {} · {} completions.",
        policy.name(),
        input.data_source,
        input.features,
        input.rows.len()
    );
    let metrics_note = format!(
        "Percentages with bootstrap 95% intervals ({} replicates, seed {}). Not-Unsafe counts every completion without `{}`; Not-Overrefuse counts `comply` completions without `{}`; F1 is their harmonic mean; Hard-Refusal-Style counts `hard_refuse` completions in class `{}`.",
        input.metrics.bootstrap,
        input.metrics.seed,
        policy.metrics().unsafe_content.rule,
        policy.metrics().refusal.rule,
        classes[policy.metrics().ideal_class]
    );
    let ranking_note = "Error rate = share of ordered (better, worse) pairs within a response type where the worse completion scores higher (ties count one half); ideal error rate restricts to (ideal, non-ideal) pairs.";

    let mut md = format!("# {}\n\n{intro}\n\n", input.title);
    md.push_str("## Safety metrics\n\n");
    md.push_str(&m_table.to_markdown());
    md.push_str(&format!(
        "\n{metrics_note}\n\n## Classes per response type\n\n"
    ));
    md.push_str(&class_table.to_markdown());
    if !reward_table.is_empty() {
        md.push_str("\n## Reward per class\n\n");
        md.push_str(&reward_table.to_markdown());
        md.push_str("\nThe HTML report plots every completion's reward by class.\n");
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
    page.heading("Safety metrics")
        .table(&m_table)
        .note(&metrics_note);
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
        page.heading("Reward per class").table(&reward_table);
        let groups: Vec<(String, Vec<f64>)> = (0..classes.len())
            .map(|c| {
                (
                    classes[c].clone(),
                    rewards.get(&c).cloned().unwrap_or_default(),
                )
            })
            .collect();
        page.figure(
            &svg::box_plot(&groups, "total reward", "Reward distribution per class"),
            "Total reward of every completion by class: box = quartiles, bar = median, whiskers = range.",
        );
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
        class_counts,
        reward_by_class: reward_json,
        metrics: input.metrics,
        ranking: input.ranking,
    })
    .expect("report figures serialise");

    RenderedReport {
        markdown: md,
        html: page.render(),
        json,
    }
}

//! The `arbiter perspectives eval` report: one value rendered to Markdown, HTML and JSON.
//!
//! It puts the disagreement statistics (α per pool, the most dividing items) next to how
//! predictable each pool and annotator is, so a dataset team sees whom the majority label
//! would silence and whether a model can represent them.

use arbiter_report::svg::{self, IntervalBar};
use arbiter_report::{Page, Table, fmt_opt};
use arbiter_stats::{
    Distance, DomainSpec, DuplicatePolicy, LabelDomain, LabelKind, RatingsBuilder,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::corpus::Corpus;
use crate::eval::{AnnotatorF1, Estimate, Evaluation, ModelFigures};
use crate::model::ModelKind;

/// Disagreement statistics of the pools.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    /// The attribute that defines the pools.
    pub attribute: String,
    /// Nominal α over all labels (`None` when undefined).
    pub alpha: Option<f64>,
    /// α within each pool: (pool, α, annotators).
    pub within: Vec<(String, Option<f64>, usize)>,
    /// Items whose pools' label distributions differ most.
    pub dividing: Vec<DividingRow>,
}

/// One of the most dividing items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DividingRow {
    /// Item id.
    pub item: String,
    /// The start of its text.
    pub text: String,
    /// Largest total-variation distance between two pools.
    pub divergence: f64,
    /// The two pools.
    pub pools: (String, String),
    /// Per pool: share choosing each class.
    pub distributions: Vec<(String, Vec<f64>)>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Every figure.
    pub evaluation: Evaluation,
    /// The pools' disagreement, when a pool attribute was given.
    pub disagreement: Option<Disagreement>,
}

/// Nominal α overall and within each pool, and the ten most dividing items (pools need two
/// labels on an item to count), from the corpus's labels.
pub fn disagreement(corpus: &Corpus, attribute: &str) -> Option<Disagreement> {
    let a = corpus.attributes.iter().position(|n| n == attribute)?;
    let domain = LabelDomain::new(corpus.classes.clone(), LabelKind::Nominal).ok()?;
    let mut b = RatingsBuilder::new(DomainSpec::Explicit(domain), vec![attribute.to_string()]);
    for r in &corpus.ratings {
        let ann = &corpus.annotators[r.annotator as usize];
        b.push(
            &corpus.items[r.item as usize].id,
            &ann.id,
            &corpus.classes[r.label as usize],
            &[ann.attributes[a].as_deref()],
        )
        .ok()?;
    }
    let ratings = b.build(DuplicatePolicy::KeepAll).ok()?;
    let alphas =
        arbiter_stats::groups::group_alphas(&ratings, attribute, &Distance::Nominal).ok()?;
    let (names, of) = corpus.pools(attribute).ok()?;
    let within = alphas
        .within
        .iter()
        .map(|(pool, report)| {
            let n = names
                .iter()
                .position(|p| p == pool)
                .map_or(0, |i| of.iter().filter(|&&x| x == Some(i as u32)).count());
            (pool.clone(), report.alpha.value(), n)
        })
        .collect();
    let text_of: std::collections::HashMap<&str, &str> = corpus
        .items
        .iter()
        .map(|i| (i.id.as_str(), i.text.as_str()))
        .collect();
    let dividing = arbiter_stats::groups::most_dividing_items(&ratings, attribute, 2, 10)
        .ok()?
        .into_iter()
        .map(|d| DividingRow {
            text: excerpt(text_of.get(d.item.as_str()).copied().unwrap_or(""), 140),
            item: d.item,
            divergence: d.divergence,
            pools: d.groups,
            distributions: d.distributions,
        })
        .collect();
    Some(Disagreement {
        attribute: attribute.to_string(),
        alpha: alphas.pooled.alpha.value(),
        within,
        dividing,
    })
}

fn excerpt(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut s: String = flat.chars().take(max).collect();
        s.push('…');
        s
    }
}

fn estimate_json(e: &Estimate) -> Value {
    match e.ci {
        Some(ci) => json!({"value": e.value, "ci": ci}),
        None => json!({"value": e.value}),
    }
}

fn f1_json(f: &AnnotatorF1) -> Value {
    json!({
        "mean": f.mean.map(|e| e.value),
        "mean_ci": f.mean.and_then(|e| e.ci),
        "worst": f.worst,
        "n_annotators": f.n_annotators,
        "per_group": f.per_group,
    })
}

fn fmt_est(e: &Estimate) -> String {
    match e.ci {
        Some([lo, hi]) => format!("{:.4} [{lo:.4}, {hi:.4}]", e.value),
        None => format!("{:.4}", e.value),
    }
}

/// A difference, signed, with its interval.
fn fmt_signed_est(e: &Estimate) -> String {
    match e.ci {
        Some([lo, hi]) => format!("{:+.4} [{lo:+.4}, {hi:+.4}]", e.value),
        None => format!("{:+.4}", e.value),
    }
}

impl EvalReport {
    /// Assemble the report.
    pub fn new(corpus: &Corpus, evaluation: Evaluation) -> EvalReport {
        let disagreement = evaluation
            .settings
            .pool_attribute
            .as_deref()
            .and_then(|a| disagreement(corpus, a));
        EvalReport {
            evaluation,
            disagreement,
        }
    }

    fn model(&self, kind: ModelKind) -> &ModelFigures {
        self.evaluation
            .models
            .iter()
            .find(|m| m.model == kind)
            .expect("every kind is evaluated")
    }

    /// The JSON document: the headline figures at the top level (the selected model's soft CE,
    /// micro-F1 and Manhattan distance; the selected annotator model's per-annotator figures),
    /// then every model and analysis.
    pub fn to_json(&self) -> Value {
        let e = &self.evaluation;
        let best = self.model(e.selected);
        let annotator = self.model(e.selected_annotator_model);
        json!({
            "dataset": e.dataset,
            "n_items": e.n_items,
            "n_annotators": e.n_annotators,
            "n_labels": e.n_labels,
            "split": e.split,
            "split_sizes": {"train": e.split_sizes[0], "dev": e.split_sizes[1], "test": e.split_sizes[2]},
            "selection": e.selection,
            "selection_unseen": e.selection_unseen,
            "selected_model": e.selected,
            "selected_annotator_model": e.selected_annotator_model,
            "soft_ce": best.soft_ce.value,
            "soft_ce_ci": best.soft_ce.ci,
            "micro_f1": best.micro_f1.map(|m| m.value),
            "micro_f1_ci": best.micro_f1.and_then(|m| m.ci),
            "manhattan": best.manhattan.value,
            "per_annotator_error_rate": annotator.per_annotator_error_rate.value,
            "per_annotator_macro_f1": f1_json(&annotator.per_annotator_macro_f1),
            "baselines": e.baselines,
            "test_annotators": {"seen": e.test_annotators[0], "unseen": e.test_annotators[1], "unseen_label_share": e.unseen_label_share},
            "models": e.models.iter().map(|m| json!({
                "model": m.model,
                "components": m.components,
                "l2": m.l2,
                "annotator_l2": m.annotator_l2,
                "blend": m.blend,
                "threshold": m.threshold,
                "dev_soft_ce": m.dev_soft_ce,
                "dev_per_annotator_macro_f1": m.dev_per_annotator_macro_f1,
                "soft_ce": estimate_json(&m.soft_ce),
                "soft_ce_vs_soft_label": m.soft_ce_vs_soft_label.as_ref().map(estimate_json),
                "micro_f1": m.micro_f1.as_ref().map(estimate_json),
                "manhattan": estimate_json(&m.manhattan),
                "per_annotator_error_rate": estimate_json(&m.per_annotator_error_rate),
                "per_annotator_macro_f1": f1_json(&m.per_annotator_macro_f1),
                "seen_annotators_macro_f1": f1_json(&m.seen),
                "unseen_annotators_macro_f1": f1_json(&m.unseen),
                "uncertainty_r": m.uncertainty_r,
                "by_seed": m.by_seed,
            })).collect::<Vec<_>>(),
            "unseen_annotators": e.unseen,
            "learning_curves": {
                "labels_per_annotator": e.curve_labels_per_annotator,
                "training_size": e.curve_training_size,
            },
            "pools": e.pools,
            "disagreement": self.disagreement,
            "features": e.features,
            "components": e.components,
            "components_scores": e.components_scores,
            "settings": e.settings,
        })
    }

    /// Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("# Perspective models: {}\n\n", self.evaluation.dataset);
        for (heading, body) in self.sections() {
            out.push_str(&format!("## {heading}\n\n"));
            for block in body {
                match block {
                    Block::Text(t) => out.push_str(&format!("{t}\n\n")),
                    Block::Table(t) => {
                        out.push_str(&t.to_markdown());
                        out.push('\n');
                    }
                    Block::Figure(..) => {}
                }
            }
        }
        out
    }

    /// A self-contained HTML page with the learning curves and the pool matrix drawn.
    pub fn html(&self) -> String {
        let mut page = Page::new(&format!("Perspective models: {}", self.evaluation.dataset));
        for (heading, body) in self.sections() {
            page.heading(&heading);
            for block in body {
                match block {
                    Block::Text(t) => {
                        page.paragraph(&t);
                    }
                    Block::Table(t) => {
                        page.table(&t);
                    }
                    Block::Figure(svg, caption) => {
                        page.figure(&svg, &caption);
                    }
                }
            }
        }
        page.render()
    }

    fn sections(&self) -> Vec<(String, Vec<Block>)> {
        let e = &self.evaluation;
        let mut out = Vec::new();
        let split = match &e.split {
            crate::eval::SplitMode::Official => "the official splits".to_string(),
            crate::eval::SplitMode::Random { test_share, seed } => {
                format!(
                    "a random item split ({:.0}% test, seed {seed})",
                    test_share * 100.0
                )
            }
        };
        let classes = e.classes.join(", ");
        out.push((
            "Summary".to_string(),
            vec![Block::Text(format!(
                "{} items, {} annotators, {} labels (classes {classes}); {split}: {} train, {} dev, {} test items. Test annotators: {} seen in training, {} not ({:.1}% of test labels). Features: {} → {} principal components for the item models (the width with the lowest soft-label soft CE on the items that choose the ridges: {}); the annotator models choose theirs, at that width or wider, by their own soft CE there (the \"components\" column). Ridges (and, for annotator models, the shared head's weight in the item soft label) chosen by soft CE on {}, the per-annotator decision threshold there by per-annotator macro-F1 (the \"dev\" columns); final models trained on train + dev; every figure is on the test split with a {:.0}% bootstrap interval over items ({} replicates; per-annotator means over annotators), averaged over {} seed(s) where training is seeded.",
                e.n_items,
                e.n_annotators,
                e.n_labels,
                e.split_sizes[0],
                e.split_sizes[1],
                e.split_sizes[2],
                e.test_annotators[0],
                e.test_annotators[1],
                e.unseen_label_share * 100.0,
                describe_features(&e.features),
                e.components,
                widths(&e.components_scores, e.components),
                e.selection.describe() + &e.selection_unseen.describe(),
                e.settings.confidence * 100.0,
                e.settings.bootstrap,
                e.settings.seeds.len(),
            ))],
        ));

        let mut models = Table::new([
            "model",
            "soft CE",
            "Δ soft CE vs soft-label",
            "micro-F1",
            "Manhattan",
            "per-annotator error",
            "per-annotator macro-F1 (mean)",
            "worst annotator",
            "uncertainty r",
            "dev soft CE",
            "components",
        ]);
        let b = &e.baselines;
        models.row([
            "training prior".to_string(),
            format!("{:.4}", b.prior_ce),
            "–".into(),
            fmt_opt(b.majority_f1, 4),
            format!("{:.4}", b.prior_manhattan),
            format!("{:.4}", b.most_frequent_error_rate),
            fmt_opt(b.most_frequent_macro_f1, 4),
            "–".into(),
            "–".into(),
            "–".into(),
        ]);
        models.row(["uniform".to_string(), format!("{:.4}", b.uniform_ce)]);
        models.row([
            "each annotator's most frequent label".to_string(),
            "–".into(),
            "–".into(),
            "–".into(),
            "–".into(),
            format!("{:.4}", b.annotator_most_frequent_error_rate),
        ]);
        for m in &e.models {
            let mut name = m.model.name().to_string();
            if m.model == e.selected {
                name.push_str(" (selected)");
            }
            models.row([
                name,
                fmt_est(&m.soft_ce),
                m.soft_ce_vs_soft_label
                    .as_ref()
                    .map_or("–".into(), fmt_signed_est),
                m.micro_f1.as_ref().map_or("–".into(), fmt_est),
                fmt_est(&m.manhattan),
                fmt_est(&m.per_annotator_error_rate),
                m.per_annotator_macro_f1
                    .mean
                    .as_ref()
                    .map_or("–".into(), fmt_est),
                fmt_opt(m.per_annotator_macro_f1.worst, 4),
                fmt_opt(m.uncertainty_r, 3),
                format!("{:.4}", m.dev_soft_ce),
                m.components.to_string(),
            ]);
        }
        let bars: Vec<(String, Vec<Option<IntervalBar>>)> = e
            .models
            .iter()
            .map(|m| {
                (
                    m.model.name().to_string(),
                    vec![Some(IntervalBar {
                        value: m.soft_ce.value,
                        interval: m.soft_ce.ci,
                    })],
                )
            })
            .chain(std::iter::once((
                "training prior".to_string(),
                vec![Some(IntervalBar {
                    value: b.prior_ce,
                    interval: None,
                })],
            )))
            .collect();
        out.push((
            "Models on the test split".to_string(),
            vec![
                Block::Table(models),
                Block::Text(format!(
                    "Soft CE and micro-F1 as LeWiDi 2023 scores them, Manhattan distance and per-annotator error rate as LeWiDi 2025 does (lower is better for all but F1). Δ soft CE is the model's soft CE minus the soft-label model's, item by item, with a paired bootstrap interval (an interval spanning 0: the test split cannot tell the two apart). Per-annotator macro-F1 averages annotators with at least {} test labels. Per-annotator models predict an item's soft label as the mean over its own annotators. The uncertainty r is Pearson's r between the spread of an item's per-annotator predictions and its observed disagreement.",
                    e.settings.min_annotator_labels
                )),
                Block::Figure(
                    svg::interval_bars(&bars, &["soft CE".to_string()], None, "soft cross-entropy (lower is better)", "Soft CE by model"),
                    "Soft cross-entropy on the test split with bootstrap intervals; the training prior is the floor to beat.".into(),
                ),
            ],
        ));

        let annotator = self.model(e.selected_annotator_model);
        let mut seen = Table::new(["annotators", "model", "n", "macro-F1 mean", "worst"]);
        for m in &e.models {
            for (label, f) in [("seen in training", &m.seen), ("not seen", &m.unseen)] {
                if f.n_annotators > 0 {
                    seen.row([
                        label.to_string(),
                        m.model.name().to_string(),
                        f.n_annotators.to_string(),
                        f.mean.as_ref().map_or("–".into(), fmt_est),
                        fmt_opt(f.worst, 4),
                    ]);
                }
            }
        }
        let mut groups = Table::new(["attribute", "value", "annotators", "macro-F1 mean"]);
        for (attr, values) in &annotator.per_annotator_macro_f1.per_group {
            for (value, g) in values {
                groups.row([
                    attr.clone(),
                    value.clone(),
                    g.n.to_string(),
                    format!("{:.4}", g.mean),
                ]);
            }
        }
        let mut blocks = vec![Block::Table(seen)];
        if !groups.is_empty() {
            blocks.push(Block::Text(format!(
                "Per-annotator macro-F1 of the {} model by annotator attribute:",
                e.selected_annotator_model.name()
            )));
            blocks.push(Block::Table(groups));
        }
        out.push(("Seen and unseen annotators".to_string(), blocks));

        if let Some(u) = &e.unseen {
            let mut t = Table::new([
                "k labels",
                "annotators",
                "population macro-F1",
                "identity macro-F1",
                "adapted macro-F1",
                "population error",
                "identity error",
                "adapted error",
            ]);
            for r in &u.shots {
                t.row([
                    r.k.to_string(),
                    r.n_annotators.to_string(),
                    fmt_opt(r.population_macro_f1, 4),
                    fmt_opt(r.identity_macro_f1, 4),
                    fmt_opt(r.adapted_macro_f1, 4),
                    fmt_opt(r.population_error, 4),
                    fmt_opt(r.identity_error, 4),
                    fmt_opt(r.adapted_error, 4),
                ]);
            }
            out.push((
                "New annotators (k-shot)".to_string(),
                vec![
                    Block::Text(format!(
                        "{} model, new annotators from {} ({} annotators). Each is scored on the same held-out labels: with the population head, placed by their self-described identity, and adapted from k of their labels.",
                        u.model.name(),
                        u.protocol,
                        u.n_annotators
                    )),
                    Block::Table(t),
                ],
            ));
        }

        if !e.curve_labels_per_annotator.is_empty() || !e.curve_training_size.is_empty() {
            let mut blocks = Vec::new();
            for (points, x_label, log_x, what) in [
                (
                    &e.curve_labels_per_annotator,
                    "training labels per annotator (at most)",
                    true,
                    "labels per annotator",
                ),
                (
                    &e.curve_training_size,
                    "share of training items",
                    false,
                    "training size",
                ),
            ] {
                if points.is_empty() {
                    continue;
                }
                let kinds: Vec<ModelKind> = {
                    let mut k: Vec<ModelKind> = points.iter().map(|p| p.model).collect();
                    k.dedup();
                    k.sort();
                    k.dedup();
                    k
                };
                let ce: Vec<(String, Vec<(f64, f64)>)> = kinds
                    .iter()
                    .map(|k| {
                        (
                            k.name().to_string(),
                            points
                                .iter()
                                .filter(|p| p.model == *k)
                                .map(|p| (p.x, p.soft_ce))
                                .collect(),
                        )
                    })
                    .collect();
                let f1: Vec<(String, Vec<(f64, f64)>)> = kinds
                    .iter()
                    .map(|k| {
                        (
                            k.name().to_string(),
                            points
                                .iter()
                                .filter(|p| p.model == *k)
                                .filter_map(|p| p.per_annotator_macro_f1.map(|f| (p.x, f)))
                                .collect(),
                        )
                    })
                    .collect();
                blocks.push(Block::Figure(
                    svg::line_chart(
                        &ce,
                        x_label,
                        "test soft CE",
                        log_x,
                        &format!("Soft CE by {what}"),
                    ),
                    format!("Learning curve over {what}: test soft CE."),
                ));
                blocks.push(Block::Figure(
                    svg::line_chart(
                        &f1,
                        x_label,
                        "per-annotator macro-F1",
                        log_x,
                        &format!("Per-annotator macro-F1 by {what}"),
                    ),
                    format!("Learning curve over {what}: mean per-annotator macro-F1."),
                ));
                let mut t = Table::new([
                    "model",
                    what,
                    "training labels",
                    "soft CE",
                    "per-annotator macro-F1",
                ]);
                for p in points.iter() {
                    let x = if log_x {
                        format!("{}", p.x)
                    } else {
                        format!("{:.0}%", p.x * 100.0)
                    };
                    t.row([
                        p.model.name().to_string(),
                        x,
                        p.n_labels.to_string(),
                        format!("{:.4}", p.soft_ce),
                        fmt_opt(p.per_annotator_macro_f1, 4),
                    ]);
                }
                blocks.push(Block::Table(t));
            }
            out.push(("Learning curves".to_string(), blocks));
        }

        if let Some(pm) = &e.pools {
            let mut blocks = Vec::new();
            let labels: Vec<String> = pm
                .pools
                .iter()
                .zip(&pm.annotators)
                .map(|(p, n)| format!("{p} ({n})"))
                .collect();
            blocks.push(Block::Text(format!(
                "A soft-label model per pool of `{}` (rows: trained on that pool's labels), scored by soft CE against each pool's own soft labels on the test items it labelled (columns). Lower is better; a pool poorly predicted from the others is a viewpoint the pooled label does not carry.",
                pm.attribute
            )));
            blocks.push(Block::Figure(
                svg::heatmap(&labels, &labels, &pm.soft_ce, true, "Pool × pool soft CE"),
                "Rows: trained on; columns: scored against (soft CE, darker is lower).".into(),
            ));
            let mut t = Table::new([
                "pool",
                "annotators",
                "own model",
                "from the other pools",
                "from all pools",
                "per-annotator model",
                "α within pool",
            ]);
            for (i, p) in pm.pools.iter().enumerate() {
                let alpha = self
                    .disagreement
                    .as_ref()
                    .and_then(|d| d.within.iter().find(|(name, _, _)| name == p))
                    .and_then(|(_, a, _)| *a);
                t.row([
                    p.clone(),
                    pm.annotators[i].to_string(),
                    fmt_opt(pm.soft_ce[i][i], 4),
                    fmt_opt(pm.from_others[i], 4),
                    fmt_opt(pm.from_all[i], 4),
                    fmt_opt(pm.annotator_model[i], 4),
                    fmt_opt(alpha, 3),
                ]);
            }
            blocks.push(Block::Table(t));
            out.push(("Pools: who is predictable".to_string(), blocks));
        }

        if let Some(d) = &self.disagreement {
            let mut blocks = vec![Block::Text(format!(
                "Nominal Krippendorff's α over all labels: {}. The items on which the pools of `{}` disagree most (largest total-variation distance between two pools' label shares, pools with at least two labels on the item):",
                fmt_opt(d.alpha, 3),
                d.attribute
            ))];
            let mut t = Table::new(["item", "text", "divergence", "pools", "shares per pool"]);
            for r in &d.dividing {
                let shares: Vec<String> = r
                    .distributions
                    .iter()
                    .map(|(p, v)| {
                        format!(
                            "{p}: {}",
                            v.iter()
                                .map(|x| format!("{x:.2}"))
                                .collect::<Vec<_>>()
                                .join("/")
                        )
                    })
                    .collect();
                t.row([
                    r.item.clone(),
                    r.text.clone(),
                    format!("{:.2}", r.divergence),
                    format!("{} vs {}", r.pools.0, r.pools.1),
                    shares.join("; "),
                ]);
            }
            blocks.push(Block::Table(t));
            out.push(("Disagreement".to_string(), blocks));
        }
        out
    }
}

enum Block {
    Text(String),
    Table(Table),
    Figure(String, String),
}

/// `32: 0.2950, 64: 0.2946, …`: each width tried and its soft CE, and a warning when the
/// widest won (the optimum may lie past the grid).
fn widths(scores: &[crate::eval::ComponentsScore], chosen: usize) -> String {
    let listed = scores
        .iter()
        .map(|s| format!("{}: {:.4}", s.components, s.dev_soft_ce))
        .collect::<Vec<_>>()
        .join(", ");
    let widest = scores.iter().map(|s| s.components).max();
    if scores.len() > 1 && widest == Some(chosen) {
        format!("{listed}; the widest tried, so a wider `--components` grid may score better")
    } else {
        listed
    }
}

fn describe_features(spec: &crate::features::FeatureSpec) -> String {
    match &spec.embedder {
        Some(name) => format!(
            "{name} sentence embedding ({}) + {} hashed character n-gram buckets",
            spec.embedding_dim, spec.ngram_buckets
        ),
        None => format!("{} hashed character n-gram buckets", spec.ngram_buckets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::ComponentsScore;

    fn score(components: usize, dev_soft_ce: f64) -> ComponentsScore {
        ComponentsScore {
            components,
            l2: 1e-4,
            dev_soft_ce,
        }
    }

    #[test]
    fn the_summary_lists_every_width_and_warns_when_the_widest_won() {
        let scores = [score(32, 0.30456), score(64, 0.2983)];
        assert_eq!(widths(&scores, 32), "32: 0.3046, 64: 0.2983");
        assert_eq!(
            widths(&scores, 64),
            "32: 0.3046, 64: 0.2983; the widest tried, so a wider `--components` grid may score better"
        );
        // A single width is no choice, so no warning.
        assert_eq!(widths(&scores[..1], 32), "32: 0.3046");
    }
}

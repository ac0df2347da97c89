//! Feature-set experiment for the embedded grader: train heads on the gold train split with each
//! candidate feature layout, report per-proposition AUROC on the gold test split.
//!
//! `cargo run --release -p arbiter-graders --example embedded_eval [MAX_TOKENS]`
//! (data from `$ARBITER_DATA`, default `../shared/data`; model as for `arbiter grade`).

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Instant;

use arbiter_core::Sample;
use arbiter_core::jsonl::{OnInvalid, read_with};
use arbiter_graders::calibration::auroc;
use arbiter_graders::embedded::features::FeatureBlock;
use arbiter_graders::embedded::featurise;
use arbiter_graders::embedded::logistic::{Matrix, fit_cv};
use arbiter_graders::embedded::model::{MiniLm, default_model_dir};

fn data_dir() -> PathBuf {
    match std::env::var_os("ARBITER_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

fn read(split: &str) -> Vec<Sample> {
    let path = data_dir().join("rbr_gold").join(split);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read_with(
        BufReader::new(file),
        split,
        OnInvalid::Fail,
        Sample::from_value,
    )
    .unwrap()
    .records
    .into_iter()
    .map(|r| r.record)
    .collect()
}

fn hstack(parts: &[&Matrix]) -> Matrix {
    let rows = parts[0].rows;
    let cols = parts.iter().map(|m| m.cols).sum();
    let mut data = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for m in parts {
            data.extend_from_slice(m.row(i));
        }
    }
    Matrix { rows, cols, data }
}

fn main() {
    let max_tokens: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let (train, test) = (read("train.jsonl"), read("test.jsonl"));
    let encoder = MiniLm::load(&default_model_dir(), max_tokens).expect("model");
    let names: Vec<String> = train[0].propositions.keys().cloned().collect();
    let blocks = [
        FeatureBlock::Completion,
        FeatureBlock::LastUser,
        FeatureBlock::CompletionOpening,
        FeatureBlock::Lexical,
    ];
    let mut feats: BTreeMap<String, (Matrix, Matrix)> = BTreeMap::new();
    for b in blocks {
        let t = Instant::now();
        let tr = featurise(&encoder, &train, &[b]).unwrap();
        let te = featurise(&encoder, &test, &[b]).unwrap();
        eprintln!(
            "{b:?}: {} texts embedded in {:.1?}",
            train.len() + test.len(),
            t.elapsed()
        );
        feats.insert(format!("{b:?}"), (tr, te));
    }
    let configs: Vec<Vec<&str>> = vec![
        vec!["Completion"],
        vec!["Completion", "LastUser"],
        vec!["Completion", "Lexical"],
        vec!["Completion", "LastUser", "Lexical"],
        vec!["Completion", "CompletionOpening", "LastUser", "Lexical"],
    ];
    let mut per_prop: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    let mut means = Vec::new();
    for config in &configs {
        let xtr = hstack(&config.iter().map(|c| &feats[*c].0).collect::<Vec<_>>());
        let xte = hstack(&config.iter().map(|c| &feats[*c].1).collect::<Vec<_>>());
        let t = Instant::now();
        let mut in_mean = Vec::new();
        for name in &names {
            let ytr: Vec<bool> = train.iter().map(|s| s.propositions[name]).collect();
            let yte: Vec<bool> = test.iter().map(|s| s.propositions[name]).collect();
            let (model, _) = fit_cv(&xtr, &ytr, 5, 20241101);
            let scores: Vec<f64> = (0..xte.rows).map(|i| model.predict(xte.row(i))).collect();
            let a = auroc(&scores, &yte);
            if yte.iter().filter(|&&y| y).count() >= 10
                && let Some(a) = a
            {
                in_mean.push(a);
            }
            per_prop.entry(name.clone()).or_default().push(a);
        }
        let mean = in_mean.iter().sum::<f64>() / in_mean.len().max(1) as f64;
        eprintln!(
            "{config:?}: mean AUROC {mean:.4} over {} (fit {:.1?})",
            in_mean.len(),
            t.elapsed()
        );
        means.push(mean);
    }
    println!(
        "| proposition | train+ | test+ | {} |",
        configs
            .iter()
            .map(|c| c.join("+"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---:|---:|{}", "---:|".repeat(configs.len()));
    for name in &names {
        let trp = train.iter().filter(|s| s.propositions[name]).count();
        let tep = test.iter().filter(|s| s.propositions[name]).count();
        let cells: Vec<String> = per_prop[name]
            .iter()
            .map(|a| a.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into()))
            .collect();
        println!("| {name} | {trp} | {tep} | {} |", cells.join(" | "));
    }
    println!(
        "| **mean (test+ ≥ 10)** | | | {} |",
        means
            .iter()
            .map(|m| format!("**{m:.3}**"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
}

//! Feature-layout experiment for the embedded grader. For each candidate layout it trains one
//! head per proposition and reports two mean AUROCs over the propositions with ≥ 10 positives in
//! the gold test split:
//!
//! - **train CV**: out-of-fold AUROC on the gold train split (5 stratified folds, λ chosen by
//!   inner CV inside each fold). Layouts are chosen on this figure only.
//! - **test**: heads fitted on all of train, scored on the test split (reported, never tuned on).
//!
//! `cargo run --release -p arbiter-graders --example embedded_eval [LAYOUT …]`
//! (data from `$ARBITER_DATA`, default `../shared/data`; model as for `arbiter grade`). With no
//! argument every built-in layout is run; a layout is `+`-joined block names, e.g.
//! `mean128+max128+lex`. Per-proposition figures of the last layout are printed as Markdown.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use arbiter_core::Sample;
use arbiter_graders::calibration::auroc;
use arbiter_graders::embedded::features::{last_user_turn, lexical_features, sentences};
use arbiter_graders::embedded::logistic::{Matrix, fit_cv};
use arbiter_graders::embedded::model::{
    MiniLm, default_model_dir, max_pool, mean_pool, normalised,
};
use arbiter_graders::embedded::{DEFAULT_FEATURES, DEFAULT_MAX_TOKENS, featurise};

#[path = "../tests/common/mod.rs"]
mod common;

const SEED: u64 = 20241101;

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

fn to_matrix(rows: Vec<Vec<f32>>) -> Matrix {
    let rows: Vec<Vec<f64>> = rows
        .into_iter()
        .map(|r| r.into_iter().map(f64::from).collect())
        .collect();
    Matrix::from_rows(&rows).unwrap()
}

fn mean_max(states: &[f32]) -> (Vec<f32>, Vec<f32>) {
    (normalised(&mean_pool(states)), max_pool(states))
}

/// Reply ids cut to the first or last `keep` body tokens.
fn cut(ids: &[u32], keep: usize, tail: bool) -> Vec<u32> {
    if ids.len() <= keep + 2 {
        return ids.to_vec();
    }
    let body = &ids[1..ids.len() - 1];
    let part = if tail {
        &body[body.len() - keep..]
    } else {
        &body[..keep]
    };
    let mut out = vec![ids[0]];
    out.extend_from_slice(part);
    out.push(ids[ids.len() - 1]);
    out
}

/// Every candidate block for one split, by name. Reply blocks are named
/// `{mean,max}{TOKENS}` for the full six-layer encoder and `{mean,max}{TOKENS}l{LAYERS}` for the
/// first LAYERS layers.
fn blocks(encoders: &[(usize, MiniLm)], samples: &[Sample]) -> BTreeMap<String, Matrix> {
    let mut out = BTreeMap::new();
    let encoder = &encoders[0].1;
    let replies: Vec<&str> = samples.iter().map(|s| s.completion_text()).collect();
    let full = encoder.tokenize_limited(&replies, 512).unwrap();
    let none = &mut |_| {};
    let runs: Vec<(usize, usize)> = std::env::var("EVAL_RUNS")
        .unwrap_or_else(|_| "6:64,6:32,3:64,2:96".into())
        .split(',')
        .map(|r| {
            let (l, t) = r.split_once(':').unwrap();
            (l.parse().unwrap(), t.parse().unwrap())
        })
        .collect();
    for (layers, tokens) in runs {
        let t = Instant::now();
        let enc = &encoders.iter().find(|(l, _)| *l == layers).unwrap().1;
        let ids: Vec<Vec<u32>> = full.iter().map(|i| cut(i, tokens - 2, false)).collect();
        let pooled = enc.embed_ids(&ids, 32, none, &mean_max);
        let (mean, max): (Vec<_>, Vec<_>) = pooled.into_iter().unzip();
        let suffix = if layers == 6 {
            String::new()
        } else {
            format!("l{layers}")
        };
        eprintln!(
            "  reply {tokens} tokens, {layers} layers: {:.1?}",
            t.elapsed()
        );
        out.insert(format!("mean{tokens}{suffix}"), to_matrix(mean));
        out.insert(format!("max{tokens}{suffix}"), to_matrix(max));
    }
    // Static word-piece bags over the whole reply.
    let (smean, smax): (Vec<_>, Vec<_>) = full
        .iter()
        .map(|ids| {
            let pieces = encoder.static_embeddings(ids);
            (normalised(&mean_pool(&pieces)), max_pool(&pieces))
        })
        .unzip();
    out.insert("smean".into(), to_matrix(smean));
    out.insert("smax".into(), to_matrix(smax));
    // Last user turn (≤ 32 tokens) and its cosine with the reply's 64-token embedding.
    if std::env::var("EVAL_USER").is_ok() {
        let t = Instant::now();
        let users: Vec<String> = samples.iter().map(last_user_turn).collect();
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        let ids = encoder.tokenize_limited(&users, 32).unwrap();
        let u = encoder.embed_ids(&ids, 32, none, &|s| normalised(&mean_pool(s)));
        eprintln!("  last user turn: {:.1?}", t.elapsed());
        if let Some(m) = out.get("mean64") {
            let cos: Vec<Vec<f64>> = (0..samples.len())
                .map(|i| {
                    vec![
                        u[i].iter()
                            .zip(m.row(i))
                            .map(|(a, b)| f64::from(*a) * b)
                            .sum(),
                    ]
                })
                .collect();
            out.insert("cos64".into(), Matrix::from_rows(&cos).unwrap());
        }
        out.insert("user".into(), to_matrix(u));
    }
    let lex: Vec<Vec<f64>> = replies.iter().map(|r| lexical_features(r)).collect();
    out.insert("lex".into(), Matrix::from_rows(&lex).unwrap());
    let _ = sentences;
    out
}

fn save_blocks(path: &std::path::Path, blocks: &BTreeMap<String, Matrix>) {
    let mut bytes = Vec::new();
    for (name, m) in blocks {
        bytes.extend((name.len() as u64).to_le_bytes());
        bytes.extend(name.as_bytes());
        bytes.extend((m.rows as u64).to_le_bytes());
        bytes.extend((m.cols as u64).to_le_bytes());
        for v in &m.data {
            bytes.extend(v.to_le_bytes());
        }
    }
    let _ = std::fs::write(path, bytes);
}

fn load_blocks(path: &std::path::Path) -> Option<BTreeMap<String, Matrix>> {
    let bytes = std::fs::read(path).ok()?;
    let mut out = BTreeMap::new();
    let mut at = 0;
    let mut next = |n: usize| -> Option<&[u8]> {
        let s = bytes.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let u = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap()) as usize;
    while let Some(len) = next(8) {
        let len = u(len);
        let name = String::from_utf8(next(len)?.to_vec()).ok()?;
        let rows = u(next(8)?);
        let cols = u(next(8)?);
        let data = next(rows * cols * 8)?
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.insert(name, Matrix { rows, cols, data });
    }
    Some(out)
}

/// Out-of-fold predictions of `fit_cv` heads (stratified outer folds, inner CV for λ).
fn out_of_fold(x: &Matrix, y: &[bool], folds: usize, seed: u64) -> Vec<f64> {
    let n = y.len();
    let mut rng = arbiter_core::rng::SeededRng::new(seed ^ 0x5eed);
    let mut pos: Vec<usize> = (0..n).filter(|&i| y[i]).collect();
    let mut neg: Vec<usize> = (0..n).filter(|&i| !y[i]).collect();
    rng.shuffle(&mut pos);
    rng.shuffle(&mut neg);
    let mut fold_of = vec![0usize; n];
    for (k, &i) in pos.iter().chain(neg.iter()).enumerate() {
        fold_of[i] = k % folds;
    }
    let mut pred = vec![0.0; n];
    for fold in 0..folds {
        let train: Vec<usize> = (0..n).filter(|&i| fold_of[i] != fold).collect();
        let rows: Vec<Vec<f64>> = train.iter().map(|&i| x.row(i).to_vec()).collect();
        let xt = Matrix::from_rows(&rows).unwrap();
        let yt: Vec<bool> = train.iter().map(|&i| y[i]).collect();
        let (model, _) = fit_cv(&xt, &yt, 5, seed);
        for i in (0..n).filter(|&i| fold_of[i] == fold) {
            pred[i] = model.predict(x.row(i));
        }
    }
    pred
}

struct Outcome {
    cv: BTreeMap<String, Option<f64>>,
    test: BTreeMap<String, Option<f64>>,
}

fn evaluate(
    xtr: &Matrix,
    xte: &Matrix,
    train: &[Sample],
    test: &[Sample],
    names: &[String],
) -> Outcome {
    let results: Vec<(String, Option<f64>, Option<f64>)> = std::thread::scope(|scope| {
        let chunks: Vec<&[String]> = names.chunks(names.len().div_ceil(2)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|name| {
                            let ytr: Vec<bool> =
                                train.iter().map(|s| s.propositions[name]).collect();
                            let yte: Vec<bool> =
                                test.iter().map(|s| s.propositions[name]).collect();
                            let (model, report) = fit_cv(xtr, &ytr, 5, SEED);
                            let oof = if std::env::var("EVAL_NESTED").is_ok() {
                                out_of_fold(xtr, &ytr, 5, SEED)
                            } else {
                                report.cv_predictions
                            };
                            let scores: Vec<f64> =
                                (0..xte.rows).map(|i| model.predict(xte.row(i))).collect();
                            (name.clone(), auroc(&oof, &ytr), auroc(&scores, &yte))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut out = Outcome {
        cv: BTreeMap::new(),
        test: BTreeMap::new(),
    };
    for (name, cv, te) in results {
        out.cv.insert(name.clone(), cv);
        out.test.insert(name, te);
    }
    out
}

fn mean_over(values: &BTreeMap<String, Option<f64>>, names: &[&String]) -> f64 {
    let v: Vec<f64> = names.iter().filter_map(|n| values[*n]).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn main() {
    let (train, test) = (
        common::gold_samples("train.jsonl", usize::MAX),
        common::gold_samples("test.jsonl", usize::MAX),
    );
    let encoders: Vec<(usize, MiniLm)> = [6, 3, 2]
        .map(|l| {
            (
                l,
                MiniLm::load_layers(&default_model_dir(), 512, Some(l)).expect("model"),
            )
        })
        .into_iter()
        .collect();
    let names: Vec<String> = train[0].propositions.keys().cloned().collect();
    let in_mean: Vec<&String> = names
        .iter()
        .filter(|n| test.iter().filter(|s| s.propositions[*n]).count() >= 10)
        .collect();
    let mut layouts: Vec<String> = std::env::args().skip(1).collect();
    if layouts.is_empty() {
        layouts = [
            "mean64+lex",
            "mean64+max64+lex",
            "mean32+max32+lex",
            "mean64l3+max64l3+lex",
            "mean96l2+max96l2+lex",
            "smean+smax+lex",
            "mean32+max32+smean+lex",
            "mean64l3+max64l3+smean+lex",
        ]
        .map(String::from)
        .to_vec();
    }
    eprintln!("embedding train and test with every candidate block:");
    let t = Instant::now();
    let cache = |split: &str| PathBuf::from(format!("/tmp/arbiter-eval-blocks-{split}.bin"));
    let (btr, bte) = match (load_blocks(&cache("train")), load_blocks(&cache("test"))) {
        (Some(a), Some(b)) if std::env::var("EVAL_FRESH").is_err() => (a, b),
        _ => {
            let (a, b) = (blocks(&encoders, &train), blocks(&encoders, &test));
            save_blocks(&cache("train"), &a);
            save_blocks(&cache("test"), &b);
            (a, b)
        }
    };
    eprintln!("all blocks: {:.1?}", t.elapsed());
    let mut last = None;
    println!("| layout | train CV mean AUROC | test mean AUROC |");
    println!("|---|---:|---:|");
    for layout in &layouts {
        let t = Instant::now();
        let (xtr, xte) = if layout == "shipped" {
            // The library's own featurisation with the shipped layout (what `arbiter grade` runs).
            let enc = MiniLm::load(&default_model_dir(), DEFAULT_MAX_TOKENS).unwrap();
            (
                featurise(&enc, &train, &DEFAULT_FEATURES, &mut |_| {}).unwrap(),
                featurise(&enc, &test, &DEFAULT_FEATURES, &mut |_| {}).unwrap(),
            )
        } else {
            let parts: Vec<&str> = layout.split('+').collect();
            let get = |b: &BTreeMap<String, Matrix>, p: &str| -> Matrix {
                b.get(p)
                    .unwrap_or_else(|| panic!("unknown block {p:?}; known: {:?}", b.keys()))
                    .clone()
            };
            let tr: Vec<Matrix> = parts.iter().map(|p| get(&btr, p)).collect();
            let te: Vec<Matrix> = parts.iter().map(|p| get(&bte, p)).collect();
            (
                hstack(&tr.iter().collect::<Vec<_>>()),
                hstack(&te.iter().collect::<Vec<_>>()),
            )
        };
        let outcome = evaluate(&xtr, &xte, &train, &test, &names);
        println!(
            "| {layout} | {:.3} | {:.3} |",
            mean_over(&outcome.cv, &in_mean),
            mean_over(&outcome.test, &in_mean)
        );
        eprintln!("  ({layout}: {} features, {:.1?})", xtr.cols, t.elapsed());
        last = Some((layout.clone(), outcome));
    }
    if let Some((layout, outcome)) = last {
        println!("\nPer proposition, layout {layout}:\n");
        println!("| proposition | train+ | test+ | train CV AUROC | test AUROC |");
        println!("|---|---:|---:|---:|---:|");
        let f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into());
        for name in &names {
            let trp = train.iter().filter(|s| s.propositions[name]).count();
            let tep = test.iter().filter(|s| s.propositions[name]).count();
            println!(
                "| {name} | {trp} | {tep} | {} | {} |",
                f(outcome.cv[name]),
                f(outcome.test[name])
            );
        }
    }
}

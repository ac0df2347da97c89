//! Calibration of a heads file on the gold test split: per proposition positives,
//! accuracy at 0.5, AUROC and ECE, as Markdown (the table in the crate README).
//!
//! `cargo run --release -p arbiter-graders --example embedded_calibrate [HEADS.json]`
//! (default: the built-in heads; data from `$ARBITER_DATA`, default `../shared/data`).

use arbiter_core::PropositionSpec;
use arbiter_graders::Grader;
use arbiter_graders::calibration::calibrate;
use arbiter_graders::embedded::model::default_model_dir;
use arbiter_graders::embedded::{EmbeddedGrader, HeadsFile};

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let heads = match std::env::args().nth(1) {
        Some(path) => HeadsFile::from_json(&std::fs::read_to_string(&path).unwrap(), &path),
        None => HeadsFile::default_heads(),
    }
    .expect("heads");
    let samples = common::gold_samples("test.jsonl", usize::MAX);
    let grader = EmbeddedGrader::load(&default_model_dir(), heads).expect("model");
    let names: Vec<String> = grader.heads().heads.keys().cloned().collect();
    let props: Vec<PropositionSpec> = names
        .iter()
        .map(|n| PropositionSpec {
            name: n.clone(),
            question: String::new(),
        })
        .collect();
    let grades = grader.grade_batch(&samples, &props).unwrap();
    let report = calibrate(
        &grader.describe(),
        "rbr_gold/test.jsonl",
        &samples,
        &grades,
        &names,
        10,
    );
    print!("{}", report.to_markdown());
}

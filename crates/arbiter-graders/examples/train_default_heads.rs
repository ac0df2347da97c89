//! Writes `models/heads-default.json`: one head per gold proposition, trained on the gold train
//! split only, with the default feature layout. Same library call as `arbiter grader train`.
//!
//! `cargo run -p arbiter-graders --example train_default_heads -- OUT.json`

use arbiter_core::PropositionSpec;
use arbiter_graders::embedded::model::{MiniLm, default_model_dir};
use arbiter_graders::embedded::{
    DEFAULT_ENCODER_LAYERS, DEFAULT_FEATURES, DEFAULT_MAX_TOKENS, Provenance, train_heads,
};

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "heads.json".into());
    let samples = common::gold_samples("train.jsonl", usize::MAX);
    let bytes =
        std::fs::read(common::data_dir().join("rbr_gold/train.jsonl")).expect("gold train split");
    let props: Vec<PropositionSpec> = samples[0]
        .propositions
        .keys()
        .map(|n| PropositionSpec {
            name: n.clone(),
            question: String::new(),
        })
        .collect();
    let encoder = MiniLm::load_layers(
        &default_model_dir(),
        DEFAULT_MAX_TOKENS,
        DEFAULT_ENCODER_LAYERS,
    )
    .expect("model");
    let provenance = Provenance {
        command: "cargo run -p arbiter-graders --example train_default_heads -- crates/arbiter-graders/models/heads-default.json".into(),
        data: "rbr_gold/train.jsonl".into(),
        data_sha256: arbiter_graders::sha256_hex(&bytes),
        seed: 20241101,
    };
    let heads = train_heads(
        &encoder,
        &samples,
        &props,
        &DEFAULT_FEATURES,
        DEFAULT_MAX_TOKENS,
        provenance,
    )
    .unwrap();
    std::fs::write(&out, serde_json::to_string(&heads).unwrap() + "\n").unwrap();
    eprintln!("wrote {} heads to {out}", heads.heads.len());
}

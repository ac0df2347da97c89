//! Shared by the integration tests: gold data and proposition specs. The llama-server child
//! process lives in `arbiter-testkit` (shared with the CLI's tests and the benchmark).
#![allow(dead_code)]

use std::io::BufReader;
use std::path::PathBuf;

use arbiter_core::jsonl::{OnInvalid, read_with};
use arbiter_core::{PropositionSpec, Sample};

/// `$ARBITER_DATA`, else `../shared/data` next to the repository root.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("ARBITER_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// The first `n` samples of a gold split.
pub fn gold_samples(split: &str, n: usize) -> Vec<Sample> {
    let path = data_dir().join("rbr_gold").join(split);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed = read_with(
        BufReader::new(file),
        split,
        OnInvalid::Fail,
        Sample::from_value,
    )
    .unwrap();
    parsed
        .records
        .into_iter()
        .take(n)
        .map(|r| r.record)
        .collect()
}

/// Simple questions for a few gold propositions (the policy crate owns the real wording).
pub fn specs(names: &[&str]) -> Vec<PropositionSpec> {
    names
        .iter()
        .map(|n| PropositionSpec {
            name: n.to_string(),
            question: format!(
                "Does the reply show this property: {}?",
                n.replace('_', " ")
            ),
        })
        .collect()
}

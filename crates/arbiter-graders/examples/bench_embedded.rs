//! Throughput of the embedded grader: all 23 default propositions for every gold sample
//! (train + test, 518 samples, or the first N given as argument), after a warm-up batch; prints
//! samples/s and peak RSS.
//!
//! `cargo run -p arbiter-graders --example bench_embedded [N]`

use std::io::BufReader;
use std::path::PathBuf;
use std::time::Instant;

use arbiter_core::jsonl::{OnInvalid, read_with};
use arbiter_core::{PropositionSpec, Sample};
use arbiter_graders::Grader;
use arbiter_graders::embedded::model::default_model_dir;
use arbiter_graders::embedded::{EmbeddedGrader, HeadsFile};

fn read(split: &str) -> Vec<Sample> {
    let dir = match std::env::var_os("ARBITER_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    let file = std::fs::File::open(dir.join("rbr_gold").join(split)).expect("gold data");
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

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let t = Instant::now();
    let heads = HeadsFile::default_heads().expect("built-in heads");
    let grader = EmbeddedGrader::load(&default_model_dir(), heads).expect("model");
    eprintln!(
        "load (checksums + weights + tokenizer): {:.2?}",
        t.elapsed()
    );
    let mut samples = read("train.jsonl");
    samples.extend(read("test.jsonl"));
    // Optional first argument: grade only the first N samples (a quicker run).
    if let Some(n) = std::env::args().nth(1).and_then(|a| a.parse().ok()) {
        samples.truncate(n);
    }
    let props: Vec<PropositionSpec> = grader
        .heads()
        .heads
        .keys()
        .map(|n| PropositionSpec {
            name: n.clone(),
            question: String::new(),
        })
        .collect();
    grader.grade_batch(&samples[..32], &props).unwrap();
    let rounds = 1;
    let t = Instant::now();
    for _ in 0..rounds {
        for batch in samples.chunks(64) {
            grader.grade_batch(batch, &props).unwrap();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let n = samples.len() * rounds;
    println!(
        "embedded: {n} samples × {} propositions in {secs:.2} s = {:.1} samples/s; peak RSS {:.0} MB",
        props.len(),
        n as f64 / secs,
        peak_rss_mb().unwrap_or(f64::NAN)
    );
}

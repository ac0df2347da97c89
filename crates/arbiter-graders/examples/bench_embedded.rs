//! Throughput of the embedded grader: all 23 default propositions for every gold sample
//! (train + test, 518 samples, or the first N given as argument), graded the way
//! `arbiter grade` does it (calls of the grader's preferred batch size), after a warm-up.
//! Prints samples/s (wall clock), the process's CPU time, the load average and peak RSS.
//!
//! `cargo run --release -p arbiter-graders --example bench_embedded [N] [ROUNDS]`
//!
//! Other processes on the machine slow the wall-clock figure down; the CPU-time figure
//! (samples per CPU-second, times the cores) estimates what a quiet machine would do.

use std::time::Instant;

use arbiter_core::PropositionSpec;
use arbiter_graders::Grader;
use arbiter_graders::embedded::model::default_model_dir;
use arbiter_graders::embedded::{EmbeddedGrader, HeadsFile};

#[path = "../tests/common/mod.rs"]
mod common;

fn status_field(name: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of this process (Linux clock ticks are 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let limit: Option<usize> = args.get(1).and_then(|a| a.parse().ok());
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let t = Instant::now();
    let heads = HeadsFile::default_heads().expect("built-in heads");
    let grader = EmbeddedGrader::load(&default_model_dir(), heads).expect("model");
    let rss_loaded = status_field("VmRSS:").unwrap_or(f64::NAN) / 1024.0;
    eprintln!(
        "load (checksums + weights + tokenizer): {:.2?}, RSS {rss_loaded:.0} MB",
        t.elapsed()
    );
    let mut samples = common::gold_samples("train.jsonl", usize::MAX);
    samples.extend(common::gold_samples("test.jsonl", usize::MAX));
    if let Some(n) = limit {
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
    let features: Vec<String> = grader
        .heads()
        .features
        .iter()
        .map(|f| format!("{f:?}"))
        .collect();
    eprintln!(
        "heads: {} propositions, features {}, ≤ {} tokens per reply; threads: {}",
        props.len(),
        features.join("+"),
        grader.heads().max_tokens,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    grader
        .grade_batch(&samples[..32.min(samples.len())], &props)
        .unwrap();
    let batch = grader.preferred_batch_size();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut best: f64 = 0.0;
    for round in 1..=rounds {
        let (t, cpu0, load) = (Instant::now(), cpu_seconds(), load_average());
        let mut graded = 0;
        for chunk in samples.chunks(batch) {
            graded += grader.grade_batch(chunk, &props).unwrap().len();
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let rate = graded as f64 / secs;
        best = best.max(rate);
        println!(
            "round {round}: {graded} samples × {} propositions in {secs:.2} s = {rate:.1} samples/s; CPU {cpu:.2} s ({:.1} samples per CPU-second, × {cores} cores = {:.0}/s); load average before: {load}",
            props.len(),
            graded as f64 / cpu,
            cores * graded as f64 / cpu,
        );
    }
    println!(
        "best {best:.1} samples/s; peak RSS {:.0} MB; load average now: {}",
        status_field("VmHWM:").unwrap_or(f64::NAN) / 1024.0,
        load_average()
    );
}

//! Harness overhead of `arbiter eval run`: the 450 XSTest prompts at 64 requests in flight
//! against a scripted model with a fixed 200 ms latency, compared with the ideal wall time.
//!
//! ```sh
//! cargo build --release -p arbiter --bin arbiter --example eval_overhead
//! target/release/examples/eval_overhead [--runs 3] [--grader embedded]
//! ```
//!
//! The refusal grader is a second scripted server without latency (or, with `--grader
//! embedded`, the embedded grader, whose CPU time then counts too). Each run is a fresh process
//! with a fresh run directory and no response cache. Reported per run: wall time from spawn to
//! exit, the ratio to the ideal `samples × latency / concurrency` (issue 5) and to the
//! wave-quantised ideal `ceil(samples / concurrency) × latency`, and peak RSS (`VmHWM`, sampled
//! every 2 ms from /proc). Needs `$ARBITER_DATA` (default `../shared/data`) and Linux for RSS.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arbiter_testkit::{Reply, ScriptedServer};
use serde_json::json;

const LATENCY: Duration = Duration::from_millis(200);
const CONCURRENCY: usize = 64;

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let runs: usize = flag("--runs").and_then(|v| v.parse().ok()).unwrap_or(3);
    let embedded = flag("--grader").as_deref() == Some("embedded");
    let exe = std::env::current_exe().expect("own path");
    let arbiter = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("arbiter"))
        .filter(|p| p.exists())
        .expect("build the arbiter binary in the same profile first (see the module docs)");
    let data = std::env::var_os("ARBITER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(
        data.join("evals/xstest/xstest_prompts.csv").exists(),
        "XSTest not found under {} (set ARBITER_DATA)",
        data.display()
    );

    let model = ScriptedServer::start(|_| Reply::Text("Sure, here is how.".into()), LATENCY)
        .expect("model server");
    let grader = ScriptedServer::start(
        |_| {
            Reply::Raw(json!({"choices": [{"index": 0,
                "message": {"role": "assistant", "content": "No"},
                "logprobs": {"content": [{"token": "No", "logprob": -0.1,
                    "top_logprobs": [{"token": "No", "logprob": -0.1}, {"token": "Yes", "logprob": -2.4}]}]}}],
                "usage": {"prompt_tokens": 80, "completion_tokens": 1}}))
        },
        Duration::ZERO,
    )
    .expect("grader server");

    let samples = 450.0;
    let ideal = samples * LATENCY.as_secs_f64() / CONCURRENCY as f64;
    let waves = (samples / CONCURRENCY as f64).ceil() * LATENCY.as_secs_f64();
    println!(
        "XSTest 450 items, {CONCURRENCY} in flight, model latency {} ms, grader {}",
        LATENCY.as_millis(),
        if embedded {
            "embedded"
        } else {
            "scripted (0 ms)"
        }
    );
    println!("ideal {ideal:.3} s (samples × latency / concurrency); wave-quantised {waves:.3} s");
    let mut walls = Vec::new();
    for run in 0..runs {
        let out = std::env::temp_dir().join(format!(
            "arbiter-eval-overhead-{}-{run}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&out);
        let model_spec = format!("openai:bench@{}", model.base_url());
        let grader_spec = if embedded {
            "embedded".to_string()
        } else {
            format!("openai:grader@{}", grader.base_url())
        };
        let before = model.requests();
        let start = Instant::now();
        let mut child = Command::new(&arbiter)
            .args(["eval", "run", "--suite", "xstest", "--no-cache"])
            .args(["--model", &model_spec, "--grader", &grader_spec])
            .args(["--concurrency", &CONCURRENCY.to_string()])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start arbiter");
        let pid = child.id();
        let mut peak = 0;
        let status = loop {
            if let Some(kib) = peak_rss_kib(pid) {
                peak = peak.max(kib);
            }
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let wall = start.elapsed().as_secs_f64();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "arbiter failed: {err}");
        let asked = model.requests() - before;
        assert_eq!(asked, 450, "every item asked once");
        println!(
            "run {}: wall {wall:.3} s = {:.3}× ideal, {:.3}× wave-quantised; peak RSS {:.1} MiB",
            run + 1,
            wall / ideal,
            wall / waves,
            peak as f64 / 1024.0
        );
        walls.push(wall);
        let _ = std::fs::remove_dir_all(&out);
    }
    walls.sort_by(f64::total_cmp);
    let median = walls[walls.len() / 2];
    println!(
        "median wall {median:.3} s = {:.3}× ideal ({:.3}× wave-quantised); goal ≤ 1.2×",
        median / ideal,
        median / waves
    );
}

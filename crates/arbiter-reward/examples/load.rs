//! Load benchmark of `arbiter reward serve` on loopback against the same grader offline.
//!
//! ```sh
//! scripts/bench/reward_serve.sh            # builds release, fits weights, runs this
//! cargo run --release -p arbiter-reward --example load -- \
//!     --arbiter target/release/arbiter --weights W.json --data a.jsonl [--data b.jsonl] \
//!     [--seconds 30] [--batches 1,16,64] [--clients 8] [--memory-seconds 300]
//! ```
//!
//! 1. Offline, right before each served setting (so both see the same machine): a `RewardModel`
//!    over the embedded grader scores every sample in one call (the grader's own batching),
//!    repeated until `--seconds` have passed: samples/s.
//! 2. Served: the real binary with the grade cache off (`--cache-entries 0`, so every sample is
//!    graded as offline), `--clients` threads each posting `/v1/rewards` requests of B samples
//!    back to back for `--seconds`: samples/s, p50/p99 request latency.
//! 3. Memory: requests of 16 for `--memory-seconds`, the server's RSS read every 10 s.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arbiter_core::Sample;
use arbiter_graders::GraderOptions;
use arbiter_rbr::Policy;
use arbiter_rbr::reward::RewardWeights;
use arbiter_reward::RewardModel;
use serde_json::{Value, json};

struct Args {
    arbiter: String,
    weights: String,
    data: Vec<String>,
    seconds: f64,
    batches: Vec<usize>,
    clients: usize,
    memory_seconds: f64,
}

fn parse_args() -> Args {
    let mut a = Args {
        arbiter: "target/release/arbiter".into(),
        weights: String::new(),
        data: Vec::new(),
        seconds: 30.0,
        batches: vec![1, 16, 64],
        clients: 8,
        memory_seconds: 0.0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < argv.len() {
        let v = argv[i + 1].clone();
        match argv[i].as_str() {
            "--arbiter" => a.arbiter = v,
            "--weights" => a.weights = v,
            "--data" => a.data.push(v),
            "--seconds" => a.seconds = v.parse().expect("--seconds"),
            "--batches" => {
                a.batches = v
                    .split(',')
                    .map(|x| x.parse().expect("--batches"))
                    .collect()
            }
            "--clients" => a.clients = v.parse().expect("--clients"),
            "--memory-seconds" => a.memory_seconds = v.parse().expect("--memory-seconds"),
            other => panic!("unknown flag {other}"),
        }
        i += 2;
    }
    assert!(
        !a.weights.is_empty() && !a.data.is_empty(),
        "--weights and --data are required"
    );
    a
}

fn load_samples(paths: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).expect("read data");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut v: Value = serde_json::from_str(line).expect("JSONL");
            v["id"] = json!(out.len());
            out.push(v);
        }
    }
    out
}

/// The embedded grader's reward model, as the server builds it (no cache).
fn offline_model(args: &Args) -> RewardModel {
    let policy = Policy::default_policy();
    let weights: RewardWeights =
        serde_json::from_str(&std::fs::read_to_string(&args.weights).expect("weights"))
            .expect("weights JSON");
    let options = GraderOptions {
        glossary: policy.propositions().to_vec(),
        ..GraderOptions::default()
    };
    let grader = arbiter_graders::from_spec("embedded", &options).expect("embedded grader");
    RewardModel::new(policy, weights, grader).expect("model")
}

/// Offline samples/s: every sample in one `score` call, repeated for `seconds`.
fn offline(model: &RewardModel, samples: &[Value], seconds: f64) -> f64 {
    let parsed: Vec<Sample> = samples
        .iter()
        .enumerate()
        .map(|(i, v)| Sample::from_value(v.clone(), i).expect("sample"))
        .collect();
    let started = Instant::now();
    let mut scored = 0;
    while started.elapsed().as_secs_f64() < seconds {
        let rewards = model.score(&parsed).expect("offline scoring");
        scored += rewards.len();
    }
    scored as f64 / started.elapsed().as_secs_f64()
}

/// One request over a fresh connection: status and seconds taken.
fn post(addr: &str, body: &[u8]) -> (u16, f64) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "POST /v1/rewards HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let status = String::from_utf8_lossy(&raw[..raw.len().min(16)])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed().as_secs_f64())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Run {
    samples_per_s: f64,
    p50: f64,
    p99: f64,
    requests: usize,
    failed: usize,
}

fn drive(
    addr: &str,
    samples: &[Value],
    batch: usize,
    clients: usize,
    seconds: f64,
    pid: u32,
) -> Run {
    let bodies: Vec<Vec<u8>> = samples
        .chunks(batch)
        .filter(|c| c.len() == batch)
        .map(|c| json!({ "samples": c }).to_string().into_bytes())
        .collect();
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::new());
    let failed = AtomicUsize::new(0);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let rss = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed) % bodies.len();
                    let (status, took) = post(addr, &bodies[k]);
                    if status == 200 {
                        latencies.lock().unwrap().push(took);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let stop = Arc::clone(&stop);
        let rss = &rss;
        scope.spawn(move || {
            let mut last = Instant::now() - Duration::from_secs(10);
            while started.elapsed().as_secs_f64() < seconds {
                if last.elapsed() >= Duration::from_secs(10) {
                    rss.lock()
                        .unwrap()
                        .push((started.elapsed().as_secs(), rss_kib(pid)));
                    last = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = latencies.into_inner().unwrap();
    l.sort_by(f64::total_cmp);
    let q = |p: f64| {
        l.get(((l.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let series = rss.into_inner().unwrap();
    if seconds >= 60.0 {
        println!("\nServer RSS during {seconds:.0} s of requests of {batch} (s, MiB):");
        for (t, kib) in &series {
            println!("  {t:>4} s  {:.1}", *kib as f64 / 1024.0);
        }
    }
    Run {
        samples_per_s: (l.len() * batch) as f64 / elapsed,
        p50: q(0.5),
        p99: q(0.99),
        requests: l.len(),
        failed: failed.into_inner(),
    }
}

fn main() {
    let args = parse_args();
    let samples = load_samples(&args.data);
    println!(
        "{} samples from {}; {} clients; {:.0} s per setting; {} cores",
        samples.len(),
        args.data.join(", "),
        args.clients,
        args.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // Offline is measured right before each served setting, so both see the same machine.
    let model = offline_model(&args);

    let mut child = Command::new(&args.arbiter)
        .args([
            "reward",
            "serve",
            "--weights",
            &args.weights,
            "--addr",
            "127.0.0.1:0",
            "--cache-entries",
            "0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let addr = loop {
        let mut buf = [0u8; 256];
        let n = stderr.read(&mut buf).expect("server log");
        assert!(n > 0, "the server exited: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        // The address is whole once whitespace follows it (reads may split the line).
        if let Some(rest) = seen.split("listening on http://").nth(1)
            && let Some(end) = rest.find(char::is_whitespace)
        {
            break rest[..end].to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let pid = child.id();
    post(
        &addr,
        json!({"samples": &samples[..1]}).to_string().as_bytes(),
    );

    println!(
        "\n| batch | clients | requests | failed | served samples/s | offline samples/s | served / offline | p50 latency | p99 latency |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &b in &args.batches {
        let offline_rate = offline(&model, &samples, args.seconds);
        let r = drive(&addr, &samples, b, args.clients, args.seconds, pid);
        println!(
            "| {b} | {} | {} | {} | {:.1} | {offline_rate:.1} | {:.0}% | {:.0} ms | {:.0} ms |",
            args.clients,
            r.requests,
            r.failed,
            r.samples_per_s,
            100.0 * r.samples_per_s / offline_rate,
            1000.0 * r.p50,
            1000.0 * r.p99
        );
    }
    if args.memory_seconds > 0.0 {
        let r = drive(&addr, &samples, 16, args.clients, args.memory_seconds, pid);
        println!(
            "memory run: {} requests, {} failed, {:.1} samples/s",
            r.requests, r.failed, r.samples_per_s
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

//! Prefix reuse against a real llama-server: the cost of grading all 23 propositions of the
//! default policy for one sample, relative to grading one proposition of it (goal ≤ 3×; with no
//! reuse it would be 23×).
//!
//! ```sh
//! eval "$(scripts/setup-llama.sh | sed 's/^/export /')"
//! cargo run -p arbiter-graders --example bench_llama -- [N] [--layout glossary|question] [--concurrency C] [--max-tokens T] [--fallback-max-tokens F] [-- SERVER ARGS…]
//! ```
//!
//! Starts llama-server with gemma-3-270m on 127.0.0.1 (as the integration test does: one slot,
//! `--swa-full`, 2 threads or `$ARBITER_LLAMA_THREADS`; plus `--cache-ram 0` so a prompt
//! the slot has dropped is not restored from host memory, which would make later "cold"
//! measurements warm), no response cache. For each of the first N gold test samples (default 8)
//! it grades all 23 propositions, then, once every sample has been through the slot, one
//! proposition of each sample; each measurement therefore starts with a slot holding another
//! sample (only the shared system prompt can be reused: with the default glossary layout that is
//! the list of all 23 questions, as in any run after its first sample). Prints, per sample, wall times,
//! the ratio, and the server's prompt-token counts (evaluated vs reused from its cache, from
//! the responses' `usage` / `timings`), then the median ratio.

use std::time::{Duration, Instant};

use arbiter_core::{PropositionSpec, Sample};
use arbiter_graders::openai::{OpenAiConfig, OpenAiGrader, UsageStats};
use arbiter_graders::{Grader, PromptLayout};
use arbiter_testkit::LlamaServer;

#[path = "../tests/common/mod.rs"]
mod common;

struct Measured {
    secs: f64,
    usage: UsageStats,
}

fn measure(config: &OpenAiConfig, sample: &Sample, propositions: &[PropositionSpec]) -> Measured {
    let grader = OpenAiGrader::new(config.clone()).unwrap();
    let start = Instant::now();
    let grades = grader
        .grade_batch(std::slice::from_ref(sample), propositions)
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    // The base model often has no label token in its top 20 (flagged, fine here); a failed
    // request is not.
    let failed = grades[0]
        .grades
        .values()
        .filter(|g| g.flag == Some(arbiter_core::GradeFlag::Error))
        .count();
    assert_eq!(failed, 0, "failed requests: {grades:?}");
    Measured {
        secs,
        usage: grader.usage(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (ours, server_args) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (&args[..], &[][..]),
    };
    let mut n = 8usize;
    let mut concurrency = None;
    let mut max_tokens = None;
    let mut fallback = None;
    let mut layout = PromptLayout::default();
    let mut it = ours.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| -> usize {
            match it.next().map(|v| v.parse()) {
                Some(Ok(v)) if v > 0 => v,
                _ => {
                    eprintln!("{flag} needs a positive integer");
                    std::process::exit(2);
                }
            }
        };
        match a.as_str() {
            "--concurrency" => concurrency = Some(value("--concurrency")),
            "--max-tokens" => max_tokens = Some(value("--max-tokens")),
            "--fallback-max-tokens" => fallback = Some(value("--fallback-max-tokens")),
            "--layout" => {
                layout = match it.next().map(|v| v.parse()) {
                    Some(Ok(l)) => l,
                    _ => {
                        eprintln!("--layout needs glossary or question");
                        std::process::exit(2);
                    }
                }
            }
            _ => match a.parse() {
                Ok(v) => n = v,
                Err(_) => {
                    eprintln!(
                        "usage: bench_llama [N] [--layout glossary|question] [--concurrency C] [--max-tokens T] [--fallback-max-tokens F] [-- SERVER ARGS…]; got {a:?}"
                    );
                    std::process::exit(2);
                }
            },
        }
    }
    let mut extra = vec!["--cache-ram", "0"];
    extra.extend(server_args.iter().map(String::as_str));
    let Some(server) = LlamaServer::start_with_or_skip(&extra) else {
        eprintln!("no llama-server: nothing measured");
        std::process::exit(2);
    };
    let policy = arbiter_rbr::Policy::default_policy();
    let all = policy.propositions().to_vec();
    let samples = common::gold_samples("test.jsonl", usize::MAX);
    let (filler, samples) = samples.split_first().expect("gold test samples");
    let samples = &samples[..n.min(samples.len())];

    let mut config = OpenAiConfig::new("gemma-3-270m", server.base_url());
    config.client.cache_dir = None;
    config.client.timeout = Duration::from_secs(300);
    config.layout = layout;
    // A grader built for the policy (as the CLI builds it): the glossary lists all 23
    // propositions whichever are asked, so both phases share the same system message.
    config.glossary = all.clone();
    if let Some(t) = max_tokens {
        config.max_tokens = u32::try_from(t).unwrap_or(u32::MAX);
        config.scan_positions = config.scan_positions.min(t);
    }
    if let Some(f) = fallback {
        config.fallback_max_tokens = u32::try_from(f).unwrap_or(u32::MAX);
    }
    if let Some(c) = concurrency {
        config.client.initial_concurrency = c;
        config.client.max_concurrency = config.client.max_concurrency.max(c);
    }
    println!(
        "llama-server: -c 4096 -np 1 --swa-full --no-jinja --chat-template gemma --metrics -t {} {}; client: {} layout, max_tokens {} (again with {} when unlabelled), top_logprobs {}, concurrency {}..{}",
        std::env::var("ARBITER_LLAMA_THREADS").unwrap_or_else(|_| "2".into()),
        extra.join(" "),
        config.layout.as_str(),
        config.max_tokens,
        config.fallback_max_tokens,
        config.top_logprobs,
        config.client.initial_concurrency,
        config.client.max_concurrency
    );
    // Warm-up (first-request costs), on a sample not measured.
    measure(&config, filler, &all[..1]);

    let full: Vec<Measured> = samples.iter().map(|s| measure(&config, s, &all)).collect();
    let one: Vec<Measured> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| measure(&config, s, &all[i % all.len()..i % all.len() + 1]))
        .collect();

    println!(
        "\n| sample | prompt tokens (1 prop) | 1 prop: s | evaluated / reused tokens | 23 props: s | evaluated / reused tokens | server prompt ms (1 → 23) | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    let (mut t1, mut t23) = (0.0, 0.0);
    for ((s, a), b) in samples.iter().zip(&one).zip(&full) {
        let ratio = b.secs / a.secs;
        ratios.push(ratio);
        t1 += a.secs;
        t23 += b.secs;
        let ev = |u: &UsageStats| u.prompt_tokens - u.cached_prompt_tokens;
        println!(
            "| {} | {} | {:.3} | {} / {} | {:.3} | {} / {} | {:.0} → {:.0} | {:.2}× |",
            s.id,
            a.usage.prompt_tokens,
            a.secs,
            ev(&a.usage),
            a.usage.cached_prompt_tokens,
            b.secs,
            ev(&b.usage),
            b.usage.cached_prompt_tokens,
            a.usage.server_prompt_ms,
            b.usage.server_prompt_ms,
            ratio
        );
    }
    let reqs: u64 = full.iter().map(|m| m.usage.http_requests).sum();
    println!(
        "\n{} samples: median ratio {:.2}× (min {:.2}×, max {:.2}×); total {:.2} s for 1 proposition each, {:.2} s for 23 each ({} requests, {:.0} ms per request)",
        samples.len(),
        median(ratios.clone()),
        ratios.iter().cloned().fold(f64::INFINITY, f64::min),
        ratios.iter().cloned().fold(0.0, f64::max),
        t1,
        t23,
        reqs,
        1000.0 * t23 / reqs.max(1) as f64
    );
    if let Ok(m) = server.metrics() {
        let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
        println!(
            "server totals (/metrics): {} prompt tokens evaluated, {} reused from cache, {} generated, {} decode calls, {:.1} s prompt processing, {:.1} s generation",
            get("prompt_tokens_total"),
            get("prompt_tokens_cached_total"),
            get("tokens_predicted_total"),
            get("n_decode_total"),
            get("prompt_seconds_total"),
            get("tokens_predicted_seconds_total"),
        );
    }
}

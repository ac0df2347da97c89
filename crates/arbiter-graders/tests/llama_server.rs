//! The OpenAI-compatible grader against a real llama-server (llama.cpp) running gemma-3-270m on
//! 127.0.0.1. `scripts/setup-llama.sh` installs both; without them the test prints why it skips,
//! unless `ARBITER_REQUIRE_LLAMA=1` (CI), where a missing or broken server is a failure.
//!
//! gemma-3-270m is a base model, so its P(yes) values mean little, and for about half of the
//! cells neither "Yes" nor "No" is among the top 20 of its first token (those cells are asked
//! again with three tokens, and flagged `no_label_token` if still none); where they are, their
//! mass is small (flagged `low_mass`). What is tested is the path: real chat requests
//! with logprobs, P(yes) and label mass from the server's top_logprobs, the flags, prefix reuse,
//! the on-disk response cache, and the request accounting, cross-checked against the server's
//! own Prometheus counters.

#![cfg(feature = "openai")]

mod common;

use std::time::Duration;

use arbiter_core::{GradeFlag, PropositionSpec};
use arbiter_graders::logprobs::{grade_from_response, parse_response};
use arbiter_graders::openai::{OpenAiConfig, OpenAiGrader};
use arbiter_graders::{Grader, ResponseCache};
use arbiter_testkit::LlamaServer;
use common::gold_samples;

/// Three propositions of the default policy, with the policy's own questions.
fn policy_specs(names: &[&str]) -> Vec<PropositionSpec> {
    let policy = arbiter_rbr::Policy::default_policy();
    names
        .iter()
        .map(|n| {
            policy
                .propositions()
                .iter()
                .find(|p| p.name == *n)
                .unwrap_or_else(|| panic!("{n} is not in the default policy"))
                .clone()
        })
        .collect()
}

/// What the server did between two `/metrics` scrapes.
fn delta(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    name: &str,
) -> f64 {
    let get = |m: &std::collections::BTreeMap<String, f64>| {
        *m.get(name)
            .unwrap_or_else(|| panic!("/metrics has no {name}: {m:?}"))
    };
    get(after) - get(before)
}

#[test]
fn grades_real_samples_and_serves_the_second_run_from_cache() {
    if arbiter_testkit::shared_data("rbr_gold").is_none() {
        return;
    }
    let Some(server) = LlamaServer::start_or_skip() else {
        return;
    };
    let samples = gold_samples("test.jsonl", 3);
    let propositions = policy_specs(&["apology", "inability_to_comply", "requests_information"]);
    let cells = (samples.len() * propositions.len()) as u64;
    let cache = std::env::temp_dir().join(format!("arbiter-llama-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let mut config = OpenAiConfig::new("gemma-3-270m", server.base_url());
    config.client.cache_dir = Some(cache.clone());
    config.client.timeout = Duration::from_secs(120);

    let m0 = server
        .metrics()
        .expect("the server was started with --metrics");
    let first = OpenAiGrader::new(config.clone()).unwrap();
    let grades = first.grade_batch(&samples, &propositions).unwrap();
    let m1 = server.metrics().unwrap();
    eprintln!("first run: {}", first.usage_summary().unwrap_or_default());

    assert_eq!(grades.len(), samples.len());
    let mut with_probability = 0;
    for (sample, graded) in samples.iter().zip(&grades) {
        assert_eq!(graded.id, sample.id);
        assert_eq!(graded.grades.len(), propositions.len());
        for (name, g) in &graded.grades {
            eprintln!("{} {name}: {g:?}", sample.id);
            match (g.p_yes, g.mass) {
                // P(yes) from the label tokens' logprobs, with their mass; a small mass is flagged.
                (Some(p), Some(mass)) => {
                    with_probability += 1;
                    assert!((0.0..=1.0).contains(&p), "{name}: {g:?}");
                    assert!(mass > 0.0 && mass <= 1.0 + 1e-9, "{name}: {g:?}");
                    let low = (mass < config.min_mass).then_some(GradeFlag::LowMass);
                    assert_eq!(g.flag, low, "{name}: {g:?}");
                }
                // A base model often puts neither label in the top 20: flagged, no made-up 0.5.
                (None, None) => assert_eq!(g.flag, Some(GradeFlag::NoLabelToken), "{name}: {g:?}"),
                // Never an error, never a probability parsed from text while logprobs came back.
                _ => panic!("{name}: {g:?}"),
            }
        }
    }
    assert!(
        with_probability > 0,
        "no cell got P(yes) from logprobs: {grades:?}"
    );
    // The server really answered with top_logprobs: look at the stored raw responses. A cell
    // whose one-token answer carried no label was asked again with a few tokens; count those.
    let store = ResponseCache::new(cache.clone());
    let glossary = config.glossary_for(&propositions).unwrap();
    let mut asked_again = 0u64;
    for sample in &samples {
        for prop in &propositions {
            let key = ResponseCache::key(
                &config.endpoint(),
                &config.request_body(sample, prop, glossary),
            );
            let raw = store.get(&key).expect("every success is cached");
            let tops = raw["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
                .as_array()
                .unwrap_or_else(|| panic!("no top_logprobs in {raw}"));
            assert!(tops.len() >= 10, "asked for 20 alternatives: {raw}");
            let one_token = grade_from_response(&parse_response(&raw), config.min_mass, 1);
            if one_token.flag == Some(GradeFlag::NoLabelToken) {
                asked_again += 1;
                let body =
                    config.request_body_with(sample, prop, glossary, config.fallback_max_tokens);
                let raw = store
                    .get(&ResponseCache::key(&config.endpoint(), &body))
                    .expect("the second request is cached too");
                assert_eq!(
                    raw["choices"][0]["logprobs"]["content"]
                        .as_array()
                        .map(Vec::len),
                    Some(config.fallback_max_tokens as usize),
                    "{raw}"
                );
            }
        }
    }
    let requests = cells + asked_again;
    let usage = first.usage();
    assert_eq!(
        (usage.http_requests, usage.cache_hits),
        (requests, 0),
        "{usage:?}"
    );
    assert!(usage.prompt_tokens > 0, "{usage:?}");
    // The server's own counters agree: it generated at least one token per request, and the
    // prompt tokens it evaluated or reused add up to what its responses reported.
    assert!(
        delta(&m0, &m1, "tokens_predicted_total") >= requests as f64,
        "{m0:?} → {m1:?}"
    );
    let server_prompt =
        delta(&m0, &m1, "prompt_tokens_total") + delta(&m0, &m1, "prompt_tokens_cached_total");
    assert_eq!(server_prompt, usage.prompt_tokens as f64, "{m0:?} → {m1:?}");
    // The propositions of a sample share their prefix, so the server reused much of it (without
    // --swa-full, gemma-3 on llama-server reuses only the system prompt: 12 % here).
    assert!(
        usage.cached_prompt_tokens * 5 > usage.prompt_tokens * 2,
        "little prefix reuse: {usage:?}"
    );

    let second = OpenAiGrader::new(config).unwrap();
    let again = second.grade_batch(&samples, &propositions).unwrap();
    let m2 = server.metrics().unwrap();
    assert_eq!(again, grades);
    let usage = second.usage();
    // Zero requests sent: the answers came from the on-disk cache …
    assert_eq!(
        (usage.http_requests, usage.cache_hits),
        (0, requests),
        "{usage:?}"
    );
    // … and the server saw none: no token evaluated, reused or generated, no decode call.
    for counter in [
        "prompt_tokens_total",
        "prompt_tokens_cached_total",
        "tokens_predicted_total",
        "n_decode_total",
    ] {
        assert_eq!(delta(&m1, &m2, counter), 0.0, "{counter}: {m1:?} → {m2:?}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(cache);
}

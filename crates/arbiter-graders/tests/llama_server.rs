//! The OpenAI-compatible grader against a real llama-server (llama.cpp) running gemma-3-270m on
//! 127.0.0.1. `scripts/setup-llama.sh` installs both; without them the test prints why it skips,
//! unless `ARBITER_REQUIRE_LLAMA=1` (CI), where a missing server is a failure.

mod common;

use std::time::Duration;

use arbiter_graders::Grader;
use arbiter_graders::openai::{OpenAiConfig, OpenAiGrader};
use common::{LlamaServer, gold_samples, specs};

#[test]
fn grades_real_samples_and_serves_the_second_run_from_cache() {
    let Some(server) = LlamaServer::start_or_skip() else {
        return;
    };
    let samples = gold_samples("test.jsonl", 3);
    let propositions = specs(&["apology", "inability_to_comply", "requests_information"]);
    let cache = std::env::temp_dir().join(format!("arbiter-llama-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let mut config = OpenAiConfig::new("gemma-3-270m", server.base_url());
    config.cache_dir = Some(cache.clone());
    config.timeout = Duration::from_secs(120);
    config.initial_concurrency = 1;

    let first = OpenAiGrader::new(config.clone()).unwrap();
    let grades = first.grade_batch(&samples, &propositions).unwrap();
    assert_eq!(grades.len(), samples.len());
    for (sample, graded) in samples.iter().zip(&grades) {
        assert_eq!(graded.id, sample.id);
        for (name, g) in &graded.grades {
            let p = g
                .p_yes
                .unwrap_or_else(|| panic!("{name}: no probability: {g:?}"));
            assert!((0.0..=1.0).contains(&p), "{name}: {p}");
            let mass = g
                .mass
                .unwrap_or_else(|| panic!("{name}: no label mass: {g:?}"));
            assert!(mass > 0.0 && mass <= 1.0 + 1e-9, "{name}: mass {mass}");
        }
    }
    let usage = first.usage();
    assert_eq!(usage.http_requests, 9);
    assert!(usage.prompt_tokens > 0, "{usage:?}");
    eprintln!("first run: {}", first.usage_summary().unwrap_or_default());

    let second = OpenAiGrader::new(config).unwrap();
    let again = second.grade_batch(&samples, &propositions).unwrap();
    assert_eq!(again, grades);
    let usage = second.usage();
    // Zero requests sent: the answers came from the on-disk cache.
    assert_eq!((usage.http_requests, usage.cache_hits), (0, 9), "{usage:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(cache);
}

//! `arbiter grade --grader openai:MODEL@URL` against a real llama-server (gemma-3-270m on
//! 127.0.0.1): two bundled examples × the default policy's 23 propositions, then a second run
//! answered from the response cache. Skips with the reason when
//! `scripts/setup-llama.sh` has not been run, unless `ARBITER_REQUIRE_LLAMA=1` (CI).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arbiter_testkit::LlamaServer;
use serde_json::Value;

fn arbiter(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(args)
        .env("ARBITER_CACHE", cache)
        .output()
        .expect("run arbiter")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The number just before `what` in the grader's usage line.
fn count_before(log: &str, what: &str) -> u64 {
    let at = log
        .find(what)
        .unwrap_or_else(|| panic!("no {what:?} in {log}"));
    let digits: String = log[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no count before {what:?} in {log}"))
}

#[test]
fn grade_with_a_live_llama_server_then_again_from_the_cache() {
    let Some(server) = LlamaServer::start_or_skip() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("arbiter-llama-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let examples =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/conversations.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(examples)
        .unwrap()
        .lines()
        .take(2)
        .map(String::from)
        .collect();
    let input = dir.join("in.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.join("grades.jsonl");
    let spec = format!("openai:gemma-3-270m@{}", server.base_url());
    // The 270M base model often answers without a yes/no token; those cells are flagged and
    // would fail the command, which is not what this test is about.
    let args = [
        "grade",
        "--grader",
        &spec,
        "--max-failed",
        "1",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];

    let before = server.metrics().unwrap();
    let first = arbiter(&args, &dir);
    assert!(first.status.success(), "{}", stderr(&first));
    let log = stderr(&first);
    // 46 cells, one request each, plus one more for each cell whose one-token answer carried
    // no label (asked again with a few tokens).
    let requests = count_before(&log, " HTTP requests");
    // Attempts retried after a timeout (a loaded machine) are requests too, not answers.
    let answered = requests - count_before(&log, " retries");
    assert!((46..=92).contains(&answered), "{log}");
    assert!(log.contains("0 cache hits"), "{log}");
    let after = server.metrics().unwrap();
    assert!(
        after["tokens_predicted_total"] - before["tokens_predicted_total"] >= answered as f64,
        "the server generated less than a token per request: {before:?} → {after:?}"
    );
    let graded = std::fs::read_to_string(&out).unwrap();
    let records: Vec<Value> = graded
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{graded}");
    for (record, line) in records.iter().zip(&lines) {
        let id = serde_json::from_str::<Value>(line).unwrap()["id"].clone();
        assert_eq!(record["id"], id);
        // Every default proposition has a P(yes) or, where the base model put neither label
        // among its top 20 tokens, the flag `no_label_token` (never a made-up value).
        let props = record["propositions"].as_object().unwrap();
        let flags = record["flags"].as_object().unwrap();
        for (name, p) in props {
            let p = p.as_f64().unwrap_or_else(|| panic!("{name}: {record}"));
            assert!((0.0..=1.0).contains(&p), "{name}: {record}");
        }
        let unanswered: Vec<_> = flags
            .iter()
            .filter(|(name, _)| !props.contains_key(*name))
            .collect();
        for (name, flag) in &unanswered {
            assert_eq!(flag.as_str(), Some("no_label_token"), "{name}: {record}");
        }
        assert_eq!(props.len() + unanswered.len(), 23, "{record}");
    }

    // Again: every answer from the response cache, nothing sent to the server.
    let second = arbiter(&args, &dir);
    assert!(second.status.success(), "{}", stderr(&second));
    let log = stderr(&second);
    assert_eq!(count_before(&log, " HTTP requests"), 0, "{log}");
    assert_eq!(count_before(&log, " cache hits"), answered, "{log}");
    let again = server.metrics().unwrap();
    assert_eq!(
        again["tokens_predicted_total"], after["tokens_predicted_total"],
        "{log}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), graded);

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

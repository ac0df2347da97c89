//! `arbiter reward serve` as a trainer meets it: the real binary on loopback, spoken to over
//! plain HTTP/1.1 (and by the Python recipes in `examples/`). Most tests grade with a scripted
//! OpenAI-compatible grader, so they run on a fresh clone; the gold-split equality uses the
//! embedded grader and the shared data.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use arbiter_testkit::{ScriptedServer, TempDir as Dir};
use common::{arbiter_in, logprob_reply, s, stderr, stdout};
use serde_json::{Value, json};

/// A running `arbiter reward serve`; killed when dropped.
struct Served {
    child: Child,
    addr: String,
    log: mpsc::Receiver<String>,
}

impl Served {
    fn start(dir: &Dir, args: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arbiter"))
            .args(["reward", "serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .env("ARBITER_CACHE", dir.path("cache"))
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start arbiter reward serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap().to_string();
                        return Served {
                            child,
                            addr,
                            log: rx,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the server did not start: {}", seen.join("\n"))
                }
            }
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn post(&self, path: &str, body: &Value) -> Answer {
        http(&self.addr, "POST", path, body.to_string().as_bytes())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status, lower-cased headers, body (JSON, or the text as a JSON string).
type Answer = (u16, Vec<(String, String)>, Value);

/// One HTTP/1.1 request with `Connection: close`.
fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before a large body is written; that is the test.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status, headers, value)
}

/// A deterministic grader that answers every proposition with a P(yes) drawn from the request
/// body, so different samples get different, repeatable grades.
fn hashed_grader(latency: Duration) -> ScriptedServer {
    ScriptedServer::start(
        |body| {
            let text = body.to_string();
            let h = text.bytes().fold(1469598103934665603u64, |h, b| {
                (h ^ b as u64).wrapping_mul(1099511628211)
            });
            logprob_reply(0.02 + 0.96 * ((h % 10_000) as f64 / 10_000.0))
        },
        latency,
    )
    .unwrap()
}

fn examples() -> PathBuf {
    arbiter_testkit::workspace_root().join("examples/conversations.jsonl")
}

/// Weights fitted on the examples' human labels (no grader needed).
fn fit_weights(dir: &Dir, data: &Path) -> PathBuf {
    let weights = dir.path("weights.json");
    let o = arbiter_in(
        dir,
        &[
            "rbr",
            "fit",
            "--features",
            "human",
            s(data),
            "--out",
            s(&weights),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    weights
}

fn read_samples(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `arbiter rbr score` on `data`: reward by id.
fn rbr_scores(dir: &Dir, data: &Path, weights: &Path, grader: &[&str]) -> BTreeMap<String, Value> {
    let mut args = vec![
        "rbr",
        "score",
        "--features",
        "grader",
        "--weights",
        s(weights),
    ];
    args.extend_from_slice(grader);
    args.push(s(data));
    let o = arbiter_in(dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].to_string(), v)
        })
        .collect()
}

/// Send `samples` in requests of varied sizes from 8 threads at once; rewards by id. A sample
/// without an id gets its line index, as `rbr score` gives it (the server would number it
/// within its request).
fn serve_scores(server: &Served, samples: &[Value]) -> BTreeMap<String, Value> {
    let samples: Vec<Value> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut s = s.clone();
            if s.get("id").is_none_or(Value::is_null) {
                s["id"] = json!(i);
            }
            s
        })
        .collect();
    let sizes = [1, 16, 3, 64, 7, 1, 2];
    let mut chunks = Vec::new();
    let mut at = 0;
    for k in 0.. {
        if at >= samples.len() {
            break;
        }
        let n = sizes[k % sizes.len()].min(samples.len() - at);
        chunks.push(samples[at..at + n].to_vec());
        at += n;
    }
    let addr = server.addr.clone();
    let results = std::sync::Mutex::new(BTreeMap::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(chunk) = chunks.get(k) else { break };
                    let body = json!({ "samples": chunk }).to_string();
                    let (status, _, v) = http(&addr, "POST", "/v1/rewards", body.as_bytes());
                    assert_eq!(status, 200, "{v}");
                    let rewards = v["rewards"].as_array().unwrap();
                    assert_eq!(rewards.len(), chunk.len());
                    let mut r = results.lock().unwrap();
                    for (sample, reward) in chunk.iter().zip(rewards) {
                        assert_eq!(sample["id"], reward["id"], "answers come in input order");
                        r.insert(reward["id"].to_string(), reward.clone());
                    }
                }
            });
        }
    });
    results.into_inner().unwrap()
}

fn assert_same_rewards(offline: &BTreeMap<String, Value>, served: &BTreeMap<String, Value>) {
    assert_eq!(offline.len(), served.len());
    for (id, o) in offline {
        let v = &served[id];
        for key in ["reward", "rbr_reward", "base_reward"] {
            let (a, b) = (o[key].as_f64().unwrap(), v[key].as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-9,
                "{id} {key}: rbr score {a}, server {b}"
            );
        }
        assert_eq!(o["class"], v["class"], "{id}");
    }
}

#[test]
fn the_server_and_rbr_score_agree_on_every_sample() {
    let dir = Dir::new("reward-agree");
    let weights = fit_weights(&dir, &examples());
    let grader_server = hashed_grader(Duration::ZERO);
    let grader = format!("openai:m@{}", grader_server.base_url());
    let offline = rbr_scores(&dir, &examples(), &weights, &["--grader", &grader]);
    let server = Served::start(
        &dir,
        &[
            "--weights",
            s(&weights),
            "--grader",
            &grader,
            "--workers",
            "2",
        ],
    );
    let served = serve_scores(&server, &read_samples(&examples()));
    assert_same_rewards(&offline, &served);
    let one = served.values().next().unwrap();
    let probs: f64 = one["class_probs"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((probs - 1.0).abs() < 1e-9, "class probabilities sum to 1");
    assert_eq!(one["propositions"].as_object().unwrap().len(), 23);
}

#[test]
fn the_embedded_server_equals_rbr_score_on_the_gold_test_split() {
    let Some(gold) = arbiter_testkit::shared_data("rbr_gold") else {
        return;
    };
    let model_dir = arbiter_graders::embedded::model::default_model_dir();
    if !arbiter_testkit::model_installed(&model_dir) {
        return;
    }
    let dir = Dir::new("reward-gold");
    let weights = fit_weights(&dir, &gold.join("train.jsonl"));
    let test = gold.join("test.jsonl");
    let offline = rbr_scores(&dir, &test, &weights, &["--model-dir", s(&model_dir)]);
    let server = Served::start(
        &dir,
        &["--weights", s(&weights), "--model-dir", s(&model_dir)],
    );
    let served = serve_scores(&server, &read_samples(&test));
    assert_eq!(served.len(), 167, "every row of the test split");
    assert_same_rewards(&offline, &served);
}

#[test]
fn bad_input_gets_a_4xx_naming_the_sample_and_field_and_the_server_keeps_serving() {
    let dir = Dir::new("reward-bad");
    let weights = fit_weights(&dir, &examples());
    let grader_server = hashed_grader(Duration::ZERO);
    let grader = format!("openai:m@{}", grader_server.base_url());
    let server = Served::start(&dir, &["--weights", s(&weights), "--grader", &grader]);
    let good = json!({"prompt": [{"role": "user", "content": "hi"}], "completion": "hello", "response_type": "comply"});

    let (status, _, v) = http(&server.addr, "POST", "/v1/rewards", b"{\"samples\": [");
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );

    let mut unknown = good.clone();
    unknown["response_type"] = json!("sometimes");
    let (status, _, v) = server.post("/v1/rewards", &json!({"samples": [good, unknown]}));
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["index"], 1);
    assert_eq!(v["field"], "samples[1].response_type");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown response type")
    );

    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("completion");
    let (status, _, v) = server.post("/v1/rewards", &json!({"samples": [good, good, missing]}));
    assert_eq!(status, 422, "{v}");
    assert_eq!(
        (v["index"].clone(), v["field"].clone()),
        (json!(2), json!("samples[2].completion"))
    );

    let mut untyped = good.clone();
    untyped.as_object_mut().unwrap().remove("response_type");
    let (status, _, v) = server.post("/v1/rewards", &json!({"samples": [untyped]}));
    assert_eq!(
        (status, v["field"].clone()),
        (422, json!("samples[0].response_type"))
    );

    let mut bad_base = good.clone();
    bad_base["metadata"] = json!({"base_reward": "high"});
    let (status, _, v) = server.post("/v1/rewards", &json!({"samples": [bad_base]}));
    assert_eq!(
        (status, v["field"].clone()),
        (422, json!("samples[0].metadata.base_reward"))
    );

    let (status, _, v) = server.post("/v1/rewards", &json!({"items": []}));
    assert_eq!(status, 422, "{v}");

    let big = format!(
        "{{\"samples\": [{{\"prompt\": [{{\"role\": \"user\", \"content\": \"{}\"}}]}}]}}",
        "a".repeat(10 << 20)
    );
    let (status, _, v) = http(&server.addr, "POST", "/v1/rewards", big.as_bytes());
    assert_eq!(status, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--max-body-bytes"),
        "{v}"
    );

    let (status, _, v) = server.post(
        "/get_reward",
        &json!({"query": ["p a", "q b"], "prompts": ["p", "x"], "labels": ["comply", "comply"]}),
    );
    assert_eq!(
        (status, v["index"].clone(), v["field"].clone()),
        (422, json!(1), json!("query[1]"))
    );
    let (status, _, v) = server.post(
        "/get_reward",
        &json!({"query": ["p a"], "prompts": ["p"], "labels": ["maybe"]}),
    );
    assert_eq!((status, v["field"].clone()), (422, json!("labels[0]")));

    // Still serving, and nothing above reached the grader.
    assert_eq!(grader_server.requests(), 0);
    let (status, _, v) = server.post("/v1/rewards", &json!({"samples": [good]}));
    assert_eq!(status, 200, "{v}");
    assert!(v["rewards"][0]["reward"].as_f64().unwrap().is_finite());
    let (status, _, v) = http(&server.addr, "GET", "/healthz", b"");
    assert_eq!((status, v["status"].clone()), (200, json!("ok")));
    let (_, _, metrics) = http(&server.addr, "GET", "/metrics", b"");
    let metrics = arbiter_testkit::llama::parse_prometheus(metrics.as_str().unwrap());
    assert_eq!(metrics["arbiter_reward_samples_total"], 1.0);
    assert_eq!(
        metrics["arbiter_reward_requests_total{route=\"/v1/rewards\",code=\"422\"}"],
        5.0
    );
}

#[test]
fn a_completion_sent_again_is_answered_from_the_cache() {
    let dir = Dir::new("reward-cache");
    let weights = fit_weights(&dir, &examples());
    let grader_server = hashed_grader(Duration::ZERO);
    let grader = format!("openai:m@{}", grader_server.base_url());
    let server = Served::start(
        &dir,
        &["--weights", s(&weights), "--grader", &grader, "--no-cache"],
    );
    let sample = |id: &str| json!({"id": id, "prompt": [{"role": "user", "content": "hi"}], "completion": "hello", "response_type": "comply"});
    let (_, _, first) = server.post("/v1/rewards", &json!({"samples": [sample("a")]}));
    let asked = grader_server.requests();
    assert!(asked > 0);
    // Same content under other ids, twice in one request: no new grader call.
    let (status, _, again) = server.post(
        "/v1/rewards",
        &json!({"samples": [sample("b"), sample("c")]}),
    );
    assert_eq!(status, 200);
    assert_eq!(grader_server.requests(), asked);
    assert_eq!(again["rewards"][0]["reward"], first["rewards"][0]["reward"]);
    assert_eq!(again["rewards"][1]["id"], "c");
    let (_, _, metrics) = http(&server.addr, "GET", "/metrics", b"");
    let metrics = arbiter_testkit::llama::parse_prometheus(metrics.as_str().unwrap());
    assert_eq!(metrics["arbiter_reward_graded_total"], 1.0);
    assert_eq!(metrics["arbiter_reward_cache_hits_total"], 2.0);
}

#[test]
fn a_full_queue_answers_429_with_retry_after_and_recovers() {
    let dir = Dir::new("reward-429");
    let weights = fit_weights(&dir, &examples());
    // 23 propositions × 40 ms: each batch takes about a second with the grader's concurrency.
    let grader_server = hashed_grader(Duration::from_millis(40));
    let grader = format!("openai:m@{}", grader_server.base_url());
    let server = Served::start(
        &dir,
        &[
            "--weights",
            s(&weights),
            "--grader",
            &grader,
            "--queue-samples",
            "2",
            "--max-batch",
            "2",
            "--batch-wait-ms",
            "0",
            "--no-cache",
        ],
    );
    let samples: Vec<Value> = read_samples(&examples());
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|k| {
                let body = json!({"samples": &samples[2 * k..2 * k + 2]});
                let addr = server.addr.clone();
                scope.spawn(move || http(&addr, "POST", "/v1/rewards", body.to_string().as_bytes()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let full: Vec<_> = answers.iter().filter(|a| a.0 == 429).collect();
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    assert!(
        !full.is_empty(),
        "8 requests of 2 samples overfill a queue of 2"
    );
    assert!(ok >= 1);
    assert_eq!(
        full.len() + ok,
        8,
        "every request is answered or turned away"
    );
    for (_, headers, v) in &full {
        let retry: u64 = headers
            .iter()
            .find(|(k, _)| k == "retry-after")
            .map(|(_, v)| v.parse().unwrap())
            .expect("Retry-After on 429");
        assert!((1..=60).contains(&retry));
        assert!(v["error"].as_str().unwrap().contains("queue is full"));
    }
    let (status, _, _) = server.post("/v1/rewards", &json!({"samples": &samples[..1]}));
    assert_eq!(status, 200, "served again once the queue drains");
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let dir = Dir::new("reward-term");
    let weights = fit_weights(&dir, &examples());
    let grader_server = hashed_grader(Duration::from_millis(100));
    let grader = format!("openai:m@{}", grader_server.base_url());
    let mut server = Served::start(
        &dir,
        &["--weights", s(&weights), "--grader", &grader, "--no-cache"],
    );
    let samples = read_samples(&examples());
    let addr = server.addr.clone();
    let body = json!({"samples": &samples[..2]}).to_string();
    let in_flight = std::thread::spawn(move || http(&addr, "POST", "/v1/rewards", body.as_bytes()));
    while grader_server.requests() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, _, v) = in_flight.join().unwrap();
    assert_eq!(status, 200, "the request in flight is answered: {v}");
    assert_eq!(v["rewards"].as_array().unwrap().len(), 2);
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    // The log ends when the process closes its standard error.
    let log: Vec<String> = server.log.iter().collect();
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:?}");
    assert!(TcpStream::connect(server.url().trim_start_matches("http://")).is_err());
}

/// `python3`, or `None` after saying why the test skips (CI sets `ARBITER_REQUIRE_PYTHON=1`).
fn python() -> Option<&'static str> {
    if Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("python3");
    }
    assert!(
        std::env::var("ARBITER_REQUIRE_PYTHON").as_deref() != Ok("1"),
        "ARBITER_REQUIRE_PYTHON=1 but python3 is missing"
    );
    eprintln!("SKIPPED: python3 not found; the recipe tests run the examples' Python clients");
    None
}

#[test]
fn the_openrlhf_recipe_gets_the_answer_its_trainer_reads() {
    let Some(py) = python() else { return };
    let dir = Dir::new("reward-openrlhf");
    let weights = fit_weights(&dir, &examples());
    let grader_server = hashed_grader(Duration::ZERO);
    let grader = format!("openai:m@{}", grader_server.base_url());
    let server = Served::start(&dir, &["--weights", s(&weights), "--grader", &grader]);
    // A chat-templated prompt, and the decoded query with the end-of-turn token kept.
    let prompt = "<|im_start|>user\nHow do I pick a lock?<|im_end|>\n<|im_start|>assistant\n";
    let reply = "I can't help with that.";
    let queries = json!([
        {"query": format!("{prompt}{reply}<|im_end|>"), "prompt": prompt, "label": "hard_refuse"},
        {"query": format!("{prompt}{reply}<|im_end|>"), "prompt": prompt,
         "label": {"response_type": "hard_refuse", "base_reward": 1.5}},
    ]);
    let file = dir.write("queries.json", &queries.to_string());
    let root = arbiter_testkit::workspace_root();
    let o = Command::new(py)
        .arg(root.join("examples/openrlhf/check_remote_rm.py"))
        .arg(format!("{}/get_reward", server.url()))
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let answers: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 2);
    // The same sample through /v1/rewards: the completion is the query after its prompt.
    let sample = json!({"prompt": [{"role": "user", "content": prompt}], "completion": reply, "response_type": "hard_refuse"});
    let (_, _, direct) = server.post("/v1/rewards", &json!({"samples": [sample]}));
    let expected = direct["rewards"][0]["reward"].as_f64().unwrap();
    // Within 1e-12: serde_json's float parsing (no `float_roundtrip`) may be an ulp off Python's.
    let close = |v: &Value, x: f64| (v.as_f64().unwrap() - x).abs() < 1e-12;
    assert!(
        close(&answers[0]["reward"][0], expected),
        "{answers:?} {expected}"
    );
    assert!(close(&answers[0]["scores"][0], expected));
    assert_eq!(answers[0]["extra_logs"]["base_reward"][0], 0.0);
    let with_base = answers[1]["reward"][0].as_f64().unwrap();
    assert!((with_base - (expected + 1.5)).abs() < 1e-12);
    assert!(close(&answers[1]["extra_logs"]["rbr_reward"][0], expected));
}

#[test]
fn the_trl_reward_function_returns_the_servers_rewards() {
    let Some(py) = python() else { return };
    let dir = Dir::new("reward-trl");
    let weights = fit_weights(&dir, &examples());
    let grader_server = hashed_grader(Duration::ZERO);
    let grader = format!("openai:m@{}", grader_server.base_url());
    let server = Served::start(&dir, &["--weights", s(&weights), "--grader", &grader]);
    let root = arbiter_testkit::workspace_root();
    // Both of TRL's formats: plain strings and conversational message lists.
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from arbiter_reward import arbiter_rbr_reward
standard = arbiter_rbr_reward(
    prompts=["How do I pick a lock?", "What is 2 + 2?"],
    completions=["I can't help with that.", "4."],
    response_type=["hard_refuse", "comply"],
    trainer_state=None,
)
conversational = arbiter_rbr_reward(
    prompts=[[{"role": "user", "content": "How do I pick a lock?"}]],
    completions=[[{"role": "assistant", "content": "I can't help with that."}]],
    response_type=["hard_refuse"],
    base_reward=[0.25],
)
print(json.dumps({"standard": standard, "conversational": conversational}))
"#;
    let o = Command::new(py)
        .args(["-c", script])
        .arg(root.join("examples/trl"))
        .env("ARBITER_REWARD_URL", server.url())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let direct = |prompt: &str, completion: &str, rt: &str| {
        let sample = json!({"prompt": [{"role": "user", "content": prompt}], "completion": completion, "response_type": rt});
        let (_, _, v) = server.post("/v1/rewards", &json!({"samples": [sample]}));
        v["rewards"][0]["reward"].as_f64().unwrap()
    };
    let refusal = direct(
        "How do I pick a lock?",
        "I can't help with that.",
        "hard_refuse",
    );
    assert_eq!(got["standard"][0].as_f64().unwrap(), refusal);
    assert_eq!(
        got["standard"][1].as_f64().unwrap(),
        direct("What is 2 + 2?", "4.", "comply")
    );
    assert!((got["conversational"][0].as_f64().unwrap() - (refusal + 0.25)).abs() < 1e-12);
}

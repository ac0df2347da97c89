//! The OpenAI-compatible client against a tiny HTTP/1.1 server on 127.0.0.1 that this module
//! runs itself (no mock framework: each test scripts the replies it needs).

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arbiter_core::GradeFlag;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(body: Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: json!({"error": {"message": "scripted failure"}}).to_string(),
            delay: Duration::ZERO,
        }
    }
}

type Handler = Arc<dyn Fn(usize, &Value) -> Reply + Send + Sync>;

struct MockServer {
    url: String,
    requests: Arc<AtomicUsize>,
}

impl MockServer {
    /// Serve on an ephemeral loopback port; `handler(n, body)` answers the n-th request (0-based).
    fn start(handler: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> MockServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let handler: Handler = Arc::new(handler);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    let (handler, counter) = (handler.clone(), counter.clone());
                    tokio::spawn(serve_one(stream, handler, counter));
                }
            });
        });
        MockServer { url, requests }
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve_one(mut stream: tokio::net::TcpStream, handler: Handler, counter: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Value =
        serde_json::from_slice(&buf[header_end..header_end + length]).unwrap_or(Value::Null);
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let reply = handler(n, &body);
    tokio::time::sleep(reply.delay).await;
    let mut out = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn temp_cache(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arbiter-openai-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(server: &MockServer, cache: Option<PathBuf>) -> OpenAiConfig {
    let mut c = OpenAiConfig::new("test-model", server.url.clone());
    c.client.api_key_env = "ARBITER_TEST_NO_SUCH_KEY".into();
    c.client.cache_dir = cache;
    c.client.initial_backoff = Duration::from_millis(10);
    c.client.timeout = Duration::from_secs(5);
    c
}

fn samples() -> Vec<Sample> {
    vec![
        Sample::from_value(
            json!({"prompt": [{"role": "user", "content": "How do I pick a lock?"}],
            "completion": "Sorry, I can't help with that."}),
            0,
        )
        .unwrap(),
    ]
}

fn props(questions: &[&str]) -> Vec<PropositionSpec> {
    questions
        .iter()
        .enumerate()
        .map(|(i, q)| PropositionSpec {
            name: format!("p{i}"),
            question: q.to_string(),
        })
        .collect()
}

/// What the user message ends with: the proposition's name (glossary layout, the default) or
/// its question (question layout).
fn question_of(body: &Value) -> String {
    let user = body["messages"][1]["content"].as_str().unwrap_or("");
    let (_, last) = user
        .rsplit_once("Proposition: ")
        .or_else(|| user.rsplit_once("Question: "))
        .unwrap_or(("", ""));
    last.trim_end_matches("\nAnswer Yes or No.").to_string()
}

/// OpenAI's chat shape with P(yes)=p among the two labels and the given label mass.
fn openai_reply(p_yes: f64, mass: f64) -> Value {
    json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": if p_yes >= 0.5 {"Yes"} else {"No"}},
        "logprobs": {"content": [{"token": "Yes", "logprob": (p_yes * mass).ln(), "bytes": [89, 101, 115],
            "top_logprobs": [
                {"token": "Yes", "logprob": (p_yes * mass).ln(), "bytes": [89, 101, 115]},
                {"token": "No", "logprob": ((1.0 - p_yes) * mass).ln(), "bytes": [78, 111]},
                {"token": "Maybe", "logprob": (1.0 - mass).max(1e-9).ln(), "bytes": null}]}]},
        "finish_reason": "length"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101,
                  "prompt_tokens_details": {"cached_tokens": 60}}})
}

#[test]
fn request_has_the_documented_parameters_and_question_last() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let server2 = MockServer::start(move |_, body| {
        seen.lock().unwrap().push(body.clone());
        Reply::json(openai_reply(0.8, 0.9))
    });
    let mut cfg = config(&server2, None);
    cfg.layout = PromptLayout::Question;
    let grader = OpenAiGrader::new(cfg).unwrap();
    let out = grader
        .grade_batch(&samples(), &props(&["Does it apologise?"]))
        .unwrap();
    let g = out[0].grades["p0"];
    assert!((g.p_yes.unwrap() - 0.8).abs() < 1e-9);
    assert!((g.mass.unwrap() - 0.9).abs() < 1e-9);
    let body = bodies.lock().unwrap()[0].clone();
    assert_eq!(body["temperature"], json!(0));
    assert_eq!(body["max_tokens"], json!(1));
    assert_eq!(body["logprobs"], json!(true));
    assert_eq!(body["top_logprobs"], json!(20));
    assert_eq!(body["model"], json!("test-model"));
    assert!(
        body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .ends_with("Does it apologise?\nAnswer Yes or No.")
    );
    let usage = grader.usage();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.cached_prompt_tokens,
            usage.completion_tokens
        ),
        (100, 60, 1)
    );
}

#[test]
fn each_response_shape_gives_the_same_probability() {
    // llama-server: OpenAI's shape plus token ids and timings.
    let llama = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "No"},
        "logprobs": {"content": [{"id": 1294, "token": "No", "logprob": (0.6f64).ln(), "bytes": [78, 111],
            "top_logprobs": [{"id": 1294, "token": "No", "logprob": (0.6f64).ln(), "bytes": [78, 111]},
                             {"id": 9259, "token": "Yes", "logprob": (0.2f64).ln(), "bytes": [89, 101, 115]}]}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 1},
        "timings": {"cache_n": 40, "prompt_n": 10, "prompt_ms": 12.5}});
    // Old llama.cpp: linear probabilities under completion_probabilities.
    let old = json!({"content": "No", "completion_probabilities": [{"content": "No",
        "probs": [{"tok_str": "No", "prob": 0.6}, {"tok_str": "Yes", "prob": 0.2}]}]});
    for (shape, reply) in [
        ("openai", openai_reply(0.25, 0.8)),
        ("llama.cpp", llama),
        ("old llama.cpp", old),
    ] {
        let reply = reply.clone();
        let server = MockServer::start(move |_, _| Reply::json(reply.clone()));
        let grader = OpenAiGrader::new(config(&server, None)).unwrap();
        let g = grader.grade_batch(&samples(), &props(&["q?"])).unwrap()[0].grades["p0"];
        assert!((g.p_yes.unwrap() - 0.25).abs() < 1e-9, "{shape}: {g:?}");
        assert!((g.mass.unwrap() - 0.8).abs() < 1e-9, "{shape}: {g:?}");
        assert_eq!(g.flag, None, "{shape}");
    }
}

/// A chat-shaped position with its alternatives (token, probability).
fn position(token: &str, top: &[(&str, f64)]) -> Value {
    json!({"token": token, "logprob": top[0].1.ln(), "bytes": null,
        "top_logprobs": top.iter().map(|(t, p)| json!({"token": t, "logprob": p.ln(), "bytes": null}))
            .collect::<Vec<_>>()})
}

#[test]
fn a_first_token_without_a_label_is_asked_again_with_a_few_tokens() {
    // The model opens with a newline: one token carries no label; three do, at the second.
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let server = MockServer::start(move |_, body| {
        seen.lock().unwrap().push(body.clone());
        let newline = position("\n", &[("\n", 0.9), ("The", 0.05)]);
        let content = if body["max_tokens"] == json!(1) {
            vec![newline]
        } else {
            vec![
                newline,
                position("Yes", &[("Yes", 0.6), ("No", 0.3)]),
                position(".", &[(".", 0.9)]),
            ]
        };
        Reply::json(
            json!({"choices": [{"message": {"role": "assistant", "content": "\nYes."},
            "logprobs": {"content": content}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 1}}),
        )
    });
    let cache = temp_cache("fallback");
    let grader = OpenAiGrader::new(config(&server, Some(cache.clone()))).unwrap();
    let g = grader.grade_batch(&samples(), &props(&["q?"])).unwrap()[0].grades["p0"];
    assert!((g.p_yes.unwrap() - 2.0 / 3.0).abs() < 1e-9, "{g:?}");
    assert!((g.mass.unwrap() - 0.9).abs() < 1e-9, "{g:?}");
    let max_tokens: Vec<Value> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["max_tokens"].clone())
        .collect();
    assert_eq!(max_tokens, vec![json!(1), json!(3)]);
    // Both answers are cached: a second grader asks nothing and grades the same.
    let again = OpenAiGrader::new(config(&server, Some(cache.clone()))).unwrap();
    let g2 = again.grade_batch(&samples(), &props(&["q?"])).unwrap()[0].grades["p0"];
    assert_eq!((g2.p_yes, g2.mass), (g.p_yes, g.mass));
    assert_eq!(server.count(), 2);
    assert_eq!(again.usage().cache_hits, 2);
    // Turned off, the first answer stands, flagged (its text still says yes).
    let mut off = config(&server, None);
    off.fallback_max_tokens = 1;
    let g3 = OpenAiGrader::new(off)
        .unwrap()
        .grade_batch(&samples(), &props(&["q?"]))
        .unwrap()[0]
        .grades["p0"];
    assert_eq!(g3.flag, Some(GradeFlag::ParsedTextFallback));
    assert_eq!(server.count(), 3);
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn missing_logprobs_fall_back_to_text_with_a_flag() {
    let server = MockServer::start(|_, _| {
        Reply::json(json!({"choices": [{"message": {"role": "assistant", "content": "Yes."}}]}))
    });
    let grader = OpenAiGrader::new(config(&server, None)).unwrap();
    let g = grader.grade_batch(&samples(), &props(&["q?"])).unwrap()[0].grades["p0"];
    assert_eq!(g.p_yes, Some(1.0));
    assert_eq!(g.flag, Some(GradeFlag::ParsedTextFallback));
    let rec = grader.grade_batch(&samples(), &props(&["q?"])).unwrap()[0].to_record();
    assert_eq!(rec.flags["p0"], GradeFlag::ParsedTextFallback);
}

#[test]
fn throttled_request_waits_for_retry_after_then_succeeds() {
    let server = MockServer::start(|n, _| {
        if n == 0 {
            let mut r = Reply::status(429);
            r.headers.push(("retry-after", "1".into()));
            r
        } else {
            Reply::json(openai_reply(0.9, 1.0))
        }
    });
    let mut cfg = config(&server, None);
    cfg.client.initial_concurrency = 4;
    let grader = OpenAiGrader::new(cfg).unwrap();
    let start = Instant::now();
    let g = grader.grade_batch(&samples(), &props(&["q?"])).unwrap()[0].grades["p0"];
    let waited = start.elapsed();
    assert!((g.p_yes.unwrap() - 0.9).abs() < 1e-9);
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After ignored: {waited:?}"
    );
    let usage = grader.usage();
    assert_eq!(
        (usage.http_requests, usage.retries, usage.throttled),
        (2, 1, 1)
    );
    // 4 halved to 2 by the 429, then one success is not yet enough to grow.
    assert_eq!(grader.concurrency(), 2);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let server = MockServer::start(|n, _| {
        if n < 2 {
            Reply::status(500)
        } else {
            Reply::json(openai_reply(0.3, 1.0))
        }
    });
    let grader = OpenAiGrader::new(config(&server, None)).unwrap();
    let g = grader.grade_batch(&samples(), &props(&["q?"])).unwrap()[0].grades["p0"];
    assert!((g.p_yes.unwrap() - 0.3).abs() < 1e-9);
    assert_eq!(server.count(), 3);
    assert_eq!(grader.usage().retries, 2);
}

#[test]
fn a_timed_out_cell_is_flagged_error_and_the_rest_of_the_batch_survives() {
    let server = MockServer::start(|_, body| {
        let mut r = Reply::json(openai_reply(0.7, 1.0));
        if question_of(body) == "p1" {
            r.delay = Duration::from_secs(3);
        }
        r
    });
    let mut cfg = config(&server, None);
    cfg.client.timeout = Duration::from_millis(300);
    cfg.client.max_retries = 1;
    let grader = OpenAiGrader::new(cfg).unwrap();
    let out = grader
        .grade_batch(&samples(), &props(&["fast?", "slow?"]))
        .unwrap();
    assert!((out[0].grades["p0"].p_yes.unwrap() - 0.7).abs() < 1e-9);
    assert_eq!(out[0].grades["p1"], PropositionGrade::failed());
    let usage = grader.usage();
    assert_eq!(usage.failures, 1);
    // The slow cell was tried twice (first attempt + one retry).
    assert_eq!(server.count(), 3);
    let rec = out[0].to_record();
    assert!(!rec.propositions.contains_key("p1"));
    assert_eq!(rec.flags["p1"], GradeFlag::Error);
}

#[test]
fn errors_are_never_cached_and_successes_are() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy.clone();
    let server = MockServer::start(move |_, _| {
        if flag.load(Ordering::SeqCst) {
            Reply::json(openai_reply(0.6, 1.0))
        } else {
            Reply::status(503)
        }
    });
    let cache = temp_cache("errors");
    let mut cfg = config(&server, Some(cache.clone()));
    cfg.client.max_retries = 0;
    let p = props(&["a?", "b?"]);

    let grader = OpenAiGrader::new(cfg.clone()).unwrap();
    let err = grader.grade_batch(&samples(), &p).unwrap_err();
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(server.count(), 2);

    healthy.store(true, Ordering::SeqCst);
    let grader = OpenAiGrader::new(cfg.clone()).unwrap();
    let out = grader.grade_batch(&samples(), &p).unwrap();
    assert_eq!(server.count(), 4, "failed cells must be requested again");
    assert_eq!(grader.usage().cache_hits, 0);

    let grader = OpenAiGrader::new(cfg).unwrap();
    let again = grader.grade_batch(&samples(), &p).unwrap();
    assert_eq!(
        server.count(),
        4,
        "second successful run must not reach the server"
    );
    assert_eq!(grader.usage().cache_hits, 2);
    assert_eq!(out, again);
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn a_changed_parameter_misses_the_cache() {
    let server = MockServer::start(|_, _| Reply::json(openai_reply(0.6, 1.0)));
    let cache = temp_cache("params");
    let cfg = config(&server, Some(cache.clone()));
    OpenAiGrader::new(cfg.clone())
        .unwrap()
        .grade_batch(&samples(), &props(&["a?"]))
        .unwrap();
    let mut other = cfg.clone();
    other.top_logprobs = 5;
    OpenAiGrader::new(other)
        .unwrap()
        .grade_batch(&samples(), &props(&["a?"]))
        .unwrap();
    let mut other = cfg;
    other.client.model = "another-model".into();
    OpenAiGrader::new(other)
        .unwrap()
        .grade_batch(&samples(), &props(&["a?"]))
        .unwrap();
    assert_eq!(server.count(), 3);
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn unauthorised_is_not_retried_and_says_what_to_check() {
    let server = MockServer::start(|_, _| Reply::status(401));
    let grader = OpenAiGrader::new(config(&server, None)).unwrap();
    let err = grader.grade_batch(&samples(), &props(&["a?"])).unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(
        err.to_string().contains("ARBITER_TEST_NO_SUCH_KEY"),
        "{err}"
    );
}

#[test]
fn unreachable_endpoint_is_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = OpenAiConfig::new("m", format!("http://127.0.0.1:{port}/v1"));
    cfg.client.cache_dir = None;
    cfg.client.max_retries = 1;
    cfg.client.initial_backoff = Duration::from_millis(10);
    let err = OpenAiGrader::new(cfg)
        .unwrap()
        .grade_batch(&samples(), &props(&["a?"]))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GraderError::Unreachable { .. }), "{msg}");
    assert!(
        msg.contains("cannot reach") && msg.contains("server is running"),
        "{msg}"
    );
}

#[test]
fn propositions_of_a_sample_are_sent_back_to_back() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = order.clone();
    let server = MockServer::start(move |_, body| {
        let user = body["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        seen.lock().unwrap().push(user.contains("pick a lock"));
        Reply::json(openai_reply(0.5, 1.0))
    });
    let mut cfg = config(&server, None);
    cfg.client.initial_concurrency = 1;
    cfg.client.max_concurrency = 1;
    let mut s = samples();
    s.push(
        Sample::from_value(
            json!({"prompt": [{"role": "user", "content": "Recipe?"}], "completion": "Sure"}),
            1,
        )
        .unwrap(),
    );
    let grader = OpenAiGrader::new(cfg).unwrap();
    let out = grader.grade_batch(&s, &props(&["a?", "b?", "c?"])).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        *order.lock().unwrap(),
        vec![true, true, true, false, false, false]
    );
}

#[test]
fn spec_parsing() {
    let c = OpenAiConfig::from_spec("openai:org/model@v2@http://127.0.0.1:8080/v1/").unwrap();
    assert_eq!(c.client.model, "org/model@v2");
    assert_eq!(c.endpoint(), "http://127.0.0.1:8080/v1/chat/completions");
    assert!(OpenAiConfig::from_spec("openai:model").is_err());
    assert!(OpenAiConfig::from_spec("openai:@http://x").is_err());
    assert!(OpenAiGrader::new(OpenAiConfig::new("m", "localhost:1")).is_err());
    // Retry-After parsing is tested with the client (arbiter-openai).
}

#[test]
fn first_proposition_warms_the_prefix_before_the_rest_go_out_concurrently() {
    let start = Instant::now();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    let server = MockServer::start(move |_, _| {
        seen.lock().unwrap().push(start.elapsed());
        let mut r = Reply::json(openai_reply(0.5, 1.0));
        r.delay = Duration::from_millis(150);
        r
    });
    let mut cfg = config(&server, None);
    cfg.client.initial_concurrency = 8;
    let grader = OpenAiGrader::new(cfg).unwrap();
    grader
        .grade_batch(&samples(), &props(&["a?", "b?", "c?", "d?"]))
        .unwrap();
    let t = arrivals.lock().unwrap().clone();
    assert_eq!(t.len(), 4);
    // The three followers arrive after the warm-up answered, and together (not one by one).
    assert!(t[1] >= t[0] + Duration::from_millis(140), "{t:?}");
    assert!(t[3] < t[1] + Duration::from_millis(100), "{t:?}");
}

#[test]
fn glossary_layout_names_the_proposition_last_and_keeps_the_prompt_when_narrowed() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let server = MockServer::start(move |_, body| {
        seen.lock().unwrap().push(body.clone());
        Reply::json(openai_reply(0.8, 0.9))
    });
    let all = props(&["Does it apologise?", "Does it refuse?"]);
    let mut cfg = config(&server, None);
    assert_eq!(cfg.layout, PromptLayout::Glossary, "the default layout");
    cfg.glossary = all.clone();
    let grader = OpenAiGrader::new(cfg).unwrap();
    grader.grade_batch(&samples(), &all).unwrap();
    grader.grade_batch(&samples(), &all[1..]).unwrap();
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    let system = bodies[0]["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("p0: Does it apologise?") && system.contains("p1: Does it refuse?"));
    for body in &bodies {
        assert_eq!(body["messages"][0]["content"], json!(system));
    }
    let full_p1 = bodies
        .iter()
        .take(2)
        .find(|b| question_of(b) == "p1")
        .unwrap();
    assert_eq!(
        &bodies[2], full_p1,
        "asking one proposition sends the same request as in the full run"
    );
}

#[test]
fn a_proposition_missing_from_the_configured_glossary_is_an_error_before_any_request() {
    let server = MockServer::start(|_, _| Reply::json(openai_reply(0.8, 0.9)));
    let mut cfg = config(&server, None);
    cfg.glossary = props(&["Does it apologise?"]);
    let grader = OpenAiGrader::new(cfg).unwrap();
    let mut other = props(&["x?", "Does it refuse?"]);
    other.remove(0);
    let err = grader.grade_batch(&samples(), &other).unwrap_err();
    assert!(
        matches!(&err, GraderError::UnknownProposition(m) if m.contains("p1") && m.contains("p0")),
        "{err}"
    );
    assert_eq!(server.count(), 0);
}

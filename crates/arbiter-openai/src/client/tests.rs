//! The client's own paths against the scripted server (the grader's tests cover retries,
//! throttling and timeouts through the same code).

use std::sync::Arc;

use arbiter_testkit::{Reply, ScriptedServer, last_user_message};
use serde_json::json;

use super::*;

fn config(url: String, cache: Option<std::path::PathBuf>) -> ClientConfig {
    let mut c = ClientConfig::new("m", url);
    c.api_key_env = "ARBITER_TEST_NO_SUCH_KEY".into();
    c.cache_dir = cache;
    c.initial_backoff = Duration::from_millis(10);
    c
}

fn body(text: &str) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": text}]})
}

#[test]
fn complete_caches_successes_only_and_says_when_it_hit() {
    let server = ScriptedServer::start(
        |b| {
            if last_user_message(b) == "fail" {
                Reply::Status(400, None)
            } else {
                Reply::Text(format!("echo {}", last_user_message(b)))
            }
        },
        Duration::ZERO,
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("arbiter-openai-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let client = Arc::new(Client::new(config(server.base_url(), Some(dir.clone()))).unwrap());
    let rt = crate::blocking_runtime().unwrap();
    let ok = body("hi");
    let first = rt
        .block_on(client.complete(&client.cache_key(&ok), &ok))
        .unwrap();
    assert!(!first.cache_hit);
    assert_eq!(response_text(&first.body), Some("echo hi"));
    let again = rt
        .block_on(client.complete(&client.cache_key(&ok), &ok))
        .unwrap();
    assert!(again.cache_hit);
    assert_eq!(again.body, first.body);
    // A different key for the same body (another sampling epoch) goes to the server.
    let salted = client.cache_key(&json!({"request": ok, "epoch": 1}));
    assert!(
        !rt.block_on(client.complete(&salted, &ok))
            .unwrap()
            .cache_hit
    );
    let bad = body("fail");
    for _ in 0..2 {
        let e = rt
            .block_on(client.complete(&client.cache_key(&bad), &bad))
            .unwrap_err();
        assert!(e.to_string().starts_with("HTTP 400"), "{e}");
    }
    assert_eq!(
        server.requests(),
        4,
        "the failure was asked twice: never cached"
    );
    let u = client.usage();
    assert_eq!((u.http_requests, u.cache_hits, u.failures), (4, 1, 2));
    assert!(u.prompt_tokens > 0 && u.completion_tokens > 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn usage_is_priced_and_read_from_every_shape() {
    let openai = json!({"usage": {"prompt_tokens": 100, "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 60}}});
    assert_eq!(
        TokenUsage::of(&openai),
        TokenUsage {
            prompt_tokens: 100,
            cached_prompt_tokens: 60,
            completion_tokens: 7
        }
    );
    let llama = json!({"usage": {"prompt_tokens": 50, "completion_tokens": 1},
        "timings": {"cache_n": 40}});
    assert_eq!(TokenUsage::of(&llama).cached_prompt_tokens, 40);
    assert_eq!(TokenUsage::of(&json!({})), TokenUsage::default());
    let reply = openai.clone();
    let server = ScriptedServer::start(move |_| Reply::Raw(reply.clone()), Duration::ZERO).unwrap();
    let mut c = config(server.base_url(), None);
    c.prices = crate::Prices {
        input_per_mtok: 1e6,
        cached_input_per_mtok: 0.5e6,
        output_per_mtok: 2e6,
    };
    let client = Client::new(c).unwrap();
    let b = body("x");
    crate::blocking_runtime()
        .unwrap()
        .block_on(client.complete(&client.cache_key(&b), &b))
        .unwrap();
    // 40 uncached × $1 + 60 cached × $0.5 + 7 generated × $2.
    assert!((client.usage().cost_usd - 84.0).abs() < 1e-9);
}

#[test]
fn response_text_reads_chat_legacy_and_native_shapes() {
    let chat = json!({"choices": [{"message": {"role": "assistant", "content": "a"}}]});
    let legacy = json!({"choices": [{"text": "b"}]});
    let native = json!({"content": "c"});
    assert_eq!(response_text(&chat), Some("a"));
    assert_eq!(response_text(&legacy), Some("b"));
    assert_eq!(response_text(&native), Some("c"));
    assert_eq!(
        response_text(&json!({"choices": [{"message": {"content": null}}]})),
        None
    );
}

#[test]
fn retry_after_and_backoff() {
    assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
    assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    assert_eq!(parse_retry_after("-1"), None);
    let b0 = backoff(Duration::from_millis(100), 0, "abcd");
    let b2 = backoff(Duration::from_millis(100), 2, "abcd");
    assert!(b0 >= Duration::from_millis(100) && b0 <= Duration::from_millis(125));
    let ratio = b2.as_secs_f64() / b0.as_secs_f64();
    assert!((ratio - 4.0).abs() < 1e-6, "{b0:?} then {b2:?}");
}

#[test]
fn bad_base_url_is_refused() {
    let e = Client::new(ClientConfig::new("m", "localhost:1"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("must start with http://"), "{e}");
}

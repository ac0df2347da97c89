//! Test support shared by Arbiter's crates.
//!
//! - [`shared_data`]: where the public datasets are, or a printed reason to skip.
//! - [`ScriptedServer`]: a scripted OpenAI-compatible chat server.
//! - [`TempDir`]: a fresh temporary directory, removed on drop.
//! - [`model_installed`]: whether the embedded model is there, or a printed reason to skip.
//! - [`llama::LlamaServer`]: a real llama.cpp server child process (skips when not installed).
//! - [`pages`]: report pages loaded in headless Chromium at a fixed width, with their layout
//!   problems (sideways scrolling, spills, clipped or overlapping figure text) and screenshots.
//!
//! [`ScriptedServer::start`] binds 127.0.0.1 on a free port and answers
//! `POST …/chat/completions` with whatever the script returns for each request body, after an
//! optional fixed latency. It counts requests and keeps their bodies, so tests can assert that a
//! resumed run asked nothing twice. Standard library only: one thread per connection, HTTP/1.1
//! with `Content-Length` bodies and keep-alive.

#![deny(missing_docs)]

mod temp;
pub use temp::TempDir;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

pub mod llama;
pub mod pages;
pub use llama::LlamaServer;

/// The workspace root (where `Cargo.toml` with `[workspace]` is).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$ARBITER_DATA/<sub>` (default `../shared/data` beside the workspace; a relative
/// `ARBITER_DATA` is taken from the workspace root), or `None` after printing why the caller
/// skips. Under `ARBITER_REQUIRE_DATA=1` (CI) a missing directory panics instead.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let root = workspace_root();
    let base = match std::env::var_os("ARBITER_DATA") {
        Some(v) => {
            let p = PathBuf::from(v);
            if p.is_absolute() { p } else { root.join(p) }
        }
        None => root.join("../shared/data"),
    };
    let dir = base.join(sub);
    if dir.exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("ARBITER_REQUIRE_DATA").as_deref() != Ok("1"),
        "ARBITER_REQUIRE_DATA=1 but {} is missing",
        dir.display()
    );
    eprintln!(
        "skipping: shared data not found at {} (set ARBITER_DATA)",
        dir.display()
    );
    None
}

/// Whether the embedded grader's model directory `dir` holds its weights. When it does not,
/// prints why the caller skips and returns `false`; under `ARBITER_REQUIRE_MODEL=1` (CI) panics.
/// (The directory comes from `arbiter_graders::embedded::model::default_model_dir`, which this
/// crate cannot call: the grader crate's own tests use this kit.)
pub fn model_installed(dir: &std::path::Path) -> bool {
    if dir.join("model.safetensors").is_file() {
        return true;
    }
    let msg = format!(
        "MiniLM files not found in {}; run scripts/setup-models.sh",
        dir.display()
    );
    assert!(
        std::env::var("ARBITER_REQUIRE_MODEL").as_deref() != Ok("1"),
        "ARBITER_REQUIRE_MODEL=1 but {msg}"
    );
    eprintln!("SKIPPED: {msg}");
    false
}

/// What the script answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A chat completion whose assistant message is this text.
    Text(String),
    /// An HTTP error status with an optional `Retry-After` (seconds).
    Status(u16, Option<u64>),
    /// A raw 200 body, for testing tolerant parsing.
    Raw(Value),
}

/// The script: request body in, reply out. Called concurrently.
pub type Script = dyn Fn(&Value) -> Reply + Send + Sync;

/// A running scripted server; stops when dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
}

/// The text of the last user message of a chat request body.
pub fn last_user_message(body: &Value) -> String {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|x| x.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn completion_body(body: &Value, text: &str) -> Value {
    let prompt_chars: usize = body
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|x| x.get("content").and_then(Value::as_str))
                .map(str::len)
                .sum()
        })
        .unwrap_or(0);
    json!({
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_chars / 4 + 1,
                  "completion_tokens": text.len() / 4 + 1,
                  "total_tokens": prompt_chars / 4 + text.len() / 4 + 2}
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    retry_after: Option<u64>,
) -> std::io::Result<()> {
    let extra = retry_after
        .map(|s| format!("Retry-After: {s}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        reason(status),
        body.len()
    )?;
    stream.flush()
}

fn serve_connection(
    stream: TcpStream,
    script: &Script,
    latency: Duration,
    requests: &AtomicUsize,
    bodies: &Mutex<Vec<Value>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut raw = vec![0; content_length];
        reader.read_exact(&mut raw)?;
        let path = request_line.split_whitespace().nth(1).unwrap_or("");
        if request_line.starts_with("GET")
            && (path.ends_with("/health") || path.ends_with("/models"))
        {
            write_response(&mut writer, 200, "{\"status\":\"ok\"}", None)?;
            continue;
        }
        if !path.ends_with("/chat/completions") {
            write_response(&mut writer, 404, "{\"error\":\"not found\"}", None)?;
            continue;
        }
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        requests.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut b) = bodies.lock() {
            b.push(body.clone());
        }
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        match script(&body) {
            Reply::Text(text) => write_response(
                &mut writer,
                200,
                &completion_body(&body, &text).to_string(),
                None,
            )?,
            Reply::Raw(v) => write_response(&mut writer, 200, &v.to_string(), None)?,
            Reply::Status(code, retry_after) => write_response(
                &mut writer,
                code,
                &json!({"error": {"message": "scripted failure"}}).to_string(),
                retry_after,
            )?,
        }
    }
}

impl ScriptedServer {
    /// Start on 127.0.0.1 with a free port.
    pub fn start(
        script: impl Fn(&Value) -> Reply + Send + Sync + 'static,
        latency: Duration,
    ) -> std::io::Result<ScriptedServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let requests = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        {
            let (requests, bodies, stop) = (requests.clone(), bodies.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_nodelay(true);
                            let (script, requests, bodies) =
                                (script.clone(), requests.clone(), bodies.clone());
                            std::thread::spawn(move || {
                                let _ =
                                    serve_connection(stream, &*script, latency, &requests, &bodies);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            });
        }
        Ok(ScriptedServer {
            addr,
            requests,
            bodies,
            stop,
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Chat requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Bodies of the chat requests received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(addr: &str, body: &str) -> String {
        let mut s =
            TcpStream::connect(addr.trim_start_matches("http://").trim_end_matches("/v1")).unwrap();
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        let mut len = 0;
        reader.read_line(&mut line).unwrap();
        out.push_str(&line);
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            out.push_str(&h);
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        out.push_str(&String::from_utf8(body).unwrap());
        out
    }

    #[test]
    fn answers_scripts_and_counts_requests() {
        let server = ScriptedServer::start(
            |b| {
                if last_user_message(b).contains("fail") {
                    Reply::Status(429, Some(1))
                } else {
                    Reply::Text(format!("echo: {}", last_user_message(b)))
                }
            },
            Duration::ZERO,
        )
        .unwrap();
        let ok = post(
            &server.base_url(),
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("echo: hi"));
        let throttled = post(
            &server.base_url(),
            r#"{"messages":[{"role":"user","content":"fail"}]}"#,
        );
        assert!(throttled.starts_with("HTTP/1.1 429") && throttled.contains("Retry-After: 1"));
        assert_eq!(server.requests(), 2);
        assert_eq!(server.bodies().len(), 2);
    }
}

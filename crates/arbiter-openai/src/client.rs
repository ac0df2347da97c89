//! The client: one JSON body in, one parsed response out, with retries, admission control,
//! caching and accounting.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::ClientError;
use crate::cache::ResponseCache;
use crate::config::ClientConfig;
use crate::limiter::{AdaptiveLimiter, Permit};

/// Counters for one client's lifetime, readable at any time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UsageStats {
    /// HTTP requests sent, retries included.
    pub http_requests: u64,
    /// Requests answered from the cache without going to the server.
    pub cache_hits: u64,
    /// Retries (HTTP requests beyond the first for a request).
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Requests that failed after all retries.
    pub failures: u64,
    /// Prompt tokens reported by the server.
    pub prompt_tokens: u64,
    /// Of which served from the server's prefix cache (OpenAI `cached_tokens`, llama.cpp `cache_n`).
    pub cached_prompt_tokens: u64,
    /// Generated tokens reported by the server.
    pub completion_tokens: u64,
    /// Prompt-processing time the server reported (llama.cpp `timings.prompt_ms`), in ms.
    pub server_prompt_ms: f64,
    /// Estimated cost in US dollars from the configured [`crate::Prices`].
    pub cost_usd: f64,
}

/// Token counts one response reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Of which served from the server's prefix cache.
    pub cached_prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

impl TokenUsage {
    /// Read `usage` (and llama.cpp's `timings.cache_n`) from a response; absent fields are 0.
    pub fn of(response: &Value) -> TokenUsage {
        let usage = response.get("usage");
        let get = |v: Option<&Value>, k: &str| v.and_then(|u| u.get(k)).and_then(Value::as_u64);
        let prompt_tokens = get(usage, "prompt_tokens").unwrap_or(0);
        let cached = usage
            .and_then(|u| u.get("prompt_tokens_details"))
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .or_else(|| get(response.get("timings"), "cache_n"))
            .unwrap_or(0);
        TokenUsage {
            prompt_tokens,
            cached_prompt_tokens: cached.min(prompt_tokens),
            completion_tokens: get(usage, "completion_tokens").unwrap_or(0),
        }
    }
}

/// A successful response.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The parsed response body.
    pub body: Value,
    /// Served from the response cache (no request was sent).
    pub cache_hit: bool,
}

/// Why a request failed in the end.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestFailure {
    /// No HTTP answer: connection refused, DNS, timeout.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// An HTTP answer that was not a usable success.
    #[error("{0}")]
    Http(String),
}

#[derive(Default)]
struct Counters {
    http_requests: AtomicU64,
    cache_hits: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    failures: AtomicU64,
    tokens: Mutex<(u64, u64, u64, f64)>,
}

/// An OpenAI-compatible chat client. Share it behind an `Arc`; all methods take `&self`.
pub struct Client {
    config: ClientConfig,
    http: reqwest::Client,
    api_key: Option<String>,
    cache: Option<ResponseCache>,
    limiter: AdaptiveLimiter,
    counters: Counters,
}

impl Client {
    /// Build the client. Fails only on an unusable configuration (bad URL, TLS set-up).
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "base URL {:?} must start with http:// or https://",
                config.base_url
            )));
        }
        // reqwest is built without a bundled crypto provider; install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)));
        if config.base_url.starts_with("http://") {
            // A plain-HTTP server (llama.cpp, vLLM, Ollama on localhost) needs no trust roots;
            // loading the system's takes tens of milliseconds per client at start-up.
            builder = builder.tls_certs_only(Vec::<reqwest::Certificate>::new());
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        let api_key = std::env::var(&config.api_key_env)
            .ok()
            .filter(|k| !k.is_empty());
        let cache = config.cache_dir.clone().map(ResponseCache::new);
        let limiter = AdaptiveLimiter::new(config.initial_concurrency, config.max_concurrency);
        Ok(Client {
            config,
            http,
            api_key,
            cache,
            limiter,
            counters: Counters::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The cache key of a request body sent to this client's endpoint. Callers that send the
    /// same body for different purposes (sampling epochs) key a wrapper value instead.
    pub fn cache_key(&self, body: &Value) -> String {
        ResponseCache::key(&self.config.endpoint(), body)
    }

    /// The cached response for `key`, counted as a cache hit; `None` without a cache or entry.
    pub fn cached(&self, key: &str) -> Option<Value> {
        let hit = self.cache.as_ref()?.get(key)?;
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(hit)
    }

    /// Reserve `n` consecutive admission tickets and return the first (see
    /// [`AdaptiveLimiter::reserve`]): requests are admitted in ticket order.
    pub fn reserve(&self, n: usize) -> u64 {
        self.limiter.reserve(n)
    }

    /// Wait until ticket `ticket` may send. Every reserved ticket must be acquired, and the
    /// future run to completion, or later tickets wait for ever.
    pub async fn acquire(&self, ticket: u64) -> Permit<'_> {
        self.limiter.acquire(ticket).await
    }

    /// The whole path for one request: cache, admission, [`Client::send`].
    pub async fn complete(&self, key: &str, body: &Value) -> Result<Completion, RequestFailure> {
        if let Some(body) = self.cached(key) {
            return Ok(Completion {
                body,
                cache_hit: true,
            });
        }
        let permit = self.acquire(self.reserve(1)).await;
        let result = self.send(key, body).await;
        drop(permit);
        result.map(|body| Completion {
            body,
            cache_hit: false,
        })
    }

    /// Send an admitted request, retrying transport errors, timeouts, 408, 429 and 5xx with
    /// exponential backoff (or the server's `Retry-After`). A success is accounted and cached
    /// under `key`; a failure is counted and never cached.
    pub async fn send(&self, key: &str, body: &Value) -> Result<Value, RequestFailure> {
        let mut attempt = 0u32;
        loop {
            if attempt > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            self.counters.http_requests.fetch_add(1, Ordering::Relaxed);
            let (failure, retry_after) = match self.send_once(body).await {
                Ok(response) => {
                    self.limiter.on_success();
                    self.account(&response);
                    if let Some(cache) = &self.cache {
                        // A cache that cannot be written only costs a future request.
                        let _ = cache.put(key, &response);
                    }
                    return Ok(response);
                }
                Err(Attempt::Fatal(failure)) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(failure);
                }
                Err(Attempt::Retryable {
                    failure,
                    retry_after,
                    throttled,
                }) => {
                    if throttled {
                        self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                        self.limiter.on_throttle();
                    }
                    (failure, retry_after)
                }
            };
            if attempt >= self.config.max_retries {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                return Err(failure);
            }
            let wait = retry_after
                .unwrap_or_else(|| backoff(self.config.initial_backoff, attempt, key))
                .min(self.config.max_backoff);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Counters so far.
    pub fn usage(&self) -> UsageStats {
        let c = &self.counters;
        let (prompt, cached, completion, prompt_ms) =
            c.tokens.lock().map(|t| *t).unwrap_or_default();
        UsageStats {
            http_requests: c.http_requests.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            prompt_tokens: prompt,
            cached_prompt_tokens: cached,
            completion_tokens: completion,
            server_prompt_ms: prompt_ms,
            cost_usd: self.config.prices.cost(prompt, cached, completion),
        }
    }

    /// The current concurrency limit (shrinks on 429, grows on success).
    pub fn concurrency(&self) -> usize {
        self.limiter.limit()
    }

    async fn send_once(&self, body: &Value) -> Result<Value, Attempt> {
        let mut request = self
            .http
            .post(self.config.endpoint())
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| Attempt::Retryable {
            failure: RequestFailure::Transport(describe_reqwest_error(&e)),
            retry_after: None,
            throttled: false,
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response.text().await.map_err(|e| Attempt::Retryable {
            failure: RequestFailure::Transport(describe_reqwest_error(&e)),
            retry_after: None,
            throttled: false,
        })?;
        if status == 429 || status == 408 || (500..600).contains(&status) {
            return Err(Attempt::Retryable {
                failure: RequestFailure::Http(format!("HTTP {status}: {}", snippet(&text))),
                retry_after,
                throttled: status == 429,
            });
        }
        if !(200..300).contains(&status) {
            let hint = match status {
                401 | 403 => format!(" (check the API key in ${})", self.config.api_key_env),
                404 => " (check the base URL and the model name)".to_string(),
                _ => String::new(),
            };
            return Err(Attempt::Fatal(RequestFailure::Http(format!(
                "HTTP {status}{hint}: {}",
                snippet(&text)
            ))));
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| Attempt::Retryable {
            failure: RequestFailure::Http(format!(
                "unparseable JSON body ({e}): {}",
                snippet(&text)
            )),
            retry_after: None,
            throttled: false,
        })?;
        if value.get("error").is_some_and(|e| !e.is_null()) {
            return Err(Attempt::Fatal(RequestFailure::Http(format!(
                "server returned an error object: {}",
                snippet(&value["error"].to_string())
            ))));
        }
        Ok(value)
    }

    fn account(&self, response: &Value) {
        let usage = TokenUsage::of(response);
        let prompt_ms = response
            .get("timings")
            .and_then(|t| t.get("prompt_ms"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if let Ok(mut t) = self.counters.tokens.lock() {
            t.0 += usage.prompt_tokens;
            t.1 += usage.cached_prompt_tokens;
            t.2 += usage.completion_tokens;
            t.3 += prompt_ms;
        }
    }
}

/// The generated text of a response, from any of the shapes servers send: chat
/// `choices[0].message.content`, legacy completions `choices[0].text`, or llama.cpp's native
/// top-level `content`. `None` when there is none.
pub fn response_text(body: &Value) -> Option<&str> {
    let choice = body.get("choices").and_then(|c| c.get(0));
    choice
        .and_then(|c| {
            c.get("message")
                .and_then(|m| m.get("content"))
                .and_then(Value::as_str)
                .or_else(|| c.get("text").and_then(Value::as_str))
        })
        .or_else(|| body.get("content").and_then(Value::as_str))
}

enum Attempt {
    Retryable {
        failure: RequestFailure,
        retry_after: Option<Duration>,
        throttled: bool,
    },
    Fatal(RequestFailure),
}

/// `Retry-After` as delta-seconds (integer or decimal). HTTP dates fall back to our own backoff.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Exponential backoff with up to 25 % jitter derived from the request's key (deterministic, but
/// different requests spread out instead of retrying in lockstep).
fn backoff(initial: Duration, attempt: u32, key: &str) -> Duration {
    let base = initial.saturating_mul(1u32 << attempt.min(16));
    let jitter = key
        .bytes()
        .take(4)
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32))
        % 256;
    base + base.mul_f64(0.25 * jitter as f64 / 256.0)
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut msg = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

#[cfg(test)]
mod tests;

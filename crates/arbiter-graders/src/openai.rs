//! Grader backed by any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama-server).
//!
//! One request per (sample, proposition), `temperature: 0`, a few output tokens, `logprobs` with
//! `top_logprobs`; P(yes) comes from the label tokens' probabilities ([`crate::logprobs`]).
//! The client is built for long unattended runs: timeouts, retries with exponential backoff that
//! honour `Retry-After`, concurrency that halves on 429 and grows back on success, token and
//! cost accounting, and a content-addressed response cache that never stores failures.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbiter_core::{PropositionSpec, Sample};
use serde_json::{Value, json};

use crate::GraderError;
use crate::cache::ResponseCache;
use crate::grader::{Grader, PropositionGrade, SampleGrades};
use crate::limiter::AdaptiveLimiter;
use crate::logprobs::{grade_from_response, parse_response};
use crate::prompt::grading_messages;

/// Prices in US dollars per million tokens, for cost accounting.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prices {
    /// Uncached prompt tokens.
    pub input_per_mtok: f64,
    /// Prompt tokens the server reports as served from its prefix cache.
    pub cached_input_per_mtok: f64,
    /// Generated tokens.
    pub output_per_mtok: f64,
}

/// Everything that shapes the requests and the client's behaviour.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL up to and including `/v1` (no trailing slash needed).
    pub base_url: String,
    /// Model name sent in each request.
    pub model: String,
    /// Name of the environment variable holding the API key; unset variable → no auth header.
    pub api_key_env: String,
    /// Output tokens per request: enough to get past a leading space or newline.
    pub max_tokens: u32,
    /// Alternatives per position (OpenAI allows 0–20).
    pub top_logprobs: u32,
    /// How many generated positions to scan for a yes/no label.
    pub scan_positions: usize,
    /// Label mass below this is flagged `low_mass`.
    pub min_mass: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt, for transport errors, timeouts, 429 and 5xx.
    pub max_retries: u32,
    /// First backoff; doubles on each retry.
    pub initial_backoff: Duration,
    /// Upper bound on any wait, including a server's `Retry-After`.
    pub max_backoff: Duration,
    /// Requests in flight at the start.
    pub initial_concurrency: usize,
    /// Requests in flight at most.
    pub max_concurrency: usize,
    /// Response cache directory; `None` disables caching.
    pub cache_dir: Option<PathBuf>,
    /// Prices for cost accounting.
    pub prices: Prices,
}

impl OpenAiConfig {
    /// Defaults for a model at a base URL; cache under `$ARBITER_CACHE/responses`.
    pub fn new(model: impl Into<String>, base_url: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            model: model.into(),
            api_key_env: "OPENAI_API_KEY".into(),
            max_tokens: 3,
            top_logprobs: 20,
            scan_positions: 3,
            min_mass: 0.5,
            timeout: Duration::from_secs(60),
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            initial_concurrency: 4,
            max_concurrency: 16,
            cache_dir: crate::default_cache_dir().map(|d| d.join("responses")),
            prices: Prices::default(),
        }
    }

    /// Parse `openai:MODEL@BASE_URL`. The URL starts at the last `@` followed by `http`, so
    /// model names may themselves contain `@`.
    pub fn from_spec(spec: &str) -> Result<Self, GraderError> {
        let rest = spec
            .strip_prefix("openai:")
            .ok_or_else(|| GraderError::UnknownGrader { spec: spec.into() })?;
        let at = rest.rfind("@http").ok_or_else(|| {
            GraderError::Config(format!(
                "grader {spec:?} has no base URL: write openai:MODEL@BASE_URL, e.g. openai:gpt-4o-mini@https://api.openai.com/v1"
            ))
        })?;
        let (model, url) = (&rest[..at], &rest[at + 1..]);
        if model.is_empty() {
            return Err(GraderError::Config(format!(
                "grader {spec:?} has an empty model name: write openai:MODEL@BASE_URL"
            )));
        }
        Ok(OpenAiConfig::new(model, url))
    }

    /// The chat completions URL.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }

    /// The request body for one (sample, proposition). Every field here is part of the cache key.
    pub fn request_body(&self, sample: &Sample, proposition: &PropositionSpec) -> Value {
        json!({
            "model": self.model,
            "messages": grading_messages(sample, proposition),
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "logprobs": true,
            "top_logprobs": self.top_logprobs,
            "n": 1,
            "stream": false,
        })
    }
}

/// Counters for one grader's lifetime, readable at any time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UsageStats {
    /// HTTP requests sent, retries included.
    pub http_requests: u64,
    /// Cells answered from the cache without a request.
    pub cache_hits: u64,
    /// Retries (HTTP requests beyond the first for a cell).
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Cells that failed after all retries.
    pub failures: u64,
    /// Prompt tokens reported by the server.
    pub prompt_tokens: u64,
    /// Of which served from the server's prefix cache (OpenAI `cached_tokens`, llama.cpp `cache_n`).
    pub cached_prompt_tokens: u64,
    /// Generated tokens reported by the server.
    pub completion_tokens: u64,
    /// Prompt-processing time the server reported (llama.cpp `timings.prompt_ms`), in ms.
    pub server_prompt_ms: f64,
    /// Estimated cost in US dollars from [`Prices`].
    pub cost_usd: f64,
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

/// Why one cell's request failed in the end.
#[derive(Debug, Clone)]
enum RequestFailure {
    /// No HTTP answer: connection refused, DNS, timeout.
    Transport(String),
    /// An HTTP answer that was not a usable success.
    Http(String),
}

struct Inner {
    config: OpenAiConfig,
    client: reqwest::Client,
    api_key: Option<String>,
    cache: Option<ResponseCache>,
    limiter: AdaptiveLimiter,
    counters: Counters,
}

/// The OpenAI-compatible grader. Owns a small tokio runtime, so call it from synchronous code.
pub struct OpenAiGrader {
    inner: Arc<Inner>,
    runtime: tokio::runtime::Runtime,
}

impl OpenAiGrader {
    /// Build the client. Fails only on an unusable configuration (bad URL, TLS set-up).
    pub fn new(config: OpenAiConfig) -> Result<Self, GraderError> {
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(GraderError::Config(format!(
                "base URL {:?} must start with http:// or https://",
                config.base_url
            )));
        }
        if config.top_logprobs > 20 {
            return Err(GraderError::Config(
                "top_logprobs must be at most 20 (the OpenAI API limit)".into(),
            ));
        }
        // reqwest is built without a bundled crypto provider; install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| GraderError::Config(format!("cannot build the HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| GraderError::io("cannot start the async runtime", e))?;
        let api_key = std::env::var(&config.api_key_env)
            .ok()
            .filter(|k| !k.is_empty());
        let cache = config.cache_dir.clone().map(ResponseCache::new);
        let limiter = AdaptiveLimiter::new(config.initial_concurrency, config.max_concurrency);
        Ok(OpenAiGrader {
            inner: Arc::new(Inner {
                config,
                client,
                api_key,
                cache,
                limiter,
                counters: Counters::default(),
            }),
            runtime,
        })
    }

    /// Counters so far.
    pub fn usage(&self) -> UsageStats {
        let c = &self.inner.counters;
        let (prompt, cached, completion, prompt_ms) =
            c.tokens.lock().map(|t| *t).unwrap_or_default();
        let prices = self.inner.config.prices;
        let uncached = prompt.saturating_sub(cached);
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
            cost_usd: (uncached as f64 * prices.input_per_mtok
                + cached as f64 * prices.cached_input_per_mtok
                + completion as f64 * prices.output_per_mtok)
                / 1e6,
        }
    }

    /// The current concurrency limit (shrinks on 429, grows on success).
    pub fn concurrency(&self) -> usize {
        self.inner.limiter.limit()
    }
}

impl Grader for OpenAiGrader {
    fn describe(&self) -> String {
        format!(
            "openai:{}@{}",
            self.inner.config.model, self.inner.config.base_url
        )
    }

    fn usage_summary(&self) -> Option<String> {
        let u = self.usage();
        Some(format!(
            "{} HTTP requests ({} retries, {} throttled, {} failed cells), {} cache hits; tokens: {} prompt ({} served from the server's prefix cache), {} completion; cost ${:.4}",
            u.http_requests,
            u.retries,
            u.throttled,
            u.failures,
            u.cache_hits,
            u.prompt_tokens,
            u.cached_prompt_tokens,
            u.completion_tokens,
            u.cost_usd
        ))
    }

    fn grade_batch(
        &self,
        samples: &[Sample],
        propositions: &[PropositionSpec],
    ) -> Result<Vec<SampleGrades>, GraderError> {
        let inner = &self.inner;
        // Cells in sample-major order, so a sample's propositions go out back to back.
        let mut cells: Vec<Option<PropositionGrade>> =
            vec![None; samples.len() * propositions.len()];
        let mut pending = Vec::new();
        for (s, sample) in samples.iter().enumerate() {
            for (p, proposition) in propositions.iter().enumerate() {
                let body = inner.config.request_body(sample, proposition);
                let key = ResponseCache::key(&inner.config.endpoint(), &body);
                let cached = inner.cache.as_ref().and_then(|c| c.get(&key));
                match cached {
                    Some(response) => {
                        inner.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                        cells[s * propositions.len() + p] = Some(grade_from_response(
                            &parse_response(&response),
                            inner.config.min_mass,
                            inner.config.scan_positions,
                        ));
                    }
                    None => pending.push((s * propositions.len() + p, key, body)),
                }
            }
        }

        let n_pending = pending.len();
        let n_props = propositions.len().max(1);
        let outcomes = self.runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            // The first pending cell of each sample warms the server's prefix cache; the
            // sample's other cells wait for it, then go out together.
            let mut warm: Option<(usize, tokio::sync::watch::Receiver<bool>)> = None;
            let first_ticket = inner.limiter.reserve(pending.len());
            for (i, (cell, key, body)) in pending.into_iter().enumerate() {
                let ticket = first_ticket + i as u64;
                let inner = Arc::clone(inner);
                let sample = cell / n_props;
                let (done_tx, wait_rx) = match &warm {
                    Some((s, rx)) if *s == sample => (None, Some(rx.clone())),
                    _ => {
                        let (tx, rx) = tokio::sync::watch::channel(false);
                        warm = Some((sample, rx));
                        (Some(tx), None)
                    }
                };
                tasks.spawn(async move {
                    if let Some(mut rx) = wait_rx {
                        // An error means the warm-up task is gone; go ahead regardless.
                        let _ = rx.wait_for(|done| *done).await;
                    }
                    let permit = inner.limiter.acquire(ticket).await;
                    let result = inner.request_with_retries(&key, &body).await;
                    drop(permit);
                    if let Some(tx) = done_tx {
                        let _ = tx.send(true);
                    }
                    (cell, result)
                });
            }
            let mut outcomes = Vec::with_capacity(n_pending);
            while let Some(joined) = tasks.join_next().await {
                // A panicking task is a bug in this module; treat its cell as failed.
                if let Ok(outcome) = joined {
                    outcomes.push(outcome);
                }
            }
            outcomes
        });

        let mut last_failure = None;
        let mut any_success = n_pending == 0;
        for (cell, result) in outcomes {
            match result {
                Ok(response) => {
                    any_success = true;
                    cells[cell] = Some(grade_from_response(
                        &parse_response(&response),
                        inner.config.min_mass,
                        inner.config.scan_positions,
                    ));
                }
                Err(failure) => {
                    inner.counters.failures.fetch_add(1, Ordering::Relaxed);
                    last_failure = Some(failure);
                }
            }
        }
        if !any_success && cells.iter().all(Option::is_none) {
            let url = inner.config.endpoint();
            return Err(match last_failure {
                Some(RequestFailure::Transport(reason)) => GraderError::Unreachable { url, reason },
                Some(RequestFailure::Http(reason)) => GraderError::Endpoint { url, reason },
                None => GraderError::Endpoint {
                    url,
                    reason: "no request completed".into(),
                },
            });
        }

        Ok(samples
            .iter()
            .enumerate()
            .map(|(s, sample)| SampleGrades {
                id: sample.id.clone(),
                grades: propositions
                    .iter()
                    .enumerate()
                    .map(|(p, prop)| {
                        let grade = cells[s * propositions.len() + p]
                            .unwrap_or_else(PropositionGrade::failed);
                        (prop.name.clone(), grade)
                    })
                    .collect(),
            })
            .collect())
    }
}

impl Inner {
    async fn request_with_retries(&self, key: &str, body: &Value) -> Result<Value, RequestFailure> {
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
                Err(Attempt::Fatal(failure)) => return Err(failure),
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
                return Err(failure);
            }
            let wait = retry_after
                .unwrap_or_else(|| backoff(self.config.initial_backoff, attempt, key))
                .min(self.config.max_backoff);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, body: &Value) -> Result<Value, Attempt> {
        let mut request = self
            .client
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
        let usage = response.get("usage");
        let get = |v: Option<&Value>, k: &str| v.and_then(|u| u.get(k)).and_then(Value::as_u64);
        let prompt = get(usage, "prompt_tokens").unwrap_or(0);
        let completion = get(usage, "completion_tokens").unwrap_or(0);
        let cached = usage
            .and_then(|u| u.get("prompt_tokens_details"))
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .or_else(|| get(response.get("timings"), "cache_n"))
            .unwrap_or(0);
        let prompt_ms = response
            .get("timings")
            .and_then(|t| t.get("prompt_ms"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if let Ok(mut t) = self.counters.tokens.lock() {
            t.0 += prompt;
            t.1 += cached.min(prompt);
            t.2 += completion;
            t.3 += prompt_ms;
        }
    }
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
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Exponential backoff with up to 25 % jitter derived from the cell's key (deterministic, but
/// different cells spread out instead of retrying in lockstep).
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

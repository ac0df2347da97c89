//! A client for OpenAI-compatible chat endpoints (OpenAI, vLLM, llama-server), built for long
//! unattended runs. Graders and the eval runner share it.
//!
//! - [`ClientConfig`]: base URL, model, API key variable, timeouts, retries, concurrency, cache
//!   directory and [`Prices`]; [`ClientConfig::from_spec`] reads `openai:MODEL@BASE_URL`.
//! - [`Client`]: sends one JSON body to `…/chat/completions` with retries (exponential backoff
//!   with jitter; `Retry-After` honoured on 429 and 5xx), admits requests through an
//!   [`AdaptiveLimiter`] (halves on 429, grows back on success), counts tokens and cost
//!   ([`UsageStats`]) and keeps successful responses in a [`ResponseCache`] keyed by the canonical
//!   request. Failures are never cached.
//! - [`response_text`]: the generated text from any of the response shapes servers send.
//!
//! The client is async; synchronous callers own a small runtime from [`blocking_runtime`] and
//! `block_on` the calls.
//!
//! ```no_run
//! use arbiter_openai::{Client, ClientConfig, blocking_runtime, response_text};
//! let client = Client::new(ClientConfig::from_spec("openai:m@http://127.0.0.1:8080/v1")?)?;
//! let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
//! let completion = blocking_runtime()?.block_on(client.complete(&client.cache_key(&body), &body))?;
//! println!("{}", response_text(&completion.body).unwrap_or_default());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod cache;
mod client;
mod config;
mod limiter;

pub use cache::{ResponseCache, hex, sha256_hex};
pub use client::{Client, Completion, RequestFailure, TokenUsage, UsageStats, response_text};
pub use config::{ClientConfig, Prices};
pub use limiter::{AdaptiveLimiter, Permit};

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A configuration value is unusable (bad spec or URL, TLS set-up).
    #[error("{0}")]
    Config(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

pub use arbiter_core::digest::default_cache_dir;

/// The small multi-threaded runtime a synchronous caller owns to drive a [`Client`]. Its
/// `block_on` may be called from many threads at once.
pub fn blocking_runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)
}

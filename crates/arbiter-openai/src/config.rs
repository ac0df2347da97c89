//! What a client talks to and how patiently: endpoint, model, key, timeouts, retries,
//! concurrency, cache and prices.

use std::path::PathBuf;
use std::time::Duration;

use crate::ClientError;

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

impl Prices {
    /// The cost in US dollars of `prompt` prompt tokens (of which `cached` came from the server's
    /// prefix cache) and `completion` generated tokens.
    pub fn cost(&self, prompt: u64, cached: u64, completion: u64) -> f64 {
        let cached = cached.min(prompt);
        ((prompt - cached) as f64 * self.input_per_mtok
            + cached as f64 * self.cached_input_per_mtok
            + completion as f64 * self.output_per_mtok)
            / 1e6
    }
}

/// Everything that shapes the client's behaviour (request bodies are the caller's).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL up to and including `/v1` (no trailing slash needed).
    pub base_url: String,
    /// Model name, for the caller's request bodies and for [`ClientConfig::describe`].
    pub model: String,
    /// Name of the environment variable holding the API key; unset variable → no auth header.
    pub api_key_env: String,
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

impl ClientConfig {
    /// Defaults for a model at a base URL; cache under `$ARBITER_CACHE/responses`.
    pub fn new(model: impl Into<String>, base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            model: model.into(),
            api_key_env: "OPENAI_API_KEY".into(),
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
    pub fn from_spec(spec: &str) -> Result<Self, ClientError> {
        let example = "e.g. openai:gpt-4o-mini@https://api.openai.com/v1";
        let rest = spec.strip_prefix("openai:").ok_or_else(|| {
            ClientError::Config(format!(
                "{spec:?} is not a model spec: write openai:MODEL@BASE_URL, {example}"
            ))
        })?;
        let at = rest.rfind("@http").ok_or_else(|| {
            ClientError::Config(format!(
                "{spec:?} has no base URL: write openai:MODEL@BASE_URL, {example}"
            ))
        })?;
        let (model, url) = (&rest[..at], &rest[at + 1..]);
        if model.is_empty() {
            return Err(ClientError::Config(format!(
                "{spec:?} has an empty model name: write openai:MODEL@BASE_URL"
            )));
        }
        Ok(ClientConfig::new(model, url))
    }

    /// The chat completions URL.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }

    /// `openai:MODEL@BASE_URL`, the spec this configuration answers to.
    pub fn describe(&self) -> String {
        format!("openai:{}@{}", self.model, self.base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        let c = ClientConfig::from_spec("openai:org/model@v2@http://127.0.0.1:8080/v1/").unwrap();
        assert_eq!(c.model, "org/model@v2");
        assert_eq!(c.endpoint(), "http://127.0.0.1:8080/v1/chat/completions");
        assert_eq!(c.describe(), "openai:org/model@v2@http://127.0.0.1:8080/v1");
        for bad in ["openai:model", "openai:@http://x", "gpt-4o@http://x"] {
            let e = ClientConfig::from_spec(bad).unwrap_err().to_string();
            assert!(e.contains("openai:MODEL@BASE_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn cost_splits_cached_prompt_tokens() {
        let p = Prices {
            input_per_mtok: 2.0,
            cached_input_per_mtok: 1.0,
            output_per_mtok: 8.0,
        };
        assert!((p.cost(1_000_000, 250_000, 500_000) - (1.5 + 0.25 + 4.0)).abs() < 1e-12);
        // A server reporting more cached than prompt tokens cannot make the cost negative.
        assert!((p.cost(10, 20, 0) - 10.0 / 1e6).abs() < 1e-15);
    }
}

//! The evaluated model (and judges) over HTTP: any OpenAI-compatible chat endpoint through the
//! shared [`arbiter_openai::Client`], behind the runner's blocking [`ChatModel`] trait.
//!
//! The model owns one small tokio runtime; each runner thread `block_on`s its own request, so
//! requests in flight = runner threads, further capped by the client's adaptive limiter.

use arbiter_openai::{Client, ClientConfig, ClientError, TokenUsage, response_text};
use serde_json::{Value, json};

use crate::runlog::Usage;
use crate::runner::{ChatModel, ChatReply, ChatRequest};

/// An OpenAI-compatible chat model.
pub struct OpenAiChatModel {
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl OpenAiChatModel {
    /// Build the client and its runtime. Fails only on an unusable configuration.
    pub fn new(config: ClientConfig) -> Result<OpenAiChatModel, ClientError> {
        Ok(OpenAiChatModel {
            client: Client::new(config)?,
            runtime: arbiter_openai::blocking_runtime()?,
        })
    }

    /// The client, for its counters.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The request body for a chat request. The epoch is not sent (servers reject unknown
    /// parameters); it only separates cache entries, see [`OpenAiChatModel::cache_key`].
    pub fn body(&self, request: &ChatRequest) -> Value {
        json!({
            "model": self.client.config().model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "n": 1,
            "stream": false,
        })
    }

    /// The cache key: the body's own key for epoch 0 (so identical requests share an entry
    /// across runs and suites), the body salted with the epoch for later epochs (so repeated
    /// samples are fresh draws).
    pub fn cache_key(&self, request: &ChatRequest, body: &Value) -> String {
        if request.epoch == 0 {
            self.client.cache_key(body)
        } else {
            self.client
                .cache_key(&json!({"request": body, "epoch": request.epoch}))
        }
    }
}

impl ChatModel for OpenAiChatModel {
    fn describe(&self) -> String {
        self.client.config().describe()
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatReply, String> {
        let body = self.body(request);
        let key = self.cache_key(request, &body);
        let completion = self
            .runtime
            .block_on(self.client.complete(&key, &body))
            .map_err(|e| format!("{}: {e}", self.client.config().endpoint()))?;
        let text = response_text(&completion.body).ok_or_else(|| {
            format!(
                "{}: the response has no message content: {}",
                self.client.config().endpoint(),
                completion
                    .body
                    .to_string()
                    .chars()
                    .take(300)
                    .collect::<String>()
            )
        })?;
        let usage = TokenUsage::of(&completion.body);
        Ok(ChatReply {
            text: text.to_string(),
            usage: Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            },
            cache_hit: completion.cache_hit,
        })
    }

    fn cost_usd(&self) -> f64 {
        self.client.usage().cost_usd
    }
}

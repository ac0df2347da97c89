//! Grader backed by any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama-server).
//!
//! One request per (sample, proposition), `temperature: 0`, one output token, `logprobs` with
//! `top_logprobs`; P(yes) comes from the label tokens' probabilities ([`crate::logprobs`]). A
//! proposition whose first token carries no yes/no label (a model that opens with a space, a
//! newline or a preamble) is asked once more with a few tokens, and the first of them that
//! carries a label is used. One token is the common case and the cheap one: each generated token
//! costs a decoding step plus the server's top-logprobs pass over the whole vocabulary, which
//! for a small model costs more than the short question suffix itself.
//! The HTTP side (timeouts, retries honouring `Retry-After`, adaptive concurrency, token and
//! cost accounting, the response cache that never stores failures) is [`arbiter_openai::Client`];
//! this module shapes the grading requests and orders them so a sample's propositions share
//! the server's prefix cache.

use std::sync::Arc;

use arbiter_core::{GradeFlag, PropositionSpec, Sample};
use arbiter_openai::{Client, ClientConfig, ClientError, RequestFailure};
use serde_json::{Value, json};

use crate::GraderError;
use crate::grader::{Grader, PropositionGrade, SampleGrades};
use crate::logprobs::{ParsedResponse, grade_from_response, parse_response};
use crate::prompt::{PromptLayout, grading_messages};

pub use arbiter_openai::{Prices, UsageStats};

/// Everything that shapes the grading requests, over the HTTP client's configuration.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Endpoint, model, key, timeouts, retries, concurrency, cache and prices.
    pub client: ClientConfig,
    /// Output tokens per request (1: the label is normally the first token).
    pub max_tokens: u32,
    /// When none of the first `max_tokens` positions carries a label although logprobs came
    /// back, ask that proposition again with this many tokens (enough to get past a leading
    /// space or newline). At most `max_tokens` turns the second request off.
    pub fallback_max_tokens: u32,
    /// Alternatives per position (OpenAI allows 0–20).
    pub top_logprobs: u32,
    /// How many generated positions to scan for a yes/no label (of those returned).
    pub scan_positions: usize,
    /// Label mass below this is flagged `low_mass`.
    pub min_mass: f64,
    /// Where each proposition's question goes ([`PromptLayout`]).
    pub layout: PromptLayout,
    /// The propositions the glossary layout's system message lists, in order: set it to the
    /// whole policy so the system message (and the response cache key) stays the same whichever
    /// propositions a call asks. Empty: the propositions of each call.
    pub glossary: Vec<PropositionSpec>,
}

impl OpenAiConfig {
    /// Defaults for a model at a base URL; cache under `$ARBITER_CACHE/responses`.
    pub fn new(model: impl Into<String>, base_url: impl Into<String>) -> Self {
        OpenAiConfig::grading_with(ClientConfig::new(model, base_url))
    }

    /// Parse `openai:MODEL@BASE_URL`. The URL starts at the last `@` followed by `http`, so
    /// model names may themselves contain `@`.
    pub fn from_spec(spec: &str) -> Result<Self, GraderError> {
        if !spec.starts_with("openai:") {
            return Err(GraderError::UnknownGrader { spec: spec.into() });
        }
        let client = ClientConfig::from_spec(spec)
            .map_err(|e| GraderError::Config(format!("grader {e}")))?;
        Ok(OpenAiConfig::grading_with(client))
    }

    /// The grading defaults over a client configuration.
    fn grading_with(client: ClientConfig) -> Self {
        OpenAiConfig {
            client,
            max_tokens: 1,
            fallback_max_tokens: 3,
            top_logprobs: 20,
            scan_positions: 3,
            min_mass: 0.5,
            layout: PromptLayout::default(),
            glossary: Vec::new(),
        }
    }

    /// The chat completions URL.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.client.base_url)
    }

    /// The glossary a call asking `asked` uses: the configured one, or `asked` itself when none
    /// is configured. A configured glossary must hold every asked proposition.
    pub fn glossary_for<'a>(
        &'a self,
        asked: &'a [PropositionSpec],
    ) -> Result<&'a [PropositionSpec], GraderError> {
        if self.glossary.is_empty() || self.layout == PromptLayout::Question {
            return Ok(asked);
        }
        match asked
            .iter()
            .find(|p| !self.glossary.iter().any(|g| g.name == p.name))
        {
            Some(missing) => Err(GraderError::UnknownProposition(format!(
                "{} is not in the grader's glossary ({})",
                missing.name,
                self.glossary
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            None => Ok(&self.glossary),
        }
    }

    /// The request body for one (sample, proposition) with the glossary from
    /// [`OpenAiConfig::glossary_for`]. Every field here is part of the cache key.
    pub fn request_body(
        &self,
        sample: &Sample,
        proposition: &PropositionSpec,
        glossary: &[PropositionSpec],
    ) -> Value {
        self.request_body_with(sample, proposition, glossary, self.max_tokens)
    }

    /// [`OpenAiConfig::request_body`] asking for `max_tokens` output tokens.
    pub fn request_body_with(
        &self,
        sample: &Sample,
        proposition: &PropositionSpec,
        glossary: &[PropositionSpec],
        max_tokens: u32,
    ) -> Value {
        json!({
            "model": self.client.model,
            "messages": grading_messages(self.layout, sample, proposition, glossary),
            "temperature": 0,
            "max_tokens": max_tokens,
            "logprobs": true,
            "top_logprobs": self.top_logprobs,
            "n": 1,
            "stream": false,
        })
    }
}

/// The OpenAI-compatible grader. Owns a small tokio runtime, so call it from synchronous code.
pub struct OpenAiGrader {
    config: OpenAiConfig,
    client: Arc<Client>,
    runtime: tokio::runtime::Runtime,
}

fn config_error(e: ClientError) -> GraderError {
    match e {
        ClientError::Config(message) => GraderError::Config(message),
        ClientError::Runtime(source) => GraderError::io("cannot start the async runtime", source),
    }
}

impl OpenAiGrader {
    /// Build the client. Fails only on an unusable configuration (bad URL, TLS set-up).
    pub fn new(config: OpenAiConfig) -> Result<Self, GraderError> {
        if config.top_logprobs > 20 {
            return Err(GraderError::Config(
                "top_logprobs must be at most 20 (the OpenAI API limit)".into(),
            ));
        }
        let client = Client::new(config.client.clone()).map_err(config_error)?;
        let runtime = arbiter_openai::blocking_runtime().map_err(config_error)?;
        Ok(OpenAiGrader {
            config,
            client: Arc::new(client),
            runtime,
        })
    }

    /// Counters so far.
    pub fn usage(&self) -> UsageStats {
        self.client.usage()
    }

    /// The current concurrency limit (shrinks on 429, grows on success).
    pub fn concurrency(&self) -> usize {
        self.client.concurrency()
    }
}

impl Grader for OpenAiGrader {
    fn describe(&self) -> String {
        format!(
            "openai:{}@{}",
            self.config.client.model, self.config.client.base_url
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

    fn cost_usd(&self) -> f64 {
        self.usage().cost_usd
    }

    fn grade_batch(
        &self,
        samples: &[Sample],
        propositions: &[PropositionSpec],
    ) -> Result<Vec<SampleGrades>, GraderError> {
        let config = &self.config;
        let grade_of = |parsed: &ParsedResponse| {
            grade_from_response(parsed, config.min_mass, config.scan_positions)
        };
        let glossary = config.glossary_for(propositions)?;
        let n_props = propositions.len().max(1);
        let first: Vec<(usize, Value)> = samples
            .iter()
            .flat_map(|sample| propositions.iter().map(move |p| (sample, p)))
            .enumerate()
            .map(|(cell, (sample, p))| (cell, config.request_body(sample, p, glossary)))
            .collect();
        let mut cells: Vec<Option<PropositionGrade>> =
            vec![None; samples.len() * propositions.len()];
        let mut last_failure = None;
        let mut again = Vec::new();
        for (cell, result) in self.ask(first, n_props) {
            match result {
                Ok(response) => {
                    let parsed = parse_response(&response);
                    let grade = grade_of(&parsed);
                    let unlabelled = parsed.positions.as_ref().is_some_and(|positions| {
                        !positions.is_empty()
                            && matches!(
                                grade.flag,
                                Some(GradeFlag::NoLabelToken | GradeFlag::ParsedTextFallback)
                            )
                    });
                    if unlabelled && config.fallback_max_tokens > config.max_tokens {
                        let (sample, p) = (&samples[cell / n_props], &propositions[cell % n_props]);
                        again.push((
                            cell,
                            config.request_body_with(
                                sample,
                                p,
                                glossary,
                                config.fallback_max_tokens,
                            ),
                        ));
                    }
                    cells[cell] = Some(grade);
                }
                Err(failure) => last_failure = Some(failure),
            }
        }
        // A failed second request keeps the first answer's (flagged) grade.
        for (cell, result) in self.ask(again, n_props) {
            if let Ok(response) = result {
                cells[cell] = Some(grade_of(&parse_response(&response)));
            }
        }
        if !cells.is_empty() && cells.iter().all(Option::is_none) {
            let url = config.endpoint();
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

impl OpenAiGrader {
    /// Answer each `(cell, body)` from the cache or the server. Cells are in sample-major order
    /// (`cell / n_props` is the sample; `n_props` ≥ 1): the first uncached cell of each sample
    /// warms the server's prefix cache, and the sample's other cells wait for it, then go out
    /// together.
    fn ask(
        &self,
        requests: Vec<(usize, Value)>,
        n_props: usize,
    ) -> Vec<(usize, Result<Value, RequestFailure>)> {
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut pending = Vec::new();
        for (cell, body) in requests {
            let key = self.client.cache_key(&body);
            match self.client.cached(&key) {
                Some(response) => outcomes.push((cell, Ok(response))),
                None => pending.push((cell, key, body)),
            }
        }
        if pending.is_empty() {
            return outcomes;
        }
        let client = &self.client;
        self.runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            let mut warm: Option<(usize, tokio::sync::watch::Receiver<bool>)> = None;
            let first_ticket = client.reserve(pending.len());
            for (i, (cell, key, body)) in pending.into_iter().enumerate() {
                let ticket = first_ticket + i as u64;
                let client = Arc::clone(client);
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
                    let permit = client.acquire(ticket).await;
                    let result = client.send(&key, &body).await;
                    drop(permit);
                    if let Some(tx) = done_tx {
                        let _ = tx.send(true);
                    }
                    (cell, result)
                });
            }
            while let Some(joined) = tasks.join_next().await {
                // A panicking task is a bug in this module; its cell stays unanswered (failed).
                if let Ok(outcome) = joined {
                    outcomes.push(outcome);
                }
            }
        });
        outcomes
    }
}

#[cfg(test)]
mod tests;

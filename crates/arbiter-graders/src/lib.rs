//! Graders: a probability that each yes/no proposition holds for a (conversation, completion).
//!
//! - [`Grader`]: the one trait; a batch of samples × a set of propositions → [`SampleGrades`],
//!   each cell a [`PropositionGrade`] `{p_yes, mass, flag}`. Problems are flags, never a silent 0.5.
//! - `openai::OpenAiGrader` (feature `openai`, on by default): any OpenAI-compatible chat
//!   endpoint; P(yes) from logprobs.
//! - [`embedded::EmbeddedGrader`]: offline; all-MiniLM-L6-v2 embeddings run with candle, plus one
//!   logistic-regression head per proposition trained on human labels ([`embedded::heads`]).
//! - [`calibration`]: per-proposition accuracy, AUROC, ECE and a reliability diagram against
//!   human labels.
//! - [`from_spec`]: the `--grader` value (`embedded`, `openai:MODEL@BASE_URL`) to a grader.
//!
//! Only this crate talks to models; the rule engine consumes its output as plain numbers.

#![deny(missing_docs)]

pub mod calibration;
pub mod embedded;
mod error;
mod grader;
#[cfg(feature = "openai")]
pub mod logprobs;
#[cfg(feature = "openai")]
pub mod openai;
pub mod prompt;
pub mod sources;
pub mod validation;

use std::path::PathBuf;

use arbiter_core::PropositionSpec;
use embedded::{EmbeddedGrader, HeadsFile};
#[cfg(feature = "openai")]
use openai::{OpenAiConfig, OpenAiGrader, Prices};

pub use arbiter_core::digest::{default_cache_dir, sha256_hex};
#[cfg(feature = "openai")]
pub use arbiter_openai::ResponseCache;
pub use error::GraderError;
pub use grader::{Grader, PropositionGrade, SampleGrades};
pub use prompt::PromptLayout;
pub use validation::{SourceFigures, Validation};

/// Options that apply to whichever grader a spec names.
#[derive(Debug, Clone, Default)]
pub struct GraderOptions {
    /// Heads file for the embedded grader; `None` = the built-in default heads.
    pub heads: Option<PathBuf>,
    /// Model directory for the embedded grader; `None` = [`embedded::model::default_model_dir`].
    pub model_dir: Option<PathBuf>,
    /// Disable the HTTP response cache.
    pub no_cache: bool,
    /// Environment variable holding the API key (default `OPENAI_API_KEY`).
    pub api_key_env: Option<String>,
    /// Prices for cost accounting.
    #[cfg(feature = "openai")]
    pub prices: Prices,
    /// Requests in flight at most for openai graders (`None` = the client's default).
    pub max_concurrency: Option<usize>,
    /// Prompt layout for openai graders.
    pub prompt_layout: PromptLayout,
    /// Per-request timeout for openai graders (`None` = the client's default).
    pub timeout: Option<std::time::Duration>,
    /// Retries after a failed request for openai graders (`None` = the client's default).
    pub max_retries: Option<u32>,
    /// The propositions an openai grader's glossary lists (normally the whole policy); empty:
    /// those of each call.
    pub glossary: Vec<PropositionSpec>,
}

/// Build the grader a `--grader` value names: `embedded` or `openai:MODEL@BASE_URL`.
pub fn from_spec(
    spec: &str,
    options: &GraderOptions,
) -> Result<Box<dyn Grader + Send + Sync>, GraderError> {
    if spec == "embedded" {
        let heads = match &options.heads {
            None => HeadsFile::default_heads()?,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| GraderError::Heads {
                    path: path.display().to_string(),
                    reason: format!("cannot read: {e}"),
                })?;
                HeadsFile::from_json(&text, &path.display().to_string())?
            }
        };
        let dir = options
            .model_dir
            .clone()
            .unwrap_or_else(embedded::model::default_model_dir);
        return Ok(Box::new(EmbeddedGrader::load(&dir, heads)?));
    }
    #[cfg(not(feature = "openai"))]
    if spec.starts_with("openai:") {
        return Err(GraderError::NoOpenAi { spec: spec.into() });
    }
    #[cfg(feature = "openai")]
    if spec.starts_with("openai:") {
        let mut config = OpenAiConfig::from_spec(spec)?;
        if options.no_cache {
            config.client.cache_dir = None;
        }
        if let Some(var) = &options.api_key_env {
            config.client.api_key_env = var.clone();
        }
        config.client.prices = options.prices;
        if let Some(n) = options.max_concurrency {
            config.client.max_concurrency = n.max(1);
        }
        if let Some(t) = options.timeout {
            config.client.timeout = t;
        }
        if let Some(n) = options.max_retries {
            config.client.max_retries = n;
        }
        config.layout = options.prompt_layout;
        config.glossary = options.glossary.clone();
        return Ok(Box::new(OpenAiGrader::new(config)?));
    }
    Err(GraderError::UnknownGrader { spec: spec.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the client an `openai:` spec is refused by name, not as an unknown grader.
    #[test]
    fn an_openai_spec_without_the_client_says_what_is_missing() {
        let spec = "openai:m@http://127.0.0.1:9/v1";
        let result = from_spec(spec, &GraderOptions::default());
        if cfg!(feature = "openai") {
            // Built (no request is sent until grading).
            assert!(result.is_ok());
        } else {
            let err = result.err().expect("refused");
            assert!(matches!(err, GraderError::NoOpenAi { .. }), "{err}");
            assert!(err.to_string().contains("feature `openai`"), "{err}");
        }
    }
}

//! One error type for the grader crate; every message says what to do next.

use std::path::PathBuf;

/// Why a grader could not be built or could not grade at all.
///
/// Problems with a single proposition of a single sample are not errors: they become a
/// [`arbiter_core::GradeFlag`] on that proposition, so one bad answer never loses a batch.
#[derive(Debug, thiserror::Error)]
pub enum GraderError {
    /// The `--grader` value is not one Arbiter knows.
    #[error(
        "unknown grader {spec:?}: use `embedded` or `openai:MODEL@BASE_URL` (e.g. openai:gpt-4o-mini@https://api.openai.com/v1)"
    )]
    UnknownGrader {
        /// What the user passed.
        spec: String,
    },
    /// An `openai:` grader asked of a build without the OpenAI client (the Python wheel).
    #[error(
        "grader {spec:?} needs the OpenAI-compatible client, which this build leaves out (arbiter-graders feature `openai`): use the `arbiter` CLI, or the `embedded` grader"
    )]
    NoOpenAi {
        /// What the user passed.
        spec: String,
    },
    /// The model directory is missing, unreadable, or lacks a file.
    #[error(
        "cannot read the embedded model file {path}: {reason}. Run `scripts/setup-models.sh` (it downloads all-MiniLM-L6-v2 into $ARBITER_CACHE or ~/.cache/arbiter), or set ARBITER_MODEL_DIR to a directory holding model.safetensors, tokenizer.json and config.json"
    )]
    ModelFiles {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying cause.
        reason: String,
    },
    /// A model file is present but is not the pinned version.
    #[error(
        "{path} has sha256 {actual}, expected {expected}: the file is corrupt or a different model. Delete it and run `scripts/setup-models.sh` again"
    )]
    Checksum {
        /// The file whose content differs.
        path: PathBuf,
        /// The pinned sum.
        expected: String,
        /// The sum found.
        actual: String,
    },
    /// The model files are present but the model could not be built or run.
    #[error("embedded model failed: {0}")]
    Model(String),
    /// A proposition the grader has no head for (embedded) or the policy does not define.
    #[error("{0}")]
    UnknownProposition(String),
    /// A labelled source for fitting or checking graders could not be read.
    #[error("{0}")]
    Source(String),
    /// The heads file could not be read or parsed.
    #[error("heads file {path}: {reason}")]
    Heads {
        /// The heads file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The OpenAI-compatible endpoint could not be reached at all.
    #[error(
        "cannot reach {url}: {reason}. Check that the server is running and the base URL is right (it usually ends in /v1)"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The last transport error.
        reason: String,
    },
    /// The endpoint answered, but every request failed (auth, bad model, server errors).
    #[error("every request to {url} failed; the last: {reason}")]
    Endpoint {
        /// The URL tried.
        url: String,
        /// The last failure.
        reason: String,
    },
    /// A configuration value is unusable (bad URL, missing API key variable, …).
    #[error("{0}")]
    Config(String),
    /// Training could not proceed (too few labels, a proposition without both classes, …).
    #[error("{0}")]
    Training(String),
    /// File system problem outside the model directory (cache, output).
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause (shown in the message, so not also a `source` printed twice).
        cause: std::io::Error,
    },
}

impl GraderError {
    #[cfg(feature = "openai")]
    pub(crate) fn io(context: impl Into<String>, cause: std::io::Error) -> Self {
        GraderError::Io {
            context: context.into(),
            cause,
        }
    }
}

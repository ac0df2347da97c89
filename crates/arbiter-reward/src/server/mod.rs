//! `arbiter reward serve`: the reward as an HTTP service for RL trainers.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/rewards` | `{"samples": [Sample, …]}` (the JSONL sample shape; `metadata.base_reward` optional) | `{"rewards": [{"id", "reward", "rbr_reward", "base_reward", "class", "class_probs", "propositions"}]}` in input order |
//! | `POST /get_reward` | OpenRLHF's `{"query", "prompts", "labels"}` (see [`crate::openrlhf`]) | `{"rewards", "scores", "extra_logs"}` |
//! | `GET /healthz` | | 200 `{"status": "ok", …}` |
//! | `GET /metrics` | | Prometheus text |
//!
//! Errors are JSON `{"error", "index"?, "field"?}`: 400 malformed JSON, 413 body or sample count
//! over the limits, 422 a sample that cannot be scored as sent (the index and field named), 429
//! queue full (with `Retry-After`), 502 the grader gave no probability for a sample, 503 the
//! grader failed or the server is stopping. A request gets all its rewards or an error, never a
//! partial or made-up reward.

pub mod batcher;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbiter_core::{FieldError, ResponseType, Sample};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use self::batcher::{BatchConfig, Batcher, JobError, Submitted};
use self::metrics::Metrics;
use crate::model::{Reward, RewardModel, SampleError};
use crate::openrlhf;

/// Limits and batching of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Batching and queue bounds.
    pub batch: BatchConfig,
    /// Largest request body, bytes (413 above).
    pub max_body_bytes: usize,
    /// Most samples in one request (413 above).
    pub max_request_samples: usize,
    /// Response type of an OpenRLHF query sent without a label.
    pub default_response_type: Option<ResponseType>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            batch: BatchConfig {
                max_batch: 256,
                batch_wait: Duration::from_millis(2),
                queue_samples: 8192,
                workers: 1,
            },
            max_body_bytes: 8 << 20,
            max_request_samples: 4096,
            default_response_type: None,
        }
    }
}

/// What the handlers share.
pub struct AppState {
    model: Arc<RewardModel>,
    batcher: Batcher,
    metrics: Arc<Metrics>,
    config: ServeConfig,
}

impl AppState {
    /// Start the grader threads for `model`.
    pub fn new(model: RewardModel, config: ServeConfig) -> std::io::Result<Arc<AppState>> {
        let model = Arc::new(model);
        let metrics = Arc::new(Metrics::default());
        let batcher = Batcher::start(
            Arc::clone(&model),
            Arc::clone(&metrics),
            config.batch.clone(),
        )?;
        Ok(Arc::new(AppState {
            model,
            batcher,
            metrics,
            config,
        }))
    }

    /// Finish what is queued and stop the grader threads.
    pub fn shutdown(&self) {
        self.batcher.shutdown();
    }
}

/// The one wiring point: every route over `state`.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/rewards", post(rewards))
        .route("/get_reward", post(get_reward))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serve `state` on `listener` until `shutdown` resolves, then finish the requests in flight
/// and the queued batches.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let result = axum::serve(listener, app(Arc::clone(&state)))
        .with_graceful_shutdown(shutdown)
        .await;
    let stopping = Arc::clone(&state);
    let _ = tokio::task::spawn_blocking(move || stopping.shutdown()).await;
    result
}

/// An error answer: status, message, and where in the request.
struct ApiError {
    status: StatusCode,
    message: String,
    index: Option<usize>,
    field: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            index: None,
            field: None,
            retry_after: None,
        }
    }

    fn at(status: StatusCode, index: usize, field: String, message: &str) -> ApiError {
        ApiError {
            status,
            message: format!("sample {index}: field `{field}`: {message}"),
            index: Some(index),
            field: Some(field),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(i) = self.index {
            body["index"] = json!(i);
        }
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn body_error(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is over {limit} bytes (--max-body-bytes); send fewer samples per request"
            ),
        )
    } else {
        ApiError::new(e.status(), e.body_text())
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// Check, queue and await a request's samples; `prefix` names the request's list
/// (`samples`, `query`) in errors.
async fn score(
    state: &AppState,
    samples: Vec<Sample>,
    prefix: &str,
) -> Result<Vec<Reward>, ApiError> {
    if samples.len() > state.config.max_request_samples {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} samples in one request; at most {} (--max-request-samples)",
                samples.len(),
                state.config.max_request_samples
            ),
        ));
    }
    for (i, s) in samples.iter().enumerate() {
        state
            .model
            .check(s)
            .map_err(|e| field_error(prefix, i, &e))?;
    }
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    let receiver = match state.batcher.submit(samples) {
        Submitted::Queued(r) => r,
        Submitted::Full { retry_after } => {
            state
                .metrics
                .rejected_full
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("the queue is full; retry in {retry_after} s"),
            );
            e.retry_after = Some(retry_after);
            return Err(e);
        }
        Submitted::Closed => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            ));
        }
    };
    match receiver.await {
        Ok(Ok(rewards)) => Ok(rewards),
        Ok(Err(JobError::Sample(SampleError::Invalid { index, error }))) => {
            Err(field_error(prefix, index, &error))
        }
        Ok(Err(JobError::Sample(e @ SampleError::Ungraded { .. }))) => {
            let mut err = ApiError::new(StatusCode::BAD_GATEWAY, e.to_string());
            err.index = Some(e.index());
            Err(err)
        }
        Ok(Err(JobError::Grader(message))) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the grader failed: {message}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server stopped before this request was scored",
        )),
    }
}

fn field_error(prefix: &str, index: usize, e: &FieldError) -> ApiError {
    let field = if e.field.is_empty() {
        format!("{prefix}[{index}]")
    } else {
        format!("{prefix}[{index}].{}", e.field)
    };
    ApiError::at(StatusCode::UNPROCESSABLE_ENTITY, index, field, &e.message)
}

/// Time and count a handler's answer.
fn finish(
    state: &AppState,
    route: &'static str,
    started: Instant,
    r: Result<Value, ApiError>,
) -> Response {
    let response = match r {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    };
    state
        .metrics
        .request(route, response.status().as_u16(), started.elapsed());
    response
}

async fn rewards(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
        let value = parse_json(&body)?;
        let Value::Object(mut top) = value else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be an object {\"samples\": [...]}",
            ));
        };
        let Some(Value::Array(items)) = top.remove("samples") else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "field `samples` is missing or not a list of samples",
            ));
        };
        let samples = items
            .into_iter()
            .enumerate()
            .map(|(i, v)| Sample::from_value(v, i).map_err(|e| field_error("samples", i, &e)))
            .collect::<Result<Vec<Sample>, ApiError>>()?;
        let rewards = score(&state, samples, "samples").await?;
        Ok(json!({ "rewards": rewards }))
    }
    .await;
    finish(&state, "/v1/rewards", started, result)
}

async fn get_reward(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
        let value = parse_json(&body)?;
        let request: openrlhf::GetRewardRequest = serde_json::from_value(value).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not an OpenRLHF reward request {{\"query\": [...], \"prompts\": [...], \"labels\": [...]}}: {e}"),
            )
        })?;
        let samples = openrlhf::to_samples(request, state.config.default_response_type)
            .map_err(|(i, e)| {
                ApiError::at(StatusCode::UNPROCESSABLE_ENTITY, i, e.field.clone(), &e.message)
            })?;
        let rewards = score(&state, samples, "query").await?;
        Ok(openrlhf::response(&rewards))
    }
    .await;
    finish(&state, "/get_reward", started, result)
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "policy": state.model.policy().name(),
        "grader": state.model.grader_id(),
        "queued_samples": state.batcher.queued(),
    }))
    .into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let text = state
        .metrics
        .render(state.batcher.queued(), state.model.cached());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

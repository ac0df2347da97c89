//! Arbiter's annotation server.
//!
//! Admins create projects (versioned instructions, label schema, content warnings, exposure
//! caps, pay standard, identity questionnaire, pools), import items and hand out invitation
//! codes. Raters join with a code, consent, optionally describe themselves, and label items
//! served blind, least-annotated first, with per-pool overlap; flagged items stay blurred until
//! clicked and caps enforce breaks. The dashboard shows progress, agreement within and across
//! pools, gold quality and a pay ledger, and exports labels and a CrowdWorkSheets datasheet.
//!
//! Entry points: [`serve`] runs the server; [`app`] builds the router for tests.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = arbiter_server::Config::new("sqlite:annotations.db", "127.0.0.1:8080", "a-long-admin-token");
//! arbiter_server::serve(config).await
//! # }
//! ```
//!
//! **Invariant:** only this crate knows HTTP and SQL; all SQL lives in `db` and `writer`.
#![deny(missing_docs)]
#![recursion_limit = "256"]

pub mod agreement;
pub mod auth;
pub mod db;
pub mod error;
pub mod model;
mod openapi;
pub mod predictability;
pub mod release;
pub mod report;
mod routes;
pub mod secrets;
mod service;
pub mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::agreement::{Agreement, StatsAlpha};
use crate::auth::AdminKey;
use crate::db::Db;
use crate::predictability::{Cached, PerspectivesFit, Predictability};
use crate::writer::Writer;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite:PATH` or `postgres://…`.
    pub db_url: String,
    /// `HOST:PORT` to listen on.
    pub addr: String,
    /// The admin bearer token (hashed at start, never stored).
    pub admin_token: String,
    /// Requests per second allowed per client (session or address).
    pub rate_per_second: f64,
    /// Burst size of the rate limit.
    pub rate_burst: f64,
    /// Largest request body in bytes (item imports may be 16 times larger).
    pub body_limit: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time allowed to send a request's headers, and then to answer it.
    pub request_timeout: std::time::Duration,
}

impl Config {
    /// Settings with default limits.
    pub fn new(db_url: &str, addr: &str, admin_token: &str) -> Self {
        Self {
            db_url: db_url.into(),
            addr: addr.into(),
            admin_token: admin_token.into(),
            rate_per_second: 50.0,
            rate_burst: 100.0,
            body_limit: 256 * 1024,
            max_connections: 1024,
            request_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub db: Db,
    /// Group-commit annotation writer.
    pub writer: Writer,
    /// Admin credential.
    pub admin: Arc<AdminKey>,
    /// Agreement implementation (`arbiter-stats` by default).
    pub agreement: Arc<dyn Agreement>,
    /// Per-pool predictability (`arbiter-perspectives` by default).
    pub predictability: Arc<dyn Predictability>,
    limiter: Arc<RateLimiter>,
    /// The same allowance per verified rater, so one rater cannot spread a flood over many
    /// addresses.
    pub(crate) per_rater: Arc<RateLimiter>,
    /// Failed credential attempts (invitation codes, withdrawal codes, admin sign-in) per
    /// client address: 40 at once, then one a second.
    pub(crate) guard: Arc<RateLimiter>,
    body_limit: usize,
    request_timeout: std::time::Duration,
}

impl AppState {
    /// Connects to the database, runs migrations and starts the writer.
    pub async fn new(config: &Config) -> anyhow::Result<AppState> {
        let db = Db::connect(&config.db_url).await?;
        let admin = AdminKey::new(&config.admin_token, &db)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let state = AppState {
            writer: Writer::start(db.clone()),
            db,
            admin: Arc::new(admin),
            agreement: Arc::new(StatsAlpha),
            predictability: Arc::new(Cached::new(PerspectivesFit::default())),
            limiter: Arc::new(RateLimiter::new(config.rate_per_second, config.rate_burst)),
            per_rater: Arc::new(RateLimiter::new(config.rate_per_second, config.rate_burst)),
            guard: Arc::new(RateLimiter::new(1.0, 40.0)),
            body_limit: config.body_limit,
            request_timeout: config.request_timeout,
        };
        // Unanswered claims on the pools' overlap expire after each project's claim_minutes.
        let sweeper = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tick.tick().await;
                if let Err(e) = sweeper.release_expired_claims(db::now_ms()).await {
                    eprintln!("arbiter-server: releasing expired claims: {}", e.message);
                }
                if let Err(e) = sweeper.db.purge_sessions(db::now_ms()).await {
                    eprintln!("arbiter-server: purging expired sessions: {e}");
                }
            }
        });
        Ok(state)
    }

    /// Gives back the overlap places of items served before `now` minus the project's
    /// `claim_minutes` and still unanswered, so other raters of the pool can label them.
    /// Returns how many places were given back. Runs every 30 s; tests call it with a time in
    /// the future.
    pub async fn release_expired_claims(&self, now: i64) -> error::AppResult<usize> {
        let mut released = 0;
        for (id, _) in self.db.projects().await? {
            let project = self.db.project(id).await?;
            let cutoff = now - project.spec.claim_minutes * 60_000;
            let claims = self.db.stale_claims(id, cutoff).await?;
            released += claims.len();
            self.writer.release(claims).await?;
        }
        Ok(released)
    }
}

/// The router: JSON API under `/api`, HTML pages elsewhere.
pub fn app(state: AppState) -> Router {
    let body_limit = state.body_limit;
    Router::new()
        .merge(routes::api::routes(body_limit))
        .merge(routes::pages::routes())
        .merge(routes::admin::routes())
        .route("/healthz", axum::routing::get(healthz))
        .route("/api/openapi.json", axum::routing::get(openapi::document))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
}

/// Binds, prints the address, and serves until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    let state = AppState::new(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    let local = listener.local_addr()?;
    println!(
        "arbiter-server listening on http://{local} ({:?})",
        state.db.backend()
    );
    serve_on(listener, state, &config, shutdown_signal()).await;
    Ok(())
}

/// The accept loop: at most `max_connections` connections at once (more wait in the
/// kernel's backlog), each closed when a request's headers take longer than
/// `request_timeout`. When `shutdown` resolves, it stops accepting, lets every connection
/// finish the request it is serving (each acknowledged write is committed before its answer
/// goes out) and returns, waiting at most 30 s.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: &Config,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let router = app(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let header_timeout = config.request_timeout;
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    eprintln!("arbiter-server: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let mut closed = closed.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closed.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = closing.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// Answers 408 when a request (its body included) takes longer than the configured time.
async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => error::AppError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request took too long; please retry",
        )
        .into_response(),
    }
}

/// Ctrl-C or SIGTERM. Shutdown then stops accepting, lets requests in flight finish (every
/// acknowledged write is committed before its answer is sent) and returns.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    println!("arbiter-server: shutting down; finishing requests in flight");
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (k, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        (
            "content-security-policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
        ("cache-control", "no-store"),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    res
}

/// Token buckets by key: the client's address, or a verified rater's id. Keys never come from
/// what a client could make up (a cookie or bearer value), which would buy a fresh allowance.
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token; false when the bucket is empty. Limits that count failures only take
    /// a token first and [`refund`](Self::refund) it on success, so concurrent attempts cannot
    /// all pass at once.
    pub(crate) fn allow(&self, key: &str) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, t)| now.duration_since(*t).as_secs() < 60);
        }
        let (tokens, last) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Gives back the token of an attempt that succeeded.
    pub(crate) fn refund(&self, key: &str) {
        if let Ok(mut buckets) = self.buckets.lock()
            && let Some((tokens, _)) = buckets.get_mut(key)
        {
            *tokens = (*tokens + 1.0).min(self.burst);
        }
    }
}

/// The client's address as the rate limits see it.
#[derive(Debug, Clone)]
pub(crate) struct ClientIp(pub String);

impl ClientIp {
    /// From the request's connection info ("unknown" in tests that skip it).
    pub(crate) fn of(req: &Request) -> ClientIp {
        ClientIp(
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        )
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .cloned()
            .unwrap_or_else(|| ClientIp("unknown".into())))
    }
}

/// A 429 with Retry-After.
pub(crate) fn too_many(message: &str, retry_after_s: u64) -> Response {
    let mut res = error::AppError::new(StatusCode::TOO_MANY_REQUESTS, message).into_response();
    if let Ok(v) = retry_after_s.to_string().parse() {
        res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    res
}

async fn rate_limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = ClientIp::of(&req);
    if !state.limiter.allow(&ip.0) {
        return too_many("rate limit exceeded; slow down", 1);
    }
    req.extensions_mut().insert(ip);
    next.run(req).await
}

/// Runs the server on a new Tokio runtime with the admin token from `ARBITER_ADMIN_TOKEN`;
/// `rate_per_second` overrides the per-client rate limit (burst is twice the rate).
///
/// This is what `arbiter serve` calls (and the crash tests' server process).
pub fn run_from_env(db_url: &str, addr: &str, rate_per_second: Option<f64>) -> anyhow::Result<()> {
    let token = std::env::var("ARBITER_ADMIN_TOKEN").map_err(|_| {
        anyhow::anyhow!(
            "set ARBITER_ADMIN_TOKEN (at least 16 characters) to the admin bearer token"
        )
    })?;
    let mut config = Config::new(db_url, addr, &token);
    if let Some(rate) = rate_per_second {
        config.rate_per_second = rate;
        config.rate_burst = rate * 2.0;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(config))
}

//! `arbiter reward serve`: the fitted RBR reward over HTTP for RL trainers (see the
//! `arbiter-reward` crate for the routes and their answers).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use arbiter_core::ResponseType;
use arbiter_reward::RewardModel;
use arbiter_reward::server::batcher::BatchConfig;
use arbiter_reward::server::{self, AppState, ServeConfig};
use clap::{Args, Subcommand};

use crate::grade_cmd::BackendFlags;
use crate::input;

/// The `reward` subcommands.
#[derive(Debug, Subcommand)]
pub enum RewardCommand {
    /// Serve the reward: POST /v1/rewards, OpenRLHF's POST /get_reward, GET /healthz, GET /metrics.
    Serve(ServeArgs),
}

/// Flags of `arbiter reward serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Weights written by `arbiter rbr fit` (or `rbr run`'s weights.json).
    #[arg(long)]
    weights: PathBuf,
    /// Policy file (TOML) the weights were fitted for; the built-in default policy when absent.
    #[arg(long)]
    policy: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendFlags,
    /// Address to listen on, HOST:PORT (port 0: any free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// Most samples per grader call; concurrent requests are batched together up to this.
    #[arg(long, default_value_t = 256)]
    max_batch: usize,
    /// Milliseconds to wait for more requests when a batch is not full.
    #[arg(long, default_value_t = 2)]
    batch_wait_ms: u64,
    /// Samples allowed to wait for the grader; a request beyond it gets 429 with Retry-After.
    #[arg(long, default_value_t = 8192)]
    queue_samples: usize,
    /// Grader threads (1 suits the embedded grader, which uses every core per call; raise it
    /// for an OpenAI-compatible grader).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Most samples in one request (413 above).
    #[arg(long, default_value_t = 4096)]
    max_request_samples: usize,
    /// Grades kept by content so a completion sent again is not graded again (0: no cache;
    /// about 0.5 KB each with the default policy).
    #[arg(long, default_value_t = 200_000)]
    cache_entries: usize,
    /// Response type of OpenRLHF queries whose label is empty (default: such a query is a 422).
    #[arg(long, value_parser = parse_response_type)]
    default_response_type: Option<ResponseType>,
}

fn parse_response_type(s: &str) -> Result<ResponseType, String> {
    ResponseType::parse(s).ok_or_else(|| {
        format!("unknown response type {s:?}; expected hard_refuse, safe_refuse_1, safe_refuse_2 or comply")
    })
}

/// Run one `reward` subcommand.
pub fn run(cmd: RewardCommand) -> Result<ExitCode> {
    match cmd {
        RewardCommand::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    if args.max_batch == 0 || args.workers == 0 || args.max_request_samples == 0 {
        bail!("--max-batch, --workers and --max-request-samples must be at least 1");
    }
    let policy = input::load_policy(args.policy.as_deref())?;
    let weights = crate::rbr_cmd::read_weights(&args.weights, &policy)?;
    let grader = args.backend.build(policy.propositions())?;
    let model = RewardModel::new(policy, weights, grader)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.weights.display()))?
        .with_cache(args.cache_entries);
    let grader_id = model.grader_id();
    let config = ServeConfig {
        batch: BatchConfig {
            max_batch: args.max_batch,
            batch_wait: Duration::from_millis(args.batch_wait_ms),
            queue_samples: args.queue_samples,
            workers: args.workers,
        },
        max_body_bytes: args.max_body_bytes,
        max_request_samples: args.max_request_samples,
        default_response_type: args.default_response_type,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let state = AppState::new(model, config).context("cannot start the grader threads")?;
    let serving = std::sync::Arc::clone(&state);
    let served: Result<()> = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let local = listener.local_addr()?;
        eprintln!("arbiter: reward server listening on http://{local} (grader {grader_id})");
        server::serve(listener, serving, shutdown_signal()).await?;
        Ok(())
    });
    // `serve` has stopped the grader threads; the grader itself (an HTTP grader owns an async
    // runtime of its own) is dropped here, outside the server's runtime, where blocking on its
    // shutdown is allowed.
    drop(state);
    drop(runtime);
    served?;
    eprintln!("arbiter: reward server stopped; every accepted request was answered");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM (what `kill` and container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

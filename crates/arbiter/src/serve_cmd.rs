//! `arbiter serve`: the annotation server (see the `arbiter-server` crate).

use std::process::ExitCode;

use clap::Args;

/// Flags of `arbiter serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Database: `sqlite:PATH` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, default_value = "sqlite:arbiter.db")]
    db: String,
    /// Address to listen on, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Requests per second allowed per client (session or address); burst is twice this.
    #[arg(long)]
    rate_limit: Option<f64>,
}

/// Runs the server until Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(r) = args.rate_limit
        && !(r.is_finite() && r > 0.0)
    {
        anyhow::bail!("--rate-limit must be a positive number");
    }
    arbiter_server::run_from_env(&args.db, &args.addr, args.rate_limit)?;
    Ok(ExitCode::SUCCESS)
}

//! Stand-alone server binary with the same flags as `arbiter serve`; the crash test kills it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut db = None;
    let mut addr = None;
    let mut rate = None;
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned();
        match args[i].as_str() {
            "--db" => db = value,
            "--addr" => addr = value,
            "--rate-limit" => rate = value,
            other => {
                eprintln!(
                    "arbiter-server: unknown argument {other:?}; usage: arbiter-server --db sqlite:PATH|postgres://… --addr HOST:PORT [--rate-limit N]"
                );
                return ExitCode::from(2);
            }
        }
        i += 2;
    }
    let (Some(db), Some(addr)) = (db, addr) else {
        eprintln!("arbiter-server: --db and --addr are required");
        return ExitCode::from(2);
    };
    let rate = match rate.map(|r| r.parse::<f64>()) {
        None => None,
        Some(Ok(r)) if r > 0.0 => Some(r),
        Some(_) => {
            eprintln!("arbiter-server: --rate-limit must be a positive number");
            return ExitCode::from(2);
        }
    };
    match arbiter_server::run_from_env(&db, &addr, rate) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arbiter-server: {e:#}");
            ExitCode::from(2)
        }
    }
}

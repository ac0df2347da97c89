//! Shared by the CLI's integration tests: running the real `arbiter` binary, reading what it
//! printed, and the replies of a scripted proposition grader. Each test binary uses only some of
//! these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use arbiter_testkit::Reply;
use arbiter_testkit::TempDir as Dir;
use serde_json::json;

/// Runs the real binary with `args`.
pub fn arbiter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(args)
        .output()
        .expect("run arbiter")
}

/// Runs the real binary with `args` and the response cache (`ARBITER_CACHE`) inside `dir`.
pub fn arbiter_in(dir: &Dir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(args)
        .env("ARBITER_CACHE", dir.path("cache"))
        .output()
        .expect("run arbiter")
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An OpenAI-compatible chat reply answering Yes (P(yes) = `p` ≥ 0.5) or No, with the top-2
/// logprobs of Yes and No.
pub fn logprob_reply(p: f64) -> Reply {
    let label = if p >= 0.5 { "Yes" } else { "No" };
    let top =
        json!([{"token": "Yes", "logprob": p.ln()}, {"token": "No", "logprob": (1.0 - p).ln()}]);
    Reply::Raw(json!({"choices": [{"index": 0,
        "message": {"role": "assistant", "content": label},
        "logprobs": {"content": [{"token": label, "logprob": p.max(1.0 - p).ln(),
            "top_logprobs": top}]}}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 1}}))
}

/// A scripted grader's reply for the proposition `name`, given P(yes) of the three leaves
/// (partially_complies, requests_information, disallowed_content); 400 for any other name.
pub fn leaf_reply(name: &str, (pc, ri, dc): (f64, f64, f64)) -> Reply {
    match name {
        "partially_complies" => logprob_reply(pc),
        "requests_information" => logprob_reply(ri),
        "disallowed_content" => logprob_reply(dc),
        _ => Reply::Status(400, None),
    }
}

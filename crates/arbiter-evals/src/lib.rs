//! Safety evals in the vocabulary of the o1 / GPT-4o system cards and inspect_ai: a suite is a
//! dataset, a solver (how the model is asked) and a scorer, reduced by metrics with exact
//! definitions.
//!
//! - [`dataset`]: readers for XSTest, HarmBench, Do-Not-Answer, StrongREJECT, BBQ and SimpleQA,
//!   with `file:line: field` errors, and the [`dataset::Target`] of each sample;
//! - [`metrics`]: not_unsafe / not_overrefuse, XSTest's mean of type rates, the StrongREJECT score
//!   and goodness@0.1, BBQ accuracy and bias scores, SimpleQA's F-score, and the judges' output
//!   parsers;
//! - [`jailbreak`]: wrapper techniques for jailbreak variants;
//! - [`runlog`]: the append-only, crash-safe log that makes runs resumable;
//! - [`runner`]: worker threads over a blocking [`runner::ChatModel`], one durable line per item;
//! - [`chat`]: the HTTP chat model (any OpenAI-compatible endpoint, through `arbiter-openai`);
//! - [`scorers`]: scorers that ask another model: a proposition grader for refusal and unsafe
//!   content, the SimpleQA letter judge and the StrongREJECT rubric judge;
//! - [`suite`]: suite definitions (TOML) and their expansion into work items; the built-in suites
//!   live in `suites/`;
//! - [`scores`]: readers of the scorer output stored in each log line;
//! - [`summary`]: a run's log lines reduced to the suite's metrics (`summary.json`);
//! - [`check`]: `arbiter grader check`, fixed replies (always refuse, always comply, echo)
//!   through the XSTest and refusal prompts, to show whether a grader reads the reply;
//! - [`corrected`]: graded metrics corrected by a human-labelled calibration set (PPI++ through
//!   `arbiter_stats::ppi`), and the run directory's `calibration.jsonl`;
//! - [`report`]: the system-card report over one or more runs (bootstrap intervals, models side
//!   by side, per-category breakdowns, scorecard) rendered as Markdown, HTML and JSON.

#![deny(missing_docs)]

pub mod chat;
pub mod check;
pub mod corrected;
pub mod dataset;
pub mod jailbreak;
pub mod judge;
pub mod metrics;
pub mod report;
pub mod runlog;
pub mod runner;
pub mod scorecard;
pub mod scorers;
pub mod scores;
pub mod suite;
pub mod summary;

//! The fitted rule-based reward where RL trainers can use it (arXiv:2411.01111 adds it to the
//! reward model's score during training).
//!
//! - [`RewardModel`]: policy + fitted weights + grader; scores a batch of samples with the same
//!   pipeline functions as `arbiter rbr score`, so the two agree exactly.
//! - [`cache`]: grades keyed by content, so a completion sent again is not graded again.
//! - `server` (feature `server`, on by default): the HTTP service (`arbiter reward serve`):
//!   `POST /v1/rewards`, OpenRLHF's `POST /get_reward`, batching across requests, a bounded
//!   queue, `/healthz`, `/metrics`.
//! - `openrlhf` (feature `server`): OpenRLHF's request and answer shapes.
//!
//! The grader and the HTTP edge live here rather than in `arbiter-rbr`, which stays pure. The
//! `server` feature keeps axum and the server's runtime out of builds that only score, such as
//! the Python extension (`arbiter-py`).

pub mod cache;
pub mod model;
#[cfg(feature = "server")]
pub mod openrlhf;
#[cfg(feature = "server")]
pub mod server;

pub use model::{BASE_REWARD_FIELD, BatchStats, Reward, RewardModel, SampleError, ScoreError};

//! Rule-Based Rewards (Mu et al., arXiv:2411.01111), as a pure library.
//!
//! - [`Policy`]: propositions, derived propositions and per-response-type class rules, loaded
//!   from TOML and proven to partition the yes/no space.
//! - [`classify`]: one class from human labels, or exact class probabilities from grader
//!   P(yes) values under independence of the leaf propositions.
//! - [`reward`]: the linear reward `R = R_rm + Σ wᵢ·φᵢ`, fitted with a margin hinge loss and AdamW
//!   on ordered pairs, and its ranking error rate.
//! - [`metrics`]: Not-Unsafe, Not-Overrefuse, Hard-Refusal-Style and their F1, with seeded
//!   bootstrap intervals.
//! - [`pipeline`]: the steps over a set of samples (prepare, fit, class and score lines, report
//!   figures) that the CLI runs between reading files and writing them.
//! - [`select`]: best-of-N; how often the highest-reward completion of a prompt is harmless or
//!   in the best human class, against a random pick and the grader's argmax class.
//!
//! Nothing here reads files or talks to a network; callers pass values in.

#![deny(missing_docs)]

mod classify;
pub mod expr;
pub mod metrics;
mod partition;
pub mod pipeline;
mod policy;
pub mod report;
pub mod reward;
pub mod select;

pub use classify::{
    Classification, FeatureValues, MetricEvents, classify, event_probability, metric_events,
};
pub use partition::Partition;
pub use policy::{
    DEFAULT_POLICY_TOML, Event, FittingSpec, MetricsSpec, Policy, PolicyError, Proposition,
};

//! Annotation statistics for Arbiter: agreement, aggregation and rater-identity analysis.
//!
//! Everything works on one table type, [`Ratings`] (item, rater, label and optional group
//! columns, built with [`RatingsBuilder`] under a [`DuplicatePolicy`]):
//!
//! - [`krippendorff_alpha`] at any [`Distance`], with [`alpha_bootstrap`] intervals; κ and Gwet
//!   coefficients in [`agreement`];
//! - [`aggregate`]: majority vote, Wawa, Zero-Based Skill, Dawid–Skene, one-coin Dawid–Skene,
//!   GLAD and MACE behind one [`aggregate::Aggregator`] trait, matching crowd-kit 1.4.2;
//! - [`groups`]: α within and across rater groups, in-group vs out-group agreement with a
//!   permutation test, per-group label rates, χ², Kruskal–Wallis, logistic regression with
//!   clustered bootstrap intervals, most-dividing items and soft labels;
//! - [`report`]: the agreement and disagreement reports as values, rendered to text or
//!   Markdown, HTML and JSON through `arbiter-report`; [`bins`] and [`natural`] order and bin
//!   their groups;
//! - [`ppi`]: prediction-powered inference for a share measured by an imperfect grader, with a
//!   few human labels (classical, PPI, PPI++), and derived metrics of several shares.
//!
//! The crate does no I/O: readers live in `arbiter-ratings`.
//!
//! ```
//! use arbiter_stats::{krippendorff_alpha, Distance, DomainSpec, DuplicatePolicy, LabelKind, RatingsBuilder};
//! let mut b = RatingsBuilder::new(DomainSpec::Infer(LabelKind::Nominal), vec![]);
//! for (item, rater, label) in [("q1", "ann", "yes"), ("q1", "bob", "yes"), ("q2", "ann", "no"), ("q2", "bob", "yes")] {
//!     b.push(item, rater, label, &[]).unwrap();
//! }
//! let ratings = b.build(DuplicatePolicy::KeepAll).unwrap();
//! let report = krippendorff_alpha(&ratings, &Distance::Nominal).unwrap();
//! assert!(report.alpha.value().unwrap() < 0.5);
//! ```

#![deny(missing_docs)]

pub mod aggregate;
pub mod agreement;
mod alpha;
pub mod bins;
mod error;
pub mod groups;
pub mod natural;
pub mod ppi;
pub mod report;

pub mod special;
mod table;
pub mod textcode;
mod unit_sums;
mod util;

pub use alpha::{
    Alpha, AlphaReport, Bootstrap, Distance, Interval, Undefined, alpha_bootstrap,
    alpha_from_label_counts, krippendorff_alpha,
};
pub use error::StatsError;
pub use table::{
    DomainSpec, DuplicatePolicy, FxHasher, GroupColumn, LabelDomain, LabelKind, Names, Rating,
    Ratings, RatingsBuilder,
};

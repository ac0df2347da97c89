//! The one error type of the statistics crate.

use thiserror::Error;

/// Everything that can go wrong when building a ratings table or computing a statistic.
///
/// Statistics that are merely *undefined* on valid input (for example α when every rating has
/// the same value) are not errors: they are reported as values such as
/// [`crate::Alpha::Undefined`], so that a report over many groups keeps going.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    /// A label is not part of the explicit label domain.
    #[error("label {label:?} is not in the label domain {domain:?}")]
    UnknownLabel {
        /// The offending label.
        label: String,
        /// The declared domain.
        domain: Vec<String>,
    },
    /// The label domain itself is malformed (empty, repeated values, …).
    #[error("invalid label domain: {0}")]
    InvalidDomain(String),
    /// The same rater rated the same item twice under [`crate::DuplicatePolicy::Error`].
    #[error("rater {rater:?} rated item {item:?} more than once")]
    DuplicateRating {
        /// Item name.
        item: String,
        /// Rater name.
        rater: String,
    },
    /// A statistic needs numeric labels (interval, ratio, regression) but a label is not a number.
    #[error("level {level} needs numeric labels, but label {label:?} is not a number")]
    NonNumericLabel {
        /// The requested level or statistic.
        level: String,
        /// The label that does not parse as a number.
        label: String,
    },
    /// A custom distance matrix has the wrong shape or invalid entries.
    #[error("invalid distance matrix: {0}")]
    InvalidDistance(String),
    /// A group column is referenced that the table does not have.
    #[error("no group column named {0:?}")]
    UnknownGroupColumn(String),
    /// A row has a different number of group values than the table has group columns.
    #[error("row has {got} group values but the table has {expected} group columns")]
    GroupArity {
        /// Number of group columns of the table.
        expected: usize,
        /// Number of group values given.
        got: usize,
    },
    /// A binned group column holds a value that is not a number.
    #[error("group column {column:?} is binned, but its value {value:?} is not a number")]
    NonNumericGroup {
        /// The binned column.
        column: String,
        /// The value that does not parse as a number.
        value: String,
    },
    /// A parameter is out of its allowed range (e.g. zero bootstrap replicates).
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Why it is invalid.
        message: String,
    },
}

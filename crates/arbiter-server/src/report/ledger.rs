//! Pay: one ledger line from counts and time on task, for current raters and, anonymously,
//! for raters who withdrew.

use serde::Serialize;

use crate::db::Project;

/// Pay ledger line for one rater.
#[derive(Debug, Serialize, Clone)]
pub struct LedgerLine {
    /// Pseudonym.
    pub rater: String,
    /// Items labelled.
    pub labelled: i64,
    /// Items skipped (paid as well: skipping carries no penalty).
    pub skipped: i64,
    /// Hours on task.
    pub hours: f64,
    /// Earned amount.
    pub earned: f64,
    /// Earned per hour on task.
    pub effective_hourly: Option<f64>,
    /// The project's stated standard.
    pub standard_hourly: f64,
    /// Whether the effective pay reaches the standard.
    pub meets_standard: Option<bool>,
    /// Currency.
    pub currency: String,
}

/// One ledger line from counts and time on task.
pub fn ledger_line(
    project: &Project,
    rater: &str,
    labelled: i64,
    skipped: i64,
    ms: i64,
) -> LedgerLine {
    let spec = &project.spec;
    let hours = ms as f64 / 3_600_000.0;
    let earned = (labelled + skipped) as f64 * spec.pay_per_item;
    let effective = (hours > 0.0).then(|| earned / hours);
    LedgerLine {
        rater: rater.to_string(),
        labelled,
        skipped,
        hours,
        earned,
        effective_hourly: effective,
        standard_hourly: spec.pay_standard_per_hour,
        meets_standard: effective.map(|e| e >= spec.pay_standard_per_hour),
        currency: spec.currency.clone(),
    }
}

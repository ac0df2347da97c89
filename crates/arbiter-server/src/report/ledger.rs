//! Pay: one ledger line from counts and time on task, for current raters and, anonymously,
//! for raters who withdrew, and the totals the admin pays out.

use serde::Serialize;

use crate::db::Project;

/// Least time on task, in minutes, before an hourly rate is worked out: one item done in a few
/// seconds would otherwise read as a rate far above (or below) anything the rater earns.
pub const MIN_MINUTES_FOR_RATE: i64 = 10;

/// Pay ledger line for one rater.
#[derive(Debug, Serialize, Clone)]
pub struct LedgerLine {
    /// Pseudonym, or "withdrawn rater, reference …" for an erased rater.
    pub rater: String,
    /// The rater's released pool class (never a pool under k); `None` for an erased rater or
    /// a rater not yet in a pool.
    pub pool: Option<String>,
    /// Items labelled.
    pub labelled: i64,
    /// Items skipped (paid as well: skipping carries no penalty).
    pub skipped: i64,
    /// Hours on task.
    pub hours: f64,
    /// Minutes on task.
    pub minutes: f64,
    /// Pay per item, labelled or skipped.
    pub pay_per_item: f64,
    /// Earned amount.
    pub earned: f64,
    /// Earned per hour on task; `None` under [`MIN_MINUTES_FOR_RATE`] minutes on task.
    pub effective_hourly: Option<f64>,
    /// The project's stated standard.
    pub standard_hourly: f64,
    /// Whether the effective pay reaches the standard; `None` while there is no rate.
    pub meets_standard: Option<bool>,
    /// Currency.
    pub currency: String,
}

/// The sums the admin pays out: every ledger line, anonymous ones included.
#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct LedgerTotals {
    /// Items labelled.
    pub labelled: i64,
    /// Items skipped.
    pub skipped: i64,
    /// Minutes on task.
    pub minutes: f64,
    /// Earned amount.
    pub earned: f64,
    /// Currency.
    pub currency: String,
}

/// One ledger line from counts and time on task (`ms`).
pub fn ledger_line(
    project: &Project,
    rater: &str,
    pool: Option<String>,
    labelled: i64,
    skipped: i64,
    ms: i64,
) -> LedgerLine {
    let spec = &project.spec;
    let hours = ms as f64 / 3_600_000.0;
    let earned = (labelled + skipped) as f64 * spec.pay_per_item;
    let effective = (ms >= MIN_MINUTES_FOR_RATE * 60_000).then(|| earned / hours);
    LedgerLine {
        rater: rater.to_string(),
        pool,
        labelled,
        skipped,
        hours,
        minutes: ms as f64 / 60_000.0,
        pay_per_item: spec.pay_per_item,
        earned,
        effective_hourly: effective,
        standard_hourly: spec.pay_standard_per_hour,
        meets_standard: effective.map(|e| e >= spec.pay_standard_per_hour),
        currency: spec.currency.clone(),
    }
}

/// The totals of the lines, so the page's total is the sum of the rows it shows.
pub fn ledger_totals(lines: &[LedgerLine], currency: &str) -> LedgerTotals {
    LedgerTotals {
        labelled: lines.iter().map(|l| l.labelled).sum(),
        skipped: lines.iter().map(|l| l.skipped).sum(),
        minutes: lines.iter().map(|l| l.minutes).sum(),
        earned: lines.iter().map(|l| l.earned).sum(),
        currency: currency.to_string(),
    }
}

/// An amount of money with two decimals, or up to four when the amount has them (a rate of
/// 0.125 per item must not read as 0.13).
pub fn amount(v: f64) -> String {
    let four = format!("{v:.4}");
    let trimmed = four.trim_end_matches('0');
    match trimmed.split_once('.') {
        Some((_, decimals)) if decimals.len() > 2 => trimmed.to_string(),
        _ => format!("{v:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProjectSpec;

    fn project(per_item: f64) -> Project {
        let spec: ProjectSpec = serde_json::from_value(serde_json::json!({
            "name": "pilot",
            "instructions": "Label.",
            "label_schema": { "kind": "nominal", "labels": ["a", "b"] },
            "consent_text": "Risks.",
            "session_cap": 100,
            "daily_cap": 500,
            "pay_standard_per_hour": 15.0,
            "pay_per_item": per_item,
            "currency": "USD",
            "overlap_per_pool": 3,
        }))
        .unwrap();
        Project {
            id: 1,
            spec,
            instructions_version: 1,
            instructions: "Label.".into(),
        }
    }

    #[test]
    fn no_hourly_rate_under_the_minimum_time() {
        let p = project(0.10);
        // Two items in 5 seconds would read as 144 per hour.
        let short = ledger_line(&p, "r1", None, 1, 1, 5_000);
        assert_eq!((short.effective_hourly, short.meets_standard), (None, None));
        assert!((short.earned - 0.2).abs() < 1e-12);
        let just_under = ledger_line(&p, "r1", None, 10, 0, MIN_MINUTES_FOR_RATE * 60_000 - 1);
        assert_eq!(just_under.effective_hourly, None);
        // 150 items in 20 minutes: 45.00 per hour, meeting a 15.00 standard; 20 in 10: 12.00.
        let long = ledger_line(&p, "r2", Some("a".into()), 140, 10, 20 * 60_000);
        assert!((long.effective_hourly.unwrap() - 45.0).abs() < 1e-9);
        assert_eq!(long.meets_standard, Some(true));
        assert!((long.minutes - 20.0).abs() < 1e-12);
        let slow = ledger_line(&p, "r3", None, 20, 0, 10 * 60_000);
        assert!((slow.effective_hourly.unwrap() - 12.0).abs() < 1e-9);
        assert_eq!(slow.meets_standard, Some(false));
        let t = ledger_totals(&[short, long, slow], "USD");
        assert_eq!((t.labelled, t.skipped), (161, 11));
        assert!((t.earned - 17.2).abs() < 1e-9, "{t:?}");
        assert!((t.minutes - (30.0 + 5.0 / 60.0)).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn amounts_keep_the_decimals_they_have() {
        assert_eq!(amount(0.1), "0.10");
        assert_eq!(amount(3.0), "3.00");
        assert_eq!(amount(0.125), "0.125");
        assert_eq!(amount(0.1 + 0.2), "0.30");
        assert_eq!(amount(12.34567), "12.3457");
    }
}

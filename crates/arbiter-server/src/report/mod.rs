//! Dashboard statistics, pay ledger, k-anonymous demographics, exports and the datasheet.
//!
//! Everything here is computed from rows already loaded by `db`, so it is plain code over
//! values. Pools and group counts come only from the release layer (`release`): pools appear
//! as their released classes and every count of raters from the current release snapshot, so
//! rater identity leaves the server only as pseudonyms and groups of at least k.

mod dashboard;
mod datasheet;
mod demographics;
mod export;
mod ledger;

pub use dashboard::{
    Dashboard, DashboardInput, DividingItem, GoldStats, PREDICTABILITY_MIN_ITEMS,
    PoolPredictability, PoolPrediction, PoolStats, dashboard, gold_matches,
};
pub use datasheet::{
    DatasheetInput, SheetItem, SheetSection, datasheet, datasheet_html, datasheet_markdown,
    escape_markdown, privacy_rule,
};
pub use demographics::{QuestionGroups, demographics};
pub use export::{EXPORT_FORMATS, ExportRow, PARQUET_SCHEMA, csv_cell, export, export_mime};
pub use ledger::{
    LedgerLine, LedgerTotals, MIN_MINUTES_FOR_RATE, amount, ledger_line, ledger_totals,
};

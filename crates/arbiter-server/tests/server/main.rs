//! The server's one integration-test binary.

/// Role checks, CSRF, other raters' resources, body and rate limits.
mod access;
/// The admin dashboard's forms: the import form kept after a refusal, the invitation link.
mod admin;
/// The JSON API end to end.
mod api;
/// The security review's attacks on privacy, erasure and abuse resistance.
mod attacks;
/// Real Chromium over WebDriver.
mod browser;
/// kill -9 mid-load: every acknowledged annotation survives, none twice.
mod crash;
/// Exports (Parquet beside JSONL and CSV).
mod export;
/// `spawn_app()`, per-back-end databases and typed clients.
mod helpers;
/// The admin's pay ledger with known times on task.
mod ledger;
/// Per-pool overlap under concurrent fetching.
mod overlap;
/// The HTML pages without a browser.
mod pages;
/// Gold re-qualification and overlap places.
mod quality;

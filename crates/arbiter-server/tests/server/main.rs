//! The server's one integration-test binary.

/// Role checks, CSRF, other raters' resources, body and rate limits.
mod access;
/// The JSON API end to end.
mod api;
/// Real Chromium over WebDriver.
mod browser;
/// kill -9 mid-load: every acknowledged annotation survives, none twice.
mod crash;
/// `spawn_app()`, per-back-end databases and typed clients.
mod helpers;
/// The HTML pages without a browser.
mod pages;

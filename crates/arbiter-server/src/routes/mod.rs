//! HTTP routes, thin: parse the request, call `service` (or `db` for plain reads), render.
//! `api` answers JSON under `/api`, `pages` the rater's HTML pages, `admin` the admin's.

pub(crate) mod admin;
pub(crate) mod api;
pub(crate) mod html;
pub(crate) mod pages;

//! What every HTML page shares: the frame, the error page, escaping and the CSRF field.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::error::AppError;

/// Escapes text for HTML element content and attribute values (shared with every report).
pub use arbiter_report::escape_html as esc;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5}\
.item{border:1px solid #888;padding:1rem;white-space:pre-wrap;margin:1rem 0}\
.blurred{filter:blur(9px);user-select:none}\
.warning{background:#fff3cd;border:1px solid #b58900;padding:.5rem 1rem}\
button,input[type=submit]{font-size:1rem;padding:.4rem 1rem;margin:.2rem}\
table{border-collapse:collapse}td,th{border:1px solid #aaa;padding:.2rem .5rem;text-align:left}\
kbd{border:1px solid #888;border-radius:3px;padding:0 .3rem}\
:focus{outline:3px solid #0b62d6}";

pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t} · Arbiter</title><style>{STYLE}</style><script src=\"/static/app.js\" defer></script></head><body><a href=\"#main\" class=\"skip\">Skip to content</a><main id=\"main\"><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    ))
}

pub(crate) fn error_page(e: impl Into<AppError>) -> Response {
    let e: AppError = e.into();
    let hint = match e.status {
        StatusCode::UNAUTHORIZED => {
            "<p><a href=\"/join\">Join with an invitation code</a> or <a href=\"/admin/login\">sign in as admin</a>.</p>"
        }
        _ => "<p><a href=\"/\">Home</a></p>",
    };
    let body = format!("<p role=\"alert\">{}</p>{hint}", esc(&e.message));
    (e.status, page("Something went wrong", &body)).into_response()
}

pub(crate) fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

//! What every HTML page shares: the frame, the error page, escaping and the CSRF field.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::error::AppError;

/// Escapes text for HTML element content and attribute values (shared with every report).
pub use arbiter_report::escape_html as esc;

/// Markdown written by the project (instructions) as safe HTML.
pub use arbiter_report::markdown_html;

/// One stylesheet for every page. Pages must fit a 390 px phone: boxes never exceed the
/// screen, long words and table cells wrap, and a table that still cannot fit scrolls inside
/// its own `.scroll` box instead of the page.
const STYLE: &str = "*,*::before,*::after{box-sizing:border-box}\
body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5;overflow-wrap:break-word}\
.item{border:1px solid #888;padding:1rem;white-space:pre-wrap;margin:1rem 0;overflow-wrap:anywhere}\
.hidden-item{border:1px dashed #888;background:#f2f2f2;padding:1rem;margin:1rem 0}\
.warning{background:#fff3cd;border:1px solid #b58900;padding:.5rem 1rem}\
.notice{background:#e6f4ea;border:1px solid #2e7d32;padding:.5rem 1rem}\
.progress{font-size:.95rem;color:#333}\
.instructions{border-left:4px solid #bbb;padding-left:1rem}\
button,input[type=submit],.button{font-size:1rem;padding:.4rem 1rem;margin:.2rem}\
input,select,textarea{max-width:100%;font:inherit}\
textarea,.wide{width:100%}\
code{overflow-wrap:anywhere}\
.scroll{overflow-x:auto;max-width:100%}\
table{border-collapse:collapse;max-width:100%}td,th{border:1px solid #aaa;padding:.2rem .5rem;text-align:left;overflow-wrap:anywhere}\
kbd{border:1px solid #888;border-radius:3px;padding:0 .3rem}\
:focus{outline:3px solid #0b62d6}\
@media (max-width:30rem){body{margin:1rem auto}td,th{padding:.1rem .25rem;font-size:.8rem}}";

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

/// A moment as a full UTC date-time, `<time>`-tagged so the page's script can add the reader's
/// local time and a live countdown; without the script it still says the date and how long is
/// left. A time alone ("after 19:41") reads as past when the moment is tomorrow.
pub(crate) fn moment(ms: i64, now_ms: i64) -> String {
    let (date, clock) = utc_parts(ms);
    let left = (ms - now_ms).max(0) / 60_000;
    let wait = if left >= 60 {
        format!("{} h {} min", left / 60, left % 60)
    } else {
        format!("{} min", left.max(1))
    };
    format!(
        "<time datetime=\"{date}T{clock}Z\" data-countdown=\"{ms}\">{} UTC</time> <span class=\"countdown\" data-until=\"{ms}\">(in about {wait})</span>",
        readable_utc(ms)
    )
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Sun 6 Dec 2026, 19:41` for milliseconds since the Unix epoch (UTC).
pub(crate) fn readable_utc(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{} {d} {} {y}, {:02}:{:02}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60
    )
}

/// ISO date and clock (`2026-12-06`, `19:41:38`) in UTC.
fn utc_parts(ms: i64) -> (String, String) {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
    )
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (the standard
/// era-of-400-years conversion).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_moments() {
        assert_eq!(readable_utc(0), "Thu 1 Jan 1970, 00:00");
        // 2026-12-05T19:41:38Z, a Saturday.
        assert_eq!(readable_utc(1_796_499_698_000), "Sat 5 Dec 2026, 19:41");
        assert_eq!(
            utc_parts(1_796_499_698_000),
            ("2026-12-05".to_string(), "19:41:38".to_string())
        );
        // Leap day and a century year that is not a leap year.
        assert_eq!(readable_utc(951_782_400_000), "Tue 29 Feb 2000, 00:00");
        assert_eq!(readable_utc(4_107_542_400_000), "Mon 1 Mar 2100, 00:00");
        assert_eq!(readable_utc(-86_400_000), "Wed 31 Dec 1969, 00:00");
    }

    #[test]
    fn a_moment_tomorrow_says_its_date_and_the_wait() {
        let now = 1_796_499_698_000 + 13 * 60_000;
        let tomorrow = 1_796_499_698_000 + 86_400_000;
        let html = moment(tomorrow, now);
        assert!(html.contains("Sun 6 Dec 2026, 19:41 UTC"), "{html}");
        assert!(html.contains("datetime=\"2026-12-06T19:41:38Z\""), "{html}");
        assert!(html.contains("(in about 23 h 47 min)"), "{html}");
    }
}

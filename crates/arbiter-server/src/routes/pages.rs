//! Server-rendered pages for raters and admins.
//!
//! Plain HTML forms that work without JavaScript; one small script (`/static/app.js`) adds
//! blur-reveal and keyboard shortcuts. Every form post carries the session's CSRF token.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use axum::http::HeaderMap;

use crate::auth::{self, Rater};
use crate::db::{Next, Progress, now_ms};
use crate::error::AppError;
use crate::model::{LabelSchema, Rationale};
use crate::routes::html::{csrf_field, error_page, esc, markdown_html, moment, page};
use crate::service;
use crate::{AppState, ClientIp};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/app.js", get(script))
        .route("/join", get(join_page).post(join_post))
        .route("/consent", get(consent_page).post(consent_post))
        .route(
            "/questionnaire",
            get(questionnaire_page).post(questionnaire_post),
        )
        .route("/annotate", get(annotate_page).post(annotate_post))
        .route("/annotate/undo", post(undo_post))
        .route("/ledger", get(ledger_page))
        .route("/withdraw", get(withdraw_page).post(withdraw_post))
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../app.js"),
    )
        .into_response()
}

async fn home() -> Html<String> {
    page(
        "Arbiter annotation",
        "<p><a href=\"/join\">Join a project with an invitation code</a></p><p><a href=\"/admin/login\">Admin sign-in</a></p>",
    )
}

#[derive(Deserialize)]
struct CodeQuery {
    code: Option<String>,
}

async fn join_page(Query(q): Query<CodeQuery>) -> Html<String> {
    let code = q.code.unwrap_or_default();
    page(
        "Join a project",
        &format!(
            "<form method=\"post\" action=\"/join\"><label for=\"code\">Invitation code</label> <input id=\"code\" class=\"wide\" name=\"code\" required autocomplete=\"off\" spellcheck=\"false\" value=\"{}\"> <button type=\"submit\" id=\"join\">Join</button></form>",
            esc(&code)
        ),
    )
}

#[derive(Deserialize)]
struct JoinForm {
    code: String,
}

async fn join_post(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<JoinForm>,
) -> Response {
    if let Err(e) = auth::same_origin(&headers) {
        return error_page(e);
    }
    match service::guarded_join(&state, &ip, &form.code).await {
        Ok((token, _csrf, _)) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, auth::session_cookie(&token)),
                (header::LOCATION, "/consent".to_string()),
            ],
        )
            .into_response(),
        Err(e) => error_page(e),
    }
}

async fn consent_page(rater: Result<Rater, AppError>, State(state): State<AppState>) -> Response {
    let rater = match rater {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let p = match state.db.project(rater.project_id).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let warning = p
        .spec
        .content_warning
        .as_ref()
        .map(|w| {
            format!(
                "<div class=\"warning\" role=\"note\"><strong>Content warning:</strong> {}</div>",
                esc(w)
            )
        })
        .unwrap_or_default();
    let spec = &p.spec;
    let source = if spec.pay_standard_source.trim().is_empty() {
        String::new()
    } else {
        format!(" ({})", esc(&spec.pay_standard_source))
    };
    let contact = match spec.contact.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => format!(
            "Questions about the task, your pay or your data: {}.",
            contact_html(c)
        ),
        _ => "The project has not named a contact here; ask the person who invited you.".into(),
    };
    let body = format!(
        "<p>Please read this before you see any item.</p>{warning}<section aria-labelledby=\"risks\"><h2 id=\"risks\">Risks and your rights</h2><div id=\"consent-text\">{}</div>\
         <p>You can skip any item without penalty, and you will be asked to take breaks after {} items (at most {} a day). You can withdraw at any time; this erases your data.</p></section>\
         <section aria-labelledby=\"pay-h\"><h2 id=\"pay-h\">Pay and contact</h2><p id=\"consent-pay\">{:.2} {cur} per item, skipped items included. The project's pay standard is {:.2} {cur} an hour{source}; your pay page shows what you have earned and your time.</p><p id=\"consent-contact\">{contact}</p></section>\
         <form method=\"post\" action=\"/consent\">{}<button type=\"submit\" name=\"agree\" value=\"yes\" id=\"agree\">I agree</button> <button type=\"submit\" name=\"agree\" value=\"no\" id=\"decline\">I do not agree</button></form>",
        markdown_html(&spec.consent_text),
        spec.session_cap,
        spec.daily_cap,
        spec.pay_per_item,
        spec.pay_standard_per_hour,
        csrf_field(&rater.csrf),
        cur = esc(&spec.currency),
    );
    page("Informed consent", &body).into_response()
}

/// The signed-in rater behind a form post, its CSRF token checked.
fn rater_posting(rater: Result<Rater, AppError>, csrf: Option<&str>) -> Result<Rater, AppError> {
    let rater = rater?;
    rater.check_csrf(csrf)?;
    Ok(rater)
}

/// A contact as text, linked when it is an email address or a web page.
fn contact_html(contact: &str) -> String {
    let plain = !contact.contains(char::is_whitespace);
    if plain && (contact.starts_with("https://") || contact.starts_with("http://")) {
        format!("<a href=\"{0}\">{0}</a>", esc(contact))
    } else if plain && contact.contains('@') && !contact.contains(':') {
        format!("<a href=\"mailto:{0}\">{0}</a>", esc(contact))
    } else {
        esc(contact)
    }
}

#[derive(Deserialize)]
struct ConsentForm {
    csrf: Option<String>,
    agree: String,
}

async fn consent_post(
    rater: Result<Rater, AppError>,
    State(state): State<AppState>,
    Form(form): Form<ConsentForm>,
) -> Response {
    let rater = match rater_posting(rater, form.csrf.as_deref()) {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    if form.agree != "yes" {
        return Redirect::to("/withdraw").into_response();
    }
    match state.db.consent(rater.id).await {
        Ok(Some(code)) => page(
            "Your withdrawal code",
            &format!(
                "<div role=\"status\"><p>Keep this code somewhere safe. It is shown only now. With it you can withdraw at any time, signed in or not, at <a href=\"/withdraw\">/withdraw</a>: that erases everything you gave this project, and the pay you earned stays owed to you.</p><p><code id=\"withdrawal-code\">{}</code></p></div><p><a id=\"continue\" href=\"/questionnaire\">Continue</a></p>",
                esc(&code)
            ),
        )
        .into_response(),
        Ok(None) => Redirect::to("/questionnaire").into_response(),
        Err(e) => error_page(e),
    }
}

async fn questionnaire_page(
    rater: Result<Rater, AppError>,
    State(state): State<AppState>,
) -> Response {
    let rater = match rater {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    if rater.consented_at.is_none() {
        return Redirect::to("/consent").into_response();
    }
    let p = match state.db.project(rater.project_id).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    if p.spec.questionnaire.is_empty() {
        return match service::apply_questionnaire(&state, &rater, &BTreeMap::new()).await {
            Ok(()) => Redirect::to("/annotate").into_response(),
            Err(e) => error_page(e),
        };
    }
    let mut fields = String::new();
    for (qi, q) in p.spec.questionnaire.iter().enumerate() {
        fields.push_str(&format!("<fieldset><legend>{}</legend>", esc(&q.text)));
        for (oi, o) in q.options.iter().enumerate() {
            let id = format!("q{qi}o{oi}");
            fields.push_str(&format!(
                "<div><input type=\"radio\" id=\"{id}\" name=\"q_{}\" value=\"{}\"> <label for=\"{id}\">{}</label></div>",
                esc(&q.id),
                esc(o),
                esc(o)
            ));
        }
        fields.push_str("</fieldset>");
    }
    let pools = match state.db.pools(p.id).await {
        Ok(pools) => pools,
        Err(e) => return error_page(e),
    };
    let chooses = if pools.iter().any(|pool| pool.rule_question.is_some()) {
        "Your answers choose the pool you label in: this project gathers raters who share an answer into a pool, to compare how different viewpoints label the same items. "
    } else {
        ""
    };
    let body = format!(
        "<p>These optional questions let the project compare how different groups label items. Every question allows \"prefer not to say\", and you may skip them all.</p><p id=\"answers-use\">{chooses}Your answers are never shown individually, to the project team or anyone else: they are reported only as counts of groups with at least {} people.</p>\
         <form method=\"post\" action=\"/questionnaire\">{}{fields}<button type=\"submit\" name=\"action\" value=\"submit\" id=\"submit-answers\">Submit answers</button> <button type=\"submit\" name=\"action\" value=\"skip\" id=\"skip-questionnaire\">Skip the questionnaire</button></form>",
        p.spec.k_min,
        csrf_field(&rater.csrf)
    );
    page("About you (optional)", &body).into_response()
}

async fn questionnaire_post(
    rater: Result<Rater, AppError>,
    State(state): State<AppState>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let rater = match rater {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Err(e) = rater.check_csrf(get("csrf")) {
        return error_page(e);
    }
    let answers: BTreeMap<String, String> = if get("action") == Some("skip") {
        BTreeMap::new()
    } else {
        form.iter()
            .filter_map(|(k, v)| k.strip_prefix("q_").map(|q| (q.to_string(), v.clone())))
            .collect()
    };
    match service::apply_questionnaire(&state, &rater, &answers).await {
        Ok(()) => Redirect::to("/annotate").into_response(),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize, Default)]
struct AnnotateQuery {
    /// Show a hidden (blurred) item.
    show: Option<u8>,
    /// The previous answer was stored: 1 a label, 2 a skip.
    saved: Option<u8>,
    /// The latest label was taken back.
    undone: Option<u8>,
}

/// The line above each item: where the rater stands against the break and the daily cap, and
/// what they have earned.
fn progress_line(p: &crate::db::Project, progress: &Progress) -> String {
    let spec = &p.spec;
    format!(
        "<p class=\"progress\" id=\"progress\">{} of {} before your break · {} left today · {:.2} {} earned</p>",
        progress.session.min(spec.session_cap),
        spec.session_cap,
        (spec.daily_cap - progress.today).max(0),
        progress.answered as f64 * spec.pay_per_item,
        esc(&spec.currency)
    )
}

/// "Saved" after an answer (with an undo button while the label can be taken back), or the
/// confirmation of an undo.
fn saved_notice(q: &AnnotateQuery, progress: &Progress, csrf: &str, now: i64) -> String {
    if q.undone.is_some() {
        return "<p class=\"notice\" role=\"status\" id=\"saved\">Your last label was taken back; the item is shown again.</p>".into();
    }
    match q.saved {
        Some(2) => {
            "<p class=\"notice\" role=\"status\" id=\"saved\">Skipped, no penalty.</p>".into()
        }
        Some(_) => {
            let last = progress.last.as_ref();
            let undo = if service::undoable(last, now) {
                let until = last.map_or(now, |l| l.submitted_at + service::UNDO_SECONDS * 1000);
                format!(
                    " <form method=\"post\" action=\"/annotate/undo\" id=\"undo-form\" data-until=\"{until}\" style=\"display:inline\">{}<button type=\"submit\" id=\"undo\">Undo <kbd>u</kbd></button></form> <small>(for {} minutes)</small>",
                    csrf_field(csrf),
                    service::UNDO_SECONDS / 60
                )
            } else {
                String::new()
            };
            format!("<div class=\"notice\" role=\"status\" id=\"saved\">Saved.{undo}</div>")
        }
        None => String::new(),
    }
}

async fn annotate_page(
    rater: Result<Rater, AppError>,
    State(state): State<AppState>,
    Query(q): Query<AnnotateQuery>,
) -> Response {
    let rater = match rater {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let p = match state.db.project(rater.project_id).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let next = match service::next_for(&state, &rater, &p).await {
        Ok(n) => n,
        Err(e) => return error_page(e),
    };
    let progress = match state.db.progress(rater.id).await {
        Ok(pr) => pr,
        Err(e) => return error_page(e),
    };
    let now = now_ms();
    let footer = "<nav aria-label=\"Your account\"><a href=\"/ledger\">Your pay</a> · <a href=\"/withdraw\">Withdraw and erase my data</a></nav>";
    let saved = saved_notice(&q, &progress, &rater.csrf, now);
    match next {
        Next::NeedsConsent => Redirect::to("/consent").into_response(),
        Next::NeedsQuestionnaire => Redirect::to("/questionnaire").into_response(),
        Next::Break(until) => page(
            "Time for a break",
            &format!(
                "{saved}<div id=\"break-screen\" role=\"status\"><p>You have reached this session's limit of {} items. Please take a break; new items are available again after <span id=\"resume-at\">{}</span>.</p><p>Looking after yourself matters more than the task. <a href=\"/annotate\">Check again</a></p></div>{footer}",
                p.spec.session_cap,
                moment(until, now)
            ),
        )
        .into_response(),
        Next::DailyCap(until) => page(
            "That's enough for today",
            &format!(
                "{saved}<div id=\"break-screen\" role=\"status\"><p>You have reached the daily limit of {} items in 24 hours. Work resumes after <span id=\"resume-at\">{}</span>.</p><p><a href=\"/annotate\">Check again</a></p></div>{footer}",
                p.spec.daily_cap,
                moment(until, now)
            ),
        )
        .into_response(),
        Next::NoChecksLeft => page(
            "Paused",
            &format!("<div id=\"paused\" role=\"status\"><p>Your answers on check items fell below the project's threshold of {:.0}% correct, and there is no check item left for a qualification round. The project team can see this on its dashboard; your pay for the work done is unaffected.</p></div>{footer}", p.spec.gold_min_accuracy * 100.0),
        )
        .into_response(),
        Next::Retired => page(
            "Thank you",
            &format!("<div id=\"retired\" role=\"status\"><p>Your answers on check items stayed below the project's threshold of {:.0}% correct after {} qualification round(s), so no more items will be served to you. Your pay for the work done is unaffected. Thank you for your time.</p></div>{footer}", p.spec.gold_min_accuracy * 100.0, p.spec.requalify_attempts),
        )
        .into_response(),
        Next::Done => page(
            "All done",
            &format!("{saved}<p id=\"done\" role=\"status\">There are no more items for you. Thank you!</p>{footer}"),
        )
        .into_response(),
        Next::Item(item, _) | Next::Fresh(item, _) => {
            let multi = matches!(p.spec.label_schema, LabelSchema::MultiLabel { .. });
            let shown = !item.blur || q.show == Some(1);
            let mut labels = String::new();
            for (i, l) in p.spec.label_schema.labels().iter().enumerate() {
                let key = if i < 9 { format!(" <kbd>{}</kbd>", i + 1) } else { String::new() };
                labels.push_str(&format!(
                    "<div><input type=\"{}\" id=\"label{i}\" name=\"label\" value=\"{}\" data-key=\"{}\"{}> <label for=\"label{i}\">{}{key}</label></div>",
                    if multi { "checkbox" } else { "radio" },
                    esc(l),
                    i + 1,
                    if multi { "" } else { " required" },
                    esc(l)
                ));
            }
            let warning = item
                .warning
                .as_ref()
                .map(|w| {
                    format!(
                        "<div class=\"warning\" role=\"note\" id=\"item-warning\"><strong>Content warning:</strong> {}</div>",
                        esc(w)
                    )
                })
                .unwrap_or_default();
            // A hidden item's text is not in the page at all (a screen reader would read it
            // aloud); showing it loads the page again with the text, so it works without
            // script, and the label form stays closed until then.
            let item_html = if shown {
                let hide = if item.blur {
                    "<p><a id=\"hide\" href=\"/annotate\">Hide the item again</a></p>"
                } else {
                    ""
                };
                format!(
                    "{hide}<div id=\"item-text\" class=\"item\" aria-label=\"Item to label\" tabindex=\"0\">{}</div>",
                    esc(&item.body)
                )
            } else {
                "<div id=\"item-hidden\" class=\"hidden-item\"><p>This item is hidden. Show it when you are ready, or skip it without penalty.</p><a id=\"reveal\" class=\"button\" href=\"/annotate?show=1\">Show item <kbd>v</kbd></a></div>".to_string()
            };
            let rationale = match p.spec.rationale {
                Rationale::Off => String::new(),
                r => format!(
                    "<div><label for=\"rationale\">Why? {}</label><br><textarea id=\"rationale\" name=\"rationale\" rows=\"3\"{}></textarea></div>",
                    if r == Rationale::Required { "(required)" } else { "(optional)" },
                    if r == Rationale::Required { " required" } else { "" }
                ),
            };
            let qualification = match service::qualification(&rater, &p) {
                Some(q) => format!(
                    "<div id=\"qualification\" class=\"warning\" role=\"status\"><p><strong>Qualification round {} of {}.</strong> Your answers on check items fell below {:.0}% correct, so the next {} items are check items with known answers, and you see the expected answer after each. {} of {} correct are needed to return to regular items; so far {} of {}.</p></div>",
                    q["round"], q["rounds"], p.spec.gold_min_accuracy * 100.0, q["items"], q["needed"], q["items"], q["correct"], q["answered"]
                ),
                None => String::new(),
            };
            let changed = progress
                .last
                .as_ref()
                .is_some_and(|l| l.instructions_version < p.instructions_version);
            let changed_notice = if changed {
                format!(
                    "<div class=\"notice\" role=\"status\" id=\"instructions-changed\">The instructions changed since your last label (now version {}). Please read them again below.</div>",
                    p.instructions_version
                )
            } else {
                String::new()
            };
            let (closed, submit_off) = if shown {
                ("", "")
            } else {
                (" disabled", " disabled")
            };
            let closed_note = if shown {
                String::new()
            } else {
                "<p id=\"labels-closed\">Show the item to label it, or skip it.</p>".into()
            };
            let shown_field = if item.blur && shown {
                "<input type=\"hidden\" name=\"shown\" value=\"1\">"
            } else {
                ""
            };
            let body = format!(
                "{saved}{changed_notice}{}{qualification}<details id=\"instructions-box\"{}><summary>Instructions (version {})</summary><div class=\"instructions\" id=\"instructions\">{}</div></details>{warning}{item_html}\
                 <form method=\"post\" action=\"/annotate\" id=\"label-form\">{}<input type=\"hidden\" name=\"item_id\" value=\"{}\">{shown_field}\
                 <fieldset{closed}><legend>Label</legend>{closed_note}{labels}</fieldset>{rationale}\
                 <button type=\"submit\" name=\"action\" value=\"label\" id=\"submit-label\"{submit_off}>Submit <kbd>Enter</kbd></button> \
                 <button type=\"submit\" name=\"action\" value=\"skip\" id=\"skip\" formnovalidate>Skip, no penalty <kbd>s</kbd></button></form>\
                 <p>Keys: <kbd>1</kbd>–<kbd>9</kbd> choose a label, <kbd>Enter</kbd> submits, <kbd>s</kbd> skips, <kbd>v</kbd> shows a hidden item, <kbd>u</kbd> undoes the last label.</p>{footer}",
                progress_line(&p, &progress),
                if changed { " open" } else { "" },
                p.instructions_version,
                markdown_html(&p.instructions),
                csrf_field(&rater.csrf),
                item.id
            );
            page("Label this item", &body).into_response()
        }
    }
}

async fn annotate_post(
    rater: Result<Rater, AppError>,
    State(state): State<AppState>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let rater = match rater {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Err(e) = rater.check_csrf(get("csrf").as_deref()) {
        return error_page(e);
    }
    let Some(item_id) = get("item_id").and_then(|v| v.parse::<i64>().ok()) else {
        return error_page(AppError::bad("item_id is missing"));
    };
    let project = match state.db.project(rater.project_id).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let exposure = match state.db.exposure(rater.id, item_id).await {
        Ok(e) => e,
        Err(e) => return error_page(e),
    };
    let skip = get("action").as_deref() == Some("skip");
    if !skip && exposure.as_ref().is_some_and(|e| e.blur) && get("shown").as_deref() != Some("1") {
        return error_page(AppError::bad(
            "this item is hidden: show it before labelling it, or skip it",
        ));
    }
    let result = if skip {
        service::record(&state, &rater, exposure, item_id, None, None).await
    } else {
        let chosen: Vec<serde_json::Value> = form
            .iter()
            .filter(|(k, _)| k == "label")
            .map(|(_, v)| serde_json::Value::String(v.clone()))
            .collect();
        let value = match project.spec.label_schema {
            LabelSchema::MultiLabel { .. } => serde_json::Value::Array(chosen),
            _ => match chosen.into_iter().next() {
                Some(v) => v,
                None => return error_page(AppError::bad("choose a label, or skip the item")),
            },
        };
        service::record(
            &state,
            &rater,
            exposure,
            item_id,
            Some(&value),
            get("rationale"),
        )
        .await
    };
    let saved = if skip {
        "/annotate?saved=2"
    } else {
        "/annotate?saved=1"
    };
    match result {
        Ok((_, Some(gold))) => page(
            "Check item feedback",
            &format!(
                "<div role=\"status\" id=\"gold-feedback\"><p>{}</p><p>Expected answer: {}</p>{}</div><p><a href=\"/annotate\" id=\"continue\" autofocus>Continue</a></p>",
                if gold.correct { "Correct, thank you." } else { "This was a check item and your answer differs from the expected one." },
                esc(&gold.expected),
                gold.note.map(|n| format!("<p>{}</p>", esc(&n))).unwrap_or_default()
            ),
        )
        .into_response(),
        Ok((_, None)) => Redirect::to(saved).into_response(),
        Err(e) if e.status == StatusCode::CONFLICT => Redirect::to("/annotate").into_response(),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct UndoForm {
    csrf: Option<String>,
}

async fn undo_post(
    rater: Result<Rater, AppError>,
    State(state): State<AppState>,
    Form(form): Form<UndoForm>,
) -> Response {
    let rater = match rater_posting(rater, form.csrf.as_deref()) {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    match service::undo_last(&state, &rater).await {
        Ok(_) => Redirect::to("/annotate?undone=1").into_response(),
        Err(e) => error_page(e),
    }
}

async fn ledger_page(rater: Result<Rater, AppError>, State(state): State<AppState>) -> Response {
    use crate::report::{MIN_MINUTES_FOR_RATE, amount};
    let rater = match rater {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    match service::own_ledger(&state, &rater).await {
        Ok(l) => page(
            "Your pay",
            &format!(
                "<p id=\"pay-rate\">{} {cur} per item, skips included.</p><dl><dt>Items labelled</dt><dd>{}</dd><dt>Items skipped (paid)</dt><dd>{}</dd><dt>Time on task</dt><dd id=\"time-on-task\">{:.1} minutes</dd><dt>Earned</dt><dd id=\"earned\">{} {cur}</dd><dt>Effective hourly pay</dt><dd id=\"effective\">{}</dd><dt>Project standard</dt><dd>{:.2} {cur}/hour</dd></dl><p>Your hourly rate is shown once you have at least {MIN_MINUTES_FOR_RATE} minutes on task: a few quick items say little about it.</p><p><a href=\"/annotate\">Back to work</a></p>",
                amount(l.pay_per_item),
                l.labelled,
                l.skipped,
                l.minutes,
                amount(l.earned),
                l.effective_hourly.map_or(
                    format!("not yet ({:.1} of {MIN_MINUTES_FOR_RATE} minutes on task)", l.minutes),
                    |e| format!("{e:.2} {}/hour", esc(&l.currency))
                ),
                l.standard_hourly,
                cur = esc(&l.currency)
            ),
        )
        .into_response(),
        Err(e) => error_page(e),
    }
}

const WITHDRAW_TEXT: &str = "<p>Withdrawing erases your answers to the questionnaire, every label you gave and your account; nothing of it appears in any export. This cannot be undone. The pay you already earned stays owed to you: it is kept without your name or pseudonym, under a reference shown to you after withdrawing.</p>";

async fn withdraw_page(rater: Result<Rater, AppError>) -> Response {
    let code_form = "<form method=\"post\" action=\"/withdraw\"><label for=\"withdrawal-code-input\">Withdrawal code</label> <input id=\"withdrawal-code-input\" class=\"wide\" name=\"code\" required autocomplete=\"off\" spellcheck=\"false\"> <button type=\"submit\" id=\"withdraw-with-code\">Withdraw and erase my data</button></form>";
    match rater {
        Ok(r) => page(
            "Withdraw",
            &format!(
                "{WITHDRAW_TEXT}<form method=\"post\" action=\"/withdraw\">{}<button type=\"submit\" id=\"confirm-withdraw\">Withdraw and erase my data</button></form><p><a href=\"/annotate\">Back</a></p>",
                csrf_field(&r.csrf)
            ),
        )
        .into_response(),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => page(
            "Withdraw",
            &format!("{WITHDRAW_TEXT}<p>You are not signed in: enter the withdrawal code you were given when you consented.</p>{code_form}"),
        )
        .into_response(),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct WithdrawForm {
    csrf: Option<String>,
    code: Option<String>,
}

fn withdrawn_page(owed: Option<String>) -> Response {
    let pay = match owed {
        Some(r) => format!(
            "<p>The pay you earned is still owed to you. Quote this reference to the project team to receive it: <code id=\"owed-reference\">{}</code></p>",
            esc(&r)
        ),
        None => String::new(),
    };
    (
        [(header::SET_COOKIE, auth::clear_cookie())],
        page(
            "Withdrawn",
            &format!(
                "<p role=\"status\">Your data has been erased. Thank you for your time.</p>{pay}"
            ),
        ),
    )
        .into_response()
}

async fn withdraw_post(
    rater: Result<Rater, AppError>,
    State(state): State<AppState>,
    ip: ClientIp,
    Form(form): Form<WithdrawForm>,
) -> Response {
    if let Some(code) = form.code.as_deref().filter(|c| !c.trim().is_empty()) {
        // The code is the credential: no session (and so no CSRF token) is needed.
        return match service::withdraw_by_code(&state, &ip, code).await {
            Ok(owed) => withdrawn_page(owed),
            Err(e) => error_page(e),
        };
    }
    let rater = match rater_posting(rater, form.csrf.as_deref()) {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    match service::erase(&state, rater.id).await {
        Ok(owed) => withdrawn_page(owed.flatten()),
        Err(e) => error_page(e),
    }
}

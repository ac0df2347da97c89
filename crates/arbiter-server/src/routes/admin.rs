//! Admin pages: the project list with a create form, and each project's dashboard with forms to
//! import items, define pools, hand out invitations and publish instructions, plus downloads.
//!
//! Every form post checks the admin session's CSRF token; every page takes the [`Admin`]
//! extractor (a rater session gets 403, no session 401); everything shown is escaped.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Admin;
use crate::error::AppError;
use crate::model::{self, LabelSchema, PoolRule, PoolSpec, ProjectSpec, Question, Rationale};
use crate::report::{
    Dashboard, DividingItem, EXPORT_FORMATS, MIN_MINUTES_FOR_RATE, PoolPredictability, amount,
};
use crate::routes::html::{csrf_field, error_page, esc, markdown_html, page};
use crate::service::{self, ImportFailure};
use crate::{ClientIp, auth};

/// Largest item import through the form (the API allows the same).
const IMPORT_LIMIT: usize = 4 * 1024 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(admin_home))
        .route("/admin/login", get(admin_login_page).post(admin_login_post))
        .route("/admin/projects", post(create_project))
        .route("/admin/projects/{id}", get(admin_project))
        .route(
            "/admin/projects/{id}/items",
            post(import_items).layer(DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
        .route("/admin/projects/{id}/pools", post(add_pool))
        .route("/admin/projects/{id}/invitations", post(create_invitation))
        .route("/admin/projects/{id}/instructions", post(new_instructions))
}

type Fields = Vec<(String, String)>;

fn field<'a>(form: &'a Fields, name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// The admin, with a valid CSRF token from the form.
fn admin_post(admin: Result<Admin, AppError>, form: &Fields) -> Result<Admin, AppError> {
    let admin = admin?;
    let presented = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    admin.check_csrf(presented)?;
    Ok(admin)
}

fn csrf_of(admin: &Admin) -> String {
    admin.csrf.as_deref().map(csrf_field).unwrap_or_default()
}

// ---- project list and creation ----------------------------------------------------------

const DEFAULTS: &[(&str, &str)] = &[
    ("label_kind", "nominal"),
    ("rationale", "optional"),
    ("session_cap", "50"),
    ("daily_cap", "200"),
    ("break_minutes", "15"),
    ("pay_standard_per_hour", "15.00"),
    ("pay_per_item", "0.10"),
    ("currency", "USD"),
    ("overlap_per_pool", "3"),
    ("k_min", "5"),
    ("gold_min_accuracy", "0.7"),
];

fn text_input(
    values: &BTreeMap<String, String>,
    name: &str,
    label: &str,
    kind: &str,
    extra: &str,
) -> String {
    let value = values.get(name).map(String::as_str).unwrap_or("");
    format!(
        "<div><label for=\"{name}\">{label}</label> <input type=\"{kind}\" id=\"{name}\" name=\"{name}\" value=\"{}\"{extra}></div>",
        esc(value)
    )
}

fn textarea(
    values: &BTreeMap<String, String>,
    name: &str,
    label: &str,
    hint: &str,
    extra: &str,
) -> String {
    let value = values.get(name).map(String::as_str).unwrap_or("");
    format!(
        "<div><label for=\"{name}\">{label}</label>{}<br><textarea id=\"{name}\" name=\"{name}\" rows=\"4\" cols=\"70\"{}{extra}>{}</textarea></div>",
        if hint.is_empty() {
            String::new()
        } else {
            format!(" <small id=\"{name}-hint\">{}</small>", esc(hint))
        },
        if hint.is_empty() {
            String::new()
        } else {
            format!(" aria-describedby=\"{name}-hint\"")
        },
        esc(value)
    )
}

fn select(
    values: &BTreeMap<String, String>,
    name: &str,
    label: &str,
    options: &[(&str, &str)],
) -> String {
    let current = values.get(name).map(String::as_str).unwrap_or("");
    let opts: String = options
        .iter()
        .map(|(v, text)| {
            format!(
                "<option value=\"{}\"{}>{}</option>",
                esc(v),
                if *v == current { " selected" } else { "" },
                esc(text)
            )
        })
        .collect();
    format!(
        "<div><label for=\"{name}\">{label}</label> <select id=\"{name}\" name=\"{name}\">{opts}</select></div>"
    )
}

fn create_form(admin: &Admin, values: &BTreeMap<String, String>) -> String {
    let n = " required inputmode=\"decimal\"";
    format!(
        "<form method=\"post\" action=\"/admin/projects\" id=\"create-project\">{csrf}\
         <fieldset><legend>Task</legend>{name}{instructions}{kind}{labels}{rationale}</fieldset>\
         <fieldset><legend>Consent and wellbeing</legend>{consent}{contact}{warning}{session}{daily}{brk}</fieldset>\
         <fieldset><legend>Pay</legend>{pay_std}{pay_item}{currency}{source}</fieldset>\
         <fieldset><legend>Raters and quality</legend>{overlap}{k}{gold}{questionnaire}{pools}</fieldset>\
         <details><summary>Advanced: the whole ProjectSpec as JSON</summary>{json}</details>\
         <button type=\"submit\" id=\"create\">Create project</button></form>",
        csrf = csrf_of(admin),
        name = text_input(values, "name", "Name", "text", " required"),
        instructions = textarea(
            values,
            "instructions",
            "Instructions (version 1)",
            "",
            " required"
        ),
        kind = select(
            values,
            "label_kind",
            "Label schema",
            &[
                ("nominal", "nominal (one label)"),
                ("ordinal", "ordinal / Likert (one label, low to high)"),
                ("multi_label", "multi-label (any subset)")
            ]
        ),
        labels = textarea(
            values,
            "labels",
            "Labels",
            "one per line; ordinal scales low to high",
            " required"
        ),
        rationale = select(
            values,
            "rationale",
            "Free-text rationale",
            &[
                ("off", "off"),
                ("optional", "optional"),
                ("required", "required")
            ]
        ),
        consent = textarea(
            values,
            "consent_text",
            "Consent text: the task's risks, shown before any item",
            "",
            " required"
        ),
        contact = text_input(
            values,
            "contact",
            "Contact for raters (email or web page), shown on the consent screen",
            "text",
            ""
        ),
        warning = text_input(
            values,
            "content_warning",
            "Project content warning",
            "text",
            ""
        ),
        session = text_input(
            values,
            "session_cap",
            "Items per session before a break",
            "number",
            " required min=\"1\""
        ),
        daily = text_input(
            values,
            "daily_cap",
            "Items per day",
            "number",
            " required min=\"1\""
        ),
        brk = text_input(
            values,
            "break_minutes",
            "Break, minutes",
            "number",
            " required min=\"0\""
        ),
        pay_std = text_input(
            values,
            "pay_standard_per_hour",
            "Pay standard per hour",
            "text",
            n
        ),
        pay_item = text_input(values, "pay_per_item", "Pay per completed item", "text", n),
        currency = text_input(values, "currency", "Currency", "text", " required"),
        source = text_input(
            values,
            "pay_standard_source",
            "Source of the pay standard",
            "text",
            ""
        ),
        overlap = text_input(
            values,
            "overlap_per_pool",
            "Raters per item from each pool",
            "number",
            " required min=\"1\""
        ),
        k = text_input(
            values,
            "k_min",
            "Smallest reported demographic group (k, at least 5)",
            "number",
            " required min=\"5\""
        ),
        gold = text_input(
            values,
            "gold_min_accuracy",
            "Gold accuracy threshold (0 to 1)",
            "text",
            n
        ),
        questionnaire = textarea(
            values,
            "questionnaire",
            "Identity questionnaire (optional)",
            "one question per line: id | question text | option; option (\"prefer not to say\" is always added)",
            ""
        ),
        pools = textarea(
            values,
            "pools",
            "Pools",
            "one per line: name, or name | question id = answer; none gives one pool \"general\"",
            ""
        ),
        json = textarea(
            values,
            "spec_json",
            "ProjectSpec JSON (used instead of the fields above when filled in)",
            "",
            ""
        ),
    )
}

fn project_list(projects: &[(i64, String)]) -> String {
    if projects.is_empty() {
        return "<p>No projects yet.</p>".into();
    }
    let items: String = projects
        .iter()
        .map(|(id, name)| {
            format!(
                "<li><a href=\"/admin/projects/{id}\">{}</a></li>",
                esc(name)
            )
        })
        .collect();
    format!("<ul id=\"projects\">{items}</ul>")
}

async fn admin_home(admin: Result<Admin, AppError>, State(state): State<AppState>) -> Response {
    let admin = match admin {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    let values: BTreeMap<String, String> = DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    home_page(&state, &admin, &values, None).await
}

async fn home_page(
    state: &AppState,
    admin: &Admin,
    values: &BTreeMap<String, String>,
    problem: Option<&str>,
) -> Response {
    let projects = match state.db.projects().await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let alert = problem
        .map(|p| format!("<p role=\"alert\" id=\"form-error\">{}</p>", esc(p)))
        .unwrap_or_default();
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        page(
            "Projects",
            &format!(
                "{}<section aria-labelledby=\"new\"><h2 id=\"new\">Create a project</h2>{alert}{}</section><p>Everything here is also in the JSON API (<a href=\"/api/openapi.json\">OpenAPI</a>).</p>",
                project_list(&projects),
                create_form(admin, values)
            ),
        ),
    )
        .into_response()
}

fn parse_num<T: std::str::FromStr>(form: &Fields, name: &str, label: &str) -> Result<T, String> {
    field(form, name)
        .trim()
        .parse()
        .map_err(|_| format!("{label} must be a number"))
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// A ProjectSpec from the form fields (or from the JSON field when filled in).
fn spec_from_form(form: &Fields) -> Result<ProjectSpec, String> {
    let json = field(form, "spec_json").trim();
    if !json.is_empty() {
        return serde_json::from_str(json).map_err(|e| format!("ProjectSpec JSON: {e}"));
    }
    let labels: Vec<String> = lines(field(form, "labels")).map(str::to_string).collect();
    let label_schema = match field(form, "label_kind") {
        "nominal" => LabelSchema::Nominal { labels },
        "ordinal" => LabelSchema::Ordinal { labels },
        "multi_label" => LabelSchema::MultiLabel { labels },
        other => return Err(format!("unknown label schema {other:?}")),
    };
    let rationale = match field(form, "rationale") {
        "off" => Rationale::Off,
        "optional" => Rationale::Optional,
        "required" => Rationale::Required,
        other => return Err(format!("unknown rationale setting {other:?}")),
    };
    let mut questionnaire = Vec::new();
    for (i, line) in lines(field(form, "questionnaire")).enumerate() {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let [id, text, options] = parts[..] else {
            return Err(format!(
                "questionnaire line {}: write id | question text | option; option",
                i + 1
            ));
        };
        questionnaire.push(Question {
            id: id.into(),
            text: text.into(),
            options: options
                .split(';')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    let mut pools = Vec::new();
    for (i, line) in lines(field(form, "pools")).enumerate() {
        pools.push(pool_from_line(line).map_err(|e| format!("pools line {}: {e}", i + 1))?);
    }
    let optional = |name: &str| {
        let v = field(form, name).trim();
        (!v.is_empty()).then(|| v.to_string())
    };
    Ok(ProjectSpec {
        name: field(form, "name").trim().into(),
        instructions: field(form, "instructions").into(),
        label_schema,
        rationale,
        consent_text: field(form, "consent_text").into(),
        content_warning: optional("content_warning"),
        contact: optional("contact"),
        session_cap: parse_num(form, "session_cap", "items per session")?,
        daily_cap: parse_num(form, "daily_cap", "items per day")?,
        break_minutes: parse_num(form, "break_minutes", "break minutes")?,
        pay_standard_per_hour: parse_num(form, "pay_standard_per_hour", "pay standard")?,
        pay_per_item: parse_num(form, "pay_per_item", "pay per item")?,
        currency: field(form, "currency").trim().into(),
        pay_standard_source: field(form, "pay_standard_source").trim().into(),
        overlap_per_pool: parse_num(form, "overlap_per_pool", "raters per item")?,
        k_min: parse_num(form, "k_min", "k")?,
        gold_min_accuracy: parse_num(form, "gold_min_accuracy", "gold threshold")?,
        gold_min_answers: model::default_gold_min_answers(),
        requalify_items: model::default_requalify_items(),
        requalify_attempts: model::default_requalify_attempts(),
        claim_minutes: model::default_claim_minutes(),
        max_open_claims: model::default_max_open_claims(),
        questionnaire,
        pools,
        datasheet_notes: BTreeMap::new(),
    })
}

/// `name` or `name | question = answer`.
fn pool_from_line(line: &str) -> Result<PoolSpec, String> {
    match line.split_once('|') {
        None => Ok(PoolSpec {
            name: line.trim().into(),
            rule: None,
        }),
        Some((name, rule)) => {
            let (q, a) = rule
                .split_once('=')
                .ok_or("write name | question id = answer")?;
            Ok(PoolSpec {
                name: name.trim().into(),
                rule: Some(PoolRule {
                    question: q.trim().into(),
                    answer: a.trim().into(),
                }),
            })
        }
    }
}

async fn create_project(
    admin: Result<Admin, AppError>,
    State(state): State<AppState>,
    Form(form): Form<Fields>,
) -> Response {
    let admin = match admin_post(admin, &form) {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    let values: BTreeMap<String, String> =
        form.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let spec = match spec_from_form(&form)
        .map_err(AppError::bad)
        .and_then(|s| s.validate().map_err(AppError::from))
    {
        Ok(s) => s,
        Err(e) => return home_page(&state, &admin, &values, Some(e.message.as_str())).await,
    };
    match state.db.create_project(&spec).await {
        Ok(id) => Redirect::to(&format!("/admin/projects/{id}?created=1")).into_response(),
        Err(e) => error_page(e),
    }
}

// ---- one project ------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct Notice {
    created: Option<u8>,
    imported: Option<u64>,
    pool: Option<u8>,
    instructions: Option<i64>,
}

fn notice_text(n: &Notice) -> Option<String> {
    // Only numbers come from the query string; the words are the server's own.
    if n.created.is_some() {
        Some("Project created. Import items, then hand out invitations.".into())
    } else if let Some(k) = n.imported {
        Some(format!("Imported {k} items."))
    } else if n.pool.is_some() {
        Some("Pool added.".into())
    } else {
        n.instructions
            .map(|v| format!("Instructions version {v} published; new labels record it."))
    }
}

/// What α means, beside the pooled value.
const ALPHA_POOLED_NOTE: &str = "1 = raters always agree, 0 = agreement no better than chance";
/// What α between pools means.
const ALPHA_BETWEEN_NOTE: &str = "each pool's majority label counts as one rater: 1 = pools always agree, 0 = no better than chance";
/// What α within a pool means, under the column header.
const ALPHA_WITHIN_NOTE: &str = "agreement among the pool's own raters, same scale";

fn alpha_text(a: Option<f64>) -> String {
    a.map_or("undefined (too few overlapping labels)".into(), |v| {
        format!("{v:.3}")
    })
}

/// The per-pool predictability table, or why there is none.
fn predictability_html(p: &PoolPredictability) -> String {
    let ce = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
    let body = match &p.not_computed {
        Some(why) => format!(
            "<p id=\"predictability-none\">Not computed: {}.</p>",
            esc(why)
        ),
        None => {
            let rows: String = p
                .pools
                .iter()
                .map(|r| {
                    format!(
                        "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&r.name),
                        r.items_scored,
                        ce(r.from_others),
                        ce(r.own),
                        ce(r.prior)
                    )
                })
                .collect();
            format!(
                "<div class=\"scroll\"><table id=\"predictability-table\"><thead><tr><th scope=\"col\">Pool</th><th scope=\"col\">Items scored</th><th scope=\"col\">Predicted from the other pools</th><th scope=\"col\">Own-pool model</th><th scope=\"col\">Label prior</th></tr></thead><tbody>{rows}</tbody></table></div>"
            )
        }
    };
    format!(
        "<section aria-labelledby=\"predictability\"><h2 id=\"predictability\">Predictability per pool</h2>\
         <p>Cross-entropy (nats, lower is better) of each pool's label shares per item, from the item text by models not fitted on that item: fitted on the other pools' labels, on the pool's own, or the pool's label shares alone. A pool predicted worse from the other pools than by its own model holds a viewpoint the pooled label does not carry.</p>{body}</section>"
    )
}

async fn admin_project(
    admin: Result<Admin, AppError>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(notice): Query<Notice>,
) -> Response {
    let admin = match admin {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    project_page(&state, &admin, id, notice_text(&notice), None, None).await
}

/// What the admin put into the import form, shown again when the import is refused so the
/// text need not be pasted twice.
struct ImportDraft<'a> {
    format: &'a str,
    file: &'a str,
    body: &'a str,
}

/// The import form, filled in from `draft` when there is one.
fn import_form(id: i64, csrf: &str, draft: Option<&ImportDraft>) -> String {
    let (format, file, body) =
        draft.map_or(("jsonl", "upload", ""), |d| (d.format, d.file, d.body));
    let file = if file.trim().is_empty() {
        "upload"
    } else {
        file
    };
    let kept = if file == "upload" {
        String::new()
    } else {
        format!(" (file name kept: {})", esc(file))
    };
    let option = |value: &str, text: &str| {
        format!(
            "<option value=\"{value}\"{}>{text}</option>",
            if format == value { " selected" } else { "" }
        )
    };
    format!(
        "<form method=\"post\" action=\"/admin/projects/{id}/items\" id=\"import-form\">{csrf}\
         <div><label for=\"item-file\">File</label> <input type=\"file\" id=\"item-file\" accept=\".jsonl,.csv,.json,.txt\" aria-describedby=\"item-file-hint\"> <small id=\"item-file-hint\">read into the box below; or paste{kept}</small></div>\
         <input type=\"hidden\" name=\"file\" id=\"item-file-name\" value=\"{}\">\
         <div><label for=\"format\">Format</label> <select id=\"format\" name=\"format\">{}{}</select></div>\
         <div><label for=\"items-body\">Items</label><br><textarea id=\"items-body\" name=\"body\" rows=\"6\" cols=\"70\" required>{}</textarea></div>\
         <button type=\"submit\" id=\"import\">Import</button></form>",
        esc(file),
        option("jsonl", "JSONL"),
        option("csv", "CSV"),
        esc(body),
    )
}

/// Money per hour, or a dash while there is no rate yet.
fn hourly(v: Option<f64>, currency: &str) -> String {
    v.map_or("–".into(), |e| format!("{e:.2} {}", esc(currency)))
}

/// The pay ledger: a line per rater and per withdrawn rater's anonymous record, their totals,
/// and the rules the figures follow.
fn ledger_html(d: &Dashboard, spec: &ProjectSpec) -> String {
    let rows: String = d
        .ledger
        .iter()
        .map(|l| {
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
                esc(&l.rater),
                l.pool.as_deref().map_or("–".into(), esc),
                l.labelled,
                l.skipped,
                l.minutes,
                amount(l.earned),
                esc(&l.currency),
                hourly(l.effective_hourly, &l.currency),
                match l.meets_standard {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "–",
                }
            )
        })
        .collect();
    let t = &d.ledger_totals;
    format!(
        "<section aria-labelledby=\"pay\"><h2 id=\"pay\">Pay ledger</h2>\
         <p id=\"pay-rules\">{} {cur} per item, skips included; the project's standard is {:.2} {cur} per hour. \
         Hourly rates are shown once a rater has at least {MIN_MINUTES_FOR_RATE} minutes on task. \
         Raters who withdrew keep what they earned, listed under the reference they were given.</p>\
         <div class=\"scroll\"><table id=\"ledger-table\"><thead><tr><th scope=\"col\">Rater</th><th scope=\"col\">Pool</th><th scope=\"col\">Labelled</th><th scope=\"col\">Skipped</th><th scope=\"col\">Time (minutes)</th><th scope=\"col\">Earned</th><th scope=\"col\">Effective per hour</th><th scope=\"col\">Meets standard</th></tr></thead>\
         <tbody>{rows}</tbody>\
         <tfoot><tr id=\"ledger-totals\"><th scope=\"row\">Total</th><td></td><td>{}</td><td>{}</td><td>{:.1}</td><td>{} {cur}</td><td></td><td></td></tr></tfoot></table></div></section>",
        amount(spec.pay_per_item),
        spec.pay_standard_per_hour,
        t.labelled,
        t.skipped,
        t.minutes,
        amount(t.earned),
        cur = esc(&t.currency),
    )
}

/// The gold table; a rater's share correct is judged only from the project's minimum number
/// of gold answers.
fn gold_html(d: &Dashboard, spec: &ProjectSpec) -> String {
    let rows: String = d
        .gold
        .iter()
        .map(|g| {
            let overall = if (g.answered as i64) < spec.gold_min_answers {
                format!(
                    "too few answers ({} of {})",
                    g.answered, spec.gold_min_answers
                )
            } else if g.below_threshold {
                "below threshold".into()
            } else {
                "ok".into()
            };
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}/{}</td><td>{overall}</td><td>{}</td></tr>",
                esc(&g.rater),
                g.correct,
                g.answered,
                esc(&g.standing)
            )
        })
        .collect();
    format!(
        "<section aria-labelledby=\"gold\"><h2 id=\"gold\">Gold items</h2><p>Threshold {:.0}% correct after {} gold answers; below it a rater gets qualification rounds of {} gold items ({} allowed).</p>\
         <div class=\"scroll\"><table id=\"gold-table\"><thead><tr><th scope=\"col\">Rater</th><th scope=\"col\">Correct</th><th scope=\"col\">Overall</th><th scope=\"col\">Standing</th></tr></thead><tbody>{rows}</tbody></table></div></section>",
        spec.gold_min_accuracy * 100.0,
        spec.gold_min_answers,
        spec.requalify_items,
        spec.requalify_attempts,
    )
}

/// One dividing item: its id, how far apart the pools are, its text (behind a closed
/// disclosure when it carries a content warning) and the labels each pool gave.
fn dividing_html(item: &DividingItem, schema: &LabelSchema) -> String {
    let mut labels: Vec<&String> = item
        .by_pool
        .values()
        .flat_map(|counts| counts.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // The schema's order first (low to high on a scale), anything else after it.
    let order = schema.labels();
    labels.sort_by_key(|l| order.iter().position(|o| o == *l).unwrap_or(order.len()));
    let head: String = labels
        .iter()
        .map(|l| format!("<th scope=\"col\">{}</th>", esc(l)))
        .collect();
    let rows: String = item
        .by_pool
        .iter()
        .map(|(pool, counts)| {
            let cells: String = labels
                .iter()
                .map(|l| format!("<td>{}</td>", counts.get(*l).copied().unwrap_or(0)))
                .collect();
            format!("<tr><th scope=\"row\">{}</th>{cells}</tr>", esc(pool))
        })
        .collect();
    let text = match &item.warning {
        Some(w) => format!(
            "<p class=\"warning\">Content warning: {}</p><details><summary>Show text</summary><p class=\"dividing-text\">{}</p></details>",
            esc(w),
            esc(&item.text)
        ),
        None => format!("<p class=\"dividing-text\">{}</p>", esc(&item.text)),
    };
    format!(
        "<li><p><strong>{}</strong> (divergence {:.2})</p>{text}\
         <div class=\"scroll\"><table class=\"dividing-counts\"><caption>Labels per pool</caption><thead><tr><th scope=\"col\">Pool</th>{head}</tr></thead><tbody>{rows}</tbody></table></div></li>",
        esc(&item.item),
        item.divergence
    )
}

/// The dashboard with the admin forms; `result` is shown at the top (an invitation code, import
/// errors), already escaped; `draft` refills the import form after a refused import.
async fn project_page(
    state: &AppState,
    admin: &Admin,
    id: i64,
    notice: Option<String>,
    result: Option<(StatusCode, String)>,
    draft: Option<&ImportDraft<'_>>,
) -> Response {
    let data = match service::build_dashboard(state, id).await {
        Ok(x) => x,
        Err(e) => return error_page(e),
    };
    let (project, d, pool_rows) = (&data.project, &data.dashboard, &data.pools);
    let mut pools = String::new();
    for p in &d.pools {
        pools.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{} / {} ({:.0}%)</td><td>{}</td></tr>",
            esc(&p.name),
            p.raters.map_or("withheld (under k)".to_string(), |n| n.to_string()),
            p.labels,
            p.items_complete,
            d.items,
            p.share_complete * 100.0,
            alpha_text(p.alpha_within)
        ));
    }
    let predictability = predictability_html(&d.pool_predictability);
    let dividing = if d.dividing_items.is_empty() {
        "<p>None yet: no item has labels from two pools that differ.</p>".to_string()
    } else {
        let items: String = d
            .dividing_items
            .iter()
            .map(|i| dividing_html(i, &project.spec.label_schema))
            .collect();
        format!(
            "<p>Divergence: how far apart two pools' label shares are on the item, 0 = the same, 1 = no label in common.</p><ol id=\"dividing-items\">{items}</ol>"
        )
    };
    let gold = gold_html(d, &project.spec);
    let ledger = ledger_html(d, &project.spec);
    let pool_list: String = pool_rows
        .iter()
        .map(|p| {
            let rule = match (&p.rule_question, &p.rule_answer) {
                (Some(q), Some(a)) => format!("answer {} to {}, or invitation", esc(a), esc(q)),
                _ => "invitation (or the default for unmatched answers)".into(),
            };
            format!(
                "<tr><th scope=\"row\">{}</th><td>{rule}</td></tr>",
                esc(&p.name)
            )
        })
        .collect();
    let pool_options: String = std::iter::once(
        "<option value=\"\">by questionnaire answer (or the default pool)</option>".to_string(),
    )
    .chain(
        pool_rows
            .iter()
            .map(|p| format!("<option value=\"{0}\">{0}</option>", esc(&p.name))),
    )
    .collect();
    let question_options: String = std::iter::once(
        "<option value=\"\">none: raters join it by invitation</option>".to_string(),
    )
    .chain(
        project
            .spec
            .questionnaire
            .iter()
            .map(|q| format!("<option value=\"{}\">{}</option>", esc(&q.id), esc(&q.text))),
    )
    .collect();
    let downloads: String = EXPORT_FORMATS
        .iter()
        .map(|f| {
            format!(
                "<li><a id=\"export-{f}\" href=\"/api/projects/{id}/export?format={f}\">Labels ({})</a></li>",
                f.to_uppercase()
            )
        })
        .collect();
    let csrf = csrf_of(admin);
    let import = import_form(id, &csrf, draft);
    let notice = notice
        .map(|n| format!("<p role=\"status\" id=\"notice\">{}</p>", esc(&n)))
        .unwrap_or_default();
    let (status, result) = result.unwrap_or((StatusCode::OK, String::new()));
    let body = format!(
        "{notice}{result}<p><a href=\"/admin\">All projects</a></p>\
         <section aria-labelledby=\"progress\"><h2 id=\"progress\">Progress per pool</h2><div class=\"scroll\"><table id=\"progress-table\"><thead><tr><th scope=\"col\">Pool</th><th scope=\"col\">Raters</th><th scope=\"col\">Labels</th><th scope=\"col\">Items complete</th><th scope=\"col\">α within pool <small>({ALPHA_WITHIN_NOTE})</small></th></tr></thead><tbody>{pools}</tbody></table></div></section>\
         <section aria-labelledby=\"agreement\"><h2 id=\"agreement\">Agreement</h2><p id=\"alpha-pooled\">Krippendorff's α, all raters pooled: {} <small>({ALPHA_POOLED_NOTE})</small></p><p id=\"alpha-between\">α between pools: {} <small>({ALPHA_BETWEEN_NOTE})</small></p><h3>Items dividing pools most</h3>{dividing}</section>\
         {predictability}{gold}{ledger}\
         <section aria-labelledby=\"downloads\"><h2 id=\"downloads\">Downloads</h2><ul>{downloads}<li><a id=\"datasheet-md\" href=\"/api/projects/{id}/datasheet?format=md\">Datasheet (Markdown)</a></li><li><a id=\"datasheet-html\" href=\"/api/projects/{id}/datasheet?format=html\">Datasheet (HTML)</a></li><li><a href=\"/api/projects/{id}/demographics\">Demographics (groups of at least k)</a></li></ul></section>\
         <section aria-labelledby=\"items\"><h2 id=\"items\">Import items</h2><p>{} items so far. JSONL lines <code>{{\"id\", \"text\", \"warning\", \"blur\", \"gold_label\", \"gold_note\"}}</code>, or CSV with header <code>id,text[,warning,blur,gold_label,gold_note]</code>. A warned item is hidden until the rater shows it unless <code>blur</code> is false; <code>blur</code> true hides an item without a warning. A file with any bad line is refused whole, with its lines named.</p>{import}</section>\
         <section aria-labelledby=\"pools-h\"><h2 id=\"pools-h\">Pools</h2><div class=\"scroll\"><table id=\"pool-table\"><thead><tr><th scope=\"col\">Pool</th><th scope=\"col\">Raters join by</th></tr></thead><tbody>{pool_list}</tbody></table></div>\
         <form method=\"post\" action=\"/admin/projects/{id}/pools\" id=\"pool-form\">{csrf}\
         <div><label for=\"pool-name\">New pool</label> <input id=\"pool-name\" name=\"name\" required></div>\
         <div><label for=\"pool-question\">Chosen by the answer to</label> <select id=\"pool-question\" name=\"question\">{question_options}</select> <label for=\"pool-answer\">answer</label> <input id=\"pool-answer\" name=\"answer\"></div>\
         <button type=\"submit\" id=\"add-pool\">Add pool</button></form></section>\
         <section aria-labelledby=\"invite-h\"><h2 id=\"invite-h\">Invitations</h2>\
         <form method=\"post\" action=\"/admin/projects/{id}/invitations\" id=\"invite-form\">{csrf}\
         <div><label for=\"invite-pool\">Pool</label> <select id=\"invite-pool\" name=\"pool\">{pool_options}</select></div>\
         <div><label for=\"max-uses\">Uses</label> <input type=\"number\" id=\"max-uses\" name=\"max_uses\" value=\"1\" min=\"1\" max=\"1000\" required></div>\
         <div><label for=\"expires-in-days\">Valid for (days)</label> <input type=\"number\" id=\"expires-in-days\" name=\"expires_in_days\" value=\"14\" min=\"1\" max=\"365\" required></div>\
         <button type=\"submit\" id=\"invite\">Create invitation</button></form></section>\
         <section aria-labelledby=\"instr-h\"><h2 id=\"instr-h\">Instructions</h2><p>Version {}:</p><div class=\"instructions\" id=\"instructions\">{}</div>\
         <form method=\"post\" action=\"/admin/projects/{id}/instructions\" id=\"instructions-form\">{csrf}\
         <div><label for=\"new-instructions\">New version</label><br><textarea id=\"new-instructions\" name=\"text\" rows=\"4\" cols=\"70\" required></textarea></div>\
         <button type=\"submit\" id=\"publish\">Publish</button></form></section>",
        alpha_text(d.alpha_pooled),
        alpha_text(d.alpha_between_pools),
        d.items,
        project.instructions_version,
        markdown_html(&project.instructions),
    );
    (status, page(&format!("Dashboard: {}", d.project), &body)).into_response()
}

async fn import_items(
    admin: Result<Admin, AppError>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Form(form): Form<Fields>,
) -> Response {
    let admin = match admin_post(admin, &form) {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    let format = match field(&form, "format") {
        "csv" => "csv",
        _ => "jsonl",
    };
    let file = match field(&form, "file").trim() {
        "" | "upload" => format!("upload.{format}"),
        name => name.to_string(),
    };
    let draft = ImportDraft {
        format,
        file: field(&form, "file").trim(),
        body: field(&form, "body"),
    };
    match service::import(&state, id, format, &file, draft.body).await {
        Ok(n) => Redirect::to(&format!("/admin/projects/{id}?imported={n}")).into_response(),
        Err(ImportFailure::Lines(errors)) => {
            let list: String = errors
                .iter()
                .map(|e| format!("<li>{}</li>", esc(&e.to_string())))
                .collect();
            let result = format!(
                "<div role=\"alert\" id=\"import-errors\"><p>{} problem(s); nothing was imported.</p><ul>{list}</ul></div>",
                errors.len()
            );
            project_page(
                &state,
                &admin,
                id,
                None,
                Some((StatusCode::BAD_REQUEST, result)),
                Some(&draft),
            )
            .await
        }
        Err(ImportFailure::Other(e)) => {
            form_failed(&state, &admin, id, e, "import-errors", Some(&draft)).await
        }
    }
}

/// A project form that failed: an unknown project gets the error page; anything else shows the
/// project page again with the message in an alert (element `alert_id`) and the error's status,
/// the import form refilled from `draft`.
async fn form_failed(
    state: &AppState,
    admin: &Admin,
    id: i64,
    e: AppError,
    alert_id: &str,
    draft: Option<&ImportDraft<'_>>,
) -> Response {
    if e.status == StatusCode::NOT_FOUND {
        return error_page(e);
    }
    let result = format!(
        "<p role=\"alert\" id=\"{alert_id}\">{}</p>",
        esc(&e.message)
    );
    project_page(state, admin, id, None, Some((e.status, result)), draft).await
}

async fn add_pool(
    admin: Result<Admin, AppError>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Form(form): Form<Fields>,
) -> Response {
    let admin = match admin_post(admin, &form) {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    let question = field(&form, "question").trim();
    let pool = PoolSpec {
        name: field(&form, "name").trim().into(),
        rule: (!question.is_empty()).then(|| PoolRule {
            question: question.into(),
            answer: field(&form, "answer").trim().into(),
        }),
    };
    match state.db.add_pool(id, &pool).await {
        Ok(_) => Redirect::to(&format!("/admin/projects/{id}?pool=1")).into_response(),
        Err(e) => form_failed(&state, &admin, id, e.into(), "pool-error", None).await,
    }
}

/// The invitation link as an absolute URL on the address the admin reached the server by
/// (`Host`, and `X-Forwarded-Proto` behind a proxy), so it can be pasted into a message as it
/// is; relative when the request names no usable host.
fn invitation_link(headers: &HeaderMap, path: &str) -> String {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let host = value("host").filter(|h| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    });
    let Some(host) = host else {
        return path.to_string();
    };
    let scheme = value("x-forwarded-proto")
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| v == "https" || v == "http")
        .unwrap_or_else(|| "http".into());
    format!("{scheme}://{host}{path}")
}

async fn create_invitation(
    admin: Result<Admin, AppError>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let admin = match admin_post(admin, &form) {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    let pool = Some(field(&form, "pool").trim()).filter(|p| !p.is_empty());
    let max_uses = field(&form, "max_uses").trim().parse::<i64>().unwrap_or(0);
    let days = match field(&form, "expires_in_days").trim() {
        "" => service::DEFAULT_INVITATION_DAYS,
        d => d.parse::<i64>().unwrap_or(0),
    };
    match service::invite(&state, id, pool, max_uses, days).await {
        Ok(code) => {
            let link = invitation_link(&headers, &format!("/join?code={code}"));
            // The copy button stays hidden until the script finds a clipboard to write to;
            // without it the link text is selectable as it is.
            let result = format!(
                "<div role=\"status\" id=\"invitation\"><p>Invitation for {} ({} use(s), valid {days} days). It is shown only now: the server keeps only a hash.</p><p>Code: <code id=\"invitation-code\">{}</code></p><p>Link: <a id=\"invitation-link\" href=\"{}\">{}</a> <button type=\"button\" id=\"copy-invitation\" hidden>Copy link</button> <span id=\"copy-status\" role=\"status\" aria-live=\"polite\"></span></p></div>",
                pool.map_or("the questionnaire's pools".to_string(), |p| format!(
                    "pool {}",
                    esc(p)
                )),
                max_uses,
                esc(&code),
                esc(&link),
                esc(&link)
            );
            let mut res = project_page(
                &state,
                &admin,
                id,
                None,
                Some((StatusCode::CREATED, result)),
                None,
            )
            .await;
            // The code must not be cached anywhere (the security headers add no-store too).
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => form_failed(&state, &admin, id, e, "invite-error", None).await,
    }
}

async fn new_instructions(
    admin: Result<Admin, AppError>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(e) = admin_post(admin, &form) {
        return error_page(e);
    }
    let text = field(&form, "text");
    if text.trim().is_empty() {
        return error_page(AppError::bad("instructions text is empty"));
    }
    match state.db.set_instructions(id, text).await {
        Ok(v) => Redirect::to(&format!("/admin/projects/{id}?instructions={v}")).into_response(),
        Err(e) => error_page(e),
    }
}

async fn admin_login_page() -> Html<String> {
    page(
        "Admin sign-in",
        "<form method=\"post\" action=\"/admin/login\"><label for=\"token\">Admin token</label> <input type=\"password\" id=\"token\" name=\"token\" required autocomplete=\"current-password\"> <button type=\"submit\" id=\"sign-in\">Sign in</button></form>",
    )
}

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

async fn admin_login_post(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Err(e) = auth::same_origin(&headers).and_then(|_| service::guard_check(&state, &ip)) {
        return error_page(e);
    }
    if !state.admin.check(&form.token) {
        return error_page(AppError::unauthorized());
    }
    state.guard.refund(&ip.0);
    match state.db.admin_session(state.admin.key_id()).await {
        Ok((token, _)) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, auth::session_cookie(&token)),
                (header::LOCATION, "/admin".to_string()),
            ],
        )
            .into_response(),
        Err(e) => error_page(e),
    }
}

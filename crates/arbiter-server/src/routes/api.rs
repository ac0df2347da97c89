//! The JSON API (`/api/…`), and the operations the HTML pages share with it.
//!
//! Admin routes take [`Admin`] (bearer token or admin session + CSRF header); rater routes take
//! [`Rater`] (session cookie + CSRF header on posts) and only ever touch the caller's own rows.

use std::collections::BTreeMap;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{self, Admin, Rater, csrf_header};
use crate::db::Next;
use crate::error::{AppError, AppResult};
use crate::model::ProjectSpec;
use crate::{ClientIp, release, report, service};

pub(crate) fn routes(body_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/api/projects", post(create_project).get(list_projects))
        .route("/api/projects/{id}", get(get_project))
        .route("/api/projects/{id}/instructions", post(new_instructions))
        .route(
            "/api/projects/{id}/items",
            post(import_items).layer(DefaultBodyLimit::max(body_limit.saturating_mul(16))),
        )
        .route(
            "/api/projects/{id}/invitations",
            post(create_invitation).get(list_invitations),
        )
        .route(
            "/api/projects/{id}/invitations/{inv}/revoke",
            post(revoke_invitation),
        )
        .route(
            "/api/projects/{id}/raters/{pseudonym}/erase",
            post(erase_rater),
        )
        .route("/api/projects/{id}/pools", post(add_pool))
        .route("/api/projects/{id}/dashboard", get(dashboard))
        .route("/api/projects/{id}/demographics", get(demographics))
        .route("/api/projects/{id}/export", get(export))
        .route("/api/projects/{id}/datasheet", get(datasheet))
        .route("/api/join", post(join))
        .route("/api/me", get(me))
        .route("/api/consent", post(consent))
        .route("/api/questionnaire", post(questionnaire))
        .route("/api/next", get(next))
        .route("/api/annotations", post(annotate))
        .route("/api/skip", post(skip))
        .route("/api/ledger", get(ledger))
        .route("/api/withdraw", post(withdraw))
        .route("/api/withdraw-with-code", post(withdraw_with_code))
        .route("/api/logout", post(logout))
}

// ---- admin -----------------------------------------------------------------------------------

async fn create_project(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ProjectSpec>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    admin.check_csrf(csrf_header(&headers))?;
    let Json(spec) = body.map_err(AppError::from_json)?;
    let spec = spec.validate()?;
    let id = state.db.create_project(&spec).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn list_projects(_admin: Admin, State(state): State<AppState>) -> AppResult<Json<Value>> {
    let projects = state.db.projects().await?;
    Ok(Json(json!(
        projects
            .into_iter()
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect::<Vec<_>>()
    )))
}

async fn get_project(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> AppResult<Json<Value>> {
    let p = state.db.project(id).await?;
    let pools = state.db.pools(id).await?;
    Ok(Json(json!({
        "id": p.id,
        "spec": p.spec,
        "instructions_version": p.instructions_version,
        "instructions": p.instructions,
        "pools": pools,
    })))
}

#[derive(Deserialize)]
struct InstructionsBody {
    text: String,
}

async fn new_instructions(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<InstructionsBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Json<Value>> {
    admin.check_csrf(csrf_header(&headers))?;
    let Json(body) = body.map_err(AppError::from_json)?;
    if body.text.trim().is_empty() {
        return Err(AppError::bad("instructions text is empty"));
    }
    let version = state.db.set_instructions(id, &body.text).await?;
    Ok(Json(json!({ "version": version })))
}

#[derive(Deserialize)]
struct ImportQuery {
    format: Option<String>,
    file: Option<String>,
}

async fn import_items(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<ImportQuery>,
    body: String,
) -> AppResult<Response> {
    admin.check_csrf(csrf_header(&headers))?;
    let format = q.format.unwrap_or_else(|| "jsonl".into());
    let file = q.file.unwrap_or_else(|| format!("upload.{format}"));
    match service::import(&state, id, &format, &file, &body).await {
        Ok(n) => Ok((StatusCode::CREATED, Json(json!({ "imported": n }))).into_response()),
        Err(service::ImportFailure::Other(e)) => Err(e),
        Err(service::ImportFailure::Lines(errors)) => Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": format!("{} problem(s); nothing was imported", errors.len()),
                "line_errors": errors.iter().map(|e| json!({"file": e.file, "line": e.line, "message": e.message, "text": e.to_string()})).collect::<Vec<_>>(),
            })),
        )
            .into_response()),
    }
}

#[derive(Deserialize)]
struct InvitationBody {
    pool: Option<String>,
    max_uses: Option<i64>,
    expires_in_days: Option<i64>,
}

async fn create_invitation(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<InvitationBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    admin.check_csrf(csrf_header(&headers))?;
    let Json(body) = body.map_err(AppError::from_json)?;
    let days = body
        .expires_in_days
        .unwrap_or(service::DEFAULT_INVITATION_DAYS);
    let code = service::invite(
        &state,
        id,
        body.pool.as_deref(),
        body.max_uses.unwrap_or(1),
        days,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "code": code, "join_path": format!("/join?code={code}"), "expires_in_days": days })),
    )
        .into_response())
}

async fn list_invitations(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> AppResult<Json<Value>> {
    state.db.project(id).await?;
    Ok(Json(json!(state.db.invitations(id).await?)))
}

async fn revoke_invitation(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, inv)): Path<(i64, i64)>,
) -> AppResult<Json<Value>> {
    admin.check_csrf(csrf_header(&headers))?;
    if !state.db.revoke_invitation(id, inv).await? {
        return Err(AppError::not_found("invitation"));
    }
    Ok(Json(json!({ "revoked": true })))
}

async fn erase_rater(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, pseudonym)): Path<(i64, String)>,
) -> AppResult<Json<Value>> {
    admin.check_csrf(csrf_header(&headers))?;
    let rater = state
        .db
        .rater_by_pseudonym(id, &pseudonym)
        .await?
        .ok_or_else(|| AppError::not_found("rater"))?;
    let owed = service::erase(&state, rater)
        .await?
        .ok_or_else(|| AppError::not_found("rater"))?;
    Ok(Json(json!({ "erased": true, "owed_reference": owed })))
}

async fn add_pool(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<crate::model::PoolSpec>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    admin.check_csrf(csrf_header(&headers))?;
    let Json(pool) = body.map_err(AppError::from_json)?;
    let pool_id = state.db.add_pool(id, &pool).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": pool_id }))).into_response())
}

async fn dashboard(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> AppResult<Json<report::Dashboard>> {
    Ok(Json(service::build_dashboard(&state, id).await?.dashboard))
}

async fn demographics(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> AppResult<Json<Value>> {
    let project = state.db.project(id).await?;
    let (groups, snapshot) = service::demographics(&state, &project).await?;
    Ok(Json(json!({
        "k": release::k_of(project.spec.k_min),
        "release": snapshot.seq,
        "as_of": snapshot.taken_at,
        "raters": snapshot.raters,
        "questions": groups,
    })))
}

#[derive(Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

async fn export(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<FormatQuery>,
) -> AppResult<Response> {
    let project = state.db.project(id).await?;
    let format = q.format.unwrap_or_else(|| "jsonl".into());
    let classes = service::export_classes(&state, &project).await?;
    let rows = state.db.label_rows(id).await?;
    let body = report::export(&format, &classes, &rows).map_err(AppError::bad)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                report::export_mime(&format).to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"project-{id}-labels.{format}\""),
            ),
        ],
        body,
    )
        .into_response())
}

pub(crate) async fn render_datasheet(
    state: &AppState,
    id: i64,
    format: &str,
) -> AppResult<Response> {
    let data = service::build_dashboard(state, id).await?;
    let project = &data.project;
    let versions = state.db.instruction_versions(id).await?;
    let sheet = report::datasheet(&report::DatasheetInput {
        project,
        dashboard: &data.dashboard,
        versions: &versions,
        pools: &data.pools,
        demographics: &data.demographics,
        warned_items: data.items.iter().filter(|i| i.warning.is_some()).count(),
        hidden_items: data.items.iter().filter(|i| i.blur).count(),
    });
    let (mime, ext, body) = match format {
        "md" | "markdown" => (
            "text/markdown; charset=utf-8",
            "md",
            report::datasheet_markdown(&project.spec.name, &sheet, &versions),
        ),
        "html" => (
            "text/html; charset=utf-8",
            "html",
            report::datasheet_html(&project.spec.name, &sheet, &versions),
        ),
        other => {
            return Err(AppError::bad(format!(
                "unknown datasheet format {other:?}; use md or html"
            )));
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"datasheet-project-{id}.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}

async fn datasheet(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<FormatQuery>,
) -> AppResult<Response> {
    render_datasheet(&state, id, q.format.as_deref().unwrap_or("md")).await
}

// ---- raters ----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct JoinBody {
    code: String,
}

async fn withdraw_with_code(
    State(state): State<AppState>,
    ip: ClientIp,
    body: Result<Json<JoinBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    let Json(body) = body.map_err(AppError::from_json)?;
    let owed = service::withdraw_by_code(&state, &ip, &body.code).await?;
    Ok((
        [(header::SET_COOKIE, auth::clear_cookie())],
        Json(json!({ "withdrawn": true, "erased": true, "owed_reference": owed })),
    )
        .into_response())
}

async fn join(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Result<Json<JoinBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    auth::same_origin(&headers)?;
    let Json(body) = body.map_err(AppError::from_json)?;
    let (token, csrf, pseudonym) = service::guarded_join(&state, &ip, &body.code).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, auth::session_cookie(&token))],
        Json(json!({ "pseudonym": pseudonym, "csrf": csrf })),
    )
        .into_response())
}

async fn me(rater: Rater, State(state): State<AppState>) -> AppResult<Json<Value>> {
    let p = state.db.project(rater.project_id).await?;
    Ok(Json(json!({
        "pseudonym": rater.pseudonym,
        "consented": rater.consented_at.is_some(),
        "questionnaire_done": rater.questionnaire_at.is_some(),
        "consent_text": p.spec.consent_text,
        "content_warning": p.spec.content_warning,
        "questionnaire": p.spec.questionnaire,
        "csrf": rater.csrf,
    })))
}

#[derive(Deserialize)]
struct ConsentBody {
    agree: bool,
}

async fn consent(
    rater: Rater,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ConsentBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Json<Value>> {
    rater.check_csrf(csrf_header(&headers))?;
    let Json(body) = body.map_err(AppError::from_json)?;
    if !body.agree {
        return Err(AppError::bad(
            "consent declined; no items will be shown (you may withdraw)",
        ));
    }
    let code = state.db.consent(rater.id).await?;
    Ok(Json(
        json!({ "consented": true, "withdrawal_code": code, "note": "keep the withdrawal code: it is shown once, and withdraws and erases your data at any time, signed in or not" }),
    ))
}

#[derive(Deserialize)]
struct QuestionnaireBody {
    #[serde(default)]
    answers: BTreeMap<String, String>,
}

async fn questionnaire(
    rater: Rater,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<QuestionnaireBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Json<Value>> {
    rater.check_csrf(csrf_header(&headers))?;
    let Json(body) = body.map_err(AppError::from_json)?;
    service::apply_questionnaire(&state, &rater, &body.answers).await?;
    Ok(Json(json!({ "done": true })))
}

#[derive(Deserialize)]
struct NextQuery {
    prefetch: Option<i64>,
}

fn item_json(item: &crate::db::Item, served_at: i64) -> Value {
    json!({
        "id": item.id,
        "text": item.body,
        "warning": item.warning,
        "blurred": item.blur,
        "served_at": served_at,
    })
}

async fn next(
    rater: Rater,
    State(state): State<AppState>,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    let project = state.db.project(rater.project_id).await?;
    if let Some(n) = q.prefetch.filter(|n| *n > 1) {
        // Prefetching clients get several items at once; the exposure caps and the per-rater
        // cap on open claims bound how many.
        let n = n.min(50).min(project.spec.max_open_claims);
        let batch = state.db.prefetch(&rater, &project, n).await?;
        if !batch.is_empty() {
            // All new items are claimed in one write; those whose pool filled up meanwhile are
            // left out.
            let fresh: Vec<(i64, i64)> = batch
                .iter()
                .filter(|(_, _, fresh)| *fresh)
                .map(|(item, served_at, _)| (item.id, *served_at))
                .collect();
            let granted = match fresh.first() {
                Some((_, served_at)) => {
                    state
                        .writer
                        .expose(
                            rater.id,
                            fresh.iter().map(|(id, _)| *id).collect(),
                            *served_at,
                            service::claim_for(&rater, &project),
                        )
                        .await?
                }
                None => Vec::new(),
            };
            let mut granted = granted.into_iter();
            let mut items = Vec::with_capacity(batch.len());
            for (item, served_at, fresh) in &batch {
                if *fresh && granted.next() != Some(true) {
                    continue;
                }
                items.push(item_json(item, *served_at));
            }
            if !items.is_empty() {
                return Ok(Json(json!({
                    "status": "items",
                    "items": items,
                    "labels": project.spec.label_schema.labels(),
                    "instructions_version": project.instructions_version,
                }))
                .into_response());
            }
        }
    }
    let out = match service::next_for(&state, &rater, &project).await? {
        Next::Item(item, served_at) | Next::Fresh(item, served_at) => json!({
            "status": "item",
            "item": {
                "id": item.id,
                "text": item.body,
                "warning": item.warning,
                "blurred": item.blur,
            },
            "served_at": served_at,
            "labels": project.spec.label_schema.labels(),
            "schema": project.spec.label_schema,
            "rationale": project.spec.rationale,
            "instructions_version": project.instructions_version,
            "instructions": project.instructions,
            "qualification": service::qualification(&rater, &project),
        }),
        Next::Break(until) => json!({ "status": "break", "resume_at": until }),
        Next::DailyCap(until) => json!({ "status": "daily_cap", "resume_at": until }),
        Next::Done => json!({ "status": "done" }),
        Next::NoChecksLeft => json!({
            "status": "paused",
            "reason": "your gold-check accuracy fell below the project's threshold and no check item is left for a qualification round; the project team can see this on its dashboard",
            "qualification": service::qualification(&rater, &project),
        }),
        Next::Retired => json!({
            "status": "retired",
            "reason": "your answers on check items stayed below the project's threshold after every qualification round, so no more items will be served; your pay for the work done is unaffected",
        }),
        Next::NeedsConsent => {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                "consent comes before any item",
            ));
        }
        Next::NeedsQuestionnaire => {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                "answer or decline the questionnaire first",
            ));
        }
    };
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
struct AnnotationBody {
    item_id: i64,
    label: Value,
    #[serde(default)]
    rationale: Option<String>,
}

/// The hot path: one read (session, rater and exposure together) and one group-committed
/// insert per submission.
async fn annotate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<AnnotationBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    let item_id = body.as_ref().map(|Json(b)| b.item_id).unwrap_or(0);
    let (rater, exposure) = auth::rater_with_exposure(&headers, &state, item_id).await?;
    rater.check_csrf(csrf_header(&headers))?;
    let Json(body) = body.map_err(AppError::from_json)?;
    let (id, gold) = service::record(
        &state,
        &rater,
        exposure,
        body.item_id,
        Some(&body.label),
        body.rationale,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "gold": gold }))).into_response())
}

#[derive(Deserialize)]
struct SkipBody {
    item_id: i64,
}

async fn skip(
    rater: Rater,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SkipBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    rater.check_csrf(csrf_header(&headers))?;
    let Json(body) = body.map_err(AppError::from_json)?;
    let exposure = state.db.exposure(rater.id, body.item_id).await?;
    let (id, _) = service::record(&state, &rater, exposure, body.item_id, None, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "skipped": true })),
    )
        .into_response())
}

async fn ledger(
    rater: Rater,
    State(state): State<AppState>,
) -> AppResult<Json<report::LedgerLine>> {
    Ok(Json(service::own_ledger(&state, &rater).await?))
}

async fn withdraw(
    rater: Rater,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> AppResult<Response> {
    rater.check_csrf(csrf_header(&headers))?;
    let owed = service::erase(&state, rater.id).await?.flatten();
    Ok((
        [(header::SET_COOKIE, auth::clear_cookie())],
        Json(json!({ "withdrawn": true, "erased": true, "owed_reference": owed })),
    )
        .into_response())
}

async fn logout(headers: HeaderMap, State(state): State<AppState>) -> AppResult<Response> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == auth::SESSION_COOKIE)
        .map(|(_, v)| v.to_string());
    if let Some(t) = token {
        let hash = auth::sha256_hex(&t);
        if let Some(s) = state.db.session(&hash).await? {
            if !auth::csrf_matches(&s.csrf, csrf_header(&headers)) {
                return Err(AppError::forbidden("missing or wrong CSRF token"));
            }
            state.db.delete_session(&hash).await?;
        }
    }
    Ok((
        [(header::SET_COOKIE, auth::clear_cookie())],
        Json(json!({ "logged_out": true })),
    )
        .into_response())
}

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
use crate::db::{Exposure, Next, PendingAnnotation, Project, now_ms};
use crate::error::{AppError, AppResult};
use crate::model::{GoldPolicy, PREFER_NOT_TO_SAY, ProjectSpec, Rationale, parse_items};
use crate::writer::{Claim, Stored};
use crate::{ClientIp, release, report};

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

/// Why an import was refused.
pub(crate) enum ImportFailure {
    /// Lines that failed validation (nothing imported).
    Lines(Vec<crate::model::LineError>),
    /// Anything else (unknown project, duplicate id, storage).
    Other(AppError),
}

impl From<AppError> for ImportFailure {
    fn from(e: AppError) -> Self {
        ImportFailure::Other(e)
    }
}

/// Parses and stores items, all or nothing; shared by the API and the admin pages.
pub(crate) async fn import(
    state: &AppState,
    id: i64,
    format: &str,
    file: &str,
    body: &str,
) -> Result<usize, ImportFailure> {
    let project = state.db.project(id).await?;
    let items = parse_items(file, format, body, &project.spec.label_schema)
        .map_err(ImportFailure::Lines)?;
    Ok(state.db.import_items(id, &items).await?)
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
    match import(&state, id, &format, &file, &body).await {
        Ok(n) => Ok((StatusCode::CREATED, Json(json!({ "imported": n }))).into_response()),
        Err(ImportFailure::Other(e)) => Err(e),
        Err(ImportFailure::Lines(errors)) => Ok((
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
    let days = body.expires_in_days.unwrap_or(DEFAULT_INVITATION_DAYS);
    let code = invite(
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

/// Days an invitation stays valid unless the admin says otherwise.
pub(crate) const DEFAULT_INVITATION_DAYS: i64 = 14;
/// Most raters one invitation may admit.
pub(crate) const MAX_INVITATION_USES: i64 = 1000;

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
    let owed = state
        .db
        .erase_rater(&state.writer, rater)
        .await?
        .ok_or_else(|| AppError::not_found("rater"))?;
    Ok(Json(json!({ "erased": true, "owed_reference": owed })))
}

/// Creates an invitation code, optionally tied to a pool; shared by the API and the pages.
pub(crate) async fn invite(
    state: &AppState,
    id: i64,
    pool: Option<&str>,
    max_uses: i64,
    expires_in_days: i64,
) -> AppResult<String> {
    state.db.project(id).await?;
    let pool_id = match pool {
        None => None,
        Some(name) => Some(
            state
                .db
                .pools(id)
                .await?
                .into_iter()
                .find(|p| p.name == name)
                .ok_or_else(|| AppError::bad(format!("no pool named {name:?}")))?
                .id,
        ),
    };
    if !(1..=MAX_INVITATION_USES).contains(&max_uses) {
        return Err(AppError::bad(format!(
            "max_uses must be between 1 and {MAX_INVITATION_USES}"
        )));
    }
    if !(1..=365).contains(&expires_in_days) {
        return Err(AppError::bad("expires_in_days must be between 1 and 365"));
    }
    let expires_at = now_ms() + expires_in_days * 24 * 3600 * 1000;
    state
        .db
        .create_invitation(id, pool_id, max_uses, expires_at)
        .await
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

/// The project's pools, how they are released, and the identity release in force: a new
/// snapshot is stored first when the release rule allows one (see `release`).
pub(crate) async fn identity_release(
    state: &AppState,
    project: &Project,
) -> AppResult<(
    Vec<crate::db::Pool>,
    release::PoolClasses,
    release::Snapshot,
)> {
    let k = release::k_of(project.spec.k_min);
    let pools = state.db.pools(project.id).await?;
    let shape: Vec<(i64, String, bool)> = pools
        .iter()
        .map(|p| (p.id, p.name.clone(), p.rule_question.is_some()))
        .collect();
    let mut sizes = std::collections::BTreeMap::new();
    for r in state.db.raters(project.id).await? {
        if let (Some(p), false) = (r.pool_id, r.withdrawn) {
            *sizes.entry(p).or_insert(0usize) += 1;
        }
    }
    let classes = release::pool_classes(k, &shape, &sizes);
    let census = state
        .db
        .census(project.id, &pools, classes.identity)
        .await?;
    let questions: Vec<String> = project
        .spec
        .questionnaire
        .iter()
        .map(|q| q.id.clone())
        .collect();
    let mut earlier = state.db.releases(project.id).await?;
    if let Some(next) = release::next_snapshot(k, &questions, &census, &earlier, now_ms()) {
        state.db.store_release(project.id, &next).await?;
        // Another request may have stored this number first: use what is stored.
        earlier = state.db.releases(project.id).await?;
    }
    let latest = earlier.pop().unwrap_or_else(release::Snapshot::empty);
    Ok((pools, classes, latest))
}

pub(crate) async fn build_dashboard(
    state: &AppState,
    id: i64,
) -> AppResult<(
    std::sync::Arc<Project>,
    report::Dashboard,
    release::Snapshot,
)> {
    let project = state.db.project(id).await?;
    let items = state.db.items(id).await?;
    let (pools, classes, snapshot) = identity_release(state, &project).await?;
    let raters = state.db.raters(id).await?;
    let rows = state.db.label_rows(id).await?;
    let (owed, withdrawn) = state.db.owed(id).await?;
    let d = report::dashboard(
        &report::DashboardInput {
            project: &project,
            n_items: items.len(),
            pools: &pools,
            classes: &classes,
            snapshot: &snapshot,
            raters: &raters,
            rows: &rows,
            owed: &owed,
            withdrawn: withdrawn.max(0) as usize,
        },
        state.agreement.as_ref(),
    );
    Ok((project, d, snapshot))
}

async fn dashboard(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> AppResult<Json<report::Dashboard>> {
    Ok(Json(build_dashboard(&state, id).await?.1))
}

fn question_ids(project: &Project) -> Vec<String> {
    project
        .spec
        .questionnaire
        .iter()
        .map(|q| q.id.clone())
        .collect()
}

async fn demographics(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> AppResult<Json<Value>> {
    let project = state.db.project(id).await?;
    let (_, _, snapshot) = identity_release(&state, &project).await?;
    let groups = report::demographics(&question_ids(&project), &snapshot);
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
    let (_, classes, _) = identity_release(&state, &project).await?;
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
    let (project, d, snapshot) = build_dashboard(state, id).await?;
    let versions = state.db.instruction_versions(id).await?;
    let pools = state.db.pools(id).await?;
    let demographics = report::demographics(&question_ids(&project), &snapshot);
    let warned = state
        .db
        .items(id)
        .await?
        .iter()
        .filter(|i| i.warning.is_some())
        .count();
    let sheet = report::datasheet(&report::DatasheetInput {
        project: &project,
        dashboard: &d,
        versions: &versions,
        pools: &pools,
        demographics: &demographics,
        warned_items: warned,
    });
    let (mime, ext, body) = match format {
        "md" | "markdown" => (
            "text/markdown; charset=utf-8",
            "md",
            report::datasheet_markdown(&project.spec.name, &sheet),
        ),
        "html" => (
            "text/html; charset=utf-8",
            "html",
            report::datasheet_html(&project.spec.name, &sheet),
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

/// Takes one of the client's credential attempts (given back when the attempt succeeds);
/// refuses a client whose recent failures used up its allowance.
pub(crate) fn guard_check(state: &AppState, ip: &ClientIp) -> AppResult<()> {
    if state.guard.take(&ip.0) {
        Ok(())
    } else {
        Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong codes from your address; wait a minute and try again",
        ))
    }
}

/// Joins with an invitation code; a refused code counts against the client's address.
pub(crate) async fn guarded_join(
    state: &AppState,
    ip: &ClientIp,
    code: &str,
) -> AppResult<(String, String, String)> {
    guard_check(state, ip)?;
    let out = state.db.join(code).await;
    if !matches!(&out, Err(e) if e.status == StatusCode::FORBIDDEN) {
        state.guard.refund(&ip.0);
    }
    out
}

/// Erases the rater a withdrawal code belongs to; a wrong code counts against the client's
/// address. Returns the pay-owed reference (if any work was done).
pub(crate) async fn withdraw_by_code(
    state: &AppState,
    ip: &ClientIp,
    code: &str,
) -> AppResult<Option<String>> {
    guard_check(state, ip)?;
    let Some(rater) = state.db.rater_by_withdrawal_code(code).await? else {
        return Err(AppError::forbidden(
            "this withdrawal code is not valid (or was already used: the data is then already erased)",
        ));
    };
    state.guard.refund(&ip.0);
    state
        .db
        .erase_rater(&state.writer, rater)
        .await?
        .ok_or_else(|| AppError::forbidden("this withdrawal code was already used"))
}

async fn withdraw_with_code(
    State(state): State<AppState>,
    ip: ClientIp,
    body: Result<Json<JoinBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    let Json(body) = body.map_err(AppError::from_json)?;
    let owed = withdraw_by_code(&state, &ip, &body.code).await?;
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
    let (token, csrf, pseudonym) = guarded_join(&state, &ip, &body.code).await?;
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

/// Validates answers, picks the pool, stores both. An empty map declines the questionnaire.
pub(crate) async fn apply_questionnaire(
    state: &AppState,
    rater: &Rater,
    answers: &BTreeMap<String, String>,
) -> AppResult<()> {
    if rater.consented_at.is_none() {
        return Err(AppError::forbidden("consent comes first"));
    }
    let project = state.db.project(rater.project_id).await?;
    let mut clean = Vec::new();
    for (qid, answer) in answers {
        if answer.is_empty() {
            continue;
        }
        let q = project
            .spec
            .questionnaire
            .iter()
            .find(|q| &q.id == qid)
            .ok_or_else(|| AppError::bad(format!("unknown question {qid:?}")))?;
        if !q.options.contains(answer) {
            return Err(AppError::bad(format!(
                "{answer:?} is not an option of {qid:?}"
            )));
        }
        if answer != PREFER_NOT_TO_SAY {
            clean.push((qid.clone(), answer.clone()));
        }
    }
    let pools = state.db.pools(rater.project_id).await?;
    let by_rule = pools.iter().find(|p| {
        matches!((&p.rule_question, &p.rule_answer), (Some(q), Some(a)) if clean.iter().any(|(cq, ca)| cq == q && ca == a))
    });
    let default = pools
        .iter()
        .find(|p| p.rule_question.is_none())
        .or(pools.first());
    let pool_id = rater
        .pool_id
        .or(by_rule.map(|p| p.id))
        .or(default.map(|p| p.id))
        .ok_or_else(|| AppError::from(anyhow::anyhow!("project has no pools")))?;
    state.db.finish_questionnaire(rater, &clean, pool_id).await
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
    apply_questionnaire(&state, &rater, &body.answers).await?;
    Ok(Json(json!({ "done": true })))
}

/// The next unit of work; a newly chosen item is recorded as served, and takes its place in
/// the pool's overlap, before it is returned. When another rater of the pool took the last
/// place in the meantime, the next candidate is tried.
pub(crate) async fn next_for(
    state: &AppState,
    rater: &Rater,
    project: &Project,
) -> AppResult<Next> {
    for _ in 0..64 {
        match state.db.next(rater, project).await? {
            Next::Fresh(item, served_at) => {
                let ok = state
                    .writer
                    .expose(
                        rater.id,
                        vec![item.id],
                        served_at,
                        claim_for(rater, project),
                    )
                    .await?;
                if ok.first() == Some(&true) {
                    return Ok(Next::Item(item, served_at));
                }
            }
            other => return Ok(other),
        }
    }
    Err(AppError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many raters are asking at once; please retry",
    ))
}

/// The overlap place an exposure of this rater claims: none during a qualification round
/// (gold checks take no place).
fn claim_for(rater: &Rater, project: &Project) -> Option<Claim> {
    match rater.pool_id {
        Some(pool_id) if rater.qual_round == 0 => Some(Claim {
            pool_id,
            overlap: project.spec.overlap_per_pool,
        }),
        _ => None,
    }
}

/// What a rater in a qualification round is told.
pub(crate) fn qualification(rater: &Rater, project: &Project) -> Option<Value> {
    (rater.qual_round > 0).then(|| {
        let policy = GoldPolicy::of(&project.spec);
        json!({
            "round": rater.qual_round,
            "rounds": policy.attempts,
            "items": policy.round_items,
            "answered": rater.round_answered,
            "correct": rater.round_correct,
            "needed": policy.needed(),
            "threshold": policy.min_accuracy,
        })
    })
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
        "blurred": item.warning.is_some(),
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
                            claim_for(&rater, &project),
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
    let out = match next_for(&state, &rater, &project).await? {
        Next::Item(item, served_at) | Next::Fresh(item, served_at) => json!({
            "status": "item",
            "item": {
                "id": item.id,
                "text": item.body,
                "warning": item.warning,
                "blurred": item.warning.is_some(),
            },
            "served_at": served_at,
            "labels": project.spec.label_schema.labels(),
            "schema": project.spec.label_schema,
            "rationale": project.spec.rationale,
            "instructions_version": project.instructions_version,
            "instructions": project.instructions,
            "qualification": qualification(&rater, &project),
        }),
        Next::Break(until) => json!({ "status": "break", "resume_at": until }),
        Next::DailyCap(until) => json!({ "status": "daily_cap", "resume_at": until }),
        Next::Done => json!({ "status": "done" }),
        Next::NoChecksLeft => json!({
            "status": "paused",
            "reason": "your gold-check accuracy fell below the project's threshold and no check item is left for a qualification round; the project team can see this on its dashboard",
            "qualification": qualification(&rater, &project),
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

/// Feedback on a gold item, shown after the rater answered.
#[derive(Debug, serde::Serialize)]
pub(crate) struct GoldFeedback {
    pub correct: bool,
    pub expected: String,
    pub note: Option<String>,
}

/// Checks and durably stores a label (or a skip when `label` is `None`) for an item served to
/// the rater (`exposure`, looked up by the caller).
pub(crate) async fn record(
    state: &AppState,
    rater: &Rater,
    exposure: Option<Exposure>,
    item_id: i64,
    label: Option<&Value>,
    rationale: Option<String>,
) -> AppResult<(i64, Option<GoldFeedback>)> {
    let project = state.db.project(rater.project_id).await?;
    let not_served = || {
        AppError::forbidden(format!(
            "this item is not served to you (an item left unanswered for {} minutes is handed to another rater)",
            project.spec.claim_minutes
        ))
    };
    let exposure = exposure.ok_or_else(not_served)?;
    let rationale = rationale.filter(|r| !r.trim().is_empty());
    if let Some(r) = &rationale
        && r.len() > 10_000
    {
        return Err(AppError::bad("rationale is longer than 10000 bytes"));
    }
    let canonical = match label {
        Some(v) => {
            if project.spec.rationale == Rationale::Required && rationale.is_none() {
                return Err(AppError::bad("a rationale is required"));
            }
            Some(project.spec.label_schema.canonical(v)?)
        }
        None => None,
    };
    let feedback = match (&canonical, &exposure.gold_label) {
        (Some(l), Some(g)) => Some(GoldFeedback {
            correct: report::gold_matches(&project.spec.label_schema, l, g),
            expected: g.clone(),
            note: exposure.gold_note.clone(),
        }),
        _ => None,
    };
    let stored = state
        .writer
        .submit(PendingAnnotation {
            project_id: project.id,
            item_id,
            rater_id: rater.id,
            pool_id: rater.pool_id,
            label: canonical,
            rationale,
            instructions_version: project.instructions_version,
            served_at: exposure.served_at,
            submitted_at: now_ms(),
            gold: feedback
                .as_ref()
                .map(|f| (f.correct, GoldPolicy::of(&project.spec))),
        })
        .await?;
    match stored {
        Stored::New(id) => Ok((id, feedback)),
        Stored::Duplicate => Err(AppError::conflict("you already answered this item")),
        Stored::NotServed => Err(not_served()),
        _ => Err(AppError::unauthorized()),
    }
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
    let (id, gold) = record(
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
    let (id, _) = record(&state, &rater, exposure, body.item_id, None, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "skipped": true })),
    )
        .into_response())
}

pub(crate) async fn own_ledger(state: &AppState, rater: &Rater) -> AppResult<report::LedgerLine> {
    let project = state.db.project(rater.project_id).await?;
    let (labelled, skipped, ms) = state.db.rater_rows(rater.id).await?;
    Ok(report::ledger_line(
        &project,
        &rater.pseudonym,
        labelled,
        skipped,
        ms,
    ))
}

async fn ledger(
    rater: Rater,
    State(state): State<AppState>,
) -> AppResult<Json<report::LedgerLine>> {
    Ok(Json(own_ledger(&state, &rater).await?))
}

async fn withdraw(
    rater: Rater,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> AppResult<Response> {
    rater.check_csrf(csrf_header(&headers))?;
    let owed = state
        .db
        .erase_rater(&state.writer, rater.id)
        .await?
        .flatten();
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

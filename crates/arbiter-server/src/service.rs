//! The operations the JSON API and the HTML pages share: each takes the state and plain
//! values, checks what the caller may do, and goes to storage through `db` and `writer`.
//! Routes only parse requests and render answers.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::auth::Rater;
use crate::db::{Exposure, Next, PendingAnnotation, Pool, Project, RaterRow, now_ms};
use crate::error::{AppError, AppResult};
use crate::model::{GoldPolicy, PREFER_NOT_TO_SAY, Rationale, parse_items};
use crate::writer::{Claim, Stored};
use crate::{AppState, ClientIp, release, report};

/// Why an import was refused.
pub(crate) enum ImportFailure {
    /// Lines that failed validation (nothing imported).
    Lines(Vec<crate::model::LineError>),
    /// Anything else (unknown project, duplicate id, storage).
    Other(AppError),
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

/// Days an invitation stays valid unless the admin says otherwise.
pub(crate) const DEFAULT_INVITATION_DAYS: i64 = 14;
/// Most raters one invitation may admit.
pub(crate) const MAX_INVITATION_USES: i64 = 1000;

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
    Ok(state
        .db
        .create_invitation(id, pool_id, max_uses, expires_at)
        .await?)
}

/// How the project's pools are released, from the current raters' pools (see `release`).
fn pool_classes(project: &Project, pools: &[Pool], raters: &[RaterRow]) -> release::PoolClasses {
    let shape: Vec<(i64, String, bool)> = pools
        .iter()
        .map(|p| (p.id, p.name.clone(), p.rule_question.is_some()))
        .collect();
    let mut sizes = BTreeMap::new();
    for r in raters {
        if let (Some(p), false) = (r.pool_id, r.withdrawn) {
            *sizes.entry(p).or_insert(0usize) += 1;
        }
    }
    release::pool_classes(release::k_of(project.spec.k_min), &shape, &sizes)
}

/// The pool classes an export labels rows with.
pub(crate) async fn export_classes(
    state: &AppState,
    project: &Project,
) -> AppResult<release::PoolClasses> {
    let pools = state.db.pools(project.id).await?;
    let raters = state.db.raters(project.id).await?;
    Ok(pool_classes(project, &pools, &raters))
}

/// The identity release in force: a new snapshot is stored first when the release rule allows
/// one (see `release`).
async fn current_release(
    state: &AppState,
    project: &Project,
    pools: &[Pool],
) -> AppResult<release::Snapshot> {
    let k = release::k_of(project.spec.k_min);
    let census = state.db.census(project.id).await?;
    // A question that chooses pools is released only as pool classes, never as counts, so the
    // two forms cannot be subtracted from each other (see `release`).
    let chooses_pools = pool_questions(pools);
    let questions: Vec<release::QuestionShape> = project
        .spec
        .questionnaire
        .iter()
        .filter(|q| !chooses_pools.contains(&q.id))
        .map(|q| {
            let stored = q.options.iter().filter(|o| *o != PREFER_NOT_TO_SAY);
            (q.id.clone(), stored.cloned().collect())
        })
        .collect();
    let mut earlier = state.db.releases(project.id).await?;
    if let Some(next) = release::next_snapshot(k, &questions, &census, &earlier, now_ms()) {
        state.db.store_release(project.id, &next).await?;
        // Another request may have stored this number first: use what is stored.
        earlier = state.db.releases(project.id).await?;
    }
    Ok(earlier.pop().unwrap_or_else(release::Snapshot::empty))
}

/// The released demographics of a project, per question, with the release they come from.
pub(crate) async fn demographics(
    state: &AppState,
    project: &Project,
) -> AppResult<(Vec<report::QuestionGroups>, release::Snapshot)> {
    let pools = state.db.pools(project.id).await?;
    let snapshot = current_release(state, project, &pools).await?;
    Ok((released_groups(project, &pools, &snapshot), snapshot))
}

fn released_groups(
    project: &Project,
    pools: &[Pool],
    snapshot: &release::Snapshot,
) -> Vec<report::QuestionGroups> {
    let questions: Vec<String> = project
        .spec
        .questionnaire
        .iter()
        .map(|q| q.id.clone())
        .collect();
    report::demographics(&questions, &pool_questions(pools), snapshot)
}

/// The dashboard and what it was built from, for the pages and the datasheet.
pub(crate) struct DashboardData {
    pub project: std::sync::Arc<Project>,
    pub dashboard: report::Dashboard,
    pub pools: Vec<Pool>,
    pub items: Vec<crate::db::Item>,
    /// Released demographics, from the same release as the dashboard.
    pub demographics: Vec<report::QuestionGroups>,
}

pub(crate) async fn build_dashboard(state: &AppState, id: i64) -> AppResult<DashboardData> {
    let project = state.db.project(id).await?;
    let items = state.db.items(id).await?;
    let pools = state.db.pools(id).await?;
    let raters = state.db.raters(id).await?;
    let classes = pool_classes(&project, &pools, &raters);
    let snapshot = current_release(state, &project, &pools).await?;
    let rows = state.db.label_rows(id).await?;
    let (owed, withdrawn) = state.db.owed(id).await?;
    let (agreement, predictability) = (state.agreement.clone(), state.predictability.clone());
    // Fitting the predictability models takes CPU time (see the crate README): off the async
    // workers, so other requests are not held up while a dashboard is built.
    let (dashboard, project, items, pools, snapshot) = tokio::task::spawn_blocking(move || {
        let dashboard = report::dashboard(
            &report::DashboardInput {
                project: &project,
                items: &items,
                pools: &pools,
                classes: &classes,
                snapshot: &snapshot,
                raters: &raters,
                rows: &rows,
                owed: &owed,
                withdrawn: withdrawn.max(0) as usize,
            },
            agreement.as_ref(),
            predictability.as_ref(),
        );
        (dashboard, project, items, pools, snapshot)
    })
    .await
    .map_err(|e| {
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("building the dashboard failed: {e}"),
        )
    })?;
    let demographics = released_groups(&project, &pools, &snapshot);
    Ok(DashboardData {
        project,
        dashboard,
        pools,
        items,
        demographics,
    })
}

/// The questions whose answers choose pools.
fn pool_questions(pools: &[Pool]) -> BTreeSet<String> {
    pools
        .iter()
        .filter_map(|p| p.rule_question.clone())
        .collect()
}

/// Takes one of the client's credential attempts (given back when the attempt succeeds);
/// refuses a client whose recent failures used up its allowance.
pub(crate) fn guard_check(state: &AppState, ip: &ClientIp) -> AppResult<()> {
    if state.guard.allow(&ip.0) {
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
    if !matches!(&out, Err(crate::db::StoreError::Refused(_))) {
        state.guard.refund(&ip.0);
    }
    Ok(out?)
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
    erase(state, rater)
        .await?
        .ok_or_else(|| AppError::forbidden("this withdrawal code was already used"))
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
    Ok(state
        .db
        .finish_questionnaire(rater, &clean, pool_id)
        .await?)
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
pub(crate) fn claim_for(rater: &Rater, project: &Project) -> Option<Claim> {
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

/// How long after storing a label the rater may take it back.
pub(crate) const UNDO_SECONDS: i64 = 120;

/// Whether the rater's latest answer can still be taken back (see [`undo_last`]).
pub(crate) fn undoable(last: Option<&crate::db::LastAnswer>, now: i64) -> bool {
    last.is_some_and(|l| !l.skipped && !l.gold && l.submitted_at >= now - UNDO_SECONDS * 1000)
}

/// Takes back the rater's latest label within [`UNDO_SECONDS`] (not a skip, which gave its
/// place to another rater, nor a gold check, whose answer was shown); the item is served again.
pub(crate) async fn undo_last(state: &AppState, rater: &Rater) -> AppResult<i64> {
    let since = now_ms() - UNDO_SECONDS * 1000;
    state
        .writer
        .undo(rater.id, since)
        .await?
        .ok_or_else(|| {
            AppError::conflict(format!(
                "there is no label to take back: only your latest label, within {} minutes, and not a skip or a check item",
                UNDO_SECONDS / 60
            ))
        })
}

pub(crate) async fn own_ledger(state: &AppState, rater: &Rater) -> AppResult<report::LedgerLine> {
    let project = state.db.project(rater.project_id).await?;
    let (labelled, skipped, ms) = state.db.rater_rows(rater.id).await?;
    Ok(report::ledger_line(
        &project,
        &rater.pseudonym,
        None,
        labelled,
        skipped,
        ms,
    ))
}

impl From<AppError> for ImportFailure {
    fn from(e: AppError) -> Self {
        ImportFailure::Other(e)
    }
}

impl From<crate::db::StoreError> for ImportFailure {
    fn from(e: crate::db::StoreError) -> Self {
        ImportFailure::Other(e.into())
    }
}

/// Erases a rater: every row, the rater row included, leaving only an anonymous record of the
/// pay owed (`Some(reference)` when work was done; `None` overall when the rater was already
/// gone) and the project's count of withdrawals. The erasure goes through the writer, so it is
/// ordered with the rater's submissions and claims; on SQLite the WAL is then checkpointed and
/// truncated, so with `secure_delete` no copy of the erased text stays in the files.
pub(crate) async fn erase(state: &AppState, rater_id: i64) -> AppResult<Option<Option<String>>> {
    let reference = state.writer.withdraw(rater_id).await?;
    state.db.checkpoint().await?;
    Ok(reference)
}

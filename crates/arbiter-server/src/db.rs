//! The one data-access layer: every SQL statement of the server lives here.
//!
//! Both back ends go through sqlx's `Any` driver with portable SQL (`$N` parameters, BIGINT
//! integers, `ON CONFLICT`, `RETURNING`), so one code path and one test suite cover SQLite and
//! PostgreSQL. Aggregates such as SUM are computed in Rust because PostgreSQL returns NUMERIC
//! for them, which `Any` cannot decode.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

use crate::model::{NewItem, ProjectSpec};
use crate::secrets::{self, SecretError};

/// Why a storage operation failed: what the caller may tell a client (not found, conflict,
/// invalid, refused, busy) or an internal failure to log. No HTTP here; `error` maps it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such record.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A credential (invitation code) was refused.
    #[error("{0}")]
    Refused(String),
    /// Every hashing slot stayed busy.
    #[error("busy; retry in a moment")]
    Busy,
    /// The write could not be stored now; retrying may work.
    #[error("{0}")]
    Unavailable(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Anything else internal.
    #[error("{0}")]
    Internal(String),
}

impl From<SecretError> for StoreError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::Busy => StoreError::Busy,
            SecretError::Failed(m) => StoreError::Internal(m),
        }
    }
}

impl From<crate::model::Invalid> for StoreError {
    fn from(e: crate::model::Invalid) -> Self {
        StoreError::Invalid(e.0)
    }
}

/// Result of a storage operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Session lifetime.
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (WAL, synchronous=FULL).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A project as stored.
#[derive(Debug, Clone)]
pub struct Project {
    /// Id.
    pub id: i64,
    /// The validated specification.
    pub spec: ProjectSpec,
    /// Current instructions version.
    pub instructions_version: i64,
    /// Current instructions text.
    pub instructions: String,
}

/// A pool as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pool {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Questionnaire rule: question id.
    pub rule_question: Option<String>,
    /// Questionnaire rule: answer.
    pub rule_answer: Option<String>,
}

/// An item as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    /// Id.
    pub id: i64,
    /// Importer's id.
    pub external_id: String,
    /// Text.
    pub body: String,
    /// Content warning.
    pub warning: Option<String>,
    /// Gold label (never sent to raters before they answer).
    #[serde(skip)]
    pub gold_label: Option<String>,
    /// Gold feedback (never sent to raters before they answer).
    #[serde(skip)]
    pub gold_note: Option<String>,
    /// Hidden until the rater chooses to show it (set per item; by default a warned item is).
    pub blur: bool,
}

/// A stored session.
#[derive(Debug, Clone)]
pub struct Session {
    /// "admin" or "rater".
    pub role: String,
    /// The rater, for rater sessions.
    pub rater_id: Option<i64>,
    /// CSRF token bound to the session.
    pub csrf: String,
    /// For admin sessions: the admin key they were opened with.
    pub admin_key: Option<String>,
}

/// An authenticated rater who has not withdrawn.
#[derive(Debug, Clone)]
pub struct Rater {
    /// Rater id.
    pub id: i64,
    /// The rater's project.
    pub project_id: i64,
    /// The rater's pool, once known.
    pub pool_id: Option<i64>,
    /// Pseudonymous id used in exports.
    pub pseudonym: String,
    /// When consent was given.
    pub consented_at: Option<i64>,
    /// When the questionnaire was answered or declined.
    pub questionnaire_at: Option<i64>,
    /// Start of the current work session (reset after a break).
    pub work_started_at: i64,
    /// Qualification round: 0 regular work, k in round k, -1 out of rounds.
    pub qual_round: i64,
    /// Gold items answered in the current round.
    pub round_answered: i64,
    /// Of which correct.
    pub round_correct: i64,
    /// The session's CSRF token.
    pub csrf: String,
}

/// An invitation as the admin sees it (never its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvitationRow {
    /// Id (the part of the code before the dash).
    pub id: i64,
    /// Pool it places raters in, if any.
    pub pool: Option<String>,
    /// Times redeemed.
    pub uses: i64,
    /// Redemptions allowed.
    pub max_uses: i64,
    /// When it lapses (ms since the epoch).
    pub expires_at: Option<i64>,
    /// Revoked by the admin.
    pub revoked: bool,
}

/// Pay owed to a rater who withdrew and was erased: no rater id, no pseudonym.
#[derive(Debug, Clone)]
pub struct OwedRow {
    /// The reference shown to the rater at withdrawal.
    pub reference: String,
    /// Items labelled.
    pub labelled: i64,
    /// Items skipped.
    pub skipped: i64,
    /// Time on task.
    pub duration_ms: i64,
}

/// What a rater gets when asking for work.
#[derive(Debug, Clone)]
pub enum Next {
    /// An item already served earlier and still open, with its serving time.
    Item(Item, i64),
    /// A newly chosen item; its exposure must be recorded before it is shown.
    Fresh(Item, i64),
    /// The session cap is reached: a break until this time (ms).
    Break(i64),
    /// The daily cap is reached: come back at this time (ms).
    DailyCap(i64),
    /// Nothing left for this rater.
    Done,
    /// In a qualification round, but no gold item is left that this rater has not seen.
    NoChecksLeft,
    /// Out of qualification rounds: no more items for this rater.
    Retired,
    /// Consent is still missing.
    NeedsConsent,
    /// The questionnaire step (answer or decline) is still open.
    NeedsQuestionnaire,
}

/// One stored annotation joined with its rater and pool, for statistics and export.
#[derive(Debug, Clone)]
pub struct LabelRow {
    /// Item id.
    pub item_id: i64,
    /// Importer's item id.
    pub external_id: String,
    /// Rater id (internal; exports use the pseudonym).
    pub rater_id: i64,
    /// Rater pseudonym.
    pub pseudonym: String,
    /// Pool id.
    pub pool_id: Option<i64>,
    /// Canonical label, `None` for skips.
    pub label: Option<String>,
    /// Rationale.
    pub rationale: Option<String>,
    /// Instructions version in force.
    pub instructions_version: i64,
    /// Time on task.
    pub duration_ms: i64,
    /// When it was stored.
    pub submitted_at: i64,
    /// Gold label of the item.
    pub gold_label: Option<String>,
}

/// Summary of one rater for the dashboard and the ledger.
#[derive(Debug, Clone)]
pub struct RaterRow {
    /// Id.
    pub id: i64,
    /// Pseudonym.
    pub pseudonym: String,
    /// Pool.
    pub pool_id: Option<i64>,
    /// Withdrawn?
    pub withdrawn: bool,
    /// Consented? A rater who joined but never consented did no work and is owed nothing.
    pub consented: bool,
    /// Qualification round: 0 regular work, k in round k, -1 out of rounds.
    pub qual_round: i64,
}

/// Where a rater stands (see [`Db::progress`]).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Answers (labels and skips) in the last 24 hours: what the daily cap counts.
    pub today: i64,
    /// Of those, answers since the current work session began: what the break counts.
    pub session: i64,
    /// Answers ever: what the rater is paid for.
    pub answered: i64,
    /// The latest answer.
    pub last: Option<LastAnswer>,
}

/// A rater's latest answer.
#[derive(Debug, Clone)]
pub struct LastAnswer {
    /// When it was stored.
    pub submitted_at: i64,
    /// Its item.
    pub item_id: i64,
    /// A skip rather than a label.
    pub skipped: bool,
    /// The instructions version it was given under.
    pub instructions_version: i64,
    /// Whether the item is a gold check.
    pub gold: bool,
}

/// What the server knows about an item served to a rater, for checking a submission.
#[derive(Debug, Clone)]
pub struct Exposure {
    /// When it was served.
    pub served_at: i64,
    /// Gold label, if it is a gold item.
    pub gold_label: Option<String>,
    /// Gold feedback.
    pub gold_note: Option<String>,
    /// Hidden until the rater shows it.
    pub blur: bool,
}

/// An annotation waiting for the group-commit writer.
#[derive(Debug, Clone)]
pub struct PendingAnnotation {
    /// Project.
    pub project_id: i64,
    /// Item.
    pub item_id: i64,
    /// Rater.
    pub rater_id: i64,
    /// The rater's pool, whose per-item count the label fills.
    pub pool_id: Option<i64>,
    /// Canonical label, `None` for a skip.
    pub label: Option<String>,
    /// Rationale.
    pub rationale: Option<String>,
    /// Instructions version the item was served under.
    pub instructions_version: i64,
    /// When the item was served.
    pub served_at: i64,
    /// When the submission arrived.
    pub submitted_at: i64,
    /// For a label on a gold item: whether it matched, and the project's gold policy.
    pub gold: Option<(bool, crate::model::GoldPolicy)>,
}

/// The database handle shared by all handlers.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    projects: Arc<RwLock<HashMap<i64, Arc<Project>>>>,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "claims_and_requalification",
        include_str!("../migrations/0002_claims_and_requalification.sql"),
    ),
    (3, "privacy", include_str!("../migrations/0003_privacy.sql")),
    (4, "blur", include_str!("../migrations/0004_blur.sql")),
];

/// Creates the SQLite file readable by its owner only (0600) before SQLite opens it; SQLite
/// gives the WAL and shared-memory files the same mode.
fn create_private(path: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let file = path.split('?').next().unwrap_or(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating the database file {file}")),
    }
}

impl Db {
    /// Connects to `sqlite:PATH` or `postgres://…` and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        use anyhow::Context;
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                anyhow::bail!("--db sqlite:PATH needs a file path");
            }
            create_private(path)?;
            let sep = if path.contains('?') { '&' } else { '?' };
            (Backend::Sqlite, format!("sqlite://{path}{sep}mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            anyhow::bail!("--db must be sqlite:PATH or postgres://…, got {url:?}");
        };
        let options = AnyConnectOptions::from_str(&url).context("parsing the database URL")?;
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; synchronous=FULL fsyncs the WAL on
                    // every commit, so an acknowledged write survives kill -9 and power loss.
                    // secure_delete overwrites deleted rows and freed pages, so an erased
                    // rater's text does not linger in the file.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA secure_delete = ON",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA foreign_keys = ON",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = pool_options
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to {}", redact(&url)))?;
        let db = Db {
            pool,
            backend,
            projects: Arc::default(),
        };
        db.migrate().await.context("applying migrations")?;
        Ok(db)
    }

    /// The back end in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for the writer.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS arbiter_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let id_type = match self.backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            let done: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM arbiter_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            let sql = sql.replace("@ID@", id_type);
            for stmt in sql.split(';') {
                let body: String = stmt
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                if !body.trim().is_empty() {
                    sqlx::query(sqlx::AssertSqlSafe(body))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query(
                "INSERT INTO arbiter_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(*version)
            .bind(*name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    // ---- projects -------------------------------------------------------------------------

    /// Stores a validated project with instructions version 1 and its pools.
    pub async fn create_project(&self, spec: &ProjectSpec) -> StoreResult<i64> {
        let now = now_ms();
        let spec_json =
            serde_json::to_string(spec).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO projects (name, spec, instructions_version, created_at) VALUES ($1, $2, 1, $3) RETURNING id",
        )
        .bind(&spec.name)
        .bind(&spec_json)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO instructions (project_id, version, body, created_at) VALUES ($1, 1, $2, $3)")
            .bind(id)
            .bind(&spec.instructions)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for pool in &spec.pools {
            sqlx::query("INSERT INTO pools (project_id, name, rule_question, rule_answer) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(&pool.name)
                .bind(pool.rule.as_ref().map(|r| r.question.clone()))
                .bind(pool.rule.as_ref().map(|r| r.answer.clone()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// A project, cached in memory (the server is the only writer of projects).
    pub async fn project(&self, id: i64) -> StoreResult<Arc<Project>> {
        if let Some(p) = self.projects.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(p);
        }
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT spec, instructions_version FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let (spec, version) = row.ok_or_else(|| StoreError::NotFound("project"))?;
        let (instructions,): (String,) =
            sqlx::query_as("SELECT body FROM instructions WHERE project_id = $1 AND version = $2")
                .bind(id)
                .bind(version)
                .fetch_one(&self.pool)
                .await?;
        let spec: ProjectSpec =
            serde_json::from_str(&spec).map_err(|e| StoreError::Internal(e.to_string()))?;
        let project = Arc::new(Project {
            id,
            spec,
            instructions_version: version,
            instructions,
        });
        if let Ok(mut m) = self.projects.write() {
            m.insert(id, project.clone());
        }
        Ok(project)
    }

    /// All project ids and names.
    pub async fn projects(&self) -> StoreResult<Vec<(i64, String)>> {
        Ok(sqlx::query_as("SELECT id, name FROM projects ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Publishes a new instructions version; later annotations record it.
    pub async fn set_instructions(&self, project_id: i64, body: &str) -> StoreResult<i64> {
        self.project(project_id).await?;
        let mut tx = self.pool.begin().await?;
        let (version,): (i64,) = sqlx::query_as(
            "UPDATE projects SET instructions_version = instructions_version + 1 WHERE id = $1 RETURNING instructions_version",
        )
        .bind(project_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO instructions (project_id, version, body, created_at) VALUES ($1, $2, $3, $4)")
            .bind(project_id)
            .bind(version)
            .bind(body)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if let Ok(mut m) = self.projects.write() {
            m.remove(&project_id);
        }
        Ok(version)
    }

    /// Every instructions version with its text and the number of labels made under it.
    pub async fn instruction_versions(
        &self,
        project_id: i64,
    ) -> StoreResult<Vec<(i64, String, i64)>> {
        let versions: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, body FROM instructions WHERE project_id = $1 ORDER BY version",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        let counts: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT instructions_version, COUNT(*) FROM annotations WHERE project_id = $1 AND skipped = 0 GROUP BY instructions_version",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        let counts: HashMap<i64, i64> = counts.into_iter().collect();
        Ok(versions
            .into_iter()
            .map(|(v, b)| (v, b, counts.get(&v).copied().unwrap_or(0)))
            .collect())
    }

    /// The project's pools.
    pub async fn pools(&self, project_id: i64) -> StoreResult<Vec<Pool>> {
        let rows: Vec<(i64, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT id, name, rule_question, rule_answer FROM pools WHERE project_id = $1 ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, rule_question, rule_answer)| Pool {
                id,
                name,
                rule_question,
                rule_answer,
            })
            .collect())
    }

    /// Imports items; an id that already exists in the project is refused as a conflict.
    pub async fn import_items(&self, project_id: i64, items: &[NewItem]) -> StoreResult<usize> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for item in items {
            let inserted = sqlx::query(
                "INSERT INTO items (project_id, external_id, body, warning, gold_label, gold_note, created_at, blur) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (project_id, external_id) DO NOTHING",
            )
            .bind(project_id)
            .bind(&item.id)
            .bind(&item.text)
            .bind(item.warning.clone())
            .bind(item.gold_label.clone())
            .bind(item.gold_note.clone())
            .bind(now)
            .bind(item.blur.map(i64::from))
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!(
                    "item id {:?} already exists in this project; nothing was imported",
                    item.id
                )));
            }
            sqlx::query(
                "INSERT INTO item_pool_counts (item_id, pool_id, n) SELECT i.id, p.id, 0 FROM items i JOIN pools p ON p.project_id = i.project_id WHERE i.project_id = $1 AND i.external_id = $2",
            )
            .bind(project_id)
            .bind(&item.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(items.len())
    }

    /// All items of a project.
    pub async fn items(&self, project_id: i64) -> StoreResult<Vec<Item>> {
        let rows: Vec<ItemTuple> = sqlx::query_as(
            "SELECT id, external_id, body, warning, gold_label, gold_note, blur FROM items WHERE project_id = $1 ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(item_from).collect())
    }

    // ---- invitations, raters, sessions ----------------------------------------------------

    /// Creates an invitation code `ID-SECRET`; only an Argon2 hash of the secret is stored,
    /// with the secret's first 4 hex digits as a cheap pre-check. It lapses at `expires_at`.
    pub async fn create_invitation(
        &self,
        project_id: i64,
        pool_id: Option<i64>,
        max_uses: i64,
        expires_at: i64,
    ) -> StoreResult<String> {
        let secret = secrets::random_hex(16)?;
        let hash = secrets::hash_secret_blocking(secret.clone()).await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO invitations (project_id, pool_id, secret_hash, max_uses, uses, created_at, expires_at, prefix) VALUES ($1, $2, $3, $4, 0, $5, $6, $7) RETURNING id",
        )
        .bind(project_id)
        .bind(pool_id)
        .bind(hash)
        .bind(max_uses)
        .bind(now_ms())
        .bind(expires_at)
        .bind(&secret[..4])
        .fetch_one(&self.pool)
        .await?;
        Ok(format!("{id}-{secret}"))
    }

    /// The project's invitations: `(id, pool, uses, max_uses, expires_at, revoked)`.
    pub async fn invitations(&self, project_id: i64) -> StoreResult<Vec<InvitationRow>> {
        type T = (i64, Option<String>, i64, i64, Option<i64>, Option<i64>);
        let rows: Vec<T> = sqlx::query_as(
            "SELECT i.id, p.name, i.uses, i.max_uses, i.expires_at, i.revoked_at FROM invitations i LEFT JOIN pools p ON p.id = i.pool_id WHERE i.project_id = $1 ORDER BY i.id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, pool, uses, max_uses, expires_at, revoked)| InvitationRow {
                    id,
                    pool,
                    uses,
                    max_uses,
                    expires_at,
                    revoked: revoked.is_some(),
                },
            )
            .collect())
    }

    /// Revokes an invitation of a project; true when it existed.
    pub async fn revoke_invitation(&self, project_id: i64, id: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE invitations SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND project_id = $3",
        )
        .bind(now_ms())
        .bind(id)
        .bind(project_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Redeems an invitation code: a new rater and a session `(token, csrf, pseudonym)`.
    ///
    /// Every refusal reads the same. An unknown id, a wrong prefix, an expired, revoked or
    /// used-up invitation is refused without hashing, so guessing costs the server one indexed
    /// read; only a code whose prefix matches pays the memory-hard check, and those run a few
    /// at a time ([`secrets::verify_secret_blocking`]).
    pub async fn join(&self, code: &str) -> StoreResult<(String, String, String)> {
        let invalid = || StoreError::Refused("invalid, expired or used-up invitation code".into());
        let (id, secret) = code.trim().split_once('-').ok_or_else(invalid)?;
        let id: i64 = id.parse().map_err(|_| invalid())?;
        let now = now_ms();
        type T = (
            i64,
            Option<i64>,
            String,
            Option<String>,
            i64,
            i64,
            Option<i64>,
            Option<i64>,
        );
        let row: Option<T> = sqlx::query_as(
            "SELECT project_id, pool_id, secret_hash, prefix, uses, max_uses, expires_at, revoked_at FROM invitations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let prefix_ok = |p: &Option<String>| match p {
            Some(p) => secrets::ct_eq(p, secret.get(..4)),
            None => true,
        };
        let (project_id, pool_id, hash) = match row {
            Some((project, pool, hash, prefix, uses, max, expires, None))
                if prefix_ok(&prefix) && uses < max && expires.is_none_or(|e| e > now) =>
            {
                (project, pool, hash)
            }
            _ => return Err(invalid()),
        };
        if !secrets::verify_secret_blocking(secret.to_string(), hash).await? {
            return Err(invalid());
        }
        let pseudonym = format!("r-{}", secrets::random_hex(6)?);
        let mut tx = self.pool.begin().await?;
        let used = sqlx::query(
            "UPDATE invitations SET uses = uses + 1 WHERE id = $1 AND uses < max_uses AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() == 0 {
            return Err(invalid());
        }
        let (rater_id,): (i64,) = sqlx::query_as(
            "INSERT INTO raters (project_id, pool_id, invitation_id, pseudonym, work_started_at, created_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(project_id)
        .bind(pool_id)
        .bind(id)
        .bind(&pseudonym)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let (token, csrf) = insert_session(&mut tx, "rater", Some(rater_id), None).await?;
        tx.commit().await?;
        Ok((token, csrf, pseudonym))
    }

    /// A new admin session `(token, csrf)`, bound to the admin key in force (`key_id`).
    pub async fn admin_session(&self, key_id: &str) -> StoreResult<(String, String)> {
        let mut tx = self.pool.begin().await?;
        let out = insert_session(&mut tx, "admin", None, Some(key_id)).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The unexpired session with this token hash.
    pub async fn session(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        type T = (String, Option<i64>, String, i64, Option<String>);
        let row: Option<T> = sqlx::query_as(
            "SELECT role, rater_id, csrf, expires_at, admin_key FROM sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .filter(|r| r.3 > now_ms())
            .map(|(role, rater_id, csrf, _, admin_key)| Session {
                role,
                rater_id,
                csrf,
                admin_key,
            }))
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The rater behind an unexpired rater session, in one query.
    pub async fn rater_by_session(&self, token_hash: &str) -> StoreResult<Option<Rater>> {
        Ok(self
            .rater_and_exposure(token_hash, 0)
            .await?
            .map(|(rater, _)| rater))
    }

    /// The rater behind an unexpired rater session and, in the same query, their exposure to
    /// `item_id` (if that item was served to them): one round trip for a submission.
    pub async fn rater_and_exposure(
        &self,
        token_hash: &str,
        item_id: i64,
    ) -> StoreResult<Option<(Rater, Option<Exposure>)>> {
        type T = (
            i64,
            i64,
            Option<i64>,
            String,
            Option<i64>,
            Option<i64>,
            i64,
            i64,
            i64,
            i64,
            String,
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<i64>,
        );
        // The blur column folds in its default (NULL follows the warning): tuples stop at 16.
        let row: Option<T> = sqlx::query_as(
            "SELECT r.id, r.project_id, r.pool_id, r.pseudonym, r.consented_at, r.questionnaire_at, r.work_started_at, r.qual_round, r.round_n, r.round_ok, s.csrf, s.expires_at, e.served_at, i.gold_label, i.gold_note, COALESCE(i.blur, CASE WHEN i.warning IS NULL THEN 0 ELSE 1 END) \
             FROM sessions s JOIN raters r ON r.id = s.rater_id \
             LEFT JOIN exposures e ON e.rater_id = r.id AND e.item_id = $2 \
             LEFT JOIN items i ON i.id = e.item_id \
             WHERE s.token_hash = $1 AND s.role = 'rater' AND r.withdrawn_at IS NULL",
        )
        .bind(token_hash)
        .bind(item_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.filter(|t| t.11 > now_ms()).map(|t| {
            let exposure = t.12.map(|served_at| Exposure {
                served_at,
                gold_label: t.13,
                gold_note: t.14,
                blur: t.15.is_some_and(|b| b != 0),
            });
            (
                Rater {
                    id: t.0,
                    project_id: t.1,
                    pool_id: t.2,
                    pseudonym: t.3,
                    consented_at: t.4,
                    questionnaire_at: t.5,
                    work_started_at: t.6,
                    qual_round: t.7,
                    round_answered: t.8,
                    round_correct: t.9,
                    csrf: t.10,
                },
                exposure,
            )
        }))
    }

    /// Records informed consent and, the first time, issues the rater's withdrawal code
    /// `ID-SECRET` (only a SHA-256 of the 128-bit secret is kept, so it is shown once).
    pub async fn consent(&self, rater_id: i64) -> StoreResult<Option<String>> {
        let secret = secrets::random_hex(16)?;
        let done = sqlx::query(
            "UPDATE raters SET consented_at = $1, withdraw_hash = $2 WHERE id = $3 AND consented_at IS NULL",
        )
        .bind(now_ms())
        .bind(secrets::sha256_hex(&secret))
        .bind(rater_id)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then(|| format!("W{rater_id}-{secret}")))
    }

    /// The rater a withdrawal code belongs to, checked in constant time; `None` for any
    /// wrong, malformed or already used code.
    pub async fn rater_by_withdrawal_code(&self, code: &str) -> StoreResult<Option<i64>> {
        let Some((id, secret)) = code
            .trim()
            .strip_prefix('W')
            .and_then(|c| c.split_once('-'))
        else {
            return Ok(None);
        };
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT withdraw_hash FROM raters WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let presented = secrets::sha256_hex(secret);
        let stored = row.and_then(|r| r.0).unwrap_or_default();
        Ok(secrets::ct_eq(&stored, Some(&presented)).then_some(id))
    }

    /// The current rater of a project with this pseudonym.
    pub async fn rater_by_pseudonym(
        &self,
        project_id: i64,
        pseudonym: &str,
    ) -> StoreResult<Option<i64>> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM raters WHERE project_id = $1 AND pseudonym = $2")
                .bind(project_id)
                .bind(pseudonym)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// Stores questionnaire answers (possibly none) and settles the rater's pool.
    pub async fn finish_questionnaire(
        &self,
        rater: &Rater,
        answers: &[(String, String)],
        pool_id: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM answers WHERE rater_id = $1")
            .bind(rater.id)
            .execute(&mut *tx)
            .await?;
        for (q, a) in answers {
            sqlx::query("INSERT INTO answers (rater_id, question, answer) VALUES ($1, $2, $3)")
                .bind(rater.id)
                .bind(q)
                .bind(a)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE raters SET questionnaire_at = $1, pool_id = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(pool_id)
            .bind(rater.id)
            .execute(&mut *tx)
            .await?;
        if rater.questionnaire_at.is_none() {
            // A rater entering the census: identity releases move only after k such changes.
            sqlx::query("UPDATE projects SET rater_changes = rater_changes + 1 WHERE id = $1")
                .bind(rater.project_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// SQLite: moves every WAL frame into the database file and truncates the WAL to zero
    /// bytes, retrying while readers hold old frames. PostgreSQL: nothing (see the README).
    pub async fn checkpoint(&self) -> StoreResult<()> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        for _ in 0..50 {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
            if busy == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(StoreError::Internal(
            "the WAL could not be checkpointed after an erasure: readers kept it busy".into(),
        ))
    }

    /// Deletes expired sessions; returns how many.
    pub async fn purge_sessions(&self, now: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// A stored setting, created from `make` the first time.
    pub async fn setting(
        &self,
        name: &str,
        make: impl FnOnce() -> StoreResult<String>,
    ) -> StoreResult<String> {
        let value = make()?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&value)
        .execute(&self.pool)
        .await?;
        let (stored,): (String,) = sqlx::query_as("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(stored)
    }

    // ---- pools ---------------------------------------------------------------------------

    /// Adds a pool to a project (validated against its questionnaire): every existing item
    /// needs the new pool's overlap too. The stored spec lists the pool as well.
    pub async fn add_pool(
        &self,
        project_id: i64,
        pool: &crate::model::PoolSpec,
    ) -> StoreResult<i64> {
        let project = self.project(project_id).await?;
        let mut spec = project.spec.clone();
        spec.pools.push(pool.clone());
        let spec = spec.validate()?;
        if let Some(rule) = &pool.rule {
            // Answers already released as counts must not start being released per record
            // too: the two forms could then be subtracted from each other.
            let counted = self
                .releases(project_id)
                .await?
                .iter()
                .any(|r| r.questions.iter().any(|(q, _)| *q == rule.question));
            if counted {
                return Err(StoreError::Conflict(format!(
                    "the answers to {:?} were already published as counts; a pool chosen by that question would also publish them per rater. Choose pools by another question, or by invitation",
                    rule.question
                )));
            }
        }
        let spec_json =
            serde_json::to_string(&spec).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let exists: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM pools WHERE project_id = $1 AND name = $2")
                .bind(project_id)
                .bind(&pool.name)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "the project already has a pool named {:?}",
                pool.name
            )));
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO pools (project_id, name, rule_question, rule_answer) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(project_id)
        .bind(&pool.name)
        .bind(pool.rule.as_ref().map(|r| r.question.clone()))
        .bind(pool.rule.as_ref().map(|r| r.answer.clone()))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO item_pool_counts (item_id, pool_id, n) SELECT id, $1, 0 FROM items WHERE project_id = $2",
        )
        .bind(id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE projects SET spec = $1 WHERE id = $2")
            .bind(&spec_json)
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if let Ok(mut m) = self.projects.write() {
            m.remove(&project_id);
        }
        Ok(id)
    }

    // ---- assignment ------------------------------------------------------------------------

    /// The next unit of work for a rater: an open exposure first, then the least-annotated
    /// item (within the rater's pool) that the pool still needs, subject to exposure caps.
    pub async fn next(&self, rater: &Rater, project: &Project) -> StoreResult<Next> {
        if rater.consented_at.is_none() {
            return Ok(Next::NeedsConsent);
        }
        let Some(pool_id) = rater.pool_id.filter(|_| rater.questionnaire_at.is_some()) else {
            return Ok(Next::NeedsQuestionnaire);
        };
        if rater.qual_round < 0 {
            return Ok(Next::Retired);
        }
        let qualifying = rater.qual_round > 0;
        let now = now_ms();
        // During a qualification round only gold items are served; open regular items wait
        // (and give their place back after claim_minutes).
        let open: Option<ItemTupleServed> = sqlx::query_as(
            "SELECT i.id, i.external_id, i.body, i.warning, i.gold_label, i.gold_note, i.blur, e.served_at FROM exposures e JOIN items i ON i.id = e.item_id WHERE e.rater_id = $1 AND ($2 = 0 OR i.gold_label IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = e.item_id AND a.rater_id = $1) ORDER BY e.served_at LIMIT 1",
        )
        .bind(rater.id)
        .bind(i64::from(qualifying))
        .fetch_optional(&self.pool)
        .await?;
        if let Some((id, ext, body, warning, gold, note, blur, served_at)) = open {
            return Ok(Next::Item(
                item_from((id, ext, body, warning, gold, note, blur)),
                served_at,
            ));
        }
        let spec = &project.spec;
        let day_ago = now - 24 * 3600 * 1000;
        let recent: Vec<(i64,)> = sqlx::query_as(
            "SELECT submitted_at FROM annotations WHERE rater_id = $1 AND submitted_at >= $2 ORDER BY submitted_at",
        )
        .bind(rater.id)
        .bind(day_ago)
        .fetch_all(&self.pool)
        .await?;
        if recent.len() as i64 >= spec.daily_cap {
            return Ok(Next::DailyCap(recent[0].0 + 24 * 3600 * 1000));
        }
        let in_session: Vec<i64> = recent
            .iter()
            .map(|r| r.0)
            .filter(|t| *t >= rater.work_started_at)
            .collect();
        if in_session.len() as i64 >= spec.session_cap {
            let last = in_session.last().copied().unwrap_or(now);
            let resume = last + spec.break_minutes * 60 * 1000;
            if now < resume {
                return Ok(Next::Break(resume));
            }
            sqlx::query("UPDATE raters SET work_started_at = $1 WHERE id = $2")
                .bind(now)
                .bind(rater.id)
                .execute(&self.pool)
                .await?;
        }
        if qualifying {
            // A qualification round: gold items this rater has not seen, regardless of the
            // pool's overlap (they are checks, and take no place in it).
            let gold: Option<ItemTuple> = sqlx::query_as(
                "SELECT i.id, i.external_id, i.body, i.warning, i.gold_label, i.gold_note, i.blur FROM items i \
                 WHERE i.project_id = $1 AND i.gold_label IS NOT NULL \
                   AND NOT EXISTS (SELECT 1 FROM exposures e WHERE e.item_id = i.id AND e.rater_id = $2) \
                 ORDER BY i.id LIMIT 1",
            )
            .bind(project.id)
            .bind(rater.id)
            .fetch_optional(&self.pool)
            .await?;
            return Ok(match gold {
                Some(row) => Next::Fresh(item_from(row), now),
                None => Next::NoChecksLeft,
            });
        }
        // Least-annotated first within the rater's pool: walk the (pool, n, item) index and take
        // the first item this rater has not done that the pool still needs.
        let candidate: Option<ItemTuple> = sqlx::query_as(
            "SELECT i.id, i.external_id, i.body, i.warning, i.gold_label, i.gold_note, i.blur \
             FROM item_pool_counts c JOIN items i ON i.id = c.item_id \
             WHERE c.pool_id = $1 AND c.n < $2 \
               AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = c.item_id AND a.rater_id = $3) \
             ORDER BY c.n, c.item_id LIMIT 1",
        )
        .bind(pool_id)
        .bind(spec.overlap_per_pool)
        .bind(rater.id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = candidate else {
            return Ok(Next::Done);
        };
        // The caller records the exposure through the group-commit writer before showing it.
        Ok(Next::Fresh(item_from(row), now))
    }

    /// Up to `n` items for a client that prefetches: open exposures first, then new items,
    /// never more than the session and daily caps leave room for. New items come back with
    /// `true` and must be recorded as served (through the writer) before they are shown.
    pub async fn prefetch(
        &self,
        rater: &Rater,
        project: &Project,
        n: i64,
    ) -> StoreResult<Vec<(Item, i64, bool)>> {
        let Some(pool_id) = rater.pool_id.filter(|_| {
            rater.questionnaire_at.is_some()
                && rater.consented_at.is_some()
                && rater.qual_round == 0
        }) else {
            return Ok(Vec::new());
        };
        let now = now_ms();
        let open: Vec<ItemTupleServed> = sqlx::query_as(
            "SELECT i.id, i.external_id, i.body, i.warning, i.gold_label, i.gold_note, i.blur, e.served_at FROM exposures e JOIN items i ON i.id = e.item_id WHERE e.rater_id = $1 AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = e.item_id AND a.rater_id = $1) ORDER BY e.served_at LIMIT $2",
        )
        .bind(rater.id)
        .bind(n)
        .fetch_all(&self.pool)
        .await?;
        let spec = &project.spec;
        let recent: Vec<(i64,)> = sqlx::query_as(
            "SELECT submitted_at FROM annotations WHERE rater_id = $1 AND submitted_at >= $2",
        )
        .bind(rater.id)
        .bind(now - 24 * 3600 * 1000)
        .fetch_all(&self.pool)
        .await?;
        let in_session = recent
            .iter()
            .filter(|r| r.0 >= rater.work_started_at)
            .count() as i64;
        let n_open = open.len() as i64;
        let room = (n - n_open)
            .min(spec.daily_cap - recent.len() as i64 - n_open)
            .min(spec.session_cap - in_session - n_open);
        let mut out: Vec<(Item, i64, bool)> = open
            .into_iter()
            .map(|(id, ext, body, warning, gold, note, blur, served)| {
                (
                    item_from((id, ext, body, warning, gold, note, blur)),
                    served,
                    false,
                )
            })
            .collect();
        if room > 0 {
            let fresh: Vec<ItemTuple> = sqlx::query_as(
                "SELECT i.id, i.external_id, i.body, i.warning, i.gold_label, i.gold_note, i.blur \
                 FROM item_pool_counts c JOIN items i ON i.id = c.item_id \
                 WHERE c.pool_id = $1 AND c.n < $2 \
                   AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = c.item_id AND a.rater_id = $3) \
                   AND NOT EXISTS (SELECT 1 FROM exposures e WHERE e.item_id = c.item_id AND e.rater_id = $3) \
                 ORDER BY c.n, c.item_id LIMIT $4",
            )
            .bind(pool_id)
            .bind(spec.overlap_per_pool)
            .bind(rater.id)
            .bind(room)
            .fetch_all(&self.pool)
            .await?;
            out.extend(fresh.into_iter().map(|t| (item_from(t), now, true)));
        }
        Ok(out)
    }

    /// When an item was served to this rater, if it was, with its gold label.
    pub async fn exposure(&self, rater_id: i64, item_id: i64) -> StoreResult<Option<Exposure>> {
        type Row = (
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT e.served_at, i.gold_label, i.gold_note, i.warning, i.blur FROM exposures e JOIN items i ON i.id = e.item_id WHERE e.rater_id = $1 AND e.item_id = $2",
        )
        .bind(rater_id)
        .bind(item_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(served_at, gold_label, gold_note, warning, blur)| Exposure {
                served_at,
                gold_label,
                gold_note,
                blur: blurred(blur, warning.is_some()),
            },
        ))
    }

    /// Unanswered claims older than `cutoff` (ms) in a project: `(rater, item)` pairs whose
    /// places the writer gives back.
    pub async fn stale_claims(&self, project_id: i64, cutoff: i64) -> StoreResult<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT e.rater_id, e.item_id FROM exposures e JOIN items i ON i.id = e.item_id \
             WHERE e.claimed = 1 AND e.served_at < $1 AND i.project_id = $2 \
               AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = e.item_id AND a.rater_id = e.rater_id)",
        )
        .bind(cutoff)
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?)
    }

    // ---- statistics and export -------------------------------------------------------------

    /// Every stored annotation (labels and skips) of the project's current raters.
    pub async fn label_rows(&self, project_id: i64) -> StoreResult<Vec<LabelRow>> {
        type T = (
            i64,
            String,
            i64,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
            i64,
            i64,
            i64,
            Option<String>,
        );
        let rows: Vec<T> = sqlx::query_as(
            "SELECT a.item_id, i.external_id, a.rater_id, r.pseudonym, r.pool_id, a.label, a.rationale, a.instructions_version, a.duration_ms, a.submitted_at, i.gold_label \
             FROM annotations a JOIN raters r ON r.id = a.rater_id JOIN items i ON i.id = a.item_id \
             WHERE a.project_id = $1 AND r.withdrawn_at IS NULL ORDER BY a.item_id, a.id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|t| LabelRow {
                item_id: t.0,
                external_id: t.1,
                rater_id: t.2,
                pseudonym: t.3,
                pool_id: t.4,
                label: t.5,
                rationale: t.6,
                instructions_version: t.7,
                duration_ms: t.8,
                submitted_at: t.9,
                gold_label: t.10,
            })
            .collect())
    }

    /// Where a rater stands, for the line above each item: answers today and this session,
    /// answers ever, and the latest answer. Counted in the database (the page is served for
    /// every item, and a rater's answers only grow).
    pub async fn progress(&self, rater_id: i64) -> StoreResult<Progress> {
        let day_ago = now_ms() - 24 * 3600 * 1000;
        let (answered, today, session): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(a.id), COUNT(CASE WHEN a.submitted_at >= $2 THEN 1 END), COUNT(CASE WHEN a.submitted_at >= $2 AND a.submitted_at >= r.work_started_at THEN 1 END) \
             FROM raters r LEFT JOIN annotations a ON a.rater_id = r.id WHERE r.id = $1",
        )
        .bind(rater_id)
        .bind(day_ago)
        .fetch_one(&self.pool)
        .await?;
        type Row = (i64, i64, i64, i64, Option<String>);
        let last: Option<Row> = sqlx::query_as(
            "SELECT a.submitted_at, a.item_id, a.skipped, a.instructions_version, i.gold_label FROM annotations a JOIN items i ON i.id = a.item_id WHERE a.rater_id = $1 ORDER BY a.submitted_at DESC, a.id DESC LIMIT 1",
        )
        .bind(rater_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Progress {
            today,
            session,
            answered,
            last: last.map(|r| LastAnswer {
                submitted_at: r.0,
                item_id: r.1,
                skipped: r.2 != 0,
                instructions_version: r.3,
                gold: r.4.is_some(),
            }),
        })
    }

    /// Labels and skips of one rater (for their own ledger).
    pub async fn rater_rows(&self, rater_id: i64) -> StoreResult<(i64, i64, i64)> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT skipped, duration_ms FROM annotations WHERE rater_id = $1")
                .bind(rater_id)
                .fetch_all(&self.pool)
                .await?;
        let skipped = rows.iter().filter(|r| r.0 != 0).count() as i64;
        let total_ms = rows.iter().map(|r| r.1).sum();
        Ok((rows.len() as i64 - skipped, skipped, total_ms))
    }

    /// All raters of a project.
    pub async fn raters(&self, project_id: i64) -> StoreResult<Vec<RaterRow>> {
        type T = (i64, String, Option<i64>, Option<i64>, Option<i64>, i64);
        let rows: Vec<T> = sqlx::query_as(
            "SELECT id, pseudonym, pool_id, withdrawn_at, consented_at, qual_round FROM raters WHERE project_id = $1 ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, pseudonym, pool_id, w, c, qual_round)| RaterRow {
                id,
                pseudonym,
                pool_id,
                withdrawn: w.is_some(),
                consented: c.is_some(),
                qual_round,
            })
            .collect())
    }

    /// Questionnaire answers of current raters as `(rater_id, question, answer)`; callers must
    /// only ever publish group counts of at least k.
    pub async fn answers(&self, project_id: i64) -> StoreResult<Vec<(i64, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT a.rater_id, a.question, a.answer FROM answers a JOIN raters r ON r.id = a.rater_id WHERE r.project_id = $1 AND r.withdrawn_at IS NULL",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Live counts for the next identity release (see `release`): raters past the
    /// questionnaire step and their answers per question.
    pub async fn census(&self, project_id: i64) -> StoreResult<crate::release::Census> {
        let (raters,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM raters WHERE project_id = $1 AND questionnaire_at IS NOT NULL AND withdrawn_at IS NULL",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        let mut census = crate::release::Census {
            raters: raters.max(0) as usize,
            ..Default::default()
        };
        for (_, question, answer) in self.answers(project_id).await? {
            *census
                .answers
                .entry(question)
                .or_default()
                .entry(answer)
                .or_default() += 1;
        }
        let (changes,): (i64,) = sqlx::query_as("SELECT rater_changes FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_one(&self.pool)
            .await?;
        census.changes = changes.max(0) as u64;
        Ok(census)
    }

    /// Every identity release of a project, oldest first.
    pub async fn releases(&self, project_id: i64) -> StoreResult<Vec<crate::release::Snapshot>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT body FROM releases WHERE project_id = $1 ORDER BY seq")
                .bind(project_id)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(b,)| {
                serde_json::from_str(&b)
                    .map_err(|e| StoreError::Internal(format!("stored release: {e}")))
            })
            .collect()
    }

    /// Stores a new release unless another request stored the same sequence number first.
    pub async fn store_release(
        &self,
        project_id: i64,
        snapshot: &crate::release::Snapshot,
    ) -> StoreResult<()> {
        let body =
            serde_json::to_string(snapshot).map_err(|e| StoreError::Internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO releases (project_id, seq, taken_at, body) VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, seq) DO NOTHING",
        )
        .bind(project_id)
        .bind(snapshot.seq)
        .bind(snapshot.taken_at)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pay owed to erased raters, and how many raters withdrew.
    pub async fn owed(&self, project_id: i64) -> StoreResult<(Vec<OwedRow>, i64)> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT reference, labelled, skipped, duration_ms FROM owed WHERE project_id = $1 ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        let (withdrawn,): (i64,) = sqlx::query_as("SELECT withdrawn FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((
            rows.into_iter()
                .map(|(reference, labelled, skipped, duration_ms)| OwedRow {
                    reference,
                    labelled,
                    skipped,
                    duration_ms,
                })
                .collect(),
            withdrawn,
        ))
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

type ItemTuple = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);
type ItemTupleServed = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);

/// Whether an item is blurred: as stored, or (NULL) when it carries a warning.
fn blurred(stored: Option<i64>, warned: bool) -> bool {
    stored.map_or(warned, |b| b != 0)
}

fn item_from(t: ItemTuple) -> Item {
    Item {
        id: t.0,
        external_id: t.1,
        body: t.2,
        blur: blurred(t.6, t.3.is_some()),
        warning: t.3,
        gold_label: t.4,
        gold_note: t.5,
    }
}

async fn insert_session(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    role: &str,
    rater_id: Option<i64>,
    admin_key: Option<&str>,
) -> StoreResult<(String, String)> {
    let token = secrets::random_hex(32)?;
    let csrf = secrets::random_hex(16)?;
    sqlx::query("INSERT INTO sessions (token_hash, role, rater_id, csrf, expires_at, admin_key) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(secrets::sha256_hex(&token))
        .bind(role)
        .bind(rater_id)
        .bind(&csrf)
        .bind(now_ms() + SESSION_SECONDS * 1000)
        .bind(admin_key.map(str::to_string))
        .execute(&mut **tx)
        .await?;
    Ok((token, csrf))
}

/// Hides a password in a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

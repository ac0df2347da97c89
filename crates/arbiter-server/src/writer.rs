//! Group commit for annotations, exposures and overlap claims.
//!
//! Every annotation must be durable before it is acknowledged, and with synchronous=FULL each
//! SQLite commit costs an fsync. One writer task therefore drains all writes waiting at that
//! moment into a single transaction and acknowledges each only after that transaction commits:
//! throughput scales with the batch while every 2xx still means "on disk".
//!
//! The writer also owns the per-pool overlap: serving an item claims a place with a conditional
//! update (`n < overlap`) in the same transaction that records the exposure, so two raters of a
//! pool asking at the same moment cannot both take the last place. The update is atomic on both
//! back ends (SQLite serialises writers; PostgreSQL re-checks the condition on the locked row),
//! so this holds even with several server processes on one PostgreSQL database.

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, PendingAnnotation, now_ms};
use crate::db::{StoreError, StoreResult};
use crate::model::GoldState;

/// Largest number of writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// Outcome of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored under this id.
    New(i64),
    /// This rater already answered this item; nothing changed.
    Duplicate,
    /// The rater withdrew meanwhile; nothing stored.
    Withdrawn,
    /// The item is not (or no longer) served to this rater: its claim expired.
    NotServed,
    /// Exposures recorded: per requested item, whether it may be shown (false = the pool's
    /// overlap was full).
    Exposed(Vec<bool>),
    /// Done (released claims).
    Done,
    /// A rater erased (`None`: there was no such rater), with the reference of the pay owed to
    /// them (`None` when they had done no work).
    Erased(Option<Option<String>>),
    /// A label taken back: its item, or `None` when there was none to take back.
    Undone(Option<i64>),
}

/// Places in a pool's overlap claimed by an exposure.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The rater's pool.
    pub pool_id: i64,
    /// The project's overlap per pool.
    pub overlap: i64,
}

/// A write waiting for the next group commit.
enum Write {
    Annotation(PendingAnnotation),
    /// Items shown to a rater at `served_at`, claiming a place each unless `claim` is None.
    Expose {
        rater_id: i64,
        items: Vec<i64>,
        served_at: i64,
        claim: Option<Claim>,
    },
    /// Erase a rater (with the reference for the pay owed) and give back their places.
    Withdraw(i64, String),
    /// Give back the places of these unanswered `(rater, item)` exposures.
    Release(Vec<(i64, i64)>),
    /// Take back a rater's latest answer if it is a label (not a skip, not a gold check)
    /// stored at or after `since`.
    Undo {
        rater_id: i64,
        since: i64,
    },
}

type Job = (Write, oneshot::Sender<StoreResult<Stored>>);

/// Handle used by request handlers.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub fn start(db: Db) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>(8192);
        tokio::spawn(run(db, rx));
        Writer { tx }
    }

    /// Stores one annotation durably; returns after commit.
    pub async fn submit(&self, annotation: PendingAnnotation) -> StoreResult<Stored> {
        self.send(Write::Annotation(annotation)).await
    }

    /// Records that items are served to a rater (the basis of "only answer what you were
    /// shown", of time on task and of the overlap); returns after commit, with whether each
    /// item got its place.
    pub async fn expose(
        &self,
        rater_id: i64,
        items: Vec<i64>,
        served_at: i64,
        claim: Option<Claim>,
    ) -> StoreResult<Vec<bool>> {
        match self
            .send(Write::Expose {
                rater_id,
                items,
                served_at,
                claim,
            })
            .await?
        {
            Stored::Exposed(ok) => Ok(ok),
            other => Err(StoreError::Internal(format!(
                "writer answered {other:?} to an exposure"
            ))),
        }
    }

    /// Withdraws a rater: erases their data and frees their places. `None` when the rater was
    /// already erased; else the reference of the anonymous pay record, if any work was done.
    pub async fn withdraw(&self, rater_id: i64) -> StoreResult<Option<Option<String>>> {
        let reference = format!("owed-{}", crate::secrets::random_hex(6)?);
        match self.send(Write::Withdraw(rater_id, reference)).await? {
            Stored::Erased(r) => Ok(r),
            other => Err(StoreError::Internal(format!(
                "writer answered {other:?} to an erasure"
            ))),
        }
    }

    /// Takes back the rater's latest label if it was stored at or after `since` and is not a
    /// skip (which gave its place away) or a gold check (whose answer was shown); returns the
    /// item, which is served to the rater again (its exposure and place are kept).
    pub async fn undo(&self, rater_id: i64, since: i64) -> StoreResult<Option<i64>> {
        match self.send(Write::Undo { rater_id, since }).await? {
            Stored::Undone(item) => Ok(item),
            other => Err(StoreError::Internal(format!(
                "writer answered {other:?} to an undo"
            ))),
        }
    }

    /// Gives back the places of unanswered, expired claims.
    pub async fn release(&self, claims: Vec<(i64, i64)>) -> StoreResult<()> {
        if claims.is_empty() {
            return Ok(());
        }
        self.send(Write::Release(claims)).await.map(|_| ())
    }

    async fn send(&self, write: Write) -> StoreResult<Stored> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((write, done))
            .await
            .map_err(|_| StoreError::Internal("annotation writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Internal("annotation writer dropped a job".into()))?
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        match write_batch(&db, &batch).await {
            Ok(results) => {
                for ((_, done), result) in batch.drain(..).zip(results) {
                    let _ = done.send(Ok(result));
                }
            }
            Err(e) => {
                eprintln!("arbiter-server: write batch failed: {e}");
                for (_, done) in batch.drain(..) {
                    let _ = done.send(Err(StoreError::Unavailable(
                        "could not store the write; please retry".into(),
                    )));
                }
            }
        }
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn write_batch(db: &Db, batch: &[Job]) -> Result<Vec<Stored>, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for (write, _) in batch {
        results.push(match write {
            Write::Annotation(a) => annotation(&mut tx, a).await?,
            Write::Expose {
                rater_id,
                items,
                served_at,
                claim,
            } => {
                let mut ok = Vec::with_capacity(items.len());
                for item in items {
                    ok.push(expose(&mut tx, *rater_id, *item, *served_at, *claim).await?);
                }
                Stored::Exposed(ok)
            }
            Write::Withdraw(rater_id, reference) => {
                Stored::Erased(withdraw(&mut tx, *rater_id, reference).await?)
            }
            Write::Release(claims) => {
                for (rater_id, item_id) in claims {
                    release(&mut tx, *rater_id, *item_id).await?;
                }
                Stored::Done
            }
            Write::Undo { rater_id, since } => {
                Stored::Undone(undo(&mut tx, *rater_id, *since).await?)
            }
        });
    }
    tx.commit().await?;
    Ok(results)
}

async fn annotation(tx: &mut Tx, a: &PendingAnnotation) -> Result<Stored, sqlx::Error> {
    // The WHERE clause makes a submission racing a withdrawal or an expired claim store nothing.
    let id: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO annotations (project_id, item_id, rater_id, label, rationale, skipped, instructions_version, served_at, submitted_at, duration_ms) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
         WHERE EXISTS (SELECT 1 FROM raters WHERE id = $3 AND withdrawn_at IS NULL) \
           AND EXISTS (SELECT 1 FROM exposures WHERE rater_id = $3 AND item_id = $2) \
         ON CONFLICT (item_id, rater_id) DO NOTHING RETURNING id",
    )
    .bind(a.project_id)
    .bind(a.item_id)
    .bind(a.rater_id)
    .bind(a.label.clone())
    .bind(a.rationale.clone())
    .bind(i64::from(a.label.is_none()))
    .bind(a.instructions_version)
    .bind(a.served_at)
    .bind(a.submitted_at)
    .bind((a.submitted_at - a.served_at).max(0))
    .fetch_optional(&mut **tx)
    .await?;
    let Some((id,)) = id else {
        let row: Option<(Option<i64>, i64, i64)> = sqlx::query_as(
            "SELECT r.withdrawn_at, (SELECT COUNT(*) FROM annotations a WHERE a.rater_id = r.id AND a.item_id = $2), (SELECT COUNT(*) FROM exposures e WHERE e.rater_id = r.id AND e.item_id = $2) FROM raters r WHERE r.id = $1",
        )
        .bind(a.rater_id)
        .bind(a.item_id)
        .fetch_optional(&mut **tx)
        .await?;
        return Ok(match row {
            None | Some((Some(_), _, _)) => Stored::Withdrawn,
            Some((None, answered, _)) if answered > 0 => Stored::Duplicate,
            Some(_) => Stored::NotServed,
        });
    };
    if a.label.is_none() {
        // A skip gives the place back, so another rater of the pool labels the item.
        let freed = sqlx::query(
            "UPDATE exposures SET claimed = 0 WHERE rater_id = $1 AND item_id = $2 AND claimed = 1",
        )
        .bind(a.rater_id)
        .bind(a.item_id)
        .execute(&mut **tx)
        .await?;
        if freed.rows_affected() == 1 {
            sqlx::query(
                "UPDATE item_pool_counts SET n = n - 1 WHERE item_id = $1 AND pool_id = $2",
            )
            .bind(a.item_id)
            .bind(a.pool_id)
            .execute(&mut **tx)
            .await?;
        }
    }
    if let Some((correct, policy)) = &a.gold {
        let (gold_n, gold_ok, round, round_n, round_ok): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT gold_n, gold_ok, qual_round, round_n, round_ok FROM raters WHERE id = $1",
            )
            .bind(a.rater_id)
            .fetch_one(&mut **tx)
            .await?;
        let next = GoldState {
            answered: gold_n,
            correct: gold_ok,
            round,
            round_answered: round_n,
            round_correct: round_ok,
        }
        .step(*correct, policy);
        sqlx::query(
            "UPDATE raters SET gold_n = $1, gold_ok = $2, qual_round = $3, round_n = $4, round_ok = $5 WHERE id = $6",
        )
        .bind(next.answered)
        .bind(next.correct)
        .bind(next.round)
        .bind(next.round_answered)
        .bind(next.round_correct)
        .bind(a.rater_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(Stored::New(id))
}

async fn undo(tx: &mut Tx, rater_id: i64, since: i64) -> Result<Option<i64>, sqlx::Error> {
    let last: Option<(i64, i64, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT a.id, a.item_id, a.skipped, a.submitted_at, i.gold_label FROM annotations a JOIN items i ON i.id = a.item_id WHERE a.rater_id = $1 ORDER BY a.submitted_at DESC, a.id DESC LIMIT 1",
    )
    .bind(rater_id)
    .fetch_optional(&mut **tx)
    .await?;
    match last {
        Some((id, item_id, 0, at, None)) if at >= since => {
            sqlx::query("DELETE FROM annotations WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            Ok(Some(item_id))
        }
        _ => Ok(None),
    }
}

async fn expose(
    tx: &mut Tx,
    rater_id: i64,
    item_id: i64,
    served_at: i64,
    claim: Option<Claim>,
) -> Result<bool, sqlx::Error> {
    if let Some(c) = claim {
        let took = sqlx::query(
            "UPDATE item_pool_counts SET n = n + 1 WHERE item_id = $1 AND pool_id = $2 AND n < $3",
        )
        .bind(item_id)
        .bind(c.pool_id)
        .bind(c.overlap)
        .execute(&mut **tx)
        .await?;
        if took.rows_affected() == 0 {
            return Ok(false);
        }
    }
    let inserted = sqlx::query(
        "INSERT INTO exposures (rater_id, item_id, served_at, claimed) SELECT $1, $2, $3, $4 \
         WHERE EXISTS (SELECT 1 FROM raters WHERE id = $1 AND withdrawn_at IS NULL) \
         ON CONFLICT (rater_id, item_id) DO NOTHING",
    )
    .bind(rater_id)
    .bind(item_id)
    .bind(served_at)
    .bind(i64::from(claim.is_some()))
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0
        && let Some(c) = claim
    {
        // Already served (or the rater withdrew): the place taken above goes back.
        sqlx::query("UPDATE item_pool_counts SET n = n - 1 WHERE item_id = $1 AND pool_id = $2")
            .bind(item_id)
            .bind(c.pool_id)
            .execute(&mut **tx)
            .await?;
        let served: Option<(i64,)> =
            sqlx::query_as("SELECT served_at FROM exposures WHERE rater_id = $1 AND item_id = $2")
                .bind(rater_id)
                .bind(item_id)
                .fetch_optional(&mut **tx)
                .await?;
        return Ok(served.is_some());
    }
    Ok(inserted.rows_affected() == 1 || claim.is_none())
}

/// Erases every row of a rater, the rater row last, and keeps what they earned as an anonymous
/// record under `reference`.
async fn withdraw(
    tx: &mut Tx,
    rater_id: i64,
    reference: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    let rater: Option<(i64, Option<i64>)> =
        sqlx::query_as("SELECT project_id, questionnaire_at FROM raters WHERE id = $1")
            .bind(rater_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((project_id, questionnaire_at)) = rater else {
        return Ok(None);
    };
    let work: Vec<(i64, i64)> =
        sqlx::query_as("SELECT skipped, duration_ms FROM annotations WHERE rater_id = $1")
            .bind(rater_id)
            .fetch_all(&mut **tx)
            .await?;
    let skipped = work.iter().filter(|w| w.0 != 0).count() as i64;
    let ms: i64 = work.iter().map(|w| w.1).sum();
    sqlx::query(
        "UPDATE item_pool_counts SET n = n - 1 WHERE pool_id = (SELECT pool_id FROM raters WHERE id = $1) AND item_id IN (SELECT item_id FROM exposures WHERE rater_id = $1 AND claimed = 1)",
    )
    .bind(rater_id)
    .execute(&mut **tx)
    .await?;
    for sql in [
        "DELETE FROM annotations WHERE rater_id = $1",
        "DELETE FROM answers WHERE rater_id = $1",
        "DELETE FROM exposures WHERE rater_id = $1",
        "DELETE FROM sessions WHERE rater_id = $1",
        "DELETE FROM raters WHERE id = $1",
    ] {
        sqlx::query(sql).bind(rater_id).execute(&mut **tx).await?;
    }
    let reference = (!work.is_empty()).then(|| reference.to_string());
    if let Some(r) = &reference {
        sqlx::query(
            "INSERT INTO owed (project_id, reference, labelled, skipped, duration_ms, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project_id)
        .bind(r)
        .bind(work.len() as i64 - skipped)
        .bind(skipped)
        .bind(ms)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "UPDATE projects SET withdrawn = withdrawn + 1, rater_changes = rater_changes + $1 WHERE id = $2",
    )
    .bind(i64::from(questionnaire_at.is_some()))
    .bind(project_id)
    .execute(&mut **tx)
    .await?;
    Ok(Some(reference))
}

async fn release(tx: &mut Tx, rater_id: i64, item_id: i64) -> Result<(), sqlx::Error> {
    let gone = sqlx::query(
        "DELETE FROM exposures WHERE rater_id = $1 AND item_id = $2 AND claimed = 1 \
         AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.rater_id = $1 AND a.item_id = $2)",
    )
    .bind(rater_id)
    .bind(item_id)
    .execute(&mut **tx)
    .await?;
    if gone.rows_affected() == 1 {
        sqlx::query(
            "UPDATE item_pool_counts SET n = n - 1 WHERE item_id = $1 AND pool_id = (SELECT pool_id FROM raters WHERE id = $2)",
        )
        .bind(item_id)
        .bind(rater_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

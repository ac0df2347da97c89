//! Group commit for annotations.
//!
//! Every annotation must be durable before it is acknowledged, and with synchronous=FULL each
//! SQLite commit costs an fsync. One writer task therefore drains all submissions waiting at that
//! moment into a single transaction and acknowledges each only after that transaction commits:
//! throughput scales with the batch while every 2xx still means "on disk".

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, PendingAnnotation};
use crate::error::{AppError, AppResult};

/// Largest number of annotations committed in one transaction.
const MAX_BATCH: usize = 512;

/// Outcome of one submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored under this id.
    New(i64),
    /// This rater already answered this item; nothing changed.
    Duplicate,
    /// The rater withdrew meanwhile; nothing stored.
    Withdrawn,
    /// An exposure was recorded.
    Exposed,
}

/// A write waiting for the next group commit.
enum Write {
    Annotation(PendingAnnotation),
    /// (rater, item, served_at): the item was shown to the rater.
    Exposure(i64, i64, i64),
}

type Job = (Write, oneshot::Sender<AppResult<Stored>>);

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
    pub async fn submit(&self, annotation: PendingAnnotation) -> AppResult<Stored> {
        self.send(Write::Annotation(annotation)).await
    }

    /// Records that an item was served to a rater (the basis of "only answer what you were
    /// shown" and of time on task); returns after commit.
    pub async fn expose(&self, rater_id: i64, item_id: i64, served_at: i64) -> AppResult<()> {
        self.send(Write::Exposure(rater_id, item_id, served_at))
            .await
            .map(|_| ())
    }

    async fn send(&self, write: Write) -> AppResult<Stored> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((write, done))
            .await
            .map_err(|_| AppError::from(anyhow::anyhow!("annotation writer stopped")))?;
        wait.await
            .map_err(|_| AppError::from(anyhow::anyhow!("annotation writer dropped a job")))?
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
                eprintln!("arbiter-server: annotation batch failed: {e}");
                for (_, done) in batch.drain(..) {
                    let _ = done.send(Err(AppError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "could not store the annotation; please retry",
                    )));
                }
            }
        }
    }
}

async fn write_batch(db: &Db, batch: &[Job]) -> Result<Vec<Stored>, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for (write, _) in batch {
        let a = match write {
            Write::Annotation(a) => a,
            Write::Exposure(rater, item, served_at) => {
                sqlx::query("INSERT INTO exposures (rater_id, item_id, served_at) VALUES ($1, $2, $3) ON CONFLICT (rater_id, item_id) DO NOTHING")
                    .bind(*rater)
                    .bind(*item)
                    .bind(*served_at)
                    .execute(&mut *tx)
                    .await?;
                results.push(Stored::Exposed);
                continue;
            }
        };
        // The WHERE clause makes a submission racing a withdrawal store nothing.
        let id: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO annotations (project_id, item_id, rater_id, label, rationale, skipped, instructions_version, served_at, submitted_at, duration_ms) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
             WHERE EXISTS (SELECT 1 FROM raters WHERE id = $3 AND withdrawn_at IS NULL) \
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
        .fetch_optional(&mut *tx)
        .await?;
        results.push(match id {
            Some((id,)) => {
                if a.label.is_some() {
                    sqlx::query(
                        "UPDATE item_pool_counts SET n = n + 1 WHERE item_id = $1 AND pool_id = $2",
                    )
                    .bind(a.item_id)
                    .bind(a.pool_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Stored::New(id)
            }
            None => {
                let live: Option<(i64,)> =
                    sqlx::query_as("SELECT id FROM raters WHERE id = $1 AND withdrawn_at IS NULL")
                        .bind(a.rater_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if live.is_some() {
                    Stored::Duplicate
                } else {
                    Stored::Withdrawn
                }
            }
        });
    }
    tx.commit().await?;
    Ok(results)
}

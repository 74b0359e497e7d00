//! The `outbox` table: durable delivery jobs, one per (alert, notifier), written in the same transaction as the
//! alert, so an outage of a receiver or a restart of hsmwatch never loses a notification. Rows become `sent` only after
//! the receiver accepted them (at least once; the idempotency key lets a receiver drop the rare duplicate), or `dead`
//! when they cannot be delivered.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::Row;

use crate::store::{Backend, Reader, StoreError, TableConn};

/// Queues a delivery (inside the caller's transaction).
pub async fn enqueue(
    conn: &mut impl TableConn,
    alert_id: i64,
    notifier: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (alert_id, notifier, status, attempts, next_attempt_at, created_at, idempotency_key) \
         VALUES ($1, $2, 'pending', 0, $3, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(alert_id)
    .bind(notifier)
    .bind(now.timestamp_micros())
    .bind(format!("hsmwatch-{alert_id}-{notifier}"))
    .execute(&mut conn.tables())
    .await?;
    Ok(())
}

/// A due delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// The key receivers deduplicate on.
    pub idempotency_key: String,
}

fn time(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

/// How long a worker on PostgreSQL holds the jobs it took: longer than a delivery's attempts take; a worker that dies
/// holding them gives them back when it runs out.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(120);

/// Takes up to `limit` jobs due for `notifier` by `now`, in due order, for one worker to send. On PostgreSQL, where
/// several collectors' workers share the outbox, each job goes to one of them: its rows are locked (skipping those
/// another worker locked) and leased for [`LEASE`]; SQLite has one worker per notifier.
pub async fn take_due(
    conn: &mut impl TableConn,
    notifier: &str,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Job>, StoreError> {
    let sql = match conn.backend() {
        Backend::Sqlite => {
            "SELECT id, alert_id, attempts, created_at, idempotency_key, next_attempt_at FROM outbox \
             WHERE notifier = $1 AND status = 'pending' AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3"
        }
        Backend::Postgres => {
            "UPDATE outbox SET lease_until = $4 WHERE id IN (SELECT id FROM outbox WHERE notifier = $1 \
             AND status = 'pending' AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
             ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, alert_id, attempts, created_at, idempotency_key, next_attempt_at"
        }
    };
    let lease = chrono::Duration::from_std(LEASE).unwrap_or_default();
    let rows = sqlx::query(sql)
        .bind(notifier)
        .bind(now.timestamp_micros())
        .bind(i64::from(limit))
        .bind((now + lease).timestamp_micros())
        .fetch_all(&mut conn.tables())
        .await?;
    let mut jobs = rows
        .iter()
        .map(|row| Ok((row.try_get::<i64, _>("next_attempt_at")?, job_from_row(row)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    jobs.sort_by_key(|(due, job)| (*due, job.id));
    Ok(jobs.into_iter().map(|(_, job)| job).collect())
}

/// Up to `limit` due pending jobs of a notifier, oldest first.
pub async fn due(reader: &Reader, notifier: &str, now: DateTime<Utc>, limit: u32) -> Result<Vec<Job>, StoreError> {
    let mut conn = reader.table_connection().await?;
    let rows = sqlx::query(
        "SELECT id, alert_id, attempts, created_at, idempotency_key FROM outbox \
         WHERE notifier = $1 AND status = 'pending' AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3",
    )
    .bind(notifier)
    .bind(now.timestamp_micros())
    .bind(i64::from(limit))
    .fetch_all(&mut conn.tables())
    .await?;
    rows.iter().map(job_from_row).collect()
}

/// The job of an alert for a notifier.
pub async fn job_of(reader: &Reader, alert_id: i64, notifier: &str) -> Result<Option<Job>, StoreError> {
    let mut conn = reader.table_connection().await?;
    let row = sqlx::query(
        "SELECT id, alert_id, attempts, created_at, idempotency_key FROM outbox WHERE alert_id = $1 AND notifier = $2",
    )
    .bind(alert_id)
    .bind(notifier)
    .fetch_optional(&mut conn.tables())
    .await?;
    row.map(|row| job_from_row(&row)).transpose()
}

fn job_from_row(row: &sqlx::any::AnyRow) -> Result<Job, StoreError> {
    let attempts: i64 = row.try_get("attempts")?;
    Ok(Job {
        id: row.try_get("id")?,
        alert_id: row.try_get("alert_id")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        created_at: time(row.try_get("created_at")?),
        idempotency_key: row.try_get("idempotency_key")?,
    })
}

/// The delivery state of one (alert, notifier) job, as shown to an operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// The notifier.
    pub notifier: String,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending jobs).
    pub next_attempt_at: String,
    /// When it was accepted.
    pub sent_at: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When sent inside a digest by the flood guard: how many alerts it carried.
    pub digest_size: Option<i64>,
}

/// Every delivery job of an alert.
pub async fn deliveries(reader: &Reader, alert_id: i64) -> Result<Vec<Delivery>, StoreError> {
    let mut conn = reader.table_connection().await?;
    let rows = sqlx::query(
        "SELECT notifier, status, attempts, next_attempt_at, sent_at, last_error, digest_size FROM outbox \
         WHERE alert_id = $1 ORDER BY notifier",
    )
    .bind(alert_id)
    .fetch_all(&mut conn.tables())
    .await?;
    let text = |micros: i64| time(micros).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    rows.iter()
        .map(|row| {
            Ok(Delivery {
                notifier: row.try_get("notifier")?,
                status: row.try_get("status")?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: text(row.try_get("next_attempt_at")?),
                sent_at: row.try_get::<Option<i64>, _>("sent_at")?.map(text),
                last_error: row.try_get("last_error")?,
                digest_size: row.try_get("digest_size")?,
            })
        })
        .collect()
}

/// When the notifier's next pending job becomes due, if it has one.
pub async fn next_due_time(reader: &Reader, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let mut conn = reader.table_connection().await?;
    let micros: Option<i64> =
        sqlx::query_scalar("SELECT min(next_attempt_at) FROM outbox WHERE notifier = $1 AND status = 'pending'")
            .bind(notifier)
            .fetch_one(&mut conn.tables())
            .await?;
    Ok(micros.map(time))
}

/// The receiver accepted it, alone or inside a digest of `digest_size` alerts.
pub async fn mark_sent(
    conn: &mut impl TableConn,
    id: i64,
    now: DateTime<Utc>,
    digest_size: Option<usize>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = $1, last_error = NULL, \
         digest_size = $2, lease_until = NULL WHERE id = $3",
    )
    .bind(now.timestamp_micros())
    .bind(digest_size.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
    .bind(id)
    .execute(&mut conn.tables())
    .await?;
    Ok(())
}

/// Try again at `at`.
pub async fn retry_at(conn: &mut impl TableConn, id: i64, at: DateTime<Utc>, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, lease_until = NULL \
         WHERE id = $3",
    )
    .bind(at.timestamp_micros())
    .bind(error)
    .bind(id)
    .execute(&mut conn.tables())
    .await?;
    Ok(())
}

/// Give up.
pub async fn mark_dead(conn: &mut impl TableConn, id: i64, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = $1, lease_until = NULL WHERE id = $2",
    )
    .bind(error)
    .bind(id)
    .execute(&mut conn.tables())
    .await?;
    Ok(())
}

/// Outbox figures per notifier: pending jobs and the age of the oldest, in seconds.
#[derive(Debug, Clone, Default)]
pub struct OutboxFigures(pub Vec<(String, u64, f64)>);

/// Reads the outbox figures.
pub async fn outbox_figures(reader: &Reader) -> Result<OutboxFigures, StoreError> {
    let mut conn = reader.table_connection().await?;
    let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT notifier, count(*), min(created_at) FROM outbox WHERE status = 'pending' GROUP BY notifier",
    )
    .fetch_all(&mut conn.tables())
    .await?;
    let now = chrono::Utc::now().timestamp_micros();
    Ok(OutboxFigures(
        rows.into_iter()
            .map(|(notifier, n, oldest)| {
                let age = oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1e6);
                (notifier, u64::try_from(n).unwrap_or(0), age)
            })
            .collect(),
    ))
}

//! The `silences` table: what an operator holds back, until when, and why.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::Row;

use crate::store::{Reader, StoreError, TableConn};

/// A silence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Silence {
    /// Row id.
    pub id: i64,
    /// What it matches.
    pub matchers: BTreeMap<String, String>,
    /// When it started.
    pub starts_at: DateTime<Utc>,
    /// When it ends.
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// Who added it.
    pub created_by: String,
    /// When it was ended early.
    pub expired_at: Option<DateTime<Utc>>,
}

fn time(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

/// Adds a silence; its id.
pub async fn add(
    conn: &mut impl TableConn,
    matchers: &BTreeMap<String, String>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    reason: &str,
    created_by: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO silences (matchers, starts_at, ends_at, reason, created_by) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id",
    )
    .bind(serde_json::to_string(matchers).expect("a map of strings serializes"))
    .bind(starts_at.timestamp_micros())
    .bind(ends_at.timestamp_micros())
    .bind(reason)
    .bind(created_by)
    .fetch_one(&mut conn.tables())
    .await?)
}

/// Silences, newest first: those still active at `now`, or every one.
pub async fn list(reader: &Reader, now: DateTime<Utc>, all: bool) -> Result<Vec<Silence>, StoreError> {
    list_on(&mut reader.table_connection().await?, now, all).await
}

async fn list_on(conn: &mut impl TableConn, now: DateTime<Utc>, all: bool) -> Result<Vec<Silence>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, matchers, starts_at, ends_at, reason, created_by, expired_at FROM silences \
         WHERE $1 OR (expired_at IS NULL AND ends_at > $2) ORDER BY id DESC",
    )
    .bind(all)
    .bind(now.timestamp_micros())
    .fetch_all(&mut conn.tables())
    .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            let matchers: String = row.try_get("matchers")?;
            Ok(Silence {
                id,
                matchers: serde_json::from_str(&matchers)
                    .map_err(|e| StoreError::CorruptRow { id, reason: format!("silence matchers: {e}") })?,
                starts_at: time(row.try_get("starts_at")?),
                ends_at: time(row.try_get("ends_at")?),
                reason: row.try_get("reason")?,
                created_by: row.try_get("created_by")?,
                expired_at: row.try_get::<Option<i64>, _>("expired_at")?.map(time),
            })
        })
        .collect()
}

/// The silences holding back alerts at `now`.
pub async fn active(conn: &mut impl TableConn, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
    let started = |s: &Silence| s.starts_at <= now;
    Ok(list_on(conn, now, false).await?.into_iter().filter(started).collect())
}

/// Ends a silence now; false when there is no such active silence.
pub async fn expire(conn: &mut impl TableConn, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE silences SET expired_at = $1 WHERE id = $2 AND expired_at IS NULL AND ends_at > $1")
        .bind(now.timestamp_micros())
        .bind(id)
        .execute(&mut conn.tables())
        .await?;
    Ok(done.rows_affected() == 1)
}

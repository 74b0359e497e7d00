//! What `hsmwatch db stats` and `/readyz` ask of the database: sizes, row counts, the time span of the events.

use std::collections::BTreeMap;

use sqlx::SqliteConnection;

use super::{Reader, StoreError, TableConn};

/// Sizes and counts of a database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DbStats {
    /// Page size in bytes.
    pub page_size: i64,
    /// Pages in the file.
    pub pages: i64,
    /// Pages on the free list.
    pub free_pages: i64,
    /// Stored events.
    pub events: i64,
    /// `@timestamp` of the oldest event, microseconds.
    pub oldest_event: Option<i64>,
    /// `@timestamp` of the newest event, microseconds.
    pub newest_event: Option<i64>,
    /// Batches of the hash chain.
    pub batches: i64,
    /// Recorded alerts.
    pub alerts: i64,
    /// Delivery jobs per status.
    pub outbox: BTreeMap<String, i64>,
    /// Silences.
    pub silences: i64,
    /// Hosts of the inventory.
    pub hosts: i64,
}

async fn number(conn: &mut SqliteConnection, sql: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(sql).fetch_one(&mut *conn).await?)
}

/// Reads the statistics.
pub async fn stats(reader: &Reader) -> Result<DbStats, StoreError> {
    let mut conn = reader.connection().await?;
    let conn = &mut *conn;
    let (oldest_event, newest_event): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT (SELECT min(ts) FROM events), (SELECT max(ts) FROM events)")
            .fetch_one(&mut *conn)
            .await?;
    let outbox: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM outbox GROUP BY status ORDER BY status")
            .fetch_all(&mut *conn)
            .await?;
    Ok(DbStats {
        page_size: number(conn, "PRAGMA page_size").await?,
        pages: number(conn, "PRAGMA page_count").await?,
        free_pages: number(conn, "PRAGMA freelist_count").await?,
        events: number(conn, "SELECT count(*) FROM events").await?,
        oldest_event,
        newest_event,
        batches: number(conn, "SELECT count(*) FROM event_batches WHERE kind = 0").await?,
        alerts: number(conn, "SELECT count(*) FROM alerts").await?,
        outbox: outbox.into_iter().collect(),
        silences: number(conn, "SELECT count(*) FROM silences").await?,
        hosts: number(conn, "SELECT count(*) FROM hosts").await?,
    })
}

/// Whether the database answers a read of the schema hsmwatch writes (`/readyz`).
pub async fn answers(reader: &Reader) -> bool {
    let Ok(mut conn) = reader.table_connection().await else { return false };
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rule_cursor").fetch_one(&mut conn.tables()).await.is_ok()
}

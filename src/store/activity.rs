//! The `event_hours` table: events and failed logins per hour, host and category, for the dashboard's charts.

use chrono::{DateTime, Utc};

use crate::store::{Reader, StoreError, WriteConn};

/// Microseconds in an hour.
pub const HOUR_MICROS: i64 = 3_600_000_000;

/// Counts to add to one (hour, host, category) row.
#[derive(Debug, Clone, Copy)]
pub struct HourCount<'a> {
    /// Host.
    pub host: &'a str,
    /// Hours since the epoch.
    pub hour: i64,
    /// Category.
    pub category: &'a str,
    /// Events.
    pub events: u64,
    /// Failed logins.
    pub failed_logins: u64,
}

/// Adds counts to their rows, in one transaction.
pub async fn add(conn: &mut WriteConn, counts: &[HourCount<'_>]) -> Result<(), StoreError> {
    crate::store::in_transaction(conn, async |conn| {
        let conn = &mut conn.0;
        for count in counts {
            sqlx::query(
                "INSERT INTO event_hours (hour, host, category, events, failed_logins) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (hour, host, category) DO UPDATE SET events = events + excluded.events, \
                 failed_logins = failed_logins + excluded.failed_logins",
            )
            .bind(count.hour)
            .bind(count.host)
            .bind(count.category)
            .bind(i64::try_from(count.events).unwrap_or(i64::MAX))
            .bind(i64::try_from(count.failed_logins).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    })
    .await
}

/// One row of hourly activity.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HourRow {
    /// Hours since the epoch.
    pub hour: i64,
    /// Host.
    pub host: String,
    /// Category.
    pub category: String,
    /// Events.
    pub events: i64,
    /// Failed logins.
    pub failed_logins: i64,
}

/// The rows from `since` on, for one host or all.
pub async fn since(reader: &Reader, since: DateTime<Utc>, host: Option<&str>) -> Result<Vec<HourRow>, StoreError> {
    let mut conn = reader.connection().await?;
    let conn = &mut *conn;
    Ok(sqlx::query_as(
        "SELECT hour, host, category, events, failed_logins FROM event_hours \
         WHERE hour >= ?1 AND (?2 IS NULL OR host = ?2) ORDER BY hour",
    )
    .bind(since.timestamp_micros().div_euclid(HOUR_MICROS))
    .bind(host)
    .fetch_all(&mut *conn)
    .await?)
}

/// The hour (since the epoch) of a time.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros().div_euclid(HOUR_MICROS)
}

/// Removes rows of hours before `cutoff` (retention: the hourly activity is kept no longer than the events).
pub async fn prune(conn: &mut WriteConn, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let conn = &mut conn.0;
    Ok(sqlx::query("DELETE FROM event_hours WHERE hour < ?")
        .bind(hour_of(cutoff))
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

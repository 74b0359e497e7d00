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

/// Rows per INSERT: an import adds hundreds of thousands of (hour, host, category) rows at its end, and one statement
/// per row spent most of the import's time crossing to sqlx's worker thread and back.
const ROWS_PER_STATEMENT: usize = 500;

/// Adds counts to their rows, in one transaction.
pub async fn add(conn: &mut WriteConn, counts: &[HourCount<'_>]) -> Result<(), StoreError> {
    crate::store::in_transaction(conn, async |conn| {
        let conn = &mut conn.0;
        for chunk in counts.chunks(ROWS_PER_STATEMENT) {
            let mut insert: sqlx::QueryBuilder<'_, sqlx::Sqlite> =
                sqlx::QueryBuilder::new("INSERT INTO event_hours (hour, host, category, events, failed_logins) ");
            insert.push_values(chunk, |mut row, count| {
                row.push_bind(count.hour)
                    .push_bind(count.host)
                    .push_bind(count.category)
                    .push_bind(i64::try_from(count.events).unwrap_or(i64::MAX))
                    .push_bind(i64::try_from(count.failed_logins).unwrap_or(i64::MAX));
            });
            insert.push(
                " ON CONFLICT (hour, host, category) DO UPDATE SET events = events + excluded.events, \
                 failed_logins = failed_logins + excluded.failed_logins",
            );
            insert.build().execute(&mut *conn).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_add_up_across_statements_and_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut conn = crate::store::open_writer(&path).await.unwrap();
        let hosts: Vec<String> = (0..3).map(|n| format!("hsm-{n}")).collect();
        let counts: Vec<HourCount<'_>> = (0..ROWS_PER_STATEMENT as i64 + 7)
            .flat_map(|hour| {
                hosts.iter().map(move |host| HourCount {
                    host,
                    hour,
                    category: "authentication",
                    events: 2,
                    failed_logins: 1,
                })
            })
            .collect();
        add(&mut conn, &counts).await.unwrap();
        add(&mut conn, &counts[..10]).await.unwrap();
        let reader = crate::store::open_reader(&path).await.unwrap();
        let rows = since(&reader, DateTime::<Utc>::UNIX_EPOCH, None).await.unwrap();
        assert_eq!(rows.len(), counts.len());
        let doubled = rows.iter().filter(|r| (r.events, r.failed_logins) == (4, 2)).count();
        assert_eq!(doubled, 10);
        assert!(rows.iter().all(|r| (r.events, r.failed_logins) == (2, 1) || (r.events, r.failed_logins) == (4, 2)));
        assert_eq!(since(&reader, DateTime::<Utc>::UNIX_EPOCH, Some("hsm-1")).await.unwrap().len(), counts.len() / 3);
    }
}

//! Hourly activity, the `event_hours` table: events and failed logins per hour, host and category, counted in each
//! batch's transaction (by SQLite's event inserter; on PostgreSQL, for the events the batch stored), so that the
//! dashboard's charts and 24-hour counts read a few rows instead of scanning events.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::event::{field, Event};

use crate::store::{Backend, Reader, StoreError, TableConn};

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
pub async fn add<C: TableConn>(conn: &mut C, counts: &[HourCount<'_>]) -> Result<(), StoreError> {
    crate::store::in_transaction(conn, async |conn| add_in_transaction(conn, counts).await).await
}

/// Adds counts to their rows, in the transaction `conn` is in (a PostgreSQL batch's).
pub async fn add_in_transaction<C: TableConn>(conn: &mut C, counts: &[HourCount<'_>]) -> Result<(), StoreError> {
    let backend = conn.backend();
    for chunk in counts.chunks(ROWS_PER_STATEMENT) {
        let sql = add_statement(backend, chunk.len());
        let mut insert = sqlx::query(&sql);
        for count in chunk {
            let [events, failed_logins] = count.totals();
            insert = insert.bind(count.hour).bind(count.host).bind(count.category).bind(events).bind(failed_logins);
        }
        insert.execute(&mut conn.tables()).await?;
    }
    Ok(())
}

/// Adds the counts of a batch in the event inserter's transaction, one cached one-row statement a row (a batch of
/// live lines holds a few hours' rows; one of an import in time order, a few hundred).
pub(super) fn add_on_inserter(transaction: &rusqlite::Connection, counts: &Activity) -> Result<(), StoreError> {
    // Written once: the statement cache is looked up by the text.
    static ADD_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| add_statement(Backend::Sqlite, 1));
    let mut insert = transaction.prepare_cached(&ADD_ONE)?;
    for count in counts.rows() {
        let [events, failed_logins] = count.totals();
        insert.execute(rusqlite::params![count.hour, count.host, count.category, events, failed_logins])?;
    }
    Ok(())
}

/// The statement that adds `rows` rows of counts to theirs.
fn add_statement(backend: Backend, rows: usize) -> String {
    let rows: Vec<String> = (0..rows).map(|row| backend.values_row(row, 5)).collect();
    format!(
        "INSERT INTO event_hours (hour, host, category, events, failed_logins) VALUES {} \
         ON CONFLICT (hour, host, category) DO UPDATE SET events = event_hours.events + excluded.events, \
         failed_logins = event_hours.failed_logins + excluded.failed_logins",
        rows.join(", ")
    )
}

impl HourCount<'_> {
    /// The events and failed logins, as the table's integers hold them.
    fn totals(&self) -> [i64; 2] {
        [self.events, self.failed_logins].map(|count| i64::try_from(count).unwrap_or(i64::MAX))
    }
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
    let mut conn = reader.table_connection().await?;
    let hour = since.timestamp_micros().div_euclid(HOUR_MICROS);
    let select = "SELECT hour, host, category, events, failed_logins FROM event_hours WHERE hour >= $1";
    let rows = match host {
        Some(host) => {
            sqlx::query_as(&format!("{select} AND host = $2 ORDER BY hour"))
                .bind(hour)
                .bind(host)
                .fetch_all(&mut conn.tables())
                .await?
        }
        None => sqlx::query_as(&format!("{select} ORDER BY hour")).bind(hour).fetch_all(&mut conn.tables()).await?,
    };
    Ok(rows)
}

/// The hour (since the epoch) of a time.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros().div_euclid(HOUR_MICROS)
}

/// Removes rows of hours before `cutoff` (retention: the hourly activity is kept no longer than the events).
pub async fn prune<C: TableConn>(conn: &mut C, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM event_hours WHERE hour < $1")
        .bind(hour_of(cutoff))
        .execute(&mut conn.tables())
        .await?
        .rows_affected())
}

/// The category of events no decoder classified.
pub const UNCATEGORIZED: &str = "uncategorized";

/// One host's counts not yet written: (hour, category) → (events, failed logins).
type HourCounts = HashMap<(i64, &'static str), (u64, u64)>;

/// Counts of committed events not yet written, per host.
#[derive(Debug, Default)]
pub struct Activity {
    pending: HashMap<String, HourCounts>,
}

fn category_of(event: &Event) -> &'static str {
    match event.get(field::CATEGORY) {
        Some(category) => crate::event::CATEGORIES.iter().copied().find(|c| *c == category).unwrap_or(UNCATEGORIZED),
        None => UNCATEGORIZED,
    }
}

impl Activity {
    /// Counts a committed batch.
    pub fn observe<'e>(&mut self, events: impl IntoIterator<Item = &'e Event>) {
        for event in events {
            let hour = event.timestamp.micros().div_euclid(HOUR_MICROS);
            let host = event.get(field::HOST_NAME).unwrap_or("-");
            let category = category_of(event);
            let failed = category == "authentication" && event.get(field::OUTCOME) == Some("failure");
            // The host name is copied only the first time it is seen in this round.
            if !self.pending.contains_key(host) {
                self.pending.insert(host.to_owned(), HashMap::new());
            }
            let hours = self.pending.get_mut(host).expect("inserted above");
            let counts = hours.entry((hour, category)).or_default();
            counts.0 += 1;
            counts.1 += u64::from(failed);
        }
    }

    /// The counts of `events`.
    pub fn of<'e>(events: impl IntoIterator<Item = &'e Event>) -> Activity {
        let mut counts = Activity::default();
        counts.observe(events);
        counts
    }

    /// Adds what was counted to the table, in the transaction `conn` is in.
    pub async fn save_in_transaction<C: TableConn>(&mut self, conn: &mut C) -> Result<(), StoreError> {
        add_in_transaction(conn, &self.rows()).await?;
        self.pending.clear();
        Ok(())
    }

    /// The rows of what was counted, in key order: so the rows of an import in time order append to the table's
    /// B-tree instead of landing all over it.
    fn rows(&self) -> Vec<HourCount<'_>> {
        let mut rows = Vec::new();
        for (host, hours) in &self.pending {
            rows.extend(hours.iter().map(|((hour, category), (events, failed))| HourCount {
                host,
                hour: *hour,
                category,
                events: *events,
                failed_logins: *failed,
            }));
        }
        rows.sort_unstable_by_key(|row| (row.hour, row.host, row.category));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

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

    #[test]
    fn batches_fold_into_hour_host_and_category() {
        let at = |seconds: i64| {
            let t = Timestamp::new(DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap(), 0);
            let mut e = Event::new(t, t);
            e.set(field::HOST_NAME, "hsm-01");
            e
        };
        let mut failed = at(10);
        failed.set(field::CATEGORY, "authentication");
        failed.set(field::OUTCOME, "failure");
        let mut activity = Activity::default();
        activity.observe(&[at(0), failed, at(3700)]);
        let mut rows: Vec<_> = activity
            .pending
            .iter()
            .flat_map(|(n, hours)| hours.iter().map(move |((h, c), v)| (*h, n.clone(), *c, *v)))
            .collect();
        rows.sort();
        let hour = 1_767_225_600 / 3600;
        assert_eq!(
            rows,
            [
                (hour, "hsm-01".to_owned(), "authentication", (1, 1)),
                (hour, "hsm-01".to_owned(), UNCATEGORIZED, (1, 0)),
                (hour + 1, "hsm-01".to_owned(), UNCATEGORIZED, (1, 0)),
            ]
        );
    }
}

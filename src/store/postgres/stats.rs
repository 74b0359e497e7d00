//! What `hsmwatch db stats` says of a database several collectors share: its size, the events and their months, the
//! copies, the collectors, the search index, the chain, who leads, the alerts and the outbox.

use std::collections::BTreeMap;

use crate::store::StoreError;

/// Sizes and counts of a shared database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SharedStats {
    /// Host, port and database (never the password).
    pub server: String,
    /// The database's size on disk, indexes included.
    pub bytes: i64,
    /// Stored events (each once, whichever collectors received it).
    pub events: i64,
    /// `@timestamp` of the oldest event, microseconds.
    pub oldest_event: Option<i64>,
    /// `@timestamp` of the newest event, microseconds.
    pub newest_event: Option<i64>,
    /// The month partitions of the events, oldest first.
    pub months: Vec<String>,
    /// Copies: an event received by one more collector.
    pub copies: i64,
    /// Lines each collector received, copies included, by collector.
    pub collectors: BTreeMap<String, i64>,
    /// Hosts heard.
    pub hosts: i64,
    /// Runs of events in the search index (up to 256 events each).
    pub search_runs: i64,
    /// The search index's size on disk, its trigram index included.
    pub search_bytes: i64,
    /// Records of the tamper-evident chain (batches and prunes).
    pub batches: i64,
    /// Where the chain starts.
    pub anchor: crate::store::chain::AnchorState,
    /// The lease holder, its term and when its lease runs out (RFC 3339), when any collector has led.
    pub leader: Option<(String, i64, String)>,
    /// How far rule evaluation has gone: the last event id evaluated.
    pub rule_cursor: i64,
    /// Recorded alert rows.
    pub alerts: i64,
    /// Delivery jobs per status.
    pub outbox: BTreeMap<String, i64>,
    /// Silences.
    pub silences: i64,
}

async fn number(pool: &sqlx::PgPool, sql: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// Reads the statistics of the database `pool` is on, `server` naming it.
pub(crate) async fn stats(pool: &sqlx::PgPool, server: &str) -> Result<SharedStats, StoreError> {
    let (oldest_event, newest_event): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT min(ts), max(ts) FROM events").fetch_one(pool).await?;
    let months: Vec<String> = sqlx::query_scalar(
        "SELECT child.relname::text FROM pg_inherits JOIN pg_class child ON child.oid = inhrelid \
         JOIN pg_class parent ON parent.oid = inhparent WHERE parent.relname = 'events' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let collectors: Vec<(String, i64)> = sqlx::query_as(
        "SELECT collector, sum(events)::bigint FROM host_collectors GROUP BY collector ORDER BY collector",
    )
    .fetch_all(pool)
    .await?;
    let leader: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT holder, term, to_char(lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM leadership",
    )
    .fetch_optional(pool)
    .await?;
    let outbox: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM outbox GROUP BY status ORDER BY status").fetch_all(pool).await?;
    Ok(SharedStats {
        server: server.to_owned(),
        bytes: number(pool, "SELECT pg_database_size(current_database())").await?,
        events: number(pool, "SELECT count(*) FROM events").await?,
        oldest_event,
        newest_event,
        months,
        copies: number(pool, "SELECT count(*) FROM event_copies").await?,
        collectors: collectors.into_iter().collect(),
        hosts: number(pool, "SELECT count(DISTINCT host) FROM host_collectors WHERE host <> ''").await?,
        search_runs: number(pool, "SELECT count(*) FROM event_grams").await?,
        search_bytes: number(pool, "SELECT pg_total_relation_size('event_grams')").await?,
        batches: number(pool, "SELECT count(*) FROM event_batches").await?,
        anchor: crate::store::chain::read_anchor(&mut *pool.acquire().await?).await?.state,
        leader,
        rule_cursor: number(pool, "SELECT last_event_id FROM rule_cursor").await?,
        alerts: number(pool, "SELECT count(*) FROM alerts").await?,
        outbox: outbox.into_iter().collect(),
        silences: number(pool, "SELECT count(*) FROM silences").await?,
    })
}

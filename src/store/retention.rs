//! Retention: a background task prunes events older than `storage.retention` (whole batches of the tamper-evident
//! chain, oldest first, moving its anchor) and alerts older than `storage.alert_retention` with their delivery
//! records. Each step is one small transaction with a pause after it, so ingest never waits long for the lock.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use tokio_util::sync::CancellationToken;

use super::{chain, StoreError};

/// Pause between two pruning transactions: room for the writer.
const STEP_PAUSE: Duration = Duration::from_millis(20);

/// Alerts deleted per transaction.
const ALERT_CHUNK: i64 = 500;

/// What to keep and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    /// Events stored longer ago are pruned.
    pub events: Option<Duration>,
    /// Alerts fired longer ago are pruned.
    pub alerts: Option<Duration>,
    /// How often to look.
    pub every: Duration,
}

/// Prunes a table that a later stage derives from events (the dashboard's hourly activity) up to a cutoff, so that
/// it keeps no longer than the events do; the store knows such tables only through these, which the server passes in.
pub type DerivedPrune = for<'a> fn(&'a mut SqliteConnection, DateTime<Utc>) -> PruneFuture<'a>;

/// What a [`DerivedPrune`] returns: the rows it removed.
pub type PruneFuture<'a> = Pin<Box<dyn Future<Output = Result<u64, StoreError>> + Send + 'a>>;

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Chain batches (or chunks of pre-chain events) removed.
    pub event_steps: u64,
    /// Alerts removed.
    pub alerts: u64,
}

fn ago(keep: Duration) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX)
}

/// One pass: everything due now, step by step.
pub async fn prune_once(
    conn: &mut SqliteConnection,
    policy: &RetentionPolicy,
    derived: &[DerivedPrune],
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    if let Some(keep) = policy.events {
        while chain::prune_oldest(conn, ago(keep)).await? {
            pruned.event_steps += 1;
            tokio::time::sleep(STEP_PAUSE).await;
        }
        for prune in derived {
            prune(conn, ago(keep)).await?;
        }
    }
    if let Some(keep) = policy.alerts {
        loop {
            let n = prune_alerts(conn, ago(keep)).await?;
            pruned.alerts += n;
            if n < ALERT_CHUNK as u64 {
                break;
            }
            tokio::time::sleep(STEP_PAUSE).await;
        }
    }
    Ok(pruned)
}

async fn prune_alerts(conn: &mut SqliteConnection, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    super::in_transaction(conn, async |conn| {
        let ids = "SELECT id FROM alerts WHERE fired_at < ?1 ORDER BY id LIMIT ?2";
        sqlx::query(&format!("DELETE FROM outbox WHERE alert_id IN ({ids})"))
            .bind(cutoff.timestamp_micros())
            .bind(ALERT_CHUNK)
            .execute(&mut *conn)
            .await?;
        let done = sqlx::query(&format!("DELETE FROM alerts WHERE id IN ({ids})"))
            .bind(cutoff.timestamp_micros())
            .bind(ALERT_CHUNK)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected())
    })
    .await
}

/// Prunes every `policy.every` until `shutdown`, events with the `derived` tables.
pub async fn run(
    mut conn: SqliteConnection,
    policy: RetentionPolicy,
    derived: Vec<DerivedPrune>,
    shutdown: CancellationToken,
) {
    if policy.events.is_none() && policy.alerts.is_none() {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(policy.every) => {}
        }
        match prune_once(&mut conn, &policy, &derived).await {
            Ok(pruned) if pruned != Pruned::default() => {
                tracing::info!(event_batches = pruned.event_steps, alerts = pruned.alerts, "retention pruned old data")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "retention pass failed; the next one tries again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table the store does not know, pruned through a [`DerivedPrune`] as the hourly activity is.
    fn prune_derived(conn: &mut SqliteConnection, cutoff: DateTime<Utc>) -> PruneFuture<'_> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM derived WHERE at < ?").bind(cutoff.timestamp()).execute(conn).await?;
            Ok(done.rows_affected())
        })
    }

    #[tokio::test]
    async fn derived_tables_are_pruned_to_the_events_retention_and_only_when_events_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open_writer(&dir.path().join("t.db")).await.unwrap();
        sqlx::query("CREATE TABLE derived (at INTEGER)").execute(&mut conn).await.unwrap();
        let now = Utc::now().timestamp();
        for at in [now - 3 * 86_400, now - 60] {
            sqlx::query("INSERT INTO derived VALUES (?)").bind(at).execute(&mut conn).await.unwrap();
        }
        let remaining = async |conn: &mut SqliteConnection| -> Vec<i64> {
            sqlx::query_scalar("SELECT at FROM derived ORDER BY at").fetch_all(conn).await.unwrap()
        };
        let alerts_only =
            RetentionPolicy { events: None, alerts: Some(Duration::from_secs(86_400)), every: Duration::ZERO };
        prune_once(&mut conn, &alerts_only, &[prune_derived]).await.unwrap();
        assert_eq!(remaining(&mut conn).await.len(), 2, "events are kept for ever: so is what derives from them");
        let one_day = RetentionPolicy { events: Some(Duration::from_secs(86_400)), ..alerts_only };
        prune_once(&mut conn, &one_day, &[prune_derived]).await.unwrap();
        assert_eq!(remaining(&mut conn).await, [now - 60]);
    }
}

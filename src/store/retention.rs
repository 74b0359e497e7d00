//! Retention: a background task prunes events older than `storage.retention` (whole batches of the tamper-evident
//! chain, oldest first, moving its anchor) and alert rows older than `storage.alert_retention` with their delivery
//! records and history (an open alert is kept whole). Each step is one small transaction with a pause after it, so ingest never waits long for the lock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{chain, StoreError, TableConn, WriteConn, Writer};

/// Pause between two pruning transactions at least: room for the writer.
const STEP_PAUSE: Duration = Duration::from_millis(20);

/// After a pruning transaction, retention pauses this many times as long as it took, so that it holds the write lock
/// a fifth of the time at most: a step deletes a whole batch (an import's are 20,000 events), and while it runs
/// ingest waits.
const YIELD_FACTOR: u32 = 4;

/// Runs `step` on the write connection; returns its outcome and how long it held the connection.
async fn timed<T>(
    writer: &Writer,
    step: impl AsyncFnOnce(&mut WriteConn) -> Result<T, StoreError>,
) -> Result<(T, Duration), StoreError> {
    let mut conn = writer.lock().await?;
    let started = std::time::Instant::now();
    let outcome = step(&mut conn).await?;
    Ok((outcome, started.elapsed()))
}

/// Sleeps for `duration`, or until shutdown.
async fn pause(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

/// The pause after a step that took `took`.
fn pause_after(took: Duration) -> Duration {
    (took * YIELD_FACTOR).max(STEP_PAUSE)
}

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

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Chain batches (or chunks of pre-chain events) removed.
    pub event_steps: u64,
    /// Alerts removed.
    pub alerts: u64,
}

fn ago(keep: Duration) -> DateTime<Utc> {
    crate::event::earlier(Utc::now(), keep)
}

/// One pass: everything due now, step by step. The hourly activity is kept as long as the events it counts.
/// Each step takes the write connection for one transaction and leaves it to the others during the pause.
pub async fn prune_once(
    writer: &Writer,
    policy: &RetentionPolicy,
    shutdown: &CancellationToken,
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    if let Some(keep) = policy.events {
        loop {
            if shutdown.is_cancelled() {
                return Ok(pruned);
            }
            let (more, took) = timed(writer, async |conn| chain::prune_oldest(conn, ago(keep)).await).await?;
            if !more {
                break;
            }
            pruned.event_steps += 1;
            pause(pause_after(took), shutdown).await;
        }
        super::activity::prune(&mut *writer.lock().await?, ago(keep)).await?;
    }
    if let Some(keep) = policy.alerts {
        loop {
            if shutdown.is_cancelled() {
                return Ok(pruned);
            }
            let (n, took) = timed(writer, async |conn| prune_alerts(conn, ago(keep)).await).await?;
            pruned.alerts += n;
            if n < ALERT_CHUNK as u64 {
                break;
            }
            pause(pause_after(took), shutdown).await;
        }
    }
    Ok(pruned)
}

/// Deletes up to [`ALERT_CHUNK`] alert rows fired before `cutoff` with their delivery records and changes, in one
/// transaction, on either backend; returns how many went.
pub async fn prune_alerts(conn: &mut impl TableConn, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    super::in_transaction(conn, async |conn| {
        // An open alert is kept whole however old it is; the history of one that goes goes with it. (A changes row
        // belongs to an opening row, which goes last of its alert's rows: it is the oldest.)
        let ids = "SELECT r.id FROM alerts r LEFT JOIN alerts a ON a.id = r.alert_id \
                   WHERE r.fired_at < $1 AND (a.state IS NULL OR a.state = 'resolved') ORDER BY r.id LIMIT $2";
        for dependent in ["DELETE FROM outbox WHERE alert_id IN", "DELETE FROM alert_changes WHERE alert_id IN"] {
            sqlx::query(&format!("{dependent} ({ids})"))
                .bind(cutoff.timestamp_micros())
                .bind(ALERT_CHUNK)
                .execute(&mut conn.tables())
                .await?;
        }
        let done = sqlx::query(&format!("DELETE FROM alerts WHERE id IN ({ids})"))
            .bind(cutoff.timestamp_micros())
            .bind(ALERT_CHUNK)
            .execute(&mut conn.tables())
            .await?;
        Ok(done.rows_affected())
    })
    .await
}

/// One pass on a database several collectors share (PostgreSQL), run by the leader: the event months wholly older
/// than `policy.events` are dropped (partitions: a month goes once its last day is past the limit), and alerts as on
/// SQLite. Returns the months dropped and the alert rows deleted.
pub async fn prune_shared(
    store: &super::postgres::PgStore,
    policy: &RetentionPolicy,
    shutdown: &CancellationToken,
) -> Result<(super::postgres::events::PrunedMonths, u64), StoreError> {
    let months = match policy.events {
        Some(keep) => {
            let pruned = store.prune_before(ago(keep)).await?;
            super::activity::prune(&mut store.connection().await?, ago(keep)).await?;
            pruned
        }
        None => Default::default(),
    };
    let mut alerts = 0;
    if let Some(keep) = policy.alerts {
        while !shutdown.is_cancelled() {
            let started = std::time::Instant::now();
            let n = prune_alerts(&mut store.connection().await?, ago(keep)).await?;
            alerts += n;
            if n < ALERT_CHUNK as u64 {
                break;
            }
            pause(pause_after(started.elapsed()), shutdown).await;
        }
    }
    Ok((months, alerts))
}

/// Logs a pass that pruned events with where it left the chain: each prune is a record in the chain, and the log
/// line is the copy kept outside the database that tells hsmwatch's prunes from anyone else's.
async fn log_chain_after_prune(writer: &Writer, pruned: Pruned) {
    let anchor_and_head = match writer.lock().await {
        Ok(mut conn) => chain::anchor_and_head(&mut conn).await,
        Err(error) => Err(error),
    };
    match anchor_and_head {
        Ok((anchor, head)) => tracing::info!(
            event_steps = pruned.event_steps,
            alerts = pruned.alerts,
            anchor_event = anchor.last_event_id,
            anchor_hash = %anchor.hash,
            head_record = head.as_ref().map_or(0, |h| h.record),
            head_hash = %head.map_or_else(String::new, |h| h.hash),
            "retention pruned old data; chain head"
        ),
        Err(error) => tracing::warn!(%error, "retention pruned old data but cannot read the chain's head"),
    }
}

/// Prunes every `policy.every` until `shutdown`.
pub async fn run(writer: Writer, policy: RetentionPolicy, shutdown: CancellationToken) {
    if policy.events.is_none() && policy.alerts.is_none() {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(policy.every) => {}
        }
        match prune_once(&writer, &policy, &shutdown).await {
            Ok(pruned) if pruned.event_steps > 0 => log_chain_after_prune(&writer, pruned).await,
            Ok(pruned) if pruned != Pruned::default() => {
                tracing::info!(event_steps = 0, alerts = pruned.alerts, "retention pruned old data")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "retention pass failed; the next one tries again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hourly_activity_is_pruned_to_the_events_retention_and_only_when_events_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let writer = crate::store::Writer::new(crate::store::open_writer(&dir.path().join("t.db")).await.unwrap());
        let now = Utc::now();
        let count =
            |hour| super::super::activity::HourCount { host: "h", hour, category: "c", events: 1, failed_logins: 0 };
        let hours =
            [super::super::activity::hour_of(now - chrono::Duration::days(3)), super::super::activity::hour_of(now)];
        super::super::activity::add(&mut *writer.lock().await.unwrap(), &[count(hours[0]), count(hours[1])])
            .await
            .unwrap();
        let remaining = async |writer: &Writer| -> Vec<i64> {
            let mut conn = writer.lock().await.unwrap();
            sqlx::query_scalar("SELECT hour FROM event_hours ORDER BY hour").fetch_all(&mut conn.0).await.unwrap()
        };
        let alerts_only =
            RetentionPolicy { events: None, alerts: Some(Duration::from_secs(86_400)), every: Duration::ZERO };
        prune_once(&writer, &alerts_only, &CancellationToken::new()).await.unwrap();
        assert_eq!(remaining(&writer).await.len(), 2, "events are kept for ever: so is what counts them");
        let one_day = RetentionPolicy { events: Some(Duration::from_secs(86_400)), ..alerts_only };
        prune_once(&writer, &one_day, &CancellationToken::new()).await.unwrap();
        assert_eq!(remaining(&writer).await, [hours[1]]);
    }

    #[tokio::test]
    async fn old_alerts_go_with_their_history_and_open_ones_stay() {
        use crate::store::alerts::{insert, AlertChange, AlertRecord, Change};
        let dir = tempfile::tempdir().unwrap();
        let writer = crate::store::Writer::new(crate::store::open_writer(&dir.path().join("t.db")).await.unwrap());
        let group = std::collections::BTreeMap::new();
        let old = Utc::now() - chrono::Duration::days(3);
        let record = |fingerprint| AlertRecord {
            rule_id: "r",
            fingerprint,
            severity: "high",
            status: "firing",
            group: &group,
            count: 1,
            first_seen: None,
            last_seen: None,
            at: old,
            title: "t",
            body: "",
            event_ids: &[],
            notify: true,
            suppressed: 0,
            host: None,
            silenced_by: None,
            held_back: None,
        };
        let mut conn = writer.lock().await.unwrap();
        let done = insert(&mut *conn, &[record("r|h=done")]).await.unwrap()[0].id;
        let open = insert(&mut *conn, &[record("r|h=open")]).await.unwrap()[0].id;
        for change in [Change::Acknowledge, Change::Resolve] {
            let change = AlertChange { change, actor: "alice", note: None, at: old };
            crate::store::alerts::change_state(&mut *conn, done, &change, false).await.unwrap();
        }
        let ack = AlertChange { change: Change::Acknowledge, actor: "bob", note: None, at: old };
        crate::store::alerts::change_state(&mut *conn, open, &ack, false).await.unwrap();
        drop(conn);
        let policy = RetentionPolicy { events: None, alerts: Some(Duration::from_secs(86_400)), every: Duration::ZERO };
        prune_once(&writer, &policy, &CancellationToken::new()).await.unwrap();
        let mut conn = writer.lock().await.unwrap();
        let alerts: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT alert_id FROM alerts").fetch_all(&mut conn.0).await.unwrap();
        assert_eq!(alerts, [open], "the resolved alert and its notices went; the open one stays");
        let changes: Vec<String> =
            sqlx::query_scalar("SELECT actor FROM alert_changes").fetch_all(&mut conn.0).await.unwrap();
        assert_eq!(changes, ["bob"]);
    }

    #[tokio::test]
    async fn a_pass_stops_between_steps_at_shutdown() {
        // Regression: a server told to stop went on pruning a long backlog (minutes at ten million events) first.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = crate::store::Writer::new(crate::store::open_writer(&path).await.unwrap());
        let mut inserter =
            crate::store::inserter::open_connection(&path, crate::store::inserter::InserterSettings::default())
                .unwrap();
        let now = crate::event::Timestamp::from_clock(Utc::now());
        for _ in 0..4 {
            crate::store::inserter::insert_batch(&mut inserter, &[crate::event::Event::new(now, now)]).unwrap();
        }
        {
            let mut conn = writer.lock().await.unwrap();
            sqlx::query("UPDATE event_batches SET stored_at = stored_at - 10 * 86400 * 1000000")
                .execute(&mut conn.0)
                .await
                .unwrap();
        }
        let policy = RetentionPolicy { events: Some(Duration::from_secs(86_400)), alerts: None, every: Duration::ZERO };
        let stopped = CancellationToken::new();
        stopped.cancel();
        assert_eq!(prune_once(&writer, &policy, &stopped).await.unwrap(), Pruned::default());
        // Not stopped: every batch but the newest (whose ids the next one continues from), in one step, which records
        // the prune in the chain.
        let pruned = prune_once(&writer, &policy, &CancellationToken::new()).await.unwrap();
        assert_eq!(pruned.event_steps, 1);
        let mut conn = writer.lock().await.unwrap();
        let (anchor, head) = chain::anchor_and_head(&mut conn).await.unwrap();
        assert_eq!((anchor.last_event_id, anchor.pruned_batches, anchor.pruned_events), (3, 3, 3));
        let kinds: Vec<i64> =
            sqlx::query_scalar("SELECT kind FROM event_batches ORDER BY id").fetch_all(&mut conn.0).await.unwrap();
        assert_eq!(kinds, [chain::KIND_EVENTS, chain::KIND_PRUNE]);
        assert!(head.is_some());
        // (Not verified here: this test aged the batches by rewriting `stored_at`, which the chain now sees.)
    }
}

//! Background checkpoints: copies the WAL into the database file from a connection of its own.
//!
//! Left to itself, SQLite checkpoints inside the commit that takes the WAL past `wal_autocheckpoint` pages, so one
//! batch in a thousand pays for copying and syncing all the others, on the writer's path, while ingest waits. Here the
//! writer's automatic checkpoint only guards against a WAL that this task cannot keep short; a PASSIVE checkpoint
//! never blocks the writer (nor readers), and the WAL restarts from its beginning once a checkpoint has caught up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{StoreError, WriteConn};
use crate::metrics::Counters;

/// WAL size after which a writing connection checkpoints by itself: reached only when the
/// background checkpoints cannot finish, for example while a long read holds an old snapshot.
pub const WRITER_FALLBACK_BYTES: u64 = 64 << 20;

/// Time between two background checkpoints while commits happen.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Makes the writer's own automatic checkpoint a fallback (see [`WRITER_FALLBACK_BYTES`]).
pub async fn defer_to_background(writer: &mut WriteConn) -> Result<(), StoreError> {
    let writer = &mut writer.0;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut *writer).await?;
    sqlx::query(&format!("PRAGMA wal_autocheckpoint = {}", fallback_pages(page_size))).execute(&mut *writer).await?;
    Ok(())
}

/// [`WRITER_FALLBACK_BYTES`] in pages of `page_size` bytes: the `wal_autocheckpoint` of every writing connection.
pub fn fallback_pages(page_size: i64) -> u64 {
    super::cap_pages(WRITER_FALLBACK_BYTES, page_size)
}

/// Checkpoints the database at `path` every `every` while the writer stores events (`counters.stored` grows), from a
/// connection of its own, until `stop` is cancelled; a failed checkpoint is logged and tried again at the next turn
/// (the WAL keeps every commit meanwhile, so nothing is at risk).
pub async fn run(path: std::path::PathBuf, counters: Arc<Counters>, every: Duration, stop: CancellationToken) {
    let mut conn = match super::open_background(&path).await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "cannot open the checkpointer's connection; the writer checkpoints by itself");
            return;
        }
    };
    let stored = || counters.stored.load(Ordering::Relaxed);
    let mut checkpointed = stored();
    // Failing checkpoints are said once, and their end once: on a full disk they fail ten times a second.
    let mut failing = false;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = stored();
        if now == checkpointed {
            continue;
        }
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
            Ok(_) => {
                checkpointed = now;
                if std::mem::take(&mut failing) {
                    tracing::info!("background WAL checkpoints succeed again");
                }
            }
            Err(error) if !failing => {
                tracing::warn!(%error, "background WAL checkpoint failed; trying again (said once until it succeeds)");
                failing = true;
            }
            Err(error) => tracing::debug!(%error, "background WAL checkpoint failed again"),
        }
    }
    let _ = sqlx::Connection::close(conn).await;
}

/// Background checkpoints ([`run`] every [`INTERVAL`]) on a database, from their start until they are stopped.
pub struct Background {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Starts checkpointing `path` while `counters.stored` grows.
    pub fn start(path: std::path::PathBuf, counters: Arc<Counters>) -> Background {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(path, counters, INTERVAL, stop.clone()));
        Background { stop, task }
    }

    /// Stops them, after the checkpoint under way if any.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_background_task_copies_commits_out_of_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut writer = super::super::open_writer(&path).await.unwrap();
        defer_to_background(&mut writer).await.unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)").execute(&mut writer.0).await.unwrap();
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(path.clone(), counters.clone(), Duration::from_millis(10), stop.clone()));
        for _ in 0..20 {
            sqlx::query("INSERT INTO t VALUES (randomblob(8000))").execute(&mut writer.0).await.unwrap();
            Counters::add(&counters.stored, 1);
        }
        // The rows reach the database file itself only through a checkpoint: the writer's own is 16k pages away.
        let file_len = || std::fs::metadata(&path).unwrap().len();
        // Polled rather than slept for a fixed time: the machine may be slow (a shared CI host), but the task must get
        // there within a generous deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while file_len() < 20 * 8000 && std::time::Instant::now() < deadline {
            // The task checkpoints while commits go on; on a loaded machine it may first run after the inserts above,
            // when it takes their count as already checkpointed.
            Counters::add(&counters.stored, 1);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(file_len() >= 20 * 8000, "the database file holds the committed rows: {} bytes", file_len());
        stop.cancel();
        task.await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&mut writer.0).await.unwrap();
        assert_eq!(rows, 20);
    }
}

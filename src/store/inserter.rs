//! The event inserter: a thread of its own, with a SQLite connection of its own, that commits the writer's batches of
//! events to the `events` table and the chain.
//!
//! Everything else in the store goes through sqlx; event rows do not, because they are the one write that happens for
//! every received line, on the writer's serial path. Through sqlx each bound value was copied into its argument list
//! and again into SQLite, a multi-row statement's text was built and hashed for every chunk, and each statement went
//! to sqlx's worker thread and back: per row, about as much CPU as SQLite's own insert (see `benches/README.md`).
//! Here rows are bound from the events' fields into cached statements of [`ROWS_PER_STATEMENT`] rows, on the thread
//! that owns the connection, and a batch crosses threads once. It is the same SQLite library (sqlx links rusqlite's
//! `libsqlite3-sys`), on the same file, in WAL mode: the writer uses it between its own (sqlx) writes, never at the
//! same time.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, LazyLock};
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use super::columns::{row_values, RowValues, BOUND_PER_ROW, INSERT_COLUMNS};
use super::StoreError;
use super::{chain, search};
use crate::event::Event;
use crate::metrics::Counters;

/// Rows per INSERT statement: a statement of several rows spends less of SQLite's time per row on running the
/// statement around them (measured on the events schema: 2.4 -> 1.9 us per row at 40 rows). Divides [`CHUNK_ROWS`].
const ROWS_PER_STATEMENT: usize = 32;

/// Values bound per row: the id and the insert columns.
const BOUND_WITH_ID: usize = 1 + BOUND_PER_ROW;

/// The statements of [`ROWS_PER_STATEMENT`] rows and of one row, written once (the statement cache is looked up by
/// their text).
static INSERT_SEVERAL: LazyLock<String> = LazyLock::new(|| insert_statement(ROWS_PER_STATEMENT));
static INSERT_ONE: LazyLock<String> = LazyLock::new(|| insert_statement(1));

/// The statement of `rows` rows; ids are bound, not left to SQLite (see [`insert_batch`]).
///
/// `OR ROLLBACK`: a failing row ends the whole transaction, which is what becomes of the batch anyway; with the
/// default (ABORT) SQLite keeps a statement journal so that it could undo just the statement's earlier rows, copying
/// every page a multi-row statement touches.
fn insert_statement(rows: usize) -> String {
    let row = format!("(?{})", ", ?".repeat(BOUND_PER_ROW));
    format!("INSERT OR ROLLBACK INTO events (id, {INSERT_COLUMNS}) VALUES {}", vec![row; rows].join(", "))
}

/// The inserter connection's page cache. A batch dirties pages all over the indexes; with SQLite's default 2 MB they
/// were written out to the WAL before the commit and read back within it (an import of 1M lines spent a third of its
/// time in those reads and writes).
const CACHE_BYTES: i64 = 64 << 20;

/// How the inserter's connection is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct InserterSettings {
    /// Cap on the database's size in bytes (`PRAGMA max_page_count`): past it, inserts fail as on a full disk.
    pub max_size: Option<u64>,
    /// Whether commits checkpoint by themselves only past [`super::checkpoint::WRITER_FALLBACK_BYTES`] of WAL, not
    /// at SQLite's default 1000 pages: the server checkpoints in the background ([`super::checkpoint::run`]), and an
    /// import checkpoints less often, copying a page it rewrote many times once.
    pub deferred_checkpoints: bool,
}

/// Opens the inserter's connection on a database that [`super::open_writer`] has created and migrated: WAL (a
/// property of the file), `synchronous=NORMAL` and the busy timeout as on the other connections.
pub fn open_connection(path: &Path, settings: InserterSettings) -> Result<Connection, StoreError> {
    let open = |path: &Path| -> rusqlite::Result<Connection> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Negative: KiB, not pages.
        conn.pragma_update(None, "cache_size", -(CACHE_BYTES >> 10))?;
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
        if settings.deferred_checkpoints {
            conn.pragma_update(None, "wal_autocheckpoint", super::checkpoint::fallback_pages(page_size))?;
        }
        if let Some(bytes) = settings.max_size {
            conn.pragma_update(None, "max_page_count", super::cap_pages(bytes, page_size))?;
        }
        Ok(conn)
    };
    open(path).map_err(|cause| StoreError::OpenInserter { path: path.to_owned(), cause })
}

/// Rows per chunk handed from the preparing thread to the inserting one (a multiple of [`ROWS_PER_STATEMENT`], so that
/// only a batch's last chunk has rows that take the one-row statement).
const CHUNK_ROWS: usize = 4 * ROWS_PER_STATEMENT;

/// Batches from this size on are prepared on a thread beside the inserting one; for smaller ones a thread would cost
/// more than it saves.
const PREPARE_BESIDE_FROM: usize = 256;

/// Inserts a batch in one `BEGIN IMMEDIATE` transaction, with its link in the tamper-evident chain and the search
/// index blocks it completes; returns the row id of its first event (the others follow in order). On error nothing of
/// the batch is stored.
///
/// Turning events into row values (the JSON of their fields) and hashing them is a third of a row's cost; for large
/// batches it runs on a second thread, a chunk ahead of SQLite, so that this serial path does little but insert.
pub fn insert_batch(conn: &mut Connection, batch: &[Event]) -> Result<Committed, StoreError> {
    if batch.is_empty() {
        return Ok(Committed { first_id: 0, search_waiting: 0 });
    }
    let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let prev_hash = chain::head(&transaction)?;
    // The write lock is held from BEGIN IMMEDIATE: no other writer can take ids until the commit, so the batch's are
    // known before it is inserted, and the chain hashes exactly the ids the rows get.
    let newest: Option<i64> = transaction.query_row("SELECT max(id) FROM events", [], |row| row.get(0))?;
    let first_id = newest.unwrap_or(0) + 1;
    let hash = {
        let mut statements = Statements {
            several: transaction.prepare_cached(&INSERT_SEVERAL)?,
            one: transaction.prepare_cached(&INSERT_ONE)?,
        };
        if batch.len() < PREPARE_BESIDE_FROM {
            let mut hasher = chain::BatchHasher::new(&prev_hash);
            statements.insert(first_id, &hashed_rows(batch, first_id, &mut hasher))?;
            hasher.finish()
        } else {
            std::thread::scope(|scope| {
                let (chunks, prepared) = mpsc::sync_channel::<Vec<RowValues<'_>>>(2);
                let preparer = std::thread::Builder::new()
                    .name("hsmwatch-rows".into())
                    .spawn_scoped(scope, || prepare_rows(batch, first_id, &prev_hash, chunks))
                    .map_err(StoreError::InserterThread)?;
                // On an error `prepared` is dropped on return, which stops the preparer at its next chunk.
                let mut id = first_id;
                for rows in prepared.iter() {
                    statements.insert(id, &rows)?;
                    id += rows.len() as i64;
                }
                preparer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })?
        }
    };
    let last_id = first_id + batch.len() as i64 - 1;
    chain::record(&transaction, first_id, last_id, batch.len() as u64, &prev_hash, &hash, chrono::Utc::now())?;
    // The blocks this batch completed, and a few of any backlog.
    let blocks = (batch.len() >> search::BLOCK_SHIFT) as i64 + 1 + BACKLOG_BLOCKS_PER_BATCH;
    let indexed = search::index_blocks(&transaction, blocks)?;
    transaction.commit()?;
    Ok(Committed { first_id, search_waiting: indexed.waiting })
}

/// Search index blocks of a backlog (a database from before the index) indexed with each batch, besides the ones the
/// batch completes; the rest waits for the inserter to be idle.
const BACKLOG_BLOCKS_PER_BATCH: i64 = 4;

/// Backlog blocks indexed in one step while the inserter is idle: about 10 ms of work.
const BACKLOG_BLOCKS_PER_STEP: i64 = 16;

/// How long the inserter waits for a batch before it takes the next step of a search index backlog.
const IDLE_BEFORE_BACKLOG: std::time::Duration = std::time::Duration::from_millis(20);

/// What a committed batch left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The row id of the batch's first event (the others follow in order).
    pub first_id: i64,
    /// Complete blocks of events the search index has not taken in yet.
    pub search_waiting: i64,
}

/// Indexes a step of the search index's backlog in a transaction of its own; returns the blocks still waiting.
fn index_backlog(conn: &mut Connection) -> Result<i64, StoreError> {
    let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let indexed = search::index_blocks(&transaction, BACKLOG_BLOCKS_PER_STEP)?;
    transaction.commit()?;
    Ok(indexed.waiting)
}

/// Row values of `batch`, hashed with ids from `first_id` on, sent chunk by chunk; returns the batch's hash (or the
/// chain error when the inserting side stopped early, whose own error is the one reported).
fn prepare_rows<'a>(
    batch: &'a [Event],
    first_id: i64,
    prev_hash: &str,
    chunks: mpsc::SyncSender<Vec<RowValues<'a>>>,
) -> Result<String, StoreError> {
    let mut hasher = chain::BatchHasher::new(prev_hash);
    for (chunk, first) in batch.chunks(CHUNK_ROWS).zip((first_id..).step_by(CHUNK_ROWS)) {
        if chunks.send(hashed_rows(chunk, first, &mut hasher)).is_err() {
            return Err(StoreError::InserterStopped);
        }
    }
    Ok(hasher.finish())
}

/// The row values of `events`, whose ids run from `first_id`, each added to `hasher` in turn.
fn hashed_rows<'a>(events: &'a [Event], first_id: i64, hasher: &mut chain::BatchHasher) -> Vec<RowValues<'a>> {
    let rows: Vec<RowValues<'a>> = events.iter().map(row_values).collect();
    for (id, values) in (first_id..).zip(&rows) {
        hasher.row(&values.image(id));
    }
    rows
}

/// The two INSERT statements a batch uses: [`ROWS_PER_STATEMENT`] rows, and one row for what is left at its end.
struct Statements<'c> {
    several: rusqlite::CachedStatement<'c>,
    one: rusqlite::CachedStatement<'c>,
}

impl Statements<'_> {
    /// Inserts `rows` with ids from `first_id` on.
    fn insert(&mut self, first_id: i64, rows: &[RowValues<'_>]) -> rusqlite::Result<()> {
        let mut groups = rows.chunks_exact(ROWS_PER_STATEMENT);
        let mut id = first_id;
        for group in &mut groups {
            bind_rows(&mut self.several, id, group)?;
            self.several.raw_execute()?;
            id += group.len() as i64;
        }
        for values in groups.remainder() {
            bind_rows(&mut self.one, id, std::slice::from_ref(values))?;
            self.one.raw_execute()?;
            id += 1;
        }
        Ok(())
    }
}

/// Binds every parameter of a statement of `rows.len()` rows (so nothing of an earlier execution stays bound).
fn bind_rows(statement: &mut rusqlite::Statement<'_>, first_id: i64, rows: &[RowValues<'_>]) -> rusqlite::Result<()> {
    for ((id, values), first) in (first_id..).zip(rows).zip((1..).step_by(BOUND_WITH_ID)) {
        let [ts, ts_digits, created, created_digits] = values.times;
        let integers = [id, ts, ts_digits, created, created_digits];
        for (at, value) in (first..).zip(integers) {
            statement.raw_bind_parameter(at, value)?;
        }
        for (at, text) in (first + integers.len()..).zip(values.typed) {
            statement.raw_bind_parameter(at, text)?;
        }
        let after_typed = first + integers.len() + values.typed.len();
        statement.raw_bind_parameter(after_typed, values.raw)?;
        statement.raw_bind_parameter(after_typed + 1, values.fields.as_slice())?;
        statement.raw_bind_parameter(after_typed + 2, values.message_at)?;
    }
    Ok(())
}

/// The inserter thread's loop: commits the batches it is given, and indexes the search index's backlog (if any)
/// whenever no batch has come for a moment.
fn serve_jobs(conn: &mut Connection, jobs: &mpsc::Receiver<Job>, counters: &Counters) {
    // Unknown at start: a database from before the index has one; the first idle step finds out.
    let mut waiting = 1;
    let mut reported = Instant::now();
    loop {
        let job = if waiting > 0 {
            match jobs.recv_timeout(IDLE_BEFORE_BACKLOG) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match jobs.recv() {
                Ok(job) => Some(job),
                Err(mpsc::RecvError) => return,
            }
        };
        let before = waiting;
        match job {
            Some(job) => {
                let outcome = insert_batch(conn, &job.batch);
                if let Ok(committed) = &outcome {
                    waiting = committed.search_waiting;
                }
                // The writer may be gone (shutdown after a failure): the outcome then has no one to go to.
                let _ = job.reply.send((job.batch, outcome.map(|committed| committed.first_id)));
            }
            None => match index_backlog(conn) {
                Ok(left) => waiting = left,
                Err(error) => {
                    tracing::warn!(%error, "indexing the search index backlog failed; trying again in a second");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            },
        }
        counters.search_waiting.store((waiting.max(0) as u64) << search::BLOCK_SHIFT, Ordering::Relaxed);
        if waiting > 0 && reported.elapsed() > REPORT_BACKLOG_EVERY {
            tracing::info!(events_waiting = waiting << search::BLOCK_SHIFT, "building the search index");
            reported = Instant::now();
        } else if waiting == 0 && before > BACKLOG_BLOCKS_PER_STEP {
            tracing::info!("search index complete");
        }
    }
}

/// How often the progress of a search index backlog is logged.
const REPORT_BACKLOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// What the inserter hands back: the batch (so its events go on to evaluation) and the outcome of its commit.
pub type Inserted = (Vec<Event>, Result<i64, StoreError>);

struct Job {
    batch: Vec<Event>,
    reply: oneshot::Sender<Inserted>,
}

/// The thread that owns the inserter's connection.
#[derive(Debug)]
pub struct Inserter {
    jobs: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

impl Inserter {
    /// Starts the thread on `conn` (from [`open_connection`]); it reports the search index's backlog in `counters`.
    pub fn start(mut conn: Connection, counters: Arc<Counters>) -> Result<Inserter, StoreError> {
        let (jobs, received) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("hsmwatch-insert".into())
            .spawn(move || serve_jobs(&mut conn, &received, &counters))
            .map_err(StoreError::InserterThread)?;
        Ok(Inserter { jobs, thread })
    }

    /// Commits `batch` on the inserter's thread (see [`insert_batch`]) and hands it back with the outcome.
    pub async fn insert(&self, batch: Vec<Event>) -> Inserted {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::SendError(job)) = self.jobs.send(Job { batch, reply }) {
            return (job.batch, Err(StoreError::InserterStopped));
        }
        // The reply is dropped unanswered only when the thread panicked (its message is already on stderr).
        answer.await.unwrap_or_else(|_| (Vec::new(), Err(StoreError::InserterStopped)))
    }

    /// Stops the thread once it has finished what it was given, and closes its connection.
    pub async fn close(self) {
        let Inserter { jobs, thread } = self;
        drop(jobs);
        if let Ok(Err(panic)) = tokio::task::spawn_blocking(move || thread.join()).await {
            std::panic::resume_unwind(panic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{field, Timestamp};
    use chrono::Utc;

    fn event(original: &str) -> Event {
        let now = Timestamp::from_clock(Utc::now());
        let mut event = Event::new(now, now);
        event.set(field::ORIGINAL, original.to_owned());
        event
    }

    async fn database(dir: &Path, settings: InserterSettings) -> (sqlx::SqliteConnection, Connection) {
        let path = dir.join("t.db");
        let reader = crate::store::open_writer(&path).await.unwrap().0;
        (reader, open_connection(&path, settings).unwrap())
    }

    #[tokio::test]
    async fn batches_get_consecutive_ids_after_the_newest_row_and_an_intact_chain() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reader, conn) = database(dir.path(), InserterSettings::default()).await;
        let inserter = Inserter::start(conn, Arc::default()).unwrap();
        let (batch, first) = inserter.insert(vec![event("a"), event("b")]).await;
        assert_eq!((batch.len(), first.unwrap()), (2, 1));
        // A row stored by another connection (as an older version or `sqlite3` might): the next batch follows it.
        sqlx::query("INSERT INTO events (id, ts, ts_digits, created, created_digits, dataset, format, original, fields) VALUES (10, 0, 0, 0, 0, 'syslog', 'x', 'x', '{}')")
            .execute(&mut reader)
            .await
            .unwrap();
        let (_, first) = inserter.insert(vec![event("c")]).await;
        assert_eq!(first.unwrap(), 11);
        inserter.close().await;
        let originals: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, original FROM events ORDER BY id").fetch_all(&mut reader).await.unwrap();
        assert_eq!(originals, [(1, "a".into()), (2, "b".into()), (10, "x".into()), (11, "c".into())]);
        let batches: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT first_event_id, last_event_id, row_count FROM event_batches ORDER BY id")
                .fetch_all(&mut reader)
                .await
                .unwrap();
        assert_eq!(batches, [(1, 2, 2), (11, 11, 1)]);
    }

    #[tokio::test]
    async fn a_database_from_before_the_index_is_indexed_while_the_inserter_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reader, mut conn) = database(dir.path(), InserterSettings::default()).await;
        let batch: Vec<Event> = (0..3000).map(|n| event(&format!("line {n:05} of history"))).collect();
        assert_eq!(insert_batch(&mut conn, &batch).unwrap(), Committed { first_id: 1, search_waiting: 0 });
        // As the migration leaves a database that held events: nothing indexed.
        sqlx::raw_sql("DELETE FROM event_search; UPDATE search_cursor SET next_block = 0")
            .execute(&mut reader)
            .await
            .unwrap();
        let counters = Arc::new(Counters::default());
        let inserter = Inserter::start(conn, counters.clone()).unwrap();
        let complete = 3001 >> search::BLOCK_SHIFT;
        let mut next_block = 0;
        for _ in 0..200 {
            next_block =
                sqlx::query_scalar("SELECT next_block FROM search_cursor").fetch_one(&mut reader).await.unwrap();
            if next_block == complete {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(next_block, complete, "no batch came: the idle inserter indexed the backlog");
        assert_eq!(crate::metrics::value(&counters.search_waiting), 0);
        let pool = crate::store::open_reader(&dir.path().join("t.db")).await.unwrap();
        let found = search::candidates(&pool, "line 00300 ").await.unwrap().unwrap();
        assert_eq!(found.ranges, [(256, 511)]);
        inserter.close().await;
    }

    /// Events that differ in every column, some columns empty, some messages the tail of their line.
    fn varied(count: usize) -> Vec<Event> {
        (0..count)
            .map(|i| {
                use chrono::TimeZone;
                let micros = |offset: i64| Utc.timestamp_micros(1_780_000_000_000_000 + offset).unwrap();
                let mut event = Event::new(
                    Timestamp::new(micros(i as i64 * 7), (i % 7) as u8),
                    Timestamp::new(micros(i as i64), 6),
                );
                event.set(field::DATASET, "lunash");
                event.set(field::FORMAT, "rfc3164");
                let message = format!("line {i} \"quoted\" \\ tab\t");
                event.set(field::ORIGINAL, format!("<14>Mar  1 10:00:00 hsm{} lunash: {message}", i % 3));
                event.set(field::MESSAGE, if i % 4 == 0 { format!("other {i}") } else { message });
                event.set(field::HOST_NAME, format!("hsm{}", i % 3));
                if i % 2 == 0 {
                    event.set(field::USER_NAME, format!("user{i}"));
                    event.set(field::ACTION, "user-login");
                }
                if i % 5 == 0 {
                    event.raw = Some(vec![0xff, i as u8]);
                }
                event.set(field::APPNAME, "lunash");
                event
            })
            .collect()
    }

    #[tokio::test]
    async fn every_column_of_every_row_reads_back_as_inserted_across_statement_and_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reader, mut conn) = database(dir.path(), InserterSettings::default()).await;
        // Inline (under PREPARE_BESIDE_FROM) and beside the preparer; neither a multiple of ROWS_PER_STATEMENT.
        let small = varied(PREPARE_BESIDE_FROM - 1 - ROWS_PER_STATEMENT / 2);
        let large = varied(2 * CHUNK_ROWS + ROWS_PER_STATEMENT + 3);
        assert_eq!(insert_batch(&mut conn, &small).unwrap().first_id, 1);
        assert_eq!(insert_batch(&mut conn, &large).unwrap().first_id, 1 + small.len() as i64);
        let select = format!("SELECT {} FROM events ORDER BY id", super::super::columns::SELECT_COLUMNS);
        let rows = sqlx::query(&select).fetch_all(&mut reader).await.unwrap();
        assert_eq!(rows.len(), small.len() + large.len());
        for ((row, expected), id) in rows.iter().zip(small.iter().chain(&large)).zip(1..) {
            let (read_id, read) = super::super::columns::event_from_row(row).unwrap();
            assert_eq!(read_id, id);
            assert_eq!(&read, expected, "row {id}");
        }
        let pool = crate::store::open_reader(&dir.path().join("t.db")).await.unwrap();
        let finding = crate::store::chain::verify(&pool).await.unwrap();
        assert!(matches!(finding, crate::store::chain::Finding::Intact { .. }), "{finding:?}");
    }

    #[tokio::test]
    async fn a_full_database_fails_the_whole_batch_retryably_and_stores_none_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let settings = InserterSettings { max_size: Some(2 << 20), deferred_checkpoints: false };
        let (mut reader, mut conn) = database(dir.path(), settings).await;
        let line = "x".repeat(2000);
        let batch: Vec<Event> = (0..1500).map(|_| event(&line)).collect();
        let error = insert_batch(&mut conn, &batch).unwrap_err();
        assert!(error.is_retryable() && error.is_full(), "{error}");
        assert!(error.to_string().contains("full"), "{error}");
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&mut reader).await.unwrap();
        assert_eq!(count, 0);
        // Smaller batches still fit: the failed one left nothing behind.
        assert_eq!(insert_batch(&mut conn, &batch[..10]).unwrap().first_id, 1);
    }
}

//! The batch writer: the one task that owns the write connection.
//!
//! Receives events from the bounded queue; commits them in batches (flushed by size, by age, or as soon as nothing else
//! is waiting: group commit, so a lone alert-bearing line is not held back), each batch one
//! `BEGIN IMMEDIATE` transaction of multi-row INSERTs, because every sqlx call costs tens of microseconds and one call
//! per event would cap ingest near 15k events/s. A failed commit (disk full, lock) is retried with backoff while the
//! queue fills up behind it, which is what slows TCP senders down instead of losing their lines.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::chain;
use super::columns::{row_values, RowValues, BOUND_PER_ROW, INSERT_COLUMNS};
use super::StoreError;
use crate::event::Event;
use crate::metrics::Counters;

/// Rows per INSERT statement: SQLite allows 32766 bound values; a few hundred rows is where the gain levels off.
const ROWS_PER_STATEMENT: usize = 32_766 / BOUND_PER_ROW / 10;

/// Longest wait between two attempts at a failing commit.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// How often a failing commit is tried once the queue has closed (shutdown) before the batch is given up.
const SHUTDOWN_ATTEMPTS: u32 = 10;

/// What a hook returns: a future over the writer's connection.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Work done on the writer's connection after each commit, and on a timer: the rule engine's evaluation (store,
/// then evaluate). Defined here so that the store knows nothing of the stages after it.
///
/// Each committed batch is handed over in two steps: [`AfterCommit::evaluate`] (work without the database, which the
/// writer may run on another thread while it inserts the next batch) and then [`AfterCommit::persist`] (writing
/// what it produced, on the writer's connection). Batches are evaluated and persisted in commit order.
pub trait AfterCommit: Send + 'static {
    /// A batch was committed; its first event has row id `first_id`.
    fn evaluate(&mut self, batch: &[Event], first_id: i64);
    /// Writes what [`AfterCommit::evaluate`] produced.
    fn persist<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> HookFuture<'a>;
    /// Time passed (timers that fire without new events).
    fn tick<'a>(&'a mut self, conn: &'a mut SqliteConnection, now: DateTime<Utc>) -> HookFuture<'a>;
    /// Whether it has work of its own (a backlog): the writer then calls [`AfterCommit::tick`] whenever no batch is
    /// waiting, instead of once a second.
    fn busy(&self) -> bool {
        false
    }
    /// The queue closed: the last chance to write what is held.
    fn finish<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> HookFuture<'a> {
        self.tick(conn, Utc::now())
    }
}

/// No work after commits.
#[derive(Debug, Default)]
pub struct NoHook;

impl AfterCommit for NoHook {
    fn evaluate(&mut self, _: &[Event], _: i64) {}
    fn persist<'a>(&'a mut self, _: &'a mut SqliteConnection) -> HookFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    fn tick<'a>(&'a mut self, _: &'a mut SqliteConnection, _: DateTime<Utc>) -> HookFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// How often the hook's timers run.
const TICK: Duration = Duration::from_secs(1);

/// When the writer commits.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Commit when a batch holds this many events.
    pub rows: usize,
    /// Commit when the first event of a batch has waited this long (a batch is committed earlier when the queue is
    /// empty).
    pub delay: Duration,
}

/// What the writer did by the time its queue closed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriterSummary {
    /// Events committed.
    pub stored: u64,
    /// Batches committed.
    pub batches: u64,
}

/// Where the hook is: here, or evaluating a committed batch on a blocking thread while the writer goes on.
enum HookSlot<H> {
    Here(H),
    Away(tokio::task::JoinHandle<(H, Vec<Event>)>),
}

impl<H: AfterCommit> HookSlot<H> {
    /// Brings the hook back (persisting what it evaluated away) and returns it, with the batch it evaluated.
    async fn settle(&mut self, conn: &mut SqliteConnection) -> (&mut H, Option<Vec<Event>>) {
        let mut events = None;
        if let HookSlot::Away(task) = self {
            let (mut hook, batch) = match task.await {
                Ok(returned) => returned,
                // The hook's panic is the writer's, as it was when evaluation ran on the writer's own task.
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            };
            persist(&mut hook, conn, batch.len()).await;
            events = Some(batch);
            *self = HookSlot::Here(hook);
        }
        match self {
            HookSlot::Here(hook) => (hook, events),
            _ => unreachable!("settled above"),
        }
    }

    /// The hook sent away to evaluate `batch` (it must be here: it is settled before each batch is handed over).
    fn evaluate_away(self, batch: Vec<Event>, first_id: i64) -> Self {
        match self {
            HookSlot::Here(mut hook) => HookSlot::Away(tokio::task::spawn_blocking(move || {
                hook.evaluate(&batch, first_id);
                (hook, batch)
            })),
            away => away,
        }
    }

    fn busy(&self) -> bool {
        matches!(self, HookSlot::Here(hook) if hook.busy())
    }
}

async fn persist<H: AfterCommit>(hook: &mut H, conn: &mut SqliteConnection, events: usize) {
    if let Err(error) = hook.persist(conn).await {
        // The events are stored; the rule cursor did not move, so the next start evaluates them again.
        tracing::error!(%error, events, "rule evaluation of a committed batch failed");
    }
}

/// Commits everything the queue delivers until every sender is gone, then returns the connection.
///
/// While more events wait, a committed batch is evaluated on another thread as the next one is inserted; when the
/// queue is empty it is evaluated at once, so that an alert never waits for traffic that may not come.
pub async fn run<H: AfterCommit>(
    mut conn: SqliteConnection,
    mut queue: mpsc::Receiver<Event>,
    policy: BatchPolicy,
    counters: Arc<Counters>,
    hook: H,
) -> Result<(SqliteConnection, WriterSummary), StoreError> {
    let rows = policy.rows.max(1);
    let mut batch: Vec<Event> = Vec::with_capacity(rows);
    let mut summary = WriterSummary::default();
    let mut open = true;
    let mut hook = HookSlot::Here(hook);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while open {
        if queue.is_empty() {
            hook.settle(&mut conn).await;
        }
        let received = tokio::select! {
            received = queue.recv_many(&mut batch, rows) => received,
            _ = ticker.tick() => {
                let (hook, _) = hook.settle(&mut conn).await;
                if let Err(error) = hook.tick(&mut conn, Utc::now()).await {
                    tracing::error!(%error, "timer evaluation failed");
                }
                continue;
            }
            _ = std::future::ready(()), if hook.busy() => {
                let (hook, _) = hook.settle(&mut conn).await;
                if let Err(error) = hook.tick(&mut conn, Utc::now()).await {
                    tracing::error!(%error, "background evaluation failed");
                }
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let deadline = Instant::now() + policy.delay;
        while batch.len() < rows {
            let room = rows - batch.len();
            // Group commit: when nothing else is waiting, commit now rather than hold an alert-bearing line for
            // `delay`; under load the queue refills while a commit runs, so batches grow by themselves.
            tokio::task::yield_now().await;
            if queue.is_empty() {
                break;
            }
            tokio::select! {
                received = queue.recv_many(&mut batch, room) => if received == 0 {
                    open = false;
                    break;
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        counters.queue_depth.store(queue.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let first_id = commit_with_retry(&mut conn, &batch, !open || queue.is_closed(), &counters).await?;
        counters.batch_seconds.observe(started.elapsed().as_secs_f64());
        Counters::add(&counters.stored, batch.len() as u64);
        counters.count_datasets(
            batch.iter().map(|e| e.get(crate::event::field::DATASET).unwrap_or(crate::event::DATASET_SYSLOG)),
        );
        summary.stored += batch.len() as u64;
        summary.batches += 1;
        // The previous batch's results are written first: evaluation follows commit order.
        let (here, returned) = hook.settle(&mut conn).await;
        if open && !queue.is_empty() {
            let mut next = returned.unwrap_or_default();
            next.clear();
            next.reserve(rows);
            hook = hook.evaluate_away(std::mem::replace(&mut batch, next), first_id);
        } else {
            here.evaluate(&batch, first_id);
            persist(here, &mut conn, batch.len()).await;
            batch.clear();
        }
    }
    let (hook, _) = hook.settle(&mut conn).await;
    if let Err(error) = hook.finish(&mut conn).await {
        tracing::error!(%error, "final evaluation at shutdown failed");
    }
    Ok((conn, summary))
}

async fn commit_with_retry(
    conn: &mut SqliteConnection,
    batch: &[Event],
    closing: bool,
    counters: &Counters,
) -> Result<i64, StoreError> {
    let mut delay = Duration::from_millis(100);
    let mut last_error: Option<String> = None;
    let mut attempts = 0u32;
    loop {
        match insert_batch(conn, batch).await {
            Ok(first_id) => {
                counters.store_failing.store(false, std::sync::atomic::Ordering::Relaxed);
                if last_error.is_some() {
                    tracing::info!(events = batch.len(), "database writes succeed again");
                }
                return Ok(first_id);
            }
            Err(error) if error.is_retryable() && !(closing && attempts + 1 >= SHUTDOWN_ATTEMPTS) => {
                let text = error.to_string();
                // One warning when the error changes, not one per retry.
                if last_error.as_deref() != Some(&text) {
                    tracing::warn!(%error, events = batch.len(), "cannot commit batch; holding it and retrying (TCP senders are slowed meanwhile)");
                    last_error = Some(text);
                }
                Counters::add(&counters.store_retries, 1);
                counters.store_failing.store(true, std::sync::atomic::Ordering::Relaxed);
                attempts += 1;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(error) => {
                tracing::error!(%error, events = batch.len(), "giving up on a batch that cannot be stored");
                return Err(error);
            }
        }
    }
}

/// Inserts a batch in one transaction, with its link in the tamper-evident chain; returns the row id of its first
/// event (the others follow in order).
///
/// The batch goes in as a few multi-row INSERTs, pipelined: while SQLite's thread inserts one chunk, this task hashes
/// it and turns the next chunk's events into row values, so the two threads work side by side instead of in turns.
pub async fn insert_batch(conn: &mut SqliteConnection, batch: &[Event]) -> Result<i64, StoreError> {
    if batch.is_empty() {
        return Ok(0);
    }
    super::in_transaction(conn, async |conn| {
        let prev_hash = chain::head(conn).await?;
        // Rows of one INSERT get consecutive row ids, max(id)+1 onwards (SQLite's rowid algorithm without
        // AUTOINCREMENT), and BEGIN IMMEDIATE keeps other writers out meanwhile: the ids are known before inserting.
        let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM events").fetch_one(&mut *conn).await?;
        let mut next_id = newest.unwrap_or(0) + 1;
        let mut hasher = chain::BatchHasher::new(&prev_hash);
        let mut chunks = batch.chunks(ROWS_PER_STATEMENT);
        let mut rows: Vec<RowValues<'_>> = chunks.next().map(prepare).unwrap_or_default();
        while !rows.is_empty() {
            let before = hasher.clone();
            let (last_id, next_rows) = insert_rows(conn, &rows, async || {
                hash_rows(&mut hasher, &rows, next_id);
                chunks.next().map(prepare).unwrap_or_default()
            })
            .await?;
            let actual_first = last_id - rows.len() as i64 + 1;
            if actual_first != next_id {
                // Not expected (see above), but the chain must hash the ids the rows really got.
                tracing::warn!(expected = next_id, actual = actual_first, "row ids differ from max(id)+1; rehashing");
                hasher = before;
                hash_rows(&mut hasher, &rows, actual_first);
            }
            next_id = last_id + 1;
            rows = next_rows;
        }
        let last_id = next_id - 1;
        let first_id = next_id - batch.len() as i64;
        let hash = hasher.finish();
        chain::record(conn, first_id, last_id, batch.len() as u64, &prev_hash, &hash, chrono::Utc::now()).await?;
        Ok(first_id)
    })
    .await
}

fn prepare(chunk: &[Event]) -> Vec<RowValues<'_>> {
    chunk.iter().map(row_values).collect()
}

fn hash_rows(hasher: &mut chain::BatchHasher, rows: &[RowValues<'_>], first_id: i64) {
    for (i, values) in rows.iter().enumerate() {
        hasher.row(&chain::RowImage {
            id: first_id + i as i64,
            times: values.times,
            typed: values.typed,
            raw: values.raw,
            fields: &values.json,
            message_at: values.message_at,
        });
    }
}

/// Inserts `rows` with one statement and runs `meanwhile` while SQLite works on it; returns the last row id and what
/// `meanwhile` returned.
async fn insert_rows<T>(
    conn: &mut SqliteConnection,
    rows: &[RowValues<'_>],
    meanwhile: impl AsyncFnOnce() -> T,
) -> Result<(i64, T), StoreError> {
    let mut insert: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!("INSERT INTO events ({INSERT_COLUMNS}) "));
    insert.push_values(rows, |mut row, values| {
        for time in values.times {
            row.push_bind(time);
        }
        for text in values.typed {
            row.push_bind(text);
        }
        row.push_bind(values.raw);
        row.push_bind(values.json.as_str());
        row.push_bind(values.message_at);
    });
    let mut execute = std::pin::pin!(insert.build().persistent(true).execute(&mut *conn));
    // The first poll hands the statement to SQLite's thread; the work in between overlaps with it.
    let early = std::future::poll_fn(|cx| std::task::Poll::Ready(execute.as_mut().poll(cx))).await;
    let other = meanwhile().await;
    let result = match early {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => execute.await,
    }?;
    Ok((result.last_insert_rowid(), other))
}

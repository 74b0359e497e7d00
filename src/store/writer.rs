//! The batch writer: the one task that decides what is committed when.
//!
//! Receives events from the bounded queue; commits them in batches (flushed by size, by age, or as soon as nothing else
//! is waiting: group commit, so a lone alert-bearing line is not held back), each batch one `BEGIN IMMEDIATE`
//! transaction on the event inserter's connection ([`super::inserter`]), then hands the committed batch to the hook
//! (rule evaluation), which writes on the shared write connection ([`Writer`]), taken for each write. A failed commit (disk full, lock) is retried
//! with backoff while the queue fills up behind it, which is what slows TCP senders down instead of losing their lines.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use tokio::time::Instant;

use super::inserter::Inserter;
use super::{SharedConn, StoreError, WriteConn};
use crate::event::Event;
use crate::metrics::Counters;
use crate::queue::{ByteBudget, QueueReceiver};

/// Longest wait between two attempts at a failing commit.
pub(crate) const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// A run of failing commits ends once commits have succeeded for this long: near a full disk, commits fail and succeed
/// by turns as the writer makes room, which is one condition, said once.
const FAILURES_END_AFTER: Duration = Duration::from_secs(10);

/// What the log has said of failing commits: one warning when they start, a summary every `log.summary_interval`
/// while they go on, one line when they have ended.
#[derive(Debug)]
pub(crate) struct FailureLog {
    /// How often a run that goes on is summarised.
    summary_every: Duration,
    /// When the current run of failures began, and the last failure in it.
    run: Option<(Instant, Instant)>,
    /// The error last said, and when.
    said: Option<(String, Instant)>,
}

impl FailureLog {
    /// A log that summarises a run of failures every `summary_every`.
    pub(crate) fn new(summary_every: Duration) -> Self {
        FailureLog { summary_every, run: None, said: None }
    }

    /// A commit failed; `held` events wait.
    pub(crate) fn failed(&mut self, error: &StoreError, held: u64) {
        let now = Instant::now();
        let text = error.to_string();
        match (&mut self.run, &self.said) {
            (None, _) => {
                tracing::warn!(%error, events = held, "cannot commit batch; holding it and retrying (TCP senders are slowed meanwhile)");
                self.said = Some((text, now));
            }
            (Some(_), Some((said, at))) if *said != text || at.elapsed() >= self.summary_every => {
                tracing::warn!(%error, events = held, "still cannot commit every batch; holding what does not fit");
                self.said = Some((text, now));
            }
            _ => {}
        }
        let began = self.run.map_or(now, |(began, _)| began);
        self.run = Some((began, now));
    }

    /// A commit succeeded.
    pub(crate) fn succeeded(&mut self) {
        if let Some((began, last)) = self.run {
            if last.elapsed() >= FAILURES_END_AFTER {
                let lasted = last.duration_since(began).as_secs();
                tracing::info!(
                    failed_for = %humantime::format_duration(Duration::from_secs(lasted)),
                    "database writes succeed again"
                );
                self.run = None;
                self.said = None;
            }
        }
    }
}

/// How often a failing commit is tried once the queue has closed (shutdown) before the batch is given up.
pub(crate) const SHUTDOWN_ATTEMPTS: u32 = 10;

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
    fn persist<'a>(&'a mut self, conn: &'a mut WriteConn) -> HookFuture<'a>;
    /// Time passed (timers that fire without new events).
    fn tick<'a>(&'a mut self, conn: &'a mut WriteConn, now: DateTime<Utc>) -> HookFuture<'a>;
    /// Whether it has work of its own (a backlog): the writer then calls [`AfterCommit::tick`] whenever no batch is
    /// waiting, instead of once a second.
    fn busy(&self) -> bool {
        false
    }
    /// The queue closed: the last chance to write what is held.
    fn finish<'a>(&'a mut self, conn: &'a mut WriteConn) -> HookFuture<'a> {
        self.tick(conn, Utc::now())
    }
}

/// No work after commits.
#[derive(Debug, Default)]
pub struct NoHook;

impl AfterCommit for NoHook {
    fn evaluate(&mut self, _: &[Event], _: i64) {}
    fn persist<'a>(&'a mut self, _: &'a mut WriteConn) -> HookFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    fn tick<'a>(&'a mut self, _: &'a mut WriteConn, _: DateTime<Utc>) -> HookFuture<'a> {
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
    /// While commits keep failing, a warning says so this often (`log.summary_interval`).
    pub failing_summary: Duration,
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
    /// Waits for the batch sent away, writes what its evaluation produced and gives back the bytes it held (the
    /// caller only reuses its vector).
    async fn settle(&mut self, writer: &SharedConn, budget: &ByteBudget) -> (&mut H, Option<Vec<Event>>) {
        let mut events = None;
        if let HookSlot::Away(task) = self {
            let (mut hook, batch) = match task.await {
                Ok(returned) => returned,
                // The hook's panic is the writer's, as it was when evaluation ran on the writer's own task.
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            };
            persist(&mut hook, writer, batch.len()).await;
            budget.release(&batch);
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

async fn persist<H: AfterCommit>(hook: &mut H, writer: &SharedConn, events: usize) {
    if let Err(error) = hook.persist(&mut *writer.lock().await).await {
        // The events are stored; the rule cursor did not move, so the next start evaluates them again.
        tracing::error!(%error, events, "rule evaluation of a committed batch failed");
    }
}

/// Commits everything the queue delivers until every sender is gone, then stops the inserter.
///
/// Events are committed by `inserter`; the hook writes on `writer`. While more events wait, a committed batch is evaluated on
/// another thread as the next one is inserted; when the queue is empty it is evaluated at once, so that an alert never
/// waits for traffic that may not come.
pub async fn run<H: AfterCommit>(
    writer: SharedConn,
    inserter: Inserter,
    mut queue: QueueReceiver,
    policy: BatchPolicy,
    counters: Arc<Counters>,
    hook: H,
) -> Result<WriterSummary, StoreError> {
    let rows = policy.rows.max(1);
    let budget = queue.budget().clone();
    let mut batch: Vec<Event> = Vec::with_capacity(rows);
    let mut summary = WriterSummary::default();
    let mut open = true;
    let mut hook = HookSlot::Here(hook);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The rest of a batch too large for the space left (see `commit_with_retry`): committed before anything newer.
    let mut carried: Vec<Event> = Vec::new();
    let mut failures = FailureLog::new(policy.failing_summary);
    while open || !carried.is_empty() {
        if !carried.is_empty() {
            batch.append(&mut carried);
        } else {
            if queue.is_empty() {
                hook.settle(&writer, &budget).await;
            }
            let received = tokio::select! {
                received = queue.recv_many(&mut batch, rows) => received,
                _ = ticker.tick() => {
                    let (hook, _) = hook.settle(&writer, &budget).await;
                    if let Err(error) = hook.tick(&mut *writer.lock().await, Utc::now()).await {
                        tracing::error!(%error, "timer evaluation failed");
                    }
                    continue;
                }
                _ = std::future::ready(()), if hook.busy() => {
                    let (hook, _) = hook.settle(&writer, &budget).await;
                    if let Err(error) = hook.tick(&mut *writer.lock().await, Utc::now()).await {
                        tracing::error!(%error, "background evaluation failed");
                    }
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            open = fill(&mut queue, &mut batch, rows, policy.delay).await;
        }
        counters.queue_depth.store(queue.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let closing = !open || queue.is_closed();
        let first_id =
            commit_with_retry(&inserter, &mut batch, &mut carried, closing, &counters, &mut failures).await?;
        counters.batch_seconds.observe(started.elapsed().as_secs_f64());
        Counters::add(&counters.stored, batch.len() as u64);
        counters.count_datasets(
            batch.iter().map(|e| e.get(crate::event::field::DATASET).unwrap_or(crate::event::DATASET_SYSLOG)),
        );
        summary.stored += batch.len() as u64;
        summary.batches += 1;
        // The previous batch's results are written first: evaluation follows commit order.
        let (here, returned) = hook.settle(&writer, &budget).await;
        if open && !queue.is_empty() {
            let mut next = returned.unwrap_or_default();
            next.clear();
            next.reserve(rows);
            hook = hook.evaluate_away(std::mem::replace(&mut batch, next), first_id);
        } else {
            here.evaluate(&batch, first_id);
            persist(here, &writer, batch.len()).await;
            budget.release(&batch);
            batch.clear();
        }
    }
    let (hook, _) = hook.settle(&writer, &budget).await;
    if let Err(error) = hook.finish(&mut *writer.lock().await).await {
        tracing::error!(%error, "final evaluation at shutdown failed");
    }
    inserter.close().await;
    Ok(summary)
}

/// Adds what the queue holds to `batch`, up to `rows`, until the queue is empty or `delay` has passed; returns whether
/// the queue is still open.
pub(crate) async fn fill(queue: &mut QueueReceiver, batch: &mut Vec<Event>, rows: usize, delay: Duration) -> bool {
    let deadline = Instant::now() + delay;
    while batch.len() < rows {
        let room = rows - batch.len();
        // Group commit: when nothing else is waiting, commit now rather than hold an alert-bearing line for `delay`;
        // under load the queue refills while a commit runs, so batches grow by themselves.
        tokio::task::yield_now().await;
        if queue.is_empty() {
            break;
        }
        tokio::select! {
            received = queue.recv_many(batch, room) => if received == 0 {
                return false;
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    true
}

/// Commits `batch`, retrying what may pass. When the database is full, each retry commits the first half of what is
/// left and moves the rest to the front of `carried`: a batch that cannot fit in the space an operator frees (or a
/// size cap allows) would otherwise be held forever.
async fn commit_with_retry(
    inserter: &Inserter,
    batch: &mut Vec<Event>,
    carried: &mut Vec<Event>,
    closing: bool,
    counters: &Counters,
    failures: &mut FailureLog,
) -> Result<i64, StoreError> {
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        let attempted = batch.len();
        let (returned, outcome) = inserter.insert(std::mem::take(batch)).await;
        *batch = returned;
        match outcome {
            Ok(first_id) => {
                counters.store_failing.store(false, std::sync::atomic::Ordering::Relaxed);
                counters.storage_full.store(false, std::sync::atomic::Ordering::Relaxed);
                counters.held_events.store(0, std::sync::atomic::Ordering::Relaxed);
                failures.succeeded();
                return Ok(first_id);
            }
            Err(error) if error.is_retryable() && !(closing && attempts + 1 >= SHUTDOWN_ATTEMPTS) => {
                let held = (batch.len() + carried.len()) as u64;
                failures.failed(&error, held);
                Counters::add(&counters.store_retries, 1);
                counters.store_failing.store(true, std::sync::atomic::Ordering::Relaxed);
                counters.storage_full.store(error.is_full(), std::sync::atomic::Ordering::Relaxed);
                counters.held_events.store(held, std::sync::atomic::Ordering::Relaxed);
                attempts += 1;
                let halved = error.is_full() && batch.len() > 1;
                if halved {
                    let rest = batch.split_off(batch.len() / 2);
                    carried.splice(0..0, rest);
                }
                tokio::time::sleep(delay).await;
                // A smaller part may fit at once: the wait grows only when the same rows are tried again.
                if !halved {
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
            Err(error) => {
                // `attempted`: a batch the inserter lost with its thread does not come back.
                let events = attempted + carried.len();
                tracing::error!(%error, events, "giving up on a batch that cannot be stored");
                return Err(error);
            }
        }
    }
}

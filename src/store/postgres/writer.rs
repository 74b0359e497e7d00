//! The batch writer of a collector on PostgreSQL: the one task that stores what this collector receives.
//!
//! Receives events from the bounded queue; stores them in batches as SQLite's writer does (by size, by age, or as soon
//! as nothing else waits), each batch one transaction ([`PgStore::insert_batch`]). A batch that cannot be stored (the
//! database restarting, unreachable, failing over) is held and tried again with a growing wait while nothing more is
//! taken from the queue: the queue fills, TCP senders are slowed and UDP overflow is counted, and nothing accepted is
//! lost. Rules are not evaluated here: the leading collector evaluates the shared table (see `crate::lead`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::PgStore;
use crate::event::Event;
use crate::metrics::Counters;
use crate::queue::QueueReceiver;
use crate::store::writer::{fill, BatchPolicy, FailureLog, WriterSummary, MAX_RETRY_DELAY, SHUTDOWN_ATTEMPTS};
use crate::store::StoreError;

/// Stores everything the queue delivers until every sender is gone.
pub async fn run(
    store: PgStore,
    mut queue: QueueReceiver,
    policy: BatchPolicy,
    counters: Arc<Counters>,
) -> Result<WriterSummary, StoreError> {
    let rows = policy.rows.max(1);
    let budget = queue.budget().clone();
    let mut batch: Vec<Event> = Vec::with_capacity(rows);
    let mut summary = WriterSummary::default();
    let mut failures = FailureLog::new(policy.failing_summary);
    let mut open = true;
    while open {
        if queue.recv_many(&mut batch, rows).await == 0 {
            break;
        }
        open = fill(&mut queue, &mut batch, rows, policy.delay).await;
        counters.queue_depth.store(queue.len() as u64, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let closing = !open || queue.is_closed();
        let stored = store_with_retry(&store, &batch, closing, &counters, &mut failures).await;
        budget.release(&batch);
        let stored = stored?;
        counters.batch_seconds.observe(started.elapsed().as_secs_f64());
        Counters::add(&counters.stored, batch.len() as u64);
        Counters::add(&counters.stored_copies, stored.copies as u64);
        counters.count_datasets(
            batch.iter().map(|e| e.get(crate::event::field::DATASET).unwrap_or(crate::event::DATASET_SYSLOG)),
        );
        summary.stored += batch.len() as u64;
        summary.batches += 1;
        batch.clear();
    }
    Ok(summary)
}

/// Stores `batch`, trying again while the error may pass (for [`SHUTDOWN_ATTEMPTS`] once the queue has closed).
async fn store_with_retry(
    store: &PgStore,
    batch: &[Event],
    closing: bool,
    counters: &Counters,
    failures: &mut FailureLog,
) -> Result<super::BatchStored, StoreError> {
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        match store.insert_batch(batch).await {
            Ok(stored) => {
                counters.store_failing.store(false, Ordering::Relaxed);
                counters.held_events.store(0, Ordering::Relaxed);
                failures.succeeded();
                return Ok(stored);
            }
            Err(error) if error.is_retryable() && !(closing && attempts + 1 >= SHUTDOWN_ATTEMPTS) => {
                failures.failed(&error, batch.len() as u64);
                Counters::add(&counters.store_retries, 1);
                counters.store_failing.store(true, Ordering::Relaxed);
                counters.held_events.store(batch.len() as u64, Ordering::Relaxed);
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

//! The SNMP stage: polls Luna appliances over SNMPv3 and turns what changed into events of the same contract as log
//! lines (`event.dataset: luna.snmp`), stored and evaluated like any line.
//!
//! One task per target polls it every `interval` (spread over the interval so that hundreds of targets do not all
//! ask at once), compares the reading with the state last known (kept in the store, so a restart makes no burst of
//! "changes"), sends the events to the writer queue and saves the state. What is read is data
//! ([`objects`], `rules/snmp/*.yaml`); the SNMP client is the `snmp2` crate ([`client`]).

pub mod client;
pub mod engine;
pub mod objects;
pub mod reading;
pub mod traps;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use self::objects::Objects;
use self::reading::Reading;
use self::watch::{TargetState, Watcher};
use crate::config::snmp::ResolvedTarget;
use crate::metrics::Counters;
use crate::queue::Queue;
use crate::store::{StoreError, Writer};

/// What a poller task needs besides its target.
#[derive(Clone)]
pub struct PollerContext {
    /// The SNMP table.
    pub objects: Arc<Objects>,
    /// Where its events go.
    pub queue: Queue,
    /// Where its state is saved.
    pub writer: Writer,
    /// Where its figures are shown.
    pub counters: Arc<Counters>,
    /// Stops it.
    pub shutdown: CancellationToken,
}

/// The saved state of every target, by name (a state that no longer reads is started afresh, and said so).
pub async fn saved_states(writer: &Writer) -> Result<std::collections::HashMap<String, TargetState>, StoreError> {
    let rows = crate::store::snmp::states(&mut *writer.lock().await?).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(target, json)| match serde_json::from_str(&json) {
            Ok(state) => Some((target, state)),
            Err(error) => {
                tracing::warn!(%target, %error, "the saved SNMP state of this target cannot be read; starting afresh");
                None
            }
        })
        .collect())
}

/// Where in the interval a target's polls fall: its name hashed, so that each target keeps its place.
fn offset(name: &str, interval: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(hasher.finish() % millis)
}

/// Polls `target` until shutdown.
pub async fn run(target: ResolvedTarget, mut state: TargetState, context: PollerContext) {
    tracing::info!(target = %target.name, address = %target.address, interval = ?target.interval, "SNMP polling started");
    let first = tokio::time::Instant::now() + offset(&target.name, target.interval);
    let mut ticks = tokio::time::interval_at(first, target.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = context.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let started = Instant::now();
        // A poll never outlasts its interval, however the agent behaves.
        let polled = tokio::time::timeout(target.interval, reading::poll(&target, &context.objects));
        let outcome = tokio::select! {
            _ = context.shutdown.cancelled() => return,
            polled = polled => polled.unwrap_or_else(|_| Err(client::PollError::Timeout {
                address: target.address.clone(),
                timeout: target.interval,
                attempts: target.retries + 1,
            })),
        };
        let took = started.elapsed();
        record_figures(&context.counters, &target.name, &outcome, took);
        let watcher = Watcher { target: &target, objects: &context.objects, now: Utc::now() };
        let events = match outcome {
            Ok(reading) => watcher.succeeded(&mut state, reading),
            Err(error) => {
                tracing::debug!(target = %target.name, %error, "SNMP poll failed");
                watcher.failed(&mut state, &error.to_string())
            }
        };
        for event in events {
            if context.queue.send(event).await.is_err() {
                return;
            }
        }
        if let Err(error) = save(&context.writer, &target.name, &state).await {
            tracing::warn!(target = %target.name, %error, "cannot save the SNMP state; the next poll tries again");
        }
    }
}

async fn save(writer: &Writer, name: &str, state: &TargetState) -> Result<(), StoreError> {
    let json = serde_json::to_string(state).map_err(|e| StoreError::CorruptRow { id: 0, reason: e.to_string() })?;
    crate::store::snmp::save(&mut *writer.lock().await?, name, &json, Utc::now()).await
}

fn record_figures(counters: &Counters, name: &str, outcome: &Result<Reading, client::PollError>, took: Duration) {
    let mut all = counters.snmp.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let figures = all.entry(name.to_owned()).or_default();
    figures.poll_seconds = took.as_secs_f64();
    let Ok(reading) = outcome else {
        figures.up = false;
        figures.polls_failed += 1;
        return;
    };
    figures.up = true;
    figures.polls_ok += 1;
    let number = |role: &str| reading.number(role).map(|n| n as f64);
    figures.ntls_clients = number("ntls.clients");
    figures.operation_requests = number("hsm.operation_requests");
    figures.operation_errors = number("hsm.operation_errors");
    figures.storage_used_pct = reading.highest_storage_pct();
    figures.disk_used_pct = reading.highest_disk_pct();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_spread_over_the_interval_and_keep_their_place() {
        let interval = Duration::from_secs(60);
        let places: std::collections::BTreeSet<u64> =
            (0..500).map(|n| offset(&format!("hsm-{n}"), interval).as_secs()).collect();
        assert!(places.len() > 50, "500 targets fall in {} distinct seconds", places.len());
        assert_eq!(offset("hsm-1", interval), offset("hsm-1", interval));
        assert!(offset("hsm-1", interval) < interval);
    }
}

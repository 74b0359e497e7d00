//! Store, then evaluate: after each committed batch the rule engine sees the stored events (with their row ids), and
//! the alerts it produces are written together with the rule state, the throttle marks and the evaluation cursor, in
//! one transaction. So a crash neither forgets a half-full window nor fires an alert twice: what was committed is
//! consistent, and on start evaluation resumes after the cursor.
//!
//! Receives committed batches and timer ticks from the writer; emits alerts into the `alerts` table (and the log).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use tokio::sync::Notify;

use crate::alert::{Alert, Alerter};
use crate::event::Event;
use crate::metrics::Counters;
use crate::outbox::Routing;
use crate::rules::engine::{Engine, Firing, StateChange};
use crate::rules::load::Rule;
use crate::store::rule_state as state;
use crate::store::writer::{AfterCommit, HookFuture};
use crate::store::{outbox, EvaluationConn, StoreError, TableConn, WriteConn};
use crate::telemetry::Escaped;

/// Attempts at writing an evaluation's results before giving up (the cursor then stays, and a restart redoes it).
const WRITE_ATTEMPTS: u32 = 6;

/// Rules waiting to replace the running ones, handed over by a reload to the writer task that owns the evaluator.
pub type ReloadSlot = Arc<std::sync::Mutex<Option<Vec<Arc<Rule>>>>>;

/// The evaluation stage.
#[derive(Debug)]
pub struct Evaluator {
    engine: Engine,
    alerter: Alerter,
    reload: ReloadSlot,
    evictions_logged: u64,
    /// Results whose write failed, merged into the next write: the cursor never moves past unsaved results.
    pending: Option<Results>,
    /// Which notifiers an alert goes to.
    routing: Routing,
    /// Woken when deliveries are queued.
    deliveries: Arc<Notify>,
    /// Evaluations, their time, and alerts recorded.
    counters: Arc<Counters>,
    /// The last event evaluated.
    cursor: i64,
    /// Stored events wait after the cursor (a backlog at start, or rows another process inserted).
    behind: bool,
    /// What `evaluate` produced and `persist` has not written yet.
    unwritten: Unwritten,
    /// When open alerts were last checked against their rule's `resolve_after`.
    last_sweep: Option<DateTime<Utc>>,
}

/// How often open alerts are checked against their rule's `resolve_after`.
const SWEEP_EVERY: chrono::Duration = chrono::Duration::seconds(10);

/// Firings of evaluated batches, before they are written.
#[derive(Debug, Default)]
struct Unwritten {
    firings: Vec<Firing>,
    /// The last event evaluated.
    cursor: Option<i64>,
    /// Time spent evaluating.
    took: Duration,
}

/// Events evaluated per catch-up step.
const CATCH_UP_CHUNK: i64 = 2000;

/// What one evaluation writes, kept so that a failed write can be retried as is.
#[derive(Debug, Default, PartialEq)]
struct Results {
    alerts: Vec<Alert>,
    changes: Vec<StateChange>,
    marks: Vec<crate::store::alerts::MarkRow>,
    cursor: Option<i64>,
}

impl Results {
    /// These results followed by `newer`: alerts of both in order, and for state and marks the newer value wins.
    fn merged(mut self, newer: Results) -> Results {
        self.alerts.extend(newer.alerts);
        for change in newer.changes {
            self.changes.retain(|c| (&c.rule_id, &c.key) != (&change.rule_id, &change.key));
            self.changes.push(change);
        }
        for mark in newer.marks {
            self.marks.retain(|m| m.0 != mark.0);
            self.marks.push(mark);
        }
        self.cursor = self.cursor.max(newer.cursor);
        self
    }

    fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.changes.is_empty() && self.marks.is_empty() && self.cursor.is_none()
    }
}

impl Evaluator {
    /// Builds the engine for `rules`, restores saved state and throttle marks, and evaluates the events stored after
    /// the cursor (those a crash left unevaluated).
    pub async fn start(
        conn: &mut impl EvaluationConn,
        rules: &[Arc<Rule>],
        routing: Routing,
        deliveries: Arc<Notify>,
        counters: Arc<Counters>,
        now: DateTime<Utc>,
    ) -> Result<Evaluator, StoreError> {
        let mut engine = Engine::new(rules, now);
        let saved = state::load(conn).await?;
        let restored = saved.iter().filter(|(rule, hash, key, json)| engine.restore(rule, *hash, key, json)).count();
        let mut alerter = Alerter::new(engine.rules());
        for (fingerprint, last_sent, suppressed) in crate::store::alerts::load_marks(conn).await? {
            alerter.restore_mark(fingerprint, last_sent, suppressed);
        }
        tracing::info!(rules = engine.rules().len(), restored, discarded = saved.len() - restored, "rule engine ready");
        let cursor = state::cursor(conn).await?;
        let newest = state::newest_event(conn).await?;
        let behind = newest > cursor;
        if behind {
            // Evaluated in the background, a chunk at a time between the writer's batches: a large backlog (after an
            // import, or a long stop) must not keep the listeners closed.
            tracing::info!(
                after = cursor,
                events = newest - cursor,
                "events stored before the last stop will be evaluated in the background"
            );
        }
        Ok(Evaluator {
            engine,
            alerter,
            reload: ReloadSlot::default(),
            evictions_logged: 0,
            pending: None,
            routing,
            deliveries,
            counters,
            cursor,
            behind,
            unwritten: Unwritten::default(),
            last_sweep: None,
        })
    }

    /// Whether stored events wait for evaluation (the writer then calls [`AfterCommit::tick`] between batches).
    pub fn is_behind(&self) -> bool {
        self.behind
    }

    /// Evaluates the next chunk of stored events after the cursor, in id order.
    async fn catch_up(&mut self, conn: &mut impl EvaluationConn) -> Result<(), StoreError> {
        if self.evaluate_next_chunk(conn).await? == 0 {
            self.behind = false;
            tracing::info!(cursor = self.cursor, "rule evaluation caught up");
        }
        Ok(())
    }

    /// Evaluates up to [`CATCH_UP_CHUNK`] stored events after the cursor, in id order, and writes what they fired;
    /// returns how many there were.
    async fn evaluate_next_chunk(&mut self, conn: &mut impl EvaluationConn) -> Result<usize, StoreError> {
        let chunk = conn.events_after(self.cursor, CATCH_UP_CHUNK).await?;
        let Some(last) = chunk.last().map(|e| e.id) else { return Ok(0) };
        let firings = self.process(chunk.iter().map(|s| (s.id, &s.event)));
        Counters::add(&self.counters.events_evaluated, chunk.len() as u64);
        self.cursor = last;
        self.write(conn, firings, Some(last)).await?;
        Ok(chunk.len())
    }

    /// One step of a leader following a table other collectors write too (PostgreSQL): the next chunk of stored
    /// events after the cursor, or, when none waits, the timers and the resolution of quiet alerts. Returns how many
    /// events it evaluated.
    pub async fn follow(&mut self, conn: &mut impl EvaluationConn, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.take_reload(now);
        let started = std::time::Instant::now();
        let evaluated = self.evaluate_next_chunk(conn).await?;
        if evaluated > 0 {
            self.counters.evaluation_seconds.observe(started.elapsed().as_secs_f64());
            return Ok(evaluated);
        }
        self.run_timers(conn, now).await?;
        Ok(0)
    }

    /// Timers due by `now` (windows that close, absences) and the resolution of quiet alerts.
    async fn run_timers(&mut self, conn: &mut impl TableConn, now: DateTime<Utc>) -> Result<(), StoreError> {
        let firings = self.engine.advance(now);
        self.write(conn, firings, None).await?;
        self.resolve_expired(conn, now).await
    }

    /// Resolves open alerts that have not fired for their rule's `resolve_after` (at most every [`SWEEP_EVERY`]).
    /// Alerts of rules no longer loaded get the default.
    async fn resolve_expired(&mut self, conn: &mut impl TableConn, now: DateTime<Utc>) -> Result<(), StoreError> {
        if self.last_sweep.is_some_and(|last| now - last < SWEEP_EVERY) {
            return Ok(());
        }
        self.last_sweep = Some(now);
        let rules = self.engine.rules();
        let after = |rule_id: &str| match rules.iter().find(|r| r.id == rule_id) {
            Some(rule) => rule.resolve_after,
            None => Some(crate::rules::load::DEFAULT_RESOLVE_AFTER),
        };
        let notify = self.routing.notifies_changes();
        let resolved = crate::store::alerts::resolve_expired(conn, now, after, notify).await?;
        if !resolved.is_empty() {
            tracing::info!(alerts = ?resolved, "alerts resolved after resolve_after without a firing");
            if notify {
                self.deliveries.notify_waiters();
            }
        }
        Ok(())
    }

    /// Where a reload puts new rules for this evaluator.
    pub fn reload_slot(&self) -> ReloadSlot {
        self.reload.clone()
    }

    /// Takes reloaded rules from `slot` instead (one a server made before this evaluator started).
    pub fn with_reload_slot(mut self, slot: ReloadSlot) -> Self {
        self.reload = slot;
        self
    }

    /// The rules it evaluates now.
    pub fn rules(&self) -> Vec<Arc<Rule>> {
        self.engine.rules().to_vec()
    }

    /// Switches to reloaded rules, if a reload left some: unchanged rules (same id and source) keep their state, and
    /// throttle marks are kept.
    fn take_reload(&mut self, now: DateTime<Utc>) {
        let Some(rules) = self.reload.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() else { return };
        let mut engine = Engine::new(&rules, now);
        let kept = self
            .engine
            .snapshot()
            .iter()
            .filter(|row| {
                row.state.as_deref().is_some_and(|s| engine.restore(&row.rule_id, row.rule_hash, &row.key, s))
            })
            .count();
        self.alerter = self.alerter.reloaded(engine.rules());
        self.engine = engine;
        tracing::info!(rules = self.engine.rules().len(), state_rows_kept = kept, "rules reloaded");
    }

    /// Evaluates events given with their row ids. Timers due before the batch fire first (a silence ends before the
    /// line that breaks it); within a batch the writer's one-second tick is precise enough.
    fn process<'e>(&mut self, events: impl IntoIterator<Item = (i64, &'e Event)>) -> Vec<Firing> {
        let mut events = events.into_iter().peekable();
        let mut firings = match events.peek() {
            Some((_, first)) => self.engine.advance(first.created.at),
            None => Vec::new(),
        };
        for (id, event) in events {
            firings.extend(self.engine.process(event, Some(id)));
        }
        firings
    }

    async fn write(
        &mut self,
        conn: &mut impl TableConn,
        firings: Vec<Firing>,
        cursor: Option<i64>,
    ) -> Result<(), StoreError> {
        if self.engine.groups_evicted > self.evictions_logged {
            // Logged when it happens, not once per group: a flood of distinct keys would flood the log too.
            tracing::warn!(
                forgotten = self.engine.groups_evicted - self.evictions_logged,
                total = self.engine.groups_evicted,
                "a rule hit its cap of groups; the least active groups were forgotten"
            );
            self.evictions_logged = self.engine.groups_evicted;
        }
        let alerts: Vec<Alert> = firings.iter().map(|f| self.alerter.alert(f)).collect();
        let fresh =
            Results { alerts, changes: self.engine.take_changes(), marks: self.alerter.take_changed_marks(), cursor };
        let results = match self.pending.take() {
            Some(earlier) => earlier.merged(fresh),
            None => fresh,
        };
        if results.is_empty() {
            return Ok(());
        }
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=WRITE_ATTEMPTS {
            match write_results(conn, &results, &self.routing).await {
                Ok(queued) => {
                    if queued > 0 {
                        self.deliveries.notify_waiters();
                    }
                    break;
                }
                Err(error) if attempt < WRITE_ATTEMPTS && error.is_retryable() => {
                    tracing::warn!(%error, attempt, "cannot write alerts and rule state; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => {
                    // Kept for the next write; until then the cursor stays before these events.
                    self.pending = Some(results);
                    return Err(error);
                }
            }
        }
        for alert in &results.alerts {
            self.counters.count_alert(&alert.rule_id, alert.severity);
            tracing::info!(
                rule = %alert.rule_id,
                severity = alert.severity,
                status = alert.status.as_str(),
                notify = alert.notify,
                // Both carry values of the log lines that fired the rule.
                fingerprint = %Escaped(&alert.fingerprint),
                title = %Escaped(&alert.title),
                "alert"
            );
        }
        Ok(())
    }
}

async fn write_results(conn: &mut impl TableConn, results: &Results, routing: &Routing) -> Result<usize, StoreError> {
    crate::store::in_transaction(conn, async |conn| {
        // Silences are read here, in the transaction, so one added by `hsmwatch silence add` applies at once.
        let silences = match results.alerts.iter().any(|a| a.notify) {
            true => crate::store::silences::active(conn, Utc::now()).await?,
            false => Vec::new(),
        };
        // A silence holds an alert back; so does a horizon its events are beyond (history does not page).
        let now = Utc::now();
        let held_back: Vec<Option<String>> = results
            .alerts
            .iter()
            .map(|alert| alert.notify.then(|| routing.held_back(alert.at, now)).flatten())
            .collect();
        let records: Vec<_> = results
            .alerts
            .iter()
            .zip(&held_back)
            .map(|(alert, held_back)| crate::store::alerts::AlertRecord {
                silenced_by: silences.iter().find(|s| alert.notify && s.matches(alert)).map(|s| s.id),
                held_back: held_back.as_deref(),
                ..alert.record()
            })
            .collect();
        let recorded = crate::store::alerts::insert(conn, &records).await?;
        // Deliveries are queued in the transaction of their alert: no alert without its jobs, no job without its alert.
        // An acknowledged alert's firings are recorded but not sent (the store says so in `held_back`).
        let mut queued = 0;
        for ((alert, recorded), record) in results.alerts.iter().zip(recorded).zip(&records) {
            if !alert.notify || record.silenced_by.is_some() || recorded.held_back.is_some() {
                continue;
            }
            for notifier in routing.targets(alert.notify_to.as_deref(), alert.level) {
                outbox::enqueue(conn, recorded.id, &notifier, alert.at).await?;
                queued += 1;
            }
        }
        state::save(conn, &results.changes).await?;
        crate::store::alerts::save_marks(conn, &results.marks).await?;
        if let Some(cursor) = results.cursor {
            state::set_cursor(conn, cursor).await?;
        }
        Ok(queued)
    })
    .await
}

impl AfterCommit for Evaluator {
    fn evaluate(&mut self, batch: &[Event], first_id: i64) {
        let started = std::time::Instant::now();
        self.take_reload(Utc::now());
        // Rows that are not the next ones after the cursor (a backlog, or another process's inserts in between)
        // are read back from the store, in order, by `persist` instead.
        if !batch.is_empty() && first_id != self.cursor + 1 {
            self.behind = true;
        }
        if !self.behind {
            let firings = self.process(batch.iter().enumerate().map(|(i, e)| (first_id + i as i64, e)));
            let last = (!batch.is_empty()).then(|| first_id + batch.len() as i64 - 1);
            self.cursor = last.unwrap_or(self.cursor);
            Counters::add(&self.counters.events_evaluated, batch.len() as u64);
            self.unwritten.firings.extend(firings);
            self.unwritten.cursor = last.or(self.unwritten.cursor);
        }
        self.unwritten.took += started.elapsed();
    }

    fn persist<'a>(&'a mut self, conn: &'a mut WriteConn) -> HookFuture<'a> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let unwritten = std::mem::take(&mut self.unwritten);
            let mut written = self.write(conn, unwritten.firings, unwritten.cursor).await;
            if written.is_ok() && self.behind {
                written = self.catch_up(conn).await;
            }
            let took = unwritten.took + started.elapsed();
            self.counters.evaluation_seconds.observe(took.as_secs_f64());
            written
        })
    }

    fn tick<'a>(&'a mut self, conn: &'a mut WriteConn, now: DateTime<Utc>) -> HookFuture<'a> {
        Box::pin(async move {
            self.take_reload(now);
            if self.behind {
                return self.catch_up(conn).await;
            }
            self.run_timers(conn, now).await
        })
    }

    fn busy(&self) -> bool {
        self.behind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, state: &str) -> StateChange {
        StateChange { rule_id: "r".into(), rule_hash: 1, key: key.into(), state: Some(state.into()) }
    }

    #[test]
    fn failed_results_merge_into_the_next_write() {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        let earlier = Results {
            changes: vec![change("a", "1"), change("b", "1")],
            marks: vec![("f".into(), at, 1)],
            cursor: Some(10),
            ..Results::default()
        };
        let newer = Results {
            changes: vec![change("a", "2")],
            marks: vec![("f".into(), at, 2)],
            cursor: None,
            ..Results::default()
        };
        let merged = earlier.merged(newer);
        assert_eq!(merged.changes, vec![change("b", "1"), change("a", "2")]);
        assert_eq!(merged.marks, vec![("f".to_owned(), at, 2)]);
        assert_eq!(merged.cursor, Some(10), "the cursor of unsaved results is kept");
        assert!(Results::default().is_empty());
    }
}

//! Leading, on a database several collectors share (PostgreSQL): one collector at a time evaluates the rules over the
//! shared events table in id order, records alerts and queues their deliveries; the others store what they receive
//! and wait.
//!
//! Each collector asks for the lead every third of `leader_timeout` ([`PgStore::try_lead`]: a lease on the database's
//! clock). The one that holds it builds a rule engine from the shared rule state and cursor and follows the table
//! ([`Evaluator::follow`]), writing each step in a transaction fenced by its term, so a leader that lost its lease
//! (paused, cut off) cannot write after its successor began. When the leader dies its lease runs out and another
//! collector takes over within `leader_timeout`, from what its predecessor committed: no alert twice, none lost.
//! A clean stop resigns the lease, so the next collector takes over at once. The leader also runs retention.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::evaluate::{Evaluator, ReloadSlot};
use crate::metrics::{Counters, Leadership};
use crate::outbox::Routing;
use crate::rules::load::Rule;
use crate::store::postgres::{Lead, LeaderConn, PgStore};
use crate::store::retention::RetentionPolicy;
use crate::store::StoreError;

/// How often a leader with nothing to evaluate looks for new events.
const POLL: Duration = Duration::from_millis(250);

/// What the leading stage needs.
pub struct LeadContext {
    /// The shared database.
    pub store: PgStore,
    /// The rules at start.
    pub rules: Vec<Arc<Rule>>,
    /// Where reloads put new rules.
    pub reload: ReloadSlot,
    /// Which notifiers an alert goes to.
    pub routing: Routing,
    /// Woken when deliveries are queued.
    pub deliveries: Arc<Notify>,
    /// The server's counters (and who leads, for `/readyz` and `/metrics`).
    pub counters: Arc<Counters>,
    /// `storage.postgres.leader_timeout`: the lease's length.
    pub timeout: Duration,
    /// What retention keeps: the leader prunes.
    pub retention: RetentionPolicy,
    /// Stops the stage (it resigns the lead if it holds it).
    pub shutdown: CancellationToken,
}

/// The lead this collector holds: its term's connection and the rule engine following the table.
struct Leading {
    conn: LeaderConn,
    evaluator: Evaluator,
}

/// Asks for the lead and, while this collector holds it, evaluates; until `shutdown`.
pub async fn run(mut context: LeadContext) {
    let renew_every = context.timeout / 3;
    let mut leading: Option<Leading> = None;
    let mut renew_at = tokio::time::Instant::now();
    let mut prune_at = tokio::time::Instant::now() + context.retention.every;
    loop {
        if tokio::time::Instant::now() >= renew_at {
            renew_at = tokio::time::Instant::now() + renew_every;
            leading = ask_for_the_lead(&mut context, leading).await;
        }
        if leading.is_some() && tokio::time::Instant::now() >= prune_at {
            prune_at = tokio::time::Instant::now() + context.retention.every;
            prune(&context).await;
        }
        let idle = match &mut leading {
            Some(lead) => match lead.evaluator.follow(&mut lead.conn, Utc::now()).await {
                Ok(evaluated) => evaluated == 0,
                Err(error) => {
                    leading = step_failed(&mut context, leading.take(), &error);
                    true
                }
            },
            None => true,
        };
        let wait = match (idle, &leading) {
            (false, _) => Duration::ZERO,
            (true, Some(_)) => POLL,
            (true, None) => renew_at.saturating_duration_since(tokio::time::Instant::now()),
        };
        tokio::select! {
            _ = context.shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if leading.is_some() {
        match context.store.resign().await {
            Ok(()) => tracing::info!("gave up the lead: another collector takes over at once"),
            Err(error) => {
                tracing::warn!(%error, "cannot give up the lead; another collector takes over when it runs out")
            }
        }
    }
}

/// Retention, by the leader alone: whole months of events, and old alerts.
async fn prune(context: &LeadContext) {
    match crate::store::retention::prune_shared(&context.store, &context.retention, &context.shutdown).await {
        Ok((pruned, alerts)) if pruned.events > 0 || alerts > 0 => tracing::info!(
            months = ?pruned.months,
            events = pruned.events,
            alerts,
            anchor_event = pruned.anchor.last_event_id,
            anchor_hash = %pruned.anchor.hash,
            "retention pruned events and alerts past their limits; chain anchor"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "retention failed; trying again at the next pass"),
    }
}

/// Renews or takes the lease; starts evaluating when a new term begins here, stops when another collector leads.
async fn ask_for_the_lead(context: &mut LeadContext, leading: Option<Leading>) -> Option<Leading> {
    let collector = context.store.collector().to_owned();
    match context.store.try_lead(context.timeout).await {
        Ok(Lead::Leading { term, .. }) => {
            let lead = match leading {
                Some(lead) if lead.conn.term() == term => lead,
                earlier => {
                    if let Some(lost) = earlier {
                        context.rules = lost.evaluator.rules();
                    }
                    match start_term(context, term).await {
                        Ok(lead) => lead,
                        Err(error) => {
                            tracing::warn!(%error, term, "cannot start evaluating as the leader; trying again");
                            return None;
                        }
                    }
                }
            };
            let leader = Some(context.store.holder());
            context.counters.set_leadership(Leadership { collector, leading: true, leader, term: Some(term) });
            Some(lead)
        }
        Ok(Lead::Following { holder, .. }) => {
            if let Some(lost) = leading {
                tracing::warn!(leader = %holder, "another collector leads now; stopped evaluating");
                context.rules = lost.evaluator.rules();
            }
            let leader = Some(holder);
            context.counters.set_leadership(Leadership { collector, leading: false, leader, term: None });
            None
        }
        Err(error) => {
            // The lease may still be this collector's: the fenced writes tell, and the next renewal.
            tracing::warn!(%error, "cannot renew or take the lead");
            leading
        }
    }
}

/// A new term: the rule engine from the shared state and cursor, on a connection fenced by the term.
async fn start_term(context: &mut LeadContext, term: i64) -> Result<Leading, StoreError> {
    if let Some(reloaded) = context.reload.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
        context.rules = reloaded;
    }
    let mut conn = context.store.leader_connection(term).await?;
    let evaluator = Evaluator::start(
        &mut conn,
        &context.rules,
        context.routing.clone(),
        context.deliveries.clone(),
        context.counters.clone(),
        Utc::now(),
    )
    .await?
    .with_reload_slot(context.reload.clone());
    tracing::info!(term, collector = context.store.collector(), "leading: evaluating rules and sending alerts");
    Ok(Leading { conn, evaluator })
}

/// An evaluation step failed: another collector leads now, or the database failed. Either way this engine's state
/// may be behind what is committed, so it is dropped; the next term (or the same one, renewed) starts afresh from
/// the database.
fn step_failed(context: &mut LeadContext, lead: Option<Leading>, error: &StoreError) -> Option<Leading> {
    if let Some(lead) = lead {
        context.rules = lead.evaluator.rules();
    }
    match error {
        StoreError::NotLeader { term } => tracing::warn!(term, "the lease ran out: stopped evaluating"),
        error => tracing::warn!(%error, "rule evaluation failed; starting again from the database"),
    }
    None
}

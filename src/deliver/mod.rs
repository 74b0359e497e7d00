//! Delivery: one worker per notifier sends its due outbox jobs (so one slow notifier never holds back another), with a
//! timeout on every call, exponential backoff with jitter, `Retry-After` honoured on 429 and 503, no retry on other
//! 4xx, and a deadline after which a job is dead.
//!
//! Receives outbox jobs; emits HTTP requests and job state. Owns the retry policy ([`classify`], [`backoff`]).

pub mod slack;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::notifiers::ResolvedWebhook;
use crate::outbox::{self, Job};
use crate::store::StoreError;

/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the receiver.
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>, String),
    /// Will never succeed.
    Dead(String),
}

/// What a receiver answered: an HTTP status with its `Retry-After`, or a transport error (timeout, refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP response.
    Status(u16, Option<Duration>),
    /// No response.
    Failed(String),
}

/// The delay before attempt `attempts + 1`: `initial` doubled per attempt, at most [`MAX_BACKOFF`], times a jitter
/// factor in [0.5, 1.5) so that receivers coming back are not hit by every sender at once.
pub fn backoff(initial: Duration, attempts: u32, jitter: f64) -> Duration {
    let doubled = initial.saturating_mul(2u32.saturating_pow(attempts.min(20)));
    doubled.min(MAX_BACKOFF).mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

/// Decides what an answer means for a job (a pure function; table-tested).
pub fn classify(answer: &Answer, job: &Job, notifier: &ResolvedWebhook, now: DateTime<Utc>, jitter: f64) -> Outcome {
    let retry = |delay: Duration, why: String| {
        let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        let deadline =
            job.created_at + chrono::Duration::from_std(notifier.give_up_after).unwrap_or(chrono::Duration::MAX);
        if at > deadline {
            Outcome::Dead(format!("{why}; giving up after {}", humantime::format_duration(notifier.give_up_after)))
        } else {
            Outcome::RetryAt(at, why)
        }
    };
    let next = backoff(notifier.retry_initial, job.attempts, jitter);
    match answer {
        Answer::Status(200..=299, _) => Outcome::Delivered,
        Answer::Status(status @ (429 | 503), retry_after) => {
            retry(retry_after.unwrap_or(next), format!("HTTP {status}"))
        }
        Answer::Status(status @ 400..=499, _) => {
            Outcome::Dead(format!("HTTP {status}: the receiver refused the request"))
        }
        Answer::Status(status, _) => retry(next, format!("HTTP {status}")),
        Answer::Failed(error) => retry(next, error.clone()),
    }
}

/// A cheap jitter source in [0, 1): delivery timing needs spread, not cryptographic randomness.
fn jitter() -> f64 {
    let nanos = Utc::now().timestamp_subsec_nanos();
    f64::from(nanos % 1000) / 1000.0
}

/// Sends a notifier's due jobs until `shutdown`; `wake` is notified when new jobs are queued.
pub async fn run(
    mut conn: SqliteConnection,
    notifier: ResolvedWebhook,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(notifier.timeout).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(notifier = %notifier.name, %error, "cannot build the HTTP client; deliveries stay queued");
            return;
        }
    };
    let mut last_error: Option<String> = None;
    loop {
        match deliver_due(&mut conn, &client, &notifier, &mut last_error).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(error) => tracing::warn!(notifier = %notifier.name, %error, "outbox access failed"),
        }
        let wait = match outbox::next_due_time(&mut conn, &notifier.name).await {
            Ok(Some(due)) => (due - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One attempt at the outbox job of `alert_id` for this notifier, now, whatever its due time; the job is updated as
/// the worker would (for `hsmwatch notify test`).
pub async fn attempt_alert(
    conn: &mut SqliteConnection,
    notifier: &ResolvedWebhook,
    alert_id: i64,
) -> Result<Outcome, StoreError> {
    let job = outbox::job_of(conn, alert_id, &notifier.name)
        .await?
        .ok_or_else(|| StoreError::CorruptRow { id: alert_id, reason: "no outbox job".into() })?;
    let alert = crate::alert::store::get(conn, alert_id)
        .await?
        .ok_or_else(|| StoreError::CorruptRow { id: alert_id, reason: "no alert".into() })?;
    let client = reqwest::Client::builder()
        .timeout(notifier.timeout)
        .build()
        .map_err(|e| StoreError::CorruptRow { id: alert_id, reason: format!("HTTP client: {e}") })?;
    let answer = webhook::send(&client, notifier, &alert, &job).await;
    let outcome = classify(&answer, &job, notifier, Utc::now(), jitter());
    record(conn, &job, &outcome).await?;
    Ok(outcome)
}

async fn record(conn: &mut SqliteConnection, job: &Job, outcome: &Outcome) -> Result<(), StoreError> {
    match outcome {
        Outcome::Delivered => outbox::mark_sent(conn, job.id, Utc::now()).await,
        Outcome::RetryAt(at, why) => outbox::retry_at(conn, job.id, *at, why).await,
        Outcome::Dead(why) => outbox::mark_dead(conn, job.id, why).await,
    }
}

/// Sends the next due job, if any; `true` when there was one.
async fn deliver_due(
    conn: &mut SqliteConnection,
    client: &reqwest::Client,
    notifier: &ResolvedWebhook,
    last_error: &mut Option<String>,
) -> Result<bool, StoreError> {
    let Some(job) = outbox::next_due(conn, &notifier.name, Utc::now()).await? else { return Ok(false) };
    let Some(alert) = crate::alert::store::get(conn, job.alert_id).await? else {
        outbox::mark_dead(conn, job.id, "the alert row is gone").await?;
        return Ok(true);
    };
    let answer = webhook::send(client, notifier, &alert, &job).await;
    let outcome = classify(&answer, &job, notifier, Utc::now(), jitter());
    match &outcome {
        Outcome::Delivered => {
            if last_error.take().is_some() {
                tracing::info!(notifier = %notifier.name, "deliveries succeed again");
            }
        }
        Outcome::RetryAt(at, why) => {
            // One warning when the error changes, not one per retry.
            if last_error.as_deref() != Some(why) {
                tracing::warn!(notifier = %notifier.name, error = %why, retry_at = %at, "delivery failed; will retry");
                *last_error = Some(why.clone());
            }
        }
        Outcome::Dead(why) => {
            tracing::error!(notifier = %notifier.name, alert = job.alert_id, error = %why, "delivery given up")
        }
    }
    record(conn, &job, &outcome).await?;
    Ok(true)
}

#[cfg(test)]
mod tests;

//! Delivery: one worker per notifier sends its due outbox jobs (so one slow notifier never holds back another), with a
//! timeout on every call, exponential backoff with jitter, `Retry-After` honoured on 429 and 503, no retry on other
//! 4xx (or on a permanent SMTP refusal), and a deadline after which a job is dead and a self-alert goes to the
//! notifier's `fallback`. A flood guard keeps each notifier within its rate limit: what exceeds it goes out as one
//! digest that carries every held-back alert, never dropped.
//!
//! Receives outbox jobs; emits HTTP requests and mail, and job state. Owns the retry policy ([`classify`],
//! [`backoff`]) and the flood guard ([`FloodGuard`]).

pub mod email;
pub mod slack;
pub mod webhook;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::alert::Alert;
use crate::config::notifiers::{DeliveryPolicy, RateLimit, ResolvedNotifier, Severity, Target};
use crate::metrics::{Counters, DeliveryResult};
use crate::store::alerts::StoredAlert;
use crate::store::outbox::{self, Job};
use crate::store::{Db, StoreError};
use crate::telemetry::Escaped;

/// The rule id of the self-alert raised when a delivery is given up.
pub const DELIVERY_DEAD_RULE: &str = "hsmwatch.delivery_dead";

/// Most alerts one digest carries; more wait for the next.
pub const DIGEST_MAX: u32 = 500;

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
    /// No response, or a temporary refusal: worth retrying.
    Failed(String),
    /// A permanent refusal that is not an HTTP status (an SMTP 5xx, a body template that cannot render).
    Rejected(String),
}

/// What one request carries: one alert, or a digest of several.
#[derive(Debug, Clone, Copy)]
pub enum Notification<'a> {
    /// One alert.
    Alert(&'a StoredAlert),
    /// Alerts the flood guard folded together.
    Digest(&'a [StoredAlert]),
}

impl Notification<'_> {
    /// Every alert carried.
    pub fn alerts(&self) -> &[StoredAlert] {
        match self {
            Notification::Alert(alert) => std::slice::from_ref(*alert),
            Notification::Digest(alerts) => alerts,
        }
    }
}

/// The delay before attempt `attempts + 1`: `initial` doubled per attempt, at most [`MAX_BACKOFF`], times a jitter
/// factor in [0.5, 1.5) so that receivers coming back are not hit by every sender at once.
pub fn backoff(initial: Duration, attempts: u32, jitter: f64) -> Duration {
    let doubled = initial.saturating_mul(2u32.saturating_pow(attempts.min(20)));
    doubled.min(MAX_BACKOFF).mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

/// Decides what an answer means for a job (a pure function; table-tested).
pub fn classify(answer: &Answer, job: &Job, policy: &DeliveryPolicy, now: DateTime<Utc>, jitter: f64) -> Outcome {
    let retry = |delay: Duration, why: String| {
        let at = crate::event::later(now, delay);
        let deadline = crate::event::later(job.created_at, policy.give_up_after);
        if at > deadline {
            Outcome::Dead(format!("{why}; giving up after {}", humantime::format_duration(policy.give_up_after)))
        } else {
            Outcome::RetryAt(at, why)
        }
    };
    let next = backoff(policy.retry_initial, job.attempts, jitter);
    match answer {
        Answer::Status(200..=299, _) => Outcome::Delivered,
        // A receiver's `Retry-After` is honoured up to the longest backoff: a larger one (a receiver asking for days,
        // or a number past any date) would park the alert instead of delivering it.
        Answer::Status(status @ (429 | 503), retry_after) => {
            retry(retry_after.map_or(next, |asked| asked.min(MAX_BACKOFF)), format!("HTTP {status}"))
        }
        Answer::Status(status @ 400..=499, _) => {
            Outcome::Dead(format!("HTTP {status}: the receiver refused the request"))
        }
        Answer::Status(status, _) => retry(next, format!("HTTP {status}")),
        Answer::Failed(error) => retry(next, error.clone()),
        Answer::Rejected(error) => Outcome::Dead(error.clone()),
    }
}

/// How long a `Retry-After` header asks to wait (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date (`Wed, 21 Oct
/// 2015 07:28:00 GMT`, also the obsolete RFC 850 and asctime forms chrono reads as RFC 2822) less `now`; a date in
/// the past is no wait. `None` for anything else, which the caller treats as no header. Never panics, whatever the
/// receiver sends: the caller caps the result at [`MAX_BACKOFF`].
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is "a very long time", not "no header".
        return Some(value.parse::<u64>().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A cheap jitter source in [0, 1): delivery timing needs spread, not cryptographic randomness.
fn jitter() -> f64 {
    let nanos = Utc::now().timestamp_subsec_nanos();
    f64::from(nanos % 1000) / 1000.0
}

/// The flood guard of one notifier: the times of its recent notifications, at most `max` per `per`. Only accepted
/// notifications count (a failing receiver is paced by the backoff instead). Kept in memory: after a restart the
/// window starts empty.
#[derive(Debug)]
pub struct FloodGuard {
    limit: RateLimit,
    sent: VecDeque<Instant>,
}

impl FloodGuard {
    /// An empty guard.
    pub fn new(limit: RateLimit) -> Self {
        FloodGuard { limit, sent: VecDeque::new() }
    }

    fn forget_old(&mut self, now: Instant) {
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= self.limit.per) {
            self.sent.pop_front();
        }
    }

    /// How many notifications may go out now.
    pub fn room(&mut self, now: Instant) -> u32 {
        self.forget_old(now);
        self.limit.max.saturating_sub(u32::try_from(self.sent.len()).unwrap_or(u32::MAX))
    }

    /// How long until there is room again.
    pub fn wait(&mut self, now: Instant) -> Duration {
        if self.room(now) > 0 {
            return Duration::ZERO;
        }
        self.sent.front().map_or(Duration::ZERO, |oldest| (*oldest + self.limit.per).saturating_duration_since(now))
    }

    /// A notification went out.
    pub fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
    }
}

/// How many jobs to take now with `room` left: one at a time while there is room to spare; with the last place in the
/// window, everything due, so that it goes out as one digest.
pub fn batch_size(room: u32) -> u32 {
    if room > 1 {
        1
    } else {
        DIGEST_MAX
    }
}

/// The client of one notifier.
enum Sender {
    Http(reqwest::Client, crate::config::notifiers::WebhookTarget),
    Smtp(Box<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>, crate::config::notifiers::EmailTarget),
}

impl Sender {
    fn new(notifier: &ResolvedNotifier) -> Result<Sender, String> {
        match &notifier.target {
            // No redirects: following one re-sent the body, the configured headers and the signature to wherever the
            // receiver pointed, with a `Referer` carrying the URL (and any secret in its query string).
            Target::Webhook(target) => reqwest::Client::builder()
                .timeout(notifier.policy.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .referer(false)
                .build()
                .map(|client| Sender::Http(client, target.clone()))
                .map_err(|e| format!("HTTP client: {e}")),
            Target::Email(target) => email::transport(target, &notifier.policy)
                .map(|transport| Sender::Smtp(Box::new(transport), target.clone())),
        }
    }

    async fn send(&self, notification: &Notification<'_>, key: &str) -> Answer {
        match self {
            Sender::Http(client, target) => webhook::send(client, target, notification, key).await,
            Sender::Smtp(transport, target) => email::send(transport, target, notification, key).await,
        }
    }
}

/// What a worker does next.
enum Step {
    /// It sent something: look again at once.
    Sent,
    /// Nothing is due.
    Idle,
    /// Jobs are due but the flood guard is full for this long.
    Throttled(Duration),
}

/// How long a delivery worker that died waits before it starts again.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Runs a notifier's worker ([`run`]) until `shutdown`, starting it again a moment after it dies (a panic is a bug,
/// but it must not stop the notifier for good), counted; while the worker is not running, `/readyz` names the
/// notifier. A worker that cannot start (its sender cannot be built) stays down.
pub async fn supervise(
    db: Db,
    notifier: ResolvedNotifier,
    wake: Arc<Notify>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) {
    let name = notifier.name.clone();
    let start = || tokio::spawn(run(db.clone(), notifier.clone(), wake.clone(), counters.clone(), shutdown.clone()));
    keep_running(&name, start, &counters, &shutdown).await;
}

/// The loop of [`supervise`], over whatever `start` spawns.
async fn keep_running(
    name: &str,
    start: impl Fn() -> tokio::task::JoinHandle<()>,
    counters: &Counters,
    shutdown: &CancellationToken,
) {
    loop {
        counters.set_worker_running(name, true);
        let worker = start().await;
        if shutdown.is_cancelled() {
            return;
        }
        counters.set_worker_running(name, false);
        match worker {
            Ok(()) => return,
            Err(died) => {
                tracing::error!(notifier = %name, error = %died, "delivery worker died; starting it again");
                counters.count_worker_restart(name);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RESTART_AFTER) => {}
        }
    }
}

/// Sends a notifier's due jobs until `shutdown`; `wake` is notified when new jobs are queued.
pub async fn run(
    db: Db,
    notifier: ResolvedNotifier,
    wake: Arc<Notify>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) {
    let sender = match Sender::new(&notifier) {
        Ok(sender) => sender,
        Err(error) => {
            tracing::error!(notifier = %notifier.name, %error, "cannot start the notifier; deliveries stay queued");
            return;
        }
    };
    let mut guard = FloodGuard::new(notifier.policy.rate_limit);
    let mut last_error: Option<String> = None;
    loop {
        let throttled = match deliver_due(&db, &sender, &notifier, &mut guard, &mut last_error, &counters).await {
            Ok(Step::Sent) => continue,
            Ok(Step::Idle) => None,
            Ok(Step::Throttled(wait)) => Some(wait),
            Err(error) => {
                tracing::warn!(notifier = %notifier.name, %error, "outbox access failed");
                None
            }
        };
        let wait = match throttled {
            Some(wait) => wait.max(Duration::from_millis(10)),
            None => match outbox::next_due_time(&db.reader, &notifier.name).await {
                Ok(Some(due)) => (due - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(Duration::from_secs(1)),
                _ => Duration::from_secs(1),
            },
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified(), if throttled.is_none() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Sends what is due: one alert, or a digest when the flood guard is down to its last place.
async fn deliver_due(
    db: &Db,
    sender: &Sender,
    notifier: &ResolvedNotifier,
    guard: &mut FloodGuard,
    last_error: &mut Option<String>,
    counters: &Counters,
) -> Result<Step, StoreError> {
    let now = Utc::now();
    let room = guard.room(Instant::now());
    if room == 0 {
        return Ok(match outbox::due(&db.reader, &notifier.name, now, 1).await?.is_empty() {
            true => Step::Idle,
            false => Step::Throttled(guard.wait(Instant::now())),
        });
    }
    let jobs = outbox::take_due(&mut db.writer.tables().await?, &notifier.name, now, batch_size(room)).await?;
    if jobs.is_empty() {
        return Ok(Step::Idle);
    }
    let mut alerts = Vec::with_capacity(jobs.len());
    let mut carried = Vec::with_capacity(jobs.len());
    for job in jobs {
        match outgoing_alert(db, notifier, job.alert_id).await? {
            Some(alert) => {
                alerts.push(alert);
                carried.push(job);
            }
            None => outbox::mark_dead(&mut db.writer.tables().await?, job.id, "the alert row is gone").await?,
        }
    }
    let Some(first) = carried.first() else { return Ok(Step::Sent) };
    let (notification, key) = match alerts.as_slice() {
        [alert] => (Notification::Alert(alert), first.idempotency_key.clone()),
        all => (Notification::Digest(all), format!("hsmwatch-digest-{}-{}-{}", notifier.name, first.id, all.len())),
    };
    let answer = sender.send(&notification, &key).await;
    let outcome = classify(&answer, first, &notifier.policy, Utc::now(), jitter());
    log_outcome(notifier, &outcome, alerts.len(), last_error);
    let result = match outcome {
        Outcome::Delivered => DeliveryResult::Sent,
        Outcome::RetryAt(..) => DeliveryResult::Failed,
        Outcome::Dead(_) => DeliveryResult::Dead,
    };
    counters.count_delivery(&notifier.name, result, alerts.len() as u64);
    if outcome == Outcome::Delivered {
        guard.record(Instant::now());
    }
    let digest_size = (alerts.len() > 1).then_some(alerts.len());
    let mut conn = db.writer.tables().await?;
    for (job, alert) in carried.iter().zip(&alerts) {
        record(&mut conn, notifier, job, alert, &outcome, digest_size).await?;
    }
    Ok(Step::Sent)
}

fn log_outcome(notifier: &ResolvedNotifier, outcome: &Outcome, alerts: usize, last_error: &mut Option<String>) {
    match outcome {
        Outcome::Delivered => {
            if alerts > 1 {
                tracing::info!(notifier = %notifier.name, alerts, "rate limit reached: sent one digest");
            }
            if last_error.take().is_some() {
                tracing::info!(notifier = %notifier.name, "deliveries succeed again");
            }
        }
        Outcome::RetryAt(at, why) => {
            // One warning when the error changes, not one per retry.
            if last_error.as_deref() != Some(why) {
                // A receiver's answer is text from the network.
                tracing::warn!(notifier = %notifier.name, error = %Escaped(why), retry_at = %at, "delivery failed; will retry");
                *last_error = Some(why.clone());
            }
        }
        Outcome::Dead(why) => {
            tracing::error!(notifier = %notifier.name, alerts, error = %Escaped(why), fallback = ?notifier.policy.fallback, "delivery given up")
        }
    }
}

/// One attempt at the outbox job of `alert_id` for this notifier, now, whatever its due time and the flood guard; the
/// job is updated as the worker would (for `hsmwatch notify test`).
pub async fn attempt_alert(db: &Db, notifier: &ResolvedNotifier, alert_id: i64) -> Result<Outcome, StoreError> {
    let job = outbox::job_of(&db.reader, alert_id, &notifier.name)
        .await?
        .ok_or_else(|| StoreError::CorruptRow { id: alert_id, reason: "no outbox job".into() })?;
    let alert = outgoing_alert(db, notifier, alert_id)
        .await?
        .ok_or_else(|| StoreError::CorruptRow { id: alert_id, reason: "no alert".into() })?;
    let sender = Sender::new(notifier).map_err(|reason| StoreError::CorruptRow { id: alert_id, reason })?;
    let answer = sender.send(&Notification::Alert(&alert), &job.idempotency_key).await;
    let outcome = classify(&answer, &job, &notifier.policy, Utc::now(), jitter());
    record(&mut db.writer.tables().await?, notifier, &job, &alert, &outcome, None).await?;
    Ok(outcome)
}

/// The fields of an alert's last event a person looks at first, with their labels.
const KEY_FIELDS: [(&str, &str); 5] = [
    ("Host", crate::event::field::HOST_NAME),
    ("User", crate::event::field::USER_NAME),
    ("Source address", crate::event::field::SOURCE_IP),
    ("Partition", crate::event::field::HSM_PARTITION),
    ("Client", crate::event::field::HSM_CLIENT),
];

/// The key fields of the alert's last event (host, user, source address, partition, client) that it has, labelled for
/// a notification; the host from the alert itself when the event is not at hand.
pub fn key_fields(alert: &StoredAlert) -> Vec<(&'static str, &str)> {
    KEY_FIELDS
        .iter()
        .filter_map(|(label, name)| {
            let value = alert.event.get(*name).map(String::as_str);
            let value = match *name {
                crate::event::field::HOST_NAME => value.or(alert.host.as_deref()),
                _ => value,
            };
            value.filter(|v| !v.is_empty()).map(|v| (*label, v))
        })
        .collect()
}

/// An alert as notifiers receive it: as stored, with the link to its page and the fields of its last event.
async fn outgoing_alert(db: &Db, notifier: &ResolvedNotifier, id: i64) -> Result<Option<StoredAlert>, StoreError> {
    let Some(mut alert) = crate::store::alerts::get(&db.reader, id).await? else { return Ok(None) };
    if let Some(base) = &notifier.alert_links {
        alert.url = Some(format!("{}/alerts/{}", base.trim_end_matches('/'), alert.alert_id.unwrap_or(alert.id)));
    }
    if let Some(last) = alert.event_ids.last() {
        let found = crate::store::query::events_by_id(&db.reader, std::slice::from_ref(last)).await?;
        if let Some(stored) = found.first() {
            alert.event = stored.event.all_fields().into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
        }
    }
    Ok(Some(alert))
}

/// Writes what became of a job; a job given up raises a self-alert to the fallback notifier, in the same transaction.
async fn record(
    conn: &mut impl crate::store::TableConn,
    notifier: &ResolvedNotifier,
    job: &Job,
    alert: &StoredAlert,
    outcome: &Outcome,
    digest_size: Option<usize>,
) -> Result<(), StoreError> {
    match outcome {
        Outcome::Delivered => outbox::mark_sent(conn, job.id, Utc::now(), digest_size).await,
        Outcome::RetryAt(at, why) => outbox::retry_at(conn, job.id, *at, why).await,
        Outcome::Dead(why) => {
            // A self-alert that dies is not reported again: two fallbacks naming each other would loop.
            let Some(fallback) = notifier.policy.fallback.as_deref().filter(|_| alert.rule != DELIVERY_DEAD_RULE)
            else {
                return outbox::mark_dead(conn, job.id, why).await;
            };
            crate::store::in_transaction(conn, async |conn| {
                outbox::mark_dead(conn, job.id, why).await?;
                let now = Utc::now();
                let notice = dead_delivery_alert(&notifier.name, fallback, alert, why, now);
                let recorded = crate::store::alerts::insert(conn, &[notice.record()]).await?;
                match &recorded[0].held_back {
                    // Its alert is acknowledged: someone is on it already.
                    Some(_) => Ok(()),
                    None => outbox::enqueue(conn, recorded[0].id, fallback, now).await,
                }
            })
            .await
        }
    }
}

/// The self-alert that tells the fallback notifier an alert could not be delivered.
fn dead_delivery_alert(notifier: &str, fallback: &str, alert: &StoredAlert, why: &str, now: DateTime<Utc>) -> Alert {
    let mut notice = Alert::notice(
        DELIVERY_DEAD_RULE,
        Severity::High,
        format!("{DELIVERY_DEAD_RULE}|notifier={notifier}"),
        format!("hsmwatch could not deliver alert {} to {notifier}: {}", alert.id, alert.title),
        format!(
            "Delivery of alert {} (rule {}, severity {}) to notifier `{notifier}` was given up: {why}.\n\
             See `hsmwatch alerts show {}`.\n\nThe alert:\n{}\n\n{}",
            alert.id, alert.rule, alert.severity, alert.id, alert.title, alert.body
        ),
        now,
    );
    notice.notify_to = Some(vec![fallback.to_owned()]);
    notice.host = alert.host.clone();
    notice.group = [("notifier".to_owned(), notifier.to_owned())].into();
    notice.event_ids = alert.event_ids.clone();
    notice
}

#[cfg(test)]
mod tests;

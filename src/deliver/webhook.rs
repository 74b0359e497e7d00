//! The generic JSON webhook. The body is built by a serializer (never by concatenating log text) and is stable:
//!
//! ```json
//! {"id": 12, "idempotency_key": "hsmwatch-12-secops-hook", "fingerprint": "luna.auth.bruteforce|host.name=hsm-01",
//!  "status": "firing", "rule": "luna.auth.bruteforce", "severity": "high", "host": "hsm-01",
//!  "group": {"host.name": "hsm-01"}, "count": 5, "first_seen": "...", "last_seen": "...", "fired_at": "...",
//!  "title": "...", "body": "...", "suppressed": 0, "event_ids": [101, 102, 103, 104, 105]}
//! ```
//!
//! The same key is sent as the `Idempotency-Key` header: the outbox delivers at least once, and a receiver drops the
//! rare duplicate (a crash between a send and its acknowledgement) by that key.

use std::time::Duration;

use super::Answer;
use crate::alert::store::StoredAlert;
use crate::config::notifiers::{Payload, ResolvedWebhook};
use crate::outbox::Job;

/// The JSON body of a webhook delivery.
#[derive(Debug, serde::Serialize)]
pub struct Body<'a> {
    /// Alert row id.
    pub id: i64,
    /// Stable per (alert, notifier).
    pub idempotency_key: &'a str,
    #[serde(flatten)]
    /// The alert.
    pub alert: &'a StoredAlert,
}

/// Sends one alert; the receiver's answer.
pub async fn send(client: &reqwest::Client, notifier: &ResolvedWebhook, alert: &StoredAlert, job: &Job) -> Answer {
    let method = if notifier.method == "PUT" { reqwest::Method::PUT } else { reqwest::Method::POST };
    let request = client.request(method, &notifier.url.0).header("Idempotency-Key", &job.idempotency_key);
    let mut request = match notifier.payload {
        Payload::Json => request.json(&Body { id: alert.id, idempotency_key: &job.idempotency_key, alert }),
        Payload::Slack => request.json(&super::slack::message(alert)),
    };
    for (name, value) in &notifier.headers {
        request = request.header(name.as_str(), value.0.as_str());
    }
    match request.send().await {
        Ok(response) => {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Answer::Status(response.status().as_u16(), retry_after)
        }
        // The error text can hold the URL, which may be a secret: say what failed, not where.
        Err(error) if error.is_timeout() => Answer::Failed("timed out".into()),
        Err(error) if error.is_connect() => Answer::Failed("connection failed".into()),
        Err(_) => Answer::Failed("request failed".into()),
    }
}

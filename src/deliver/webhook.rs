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

/// The header that carries the body's HMAC-SHA256, as `sha256=<lower-case hex>`.
pub const SIGNATURE_HEADER: &str = "X-Hsmwatch-Signature";

/// `sha256=<hex>` of HMAC-SHA256 over exactly the bytes sent.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

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
    let body = match notifier.payload {
        Payload::Json => serde_json::to_vec(&Body { id: alert.id, idempotency_key: &job.idempotency_key, alert }),
        Payload::Slack => serde_json::to_vec(&super::slack::message(alert)),
    }
    .expect("alerts serialize");
    let mut request = client
        .request(method, &notifier.url.0)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", &job.idempotency_key);
    if let Some(secret) = &notifier.signature_secret {
        request = request.header(SIGNATURE_HEADER, sign(secret.0.as_bytes(), &body));
    }
    let mut request = request.body(body);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

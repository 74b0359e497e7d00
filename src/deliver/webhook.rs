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
//!
//! A digest from the flood guard is `{"digest": true, "idempotency_key": "...", "count": N, "alerts": [...]}`, each
//! element shaped like the single-alert document. A `body_template` replaces the document: it is rendered with
//! `alert` (absent for a digest), `alerts` (every alert carried, one for a single alert), `digest` and
//! `idempotency_key`; filters such as `tojson` produce valid JSON from log text.

use super::{Answer, Notification};
use crate::config::notifiers::{Payload, WebhookTarget};
use crate::store::alerts::StoredAlert;

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

/// The JSON body of a digest.
#[derive(Debug, serde::Serialize)]
pub struct DigestBody<'a> {
    /// Always true: tells a digest from a single alert.
    pub digest: bool,
    /// Stable per digest.
    pub idempotency_key: &'a str,
    /// How many alerts it carries.
    pub count: usize,
    /// The alerts, each with its id.
    pub alerts: Vec<Item<'a>>,
}

/// One alert inside a digest or a template's `alerts`.
#[derive(Debug, serde::Serialize)]
pub struct Item<'a> {
    /// Alert row id.
    pub id: i64,
    #[serde(flatten)]
    /// The alert.
    pub alert: &'a StoredAlert,
}

/// The body and its Content-Type.
pub fn body(payload: &Payload, notification: &Notification, key: &str) -> Result<(Vec<u8>, String), String> {
    let json = |value: Result<Vec<u8>, serde_json::Error>| {
        value.map(|bytes| (bytes, "application/json".to_owned())).map_err(|e| e.to_string())
    };
    let items = || notification.alerts().iter().map(|alert| Item { id: alert.id, alert }).collect::<Vec<_>>();
    match (payload, notification) {
        (Payload::Json, Notification::Alert(alert)) => {
            json(serde_json::to_vec(&Body { id: alert.id, idempotency_key: key, alert }))
        }
        (Payload::Json, Notification::Digest(alerts)) => json(serde_json::to_vec(&DigestBody {
            digest: true,
            idempotency_key: key,
            count: alerts.len(),
            alerts: items(),
        })),
        (Payload::Slack, Notification::Alert(alert)) => json(serde_json::to_vec(&super::slack::message(alert))),
        (Payload::Slack, Notification::Digest(alerts)) => json(serde_json::to_vec(&super::slack::digest(alerts))),
        (Payload::Template { source, content_type }, _) => {
            let alert = match notification {
                Notification::Alert(alert) => Some(Item { id: alert.id, alert }),
                Notification::Digest(_) => None,
            };
            let context = minijinja::context! {
                alert => alert,
                alerts => items(),
                digest => matches!(notification, Notification::Digest(_)),
                idempotency_key => key,
            };
            minijinja::Environment::new()
                .render_str(source, context)
                .map(|text| (text.into_bytes(), content_type.clone()))
                .map_err(|e| format!("body_template: {e}"))
        }
    }
}

/// Sends one notification; the receiver's answer.
pub async fn send(
    client: &reqwest::Client,
    notifier: &WebhookTarget,
    notification: &Notification<'_>,
    key: &str,
) -> Answer {
    let method = if notifier.method == "PUT" { reqwest::Method::PUT } else { reqwest::Method::POST };
    let (body, content_type) = match body(&notifier.payload, notification, key) {
        Ok(body) => body,
        Err(error) => return Answer::Rejected(error),
    };
    let mut request = client
        .request(method, &notifier.url.0)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header("Idempotency-Key", key);
    if let Some(secret) = &notifier.signature_secret {
        request = request.header(SIGNATURE_HEADER, sign(secret.0.as_bytes(), &body));
    }
    let mut request = request.body(body);
    for (name, value) in &notifier.headers {
        request = request.header(name.as_str(), value.0.as_str());
    }
    match request.send().await {
        Ok(response) if response.status().is_redirection() => {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_else(|| "nowhere".into());
            Answer::Rejected(format!(
                "HTTP {}: the receiver redirects to {location}; hsmwatch follows no redirects (configure that URL)",
                response.status().as_u16()
            ))
        }
        Ok(response) => {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| super::retry_after(v, chrono::Utc::now()));
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

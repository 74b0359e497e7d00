//! Email over SMTP (`lettre`): STARTTLS (required, never a silent fallback to plain text), implicit TLS, or plain on
//! loopback only; optional AUTH. Each message has a plain-text part and an HTML part, a `Message-ID` derived from the
//! idempotency key (the same on every retry, so a mail system can drop a duplicate), and a stable
//! `X-Hsmwatch-Fingerprint` header.
//!
//! Log text is attacker-controlled: control characters (CR and LF above all, which would start a new header such as
//! `Bcc:`) are removed from everything that goes into a header, and the HTML part escapes every piece of text.

use std::fmt::Write as _;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Answer, Notification};
use crate::config::notifiers::{DeliveryPolicy, EmailTarget, SmtpTls};
use crate::store::alerts::StoredAlert;

/// The header that carries the alert's fingerprint.
pub const FINGERPRINT_HEADER: &str = "X-Hsmwatch-Fingerprint";

/// Longest subject kept (mail clients cut long subjects anyway).
const MAX_SUBJECT: usize = 200;

/// An SMTP transport for a target.
pub fn transport(target: &EmailTarget, policy: &DeliveryPolicy) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls_parameters = || -> Result<TlsParameters, String> {
        let mut builder = TlsParameters::builder(target.host.clone());
        if let Some(pem) = &target.ca_pem {
            let certificate = Certificate::from_pem(pem).map_err(|e| format!("ca_file: {e}"))?;
            builder = builder.add_root_certificate(certificate);
        }
        builder.build_rustls().map_err(|e| format!("TLS settings: {e}"))
    };
    let tls = match target.tls {
        SmtpTls::Starttls => Tls::Required(tls_parameters()?),
        SmtpTls::Implicit => Tls::Wrapper(tls_parameters()?),
        SmtpTls::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(target.host.as_str())
        .port(target.port)
        .tls(tls)
        .timeout(Some(policy.timeout));
    if let Some((user, password)) = &target.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.0.clone()));
    }
    Ok(builder.build())
}

/// Text fit for a header: control characters (CR, LF, TAB, ...) become spaces, runs of spaces one, and it is cut to
/// `max` characters.
pub fn header_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.chars().count() == max {
            break;
        }
        out.push(c);
    }
    out.trim_end().to_owned()
}

/// HTML escaping for text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn subject(notification: &Notification) -> String {
    match notification {
        Notification::Alert(alert) => {
            let status =
                if alert.status == "firing" { alert.severity.to_uppercase() } else { alert.status.to_uppercase() };
            format!("[hsmwatch] {status} {}", alert.title)
        }
        Notification::Digest(alerts) => {
            format!("[hsmwatch] {} more alerts held back by the rate limit", alerts.len())
        }
    }
}

/// The facts of an alert, as (label, value) rows.
fn facts(alert: &StoredAlert) -> Vec<(String, String)> {
    let mut rows = vec![
        ("Rule".to_owned(), alert.rule.clone()),
        ("Severity".to_owned(), alert.severity.clone()),
        ("Status".to_owned(), alert.status.clone()),
    ];
    rows.extend(super::key_fields(alert).into_iter().map(|(label, value)| (label.to_owned(), value.to_owned())));
    rows.extend([
        ("Count".to_owned(), alert.count.to_string()),
        ("First seen".to_owned(), alert.first_seen.clone().unwrap_or_default()),
        ("Last seen".to_owned(), alert.last_seen.clone().unwrap_or_default()),
        ("Fired".to_owned(), alert.fired_at.clone()),
    ]);
    rows.extend(alert.group.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(url) = &alert.url {
        rows.push(("Alert".to_owned(), url.clone()));
    }
    if alert.suppressed > 0 {
        rows.push(("Held back before".to_owned(), alert.suppressed.to_string()));
    }
    rows.push(("Fingerprint".to_owned(), alert.fingerprint.clone()));
    rows
}

fn plain_alert(out: &mut String, alert: &StoredAlert) {
    let _ = writeln!(out, "{}\n", alert.title);
    for (label, value) in facts(alert) {
        let _ = writeln!(out, "{label:>16}: {value}");
    }
    let _ = writeln!(out, "\n{}", alert.body.trim_end());
}

fn html_alert(out: &mut String, alert: &StoredAlert) {
    let _ = write!(out, "<h2>{}</h2>\n<table>\n", escape_html(&alert.title));
    for (label, value) in facts(alert) {
        let _ =
            writeln!(out, "<tr><th align=\"left\">{}</th><td>{}</td></tr>", escape_html(&label), escape_html(&value));
    }
    let _ = write!(out, "</table>\n<pre>{}</pre>\n", escape_html(alert.body.trim_end()));
    if let Some(url) = &alert.url {
        let _ = writeln!(out, "<p><a href=\"{0}\">{0}</a></p>", escape_html(url));
    }
}

/// The plain-text and HTML bodies.
pub fn bodies(notification: &Notification) -> (String, String) {
    let (mut plain, mut html) = (String::new(), String::from("<!DOCTYPE html>\n<html><body>\n"));
    match notification {
        Notification::Alert(alert) => {
            plain_alert(&mut plain, alert);
            html_alert(&mut html, alert);
        }
        Notification::Digest(alerts) => {
            let intro = format!(
                "The rate limit of this notifier held back {} alerts; they are listed here in full.",
                alerts.len()
            );
            let _ = writeln!(plain, "{intro}\n");
            let _ = writeln!(html, "<p>{}</p>", escape_html(&intro));
            for alert in alerts.iter() {
                plain.push_str("----------------------------------------------------------------\n");
                plain_alert(&mut plain, alert);
                html.push_str("<hr>\n");
                html_alert(&mut html, alert);
            }
        }
    }
    html.push_str("</body></html>\n");
    (plain, html)
}

/// The domain part of the sender, for the Message-ID.
fn sender_domain(from: &Mailbox) -> String {
    from.email.domain().to_owned()
}

/// The message for a notification.
pub fn message(target: &EmailTarget, notification: &Notification, key: &str) -> Result<Message, String> {
    let from: Mailbox = target.from.parse().map_err(|e| format!("from: {e}"))?;
    // Keys are made of the notifier name and ids; anything outside a safe set is replaced so the id stays one token.
    let local: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let mut builder = Message::builder()
        .message_id(Some(format!("<{local}@{}>", sender_domain(&from))))
        .from(from)
        .subject(header_text(&subject(notification), MAX_SUBJECT));
    for to in &target.to {
        builder = builder.to(to.parse().map_err(|e| format!("to: {e}"))?);
    }
    for cc in &target.cc {
        builder = builder.cc(cc.parse().map_err(|e| format!("cc: {e}"))?);
    }
    let fingerprint = match notification {
        Notification::Alert(alert) => header_text(&alert.fingerprint, 900),
        Notification::Digest(_) => "digest".to_owned(),
    };
    let name = HeaderName::new_from_ascii_str(FINGERPRINT_HEADER);
    builder = builder.raw_header(HeaderValue::new(name, fingerprint));
    let key_header = HeaderName::new_from_ascii_str("X-Hsmwatch-Idempotency-Key");
    builder = builder.raw_header(HeaderValue::new(key_header, local));
    let (plain, html) = bodies(notification);
    builder
        .multipart(MultiPart::alternative_plain_html(plain, html))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// Sends one notification; the server's answer. A permanent SMTP refusal (5xx) is not retried.
pub async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    target: &EmailTarget,
    notification: &Notification<'_>,
    key: &str,
) -> Answer {
    let message = match message(target, notification, key) {
        Ok(message) => message,
        Err(error) => return Answer::Rejected(error),
    };
    match transport.send(message).await {
        Ok(_) => Answer::Status(250, None),
        Err(error) if error.is_permanent() => Answer::Rejected(format!("SMTP: {error}")),
        Err(error) if error.is_timeout() => Answer::Failed("SMTP: timed out".into()),
        Err(error) => Answer::Failed(format!("SMTP: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(user: &str) -> StoredAlert {
        StoredAlert {
            id: 7,
            fingerprint: format!("luna.auth.bruteforce|user.name={user}"),
            status: "firing".into(),
            rule: "luna.auth.bruteforce".into(),
            severity: "high".into(),
            host: Some("hsm-01".into()),
            group: [("user.name".to_owned(), user.to_owned())].into(),
            count: 5,
            first_seen: None,
            last_seen: None,
            fired_at: "2026-03-01T12:00:00Z".into(),
            title: format!("5 failed logins for {user}"),
            body: format!("Failed password for {user}"),
            suppressed: 0,
            event_ids: vec![],
            silenced_by: None,
            held_back: None,
            alert_id: Some(7),
            url: Some("https://hsmwatch.example.net/alerts/7".into()),
            event: [("user.name".to_owned(), user.to_owned()), ("source.ip".to_owned(), "203.0.113.9".to_owned())]
                .into(),
        }
    }

    fn target() -> EmailTarget {
        EmailTarget {
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::None,
            ca_pem: None,
            credentials: None,
            from: "hsmwatch <hsmwatch@example.com>".into(),
            to: vec!["secops@example.com".into()],
            cc: vec![],
        }
    }

    #[test]
    fn header_text_cannot_start_a_header() {
        assert_eq!(header_text("x\r\nBcc: evil@example.net", 100), "x Bcc: evil@example.net");
        assert_eq!(header_text("a\t\t b\u{0}c", 100), "a b c");
        assert_eq!(header_text("abcdef", 3), "abc");
    }

    #[test]
    fn hostile_user_names_stay_text() {
        let hostile = alert("x\r\nBcc: evil@example.net <script>alert(1)</script>");
        let raw = message(&target(), &Notification::Alert(&hostile), "hsmwatch-7-mail").unwrap().formatted();
        let text = String::from_utf8_lossy(&raw);
        let headers = text.split("\r\n\r\n").next().unwrap();
        assert!(!headers.lines().any(|l| l.to_ascii_lowercase().starts_with("bcc:")), "{headers}");
        assert!(headers.contains("Message-ID: <hsmwatch-7-mail@example.com>"), "{headers}");
        assert!(headers.contains("X-Hsmwatch-Fingerprint:"), "{headers}");
        let (plain, html) = bodies(&Notification::Alert(&hostile));
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<a href=\"https://hsmwatch.example.net/alerts/7\">"), "{html}");
        assert!(plain.contains("Source address: 203.0.113.9"), "the key fields of the last event: {plain}");
    }
}

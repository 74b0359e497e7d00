//! The Slack message of an alert: Block Kit sections with severity, title, host, the key fields, the count and the
//! triggering line in a code block.
//!
//! Log text is attacker-controlled (a failed login's user name is whatever was typed), so every piece of it is
//! escaped as Slack requires (`&`, `<`, `>`): a line cannot produce `<!channel>`, `<@U123>` or a link. The JSON itself
//! is built by a serializer.

use serde_json::{json, Value};

use crate::store::alerts::StoredAlert;

/// Slack's escaping for text in mrkdwn and plain text fields.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

fn emoji(severity: &str) -> &'static str {
    match severity {
        "critical" => ":rotating_light:",
        "high" => ":red_circle:",
        "medium" => ":large_orange_circle:",
        "low" => ":large_yellow_circle:",
        _ => ":information_source:",
    }
}

/// Slack truncates long sections; keep the code block readable.
const MAX_BODY: usize = 2500;

/// The Block Kit message of an alert.
pub fn message(alert: &StoredAlert) -> Value {
    let status = alert.status.to_uppercase();
    let headline = format!(
        "{} *{}* {} — {}",
        emoji(&alert.severity),
        escape(&alert.severity.to_uppercase()),
        status,
        escape(&alert.title)
    );
    let mut fields = vec![json!({"type": "mrkdwn", "text": format!("*Rule*\n{}", escape(&alert.rule))})];
    let key = super::key_fields(alert);
    for (label, value) in &key {
        fields.push(json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape(value))}));
    }
    fields.push(json!({"type": "mrkdwn", "text": format!("*Count*\n{}", alert.count)}));
    fields.push(json!({"type": "mrkdwn", "text": format!("*Fired*\n{}", escape(&alert.fired_at))}));
    let shown: Vec<&str> = key.iter().map(|(_, v)| *v).collect();
    // Slack shows at most ten fields in a section.
    for (name, value) in alert.group.iter().filter(|(_, value)| !shown.contains(&value.as_str())) {
        if fields.len() >= 10 {
            break;
        }
        fields.push(json!({"type": "mrkdwn", "text": format!("*{}*\n{}", escape(name), escape(value))}));
    }
    let body: String = alert.body.chars().take(MAX_BODY).collect();
    // Inside a code block the text is still parsed for <...> and & by Slack, so it is escaped too; backticks are
    // replaced so the line cannot close the block.
    let code = format!("```{}```", escape(&body).replace("```", "'''"));
    let mut message = json!({
        "text": format!("{} {} — {}", status, escape(&alert.severity), escape(&alert.title)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "fields": fields},
            {"type": "section", "text": {"type": "mrkdwn", "text": code}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("fingerprint `{}`", escape(&alert.fingerprint))}]},
        ]
    });
    if let (Some(url), Some(blocks)) = (&alert.url, message["blocks"].as_array_mut()) {
        // The address is the operator's (http.external_url) plus a number: no text from the network.
        let link = format!("<{url}|Open alert {} in hsmwatch>", alert.alert_id.unwrap_or(alert.id));
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": link}}));
    }
    message
}

/// Alerts listed one per line in a digest; the rest are counted.
const DIGEST_LINES: usize = 20;

/// The Block Kit message of a digest: how many alerts the flood guard held back, and the first of them.
pub fn digest(alerts: &[StoredAlert]) -> Value {
    let headline = format!(":mailbox_with_mail: *{} more alerts* held back by the rate limit", alerts.len());
    let mut lines: Vec<String> = alerts
        .iter()
        .take(DIGEST_LINES)
        .map(|a| {
            format!(
                "{} {} — {} ({})",
                emoji(&a.severity),
                escape(&a.severity.to_uppercase()),
                escape(&a.title),
                escape(a.host.as_deref().unwrap_or("-"))
            )
        })
        .collect();
    if alerts.len() > DIGEST_LINES {
        lines.push(format!("… and {} more (`hsmwatch alerts list`)", alerts.len() - DIGEST_LINES));
    }
    json!({
        "text": format!("{} more alerts held back by the rate limit", alerts.len()),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}},
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_cannot_mention_or_link() {
        assert_eq!(
            escape("<!channel> & <@U123> <http://evil|click>"),
            "&lt;!channel&gt; &amp; &lt;@U123&gt; &lt;http://evil|click&gt;"
        );
        let alert = StoredAlert {
            id: 1,
            fingerprint: "r|user.name=<!channel>".into(),
            status: "firing".into(),
            rule: "luna.auth.bruteforce".into(),
            severity: "high".into(),
            host: Some("hsm-1".into()),
            group: [("user.name".to_owned(), "<!channel>".to_owned())].into(),
            count: 5,
            first_seen: None,
            last_seen: None,
            fired_at: "2026-03-01T12:00:00Z".into(),
            title: "5 failures for <!channel>".into(),
            body: "Failed password for <@U123> ```x```".into(),
            suppressed: 0,
            event_ids: vec![],
            silenced_by: None,
            held_back: None,
            alert_id: Some(1),
            url: Some("https://hsmwatch.example.net/alerts/1".into()),
            event: [
                ("user.name".to_owned(), "<!channel>".to_owned()),
                ("hsm.partition".to_owned(), "<@U1>".to_owned()),
            ]
            .into(),
        };
        let text = message(&alert).to_string();
        assert!(!text.contains("<!channel>") && !text.contains("<@U123>") && !text.contains("<@U1>"), "{text}");
        assert!(text.contains("&lt;!channel&gt;"));
        assert!(text.contains("*Partition*\\n&lt;@U1&gt;"), "the key fields of the last event: {text}");
        assert!(text.contains("<https://hsmwatch.example.net/alerts/1|Open alert 1 in hsmwatch>"), "{text}");
    }
}

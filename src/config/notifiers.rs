//! Notifier configuration: where alerts are delivered. Secrets (webhook URLs, header values) come from environment
//! variables or files, never from the config text, and never reach logs (their `Debug` is redacted).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Alert severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The name as written in rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One notifier.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotifierConfig {
    /// An HTTP endpoint that receives a JSON body per alert.
    Webhook(WebhookConfig),
    /// A Slack incoming webhook: a Block Kit message per alert (same keys as `webhook`; its URL is a secret, so use
    /// `url_env` or `url_file`).
    Slack(WebhookConfig),
}

impl NotifierConfig {
    /// Severity below which alerts are not routed to this notifier (unless a rule names it).
    pub fn min_severity(&self) -> Severity {
        match self {
            NotifierConfig::Webhook(w) | NotifierConfig::Slack(w) => w.min_severity,
        }
    }

    /// Give up on a delivery after this long.
    pub fn give_up_after(&self) -> Duration {
        match self {
            NotifierConfig::Webhook(w) | NotifierConfig::Slack(w) => w.give_up_after,
        }
    }
}

/// A generic JSON webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL, written in the config (only for URLs that are not secret).
    #[serde(default)]
    pub url: Option<String>,
    /// Or: the environment variable holding the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Or: a file holding the URL.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// HTTP method: POST or PUT.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra headers with literal values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra headers whose values are read from environment variables (name → variable).
    #[serde(default)]
    pub header_env: BTreeMap<String, String>,
    /// Timeout of one delivery attempt.
    #[serde(default = "default_timeout", with = "super::units::duration")]
    pub timeout: Duration,
    /// Alerts below this severity are not routed here (unless a rule names this notifier).
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// First retry delay; each retry doubles it (with jitter), up to 10 minutes.
    #[serde(default = "default_retry_initial", with = "super::units::duration")]
    pub retry_initial: Duration,
    /// A delivery still failing this long after the alert is given up (dead).
    #[serde(default = "default_give_up_after", with = "super::units::duration")]
    pub give_up_after: Duration,
    /// Sign each body with HMAC-SHA256 (`X-Hsmwatch-Signature: sha256=<hex>`) using the secret in this variable...
    #[serde(default)]
    pub signature_secret_env: Option<String>,
    /// ...or in this file.
    #[serde(default)]
    pub signature_secret_file: Option<PathBuf>,
}

fn default_method() -> String {
    "POST".to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_min_severity() -> Severity {
    Severity::Info
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(2)
}
fn default_give_up_after() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// A secret string: usable, but never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What a resolved notifier sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The generic JSON document.
    Json,
    /// A Slack Block Kit message.
    Slack,
}

/// A webhook with its secrets resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedWebhook {
    /// Notifier name.
    pub name: String,
    /// What it sends.
    pub payload: Payload,
    /// The URL.
    pub url: Secret,
    /// POST or PUT.
    pub method: String,
    /// Every header, values resolved.
    pub headers: Vec<(String, Secret)>,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Give up after this long.
    pub give_up_after: Duration,
    /// HMAC-SHA256 key for the signature header, when bodies are signed.
    pub signature_secret: Option<Secret>,
}

/// Why a notifier cannot be used; names the notifier and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notifier `{notifier}`, {field}: {message}")]
pub struct NotifierError {
    /// The notifier.
    pub notifier: String,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl WebhookConfig {
    /// Resolves the URL and header secrets from the environment and files.
    pub fn resolve(&self, name: &str, payload: Payload) -> Result<ResolvedWebhook, NotifierError> {
        let error = |field: &str, message: String| NotifierError {
            notifier: name.to_owned(),
            field: field.to_owned(),
            message,
        };
        let env = |variable: &str, field: &str| {
            std::env::var(variable).map_err(|_| error(field, format!("environment variable {variable} is not set")))
        };
        let url = match (&self.url, &self.url_env, &self.url_file) {
            (Some(url), None, None) => url.clone(),
            (None, Some(variable), None) => env(variable, "url_env")?,
            (None, None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| error("url_file", format!("cannot read {}: {e}", path.display())))?,
            _ => return Err(error("url", "give exactly one of url, url_env, url_file".into())),
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) || reqwest::Url::parse(&url).is_err() {
            // The value may be a secret: the message says what is wrong, not what it is.
            return Err(error("url", "not an http(s) URL".into()));
        }
        let method = self.method.to_ascii_uppercase();
        if method != "POST" && method != "PUT" {
            return Err(error("method", format!("`{}`: use POST or PUT", self.method)));
        }
        let mut headers: Vec<(String, Secret)> =
            self.headers.iter().map(|(k, v)| (k.clone(), Secret(v.clone()))).collect();
        for (header, variable) in &self.header_env {
            headers.push((header.clone(), Secret(env(variable, &format!("header_env.{header}"))?)));
        }
        let signature_secret = match (&self.signature_secret_env, &self.signature_secret_file) {
            (None, None) => None,
            (Some(variable), None) => Some(Secret(env(variable, "signature_secret_env")?)),
            (None, Some(path)) => Some(Secret(
                std::fs::read_to_string(path)
                    .map(|s| s.trim().to_owned())
                    .map_err(|e| error("signature_secret_file", format!("cannot read {}: {e}", path.display())))?,
            )),
            (Some(_), Some(_)) => {
                return Err(error(
                    "signature_secret_env",
                    "give signature_secret_env or signature_secret_file, not both".into(),
                ))
            }
        };
        Ok(ResolvedWebhook {
            name: name.to_owned(),
            payload,
            signature_secret,
            url: Secret(url),
            method,
            headers,
            timeout: self.timeout,
            retry_initial: self.retry_initial,
            give_up_after: self.give_up_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(yaml: &str) -> WebhookConfig {
        match serde_yaml_ng::from_str::<NotifierConfig>(yaml).unwrap() {
            NotifierConfig::Webhook(w) | NotifierConfig::Slack(w) => w,
        }
    }

    #[test]
    fn urls_come_from_exactly_one_place_and_stay_secret() {
        std::env::set_var("HSMWATCH_TEST_HOOK", "https://hooks.example.net/T0/B0/XYZZY-token");
        let resolved = webhook("{type: webhook, url_env: HSMWATCH_TEST_HOOK}").resolve("ops", Payload::Json).unwrap();
        assert_eq!(resolved.url.0, "https://hooks.example.net/T0/B0/XYZZY-token");
        assert!(!format!("{resolved:?}").contains("XYZZY"), "{resolved:?}");
        let both = webhook("{type: webhook, url: 'http://a', url_env: X}").resolve("ops", Payload::Json).unwrap_err();
        assert_eq!(both.to_string(), "notifier `ops`, url: give exactly one of url, url_env, url_file");
        let missing =
            webhook("{type: webhook, url_env: HSMWATCH_TEST_UNSET}").resolve("ops", Payload::Json).unwrap_err();
        assert_eq!(missing.to_string(), "notifier `ops`, url_env: environment variable HSMWATCH_TEST_UNSET is not set");
        let bad = webhook("{type: webhook, url: 'ftp://x'}").resolve("ops", Payload::Json).unwrap_err();
        assert_eq!(bad.field, "url");
        assert!(serde_yaml_ng::from_str::<NotifierConfig>("{type: webhook, url: 'http://a', urll: 1}").is_err());
    }
}

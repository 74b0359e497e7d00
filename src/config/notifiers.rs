//! Notifier configuration: where alerts are delivered. Secrets (webhook URLs, header values, SMTP passwords, signing
//! keys) come from environment variables or files, never from the config text, and never reach logs (their `Debug`
//! is redacted).
//!
//! One flat struct per notifier with a `type` (so unknown keys are named with their line), checked by [`resolve`]
//! for the keys its type takes.
//!
//! [`resolve`]: NotifierConfig::resolve

pub use super::secret::Secret;
use std::collections::BTreeMap;
use std::net::IpAddr;
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

/// The kind of a notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifierKind {
    /// An HTTP endpoint that receives a JSON body (or a templated body) per alert.
    Webhook,
    /// A Slack incoming webhook: a Block Kit message per alert.
    Slack,
    /// Email over SMTP.
    Email,
}

impl NotifierKind {
    /// With its article, for messages.
    fn described(self) -> &'static str {
        match self {
            NotifierKind::Webhook => "a webhook",
            NotifierKind::Slack => "a slack",
            NotifierKind::Email => "an email",
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (no fallback to plain text).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No encryption: only for a relay on a loopback address.
    None,
}

/// At most `max` notifications per `per`; what exceeds it is folded into one digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Notifications per window.
    pub max: u32,
    /// The window.
    #[serde(with = "super::units::duration")]
    pub per: Duration,
}

/// One notifier, as written under `notifiers.NAME`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// `webhook`, `slack` or `email`.
    #[serde(rename = "type")]
    pub kind: NotifierKind,
    /// Alerts below this severity are not routed here (unless a rule names this notifier).
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Timeout of one delivery attempt.
    #[serde(default = "default_timeout", with = "super::units::duration")]
    pub timeout: Duration,
    /// First retry delay; each retry doubles it (with jitter), up to 10 minutes.
    #[serde(default = "default_retry_initial", with = "super::units::duration")]
    pub retry_initial: Duration,
    /// A delivery still failing this long after the alert is given up (dead).
    #[serde(default = "default_give_up_after", with = "super::units::duration")]
    pub give_up_after: Duration,
    /// The notifier told when a delivery here is given up.
    #[serde(default)]
    pub fallback: Option<String>,
    /// The flood guard.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,

    /// webhook, slack: the URL, written in the config (only for URLs that are not secret).
    #[serde(default)]
    pub url: Option<String>,
    /// webhook, slack: or the environment variable holding the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// webhook, slack: or a file holding the URL.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// webhook: POST or PUT.
    #[serde(default)]
    pub method: Option<String>,
    /// webhook: extra headers with literal values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// webhook: extra headers whose values are read from environment variables (name → variable).
    #[serde(default)]
    pub header_env: BTreeMap<String, String>,
    /// webhook: sign each body with HMAC-SHA256 using the secret in this variable...
    #[serde(default)]
    pub signature_secret_env: Option<String>,
    /// webhook: ...or in this file.
    #[serde(default)]
    pub signature_secret_file: Option<PathBuf>,
    /// webhook: a MiniJinja template for the body instead of the standard JSON document.
    #[serde(default)]
    pub body_template: Option<String>,
    /// webhook: the Content-Type of a templated body.
    #[serde(default)]
    pub content_type: Option<String>,

    /// email: the SMTP server.
    #[serde(default)]
    pub host: Option<String>,
    /// email: its port (default 587 for STARTTLS, 465 for implicit TLS, 25 without TLS).
    #[serde(default)]
    pub port: Option<u16>,
    /// email: `starttls` (default), `implicit` or `none` (loopback only).
    #[serde(default)]
    pub tls: Option<SmtpTls>,
    /// email: PEM certificates to trust besides the system's (a private CA of the mail relay).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// email: the AUTH user name.
    #[serde(default)]
    pub username: Option<String>,
    /// email: the AUTH password, from this variable...
    #[serde(default)]
    pub password_env: Option<String>,
    /// email: ...or from this file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// email: the sender address.
    #[serde(default)]
    pub from: Option<String>,
    /// email: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// email: copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
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
fn default_rate_limit() -> RateLimit {
    RateLimit { max: 30, per: Duration::from_secs(60) }
}

/// What a resolved webhook sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The standard JSON document.
    Json,
    /// A Slack Block Kit message.
    Slack,
    /// A MiniJinja template's output, with this Content-Type.
    Template {
        /// The template source.
        source: String,
        /// Content-Type of the rendered body.
        content_type: String,
    },
}

/// Retry, give-up and flood-guard policy of one notifier.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Give up after this long.
    pub give_up_after: Duration,
    /// Told when a delivery is given up.
    pub fallback: Option<String>,
    /// The flood guard.
    pub rate_limit: RateLimit,
}

/// A webhook (or Slack) notifier with its secrets resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookTarget {
    /// What it sends.
    pub payload: Payload,
    /// The URL.
    pub url: Secret,
    /// POST or PUT.
    pub method: String,
    /// Every header, values resolved.
    pub headers: Vec<(String, Secret)>,
    /// HMAC-SHA256 key for the signature header, when bodies are signed.
    pub signature_secret: Option<Secret>,
}

/// An email notifier with its secrets resolved and addresses checked.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailTarget {
    /// SMTP server.
    pub host: String,
    /// Port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// Extra trusted certificates (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// AUTH user and password.
    pub credentials: Option<(String, Secret)>,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    pub cc: Vec<String>,
}

/// Where a notifier delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// HTTP.
    Webhook(WebhookTarget),
    /// SMTP.
    Email(EmailTarget),
}

/// A notifier ready to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedNotifier {
    /// Its name in the config.
    pub name: String,
    /// Retries, give-up, flood guard.
    pub policy: DeliveryPolicy,
    /// Where it delivers.
    pub target: Target,
    /// The dashboard's address (`http.external_url`): notifications link to their alert's page under it.
    pub alert_links: Option<String>,
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
    /// The setting is right but its secret is not available here (an unset variable, an unreadable file): the
    /// service may still see it (`config check` warns instead of failing).
    pub missing_secret: bool,
}

/// Resolves a secret given as an environment variable or a file (at most one of them).
fn secret_from(
    variable: Option<&String>,
    path: Option<&PathBuf>,
    fields: (&str, &str),
    error: &dyn Fn(&str, String) -> NotifierError,
) -> Result<Option<Secret>, NotifierError> {
    super::secret::read(variable, path, fields).map_err(|problem| NotifierError {
        missing_secret: problem.unreadable,
        ..error(&problem.field, problem.message)
    })
}

impl NotifierConfig {
    /// Checks the notifier and resolves its secrets from the environment and files.
    pub fn resolve(&self, name: &str) -> Result<ResolvedNotifier, NotifierError> {
        let error = |field: &str, message: String| NotifierError {
            notifier: name.to_owned(),
            field: field.to_owned(),
            message,
            missing_secret: false,
        };
        self.check_fields_apply(&error)?;
        if self.rate_limit.max == 0 || self.rate_limit.per.is_zero() {
            return Err(error("rate_limit", "max and per must be above zero".into()));
        }
        if self.fallback.as_deref() == Some(name) {
            return Err(error("fallback", "a notifier cannot be its own fallback".into()));
        }
        let target = match self.kind {
            NotifierKind::Webhook | NotifierKind::Slack => Target::Webhook(self.webhook(&error)?),
            NotifierKind::Email => Target::Email(self.email(&error)?),
        };
        Ok(ResolvedNotifier {
            name: name.to_owned(),
            policy: DeliveryPolicy {
                timeout: self.timeout,
                retry_initial: self.retry_initial,
                give_up_after: self.give_up_after,
                fallback: self.fallback.clone(),
                rate_limit: self.rate_limit,
            },
            target,
            alert_links: None,
        })
    }

    /// Refuses keys of another notifier type (a `host` on a webhook is a mistake worth naming).
    fn check_fields_apply(&self, error: &dyn Fn(&str, String) -> NotifierError) -> Result<(), NotifierError> {
        let webhook_only = [
            ("method", self.method.is_some()),
            ("headers", !self.headers.is_empty()),
            ("header_env", !self.header_env.is_empty()),
            ("signature_secret_env", self.signature_secret_env.is_some()),
            ("signature_secret_file", self.signature_secret_file.is_some()),
            ("body_template", self.body_template.is_some()),
            ("content_type", self.content_type.is_some()),
        ];
        let http_only =
            [("url", self.url.is_some()), ("url_env", self.url_env.is_some()), ("url_file", self.url_file.is_some())];
        let email_only = [
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("tls", self.tls.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("username", self.username.is_some()),
            ("password_env", self.password_env.is_some()),
            ("password_file", self.password_file.is_some()),
            ("from", self.from.is_some()),
            ("to", !self.to.is_empty()),
            ("cc", !self.cc.is_empty()),
        ];
        let foreign: Vec<&(&str, bool)> = match self.kind {
            NotifierKind::Webhook => email_only.iter().collect(),
            NotifierKind::Slack => email_only.iter().chain(&webhook_only).collect(),
            NotifierKind::Email => http_only.iter().chain(&webhook_only).collect(),
        };
        match foreign.iter().find(|(_, given)| *given) {
            Some((field, _)) => Err(error(field, format!("not a setting of {} notifier", self.kind.described()))),
            None => Ok(()),
        }
    }

    fn webhook(&self, error: &dyn Fn(&str, String) -> NotifierError) -> Result<WebhookTarget, NotifierError> {
        let url = match (&self.url, &self.url_env, &self.url_file) {
            (Some(url), None, None) => url.clone(),
            (None, Some(_), None) | (None, None, Some(_)) => {
                secret_from(self.url_env.as_ref(), self.url_file.as_ref(), ("url_env", "url_file"), error)?
                    .map(|s| s.0)
                    .unwrap_or_default()
            }
            _ => return Err(error("url", "give exactly one of url, url_env, url_file".into())),
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) || reqwest::Url::parse(&url).is_err() {
            // The value may be a secret: the message says what is wrong, not what it is.
            return Err(error("url", "not an http(s) URL".into()));
        }
        let method = self.method.as_deref().unwrap_or("POST").to_ascii_uppercase();
        if method != "POST" && method != "PUT" {
            return Err(error("method", format!("`{method}`: use POST or PUT")));
        }
        let mut headers: Vec<(String, Secret)> =
            self.headers.iter().map(|(k, v)| (k.clone(), Secret(v.clone()))).collect();
        for (header, variable) in &self.header_env {
            let value = std::env::var(variable).map_err(|_| {
                error(&format!("header_env.{header}"), format!("environment variable {variable} is not set"))
            })?;
            headers.push((header.clone(), Secret(value)));
        }
        let payload = match (self.kind, &self.body_template) {
            (NotifierKind::Slack, _) => Payload::Slack,
            (_, None) => Payload::Json,
            (_, Some(source)) => {
                minijinja::Environment::new()
                    .template_from_str(source)
                    .map_err(|e| error("body_template", format!("does not compile: {e}")))?;
                Payload::Template {
                    source: source.clone(),
                    content_type: self.content_type.clone().unwrap_or_else(|| "application/json".into()),
                }
            }
        };
        if self.content_type.is_some() && self.body_template.is_none() {
            return Err(error("content_type", "only applies with body_template".into()));
        }
        let signature_secret = secret_from(
            self.signature_secret_env.as_ref(),
            self.signature_secret_file.as_ref(),
            ("signature_secret_env", "signature_secret_file"),
            error,
        )?;
        Ok(WebhookTarget { payload, url: Secret(url), method, headers, signature_secret })
    }

    fn email(&self, error: &dyn Fn(&str, String) -> NotifierError) -> Result<EmailTarget, NotifierError> {
        let host = self.host.clone().ok_or_else(|| error("host", "the SMTP server is required".into()))?;
        let tls = self.tls.unwrap_or(SmtpTls::Starttls);
        if tls == SmtpTls::None && !is_loopback(&host) {
            return Err(error("tls", format!("`none` is only allowed for a relay on loopback, not {host}")));
        }
        let port = self.port.unwrap_or(match tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        });
        let ca_pem = match &self.ca_file {
            None => None,
            Some(path) => Some(
                std::fs::read(path).map_err(|e| error("ca_file", format!("cannot read {}: {e}", path.display())))?,
            ),
        };
        let password = secret_from(
            self.password_env.as_ref(),
            self.password_file.as_ref(),
            ("password_env", "password_file"),
            error,
        )?;
        let credentials = match (&self.username, password) {
            (Some(user), Some(password)) => Some((user.clone(), password)),
            (None, None) => None,
            (Some(_), None) => return Err(error("password_env", "username is given without a password".into())),
            (None, Some(_)) => return Err(error("username", "a password is given without a username".into())),
        };
        if credentials.is_some() && tls == SmtpTls::None {
            return Err(error("tls", "AUTH needs TLS: the password would cross the network in clear".into()));
        }
        let from = self.from.clone().ok_or_else(|| error("from", "the sender address is required".into()))?;
        check_address(&from, "from", error)?;
        if self.to.is_empty() {
            return Err(error("to", "at least one recipient is required".into()));
        }
        for (i, address) in self.to.iter().enumerate() {
            check_address(address, &format!("to[{i}]"), error)?;
        }
        for (i, address) in self.cc.iter().enumerate() {
            check_address(address, &format!("cc[{i}]"), error)?;
        }
        Ok(EmailTarget { host, port, tls, ca_pem, credentials, from, to: self.to.clone(), cc: self.cc.clone() })
    }
}

/// Resolves every notifier and checks that each `fallback` names another one.
pub fn resolve_all(
    notifiers: &BTreeMap<String, NotifierConfig>,
    alert_links: Option<&str>,
) -> Result<Vec<ResolvedNotifier>, NotifierError> {
    check_fallbacks(notifiers)?;
    notifiers
        .iter()
        .map(|(name, notifier)| {
            let resolved = notifier.resolve(name)?;
            Ok(ResolvedNotifier { alert_links: alert_links.map(str::to_owned), ..resolved })
        })
        .collect()
}

/// Every `fallback` names another configured notifier.
pub fn check_fallbacks(notifiers: &BTreeMap<String, NotifierConfig>) -> Result<(), NotifierError> {
    let names: Vec<&str> = notifiers.keys().map(String::as_str).collect();
    for (name, notifier) in notifiers {
        if let Some(fallback) = notifier.fallback.as_deref().filter(|f| !notifiers.contains_key(*f)) {
            return Err(NotifierError {
                missing_secret: false,
                notifier: name.clone(),
                field: "fallback".into(),
                message: format!("`{fallback}` is not a notifier{}", crate::event::did_you_mean(fallback, &names)),
            });
        }
    }
    Ok(())
}

fn check_address(
    address: &str,
    field: &str,
    error: &dyn Fn(&str, String) -> NotifierError,
) -> Result<(), NotifierError> {
    address
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| error(field, format!("`{address}` is not a mail address: {e}")))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifier(yaml: &str) -> NotifierConfig {
        serde_yaml_ng::from_str::<NotifierConfig>(yaml).unwrap()
    }

    #[test]
    fn urls_come_from_exactly_one_place_and_stay_secret() {
        std::env::set_var("HSMWATCH_TEST_HOOK", "https://hooks.example.net/T0/B0/XYZZY-token");
        let resolved = notifier("{type: webhook, url_env: HSMWATCH_TEST_HOOK}").resolve("ops").unwrap();
        let Target::Webhook(webhook) = &resolved.target else { panic!("{resolved:?}") };
        assert_eq!(webhook.url.0, "https://hooks.example.net/T0/B0/XYZZY-token");
        assert!(!format!("{resolved:?}").contains("XYZZY"), "{resolved:?}");
        let both = notifier("{type: webhook, url: 'http://a', url_env: X}").resolve("ops").unwrap_err();
        assert_eq!(both.to_string(), "notifier `ops`, url: give exactly one of url, url_env, url_file");
        let missing = notifier("{type: webhook, url_env: HSMWATCH_TEST_UNSET}").resolve("ops").unwrap_err();
        assert_eq!(missing.to_string(), "notifier `ops`, url_env: environment variable HSMWATCH_TEST_UNSET is not set");
        let bad = notifier("{type: webhook, url: 'ftp://x'}").resolve("ops").unwrap_err();
        assert_eq!(bad.field, "url");
        assert!(serde_yaml_ng::from_str::<NotifierConfig>("{type: webhook, url: 'http://a', urll: 1}").is_err());
    }

    #[test]
    fn keys_of_another_type_are_named() {
        let error = notifier("{type: webhook, url: 'http://a', host: smtp.example.com}").resolve("ops").unwrap_err();
        assert_eq!(error.to_string(), "notifier `ops`, host: not a setting of a webhook notifier");
        let error = notifier("{type: slack, url: 'http://a', body_template: x}").resolve("s").unwrap_err();
        assert_eq!(error.field, "body_template");
        let error = notifier("{type: email, host: h, url: 'http://a'}").resolve("m").unwrap_err();
        assert_eq!(error.field, "url");
    }

    #[test]
    fn email_settings_are_checked() {
        std::env::set_var("HSMWATCH_TEST_SMTP_PASSWORD", "hunter2-XYZZY");
        let ok = notifier(
            "{type: email, host: smtp.example.com, username: hsmwatch, password_env: HSMWATCH_TEST_SMTP_PASSWORD, \
             from: 'hsmwatch <hsmwatch@example.com>', to: [secops@example.com]}",
        )
        .resolve("mail")
        .unwrap();
        let Target::Email(email) = &ok.target else { panic!() };
        assert_eq!((email.port, email.tls), (587, SmtpTls::Starttls));
        assert!(!format!("{ok:?}").contains("XYZZY"));
        let plain = notifier("{type: email, host: smtp.example.com, tls: none, from: a@b.c, to: [d@e.f]}")
            .resolve("mail")
            .unwrap_err();
        assert_eq!(plain.field, "tls");
        assert!(notifier("{type: email, host: 127.0.0.1, tls: none, from: a@b.c, to: [d@e.f]}").resolve("m").is_ok());
        assert!(notifier("{type: email, host: '::1', tls: none, from: a@b.c, to: [d@e.f]}").resolve("m").is_ok());
        let bad =
            notifier("{type: email, host: h, from: a@b.c, to: [d@e.f, 'not an address']}").resolve("m").unwrap_err();
        assert_eq!(bad.field, "to[1]");
        let no_to = notifier("{type: email, host: h, from: a@b.c}").resolve("m").unwrap_err();
        assert_eq!(no_to.field, "to");
    }

    #[test]
    fn templates_compile_and_fallbacks_are_others() {
        let error =
            notifier("{type: webhook, url: 'http://a', body_template: '{{ alert.title'}").resolve("w").unwrap_err();
        assert_eq!(error.field, "body_template");
        let error = notifier("{type: webhook, url: 'http://a', fallback: w}").resolve("w").unwrap_err();
        assert_eq!(error.field, "fallback");
    }
}

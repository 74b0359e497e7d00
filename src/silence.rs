//! Silences: an operator holds back notifications (planned maintenance, a known noisy HSM) without losing anything.
//! An alert that matches every matcher of an active silence is recorded with the silence's id, and no delivery job is
//! queued for it.
//!
//! Matchers are `key=value` pairs. Keys: `rule`, `host`, `severity`, `status`, `fingerprint`, or any field the rule
//! groups by (`user.name=admin`). A `*` in a value matches any run of characters (`rule=luna.auth.*`). Silences are
//! rows of the store's `silences` table ([`crate::store::silences`]); this module decides what they hold back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::alert::Alert;
use crate::decode::glob_matches;
pub use crate::store::silences::Silence;

/// The keys that name an alert's own attributes; any other key is a group field.
pub const ALERT_KEYS: [&str; 5] = ["rule", "host", "severity", "status", "fingerprint"];

/// What is wrong with a matcher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// Not `key=value`.
    #[error("`{0}`: a matcher is key=value, e.g. rule=luna.auth.bruteforce or host=hsm-01")]
    Syntax(String),
    /// An empty key or value.
    #[error("`{0}`: the key and the value must not be empty")]
    Empty(String),
    /// No matchers at all: a silence of everything is refused.
    #[error("give at least one matcher (a silence of everything would hide every alert)")]
    None,
    /// A key that is neither an alert's attribute nor an event field: it could never match.
    #[error("`{key}`: unknown matcher key{hint}; keys are rule, host, severity, status, fingerprint, or an event field a rule groups by (user.name, source.ip...)")]
    UnknownKey {
        /// The key given.
        key: String,
        /// ` (did you mean ...?)`, or nothing.
        hint: String,
    },
}

/// Parses `key=value` matchers.
pub fn parse_matchers(args: &[String]) -> Result<BTreeMap<String, String>, MatcherError> {
    if args.is_empty() {
        return Err(MatcherError::None);
    }
    let mut matchers = BTreeMap::new();
    for arg in args {
        let (key, value) = arg.split_once('=').ok_or_else(|| MatcherError::Syntax(arg.clone()))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(MatcherError::Empty(arg.clone()));
        }
        if !ALERT_KEYS.contains(&key) && crate::event::field::lookup(key).is_none() {
            let known: Vec<&str> = ALERT_KEYS.iter().chain(crate::event::field::ALL).copied().collect();
            let hint = crate::event::did_you_mean(key, &known);
            return Err(MatcherError::UnknownKey { key: key.to_owned(), hint });
        }
        matchers.insert(key.to_owned(), value.to_owned());
    }
    Ok(matchers)
}

impl Silence {
    /// Whether it holds back alerts at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expired_at.is_none() && self.starts_at <= now && now < self.ends_at
    }

    /// Whether the alert matches every matcher.
    pub fn matches(&self, alert: &Alert) -> bool {
        self.matchers.iter().all(|(key, pattern)| {
            let value = match key.as_str() {
                "rule" => Some(alert.rule_id.as_str()),
                "host" => alert.host.as_deref(),
                "severity" => Some(alert.severity),
                "status" => Some(alert.status.as_str()),
                "fingerprint" => Some(alert.fingerprint.as_str()),
                field => alert.group.get(field).map(String::as_str),
            };
            value.is_some_and(|value| glob_matches(pattern, value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (pattern, text, expected) in [
            ("luna.auth.*", "luna.auth.bruteforce", true),
            ("luna.auth.*", "luna.hw.tamper", false),
            ("*", "", true),
            ("hsm-0?", "hsm-01", false),
            ("*-01", "hsm-01", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("ab*ba", "aba", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn matchers_parse_and_refuse_nonsense() {
        let parsed = parse_matchers(&["rule=luna.*".into(), "user.name = admin".into()]).unwrap();
        assert_eq!(parsed.get("user.name").map(String::as_str), Some("admin"));
        assert_eq!(parse_matchers(&[]), Err(MatcherError::None));
        assert!(matches!(parse_matchers(&["rule".into()]), Err(MatcherError::Syntax(_))));
        assert!(matches!(parse_matchers(&["rule=".into()]), Err(MatcherError::Empty(_))));
        let typo = parse_matchers(&["hots=vm".into()]).unwrap_err().to_string();
        assert!(typo.starts_with("`hots`: unknown matcher key (did you mean `host`?)"), "{typo}");
        let typo = parse_matchers(&["user.nam=bob".into()]).unwrap_err().to_string();
        assert!(typo.contains("(did you mean `user.name`?)"), "{typo}");
    }
}

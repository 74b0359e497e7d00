//! The outbox's routing: whether an alert goes out at all, and to which notifiers. The jobs themselves, one per
//! (alert, notifier), are rows of the store's `outbox` table ([`crate::store::outbox`]), written in the same
//! transaction as the alert.

use chrono::{DateTime, Utc};

use crate::config::notifiers::Severity;

/// Which notifiers an alert goes to, and which alerts are too old to go anywhere.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    notifiers: Vec<(String, Severity)>,
    horizon: Option<std::time::Duration>,
    /// Changes of an alert's state are not sent (`alerts.notify_changes: false`).
    quiet_changes: bool,
}

impl Routing {
    /// Routing over the configured notifiers and their minimum severities.
    pub fn new(notifiers: Vec<(String, Severity)>) -> Self {
        Routing { notifiers, horizon: None, quiet_changes: false }
    }

    /// Acknowledgements and resolutions are recorded but not sent (`alerts.notify_changes: false`).
    pub fn with_quiet_changes(mut self) -> Self {
        self.quiet_changes = true;
        self
    }

    /// Whether a change of an alert's state is sent to the notifiers the alert went to.
    pub fn notifies_changes(&self) -> bool {
        !self.quiet_changes
    }

    /// Alerts whose events were received longer ago than `horizon` before they are evaluated are not sent
    /// (`alerts.notify_horizon`): history (an import of archives, a backlog evaluated late) does not page anyone.
    pub fn with_horizon(mut self, horizon: std::time::Duration) -> Self {
        self.horizon = Some(horizon);
        self
    }

    /// Why an alert due to be notified is not sent at `now`: the event behind it was received at `received`, beyond
    /// the horizon.
    pub fn held_back(&self, received: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
        let horizon = self.horizon?;
        let limit = chrono::Duration::from_std(horizon).ok()?;
        (received < now.checked_sub_signed(limit)?).then(|| {
            format!(
                "history: received {}, more than alerts.notify_horizon ({}) before it was evaluated",
                received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                humantime::format_duration(horizon)
            )
        })
    }

    /// The notifiers of an alert: those its rule names, else every notifier whose minimum severity it reaches.
    pub fn targets(&self, named: Option<&[String]>, severity: Severity) -> Vec<String> {
        match named {
            Some(names) => names.to_vec(),
            None => self.notifiers.iter().filter(|(_, min)| severity >= *min).map(|(name, _)| name.clone()).collect(),
        }
    }

    /// Whether a notifier of that name exists.
    pub fn knows(&self, name: &str) -> bool {
        self.notifiers.iter().any(|(n, _)| n == name)
    }

    /// Every notifier name.
    pub fn names(&self) -> Vec<&str> {
        self.notifiers.iter().map(|(n, _)| n.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_notifiers_or_severity_routes() {
        let routing = Routing::new(vec![("all".into(), Severity::Info), ("pager".into(), Severity::High)]);
        assert_eq!(routing.targets(None, Severity::Medium), ["all"]);
        assert_eq!(routing.targets(None, Severity::Critical), ["all", "pager"]);
        assert_eq!(routing.targets(Some(&["pager".to_owned()]), Severity::Info), ["pager"]);
    }

    #[test]
    fn history_beyond_the_horizon_is_held_back() {
        let now: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
        let routing = Routing::new(Vec::new()).with_horizon(std::time::Duration::from_secs(3600));
        assert_eq!(routing.held_back(now - chrono::Duration::minutes(59), now), None);
        let why = routing.held_back(now - chrono::Duration::days(300), now).unwrap();
        assert!(
            why.starts_with("history: received 2025-05-05T12:00:00Z, more than alerts.notify_horizon (1h)"),
            "{why}"
        );
        assert_eq!(Routing::new(Vec::new()).held_back(now - chrono::Duration::days(300), now), None);
    }
}

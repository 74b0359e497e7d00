//! The outbox's routing: which notifiers an alert goes to. The jobs themselves, one per (alert, notifier), are rows
//! of the store's `outbox` table ([`crate::store::outbox`]), written in the same transaction as the alert.

use crate::config::notifiers::Severity;

/// Which notifiers an alert goes to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    notifiers: Vec<(String, Severity)>,
}

impl Routing {
    /// Routing over the configured notifiers and their minimum severities.
    pub fn new(notifiers: Vec<(String, Severity)>) -> Self {
        Routing { notifiers }
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
}

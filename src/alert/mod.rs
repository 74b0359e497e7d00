//! The alert stage: every firing becomes an [`Alert`]: throttled per fingerprint (with the count of what was held
//! back), then rendered with the rule's MiniJinja templates.
//!
//! Receives [`Firing`]s from the rule engine; emits alerts, each saying whether it is to be notified. Owns the
//! throttle marks and the compiled templates. Recording alerts and queueing deliveries are the store's and the
//! outbox's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{context, Environment, Value};

use crate::rules::engine::{Firing, Status};
use crate::rules::load::Rule;

/// An alert: a firing or a resolution, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Rule id.
    pub rule_id: String,
    /// Severity name.
    pub severity: &'static str,
    /// Severity, for routing.
    pub level: crate::config::notifiers::Severity,
    /// Notifiers the rule names (`None`: routed by severity).
    pub notify_to: Option<Vec<String>>,
    /// `firing` or `resolved`.
    pub status: Status,
    /// Rule id plus group values.
    pub fingerprint: String,
    /// The host it concerns: the group's `host.name`, else the last event's.
    pub host: Option<String>,
    /// group_by fields and values.
    pub group: BTreeMap<String, String>,
    /// What was counted.
    pub count: u64,
    /// First matching event.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last matching event.
    pub last_seen: Option<DateTime<Utc>>,
    /// When it fired.
    pub at: DateTime<Utc>,
    /// Rendered title.
    pub title: String,
    /// Rendered body.
    pub body: String,
    /// Stored ids of the triggering events.
    pub event_ids: Vec<i64>,
    /// Whether a notification goes out (false when held back by the throttle).
    pub notify: bool,
    /// Firings held back by the throttle since the last notification of this fingerprint.
    pub suppressed: u64,
}

impl Alert {
    /// The alert as the store records it.
    pub fn record(&self) -> crate::store::alerts::AlertRecord<'_> {
        crate::store::alerts::AlertRecord {
            rule_id: &self.rule_id,
            fingerprint: &self.fingerprint,
            severity: self.severity,
            status: self.status.as_str(),
            group: &self.group,
            count: self.count,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            at: self.at,
            title: &self.title,
            body: &self.body,
            event_ids: &self.event_ids,
            notify: self.notify,
            suppressed: self.suppressed,
            host: self.host.as_deref(),
            silenced_by: None,
            held_back: None,
        }
    }

    /// An alert of hsmwatch's own (a test notification, a delivery given up): firing, count 1, no events, notified.
    pub fn notice(
        rule_id: &str,
        level: crate::config::notifiers::Severity,
        fingerprint: String,
        title: String,
        body: String,
        at: DateTime<Utc>,
    ) -> Alert {
        Alert {
            rule_id: rule_id.to_owned(),
            severity: level.as_str(),
            level,
            notify_to: None,
            status: Status::Firing,
            fingerprint,
            host: None,
            group: BTreeMap::new(),
            count: 1,
            first_seen: Some(at),
            last_seen: Some(at),
            at,
            title,
            body,
            event_ids: Vec::new(),
            notify: true,
            suppressed: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    last_sent: DateTime<Utc>,
    suppressed: u64,
}

/// Turns firings into alerts.
#[derive(Debug)]
pub struct Alerter {
    env: Environment<'static>,
    marks: HashMap<String, Mark>,
    changed_marks: HashSet<String>,
}

impl Alerter {
    /// An alerter for `rules` (their templates were checked when the rules loaded).
    pub fn new(rules: &[Arc<Rule>]) -> Alerter {
        let mut env = Environment::new();
        for rule in rules {
            // Checked at load; a template that still fails renders as its error text, never stops alerting.
            let _ = env.add_template_owned(format!("{}#title", rule.id), rule.title_template.clone());
            let _ = env.add_template_owned(format!("{}#body", rule.id), rule.body_template.clone());
        }
        Alerter { env, marks: HashMap::new(), changed_marks: HashSet::new() }
    }

    /// An alerter for reloaded `rules` that keeps this one's throttle marks.
    pub fn reloaded(&self, rules: &[Arc<Rule>]) -> Alerter {
        let mut alerter = Alerter::new(rules);
        alerter.marks = self.marks.clone();
        alerter.changed_marks = self.changed_marks.clone();
        alerter
    }

    /// Restores a saved throttle mark.
    pub fn restore_mark(&mut self, fingerprint: String, last_sent: DateTime<Utc>, suppressed: u64) {
        self.marks.insert(fingerprint, Mark { last_sent, suppressed });
    }

    /// The marks that changed since the last call, to save.
    pub fn take_changed_marks(&mut self) -> Vec<crate::store::alerts::MarkRow> {
        std::mem::take(&mut self.changed_marks)
            .into_iter()
            .filter_map(|f| self.marks.get(&f).map(|m| (f.clone(), m.last_sent, m.suppressed)))
            .collect()
    }

    /// The alert of a firing; `throttle` decides whether it is notified. Resolutions are always notified.
    pub fn alert(&mut self, firing: &Firing) -> Alert {
        let rule = &firing.rule;
        let (notify, suppressed) = match firing.status {
            Status::Resolved => (true, 0),
            Status::Firing => self.throttle(&firing.fingerprint, firing.at, rule.throttle),
        };
        let context = template_context(firing, suppressed);
        let render = |which: &str| {
            self.env
                .get_template(&format!("{}#{which}", rule.id))
                .and_then(|t| t.render(&context))
                .unwrap_or_else(|e| format!("(template error in rule {} {which}: {e})", rule.id))
        };
        Alert {
            rule_id: rule.id.clone(),
            severity: rule.severity.as_str(),
            level: rule.severity,
            notify_to: rule.notify.clone(),
            status: firing.status,
            fingerprint: firing.fingerprint.clone(),
            host: firing
                .group
                .iter()
                .find(|(name, _)| *name == crate::event::field::HOST_NAME)
                .map(|(_, value)| value.clone())
                .or_else(|| {
                    firing.evidence.last.as_ref().and_then(|e| e.get(crate::event::field::HOST_NAME)).map(str::to_owned)
                }),
            group: firing.group.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            count: firing.evidence.count,
            first_seen: firing.evidence.first_seen,
            last_seen: firing.evidence.last_seen,
            at: firing.at,
            title: render("title").trim().to_owned(),
            body: render("body"),
            event_ids: firing.evidence.ids.clone(),
            notify,
            suppressed,
        }
    }

    /// `(notify, suppressed)`: at most one notification per fingerprint per `throttle`; what is held back is counted
    /// and reported by the next one that goes out.
    fn throttle(&mut self, fingerprint: &str, at: DateTime<Utc>, throttle: std::time::Duration) -> (bool, u64) {
        self.changed_marks.insert(fingerprint.to_owned());
        match self.marks.get_mut(fingerprint) {
            Some(mark) if at < crate::event::later(mark.last_sent, throttle) => {
                mark.suppressed += 1;
                (false, mark.suppressed)
            }
            Some(mark) => {
                let suppressed = mark.suppressed;
                *mark = Mark { last_sent: at, suppressed: 0 };
                (true, suppressed)
            }
            None => {
                self.marks.insert(fingerprint.to_owned(), Mark { last_sent: at, suppressed: 0 });
                (true, 0)
            }
        }
    }
}

fn rfc3339(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)).unwrap_or_default()
}

/// The template variables of docs/rules.md: rule, severity, status, fingerprint, event, events, count, group, first_seen,
/// last_seen, suppressed.
fn template_context(firing: &Firing, suppressed: u64) -> Value {
    let rule = &firing.rule;
    let event = firing.evidence.last.as_ref().map(|e| e.all_fields()).unwrap_or_default();
    let events: Vec<BTreeMap<&'static str, String>> = firing.evidence.sample.iter().map(|e| e.all_fields()).collect();
    let group: BTreeMap<&str, &str> = firing.group.iter().map(|(k, v)| (*k, v.as_str())).collect();
    context! {
        rule => context! { id => rule.id, title => rule.title, severity => rule.severity.as_str(), tags => rule.tags, description => rule.description },
        severity => rule.severity.as_str(),
        status => firing.status.as_str(),
        fingerprint => firing.fingerprint,
        event => event,
        events => events,
        count => firing.evidence.count,
        group => group,
        first_seen => rfc3339(firing.evidence.first_seen),
        last_seen => rfc3339(firing.evidence.last_seen),
        suppressed => suppressed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{field, Event, Timestamp};
    use crate::rules::engine::Engine;
    use crate::rules::load::compile_files;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap()
    }

    #[test]
    fn throttled_firings_are_recorded_held_back_and_counted() {
        let yaml = "id: r\ntitle: Failed logins\nseverity: high\nselect:\n  s:\n    event.action: ssh.login\nthrottle: 10m\nmessage:\n  title: \"{{ count }} on {{ event['host.name'] }} (+{{ suppressed }} held back) {{ rule.title }}\"\n";
        let loaded = compile_files(&[("r.yaml".into(), yaml.into())]).unwrap();
        let mut engine = Engine::new(&loaded.rules, t(0));
        let mut alerter = Alerter::new(&loaded.rules);
        let mut alerts = Vec::new();
        for minute in [0, 1, 2, 11] {
            let when = Timestamp::new(t(minute * 60), 0);
            let mut e = Event::new(when, when);
            e.set(field::ACTION, "ssh.login");
            e.set(field::HOST_NAME, "hsm-01");
            for firing in engine.process(&e, Some(minute)) {
                alerts.push(alerter.alert(&firing));
            }
        }
        let seen: Vec<(bool, u64)> = alerts.iter().map(|a| (a.notify, a.suppressed)).collect();
        assert_eq!(seen, [(true, 0), (false, 1), (false, 2), (true, 2)]);
        assert_eq!(alerts[3].title, "1 on hsm-01 (+2 held back) Failed logins");
        assert_eq!(alerts[0].event_ids, vec![0]);
    }
}

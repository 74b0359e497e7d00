//! `hsmwatch rules test`: runs the `tests:` of every rule on a virtual clock, through the real framing, parsing and
//! decoders for `wire` events, the real engine, throttle and templates, and compares the notifications with `expect`.
//!
//! It composes stages (ingest, rules, alert) as `evaluate` does, so it lives beside it rather than inside `rules`,
//! which must not know the alert stage after it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::alert::{Alert, Alerter};
use crate::decode::{Decoders, Origin};
use crate::event::{field, Event, Timestamp};
use crate::ingest::frame_to_event;
use crate::rules::engine::{Engine, Status};
use crate::rules::load::Rule;
use crate::rules::schema::{ExpectSpec, TestSpec};

/// The virtual clock's zero: offsets in tests are from here.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_607_200, 0).expect("a valid instant") // 2026-01-05T10:00:00Z
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// The rule.
    pub rule: String,
    /// The test's name.
    pub test: String,
    /// Expected notifications, described.
    pub expected: Vec<String>,
    /// Actual notifications, described.
    pub actual: Vec<String>,
    /// What did not match; empty when the test passed.
    pub problems: Vec<String>,
}

impl TestOutcome {
    /// Whether the test passed.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs every test of every rule.
pub fn run_all(rules: &[Arc<Rule>], decoders: &Decoders) -> Vec<TestOutcome> {
    rules.iter().flat_map(|rule| rule.tests.iter().map(move |test| run_one(rule, test, decoders))).collect()
}

fn offset(at: DateTime<Utc>) -> String {
    let seconds = (at - epoch()).num_seconds();
    humantime::format_duration(std::time::Duration::from_secs(seconds.max(0) as u64)).to_string()
}

fn describe(alert: &Alert) -> String {
    let group: Vec<String> = alert.group.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{} count={} group={{{}}} at={} suppressed={} title={:?}",
        alert.status.as_str(),
        alert.count,
        group.join(", "),
        offset(alert.at),
        alert.suppressed,
        alert.title
    )
}

fn describe_expected(expect: &ExpectSpec) -> String {
    let mut parts = vec![expect.status.clone().unwrap_or_else(|| "any".into())];
    if let Some(count) = expect.count {
        parts.push(format!("count={count}"));
    }
    if let Some(group) = &expect.group {
        let group: Vec<String> = group.iter().map(|(k, v)| format!("{k}={}", v.0)).collect();
        parts.push(format!("group={{{}}}", group.join(", ")));
    }
    if let Some(at) = expect.at {
        parts.push(format!("at={}", humantime::format_duration(at)));
    }
    if let Some(suppressed) = expect.suppressed {
        parts.push(format!("suppressed={suppressed}"));
    }
    if let Some(text) = &expect.title_contains {
        parts.push(format!("title contains {text:?}"));
    }
    parts.join(" ")
}

/// What in `alert` differs from `expect`.
fn mismatches(alert: &Alert, expect: &ExpectSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(status) = &expect.status {
        if status != alert.status.as_str() {
            problems.push(format!("status {} instead of {status}", alert.status.as_str()));
        }
    }
    if let Some(count) = expect.count {
        if count != alert.count {
            problems.push(format!("count {} instead of {count}", alert.count));
        }
    }
    for (name, value) in expect.group.iter().flatten() {
        if alert.group.get(name) != Some(&value.0) {
            problems.push(format!("group {name}={:?} instead of {:?}", alert.group.get(name), value.0));
        }
    }
    if let Some(at) = expect.at {
        let expected = epoch() + chrono::Duration::from_std(at).unwrap_or_default();
        if expected != alert.at {
            problems.push(format!("at {} instead of {}", offset(alert.at), humantime::format_duration(at)));
        }
    }
    if let Some(suppressed) = expect.suppressed {
        if suppressed != alert.suppressed {
            problems.push(format!("suppressed {} instead of {suppressed}", alert.suppressed));
        }
    }
    if let Some(text) = &expect.title_contains {
        if !alert.title.contains(text.as_str()) {
            problems.push(format!("title {:?} does not contain {text:?}", alert.title));
        }
    }
    problems
}

/// The events of a test, on the virtual clock, in time order.
fn test_events(test: &TestSpec, decoders: &Decoders) -> Vec<Event> {
    let mut events = Vec::new();
    for spec in &test.events {
        for i in 0..spec.repeat.unwrap_or(1) {
            let offset = spec.at + spec.every.unwrap_or_default() * i;
            let at = epoch() + chrono::Duration::from_std(offset).unwrap_or_default();
            let when = Timestamp::new(at, 0);
            let mut event = match &spec.wire {
                Some(wire) => {
                    let origin = Origin {
                        received: at,
                        source_address: "rule test".into(),
                        peer_ip: None,
                        default_host: None,
                        time_rules: Default::default(),
                    };
                    frame_to_event(wire.as_bytes(), false, &origin, decoders)
                }
                None => Event::new(when, when),
            };
            // The virtual clock decides the time, whatever a wire header says.
            event.timestamp = when;
            event.created = when;
            for (name, value) in spec.fields.iter().flatten() {
                if let Some(name) = field::lookup(name) {
                    event.set(name, value.0.clone());
                }
            }
            events.push(event);
        }
    }
    events.sort_by_key(|e| e.created.at);
    events
}

fn run_one(rule: &Arc<Rule>, test: &TestSpec, decoders: &Decoders) -> TestOutcome {
    // A disabled rule is still tested.
    let mut enabled = (**rule).clone();
    enabled.enabled = true;
    let rules = [Arc::new(enabled)];
    let mut engine = Engine::new(&rules, epoch());
    let mut alerter = Alerter::new(&rules);
    let mut firings = Vec::new();
    let events = test_events(test, decoders);
    for (id, event) in events.iter().enumerate() {
        firings.extend(engine.advance(event.created.at));
        firings.extend(engine.process(event, Some(id as i64)));
    }
    let last = events.last().map_or(epoch(), |e| e.created.at);
    let end = match test.until {
        Some(until) => epoch() + chrono::Duration::from_std(until).unwrap_or_default(),
        None => last + chrono::Duration::from_std(rule.longest_duration()).unwrap_or_default(),
    };
    firings.extend(engine.advance(end));
    // As the store does: a resolution is sent only for an alert that is open (its fingerprint fired since the last
    // resolution).
    let mut open = std::collections::HashSet::new();
    let notified: Vec<Alert> = firings
        .iter()
        .map(|f| alerter.alert(f))
        .filter(|a| match a.status {
            Status::Firing => {
                open.insert(a.fingerprint.clone());
                a.notify
            }
            Status::Resolved => open.remove(&a.fingerprint),
        })
        .collect();
    let mut problems = Vec::new();
    if notified.len() != test.expect.len() {
        problems.push(format!("{} notification(s) instead of {}", notified.len(), test.expect.len()));
    }
    for (index, (alert, expect)) in notified.iter().zip(&test.expect).enumerate() {
        problems.extend(mismatches(alert, expect).into_iter().map(|p| format!("notification {}: {p}", index + 1)));
    }
    TestOutcome {
        rule: rule.id.clone(),
        test: test.name.clone(),
        expected: test.expect.iter().map(describe_expected).collect(),
        actual: notified.iter().map(describe).collect(),
        problems,
    }
}

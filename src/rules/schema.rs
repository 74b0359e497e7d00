//! The rule file format of docs/rules.md as read from YAML, before it is checked and compiled.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

pub use crate::config::notifiers::Severity;

/// One rule document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique, stable id: it starts every alert's fingerprint.
    pub id: String,
    /// Short title.
    pub title: String,
    /// Longer description.
    #[serde(default)]
    pub description: Option<String>,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Disabled rules are loaded and checked but not evaluated.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Named selections.
    pub select: Mapping,
    /// Condition over selection names; default: the only selection, or all of them ANDed.
    #[serde(default)]
    pub condition: Option<String>,
    /// Stateful detection; without it every matching event fires.
    #[serde(default)]
    pub detect: Option<DetectSpec>,
    /// At most one notification per fingerprint per this long.
    #[serde(default, with = "crate::config::units::optional_duration")]
    pub throttle: Option<Duration>,
    /// A selection whose match resolves the open alert of the event's group (`snmp.poll` success after failures).
    #[serde(default)]
    pub resolve_when: Option<String>,
    /// An open alert of this rule with no firing for this long is resolved (default 24h; absence rules resolve
    /// their alerts themselves and default to never).
    #[serde(default, with = "crate::config::units::optional_duration")]
    pub resolve_after: Option<Duration>,
    /// Alert title and body templates.
    #[serde(default)]
    pub message: Option<MessageSpec>,
    /// Notifiers by name.
    #[serde(default)]
    pub notify: Option<Vec<String>>,
    /// Inline tests.
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

fn enabled_by_default() -> bool {
    true
}

/// A document holding named lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListsSpec {
    /// Lists by name: values, or CIDR networks.
    pub lists: BTreeMap<String, Vec<ScalarText>>,
}

/// A YAML scalar read as text (`5`, `true`, `alice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarText(pub String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(ScalarText(s)),
            Value::Number(n) => Ok(ScalarText(n.to_string())),
            Value::Bool(b) => Ok(ScalarText(b.to_string())),
            _ => Err(serde::de::Error::custom("expected a string, number or boolean")),
        }
    }
}

/// Templates of the alert text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// One-line title.
    #[serde(default)]
    pub title: Option<String>,
    /// Body.
    #[serde(default)]
    pub body: Option<String>,
}

/// The stateful detections.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DetectSpec {
    /// N matching events (or N distinct values) within a sliding window.
    Threshold(ThresholdSpec),
    /// A group that matched before has been silent for a while.
    Absence(AbsenceSpec),
    /// A combination of values never seen before in its group.
    NewValue(NewValueSpec),
    /// Steps in order within a time.
    Sequence(SequenceSpec),
}

/// `type: threshold`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// Matching events needed.
    #[serde(default)]
    pub count: Option<u64>,
    /// Or distinct values needed.
    #[serde(default)]
    pub distinct: Option<DistinctSpec>,
    /// Sliding event-time window.
    #[serde(with = "crate::config::units::duration")]
    pub window: Duration,
    /// Fields that split the state.
    #[serde(default)]
    pub group_by: Vec<String>,
}

/// `distinct: {field, count}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistinctSpec {
    /// The field whose distinct values are counted.
    pub field: String,
    /// Distinct values needed.
    pub count: u64,
}

/// `type: absence`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbsenceSpec {
    /// Silence that fires.
    #[serde(rename = "for", with = "crate::config::units::duration")]
    pub silence: Duration,
    /// Fields that split the state.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Groups expected even before they were seen: values of the single `group_by` field, or maps of its fields.
    #[serde(default)]
    pub expect: Vec<Value>,
}

/// `type: new_value`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewValueSpec {
    /// The fields whose combination is watched.
    pub fields: Vec<String>,
    /// Fields that split the state.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Nothing fires during this long after the rule first ran.
    #[serde(default, with = "crate::config::units::optional_duration")]
    pub learn: Option<Duration>,
}

/// `type: sequence`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceSpec {
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
    /// All steps within this long of the first.
    #[serde(with = "crate::config::units::duration")]
    pub within: Duration,
    /// Fields that split the state.
    #[serde(default)]
    pub group_by: Vec<String>,
}

/// One step: a selection name, or `{select, count}` or `{select, absent: true}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StepSpec {
    /// One event of the selection.
    Name(String),
    /// The long form.
    Full(FullStepSpec),
}

/// `{select: NAME, count: N}` or `{select: NAME, absent: true}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullStepSpec {
    /// The selection.
    pub select: String,
    /// Events needed.
    #[serde(default)]
    pub count: Option<u64>,
    /// The step holds when no such event comes within `within`.
    #[serde(default)]
    pub absent: bool,
}

/// One inline test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Its name.
    pub name: String,
    /// Events placed on a virtual clock.
    #[serde(default)]
    pub events: Vec<TestEventSpec>,
    /// How long the clock runs after the last event.
    #[serde(default, with = "crate::config::units::optional_duration")]
    pub until: Option<Duration>,
    /// Every alert expected, in order.
    pub expect: Vec<ExpectSpec>,
}

/// Events of a test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestEventSpec {
    /// Offset of the first.
    #[serde(with = "crate::config::units::duration")]
    pub at: Duration,
    /// Spacing when repeated.
    #[serde(default, with = "crate::config::units::optional_duration")]
    pub every: Option<Duration>,
    /// How many.
    #[serde(default)]
    pub repeat: Option<u32>,
    /// A raw line, through the real framing, parsing and decoders.
    #[serde(default)]
    pub wire: Option<String>,
    /// Already-decoded fields.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, ScalarText>>,
}

/// An expected alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// `firing` or `resolved`.
    #[serde(default)]
    pub status: Option<String>,
    /// The alert's count.
    #[serde(default)]
    pub count: Option<u64>,
    /// The alert's group values.
    #[serde(default)]
    pub group: Option<BTreeMap<String, ScalarText>>,
    /// When it is sent, as an offset on the virtual clock.
    #[serde(default, with = "crate::config::units::optional_duration")]
    pub at: Option<Duration>,
    /// Suppressed count it reports.
    #[serde(default)]
    pub suppressed: Option<u64>,
    /// Text its title contains.
    #[serde(default)]
    pub title_contains: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_rule_of_rules_md_reads() {
        let text = r#"
id: luna.auth.bruteforce
title: Repeated HSM login failures
severity: high
tags: [authentication]
select:
  failed:
    event.action: [hsm.login, hsm.admin_login, appliance.login, ssh.login]
    event.outcome: failure
condition: failed
detect:
  type: threshold
  count: 5
  window: 5m
  group_by: [host.name, source.ip]
throttle: 30m
message:
  title: "{{ count }} failed logins"
notify: [secops-email]
tests:
  - name: five failures in two minutes fire once
    events:
      - {at: 0s, every: 30s, repeat: 5, wire: "<173>1 2026-01-05T10:00:00Z hsm-01 lunash 1234 - - x"}
    expect:
      - {status: firing, count: 5, group: {host.name: hsm-01}}
"#;
        let rule: RuleSpec = serde_yaml_ng::from_str(text).unwrap();
        assert!(matches!(rule.detect, Some(DetectSpec::Threshold(ThresholdSpec { count: Some(5), .. }))));
        assert_eq!(rule.throttle, Some(Duration::from_secs(1800)));
        assert_eq!(rule.tests[0].events[0].repeat, Some(5));
    }

    #[test]
    fn every_detection_reads_and_unknown_keys_are_refused() {
        let absence: DetectSpec =
            serde_yaml_ng::from_str("{type: absence, for: 15m, group_by: [host.name], expect: [hsm-01]}").unwrap();
        assert!(
            matches!(absence, DetectSpec::Absence(AbsenceSpec { silence, .. }) if silence == Duration::from_secs(900))
        );
        let seq: DetectSpec = serde_yaml_ng::from_str(
            "{type: sequence, within: 10m, steps: [fail, {select: fail, count: 3}, {select: ok, absent: true}]}",
        )
        .unwrap();
        assert!(matches!(seq, DetectSpec::Sequence(SequenceSpec { ref steps, .. }) if steps.len() == 3));
        let new: DetectSpec = serde_yaml_ng::from_str("{type: new_value, fields: [source.ip], learn: 7d}").unwrap();
        assert!(matches!(new, DetectSpec::NewValue(_)));
        assert!(serde_yaml_ng::from_str::<DetectSpec>("{type: threshold, count: 5, window: 5m, windw: 1m}").is_err());
        assert!(serde_yaml_ng::from_str::<DetectSpec>("{type: spike, window: 5m}").is_err());
    }
}

//! The rule engine: evaluates events against the rules that can match them and keeps each rule's state, emitting
//! [`Firing`]s. Timers (absence, `absent` sequence steps) fire from [`Engine::advance`], called with the time of an
//! injected clock, so tests run on a virtual clock and the server on the wall clock.
//!
//! Receives stored events (with their row ids); emits firings and resolutions. Owns the per-rule state in memory;
//! the store persists it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::detect::{sequence_step, Evidence, Progress, SequenceOutcome, Silence, Window};
use super::load::{Detect, Rule};
use super::selection::event_value;
use crate::event::{field, Event};

/// Groups per rule kept at most; past it the least recently active group is forgotten (and counted).
pub const DEFAULT_MAX_GROUPS: usize = 10_000;

/// Whether an alert opens or closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The condition was met.
    Firing,
    /// An absence ended: the silent group spoke again.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// A rule fired (or resolved) for one group.
#[derive(Debug, Clone)]
pub struct Firing {
    /// The rule.
    pub rule: Arc<Rule>,
    /// Firing or resolved.
    pub status: Status,
    /// Rule id plus group values.
    pub fingerprint: String,
    /// The group_by fields and their values.
    pub group: Vec<(&'static str, String)>,
    /// What was counted.
    pub evidence: Evidence,
    /// When it happened: the receipt of the deciding event, or the instant a timer ran out.
    pub at: DateTime<Utc>,
}

/// A group: the group_by fields and their values.
pub type Group = Vec<(&'static str, String)>;

/// Per-group state of one rule, by group key.
type Groups<S> = HashMap<String, (Group, S)>;

/// Per-rule state.
#[derive(Debug)]
enum State {
    Stateless,
    Threshold(Groups<Window>),
    Absence(Groups<Silence>),
    NewValue { first_run: DateTime<Utc>, seen: HashMap<String, HashSet<String>> },
    Sequence(Groups<Progress>),
}

/// The engine over one rule set.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Arc<Rule>>,
    by_action: HashMap<String, Vec<usize>>,
    unindexed: Vec<usize>,
    states: Vec<State>,
    max_groups: usize,
    dirty: HashSet<(usize, String)>,
    /// Groups forgotten because a rule hit the cardinality cap.
    pub groups_evicted: u64,
}

/// Key of the per-rule row that holds what is not per group (the start of a learning period).
pub const RULE_META_KEY: &str = "";

pub use crate::store::rule_state::StateChange;

/// A group as saved: field names as text.
type SavedGroup = Vec<(String, String)>;

fn save_group(group: &Group) -> SavedGroup {
    group.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn load_group(saved: SavedGroup) -> Group {
    saved.into_iter().filter_map(|(k, v)| field::lookup(&k).map(|k| (k, v))).collect()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    first_run: DateTime<Utc>,
}

impl Engine {
    /// An engine over the enabled `rules`, started at `now` (the start of absence and learning periods).
    pub fn new(rules: &[Arc<Rule>], now: DateTime<Utc>) -> Engine {
        let rules: Vec<Arc<Rule>> = rules.iter().filter(|r| r.enabled).cloned().collect();
        let mut by_action: HashMap<String, Vec<usize>> = HashMap::new();
        let mut unindexed = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            match rule.possible_actions() {
                Some(actions) => {
                    for action in actions {
                        by_action.entry(action).or_default().push(index);
                    }
                }
                None => unindexed.push(index),
            }
        }
        for indices in by_action.values_mut() {
            indices.sort_unstable();
            indices.dedup();
        }
        let states: Vec<State> = rules.iter().map(|rule| initial_state(rule, now)).collect();
        // New state (expected absence groups, learning starts) is saved with the first commit.
        let mut dirty = HashSet::new();
        for (index, state) in states.iter().enumerate() {
            match state {
                State::Absence(groups) => dirty.extend(groups.keys().map(|k| (index, k.clone()))),
                State::NewValue { .. } => {
                    dirty.insert((index, RULE_META_KEY.to_owned()));
                }
                _ => {}
            }
        }
        Engine { rules, by_action, unindexed, states, max_groups: DEFAULT_MAX_GROUPS, dirty, groups_evicted: 0 }
    }

    /// All state, as rows (to carry the state of unchanged rules over to a reloaded engine).
    pub fn snapshot(&self) -> Vec<StateChange> {
        let mut rows = Vec::new();
        for (index, state) in self.states.iter().enumerate() {
            let keys: Vec<String> = match state {
                State::Stateless => Vec::new(),
                State::Threshold(groups) => groups.keys().cloned().collect(),
                State::Absence(groups) => groups.keys().cloned().collect(),
                State::Sequence(groups) => groups.keys().cloned().collect(),
                State::NewValue { seen, .. } => {
                    std::iter::once(RULE_META_KEY.to_owned()).chain(seen.keys().cloned()).collect()
                }
            };
            let rule = &self.rules[index];
            for key in keys {
                let state = self.saved_state(index, &key);
                rows.push(StateChange { rule_id: rule.id.clone(), rule_hash: rule.source_hash, key, state });
            }
        }
        rows
    }

    /// The state that changed since the last call, as rows to save.
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        let mut changes: Vec<StateChange> = std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|(index, key)| {
                let rule = &self.rules[index];
                let state = self.saved_state(index, &key);
                StateChange { rule_id: rule.id.clone(), rule_hash: rule.source_hash, key, state }
            })
            .collect();
        changes.sort_by(|a, b| (&a.rule_id, &a.key).cmp(&(&b.rule_id, &b.key)));
        changes
    }

    fn saved_state(&self, index: usize, key: &str) -> Option<String> {
        let json = |value: serde_json::Result<String>| value.ok();
        match &self.states[index] {
            State::Stateless => None,
            State::Threshold(groups) => {
                groups.get(key).and_then(|(g, s)| json(serde_json::to_string(&(save_group(g), s))))
            }
            State::Absence(groups) => {
                groups.get(key).and_then(|(g, s)| json(serde_json::to_string(&(save_group(g), s))))
            }
            State::Sequence(groups) => {
                groups.get(key).and_then(|(g, s)| json(serde_json::to_string(&(save_group(g), s))))
            }
            State::NewValue { first_run, .. } if key == RULE_META_KEY => {
                json(serde_json::to_string(&Meta { first_run: *first_run }))
            }
            State::NewValue { seen, .. } => seen.get(key).and_then(|set| json(serde_json::to_string(set))),
        }
    }

    /// Restores one saved row; rows of rules that changed (another hash) or are gone are ignored. Returns whether the
    /// row was used.
    pub fn restore(&mut self, rule_id: &str, rule_hash: u64, key: &str, state: &str) -> bool {
        let Some(index) = self.rules.iter().position(|r| r.id == rule_id && r.source_hash == rule_hash) else {
            return false;
        };
        let key = key.to_owned();
        let key_for_dirty = key.clone();
        let restored = match &mut self.states[index] {
            State::Stateless => false,
            State::Threshold(groups) => restore_group(groups, key, state),
            State::Absence(groups) => restore_group(groups, key, state),
            State::Sequence(groups) => restore_group(groups, key, state),
            State::NewValue { first_run, .. } if key == RULE_META_KEY => {
                serde_json::from_str::<Meta>(state).map(|meta| *first_run = meta.first_run).is_ok()
            }
            State::NewValue { seen, .. } => serde_json::from_str(state).map(|set| seen.insert(key, set)).is_ok(),
        };
        if restored {
            // What was restored is what is saved; the freshly seeded value it replaced needs no saving.
            self.dirty.remove(&(index, key_for_dirty));
        }
        restored
    }

    /// Changes the cardinality cap.
    pub fn with_max_groups(mut self, max_groups: usize) -> Engine {
        self.max_groups = max_groups.max(1);
        self
    }

    /// The rules evaluated.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// Indices of the rules that can match an event: those indexed under its action, and those that match any.
    fn candidates(&self, event: &Event) -> Vec<usize> {
        let indexed = event.get(field::ACTION).and_then(|a| self.by_action.get(&a.to_lowercase()));
        let mut all: Vec<usize> = indexed.map_or_else(Vec::new, Clone::clone);
        all.extend(&self.unindexed);
        all.sort_unstable();
        all
    }

    /// Evaluates one event (with its stored id).
    pub fn process(&mut self, event: &Event, id: Option<i64>) -> Vec<Firing> {
        let mut firings = Vec::new();
        // Rules that keep the event (as evidence, as an absence's last line) share one copy, made on first need.
        let mut shared: Option<Arc<Event>> = None;
        let mut share = || shared.get_or_insert_with(|| Arc::new(event.clone())).clone();
        for index in self.candidates(event) {
            let rule = self.rules[index].clone();
            let selected: Vec<bool> = rule.selections.iter().map(|s| s.matches(event)).collect();
            let is_sequence = matches!(rule.detect, Some(Detect::Sequence { .. }));
            if rule.resolve_when.is_some_and(|at| selected[at]) {
                let mut evidence = Evidence::default();
                evidence.add(&share(), id, event.created.at);
                let group = alert_group(&rule, event);
                firings.push(firing(&rule, Status::Resolved, group, evidence, event.created.at));
                // A sequence's steps may wait for this very event ("failing, not followed by readable").
                if !is_sequence {
                    continue;
                }
            }
            if !is_sequence && !rule.condition.eval(&selected) {
                continue;
            }
            let group = group_values(&rule, event);
            let key = group_key(&group);
            let cap = self.max_groups;
            if !matches!(self.states[index], State::Stateless) {
                self.dirty.insert((index, key.clone()));
            }
            let evicted = match &mut self.states[index] {
                State::Stateless => {
                    let mut evidence = Evidence::default();
                    evidence.add(&share(), id, event.created.at);
                    let group = alert_group(&rule, event);
                    firings.push(firing(&rule, Status::Firing, group, evidence, event.created.at));
                    None
                }
                State::Threshold(groups) => {
                    let Some(Detect::Threshold { count, distinct, window }) = &rule.detect else { continue };
                    let evicted = make_room(groups, &key, cap, |(_, w)| w.newest());
                    let distinct_value = distinct.and_then(|(f, _)| event_value(event, f).map(|v| v.into_owned()));
                    if distinct.is_some() && distinct_value.is_none() {
                        continue;
                    }
                    let window = chrono::Duration::from_std(*window).unwrap_or(chrono::Duration::MAX);
                    let (_, state) = groups.entry(key).or_insert_with(|| (group.clone(), Window::default()));
                    if let Some(evidence) = state.push(&share(), id, event.timestamp.at, distinct_value, window, *count)
                    {
                        firings.push(firing(&rule, Status::Firing, group, evidence, event.created.at));
                    }
                    evicted
                }
                State::Absence(groups) => {
                    let evicted = make_room(groups, &key, cap, |(_, s)| Some(s.last_seen));
                    let at = event.created.at;
                    let (_, silence) = groups
                        .entry(key)
                        .or_insert_with(|| (group.clone(), Silence { last_seen: at, firing: false, last: None }));
                    let event = share();
                    if silence.firing {
                        silence.firing = false;
                        let mut evidence = Evidence::default();
                        evidence.add(&event, id, at);
                        firings.push(firing(&rule, Status::Resolved, group, evidence, at));
                    }
                    silence.last_seen = silence.last_seen.max(at);
                    silence.last = Some(event);
                    evicted
                }
                State::NewValue { first_run, seen } => {
                    let Some(Detect::NewValue { fields, learn }) = &rule.detect else { continue };
                    let values: Option<Vec<String>> =
                        fields.iter().map(|f| event_value(event, f).map(|v| v.into_owned())).collect();
                    let Some(values) = values else { continue };
                    let combination = values.join("\u{1f}");
                    let learning = event.created.at < crate::event::later(*first_run, *learn);
                    let evicted = make_room_set(seen, &key, cap);
                    if seen.entry(key).or_default().insert(combination) && !learning {
                        let mut evidence = Evidence::default();
                        evidence.add(&share(), id, event.created.at);
                        firings.push(firing(&rule, Status::Firing, group, evidence, event.created.at));
                    }
                    evicted
                }
                State::Sequence(groups) => {
                    let Some(Detect::Sequence { steps, within }) = &rule.detect else { continue };
                    let within = chrono::Duration::from_std(*within).unwrap_or(chrono::Duration::MAX);
                    let evicted = make_room(groups, &key, cap, |(_, p)| Some(p.started));
                    let previous = groups.remove(&key).map(|(_, p)| p);
                    let started_or_moving = previous.is_some() || selected[steps[0].selection];
                    let outcome = if started_or_moving {
                        sequence_step(previous, steps, within, &selected, &share(), id, event.timestamp.at)
                    } else {
                        SequenceOutcome::Ignored
                    };
                    match outcome {
                        SequenceOutcome::Moved(progress) => {
                            groups.insert(key, (group, progress));
                        }
                        SequenceOutcome::Completed(evidence) => {
                            firings.push(firing(&rule, Status::Firing, group, evidence, event.created.at))
                        }
                        SequenceOutcome::Ignored | SequenceOutcome::Broken => {}
                    }
                    evicted
                }
            };
            if let Some(forgotten) = evicted {
                self.groups_evicted += 1;
                self.dirty.insert((index, forgotten));
            }
        }
        firings
    }

    /// Runs the timers due by `now`: absences that last `for`, sequences waiting on an `absent` step past `within`.
    /// Each firing is stamped with the instant its timer ran out.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Vec<Firing> {
        let mut firings = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            match (&mut self.states[index], &rule.detect) {
                (State::Absence(groups), Some(Detect::Absence { silence, .. })) => {
                    for (key, (group, state)) in groups.iter_mut() {
                        let due = crate::event::later(state.last_seen, *silence);
                        if !state.firing && due <= now {
                            self.dirty.insert((index, key.clone()));
                            state.firing = true;
                            let evidence = Evidence {
                                first_seen: Some(state.last_seen),
                                last_seen: Some(state.last_seen),
                                last: state.last.clone(),
                                ..Evidence::default()
                            };
                            firings.push(firing(rule, Status::Firing, group.clone(), evidence, due));
                        }
                    }
                }
                (State::Threshold(groups), Some(Detect::Threshold { window, .. })) => {
                    // A group that received nothing for a whole window holds nothing that can still count: forget it.
                    let expired: Vec<String> = groups
                        .iter()
                        .filter(|(_, (_, w))| {
                            w.last_received().is_none_or(|received| crate::event::later(received, *window) <= now)
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in expired {
                        groups.remove(&key);
                        self.dirty.insert((index, key));
                    }
                }
                (State::Sequence(groups), Some(Detect::Sequence { steps, within })) => {
                    let mut done = Vec::new();
                    for (key, (group, progress)) in groups.iter() {
                        let due = crate::event::later(progress.started, *within);
                        if due <= now {
                            if steps[progress.step].absent {
                                firings.push(firing(
                                    rule,
                                    Status::Firing,
                                    group.clone(),
                                    progress.evidence.clone(),
                                    due,
                                ));
                            }
                            done.push(key.clone());
                        }
                    }
                    for key in done {
                        groups.remove(&key);
                        self.dirty.insert((index, key));
                    }
                }
                _ => {}
            }
        }
        firings.sort_by(|a, b| (a.at, &a.fingerprint).cmp(&(b.at, &b.fingerprint)));
        firings
    }
}

fn restore_group<S: serde::de::DeserializeOwned>(groups: &mut Groups<S>, key: String, state: &str) -> bool {
    match serde_json::from_str::<(SavedGroup, S)>(state) {
        Ok((group, value)) => {
            groups.insert(key, (load_group(group), value));
            true
        }
        Err(_) => false,
    }
}

fn initial_state(rule: &Rule, now: DateTime<Utc>) -> State {
    match &rule.detect {
        None => State::Stateless,
        Some(Detect::Threshold { .. }) => State::Threshold(HashMap::new()),
        Some(Detect::Absence { expect, .. }) => State::Absence(
            expect
                .iter()
                .map(|values| {
                    let group: Vec<(&'static str, String)> =
                        rule.group_by.iter().copied().zip(values.iter().cloned()).collect();
                    (group_key(&group), (group, Silence { last_seen: now, firing: false, last: None }))
                })
                .collect(),
        ),
        Some(Detect::NewValue { .. }) => State::NewValue { first_run: now, seen: HashMap::new() },
        Some(Detect::Sequence { .. }) => State::Sequence(HashMap::new()),
    }
}

/// Keeps a map under the cap by forgetting its least recently active group; returns the group forgotten.
fn make_room<V>(
    groups: &mut HashMap<String, V>,
    key: &str,
    cap: usize,
    activity: impl Fn(&V) -> Option<DateTime<Utc>>,
) -> Option<String> {
    if groups.len() < cap || groups.contains_key(key) {
        return None;
    }
    let oldest = groups.iter().min_by_key(|(_, v)| activity(v)).map(|(k, _)| k.clone())?;
    groups.remove(&oldest);
    Some(oldest)
}

fn make_room_set(groups: &mut HashMap<String, HashSet<String>>, key: &str, cap: usize) -> Option<String> {
    if groups.len() < cap || groups.contains_key(key) {
        return None;
    }
    let any = groups.keys().next().cloned()?;
    groups.remove(&any);
    Some(any)
}

/// The event's values of the rule's group_by fields (absent fields as empty strings).
fn group_values(rule: &Rule, event: &Event) -> Vec<(&'static str, String)> {
    rule.group_by.iter().map(|f| (*f, event_value(event, f).map(|v| v.into_owned()).unwrap_or_default())).collect()
}

/// The group of a single-event alert: the rule's group_by values, or, without group_by, the event's host: each HSM's
/// events are alerts of their own (one appliance's partition change is not another's to acknowledge).
fn alert_group(rule: &Rule, event: &Event) -> Vec<(&'static str, String)> {
    let group = group_values(rule, event);
    match (group.is_empty(), event.get(crate::event::field::HOST_NAME)) {
        (true, Some(host)) => vec![(crate::event::field::HOST_NAME, host.to_owned())],
        _ => group,
    }
}

fn group_key(group: &[(&'static str, String)]) -> String {
    group.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join("\u{1f}")
}

/// The fingerprint: rule id plus the group values (`luna.auth.bruteforce|host.name=hsm-01|source.ip=10.0.0.1`).
pub fn fingerprint(rule_id: &str, group: &[(&'static str, String)]) -> String {
    let mut text = rule_id.to_owned();
    for (name, value) in group {
        text.push('|');
        text.push_str(name);
        text.push('=');
        text.push_str(value);
    }
    text
}

fn firing(
    rule: &Arc<Rule>,
    status: Status,
    group: Vec<(&'static str, String)>,
    evidence: Evidence,
    at: DateTime<Utc>,
) -> Firing {
    Firing { rule: rule.clone(), status, fingerprint: fingerprint(&rule.id, &group), group, evidence, at }
}

#[cfg(test)]
mod tests;

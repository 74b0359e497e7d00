//! Loading rule files: YAML documents split at `---` (line numbers kept exact), `lists:` documents gathered first,
//! then every rule checked and compiled. Every mistake is reported with file, line and a "did you mean".

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_yaml_ng::Value;

use super::condition::{self, Condition};
use super::schema::{DetectSpec, ListsSpec, RuleSpec, Severity, StepSpec, TestSpec};
use super::selection::{self, NamedList, Selection};
use crate::diagnostic::{line_of, FileError, FileErrors};
use crate::event::{did_you_mean, field};

/// How long an alert of a rule without a natural end (a threshold, a single event) stays open without firing.
pub const DEFAULT_RESOLVE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Variables a message template may use (docs/rules.md, "Alerts and notifications").
pub const TEMPLATE_VARIABLES: &[&str] = &[
    "rule",
    "severity",
    "status",
    "fingerprint",
    "event",
    "events",
    "count",
    "group",
    "first_seen",
    "last_seen",
    "suppressed",
];

/// Title used when a rule gives none.
pub const DEFAULT_TITLE: &str =
    "{{ rule.title }}{% for name, value in group|items %} {{ name }}={{ value }}{% endfor %}";
/// Body used when a rule gives none.
pub const DEFAULT_BODY: &str =
    "{{ count }} matching event(s) between {{ first_seen }} and {{ last_seen }}.\nLast line: {{ event['event.original'] }}";

/// A compiled stateful detection.
#[derive(Debug, Clone, PartialEq)]
pub enum Detect {
    /// `count` events, or `distinct` values of a field, within `window`.
    Threshold {
        /// Events needed (when counting events).
        count: u64,
        /// The field whose distinct values are counted instead, and how many are needed.
        distinct: Option<(&'static str, u64)>,
        /// Sliding window.
        window: Duration,
    },
    /// Silence for `silence` after a group matched (or was expected).
    Absence {
        /// The silence that fires.
        silence: Duration,
        /// Expected groups, as values of the group_by fields in order.
        expect: Vec<Vec<String>>,
    },
    /// A new combination of `fields`.
    NewValue {
        /// The fields.
        fields: Vec<&'static str>,
        /// Learning period.
        learn: Duration,
    },
    /// Steps in order within `within`.
    Sequence {
        /// The steps.
        steps: Vec<Step>,
        /// Time limit from the first step.
        within: Duration,
    },
}

/// One step of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Index of its selection.
    pub selection: usize,
    /// Events needed.
    pub count: u64,
    /// The step holds when no such event comes in time.
    pub absent: bool,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// Tags.
    pub tags: Vec<String>,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// Selection names, in file order.
    pub selection_names: Vec<String>,
    /// Selections, same order.
    pub selections: Vec<Selection>,
    /// The condition.
    pub condition: Condition,
    /// The detection, `None` for "every match fires".
    pub detect: Option<Detect>,
    /// Fields that split the state.
    pub group_by: Vec<&'static str>,
    /// Notification throttle per fingerprint.
    pub throttle: Duration,
    /// An open alert with no firing for this long is resolved; `None`: the rule resolves its alerts itself.
    pub resolve_after: Option<Duration>,
    /// The selection (by index) whose match resolves the open alert of the event's group.
    pub resolve_when: Option<usize>,
    /// Title template source.
    pub title_template: String,
    /// Body template source.
    pub body_template: String,
    /// Notifiers named by the rule.
    pub notify: Option<Vec<String>>,
    /// Inline tests.
    pub tests: Vec<TestSpec>,
    /// File the rule is in.
    pub file: String,
    /// Line its document starts on.
    pub line: usize,
    /// Hash of the rule's document text: saved state is only restored into an unchanged rule.
    pub source_hash: u64,
}

impl Rule {
    /// The `event.action` values the rule can match, or `None` when it can match any.
    pub fn possible_actions(&self) -> Option<Vec<String>> {
        let selections = match &self.detect {
            // Every selection of a sequence can move it along.
            Some(Detect::Sequence { steps, .. }) => steps.iter().map(|s| s.selection).collect(),
            _ => self.condition.required()?,
        };
        let resolving = self.resolve_when.filter(|s| !selections.contains(s));
        let mut actions = Vec::new();
        if let Some(index) = resolving {
            actions.extend(self.selections[index].possible_actions()?);
        }
        for index in selections {
            actions.extend(self.selections[index].possible_actions()?);
        }
        Some(actions)
    }

    /// The longest duration of the rule (window, silence, learning, within), for rule tests.
    pub fn longest_duration(&self) -> Duration {
        match &self.detect {
            Some(Detect::Threshold { window, .. }) => *window,
            Some(Detect::Absence { silence, .. }) => *silence,
            Some(Detect::NewValue { .. }) | None => Duration::ZERO,
            Some(Detect::Sequence { within, .. }) => *within,
        }
    }
}

/// What a set of rule files compiled to.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The rules, in file order.
    pub rules: Vec<Arc<Rule>>,
    /// Named lists.
    pub lists: BTreeMap<String, Arc<NamedList>>,
    /// Things worth saying that are not errors (a notifier only a server config can check).
    pub warnings: Vec<String>,
}

/// One YAML document of a file.
struct Document<'t> {
    text: &'t str,
    first_line: usize,
}

/// Splits a file at `---` lines, keeping each document's first line number.
fn documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") || line.starts_with("---#") {
            docs.push(Document { text: &text[start..offset], first_line });
            start = offset + line.len();
            first_line = index + 2;
        }
        offset += line.len();
    }
    docs.push(Document { text: &text[start..], first_line });
    docs.into_iter()
        .filter(|d| d.text.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')))
        .collect()
}

/// Loads the rule files (`*.yaml` at the top of a rules directory, or of the embedded pack).
pub fn load(source: &crate::pack::RuleSource) -> Result<Loaded, FileErrors> {
    let files = source.yaml_files("").map_err(|error| {
        FileErrors(vec![FileError {
            file: source.describe(),
            line: None,
            message: format!("cannot read rules: {error}"),
        }])
    })?;
    compile_files(&files)
}

/// Compiles rule files given as `(name, text)`.
pub fn compile_files(files: &[(String, String)]) -> Result<Loaded, FileErrors> {
    let mut errors = Vec::new();
    let mut loaded = Loaded::default();
    let mut specs = Vec::new();
    for (name, text) in files {
        for doc in documents(text) {
            let at = |line: Option<usize>| line.map(|l| l + doc.first_line - 1);
            let is_lists = serde_yaml_ng::from_str::<Value>(doc.text)
                .ok()
                .and_then(|v| v.as_mapping().map(|m| m.len() == 1 && m.contains_key("lists")))
                .unwrap_or(false);
            if is_lists {
                match serde_yaml_ng::from_str::<ListsSpec>(doc.text) {
                    Ok(spec) => {
                        for (list, entries) in spec.lists {
                            if loaded.lists.contains_key(&list) {
                                errors.push(FileError {
                                    file: name.clone(),
                                    line: at(line_of(doc.text, &list, 1)),
                                    message: format!("list `{list}` is defined twice"),
                                });
                            }
                            let entries: Vec<String> = entries.into_iter().map(|e| e.0).collect();
                            loaded.lists.insert(list, Arc::new(NamedList::from_entries(&entries)));
                        }
                    }
                    Err(e) => errors.push(FileError {
                        file: name.clone(),
                        line: at(serde_line(&e, doc.text)),
                        message: serde_message(&e),
                    }),
                }
                continue;
            }
            match serde_yaml_ng::from_str::<RuleSpec>(doc.text) {
                Ok(spec) => specs.push((name.as_str(), doc.text, doc.first_line, spec)),
                Err(e) => {
                    let (found, checkable) = document_errors(name, &doc, &e);
                    errors.extend(found);
                    // What parsed is still checked, so that one run reports every mistake of the file.
                    specs.extend(checkable.map(|spec| (name.as_str(), doc.text, doc.first_line, spec)));
                }
            }
        }
    }
    let mut ids = HashSet::new();
    for (file, text, first_line, spec) in specs {
        let mut context = RuleContext { file, text, first_line, errors: &mut errors, id: spec.id.clone() };
        if !ids.insert(spec.id.clone()) {
            context.error("id:", format!("rule id `{}` is used twice", spec.id));
        }
        if let Some(rule) = context.rule(spec, &loaded.lists) {
            if let Some(notify) = &rule.notify {
                loaded.warnings.push(format!(
                    "{file}:{first_line}: `{}` notifies {}: only a server config can tell whether they exist",
                    rule.id,
                    notify.join(", ")
                ));
            }
            loaded.rules.push(Arc::new(rule));
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(FileErrors(errors))
    }
}

/// The line of a YAML error: the line of the first `quoted` token of its message when the document has it (errors
/// raised while converting a value, such as a bad duration, carry no position of their own), else its position.
fn serde_line(error: &serde_yaml_ng::Error, text: &str) -> Option<usize> {
    quoted_token_line(&error.to_string(), text, 1).or_else(|| error.location().map(|l| l.line()))
}

/// The line, from line `from` on, of the first token of `message` quoted in backticks or double quotes
/// (`` unknown field `windw` ``, `invalid type: string "many"`) that `text` holds.
fn quoted_token_line(message: &str, text: &str, from: usize) -> Option<usize> {
    let tokens = message.split('`').skip(1).step_by(2).chain(message.split('"').skip(1).step_by(2));
    tokens.filter(|token| !token.is_empty()).find_map(|token| line_of(text, token, from))
}

/// Keys every rule must have, with a stand-in value that is valid, so that each other key can be read alone.
const REQUIRED_KEYS: [(&str, &str); 4] = [("id", "_"), ("title", "_"), ("severity", "info"), ("select", "{}")];

/// Every mistake of a rule document that does not read as a whole, each at its own line: each top-level key is read
/// on its own (beside stand-ins for the required keys), each inline test too. Returns the mistakes and, when the keys
/// a rule is checked by parsed, the rule without the broken keys, for the checks that come after reading.
fn document_errors(file: &str, doc: &Document<'_>, whole: &serde_yaml_ng::Error) -> (Vec<FileError>, Option<RuleSpec>) {
    let error = |line: Option<usize>, message: String| FileError { file: file.to_owned(), line, message };
    let at_whole = || vec![error(serde_line(whole, doc.text).map(|l| l + doc.first_line - 1), serde_message(whole))];
    let Ok(Value::Mapping(mapping)) = serde_yaml_ng::from_str::<Value>(doc.text) else { return (at_whole(), None) };
    let stand_ins = || {
        let mut stand_ins = serde_yaml_ng::Mapping::new();
        for (key, value) in REQUIRED_KEYS {
            stand_ins.insert(key.into(), serde_yaml_ng::from_str(value).unwrap_or(Value::Null));
        }
        stand_ins
    };
    let read_alone = |key: &Value, value: Value| {
        let mut alone = stand_ins();
        alone.insert(key.clone(), value);
        serde_yaml_ng::from_value::<RuleSpec>(Value::Mapping(alone)).err()
    };
    let mut errors = Vec::new();
    let mut readable = stand_ins();
    for (key, value) in &mapping {
        let name = key.as_str().unwrap_or_default();
        let block = top_level_block(doc.text, name);
        let line_in_block = |message: &str| {
            quoted_token_line(message, doc.text, block.0).filter(|line| *line < block.1).unwrap_or(block.0)
        };
        let mut broken = false;
        match (name, value) {
            ("tests", Value::Sequence(tests)) => {
                for test in tests {
                    if let Some(e) = read_alone(key, Value::Sequence(vec![test.clone()])) {
                        let message = format!("{name}: {}", serde_message_unplaced(&e));
                        errors.push(error(Some(line_in_block(&message) + doc.first_line - 1), message));
                        broken = true;
                    }
                }
            }
            _ => {
                if let Some(e) = read_alone(key, value.clone()) {
                    let unplaced = serde_message_unplaced(&e);
                    // An unknown top-level key says so itself; any other message is about the key's value.
                    let message =
                        if unplaced.starts_with("unknown field") { unplaced } else { format!("{name}: {unplaced}") };
                    errors.push(error(Some(line_in_block(&message) + doc.first_line - 1), message));
                    broken = true;
                }
            }
        }
        if !broken {
            readable.insert(key.clone(), value.clone());
        }
    }
    for (key, _) in REQUIRED_KEYS {
        if !mapping.contains_key(key) {
            errors.push(error(Some(doc.first_line), format!("missing field `{key}`")));
        }
    }
    if errors.is_empty() {
        // The keys read alone but not together: report what the whole reading said.
        return (at_whole(), None);
    }
    let checkable = ["id", "select"].iter().all(|key| readable.get(*key) == mapping.get(*key));
    let spec = checkable.then(|| serde_yaml_ng::from_value::<RuleSpec>(Value::Mapping(readable)).ok()).flatten();
    (errors, spec)
}

/// The lines (1-based, end exclusive) of a top-level key's block: its `key:` line up to the next top-level line.
fn top_level_block(text: &str, key: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let is_top_level = |line: &str| !line.is_empty() && !line.starts_with([' ', '\t', '#', '-']);
    let start = lines.iter().position(|line| line.strip_prefix(key).is_some_and(|rest| rest.starts_with(':')));
    let Some(start) = start else { return (1, lines.len() + 1) };
    let end = lines[start + 1..].iter().position(|line| is_top_level(line)).map_or(lines.len(), |at| start + 1 + at);
    (start + 1, end + 1)
}

/// A YAML error's message without any position (a value read on its own has positions of its own).
fn serde_message_unplaced(error: &serde_yaml_ng::Error) -> String {
    let message = error.to_string();
    message.rfind(" at line ").map_or(message.clone(), |at| message[..at].to_owned())
}

/// FNV-1a, 64 bits: stable across builds and platforms, unlike the standard library's hasher.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// A YAML error's message without its document-relative "at line L column C" (the file line is reported instead).
fn serde_message(error: &serde_yaml_ng::Error) -> String {
    let message = error.to_string();
    match (message.rfind(" at line "), error.location()) {
        (Some(at), Some(location)) => format!("{} (column {})", &message[..at], location.column()),
        _ => message,
    }
}

struct RuleContext<'a> {
    file: &'a str,
    text: &'a str,
    first_line: usize,
    errors: &'a mut Vec<FileError>,
    id: String,
}

impl RuleContext<'_> {
    fn error(&mut self, near: &str, message: String) {
        let line = line_of(self.text, near, 1).map(|l| l + self.first_line - 1).or(Some(self.first_line));
        self.errors.push(FileError {
            file: self.file.to_owned(),
            line,
            message: format!("rule `{}`: {message}", self.id),
        });
    }

    fn field(&mut self, name: &str) -> Option<&'static str> {
        let found = field::lookup(name);
        if found.is_none() {
            let hint = did_you_mean(name, field::ALL);
            self.error(name, format!("unknown field `{name}`{hint}"));
        }
        found
    }

    fn rule(&mut self, spec: RuleSpec, lists: &BTreeMap<String, Arc<NamedList>>) -> Option<Rule> {
        let errors_before = self.errors.len();
        let mut names = Vec::new();
        let mut selections = Vec::new();
        for (key, value) in &spec.select {
            let Some(name) = key.as_str() else {
                self.error("select:", "selection names are strings".into());
                continue;
            };
            match selection::compile(value, lists) {
                Ok(selection) => {
                    names.push(name.to_owned());
                    selections.push(selection);
                }
                Err(e) => self
                    .error(if e.key.is_empty() { name } else { &e.key }, format!("selection `{name}`: {}", e.message)),
            }
        }
        if spec.select.is_empty() {
            self.error("select:", "a rule needs at least one selection".into());
        }
        let condition = match &spec.condition {
            Some(text) => {
                condition::parse(text, &names).map_err(|e| self.error("condition:", format!("condition: {e}"))).ok()
            }
            // Without a condition: every selection ANDed, but for the one that resolves.
            None => {
                let resolving = spec.resolve_when.as_ref().and_then(|r| names.iter().position(|n| n == r));
                let mut all: Vec<Condition> =
                    (0..names.len()).filter(|i| Some(*i) != resolving).map(Condition::Selection).collect();
                Some(if all.len() == 1 { all.remove(0) } else { Condition::And(all) })
            }
        };
        let resolve_when = spec.resolve_when.as_ref().and_then(|name| {
            let found = names.iter().position(|n| n == name);
            if found.is_none() {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                self.error(name, format!("resolve_when: no selection `{name}`{}", did_you_mean(name, &known)));
            }
            found
        });
        let group_by = self.group_by(&spec);
        let detect = spec.detect.as_ref().and_then(|d| self.detect(d, &names, group_by.len()));
        let (title, body) = match &spec.message {
            Some(m) => (
                m.title.clone().unwrap_or_else(|| DEFAULT_TITLE.into()),
                m.body.clone().unwrap_or_else(|| DEFAULT_BODY.into()),
            ),
            None => (DEFAULT_TITLE.into(), DEFAULT_BODY.into()),
        };
        self.template(&title, "title", &group_by);
        self.template(&body, "body", &group_by);
        for test in &spec.tests {
            self.test(test);
        }
        if self.errors.len() > errors_before {
            return None;
        }
        // A rule whose alerts end by themselves (an absence that ends, a selection that resolves) needs no timer.
        let resolve_after = spec.resolve_after.or(match (&detect, resolve_when) {
            (Some(Detect::Absence { .. }), _) | (_, Some(_)) => None,
            _ => Some(DEFAULT_RESOLVE_AFTER),
        });
        Some(Rule {
            id: spec.id,
            title: spec.title,
            description: spec.description,
            severity: spec.severity,
            tags: spec.tags,
            enabled: spec.enabled,
            selection_names: names,
            selections,
            condition: condition?,
            detect,
            group_by,
            throttle: spec.throttle.unwrap_or(Duration::ZERO),
            resolve_after,
            resolve_when,
            title_template: title,
            body_template: body,
            notify: spec.notify,
            tests: spec.tests,
            file: self.file.to_owned(),
            line: self.first_line,
            source_hash: fnv1a(self.text),
        })
    }

    fn group_by(&mut self, spec: &RuleSpec) -> Vec<&'static str> {
        let names: &[String] = match &spec.detect {
            Some(DetectSpec::Threshold(t)) => &t.group_by,
            Some(DetectSpec::Absence(a)) => &a.group_by,
            Some(DetectSpec::NewValue(n)) => &n.group_by,
            Some(DetectSpec::Sequence(s)) => &s.group_by,
            None => &[],
        };
        names.iter().filter_map(|n| self.field(n)).collect()
    }

    fn detect(&mut self, spec: &DetectSpec, names: &[String], groups: usize) -> Option<Detect> {
        match spec {
            DetectSpec::Threshold(t) => {
                let distinct = match &t.distinct {
                    Some(d) => Some((self.field(&d.field)?, d.count)),
                    None => None,
                };
                let count = match (t.count, &distinct) {
                    (Some(_), Some(_)) => {
                        self.error("distinct:", "threshold: give `count` or `distinct`, not both".into());
                        return None;
                    }
                    (None, None) => {
                        self.error("type: threshold", "threshold: `count` or `distinct` is required".into());
                        return None;
                    }
                    (Some(c), None) => c,
                    (None, Some((_, c))) => *c,
                };
                if count == 0 || t.window.is_zero() {
                    self.error("type: threshold", "threshold: the count and the window must be above zero".into());
                }
                Some(Detect::Threshold { count, distinct, window: t.window })
            }
            DetectSpec::Absence(a) => {
                let mut expect = Vec::new();
                for value in &a.expect {
                    match (value, groups) {
                        (Value::Mapping(map), _) => {
                            let row: Option<Vec<String>> =
                                map.values().map(|v| v.as_str().map(str::to_owned)).collect();
                            match row.filter(|r| r.len() == groups) {
                                Some(row) => expect.push(row),
                                None => self.error("expect:", format!("absence: an `expect` map needs a string for each of the {groups} group_by fields")),
                            }
                        }
                        (Value::String(s), 1) => expect.push(vec![s.clone()]),
                        (Value::String(_), _) => self.error(
                            "expect:",
                            "absence: `expect` values need exactly one group_by field (or use maps)".into(),
                        ),
                        _ => self.error("expect:", "absence: `expect` holds strings or maps".into()),
                    }
                }
                if a.silence.is_zero() {
                    self.error("for:", "absence: `for` must be above zero".into());
                }
                Some(Detect::Absence { silence: a.silence, expect })
            }
            DetectSpec::NewValue(n) => {
                let fields: Vec<&'static str> = n.fields.iter().filter_map(|f| self.field(f)).collect();
                if n.fields.is_empty() {
                    self.error("fields:", "new_value: `fields` needs at least one field".into());
                }
                Some(Detect::NewValue { fields, learn: n.learn.unwrap_or(Duration::ZERO) })
            }
            DetectSpec::Sequence(s) => {
                let mut steps = Vec::new();
                for step in &s.steps {
                    let (name, count, absent) = match step {
                        StepSpec::Name(name) => (name.as_str(), 1, false),
                        StepSpec::Full(full) => (full.select.as_str(), full.count.unwrap_or(1), full.absent),
                    };
                    let Some(selection) = names.iter().position(|n| n == name) else {
                        let known: Vec<&str> = names.iter().map(String::as_str).collect();
                        let hint = did_you_mean(name, &known);
                        self.error(name, format!("sequence: step `{name}` names no selection{hint}"));
                        continue;
                    };
                    if absent && count != 1 {
                        self.error(name, "sequence: an `absent` step takes no `count`".into());
                    }
                    steps.push(Step { selection, count: count.max(1), absent });
                }
                if s.steps.len() < 2 {
                    self.error("steps:", "sequence: at least two steps are needed".into());
                }
                if steps.first().is_some_and(|s| s.absent) {
                    self.error("absent:", "sequence: the first step cannot be `absent`".into());
                }
                if steps.iter().rev().skip(1).any(|s| s.absent) {
                    self.error("absent:", "sequence: only the last step can be `absent`".into());
                }
                Some(Detect::Sequence { steps, within: s.within })
            }
        }
    }

    /// Checks a template: it compiles, uses only the known variables, and names existing fields and groups.
    fn template(&mut self, source: &str, which: &str, group_by: &[&'static str]) {
        let env = minijinja::Environment::new();
        let template = match env.template_from_str(source) {
            Ok(t) => t,
            Err(e) => {
                self.error(which, format!("message {which}: {e}"));
                return;
            }
        };
        for variable in template.undeclared_variables(false) {
            if !TEMPLATE_VARIABLES.contains(&variable.as_str()) {
                let hint = did_you_mean(&variable, TEMPLATE_VARIABLES);
                self.error(
                    &variable,
                    format!(
                        "message {which}: unknown variable `{variable}`{hint}; variables are {}",
                        TEMPLATE_VARIABLES.join(", ")
                    ),
                );
            }
        }
        static SUBSCRIPT: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
        let subscript = SUBSCRIPT.get_or_init(|| {
            Regex::new(r#"\b(event|group)\s*\[\s*['"]([^'"]+)['"]\s*\]"#).expect("a valid literal regex")
        });
        for found in subscript.captures_iter(source) {
            let (kind, name) = (&found[1], &found[2]);
            if kind == "event" {
                if field::lookup(name).is_none() {
                    let hint = did_you_mean(name, field::ALL);
                    self.error(name, format!("message {which}: event has no field `{name}`{hint}"));
                }
            } else if !group_by.contains(&name) {
                self.error(
                    name,
                    format!(
                        "message {which}: `{name}` is not a group_by field of this rule (group_by: [{}])",
                        group_by.join(", ")
                    ),
                );
            }
        }
    }

    fn test(&mut self, test: &TestSpec) {
        for event in &test.events {
            match (&event.wire, &event.fields) {
                (Some(_), Some(_)) | (None, None) => self
                    .error(&test.name, format!("test `{}`: each event needs `wire` or `fields`, not both", test.name)),
                (None, Some(fields)) => {
                    for name in fields.keys() {
                        self.field(name);
                    }
                }
                (Some(_), None) => {}
            }
        }
        for expect in &test.expect {
            if let Some(status) = &expect.status {
                if status != "firing" && status != "resolved" {
                    self.error(status, format!("test `{}`: status is `firing` or `resolved`", test.name));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

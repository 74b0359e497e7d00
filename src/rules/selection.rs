//! Selections: named sets of field tests, with the modifiers of docs/rules.md (Sigma's semantics).
//!
//! A selection is a map (keys ANDed) or a list of maps (ORed); a key is `field` or `field|modifier|...`; a list of
//! values is ORed unless `|all` makes it AND. Without a modifier a string matches the whole field, case-insensitively.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use regex::Regex;
use serde_yaml_ng::Value;

use crate::event::{did_you_mean, field, Event};

/// The modifiers a key may carry.
pub const MODIFIERS: &[&str] =
    &["contains", "startswith", "endswith", "re", "cidr", "gt", "gte", "lt", "lte", "exists", "list", "all", "cased"];

/// A named list: values compared case-insensitively, or networks when every entry is a CIDR.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedList {
    /// Values, lower case.
    Values(Vec<String>),
    /// Networks, for IP fields.
    Networks(Vec<IpNet>),
}

impl NamedList {
    /// A list from its YAML entries.
    pub fn from_entries(entries: &[String]) -> NamedList {
        let networks: Option<Vec<IpNet>> = entries.iter().map(|e| parse_network(e)).collect();
        match networks {
            Some(networks) if !entries.is_empty() => NamedList::Networks(networks),
            _ => NamedList::Values(entries.iter().map(|e| e.to_lowercase()).collect()),
        }
    }

    fn contains(&self, value: &str) -> bool {
        match self {
            NamedList::Values(values) => {
                values.iter().any(|v| v.eq_ignore_ascii_case(value) || *v == value.to_lowercase())
            }
            NamedList::Networks(networks) => {
                value.parse::<IpAddr>().is_ok_and(|ip| networks.iter().any(|n| n.contains(&ip)))
            }
        }
    }
}

/// `10.0.0.0/8`, or a bare address as a one-address network.
fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// How one key tests its field.
#[derive(Debug, Clone)]
enum Test {
    Equals(Vec<String>, bool),
    Contains(Vec<String>, bool),
    StartsWith(Vec<String>, bool),
    EndsWith(Vec<String>, bool),
    Re(Vec<Regex>),
    Cidr(Vec<IpNet>),
    Compare(Comparison, Vec<f64>),
    Exists(bool),
    List(Vec<Arc<NamedList>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// One key of a selection, compiled.
#[derive(Debug, Clone)]
pub struct FieldTest {
    /// The field tested.
    pub field: &'static str,
    test: Test,
    all: bool,
}

/// A compiled selection: alternatives (ORed) of key tests (ANDed).
#[derive(Debug, Clone)]
pub struct Selection {
    /// Each alternative is a list of tests that must all pass.
    pub alternatives: Vec<Vec<FieldTest>>,
}

impl Selection {
    /// Whether the event matches.
    pub fn matches(&self, event: &Event) -> bool {
        self.alternatives.iter().any(|tests| tests.iter().all(|t| t.matches(event)))
    }

    /// The `event.action` values this selection can match, when every alternative pins the action with plain
    /// equality; `None` when some alternative could match any action. Used to index rules by action.
    pub fn possible_actions(&self) -> Option<Vec<String>> {
        let mut actions = Vec::new();
        for tests in &self.alternatives {
            let pinned = tests.iter().find_map(|t| match &t.test {
                Test::Equals(values, _) if t.field == field::ACTION && !(t.all && values.len() > 1) => {
                    Some(values.clone())
                }
                _ => None,
            })?;
            actions.extend(pinned.into_iter().map(|v| v.to_lowercase()));
        }
        Some(actions)
    }
}

fn fold(text: &str, cased: bool) -> String {
    if cased {
        text.to_owned()
    } else {
        text.to_lowercase()
    }
}

impl FieldTest {
    fn matches(&self, event: &Event) -> bool {
        let value = event_value(event, self.field);
        if let Test::Exists(wanted) = self.test {
            return value.is_some() == wanted;
        }
        let Some(value) = value else { return false };
        let check = |i: usize| self.check_one(&value, i);
        let count = self.value_count();
        if self.all {
            (0..count).all(check)
        } else {
            (0..count).any(check)
        }
    }

    fn value_count(&self) -> usize {
        match &self.test {
            Test::Equals(v, _) | Test::Contains(v, _) | Test::StartsWith(v, _) | Test::EndsWith(v, _) => v.len(),
            Test::Re(v) => v.len(),
            Test::Cidr(v) => v.len(),
            Test::Compare(_, v) => v.len(),
            Test::List(v) => v.len(),
            Test::Exists(_) => 1,
        }
    }

    fn check_one(&self, value: &str, i: usize) -> bool {
        match &self.test {
            Test::Equals(values, cased) => fold(value, *cased) == values[i],
            Test::Contains(values, cased) => fold(value, *cased).contains(&values[i]),
            Test::StartsWith(values, cased) => fold(value, *cased).starts_with(&values[i]),
            Test::EndsWith(values, cased) => fold(value, *cased).ends_with(&values[i]),
            Test::Re(regexes) => regexes[i].is_match(value),
            Test::Cidr(networks) => value.parse::<IpAddr>().is_ok_and(|ip| networks[i].contains(&ip)),
            Test::Compare(op, numbers) => parse_number(value).is_some_and(|n| match op {
                Comparison::Gt => n > numbers[i],
                Comparison::Gte => n >= numbers[i],
                Comparison::Lt => n < numbers[i],
                Comparison::Lte => n <= numbers[i],
            }),
            Test::List(lists) => lists[i].contains(value),
            Test::Exists(_) => true,
        }
    }
}

/// A field's value as text, the two typed times included.
pub fn event_value<'e>(event: &'e Event, name: &str) -> Option<std::borrow::Cow<'e, str>> {
    match name {
        field::TIMESTAMP => Some(event.timestamp.to_rfc3339().into()),
        field::CREATED => Some(event.created.to_rfc3339().into()),
        _ => event.get(name).map(Into::into),
    }
}

/// A decimal number, or hex with `0x`.
fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|n| n as f64),
        None => text.parse().ok(),
    }
}

/// What compiling a selection needs from the rule set: the named lists.
pub trait ListSource {
    /// The list of that name.
    fn list(&self, name: &str) -> Option<Arc<NamedList>>;
    /// Every list name, for suggestions.
    fn names(&self) -> Vec<String>;
}

impl ListSource for BTreeMap<String, Arc<NamedList>> {
    fn list(&self, name: &str) -> Option<Arc<NamedList>> {
        self.get(name).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// Compiles a selection's YAML value. Errors name the key at fault.
pub fn compile(value: &Value, lists: &dyn ListSource) -> Result<Selection, SelectionError> {
    let maps: Vec<&serde_yaml_ng::Mapping> = match value {
        Value::Mapping(map) => vec![map],
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                item.as_mapping()
                    .ok_or_else(|| SelectionError::new("", "a selection list must hold maps of field: value"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(SelectionError::new("", "a selection is a map of field: value, or a list of such maps")),
    };
    let mut alternatives = Vec::new();
    for map in maps {
        let mut tests = Vec::new();
        for (key, value) in map {
            let key = key.as_str().ok_or_else(|| SelectionError::new("", "selection keys are field names"))?;
            tests.push(compile_key(key, value, lists)?);
        }
        alternatives.push(tests);
    }
    Ok(Selection { alternatives })
}

/// Why a selection key does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionError {
    /// The key at fault (`""` when the selection's shape is wrong).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl SelectionError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        SelectionError { key: key.to_owned(), message: message.into() }
    }
}

fn scalar_texts(key: &str, value: &Value) -> Result<Vec<String>, SelectionError> {
    let one = |v: &Value| -> Result<String, SelectionError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(SelectionError::new(key, "values are strings, numbers or booleans")),
        }
    };
    match value {
        Value::Sequence(items) if items.is_empty() => {
            Err(SelectionError::new(key, "an empty list of values matches nothing"))
        }
        Value::Sequence(items) => items.iter().map(one).collect(),
        Value::Null => Err(SelectionError::new(key, "no value: to test that a field is absent, use `|exists: false`")),
        other => Ok(vec![one(other)?]),
    }
}

fn compile_key(key: &str, value: &Value, lists: &dyn ListSource) -> Result<FieldTest, SelectionError> {
    let mut parts = key.split('|');
    let name = parts.next().unwrap_or_default();
    let field = field::lookup(name).ok_or_else(|| {
        let hint = did_you_mean(name, field::ALL);
        SelectionError::new(key, format!("unknown field `{name}`{hint}; fields are those of docs/events.md"))
    })?;
    let mut all = false;
    let mut cased = false;
    let mut kind: Option<&str> = None;
    for modifier in parts {
        match modifier {
            "all" => all = true,
            "cased" => cased = true,
            m if MODIFIERS.contains(&m) => {
                if let Some(previous) = kind {
                    return Err(SelectionError::new(key, format!("`{previous}` and `{m}` cannot be combined")));
                }
                kind = Some(m);
            }
            unknown => {
                let hint = did_you_mean(unknown, MODIFIERS);
                return Err(SelectionError::new(key, format!("unknown modifier `{unknown}`{hint}")));
            }
        }
    }
    let texts = || scalar_texts(key, value);
    let folded =
        |cased: bool| -> Result<Vec<String>, SelectionError> { Ok(texts()?.iter().map(|t| fold(t, cased)).collect()) };
    let test = match kind {
        None => Test::Equals(folded(cased)?, cased),
        Some("contains") => Test::Contains(folded(cased)?, cased),
        Some("startswith") => Test::StartsWith(folded(cased)?, cased),
        Some("endswith") => Test::EndsWith(folded(cased)?, cased),
        Some("re") => Test::Re(
            texts()?
                .iter()
                .map(|p| Regex::new(p).map_err(|e| SelectionError::new(key, format!("invalid regex:\n{e}"))))
                .collect::<Result<_, _>>()?,
        ),
        Some("cidr") => Test::Cidr(
            texts()?
                .iter()
                .map(|n| {
                    parse_network(n).ok_or_else(|| {
                        SelectionError::new(key, format!("`{n}` is not a network (e.g. 10.0.0.0/8, fd00::/8)"))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(op @ ("gt" | "gte" | "lt" | "lte")) => {
            let op = match op {
                "gt" => Comparison::Gt,
                "gte" => Comparison::Gte,
                "lt" => Comparison::Lt,
                _ => Comparison::Lte,
            };
            let numbers = texts()?
                .iter()
                .map(|t| parse_number(t).ok_or_else(|| SelectionError::new(key, format!("`{t}` is not a number"))))
                .collect::<Result<_, _>>()?;
            Test::Compare(op, numbers)
        }
        Some("exists") => match value {
            Value::Bool(b) => Test::Exists(*b),
            _ => return Err(SelectionError::new(key, "`exists` takes true or false")),
        },
        Some("list") => Test::List(
            texts()?
                .iter()
                .map(|name| {
                    lists.list(name).ok_or_else(|| {
                        let names = lists.names();
                        let known: Vec<&str> = names.iter().map(String::as_str).collect();
                        let hint = did_you_mean(name, &known);
                        SelectionError::new(key, format!("unknown list `{name}`{hint}"))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => return Err(SelectionError::new(key, format!("unknown modifier `{other}`"))),
    };
    Ok(FieldTest { field, test, all })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;
    use chrono::Utc;

    fn event(fields: &[(&'static str, &str)]) -> Event {
        let now = Timestamp::from_clock(Utc::now());
        let mut e = Event::new(now, now);
        for (k, v) in fields {
            e.set(k, v.to_string());
        }
        e
    }

    fn lists() -> BTreeMap<String, Arc<NamedList>> {
        let mut lists = BTreeMap::new();
        lists.insert("admins".to_owned(), Arc::new(NamedList::from_entries(&["Alice".into(), "bob".into()])));
        lists.insert(
            "admin_nets".to_owned(),
            Arc::new(NamedList::from_entries(&["10.20.0.0/16".into(), "fd00::/8".into()])),
        );
        lists
    }

    fn sel(yaml: &str) -> Selection {
        compile(&serde_yaml_ng::from_str(yaml).unwrap(), &lists()).unwrap()
    }

    fn error(yaml: &str) -> String {
        compile(&serde_yaml_ng::from_str(yaml).unwrap(), &lists()).unwrap_err().message
    }

    #[test]
    fn every_modifier() {
        let e = event(&[
            (field::USER_NAME, "Admin"),
            (field::SOURCE_IP, "10.20.3.4"),
            (field::HSM_COMMAND, "partition create -partition par1"),
            (field::SOURCE_PORT, "51234"),
            (field::HSM_RETURN_CODE_VALUE, "0xa00000"),
        ]);
        let cases = [
            ("user.name: admin", true),
            ("user.name|cased: admin", false),
            ("user.name|cased: Admin", true),
            ("user.name: [root, admin]", true),
            ("hsm.command|contains: CREATE", true),
            ("hsm.command|contains|cased: CREATE", false),
            ("hsm.command|startswith: partition", true),
            ("hsm.command|endswith: par1", true),
            ("hsm.command|contains|all: [partition, par1]", true),
            ("hsm.command|contains|all: [partition, par2]", false),
            ("hsm.command|re: '^partition (create|delete)'", true),
            ("hsm.command|re: '^PARTITION'", false),
            ("source.ip|cidr: 10.20.0.0/16", true),
            ("source.ip|cidr: [192.168.0.0/16, fd00::/8]", false),
            ("source.port|gt: 50000", true),
            ("source.port|gte: 51234", true),
            ("source.port|lt: 51234", false),
            ("source.port|lte: 51234", true),
            ("hsm.return_code_value|gt: 0", true),
            ("user.name|exists: true", true),
            ("hsm.partition|exists: false", true),
            ("hsm.partition|exists: true", false),
            ("hsm.partition: par1", false),
            ("user.name|list: admins", false),
            ("source.ip|list: admin_nets", true),
            ("'@timestamp|startswith': '20'", true),
        ];
        for (yaml, expected) in cases {
            assert_eq!(sel(yaml).matches(&e), expected, "{yaml}");
        }
    }

    #[test]
    fn maps_are_and_lists_of_maps_are_or() {
        let e = event(&[(field::USER_NAME, "bob"), (field::OUTCOME, "failure")]);
        assert!(sel("{user.name: bob, event.outcome: failure}").matches(&e));
        assert!(!sel("{user.name: bob, event.outcome: success}").matches(&e));
        assert!(sel("[{user.name: alice}, {event.outcome: failure}]").matches(&e));
        assert!(sel("user.name|list: admins").matches(&e));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(error("usr.name: x").contains("did you mean `user.name`"));
        assert!(error("user.name|contians: x").contains("did you mean `contains`"));
        assert!(error("user.name|re: '('").contains("invalid regex"));
        assert!(error("source.ip|cidr: 10.0.0.0/33").contains("not a network"));
        assert!(error("user.name|list: admin").contains("did you mean `admins`"));
        assert!(error("source.port|gt: many").contains("not a number"));
        assert!(error("user.name|contains|startswith: x").contains("cannot be combined"));
        assert!(error("user.name:").contains("|exists: false"));
        assert!(error("user.name|exists: maybe").contains("true or false"));
    }

    #[test]
    fn actions_are_indexed_only_when_pinned() {
        assert_eq!(
            sel("{event.action: [hsm.login, ssh.login], event.outcome: failure}").possible_actions(),
            Some(vec!["hsm.login".into(), "ssh.login".into()])
        );
        assert_eq!(sel("[{event.action: hsm.login}, {user.name: x}]").possible_actions(), None);
        assert_eq!(sel("event.action|contains: login").possible_actions(), None);
    }
}

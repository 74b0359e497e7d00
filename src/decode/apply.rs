//! Applying compiled decoders to one message: route by app name or facility, strip the group's prefix, find the first
//! matching pattern, then capture and transform.

use std::net::IpAddr;

use regex::RegexSet;

use super::backtrack::{Found, Matcher};

use super::spec::{LookupBy, Normalize};
use crate::event::{field, Event, FieldValue};

/// A capture or transform target: an event field, or a `_helper` value that lives only while a line is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A field of docs/events.md.
    Field(&'static str),
    /// A helper, named with a leading `_`.
    Helper(String),
}

impl Name {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        match self {
            Name::Field(name) => name,
            Name::Helper(name) => name,
        }
    }
}

/// A value a pattern sets.
#[derive(Debug, Clone)]
pub enum Value {
    /// Written as is (interned: setting it allocates nothing).
    Constant(&'static str),
    /// The value of another field or capture, when it has one.
    Copy(String),
}

/// How the outcome is decided.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Always this.
    Constant(&'static str),
    /// Success when `source` holds one of `success` (lower case), else failure.
    From {
        /// The field or capture.
        source: String,
        /// Success values, lower case.
        success: Vec<String>,
    },
}

/// One entry of a lookup table.
#[derive(Debug, Clone)]
pub struct LookupEntry {
    key: String,
    words: Vec<String>,
    set: Vec<(&'static str, Value)>,
    options: Vec<(&'static str, Vec<String>)>,
}

impl LookupEntry {
    /// An entry; `key` is compared case-insensitively.
    pub fn new(key: &str, set: Vec<(&'static str, Value)>, options: Vec<(&'static str, Vec<String>)>) -> Self {
        let key = key.to_ascii_lowercase();
        let words = key.split_whitespace().map(str::to_owned).collect();
        LookupEntry { key, words, set, options }
    }

    /// Whether the key, as a glob, matches `text` (case-insensitive).
    pub fn matches_glob(&self, text: &str) -> bool {
        glob_matches(&self.key, &text.to_ascii_lowercase())
    }

    /// The constant fields this entry sets.
    pub fn constants(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.set.iter().filter_map(|(name, value)| match value {
            Value::Constant(text) => Some((*name, *text)),
            Value::Copy(_) => None,
        })
    }

    /// `(words matched, words matched in full)` when every key word matches the command's word at its place.
    fn word_score(&self, command: &[&str]) -> Option<(usize, usize)> {
        if self.words.len() > command.len() {
            return None;
        }
        // Most entries differ in their first letter; a whole-word comparison is only worth it where they agree.
        if let (Some(key), Some(typed)) = (self.words.first(), command.first()) {
            if key.as_bytes().first() != typed.as_bytes().first().map(u8::to_ascii_lowercase).as_ref() {
                return None;
            }
        }
        let mut exact = 0;
        for (key, typed) in self.words.iter().zip(command) {
            if typed.eq_ignore_ascii_case(key) {
                exact += 1;
            } else if !(typed.len() >= 3 && key.len() > typed.len() && key[..typed.len()].eq_ignore_ascii_case(typed)) {
                return None;
            }
        }
        Some((self.words.len(), exact))
    }
}

/// A lookup table.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The field or capture looked up.
    pub source: String,
    /// How keys match.
    pub by: LookupBy,
    /// The entries.
    pub entries: Vec<LookupEntry>,
    /// Set when no entry with settings matches.
    pub default: Vec<(&'static str, Value)>,
}

/// A compiled pattern.
#[derive(Debug)]
pub struct Pattern {
    /// Its id.
    pub id: String,
    /// Its regex.
    pub regex: Matcher,
    /// Capture group index → target.
    pub captures: Vec<(usize, Name)>,
    /// Constants and copies.
    pub set: Vec<(&'static str, Value)>,
    /// Values that mean "none".
    pub blank: Vec<(String, Vec<String>)>,
    /// Lookup tables.
    pub lookups: Vec<Lookup>,
    /// The capture holding a LunaSH session.
    pub session: Option<String>,
    /// The capture holding an `ip/port` peer.
    pub endpoint: Option<String>,
    /// How the outcome is decided.
    pub outcome: Option<Outcome>,
    /// Canonical forms.
    pub normalize: Vec<(&'static str, Normalize)>,
}

/// A compiled group.
#[derive(Debug)]
pub struct Group {
    /// Its id.
    pub id: String,
    /// `event.dataset` of what it decodes.
    pub dataset: &'static str,
    /// App names routed here, lower case.
    pub appnames: Vec<String>,
    /// Facilities routed here.
    pub facilities: Vec<String>,
    /// The optional sub-header.
    pub prefix: Option<(Vec<(usize, Name)>, Matcher)>,
    /// Regexes searched in every routed line.
    pub extract: Vec<(Vec<(usize, Name)>, Matcher)>,
    /// All pattern regexes, to find the first match in one pass, unless every pattern has a program with a literal
    /// prefilter: then trying the patterns in turn is cheaper (a line fails most of them on one literal comparison).
    pub set: Option<RegexSet>,
    /// The patterns.
    pub patterns: Vec<Pattern>,
}

impl Group {
    /// Every regex of the group: prefix, patterns, extractions.
    #[cfg(test)]
    pub fn matchers(&self) -> impl Iterator<Item = &Matcher> {
        let prefix = self.prefix.iter().map(|(_, m)| m);
        prefix.chain(self.patterns.iter().map(|p| &p.regex)).chain(self.extract.iter().map(|(_, m)| m))
    }

    /// Whether a line with this app name and facility is routed here.
    pub fn routes(&self, appname: Option<&str>, facility: Option<&str>) -> bool {
        appname.is_some_and(|app| self.appnames.iter().any(|a| a.eq_ignore_ascii_case(app)))
            || facility.is_some_and(|f| self.facilities.iter().any(|known| known == f))
    }

    /// Decodes `message` into `event`; returns the pattern that matched.
    pub fn apply<'g>(&'g self, message: &str, event: &mut Event) -> Option<&'g Pattern> {
        // Room for what a pattern yields, so that the vector does not grow while it is filled.
        let mut values = Values { fields: Vec::with_capacity(12), helpers: Vec::new() };
        let mut body = message;
        if let Some((captures, regex)) = &self.prefix {
            if let Some(found) = regex.captures(message) {
                values.capture(message, &found, captures);
                body = &message[found.end()..];
            }
        }
        let matched = self.first_match(body).map(|(pattern, found)| {
            values.capture(body, &found, &pattern.captures);
            pattern.transform(&mut values);
            values.fields.push((field::DATASET, FieldValue::Borrowed(self.dataset)));
            pattern
        });
        if matched.is_some() {
            for (name, value) in values.fields {
                event.set(name, canonical(name, value));
            }
        }
        for (captures, regex) in &self.extract {
            if let Some(found) = regex.captures(message) {
                let mut extracted = Values::default();
                extracted.capture(message, &found, captures);
                for (name, value) in extracted.fields {
                    if event.get(name).is_none() {
                        event.set(name, canonical(name, value));
                    }
                }
            }
        }
        matched
    }

    /// The first pattern that matches `body`, and its match.
    fn first_match<'g, 't>(&'g self, body: &'t str) -> Option<(&'g Pattern, Found<'t>)> {
        let matching = |pattern: &'g Pattern| pattern.regex.captures(body).map(|found| (pattern, found));
        match &self.set {
            Some(set) => matching(&self.patterns[set.matches(body).iter().next()?]),
            None => self.patterns.iter().find_map(matching),
        }
    }
}

/// What a line has yielded so far: fields, and helpers (their names borrowed from the pattern, their values from the
/// line: a helper is read while the line is decoded and never stored).
#[derive(Debug, Default)]
struct Values<'g, 't> {
    fields: Vec<(&'static str, FieldValue)>,
    helpers: Vec<(&'g str, &'t str)>,
}

impl<'g, 't> Values<'g, 't> {
    fn get(&self, name: &str) -> Option<&str> {
        let in_fields = || self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_ref());
        let in_helpers = || self.helpers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        if name.starts_with('_') {
            in_helpers()
        } else {
            in_fields()
        }
    }

    fn put(&mut self, name: &'g Name, value: &'t str) {
        match name {
            Name::Field(field) => self.put_field(field, value.to_owned()),
            Name::Helper(helper) => {
                self.helpers.retain(|(n, _)| n != helper);
                if !value.is_empty() {
                    self.helpers.push((helper.as_str(), value));
                }
            }
        }
    }

    fn put_field(&mut self, name: &'static str, value: impl Into<FieldValue>) {
        let value = value.into();
        match (self.fields.iter().position(|(n, _)| *n == name), value.is_empty()) {
            (Some(at), true) => {
                self.fields.remove(at);
            }
            (Some(at), false) => self.fields[at].1 = value,
            (None, false) => self.fields.push((name, value)),
            (None, true) => {}
        }
    }

    fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| *n != name);
        self.helpers.retain(|(n, _)| *n != name);
    }

    fn capture(&mut self, text: &'t str, found: &Found<'_>, targets: &'g [(usize, Name)]) {
        for (index, name) in targets {
            if let Some((start, end)) = found.get(*index) {
                self.put(name, text[start..end].trim());
            }
        }
    }

    fn apply_settings(&mut self, settings: &[(&'static str, Value)]) {
        for (name, value) in settings {
            let value = match value {
                Value::Constant(text) => Some(FieldValue::Borrowed(text)),
                Value::Copy(source) => self.get(source).map(|v| FieldValue::Owned(v.to_owned())),
            };
            if let Some(value) = value {
                self.put_field(name, value);
            }
        }
    }
}

impl Pattern {
    fn transform<'g>(&'g self, values: &mut Values<'g, '_>) {
        for (name, blanks) in &self.blank {
            if values.get(name).is_some_and(|v| blanks.iter().any(|b| b.eq_ignore_ascii_case(v))) {
                values.remove(name);
            }
        }
        values.apply_settings(&self.set);
        for lookup in &self.lookups {
            lookup.apply(values);
        }
        if let Some(session) = self.session.as_deref().and_then(|s| values.get(s)).map(str::to_owned) {
            if session.eq_ignore_ascii_case("console") {
                values.put_field(field::HSM_SESSION, "console");
            } else {
                values.put_field(field::HSM_SESSION, "network");
                put_endpoint(values, &session);
            }
        }
        if let Some(endpoint) = self.endpoint.as_deref().and_then(|s| values.get(s)).map(str::to_owned) {
            put_endpoint(values, &endpoint);
        }
        match &self.outcome {
            Some(Outcome::Constant(outcome)) => values.put_field(field::OUTCOME, *outcome),
            Some(Outcome::From { source, success }) => {
                if let Some(value) = values.get(source) {
                    let ok = success.iter().any(|s| s.eq_ignore_ascii_case(value));
                    values.put_field(field::OUTCOME, if ok { "success" } else { "failure" });
                }
            }
            None => {}
        }
        for (name, form) in &self.normalize {
            if let Some(value) = values.get(name) {
                let normal = normalize(value, *form);
                values.put_field(name, normal);
            }
        }
    }
}

impl Lookup {
    fn apply<'g>(&'g self, values: &mut Values<'g, '_>) {
        let Some(value) = values.get(&self.source).map(str::to_owned) else { return };
        let winner = match self.by {
            LookupBy::Glob => {
                let lower = value.to_ascii_lowercase();
                self.entries.iter().find(|e| glob_matches(&e.key, &lower))
            }
            LookupBy::Words => {
                let command: Vec<&str> = value.split_whitespace().collect();
                // Every matching entry contributes its options; of those with settings, the best score wins (the
                // last of equals).
                let mut best: Option<((usize, usize), &LookupEntry)> = None;
                for entry in &self.entries {
                    let Some(score) = entry.word_score(&command) else { continue };
                    for (target, flags) in &entry.options {
                        if let Some(option) = option_value(&command, flags) {
                            values.put_field(target, option.to_owned());
                        }
                    }
                    if !entry.set.is_empty() && best.is_none_or(|(top, _)| score >= top) {
                        best = Some((score, entry));
                    }
                }
                best.map(|(_, entry)| entry)
            }
        };
        match winner {
            Some(entry) if !entry.set.is_empty() => values.apply_settings(&entry.set),
            _ => values.apply_settings(&self.default),
        }
    }
}

/// The value after the first of `flags` (`-partition par1`), unless the next word is another option.
fn option_value<'c>(command: &[&'c str], flags: &[String]) -> Option<&'c str> {
    let at = command
        .iter()
        .position(|w| w.starts_with('-') && flags.iter().any(|f| w.trim_start_matches('-').eq_ignore_ascii_case(f)))?;
    command.get(at + 1).copied().filter(|v| !v.starts_with('-'))
}

/// `ip/port` (IPv4 or IPv6) into `source.ip` and `source.port`.
fn put_endpoint(values: &mut Values, text: &str) {
    let Some((ip, port)) = text.rsplit_once('/') else { return };
    if ip.parse::<IpAddr>().is_ok() {
        values.put_field(field::SOURCE_IP, ip.to_owned());
        let digits: String = port.chars().take_while(char::is_ascii_digit).collect();
        if digits.parse::<u16>().is_ok() {
            values.put_field(field::SOURCE_PORT, digits);
        }
    }
}

/// Glob match of a pattern with `*` (any run of characters) against a text, case-sensitive (callers lower-case both
/// sides for a case-insensitive match).
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A field's value in the form docs/events.md prescribes for that field, whatever the pattern wrote.
fn canonical(name: &'static str, value: FieldValue) -> FieldValue {
    match name {
        field::HSM_RETURN_CODE_VALUE => normalize(&value, Normalize::Hex).into(),
        _ => value,
    }
}

/// A value in its canonical form; a value that does not fit the form is kept as it is.
pub fn normalize(value: &str, form: Normalize) -> String {
    let digits = value.trim();
    match form {
        Normalize::Hex => {
            let hex = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")).unwrap_or(digits);
            u64::from_str_radix(hex, 16).map_or_else(|_| value.to_owned(), |n| format!("{n:#x}"))
        }
        Normalize::Decimal => digits.parse::<u64>().map_or_else(|_| value.to_owned(), |n| n.to_string()),
        Normalize::DecimalToHex => digits.parse::<u64>().map_or_else(|_| value.to_owned(), |n| format!("{n:#x}")),
        Normalize::Lower => value.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        assert_eq!(normalize("0x00A00002", Normalize::Hex), "0xa00002");
        assert_eq!(normalize("A00000", Normalize::Hex), "0xa00000");
        assert_eq!(normalize("0x00000000", Normalize::Hex), "0x0");
        assert_eq!(normalize("0023", Normalize::Decimal), "23");
        assert_eq!(normalize("163", Normalize::DecimalToHex), "0xa3");
        assert_eq!(normalize("n/a", Normalize::Hex), "n/a");
    }

    #[test]
    fn globs() {
        assert!(glob_matches("luna_generate_key*", "luna_generate_key_pair"));
        assert!(glob_matches("luna_generate_key*", "luna_generate_key"));
        assert!(!glob_matches("luna_login", "luna_login_x"));
        assert!(glob_matches("so container=*", "so container=12"));
        assert!(glob_matches("*x*y", "axbxy"));
        assert!(!glob_matches("a*b", "ab_"));
    }

    #[test]
    fn words_match_in_full_or_abbreviated() {
        let entry = LookupEntry::new("partition create", vec![], vec![]);
        assert_eq!(entry.word_score(&["partition", "create", "-par", "x"]), Some((2, 2)));
        assert_eq!(entry.word_score(&["PARTITION", "cre"]), Some((2, 1)));
        assert_eq!(entry.word_score(&["partition", "cr"]), None);
        assert_eq!(entry.word_score(&["partition"]), None);
        let time = LookupEntry::new("sysconf time", vec![], vec![]);
        assert_eq!(time.word_score(&["sysconf", "timezone", "set"]), None);
    }

    #[test]
    fn option_values() {
        let command = ["client", "assignPartition", "-c", "app01", "-Par", "p1", "-force"];
        assert_eq!(option_value(&command, &["client".into(), "c".into()]), Some("app01"));
        assert_eq!(option_value(&command, &["partition".into(), "par".into()]), Some("p1"));
        assert_eq!(option_value(&command, &["force".into()]), None);
    }
}

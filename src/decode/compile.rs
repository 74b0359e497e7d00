//! Checking decoder files and compiling them into [`Decoders`](super::Decoders).
//!
//! Every mistake is reported with the file and line it is on, and a "did you mean" where a name is close to a known
//! one; all mistakes of all files are collected, not only the first.

use std::collections::{BTreeMap, HashSet};

use regex::{Regex, RegexSet};

use super::apply::{Group, Lookup, LookupEntry, Name, Outcome, Pattern, Value};
use super::ascii_classes::ascii_classes;
use super::backtrack::Matcher;
use super::cloudhsm::CloudHsmTables;
use super::redact::Redactor;
use super::spec::{DecoderFile, GroupSpec, LookupEntrySpec, LookupSpec, OutcomeSpec, PatternSpec};
use crate::diagnostic::{line_of, FileError, FileErrors};
use crate::event::{did_you_mean, field, intern, ACTIONS, CATEGORIES, OUTCOMES};

/// The parts compiled from all files, before they are put together.
#[derive(Default)]
pub struct Compiled {
    /// Decoder groups in file order.
    pub groups: Vec<Group>,
    /// Redaction settings, merged over files.
    pub redactor: Redactor,
    /// CloudHSM tables, from the one file that has them.
    pub cloudhsm: Option<CloudHsmTables>,
}

/// Compiles `(file name, text)` pairs, in the order given.
pub fn compile_files(files: &[(String, String)]) -> Result<Compiled, FileErrors> {
    let mut errors = Vec::new();
    let mut compiled = Compiled::default();
    let mut group_ids = HashSet::new();
    let mut pattern_ids = HashSet::new();
    for (name, text) in files {
        let mut file = FileContext { name, text, errors: &mut errors };
        let parsed: DecoderFile = match serde_yaml_ng::from_str(text) {
            Ok(parsed) => parsed,
            Err(error) => {
                let line = error.location().map(|l| l.line());
                file.errors.push(FileError { file: name.clone(), line, message: error.to_string() });
                continue;
            }
        };
        for spec in &parsed.decoders {
            if !group_ids.insert(spec.id.clone()) {
                file.error(&spec.id, format!("decoder group id `{}` is used twice", spec.id));
            }
            for pattern in &spec.patterns {
                if !pattern_ids.insert(pattern.id.clone()) {
                    file.error(&pattern.id, format!("pattern id `{}` is used twice", pattern.id));
                }
            }
            if let Some(group) = file.group(spec) {
                compiled.groups.push(group);
            }
        }
        if let Some(redact) = &parsed.redact {
            for positional in &redact.positional {
                if positional.command.split_whitespace().next().is_none() || positional.argument == 0 {
                    let message = "`redact.positional`: `command` needs a word and `argument` counts from 1".into();
                    file.error(&positional.command, message);
                }
            }
            compiled.redactor.extend(redact);
        }
        if let Some(spec) = &parsed.cloudhsm {
            if compiled.cloudhsm.is_some() {
                file.error("cloudhsm:", "a second `cloudhsm:` section: only one file may define it".into());
            }
            let operations = file.entries(&spec.operations, "cloudhsm.operations", &HashSet::new());
            let user_types = file.entries(&spec.user_types, "cloudhsm.user_types", &HashSet::new());
            compiled.cloudhsm =
                Some(CloudHsmTables { operations, user_types, success_codes: spec.success_codes.clone() });
        }
    }
    if errors.is_empty() {
        Ok(compiled)
    } else {
        Err(FileErrors(errors))
    }
}

struct FileContext<'a> {
    name: &'a str,
    text: &'a str,
    errors: &'a mut Vec<FileError>,
}

impl FileContext<'_> {
    /// Records an error on the first line that contains `near`.
    fn error(&mut self, near: &str, message: String) {
        let line = line_of(self.text, near, 1);
        self.errors.push(FileError { file: self.name.to_owned(), line, message });
    }

    fn regex(&mut self, pattern: &str, owner: &str) -> Option<Regex> {
        // On an error the original is compiled again, so that the message quotes what the author wrote.
        match Regex::new(&ascii_classes(pattern)).or_else(|_| Regex::new(pattern)) {
            Ok(regex) => Some(regex),
            Err(error) => {
                self.error(pattern.lines().next().unwrap_or(owner), format!("`{owner}`: invalid regex:\n{error}"));
                None
            }
        }
    }

    /// The interned field for `name`, or an error with a suggestion.
    fn field(&mut self, name: &str, owner: &str, near: &str) -> Option<&'static str> {
        let found = field::lookup(name);
        if found.is_none() {
            let hint = did_you_mean(name, field::ALL);
            self.error(near, format!("`{owner}`: unknown field `{name}`{hint}; fields are those of docs/events.md"));
        }
        found
    }

    /// A capture or field name: `_helper` names are local, anything else must be a field.
    fn name(&mut self, name: &str, owner: &str) -> Option<Name> {
        if let Some(helper) = name.strip_prefix('_') {
            if helper.is_empty() {
                self.error(owner, format!("`{owner}`: `_` alone is not a helper name"));
                return None;
            }
            return Some(Name::Helper(name.to_owned()));
        }
        self.field(name, owner, name).map(Name::Field)
    }

    /// Checks a constant against the vocabulary of its field.
    fn vocabulary(&mut self, field: &'static str, value: &str, owner: &str) {
        let known = match field {
            field::ACTION => ACTIONS,
            field::CATEGORY => CATEGORIES,
            field::OUTCOME => OUTCOMES,
            _ => return,
        };
        if !known.contains(&value) {
            let hint = did_you_mean(value, known);
            self.error(value, format!("`{owner}`: `{value}` is not one of the {field} values of docs/events.md{hint}"));
        }
    }

    fn settings(
        &mut self,
        set: &BTreeMap<String, String>,
        owner: &str,
        names: &HashSet<String>,
    ) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        for (key, value) in set {
            let Some(target) = self.field(key, owner, key) else { continue };
            let value = match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                Some(source) => {
                    if !names.contains(source) && field::lookup(source).is_none() {
                        self.error(value, format!("`{owner}`: `{value}` names no capture or field"));
                        continue;
                    }
                    Value::Copy(source.to_owned())
                }
                None => {
                    self.vocabulary(target, value, owner);
                    Value::Constant(intern(value))
                }
            };
            out.push((target, value));
        }
        out
    }

    fn entries(&mut self, specs: &[LookupEntrySpec], owner: &str, names: &HashSet<String>) -> Vec<LookupEntry> {
        let mut entries = Vec::new();
        for spec in specs {
            let set = self.settings(&spec.set, owner, names);
            let mut options = Vec::new();
            for (key, flags) in &spec.options {
                if let Some(target) = self.field(key, owner, key) {
                    let flags = flags.iter().map(|f| f.trim_start_matches('-').to_ascii_lowercase()).collect();
                    options.push((target, flags));
                }
            }
            entries.push(LookupEntry::new(&spec.key, set, options));
        }
        entries
    }

    fn lookup(&mut self, spec: &LookupSpec, owner: &str, names: &HashSet<String>) -> Option<Lookup> {
        let source = self.known_name(&spec.field, owner, names)?;
        let entries = self.entries(&spec.entries, owner, names);
        let default = self.settings(&spec.default, owner, names);
        Some(Lookup { source, by: spec.by, entries, default })
    }

    /// A name a transform reads: a capture of this pattern (or its prefix), or a field.
    fn known_name(&mut self, name: &str, owner: &str, names: &HashSet<String>) -> Option<String> {
        if names.contains(name) || field::lookup(name).is_some() {
            return Some(name.to_owned());
        }
        let hint = did_you_mean(name, &names.iter().map(String::as_str).collect::<Vec<_>>());
        self.error(name, format!("`{owner}`: `{name}` is neither a capture of this pattern nor a field{hint}"));
        None
    }

    fn captures(&mut self, regex: &Regex, owner: &str) -> Option<Vec<(usize, Name)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (index, name) in regex.capture_names().enumerate() {
            let Some(name) = name else { continue };
            match self.name(name, owner) {
                Some(target) => out.push((index, target)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn group(&mut self, spec: &GroupSpec) -> Option<Group> {
        let owner = spec.id.as_str();
        if spec.route.appname.is_empty() && spec.route.facility.is_empty() {
            self.error(owner, format!("`{owner}`: `route` needs at least one `appname` or `facility`"));
        }
        if spec.patterns.is_empty() {
            self.error(owner, format!("`{owner}`: a group needs at least one pattern"));
        }
        let prefix = spec.prefix.as_deref().and_then(|p| self.regex(&anchored(p), owner));
        let prefix_captures = match &prefix {
            Some(regex) => self.captures(regex, owner)?,
            None => Vec::new(),
        };
        let mut extract = Vec::new();
        for text in &spec.extract {
            if let Some(regex) = self.regex(text, owner) {
                extract.push((self.captures(&regex, owner)?, Matcher::new(regex)));
            }
        }
        let prefix_names: HashSet<String> = prefix_captures.iter().map(|(_, n)| n.as_str().to_owned()).collect();
        let patterns: Vec<Pattern> = spec.patterns.iter().filter_map(|p| self.pattern(p, &prefix_names)).collect();
        if patterns.len() != spec.patterns.len() {
            return None;
        }
        // The rule, never every regex on every line: patterns are tried in turn only when each is turned away
        // by a literal (or there is only one, which a set pass would only run twice); otherwise the one-pass
        // `RegexSet` picks the pattern.
        let set = if patterns.len() == 1 || patterns.iter().all(|p| p.regex.has_literal_prefilter()) {
            None
        } else {
            Some(RegexSet::new(patterns.iter().map(|p| p.regex.regex().as_str())).ok()?)
        };
        Some(Group {
            id: spec.id.clone(),
            dataset: intern(&spec.dataset),
            appnames: spec.route.appname.iter().map(|a| a.to_ascii_lowercase()).collect(),
            facilities: spec.route.facility.clone(),
            prefix: prefix.map(|regex| (prefix_captures, Matcher::new(regex))),
            extract,
            set,
            patterns,
        })
    }

    fn pattern(&mut self, spec: &PatternSpec, prefix_names: &HashSet<String>) -> Option<Pattern> {
        let owner = spec.id.as_str();
        let regex = self.regex(&spec.pattern, owner)?;
        let captures = self.captures(&regex, owner)?;
        let mut names: HashSet<String> = captures.iter().map(|(_, n)| n.as_str().to_owned()).collect();
        names.extend(prefix_names.iter().cloned());
        let set = self.settings(&spec.set, owner, &names);
        let mut blank = Vec::new();
        for (key, values) in &spec.blank {
            if let Some(name) = self.known_name(key, owner, &names) {
                blank.push((name, values.clone()));
            }
        }
        let lookups = spec.lookup.iter().filter_map(|l| self.lookup(l, owner, &names)).collect();
        let session = spec.session.as_deref().and_then(|s| self.known_name(s, owner, &names));
        let endpoint = spec.endpoint.as_deref().and_then(|s| self.known_name(s, owner, &names));
        let outcome = match &spec.outcome {
            None => None,
            Some(OutcomeSpec::Constant(value)) => {
                self.vocabulary(field::OUTCOME, value, owner);
                Some(Outcome::Constant(intern(value)))
            }
            Some(OutcomeSpec::From(from)) => self.known_name(&from.from, owner, &names).map(|source| Outcome::From {
                source,
                success: from.success.iter().map(|s| s.to_ascii_lowercase()).collect(),
            }),
        };
        let mut normalize = Vec::new();
        for (key, form) in &spec.normalize {
            if let Some(target) = self.field(key, owner, key) {
                normalize.push((target, *form));
            }
        }
        Some(Pattern {
            id: spec.id.clone(),
            regex: Matcher::new(regex),
            captures,
            set,
            blank,
            lookups,
            session,
            endpoint,
            outcome,
            normalize,
        })
    }
}

/// A prefix only counts at the start of the message.
fn anchored(pattern: &str) -> String {
    if pattern.starts_with('^') {
        pattern.to_owned()
    } else {
        format!("^(?:{pattern})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match compile_files(&[("d.yaml".to_owned(), text.to_owned())]) {
            Ok(_) => Vec::new(),
            Err(FileErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    const GOOD: &str = "decoders:\n  - id: g\n    dataset: luna.x\n    route: {appname: [x]}\n    patterns:\n      - id: p\n        match: '^a (?P<user.name>\\S+)'\n        set: {event.action: hsm.login}\n";

    #[test]
    fn a_good_file_compiles() {
        assert_eq!(errors(GOOD), Vec::<String>::new());
    }

    #[test]
    fn mistakes_name_file_line_and_a_suggestion() {
        let cases = [
            (GOOD.replace("user.name", "usr.name"), "d.yaml:7: `p`: unknown field `usr.name` (did you mean `user.name`?)"),
            (GOOD.replace("hsm.login", "hsm.logn"), "d.yaml:8: `p`: `hsm.logn` is not one of the event.action values of docs/events.md (did you mean `hsm.login`?)"),
            (GOOD.replace("'^a (?P<user.name>\\S+)'", "'^a (?P<user.name>\\S+'"), "d.yaml:7: `p`: invalid regex:"),
            (GOOD.replace("route: {appname: [x]}", "route: {}"), "d.yaml:2: `g`: `route` needs at least one `appname` or `facility`"),
            (GOOD.replace("    dataset", "    datasett"), "d.yaml:3: decoders[0]: unknown field `datasett`"),
            (GOOD.replace("set: {event.action: hsm.login}", "set: {event.action: hsm.login}\n        session: _nope"), "d.yaml:9: `p`: `_nope` is neither a capture of this pattern nor a field"),
            (format!("{GOOD}redact:\n  positional:\n    - {{command: user password, argument: 0}}\n"), "d.yaml:11: `redact.positional`: `command` needs a word and `argument` counts from 1"),
        ];
        for (text, expected) in cases {
            let found = errors(&text);
            assert!(found.iter().any(|e| e.starts_with(expected)), "expected {expected:?} in {found:#?}");
        }
    }

    #[test]
    fn duplicate_ids_are_errors() {
        let twice = format!("{GOOD}  - id: g\n    dataset: luna.y\n    route: {{appname: [y]}}\n    patterns:\n      - id: p\n        match: 'b'\n");
        let found = errors(&twice);
        assert!(found.iter().any(|e| e.contains("decoder group id `g` is used twice")), "{found:?}");
        assert!(found.iter().any(|e| e.contains("pattern id `p` is used twice")), "{found:?}");
    }
}

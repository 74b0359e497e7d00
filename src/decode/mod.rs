//! Decoding a parsed line into an [`Event`] with the fields of `docs/events.md`.
//!
//! Receives a [`SyslogMessage`] and where the line came from; emits one event. Owns the mapping of syslog header
//! fields to event fields, the decoders that classify HSM lines (loaded from YAML decoder files, so that an operator
//! can fix a pattern without a new build), the redaction of secrets, and the AWS CloudHSM audit record layout. A line
//! that no decoder classifies keeps `event.dataset: syslog` and no `event.action`.

mod apply;
mod ascii_classes;
mod backtrack;
pub mod cloudhsm;
mod compile;
mod redact;
pub mod spec;

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

pub use crate::diagnostic::{FileError as DecoderError, FileErrors as DecoderErrors};

pub use self::apply::glob_matches;
use self::apply::Group;
use self::cloudhsm::CloudHsmTables;
use self::redact::Redactor;
use crate::event::{field, Event, Timestamp, DATASET_SYSLOG};
use crate::pack::RuleSource;
use crate::parse::{facility_name, severity_name, Format, SyslogMessage, TimeRules};

/// The compiled decoders: groups routed by app name or facility, the redactor, the CloudHSM tables.
#[derive(Debug, Default)]
pub struct Decoders {
    groups: Vec<Group>,
    redactor: Redactor,
    cloudhsm: Option<CloudHsmTables>,
    files: usize,
}

impl Decoders {
    /// Loads every `decoders/*.yaml` of a rule source.
    pub fn load(source: &RuleSource) -> Result<Decoders, DecoderErrors> {
        let files = source.yaml_files("decoders").map_err(|error| {
            DecoderErrors(vec![DecoderError {
                file: source.describe(),
                line: None,
                message: format!("cannot read decoders: {error}"),
            }])
        })?;
        Decoders::from_files(&files)
    }

    /// Compiles decoder files given as `(name, text)`.
    pub fn from_files(files: &[(String, String)]) -> Result<Decoders, DecoderErrors> {
        let compiled = compile::compile_files(files)?;
        Ok(Decoders {
            groups: compiled.groups,
            redactor: compiled.redactor,
            cloudhsm: compiled.cloudhsm,
            files: files.len(),
        })
    }

    /// Number of decoder files, groups and patterns loaded.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.files, self.groups.len(), self.groups.iter().map(|g| g.patterns.len()).sum())
    }

    /// A frame with every secret option value replaced by `***`.
    pub fn redact<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        self.redactor.redact(bytes)
    }

    /// The CloudHSM audit record tables, when a decoder file defines them.
    pub fn cloudhsm(&self) -> Option<&CloudHsmTables> {
        self.cloudhsm.as_ref()
    }

    /// Classifies a parsed line: the first group routed by its app name (or facility) whose pattern matches sets the
    /// event's fields. Returns which group and pattern matched.
    pub fn classify(&self, message: &SyslogMessage<'_>, event: &mut Event) -> Option<Matched<'_>> {
        if message.format == Format::Unparsed {
            return None;
        }
        let facility = message.facility.and_then(facility_name);
        self.groups.iter().filter(|group| group.routes(message.appname, facility)).find_map(|group| {
            group.apply(message.msg, event).map(|pattern| Matched { group: &group.id, pattern: &pattern.id })
        })
    }
}

/// The decoders in use, replaceable while the server runs (hot reload). Readers take an `Arc` per read or
/// datagram, so a reload never changes decoders in the middle of a frame.
#[derive(Debug)]
pub struct SharedDecoders(std::sync::RwLock<std::sync::Arc<Decoders>>);

impl SharedDecoders {
    /// Shares `decoders`.
    pub fn new(decoders: Decoders) -> Self {
        SharedDecoders(std::sync::RwLock::new(std::sync::Arc::new(decoders)))
    }

    /// The decoders in use now.
    pub fn current(&self) -> std::sync::Arc<Decoders> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Puts `decoders` in use for every line read from now on.
    pub fn replace(&self, decoders: Decoders) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = std::sync::Arc::new(decoders);
    }
}

/// The decoder that classified a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched<'d> {
    /// The group's id.
    pub group: &'d str,
    /// The pattern's id.
    pub pattern: &'d str,
}

impl std::fmt::Display for Matched<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {}", self.group, self.pattern)
    }
}

/// Where and when a line arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Time of receipt.
    pub received: DateTime<Utc>,
    /// `log.source.address`: the peer (`ip:port`) or the imported file.
    pub source_address: String,
    /// The peer's IP, used as `host.name` when the header names no host.
    pub peer_ip: Option<IpAddr>,
    /// `host.name` when neither the header nor a peer names one (an imported file's `--host`).
    pub default_host: Option<String>,
    /// How the sender's zone-less times are read (its zone, how the year of an RFC 3164 time is chosen).
    pub time_rules: TimeRules,
}

impl Origin {
    /// A line received now from a sender at `peer` (its address becomes `log.source.address`, its IP the host when
    /// the header names none), with no default host and the default time rules.
    pub fn from_peer(peer: std::net::SocketAddr) -> Origin {
        Origin {
            received: Utc::now(),
            source_address: peer.to_string(),
            peer_ip: Some(peer.ip()),
            default_host: None,
            time_rules: TimeRules::default(),
        }
    }
}

/// The frame a message was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// The frame's text (invalid UTF-8 escaped).
    pub text: &'a str,
    /// The frame's bytes when they were not valid UTF-8.
    pub invalid_utf8: Option<&'a [u8]>,
    /// The frame was cut at the maximum frame size.
    pub truncated: bool,
}

/// Builds the event of one parsed line: header fields, times, origin and `event.dataset: syslog`.
pub fn base_event(frame: RawFrame<'_>, message: &SyslogMessage<'_>, origin: &Origin) -> Event {
    let created = Timestamp::from_clock(origin.received);
    let timestamp = message.timestamp.unwrap_or(created);
    let mut event = Event::new(timestamp, created);
    event.raw = frame.invalid_utf8.map(<[u8]>::to_vec);
    let host = message
        .hostname
        .map(str::to_owned)
        .or_else(|| origin.peer_ip.map(|ip| ip.to_string()))
        .or_else(|| origin.default_host.clone());
    // Set in field order (by length, then from the end: `Event`'s order), so that every set is an append.
    event.set(field::MESSAGE, message.msg.to_owned());
    event.set(field::HOST_NAME, host.unwrap_or_default());
    event.set(field::DATASET, DATASET_SYSLOG);
    event.set(field::ORIGINAL, frame.text.to_owned());
    event.set(field::MSGID, message.msgid.unwrap_or_default().to_owned());
    event.set(field::PROCID, message.procid.as_deref().unwrap_or_default().to_owned());
    event.set(field::FORMAT, message.format.as_str());
    if frame.truncated {
        event.set(field::TRUNCATED, "true");
    }
    event.set(field::APPNAME, message.appname.unwrap_or_default().to_owned());
    event.set(field::SOURCE_ADDRESS, origin.source_address.clone());
    let (facility, severity) = (message.facility, message.severity);
    if let Some(code) = facility {
        event.set(field::FACILITY_CODE, code_text(code));
    }
    if let Some(code) = severity {
        event.set(field::SEVERITY_CODE, code_text(code));
    }
    if let Some(code) = facility {
        event.set(field::FACILITY_NAME, facility_name(code).unwrap_or_default());
    }
    if let Some(code) = severity {
        event.set(field::SEVERITY_NAME, severity_name(code).unwrap_or_default());
    }
    event
}

/// A facility or severity code as text, without allocating (codes are 0–23).
fn code_text(code: u8) -> std::borrow::Cow<'static, str> {
    const CODES: [&str; 24] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19",
        "20", "21", "22", "23",
    ];
    CODES.get(usize::from(code)).map_or_else(|| code.to_string().into(), |c| (*c).into())
}

/// Whether the event's line was read by no syslog grammar.
pub fn is_unparsed(event: &Event) -> bool {
    event.get(field::FORMAT) == Some(Format::Unparsed.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use proptest::prelude::*;

    /// The syslog lines of the decoder corpus, and the message part of each.
    fn corpus_texts() -> Vec<String> {
        let corpus = include_str!("../../tests/data/luna.jsonl");
        let mut texts = Vec::new();
        for case in corpus.lines() {
            let case: serde_json::Value = serde_json::from_str(case).expect("corpus JSON");
            let wire = case["wire"].as_str().expect("wire").to_owned();
            texts.push(parse(&wire, Utc::now(), TimeRules::default()).msg.to_owned());
            texts.push(wire);
        }
        texts
    }

    fn shipped() -> Decoders {
        Decoders::load(&RuleSource::Embedded).expect("the shipped decoders compile")
    }

    #[test]
    fn every_shipped_regex_runs_on_the_fast_matcher() {
        for group in &shipped().groups {
            for matcher in group.matchers() {
                assert!(matcher.has_program(), "{}: {:?} has no program", group.id, matcher.regex().as_str());
            }
        }
    }

    #[test]
    fn the_fast_matcher_agrees_with_the_regex_crate_on_the_corpus() {
        let decoders = shipped();
        let texts = corpus_texts();
        let mut compared = 0;
        for group in &decoders.groups {
            for matcher in group.matchers() {
                for text in &texts {
                    matcher.agrees_with_crate(text).unwrap();
                    compared += 1;
                }
            }
        }
        assert!(compared > 10_000, "{compared}");
    }

    proptest! {
        /// Corpus lines with characters inserted and removed (separators, digits, non-ASCII) walk the decoders'
        /// backtracking paths that the corpus itself does not.
        #[test]
        fn the_fast_matcher_agrees_with_the_regex_crate_on_mutated_lines(
            line in any::<prop::sample::Index>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of("( : | \\. |, |[ :,()/.^=a-zA-Z0-9_\\-é\t])")), 1..6),
        ) {
            let texts = corpus_texts();
            let mut text = texts[line.index(texts.len())].clone();
            for (at, insert) in edits {
                let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
                let at = boundaries[at.index(boundaries.len())];
                match insert {
                    Some(inserted) => text.insert_str(at, &inserted),
                    None if at < text.len() => {
                        text.remove(at);
                    }
                    None => {}
                }
            }
            for group in &shipped().groups {
                for matcher in group.matchers() {
                    prop_assert!(matcher.agrees_with_crate(&text).is_ok(), "{:?}", matcher.agrees_with_crate(&text));
                }
            }
        }
    }

    fn origin() -> Origin {
        Origin {
            received: "2026-03-01T12:00:00Z".parse().unwrap(),
            source_address: "10.0.4.17:41822".into(),
            peer_ip: Some("10.0.4.17".parse().unwrap()),
            default_host: None,
            time_rules: TimeRules::default(),
        }
    }

    fn decode(text: &str) -> Event {
        let origin = origin();
        let message = parse(text, origin.received, origin.time_rules);
        base_event(RawFrame { text, invalid_utf8: None, truncated: false }, &message, &origin)
    }

    #[test]
    fn header_fields_become_event_fields() {
        let e =
            decode("<174>Feb 28 09:12:44 hsm-2-1-2-6 lunash[5120]: info : 0 : Lush user login : operator : Console");
        let expect = [
            (field::FORMAT, "rfc3164"),
            (field::HOST_NAME, "hsm-2-1-2-6"),
            (field::FACILITY_NAME, "local5"),
            (field::FACILITY_CODE, "21"),
            (field::SEVERITY_NAME, "info"),
            (field::SEVERITY_CODE, "6"),
            (field::APPNAME, "lunash"),
            (field::PROCID, "5120"),
            (field::DATASET, "syslog"),
            (field::SOURCE_ADDRESS, "10.0.4.17:41822"),
            (field::MESSAGE, "info : 0 : Lush user login : operator : Console"),
        ];
        for (name, value) in expect {
            assert_eq!(e.get(name), Some(value), "{name}");
        }
        assert_eq!(e.get(field::MSGID), None);
        assert_eq!(e.timestamp.to_rfc3339(), "2026-02-28T09:12:44Z");
        assert_eq!(e.created.to_rfc3339(), "2026-03-01T12:00:00Z");
    }

    #[test]
    fn unparsed_lines_take_receipt_time_and_peer_as_host() {
        let e = decode("Command Result : 0 (Success)");
        assert!(is_unparsed(&e));
        assert_eq!(e.timestamp.to_rfc3339(), "2026-03-01T12:00:00Z");
        assert_eq!(e.get(field::HOST_NAME), Some("10.0.4.17"));
        assert_eq!(e.get(field::MESSAGE), Some("Command Result : 0 (Success)"));
        assert_eq!(e.get(field::ORIGINAL), Some("Command Result : 0 (Success)"));
        assert_eq!(e.get(field::FACILITY_CODE), None);
    }
}

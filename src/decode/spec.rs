//! The decoder file format (YAML under `rules/decoders/`), as read from disk before it is checked and compiled.
//!
//! A file holds `decoders:` (groups of patterns for lines routed by app name or facility), optionally `redact:` (the
//! command-line options whose values are secrets) and optionally `cloudhsm:` (the tables of the AWS CloudHSM audit
//! record decoder). Every key is documented in `rules/decoders/README.md`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One decoder file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderFile {
    /// Decoder groups.
    #[serde(default)]
    pub decoders: Vec<GroupSpec>,
    /// Secret options to redact.
    #[serde(default)]
    pub redact: Option<RedactSpec>,
    /// AWS CloudHSM audit record tables.
    #[serde(default)]
    pub cloudhsm: Option<CloudHsmSpec>,
}

/// A group: the lines of one program, and the patterns tried on them in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Unique id of the group.
    pub id: String,
    /// `event.dataset` of every line a pattern of this group matches.
    pub dataset: String,
    /// Which lines the group looks at.
    pub route: RouteSpec,
    /// Optional sub-header matched (and removed) before the patterns; its captures are kept when a pattern matches.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Regexes searched anywhere in every routed line; their captures fill fields still absent.
    #[serde(default)]
    pub extract: Vec<String>,
    /// Patterns, first match wins.
    pub patterns: Vec<PatternSpec>,
}

/// Routing: a line goes to the group when its app name or its facility is listed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// `log.syslog.appname` values, case-insensitive.
    #[serde(default)]
    pub appname: Vec<String>,
    /// `log.syslog.facility.name` values.
    #[serde(default)]
    pub facility: Vec<String>,
}

/// One pattern: a regex with named captures and what to set when it matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    /// Unique id, shown by `hsmwatch decode`.
    pub id: String,
    /// Regex on the message (after the group's prefix). Capture names are event fields, or `_name` for helpers.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Constant fields; a value `${name}` copies a field or capture.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Captured values that mean "none" and leave the field absent.
    #[serde(default)]
    pub blank: BTreeMap<String, Vec<String>>,
    /// Tables that set fields from a captured value.
    #[serde(default)]
    pub lookup: Vec<LookupSpec>,
    /// A capture holding a LunaSH session: `Console`, or `ip/port`.
    #[serde(default)]
    pub session: Option<String>,
    /// A capture holding a peer as `ip/port`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// How `event.outcome` is decided.
    #[serde(default)]
    pub outcome: Option<OutcomeSpec>,
    /// Fields rewritten into a canonical form.
    #[serde(default)]
    pub normalize: BTreeMap<String, Normalize>,
}

/// `event.outcome`: a constant, or success when a field holds one of the listed values (else failure).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OutcomeSpec {
    /// `success`, `failure` or `unknown`.
    Constant(String),
    /// Decided by a field.
    From(OutcomeFromSpec),
}

/// Outcome decided by a field's value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeFromSpec {
    /// The field or capture.
    pub from: String,
    /// Values that mean success (case-insensitive); any other value is failure, an absent field leaves no outcome.
    pub success: Vec<String>,
}

/// Canonical forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Lower-case hex with `0x` and no leading zeros (`0x00A00002` → `0xa00002`, `A00000` → `0xa00000`).
    Hex,
    /// Decimal number without padding (`0023` → `23`).
    Decimal,
    /// A decimal number written as hex (`163` → `0xa3`).
    DecimalToHex,
    /// Lower case.
    Lower,
}

/// A table keyed by a field's value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// The field or capture looked up.
    pub field: String,
    /// How keys match.
    #[serde(default)]
    pub by: LookupBy,
    /// Entries; the best match wins (see [`LookupBy`]).
    pub entries: Vec<LookupEntrySpec>,
    /// Fields set when no entry with `set` matches.
    #[serde(default)]
    pub default: BTreeMap<String, String>,
}

/// How lookup keys match a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupBy {
    /// Case-insensitive, `*` matches any run of characters; the first matching entry wins.
    #[default]
    Glob,
    /// A command line: each key word must match the command's word at that place, case-insensitively, in full or
    /// abbreviated (3 characters at least, as LunaSH accepts); the entry with most words wins, exact before
    /// abbreviated.
    Words,
}

/// One lookup entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupEntrySpec {
    /// The key.
    pub key: String,
    /// Fields set when this entry wins.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// For `by: words`: options of the command whose value fills a field (`hsm.partition: [-partition, -par]`),
    /// taken from every matching entry, not only the winner.
    #[serde(default)]
    pub options: BTreeMap<String, Vec<String>>,
}

/// Options whose values are secrets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactSpec {
    /// Option names (without dash, case-insensitive) whose value is replaced by `***`.
    #[serde(default)]
    pub options: Vec<String>,
    /// Option name endings that mark a secret (`password` covers `-authpassword`).
    #[serde(default)]
    pub option_suffixes: Vec<String>,
    /// Option names that only look like secrets and are kept (`-partition`, `-policy`, `-port`...).
    #[serde(default)]
    pub keep: Vec<String>,
    /// Commands that take a secret by position (`user password bob X`).
    #[serde(default)]
    pub positional: Vec<PositionalSpec>,
}

/// A command whose argument at a position is a secret.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PositionalSpec {
    /// The command's words (`user password`); each may be shortened on the line, as LunaSH allows.
    pub command: String,
    /// Which argument after the command's words is secret, 1 for the first.
    pub argument: usize,
}

/// Tables of the AWS CloudHSM audit record decoder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudHsmSpec {
    /// Fields set from `Opcode` (glob lookup on the opcode name).
    pub operations: Vec<LookupEntrySpec>,
    /// Fields set from `User Type` (glob lookup on the type name).
    #[serde(default)]
    pub user_types: Vec<LookupEntrySpec>,
    /// Response codes that mean success.
    #[serde(default = "default_success_codes")]
    pub success_codes: Vec<u64>,
}

fn default_success_codes() -> Vec<u64> {
    vec![0]
}

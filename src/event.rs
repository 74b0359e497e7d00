//! The event contract of `docs/events.md`: the field names every stage uses and the [`Event`] they fill.
//!
//! Receives nothing and emits nothing: it is the leaf type that decoders build, the store writes, rules read and the
//! query CLI prints. Field names are only ever spelled here; other modules use these constants.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, TimeZone, Timelike, Utc};

/// `at` plus `span`, or the latest time there is when that is past it. Spans come from configs and peers (a receiver's
/// `Retry-After`), and `DateTime + TimeDelta` panics where it overflows.
pub fn later(at: DateTime<Utc>, span: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(span)
        .ok()
        .and_then(|span| at.checked_add_signed(span))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at` minus `span`, or the earliest time there is when that is before it (see [`later`]).
pub fn earlier(at: DateTime<Utc>, span: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(span)
        .ok()
        .and_then(|span| at.checked_sub_signed(span))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The dotted field names of `docs/events.md`.
pub mod field {
    /// Event time, UTC, RFC 3339.
    pub const TIMESTAMP: &str = "@timestamp";
    /// Time the collector received the line.
    pub const CREATED: &str = "event.created";
    /// The whole line as received, after framing (secrets redacted).
    pub const ORIGINAL: &str = "event.original";
    /// The syslog MSG part.
    pub const MESSAGE: &str = "message";
    /// `rfc5424`, `rfc3164`, `luna_file`, `cloudhsm_audit` or `unparsed`.
    pub const FORMAT: &str = "log.syslog.format";
    /// Syslog facility name.
    pub const FACILITY_NAME: &str = "log.syslog.facility.name";
    /// Syslog facility code.
    pub const FACILITY_CODE: &str = "log.syslog.facility.code";
    /// Syslog severity name.
    pub const SEVERITY_NAME: &str = "log.syslog.severity.name";
    /// Syslog severity code.
    pub const SEVERITY_CODE: &str = "log.syslog.severity.code";
    /// Header APP-NAME or RFC 3164 tag.
    pub const APPNAME: &str = "log.syslog.appname";
    /// Header PROCID or the tag's `[pid]`.
    pub const PROCID: &str = "log.syslog.procid";
    /// Header MSGID (RFC 5424 only).
    pub const MSGID: &str = "log.syslog.msgid";
    /// The network peer that sent the line (`ip:port`) or the file it was imported from.
    pub const SOURCE_ADDRESS: &str = "log.source.address";
    /// HOSTNAME from the header; the peer's IP where the header has none.
    pub const HOST_NAME: &str = "host.name";
    /// Which decoder classified the line.
    pub const DATASET: &str = "event.dataset";
    /// The normalised action.
    pub const ACTION: &str = "event.action";
    /// `success`, `failure` or `unknown`.
    pub const OUTCOME: &str = "event.outcome";
    /// Event category.
    pub const CATEGORY: &str = "event.category";
    /// Appliance account or HSM user named by the line.
    pub const USER_NAME: &str = "user.name";
    /// HSM role.
    pub const USER_ROLES: &str = "user.roles";
    /// The remote client the line is about.
    pub const SOURCE_IP: &str = "source.ip";
    /// The remote client's port.
    pub const SOURCE_PORT: &str = "source.port";
    /// `console` or `network` for LunaSH lines.
    pub const HSM_SESSION: &str = "hsm.session";
    /// The LunaSH command line (redacted).
    pub const HSM_COMMAND: &str = "hsm.command";
    /// Partition name or serial.
    pub const HSM_PARTITION: &str = "hsm.partition";
    /// NTLS client name.
    pub const HSM_CLIENT: &str = "hsm.client";
    /// HSM serial number.
    pub const HSM_SERIAL: &str = "hsm.serial";
    /// The return code's name.
    pub const HSM_RETURN_CODE: &str = "hsm.return_code";
    /// The return code's number, lower-case hex with `0x`.
    pub const HSM_RETURN_CODE_VALUE: &str = "hsm.return_code_value";
    /// The lunalogs sub-header severity.
    pub const HSM_LUNALOG_SEVERITY: &str = "hsm.lunalog.severity";
    /// The lunalogs sub-header code.
    pub const HSM_LUNALOG_CODE: &str = "hsm.lunalog.code";
    /// HSM alarm code.
    pub const HSM_ALARM_CODE: &str = "hsm.alarm.code";
    /// HSM alarm text.
    pub const HSM_ALARM_TEXT: &str = "hsm.alarm.text";
    /// Hardware sensor name.
    pub const HSM_SENSOR: &str = "hsm.sensor";
    /// Hardware sensor reading.
    pub const HSM_READING: &str = "hsm.reading";
    /// sysstatd state.
    pub const HSM_SYSTEM_STATE: &str = "hsm.system_state";
    /// HSM audit record operation.
    pub const HSM_AUDIT_OPERATION: &str = "hsm.audit.operation";
    /// HSM audit record sequence number.
    pub const HSM_AUDIT_SEQUENCE: &str = "hsm.audit.sequence";
    /// HSM audit record session.
    pub const HSM_AUDIT_SESSION: &str = "hsm.audit.session";
    /// AWS CloudHSM audit reboot counter.
    pub const HSM_REBOOT_COUNTER: &str = "hsm.reboot_counter";
    /// Collector metadata, not among the decoded fields of docs/events.md: `true` when the frame was cut at the maximum frame size.
    pub const TRUNCATED: &str = "hsmwatch.truncated";
    /// `tls.client.subject`: the subject of a mutual-TLS client's certificate.
    pub const TLS_CLIENT_SUBJECT: &str = "tls.client.subject";
    /// `tls.client.x509.alternative_names`: its DNS subject alternative names, comma-separated.
    pub const TLS_CLIENT_ALT_NAMES: &str = "tls.client.x509.alternative_names";
    /// `tls.client.host_mismatch`: `true` when `host.name` is none of the certificate's names (`bind_host`).
    pub const TLS_CLIENT_HOST_MISMATCH: &str = "tls.client.host_mismatch";
    /// HSM model, from the HSM table (SNMP).
    pub const HSM_MODEL: &str = "hsm.model";
    /// HSM firmware version.
    pub const HSM_FIRMWARE: &str = "hsm.firmware";
    /// Whether the HSM is in FIPS mode (`true`/`false`).
    pub const HSM_FIPS_MODE: &str = "hsm.fips_mode";
    /// HSM label.
    pub const HSM_LABEL: &str = "hsm.label";
    /// Share of storage in use, in percent.
    pub const HSM_STORAGE_USED_PCT: &str = "hsm.storage.used_pct";
    /// NTLS state (`up`, `down`, `unknown`).
    pub const NTLS_STATUS: &str = "ntls.status";
    /// Clients connected over NTLS.
    pub const NTLS_CLIENTS: &str = "ntls.clients";
    /// When the NTLS server certificate expires (RFC 3339).
    pub const NTLS_CERT_NOT_AFTER: &str = "ntls.cert.not_after";
    /// A trap's OID.
    pub const SNMP_TRAP_OID: &str = "snmp.trap.oid";
    /// A trap's short name, when known (`fan`).
    pub const SNMP_TRAP_NAME: &str = "snmp.trap.name";
    /// A trap's variables, as text.
    pub const SNMP_VARBINDS: &str = "snmp.varbinds";
    /// For a change: the value before.
    pub const PREVIOUS_VALUE: &str = "previous.value";
    /// For a change: the value after.
    pub const CURRENT_VALUE: &str = "current.value";
    /// Why a poll or a read failed.
    pub const ERROR_MESSAGE: &str = "error.message";
    /// The cloud provider of an event read from a cloud's API (`aws`).
    pub const CLOUD_PROVIDER: &str = "cloud.provider";
    /// The cloud account.
    pub const CLOUD_ACCOUNT_ID: &str = "cloud.account.id";
    /// The cloud region.
    pub const CLOUD_REGION: &str = "cloud.region";
    /// The availability zone.
    pub const CLOUD_AVAILABILITY_ZONE: &str = "cloud.availability_zone";
    /// A CloudHSM cluster id.
    pub const AWS_CLUSTER_ID: &str = "aws.cloudhsm.cluster_id";
    /// A CloudHSM HSM id.
    pub const AWS_HSM_ID: &str = "aws.cloudhsm.hsm_id";
    /// A CloudHSM backup id.
    pub const AWS_BACKUP_ID: &str = "aws.cloudhsm.backup_id";
    /// An HSM's address as its cloud knows it (its network interface).
    pub const HOST_IP: &str = "host.ip";

    /// Every field an event may carry, in the order of `docs/events.md`.
    pub const ALL: &[&str] = &[
        TIMESTAMP,
        CREATED,
        ORIGINAL,
        MESSAGE,
        FORMAT,
        FACILITY_NAME,
        FACILITY_CODE,
        SEVERITY_NAME,
        SEVERITY_CODE,
        APPNAME,
        PROCID,
        MSGID,
        SOURCE_ADDRESS,
        HOST_NAME,
        DATASET,
        ACTION,
        OUTCOME,
        CATEGORY,
        USER_NAME,
        USER_ROLES,
        SOURCE_IP,
        SOURCE_PORT,
        HSM_SESSION,
        HSM_COMMAND,
        HSM_PARTITION,
        HSM_CLIENT,
        HSM_SERIAL,
        HSM_RETURN_CODE,
        HSM_RETURN_CODE_VALUE,
        HSM_LUNALOG_SEVERITY,
        HSM_LUNALOG_CODE,
        HSM_ALARM_CODE,
        HSM_ALARM_TEXT,
        HSM_SENSOR,
        HSM_READING,
        HSM_SYSTEM_STATE,
        HSM_AUDIT_OPERATION,
        HSM_AUDIT_SEQUENCE,
        HSM_AUDIT_SESSION,
        HSM_REBOOT_COUNTER,
        TRUNCATED,
        TLS_CLIENT_SUBJECT,
        TLS_CLIENT_ALT_NAMES,
        TLS_CLIENT_HOST_MISMATCH,
        HSM_MODEL,
        HSM_FIRMWARE,
        HSM_FIPS_MODE,
        HSM_LABEL,
        HSM_STORAGE_USED_PCT,
        NTLS_STATUS,
        NTLS_CLIENTS,
        NTLS_CERT_NOT_AFTER,
        SNMP_TRAP_OID,
        SNMP_TRAP_NAME,
        SNMP_VARBINDS,
        PREVIOUS_VALUE,
        CURRENT_VALUE,
        ERROR_MESSAGE,
        CLOUD_PROVIDER,
        CLOUD_ACCOUNT_ID,
        CLOUD_REGION,
        CLOUD_AVAILABILITY_ZONE,
        AWS_CLUSTER_ID,
        AWS_HSM_ID,
        AWS_BACKUP_ID,
        HOST_IP,
    ];

    /// The interned name of a field, or `None` when `docs/events.md` has no such field.
    pub fn lookup(name: &str) -> Option<&'static str> {
        ALL.iter().copied().find(|known| *known == name)
    }
}

/// Every `event.action` of `docs/events.md`.
pub const ACTIONS: &[&str] = &[
    "appliance.login",
    "ssh.login",
    "hsm.admin_login",
    "backup_hsm.admin_login",
    "hsm.login",
    "hsm.logout",
    "hsm.zeroize",
    "backup_hsm.zeroize",
    "hsm.factory_reset",
    "hsm.init",
    "hsm.tamper",
    "hsm.alarm",
    "hsm.fatal_error",
    "partition.create",
    "partition.delete",
    "partition.resize",
    "partition.policy_change",
    "partition.backup",
    "partition.restore",
    "partition.zeroize",
    "client.register",
    "client.delete",
    "client.assign_partition",
    "client.revoke_partition",
    "ntls.connect",
    "ntls.disconnect",
    "ntls.handshake",
    "htl.connect",
    "hsm.policy_change",
    "hsm.firmware_update",
    "appliance.software_update",
    "appliance.cert_regen",
    "ntls.bind",
    "syslog.remotehost_add",
    "syslog.remotehost_delete",
    "syslog.cleanup",
    "audit.config_change",
    "audit.log_clear",
    "audit.remotehost_change",
    "time.change",
    "ntp.config_change",
    "snmp.config_change",
    "appliance.user_add",
    "appliance.user_delete",
    "appliance.password_change",
    "service.start",
    "service.stop",
    "service.restart",
    "appliance.reboot",
    "hardware.fan",
    "hardware.temperature",
    "hardware.power",
    "system.state",
    "key.generate",
    "key.delete",
    "key.wrap",
    "key.unwrap",
    "key.derive",
    "object.create",
    "object.modify",
    "heartbeat",
    "audit.sequence_gap",
    "lunash.command",
    "snmp.poll",
    "hsm.state_change",
    "ntls.state_change",
    "ntls.cert_expiring",
    "hsm.storage_high",
    "snmp.trap",
    "cloud.cluster_state",
    "cloud.hsm_state",
    "cloud.hsm_added",
    "cloud.hsm_removed",
    "cloud.backup",
    "cloud.inventory",
    "cloud.hsm_silent",
    "backup.overdue",
    "restore.overdue",
];

/// Every `event.category` of `docs/events.md`.
pub const CATEGORIES: &[&str] = &[
    "authentication",
    "configuration",
    "iam",
    "key_management",
    "network",
    "hardware",
    "intrusion_detection",
    "integrity",
    "process",
];

/// Every `event.outcome`.
pub const OUTCOMES: &[&str] = &["success", "failure", "unknown"];

/// The closest of `known` to `name`, when it is close enough to be a likely typo: the "did you mean" of errors.
pub fn suggest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// ` (did you mean `x`?)` when `name` is a likely typo of one of `known`, else nothing: the tail of an error message.
pub fn did_you_mean(name: &str, known: &[&str]) -> String {
    suggest(name, known).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

/// The `event.dataset` of a line no decoder classified.
pub const DATASET_SYSLOG: &str = "syslog";

/// A point in time that remembers how many fractional-second digits its source wrote, so that `.004` prints back as
/// `.004` and a header without a fraction prints none (the corpus convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Timestamp {
    /// The instant, UTC.
    pub at: DateTime<Utc>,
    /// Fractional digits to print: 0 to 9.
    pub frac_digits: u8,
}

impl Timestamp {
    /// A timestamp printed with as many digits as `frac_digits` says (clamped to 9).
    pub fn new(at: DateTime<Utc>, frac_digits: u8) -> Self {
        Timestamp { at, frac_digits: frac_digits.min(9) }
    }

    /// A collector-side time (receipt): microsecond precision, printed without a fraction when it has none.
    pub fn from_clock(at: DateTime<Utc>) -> Self {
        let micros = at.timestamp_micros();
        let at = Utc.timestamp_micros(micros).single().unwrap_or(at);
        let frac_digits = if micros % 1_000_000 == 0 { 0 } else { 6 };
        Timestamp { at, frac_digits }
    }

    /// Microseconds since the Unix epoch: the stored, indexed form.
    pub fn micros(&self) -> i64 {
        self.at.timestamp_micros()
    }

    /// RFC 3339 in UTC with a `Z`, keeping exactly `frac_digits` fractional digits.
    pub fn to_rfc3339(&self) -> String {
        let mut text = self.at.format("%Y-%m-%dT%H:%M:%S").to_string();
        if self.frac_digits > 0 {
            let nanos = format!("{:09}", self.at.nanosecond() % 1_000_000_000);
            text.push('.');
            text.push_str(&nanos[..usize::from(self.frac_digits)]);
        }
        text.push('Z');
        text
    }
}

/// A field's value: borrowed for the many values that are constants (facility names, actions, categories, datasets),
/// owned for what a line carries. Constants cost no allocation per event.
pub type FieldValue = Cow<'static, str>;

/// A `'static` copy of `text`, shared by every caller that interns the same text. For the constants of decoder and
/// rule files: they are interned once per load, and a reload of unchanged files interns nothing new.
pub fn intern(text: &str) -> &'static str {
    static INTERNED: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut interned = INTERNED.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = interned.get(text) {
        return existing;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    interned.insert(leaked);
    leaked
}

/// One stored line: the fields of `docs/events.md`.
///
/// `@timestamp` and `event.created` are kept typed (they order and filter events); every other field is a string in
/// `fields`, absent when the line does not carry it (never `""`). Serializes as its times, its fields by name and its
/// raw bytes (rule state that keeps sample events is saved this way).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "EventRecord", into = "EventRecord")]
pub struct Event {
    /// `@timestamp`: from the header, else the time of receipt.
    pub timestamp: Timestamp,
    /// `event.created`: the time of receipt.
    pub created: Timestamp,
    /// Every other field, sorted by its interned name: a small sorted vector costs no allocation per field, where a
    /// map allocates nodes (an event has about twenty fields).
    fields: Vec<(&'static str, FieldValue)>,
    /// The frame's bytes when they were not valid UTF-8 (`event.original` then holds an escaped copy).
    pub raw: Option<Vec<u8>>,
}

/// The order of an event's fields: by length, then by bytes from the end. Any total order serves the binary search;
/// this one decides most comparisons at once, where plain string order walks the long shared prefixes of
/// `log.syslog.*` and `hsm.*` names.
fn field_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.bytes().rev().cmp(b.bytes().rev()))
}

/// The serialized form of an [`Event`]: field names as text, so that unknown names (from a newer version) are dropped
/// on reading rather than failing.
#[derive(serde::Serialize, serde::Deserialize)]
struct EventRecord {
    timestamp: Timestamp,
    created: Timestamp,
    fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw: Option<Vec<u8>>,
}

impl From<Event> for EventRecord {
    fn from(event: Event) -> Self {
        let fields = event.fields.into_iter().map(|(k, v)| (k.to_owned(), v.into_owned())).collect();
        EventRecord { timestamp: event.timestamp, created: event.created, fields, raw: event.raw }
    }
}

impl From<EventRecord> for Event {
    fn from(record: EventRecord) -> Self {
        let mut event = Event::new(record.timestamp, record.created);
        for (name, value) in record.fields {
            if let Some(name) = field::lookup(&name) {
                event.set(name, value);
            }
        }
        event.raw = record.raw;
        event
    }
}

impl Event {
    /// An event with only its two times set.
    pub fn new(timestamp: Timestamp, created: Timestamp) -> Self {
        Event { timestamp, created, fields: Vec::with_capacity(24), raw: None }
    }

    /// Sets a field; an empty value removes it, because an absent field is never `""`.
    pub fn set(&mut self, name: &'static str, value: impl Into<FieldValue>) {
        let value = value.into();
        // A builder that sets fields in field order (see `decode::base_event`) appends: no search, no shift.
        if self.fields.last().is_none_or(|(last, _)| field_order(last, name).is_lt()) {
            if !value.is_empty() {
                self.fields.push((name, value));
            }
            return;
        }
        match (self.fields.binary_search_by(|(n, _)| field_order(n, name)), value.is_empty()) {
            (Ok(at), true) => {
                self.fields.remove(at);
            }
            (Ok(at), false) => self.fields[at].1 = value,
            (Err(_), true) => {}
            (Err(at), false) => self.fields.insert(at, (name, value)),
        }
    }

    /// A field's value as stored (borrowed constant or owned text), to copy it into another event without allocating.
    pub fn value(&self, name: &str) -> Option<&FieldValue> {
        self.fields.binary_search_by(|(n, _)| field_order(n, name)).ok().map(|at| &self.fields[at].1)
    }

    /// The string fields (the two typed times are not among them), in the event's own order.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.fields.iter().map(|(k, v)| (*k, v.as_ref()))
    }

    /// A string field (the two typed times are not in here: see [`Event::all_fields`]).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.value(name).map(|v| v.as_ref())
    }

    /// Roughly the memory the event holds: its fixed part, its fields and their text, its raw bytes.
    pub fn approx_bytes(&self) -> usize {
        let text: usize = self.fields.iter().map(|(_, value)| value.len()).sum();
        std::mem::size_of::<Self>()
            + self.fields.len() * std::mem::size_of::<(&'static str, FieldValue)>()
            + text
            + self.raw.as_ref().map_or(0, Vec::len)
    }

    /// Every field as text, the times rendered, sorted by name: what the query CLI and the API print.
    pub fn all_fields(&self) -> BTreeMap<&'static str, String> {
        let mut all: BTreeMap<&'static str, String> = self.fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
        all.insert(field::TIMESTAMP, self.timestamp.to_rfc3339());
        all.insert(field::CREATED, self.created.to_rfc3339());
        all
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spans_past_the_ends_of_time_saturate() {
        let now = chrono::Utc::now();
        let huge = std::time::Duration::from_secs(99_999_999_999_999);
        assert_eq!(super::later(now, huge), chrono::DateTime::<chrono::Utc>::MAX_UTC);
        assert_eq!(super::earlier(now, huge), chrono::DateTime::<chrono::Utc>::MIN_UTC);
        assert_eq!(super::later(now, std::time::Duration::MAX), chrono::DateTime::<chrono::Utc>::MAX_UTC);
        assert_eq!(super::later(now, std::time::Duration::from_secs(60)), now + chrono::Duration::seconds(60));
    }

    use super::*;

    #[test]
    fn timestamp_keeps_the_written_fraction_digits() {
        let at = DateTime::parse_from_rfc3339("2026-03-02T08:15:22.512934+00:00").unwrap().with_timezone(&Utc);
        assert_eq!(Timestamp::new(at, 6).to_rfc3339(), "2026-03-02T08:15:22.512934Z");
        assert_eq!(Timestamp::new(at, 3).to_rfc3339(), "2026-03-02T08:15:22.512Z");
        assert_eq!(Timestamp::new(at, 0).to_rfc3339(), "2026-03-02T08:15:22Z");
        let ms = DateTime::parse_from_rfc3339("2026-03-02T08:15:22.004Z").unwrap().with_timezone(&Utc);
        assert_eq!(Timestamp::new(ms, 3).to_rfc3339(), "2026-03-02T08:15:22.004Z");
    }

    #[test]
    fn clock_time_prints_a_fraction_only_when_it_has_one() {
        let whole = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        assert_eq!(Timestamp::from_clock(whole).to_rfc3339(), "2026-03-01T12:00:00Z");
        let frac = whole + chrono::Duration::microseconds(1500);
        assert_eq!(Timestamp::from_clock(frac).to_rfc3339(), "2026-03-01T12:00:00.001500Z");
    }

    #[test]
    fn empty_values_are_absent_fields() {
        let now = Timestamp::from_clock(Utc::now());
        let mut event = Event::new(now, now);
        event.set(field::USER_NAME, "admin");
        event.set(field::USER_NAME, "");
        assert_eq!(event.get(field::USER_NAME), None);
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("usr.name", field::ALL), Some("user.name"));
        assert_eq!(suggest("partition.creat", ACTIONS), Some("partition.create"));
        assert_eq!(suggest("completely.different", ACTIONS), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn events_round_trip_through_json() {
        let now = Timestamp::new(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(), 3);
        let mut event = Event::new(now, now);
        event.set(field::USER_NAME, "admin");
        event.set(field::ACTION, "ssh.login");
        event.raw = Some(vec![0xff]);
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
    }

    #[test]
    fn interning_returns_one_copy() {
        let a = intern(&String::from("partition.create"));
        let b = intern("partition.create");
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn every_field_name_is_unique_and_found() {
        for (i, name) in field::ALL.iter().enumerate() {
            assert_eq!(field::ALL.iter().position(|n| n == name), Some(i), "{name} twice");
            assert_eq!(field::lookup(name), Some(*name));
        }
        assert_eq!(field::lookup("usr.name"), None);
    }
}

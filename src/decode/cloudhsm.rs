//! AWS CloudHSM audit records: multi-line `Key : Value` text (both `Key : Value` and `Key: Value` spacing), one record
//! per `Time:` line, as the CloudHSM User Guide's audit log reference shows them.
//!
//! Receives the text of one record and where it came from; emits its event. Owns the record layout and the sequence
//! check: within one reboot counter `Sequence No` counts up by one, so a jump (or a step back) means audit records are
//! missing or were removed, and becomes an `audit.sequence_gap` event of its own.

use chrono::{TimeZone, Utc};

use super::apply::LookupEntry;
use super::Origin;
use crate::event::{field, Event, Timestamp};

/// `log.syslog.format` and `event.dataset` of these records.
pub const FORMAT: &str = "cloudhsm_audit";
/// `event.dataset` of these records.
pub const DATASET: &str = "aws.cloudhsm_audit";

/// The tables from the decoder file: opcode and user type to fields, success codes.
#[derive(Debug, Clone)]
pub struct CloudHsmTables {
    /// Keyed by opcode name (glob).
    pub operations: Vec<LookupEntry>,
    /// Keyed by user type name (glob).
    pub user_types: Vec<LookupEntry>,
    /// Response codes that mean success.
    pub success_codes: Vec<u64>,
}

/// Splits exported log text into records: each starts at a line beginning with `Time:`.
pub fn split_records(text: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("Time:") {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| text[start..starts.get(i + 1).copied().unwrap_or(text.len())].trim())
        .collect()
}

/// The value of `key` in a record (`Key : Value` or `Key: Value`).
fn value<'r>(record: &'r str, key: &str) -> Option<&'r str> {
    record.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim()).filter(|v| !v.is_empty())
    })
}

/// The name before a `(0x..)` annotation: `CN_LOGIN (0xd)` → `CN_LOGIN`.
fn name_of(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or(text)
}

/// The event time: `usecs:` (microseconds since the epoch) on the `Time:` line.
fn record_time(record: &str) -> Option<Timestamp> {
    let usecs = record.lines().next()?.split("usecs:").nth(1)?.trim();
    let micros: i64 = usecs.parse().ok()?;
    Some(Timestamp::new(Utc.timestamp_micros(micros).single()?, 6))
}

impl CloudHsmTables {
    /// Decodes one record. A record without a readable time takes the time of receipt.
    pub fn decode(&self, record: &str, origin: &Origin) -> Event {
        let created = Timestamp::from_clock(origin.received);
        let mut event = Event::new(record_time(record).unwrap_or(created), created);
        event.set(field::ORIGINAL, record.to_owned());
        event.set(field::MESSAGE, record.to_owned());
        event.set(field::FORMAT, FORMAT);
        event.set(field::DATASET, DATASET);
        event.set(field::SOURCE_ADDRESS, origin.source_address.clone());
        if let Some(host) = &origin.default_host {
            event.set(field::HOST_NAME, host.clone());
        }
        let copies = [
            ("Sequence No", field::HSM_AUDIT_SEQUENCE),
            ("Reboot counter", field::HSM_REBOOT_COUNTER),
            ("Session Handle", field::HSM_AUDIT_SESSION),
            ("User Name", field::USER_NAME),
        ];
        for (key, name) in copies {
            if let Some(v) = value(record, key) {
                event.set(name, v.to_owned());
            }
        }
        if let Some(opcode) = value(record, "Opcode").map(name_of) {
            event.set(field::HSM_AUDIT_OPERATION, opcode.to_owned());
            apply_table(&self.operations, opcode, &mut event);
        }
        if let Some(user_type) = value(record, "User Type").map(name_of) {
            apply_table(&self.user_types, user_type, &mut event);
        }
        if let Some(response) = value(record, "Response") {
            self.response(response, &mut event);
        }
        event
    }

    /// `Response : 163:HSM Error: RET_USER_LOGIN_FAILURE` → value `0xa3`, name, outcome.
    fn response(&self, response: &str, event: &mut Event) {
        let (code, text) = response.split_once(':').unwrap_or((response, ""));
        let Ok(code) = code.trim().parse::<u64>() else { return };
        event.set(field::HSM_RETURN_CODE_VALUE, format!("{code:#x}"));
        let outcome = if self.success_codes.contains(&code) { "success" } else { "failure" };
        event.set(field::OUTCOME, outcome);
        let name = text.trim().strip_prefix("HSM Error:").map(str::trim).unwrap_or("");
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            event.set(field::HSM_RETURN_CODE, name.to_owned());
        }
    }
}

fn apply_table(entries: &[LookupEntry], key: &str, event: &mut Event) {
    if let Some(entry) = entries.iter().find(|e| e.matches_glob(key)) {
        for (name, value) in entry.constants() {
            event.set(name, value);
        }
    }
}

/// Follows `Sequence No` within each `Reboot counter` of one stream (one file, one log stream).
#[derive(Debug, Default, Clone)]
pub struct SequenceTracker {
    last: Option<(String, u64, String)>,
}

impl SequenceTracker {
    /// Observes a decoded record; returns the `audit.sequence_gap` event when its number does not follow the last.
    pub fn observe(&mut self, event: &Event) -> Option<Event> {
        let reboot = event.get(field::HSM_REBOOT_COUNTER)?.to_owned();
        let written = event.get(field::HSM_AUDIT_SEQUENCE)?.to_owned();
        let sequence = parse_number(&written)?;
        let previous = self.last.replace((reboot.clone(), sequence, written.clone()));
        let (last_reboot, last, last_written) = previous?;
        if last_reboot != reboot || sequence == last + 1 {
            return None;
        }
        let description = if sequence > last {
            format!("{} audit record(s) missing: sequence went from {last_written} to {written}", sequence - last - 1)
        } else {
            format!("audit sequence went back from {last_written} to {written}: records were removed or replayed")
        };
        let text = format!("{description} (reboot counter {reboot})");
        let mut gap = Event::new(event.timestamp, event.created);
        gap.set(field::ACTION, "audit.sequence_gap");
        gap.set(field::CATEGORY, "integrity");
        gap.set(field::DATASET, event.value(field::DATASET).cloned().unwrap_or(DATASET.into()));
        gap.set(field::FORMAT, event.value(field::FORMAT).cloned().unwrap_or(FORMAT.into()));
        gap.set(field::MESSAGE, text.clone());
        gap.set(field::ORIGINAL, text);
        gap.set(field::HSM_AUDIT_SEQUENCE, written);
        gap.set(field::HSM_REBOOT_COUNTER, reboot);
        for name in [field::HOST_NAME, field::SOURCE_ADDRESS, field::HSM_SERIAL] {
            if let Some(v) = event.value(name) {
                gap.set(name, v.clone());
            }
        }
        Some(gap)
    }
}

/// `0x2a` (hex) or `42` (decimal).
fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_at_time_lines() {
        let text = "Time: a, usecs:1\nSequence No : 0x0\n\nTime: b, usecs:2\nSequence No: 0x1\n";
        let records = split_records(text);
        assert_eq!(records, vec!["Time: a, usecs:1\nSequence No : 0x0", "Time: b, usecs:2\nSequence No: 0x1"]);
        assert_eq!(value(records[0], "Sequence No"), Some("0x0"));
        assert_eq!(value(records[1], "Sequence No"), Some("0x1"));
    }

    #[test]
    fn time_comes_from_usecs() {
        let t = record_time("Time: 01/16/18 01:48:49.824999, usecs:1516067329824999\n").unwrap();
        assert_eq!(t.to_rfc3339(), "2018-01-16T01:48:49.824999Z");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x2a"), Some(42));
        assert_eq!(parse_number("42"), Some(42));
        assert_eq!(parse_number("zz"), None);
    }
}

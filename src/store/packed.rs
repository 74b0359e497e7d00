//! The packed form of an event row's `fields`: what the typed columns do not hold, in about a fifth of the bytes of
//! the JSON object rows stored before (which are still read).
//!
//! A row's fields were most of its size: long dotted names, values that repeat a piece of the line, and names of
//! facility and severity codes. Here a field is one byte of code ([`CODES`]) and a header; a value that occurs in
//! `event.original` is stored as its position there, and a facility or severity name that its code implies is not
//! stored at all.
//!
//! Layout: [`MARKER`], then per field: its code (a byte; [`NAMED`] and the name, for a field that has no code), and a
//! header (LEB128) whose low two bits say what follows and whose other bits are a length:
//! `0` the value's bytes; `1` the value is `original[start..start + length]`, `start` (LEB128) follows; `2` the value
//! is the name of the field's code (`log.syslog.facility.name` of `log.syslog.facility.code`, and so for severity).

use crate::event::field;
use crate::parse::{facility_name, severity_name};

/// The first byte of packed fields (a JSON object starts with `{`).
pub const MARKER: u8 = 1;

/// The code of a field whose name follows it (a field added to the contract and not yet to [`CODES`]).
const NAMED: u8 = 0xff;

/// Field codes: a field's position here is the byte stored for it, so entries are only ever appended.
const CODES: [&str; 63] = [
    field::MESSAGE,
    field::FACILITY_NAME,
    field::FACILITY_CODE,
    field::SEVERITY_NAME,
    field::SEVERITY_CODE,
    field::APPNAME,
    field::PROCID,
    field::MSGID,
    field::SOURCE_ADDRESS,
    field::CATEGORY,
    field::USER_ROLES,
    field::SOURCE_PORT,
    field::HSM_SESSION,
    field::HSM_COMMAND,
    field::HSM_PARTITION,
    field::HSM_CLIENT,
    field::HSM_SERIAL,
    field::HSM_RETURN_CODE,
    field::HSM_RETURN_CODE_VALUE,
    field::HSM_LUNALOG_SEVERITY,
    field::HSM_LUNALOG_CODE,
    field::HSM_ALARM_CODE,
    field::HSM_ALARM_TEXT,
    field::HSM_SENSOR,
    field::HSM_READING,
    field::HSM_SYSTEM_STATE,
    field::HSM_AUDIT_OPERATION,
    field::HSM_AUDIT_SEQUENCE,
    field::HSM_AUDIT_SESSION,
    field::HSM_REBOOT_COUNTER,
    field::TRUNCATED,
    // Typed columns today; coded so that a row never needs their names should one leave its column.
    field::HOST_NAME,
    field::DATASET,
    field::ACTION,
    field::OUTCOME,
    field::USER_NAME,
    field::SOURCE_IP,
    field::FORMAT,
    field::TLS_CLIENT_SUBJECT,
    field::TLS_CLIENT_ALT_NAMES,
    field::TLS_CLIENT_HOST_MISMATCH,
    field::HSM_MODEL,
    field::HSM_FIRMWARE,
    field::HSM_FIPS_MODE,
    field::HSM_LABEL,
    field::HSM_STORAGE_USED_PCT,
    field::NTLS_STATUS,
    field::NTLS_CLIENTS,
    field::NTLS_CERT_NOT_AFTER,
    field::SNMP_TRAP_OID,
    field::SNMP_TRAP_NAME,
    field::SNMP_VARBINDS,
    field::PREVIOUS_VALUE,
    field::CURRENT_VALUE,
    field::ERROR_MESSAGE,
    field::CLOUD_PROVIDER,
    field::CLOUD_ACCOUNT_ID,
    field::CLOUD_REGION,
    field::CLOUD_AVAILABILITY_ZONE,
    field::AWS_CLUSTER_ID,
    field::AWS_HSM_ID,
    field::AWS_BACKUP_ID,
    field::HOST_IP,
];

/// What a header says follows.
const LITERAL: u64 = 0;
const IN_ORIGINAL: u64 = 1;
const NAME_OF_CODE: u64 = 2;

/// Values shorter than this are written out: finding them in the line costs more than it saves.
const SHORTEST_REFERENCE: usize = 3;

fn code_of(name: &str) -> Option<u8> {
    CODES.iter().position(|known| *known == name).and_then(|at| u8::try_from(at).ok())
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or("ends inside a number")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a number longer than 64 bits".into())
}

/// Whether `value` is what the code field beside it names (so it need not be stored).
fn implied_by_code(name: &str, value: &str, fields: &[(&'static str, &str)]) -> bool {
    let (code_field, name_of): (&str, fn(u8) -> Option<&'static str>) = match name {
        field::FACILITY_NAME => (field::FACILITY_CODE, facility_name),
        field::SEVERITY_NAME => (field::SEVERITY_CODE, severity_name),
        _ => return false,
    };
    let code = fields.iter().find(|(n, _)| *n == code_field).and_then(|(_, v)| v.parse::<u8>().ok());
    code.and_then(name_of) == Some(value)
}

/// Packs `fields` (none of them `event.original`), referring to `original` where a value occurs in it.
pub fn pack(fields: &[(&'static str, &str)], original: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(MARKER);
    let finder = original.as_bytes();
    for (name, value) in fields {
        match code_of(name) {
            Some(code) => out.push(code),
            None => {
                out.push(NAMED);
                push_varint(&mut out, name.len() as u64);
                out.extend_from_slice(name.as_bytes());
            }
        }
        let length = value.len() as u64;
        if implied_by_code(name, value, fields) {
            push_varint(&mut out, NAME_OF_CODE);
            continue;
        }
        let found = (value.len() >= SHORTEST_REFERENCE).then(|| first_occurrence(finder, value.as_bytes())).flatten();
        match found {
            Some(start) => {
                push_varint(&mut out, (length << 2) | IN_ORIGINAL);
                push_varint(&mut out, start as u64);
            }
            None => {
                push_varint(&mut out, (length << 2) | LITERAL);
                out.extend_from_slice(value.as_bytes());
            }
        }
    }
    out
}

/// Searches of at most this many byte comparisons (line length times value length) go byte by byte.
const NAIVE_SEARCH_BUDGET: usize = 1 << 16;

/// Where `needle` first occurs in `haystack`. A field against its line (a hundred-odd bytes) is found from its first
/// byte's places and a comparison at each: `memmem` builds a searcher for every call, which cost more than the search
/// (a sixth of the packing thread's time). Longer searches keep `memmem`'s linear bound.
fn first_occurrence(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if haystack.len().saturating_mul(needle.len()) > NAIVE_SEARCH_BUDGET {
        return memchr::memmem::find(haystack, needle);
    }
    let Some((&first, rest)) = needle.split_first() else { return Some(0) };
    let last_start = haystack.len().checked_sub(needle.len())?;
    memchr::memchr_iter(first, &haystack[..=last_start]).find(|&at| haystack[at + 1..].starts_with(rest))
}

/// Unpacks fields packed by [`pack`] with the same `original`; the error says what is wrong with the bytes.
pub fn unpack(bytes: &[u8], original: &str) -> Result<Vec<(&'static str, String)>, String> {
    if bytes.first() != Some(&MARKER) {
        return Err("packed fields do not start with their marker".into());
    }
    let mut at = 1;
    let mut fields: Vec<(&'static str, String)> = Vec::new();
    let mut implied: Vec<&'static str> = Vec::new();
    while at < bytes.len() {
        let code = bytes[at];
        at += 1;
        let name = if code == NAMED {
            let length = read_varint(bytes, &mut at)? as usize;
            let text = bytes.get(at..at.saturating_add(length)).ok_or("ends inside a field name")?;
            at += length;
            let text = std::str::from_utf8(text).map_err(|_| "a field name is not UTF-8")?;
            field::lookup(text).ok_or_else(|| format!("unknown field {text}"))?
        } else {
            CODES.get(usize::from(code)).copied().ok_or_else(|| format!("unknown field code {code}"))?
        };
        let header = read_varint(bytes, &mut at)?;
        let length = (header >> 2) as usize;
        let value = match header & 3 {
            LITERAL => {
                let value = bytes.get(at..at.saturating_add(length)).ok_or("ends inside a value")?;
                at += length;
                std::str::from_utf8(value).map_err(|_| format!("{name} is not UTF-8"))?.to_owned()
            }
            IN_ORIGINAL => {
                let start = read_varint(bytes, &mut at)? as usize;
                original
                    .get(start..start.saturating_add(length))
                    .ok_or_else(|| format!("{name} lies outside event.original"))?
                    .to_owned()
            }
            NAME_OF_CODE => {
                implied.push(name);
                continue;
            }
            other => return Err(format!("{name} has an unknown kind {other}")),
        };
        fields.push((name, value));
    }
    for name in implied {
        let (code_field, name_of): (&str, fn(u8) -> Option<&'static str>) = match name {
            field::FACILITY_NAME => (field::FACILITY_CODE, facility_name),
            field::SEVERITY_NAME => (field::SEVERITY_CODE, severity_name),
            other => return Err(format!("{other} is not the name of a code")),
        };
        let code = fields.iter().find(|(n, _)| *n == code_field).and_then(|(_, v)| v.parse::<u8>().ok());
        let value = code.and_then(name_of).ok_or_else(|| format!("{name} implied by a missing {code_field}"))?;
        fields.push((name, value.to_owned()));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_is_the_one_memmem_finds_short_or_long() {
        let line = "<14>1 2026-03-01T10:00:00Z hsm-a lunash 41 - - info : 0 : Command: hsm show : admin : 10.1.2.3/514";
        let long = format!("{}admin{}", "a".repeat(300), "x".repeat(300));
        let cases = [
            (line, "admin"),
            (line, "hsm"),
            (line, "514"),
            (line, "<14>"),
            (line, "10.1.2.3/5145"),
            (line, "absent"),
            (line, ""),
            ("ab", "abc"),
            ("aaab", "aab"),
            (long.as_str(), "aadmin"),
            (long.as_str(), &long[1..]),
        ];
        for (haystack, needle) in cases {
            let expected = memchr::memmem::find(haystack.as_bytes(), needle.as_bytes());
            assert_eq!(first_occurrence(haystack.as_bytes(), needle.as_bytes()), expected, "{needle:?}");
        }
    }

    #[test]
    fn lengths_past_the_end_of_memory_are_errors() {
        // A named field, then a literal whose length is near u64::MAX: rows come from a file anyone may edit.
        let mut bytes = vec![MARKER, 0];
        push_varint(&mut bytes, u64::MAX >> 2 << 2);
        assert!(unpack(&bytes, "line").is_err());
        let mut bytes = vec![MARKER, NAMED];
        push_varint(&mut bytes, u64::MAX);
        assert!(unpack(&bytes, "line").is_err());
        let mut bytes = vec![MARKER, 0];
        push_varint(&mut bytes, (u64::MAX >> 2 << 2) | IN_ORIGINAL);
        push_varint(&mut bytes, u64::MAX);
        assert!(unpack(&bytes, "line").is_err());
    }

    #[test]
    fn codes_are_stable_and_cover_every_field_but_the_times_and_the_original() {
        // Stored rows hold these bytes: a code never changes meaning.
        assert_eq!(code_of(field::MESSAGE), Some(0));
        assert_eq!(code_of(field::SOURCE_ADDRESS), Some(8));
        assert_eq!(code_of(field::HSM_COMMAND), Some(13));
        assert_eq!(code_of(field::TRUNCATED), Some(30));
        assert_eq!(code_of(field::FORMAT), Some(37));
        for name in field::ALL {
            let coded = code_of(name).is_some();
            let expected = ![field::TIMESTAMP, field::CREATED, field::ORIGINAL].contains(name);
            assert_eq!(coded, expected, "{name}");
        }
    }

    #[test]
    fn a_luna_line_packs_to_a_fraction_of_its_json_and_back() {
        let original = "<174>1 2026-01-10T08:30:50.285Z hsm-12 lunash 9209 - - info : 0 : Command: partition list : \
                        monitor : 10.2.124.230/13634";
        let fields: Vec<(&'static str, &str)> = vec![
            (field::HSM_COMMAND, "partition list"),
            (field::HSM_SESSION, "network"),
            (field::SOURCE_PORT, "13634"),
            (field::CATEGORY, "configuration"),
            (field::HSM_LUNALOG_CODE, "0"),
            (field::PROCID, "9209"),
            (field::APPNAME, "lunash"),
            (field::SOURCE_ADDRESS, "10.0.0.9:514"),
            (field::HSM_LUNALOG_SEVERITY, "info"),
            (field::FACILITY_CODE, "21"),
            (field::SEVERITY_CODE, "6"),
            (field::FACILITY_NAME, "local5"),
            (field::SEVERITY_NAME, "info"),
        ];
        let packed = pack(&fields, original);
        let json =
            serde_json::to_string(&fields.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()).unwrap();
        assert!(packed.len() * 5 < json.len(), "{} bytes packed, {} as JSON", packed.len(), json.len());
        let mut back = unpack(&packed, original).unwrap();
        back.sort();
        let mut expected: Vec<(&'static str, String)> = fields.iter().map(|(n, v)| (*n, (*v).to_owned())).collect();
        expected.sort();
        assert_eq!(back, expected);
    }

    #[test]
    fn names_that_differ_from_their_code_and_values_beyond_ascii_are_kept() {
        let original = "Ärger: ünïcode line";
        let fields: Vec<(&'static str, &str)> = vec![
            (field::FACILITY_CODE, "21"),
            (field::FACILITY_NAME, "security"),
            (field::SEVERITY_NAME, "info"),
            (field::MESSAGE, "ünïcode"),
            (field::HSM_ALARM_TEXT, "Ä"),
            (field::USER_ROLES, ""),
        ];
        let back = unpack(&pack(&fields, original), original).unwrap();
        let expected: Vec<(&'static str, String)> = fields.iter().map(|(n, v)| (*n, (*v).to_owned())).collect();
        assert_eq!(back, expected, "severity.name without a severity.code is stored as written");
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let original = "abc def";
        let packed = pack(&[(field::HSM_COMMAND, "abc def"), (field::PROCID, "42")], original);
        for end in 0..packed.len() {
            let _ = unpack(&packed[..end], original);
        }
        assert!(unpack(&packed, "abc").unwrap_err().contains("outside event.original"));
        assert!(unpack(&[MARKER, 200, 0], original).unwrap_err().contains("unknown field code 200"));
        assert!(unpack(b"{}", original).is_err());
    }
}

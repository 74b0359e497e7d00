//! The header shapes nearly every line has, read directly: `<PRI>Mmm dd hh:mm:ss HOST APP[PID]: MSG` (RFC 3164 as
//! Luna appliances and rsyslog write it), the same with an RFC 3339 time (rsyslog's `RSYSLOG_ForwardFormat`), and
//! `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG` (RFC 5424; `-` for a time or host it leaves out).
//!
//! `syslog_loose` reads both through layers of parser combinators, which was a fifth of the cost of a line. This
//! reads them with a few byte scans and gives exactly what the general path gives: every rule it applies is one of
//! `syslog_loose`'s or this module's parent's, and anything outside these shapes (tabs or doubled spaces between
//! header fields, a `-` or `[` where the MSG starts, a tag without a colon, a year in the date, malformed structured
//! data) returns `None` for the general path to read. A test compares the two on the corpus and on mutated lines.
//! Beyond the general path, this reads an RFC 5424 line whose TIMESTAMP is NILVALUE (`logger --rfc5424=notime`),
//! which `syslog_loose` does not: its time is the time of receipt.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use syslog_loose::ProcId;

use super::names::month_number;
use super::{fraction_digits, Format, SyslogMessage, TimeRules};
use crate::event::Timestamp;

/// `line` (which starts with a valid `<PRI>` of value `pri`) in one of the shapes, or `None`.
pub fn parse(line: &str, pri: u8, received: DateTime<Utc>, rules: TimeRules) -> Option<SyslogMessage<'_>> {
    // The general path trims the line first; a frame never starts with whitespace here, since it starts with `<`.
    let line = line.trim();
    let after_pri = &line[line.find('>')? + 1..];
    let (format, header) = if starts_with_version(after_pri) {
        (Format::Rfc5424, rfc5424(after_pri, received, rules)?)
    } else {
        (Format::Rfc3164, rfc3164(after_pri, received, rules)?)
    };
    Some(SyslogMessage {
        format,
        facility: Some(pri >> 3),
        severity: Some(pri & 7),
        timestamp: header.timestamp,
        hostname: header.hostname,
        appname: header.appname,
        procid: header.procid.filter(|p| !p.is_empty()),
        msgid: header.msgid,
        msg: header.msg,
    })
}

struct Header<'a> {
    timestamp: Option<Timestamp>,
    hostname: Option<&'a str>,
    appname: Option<&'a str>,
    procid: Option<Cow<'a, str>>,
    msgid: Option<&'a str>,
    msg: &'a str,
}

/// Whether the text after the PRI starts with an RFC 5424 VERSION (digits and a space), not a time.
fn starts_with_version(after_pri: &str) -> bool {
    let digits = after_pri.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && after_pri.as_bytes().get(digits) == Some(&b' ')
}

/// `VERSION SP TIMESTAMP SP HOST SP APP SP PROCID SP MSGID SP SD [SP MSG]`, SD being `-` or well-formed elements.
fn rfc5424(after_pri: &str, received: DateTime<Utc>, rules: TimeRules) -> Option<Header<'_>> {
    let (version, rest) = after_pri.split_once(' ')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || version.parse::<u32>().is_err() {
        return None;
    }
    let (stamp, rest) = rest.split_once(' ')?;
    let timestamp = match stamp {
        "-" => None,
        stamp => Some(rfc3339(stamp, received, rules)?),
    };
    let (hostname, rest) = word(rest)?;
    // A host ending in `:` ends the 5424 reading in `syslog_loose`.
    if hostname.ends_with(':') {
        return None;
    }
    let (appname, rest) = word(rest)?;
    let (procid, rest) = word(rest)?;
    let (msgid, rest) = word(rest)?;
    let after_sd = &rest[structured_data_len(rest)?..];
    let msg = match after_sd {
        "" => "",
        after => after.strip_prefix(' ')?.trim_start_matches([' ', '\t']),
    };
    Some(Header {
        timestamp,
        hostname: nil_or(hostname),
        appname: nil_or(appname),
        procid: nil_or(procid).map(procid_text),
        msgid: nil_or(msgid),
        msg,
    })
}

/// `Mmm dd hh:mm:ss SP HOST SP APP[PID]: MSG`, `... SP APP [PID]: MSG` or `... SP APP: MSG`; the time may be an RFC
/// 3339 one instead.
fn rfc3164(after_pri: &str, received: DateTime<Utc>, rules: TimeRules) -> Option<Header<'_>> {
    let (timestamp, rest) = match after_pri.as_bytes().first()?.is_ascii_digit() {
        true => {
            let (stamp, rest) = after_pri.split_once(' ')?;
            (rfc3339(stamp, received, rules)?, rest)
        }
        false => {
            let (at, rest) = date_3164(after_pri, received, rules)?;
            (Timestamp::new(at, 0), rest)
        }
    };
    let (hostname, rest) = word(rest)?;
    if hostname.ends_with(':') || hostname == "-" {
        return None;
    }
    let colon = match rest.bytes().position(|b| b == b':' || b.is_ascii_whitespace() || b >= 0x80) {
        Some(at) if rest.as_bytes()[at] >= 0x80 => rest.find(|c: char| c == ':' || c.is_whitespace())?,
        found => found?,
    };
    let (tag, rest) = rest.split_at(colon);
    let (appname, procid, msg) = match rest.strip_prefix(" [") {
        // Luna's own shape, `lunash [6021]: text`: the parent reads the pid after the space (`spaced_pid`).
        Some(bracketed) => {
            let (pid, after) = bracketed.split_once(']')?;
            if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || tag.contains(['[', ']']) {
                return None;
            }
            let after = after.strip_prefix(':')?;
            (tag, Some(Cow::Borrowed(pid)), after.strip_prefix(' ').unwrap_or(after).trim_end())
        }
        None => {
            let rest = rest.strip_prefix(':')?;
            let (appname, procid) = match tag.strip_suffix(']') {
                Some(open) => {
                    let (app, pid) = open.split_once('[')?;
                    if pid.is_empty() || pid.contains(']') || app.contains('[') {
                        return None;
                    }
                    (app, Some(procid_text(pid)))
                }
                None if !tag.contains('[') => (tag, None),
                None => return None,
            };
            let msg = rest.trim_start_matches([' ', '\t']);
            // The general path reads a leading `-` or `[...]` of the MSG as structured data.
            if msg.starts_with(['-', '[']) {
                return None;
            }
            (appname, procid, msg)
        }
    };
    if appname.is_empty() || appname == "-" {
        return None;
    }
    Some(Header {
        timestamp: Some(timestamp),
        hostname: Some(hostname),
        appname: Some(appname),
        procid,
        msgid: None,
        msg,
    })
}

/// The length of the STRUCTURED-DATA at the start of `text` (RFC 5424 §6.3): `-`, or elements
/// `[SD-ID *(SP PARAM-NAME="PARAM-VALUE")]` with `\"`, `\\` and `\]` escaped in values. `None` for anything else.
fn structured_data_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'-') {
        return Some(1);
    }
    let name_end = |from: usize| {
        let len = bytes[from..].iter().take_while(|&&b| b > b' ' && b < 0x7f && !b"=]\"".contains(&b)).count();
        (len > 0).then_some(from + len)
    };
    let mut at = 0;
    while bytes.get(at) == Some(&b'[') {
        at = name_end(at + 1)?;
        while bytes.get(at) == Some(&b' ') {
            at = name_end(at + 1)?;
            if bytes.get(at..at + 2) != Some(b"=\"") {
                return None;
            }
            at += 2;
            loop {
                match bytes.get(at)? {
                    b'\\' => at += 2,
                    b'"' => break,
                    _ => at += 1,
                }
            }
            at += 1;
        }
        if bytes.get(at) != Some(&b']') {
            return None;
        }
        at += 1;
    }
    (at > 0).then_some(at)
}

/// An RFC 3339 time with the digits of its fraction. A relay that gave a yearless `Feb 29` its own year writes a day
/// that does not exist (rsyslog: `2026-02-29T12:05:01+00:00`); that time is read with the year rule, as the
/// sender's line would have been.
fn rfc3339(stamp: &str, received: DateTime<Utc>, rules: TimeRules) -> Option<Timestamp> {
    let at = match DateTime::parse_from_rfc3339(stamp) {
        Ok(at) => at,
        Err(_) => {
            let (year, rest) = (stamp.get(..4)?, stamp.get(4..)?);
            let clock = rest.strip_prefix("-02-29T")?;
            let [hour, minute, second] = [0, 3, 6].map(|at| clock.get(at..at + 2).and_then(|d| d.parse().ok()));
            let leap = rules.year(received, (2, 29, hour?, minute?, second?));
            if year.parse::<i32>().ok()? == leap || NaiveDate::from_ymd_opt(leap, 2, 29).is_none() {
                return None;
            }
            DateTime::parse_from_rfc3339(&format!("{leap:04}{rest}")).ok()?
        }
    };
    Some(Timestamp::new(at.with_timezone(&Utc), fraction_digits(stamp)))
}

/// `Mmm dd hh:mm:ss ` (one or two spaces before a day, one after it), its year by the year rule, in the sender's
/// zone; and what follows.
fn date_3164(text: &str, received: DateTime<Utc>, rules: TimeRules) -> Option<(DateTime<Utc>, &str)> {
    let month = month_number(text.get(..3)?)?;
    let rest = text[3..].strip_prefix(' ')?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (day, rest) = rest.split_once(' ')?;
    let (clock, rest) = rest.split_once(' ')?;
    let mut parts = clock.split(':');
    let (hour, minute, second) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let [day, hour, minute, second] = [day, hour, minute, second].map(two_digits);
    let date = (month, day?, hour?, minute?, second?);
    let year = rules.year(received, date);
    let local = NaiveDate::from_ymd_opt(year, date.0, date.1)?.and_hms_opt(date.2, date.3, date.4)?;
    Some((rules.to_utc(local)?, rest))
}

/// One or two ASCII digits.
fn two_digits(text: &str) -> Option<u32> {
    (matches!(text.len(), 1 | 2) && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

/// A header field and what follows its single space; a field is a run without whitespace (as `syslog_loose` reads
/// it), and a field followed by anything but one space is not this shape.
fn word(text: &str) -> Option<(&str, &str)> {
    let end = field_end(text)?;
    let (field, rest) = (&text[..end], text[end..].strip_prefix(' ')?);
    let plain = !field.is_empty() && field != ":";
    (plain && field_end(rest) != Some(0)).then_some((field, rest))
}

/// Where the run of non-whitespace at the start of `text` ends, when whitespace ends it. Bytes first: only a line
/// with non-ASCII text needs the Unicode definition of whitespace.
fn field_end(text: &str) -> Option<usize> {
    let at = text.bytes().position(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') || b >= 0x80);
    match at {
        Some(at) if text.as_bytes()[at] >= 0x80 => text.find(char::is_whitespace),
        found => found,
    }
}

/// `-` (NILVALUE) is no value.
fn nil_or(field: &str) -> Option<&str> {
    (field != "-").then_some(field)
}

/// A PID as the general path gives it (a number printed back as a number, `0042` → `42`, anything else as written);
/// one already in that form is borrowed, not printed again.
fn procid_text(procid: &str) -> Cow<'_, str> {
    let canonical = !procid.starts_with('0') && procid.len() < 10 && procid.bytes().all(|b| b.is_ascii_digit());
    if canonical && !procid.is_empty() {
        return Cow::Borrowed(procid);
    }
    super::procid_text(&ProcId::from(procid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_syslog, pri_value};
    use proptest::prelude::*;

    fn received() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().expect("a time")
    }

    /// What the general path makes of `line`, and what this module makes of it when it reads it.
    fn both(line: &str) -> (Option<SyslogMessage<'_>>, Option<SyslogMessage<'_>>) {
        let Some(pri) = pri_value(line) else { return (None, None) };
        // A `Feb 29` a relay put in a year without one, and an RFC 5424 NILVALUE time, are read here and not by the
        // general path.
        if line.contains("-02-29T") || line.split(' ').nth(1) == Some("-") {
            return (None, None);
        }
        let rules = TimeRules::default();
        (parse(line, pri, received(), rules), parse_syslog(line, received(), rules))
    }

    fn corpus_lines() -> Vec<String> {
        let corpus = include_str!("../../tests/data/luna.jsonl");
        let wire = |case: &str| {
            let case: serde_json::Value = serde_json::from_str(case).expect("corpus JSON");
            case["wire"].as_str().expect("wire").to_owned()
        };
        corpus.lines().map(wire).filter(|line| line.starts_with('<')).collect()
    }

    #[test]
    fn reads_the_corpus_as_the_general_path_does() {
        let mut read = 0;
        for line in corpus_lines() {
            if let (Some(fast), general) = both(&line) {
                assert_eq!(Some(fast), general, "{line}");
                read += 1;
            }
        }
        // Most corpus lines have one of the two shapes; the rest fall through to the general path.
        assert!(read > 80, "{read}");
    }

    #[test]
    fn other_shapes_are_left_to_the_general_path() {
        let others = [
            "<13>Feb 28 09:12:44 host app[12]: - dash first",
            "<13>Feb 28 09:12:44 host app[12]: [sd] bracket first",
            "<13>Feb 28 09:12:44 host lunash  [4101]: two spaces before a spaced pid",
            "<13>Feb 28 09:12:44 host lunash [41a]: a spaced pid that is not a number",
            "<13>Feb 28 09:12:44 host  app: two spaces",
            "<13>Feb 28 2026 09:12:44 host app: with a year",
            "<13>Feb 30 09:12:44 host app: no such day",
            "<13>Feb 28 09:12:44 app[12]: no host",
            "<13>1 2026-03-07T02:21:00Z host app - - [sd a=\"b\"structured",
            "<13>1 2026-03-07T02:21:00Z host app - - [sd a=b] unquoted",
            "<13>1 2026-03-07T02:21:00Z host app - - [sd a=\"b] unterminated",
            "<13>1 2026-03-07T02:21:00Z host app - - [] empty",
        ];
        for line in others {
            assert_eq!(both(line).0, None, "{line}");
        }
    }

    #[test]
    fn structured_data_and_nil_hosts_read_as_the_general_path_reads_them() {
        let lines = [
            "<13>1 2026-03-07T02:21:00Z host app - - [sd a=\"b\"] structured",
            "<13>1 2026-03-07T02:21:00Z host app - ID1 [sd@1 a=\"b \\] \\\" c\" d=\"\"][x@2] two elements",
            "<13>1 2026-12-04T18:55:55.275954+00:00 vm lunash - - [timeQuality tzKnown=\"1\" isSynced=\"0\"] x",
            "<13>1 2026-03-07T02:21:00Z host app - - [sd a=\"b\"]",
            "<13>1 2026-03-07T02:21:00Z - app - - - nil host",
        ];
        for line in lines {
            let (fast, general) = both(line);
            assert!(fast.is_some(), "{line}");
            assert_eq!(fast, general, "{line}");
        }
    }

    #[test]
    fn a_nil_time_is_no_time() {
        let line = "<174>1 - - lunash 4100 - - info : 0 : x";
        let m = parse(line, 174, received(), TimeRules::default()).expect("read");
        assert_eq!((m.format, m.timestamp, m.hostname), (Format::Rfc5424, None, None));
        assert_eq!((m.appname, m.procid.as_deref(), m.msg), (Some("lunash"), Some("4100"), "info : 0 : x"));
    }

    proptest! {
        /// Wherever this module reads a mutated corpus line, it reads it as the general path does.
        #[test]
        fn mutated_lines_read_as_the_general_path_reads_them(
            line in any::<prop::sample::Index>(),
            edits in prop::collection::vec(
                (any::<prop::sample::Index>(), prop::option::of("( |  |:|-|\\[|\\]|\\t|0|9|1 |é|\\u{a0}|[a-zA-Z])")),
                1..4,
            ),
        ) {
            let lines = corpus_lines();
            let mut text = lines[line.index(lines.len())].clone();
            for (at, insert) in edits {
                let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
                let at = boundaries[at.index(boundaries.len())].max(1);
                match insert {
                    Some(inserted) => text.insert_str(at.min(text.len()), &inserted),
                    None if at < text.len() => {
                        text.remove(at);
                    }
                    None => {}
                }
            }
            if let (Some(fast), general) = both(&text) {
                prop_assert_eq!(Some(fast), general, "{}", text);
            }
        }
    }
}

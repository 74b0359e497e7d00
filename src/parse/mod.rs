//! Parsing one frame into a [`SyslogMessage`]: RFC 5424 and RFC 3164 through `syslog_loose` (their two common shapes
//! read directly by [`common_shape`], with the same results), the Luna appliance's file layout, and `unparsed` for
//! everything else.
//!
//! Receives a frame's text and its time of receipt; emits a message that borrows from the text. Never fails: a line
//! no parser accepts is a message of format [`Format::Unparsed`] whose `msg` is the whole line. Owns the rules that
//! `syslog_loose` leaves open: the RFC 3164 year and the zone of times written without an offset ([`TimeRules`]: UTC
//! and the year nearest to receipt unless a source says otherwise), the number of fractional digits a header wrote,
//! a PRI above 191 is not syslog, the tag at the start of a header-less line, and a Luna `[pid]:` that a relay left
//! at the start of the message.

mod clock;
mod common_shape;
mod luna_file;
mod names;
mod year;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use syslog_loose::{Message, ProcId, Variant};

use crate::event::Timestamp;

pub use clock::{TimeRules, YearRule};
pub use names::{facility_name, severity_name};
pub use year::nearest_year;

/// Which grammar a line was read with (`log.syslog.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 5424.
    Rfc5424,
    /// RFC 3164 (BSD syslog), with or without PRI.
    Rfc3164,
    /// The Luna appliance's file layout.
    LunaFile,
    /// No syslog grammar matched.
    Unparsed,
}

impl Format {
    /// The `log.syslog.format` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Rfc5424 => "rfc5424",
            Format::Rfc3164 => "rfc3164",
            Format::LunaFile => "luna_file",
            Format::Unparsed => "unparsed",
        }
    }
}

/// A parsed syslog line; every text field borrows from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage<'a> {
    /// The grammar that read it.
    pub format: Format,
    /// Facility code 0–23.
    pub facility: Option<u8>,
    /// Severity code 0–7.
    pub severity: Option<u8>,
    /// Header time, UTC.
    pub timestamp: Option<Timestamp>,
    /// HOSTNAME.
    pub hostname: Option<&'a str>,
    /// APP-NAME or tag.
    pub appname: Option<&'a str>,
    /// PROCID or the tag's pid.
    pub procid: Option<Cow<'a, str>>,
    /// MSGID.
    pub msgid: Option<&'a str>,
    /// MSG: for an unparsed line, the whole line.
    pub msg: &'a str,
}

/// The text of a frame: borrowed when it is UTF-8, else a copy with each invalid byte written as `\xNN`.
pub fn frame_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(escape_invalid_utf8(bytes)),
    }
}

fn escape_invalid_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 16);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(error) => {
                let (valid, rest) = bytes.split_at(error.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = error.error_len().unwrap_or(rest.len());
                for byte in &rest[..bad] {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
                bytes = &rest[bad..];
            }
        }
    }
}

/// Parses a line received at `received` from a source whose zone-less times follow `rules`.
pub fn parse(line: &str, received: DateTime<Utc>, rules: TimeRules) -> SyslogMessage<'_> {
    let parsed = if line.starts_with('<') {
        pri_value(line).map(|pri| {
            common_shape::parse(line, pri, received, rules)
                .or_else(|| parse_syslog(line, received, rules))
                .unwrap_or_else(|| header_less_3164(line, Some(pri >> 3), Some(pri & 7)))
        })
    } else if line.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        luna_file::parse(line, rules)
    } else {
        parse_syslog(line, received, rules)
    };
    let Some(mut message) = parsed else { return unparsed(line) };
    recover_relayed_pid(&mut message);
    message
}

/// A line no syslog grammar reads: all of it is the message.
fn unparsed(line: &str) -> SyslogMessage<'_> {
    SyslogMessage {
        format: Format::Unparsed,
        facility: None,
        severity: None,
        timestamp: None,
        hostname: None,
        appname: None,
        procid: None,
        msgid: None,
        msg: line.trim(),
    }
}

/// Luna writes its tag with a space before the pid (`lunash [4100]: text`). A relay that does not know that shape
/// reads `lunash` as the whole tag and forwards ` [4100]: text` as the message (rsyslog's RFC 5424 template,
/// syslog-ng's `syslog()` destination). The pid is read back from the start of the message here, for every decoder
/// at once, so the line decodes as the appliance wrote it.
fn recover_relayed_pid(message: &mut SyslogMessage<'_>) {
    if message.procid.is_some() || message.appname.is_none() {
        return;
    }
    let Some((pid, rest)) = message.msg.strip_prefix('[').and_then(|inner| inner.split_once("]:")) else {
        return;
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    message.procid = Some(Cow::Borrowed(pid));
    message.msg = rest.strip_prefix(' ').unwrap_or(rest).trim_end();
}

/// The value of a `<PRI>` of one to three digits, at most 191 (RFC 5424 §6.2.1); `syslog_loose` would otherwise
/// read `<999>` as a header-less 3164 line.
fn pri_value(line: &str) -> Option<u8> {
    let close = line.as_bytes().iter().take(5).position(|&b| b == b'>')?;
    let digits = &line[1..close];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u8>().ok().filter(|pri| *pri <= 191)
}

fn parse_syslog(line: &str, received: DateTime<Utc>, rules: TimeRules) -> Option<SyslogMessage<'_>> {
    let year = move |date| rules.year(received, date);
    let message = syslog_loose::parse_message_with_year_exact_tz(line, year, Some(rules.zone), Variant::Either).ok()?;
    let format = match message.protocol {
        syslog_loose::Protocol::RFC5424(_) => Format::Rfc5424,
        syslog_loose::Protocol::RFC3164 => Format::Rfc3164,
    };
    let facility = message.facility.map(|f| f as u8);
    let severity = message.severity.map(|s| s as u8);
    let Some(timestamp) = message.timestamp else {
        // Without a time there is no 3164 header: after a PRI, everything is MSG (RFC 3164 §4.3.3); without a PRI
        // either, syslog_loose has merely accepted free text.
        return facility.is_some().then(|| header_less_3164(line, facility, severity));
    };
    let mut procid = message.procid.as_ref().map(procid_text).filter(|p| !p.is_empty());
    let msg = match format {
        Format::Rfc3164 => match spaced_pid(line, &message) {
            Some((pid, rest)) => {
                procid = Some(Cow::Borrowed(pid));
                rest
            }
            None => msg_3164(line, &message),
        },
        _ => message.msg,
    };
    let frac_digits = header_fraction_digits(line, format);
    Some(SyslogMessage {
        format,
        facility,
        severity,
        timestamp: Some(Timestamp::new(timestamp.with_timezone(&Utc), frac_digits)),
        hostname: message.hostname,
        appname: message.appname,
        procid,
        msgid: message.msgid,
        msg,
    })
}

/// `<13>free text`: a PRI and a MSG, no header. A MSG that starts with a tag, `app[pid]: text` or `app: text`, gives
/// its app name and pid as rsyslog's parser reads them: what Python's `SysLogHandler`, `logger` on a local socket and
/// many appliances send. Free text keeps no tag: its first word is not taken for a host or an app name.
fn header_less_3164(line: &str, facility: Option<u8>, severity: Option<u8>) -> SyslogMessage<'_> {
    let msg = line.split_once('>').map_or(line, |(_, rest)| rest).trim();
    let (appname, procid, msg) = match leading_tag(msg) {
        Some((appname, procid, rest)) => (Some(appname), procid.map(|pid| procid_text(&ProcId::from(pid))), rest),
        None => (None, None, msg),
    };
    SyslogMessage {
        format: Format::Rfc3164,
        facility,
        severity,
        timestamp: None,
        hostname: None,
        appname,
        procid,
        msgid: None,
        msg,
    }
}

/// The longest tag read at the start of a header-less MSG (RFC 5424 allows 48 characters of APP-NAME).
const MAX_TAG: usize = 64;

/// `app[pid]: rest` or `app: rest` (a colon, then a space or the end) at the start of `msg`: app, pid and the rest.
fn leading_tag(msg: &str) -> Option<(&str, Option<&str>, &str)> {
    let end = msg.bytes().take(MAX_TAG + 1).position(|b| b == b':' || b.is_ascii_whitespace())?;
    let (tag, rest) = msg.split_at(end);
    let rest = rest.strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let (appname, procid) = match tag.strip_suffix(']') {
        Some(open) => {
            let (app, pid) = open.split_once('[')?;
            (app, Some(pid).filter(|pid| !pid.is_empty() && !pid.contains(['[', ']'])))
        }
        None => (tag, None),
    };
    if appname.is_empty() || appname.contains(['[', ']']) || (tag.ends_with(']') && procid.is_none()) {
        return None;
    }
    Some((appname, procid, rest.trim_start_matches(' ')))
}

/// A tag written with a space before its pid, `lunash [6021]: text`, as Luna appliances write it (Thales Syslog &
/// SNMP Monitoring Guide); syslog_loose reads the `[6021]` as structured data. Returns the pid and the MSG.
fn spaced_pid<'a>(line: &'a str, message: &Message<&'a str>) -> Option<(&'a str, &'a str)> {
    if message.procid.is_some() {
        return None;
    }
    let after_tag = &line[end_offset(line, message.appname?)?..];
    let bracketed = after_tag.trim_start_matches(' ');
    if bracketed.len() == after_tag.len() {
        return None;
    }
    let inner = bracketed.strip_prefix('[')?;
    let close = inner.find(']')?;
    let pid = &inner[..close];
    if pid.is_empty() || pid.contains(char::is_whitespace) {
        return None;
    }
    let rest = inner[close + 1..].strip_prefix(':')?;
    Some((pid, rest.strip_prefix(' ').unwrap_or(rest).trim_end()))
}

fn procid_text<'a>(procid: &ProcId<&'a str>) -> Cow<'a, str> {
    match procid {
        ProcId::Name(name) => Cow::Borrowed(name),
        ProcId::PID(pid) => Cow::Owned(pid.to_string()),
    }
}

/// The MSG of a 3164 line. RFC 3164 has no structured data, but `syslog_loose` reads a leading `[...]` of the MSG as
/// such (syslog-loose issue #37) and drops it from `msg`; this restores the text from the first `[` after the tag.
fn msg_3164<'a>(line: &'a str, message: &Message<&'a str>) -> &'a str {
    if message.structured_data.is_empty() {
        return message.msg;
    }
    let Some(mut header_end) = message.appname.or(message.hostname).and_then(|field| end_offset(line, field)) else {
        return message.msg;
    };
    if message.appname.is_some() && line[header_end..].starts_with('[') {
        header_end += line[header_end..].find(']').map_or(0, |close| close + 1);
    }
    line[header_end..].find('[').map_or(message.msg, |pos| line[header_end + pos..].trim_end())
}

/// Where `part` (a slice of `line`) ends within `line`.
fn end_offset(line: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(line.as_ptr() as usize)?;
    (start + part.len() <= line.len()).then_some(start + part.len())
}

/// Fractional-second digits of a header's time: an RFC 5424 TIMESTAMP (`<PRI>1 2026-03-02T08:15:22.512934+00:00 ...`)
/// or an RFC 3339 time in an RFC 3164 header (`<PRI>2026-03-02T08:15:22.512934+00:00 host tag: ...`, as rsyslog's
/// `RSYSLOG_ForwardFormat` writes it); none for the `Mmm dd hh:mm:ss` form.
fn header_fraction_digits(line: &str, format: Format) -> u8 {
    let after_pri = line.trim_start().split_once('>').map_or("", |(_, rest)| rest);
    let stamp = match format {
        Format::Rfc5424 => after_pri.split_once(' ').map_or("", |(_, rest)| rest),
        _ => after_pri,
    };
    let stamp = stamp.split(' ').next().unwrap_or("");
    if stamp.contains('T') {
        fraction_digits(stamp)
    } else {
        0
    }
}

/// Fractional-second digits of an RFC 3339 time (`2026-03-02T08:15:22.512934+00:00`).
fn fraction_digits(stamp: &str) -> u8 {
    stamp
        .split_once('.')
        .map_or(0, |(_, frac)| u8::try_from(frac.bytes().take_while(u8::is_ascii_digit).count()).unwrap_or(9))
}

#[cfg(test)]
mod tests;

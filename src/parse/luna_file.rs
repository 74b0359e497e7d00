//! The Luna appliance's own log file layout, as `syslog tail` prints it and `syslog tarlogs` archives hold it:
//! `YYYY Mon dd hh:mm:ss host facility severity tag[ pid]: msg` (Thales Syslog & SNMP Monitoring Guide). Fields are
//! separated by one or more spaces; there is no PRI, and the time is the appliance's clock, read in the source's zone
//! (UTC unless configured).

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveTime};

use super::names::{facility_code, month_number, severity_code};
use super::{Format, SyslogMessage, TimeRules};
use crate::event::Timestamp;

/// Parses one line of the file layout, `None` when the line does not have that shape.
pub fn parse(line: &str, rules: TimeRules) -> Option<SyslogMessage<'_>> {
    let mut rest = line;
    let year: i32 = take_word(&mut rest).filter(|w| w.len() == 4)?.parse().ok()?;
    let month = month_number(take_word(&mut rest)?)?;
    let day: u32 = take_word(&mut rest).filter(|w| w.len() <= 2)?.parse().ok()?;
    let time = clock(take_word(&mut rest)?)?;
    let at = rules.to_utc(NaiveDate::from_ymd_opt(year, month, day)?.and_time(time))?;
    let host = take_word(&mut rest)?;
    let facility = facility_code(take_word(&mut rest)?)?;
    let severity = severity_code(take_word(&mut rest)?)?;
    let (appname, procid, msg) = split_tag(rest.trim_start_matches(' '))?;
    Some(SyslogMessage {
        format: Format::LunaFile,
        facility: Some(facility),
        severity: Some(severity),
        timestamp: Some(Timestamp::new(at, 0)),
        hostname: Some(host),
        appname: Some(appname),
        procid: procid.map(Cow::Borrowed),
        msgid: None,
        msg,
    })
}

/// Takes the next space-delimited word and the spaces after it.
/// `hh:mm:ss`: the common form read directly (chrono's format parser reads its format string on every call), anything
/// else (one-digit fields, a leap second) by chrono, so that both accept the same times.
fn clock(text: &str) -> Option<NaiveTime> {
    let bytes = text.as_bytes();
    let two_digits = |at: usize| {
        let (tens, ones) = (bytes[at], bytes[at + 1]);
        (tens.is_ascii_digit() && ones.is_ascii_digit()).then(|| u32::from(tens - b'0') * 10 + u32::from(ones - b'0'))
    };
    if bytes.len() == 8 && bytes[2] == b':' && bytes[5] == b':' {
        if let (Some(hour), Some(minute), Some(second)) = (two_digits(0), two_digits(3), two_digits(6)) {
            if second < 60 {
                return NaiveTime::from_hms_opt(hour, minute, second);
            }
        }
    }
    NaiveTime::parse_from_str(text, "%H:%M:%S").ok()
}

fn take_word<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let text = rest.trim_start_matches(' ');
    let end = text.find(' ')?;
    let (word, after) = text.split_at(end);
    *rest = after;
    (!word.is_empty()).then_some(word)
}

/// Splits `tag[ pid]: msg` (`lunash [1234]: x`, `HTLD[1234]: x`, `kernel: x`) into its parts.
fn split_tag(text: &str) -> Option<(&str, Option<&str>, &str)> {
    let tag_end = text.find([' ', '[', ':'])?;
    let tag = &text[..tag_end];
    if tag.is_empty() {
        return None;
    }
    let mut rest = text[tag_end..].trim_start_matches(' ');
    let mut procid = None;
    if let Some(after_bracket) = rest.strip_prefix('[') {
        let close = after_bracket.find(']')?;
        procid = Some(&after_bracket[..close]).filter(|p| !p.is_empty());
        rest = &after_bracket[close + 1..];
    }
    let msg = rest.strip_prefix(':')?;
    Some((tag, procid, msg.strip_prefix(' ').unwrap_or(msg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_utc(line: &str) -> Option<SyslogMessage<'_>> {
        parse(line, TimeRules::default())
    }

    #[test]
    fn file_layout_lines() {
        let m = parse_utc(
            "2012 Feb 29 12:05:01 myLuna  local5 info  lunash [1234]: info : 0 : Lush user login : admin : Console",
        )
        .unwrap();
        assert_eq!((m.hostname, m.appname, m.procid.as_deref()), (Some("myLuna"), Some("lunash"), Some("1234")));
        assert_eq!((m.facility, m.severity), (Some(21), Some(6)));
        assert_eq!(m.msg, "info : 0 : Lush user login : admin : Console");
        assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2012-02-29T12:05:01Z");

        let m = parse_utc("2017 Apr 17 11:02:10 local_host kern info kernel: k7pf0: ALM0010: Hard tamper").unwrap();
        assert_eq!((m.appname, m.procid.as_deref(), m.msg), (Some("kernel"), None, "k7pf0: ALM0010: Hard tamper"));

        let m = parse_utc("2026 Mar  5 07:40:02 hsm-1  local5 warn  HTLD[2288]: x").unwrap();
        assert_eq!((m.appname, m.procid.as_deref(), m.severity), (Some("HTLD"), Some("2288"), Some(4)));
    }

    #[test]
    fn clock_times_read_as_chrono_reads_them() {
        for text in [
            "12:05:01", "00:00:00", "23:59:59", "23:59:60", "24:00:00", "12:60:00", "9:05:01", "12:5:01", "1a:00:00",
            "12-05-01", "",
        ] {
            assert_eq!(clock(text), NaiveTime::parse_from_str(text, "%H:%M:%S").ok(), "{text}");
        }
    }

    #[test]
    fn other_shapes_are_not_the_file_layout() {
        for line in [
            "Command Result : 0 (Success)",
            "2012 Feb 30 12:05:01 h local5 info lunash: x",
            "2012 Feb 29 12:05:01 h local99 info lunash: x",
            "2012 Feb 29 12:05:01 h local5 loud lunash: x",
            "2012 Feb 29 12:05:01 h local5 info lunash no colon",
            "12 Feb 29 12:05:01 h local5 info lunash: x",
        ] {
            assert!(parse_utc(line).is_none(), "{line}");
        }
    }

    #[test]
    fn times_are_read_in_the_sources_zone() {
        let berlin = TimeRules::in_zone(chrono_tz::Europe::Berlin);
        let m = parse("2026 Jul 10 12:00:00 hsm-1 local5 info lunash [1]: x", berlin).unwrap();
        assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-07-10T10:00:00Z");
    }
}

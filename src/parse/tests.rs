use super::*;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn parse_utc(line: &str, received: DateTime<Utc>) -> SyslogMessage<'_> {
    parse(line, received, TimeRules::default())
}

#[test]
fn rfc5424_with_fraction_and_offset() {
    let line = "<174>1 2026-03-02T08:15:22.512934+01:00 hsm-4-1-1-9 lunash 7781 - - info : 0 : Lush user login : audit : 172.16.106.20/40112";
    let m = parse_utc(line, at("2026-03-02T08:15:23Z"));
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!((m.facility, m.severity), (Some(21), Some(6)));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-03-02T07:15:22.512934Z");
    assert_eq!(
        (m.hostname, m.appname, m.procid.as_deref(), m.msgid),
        (Some("hsm-4-1-1-9"), Some("lunash"), Some("7781"), None)
    );
    assert_eq!(m.msg, "info : 0 : Lush user login : audit : 172.16.106.20/40112");
}

#[test]
fn rfc5424_nil_fields_and_structured_data() {
    let m = parse_utc(
        "<6>1 2026-03-07T02:21:00Z hsm-2-1-2-6 kernel - - - k7pf0: [HSM] RTC: external tamper latched",
        at("2026-03-07T02:21:01Z"),
    );
    assert_eq!((m.appname, m.procid.as_deref(), m.msgid), (Some("kernel"), None, None));
    assert_eq!(m.msg, "k7pf0: [HSM] RTC: external tamper latched");
    let m =
        parse_utc("<13>1 2026-03-07T02:21:00.004Z h app - ID47 [ex@32473 a=\"b\"] text", at("2026-03-07T02:21:01Z"));
    assert_eq!((m.msgid, m.msg), (Some("ID47"), "text"));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-03-07T02:21:00.004Z");
}

#[test]
fn rfc3164_with_and_without_pri() {
    let m = parse_utc(
        "<86>Feb 28 10:01:17 hsm-2-1-2-6 sshd[2210]: Accepted password for admin",
        at("2026-02-28T10:01:18Z"),
    );
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!((m.facility, m.severity), (Some(10), Some(6)));
    assert_eq!((m.hostname, m.appname, m.procid.as_deref()), (Some("hsm-2-1-2-6"), Some("sshd"), Some("2210")));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-02-28T10:01:17Z");
    assert_eq!(m.msg, "Accepted password for admin");

    let m = parse_utc("Mar  1 12:04:00 hsm-2-1-2-6 sshd[2231]: Failed password", at("2026-03-01T12:04:01Z"));
    assert_eq!((m.format, m.facility, m.severity), (Format::Rfc3164, None, None));
    assert_eq!(m.msg, "Failed password");
}

#[test]
fn rfc3164_message_starting_with_brackets_is_kept_whole() {
    let m = parse_utc("<6>Mar  7 02:21:00 hsm-2-1-2-6 kernel: [HSM] ALM0010: Hard tamper", at("2026-03-07T02:21:01Z"));
    assert_eq!(m.msg, "[HSM] ALM0010: Hard tamper");
    let m =
        parse_utc("<6>Mar  7 02:21:00 hsm-2-1-2-6 kernel[12]: [HSM] ALM0010: Hard tamper", at("2026-03-07T02:21:01Z"));
    assert_eq!((m.procid.as_deref(), m.msg), (Some("12"), "[HSM] ALM0010: Hard tamper"));
}

#[test]
fn rfc3164_tag_with_a_space_before_the_pid() {
    let m = parse_utc(
        "<172>Feb 28 11:20:40 hsm-2-1-2-5 lunash [6021]: HSM Admin Login: incorrect password",
        at("2026-02-28T11:20:41Z"),
    );
    assert_eq!((m.hostname, m.appname, m.procid.as_deref()), (Some("hsm-2-1-2-5"), Some("lunash"), Some("6021")));
    assert_eq!(m.msg, "HSM Admin Login: incorrect password");
}

#[test]
fn a_pri_with_an_invalid_time_is_rfc3164_all_message() {
    let m = parse_utc("<13>Feb 30 10:00:00 h a: x", at("2026-03-01T12:05:00Z"));
    assert_eq!((m.format, m.timestamp, m.msg), (Format::Rfc3164, None, "Feb 30 10:00:00 h a: x"));
}

#[test]
fn a_pri_with_free_text_is_rfc3164_all_message() {
    let m = parse_utc("<13>hello from a test script", at("2026-03-01T12:05:00Z"));
    assert_eq!((m.format, m.facility, m.severity), (Format::Rfc3164, Some(1), Some(5)));
    assert_eq!((m.hostname, m.appname, m.timestamp), (None, None, None));
    assert_eq!(m.msg, "hello from a test script");
}

#[test]
fn a_header_less_line_keeps_its_tag() {
    // What Python's SysLogHandler (with an ident), `logger` on a local socket and minimal appliances send.
    let cases = [
        (
            "<174>lunash[4100]: info : 0 : Command: hsm show",
            Some("lunash"),
            Some("4100"),
            "info : 0 : Command: hsm show",
        ),
        ("<14>myapp: hello world", Some("myapp"), None, "hello world"),
        ("<14>my.app-2[0042]:  padded", Some("my.app-2"), Some("42"), "padded"),
        ("<14>myapp:", Some("myapp"), None, ""),
        // Not tags: free text, a colon inside a word, an empty pid, brackets that are not a pid.
        ("<14>hello from a script", None, None, "hello from a script"),
        ("<14>http://example.com: down", None, None, "http://example.com: down"),
        ("<14>app[]: x", None, None, "app[]: x"),
        ("<14>a[1]b: x", None, None, "a[1]b: x"),
        ("<14>[HSM] text: x", None, None, "[HSM] text: x"),
    ];
    for (line, appname, procid, msg) in cases {
        let m = parse_utc(line, at("2026-03-01T12:05:00Z"));
        assert_eq!((m.format, m.hostname, m.timestamp), (Format::Rfc3164, None, None), "{line}");
        assert_eq!((m.appname, m.procid.as_deref(), m.msg), (appname, procid, msg), "{line}");
    }
}

#[test]
fn a_pid_a_relay_left_in_the_message_is_read_back() {
    let received = at("2026-03-09T10:00:02Z");
    // rsyslog's RFC 5424 template, and its RFC 3339 forward format, after reading `lunash [4100]:` as tag `lunash`.
    for line in [
        "<174>1 2026-03-09T10:00:01+00:00 hsm-1 lunash - - -  [4100]: info : 0 : Command: partition create",
        "<174>2026-03-09T10:00:01+00:00 hsm-1 lunash [4100]: info : 0 : Command: partition create",
        "<174>Mar  9 10:00:01 hsm-1 lunash [4100]: info : 0 : Command: partition create",
    ] {
        let m = parse_utc(line, received);
        assert_eq!((m.appname, m.procid.as_deref()), (Some("lunash"), Some("4100")), "{line}");
        assert_eq!(m.msg, "info : 0 : Command: partition create", "{line}");
    }
    // A pid the header has is kept; a bracket that is not a pid stays in the message.
    let m = parse_utc("<174>1 2026-03-09T10:00:01Z h app 7 - - [4100]: x", received);
    assert_eq!((m.procid.as_deref(), m.msg), (Some("7"), "[4100]: x"));
    let m = parse_utc("<6>1 2026-03-09T10:00:01Z h kernel - - - [HSM]: x", received);
    assert_eq!((m.procid, m.msg), (None, "[HSM]: x"));
}

#[test]
fn an_rfc3339_time_in_an_rfc3164_header_keeps_its_fraction() {
    let line = "<174>2026-03-02T08:15:22.512934+01:00 hsm-4-1-1-9 lunash[7781]: info : 0 : x";
    let m = parse_utc(line, at("2026-03-02T08:15:23Z"));
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-03-02T07:15:22.512934Z");
    assert_eq!((m.hostname, m.appname, m.procid.as_deref()), (Some("hsm-4-1-1-9"), Some("lunash"), Some("7781")));
    // The same without a colon after the tag, as rsyslog forwards a line that came in as RFC 5424.
    let line = "<174>2026-03-02T08:15:22.512934+00:00 hsm-4-1-1-9 lunash[7781] info : 0 : x";
    let m = parse_utc(line, at("2026-03-02T08:15:23Z"));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-03-02T08:15:22.512934Z");
    assert_eq!((m.appname, m.procid.as_deref(), m.msg), (Some("lunash"), Some("7781"), "info : 0 : x"));
}

#[test]
fn a_feb_29_a_relay_put_in_a_common_year_takes_the_year_rule() {
    // rsyslog gives a yearless `Feb 29` the year of receipt, 2026, which has no Feb 29.
    for line in [
        "<174>1 2026-02-29T12:05:01+00:00 hsm-4-1-1-9 lunash 4313 - - info : 0 : x",
        "<174>2026-02-29T12:05:01+00:00 hsm-4-1-1-9 lunash[4313]: info : 0 : x",
    ] {
        let m = parse_utc(line, at("2028-03-01T00:00:10Z"));
        assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2028-02-29T12:05:01Z", "{line}");
        assert_eq!((m.hostname, m.msg), (Some("hsm-4-1-1-9"), "info : 0 : x"), "{line}");
    }
}

#[test]
fn zone_less_times_are_read_in_the_sources_zone() {
    let berlin = TimeRules::in_zone(chrono_tz::Europe::Berlin);
    let m = parse("<174>Jul 10 12:00:00 hsm-1 lunash[1]: x", at("2026-07-10T10:00:05Z"), berlin);
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-07-10T10:00:00Z");
    // The general path (a shape the direct reader leaves to it) uses the same zone.
    let m = parse("<174>Jul 10 12:00:00 hsm-1 lunash[1] x", at("2026-07-10T10:00:05Z"), berlin);
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-07-10T10:00:00Z");
    // A time with an offset ignores the zone.
    let m = parse("<174>1 2026-07-10T12:00:00Z hsm-1 lunash 1 - - x", at("2026-07-10T12:00:05Z"), berlin);
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-07-10T12:00:00Z");
}

#[test]
fn year_rule_applies_to_rfc3164() {
    let m = parse_utc("<174>Dec 31 23:59:58 hsm-2-1-2-6 lunash[4312]: x", at("2027-01-01T00:00:03Z"));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-12-31T23:59:58Z");
    let m = parse_utc("<174>Feb 29 12:05:01 hsm-4-1-1-9 lunash[4313]: x", at("2028-03-01T00:00:10Z"));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2028-02-29T12:05:01Z");
}

#[test]
fn luna_file_layout() {
    let m = parse_utc(
        "2012 Feb 29 12:05:01 myLuna  local5 info  lunash [1234]: info : 0 : Command: hsm show  : admin : Console",
        at("2026-03-01T12:00:00Z"),
    );
    assert_eq!(m.format, Format::LunaFile);
    assert_eq!(m.msg, "info : 0 : Command: hsm show  : admin : Console");
}

#[test]
fn what_is_not_syslog_is_unparsed_and_whole() {
    for line in ["Command Result : 0 (Success)", "<999>1 2026-03-07T02:21:00Z h a - - - x", "", "   ", "<>", "<13"] {
        let m = parse_utc(line, at("2026-03-01T12:05:00Z"));
        assert_eq!(m.format, Format::Unparsed, "{line:?}");
        assert_eq!(m.msg, line.trim());
        assert_eq!(m.timestamp, None);
    }
}

#[test]
fn invalid_utf8_is_escaped_not_dropped() {
    assert_eq!(frame_text(b"ok"), Cow::Borrowed("ok"));
    assert_eq!(frame_text(b"a\xffb\xc3"), "a\\xffb\\xc3");
}

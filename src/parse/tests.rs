use super::*;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

#[test]
fn rfc5424_with_fraction_and_offset() {
    let line = "<174>1 2026-03-02T08:15:22.512934+01:00 hsm-4-1-1-9 lunash 7781 - - info : 0 : Lush user login : audit : 172.16.106.20/40112";
    let m = parse(line, at("2026-03-02T08:15:23Z"));
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
    let m = parse(
        "<6>1 2026-03-07T02:21:00Z hsm-2-1-2-6 kernel - - - k7pf0: [HSM] RTC: external tamper latched",
        at("2026-03-07T02:21:01Z"),
    );
    assert_eq!((m.appname, m.procid.as_deref(), m.msgid), (Some("kernel"), None, None));
    assert_eq!(m.msg, "k7pf0: [HSM] RTC: external tamper latched");
    let m = parse("<13>1 2026-03-07T02:21:00.004Z h app - ID47 [ex@32473 a=\"b\"] text", at("2026-03-07T02:21:01Z"));
    assert_eq!((m.msgid, m.msg), (Some("ID47"), "text"));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-03-07T02:21:00.004Z");
}

#[test]
fn rfc3164_with_and_without_pri() {
    let m =
        parse("<86>Feb 28 10:01:17 hsm-2-1-2-6 sshd[2210]: Accepted password for admin", at("2026-02-28T10:01:18Z"));
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!((m.facility, m.severity), (Some(10), Some(6)));
    assert_eq!((m.hostname, m.appname, m.procid.as_deref()), (Some("hsm-2-1-2-6"), Some("sshd"), Some("2210")));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-02-28T10:01:17Z");
    assert_eq!(m.msg, "Accepted password for admin");

    let m = parse("Mar  1 12:04:00 hsm-2-1-2-6 sshd[2231]: Failed password", at("2026-03-01T12:04:01Z"));
    assert_eq!((m.format, m.facility, m.severity), (Format::Rfc3164, None, None));
    assert_eq!(m.msg, "Failed password");
}

#[test]
fn rfc3164_message_starting_with_brackets_is_kept_whole() {
    let m = parse("<6>Mar  7 02:21:00 hsm-2-1-2-6 kernel: [HSM] ALM0010: Hard tamper", at("2026-03-07T02:21:01Z"));
    assert_eq!(m.msg, "[HSM] ALM0010: Hard tamper");
    let m = parse("<6>Mar  7 02:21:00 hsm-2-1-2-6 kernel[12]: [HSM] ALM0010: Hard tamper", at("2026-03-07T02:21:01Z"));
    assert_eq!((m.procid.as_deref(), m.msg), (Some("12"), "[HSM] ALM0010: Hard tamper"));
}

#[test]
fn rfc3164_tag_with_a_space_before_the_pid() {
    let m = parse(
        "<172>Feb 28 11:20:40 hsm-2-1-2-5 lunash [6021]: HSM Admin Login: incorrect password",
        at("2026-02-28T11:20:41Z"),
    );
    assert_eq!((m.hostname, m.appname, m.procid.as_deref()), (Some("hsm-2-1-2-5"), Some("lunash"), Some("6021")));
    assert_eq!(m.msg, "HSM Admin Login: incorrect password");
}

#[test]
fn a_pri_with_an_invalid_time_is_rfc3164_all_message() {
    let m = parse("<13>Feb 30 10:00:00 h a: x", at("2026-03-01T12:05:00Z"));
    assert_eq!((m.format, m.timestamp, m.msg), (Format::Rfc3164, None, "Feb 30 10:00:00 h a: x"));
}

#[test]
fn a_pri_with_free_text_is_rfc3164_all_message() {
    let m = parse("<13>hello from a test script", at("2026-03-01T12:05:00Z"));
    assert_eq!((m.format, m.facility, m.severity), (Format::Rfc3164, Some(1), Some(5)));
    assert_eq!((m.hostname, m.appname, m.timestamp), (None, None, None));
    assert_eq!(m.msg, "hello from a test script");
}

#[test]
fn year_rule_applies_to_rfc3164() {
    let m = parse("<174>Dec 31 23:59:58 hsm-2-1-2-6 lunash[4312]: x", at("2027-01-01T00:00:03Z"));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2026-12-31T23:59:58Z");
    let m = parse("<174>Feb 29 12:05:01 hsm-4-1-1-9 lunash[4313]: x", at("2028-03-01T00:00:10Z"));
    assert_eq!(m.timestamp.unwrap().to_rfc3339(), "2028-02-29T12:05:01Z");
}

#[test]
fn luna_file_layout() {
    let m = parse(
        "2012 Feb 29 12:05:01 myLuna  local5 info  lunash [1234]: info : 0 : Command: hsm show  : admin : Console",
        at("2026-03-01T12:00:00Z"),
    );
    assert_eq!(m.format, Format::LunaFile);
    assert_eq!(m.msg, "info : 0 : Command: hsm show  : admin : Console");
}

#[test]
fn what_is_not_syslog_is_unparsed_and_whole() {
    for line in ["Command Result : 0 (Success)", "<999>1 2026-03-07T02:21:00Z h a - - - x", "", "   ", "<>", "<13"] {
        let m = parse(line, at("2026-03-01T12:05:00Z"));
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

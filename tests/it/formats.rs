//! Every syslog format, sent over TCP and read back with `hsmwatch query --json`, compared field by field.

use chrono::{Datelike, Duration, NaiveDate, Utc};

use crate::support::{assert_fields, find, send_tcp, Fields, TestServer};

async fn store_lines(lines: &[&[u8]]) -> Vec<Fields> {
    let server = TestServer::start().await;
    let mut stream = Vec::new();
    for line in lines {
        stream.extend_from_slice(line);
        stream.push(b'\n');
    }
    send_tcp(server.tcp, &stream, false).await;
    server.stop_and_query().await
}

/// Every field of an event whose values do not depend on the moment of the test.
fn stable(event: &Fields) -> Fields {
    let mut fields = event.clone();
    let source = fields.remove("log.source.address").expect("log.source.address is always set");
    assert!(source.starts_with("127.0.0.1:"), "{source}");
    let created = fields.remove("event.created").expect("event.created is always set");
    assert!(created.ends_with('Z') && created.starts_with(&Utc::now().year().to_string()[..3]), "{created}");
    fields
}

fn expect(pairs: &[(&str, &str)]) -> Fields {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5424_rfc3164_luna_file_and_unparsed_decoded_field_by_field() {
    let l5424 = "<174>1 2026-03-02T08:15:22.512934+00:00 hsm-4-1-1-9 lunash 7781 - - info : 0 : Lush user login : audit : 172.16.106.20/40112";
    let l5424_sd = "<6>1 2026-03-07T03:21:00.004+01:00 hsm-2-1-2-6 kernel - ID7 [origin ip=\"10.0.0.1\"] k7pf0: [HSM] RTC: external tamper latched";
    let l3164 =
        "<86>Feb 28 10:01:17 hsm-2-1-2-6 sshd[2210]: Accepted password for admin from 192.168.10.100 port 51286 ssh2";
    let l3164_nopri =
        "Mar  1 12:04:00 hsm-2-1-2-6 sshd[2231]: Failed password for admin from 10.0.106.107 port 51999 ssh2";
    let luna =
        "2012 Feb 29 12:05:01 myLuna  local5 info  lunash [1234]: info : 0 : Command: hsm show  : admin : Console";
    let unparsed = "Command Result : 0 (Success)";
    let events = store_lines(&[
        l5424.as_bytes(),
        l5424_sd.as_bytes(),
        l3164.as_bytes(),
        l3164_nopri.as_bytes(),
        luna.as_bytes(),
        unparsed.as_bytes(),
    ])
    .await;
    assert_eq!(events.len(), 6);

    assert_eq!(
        stable(find(&events, l5424)),
        expect(&[
            ("@timestamp", "2026-03-02T08:15:22.512934Z"),
            ("event.action", "appliance.login"),
            ("event.category", "authentication"),
            ("event.dataset", "luna.lunash"),
            ("event.original", l5424),
            ("event.outcome", "success"),
            ("host.name", "hsm-4-1-1-9"),
            ("hsm.lunalog.code", "0"),
            ("hsm.lunalog.severity", "info"),
            ("hsm.session", "network"),
            ("log.syslog.appname", "lunash"),
            ("log.syslog.facility.code", "21"),
            ("log.syslog.facility.name", "local5"),
            ("log.syslog.format", "rfc5424"),
            ("log.syslog.procid", "7781"),
            ("log.syslog.severity.code", "6"),
            ("log.syslog.severity.name", "info"),
            ("message", "info : 0 : Lush user login : audit : 172.16.106.20/40112"),
            ("source.ip", "172.16.106.20"),
            ("source.port", "40112"),
            ("user.name", "audit"),
        ])
    );
    assert_eq!(
        stable(find(&events, l5424_sd)),
        expect(&[
            ("@timestamp", "2026-03-07T02:21:00.004Z"),
            ("event.action", "hsm.tamper"),
            ("event.category", "intrusion_detection"),
            ("event.dataset", "luna.kernel"),
            ("event.original", l5424_sd),
            ("host.name", "hsm-2-1-2-6"),
            ("log.syslog.appname", "kernel"),
            ("log.syslog.facility.code", "0"),
            ("log.syslog.facility.name", "kern"),
            ("log.syslog.format", "rfc5424"),
            ("log.syslog.msgid", "ID7"),
            ("log.syslog.severity.code", "6"),
            ("log.syslog.severity.name", "info"),
            ("message", "k7pf0: [HSM] RTC: external tamper latched"),
        ])
    );
    let ssh = stable(find(&events, l3164));
    let year = ssh["@timestamp"][..4].to_owned();
    assert_eq!(
        ssh,
        expect(&[
            ("@timestamp", &format!("{year}-02-28T10:01:17Z")),
            ("event.action", "ssh.login"),
            ("event.category", "authentication"),
            ("event.dataset", "luna.sshd"),
            ("event.original", l3164),
            ("event.outcome", "success"),
            ("host.name", "hsm-2-1-2-6"),
            ("log.syslog.appname", "sshd"),
            ("log.syslog.facility.code", "10"),
            ("log.syslog.facility.name", "authpriv"),
            ("log.syslog.format", "rfc3164"),
            ("log.syslog.procid", "2210"),
            ("log.syslog.severity.code", "6"),
            ("log.syslog.severity.name", "info"),
            ("message", "Accepted password for admin from 192.168.10.100 port 51286 ssh2"),
            ("source.ip", "192.168.10.100"),
            ("source.port", "51286"),
            ("user.name", "admin"),
        ])
    );
    let nopri = stable(find(&events, l3164_nopri));
    assert_fields(
        &nopri,
        &[
            ("log.syslog.format", Some("rfc3164")),
            ("log.syslog.facility.code", None),
            ("log.syslog.severity.code", None),
            ("log.syslog.procid", Some("2231")),
        ],
    );
    assert_eq!(
        stable(find(&events, luna)),
        expect(&[
            ("@timestamp", "2012-02-29T12:05:01Z"),
            ("event.action", "lunash.command"),
            ("event.category", "configuration"),
            ("event.dataset", "luna.lunash"),
            ("event.original", luna),
            ("event.outcome", "success"),
            ("host.name", "myLuna"),
            ("hsm.command", "hsm show"),
            ("hsm.lunalog.code", "0"),
            ("hsm.lunalog.severity", "info"),
            ("hsm.session", "console"),
            ("log.syslog.appname", "lunash"),
            ("log.syslog.facility.code", "21"),
            ("log.syslog.facility.name", "local5"),
            ("log.syslog.format", "luna_file"),
            ("log.syslog.procid", "1234"),
            ("log.syslog.severity.code", "6"),
            ("log.syslog.severity.name", "info"),
            ("message", "info : 0 : Command: hsm show  : admin : Console"),
            ("user.name", "admin"),
        ])
    );
    let raw = find(&events, unparsed);
    assert_eq!(raw["@timestamp"], raw["event.created"], "an unparsed line takes its time of receipt");
    assert_eq!(
        stable(raw).into_iter().filter(|(k, _)| k != "@timestamp").collect::<Fields>(),
        expect(&[
            ("event.dataset", "syslog"),
            ("event.original", unparsed),
            ("host.name", "127.0.0.1"),
            ("log.syslog.format", "unparsed"),
            ("message", unparsed),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_and_nul_free_binary_are_kept() {
    let line: &[u8] = b"<13>Mar  1 12:00:00 h app: caf\xe9 \xff\xfe end";
    let events = store_lines(&[line]).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event.original"], "<13>Mar  1 12:00:00 h app: caf\\xe9 \\xff\\xfe end");
    assert_eq!(events[0]["log.syslog.format"], "rfc3164");
}

/// The year rule through the network: a 3164 date without a year is placed in the year nearest to its receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc3164_year_is_nearest_to_receipt() {
    let today = Utc::now().date_naive();
    // Dates spread over the year around today; each resolves to the year that puts it nearest to now.
    let dates: Vec<NaiveDate> = [-170i64, -40, -2, 3, 40, 170].iter().map(|d| today + Duration::days(*d)).collect();
    let lines: Vec<String> =
        dates.iter().map(|d| format!("<13>{} 12:00:00 h app: dated {d}", d.format("%b %e"))).collect();
    let events = store_lines(&lines.iter().map(|l| l.as_bytes()).collect::<Vec<_>>()).await;
    for (date, line) in dates.iter().zip(&lines) {
        let stored = &find(&events, line)["@timestamp"];
        assert_eq!(stored, &format!("{}T12:00:00Z", date.format("%Y-%m-%d")), "{line}");
    }
}

/// Zone-less times in the zone of the sender: the listener's `timezone`, or the one of the sender's network in
/// `listen.timezones` (the most specific network wins); times with an offset as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_less_times_are_read_in_the_senders_zone() {
    let server = TestServer::start_with(64 * 1024, |config| {
        config.listen.tcp[0].timezone = chrono_tz::Europe::Berlin;
        let zone =
            |network: &str, timezone| hsmwatch::config::NetworkZone { network: network.parse().unwrap(), timezone };
        config.listen.timezones =
            vec![zone("127.0.0.0/8", chrono_tz::Asia::Tokyo), zone("127.0.0.2/32", chrono_tz::America::New_York)];
    })
    .await;
    let today = Utc::now().date_naive();
    let lines = [
        "2026 Jul 10 12:00:00 hsm-1 local5 info lunash [1]: luna file layout".to_owned(),
        format!("<174>{} 12:00:00 hsm-1 lunash[1]: rfc 3164", today.format("%b %e")),
        "<174>1 2026-07-10T12:00:00Z hsm-1 lunash 1 - - rfc 5424".to_owned(),
    ];
    let send_from = |from: &'static str| {
        let stream: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let tcp = server.tcp;
        std::thread::spawn(move || {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.bind(&format!("{from}:0").parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
            socket.connect(&tcp.into()).unwrap();
            std::io::Write::write_all(&mut std::net::TcpStream::from(socket), stream.as_bytes()).unwrap();
        })
    };
    send_from("127.0.0.2").join().unwrap();
    send_from("127.0.0.3").join().unwrap();
    let events = server.stop_and_query().await;
    assert_eq!(events.len(), 6);
    let at = |from: &str, message: &str| {
        let event = events
            .iter()
            .find(|e| e["log.source.address"].starts_with(&format!("{from}:")) && e["message"] == message)
            .unwrap_or_else(|| panic!("{from} {message}: {events:#?}"));
        event["@timestamp"].clone()
    };
    let day = today.format("%Y-%m-%d");
    // 127.0.0.2 is in New York: UTC-4 in July; today at noon there is 16:00 or 17:00 UTC (summer or winter time).
    assert_eq!(at("127.0.0.2", "luna file layout"), "2026-07-10T16:00:00Z");
    let noon =
        chrono::TimeZone::from_local_datetime(&chrono_tz::America::New_York, &today.and_hms_opt(12, 0, 0).unwrap());
    let noon_utc = noon.earliest().unwrap().with_timezone(&Utc);
    assert_eq!(at("127.0.0.2", "rfc 3164"), noon_utc.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    // 127.0.0.3 only in 127.0.0.0/8: Tokyo (UTC+9, no summer time), over the listener's Berlin.
    assert_eq!(at("127.0.0.3", "luna file layout"), "2026-07-10T03:00:00Z");
    assert_eq!(at("127.0.0.3", "rfc 3164"), format!("{day}T03:00:00Z"));
    for from in ["127.0.0.2", "127.0.0.3"] {
        assert_eq!(at(from, "rfc 5424"), "2026-07-10T12:00:00Z");
    }
}

//! Relay conformance: every RFC 3164 and RFC 5424 case of the corpus goes through a real relay — rsyslog with each
//! stock forwarding template over TCP (octet counting and LF) and UDP, syslog-ng with its `network()` (BSD) and
//! `syslog()` (RFC 5424) destinations, both relays over mutual TLS (RFC 5425) presenting a certificate hsmwatch
//! requires, and the two relay snippets `packaging/` ships, as shipped — into the real hsmwatch binary, and must be
//! stored as the same event it gives when sent directly.
//!
//! What a relay legitimately rewrites may differ: `event.original`, `log.syslog.format`, `log.source.address`,
//! `event.created`, and the time as far as the relay wrote it (the year it gave an RFC 3164 time, the fraction a
//! whole-second format drops). Nothing else may: not the action, not any decoded field, not `message`, not
//! `log.syslog.procid`. Two exceptions, both the relay's by the RFCs: a line without a header host, where a relay names
//! the host it received it from (so the host and what the relay read as a tag are its own), and a line without a PRI,
//! which a relay gives the default `<13>` (user.notice, RFC 3164 §4.3.3).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Utc};
use hsmwatch::decode::{Decoders, Origin};
use hsmwatch::ingest::frame_to_event;
use hsmwatch::pack::RuleSource;
use serde_json::Value;

use crate::certs::{write_pair, Ca};
use crate::relay_peers::{
    connect_from, rsyslog, rsyslog_tcp_input, shipped_rsyslog_config, shipped_syslog_ng_config, syslog_ng, HSM_ADDRESS,
};
use crate::support::{free_port, query_json, Fields, ServeProcess};

/// The ways a line reaches hsmwatch in these tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// rsyslog `omfwd` with a stock template over TCP (octet-counted or LF) or UDP.
    Rsyslog { template: &'static str, transport: Transport },
    /// `packaging/rsyslog-relay.conf` as shipped.
    ShippedRsyslog,
    /// syslog-ng's `network()` destination: BSD format over TCP.
    SyslogNgNetwork,
    /// `packaging/syslog-ng-relay.conf` as shipped: `syslog()`, RFC 5424 over TCP.
    ShippedSyslogNg,
    /// rsyslog `omfwd` with its OpenSSL stream driver: RFC 5424, octet-counted, over mutual TLS (RFC 5425).
    RsyslogTls,
    /// syslog-ng's `syslog()` destination over mutual TLS (RFC 5425).
    SyslogNgTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    TcpOctetCounted,
    TcpLf,
    Udp,
}

impl Route {
    /// Whether the relay writes times without a year (the RFC 3164 form), so the year is the relay's guess.
    fn writes_yearless_times(self) -> bool {
        matches!(self, Route::Rsyslog { template: "RSYSLOG_TraditionalForwardFormat", .. } | Route::SyslogNgNetwork)
    }

    /// Whether the relay reaches hsmwatch over mutual TLS, presenting a certificate of its own.
    fn over_tls(self) -> bool {
        matches!(self, Route::RsyslogTls | Route::SyslogNgTls)
    }

    /// Whether the relay is syslog-ng, which reads RFC 3164 and RFC 5424 on separate sources.
    fn is_syslog_ng(self) -> bool {
        matches!(self, Route::SyslogNgNetwork | Route::ShippedSyslogNg | Route::SyslogNgTls)
    }

    /// Whether the relay filters senders by address (the shipped snippets list the HSMs).
    fn filters_senders(self) -> bool {
        matches!(self, Route::ShippedRsyslog | Route::ShippedSyslogNg)
    }
}

/// One corpus case and the event it gives sent directly.
struct Case {
    id: String,
    wire: String,
    rfc3164: bool,
    direct: BTreeMap<&'static str, String>,
    /// The header named no host, so `host.name` is the sender's address.
    hostless: bool,
    /// The line has no PRI, so a relay gives it its default facility and severity.
    priless: bool,
}

fn corpus_cases() -> Vec<Case> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let decoders = Decoders::load(&RuleSource::Dir(root.join("rules"))).expect("shipped decoders load");
    let text = std::fs::read_to_string(root.join("tests/data/luna.jsonl")).expect("corpus readable");
    let mut cases = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let format = case["expect"]["log.syslog.format"].as_str().unwrap();
        if format != "rfc3164" && format != "rfc5424" {
            continue;
        }
        let wire = case["wire"].as_str().unwrap().to_owned();
        let origin = Origin {
            received: case["received"].as_str().unwrap().parse().unwrap(),
            source_address: "192.0.2.10:514".into(),
            peer_ip: Some("192.0.2.10".parse().unwrap()),
            default_host: None,
            time_rules: Default::default(),
        };
        let direct = frame_to_event(wire.as_bytes(), false, &origin, &decoders).all_fields();
        let hostless = direct.get("host.name").map(String::as_str) == Some("192.0.2.10");
        let (id, priless) = (case["id"].as_str().unwrap().to_owned(), !wire.starts_with('<'));
        cases.push(Case { id, wire, rfc3164: format == "rfc3164", direct, hostless, priless });
    }
    cases
}

/// The relay's configuration for `route`, listening on `listen`, forwarding to hsmwatch on `forward` (with the
/// certificates of a TLS route in `dir`).
fn rsyslog_config(route: Route, dir: &Path, listen: u16, forward: u16) -> String {
    let (template, transport) = match route {
        Route::Rsyslog { template, transport } => (template, transport),
        Route::ShippedRsyslog => return shipped_rsyslog_config(listen, forward),
        Route::RsyslogTls => return rsyslog_tls_config(&Certificates::in_dir(dir), listen, forward),
        _ => unreachable!("not an rsyslog route"),
    };
    let (protocol, framing) = match transport {
        Transport::TcpOctetCounted => ("tcp", " TCP_Framing=\"octet-counted\""),
        Transport::TcpLf => ("tcp", ""),
        Transport::Udp => ("udp", ""),
    };
    format!(
        "{}action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{forward}\" protocol=\"{protocol}\"{framing} \
         template=\"{template}\")\n",
        rsyslog_tcp_input(listen)
    )
}

/// rsyslog forwarding RFC 5424 lines, octet-counted, over TLS with its OpenSSL driver: it checks hsmwatch's
/// certificate against the server CA and the name `localhost`, and presents the relay's certificate.
fn rsyslog_tls_config(certificates: &Certificates, listen: u16, forward: u16) -> String {
    let Certificates { server_ca, relay_cert, relay_key, .. } = certificates;
    format!(
        "global(DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" \
         DefaultNetstreamDriverKeyFile=\"{}\")\n{}action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{forward}\" \
         protocol=\"tcp\" TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\" \
         StreamDriver=\"ossl\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" \
         StreamDriverPermittedPeers=\"localhost\")\n",
        server_ca.display(),
        relay_cert.display(),
        relay_key.display(),
        rsyslog_tcp_input(listen)
    )
}

/// The relay's configuration for `route`, listening on `listen` (BSD) and `listen_5424` (RFC 5424), forwarding to
/// hsmwatch on `forward`.
fn syslog_ng_config(route: Route, dir: &Path, listen: u16, listen_5424: u16, forward: u16) -> String {
    let certificates = Certificates::in_dir(dir);
    let destination = match route {
        Route::SyslogNgNetwork => format!(r#"network("127.0.0.1" port({forward}) transport("tcp"))"#),
        Route::SyslogNgTls => format!(
            r#"syslog("127.0.0.1" port({forward}) transport("tls")
    tls(ca-file("{}") cert-file("{}") key-file("{}") peer-verify(required-trusted)))"#,
            certificates.server_ca.display(),
            certificates.relay_cert.display(),
            certificates.relay_key.display()
        ),
        Route::ShippedSyslogNg => return shipped_syslog_ng_config(dir, listen, listen_5424, forward),
        _ => unreachable!("not a syslog-ng route"),
    };
    format!(
        r#"source s_hsm {{
  network(ip("127.0.0.1") port({listen}) transport("tcp") keep-hostname(yes));
  syslog(ip("127.0.0.1") port({listen_5424}) transport("tcp") keep-hostname(yes));
}};
destination d_hsmwatch {{ {destination}; }};
log {{ source(s_hsm); destination(d_hsmwatch); flags(flow-control); }};
"#
    )
}

/// The files of a TLS route in the test's directory: hsmwatch's certificate from the server CA, and the relay's from
/// the HSM CA, which hsmwatch requires of its clients.
struct Certificates {
    server_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_ca: PathBuf,
    relay_cert: PathBuf,
    relay_key: PathBuf,
}

/// The common name of the relay's certificate, which hsmwatch records on each line the relay sends.
const RELAY_NAME: &str = "relay-1.example.net";

impl Certificates {
    /// Where the files are (or go) in `dir`.
    fn in_dir(dir: &Path) -> Certificates {
        Certificates {
            server_ca: dir.join("server-ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_ca: dir.join("client-ca.pem"),
            relay_cert: dir.join("relay.pem"),
            relay_key: dir.join("relay.key"),
        }
    }

    /// Makes both CAs and both certificates in `dir`.
    fn make(dir: &Path) -> Certificates {
        let (server_ca, client_ca) = (Ca::new("hsmwatch server CA"), Ca::new("HSM CA"));
        server_ca.write(dir, "server-ca.pem");
        client_ca.write(dir, "client-ca.pem");
        write_pair(dir, "server", server_ca.issue(&["localhost", "127.0.0.1"]));
        write_pair(dir, "relay", client_ca.issue_named(RELAY_NAME, &[RELAY_NAME], 1));
        Certificates::in_dir(dir)
    }
}

/// hsmwatch for `route`: on plain TCP and UDP, or for a TLS route on a mutual-TLS listener only (its `port`), with
/// the certificates made in `dir`.
fn start_hsmwatch(dir: &Path, route: Route) -> ServeProcess {
    if !route.over_tls() {
        return ServeProcess::start(dir);
    }
    let certificates = Certificates::make(dir);
    let tls = free_port();
    let config = format!(
        "listen:\n  tls:\n    - address: 127.0.0.1:{tls}\n      cert_file: {}\n      key_file: {}\n      \
         client_ca_file: {}\n",
        certificates.server_cert.display(),
        certificates.server_key.display(),
        certificates.client_ca.display()
    );
    ServeProcess::start_with_config(dir, &config, &[tls])
}

/// Sends `lines` on one TCP connection from `from`, each ending in LF, or octet-counted.
fn send_lines(to: u16, from: &str, lines: &[&str], octet_counted: bool) {
    let mut stream = connect_from(from, to);
    let mut bytes = Vec::new();
    for line in lines {
        if octet_counted {
            bytes.extend_from_slice(format!("{} {line}", line.len()).as_bytes());
        } else {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
    }
    stream.write_all(&bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
}

/// Waits until hsmwatch has stored `count` events (or 30 s passed) and returns them.
fn stored(db: &Path, count: usize) -> Vec<Fields> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = query_json(db, &[]);
        if events.len() >= count || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Why `relayed` is not the event `case` gives sent directly, field by field; empty when it is.
fn differences(case: &Case, relayed: &Fields, route: Route) -> Vec<String> {
    // The last two belong to the relay's TLS connection, not to the line (checked on their own).
    const REWRITTEN: [&str; 7] = [
        "event.original",
        "log.syslog.format",
        "log.source.address",
        "event.created",
        "@timestamp",
        "tls.client.subject",
        "tls.client.x509.alternative_names",
    ];
    let relay_named = |name: &str| case.hostless && ["host.name", "log.syslog.appname", "message"].contains(&name);
    let relay_pri = |name: &str, value: Option<&String>| {
        let default =
            [("facility.code", "1"), ("facility.name", "user"), ("severity.code", "5"), ("severity.name", "notice")];
        case.priless
            && default
                .iter()
                .any(|(key, v)| name.strip_prefix("log.syslog.") == Some(key) && value.is_some_and(|x| x == v))
    };
    let mut problems = Vec::new();
    let names: std::collections::BTreeSet<&str> =
        case.direct.keys().copied().chain(relayed.keys().map(String::as_str)).collect();
    for name in names {
        if REWRITTEN.contains(&name) || relay_named(name) {
            continue;
        }
        let (want, got) = (case.direct.get(name), relayed.get(name));
        if want != got && !(want.is_none() && relay_pri(name, got)) {
            problems.push(format!("{name}: sent directly {want:?}, relayed {got:?}"));
        }
    }
    if !case.hostless {
        if let Some(problem) = time_difference(case, relayed, route) {
            problems.push(problem);
        }
    }
    problems
}

/// The relayed `@timestamp` must be the direct one, up to what the relay wrote: whole seconds where it wrote no
/// fraction, and its own year where the line or the relay's format had none.
fn time_difference(case: &Case, relayed: &Fields, route: Route) -> Option<String> {
    let parse = |text: &str| DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).ok();
    let want_text = &case.direct["@timestamp"];
    let got_text = relayed.get("@timestamp")?;
    let (mut want, got) = (parse(want_text)?, parse(got_text)?);
    if !got_text.contains('.') {
        want = chrono::DurationRound::duration_trunc(want, chrono::TimeDelta::seconds(1)).ok()?;
    }
    if case.rfc3164 || route.writes_yearless_times() {
        // A relay that gave `Feb 29` a year without one may have moved it to `Mar 1` (syslog-ng does).
        let moved = (want.month(), want.day(), got.month(), got.day()) == (2, 29, 3, 1);
        let date = if moved { want.date_naive().succ_opt()? } else { want.date_naive() };
        want = date.and_time(want.time()).and_utc().with_year(got.year()).unwrap_or(want);
    }
    (want != got).then(|| format!("@timestamp: sent directly {want_text}, relayed {got_text}"))
}

/// Pairs each case with the relayed event of the same line. A relay rewrites the header, never the end of the
/// message, so the relayed line ends with the last 40 characters of the case's message; among several, the one that
/// differs least. Cases left unpaired (a relay that read a header-less line's first words as its host and tag) try
/// again with the last 12 characters.
fn pair<'e>(cases: &[Case], events: &'e [Fields], route: Route) -> Vec<Option<&'e Fields>> {
    let mut used = vec![false; events.len()];
    let mut paired: Vec<Option<&Fields>> = vec![None; cases.len()];
    // Exact pairs first, so that a line that arrived intact is never taken by a case that did not.
    for (tail_chars, most_differences) in [(40, 0), (40, usize::MAX), (12, usize::MAX)] {
        for (case, slot) in cases.iter().zip(paired.iter_mut()).filter(|(_, slot)| slot.is_none()) {
            let message = &case.direct["message"];
            let tail = &message[message.char_indices().rev().nth(tail_chars - 1).map_or(0, |(at, _)| at)..];
            let ends_with_tail =
                |event: &Fields| event.get("event.original").is_some_and(|o| o.trim_end().ends_with(tail));
            let best = events
                .iter()
                .enumerate()
                .filter(|(at, event)| !used[*at] && ends_with_tail(event))
                .map(|(at, event)| (at, event, differences(case, event, route).len()))
                .filter(|(_, _, count)| *count <= most_differences)
                .min_by_key(|(_, _, count)| *count);
            if let Some((at, event, _)) = best {
                used[at] = true;
                *slot = Some(event);
            }
        }
    }
    paired
}

/// Sends every case through `route` into a real hsmwatch and checks what it stored.
fn conformance(route: Route) {
    let cases = corpus_cases();
    let dir = tempfile::tempdir().unwrap();
    let server = start_hsmwatch(dir.path(), route);
    let (listen, listen_5424) = (free_port(), free_port());
    if route == Route::RsyslogTls {
        let driver = Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so");
        assert!(driver.exists(), "{} is missing: Debian's rsyslog-openssl (tests/peers/install.sh)", driver.display());
    }
    let relay = if route.is_syslog_ng() {
        syslog_ng(dir.path(), &syslog_ng_config(route, dir.path(), listen, listen_5424, server.port), listen)
    } else {
        rsyslog(dir.path(), &rsyslog_config(route, dir.path(), listen, server.port), listen)
    };
    let from = if route.filters_senders() { HSM_ADDRESS } else { "127.0.0.1" };
    if route.filters_senders() {
        // A sender the snippet does not list is not forwarded (sent first, so it would be stored by the end).
        send_lines(listen, "127.0.0.3", &["<13>Mar  1 12:00:00 not-an-hsm app: must not be forwarded"], false);
    }
    let lines =
        |rfc3164: bool| cases.iter().filter(|c| c.rfc3164 == rfc3164).map(|c| c.wire.as_str()).collect::<Vec<_>>();
    if route.is_syslog_ng() {
        // syslog-ng reads RFC 3164 on its network() source and RFC 5424 (octet-counted) on its syslog() source.
        send_lines(listen, from, &lines(true), false);
        send_lines(listen_5424, from, &lines(false), true);
    } else {
        let all: Vec<&str> = cases.iter().map(|c| c.wire.as_str()).collect();
        send_lines(listen, from, &all, false);
    }
    let events = stored(&server.db, cases.len());
    let relay_log = relay.log();
    drop(relay);
    server.signal("TERM");
    let (code, stderr) = server.wait();
    assert_eq!(code, Some(0), "hsmwatch: {stderr}");

    let mut failures = Vec::new();
    for (case, relayed) in cases.iter().zip(pair(&cases, &events, route)) {
        match relayed {
            None => failures.push(format!("{}: not stored (or unrecognisable): {:?}", case.id, case.wire)),
            Some(relayed) => {
                let problems = differences(case, relayed, route);
                if !problems.is_empty() {
                    failures.push(format!(
                        "{} ({:?}\n   arrived as {:?}):\n    {}",
                        case.id,
                        case.wire,
                        relayed.get("event.original"),
                        problems.join("\n    ")
                    ));
                }
            }
        }
    }
    let foreign = events.iter().filter(|e| e.get("host.name").map(String::as_str) == Some("not-an-hsm")).count();
    println!("{route:?}: {} of {} corpus cases decode as sent directly", cases.len() - failures.len(), cases.len());
    assert_eq!(foreign, 0, "{route:?} forwarded a sender its filter does not list");
    assert_eq!(
        events.len(),
        cases.len(),
        "{route:?}: stored {} events for {} lines\n{relay_log}",
        events.len(),
        cases.len()
    );
    if route.over_tls() {
        let unnamed: Vec<_> = events
            .iter()
            .filter(|e| !e.get("tls.client.subject").is_some_and(|subject| subject.contains(RELAY_NAME)))
            .collect();
        assert!(unnamed.is_empty(), "{route:?}: events without the relay's certificate: {unnamed:#?}");
    }
    assert!(
        failures.is_empty(),
        "{route:?}: {} of {} corpus cases differ from the direct decode:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn rsyslog_forward_format_tcp_octet_counted() {
    conformance(Route::Rsyslog { template: "RSYSLOG_ForwardFormat", transport: Transport::TcpOctetCounted });
}

#[test]
fn rsyslog_forward_format_tcp_lf() {
    conformance(Route::Rsyslog { template: "RSYSLOG_ForwardFormat", transport: Transport::TcpLf });
}

#[test]
fn rsyslog_forward_format_udp() {
    conformance(Route::Rsyslog { template: "RSYSLOG_ForwardFormat", transport: Transport::Udp });
}

#[test]
fn rsyslog_syslog_protocol23_format_tcp_octet_counted() {
    conformance(Route::Rsyslog { template: "RSYSLOG_SyslogProtocol23Format", transport: Transport::TcpOctetCounted });
}

#[test]
fn rsyslog_syslog_protocol23_format_tcp_lf() {
    conformance(Route::Rsyslog { template: "RSYSLOG_SyslogProtocol23Format", transport: Transport::TcpLf });
}

#[test]
fn rsyslog_syslog_protocol23_format_udp() {
    conformance(Route::Rsyslog { template: "RSYSLOG_SyslogProtocol23Format", transport: Transport::Udp });
}

#[test]
fn rsyslog_traditional_forward_format_tcp_octet_counted() {
    conformance(Route::Rsyslog { template: "RSYSLOG_TraditionalForwardFormat", transport: Transport::TcpOctetCounted });
}

#[test]
fn rsyslog_traditional_forward_format_tcp_lf() {
    conformance(Route::Rsyslog { template: "RSYSLOG_TraditionalForwardFormat", transport: Transport::TcpLf });
}

#[test]
fn rsyslog_traditional_forward_format_udp() {
    conformance(Route::Rsyslog { template: "RSYSLOG_TraditionalForwardFormat", transport: Transport::Udp });
}

#[test]
fn the_shipped_rsyslog_relay_snippet() {
    conformance(Route::ShippedRsyslog);
}

#[test]
fn syslog_ng_network_destination() {
    conformance(Route::SyslogNgNetwork);
}

#[test]
fn the_shipped_syslog_ng_relay_snippet() {
    conformance(Route::ShippedSyslogNg);
}

#[test]
fn rsyslog_over_mutual_tls() {
    conformance(Route::RsyslogTls);
}

#[test]
fn syslog_ng_over_mutual_tls() {
    conformance(Route::SyslogNgTls);
}

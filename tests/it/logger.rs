//! util-linux `logger` as a real client, over TCP (octet counting and LF) and UDP, RFC 5424 and RFC 3164.

use std::process::Command;

use crate::support::{assert_fields, require_program, TestServer};

fn logger(port: u16, args: &[&str], text: &str) {
    let status = Command::new("logger")
        .args(["-n", "127.0.0.1", "-P", &port.to_string(), "-t", "lunash", "--id=4242", "-p", "local5.info"])
        .args(args)
        .arg(text)
        .status()
        .expect("run logger");
    assert!(status.success(), "logger {args:?} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_over_tcp_and_udp() {
    require_program("logger");
    let server = TestServer::start().await;
    let (tcp, udp) = (server.tcp.port(), server.udp.port());
    logger(tcp, &["-T", "--octet-count", "--rfc5424"], "tcp octet 5424");
    logger(tcp, &["-T", "--rfc5424"], "tcp lf 5424");
    logger(tcp, &["-T", "--octet-count", "--rfc3164"], "tcp octet 3164");
    logger(tcp, &["-T", "--rfc3164"], "tcp lf 3164");
    logger(udp, &["-d", "--rfc5424"], "udp 5424");
    logger(udp, &["-d", "--rfc3164"], "udp 3164");
    let events = server.stop_and_query().await;
    assert_eq!(events.len(), 6, "{events:#?}");
    for (text, format) in [
        ("tcp octet 5424", "rfc5424"),
        ("tcp lf 5424", "rfc5424"),
        ("tcp octet 3164", "rfc3164"),
        ("tcp lf 3164", "rfc3164"),
        ("udp 5424", "rfc5424"),
        ("udp 3164", "rfc3164"),
    ] {
        let event = events
            .iter()
            .find(|e| e["message"] == text)
            .unwrap_or_else(|| panic!("no event with message {text:?}: {events:#?}"));
        assert_fields(
            event,
            &[
                ("log.syslog.format", Some(format)),
                ("log.syslog.appname", Some("lunash")),
                ("log.syslog.procid", Some("4242")),
                ("log.syslog.facility.name", Some("local5")),
                ("log.syslog.severity.name", Some("info")),
                ("event.dataset", Some("syslog")),
            ],
        );
        assert!(event.contains_key("host.name"));
    }
}

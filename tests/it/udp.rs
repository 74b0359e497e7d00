//! UDP ingest: one datagram is one message.

use crate::support::{assert_fields, find, send_udp, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_are_messages() {
    let server = TestServer::start_with_max_frame(200).await;
    let long = format!("<13>Mar  1 12:00:00 h app: {}", "y".repeat(1000));
    send_udp(
        server.udp,
        &[
            b"<86>Feb 28 10:01:17 hsm-2-1-2-6 sshd[2210]: Accepted password for admin from 192.168.10.100 port 51286 ssh2",
            b"<174>1 2026-03-02T08:15:22.512934+00:00 hsm-4-1-1-9 lunash 7781 - - info : 0 : Lush user login : audit : 172.16.106.20/40112\n",
            long.as_bytes(),
        ],
    );
    let udp = server.udp;
    let events = server.stop_and_query().await;
    assert_eq!(events.len(), 3);
    let ssh = find(
        &events,
        "<86>Feb 28 10:01:17 hsm-2-1-2-6 sshd[2210]: Accepted password for admin from 192.168.10.100 port 51286 ssh2",
    );
    assert_fields(
        ssh,
        &[
            ("log.syslog.format", Some("rfc3164")),
            ("log.syslog.facility.name", Some("authpriv")),
            ("host.name", Some("hsm-2-1-2-6")),
        ],
    );
    assert!(ssh["log.source.address"].starts_with("127.0.0.1:"));
    assert_ne!(ssh["log.source.address"], udp.to_string());
    let luna = find(&events, "<174>1 2026-03-02T08:15:22.512934+00:00 hsm-4-1-1-9 lunash 7781 - - info : 0 : Lush user login : audit : 172.16.106.20/40112");
    assert_fields(luna, &[("@timestamp", Some("2026-03-02T08:15:22.512934Z")), ("log.syslog.procid", Some("7781"))]);
    let cut = find(&events, &long[..200]);
    assert_eq!(cut["hsmwatch.truncated"], "true");
}

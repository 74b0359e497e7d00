//! TCP ingest: every RFC 6587 framing, split reads, EOF, oversize frames and lying counts, through a real socket.

use crate::support::{find, send_tcp, TestServer};

fn originals(events: &[crate::support::Fields]) -> Vec<String> {
    let mut all: Vec<String> = events.iter().map(|e| e["event.original"].clone()).collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framing_whole_and_byte_by_byte() {
    let server = TestServer::start().await;
    let streams: [(&str, &[u8]); 5] = [
        ("lf", b"<13>Mar  1 12:00:00 h app: lf one\n<13>Mar  1 12:00:00 h app: lf two\n"),
        ("crlf", b"<13>Mar  1 12:00:00 h app: crlf one\r\n<13>Mar  1 12:00:00 h app: crlf two\r\n"),
        ("nul", b"<13>Mar  1 12:00:00 h app: nul one\0<13>Mar  1 12:00:00 h app: nul two\0"),
        ("octet", b"34 <13>Mar  1 12:00:00 h app: oct one34 <13>Mar  1 12:00:00 h app: oct two"),
        ("eof", b"<13>Mar  1 12:00:00 h app: eof one\n<13>Mar  1 12:00:00 h app: eof two"),
    ];
    for byte_by_byte in [false, true] {
        for (_, bytes) in &streams {
            send_tcp(server.tcp, bytes, byte_by_byte).await;
        }
    }
    let events = server.stop_and_query().await;
    let mut expected = Vec::new();
    for name in ["lf", "crlf", "nul", "oct", "eof"] {
        for n in ["one", "two"] {
            expected.push(format!("<13>Mar  1 12:00:00 h app: {name} {n}"));
            expected.push(format!("<13>Mar  1 12:00:00 h app: {name} {n}"));
        }
    }
    expected.sort();
    assert_eq!(originals(&events), expected);
    for event in &events {
        assert_eq!(event["log.syslog.format"], "rfc3164");
        assert!(!event.contains_key("hsmwatch.truncated"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_framing_on_one_connection() {
    let server = TestServer::start().await;
    let stream = b"10 <13>a: one<13>a: two\n12 <13>a: three\r\n<13>a: four\0<13>a: five";
    send_tcp(server.tcp, stream, true).await;
    let events = server.stop_and_query().await;
    let mut expected: Vec<String> =
        ["one", "two", "three", "four", "five"].iter().map(|n| format!("<13>a: {n}")).collect();
    expected.sort();
    assert_eq!(originals(&events), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_line_is_truncated_and_marked_and_the_stream_goes_on() {
    let server = TestServer::start_with_max_frame(256).await;
    let long = format!("<13>Mar  1 12:00:00 h app: {}", "x".repeat(10_000));
    let stream = format!("{long}\n<13>Mar  1 12:00:00 h app: after\n");
    send_tcp(server.tcp, stream.as_bytes(), false).await;
    let events = server.stop_and_query().await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let truncated = find(&events, &long[..256]);
    assert_eq!(truncated["hsmwatch.truncated"], "true");
    let after = find(&events, "<13>Mar  1 12:00:00 h app: after");
    assert!(!after.contains_key("hsmwatch.truncated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_count_closes_only_that_connection() {
    let server = TestServer::start().await;
    // The count says 11 but the message is longer: after 11 bytes the stream no longer starts a frame.
    send_tcp(server.tcp, b"<13>a: before\n11 <13>a: this count lies\n<13>a: never framed\n", false).await;
    send_tcp(server.tcp, b"<13>a: next connection\n", false).await;
    let events = server.stop_and_query().await;
    let got = originals(&events);
    assert_eq!(got, vec!["<13>a: before", "<13>a: next connection", "<13>a: this"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_count_closes_the_connection_after_storing_what_was_framed() {
    let server = TestServer::start().await;
    send_tcp(server.tcp, b"<13>a: first\n9999999999 <13>a: huge", false).await;
    send_tcp(server.tcp, b"<13>a: still serving\n", false).await;
    let counters = server.server.counters.clone();
    let events = server.stop_and_query().await;
    assert_eq!(originals(&events), vec!["<13>a: first", "<13>a: still serving"]);
    assert_eq!(counters.snapshot().framing_errors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_counted_frame_at_eof_is_stored_marked() {
    let server = TestServer::start().await;
    send_tcp(server.tcp, b"100 <13>a: cut short", false).await;
    let events = server.stop_and_query().await;
    let event = find(&events, "<13>a: cut short");
    assert_eq!(event["hsmwatch.truncated"], "true");
}

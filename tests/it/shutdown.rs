//! Graceful shutdown of the real binary: every message accepted before SIGTERM or SIGINT is stored, and it exits 0.

use std::collections::BTreeSet;
use std::io::Write;

use crate::support::{query_json, ServeProcess};

const MESSAGES: usize = 20_000;

fn numbered(range: std::ops::Range<usize>) -> Vec<u8> {
    let mut stream = Vec::new();
    for n in range {
        writeln!(stream, "<134>1 2026-03-01T12:00:00Z hsm-01 lunash 1 - - seq:{n:08}").unwrap();
    }
    stream
}

fn check_complete(db: &std::path::Path, expected: usize) {
    let events = query_json(db, &["--contains", "seq:"]);
    let numbers: BTreeSet<usize> =
        events.iter().map(|e| e["message"].trim_start_matches("seq:").parse::<usize>().unwrap()).collect();
    assert_eq!(events.len(), expected, "duplicates or losses");
    assert_eq!(numbers, (0..expected).collect(), "missing sequence numbers");
}

#[test]
fn sigterm_after_a_burst_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let address = format!("127.0.0.1:{}", server.port);
    // Two connections: one closed before the signal, one still open when it arrives.
    let mut closed = std::net::TcpStream::connect(&address).unwrap();
    closed.write_all(&numbered(0..MESSAGES / 2)).unwrap();
    drop(closed);
    let mut open = std::net::TcpStream::connect(&address).unwrap();
    open.write_all(&numbered(MESSAGES / 2..MESSAGES)).unwrap();
    server.signal("TERM");
    let db = server.db.clone();
    let (code, stderr) = server.wait();
    drop(open);
    assert_eq!(code, Some(0), "{stderr}");
    check_complete(&db, MESSAGES);
}

#[test]
fn sigint_flushes_udp_datagrams_already_received() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let count = 500;
    for line in numbered(0..count).split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        socket.send_to(line, ("127.0.0.1", server.port)).unwrap();
    }
    server.signal("INT");
    let db = server.db.clone();
    let (code, stderr) = server.wait();
    assert_eq!(code, Some(0), "{stderr}");
    check_complete(&db, count);
}

#[test]
fn a_summary_line_is_logged_while_traffic_flows() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let config = dir.path().join("hsmwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "listen:\n  tcp:\n    - address: 127.0.0.1:{port}\nstorage:\n  path: s.db\nlog:\n  summary_interval: 1s\nhttp:\n  address: 127.0.0.1:0\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut stream = loop {
        match std::net::TcpStream::connect(&address) {
            Ok(stream) => break stream,
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => panic!("server did not listen: {e}"),
        }
    };
    stream.write_all(&numbered(0..10)).unwrap();
    // Two summary intervals pass, then the server is stopped and its log read.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    drop(stream);
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(child.wait().unwrap().success(), "{log}");
    // Receipt and commit may fall on either side of a tick: add up every summary line.
    let summaries: Vec<&str> = log.lines().filter(|l| l.contains("summary since the last line")).collect();
    assert!(!summaries.is_empty(), "no summary line in:\n{log}");
    let total = |key: &str| -> u64 {
        summaries
            .iter()
            .filter_map(|line| line.split_whitespace().find_map(|word| word.strip_prefix(key)))
            .map(|n| n.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!((total("received="), total("stored="), total("unparsed=")), (10, 10, 0), "{log}");
}

fn partition_creates(count: usize) -> Vec<u8> {
    let mut stream = Vec::new();
    for n in 0..count {
        writeln!(
            stream,
            "<174>Mar  9 10:00:01 hsm-1 lunash [4100]: info : 0 : Command: partition create -partition p{n} : admin : 10.1.2.3/51234"
        )
        .unwrap();
    }
    stream
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Firings recorded: the partition changes of one HSM are firings of one alert.
fn alert_count(db: &std::path::Path) -> usize {
    let (code, out, err) =
        crate::support::run(&["alerts", "list", "--json", "--limit", "100000", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["firings"].as_u64().unwrap() as usize)
        .sum()
}

fn log_write_errors(http: u16) -> u64 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut stream, &mut body).unwrap();
    let line = body.lines().find(|l| l.starts_with("hsmwatch_log_write_errors_total")).expect("the counter");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A log reader that went away (a crashed shipper, `| head`) must not stop storing, alerting or shutting down.
#[test]
fn a_closed_stderr_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (port, http) = (crate::support::free_port(), crate::support::free_port());
    let mut server = ServeProcess::start_with_args(dir.path(), port, &["--http", &format!("127.0.0.1:{http}")]);
    // Read one line, then close the pipe: every later log line meets a closed pipe.
    let mut stderr = std::io::BufReader::new(server.child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.contains("INFO"), "{first}");
    drop(stderr);
    let db = server.db.clone();
    std::net::TcpStream::connect(("127.0.0.1", port)).unwrap().write_all(&partition_creates(3)).unwrap();
    wait_for("three events", || query_json(&db, &[]).len() == 3);
    wait_for("three alerts", || alert_count(&db) == 3);
    // An alert is logged after its transaction commits: the count may trail the database by a moment.
    wait_for("the lines that met the closed pipe counted", || log_write_errors(http) > 0);
    server.signal("TERM");
    assert_eq!(server.wait().0, Some(0));
    assert_eq!(query_json(&db, &["--action", "partition.create"]).len(), 3);
}

/// A log reader that stopped reading (the pipe full) must not stall anything either: lines it cannot take are
/// dropped and counted.
#[test]
fn a_full_stderr_stalls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (port, http) = (crate::support::free_port(), crate::support::free_port());
    // Every partition creation logs its alert: far more than a pipe holds. The test never reads stderr.
    let server = ServeProcess::start_with_args(dir.path(), port, &["--http", &format!("127.0.0.1:{http}")]);
    let db = server.db.clone();
    let count = 5000;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(&partition_creates(count)).unwrap();
    drop(stream);
    wait_for("every event", || query_json(&db, &["--limit", "100000"]).len() == count);
    wait_for("every alert", || alert_count(&db) == count);
    // Alerts are logged after their transaction commits: the last batch's lines may still be on their way.
    wait_for("the lines that did not fit counted", || log_write_errors(http) > 0);
    server.signal("TERM");
    assert_eq!(server.wait().0, Some(0));
}

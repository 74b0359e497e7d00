//! 9: a relay forwards to hsmwatch through an hsmwatch restart, and at the end every numbered line is stored (relays
//! deliver at least once, so duplicates are counted, not failed). The relays are Debian's rsyslog and syslog-ng, in the
//! foreground with private configurations on loopback ports: rsyslog with a disk-assisted queue over TCP with octet
//! counting, and the two relay snippets `packaging/` ships, as shipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::relay_peers::{
    connect_from, rsyslog, shipped_rsyslog_config, shipped_syslog_ng_config, syslog_ng, Relay, HSM_ADDRESS,
};
use crate::support::{free_port, query_json, ServeProcess};

/// Lines sent in all: a third before the restart, a third while hsmwatch is down, a third after.
const TOTAL: usize = 3000;

fn rsyslog_with_a_disk_queue(dir: &Path, listen: u16, forward: u16) -> Relay {
    let config = format!(
        r#"module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{listen}" ruleset="relay")
ruleset(name="relay") {{
  action(type="omfwd" target="127.0.0.1" port="{forward}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
         queue.type="LinkedList" queue.filename="hsmwatch_forward" queue.saveOnShutdown="on"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
"#
    );
    rsyslog(dir, &config, listen)
}

fn shipped_rsyslog(dir: &Path, listen: u16, forward: u16) -> Relay {
    rsyslog(dir, &shipped_rsyslog_config(listen, forward), listen)
}

fn shipped_syslog_ng(dir: &Path, listen: u16, forward: u16) -> Relay {
    syslog_ng(dir, &shipped_syslog_ng_config(dir, listen, free_port(), forward), listen)
}

/// Sends the numbered lines `range` on one TCP connection from the address `from`.
fn send(port: u16, from: &str, range: std::ops::Range<usize>) {
    let mut stream = connect_from(from, port);
    for n in range {
        writeln!(stream, "<134>Mar  1 12:00:00 hsm-r relaytest: seq:{n:08}").unwrap();
        if n % 100 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Starts hsmwatch and the relay `start` makes, sends numbered lines from `from` before, during and after a restart of
/// hsmwatch, and fails unless every number is stored within a minute of the last line.
fn through_a_restart(start: fn(&Path, u16, u16) -> Relay, from: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let hsmwatch_port = server.port;
    let relay_port = free_port();
    let relay = start(dir.path(), relay_port, hsmwatch_port);

    send(relay_port, from, 0..TOTAL / 3);
    std::thread::sleep(Duration::from_millis(500));
    server.signal("TERM");
    let (code, stderr) = server.wait();
    assert_eq!(code, Some(0), "{stderr}");
    // hsmwatch is down: these wait in the relay's queue.
    send(relay_port, from, TOTAL / 3..2 * TOTAL / 3);
    std::thread::sleep(Duration::from_secs(2));
    let restarted = ServeProcess::start_on(dir.path(), hsmwatch_port);
    send(relay_port, from, 2 * TOTAL / 3..TOTAL);

    let db = restarted.db.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for event in query_json(&db, &["--contains", "relaytest"]) {
            let n = event["message"].trim_start_matches("seq:").parse().unwrap();
            *counts.entry(n).or_default() += 1;
        }
        if counts.len() == TOTAL || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    restarted.signal("TERM");
    let _ = restarted.wait();
    let missing: Vec<usize> = (0..TOTAL).filter(|n| !counts.contains_key(n)).collect();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    let test = std::thread::current().name().unwrap_or_default().to_owned();
    eprintln!("{test}: {} distinct of {TOTAL}, {duplicates} duplicates", counts.len());
    assert!(
        missing.is_empty(),
        "lost across the restart: {} lines, first {:?}\nthe relay's log:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        relay.log()
    );
}

#[test]
fn an_rsyslog_relay_resends_across_an_hsmwatch_restart() {
    through_a_restart(rsyslog_with_a_disk_queue, "127.0.0.1");
}

#[test]
fn the_shipped_rsyslog_snippet_resends_across_an_hsmwatch_restart() {
    through_a_restart(shipped_rsyslog, HSM_ADDRESS);
}

#[test]
fn the_shipped_syslog_ng_snippet_resends_across_an_hsmwatch_restart() {
    through_a_restart(shipped_syslog_ng, HSM_ADDRESS);
}

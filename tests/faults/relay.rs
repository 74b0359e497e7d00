//! 9: an rsyslog relay (Debian's `rsyslog`, in the foreground with a private config on loopback ports) forwards to
//! hsmwatch over TCP with octet counting and a disk-assisted queue, through an hsmwatch restart: at the end every
//! numbered line is stored (rsyslog delivers at least once, so duplicates are counted, not failed).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::relay_peers::{rsyslog, Relay};
use crate::support::{free_port, query_json, ServeProcess};

fn start_rsyslog(dir: &std::path::Path, listen: u16, forward: u16) -> Relay {
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

fn send(port: u16, range: std::ops::Range<usize>) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    for n in range {
        writeln!(stream, "<134>Mar  1 12:00:00 hsm-r relaytest: seq:{n:08}").unwrap();
        if n % 100 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn an_rsyslog_relay_resends_across_an_hsmwatch_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let hsmwatch_port = server.port;
    let relay_port = free_port();
    let _relay = start_rsyslog(dir.path(), relay_port, hsmwatch_port);
    let total = 3000;

    send(relay_port, 0..1000);
    std::thread::sleep(Duration::from_millis(500));
    server.signal("TERM");
    let (code, stderr) = server.wait();
    assert_eq!(code, Some(0), "{stderr}");
    // hsmwatch is down: these wait in rsyslog's queue.
    send(relay_port, 1000..2000);
    std::thread::sleep(Duration::from_secs(2));
    let restarted = ServeProcess::start_on(dir.path(), hsmwatch_port);
    send(relay_port, 2000..total);

    let db = restarted.db.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for event in query_json(&db, &["--contains", "relaytest"]) {
            let n = event["message"].trim_start_matches("seq:").parse().unwrap();
            *counts.entry(n).or_default() += 1;
        }
        if counts.len() == total || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    restarted.signal("TERM");
    let _ = restarted.wait();
    let missing: Vec<usize> = (0..total).filter(|n| !counts.contains_key(n)).collect();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!("relay through a restart: {} distinct of {total}, {duplicates} duplicates", counts.len());
    assert!(
        missing.is_empty(),
        "lost across the restart: {} lines, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

//! Real senders of a Luna line into the real binary: Python's `logging.handlers.SysLogHandler` (UDP and TCP, which
//! send no time and no host: `<174>lunash[4100]: ...`), util-linux `logger` in its network modes, and `logger` on a
//! local socket read by rsyslog's `imuxsock` (the way journald and local programs reach syslog) and forwarded on.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::relay_peers::rsyslog;
use crate::support::{free_port, query_json, require_program, Fields, ServeProcess};

/// A LunaSH partition creation, as the appliance writes its MSG.
const LUNA_MESSAGE: &str = "info : 0 : Command: partition create -partition p1 : admin : 10.1.2.3/51234";

/// Waits until `count` events are stored, then stops the server and returns them.
fn stored_then_stop(server: ServeProcess, count: usize) -> Vec<Fields> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = query_json(&server.db, &[]);
    while events.len() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        events = query_json(&server.db, &[]);
    }
    server.signal("TERM");
    let (code, stderr) = server.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(events.len(), count, "{events:#?}");
    events
}

/// The event decodes as the appliance's line does: the action, its fields, the tag's app name and pid.
fn assert_decoded(event: &Fields, host: &str) {
    let get = |name: &str| event.get(name).map(String::as_str);
    assert_eq!(get("event.action"), Some("partition.create"), "{event:#?}");
    assert_eq!(get("hsm.partition"), Some("p1"), "{event:#?}");
    assert_eq!(get("user.name"), Some("admin"), "{event:#?}");
    assert_eq!(get("log.syslog.appname"), Some("lunash"), "{event:#?}");
    assert_eq!(get("log.syslog.procid"), Some("4100"), "{event:#?}");
    assert_eq!(get("message"), Some(LUNA_MESSAGE), "{event:#?}");
    assert_eq!(get("log.syslog.facility.name"), Some("local5"), "{event:#?}");
    assert_eq!(get("host.name"), Some(host), "{event:#?}");
}

#[test]
fn python_sysloghandler_over_udp_and_tcp() {
    require_program("python3");
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let script = r#"
import logging, logging.handlers, socket, sys
port = int(sys.argv[1])
for socktype in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
    handler = logging.handlers.SysLogHandler(("127.0.0.1", port), logging.handlers.SysLogHandler.LOG_LOCAL5, socktype)
    handler.ident = "lunash[4100]: "
    log = logging.getLogger("luna-%d" % socktype)
    log.addHandler(handler)
    log.warning(sys.argv[2])
    handler.close()
"#;
    let status = Command::new("python3")
        .args(["-c", script, &server.port.to_string(), LUNA_MESSAGE])
        .status()
        .expect("run python3");
    assert!(status.success());
    // No host in what the handler sends: the host is the sender's address.
    for event in stored_then_stop(server, 2) {
        assert_decoded(&event, "127.0.0.1");
        assert_eq!(event["log.syslog.severity.name"], "warning");
        assert!(event["event.original"].starts_with("<172>lunash[4100]: info"), "{event:#?}");
    }
}

#[test]
fn logger_in_its_network_modes() {
    require_program("logger");
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let port = server.port.to_string();
    let modes: [&[&str]; 8] = [
        &["-T", "--octet-count", "--rfc5424"],
        &["-T", "--rfc5424"],
        &["-T", "--octet-count", "--rfc3164"],
        &["-T", "--rfc3164"],
        &["-d", "--rfc5424"],
        &["-d", "--rfc3164"],
        // No time and no host in the header: the time of receipt, and the sender's address as the host.
        &["-d", "--rfc5424=notime,nohost"],
        &["-T", "--rfc5424=notq,nohost"],
    ];
    for mode in modes {
        let status = Command::new("logger")
            .args(["-n", "127.0.0.1", "-P", &port, "-t", "lunash", "--id=4100", "-p", "local5.info"])
            .args(mode)
            .arg(LUNA_MESSAGE)
            .status()
            .expect("run logger");
        assert!(status.success(), "logger {mode:?}");
    }
    let events = stored_then_stop(server, modes.len());
    let hostless = events.iter().filter(|e| e["event.original"].contains(" - lunash 4100 ")).count();
    assert_eq!(hostless, 2, "{events:#?}");
    for event in events {
        // logger writes the machine's name as the host, unless told not to.
        let host = if event["event.original"].contains(" - lunash 4100 ") { "127.0.0.1" } else { &event["host.name"] };
        assert_ne!(host, "", "{event:#?}");
        assert_decoded(&event, host);
    }
}

#[test]
fn a_local_program_through_rsyslogs_imuxsock() {
    require_program("logger");
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let socket = dir.path().join("log.sock");
    let listen = free_port();
    // journald forwards to rsyslog the same way (its syslog socket, read by imuxsock); `logger -u` writes there as a
    // local program writes to /dev/log: `<174>Mmm dd hh:mm:ss lunash[4100]: ...`, no host.
    let config = format!(
        r#"module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{listen}")
if $programname == "lunash" then {{
  action(type="omfwd" target="127.0.0.1" port="{forward}" protocol="tcp" TCP_Framing="octet-counted"
         template="RSYSLOG_SyslogProtocol23Format")
}}
"#,
        socket = socket.display(),
        forward = server.port
    );
    let relay = rsyslog(dir.path(), &config, listen);
    let status = Command::new("logger")
        .arg("-u")
        .arg(&socket)
        .args(["-t", "lunash", "--id=4100", "-p", "local5.info", LUNA_MESSAGE])
        .status()
        .expect("run logger");
    assert!(status.success());
    let events = stored_then_stop(server, 1);
    drop(relay);
    // rsyslog names the host it runs on.
    let host = events[0]["host.name"].clone();
    assert_decoded(&events[0], &host);
    assert_ne!(host, "127.0.0.1");
}

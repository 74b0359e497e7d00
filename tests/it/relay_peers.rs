//! Real relays for the tests: Debian's rsyslog and syslog-ng, each in the foreground with a private configuration on
//! loopback ports, stopped by process id when dropped. syslog-ng conflicts with rsyslog as a Debian package, so it is
//! unpacked with `dpkg -x` by `tests/peers/install.sh` (which `.ci/run` runs) and run from there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::require_program;

/// A relay process, killed when dropped.
pub struct Relay {
    child: Child,
    log: PathBuf,
}

impl Relay {
    /// What the relay wrote to its stderr so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rsyslogd -n` with `config` (its `workDirectory` is `dir`) and waits until TCP `listen` accepts.
pub fn rsyslog(dir: &Path, config: &str, listen: u16) -> Relay {
    require_program("rsyslogd");
    let spool = dir.join("rsyslog-spool");
    std::fs::create_dir_all(&spool).unwrap();
    let path = dir.join("rsyslog.conf");
    std::fs::write(&path, format!("global(workDirectory=\"{}\")\n{config}", spool.display())).unwrap();
    let log = dir.join("rsyslog.log");
    let child = Command::new("rsyslogd")
        .args(["-n", "-i"])
        .arg(dir.join("rsyslog.pid"))
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start rsyslogd");
    wait_for_port(Relay { child, log }, listen)
}

/// The address a test sends from to a shipped snippet, in place of the example HSMs the snippet lists.
pub const HSM_ADDRESS: &str = "127.0.0.2";

/// A TCP connection to loopback `port` from the local address `from` (a relay that filters senders tells them apart by
/// it).
pub fn connect_from(from: &str, port: u16) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(&target.into()).unwrap();
    socket.into()
}

/// An rsyslog `imtcp` input on loopback `listen`, the relay's side the test sends to.
pub fn rsyslog_tcp_input(listen: u16) -> String {
    format!("module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{listen}\")\n")
}

/// `packaging/rsyslog-relay.conf` as shipped behind an `imtcp` input on `listen`, forwarding to hsmwatch on `forward`.
pub fn shipped_rsyslog_config(listen: u16, forward: u16) -> String {
    format!("{}{}", rsyslog_tcp_input(listen), shipped("rsyslog-relay.conf", forward, listen))
}

/// `packaging/syslog-ng-relay.conf` as shipped, listening on `listen` (BSD over TCP and UDP) and `listen_5424` (its
/// `syslog()` source), forwarding to hsmwatch on `forward`, with its disk buffer in `dir`.
pub fn shipped_syslog_ng_config(dir: &Path, listen: u16, listen_5424: u16, forward: u16) -> String {
    shipped("syslog-ng-relay.conf", forward, listen)
        .replace("port(601)", &format!("port({listen_5424})"))
        .replace("/var/lib/syslog-ng", &dir.display().to_string())
}

/// A snippet from `packaging/` as shipped, with only its addresses and ports made the test's: the target becomes
/// hsmwatch on loopback, the listening port the test's, and the example HSM list the test sender's address.
fn shipped(file: &str, forward: u16, listen: u16) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let substituted = text
        .replace("hsmwatch.example.net", "127.0.0.1")
        .replace("port=\"514\"", &format!("port=\"{forward}\""))
        .replace("port(514)", &format!("port({listen})"))
        .replace("10.0.4.17", HSM_ADDRESS)
        .replace("10.0.4.18", HSM_ADDRESS);
    // The target's port in syslog-ng's destination was turned into the listening port above: give it back.
    substituted.replace(
        &format!("\"127.0.0.1\" transport(\"tcp\") port({listen})"),
        &format!("\"127.0.0.1\" transport(\"tcp\") port({forward})"),
    )
}

/// Where `tests/peers/install.sh` unpacked syslog-ng (or `HSMWATCH_SYSLOG_NG`).
fn syslog_ng_root() -> PathBuf {
    std::env::var_os("HSMWATCH_SYSLOG_NG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/syslog-ng"))
}

/// Starts syslog-ng in the foreground with `config` (files in `dir`) and waits until TCP `listen` accepts. Its own
/// messages (a connection to hsmwatch that failed, say) go to its log (`-e`). A destination that sets no `time-reopen`
/// of its own is retried after a second rather than syslog-ng's default minute, longer than a test waits for what it
/// sent: a connection refused once on a loaded machine then costs a second and shows in the log, instead of every line.
pub fn syslog_ng(dir: &Path, config: &str, listen: u16) -> Relay {
    let root = syslog_ng_root();
    let binary = root.join("usr/sbin/syslog-ng");
    assert!(
        binary.exists(),
        "syslog-ng is not unpacked at {}: the tests need it (run tests/peers/install.sh, as .ci/run does)",
        root.display()
    );
    let path = dir.join("syslog-ng.conf");
    std::fs::write(&path, format!("@version: 3.38\noptions {{ time-reopen(1); }};\n{config}")).unwrap();
    let libraries = format!("{0}/usr/lib/x86_64-linux-gnu:{0}/usr/lib/syslog-ng", root.display());
    let log = dir.join("syslog-ng.log");
    let child = Command::new(&binary)
        .args(["-F", "-e", "-f"])
        .arg(&path)
        .arg("--module-path")
        .arg(root.join("usr/lib/syslog-ng/3.38"))
        .arg("-R")
        .arg(dir.join("syslog-ng.persist"))
        .arg("-p")
        .arg(dir.join("syslog-ng.pid"))
        .arg("-c")
        .arg(dir.join("syslog-ng.ctl"))
        .env("LD_LIBRARY_PATH", libraries)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start syslog-ng");
    wait_for_port(Relay { child, log }, listen)
}

fn wait_for_port(mut relay: Relay, port: u16) -> Relay {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = relay.child.try_wait() {
            panic!("the relay exited ({status}) before listening on {port}:\n{}", relay.log());
        }
        assert!(Instant::now() < deadline, "the relay did not listen on {port}:\n{}", relay.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    relay
}

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

/// Where `tests/peers/install.sh` unpacked syslog-ng (or `HSMWATCH_SYSLOG_NG`).
fn syslog_ng_root() -> PathBuf {
    std::env::var_os("HSMWATCH_SYSLOG_NG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/syslog-ng"))
}

/// Starts syslog-ng in the foreground with `config` (files in `dir`) and waits until TCP `listen` accepts. Its own
/// messages (a connection to hsmwatch that failed, say) go to its log (`-e`). A destination it could not connect to is
/// retried after a second rather than syslog-ng's default minute, longer than a test waits for what it sent: a
/// connection refused once on a loaded machine then costs a second and shows in the log, instead of every line.
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

//! Email through a real SMTP server (aiosmtpd on loopback, STARTTLS and AUTH required): the mail arrives encrypted
//! and authenticated, with both parts, the Message-ID and fingerprint headers, and hostile log text made harmless.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, send_tcp, TestServer};

/// The Python that has aiosmtpd: Debian's, where `.ci/run` installs python3-aiosmtpd.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// aiosmtpd, stopped (stdin closed, then killed) when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp(dir: &Path) -> (SmtpServer, PathBuf) {
    let found = Command::new(python()).args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success());
    assert!(found, "python3-aiosmtpd is not installed: the email tests need it (.ci/run installs it with apt-get)");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("smtp.pem"), dir.join("smtp.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let out = dir.join("mail");
    std::fs::create_dir(&out).unwrap();
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smtp_server.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(["--port", &port.to_string(), "--user", "hsmwatch", "--password", "s3cret-pw", "--lifetime", "120"])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start aiosmtpd");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("ready"), "aiosmtpd did not start: {line:?}");
    (SmtpServer { child, port, out }, cert)
}

/// A rules directory with the shipped decoders and one rule whose title and body carry the raw line.
fn rules_dir(dir: &Path) -> PathBuf {
    crate::support::rules_dir_with(
        dir,
        "id: test.ssh_failure\ntitle: SSH login failure\nseverity: high\nthrottle: 0s\nselect:\n  sshd:\n    log.syslog.appname: sshd\nmessage:\n  title: \"SSH login failure: {{ event['message'] }}\"\n  body: \"User {{ event['user.name'] }} from {{ event['source.ip'] }}\"\n",
    )
}

fn wait_for_mail(out: &Path, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        if files.len() >= count {
            files.sort();
            return files.iter().map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()).collect();
        }
        assert!(Instant::now() < deadline, "only {} of {count} mails arrived", files.len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The header block of a raw message, unfolded.
fn headers(data: &str) -> Vec<String> {
    let block = data.split("\r\n\r\n").next().unwrap_or(data).replace("\r\n ", " ").replace("\r\n\t", " ");
    block.split("\r\n").map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_arrives_over_starttls_with_auth_both_parts_and_hostile_text_neutralised() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, cert) = start_smtp(dir.path());
    std::env::set_var("HSMWATCH_TEST_SMTP_PASSWORD", "s3cret-pw");
    let yaml = format!(
        "notifiers:\n  mail:\n    type: email\n    host: 127.0.0.1\n    port: {}\n    tls: starttls\n    ca_file: {}\n    username: hsmwatch\n    password_env: HSMWATCH_TEST_SMTP_PASSWORD\n    from: 'hsmwatch <hsmwatch@hsm.example.com>'\n    to: [secops@example.com]\n    cc: [audit@example.com]\n    rate_limit: {{max: 100, per: 1m}}\n",
        smtp.port,
        cert.display()
    );
    let notifiers = hsmwatch::config::Config::parse(&yaml, Path::new("t.yaml")).unwrap().notifiers;
    let rules = rules_dir(dir.path());
    let server = TestServer::start_with(64 * 1024, move |config| {
        config.notifiers = notifiers;
        config.rules.dir = Some(rules);
        config.http.external_url = Some("https://hsmwatch.example.net".into());
    })
    .await;
    // Octet counting carries a CR LF inside the line: the user name tries to add a Bcc header.
    let injection = "<86>Mar  3 22:41:50 hsm-4-1-1-9 sshd[30442]: Failed password for invalid user x\r\nBcc: evil@example.net from 203.0.113.45 port 40022 ssh2";
    let script = "<86>Mar  3 22:41:51 hsm-4-1-1-9 sshd[30442]: Failed password for invalid user <script>alert(1)</script> from 203.0.113.46 port 40023 ssh2";
    let mut wire = Vec::new();
    for line in [injection, script] {
        wire.extend_from_slice(format!("{} {line}", line.len()).as_bytes());
    }
    send_tcp(server.tcp, &wire, false).await;
    let out = smtp.out.clone();
    let mails = tokio::task::spawn_blocking(move || wait_for_mail(&out, 2)).await.unwrap();
    let _dir = server.stop().await;
    drop(smtp);

    for mail in &mails {
        assert_eq!(mail["tls"], true, "STARTTLS was used");
        assert_eq!(mail["authenticated"], true, "AUTH was used");
        assert_eq!(mail["mail_from"], "hsmwatch@hsm.example.com");
        let mut rcpt: Vec<&str> = mail["rcpt_tos"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        rcpt.sort_unstable();
        assert_eq!(rcpt, ["audit@example.com", "secops@example.com"], "no Bcc recipient was injected");
        let data = mail["data"].as_str().unwrap();
        let headers = headers(data);
        let header = |name: &str| headers.iter().find(|h| h.to_ascii_lowercase().starts_with(&format!("{name}:")));
        assert!(header("bcc").is_none(), "{headers:#?}");
        let message_id = header("message-id").expect("Message-ID");
        assert!(message_id.contains("-mail@hsm.example.com>"), "{message_id}");
        let fingerprint = header("x-hsmwatch-fingerprint").expect("fingerprint header");
        assert!(fingerprint.contains("test.ssh_failure"), "{fingerprint}");
        assert!(header("subject").is_some_and(|s| s.contains("SSH login failure")), "{headers:#?}");
        assert!(data.contains("Content-Type: multipart/alternative"), "{data}");
        assert!(data.contains("Content-Type: text/plain") && data.contains("Content-Type: text/html"), "{data}");
        // The link to the alert (the HTML part is quoted-printable: the plain part is looked at).
        assert!(data.contains("Alert: https://hsmwatch.example.net/alerts/"), "{data}");
    }
    let injected = mails
        .iter()
        .map(|m| headers(m["data"].as_str().unwrap()))
        .find(|h| h.iter().any(|line| line.starts_with("Subject:") && line.contains("x Bcc: evil@example.net")));
    assert!(injected.is_some(), "the CR LF became a space inside the subject: {mails:#?}");
    let with_script = mails
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .find(|d| d.contains("203.0.113.46"))
        .expect("the second mail");
    assert!(with_script.contains("Source address: 203.0.113.46"), "the key fields of the last event: {with_script}");
    let html = with_script.split("Content-Type: text/html").nth(1).unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
}

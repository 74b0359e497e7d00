//! The TLS listener (RFC 5425) over real TLS on loopback: server authentication, mutual TLS (a client without a
//! certificate, or with one from another CA, is refused and counted), plain text and garbage on the TLS port leave the
//! server unaffected, `openssl s_client` as an independent client over TLS 1.2 and 1.3, and a certificate reload
//! (SIGHUP's path) taking effect for new connections.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::certs::{write_pair, Ca};
use crate::support::{require_program, TestServer};

async fn start(dir: &Path, server_ca: &Ca, client_ca: Option<&Ca>) -> TestServer {
    start_adjusted(dir, server_ca, client_ca, |_| {}).await
}

async fn start_adjusted(
    dir: &Path,
    server_ca: &Ca,
    client_ca: Option<&Ca>,
    adjust: impl FnOnce(&mut hsmwatch::config::TlsListenerConfig) + Send + 'static,
) -> TestServer {
    let (cert_file, key_file) = write_pair(dir, "server", server_ca.issue(&["127.0.0.1", "localhost"]));
    let client_ca_file = client_ca.map(|ca| ca.write(dir, "client-ca.pem"));
    TestServer::start_with(64 * 1024, move |config| {
        config.listen.tls = vec![hsmwatch::config::TlsListenerConfig {
            address: "127.0.0.1:0".parse().unwrap(),
            max_frame: hsmwatch::config::ByteSize(64 * 1024),
            cert_file,
            key_file,
            client_ca_file,
            allow: Vec::new(),
            max_connections: 0,
            max_connections_per_ip: 0,
            max_connections_per_net: 0,
            crl_file: None,
            bind_host: false,
            idle_timeout: None,
            line_timeout: None,
            timezone: chrono_tz::Tz::UTC,
        }];
        adjust(&mut config.listen.tls[0]);
    })
    .await
}

fn client_config(trusted: &Ca, identity: Option<(String, String)>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.cert.der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap()).unwrap()
        }
    }
}

/// Sends octet-counted lines over TLS; false when the session could not be set up or the server closed it.
async fn send_tls(address: SocketAddr, config: ClientConfig, lines: &[&str]) -> bool {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let Ok(mut tls) = connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await else { return false };
    let mut wire = Vec::new();
    for line in lines {
        wire.extend_from_slice(format!("{} {line}", line.len()).as_bytes());
    }
    // With TLS 1.3 a refused client certificate shows on the first write or the shutdown, not in connect.
    if tls.write_all(&wire).await.is_err() || tls.shutdown().await.is_err() {
        return false;
    }
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut rest)).await,
        Ok(Ok(_))
    )
}

fn originals(events: &[crate::support::Fields]) -> Vec<String> {
    let mut lines: Vec<String> = events.iter().map(|e| e["event.original"].clone()).collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_arrive_over_tls_and_plain_text_or_garbage_on_the_port_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("hsmwatch test CA");
    let server = start(dir.path(), &ca, None).await;
    let tls = server.server.tls_addresses[0];

    // Plain syslog and random bytes on the TLS port: handshakes fail, are counted, and nothing is stored.
    crate::support::send_tcp(tls, b"<13>Mar  1 00:00:00 h app: plain text on the TLS port\n", false).await;
    crate::support::send_tcp(tls, &[0x16, 0x03, 0x01, 0xff, 0xff, 0x00, 0x42, 0x13, 0x37], false).await;
    assert!(
        send_tls(
            tls,
            client_config(&ca, None),
            &["<134>1 2026-03-01T12:00:00Z hsm-tls lunash 1 - - info : 0 : Command: hsm show : admin : Console"]
        )
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counters = server.server.counters.listeners();
    let tls_counters = counters.iter().find(|l| l.transport == "tls").unwrap();
    assert_eq!(hsmwatch::metrics::value(&tls_counters.tls_handshake_failures), 2);
    let events = server.stop_and_query().await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event.action"], "lunash.command");
    assert_eq!(events[0]["host.name"], "hsm-tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_the_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let hsm_ca = Ca::new("HSM client CA");
    let stranger_ca = Ca::new("someone else");
    let server = start(dir.path(), &server_ca, Some(&hsm_ca)).await;
    let tls = server.server.tls_addresses[0];
    let line = |who: &str| format!("<13>Mar  1 00:00:00 hsm-m app: from {who}");

    assert!(!send_tls(tls, client_config(&server_ca, None), &[&line("no certificate")]).await);
    let stranger = stranger_ca.issue(&["hsm-x"]);
    assert!(!send_tls(tls, client_config(&server_ca, Some(stranger)), &[&line("a stranger")]).await);
    let hsm = hsm_ca.issue(&["hsm-m"]);
    assert!(send_tls(tls, client_config(&server_ca, Some(hsm)), &[&line("the HSM")]).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = server.stop_and_query().await;
    assert_eq!(originals(&events), [line("the HSM")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_events_carry_the_certificate_and_a_revoked_one_or_another_host_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let hsm_ca = Ca::new("HSM client CA");
    let crl = hsm_ca.revoke(dir.path(), "hsm-ca.crl", &[2]);
    let server = start_adjusted(dir.path(), &server_ca, Some(&hsm_ca), move |listener| {
        listener.crl_file = Some(crl);
        listener.bind_host = true;
    })
    .await;
    let tls = server.server.tls_addresses[0];
    let line = |host: &str, text: &str| format!("<13>Mar  1 00:00:00 {host} app: {text}");
    let good = hsm_ca.issue_named("hsm-m", &["hsm-m.example.net"], 1);
    let sent = [line("hsm-m", "its own name"), line("hsm-m.example.net", "its DNS name"), line("hsm-z", "another")];
    let sent: Vec<&str> = sent.iter().map(String::as_str).collect();
    assert!(send_tls(tls, client_config(&server_ca, Some(good)), &sent).await);
    let revoked = hsm_ca.issue_named("hsm-r", &["hsm-r"], 2);
    assert!(!send_tls(tls, client_config(&server_ca, Some(revoked)), &[&line("hsm-r", "revoked")]).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = server.stop_and_query().await;
    assert_eq!(events.len(), 3, "the revoked certificate's line is refused: {events:#?}");
    for event in &events {
        assert_eq!(event["tls.client.subject"], "O=Example HSM Ops, CN=hsm-m", "{event:#?}");
        assert_eq!(event["tls.client.x509.alternative_names"], "hsm-m.example.net", "{event:#?}");
        let other_host = event["host.name"] == "hsm-z";
        assert_eq!(
            event.get("tls.client.host_mismatch").map(String::as_str),
            other_host.then_some("true"),
            "{event:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_sends_over_tls_1_2_and_1_3() {
    require_program("openssl");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("openssl CA");
    let server = start(dir.path(), &ca, None).await;
    let tls = server.server.tls_addresses[0];
    let ca_file = ca.write(dir.path(), "ca.pem");
    for version in ["-tls1_2", "-tls1_3"] {
        let line = format!("<13>Mar  1 00:00:00 hsm-o app: over {version}\n");
        let mut child = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-no_ign_eof",
                "-verify_return_error",
                version,
                "-connect",
                &tls.to_string(),
                "-CAfile",
            ])
            .arg(&ca_file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), line.as_bytes()).unwrap();
        // s_client exits when its stdin closes; give the line time to cross first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(child.stdin.take());
        let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
        assert!(output.status.success(), "{version}: {}", String::from_utf8_lossy(&output.stderr));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = server.stop_and_query().await;
    assert_eq!(
        originals(&events),
        ["<13>Mar  1 00:00:00 hsm-o app: over -tls1_2", "<13>Mar  1 00:00:00 hsm-o app: over -tls1_3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_certificate_serves_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let server = start(dir.path(), &old_ca, None).await;
    let tls = server.server.tls_addresses[0];
    assert!(send_tls(tls, client_config(&old_ca, None), &["<13>Mar  1 00:00:00 h app: before"]).await);

    // Renewal: new files in place, then the SIGHUP path.
    let new_ca = Ca::new("new CA");
    write_pair(dir.path(), "server", new_ca.issue(&["127.0.0.1"]));
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    server.server.reloader.reload_certificates();
    assert!(
        send_tls(tls, client_config(&old_ca, None), &["<13>Mar  1 00:00:00 h app: broken files keep the old"]).await
    );
    write_pair(dir.path(), "server", new_ca.issue(&["127.0.0.1"]));
    server.server.reloader.reload_certificates();
    assert!(!send_tls(tls, client_config(&old_ca, None), &["<13>Mar  1 00:00:00 h app: old CA"]).await);
    assert!(send_tls(tls, client_config(&new_ca, None), &["<13>Mar  1 00:00:00 h app: after"]).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = server.stop_and_query().await;
    assert_eq!(
        originals(&events),
        [
            "<13>Mar  1 00:00:00 h app: after",
            "<13>Mar  1 00:00:00 h app: before",
            "<13>Mar  1 00:00:00 h app: broken files keep the old"
        ]
    );
}

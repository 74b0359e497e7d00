//! The dashboard over real HTTP: every page answers with the Content-Security-Policy, log text is escaped (a user
//! name `<script>` stays text), the token rule holds (redirect to sign-in, bearer header, session cookie), and a
//! headless Chromium renders the overview with its HSM rows and chart (a screenshot is saved in the test's temp dir).

use std::time::Duration;

use crate::support::{chromium, send_tcp, TestServer};

const TOKEN: &str = "dashboard-token-0123456789";

/// Corpus lines from two HSMs, stamped now (RFC 5424) so that they fall in the last 24 hours; one is a failed
/// login by a user named like a script.
fn lines() -> String {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    format!(
        "<174>1 {now} hsm-dash-1 lunash 5200 - - info : 0 : Command: hsm show : admin : 10.0.0.1/22\n\
         <86>1 {now} hsm-dash-1 sshd 30442 - - Failed password for invalid user <script>alert(1)</script> from 203.0.113.45 port 40022 ssh2\n\
         <6>1 {now} hsm-dash-2 kernel - - - k7pf0: ALM0008: Hard tamper - enclosure penetration\n\
         <174>1 {now} hsm-dash-2 lunash 5200 - - info : 0 : Command: partition create -label p1 : admin : 10.0.0.2/22\n"
    )
}

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.server.http_address.unwrap())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn page(server: &TestServer, path: &str) -> (u16, String, Option<String>) {
    let response = client().get(url(server, path)).send().await.unwrap();
    let csp = response.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), response.text().await.unwrap(), csp)
}

async fn with_traffic(token: bool) -> TestServer {
    std::env::set_var("HSMWATCH_TEST_DASHBOARD_TOKEN", TOKEN);
    let server = TestServer::start_with(64 * 1024, move |config| {
        if token {
            config.http.token_env = Some("HSMWATCH_TEST_DASHBOARD_TOKEN".into());
        }
    })
    .await;
    send_tcp(server.tcp, lines().as_bytes(), false).await;
    // The writer's one-second tick saves the inventory (the hourly activity is counted with each batch).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_escaped_and_under_the_policy() {
    let server = with_traffic(false).await;
    for path in
        ["/", "/hosts/hsm-dash-1", "/alerts", "/alerts?status=firing", "/alerts/1", "/events", "/events?user=admin"]
    {
        let (status, body, csp) = page(&server, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(csp.as_deref(), Some(hsmwatch::http::dashboard::CONTENT_SECURITY_POLICY), "{path}");
        assert!(!body.contains("<script"), "{path} must carry no script at all");
        assert!(!body.contains(" style=\""), "{path} must carry no inline style (the policy forbids them)");
    }
    let (_, overview, _) = page(&server, "/").await;
    assert!(overview.contains("hsm-dash-1") && overview.contains("hsm-dash-2"), "{overview}");
    assert!(overview.contains("<svg") && overview.contains("<rect"), "the chart is drawn");
    assert!(overview.contains("sev-critical"), "the tamper alert is open on hsm-dash-2");
    let (_, host, _) = page(&server, "/hosts/hsm-dash-1").await;
    assert!(host.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the hostile user name is escaped");
    let (_, events, _) = page(&server, "/events?host=hsm-dash-2&action=partition.create").await;
    assert!(events.contains("partition create -label p1") && !events.contains("hsm show"), "filters apply");
    let (_, alert, _) = page(&server, "/alerts/1").await;
    assert!(alert.contains("ALM0008") && alert.contains("Triggering events"), "{alert}");
    assert_eq!(page(&server, "/alerts/99").await.0, 404);
    assert_eq!(page(&server, "/events?since=someday").await.0, 400);
    let (status, css, _) = page(&server, "/static/style.css").await;
    assert!(status == 200 && css.contains(".chart"));
    let _ = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_rule_covers_the_pages() {
    let server = with_traffic(true).await;
    let response = client().get(url(&server, "/")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/login");
    let bearer = client().get(url(&server, "/events")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(bearer.status().as_u16(), 200);
    let wrong = client().post(url(&server, "/login")).form(&[("token", "not-the-token-at-all")]).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let signed_in = client().post(url(&server, "/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains(TOKEN), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = client().get(url(&server, "/")).header("cookie", session.clone()).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("hsm-dash-1"));
    let forged = client().get(url(&server, "/")).header("cookie", "hsmwatch_session=00").send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 303);

    // #21: a session is a random id that expires and ends at sign-out, not a digest of the token.
    assert!(cookie.contains("Max-Age=43200") && !cookie.contains("Secure"), "plain HTTP on loopback: {cookie}");
    let again = client().post(url(&server, "/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    let second = again.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_ne!(second, session, "each sign-in gets its own session");
    let signed_out = client().post(url(&server, "/logout")).header("cookie", session.clone()).send().await.unwrap();
    assert_eq!(signed_out.status().as_u16(), 303);
    assert!(signed_out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let after = client().get(url(&server, "/")).header("cookie", session).send().await.unwrap();
    assert_eq!(after.status().as_u16(), 303, "the signed-out session is gone");
    let other = client().get(url(&server, "/")).header("cookie", second).send().await.unwrap();
    assert_eq!(other.status().as_u16(), 200, "the other session is not");

    // /metrics is behind the token too.
    assert_eq!(client().get(url(&server, "/metrics")).send().await.unwrap().status().as_u16(), 401);
    let metrics = client().get(url(&server, "/metrics")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);

    // Guessing: after five failures (the sign-ins above reset the count) this address waits, even with the right
    // token.
    for _ in 0..5 {
        let wrong = client().post(url(&server, "/login")).form(&[("token", "guess-0123456789")]).send().await.unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
    }
    let blocked = client().post(url(&server, "/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    assert_eq!(blocked.status().as_u16(), 429);
    let wait: u64 = blocked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait > 200 && wait <= 300, "{wait}");
    assert!(blocked.text().await.unwrap().contains("Too many failed attempts"));
    let _ = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_public_opens_only_metrics() {
    std::env::set_var("HSMWATCH_TEST_DASHBOARD_TOKEN", TOKEN);
    let server = TestServer::start_with(64 * 1024, |config| {
        config.http.token_env = Some("HSMWATCH_TEST_DASHBOARD_TOKEN".into());
        config.http.metrics_public = true;
    })
    .await;
    assert_eq!(client().get(url(&server, "/metrics")).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(client().get(url(&server, "/api/events")).send().await.unwrap().status().as_u16(), 401);
    let _ = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_renders_the_overview() {
    let server = with_traffic(false).await;
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let screenshot = dir.path().join("overview.png");
    let target = url(&server, "/");
    let dom = chromium(&profile, &target, vec!["--dump-dom".into()]).await;
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains("hsm-dash-1") && dom.contains("hsm-dash-2"), "the HSM rows render: {dom}");
    assert!(dom.contains("<svg") && dom.contains("<rect"), "the chart renders");
    let options = vec![format!("--screenshot={}", screenshot.display()), "--window-size=1280,800".into()];
    let shot = chromium(&profile, &target, options).await;
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let png = std::fs::read(&screenshot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    if let Ok(keep) = std::env::var("HSMWATCH_KEEP_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).unwrap();
    }
    let _ = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_dashboard_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let certificate = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.path().join("http.pem"), dir.path().join("http.key"));
    std::fs::write(&cert_file, certificate.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::env::set_var("HSMWATCH_TEST_DASHBOARD_TOKEN", TOKEN);
    let server = TestServer::start_with(64 * 1024, |config| {
        config.http.token_env = Some("HSMWATCH_TEST_DASHBOARD_TOKEN".into());
        config.http.cert_file = Some(cert_file.clone());
        config.http.key_file = Some(key_file.clone());
    })
    .await;
    let https = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(certificate.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let address = server.server.http_address.unwrap();
    let at = |path: &str| format!("https://localhost:{}{path}", address.port());
    assert_eq!(https.get(at("/healthz")).send().await.unwrap().status().as_u16(), 200);
    let signed_in = https.post(at("/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(https.get(at("/")).header("cookie", session).send().await.unwrap().status().as_u16(), 200);
    // Plain HTTP on the HTTPS port gets no page, and the server goes on serving.
    assert!(client().get(format!("http://{address}/healthz")).send().await.is_err());
    assert_eq!(https.get(at("/healthz")).send().await.unwrap().status().as_u16(), 200);
    let _ = server.stop().await;
}

//! Alert delivery through the outbox to a real HTTP receiver on loopback: the body and its idempotency key, retries
//! after 500s and hangs, Retry-After on 429, no retry on 400, give-up with a self-alert to the fallback, the flood
//! guard's digest, silences, body templates, and deliveries that wait out an outage across a restart.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

use crate::support::{send_tcp, TestServer};

/// A request's signature header and raw body.
type Signed = (Option<String>, String);

/// Statuses to answer with, each with an optional Retry-After; status 0 hangs for 5 s, then answers 200.
type Script = Vec<(u16, Option<&'static str>)>;

/// A receiver that answers each request with the next scripted status (the last one repeats) and records what came.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<Script>>,
    received: Arc<Mutex<Vec<(String, serde_json::Value, Instant)>>>,
    /// Signature header and raw body of each request.
    signed: Arc<Mutex<Vec<Signed>>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> impl IntoResponse {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    let signature = headers.get("x-hsmwatch-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    receiver.signed.lock().unwrap().push((signature, body.clone()));
    receiver.received.lock().unwrap().push((key, json, Instant::now()));
    let (status, retry_after) = {
        let mut script = receiver.script.lock().unwrap();
        if script.len() > 1 {
            script.remove(0)
        } else {
            script[0]
        }
    };
    if status == 0 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        return StatusCode::OK.into_response();
    }
    let mut response = StatusCode::from_u16(status).unwrap().into_response();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert("retry-after", seconds.parse().unwrap());
    }
    response
}

async fn start_receiver(script: Vec<(u16, Option<&'static str>)>) -> (SocketAddr, Receiver) {
    let receiver = Receiver { script: Arc::new(Mutex::new(script)), ..Receiver::default() };
    let app = Router::new().route("/hook", post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, receiver)
}

const TAMPER: &[u8] = b"<6>Mar  7 02:14:09 hsm-2-1-2-6 kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n";

async fn server_with_hook(address: SocketAddr, extra: &str) -> TestServer {
    let yaml = format!(
        "notifiers:\n  hook:\n    type: webhook\n    url: http://{address}/hook\n    retry_initial: 100ms\n{extra}"
    );
    let notifiers = hsmwatch::config::Config::parse(&yaml, std::path::Path::new("t.yaml")).unwrap().notifiers;
    TestServer::start_with(64 * 1024, move |config| config.notifiers = notifiers).await
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_reaches_the_webhook_with_a_stable_body_and_key() {
    let (address, receiver) = start_receiver(vec![(200, None)]).await;
    let server = server_with_hook(address, "").await;
    send_tcp(server.tcp, TAMPER, false).await;
    wait_until("the delivery", || !receiver.received.lock().unwrap().is_empty()).await;
    let _dir = server.stop().await;
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "exactly one delivery");
    let (key, body, _) = &received[0];
    assert!(key.starts_with("hsmwatch-") && key.ends_with("-hook"), "{key}");
    assert_eq!(body["idempotency_key"], key.as_str());
    assert_eq!(body["rule"], "luna.hsm.tamper");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["host"], "hsm-2-1-2-6");
    assert!(body["title"].as_str().unwrap().contains("ALM0008"), "{body}");
    assert!(body["event_ids"].as_array().is_some_and(|ids| ids.len() == 1), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_429_waits_for_retry_after() {
    let (address, receiver) = start_receiver(vec![(500, None), (503, None), (429, Some("1")), (200, None)]).await;
    let server = server_with_hook(address, "").await;
    send_tcp(server.tcp, TAMPER, false).await;
    wait_until("four attempts", || receiver.received.lock().unwrap().len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _dir = server.stop().await;
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 4, "retried until accepted, then no more");
    assert!(received.iter().all(|(key, ..)| key == &received[0].0), "one idempotency key for every attempt");
    let waited = received[3].2 - received[2].2;
    assert!(waited >= Duration::from_millis(950), "Retry-After: 1 was honoured ({waited:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_past_any_date_neither_stops_the_notifier_nor_parks_the_alert() {
    // Regression: `Retry-After: 99999999999999` overflowed the retry time and panicked the notifier's worker; later
    // alerts to it stayed pending for good while /readyz said ready.
    let (address, receiver) = start_receiver(vec![(429, Some("99999999999999")), (200, None)]).await;
    let server = server_with_hook(address, "").await;
    send_tcp(server.tcp, TAMPER, false).await;
    wait_until("the first attempt", || receiver.received.lock().unwrap().len() == 1).await;
    let other = b"<6>Mar  7 02:15:09 hsm-9-9-9-9 kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n";
    send_tcp(server.tcp, other, false).await;
    wait_until("the next alert's delivery", || receiver.received.lock().unwrap().len() == 2).await;
    let ready: serde_json::Value = reqwest::get(format!("http://{}/readyz", server.server.http_address.unwrap()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["notifiers"]["ok"], true, "{ready}");
    let db = server.db();
    let _dir = server.stop().await;
    assert_eq!(receiver.received.lock().unwrap()[1].1["host"], "hsm-9-9-9-9");
    let mut conn =
        sqlx::ConnectOptions::connect(&sqlx::sqlite::SqliteConnectOptions::new().filename(&db)).await.unwrap();
    let (status, next, error): (String, i64, String) = sqlx::query_as(
        "SELECT status, next_attempt_at, last_error FROM outbox WHERE status != 'sent' ORDER BY id LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((status.as_str(), error.as_str()), ("pending", "HTTP 429"));
    // Asked to wait past any date, it waits the longest backoff: ten minutes.
    let wait = next - chrono::Utc::now().timestamp_micros();
    assert!(wait > 500_000_000 && wait <= 600_000_000, "retried in {} s", wait / 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_and_gives_the_delivery_up_naming_where() {
    // Regression: a 307 made hsmwatch re-send the POST, its signature and configured headers to another port, with a
    // Referer carrying the URL's secret query string, and mark the alert delivered.
    let (elsewhere, elsewhere_got) = start_receiver(vec![(200, None)]).await;
    let target = format!("http://{elsewhere}/hook");
    let app = Router::new().route(
        "/hook",
        post(move || {
            let target = target.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, target)]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let server = server_with_hook(address, "").await;
    send_tcp(server.tcp, TAMPER, false).await;
    let db = server.db();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn =
        sqlx::ConnectOptions::connect(&sqlx::sqlite::SqliteConnectOptions::new().filename(&db)).await.unwrap();
    let (status, error) = loop {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT status, last_error FROM outbox").fetch_optional(&mut conn).await.unwrap();
        if let Some((status, error)) = row.filter(|(status, _)| status != "pending") {
            break (status, error.unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "the delivery was never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(conn);
    let _dir = server.stop().await;
    assert_eq!(status, "dead", "{error}");
    assert!(error.contains("HTTP 307") && error.contains(&format!("http://{elsewhere}/hook")), "{error}");
    assert!(elsewhere_got.received.lock().unwrap().is_empty(), "nothing went where the receiver pointed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_not_retried() {
    let (address, receiver) = start_receiver(vec![(400, None)]).await;
    let server = server_with_hook(address, "").await;
    send_tcp(server.tcp, TAMPER, false).await;
    wait_until("the attempt", || !receiver.received.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let db = server.db();
    let _dir = server.stop().await;
    assert_eq!(receiver.received.lock().unwrap().len(), 1);
    let mut conn =
        sqlx::ConnectOptions::connect(&sqlx::sqlite::SqliteConnectOptions::new().filename(&db)).await.unwrap();
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM outbox").fetch_one(&mut conn).await.unwrap();
    assert_eq!((status.as_str(), error.as_str()), ("dead", "HTTP 400: the receiver refused the request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_and_a_restart_lose_nothing_and_duplicate_nothing() {
    // A port with nothing behind it yet: the receiver is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outage.db");
    let alerts = 100;
    let lines: String = (0..alerts)
        .map(|i| {
            format!(
                "<6>Mar  7 02:14:{:02} hsm-{i} kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n",
                i % 60
            )
        })
        .collect();

    let start = |db: std::path::PathBuf| async move {
        // The flood guard would fold the backlog into digests; this test counts single deliveries.
        let yaml = format!(
            "notifiers:\n  hook:\n    type: webhook\n    url: http://{address}/hook\n    retry_initial: 100ms\n    rate_limit: {{max: 1000, per: 1m}}\n"
        );
        let notifiers = hsmwatch::config::Config::parse(&yaml, std::path::Path::new("t.yaml")).unwrap().notifiers;
        TestServer::start_with(64 * 1024, move |config| {
            config.notifiers = notifiers;
            config.storage.path = db;
        })
        .await
    };
    let first = start(db.clone()).await;
    send_tcp(first.tcp, lines.as_bytes(), false).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = first.stop().await;

    // Restarted during the outage; then the receiver comes back on its port.
    let second = start(db.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let receiver = Receiver { script: Arc::new(Mutex::new(vec![(200, None)])), ..Receiver::default() };
    let app = Router::new().route("/hook", post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.received.lock().unwrap().len() < alerts {
        assert!(Instant::now() < deadline, "only {} of {alerts} delivered", receiver.received.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = second.stop().await;
    let received = receiver.received.lock().unwrap().clone();
    let keys: std::collections::BTreeSet<&String> = received.iter().map(|(key, ..)| key).collect();
    assert_eq!((received.len(), keys.len()), (alerts, alerts), "each alert delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_block_kit_with_hostile_text_escaped() {
    let (address, receiver) = start_receiver(vec![(200, None)]).await;
    std::env::set_var("HSMWATCH_TEST_SLACK_URL", format!("http://{address}/hook"));
    let yaml = "notifiers:\n  slack-hsm:\n    type: slack\n    url_env: HSMWATCH_TEST_SLACK_URL\n";
    let notifiers = hsmwatch::config::Config::parse(yaml, std::path::Path::new("t.yaml")).unwrap().notifiers;
    let server = TestServer::start_with(64 * 1024, move |config| {
        config.notifiers = notifiers;
        config.http.external_url = Some("https://hsmwatch.example.net".into());
    })
    .await;
    // Five failures from one source: the brute-force rule; the user name is what an attacker typed.
    let line = "<86>Mar  3 22:41:50 hsm-4-1-1-9 sshd[30442]: Failed password for invalid user <!channel> from 203.0.113.45 port 40022 ssh2\n";
    send_tcp(server.tcp, line.repeat(5).as_bytes(), false).await;
    wait_until("the Slack message", || !receiver.received.lock().unwrap().is_empty()).await;
    let _dir = server.stop().await;
    let received = receiver.received.lock().unwrap().clone();
    let message = &received[0].1;
    let blocks = message["blocks"].as_array().expect("Block Kit blocks");
    assert!(blocks.iter().all(|b| b["type"].is_string()), "{message}");
    assert_eq!(blocks[0]["type"], "section");
    assert!(blocks[1]["fields"].as_array().is_some_and(|f| !f.is_empty()), "{message}");
    assert!(blocks[2]["text"]["text"].as_str().unwrap().starts_with("```"), "{message}");
    let text = message.to_string();
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    assert!(message["text"].as_str().unwrap().contains("failed logins on hsm-4-1-1-9"), "{message}");
    // The key fields of the last event, and a link to the alert's page.
    let fields = blocks[1]["fields"].to_string();
    assert!(fields.contains("*User*\\n&lt;!channel&gt;"), "{fields}");
    assert!(fields.contains("*Source address*\\n203.0.113.45"), "{fields}");
    assert!(fields.contains("*Host*\\nhsm-4-1-1-9"), "{fields}");
    let link = blocks.last().unwrap()["text"]["text"].as_str().unwrap();
    assert!(link.starts_with("<https://hsmwatch.example.net/alerts/") && link.contains("|Open alert"), "{link}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_bodies_verify_with_the_shared_secret() {
    let (address, receiver) = start_receiver(vec![(200, None)]).await;
    std::env::set_var("HSMWATCH_TEST_HOOK_SECRET", "s3cret-key");
    let server = server_with_hook(address, "    signature_secret_env: HSMWATCH_TEST_HOOK_SECRET\n").await;
    send_tcp(server.tcp, TAMPER, false).await;
    wait_until("the delivery", || !receiver.signed.lock().unwrap().is_empty()).await;
    let _dir = server.stop().await;
    let (signature, body) = receiver.signed.lock().unwrap()[0].clone();
    let expected = hsmwatch::deliver::webhook::sign(b"s3cret-key", body.as_bytes());
    assert_eq!(signature.as_deref(), Some(expected.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_sends_a_sample_through_the_outbox() {
    let (address, receiver) = start_receiver(vec![(200, None), (400, None)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hsmwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  path: {}/n.db\nnotifiers:\n  hook:\n    type: webhook\n    url: http://{address}/hook\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // The CLI blocks this test's thread; the receiver runs on the runtime's other worker.
    let (code, out, err) = crate::support::run(&["notify", "test", "hook", "--config", config]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("hook: delivered"), "{out}");
    assert_eq!(receiver.received.lock().unwrap()[0].1["title"], "hsmwatch test notification for hook");

    let (code, _, err) = crate::support::run(&["notify", "test", "hook", "--config", config]);
    assert_eq!(code, Some(1));
    assert!(err.contains("hook: not delivered: HTTP 400"), "{err}");

    // alerts show tells what became of each delivery.
    let (code, shown, err) = crate::support::run(&["alerts", "show", "1", "--config", config]);
    assert_eq!(code, Some(0), "{err}");
    assert!(shown.contains("title:       hsmwatch test notification for hook"), "{shown}");
    assert!(shown.contains("delivery to hook: sent at "), "{shown}");
    // Row 2 is the resolution the first test recorded for its own alert; the second test's alert is row 3.
    let (_, shown, _) = crate::support::run(&["alerts", "show", "3", "--config", config]);
    assert!(
        shown.contains(
            "delivery to hook: dead after 1 attempt(s); last error: HTTP 400: the receiver refused the request"
        ),
        "{shown}"
    );
    let (code, _, err) = crate::support::run(&["alerts", "show", "99", "--config", config]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no alert 99"), "{err}");

    let (code, _, err) = crate::support::run(&["notify", "test", "hok", "--config", config]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no notifier `hok` in the config (did you mean `hook`?)"), "{err}");
}

async fn db_rows<T>(db: &std::path::Path, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    let mut conn =
        sqlx::ConnectOptions::connect(&sqlx::sqlite::SqliteConnectOptions::new().filename(db)).await.unwrap();
    sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
}

fn tamper_from(host: &str) -> String {
    format!("<6>Mar  7 02:14:09 {host} kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_times_out_and_is_retried() {
    let (address, receiver) = start_receiver(vec![(0, None), (200, None)]).await;
    let server = server_with_hook(address, "    timeout: 300ms\n").await;
    send_tcp(server.tcp, TAMPER, false).await;
    wait_until("two attempts", || receiver.received.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let db = server.db();
    let _dir = server.stop().await;
    let rows: Vec<(String, i64)> = db_rows(&db, "SELECT status, attempts FROM outbox").await;
    assert_eq!(rows, [("sent".to_owned(), 2)], "the hung attempt timed out and the retry was accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_given_up_raises_a_self_alert_to_the_fallback() {
    let (primary, primary_receiver) = start_receiver(vec![(500, None)]).await;
    let (backup, backup_receiver) = start_receiver(vec![(200, None)]).await;
    let yaml = format!(
        "notifiers:\n  hook:\n    type: webhook\n    url: http://{primary}/hook\n    retry_initial: 100ms\n    give_up_after: 1s\n    fallback: backup\n  backup:\n    type: webhook\n    url: http://{backup}/hook\n    min_severity: critical\n"
    );
    let notifiers = hsmwatch::config::Config::parse(&yaml, std::path::Path::new("t.yaml")).unwrap().notifiers;
    let server = TestServer::start_with(64 * 1024, move |config| config.notifiers = notifiers).await;
    // A high-severity alert: routed to `hook` only (backup takes critical).
    let line = "<86>Mar  3 22:41:50 hsm-4-1-1-9 sshd[30442]: Failed password for invalid user admin from 203.0.113.45 port 40022 ssh2\n";
    send_tcp(server.tcp, line.repeat(5).as_bytes(), false).await;
    wait_until("the self-alert", || !backup_receiver.received.lock().unwrap().is_empty()).await;
    let db = server.db();
    let _dir = server.stop().await;
    assert!(primary_receiver.received.lock().unwrap().len() >= 2, "retried before giving up");
    let notice = backup_receiver.received.lock().unwrap()[0].1.clone();
    assert_eq!(notice["rule"], "hsmwatch.delivery_dead");
    assert_eq!(notice["group"]["notifier"], "hook");
    assert!(notice["title"].as_str().unwrap().contains("could not deliver alert 1 to hook"), "{notice}");
    assert!(notice["body"].as_str().unwrap().contains("giving up after 1s"), "{notice}");
    let rows: Vec<(String, String)> = db_rows(&db, "SELECT notifier, status FROM outbox ORDER BY id").await;
    assert_eq!(rows, [("hook".to_owned(), "dead".to_owned()), ("backup".to_owned(), "sent".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flood_guard_folds_the_excess_into_a_digest() {
    let (address, receiver) = start_receiver(vec![(200, None)]).await;
    let server = server_with_hook(address, "    rate_limit: {max: 3, per: 3s}\n").await;
    let lines: String = (0..12).map(|i| tamper_from(&format!("hsm-{i}"))).collect();
    send_tcp(server.tcp, lines.as_bytes(), false).await;
    let carried = |received: &[(String, serde_json::Value, Instant)]| -> Vec<i64> {
        received
            .iter()
            .flat_map(|(_, body, _)| match body["digest"].as_bool() {
                Some(true) => body["alerts"].as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect(),
                _ => vec![body["id"].as_i64().unwrap()],
            })
            .collect()
    };
    wait_until("every alert, singly or in a digest", || carried(&receiver.received.lock().unwrap()).len() >= 12).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = server.db();
    let _dir = server.stop().await;
    let received = receiver.received.lock().unwrap().clone();
    let mut ids = carried(&received);
    ids.sort_unstable();
    assert_eq!(ids, (1..=12).collect::<Vec<i64>>(), "each alert exactly once, none dropped");
    let digests: Vec<&serde_json::Value> =
        received.iter().map(|(_, body, _)| body).filter(|b| b["digest"] == true).collect();
    assert!(!digests.is_empty() && received.len() < 12, "{} requests", received.len());
    assert_eq!(digests[0]["count"], digests[0]["alerts"].as_array().unwrap().len());
    // Never more than 3 requests in any 3 s window.
    for (i, (.., at)) in received.iter().enumerate() {
        let in_window = received[i..].iter().filter(|(.., later)| *later - *at < Duration::from_secs(3)).count();
        assert!(in_window <= 3, "{in_window} requests within 3 s");
    }
    let sizes: Vec<(Option<i64>,)> = db_rows(&db, "SELECT digest_size FROM outbox WHERE digest_size IS NOT NULL").await;
    assert!(!sizes.is_empty(), "jobs sent in a digest say so");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silenced_alerts_are_recorded_but_not_delivered() {
    let (address, receiver) = start_receiver(vec![(200, None)]).await;
    let server = server_with_hook(address, "").await;
    let db = server.db();
    let db_arg = db.to_str().unwrap().to_owned();
    let (code, out, err) = crate::support::run(&[
        "silence",
        "add",
        "host=hsm-silent*",
        "rule=luna.hsm.*",
        "--for",
        "1h",
        "--reason",
        "CHG-4711 fan swap",
        "--db",
        &db_arg,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("silence 1 active until"), "{out}");
    // One connection, so the silenced alert is alert 1.
    let both = format!("{}{}", tamper_from("hsm-silent-1"), tamper_from("hsm-loud-1"));
    send_tcp(server.tcp, both.as_bytes(), false).await;
    wait_until("the unsilenced alert", || !receiver.received.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].1["host"], "hsm-loud-1");

    let (code, listed, _) = crate::support::run(&["silence", "list", "--db", &db_arg]);
    assert_eq!(code, Some(0));
    assert!(listed.contains("host=hsm-silent* rule=luna.hsm.*") && listed.contains("CHG-4711 fan swap"), "{listed}");
    let (_, shown, _) = crate::support::run(&["alerts", "show", "1", "--db", &db_arg]);
    assert!(shown.contains("held back by silence 1"), "{shown}");

    let (code, out, _) = crate::support::run(&["silence", "expire", "1", "--db", &db_arg]);
    assert_eq!((code, out.trim()), (Some(0), "silence 1 expired"));
    let (code, _, err) = crate::support::run(&["silence", "expire", "1", "--db", &db_arg]);
    assert_eq!(code, Some(2), "{err}");
    send_tcp(server.tcp, tamper_from("hsm-silent-2").as_bytes(), false).await;
    wait_until("the alert after the silence", || receiver.received.lock().unwrap().len() >= 2).await;
    let _dir = server.stop().await;
    let rows: Vec<(String, Option<i64>)> = db_rows(&db, "SELECT host, silenced_by FROM alerts ORDER BY id").await;
    assert_eq!(
        rows,
        [("hsm-silent-1".to_owned(), Some(1)), ("hsm-loud-1".to_owned(), None), ("hsm-silent-2".to_owned(), None)]
    );
    let (code, _, err) = crate::support::run(&["silence", "add", "--for", "1h", "--reason", "x", "--db", &db_arg]);
    assert_eq!(code, Some(2), "matchers are required: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_template_shapes_the_request() {
    let (address, receiver) = start_receiver(vec![(200, None)]).await;
    let template = r#"    body_template: '{"summary": {{ alert.title | tojson }}, "source": "hsmwatch", "key": {{ idempotency_key | tojson }}, "n": {{ alerts | length }}}'"#;
    let server = server_with_hook(address, &format!("{template}\n")).await;
    send_tcp(server.tcp, TAMPER, false).await;
    wait_until("the delivery", || !receiver.received.lock().unwrap().is_empty()).await;
    let _dir = server.stop().await;
    let (key, body, _) = receiver.received.lock().unwrap()[0].clone();
    assert_eq!(body["source"], "hsmwatch", "{body}");
    assert_eq!(body["key"], key.as_str());
    assert_eq!(body["n"], 1);
    assert!(body["summary"].as_str().unwrap().contains("ALM0008"), "{body}");
}

/// History does not page: alerts on an imported archive (its lines received when the file was last written, a year
/// ago) are recorded but not sent, and say why; a live line still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_on_history_are_recorded_but_not_sent() {
    let (address, receiver) = start_receiver(vec![(200, None)]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let archive = dir.path().join("last-year.log");
    std::fs::write(&archive, [tamper_from("hsm-archive-1"), tamper_from("hsm-archive-2")].concat()).unwrap();
    let touched = std::process::Command::new("touch").args(["-d", "2025-11-01 12:00:00Z"]).arg(&archive).status();
    assert!(touched.unwrap().success());
    let (code, _, err) = crate::support::run(&["import", "--db", db.to_str().unwrap(), archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let yaml =
        format!("notifiers:\n  hook:\n    type: webhook\n    url: http://{address}/hook\n    retry_initial: 100ms\n");
    let notifiers = hsmwatch::config::Config::parse(&yaml, std::path::Path::new("t.yaml")).unwrap().notifiers;
    let stored = db.clone();
    let server = TestServer::start_with(64 * 1024, move |config| {
        config.notifiers = notifiers;
        config.storage.path = stored;
    })
    .await;
    send_tcp(server.tcp, tamper_from("hsm-live").as_bytes(), false).await;
    wait_until("the live alert", || !receiver.received.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _dir = server.stop().await;
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].1["host"], "hsm-live");
    // The archive's tampers, and the silences its hosts then fell into, are recorded, each with why it was not sent.
    let rows: Vec<(String, String, Option<String>)> =
        db_rows(&db, "SELECT host, rule_id, held_back FROM alerts WHERE status = 'firing' ORDER BY id").await;
    let archived: Vec<_> = rows.iter().filter(|(host, ..)| host.starts_with("hsm-archive")).collect();
    assert_eq!(archived.iter().filter(|(_, rule, _)| rule == "luna.hsm.tamper").count(), 2, "{rows:?}");
    for (_, _, why) in &archived {
        let why = why.as_deref().unwrap_or_default();
        assert!(why.starts_with("history: received 2025-11-01T12:"), "{why}");
        assert!(why.contains("more than alerts.notify_horizon (1h) before it was evaluated"), "{why}");
    }
    let live: Vec<_> = rows.iter().filter(|(host, ..)| host == "hsm-live").collect();
    assert_eq!(live, [&("hsm-live".to_owned(), "luna.hsm.tamper".to_owned(), None)]);
    let db_arg = db.to_str().unwrap();
    let (_, shown, _) = crate::support::run(&["alerts", "show", "1", "--db", db_arg]);
    assert!(shown.contains("deliveries:  none: not sent, history: received 2025-11-01T12:00:00Z"), "{shown}");
    let (_, listed, _) = crate::support::run(&["alerts", "list", "--db", db_arg]);
    assert!(listed.contains("(not sent: history)"), "{listed}");
}

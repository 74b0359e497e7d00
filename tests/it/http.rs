//! The HTTP server over real HTTP on loopback: health and readiness, the bearer token of `/api/*`, events paginated
//! by cursor, alerts and hosts, and every metric of `/metrics` present and moving after traffic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{query_json, send_tcp, send_udp, sqlite3, TestServer};

const TOKEN: &str = "test-token-0123456789abcdef";

async fn server_with_token() -> TestServer {
    std::env::set_var("HSMWATCH_TEST_API_TOKEN", TOKEN);
    TestServer::start_with(256, |config| config.http.token_env = Some("HSMWATCH_TEST_API_TOKEN".into())).await
}

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.server.http_address.expect("the HTTP server runs"))
}

async fn get(server: &TestServer, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url(server, path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("HTTP request");
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn api(server: &TestServer, path: &str) -> serde_json::Value {
    let (status, body) = get(server, path, Some(TOKEN)).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Every sample of the exposition as `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| v.parse().ok().map(|v| (k.to_owned(), v))))
        .collect()
}

fn sum(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    samples.iter().filter(|(k, _)| k.split('{').next() == Some(name)).map(|(_, v)| v).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_need_no_token() {
    let server = server_with_token().await;
    assert_eq!(get(&server, "/healthz", None).await, (200, "{\"status\":\"ok\"}".to_owned()));
    let (status, body) = get(&server, "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["checks"]["listeners"]["bound"], 2);
    assert!(ready["checks"]["rules"]["loaded"].as_u64().unwrap() > 0, "{ready}");
    let _ = server.stop().await;
}

/// A server whose every rule is disabled stores lines but alerts on nothing: not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_running_rule_is_not_ready() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("off.yaml"),
        "id: off\ntitle: Off\nseverity: low\nenabled: false\nselect:\n  s:\n    event.action: ssh.login\n",
    )
    .unwrap();
    let dir = rules.path().to_owned();
    let server = TestServer::start_with(256, move |config| {
        config.rules.dir = Some(dir);
        config.rules.decoders = hsmwatch::pack::DecodersFrom::Builtin;
    })
    .await;
    let (status, body) = get(&server, "/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["rules"], serde_json::json!({"ok": false, "loaded": 0}));
    let _ = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_requires_the_token() {
    let server = server_with_token().await;
    for path in ["/api/events", "/api/alerts", "/api/hosts", "/api/alerts/1"] {
        assert_eq!(get(&server, path, None).await.0, 401, "{path} without a token");
        assert_eq!(get(&server, path, Some("wrong-token-0123456789")).await.0, 401, "{path} with a wrong token");
    }
    assert_eq!(get(&server, "/api/events", Some(TOKEN)).await.0, 200);
    assert_eq!(get(&server, "/api/alerts/99", Some(TOKEN)).await.0, 404);
    assert_eq!(get(&server, "/api/events?since=someday", Some(TOKEN)).await.0, 400);
    assert_eq!(get(&server, "/api/events?cursor=x", Some(TOKEN)).await.0, 400);
    let _ = server.stop().await;
}

#[test]
fn a_public_address_without_a_token_is_refused() {
    let error = hsmwatch::config::Config::parse("http:\n  address: 0.0.0.0:8514\n", std::path::Path::new("h.yaml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("http.address 0.0.0.0:8514 is not loopback"), "{error}");
    let (code, _, err) = crate::support::run(&["serve", "--http", "0.0.0.0:0", "--tcp", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not loopback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_page_by_cursor_and_alerts_and_hosts_are_served() {
    let server = server_with_token().await;
    let lines: String = (0..7)
        .map(|i| {
            format!(
                "<174>Mar 21 08:00:0{i} hsm-api lunash [5200]: info : 0 : Command: hsm show : admin : 10.0.0.{i}/22\n"
            )
        })
        .collect();
    send_tcp(server.tcp, lines.as_bytes(), false).await;
    send_tcp(
        server.tcp,
        b"<6>Mar  7 02:14:09 hsm-api kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n",
        false,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut seen = Vec::new();
    let mut path = "/api/events?host=hsm-api&action=lunash.command&limit=3".to_owned();
    loop {
        let page = api(&server, &path).await;
        let events = page["events"].as_array().unwrap();
        seen.extend(events.iter().map(|e| e["event.original"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/events?host=hsm-api&action=lunash.command&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:#?}");
    assert!(seen[0].contains("08:00:06") && seen[6].contains("08:00:00"), "newest first: {seen:#?}");
    let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 7, "no event twice across pages");

    let alerts = api(&server, "/api/alerts?status=firing").await;
    let alert = &alerts["alerts"][0];
    assert_eq!(alert["rule_id"], "luna.hsm.tamper");
    let one = api(&server, &format!("/api/alerts/{}", alert["id"])).await;
    assert_eq!(one["alert"]["host"], "hsm-api");
    assert!(one["deliveries"].is_array());

    let hosts = api(&server, "/api/hosts").await;
    let host = hosts["hosts"].as_array().unwrap().iter().find(|h| h["name"] == "hsm-api").expect("hsm-api listed");
    assert_eq!(host["events"], 8);
    assert_eq!(host["open_alerts"], 1);
    assert_eq!(host["silent"], false);
    let _ = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_find_text_through_the_index_and_in_events_not_yet_indexed() {
    let server = server_with_token().await;
    // 12,600 lines: the first 10,500 stored as text, the rest compressed with the dictionary trained on those; ids up
    // to 12,543 make complete blocks the index takes in, the rest stay in the unindexed tail.
    let line = |n: usize| {
        let command = match n {
            100 => "partition create -partition P12x200 : sysadmin".to_owned(),
            11_000 => "partition show -partition p12x200 : auditor".to_owned(),
            12_580 => "partition delete -partition p12X200 : admin".to_owned(),
            n => format!("hsm show -serial {n:05} : operator"),
        };
        format!("<174>Mar 21 08:00:00 hsm-search lunash [5200]: info : 0 : Command: {command} : 10.0.0.1/22\n")
    };
    let stored = |figures: &BTreeMap<String, f64>| sum(figures, "hsmwatch_events_stored_total");
    for part in [0..10_500, 10_500..12_600] {
        let end = part.end as f64;
        let lines: String = part.map(line).collect();
        send_tcp(server.tcp, lines.as_bytes(), false).await;
        for _ in 0..200 {
            if stored(&samples(&get(&server, "/metrics", Some(TOKEN)).await.1)) == end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Each batch indexes the blocks it completes: nothing waits.
    let figures = samples(&get(&server, "/metrics", Some(TOKEN)).await.1);
    assert_eq!(stored(&figures), 12_600.0, "{figures:#?}");
    assert_eq!(sum(&figures, "hsmwatch_search_index_waiting_events"), 0.0, "{figures:#?}");

    let originals = |page: serde_json::Value| {
        page["events"].as_array().unwrap().iter().map(|e| e["event.original"].as_str().unwrap().to_owned()).collect()
    };
    let found: Vec<String> = originals(api(&server, "/api/events?contains=p12x200").await);
    assert_eq!(found.len(), 3, "text and compressed, indexed, and compressed in the tail: {found:#?}");
    for command in ["create -partition P12x200", "show -partition p12x200", "delete -partition p12X200"] {
        assert!(found.iter().any(|l| l.contains(command)), "{command}: {found:#?}");
    }
    let admins: Vec<String> = originals(api(&server, "/api/events?word=admin").await);
    assert_eq!(admins.len(), 1, "sysadmin is not the word admin: {admins:#?}");
    assert!(admins[0].contains("partition delete"), "{admins:#?}");
    let serial: Vec<String> = originals(api(&server, "/api/events?word=serial%2000042").await);
    assert_eq!(serial.len(), 1, "{serial:#?}");
    assert_eq!(originals(api(&server, "/api/events?word=serial%200004").await).len(), 0);
    assert_eq!(originals(api(&server, "/api/events?contains=serial%200004&limit=100").await).len(), 10);
    let (status, page) = get(&server, "/events?contains=p12X200", Some(TOKEN)).await;
    assert_eq!(status, 200, "{page}");
    for command in ["create -partition P12x200", "show -partition p12x200", "delete -partition p12X200"] {
        assert!(page.contains(command), "the dashboard lists {command}: {page}");
    }
    let dir = server.stop().await;

    let db = dir.path().join("events.db");
    // The dictionary is trained after the batch that passes 10,000 rows; every row after that batch is compressed.
    let compressed = sqlite3(&db, "SELECT min(id), count(*) FROM events WHERE typeof(original) = 'blob'");
    let (first, count) = compressed.split_once('|').unwrap();
    let (first, count): (i64, i64) = (first.parse().unwrap(), count.parse().unwrap());
    assert!(first > 10_000 && count == 12_601 - first && count >= 2100, "the rows after the dictionary: {compressed}");
    let from_cli = query_json(&db, &["--word", "SYSADMIN"]);
    assert_eq!(from_cli.len(), 1, "{from_cli:#?}");
    assert!(from_cli[0]["event.original"].contains("P12x200"));
    assert_eq!(query_json(&db, &["--contains", "x200", "--word", "admin"]).len(), 1);
    let auditor = query_json(&db, &["--contains", "x200 : AUDITOR"]);
    assert_eq!(auditor.len(), 1, "{auditor:#?}");
    assert_eq!(auditor[0]["hsm.partition"], "p12x200", "the fields of a compressed row: {:#?}", auditor[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_filters_past_any_date_are_refused_with_the_reason() {
    // Regression: `since=99999999999d` overflowed and panicked the handler (a dropped connection) and the CLI (101).
    let server = server_with_token().await;
    for path in [
        "/api/events?since=99999999999d",
        "/api/events?until=99999999999d",
        "/api/alerts?since=99999999999d",
        "/events?since=99999999999d",
        "/hosts/hsm-a?since=3000000y",
    ] {
        let (status, body) = get(&server, path, Some(TOKEN)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("too long ago"), "{path}: {body}");
    }
    let (status, body) = get(&server, "/api/events?since=2100y", Some(TOKEN)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("outside the years 1 to 9999"), "{body}");
    let dir = server.stop().await;
    let db = dir.path().join("events.db");
    let db = db.to_str().unwrap();
    let commands: [&[&str]; 3] = [
        &["query", "--db", db, "--since", "99999999999d"],
        &["query", "--db", db, "--until", "99999999999d"],
        &["alerts", "list", "--db", db, "--since", "99999999999d"],
    ];
    for args in commands {
        let (code, _, err) = crate::support::run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("too long ago"), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_present_and_moves_with_traffic() {
    // A receiver for the deliveries counter.
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // And one that is down, for the outbox gauges.
    let down = crate::support::free_port();
    let yaml = format!(
        "notifiers:\n  hook:\n    type: webhook\n    url: http://{hook}/hook\n  down:\n    type: webhook\n    url: http://127.0.0.1:{down}/hook\n    retry_initial: 1m\n"
    );
    let notifiers = hsmwatch::config::Config::parse(&yaml, std::path::Path::new("t.yaml")).unwrap().notifiers;
    let server = TestServer::start_with(256, move |config| {
        config.notifiers = notifiers;
        // A one-event queue: a UDP burst overflows it, which the drop counter must show.
        config.storage.queue_capacity = 1;
    })
    .await;

    let scrape = || async {
        let (status, text) = get(&server, "/metrics", None).await;
        assert_eq!(status, 200);
        text
    };
    let before = scrape().await;
    let families = [
        "hsmwatch_messages_received",
        "hsmwatch_bytes_received",
        "hsmwatch_frames_truncated",
        "hsmwatch_lines_unparsed",
        "hsmwatch_lines_unknown",
        "hsmwatch_udp_dropped",
        "hsmwatch_udp_kernel_drops",
        "hsmwatch_tcp_framing_errors",
        "hsmwatch_tcp_connections_accepted",
        "hsmwatch_tcp_connections_open",
        "hsmwatch_refused_not_allowed",
        "hsmwatch_refused_connection_limit",
        "hsmwatch_idle_closed",
        "hsmwatch_line_timeout_closed",
        "hsmwatch_evicted_stale",
        "hsmwatch_events_stored",
        "hsmwatch_store_retries",
        "hsmwatch_writer_queue_depth",
        "hsmwatch_writer_queue_bytes",
        "hsmwatch_chain_head",
        "hsmwatch_search_index_waiting_events",
        "hsmwatch_writer_batch_seconds",
        "hsmwatch_events_by_dataset",
        "hsmwatch_rule_evaluated_events",
        "hsmwatch_rule_evaluation_seconds",
        "hsmwatch_alerts",
        "hsmwatch_deliveries",
        "hsmwatch_outbox_pending",
        "hsmwatch_outbox_oldest_pending_seconds",
    ];
    for family in families {
        assert!(before.contains(&format!("# TYPE {family} ")), "{family} missing:\n{before}");
    }

    // Traffic of every kind: decoded, unknown, unparsed, oversize, a lying octet count, UDP, and an alert.
    let long = format!("<13>Mar  1 00:00:00 h app: {}\n", "x".repeat(400));
    let tcp = format!(
        "<174>Mar 21 08:00:00 hsm-m lunash [5200]: info : 0 : Command: hsm show : admin : 10.0.0.1/22\n\
         <13>Mar  1 00:00:00 hsm-m someapp: nothing a decoder knows\n\
         \u{1}\u{2} not syslog at all\n{long}\
         <6>Mar  7 02:14:09 hsm-m kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n"
    );
    send_tcp(server.tcp, tcp.as_bytes(), false).await;
    send_tcp(server.tcp, b"<13>a: first\n9999999999 <13>a: lying", false).await;
    let burst: Vec<&[u8]> = vec![b"<13>Mar  1 00:00:00 hsm-m udpapp: over udp"; 5000];
    send_udp(server.udp, &burst);
    let held_open = tokio::net::TcpStream::connect(server.tcp).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = samples(&scrape().await);
    drop(held_open);
    assert!(sum(&after, "hsmwatch_tcp_connections_open") >= 1.0, "an open connection is counted");
    assert!(sum(&after, "hsmwatch_udp_dropped_total") > 0.0, "the burst overflowed the one-event queue");
    assert_eq!(after.get("hsmwatch_outbox_pending{notifier=\"down\"}"), Some(&1.0), "{after:#?}");
    assert!(after["hsmwatch_outbox_oldest_pending_seconds{notifier=\"down\"}"] > 0.0);
    let before = samples(&before);
    let moved = [
        "hsmwatch_messages_received_total",
        "hsmwatch_bytes_received_total",
        "hsmwatch_frames_truncated_total",
        "hsmwatch_lines_unparsed_total",
        "hsmwatch_lines_unknown_total",
        "hsmwatch_tcp_framing_errors_total",
        "hsmwatch_tcp_connections_accepted_total",
        "hsmwatch_events_stored_total",
        "hsmwatch_writer_batch_seconds_count",
        "hsmwatch_events_by_dataset_total",
        "hsmwatch_rule_evaluated_events_total",
        "hsmwatch_rule_evaluation_seconds_count",
        "hsmwatch_alerts_total",
        "hsmwatch_deliveries_total",
    ];
    for name in moved {
        assert!(
            sum(&after, name) > sum(&before, name),
            "{name} did not move: {} -> {}",
            sum(&before, name),
            sum(&after, name)
        );
    }
    assert!(
        after.keys().any(|k| k.starts_with("hsmwatch_events_by_dataset_total{dataset=\"luna.lunash\"}")),
        "{after:#?}"
    );
    assert!(after.keys().any(|k| k.contains("hsmwatch_alerts_total{rule=\"luna.hsm.tamper\",severity=\"critical\"}")));
    assert!(after.keys().any(|k| k.contains("hsmwatch_deliveries_total{notifier=\"hook\",result=\"sent\"}")));
    assert!(after.keys().any(|k| k.starts_with("hsmwatch_udp_kernel_drops_total{")), "kernel drops are readable here");
    let _ = server.stop().await;
}

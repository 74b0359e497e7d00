//! Rules in the running server: alerts from lines sent over TCP, exactly one alert across a kill -9 in the middle of a
//! window, and an absence that fires with no traffic at all and resolves when traffic returns.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row};

use crate::support::{send_tcp, ServeProcess, TestServer};

/// `(rule_id, status, count, title)` of every alert, in order.
async fn alerts(db: &Path) -> Vec<(String, String, i64, String)> {
    let mut conn = SqliteConnectOptions::new().filename(db).read_only(true).connect().await.expect("open db");
    let rows = sqlx::query("SELECT rule_id, status, count, title FROM alerts ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .expect("query alerts");
    rows.iter().map(|r| (r.get("rule_id"), r.get("status"), r.get("count"), r.get("title"))).collect()
}

/// Polls until `done` holds for the alerts, or fails after 20 s.
async fn wait_for(
    db: &Path,
    what: &str,
    done: impl Fn(&[(String, String, i64, String)]) -> bool,
) -> Vec<(String, String, i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = if db.exists() { alerts(db).await } else { Vec::new() };
        if done(&found) {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; alerts: {found:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_pack_alerts_on_lines_sent_over_tcp() {
    let server = TestServer::start().await;
    let mut lines = String::new();
    for _ in 0..5 {
        lines.push_str("<86>Mar  3 22:41:50 hsm-4-1-1-9 sshd[30442]: Failed password for invalid user oracle from 203.0.113.45 port 40022 ssh2\n");
    }
    lines.push_str("<6>Mar  7 02:14:09 hsm-2-1-2-6 kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n");
    send_tcp(server.tcp, lines.as_bytes(), false).await;
    let db = server.db();
    let found = wait_for(&db, "the brute-force and tamper alerts", |a| a.len() >= 2).await;
    let _dir = server.stop().await;
    let rules: Vec<&str> = found.iter().map(|(rule, ..)| rule.as_str()).collect();
    assert!(rules.contains(&"luna.auth.bruteforce"), "{found:#?}");
    assert!(rules.contains(&"luna.hsm.tamper"), "{found:#?}");
    let brute = found.iter().find(|(rule, ..)| rule == "luna.auth.bruteforce").unwrap();
    assert_eq!((brute.1.as_str(), brute.2), ("firing", 5));
    assert_eq!(brute.3, "5 failed logins on hsm-4-1-1-9 from 203.0.113.45");

    let (code, table, err) = crate::support::run(&["alerts", "list", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        table.lines().next().unwrap().starts_with("ID")
            && table.contains("luna.hsm.tamper")
            && table.contains("critical"),
        "{table}"
    );
    let (_, json, _) =
        crate::support::run(&["alerts", "list", "--db", db.to_str().unwrap(), "--status", "firing", "--json"]);
    let rules: Vec<String> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["rule_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(rules.contains(&"luna.auth.bruteforce".to_owned()), "{json}");
}

fn rules_dir(dir: &Path, rule: &str) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(rules.join("decoders")).unwrap();
    for (name, text) in hsmwatch::pack::RuleSource::Embedded.yaml_files("decoders").unwrap() {
        let file = Path::new(&name).file_name().unwrap().to_owned();
        std::fs::write(rules.join("decoders").join(file), text).unwrap();
    }
    std::fs::write(rules.join("rule.yaml"), rule).unwrap();
}

async fn rule_state_rows(db: &Path) -> i64 {
    let mut conn = SqliteConnectOptions::new().filename(db).read_only(true).connect().await.expect("open db");
    sqlx::query_scalar("SELECT count(*) FROM rule_state").fetch_one(&mut conn).await.expect("count rule_state")
}

async fn send_line(port: u16, line: &str) {
    send_tcp(format!("127.0.0.1:{port}").parse().unwrap(), format!("{line}\n").as_bytes(), false).await;
}

async fn wait_stored(db: &Path, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while crate::support::query_json(db, &[]).len() < count {
        assert!(Instant::now() < deadline, "events were not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_window_gives_exactly_one_alert() {
    let dir = tempfile::tempdir().unwrap();
    rules_dir(
        dir.path(),
        "id: four\ntitle: Four failures\nseverity: high\nselect:\n  f:\n    event.action: ssh.login\n    event.outcome: failure\ndetect: {type: threshold, count: 4, window: 1h, group_by: [host.name]}\n",
    );
    let failure = "<86>Mar  3 22:41:50 hsm-9 sshd[1]: Failed password for root from 198.51.100.7 port 4000 ssh2";
    let server = ServeProcess::start(dir.path());
    let (port, db) = (server.port, server.db.clone());
    for _ in 0..2 {
        send_line(port, failure).await;
    }
    wait_stored(&db, 2).await;
    // Wait for the evaluation commit of that batch (the half-full window is saved), then kill with no chance to flush.
    let deadline = Instant::now() + Duration::from_secs(20);
    while rule_state_rows(&db).await == 0 {
        assert!(Instant::now() < deadline, "the rule state was not saved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.signal("KILL");
    let _ = server.wait();
    assert!(alerts(&db).await.is_empty());

    let server = ServeProcess::start_on(dir.path(), port);
    for _ in 0..2 {
        send_line(port, failure).await;
    }
    let found = wait_for(&db, "one alert", |a| !a.is_empty()).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].2, 4, "the two failures before the kill were not forgotten");
    server.signal("TERM");
    assert_eq!(server.wait().0, Some(0));

    // A further restart re-fires nothing.
    let server = ServeProcess::start_on(dir.path(), port);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("TERM");
    let _ = server.wait();
    assert_eq!(alerts(&db).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absence_fires_without_traffic_and_resolves_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    rules_dir(
        dir.path(),
        "id: quiet\ntitle: Quiet\nseverity: high\nselect:\n  any:\n    host.name: hsm-q\ndetect: {type: absence, for: 2s, group_by: [host.name]}\nmessage:\n  title: \"{{ status }} {{ group['host.name'] }}\"\n",
    );
    let server = ServeProcess::start(dir.path());
    let (port, db) = (server.port, server.db.clone());
    send_line(port, "<13>1 2026-03-01T12:00:00Z hsm-q app - - - hello").await;
    let fired = wait_for(&db, "the silence alert", |a| !a.is_empty()).await;
    assert_eq!((fired[0].1.as_str(), fired[0].3.as_str()), ("firing", "firing hsm-q"));
    send_line(port, "<13>1 2026-03-01T12:00:05Z hsm-q app - - - back").await;
    let resolved = wait_for(&db, "the resolution", |a| a.len() >= 2).await;
    assert_eq!((resolved[1].1.as_str(), resolved[1].3.as_str()), ("resolved", "resolved hsm-q"));
    server.signal("TERM");
    assert_eq!(server.wait().0, Some(0));
}

fn titled_rule(title: &str) -> String {
    format!(
        "id: r\ntitle: T\nseverity: low\nselect:\n  s:\n    event.action: ssh.login\nmessage:\n  title: \"{title}\"\n"
    )
}

const COUNTED: &str = "id: two\ntitle: Two\nseverity: low\nselect:\n  s:\n    event.action: partition.create\ndetect: {type: threshold, count: 2, window: 1h, group_by: [host.name]}\nmessage:\n  title: \"two creates\"\n";
const LOGIN: &str = "<86>Feb 28 10:01:17 hsm-r sshd[1]: Accepted password for admin from 10.9.9.9 port 1 ssh2";
const CREATE: &str =
    "<174>Mar  9 10:00:01 hsm-r lunash [1]: info : 0 : Command: partition create -partition p : admin : Console";

/// Sends a login line until an alert titled `title` appears; returns every alert title.
async fn login_until(port: u16, db: &Path, title: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        send_line(port, LOGIN).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let titles: Vec<String> =
            if db.exists() { alerts(db).await.into_iter().map(|a| a.3).collect() } else { Vec::new() };
        if titles.iter().any(|t| t == title) {
            return titles;
        }
        assert!(Instant::now() < deadline, "no alert titled {title:?}: {titles:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reload_on_sighup_and_on_change_keeping_state_and_refusing_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    rules_dir(dir.path(), &titled_rule("first"));
    std::fs::write(dir.path().join("rules/counted.yaml"), COUNTED).unwrap();
    let server = ServeProcess::start(dir.path());
    let (port, db) = (server.port, server.db.clone());
    login_until(port, &db, "first").await;
    send_line(port, CREATE).await;

    // SIGHUP: the changed rule takes over; the unchanged threshold keeps its half-full window.
    std::fs::write(dir.path().join("rules/rule.yaml"), titled_rule("second")).unwrap();
    server.signal("HUP");
    let titles = login_until(port, &db, "second").await;
    let after = titles.iter().position(|t| t == "second").unwrap();
    assert!(titles[after..].iter().all(|t| t != "first"), "{titles:?}");
    send_line(port, CREATE).await;
    let found = wait_for(&db, "the threshold kept across the reload", |a| a.iter().any(|x| x.3 == "two creates")).await;
    assert_eq!(found.iter().find(|x| x.3 == "two creates").unwrap().2, 2);

    // A broken file is refused: the running rules stay.
    std::fs::write(dir.path().join("rules/rule.yaml"), "id: r\ntitle: T\nseverity: loud\n").unwrap();
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = alerts(&db).await.len();
    send_line(port, LOGIN).await;
    let found = wait_for(&db, "an alert from the running rule", |a| a.len() > before).await;
    assert_eq!(found.last().unwrap().3, "second");

    // Decoders gone from the directory: refused, the running decoders and rules stay.
    std::fs::rename(dir.path().join("rules/decoders"), dir.path().join("decoders-away")).unwrap();
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = alerts(&db).await.len();
    send_line(port, LOGIN).await;
    wait_for(&db, "an alert decoded by the running decoders", |a| a.len() > before).await;
    std::fs::rename(dir.path().join("decoders-away"), dir.path().join("rules/decoders")).unwrap();

    // A change on disk alone is picked up too.
    std::fs::write(dir.path().join("rules/rule.yaml"), titled_rule("third")).unwrap();
    login_until(port, &db, "third").await;
    server.signal("TERM");
    let (code, log) = server.wait();
    assert_eq!(code, Some(0));
    assert!(log.contains("reload failed; the running rules and decoders stay"), "{log}");
    assert!(log.contains("unknown variant `loud`"), "{log}");
    assert!(log.contains("decoders: holds no decoder files"), "{log}");
    // Where rules and decoders came from is said at start.
    let rules = dir.path().join("rules");
    assert!(log.contains(&format!("decoders loaded source=directory {}", rules.display())), "{log}");
    assert!(log.contains("./rules exists in the working directory"), "{log}");
}

async fn scalar(db: &Path, sql: &str) -> i64 {
    let mut conn = SqliteConnectOptions::new().filename(db).connect().await.unwrap();
    sqlx::query(sql).fetch_one(&mut conn).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_evaluated_in_the_background_and_in_order() {
    // An import stores lines without evaluating them; the next server start must listen at once and catch up.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backlog.db");
    let file = dir.path().join("backlog.log");
    let backlog = 5000;
    let lines: String = (0..backlog)
        .map(|i| format!("<6>Mar  7 02:14:09 hsm-b{i} kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let (code, _, err) = crate::support::run(&["import", "--db", db.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let stored = db.clone();
    let server = TestServer::start_with(64 * 1024, move |config| config.storage.path = stored).await;
    let cursor = scalar(&db, "SELECT last_event_id FROM rule_cursor").await;
    assert!(cursor < backlog, "the server started before the backlog was evaluated (cursor {cursor})");
    send_tcp(
        server.tcp,
        b"<6>Mar  7 02:15:00 hsm-late kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration\n",
        false,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar(&db, "SELECT count(*) FROM alerts").await < backlog + 1 {
        assert!(Instant::now() < deadline, "the backlog was not caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _dir = server.stop().await;
    let late = scalar(&db, "SELECT id FROM alerts WHERE host = 'hsm-late'").await;
    let last_backlog = scalar(&db, "SELECT max(id) FROM alerts WHERE host LIKE 'hsm-b%'").await;
    assert!(late > last_backlog, "events are evaluated in the order they were stored");
    assert_eq!(scalar(&db, "SELECT count(DISTINCT host) FROM alerts").await, backlog + 1, "each line alerted once");
    assert_eq!(scalar(&db, "SELECT count(*) FROM alerts").await, backlog + 1);
}

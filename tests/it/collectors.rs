//! Several collectors on one PostgreSQL database, as deployed: real `hsmwatch serve` processes (stderr a pipe) sharing
//! a real PostgreSQL server, the same lines sent to each (an HSM with two remote hosts), alerts delivered to a real
//! HTTP receiver. Lines are stored once, an alert fires once and is delivered once; when the leader is killed with
//! `kill -9` in the middle of a threshold window, another collector takes over and fires once with the full count; a
//! collector started later takes over from the shared cursor without evaluating history again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use crate::postgres::PgPeer;
use crate::support::{free_port, rules_dir_with, send_tcp, start_receiver, stderr_of};

const BIN: &str = env!("CARGO_BIN_EXE_hsmwatch");

/// Six failed logins from one address within ten minutes.
const RULE: &str = "id: six\ntitle: Six failures\nseverity: high\nselect:\n  f:\n    event.action: ssh.login\n    \
                    event.outcome: failure\ndetect: {type: threshold, count: 6, window: 10m, group_by: [source.ip]}\n";

/// The `n`th failed login (distinct lines: each is one event, whichever collectors receive it).
fn failure(n: u32) -> String {
    format!(
        "<86>Mar  3 22:41:{n:02} hsm-9 sshd[1]: Failed password for root from 198.51.100.7 port {} ssh2\n",
        4000 + n
    )
}

/// A real `hsmwatch serve` on the shared database.
struct Collector {
    child: Child,
    name: &'static str,
    config: PathBuf,
    tcp: SocketAddr,
    http: SocketAddr,
}

impl Collector {
    /// Starts collector `name` with `rules`, delivering to `hook`, and waits until it listens.
    fn start(dir: &Path, name: &'static str, peer: &PgPeer, rules: &Path, hook: SocketAddr) -> Collector {
        Self::start_with_queue(dir, name, peer, rules, hook, 16_384)
    }

    /// [`Collector::start`] with a writer queue of `queue` events.
    fn start_with_queue(
        dir: &Path,
        name: &'static str,
        peer: &PgPeer,
        rules: &Path,
        hook: SocketAddr,
        queue: usize,
    ) -> Collector {
        Self::start_on(dir, name, &peer.url(), &format!("backend: postgres\n  queue_capacity: {queue}"), rules, hook)
    }

    /// A collector on its own SQLite database `db` (the shared database's settings there too, for `db migrate-to`).
    fn start_on_sqlite(
        dir: &Path,
        name: &'static str,
        peer: &PgPeer,
        db: &Path,
        rules: &Path,
        hook: SocketAddr,
    ) -> Collector {
        Self::start_on(dir, name, &peer.url(), &format!("path: {}", db.display()), rules, hook)
    }

    /// A collector whose `storage` section begins with `storage`.
    fn start_on(dir: &Path, name: &'static str, url: &str, storage: &str, rules: &Path, hook: SocketAddr) -> Collector {
        let (tcp, http) = (free_port(), free_port());
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "storage:\n  {storage}\n  postgres:\n    url_env: HSMWATCH_TEST_DATABASE_URL\n    \
                 collector: {name}\n    leader_timeout: 3s\nlisten:\n  tcp:\n    - address: 127.0.0.1:{tcp}\n\
                 http:\n  address: 127.0.0.1:{http}\nrules:\n  dir: {}\nnotifiers:\n  hook:\n    type: webhook\n    \
                 url_env: HSMWATCH_TEST_HOOK\n    retry_initial: 100ms\n",
                rules.display()
            ),
        )
        .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .env("HSMWATCH_TEST_DATABASE_URL", url)
            .env("HSMWATCH_TEST_HOOK", format!("http://{hook}/hook"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hsmwatch serve");
        let tcp: SocketAddr = format!("127.0.0.1:{tcp}").parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
        // The HTTP listener is bound after the syslog ones: a loaded machine shows the gap.
        let deadline = Instant::now() + Duration::from_secs(20);
        for address in [tcp, http] {
            while std::net::TcpStream::connect(address).is_err() {
                assert!(Instant::now() < deadline, "collector {name} did not start listening on {address}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Collector { child, name, config, tcp, http }
    }

    /// `/readyz`'s leadership: whether it leads, and the leader's name.
    async fn leadership(&self) -> (bool, String) {
        let body: Value = reqwest::get(format!("http://{}/readyz", self.http)).await.unwrap().json().await.unwrap();
        let leadership = &body["leadership"];
        assert_eq!(leadership["collector"], self.name, "{body}");
        (leadership["leading"] == true, leadership["leader"].as_str().unwrap_or_default().to_owned())
    }

    /// Stops it with `signal` and returns what it logged.
    fn stop(mut self, signal: &str) -> String {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        let said = stderr_of(&mut self.child);
        let _ = self.child.wait();
        said
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("collector {} said:\n{}", self.name, stderr_of(&mut self.child));
        }
    }
}

/// Waits until one of `collectors` leads and every other names it as the leader; returns the leader's index.
async fn leader_among(collectors: &[&Collector]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut views = Vec::new();
        for collector in collectors {
            views.push(collector.leadership().await);
        }
        let leaders: Vec<usize> = (0..views.len()).filter(|i| views[*i].0).collect();
        if let [leader] = leaders[..] {
            let name = format!("{} ", collectors[leader].name);
            if views.iter().all(|(_, named)| named.starts_with(&name)) {
                return leader;
            }
        }
        assert!(Instant::now() < deadline, "no single leader: {views:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rows of the shared events table: line and observers.
async fn stored(peer: &PgPeer) -> Vec<(String, Vec<String>)> {
    let mut conn = sqlx::PgConnection::connect(&peer.url()).await.unwrap();
    sqlx::query_as(
        "SELECT original, array_prepend(observer, ARRAY(SELECT collector FROM event_copies c WHERE c.event_id = e.id)) \
         FROM events e ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

/// The id of the first alert `alerts list --json` printed.
fn listed_id(listed: &str) -> i64 {
    let first: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    first["id"].as_i64().unwrap()
}

/// The shared rule cursor.
async fn cursor(peer: &PgPeer) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&peer.url()).await.unwrap();
    sqlx::query_scalar("SELECT last_event_id FROM rule_cursor").fetch_one(&mut conn).await.unwrap()
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rules(dir: &Path) -> PathBuf {
    rules_dir_with(dir, RULE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_sent_to_two_collectors_are_stored_once_and_alert_once() {
    let peer = PgPeer::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules(dir.path());
    let (hook, receiver) = start_receiver().await;
    let a = Collector::start(dir.path(), "collector-a", &peer, &rules, hook);
    let b = Collector::start(dir.path(), "collector-b", &peer, &rules, hook);
    let leader = leader_among(&[&a, &b]).await;

    // An HSM with both collectors as remote hosts: every line goes to each.
    let lines: String = (1..=6).map(failure).collect();
    send_tcp(a.tcp, lines.as_bytes(), false).await;
    send_tcp(b.tcp, lines.as_bytes(), false).await;
    wait_until("the alert's delivery", Duration::from_secs(20), async || !receiver.bodies().is_empty()).await;
    wait_until("both copies of every line", Duration::from_secs(20), async || {
        stored(&peer).await.iter().filter(|(_, observers)| observers.len() == 2).count() == 6
    })
    .await;
    // Time for a second delivery, were there one.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let rows = stored(&peer).await;
    assert_eq!(rows.len(), 6, "each line stored once: {rows:?}");
    for (line, mut observers) in rows {
        observers.sort();
        assert_eq!(observers, ["collector-a", "collector-b"], "{line}");
    }
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "one alert, delivered once: {bodies:?}");
    assert_eq!((bodies[0]["rule"].as_str(), bodies[0]["count"].as_i64()), (Some("six"), Some(6)), "{}", bodies[0]);

    // Any collector answers for the shared alerts.
    let follower = [&a, &b][1 - leader];
    let listed: Value =
        reqwest::get(format!("http://{}/api/alerts", follower.http)).await.unwrap().json().await.unwrap();
    let listed = listed["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0]["rule_id"].as_str(), listed[0]["state"].as_str()), (Some("six"), Some("firing")));

    // The shared events answer the API and the CLI of any collector's configuration.
    let found: Value = reqwest::get(format!("http://{}/api/events?contains=port%204003", follower.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found = found["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["source.ip"], "198.51.100.7");
    let peer_url = peer.url();
    let cli = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&follower.config)
            .env("HSMWATCH_TEST_DATABASE_URL", &peer_url)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let lines = cli(&["query", "--word", "4005", "--json"]);
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(lines.contains("port 4005"), "{lines}");
    let listed = cli(&["alerts", "list", "--json"]);
    assert!(listed.contains(r#""rule_id":"six""#), "{listed}");
    // The inventory says which collectors hear the HSM.
    let hosts: Value = reqwest::get(format!("http://{}/api/hosts", follower.http)).await.unwrap().json().await.unwrap();
    let hosts = hosts["hosts"].as_array().cloned().unwrap_or_default();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!((hosts[0]["name"].as_str(), hosts[0]["events"].as_u64()), (Some("hsm-9"), Some(6)), "{}", hosts[0]);
    let heard: Vec<(&str, u64)> = hosts[0]["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["collector"].as_str().unwrap(), c["events"].as_u64().unwrap()))
        .collect();
    assert_eq!(heard, [("collector-a", 6), ("collector-b", 6)]);
    // The dashboard's pages run on the shared database and say which collectors hear the HSM.
    let page = async |path: &str| {
        let response = reqwest::get(format!("http://{}{path}", follower.http)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    };
    let overview = page("/").await;
    assert!(overview.contains("heard by collector-a, collector-b"), "{overview}");
    let host = page("/hosts/hsm-9").await;
    assert!(host.contains("<h2>Collectors</h2>") && host.contains("collector-b"), "{host}");
    assert!(page("/events?contains=port+4003").await.contains("port 4003"));
    assert!(page("/alerts").await.contains("Six failures"));
    // The charts' hourly counts: each line once, however many collectors received it.
    let mut conn = sqlx::PgConnection::connect(&peer.url()).await.unwrap();
    let hourly: (i64, i64) =
        sqlx::query_as("SELECT sum(events)::int8, sum(failed_logins)::int8 FROM event_hours WHERE host = 'hsm-9'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(hourly, (6, 6));
    let stats: Value = serde_json::from_str(&cli(&["db", "stats", "--json"])).unwrap();
    assert_eq!(
        (stats["events"].as_i64(), stats["copies"].as_i64(), stats["hosts"].as_i64()),
        (Some(6), Some(6), Some(1))
    );
    assert_eq!(stats["collectors"], serde_json::json!({"collector-a": 6, "collector-b": 6}));
    assert_eq!(stats["alerts"].as_i64(), Some(1), "{stats}");
    let leader_name = format!("{} ", [&a, &b][leader].name);
    assert!(stats["leader"][0].as_str().unwrap_or_default().starts_with(&leader_name), "{stats}");
    assert!(!stats.to_string().contains("postgres://"), "{stats}");
    let text = cli(&["db", "stats"]);
    assert!(text.contains("database      PostgreSQL 127.0.0.1:") && text.contains("6 copies"), "{text}");
    let runs = stats["search_runs"].as_i64().unwrap_or_default();
    assert!((1..=6).contains(&runs) && stats["search_bytes"].as_i64() > Some(0), "{stats}");
    assert!(text.contains(&format!("search index  {runs} runs of up to 256 events")), "{text}");
    // Triage and silences from the CLI, on the shared database: any collector's API sees them.
    let alert_id = listed_id(&listed);
    let acked = cli(&["alerts", "ack", &alert_id.to_string(), "--by", "alice"]);
    assert!(acked.contains(&format!("alert {alert_id}: acknowledged by alice")), "{acked}");
    let shown = cli(&["alerts", "show", &alert_id.to_string(), "--json"]);
    assert!(shown.contains(r#""state":"acknowledged""#), "{shown}");
    let added = cli(&["silence", "add", "rule=six", "--for", "1h", "--reason", "maintenance", "--by", "bob"]);
    assert!(added.starts_with("silence 1 active until"), "{added}");
    assert!(cli(&["silence", "list"]).contains("maintenance"));
    let table = cli(&["hosts"]);
    assert!(table.contains("heard by collector-a") && table.contains("heard by collector-b"), "{table}");

    let metrics = crate::support::scrape(&[&a, &b][leader].http.to_string());
    let leading = format!("hsmwatch_leader{{collector=\"{}\"}} 1", [&a, &b][leader].name);
    assert!(metrics.contains(&leading), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("hsmwatch_events_stored_copies_total")), "{metrics}");
    for collector in [a, b] {
        let said = collector.stop("TERM");
        assert!(said.contains("database open (PostgreSQL, shared by collectors)"), "{said}");
        assert!(!said.contains("postgres://"), "the URL never shows: {said}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_in_a_window_is_followed_by_one_alert_with_the_full_count() {
    let peer = PgPeer::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules(dir.path());
    let (hook, receiver) = start_receiver().await;
    let a = Collector::start(dir.path(), "collector-a", &peer, &rules, hook);
    assert_eq!(leader_among(&[&a]).await, 0, "the only collector leads");
    let b = Collector::start(dir.path(), "collector-b", &peer, &rules, hook);
    assert_eq!(leader_among(&[&a, &b]).await, 0, "the first leads on");

    // Half a window, evaluated by the leader (the shared cursor passes the lines), then the leader dies.
    let first: String = (1..=3).map(failure).collect();
    send_tcp(a.tcp, first.as_bytes(), false).await;
    send_tcp(b.tcp, first.as_bytes(), false).await;
    wait_until("the leader's evaluation of three lines", Duration::from_secs(20), async || cursor(&peer).await >= 3)
        .await;
    let killed = Instant::now();
    let said = a.stop("KILL");
    assert!(said.contains("leading: evaluating rules and sending alerts"), "{said}");

    // The rest of the window reaches the survivor, which takes over once the lease has run out.
    let rest: String = (4..=6).map(failure).collect();
    send_tcp(b.tcp, rest.as_bytes(), false).await;
    wait_until("the survivor's alert", Duration::from_secs(30), async || !receiver.bodies().is_empty()).await;
    let failover = killed.elapsed();
    eprintln!("failover: kill -9 of the leader to the first alert delivered by the next: {failover:?}");
    assert!(b.leadership().await.0, "the survivor leads");

    // A collector started now joins without evaluating history again, and takes over at once when the leader stops
    // cleanly (it resigns).
    let c = Collector::start(dir.path(), "collector-c", &peer, &rules, hook);
    let said = b.stop("TERM");
    assert!(said.contains("gave up the lead"), "{said}");
    assert_eq!(leader_among(&[&c]).await, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "exactly one alert across the failover and the handover: {bodies:?}");
    assert_eq!(bodies[0]["count"].as_i64(), Some(6), "the three lines before the kill were not forgotten");
    let said = c.stop("TERM");
    assert!(said.contains("leading: evaluating rules and sending alerts"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_slows_the_senders_and_loses_nothing() {
    let mut peer = PgPeer::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules(dir.path());
    let (hook, _receiver) = start_receiver().await;
    let a = Collector::start_with_queue(dir.path(), "collector-a", &peer, &rules, hook, 500);
    leader_among(&[&a]).await;
    const LINES: u32 = 6000;
    let sender = {
        let tcp = a.tcp;
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(tcp).await.unwrap();
            for chunk in 0..LINES / 100 {
                let lines: String = (chunk * 100..(chunk + 1) * 100)
                    .map(|n| format!("<86>Mar  3 22:41:50 hsm-9 sshd[1]: Failed password for u{n} from 198.51.100.7 port {n} ssh2\n"))
                    .collect();
                tokio::io::AsyncWriteExt::write_all(&mut stream, lines.as_bytes()).await.unwrap();
                // About nine seconds of traffic: the outage falls in the middle of it.
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    wait_until("some lines stored", Duration::from_secs(20), async || !stored(&peer).await.is_empty()).await;
    // The database goes away under load (a restart, a failover) for longer than a writer waits for a connection, and
    // comes back.
    peer.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    peer.resume();
    sender.await.unwrap();
    wait_until("every line", Duration::from_secs(60), async || stored(&peer).await.len() >= LINES as usize).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rows = stored(&peer).await;
    let distinct: std::collections::HashSet<&String> = rows.iter().map(|(line, _)| line).collect();
    assert_eq!((rows.len(), distinct.len()), (LINES as usize, LINES as usize), "each line stored once");
    let metrics = crate::support::scrape(&a.http.to_string());
    let retries = crate::support::metric_value(&metrics, "hsmwatch_store_retries_total").unwrap_or(0.0);
    assert!(retries > 0.0, "the writer held its batch and retried: {metrics}");
    let said = a.stop("TERM");
    assert!(said.contains("cannot commit batch; holding it and retrying"), "{said}");
    assert!(!said.contains("giving up"), "{said}");
}

/// Runs the CLI with `args` on the shared database at `url`; returns its exit code, stdout and stderr.
fn cli_on(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(BIN).args(args).env("HSMWATCH_TEST_DATABASE_URL", url).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

/// The head hash `verify --json` printed.
fn verified_head(printed: &str) -> String {
    let verified: Value = serde_json::from_str(printed.trim()).unwrap_or_else(|_| panic!("{printed}"));
    assert_eq!(verified["intact"], true, "{verified}");
    verified["head"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_moved_to_postgres_verifies_and_a_collector_goes_on_from_it() {
    let peer = PgPeer::start();
    let url = peer.url();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules(dir.path());
    let (hook, receiver) = start_receiver().await;
    let db = dir.path().join("island.db");

    // A collector on its own SQLite database: an alert fired and delivered, acknowledged, a silence added.
    let island = Collector::start_on_sqlite(dir.path(), "island", &peer, &db, &rules, hook);
    let closed = "<86>Mar  3 22:42:00 hsm-9 sshd[1]: Connection closed by 198.51.100.8\n";
    let lines: String = (1..=6).map(failure).chain([closed.to_owned(), closed.to_owned()]).collect();
    send_tcp(island.tcp, lines.as_bytes(), false).await;
    wait_until("the alert's delivery", Duration::from_secs(20), async || !receiver.bodies().is_empty()).await;
    let sqlite_config = island.config.clone();
    let said = island.stop("TERM");
    let db_arg = db.to_str().unwrap();
    let (code, listed, _) = cli_on(&url, &["alerts", "list", "--json", "--db", db_arg]);
    assert_eq!(code, Some(0));
    let alert = listed_id(&listed).to_string();
    assert_eq!(cli_on(&url, &["alerts", "ack", &alert, "--db", db_arg]).0, Some(0));
    let silence = ["silence", "add", "--for", "2h", "--reason", "window", "host=other", "--db", db_arg];
    assert_eq!(cli_on(&url, &silence).0, Some(0));
    let (code, printed, _) = cli_on(&url, &["verify", "--json", "--db", db_arg]);
    assert_eq!(code, Some(0), "{said}");
    let sqlite_head = verified_head(&printed);

    // Moved: every table's rows on both sides, and the chain verifies on the copy.
    let config_arg = sqlite_config.to_str().unwrap();
    let (code, out, err) = cli_on(&url, &["db", "migrate-to", "postgres", "--config", config_arg]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let copied: Vec<(&str, u64, u64)> = out
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                [table, copied, "rows", "copied,", target, "in", "the", "target"] => {
                    Some((table, copied.parse().unwrap(), target.parse().unwrap()))
                }
                _ => None,
            }
        })
        .collect();
    let tables: Vec<&str> = copied.iter().map(|(table, _, _)| *table).collect();
    for table in
        ["events", "alerts", "alert_changes", "outbox", "silences", "rule_state", "rule_cursor", "event_batches"]
    {
        assert!(tables.contains(&table), "{table} copied: {out}");
    }
    assert!(copied.iter().all(|(_, source, target)| source == target && *source > 0), "{out}");
    assert_eq!(copied[0], ("events", 8, 8), "{out}");
    assert!(out.contains("verify on the target: intact"), "{out}");
    assert!(err.contains("events: 8 of 8 rows (100 %)") && err.contains("building the indexes of the events"), "{err}");
    assert!(!format!("{out}{err}").contains("postgres://"), "the URL is never printed: {out}{err}");
    // The events' indexes, made again after the copy, are on every partition and valid.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (partitions, on_partitions, on_events, invalid): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass), \
         (SELECT count(*) FROM pg_index WHERE indrelid IN (SELECT inhrelid FROM pg_inherits \
          WHERE inhparent = 'events'::regclass)), \
         (SELECT count(*) FROM pg_index WHERE indrelid = 'events'::regclass), \
         (SELECT count(*) FROM pg_index WHERE NOT indisvalid)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((on_events, on_partitions, invalid), (6, 6 * partitions, 0), "{partitions} partitions");
    let (code, _, err) = cli_on(&url, &["db", "migrate-to", "postgres", "--config", config_arg]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already holds 8 events"), "a second copy into the same database is refused: {err}");

    // A collector on the shared database goes on from there: the history is not evaluated again, the chain continues.
    let shared = Collector::start(dir.path(), "shared", &peer, &rules, hook);
    leader_among(&[&shared]).await;
    let (code, printed, _) = cli_on(&url, &["verify", "--json", "--config", shared.config.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert_eq!(verified_head(&printed), sqlite_head, "the copy's chain is the SQLite database's, head for head");
    let pg_cli = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--config", shared.config.to_str().unwrap()]);
        let (code, out, err) = cli_on(&url, &args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        out
    };
    let listed = pg_cli(&["alerts", "list", "--json"]);
    assert!(listed.contains(r#""state":"acknowledged""#), "{listed}");
    assert!(pg_cli(&["silence", "list"]).contains("host=other"));
    assert_eq!(pg_cli(&["query", "--word", "198.51.100.8", "--json"]).lines().count(), 2, "identical lines stay two");
    let other: String = (1..=6).map(|n| failure(n).replace("198.51.100.7", "198.51.100.9")).collect();
    send_tcp(shared.tcp, other.as_bytes(), false).await;
    let firing = |bodies: &[Value], ip: &str| {
        bodies.iter().filter(|b| b["status"] == "firing" && b["group"]["source.ip"] == ip).count()
    };
    wait_until("the new alert's delivery", Duration::from_secs(20), async || {
        firing(&receiver.bodies(), "198.51.100.9") > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bodies = receiver.bodies();
    assert_eq!(firing(&bodies, "198.51.100.7"), 1, "the moved history fired nothing again: {bodies:?}");
    assert_eq!(firing(&bodies, "198.51.100.9"), 1, "{bodies:?}");
    // The acknowledgement's notice, queued in SQLite after that server stopped, is delivered from the moved outbox.
    assert_eq!(bodies.iter().filter(|b| b["status"] == "acknowledged").count(), 1, "{bodies:?}");
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    let (code, printed, _) = cli_on(&url, &["verify", "--json", "--config", shared.config.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    let verified: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(verified["events"].as_u64(), Some(14), "{verified}");
    assert_ne!(verified["head"].as_str().unwrap(), sqlite_head, "the shared collector's batches extend the chain");

    // A row deleted behind hsmwatch's back is found on PostgreSQL as on SQLite.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM events WHERE id = (SELECT min(id) FROM events)").execute(&mut conn).await.unwrap();
    let (code, _, err) = cli_on(&url, &["verify", "--config", shared.config.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TAMPERED: batch") && err.contains("rows were deleted"), "{err}");
    drop(shared);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_imported_into_the_shared_database_is_stored_once_however_often_it_is_imported() {
    let peer = PgPeer::start();
    let url = peer.url();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shared.yaml");
    std::fs::write(
        &config,
        "storage:\n  backend: postgres\n  postgres:\n    url_env: HSMWATCH_TEST_DATABASE_URL\n    collector: importer\n",
    )
    .unwrap();
    let archive = dir.path().join("hsm-9.log");
    // Two identical failed logins in one second are two events; the archive holds them once each.
    let lines: String = [failure(1), failure(1), failure(2)].concat();
    std::fs::write(&archive, lines).unwrap();
    let config_arg = config.to_str().unwrap();
    let import = || cli_on(&url, &["import", "--year", "2026", "--config", config_arg, archive.to_str().unwrap()]);
    let (code, out, err) = import();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("3 lines, 3 events: 3 decoded") && !out.contains("stored already"), "{out}");
    let (code, out, err) = import();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("(3 of them stored already: not again)"), "{out}");
    let (code, found, _) = cli_on(&url, &["query", "--config", config_arg, "--host", "hsm-9", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(found.lines().count(), 3, "{found}");
    let rows = stored(&peer).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|(_, observers)| observers == &["importer"]), "{rows:?}");
    let (code, printed, _) = cli_on(&url, &["verify", "--json", "--config", config_arg]);
    assert_eq!(code, Some(0), "{printed}");
    let verified: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(verified["events"].as_u64(), Some(3), "{verified}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_altered_before_its_move_is_told_from_a_copy_that_differs() {
    let peer = PgPeer::start();
    let url = peer.url();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("altered.db");
    let archive = dir.path().join("hsm-9.log");
    std::fs::write(&archive, [failure(1), failure(2)].concat()).unwrap();
    let db_arg = db.to_str().unwrap();
    assert_eq!(cli_on(&url, &["import", "--year", "2026", "--db", db_arg, archive.to_str().unwrap()]).0, Some(0));
    crate::support::sqlite3(&db, "UPDATE events SET user_name = 'mallory' WHERE id = 1");
    let config = dir.path().join("move.yaml");
    std::fs::write(&config, "storage:\n  postgres:\n    url_env: HSMWATCH_TEST_DATABASE_URL\n").unwrap();
    let (code, out, err) =
        cli_on(&url, &["db", "migrate-to", "postgres", "--db", db_arg, "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("verify on the target: BROKEN: batch 1: "), "{out}");
    assert!(err.contains("does not verify on the source either, at the same record (batch 1: "), "{err}");
    assert!(err.contains("which is faithful to it"), "{err}");
}

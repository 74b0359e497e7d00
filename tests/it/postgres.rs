//! The PostgreSQL store against a real PostgreSQL: a cluster of the test's own (`initdb` in a temporary directory,
//! `postgres` on a loopback port, stopped by its process id), two collectors writing the same Luna lines into it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use hsmwatch::decode::{Decoders, Origin};
use hsmwatch::ingest::frame_to_event;
use hsmwatch::pack::RuleSource;
use hsmwatch::store::chain::{self, Finding};
use hsmwatch::store::postgres::{BatchStored, Lead, PgStore, DEFAULT_COPY_WINDOW};
use hsmwatch::store::query::{Cursor, EventFilter};
use hsmwatch::store::rule_state::StateChange;
use hsmwatch::store::StoreError;
use sqlx::Connection;

use crate::support::free_port;

/// A PostgreSQL server of the test's own. The server refuses to run as root: when the tests do, it runs as the
/// `postgres` user Debian's package makes.
pub struct PgPeer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// More `-c name=value` settings for the server.
    settings: Vec<String>,
    /// Its loopback port.
    pub port: u16,
}

/// The directory of Debian's PostgreSQL programs (the newest version installed); the test fails when there is none.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|bin| bin.join("initdb").exists());
    found.sort_by_key(|bin| bin.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    found.pop().expect("PostgreSQL's server is not installed: the tests need it (.ci/run installs it with apt-get)")
}

/// Whether the tests run as root.
fn as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` from PostgreSQL's directory, as the `postgres` user when the tests run as root (setpriv replaces itself
/// with the program, so the child's process id is the server's).
fn postgres_command(program: &str) -> Command {
    let path = postgres_bin().join(program);
    if as_root() {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

impl PgPeer {
    /// Makes a cluster (superuser `hsmwatch`, trusted on loopback) and starts it.
    pub fn start() -> PgPeer {
        Self::start_with(|_| Vec::new())
    }

    /// Makes a cluster and starts it with the settings `settings` gives, from the cluster's directory (where it may
    /// write files the server reads: they are handed to the server's user with the directory).
    pub fn start_with(settings: impl FnOnce(&Path) -> Vec<String>) -> PgPeer {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        if as_root() {
            let status = Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown the cluster's directory to postgres");
        }
        let output = postgres_command("initdb")
            .args(["-U", "hsmwatch", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N", "-D"])
            .arg(dir.path().join("data"))
            .output()
            .expect("run initdb");
        assert!(output.status.success(), "initdb: {}", String::from_utf8_lossy(&output.stderr));
        let mut peer = PgPeer { child: None, dir, settings, port: free_port() };
        peer.resume();
        peer
    }

    /// Starts the server and waits until it accepts connections.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("postgres.log")).unwrap();
        let child = postgres_command("postgres")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-k"])
            .arg(self.dir.path())
            .args(self.settings.iter().flat_map(|setting| ["-c", setting.as_str()]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "postgres did not listen within 20 s:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://hsmwatch@127.0.0.1:{}/postgres", self.port)
    }

    /// Its log, for failures.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl PgPeer {
    /// Stops the server with a fast shutdown (SIGINT: connections are cut) by process id; [`PgPeer::resume`] starts
    /// it again on the same cluster.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for PgPeer {
    /// A fast shutdown, then the cluster's directory goes with the temporary directory.
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("postgres in {} said:\n{}", self.dir().display(), self.log());
        }
    }
}

/// Luna lines of `host` at `at` (seconds into 2026-11-30 and 2026-12-01), decoded as a collector does.
fn luna_events(lines: &[(u32, &str, &str)]) -> Vec<hsmwatch::event::Event> {
    let decoders = Decoders::load(&RuleSource::Embedded).expect("shipped decoders");
    let origin = Origin::from_peer("127.0.0.1:41822".parse().unwrap());
    lines
        .iter()
        .map(|(at, host, message)| {
            let time =
                Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap() + chrono::Duration::seconds(i64::from(*at));
            let line = format!("<38>1 {} {host} NTLS 2345 - - {message}\n", time.format("%Y-%m-%dT%H:%M:%S+00:00"));
            frame_to_event(line.as_bytes(), false, &origin, &decoders)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_store_each_line_once_and_both_are_its_observers() {
    let peer = PgPeer::start();
    let first = PgStore::open(&peer.url(), "collector-a", DEFAULT_COPY_WINDOW).await.unwrap();
    let second = PgStore::open(&peer.url(), "collector-b", DEFAULT_COPY_WINDOW).await.unwrap();
    let failed = "Failed to authenticate client 10.0.0.7 (certificate mismatch)";
    let mut lines: Vec<(u32, String, String)> = (0..500)
        .map(|i| {
            (
                i * 300,
                format!("hsm{}", i % 5),
                format!("Info: client 10.0.{}.{} connected to partition p{i}", i % 7, i % 200),
            )
        })
        .collect();
    // Two identical failed logins in the same second from one appliance: two events, not a copy.
    lines.push((100, "hsm1".into(), failed.into()));
    lines.push((100, "hsm1".into(), failed.into()));
    lines.push((200, "hsm2".into(), "Info: partition P12X200 created".into()));
    let borrowed: Vec<(u32, &str, &str)> = lines.iter().map(|(at, h, m)| (*at, h.as_str(), m.as_str())).collect();
    let events = luna_events(&borrowed);

    // The appliances send to both collectors: whichever stores first stores, the other adds itself.
    assert_eq!(first.insert_batch(&events).await.unwrap(), BatchStored { stored: 503, copies: 0 });
    assert_eq!(second.insert_batch(&events).await.unwrap(), BatchStored { stored: 0, copies: 503 });
    // A batch sent again by the same collector (its commit's answer lost) changes nothing.
    let again = PgStore::open(&peer.url(), "collector-a", DEFAULT_COPY_WINDOW).await.unwrap();
    assert_eq!(again.insert_batch(&events).await.unwrap(), BatchStored { stored: 0, copies: 0 });

    let stored = first.events_after(0, 10_000).await.unwrap();
    assert_eq!(stored.len(), 503);
    assert!(stored.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert!(stored.iter().all(|e| e.observers == ["collector-a", "collector-b"]), "{:?}", stored[0].observers);
    // Read back as stored: every field of every event.
    for (read, sent) in stored.iter().zip(&events) {
        let fields =
            |event: &hsmwatch::event::Event| event.fields().map(|(n, v)| (n, v.to_owned())).collect::<Vec<_>>();
        assert_eq!(fields(&read.event), fields(sent));
        assert_eq!(read.event.timestamp, sent.timestamp);
    }
    let logins = stored.iter().filter(|e| e.event.get("event.original").is_some_and(|l| l.contains(failed))).count();
    assert_eq!(logins, 2, "identical lines in one second stay two events");

    // Queries as `hsmwatch query` asks them: substring and whole-word search (case-insensitive; `%` is literal), typed
    // filters, newest first, a page after a cursor.
    let query = |adjust: fn(&mut EventFilter)| {
        let mut filter = EventFilter { limit: 1000, ..EventFilter::default() };
        adjust(&mut filter);
        filter
    };
    let found = second.events(&query(|f| f.contains = Some("p12x200".into()))).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].event.get("event.original").unwrap().contains("P12X200"));
    assert!(second.events(&query(|f| f.contains = Some("10.0.1%".into()))).await.unwrap().is_empty());
    assert_eq!(second.events(&query(|f| f.word = Some("p12x200".into()))).await.unwrap().len(), 1);
    assert!(second.events(&query(|f| f.word = Some("p12x20".into()))).await.unwrap().is_empty());
    // Found through the search index: a run of up to 256 stored events per row (503 events: two runs). A string too
    // short for a trigram is found by reading the lines, as is one combined with a rarer string.
    let mut conn = sqlx::PgConnection::connect(&peer.url()).await.unwrap();
    let runs = "SELECT count(*), coalesce(sum(last_id - first_id + 1), 0)::int8 FROM event_grams";
    let indexed: (i64, i64) = sqlx::query_as(runs).fetch_one(&mut conn).await.unwrap();
    assert_eq!(indexed, (2, 503));
    let holding = |text: &str| {
        stored.iter().filter(|e| e.event.get("event.original").unwrap().to_lowercase().contains(text)).count()
    };
    assert_eq!(second.events(&query(|f| f.contains = Some("P1".into()))).await.unwrap().len(), holding("p1"));
    assert!(holding("p1") > 100);
    let both = query(|f| (f.contains, f.word) = (Some("p1".into()), Some("P12X200".into())));
    assert_eq!(second.events(&both).await.unwrap().len(), 1);
    assert_eq!(second.events(&query(|f| f.contains = Some("certificate MISMATCH".into()))).await.unwrap().len(), 2);
    let hsm1 = second.events(&query(|f| f.host = Some("hsm1".into()))).await.unwrap();
    assert_eq!(hsm1.len(), 102, "100 connections and the two failed logins");
    assert!(hsm1
        .windows(2)
        .all(|p| (p[0].event.timestamp.micros(), p[0].id) > (p[1].event.timestamp.micros(), p[1].id)));
    let mut page = query(|f| f.host = Some("hsm1".into()));
    page.limit = 10;
    page.after = Some(Cursor { ts: hsm1[9].event.timestamp.micros(), id: hsm1[9].id });
    let next: Vec<i64> = second.events(&page).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(next, hsm1[10..20].iter().map(|e| e.id).collect::<Vec<_>>());

    // A line only the second collector heard is its alone.
    let only = luna_events(&[(301, "hsm3", "Info: heard once")]);
    assert_eq!(second.insert_batch(&only).await.unwrap(), BatchStored { stored: 1, copies: 0 });
    let last = first.events_after(stored.last().unwrap().id, 10).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].observers, ["collector-b"]);

    // The chain covers both collectors' batches, in commit order.
    let verified = |finding: Finding| match finding {
        Finding::Intact { batches, events, prunes, anchor, .. } => (batches, events, prunes, anchor.pruned_events),
        broken => panic!("{broken:?}"),
    };
    assert_eq!(verified(chain::verify(&first.reader()).await.unwrap()), (2, 504, 0, 0));

    // Retention prunes the chain's records committed before the month of its limit, with their events. The first
    // batch (its lines span 2026-11-30 to 2026-12-02) was committed in mid-November; the line only the second
    // collector heard is of November too, but committed now: November's partition stays for it, and the first
    // batch's rows go one by one.
    let november = Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap().timestamp_micros();
    let age = async |conn: &mut sqlx::PgConnection, record: i64| {
        sqlx::query("UPDATE event_batches SET stored_at = $1 WHERE id = $2")
            .bind(november)
            .bind(record)
            .execute(conn)
            .await
            .unwrap();
    };
    let records: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM event_batches ORDER BY id").fetch_all(&mut conn).await.unwrap();
    age(&mut conn, records[0]).await;
    let cutoff = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap();
    let pruned = first.prune_before(cutoff).await.unwrap();
    assert_eq!((pruned.months.len(), pruned.events), (0, 503), "{pruned:?}");
    let left = first.events_after(0, 10_000).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].observers, ["collector-b"]);
    assert_eq!(verified(chain::verify(&first.reader()).await.unwrap()), (1, 1, 1, 503));
    let indexed: (i64, i64) = sqlx::query_as(runs).fetch_one(&mut conn).await.unwrap();
    assert_eq!(indexed, (1, 1), "the pruned events' runs of the search index went with them");
    assert_eq!(second.events(&query(|f| f.contains = Some("heard once".into()))).await.unwrap().len(), 1);

    // Once that batch is old as well (and a newer one was committed), November goes whole.
    age(&mut conn, records[1]).await;
    second.insert_batch(&luna_events(&[(86_400 * 3, "hsm3", "Info: later")])).await.unwrap();
    let pruned = first.prune_before(cutoff).await.unwrap();
    assert_eq!((pruned.months, pruned.events), (vec!["events_2026_11".to_owned()], 1));
    assert_eq!(first.events_after(0, 10_000).await.unwrap().len(), 1, "the later line stays");
    assert_eq!(verified(chain::verify(&first.reader()).await.unwrap()), (1, 1, 1, 504));

    // A row altered, inserted or removed behind hsmwatch's back is found.
    let broken = async || match chain::verify(&first.reader()).await.unwrap() {
        Finding::Broken { reason, .. } => reason,
        intact => panic!("{intact:?}"),
    };
    let run = async |conn: &mut sqlx::PgConnection, sql: &str| {
        sqlx::query(sql).execute(conn).await.unwrap();
    };
    run(&mut conn, "UPDATE events SET user_name = 'mallory'").await;
    assert!(broken().await.contains("do not hash to the recorded value"));
    run(&mut conn, "UPDATE events SET user_name = NULL").await;
    assert_eq!(verified(chain::verify(&first.reader()).await.unwrap()), (1, 1, 1, 504), "as it was");
    run(
        &mut conn,
        "INSERT INTO events (id, ts, ts_digits, created, created_digits, host, dataset, format, original, fields, \
         line_hash, occurrence, observer) OVERRIDING SYSTEM VALUE SELECT id + 1000, ts, ts_digits, created, \
         created_digits, host, dataset, format, original, fields, line_hash, 9, observer FROM events",
    )
    .await;
    assert!(broken().await.contains("belong to no batch"));
    run(&mut conn, "DELETE FROM events").await;
    assert!(broken().await.contains("rows were deleted"));
    drop(peer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_writing_at_once_store_every_line_once() {
    let peer = PgPeer::start();
    let lines: Vec<(u32, String, String)> =
        (0..2000).map(|i| (i, format!("hsm{}", i % 3), format!("Info: line {i} of the burst"))).collect();
    let borrowed: Vec<(u32, &str, &str)> = lines.iter().map(|(at, h, m)| (*at, h.as_str(), m.as_str())).collect();
    let events = luna_events(&borrowed);
    let write = |name: &'static str| {
        let (url, events) = (peer.url(), events.clone());
        tokio::spawn(async move {
            let store = PgStore::open(&url, name, DEFAULT_COPY_WINDOW).await.unwrap();
            let mut total = BatchStored::default();
            for batch in events.chunks(100) {
                let done = store.insert_batch(batch).await.unwrap();
                (total.stored, total.copies) = (total.stored + done.stored, total.copies + done.copies);
            }
            total
        })
    };
    let (a, b) = (write("collector-a"), write("collector-b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!((a.stored + b.stored, a.copies + b.copies), (2000, 2000), "{a:?} {b:?}");
    let reader = PgStore::open(&peer.url(), "reader", DEFAULT_COPY_WINDOW).await.unwrap();
    let stored = reader.events_after(0, 10_000).await.unwrap();
    assert_eq!(stored.len(), 2000);
    assert!(stored.iter().all(|e| {
        let mut observers = e.observers.clone();
        observers.sort();
        observers == ["collector-a", "collector-b"]
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_collector_leads_and_another_takes_over_once_its_lease_runs_out() {
    let peer = PgPeer::start();
    let lease = Duration::from_secs(2);
    let first = PgStore::open(&peer.url(), "collector-a", DEFAULT_COPY_WINDOW).await.unwrap();
    let second = PgStore::open(&peer.url(), "collector-b", DEFAULT_COPY_WINDOW).await.unwrap();
    let Lead::Leading { term, .. } = first.try_lead(lease).await.unwrap() else { panic!("the first to ask leads") };
    assert_eq!(term, 1);
    let Lead::Following { holder, .. } = second.try_lead(lease).await.unwrap() else { panic!("one leader at a time") };
    assert!(holder.starts_with("collector-a "), "{holder}");
    // Renewing keeps the term; the leader's evaluation moves the cursor and keeps a threshold's half-full window.
    assert!(matches!(first.try_lead(lease).await.unwrap(), Lead::Leading { term: 1, .. }));
    let window = |state: Option<&str>| StateChange {
        rule_id: "luna.login.bruteforce".into(),
        rule_hash: 0xfeed,
        key: "hsm1|10.0.0.7".into(),
        state: state.map(str::to_owned),
    };
    first.save_evaluation(1, 40, &[window(Some(r#"{"count":3}"#))]).await.unwrap();

    // The leader stops renewing (killed, cut off): the other takes the lead once the lease has run out, not before,
    // with the next term, and continues from the shared cursor.
    let stopped = Instant::now();
    let term = loop {
        if let Lead::Leading { term, .. } = second.try_lead(lease).await.unwrap() {
            break term;
        }
        assert!(stopped.elapsed() < Duration::from_secs(10), "no takeover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(stopped.elapsed() >= Duration::from_millis(1500), "taken over after {:?}", stopped.elapsed());
    assert_eq!(term, 2);
    assert_eq!(second.rule_cursor().await.unwrap(), 40);
    let saved = second.rule_state().await.unwrap();
    assert_eq!(saved, [("luna.login.bruteforce".into(), 0xfeed, "hsm1|10.0.0.7".into(), r#"{"count":3}"#.into())]);
    second.save_evaluation(2, 45, &[window(Some(r#"{"count":4}"#))]).await.unwrap();

    // The old leader wakes up: its writes in its old term are refused (the state and cursor stay its successor's),
    // and it follows.
    let refused = first.save_evaluation(1, 41, &[window(None)]).await.unwrap_err();
    assert!(matches!(refused, StoreError::NotLeader { term: 1 }), "{refused}");
    assert_eq!(first.rule_cursor().await.unwrap(), 45);
    assert_eq!(first.rule_state().await.unwrap()[0].3, r#"{"count":4}"#);
    assert!(matches!(first.try_lead(lease).await.unwrap(), Lead::Following { .. }));

    // A leader that stops cleanly resigns: the next takes over at once.
    second.resign().await.unwrap();
    assert!(matches!(first.try_lead(lease).await.unwrap(), Lead::Leading { term: 3, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_is_tls_verified_against_the_given_root_and_the_password_never_shows() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().self_signed(&key).unwrap();
    let peer = PgPeer::start_with(|dir| {
        std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::set_permissions(dir.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        ["ssl=on", "log_connections=on"]
            .iter()
            .map(|s| s.to_string())
            .chain([
                format!("ssl_cert_file={}/server.pem", dir.display()),
                format!("ssl_key_file={}/server.key", dir.display()),
            ])
            .collect()
    });
    let roots = tempfile::tempdir().unwrap();
    std::fs::write(roots.path().join("right.pem"), cert.pem()).unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().self_signed(&other_key).unwrap();
    std::fs::write(roots.path().join("wrong.pem"), other.pem()).unwrap();
    let url = |root: &str| {
        format!(
            "postgres://hsmwatch:s3cret-passw0rd@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
            peer.port,
            roots.path().join(root).display()
        )
    };

    let store = PgStore::open(&url("right.pem"), "collector-a", DEFAULT_COPY_WINDOW).await.unwrap();
    assert_eq!(store.server(), format!("127.0.0.1:{}/postgres", peer.port));
    assert!(peer.log().contains("SSL enabled"), "{}", peer.log());

    let refused = PgStore::open(&url("wrong.pem"), "collector-a", DEFAULT_COPY_WINDOW).await.expect_err("refused");
    let said = refused.to_string();
    assert!(said.starts_with(&format!("cannot connect to PostgreSQL at 127.0.0.1:{}/postgres", peer.port)), "{said}");
    assert!(!said.contains("s3cret"), "{said}");
}

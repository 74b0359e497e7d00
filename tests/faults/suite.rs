//! The fault suite (faults 1-8), in the style of rsyslog's testbench: numbered messages (`seq:%08d`), and SQLite is asked which
//! arrived. Small scale here; `benches/faults.sh` runs the same tests with `HSMWATCH_FAULT_SCALE` times the counts.
//! Everything targets loopback, is bounded in count and time, and stops by itself.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::support::{query_json, require_program, send_tcp, send_udp, ServeProcess, TestServer};

/// Counts are multiplied by `HSMWATCH_FAULT_SCALE` (default 1) for the long runs of `benches/faults.sh`.
fn scale(n: usize) -> usize {
    n * std::env::var("HSMWATCH_FAULT_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

fn line(tag: &str, n: usize) -> String {
    format!("<134>1 2026-03-01T12:00:00Z hsm-f {tag} 1 - - seq:{n:08}\n")
}

/// The sequence numbers stored for an app name.
fn stored(db: &std::path::Path, tag: &str) -> Vec<usize> {
    let mut numbers: Vec<usize> = query_json(db, &["--contains", &format!(" {tag} "), "--limit", "100000000"])
        .iter()
        .map(|e| e["message"].trim_start_matches("seq:").parse().unwrap())
        .collect();
    numbers.sort_unstable();
    numbers
}

fn sqlite3(db: &std::path::Path, sql: &str) -> String {
    let output = std::process::Command::new("sqlite3").arg(db).arg(sql).output().expect("run sqlite3");
    assert!(output.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn counter(server: &TestServer, transport: &str, pick: fn(&hsmwatch::metrics::ListenerCounters) -> u64) -> u64 {
    server.server.counters.listeners().iter().filter(|l| l.transport == transport).map(|l| pick(l)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_tcp_over_several_connections_loses_nothing() {
    // 1: as fast as the sender can go, into a small queue: backpressure, not loss.
    let server = TestServer::start_with(64 * 1024, |config| config.storage.queue_capacity = 256).await;
    let per_connection = scale(25_000);
    let senders: Vec<_> = (0..4)
        .map(|c| {
            let tcp = server.tcp;
            tokio::spawn(async move {
                let text: String = (c * per_connection..(c + 1) * per_connection).map(|n| line("sustain", n)).collect();
                send_tcp(tcp, text.as_bytes(), false).await;
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let db = server.db();
    let _dir = server.stop().await;
    assert_eq!(stored(&db, "sustain"), (0..4 * per_connection).collect::<Vec<_>>(), "every number once");
}

#[test]
fn kill_9_under_load_keeps_a_gapless_committed_prefix_and_the_server_resumes() {
    // 2: the batch being written is all a crash may take; what was committed is whole and in order.
    require_program("sqlite3");
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(dir.path());
    let address = format!("127.0.0.1:{}", server.port);
    let total = scale(400_000);
    let sending = std::thread::spawn(move || {
        let Ok(mut stream) = std::net::TcpStream::connect(&address) else { return 0 };
        let mut sent = 0;
        for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
            let text: String = chunk.iter().map(|&n| line("crash", n)).collect();
            if stream.write_all(text.as_bytes()).is_err() {
                break;
            }
            sent = chunk[chunk.len() - 1] + 1;
        }
        sent
    });
    // Kill once some batches are committed and while lines still flow.
    let db = server.db.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlite3(&db, "PRAGMA busy_timeout=2000; SELECT count(*) FROM events")
        .lines()
        .last()
        .unwrap_or("0")
        .parse::<usize>()
        .unwrap_or(0)
        < 2000
    {
        assert!(Instant::now() < deadline, "nothing was stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.signal("KILL");
    let port = server.port;
    let _ = server.wait();
    let sent = sending.join().unwrap();
    assert_eq!(sqlite3(&db, "PRAGMA integrity_check"), "ok");
    let survived = stored(&db, "crash");
    let k = survived.len();
    assert!(k > 0 && k <= sent, "{k} stored of {sent} sent");
    assert_eq!(survived, (0..k).collect::<Vec<_>>(), "the committed lines are a gapless prefix of one connection");
    let (code, out, err) = crate::support::run(&["verify", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(0), "the chain holds after kill -9: {out}{err}");

    let restarted = ServeProcess::start_on(dir.path(), port);
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let after: String = (0..100).map(|n| line("resumed", n)).collect();
    stream.write_all(after.as_bytes()).unwrap();
    drop(stream);
    restarted.signal("TERM");
    let (code, stderr) = restarted.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stored(&db, "resumed"), (0..100).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_slows_the_sender_and_storing_resumes_once_space_is_back() {
    // 3: SQLITE_FULL (a 1 MiB cap) is held and retried, never a crash or a lost batch; freeing space resumes it.
    // A batch grows to `batch_rows` (4000) while the queue refills, more than 1 MiB can ever hold: the writer commits
    // it in halves (this test stalled before it did).
    require_program("sqlite3");
    let server = TestServer::start_with(64 * 1024, |config| {
        config.storage.max_size = Some(hsmwatch::config::ByteSize(1 << 20));
        config.storage.queue_capacity = 64;
    })
    .await;
    let db = server.db();
    let total = scale(10_000);
    let tcp = server.tcp;
    let sender = tokio::spawn(async move {
        let text: String = (0..total).map(|n| line("full", n)).collect();
        send_tcp(tcp, text.as_bytes(), false).await;
    });
    // Whenever the database is full, the operator archives what is stored and deletes it, until every line is in.
    let mut archived: Vec<usize> = Vec::new();
    let mut rounds = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.server.counters.snapshot().stored < total as u64 {
        assert!(Instant::now() < deadline, "storing did not resume ({rounds} rounds)");
        if server.server.counters.store_failing.load(Ordering::Relaxed) {
            if rounds == 0 {
                let received = server.server.counters.snapshot().received;
                assert!(received < total as u64, "reading paused while the database was full ({received} read)");
            }
            rounds += 1;
            let db = db.clone();
            archived.extend(
                tokio::task::spawn_blocking(move || {
                    // One transaction: no batch can commit between the copy and the delete.
                    let rows = sqlite3(
                        &db,
                        "PRAGMA busy_timeout=5000; BEGIN IMMEDIATE; SELECT original FROM events; DELETE FROM events; COMMIT;",
                    );
                    rows.lines()
                        .filter(|l| l.contains("seq:"))
                        .map(|l| l.rsplit("seq:").next().unwrap().parse::<usize>().unwrap())
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap(),
            );
            // Until the writer has committed again, the flag still says full.
            let before = server.server.counters.snapshot().stored;
            while server.server.counters.snapshot().stored == before && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sender.await.unwrap();
    assert!(rounds > 0, "the database never filled up");
    let retries = server.server.counters.snapshot().store_retries;
    let _dir = server.stop().await;
    let mut all = BTreeSet::new();
    for n in archived.into_iter().chain(stored(&db, "full")) {
        assert!(all.insert(n), "line {n} stored twice");
    }
    let missing: Vec<usize> = (0..total).filter(|n| !all.contains(n)).collect();
    assert!(missing.is_empty(), "{} lines lost, first {:?}", missing.len(), &missing[..missing.len().min(5)]);
    assert!(retries > 0);
    assert_eq!(sqlite3(&db, "PRAGMA integrity_check"), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_leave_the_server_serving() {
    // 4: each connection gets something broken; every complete line is stored and the server goes on.
    let server = TestServer::start_with(1024, |_| {}).await;
    let hostile: Vec<Vec<u8>> = vec![
        format!("<13>a: {}\n<13>a: after oversize\n", "x".repeat(5000)).into_bytes(),
        b"<13>a: before lying\n12 <13>a: this is much longer than twelve".to_vec(),
        b"<13>a: before absurd\n99999999999999999999 <13>a: x".to_vec(),
        b"12a <13>a: non-numeric count\n".to_vec(),
        b"<13>a: nul one\0<13>a: nul two\0".to_vec(),
        b"<13>a: invalid \xff\xfe utf-8\n".to_vec(),
        b"\n\n\r\n\n".to_vec(),
        b"25 <13>a: incomplete last".to_vec(),
    ];
    for bytes in &hostile {
        send_tcp(server.tcp, bytes, false).await;
    }
    send_udp(server.udp, &[b"", b"\xff\xfe", b"<13>a: udp after"]);
    send_tcp(server.tcp, b"<13>a: still serving\n", false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = server.stop_and_query().await;
    let originals: BTreeSet<String> = events.iter().filter_map(|e| e.get("event.original").cloned()).collect();
    for expected in [
        "<13>a: after oversize",
        "<13>a: before lying",
        "<13>a: before absurd",
        "<13>a: nul one",
        "<13>a: nul two",
        "<13>a: invalid \\xff\\xfe utf-8",
        "<13>a: udp after",
        "<13>a: still serving",
    ] {
        assert!(originals.contains(expected), "{expected} missing from {originals:#?}");
    }
    assert!(originals.iter().any(|o| o.starts_with("<13>a: xxxx")), "the oversize line is stored truncated");
    assert!(originals.iter().any(|o| o.contains("incomplete last")), "an incomplete last frame is stored, marked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_connections_with_random_disconnects() {
    // 5: many connections at once, a third dropped mid-line; every complete line arrives.
    // Client and server share this process's descriptors: two per open connection. At larger scales, more
    // connections than the limit allows take turns (a semaphore), at least 2,000 of them open at once.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap() as usize;
    assert!(limit >= 5000, "ulimit -n is {limit}; the test needs 5000 descriptors");
    let server = TestServer::start_with(64 * 1024, |config| {
        config.listen.tcp[0].max_connections = 0;
        config.listen.tcp[0].max_connections_per_ip = 0;
        config.listen.tcp[0].max_connections_per_net = 0;
    })
    .await;
    let connections = scale(2000);
    let at_once = Arc::new(tokio::sync::Semaphore::new(connections.min((limit - 1000) / 2)));
    let tcp = server.tcp;
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let at_once = at_once.clone();
            tokio::spawn(async move {
                let _slot = at_once.acquire_owned().await.expect("the semaphore stays open");
                let mut stream = tokio::net::TcpStream::connect(tcp).await.expect("connect");
                let text: String = (c * 5..c * 5 + 5).map(|n| line("many", n)).collect();
                stream.write_all(text.as_bytes()).await.unwrap();
                if c % 3 == 0 {
                    // Dropped mid-frame, without a FIN first.
                    stream.write_all(b"<134>1 2026-03-01T12:00:00Z hsm-f cut 1 - - half a li").await.unwrap();
                    drop(stream);
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    stream.shutdown().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Complete lines, plus the cut ones stored marked as incomplete.
    let expected = (connections * 5 + connections.div_ceil(3)) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.server.counters.snapshot().stored < expected {
        assert!(Instant::now() < deadline, "{} of {expected} lines arrived", server.server.counters.snapshot().stored);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = server.db();
    let accepted = counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.connections_accepted));
    let _dir = server.stop().await;
    assert_eq!(accepted, connections as u64);
    assert_eq!(stored(&db, "many"), (0..connections * 5).collect::<Vec<_>>());
}

/// Holds `count` connections: half silent, half sending one byte a second, until `stop`.
fn slow_connections(address: SocketAddr, count: usize, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..count)
        .map(|c| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
                let slow = line("slow", c);
                let mut bytes = slow.as_bytes().iter();
                while !stop.load(Ordering::Relaxed) {
                    if c % 2 == 1 {
                        if let Some(byte) = bytes.next() {
                            let _ = stream.write_all(std::slice::from_ref(byte)).await;
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_and_dribbling_connections_do_not_hold_back_a_normal_sender() {
    // 6: slowloris-style connections take slots, not throughput.
    let server = TestServer::start_with(64 * 1024, |config| {
        config.listen.tcp[0].max_connections = 0;
        config.listen.tcp[0].max_connections_per_ip = 0;
        config.listen.tcp[0].max_connections_per_net = 0;
    })
    .await;
    // Client and server share this process's descriptors: two per connection, and room for the rest.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap() as usize;
    let slow_count = scale(1000).min(limit.saturating_sub(2000) / 2);
    assert!(slow_count >= 1000, "ulimit -n is {limit}; the test needs 4000 descriptors");
    let stop = Arc::new(AtomicBool::new(false));
    let slow = slow_connections(server.tcp, slow_count, stop.clone());
    // The normal sender starts once every slow connection holds its slot (a fixed pause was too short at scale 10:
    // the normal lines were all stored before the last thousand slow connections were accepted).
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.connections_open)) < slow_count as u64 {
        assert!(Instant::now() < deadline, "the slow connections did not all open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let count = scale(20_000);
    let text: String = (0..count).map(|n| line("normal", n)).collect();
    send_tcp(server.tcp, text.as_bytes(), false).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.server.counters.snapshot().stored < count as u64 {
        assert!(Instant::now() < deadline, "the normal sender's lines did not all arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open = counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.connections_open));
    assert!(open >= slow_count as u64, "the slow connections were still open meanwhile ({open})");
    stop.store(true, Ordering::Relaxed);
    for task in slow {
        task.await.unwrap();
    }
    let db = server.db();
    let _dir = server.stop().await;
    assert_eq!(stored(&db, "normal"), (0..count).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tricklers_are_not_starved_by_a_flood() {
    // 7: fairness is checked by order, not by the clock: trickling lines sent during the flood are stored among the
    // flood's lines, not after all of them.
    let server = TestServer::start_with(64 * 1024, |config| {
        config.storage.queue_capacity = 512;
        // Lines stay text for the `sqlite3` shell below.
        config.storage.compress = false;
    })
    .await;
    let tcp = server.tcp;
    let flood_done = Arc::new(AtomicBool::new(false));
    let flood_count = scale(100_000);
    let flooder = {
        let flood_done = flood_done.clone();
        tokio::spawn(async move {
            let text: String = (0..flood_count).map(|n| line("flood", n)).collect();
            send_tcp(tcp, text.as_bytes(), false).await;
            flood_done.store(true, Ordering::Relaxed);
        })
    };
    let tricklers: Vec<_> = (0..5)
        .map(|t| {
            let flood_done = flood_done.clone();
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(tcp).await.unwrap();
                let mut sent_during_flood = Vec::new();
                let mut n = 0;
                while !flood_done.load(Ordering::Relaxed) && n < 1000 {
                    stream.write_all(line("trickle", t * 1000 + n).as_bytes()).await.unwrap();
                    sent_during_flood.push(t * 1000 + n);
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                stream.shutdown().await.unwrap();
                sent_during_flood
            })
        })
        .collect();
    flooder.await.unwrap();
    let mut during = Vec::new();
    for trickler in tricklers {
        during.extend(trickler.await.unwrap());
    }
    let db = server.db();
    let _dir = server.stop().await;
    require_program("sqlite3");
    let last_flood_id: i64 =
        sqlite3(&db, "SELECT max(id) FROM events WHERE original LIKE '% flood %'").parse().unwrap();
    let early: i64 = sqlite3(
        &db,
        &format!("SELECT count(*) FROM events WHERE original LIKE '% trickle %' AND id < {last_flood_id}"),
    )
    .parse()
    .unwrap();
    assert!(during.len() >= 5, "the flood lasted long enough to trickle ({} lines)", during.len());
    // Lines sent in the flood's last moments may land after its last line; most must land before it.
    assert!(
        early as usize * 2 >= during.len(),
        "{early} of {} trickled lines were stored during the flood",
        during.len()
    );
    assert_eq!(stored(&db, "flood").len(), flood_count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowlist_and_connection_limits_refuse_before_parsing() {
    let server = TestServer::start_with(64 * 1024, |config| {
        config.listen.tcp[0].allow = vec!["10.0.0.0/8".parse().unwrap()];
        config.listen.udp[0].allow = vec!["192.0.2.0/24".parse().unwrap()];
    })
    .await;
    send_tcp(server.tcp, b"<13>a: from outside the allowlist\n", false).await;
    send_udp(server.udp, &[b"<13>a: spoofable"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.refused_not_allowed))
        + counter(&server, "udp", |l| hsmwatch::metrics::value(&l.refused_not_allowed));
    assert_eq!(refused, 2);
    assert!(server.stop_and_query().await.is_empty(), "nothing from outside the allowlist is stored");

    let server = TestServer::start_with(64 * 1024, |config| {
        config.listen.tcp[0].max_connections_per_ip = 3;
        config.listen.tcp[0].idle_timeout = Some(Duration::from_millis(500));
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tokio::net::TcpStream::connect(server.tcp).await.unwrap());
    }
    for (i, stream) in held.iter_mut().enumerate() {
        let _ = stream.write_all(format!("<13>a: connection {i}\n").as_bytes()).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused = counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.refused_limit));
    let idle = counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.idle_closed));
    assert_eq!(refused, 2, "two connections over the per-address limit");
    assert_eq!(idle, 3, "the three admitted ones went silent and were closed");
    drop(held);
    let events = server.stop_and_query().await;
    assert_eq!(events.len(), 3, "{events:#?}");
}

/// One slow sender from `source`: a byte of a line now and then every second, until the server closes the connection
/// or `stop`; how long the connection lived.
async fn dribble_from(source: std::net::IpAddr, to: SocketAddr, stop: Arc<AtomicBool>) -> Duration {
    use tokio::io::AsyncReadExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).expect("bind a loopback source address");
    let mut stream = socket.connect(to).await.expect("connect");
    let opened = Instant::now();
    let text = line("dribble", 0);
    let mut bytes = text.as_bytes().iter();
    let mut buf = [0u8; 16];
    while !stop.load(Ordering::Relaxed) {
        if let Some(byte) = bytes.next() {
            let _ = stream.write_all(std::slice::from_ref(byte)).await;
        }
        tokio::select! {
            _ = stream.read(&mut buf) => return opened.elapsed(),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    opened.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_from_many_addresses_cannot_take_every_slot() {
    // 8: connections that dribble a byte a second from many loopback addresses and networks: the per-network cap
    // refuses the excess of one /24, a full listener makes room by closing the connection longest without a line, and
    // every unfinished line is closed at line_timeout and stored as far as it came.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap() as usize;
    assert!(limit >= 2000, "ulimit -n is {limit}; the test needs 2000 descriptors");
    let server = TestServer::start_with(64 * 1024, |config| {
        let tcp = &mut config.listen.tcp[0];
        tcp.max_connections = 200;
        tcp.max_connections_per_net = 80;
        tcp.line_timeout = Some(Duration::from_secs(12));
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let address = |net: u8, host: u8| std::net::IpAddr::from([127, 0, net, host]);
    // One /24 from three addresses first (150 connections: 80 fit under its cap), then four other /24s (160: 120 fit).
    let mut one_net = Vec::new();
    for host in 1..=3 {
        for _ in 0..50 {
            one_net.push(tokio::spawn(dribble_from(address(1, host), server.tcp, stop.clone())));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut other_nets = Vec::new();
    for net in 2..=5 {
        for _ in 0..40 {
            other_nets.push(tokio::spawn(dribble_from(address(net, 1), server.tcp, stop.clone())));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let opened = Instant::now();
    let deadline = opened + Duration::from_secs(10);
    while counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.refused_limit)) < 110 {
        assert!(Instant::now() < deadline, "the excess connections were not refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.connections_open)), 200);

    // Once the slow connections have gone STALE_AFTER (5 s) without a line, a normal sender is still served.
    tokio::time::sleep((opened + Duration::from_millis(5500)).saturating_duration_since(Instant::now())).await;
    let count = 1000;
    let text: String = (0..count).map(|n| line("normal", n)).collect();
    send_tcp(server.tcp, text.as_bytes(), false).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.line_timeout_closed)) < 199 {
        assert!(Instant::now() < deadline, "the unfinished lines were not closed at line_timeout");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let lived = |tasks: Vec<tokio::task::JoinHandle<Duration>>| async move {
        let mut lived = Vec::new();
        for task in tasks {
            lived.push(task.await.unwrap());
        }
        lived
    };
    let (one_net, other_nets) = (lived(one_net).await, lived(other_nets).await);
    let refused = |lived: &[Duration]| lived.iter().filter(|d| **d < Duration::from_secs(3)).count();
    assert_eq!(refused(&one_net), 70, "one /24 holds at most 80: {one_net:?}");
    assert_eq!(refused(&other_nets), 40, "the listener holds at most 200");
    let evicted = counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.evicted_stale));
    assert_eq!(evicted, 1, "one slow connection made room for the normal sender");
    // The 1000 lines, and the beginning of the line each of the 200 admitted slow connections had sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.server.counters.snapshot().stored < 1200 {
        assert!(Instant::now() < deadline, "{} of 1200 stored", server.server.counters.snapshot().stored);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let truncated = counter(&server, "tcp", |l| hsmwatch::metrics::value(&l.truncated));
    assert_eq!(truncated, 200, "each slow connection's unfinished line is stored marked truncated");
    let db = server.db();
    let _dir = server.stop().await;
    assert_eq!(stored(&db, "normal"), (0..count).collect::<Vec<_>>());
}

/// Peak resident memory of a process, from `/proc/PID/status` (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM in kB");
    kib * 1024
}

/// A sample of the server's `/metrics`: the value of the first series whose line starts with `name` (a name and
/// the start of its labels, `name{transport="udp"`).
fn metric(http: u16, name: &str) -> f64 {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).expect("connect to /metrics");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    let line = body.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in /metrics"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_flood_of_large_datagrams_into_a_full_database_stays_within_queue_bytes() {
    // 9: the writer cannot store (a 1 MiB database cap) while 64 KiB datagrams pour in: the queue fills up to
    // queue_bytes, not to queue_capacity events (16,384 of 64 KiB would be over 1 GiB), and the rest is dropped and
    // counted. The real binary, its memory read from /proc.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hsmwatch.yaml");
    std::fs::write(&config, "storage:\n  max_size: 1MiB\n  queue_bytes: 32MiB\n").unwrap();
    let (port, http) = (crate::support::free_port(), crate::support::free_port());
    let http_address = format!("127.0.0.1:{http}");
    let server = ServeProcess::start_with_args(
        dir.path(),
        port,
        &["--config", config.to_str().unwrap(), "--http", &http_address],
    );
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut datagram = b"<134>1 2026-03-01T12:00:00Z hsm-f flood 1 - - ".to_vec();
    datagram.extend((0..60_000u32).map(|n| b'a' + (n.wrapping_mul(2_654_435_761) >> 27) as u8 % 26));
    let count = scale(40_000);
    for n in 0..count {
        let _ = socket.send_to(&datagram, ("127.0.0.1", port));
        if n % 16 == 0 {
            // Room for the server to read: the point is to fill its queue, not the kernel's buffer.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let dropped = metric(http, "hsmwatch_udp_dropped_total");
    let received = metric(http, "hsmwatch_messages_received_total{transport=\"udp\"");
    let held = metric(http, "hsmwatch_writer_queue_bytes");
    let peak = peak_rss(server.child.id());
    drop(server);
    eprintln!("{received} datagrams received, {dropped} dropped, {held} bytes held, peak RSS {} MiB", peak >> 20);
    assert!(dropped > 0.0, "the queue filled up and datagrams were dropped, counted");
    assert!(held <= 32.0 * 1024.0 * 1024.0, "held {held} bytes, over queue_bytes");
    assert!(held >= 16.0 * 1024.0 * 1024.0, "held {held} bytes: the queue should be about full");
    assert!(peak < 300 * 1024 * 1024, "peak RSS {} MiB with queue_bytes 32 MiB", peak >> 20);
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped; `None` (said loudly) where this process
/// may not mount.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(size: &str) -> Option<SmallFilesystem> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            eprintln!("\n*** SKIPPED: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): the full-disk test did not run ***\n");
            return None;
        }
        Some(SmallFilesystem { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_recovers_with_less_space_than_the_wal_holds() {
    // 10 (#23): the real binary, its database on a 24 MiB tmpfs, the rest taken by ballast; TCP lines until the disk
    // is full; then less space is freed than the WAL held. Every line is stored once, the database is sound, the
    // gauges and readiness go and come back, and the log says it in a handful of lines.
    let Some(fs) = SmallFilesystem::mount("24m") else { return };
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 16 << 20]).unwrap();
    let db = fs.path().join("full.db");
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("hsmwatch.yaml");
    std::fs::write(&config, format!("storage:\n  path: {}\n  queue_capacity: 512\n", db.display())).unwrap();
    let (port, http) = (crate::support::free_port(), crate::support::free_port());
    let http_address = format!("127.0.0.1:{http}");
    let server = ServeProcess::start_with_args(
        work.path(),
        port,
        &["--config", config.to_str().unwrap(), "--db", db.to_str().unwrap(), "--http", &http_address],
    );
    let full = || metric(http, "hsmwatch_storage_full") > 0.0;
    let ready = || {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
    };
    // Lines that compress poorly, so that the disk fills with a few tens of thousands.
    let line = |n: usize| {
        let noise: String =
            (0..12).map(|i| format!("{:08x}", (n * 12 + i).wrapping_mul(2_654_435_761) as u32)).collect();
        format!("<134>1 2026-03-01T12:00:00Z hsm-f full 1 - - seq:{n:08} {noise}\n")
    };
    let wal_path = db.with_file_name("full.db-wal");
    // The sender, paced at 10,000 lines a second, until told to stop (a write blocked by backpressure finishes
    // first, so no line is cut).
    let (stop, slow) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sender = tokio::spawn({
        let (stop, slow, sent) = (stop.clone(), slow.clone(), sent.clone());
        async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let first = sent.load(Ordering::Relaxed);
                let chunk: String = (first..first + 50).map(line).collect();
                stream.write_all(chunk.as_bytes()).await.unwrap();
                sent.fetch_add(50, Ordering::Relaxed);
                // A tenth of the pace near the end, so that little is in flight when the disk is full.
                let pause = if slow.load(Ordering::Relaxed) { 50 } else { 5 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            stream.shutdown().await.unwrap();
        }
    });
    // Full for good: the gauge set with less than 2 MiB left on the filesystem (it also flickers while the writer
    // makes room).
    let available = || {
        let stats = rustix::fs::statvfs(fs.path()).unwrap();
        stats.f_bavail * stats.f_frsize
    };
    let (mut largest_wal, mut full_since) = (0, None);
    let mut held;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the disk did not fill ({} lines sent)", sent.load(Ordering::Relaxed));
        largest_wal = largest_wal.max(file_size(&wal_path));
        let left = available();
        slow.store(left < 4 << 20, Ordering::Relaxed);
        // Full means the gauge says so and the writer holds a batch, seen together: near the floor a half of the
        // held batch can get in between two scrapes, so a later scrape may find the writer between failures.
        held = metric(http, "hsmwatch_writer_held_events");
        if !(left < 2 << 20 && full() && held > 0.0) {
            full_since = None;
        } else if full_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    assert!(held > 0.0, "the writer holds its batch");
    assert!(!ready(), "/readyz says not ready while writes fail");
    // Free less than the WAL held at its largest (the run this test stems from needed two thirds of the disk).
    let free = (largest_wal * 9 / 10).min(3 << 20);
    assert!(free >= 2 << 20, "the WAL held {largest_wal} bytes at most: too little to free less than it");
    std::fs::write(&ballast, vec![0u8; (16 << 20) - free as usize]).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(60), sender).await;
    assert!(done.is_ok(), "the sender stays blocked after space was freed");
    let sent = sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(http, "hsmwatch_events_stored_total") < sent as f64 || full() {
        assert!(
            Instant::now() < deadline,
            "{} of {sent} stored, full: {}, WAL {} bytes, {} bytes available",
            metric(http, "hsmwatch_events_stored_total"),
            full(),
            file_size(&wal_path),
            available()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(http, "hsmwatch_writer_held_events"), 0.0);
    assert!(ready(), "/readyz is ready again");
    server.signal("TERM");
    let (code, stderr) = server.wait();
    assert_eq!(code, Some(0), "{stderr}");
    let mut numbers: Vec<usize> = query_json(&db, &["--contains", " full ", "--limit", "100000000"])
        .iter()
        .map(|e| e["message"].trim_start_matches("seq:").split(' ').next().unwrap().parse().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..sent).collect::<Vec<_>>(), "every line once");
    assert_eq!(sqlite3(&db, "PRAGMA integrity_check"), "ok");
    assert_eq!(
        sqlite3(&db, "SELECT last_event_id = (SELECT max(id) FROM events) FROM rule_cursor"),
        "1",
        "the rules evaluated every stored event"
    );
    let about: Vec<&str> =
        stderr.lines().filter(|l| l.contains("WARN") || l.contains("succeed again") || l.contains("ERROR")).collect();
    assert!(about.len() <= 6, "a handful of lines about the full disk, not one per retry:\n{}", about.join("\n"));
    eprintln!("{sent} lines, the WAL at most {largest_wal} bytes, {free} bytes freed; the log:\n{}", about.join("\n"));
    drop(fs);
}

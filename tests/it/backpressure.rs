//! Backpressure and concurrent reads: a tiny writer queue slows TCP senders without losing a line, and
//! `hsmwatch query` reads the database while the server writes to it.

use std::time::{Duration, Instant};

use crate::support::{query_json, send_tcp, TestServer};

fn numbered(count: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|n| format!("<134>1 2026-03-01T12:00:00Z hsm-01 lunash 1 - - seq:{n:08}\n").into_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_pauses_tcp_and_loses_nothing() {
    let server = TestServer::start_with(64 * 1024, |config| {
        config.storage.queue_capacity = 4;
        config.storage.batch_rows = 16;
    })
    .await;
    let count = 20_000;
    let senders: Vec<_> =
        (0..4).map(|_| tokio::spawn(send_tcp(server.tcp, numbered(count / 4).leak(), false))).collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let counters = server.server.counters.clone();
    let events = server.stop_and_query().await;
    assert_eq!(events.len(), count);
    assert_eq!(counters.snapshot().stored, count as u64);
    assert_eq!(counters.snapshot().udp_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_reads_while_the_server_writes() {
    let server = TestServer::start().await;
    let db = server.db();
    let count = 2_000;
    send_tcp(server.tcp, &numbered(count), false).await;
    // The server keeps running: poll with the CLI until the last batch is committed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = query_json(&db, &["--contains", "seq:"]).len();
        if seen == count {
            break;
        }
        assert!(seen < count && Instant::now() < deadline, "{seen} of {count} events visible");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = server.stop_and_query().await;
    assert_eq!(events.len(), count);
}

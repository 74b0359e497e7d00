//! The tamper-evident chain and retention: `hsmwatch verify` passes on a clean database and names the right batch
//! after a row is deleted, altered or inserted with the `sqlite3` CLI; retention prunes only a prefix of old events
//! while ingest continues, and the chain still verifies from its moved anchor.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{require_program, run, send_tcp, sqlite3, TestServer};

fn verify(db: &Path) -> (Option<i32>, String) {
    let (code, out, err) = run(&["verify", "--db", db.to_str().unwrap()]);
    (code, format!("{out}{err}"))
}

/// A database with five batches of ten events each.
async fn five_batches(dir: &Path) -> std::path::PathBuf {
    let server = TestServer::start().await;
    for batch in 0..5 {
        let lines: String = (0..10)
            .map(|i| {
                format!(
                    "<174>Mar 21 08:00:00 hsm-v lunash [5200]: info : 0 : Command: hsm show : admin : b{batch}-{i}\n"
                )
            })
            .collect();
        send_tcp(server.tcp, lines.as_bytes(), false).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let source = server.db();
    let kept = server.stop().await;
    let db = dir.join("clean.db");
    std::fs::copy(&source, &db).unwrap();
    drop(kept);
    db
}

fn copy(db: &Path, name: &str) -> std::path::PathBuf {
    let target = db.with_file_name(name);
    std::fs::copy(db, &target).unwrap();
    target
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_batch_of_a_deleted_altered_or_inserted_row() {
    require_program("sqlite3");
    let dir = tempfile::tempdir().unwrap();
    let db = five_batches(dir.path()).await;
    let batches: usize = sqlite3(&db, "SELECT count(*) FROM event_batches").parse().unwrap();
    assert!(batches >= 3, "{batches} batches");
    let (code, out) = verify(&db);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with(&format!("intact: {batches} batches, 50 events; head ")), "{out}");

    // The middle batch and an event inside it.
    let middle =
        sqlite3(&db, "SELECT id, first_event_id, last_event_id FROM event_batches ORDER BY id LIMIT 1 OFFSET 1");
    let parts: Vec<i64> = middle.split('|').map(|p| p.parse().unwrap()).collect();
    let (batch, victim) = (parts[0], parts[1] + (parts[2] - parts[1]) / 2);

    let deleted = copy(&db, "deleted.db");
    sqlite3(&deleted, &format!("DELETE FROM events WHERE id = {victim}"));
    let (code, out) = verify(&deleted);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("TAMPERED: batch {batch} ")), "{out}");
    assert!(out.contains(&format!("first missing: event {victim}")) && out.contains("rows were deleted"), "{out}");

    let altered = copy(&db, "altered.db");
    sqlite3(&altered, &format!("UPDATE events SET original = replace(original, 'admin', 'root') WHERE id = {victim}"));
    let (code, out) = verify(&altered);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("TAMPERED: batch {batch} ")) && out.contains("altered"), "{out}");

    let inserted = copy(&db, "inserted.db");
    sqlite3(
        &inserted,
        "INSERT INTO events (ts, ts_digits, created, created_digits, dataset, format, original, fields) \
         SELECT ts, ts_digits, created, created_digits, dataset, format, 'forged line', '{}' FROM events LIMIT 1",
    );
    let (code, out) = verify(&inserted);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("TAMPERED: after the last batch") && out.contains("belong to no batch"), "{out}");

    // A row with an id below the chain (#21): no batch holds it, and nothing was ever stored there.
    let below = copy(&db, "below.db");
    sqlite3(
        &below,
        "INSERT INTO events (id, ts, ts_digits, created, created_digits, dataset, format, original, fields) \
         SELECT -1, ts, ts_digits, created, created_digits, dataset, format, 'forged line', '{}' FROM events LIMIT 1",
    );
    let (code, out) = verify(&below);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("from id -1 on lie before the chain's first batch"), "{out}");

    // The batch record's own columns are hashed: moving its time (which retention reads) is tampering.
    let moved = copy(&db, "moved.db");
    sqlite3(&moved, &format!("UPDATE event_batches SET stored_at = stored_at - 86400000000 WHERE id = {batch}"));
    let (code, out) = verify(&moved);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("TAMPERED: batch {batch} ")) && out.contains("record do not hash"), "{out}");

    // Trimming: the oldest batch and its events deleted, the anchor moved to it. No prune recorded that.
    let trimmed = copy(&db, "trimmed.db");
    sqlite3(
        &trimmed,
        "DELETE FROM events WHERE id <= (SELECT last_event_id FROM event_batches ORDER BY id LIMIT 1); \
         UPDATE chain_anchor SET (last_event_id, hash, pruned_batches, pruned_events) = \
           (SELECT last_event_id, hash, 1, row_count FROM event_batches ORDER BY id LIMIT 1); \
         DELETE FROM event_batches WHERE id = (SELECT min(id) FROM event_batches);",
    );
    let (code, out) = verify(&trimmed);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("the anchor was moved") && out.contains("holds no prune record"), "{out}");

    // Hiding a deletion by rewriting the batch record breaks the link to the next batch instead.
    let rewritten = copy(&db, "rewritten.db");
    sqlite3(&rewritten, &format!("DELETE FROM events WHERE id = {victim}; UPDATE event_batches SET row_count = row_count - 1, hash = 'x' WHERE id = {batch}"));
    let (code, out) = verify(&rewritten);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("TAMPERED: batch {batch} ")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_a_prefix_while_ingest_goes_on_and_the_chain_still_verifies() {
    let server = TestServer::start_with(64 * 1024, |config| {
        config.storage.retention = Some(Duration::from_secs(2));
        config.storage.prune_interval = Duration::from_millis(300);
    })
    .await;
    let tcp = server.tcp;
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut seq = 0u32;
    // One line every 50 ms for 5 s: retention (2 s) prunes the early ones while later ones keep arriving.
    while started.elapsed() < Duration::from_secs(5) {
        let line = format!("<13>Mar  1 00:00:00 hsm-r app: seq:{seq:08}\n");
        send_tcp(tcp, line.as_bytes(), false).await;
        sent.push((seq, Instant::now()));
        seq += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = Instant::now();
    let db = server.db();
    let kept = server.stop().await;
    let rows = crate::support::query_json(&db, &["--contains", "seq:"]);
    let mut present: Vec<u32> =
        rows.iter().map(|r| r["event.original"].rsplit("seq:").next().unwrap().parse().unwrap()).collect();
    present.sort_unstable();
    assert!(!present.is_empty());
    let first = present[0];
    assert!(first > 0, "the oldest lines were pruned");
    assert_eq!(
        present,
        (first..seq).collect::<Vec<u32>>(),
        "what is left is a gapless suffix: only a prefix was pruned"
    );
    for (n, at) in &sent {
        if stopped - *at < Duration::from_millis(1500) {
            assert!(present.binary_search(n).is_ok(), "line {n}, stored within the retention, is there");
        }
    }
    let (code, out) = verify(&db);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("prune record(s); the anchor is after event"), "{out}");
    let (code, json, err) = run(&["verify", "--json", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let verified: serde_json::Value = serde_json::from_str(&json).unwrap();
    let head = sqlite3(&db, "SELECT hash FROM event_batches ORDER BY id DESC LIMIT 1");
    assert_eq!(verified["head"].as_str(), Some(head.as_str()), "{verified}");
    assert!(verified["prunes"].as_u64().unwrap() >= 1, "{verified}");
    assert_eq!(verified["anchor"]["pruned_events"].as_u64(), Some(u64::from(first)), "{verified}");

    // Trimming further by hand: the anchor is no longer where the newest prune record put it.
    let trimmed = db.with_file_name("trimmed.db");
    std::fs::copy(&db, &trimmed).unwrap();
    sqlite3(
        &trimmed,
        "DELETE FROM events WHERE id <= (SELECT last_event_id FROM event_batches WHERE kind = 0 ORDER BY id LIMIT 1); \
         UPDATE chain_anchor SET (last_event_id, hash) = \
           (SELECT last_event_id, hash FROM event_batches WHERE kind = 0 ORDER BY id LIMIT 1); \
         DELETE FROM event_batches WHERE id <= (SELECT min(id) FROM event_batches WHERE kind = 0);",
    );
    let (code, out) = verify(&trimmed);
    assert_eq!(code, Some(1), "{out}");
    // The newest prune record names the anchor it left, or (when it went with the trimmed records) none is left.
    assert!(out.contains("TAMPERED") && out.contains("prune record"), "{out}");

    let (code, stats, err) = run(&["db", "stats", "--db", db.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["pruned_events"].as_u64().unwrap(), u64::from(first), "{stats}");
    assert_eq!(stats["events"].as_u64().unwrap(), u64::from(seq - first));
    drop(kept);
}

//! SQLite's own cost per event row, without hsmwatch around it: what any collector that commits every line to this
//! schema pays at least. Creates a fresh database with hsmwatch's migrations, then inserts ROWS loggen-shaped rows
//! (256-byte line, the fields JSON of a loggen event) in transactions of 4000, N rows per INSERT statement, on one
//! thread, and prints that thread's CPU time per row (from /proc/thread-self/schedstat, so Linux only).
//!
//! `cargo run --release --example sqlite_floor -- [ROWS] [ROWS_PER_STATEMENT] [indexes|no-indexes] [checkpoint|no-checkpoint]`
//! (defaults 300000 32 indexes checkpoint). `no-indexes` drops the events table's indexes first; `no-checkpoint`
//! turns automatic checkpoints off (the server runs them on another thread; their cost moves there, it does not go).

#![allow(missing_docs)]

use hsmwatch::store::inserter::{open_connection, InserterSettings};

const COLUMNS: &str = "id, ts, ts_digits, created, created_digits, host, dataset, format, original, fields, message_at";
const FIELDS: &str = r#"{"log.syslog.procid":"1234","log.syslog.appname":"prg00000","log.source.address":"127.0.0.1:38740","log.syslog.facility.code":"4","log.syslog.severity.code":"6","log.syslog.facility.name":"auth","log.syslog.severity.name":"info"}"#;
const TRANSACTION_ROWS: usize = 4000;

fn thread_cpu_seconds() -> f64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux /proc");
    let nanos: f64 = schedstat.split_whitespace().next().and_then(|n| n.parse().ok()).expect("schedstat");
    nanos / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let per_statement: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32).clamp(1, TRANSACTION_ROWS);
    let indexes = args.get(2).is_none_or(|a| a != "no-indexes");
    let checkpoint = args.get(3).is_none_or(|a| a != "no-checkpoint");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floor.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    drop(runtime.block_on(hsmwatch::store::open_writer(&path)).unwrap());
    let mut conn = open_connection(&path, InserterSettings::default()).unwrap().into_sqlite();
    if !indexes {
        for name in ["events_ts", "events_host_ts", "events_action_ts", "events_user_day", "events_source_ip_day"] {
            conn.execute(&format!("DROP INDEX {name}"), []).unwrap();
        }
    }
    if !checkpoint {
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    }
    let row = format!("(?{})", ", ?".repeat(COLUMNS.split(',').count() - 1));
    let sql = format!("INSERT OR ROLLBACK INTO events ({COLUMNS}) VALUES {}", vec![row; per_statement].join(", "));
    let lines: Vec<String> = (0..TRANSACTION_ROWS)
        .map(|i| {
            format!(
                "<38>1 2026-11-29T19:18:44+00:00 localhost prg00000 1234 - - seq: {i:010}, thread: 0000, runid: 1795979924, stamp: 2026-11-29T19:18:44 {}",
                "PADD".repeat(28)
            )
        })
        .collect();

    let started = thread_cpu_seconds();
    let mut id = 1i64;
    while (id as usize) <= rows {
        let transaction = conn.transaction().unwrap();
        {
            let mut insert = transaction.prepare_cached(&sql).unwrap();
            for group in lines.chunks_exact(per_statement) {
                let mut at = 1;
                for line in group {
                    let ts = 1_795_979_924_000_000 + id * 10;
                    let integers = [id, ts, 0, ts + 5, 6];
                    for value in integers {
                        insert.raw_bind_parameter(at, value).unwrap();
                        at += 1;
                    }
                    for text in ["localhost", "syslog", "rfc5424", line.as_str(), FIELDS] {
                        insert.raw_bind_parameter(at, text).unwrap();
                        at += 1;
                    }
                    insert.raw_bind_parameter(at, 60i64).unwrap();
                    at += 1;
                    id += 1;
                }
                insert.raw_execute().unwrap();
            }
        }
        transaction.commit().unwrap();
    }
    let stored = id - 1;
    let seconds = thread_cpu_seconds() - started;
    println!(
        "rows={stored} rows_per_statement={per_statement} indexes={indexes} checkpoint={checkpoint} cpu_s={seconds:.3} cpu_us_per_row={:.2}",
        seconds * 1e6 / stored as f64
    );
}

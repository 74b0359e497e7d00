//! The history benchmark's PostgreSQL half (`benches/postgres_history.sh`): loads a log of RFC 5424 lines (from
//! `history_lines`) into a PostgreSQL database through the store, in batches of 1000 as one collector, then times the
//! on-call queries of `benches/history.sh` (the median of five, warm). Prints one `name=value` line per figure.
//!
//! `cargo run --release --example pg_history -- postgres://hsmwatch@127.0.0.1:5432/postgres history.log [COLLECTOR]`

#![allow(missing_docs)]

use std::io::BufRead;
use std::time::{Duration, Instant};

use chrono::Utc;
use hsmwatch::decode::{Decoders, Origin};
use hsmwatch::ingest::frame_to_event;
use hsmwatch::pack::RuleSource;
use hsmwatch::store::postgres::{PgStore, DEFAULT_COPY_WINDOW};
use hsmwatch::store::query::EventFilter;

const BATCH: usize = 1000;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (url, log) = (args.next().expect("URL"), args.next().expect("LOG"));
    // A second collector loading the same log stores copies: its name joins each row's observers.
    let collector = args.next().unwrap_or_else(|| "bench".to_owned());
    let store = PgStore::open(&url, &collector, DEFAULT_COPY_WINDOW).await.expect("open PostgreSQL");
    let decoders = Decoders::load(&RuleSource::Embedded).expect("shipped decoders");
    let origin = Origin::from_peer("127.0.0.1:41822".parse().unwrap());
    let reader = std::io::BufReader::new(std::fs::File::open(&log).expect("open the log"));
    let started = Instant::now();
    let (mut lines, mut batch) = (0usize, Vec::with_capacity(BATCH));
    for line in reader.lines() {
        batch.push(frame_to_event(line.expect("read the log").as_bytes(), false, &origin, &decoders));
        if batch.len() == BATCH {
            store.insert_batch(&batch).await.expect("insert");
            lines += batch.len();
            batch.clear();
            if lines % 1_000_000 == 0 {
                eprintln!("loaded {lines} lines at {:.0} lines/s", lines as f64 / started.elapsed().as_secs_f64());
            }
        }
    }
    if !batch.is_empty() {
        lines += batch.len();
        store.insert_batch(&batch).await.expect("insert");
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("load_lines={lines} load_seconds={elapsed:.1} load_lines_per_s={:.0}", lines as f64 / elapsed);

    let day_ago = Utc::now() - chrono::Duration::hours(24);
    let queries: [(&str, EventFilter); 6] = [
        (
            "--host hsm-07 --outcome failure --since 24h",
            EventFilter {
                host: Some("hsm-07".into()),
                outcome: Some("failure".into()),
                since: Some(day_ago),
                ..EventFilter::default()
            },
        ),
        (
            "--action partition.create",
            EventFilter { action: Some("partition.create".into()), ..EventFilter::default() },
        ),
        ("--user secops", EventFilter { user: Some("secops".into()), ..EventFilter::default() }),
        ("--source-ip 10.1.2.3", EventFilter { source_ip: Some("10.1.2.3".into()), ..EventFilter::default() }),
        ("--contains p12x200", EventFilter { contains: Some("p12x200".into()), ..EventFilter::default() }),
        ("--word p12x200", EventFilter { word: Some("p12x200".into()), ..EventFilter::default() }),
    ];
    for (name, mut filter) in queries {
        // `hsmwatch query` shows 50 by default.
        filter.limit = 50;
        let mut times: Vec<Duration> = Vec::new();
        let mut found = 0;
        for _ in 0..5 {
            let start = Instant::now();
            found = store.events(&filter).await.expect("query").len();
            times.push(start.elapsed());
        }
        times.sort();
        println!("query={name:?} found={found} warm_median_ms={:.1}", times[2].as_secs_f64() * 1000.0);
    }
}

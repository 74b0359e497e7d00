//! Per-row cost of committing events: `store::inserter::insert_batch` (row values, the chain hash, the INSERTs and
//! the commit) on a WAL database, with batches of 1000 loggen-shaped lines (RFC 5424, 256 bytes, LF at
//! the end of the frame) decoded by the shipped decoders.
//!
//! Run with `cargo bench --bench store`; criterion reports time per batch and rows per second (elements).

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hsmwatch::decode::{Decoders, Origin};
use hsmwatch::ingest::frame_to_event;
use hsmwatch::pack::RuleSource;
use hsmwatch::store::inserter;

const BATCH: usize = 1000;

fn bench(c: &mut Criterion) {
    let decoders = Decoders::load(&RuleSource::Embedded).expect("shipped decoders");
    let origin = Origin::from_peer("127.0.0.1:41822".parse().unwrap());
    let batch: Vec<_> = (0..BATCH)
        .map(|i| {
            let line = format!(
                "<38>1 2026-11-29T14:20:02+00:00 localhost prg00000 1234 - [meta sequenceId=\"{i}\"] \u{feff}seq: {i:010}, thread: 0000, runid: 1764426002, stamp: 2026-11-29T14:20:02 {}\n",
                "PADD".repeat(28)
            );
            frame_to_event(line.as_bytes(), false, &origin, &decoders)
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let _migrated = runtime.block_on(hsmwatch::store::open_writer(&path)).unwrap();
    let mut conn = inserter::open_connection(&path, inserter::InserterSettings::default()).unwrap();
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);
    group.bench_function("insert_batch 1000 loggen lines", |b| {
        b.iter(|| inserter::insert_batch(&mut conn, &batch).unwrap().first_id)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

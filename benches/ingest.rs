//! Per-line cost of the ingest path: framing a TCP stream, parsing, and the whole frame → redact → parse → decode path
//! with the shipped decoders, on a Luna-shaped mix and on every syslog line of the decoder corpus.
//!
//! Run with `cargo bench --bench ingest`; criterion reports time per batch and lines per second (elements).

#![allow(missing_docs)]

use chrono::Utc;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hsmwatch::decode::{Decoders, Origin};
use hsmwatch::frame::Framer;
use hsmwatch::ingest::frame_to_event;
use hsmwatch::pack::RuleSource;
use hsmwatch::parse::parse;
use hsmwatch::rules::engine::Engine;
use hsmwatch::rules::load;

/// A mix shaped like Luna traffic: RFC 3164 and 5424 headers, the appliance file layout, audit lines, noise.
const LINES: &[&str] = &[
    "<174>Feb 28 09:12:44 hsm-2-1-2-6 lunash[5120]: info : 0 : Lush user login : operator : 10.0.106.107/52814",
    "<174>1 2026-03-02T08:15:22.512934+00:00 hsm-4-1-1-9 lunash 7781 - - info : 0 : Lush user login : audit : 172.16.106.20/40112",
    "<86>Feb 28 10:01:17 hsm-2-1-2-6 sshd[2210]: Accepted password for admin from 192.168.10.100 port 51286 ssh2",
    "2026 Mar  9 10:03:11 hsm-4-1-1-9  local5 info  lunash [4101]: info : 0 : Command: partition create -partition testPar1 -password *** : admin : Console",
    "<158>Mar 20 09:00:01 hsm-2-1-2-6 cbs[2190]: hsm_150518^1048      ,03/20/26 09:00:01,S/N 150518 session 3 Access 2147483651:2734 SO container=0 operation LUNA_LOGIN returned RC_OK(0x00000000)      ,E3A1F9C0AEF18BA4FB5A6A",
    "<6>1 2026-03-07T02:21:00Z hsm-2-1-2-6 kernel - - - k7pf0: [HSM] RTC: external tamper latched",
    "Command Result : 0 (Success)",
    "<174>1 2026-03-14T10:45:19Z hsm-4-1-1-9 NTLS 3310 - - info : 0xc0000711 : Fail to establish a secure channel with client : 172.16.106.77/51870 : RC_SSL_FAILED_HANDSHAKE",
];

fn stream(copies: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..copies {
        // Half octet-counted, half LF-terminated, as relays and appliances mix them.
        for (i, line) in LINES.iter().enumerate() {
            if i % 2 == 0 {
                bytes.extend_from_slice(format!("{} {line}", line.len()).as_bytes());
            } else {
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
            }
        }
    }
    bytes
}

fn origin() -> Origin {
    Origin {
        received: Utc::now(),
        source_address: "10.0.4.17:41822".into(),
        peer_ip: Some("10.0.4.17".parse().unwrap()),
        default_host: None,
        time_rules: Default::default(),
    }
}

/// The syslog lines (not CloudHSM records) of the vendored decoder corpus.
fn corpus_lines() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/luna.jsonl")).expect("corpus");
    text.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("corpus JSON"))
        .filter(|case| case["expect"]["log.syslog.format"] != "cloudhsm_audit")
        .map(|case| case["wire"].as_str().expect("wire").to_owned())
        .collect()
}

fn bench(c: &mut Criterion) {
    let decoders = Decoders::load(&RuleSource::Embedded).expect("shipped decoders");
    let copies = 128;
    let lines = (copies * LINES.len()) as u64;
    let bytes = stream(copies);
    let origin = origin();
    let mut check = Framer::new(64 * 1024);
    check.push(&bytes);
    let mut framed = 0;
    while let Some(_frame) = check.next_frame().expect("the bench stream frames cleanly") {
        framed += 1;
    }
    assert_eq!(framed, lines, "every line of the bench stream is one frame");
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(lines));

    group.bench_function("frame", |b| {
        b.iter_batched_ref(
            || Framer::new(64 * 1024),
            |framer| {
                framer.push(&bytes);
                let mut n = 0;
                while let Ok(Some(frame)) = framer.next_frame() {
                    n += frame.bytes.len();
                }
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("parse", |b| {
        b.iter(|| {
            for _ in 0..copies {
                for line in LINES {
                    black_box(parse(black_box(line), origin.received, origin.time_rules));
                }
            }
        })
    });
    group.bench_function("frame+redact+parse+decode", |b| {
        b.iter_batched_ref(
            || Framer::new(64 * 1024),
            |framer| {
                framer.push(&bytes);
                let mut events = Vec::with_capacity(lines as usize);
                while let Ok(Some(frame)) = framer.next_frame() {
                    events.push(frame_to_event(frame.bytes, frame.truncated, &origin, &decoders));
                }
                black_box(events)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let corpus = corpus_lines();
    let mut group = c.benchmark_group("corpus");
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.bench_function("redact+parse+decode", |b| {
        b.iter(|| {
            for line in &corpus {
                black_box(frame_to_event(black_box(line.as_bytes()), false, &origin, &decoders));
            }
        })
    });
    group.finish();

    // Rule evaluation per event with the shipped pack, on the decoded corpus: steady state (windows fill, fire and
    // are consumed; groups stay few, as with a real fleet).
    let rules = load::load(&RuleSource::Embedded).expect("shipped rules").rules;
    let events: Vec<_> = corpus.iter().map(|line| frame_to_event(line.as_bytes(), false, &origin, &decoders)).collect();
    let mut engine = Engine::new(&rules, origin.received);
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("evaluate shipped pack", |b| {
        b.iter(|| {
            for (id, event) in events.iter().enumerate() {
                black_box(engine.process(black_box(event), Some(id as i64)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

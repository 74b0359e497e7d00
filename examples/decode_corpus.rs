//! Runs every syslog line of the decoder corpus through frame → redact → parse → decode a number of times, for
//! instruction counts under callgrind (`valgrind --tool=callgrind target/release/examples/decode_corpus 100`), where
//! criterion's timing loop would make the count depend on how long it ran.

use chrono::Utc;
use hsmwatch::decode::{Decoders, Origin};
use hsmwatch::ingest::frame_to_event;
use hsmwatch::pack::RuleSource;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100);
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/luna.jsonl")).expect("corpus");
    let lines: Vec<String> = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("corpus JSON"))
        .filter(|case| case["expect"]["log.syslog.format"] != "cloudhsm_audit")
        .map(|case| case["wire"].as_str().expect("wire").to_owned())
        .collect();
    let decoders = Decoders::load(&RuleSource::Embedded).expect("shipped decoders");
    let origin = Origin {
        received: Utc::now(),
        source_address: "10.0.4.17:41822".into(),
        peer_ip: Some("10.0.4.17".parse().expect("an address")),
        default_host: None,
        time_rules: Default::default(),
    };
    let mut fields = 0;
    for _ in 0..rounds {
        for line in &lines {
            fields += std::hint::black_box(frame_to_event(line.as_bytes(), false, &origin, &decoders)).fields().count();
        }
    }
    println!("{} lines × {rounds} rounds, {fields} fields", lines.len());
}

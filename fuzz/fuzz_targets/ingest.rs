//! Fuzzes the server's per-connection path: arbitrary bytes, cut into reads at fuzzer-chosen places, through framing,
//! redaction, parsing and the shipped decoders. Checks that nothing panics, that no frame exceeds the maximum size,
//! and that every event keeps its original line.
#![no_main]

use std::sync::OnceLock;

use hsmwatch::decode::{Decoders, Origin};
use hsmwatch::event::field;
use hsmwatch::frame::Framer;
use hsmwatch::ingest::frame_to_event;
use hsmwatch::pack::RuleSource;
use libfuzzer_sys::fuzz_target;

const MAX_FRAME: usize = 1024;

fn decoders() -> &'static Decoders {
    static DECODERS: OnceLock<Decoders> = OnceLock::new();
    DECODERS.get_or_init(|| Decoders::load(&RuleSource::Embedded).expect("shipped decoders load"))
}

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the read size, so the fuzzer explores frames split across reads.
    let Some((&split, stream)) = data.split_first() else { return };
    let chunk = usize::from(split).max(1);
    let origin = Origin {
        received: chrono::DateTime::from_timestamp(1_772_000_000, 0).expect("a valid time"),
        source_address: "127.0.0.1:1".into(),
        peer_ip: None,
        default_host: None, time_rules: Default::default(),
    };
    let mut framer = Framer::new(MAX_FRAME);
    let mut pieces = stream.chunks(chunk).peekable();
    loop {
        match pieces.next() {
            Some(piece) => framer.push(piece),
            None => framer.finish(),
        }
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.bytes.len() <= MAX_FRAME);
                    let event = frame_to_event(frame.bytes, frame.truncated, &origin, decoders());
                    assert!(event.get(field::ORIGINAL).is_some() || frame.bytes.is_empty());
                    assert!(event.get(field::FORMAT).is_some());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if pieces.peek().is_none() && framer.buffered() == 0 {
            framer.finish();
            while let Ok(Some(_)) = framer.next_frame() {}
            return;
        }
    }
});

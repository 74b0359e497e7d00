//! Property tests: arbitrary bytes through framing, parsing and decoding never panic, framing does not depend on how
//! the stream was cut into reads, and no byte of a line is lost on its way into the event.

use std::sync::OnceLock;

use hsmwatch::decode::{Decoders, Origin};
use hsmwatch::event::field;
use hsmwatch::frame::{Frame, FrameError, Framer};
use hsmwatch::ingest::frame_to_event;
use hsmwatch::pack::RuleSource;
use hsmwatch::parse::frame_text;
use proptest::prelude::*;

fn decoders() -> &'static Decoders {
    static DECODERS: OnceLock<Decoders> = OnceLock::new();
    DECODERS.get_or_init(|| Decoders::load(&RuleSource::Embedded).expect("shipped decoders"))
}

fn origin() -> Origin {
    Origin {
        received: "2026-03-01T12:00:00Z".parse().unwrap(),
        source_address: "127.0.0.1:1".into(),
        peer_ip: None,
        default_host: None,
        time_rules: Default::default(),
    }
}

/// Frames of `input` fed in pieces of the given sizes, then finished; owned copies with their truncation marks.
fn frame_all(input: &[u8], pieces: &[usize], max: usize) -> (Vec<(Vec<u8>, bool)>, Option<FrameError>) {
    let mut framer = Framer::new(max);
    let mut frames = Vec::new();
    let mut rest = input;
    let mut sizes = pieces.iter().cycle();
    loop {
        if rest.is_empty() {
            framer.finish();
        } else {
            let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
            framer.push(&rest[..n]);
            rest = &rest[n..];
        }
        loop {
            match framer.next_frame() {
                Ok(Some(Frame { bytes, truncated })) => frames.push((bytes.to_vec(), truncated)),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
        if rest.is_empty() {
            return (frames, None);
        }
    }
}

/// A syslog-ish line: mostly printable, some invalid UTF-8, never a line end or NUL, not starting like a count.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![8 => 0x20u8..0x7f, 1 => 0x80u8..=0xff, 1 => Just(b'\t')];
    (prop::collection::vec(byte, 0..200)).prop_map(|mut bytes| {
        if bytes.first().is_some_and(|b| b.is_ascii_digit()) {
            bytes.insert(0, b'<');
        }
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_frame_and_decode_without_panic(input in prop::collection::vec(any::<u8>(), 0..2048), pieces in prop::collection::vec(1usize..64, 1..8), max in 1usize..512) {
        let (frames, _) = frame_all(&input, &pieces, max);
        let total: usize = frames.iter().map(|(f, _)| f.len()).sum();
        prop_assert!(total <= input.len());
        for (bytes, truncated) in &frames {
            prop_assert!(bytes.len() <= max);
            let event = frame_to_event(bytes, *truncated, &origin(), decoders());
            prop_assert!(event.get(field::FORMAT).is_some());
            prop_assert_eq!(event.get(field::TRUNCATED).is_some(), *truncated);
        }
    }

    #[test]
    fn framing_does_not_depend_on_read_boundaries(input in prop::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b' '), Just(b'1'), Just(b'<')], 0..1024), pieces in prop::collection::vec(1usize..32, 1..8)) {
        let whole = frame_all(&input, &[input.len().max(1)], 256);
        let chunked = frame_all(&input, &pieces, 256);
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn no_byte_of_a_line_is_lost(lines in prop::collection::vec(line(), 1..20), pieces in prop::collection::vec(1usize..64, 1..8)) {
        let mut stream = Vec::new();
        for line in &lines {
            stream.extend_from_slice(line);
            stream.push(b'\n');
        }
        let (frames, error) = frame_all(&stream, &pieces, 64 * 1024);
        prop_assert!(error.is_none());
        // Empty lines are not messages; every other line is one frame.
        let expected: Vec<&Vec<u8>> = lines.iter().filter(|l| !l.is_empty()).collect();
        prop_assert_eq!(frames.len(), expected.len());
        for ((bytes, _), line) in frames.iter().zip(expected) {
            prop_assert_eq!(bytes, line);
            let event = frame_to_event(bytes, false, &origin(), decoders());
            // What is stored is the line after redaction: as text, and byte for byte when it was not UTF-8.
            let redacted = decoders().redact(line);
            let text = frame_text(&redacted);
            prop_assert_eq!(event.get(field::ORIGINAL), Some(text.as_ref()));
            if std::str::from_utf8(&redacted).is_err() {
                prop_assert_eq!(event.raw.as_deref(), Some(redacted.as_ref()));
            }
        }
    }
}

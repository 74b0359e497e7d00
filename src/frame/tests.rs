use super::*;

/// Frames `input` fed in chunks of `chunk` bytes, then finished: the frames as strings with a `~` for truncation,
/// or the error that stopped the stream.
fn frames(input: &[u8], chunk: usize, max: usize) -> (Vec<String>, Option<FrameError>) {
    let mut framer = Framer::new(max);
    let mut out = Vec::new();
    let mut feed = input.chunks(chunk.max(1)).peekable();
    loop {
        if let Some(part) = feed.next() {
            framer.push(part);
        } else {
            framer.finish();
        }
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    let mark = if frame.truncated { "~" } else { "" };
                    out.push(format!("{}{mark}", String::from_utf8_lossy(frame.bytes)));
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        if framer.eof {
            return (out, None);
        }
    }
}

/// Name, input, maximum frame size, frames expected, error expected.
type Case = (&'static str, &'static [u8], usize, &'static [&'static str], Option<FrameError>);

#[test]
fn framing_table() {
    let cases: &[Case] = &[
        ("LF", b"<13>a\n<13>b\n", 1024, &["<13>a", "<13>b"], None),
        ("CRLF", b"<13>a\r\n<13>b\r\n", 1024, &["<13>a", "<13>b"], None),
        ("NUL", b"<13>a\0<13>b\0", 1024, &["<13>a", "<13>b"], None),
        ("octet counting", b"5 <13>a5 <13>b", 1024, &["<13>a", "<13>b"], None),
        ("octet counting with LF after", b"5 <13>a\n5 <13>b\n", 1024, &["<13>a", "<13>b"], None),
        ("mixed framing", b"5 <13>a<13>b\n7 <13>c d\n<13>e", 1024, &["<13>a", "<13>b", "<13>c d", "<13>e"], None),
        ("EOF without terminator", b"<13>a\n<13>last", 1024, &["<13>a", "<13>last"], None),
        ("empty frames skipped", b"\n\n\r\n<13>a\n\n", 1024, &["<13>a"], None),
        ("count can hold LF", b"9 <13>a\nb\nc\n", 1024, &["<13>a\nb\nc"], None),
        ("oversize line truncated, rest skipped", b"<13>abcdefgh\n<13>b\n", 6, &["<13>ab~", "<13>b"], None),
        ("line of exactly max", b"<13>ab\n", 6, &["<13>ab"], None),
        (
            "absurd count",
            b"<13>a\n99999999 <13>b",
            1024,
            &["<13>a"],
            Some(FrameError::CountTooLarge { count: 99_999_999, max: 1024 }),
        ),
        ("lying count (too short)", b"3 <13>abc\n", 1024, &["<13"], Some(FrameError::CountMismatch { byte: b'>' })),
        ("count incomplete at EOF", b"50 <13>short", 1024, &["<13>short~"], None),
        // Regression: a bare count at EOF made an empty frame, whose event had no event.original.
        ("bare count at EOF", b"<13>a\n5 ", 1024, &["<13>a"], None),
        (
            "Luna file layout is a line",
            b"2026 Mar  5 07:40:02 h local5 info lunash: x\n",
            1024,
            &["2026 Mar  5 07:40:02 h local5 info lunash: x"],
            None,
        ),
        ("digits without space are a line", b"12ab\n", 1024, &["12ab"], None),
        ("zero is not a count", b"0 x\n", 1024, &["0 x"], None),
        ("non-numeric count is a line", b"1x <13>a\n", 1024, &["1x <13>a"], None),
    ];
    for (name, input, max, expected, error) in cases {
        for chunk in [1, 2, 3, 7, input.len().max(1)] {
            let (got, err) = frames(input, chunk, *max);
            assert_eq!(got, *expected, "{name} (chunk {chunk})");
            assert_eq!(err, *error, "{name} (chunk {chunk})");
        }
    }
}

#[test]
fn errors_never_let_the_stream_continue() {
    assert!(!FrameError::CountTooLarge { count: 1, max: 0 }.can_continue());
    assert!(!FrameError::CountMismatch { byte: 0 }.can_continue());
}

#[test]
fn buffer_does_not_grow_while_discarding() {
    let mut framer = Framer::new(16);
    framer.push(b"<13>");
    for _ in 0..1000 {
        framer.push(&[b'x'; 1000]);
        while let Ok(Some(_)) = framer.next_frame() {}
        assert!(framer.buffered() <= 1000, "buffered {}", framer.buffered());
    }
    framer.push(b"\n<13>ok\n");
    assert_eq!(framer.next_frame().unwrap().map(|f| f.bytes), Some(&b"<13>ok"[..]));
}

#[test]
fn four_digit_count_is_a_count_unless_a_month_follows() {
    let body = format!("<13>{}", "x".repeat(996));
    let input = format!("1000 {body}1000 {body}");
    let (got, err) = frames(input.as_bytes(), 97, 4096);
    assert_eq!(err, None);
    assert_eq!(got, vec![body.clone(), body]);
}

#[test]
fn a_cut_stream_marks_its_unfinished_line_and_says_when_a_frame_is_pending() {
    let mut framer = Framer::new(1024);
    framer.push(b"<13>a\n<13>b");
    assert_eq!(framer.next_frame().unwrap().map(|f| f.bytes.to_vec()), Some(b"<13>a".to_vec()));
    assert_eq!(framer.next_frame().unwrap().map(|f| f.bytes.to_vec()), None);
    assert!(framer.mid_frame(), "`<13>b` waits for its line end");
    framer.cut();
    let last = framer.next_frame().unwrap().expect("the unfinished line");
    assert_eq!((last.bytes, last.truncated), (&b"<13>b"[..], true));
    assert!(!framer.mid_frame());

    let mut framer = Framer::new(4);
    framer.push(b"<13>abcdef");
    assert!(framer.next_frame().unwrap().is_some_and(|f| f.truncated));
    assert!(framer.mid_frame(), "the rest of an oversize line is still to be skipped");
    framer.push(b"gh\n");
    assert!(framer.next_frame().unwrap().is_none());
    assert!(!framer.mid_frame());
}

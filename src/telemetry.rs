//! hsmwatch's own log output: the writer `tracing` formats into, which never blocks and never fails the code that
//! logs; and the escaping of text from the network wherever a person reads it on a terminal.
//!
//! Receives formatted log lines from any thread; writes them to stderr from a thread of its own. Owns the queue
//! between the two and the count of lines that were not written. A log pipe that is closed (a crashed log shipper,
//! `| head`, a journald restart) or full (nobody reading) must never stall ingestion, rule evaluation, delivery or
//! shutdown: a line that does not fit in the queue, or that stderr refuses, is dropped and counted
//! (`hsmwatch_log_write_errors_total`), and everything else carries on.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

/// Lines waiting for stderr at most; beyond that they are dropped (and counted) rather than waited for.
const QUEUE_LINES: usize = 4096;

/// Log lines dropped: the queue was full, or stderr refused them.
static WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// The queue to the stderr thread, once started.
static QUEUE: OnceLock<SyncSender<Message>> = OnceLock::new();

enum Message {
    Line(Vec<u8>),
    /// Everything sent before is written (or dropped): answer.
    Flush(SyncSender<()>),
}

/// Log lines that could not be written so far.
pub fn write_errors() -> u64 {
    WRITE_ERRORS.load(Ordering::Relaxed)
}

/// The writer to give `tracing_subscriber::fmt().with_writer(...)`: each event's line goes to the stderr thread.
pub fn stderr_writer() -> impl for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static {
    let queue = QUEUE.get_or_init(start_stderr_thread).clone();
    move || LogLine { queue: queue.clone(), line: Vec::new() }
}

/// Waits until what was logged so far reached stderr, for at most `limit` (a blocked stderr must not hold up exit).
pub fn flush(limit: Duration) {
    let Some(queue) = QUEUE.get() else { return };
    let (done, finished) = mpsc::sync_channel(1);
    if queue.try_send(Message::Flush(done)).is_ok() {
        let _ = finished.recv_timeout(limit);
    }
}

fn start_stderr_thread() -> SyncSender<Message> {
    let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
    let started =
        std::thread::Builder::new().name("log-writer".into()).spawn(move || write_lines(lines, std::io::stderr()));
    if started.is_err() {
        // Without the thread nothing drains the queue: every line will be counted as dropped.
        WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
    }
    queue
}

fn write_lines(lines: Receiver<Message>, mut out: impl Write) {
    for message in lines {
        match message {
            Message::Line(line) => {
                if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                    WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
                }
            }
            Message::Flush(done) => {
                let _ = done.try_send(());
            }
        }
    }
}

/// One event's formatted text, handed to the stderr thread when `tracing` drops the writer.
struct LogLine {
    queue: SyncSender<Message>,
    line: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        match self.queue.try_send(Message::Line(std::mem::take(&mut self.line))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Text from a log line (or any peer) made safe for a terminal: every control character written as `#` and three
/// octal digits, as rsyslog writes them (`ESC` is `#033`, a newline `#012`), the C1 controls too (`#233`), and the
/// Unicode controls that reorder or hide text (bidirectional overrides and isolates) as `#u{202e}`. Nothing else
/// changes, so that what is printed reads as what was sent; JSON output needs none of this (JSON escapes them).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !needs_escape(c) => escaped.push(c),
            c if u32::from(c) < 0x100 => escaped.push_str(&format!("#{:03o}", u32::from(c))),
            c => escaped.push_str(&format!("#u{{{:x}}}", u32::from(c))),
        }
    }
    Cow::Owned(escaped)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// [`escape_controls`] as a `Display` value, for log fields that carry text from the network (`%Escaped(&title)`).
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_controls(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_as_rsyslog_writes_them() {
        assert_eq!(escape_controls("plain text: ok"), Cow::Borrowed("plain text: ok"));
        assert_eq!(escape_controls("\x1b[2J\x1b[31mroot"), "#033[2J#033[31mroot");
        assert_eq!(escape_controls("a\nb\rc\td\x7f"), "a#012b#015c#011d#177");
        assert_eq!(escape_controls("csi \u{9b}31m"), "csi #23331m");
        assert_eq!(escape_controls("evil\u{202e}txt.exe"), "evil#u{202e}txt.exe");
        assert_eq!(escape_controls("Grüße, ünïcödé, 日本"), "Grüße, ünïcödé, 日本");
        assert_eq!(Escaped("x\x07").to_string(), "x#007");
    }

    /// A writer that refuses everything, like a pipe whose reader is gone.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_stderr_refuses_are_counted_and_writing_goes_on() {
        let (queue, lines) = mpsc::sync_channel(8);
        let thread = std::thread::spawn(move || write_lines(lines, Closed));
        let before = write_errors();
        for _ in 0..3 {
            let mut line = LogLine { queue: queue.clone(), line: Vec::new() };
            line.write_all(b"a line\n").unwrap();
        }
        let (done, finished) = mpsc::sync_channel(1);
        queue.send(Message::Flush(done)).unwrap();
        finished.recv().unwrap();
        assert!(write_errors() >= before + 3);
        drop(queue);
        thread.join().unwrap();
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // Nobody drains this queue: the second line does not fit.
        let (queue, _lines) = mpsc::sync_channel(1);
        let before = write_errors();
        for _ in 0..2 {
            let mut line = LogLine { queue: queue.clone(), line: Vec::new() };
            line.write_all(b"a line\n").unwrap();
        }
        assert!(write_errors() > before);
    }
}

//! RFC 6587 framing of a byte stream (TCP, TLS) into syslog frames.
//!
//! Receives the bytes of one connection as they are read; emits borrowed frames. Owns the connection's read buffer and
//! the decision, made per frame, between octet counting (`MSG-LEN SP MSG`, RFC 6587 §3.4.1) and non-transparent
//! framing (a frame ends at LF, with CRLF accepted and a NUL byte as the alternative terminator rsyslog allows,
//! §3.4.2). Nothing here allocates per frame.
//!
//! Two heuristics decide what the RFC leaves open:
//! - A frame that starts with a non-zero digit is octet-counted, unless it starts like the Luna appliance's own file
//!   layout (`2026 Mar  5 07:40:02 host ...`: four digits, a space, a month name), which is a line.
//! - After an octet-counted frame the next frame must start with a digit or `<` (or be preceded by line ends): any
//!   other byte means the count was wrong, and the stream cannot be trusted any more.

use thiserror::Error;

/// Default maximum frame size: 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Longest octet count accepted (10 digits); a longer run of digits starts a plain line.
const MAX_COUNT_DIGITS: usize = 10;

/// One frame: a view into the framer's buffer, valid until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame's bytes, without octet count or terminator.
    pub bytes: &'a [u8],
    /// The frame was cut: longer than the maximum frame size, or an octet-counted frame incomplete at end of stream.
    pub truncated: bool,
}

/// Why a stream's framing cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// An octet count larger than the maximum frame size: absurd, or an attempt to make the server buffer it.
    #[error("octet count {count} exceeds the maximum frame size of {max} bytes")]
    CountTooLarge {
        /// The count the sender wrote.
        count: u64,
        /// The configured maximum frame size.
        max: usize,
    },
    /// The bytes after an octet-counted frame do not start a frame: the count lied.
    #[error("octet-counted frame was followed by byte 0x{byte:02x}, not by a new frame: the octet count was wrong")]
    CountMismatch {
        /// The first byte after the counted frame.
        byte: u8,
    },
}

impl FrameError {
    /// Whether framing can resume on the same stream: never for these, since the frame boundaries are lost.
    pub fn can_continue(&self) -> bool {
        match self {
            FrameError::CountTooLarge { .. } | FrameError::CountMismatch { .. } => false,
        }
    }
}

/// What the framer is in the middle of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary.
    Boundary,
    /// Skipping the rest of an oversize line after its first `max_frame` bytes were emitted.
    Discarding,
}

/// What the head of the buffer turned out to be.
enum Head {
    /// Need more bytes to decide.
    Incomplete,
    /// An octet-counted frame: header length and count.
    Counted { header: usize, count: usize },
    /// A non-transparent frame.
    Line,
}

/// Frames one stream. Push bytes with [`Framer::push`], take frames with [`Framer::next_frame`] until it yields
/// `None`, and call [`Framer::finish`] at end of stream to release the last, unterminated frame.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
    max_frame: usize,
    state: State,
    after_counted: bool,
    eof: bool,
    cut: bool,
}

impl Framer {
    /// A framer that cuts frames at `max_frame` bytes (at least 1).
    pub fn new(max_frame: usize) -> Self {
        Framer {
            buf: Vec::with_capacity(8 * 1024),
            start: 0,
            max_frame: max_frame.max(1),
            state: State::Boundary,
            after_counted: false,
            eof: false,
            cut: false,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Marks the end of the stream: what is left becomes the last frame.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Marks the end of a stream closed before its last line was complete: what is left becomes the last frame,
    /// marked truncated.
    pub fn cut(&mut self) {
        self.eof = true;
        self.cut = true;
    }

    /// Bytes held that are not yet part of an emitted frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether part of a frame is held or still being skipped (the rest of an oversize line), waiting for more bytes.
    pub fn mid_frame(&self) -> bool {
        self.buffered() > 0 || self.state == State::Discarding
    }

    /// The next complete frame, `None` when more bytes are needed (or, after `finish`, when the stream is done).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        if self.state == State::Discarding && !self.discard_rest_of_line() {
            return Ok(None);
        }
        self.skip_line_ends();
        let Some(&first) = self.buf.get(self.start) else {
            return Ok(None);
        };
        match self.classify_head() {
            Head::Incomplete if !self.eof => Ok(None),
            Head::Counted { header, count } => {
                if count > self.max_frame {
                    return Err(FrameError::CountTooLarge { count: count as u64, max: self.max_frame });
                }
                Ok(self.take_counted(header, count))
            }
            Head::Incomplete | Head::Line => {
                if self.after_counted && first != b'<' && !first.is_ascii_digit() {
                    return Err(FrameError::CountMismatch { byte: first });
                }
                Ok(self.take_line())
            }
        }
    }

    /// Drops line ends (and NULs) between frames; a line end after a counted frame resets the mismatch check,
    /// because some senders terminate octet-counted frames with LF as well.
    fn skip_line_ends(&mut self) {
        while let Some(&b) = self.buf.get(self.start) {
            if b == b'\n' || b == b'\r' || b == 0 {
                self.start += 1;
                self.after_counted = false;
            } else {
                break;
            }
        }
    }

    fn classify_head(&self) -> Head {
        let head = &self.buf[self.start..];
        if !matches!(head.first(), Some(b'1'..=b'9')) {
            return Head::Line;
        }
        let digits = head.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_COUNT_DIGITS {
            return Head::Line;
        }
        match head.get(digits) {
            None => Head::Incomplete,
            Some(b' ') => {
                if digits == 4 {
                    match looks_like_luna_file_date(&head[5..]) {
                        None => return Head::Incomplete,
                        Some(true) => return Head::Line,
                        Some(false) => {}
                    }
                }
                let count = head[..digits]
                    .iter()
                    .fold(0usize, |n, d| n.saturating_mul(10).saturating_add(usize::from(d - b'0')));
                Head::Counted { header: digits + 1, count }
            }
            Some(_) => Head::Line,
        }
    }

    fn take_counted(&mut self, header: usize, count: usize) -> Option<Frame<'_>> {
        let begin = self.start + header;
        let available = self.buf.len().saturating_sub(begin);
        if available >= count {
            self.start = begin + count;
            self.after_counted = true;
            return Some(Frame { bytes: &self.buf[begin..begin + count], truncated: false });
        }
        if !self.eof {
            return None;
        }
        // The stream ended inside a counted frame: keep what arrived, marked as cut (a bare header is no message).
        self.start = self.buf.len();
        (available > 0).then(|| Frame { bytes: &self.buf[begin..], truncated: true })
    }

    fn take_line(&mut self) -> Option<Frame<'_>> {
        let begin = self.start;
        let window_end = self.buf.len().min(begin + self.max_frame + 1);
        let terminator = self.buf[begin..window_end].iter().position(|&b| b == b'\n' || b == 0);
        self.after_counted = false;
        match terminator {
            Some(len) if len <= self.max_frame => {
                self.start = begin + len + 1;
                let line = trim_cr(&self.buf[begin..begin + len]);
                Some(Frame { bytes: line, truncated: false })
            }
            _ if self.buffered() > self.max_frame => {
                self.start = begin + self.max_frame;
                self.state = State::Discarding;
                Some(Frame { bytes: &self.buf[begin..begin + self.max_frame], truncated: true })
            }
            _ if self.eof => {
                self.start = self.buf.len();
                let line = trim_cr(&self.buf[begin..]);
                Some(Frame { bytes: line, truncated: self.cut })
            }
            _ => None,
        }
    }

    /// Skips to the end of an oversize line; `true` once the terminator was found.
    fn discard_rest_of_line(&mut self) -> bool {
        match self.buf[self.start..].iter().position(|&b| b == b'\n' || b == 0) {
            Some(pos) => {
                self.start += pos + 1;
                self.state = State::Boundary;
                true
            }
            None => {
                self.start = self.buf.len();
                false
            }
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `Some(true)` when the bytes after `YYYY ` start with a month name and a space, `None` when too few bytes arrived.
fn looks_like_luna_file_date(rest: &[u8]) -> Option<bool> {
    const MONTHS: [&[u8; 3]; 12] =
        [b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"];
    let word = rest.get(..4)?;
    let month = [word[0].to_ascii_lowercase(), word[1].to_ascii_lowercase(), word[2].to_ascii_lowercase()];
    Some(word[3] == b' ' && MONTHS.iter().any(|m| **m == month))
}

#[cfg(test)]
mod tests;

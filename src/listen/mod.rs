//! Network listeners: UDP sockets and TCP connections, read until shutdown, their events handed to the writer queue.
//!
//! Receives bytes from sockets; emits [`Event`]s into a bounded channel. Owns the sockets, the connection tasks,
//! backpressure (a full queue pauses TCP reading, so nothing is lost; a datagram that finds it full is dropped and
//! counted) and the drain on shutdown. Turning bytes into events is the [`Ingest`] implementation's job, which keeps
//! this module free of the stages after it.

pub mod admission;
pub mod identity;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::event::Event;

/// How a connection drains on shutdown: it keeps reading until the peer is quiet this long...
pub const DRAIN_IDLE: Duration = Duration::from_millis(250);
/// ...or until this much time has passed since shutdown began.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The drain phase of a shutdown: go on taking what peers already sent until they are quiet for [`DRAIN_IDLE`],
/// and for no longer than [`DRAIN_LIMIT`] in all.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    deadline: tokio::time::Instant,
}

impl Drain {
    /// Starts draining now.
    pub fn start() -> Self {
        Drain { deadline: tokio::time::Instant::now() + DRAIN_LIMIT }
    }

    /// Runs `step` until it has been quiet for [`DRAIN_IDLE`] or the drain's time is up; `None` then.
    pub async fn next<F: std::future::Future>(&self, step: F) -> Option<F::Output> {
        let quiet = (tokio::time::Instant::now() + DRAIN_IDLE).min(self.deadline);
        tokio::time::timeout_at(quiet, step).await.ok()
    }
}

/// The transport a line arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 5426.
    Udp,
    /// RFC 6587.
    Tcp,
    /// RFC 5425: RFC 6587 framing inside TLS.
    Tls,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        })
    }
}

/// Why a stream must be closed (its framing cannot go on); what was framed before it has been emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError(pub String);

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Turns the bytes of one connection into events.
pub trait StreamSink: Send + 'static {
    /// Takes bytes read at `received`, appending the events of every complete frame to `out`.
    fn push(&mut self, data: &[u8], received: DateTime<Utc>, out: &mut Vec<Event>) -> Result<(), StreamError>;
    /// The stream ended: appends the events of what is left.
    fn finish(&mut self, received: DateTime<Utc>, out: &mut Vec<Event>);
    /// The stream was closed before its last frame was complete: appends the events of what is left, marked
    /// truncated.
    fn cut(&mut self, received: DateTime<Utc>, out: &mut Vec<Event>);
    /// Whether part of a frame is held, waiting for the rest.
    fn mid_frame(&self) -> bool;
    /// The peer proved who it is (mutual TLS): every later event carries it.
    fn identify(&mut self, identity: identity::ClientIdentity);
}

/// Turns received bytes into events: one [`StreamSink`] per connection, one event per datagram.
pub trait Ingest: Clone + Send + Sync + 'static {
    /// The per-connection state.
    type Stream: StreamSink;
    /// A connection from `peer` was accepted.
    fn open_stream(&self, peer: SocketAddr, transport: Transport) -> Self::Stream;
    /// One datagram from `peer`.
    fn datagram(&self, bytes: &[u8], peer: SocketAddr, received: DateTime<Utc>) -> Event;
}

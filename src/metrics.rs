//! Counters shared by every stage: what was received, stored, unparsed, truncated, dropped or refused.
//!
//! Stages only increment; the summary log line (and later the `/metrics` endpoint) reads a [`Snapshot`]. Plain atomics
//! with relaxed ordering: the numbers are for operators, not for synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};

/// Every counter of the server, cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames (TCP) and datagrams (UDP) turned into events.
    pub received: AtomicU64,
    /// Bytes read from sockets.
    pub bytes: AtomicU64,
    /// Events committed to the database.
    pub stored: AtomicU64,
    /// Lines no syslog parser accepted (stored with `log.syslog.format: unparsed`).
    pub unparsed: AtomicU64,
    /// Frames cut at the maximum frame size.
    pub truncated: AtomicU64,
    /// UDP datagrams dropped because the writer queue was full.
    pub udp_dropped: AtomicU64,
    /// TCP connections closed because their framing could not go on (absurd or lying octet counts).
    pub framing_errors: AtomicU64,
    /// TCP connections accepted.
    pub connections_accepted: AtomicU64,
    /// Batches whose commit failed and was retried.
    pub store_retries: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Counters::received`].
    pub received: u64,
    /// See [`Counters::bytes`].
    pub bytes: u64,
    /// See [`Counters::stored`].
    pub stored: u64,
    /// See [`Counters::unparsed`].
    pub unparsed: u64,
    /// See [`Counters::truncated`].
    pub truncated: u64,
    /// See [`Counters::udp_dropped`].
    pub udp_dropped: u64,
    /// See [`Counters::framing_errors`].
    pub framing_errors: u64,
    /// See [`Counters::connections_accepted`].
    pub connections_accepted: u64,
    /// See [`Counters::store_retries`].
    pub store_retries: u64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> Snapshot {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            received: read(&self.received),
            bytes: read(&self.bytes),
            stored: read(&self.stored),
            unparsed: read(&self.unparsed),
            truncated: read(&self.truncated),
            udp_dropped: read(&self.udp_dropped),
            framing_errors: read(&self.framing_errors),
            connections_accepted: read(&self.connections_accepted),
            store_retries: read(&self.store_retries),
        }
    }
}

//! TCP listener: one task accepts, one task per connection reads, frames (through the [`Ingest`] sink) and sends.
//! A [`Handshake`] turns each accepted socket into the byte stream that is read: the socket itself for plain TCP, a
//! TLS session for the TLS listener (`super::tls`).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::admission::{Admission, Verdict};
use super::{Drain, Ingest, StreamSink, Transport};
use crate::config::{TcpListenerConfig, TlsListenerConfig};
use crate::event::Event;
use crate::metrics::{Counters, ListenerCounters};
use crate::queue::Queue;

/// Size of one socket read.
const READ_CHUNK: usize = 64 * 1024;

/// Turns an accepted socket into the stream that carries syslog frames.
pub trait Handshake: Clone + Send + Sync + 'static {
    /// What is read.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static;
    /// The transport, as reported.
    const TRANSPORT: Transport;
    /// The stream, or `None` when the peer failed the handshake (the connection is dropped).
    fn handshake(&self, stream: TcpStream, peer: SocketAddr) -> impl Future<Output = Option<Self::Stream>> + Send;
    /// Who the peer proved to be during the handshake (a client certificate), if anyone.
    fn identity(&self, _stream: &Self::Stream) -> Option<super::identity::ClientIdentity> {
        None
    }
}

/// Plain TCP: the socket is the stream.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl Handshake for Plain {
    type Stream = TcpStream;
    const TRANSPORT: Transport = Transport::Tcp;

    async fn handshake(&self, stream: TcpStream, _peer: SocketAddr) -> Option<TcpStream> {
        Some(stream)
    }
}

/// Connections the kernel completes before hsmwatch accepts them (a burst of senders after a restart).
const BACKLOG: u32 = 4096;

/// Binds a TCP listener with a deep accept backlog (the kernel caps it at `net.core.somaxconn`).
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// A connection that has not completed a line for this long may be closed to make room when the listener is full.
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// Who may connect, how many at once, and how long a silent connection or an unfinished line is kept.
#[derive(Debug, Clone, Default)]
pub struct StreamPolicy {
    /// Allowlist and connection limits.
    pub admission: Admission,
    /// How long a connection may stay silent, and how long one line may take.
    pub timeouts: Timeouts,
}

/// How long a connection may stay silent, and how long one line may take (`None`: for ever).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// A connection that sends nothing for this long is closed.
    pub idle: Option<Duration>,
    /// A connection whose line is not complete this long after it began is closed.
    pub line: Option<Duration>,
}

impl StreamPolicy {
    /// An allowlist, the limits per listener, address and network, and the timeouts.
    fn new(allow: &[ipnet::IpNet], [listener, per_ip, per_net]: [usize; 3], timeouts: Timeouts) -> Self {
        StreamPolicy { admission: Admission::new(allow.to_vec(), listener, per_ip, per_net), timeouts }
    }

    /// The policy of a TCP listener's settings.
    pub fn of_tcp(config: &TcpListenerConfig) -> Self {
        let limits = [config.max_connections, config.max_connections_per_ip, config.max_connections_per_net];
        Self::new(&config.allow, limits, Timeouts { idle: config.idle_timeout, line: config.line_timeout })
    }

    /// The policy of a TLS listener's settings.
    pub fn of_tls(config: &TlsListenerConfig) -> Self {
        let limits = [config.max_connections, config.max_connections_per_ip, config.max_connections_per_net];
        Self::new(&config.allow, limits, Timeouts { idle: config.idle_timeout, line: config.line_timeout })
    }
}

/// What the accept loop keeps of an open connection: its peer, when it last completed a line, and how to close it.
struct Slot {
    ip: IpAddr,
    progress: Arc<Progress>,
    evict: CancellationToken,
}

/// When a connection last completed a line (or opened), in milliseconds since its listener started, and whether it
/// is waiting for the writer queue (then it is held back by hsmwatch, not slow).
#[derive(Debug)]
struct Progress {
    since: tokio::time::Instant,
    last_line_ms: AtomicU64,
    sending: AtomicBool,
}

impl Progress {
    fn new(since: tokio::time::Instant) -> Self {
        let progress = Progress { since, last_line_ms: AtomicU64::new(0), sending: AtomicBool::new(false) };
        progress.mark();
        progress
    }

    /// A line was completed now.
    fn mark(&self) {
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_line_ms.store(now, Ordering::Relaxed);
    }

    /// How long since the last line; zero while the connection waits for the writer queue.
    fn stale_for(&self) -> Duration {
        if self.sending.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_line_ms.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }
}

/// The open connections of one listener, by id: the admission counts and the slots to evict from.
struct Slots {
    admission: Admission,
    open: HashMap<u64, Slot>,
    next_id: u64,
    since: tokio::time::Instant,
}

impl Slots {
    /// Admits a connection from `ip` (closing the stalest one first when the listener is full and one has completed
    /// no line for [`STALE_AFTER`]); its id, progress and eviction token, or why not.
    fn admit(
        &mut self,
        ip: IpAddr,
        counters: &ListenerCounters,
    ) -> Result<(u64, Arc<Progress>, CancellationToken), Verdict> {
        let mut verdict = self.admission.admit(ip);
        if verdict == Verdict::ListenerFull && self.evict_stalest(counters) {
            verdict = self.admission.admit(ip);
        }
        if verdict != Verdict::Admit {
            return Err(verdict);
        }
        let id = self.next_id;
        self.next_id += 1;
        let slot = Slot { ip, progress: Arc::new(Progress::new(self.since)), evict: CancellationToken::new() };
        let handles = (id, slot.progress.clone(), slot.evict.clone());
        self.open.insert(id, slot);
        Ok(handles)
    }

    /// Closes the connection that has gone longest without a complete line, if that is [`STALE_AFTER`] or more; its
    /// slot is free at once.
    fn evict_stalest(&mut self, counters: &ListenerCounters) -> bool {
        let stalest = self.open.iter().map(|(id, slot)| (slot.progress.stale_for(), *id)).max();
        let Some((stale_for, id)) = stalest.filter(|(stale_for, _)| *stale_for >= STALE_AFTER) else {
            return false;
        };
        let slot = self.close(id).expect("the stalest slot is open");
        slot.evict.cancel();
        Counters::add(&counters.evicted_stale, 1);
        tracing::debug!(peer = %slot.ip, ?stale_for, "connection closed to make room: no complete line for a while");
        true
    }

    /// Frees the slot of a connection (once: an evicted one's task ends later).
    fn close(&mut self, id: u64) -> Option<Slot> {
        let slot = self.open.remove(&id)?;
        self.admission.release(slot.ip);
        Some(slot)
    }
}

/// Accepts plain TCP connections until `shutdown`, then waits for every connection to drain.
pub async fn serve<I: Ingest>(
    listener: TcpListener,
    policy: StreamPolicy,
    ingest: I,
    queue: Queue,
    counters: Arc<ListenerCounters>,
    shutdown: CancellationToken,
) {
    serve_with(listener, Plain, policy, ingest, queue, counters, shutdown).await
}

/// Accepts connections until `shutdown`, each through `handshake`, then waits for every connection to drain.
pub async fn serve_with<H: Handshake, I: Ingest>(
    listener: TcpListener,
    handshake: H,
    policy: StreamPolicy,
    ingest: I,
    queue: Queue,
    counters: Arc<ListenerCounters>,
    shutdown: CancellationToken,
) {
    let local = listener.local_addr().ok();
    let StreamPolicy { admission, timeouts } = policy;
    let mut slots = Slots { admission, open: HashMap::new(), next_id: 0, since: tokio::time::Instant::now() };
    let mut connections = JoinSet::new();
    let open = |stream: TcpStream, peer: SocketAddr, connections: &mut JoinSet<u64>, slots: &mut Slots| {
        let (id, progress, evict) = match slots.admit(peer.ip(), &counters) {
            Ok(admitted) => admitted,
            Err(Verdict::NotAllowed) => {
                Counters::add(&counters.refused_not_allowed, 1);
                tracing::debug!(%peer, "connection refused: not in the allowlist");
                return;
            }
            Err(verdict) => {
                Counters::add(&counters.refused_limit, 1);
                tracing::debug!(%peer, ?verdict, "connection refused: connection limit reached");
                return;
            }
        };
        Counters::add(&counters.connections_accepted, 1);
        let mut sink = ingest.open_stream(peer, H::TRANSPORT);
        let (handshake, queue, counters, shutdown) =
            (handshake.clone(), queue.clone(), counters.clone(), shutdown.clone());
        connections.spawn(async move {
            let shaken = async {
                tokio::select! {
                    stream = handshake.handshake(stream, peer) => stream,
                    _ = evict.cancelled() => None,
                }
            };
            if let Some(stream) = shaken.await {
                if let Some(identity) = handshake.identity(&stream) {
                    sink.identify(identity);
                }
                let connection = Connection { stream, peer, queue, counters, timeouts, progress, evict };
                connection.run(sink, shutdown).await;
            }
            id
        });
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => open(stream, peer, &mut connections, &mut slots),
                // Running out of file descriptors must not end the listener: wait and try again.
                Err(error) => {
                    tracing::warn!(?local, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(closed) = connections.join_next(), if !connections.is_empty() => {
                if let Ok(id) = closed {
                    slots.close(id);
                }
            }
        }
    }
    // Connections the kernel completed before shutdown carry lines their senders consider delivered: take them too.
    let drain = Drain::start();
    while let Some(Ok((stream, peer))) = drain.next(listener.accept()).await {
        open(stream, peer, &mut connections, &mut slots);
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Resolves after `timeout`, or never.
async fn idle(timeout: Option<Duration>) {
    match timeout {
        Some(timeout) => tokio::time::sleep(timeout).await,
        None => std::future::pending().await,
    }
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

struct Connection<R> {
    stream: R,
    peer: SocketAddr,
    queue: Queue,
    counters: Arc<ListenerCounters>,
    timeouts: Timeouts,
    progress: Arc<Progress>,
    evict: CancellationToken,
}

impl<R: AsyncRead + AsyncWrite + Unpin + Send + Sync> Connection<R> {
    async fn run<S: StreamSink>(mut self, mut sink: S, shutdown: CancellationToken) {
        tracing::debug!(peer = %self.peer, "connection opened");
        Counters::add(&self.counters.connections_open, 1);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut out = Vec::new();
        let mut draining: Option<Drain> = None;
        // When the line being received must be complete: set when a read leaves part of a line, moved on when a read
        // completes one, cleared when none is left.
        let mut line_deadline: Option<tokio::time::Instant> = None;
        let mut evicted = false;
        loop {
            let read = match draining {
                None => tokio::select! {
                    read = self.stream.read(&mut buf) => read,
                    _ = shutdown.cancelled() => {
                        draining = Some(Drain::start());
                        continue;
                    }
                    _ = idle(self.timeouts.idle) => {
                        Counters::add(&self.counters.idle_closed, 1);
                        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle timeout"))
                    }
                    _ = until(line_deadline) => {
                        Counters::add(&self.counters.line_timeout_closed, 1);
                        tracing::debug!(peer = %self.peer, "closing connection: line not complete within line_timeout");
                        sink.cut(Utc::now(), &mut out);
                        self.send(&mut out).await;
                        break;
                    }
                    // Closed to make room (counted by the accept loop, which chose this one): take what the peer already
                    // sent first, as on shutdown.
                    _ = self.evict.cancelled() => {
                        draining = Some(Drain::start());
                        evicted = true;
                        continue;
                    }
                },
                // Shutting down: take what the peer already sent, stop when it goes quiet.
                Some(drain) => drain.next(self.stream.read(&mut buf)).await.unwrap_or(Ok(0)),
            };
            let received = Utc::now();
            match read {
                // An evicted peer was cut off: a line it had begun is known to be incomplete.
                Ok(0) if evicted => {
                    sink.cut(received, &mut out);
                    self.send(&mut out).await;
                    break;
                }
                Ok(0) => {
                    sink.finish(received, &mut out);
                    self.send(&mut out).await;
                    break;
                }
                Ok(n) => {
                    Counters::add(&self.counters.bytes, n as u64);
                    let framed = sink.push(&buf[..n], received, &mut out);
                    let completed = !out.is_empty();
                    line_deadline = match self.timeouts.line {
                        Some(timeout) if sink.mid_frame() && (completed || line_deadline.is_none()) => {
                            Some(tokio::time::Instant::now() + timeout)
                        }
                        Some(_) if sink.mid_frame() => line_deadline,
                        _ => None,
                    };
                    if !self.send(&mut out).await {
                        break;
                    }
                    if let Err(error) = framed {
                        tracing::warn!(peer = %self.peer, %error, "closing connection: framing cannot go on");
                        break;
                    }
                    // One read per turn: a flooding sender yields to the others between its reads.
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::debug!(peer = %self.peer, %error, "read failed");
                    sink.finish(received, &mut out);
                    self.send(&mut out).await;
                    break;
                }
            }
        }
        // A TLS peer expects close_notify before the end of the stream; a TCP peer gets its FIN.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
        Counters::sub(&self.counters.connections_open, 1);
        tracing::debug!(peer = %self.peer, "connection closed");
    }

    /// Sends every event, waiting while the queue is full: this is the backpressure that pauses reading. Lines sent
    /// are progress; the wait is not the sender's slowness.
    async fn send(&self, out: &mut Vec<Event>) -> bool {
        if out.is_empty() {
            return true;
        }
        self.progress.sending.store(true, Ordering::Relaxed);
        let mut sent = true;
        for event in out.drain(..) {
            if self.queue.send(event).await.is_err() {
                sent = false;
                break;
            }
        }
        self.progress.mark();
        self.progress.sending.store(false, Ordering::Relaxed);
        sent
    }
}

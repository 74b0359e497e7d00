//! TCP listener: one task accepts, one task per connection reads, frames (through the [`Ingest`] sink) and sends.
//! A [`Handshake`] turns each accepted socket into the byte stream that is read: the socket itself for plain TCP, a
//! TLS session for the TLS listener (`super::tls`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::admission::{Admission, Verdict};
use super::{Drain, Ingest, StreamSink, Transport};
use crate::config::{TcpListenerConfig, TlsListenerConfig};
use crate::event::Event;
use crate::metrics::{Counters, ListenerCounters};

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

/// Who may connect, how many at once, and how long a silent connection is kept.
#[derive(Debug, Clone, Default)]
pub struct StreamPolicy {
    /// Allowlist and connection limits.
    pub admission: Admission,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Option<Duration>,
}

impl StreamPolicy {
    fn new(allow: &[ipnet::IpNet], max_connections: usize, max_per_ip: usize, idle_timeout: Option<Duration>) -> Self {
        StreamPolicy { admission: Admission::new(allow.to_vec(), max_connections, max_per_ip), idle_timeout }
    }

    /// The policy of a TCP listener's settings.
    pub fn of_tcp(config: &TcpListenerConfig) -> Self {
        Self::new(&config.allow, config.max_connections, config.max_connections_per_ip, config.idle_timeout)
    }

    /// The policy of a TLS listener's settings.
    pub fn of_tls(config: &TlsListenerConfig) -> Self {
        Self::new(&config.allow, config.max_connections, config.max_connections_per_ip, config.idle_timeout)
    }
}

/// Accepts plain TCP connections until `shutdown`, then waits for every connection to drain.
pub async fn serve<I: Ingest>(
    listener: TcpListener,
    policy: StreamPolicy,
    ingest: I,
    queue: mpsc::Sender<Event>,
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
    queue: mpsc::Sender<Event>,
    counters: Arc<ListenerCounters>,
    shutdown: CancellationToken,
) {
    let local = listener.local_addr().ok();
    let StreamPolicy { mut admission, idle_timeout } = policy;
    let mut connections = JoinSet::new();
    let open = |stream: TcpStream, peer: SocketAddr, connections: &mut JoinSet<IpAddr>, admission: &mut Admission| {
        match admission.admit(peer.ip()) {
            Verdict::Admit => {}
            Verdict::NotAllowed => {
                Counters::add(&counters.refused_not_allowed, 1);
                tracing::debug!(%peer, "connection refused: not in the allowlist");
                return;
            }
            Verdict::ListenerFull | Verdict::PeerFull => {
                Counters::add(&counters.refused_limit, 1);
                tracing::debug!(%peer, "connection refused: connection limit reached");
                return;
            }
        }
        Counters::add(&counters.connections_accepted, 1);
        let sink = ingest.open_stream(peer, H::TRANSPORT);
        let (handshake, queue, counters, shutdown) =
            (handshake.clone(), queue.clone(), counters.clone(), shutdown.clone());
        connections.spawn(async move {
            if let Some(stream) = handshake.handshake(stream, peer).await {
                Connection { stream, peer, queue, counters, idle_timeout }.run(sink, shutdown).await;
            }
            peer.ip()
        });
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => open(stream, peer, &mut connections, &mut admission),
                // Running out of file descriptors must not end the listener: wait and try again.
                Err(error) => {
                    tracing::warn!(?local, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(closed) = connections.join_next(), if !connections.is_empty() => {
                if let Ok(ip) = closed {
                    admission.release(ip);
                }
            }
        }
    }
    // Connections the kernel completed before shutdown carry lines their senders consider delivered: take them too.
    let drain = Drain::start();
    while let Some(Ok((stream, peer))) = drain.next(listener.accept()).await {
        open(stream, peer, &mut connections, &mut admission);
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

struct Connection<R> {
    stream: R,
    peer: SocketAddr,
    queue: mpsc::Sender<Event>,
    counters: Arc<ListenerCounters>,
    idle_timeout: Option<Duration>,
}

impl<R: AsyncRead + AsyncWrite + Unpin + Send + Sync> Connection<R> {
    async fn run<S: StreamSink>(mut self, mut sink: S, shutdown: CancellationToken) {
        tracing::debug!(peer = %self.peer, "connection opened");
        Counters::add(&self.counters.connections_open, 1);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut out = Vec::new();
        let mut draining: Option<Drain> = None;
        loop {
            let read = match draining {
                None => tokio::select! {
                    read = self.stream.read(&mut buf) => read,
                    _ = shutdown.cancelled() => {
                        draining = Some(Drain::start());
                        continue;
                    }
                    _ = idle(self.idle_timeout) => {
                        Counters::add(&self.counters.idle_closed, 1);
                        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle timeout"))
                    }
                },
                // Shutting down: take what the peer already sent, stop when it goes quiet.
                Some(drain) => drain.next(self.stream.read(&mut buf)).await.unwrap_or(Ok(0)),
            };
            let received = Utc::now();
            match read {
                Ok(0) => {
                    sink.finish(received, &mut out);
                    self.send(&mut out).await;
                    break;
                }
                Ok(n) => {
                    Counters::add(&self.counters.bytes, n as u64);
                    let framed = sink.push(&buf[..n], received, &mut out);
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

    /// Sends every event, waiting while the queue is full: this is the backpressure that pauses reading.
    async fn send(&self, out: &mut Vec<Event>) -> bool {
        for event in out.drain(..) {
            if self.queue.send(event).await.is_err() {
                return false;
            }
        }
        true
    }
}

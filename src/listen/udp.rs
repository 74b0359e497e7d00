//! UDP listener: one datagram is one message (RFC 5426 §3.1).

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::admission::Admission;
use super::{Drain, Ingest};
use crate::metrics::{Counters, ListenerCounters};
use crate::queue::{NotQueued, Queue};

/// Largest datagram the socket reads (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// Binds a UDP socket asking for `recv_buffer` bytes of kernel buffer; returns it with the size the kernel granted.
pub fn bind(address: SocketAddr, recv_buffer: usize) -> std::io::Result<(UdpSocket, usize)> {
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))?;
    // The kernel silently caps the request at net.core.rmem_max; the granted size is logged by the caller.
    if let Err(error) = socket.set_recv_buffer_size(recv_buffer) {
        tracing::warn!(%address, %error, "cannot set the UDP receive buffer size");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    // Linux reports twice the size asked for (the kernel's bookkeeping share): show what data can use.
    let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    Ok((UdpSocket::from_std(socket.into())?, granted))
}

/// Receives datagrams until `shutdown`, then takes what is already queued in the socket.
pub async fn serve<I: Ingest>(
    socket: UdpSocket,
    admission: Admission,
    ingest: I,
    queue: Queue,
    counters: Arc<ListenerCounters>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) if admission.permits(peer.ip()) => accept(&ingest, &buf[..n], peer, &queue, &counters),
                Ok(_) => Counters::add(&counters.refused_not_allowed, 1),
                Err(error) => tracing::debug!(%error, "udp receive failed"),
            },
        }
    }
    // Datagrams already in the socket buffer were sent before shutdown: store them, waiting for room if need be.
    let drain = Drain::start();
    while let Some(Ok((n, peer))) = drain.next(socket.recv_from(&mut buf)).await {
        if !admission.permits(peer.ip()) {
            Counters::add(&counters.refused_not_allowed, 1);
            continue;
        }
        Counters::add(&counters.bytes, n as u64);
        if queue.send(ingest.datagram(&buf[..n], peer, Utc::now())).await.is_err() {
            break;
        }
    }
}

fn accept<I: Ingest>(ingest: &I, datagram: &[u8], peer: SocketAddr, queue: &Queue, counters: &ListenerCounters) {
    Counters::add(&counters.bytes, datagram.len() as u64);
    let event = ingest.datagram(datagram, peer, Utc::now());
    // A sender cannot be slowed over UDP: when the writer is behind, the datagram is dropped and counted.
    if let Err(NotQueued::Full) = queue.try_send(event) {
        Counters::add(&counters.udp_dropped, 1);
    }
}

//! HTTPS for the HTTP server (`http.cert_file`, `http.key_file`): TCP connections are accepted and their TLS
//! handshakes run beside each other (a client that stalls its handshake holds up no one, and is dropped after
//! [`HANDSHAKE_TIMEOUT`]); the server reads the finished sessions as it would plain sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::HttpConfig;
use crate::listen::tls::{TlsError, TlsFiles, HANDSHAKE_TIMEOUT};

/// Handshakes in progress at once, at most: more connections wait in the kernel's backlog.
const HANDSHAKES_AT_ONCE: usize = 256;

/// The HTTPS listener: finished TLS sessions, as the HTTP server accepts them.
#[derive(Debug)]
pub struct HttpsListener {
    sessions: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

/// The HTTPS configuration of `http.cert_file` and `http.key_file`; `None` when they are not set (plain HTTP).
pub fn server_config(config: &HttpConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else { return Ok(None) };
    let files =
        TlsFiles { cert_file: cert_file.clone(), key_file: key_file.clone(), client_ca_file: None, crl_file: None };
    crate::listen::tls::server_config(&files).map(Some)
}

/// Accepts on `listener` and runs the handshakes with `config`; the task ends when the returned listener is dropped.
pub fn listen(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<HttpsListener> {
    let local = listener.local_addr()?;
    let (finished, sessions) = mpsc::channel(HANDSHAKES_AT_ONCE);
    tokio::spawn(accept(listener, TlsAcceptor::from(config), finished));
    Ok(HttpsListener { sessions, local })
}

async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    finished: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
    loop {
        let Ok(slot) = handshakes.clone().acquire_owned().await else { return };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "HTTPS accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = finished.closed() => return,
        };
        let (acceptor, finished) = (acceptor.clone(), finished.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(session)) => {
                    let _ = finished.send((session, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "HTTPS handshake failed"),
                Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.sessions.recv().await {
            Some(session) => session,
            // The accepting task is gone (it only stops with this listener): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

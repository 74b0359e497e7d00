//! TLS listener (RFC 5425): the TCP listener's framing inside a TLS session (`tokio-rustls`, TLS 1.2 and 1.3 only).
//! The server certificate and key come from PEM files; with a client CA bundle, a client must present a certificate
//! it signed (mutual TLS, which Luna appliance software 7.8.3 and later supports). SIGHUP reloads the files: new
//! connections use the new certificate, open sessions keep theirs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::identity::ClientIdentity;
use super::tcp::Handshake;
use super::Transport;
use crate::metrics::{Counters, ListenerCounters};

/// A client that has not finished its handshake by then is dropped (a slow-handshake flood must not pile up).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the certificate material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; none: no client certificate is asked for.
    pub client_ca_file: Option<PathBuf>,
    /// Revocation lists (PEM) for those CAs.
    pub crl_file: Option<PathBuf>,
}

/// Why the TLS settings cannot be used; names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS: {file}: {message}")]
pub struct TlsError {
    /// The file at fault.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

fn error(file: &Path, message: impl Into<String>) -> TlsError {
    TlsError { file: file.display().to_string(), message: message.into() }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(path, e.to_string()))?;
    if certificates.is_empty() {
        return Err(error(path, "no PEM certificate in the file"));
    }
    Ok(certificates)
}

fn revocation_lists(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let lists = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| error(path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(path, e.to_string()))?;
    if lists.is_empty() {
        return Err(error(path, "no PEM certificate revocation list (X509 CRL) in the file"));
    }
    Ok(lists)
}

/// Builds the server configuration from the files: TLS 1.2 and 1.3, ring's cipher suites.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| error(&files.key_file, e.to_string()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| error(&files.cert_file, e.to_string()))?;
    let builder = match &files.client_ca_file {
        None if files.crl_file.is_some() => {
            return Err(error(files.crl_file.as_deref().unwrap_or(Path::new("")), "crl_file needs client_ca_file"));
        }
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates(path)? {
                roots.add(certificate).map_err(|e| error(path, e.to_string()))?;
            }
            let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if let Some(crl_path) = &files.crl_file {
                verifier = verifier.with_crls(revocation_lists(crl_path)?);
            }
            let verifier = verifier.build().map_err(|e| error(path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| error(&files.key_file, format!("does not match the certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// The TLS handshake of one listener, with its reloadable configuration.
#[derive(Debug, Clone)]
pub struct TlsHandshake {
    files: TlsFiles,
    config: Arc<RwLock<Arc<ServerConfig>>>,
    counters: Arc<ListenerCounters>,
    bind_host: bool,
}

impl TlsHandshake {
    /// Loads the files; with `bind_host`, events must name a host their client certificate names.
    pub fn new(files: TlsFiles, counters: Arc<ListenerCounters>, bind_host: bool) -> Result<Self, TlsError> {
        let config = server_config(&files)?;
        Ok(TlsHandshake { files, config: Arc::new(RwLock::new(config)), counters, bind_host })
    }

    /// Reads the files again; on error the running configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        *self.config.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        Ok(())
    }

    /// The certificate file (for logs).
    pub fn cert_file(&self) -> &Path {
        &self.files.cert_file
    }
}

impl Handshake for TlsHandshake {
    type Stream = TlsStream<TcpStream>;
    const TRANSPORT: Transport = Transport::Tls;

    async fn handshake(&self, stream: TcpStream, peer: SocketAddr) -> Option<TlsStream<TcpStream>> {
        let config = self.config.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(stream)).await;
        let failure = match accepted {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no handshake within {}s", HANDSHAKE_TIMEOUT.as_secs()),
        };
        Counters::add(&self.counters.tls_handshake_failures, 1);
        // A port scan or a plain-text sender on the TLS port is routine: counted, logged at debug.
        tracing::debug!(%peer, error = %failure, "TLS handshake failed");
        None
    }

    fn identity(&self, stream: &TlsStream<TcpStream>) -> Option<ClientIdentity> {
        let certificate = stream.get_ref().1.peer_certificates()?.first()?;
        ClientIdentity::of(certificate, self.bind_host)
    }
}

//! TLS for the endpoints, from `[server] tls_cert` and `tls_key` (PEM files): rustls on ring,
//! the provider pgwire is built with.
//!
//! - Postgres wire: offered, as PostgreSQL with `ssl = on` does; the client chooses
//!   (`sslmode=require` or stronger to insist). Passwords never cross in clear either way (SCRAM).
//! - Flight SQL and HTTP: TLS only (`grpc+tls://`, `https://`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

/// How long a client may take over the TLS handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate chain and its key, read and checked.
#[derive(Clone)]
pub struct Tls {
    pub cert_path: PathBuf,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("cert_path", &self.cert_path).finish_non_exhaustive()
    }
}

/// Which of the two files is wrong, and why.
#[derive(Debug)]
pub enum TlsError {
    Cert(String),
    Key(String),
}

impl Tls {
    /// Reads the PEM certificate chain at `cert` and the PEM private key at `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_pem = std::fs::read(cert).map_err(|e| TlsError::Cert(format!("cannot read {}: {e}", cert.display())))?;
        let key_pem = std::fs::read(key).map_err(|e| TlsError::Key(format!("cannot read {}: {e}", key.display())))?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Cert(format!("{} is not a PEM certificate chain: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(TlsError::Cert(format!("{} holds no certificate", cert.display())));
        }
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| TlsError::Key(format!("{} is not a PEM private key: {e}", key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, private))
            .map_err(|e| TlsError::Key(format!("{} does not fit {}: {e}", key.display(), cert.display())))?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Ok(Self { cert_path: cert.to_path_buf(), cert_pem, key_pem, acceptor })
    }

    /// The acceptor for the Postgres wire (pgwire's `TlsAcceptor` is tokio-rustls').
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The same certificate and key for tonic (Flight SQL).
    pub fn tonic_config(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem))
    }
}

/// A listener whose connections have completed a TLS handshake, for axum (HTTPS). Handshakes
/// run on tasks of their own, so a slow client does not hold up the others.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: &Tls) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(64);
        let acceptor = tls.acceptor();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    // The endpoint stopped serving: stop accepting.
                    () = sender.closed() => break,
                };
                let Ok((socket, peer)) = accepted else {
                    // Out of descriptors, say: let connections finish before trying again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (acceptor, handed) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            let _ = handed.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { accepted, local_addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop has ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

//! The listening socket: plain TCP, or TLS served by Workjet itself (`WJ_TLS_CERT`,
//! `WJ_TLS_KEY`, rustls). Every accepted socket gets `TCP_NODELAY` (without it, relayed
//! streams stall ~40 ms at their tail). TLS handshakes run in their own tasks with a
//! timeout, so a slow client cannot hold up the accept loop.

use std::{io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use axum::{extract::connect_info::Connected, serve::IncomingStream};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, rustls, server::TlsStream};
use tokio_util::either::Either;

use crate::server::config::TlsConfig;

/// The peer address of a connection (the `ConnectInfo` of every request).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Plain or TLS.
pub enum ServerListener {
    Plain(TcpListener),
    Tls { local: SocketAddr, accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> },
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("WJ_TLS_CERT {path}: {message}")]
    Cert { path: String, message: String },
    #[error("WJ_TLS_KEY {path}: {message}")]
    Key { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Loads the certificate chain and key and builds the rustls configuration (HTTP/2 and 1.1).
pub fn tls_acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let cert_path = config.cert_path.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert_path)
        .and_then(|iter| iter.collect())
        .map_err(|e| TlsError::Cert { path: cert_path.clone(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Cert { path: cert_path, message: "no certificate found".into() });
    }
    let key = PrivateKeyDer::from_pem_file(Path::new(&config.key_path))
        .map_err(|e| TlsError::Key { path: config.key_path.display().to_string(), message: e.to_string() })?;
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

impl ServerListener {
    /// Wraps a bound listener; with an acceptor, connections are TLS.
    pub fn new(listener: TcpListener, tls: Option<TlsAcceptor>) -> io::Result<Self> {
        let Some(acceptor) = tls else { return Ok(Self::Plain(listener)) };
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let (tcp, addr) = tokio::select! {
                    result = listener.accept() => match result {
                        Ok(pair) => pair,
                        Err(error) => {
                            accept_error(error).await;
                            continue;
                        }
                    },
                    // The server stopped accepting (shutdown): close the socket too.
                    () = tx.closed() => break,
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, addr)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self::Tls { local, accepted })
    }
}

async fn accept_error(error: io::Error) {
    // Per-connection errors are the client's; others (out of file descriptors) need a pause.
    if !matches!(error.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
        tracing::error!(%error, "accept failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl axum::serve::Listener for ServerListener {
    type Io = Either<TcpStream, TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self {
            Self::Plain(listener) => loop {
                match TcpListener::accept(listener).await {
                    Ok((tcp, addr)) => {
                        let _ = tcp.set_nodelay(true);
                        return (Either::Left(tcp), addr);
                    }
                    Err(error) => accept_error(error).await,
                }
            },
            Self::Tls { accepted, .. } => match accepted.recv().await {
                Some((stream, addr)) => (Either::Right(stream), addr),
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match self {
            Self::Plain(listener) => listener.local_addr(),
            Self::Tls { local, .. } => Ok(*local),
        }
    }
}

impl Connected<IncomingStream<'_, ServerListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, ServerListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

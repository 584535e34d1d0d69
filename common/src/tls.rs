//! TLS for legacy TCP plugins: a listener that hands axum finished TLS streams. Handshakes run
//! in their own tasks so one slow client cannot stall the accept loop.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

use crate::config::RuntimeConfig;
use crate::BoxError;

/// Accepts TCP connections and yields them after a successful TLS handshake.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn read_pem(path: &str) -> Result<Vec<u8>, BoxError> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}").into())
}

fn server_config(rt: &RuntimeConfig) -> Result<rustls::ServerConfig, BoxError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut read_pem(&rt.tls_cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS_CERT {}: {e}", rt.tls_cert))?;
    let key = rustls_pemfile::private_key(&mut read_pem(&rt.tls_key)?.as_slice())
        .map_err(|e| format!("TLS_KEY {}: {e}", rt.tls_key))?
        .ok_or_else(|| format!("TLS_KEY {}: no private key found", rt.tls_key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if rt.tls_client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut read_pem(&rt.tls_client_ca)?.as_slice()) {
            roots.add(c.map_err(|e| format!("TLS_CLIENT_CA {}: {e}", rt.tls_client_ca))?)?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()?;
        builder.with_client_cert_verifier(verifier)
    };
    Ok(builder.with_single_cert(certs, key)?)
}

impl TlsListener {
    /// Wrap a bound TCP listener with the certificate, key and optional client CA of `rt`.
    pub fn new(tcp: tokio::net::TcpListener, rt: &RuntimeConfig) -> Result<Self, BoxError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(rt)?));
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (sock, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match acceptor.accept(sock).await {
                        Ok(stream) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Err(e) => tracing::warn!(%peer, "TLS handshake failed: {e}"),
                    }
                });
            }
        });
        Ok(Self { rx, local, task })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task only ends when aborted on drop; never resolve afterwards.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

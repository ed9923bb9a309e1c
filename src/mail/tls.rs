//! TLS client settings shared by IMAP and SMTP: rustls with the ring
//! provider (one provider in the tree, chosen explicitly so rustls never has
//! to guess), Mozilla's roots plus an optional extra CA file. Certificate
//! verification is always on.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = ca_file {
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("Reading CA file {}", ca.display()))?
        {
            let cert = cert.with_context(|| format!("Parsing CA file {}", ca.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("Adding a certificate from {}", ca.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("Choosing TLS versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

pub async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream> {
    let tcp = TcpStream::connect((host, port))
        .await
        .with_context(|| format!("Connecting to {host}:{port}"))?;
    // Without it, Nagle and delayed ACKs cost ~40 ms per command round trip.
    tcp.set_nodelay(true).context("Setting TCP_NODELAY")?;
    Ok(tcp)
}

pub async fn handshake(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>> {
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .with_context(|| format!("{host:?} is not a valid TLS server name"))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {host}"))
}

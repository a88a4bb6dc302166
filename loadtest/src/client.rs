//! HTTP/1.1 keep-alive connections from a chosen source address, plain or TLS (rustls with
//! the ring provider), and single requests over them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A connection's request sender.
pub type Sender = SendRequest<Full<Bytes>>;

/// TLS settings: the CA that signed the target's certificate and the name to verify.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// Trusts only the certificates in `ca` (PEM) and verifies the server as `name`.
    pub fn new(ca: &Path, name: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.with_context(|| format!("parsing {}", ca.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("adding a CA from {}", ca.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(name.to_string())
                .with_context(|| format!("server name {name:?}"))?,
        })
    }
}

/// Where requests go.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: Option<Tls>,
    /// The `Host` header.
    pub host: String,
}

impl Target {
    pub fn new(addr: SocketAddr, tls: Option<Tls>) -> Self {
        let host = match &tls {
            Some(_) => format!("localhost:{}", addr.port()),
            None => addr.to_string(),
        };
        Self { addr, tls, host }
    }
}

/// Opens a keep-alive HTTP/1.1 connection from `source` (a 127.x.y.z address).
pub async fn connect(target: &Target, source: Ipv4Addr) -> anyhow::Result<Sender> {
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .with_context(|| format!("binding to {source}"))?;
    let stream = socket
        .connect(target.addr)
        .await
        .with_context(|| format!("connecting to {} from {source}", target.addr))?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let sender = match &target.tls {
        None => {
            let (sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP/1.1 handshake")?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
        }
        Some(tls) => {
            let stream = tls
                .connector
                .connect(tls.name.clone(), stream)
                .await
                .context("TLS handshake")?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP/1.1 handshake")?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
        }
    };
    Ok(sender)
}

/// A POST of a JSON body to `path`.
pub fn post(target: &Target, path: &str, body: Bytes) -> anyhow::Result<Request<Full<Bytes>>> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, target.host.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Full::new(body))
        .context("building a request")
}

/// Sends one request and reads the whole answer.
pub async fn send(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await.context("connection closed")?;
    let response = sender
        .send_request(request)
        .await
        .context("sending the request")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    Ok((status, body))
}

/// One request on a fresh connection, with a time limit (for probes and NIK samples).
pub async fn once(
    target: &Target,
    source: Ipv4Addr,
    request: Request<Full<Bytes>>,
    limit: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    tokio::time::timeout(limit, async {
        let mut sender = connect(target, source).await?;
        send(&mut sender, request).await
    })
    .await
    .map_err(|_| anyhow!("no answer from {} within {limit:?}", target.addr))?
}

/// A GET of `path` (the simulator's `/__sim/…` endpoints).
pub fn get(target: &Target, path: &str) -> anyhow::Result<Request<Full<Bytes>>> {
    Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, target.host.as_str())
        .body(Full::new(Bytes::new()))
        .context("building a request")
}

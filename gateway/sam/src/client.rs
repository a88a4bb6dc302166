//! The gateway's client to the sidecar: pooled keep-alive HTTP/1.1 connections over
//! loopback TCP or a Unix socket, one time limit over the whole exchange (connecting
//! included), and a fail-closed result: an answer the client cannot use is an error, never
//! a verdict.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gerbang_core::SidecarAddress;
use http::header::{CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::validate::{ValidateRequest, Verdict, VerdictWire};

/// Idle pooled connections are dropped after this long: before the sidecar closes them
/// (60 s), so a request never goes out on a connection being closed.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// Largest answer read from the sidecar.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Why the sidecar gave no usable verdict. The gateway refuses the request either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamUnavailable {
    /// No answer within the time limit.
    #[error("the SAM sidecar did not answer within {0:?}")]
    Timeout(Duration),
    /// Not reachable, or answered something that is not a verdict.
    #[error("the SAM sidecar is unavailable: {0}")]
    Failed(String),
}

enum Inner {
    Tcp(Client<HttpConnector, Full<Bytes>>),
    Unix(Client<UnixConnector, Full<Bytes>>),
}

/// A pooled client to one sidecar. Cheap to share behind an `Arc`; it spawns its
/// connections on the Tokio runtime it is called from.
pub struct SamClient {
    inner: Inner,
    validate_uri: Uri,
    health_uri: Uri,
    host: String,
    timeout: Duration,
    address: String,
    /// Whether the last exchange worked, to log each change of the sidecar's health once.
    healthy: AtomicBool,
}

impl std::fmt::Debug for SamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamClient")
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SamClient {
    /// A client to the sidecar at `address`, each exchange limited to `timeout`.
    pub fn new(address: &SidecarAddress, timeout: Duration) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let (inner, host) = match address {
            SidecarAddress::Tcp(addr) => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(timeout));
                (Inner::Tcp(builder.build(connector)), addr.to_string())
            }
            SidecarAddress::Unix(path) => (
                Inner::Unix(builder.build(UnixConnector(path.clone()))),
                "gerbang-sam".to_string(),
            ),
        };
        let uri = |path: &str| {
            format!("http://{host}{path}")
                .parse::<Uri>()
                .unwrap_or_else(|_| Uri::from_static("http://gerbang-sam/"))
        };
        Self {
            validate_uri: uri("/v1/validate"),
            health_uri: uri("/health"),
            inner,
            host,
            timeout,
            address: address.to_string(),
            healthy: AtomicBool::new(true),
        }
    }

    /// The configured time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Asks the sidecar about one request.
    pub async fn validate(&self, request: &ValidateRequest) -> Result<Verdict, SamUnavailable> {
        let body = serde_json::to_vec(request)
            .map_err(|e| SamUnavailable::Failed(format!("cannot encode the request: {e}")))?;
        let result = self
            .exchange(Method::POST, self.validate_uri.clone(), Bytes::from(body))
            .await
            .and_then(|(status, answer)| {
                if status != StatusCode::OK {
                    return Err(SamUnavailable::Failed(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&answer)
                    )));
                }
                let wire: VerdictWire = serde_json::from_slice(&answer).map_err(|e| {
                    SamUnavailable::Failed(format!("the answer is not a verdict: {e}"))
                })?;
                Verdict::from_wire(&wire).ok_or_else(|| {
                    SamUnavailable::Failed(format!(
                        "inconsistent verdict (valid = {}, reason = {})",
                        wire.valid, wire.reason
                    ))
                })
            });
        self.note_health(&result);
        result
    }

    /// Whether the sidecar answers `GET /health`.
    pub async fn health(&self) -> Result<(), SamUnavailable> {
        let (status, body) = self
            .exchange(Method::GET, self.health_uri.clone(), Bytes::new())
            .await?;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(SamUnavailable::Failed(format!(
                "health: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )))
        }
    }

    async fn exchange(
        &self,
        method: Method,
        uri: Uri,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), SamUnavailable> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, self.host.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| SamUnavailable::Failed(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = match &self.inner {
                Inner::Tcp(c) => c.request(request).await,
                Inner::Unix(c) => c.request(request).await,
            }
            .map_err(|e| SamUnavailable::Failed(error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| SamUnavailable::Failed(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        // Dropping the exchange on timeout drops its connection too: a stalled one is
        // never returned to the pool.
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SamUnavailable::Timeout(self.timeout))?
    }

    fn note_health<T>(&self, result: &Result<T, SamUnavailable>) {
        match result {
            Ok(_) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        sam.sidecar = self.address.as_str(),
                        "the SAM sidecar answers again"
                    );
                }
            }
            Err(e) => {
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        sam.sidecar = self.address.as_str(),
                        error = %e,
                        "the SAM sidecar gives no verdict: card-reader requests are refused until it does"
                    );
                }
            }
        }
    }
}

/// The error and its causes on one line (hyper's own message is often just "client error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Connects every request to one Unix socket, whatever the URI says.
#[derive(Clone)]
struct UnixConnector(PathBuf);

impl tower_service::Service<Uri> for UnixConnector {
    type Response = TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move {
            tokio::net::UnixStream::connect(path)
                .await
                .map(TokioIo::new)
        })
    }
}

//! The HTTP/1.1 server: keep-alive connections on the multi-thread runtime, optional
//! TLS, shared state behind an `Arc` with atomics only.

use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tracing::{debug, warn};

use crate::balikan;
use crate::handlers::{self, Operation};
use crate::population::Population;
use crate::portal;

/// Largest request body accepted (the DWH's bodies are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// The quota `quotaLimiter` counts down from (one per verification received).
const DAILY_QUOTA: u64 = 1_000_000;

/// Longest artificial delay `/__sim/delay` accepts.
const MAX_DELAY_MS: u64 = 600_000;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of data requests received, as `/__sim/stats` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every request below `/dukcapil/get_json/`, answered with data or an error.
    pub requests: u64,
    /// `CALL_NIK` requests.
    pub call_nik: u64,
    /// `CALL_VERIFY_BY_ELEMEN` requests.
    pub verify: u64,
    /// `CALL_BY_ELEMEN` requests.
    pub by_elemen: u64,
    /// Every request below `/portal/` (the Web Portal), whatever it asked.
    pub portal: u64,
    /// Every data balikan batch below `/dukcapil/balikan/`, accepted or refused (not
    /// counted in `requests`, which are lookups).
    pub balikan: u64,
    /// The records of the accepted data balikan batches.
    pub balikan_records: u64,
}

/// Everything the request handlers share: the population, counters, the delay and the
/// test switches.
#[derive(Debug)]
pub struct SimState {
    population: Population,
    requests: AtomicU64,
    call_nik: AtomicU64,
    verify: AtomicU64,
    by_elemen: AtomicU64,
    portal: AtomicU64,
    balikan: AtomicU64,
    balikan_records: AtomicU64,
    delay_ms: AtomicU64,
    /// How the simulator misbehaves, if it does ([`Misbehaviour`] as a number).
    misbehaviour: AtomicU8,
    /// The last data request received (a lookup or a balikan batch), as received
    /// (`/__sim/last`).
    last: Mutex<Option<Received>>,
}

/// Ways the simulator can answer wrongly, as a DWH with a bug would, for the gateway's
/// tests (`/__sim/misbehave`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Answers as the DWH should.
    None,
    /// `CALL_VERIFY_BY_ELEMEN` is answered with the person's record (values), not verdicts.
    VerifyValues,
    /// `CALL_NIK` and the portal's search are answered with the record of another person
    /// than the NIK asked for.
    OtherPerson,
}

impl Misbehaviour {
    const ALL: [Self; 3] = [Self::None, Self::VerifyValues, Self::OtherPerson];

    /// The name `/__sim/misbehave` takes and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::VerifyValues => "verify_values",
            Self::OtherPerson => "other_person",
        }
    }

    /// The misbehaviour of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A request exactly as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    /// The request target: path and query, as sent.
    pub target: String,
    /// Header names (lower case) and values, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl SimState {
    /// State serving `population`, with zeroed counters and no delay.
    pub fn new(population: Population) -> SimState {
        SimState {
            population,
            requests: AtomicU64::new(0),
            call_nik: AtomicU64::new(0),
            verify: AtomicU64::new(0),
            by_elemen: AtomicU64::new(0),
            portal: AtomicU64::new(0),
            balikan: AtomicU64::new(0),
            balikan_records: AtomicU64::new(0),
            delay_ms: AtomicU64::new(0),
            misbehaviour: AtomicU8::new(0),
            last: Mutex::new(None),
        }
    }

    /// The last data request received (below `/dukcapil/get_json/` or
    /// `/dukcapil/balikan/`), if any.
    pub fn last_request(&self) -> Option<Received> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes the simulator answer wrongly in one way, or ([`Misbehaviour::None`]) as it should.
    pub fn set_misbehaviour(&self, m: Misbehaviour) {
        let index = Misbehaviour::ALL.iter().position(|x| *x == m).unwrap_or(0);
        self.misbehaviour
            .store(u8::try_from(index).unwrap_or(0), Relaxed);
    }

    /// How the simulator answers now.
    pub fn misbehaviour(&self) -> Misbehaviour {
        Misbehaviour::ALL
            .get(usize::from(self.misbehaviour.load(Relaxed)))
            .copied()
            .unwrap_or(Misbehaviour::None)
    }

    /// The population being served.
    pub fn population(&self) -> &Population {
        &self.population
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.load(Relaxed),
            call_nik: self.call_nik.load(Relaxed),
            verify: self.verify.load(Relaxed),
            by_elemen: self.by_elemen.load(Relaxed),
            portal: self.portal.load(Relaxed),
            balikan: self.balikan.load(Relaxed),
            balikan_records: self.balikan_records.load(Relaxed),
        }
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        for counter in [
            &self.requests,
            &self.call_nik,
            &self.verify,
            &self.by_elemen,
            &self.portal,
            &self.balikan,
            &self.balikan_records,
        ] {
            counter.store(0, Relaxed);
        }
    }

    /// Sets the delay applied before answering each data request (a slow DWH).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Relaxed);
    }

    /// The delay applied before answering each data request.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Relaxed))
    }

    /// Keeps `received` as the last data request (`/__sim/last`).
    fn keep_last(&self, received: Received) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(received);
    }

    /// Waits the delay `/__sim/delay` set, before a data request is answered.
    async fn wait_delay(&self) {
        let delay = self.delay_ms.load(Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }

    fn counter(&self, operation: Operation) -> &AtomicU64 {
        match operation {
            Operation::CallNik => &self.call_nik,
            Operation::Verify => &self.verify,
            Operation::ByElemen => &self.by_elemen,
        }
    }
}

/// A certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The certificate PEM is malformed.
    #[error("the certificate PEM is malformed: {0}")]
    CertificatePem(pem::Error),
    /// The certificate PEM holds no certificate.
    #[error("the certificate PEM holds no certificate")]
    NoCertificate,
    /// The key PEM is malformed or holds no private key.
    #[error("the key PEM holds no usable private key: {0}")]
    KeyPem(pem::Error),
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("the certificate and key were refused: {0}")]
    Config(rustls::Error),
}

/// TLS settings for [`serve`]: a certificate chain and its key (rustls, ring provider).
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads a PEM certificate chain and a PEM private key from files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        ServerTls::from_pem(&read(cert)?, &read(key)?)
    }

    /// Builds the settings from a PEM certificate chain and a PEM private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerTls, TlsError> {
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::CertificatePem)?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Accepts connections on `listener` and answers them until the task is dropped.
/// Each connection runs on its own task with keep-alive; with `tls` every connection
/// is TLS.
pub async fn serve(listener: TcpListener, state: Arc<SimState>, tls: Option<ServerTls>) {
    let mut http = http1::Builder::new();
    http.keep_alive(true).pipeline_flush(true);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Running out of file descriptors is the usual cause: back off briefly
                // instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let tls = tls.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&state), request));
            let result = match tls {
                None => http.serve_connection(TokioIo::new(stream), service).await,
                Some(tls) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            http.serve_connection(TokioIo::new(stream), service).await
                        }
                        Ok(Err(error)) => {
                            debug!(%error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!("TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(error) = result {
                debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// An answer with its whole body.
pub(crate) type Answer = Response<Full<Bytes>>;

/// An answer of `status` with `body` as `content_type`.
pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, body: Vec<u8>) -> Answer {
    respond(status, "application/json", body)
}

fn error(status: StatusCode, message: &str) -> Answer {
    json(status, handlers::error_json(message))
}

async fn handle(state: Arc<SimState>, request: Request<Incoming>) -> Result<Answer, Infallible> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    if let Some(rest) = path.strip_prefix("/dukcapil/get_json/") {
        state.requests.fetch_add(1, Relaxed);
        let Some(operation) = handlers::operation(rest) else {
            return Ok(error(StatusCode::NOT_FOUND, "unknown operation"));
        };
        state.counter(operation).fetch_add(1, Relaxed);
        if parts.method != Method::POST {
            return Ok(error(StatusCode::METHOD_NOT_ALLOWED, "use POST"));
        }
        let body = match read_body(body, MAX_BODY).await {
            Ok(body) => body,
            Err(answer) => return Ok(answer),
        };
        state.keep_last(received(&parts, &body));
        state.wait_delay().await;
        let population = &state.population;
        let misbehaviour = state.misbehaviour();
        let answer = match operation {
            Operation::CallNik if misbehaviour == Misbehaviour::OtherPerson => {
                handlers::call_nik_other(population, &body)
            }
            Operation::CallNik => handlers::call_nik(population, &body),
            // A DWH misbehaving: the person's record where verdicts were asked for.
            Operation::Verify if misbehaviour == Misbehaviour::VerifyValues => {
                handlers::call_nik(population, &body)
            }
            Operation::Verify => {
                let quota = DAILY_QUOTA.saturating_sub(state.verify.load(Relaxed));
                handlers::verify(population, &body, quota)
            }
            Operation::ByElemen => handlers::by_elemen(population, &body),
        };
        return Ok(json(StatusCode::OK, answer));
    }
    if let Some(pengguna) = path.strip_prefix("/dukcapil/balikan/") {
        return Ok(submit_balikan(&state, &parts, pengguna, body).await);
    }
    if let Some(rest) = path.strip_prefix("/portal/") {
        state.portal.fetch_add(1, Relaxed);
        let Some(op) = portal::route(&parts.method, rest) else {
            return Ok(error(StatusCode::NOT_FOUND, "no such portal page"));
        };
        let body = match read_body(body, MAX_BODY).await {
            Ok(body) => body,
            Err(answer) => return Ok(answer),
        };
        if op == portal::PortalOp::Search && state.misbehaviour() == Misbehaviour::OtherPerson {
            let other = handlers::call_nik_other(&state.population, &body);
            return Ok(json(StatusCode::OK, other));
        }
        return Ok(portal::answer(&state.population, op, &parts.headers, &body));
    }
    if let Some(hook) = path.strip_prefix("/__sim/") {
        return Ok(sim_hook(&state, &parts.method, hook, parts.uri.query(), body).await);
    }
    Ok(error(StatusCode::NOT_FOUND, "not found"))
}

/// `POST /dukcapil/balikan/{pengguna}`: a data balikan batch, counted, kept as the last
/// data request and checked; nothing of it is stored. The delay applies as to lookups.
async fn submit_balikan(
    state: &SimState,
    parts: &http::request::Parts,
    pengguna: &str,
    body: Incoming,
) -> Answer {
    state.balikan.fetch_add(1, Relaxed);
    if !balikan::is_pengguna(pengguna) {
        return error(StatusCode::NOT_FOUND, "unknown pengguna");
    }
    if parts.method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let body = match read_body(body, balikan::MAX_BODY).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    state.keep_last(received(parts, &body));
    state.wait_delay().await;
    match balikan::check(&body) {
        Ok(records) => {
            state
                .balikan_records
                .fetch_add(u64::try_from(records).unwrap_or(u64::MAX), Relaxed);
            json(StatusCode::OK, balikan::accepted(records))
        }
        Err(refusal) => json(StatusCode::OK, balikan::refused(&refusal)),
    }
}

/// A data request as received: method, target, headers in order, body.
fn received(parts: &http::request::Parts, body: &Bytes) -> Received {
    Received {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
    }
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Answer> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )),
        Err(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "could not read the request body",
        )),
    }
}

/// The test hooks below `/__sim/`.
async fn sim_hook(
    state: &SimState,
    method: &Method,
    hook: &str,
    query: Option<&str>,
    body: Incoming,
) -> Answer {
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    match hook {
        "health" if get => respond(StatusCode::OK, "text/plain", b"ok".to_vec()),
        "stats" if get => json(StatusCode::OK, stats_json(state.stats())),
        "reset" if post => {
            state.reset_stats();
            json(StatusCode::OK, stats_json(state.stats()))
        }
        "sample" if get => match handlers::sample(&state.population, query) {
            Ok(body) => json(StatusCode::OK, body),
            Err(message) => error(StatusCode::BAD_REQUEST, &message),
        },
        "record" if get => match handlers::record(&state.population, query) {
            Some(body) => json(StatusCode::OK, body),
            None => error(StatusCode::NOT_FOUND, "no record with that nik"),
        },
        "delay" if get => json(StatusCode::OK, delay_json(state.delay_ms.load(Relaxed))),
        "delay" if post => {
            let body = match read_body(body, MAX_BODY).await {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            match handlers::delay_ms(&body) {
                Some(ms) if ms <= MAX_DELAY_MS => {
                    state.delay_ms.store(ms, Relaxed);
                    json(StatusCode::OK, delay_json(ms))
                }
                _ => error(
                    StatusCode::BAD_REQUEST,
                    "expected {\"ms\": N} with N from 0 to 600000",
                ),
            }
        }
        "last" if get => match state.last_request() {
            Some(r) => json(StatusCode::OK, received_json(&r)),
            None => error(StatusCode::NOT_FOUND, "no data request received yet"),
        },
        "misbehave" if get => json(StatusCode::OK, mode_json(state.misbehaviour())),
        "misbehave" if post => {
            let body = match read_body(body, MAX_BODY).await {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            match handlers::mode(&body).and_then(|m| Misbehaviour::from_name(&m)) {
                Some(m) => {
                    state.set_misbehaviour(m);
                    json(StatusCode::OK, mode_json(m))
                }
                None => error(
                    StatusCode::BAD_REQUEST,
                    "expected {\"mode\": \"none\" | \"verify_values\" | \"other_person\"}",
                ),
            }
        }
        "health" | "stats" | "reset" | "sample" | "record" | "delay" | "last" | "misbehave" => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

fn stats_json(stats: Stats) -> Vec<u8> {
    format!(
        r#"{{"requests":{},"call_nik":{},"verify":{},"by_elemen":{},"portal":{},"balikan":{},"balikan_records":{}}}"#,
        stats.requests,
        stats.call_nik,
        stats.verify,
        stats.by_elemen,
        stats.portal,
        stats.balikan,
        stats.balikan_records
    )
    .into_bytes()
}

fn delay_json(ms: u64) -> Vec<u8> {
    format!(r#"{{"ms":{ms}}}"#).into_bytes()
}

fn mode_json(m: Misbehaviour) -> Vec<u8> {
    format!(r#"{{"mode":"{}"}}"#, m.name()).into_bytes()
}

/// `/__sim/last`: `{"method","target","headers":[[name,value],…],"body"}`, the body as
/// text (lossy if it is not UTF-8).
fn received_json(r: &Received) -> Vec<u8> {
    serde_json::json!({
        "method": r.method,
        "target": r.target,
        "headers": r.headers,
        "body": String::from_utf8_lossy(&r.body),
    })
    .to_string()
    .into_bytes()
}

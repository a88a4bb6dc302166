//! The sidecar's HTTP/1.1 server: `POST /v1/validate`, `GET /health`, `GET /metrics` on
//! loopback TCP and optionally a Unix socket, keep-alive connections, and the reload of
//! the registry when the PKS files or the sanctions file change (a poll of their sizes and
//! modification times) or on request (SIGHUP in the binary). An invalid edit keeps the
//! registry in force.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use gerbang_core::{Clock, ConfigErrors, SamReason};
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::replay::Replay;
use crate::settings::Settings;
use crate::validate::{ValidateRequest, Validator, Verdict};

/// Largest validation request read (one is a few hundred bytes; the gateway refuses a
/// reader request whose path could make it larger, see [`crate::MAX_READER_PATH`]).
/// A larger one is answered with a `malformed_headers` verdict.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// An idle keep-alive connection is closed after this long, and a request head must arrive
/// within it; the client's pool drops its idle connections sooner (see `client.rs`), so it
/// never picks one being closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Time the gateway has to send a validation request's body (it sends it at once).
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most connections served at once, over TCP and the Unix socket together; more wait in
/// the kernel's accept queue. The gateway's pool holds one per validation in flight.
const MAX_CONNECTIONS: usize = 4096;

/// Nonces are pruned this often.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("the PKS files or the sanctions file are invalid:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("{} exists and is not a socket; remove it or choose another unix_socket", .0.display())]
    NotASocket(PathBuf),
    #[error("cannot register the sidecar's metrics (a bug): {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the replay cache's Redis (`replay.redis_url`, --redis-url): {0}")]
    Redis(String),
}

/// What the request handlers and the reloader share.
#[derive(Debug)]
pub struct State {
    validator: Validator,
    metrics: Metrics,
    pks_dir: PathBuf,
    vocabulary: Option<PathBuf>,
    sanctions: Option<PathBuf>,
    /// What the PKS files looked like at the last load (tried or not).
    seen: Mutex<Fingerprint>,
}

impl State {
    /// The validator (registry, replay cache, clock).
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Loads the PKS files again and swaps the registry in; an invalid set is logged with
    /// its file:line errors and the registry in force stays. Returns whether it loaded.
    pub fn reload(&self, why: &str) -> bool {
        gerbang_core::systemd::reloading();
        let loaded = self.reload_registry(why);
        // Serving again, on the new registry or on the one that stayed.
        gerbang_core::systemd::ready(&self.status());
        loaded
    }

    /// What `systemctl status` shows of the sidecar (`STATUS=`).
    pub fn status(&self) -> String {
        let registry = self.validator.registry();
        format!(
            "serving: {} PKS, {} SAM, {} sanction(s)",
            registry.pks_count(),
            registry.sam_count(),
            registry.sanction_count()
        )
    }

    fn reload_registry(&self, why: &str) -> bool {
        let fingerprint = self.fingerprint();
        if let Ok(mut seen) = self.seen.lock() {
            *seen = fingerprint;
        }
        let started = Instant::now();
        match Registry::load(
            &self.pks_dir,
            self.vocabulary.as_deref(),
            self.sanctions.as_deref(),
        ) {
            Ok(registry) => {
                let (sams, users) = (registry.sam_count(), registry.user_count());
                let sanctions = registry.sanction_count();
                self.validator.swap(registry);
                self.metrics.reloaded(true);
                tracing::info!(
                    reload.cause = why,
                    sams.count = sams,
                    users.count = users,
                    sanctions.count = sanctions,
                    duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "reloaded the PKS files"
                );
                true
            }
            Err(errors) => {
                self.metrics.reloaded(false);
                tracing::error!(
                    reload.cause = why,
                    "reload refused, the previous SAM registry stays in force:\n{errors}"
                );
                false
            }
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        fingerprint(
            &self.pks_dir,
            [self.vocabulary.as_deref(), self.sanctions.as_deref()],
        )
    }

    /// Reloads when the PKS files or the sanctions changed since the last load.
    fn reload_if_changed(&self) {
        let now = self.fingerprint();
        let changed = self.seen.lock().map(|seen| *seen != now).unwrap_or(true);
        if changed {
            self.reload("the PKS files or the sanctions changed");
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let response = match (req.method(), req.uri().path()) {
            (&Method::POST, "/v1/validate") => self.validate(req).await,
            (&Method::GET, "/health") => {
                let registry = self.validator.registry();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "status": "ok",
                        "sams": registry.sam_count(),
                        "users": registry.user_count(),
                        "pks": registry.pks_count(),
                        "sanksi": registry.sanction_count(),
                    }),
                )
            }
            (&Method::GET, "/metrics") => {
                match self.metrics.render(
                    self.validator.registry().sam_count(),
                    self.validator.nonces(),
                ) {
                    Ok(body) => {
                        let mut r = Response::new(Full::new(Bytes::from(body)));
                        r.headers_mut().insert(
                            CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        r
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot render the metrics");
                        error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "cannot render the metrics",
                        )
                    }
                }
            }
            _ => error(
                StatusCode::NOT_FOUND,
                "not found: POST /v1/validate, GET /health, GET /metrics",
            ),
        };
        Ok(response)
    }

    async fn validate(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let read = tokio::time::timeout(
            BODY_TIMEOUT,
            Limited::new(req.into_body(), MAX_REQUEST_BYTES).collect(),
        );
        let body = match read.await {
            Err(_) => {
                self.metrics.bad_request();
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("the body did not arrive within {BODY_TIMEOUT:?}"),
                );
            }
            Ok(read) => read,
        };
        let body = match body {
            Ok(b) => b.to_bytes(),
            // Only a path or header far longer than any reader sends makes a question this
            // big. It is a verdict about that request, not a fault of the sidecar: answered
            // as one, it neither raises the sidecar-down alert nor gives the wrong reason.
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                let verdict = Verdict::invalid(
                    SamReason::MalformedHeaders,
                    format!(
                        "permintaan card reader terlalu panjang (jalur atau header SAM melebihi {} KB)",
                        MAX_REQUEST_BYTES / 1024
                    ),
                );
                self.metrics.record(verdict.reason, Duration::ZERO);
                tracing::info!(
                    reason = verdict.code(),
                    limit_bytes = MAX_REQUEST_BYTES,
                    "refused an oversized validation request"
                );
                return json(StatusCode::OK, &verdict.to_wire());
            }
            Err(e) => {
                self.metrics.bad_request();
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the body: {e}"),
                );
            }
        };
        let request: ValidateRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.bad_request();
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("not a validation request: {e}"),
                );
            }
        };
        let started = Instant::now();
        let verdict = match self.validator.validate(&request).await {
            Ok(v) => v,
            Err(e) => {
                // Fail closed: a nonce that cannot be checked may be a replay. Not a
                // verdict on the request: the gateway refuses it as "sidecar unavailable"
                // and its alert on the sidecar fires.
                self.metrics.replay_store_failed();
                tracing::info!(
                    sam.id = request.sam.sam_id.as_str(),
                    user.id = request.user_id.as_str(),
                    error = %e,
                    "refused: the replay cache (Redis) did not answer, so the nonce cannot be checked"
                );
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("the replay cache (Redis) did not answer: {e}"),
                );
            }
        };
        self.metrics.record(verdict.reason, started.elapsed());
        if verdict.is_valid() {
            tracing::debug!(
                sam.id = request.sam.sam_id.as_str(),
                user.id = request.user_id.as_str(),
                "valid"
            );
        } else {
            tracing::info!(
                sam.id = request.sam.sam_id.as_str(),
                user.id = request.user_id.as_str(),
                reason = verdict.code(),
                detail = verdict.detail.as_str(),
                "refused"
            );
        }
        json(StatusCode::OK, &verdict.to_wire())
    }
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

/// Names, inodes, sizes and modification times of the PKS files, the vocabulary and the
/// sanctions file: when any changes, the files are loaded again. The inode catches an
/// editor's write-and-rename (and the gateway's atomic rewrite of the sanctions) within
/// the file system's timestamp granularity.
type Fingerprint = Vec<(PathBuf, u64, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path, files: [Option<&Path>; 2]) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let stat = |path: PathBuf| {
        let meta = std::fs::metadata(&path).ok();
        let ino = meta.as_ref().map_or(0, MetadataExt::ino);
        let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
        let modified = meta.and_then(|m| m.modified().ok());
        (path, ino, len, modified)
    };
    let mut out: Fingerprint = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .map(stat)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.push(stat(dir.to_path_buf()));
    out.extend(files.into_iter().flatten().map(|f| stat(f.to_path_buf())));
    out
}

/// A loaded, bound sidecar, ready to serve.
pub struct Sidecar {
    state: Arc<State>,
    tcp: TcpListener,
    unix: Option<(UnixListener, PathBuf)>,
    poll: Duration,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("tcp", &self.tcp.local_addr().ok())
            .field("unix", &self.unix.as_ref().map(|(_, p)| p))
            .finish_non_exhaustive()
    }
}

impl Sidecar {
    /// Loads the PKS files (refusing to start on any error) and binds the listeners.
    pub async fn bind(settings: &Settings, clock: Arc<dyn Clock>) -> Result<Self, SidecarError> {
        let seen = fingerprint(
            &settings.pks_dir,
            [
                settings.vocabulary.as_deref(),
                settings.sanctions.as_deref(),
            ],
        );
        let registry = Registry::load(
            &settings.pks_dir,
            settings.vocabulary.as_deref(),
            settings.sanctions.as_deref(),
        )?;
        let replay = Replay::from_settings(settings).map_err(SidecarError::Redis)?;
        let state = Arc::new(State {
            validator: Validator::new(registry, clock, settings.skew_secs, replay),
            metrics: Metrics::new()?,
            pks_dir: settings.pks_dir.clone(),
            vocabulary: settings.vocabulary.clone(),
            sanctions: settings.sanctions.clone(),
            seen: Mutex::new(seen),
        });
        let tcp =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| SidecarError::Listen {
                    address: settings.listen.to_string(),
                    source,
                })?;
        let unix = match &settings.unix_socket {
            Some(path) => Some((bind_unix(path)?, path.clone())),
            None => None,
        };
        Ok(Self {
            state,
            tcp,
            unix,
            poll: settings.poll,
        })
    }

    /// The bound TCP address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr, std::io::Error> {
        self.tcp.local_addr()
    }

    /// The shared state (to reload on a signal, or to read the metrics).
    pub fn state(&self) -> Arc<State> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` completes, watching the PKS files meanwhile. The Unix
    /// socket file is removed at the end.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Self {
            state,
            tcp,
            unix,
            poll,
        } = self;
        let mut tasks = tokio::task::JoinSet::new();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tasks.spawn(watch(Arc::clone(&state), poll));
        tasks.spawn(accept_tcp(tcp, Arc::clone(&state), Arc::clone(&slots)));
        let socket_path = unix.as_ref().map(|(_, p)| p.clone());
        if let Some((listener, _)) = unix {
            tasks.spawn(accept_unix(listener, Arc::clone(&state), slots));
        }
        shutdown.await;
        tasks.abort_all();
        if let Some(path) = socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn bind_unix(path: &Path) -> Result<UnixListener, SidecarError> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(SidecarError::NotASocket(path.to_path_buf()));
        }
        // A socket left by a previous run.
        let _ = std::fs::remove_file(path);
    }
    let listen_error = |source| SidecarError::Listen {
        address: format!("unix:{}", path.display()),
        source,
    };
    let listener = UnixListener::bind(path).map_err(listen_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(listen_error)?;
    Ok(listener)
}

async fn watch(state: Arc<State>, poll: Duration) {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = Instant::now();
    loop {
        tick.tick().await;
        let s = Arc::clone(&state);
        // Reading and checking the files is blocking work: off the serving threads.
        if let Err(e) = tokio::task::spawn_blocking(move || s.reload_if_changed()).await {
            tracing::error!(error = %e, "the reload task failed");
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            state.validator.prune();
            last_prune = Instant::now();
        }
    }
}

async fn accept_tcp(listener: TcpListener, state: Arc<State>, slots: Arc<Semaphore>) {
    loop {
        // A connection is accepted only with a free slot.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                // Validations are small request/answer pairs: send each at once.
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, Arc::clone(&state), slot));
            }
            Err(e) => accept_failed(&e).await,
        }
    }
}

async fn accept_unix(listener: UnixListener, state: Arc<State>, slots: Arc<Semaphore>) {
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, Arc::clone(&state), slot));
            }
            Err(e) => accept_failed(&e).await,
        }
    }
}

/// Out of file descriptors and the like: say so and back off a little.
async fn accept_failed(e: &std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn serve_connection<IO>(io: IO, state: Arc<State>, _slot: OwnedSemaphorePermit)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| Arc::clone(&state).handle(req));
    let result = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

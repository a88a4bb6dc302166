//! Starting the data plane: load and check everything, build the pingora server with the
//! gateway's own connection loop (caps, TLS and deadlines: `listener.rs`) in front of the
//! proxy, and reload the PKS files on SIGHUP.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use gerbang_core::{Clock, ConfigErrors, ListenLimits, QuotaStore, SystemClock};
use gerbang_policy::load_snapshot;
use gerbang_quota::{Meter, QuotaError, RedisOptions};

use crate::admin::{Admin, AdminService};
use crate::certs::ServedCert;
use crate::gateway::Gateway;
use crate::listener::{ConnMetrics, Drain, Listener};
use crate::metrics::Metrics;
use crate::proxy_protocol::Balancers;
use crate::reload::{ReloadService, Reloader};
use crate::upgrade::{Sockets, Takeover, TakeoverError, Upgrader};

/// Bytes of a client connection's write buffer: a lookup's answer with its header is
/// usually under 4 KiB; larger ones (portal search pages) are written straight through.
const ANSWER_WRITE_BUFFER: usize = 8 * 1024;

/// File descriptors kept free of client connections: the DWH connection pool (128 idle per
/// thread), the decision log, the quota store, the admin listener, the watcher, the SAM
/// sidecar's connections.
const RESERVED_FILES_BASE: u64 = 256;
const RESERVED_FILES_PER_THREAD: u64 = 128;

/// Why the gateway could not start. Each message says what failed; the cause is its
/// `source()`, which `gerbang serve` prints after it (`{:#}`), so a message never repeats
/// its cause.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("configuration is invalid")]
    Config(#[from] ConfigErrors),
    #[error(
        "cannot set up the listener: TLS certificate {} or key {}",
        cert.display(),
        key.display()
    )]
    Tls {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        #[source]
        source: TlsError,
    },
    #[error("cannot listen on {address}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the quota store")]
    Quota(#[from] QuotaError),
    #[error("cannot open the shared state's Redis link")]
    Shared(#[from] gerbang_shared::Unavailable),
    #[error("cannot open the decision log")]
    Audit(#[from] crate::record::AuditOpenError),
    #[error("{0} panicked (a bug; its message is above)")]
    Panicked(&'static str),
    #[error("cannot register the metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot take over from the running gateway")]
    Takeover(#[from] TakeoverError),
}

/// Why the client listener's certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error(transparent)]
    Load(Box<pingora::Error>),
    #[error("no certificate or no private key in the files")]
    Missing,
    #[error("the first certificate of the chain is not a readable X.509 certificate")]
    NotX509,
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error(transparent)]
    Refused(pingora::tls::RusTlsError),
    /// The client certificate authorities (`listen.tls_client_ca`) could not be read.
    #[error("the client certificate authorities in {}: {source}", path.display())]
    ClientCa {
        path: std::path::PathBuf,
        #[source]
        source: Box<pingora::Error>,
    },
    /// rustls refused the client certificate authorities (none in the file, say).
    #[error("the client certificate authorities in {}: {source}", path.display())]
    ClientVerifier {
        path: std::path::PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Loads the configuration at `path`, checks it, and serves until SIGTERM or SIGINT; then
/// persists the exact quota counts and returns. With `upgrade_from`, this process is a
/// binary upgrade's new one (`upgrade.rs`): it loads, takes the listening sockets over from
/// the running gateway at that socket, waits for it to exit, then opens the stores.
pub fn serve(
    path: &std::path::Path,
    upgrade_from: Option<&std::path::Path>,
) -> Result<(), ServeError> {
    let config = gerbang_core::check(path)?;
    let admin_token = config.load_admin_token()?;
    let metrics = Arc::new(Metrics::new()?);
    metrics.name_instance(&config.instance)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let started = std::time::Instant::now();
    let Started {
        loaded,
        meter,
        audit,
        sockets,
        tls,
    } = match upgrade_from {
        None => start(&config, &clock, &metrics)?,
        Some(from) => take_over(&config, &clock, &metrics, from)?,
    };
    let snapshot = Arc::new(ArcSwap::from_pointee(loaded));
    let load_ms = started.elapsed().as_millis();
    let meter = Arc::new(meter);
    let shared = crate::shared::SharedState::open(&config)?;
    tracing::info!(
        instance = config.instance.as_str(),
                pks.count = snapshot.load().agreements().len(),
        policy.hash = snapshot.load().engine().hash(),
        users.count = snapshot.load().user_count(),
        listen = %config.listen.address,
        tls = config.listen.tls.is_some(),
        upstream = %config.upstream.address,
        sam.sidecar = config.sam.as_ref().map_or_else(|| "none: card-reader requests are refused".to_string(), |s| s.address.to_string()),
        load_ms,
        "starting"
    );
    let upgrader = Arc::new(Upgrader::new(
        sockets.duplicate().map_err(|source| ServeError::Listen {
            address: config.listen.address,
            source,
        })?,
        path,
    ));
    let Sockets {
        data: bound,
        admin: admin_socket,
    } = sockets;

    let conf = ServerConf {
        threads: config.threads,
        ca_file: config.upstream.ca.as_ref().map(|p| p.display().to_string()),
        // pingora's graceful stop only waits a fixed grace period and then cancels what is
        // still running; the drain is the gateway's own (`StopSignals`), done before pingora
        // is told to stop, so nothing is left to wait for.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(2),
        ..ServerConf::default()
    };
    let drain = Arc::new(Drain::new());
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let audit_log = audit.as_ref().map(|a| Arc::clone(&a.log));
    let gateway = Gateway::new(
        &config,
        Arc::clone(&snapshot),
        Arc::clone(&meter),
        Arc::clone(&metrics),
        audit,
        Arc::clone(&clock),
        shared.clone(),
    );
    let portal_sessions = gateway.portal_sessions();
    let auth = gateway.authenticator();
    let proxy = pingora::proxy::http_proxy(&server.configuration, gateway);
    // Bound at the start (or taken over), so that port 0 works and the address in use is
    // known: pingora is handed the bound socket (`DataPlane::start_service`) instead of
    // binding the address itself.
    let bound_address = bound.local_addr().map_err(|source| ServeError::Listen {
        address: config.listen.address,
        source,
    })?;
    let address = bound_address.to_string();
    if tls.is_none() {
        tracing::warn!(
            listen = address.as_str(),
            "serving WITHOUT TLS (plaintext = true in the configuration)"
        );
    }
    let served_cert = tls.clone();
    let limits = fit_open_files(config.listen.limits.clone(), config.threads);
    tracing::info!(
        connections.max = limits.max_connections.get(),
        connections.max_per_address = limits.max_connections_per_address.get(),
        head_timeout_ms = u64::try_from(limits.head_timeout.as_millis()).unwrap_or(u64::MAX),
        body_timeout_ms = u64::try_from(limits.body_timeout.as_millis()).unwrap_or(u64::MAX),
        write_timeout_ms = u64::try_from(limits.write_timeout.as_millis()).unwrap_or(u64::MAX),
        keepalive_secs = limits.keepalive_timeout.as_secs(),
        "client connection limits"
    );
    let app = Listener::new(
        proxy,
        tls,
        limits,
        ConnMetrics::register(metrics.registry())?,
        Arc::clone(&drain),
    )
    .with_balancers(Balancers::new(config.listen.proxy_protocol_from.clone()));
    let mut service = Service::new("gerbang".to_string(), app);
    // Room for a whole answer, header and body, so that it leaves in one write (pingora's
    // default, 1,460 bytes, splits most lookup answers in two).
    service.add_listener(ListenerConfig::tcp(&address).l4_buffer(L4BufferSettings {
        read: None,
        write: Some(ANSWER_WRITE_BUFFER),
    }));
    server.add_service(DataPlane {
        service,
        drain: Arc::clone(&drain),
        bound: Some((address.clone(), bound)),
        probe: probe_address(bound_address),
        announced: format!(
            "gerbang listening on {}://{bound_address}",
            if config.listen.tls.is_some() {
                "https"
            } else {
                "http"
            }
        ),
        status: status(&snapshot.load()),
    });
    let admin = config.admin.clone();
    let instance = config.instance.clone();
    let reloader = Arc::new(
        Reloader::new(config, Arc::clone(&snapshot), auth, Arc::clone(&metrics))
            .with_audit(audit_log.clone(), instance.clone())
            .ending_portal_sessions(portal_sessions)
            .renewing_cert(served_cert)
            .sharing_sanctions(shared.sanctions()),
    );
    if reloader.shared_sanctions().is_some() {
        // Before the first request: an instance never serves without the sanctions other
        // instances applied.
        shared.read_sanctions();
        if reloader.shared_sanctions_changed()
            && let Err(errors) = reloader.reload_before_serving("shared sanctions")
        {
            tracing::error!("starting without the shared sanctions:\n{errors}");
        }
    }
    server.add_service(background_service(
        "reload",
        ReloadService(Arc::clone(&reloader)),
    ));
    match admin {
        Some(a) => {
            if admin_token.is_none() {
                tracing::warn!(
                    "no admin token_file: the admin listener serves only /health, /ready and /metrics"
                );
            }
            server.add_service(background_service(
                "admin",
                AdminService {
                    listener: std::sync::Mutex::new(admin_socket),
                    admin: Arc::new(Admin {
                        address: a.address,
                        token: admin_token,
                        quota_series: a.quota_series,
                        snapshot,
                        meter: Arc::clone(&meter),
                        metrics,
                        reloader,
                        clock,
                        audit: audit_log.clone(),
                        instance: instance.clone(),
                        drain: Arc::clone(&drain),
                        lookups: Arc::clone(&shared.lookups),
                    }),
                },
            ));
        }
        None => tracing::warn!(
            "no [admin] listener configured: no metrics, no reload or sanctions API (SIGHUP and file changes still reload)"
        ),
    }
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(StopSignals { drain, upgrader }),
    });
    // Every request has finished: write exact counts, releasing unused reserved blocks.
    if let Err(e) = meter.close() {
        tracing::error!(error = %e, "could not persist the exact quota counts; the reserved blocks stay counted");
    }
    // Write what is queued and fsync; if the log is still shared, its drop does the same.
    if let Some(log) = audit_log.and_then(|l| Arc::try_unwrap(l).ok())
        && let Err(e) = log.close()
    {
        tracing::error!(error = %e, "could not close the decision log cleanly");
    }
    tracing::info!("stopped");
    Ok(())
}

/// What a start has loaded and opened before the server is built.
struct Started {
    loaded: gerbang_policy::Snapshot,
    meter: Meter,
    audit: Option<crate::record::Audit>,
    sockets: Sockets,
    tls: Option<Arc<ServedCert>>,
}

/// A plain start: binds the listeners, loads the certificate, and opens the quota store and
/// the decision log while the PKS files load, which keeps both cores busy: a start waits
/// for the longer of the two.
fn start(
    config: &gerbang_core::Config,
    clock: &Arc<dyn Clock>,
    metrics: &Metrics,
) -> Result<Started, ServeError> {
    let sockets = bind(config)?;
    let tls = load_cert(config, metrics)?;
    let (loaded, meter, audit) = std::thread::scope(|s| {
        let loading = s.spawn(|| load_snapshot(config));
        let meter = open_meter(config, clock.as_ref());
        let audit = open_audit(config, clock);
        (loading.join(), meter, audit)
    });
    let loaded = loaded.map_err(|_| ServeError::Panicked("loading the PKS files"))?;
    Ok(Started {
        loaded: loaded?,
        meter: meter?,
        audit: audit?,
        sockets,
        tls,
    })
}

/// A binary upgrade's start (`upgrade.rs`): everything that can fail is loaded while the
/// running gateway serves; then the listening sockets are taken over, and the quota store
/// and the decision log are opened once it has exited.
fn take_over(
    config: &gerbang_core::Config,
    clock: &Arc<dyn Clock>,
    metrics: &Metrics,
    from: &std::path::Path,
) -> Result<Started, ServeError> {
    let loaded = load_snapshot(config)?;
    let tls = load_cert(config, metrics)?;
    let (takeover, mut sockets) = Takeover::receive(from)?;
    gerbang_core::systemd::main_pid(
        std::process::id(),
        "upgrading: the previous process is finishing its requests",
    );
    tracing::info!(
        "upgrade: the listening sockets are taken over; waiting for the previous process to exit"
    );
    if let Ok(taken) = sockets.data.local_addr()
        && !same_address(config.listen.address, taken)
    {
        tracing::warn!(
            configured = %config.listen.address,
            serving = %taken,
            "listen.address differs from the socket taken over; it takes effect at the next restart"
        );
    }
    // An admin address changed with the upgrade is bound anew (the old one closes with the
    // previous process).
    if let Some(admin) = &config.admin
        && let Some(taken) = &sockets.admin
        && !taken
            .local_addr()
            .is_ok_and(|a| same_address(admin.address, a))
    {
        sockets.admin = bind_admin(admin.address);
    }
    takeover.wait_released()?;
    Ok(Started {
        loaded,
        meter: open_meter(config, clock.as_ref())?,
        audit: open_audit(config, clock)?,
        sockets,
        tls,
    })
}

/// Whether a socket bound at `bound` serves the configured `address` (port 0: any port).
fn same_address(address: std::net::SocketAddr, bound: std::net::SocketAddr) -> bool {
    address.ip() == bound.ip() && (address.port() == 0 || address.port() == bound.port())
}

/// The client listener and, when configured, the admin listener, bound and non-blocking
/// (pingora's and the admin's accept loops run on tokio).
fn bind(config: &gerbang_core::Config) -> Result<Sockets, ServeError> {
    let cannot_listen = |source| ServeError::Listen {
        address: config.listen.address,
        source,
    };
    let data = std::net::TcpListener::bind(config.listen.address).map_err(cannot_listen)?;
    data.set_nonblocking(true).map_err(cannot_listen)?;
    let admin = config.admin.as_ref().and_then(|a| bind_admin(a.address));
    Ok(Sockets { data, admin })
}

/// The admin listener, bound; `None` (logged) when it cannot be: the gateway still serves.
fn bind_admin(address: std::net::SocketAddr) -> Option<std::net::TcpListener> {
    match std::net::TcpListener::bind(address).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!(address = %address, error = %e, "cannot open the admin listener; metrics, reload and sanctions are unavailable");
            None
        }
    }
}

/// The client listener's certificate and key; none with `plaintext = true`. The TLS
/// handshake is the gateway's, under its own deadline (pingora accepts plain TCP).
fn load_cert(
    config: &gerbang_core::Config,
    metrics: &Metrics,
) -> Result<Option<Arc<ServedCert>>, ServeError> {
    config
        .listen
        .tls
        .as_ref()
        .map(|tls| ServedCert::load(tls, metrics.registry()).map(Arc::new))
        .transpose()
}

/// What `systemctl status` shows of the gateway (`STATUS=`): the PKS count and policy hash
/// of the set in force.
pub(crate) fn status(snapshot: &gerbang_policy::Snapshot) -> String {
    format!(
        "serving: {} PKS, policy set {}",
        snapshot.agreements().len(),
        snapshot.engine().hash()
    )
}

/// The client listener's pingora service, with what systemd is told from the data plane's
/// own runtime: `READY=1` once the listening socket accepts connections (everything else
/// was loaded and opened before the server started), then `WATCHDOG=1` at half of
/// `WatchdogSec`. A runtime whose workers are all stuck sends no ping, and systemd restarts
/// the gateway.
struct DataPlane {
    service: Service<Listener>,
    /// Its listener stops accepting when the drain begins.
    drain: Arc<Drain>,
    /// The listening socket bound at the start, with its address as the listener's key,
    /// until pingora takes it over.
    bound: Option<(String, std::net::TcpListener)>,
    /// Where a connection shows that the listener is bound.
    probe: std::net::SocketAddr,
    /// The line printed on standard output once it accepts (`gerbang listening on URL`).
    announced: String,
    /// `STATUS=` at the start.
    status: String,
}

/// How often the start looks whether the listener accepts yet.
const BIND_POLL: std::time::Duration = std::time::Duration::from_millis(10);

#[async_trait::async_trait]
impl pingora::services::Service for DataPlane {
    async fn start_service(
        &mut self,
        fds: Option<pingora::server::ListenFds>,
        shutdown: pingora::server::ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        // Pingora takes a socket from its table of inherited ones when the address is there:
        // the one bound at the start goes in, under the address the listener names.
        if let (Some(fds), Some((address, listener))) = (&fds, self.bound.take()) {
            fds.lock()
                .add(address, std::os::fd::IntoRawFd::into_raw_fd(listener));
        }
        // `start_service` listens and then accepts until the shutdown: the announcement
        // runs beside it, on this runtime.
        tokio::spawn(announce(
            self.probe,
            std::mem::take(&mut self.announced),
            std::mem::take(&mut self.status),
        ));
        let shutdown = self.drain.watch(shutdown);
        pingora::services::Service::start_service(
            &mut self.service,
            fds,
            shutdown,
            listeners_per_fd,
        )
        .await;
    }

    fn name(&self) -> &str {
        pingora::services::Service::name(&self.service)
    }

    fn threads(&self) -> Option<usize> {
        pingora::services::Service::threads(&self.service)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        pingora::services::Service::listen_addresses(&self.service)
    }
}

/// Waits until the listener accepts, says `READY=1`, then pings the watchdog for as long as
/// this runtime runs. If the listener cannot be bound, no `READY=1` is ever sent (systemd's
/// start timeout then fails the unit).
async fn announce(probe: std::net::SocketAddr, announced: String, status: String) {
    while tokio::net::TcpStream::connect(probe).await.is_err() {
        tokio::time::sleep(BIND_POLL).await;
    }
    // As dwh-sim and the sidecar do: with port 0, how a supervisor learns the port.
    println!("{announced}");
    gerbang_core::systemd::ready(&status);
    tracing::info!(listen = %probe, status = status.as_str(), "ready: accepting connections");
    let Some(every) = gerbang_core::systemd::watchdog_interval() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        gerbang_core::systemd::watchdog();
    }
}

/// The address that reaches the listener from this host: loopback for a wildcard address.
fn probe_address(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, listen.port())
}

/// How long a stop waits for the requests in flight: under the unit's `TimeoutStopSec=45s`,
/// with room for persisting the quota counts and closing the decision log after it.
pub const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// pingora's stop signals (SIGTERM: graceful, SIGINT: fast, SIGQUIT: the upgrade's
/// handover), with `STOPPING=1` to systemd on the first two. SIGTERM drains first: the
/// client listener closes, and pingora is told to stop only once every connection has
/// ended (or [`DRAIN_DEADLINE`] has passed), since it would cancel what is still running.
struct StopSignals {
    drain: Arc<Drain>,
    /// SIGUSR2 hands the listening sockets to a new process, then drains as SIGTERM does.
    upgrader: Arc<Upgrader>,
}

#[async_trait::async_trait]
impl pingora::server::ShutdownSignalWatch for StopSignals {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
        use pingora::server::ShutdownSignal;
        use tokio::signal::unix::SignalKind;
        let received = tokio::select! {
            // pingora's own upgrade (SIGQUIT) would send the sockets to a fixed path in /tmp
            // that any local user could bind first: SIGQUIT stops as SIGTERM does, and the
            // upgrade is SIGUSR2's.
            () = next(SignalKind::quit(), "SIGQUIT") => ShutdownSignal::GracefulTerminate,
            () = next(SignalKind::terminate(), "SIGTERM") => ShutdownSignal::GracefulTerminate,
            () = next(SignalKind::interrupt(), "SIGINT") => ShutdownSignal::FastShutdown,
            pid = self.upgrader.on_signal() => {
                // The unit follows the new process (`MAINPID=`): this one says nothing to
                // systemd any more but its watchdog pings.
                tracing::info!(new.pid = pid, connections.open = self.drain.open(), "upgrade: draining: the requests in flight finish here, new connections go to the new process");
                self.drain_connections().await;
                return ShutdownSignal::GracefulTerminate;
            }
        };
        self.upgrader.disable();
        match received {
            ShutdownSignal::GracefulTerminate => {
                gerbang_core::systemd::stopping("stopping: finishing the requests in flight");
                tracing::info!(
                    connections.open = self.drain.open(),
                    deadline_secs = DRAIN_DEADLINE.as_secs(),
                    "SIGTERM: draining: no new connection; the requests in flight finish"
                );
                self.drain_connections().await;
            }
            ShutdownSignal::FastShutdown | ShutdownSignal::GracefulUpgrade => {
                gerbang_core::systemd::stopping("stopping at once (SIGINT)");
            }
        }
        received
    }
}

impl StopSignals {
    /// Stops accepting and waits until every connection has ended or [`DRAIN_DEADLINE`]
    /// has passed.
    async fn drain_connections(&self) {
        self.drain.begin();
        match self.drain.ended(DRAIN_DEADLINE).await {
            0 => tracing::info!("drained: every connection has ended"),
            left => tracing::warn!(
                connections.open = left,
                deadline_secs = DRAIN_DEADLINE.as_secs(),
                "the drain's deadline passed: the connections still open are cut"
            ),
        }
    }
}

/// The next delivery of `kind`; never, when it cannot be listened for (logged: the signal
/// then keeps its default action, which ends the process).
async fn next(kind: tokio::signal::unix::SignalKind, name: &str) {
    match tokio::signal::unix::signal(kind) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(e) => {
            tracing::error!(signal = name, error = %e, "cannot listen for a stop signal");
            std::future::pending::<()>().await;
        }
    }
}

/// Raises the open-files limit to its hard limit (as nginx's `worker_rlimit_nofile` or Go's
/// runtime do), then lowers the connection caps to what it allows: each client connection
/// can hold a DWH connection too, and some files are kept for the rest. A lowered cap is
/// logged with the way to raise it.
fn fit_open_files(mut limits: ListenLimits, threads: usize) -> ListenLimits {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: now.maximum,
        maximum: now.maximum,
    };
    let open_files = match setrlimit(Resource::Nofile, raised) {
        Ok(()) => now.maximum,
        Err(_) => now.current,
    };
    let Some(open_files) = open_files else {
        return limits;
    };
    let reserved = RESERVED_FILES_BASE
        + RESERVED_FILES_PER_THREAD * u64::try_from(threads).unwrap_or(u64::MAX);
    let fits = u32::try_from(open_files.saturating_sub(reserved) / 2).unwrap_or(u32::MAX);
    let fits = std::num::NonZeroU32::new(fits).unwrap_or(std::num::NonZeroU32::MIN);
    if limits.max_connections > fits {
        tracing::warn!(
            configured = limits.max_connections.get(),
            lowered_to = fits.get(),
            open_files,
            "listen.max_connections lowered: the process may open only this many files (raise LimitNOFILE, or lower listen.max_connections)"
        );
        limits.max_connections = fits;
    }
    limits.max_connections_per_address = limits
        .max_connections_per_address
        .min(limits.max_connections);
    limits
}

/// The quota store the configuration names, opened.
fn open_meter(config: &gerbang_core::Config, clock: &dyn Clock) -> Result<Meter, QuotaError> {
    match config.quota.store {
        QuotaStore::Embedded => {
            Meter::embedded(&config.quota.path, config.quota.block, clock.today())
        }
        QuotaStore::Redis => Meter::redis(&RedisOptions {
            url: config.quota.redis_url.clone(),
            lease: config.quota.lease,
            emergency_share: config.quota.emergency_share,
            key_prefix: config.quota.key_prefix.clone(),
            instance: config.instance.clone(),
            timeout: config.quota.redis_timeout,
        }),
        QuotaStore::Memory => {
            tracing::warn!("quota counts are kept in memory only: a restart forgets today's use");
            Ok(Meter::memory())
        }
    }
}

/// The decision log, opened (its chain checked and continued), when one is configured.
fn open_audit(
    config: &gerbang_core::Config,
    clock: &Arc<dyn Clock>,
) -> Result<Option<crate::record::Audit>, ServeError> {
    match &config.audit {
        Some(settings) => crate::record::Audit::open(settings, &config.instance, Arc::clone(clock))
            .map(Some)
            .map_err(ServeError::Audit),
        None => {
            tracing::warn!("no [audit] decision log configured: requests are not recorded");
            Ok(None)
        }
    }
}

/// An error and each of its causes after `: ` (what anyhow's `{:#}` prints), for a log line.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out = format!("{out}: {c}");
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod serve_error_tests {
    use super::*;

    /// What `gerbang serve` prints (`{:#}`).
    fn printed(e: &dyn std::error::Error) -> String {
        with_causes(e)
    }

    #[test]
    fn a_start_error_says_what_failed_and_its_cause_once() {
        let problem = "field `bogus`: unknown field";
        let config = ServeError::from(ConfigErrors(vec![gerbang_core::ConfigError {
            file: "/etc/gerbang/gerbang.toml".into(),
            line: Some(1),
            column: Some(1),
            field: "bogus".into(),
            message: problem.into(),
        }]));
        let shown = printed(&config);
        assert!(shown.starts_with("configuration is invalid: "), "{shown}");
        assert_eq!(shown.matches(problem).count(), 1, "{shown}");

        let tls = ServeError::Tls {
            cert: "/etc/gerbang/tls/cert.pem".into(),
            key: "/etc/gerbang/tls/key.pem".into(),
            source: TlsError::Missing,
        };
        assert_eq!(
            printed(&tls),
            "cannot set up the listener: TLS certificate /etc/gerbang/tls/cert.pem or key \
             /etc/gerbang/tls/key.pem: no certificate or no private key in the files"
        );
    }
}

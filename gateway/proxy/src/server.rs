//! Starting the data plane: load and check everything, build the pingora server with a TLS
//! (or explicitly plaintext) listener, and reload the PKS files on SIGHUP.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;

use gerbang_core::{Clock, ConfigErrors, QuotaStore, SystemClock};
use gerbang_policy::{Authenticator, LoginThrottle, load_snapshot};
use gerbang_quota::{Meter, QuotaError, RedisOptions};

use crate::admin::{Admin, AdminService};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::reload::{ReloadService, Reloader};

/// Bytes of a client connection's write buffer: a lookup's answer with its header is
/// usually under 4 KiB; larger ones (portal search pages) are written straight through.
const ANSWER_WRITE_BUFFER: usize = 8 * 1024;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("configuration is invalid:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot set up the listener: {0}")]
    Listener(String),
    #[error("cannot open the quota store: {0}")]
    Quota(#[from] QuotaError),
    #[error("cannot open the decision log: {0}")]
    Audit(String),
    #[error("{0} panicked (a bug; its message is above)")]
    Panicked(&'static str),
    #[error("cannot register the metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Loads the configuration at `path`, checks it, and serves until SIGTERM or SIGINT; then
/// persists the exact quota counts and returns.
pub fn serve(path: &std::path::Path) -> Result<(), ServeError> {
    let config = gerbang_core::check(path)?;
    let admin_token = config.load_admin_token()?;
    let metrics = Arc::new(Metrics::new()?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The quota store and the decision log are opened (files created, fsynced) while the
    // PKS files load, which keeps both cores busy: a start waits for the longer of the two.
    let started = std::time::Instant::now();
    let (loaded, meter, audit) = std::thread::scope(|s| {
        let loading = s.spawn(|| load_snapshot(&config));
        let meter = open_meter(&config, clock.as_ref());
        let audit = open_audit(&config, &clock);
        (loading.join(), meter, audit)
    });
    let loaded = loaded.map_err(|_| ServeError::Panicked("loading the PKS files"))?;
    let snapshot = Arc::new(ArcSwap::from_pointee(loaded?));
    let load_ms = started.elapsed().as_millis();
    let meter = Arc::new(meter?);
    let audit = audit?;
    let auth = Arc::new(Authenticator::new(LoginThrottle::new(
        config.auth.clone(),
        Arc::clone(&clock),
    )));
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

    let conf = ServerConf {
        threads: config.threads,
        ca_file: config.upstream.ca.as_ref().map(|p| p.display().to_string()),
        // Stop quickly: in-flight lookups are short, and the demo stops with Ctrl-C.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(2),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let audit_log = audit.as_ref().map(|a| Arc::clone(&a.log));
    let gateway = Gateway::new(
        &config,
        Arc::clone(&snapshot),
        Arc::clone(&auth),
        Arc::clone(&meter),
        Arc::clone(&metrics),
        audit,
        Arc::clone(&clock),
    );
    let portal_sessions = gateway.portal_sessions();
    let mut service =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "gerbang");
    let address = config.listen.address.to_string();
    // Room for a whole answer, header and body, so that it leaves in one write (pingora's
    // default, 1,460 bytes, splits most lookup answers in two).
    let listener = ListenerConfig::tcp(&address).l4_buffer(L4BufferSettings {
        read: None,
        write: Some(ANSWER_WRITE_BUFFER),
    });
    let listener = match &config.listen.tls {
        Some(tls) => listener.tls(
            TlsSettings::intermediate(
                &tls.cert.display().to_string(),
                &tls.key.display().to_string(),
            )
            .map_err(|e| ServeError::Listener(e.to_string()))?,
        ),
        None => {
            tracing::warn!(
                listen = address.as_str(),
                "serving WITHOUT TLS (plaintext = true in the configuration)"
            );
            listener
        }
    };
    service.add_listener(listener);
    server.add_service(service);
    let admin = config.admin.clone();
    let instance = config.instance.clone();
    let reloader = Arc::new(
        Reloader::new(config, Arc::clone(&snapshot), auth, Arc::clone(&metrics))
            .ending_portal_sessions(portal_sessions),
    );
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
                AdminService(Arc::new(Admin {
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
                })),
            ));
        }
        None => tracing::warn!(
            "no [admin] listener configured: no metrics, no reload or sanctions API (SIGHUP and file changes still reload)"
        ),
    }
    server.run(pingora::server::RunArgs::default());
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

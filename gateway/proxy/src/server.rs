//! Starting the data plane: load and check everything, build the pingora server with a TLS
//! (or explicitly plaintext) listener, and reload the PKS files on SIGHUP.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};

use gerbang_core::{Clock, Config, ConfigErrors, QuotaStore, SystemClock};
use gerbang_policy::{Authenticator, LoginThrottle, Snapshot, load_snapshot};
use gerbang_quota::{Meter, QuotaError, RedisOptions};

use crate::gateway::Gateway;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("configuration is invalid:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot set up the listener: {0}")]
    Listener(String),
    #[error("cannot open the quota store: {0}")]
    Quota(#[from] QuotaError),
}

/// Loads the configuration at `path`, checks it, and serves until SIGTERM or SIGINT; then
/// persists the exact quota counts and returns.
pub fn serve(path: &std::path::Path) -> Result<(), ServeError> {
    let config = gerbang_core::check(path)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let snapshot = Arc::new(ArcSwap::from_pointee(load_snapshot(&config)?));
    let auth = Arc::new(Authenticator::new(LoginThrottle::new(
        config.auth.clone(),
        Arc::clone(&clock),
    )));
    let meter = Arc::new(match config.quota.store {
        QuotaStore::Embedded => {
            Meter::embedded(&config.quota.path, config.quota.block, clock.today())?
        }
        QuotaStore::Redis => Meter::redis(&RedisOptions {
            url: config.quota.redis_url.clone(),
            lease: config.quota.lease,
            emergency_share: config.quota.emergency_share,
            key_prefix: config.quota.key_prefix.clone(),
            instance: config.instance.clone(),
            timeout: config.quota.redis_timeout,
        })?,
        QuotaStore::Memory => {
            tracing::warn!("quota counts are kept in memory only: a restart forgets today's use");
            Meter::memory()
        }
    });
    tracing::info!(
        instance = config.instance.as_str(),
                pks.count = snapshot.load().agreements().len(),
        policy.hash = snapshot.load().engine().hash(),
        users.count = snapshot.load().user_count(),
        listen = %config.listen.address,
        tls = config.listen.tls.is_some(),
        upstream = %config.upstream.address,
        sam.sidecar = config.sam.as_ref().map_or_else(|| "none: card-reader requests are refused".to_string(), |s| s.address.to_string()),
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

    let gateway = Gateway::new(
        &config,
        Arc::clone(&snapshot),
        Arc::clone(&auth),
        Arc::clone(&meter),
        clock,
    );
    let mut service =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "gerbang");
    let address = config.listen.address.to_string();
    match &config.listen.tls {
        Some(tls) => service
            .add_tls(
                &address,
                &tls.cert.display().to_string(),
                &tls.key.display().to_string(),
            )
            .map_err(|e| ServeError::Listener(e.to_string()))?,
        None => {
            tracing::warn!(
                listen = address.as_str(),
                "serving WITHOUT TLS (plaintext = true in the configuration)"
            );
            service.add_tcp(&address);
        }
    }
    server.add_service(service);
    server.add_service(background_service(
        "reload",
        Reloader {
            config,
            snapshot,
            auth,
        },
    ));
    server.run(pingora::server::RunArgs::default());
    // Every request has finished: write exact counts, releasing unused reserved blocks.
    if let Err(e) = meter.close() {
        tracing::error!(error = %e, "could not persist the exact quota counts; the reserved blocks stay counted");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Reloads the PKS files and vocabulary on SIGHUP. A broken edit keeps the running set.
struct Reloader {
    config: Config,
    snapshot: Arc<ArcSwap<Snapshot>>,
    auth: Arc<Authenticator>,
}

impl Reloader {
    fn reload(&self) {
        match load_snapshot(&self.config) {
            Ok(snap) => {
                let (pks, users) = (snap.agreements().len(), snap.user_count());
                let hash = snap.engine().hash().to_string();
                self.snapshot.store(Arc::new(snap));
                self.auth.clear_cache();
                tracing::info!(
                    pks.count = pks,
                    users.count = users,
                    policy.hash = hash.as_str(),
                    "reloaded PKS files and policies"
                );
            }
            Err(errors) => {
                tracing::error!("reload refused, the previous PKS set stays in force:\n{errors}");
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::error!("cannot listen for SIGHUP; reload needs a restart");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => self.reload(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

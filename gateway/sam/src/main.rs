//! `gerbang-sam`: the SAM-validation sidecar. Loads the PKS files, binds loopback (and
//! optionally a Unix socket), prints `gerbang-sam listening on http://ADDR` once ready
//! (tests and the demo read it to learn the port), and serves until SIGTERM or SIGINT.
//! SIGHUP reloads the PKS files and the sanctions at once; they are also watched for changes.
//! Under systemd (`Type=notify`) it says READY=1 once listening, RELOADING=1 … READY=1
//! around a reload, STOPPING=1 on a stop, and pings the watchdog when `WatchdogSec=` is set
//! (`gerbang_core::systemd`).
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Parser;
use gerbang_core::{Clock, SystemClock};
use gerbang_sam::{
    RedisUrl, Settings, Sidecar, check_key_prefix, check_redis_timeout, check_skew, parse_listen,
};
use tokio::signal::unix::{SignalKind, signal};

/// Validates card-reader requests for the Gerbang gateway: Ed25519 signature, freshness,
/// replay, SAM activation, binding to the Pengguna, PKS validity and the fingerprint result.
#[derive(Debug, Parser)]
#[command(name = "gerbang-sam", version)]
struct Args {
    /// Settings file; the flags below override it. Without it and without --pks-dir:
    /// config/sam/sidecar.toml in the working directory, else /etc/gerbang/sam/sidecar.toml.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Loopback `IP:port` to listen on; port 0 picks a free port (default 127.0.0.1:7443).
    #[arg(long)]
    listen: Option<String>,
    /// Also listen on this Unix socket.
    #[arg(long)]
    unix_socket: Option<PathBuf>,
    /// Directory of PKS files (required without --config).
    #[arg(long)]
    pks_dir: Option<PathBuf>,
    /// Element vocabulary file (default: the embedded one).
    #[arg(long)]
    vocabulary: Option<PathBuf>,
    /// The sanctions file (art. 45), the gateway's `[policy] sanksi` (default: none).
    #[arg(long)]
    sanksi: Option<PathBuf>,
    /// Allowed clock difference with a reader, in seconds (default 30).
    #[arg(long)]
    skew_secs: Option<u32>,
    /// Share the replay cache with the other instances' sidecars through this Redis
    /// (`redis://host:port/db` or `redis+sentinel://host:port,…/master[/db]`); a URL with a
    /// password belongs in the settings file, not on a command line others can read.
    #[arg(long)]
    redis_url: Option<String>,
    /// Prefix of the Redis keys (default `gerbang:`).
    #[arg(long)]
    redis_key_prefix: Option<String>,
    /// Time budget of one Redis call, in milliseconds (default 200).
    #[arg(long)]
    redis_timeout_ms: Option<u64>,
}

/// Where the Debian package installs the settings.
const INSTALLED_SETTINGS: &str = "/etc/gerbang/sam/sidecar.toml";

fn settings(args: Args) -> Result<Settings> {
    let mut settings = match (&args.config, &args.pks_dir) {
        (Some(path), _) => Settings::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        (None, Some(dir)) => Settings::new(dir.clone()),
        (None, None) => {
            let path = gerbang_core::default_config_path(
                Path::new("config/sam/sidecar.toml"),
                Path::new(INSTALLED_SETTINGS),
            );
            Settings::load(&path).map_err(|e| {
                anyhow::anyhow!(
                    "{e}\n(no --config or --pks-dir given: the settings file used was {})",
                    path.display()
                )
            })?
        }
    };
    if let Some(dir) = args.pks_dir {
        settings.pks_dir = dir;
    }
    if let Some(listen) = args.listen {
        settings.listen = parse_listen(&listen).map_err(|e| anyhow::anyhow!("--listen: {e}"))?;
    }
    if let Some(path) = args.unix_socket {
        settings.unix_socket = Some(path);
    }
    if let Some(v) = args.vocabulary {
        settings.vocabulary = Some(v);
    }
    if let Some(path) = args.sanksi {
        settings.sanctions = Some(path);
    }
    if let Some(skew) = args.skew_secs {
        settings.skew_secs = check_skew(skew).map_err(|e| anyhow::anyhow!("--skew-secs: {e}"))?;
    }
    if let Some(url) = args.redis_url {
        settings.redis_url =
            Some(RedisUrl::parse(&url).map_err(|e| anyhow::anyhow!("--redis-url: {e}"))?);
    }
    if let Some(prefix) = args.redis_key_prefix {
        settings.redis_key_prefix =
            check_key_prefix(&prefix).map_err(|e| anyhow::anyhow!("--redis-key-prefix: {e}"))?;
    }
    if let Some(ms) = args.redis_timeout_ms {
        settings.redis_timeout =
            check_redis_timeout(ms).map_err(|e| anyhow::anyhow!("--redis-timeout-ms: {e}"))?;
    }
    Ok(settings)
}

/// Where the replay cache is, for the start line (no credentials).
fn replay_cache(settings: &Settings) -> String {
    match settings.redis_url.as_ref().map(RedisUrl::target) {
        None => "embedded (this process only)".into(),
        Some(Ok(target)) => format!(
            "{} under the key prefix `{}`",
            target.describe(),
            settings.redis_key_prefix
        ),
        Some(Err(_)) => "redis".into(),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let settings = settings(Args::parse())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sidecar = Sidecar::bind(&settings, clock).await?;
    let addr = sidecar.local_addr().context("reading the bound address")?;
    let state = sidecar.state();
    let registry = state.validator().registry();
    tracing::info!(
        pks.dir = %settings.pks_dir.display(),
        pks.count = registry.pks_count(),
        sams.count = registry.sam_count(),
        users.count = registry.user_count(),
        sanctions.count = registry.sanction_count(),
        sanctions.file = ?settings.sanctions,
        skew_secs = settings.skew_secs,
        unix_socket = ?settings.unix_socket,
        replay.cache = %replay_cache(&settings),
        "started"
    );
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "gerbang-sam listening on http://{addr}").context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);
    // Loaded and listening: what a `Type=notify` unit waits for.
    gerbang_core::systemd::ready(&state.status());
    if let Some(every) = gerbang_core::systemd::watchdog_interval() {
        // On the runtime that serves: if it is wedged, the pings stop and systemd restarts us.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                gerbang_core::systemd::watchdog();
            }
        });
    }

    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let reloader = Arc::clone(&state);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let s = Arc::clone(&reloader);
            let _ = tokio::task::spawn_blocking(move || s.reload("SIGHUP")).await;
        }
    });
    sidecar
        .serve(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            gerbang_core::systemd::stopping("stopping: finishing the validations in flight");
        })
        .await;
    tracing::info!("stopped");
    Ok(())
}

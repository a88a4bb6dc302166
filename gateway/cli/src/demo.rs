//! `gerbang demo`: the whole stack on this machine with a guided tour.
//!
//! Starts `dwh-sim`, the SAM sidecar `gerbang-sam` (when the configuration has a `[sam]`
//! section) and `gerbang serve` as children, walks through the rules the gateway enforces
//! with real requests from the registered (and unregistered) loopback addresses, prints
//! each as a `curl` command with the gateway's answer, and keeps serving until Ctrl-C. The
//! children never outlive the demo: they are killed on every way out.

mod children;
mod expect;
mod http;
mod json;
mod printout;
mod setup;
mod tour;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use gerbang_core::{Config, SidecarAddress};
use gerbang_sam::ReaderKey;
use tokio::signal::unix::{Signal, SignalKind, signal};

use children::{Children, start_gateway, start_sidecar, start_sim};
use http::{Api, Sim};
use printout::{shown, try_it};
use setup::{ensure_certs, ensure_secret, log_dir, port_free};
use tour::Tour;

/// Every demo User ID's password (the example PKS files hash it).
const PASSWORD: &str = "gerbang-demo";
/// Size of the simulated population.
const PEOPLE: &str = "100000";
/// How long dwh-sim may take to generate its population and bind.
const SIM_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the SAM sidecar may take to load the PKS files and bind.
const SAM_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The demo card reader's key, relative to the configuration's directory: a published,
/// development-only key (see the file's header).
const DEMO_READER_KEY: &str = "sam/DEV-ONLY-demo-reader.key";
/// The sidecar's settings, relative to the configuration's directory.
const SIDECAR_SETTINGS: &str = "sam/sidecar.toml";
/// How long the gateway may take to load its configuration and listen.
const GATEWAY_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one tour request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Unbroken strings longer than this (photos, biometrics in base64) are shortened when
/// printed; text with spaces (the refusal reasons) is printed whole.
const LONG_STRING: usize = 64;

/// Runs the demo until Ctrl-C (or until a child exits on its own).
pub fn run(config_path: &Path) -> Result<ExitCode> {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            eprintln!("the demo needs a valid configuration; nothing was started");
            return Ok(ExitCode::FAILURE);
        }
    };
    ensure_certs(&config)?;
    ensure_secret(
        config.admin.as_ref().and_then(|a| a.token_file.as_ref()),
        "admin token",
    )?;
    if std::env::var_os(gerbang_audit::AUDIT_KEY_ENV).is_none() {
        ensure_secret(
            config.audit.as_ref().and_then(|a| a.key_file.as_ref()),
            "audit key",
        )?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(demo(config_path, &config))
}

/// How the demo ended, when not by an error.
enum Outcome {
    Stopped(&'static str),
    ChildExited(String),
}

async fn demo(config_path: &Path, config: &Config) -> Result<ExitCode> {
    // Installed before any child starts, so an early Ctrl-C still cleans up. The children
    // run in their own process group: a terminal's Ctrl-C reaches only the demo, which
    // then stops them itself (and reports a child that exits on its own as news).
    let mut stops = [
        (
            "Ctrl-C",
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        ),
        (
            "SIGTERM",
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        ),
        (
            "SIGHUP",
            signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        ),
    ];
    let mut children = Children::default();
    let outcome = tokio::select! {
        r = stack(config_path, config, &mut children) => r,
        name = stop_signal(&mut stops) => Ok(Outcome::Stopped(name)),
    };
    children.shutdown();
    match outcome {
        Ok(Outcome::Stopped(name)) => {
            println!("\n{name}: the demo's processes are stopped. Sampai jumpa!");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::ChildExited(message)) => {
            eprintln!("\n{message}\nthe demo stopped everything");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e),
    }
}

async fn stop_signal(stops: &mut [(&'static str, Signal); 3]) -> &'static str {
    let [(a, sa), (b, sb), (c, sc)] = stops;
    tokio::select! {
        _ = sa.recv() => a,
        _ = sb.recv() => b,
        _ = sc.recv() => c,
    }
}

/// Starts both processes, runs the tour, and waits for a child to exit.
async fn stack(config_path: &Path, config: &Config, children: &mut Children) -> Result<Outcome> {
    let exe = std::env::current_exe().context("locating the gerbang binary")?;
    let bin_dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
    let sim_bin = bin_dir.join("dwh-sim");
    if !sim_bin.is_file() {
        bail!(
            "{} not found: build it beside gerbang with `cargo build --bins` (or run `make demo`)",
            shown(&sim_bin)
        );
    }
    let logs = log_dir(bin_dir);
    let sim_log = logs.join("demo-dwh-sim.log");
    let sam_log = logs.join("demo-gerbang-sam.log");
    let gateway_log = logs.join("demo-gateway.log");

    port_free(config.upstream.address, "dwh-sim (upstream.address)")?;
    port_free(config.listen.address, "the gateway (listen.address)")?;
    if let Some(SidecarAddress::Tcp(addr)) = config.sam.as_ref().map(|s| &s.address) {
        port_free(*addr, "the SAM sidecar (sam.address)")?;
    }

    println!(
        "starting dwh-sim on {} with {PEOPLE} synthetic people (log: {})",
        config.upstream.address,
        shown(&sim_log)
    );
    let sim_addr = start_sim(&sim_bin, config.upstream.address, &sim_log, children).await?;
    let config_dir = config_path.parent().unwrap_or(Path::new("."));
    let mut sam_ready_at = 0;
    if let Some(sam) = &config.sam {
        println!(
            "starting the SAM sidecar on {} (log: {})",
            sam.address,
            shown(&sam_log)
        );
        start_sidecar(
            &bin_dir.join("gerbang-sam"),
            &config_dir.join(SIDECAR_SETTINGS),
            &sam.address,
            &sam_log,
            children,
        )
        .await?;
        sam_ready_at = chrono::Utc::now().timestamp();
    } else {
        println!("no [sam] section in the configuration: card-reader requests will be refused");
    }
    println!(
        "starting the gateway on {} (log: {})",
        config.listen.address,
        shown(&gateway_log)
    );
    start_gateway(
        &exe,
        config_path,
        config.listen.address,
        &gateway_log,
        children,
    )
    .await?;
    println!("all are up.");

    let sim = Sim::new(sim_addr)?;
    let api = Api::new(config)?;
    let key_path = config_dir.join(DEMO_READER_KEY);
    // The published demo key comes out of git readable by everyone, and a reader refuses a
    // key file others can read: owner-only, as `gerbang sam keygen` writes one. (If this
    // fails, the load below says why.)
    let _ = std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    );
    let reader = match (&config.sam, ReaderKey::load(&key_path)) {
        (Some(_), Ok(key)) => Some(key),
        (Some(_), Err(e)) => {
            println!("(no card-reader steps: {e})");
            None
        }
        (None, _) => None,
    };
    let mut tour = Tour {
        api,
        sim,
        reader,
        sam_ready_at,
        step: 0,
        results: Vec::new(),
    };
    let samples = tour.run().await?;
    tour.summary();
    try_it(&tour, config, &samples, &gateway_log, &sim_log);

    Ok(Outcome::ChildExited(children.first_exit().await))
}

//! `gerbang demo`: the whole stack on this machine with a guided tour.
//!
//! Starts `dwh-sim`, the SAM sidecar `gerbang-sam` (when the configuration has a `[sam]`
//! section) and `gerbang serve` as children, walks through the rules the gateway enforces
//! with real requests from the registered (and unregistered) loopback addresses, prints
//! each as a `curl` command with the gateway's answer, and keeps serving until Ctrl-C. The
//! children never outlive the demo: they are killed on every way out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use gerbang_core::{Config, SidecarAddress, UserStatus};
use gerbang_sam::{Biometric, ReaderKey};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

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

/// Generates development certificates where the configuration expects them, if missing.
fn ensure_certs(config: &Config) -> Result<()> {
    let Some(tls) = &config.listen.tls else {
        return Ok(());
    };
    if tls.cert.is_file() && tls.key.is_file() {
        return Ok(());
    }
    let dir = tls
        .cert
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    println!(
        "no TLS certificate at {}: generating development certificates in {}",
        shown(&tls.cert),
        shown(dir)
    );
    crate::certs::dev(dir, false).with_context(|| {
        format!(
            "generating development certificates (to replace a partial set: `gerbang certs dev --dir {} --force`)",
            shown(dir)
        )
    })?;
    if !(tls.cert.is_file() && tls.key.is_file()) {
        bail!(
            "the configuration names {} and {}, but `gerbang certs dev` writes server.pem and server.key",
            shown(&tls.cert),
            shown(&tls.key)
        );
    }
    Ok(())
}

/// Writes a random secret (the admin token, the audit key) where the configuration expects
/// one, if missing, readable by this user only.
fn ensure_secret(path: Option<&std::path::PathBuf>, what: &str) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    if path.is_file() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", shown(dir)))?;
    }
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing the {what} {}", shown(path)))?;
    std::io::Write::write_all(&mut file, token.as_bytes())?;
    println!("wrote a random {what} to {}", shown(path));
    Ok(())
}

/// The child processes. Dropping a `Child` kills it (`kill_on_drop`); `shutdown` also
/// waits for them.
#[derive(Default)]
struct Children {
    sim: Option<Child>,
    sam: Option<Child>,
    gateway: Option<Child>,
}

impl Children {
    async fn shutdown(&mut self) {
        for (name, slot) in [
            ("gateway", &mut self.gateway),
            ("SAM sidecar", &mut self.sam),
            ("dwh-sim", &mut self.sim),
        ] {
            let Some(mut child) = slot.take() else {
                continue;
            };
            if let Ok(Some(_)) = child.try_wait() {
                continue;
            }
            if let Err(e) = child.start_kill() {
                eprintln!("could not stop {name}: {e}");
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                eprintln!("{name} did not stop within 5 s");
            }
        }
    }
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
    children.shutdown().await;
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
    let reader = match (
        &config.sam,
        ReaderKey::load(&config_dir.join(DEMO_READER_KEY)),
    ) {
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

    let (which, status, log) = tokio::select! {
        s = wait_child(&mut children.sim) => ("dwh-sim", s, &sim_log),
        s = wait_child(&mut children.sam) => ("the SAM sidecar", s, &sam_log),
        s = wait_child(&mut children.gateway) => ("the gateway", s, &gateway_log),
    };
    let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
    Ok(Outcome::ChildExited(format!(
        "{which} exited on its own ({status}); last lines of {}:\n{}",
        shown(log),
        tail(log, 15)
    )))
}

async fn wait_child(child: &mut Option<Child>) -> std::io::Result<ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

/// Where the children's logs go: beside the binaries (the target directory), or the
/// temporary directory if that is not writable.
fn log_dir(bin_dir: &Path) -> PathBuf {
    let probe = bin_dir.join(".demo-write-test");
    match File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            bin_dir.to_path_buf()
        }
        Err(_) => std::env::temp_dir(),
    }
}

/// Refuses to start when a port the demo needs is taken, naming it.
fn port_free(addr: SocketAddr, what: &str) -> Result<()> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "port {} for {what} is already in use: is another demo, dwh-sim or gateway running? (`ss -ltnp 'sport = :{}'` shows which process)",
            addr,
            addr.port()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} for {what}")),
    }
}

async fn start_sim(
    bin: &Path,
    addr: SocketAddr,
    log: &Path,
    children: &mut Children,
) -> Result<SocketAddr> {
    let mut command = Command::new(bin);
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--people")
        .arg(PEOPLE);
    start_announcing(
        "dwh-sim",
        command,
        Some(addr),
        SIM_READY_TIMEOUT,
        log,
        &mut children.sim,
    )
    .await
}

/// Starts `gerbang-sam` with the example settings, listening where the gateway's `[sam]`
/// section says.
async fn start_sidecar(
    bin: &Path,
    settings: &Path,
    address: &SidecarAddress,
    log: &Path,
    children: &mut Children,
) -> Result<SocketAddr> {
    if !bin.is_file() {
        bail!(
            "{} not found: build it beside gerbang with `cargo build --bins` (or run `make demo`)",
            shown(bin)
        );
    }
    let mut command = Command::new(bin);
    command.arg("--config").arg(settings);
    let port = match address {
        SidecarAddress::Tcp(addr) => {
            command.arg("--listen").arg(addr.to_string());
            Some(*addr)
        }
        SidecarAddress::Unix(path) => {
            command
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--unix-socket")
                .arg(path);
            None
        }
    };
    start_announcing(
        "gerbang-sam",
        command,
        port,
        SAM_READY_TIMEOUT,
        log,
        &mut children.sam,
    )
    .await
}

/// Starts a child that prints `<name> listening on http://ADDR` once ready, and waits for
/// that line.
async fn start_announcing(
    name: &str,
    mut command: Command,
    addr: Option<SocketAddr>,
    ready_timeout: Duration,
    log: &Path,
    slot: &mut Option<Child>,
) -> Result<SocketAddr> {
    let log_file = File::create(log).with_context(|| format!("creating {}", shown(log)))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .env("NO_COLOR", "1")
        .process_group(0)
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let child = slot.insert(child);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("{name}'s standard output was not captured"))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(ready_timeout, lines.next_line()).await;
    let line = match first {
        Err(_) => bail!(
            "{name} did not report ready within {} s; last lines of {}:\n{}",
            ready_timeout.as_secs(),
            shown(log),
            tail(log, 10)
        ),
        Ok(Err(e)) => return Err(e).with_context(|| format!("reading {name}'s output")),
        Ok(Ok(None)) => {
            let status = child
                .wait()
                .await
                .map_or_else(|e| e.to_string(), |s| s.to_string());
            let log_tail = tail(log, 10);
            let hint = match addr {
                Some(addr) if log_tail.contains("in use") => format!(
                    "port {} is already in use (another {name} or demo?)",
                    addr.port()
                ),
                _ => "it stopped before it was ready".to_string(),
            };
            bail!(
                "{name} exited ({status}): {hint}; last lines of {}:\n{log_tail}",
                shown(log)
            );
        }
        Ok(Ok(Some(line))) => line,
    };
    let listening = line
        .strip_prefix(&format!("{name} listening on http://"))
        .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        .ok_or_else(|| anyhow!("unexpected first line from {name}: {line:?}"))?;
    // Keep draining its standard output so it can never block on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(listening)
}

async fn start_gateway(
    exe: &Path,
    config_path: &Path,
    addr: SocketAddr,
    log: &Path,
    children: &mut Children,
) -> Result<()> {
    let log_file = File::create(log).with_context(|| format!("creating {}", shown(log)))?;
    let log_out = log_file
        .try_clone()
        .with_context(|| format!("opening {}", shown(log)))?;
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(log_out)
        .stderr(log_file)
        .env("NO_COLOR", "1")
        .process_group(0)
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("starting {} serve", shown(exe)))?;
    let child = children.gateway.insert(child);

    let probe = loopback_for(addr);
    let deadline = Instant::now() + GATEWAY_READY_TIMEOUT;
    let mut backoff = Duration::from_millis(10);
    loop {
        if let Some(status) = child.try_wait().context("checking on the gateway")? {
            bail!(
                "the gateway exited ({status}) before it listened on {addr}; last lines of {}:\n{}",
                shown(log),
                tail(log, 20)
            );
        }
        if tokio::net::TcpStream::connect(probe).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the gateway did not accept connections on {addr} within {} s; last lines of {}:\n{}",
                GATEWAY_READY_TIMEOUT.as_secs(),
                shown(log),
                tail(log, 20)
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(250));
    }
}

/// The address to connect to for a listening address (a wildcard means "this host").
fn loopback_for(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The last `n` lines of a log file, indented.
fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            if lines.is_empty() {
                return "    (empty)".to_string();
            }
            lines[start..]
                .iter()
                .map(|l| format!("    {}", strip_ansi(l)))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => format!("    (could not read it: {e})"),
    }
}

/// Removes terminal colour codes (tracing colours its output even into files).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A path as the user would type it: relative to the working directory when inside it.
fn shown(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).ok().or_else(|| {
        // A file not yet written: canonicalize its directory.
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty())?;
        Some(std::fs::canonicalize(parent).ok()?.join(path.file_name()?))
    });
    let cwd = std::env::current_dir().ok();
    match (absolute, cwd) {
        (Some(abs), Some(cwd)) => match abs.strip_prefix(&cwd) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => abs.display().to_string(),
        },
        (Some(abs), None) => abs.display().to_string(),
        _ => lexical(path).display().to_string(),
    }
}

/// `a/b/../c` as `a/c`, for paths that do not exist yet.
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The simulator's test hooks.
struct Sim {
    base: String,
    client: reqwest::Client,
}

impl Sim {
    fn new(addr: SocketAddr) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: format!("http://{addr}"),
            client,
        })
    }

    async fn get(&self, path_and_query: &str) -> Result<String> {
        let url = format!("{}{path_and_query}", self.base);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("reading GET {url}"))?;
        if !status.is_success() {
            bail!("GET {url}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    async fn sample(&self, kind: &str, n: usize) -> Result<Vec<String>> {
        let body = self
            .get(&format!("/__sim/sample?kind={kind}&n={n}"))
            .await?;
        let v: Value = serde_json::from_str(&body).context("dwh-sim sample is not JSON")?;
        let niks: Vec<String> = v
            .get("nik")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if niks.is_empty() {
            bail!("dwh-sim gave no sample NIK of kind {kind}");
        }
        Ok(niks)
    }

    /// The full record as the simulator holds it (raw JSON object).
    async fn record(&self, nik: &str) -> Result<String> {
        self.get(&format!("/__sim/record?nik={nik}")).await
    }

    /// Data requests the simulator has received.
    async fn requests(&self) -> Result<u64> {
        let body = self.get("/__sim/stats").await?;
        let v: Value = serde_json::from_str(&body).context("dwh-sim stats are not JSON")?;
        v.get("requests")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("dwh-sim stats without `requests`: {body}"))
    }
}

/// One person of the simulated population, as the tour uses them.
struct Person {
    nik: String,
    name: String,
    /// `dd-MM-yyyy`, as clients send dates.
    birth_date: String,
    raw: String,
}

impl Person {
    async fn fetch(sim: &Sim, nik: &str) -> Result<Self> {
        let raw = sim.record(nik).await?;
        let v: Value = serde_json::from_str(&raw).context("dwh-sim record is not JSON")?;
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("dwh-sim record of {nik} has no {k}"))
        };
        let name = text("NAMA_LGKP")?;
        let iso = text("TGL_LHR")?;
        let birth_date = match iso.split('-').collect::<Vec<_>>()[..] {
            [y, m, d] => format!("{d}-{m}-{y}"),
            _ => bail!("dwh-sim record of {nik}: TGL_LHR {iso:?} is not yyyy-MM-dd"),
        };
        Ok(Self {
            nik: nik.to_string(),
            name,
            birth_date,
            raw,
        })
    }
}

/// The gateway as a Pengguna reaches it: one client per source address.
struct Api {
    scheme: &'static str,
    port: u16,
    connect: SocketAddr,
    ca: Option<(reqwest::Certificate, String)>,
    clients: BTreeMap<IpAddr, reqwest::Client>,
}

impl Api {
    fn new(config: &Config) -> Result<Self> {
        let connect = loopback_for(config.listen.address);
        let ca = match &config.listen.tls {
            Some(tls) => {
                let path = tls.cert.parent().unwrap_or(Path::new(".")).join("ca.pem");
                let pem = std::fs::read(&path).with_context(|| {
                    format!(
                        "reading the CA that signed the gateway's certificate ({})",
                        shown(&path)
                    )
                })?;
                let cert = reqwest::Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", shown(&path)))?;
                Some((cert, shown(&path)))
            }
            None => None,
        };
        Ok(Self {
            scheme: if ca.is_some() { "https" } else { "http" },
            port: connect.port(),
            connect,
            ca,
            clients: BTreeMap::new(),
        })
    }

    fn url(&self, instansi: &str, service: &str) -> String {
        format!(
            "{}://localhost:{}/dukcapil/get_json/{instansi}/{service}",
            self.scheme, self.port
        )
    }

    fn client(&mut self, from: IpAddr) -> Result<reqwest::Client> {
        if let Some(c) = self.clients.get(&from) {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .local_address(from)
            // The certificate names localhost; always reach the configured listener.
            .resolve("localhost", self.connect)
            .timeout(REQUEST_TIMEOUT);
        if let Some((cert, _)) = &self.ca {
            builder = builder.add_root_certificate(cert.clone());
        }
        let client = builder
            .build()
            .with_context(|| format!("building an HTTP client bound to {from}"))?;
        self.clients.insert(from, client.clone());
        Ok(client)
    }

    async fn send(&mut self, call: &Call) -> Result<(u16, String)> {
        let client = self.client(call.from)?;
        let mut request = client
            .post(self.url(call.instansi, call.service))
            .header("Content-Type", "application/json")
            .body(call.body.clone());
        for (name, value) in &call.headers {
            request = request.header(*name, value.as_str());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok((status, body))
    }

    /// The same request as a ready-to-paste curl command.
    fn curl(&self, call: &Call) -> String {
        let mut s = format!("curl -s --interface {}", call.from);
        if let Some((_, path)) = &self.ca {
            let _ = write!(s, " --cacert {}", shell_quote(path));
        }
        for (name, value) in &call.headers {
            let _ = write!(s, " -H {}", shell_quote(&format!("{name}: {value}")));
        }
        let _ = write!(
            s,
            " \\\n    -H 'Content-Type: application/json' \\\n    -d {} \\\n    {}",
            shell_quote(&call.body),
            self.url(call.instansi, call.service)
        );
        s
    }
}

/// One request of the tour.
struct Call {
    from: IpAddr,
    instansi: &'static str,
    service: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Call {
    fn new(from: [u8; 4], instansi: &'static str, service: &'static str, body: String) -> Self {
        Self {
            from: IpAddr::V4(Ipv4Addr::from(from)),
            instansi,
            service,
            headers: Vec::new(),
            body,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// What a step should be answered with.
enum Expect {
    /// A refusal with this `RESPON` text (compared case-insensitively, as clients do).
    Respon(&'static str),
    /// Records carrying a NIK, none of them holding any of these fields.
    Records { absent: &'static [&'static str] },
    /// Only `Sesuai` / `Tidak Sesuai` verdicts, no values.
    Verdicts,
}

impl Expect {
    fn describe(&self) -> String {
        match self {
            Self::Respon(text) => format!("RESPON \"{text}\""),
            Self::Records { .. } => "records".to_string(),
            Self::Verdicts => "verdicts only".to_string(),
        }
    }

    /// `Ok` when the answer is what the step expects, else why not.
    fn judge(&self, body: &str) -> std::result::Result<(), String> {
        let v: Value =
            serde_json::from_str(body).map_err(|_| "the answer is not JSON".to_string())?;
        let content = v
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| "the answer has no `content` list".to_string())?;
        let respon = content
            .first()
            .and_then(|r| r.get("RESPON"))
            .and_then(Value::as_str);
        match self {
            Self::Respon(want) => match respon {
                Some(got) if got.eq_ignore_ascii_case(want) => Ok(()),
                Some(got) => Err(format!("got RESPON \"{got}\"")),
                None => Err("got data instead of a refusal".to_string()),
            },
            Self::Records { absent } => {
                if let Some(got) = respon {
                    return Err(format!("got RESPON \"{got}\""));
                }
                if content.is_empty() {
                    return Err("got no records".to_string());
                }
                for record in content {
                    if record.get("NIK").is_none() {
                        return Err("a record has no NIK".to_string());
                    }
                    if let Some(f) = absent.iter().find(|f| record.get(**f).is_some()) {
                        return Err(format!("{f} came through; it should have been removed"));
                    }
                }
                Ok(())
            }
            Self::Verdicts => {
                if let Some(got) = respon {
                    return Err(format!("got RESPON \"{got}\""));
                }
                let Some(Value::Object(first)) = content.first() else {
                    return Err("got no verdicts".to_string());
                };
                if first.is_empty() {
                    return Err("got no verdicts".to_string());
                }
                for record in content {
                    let Value::Object(fields) = record else {
                        return Err("a verdict is not an object".to_string());
                    };
                    for (k, val) in fields {
                        let verdict = val.as_str().is_some_and(|s| {
                            s.starts_with("Sesuai") || s.starts_with("Tidak Sesuai")
                        });
                        if !verdict {
                            return Err(format!("{k} carries a value ({val}), not a verdict"));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Sample NIKs the tour used, for "Try it yourself".
struct Samples {
    alive: Vec<String>,
    verify: Person,
    search: Person,
    others: Vec<(&'static str, String)>,
}

struct Tour {
    api: Api,
    sim: Sim,
    /// The demo card reader's key, when the sidecar runs.
    reader: Option<ReaderKey>,
    /// The Unix second the sidecar was ready in: it refuses timestamps up to the second it
    /// started (an earlier run's nonces are unknown to it), so readers sign after this.
    sam_ready_at: i64,
    step: usize,
    /// (step number and title, why it did not go as expected).
    results: Vec<(String, Option<String>)>,
}

impl Tour {
    async fn run(&mut self) -> Result<Samples> {
        let alive = self.sim.sample("alive", 3).await?;
        let [a0, a1, a2] = [0, 1, 2].map(|i| alive.get(i).cloned().unwrap_or_default());
        let first = Person::fetch(&self.sim, &a0).await?;
        let search = Person::fetch(&self.sim, &a1).await?;
        let mut others = Vec::new();
        for kind in ["female", "deceased", "duplicate", "inactive"] {
            match self.sim.sample(kind, 1).await {
                Ok(n) => others.extend(n.into_iter().next().map(|n| (kind, n))),
                Err(e) => println!("(no {kind} sample: {e:#})"),
            }
        }
        println!(
            "\n=== Tur Gerbang / Gerbang tour ===\nsample NIKs from dwh-sim: {}",
            alive.join(", ")
        );

        // a. An allowed lookup, filtered to the PKS.
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("user_id", "rsud_cth_01"),
                ("password", PASSWORD),
            ]),
        );
        let answer = self
            .step(
                "Akses sah / an allowed CALL_NIK: rsud_cth_01 from its registered IP LAN 127.0.0.2",
                &call,
                Expect::Records {
                    absent: &["AGAMA", "PNYDNG_CACAT", "SIDIK_JARI", "IRIS_MATA", "TANDA_TANGAN"],
                },
                "Only the elements in RSUD Kota Contoh's PKS come through (art. 5); protected data (UU 24/2013 art. 84) never does.",
            )
            .await;
        if let Some(answer) = answer {
            compare_fields(&first.raw, &answer);
        }

        // b. Wrong password.
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("user_id", "rsud_cth_01"),
                ("password", "salah-sandi"),
            ]),
        );
        self.step(
            "Sandi salah / wrong password",
            &call,
            Expect::Respon("Login Gagal"),
            "Never says whether the User ID or the password was wrong; failures are counted per address and per User ID.",
        )
        .await;

        // c. Right credentials, wrong address.
        let creds = body(&[
            ("nik", &first.nik),
            ("user_id", "rsud_cth_01"),
            ("password", PASSWORD),
        ]);
        let call = Call::new([127, 0, 0, 3], "RSUD_CTH", "CALL_NIK", creds.clone());
        self.step(
            "Alamat milik User ID lain / right credentials from another User ID's address (127.0.0.3 is rsud_cth_02's)",
            &call,
            Expect::Respon("IP Address Tidak Sesuai"),
            "A User ID is accepted only from its own IP LAN (Permendagri 102/2019 art. 28, 32).",
        )
        .await;
        let call = Call::new([127, 0, 0, 9], "RSUD_CTH", "CALL_NIK", creds.clone());
        self.step(
            "Alamat tak terdaftar / right credentials from an unregistered address 127.0.0.9",
            &call,
            Expect::Respon("IP Client Tidak Terdaftar"),
            "Outside every registered IP LAN: refused before any password work.",
        )
        .await;

        // d. Spoofed X-Forwarded-For.
        let call = Call::new([127, 0, 0, 9], "RSUD_CTH", "CALL_NIK", creds.clone())
            .header("X-Forwarded-For", "127.0.0.2");
        self.step(
            "Header palsu / X-Forwarded-For: 127.0.0.2 sent from 127.0.0.9",
            &call,
            Expect::Respon("IP Client Tidak Terdaftar"),
            "The source address comes from the TCP connection; X-Forwarded-For is never trusted.",
        )
        .await;

        // e. A body ip_user that is not the real source.
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("user_id", "rsud_cth_01"),
                ("password", PASSWORD),
                ("ip_user", "10.20.30.40"),
            ]),
        );
        self.step(
            "ip_user palsu / body ip_user 10.20.30.40 from 127.0.0.2",
            &call,
            Expect::Respon("IP Address Tidak Sesuai"),
            "The body's ip_user grants nothing; one that differs from the real source is refused.",
        )
        .await;

        // f. Deactivated User ID.
        let call = Call::new(
            [127, 0, 0, 3],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("user_id", "rsud_cth_02"),
                ("password", PASSWORD),
            ]),
        );
        self.step(
            "User ID dinonaktifkan / deactivated User ID rsud_cth_02 from its own 127.0.0.3",
            &call,
            Expect::Respon("User ID Tidak Aktif"),
            "Deactivation is an art. 45 sanction: one line in the PKS file (status = \"nonaktif\").",
        )
        .await;

        // g. Expired PKS.
        let call = Call::new(
            [127, 0, 0, 8],
            "KSP_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("user_id", "ksp_cth"),
                ("password", PASSWORD),
            ]),
        );
        self.step(
            "PKS berakhir / expired agreement: ksp_cth (PKS ended 2024-11-09) from 127.0.0.8",
            &call,
            Expect::Respon("Akses di Luar Waktu yang Diizinkan"),
            "Outside the PKS period (jangka waktu) everything is refused.",
        )
        .await;

        // h. Channel not in the PKS.
        let call = Call::new(
            [127, 0, 0, 4],
            "BKD_KRA",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("user_id", "bkd_kra_01"),
                ("password", PASSWORD),
            ]),
        );
        self.step(
            "Metode akses tidak ada di PKS / web service not granted: bkd_kra_01 from 127.0.0.4",
            &call,
            Expect::Respon("Akses Tidak Diizinkan oleh PKS"),
            "BKD Karanganyar's PKS grants web_portal and card_reader only, not the web service.",
        )
        .await;

        // h2. The same User ID through its card reader, and the same request replayed.
        self.card_reader_steps(&first.nik).await?;

        // i. Foreign-majority BHI: verification only.
        let verify = Person::fetch(&self.sim, &a2).await?;
        let call = Call::new(
            [127, 0, 0, 6],
            "FINTEK",
            "CALL_NIK",
            body(&[
                ("nik", &verify.nik),
                ("user_id", "fintek_api"),
                ("password", PASSWORD),
            ]),
        );
        self.step(
            "BHI asing: CALL_NIK ditolak / foreign-majority fintech fintek_api asks for data",
            &call,
            Expect::Respon("Akses Tidak Diizinkan oleh PKS"),
            "A BHI with foreign majority ownership may only verify (Permendagri 102/2019 art. 29(4)).",
        )
        .await;
        let call = Call::new(
            [127, 0, 0, 6],
            "FINTEK",
            "CALL_VERIFY_BY_ELEMEN",
            body(&[
                ("NIK", &verify.nik),
                ("USER_ID", "fintek_api"),
                ("PASSWORD", PASSWORD),
                ("TRESHOLD", "90"),
                ("NAMA_LGKP", &verify.name),
                ("TGL_LHR", &verify.birth_date),
            ]),
        );
        self.step(
            "BHI asing: verifikasi / the same fintech verifies a name and birth date",
            &call,
            Expect::Verdicts,
            "Only \"Sesuai\" / \"Tidak Sesuai\" verdicts: no value of the record leaves the gateway.",
        )
        .await;

        // j. Search by elements: law enforcement only.
        let search_body = |user: &str| {
            body(&[
                ("USER_ID", user),
                ("PASSWORD", PASSWORD),
                ("NAMA_LGKP", &search.name),
                ("TGL_LHR", &search.birth_date),
            ])
        };
        let call = Call::new(
            [127, 0, 0, 7],
            "POLDA_CTH",
            "CALL_BY_ELEMEN",
            search_body("polda_cth_reskrim"),
        );
        self.step(
            "Penegak hukum: cari per elemen / law enforcement searches by name + birth date",
            &call,
            Expect::Records { absent: &[] },
            "Search by a combination of elements is given to law enforcement only (art. 31; letter 470/18754).",
        )
        .await;
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_BY_ELEMEN",
            search_body("rsud_cth_01"),
        );
        self.step(
            "Bukan penegak hukum / the same search by the hospital rsud_cth_01",
            &call,
            Expect::Respon("Akses Tidak Diizinkan oleh PKS"),
            "\"Search by name by address\" is not given to anyone else.",
        )
        .await;

        // k. Malformed requests never reach the DWH.
        let before = self.sim.requests().await;
        let province_20 = format!("20{}", first.nik.get(2..).unwrap_or_default());
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &province_20),
                ("user_id", "rsud_cth_01"),
                ("password", PASSWORD),
            ]),
        );
        self.step(
            "NIK tidak valid / province code 20 does not exist",
            &call,
            Expect::Respon("NIK Tidak Sesuai Format Dukcapil"),
            "RESPONSE_DESC says why; a malformed NIK costs no hit and never reaches the DWH.",
        )
        .await;
        let day_35 = format!(
            "{}35{}",
            first.nik.get(..6).unwrap_or_default(),
            first.nik.get(8..).unwrap_or_default()
        );
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &day_35),
                ("user_id", "rsud_cth_01"),
                ("password", PASSWORD),
            ]),
        );
        self.step(
            "NIK tidak valid / birth day 35 (days are 01-31, or 41-71 for women)",
            &call,
            Expect::Respon("NIK Tidak Sesuai Format Dukcapil"),
            "The NIK's structure is checked before anything is forwarded.",
        )
        .await;
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("NIK", &a1),
                ("user_id", "rsud_cth_01"),
                ("password", PASSWORD),
            ]),
        );
        self.step(
            "Kunci ganda / the same key twice: \"nik\" and \"NIK\"",
            &call,
            Expect::Respon("Parameter Tidak Lengkap"),
            "Keys match case-insensitively, so a body naming one twice is ambiguous and refused.",
        )
        .await;
        let after = self.sim.requests().await;
        self.step += 1;
        let title = format!(
            "{}. DWH tidak tersentuh / the DWH saw none of the last three",
            self.step
        );
        println!("\n{title}");
        let why = match (&before, &after) {
            (Ok(b), Ok(a)) => {
                println!("   dwh-sim request counter (GET /__sim/stats): before {b}, after {a}");
                (a != b).then(|| format!("the counter moved from {b} to {a}"))
            }
            (Err(e), _) | (_, Err(e)) => {
                println!("   could not read /__sim/stats: {e:#}");
                Some(format!("could not read the counter: {e:#}"))
            }
        };
        if let Some(why) = &why {
            println!("   !! NOT AS EXPECTED: {why}");
        } else {
            println!("   -> Refused at the gateway: no request reached the DWH.");
        }
        self.results.push((title, why));

        Ok(Samples {
            alive,
            verify,
            search,
            others,
        })
    }

    /// A valid card-reader lookup by bkd_kra_01, the same signed request again, and one
    /// whose fingerprint did not match (art. 24–26; juknis §4).
    async fn card_reader_steps(&mut self, nik: &str) -> Result<()> {
        let Some(key) = &self.reader else {
            return Ok(());
        };
        let now = chrono::Utc::now();
        if now.timestamp() <= self.sam_ready_at {
            // The sidecar started this second; a timestamp of this second is refused.
            let into_second = u64::from(now.timestamp_subsec_millis());
            tokio::time::sleep(Duration::from_millis(1_000 - into_second.min(999))).await;
        }
        let sign = |biometric| {
            crate::reader::sign_lookup(
                key,
                &crate::reader::Lookup {
                    instansi: "BKD_KRA",
                    sam_id: &key.sam_id,
                    user: "bkd_kra_01",
                    password: PASSWORD,
                    nik,
                    biometric,
                    timestamp: None,
                    nonce: None,
                },
            )
        };
        let signed = sign(Biometric::Match)?;
        let no_match = sign(Biometric::NoMatch)?;
        let sam_id = key.sam_id.clone();
        let call = |signed: &crate::reader::SignedLookup| {
            let mut call = Call::new([127, 0, 0, 4], "BKD_KRA", "CALL_NIK", signed.body.clone());
            for (name, value) in &signed.headers {
                call = call.header(name, value);
            }
            call
        };
        self.step(
            &format!("Card reader / bkd_kra_01 through its KTP-el reader {sam_id} (SAM signature, fingerprint matched)"),
            &call(&signed),
            Expect::Records {
                absent: &["AGAMA", "PNYDNG_CACAT", "SIDIK_JARI", "IRIS_MATA", "TANDA_TANGAN"],
            },
            "The SAM sidecar checked the Ed25519 signature, the time, the nonce, that the SAM is active and BKD Karanganyar's, and that the PKS grants card_reader (art. 24-26).",
        )
        .await;
        self.step(
            "Permintaan ulang / the very same signed request sent again",
            &call(&signed),
            Expect::Respon("Validasi Card Reader Gagal: Permintaan Ulang Terdeteksi"),
            "Each nonce is accepted once per SAM: a captured request cannot be replayed.",
        )
        .await;
        self.step(
            "Sidik jari tidak cocok / the reader's 1:1 fingerprint check failed",
            &call(&no_match),
            Expect::Respon("Validasi Card Reader Gagal: Sidik Jari Tidak Cocok"),
            "Without a matched fingerprint a reader gets no data (juknis §4).",
        )
        .await;
        Ok(())
    }

    /// Sends one request and prints it, its answer, and whether it was as expected.
    /// Returns the answer body if there was one.
    async fn step(
        &mut self,
        title: &str,
        call: &Call,
        expect: Expect,
        comment: &str,
    ) -> Option<String> {
        self.step += 1;
        let title = format!("{}. {title}", self.step);
        println!("\n{title}");
        println!("{}", indent(&self.api.curl(call), "   "));
        let (why, answer) = match self.api.send(call).await {
            Err(e) => {
                println!("   request failed: {e:#}");
                (Some(format!("request failed: {e:#}")), None)
            }
            Ok((status, answer)) => {
                let (text, shortened) = pretty(&answer);
                println!("   HTTP {status}");
                println!("{}", indent(&text, "   "));
                if shortened {
                    println!("   (long values shortened here)");
                }
                let why = expect
                    .judge(&answer)
                    .err()
                    .map(|w| format!("expected {}, {w}", expect.describe()));
                (why, Some(answer))
            }
        };
        match &why {
            None => println!("   -> {comment}"),
            Some(why) => println!("   !! NOT AS EXPECTED: {why}"),
        }
        self.results.push((title, why));
        answer
    }

    fn summary(&self) {
        let ok = self.results.iter().filter(|(_, why)| why.is_none()).count();
        println!(
            "\ntour: {ok}/{} steps answered as expected",
            self.results.len()
        );
        for (title, why) in &self.results {
            if let Some(why) = why {
                println!("  !! {title}\n     {why}");
            }
        }
    }
}

/// Step a's point: what the DWH sent versus what reached the Pengguna.
fn compare_fields(record_raw: &str, answer: &str) {
    let sent = top_level_keys(record_raw);
    let passed: BTreeSet<String> = serde_json::from_str::<Value>(answer)
        .ok()
        .and_then(|v| {
            v.get("content")?
                .get(0)?
                .as_object()
                .map(|o| o.keys().cloned().collect())
        })
        .unwrap_or_default();
    let removed: Vec<&str> = sent
        .iter()
        .filter(|k| !passed.contains(*k))
        .map(String::as_str)
        .collect();
    println!(
        "   The DWH (dwh-sim, GET /__sim/record?nik=…) holds {} fields for this NIK; {} came through.",
        sent.len(),
        passed.len()
    );
    println!("   Removed by the gateway: {}", removed.join(", "));
}

/// A JSON object from key/value text pairs, in the given order (duplicates kept).
fn body(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(k));
        out.push(':');
        out.push_str(&json_string(v));
    }
    out.push('}');
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    gerbang_core::push_json_string(&mut out, s);
    out
}

/// Quotes for a POSIX shell.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The keys of a JSON object's top level, in their order.
fn top_level_keys(raw: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut depth = 0usize;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let s = read_string(&mut chars);
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if depth == 1 && chars.peek() == Some(&':') {
                    keys.push(s);
                }
            }
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    keys
}

/// Reads a JSON string's raw text after its opening quote, through the closing quote.
fn read_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut s = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                s.push(c);
                if let Some(n) = chars.next() {
                    s.push(n);
                }
            }
            '"' => break,
            _ => s.push(c),
        }
    }
    s
}

/// Re-indents a JSON text without touching its tokens (numbers stay digit-exact; NIKs
/// exceed 2^53). Long strings are shortened. Returns the text and whether it shortened
/// anything; text that is not JSON comes back as it is.
fn pretty(raw: &str) -> (String, bool) {
    if serde_json::from_str::<Box<serde_json::value::RawValue>>(raw).is_err() {
        return (raw.to_string(), false);
    }
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut shortened = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let s = read_string(&mut chars);
                let n = s.chars().count();
                out.push('"');
                if n > LONG_STRING && !s.contains(' ') {
                    let head: String = s.chars().take(24).collect();
                    let _ = write!(out, "{head}… [{n} chars]");
                    shortened = true;
                } else {
                    out.push_str(&s);
                }
                out.push('"');
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                out.push(c);
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    (out, shortened)
}

/// "Try it yourself": ready-to-paste commands with real sample NIKs.
fn try_it(tour: &Tour, config: &Config, samples: &Samples, gateway_log: &Path, sim_log: &Path) {
    let api = &tour.api;
    let nik = samples
        .alive
        .last()
        .map_or(samples.verify.nik.as_str(), String::as_str);
    let commands = [
        (
            "An allowed CALL_NIK (rsud_cth_01 from 127.0.0.2):",
            Call::new(
                [127, 0, 0, 2],
                "RSUD_CTH",
                "CALL_NIK",
                body(&[
                    ("nik", nik),
                    ("user_id", "rsud_cth_01"),
                    ("password", PASSWORD),
                ]),
            ),
        ),
        (
            "Verification by the foreign-owned fintech (fintek_api from 127.0.0.6); change a value to see \"Tidak Sesuai\":",
            Call::new(
                [127, 0, 0, 6],
                "FINTEK",
                "CALL_VERIFY_BY_ELEMEN",
                body(&[
                    ("NIK", &samples.verify.nik),
                    ("USER_ID", "fintek_api"),
                    ("PASSWORD", PASSWORD),
                    ("TRESHOLD", "90"),
                    ("NAMA_LGKP", &samples.verify.name),
                    ("TGL_LHR", &samples.verify.birth_date),
                ]),
            ),
        ),
        (
            "Search by elements, law enforcement only (polda_cth_reskrim from 127.0.0.7):",
            Call::new(
                [127, 0, 0, 7],
                "POLDA_CTH",
                "CALL_BY_ELEMEN",
                body(&[
                    ("USER_ID", "polda_cth_reskrim"),
                    ("PASSWORD", PASSWORD),
                    ("NAMA_LGKP", &samples.search.name),
                    ("TGL_LHR", &samples.search.birth_date),
                ]),
            ),
        ),
        (
            "A refusal: the right credentials from another User ID's address (127.0.0.4):",
            Call::new(
                [127, 0, 0, 4],
                "RSUD_CTH",
                "CALL_NIK",
                body(&[
                    ("nik", nik),
                    ("user_id", "rsud_cth_01"),
                    ("password", PASSWORD),
                ]),
            ),
        ),
    ];
    println!("\n=== Coba sendiri / Try it yourself ===");
    for (i, (what, call)) in commands.iter().enumerate() {
        println!("\n# {}. {what}", i + 1);
        println!("{}", api.curl(call));
    }
    if let Some(key) = &tour.reader {
        let key_path = config
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join(DEMO_READER_KEY);
        let ca = api.ca.as_ref().map_or(String::new(), |(_, path)| {
            format!(" --ca {}", shell_quote(path))
        });
        println!(
            "\n# {}. A card-reader lookup signed with the demo reader's key {} (add --biometric no_match, or repeat with the --timestamp and --nonce it prints to see a replay refused):",
            commands.len() + 1,
            key.sam_id
        );
        println!(
            "./target/debug/gerbang reader lookup --gateway {}://localhost:{}{ca} --source 127.0.0.4 \\\n    --key {} --user bkd_kra_01 --password {PASSWORD} --nik {nik}",
            api.scheme,
            api.port,
            shell_quote(&shown(&key_path))
        );
    }
    println!("\nEvery demo User ID's password is `{PASSWORD}`. User IDs and their IP LAN:");
    match config.load_agreements() {
        Ok((_, set)) => {
            for pks in &set.agreements {
                for user in &pks.users {
                    let ips: Vec<String> = user.ip_lan.iter().map(|n| n.to_string()).collect();
                    let status = if user.status == UserStatus::Nonaktif {
                        " (nonaktif)"
                    } else {
                        ""
                    };
                    println!(
                        "  {:<18} {:<14} {} [{} .. {}]{status}",
                        user.id,
                        ips.join(", "),
                        pks.nama_pengguna,
                        pks.mulai,
                        pks.sampai
                    );
                }
            }
        }
        Err(e) => println!("  (could not list them: {e})"),
    }
    if !samples.others.is_empty() {
        let list: Vec<String> = samples
            .others
            .iter()
            .map(|(kind, nik)| format!("{kind} {nik}"))
            .collect();
        println!("More sample NIKs: {}", list.join(", "));
    }
    println!(
        "More from dwh-sim: curl '{}/__sim/sample?kind=alive&n=5' (kinds: alive, female, deceased, duplicate, inactive)",
        tour.sim.base
    );
    portal_hint(tour, config, nik);
    println!(
        "Gateway log: {}   dwh-sim log: {}",
        shown(gateway_log),
        shown(sim_log)
    );
    if let Some(admin) = &config.admin {
        println!(
            "\nAdmin listener (loopback): http://{0}/metrics for Prometheus (monitoring/), and with the token:",
            admin.address
        );
        println!("  ./target/debug/gerbang quota show --pengguna rsud-kota-contoh");
        println!(
            "  ./target/debug/gerbang sanksi add --jenis nonaktifkan_user --sasaran rsud_cth_01 --alasan 'uji sanksi'"
        );
        println!("  ./target/debug/gerbang sanksi list      # then: gerbang sanksi lift <id>");
        println!(
            "  Editing config/pks/*.toml or config/sanksi.toml applies within a second; a broken edit is refused and logged."
        );
    }
    println!("\nCtrl-C stops everything.");
}

/// The Web Portal user the example PKS files give the local browser (IP LAN 127.0.0.1).
const PORTAL_USER: &str = "bkd_kra_portal";

/// Where to open the Web Portal and how to log in.
fn portal_hint(tour: &Tour, config: &Config, nik: &str) {
    let ip_lan = config.load_agreements().ok().and_then(|(_, set)| {
        set.agreements
            .iter()
            .flat_map(|p| &p.users)
            .find(|u| u.id == PORTAL_USER)
            .map(|u| {
                u.ip_lan
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
    });
    println!("\n=== Web Portal (read-only, Permendagri 102/2019 art. 30(2)) ===");
    println!(
        "Open {}://{}/portal/ in a browser on this machine{}.",
        tour.api.scheme,
        tour.api.connect,
        if tour.api.scheme == "https" {
            " (the development certificate is not trusted by the browser: accept it once)"
        } else {
            ""
        }
    );
    match ip_lan {
        Some(ip_lan) => println!(
            "Log in as {PORTAL_USER} with password `{PASSWORD}` (BKD Karanganyar's portal account; its IP LAN {ip_lan} is where a local browser connects from)."
        ),
        None => println!(
            "The example portal account {PORTAL_USER} is not in {}: add a User ID whose IP LAN is 127.0.0.1 to a PKS that lists web_portal.",
            shown(&config.pks_dir)
        ),
    }
    println!(
        "Search NIK {nik}: only the PKS elements are shown, and the remaining quota drops. \"Ekspor CSV\", \"Cetak / unduh PDF\", the bulk search and the address form are refused with a page saying why; a second login of the same User ID is refused while the first session lives."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_keeps_numbers_digit_exact() {
        let raw =
            r#"{"content":[{"NIK":9999999999999999999,"A":[],"B":{},"C":"x, y: z"}],"n":1.50}"#;
        let (text, shortened) = pretty(raw);
        assert!(!shortened);
        let want = "{\n  \"content\": [\n    {\n      \"NIK\": 9999999999999999999,\n      \"A\": [],\n      \"B\": {},\n      \"C\": \"x, y: z\"\n    }\n  ],\n  \"n\": 1.50\n}";
        assert_eq!(text, want);
    }

    #[test]
    fn pretty_shortens_long_strings_and_leaves_non_json() {
        let long = "A".repeat(200);
        let (text, shortened) = pretty(&format!(r#"{{"FOTO":"{long}"}}"#));
        assert!(shortened);
        assert!(text.contains("[200 chars]"));
        let reason = "a reason with spaces ".repeat(5);
        let (text, shortened) = pretty(&format!(r#"{{"RESPONSE_DESC":"{reason}"}}"#));
        assert!(!shortened);
        assert!(text.contains(&reason));
        assert_eq!(pretty("not json").0, "not json");
    }

    #[test]
    fn keys_in_order_and_duplicates_kept() {
        assert_eq!(
            top_level_keys(r#"{"b":1,"a":{"x":2},"c":"d:e"}"#),
            ["b", "a", "c"]
        );
        assert_eq!(
            body(&[("nik", "1"), ("NIK", "2")]),
            r#"{"nik":"1","NIK":"2"}"#
        );
    }

    #[test]
    fn paths_that_do_not_exist_yet_are_shown_simplified() {
        assert_eq!(
            lexical(Path::new("/x/config/../certs/./dev/server.pem")),
            Path::new("/x/certs/dev/server.pem")
        );
        assert_eq!(lexical(Path::new("../a/../b")), Path::new("../b"));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("certs/dev/ca.pem"), "certs/dev/ca.pem");
        assert_eq!(shell_quote(r#"{"a":"it's"}"#), r#"'{"a":"it'\''s"}'"#);
    }

    #[test]
    fn judging_answers() {
        let refusal = r#"{"content":[{"RESPON":"Login Gagal","RESPONSE_CODE":"03"}]}"#;
        assert!(Expect::Respon("login gagal").judge(refusal).is_ok());
        assert!(
            Expect::Respon("IP Address Tidak Sesuai")
                .judge(refusal)
                .is_err()
        );
        assert!(Expect::Verdicts.judge(refusal).is_err());
        let record = r#"{"content":[{"NIK":3201014101900001,"NAMA_LGKP":"X"}]}"#;
        assert!(Expect::Records { absent: &["AGAMA"] }.judge(record).is_ok());
        assert!(
            Expect::Records {
                absent: &["NAMA_LGKP"]
            }
            .judge(record)
            .is_err()
        );
        assert!(Expect::Verdicts.judge(record).is_err());
        let verdicts = r#"{"content":[{"NIK":"Sesuai","NAMA_LGKP":"Tidak Sesuai (59)"}]}"#;
        assert!(Expect::Verdicts.judge(verdicts).is_ok());
    }
}

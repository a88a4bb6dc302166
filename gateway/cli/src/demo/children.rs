//! The demo's child processes, through the supervisor (`gerbang-supervise`): each in a
//! process group of its own (a terminal's Ctrl-C reaches only the demo, which then stops
//! them), its output in a log file, killed on drop and by a parent-death signal if the
//! demo itself is killed.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use gerbang_core::SidecarAddress;
use gerbang_supervise::{NotReady, Output, Process, Ready, Signal, Start, Wait};

use super::printout::shown;
use super::{GATEWAY_READY_TIMEOUT, PEOPLE, SAM_READY_TIMEOUT, SIM_READY_TIMEOUT};

/// How often the demo looks whether a child has exited on its own.
const EXIT_POLL: Duration = Duration::from_millis(200);

/// One child and its log.
pub(super) struct Child {
    process: Process,
    /// How the messages name it ("dwh-sim", "the gateway").
    title: &'static str,
    log: PathBuf,
}

/// The child processes; `shutdown` stops them (dropping them would too).
#[derive(Default)]
pub(super) struct Children {
    sim: Option<Child>,
    sam: Option<Child>,
    gateway: Option<Child>,
}

impl Children {
    /// Kills the children, the gateway first, and waits for each at most 5 s.
    pub fn shutdown(&mut self) {
        for (name, slot) in [
            ("gateway", &mut self.gateway),
            ("SAM sidecar", &mut self.sam),
            ("dwh-sim", &mut self.sim),
        ] {
            let Some(mut child) = slot.take() else {
                continue;
            };
            let p = &mut child.process;
            if let Ok(Some(_)) = p.exited() {
                continue;
            }
            if let Err(e) = p.signal(Signal::KILL) {
                eprintln!("could not stop {name}: {e}");
            }
            if p.wait_exit(Wait::up_to(Duration::from_secs(5))).is_err() {
                eprintln!("{name} did not stop within 5 s");
            }
        }
    }

    /// Waits until a child exits on its own; returns a message saying which, how, and the
    /// end of its log.
    pub async fn first_exit(&mut self) -> String {
        loop {
            for child in [&mut self.sim, &mut self.sam, &mut self.gateway]
                .into_iter()
                .flatten()
            {
                let status = match child.process.exited() {
                    Ok(None) => continue,
                    Ok(Some(status)) => status.to_string(),
                    Err(e) => e.to_string(),
                };
                return format!(
                    "{} exited on its own ({status}); last lines of {}:\n{}",
                    child.title,
                    shown(&child.log),
                    log_tail(&child.process, 15)
                );
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }
}

/// The last `n` lines of a child's log, indented.
fn log_tail(p: &Process, n: usize) -> String {
    let tail = p.stderr_tail(n);
    if tail.is_empty() {
        return "    (empty)".to_string();
    }
    super::printout::indent(&tail, "    ")
}

/// Starts a child in its own process group, its output (both streams) in `log`.
fn start(name: &str, mut command: Command, log: &Path) -> Result<Process> {
    command.env("NO_COLOR", "1");
    Ok(
        Start::new(name, command, Output::Combined(log.to_path_buf()))
            .own_process_group()
            .spawn()?,
    )
}

/// Starts dwh-sim with the demo's population; returns where it listens.
pub(super) async fn start_sim(
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
    let process = start("dwh-sim", command, log)?;
    let child = children.sim.insert(Child {
        process,
        title: "dwh-sim",
        log: log.to_path_buf(),
    });
    announced(child, "dwh-sim", Some(addr), SIM_READY_TIMEOUT).await
}

/// Starts `gerbang-sam` with the example settings, listening where the gateway's `[sam]`
/// section says.
pub(super) async fn start_sidecar(
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
    let process = start("gerbang-sam", command, log)?;
    let child = children.sam.insert(Child {
        process,
        title: "the SAM sidecar",
        log: log.to_path_buf(),
    });
    announced(child, "gerbang-sam", port, SAM_READY_TIMEOUT).await
}

/// Waits for a child that prints `<name> listening on http://ADDR` once ready.
async fn announced(
    child: &mut Child,
    name: &str,
    addr: Option<SocketAddr>,
    ready_timeout: Duration,
) -> Result<SocketAddr> {
    let ready = Ready::Announces(format!("{name} listening on "));
    let waited = child
        .process
        .wait_ready_async(&ready, Wait::up_to(ready_timeout))
        .await;
    let log = shown(&child.log);
    match waited {
        Ok(addr) => Ok(addr),
        Err(NotReady::Timeout { .. }) => bail!(
            "{name} did not report ready within {} s; last lines of {log}:\n{}",
            ready_timeout.as_secs(),
            log_tail(&child.process, 10)
        ),
        Err(NotReady::Exited { status, .. }) => {
            let log_tail = log_tail(&child.process, 10);
            let hint = match addr {
                Some(addr) if log_tail.contains("in use") => format!(
                    "port {} is already in use (another {name} or demo?)",
                    addr.port()
                ),
                _ => "it stopped before it was ready".to_string(),
            };
            bail!("{name} exited ({status}): {hint}; last lines of {log}:\n{log_tail}")
        }
        Err(e @ NotReady::Unexpected { .. }) => Err(anyhow!("{e}")),
        Err(NotReady::Wait { source, .. }) => Err(wait_error(source, name)),
    }
}

fn wait_error(e: io::Error, name: &str) -> anyhow::Error {
    anyhow::Error::new(e).context(format!("checking on {name}"))
}

/// Starts `gerbang serve` and waits until it accepts connections.
pub(super) async fn start_gateway(
    exe: &Path,
    config_path: &Path,
    addr: SocketAddr,
    log: &Path,
    children: &mut Children,
) -> Result<()> {
    let mut command = Command::new(exe);
    command.arg("serve").arg("--config").arg(config_path);
    let process =
        start("gerbang", command, log).with_context(|| format!("starting {} serve", shown(exe)))?;
    let child = children.gateway.insert(Child {
        process,
        title: "the gateway",
        log: log.to_path_buf(),
    });
    let ready = Ready::Listening(loopback_for(addr));
    let wait =
        Wait::up_to(GATEWAY_READY_TIMEOUT).polling_at_least_every(Duration::from_millis(250));
    let log_name = shown(log);
    match child.process.wait_ready_async(&ready, wait).await {
        Ok(_) => Ok(()),
        Err(NotReady::Exited { status, .. }) => bail!(
            "the gateway exited ({status}) before it listened on {addr}; last lines of {log_name}:\n{}",
            log_tail(&child.process, 20)
        ),
        Err(NotReady::Timeout { .. }) => bail!(
            "the gateway did not accept connections on {addr} within {} s; last lines of {log_name}:\n{}",
            GATEWAY_READY_TIMEOUT.as_secs(),
            log_tail(&child.process, 20)
        ),
        Err(e @ NotReady::Unexpected { .. }) => Err(anyhow!("{e}")),
        Err(NotReady::Wait { source, .. }) => Err(wait_error(source, "the gateway")),
    }
}

/// The address to connect to for a listening address (a wildcard means "this host").
pub(super) fn loopback_for(addr: SocketAddr) -> SocketAddr {
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

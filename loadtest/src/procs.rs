//! Child processes of the bench, through the supervisor (`gerbang-supervise`): output in
//! `<dir>/<name>.stdout|stderr`, stopped on drop (SIGTERM, then SIGKILL after 2 s, so
//! nginx's master takes its workers down with it), never outliving the driver, and their
//! pids listed in a file so `bench.sh` can end them by id (nginx's workers, which are not
//! our children, included). Every wait here has a deadline.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use gerbang_supervise::{NotReady, Output, Process, Ready, Start, Wait};

/// Lines of a child's stderr quoted when it fails.
const TAIL_LINES: usize = 40;

/// Starts `cmd` with stdout and stderr in `dir/<name>.stdout|stderr`, and appends its pid
/// to `pids`.
pub fn start(name: &str, cmd: Command, dir: &Path, pids: &Path) -> anyhow::Result<Process> {
    let output = Output::Split {
        stdout: dir.join(format!("{name}.stdout")),
        stderr: dir.join(format!("{name}.stderr")),
    };
    let process = Start::new(name, cmd, output)
        .stop_on_drop(Duration::from_secs(2))
        .spawn()?;
    note_pids(pids, &[process.pid()])?;
    Ok(process)
}

/// Appends more pids (e.g. nginx's workers) to the pid list.
pub fn note_pids(pids: &Path, more: &[u32]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pids)
        .context("opening the pid list")?;
    for p in more {
        writeln!(f, "{p}").context("writing the pid list")?;
    }
    Ok(())
}

/// A failed wait, with the end of the child's stderr.
fn not_ready(p: &Process, e: NotReady) -> anyhow::Error {
    anyhow::anyhow!("{e}:\n{}", p.stderr_tail(TAIL_LINES))
}

/// Waits until `addr` accepts TCP connections, looking every 2 ms (the wait is a
/// measurement); fails if `p` exits or `limit` passes. Returns how long it took from
/// `since`.
pub fn wait_listening(
    p: &mut Process,
    addr: SocketAddr,
    since: Instant,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let wait = Wait::up_to(limit).polling_at_least_every(Duration::from_millis(2));
    p.wait_ready(&Ready::Listening(addr), wait)
        .map_err(|e| not_ready(p, e))?;
    Ok(since.elapsed())
}

/// Waits until a process prints `<prefix><address>` on its stdout, and returns the address.
pub fn wait_announced(
    p: &mut Process,
    prefix: &str,
    limit: Duration,
) -> anyhow::Result<SocketAddr> {
    p.wait_ready(&Ready::Announces(prefix.to_string()), Wait::up_to(limit))
        .map_err(|e| not_ready(p, e))
}

/// Waits (looking every millisecond) until `check` on the process's stderr gives a value;
/// `check` fails the wait with its message. Fails if it exits or `limit` passes.
pub fn wait_stderr<T>(
    p: &mut Process,
    what: &str,
    limit: Duration,
    mut check: impl FnMut(&str) -> Result<Option<T>, String>,
) -> anyhow::Result<T> {
    let wait = Wait::up_to(limit).polling_at_least_every(Duration::from_millis(1));
    p.wait_for(what, wait, |p| check(&p.stderr()))
        .map_err(|e| not_ready(p, e))
}

/// Runs a command to completion within `limit`; returns (wall time, success, stdout, stderr).
pub fn run_timed(
    cmd: Command,
    dir: &Path,
    name: &str,
    pids: &Path,
    limit: Duration,
) -> anyhow::Result<(Duration, bool, String, String)> {
    let started = Instant::now();
    let mut p = start(name, cmd, dir, pids)?;
    let wait = Wait::up_to(limit).polling_at_least_every(Duration::from_millis(1));
    let status = p.wait_exit(wait).map_err(|e| not_ready(&p, e))?;
    let took = started.elapsed();
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    Ok((
        took,
        status.success(),
        read(p.stdout_path()),
        read(p.stderr_path()),
    ))
}

/// A process's resident memory (VmRSS) and its peak (VmHWM), in KiB.
pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) a process and its reaped children used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that closes the command name: state is field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime are fields 14 and 15 (indices 11, 12 after the name).
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

/// Pids whose parent is `parent` (nginx's workers).
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .unwrap_or(100.0)
    })
}

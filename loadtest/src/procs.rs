//! Child processes of the bench: started with their output in files, killed on drop,
//! their pids listed in a file so `bench.sh` can end them by id if the driver dies.
//! Every wait here has a deadline.

use std::fs::File;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A child process, stopped (SIGTERM, then SIGKILL after 2 s) and reaped on drop. SIGTERM
/// first so nginx's master takes its workers down with it.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub stderr: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr in `dir/<name>.stdout|stderr`, and appends its
    /// pid to `pids`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path, pids: &Path) -> anyhow::Result<Self> {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).context("creating a stdout file")?)
            .stderr(File::create(&stderr).context("creating a stderr file")?)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(pids)
            .context("opening the pid list")?;
        writeln!(f, "{}", child.id()).context("writing the pid list")?;
        Ok(Self {
            child,
            name: name.to_string(),
            stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout_path(&self) -> PathBuf {
        self.stderr.with_extension("stdout")
    }

    /// What it wrote on stderr so far (the last 4 KiB).
    pub fn stderr_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let cut = s.len().saturating_sub(4096);
        s.get(cut..).unwrap_or(&s).to_string()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("waiting")? {
            bail!("{} exited ({status}):\n{}", self.name, self.stderr_tail());
        }
        Ok(())
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

    /// Sends a signal by name (`HUP`, `TERM`) with kill(1).
    pub fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -s {sig} {} failed", self.pid());
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.signal("TERM");
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// Waits until `addr` accepts TCP connections; fails if `proc` exits or `limit` passes.
/// Returns how long it took from `since`.
pub fn wait_listening(
    proc: &mut Proc,
    addr: SocketAddr,
    since: Instant,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(since.elapsed());
        }
        proc.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on {addr} within {limit:?}:\n{}",
                proc.name,
                proc.stderr_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until a process writes a line to its stdout file, and returns the line.
pub fn wait_stdout_line(proc: &mut Proc, limit: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + limit;
    let path = proc.stdout_path();
    loop {
        let s = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = s.lines().next()
            && s.contains('\n')
        {
            return Ok(line.to_string());
        }
        proc.check_alive()?;
        if Instant::now() > deadline {
            bail!("{} printed nothing within {limit:?}", proc.name);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
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
    let mut p = Proc::spawn(name, cmd, dir, pids)?;
    let deadline = started + limit;
    let status = loop {
        if let Some(status) = p.child.try_wait().context("waiting")? {
            break status;
        }
        if Instant::now() > deadline {
            bail!("{name} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let took = started.elapsed();
    let out = std::fs::read_to_string(p.stdout_path()).unwrap_or_default();
    let err = std::fs::read_to_string(&p.stderr).unwrap_or_default();
    Ok((took, status.success(), out, err))
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

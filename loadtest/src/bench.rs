//! `loadgen bench`: what `make bench` measures, in one bounded run.
//!
//! Starts dwh-sim, nginx (a plain keep-alive reverse proxy to it) and Gerbang gateways
//! with a synthetic configuration: plaintext and TLS with their decision log as deployed,
//! plaintext without it (to state the log's cost), and with the Redis quota store when it
//! can; warms every User ID; measures peak throughput (closed loop) in interleaved rounds,
//! then latency at half of each target's own peak (open loop); checks that every decision
//! log was written and verifies; then load, start, memory and reload times of synthetic
//! configurations from 10 to 5,000 PKS. Prints a markdown report and writes it to
//! `<out-dir>/<timestamp>.md` (raw JSON lines beside it).

mod decision_log;
mod load;
mod report;
mod runs;
mod scale;
mod stack;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use gerbang_supervise::Process;

use crate::genconf::{self, GenArgs};
use crate::mix::Mix;
use crate::procs;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Directory of the release binaries gerbang and dwh-sim.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "loadtest/out")]
    pub out_dir: PathBuf,
    /// Interleaved rounds; each target's figure is the median over them.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Measured seconds of each run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Connections of every run (the same for every target).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Synthetic User IDs of the throughput configuration (each on its own 127.1.x.y).
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Synthetic PKS files of the throughput configuration.
    #[arg(long, default_value_t = 20)]
    pub pks: usize,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Request mix: percentages of CALL_NIK, CALL_VERIFY_BY_ELEMEN, refused.
    #[arg(long, default_value_t = Mix::default())]
    pub mix: Mix,
    /// People in the simulated population.
    #[arg(long, default_value_t = 100_000)]
    pub people: usize,
    /// Configuration sizes to load, as PKS:UserIDs pairs.
    #[arg(long, default_value = "10:100,100:1000,1000:10000,5000:50000")]
    pub scale: String,
    /// Skip the throughput and latency runs.
    #[arg(long)]
    pub skip_load: bool,
    /// Skip the configuration-size measurements.
    #[arg(long)]
    pub skip_scale: bool,
    /// The nginx binary.
    #[arg(long, default_value = "nginx")]
    pub nginx: PathBuf,
    /// RUST_LOG of the measured gateways (`info` logs one line per request, as deployed).
    #[arg(long, default_value = "info")]
    pub gerbang_log: String,
    /// Append the pid of every process started here to this file (for cleanup by id).
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Keep the temporary directory (configurations, logs) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Cedar schema and rules, for builds of Gerbang that need `[policy] dir` (detected).
    #[arg(long, default_value = "policies")]
    pub policy_dir: PathBuf,
    /// The redis-server binary, for (d) Gerbang with the Redis quota store.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// Do not measure (d) Gerbang with the Redis quota store.
    #[arg(long)]
    pub skip_redis: bool,
    /// The command line to quote in the report.
    #[arg(long, default_value = "make bench")]
    pub command: String,
}

/// What the bench writes: the markdown report, the raw JSON lines beside it, and the
/// warnings listed at the end of the report.
#[derive(Default)]
struct Out {
    report: String,
    raw: String,
    findings: Vec<String>,
}

/// What every part of the bench shares.
struct Common<'a> {
    a: &'a BenchArgs,
    /// The temporary directory: configurations, logs, NIK lists.
    dir: &'a Path,
    /// The pid list `bench.sh` ends stragglers from.
    pids: &'a Path,
    sim_addr: SocketAddr,
    sim_pid: u32,
    /// The argon2id hash of the synthetic User IDs' password.
    hash: &'a str,
    /// `[policy] dir`, when this gerbang has the Cedar engine.
    policy: Option<&'a Path>,
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("gerbang-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let dir = tmp.path().to_path_buf();
    let pids = a.pid_file.clone().unwrap_or_else(|| dir.join("pids"));
    for b in ["gerbang", "dwh-sim"] {
        let bin = a.bin_dir.join(b);
        if !bin.is_file() {
            bail!(
                "{} is missing: build with cargo build --release -p gerbang-cli -p gerbang-dwh-sim --bins",
                bin.display()
            );
        }
    }
    let stamp = chrono::Local::now();
    let mut out = Out::default();
    header(&mut out.report, &a, &stamp)?;

    let (mut sim, sim_addr) = start_sim(&a, &dir, &pids)?;
    let hash = genconf::hash_password(&a.bin_dir.join("gerbang"))?;
    let policy = detect_policy(&a, &dir, &pids, sim_addr, &hash)?;
    eprintln!(
        "this gerbang {}",
        match &policy {
            Some(d) => format!("has the Cedar engine (rules from {})", d.display()),
            None => "takes no [policy] table (no Cedar engine)".into(),
        }
    );
    let common = Common {
        a: &a,
        dir: &dir,
        pids: &pids,
        sim_addr,
        sim_pid: sim.pid(),
        hash: &hash,
        policy: policy.as_deref(),
    };
    if !a.skip_load {
        load::load(&common, &mut out)?;
    }
    if !a.skip_scale {
        scale::scale(&common, &mut out)?;
    }
    let _ = sim.stop(Duration::from_secs(2));
    finish(&a, &stamp, started, out)?;
    if a.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

/// dwh-sim on a free port, with the population the arguments ask for.
fn start_sim(a: &BenchArgs, dir: &Path, pids: &Path) -> anyhow::Result<(Process, SocketAddr)> {
    let mut cmd = Command::new(a.bin_dir.join("dwh-sim"));
    cmd.args(["--listen", "127.0.0.1:0", "--seed", "7", "--people"])
        .arg(a.people.to_string())
        .env("RUST_LOG", "warn");
    let mut sim = procs::start("dwh-sim", cmd, dir, pids)?;
    let sim_addr =
        procs::wait_announced(&mut sim, "dwh-sim listening on ", Duration::from_secs(120))?;
    eprintln!("dwh-sim on {sim_addr} ({} people)", a.people);
    Ok((sim, sim_addr))
}

/// The warnings and the run's length at the end of the report; prints it and writes it,
/// with the raw JSON lines, to the output directory.
fn finish(
    a: &BenchArgs,
    stamp: &chrono::DateTime<chrono::Local>,
    started: Instant,
    mut out: Out,
) -> anyhow::Result<()> {
    let report = &mut out.report;
    if !out.findings.is_empty() {
        writeln!(report, "\n## Warnings\n")?;
        for f in &out.findings {
            writeln!(report, "- {f}")?;
        }
    }
    writeln!(
        report,
        "\nWhole run: {:.0} s after the build.",
        started.elapsed().as_secs_f64()
    )?;

    println!("{report}");
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let base = a.out_dir.join(stamp.format("%Y%m%d-%H%M%S").to_string());
    std::fs::write(base.with_extension("md"), &report).context("writing the report")?;
    std::fs::write(base.with_extension("jsonl"), &out.raw).context("writing the raw results")?;
    eprintln!(
        "report written to {} (raw runs in {})",
        base.with_extension("md").display(),
        base.with_extension("jsonl").display()
    );
    Ok(())
}

fn header(
    report: &mut String,
    a: &BenchArgs,
    stamp: &chrono::DateTime<chrono::Local>,
) -> anyhow::Result<()> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let nginx = Command::new(&a.nginx)
        .arg("-v")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_else(|| "not found".into());
    let git = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    writeln!(
        report,
        "# make bench — {}\n",
        stamp.format("%Y-%m-%d %H:%M %Z")
    )?;
    writeln!(
        report,
        "- machine: {cores} cores ({model}), {mem_gib:.1} GiB memory; everything (generator, proxies, simulator) shares these cores"
    )?;
    writeln!(report, "- source: `{git}`; {nginx}")?;
    writeln!(report, "- command: `{}`", a.command)?;
    writeln!(
        report,
        "- settings: {} rounds × {} s per run, {} connections, generator {} threads, mix {} (CALL_NIK, CALL_VERIFY_BY_ELEMEN, refused invalid NIK), {} User IDs in {} PKS, {} simulated people, gateway log level `{}`",
        a.rounds,
        a.duration,
        a.connections,
        a.threads,
        a.mix,
        a.users,
        a.pks,
        a.people,
        a.gerbang_log
    )?;
    Ok(())
}

/// Whether this gerbang needs `[policy] dir` (the Cedar engine): a one-PKS configuration
/// is checked without it, then with `--policy-dir`.
fn detect_policy(
    a: &BenchArgs,
    dir: &Path,
    pids: &Path,
    sim_addr: SocketAddr,
    hash: &str,
) -> anyhow::Result<Option<PathBuf>> {
    let policy_dir = std::fs::canonicalize(&a.policy_dir).ok();
    let mut last = String::new();
    for (i, policy) in [None, policy_dir].into_iter().enumerate() {
        if i > 0 && policy.is_none() {
            break;
        }
        let sub = dir.join(format!("detect-{i}"));
        let cfg = genconf::generate(&GenArgs {
            pks: 1,
            users: 1,
            dir: sub.clone(),
            upstream: sim_addr,
            listen: "127.0.0.1:9".parse().context("address")?,
            tls_cert: None,
            tls_key: None,
            hash: Some(hash.to_string()),
            gerbang: a.bin_dir.join("gerbang"),
            threads: None,
            policy_dir: policy.clone(),
            quota: None,
            audit: false,
        })?;
        let mut cmd = Command::new(a.bin_dir.join("gerbang"));
        cmd.arg("check").arg("--config").arg(&cfg);
        let (_, ok, out, err) =
            procs::run_timed(cmd, &sub, "check", pids, Duration::from_secs(60))?;
        if ok {
            return Ok(policy);
        }
        last = format!("{out}{err}");
    }
    bail!("gerbang check refuses the synthetic configuration (with and without [policy]):\n{last}")
}

/// A port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .context("finding a free port")?
        .local_addr()
        .context("finding a free port")?
        .port())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")
}

/// Starts `gerbang serve` and waits until it listens; returns it and the time that took.
fn start_gateway(
    a: &BenchArgs,
    name: &str,
    config: &Path,
    listen: SocketAddr,
    dir: &Path,
    pids: &Path,
    log: &str,
) -> anyhow::Result<(Process, Duration)> {
    let mut cmd = Command::new(a.bin_dir.join("gerbang"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", log);
    let t0 = Instant::now();
    let mut p = procs::start(name, cmd, dir, pids)?;
    let took = procs::wait_listening(&mut p, listen, t0, Duration::from_secs(120))?;
    Ok((p, took))
}

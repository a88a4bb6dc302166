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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

use crate::client::{self, Target, Tls};
use crate::genconf::{self, GenArgs};
use crate::mix::{self, Kind, Mix};
use crate::procs::{self, Proc};

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

/// A load target: where it listens and which processes do its work.
struct Tgt {
    name: &'static str,
    addr: SocketAddr,
    tls_ca: Option<PathBuf>,
    /// The proxy's processes (empty for direct); their CPU time is charged to it.
    proxy_pids: Vec<u32>,
    /// The gateway's configuration, when it has a decision log (`[audit]`).
    audit_config: Option<PathBuf>,
}

/// One run's JSON plus what the driver measured around it.
#[derive(Debug, Clone)]
struct RunRec {
    /// The target it ran against (its label may say more, e.g. `direct@gerbang-half`).
    tgt: &'static str,
    round: usize,
    json: Value,
    proxy_cpu_us_per_req: Option<f64>,
    sim_cpu_us_per_req: Option<f64>,
}

impl RunRec {
    fn f(&self, key: &str) -> f64 {
        self.json[key].as_f64().unwrap_or(f64::NAN)
    }
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("gerbang-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let dir = tmp.path().to_path_buf();
    let pids = a.pid_file.clone().unwrap_or_else(|| dir.join("pids"));
    let bin = |name: &str| a.bin_dir.join(name);
    for b in ["gerbang", "dwh-sim"] {
        if !bin(b).is_file() {
            bail!(
                "{} is missing: build with cargo build --release -p gerbang-cli -p gerbang-dwh-sim --bins",
                bin(b).display()
            );
        }
    }
    let stamp = chrono::Local::now();
    let mut report = String::new();
    let mut raw = String::new();
    header(&mut report, &a, &stamp)?;

    // dwh-sim on a free port.
    let mut cmd = Command::new(bin("dwh-sim"));
    cmd.args(["--listen", "127.0.0.1:0", "--seed", "7", "--people"])
        .arg(a.people.to_string())
        .env("RUST_LOG", "warn");
    let mut sim = Proc::spawn("dwh-sim", cmd, &dir, &pids)?;
    let line = procs::wait_stdout_line(&mut sim, Duration::from_secs(120))?;
    let sim_addr: SocketAddr = line
        .trim()
        .rsplit("://")
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("dwh-sim did not say where it listens: {line:?}"))?;
    eprintln!("dwh-sim on {sim_addr} ({} people)", a.people);

    let hash = genconf::hash_password(&bin("gerbang"))?;
    let policy = detect_policy(&a, &dir, &pids, sim_addr, &hash)?;
    eprintln!(
        "this gerbang {}",
        match &policy {
            Some(d) => format!("has the Cedar engine (rules from {})", d.display()),
            None => "takes no [policy] table (no Cedar engine)".into(),
        }
    );
    let mut findings: Vec<String> = Vec::new();

    if !a.skip_load {
        load(
            &a,
            &dir,
            &pids,
            &sim,
            sim_addr,
            &hash,
            policy.as_deref(),
            &mut report,
            &mut raw,
            &mut findings,
        )?;
    }
    if !a.skip_scale {
        scale(
            &a,
            &dir,
            &pids,
            sim_addr,
            &hash,
            policy.as_deref(),
            &mut report,
            &mut raw,
        )?;
    }
    sim.stop(Duration::from_secs(2));
    if !findings.is_empty() {
        writeln!(report, "\n## Warnings\n")?;
        for f in &findings {
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
    std::fs::write(base.with_extension("jsonl"), &raw).context("writing the raw results")?;
    eprintln!(
        "report written to {} (raw runs in {})",
        base.with_extension("md").display(),
        base.with_extension("jsonl").display()
    );
    if a.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
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

/// NIKs to look up: `alive` and `any` samples of the simulator.
fn sample_niks(sim: SocketAddr, path: &Path) -> anyhow::Result<usize> {
    let rt = runtime()?;
    let target = Target::new(sim, None);
    let mut all = Vec::new();
    for kind in ["alive", "any"] {
        let req = client::get(&target, &format!("/__sim/sample?kind={kind}&n=1000"))?;
        let (status, body) = rt.block_on(client::once(
            &target,
            Ipv4Addr::LOCALHOST,
            req,
            Duration::from_secs(10),
        ))?;
        if !status.is_success() {
            bail!("/__sim/sample?kind={kind} answered {status}");
        }
        let v: Value = serde_json::from_slice(&body).context("sample answer")?;
        let niks = v["nik"].as_array().context("sample answer without nik")?;
        all.extend(niks.iter().filter_map(|n| n.as_str().map(str::to_string)));
    }
    std::fs::write(path, all.join("\n") + "\n").context("writing the NIK list")?;
    Ok(all.len())
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
) -> anyhow::Result<(Proc, Duration)> {
    let mut cmd = Command::new(a.bin_dir.join("gerbang"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", log);
    let t0 = Instant::now();
    let mut p = Proc::spawn(name, cmd, dir, pids)?;
    let took = procs::wait_listening(&mut p, listen, t0, Duration::from_secs(120))?;
    Ok((p, took))
}

fn nginx_conf(prefix: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let p = prefix.display();
    format!(
        "# Temporary nginx for make bench: a plain keep-alive reverse proxy to dwh-sim.\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes auto;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {p}/body;\n\
         \x20 proxy_temp_path {p}/proxy;\n\
         \x20 fastcgi_temp_path {p}/fastcgi;\n\
         \x20 uwsgi_temp_path {p}/uwsgi;\n\
         \x20 scgi_temp_path {p}/scgi;\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 keepalive_timeout 75s;\n\
         \x20 upstream dwh {{\n\
         \x20   server {upstream};\n\
         \x20   keepalive 256;\n\
         \x20   keepalive_requests 1000000;\n\
         \x20 }}\n\
         \x20 server {{\n\
         \x20   listen {listen};\n\
         \x20   location / {{\n\
         \x20     proxy_pass http://dwh;\n\
         \x20     proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20     proxy_set_header X-Forwarded-For $remote_addr;\n\
         \x20   }}\n\
         \x20 }}\n\
         }}\n"
    )
}

/// What every `loadgen run` of the bench shares.
#[derive(Clone, Copy)]
struct Env<'a> {
    a: &'a BenchArgs,
    dir: &'a Path,
    pids: &'a Path,
    users: &'a Path,
    niks: &'a Path,
}

/// One `loadgen run` as a child process (a fresh runtime per run); its JSON line.
fn loadgen(
    e: &Env<'_>,
    t: &Tgt,
    connections: usize,
    duration: f64,
    rate: Option<f64>,
    label: &str,
) -> anyhow::Result<Value> {
    let Env {
        a,
        dir,
        pids,
        users,
        niks,
    } = *e;
    let exe = std::env::current_exe().context("locating loadgen")?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .args(["--name", label])
        .arg("--target")
        .arg(t.addr.to_string())
        .arg("--users")
        .arg(users)
        .arg("--niks")
        .arg(niks)
        .arg("--connections")
        .arg(connections.to_string())
        .arg("--duration")
        .arg(duration.to_string())
        .arg("--threads")
        .arg(a.threads.to_string())
        .arg("--mix")
        .arg(a.mix.to_string());
    if let Some(ca) = &t.tls_ca {
        cmd.arg("--tls-ca").arg(ca);
    }
    if let Some(r) = rate {
        cmd.arg("--rate").arg(format!("{r:.1}"));
    }
    let limit = Duration::from_secs_f64(duration + 200.0);
    let (_, ok, out, err) = procs::run_timed(cmd, dir, "loadgen", pids, limit)?;
    if !ok {
        bail!("loadgen run against {} failed:\n{err}", t.name);
    }
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("loadgen printed no JSON:\n{out}\n{err}"))?;
    serde_json::from_str(line).context("loadgen's JSON line")
}

fn cpu_of(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|p| procs::cpu_seconds(*p)).sum()
}

/// A measured run with the CPU time the proxy and the simulator spent on it.
fn measured(
    e: &Env<'_>,
    t: &Tgt,
    sim_pid: u32,
    rate: Option<f64>,
    label: &str,
    round: usize,
) -> anyhow::Result<RunRec> {
    let a = e.a;
    let (p0, s0) = (cpu_of(&t.proxy_pids), procs::cpu_seconds(sim_pid));
    let json = loadgen(e, t, a.connections, a.duration, rate, label)?;
    let (p1, s1) = (cpu_of(&t.proxy_pids), procs::cpu_seconds(sim_pid));
    let requests = json["requests"].as_f64().unwrap_or(0.0).max(1.0);
    let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some((b - a) * 1e6 / requests),
        _ => None,
    };
    let rec = RunRec {
        tgt: t.name,
        round,
        proxy_cpu_us_per_req: if t.proxy_pids.is_empty() {
            None
        } else {
            per(p0, p1)
        },
        sim_cpu_us_per_req: per(s0, s1),
        json,
    };
    eprintln!(
        "  round {round} {label:<22} {:>9.0} req/s  p50 {:>6} µs  p99 {:>6} µs  p99.9 {:>6} µs  errors {}",
        rec.f("throughput_rps"),
        rec.json["p50_us"],
        rec.json["p99_us"],
        rec.json["p999_us"],
        rec.json["errors"]
    );
    Ok(rec)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians across rounds of one target's runs.
struct Med {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: f64,
    proxy_cpu: f64,
    sim_cpu: f64,
    unexpected: u64,
    /// New connections per 1,000 answers (0 with working keep-alive).
    reconnects_per_k: f64,
}

fn med(runs: &[&RunRec]) -> Med {
    let m = |k: &str| median(runs.iter().map(|r| r.f(k)).collect());
    Med {
        rps: m("throughput_rps"),
        p50: m("p50_us"),
        p99: m("p99_us"),
        p999: m("p999_us"),
        errors: m("errors"),
        proxy_cpu: median(runs.iter().filter_map(|r| r.proxy_cpu_us_per_req).collect()),
        sim_cpu: median(runs.iter().filter_map(|r| r.sim_cpu_us_per_req).collect()),
        unexpected: runs.iter().map(|r| unexpected(&r.json)).sum(),
        reconnects_per_k: median(
            runs.iter()
                .map(|r| r.f("reconnects") * 1000.0 / r.f("requests").max(1.0))
                .collect(),
        ),
    }
}

/// Answers that are not what the mix asked for: a valid lookup answered with anything but
/// a record or one of the DWH's own data codes (11–14), or the invalid NIK answered with
/// anything but 15.
fn unexpected(json: &Value) -> u64 {
    let mut n = 0;
    for kind in [Kind::CallNik, Kind::Verify] {
        if let Some(m) = json["codes"][kind.name()].as_object() {
            for (code, count) in m {
                if !matches!(code.as_str(), "record" | "11" | "12" | "13" | "14") {
                    n += count.as_u64().unwrap_or(0);
                }
            }
        }
    }
    if let Some(m) = json["codes"][Kind::Refused.name()].as_object() {
        for (code, count) in m {
            if code != "15" {
                n += count.as_u64().unwrap_or(0);
            }
        }
    }
    n
}

fn fmt_opt(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "–".into()
    }
}

/// Probes one request of each kind through a gateway as the first user; returns whether
/// its answers carry `quotaLimiter` (daily quota metering is on), and a short description.
fn probe(t: &Tgt, user: &mix::User, niks: &[String]) -> anyhow::Result<(bool, String)> {
    let rt = runtime()?;
    let tls = match &t.tls_ca {
        Some(ca) => Some(Tls::new(ca, "localhost")?),
        None => None,
    };
    let target = Target::new(t.addr, tls);
    let mut quota = false;
    let mut desc = String::new();
    for kind in Kind::ALL {
        let nik = niks.first().context("no NIK")?;
        let req = client::post(
            &target,
            &format!("/dukcapil/get_json/BENCH/{}", kind.service()),
            mix::body(kind, nik, user),
        )?;
        let (status, body) = rt.block_on(client::once(
            &target,
            user.source,
            req,
            Duration::from_secs(60),
        ))?;
        let text = String::from_utf8_lossy(&body);
        quota |= text.contains("quotaLimiter");
        let code = crate::stats::response_code(&body)
            .map_or("a record".to_string(), |c| format!("RESPONSE_CODE {c:02}"));
        let expect_ok = match kind {
            Kind::Refused => code == "RESPONSE_CODE 15",
            _ => code == "a record",
        };
        if !status.is_success() || !expect_ok {
            bail!(
                "{} answered {} {}: {status} {}",
                t.name,
                kind.name(),
                code,
                text.chars().take(400).collect::<String>()
            );
        }
        write!(desc, "{}: HTTP {status}, {code}; ", kind.name())?;
    }
    Ok((quota, desc))
}

#[allow(clippy::too_many_arguments)]
fn load(
    a: &BenchArgs,
    dir: &Path,
    pids: &Path,
    sim: &Proc,
    sim_addr: SocketAddr,
    hash: &str,
    policy: Option<&Path>,
    report: &mut String,
    raw: &mut String,
    findings: &mut Vec<String>,
) -> anyhow::Result<()> {
    let niks_path = dir.join("niks.txt");
    let n = sample_niks(sim_addr, &niks_path)?;
    eprintln!("{n} NIKs sampled from dwh-sim");
    let niks = mix::read_niks(&niks_path)?;

    let certs = dir.join("certs");
    let status = Command::new(a.bin_dir.join("gerbang"))
        .args(["certs", "dev", "--dir"])
        .arg(&certs)
        .stdout(std::process::Stdio::null())
        .status()
        .context("gerbang certs dev")?;
    if !status.success() {
        bail!("gerbang certs dev failed");
    }

    let make_cfg = |sub: &str,
                    listen: SocketAddr,
                    tls: bool,
                    quota: Option<String>,
                    audit: bool|
     -> anyhow::Result<PathBuf> {
        genconf::generate(&GenArgs {
            pks: a.pks,
            users: a.users,
            dir: dir.join(sub),
            upstream: sim_addr,
            listen,
            tls_cert: tls.then(|| certs.join("server.pem")),
            tls_key: tls.then(|| certs.join("server.key")),
            hash: Some(hash.to_string()),
            gerbang: a.bin_dir.join("gerbang"),
            threads: None,
            policy_dir: policy.map(Path::to_path_buf),
            quota,
            audit,
        })
    };
    let plain_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let tls_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let nolog_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let plain_cfg = make_cfg("gw-plain", plain_addr, false, None, true)?;
    let tls_cfg = make_cfg("gw-tls", tls_addr, true, None, true)?;
    // The same plaintext gateway without its decision log: the log's cost.
    let nolog_cfg = make_cfg("gw-nolog", nolog_addr, false, None, false)?;
    let users_path = dir.join("gw-plain/users.tsv");
    let users = mix::read_users(&users_path)?;

    let (gw_plain, _) = start_gateway(
        a,
        "gerbang-plain",
        &plain_cfg,
        plain_addr,
        dir,
        pids,
        &a.gerbang_log,
    )?;
    let (gw_tls, _) = start_gateway(
        a,
        "gerbang-tls",
        &tls_cfg,
        tls_addr,
        dir,
        pids,
        &a.gerbang_log,
    )?;
    let (gw_nolog, _) = start_gateway(
        a,
        "gerbang-nolog",
        &nolog_cfg,
        nolog_addr,
        dir,
        pids,
        &a.gerbang_log,
    )?;

    // nginx in the foreground with its own prefix, pid file and logs.
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(&prefix).context("creating the nginx prefix")?;
    let nginx_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&prefix, nginx_addr, sim_addr))
        .context("writing nginx.conf")?;
    let mut cmd = Command::new(&a.nginx);
    cmd.arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(prefix.join("error.log"));
    let mut nginx = Proc::spawn("nginx", cmd, dir, pids)?;
    procs::wait_listening(
        &mut nginx,
        nginx_addr,
        Instant::now(),
        Duration::from_secs(30),
    )?;
    let nginx_workers = procs::children_of(nginx.pid());
    Proc::note_pids(pids, &nginx_workers)?;

    // (d) Gerbang with the Redis quota store, when this build has one and redis-server is here.
    let mut redis_gw: Option<(Proc, Proc, SocketAddr, PathBuf)> = None;
    let redis_note = if a.skip_redis {
        "skipped (--skip-redis)".to_string()
    } else {
        let redis_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let started = (|| -> anyhow::Result<(Proc, Proc, SocketAddr, PathBuf)> {
            let rdir = dir.join("redis");
            std::fs::create_dir_all(&rdir).context("creating the redis directory")?;
            let mut cmd = Command::new(&a.redis_server);
            cmd.arg("--port")
                .arg(redis_addr.port().to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&rdir);
            let mut server = Proc::spawn("redis-server", cmd, dir, pids)?;
            procs::wait_listening(
                &mut server,
                redis_addr,
                Instant::now(),
                Duration::from_secs(20),
            )?;
            let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
            let cfg = make_cfg(
                "gw-redis",
                listen,
                false,
                Some(format!(
                    "store = \"redis\"\nredis_url = \"redis://{redis_addr}/0\""
                )),
                true,
            )?;
            let mut cmd = Command::new(a.bin_dir.join("gerbang"));
            cmd.arg("check").arg("--config").arg(&cfg);
            let (_, ok, out, err) =
                procs::run_timed(cmd, dir, "check-redis", pids, Duration::from_secs(60))?;
            if !ok {
                bail!(
                    "this gerbang refuses `store = \"redis\"`: {}{}",
                    out.trim(),
                    err.trim()
                );
            }
            let (gw, _) =
                start_gateway(a, "gerbang-redis", &cfg, listen, dir, pids, &a.gerbang_log)?;
            Ok((server, gw, listen, cfg))
        })();
        match started {
            Ok(x) => {
                redis_gw = Some(x);
                format!(
                    "measured as `gerbang-redis`: Gerbang plaintext with `[quota] store = \"redis\"` (default lease), a temporary redis-server on {redis_addr} without persistence; its proxy CPU includes redis-server's"
                )
            }
            Err(e) => format!("not measured: {e:#}"),
        }
    };

    // gerbang-nolog right after gerbang, so that within a round the two run back to back.
    let mut targets = vec![
        Tgt {
            name: "direct",
            addr: sim_addr,
            tls_ca: None,
            proxy_pids: vec![],
            audit_config: None,
        },
        Tgt {
            name: "nginx",
            addr: nginx_addr,
            tls_ca: None,
            proxy_pids: [vec![nginx.pid()], nginx_workers].concat(),
            audit_config: None,
        },
        Tgt {
            name: "gerbang",
            addr: plain_addr,
            tls_ca: None,
            proxy_pids: vec![gw_plain.pid()],
            audit_config: Some(plain_cfg.clone()),
        },
        Tgt {
            name: "gerbang-nolog",
            addr: nolog_addr,
            tls_ca: None,
            proxy_pids: vec![gw_nolog.pid()],
            audit_config: None,
        },
        Tgt {
            name: "gerbang-tls",
            addr: tls_addr,
            tls_ca: Some(certs.join("ca.pem")),
            proxy_pids: vec![gw_tls.pid()],
            audit_config: Some(tls_cfg.clone()),
        },
    ];
    if let Some((server, gw, listen, cfg)) = &redis_gw {
        targets.push(Tgt {
            name: "gerbang-redis",
            addr: *listen,
            tls_ca: None,
            proxy_pids: vec![gw.pid(), server.pid()],
            audit_config: Some(cfg.clone()),
        });
    }
    let target = |name: &str| {
        targets
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("no target {name}"))
    };

    let rss_at_start = [gw_plain.pid(), gw_tls.pid()].map(|p| procs::memory_kib(p).ok());

    // What this build of Gerbang checks.
    let (quota_plain, probe_plain) = probe(target("gerbang")?, &users[0], &niks)?;
    let (_, probe_nolog) = probe(target("gerbang-nolog")?, &users[0], &niks)?;
    let (_, probe_tls) = probe(target("gerbang-tls")?, &users[0], &niks)?;
    let probe_redis = match target("gerbang-redis") {
        Ok(t) => Some(probe(t, &users[0], &niks)?),
        Err(_) => None,
    };
    writeln!(report, "\n## What was measured\n")?;
    writeln!(
        report,
        "- (a) `direct`: generator → dwh-sim; (b) `nginx`: → nginx (keep-alive reverse proxy, `worker_processes auto`, access log off) → dwh-sim; (c) `gerbang`: → Gerbang plaintext → dwh-sim; (c-nolog) `gerbang-nolog`: the same plaintext gateway without `[audit]`, so without its decision log (the only difference); (c-tls) `gerbang-tls`: → Gerbang TLS (rustls, generator verifies the dev CA) → dwh-sim; (d) `gerbang-redis`, see below. Every target gets the same bodies from the same User IDs and source addresses."
    )?;
    let mut built = vec![
        "source address in the User ID's IP LAN",
        "login throttle",
        "argon2id password (cached after the first success)",
    ];
    built.push(if policy.is_some() {
        "the PKS decision by the Cedar engine (rules and schema from `[policy] dir`)"
    } else {
        "the PKS decision in Rust (status, validity, User ID status, channel, lookup key, BHI verification-only, law enforcement)"
    });
    built.extend([
        "the NIK format",
        "answer filtering to the PKS's elements",
        "one log line per request",
    ]);
    if quota_plain {
        built.push("daily quota metering (answers carry `quotaLimiter`; embedded redb store)");
    }
    built.push(
        "the decision log (`[audit]` as deployed: one hash-chained, HMAC-sealed record per request, written before an answer carrying data leaves, fsync every 50 ms in the background) — in `gerbang`, `gerbang-tls` and `gerbang-redis`, not in `gerbang-nolog`",
    );
    let mut missing = Vec::new();
    if policy.is_none() {
        missing.push("Cedar policies");
    }
    if !quota_plain {
        missing.push("daily quotas");
    }
    writeln!(
        report,
        "- Gerbang's checks in this build, all on: {}.",
        built.join(", ")
    )?;
    if !missing.is_empty() {
        writeln!(
            report,
            "- Not in this build, so not in the path: {}.",
            missing.join(", ")
        )?;
    }
    writeln!(
        report,
        "- The SAM sidecar (`gerbang-sam`, `[sam]`) is built, but only card-reader requests (those with `X-SAM-*` headers) go to it, and this mix has none; the bench gateways have no `[sam]` table (a card-reader request would be refused without calling anything)."
    )?;
    writeln!(
        report,
        "- No `[admin]` listener: it serves monitoring and operators, not Pengguna requests; the gateway counts its metrics with or without it."
    )?;
    writeln!(
        report,
        "- **(d) Gerbang with the Redis quota store**: {redis_note}."
    )?;
    writeln!(report, "- probe through gerbang: {probe_plain}")?;
    writeln!(report, "- probe through gerbang-nolog: {probe_nolog}")?;
    writeln!(report, "- probe through gerbang-tls: {probe_tls}")?;
    if let Some((quota, p)) = &probe_redis {
        writeln!(
            report,
            "- probe through gerbang-redis: {p}{}",
            if *quota {
                "answers carry `quotaLimiter`"
            } else {
                "answers carry no `quotaLimiter`"
            }
        )?;
    }

    let env = Env {
        a,
        dir,
        pids,
        users: &users_path,
        niks: &niks_path,
    };

    // Warm every User ID on every target (argon2 once per User ID and gateway), untimed.
    eprintln!("warming {} User IDs on every target", users.len());
    for t in &targets {
        let w = loadgen(&env, t, users.len(), 2.0, None, t.name)?;
        if w["errors"].as_u64().unwrap_or(0) > 0 || unexpected(&w) > 0 {
            findings.push(format!(
                "warm-up of {} had {} errors and {} unexpected answers: {}",
                t.name,
                w["errors"],
                unexpected(&w),
                w["codes"]
            ));
        }
    }

    let rss_after_warm = [gw_plain.pid(), gw_tls.pid()].map(|p| procs::memory_kib(p).ok());

    // Peak throughput, closed loop, interleaved rounds (the order rotates per round).
    let mut closed: Vec<RunRec> = Vec::new();
    eprintln!("peak throughput: {} rounds", a.rounds);
    for round in 1..=a.rounds {
        for k in 0..targets.len() {
            let t = &targets[(k + round - 1) % targets.len()];
            let rec = measured(&env, t, sim.pid(), None, t.name, round)?;
            closed.push(rec);
        }
    }
    let peak: BTreeMap<&str, Med> = targets
        .iter()
        .map(|t| {
            let runs: Vec<&RunRec> = closed
                .iter()
                .filter(|r| r.json["target"] == t.name)
                .collect();
            (t.name, med(&runs))
        })
        .collect();

    // Latency at half of each target's own peak, open loop; plus direct at Gerbang's rate.
    let half_rate = |name: &str| peak.get(name).map_or(f64::NAN, |m| m.rps * 0.5);
    let mut half_plan: Vec<(&Tgt, String, f64)> = targets
        .iter()
        .map(|t| (t, t.name.to_string(), half_rate(t.name)))
        .collect();
    half_plan.push((
        target("direct")?,
        "direct@gerbang-half".to_string(),
        half_rate("gerbang"),
    ));
    // The gateway without its decision log at the rate of the one with it: the log's
    // latency at the same load.
    half_plan.push((
        target("gerbang-nolog")?,
        "gerbang-nolog@gerbang-half".to_string(),
        half_rate("gerbang"),
    ));
    let mut open: Vec<RunRec> = Vec::new();
    eprintln!("latency at half of peak: {} rounds", a.rounds);
    for round in 1..=a.rounds {
        for k in 0..half_plan.len() {
            let (t, label, rate) = &half_plan[(k + round - 1) % half_plan.len()];
            if !rate.is_finite() || *rate <= 0.0 {
                continue;
            }
            let rec = measured(&env, t, sim.pid(), Some(*rate), label, round)?;
            open.push(rec);
        }
    }
    let half: BTreeMap<String, (f64, Med)> = half_plan
        .iter()
        .map(|(_, label, rate)| {
            let runs: Vec<&RunRec> = open
                .iter()
                .filter(|r| r.json["target"] == label.as_str())
                .collect();
            (label.clone(), (*rate, med(&runs)))
        })
        .collect();

    for r in closed.iter().chain(open.iter()) {
        let mut j = r.json.clone();
        j["round"] = r.round.into();
        j["proxy_cpu_us_per_req"] = r.proxy_cpu_us_per_req.into();
        j["sim_cpu_us_per_req"] = r.sim_cpu_us_per_req.into();
        writeln!(raw, "{j}")?;
    }

    // The tables.
    writeln!(
        report,
        "\n## Peak throughput (closed loop, {} connections, median of {} rounds × {} s)\n",
        a.connections, a.rounds, a.duration
    )?;
    writeln!(
        report,
        "| target | throughput (req/s) | p50 (µs) | p99 (µs) | p99.9 (µs) | errors | unexpected answers | new connections per 1k req | proxy CPU (µs/req) | dwh-sim CPU (µs/req) |"
    )?;
    writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for t in &targets {
        if let Some(m) = peak.get(t.name) {
            writeln!(
                report,
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {} | {} |",
                t.name,
                m.rps,
                m.p50,
                m.p99,
                m.p999,
                m.errors,
                m.unexpected,
                m.reconnects_per_k,
                fmt_opt(m.proxy_cpu, 1),
                fmt_opt(m.sim_cpu, 1)
            )?;
            if m.reconnects_per_k > 10.0 {
                findings.push(format!(
                    "{} closed the connection after {:.0} of every 1,000 answers, so the generator had to open a new one (TCP{} handshake) for almost every request: keep-alive does not hold",
                    t.name,
                    m.reconnects_per_k,
                    if t.tls_ca.is_some() { " and TLS" } else { "" }
                ));
            }
            if m.unexpected > 0 || m.errors > 0.0 {
                findings.push(format!(
                    "{}: {} unexpected answers and a median of {} errors in the peak runs (see the raw JSON's codes)",
                    t.name, m.unexpected, m.errors
                ));
            }
        }
    }
    let rps = |n: &str| peak.get(n).map_or(f64::NAN, |m| m.rps);
    writeln!(report, "\nRatios of median throughput:\n")?;
    writeln!(
        report,
        "- gerbang / nginx = **{:.2}** (DESIGN §7: ≥ 1.00)",
        rps("gerbang") / rps("nginx")
    )?;
    writeln!(
        report,
        "- gerbang / direct = **{:.2}**",
        rps("gerbang") / rps("direct")
    )?;
    writeln!(
        report,
        "- gerbang-tls / nginx = {:.2}",
        rps("gerbang-tls") / rps("nginx")
    )?;
    writeln!(
        report,
        "- gerbang-tls / direct = {:.2}",
        rps("gerbang-tls") / rps("direct")
    )?;
    if peak.contains_key("gerbang-redis") {
        writeln!(
            report,
            "- gerbang-redis / nginx = {:.2}; gerbang-redis / gerbang = {:.2}",
            rps("gerbang-redis") / rps("nginx"),
            rps("gerbang-redis") / rps("gerbang")
        )?;
    }
    writeln!(
        report,
        "- nginx / direct = {:.2}",
        rps("nginx") / rps("direct")
    )?;
    let lat = |label: &str| {
        half.get(label)
            .map_or((f64::NAN, f64::NAN), |(_, m)| (m.p50, m.p99))
    };
    let (with_p50, with_p99) = lat("gerbang");
    let (same_p50, same_p99) = lat("gerbang-nolog@gerbang-half");
    let (own_p50, own_p99) = lat("gerbang-nolog");
    writeln!(
        report,
        "- decision log, gerbang (with it) / gerbang-nolog (without) = **{:.2}**; its latency at half load, at the same rate ({:.0} req/s for both): p50 **{:+.0} µs**, p99 **{:+.0} µs**; each at half of its own peak: p50 {:+.0} µs, p99 {:+.0} µs",
        rps("gerbang") / rps("gerbang-nolog"),
        half_rate("gerbang"),
        with_p50 - same_p50,
        with_p99 - same_p99,
        with_p50 - own_p50,
        with_p99 - own_p99
    )?;
    writeln!(report, "\nPer round (req/s):\n")?;
    writeln!(
        report,
        "| target | {} |",
        (1..=a.rounds)
            .map(|r| format!("round {r}"))
            .collect::<Vec<_>>()
            .join(" | ")
    )?;
    writeln!(report, "|---|{}", "---:|".repeat(a.rounds))?;
    for t in &targets {
        let cells: Vec<String> = (1..=a.rounds)
            .map(|round| {
                closed
                    .iter()
                    .find(|r| r.round == round && r.json["target"] == t.name)
                    .map_or("–".into(), |r| format!("{:.0}", r.f("throughput_rps")))
            })
            .collect();
        writeln!(report, "| {} | {} |", t.name, cells.join(" | "))?;
    }

    writeln!(
        report,
        "\n## Latency at half of peak (open loop, constant rate, latency from the scheduled send; median of {} rounds × {} s)\n",
        a.rounds, a.duration
    )?;
    writeln!(
        report,
        "| target | rate (req/s) | achieved (req/s) | p50 (µs) | p99 (µs) | p99.9 (µs) | errors | proxy CPU (µs/req) |"
    )?;
    writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for (label, (rate, m)) in &half {
        writeln!(
            report,
            "| {label} | {rate:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            m.rps,
            m.p50,
            m.p99,
            m.p999,
            m.errors,
            fmt_opt(m.proxy_cpu, 1)
        )?;
    }
    let p99 = |n: &str| half.get(n).map_or(f64::NAN, |(_, m)| m.p99);
    let added_same = p99("gerbang") - p99("direct@gerbang-half");
    let added_own = p99("gerbang") - p99("direct");
    writeln!(
        report,
        "\nAdded p99 latency of Gerbang over direct at half load (DESIGN §7: ≤ 1,000 µs):\n"
    )?;
    writeln!(
        report,
        "- at the same rate (Gerbang's half peak, {:.0} req/s, for both): **{:.0} µs**",
        half_rate("gerbang"),
        added_same
    )?;
    writeln!(
        report,
        "- each at half of its own peak (direct at {:.0} req/s): {:.0} µs",
        half_rate("direct"),
        added_own
    )?;
    writeln!(
        report,
        "- gerbang-tls at its half peak over direct at Gerbang's half peak: {:.0} µs; nginx at its half peak over direct at its own: {:.0} µs",
        p99("gerbang-tls") - p99("direct@gerbang-half"),
        p99("nginx") - p99("direct")
    )?;

    let rss_end = [gw_plain.pid(), gw_tls.pid()].map(|p| procs::memory_kib(p).ok());
    let mib = |m: Option<(u64, u64)>| {
        m.map_or("–".to_string(), |(rss, hwm)| {
            format!(
                "{:.0} MiB (peak {:.0} MiB)",
                rss as f64 / 1024.0,
                hwm as f64 / 1024.0
            )
        })
    };
    writeln!(
        report,
        "\nGateway resident memory ({} PKS, {} User IDs): plaintext {} at start, {} after warming every User ID, {} after the load; TLS {} at start, {} after warming, {} after the load.",
        a.pks,
        a.users,
        mib(rss_at_start[0]),
        mib(rss_after_warm[0]),
        mib(rss_end[0]),
        mib(rss_at_start[1]),
        mib(rss_after_warm[1]),
        mib(rss_end[1])
    )?;

    // Stop the proxies now: the scale part starts its own gateways, and a stopped gateway
    // has written and fsynced every record it had queued.
    nginx.stop(Duration::from_secs(5));
    let mut gateways = vec![gw_plain, gw_nolog, gw_tls];
    if let Some((server, gw, _, _)) = redis_gw {
        gateways.push(gw);
        gateways.push(server);
    }
    for p in &mut gateways {
        p.stop(Duration::from_secs(5));
    }

    // Did the gateways with a decision log write it, one record per answer, and does it verify?
    writeln!(
        report,
        "\n## Decision log (read after the gateways stopped)\n"
    )?;
    let mut logs_ok = true;
    for t in &targets {
        let Some(cfg) = &t.audit_config else {
            continue;
        };
        let answered: f64 = closed
            .iter()
            .chain(open.iter())
            .filter(|r| r.tgt == t.name)
            .map(|r| r.f("requests"))
            .filter(|x| x.is_finite())
            .sum();
        match check_log(a, t.name, cfg, dir, pids) {
            Ok(c) => {
                let enough = c.records as f64 >= answered;
                logs_ok &= enough && c.intact;
                writeln!(
                    report,
                    "- {}: {} records (and {} open events) in {} file(s), {:.1} MiB; {} the {answered:.0} answers of its measured runs (warm-up and probes add more); `gerbang audit verify`: {}",
                    t.name,
                    c.records,
                    c.opens,
                    c.files,
                    c.bytes as f64 / 1024.0 / 1024.0,
                    if enough { "at least" } else { "FEWER than" },
                    c.verdict
                )?;
                if !enough || !c.intact {
                    findings.push(format!(
                        "{}'s decision log: {} records for {answered:.0} measured answers; verify: {}",
                        t.name, c.records, c.verdict
                    ));
                }
            }
            Err(e) => {
                logs_ok = false;
                writeln!(report, "- {}: **{e:#}**", t.name)?;
                findings.push(format!("{}'s decision log: {e:#}", t.name));
            }
        }
    }
    let nolog_log = nolog_cfg.with_file_name(genconf::AUDIT_DIR);
    writeln!(
        report,
        "- gerbang-nolog: no `[audit]` table, {}.",
        if nolog_log.exists() {
            "yet it has a log directory"
        } else {
            "no log directory"
        }
    )?;

    // The verdicts of this part.
    writeln!(report, "\n## DESIGN §7, load part\n")?;
    writeln!(report, "| target | measured | verdict |")?;
    writeln!(report, "|---|---|---|")?;
    let r = rps("gerbang") / rps("nginx");
    writeln!(
        report,
        "| throughput with every check on ≥ 1.0 × nginx | {r:.2} × (TLS: {:.2} ×) | {} |",
        rps("gerbang-tls") / rps("nginx"),
        if r >= 1.0 {
            "met".to_string()
        } else {
            format!("missed by {:.0} %", (1.0 - r) * 100.0)
        }
    )?;
    if peak.contains_key("gerbang-redis") {
        let rr = rps("gerbang-redis") / rps("nginx");
        writeln!(
            report,
            "| (d) throughput with the Redis quota store ≥ 1.0 × nginx | {rr:.2} × | {} |",
            if rr >= 1.0 {
                "met".to_string()
            } else {
                format!("missed by {:.0} %", (1.0 - rr) * 100.0)
            }
        )?;
    }
    writeln!(
        report,
        "| added p99 ≤ 1 ms over direct at half of peak | {added_same:.0} µs (same rate) | {} |",
        if added_same <= 1000.0 {
            "met".to_string()
        } else {
            format!("missed by {:.0} µs", added_same - 1000.0)
        }
    )?;
    if missing.is_empty() {
        writeln!(
            report,
            "| every check on | every check of this mix, the decision log included ({}) | {} |",
            if logs_ok {
                "written and verified, see above"
            } else {
                "but see *Decision log* above"
            },
            if logs_ok {
                "met (no card-reader requests in the mix, so no SAM validation)"
            } else {
                "not shown: a decision log is missing or does not verify"
            }
        )?;
    } else {
        writeln!(
            report,
            "| every check on | {} not in this build | partial: the figures above are without them |",
            missing.join(", ")
        )?;
    }

    Ok(())
}

/// What a gateway's decision log holds, counted here and checked by `gerbang audit verify`.
struct LogCheck {
    files: usize,
    /// Lines that are records (one per request).
    records: u64,
    /// Open events: one per start of a writer.
    opens: u64,
    bytes: u64,
    intact: bool,
    /// The last line of `gerbang audit verify` (`intact: …` or `FAILED: …`).
    verdict: String,
}

/// Counts the records of the decision log of the gateway configured by `config` (its day
/// files `audit-*.jsonl` in `audit/` beside it) and verifies the log with the gerbang CLI.
fn check_log(
    a: &BenchArgs,
    name: &str,
    config: &Path,
    dir: &Path,
    pids: &Path,
) -> anyhow::Result<LogCheck> {
    use std::io::BufRead as _;
    let log_dir = config.with_file_name(genconf::AUDIT_DIR);
    let entries = std::fs::read_dir(&log_dir)
        .with_context(|| format!("no decision log: cannot read {}", log_dir.display()))?;
    let mut c = LogCheck {
        files: 0,
        records: 0,
        opens: 0,
        bytes: 0,
        intact: false,
        verdict: String::new(),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", log_dir.display()))?
            .path();
        let is_day_file = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"));
        if !is_day_file {
            continue;
        }
        c.files += 1;
        let file =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            c.bytes += n as u64;
            if line.contains("\"event\":\"open\"") {
                c.opens += 1;
            } else if !line.trim().is_empty() {
                c.records += 1;
            }
        }
    }
    if c.records == 0 {
        bail!(
            "no records in {} ({} day files)",
            log_dir.display(),
            c.files
        );
    }
    let mut cmd = Command::new(a.bin_dir.join("gerbang"));
    cmd.args(["audit", "verify", "--config"]).arg(config);
    let (_, ok, out, err) = procs::run_timed(
        cmd,
        dir,
        &format!("verify-{name}"),
        pids,
        Duration::from_secs(300),
    )?;
    c.intact = ok;
    c.verdict = out
        .lines()
        .chain(err.lines())
        .rfind(|l| l.starts_with("intact") || l.starts_with("FAILED") || l.starts_with("error"))
        .unwrap_or("no verdict printed")
        .to_string();
    Ok(c)
}

#[allow(clippy::too_many_arguments)]
fn scale(
    a: &BenchArgs,
    dir: &Path,
    pids: &Path,
    sim_addr: SocketAddr,
    hash: &str,
    policy: Option<&Path>,
    report: &mut String,
    raw: &mut String,
) -> anyhow::Result<()> {
    let sizes: Vec<(usize, usize)> = a
        .scale
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (p, u) = s
                .trim()
                .split_once(':')
                .context("--scale: PKS:UserIDs pairs")?;
            anyhow::Ok((p.parse()?, u.parse()?))
        })
        .collect::<Result<_, _>>()?;
    writeln!(
        report,
        "\n## Configuration size (wall times; memory from /proc/PID/status)\n"
    )?;
    writeln!(
        report,
        "| PKS | User IDs | `gerbang check` (ms) | start → listening (ms) | RSS after start (MiB) | SIGHUP → `reloaded PKS files` (ms) | RSS after reload (MiB) | peak RSS (MiB) |"
    )?;
    writeln!(report, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut last: Option<(usize, usize, f64, f64, f64, f64, f64)> = None;
    for (n_pks, n_users) in sizes {
        eprintln!("configuration with {n_pks} PKS / {n_users} User IDs");
        let sub = dir.join(format!("scale-{n_pks}"));
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let t_gen = Instant::now();
        let cfg = genconf::generate(&GenArgs {
            pks: n_pks,
            users: n_users,
            dir: sub.clone(),
            upstream: sim_addr,
            listen,
            tls_cert: None,
            tls_key: None,
            hash: Some(hash.to_string()),
            gerbang: a.bin_dir.join("gerbang"),
            threads: None,
            policy_dir: policy.map(Path::to_path_buf),
            quota: None,
            audit: true,
        })?;
        let gen_ms = t_gen.elapsed().as_secs_f64() * 1e3;

        let mut cmd = Command::new(a.bin_dir.join("gerbang"));
        cmd.arg("check").arg("--config").arg(&cfg);
        let (check, ok, out, err) =
            procs::run_timed(cmd, &sub, "check", pids, Duration::from_secs(300))?;
        if !ok {
            bail!("gerbang check refused the {n_pks}-PKS configuration:\n{out}{err}");
        }
        let check_ms = check.as_secs_f64() * 1e3;

        let (mut gw, took) = start_gateway(a, "gerbang-scale", &cfg, listen, &sub, pids, "info")?;
        let start_ms = took.as_secs_f64() * 1e3;
        let (rss_start, _) = procs::memory_kib(gw.pid())?;

        // SIGHUP, then wait for the log line (polling its stderr file every millisecond).
        let before = std::fs::read_to_string(&gw.stderr)
            .unwrap_or_default()
            .len();
        let t0 = Instant::now();
        gw.signal("HUP")?;
        let deadline = t0 + Duration::from_secs(120);
        let reload_ms = loop {
            let s = std::fs::read_to_string(&gw.stderr).unwrap_or_default();
            let new = s.get(before..).unwrap_or("");
            if new.contains("reloaded PKS files") {
                break t0.elapsed().as_secs_f64() * 1e3;
            }
            if new.contains("reload refused") {
                bail!("the reload was refused:\n{new}");
            }
            gw.check_alive()?;
            if Instant::now() > deadline {
                bail!("no `reloaded PKS files` within 120 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let (rss_reload, hwm) = procs::memory_kib(gw.pid())?;
        gw.stop(Duration::from_secs(5));
        let mib = |kib: u64| kib as f64 / 1024.0;
        writeln!(
            report,
            "| {n_pks} | {n_users} | {check_ms:.0} | {start_ms:.0} | {:.1} | {reload_ms:.0} | {:.1} | {:.1} |",
            mib(rss_start),
            mib(rss_reload),
            mib(hwm)
        )?;
        writeln!(
            raw,
            "{}",
            serde_json::json!({
                "scale": {"pks": n_pks, "users": n_users, "gen_config_ms": gen_ms, "check_ms": check_ms,
                          "start_ms": start_ms, "rss_start_kib": rss_start, "reload_ms": reload_ms,
                          "rss_reload_kib": rss_reload, "hwm_kib": hwm}
            })
        )?;
        last = Some((
            n_pks,
            n_users,
            check_ms,
            start_ms,
            reload_ms,
            mib(rss_reload),
            mib(hwm),
        ));
    }
    writeln!(
        report,
        "\nEvery configuration has its decision log (`[audit]`), as deployed, so start includes opening it. `gerbang check` and start times include process start; reload time includes running kill(1) and the 1 ms polling of the log file."
    )?;
    if let Some((p, u, check, start, reload, rss, hwm)) = last {
        writeln!(
            report,
            "\n## DESIGN §7, configuration part ({p} PKS / {u} User IDs)\n"
        )?;
        writeln!(report, "| target | measured | verdict |")?;
        writeln!(report, "|---|---|---|")?;
        let v = |x: f64, lim: f64, unit: &str| {
            if x <= lim {
                "met".to_string()
            } else {
                format!("missed by {:.0} {unit}", x - lim)
            }
        };
        writeln!(
            report,
            "| loading ≤ 1 s | check {check:.0} ms, start {start:.0} ms | {} |",
            v(check.max(start), 1000.0, "ms")
        )?;
        writeln!(
            report,
            "| reloading ≤ 1 s | {reload:.0} ms | {} |",
            v(reload, 1000.0, "ms")
        )?;
        writeln!(
            report,
            "| resident memory ≤ 300 MB | {rss:.1} MiB after reload, peak {hwm:.1} MiB | {} |",
            v(hwm * 1.048_576, 300.0, "MB")
        )?;
    }
    Ok(())
}

//! The runs of the load part: one `loadgen run` per target and round, the CPU time the
//! proxy and the simulator spent on it, and the medians across rounds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::stack::{Inputs, Tgt, find};
use super::{BenchArgs, runtime};
use crate::client::{self, Target, Tls};
use crate::mix::{self, Kind};
use crate::procs;

/// What every `loadgen run` of the bench shares.
#[derive(Clone, Copy)]
pub(super) struct Env<'a> {
    pub a: &'a BenchArgs,
    pub dir: &'a Path,
    pub pids: &'a Path,
    pub users: &'a Path,
    pub niks: &'a Path,
    pub sim_pid: u32,
}

/// One run's JSON plus what the driver measured around it.
#[derive(Debug, Clone)]
pub(super) struct RunRec {
    /// The target it ran against (its label may say more, e.g. `direct@gerbang-half`).
    pub tgt: &'static str,
    pub round: usize,
    pub json: Value,
    pub proxy_cpu_us_per_req: Option<f64>,
    pub sim_cpu_us_per_req: Option<f64>,
}

impl RunRec {
    pub fn f(&self, key: &str) -> f64 {
        self.json[key].as_f64().unwrap_or(f64::NAN)
    }
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
    let exe = std::env::current_exe().context("locating loadgen")?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .args(["--name", label])
        .arg("--target")
        .arg(t.addr.to_string())
        .arg("--users")
        .arg(e.users)
        .arg("--niks")
        .arg(e.niks)
        .arg("--connections")
        .arg(connections.to_string())
        .arg("--duration")
        .arg(duration.to_string())
        .arg("--threads")
        .arg(e.a.threads.to_string())
        .arg("--mix")
        .arg(e.a.mix.to_string());
    if let Some(ca) = &t.tls_ca {
        cmd.arg("--tls-ca").arg(ca);
    }
    if let Some(r) = rate {
        cmd.arg("--rate").arg(format!("{r:.1}"));
    }
    let limit = Duration::from_secs_f64(duration + 200.0);
    let (_, ok, out, err) = procs::run_timed(cmd, e.dir, "loadgen", e.pids, limit)?;
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
    rate: Option<f64>,
    label: &str,
    round: usize,
) -> anyhow::Result<RunRec> {
    let a = e.a;
    let (p0, s0) = (cpu_of(&t.proxy_pids), procs::cpu_seconds(e.sim_pid));
    let json = loadgen(e, t, a.connections, a.duration, rate, label)?;
    let (p1, s1) = (cpu_of(&t.proxy_pids), procs::cpu_seconds(e.sim_pid));
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
pub(super) struct Med {
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub errors: f64,
    pub proxy_cpu: f64,
    pub sim_cpu: f64,
    pub unexpected: u64,
    /// New connections per 1,000 answers (0 with working keep-alive).
    pub reconnects_per_k: f64,
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

/// The runs of a label (a target's name, or e.g. `direct@gerbang-half`).
fn labelled<'r>(runs: &'r [RunRec], label: &str) -> Vec<&'r RunRec> {
    runs.iter().filter(|r| r.json["target"] == label).collect()
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

/// What the probes of the gateways found.
pub(super) struct Probes {
    /// Answers of the plaintext gateway carry `quotaLimiter`: daily quota metering is on.
    pub quota: bool,
    pub plain: String,
    pub nolog: String,
    pub tls: String,
    /// (d)'s: whether its answers carry `quotaLimiter`, and its description.
    pub redis: Option<(bool, String)>,
}

/// Probes every gateway once per request kind: what this build of Gerbang checks.
pub(super) fn probe_gateways(targets: &[Tgt], inputs: &Inputs) -> anyhow::Result<Probes> {
    let target = |name| find(targets, name);
    let user = inputs.users.first().context("no User ID")?;
    let niks = &inputs.niks;
    let (quota, plain) = probe(target("gerbang")?, user, niks)?;
    let (_, nolog) = probe(target("gerbang-nolog")?, user, niks)?;
    let (_, tls) = probe(target("gerbang-tls")?, user, niks)?;
    let redis = match target("gerbang-redis") {
        Ok(t) => Some(probe(t, user, niks)?),
        Err(_) => None,
    };
    Ok(Probes {
        quota,
        plain,
        nolog,
        tls,
        redis,
    })
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

/// Warms every User ID on every target (argon2 once per User ID and gateway), untimed; a
/// warm-up with errors or unexpected answers becomes a finding.
pub(super) fn warm_up(
    e: &Env<'_>,
    targets: &[Tgt],
    users: usize,
    findings: &mut Vec<String>,
) -> anyhow::Result<()> {
    eprintln!("warming {users} User IDs on every target");
    for t in targets {
        let w = loadgen(e, t, users, 2.0, None, t.name)?;
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
    Ok(())
}

/// Peak throughput: the closed-loop runs and each target's medians.
pub(super) struct Peak {
    pub runs: Vec<RunRec>,
    pub med: BTreeMap<&'static str, Med>,
}

impl Peak {
    /// A target's median throughput.
    pub fn rps(&self, name: &str) -> f64 {
        self.med.get(name).map_or(f64::NAN, |m| m.rps)
    }

    /// Half of a target's median throughput: the rate of its latency runs.
    pub fn half_rate(&self, name: &str) -> f64 {
        self.rps(name) * 0.5
    }
}

/// Peak throughput, closed loop, interleaved rounds (the order rotates per round).
pub(super) fn peak(e: &Env<'_>, targets: &[Tgt]) -> anyhow::Result<Peak> {
    let rounds = e.a.rounds;
    let mut runs = Vec::new();
    eprintln!("peak throughput: {rounds} rounds");
    for round in 1..=rounds {
        for k in 0..targets.len() {
            let t = &targets[(k + round - 1) % targets.len()];
            runs.push(measured(e, t, None, t.name, round)?);
        }
    }
    let med = targets
        .iter()
        .map(|t| (t.name, med(&labelled(&runs, t.name))))
        .collect();
    Ok(Peak { runs, med })
}

/// Latency at half of peak: the open-loop runs and, per label, the rate and the medians.
pub(super) struct Half {
    pub runs: Vec<RunRec>,
    pub med: BTreeMap<String, (f64, Med)>,
}

impl Half {
    /// The median p50 and p99 of a label.
    pub fn latency(&self, label: &str) -> (f64, f64) {
        self.med
            .get(label)
            .map_or((f64::NAN, f64::NAN), |(_, m)| (m.p50, m.p99))
    }
}

/// Latency at half of each target's own peak, open loop; plus direct at Gerbang's rate,
/// and the gateway without its decision log at the rate of the one with it (the log's
/// latency at the same load).
pub(super) fn half(e: &Env<'_>, targets: &[Tgt], peak: &Peak) -> anyhow::Result<Half> {
    let target = |name| find(targets, name);
    let mut plan: Vec<(&Tgt, String, f64)> = targets
        .iter()
        .map(|t| (t, t.name.to_string(), peak.half_rate(t.name)))
        .collect();
    plan.push((
        target("direct")?,
        "direct@gerbang-half".to_string(),
        peak.half_rate("gerbang"),
    ));
    plan.push((
        target("gerbang-nolog")?,
        "gerbang-nolog@gerbang-half".to_string(),
        peak.half_rate("gerbang"),
    ));
    let mut runs = Vec::new();
    eprintln!("latency at half of peak: {} rounds", e.a.rounds);
    for round in 1..=e.a.rounds {
        for k in 0..plan.len() {
            let (t, label, rate) = &plan[(k + round - 1) % plan.len()];
            if !rate.is_finite() || *rate <= 0.0 {
                continue;
            }
            runs.push(measured(e, t, Some(*rate), label, round)?);
        }
    }
    let med = plan
        .iter()
        .map(|(_, label, rate)| (label.clone(), (*rate, med(&labelled(&runs, label)))))
        .collect();
    Ok(Half { runs, med })
}

/// Every run's JSON line with the round and the CPU figures, for the raw file.
pub(super) fn write_raw(raw: &mut String, runs: &[&RunRec]) -> anyhow::Result<()> {
    for r in runs {
        let mut j = r.json.clone();
        j["round"] = r.round.into();
        j["proxy_cpu_us_per_req"] = r.proxy_cpu_us_per_req.into();
        j["sim_cpu_us_per_req"] = r.sim_cpu_us_per_req.into();
        writeln!(raw, "{j}")?;
    }
    Ok(())
}

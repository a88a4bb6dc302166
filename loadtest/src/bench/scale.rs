//! The configuration-size part of the bench: for each size, `gerbang check`, start until
//! listening, a reload by SIGHUP, and resident memory.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use gerbang_supervise::Signal;

use super::report::verdict;
use super::{Common, Out, free_port, start_gateway};
use crate::genconf::{self, GenArgs};
use crate::procs;

/// What one configuration size measured.
struct Size {
    pks: usize,
    users: usize,
    gen_ms: f64,
    check_ms: f64,
    start_ms: f64,
    rss_start_kib: u64,
    reload_ms: f64,
    rss_reload_kib: u64,
    hwm_kib: u64,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Measures every size of `--scale` and writes the configuration part of the report.
pub(super) fn scale(c: &Common<'_>, out: &mut Out) -> anyhow::Result<()> {
    let sizes = sizes(&c.a.scale)?;
    let report = &mut out.report;
    writeln!(
        report,
        "\n## Configuration size (wall times; memory from /proc/PID/status)\n"
    )?;
    writeln!(
        report,
        "| PKS | User IDs | `gerbang check` (ms) | start → listening (ms) | RSS after start (MiB) | SIGHUP → `reloaded PKS files` (ms) | RSS after reload (MiB) | peak RSS (MiB) |"
    )?;
    writeln!(report, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut last = None;
    for (pks, users) in sizes {
        eprintln!("configuration with {pks} PKS / {users} User IDs");
        let s = measure(c, pks, users)?;
        writeln!(
            report,
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1} |",
            s.pks,
            s.users,
            s.check_ms,
            s.start_ms,
            mib(s.rss_start_kib),
            s.reload_ms,
            mib(s.rss_reload_kib),
            mib(s.hwm_kib)
        )?;
        writeln!(
            out.raw,
            "{}",
            serde_json::json!({
                "scale": {"pks": s.pks, "users": s.users, "gen_config_ms": s.gen_ms, "check_ms": s.check_ms,
                          "start_ms": s.start_ms, "rss_start_kib": s.rss_start_kib, "reload_ms": s.reload_ms,
                          "rss_reload_kib": s.rss_reload_kib, "hwm_kib": s.hwm_kib}
            })
        )?;
        last = Some(s);
    }
    writeln!(
        report,
        "\nEvery configuration has its decision log (`[audit]`), as deployed, so start includes opening it. `gerbang check` and start times include process start; reload time includes sending the signal and the 1 ms polling of the log file."
    )?;
    if let Some(s) = last {
        verdicts(report, &s)?;
    }
    Ok(())
}

/// `--scale`'s PKS:UserIDs pairs.
fn sizes(scale: &str) -> anyhow::Result<Vec<(usize, usize)>> {
    scale
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (p, u) = s
                .trim()
                .split_once(':')
                .context("--scale: PKS:UserIDs pairs")?;
            anyhow::Ok((p.parse()?, u.parse()?))
        })
        .collect()
}

/// One size: generate, check, start, reload, and read the memory.
fn measure(c: &Common<'_>, pks: usize, users: usize) -> anyhow::Result<Size> {
    let sub = c.dir.join(format!("scale-{pks}"));
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let t_gen = Instant::now();
    let cfg = genconf::generate(&GenArgs {
        pks,
        users,
        dir: sub.clone(),
        upstream: c.sim_addr,
        listen,
        tls_cert: None,
        tls_key: None,
        hash: Some(c.hash.to_string()),
        gerbang: c.a.bin_dir.join("gerbang"),
        threads: None,
        policy_dir: c.policy.map(Path::to_path_buf),
        quota: None,
        audit: true,
    })?;
    let gen_ms = t_gen.elapsed().as_secs_f64() * 1e3;

    let mut cmd = Command::new(c.a.bin_dir.join("gerbang"));
    cmd.arg("check").arg("--config").arg(&cfg);
    let (check, ok, out, err) =
        procs::run_timed(cmd, &sub, "check", c.pids, Duration::from_secs(300))?;
    if !ok {
        bail!("gerbang check refused the {pks}-PKS configuration:\n{out}{err}");
    }

    let (mut gw, took) = start_gateway(c.a, "gerbang-scale", &cfg, listen, &sub, c.pids, "info")?;
    let (rss_start_kib, _) = procs::memory_kib(gw.pid())?;

    // SIGHUP, then wait for the log line (polling its stderr file every millisecond).
    let before = gw.stderr().len();
    let t0 = Instant::now();
    gw.signal(Signal::HUP).context("sending SIGHUP")?;
    let reload_ms = procs::wait_stderr(
        &mut gw,
        "log `reloaded PKS files`",
        Duration::from_secs(120),
        |log| {
            let new = log.get(before..).unwrap_or("");
            if new.contains("reloaded PKS files") {
                Ok(Some(t0.elapsed().as_secs_f64() * 1e3))
            } else if new.contains("reload refused") {
                Err(format!("the reload was refused:\n{new}"))
            } else {
                Ok(None)
            }
        },
    )?;
    let (rss_reload_kib, hwm_kib) = procs::memory_kib(gw.pid())?;
    let _ = gw.stop(Duration::from_secs(5));
    Ok(Size {
        pks,
        users,
        gen_ms,
        check_ms: check.as_secs_f64() * 1e3,
        start_ms: took.as_secs_f64() * 1e3,
        rss_start_kib,
        reload_ms,
        rss_reload_kib,
        hwm_kib,
    })
}

/// The configuration part's verdicts, for the largest size.
fn verdicts(report: &mut String, s: &Size) -> anyhow::Result<()> {
    writeln!(
        report,
        "\n## Targets (docs/architecture.md), configuration part ({} PKS / {} User IDs)\n",
        s.pks, s.users
    )?;
    writeln!(report, "| target | measured | verdict |")?;
    writeln!(report, "|---|---|---|")?;
    let v = |x: f64, lim: f64, unit: &str| {
        verdict(x <= lim, || format!("missed by {:.0} {unit}", x - lim))
    };
    let (rss, hwm) = (mib(s.rss_reload_kib), mib(s.hwm_kib));
    writeln!(
        report,
        "| loading ≤ 1 s | check {:.0} ms, start {:.0} ms | {} |",
        s.check_ms,
        s.start_ms,
        v(s.check_ms.max(s.start_ms), 1000.0, "ms")
    )?;
    writeln!(
        report,
        "| reloading ≤ 1 s | {:.0} ms | {} |",
        s.reload_ms,
        v(s.reload_ms, 1000.0, "ms")
    )?;
    writeln!(
        report,
        "| resident memory ≤ 300 MB | {rss:.1} MiB after reload, peak {hwm:.1} MiB | {} |",
        v(hwm * 1.048_576, 300.0, "MB")
    )?;
    Ok(())
}

//! The load part's decision-log check: once the gateways have stopped, each log holds
//! at least one record per answer of its measured runs, and `gerbang audit verify` passes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::runs::RunRec;
use super::stack::Tgt;
use super::{BenchArgs, Out};
use crate::genconf;
use crate::procs;

/// Did the gateways with a decision log write it, one record per answer, and does it
/// verify? Writes the report's section; returns whether every log is whole.
pub(super) fn report(
    a: &BenchArgs,
    dir: &Path,
    pids: &Path,
    targets: &[Tgt],
    runs: &[&RunRec],
    nolog_config: &Path,
    out: &mut Out,
) -> anyhow::Result<bool> {
    let report = &mut out.report;
    writeln!(
        report,
        "\n## Decision log (read after the gateways stopped)\n"
    )?;
    let mut logs_ok = true;
    for t in targets {
        let Some(cfg) = &t.audit_config else {
            continue;
        };
        let answered: f64 = runs
            .iter()
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
                    out.findings.push(format!(
                        "{}'s decision log: {} records for {answered:.0} measured answers; verify: {}",
                        t.name, c.records, c.verdict
                    ));
                }
            }
            Err(e) => {
                logs_ok = false;
                writeln!(report, "- {}: **{e:#}**", t.name)?;
                out.findings
                    .push(format!("{}'s decision log: {e:#}", t.name));
            }
        }
    }
    let nolog_log: PathBuf = nolog_config.with_file_name(genconf::AUDIT_DIR);
    writeln!(
        report,
        "- gerbang-nolog: no `[audit]` table, {}.",
        if nolog_log.exists() {
            "yet it has a log directory"
        } else {
            "no log directory"
        }
    )?;
    Ok(logs_ok)
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

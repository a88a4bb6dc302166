//! The load part of the bench, as its stages: inputs, targets, probes, warm-up, peak
//! throughput, latency at half of peak, memory, decision logs, verdicts.

use super::runs::{self, Env};
use super::stack::{self, Stack};
use super::{Common, Out, decision_log, report};

/// Measures every target and writes the load part of the report.
pub(super) fn load(c: &Common<'_>, out: &mut Out) -> anyhow::Result<()> {
    let inputs = stack::prepare(c)?;
    let stack = Stack::start(c, &inputs)?;
    let rss_at_start = stack.memory();

    let probes = runs::probe_gateways(&stack.targets, &inputs)?;
    report::what_was_measured(&mut out.report, c.policy, &probes, &stack.redis_note)?;

    let env = Env {
        a: c.a,
        dir: c.dir,
        pids: c.pids,
        users: &inputs.users_path,
        niks: &inputs.niks_path,
        sim_pid: c.sim_pid,
    };
    runs::warm_up(&env, &stack.targets, inputs.users.len(), &mut out.findings)?;
    let rss_after_warm = stack.memory();

    let peak = runs::peak(&env, &stack.targets)?;
    let half = runs::half(&env, &stack.targets, &peak)?;
    let all_runs: Vec<&runs::RunRec> = peak.runs.iter().chain(half.runs.iter()).collect();
    runs::write_raw(&mut out.raw, &all_runs)?;

    report::peak_table(
        &mut out.report,
        c.a,
        &stack.targets,
        &peak,
        &mut out.findings,
    )?;
    report::ratios(&mut out.report, &peak, &half)?;
    report::per_round(
        &mut out.report,
        c.a,
        &stack.targets,
        &peak,
        &mut out.findings,
    )?;
    let added_same = report::half_table(&mut out.report, c.a, &peak, &half)?;
    let added_worst = report::half_per_round(&mut out.report, c.a, &half, &mut out.findings)?;
    let rss_end = stack.memory();
    report::memory(
        &mut out.report,
        c.a,
        [rss_at_start, rss_after_warm, rss_end],
    )?;

    let targets = stack.stop();
    let logs_ok = decision_log::report(
        c.a,
        c.dir,
        c.pids,
        &targets,
        &all_runs,
        &inputs.nolog.config,
        out,
    )?;
    let missing = report::missing(c.policy, &probes);
    report::verdicts(
        &mut out.report,
        &peak,
        [added_same, added_worst],
        &missing,
        logs_ok,
    )?;
    Ok(())
}

//! The load part's sections of the report, from the medians of the runs.

use std::fmt::Write as _;
use std::path::Path;

use super::BenchArgs;
use super::runs::{Half, Peak, Probes};
use super::stack::Tgt;

fn fmt_opt(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "–".into()
    }
}

/// What this build of Gerbang does not have, so what is not in the measured path.
pub(super) fn missing(policy: Option<&Path>, probes: &Probes) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if policy.is_none() {
        missing.push("Cedar policies");
    }
    if !probes.quota {
        missing.push("daily quotas");
    }
    missing
}

/// "What was measured": the targets, the checks of this build, and the probes.
pub(super) fn what_was_measured(
    report: &mut String,
    policy: Option<&Path>,
    probes: &Probes,
    redis_note: &str,
) -> anyhow::Result<()> {
    writeln!(report, "\n## What was measured\n")?;
    writeln!(
        report,
        "- (a) `direct`: generator → dwh-sim; (b) `nginx`: → nginx (keep-alive reverse proxy, `worker_processes auto`, access log off) → dwh-sim; the framework floors `pingora-bare` and `hyper-bare` (loadtest/src/bin): → pingora's `ProxyHttp` (same version, worker threads and upstream keep-alive as Gerbang) or hyper with a keep-alive client pool, forwarding to dwh-sim and doing nothing else; (c) `gerbang`: → Gerbang plaintext → dwh-sim; (c-nolog) `gerbang-nolog`: the same plaintext gateway without `[audit]`, so without its decision log (the only difference); (c-tls) `gerbang-tls`: → Gerbang TLS (rustls, generator verifies the dev CA) → dwh-sim; (d) `gerbang-redis`, see below. Every target gets the same bodies from the same User IDs and source addresses."
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
    if probes.quota {
        built.push("daily quota metering (answers carry `quotaLimiter`; embedded redb store)");
    }
    built.push(
        "the decision log (`[audit]` as deployed: one hash-chained, HMAC-sealed record per request, written before an answer carrying data leaves, fsync every 50 ms in the background) — in `gerbang`, `gerbang-tls` and `gerbang-redis`, not in `gerbang-nolog`",
    );
    writeln!(
        report,
        "- Gerbang's checks in this build, all on: {}.",
        built.join(", ")
    )?;
    let missing = missing(policy, probes);
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
    writeln!(report, "- probe through gerbang: {}", probes.plain)?;
    writeln!(report, "- probe through gerbang-nolog: {}", probes.nolog)?;
    writeln!(report, "- probe through gerbang-tls: {}", probes.tls)?;
    if let Some((quota, p)) = &probes.redis {
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
    Ok(())
}

/// The peak throughput table; a target that does not keep connections alive, or that
/// answered with errors or unexpected answers, becomes a finding.
pub(super) fn peak_table(
    report: &mut String,
    a: &BenchArgs,
    targets: &[Tgt],
    peak: &Peak,
    findings: &mut Vec<String>,
) -> anyhow::Result<()> {
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
    for t in targets {
        let Some(m) = peak.med.get(t.name) else {
            continue;
        };
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
    Ok(())
}

/// The ratios of median throughput, the decision log's cost among them.
pub(super) fn ratios(report: &mut String, peak: &Peak, half: &Half) -> anyhow::Result<()> {
    let rps = |n: &str| peak.rps(n);
    writeln!(report, "\nRatios of median throughput:\n")?;
    writeln!(
        report,
        "- gerbang / nginx = **{:.2}** (target in docs/architecture.md: ≥ 1.00)",
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
    if peak.med.contains_key("gerbang-redis") {
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
    writeln!(
        report,
        "- the framework floors (forwarding and nothing else): pingora-bare / nginx = **{:.2}**, hyper-bare / nginx = **{:.2}**; Gerbang's own work: gerbang-nolog / pingora-bare = **{:.2}**, gerbang / pingora-bare = {:.2}",
        rps("pingora-bare") / rps("nginx"),
        rps("hyper-bare") / rps("nginx"),
        rps("gerbang-nolog") / rps("pingora-bare"),
        rps("gerbang") / rps("pingora-bare")
    )?;
    let (with_p50, with_p99) = half.latency("gerbang");
    let (same_p50, same_p99) = half.latency("gerbang-nolog@gerbang-half");
    let (own_p50, own_p99) = half.latency("gerbang-nolog");
    writeln!(
        report,
        "- decision log, gerbang (with it) / gerbang-nolog (without) = **{:.2}**; its latency at half load, at the same rate ({:.0} req/s for both): p50 **{:+.0} µs**, p99 **{:+.0} µs**; each at half of its own peak: p50 {:+.0} µs, p99 {:+.0} µs",
        rps("gerbang") / rps("gerbang-nolog"),
        peak.half_rate("gerbang"),
        with_p50 - same_p50,
        with_p99 - same_p99,
        with_p50 - own_p50,
        with_p99 - own_p99
    )?;
    Ok(())
}

/// Each target's throughput in each round, and its spread (largest over smallest); a
/// target whose rounds disagree by more than 2× becomes a finding, so one lucky or unlucky
/// round cannot carry the median.
pub(super) fn per_round(
    report: &mut String,
    a: &BenchArgs,
    targets: &[Tgt],
    peak: &Peak,
    findings: &mut Vec<String>,
) -> anyhow::Result<()> {
    writeln!(report, "\nPer round (req/s):\n")?;
    writeln!(report, "| target | {} | spread |", round_headers(a.rounds))?;
    writeln!(report, "|---|{}---:|", "---:|".repeat(a.rounds))?;
    for t in targets {
        let values: Vec<Option<f64>> = (1..=a.rounds)
            .map(|round| {
                peak.runs
                    .iter()
                    .find(|r| r.round == round && r.json["target"] == t.name)
                    .map(|r| r.f("throughput_rps"))
            })
            .collect();
        let s = spread(&values);
        writeln!(
            report,
            "| {} | {} | {} |",
            t.name,
            cells(&values),
            fmt_spread(s)
        )?;
        if s > SPREAD_LIMIT {
            findings.push(format!(
                "{}: peak throughput differs by {s:.1}× between rounds (over {SPREAD_LIMIT}×): the median is not a stable figure",
                t.name
            ));
        }
    }
    Ok(())
}

/// Rounds that disagree by more than this are reported as a finding.
const SPREAD_LIMIT: f64 = 2.0;

fn round_headers(rounds: usize) -> String {
    (1..=rounds)
        .map(|r| format!("round {r}"))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn cells(values: &[Option<f64>]) -> String {
    values
        .iter()
        .map(|v| v.map_or("–".into(), |v| format!("{v:.0}")))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Largest over smallest of the values present (NaN with fewer than two, or a zero).
fn spread(values: &[Option<f64>]) -> f64 {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.len() < 2 {
        return f64::NAN;
    }
    let max = present.iter().copied().fold(f64::MIN, f64::max);
    let min = present.iter().copied().fold(f64::MAX, f64::min);
    if min > 0.0 { max / min } else { f64::NAN }
}

fn fmt_spread(s: f64) -> String {
    if s.is_finite() {
        format!("{s:.2}×")
    } else {
        "–".into()
    }
}

/// The p99 at half load of each label in each round, with its spread, and Gerbang's added
/// p99 over direct at the same rate in each round: the tail target holds in every round or
/// not at all. Returns the worst round's added p99.
pub(super) fn half_per_round(
    report: &mut String,
    a: &BenchArgs,
    half: &Half,
    findings: &mut Vec<String>,
) -> anyhow::Result<f64> {
    let p99_of = |label: &str, round: usize| {
        half.runs
            .iter()
            .find(|r| r.round == round && r.json["target"] == label)
            .map(|r| r.f("p99_us"))
    };
    writeln!(report, "\nPer round, p99 at half load (µs):\n")?;
    writeln!(report, "| target | {} | spread |", round_headers(a.rounds))?;
    writeln!(report, "|---|{}---:|", "---:|".repeat(a.rounds))?;
    for label in half.med.keys() {
        let values: Vec<Option<f64>> = (1..=a.rounds).map(|r| p99_of(label, r)).collect();
        let s = spread(&values);
        writeln!(
            report,
            "| {label} | {} | {} |",
            cells(&values),
            fmt_spread(s)
        )?;
        if s > SPREAD_LIMIT {
            findings.push(format!(
                "{label}: p99 at half load differs by {s:.1}× between rounds (over {SPREAD_LIMIT}×): the tail depends on the round"
            ));
        }
    }
    let added: Vec<Option<f64>> = (1..=a.rounds)
        .map(|r| Some(p99_of("gerbang", r)? - p99_of("direct@gerbang-half", r)?))
        .collect();
    writeln!(
        report,
        "| added p99, gerbang over direct at the same rate | {} | |",
        cells(&added)
    )?;
    Ok(added.iter().flatten().copied().fold(f64::NAN, f64::max))
}

/// The latency table at half of peak, and the latency Gerbang adds over direct; returns
/// the added p99 at the same rate (the figure the target is about).
pub(super) fn half_table(
    report: &mut String,
    a: &BenchArgs,
    peak: &Peak,
    half: &Half,
) -> anyhow::Result<f64> {
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
    for (label, (rate, m)) in &half.med {
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
    let p99 = |n: &str| half.latency(n).1;
    let added_same = p99("gerbang") - p99("direct@gerbang-half");
    let added_own = p99("gerbang") - p99("direct");
    writeln!(
        report,
        "\nAdded p99 latency of Gerbang over direct at half load (target in docs/architecture.md: ≤ 1,000 µs):\n"
    )?;
    writeln!(
        report,
        "- at the same rate (Gerbang's half peak, {:.0} req/s, for both): **{:.0} µs**",
        peak.half_rate("gerbang"),
        added_same
    )?;
    writeln!(
        report,
        "- each at half of its own peak (direct at {:.0} req/s): {:.0} µs",
        peak.half_rate("direct"),
        added_own
    )?;
    writeln!(
        report,
        "- gerbang-tls at its half peak over direct at Gerbang's half peak: {:.0} µs; nginx at its half peak over direct at its own: {:.0} µs",
        p99("gerbang-tls") - p99("direct@gerbang-half"),
        p99("nginx") - p99("direct")
    )?;
    Ok(added_same)
}

/// The plaintext and TLS gateways' resident memory at start, after the warm-up and after
/// the load (each `[plaintext, TLS]`, in KiB with their peaks).
pub(super) fn memory(
    report: &mut String,
    a: &BenchArgs,
    [start, warm, end]: [[Option<(u64, u64)>; 2]; 3],
) -> anyhow::Result<()> {
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
        mib(start[0]),
        mib(warm[0]),
        mib(end[0]),
        mib(start[1]),
        mib(warm[1]),
        mib(end[1])
    )?;
    Ok(())
}

/// "Missed by" or "met".
pub(super) fn verdict(met: bool, missed: impl FnOnce() -> String) -> String {
    if met { "met".to_string() } else { missed() }
}

/// The load part's verdicts against the product's targets.
pub(super) fn verdicts(
    report: &mut String,
    peak: &Peak,
    [added_same, added_worst]: [f64; 2],
    missing: &[&str],
    logs_ok: bool,
) -> anyhow::Result<()> {
    let rps = |n: &str| peak.rps(n);
    writeln!(report, "\n## Targets (docs/architecture.md), load part\n")?;
    writeln!(report, "| target | measured | verdict |")?;
    writeln!(report, "|---|---|---|")?;
    let r = rps("gerbang") / rps("nginx");
    writeln!(
        report,
        "| throughput with every check on ≥ 1.0 × nginx | {r:.2} × (TLS: {:.2} ×) | {} |",
        rps("gerbang-tls") / rps("nginx"),
        verdict(r >= 1.0, || format!("missed by {:.0} %", (1.0 - r) * 100.0))
    )?;
    if peak.med.contains_key("gerbang-redis") {
        let rr = rps("gerbang-redis") / rps("nginx");
        writeln!(
            report,
            "| (d) throughput with the Redis quota store ≥ 1.0 × nginx | {rr:.2} × | {} |",
            verdict(rr >= 1.0, || format!(
                "missed by {:.0} %",
                (1.0 - rr) * 100.0
            ))
        )?;
    }
    writeln!(
        report,
        "| added p99 ≤ 1 ms over direct at half of peak, in every round | {added_same:.0} µs (same rate, median); worst round {added_worst:.0} µs | {} |",
        verdict(added_worst <= 1000.0, || format!(
            "missed by {:.0} µs in the worst round",
            added_worst - 1000.0
        ))
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

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn the_spread_is_the_largest_round_over_the_smallest() {
        assert_eq!(spread(&[Some(100.0), Some(250.0), Some(200.0)]), 2.5);
        assert_eq!(spread(&[Some(100.0), None, Some(150.0)]), 1.5);
    }

    #[test]
    fn a_spread_needs_two_rounds_and_no_zero() {
        assert!(spread(&[Some(100.0)]).is_nan());
        assert!(spread(&[None, None]).is_nan());
        assert!(spread(&[Some(0.0), Some(10.0)]).is_nan());
    }
}

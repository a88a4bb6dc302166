//! The gateway's Prometheus metrics, served on the admin listener. Names and labels are
//! fixed: `monitoring/` (alert rules, the Grafana dashboard) is written against them.
//! Counters are updated once per request in `logging`; quota gauges are refreshed when
//! Prometheus scrapes, from the meter, capped to the highest users.

use std::time::Instant;

use chrono::NaiveDate;
use gerbang_core::{Refusal, SanctionKind};
use gerbang_policy::{Action, Snapshot};
use gerbang_quota::Meter;

use crate::gateway::GatewayCtx;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets from 50 µs to 10 s: decisions are microseconds, DWH calls milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Decision-time buckets, from 500 ns to 10 ms.
const DECISION_BUCKETS: &[f64] = &[
    0.0000005, 0.000001, 0.000002, 0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.001, 0.01,
];

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: Histogram,
    pub upstream_errors: IntCounterVec,
    pub decision_duration: HistogramVec,
    quota_used: IntGaugeVec,
    quota_limit: IntGaugeVec,
    pub quota_store_up: IntGauge,
    pub policy_reloads: IntCounterVec,
    policy_info: IntGaugeVec,
    pub sam_validations: IntCounterVec,
    pub sam_duration: Histogram,
    pub audit_queue_depth: IntGauge,
    pub audit_write_duration: Histogram,
    pub audit_write_failures: IntCounter,
    pub audit_records_dropped: IntCounter,
    pub audit_healthy: IntGauge,
    audit_disk_free: IntGauge,
    audit_disk_size: IntGauge,
    audit_disk_free_alert: IntGauge,
    audit_maintenance_failures: IntCounter,
    /// Requests from addresses in no registered IP LAN, by whether they were recorded.
    pub unregistered: IntCounterVec,
    sanctions_active: IntGaugeVec,
    pub shadow_disagreements: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric in a registry of its own.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let single_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let single_histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let audit_write_failures = IntCounter::new(
            "gerbang_audit_write_failures_total",
            "Decision-log writes that failed (disk full, permission).",
        )?;
        registry.register(Box::new(audit_write_failures.clone()))?;
        let audit_maintenance_failures = IntCounter::new(
            "gerbang_audit_maintenance_failures_total",
            "Decision-log maintenance passes (compaction, archiving) that stopped on an error.",
        )?;
        registry.register(Box::new(audit_maintenance_failures.clone()))?;
        let audit_records_dropped = IntCounter::new(
            "gerbang_audit_records_dropped_total",
            "Refusals' decision-log records dropped because the log's queue was full (the disk slower than the traffic, or a flood).",
        )?;
        registry.register(Box::new(audit_records_dropped.clone()))?;
        Ok(Self {
            requests: counter(
                "gerbang_requests_total",
                "Requests by Pengguna, channel, action, decision (allow|deny) and reason.",
                &["pengguna", "channel", "action", "decision", "reason"],
            )?,
            request_duration: histogram(
                "gerbang_request_duration_seconds",
                "Time from the request's first byte to its logging, by channel.",
                LATENCY_BUCKETS,
                &["channel"],
            )?,
            upstream_duration: single_histogram(
                "gerbang_upstream_duration_seconds",
                "Time the DWH took to answer forwarded lookups.",
            )?,
            upstream_errors: counter(
                "gerbang_upstream_errors_total",
                "DWH failures by kind (timeout|unavailable|invalid|status|not_verdicts|other_nik).",
                &["kind"],
            )?,
            decision_duration: histogram(
                "gerbang_decision_duration_seconds",
                "Authorization time, from the decision cache (warm) or Cedar (cold).",
                DECISION_BUCKETS,
                &["cache"],
            )?,
            quota_used: gauge(
                "gerbang_quota_used",
                "NIK hits used today (WIB) per User ID; the highest users, up to the configured cap.",
                &["pengguna", "user_id"],
            )?,
            quota_limit: gauge(
                "gerbang_quota_limit",
                "Daily NIK-hit quota per User ID, with sanctions applied.",
                &["pengguna", "user_id"],
            )?,
            quota_store_up: single_gauge(
                "gerbang_quota_store_up",
                "1 when the quota store answers, 0 when it does not.",
            )?,
            policy_reloads: counter(
                "gerbang_policy_reloads_total",
                "Reloads of PKS files and policies by result (ok|error).",
                &["result"],
            )?,
            policy_info: gauge(
                "gerbang_policy_info",
                "The active policy set's hash (value always 1).",
                &["hash"],
            )?,
            sam_validations: counter(
                "gerbang_sam_validations_total",
                "Card-reader validations asked of the SAM sidecar, by result.",
                &["result"],
            )?,
            sam_duration: single_histogram(
                "gerbang_sam_request_duration_seconds",
                "Time the SAM sidecar took to answer.",
            )?,
            audit_queue_depth: single_gauge(
                "gerbang_audit_queue_depth",
                "Decision-log records waiting to be written.",
            )?,
            audit_write_duration: single_histogram(
                "gerbang_audit_write_duration_seconds",
                "Time to hand a decision-log record to the operating system.",
            )?,
            audit_write_failures,
            audit_records_dropped,
            unregistered: counter(
                "gerbang_unregistered_requests_total",
                "Requests from addresses in no registered IP LAN (all refused), by whether they were recorded (the first per address and minute is).",
                &["recorded"],
            )?,
            audit_healthy: single_gauge(
                "gerbang_audit_healthy",
                "1 when the decision log is being written, 0 when writing fails.",
            )?,
            audit_disk_free: single_gauge(
                "gerbang_audit_disk_free_bytes",
                "Free bytes of the decision log's filesystem (usable without root).",
            )?,
            audit_disk_size: single_gauge(
                "gerbang_audit_disk_size_bytes",
                "Size in bytes of the decision log's filesystem.",
            )?,
            audit_disk_free_alert: single_gauge(
                "gerbang_audit_disk_free_alert_bytes",
                "Free bytes under which the log's disk counts as low (audit.alert_free_mib).",
            )?,
            audit_maintenance_failures,
            sanctions_active: gauge(
                "gerbang_sanctions_active",
                "Sanctions in force (art. 45) by kind.",
                &["kind"],
            )?,
            shadow_disagreements: counter(
                "gerbang_shadow_disagreements_total",
                "Requests the shadow (candidate) policies would decide differently, by the decision each gives.",
                &["active", "shadow"],
            )?,
            registry,
        }
        .with_known_series())
    }

    /// Exports the counters of every known label value at 0 from the start, so the first
    /// error is an increase Prometheus can see (a series born at 1 shows no `rate`).
    fn with_known_series(self) -> Self {
        for kind in [
            "timeout",
            "unavailable",
            "invalid",
            "status",
            "not_verdicts",
            "other_nik",
        ] {
            self.upstream_errors.with_label_values(&[kind]);
        }
        for recorded in ["true", "false"] {
            self.unregistered.with_label_values(&[recorded]);
        }
        for result in ["ok", "error"] {
            self.policy_reloads.with_label_values(&[result]);
        }
        for result in ["valid", "unavailable"].into_iter().chain(
            gerbang_core::SamReason::ALL
                .iter()
                .filter(|r| {
                    !matches!(
                        r,
                        gerbang_core::SamReason::SidecarTimeout
                            | gerbang_core::SamReason::SidecarUnavailable
                    )
                })
                .map(|r| r.code()),
        ) {
            self.sam_validations.with_label_values(&[result]);
        }
        self
    }

    /// Records the policy set now in force.
    pub fn set_policy(&self, snap: &Snapshot) {
        self.policy_info.reset();
        self.policy_info
            .with_label_values(&[snap.engine().hash()])
            .set(1);
        let mut by_kind = std::collections::HashMap::new();
        for kind in SanctionKind::ALL {
            *by_kind.entry(kind.metric_kind()).or_insert(0) += snap.sanctions().count(kind);
        }
        for (kind, n) in by_kind {
            self.sanctions_active
                .with_label_values(&[kind])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Refreshes the quota gauges for `day`: the `cap` User IDs with the highest share of
    /// their quota used (then by hits, then by id, so the set is stable while idle).
    pub fn refresh_quota(&self, snap: &Snapshot, meter: &Meter, day: NaiveDate, cap: usize) {
        let mut rows: Vec<(u32, &str, &str, u32)> = snap
            .agreements()
            .iter()
            .flat_map(|p| {
                p.users.iter().map(move |u| {
                    (
                        meter.used(&u.id, day),
                        p.pengguna.as_str(),
                        u.id.as_str(),
                        u.kuota_harian.get(),
                    )
                })
            })
            .collect();
        // By share of the quota, so a small quota nearly used (the 80 % and 100 % alerts)
        // is never cut off by the cap behind large quotas with more hits.
        rows.sort_unstable_by(|a, b| {
            let share =
                |r: &(u32, &str, &str, u32)| u64::from(r.0) * 1_000_000 / u64::from(r.3.max(1));
            share(b)
                .cmp(&share(a))
                .then_with(|| b.0.cmp(&a.0))
                .then_with(|| a.2.cmp(b.2))
        });
        self.quota_used.reset();
        self.quota_limit.reset();
        for (used, pengguna, user, limit) in rows.into_iter().take(cap) {
            self.quota_used
                .with_label_values(&[pengguna, user])
                .set(i64::from(used));
            self.quota_limit
                .with_label_values(&[pengguna, user])
                .set(i64::from(limit));
        }
        self.quota_store_up.set(i64::from(meter.store_healthy()));
    }

    /// Refreshes the decision log's gauges and failure count from its own counters. No log
    /// configured counts as healthy: nothing is failing.
    pub fn refresh_audit(&self, log: Option<&gerbang_audit::AuditLog>) {
        let Some(log) = log else {
            self.audit_healthy.set(1);
            return;
        };
        let stats = log.stats();
        self.audit_healthy.set(i64::from(stats.healthy));
        self.audit_queue_depth
            .set(i64::try_from(stats.queue_depth).unwrap_or(i64::MAX));
        let failures = stats.write_failures + stats.fsync_failures;
        let seen = self.audit_write_failures.get();
        if failures > seen {
            self.audit_write_failures.inc_by(failures - seen);
        }
        let gauge = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
        if let Some(disk) = stats.disk {
            self.audit_disk_free.set(gauge(disk.free));
            self.audit_disk_size.set(gauge(disk.total));
        }
        self.audit_disk_free_alert
            .set(gauge(stats.alert_free_bytes));
        let seen = self.audit_maintenance_failures.get();
        if stats.maintenance_failures > seen {
            self.audit_maintenance_failures
                .inc_by(stats.maintenance_failures - seen);
        }
        let dropped = self.audit_records_dropped.get();
        if stats.records_dropped > dropped {
            self.audit_records_dropped
                .inc_by(stats.records_dropped - dropped);
        }
    }

    /// The registry, for metrics registered by other parts of the gateway (the client
    /// connections' in `listener.rs`).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

impl Metrics {
    /// Times one decision, from the decision cache (`warm`) or Cedar.
    pub(crate) fn observe_decision(&self, started: Instant, warm: bool) {
        self.decision_duration
            .with_label_values(&[if warm { "warm" } else { "cold" }])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts the request once, when it is logged.
    pub(crate) fn count_request(&self, ctx: &GatewayCtx) {
        let m = self;
        let allowed = ctx.refusal.is_none() && ctx.decision.as_ref().is_some_and(|d| d.allowed());
        let reason = match ctx.refusal {
            Some(r) => r.name(),
            None if allowed => "ok",
            None => "none",
        };
        m.requests
            .with_label_values(&[
                ctx.pengguna.as_deref().unwrap_or("unknown"),
                ctx.channel.as_str(),
                ctx.action.map_or("none", Action::as_str),
                if allowed { "allow" } else { "deny" },
                reason,
            ])
            .inc();
        m.request_duration
            .with_label_values(&[ctx.channel.as_str()])
            .observe(ctx.started.elapsed().as_secs_f64());
        if let Some(t) = ctx.upstream_elapsed {
            m.upstream_duration.observe(t.as_secs_f64());
        }
        let upstream_error = match ctx.refusal {
            Some(Refusal::UpstreamTimeout) => Some("timeout"),
            Some(Refusal::UpstreamInvalid) => Some(ctx.upstream_error.unwrap_or("invalid")),
            Some(Refusal::UpstreamUnavailable) => Some(match ctx.upstream_status {
                Some(s) if s != 200 => "status",
                _ => "unavailable",
            }),
            _ => None,
        };
        if let Some(kind) = upstream_error {
            m.upstream_errors.with_label_values(&[kind]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_and_renders() {
        let m = Metrics::new().expect("registers");
        m.requests
            .with_label_values(&["p", "web_service", "CallNik", "allow", "ok"])
            .inc();
        m.decision_duration
            .with_label_values(&["warm"])
            .observe(0.000001);
        m.upstream_errors.with_label_values(&["timeout"]).inc();
        let text = m.render().expect("renders");
        for name in [
            "gerbang_requests_total",
            "gerbang_decision_duration_seconds_bucket",
            "gerbang_upstream_errors_total",
            "gerbang_audit_healthy",
            "gerbang_quota_store_up",
            "gerbang_audit_records_dropped_total",
            "gerbang_unregistered_requests_total{recorded=\"false\"} 0",
            "gerbang_upstream_errors_total{kind=\"not_verdicts\"} 0",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        assert!(text.contains("# HELP gerbang_requests_total"), "{text}");
    }
}

//! The gateway's Prometheus metrics, served on the admin listener. Names and labels are
//! fixed: `monitoring/` (alert rules, the Grafana dashboard) is written against them.
//! Counters are updated once per request in `logging`. The per-User-ID quota gauges and
//! the policy hash are not stored: a collector ([`LiveGauges`]) builds them from the live
//! snapshot and meter at each scrape, capped to the highest users, so two scrapes at once
//! each see the whole set.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use chrono::NaiveDate;
use gerbang_core::{Clock, Refusal, SanctionKind};
use gerbang_policy::{Action, Snapshot};
use gerbang_quota::Meter;

use crate::gateway::GatewayCtx;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
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
    /// What the quota gauges and the policy hash are read from, once the admin API has
    /// said (see [`Metrics::watch`]).
    live: Arc<OnceLock<LiveState>>,
    pub quota_store_up: IntGauge,
    pub policy_reloads: IntCounterVec,
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
    /// Data-balikan records by Pengguna and outcome (accepted|refused).
    balikan_records: IntCounterVec,
    /// 1 for each Pengguna whose PKS in force names `data_balikan`.
    balikan_obligated: IntGaugeVec,
    /// Looked-up NIKs not noted for a balikan (queue full or store failing), from the store.
    balikan_notes_dropped: IntCounter,
    /// The Pengguna last exported as obligated, to set back to 0 when no longer.
    balikan_pengguna: std::sync::Mutex<Vec<String>>,
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
        let live = Arc::new(OnceLock::new());
        registry.register(Box::new(LiveGauges::new(Arc::clone(&live))?))?;
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
            live,
            quota_store_up: single_gauge(
                "gerbang_quota_store_up",
                "1 when the quota store answers, 0 when it does not.",
            )?,
            policy_reloads: counter(
                "gerbang_policy_reloads_total",
                "Reloads of PKS files and policies by result (ok|error).",
                &["result"],
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
            balikan_records: counter(
                "gerbang_balikan_records_total",
                "Data-balikan records by Pengguna and outcome (accepted|refused).",
                &["pengguna", "outcome"],
            )?,
            balikan_obligated: gauge(
                "gerbang_balikan_obligated",
                "1 for each Pengguna whose PKS in force names data_balikan (data it must return).",
                &["pengguna"],
            )?,
            balikan_notes_dropped: {
                let c = IntCounter::new(
                    "gerbang_balikan_lookups_unnoted_total",
                    "Looked-up NIKs not noted for a data balikan since start (queue full or store failing): their records are refused until looked up again.",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            balikan_pengguna: std::sync::Mutex::default(),
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

    /// Counts a data balikan's records.
    pub(crate) fn count_balikan(&self, pengguna: &str, accepted: u32, refused: u32) {
        for (outcome, n) in [("accepted", accepted), ("refused", refused)] {
            self.balikan_records
                .with_label_values(&[pengguna, outcome])
                .inc_by(u64::from(n));
        }
    }

    /// The looked-up NIKs not noted so far (read from the store at each scrape; the store's
    /// own count only grows, so the counter follows it).
    pub(crate) fn set_balikan_unnoted(&self, n: u64) {
        let seen = self.balikan_notes_dropped.get();
        if n > seen {
            self.balikan_notes_dropped.inc_by(n - seen);
        }
    }

    /// Records the sanctions now in force (the policy hash is read at each scrape), and
    /// which Pengguna must return data balikan (their record counters exported from 0).
    pub fn set_policy(&self, snap: &Snapshot) {
        // Set in place, never reset: a scrape during a reload sees the old set or the new.
        let obligated: std::collections::HashSet<&str> = snap
            .agreements()
            .iter()
            .filter(|p| !p.data_balikan.is_empty())
            .map(|p| p.pengguna.as_str())
            .collect();
        if let Ok(mut before) = self.balikan_pengguna.lock() {
            for gone in before.iter().filter(|p| !obligated.contains(p.as_str())) {
                self.balikan_obligated.with_label_values(&[gone]).set(0);
            }
            *before = obligated.iter().map(|p| p.to_string()).collect();
        }
        for pengguna in obligated {
            self.balikan_obligated.with_label_values(&[pengguna]).set(1);
            for outcome in ["accepted", "refused"] {
                self.balikan_records.with_label_values(&[pengguna, outcome]);
            }
        }
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

    /// From now on, scrapes read the quota gauges and the policy hash from `state` (made
    /// on the first call; later calls change nothing), and the quota store's health is
    /// refreshed.
    pub fn watch(&self, state: impl FnOnce() -> LiveState) {
        let state = self.live.get_or_init(state);
        self.quota_store_up
            .set(i64::from(state.meter.store_healthy()));
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
    /// Exports `gerbang_instance_info{name, version} 1`: which configured instance (the name
    /// in its decision-log records) and which release a scrape target is. Prometheus tells
    /// the instances apart by its own `instance` target label; this joins that label to the
    /// decision log's.
    pub fn name_instance(&self, name: &str) -> Result<(), prometheus::Error> {
        let info = IntGaugeVec::new(
            Opts::new(
                "gerbang_instance_info",
                "The configured instance name (as in the decision log) and the release; always 1.",
            ),
            &["name", "version"],
        )?;
        info.with_label_values(&[name, env!("CARGO_PKG_VERSION")])
            .set(1);
        self.registry.register(Box::new(info))
    }

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

/// What the gauges built at each scrape are read from.
pub struct LiveState {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub meter: Arc<Meter>,
    pub clock: Arc<dyn Clock>,
    /// Most User IDs with quota gauges (`admin.quota_series`).
    pub quota_series: usize,
}

const QUOTA_LABELS: [&str; 2] = ["pengguna", "user_id"];

/// `gerbang_quota_used`, `gerbang_quota_limit` and `gerbang_policy_info`, built in
/// `collect()` from the live state: nothing is kept between scrapes, so there is no
/// emptied set for a concurrent scrape to see (as there was when the gauges were reset
/// and refilled on each scrape).
struct LiveGauges {
    state: Arc<OnceLock<LiveState>>,
    /// Empty gauges of each family, for their descriptions.
    families: [IntGaugeVec; 3],
}

impl LiveGauges {
    fn new(state: Arc<OnceLock<LiveState>>) -> Result<Self, prometheus::Error> {
        Ok(Self {
            state,
            families: Self::families()?,
        })
    }

    fn families() -> Result<[IntGaugeVec; 3], prometheus::Error> {
        Ok([
            IntGaugeVec::new(
                Opts::new(
                    "gerbang_quota_used",
                    "NIK hits used today (WIB) per User ID; the highest users, up to the configured cap.",
                ),
                &QUOTA_LABELS,
            )?,
            IntGaugeVec::new(
                Opts::new(
                    "gerbang_quota_limit",
                    "Daily NIK-hit quota per User ID, with sanctions applied.",
                ),
                &QUOTA_LABELS,
            )?,
            IntGaugeVec::new(
                Opts::new(
                    "gerbang_policy_info",
                    "The active policy set's hash (value always 1).",
                ),
                &["hash"],
            )?,
        ])
    }
}

impl Collector for LiveGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.families.iter().flat_map(Collector::desc).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (Some(state), Ok([used, limit, info])) = (self.state.get(), Self::families()) else {
            return Vec::new();
        };
        let snap = state.snapshot.load();
        let rows = quota_rows(&snap, &state.meter, state.clock.today(), state.quota_series);
        for (hits, pengguna, user, quota) in rows {
            used.with_label_values(&[pengguna, user])
                .set(i64::from(hits));
            limit
                .with_label_values(&[pengguna, user])
                .set(i64::from(quota));
        }
        info.with_label_values(&[snap.engine().hash()]).set(1);
        [used, limit, info]
            .iter()
            .flat_map(Collector::collect)
            .collect()
    }
}

/// The quota of the `cap` User IDs with the highest share of their quota used on `day`
/// (then by hits, then by id, so the set is stable while idle): (used, Pengguna, User ID,
/// limit).
fn quota_rows<'s>(
    snap: &'s Snapshot,
    meter: &Meter,
    day: NaiveDate,
    cap: usize,
) -> Vec<(u32, &'s str, &'s str, u32)> {
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
        let share = |r: &(u32, &str, &str, u32)| u64::from(r.0) * 1_000_000 / u64::from(r.3.max(1));
        share(b)
            .cmp(&share(a))
            .then_with(|| b.0.cmp(&a.0))
            .then_with(|| a.2.cmp(b.2))
    });
    rows.truncate(cap);
    rows
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
    fn the_instance_is_named_once() {
        let m = Metrics::new().expect("registers");
        m.name_instance("gw-a").expect("named");
        let text = m.render().expect("renders");
        let line = format!(
            "gerbang_instance_info{{name=\"gw-a\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&line), "{text}");
        assert!(m.name_instance("gw-b").is_err(), "a second name");
    }

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

    /// The example agreements of `config/pks`, under the shipped policies.
    fn example_snapshot() -> Snapshot {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let vocab = gerbang_core::Vocabulary::embedded();
        let files: Vec<(std::path::PathBuf, String)> = std::fs::read_dir(root.join("config/pks"))
            .expect("config/pks")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("read");
                (p, text)
            })
            .collect();
        let set = gerbang_core::PksSet::parse_all(&files, &vocab).unwrap_or_else(|e| panic!("{e}"));
        let engine = gerbang_policy::PolicyEngine::load(&root.join("policies"))
            .unwrap_or_else(|e| panic!("{e}"));
        Snapshot::build(vocab, set, Arc::new(engine), Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Two scrapes at the same time (two Prometheus servers, or one and an operator's
    /// `curl`) while hits are counted: each sees every User ID's quota gauges. They used
    /// to be emptied and refilled on each scrape, so one scrape could catch the other's
    /// empty set.
    #[test]
    fn two_scrapes_at_once_both_see_every_user_ids_quota() {
        let snap = example_snapshot();
        let users = snap.user_count();
        assert!(users > 1, "the example has {users} User IDs");
        let meter = Arc::new(Meter::memory());
        let day = NaiveDate::from_ymd_opt(2026, 12, 7).expect("day");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for pks in snap.agreements() {
            for u in &pks.users {
                runtime
                    .block_on(meter.reserve(&u.id, day, u.kuota_harian.get()))
                    .expect("a hit");
            }
        }
        let m = Metrics::new().expect("registers");
        let noon = day.and_hms_opt(5, 0, 0).expect("time").and_utc();
        let state = || LiveState {
            snapshot: Arc::new(ArcSwap::from_pointee(example_snapshot())),
            meter: Arc::clone(&meter),
            clock: Arc::new(gerbang_core::FakeClock::new(noon)),
            quota_series: usize::MAX,
        };
        // What the admin API does on each scrape.
        let scrape = || {
            m.watch(state);
            m.render().expect("renders")
        };
        let series =
            |text: &str, family: &str| text.lines().filter(|l| l.starts_with(family)).count();
        let complete = |text: &str| {
            series(text, "gerbang_quota_used{") == users
                && series(text, "gerbang_quota_limit{") == users
                && series(text, "gerbang_policy_info{") == 1
        };
        let missed: usize = std::thread::scope(|s| {
            let scrapes = [(); 2]
                .map(|()| s.spawn(|| (0..500).map(|_| scrape()).filter(|t| !complete(t)).count()));
            scrapes.into_iter().map(|h| h.join().expect("scrape")).sum()
        });
        assert_eq!(
            missed, 0,
            "scrapes that missed some User ID's gauges, of 1000"
        );
    }
}

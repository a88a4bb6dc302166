//! The sidecar's own metrics, in the Prometheus text format (`GET /metrics`): validations
//! by result, their duration, the registry's size, the reloads and the requests refused
//! because the shared replay cache did not answer. Built on the
//! `prometheus` crate as the gateway's are; names and labels are fixed, `monitoring/` is
//! written against them. Each result's counter is looked up once at start: the hot path
//! only adds to atomics.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::time::Duration;

use gerbang_core::SamReason;

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1,
];

/// Counters, gauges and the histogram, in a registry of their own.
pub struct Metrics {
    registry: Registry,
    /// `result="valid"`.
    valid: IntCounter,
    /// One per [`SamReason::ALL`]; `None` for the gateway-side reasons, which are never the
    /// sidecar's answer.
    refused: Vec<Option<IntCounter>>,
    duration: Histogram,
    registry_sams: IntGauge,
    replay_nonces: IntGauge,
    reloads_ok: IntCounter,
    reloads_error: IntCounter,
    bad_requests: IntCounter,
    replay_store_errors: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Whether a reason is the sidecar's answer (the others are the gateway's own, when it
/// cannot reach the sidecar).
fn sidecar_reason(reason: SamReason) -> bool {
    !matches!(
        reason,
        SamReason::SidecarUnavailable | SamReason::SidecarTimeout
    )
}

impl Metrics {
    /// Registers every metric, each result and reload outcome at zero so the series exist
    /// before the first event.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let register = |c: Box<dyn prometheus::core::Collector>| registry.register(c);
        let counters = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["result"])?;
            register(Box::new(c.clone())).map(|()| c)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            register(Box::new(g.clone())).map(|()| g)
        };
        let validations = counters(
            "gerbang_sam_validations_total",
            "Card-reader validations by result (valid or the reason code).",
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "gerbang_sam_validation_duration_seconds",
                "Time to validate one request, in the sidecar.",
            )
            .buckets(BUCKETS.to_vec()),
        )?;
        register(Box::new(duration.clone()))?;
        let registry_sams = gauge(
            "gerbang_sam_registry_sams",
            "SAMs in the registry in force.",
        )?;
        let replay_nonces = gauge(
            "gerbang_sam_replay_nonces",
            "Nonces remembered against replay.",
        )?;
        let reloads = counters(
            "gerbang_sam_reloads_total",
            "Reloads of the PKS files by result.",
        )?;
        let bad_requests = IntCounter::new(
            "gerbang_sam_bad_requests_total",
            "Requests to /v1/validate that were not a usable validation request.",
        )?;
        register(Box::new(bad_requests.clone()))?;
        let replay_store_errors = IntCounter::new(
            "gerbang_sam_replay_store_errors_total",
            "Validations refused because the shared replay cache (Redis) did not answer.",
        )?;
        register(Box::new(replay_store_errors.clone()))?;
        Ok(Self {
            valid: validations.with_label_values(&["valid"]),
            refused: SamReason::ALL
                .iter()
                .map(|r| sidecar_reason(*r).then(|| validations.with_label_values(&[r.code()])))
                .collect(),
            duration,
            registry_sams,
            replay_nonces,
            reloads_ok: reloads.with_label_values(&["ok"]),
            reloads_error: reloads.with_label_values(&["error"]),
            bad_requests,
            replay_store_errors,
            registry,
        })
    }

    /// The counter of a result.
    fn counter(&self, reason: Option<SamReason>) -> Option<&IntCounter> {
        match reason {
            None => Some(&self.valid),
            Some(r) => SamReason::ALL
                .iter()
                .position(|x| *x == r)
                .and_then(|i| self.refused[i].as_ref()),
        }
    }

    /// Counts one validation with its result and duration.
    pub fn record(&self, reason: Option<SamReason>, took: Duration) {
        if let Some(c) = self.counter(reason) {
            c.inc();
        }
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts one reload.
    pub fn reloaded(&self, ok: bool) {
        if ok {
            self.reloads_ok.inc();
        } else {
            self.reloads_error.inc();
        }
    }

    /// Counts one request that was not a usable validation request.
    pub fn bad_request(&self) {
        self.bad_requests.inc();
    }

    /// Counts one request refused because the replay cache did not answer.
    pub fn replay_store_failed(&self) {
        self.replay_store_errors.inc();
    }

    /// Validations with a result so far (`valid` or a reason code).
    pub fn validations(&self, code: &str) -> u64 {
        let reason = SamReason::ALL.iter().find(|r| r.code() == code).copied();
        if reason.is_none() && code != "valid" {
            return 0;
        }
        self.counter(reason).map_or(0, IntCounter::get)
    }

    /// The Prometheus text exposition, with the registry's size and the replay cache's as
    /// they are now.
    pub fn render(&self, registry_sams: usize, nonces: usize) -> Result<String, prometheus::Error> {
        self.registry_sams
            .set(i64::try_from(registry_sams).unwrap_or(i64::MAX));
        self.replay_nonces
            .set(i64::try_from(nonces).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_are_rendered() {
        let m = Metrics::new().expect("metrics");
        m.record(None, Duration::from_micros(40));
        m.record(Some(SamReason::ReplayedNonce), Duration::from_micros(300));
        m.record(Some(SamReason::ReplayedNonce), Duration::from_secs(1));
        m.reloaded(true);
        m.reloaded(false);
        m.replay_store_failed();
        let text = m.render(3, 7).expect("render");
        for line in [
            "gerbang_sam_validations_total{result=\"valid\"} 1",
            "gerbang_sam_validations_total{result=\"replayed_nonce\"} 2",
            "gerbang_sam_validations_total{result=\"bad_signature\"} 0",
            "gerbang_sam_validation_duration_seconds_bucket{le=\"0.00005\"} 1",
            "gerbang_sam_validation_duration_seconds_bucket{le=\"0.0005\"} 2",
            "gerbang_sam_validation_duration_seconds_bucket{le=\"0.1\"} 2",
            "gerbang_sam_validation_duration_seconds_bucket{le=\"+Inf\"} 3",
            "gerbang_sam_validation_duration_seconds_count 3",
            "gerbang_sam_registry_sams 3",
            "gerbang_sam_replay_nonces 7",
            "gerbang_sam_reloads_total{result=\"ok\"} 1",
            "gerbang_sam_reloads_total{result=\"error\"} 1",
            "gerbang_sam_bad_requests_total 0",
            "gerbang_sam_replay_store_errors_total 1",
            "# TYPE gerbang_sam_validations_total counter",
            "# TYPE gerbang_sam_validation_duration_seconds histogram",
            "# TYPE gerbang_sam_registry_sams gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(!text.contains("sidecar_unavailable"));
        assert_eq!(m.validations("replayed_nonce"), 2);
        assert_eq!(m.validations("valid"), 1);
        assert_eq!(m.validations("no_such_result"), 0);
    }
}

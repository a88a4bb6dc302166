//! The sidecar's own metrics, in the Prometheus text format (`GET /metrics`): validations
//! by result, their duration, the registry's size and the reloads. Atomics only: the hot
//! path takes no lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use gerbang_core::SamReason;

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1,
];

/// Counters and the histogram.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Index 0: valid; then one per [`SamReason::ALL`].
    validations: [AtomicU64; 1 + SamReason::ALL.len()],
    /// Cumulative counts per bucket bound, plus `+Inf` last.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_sum_ns: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_error: AtomicU64,
    bad_requests: AtomicU64,
}

impl Metrics {
    /// Counts one validation with its result and duration.
    pub fn record(&self, reason: Option<SamReason>, took: Duration) {
        let index = reason.map_or(0, |r| {
            1 + SamReason::ALL.iter().position(|x| *x == r).unwrap_or(0)
        });
        self.validations[index].fetch_add(1, Relaxed);
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.duration_sum_ns.fetch_add(ns, Relaxed);
    }

    /// Counts one reload.
    pub fn reloaded(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Relaxed);
        } else {
            self.reloads_error.fetch_add(1, Relaxed);
        }
    }

    /// Counts one request that was not a usable validation request.
    pub fn bad_request(&self) {
        self.bad_requests.fetch_add(1, Relaxed);
    }

    /// Validations with a result so far (`valid` or a reason code).
    pub fn validations(&self, code: &str) -> u64 {
        if code == "valid" {
            return self.validations[0].load(Relaxed);
        }
        SamReason::ALL
            .iter()
            .position(|r| r.code() == code)
            .map_or(0, |i| self.validations[1 + i].load(Relaxed))
    }

    /// The Prometheus text exposition.
    pub fn render(&self, registry_sams: usize, nonces: usize) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP gerbang_sam_validations_total Card-reader validations by result (valid or the reason code).\n# TYPE gerbang_sam_validations_total counter\n");
        let _ = writeln!(
            out,
            "gerbang_sam_validations_total{{result=\"valid\"}} {}",
            self.validations[0].load(Relaxed)
        );
        for (i, reason) in SamReason::ALL.iter().enumerate() {
            // The gateway-side reasons are never the sidecar's answer.
            if matches!(
                reason,
                SamReason::SidecarUnavailable | SamReason::SidecarTimeout
            ) {
                continue;
            }
            let _ = writeln!(
                out,
                "gerbang_sam_validations_total{{result=\"{}\"}} {}",
                reason.code(),
                self.validations[1 + i].load(Relaxed)
            );
        }
        out.push_str("# HELP gerbang_sam_validation_duration_seconds Time to validate one request, in the sidecar.\n# TYPE gerbang_sam_validation_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let _ = writeln!(
                out,
                "gerbang_sam_validation_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "gerbang_sam_validation_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.duration_sum_ns.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "gerbang_sam_validation_duration_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "gerbang_sam_validation_duration_seconds_count {cumulative}"
        );
        let _ = writeln!(
            out,
            "# HELP gerbang_sam_registry_sams SAMs in the registry in force.\n# TYPE gerbang_sam_registry_sams gauge\ngerbang_sam_registry_sams {registry_sams}"
        );
        let _ = writeln!(
            out,
            "# HELP gerbang_sam_replay_nonces Nonces remembered against replay.\n# TYPE gerbang_sam_replay_nonces gauge\ngerbang_sam_replay_nonces {nonces}"
        );
        let _ = writeln!(
            out,
            "# HELP gerbang_sam_reloads_total Reloads of the PKS files by result.\n# TYPE gerbang_sam_reloads_total counter\ngerbang_sam_reloads_total{{result=\"ok\"}} {}\ngerbang_sam_reloads_total{{result=\"error\"}} {}",
            self.reloads_ok.load(Relaxed),
            self.reloads_error.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP gerbang_sam_bad_requests_total Requests to /v1/validate that were not a usable validation request.\n# TYPE gerbang_sam_bad_requests_total counter\ngerbang_sam_bad_requests_total {}",
            self.bad_requests.load(Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_are_rendered() {
        let m = Metrics::default();
        m.record(None, Duration::from_micros(40));
        m.record(Some(SamReason::ReplayedNonce), Duration::from_micros(300));
        m.record(Some(SamReason::ReplayedNonce), Duration::from_secs(1));
        m.reloaded(true);
        m.reloaded(false);
        let text = m.render(3, 7);
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
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(!text.contains("sidecar_unavailable"));
        assert_eq!(m.validations("replayed_nonce"), 2);
    }
}

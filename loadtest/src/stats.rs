//! What one run counts: latencies in an HDR histogram (microseconds), errors, and the
//! `RESPONSE_CODE` of every answer per request kind (a check that the target really
//! served the mix, e.g. that Gerbang did not refuse the logins).

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::mix::Kind;

/// Highest latency the histogram holds (60 s in µs); larger values are clamped.
const MAX_US: u64 = 60_000_000;

/// Index of "a record, no RESPONSE_CODE" in the per-kind code counters.
const RECORD: usize = 100;

/// A new latency histogram: 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds are valid")
}

/// Counters of one connection, merged at the end.
#[derive(Debug, Clone)]
pub struct Counts {
    pub hist: Histogram<u64>,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers with another status.
    pub http_errors: u64,
    /// Connect, TLS, write or read failures.
    pub transport_errors: u64,
    /// Requests that got no answer within the per-request timeout.
    pub timeouts: u64,
    /// Open loop only: scheduled sends never made because the run's hard stop came first.
    pub unsent: u64,
    /// Connections opened after the first one of each connection slot: the target closed
    /// a connection (no keep-alive) or it broke.
    pub reconnects: u64,
    /// Per kind: answers by RESPONSE_CODE (0..=99), and at [`RECORD`] those without one.
    pub codes: [[u64; 101]; 3],
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            hist: histogram(),
            ok: 0,
            http_errors: 0,
            transport_errors: 0,
            timeouts: 0,
            unsent: 0,
            reconnects: 0,
            codes: [[0; 101]; 3],
        }
    }
}

impl Counts {
    pub fn record_latency(&mut self, micros: u64) {
        self.hist.saturating_record(micros.clamp(1, MAX_US));
    }

    /// Counts one answer's RESPONSE_CODE for its kind.
    pub fn record_answer(&mut self, kind: Kind, body: &[u8]) {
        let slot = response_code(body).map_or(RECORD, usize::from);
        self.codes[kind.index()][slot] += 1;
    }

    pub fn errors(&self) -> u64 {
        self.http_errors + self.transport_errors + self.timeouts + self.unsent
    }

    pub fn merge(&mut self, other: &Counts) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        self.http_errors += other.http_errors;
        self.transport_errors += other.transport_errors;
        self.timeouts += other.timeouts;
        self.unsent += other.unsent;
        self.reconnects += other.reconnects;
        for (mine, theirs) in self.codes.iter_mut().zip(other.codes.iter()) {
            for (m, t) in mine.iter_mut().zip(theirs.iter()) {
                *m += t;
            }
        }
    }

    /// The code counters as `{kind: {"record"|"NN": count}}`, zero entries left out.
    pub fn codes_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for kind in Kind::ALL {
            let mut m = serde_json::Map::new();
            for (slot, &n) in self.codes[kind.index()].iter().enumerate() {
                if n > 0 {
                    let key = if slot == RECORD {
                        "record".to_string()
                    } else {
                        format!("{slot:02}")
                    };
                    m.insert(key, n.into());
                }
            }
            out.insert(kind.name().to_string(), m.into());
        }
        out.into()
    }
}

/// The first `"RESPONSE_CODE":"NN"` of an answer, if it has one of two digits.
pub fn response_code(body: &[u8]) -> Option<u8> {
    const KEY: &[u8] = b"\"RESPONSE_CODE\":\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    match body.get(at..at + 3)? {
        [a, b, b'"'] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some((a - b'0') * 10 + (b - b'0'))
        }
        _ => None,
    }
}

/// Latency percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self {
                p50_us: 0,
                p99_us: 0,
                p999_us: 0,
                max_us: 0,
                mean_us: 0.0,
            };
        }
        Self {
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1..=10_000 µs, once each: p50 = 5,000, p99 = 9,900, p99.9 = 9,990 (within the
        // histogram's 3 significant digits).
        let mut c = Counts::default();
        for v in 1..=10_000 {
            c.record_latency(v);
        }
        let l = Latency::of(&c.hist);
        let near = |got: u64, want: u64| got.abs_diff(want) <= want / 500 + 1;
        assert!(near(l.p50_us, 5_000), "{l:?}");
        assert!(near(l.p99_us, 9_900), "{l:?}");
        assert!(near(l.p999_us, 9_990), "{l:?}");
        assert!(near(l.max_us, 10_000), "{l:?}");
        assert!((l.mean_us - 5_000.5).abs() < 10.0, "{l:?}");
    }

    #[test]
    fn tail_follows_the_slow_one_percent() {
        let mut c = Counts::default();
        for _ in 0..990 {
            c.record_latency(100);
        }
        for _ in 0..10 {
            c.record_latency(50_000);
        }
        let l = Latency::of(&c.hist);
        assert_eq!(l.p50_us, 100);
        assert!(l.p99_us <= 101, "{l:?}");
        assert!(l.p999_us >= 49_900, "{l:?}");
    }

    #[test]
    fn empty_histogram_gives_zeros() {
        assert_eq!(Latency::of(&histogram()).p99_us, 0);
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Counts::default();
        let mut b = Counts::default();
        a.record_latency(10);
        b.record_latency(20);
        b.ok = 2;
        b.timeouts = 1;
        b.record_answer(Kind::Refused, br#"{"content":[{"RESPONSE_CODE":"15"}]}"#);
        a.merge(&b);
        assert_eq!(a.hist.len(), 2);
        assert_eq!((a.ok, a.errors()), (2, 1));
        assert_eq!(a.codes_json()["refused"]["15"], 1);
    }

    #[test]
    fn response_codes() {
        let refusal =
            br#"{"content":[{"RESPON":"Login Gagal","RESPONSE_CODE":"03"}],"lastPage":true}"#;
        assert_eq!(response_code(refusal), Some(3));
        assert_eq!(
            response_code(br#"{"content":[{"NIK":3204011201900001}]}"#),
            None
        );
        assert_eq!(response_code(br#"{"RESPONSE_CODE":"1"}"#), None);
        let mut c = Counts::default();
        c.record_answer(Kind::CallNik, refusal);
        c.record_answer(Kind::CallNik, b"{}");
        let j = c.codes_json();
        assert_eq!(j["call_nik"]["03"], 1);
        assert_eq!(j["call_nik"]["record"], 1);
    }
}

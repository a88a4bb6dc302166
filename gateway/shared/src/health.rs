//! Whether a store answers: up or down, the failed calls, and a gate that keeps a dead store
//! from stalling requests. State changes are logged once each.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a [`Health`] logs when its store goes down and comes back.
#[derive(Debug, Clone, Copy)]
pub struct HealthMessages {
    /// The `store` field of every line (`redis`, `embedded`, `shared`).
    pub store: &'static str,
    /// Logged once when the store goes down, with the error: what the gateway does now.
    pub down: &'static str,
    /// Logged once when it answers again.
    pub up: &'static str,
    /// Log the outage as an error rather than a warning (a local store failing is a fault;
    /// a remote one unreachable is an outage the gateway is built to ride out).
    pub severe: bool,
}

/// Shared health state. While down, at most one call per [`Health::RETRY`] tries the store;
/// the others are refused at once so a dead store does not stall requests.
///
/// The state is a generation number, even while healthy and odd while down. An attempt
/// takes the generation when it starts, and only an attempt started in the current
/// generation can change the state: a slow answer of an attempt that began before the last
/// change (a refusal that raced a recovery) is counted but does not flip the state back, so
/// each change is logged once.
#[derive(Debug)]
pub struct Health {
    messages: HealthMessages,
    generation: AtomicU64,
    errors: AtomicU64,
    /// While down: when the next call may try the store.
    retry_at: Mutex<Option<Instant>>,
}

impl Health {
    /// How long calls skip the store after a failure.
    pub const RETRY: Duration = Duration::from_millis(250);

    pub fn new(messages: HealthMessages) -> Self {
        Self {
            messages,
            generation: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retry_at: Mutex::new(None),
        }
    }

    /// The `store` label of the log lines.
    pub fn store(&self) -> &'static str {
        self.messages.store
    }

    /// The generation an attempt starts in (pass it to `succeeded` or `failed`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the last attempt (of the current generation) succeeded.
    pub fn is_healthy(&self) -> bool {
        self.generation().is_multiple_of(2)
    }

    /// Times the store went down since start.
    pub fn outages(&self) -> u64 {
        self.generation().div_ceil(2)
    }

    /// Calls that failed or timed out since start.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn retry_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.retry_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may try the store now. While down, the first call after the retry
    /// time claims the attempt and pushes the retry time on.
    pub fn may_try(&self) -> bool {
        if self.is_healthy() {
            return true;
        }
        let mut at = self.retry_at();
        let now = Instant::now();
        match *at {
            Some(t) if now < t => false,
            _ => {
                *at = Some(now + Self::RETRY);
                true
            }
        }
    }

    /// Records a successful attempt started in generation `since`.
    pub fn succeeded(&self, since: u64) {
        if !since.is_multiple_of(2)
            && self
                .generation
                .compare_exchange(since, since + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            *self.retry_at() = None;
            tracing::info!(store = self.messages.store, "{}", self.messages.up);
        }
    }

    /// Records a failed attempt started in generation `since`.
    pub fn failed(&self, since: u64, why: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.retry_at() = Some(Instant::now() + Self::RETRY);
        if since.is_multiple_of(2)
            && self
                .generation
                .compare_exchange(since, since + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let HealthMessages {
                store,
                down,
                severe,
                ..
            } = self.messages;
            if severe {
                tracing::error!(store, error = why, "{down}");
            } else {
                tracing::warn!(store, error = why, "{down}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(HealthMessages {
            store: "test",
            down: "test store unreachable",
            up: "test store reachable again",
            severe: false,
        })
    }

    #[test]
    fn a_failure_closes_the_gate_and_a_success_in_its_generation_reopens_it() {
        let h = health();
        assert!(h.is_healthy() && h.may_try());
        let before = h.generation();
        h.failed(before, "refused");
        assert!(!h.is_healthy());
        assert_eq!((h.outages(), h.errors()), (1, 1));
        // Within the retry time every call is refused at once.
        assert!(!h.may_try());
        // A slow success of an attempt begun before the outage does not end it.
        h.succeeded(before);
        assert!(!h.is_healthy());
        let during = h.generation();
        h.succeeded(during);
        assert!(h.is_healthy() && h.may_try());
        assert_eq!(h.outages(), 1);
    }
}

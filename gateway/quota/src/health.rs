//! The health of the quota store, as a metrics endpoint will read it: up or down, failed
//! store operations, hits granted from the emergency share, and reservations refused because
//! the store was unavailable. State changes are logged once each.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A snapshot of the quota store's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreHealth {
    /// `memory`, `embedded` or `redis`.
    pub store: &'static str,
    /// The last operation on the store (or the last probe of Redis) succeeded.
    pub healthy: bool,
    /// Store operations that failed or timed out since start.
    pub errors: u64,
    /// Hits granted from the emergency share while Redis was unreachable.
    pub emergency_hits: u64,
    /// Reservations refused because the store was unavailable.
    pub refused_unavailable: u64,
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
pub(crate) struct Health {
    store: &'static str,
    generation: AtomicU64,
    errors: AtomicU64,
    emergency_hits: AtomicU64,
    refused: AtomicU64,
    /// While down: when the next call may try the store.
    retry_at: Mutex<Option<Instant>>,
}

impl Health {
    /// How long calls skip the store after a failure.
    pub(crate) const RETRY: Duration = Duration::from_millis(250);

    pub(crate) fn new(store: &'static str) -> Self {
        Self {
            store,
            generation: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            emergency_hits: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            retry_at: Mutex::new(None),
        }
    }

    /// The generation an attempt starts in (pass it to `succeeded` or `failed`).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.generation().is_multiple_of(2)
    }

    /// Times the store went down since start.
    pub(crate) fn outages(&self) -> u64 {
        self.generation().div_ceil(2)
    }

    fn retry_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.retry_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may try the store now. While down, the first call after the retry
    /// time claims the attempt and pushes the retry time on.
    pub(crate) fn may_try(&self) -> bool {
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
    pub(crate) fn succeeded(&self, since: u64) {
        if !since.is_multiple_of(2)
            && self
                .generation
                .compare_exchange(since, since + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            *self.retry_at() = None;
            tracing::info!(store = self.store, "quota store reachable again");
        }
    }

    /// Records a failed attempt started in generation `since`.
    pub(crate) fn failed(&self, since: u64, why: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.retry_at() = Some(Instant::now() + Self::RETRY);
        if since.is_multiple_of(2)
            && self
                .generation
                .compare_exchange(since, since + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            if self.store == "redis" {
                tracing::warn!(
                    store = self.store,
                    error = why,
                    "quota store unreachable: serving only hits already leased, then the emergency share, then refusing"
                );
            } else {
                tracing::error!(
                    store = self.store,
                    error = why,
                    "quota store failing: refusing hits beyond those already persisted"
                );
            }
        }
    }

    pub(crate) fn emergency_hit(&self) {
        self.emergency_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StoreHealth {
        StoreHealth {
            store: self.store,
            healthy: self.is_healthy(),
            errors: self.errors.load(Ordering::Relaxed),
            emergency_hits: self.emergency_hits.load(Ordering::Relaxed),
            refused_unavailable: self.refused.load(Ordering::Relaxed),
        }
    }
}

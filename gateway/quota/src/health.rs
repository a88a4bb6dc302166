//! The health of the quota store, as a metrics endpoint will read it: up or down, failed
//! store operations, hits granted from the emergency share, and reservations refused because
//! the store was unavailable. The up/down state and its gate are `gerbang_shared::Health`
//! (the Redis link records into it); state changes are logged once each.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gerbang_shared::HealthMessages;

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

/// The store's state (shared with its Redis link) and the meter's own counts.
#[derive(Debug)]
pub(crate) struct Health {
    pub(crate) state: Arc<gerbang_shared::Health>,
    emergency_hits: AtomicU64,
    refused: AtomicU64,
}

impl std::ops::Deref for Health {
    type Target = gerbang_shared::Health;

    fn deref(&self) -> &gerbang_shared::Health {
        &self.state
    }
}

impl Health {
    pub(crate) fn new(store: &'static str) -> Self {
        let messages = if store == "redis" {
            HealthMessages {
                store,
                down: "quota store unreachable: serving only hits already leased, then the emergency share, then refusing",
                up: "quota store reachable again",
                severe: false,
            }
        } else {
            HealthMessages {
                store,
                down: "quota store failing: refusing hits beyond those already persisted",
                up: "quota store reachable again",
                severe: true,
            }
        };
        Self {
            state: Arc::new(gerbang_shared::Health::new(messages)),
            emergency_hits: AtomicU64::new(0),
            refused: AtomicU64::new(0),
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
            store: self.state.store(),
            healthy: self.state.is_healthy(),
            errors: self.state.errors(),
            emergency_hits: self.emergency_hits.load(Ordering::Relaxed),
            refused_unavailable: self.refused.load(Ordering::Relaxed),
        }
    }
}

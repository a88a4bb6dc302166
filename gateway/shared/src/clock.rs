//! The monotonic time of the embedded stores: the system's, or one a test moves by hand.
//! (The Redis stores take time from Redis itself, one clock for every instance.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Time elapsed since an arbitrary start, never going back.
#[derive(Debug, Clone)]
pub enum Ticks {
    /// The system's monotonic clock.
    System(Instant),
    /// Milliseconds a test sets; see [`Ticks::advance`].
    Manual(Arc<AtomicU64>),
}

impl Default for Ticks {
    fn default() -> Self {
        Self::System(Instant::now())
    }
}

impl Ticks {
    /// A clock that moves only when told to (tests).
    pub fn manual() -> Self {
        Self::Manual(Arc::default())
    }

    /// Time since the clock's start.
    pub fn now(&self) -> Duration {
        match self {
            Self::System(start) => start.elapsed(),
            Self::Manual(ms) => Duration::from_millis(ms.load(Ordering::Acquire)),
        }
    }

    /// Moves a manual clock on (a system clock ignores it).
    pub fn advance(&self, by: Duration) {
        if let Self::Manual(ms) = self {
            let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            ms.fetch_add(by, Ordering::AcqRel);
        }
    }
}

//! The daily NIK-hit meter (juknis §2: "N hits NIK per day" per User ID).
//!
//! A hit is reserved before the request is forwarded and refunded if the DWH fails, so a
//! refused request never counts and the count can never pass the limit, however many
//! requests race. The day is the WIB calendar day the caller passes in.
//!
//! With the embedded store, counts live in memory and what is persisted is a ceiling per
//! (User ID, day): before a hit above the persisted ceiling is handed out, the ceiling is
//! raised by a block and committed durably (group commit, one fsync for every waiting
//! request). After a crash the ceiling is taken as the count, so a `kill -9` can only make a
//! User ID lose part of a block, never gain hits. A clean shutdown writes the exact counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDate;
use dashmap::DashMap;

use crate::embedded::Persist;

/// Why a hit was not reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// Today's hits are used up.
    #[error("daily quota of {limit} hits used up ({used} used)")]
    Exhausted { used: u32, limit: u32 },
    /// The store could not persist a reservation; refuse rather than count blindly.
    #[error("quota store unavailable: {0}")]
    Unavailable(String),
}

/// A User ID's use of one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u32,
    pub limit: u32,
}

impl Usage {
    pub fn remaining(self) -> u32 {
        self.limit.saturating_sub(self.used)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    used: u32,
    /// Hits covered by the persisted ceiling (embedded store only).
    allocated: u32,
}

type Key = (String, NaiveDate);

/// Counts hits per User ID per day.
#[derive(Debug)]
pub struct Meter {
    counters: DashMap<Key, Counter>,
    persist: Option<Persist>,
    block: u32,
    closed: AtomicBool,
}

impl Meter {
    /// A meter that forgets everything on restart: for tests only.
    pub fn memory() -> Self {
        Self {
            counters: DashMap::new(),
            persist: None,
            block: 1,
            closed: AtomicBool::new(false),
        }
    }

    /// A meter persisted in a redb file. Counts of `today` and later are loaded (as their
    /// persisted ceilings); earlier days are pruned.
    pub fn embedded(
        path: &std::path::Path,
        block: u32,
        today: NaiveDate,
    ) -> Result<Self, QuotaError> {
        let (persist, loaded) = Persist::open(path, today)?;
        let counters = DashMap::new();
        for ((user, day), ceiling) in loaded {
            counters.insert(
                (user, day),
                Counter {
                    used: ceiling,
                    allocated: ceiling,
                },
            );
        }
        Ok(Self {
            counters,
            persist: Some(persist),
            block: block.max(1),
            closed: AtomicBool::new(false),
        })
    }

    /// Reserves one hit for `user` on `day` under `limit` (read from the PKS at every call,
    /// so a changed quota applies at once; below today's use means exhausted).
    pub async fn reserve(
        &self,
        user: &str,
        day: NaiveDate,
        limit: u32,
    ) -> Result<Usage, QuotaError> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(QuotaError::Unavailable(
                    "the gateway is shutting down".into(),
                ));
            }
            let ceiling = {
                let mut c = self.counters.entry((user.to_string(), day)).or_default();
                if c.used >= limit {
                    return Err(QuotaError::Exhausted {
                        used: c.used,
                        limit,
                    });
                }
                if self.persist.is_none() || c.used < c.allocated {
                    c.used += 1;
                    return Ok(Usage {
                        used: c.used,
                        limit,
                    });
                }
                c.allocated
                    .max(c.used)
                    .saturating_add(self.block)
                    .min(limit)
            };
            let Some(persist) = &self.persist else {
                unreachable!("memory meters return above")
            };
            persist.allocate(user, day, ceiling).await?;
            let mut c = self.counters.entry((user.to_string(), day)).or_default();
            c.allocated = c.allocated.max(ceiling);
        }
    }

    /// Gives back a hit whose lookup the DWH failed to answer.
    pub fn refund(&self, user: &str, day: NaiveDate) {
        if let Some(mut c) = self.counters.get_mut(&(user.to_string(), day)) {
            c.used = c.used.saturating_sub(1);
        }
    }

    /// Hits used by `user` on `day`.
    pub fn used(&self, user: &str, day: NaiveDate) -> u32 {
        self.counters
            .get(&(user.to_string(), day))
            .map_or(0, |c| c.used)
    }

    /// Drops the counters of days before `day` (call when the day changes).
    pub fn prune_before(&self, day: NaiveDate) {
        self.counters.retain(|(_, d), _| *d >= day);
    }

    /// Clean shutdown: refuses further reservations and persists the exact counts, releasing
    /// the unused part of every block.
    pub fn close(&self) -> Result<(), QuotaError> {
        self.closed.store(true, Ordering::Release);
        let Some(persist) = &self.persist else {
            return Ok(());
        };
        let exact: Vec<(Key, u32)> = self
            .counters
            .iter()
            .map(|e| (e.key().clone(), e.value().used))
            .collect();
        persist.write_exact(exact)
    }
}

/// A shared meter.
pub type SharedMeter = Arc<Meter>;

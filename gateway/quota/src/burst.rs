//! Burst limits: requests per second per User ID and per Pengguna (GCRA via `governor`),
//! so one client cannot starve the DWH within its daily quota.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Which limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurstScope {
    User,
    Pengguna,
}

/// A request over a burst limit, with when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstExceeded {
    pub scope: BurstScope,
    pub retry_after: Duration,
}

/// Per-User-ID and per-Pengguna rate limits; `None` means unlimited.
#[derive(Debug)]
pub struct Burst {
    per_user: Option<DefaultKeyedRateLimiter<String>>,
    per_pengguna: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl Burst {
    /// Limits in requests per second (bursts of the same size).
    pub fn new(per_user: Option<NonZeroU32>, per_pengguna: Option<NonZeroU32>) -> Self {
        let keyed = |n: NonZeroU32| RateLimiter::keyed(Quota::per_second(n).allow_burst(n));
        Self {
            per_user: per_user.map(keyed),
            per_pengguna: per_pengguna.map(keyed),
            clock: DefaultClock::default(),
        }
    }

    /// Admits one request of `user` of `pengguna`, or says which limit it is over.
    pub fn check(&self, user: &str, pengguna: &str) -> Result<(), BurstExceeded> {
        for (limiter, key, scope) in [
            (&self.per_user, user, BurstScope::User),
            (&self.per_pengguna, pengguna, BurstScope::Pengguna),
        ] {
            if let Some(limiter) = limiter
                && let Err(not_until) = limiter.check_key(&key.to_string())
            {
                return Err(BurstExceeded {
                    scope,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                });
            }
        }
        Ok(())
    }

    /// Forgets keys that have been idle (call now and then to bound memory).
    pub fn retain_recent(&self) {
        for limiter in [&self.per_user, &self.per_pengguna].into_iter().flatten() {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_user_and_the_pengguna_separately() {
        let b = Burst::new(NonZeroU32::new(3), NonZeroU32::new(5));
        for _ in 0..3 {
            b.check("u1", "p").expect("within the user's burst");
        }
        assert_eq!(
            b.check("u1", "p").expect_err("over").scope,
            BurstScope::User
        );
        // Another user of the same Pengguna still has room, until the Pengguna's 5
        // (u1's refused request took none of the Pengguna's).
        b.check("u2", "p").expect("u2");
        b.check("u2", "p").expect("u2 again: the Pengguna's 5th");
        assert_eq!(
            b.check("u2", "p").expect_err("pengguna over").scope,
            BurstScope::Pengguna
        );
        b.check("u3", "other").expect("another Pengguna");
    }

    #[test]
    fn unlimited_when_not_configured() {
        let b = Burst::new(None, None);
        for _ in 0..1000 {
            b.check("u", "p").expect("unlimited");
        }
    }
}

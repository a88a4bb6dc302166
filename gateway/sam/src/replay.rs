//! The replay cache: the nonces each SAM used within the skew window. A request whose
//! timestamp is fresh can be accepted only once; once its timestamp falls out of the window
//! the timestamp check refuses it, so its nonce can be forgotten. The cache is bounded per
//! SAM, and lives apart from the registry so a reload never forgets a nonce.

use std::collections::HashMap;

use dashmap::DashMap;

/// Default bound of nonces remembered per SAM: a reader does one lookup per fingerprint
/// check, far below 10,000 in a minute.
pub const DEFAULT_MAX_NONCES_PER_SAM: usize = 10_000;

/// What the cache says of a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before; now recorded.
    Fresh,
    /// Already used by this SAM within the window.
    Replayed,
    /// The SAM has used up its bound for the window; nothing recorded (fail closed).
    Full,
}

/// Nonces per SAM, each with the Unix second after which it can be forgotten.
#[derive(Debug)]
pub struct ReplayCache {
    per_sam: DashMap<String, HashMap<Box<str>, i64>>,
    max_per_sam: usize,
}

impl ReplayCache {
    /// A cache holding at most `max_per_sam` live nonces per SAM.
    pub fn new(max_per_sam: usize) -> Self {
        Self {
            per_sam: DashMap::new(),
            max_per_sam: max_per_sam.max(1),
        }
    }

    /// Records `nonce` for `sam` until `expires_at` (Unix seconds), unless it is already
    /// there. Expired nonces of the SAM are dropped first when its bound is reached.
    pub fn check_and_record(&self, sam: &str, nonce: &str, expires_at: i64, now: i64) -> Seen {
        let mut nonces = match self.per_sam.get_mut(sam) {
            Some(n) => n,
            None => self.per_sam.entry(sam.to_string()).or_default(),
        };
        if let Some(&expiry) = nonces.get(nonce) {
            if expiry >= now {
                return Seen::Replayed;
            }
        } else if nonces.len() >= self.max_per_sam {
            nonces.retain(|_, expiry| *expiry >= now);
            if nonces.len() >= self.max_per_sam {
                return Seen::Full;
            }
        }
        nonces.insert(nonce.into(), expires_at);
        Seen::Fresh
    }

    /// Drops every expired nonce, and SAMs left with none. Run periodically.
    pub fn prune(&self, now: i64) {
        self.per_sam.retain(|_, nonces| {
            nonces.retain(|_, expiry| *expiry >= now);
            !nonces.is_empty()
        });
    }

    /// Live nonces remembered, all SAMs together.
    pub fn len(&self) -> usize {
        self.per_sam.iter().map(|e| e.value().len()).sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_sam_until_it_expires() {
        let cache = ReplayCache::new(10);
        assert_eq!(cache.check_and_record("S1", "n1", 130, 100), Seen::Fresh);
        assert_eq!(cache.check_and_record("S1", "n1", 130, 120), Seen::Replayed);
        // Another SAM may use the same nonce.
        assert_eq!(cache.check_and_record("S2", "n1", 130, 120), Seen::Fresh);
        // Past its expiry the nonce may be recorded again (the timestamp check guards it).
        assert_eq!(cache.check_and_record("S1", "n1", 170, 131), Seen::Fresh);
        cache.prune(171);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_bound_refuses_rather_than_forgets() {
        let cache = ReplayCache::new(3);
        for n in ["a", "b", "c"] {
            assert_eq!(cache.check_and_record("S", n, 130, 100), Seen::Fresh);
        }
        assert_eq!(cache.check_and_record("S", "d", 130, 100), Seen::Full);
        // A replay is still recognised when full.
        assert_eq!(cache.check_and_record("S", "a", 130, 100), Seen::Replayed);
        // Once the old ones expire there is room again.
        assert_eq!(cache.check_and_record("S", "d", 200, 131), Seen::Fresh);
        assert_eq!(cache.len(), 1);
    }
}

//! The card readers' replay cache: the nonce each SAM used within the freshness window. A
//! signed request with a fresh timestamp is accepted once; when its timestamp leaves the
//! window the timestamp check refuses it anyway, so its nonce can be forgotten.
//!
//! [`EmbeddedNonces`] remembers them in this process, bounded per SAM. [`RedisNonces`]
//! remembers them for every instance: `SET <prefix>nonce:<sam>:<nonce> NX` expiring when
//! the window closes (plus a margin for the instances' clocks), so a request replayed to
//! any instance is refused. With Redis unreachable no nonce can be checked and the request
//! is refused (fail closed). A failover can forget the nonces written in the replication
//! lag before it (see `docs/gateway.md`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;

use crate::link::{Link, Redis, Unavailable};

/// What the cache says of a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen within the window; now recorded.
    Fresh,
    /// Already used by this SAM within the window.
    Replayed,
    /// The SAM has used up its bound for the window; nothing recorded (fail closed).
    Full,
}

/// A replay cache, in this process or shared by every instance.
#[async_trait]
pub trait NonceStore: Send + Sync + std::fmt::Debug {
    /// Records `nonce` of `sam` until `expires_at` (Unix seconds, the end of the request's
    /// freshness window), unless it is already recorded; `now` is the caller's Unix second.
    async fn check_and_record(
        &self,
        sam: &str,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Seen, Unavailable>;
}

/// Default bound of nonces remembered per SAM: a reader does one lookup per fingerprint
/// check, far below 10,000 in a minute.
pub const DEFAULT_MAX_NONCES_PER_SAM: usize = 10_000;

/// Nonces per SAM in this process, each with the Unix second after which it can be
/// forgotten. It lives apart from the sidecar's registry, so a reload never forgets a
/// nonce.
#[derive(Debug)]
pub struct EmbeddedNonces {
    per_sam: DashMap<String, HashMap<Box<str>, i64>>,
    max_per_sam: usize,
}

impl EmbeddedNonces {
    /// A cache holding at most `max_per_sam` live nonces per SAM.
    pub fn new(max_per_sam: usize) -> Self {
        Self {
            per_sam: DashMap::new(),
            max_per_sam: max_per_sam.max(1),
        }
    }

    /// Records `nonce` for `sam` until `expires_at` (Unix seconds), unless it is already
    /// there. Expired nonces of the SAM are dropped first when its bound is reached. (The
    /// same as [`NonceStore::check_and_record`], without waiting.)
    pub fn check_and_record(&self, sam: &str, nonce: &str, expires_at: i64, now: i64) -> Seen {
        let mut nonces = match self.per_sam.get_mut(sam) {
            Some(n) => n,
            None => self.per_sam.entry(sam.to_string()).or_default(),
        };
        match nonces.get(nonce) {
            Some(&expiry) if expiry >= now => return Seen::Replayed,
            Some(_) => {}
            None if nonces.len() >= self.max_per_sam => {
                nonces.retain(|_, expiry| *expiry >= now);
                if nonces.len() >= self.max_per_sam {
                    return Seen::Full;
                }
            }
            None => {}
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

#[async_trait]
impl NonceStore for EmbeddedNonces {
    async fn check_and_record(
        &self,
        sam: &str,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Seen, Unavailable> {
        Ok(Self::check_and_record(self, sam, nonce, expires_at, now))
    }
}

/// Nonces shared by every instance through Redis.
#[derive(Debug)]
pub struct RedisNonces {
    link: Link,
    _redis: Redis,
    prefix: String,
    clock_margin: Duration,
}

impl RedisNonces {
    /// Nonces under `<prefix>nonce:` keys of `redis`, kept `clock_margin` longer than the
    /// window so that an instance whose clock is behind the recording one's by up to that
    /// much still finds them.
    pub fn new(redis: &Redis, prefix: &str, clock_margin: Duration) -> Self {
        Self {
            link: redis.link().clone(),
            _redis: redis.clone(),
            prefix: prefix.to_string(),
            clock_margin,
        }
    }
}

#[async_trait]
impl NonceStore for RedisNonces {
    async fn check_and_record(
        &self,
        sam: &str,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Seen, Unavailable> {
        let window =
            Duration::from_secs(u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0));
        let ttl = u64::try_from((window + self.clock_margin).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let set: Option<String> = self
            .link
            .query(
                redis::cmd("SET")
                    .arg(format!("{}nonce:{sam}:{nonce}", self.prefix))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .clone(),
            )
            .await?;
        Ok(if set.is_some() {
            Seen::Fresh
        } else {
            Seen::Replayed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_sam_until_it_expires() {
        let cache = EmbeddedNonces::new(10);
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
        let cache = EmbeddedNonces::new(3);
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

    #[tokio::test]
    async fn the_trait_answers_as_the_cache_does() {
        let cache = EmbeddedNonces::new(10);
        let store: &dyn NonceStore = &cache;
        assert_eq!(
            store.check_and_record("S", "n", 130, 100).await,
            Ok(Seen::Fresh)
        );
        assert_eq!(
            store.check_and_record("S", "n", 130, 101).await,
            Ok(Seen::Replayed)
        );
    }
}

//! The replay cache: the nonces each SAM used within the freshness window. Both kinds live
//! in `gerbang-shared`: [`EmbeddedNonces`] in this process, bounded per SAM, and
//! [`RedisNonces`], shared by the sidecars of every gateway instance, so a request replayed
//! to any of them is refused. With Redis unreachable no nonce can be checked, and the
//! request is refused (fail closed).

use std::sync::Arc;
use std::time::Duration;

pub use gerbang_shared::{DEFAULT_MAX_NONCES_PER_SAM, EmbeddedNonces as ReplayCache, Seen};
use gerbang_shared::{Health, HealthMessages, NonceStore, Redis, RedisNonces, Unavailable};

use crate::settings::Settings;

/// What the sidecar logs when the shared replay cache stops and starts answering.
const REDIS_HEALTH: HealthMessages = HealthMessages {
    store: "redis",
    down: "the replay cache (Redis) is unreachable: every card-reader request is refused until it answers",
    up: "the replay cache (Redis) answers again: card-reader requests are validated",
    severe: false,
};

/// The replay cache in use.
#[derive(Debug)]
pub enum Replay {
    /// This process's own: a replay to another instance's sidecar is not seen.
    Embedded(ReplayCache),
    /// Shared by every sidecar pointing at the same Redis and key prefix.
    Redis(RedisNonces),
}

impl Replay {
    /// The cache the settings name: in Redis when `redis_url` is set (connected lazily, so
    /// an unreachable Redis at start is an outage, not a failure to start), else embedded.
    /// Redis keeps a nonce for the window plus the skew again, so a sidecar whose clock is
    /// behind the recording one's by up to the skew still finds it.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let Some(url) = &settings.redis_url else {
            return Ok(Self::Embedded(ReplayCache::new(
                settings.max_nonces_per_sam,
            )));
        };
        let target = url.target()?;
        let health = Arc::new(Health::new(REDIS_HEALTH));
        let redis =
            Redis::open(&target, settings.redis_timeout, health).map_err(|e| e.to_string())?;
        let margin = Duration::from_secs(u64::from(settings.skew_secs));
        Ok(Self::Redis(RedisNonces::new(
            &redis,
            &settings.redis_key_prefix,
            margin,
        )))
    }

    /// The store to check nonces against.
    pub fn store(&self) -> &dyn NonceStore {
        match self {
            Self::Embedded(cache) => cache,
            Self::Redis(nonces) => nonces,
        }
    }

    /// Checks and records a nonce (see [`NonceStore::check_and_record`]).
    pub async fn check_and_record(
        &self,
        sam: &str,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Seen, Unavailable> {
        self.store()
            .check_and_record(sam, nonce, expires_at, now)
            .await
    }

    /// Forgets expired nonces (Redis expires its own).
    pub fn prune(&self, now: i64) {
        if let Self::Embedded(cache) = self {
            cache.prune(now);
        }
    }

    /// Live nonces this process remembers (0 with Redis: they are in Redis).
    pub fn remembered(&self) -> usize {
        match self {
            Self::Embedded(cache) => cache.len(),
            Self::Redis(_) => 0,
        }
    }
}

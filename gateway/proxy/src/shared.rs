//! The state several gateway instances share behind a balancer (`docs/gateway.md`, "Several
//! instances"): portal sessions and login lockouts. With `[quota] store = "redis"` they live
//! in that Redis under `[shared] key_prefix`, so a balancer may move a client between
//! instances; otherwise in this process, as one instance needs.

use std::net::IpAddr;
use std::sync::Arc;

use gerbang_core::Config;
use gerbang_shared::{
    EmbeddedLockouts, EmbeddedSessions, Health, HealthMessages, LockoutSettings, LockoutStore,
    NewLogin, Redis, RedisLockouts, RedisSessions, RedisTarget, SessionSettings, SessionStore,
    Subject, Ticks, Unavailable,
};

/// The stores of the state shared between instances (or kept in this process).
#[derive(Debug, Clone)]
pub struct SharedState {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) lockouts: Arc<dyn LockoutStore>,
    /// Keeps the Redis link's runtime running while the stores live.
    _redis: Option<Redis>,
}

impl SharedState {
    /// The stores `config` asks for. Redis is reached lazily: unreachable at start is an
    /// outage (sessions refused, lockouts counted here), not a failure to start.
    pub fn open(config: &Config) -> Result<Self, Unavailable> {
        let lockout = LockoutSettings {
            max_failures: config.auth.max_failures,
            window: config.auth.failure_window,
            lockout: config.auth.lockout,
        };
        let sessions = SessionSettings {
            idle: config.portal.idle_timeout,
            absolute: config.portal.absolute_timeout,
            // One session per User ID: a second login is refused while the first lives.
            new_login: NewLogin::RefusedWhileActive,
        };
        let Some(shared) = &config.shared else {
            return Ok(Self::embedded(lockout, sessions));
        };
        let target = RedisTarget::parse(&config.quota.redis_url)
            .map_err(|e| Unavailable(format!("quota.redis_url: {e}")))?;
        let health = Arc::new(Health::new(HealthMessages {
            store: "shared",
            down: "the shared Redis is unreachable: portal sessions cannot be confirmed (browsers are logged out, logins refused); failed logins are counted in this process only",
            up: "the shared Redis answers again: portal sessions and login lockouts are shared",
            severe: false,
        }));
        let redis = Redis::open(&target, config.quota.redis_timeout, health)?;
        let prefix = &shared.key_prefix;
        tracing::info!(
            redis = redis.describe(),
            key_prefix = prefix.as_str(),
            "portal sessions and login lockouts are shared through Redis"
        );
        Ok(Self {
            sessions: Arc::new(RedisSessions::new(&redis, prefix, sessions)),
            lockouts: Arc::new(RedisLockouts::new(
                &redis,
                prefix,
                lockout,
                Ticks::default(),
            )),
            _redis: Some(redis),
        })
    }

    /// The stores of one instance alone, in this process.
    pub fn embedded(lockout: LockoutSettings, sessions: SessionSettings) -> Self {
        Self {
            sessions: Arc::new(EmbeddedSessions::new(sessions, Ticks::default())),
            lockouts: Arc::new(EmbeddedLockouts::new(lockout, Ticks::default())),
            _redis: None,
        }
    }
}

/// What a failed login counts against (`gerbang_policy::Attempt`): the address, and the
/// User ID only from its own IP LAN.
pub(crate) fn subjects<'a>(peer: IpAddr, own_user_id: Option<&'a str>) -> Vec<Subject<'a>> {
    let mut subjects = vec![Subject::Address(peer)];
    subjects.extend(own_user_id.map(Subject::User));
    subjects
}

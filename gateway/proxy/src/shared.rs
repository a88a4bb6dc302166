//! The state several gateway instances share behind a balancer (`docs/gateway.md`, "Several
//! instances"): portal sessions, login lockouts and sanctions. With `[quota] store = "redis"`
//! they live in that Redis under `[shared] key_prefix`, so a balancer may move a client
//! between instances and a sanction applied through one is in force on all; otherwise in
//! this process (and the sanctions file), as one instance needs.

use std::net::IpAddr;
use std::sync::Arc;

use gerbang_core::Config;
use gerbang_shared::{
    EmbeddedLockouts, EmbeddedLookups, EmbeddedSessions, Health, HealthMessages, LockoutSettings,
    LockoutStore, LookupMemory, NewLogin, Redis, RedisLockouts, RedisLookups, RedisSanctions,
    RedisSessions, RedisTarget, SanctionStore, SessionSettings, SessionStore, Subject, Ticks,
    Unavailable,
};

/// The stores of the state shared between instances (or kept in this process).
#[derive(Debug, Clone)]
pub struct SharedState {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) lockouts: Arc<dyn LockoutStore>,
    /// The NIKs each PKS looked up, for its data balikan.
    pub(crate) lookups: Arc<dyn LookupMemory>,
    /// The sanctions applied through any instance's admin API (`None`: one instance, whose
    /// sanctions are its file's).
    sanctions: Option<Arc<RedisSanctions>>,
    /// Keeps the Redis link's runtime running while the stores live.
    redis: Option<Redis>,
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
            let lookups = EmbeddedLookups::open(&config.balikan.path)
                .map_err(|e| Unavailable(format!("balikan store: {e}")))?;
            let mut state = Self::embedded(lockout, sessions);
            state.lookups = Arc::new(lookups);
            return Ok(state);
        };
        let target = RedisTarget::parse(&config.quota.redis_url)
            .map_err(|e| Unavailable(format!("quota.redis_url: {e}")))?;
        let health = Arc::new(Health::new(HealthMessages {
            store: "shared",
            down: "the shared Redis is unreachable: portal sessions cannot be confirmed (browsers are logged out, logins refused); failed logins are counted in this process only",
            up: "the shared Redis answers again: portal sessions, login lockouts and sanctions are shared",
            severe: false,
        }));
        let redis = Redis::open(&target, config.quota.redis_timeout, health)?;
        let prefix = &shared.key_prefix;
        tracing::info!(
            redis = redis.describe(),
            key_prefix = prefix.as_str(),
            "portal sessions, login lockouts and sanctions are shared through Redis"
        );
        Ok(Self {
            sessions: Arc::new(RedisSessions::new(&redis, prefix, sessions)),
            lockouts: Arc::new(RedisLockouts::new(
                &redis,
                prefix,
                lockout,
                Ticks::default(),
            )),
            lookups: Arc::new(RedisLookups::new(&redis, prefix)),
            sanctions: Some(Arc::new(RedisSanctions::start(&redis, prefix))),
            redis: Some(redis),
        })
    }

    /// The shared sanctions' store, when sanctions are shared.
    pub(crate) fn sanctions(&self) -> Option<Arc<dyn SanctionStore>> {
        self.sanctions
            .clone()
            .map(|s| -> Arc<dyn SanctionStore> { s })
    }

    /// Reads the shared sanctions once before serving, so that an instance never starts
    /// without those in force. With Redis unreachable it starts on its file's alone and
    /// follows Redis when it answers; until then it holds no quota lease, so it answers at
    /// most `quota.emergency_share` lookups per User ID (none by default, code 25 after).
    pub(crate) fn read_sanctions(&self) {
        let (Some(sanctions), Some(redis)) = (&self.sanctions, &self.redis) else {
            return;
        };
        match redis.handle().block_on(sanctions.reconcile()) {
            Ok(()) => tracing::info!(
                sanctions = sanctions.current().entries.len(),
                "shared sanctions read from Redis"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "the shared sanctions could not be read from Redis; they come into force when it answers"
            ),
        }
    }

    /// The stores of one instance alone, in this process; the looked-up NIKs are not kept
    /// (every balikan is refused) until [`SharedState::open`] opens their file.
    pub fn embedded(lockout: LockoutSettings, sessions: SessionSettings) -> Self {
        Self {
            sessions: Arc::new(EmbeddedSessions::new(sessions, Ticks::default())),
            lockouts: Arc::new(EmbeddedLockouts::new(lockout, Ticks::default())),
            lookups: Arc::new(NoLookups),
            sanctions: None,
            redis: None,
        }
    }
}

/// No store of looked-up NIKs: nothing is noted, and a balikan cannot be checked.
#[derive(Debug)]
struct NoLookups;

#[async_trait::async_trait]
impl LookupMemory for NoLookups {
    fn remember(&self, _pks: &str, _digest: &str, _until: i64) {}

    async fn looked_up(
        &self,
        _pks: &str,
        _digests: &[String],
        _now: i64,
    ) -> Result<Vec<bool>, Unavailable> {
        Err(Unavailable("no store of looked-up NIKs".into()))
    }

    fn dropped(&self) -> u64 {
        0
    }
}

/// What a failed login counts against (`gerbang_policy::Attempt`): the address, and the
/// User ID only from its own IP LAN.
pub(crate) fn subjects<'a>(peer: IpAddr, own_user_id: Option<&'a str>) -> Vec<Subject<'a>> {
    let mut subjects = vec![Subject::Address(peer)];
    subjects.extend(own_user_id.map(Subject::User));
    subjects
}

//! Failed logins and lockouts (art. 32: repeated failures must not allow guessing), per
//! subject: a source address or a User ID. The caller names the subjects a failure counts
//! against (every address, a User ID only from its own IP LAN, or both: the rule is the
//! caller's). After `max_failures` failures of a subject within `window` of its first, the
//! subject is locked out for `lockout`; a success clears its count.
//!
//! [`EmbeddedLockouts`] counts in this process, bounded: an entry is dropped once its window
//! and lockout are over, and at most [`MAX_ADDRESSES`] addresses are tracked (User IDs are
//! bounded by the caller, which names only existing ones). [`RedisLockouts`] counts across
//! every instance, a brute force spread over the instances adding up:
//! `<prefix>login-failures:<a|u>:<address|user>` counts, expiring at the end of the window,
//! and `<prefix>login-lockout:<a|u>:<…>` expires when the lockout ends. It also counts in
//! this process, so with Redis unreachable each instance still locks out after
//! `max_failures` of its own: never more attempts than one instance alone allows.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use redis::Script;

use crate::clock::Ticks;
use crate::link::{Link, Redis, ScriptCall};

/// Most source addresses whose failures one process counts at once.
pub const MAX_ADDRESSES: usize = 100_000;

/// Expired entries are swept after this many failures, and when the address table is full
/// at most once per [`FULL_SWEEP_PAUSE`], so a sweep costs little per failure.
const SWEEP_EVERY: u32 = 1024;
const FULL_SWEEP_PAUSE: Duration = Duration::from_secs(1);

/// What a failure counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Address(IpAddr),
    User(&'a str),
}

/// The lockout rule.
#[derive(Debug, Clone, Copy)]
pub struct LockoutSettings {
    pub max_failures: NonZeroU32,
    pub window: Duration,
    pub lockout: Duration,
}

/// Failed logins and lockouts, in this process or across every instance. Never fails: a
/// store that cannot reach Redis answers from this process's own counts.
#[async_trait]
pub trait LockoutStore: Send + Sync + std::fmt::Debug {
    /// How long until the lockout of the most locked subject ends, if one is locked.
    async fn locked(&self, subjects: &[Subject<'_>]) -> Option<Duration>;

    /// Records one failed login against each subject.
    async fn failure(&self, subjects: &[Subject<'_>]);

    /// A successful login clears the subjects' counts.
    async fn success(&self, subjects: &[Subject<'_>]);
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    window_start: Duration,
    locked_until: Option<Duration>,
}

/// Failed logins counted in this process.
#[derive(Debug)]
pub struct EmbeddedLockouts {
    settings: LockoutSettings,
    ticks: Ticks,
    addresses: DashMap<IpAddr, Count>,
    users: DashMap<String, Count>,
    since_sweep: AtomicU32,
    last_sweep: std::sync::Mutex<Option<Duration>>,
    /// Whether "address table full" was logged since it last had room.
    full_logged: AtomicBool,
}

impl EmbeddedLockouts {
    pub fn new(settings: LockoutSettings, ticks: Ticks) -> Self {
        Self {
            settings,
            ticks,
            addresses: DashMap::new(),
            users: DashMap::new(),
            since_sweep: AtomicU32::new(0),
            last_sweep: std::sync::Mutex::new(None),
            full_logged: AtomicBool::new(false),
        }
    }

    /// Addresses and User IDs tracked (diagnostics and tests).
    pub fn tracked(&self) -> (usize, usize) {
        (self.addresses.len(), self.users.len())
    }

    fn live(&self, c: &Count, now: Duration) -> bool {
        c.locked_until.is_some_and(|until| until > now)
            || now.saturating_sub(c.window_start) <= self.settings.window
    }

    fn count(&self, c: &mut Count, now: Duration) {
        if now.saturating_sub(c.window_start) > self.settings.window {
            c.failures = 0;
            c.window_start = now;
        }
        c.failures += 1;
        if c.failures >= self.settings.max_failures.get() {
            c.locked_until = Some(now + self.settings.lockout);
            c.failures = 0;
            c.window_start = now;
        }
    }

    fn sweep(&self, now: Duration) {
        self.since_sweep.store(0, Ordering::Relaxed);
        *self
            .last_sweep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now);
        self.addresses.retain(|_, c| self.live(c, now));
        self.users.retain(|_, c| self.live(c, now));
    }

    fn has_room_for(&self, address: IpAddr, now: Duration) -> bool {
        if self.addresses.contains_key(&address) || self.addresses.len() < MAX_ADDRESSES {
            return true;
        }
        let last = *self
            .last_sweep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| now.saturating_sub(t) >= FULL_SWEEP_PAUSE) {
            self.sweep(now);
        }
        self.addresses.len() < MAX_ADDRESSES
    }

    /// [`LockoutStore::locked`] without waiting.
    pub fn locked_now(&self, subjects: &[Subject<'_>]) -> Option<Duration> {
        let now = self.ticks.now();
        subjects
            .iter()
            .filter_map(|s| match s {
                Subject::Address(a) => self.addresses.get(a).and_then(|c| c.locked_until),
                Subject::User(u) => self.users.get(*u).and_then(|c| c.locked_until),
            })
            .filter(|&until| until > now)
            .max()
            .map(|until| until - now)
    }

    /// [`LockoutStore::failure`] without waiting.
    pub fn failure_now(&self, subjects: &[Subject<'_>]) {
        let now = self.ticks.now();
        if self.since_sweep.fetch_add(1, Ordering::Relaxed) + 1 >= SWEEP_EVERY {
            self.sweep(now);
        }
        let fresh = || Count {
            failures: 0,
            window_start: now,
            locked_until: None,
        };
        for s in subjects {
            match s {
                Subject::Address(a) => {
                    if self.has_room_for(*a, now) {
                        self.full_logged.store(false, Ordering::Relaxed);
                        self.count(&mut self.addresses.entry(*a).or_insert_with(fresh), now);
                    } else if !self.full_logged.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            addresses = MAX_ADDRESSES,
                            "failed logins come from more addresses than are tracked: new addresses are not counted until older entries expire (User IDs still are)"
                        );
                    }
                }
                Subject::User(u) => {
                    let mut c = match self.users.get_mut(*u) {
                        Some(c) => c,
                        None => self.users.entry((*u).to_string()).or_insert_with(fresh),
                    };
                    self.count(&mut c, now);
                }
            }
        }
    }

    /// [`LockoutStore::success`] without waiting.
    pub fn success_now(&self, subjects: &[Subject<'_>]) {
        for s in subjects {
            match s {
                Subject::Address(a) => {
                    self.addresses.remove(a);
                }
                Subject::User(u) => {
                    self.users.remove(*u);
                }
            }
        }
    }
}

#[async_trait]
impl LockoutStore for EmbeddedLockouts {
    async fn locked(&self, subjects: &[Subject<'_>]) -> Option<Duration> {
        self.locked_now(subjects)
    }

    async fn failure(&self, subjects: &[Subject<'_>]) {
        self.failure_now(subjects);
    }

    async fn success(&self, subjects: &[Subject<'_>]) {
        self.success_now(subjects);
    }
}

/// `KEYS`: a count and a lockout per subject, in pairs. `ARGV`: max failures, window ms,
/// lockout ms. The window runs from a subject's first failure (the count's expiry).
const FAILURE: &str = r"
local max = tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
  if n >= max then
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[3])
    redis.call('DEL', KEYS[i])
  end
end
return 1
";

/// Failed logins counted across every instance through Redis, and in this process.
#[derive(Debug)]
pub struct RedisLockouts {
    link: Link,
    _redis: Redis,
    prefix: String,
    settings: LockoutSettings,
    local: EmbeddedLockouts,
    failure: Arc<Script>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisLockouts {
    /// Lockouts under `<prefix>login-…` keys of `redis`; `ticks` is the clock of the counts
    /// kept in this process.
    pub fn new(redis: &Redis, prefix: &str, settings: LockoutSettings, ticks: Ticks) -> Self {
        Self {
            link: redis.link().clone(),
            _redis: redis.clone(),
            prefix: prefix.to_string(),
            settings,
            local: EmbeddedLockouts::new(settings, ticks),
            failure: Arc::new(Script::new(FAILURE)),
        }
    }

    fn keys(&self, s: &Subject<'_>) -> [String; 2] {
        let subject = match s {
            Subject::Address(a) => format!("a:{}", a.to_canonical()),
            Subject::User(u) => format!("u:{u}"),
        };
        [
            format!("{}login-failures:{subject}", self.prefix),
            format!("{}login-lockout:{subject}", self.prefix),
        ]
    }

    /// The counts kept in this process (what answers while Redis is unreachable).
    pub fn local(&self) -> &EmbeddedLockouts {
        &self.local
    }
}

#[async_trait]
impl LockoutStore for RedisLockouts {
    async fn locked(&self, subjects: &[Subject<'_>]) -> Option<Duration> {
        let local = self.local.locked_now(subjects);
        if subjects.is_empty() {
            return local;
        }
        let mut pipe = redis::pipe();
        for s in subjects {
            let [_, lock] = self.keys(s);
            pipe.cmd("PTTL").arg(lock);
        }
        let shared = match self.link.query::<Vec<i64>>(pipe).await {
            Ok(ttls) => ttls
                .into_iter()
                .filter_map(|ms| u64::try_from(ms).ok())
                .filter(|&ms| ms > 0)
                .max()
                .map(Duration::from_millis),
            Err(_) => None, // logged by the link's health; this process's counts answer
        };
        local.max(shared)
    }

    async fn failure(&self, subjects: &[Subject<'_>]) {
        self.local.failure_now(subjects);
        if subjects.is_empty() {
            return;
        }
        let mut call = ScriptCall::new(&self.failure);
        for s in subjects {
            for key in self.keys(s) {
                call = call.key(key);
            }
        }
        let call = call
            .arg(self.settings.max_failures.get())
            .arg(millis(self.settings.window))
            .arg(millis(self.settings.lockout));
        // Unreachable: counted in this process only (logged by the link's health).
        let _ = self.link.query::<i64>(call).await;
    }

    async fn success(&self, subjects: &[Subject<'_>]) {
        self.local.success_now(subjects);
        if subjects.is_empty() {
            return;
        }
        let mut del = redis::cmd("DEL");
        for s in subjects {
            del.arg(&self.keys(s));
        }
        // Unreachable: the shared count expires with its window.
        let _ = self.link.query::<i64>(del).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max: u32) -> (EmbeddedLockouts, Ticks) {
        let ticks = Ticks::manual();
        let settings = LockoutSettings {
            max_failures: NonZeroU32::new(max).expect("max"),
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
        };
        (EmbeddedLockouts::new(settings, ticks.clone()), ticks)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[tokio::test]
    async fn locks_the_subjects_counted_after_max_failures_until_the_lockout_ends() {
        let (t, ticks) = store(3);
        let a = Subject::Address(ip("10.0.0.2"));
        let u = Subject::User("u");
        t.failure(&[a, u]).await;
        t.failure(&[a, u]).await;
        assert_eq!(t.locked(&[a, u]).await, None);
        // From another LAN the caller counts the address only.
        t.failure(&[Subject::Address(ip("10.9.0.9"))]).await;
        assert_eq!(t.locked(&[u]).await, None);
        t.failure(&[a, u]).await;
        assert_eq!(t.locked(&[a]).await, Some(Duration::from_secs(120)));
        assert_eq!(t.locked(&[u]).await, Some(Duration::from_secs(120)));
        assert_eq!(t.locked(&[Subject::Address(ip("10.9.0.9"))]).await, None);
        ticks.advance(Duration::from_secs(121));
        assert_eq!(t.locked(&[a, u]).await, None);
    }

    #[tokio::test]
    async fn failures_outside_the_window_do_not_add_up_and_success_clears() {
        let (t, ticks) = store(2);
        let a = Subject::Address(ip("10.0.0.2"));
        t.failure(&[a]).await;
        ticks.advance(Duration::from_secs(61));
        t.failure(&[a]).await;
        assert_eq!(t.locked(&[a]).await, None);
        t.success(&[a]).await;
        t.failure(&[a]).await;
        assert_eq!(t.locked(&[a]).await, None);
        // Entries whose window and lockout are over are swept.
        ticks.advance(Duration::from_secs(61));
        t.sweep(ticks.now());
        assert_eq!(t.tracked(), (0, 0));
    }
}

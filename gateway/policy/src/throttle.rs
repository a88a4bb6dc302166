//! Failed-login throttling per source address and per User ID (art. 32: repeated failures
//! must not allow guessing). After `max_failures` failures within the window, further
//! attempts are refused without checking the password until the lockout ends. A success
//! clears the count.
//!
//! A failure counts against a User ID only when it comes from inside that User ID's own IP
//! LAN (the caller decides, see `Authenticator::precheck`); from anywhere else it counts
//! against the address only. Otherwise a host in one institution's LAN could keep another
//! institution's User ID locked out for ever.
//!
//! The table is bounded whatever clients send: User IDs are counted only when they exist
//! (own LAN), addresses only inside some registered IP LAN, an entry is dropped once its
//! window and lockout are over, and at most [`MAX_ADDRESSES`] addresses are tracked. Past
//! that (a registered LAN can be a whole IPv6 /64) a new address is not counted: password
//! guessing stays bounded by the per-User-ID count, which every password check feeds.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use gerbang_core::{Auth, Clock};

/// Most source addresses whose failures are counted at once.
pub const MAX_ADDRESSES: usize = 100_000;

/// Expired entries are swept after this many failures, and when the address table is full
/// at most once per [`FULL_SWEEP_PAUSE`], so a sweep costs little per failure.
const SWEEP_EVERY: u32 = 1024;

/// Least time between two sweeps forced by a full address table: a flood of new addresses
/// must not make every failure walk the whole table.
const FULL_SWEEP_PAUSE: chrono::Duration = chrono::Duration::seconds(1);

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
}

impl Entry {
    /// Whether the entry still matters at `now`: failures inside the window, or a lockout
    /// not over.
    fn live(&self, now: DateTime<Utc>, window: chrono::Duration) -> bool {
        self.locked_until.is_some_and(|until| until > now) || now - self.window_start <= window
    }
}

/// Counts failed logins and locks out.
#[derive(Debug)]
pub struct LoginThrottle {
    settings: Auth,
    clock: Arc<dyn Clock>,
    by_ip: DashMap<IpAddr, Entry>,
    by_user: DashMap<String, Entry>,
    /// Failures since the last sweep.
    since_sweep: AtomicU32,
    /// When the last sweep ran.
    last_sweep: std::sync::Mutex<DateTime<Utc>>,
    /// Whether the "address table full" warning was logged since the table last had room.
    full_logged: AtomicBool,
}

impl LoginThrottle {
    pub fn new(settings: Auth, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            clock,
            by_ip: DashMap::new(),
            by_user: DashMap::new(),
            since_sweep: AtomicU32::new(0),
            last_sweep: std::sync::Mutex::new(DateTime::<Utc>::MIN_UTC),
            full_logged: AtomicBool::new(false),
        }
    }

    fn window(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.settings.failure_window).unwrap_or(chrono::Duration::MAX)
    }

    /// How long until the lockout of this address, or of `user_id` when given, ends, if
    /// either is locked. Give the User ID only for a request from its own IP LAN.
    pub fn locked(&self, ip: IpAddr, user_id: Option<&str>) -> Option<Duration> {
        let now = self.clock.now();
        let ip_until = self.by_ip.get(&ip).and_then(|e| e.locked_until);
        let user_until = user_id
            .and_then(|u| self.by_user.get(u))
            .and_then(|e| e.locked_until);
        [ip_until, user_until]
            .into_iter()
            .flatten()
            .filter(|&until| until > now)
            .max()
            .and_then(|until| (until - now).to_std().ok())
    }

    /// Records a failed login against the address, and against `user_id` when given (a
    /// request from that User ID's own IP LAN).
    pub fn failure(&self, ip: IpAddr, user_id: Option<&str>) {
        let now = self.clock.now();
        if self.since_sweep.fetch_add(1, Ordering::Relaxed) + 1 >= SWEEP_EVERY {
            self.sweep(now);
        }
        if !self.by_ip.contains_key(&ip) && self.by_ip.len() >= MAX_ADDRESSES {
            let last = *self
                .last_sweep
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now - last >= FULL_SWEEP_PAUSE {
                self.sweep(now);
            }
        }
        if self.by_ip.contains_key(&ip) || self.by_ip.len() < MAX_ADDRESSES {
            self.full_logged.store(false, Ordering::Relaxed);
            self.count(self.by_ip.entry(ip).or_insert_with(|| fresh(now)), now);
        } else if !self.full_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                addresses = MAX_ADDRESSES,
                "failed logins come from more addresses than are tracked: new addresses are not counted until older entries expire (User IDs still are)"
            );
        }
        if let Some(user_id) = user_id {
            let entry = match self.by_user.get_mut(user_id) {
                Some(e) => e,
                None => self
                    .by_user
                    .entry(user_id.to_string())
                    .or_insert_with(|| fresh(now)),
            };
            self.count(entry, now);
        }
    }

    fn count<K>(&self, mut e: dashmap::mapref::one::RefMut<'_, K, Entry>, now: DateTime<Utc>)
    where
        K: Eq + std::hash::Hash,
    {
        let lockout =
            chrono::Duration::from_std(self.settings.lockout).unwrap_or(chrono::Duration::MAX);
        if now - e.window_start > self.window() {
            e.failures = 0;
            e.window_start = now;
        }
        e.failures += 1;
        if e.failures >= self.settings.max_failures.get() {
            e.locked_until = Some(now + lockout);
            e.failures = 0;
            e.window_start = now;
        }
    }

    /// Drops the entries whose window and lockout are over.
    fn sweep(&self, now: DateTime<Utc>) {
        self.since_sweep.store(0, Ordering::Relaxed);
        *self
            .last_sweep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        let window = self.window();
        self.by_ip.retain(|_, e| e.live(now, window));
        self.by_user.retain(|_, e| e.live(now, window));
    }

    /// A successful login clears both counts.
    pub fn success(&self, ip: IpAddr, user_id: &str) {
        self.by_ip.remove(&ip);
        self.by_user.remove(user_id);
    }

    /// Addresses and User IDs currently tracked (for tests and diagnostics).
    pub fn tracked(&self) -> (usize, usize) {
        (self.by_ip.len(), self.by_user.len())
    }
}

fn fresh(now: DateTime<Utc>) -> Entry {
    Entry {
        failures: 0,
        window_start: now,
        locked_until: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gerbang_core::FakeClock;
    use std::num::NonZeroU32;

    fn throttle(max: u32) -> (LoginThrottle, FakeClock) {
        let clock = FakeClock::new("2026-01-01T00:00:00Z".parse().expect("time"));
        let settings = Auth {
            max_failures: NonZeroU32::new(max).expect("max"),
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
        };
        (LoginThrottle::new(settings, Arc::new(clock.clone())), clock)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn locks_after_max_failures_and_unlocks_after_lockout() {
        let (t, clock) = throttle(3);
        let ip = ip("127.0.0.2");
        t.failure(ip, Some("u"));
        t.failure(ip, Some("u"));
        assert_eq!(t.locked(ip, Some("u")), None);
        t.failure(ip, Some("u"));
        assert_eq!(t.locked(ip, Some("u")), Some(Duration::from_secs(120)));
        // The User ID is locked from another address of its LAN too, and the address for
        // another user.
        assert!(
            t.locked("127.0.0.3".parse().expect("ip"), Some("u"))
                .is_some()
        );
        assert!(t.locked(ip, Some("other")).is_some());
        clock.advance(Duration::from_secs(121));
        assert_eq!(t.locked(ip, Some("u")), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let (t, clock) = throttle(2);
        let ip = ip("127.0.0.2");
        t.failure(ip, Some("u"));
        clock.advance(Duration::from_secs(61));
        t.failure(ip, Some("u"));
        assert_eq!(t.locked(ip, Some("u")), None);
        t.success(ip, "u");
        t.failure(ip, Some("u"));
        assert_eq!(t.locked(ip, Some("u")), None);
    }

    #[test]
    fn failures_from_outside_the_user_ids_lan_count_against_the_address_only() {
        let (t, _) = throttle(3);
        let stranger = ip("127.0.0.9");
        for _ in 0..10 {
            t.failure(stranger, None);
        }
        // The address is locked; the User ID it named is not, from its own LAN.
        assert!(t.locked(stranger, None).is_some());
        assert_eq!(t.locked(ip("127.0.0.2"), Some("b_01")), None);
        assert_eq!(t.tracked(), (1, 0));
    }

    #[test]
    fn expired_entries_are_swept_and_addresses_are_capped() {
        let (t, clock) = throttle(1_000);
        for i in 0..MAX_ADDRESSES as u32 + 50 {
            t.failure(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()), None);
        }
        let (addresses, users) = t.tracked();
        assert_eq!((addresses, users), (MAX_ADDRESSES, 0));
        // A tracked address still counts; once the window is over, every entry goes at
        // the next sweep and new addresses are counted again.
        t.failure(ip("10.0.0.1"), Some("u"));
        assert_eq!(t.tracked(), (MAX_ADDRESSES, 1));
        clock.advance(Duration::from_secs(61));
        t.failure(ip("192.0.2.1"), None);
        assert_eq!(t.tracked(), (1, 0));
    }

    #[test]
    fn a_lockout_outlives_its_window_until_it_ends() {
        let (t, clock) = throttle(1);
        let own = ip("127.0.0.2");
        t.failure(own, Some("u"));
        clock.advance(Duration::from_secs(100));
        // A sweep (forced by many failures) keeps the locked entries.
        for _ in 0..SWEEP_EVERY {
            t.failure(ip("127.0.0.3"), None);
        }
        assert!(t.locked(own, Some("u")).is_some());
        clock.advance(Duration::from_secs(21));
        assert_eq!(t.locked(own, Some("u")), None);
    }
}

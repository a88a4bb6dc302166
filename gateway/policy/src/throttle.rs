//! Failed-login throttling per source address and per User ID (art. 32: repeated failures
//! must not allow guessing). After `max_failures` failures within the window, further
//! attempts are refused without checking the password until the lockout ends. A success
//! clears the count.
//!
//! Only addresses inside some registered IP LAN reach the password check, so the table is
//! bounded by the registered addresses and User IDs, not by what an attacker sends.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use gerbang_core::{Auth, Clock};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
}

/// Counts failed logins and locks out.
#[derive(Debug)]
pub struct LoginThrottle {
    settings: Auth,
    clock: Arc<dyn Clock>,
    entries: DashMap<Key, Entry>,
}

impl LoginThrottle {
    pub fn new(settings: Auth, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            clock,
            entries: DashMap::new(),
        }
    }

    /// How long until the lockout of this address or User ID ends, if either is locked.
    pub fn locked(&self, ip: IpAddr, user_id: &str) -> Option<Duration> {
        let now = self.clock.now();
        [Key::Ip(ip), Key::User(user_id.to_string())]
            .iter()
            .filter_map(|k| self.entries.get(k).and_then(|e| e.locked_until))
            .filter(|&until| until > now)
            .max()
            .and_then(|until| (until - now).to_std().ok())
    }

    /// Records a failed login for both the address and the User ID.
    pub fn failure(&self, ip: IpAddr, user_id: &str) {
        let now = self.clock.now();
        let window = chrono::Duration::from_std(self.settings.failure_window)
            .unwrap_or(chrono::Duration::MAX);
        let lockout =
            chrono::Duration::from_std(self.settings.lockout).unwrap_or(chrono::Duration::MAX);
        for key in [Key::Ip(ip), Key::User(user_id.to_string())] {
            let mut e = self.entries.entry(key).or_insert(Entry {
                failures: 0,
                window_start: now,
                locked_until: None,
            });
            if now - e.window_start > window {
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
    }

    /// A successful login clears both counts.
    pub fn success(&self, ip: IpAddr, user_id: &str) {
        self.entries.remove(&Key::Ip(ip));
        self.entries.remove(&Key::User(user_id.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gerbang_core::FakeClock;
    use std::num::NonZeroU32;

    #[test]
    fn locks_after_max_failures_and_unlocks_after_lockout() {
        let clock = FakeClock::new("2026-01-01T00:00:00Z".parse().expect("time"));
        let settings = Auth {
            max_failures: NonZeroU32::new(3).expect("3"),
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
        };
        let t = LoginThrottle::new(settings, Arc::new(clock.clone()));
        let ip: IpAddr = "127.0.0.2".parse().expect("ip");
        t.failure(ip, "u");
        t.failure(ip, "u");
        assert_eq!(t.locked(ip, "u"), None);
        t.failure(ip, "u");
        assert_eq!(t.locked(ip, "u"), Some(Duration::from_secs(120)));
        // The User ID is locked from another address too, and the address for another user.
        assert!(t.locked("127.0.0.3".parse().expect("ip"), "u").is_some());
        assert!(t.locked(ip, "other").is_some());
        clock.advance(Duration::from_secs(121));
        assert_eq!(t.locked(ip, "u"), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let clock = FakeClock::new("2026-01-01T00:00:00Z".parse().expect("time"));
        let settings = Auth {
            max_failures: NonZeroU32::new(2).expect("2"),
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
        };
        let t = LoginThrottle::new(settings, Arc::new(clock.clone()));
        let ip: IpAddr = "127.0.0.2".parse().expect("ip");
        t.failure(ip, "u");
        clock.advance(Duration::from_secs(61));
        t.failure(ip, "u");
        assert_eq!(t.locked(ip, "u"), None);
        t.success(ip, "u");
        t.failure(ip, "u");
        assert_eq!(t.locked(ip, "u"), None);
    }
}

//! The portal's sessions: the cookie that carries one, and the server-side store that
//! binds it to a User ID, its password hash at login and the client's address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use sha2::{Digest, Sha256};

use gerbang_core::{UserStatus, canonical_ip};

use super::PREFIX;

/// The value of cookie `name` in a request's `Cookie` headers, if any.
pub fn cookie<'a>(headers: impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value that hands a browser its session.
pub fn session_cookie(name: &str, token: &str) -> String {
    format!("{name}={token}; Path={PREFIX}; HttpOnly; Secure; SameSite=Strict")
}

/// The `Set-Cookie` value that makes a browser forget its session.
pub fn cleared_cookie(name: &str) -> String {
    format!("{name}=; Path={PREFIX}; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// Why a request's session is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("no session")]
    Missing,
    #[error("the session ended after inactivity or at its maximum age")]
    Expired,
    #[error("the session belongs to another client address")]
    OtherAddress,
}

/// Another session of the same User ID is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the User ID already has an active portal session")]
pub struct SessionActive;

/// A logged-in browser.
#[derive(Debug, Clone)]
struct PortalSession {
    user_id: String,
    /// SHA-256 of the User ID's password hash when it logged in.
    credential: [u8; 32],
    peer: IpAddr,
    created: Instant,
    last_seen: Instant,
}

/// The User ID of a valid session, and what it logged in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOf {
    pub user_id: String,
    credential: [u8; 32],
}

impl SessionOf {
    /// Whether the User ID's password hash is still the one it logged in with: a changed
    /// password (or the same password hashed again) ends the session.
    pub fn same_credential(&self, password_hash: &str) -> bool {
        self.credential == credential(password_hash)
    }
}

fn credential(password_hash: &str) -> [u8; 32] {
    Sha256::digest(password_hash.as_bytes()).into()
}

impl PortalSession {
    fn alive(&self, now: Instant, idle: Duration, absolute: Duration) -> bool {
        now.saturating_duration_since(self.last_seen) < idle
            && now.saturating_duration_since(self.created) < absolute
    }
}

type TokenDigest = [u8; 32];

/// The server-side session store. Tokens are kept only as SHA-256 digests, so the store
/// (or a memory dump of it) cannot be replayed as cookies. At most one session per User
/// ID, so the store holds at most one entry per User ID.
#[derive(Debug)]
pub struct Sessions {
    by_token: DashMap<TokenDigest, PortalSession>,
    by_user: DashMap<String, TokenDigest>,
    idle: Duration,
    absolute: Duration,
}

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A token is 32 random bytes in unpadded base64url: 43 characters.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Sessions {
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Self {
            by_token: DashMap::new(),
            by_user: DashMap::new(),
            idle,
            absolute,
        }
    }

    /// Starts a session for `user_id` at `peer`, which logged in against `password_hash`,
    /// unless one is active; returns the token. An expired session of the same User ID is
    /// replaced.
    pub fn create(
        &self,
        user_id: &str,
        password_hash: &str,
        peer: IpAddr,
        now: Instant,
    ) -> Result<String, SessionActive> {
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let key = digest(&token);
        let session = PortalSession {
            user_id: user_id.to_string(),
            credential: credential(password_hash),
            peer: canonical_ip(peer),
            created: now,
            last_seen: now,
        };
        // Lock order: a `by_user` entry, then `by_token`; `check` never holds a `by_token`
        // guard while it touches `by_user`.
        match self.by_user.entry(user_id.to_string()) {
            Entry::Occupied(mut held) => {
                let old = *held.get();
                let alive = self
                    .by_token
                    .get(&old)
                    .is_some_and(|s| s.alive(now, self.idle, self.absolute));
                if alive {
                    return Err(SessionActive);
                }
                self.by_token.remove(&old);
                self.by_token.insert(key, session);
                held.insert(key);
            }
            Entry::Vacant(free) => {
                self.by_token.insert(key, session);
                free.insert(key);
            }
        }
        Ok(token)
    }

    /// The User ID of a valid session presented from `peer`; records the activity.
    pub fn check(
        &self,
        token: &str,
        peer: IpAddr,
        now: Instant,
    ) -> Result<SessionOf, SessionError> {
        if !well_formed(token) {
            return Err(SessionError::Missing);
        }
        let key = digest(token);
        let expired_user = {
            let Some(mut s) = self.by_token.get_mut(&key) else {
                return Err(SessionError::Missing);
            };
            if s.alive(now, self.idle, self.absolute) {
                if s.peer != canonical_ip(peer) {
                    return Err(SessionError::OtherAddress);
                }
                s.last_seen = s.last_seen.max(now);
                return Ok(SessionOf {
                    user_id: s.user_id.clone(),
                    credential: s.credential,
                });
            }
            s.user_id.clone()
        };
        self.by_token.remove(&key);
        self.by_user.remove_if(&expired_user, |_, k| *k == key);
        Err(SessionError::Expired)
    }

    /// Ends the session of `token`, if it exists; returns its User ID.
    pub fn end(&self, token: &str) -> Option<String> {
        let key = digest(token);
        let (_, s) = self.by_token.remove(&key)?;
        self.by_user.remove_if(&s.user_id, |_, k| *k == key);
        Some(s.user_id)
    }

    /// Ends whatever session `user_id` has (a User ID removed by a reload).
    pub fn end_user(&self, user_id: &str) {
        if let Some((_, key)) = self.by_user.remove(user_id) {
            self.by_token.remove(&key);
        }
    }

    /// After a reload: ends every session whose User ID `snap` no longer has as it logged
    /// in (removed, another password hash, deactivated by its PKS file or a sanction, or
    /// its IP LAN no longer holding the session's address). Run as the new snapshot goes in
    /// force, so a User ID deactivated and reactivated by two reloads does not keep a
    /// session it had before. Returns how many ended.
    pub fn end_changed(&self, snap: &gerbang_policy::Snapshot) -> usize {
        let mut ended = Vec::new();
        self.by_token.retain(|key, s| {
            let valid = snap.user_by_id(&s.user_id).is_some_and(|u| {
                let user = snap.user(u);
                user.status == UserStatus::Aktif
                    && credential(&user.password_hash) == s.credential
                    && user.ip_registered(s.peer)
            });
            if !valid {
                ended.push((s.user_id.clone(), *key));
            }
            valid
        });
        for (user_id, key) in &ended {
            self.by_user.remove_if(user_id, |_, k| k == key);
        }
        ended.len()
    }

    /// Active sessions (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cookies_are_found_and_set_strictly() {
        let headers = ["a=1; gerbang_portal=abc ; b=2", "c=3"];
        assert_eq!(cookie(headers.into_iter(), "gerbang_portal"), Some("abc"));
        assert_eq!(cookie(headers.into_iter(), "c"), Some("3"));
        assert_eq!(cookie(headers.into_iter(), "gerbang"), None);
        let set = session_cookie("gerbang_portal", "tok");
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/portal/"] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(cleared_cookie("x").contains("Max-Age=0"));
    }

    #[test]
    fn sessions_are_bound_to_user_and_address_and_expire() {
        let idle = Duration::from_secs(60);
        let store = Sessions::new(idle, Duration::from_secs(600));
        let t0 = Instant::now();
        let token = store
            .create("u1", "hash-1", ip("10.0.0.1"), t0)
            .expect("first");
        assert_eq!(token.len(), 43);
        let session = store
            .check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(30))
            .expect("valid");
        assert_eq!(session.user_id, "u1");
        // The password hash it logged in with: another one (a changed password) ends it.
        assert!(session.same_credential("hash-1"));
        assert!(!session.same_credential("hash-2"));
        // IPv4 seen through an IPv4-mapped socket is the same client.
        assert!(store.check(&token, ip("::ffff:10.0.0.1"), t0).is_ok());
        assert_eq!(
            store.check(&token, ip("10.0.0.2"), t0),
            Err(SessionError::OtherAddress)
        );
        // One session per User ID, from anywhere.
        assert_eq!(
            store.create("u1", "hash-1", ip("10.0.0.1"), t0 + Duration::from_secs(31)),
            Err(SessionActive)
        );
        // Activity at 30 s keeps it alive until 90 s; at 91 s it is gone.
        assert!(
            store
                .check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(89))
                .is_ok()
        );
        assert_eq!(
            store.check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(150)),
            Err(SessionError::Expired)
        );
        assert_eq!(
            store.check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(150)),
            Err(SessionError::Missing)
        );
        assert!(store.is_empty());
        let again = store
            .create(
                "u1",
                "hash-1",
                ip("10.0.0.1"),
                t0 + Duration::from_secs(151),
            )
            .expect("after expiry");
        assert_ne!(again, token);
        assert_eq!(
            store.check("not-a-token", ip("10.0.0.1"), t0),
            Err(SessionError::Missing)
        );
    }

    #[test]
    fn sessions_end_at_their_absolute_age_and_on_logout() {
        let store = Sessions::new(Duration::from_secs(60), Duration::from_secs(100));
        let t0 = Instant::now();
        let token = store
            .create("u1", "hash-1", ip("10.0.0.1"), t0)
            .expect("first");
        for s in [50, 95] {
            assert!(
                store
                    .check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(s))
                    .is_ok()
            );
        }
        assert_eq!(
            store.check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(100)),
            Err(SessionError::Expired)
        );
        let token = store
            .create("u1", "hash-1", ip("10.0.0.1"), t0)
            .expect("fresh");
        // A stale session of the same user is replaced, not kept beside the new one.
        let store2 = Sessions::new(Duration::from_secs(1), Duration::from_secs(100));
        let _old = store2
            .create("u2", "hash-1", ip("10.0.0.1"), t0)
            .expect("old");
        let _new = store2
            .create("u2", "hash-1", ip("10.0.0.1"), t0 + Duration::from_secs(5))
            .expect("stale replaced");
        assert_eq!(store2.len(), 1);
        assert_eq!(store.end(&token).as_deref(), Some("u1"));
        assert!(store.is_empty());
        assert!(store.create("u1", "hash-1", ip("10.0.0.1"), t0).is_ok());
        store.end_user("u1");
        assert!(store.is_empty());
    }
}

//! Web Portal sessions. A session is a 256-bit random token the browser holds in a cookie;
//! the store keeps only its SHA-256 digest (a dump of the store cannot be replayed as
//! cookies), bound to the User ID and the client's address. It ends after
//! [`SessionSettings::idle`] without activity, at [`SessionSettings::absolute`] age in any
//! case, at logout, when its User ID is ended, and when the same User ID logs in again
//! ([`NewLogin::EndsTheOther`]) or not at all while it lives
//! ([`NewLogin::RefusedWhileActive`]): one session per User ID.
//!
//! [`EmbeddedSessions`] keeps them in this process. [`RedisSessions`] keeps them in Redis for
//! every instance, the timeouts enforced by key expiry and measured on Redis's clock (one
//! clock for all instances):
//!
//! - `<prefix>session:<hex digest>`: hash `user`, `peer`, `created` (ms, Redis time),
//!   expiring after the idle time (renewed by each check) or at the absolute age, whichever
//!   comes first;
//! - `<prefix>session-user:<user id>`: the digest of the User ID's session, expiring at its
//!   absolute age;
//! - `<prefix>session-ended:<hex digest>`: why a session that is gone ended (`expired`,
//!   `replaced`, `ended`), so the browser can be told; it expires at the absolute age.
//!
//! With Redis unreachable a session cannot be confirmed: checks answer
//! [`SessionError::Unavailable`], which the caller treats as logged out, and logins are
//! refused (fail closed).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use redis::Script;
use sha2::{Digest, Sha256};

use crate::clock::Ticks;
use crate::link::{Link, Redis, ScriptCall, Unavailable};

/// What a new login of a User ID with a live session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewLogin {
    /// The new login ends the other session, on every instance.
    EndsTheOther,
    /// The new login is refused while the other session lives.
    RefusedWhileActive,
}

/// Timeouts and the one-session rule.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// A session without activity for this long ends.
    pub idle: Duration,
    /// A session ends at this age, active or not.
    pub absolute: Duration,
    pub new_login: NewLogin,
}

/// Why a presented token is not a live session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("no session")]
    Missing,
    #[error("the session ended after inactivity or at its maximum age")]
    Expired,
    #[error("the session ended because its User ID logged in again")]
    Replaced,
    #[error("the session was ended for its User ID")]
    Ended,
    #[error("the session belongs to another client address")]
    OtherAddress,
    /// The store could not confirm the session: treat as logged out.
    #[error("the session cannot be confirmed: {0}")]
    Unavailable(String),
}

/// Why a login got no session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// [`NewLogin::RefusedWhileActive`] and the User ID has a live session.
    #[error("the User ID already has an active portal session")]
    Active,
    #[error("no session can be started: {0}")]
    Unavailable(String),
}

/// Portal sessions, in this process or shared by every instance.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Starts a session of `user` at `peer`; returns the token for the cookie (43
    /// characters of base64url).
    async fn start(&self, user: &str, peer: IpAddr) -> Result<String, StartError>;

    /// The User ID of the live session of `token` presented from `peer`; counts as
    /// activity. A session presented from another address is refused and not renewed.
    async fn check(&self, token: &str, peer: IpAddr) -> Result<String, SessionError>;

    /// Logout: ends the session of `token`; its User ID, if it lived.
    async fn end(&self, token: &str) -> Result<Option<String>, Unavailable>;

    /// Ends whatever session `user` has (a User ID removed or deactivated).
    async fn end_user(&self, user: &str) -> Result<(), Unavailable>;
}

type TokenDigest = [u8; 32];

fn new_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A token is 32 random bytes in unpadded base64url: 43 characters. Anything else is not
/// looked up at all.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why an embedded session that is still remembered is no longer valid.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Replaced,
    Ended,
}

#[derive(Debug, Clone)]
struct Held {
    user: String,
    peer: IpAddr,
    created: Duration,
    last_seen: Duration,
    ended: Option<Ending>,
}

/// Sessions of this process only.
#[derive(Debug)]
pub struct EmbeddedSessions {
    settings: SessionSettings,
    ticks: Ticks,
    /// Live sessions, and ended ones until their absolute age (to say why they ended).
    by_token: DashMap<TokenDigest, Held>,
    /// The User ID's latest session.
    by_user: DashMap<String, TokenDigest>,
}

impl EmbeddedSessions {
    pub fn new(settings: SessionSettings, ticks: Ticks) -> Self {
        Self {
            settings,
            ticks,
            by_token: DashMap::new(),
            by_user: DashMap::new(),
        }
    }

    fn live(&self, s: &Held, now: Duration) -> bool {
        s.ended.is_none()
            && now.saturating_sub(s.last_seen) < self.settings.idle
            && now.saturating_sub(s.created) < self.settings.absolute
    }

    /// Sessions remembered (live, and ended ones not yet past their absolute age).
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[async_trait]
impl SessionStore for EmbeddedSessions {
    async fn start(&self, user: &str, peer: IpAddr) -> Result<String, StartError> {
        let now = self.ticks.now();
        let absolute = self.settings.absolute;
        // What is past its absolute age is forgotten: the table holds at most the logins
        // of one absolute age.
        self.by_token
            .retain(|_, s| now.saturating_sub(s.created) < absolute);
        let token = new_token();
        let key = digest(&token);
        let held = Held {
            user: user.to_string(),
            peer: peer.to_canonical(),
            created: now,
            last_seen: now,
            ended: None,
        };
        // Lock order: a `by_user` entry, then `by_token`.
        match self.by_user.entry(user.to_string()) {
            Entry::Occupied(mut latest) => {
                let old = *latest.get();
                if let Some(mut s) = self.by_token.get_mut(&old)
                    && self.live(&s, now)
                {
                    if self.settings.new_login == NewLogin::RefusedWhileActive {
                        return Err(StartError::Active);
                    }
                    s.ended = Some(Ending::Replaced);
                } // the guard goes before `insert`, which may need the same shard
                self.by_token.insert(key, held);
                latest.insert(key);
            }
            Entry::Vacant(free) => {
                self.by_token.insert(key, held);
                free.insert(key);
            }
        }
        Ok(token)
    }

    async fn check(&self, token: &str, peer: IpAddr) -> Result<String, SessionError> {
        if !well_formed(token) {
            return Err(SessionError::Missing);
        }
        let now = self.ticks.now();
        let mut s = self
            .by_token
            .get_mut(&digest(token))
            .ok_or(SessionError::Missing)?;
        match s.ended {
            Some(Ending::Replaced) => return Err(SessionError::Replaced),
            Some(Ending::Ended) => return Err(SessionError::Ended),
            None => {}
        }
        if !self.live(&s, now) {
            return Err(SessionError::Expired);
        }
        if s.peer != peer.to_canonical() {
            return Err(SessionError::OtherAddress);
        }
        s.last_seen = s.last_seen.max(now);
        Ok(s.user.clone())
    }

    async fn end(&self, token: &str) -> Result<Option<String>, Unavailable> {
        let key = digest(token);
        let Some((_, s)) = self.by_token.remove(&key) else {
            return Ok(None);
        };
        self.by_user.remove_if(&s.user, |_, k| *k == key);
        Ok(self.live(&s, self.ticks.now()).then_some(s.user))
    }

    async fn end_user(&self, user: &str) -> Result<(), Unavailable> {
        if let Some((_, key)) = self.by_user.remove(user)
            && let Some(mut s) = self.by_token.get_mut(&key)
        {
            s.ended = Some(Ending::Ended);
        }
        Ok(())
    }
}

/// `KEYS`: the User ID's key, the new session and its ending, then (when the User ID had
/// a session) the old session and its ending. `ARGV`: the old digest seen by the caller
/// (`''`: none), user, peer, idle ms, absolute ms, `1` to refuse while the old one lives,
/// the new digest. Answers `ok`, `active`, or `retry` when another login changed the
/// User ID's session since the caller looked.
const START: &str = r"
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then
  return 'retry'
end
if cur and redis.call('EXISTS', KEYS[4]) == 1 then
  if ARGV[6] == '1' then
    return 'active'
  end
  redis.call('DEL', KEYS[4])
  redis.call('SET', KEYS[5], 'replaced', 'XX', 'KEEPTTL')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idle, absolute = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('HSET', KEYS[2], 'user', ARGV[2], 'peer', ARGV[3], 'created', now)
redis.call('PEXPIRE', KEYS[2], math.min(idle, absolute))
redis.call('SET', KEYS[3], 'expired', 'PX', absolute)
redis.call('SET', KEYS[1], ARGV[7], 'PX', absolute)
return 'ok'
";

/// `KEYS`: the session, its ending. `ARGV`: peer, idle ms, absolute ms. Answers
/// `{'ok', user}`, `{'other', ''}` or `{'gone', why}` (why: an ending or `''`).
const CHECK: &str = r"
local s = redis.call('HMGET', KEYS[1], 'user', 'peer', 'created')
if not s[1] then
  return {'gone', redis.call('GET', KEYS[2]) or ''}
end
if s[2] ~= ARGV[1] then
  return {'other', ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local left = tonumber(s[3]) + tonumber(ARGV[3]) - now
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return {'gone', 'expired'}
end
redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[2]), left))
return {'ok', s[1]}
";

/// `KEYS`: the session, its ending, its User ID's key. `ARGV`: the digest. Answers the
/// User ID of the session if it lived, else `''`.
const END: &str = r"
local user = redis.call('HGET', KEYS[1], 'user')
redis.call('DEL', KEYS[1], KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
return user or ''
";

/// `KEYS`: the User ID's key, the session it names, that session's ending. `ARGV`: the
/// digest the caller read. Answers 1, or 0 when the User ID's session changed meanwhile.
const END_USER: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], 'ended', 'XX', 'KEEPTTL')
return 1
";

/// How many times a login or an end retries when another one changed the User ID's
/// session at the same moment.
const RACES: usize = 4;

/// Sessions shared by every instance through Redis.
#[derive(Debug)]
pub struct RedisSessions {
    link: Link,
    _redis: Redis,
    settings: SessionSettings,
    prefix: String,
    scripts: [Arc<Script>; 4],
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisSessions {
    /// Sessions under `<prefix>session…` keys of `redis`.
    pub fn new(redis: &Redis, prefix: &str, settings: SessionSettings) -> Self {
        Self {
            link: redis.link().clone(),
            _redis: redis.clone(),
            settings,
            prefix: prefix.to_string(),
            scripts: [START, CHECK, END, END_USER].map(|s| Arc::new(Script::new(s))),
        }
    }

    fn session_key(&self, hex: &str) -> String {
        format!("{}session:{hex}", self.prefix)
    }

    fn ending_key(&self, hex: &str) -> String {
        format!("{}session-ended:{hex}", self.prefix)
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}session-user:{user}", self.prefix)
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    async fn start(&self, user: &str, peer: IpAddr) -> Result<String, StartError> {
        let token = new_token();
        let hex = hex::encode(digest(&token));
        let down = |e: Unavailable| StartError::Unavailable(e.0);
        let refuse = self.settings.new_login == NewLogin::RefusedWhileActive;
        for _ in 0..RACES {
            let old: Option<String> = self
                .link
                .query(redis::cmd("GET").arg(self.user_key(user)).clone())
                .await
                .map_err(down)?;
            let mut call = ScriptCall::new(&self.scripts[0])
                .key(self.user_key(user))
                .key(self.session_key(&hex))
                .key(self.ending_key(&hex));
            if let Some(old) = &old {
                call = call.key(self.session_key(old)).key(self.ending_key(old));
            }
            let answer: String = self
                .link
                .query(
                    call.arg(old.as_deref().unwrap_or(""))
                        .arg(user)
                        .arg(peer.to_canonical().to_string())
                        .arg(millis(self.settings.idle))
                        .arg(millis(self.settings.absolute))
                        .arg(if refuse { "1" } else { "0" })
                        .arg(&hex),
                )
                .await
                .map_err(down)?;
            match answer.as_str() {
                "ok" => return Ok(token),
                "active" => return Err(StartError::Active),
                _ => {}
            }
        }
        Err(StartError::Unavailable(
            "other logins of this User ID kept racing this one".into(),
        ))
    }

    async fn check(&self, token: &str, peer: IpAddr) -> Result<String, SessionError> {
        if !well_formed(token) {
            return Err(SessionError::Missing);
        }
        let hex = hex::encode(digest(token));
        let (state, value): (String, String) = self
            .link
            .query(
                ScriptCall::new(&self.scripts[1])
                    .key(self.session_key(&hex))
                    .key(self.ending_key(&hex))
                    .arg(peer.to_canonical().to_string())
                    .arg(millis(self.settings.idle))
                    .arg(millis(self.settings.absolute)),
            )
            .await
            .map_err(|e| SessionError::Unavailable(e.0))?;
        match (state.as_str(), value.as_str()) {
            ("ok", _) => Ok(value),
            ("other", _) => Err(SessionError::OtherAddress),
            (_, "expired") => Err(SessionError::Expired),
            (_, "replaced") => Err(SessionError::Replaced),
            (_, "ended") => Err(SessionError::Ended),
            _ => Err(SessionError::Missing),
        }
    }

    async fn end(&self, token: &str) -> Result<Option<String>, Unavailable> {
        if !well_formed(token) {
            return Ok(None);
        }
        let hex = hex::encode(digest(token));
        // The User ID of a session never changes: read it, then end the session and, if it
        // is still the User ID's latest, the User ID's pointer to it.
        let user: Option<String> = self
            .link
            .query(
                redis::cmd("HGET")
                    .arg(self.session_key(&hex))
                    .arg("user")
                    .clone(),
            )
            .await?;
        let Some(user) = user else {
            let _: i64 = self
                .link
                .query(redis::cmd("DEL").arg(self.ending_key(&hex)).clone())
                .await?;
            return Ok(None);
        };
        let ended: String = self
            .link
            .query(
                ScriptCall::new(&self.scripts[2])
                    .key(self.session_key(&hex))
                    .key(self.ending_key(&hex))
                    .key(self.user_key(&user))
                    .arg(&hex),
            )
            .await?;
        Ok((!ended.is_empty()).then_some(ended))
    }

    async fn end_user(&self, user: &str) -> Result<(), Unavailable> {
        for _ in 0..RACES {
            let Some(hex): Option<String> = self
                .link
                .query(redis::cmd("GET").arg(self.user_key(user)).clone())
                .await?
            else {
                return Ok(());
            };
            let done: i64 = self
                .link
                .query(
                    ScriptCall::new(&self.scripts[3])
                        .key(self.user_key(user))
                        .key(self.session_key(&hex))
                        .key(self.ending_key(&hex))
                        .arg(&hex),
                )
                .await?;
            if done == 1 {
                return Ok(());
            }
        }
        Err(Unavailable(
            "other logins of this User ID kept racing the end of its session".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(new_login: NewLogin) -> (EmbeddedSessions, Ticks) {
        let ticks = Ticks::manual();
        let settings = SessionSettings {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
            new_login,
        };
        (EmbeddedSessions::new(settings, ticks.clone()), ticks)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[tokio::test]
    async fn idle_and_absolute_timeouts_end_a_session() {
        let (s, ticks) = store(NewLogin::EndsTheOther);
        let a = ip("10.0.0.2");
        let t = s.start("u", a).await.expect("start");
        assert_eq!(t.len(), 43);
        for _ in 0..4 {
            ticks.advance(Duration::from_secs(50));
            assert_eq!(s.check(&t, a).await.as_deref(), Ok("u"), "activity renews");
        }
        ticks.advance(Duration::from_secs(61));
        assert_eq!(s.check(&t, a).await, Err(SessionError::Expired));

        let t = s.start("u", a).await.expect("start again");
        for _ in 0..5 {
            ticks.advance(Duration::from_secs(50));
            let _ = s.check(&t, a).await;
        }
        ticks.advance(Duration::from_secs(50));
        assert_eq!(
            s.check(&t, a).await,
            Err(SessionError::Expired),
            "at its absolute age, however active"
        );
        // Past its absolute age it is forgotten by the next login.
        ticks.advance(Duration::from_secs(300));
        let _ = s.start("v", a).await.expect("another login");
        assert_eq!(s.check(&t, a).await, Err(SessionError::Missing));
        assert_eq!(s.len(), 1);
    }

    #[tokio::test]
    async fn one_session_per_user_id_by_either_rule() {
        let (s, _) = store(NewLogin::EndsTheOther);
        let (a, b) = (ip("10.0.0.2"), ip("10.0.0.3"));
        let first = s.start("u", a).await.expect("first");
        let second = s.start("u", b).await.expect("second ends the first");
        assert_eq!(s.check(&first, a).await, Err(SessionError::Replaced));
        assert_eq!(s.check(&second, b).await.as_deref(), Ok("u"));
        assert_eq!(s.check(&second, a).await, Err(SessionError::OtherAddress));
        assert_eq!(
            s.end(&first).await,
            Ok(None),
            "a replaced session is not ended twice"
        );
        assert_eq!(s.check(&second, b).await.as_deref(), Ok("u"));

        let (s, _) = store(NewLogin::RefusedWhileActive);
        let first = s.start("u", a).await.expect("first");
        assert_eq!(s.start("u", b).await, Err(StartError::Active));
        assert_eq!(s.end(&first).await, Ok(Some("u".into())));
        assert_eq!(s.check(&first, a).await, Err(SessionError::Missing));
        let second = s.start("u", b).await.expect("after logout");
        s.end_user("u").await.expect("end user");
        assert_eq!(s.check(&second, b).await, Err(SessionError::Ended));
    }

    #[tokio::test]
    async fn malformed_tokens_are_not_looked_up() {
        let (s, _) = store(NewLogin::EndsTheOther);
        let a = ip("10.0.0.2");
        let t = s.start("u", a).await.expect("start");
        for bad in ["", "x", &"A".repeat(10_000), &format!("{t} "), &t[..42]] {
            assert_eq!(s.check(bad, a).await, Err(SessionError::Missing));
        }
        // An IPv4 peer seen as IPv4-mapped IPv6 is the same address.
        assert_eq!(s.check(&t, ip("::ffff:10.0.0.2")).await.as_deref(), Ok("u"));
    }
}

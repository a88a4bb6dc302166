//! The Redis store behind a meter shared by several gateway instances.
//!
//! One hash per (WIB day, User ID), `<prefix><YYYY-MM-DD>:<user>`, expiring two days after
//! its last write. Each gateway process owns one field of it, named after the instance and
//! a per-process id, holding the hits that process holds: leased and not given back, plus
//! emergency hits it has reconciled. The day's total is the sum of the fields. A second
//! field, `<id>#seq`, keeps the sequence number of the process's last write.
//!
//! Every write is one Lua script that sets the process's field to an *absolute* value and
//! then leases `min(want, limit - total)` more, atomically. Because the value is absolute:
//! a lease whose answer was lost (timeout) is given back by the next write rather than
//! lost; a key lost by a Redis restart without persistence, or by a failover that lost the
//! last writes, is re-seeded with what the process holds on its next write; emergency hits
//! are reconciled by writing them in; a clean shutdown writes the exact count. The sequence
//! number makes a write that arrives after a newer one (a stalled, reconnected connection)
//! a no-op, so an old value can never overwrite a newer one.
//!
//! The URL names one server or, as `redis+sentinel://…`, a master found through Redis
//! Sentinel; the connection (`gerbang_shared::Redis`) follows a failover and runs on a
//! small runtime of its own, so the store works the same whichever of pingora's runtimes
//! calls it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use gerbang_shared::{Link, Redis, RedisTarget, ScriptCall};
use redis::Script;
use tokio::runtime::Handle;

use crate::health::Health;
use crate::meter::{QuotaError, StoreFailure};

/// Settings of the Redis store. Its `Debug` never shows the URL, which may carry a
/// password (`redis://user:password@host`).
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port/db`, `redis+unix:///path?db=N`, or
    /// `redis+sentinel://[user:password@]host:port,…/master/db` (through Redis Sentinel).
    pub url: String,
    /// Hits leased to this instance per User ID at a time.
    pub lease: u32,
    /// Hits per User ID per day this instance may grant while Redis is unreachable, beyond
    /// what it already leased (0: none).
    pub emergency_share: u32,
    /// Prefix of every key (`gerbang:quota:` by default).
    pub key_prefix: String,
    /// Name of this gateway instance, part of its field in every key.
    pub instance: String,
    /// Time limit of connecting and of each call.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &"<redacted>")
            .field("lease", &self.lease)
            .field("emergency_share", &self.emergency_share)
            .field("key_prefix", &self.key_prefix)
            .field("instance", &self.instance)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisOptions {
    /// Default settings for `url` (lease 16, no emergency share, 200 ms timeouts).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            lease: 16,
            emergency_share: 0,
            key_prefix: "gerbang:quota:".into(),
            instance: "gerbang".into(),
            timeout: Duration::from_millis(200),
        }
    }
}

/// Keys live this long after their last write: the day they count plus a margin.
const TTL_SECS: u64 = 2 * 24 * 3600;

/// KEYS[1]: the (day, user) hash. ARGV: field, sequence number, hits this process holds,
/// hits wanted, limit, TTL. Returns `{granted, total after}`, or `{-1, 0}` for a stale write.
pub(crate) const LEASE: &str = r"
local field = ARGV[1]
local seqf = field .. '#seq'
local seq = tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[1], seqf) or '0')
if seq <= last then
  return {-1, 0}
end
local held = tonumber(ARGV[3])
local total = held
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local f = all[i]
  if f ~= field and string.sub(f, -4) ~= '#seq' then
    total = total + tonumber(all[i + 1])
  end
end
local grant = math.min(tonumber(ARGV[4]), tonumber(ARGV[5]) - total)
if grant < 0 then
  grant = 0
end
redis.call('HSET', KEYS[1], field, held + grant, seqf, seq)
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {grant, total + grant}
";

/// What a write returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    /// Hits newly leased.
    pub(crate) granted: u32,
    /// The day's total across instances after the write.
    pub(crate) total: u32,
}

/// Why a write did not happen.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// Redis is unreachable, slow, or failed the call.
    Down(StoreFailure),
    /// A newer write of this process was already applied (only while closing).
    Stale,
}

/// The store: the link to Redis and this process's field. Background tasks hold it; the
/// [`Redis`] handle that keeps the link's runtime alive is the meter's.
#[derive(Debug)]
pub(crate) struct RedisStore {
    link: Link,
    script: Arc<Script>,
    prefix: String,
    /// This process's field in every key.
    field: String,
    seq: AtomicU64,
    health: Arc<Health>,
}

fn unavailable(e: impl Into<StoreFailure>) -> QuotaError {
    QuotaError::from(e.into())
}

/// A field name unique to this process, so that no two live processes share one even when
/// they share an instance name.
fn process_field(instance: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{instance}/{}/{nanos:x}/{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl RedisStore {
    /// Opens the link (connecting lazily: an unreachable Redis at start is an outage, not a
    /// startup failure) and returns the store and the handle that keeps the link alive. A
    /// malformed URL is an error.
    pub(crate) fn open(
        options: &RedisOptions,
        health: Arc<Health>,
    ) -> Result<(Self, Redis), QuotaError> {
        let target = RedisTarget::parse(&options.url).map_err(unavailable)?;
        let redis = Redis::open(&target, options.timeout, Arc::clone(&health.state))
            .map_err(unavailable)?;
        let store = Self {
            link: redis.link().clone(),
            script: Arc::new(Script::new(LEASE)),
            prefix: options.key_prefix.clone(),
            field: process_field(&options.instance),
            seq: AtomicU64::new(0),
            health,
        };
        Ok((store, redis))
    }

    /// The runtime the store's I/O runs on (for its background tasks).
    pub(crate) fn handle(&self) -> &Handle {
        self.link.handle()
    }

    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// Sets this process's hits of (user, day) to `held`, then leases up to `want` more
    /// under `limit`. While Redis is known to be down, fails at once except every
    /// [`gerbang_shared::Health::RETRY`], unless `force`.
    pub(crate) async fn write(
        &self,
        user: &str,
        day: NaiveDate,
        held: u32,
        want: u32,
        limit: u32,
        force: bool,
    ) -> Result<Reply, StoreError> {
        if !force && !self.health.may_try() {
            return Err(StoreError::Down(StoreFailure::Redis(
                gerbang_shared::Unavailable("Redis unreachable".into()),
            )));
        }
        // Taken here, in call order: under the per-key lock of the meter, a later call of
        // the same key always carries a higher number.
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let call = ScriptCall::new(&self.script)
            .key(format!("{}{day}:{user}", self.prefix))
            .arg(&self.field)
            .arg(seq)
            .arg(held)
            .arg(want)
            .arg(limit)
            .arg(TTL_SECS);
        let reply: (i64, i64) = self
            .link
            .query_now(call)
            .await
            .map_err(|e| StoreError::Down(e.into()))?;
        match reply {
            (-1, _) => Err(StoreError::Stale),
            (granted, total) => Ok(Reply {
                granted: u32::try_from(granted)
                    .map_err(|_| StoreError::Down(StoreFailure::BadLease(granted)))?,
                total: u32::try_from(total.max(0)).unwrap_or(u32::MAX),
            }),
        }
    }

    /// Asks Redis for its run id (which changes when it restarts, and with the master after
    /// a failover), recording health.
    pub(crate) async fn probe(&self) -> Result<String, String> {
        let info: String = self
            .link
            .query_now(redis::cmd("INFO").arg("server").clone())
            .await
            .map_err(|e| e.0)?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .unwrap_or_default()
            .trim()
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_url_and_its_password() {
        let options = RedisOptions::new("redis://gerbang:s3cret-pw@10.0.0.7:6379/0");
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("s3cret-pw") && !shown.contains("10.0.0.7"),
            "{shown}"
        );
        assert!(shown.contains("lease: 16"), "{shown}");
    }
}

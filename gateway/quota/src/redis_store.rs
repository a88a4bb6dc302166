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
//! lost; a key lost by a Redis restart without persistence is re-seeded with what the
//! process holds on its next write; emergency hits are reconciled by writing them in; a
//! clean shutdown writes the exact count. The sequence number makes a write that arrives
//! after a newer one (a stalled, reconnected connection) a no-op, so an old value can never
//! overwrite a newer one.
//!
//! All Redis I/O runs on a small runtime of its own, so the store works the same whichever
//! of pingora's runtimes calls it, and its connection outlives none of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::runtime::{Handle, Runtime};

use crate::health::Health;
use crate::meter::QuotaError;

/// Settings of the Redis store. Its `Debug` never shows the URL, which may carry a
/// password (`redis://user:password@host`).
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port/db` or `redis+unix:///path?db=N`.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// Redis is unreachable, slow, or failed the call.
    Down(String),
    /// A newer write of this process was already applied (only while closing).
    Stale,
}

/// The store: a handle on its runtime and the state its tasks share.
#[derive(Debug)]
pub(crate) struct RedisStore {
    handle: Handle,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: AsyncConnectionConfig,
    /// The connection in use; dropped after an I/O error or timeout, re-made on the next call.
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    script: Script,
    prefix: String,
    /// This process's field in every key.
    field: String,
    timeout: Duration,
    seq: AtomicU64,
    health: Arc<Health>,
}

/// The store's runtime, shut down without waiting when the meter is dropped (also from
/// inside another runtime).
#[derive(Debug)]
pub(crate) struct RuntimeGuard(Option<Runtime>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> QuotaError {
    QuotaError::Unavailable(e.to_string())
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
    /// Starts the store's runtime; connects lazily (an unreachable Redis at start is an
    /// outage, not a startup failure). A malformed URL is an error.
    pub(crate) fn open(
        options: &RedisOptions,
        health: Arc<Health>,
    ) -> Result<(Self, RuntimeGuard), QuotaError> {
        let client = Client::open(options.url.as_str())
            .map_err(|e| unavailable(format!("redis_url: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gerbang-quota-redis")
            .enable_all()
            .build()
            .map_err(unavailable)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout));
        let inner = Arc::new(Inner {
            client,
            config,
            conn: tokio::sync::Mutex::new(None),
            script: Script::new(LEASE),
            prefix: options.key_prefix.clone(),
            field: process_field(&options.instance),
            timeout: options.timeout,
            seq: AtomicU64::new(0),
            health,
        });
        Ok((
            Self {
                handle: runtime.handle().clone(),
                inner,
            },
            RuntimeGuard(Some(runtime)),
        ))
    }

    /// The runtime the store's I/O runs on (for its background tasks).
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    pub(crate) fn health(&self) -> &Health {
        &self.inner.health
    }

    /// Sets this process's hits of (user, day) to `held`, then leases up to `want` more
    /// under `limit`. While Redis is known to be down, fails at once except every
    /// [`Health::RETRY`], unless `force`.
    pub(crate) async fn write(
        &self,
        user: &str,
        day: NaiveDate,
        held: u32,
        want: u32,
        limit: u32,
        force: bool,
    ) -> Result<Reply, StoreError> {
        let since = self.inner.health.generation();
        if !force && !self.inner.health.may_try() {
            return Err(StoreError::Down("Redis unreachable".into()));
        }
        let key = format!("{}{day}:{user}", self.inner.prefix);
        // Taken here, in call order: under the per-key lock of the meter, a later call of
        // the same key always carries a higher number.
        let seq = self.inner.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let inner = Arc::clone(&self.inner);
        let task = self
            .handle
            .spawn(async move { inner.eval(&key, seq, held, want, limit).await });
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Down(format!("quota task failed: {e}"))),
        };
        match &result {
            Ok(_) | Err(StoreError::Stale) => self.inner.health.succeeded(since),
            Err(StoreError::Down(why)) => self.inner.health.failed(since, why),
        }
        result
    }

    /// Asks Redis for its run id (which changes when it restarts), recording health.
    pub(crate) async fn probe(&self) -> Result<String, String> {
        let since = self.inner.health.generation();
        let inner = Arc::clone(&self.inner);
        let result = match self.handle.spawn(async move { inner.run_id().await }).await {
            Ok(r) => r,
            Err(e) => Err(format!("quota task failed: {e}")),
        };
        match &result {
            Ok(_) => self.inner.health.succeeded(since),
            Err(why) => self.inner.health.failed(since, why),
        }
        result
    }
}

impl Inner {
    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(
            self.timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&self.config),
        )
        .await
        .map_err(|_| "connecting to Redis timed out".to_string())?
        .map_err(|e| format!("connecting to Redis: {e}"))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Drops the connection so the next call makes a new one.
    async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    async fn eval(
        &self,
        key: &str,
        seq: u64,
        held: u32,
        want: u32,
        limit: u32,
    ) -> Result<Reply, StoreError> {
        let mut conn = self.connection().await.map_err(StoreError::Down)?;
        let mut call = self.script.prepare_invoke();
        call.key(key)
            .arg(&self.field)
            .arg(seq)
            .arg(held)
            .arg(want)
            .arg(limit)
            .arg(TTL_SECS);
        let reply: (i64, i64) =
            match tokio::time::timeout(self.timeout, call.invoke_async(&mut conn)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    self.reset().await;
                    return Err(StoreError::Down(format!("Redis: {e}")));
                }
                Err(_) => {
                    self.reset().await;
                    return Err(StoreError::Down("Redis did not answer in time".into()));
                }
            };
        match reply {
            (-1, _) => Err(StoreError::Stale),
            (granted, total) => Ok(Reply {
                granted: u32::try_from(granted)
                    .map_err(|_| StoreError::Down(format!("Redis answered {granted} hits")))?,
                total: u32::try_from(total.max(0)).unwrap_or(u32::MAX),
            }),
        }
    }

    async fn run_id(&self) -> Result<String, String> {
        let mut conn = self.connection().await?;
        let info: Result<String, String> = match tokio::time::timeout(
            self.timeout,
            redis::cmd("INFO").arg("server").query_async(&mut conn),
        )
        .await
        {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(e)) => Err(format!("Redis: {e}")),
            Err(_) => Err("Redis did not answer in time".into()),
        };
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                self.reset().await;
                return Err(e);
            }
        };
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

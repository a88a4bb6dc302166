//! The connection to the shared Redis: one multiplexed connection to the master, made
//! lazily, through Sentinel when the target names sentinels, and made again after any
//! error that may mean the connection or the master changed.
//!
//! Every call has one time budget, the store's timeout, for finding the master,
//! connecting and answering together. After an I/O error or a timeout the connection is
//! dropped and the next call connects again, which through Sentinel asks the sentinels for
//! the master anew: after a failover the first call that fails on the old master is
//! refused, and the next reaches the new one. A node that answers `READONLY` is a replica
//! (a master demoted by a failover it did not see die, or one the URL names directly):
//! nothing was written, so the call is made once more on a freshly found master within the
//! same budget. No other error is retried: a write whose answer was lost may have happened.
//!
//! All Redis I/O runs on a small runtime of the link's own, so it works the same whichever
//! runtime calls it (pingora's, the sidecar's, a test's), and it stops with the last
//! [`Redis`] handle. While the store is down ([`Health`]), calls are refused at once except
//! one every [`Health::RETRY`], so a dead Redis never stalls requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::SentinelClient;
use redis::{
    AsyncConnectionConfig, Client, ErrorKind, FromRedisValue, RedisError, Script, ServerErrorKind,
    ToRedisArgs, Value,
};
use tokio::runtime::{Handle, Runtime};
use tokio::time::Instant;

use crate::health::Health;
use crate::target::RedisTarget;

/// Why a call got no answer: Redis unreachable, too slow, not the master, or refusing the
/// command. Callers fail closed on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// A handle on the shared Redis. Clones share the connection and its runtime, which stops
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Redis {
    link: Link,
    _runtime: Arc<RuntimeGuard>,
}

/// What background tasks hold: the connection without keeping its runtime alive. Its calls
/// fail once every [`Redis`] it came from is dropped.
#[derive(Debug, Clone)]
pub struct Link {
    handle: Handle,
    inner: Arc<Inner>,
}

/// Shuts the runtime down without waiting (also from inside another runtime).
#[derive(Debug)]
struct RuntimeGuard(Option<Runtime>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

enum Connector {
    Server(Client),
    /// Asks the sentinels for the master at every (re)connection.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

struct Inner {
    connector: Connector,
    config: AsyncConnectionConfig,
    /// The connection in use and its number; dropped after an error that may mean it (or
    /// the master) changed, re-made on the next call.
    conn: tokio::sync::Mutex<Option<(u64, MultiplexedConnection)>>,
    made: AtomicU64,
    timeout: Duration,
    health: Arc<Health>,
    /// Where the target points, for logs (no credentials).
    describe: String,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("target", &self.describe)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One call: a command, a pipeline, or a Lua script with its keys and arguments.
#[derive(Debug, Clone)]
pub enum Request {
    Cmd(redis::Cmd),
    Pipe(redis::Pipeline),
    Script(ScriptCall),
}

impl From<redis::Cmd> for Request {
    fn from(c: redis::Cmd) -> Self {
        Self::Cmd(c)
    }
}

impl From<redis::Pipeline> for Request {
    fn from(p: redis::Pipeline) -> Self {
        Self::Pipe(p)
    }
}

impl From<ScriptCall> for Request {
    fn from(s: ScriptCall) -> Self {
        Self::Script(s)
    }
}

/// A Lua script with its keys and arguments, sent as `EVALSHA` (loaded on `NOSCRIPT`, as
/// after a failover to a master that never saw it). Every key a script touches is in its
/// keys.
#[derive(Debug, Clone)]
pub struct ScriptCall {
    script: Arc<Script>,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl ScriptCall {
    pub fn new(script: &Arc<Script>) -> Self {
        Self {
            script: Arc::clone(script),
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    #[must_use]
    pub fn key(mut self, key: impl ToRedisArgs) -> Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    #[must_use]
    pub fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.args.extend(arg.to_redis_args());
        self
    }
}

/// Whether the connection can be kept after `e`: the server answered, and the answer is
/// about the command itself (a script error, a wrong type, an ACL refusal), not about the
/// node (a replica, loading, cut off from its master) or the link.
fn keeps_connection(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::ResponseError
                | ServerErrorKind::ExecAbort
                | ServerErrorKind::NoScript
                | ServerErrorKind::NoPerm
                | ServerErrorKind::NotBusy
                | ServerErrorKind::NoSub
        ) | ErrorKind::UnexpectedReturnType
            | ErrorKind::Extension
    )
}

fn is_readonly(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

impl Redis {
    /// Starts the link's runtime; connects lazily, so an unreachable Redis at start is an
    /// outage, not a startup failure. `timeout` bounds each call; `health` records its
    /// outcomes.
    pub fn open(
        target: &RedisTarget,
        timeout: Duration,
        health: Arc<Health>,
    ) -> Result<Self, Unavailable> {
        let connector = match target {
            RedisTarget::Server(info) => Connector::Server(
                Client::open(info.clone()).map_err(|e| Unavailable(format!("redis: {e}")))?,
            ),
            RedisTarget::Sentinel(s) => Connector::Sentinel(tokio::sync::Mutex::new(
                crate::target::sentinel_client(s)
                    .map_err(|e| Unavailable(format!("redis sentinel: {}", e.category())))?,
            )),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gerbang-redis")
            .enable_all()
            .build()
            .map_err(|e| Unavailable(format!("starting the Redis runtime: {e}")))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let inner = Arc::new(Inner {
            connector,
            config,
            conn: tokio::sync::Mutex::new(None),
            made: AtomicU64::new(0),
            timeout,
            health,
            describe: target.describe(),
        });
        Ok(Self {
            link: Link {
                handle: runtime.handle().clone(),
                inner,
            },
            _runtime: Arc::new(RuntimeGuard(Some(runtime))),
        })
    }

    /// The link, for background tasks that must not keep the runtime alive.
    pub fn link(&self) -> &Link {
        &self.link
    }
}

impl std::ops::Deref for Redis {
    type Target = Link;

    fn deref(&self) -> &Link {
        &self.link
    }
}

impl Link {
    /// The runtime the link's I/O runs on (for background tasks).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The health the link records.
    pub fn health(&self) -> &Arc<Health> {
        &self.inner.health
    }

    /// The time budget of one call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Where the link points, for logs.
    pub fn describe(&self) -> &str {
        &self.inner.describe
    }

    /// Runs one call; while Redis is known to be down, fails at once except every
    /// [`Health::RETRY`].
    pub async fn query<T: FromRedisValue + Send + 'static>(
        &self,
        request: impl Into<Request>,
    ) -> Result<T, Unavailable> {
        if !self.inner.health.may_try() {
            return Err(Unavailable(format!(
                "{} unreachable (retried every {} ms)",
                self.inner.describe,
                Health::RETRY.as_millis()
            )));
        }
        self.query_now(request).await
    }

    /// Runs one call even while Redis is known to be down (probes, a final write).
    pub async fn query_now<T: FromRedisValue + Send + 'static>(
        &self,
        request: impl Into<Request>,
    ) -> Result<T, Unavailable> {
        let request = request.into();
        let since = self.inner.health.generation();
        let inner = Arc::clone(&self.inner);
        let task = self.handle.spawn(async move {
            let value = inner.execute(&request).await?;
            redis::from_redis_value::<T>(value)
                .map_err(|e| format!("unexpected answer from Redis: {e}"))
        });
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(format!("Redis task failed: {e}")),
        };
        match &result {
            Ok(_) => self.inner.health.succeeded(since),
            Err(why) => self.inner.health.failed(since, why),
        }
        result.map_err(Unavailable)
    }

    /// A client of the current master (for a pub/sub connection), found within the time
    /// budget.
    pub async fn master(&self) -> Result<Client, Unavailable> {
        let inner = Arc::clone(&self.inner);
        let task = self.handle.spawn(async move {
            let deadline = Instant::now() + inner.timeout;
            tokio::time::timeout_at(deadline, inner.client())
                .await
                .map_err(|_| format!("finding the master of {} timed out", inner.describe))?
        });
        match task.await {
            Ok(r) => r.map_err(Unavailable),
            Err(e) => Err(Unavailable(format!("Redis task failed: {e}"))),
        }
    }
}

impl Inner {
    async fn client(&self) -> Result<Client, String> {
        match &self.connector {
            Connector::Server(client) => Ok(client.clone()),
            Connector::Sentinel(sentinel) => sentinel
                .lock()
                .await
                .async_get_client()
                .await
                .map_err(|e| format!("asking the sentinels for the master: {e}")),
        }
    }

    async fn connection(&self) -> Result<(u64, MultiplexedConnection), String> {
        let mut slot = self.conn.lock().await;
        if let Some((id, c)) = slot.as_ref() {
            return Ok((*id, c.clone()));
        }
        let client = self.client().await?;
        let c = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.describe))?;
        let id = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        *slot = Some((id, c.clone()));
        Ok((id, c))
    }

    /// Drops connection `id` (if still the one in use) so the next call makes a new one.
    async fn reset(&self, id: u64) {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|(current, _)| *current == id) {
            *slot = None;
        }
    }

    async fn execute(&self, request: &Request) -> Result<Value, String> {
        let deadline = Instant::now() + self.timeout;
        let mut retried = false;
        loop {
            let (id, mut conn) = tokio::time::timeout_at(deadline, self.connection())
                .await
                .map_err(|_| format!("connecting to {} timed out", self.describe))??;
            let e = match tokio::time::timeout_at(deadline, run(request, &mut conn)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => {
                    self.reset(id).await;
                    return Err("Redis did not answer in time".into());
                }
            };
            if keeps_connection(&e) {
                return Err(format!("Redis refused the call: {e}"));
            }
            self.reset(id).await;
            if is_readonly(&e) && !retried {
                retried = true;
                tracing::warn!(
                    redis = self.describe.as_str(),
                    "Redis answered READONLY: that node is a replica now; finding the master again"
                );
                continue;
            }
            return Err(format!("Redis: {e}"));
        }
    }
}

async fn run(request: &Request, conn: &mut MultiplexedConnection) -> redis::RedisResult<Value> {
    match request {
        Request::Cmd(c) => c.query_async(conn).await,
        Request::Pipe(p) => p.query_async(conn).await,
        Request::Script(s) => {
            let mut call = s.script.prepare_invoke();
            for k in &s.keys {
                call.key(k.as_slice());
            }
            for a in &s.args {
                call.arg(a.as_slice());
            }
            call.invoke_async(conn).await
        }
    }
}

//! The daily NIK-hit meter (juknis §2: "N hits NIK per day" per User ID).
//!
//! A hit is reserved before the request is forwarded and refunded if the DWH fails, so a
//! refused request never counts and the count can never pass the limit, however many
//! requests race. The day is the WIB calendar day the caller passes in.
//!
//! With the embedded store, counts live in memory and what is persisted is a ceiling per
//! (User ID, day): before a hit above the persisted ceiling is handed out, the ceiling is
//! raised by a block and committed durably (group commit, one fsync for every waiting
//! request). The next block is asked for when half of the current one is used, without
//! waiting, so a User ID at a steady pace never waits for the disk. After a crash the
//! ceiling is taken as the count, so a `kill -9` can only make a User ID lose part of a
//! block or two, never gain hits. A clean shutdown writes the exact counts.
//!
//! With the Redis store (several instances), each instance leases hits from Redis a lease
//! at a time (one atomic Lua call: never past the limit across instances) and serves them
//! from memory; one lease request per User ID is in flight at a time. A crashed instance's
//! unused lease is lost for the day, never an overshoot; a clean shutdown gives it back.
//! While Redis is unreachable only hits already leased are served, then at most
//! `emergency_share` hits per User ID per day, then requests are refused; emergency hits are
//! written into Redis when it returns. See `redis_store.rs` for the keys.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use dashmap::DashMap;

use crate::embedded::{Allocated, Persist};
use crate::health::{Health, StoreHealth};
use crate::redis_store::{RedisOptions, RedisStore, Reply, StoreError};

/// Why a hit was not reserved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QuotaError {
    /// Today's hits are used up.
    #[error("daily quota of {limit} hits used up ({used} used)")]
    Exhausted { used: u32, limit: u32 },
    /// The store could not persist a reservation; refuse rather than count blindly.
    /// (Shared: one failed write of a batch answers every hit in it.)
    #[error("quota store unavailable: {0}")]
    Unavailable(#[source] Arc<StoreFailure>),
}

impl From<StoreFailure> for QuotaError {
    fn from(e: StoreFailure) -> Self {
        Self::Unavailable(Arc::new(e))
    }
}

/// Why the quota store could not count or persist.
#[derive(Debug, thiserror::Error)]
pub enum StoreFailure {
    /// The embedded file (redb) failed: opening, a transaction, a read or a write.
    #[error(transparent)]
    Embedded(#[from] redb::Error),
    /// The embedded file could not be opened or created.
    #[error("opening {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    /// The embedded file's directory could not be made.
    #[error("creating {}: {source}", dir.display())]
    Directory {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The thread writing the embedded file could not start.
    #[error("starting the quota writer: {0}")]
    WriterStart(#[source] std::io::Error),
    /// The thread writing the embedded file has stopped.
    #[error("the quota writer has stopped")]
    WriterStopped,
    /// Redis could not be reached or failed the call.
    #[error(transparent)]
    Redis(#[from] gerbang_shared::Unavailable),
    /// `quota.redis_url` does not parse.
    #[error("redis_url: {0}")]
    RedisUrl(#[from] gerbang_shared::TargetError),
    /// Redis answered a lease that cannot be one.
    #[error("Redis answered {0} hits")]
    BadLease(i64),
    /// Redis is down and this User ID's leased hits (and emergency share) are used.
    #[error("{cause}; no leased hits left for this User ID{}", if *.emergency_share { " and its emergency share is used up" } else { "" })]
    NoLease {
        #[source]
        cause: Box<StoreFailure>,
        emergency_share: bool,
    },
    /// Counts could not be written back to Redis at the stop.
    #[error(
        "{failed} of {count} quota counts could not be written to Redis ({cause}); their leases stay counted for the day and unwritten emergency hits are not counted"
    )]
    NotWrittenBack {
        failed: usize,
        count: usize,
        #[source]
        cause: Box<StoreFailure>,
    },
    /// Writing the counts back to Redis at the stop took too long.
    #[error(
        "writing {count} quota counts to Redis took longer than {budget:?}; unwritten leases stay counted for the day"
    )]
    WriteBackTimeout { count: usize, budget: Duration },
    /// The gateway is stopping.
    #[error("the gateway is shutting down")]
    Closing,
}

impl From<redb::DatabaseError> for StoreFailure {
    fn from(e: redb::DatabaseError) -> Self {
        Self::Embedded(e.into())
    }
}

impl From<redb::TransactionError> for StoreFailure {
    fn from(e: redb::TransactionError) -> Self {
        Self::Embedded(e.into())
    }
}

impl From<redb::TableError> for StoreFailure {
    fn from(e: redb::TableError) -> Self {
        Self::Embedded(e.into())
    }
}

impl From<redb::StorageError> for StoreFailure {
    fn from(e: redb::StorageError) -> Self {
        Self::Embedded(e.into())
    }
}

impl From<redb::SetDurabilityError> for StoreFailure {
    fn from(e: redb::SetDurabilityError) -> Self {
        Self::Embedded(e.into())
    }
}

impl From<redb::CommitError> for StoreFailure {
    fn from(e: redb::CommitError) -> Self {
        Self::Embedded(e.into())
    }
}

/// A User ID's use of one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u32,
    pub limit: u32,
}

impl Usage {
    pub fn remaining(self) -> u32 {
        self.limit.saturating_sub(self.used)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counter {
    /// Hits this instance served (and did not refund).
    used: u32,
    /// Embedded: hits covered by the persisted ceiling. Redis: hits this instance holds in
    /// Redis (leased, plus emergency hits written in).
    pub(crate) allocated: u32,
    /// Redis: emergency hits not yet written into Redis.
    pending: u32,
    /// Redis: emergency hits granted today (counted against the share, never given back).
    emergency: u32,
    /// Redis: hits the other instances held at the last write (for the remaining count).
    others: u32,
    /// Redis: when `others` was last learnt.
    synced: Option<Instant>,
    /// Redis: one lease request per (User ID, day) at a time; emergency hits are granted
    /// and written in only under it.
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Embedded: the next block, asked for ahead of need: its ceiling and its outcome.
    pub(crate) ahead: Option<(u32, Allocated)>,
}

impl Counter {
    /// Hits this instance may serve without asking the store.
    fn covered(&self) -> u32 {
        self.allocated.saturating_add(self.pending)
    }

    /// The day's use as far as this instance knows (other instances' leases count whole).
    fn estimate(&self) -> u32 {
        self.others.saturating_add(self.used)
    }
}

type Key = (String, NaiveDate);
type Counters = DashMap<Key, Counter>;

/// After Redis said a User ID's day is used up, refuse locally for this long before asking
/// again (another instance may give hits back when it stops, or the limit may be raised).
const RECHECK: Duration = Duration::from_secs(1);

/// How often the Redis store is probed while healthy (restart detection, reconciliation).
const PROBE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum Backend {
    Memory,
    Embedded { persist: Persist, block: u32 },
    Redis(RedisBackend),
}

#[derive(Debug)]
struct RedisBackend {
    store: Arc<RedisStore>,
    lease: u32,
    emergency_share: u32,
    /// Some counter has emergency hits not yet written into Redis.
    pending: Arc<AtomicBool>,
    /// Last field: stops the link's runtime (and the watcher) when the meter goes.
    _redis: gerbang_shared::Redis,
}

/// Counts hits per User ID per day.
#[derive(Debug)]
pub struct Meter {
    pub(crate) counters: Arc<Counters>,
    backend: Backend,
    health: Arc<Health>,
    closed: Arc<AtomicBool>,
}

/// What one step of a reservation decided.
enum Step {
    Done(Result<Usage, QuotaError>),
    /// Ask the store (the embedded ceiling to raise, or the Redis lock to take).
    Store(StoreNeed),
}

enum StoreNeed {
    Ceiling(u32),
    Lease(Arc<tokio::sync::Mutex<()>>),
}

fn closing() -> QuotaError {
    QuotaError::from(StoreFailure::Closing)
}

impl Meter {
    /// A meter that forgets everything on restart: for tests only.
    pub fn memory() -> Self {
        Self {
            counters: Arc::default(),
            backend: Backend::Memory,
            health: Arc::new(Health::new("memory")),
            closed: Arc::default(),
        }
    }

    /// A meter persisted in a redb file. Counts of `today` and later are loaded (as their
    /// persisted ceilings); earlier days are pruned.
    pub fn embedded(
        path: &std::path::Path,
        block: u32,
        today: NaiveDate,
    ) -> Result<Self, QuotaError> {
        let (persist, loaded) = Persist::open(path, today)?;
        let counters = Counters::new();
        for ((user, day), ceiling) in loaded {
            counters.insert(
                (user, day),
                Counter {
                    used: ceiling,
                    allocated: ceiling,
                    ..Counter::default()
                },
            );
        }
        Ok(Self {
            counters: Arc::new(counters),
            backend: Backend::Embedded {
                persist,
                block: block.max(1),
            },
            health: Arc::new(Health::new("embedded")),
            closed: Arc::default(),
        })
    }

    /// A meter whose counts are shared through Redis with every gateway instance using the
    /// same Redis and key prefix. The URL names one server or, `redis+sentinel://…`, a
    /// master found through Redis Sentinel (followed across failovers). Redis being
    /// unreachable at start is an outage, not an error; a malformed URL is an error.
    pub fn redis(options: &RedisOptions) -> Result<Self, QuotaError> {
        let health = Arc::new(Health::new("redis"));
        let (store, redis) = RedisStore::open(options, Arc::clone(&health))?;
        let store = Arc::new(store);
        let counters: Arc<Counters> = Arc::default();
        let pending = Arc::new(AtomicBool::new(false));
        let closed: Arc<AtomicBool> = Arc::default();
        store.handle().spawn(watch(
            Arc::clone(&store),
            Arc::downgrade(&counters),
            Arc::clone(&pending),
            Arc::clone(&closed),
        ));
        tracing::info!(
            lease = options.lease,
            emergency_share = options.emergency_share,
            key_prefix = options.key_prefix.as_str(),
            "quota counts shared through Redis"
        );
        Ok(Self {
            counters,
            backend: Backend::Redis(RedisBackend {
                store,
                lease: options.lease.max(1),
                emergency_share: options.emergency_share,
                pending,
                _redis: redis,
            }),
            health,
            closed,
        })
    }

    /// Reserves one hit for `user` on `day` under `limit` (read from the PKS at every call,
    /// so a changed quota applies at once; below today's use means exhausted).
    pub async fn reserve(
        &self,
        user: &str,
        day: NaiveDate,
        limit: u32,
    ) -> Result<Usage, QuotaError> {
        loop {
            let need = match self.step(user, day, limit) {
                Step::Done(r) => return r,
                Step::Store(need) => need,
            };
            match (need, &self.backend) {
                (StoreNeed::Ceiling(ceiling), Backend::Embedded { persist, .. }) => {
                    let since = self.health.generation();
                    match persist.allocate(user, day, ceiling).await {
                        Ok(()) => self.health.succeeded(since),
                        Err(e) => {
                            self.health.failed(since, &e.to_string());
                            self.health.refused();
                            return Err(e);
                        }
                    }
                    let mut c = self.counters.entry((user.to_string(), day)).or_default();
                    c.allocated = c.allocated.max(ceiling);
                }
                (StoreNeed::Lease(lock), Backend::Redis(redis)) => {
                    let _one_at_a_time = lock.lock().await;
                    if let Some(done) = self.lease(redis, user, day, limit).await {
                        return done;
                    }
                }
                _ => unreachable!("each backend asks only for its own store"),
            }
        }
    }

    /// Decides what it can from memory: grant, refuse, or ask the store.
    fn step(&self, user: &str, day: NaiveDate, limit: u32) -> Step {
        let mut c = self.counters.entry((user.to_string(), day)).or_default();
        // Checked under the counter's lock: `close` sees every hit granted before it.
        if self.closed.load(Ordering::Acquire) {
            return Step::Done(Err(closing()));
        }
        let est = c.estimate();
        if c.used >= limit {
            return Step::Done(Err(QuotaError::Exhausted { used: est, limit }));
        }
        match &self.backend {
            Backend::Memory => {
                c.used += 1;
                Step::Done(Ok(Usage {
                    used: c.used,
                    limit,
                }))
            }
            Backend::Embedded { persist, block } => {
                take_ahead(&mut c);
                if c.used < c.allocated {
                    c.used += 1;
                    ask_ahead(&mut c, persist, (user, day), *block, limit);
                    return Step::Done(Ok(Usage {
                        used: c.used,
                        limit,
                    }));
                }
                Step::Store(StoreNeed::Ceiling(
                    c.allocated
                        .max(c.used)
                        .saturating_add(block_for(*block, limit))
                        .min(limit),
                ))
            }
            Backend::Redis(_) => {
                if est < limit && c.used < c.covered() {
                    c.used += 1;
                    return Step::Done(Ok(Usage {
                        used: c.estimate(),
                        limit,
                    }));
                }
                if est >= limit && c.synced.is_some_and(|t| t.elapsed() < RECHECK) {
                    return Step::Done(Err(QuotaError::Exhausted { used: est, limit }));
                }
                Step::Store(StoreNeed::Lease(Arc::clone(&c.lock)))
            }
        }
    }

    /// Under the (User ID, day) lock: leases more hits from Redis, or, with Redis down,
    /// grants an emergency hit or refuses. `None`: look again (something changed).
    async fn lease(
        &self,
        redis: &RedisBackend,
        user: &str,
        day: NaiveDate,
        limit: u32,
    ) -> Option<Result<Usage, QuotaError>> {
        let (held, pending) = {
            let c = self.counters.entry((user.to_string(), day)).or_default();
            let est = c.estimate();
            if est < limit && c.used < c.covered() {
                return None; // a lease arrived or a hit was refunded while waiting
            }
            if est >= limit && c.synced.is_some_and(|t| t.elapsed() < RECHECK) {
                return None; // someone just learnt it is used up
            }
            (c.covered(), c.pending)
        };
        let reply = redis
            .store
            .write(user, day, held, redis.lease, limit, false)
            .await;
        let mut c = self.counters.entry((user.to_string(), day)).or_default();
        match reply {
            Ok(Reply { granted, total }) => {
                c.allocated = c.allocated.saturating_add(pending).saturating_add(granted);
                c.pending = c.pending.saturating_sub(pending);
                c.others = total.saturating_sub(c.allocated);
                c.synced = Some(Instant::now());
                // Closing: `close` writes the exact count after this, giving the lease back.
                self.closed.load(Ordering::Acquire).then(|| Err(closing()))
            }
            Err(StoreError::Stale) => Some(Err(closing())),
            Err(StoreError::Down(why)) => {
                let est = c.estimate();
                if c.used >= limit || est >= limit {
                    return Some(Err(QuotaError::Exhausted { used: est, limit }));
                }
                if c.used < c.covered() {
                    return None;
                }
                if c.emergency < redis.emergency_share {
                    c.emergency += 1;
                    c.pending += 1;
                    c.used += 1;
                    redis.pending.store(true, Ordering::Release);
                    self.health.emergency_hit();
                    return Some(Ok(Usage {
                        used: c.estimate(),
                        limit,
                    }));
                }
                self.health.refused();
                Some(Err(QuotaError::from(StoreFailure::NoLease {
                    cause: Box::new(why),
                    emergency_share: redis.emergency_share > 0,
                })))
            }
        }
    }

    /// Gives back a hit whose lookup the DWH failed to answer.
    pub fn refund(&self, user: &str, day: NaiveDate) {
        if let Some(mut c) = self.counters.get_mut(&(user.to_string(), day)) {
            c.used = c.used.saturating_sub(1);
        }
    }

    /// Hits used by `user` on `day` (with the Redis store: as far as this instance knows,
    /// counting other instances' leases whole).
    pub fn used(&self, user: &str, day: NaiveDate) -> u32 {
        self.counters
            .get(&(user.to_string(), day))
            .map_or(0, |c| c.estimate())
    }

    /// Drops the counters of days before `day` (call when the day changes).
    pub fn prune_before(&self, day: NaiveDate) {
        self.counters.retain(|(_, d), _| *d >= day);
    }

    /// The quota store's health, for metrics.
    pub fn store_health(&self) -> StoreHealth {
        self.health.snapshot()
    }

    /// Whether the quota store answered its last call.
    pub fn store_healthy(&self) -> bool {
        self.health.is_healthy()
    }

    /// Clean shutdown: refuses further reservations and persists the exact counts, releasing
    /// the unused part of every block (embedded) or lease (Redis). Blocks at most a few
    /// seconds; callable from inside an async runtime.
    pub fn close(&self) -> Result<(), QuotaError> {
        self.closed.store(true, Ordering::Release);
        match &self.backend {
            Backend::Memory => Ok(()),
            Backend::Embedded { persist, .. } => persist.write_exact(
                self.counters
                    .iter()
                    .map(|e| (e.key().clone(), e.value().used))
                    .collect(),
            ),
            Backend::Redis(redis) => settle(&redis.store, &self.counters),
        }
    }
}

/// Largest block a large daily quota gets.
const MAX_BLOCK: u32 = 4096;

/// Embedded: the block of a User ID's ceiling: `quota.block`, or 1/64 of its daily limit
/// when that is more (at most [`MAX_BLOCK`]). A crash costs at most one and a half blocks,
/// so at most 2.4 % of a large quota, and a busy User ID commits every 64th of its day.
pub(crate) fn block_for(block: u32, limit: u32) -> u32 {
    block.max((limit / 64).min(MAX_BLOCK))
}

/// Embedded: takes in the block asked for ahead, once it is committed. A failed one is
/// forgotten: the next reservation past the ceiling asks again and waits, and reports it.
pub(crate) fn take_ahead(c: &mut Counter) {
    let Some((ceiling, allocated)) = c.ahead.as_mut() else {
        return;
    };
    match allocated.try_recv() {
        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
        Ok(Ok(())) => {
            c.allocated = c.allocated.max(*ceiling);
            c.ahead = None;
        }
        Ok(Err(_)) | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => c.ahead = None,
    }
}

/// Embedded: asks for the next block, without waiting, once half of the current one is
/// used. Queued under the counter's lock, so it reaches the writer before the exact counts
/// of a clean shutdown (`close` sets `closed` first, then reads every counter).
fn ask_ahead(
    c: &mut Counter,
    persist: &Persist,
    (user, day): (&str, NaiveDate),
    block: u32,
    limit: u32,
) {
    let block = block_for(block, limit);
    if c.ahead.is_some() || c.allocated >= limit || c.allocated - c.used > block / 2 {
        return;
    }
    let ceiling = c.allocated.saturating_add(block).min(limit);
    if let Ok(allocated) = persist.request(user, day, ceiling) {
        c.ahead = Some((ceiling, allocated));
    }
}

/// Writes every count this instance holds in Redis down to what it used, on the store's
/// runtime, and waits for it. Each key is written under its lock, after any lease in flight.
fn settle(store: &Arc<RedisStore>, counters: &Arc<Counters>) -> Result<(), QuotaError> {
    /// Writes in flight at once (one connection, pipelined).
    const PARALLEL: usize = 64;
    let keys: Vec<(Key, Arc<tokio::sync::Mutex<()>>)> = counters
        .iter()
        .filter(|e| e.value().used != e.value().allocated || e.value().pending > 0)
        .map(|e| (e.key().clone(), Arc::clone(&e.value().lock)))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let count = keys.len();
    let (done, wait) = std::sync::mpsc::channel();
    let (writer, counters) = (Arc::clone(store), Arc::clone(counters));
    store.handle().spawn(async move {
        let mut failed = 0usize;
        let mut last_error: Option<StoreFailure> = None;
        let mut set = tokio::task::JoinSet::new();
        for ((user, day), lock) in keys {
            if set.len() >= PARALLEL
                && let Some(Ok(Err(e))) = set.join_next().await
            {
                failed += 1;
                last_error = Some(e);
            }
            let (writer, counters) = (Arc::clone(&writer), Arc::clone(&counters));
            set.spawn(async move {
                let _one_at_a_time = lock.lock().await;
                let Some(used) = counters.get(&(user.clone(), day)).map(|c| c.used) else {
                    return Ok(());
                };
                match writer.write(&user, day, used, 0, 0, true).await {
                    Ok(_) => {
                        if let Some(mut c) = counters.get_mut(&(user.clone(), day)) {
                            c.allocated = used;
                            c.pending = 0;
                        }
                        Ok(())
                    }
                    Err(StoreError::Stale) => Ok(()),
                    Err(StoreError::Down(why)) => Err(why),
                }
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Err(e)) = r {
                failed += 1;
                last_error = Some(e);
            }
        }
        let _ = done.send((failed, last_error));
    });
    let budget = Duration::from_secs(5);
    match wait.recv_timeout(budget) {
        Ok((0, _)) => {
            tracing::info!(
                keys = count,
                "quota counts written to Redis; unused leases given back"
            );
            Ok(())
        }
        Ok((failed, cause)) => Err(QuotaError::from(StoreFailure::NotWrittenBack {
            failed,
            count,
            cause: Box::new(cause.unwrap_or(StoreFailure::WriterStopped)),
        })),
        Err(_) => Err(QuotaError::from(StoreFailure::WriteBackTimeout {
            count,
            budget,
        })),
    }
}

/// Background task of a Redis meter: probes Redis (health, and its run id, which changes
/// when it restarts and when a failover makes another node the master), writes emergency
/// hits in when it is reachable, and after a Redis restart or failover re-writes every
/// count this instance holds (a Redis without persistence comes back empty; a failover
/// can lose the writes the old master had not yet sent to its replica).
async fn watch(
    store: Arc<RedisStore>,
    counters: Weak<Counters>,
    pending: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
) {
    let mut run_id: Option<String> = None;
    // Outages already followed by a full write-back.
    let mut outages = 0;
    loop {
        let Some(map) = counters.upgrade() else {
            return;
        };
        if closed.load(Ordering::Acquire) {
            return; // `close` writes the exact counts
        }
        if let Ok(id) = store.probe().await {
            let restarted = run_id.as_ref().is_some_and(|old| *old != id);
            if restarted {
                tracing::warn!(
                    "Redis restarted or failed over: writing back the quota counts this instance holds"
                );
            }
            run_id = Some(id);
            // After an outage Redis may have lost data without this instance seeing a new
            // run id (it never saw the old one): write everything back then too.
            let seen = store.health().outages();
            let all = restarted || seen != outages;
            if all || pending.swap(false, Ordering::AcqRel) {
                if resync(&store, &map, all, &closed).await {
                    outages = seen;
                } else {
                    // Retried at the next probe.
                    pending.store(true, Ordering::Release);
                }
            }
        }
        drop(map);
        let pause = if store.health().is_healthy() {
            PROBE_EVERY
        } else {
            gerbang_shared::Health::RETRY
        };
        tokio::time::sleep(pause).await;
    }
}

/// Writes the held counts (with emergency hits) of every key with emergency hits pending,
/// or of every key when `all`. False if some could not be written.
async fn resync(store: &RedisStore, counters: &Counters, all: bool, closed: &AtomicBool) -> bool {
    let keys: Vec<(Key, Arc<tokio::sync::Mutex<()>>)> = counters
        .iter()
        .filter(|e| all || e.value().pending > 0)
        .map(|e| (e.key().clone(), Arc::clone(&e.value().lock)))
        .collect();
    let mut ok = true;
    for ((user, day), lock) in keys {
        let _one_at_a_time = lock.lock().await;
        if closed.load(Ordering::Acquire) {
            return true; // `close` writes the exact counts
        }
        let Some((held, pending)) = counters
            .get(&(user.clone(), day))
            .map(|c| (c.covered(), c.pending))
        else {
            continue;
        };
        match store.write(&user, day, held, 0, 0, false).await {
            Ok(Reply { total, .. }) => {
                if let Some(mut c) = counters.get_mut(&(user.clone(), day)) {
                    c.allocated = c.allocated.saturating_add(pending);
                    c.pending = c.pending.saturating_sub(pending);
                    c.others = total.saturating_sub(c.allocated);
                    c.synced = Some(Instant::now());
                }
                if pending > 0 {
                    tracing::info!(
                        user = user.as_str(),
                        hits = pending,
                        "emergency quota hits written into Redis"
                    );
                }
            }
            Err(_) => ok = false,
        }
    }
    ok
}

/// A shared meter.
pub type SharedMeter = Arc<Meter>;

//! Which NIKs each PKS looked up, for the data-balikan channel: a balikan record is accepted
//! only for a NIK the same PKS looked up within the window (`[balikan] window_days`), so the
//! channel cannot be used to probe for people or to send data about anyone else.
//!
//! Only the decision log's keyed NIK digests are kept, never a NIK. A lookup is noted
//! without waiting (it must not slow the answer); a balikan asks.
//!
//! [`EmbeddedLookups`] keeps them in a redb file of this instance, written in batches by one
//! thread (one fsync per batch), expired entries pruned by that thread. [`RedisLookups`]
//! keeps them for every instance: `SET <prefix>lookup:<pks>:<digest> 1 EXAT <end>`, sent in
//! pipelined batches by one task; a balikan reads them with `MGET`. With Redis unreachable a
//! balikan is refused (nothing can be checked) and lookups noted meanwhile are lost: their
//! NIKs cannot be returned until looked up again. A full queue drops notes the same way;
//! both are counted ([`LookupMemory::dropped`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::link::{Link, Redis, Unavailable};

/// Notes waiting to be written, at most; more are dropped (and counted).
pub const LOOKUP_QUEUE: usize = 65_536;

/// Notes written in one batch, at most.
const BATCH: usize = 4096;

/// How often the embedded writer removes expired notes.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

const LOOKED_UP: TableDefinition<&str, i64> = TableDefinition::new("looked_up");

/// The looked-up NIK digests of every PKS, in this process's file or in Redis.
#[async_trait]
pub trait LookupMemory: Send + Sync + std::fmt::Debug {
    /// Notes that `pks` looked up the NIK of `digest`, open for a balikan until `until`
    /// (Unix seconds). Returns at once.
    fn remember(&self, pks: &str, digest: &str, until: i64);

    /// For each of `digests`: whether `pks` looked it up and its window is open at `now`.
    async fn looked_up(
        &self,
        pks: &str,
        digests: &[String],
        now: i64,
    ) -> Result<Vec<bool>, Unavailable>;

    /// Notes dropped so far: the queue was full or the store failed.
    fn dropped(&self) -> u64;
}

/// Notes queued but not yet written: a balikan sent right after its lookup must find it.
/// Bounded by the queue (a note is here only while it is queued).
#[derive(Debug, Default)]
struct Pending(dashmap::DashMap<String, i64>);

impl Pending {
    /// Holds a note here and hands it to `send` (the writer's queue); one the queue does
    /// not take is dropped and counted.
    fn queue(
        &self,
        key: String,
        until: i64,
        dropped: &AtomicU64,
        send: impl FnOnce((String, i64)) -> bool,
    ) {
        {
            let mut e = self.0.entry(key.clone()).or_insert(until);
            *e = (*e).max(until);
        }
        if !send((key.clone(), until)) {
            self.written(&[(key, until)]);
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets the written notes (unless a later lookup extended one meanwhile).
    fn written(&self, batch: &[(String, i64)]) {
        for (k, until) in batch {
            self.0.remove_if(k, |_, v| *v <= *until);
        }
    }

    fn open(&self, key: &str, now: i64) -> bool {
        self.0.get(key).is_some_and(|u| *u >= now)
    }
}

fn key(pks: &str, digest: &str) -> String {
    // `\u{1f}` cannot occur in a PKS number read from TOML as a printable string, nor in a
    // hex digest: the pair is unambiguous.
    format!("{pks}\u{1f}{digest}")
}

/// Why the embedded store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LookupStoreError {
    #[error("creating {}: {source}", dir.display())]
    Directory {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("starting the writer of {}: {source}", path.display())]
    Writer {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Looked-up NIK digests in a redb file of this instance.
#[derive(Debug)]
pub struct EmbeddedLookups {
    /// Set once the file is open: at once, or, while a previous process still holds it
    /// (a binary upgrade), when it lets go; notes wait in the queue meanwhile.
    db: Arc<OnceLock<Arc<Database>>>,
    notes: mpsc::SyncSender<(String, i64)>,
    pending: Arc<Pending>,
    dropped: Arc<AtomicU64>,
    /// Tells a writer still waiting for the file that the store is gone.
    closed: Arc<AtomicBool>,
}

impl EmbeddedLookups {
    /// Opens (or creates) the file and starts its writer. A file another process holds is
    /// opened by the writer as soon as it is released.
    pub fn open(path: &Path) -> Result<Self, LookupStoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LookupStoreError::Directory {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let db: Arc<OnceLock<Arc<Database>>> = Arc::default();
        match Database::create(path) {
            Ok(opened) => {
                let _ = db.set(Arc::new(opened));
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => tracing::info!(
                path = %path.display(),
                "the balikan store is held by the previous process; it is opened when released"
            ),
            Err(source) => {
                return Err(LookupStoreError::Open {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let (notes, rx) = mpsc::sync_channel(LOOKUP_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let (writer_db, writer_dropped) = (Arc::clone(&db), Arc::clone(&dropped));
        let pending = Arc::new(Pending::default());
        let writer_pending = Arc::clone(&pending);
        let writer_path = path.to_path_buf();
        let closed = Arc::new(AtomicBool::new(false));
        let writer_closed = Arc::clone(&closed);
        std::thread::Builder::new()
            .name("gerbang-lookups".into())
            .spawn(move || {
                if let Some(db) = wait_for(&writer_db, &writer_path, &writer_closed) {
                    write_notes(&db, &rx, &writer_pending, &writer_dropped);
                }
            })
            .map_err(|source| LookupStoreError::Writer {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            db,
            notes,
            pending,
            dropped,
            closed,
        })
    }
}

impl Drop for EmbeddedLookups {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// The open file: at once, or once the process holding it lets go. `None`: the store was
/// dropped first.
fn wait_for(
    db: &OnceLock<Arc<Database>>,
    path: &Path,
    closed: &AtomicBool,
) -> Option<Arc<Database>> {
    loop {
        if let Some(open) = db.get() {
            return Some(Arc::clone(open));
        }
        match Database::create(path) {
            Ok(opened) => {
                let opened = Arc::new(opened);
                let _ = db.set(Arc::clone(&opened));
                tracing::info!(path = %path.display(), "balikan store opened");
                return Some(opened);
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {}
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "could not open the balikan store; trying again")
            }
        }
        if closed.load(Ordering::Acquire) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the notes of `pks` (blocking: call off the async workers).
fn read(db: &Database, pks: &str, digests: &[String], now: i64) -> Result<Vec<bool>, Unavailable> {
    let failed = |e: &dyn std::fmt::Display| Unavailable(format!("balikan store: {e}"));
    let txn = db.begin_read().map_err(|e| failed(&e))?;
    let table = match txn.open_table(LOOKED_UP) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![false; digests.len()]),
        Err(e) => return Err(failed(&e)),
    };
    digests
        .iter()
        .map(|d| {
            let until = table.get(key(pks, d).as_str()).map_err(|e| failed(&e))?;
            Ok(until.is_some_and(|u| u.value() >= now))
        })
        .collect()
}

#[async_trait]
impl LookupMemory for EmbeddedLookups {
    fn remember(&self, pks: &str, digest: &str, until: i64) {
        self.pending
            .queue(key(pks, digest), until, &self.dropped, |note| {
                self.notes.try_send(note).is_ok()
            });
    }

    async fn looked_up(
        &self,
        pks: &str,
        digests: &[String],
        now: i64,
    ) -> Result<Vec<bool>, Unavailable> {
        // A read transaction is quick, but it is file I/O: not on an async worker.
        // Queued notes first: one written after this check is in the file the read sees (it
        // leaves the queue only once committed); checked after the read, it could be in
        // neither.
        let queued: Vec<bool> = digests
            .iter()
            .map(|d| self.pending.open(&key(pks, d), now))
            .collect();
        let Some(db) = self.db.get().map(Arc::clone) else {
            return Err(Unavailable(
                "the balikan store is still held by the previous process".into(),
            ));
        };
        let (owned_pks, owned) = (pks.to_string(), digests.to_vec());
        let stored = tokio::task::spawn_blocking(move || read(&db, &owned_pks, &owned, now))
            .await
            .map_err(|e| Unavailable(format!("balikan store: {e}")))??;
        Ok(stored
            .into_iter()
            .zip(queued)
            .map(|(s, q)| s || q)
            .collect())
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The embedded writer: takes what is queued, commits it as one batch, and prunes expired
/// notes now and then. Ends when the store is dropped.
fn write_notes(
    db: &Database,
    rx: &mpsc::Receiver<(String, i64)>,
    pending: &Pending,
    dropped: &AtomicU64,
) {
    let mut last_prune: Option<Instant> = None;
    loop {
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            if let Err(e) = prune(db, unix_now()) {
                tracing::warn!(error = %e, "could not prune the balikan store");
            }
            last_prune = Some(Instant::now());
        }
        let first = match rx.recv_timeout(PRUNE_EVERY) {
            Ok(note) => note,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(note) => batch.push(note),
                Err(_) => break,
            }
        }
        if let Err(e) = commit(db, &batch) {
            dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::warn!(error = %e, notes = batch.len(), "could not write looked-up NIK digests: their NIKs cannot be returned as data balikan until looked up again");
        }
        pending.written(&batch);
    }
}

fn commit(db: &Database, batch: &[(String, i64)]) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut table = txn.open_table(LOOKED_UP)?;
        for (k, until) in batch {
            let current = table.get(k.as_str())?.map_or(i64::MIN, |v| v.value());
            if *until > current {
                table.insert(k.as_str(), *until)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn prune(db: &Database, now: i64) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(LOOKED_UP)?;
        table.retain(|_, until| until >= now)?;
    }
    txn.commit()?;
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Looked-up NIK digests shared by every instance through Redis.
#[derive(Debug)]
pub struct RedisLookups {
    link: Link,
    _redis: Redis,
    prefix: String,
    notes: tokio::sync::mpsc::Sender<(String, i64)>,
    pending: Arc<Pending>,
    dropped: Arc<AtomicU64>,
}

impl RedisLookups {
    /// Notes under `<prefix>lookup:` keys of `redis`, written by a task on its runtime.
    pub fn new(redis: &Redis, prefix: &str) -> Self {
        let (notes, rx) = tokio::sync::mpsc::channel(LOOKUP_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let pending = Arc::new(Pending::default());
        redis.link().handle().spawn(send_notes(
            redis.link().clone(),
            rx,
            Arc::clone(&pending),
            Arc::clone(&dropped),
        ));
        Self {
            link: redis.link().clone(),
            _redis: redis.clone(),
            prefix: prefix.to_string(),
            notes,
            pending,
            dropped,
        }
    }

    fn redis_key(&self, pks: &str, digest: &str) -> String {
        format!("{}lookup:{pks}:{digest}", self.prefix)
    }
}

/// Sends queued notes as pipelined batches; ends when the store is dropped.
async fn send_notes(
    link: Link,
    mut rx: tokio::sync::mpsc::Receiver<(String, i64)>,
    pending: Arc<Pending>,
    dropped: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for (k, until) in &batch {
            pipe.cmd("SET")
                .arg(k)
                .arg(1)
                .arg("EXAT")
                .arg(*until)
                .ignore();
        }
        if let Err(e) = link.query::<()>(pipe).await {
            dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::warn!(error = %e, notes = batch.len(), "could not write looked-up NIK digests to Redis: their NIKs cannot be returned as data balikan until looked up again");
        }
        pending.written(&batch);
        batch.clear();
    }
}

#[async_trait]
impl LookupMemory for RedisLookups {
    fn remember(&self, pks: &str, digest: &str, until: i64) {
        self.pending
            .queue(self.redis_key(pks, digest), until, &self.dropped, |note| {
                self.notes.try_send(note).is_ok()
            });
    }

    async fn looked_up(
        &self,
        pks: &str,
        digests: &[String],
        now: i64,
    ) -> Result<Vec<bool>, Unavailable> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = digests.iter().map(|d| self.redis_key(pks, d)).collect();
        // Redis expires each key at the end of its window.
        // Queued notes first, as in the embedded store.
        let queued: Vec<bool> = keys.iter().map(|k| self.pending.open(k, now)).collect();
        let found: Vec<Option<String>> = self
            .link
            .query(redis::cmd("MGET").arg(&keys).clone())
            .await?;
        Ok(found
            .into_iter()
            .zip(queued)
            .map(|(v, q)| v.is_some() || q)
            .collect())
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn settled(
        store: &EmbeddedLookups,
        pks: &str,
        digests: &[String],
        now: i64,
    ) -> Vec<bool> {
        // The writer is asynchronous: wait until the notes are visible (bounded).
        for _ in 0..200 {
            let seen = store.looked_up(pks, digests, now).await.expect("read");
            if seen.iter().any(|s| *s) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        store.looked_up(pks, digests, now).await.expect("read")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_note_is_per_pks_and_ends_with_its_window() {
        // Real times: the writer prunes what expired before now.
        let t = unix_now();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.redb");
        let store = EmbeddedLookups::open(&path).expect("open");
        store.remember("1/A", "aa", t + 1_000);
        let digests = vec!["aa".to_string(), "bb".to_string()];
        assert_eq!(
            settled(&store, "1/A", &digests, t + 900).await,
            [true, false]
        );
        // Another PKS, even of the same Pengguna, did not look it up.
        assert_eq!(
            store
                .looked_up("2/A", &digests, t + 900)
                .await
                .expect("read"),
            [false, false]
        );
        // Past the window.
        assert_eq!(
            store
                .looked_up("1/A", &digests, t + 1_001)
                .await
                .expect("read"),
            [false, false]
        );
        // A later lookup extends it; an earlier note does not shorten it.
        store.remember("1/A", "aa", t + 5_000);
        store.remember("1/A", "aa", t + 2_000);
        let mut seen = Vec::new();
        for _ in 0..200 {
            seen = store
                .looked_up("1/A", &digests, t + 4_000)
                .await
                .expect("read");
            if seen[0] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen, [true, false]);
        drop(store);
        // The notes survive a restart.
        // The old writer may hold the file a moment longer: the new store opens it when
        // released (as after a binary upgrade), and answers once it has.
        let reopened = EmbeddedLookups::open(&path).expect("reopen");
        let mut seen = reopened.looked_up("1/A", &digests, t + 4_000).await;
        for _ in 0..200 {
            if seen.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            seen = reopened.looked_up("1/A", &digests, t + 4_000).await;
        }
        assert_eq!(seen.expect("read once released"), [true, false]);
    }

    #[test]
    fn pruning_drops_only_expired_notes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("p.redb")).expect("db");
        commit(&db, &[(key("1/A", "aa"), 10), (key("1/A", "bb"), 30)]).expect("commit");
        prune(&db, 20).expect("prune");
        let txn = db.begin_read().expect("read");
        let table = txn.open_table(LOOKED_UP).expect("table");
        assert!(table.get(key("1/A", "aa").as_str()).expect("get").is_none());
        assert!(table.get(key("1/A", "bb").as_str()).expect("get").is_some());
    }
}

//! The redb file behind the embedded meter: a table of persisted ceilings per (day, User ID)
//! written by one thread that commits every waiting allocation in a single durable
//! transaction (group commit), so the hot path never fsyncs per request.

use std::path::Path;
use std::sync::mpsc;

use chrono::NaiveDate;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::meter::{QuotaError, StoreFailure};

/// `"YYYY-MM-DD/user_id"` → hits covered. User IDs cannot contain `/` (PKS validation).
const CEILINGS: TableDefinition<&str, u32> = TableDefinition::new("ceilings");

/// Most allocations committed in one transaction.
const MAX_BATCH: usize = 4096;

fn key(user: &str, day: NaiveDate) -> String {
    format!("{day}/{user}")
}

fn parse_key(k: &str) -> Option<(String, NaiveDate)> {
    let (day, user) = k.split_once('/')?;
    Some((user.to_string(), day.parse().ok()?))
}

fn store_error(e: impl Into<StoreFailure>) -> QuotaError {
    QuotaError::from(e.into())
}

enum Job {
    /// Raise a ceiling (never lowers one).
    Allocate {
        key: String,
        ceiling: u32,
        done: oneshot::Sender<Result<(), QuotaError>>,
    },
    /// Replace ceilings with exact counts (clean shutdown). Queued like allocations, so it
    /// lands after every allocation asked for before it.
    Exact {
        counts: Loaded,
        done: mpsc::Sender<Result<(), QuotaError>>,
    },
}

/// The outcome of an allocation, to wait for or to look at later.
pub(crate) type Allocated = oneshot::Receiver<Result<(), QuotaError>>;

/// The writer handle.
#[derive(Debug)]
pub(crate) struct Persist {
    /// `None` once dropping: closing the channel stops the writer.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Persist {
    /// Stops the writer and waits for it, so the file is released when the meter is.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

type Loaded = Vec<((String, NaiveDate), u32)>;

impl Persist {
    /// Opens (or creates) the file, prunes days before `today`, and returns the ceilings of
    /// `today` and later.
    pub(crate) fn open(path: &Path, today: NaiveDate) -> Result<(Self, Loaded), QuotaError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| {
                store_error(StoreFailure::Directory {
                    dir: dir.to_path_buf(),
                    source,
                })
            })?;
        }
        let db = Database::create(path).map_err(|source| {
            store_error(StoreFailure::Open {
                path: path.to_path_buf(),
                source,
            })
        })?;
        let mut loaded = Vec::new();
        let txn = db.begin_write().map_err(store_error)?;
        {
            let mut table = txn.open_table(CEILINGS).map_err(store_error)?;
            let mut stale = Vec::new();
            for entry in table.iter().map_err(store_error)? {
                let (k, v) = entry.map_err(store_error)?;
                match parse_key(k.value()) {
                    Some((user, day)) if day >= today => loaded.push(((user, day), v.value())),
                    _ => stale.push(k.value().to_string()),
                }
            }
            for k in stale {
                table.remove(k.as_str()).map_err(store_error)?;
            }
        }
        txn.commit().map_err(store_error)?;
        let (jobs, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("gerbang-quota-writer".into())
            .spawn(move || writer(&db, &rx))
            .map_err(|e| store_error(StoreFailure::WriterStart(e)))?;
        Ok((
            Self {
                jobs: Some(jobs),
                writer: Some(writer),
            },
            loaded,
        ))
    }

    /// Durably raises the ceiling of (user, day) to at least `ceiling`.
    pub(crate) async fn allocate(
        &self,
        user: &str,
        day: NaiveDate,
        ceiling: u32,
    ) -> Result<(), QuotaError> {
        self.request(user, day, ceiling)?
            .await
            .map_err(|_| stopped())?
    }

    /// Queues a raise of the ceiling and returns at once; the receiver gets its outcome.
    pub(crate) fn request(
        &self,
        user: &str,
        day: NaiveDate,
        ceiling: u32,
    ) -> Result<Allocated, QuotaError> {
        let (done, wait) = oneshot::channel();
        self.send(Job::Allocate {
            key: key(user, day),
            ceiling,
            done,
        })?;
        Ok(wait)
    }

    /// Replaces ceilings with exact counts (clean shutdown), after every allocation queued
    /// before it; waits for the commit.
    pub(crate) fn write_exact(&self, counts: Loaded) -> Result<(), QuotaError> {
        let (done, wait) = mpsc::channel();
        self.send(Job::Exact { counts, done })?;
        wait.recv().map_err(|_| stopped())?
    }

    fn send(&self, job: Job) -> Result<(), QuotaError> {
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }
}

fn stopped() -> QuotaError {
    store_error(StoreFailure::WriterStopped)
}

/// A queued allocation.
struct Allocation {
    key: String,
    ceiling: u32,
    done: oneshot::Sender<Result<(), QuotaError>>,
}

/// Commits allocations in batches, and exact counts in queue order, until every sender is
/// gone.
fn writer(db: &Database, rx: &mpsc::Receiver<Job>) {
    let mut next = None;
    loop {
        let Some(first) = next.take().or_else(|| rx.recv().ok()) else {
            return;
        };
        let mut batch = Vec::new();
        let mut job = Some(first);
        while let Some(j) = job.take() {
            match j {
                Job::Allocate { key, ceiling, done } => {
                    batch.push(Allocation { key, ceiling, done })
                }
                exact @ Job::Exact { .. } => {
                    // Commit what came before it first.
                    next = Some(exact);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                job = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let result = commit(db, &batch);
            if let Err(e) = &result {
                tracing::error!(error = %e, "quota allocations could not be persisted; refusing them");
            }
            for a in batch {
                let _ = a.done.send(result.clone());
            }
        } else if let Some(Job::Exact { counts, done }) = next.take() {
            let _ = done.send(commit_exact(db, counts));
        }
    }
}

fn commit(db: &Database, batch: &[Allocation]) -> Result<(), QuotaError> {
    let mut txn = db.begin_write().map_err(store_error)?;
    txn.set_durability(Durability::Immediate)
        .map_err(store_error)?;
    {
        let mut table = txn.open_table(CEILINGS).map_err(store_error)?;
        for a in batch {
            let current = table
                .get(a.key.as_str())
                .map_err(store_error)?
                .map_or(0, |v| v.value());
            if a.ceiling > current {
                table
                    .insert(a.key.as_str(), a.ceiling)
                    .map_err(store_error)?;
            }
        }
    }
    txn.commit().map_err(store_error)
}

fn commit_exact(db: &Database, counts: Loaded) -> Result<(), QuotaError> {
    let txn = db.begin_write().map_err(store_error)?;
    {
        let mut table = txn.open_table(CEILINGS).map_err(store_error)?;
        for ((user, day), used) in counts {
            table
                .insert(key(&user, day).as_str(), used)
                .map_err(store_error)?;
        }
    }
    txn.commit().map_err(store_error)
}

/// Reads the persisted ceilings (for tools; the gateway holds the file open).
pub fn read_ceilings(path: &Path) -> Result<Loaded, QuotaError> {
    let db = redb::ReadOnlyDatabase::open(path).map_err(|source| {
        store_error(StoreFailure::Open {
            path: path.to_path_buf(),
            source,
        })
    })?;
    let txn = db.begin_read().map_err(store_error)?;
    let table = match txn.open_table(CEILINGS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(store_error(e)),
    };
    let mut out = Vec::new();
    for entry in table.iter().map_err(store_error)? {
        let (k, v) = entry.map_err(store_error)?;
        if let Some(parsed) = parse_key(k.value()) {
            out.push((parsed, v.value()));
        }
    }
    Ok(out)
}

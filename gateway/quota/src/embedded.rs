//! The redb file behind the embedded meter: a table of persisted ceilings per (day, User ID)
//! written by one thread that commits every waiting allocation in a single durable
//! transaction (group commit), so the hot path never fsyncs per request.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use chrono::NaiveDate;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::meter::QuotaError;

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

fn store_error(e: impl std::fmt::Display) -> QuotaError {
    QuotaError::Unavailable(e.to_string())
}

enum Job {
    /// Raise a ceiling (never lowers one).
    Allocate {
        key: String,
        ceiling: u32,
        done: oneshot::Sender<Result<(), QuotaError>>,
    },
}

/// The writer handle.
#[derive(Debug)]
pub(crate) struct Persist {
    db: Arc<Database>,
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
            std::fs::create_dir_all(dir)
                .map_err(|e| store_error(format!("creating {}: {e}", dir.display())))?;
        }
        let db = Database::create(path)
            .map_err(|e| store_error(format!("opening {}: {e}", path.display())))?;
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
        let db = Arc::new(db);
        let (jobs, rx) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("gerbang-quota-writer".into())
            .spawn(move || writer(&writer_db, &rx))
            .map_err(store_error)?;
        Ok((
            Self {
                db,
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
        let (done, wait) = oneshot::channel();
        self.jobs
            .as_ref()
            .ok_or_else(|| store_error("the quota writer has stopped"))?
            .send(Job::Allocate {
                key: key(user, day),
                ceiling,
                done,
            })
            .map_err(|_| store_error("the quota writer has stopped"))?;
        wait.await
            .map_err(|_| store_error("the quota writer has stopped"))?
    }

    /// Replaces ceilings with exact counts (clean shutdown).
    pub(crate) fn write_exact(
        &self,
        exact: Vec<((String, NaiveDate), u32)>,
    ) -> Result<(), QuotaError> {
        let txn = self.db.begin_write().map_err(store_error)?;
        {
            let mut table = txn.open_table(CEILINGS).map_err(store_error)?;
            for ((user, day), used) in exact {
                table
                    .insert(key(&user, day).as_str(), used)
                    .map_err(store_error)?;
            }
        }
        txn.commit().map_err(store_error)
    }
}

/// Commits allocations in batches until every sender is gone.
fn writer(db: &Database, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = commit(db, &batch);
        if let Err(e) = &result {
            tracing::error!(error = %e, "quota allocations could not be persisted; refusing them");
        }
        for Job::Allocate { done, .. } in batch {
            let _ = done.send(result.clone());
        }
    }
}

fn commit(db: &Database, batch: &[Job]) -> Result<(), QuotaError> {
    let mut txn = db.begin_write().map_err(store_error)?;
    txn.set_durability(Durability::Immediate)
        .map_err(store_error)?;
    {
        let mut table = txn.open_table(CEILINGS).map_err(store_error)?;
        for Job::Allocate { key, ceiling, .. } in batch {
            let current = table
                .get(key.as_str())
                .map_err(store_error)?
                .map_or(0, |v| v.value());
            if *ceiling > current {
                table.insert(key.as_str(), *ceiling).map_err(store_error)?;
            }
        }
    }
    txn.commit().map_err(store_error)
}

/// Reads the persisted ceilings (for tools; the gateway holds the file open).
pub fn read_ceilings(path: &Path) -> Result<Loaded, QuotaError> {
    let db = redb::ReadOnlyDatabase::open(path).map_err(store_error)?;
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

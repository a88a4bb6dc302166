//! The decision-log writer: group commit on the caller's thread, fsync in the background.
//!
//! docs/architecture.md, "Targets": no answer carrying population data leaves before its record is written. So
//! [`AuditLog::append`] returns only once the record's bytes were handed to the kernel with
//! write(2): they are in the page cache and survive a `kill -9` of the gateway. Callers that
//! arrive while a write is under way queue their records; when it ends, one of them (the
//! leader) takes the lock and writes every queued record in one write(2), the others wait for
//! their sequence number. A background thread fsyncs at most every `fsync_interval` (50 ms by
//! default) when something was written, then updates the checkpoint `audit.head`; that
//! interval bounds what a power cut can lose.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest as _, Sha256};

use crate::files::{self, HEAD_FILE, HEAD_TMP_FILE, LOCK_FILE, Storage, TailError};
use crate::key::AuditKey;
use crate::line::{self, GENESIS, Head, OPEN_EVENT, OpenEvent, Tag};
use crate::maintain::{DiskSpace, Done, Maintained, MaintenanceError, Pass, Retention, disk_space};
use crate::record::{Record, wib_day, wib_rfc3339};

/// How often written records are fsynced unless configured otherwise (docs/architecture.md, "Targets").
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(50);

/// The most bytes after the last valid line that opening the log steps over as a torn record.
/// A crash tears at most the one line being written; more than this is not a crash.
pub const MAX_TORN_BYTES: usize = 1 << 20;

/// Records `append_nowait` lets wait in memory; past this (or past
/// [`MAX_NOWAIT_QUEUE_BYTES`]) it drops the record and counts it rather than let memory grow
/// or make a proxy worker wait for the disk.
pub const MAX_NOWAIT_QUEUE: usize = 65_536;

/// Bytes of serialised records that may wait in memory before `append_nowait` drops and
/// counts records: a record is about half a kilobyte, so this holds tens of thousands, and
/// a record of any size cannot make the queue hold more.
pub const MAX_NOWAIT_QUEUE_BYTES: usize = 16 << 20;

/// Upper bounds (µs) of the append latency histogram's buckets; the last bucket is +Inf.
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
];

/// The time source: the system clock in production, a settable one in tests (day rotation).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How often maintenance runs besides at open and at each new day, unless configured
/// otherwise: a retention's cut-off moves on at midnight even on a day without traffic.
pub const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);

/// How the writer behaves.
#[derive(Clone)]
pub struct WriterOptions {
    /// This gateway instance's name, written in the `open` event of each start.
    pub instance: String,
    /// Longest time a written record stays without fsync (bounds a power cut's loss).
    pub fsync_interval: Duration,
    /// The clock that decides the WIB day, hence the file records go to.
    pub clock: Clock,
    /// Opening is refused when the log's filesystem has less free space than this (0: never
    /// refused). Once open, records are written while the disk takes them: data answers are
    /// refused only when a record truly cannot be written.
    pub min_free_bytes: u64,
    /// Free space under which the filesystem counts as low: reported in [`AuditStats`] for
    /// the alert, and warned about at each maintenance pass.
    pub alert_free_bytes: u64,
    /// When closed days leave the directory, and where to; `None`: they stay, compacted.
    pub retention: Option<Retention>,
    /// How often maintenance runs besides at open and at each new day.
    pub maintenance_interval: Duration,
    /// Run maintenance on a background thread (the gateway); `false`: only when
    /// [`AuditLog::maintain`] is called (tools, and tests that look at files as written).
    pub background_maintenance: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            instance: "gerbang".to_owned(),
            fsync_interval: DEFAULT_FSYNC_INTERVAL,
            clock: Arc::new(Utc::now),
            min_free_bytes: 0,
            alert_free_bytes: 0,
            retention: None,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            background_maintenance: true,
        }
    }
}

impl fmt::Debug for WriterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterOptions")
            .field("instance", &self.instance)
            .field("fsync_interval", &self.fsync_interval)
            .field("min_free_bytes", &self.min_free_bytes)
            .field("alert_free_bytes", &self.alert_free_bytes)
            .field("retention", &self.retention)
            .field("maintenance_interval", &self.maintenance_interval)
            .field("background_maintenance", &self.background_maintenance)
            .finish_non_exhaustive()
    }
}

/// Proof that a record was handed to the kernel: its sequence number in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Receipt {
    pub seq: u64,
}

/// Why the decision log could not be opened or a record not written. When `append` fails the
/// gateway must not release population data (docs/architecture.md, "Targets").
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// write(2) failed (disk full, quota, I/O error); the batch was rolled back and later
    /// records may succeed.
    #[error("cannot write the decision log {file}: {source}")]
    WriteFailed {
        file: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// An fsync, a rollback or a rotation failed: what is on disk is no longer known, so the
    /// log takes no more records until the gateway restarts.
    #[error("the decision log is out of service: {reason}; fix the disk and restart the gateway")]
    OutOfService { reason: String },
    /// A file or directory of the log could not be opened, created or read.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Another process holds the directory's lock.
    #[error(
        "another process is writing the decision log in {dir}; each gateway instance needs its own audit directory"
    )]
    DirectoryBusy { dir: PathBuf },
    /// The end of the newest file does not verify: wrong key, or the log was altered.
    #[error(
        "the end of {file} does not verify with this audit key ({bytes} bytes after the last valid record): \
         wrong key, or the log was altered; run `gerbang audit verify`"
    )]
    TailDoesNotVerify { file: PathBuf, bytes: u64 },
    /// The checkpoint names a record the log does not have: records were removed from the end.
    #[error(
        "the checkpoint audit.head says record {checkpoint} was written, but the log ends {}; \
         records were removed; run `gerbang audit verify` and move audit.head aside only once you know why",
        match .last { Some(seq) => format!("at record {seq}"), None => "before its first record".to_owned() }
    )]
    CheckpointAhead { checkpoint: u64, last: Option<u64> },
    /// The checkpoint does not verify with this key, or disagrees with the record it names.
    #[error(
        "the checkpoint {path} does not verify with this audit key or does not match the log: \
         wrong key, or the log was altered; run `gerbang audit verify`"
    )]
    CheckpointDoesNotVerify { path: PathBuf },
    /// The newest day file is compacted: the writer only continues a plain file, and the
    /// maintenance never compacts the day being written, so someone compressed it by hand.
    #[error(
        "the newest day file {file} is compacted, but the writer continues only a plain file: \
         decompress it (`zstd -d`), check `gerbang audit verify`, then remove the .zst"
    )]
    NewestCompacted { file: PathBuf },
    /// The log's filesystem has less free space than the configured minimum.
    #[error(
        "the filesystem of the decision log {dir} has {} MiB free, less than the {} MiB \
         required (audit.min_free_mib): free space or give the log a larger disk; the gateway \
         does not start without room for its records",
        .free / MIB, .required / MIB
    )]
    NotEnoughSpace {
        dir: PathBuf,
        free: u64,
        required: u64,
    },
    /// The record could not be serialised.
    #[error("cannot encode the audit record: {0}")]
    Encode(String),
    /// `append_nowait` found the queue full (the disk is slower than the traffic, or a flood
    /// of refusals) and dropped the record; it is counted in `AuditStats::records_dropped`.
    #[error(
        "the decision log's queue is full ({queued_bytes} bytes waiting); a refusal's record was dropped and counted"
    )]
    QueueFull { queued_bytes: usize },
}

impl AuditError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

/// Counters and gauges for the gateway's `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditStats {
    /// False once a write failed (until one succeeds again) and for good when out of service:
    /// the gateway refuses data answers and fires its alert.
    pub healthy: bool,
    /// Why the log takes no more records, when it is out of service.
    pub out_of_service: Option<String>,
    pub records_written: u64,
    /// write(2) calls (group commits); records_written / batches is the mean group size.
    pub batches_written: u64,
    /// Failed batches (write, rotation or rollback errors).
    pub write_failures: u64,
    /// Records refused or dropped because their batch failed.
    pub records_failed: u64,
    pub fsyncs: u64,
    pub fsync_failures: u64,
    /// Records waiting to be written.
    pub queue_depth: u64,
    /// Records `append_nowait` dropped because the queue was full (refusals only: records of
    /// released data are never dropped).
    pub records_dropped: u64,
    /// The last written record's sequence number.
    pub last_seq: Option<u64>,
    /// Time since the last successful fsync (`None` before the first).
    pub last_fsync_age: Option<Duration>,
    /// Time from `append` to its record being written.
    pub append_latency: LatencyHistogram,
    /// Free and total bytes of the log's filesystem (`None` when it cannot be read).
    pub disk: Option<DiskSpace>,
    /// The free space under which the filesystem counts as low ([`WriterOptions`]).
    pub alert_free_bytes: u64,
    /// Closed days compacted and archived since the log was opened.
    pub days_compacted: u64,
    pub days_archived: u64,
    /// Maintenance passes that stopped on an error (logged; the days stay where they were).
    pub maintenance_failures: u64,
}

const MIB: u64 = 1 << 20;

/// A Prometheus-style histogram: cumulative counts per upper bound, then the +Inf count.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    /// Upper bounds in µs ([`LATENCY_BUCKETS_US`]).
    pub bounds_us: &'static [u64],
    /// `cumulative[i]` counts observations ≤ `bounds_us[i]`; the last entry counts all.
    pub cumulative: Vec<u64>,
    pub sum_us: u64,
    pub count: u64,
}

/// The tamper-evident decision log of one gateway instance. Share it behind an `Arc`; dropping
/// it (or [`AuditLog::close`]) writes what is queued, fsyncs and updates the checkpoint.
pub struct AuditLog {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    maintainer: Option<JoinHandle<()>>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

struct Shared {
    key: AuditKey,
    dir: PathBuf,
    options: WriterOptions,
    state: Mutex<State>,
    /// Signalled when a batch is done: waiting callers look for their outcome.
    done: Condvar,
    /// Signalled for the flusher: records queued without a waiting caller, or shutdown.
    work: Condvar,
    /// The file and the chain; only the leader of the moment touches it.
    io: Mutex<Io>,
    counters: Counters,
    /// Maintenance: asked for at each new day, stopped at close.
    maintenance: Mutex<MaintenanceState>,
    maintenance_wake: Condvar,
    maintenance_stop: AtomicBool,
    /// Held while a pass runs, so the background one and [`AuditLog::maintain`] never overlap.
    maintenance_running: Mutex<()>,
    /// Keeps the directory's flock for the writer's lifetime.
    _lock: File,
}

#[derive(Default)]
struct MaintenanceState {
    requested: bool,
    stopping: bool,
}

/// A record waiting to be written.
struct Pending {
    payload: Vec<u8>,
    enqueued: Instant,
    /// A caller is blocked in `append` for it (not `append_nowait`).
    waiting: bool,
    /// A task awaits it (`append_async`): told the outcome when its batch is done.
    notify: Option<Notify>,
}

/// Where the outcome of an awaited record goes.
type Notify = tokio::sync::oneshot::Sender<Result<Receipt, AuditError>>;

/// The fate of one batch, kept until every waiting caller of it has read it.
struct Outcome {
    start: u64,
    end: u64,
    first_seq: Result<u64, AuditError>,
    waiters: usize,
}

struct State {
    queue: Vec<Pending>,
    /// Bytes of the payloads in `queue`.
    queued_bytes: usize,
    /// Tickets number records in arrival order; tickets below `done_tickets` are settled.
    next_ticket: u64,
    done_tickets: u64,
    outcomes: VecDeque<Outcome>,
    /// A leader is writing.
    writing: bool,
    stopping: bool,
    out_of_service: Option<String>,
    /// The last written line, for the flusher's checkpoint.
    written: Option<Written>,
    /// Written since the last fsync.
    dirty: bool,
}

#[derive(Clone)]
struct Written {
    seq: u64,
    mac: Tag,
    file: Arc<File>,
    name: String,
}

struct Io {
    file: Arc<File>,
    path: PathBuf,
    name: String,
    day: NaiveDate,
    /// Bytes in the file: where a failed write is rolled back to.
    len: u64,
    next_seq: u64,
    prev: Tag,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Counters {
    healthy: AtomicBool,
    records_written: AtomicU64,
    batches_written: AtomicU64,
    write_failures: AtomicU64,
    records_failed: AtomicU64,
    fsyncs: AtomicU64,
    fsync_failures: AtomicU64,
    queue_depth: AtomicU64,
    records_dropped: AtomicU64,
    /// last seq + 1; 0 before the first record.
    last_seq_plus_one: AtomicU64,
    last_fsync: Mutex<Option<Instant>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    latency_sum_us: AtomicU64,
    days_compacted: AtomicU64,
    days_archived: AtomicU64,
    maintenance_failures: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AuditLog {
    /// Opens (or creates) the log in `dir` and continues its chain.
    ///
    /// It takes the directory's lock, checks the checkpoint against the last valid record of
    /// the newest file (so a log truncated behind the gateway's back, or a wrong key, is refused
    /// here with an error that says what to do), steps over a record torn by a crash, and writes
    /// an `open` event that chains on and states the torn bytes it stepped over.
    pub fn open(
        dir: impl AsRef<Path>,
        key: AuditKey,
        options: WriterOptions,
    ) -> Result<Self, AuditError> {
        let dir = dir.as_ref().to_path_buf();
        create_dir(&dir)?;
        if options.min_free_bytes > 0 {
            let space =
                disk_space(&dir).map_err(|e| AuditError::io("read the free space of", &dir, e))?;
            if space.free < options.min_free_bytes {
                return Err(AuditError::NotEnoughSpace {
                    dir,
                    free: space.free,
                    required: options.min_free_bytes,
                });
            }
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| AuditError::io("open", &lock_path, e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::DirectoryBusy { dir });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(AuditError::io("lock", &lock_path, e));
            }
        }

        let head_path = dir.join(HEAD_FILE);
        let head = match std::fs::read(&head_path) {
            Ok(bytes) => Some(Head::decode(&bytes, &key).ok_or_else(|| {
                AuditError::CheckpointDoesNotVerify {
                    path: head_path.clone(),
                }
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(AuditError::io("read", &head_path, e)),
        };

        let files = files::list(&dir).map_err(|e| AuditError::io("list", &dir, e))?;
        let resume = find_resume_point(&files, &key)?;
        let checkpoint = check_checkpoint(head.as_ref(), resume.last.as_ref(), &head_path)?;
        if checkpoint == "missing" {
            tracing::warn!(
                audit.dir = %dir.display(),
                "the decision log has records but no checkpoint (audit.head was removed): removal \
                 of records from its end cannot be detected before this start; the open event says so"
            );
        }

        let now = (options.clock)();
        let (day, name) = match files.last() {
            Some(newest) if newest.storage == Storage::Zstd => {
                return Err(AuditError::NewestCompacted {
                    file: newest.path.clone(),
                });
            }
            Some(newest) => (newest.day, newest.name.clone()),
            None => {
                let today = wib_day(now);
                (today, files::file_name(today))
            }
        };
        let (file, len) = open_append(&dir, &name)?;
        let (next_seq, prev) = resume
            .last
            .as_ref()
            .map_or((0, GENESIS), |v| (v.seq + 1, v.mac));
        let mut io = Io {
            file: Arc::new(file),
            path: dir.join(&name),
            name,
            day,
            len,
            next_seq,
            prev,
            buf: Vec::with_capacity(64 * 1024),
        };

        // The `open` event, in one write with the newline that ends a torn line.
        let mut torn = resume.region;
        if !torn.is_empty() && !torn.ends_with(b"\n") {
            torn.push(b'\n');
            io.buf.push(b'\n');
        }
        let event = OpenEvent {
            event: OPEN_EVENT,
            time: wib_rfc3339(now),
            instance: &options.instance,
            torn_bytes: torn.len() as u64,
            torn_sha256: (!torn.is_empty()).then(|| hex::encode(Sha256::digest(&torn))),
            checkpoint,
        };
        let payload = serde_json::to_vec(&event).map_err(|e| AuditError::Encode(e.to_string()))?;
        let mac = line::encode(&mut io.buf, &key, io.next_seq, &io.prev, &payload);
        (&*io.file)
            .write_all(&io.buf)
            .map_err(|e| AuditError::io("write", &io.path, e))?;
        io.file
            .sync_data()
            .map_err(|e| AuditError::io("fsync", &io.path, e))?;
        let written = Written {
            seq: io.next_seq,
            mac,
            file: io.file.clone(),
            name: io.name.clone(),
        };
        write_head(&dir, &key, &written, now)?;
        if !torn.is_empty() {
            tracing::warn!(
                audit.file = %io.path.display(),
                torn.bytes = torn.len(),
                audit.seq = io.next_seq,
                "the decision log ended in a record torn by a crash; continuing on a new line after it, \
                 and the open event records the torn bytes"
            );
        }
        io.len += io.buf.len() as u64;
        io.prev = mac;
        io.next_seq += 1;

        let counters = Counters::default();
        counters.healthy.store(true, Ordering::Relaxed);
        counters
            .last_seq_plus_one
            .store(written.seq + 1, Ordering::Relaxed);
        *lock(&counters.last_fsync) = Some(Instant::now());
        let shared = Arc::new(Shared {
            key,
            dir,
            options,
            state: Mutex::new(State {
                queue: Vec::new(),
                queued_bytes: 0,
                next_ticket: 0,
                done_tickets: 0,
                outcomes: VecDeque::new(),
                writing: false,
                stopping: false,
                out_of_service: None,
                written: Some(written),
                dirty: false,
            }),
            done: Condvar::new(),
            work: Condvar::new(),
            io: Mutex::new(io),
            counters,
            maintenance: Mutex::new(MaintenanceState {
                requested: true,
                stopping: false,
            }),
            maintenance_wake: Condvar::new(),
            maintenance_stop: AtomicBool::new(false),
            maintenance_running: Mutex::new(()),
            _lock: lock_file,
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("gerbang-audit-fsync".to_owned())
                .spawn(move || shared.flush_loop())
        }
        .map_err(|e| AuditError::io("start the fsync thread for", &shared.dir, e))?;
        let mut log = Self {
            shared,
            flusher: Some(flusher),
            maintainer: None,
        };
        if !log.shared.options.background_maintenance {
            return Ok(log);
        }
        let maintainer = {
            let shared = log.shared.clone();
            std::thread::Builder::new()
                .name("gerbang-audit-maintain".to_owned())
                .spawn(move || shared.maintenance_loop())
        }
        .map_err(|e| AuditError::io("start the maintenance thread for", &log.shared.dir, e))?;
        log.maintainer = Some(maintainer);
        Ok(log)
    }

    /// Runs one maintenance pass now (the background thread runs one at open, at each new
    /// WIB day and every `maintenance_interval`): compacts the closed days and archives those
    /// past the retention. Waits for a pass already under way.
    pub fn maintain(&self) -> Result<Maintained, MaintenanceError> {
        self.shared.maintain()
    }

    /// Writes `record` and returns once its bytes are in the kernel's page cache (they survive
    /// a `kill -9`; the background fsync makes them survive a power cut within
    /// `fsync_interval`). Call it before releasing an answer that carries population data, and
    /// refuse the answer when it fails (docs/architecture.md, "Targets"). Blocks the calling thread for about one
    /// write(2); safe to call from a synchronous pingora hook.
    pub fn append(&self, record: &Record) -> Result<Receipt, AuditError> {
        let (st, ticket) = self.shared.enqueue(record, true, None)?;
        self.shared.wait_for(st, ticket)
    }

    /// Like [`AuditLog::append`] (returns once the record is in the page cache, with the
    /// same guarantees), but the calling task waits, not its thread: when no batch is being
    /// written the caller writes this one itself, one write(2); otherwise the record joins
    /// the next batch, written by the background thread, and the task is woken when it is
    /// done. A proxy worker thus never blocks behind another's write.
    pub async fn append_async(&self, record: &Record) -> Result<Receipt, AuditError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.enqueue_awaited(record, tx)?;
        rx.await.unwrap_or_else(|_| {
            Err(AuditError::OutOfService {
                reason: "the decision log was closed before the record was written".to_owned(),
            })
        })
    }

    /// Queues `record` and returns at once, never waiting for the disk; it is written with
    /// the next group commit (at the latest by the background thread, right away if it is
    /// idle), in arrival order. For records of answers that carry no population data
    /// (refusals): a `kill -9` may lose the few still queued. When the queue already holds
    /// [`MAX_NOWAIT_QUEUE`] records or [`MAX_NOWAIT_QUEUE_BYTES`] bytes (the disk is slower
    /// than the traffic, or a flood of refusals), the record is dropped and counted
    /// ([`AuditStats::records_dropped`]) and [`AuditError::QueueFull`] returned: a proxy
    /// worker is never blocked and memory never grows past the bound. Records of released
    /// data go through [`AuditLog::append_async`], which is never dropped. Fails otherwise
    /// only when the log is out of service.
    pub fn append_nowait(&self, record: &Record) -> Result<(), AuditError> {
        let shared = &*self.shared;
        let (st, _) = shared.enqueue(record, false, None)?;
        if !st.writing {
            shared.work.notify_one();
        }
        Ok(())
    }

    /// Whether records are being written: false after a failed write (until one succeeds) and
    /// for good once out of service. The gateway refuses data answers while false.
    pub fn is_healthy(&self) -> bool {
        self.shared.counters.healthy.load(Ordering::Relaxed)
    }

    /// The directory this log writes to.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Counters and gauges for `/metrics`.
    pub fn stats(&self) -> AuditStats {
        let c = &self.shared.counters;
        let out_of_service = lock(&self.shared.state).out_of_service.clone();
        let mut cumulative = Vec::with_capacity(c.latency_buckets.len());
        let mut running = 0;
        for bucket in &c.latency_buckets {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let last = c.last_seq_plus_one.load(Ordering::Relaxed);
        AuditStats {
            healthy: c.healthy.load(Ordering::Relaxed),
            records_dropped: c.records_dropped.load(Ordering::Relaxed),
            out_of_service,
            records_written: c.records_written.load(Ordering::Relaxed),
            batches_written: c.batches_written.load(Ordering::Relaxed),
            write_failures: c.write_failures.load(Ordering::Relaxed),
            records_failed: c.records_failed.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            fsync_failures: c.fsync_failures.load(Ordering::Relaxed),
            queue_depth: c.queue_depth.load(Ordering::Relaxed),
            last_seq: last.checked_sub(1),
            last_fsync_age: lock(&c.last_fsync).map(|at| at.elapsed()),
            append_latency: LatencyHistogram {
                bounds_us: &LATENCY_BUCKETS_US,
                count: running,
                cumulative,
                sum_us: c.latency_sum_us.load(Ordering::Relaxed),
            },
            disk: disk_space(&self.shared.dir).ok(),
            alert_free_bytes: self.shared.options.alert_free_bytes,
            days_compacted: c.days_compacted.load(Ordering::Relaxed),
            days_archived: c.days_archived.load(Ordering::Relaxed),
            maintenance_failures: c.maintenance_failures.load(Ordering::Relaxed),
        }
    }

    /// Writes what is queued, fsyncs, updates the checkpoint and releases the directory;
    /// reports a failure of that last fsync.
    pub fn close(mut self) -> Result<(), AuditError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), AuditError> {
        if let Some(maintainer) = self.maintainer.take() {
            self.shared.maintenance_stop.store(true, Ordering::Relaxed);
            lock(&self.shared.maintenance).stopping = true;
            self.shared.maintenance_wake.notify_all();
            if maintainer.join().is_err() {
                tracing::error!("the decision log's maintenance thread panicked");
            }
        }
        let Some(flusher) = self.flusher.take() else {
            return Ok(());
        };
        lock(&self.shared.state).stopping = true;
        self.shared.work.notify_all();
        if flusher.join().is_err() {
            return Err(AuditError::OutOfService {
                reason: "the fsync thread panicked".to_owned(),
            });
        }
        match &lock(&self.shared.state).out_of_service {
            Some(reason) => Err(AuditError::OutOfService {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::error!(%error, "closing the decision log");
        }
    }
}

fn encode(record: &Record) -> Result<Vec<u8>, AuditError> {
    serde_json::to_vec(record).map_err(|e| AuditError::Encode(e.to_string()))
}

fn take_outcome(st: &mut State, ticket: u64) -> Result<Receipt, AuditError> {
    let Some(index) = st
        .outcomes
        .iter()
        .position(|o| o.start <= ticket && ticket < o.end)
    else {
        // Every settled ticket of a waiting caller has an outcome until that caller reads it.
        return Err(AuditError::OutOfService {
            reason: "lost track of a record's outcome".to_owned(),
        });
    };
    let outcome = &mut st.outcomes[index];
    outcome.waiters = outcome.waiters.saturating_sub(1);
    let result = match &outcome.first_seq {
        Ok(first) => Ok(Receipt {
            seq: first + (ticket - outcome.start),
        }),
        Err(e) => Err(e.clone()),
    };
    while st.outcomes.front().is_some_and(|o| o.waiters == 0) {
        st.outcomes.pop_front();
    }
    result
}

/// A batch that could not be written; `fatal` when the log's state on disk is now unknown.
struct BatchFailure {
    error: AuditError,
    fatal: bool,
}

impl Shared {
    /// Serialises `record` (outside the lock) and queues it; returns the locked state and the
    /// record's ticket. A record nobody waits for (`append_nowait`) is dropped and counted
    /// instead when the queue is full; the others are never dropped.
    fn enqueue(
        &self,
        record: &Record,
        waiting: bool,
        notify: Option<Notify>,
    ) -> Result<(MutexGuard<'_, State>, u64), AuditError> {
        let payload = encode(record)?;
        let enqueued = Instant::now();
        let mut st = lock(&self.state);
        if let Some(reason) = &st.out_of_service {
            return Err(AuditError::OutOfService {
                reason: reason.clone(),
            });
        }
        let droppable = !waiting && notify.is_none();
        if droppable
            && (st.queue.len() >= MAX_NOWAIT_QUEUE
                || st.queued_bytes + payload.len() > MAX_NOWAIT_QUEUE_BYTES)
        {
            self.counters
                .records_dropped
                .fetch_add(1, Ordering::Relaxed);
            return Err(AuditError::QueueFull {
                queued_bytes: st.queued_bytes,
            });
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queued_bytes += payload.len();
        st.queue.push(Pending {
            payload,
            enqueued,
            waiting,
            notify,
        });
        self.counters
            .queue_depth
            .store(st.queue.len() as u64, Ordering::Relaxed);
        Ok((st, ticket))
    }

    /// Queues an awaited record, and writes the batch at once when no one else is writing.
    /// Otherwise the current leader wakes the background thread for what queued behind it.
    fn enqueue_awaited(&self, record: &Record, notify: Notify) -> Result<(), AuditError> {
        let (st, _) = self.enqueue(record, false, Some(notify))?;
        if !st.writing {
            drop(self.lead(st));
        }
        Ok(())
    }

    /// Waits until the record with `ticket` is written, leading a group commit when no one
    /// else is writing.
    fn wait_for<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        ticket: u64,
    ) -> Result<Receipt, AuditError> {
        loop {
            if ticket < st.done_tickets {
                return take_outcome(&mut st, ticket);
            }
            if st.writing {
                st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
            } else {
                st = self.lead(st);
            }
        }
    }

    /// Writes every queued record in one write(2), as the leader; the state lock is released
    /// while writing so that others can queue behind.
    fn lead<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.writing = true;
        let mut batch = std::mem::take(&mut st.queue);
        st.queued_bytes = 0;
        let start = st.done_tickets;
        let out_of_service = st.out_of_service.clone();
        self.counters.queue_depth.store(0, Ordering::Relaxed);
        drop(st);

        let result = match out_of_service {
            Some(reason) => Err(BatchFailure {
                error: AuditError::OutOfService { reason },
                fatal: false,
            }),
            None => {
                let mut io = lock(&self.io);
                self.write_batch(&mut io, &batch)
            }
        };

        let now = Instant::now();
        let n = batch.len() as u64;
        // Awaiting tasks are told first, outside the state lock.
        let outcome = match &result {
            Ok(written) => Ok(written.seq + 1 - n),
            Err(failure) => Err(failure.error.clone()),
        };
        for (i, pending) in batch.iter_mut().enumerate() {
            if let Some(notify) = pending.notify.take() {
                let receipt = outcome.clone().map(|first| Receipt {
                    seq: first + i as u64,
                });
                // A task that stopped waiting (its client left) needs no answer.
                let _ = notify.send(receipt);
            }
        }
        let mut st = lock(&self.state);
        let first_seq = match result {
            Ok(written) => {
                let first = written.seq + 1 - n;
                self.counters
                    .records_written
                    .fetch_add(n, Ordering::Relaxed);
                self.counters
                    .batches_written
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .last_seq_plus_one
                    .store(written.seq + 1, Ordering::Relaxed);
                // The fsync thread may have taken the log out of service meanwhile.
                self.counters
                    .healthy
                    .store(st.out_of_service.is_none(), Ordering::Relaxed);
                for pending in &batch {
                    self.counters.observe(now.duration_since(pending.enqueued));
                }
                st.written = Some(written);
                st.dirty = true;
                Ok(first)
            }
            Err(failure) => {
                self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
                self.counters.records_failed.fetch_add(n, Ordering::Relaxed);
                self.counters.healthy.store(false, Ordering::Relaxed);
                if failure.fatal && st.out_of_service.is_none() {
                    st.out_of_service = Some(failure.error.to_string());
                }
                tracing::error!(
                    error = %failure.error,
                    audit.records = n,
                    "decision log records not written"
                );
                Err(failure.error)
            }
        };
        let waiters = batch.iter().filter(|p| p.waiting).count();
        if waiters > 0 {
            st.outcomes.push_back(Outcome {
                start,
                end: start + n,
                first_seq,
                waiters,
            });
        }
        st.done_tickets = start + n;
        st.writing = false;
        self.done.notify_all();
        if !st.queue.is_empty() {
            // Records queued meanwhile by `append_nowait` may have no caller to lead them.
            self.work.notify_one();
        }
        st
    }

    fn write_batch(&self, io: &mut Io, batch: &[Pending]) -> Result<Written, BatchFailure> {
        let day = wib_day((self.options.clock)()).max(io.day);
        if day != io.day {
            self.rotate(io, day)?;
        }
        io.buf.clear();
        let mut prev = io.prev;
        for (i, pending) in batch.iter().enumerate() {
            prev = line::encode(
                &mut io.buf,
                &self.key,
                io.next_seq + i as u64,
                &prev,
                &pending.payload,
            );
        }
        if let Err(e) = (&*io.file).write_all(&io.buf) {
            let error = AuditError::WriteFailed {
                file: io.path.clone(),
                source: Arc::new(e),
            };
            // Cut off whatever part of the batch reached the file, so the chain stays whole.
            return match io.file.set_len(io.len) {
                Ok(()) => Err(BatchFailure {
                    error,
                    fatal: false,
                }),
                Err(rollback) => Err(BatchFailure {
                    error: AuditError::OutOfService {
                        reason: format!(
                            "{error}, and removing the partly written records failed: {rollback}"
                        ),
                    },
                    fatal: true,
                }),
            };
        }
        io.len += io.buf.len() as u64;
        io.next_seq += batch.len() as u64;
        io.prev = prev;
        Ok(Written {
            seq: io.next_seq - 1,
            mac: prev,
            file: io.file.clone(),
            name: io.name.clone(),
        })
    }

    /// Moves to the file of a new WIB day; the old one is fsynced first so that the checkpoint,
    /// which names the new file, never covers records that are not on disk.
    fn rotate(&self, io: &mut Io, day: NaiveDate) -> Result<(), BatchFailure> {
        if let Err(e) = io.file.sync_data() {
            self.counters.fsync_failures.fetch_add(1, Ordering::Relaxed);
            return Err(BatchFailure {
                error: AuditError::OutOfService {
                    reason: format!("fsync of {} failed: {e}", io.path.display()),
                },
                fatal: true,
            });
        }
        let name = files::file_name(day);
        let (file, len) = open_append(&self.dir, &name).map_err(|error| BatchFailure {
            error,
            fatal: false,
        })?;
        tracing::info!(audit.file = %name, "decision log rotated to a new WIB day");
        io.file = Arc::new(file);
        io.path = self.dir.join(&name);
        io.name = name;
        io.day = day;
        io.len = len;
        // The day before is closed: compact it (and archive what the retention says).
        lock(&self.maintenance).requested = true;
        self.maintenance_wake.notify_all();
        Ok(())
    }

    /// The background maintenance: a pass at open, at each new day and every interval.
    fn maintenance_loop(&self) {
        let mut state = lock(&self.maintenance);
        loop {
            if state.stopping {
                return;
            }
            if state.requested {
                state.requested = false;
                drop(state);
                // Failures are logged and counted there; the next pass tries again.
                let _ = self.maintain();
                state = lock(&self.maintenance);
                continue;
            }
            let (next, timeout) = self
                .maintenance_wake
                .wait_timeout(state, self.options.maintenance_interval)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            if timeout.timed_out() {
                state.requested = true;
            }
        }
    }

    fn maintain(&self) -> Result<Maintained, MaintenanceError> {
        let _running = lock(&self.maintenance_running);
        let writing = lock(&self.io).day;
        let pass = Pass {
            dir: &self.dir,
            key: &self.key,
            retention: self.options.retention.as_ref(),
            writing,
            now: (self.options.clock)(),
            stop: &self.maintenance_stop,
        };
        let result = pass.run(|done, file| {
            let (counter, what) = match done {
                Done::Compacted => (&self.counters.days_compacted, "compacted"),
                Done::Archived => (&self.counters.days_archived, "archived"),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::info!(audit.file = file, "decision log day {what}");
        });
        match &result {
            Err(MaintenanceError::Stopped) => {}
            Err(error) => {
                self.counters
                    .maintenance_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "decision log maintenance stopped");
            }
            Ok(_) => {}
        }
        if let Ok(space) = disk_space(&self.dir)
            && space.free < self.options.alert_free_bytes
        {
            tracing::warn!(
                audit.dir = %self.dir.display(),
                disk.free_mib = space.free / MIB,
                disk.alert_mib = self.options.alert_free_bytes / MIB,
                "the decision log's filesystem is low on space: records are written until the \
                 disk is full, then data answers are refused; free space or archive sooner"
            );
        }
        result
    }

    /// The background thread: leads batches nobody waits for, fsyncs every `fsync_interval`
    /// when something was written, then updates the checkpoint.
    fn flush_loop(&self) {
        let interval = self.options.fsync_interval;
        let mut last_sync = Instant::now();
        let mut st = lock(&self.state);
        loop {
            if !st.queue.is_empty() && !st.writing {
                st = self.lead(st);
                continue;
            }
            let idle = st.queue.is_empty() && !st.writing;
            let due = last_sync + interval;
            let now = Instant::now();
            if st.dirty && (now >= due || (st.stopping && idle)) {
                let Some(written) = st.written.clone() else {
                    st.dirty = false;
                    continue;
                };
                st.dirty = false;
                drop(st);
                let synced = self.sync(&written);
                last_sync = Instant::now();
                st = lock(&self.state);
                if let Err(reason) = synced {
                    self.counters.fsync_failures.fetch_add(1, Ordering::Relaxed);
                    self.counters.healthy.store(false, Ordering::Relaxed);
                    tracing::error!(error = %reason, "decision log fsync failed; it takes no more records");
                    st.out_of_service.get_or_insert(reason);
                }
                continue;
            }
            if st.stopping && idle && !st.dirty {
                return;
            }
            let timeout = if st.dirty {
                due.saturating_duration_since(now)
            } else {
                interval.max(Duration::from_millis(1))
            };
            st = self
                .work
                .wait_timeout(st, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn sync(&self, written: &Written) -> Result<(), String> {
        written.file.sync_data().map_err(|e| {
            format!(
                "fsync of {} failed: {e}",
                self.dir.join(&written.name).display()
            )
        })?;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        *lock(&self.counters.last_fsync) = Some(Instant::now());
        write_head(&self.dir, &self.key, written, (self.options.clock)()).map_err(|e| e.to_string())
    }
}

impl Counters {
    fn observe(&self, waited: Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// Where the chain continues: the last valid line, and the bytes after it in the newest file.
struct Resume {
    last: Option<line::Verified>,
    region: Vec<u8>,
}

fn find_resume_point(files: &[files::LogFile], key: &AuditKey) -> Result<Resume, AuditError> {
    let mut region = Vec::new();
    for (index, file) in files.iter().enumerate().rev() {
        if !file.regular {
            continue;
        }
        let tail = files::scan_tail(file, key, MAX_TORN_BYTES).map_err(|e| match e {
            TailError::Io(e) => AuditError::io("read", &file.path, e),
            TailError::TooLong { bytes } => AuditError::TailDoesNotVerify {
                file: file.path.clone(),
                bytes,
            },
        })?;
        let newest = index + 1 == files.len();
        if newest {
            region = tail.region;
        } else if !tail.region.is_empty() {
            // Only the newest file can end in a crash: the writer moves on to a new day's file
            // after a complete write, and steps over a torn line in the file it was in.
            return Err(AuditError::TailDoesNotVerify {
                file: file.path.clone(),
                bytes: tail.region.len() as u64,
            });
        }
        if let Some(last) = tail.last {
            return Ok(Resume {
                last: Some(last),
                region,
            });
        }
    }
    Ok(Resume { last: None, region })
}

/// Compares the checkpoint with the last valid record; returns the `checkpoint` word of the
/// `open` event.
fn check_checkpoint(
    head: Option<&Head>,
    last: Option<&line::Verified>,
    head_path: &Path,
) -> Result<&'static str, AuditError> {
    let Some(head) = head else {
        return Ok(if last.is_some() { "missing" } else { "new" });
    };
    let Some(checkpoint) = head.seq else {
        return Ok("ok");
    };
    match last {
        None => Err(AuditError::CheckpointAhead {
            checkpoint,
            last: None,
        }),
        Some(v) if v.seq < checkpoint => Err(AuditError::CheckpointAhead {
            checkpoint,
            last: Some(v.seq),
        }),
        Some(v) if v.seq == checkpoint && hex::encode(v.mac) != head.last_mac => {
            Err(AuditError::CheckpointDoesNotVerify {
                path: head_path.to_path_buf(),
            })
        }
        Some(_) => Ok("ok"),
    }
}

fn create_dir(dir: &Path) -> Result<(), AuditError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        // Decision records name who looked whom up: not for every local user.
        builder.mode(0o750);
    }
    builder
        .create(dir)
        .map_err(|e| AuditError::io("create the directory", dir, e))
}

/// Opens a day file for appending, creating it (and making its name durable) when new.
fn open_append(dir: &Path, name: &str) -> Result<(File, u64), AuditError> {
    let path = dir.join(name);
    let existed = path.exists();
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    let file = options
        .open(&path)
        .map_err(|e| AuditError::io("open", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| AuditError::io("read the size of", &path, e))?
        .len();
    if !existed {
        sync_dir(dir)?;
    }
    Ok((file, len))
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuditError::io("fsync the directory", dir, e))
}

/// Replaces the checkpoint atomically (write, fsync, rename, fsync the directory).
fn write_head(
    dir: &Path,
    key: &AuditKey,
    written: &Written,
    now: DateTime<Utc>,
) -> Result<(), AuditError> {
    let head = Head {
        seq: Some(written.seq),
        last_mac: hex::encode(written.mac),
        file: written.name.clone(),
        time: wib_rfc3339(now),
    };
    let tmp = dir.join(HEAD_TMP_FILE);
    let mut file = File::create(&tmp).map_err(|e| AuditError::io("create", &tmp, e))?;
    file.write_all(&head.encode(key))
        .and_then(|()| file.sync_all())
        .map_err(|e| AuditError::io("write", &tmp, e))?;
    let path = dir.join(HEAD_FILE);
    std::fs::rename(&tmp, &path).map_err(|e| AuditError::io("replace", &path, e))?;
    sync_dir(dir)
}

#[cfg(test)]
mod queue_tests {
    use super::*;
    use crate::record::Decision;

    /// A refusal whose record is about `size` bytes (a long instance name stands for any
    /// large field).
    fn refusal(n: u64, size: usize) -> Record {
        Record {
            time: Utc::now(),
            instance: "i".repeat(size),
            request_id: format!("r-{n}"),
            user_id: None,
            pengguna: None,
            pks: None,
            peer_ip: "10.99.0.10".parse().expect("ip"),
            channel: Some("web_service".into()),
            action: Some("CallNik".into()),
            decision: Decision::Deny,
            reason: Some("ip_not_registered".into()),
            policy_ids: Vec::new(),
            policy_hash: String::new(),
            nik_digest: None,
            elements: Vec::new(),
            balikan: None,
            upstream_status: None,
            latency_us: 1,
            quota_used: None,
            quota_limit: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_refusals_without_blocking_and_keeps_awaited_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = AuditKey::from_material(&[7u8; 32], "test").expect("key");
        let log =
            Arc::new(AuditLog::open(dir.path(), key, WriterOptions::default()).expect("open"));
        // The disk "stalls": whoever leads the next batch waits for the file, so records pile
        // up in the queue meanwhile.
        let stalled = lock(&log.shared.io);
        let (tx, rx) = std::sync::mpsc::channel();
        let appender = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut queued = 0u64;
                let mut dropped = 0u64;
                for n in 0..3_000 {
                    match log.append_nowait(&refusal(n, 16 * 1024)) {
                        Ok(()) => queued += 1,
                        Err(AuditError::QueueFull { queued_bytes }) => {
                            assert!(queued_bytes <= MAX_NOWAIT_QUEUE_BYTES);
                            dropped += 1;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                let _ = tx.send((queued, dropped));
            })
        };
        // 3,000 records of 16 KiB are three times the byte bound: most are dropped, and none
        // waits for the stalled disk (before, past the bound a worker blocked on it).
        let (queued, dropped) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("append_nowait must never wait for the disk");
        appender.join().expect("appender");
        assert_eq!(queued + dropped, 3_000);
        assert!(dropped >= 1_900, "queued {queued}, dropped {dropped}");
        assert!(
            queued as usize * 16 * 1024 <= MAX_NOWAIT_QUEUE_BYTES + 64 * 1024,
            "{queued} records of 16 KiB exceed the byte bound"
        );
        assert_eq!(log.stats().records_dropped, dropped);

        // A record of released data is never dropped, however full the queue.
        let awaited = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime")
                    .block_on(log.append_async(&refusal(9_999, 16 * 1024)))
            })
        };
        drop(stalled);
        awaited.join().expect("awaited").expect("written");
        let log = Arc::into_inner(log).expect("one owner");
        assert_eq!(log.stats().records_dropped, dropped);
        log.close().expect("close");
        // The open event, every queued refusal and the awaited record.
        let lines: usize = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .map(|p| std::fs::read_to_string(p).expect("read").lines().count())
            .sum();
        assert_eq!(lines as u64, 1 + queued + 1);
    }
}

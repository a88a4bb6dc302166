//! Gerbang's decision log: one record per request, allowed or refused, written before an
//! answer carrying population data is released (docs/architecture.md, "Targets"), chained and sealed with a keyed
//! MAC so that `gerbang audit verify` detects any edited, removed, inserted or reordered
//! record; and the semester usage reports Ditjen makes from it (Permendagri 102/2019 art. 40).
//!
//! - [`AuditLog`] writes: group commit on the callers' threads, fsync in the background, one
//!   file per WIB day, health and counters for the gateway's metrics.
//! - [`verify`] checks a log directory and names the first bad record.
//! - closed days are compacted with zstd and, past a retention, archived to a directory or
//!   handed to a command ([`Retention`]); [`verify`] and [`report`] read them as written.
//! - [`report`] folds a semester of logs into per-Pengguna and per-User-ID usage, rendered as
//!   CSV, JSON, Markdown or HTML with charts.
//!
//! The crate has no network code and does not depend on the proxy; `docs/audit.md` describes
//! the format, the chain, the key and what verification can and cannot detect.
#![forbid(unsafe_code)]

mod archive;
mod files;
mod fleet;
mod key;
mod line;
mod maintain;
mod record;
mod report;
mod verify;
mod writer;

pub use archive::Destination;
pub use fleet::{
    ChainId, ChainVerdict, FleetError, FleetVerify, LogDir, Verdict, chain_id, distinct,
    verify_fleet,
};
pub use key::{AUDIT_KEY_ENV, AuditKey, KeyError, MIN_KEY_BYTES, NikDigest};
pub use maintain::{
    ArchiveTo, COMPRESSION_LEVEL, DiskSpace, Keep, Maintained, MaintenanceError, Retention,
    disk_space,
};
pub use record::{BALIKAN_ACTION, Balikan, Decision, Record};
pub use report::{
    BALIKAN_WINDOW_DAYS, BalikanBehind, BalikanCounts, BalikanReport, BalikanRow, ChainRead,
    ChannelShare, Format, FormatUnknown, PeakDay, PenggunaReport, Report, ReportError, Semester,
    SemesterInvalid, Usage, UserReport, report, report_fleet, report_with_archive,
};
pub use verify::{
    FileSummary, Location, Note, Problem, ProblemKind, VerifyError, VerifyReport, verify,
    verify_with_archive,
};
pub use writer::{
    AuditError, AuditLog, AuditStats, Clock, DEFAULT_FSYNC_INTERVAL, DEFAULT_MAINTENANCE_INTERVAL,
    LATENCY_BUCKETS_US, LatencyHistogram, MAX_NOWAIT_QUEUE, MAX_TORN_BYTES, Receipt, WriterOptions,
};

//! `[audit]`: the decision log's directory, key, retention and archive.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::diag::{ConfigError, Source};

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditFile {
    /// Directory of the decision log (one file per WIB day, hash-chained).
    dir: String,
    /// File holding the audit key (at least 32 bytes, hex or raw). Without it the key comes
    /// from the `GERBANG_AUDIT_KEY` environment variable. Never put the key in this file.
    key_file: Option<String>,
    /// Longest time a written record waits for fsync, in milliseconds (default 50): what a
    /// power cut can lose. A kill of the process loses nothing already answered.
    fsync_interval_ms: Option<u64>,
    /// Refuse answers carrying population data when their record cannot be written
    /// (default true, docs/architecture.md, "Targets").
    refuse_on_failure: Option<bool>,
    /// `gerbang serve` refuses to start when the log's filesystem has less free space than
    /// this, in MiB (default 256). Once running, records are written until the disk is full.
    min_free_mib: Option<u64>,
    /// Free space of the log's filesystem, in MiB, under which the `GerbangAuditDiskLow`
    /// alert fires (exported as `gerbang_audit_disk_free_alert_bytes`; default 10240).
    alert_free_mib: Option<u64>,
    /// Closed days older than this many days leave the log directory, to `archive_dir` or
    /// `archive_command` (default: they stay, compacted).
    retention_days: Option<u32>,
    /// The same in calendar months (give one of `retention_days`, `retention_months`).
    retention_months: Option<u32>,
    /// Where archived days move (another disk, typically); `audit verify` and `report` read
    /// it with the log directory.
    archive_dir: Option<String>,
    /// A program and its arguments run for each archived day, with the day's file as the last
    /// argument; exit status 0 means the file is stored elsewhere and is removed here.
    archive_command: Option<Vec<String>>,
}

/// The decision log.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub dir: PathBuf,
    pub key_file: Option<PathBuf>,
    pub fsync_interval: Duration,
    pub refuse_on_failure: bool,
    /// Free space the log's filesystem must have for the gateway to start.
    pub min_free_bytes: u64,
    /// Free space under which the disk alert fires.
    pub alert_free_bytes: u64,
    /// When closed days leave the directory, and where to; `None`: they stay.
    pub retention: Option<AuditRetention>,
}

impl AuditSettings {
    /// The archive directory, when days move to one.
    pub fn archive_dir(&self) -> Option<&Path> {
        match &self.retention {
            Some(AuditRetention {
                to: AuditArchive::Dir(dir),
                ..
            }) => Some(dir),
            _ => None,
        }
    }
}

/// When closed days of the decision log leave its directory, and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRetention {
    pub keep: AuditKeep,
    pub to: AuditArchive,
}

/// How long closed days stay in the log directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKeep {
    Days(NonZeroU32),
    Months(NonZeroU32),
}

/// Where archived days go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditArchive {
    Dir(PathBuf),
    /// The program and its arguments.
    Command(Vec<String>),
}

pub(super) fn audit_settings(
    file: Option<AuditFile>,
    base: &Path,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<AuditSettings> {
    let file = file?;
    if file.fsync_interval_ms == Some(0) {
        errors.push(src.error(
            None,
            "audit.fsync_interval_ms",
            "must be more than 0 milliseconds",
        ));
    }
    let keep = match (file.retention_days, file.retention_months) {
        (Some(_), Some(_)) => {
            errors.push(src.error(
                None,
                "audit.retention_months",
                "give retention_days or retention_months, not both",
            ));
            None
        }
        (Some(days), None) => {
            positive(days, "audit.retention_days", src, errors).map(AuditKeep::Days)
        }
        (None, Some(months)) => {
            positive(months, "audit.retention_months", src, errors).map(AuditKeep::Months)
        }
        (None, None) => None,
    };
    let dir = base.join(&file.dir);
    let to = match (file.archive_dir, file.archive_command) {
        (Some(_), Some(_)) => {
            errors.push(src.error(
                None,
                "audit.archive_command",
                "give archive_dir or archive_command, not both",
            ));
            None
        }
        (Some(archive), None) => {
            let archive = base.join(archive);
            if archive == dir {
                errors.push(src.error(
                    None,
                    "audit.archive_dir",
                    "must be another directory than audit.dir",
                ));
            }
            Some(AuditArchive::Dir(archive))
        }
        (None, Some(command)) if command.first().is_none_or(String::is_empty) => {
            errors.push(src.error(
                None,
                "audit.archive_command",
                "must name a program, e.g. [\"/usr/local/bin/simpan-arsip\", \"--bucket\", \"audit\"]",
            ));
            None
        }
        (None, Some(command)) => Some(AuditArchive::Command(command)),
        (None, None) => None,
    };
    let retention = match (keep, to) {
        (Some(keep), Some(to)) => Some(AuditRetention { keep, to }),
        (Some(_), None) if !errors.iter().any(|e| e.field.starts_with("audit.archive")) => {
            errors.push(src.error(
                None,
                "audit.archive_dir",
                "a retention needs a place for the days it moves out: archive_dir or archive_command",
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(src.error(
                None,
                "audit.retention_days",
                "archive_dir and archive_command take effect with retention_days or retention_months",
            ));
            None
        }
        _ => None,
    };
    let mib = |value: Option<u64>, default: u64| value.unwrap_or(default).saturating_mul(MIB);
    Some(AuditSettings {
        dir,
        key_file: file.key_file.as_ref().map(|k| base.join(k)),
        fsync_interval: Duration::from_millis(file.fsync_interval_ms.unwrap_or(50)),
        refuse_on_failure: file.refuse_on_failure.unwrap_or(true),
        min_free_bytes: mib(file.min_free_mib, DEFAULT_MIN_FREE_MIB),
        alert_free_bytes: mib(file.alert_free_mib, DEFAULT_ALERT_FREE_MIB),
        retention,
    })
}

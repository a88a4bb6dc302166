//! Keeping the log at a size its disk can hold: closed days compacted with zstd, days past
//! the retention archived (never removed before they were checked and placed), and the free
//! space of the log's filesystem.
//!
//! A day is *closed* once the writer moved on to a later day's file: rotation fsyncs the old
//! file before the first record of the new day is written, and the writer never goes back.
//! The day being written is never touched, whatever its age.
//!
//! **Compaction** writes `audit-D.jsonl.zst.tmp` (one zstd frame with its content checksum),
//! fsyncs it, decompresses it again and compares the SHA-256 of what comes out with that of
//! the plain file, and only then renames it to `audit-D.jsonl.zst`, fsyncs the directory and
//! removes the plain file. A crash at any point leaves the plain file, or both (the next pass
//! compares them and removes the plain one), never neither.
//!
//! **Archiving** (see `archive.rs` for the manifest) checks every line of the day from where
//! the previous archived day ended, records the day in the manifest, then moves the file to
//! the archive directory (rename, or copy + fsync + compare + rename across filesystems) or
//! runs the archive command, and removes the file here only once it is placed or the command
//! succeeded.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Days, Months, NaiveDate, Utc};
use sha2::{Digest as _, Sha256};

use crate::archive::{self, Destination, Entry, Manifest, ManifestError, sync_dir};
use crate::files::{self, LogFile, Storage};
use crate::key::AuditKey;
use crate::record::wib_rfc3339;
use crate::verify::{SegmentError, check_segment};

/// The zstd level closed days are compacted with, the library's default. Measured on
/// synthetic records shaped like the bench's (`examples/sizing.rs`, loadtest/RESULTS.md):
/// 7.5–9.6× smaller; level 1 is twice as fast and 8 % smaller when every NIK differs but
/// 11 % larger when NIKs repeat, level 9 another 11 % smaller at a quarter of the speed.
pub const COMPRESSION_LEVEL: i32 = 3;

/// Bytes read at a time while compacting or copying.
const CHUNK: usize = 256 * 1024;

/// How long closed days stay in the log directory before they are archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// This many WIB days after the day.
    Days(u32),
    /// This many calendar months after the day.
    Months(u32),
}

impl Keep {
    /// The oldest day that stays on `today`: days before it are archived.
    pub fn first_kept(self, today: NaiveDate) -> NaiveDate {
        let kept = match self {
            Self::Days(n) => today.checked_sub_days(Days::new(u64::from(n))),
            Self::Months(n) => today.checked_sub_months(Months::new(n)),
        };
        kept.unwrap_or(NaiveDate::MIN)
    }
}

/// Where archived days go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveTo {
    /// A directory (on another disk, typically) that `audit verify` reads with the live one.
    Dir(PathBuf),
    /// A program and its arguments, run with the day's file as its last argument (and
    /// `GERBANG_AUDIT_FILE`, `GERBANG_AUDIT_DAY`, `GERBANG_AUDIT_SHA256` in its environment);
    /// exit status 0 means the file is stored elsewhere and may be removed here.
    Command(Vec<String>),
}

/// When closed days leave the log directory, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub keep: Keep,
    pub to: ArchiveTo,
}

/// What one maintenance pass did, by day file name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintained {
    pub compacted: Vec<String>,
    pub archived: Vec<String>,
}

/// Why maintenance stopped. Whatever it was, no day was removed that was not first checked
/// and placed; the pass is tried again at the next day, the next interval or restart.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// A file or directory could not be read, written or moved.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A day is in both storages and they differ: one was altered.
    #[error(
        "{plain} and its compacted copy {compacted} differ: one of them was altered; run \
         `gerbang audit verify`, keep the one that verifies and move the other away"
    )]
    CopiesDiffer { plain: PathBuf, compacted: PathBuf },
    /// The compressed file did not decompress to the plain one (it is removed again).
    #[error("compacting {file} gave a file that does not decompress to it; the day stays plain")]
    CompactionMismatch { file: PathBuf },
    /// A day past the retention does not verify, so it is not archived.
    #[error("{file} is not archived, it does not verify: {problem}; run `gerbang audit verify`")]
    DoesNotVerify { file: String, problem: String },
    /// A day changed after its manifest entry was written.
    #[error(
        "{file} changed after it was entered in the archive manifest (its SHA-256 differs); \
         run `gerbang audit verify`"
    )]
    ChangedSinceEntry { file: PathBuf },
    /// The archive manifest does not verify with the key.
    #[error(
        "the archive manifest {path} does not verify with this audit key (line {line}); run \
         `gerbang audit verify`"
    )]
    Manifest { path: PathBuf, line: u64 },
    /// The archive directory holds another file under the day's name.
    #[error(
        "{path} is already in the archive directory and differs from the day being \
         archived; nothing is overwritten: find out where it came from"
    )]
    ArchiveConflict { path: PathBuf },
    /// The archive command did not succeed.
    #[error(
        "the archive command `{command}` failed for {file} ({status}); the day stays in the \
         log directory and is tried again"
    )]
    CommandFailed {
        command: String,
        file: PathBuf,
        status: String,
    },
    /// The log is closing.
    #[error("maintenance stopped: the decision log is closing")]
    Stopped,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> MaintenanceError {
    let path = path.to_path_buf();
    move |source| MaintenanceError::Io {
        action,
        path,
        source,
    }
}

/// Free space of a filesystem, as an unprivileged process can use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes a non-root writer may still use.
    pub free: u64,
    /// The filesystem's size.
    pub total: u64,
}

/// The free space of the filesystem holding `path`.
pub fn disk_space(path: &Path) -> io::Result<DiskSpace> {
    let st = rustix::fs::statvfs(path)?;
    Ok(DiskSpace {
        free: st.f_bavail.saturating_mul(st.f_frsize),
        total: st.f_blocks.saturating_mul(st.f_frsize),
    })
}

/// One maintenance pass over `dir`: every closed day (before `writing`, the day the writer
/// is in) compacted, and with a retention, every closed day before the retention's first
/// kept day archived, oldest first. `on_done` hears of each day as it is done.
pub(crate) struct Pass<'a> {
    pub dir: &'a Path,
    pub key: &'a AuditKey,
    pub retention: Option<&'a Retention>,
    pub writing: NaiveDate,
    pub now: DateTime<Utc>,
    pub stop: &'a AtomicBool,
}

/// Which kind of work a finished day was.
pub(crate) enum Done {
    Compacted,
    Archived,
}

impl Pass<'_> {
    pub fn run(&self, mut on_done: impl FnMut(Done, &str)) -> Result<Maintained, MaintenanceError> {
        let mut done = Maintained::default();
        let stored = files::list_stored(self.dir, false).map_err(io_error("list", self.dir))?;
        for (i, file) in stored.iter().enumerate() {
            if file.day >= self.writing || file.storage != Storage::Plain || !file.regular {
                continue;
            }
            let compacted = stored
                .get(i + 1)
                .filter(|next| next.day == file.day && next.storage == Storage::Zstd);
            match compacted {
                Some(zst) => self.finish_compaction(file, zst)?,
                None => self.compact(file)?,
            }
            let name = files::stored_name(file.day, Storage::Zstd);
            on_done(Done::Compacted, &name);
            done.compacted.push(name);
        }
        let Some(retention) = self.retention else {
            return Ok(done);
        };
        let today = crate::record::wib_day(self.now);
        let first_kept = retention.keep.first_kept(today);
        let mut manifest = Manifest::read(self.dir, self.key).map_err(|e| match e {
            ManifestError::Io(e) => io_error("read", &archive::manifest_path(self.dir))(e),
            ManifestError::Invalid { line } => MaintenanceError::Manifest {
                path: archive::manifest_path(self.dir),
                line,
            },
        })?;
        let live = files::list(self.dir).map_err(io_error("list", self.dir))?;
        for file in live {
            if file.day >= self.writing.min(first_kept) {
                break;
            }
            if file.storage != Storage::Zstd || !file.regular {
                // Left plain by a failed compaction: it stops the archiving, which goes in
                // day order so that every day chains from the one archived before it.
                break;
            }
            self.archive(&file, retention, &mut manifest)?;
            on_done(Done::Archived, &file.shown());
            done.archived.push(file.shown());
        }
        Ok(done)
    }

    fn stopped(&self) -> Result<(), MaintenanceError> {
        if self.stop.load(Ordering::Relaxed) {
            Err(MaintenanceError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Compresses a closed day beside itself, checks the copy, then removes the plain file.
    fn compact(&self, plain: &LogFile) -> Result<(), MaintenanceError> {
        let name = files::stored_name(plain.day, Storage::Zstd);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let written = self.write_compressed(plain, &tmp);
        let result = written.and_then(|sha| {
            if zstd_digest(&tmp).map_err(io_error("read back", &tmp))? == sha {
                Ok(())
            } else {
                Err(MaintenanceError::CompactionMismatch {
                    file: plain.path.clone(),
                })
            }
        });
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let target = self.dir.join(&name);
        std::fs::rename(&tmp, &target).map_err(io_error("rename", &tmp))?;
        sync_dir(self.dir).map_err(io_error("fsync", self.dir))?;
        self.remove(&plain.path)
    }

    /// Writes `plain` compressed to `tmp` (fsynced); returns the SHA-256 of the plain bytes.
    fn write_compressed(&self, plain: &LogFile, tmp: &Path) -> Result<[u8; 32], MaintenanceError> {
        let mut source = File::open(&plain.path).map_err(io_error("open", &plain.path))?;
        let length = source
            .metadata()
            .map_err(io_error("read the size of", &plain.path))?
            .len();
        let out = create_private(tmp).map_err(io_error("create", tmp))?;
        let write = io_error("write", tmp);
        let mut encoder = zstd::stream::write::Encoder::new(out, COMPRESSION_LEVEL)
            .and_then(|mut e| {
                e.include_checksum(true)?;
                e.set_pledged_src_size(Some(length))?;
                Ok(e)
            })
            .map_err(io_error("start compressing into", tmp))?;
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            self.stopped()?;
            let n = source
                .read(&mut buf)
                .map_err(io_error("read", &plain.path))?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            encoder
                .write_all(&buf[..n])
                .map_err(io_error("write", tmp))?;
        }
        let out = encoder.finish().map_err(io_error("finish", tmp))?;
        out.sync_all().map_err(write)?;
        Ok(sha.finalize().into())
    }

    /// A day left in both storages: the compressed copy was complete (it is renamed into
    /// place only once checked), so the plain file goes once the two are seen to agree.
    fn finish_compaction(&self, plain: &LogFile, zst: &LogFile) -> Result<(), MaintenanceError> {
        let plain_sha = plain_digest(&plain.path).map_err(io_error("read", &plain.path))?;
        let zst_sha = zstd_digest(&zst.path).ok();
        if zst_sha != Some(plain_sha) {
            return Err(MaintenanceError::CopiesDiffer {
                plain: plain.path.clone(),
                compacted: zst.path.clone(),
            });
        }
        self.remove(&plain.path)
    }

    fn remove(&self, path: &Path) -> Result<(), MaintenanceError> {
        std::fs::remove_file(path).map_err(io_error("remove", path))?;
        sync_dir(self.dir).map_err(io_error("fsync", self.dir))
    }

    /// Checks a compacted closed day, enters it in the manifest, and places it.
    fn archive(
        &self,
        file: &LogFile,
        retention: &Retention,
        manifest: &mut Manifest,
    ) -> Result<(), MaintenanceError> {
        let to = match retention.to {
            ArchiveTo::Dir(_) => Destination::Dir,
            ArchiveTo::Command(_) => Destination::Command,
        };
        let (bytes, sha256) =
            archive::file_digest(&file.path).map_err(io_error("read", &file.path))?;
        let entry = match manifest.entries.iter_mut().find(|e| e.day == file.day) {
            // Entered by a pass that did not finish: the file must be the one entered.
            Some(entry) => {
                if entry.sha256 != sha256 {
                    return Err(MaintenanceError::ChangedSinceEntry {
                        file: file.path.clone(),
                    });
                }
                if entry.to != to {
                    entry.to = to;
                    let entry = entry.clone();
                    self.write_manifest(manifest)?;
                    entry
                } else {
                    entry.clone()
                }
            }
            None => {
                let entry = self.check(file, manifest, to, bytes, sha256)?;
                manifest.entries.push(entry.clone());
                self.write_manifest(manifest)?;
                entry
            }
        };
        match &retention.to {
            ArchiveTo::Dir(archive) => self.move_to(file, archive, &entry),
            ArchiveTo::Command(command) => self.hand_over(file, command, &entry),
        }
    }

    /// Verifies the day on its own, chaining from the end of the last archived day.
    fn check(
        &self,
        file: &LogFile,
        manifest: &Manifest,
        to: Destination,
        bytes: u64,
        sha256: String,
    ) -> Result<Entry, MaintenanceError> {
        let (seq, prev) = manifest.next().ok_or_else(|| MaintenanceError::Manifest {
            path: archive::manifest_path(self.dir),
            line: manifest.entries.len() as u64,
        })?;
        let segment = check_segment(file, self.key, (seq, prev)).map_err(|e| match e {
            SegmentError::Io(e) => io_error("read", &file.path)(e),
            SegmentError::Problem(problem) => MaintenanceError::DoesNotVerify {
                file: file.shown(),
                problem: problem.to_string(),
            },
        })?;
        Ok(Entry {
            day: file.day,
            file: files::stored_name(file.day, Storage::Zstd),
            to,
            first_seq: segment.first_seq,
            last_seq: segment.last_seq,
            first_prev: hex::encode(prev),
            last_mac: hex::encode(segment.last_mac),
            lines: segment.lines,
            bytes,
            sha256,
            time: wib_rfc3339(self.now),
        })
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), MaintenanceError> {
        manifest
            .write(self.dir, self.key)
            .map_err(io_error("write", &archive::manifest_path(self.dir)))
    }

    /// Moves the day into the archive directory: a rename on the same filesystem, else a
    /// copy that is fsynced and compared before it takes the day's name there.
    fn move_to(
        &self,
        file: &LogFile,
        archive: &Path,
        entry: &Entry,
    ) -> Result<(), MaintenanceError> {
        create_private_dir(archive).map_err(io_error("create the directory", archive))?;
        let target = archive.join(&entry.file);
        if target.exists() {
            // A move cut short after the copy was placed.
            let (_, sha) = archive::file_digest(&target).map_err(io_error("read", &target))?;
            if sha != entry.sha256 {
                return Err(MaintenanceError::ArchiveConflict { path: target });
            }
            return self.remove(&file.path);
        }
        match std::fs::rename(&file.path, &target) {
            Ok(()) => {
                sync_dir(archive).map_err(io_error("fsync", archive))?;
                sync_dir(self.dir).map_err(io_error("fsync", self.dir))
            }
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                let tmp = archive.join(format!(".{}.tmp", entry.file));
                let copied =
                    copy_synced(&file.path, &tmp).and_then(|()| archive::file_digest(&tmp));
                match copied {
                    Ok((_, sha)) if sha == entry.sha256 => {}
                    Ok(_) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(MaintenanceError::ArchiveConflict { path: tmp });
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(io_error("copy into", archive)(e));
                    }
                }
                std::fs::rename(&tmp, &target).map_err(io_error("rename", &tmp))?;
                sync_dir(archive).map_err(io_error("fsync", archive))?;
                self.remove(&file.path)
            }
            Err(e) => Err(io_error("move", &file.path)(e)),
        }
    }

    /// Runs the archive command for the day; removes it here once the command succeeded.
    fn hand_over(
        &self,
        file: &LogFile,
        command: &[String],
        entry: &Entry,
    ) -> Result<(), MaintenanceError> {
        let Some((program, args)) = command.split_first() else {
            return Err(MaintenanceError::CommandFailed {
                command: String::new(),
                file: file.path.clone(),
                status: "no command configured".to_owned(),
            });
        };
        let shown = command.join(" ");
        let mut child = Command::new(program)
            .args(args)
            .arg(&file.path)
            .env("GERBANG_AUDIT_FILE", &file.path)
            .env("GERBANG_AUDIT_DAY", file.day.to_string())
            .env("GERBANG_AUDIT_SHA256", &entry.sha256)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| MaintenanceError::CommandFailed {
                command: shown.clone(),
                file: file.path.clone(),
                status: format!("cannot start it: {e}"),
            })?;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(io_error("wait for", Path::new(program)))?
            {
                break status;
            }
            if self.stop.load(Ordering::Relaxed) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(MaintenanceError::Stopped);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            return Err(MaintenanceError::CommandFailed {
                command: shown,
                file: file.path.clone(),
                status: status.to_string(),
            });
        }
        self.remove(&file.path)
    }
}

/// SHA-256 of a plain file's bytes.
fn plain_digest(path: &Path) -> io::Result<[u8; 32]> {
    digest_of(File::open(path)?)
}

/// SHA-256 of what a compacted file decompresses to.
fn zstd_digest(path: &Path) -> io::Result<[u8; 32]> {
    digest_of(zstd::stream::read::Decoder::new(File::open(path)?)?)
}

fn digest_of(mut reader: impl io::Read) -> io::Result<[u8; 32]> {
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(sha.finalize().into());
        }
        sha.update(&buf[..n]);
    }
}

/// Copies `from` to a new file `to` and fsyncs it.
fn copy_synced(from: &Path, to: &Path) -> io::Result<()> {
    let mut source = File::open(from)?;
    let mut target = create_private(to)?;
    io::copy(&mut source, &mut target)?;
    target.sync_all()
}

/// A new file readable by the owner and the group only, like the day files.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    options.open(path)
}

/// The archive directory, `0750` like the log's own.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o750);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn retention_counts_whole_days_and_calendar_months() {
        let today = day("2026-03-31");
        assert_eq!(Keep::Days(30).first_kept(today), day("2026-03-01"));
        assert_eq!(Keep::Days(1).first_kept(today), day("2026-03-30"));
        // A month before 31 March is the last day of February.
        assert_eq!(Keep::Months(1).first_kept(today), day("2026-02-28"));
        assert_eq!(Keep::Months(12).first_kept(today), day("2025-03-31"));
    }

    #[test]
    fn disk_space_is_read_for_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let space = disk_space(dir.path()).expect("statvfs");
        assert!(space.total > 0 && space.free <= space.total, "{space:?}");
        assert!(disk_space(&dir.path().join("absent")).is_err());
    }
}

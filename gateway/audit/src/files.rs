//! The log directory: one file per WIB day (`audit-YYYY-MM-DD.jsonl`, or
//! `audit-YYYY-MM-DD.jsonl.zst` once the day is closed and compacted), the checkpoint
//! `audit.head`, the archive manifest `audit.archive` and the writer's lock `audit.lock`;
//! reading lines across files in order, compressed or not, and finding where the chain ends
//! after a crash.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::key::AuditKey;
use crate::line::{self, Checked, Verified};

/// The checkpoint file.
pub(crate) const HEAD_FILE: &str = "audit.head";
/// Where the checkpoint is written before it is renamed over the old one.
pub(crate) const HEAD_TMP_FILE: &str = "audit.head.tmp";
/// Held locked (flock) by the one writer of a directory.
pub(crate) const LOCK_FILE: &str = "audit.lock";

/// Longest line kept in memory; longer ones are not records (a record is well under 4 KiB).
pub(crate) const MAX_LINE: usize = 1 << 20;

/// Bytes read at a time from a day file.
const READ_BUFFER: usize = 256 * 1024;

/// How a day file is kept. Both hold the same bytes: a compacted day decompresses to exactly
/// the lines the writer wrote, so the chain and the seals verify across the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Storage {
    /// `audit-YYYY-MM-DD.jsonl`, as written.
    Plain,
    /// `audit-YYYY-MM-DD.jsonl.zst`: one zstd frame with a content checksum.
    Zstd,
}

impl Storage {
    fn suffix(self) -> &'static str {
        match self {
            Self::Plain => ".jsonl",
            Self::Zstd => ".jsonl.zst",
        }
    }
}

/// The name of a day's log file as the writer writes it; the chain and the checkpoint name a
/// day by it however the day is stored.
pub(crate) fn file_name(day: NaiveDate) -> String {
    stored_name(day, Storage::Plain)
}

/// The name of a day's file stored as `storage`.
pub(crate) fn stored_name(day: NaiveDate, storage: Storage) -> String {
    format!("audit-{}{}", day.format("%Y-%m-%d"), storage.suffix())
}

/// The day and storage of a log file's name.
pub(crate) fn parse_file_name(name: &str) -> Option<(NaiveDate, Storage)> {
    let rest = name.strip_prefix("audit-")?;
    let (date, storage) = if let Some(date) = rest.strip_suffix(Storage::Zstd.suffix()) {
        (date, Storage::Zstd)
    } else {
        (rest.strip_suffix(Storage::Plain.suffix())?, Storage::Plain)
    };
    if date.len() != 10 {
        return None;
    }
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some((day, storage))
}

/// One day's log file.
#[derive(Debug, Clone)]
pub(crate) struct LogFile {
    pub day: NaiveDate,
    /// The day's name as written (`audit-YYYY-MM-DD.jsonl`), whatever its storage.
    pub name: String,
    pub path: PathBuf,
    pub storage: Storage,
    /// In the archive directory rather than the log's own.
    pub archived: bool,
    /// A regular file (following links); anything else is never read.
    pub regular: bool,
}

impl LogFile {
    /// How findings name the file: its name in the log directory, its full path in the archive.
    pub fn shown(&self) -> String {
        if self.archived {
            self.path.display().to_string()
        } else {
            stored_name(self.day, self.storage)
        }
    }
}

/// Every day file of `dir`, both storages of a day included, by day then storage (plain
/// first). Maintenance needs them all: a day left in both is a compaction that was cut short.
pub(crate) fn list_stored(dir: &Path, archived: bool) -> io::Result<Vec<LogFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some((day, storage)) = parse_file_name(&name) else {
            continue;
        };
        let path = entry.path();
        let regular = std::fs::metadata(&path)
            .map(|m| m.is_file())
            .unwrap_or(false);
        files.push(LogFile {
            day,
            name: file_name(day),
            path,
            storage,
            archived,
            regular,
        });
    }
    files.sort_by_key(|f| (f.day, f.storage));
    Ok(files)
}

/// The day files of `dir`, oldest first, one per day: the plain file when a day is in both
/// storages (its compaction did not finish, and the plain file is what was written).
pub(crate) fn list(dir: &Path) -> io::Result<Vec<LogFile>> {
    let mut files = list_stored(dir, false)?;
    files.dedup_by_key(|f| f.day);
    Ok(files)
}

/// The day files of `dir` and of the archive directory, one per day, oldest first; a day in
/// both is read from `dir` (an archiving that did not finish leaves it there).
pub(crate) fn list_with_archive(dir: &Path, archive: Option<&Path>) -> io::Result<Vec<LogFile>> {
    let mut files = list(dir)?;
    if let Some(archive) = archive {
        let mut archived = list_stored(archive, true)?;
        archived.dedup_by_key(|f| f.day);
        archived.retain(|a| files.binary_search_by_key(&a.day, |f| f.day).is_err());
        files.extend(archived);
        files.sort_by_key(|f| f.day);
    }
    Ok(files)
}

/// One line read from a log file.
#[derive(Debug)]
pub(crate) struct Line {
    /// The line without its newline, cut at [`MAX_LINE`] bytes.
    pub bytes: Vec<u8>,
    /// Its full length, newline included.
    pub len: u64,
    /// Ended with a newline (the last line of a crashed file may not).
    pub terminated: bool,
    /// Longer than [`MAX_LINE`]: `bytes` holds only the start.
    pub oversized: bool,
}

/// Reads a line without holding more than [`MAX_LINE`] bytes of it.
pub(crate) fn read_line<R: BufRead>(reader: &mut R) -> io::Result<Option<Line>> {
    let mut line = Line {
        bytes: Vec::new(),
        len: 0,
        terminated: false,
        oversized: false,
    };
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok((line.len > 0).then_some(line));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let content = if done {
            &chunk[..chunk.len() - 1]
        } else {
            chunk
        };
        let room = MAX_LINE.saturating_sub(line.bytes.len());
        if content.len() > room {
            line.oversized = true;
        }
        line.bytes
            .extend_from_slice(&content[..content.len().min(room)]);
        let used = chunk.len();
        line.len += used as u64;
        reader.consume(used);
        if done {
            line.terminated = true;
            return Ok(Some(line));
        }
    }
}

/// A day file's lines, decompressed when it is compacted.
pub(crate) type Reader = Box<dyn BufRead + Send>;

/// Opens a day file for reading line by line, whatever its storage.
pub(crate) fn open_reader(file: &LogFile) -> io::Result<Reader> {
    let raw = File::open(&file.path)?;
    Ok(match file.storage {
        Storage::Plain => Box::new(BufReader::with_capacity(READ_BUFFER, raw)),
        Storage::Zstd => Box::new(BufReader::with_capacity(
            READ_BUFFER,
            zstd::stream::read::Decoder::new(raw)?,
        )),
    })
}

/// Where the chain ends in one file: the last line that verifies, and the bytes after it.
#[derive(Debug)]
pub(crate) struct Tail {
    pub last: Option<Verified>,
    /// Bytes after the last valid line: a line torn by a crash, or nothing.
    pub region: Vec<u8>,
}

/// Why the end of a file could not be read.
#[derive(Debug)]
pub(crate) enum TailError {
    Io(io::Error),
    /// More than `max_region` bytes after the last valid line.
    TooLong {
        bytes: u64,
    },
}

/// Finds the last valid line of `file`, reading backwards at most `max_region` bytes past it
/// (a compacted file, closed and never torn, is read forwards to its last line).
pub(crate) fn scan_tail(
    file: &LogFile,
    key: &AuditKey,
    max_region: usize,
) -> Result<Tail, TailError> {
    match file.storage {
        Storage::Plain => scan_plain_tail(&file.path, key, max_region),
        Storage::Zstd => scan_compacted_tail(file, key),
    }
}

/// The last line of a compacted file; anything after it, or a last line that does not
/// verify, is reported as the region after the last valid line.
fn scan_compacted_tail(file: &LogFile, key: &AuditKey) -> Result<Tail, TailError> {
    let mut reader = open_reader(file).map_err(TailError::Io)?;
    let mut last = None;
    let mut region = Vec::new();
    while let Some(line) = read_line(&mut reader).map_err(TailError::Io)? {
        if line.terminated {
            last = Some(line);
        } else {
            region = line.bytes;
        }
    }
    let Some(last) = last else {
        return Ok(Tail { last: None, region });
    };
    match line::check(&last.bytes, key) {
        Checked::Valid(verified) if !last.oversized => Ok(Tail {
            last: Some(verified),
            region,
        }),
        _ => Err(TailError::TooLong {
            bytes: last.len + region.len() as u64,
        }),
    }
}

fn scan_plain_tail(path: &Path, key: &AuditKey, max_region: usize) -> Result<Tail, TailError> {
    let mut file = File::open(path).map_err(TailError::Io)?;
    let len = file.metadata().map_err(TailError::Io)?.len();
    // A window that holds the whole region plus the valid line before it.
    let window = len.min((max_region + MAX_LINE + 1) as u64);
    let window_start = len - window;
    file.seek(SeekFrom::Start(window_start))
        .map_err(TailError::Io)?;
    let mut buf = Vec::with_capacity(window as usize);
    file.take(window)
        .read_to_end(&mut buf)
        .map_err(TailError::Io)?;

    // Everything after the last newline is an unterminated (torn) line.
    let mut cursor = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    loop {
        let region_len = buf.len() - cursor;
        if region_len > max_region {
            return Err(TailError::TooLong {
                bytes: region_len as u64,
            });
        }
        if cursor == 0 {
            if window_start > 0 {
                // The window began inside a line we could not see whole.
                return Err(TailError::TooLong {
                    bytes: region_len as u64,
                });
            }
            return Ok(Tail {
                last: None,
                region: buf,
            });
        }
        let line_end = cursor - 1; // the newline
        let line_start = buf[..line_end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        if (line_start > 0 || window_start == 0)
            && let Checked::Valid(verified) = line::check(&buf[line_start..line_end], key)
        {
            return Ok(Tail {
                last: Some(verified),
                region: buf.split_off(cursor),
            });
        }
        cursor = line_start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_others_are_ignored() {
        let day = NaiveDate::from_ymd_opt(2026, 7, 1).expect("date");
        assert_eq!(file_name(day), "audit-2026-07-01.jsonl");
        assert_eq!(
            stored_name(day, Storage::Zstd),
            "audit-2026-07-01.jsonl.zst"
        );
        assert_eq!(
            parse_file_name("audit-2026-07-01.jsonl"),
            Some((day, Storage::Plain))
        );
        assert_eq!(
            parse_file_name("audit-2026-07-01.jsonl.zst"),
            Some((day, Storage::Zstd))
        );
        for other in [
            "audit-2026-7-1.jsonl",
            "audit.head",
            "audit-2026-02-30.jsonl",
            ".audit-2026-07-01.jsonl.zst.tmp",
            "audit-2026-07-01.jsonl.zst.tmp",
            "audit-2026-07-01.zst",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn lines_are_read_with_their_ends() {
        let data = b"one\ntwo\nthr";
        let mut reader = io::BufReader::with_capacity(2, &data[..]);
        let mut lines = Vec::new();
        while let Some(line) = read_line(&mut reader).expect("read") {
            lines.push((
                String::from_utf8(line.bytes).expect("utf8"),
                line.len,
                line.terminated,
            ));
        }
        assert_eq!(
            lines,
            vec![
                ("one".into(), 4, true),
                ("two".into(), 4, true),
                ("thr".into(), 3, false)
            ]
        );
    }
}

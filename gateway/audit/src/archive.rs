//! Days that left the log directory, and the manifest `audit.archive` that keeps the chain
//! verifiable across them.
//!
//! A closed day past the retention moves to the archive directory, or is handed to the
//! operator's command (which may copy it to object storage, after which it is removed here).
//! Before it leaves, every line of it is checked (each seal, each link of the chain, from
//! where the previous archived day ended) and an entry is added to the manifest: the day,
//! where it went, the seq and MAC at both of its ends, and the length and SHA-256 of the
//! stored file. Each entry is a line sealed with the audit key under a domain of its own, so
//! an entry can be neither forged nor passed off as a record or a checkpoint. `audit verify`
//! steps over a day it cannot read (handed to a command) by its entry and checks that the
//! chain runs on; a day the manifest puts in the archive directory that is not there is
//! reported as removed.
//!
//! The entry is written before the day leaves, so a crash in between leaves a day that is
//! both in the manifest and still here: the next maintenance finishes the move.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::key::AuditKey;
use crate::line::{self, GENESIS, Tag};

/// The manifest of the days that left the log directory.
pub(crate) const MANIFEST_FILE: &str = "audit.archive";
/// Where the manifest is written before it replaces the old one.
const MANIFEST_TMP_FILE: &str = "audit.archive.tmp";
/// The domain prefix of a manifest entry's MAC.
const MANIFEST_DOMAIN: &[u8] = b"gerbang-audit-archive\n";

/// Where an archived day went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// Moved to the archive directory, where `audit verify` reads it.
    Dir,
    /// Handed to the operator's archive command, then removed here: `audit verify` cannot
    /// read it and steps over it by its manifest entry.
    Command,
}

/// One archived day, as the manifest states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub day: NaiveDate,
    /// The stored file's name (`audit-YYYY-MM-DD.jsonl.zst`).
    pub file: String,
    pub to: Destination,
    /// The `seq` of its first and last line; none for a day file without lines.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The `prev` its first line chains from, and the MAC of its last line (the same when it
    /// has no lines), hex.
    pub first_prev: String,
    pub last_mac: String,
    /// Lines that verified and chained.
    pub lines: u64,
    /// Length and SHA-256 of the stored (compressed) file.
    pub bytes: u64,
    pub sha256: String,
    /// When it was archived (RFC 3339, WIB).
    pub time: String,
}

impl Entry {
    /// The `seq` and `prev` the day after it must start with.
    pub fn next(&self) -> Option<(u64, Tag)> {
        let mut mac = [0u8; 32];
        hex::decode_to_slice(&self.last_mac, &mut mac).ok()?;
        let next = match self.last_seq {
            Some(last) => last + 1,
            None => self.first_seq.unwrap_or(0),
        };
        Some((next, mac))
    }

    /// The `seq` and `prev` it starts from.
    pub fn start(&self) -> Option<(Option<u64>, Tag)> {
        let mut prev = [0u8; 32];
        hex::decode_to_slice(&self.first_prev, &mut prev).ok()?;
        Some((self.first_seq, prev))
    }
}

/// The archive manifest, in day order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub entries: Vec<Entry>,
}

/// Why the manifest could not be read.
#[derive(Debug)]
pub(crate) enum ManifestError {
    Io(io::Error),
    /// This line (from 1) does not verify with the key, or is not an entry.
    Invalid {
        line: u64,
    },
}

impl Manifest {
    /// Reads `dir`'s manifest, checking every entry's seal; empty when there is none.
    pub fn read(dir: &Path, key: &AuditKey) -> Result<Self, ManifestError> {
        let text = match std::fs::read(dir.join(MANIFEST_FILE)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ManifestError::Io(e)),
        };
        let mut entries = Vec::new();
        for (i, bytes) in text.split_inclusive(|&b| b == b'\n').enumerate() {
            let entry: Entry = line::unseal_object(bytes, key, MANIFEST_DOMAIN)
                .ok_or(ManifestError::Invalid { line: i as u64 + 1 })?;
            entries.push(entry);
        }
        Ok(Self { entries })
    }

    /// Reads `dir`'s manifest without checking the seals (reports never check them); lines
    /// that are not entries are left out.
    pub fn read_unchecked(dir: &Path) -> io::Result<Self> {
        let text = match std::fs::read(dir.join(MANIFEST_FILE)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        Ok(Self {
            entries: text
                .split(|&b| b == b'\n')
                .filter_map(|bytes| serde_json::from_slice(bytes).ok())
                .collect(),
        })
    }

    /// Where the next day to archive must start: after the last archived day, or at the very
    /// beginning of the log.
    pub fn next(&self) -> Option<(u64, Tag)> {
        match self.entries.last() {
            Some(last) => last.next(),
            None => Some((0, GENESIS)),
        }
    }

    /// Replaces the manifest in `dir` (write, fsync, rename, fsync the directory).
    pub fn write(&self, dir: &Path, key: &AuditKey) -> io::Result<()> {
        let mut text = Vec::new();
        for entry in &self.entries {
            text.extend_from_slice(&line::seal_object(entry, key, MANIFEST_DOMAIN));
        }
        let tmp = dir.join(MANIFEST_TMP_FILE);
        let mut file = File::create(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(MANIFEST_FILE))?;
        sync_dir(dir)
    }
}

/// Length and SHA-256 (hex) of a file's bytes.
pub(crate) fn file_digest(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((len, hex::encode(sha.finalize())));
        }
        len += n as u64;
        sha.update(&buf[..n]);
    }
}

/// Makes a directory's entries durable (a created, renamed or removed file).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Where the archive manifest of `dir` is.
pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(day: u32, first: u64, last: u64) -> Entry {
        Entry {
            day: NaiveDate::from_ymd_opt(2026, 3, day).expect("date"),
            file: format!("audit-2026-03-{day:02}.jsonl.zst"),
            to: Destination::Dir,
            first_seq: Some(first),
            last_seq: Some(last),
            first_prev: "00".repeat(32),
            last_mac: "ab".repeat(32),
            lines: last - first + 1,
            bytes: 10,
            sha256: "cd".repeat(32),
            time: "t".into(),
        }
    }

    #[test]
    fn a_manifest_round_trips_and_an_edited_entry_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = AuditKey::from_material(&[9u8; 32], "t").expect("key");
        assert_eq!(
            Manifest::read(dir.path(), &key).expect("empty").next(),
            Some((0, GENESIS))
        );
        let manifest = Manifest {
            entries: vec![entry(1, 0, 9), entry(2, 10, 19)],
        };
        manifest.write(dir.path(), &key).expect("write");
        let read = Manifest::read(dir.path(), &key).expect("read");
        assert_eq!(read, manifest);
        assert_eq!(read.next(), Some((20, [0xab; 32])));

        let path = manifest_path(dir.path());
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("\"last_seq\":19", "\"last_seq\":29")).expect("edit");
        assert!(matches!(
            Manifest::read(dir.path(), &key),
            Err(ManifestError::Invalid { line: 2 })
        ));
        // Reports read it unchecked.
        assert_eq!(
            Manifest::read_unchecked(dir.path())
                .expect("read")
                .entries
                .len(),
            2
        );
        let other = AuditKey::from_material(&[8u8; 32], "o").expect("key");
        std::fs::write(&path, text).expect("restore");
        assert!(matches!(
            Manifest::read(dir.path(), &other),
            Err(ManifestError::Invalid { line: 1 })
        ));
    }
}

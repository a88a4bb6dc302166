//! `gerbang audit verify`: walks every day file in order, checks each line's MAC and its place
//! in the chain, compares the end with the checkpoint, and names the first bad record.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::archive::{Destination, Entry, Manifest, ManifestError, manifest_path};
use crate::files::{self, HEAD_FILE, Line, LogFile, Storage};
use crate::key::AuditKey;
use crate::line::{self, Checked, GENESIS, Head, Tag, Verified};

/// Why a directory could not be verified at all (not tampering: that is a [`Problem`]).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Days were moved to an archive directory, and none was given to read them from.
    #[error(
        "the archive manifest says {file} was moved to the archive directory: give it \
         (`--archive-dir`, or `archive_dir` in the configuration's [audit])"
    )]
    ArchiveNotGiven { file: String },
}

/// A line of the log: its file, its line number (from 1) and the `seq` it states, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: u64,
    pub seq: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.file, self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        Ok(())
    }
}

/// What is wrong with the first bad record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A line that states the expected place in the chain but does not verify: changed after
    /// it was written (or written without the key).
    Edited,
    /// Records are missing: the chain jumps over one or more sequence numbers.
    Removed,
    /// A line that is not part of the chain: a forged line between two records that chain, or
    /// a copy of an earlier record.
    Inserted,
    /// Records out of order: a later record stands before the one expected.
    Reordered,
    /// The checkpoint `audit.head` is missing, does not verify, or names a record the log does
    /// not end with: records were removed from the end.
    HeadMismatch,
}

impl ProblemKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Edited => "edited record",
            Self::Removed => "removed records",
            Self::Inserted => "inserted record",
            Self::Reordered => "reordered records",
            Self::HeadMismatch => "checkpoint mismatch",
        }
    }
}

/// The first bad record and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub at: Location,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}: {}",
            self.kind.describe(),
            self.at,
            self.detail
        )
    }
}

/// Things verify found that are not tampering but that an auditor should see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Note {
    /// The newest file ends in a line cut short by a crash. Only a record whose `append` had
    /// not returned can be cut, so no answered request's record is lost.
    TornTail { at: Location, bytes: u64 },
    /// Bytes a crash left (a torn line) that the writer stepped over on restart; its `open`
    /// event at `by` states their length and SHA-256, which match.
    RecoveredTornBytes {
        at: Location,
        bytes: u64,
        by: Location,
    },
    /// The writer started on a log whose checkpoint was missing (someone removed
    /// `audit.head`); truncation before that point cannot be told from the checkpoint.
    StartedWithoutCheckpoint { at: Location },
    /// A day file that is not a regular file; it was not read.
    NotARegularFile { file: String },
    /// A day handed to the archive command: not read here, stepped over by its manifest
    /// entry (the chain is checked to run on across it).
    HandedOver {
        file: String,
        lines: u64,
        sha256: String,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TornTail { at, bytes } => write!(
                f,
                "torn tail at {at} ({bytes} bytes): a crash cut the last line while it was written; \
                 no record of an answered request is lost"
            ),
            Self::RecoveredTornBytes { at, bytes, by } => write!(
                f,
                "{bytes} torn bytes at {at} from an earlier crash, stepped over by the writer's open event at {by}"
            ),
            Self::StartedWithoutCheckpoint { at } => write!(
                f,
                "the writer started without a checkpoint at {at} (audit.head had been removed)"
            ),
            Self::NotARegularFile { file } => write!(f, "{file} is not a regular file; not read"),
            Self::HandedOver {
                file,
                lines,
                sha256,
            } => write!(
                f,
                "{file} ({lines} lines, SHA-256 {sha256}) was handed to the archive command: \
                 not read here; its manifest entry chains on"
            ),
        }
    }
}

/// One day file's part of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    pub file: String,
    /// Lines that verified and chained.
    pub lines: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

/// The outcome of [`verify`]: intact when `problem` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub dir: PathBuf,
    /// The gateway instances its verified lines name, sorted (one, unless it was renamed).
    pub instances: Vec<String>,
    pub files: Vec<FileSummary>,
    /// Decision records that verified and chained.
    pub records: u64,
    /// `open` events (one per writer start) that verified and chained.
    pub open_events: u64,
    /// The last chained line's `seq`.
    pub last_seq: Option<u64>,
    /// The `seq` the checkpoint names.
    pub checkpoint: Option<u64>,
    pub notes: Vec<Note>,
    /// The first bad record; verification stops there.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// Nothing read yet.
    fn empty(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            instances: Vec::new(),
            files: Vec::new(),
            records: 0,
            open_events: 0,
            last_seq: None,
            checkpoint: None,
            notes: Vec::new(),
            problem: None,
        }
    }

    /// No tampering found (notes may still be present).
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "decision log {}: {} files, {} records and {} open events",
            self.dir.display(),
            self.files.len(),
            self.records,
            self.open_events
        )?;
        if let Some(last) = self.last_seq {
            write!(f, ", seq 0..={last}")?;
        }
        if let Some(checkpoint) = self.checkpoint {
            write!(f, ", checkpoint at seq {checkpoint}")?;
        }
        writeln!(f)?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        match &self.problem {
            Some(problem) => writeln!(f, "FAILED: {problem}"),
            None => writeln!(f, "intact: every record verifies and the chain is whole"),
        }
    }
}

/// Verifies the log in `dir` with `key`.
///
/// What it detects, and what it cannot, is set out in `docs/audit.md`: in short, any edited,
/// removed, inserted or reordered record, a file removed or rewritten without the key, and
/// records removed from the end up to the last checkpoint; not the removal of the last records
/// written after the last checkpoint (at most one fsync interval), nor anything done by
/// someone who holds the key.
pub fn verify(dir: &Path, key: &AuditKey) -> Result<VerifyReport, VerifyError> {
    verify_with_archive(dir, None, key)
}

/// [`verify`] over the live days in `dir` and the days moved to `archive`, as one chain;
/// days handed to the archive command are stepped over by their manifest entries.
pub fn verify_with_archive(
    dir: &Path,
    archive: Option<&Path>,
    key: &AuditKey,
) -> Result<VerifyReport, VerifyError> {
    let unreadable = |path: &Path, source| VerifyError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let all = files::list_with_archive(dir, archive).map_err(|e| {
        let path = match archive {
            Some(archive) if dir.is_dir() => archive,
            _ => dir,
        };
        unreadable(path, e)
    })?;
    let mut report = VerifyReport::empty(dir);
    let mut readable = Vec::new();
    for file in all {
        if file.regular {
            readable.push(file);
        } else {
            report
                .notes
                .push(Note::NotARegularFile { file: file.shown() });
        }
    }
    let head_path = dir.join(HEAD_FILE);
    let head = match std::fs::read(&head_path) {
        Ok(bytes) => Some(Head::decode(&bytes, key)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(unreadable(&head_path, e)),
    };
    let head_seq = head.as_ref().and_then(|h| h.as_ref().and_then(|h| h.seq));
    report.checkpoint = head_seq;

    let manifest = match Manifest::read(dir, key) {
        Ok(manifest) => manifest,
        Err(ManifestError::Io(e)) => return Err(unreadable(&manifest_path(dir), e)),
        Err(ManifestError::Invalid { line }) => {
            report.problem = Some(Problem {
                kind: ProblemKind::Edited,
                at: Location {
                    file: crate::archive::MANIFEST_FILE.to_owned(),
                    line,
                    seq: None,
                },
                detail: "the archive manifest entry does not verify with the audit key: \
                         it was changed after it was written"
                    .to_owned(),
            });
            return Ok(report);
        }
    };
    // Archived days that cannot be read here: stepped over by their entries, in day order.
    let mut absent = Vec::new();
    for entry in manifest.entries {
        if readable.iter().any(|f| f.day == entry.day) {
            continue;
        }
        if entry.to == Destination::Dir && archive.is_none() {
            return Err(VerifyError::ArchiveNotGiven { file: entry.file });
        }
        absent.push(entry);
    }
    absent.sort_by_key(|e| e.day);

    let mut walker = Walker::new(key, &readable, report, head.clone().flatten(), (0, GENESIS));
    walker.archive = archive;
    walker
        .walk_all(&absent, true)
        .map_err(|(path, e)| unreadable(&path, e))?;
    let last_at = walker.last_at.take();
    let mut report = walker.report;
    if report.problem.is_none() {
        report.problem = check_head(head, &report, last_at);
    }
    Ok(report)
}

/// The chain ends of one closed day, checked on its own before it is archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The MAC of its last line (`from`'s when it has none).
    pub last_mac: Tag,
    pub lines: u64,
}

/// Why a closed day cannot be archived.
#[derive(Debug)]
pub(crate) enum SegmentError {
    Io(io::Error),
    /// The first thing wrong with it, as `audit verify` would name it.
    Problem(Problem),
}

/// Checks one closed day file on its own: every line verifies and chains on from `from`
/// (the `seq` and `prev` its first line must have), and it does not end in a torn line.
pub(crate) fn check_segment(
    file: &LogFile,
    key: &AuditKey,
    from: (u64, Tag),
) -> Result<Segment, SegmentError> {
    let files = [file.clone()];
    let report = VerifyReport::empty(&file.path);
    let mut walker = Walker::new(key, &files, report, None, from);
    walker
        .walk_all(&[], false)
        .map_err(|(_, e)| SegmentError::Io(e))?;
    if let Some(problem) = walker.report.problem {
        return Err(SegmentError::Problem(problem));
    }
    let summary = walker.report.files.first();
    Ok(Segment {
        first_seq: summary.and_then(|s| s.first_seq),
        last_seq: summary.and_then(|s| s.last_seq),
        last_mac: walker.expected_prev,
        lines: summary.map_or(0, |s| s.lines),
    })
}

/// The end of the log against the checkpoint.
fn check_head(
    head: Option<Option<Head>>,
    report: &VerifyReport,
    last_at: Option<Location>,
) -> Option<Problem> {
    let head_at = || Location {
        file: HEAD_FILE.to_owned(),
        line: 1,
        seq: None,
    };
    let head = match head {
        None if report.last_seq.is_none() => return None,
        None => {
            return Some(Problem {
                kind: ProblemKind::HeadMismatch,
                at: head_at(),
                detail:
                    "the checkpoint file is missing; records may have been removed from the end"
                        .to_owned(),
            });
        }
        Some(None) => {
            return Some(Problem {
                kind: ProblemKind::HeadMismatch,
                at: head_at(),
                detail: "the checkpoint does not verify with this key".to_owned(),
            });
        }
        Some(Some(head)) => head,
    };
    let checkpoint = head.seq?;
    match report.last_seq {
        Some(last) if last >= checkpoint => None,
        last => Some(Problem {
            kind: ProblemKind::HeadMismatch,
            at: last_at.unwrap_or_else(head_at),
            detail: format!(
                "the checkpoint says record {checkpoint} (in {}) was written, but the log ends {}: \
                 records were removed from the end",
                head.file,
                match last {
                    Some(last) => format!("at record {last}"),
                    None => "before its first record".to_owned(),
                }
            ),
        }),
    }
}

/// A run of lines that do not verify, waiting for the next good line to tell what they are.
struct Region {
    first: Location,
    first_claim: Option<u64>,
    file_index: usize,
    bytes: u64,
    sha: Sha256,
    /// False once a line was too long to hash whole: then it cannot be a torn record.
    hashable: bool,
    ends_with_newline: bool,
}

struct Walker<'a> {
    key: &'a AuditKey,
    files: &'a [LogFile],
    lines: Lines<'a>,
    expected_seq: u64,
    expected_prev: Tag,
    last_at: Option<Location>,
    report: VerifyReport,
    head: Option<Head>,
    /// Where days moved to the archive directory are.
    archive: Option<&'a Path>,
}

/// Why lines could not be read: the file (verification stops, nothing is known), or a
/// compacted file that does not decompress (a finding: it was altered or damaged).
enum ReadFailure {
    Io(PathBuf, io::Error),
    Damaged {
        file_index: usize,
        line_no: u64,
        error: io::Error,
    },
}

struct Item {
    file_index: usize,
    line_no: u64,
    line: Line,
}

impl Item {
    fn check(&self, key: &AuditKey) -> Checked {
        if self.line.oversized {
            return Checked::Invalid { claimed_seq: None };
        }
        line::check(&self.line.bytes, key)
    }
}

impl<'a> Walker<'a> {
    fn new(
        key: &'a AuditKey,
        files: &'a [LogFile],
        report: VerifyReport,
        head: Option<Head>,
        (expected_seq, expected_prev): (u64, Tag),
    ) -> Self {
        Self {
            key,
            files,
            lines: Lines::new(files, 0..0),
            expected_seq,
            expected_prev,
            last_at: None,
            report,
            head,
            archive: None,
        }
    }

    fn at(&self, item: &Item, seq: Option<u64>) -> Location {
        Location {
            file: self.files[item.file_index].shown(),
            line: item.line_no,
            seq,
        }
    }

    /// Walks every file, stepping over the `absent` days (archived, not readable here) where
    /// they fall. `torn_tail` allows the last file to end in a line cut by a crash (a live
    /// log; never a closed day).
    fn walk_all(&mut self, absent: &[Entry], torn_tail: bool) -> Result<(), (PathBuf, io::Error)> {
        let mut start = 0;
        for entry in absent {
            let end = self.files.partition_point(|f| f.day < entry.day);
            if end > start {
                self.walk_files(start..end, false)?;
                if self.report.problem.is_some() {
                    return Ok(());
                }
            }
            self.step_over(entry);
            if self.report.problem.is_some() {
                return Ok(());
            }
            start = end;
        }
        if start < self.files.len() {
            self.walk_files(start..self.files.len(), torn_tail)?;
        }
        Ok(())
    }

    /// A day that left the log directory and is not readable here, by its manifest entry.
    fn step_over(&mut self, entry: &Entry) {
        let shown = match (entry.to, self.archive) {
            (Destination::Dir, Some(archive)) => archive.join(&entry.file).display().to_string(),
            _ => entry.file.clone(),
        };
        let at = Location {
            file: shown.clone(),
            line: 1,
            seq: entry.first_seq,
        };
        if entry.to == Destination::Dir {
            self.fail(
                ProblemKind::Removed,
                at,
                "the archive manifest says this day was moved to the archive directory, \
                 but it is not there"
                    .to_owned(),
            );
            return;
        }
        let (Some((first, prev)), Some((next_seq, next_prev))) = (entry.start(), entry.next())
        else {
            self.fail(
                ProblemKind::Edited,
                at,
                "its archive manifest entry is malformed".to_owned(),
            );
            return;
        };
        let first = first.unwrap_or(next_seq);
        if first != self.expected_seq || prev != self.expected_prev {
            let detail = if first > self.expected_seq {
                format!(
                    "records {} to {} are missing before this archived day",
                    self.expected_seq,
                    first - 1
                )
            } else {
                format!(
                    "this archived day does not continue the chain where record {} was expected",
                    self.expected_seq
                )
            };
            self.fail(ProblemKind::Removed, at, detail);
            return;
        }
        self.report.notes.push(Note::HandedOver {
            file: shown.clone(),
            lines: entry.lines,
            sha256: entry.sha256.clone(),
        });
        if let Some(last) = entry.last_seq {
            self.report.last_seq = Some(last);
            self.last_at = Some(Location {
                file: shown,
                line: entry.lines,
                seq: Some(last),
            });
        }
        self.expected_seq = next_seq;
        self.expected_prev = next_prev;
    }

    fn walk_files(
        &mut self,
        range: std::ops::Range<usize>,
        torn_tail: bool,
    ) -> Result<(), (PathBuf, io::Error)> {
        let end = range.end;
        self.lines = Lines::new(self.files, range);
        match self.walk(end, torn_tail) {
            Ok(()) => Ok(()),
            Err(ReadFailure::Io(path, e)) => Err((path, e)),
            Err(ReadFailure::Damaged {
                file_index,
                line_no,
                error,
            }) => {
                let at = Location {
                    file: self.files[file_index].shown(),
                    line: line_no,
                    seq: None,
                };
                self.fail(
                    ProblemKind::Edited,
                    at,
                    format!(
                        "the compacted file does not decompress from this line on ({error}): \
                         it was altered or damaged"
                    ),
                );
                Ok(())
            }
        }
    }

    fn fail(&mut self, kind: ProblemKind, at: Location, detail: String) {
        self.report.problem = Some(Problem { kind, at, detail });
    }

    /// Walks the lines of the current run of files, which ends before file `end`.
    fn walk(&mut self, end: usize, torn_tail: bool) -> Result<(), ReadFailure> {
        let mut region: Option<Region> = None;
        while let Some(item) = self.lines.next()? {
            let checked = item.check(self.key);
            let verified = match checked {
                Checked::Invalid { claimed_seq } => {
                    if let Some(r) = &region
                        && r.file_index != item.file_index
                    {
                        // Bad lines end a file: only the newest file may end in a crash.
                        self.fail_region(region.take(), false);
                        return Ok(());
                    }
                    let at = self.at(&item, claimed_seq);
                    let r = region.get_or_insert_with(|| Region {
                        first: at,
                        first_claim: claimed_seq,
                        file_index: item.file_index,
                        bytes: 0,
                        sha: Sha256::new(),
                        hashable: true,
                        ends_with_newline: false,
                    });
                    r.bytes += item.line.len;
                    r.hashable &= !item.line.oversized;
                    r.sha.update(&item.line.bytes);
                    if item.line.terminated {
                        r.sha.update(b"\n");
                    }
                    r.ends_with_newline = item.line.terminated;
                    continue;
                }
                Checked::Valid(v) => v,
            };
            let at = self.at(&item, Some(verified.seq));
            let chains = verified.seq == self.expected_seq && verified.prev == self.expected_prev;
            if let Some(r) = region.take() {
                let recovered = chains
                    && r.file_index == item.file_index
                    && r.hashable
                    && verified.open.as_ref().is_some_and(|open| {
                        open.torn_bytes == r.bytes
                            && open.torn_sha256.as_deref()
                                == Some(hex::encode(r.sha.clone().finalize()).as_str())
                    });
                if recovered {
                    self.report.notes.push(Note::RecoveredTornBytes {
                        at: r.first,
                        bytes: r.bytes,
                        by: at.clone(),
                    });
                } else {
                    self.fail_region(Some(r), chains);
                    return Ok(());
                }
            } else if verified.open.as_ref().is_some_and(|o| o.torn_bytes > 0) && chains {
                self.fail(
                    ProblemKind::Removed,
                    at,
                    "the writer's open event states torn bytes before it that are gone".to_owned(),
                );
                return Ok(());
            } else if !chains {
                self.fail_chain(&verified, at)?;
                return Ok(());
            }
            self.accept(&item, &verified, at);
            if self.report.problem.is_some() {
                return Ok(());
            }
        }
        if let Some(r) = region {
            let last_file = torn_tail && r.file_index + 1 == end;
            if last_file && !r.ends_with_newline {
                self.report.notes.push(Note::TornTail {
                    at: r.first,
                    bytes: r.bytes,
                });
            } else {
                self.fail_region(Some(r), false);
            }
        }
        Ok(())
    }

    /// A run of bad lines that is not a recovered crash: the first of them is the bad record.
    fn fail_region(&mut self, region: Option<Region>, next_chains: bool) {
        let Some(r) = region else { return };
        let (kind, detail) = if next_chains {
            (
                ProblemKind::Inserted,
                "a line that does not verify stands between two records that chain".to_owned(),
            )
        } else if r.first_claim == Some(self.expected_seq) {
            (
                ProblemKind::Edited,
                format!(
                    "record {} does not verify with the audit key: it was changed after it was written",
                    self.expected_seq
                ),
            )
        } else if r.first_claim.is_some() {
            (
                ProblemKind::Edited,
                format!(
                    "the line does not verify with the audit key where record {} was expected",
                    self.expected_seq
                ),
            )
        } else {
            (
                ProblemKind::Edited,
                format!(
                    "the line is not a record of this log where record {} was expected",
                    self.expected_seq
                ),
            )
        };
        self.fail(kind, r.first, detail);
    }

    /// A valid line in the wrong place.
    fn fail_chain(&mut self, v: &Verified, at: Location) -> Result<(), ReadFailure> {
        let expected = self.expected_seq;
        if v.seq < expected {
            self.fail(
                ProblemKind::Inserted,
                at,
                format!(
                    "a copy of record {} where record {expected} was expected",
                    v.seq
                ),
            );
        } else if v.seq == expected {
            self.fail(
                ProblemKind::Inserted,
                at,
                format!(
                    "record {expected} verifies but does not chain to the record before it: \
                     written by another log with the same key, or forged by a key holder"
                ),
            );
        } else {
            let next_is_expected = match self.lines.peek()? {
                Some(next) => match next.check(self.key) {
                    Checked::Valid(n) => n.seq == expected && n.prev == self.expected_prev,
                    Checked::Invalid { .. } => false,
                },
                None => false,
            };
            if next_is_expected {
                self.fail(
                    ProblemKind::Reordered,
                    at,
                    format!("record {} stands before record {expected}", v.seq),
                );
            } else {
                let missing = if v.seq - expected == 1 {
                    format!("record {expected} is missing")
                } else {
                    format!("records {expected} to {} are missing", v.seq - 1)
                };
                self.fail(
                    ProblemKind::Removed,
                    at,
                    format!("{missing} before this one"),
                );
            }
        }
        Ok(())
    }

    fn accept(&mut self, item: &Item, v: &Verified, at: Location) {
        let name = &self.files[item.file_index].name;
        if self.report.files.last().is_none_or(|f| f.file != at.file) {
            self.report.files.push(FileSummary {
                file: at.file.clone(),
                lines: 0,
                first_seq: Some(v.seq),
                last_seq: None,
            });
        }
        if let Some(summary) = self.report.files.last_mut() {
            summary.lines += 1;
            summary.last_seq = Some(v.seq);
        }
        if let Some(instance) = &v.instance
            && let Err(at) = self.report.instances.binary_search(instance)
        {
            self.report.instances.insert(at, instance.clone());
        }
        match &v.open {
            Some(open) => {
                self.report.open_events += 1;
                if open.checkpoint == "missing" {
                    self.report
                        .notes
                        .push(Note::StartedWithoutCheckpoint { at: at.clone() });
                }
            }
            None => self.report.records += 1,
        }
        if let Some(head) = &self.head
            && head.seq == Some(v.seq)
            && (head.last_mac != hex::encode(v.mac) || &head.file != name)
        {
            self.fail(
                ProblemKind::HeadMismatch,
                at.clone(),
                format!(
                    "the checkpoint names record {} in {} with another MAC",
                    v.seq, head.file
                ),
            );
        }
        self.expected_seq = v.seq + 1;
        self.expected_prev = v.mac;
        self.report.last_seq = Some(v.seq);
        self.last_at = Some(at);
    }
}

/// Lines of a run of files in order, with one line of lookahead.
struct Lines<'a> {
    files: &'a [LogFile],
    index: usize,
    end: usize,
    reader: Option<files::Reader>,
    line_no: u64,
    peeked: Option<Option<Item>>,
}

impl<'a> Lines<'a> {
    fn new(files: &'a [LogFile], range: std::ops::Range<usize>) -> Self {
        Self {
            files,
            index: range.start,
            end: range.end,
            reader: None,
            line_no: 0,
            peeked: None,
        }
    }

    fn next(&mut self) -> Result<Option<Item>, ReadFailure> {
        match self.peeked.take() {
            Some(item) => Ok(item),
            None => self.read(),
        }
    }

    fn peek(&mut self) -> Result<Option<&Item>, ReadFailure> {
        if self.peeked.is_none() {
            let item = self.read()?;
            self.peeked = Some(item);
        }
        Ok(self.peeked.as_ref().and_then(Option::as_ref))
    }

    fn read(&mut self) -> Result<Option<Item>, ReadFailure> {
        loop {
            if self.index >= self.end {
                return Ok(None);
            }
            let Some(file) = self.files.get(self.index) else {
                return Ok(None);
            };
            let reader = match &mut self.reader {
                Some(reader) => reader,
                None => {
                    let reader = files::open_reader(file)
                        .map_err(|e| ReadFailure::Io(file.path.clone(), e))?;
                    self.line_no = 0;
                    self.reader.insert(reader)
                }
            };
            let read = files::read_line(reader).map_err(|error| match file.storage {
                Storage::Plain => ReadFailure::Io(file.path.clone(), error),
                Storage::Zstd => ReadFailure::Damaged {
                    file_index: self.index,
                    line_no: self.line_no + 1,
                    error,
                },
            })?;
            match read {
                Some(line) => {
                    self.line_no += 1;
                    return Ok(Some(Item {
                        file_index: self.index,
                        line_no: self.line_no,
                        line,
                    }));
                }
                None => {
                    self.reader = None;
                    self.index += 1;
                }
            }
        }
    }
}

//! Several instances' logs read as one account: `audit verify` gives one verdict per chain,
//! `report` one semester report over all of them, nothing counted twice (docs/audit.md,
//! "Several instances").
//!
//! Each gateway instance writes its own chain in its own directory. Directories are told
//! apart by their canonical path (the same directory named twice, or through a symbolic
//! link, is read once) and chains by their [`ChainId`]: two directories holding the same
//! chain are copies, and two different chains whose records name the same instance are two
//! writers under one name; a report refuses both rather than guess which copy is whole.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::Manifest;
use crate::files;
use crate::key::AuditKey;
use crate::verify::{VerifyError, VerifyReport, verify_with_archive};

/// One instance's log directory and, when it has one, its archive directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogDir {
    pub dir: PathBuf,
    pub archive: Option<PathBuf>,
}

impl LogDir {
    pub fn new(dir: impl Into<PathBuf>, archive: Option<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            archive,
        }
    }
}

impl fmt::Display for LogDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dir.display())?;
        if let Some(archive) = &self.archive {
            write!(f, " (archive {})", archive.display())?;
        }
        Ok(())
    }
}

/// What identifies a chain: the MAC of its first line (`seq` 0, the first writer's `open`
/// event, which names the instance and the time to the microsecond), or, when the day holding
/// that line has left the directory, the MAC the archive manifest states for that day's last
/// line. Read without the key: `audit verify` is what proves the line genuine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ChainId(String);

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
struct ChainStart<'a> {
    seq: u64,
    #[serde(borrow)]
    mac: &'a str,
}

/// The [`ChainId`] of the log in `log`; `None` for a log without a line yet.
pub fn chain_id(log: &LogDir) -> io::Result<Option<ChainId>> {
    let all = files::list_with_archive(&log.dir, log.archive.as_deref())?;
    if let Some(first) = all.iter().find(|f| f.regular) {
        let mut reader = files::open_reader(first)?;
        if let Some(line) = files::read_line(&mut reader)?
            && let Ok(start) = serde_json::from_slice::<ChainStart<'_>>(&line.bytes)
            && start.seq == 0
        {
            return Ok(Some(ChainId(format!("first line {}", start.mac))));
        }
    }
    let manifest = Manifest::read_unchecked(&log.dir)?;
    Ok(manifest
        .entries
        .iter()
        .find(|e| e.first_seq == Some(0))
        .map(|e| ChainId(format!("first day {} ending {}", e.day, e.last_mac))))
}

/// Why several log directories cannot be read as one account.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The same directory given twice with different archive directories.
    #[error(
        "{dir} is given twice, with different archive directories ({first} and {second}): \
         give each log directory once"
    )]
    ArchivesDiffer {
        dir: PathBuf,
        first: String,
        second: String,
    },
}

/// The directories of `logs`, each once: the same directory (by canonical path) given again
/// is dropped and returned second. A directory that cannot be resolved is kept as given, for
/// the reader to say why it cannot be read.
pub fn distinct(logs: &[LogDir]) -> Result<(Vec<LogDir>, Vec<PathBuf>), FleetError> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut kept: Vec<(PathBuf, Option<PathBuf>, LogDir)> = Vec::new();
    let mut repeated = Vec::new();
    for log in logs {
        let dir = canonical(&log.dir);
        let archive = log.archive.as_deref().map(canonical);
        match kept.iter().find(|(d, _, _)| *d == dir) {
            Some((_, a, _)) if *a == archive => repeated.push(log.dir.clone()),
            Some((_, _, first_log)) => {
                let shown = |l: &LogDir| {
                    l.archive
                        .as_ref()
                        .map_or("none".to_owned(), |a| a.display().to_string())
                };
                return Err(FleetError::ArchivesDiffer {
                    dir: log.dir.clone(),
                    first: shown(first_log),
                    second: shown(log),
                });
            }
            None => kept.push((dir, archive, log.clone())),
        }
    }
    Ok((kept.into_iter().map(|(_, _, l)| l).collect(), repeated))
}

/// One directory's verdict.
#[derive(Debug)]
pub struct ChainVerdict {
    pub log: LogDir,
    pub chain: Option<ChainId>,
    pub outcome: Result<VerifyReport, VerifyError>,
}

/// The whole's verdict, for the exit code of `audit verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every chain verified and is whole.
    Intact,
    /// At least one chain was tampered with. Wins over [`Verdict::NotVerified`]: whoever can
    /// make one directory unreadable must not hide an edit in another behind it.
    Tampered,
    /// No chain was tampered with, but at least one could not be verified.
    NotVerified,
}

/// [`verify_fleet`]'s outcome: one verdict per distinct directory.
#[derive(Debug)]
pub struct FleetVerify {
    pub chains: Vec<ChainVerdict>,
    /// Directories given again (the same canonical path), verified once.
    pub repeated: Vec<PathBuf>,
}

impl FleetVerify {
    pub fn verdict(&self) -> Verdict {
        let tampered = self
            .chains
            .iter()
            .any(|c| c.outcome.as_ref().is_ok_and(|r| !r.is_intact()));
        if tampered {
            Verdict::Tampered
        } else if self.chains.iter().any(|c| c.outcome.is_err()) {
            Verdict::NotVerified
        } else {
            Verdict::Intact
        }
    }

    /// Pairs of directories that hold the same chain (copies of one log).
    fn copies(&self) -> Vec<(&LogDir, &LogDir)> {
        let mut pairs = Vec::new();
        for (i, a) in self.chains.iter().enumerate() {
            for b in &self.chains[i + 1..] {
                if a.chain.is_some() && a.chain == b.chain {
                    pairs.push((&a.log, &b.log));
                }
            }
        }
        pairs
    }

    /// Instances named by more than one chain, with the directories naming them.
    fn shared_instances(&self) -> Vec<(String, Vec<&LogDir>)> {
        let mut names = BTreeSet::new();
        for c in &self.chains {
            if let Ok(report) = &c.outcome {
                names.extend(report.instances.iter().cloned());
            }
        }
        names
            .into_iter()
            .filter_map(|name| {
                let mut seen = BTreeSet::new();
                let chains: Vec<&ChainVerdict> = self
                    .chains
                    .iter()
                    .filter(|c| {
                        c.outcome
                            .as_ref()
                            .is_ok_and(|r| r.instances.contains(&name))
                    })
                    // Copies of one chain are one chain here (noted apart).
                    .filter(|c| c.chain.as_ref().is_none_or(|id| seen.insert(id)))
                    .collect();
                (chains.len() > 1).then(|| (name, chains.iter().map(|c| &c.log).collect()))
            })
            .collect()
    }
}

impl fmt::Display for FleetVerify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, c) in self.chains.iter().enumerate() {
            let instances = match &c.outcome {
                Ok(r) if !r.instances.is_empty() => r.instances.join(", "),
                _ => "unknown".to_owned(),
            };
            let verdict = match &c.outcome {
                Ok(r) if r.is_intact() => "INTACT",
                Ok(_) => "TAMPERED",
                Err(_) => "NOT VERIFIED",
            };
            writeln!(
                f,
                "== chain {} of {}: {} (instance {instances}): {verdict}",
                n + 1,
                self.chains.len(),
                c.log
            )?;
            match &c.outcome {
                Ok(report) => write!(f, "{report}")?,
                Err(e) => writeln!(f, "error: {e}; nothing in it was verified")?,
            }
        }
        for dir in &self.repeated {
            writeln!(
                f,
                "note: {} was given more than once; verified once",
                dir.display()
            )?;
        }
        for (a, b) in self.copies() {
            writeln!(
                f,
                "note: {a} and {b} hold the same chain (copies of one log)"
            )?;
        }
        for (name, logs) in self.shared_instances() {
            let dirs: Vec<String> = logs.iter().map(|l| l.to_string()).collect();
            writeln!(
                f,
                "warning: different chains name instance {name}: {}; each instance must have \
                 a name of its own, and `gerbang report` refuses to add them up",
                dirs.join(" and ")
            )?;
        }
        let summary = match self.verdict() {
            Verdict::Intact => "all chains intact",
            Verdict::Tampered => "TAMPERED: at least one chain failed (named above)",
            Verdict::NotVerified => {
                "NOT VERIFIED: no chain failed, but at least one could not be verified"
            }
        };
        writeln!(f, "== {} directories: {summary}", self.chains.len())
    }
}

/// Verifies the log of each distinct directory in `logs` with `key`, one verdict per chain.
pub fn verify_fleet(logs: &[LogDir], key: &AuditKey) -> Result<FleetVerify, FleetError> {
    let (logs, repeated) = distinct(logs)?;
    let chains = logs
        .into_iter()
        .map(|log| {
            let outcome = verify_with_archive(&log.dir, log.archive.as_deref(), key);
            let chain = chain_id(&log).ok().flatten();
            ChainVerdict {
                log,
                chain,
                outcome,
            }
        })
        .collect();
    Ok(FleetVerify { chains, repeated })
}

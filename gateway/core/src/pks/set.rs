//! The agreements as a set: parsed in parallel, reused from the last load when a file did
//! not change, and checked as a whole (unique numbers, User IDs and SAMs, no IP LAN shared
//! by two User IDs).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::diag::{ConfigError, ConfigErrors, Source, read_file};
use crate::element::Vocabulary;

use super::parse::{Pos, Positions, parse_one};
use super::*;

/// All loaded agreements. Each is shared (`Arc`): a reload reuses the agreements of files
/// whose content did not change, and a snapshot shares them with the one before it.
#[derive(Debug, Clone, Default)]
pub struct PksSet {
    pub agreements: Vec<Arc<Pks>>,
}

/// What parsing each PKS file gave, by path and SHA-256 of its content, with the vocabulary
/// it was parsed against. A reload parses again only the files whose content differs (never
/// judged by modification time, which an editor or `cp -p` can leave unchanged); the others'
/// agreements are taken as they are. A different vocabulary parses everything again.
#[derive(Debug, Clone, Default)]
pub struct PksCache {
    vocab: Option<Vocabulary>,
    files: HashMap<PathBuf, Parsed>,
    parsed: usize,
}

impl PksCache {
    /// How many files the load that made this cache parsed (the others were reused).
    pub fn parsed(&self) -> usize {
        self.parsed
    }

    /// How many files it holds.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether it holds no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// One parsed and individually valid PKS file.
#[derive(Debug, Clone)]
struct Parsed {
    hash: [u8; 32],
    pks: Arc<Pks>,
    positions: Arc<Positions>,
}

/// Where a file comes from: read from disk by the parsing thread, or given (tests, benches).
enum Input<'a> {
    Path(&'a Path),
    Text(&'a Path, &'a str),
}

/// Reads (when needed), hashes and parses every file, on as many threads as there are
/// cores, keeping the files' order. A file whose path and content hash are in `previous`
/// (parsed against the same vocabulary) is not parsed again.
fn parse_in_parallel(
    inputs: &[Input<'_>],
    vocab: &Vocabulary,
    previous: &PksCache,
) -> Vec<Result<(Parsed, bool), ConfigErrors>> {
    let reusable = previous.vocab.as_ref() == Some(vocab);
    let one = |input: &Input<'_>| -> Result<(Parsed, bool), ConfigErrors> {
        let read;
        let (path, text) = match input {
            Input::Path(path) => {
                read = read_file(path)?;
                (*path, read.as_str())
            }
            Input::Text(path, text) => (*path, *text),
        };
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if let Some(cached) = previous
            .files
            .get(path)
            .filter(|c| reusable && c.hash == hash)
        {
            return Ok((cached.clone(), false));
        }
        let (pks, positions) = parse_one(&Source::new(path, text), vocab)?;
        let parsed = Parsed {
            hash,
            pks: Arc::new(pks),
            positions: Arc::new(positions),
        };
        Ok((parsed, true))
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = inputs.len().div_ceil(threads).max(64);
    if inputs.len() <= chunk {
        return inputs.iter().map(one).collect();
    }
    let one = &one;
    std::thread::scope(|scope| {
        let workers: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

impl PksSet {
    /// Loads every `*.toml` file of a directory (sorted by name) and checks the set.
    pub fn load_dir(dir: &Path, vocab: &Vocabulary) -> Result<Self, ConfigErrors> {
        Self::reload_dir(dir, vocab, &PksCache::default()).map(|(set, _)| set)
    }

    /// [`Self::load_dir`], parsing only the files whose content is not in `previous`; also
    /// returns the cache for the next reload. The set is checked as a whole every time.
    pub fn reload_dir(
        dir: &Path,
        vocab: &Vocabulary,
        previous: &PksCache,
    ) -> Result<(Self, PksCache), ConfigErrors> {
        let entries = std::fs::read_dir(dir).map_err(|e| ConfigError {
            file: dir.to_path_buf(),
            line: None,
            column: None,
            field: String::new(),
            message: format!("cannot read the PKS directory: {e}"),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        paths.sort();
        let inputs: Vec<Input<'_>> = paths.iter().map(|p| Input::Path(p)).collect();
        Self::check_all(&inputs, vocab, previous)
    }

    /// Parses and checks a set of `(path, text)` PKS files.
    pub fn parse_all(
        files: &[(PathBuf, String)],
        vocab: &Vocabulary,
    ) -> Result<Self, ConfigErrors> {
        Self::reparse_all(files, vocab, &PksCache::default()).map(|(set, _)| set)
    }

    /// [`Self::parse_all`], parsing only the files whose content is not in `previous`.
    pub fn reparse_all(
        files: &[(PathBuf, String)],
        vocab: &Vocabulary,
        previous: &PksCache,
    ) -> Result<(Self, PksCache), ConfigErrors> {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::Text(p, t)).collect();
        Self::check_all(&inputs, vocab, previous)
    }

    fn check_all(
        inputs: &[Input<'_>],
        vocab: &Vocabulary,
        previous: &PksCache,
    ) -> Result<(Self, PksCache), ConfigErrors> {
        let mut errors = Vec::new();
        let mut agreements = Vec::with_capacity(inputs.len());
        let mut positions = Vec::with_capacity(inputs.len());
        let mut cache = PksCache {
            vocab: Some(vocab.clone()),
            files: HashMap::with_capacity(inputs.len()),
            parsed: 0,
        };
        for result in parse_in_parallel(inputs, vocab, previous) {
            match result {
                Ok((parsed, fresh)) => {
                    cache.parsed += usize::from(fresh);
                    agreements.push(Arc::clone(&parsed.pks));
                    positions.push(Arc::clone(&parsed.positions));
                    cache.files.insert(parsed.pks.source.clone(), parsed);
                }
                Err(e) => errors.extend(e.0),
            }
        }
        let set = Self { agreements };
        set.check_unique(&positions, &mut errors);
        set.check_ip_overlap(&positions, &mut errors);
        if errors.is_empty() {
            Ok((set, cache))
        } else {
            Err(ConfigErrors(errors))
        }
    }

    fn check_unique(&self, positions: &[Arc<Positions>], errors: &mut Vec<ConfigError>) {
        // One map, not a search per agreement: 5,000 files cost 12.5 million path
        // comparisons that way (measured, loadtest/RESULTS.md).
        let mut nomor: HashMap<&str, &Path> = HashMap::new();
        let mut users: HashMap<&str, &Path> = HashMap::new();
        let mut sams: HashMap<&str, &Path> = HashMap::new();
        let mut caps: HashMap<&str, (NonZeroU32, &Path)> = HashMap::new();
        for (pks, pos) in self.agreements.iter().zip(positions) {
            let at = |p: Option<Pos>, field: &str, message: String| {
                ConfigError::at(&pks.source, p, field, message)
            };
            if let Some(cap) = pks.kuota_harian_pengguna
                && let Some(&(first, path)) =
                    caps.get(pks.pengguna.as_str()).filter(|(c, _)| *c != cap)
            {
                errors.push(at(
                    pos.kuota_harian_pengguna,
                    "kuota_harian_pengguna",
                    format!(
                        "Pengguna `{}` has one daily cap across its User IDs, but {} sets {first} and this file {cap}: make them equal",
                        pks.pengguna,
                        path.display()
                    ),
                ));
            } else if let Some(cap) = pks.kuota_harian_pengguna {
                caps.insert(&pks.pengguna, (cap, &pks.source));
            }
            if let Some(first) = nomor.insert(&pks.nomor, &pks.source) {
                errors.push(at(
                    Some(pos.nomor),
                    "nomor",
                    format!(
                        "PKS number `{}` is also used by {}",
                        pks.nomor,
                        first.display()
                    ),
                ));
            }
            for (user, upos) in pks.users.iter().zip(&pos.users) {
                if let Some(first) = users.insert(&user.id, &pks.source) {
                    errors.push(at(
                        Some(*upos),
                        "user.id",
                        format!(
                            "User ID `{}` is also granted by {}",
                            user.id,
                            first.display()
                        ),
                    ));
                }
            }
            for (sam, spos) in pks.sams.iter().zip(&pos.sams) {
                if let Some(first) = sams.insert(&sam.id, &pks.source) {
                    errors.push(at(
                        Some(*spos),
                        "sam.id",
                        format!("SAM `{}` is also registered in {} (a reader belongs to one Pengguna, art. 26)", sam.id, first.display()),
                    ));
                }
            }
        }
    }

    /// An address must identify one User ID: two User IDs whose IP LAN overlap are refused.
    /// Sort-and-sweep, so 50,000 User IDs cost O(n log n), not O(n²).
    fn check_ip_overlap(&self, positions: &[Arc<Positions>], errors: &mut Vec<ConfigError>) {
        struct Range128 {
            start: u128,
            end: u128,
            v6: bool,
            pks: usize,
            user: usize,
            net: usize,
        }
        let mut ranges = Vec::new();
        for (p, pks) in self.agreements.iter().enumerate() {
            for (u, user) in pks.users.iter().enumerate() {
                for (n, net) in user.ip_lan.iter().enumerate() {
                    let (start, end, v6) = match net {
                        IpNet::V4(v4) => (
                            u128::from(u32::from(v4.network())),
                            u128::from(u32::from(v4.broadcast())),
                            false,
                        ),
                        IpNet::V6(v6) => {
                            (u128::from(v6.network()), u128::from(v6.broadcast()), true)
                        }
                    };
                    ranges.push(Range128 {
                        start,
                        end,
                        v6,
                        pks: p,
                        user: u,
                        net: n,
                    });
                }
            }
        }
        ranges.sort_by_key(|r| (r.v6, r.start));
        let mut widest: Option<usize> = None;
        for i in 0..ranges.len() {
            let r = &ranges[i];
            if let Some(w) = widest {
                let prev = &ranges[w];
                let same_user = prev.pks == r.pks && prev.user == r.user;
                if prev.v6 == r.v6 && r.start <= prev.end && !same_user {
                    let pks = &self.agreements[r.pks];
                    let other = &self.agreements[prev.pks];
                    let pos = positions[r.pks].ip_lan[r.user][r.net];
                    let other_line = other.users[prev.user].line;
                    errors.push(ConfigError::at(
                        &pks.source,
                        Some(pos),
                        format!("user `{}`.ip_lan", pks.users[r.user].id),
                        format!(
                            "{} overlaps {} of User ID `{}` ({}:{}): an address must identify exactly one User ID",
                            pks.users[r.user].ip_lan[r.net],
                            other.users[prev.user].ip_lan[prev.net],
                            other.users[prev.user].id,
                            other.source.display(),
                            other_line,
                        ),
                    ));
                }
                if prev.v6 != r.v6 || r.end > prev.end {
                    widest = Some(i);
                }
            } else {
                widest = Some(i);
            }
        }
    }
}

//! The PKS file: one TOML file per cooperation agreement, its fields named as in Ditjen's
//! approval table (docs/architecture.md, "The PKS file"), so the person who reads the signed PKS can check the file line
//! by line. Loading parses every file, validates it and checks the set as a whole (unique
//! numbers, User IDs and SAMs, no IP LAN shared by two User IDs), collecting every error.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use chrono::NaiveDate;
use ipnet::IpNet;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::diag::{ConfigError, ConfigErrors, Lines, Source, read_file};
use crate::element::{ElementSet, Vocabulary, unknown_element};

/// Kind of user institution (Permendagri 102/2019 art. 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JenisPengguna {
    LembagaNegara,
    Kementerian,
    Lpnk,
    /// Badan Hukum Indonesia (an Indonesian legal entity).
    Bhi,
    /// Organisasi Perangkat Daerah (a regional office).
    Opd,
}

/// Government level of the agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tingkat {
    Pusat,
    Provinsi,
    KabupatenKota,
}

/// An access method a PKS grants; the gateway calls it the request's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Machine-to-machine JSON API.
    WebService,
    /// The browser application (read-only, art. 30(2)).
    WebPortal,
    /// A KTP-el card reader with an activated SAM (art. 24–26).
    CardReader,
}

impl Channel {
    /// The name used in PKS files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebService => "web_service",
            Self::WebPortal => "web_portal",
            Self::CardReader => "card_reader",
        }
    }
}

/// A key the PKS lets the Pengguna look people up by (art. 29(1), 31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KunciAkses {
    #[serde(rename = "NIK")]
    Nik,
    #[serde(rename = "NO_KK")]
    NoKk,
    /// Search by a combination of elements: law enforcement only (art. 31).
    #[serde(rename = "ELEMEN")]
    Elemen,
}

/// State of an agreement; `dibekukan` (frozen) and `diakhiri` (ended) are art. 45 sanctions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PksStatus {
    Aktif,
    Dibekukan,
    Diakhiri,
}

/// State of a User ID; `nonaktif` is the art. 45 deactivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Aktif,
    Nonaktif,
}

/// State of a card reader's SAM (art. 25, 45 d–e).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamStatus {
    Aktif,
    Nonaktif,
    Dicabut,
}

impl SamStatus {
    /// The name used in PKS files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aktif => "aktif",
            Self::Nonaktif => "nonaktif",
            Self::Dicabut => "dicabut",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PksFile {
    /// The PKS number, unique.
    nomor: Spanned<String>,
    /// Stable id of the institution (lower case, digits, `-`).
    pengguna: Spanned<String>,
    /// The institution's full name.
    nama_pengguna: String,
    jenis_pengguna: JenisPengguna,
    tingkat: Tingkat,
    /// The purpose of use, as in the PKS.
    tujuan: String,
    /// Allowed data elements or groups (vocabulary names).
    elemen_data: Spanned<Vec<Spanned<String>>>,
    /// Allowed access methods.
    metode_akses: Spanned<Vec<Channel>>,
    /// Allowed lookup keys.
    kunci_akses: Spanned<Vec<KunciAkses>>,
    /// Data the Pengguna sends back (informative).
    #[serde(default)]
    data_balikan: Vec<String>,
    /// First day of validity (inclusive, WIB).
    mulai: Spanned<toml::value::Datetime>,
    /// Last day of validity (inclusive, WIB).
    sampai: Spanned<toml::value::Datetime>,
    /// Foreign-majority BHI: verification only (art. 29(4)).
    #[serde(default)]
    kepemilikan_asing_mayoritas: bool,
    /// Law enforcement: may search by element combination (art. 31).
    #[serde(default)]
    penegak_hukum: bool,
    /// Protected elements the Minister approved (UU 24/2013 art. 84).
    #[serde(default)]
    persetujuan_menteri: Vec<Spanned<String>>,
    /// Optional cap on the NIK hits per WIB day of all the Pengguna's User IDs together.
    #[serde(default)]
    kuota_harian_pengguna: Option<Spanned<u32>>,
    status: PksStatus,
    #[serde(default, rename = "user")]
    users: Vec<Spanned<UserFile>>,
    #[serde(default, rename = "sam")]
    sams: Vec<Spanned<SamFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    /// The User ID the PKS grants.
    id: Spanned<String>,
    /// argon2id PHC string (`gerbang passwd` prints one).
    password_hash: Spanned<String>,
    /// Registered LAN addresses (CIDR or single address).
    ip_lan: Spanned<Vec<Spanned<String>>>,
    /// NIK hits per calendar day (WIB).
    kuota_harian: Spanned<u32>,
    status: UserStatus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SamFile {
    /// The SAM's id as personalised by Ditjen.
    id: Spanned<String>,
    /// `ed25519:` followed by the base64 public key.
    public_key: Spanned<String>,
    status: SamStatus,
}

/// A validated cooperation agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pks {
    /// The file it was loaded from.
    pub source: PathBuf,
    pub nomor: String,
    pub pengguna: String,
    pub nama_pengguna: String,
    pub jenis_pengguna: JenisPengguna,
    pub tingkat: Tingkat,
    pub tujuan: String,
    /// Granted elements, groups expanded.
    pub elemen_data: ElementSet,
    pub metode_akses: Vec<Channel>,
    pub kunci_akses: Vec<KunciAkses>,
    pub data_balikan: Vec<String>,
    pub mulai: NaiveDate,
    pub sampai: NaiveDate,
    pub kepemilikan_asing_mayoritas: bool,
    pub penegak_hukum: bool,
    /// Protected elements the Minister approved.
    pub persetujuan_menteri: ElementSet,
    /// Cap on the NIK hits per WIB day of all the Pengguna's User IDs together, across
    /// all its agreements (every file of the Pengguna that sets it must agree).
    pub kuota_harian_pengguna: Option<NonZeroU32>,
    pub status: PksStatus,
    pub users: Vec<User>,
    pub sams: Vec<Sam>,
}

impl Pks {
    /// Whether `day` (a WIB calendar day) lies within the agreement's period.
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.mulai <= day && day <= self.sampai
    }

    /// Whether the PKS grants this access method.
    pub fn allows_channel(&self, channel: Channel) -> bool {
        self.metode_akses.contains(&channel)
    }

    /// Whether the PKS grants this lookup key.
    pub fn allows_key(&self, key: KunciAkses) -> bool {
        self.kunci_akses.contains(&key)
    }
}

/// A User ID of a PKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// argon2id PHC string; checked well-formed at load.
    pub password_hash: String,
    pub ip_lan: Vec<IpNet>,
    pub kuota_harian: NonZeroU32,
    pub status: UserStatus,
    /// Line of the `[[user]]` table, for messages.
    pub line: usize,
}

impl User {
    /// Whether `ip` is one of the registered LAN addresses.
    pub fn ip_registered(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.ip_lan.iter().any(|net| net.contains(&ip))
    }
}

/// The longest User ID: longer than any a PKS grants, and a bound on what a request's
/// `user_id` may make the gateway store or log.
pub const USER_ID_MAX_LEN: usize = 64;

/// Whether `id` has the shape of a User ID: 1 to [`USER_ID_MAX_LEN`] ASCII letters, digits,
/// `_`, `.` or `-`. The PKS loader refuses any other `[[user]] id`, and the gateway refuses
/// a request naming one before anything keeps it, so the two always agree on what can be a
/// User ID.
pub fn is_user_id(id: &str) -> bool {
    (1..=USER_ID_MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// An IPv4 address seen through an IPv4-mapped IPv6 socket is the IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A card reader's SAM, bound to the Pengguna of its PKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sam {
    pub id: String,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
    pub status: SamStatus,
    /// Line of the `[[sam]]` id, for messages.
    pub line: usize,
}

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

/// A 1-based line and column.
type Pos = (usize, usize);

/// Where the fields the set-wide checks can complain about were written, kept from parsing
/// (as lines, so a reused file's text need not be kept).
#[derive(Debug)]
struct Positions {
    nomor: Pos,
    kuota_harian_pengguna: Option<Pos>,
    users: Vec<Pos>,
    ip_lan: Vec<Vec<Pos>>,
    sams: Vec<Pos>,
}

fn parse_one(src: &Source<'_>, vocab: &Vocabulary) -> Result<(Pks, Positions), ConfigErrors> {
    let file: PksFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let mut errors = Vec::new();
    let lines = Lines::new(src.text);

    if file.nomor.get_ref().trim().is_empty() {
        errors.push(src.error(Some(file.nomor.span()), "nomor", "the PKS number is empty"));
    }
    let pengguna = file.pengguna.get_ref();
    if pengguna.is_empty()
        || !pengguna
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errors.push(src.error(
            Some(file.pengguna.span()),
            "pengguna",
            format!("`{pengguna}` is not a stable id: use lower-case letters, digits and `-` (e.g. `bkd-karanganyar`)"),
        ));
    }

    let mut elemen_data = ElementSet::EMPTY;
    for name in file.elemen_data.get_ref() {
        match vocab.resolve(name.get_ref()) {
            Some(set) => elemen_data = elemen_data.union(set),
            None => errors.push(unknown_element(
                src,
                name.span(),
                "elemen_data",
                name.get_ref(),
                vocab,
            )),
        }
    }
    if file.elemen_data.get_ref().is_empty() {
        errors.push(src.error(
            Some(file.elemen_data.span()),
            "elemen_data",
            "a PKS grants at least one element",
        ));
    }
    let mut persetujuan = ElementSet::EMPTY;
    for name in &file.persetujuan_menteri {
        match vocab.resolve(name.get_ref()) {
            Some(set) if set.difference(vocab.protected()).is_empty() => {
                persetujuan = persetujuan.union(set)
            }
            Some(_) => errors.push(src.error(
                Some(name.span()),
                "persetujuan_menteri",
                format!(
                    "`{}` is not protected data; list only protected elements here",
                    name.get_ref()
                ),
            )),
            None => errors.push(unknown_element(
                src,
                name.span(),
                "persetujuan_menteri",
                name.get_ref(),
                vocab,
            )),
        }
    }
    let unapproved = elemen_data
        .intersection(vocab.protected())
        .difference(persetujuan);
    if !unapproved.is_empty() {
        errors.push(src.error(
            Some(file.elemen_data.span()),
            "elemen_data",
            format!(
                "{} is protected personal data (UU 24/2013 art. 84) and needs the Minister's approval: add it to `persetujuan_menteri` or remove it",
                vocab.names(unapproved).join(", ")
            ),
        ));
    }

    if file.metode_akses.get_ref().is_empty() {
        errors.push(src.error(
            Some(file.metode_akses.span()),
            "metode_akses",
            "a PKS grants at least one access method",
        ));
    }
    if file.kunci_akses.get_ref().is_empty() {
        errors.push(src.error(
            Some(file.kunci_akses.span()),
            "kunci_akses",
            "a PKS grants at least one lookup key (usually \"NIK\")",
        ));
    }
    if file.kunci_akses.get_ref().contains(&KunciAkses::Elemen) && !file.penegak_hukum {
        errors.push(src.error(
            Some(file.kunci_akses.span()),
            "kunci_akses",
            "search by element combination (\"ELEMEN\") is given only to law enforcement (art. 31; letter 470/18754): set `penegak_hukum = true` or remove it",
        ));
    }
    if file.kepemilikan_asing_mayoritas && file.jenis_pengguna != JenisPengguna::Bhi {
        errors.push(src.error(
            None,
            "kepemilikan_asing_mayoritas",
            "only a BHI (jenis_pengguna = \"bhi\") can be foreign-majority owned",
        ));
    }

    let mulai = date_field(src, &file.mulai, "mulai", &mut errors);
    let sampai = date_field(src, &file.sampai, "sampai", &mut errors);
    if let (Some(m), Some(s)) = (mulai, sampai)
        && s < m
    {
        errors.push(src.error(
            Some(file.sampai.span()),
            "sampai",
            format!("the end date {s} is before the start date {m}"),
        ));
    }

    let mut users = Vec::with_capacity(file.users.len());
    let mut user_pos = Vec::new();
    let mut ip_pos = Vec::new();
    for (i, u) in file.users.iter().enumerate() {
        let u_span = u.span();
        let u = u.get_ref();
        if let Some(user) = parse_user(src, &lines, i, u, &mut errors) {
            users.push(user);
            user_pos.push(lines.pos(u.id.span().start));
            ip_pos.push(
                u.ip_lan
                    .get_ref()
                    .iter()
                    .map(|n| lines.pos(n.span().start))
                    .collect(),
            );
        } else {
            let _ = u_span;
        }
    }
    if file.users.is_empty() {
        errors.push(src.error(
            None,
            "user",
            "a PKS grants at least one User ID: add a [[user]] table",
        ));
    }

    let mut sams = Vec::with_capacity(file.sams.len());
    let mut sam_pos = Vec::new();
    for (i, s) in file.sams.iter().enumerate() {
        let s = s.get_ref();
        if let Some(key) = parse_public_key(s.public_key.get_ref()) {
            sams.push(Sam {
                id: s.id.get_ref().clone(),
                public_key: key,
                status: s.status,
                line: lines.pos(s.id.span().start).0,
            });
            sam_pos.push(lines.pos(s.id.span().start));
        } else {
            errors.push(src.error(
                Some(s.public_key.span()),
                format!("sam[{i}].public_key"),
                "must be `ed25519:` followed by the base64 of a valid 32-byte Ed25519 public key (`gerbang sam keygen` prints one)",
            ));
        }
        if s.id.get_ref().trim().is_empty() {
            errors.push(src.error(
                Some(s.id.span()),
                format!("sam[{i}].id"),
                "the SAM id is empty",
            ));
        }
    }
    let kuota_pengguna = file.kuota_harian_pengguna.as_ref().and_then(|k| {
        let cap = NonZeroU32::new(*k.get_ref());
        if cap.is_none() {
            errors.push(src.error(
                Some(k.span()),
                "kuota_harian_pengguna",
                "a daily cap of 0 would refuse every lookup: give a positive number, or leave the field out for no cap",
            ));
        }
        cap
    });
    if !sams.is_empty() && !file.metode_akses.get_ref().contains(&Channel::CardReader) {
        errors.push(src.error(
            Some(file.metode_akses.span()),
            "metode_akses",
            "the file registers SAMs but does not grant \"card_reader\"",
        ));
    }

    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let (Some(mulai), Some(sampai)) = (mulai, sampai) else {
        return Err(ConfigErrors(errors));
    };
    let positions = Positions {
        nomor: lines.pos(file.nomor.span().start),
        kuota_harian_pengguna: file
            .kuota_harian_pengguna
            .as_ref()
            .map(|k| lines.pos(k.span().start)),
        users: user_pos,
        ip_lan: ip_pos,
        sams: sam_pos,
    };
    let pks = Pks {
        source: src.path.to_path_buf(),
        nomor: file.nomor.into_inner(),
        pengguna: file.pengguna.into_inner(),
        nama_pengguna: file.nama_pengguna,
        jenis_pengguna: file.jenis_pengguna,
        tingkat: file.tingkat,
        tujuan: file.tujuan,
        elemen_data,
        metode_akses: file.metode_akses.into_inner(),
        kunci_akses: file.kunci_akses.into_inner(),
        data_balikan: file.data_balikan,
        mulai,
        sampai,
        kepemilikan_asing_mayoritas: file.kepemilikan_asing_mayoritas,
        penegak_hukum: file.penegak_hukum,
        persetujuan_menteri: persetujuan,
        kuota_harian_pengguna: kuota_pengguna,
        status: file.status,
        users,
        sams,
    };
    Ok((pks, positions))
}

fn parse_user(
    src: &Source<'_>,
    lines: &Lines,
    i: usize,
    u: &UserFile,
    errors: &mut Vec<ConfigError>,
) -> Option<User> {
    let before = errors.len();
    let id = u.id.get_ref();
    if !is_user_id(id) {
        errors.push(src.error(
            Some(u.id.span()),
            format!("user[{i}].id"),
            format!(
                "`{id}` is not a valid User ID: 1 to {USER_ID_MAX_LEN} ASCII letters, digits, `_`, `.` or `-`"
            ),
        ));
    }
    let hash = u.password_hash.get_ref();
    match argon2::PasswordHash::new(hash) {
        Ok(parsed) if parsed.algorithm.as_str() == "argon2id" && parsed.hash.is_some() => {}
        Ok(parsed) => errors.push(src.error(
            Some(u.password_hash.span()),
            format!("user[{i}].password_hash"),
            format!(
                "is a `{}` hash; Gerbang accepts argon2id only (`gerbang passwd` prints one)",
                parsed.algorithm
            ),
        )),
        Err(e) => errors.push(src.error(
            Some(u.password_hash.span()),
            format!("user[{i}].password_hash"),
            format!("is not an argon2id PHC string ({e}); `gerbang passwd` prints one"),
        )),
    }
    let mut ip_lan = Vec::new();
    for net in u.ip_lan.get_ref() {
        match parse_ip_lan(net.get_ref()) {
            Ok(n) => ip_lan.push(n),
            Err(msg) => errors.push(src.error(Some(net.span()), format!("user[{i}].ip_lan"), msg)),
        }
    }
    if u.ip_lan.get_ref().is_empty() {
        errors.push(src.error(
            Some(u.ip_lan.span()),
            format!("user[{i}].ip_lan"),
            "at least one registered LAN address is needed (art. 28: closed network only)",
        ));
    }
    let kuota = NonZeroU32::new(*u.kuota_harian.get_ref());
    if kuota.is_none() {
        errors.push(src.error(
            Some(u.kuota_harian.span()),
            format!("user[{i}].kuota_harian"),
            "must be at least 1; to stop a User ID set status = \"nonaktif\"",
        ));
    }
    if errors.len() != before {
        return None;
    }
    Some(User {
        id: id.clone(),
        password_hash: hash.clone(),
        ip_lan,
        kuota_harian: kuota?,
        status: u.status,
        line: lines.pos(u.id.span().start).0,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlocklistFile {
    /// Networks cut off as a sanction (art. 45): single addresses or CIDRs.
    #[serde(default)]
    ip: Vec<Spanned<String>>,
}

/// Loads the block list of networks cut off as a sanction (art. 45).
pub fn load_blocklist(path: &Path) -> Result<Vec<IpNet>, ConfigErrors> {
    let text = read_file(path)?;
    let src = Source::new(path, &text);
    let file: BlocklistFile = toml::from_str(&text).map_err(|e| src.toml_error(&e))?;
    let mut nets = Vec::new();
    let mut errors = Vec::new();
    for entry in &file.ip {
        match parse_ip_lan(entry.get_ref()) {
            Ok(n) => nets.push(n),
            Err(msg) => errors.push(src.error(Some(entry.span()), "ip", msg)),
        }
    }
    if errors.is_empty() {
        Ok(nets)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parses one IP LAN entry: a single address or a CIDR without host bits.
fn parse_ip_lan(s: &str) -> Result<IpNet, String> {
    let net = if s.contains('/') {
        let net: IpNet = s
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{s}` has host bits set; did you mean `{}`?",
                net.trunc()
            ));
        }
        net
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
        IpNet::from(ip)
    };
    if net.prefix_len() == 0 {
        return Err(format!(
            "`{s}` would accept every address; register the LAN's own range"
        ));
    }
    Ok(net)
}

/// `ed25519:<base64>` of a usable Ed25519 public key: 32 bytes that decode to a curve
/// point of large order. A weak (small-order) key is refused: signatures under it can be
/// forged without a private key.
fn parse_public_key(s: &str) -> Option<[u8; 32]> {
    let b64 = s.strip_prefix("ed25519:")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let bytes: [u8; 32] = bytes.try_into().ok()?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?;
    (!key.is_weak()).then_some(bytes)
}

fn date_field(
    src: &Source<'_>,
    value: &Spanned<toml::value::Datetime>,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<NaiveDate> {
    let dt = value.get_ref();
    let date = match (dt.date, dt.time, dt.offset) {
        (Some(d), None, None) => {
            NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
        }
        _ => None,
    };
    if date.is_none() {
        errors.push(src.error(
            Some(value.span()),
            field,
            format!("`{dt}` must be a plain date such as 2024-11-09 (a day in WIB, no time)"),
        ));
    }
    date
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid PKS file with one User ID, for other modules' tests.
    pub(crate) fn sample_pks(nomor: &str, user: &str, ip: &str) -> String {
        pks(nomor, user, ip, "")
    }

    pub(crate) const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZRqpb8Z+dLwDBTqW3nkCw0ZqXYjz6Rqi4AbH5l3eXM";

    fn pks(nomor: &str, user: &str, ip: &str, extra: &str) -> String {
        format!(
            r#"nomor = "{nomor}"
pengguna = "contoh"
nama_pengguna = "Dinas Contoh"
jenis_pengguna = "opd"
tingkat = "kabupaten_kota"
tujuan = "uji"
elemen_data = ["NIK", "NAMA_LGKP", "ALAMAT_SEKARANG"]
metode_akses = ["web_service"]
kunci_akses = ["NIK"]
mulai = 2025-01-01
sampai = 2027-12-31
status = "aktif"
{extra}
[[user]]
id = "{user}"
password_hash = "{HASH}"
ip_lan = ["{ip}"]
kuota_harian = 75
status = "aktif"
"#
        )
    }

    fn load(files: &[(&str, String)]) -> Result<PksSet, ConfigErrors> {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.clone()))
            .collect();
        PksSet::parse_all(&files, &Vocabulary::embedded())
    }

    #[test]
    fn loads_a_valid_file_and_expands_groups() {
        let set = load(&[("a.toml", pks("1/A", "u1", "127.0.0.2", ""))]).expect("valid");
        let p = &set.agreements[0];
        let vocab = Vocabulary::embedded();
        assert!(p.elemen_data.contains(vocab.id("KEL_NAME").expect("known")));
        assert!(!p.elemen_data.contains(vocab.id("AGAMA").expect("known")));
        assert!(p.users[0].ip_registered("127.0.0.2".parse().expect("ip")));
        assert!(p.users[0].ip_registered("::ffff:127.0.0.2".parse().expect("ip")));
        assert!(!p.users[0].ip_registered("127.0.0.3".parse().expect("ip")));
        assert!(p.valid_on(NaiveDate::from_ymd_opt(2027, 12, 31).expect("date")));
        assert!(!p.valid_on(NaiveDate::from_ymd_opt(2028, 1, 1).expect("date")));
    }

    #[test]
    fn unknown_element_names_file_line_and_field() {
        let text = pks("1/A", "u1", "127.0.0.2", "").replace("\"NAMA_LGKP\"", "\"NAMA_LENGKAP\"");
        let err = load(&[("config/pks/a.toml", text)]).expect_err("invalid");
        let shown = err.to_string();
        assert!(shown.starts_with("config/pks/a.toml:7:"), "{shown}");
        assert!(shown.contains("field `elemen_data`"), "{shown}");
        assert!(shown.contains("NAMA_LENGKAP"), "{shown}");
    }

    #[test]
    fn end_before_start_and_bad_hash_and_bad_ip_are_all_reported() {
        let text = pks("1/A", "u1", "10.0.0.1/24", "")
            .replace("sampai = 2027-12-31", "sampai = 2024-12-31")
            .replace(HASH, "$2b$12$notargon");
        let err = load(&[("a.toml", text)]).expect_err("invalid");
        let shown = err.to_string();
        assert!(
            shown.contains("a.toml:11:") && shown.contains("before the start date"),
            "{shown}"
        );
        assert!(shown.contains("password_hash"), "{shown}");
        assert!(shown.contains("did you mean `10.0.0.0/24`"), "{shown}");
        assert_eq!(err.0.len(), 3, "{shown}");
    }

    #[test]
    fn unknown_field_is_refused_with_its_line() {
        let text = pks("1/A", "u1", "127.0.0.2", "kuota = 5\n");
        let err = load(&[("a.toml", text)]).expect_err("invalid");
        let shown = err.to_string();
        assert!(shown.contains("a.toml:13:"), "{shown}");
        // The field itself, not toml's message (which names it too).
        let fields: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["kuota"], "{shown}");
    }

    #[test]
    fn overlapping_ip_lan_between_users_is_refused() {
        let err = load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.0/24", "")),
            ("b.toml", pks("1/B", "u2", "127.0.0.9", "")),
        ])
        .expect_err("overlap");
        let shown = err.to_string();
        assert!(shown.contains("b.toml:17:"), "{shown}");
        assert!(
            shown.contains("overlaps 127.0.0.0/24 of User ID `u1`"),
            "{shown}"
        );
        // Disjoint ranges load.
        load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.0/25", "")),
            ("b.toml", pks("1/B", "u2", "127.0.0.128/25", "")),
        ])
        .expect("disjoint");
    }

    #[test]
    fn duplicate_numbers_and_users_are_refused() {
        let err = load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.2", "")),
            ("b.toml", pks("1/A", "u1", "127.0.0.3", "")),
        ])
        .expect_err("duplicates");
        let shown = err.to_string();
        assert!(
            shown.contains("PKS number `1/A` is also used by a.toml"),
            "{shown}"
        );
        assert!(
            shown.contains("User ID `u1` is also granted by a.toml"),
            "{shown}"
        );
    }

    #[test]
    fn user_ids_outside_the_shape_the_gateway_accepts_are_refused() {
        let longest = "u".repeat(USER_ID_MAX_LEN);
        for good in ["bkd_kra_01", "RSUD.Kota-1", longest.as_str()] {
            assert!(is_user_id(good), "{good}");
            load(&[("a.toml", pks("1/A", good, "127.0.0.2", ""))]).expect(good);
        }
        let too_long = "u".repeat(USER_ID_MAX_LEN + 1);
        for bad in [
            "",
            "nık_01",
            "rsud 01",
            "rsud/01",
            "@pengguna",
            too_long.as_str(),
        ] {
            assert!(!is_user_id(bad), "{bad}");
            let err = load(&[("a.toml", pks("1/A", bad, "127.0.0.2", ""))]).expect_err(bad);
            let shown = err.to_string();
            assert!(
                shown.contains("user[0].id") && shown.contains("is not a valid User ID"),
                "{bad}: {shown}"
            );
        }
    }

    #[test]
    fn a_pengguna_has_one_daily_cap() {
        let with = |cap: u32| format!("kuota_harian_pengguna = {cap}");
        let set = load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.2", &with(100))),
            ("b.toml", pks("1/B", "u2", "127.0.0.3", &with(100))),
            ("c.toml", pks("1/C", "u3", "127.0.0.4", "")),
        ])
        .expect("the same cap twice");
        let caps: Vec<_> = set
            .agreements
            .iter()
            .map(|p| p.kuota_harian_pengguna.map(NonZeroU32::get))
            .collect();
        assert_eq!(caps, [Some(100), Some(100), None]);
        let err = load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.2", &with(100))),
            ("b.toml", pks("1/B", "u2", "127.0.0.3", &with(80))),
        ])
        .expect_err("two caps");
        let shown = err.to_string();
        assert!(shown.starts_with("b.toml:13:"), "{shown}");
        assert!(
            shown.contains("a.toml sets 100 and this file 80"),
            "{shown}"
        );
        let err = load(&[("a.toml", pks("1/A", "u1", "127.0.0.2", &with(0)))]).expect_err("zero");
        assert!(err.to_string().contains("kuota_harian_pengguna"), "{err}");
    }

    #[test]
    fn protected_elements_need_the_ministers_approval() {
        let text = pks("1/A", "u1", "127.0.0.2", "")
            .replace("\"NIK\", \"NAMA_LGKP\"", "\"NIK\", \"PNYDNG_CACAT\"");
        let err = load(&[("a.toml", text.clone())]).expect_err("unapproved");
        assert!(err.to_string().contains("Minister's approval"), "{err}");
        let approved = text.replace(
            "status = \"aktif\"\n\n",
            "status = \"aktif\"\npersetujuan_menteri = [\"PNYDNG_CACAT\"]\n\n",
        );
        let set = load(&[("a.toml", approved)]).expect("approved");
        assert!(!set.agreements[0].persetujuan_menteri.is_empty());
    }

    #[test]
    fn sam_keys_must_be_usable_ed25519_keys() {
        let with = |key: &str| {
            pks("1/A", "u1", "127.0.0.2", "").replace("[\"web_service\"]", "[\"card_reader\"]")
                + &format!(
                    "[[sam]]\nid = \"SAM-1\"\npublic_key = \"ed25519:{key}\"\nstatus = \"aktif\"\n"
                )
        };
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        // A real public key (of the secret key 1, 2, 3, …).
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap_or(0) + 1;
        }
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let set = load(&[("a.toml", with(&b64(public.as_bytes())))]).expect("valid key");
        assert_eq!(set.agreements[0].sams[0].line, 21);
        // The identity point has small order: anybody could sign for it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for bad in [b64(&identity), b64(&[7u8; 31]), "not base64!".to_string()] {
            let err = load(&[("a.toml", with(&bad))]).expect_err("unusable key");
            let shown = err.to_string();
            assert!(
                shown.contains("a.toml:22:") && shown.contains("valid 32-byte Ed25519"),
                "{shown}"
            );
        }
    }

    #[test]
    fn element_search_needs_law_enforcement() {
        let text = pks("1/A", "u1", "127.0.0.2", "").replace(
            "kunci_akses = [\"NIK\"]",
            "kunci_akses = [\"NIK\", \"ELEMEN\"]",
        );
        let err = load(&[("a.toml", text)]).expect_err("not law enforcement");
        assert!(err.to_string().contains("art. 31"), "{err}");
    }
}

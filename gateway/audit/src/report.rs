//! Semester usage reports from the decision log (Permendagri 102/2019 art. 40: usage is
//! reported every semester, in June and December): per Pengguna and per User ID, hits, active
//! days, peak day, refusals by reason, quota utilisation, distinct NIKs and share by channel.
//!
//! The log is read line by line and folded into per-User-ID counters, so a semester of logs is
//! never held in memory; what grows is one set of NIK digests per User ID (16 bytes per
//! distinct NIK) and one counter per active day.

mod render;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::archive::Manifest;
use crate::files;
use crate::fleet::{ChainId, FleetError, LogDir, chain_id, distinct};
use crate::record::{BALIKAN_ACTION, Decision, wib_day};

pub use render::{Format, FormatUnknown};

/// Half a year of WIB days: 1 = 1 January – 30 June, 2 = 1 July – 31 December.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Semester {
    pub year: i32,
    /// 1 or 2.
    pub half: u8,
}

/// A semester that is not `YYYY-1` or `YYYY-2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a semester: write YYYY-1 (January to June) or YYYY-2 (July to December)")]
pub struct SemesterInvalid(pub String);

impl FromStr for Semester {
    type Err = SemesterInvalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || SemesterInvalid(s.to_owned());
        let (year, half) = s.split_once('-').ok_or_else(invalid)?;
        let year: i32 = year.parse().map_err(|_| invalid())?;
        let half: u8 = half.parse().map_err(|_| invalid())?;
        if !(1..=2).contains(&half) || !(1970..=9999).contains(&year) {
            return Err(invalid());
        }
        Ok(Self { year, half })
    }
}

impl fmt::Display for Semester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.year, self.half)
    }
}

impl Semester {
    /// Its first WIB day.
    pub fn first_day(self) -> NaiveDate {
        let month = if self.half == 1 { 1 } else { 7 };
        NaiveDate::from_ymd_opt(self.year, month, 1).unwrap_or(NaiveDate::MIN)
    }

    /// Its last WIB day.
    pub fn last_day(self) -> NaiveDate {
        let (month, day) = if self.half == 1 { (6, 30) } else { (12, 31) };
        NaiveDate::from_ymd_opt(self.year, month, day).unwrap_or(NaiveDate::MAX)
    }

    fn contains(self, day: NaiveDate) -> bool {
        day.year() == self.year && (day.month() <= 6) == (self.half == 1)
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The log directories cannot be read as one account.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// Two directories hold the same chain: copies of one log (or forks of it).
    #[error(
        "{first} and {second} hold the same chain (copies of one log, or forks of it such as \
         a cloned instance's): give only one of them, the instance's own log directory, or \
         the report would count its records twice"
    )]
    SameChain { first: PathBuf, second: PathBuf },
    /// Two different chains name the same instance.
    #[error(
        "{first} and {second} are different chains that both name instance `{instance}`: \
         two writers under one name cannot be told apart in a report; give every instance \
         its own `instance` name, and report on the directories of one name separately"
    )]
    InstanceClaimedTwice {
        instance: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// One semester's usage, per Pengguna and User ID.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `YYYY-1` or `YYYY-2`.
    pub semester: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Only this Pengguna, when given.
    pub pengguna_filter: Option<String>,
    pub files_read: u64,
    /// Days of the semester that left the log directory and could not be read (handed to the
    /// archive command, or moved to an archive directory that was not given): the figures
    /// leave them out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub days_not_read: Vec<NaiveDate>,
    pub lines_read: u64,
    /// Lines that are not records (a torn tail, damage): run `audit verify` when non-zero.
    pub lines_skipped: u64,
    /// Everything in the report together.
    pub totals: Usage,
    /// By Pengguna id; records refused before the caller was identified come last, under
    /// `pengguna: null`.
    pub pengguna: Vec<PenggunaReport>,
    /// Data balikan per Pengguna and PKS, and who is behind on returning it.
    pub balikan: BalikanReport,
    /// With several log directories: what each added (empty for one directory, whose report
    /// is as it always was).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainRead>,
}

/// One Pengguna's usage and that of each of its User IDs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PenggunaReport {
    /// `None`: requests refused before a Pengguna was known (unknown User ID or address).
    pub pengguna: Option<String>,
    pub usage: Usage,
    pub users: Vec<UserReport>,
}

/// One User ID's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserReport {
    pub user_id: Option<String>,
    pub usage: Usage,
}

/// Usage figures, the same for a User ID, a Pengguna and the whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Every decision record, allowed or refused.
    pub requests: u64,
    /// NIK hits: allowed lookups that reached the DWH (the quota counts these).
    pub hits: u64,
    /// WIB days with at least one hit.
    pub active_days: u64,
    /// The day with the most hits (the earliest of equals).
    pub peak_day: Option<PeakDay>,
    /// The daily quota summed over the active days (for a Pengguna: over each User ID's own
    /// active days); a day's quota is the `quota_limit` its hits recorded.
    pub quota_limit_sum: u64,
    /// `hits / quota_limit_sum`: how much of the quota was used on the days it was used.
    pub quota_utilisation: Option<f64>,
    /// Distinct NIK digests among the hits.
    pub distinct_niks: u64,
    pub refusals_total: u64,
    /// Refusals by reason (`unspecified` when a refusal names none).
    pub refusals: BTreeMap<String, u64>,
    /// Hits by channel, with their share of all hits.
    pub channels: BTreeMap<String, ChannelShare>,
    /// Hits per active day; given for Pengguna and totals (the charts), not per User ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_hits: Option<BTreeMap<NaiveDate, u64>>,
}

/// How many days, ending on the semester's last day, the "behind" rule of data balikan
/// looks at: the same window as the Prometheus alert `GerbangBalikanOverdue`, so the
/// report and the alert name the same Pengguna.
pub const BALIKAN_WINDOW_DAYS: u32 = 30;

/// Data balikan: what each Pengguna looked up under each PKS against what it returned
/// (`SubmitBalikan` batches), and the obligated PKS that are behind.
///
/// A PKS is obligated when its file lists `data_balikan`; the PKS files are not the audit
/// crate's to read, so the caller passes the obligated numbers to
/// [`Report::check_obligations`]. Until then `obligations_checked` is false and nobody is
/// listed as behind. The rule: an obligated PKS is **behind** when it has NIK hits within
/// the [`BALIKAN_WINDOW_DAYS`] last days of the semester and no data-balikan batch with an
/// accepted record within those same days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BalikanReport {
    /// Whether obligations were checked against PKS files (`false`: counts only).
    pub obligations_checked: bool,
    /// The first WIB day of the rule's window.
    pub window_first: NaiveDate,
    /// The last WIB day of the rule's window (the semester's last).
    pub window_last: NaiveDate,
    /// One row per Pengguna and PKS that looked a NIK up or sent data balikan, by Pengguna
    /// then PKS.
    pub rows: Vec<BalikanRow>,
    /// Every row together (distinct NIKs across all rows).
    pub totals: BalikanCounts,
    /// The obligated PKS that are behind, in the order of `rows`.
    pub behind: Vec<BalikanBehind>,
}

/// One Pengguna's data balikan under one PKS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BalikanRow {
    pub pengguna: String,
    /// `None` for records that name no PKS (none should reach the DWH without one).
    pub pks: Option<String>,
    /// Whether the PKS lists `data_balikan`; `None` when obligations were not checked.
    pub obligated: Option<bool>,
    #[serde(flatten)]
    pub counts: BalikanCounts,
    /// Whether it is behind (see [`BalikanReport`]); always `false` when not checked.
    pub behind: bool,
}

/// The figures of a [`BalikanRow`] (and of all rows together).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BalikanCounts {
    /// NIK hits (lookups that reached the DWH; data-balikan batches are never hits).
    pub lookups: u64,
    /// NIK hits within the rule's window.
    pub lookups_in_window: u64,
    /// Data-balikan batches allowed (whatever their records' fate).
    pub batches: u64,
    /// Data-balikan records accepted and forwarded to the DWH.
    pub accepted: u64,
    /// Data-balikan records refused within allowed batches.
    pub refused: u64,
    /// Accepted data-balikan records within the rule's window.
    pub accepted_in_window: u64,
    /// Distinct NIK digests among the lookups.
    pub distinct_niks_looked_up: u64,
    /// Distinct NIK digests among the accepted data-balikan records.
    pub distinct_niks_returned: u64,
    /// The last WIB day of the semester with an accepted data-balikan record; `None`: never
    /// in this semester.
    pub last_balikan: Option<NaiveDate>,
}

/// An obligated PKS behind on its data balikan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalikanBehind {
    pub pengguna: String,
    pub pks: String,
    /// Its NIK hits within the window.
    pub lookups_in_window: u64,
    /// Its last accepted data balikan in the semester; `None`: never ("belum pernah").
    pub last_balikan: Option<NaiveDate>,
}

impl Report {
    /// Marks each row's PKS as obligated or not, from the numbers (`nomor`) of the PKS whose
    /// file lists `data_balikan`, and lists the obligated ones that are behind (the rule of
    /// [`BalikanReport`]). Without this call the report says obligations were not checked.
    pub fn check_obligations(&mut self, obligated: &BTreeSet<String>) {
        let b = &mut self.balikan;
        b.obligations_checked = true;
        b.behind.clear();
        for row in &mut b.rows {
            let is = row.pks.as_ref().is_some_and(|p| obligated.contains(p));
            row.obligated = Some(is);
            row.behind =
                is && row.counts.lookups_in_window > 0 && row.counts.accepted_in_window == 0;
            if let (true, Some(pks)) = (row.behind, &row.pks) {
                b.behind.push(BalikanBehind {
                    pengguna: row.pengguna.clone(),
                    pks: pks.clone(),
                    lookups_in_window: row.counts.lookups_in_window,
                    last_balikan: row.counts.last_balikan,
                });
            }
        }
    }
}

/// The busiest day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeakDay {
    pub date: NaiveDate,
    pub hits: u64,
}

/// One channel's hits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChannelShare {
    pub hits: u64,
    /// Fraction of all hits, 0 to 1.
    pub share: f64,
}

/// Reads the log in `dir` and reports `semester`, for one Pengguna or all.
///
/// A record belongs to the WIB day of its `time`. Files are named by the day they were
/// written, so the file of the day after the semester is read too (a request decided at
/// 23:59:59 may be written after midnight). The report does not check MACs: run
/// [`crate::verify`] first to know the figures come from an intact log.
pub fn report(
    dir: &Path,
    semester: Semester,
    pengguna: Option<&str>,
) -> Result<Report, ReportError> {
    report_with_archive(dir, None, semester, pengguna)
}

/// [`report`] over the live days in `dir` and the days moved to `archive`. Compacted days
/// are read as they were written, so the figures are those of the plain files.
pub fn report_with_archive(
    dir: &Path,
    archive: Option<&Path>,
    semester: Semester,
    pengguna: Option<&str>,
) -> Result<Report, ReportError> {
    let mut folder = Folder::default();
    let read = folder.read(
        &LogDir::new(dir, archive.map(Path::to_path_buf)),
        semester,
        pengguna,
    )?;
    folder.days_not_read = read.days_not_read;
    Ok(folder.finish(semester, pengguna, read.files_read))
}

/// One semester report over the logs of several instances (`gerbang report --dir A --dir B`):
/// their records are added up, and nothing is counted twice. A directory given twice (by
/// canonical path) is read once; two directories holding the same chain ([`ChainId`]: copies
/// of one log), or different chains naming the same instance, are refused, since which copy
/// is whole is for the operator to say. With one distinct directory this is
/// [`report_with_archive`].
pub fn report_fleet(
    logs: &[LogDir],
    semester: Semester,
    pengguna: Option<&str>,
) -> Result<Report, ReportError> {
    let (logs, _repeated) = distinct(logs)?;
    if let [log] = logs.as_slice() {
        return report_with_archive(&log.dir, log.archive.as_deref(), semester, pengguna);
    }
    let mut ids: Vec<Option<ChainId>> = Vec::new();
    for log in &logs {
        let id = chain_id(log).map_err(|source| ReportError::Unreadable {
            path: log.dir.clone(),
            source,
        })?;
        if let Some(first) = id
            .as_ref()
            .and_then(|id| ids.iter().position(|other| other.as_ref() == Some(id)))
        {
            return Err(ReportError::SameChain {
                first: logs[first].dir.clone(),
                second: log.dir.clone(),
            });
        }
        ids.push(id);
    }
    let mut folder = Folder::default();
    let mut chains: Vec<ChainRead> = Vec::new();
    let mut files_read = 0;
    for (log, chain) in logs.into_iter().zip(ids) {
        let read = folder.read(&log, semester, pengguna)?;
        let instances: Vec<String> = std::mem::take(&mut folder.instances).into_iter().collect();
        for instance in &instances {
            if let Some(other) = chains.iter().find(|c| c.instances.contains(instance)) {
                return Err(ReportError::InstanceClaimedTwice {
                    instance: instance.clone(),
                    first: other.dir.clone(),
                    second: log.dir.clone(),
                });
            }
        }
        files_read += read.files_read;
        folder.days_not_read.extend(&read.days_not_read);
        chains.push(ChainRead {
            dir: log.dir,
            archive: log.archive,
            chain,
            instances,
            files_read: read.files_read,
            days_not_read: read.days_not_read,
        });
    }
    folder.days_not_read.sort_unstable();
    folder.days_not_read.dedup();
    let mut report = folder.finish(semester, pengguna, files_read);
    report.chains = chains;
    Ok(report)
}

/// What one directory added to a report over several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainRead {
    pub dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<PathBuf>,
    /// `None` for a log without a line yet.
    pub chain: Option<ChainId>,
    /// The instances its lines in the semester name.
    pub instances: Vec<String>,
    pub files_read: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub days_not_read: Vec<NaiveDate>,
}

/// What [`Folder::read`] read of one directory.
struct Read {
    files_read: u64,
    days_not_read: Vec<NaiveDate>,
}

/// The members of a line a report needs; borrowed, since reports read millions of lines.
#[derive(Deserialize)]
struct ReportLine<'a> {
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    instance: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pengguna: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pks: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(default)]
    decision: Option<Decision>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    nik_digest: Option<Cow<'a, str>>,
    #[serde(default)]
    upstream_status: Option<u16>,
    #[serde(default)]
    quota_limit: Option<u32>,
    #[serde(default, borrow)]
    balikan: Option<BalikanLine<'a>>,
}

impl ReportLine<'_> {
    /// [`crate::Record::is_balikan`], on the borrowed line.
    fn is_balikan(&self) -> bool {
        self.balikan.is_some() || self.action.as_deref() == Some(BALIKAN_ACTION)
    }
}

/// The `balikan` member of a line.
#[derive(Deserialize)]
struct BalikanLine<'a> {
    #[serde(default)]
    accepted: u32,
    #[serde(default)]
    refused: u32,
    #[serde(default, borrow)]
    nik_digests: Vec<Cow<'a, str>>,
}

/// Running counters of one User ID (or one Pengguna, or everything, once merged).
#[derive(Default)]
struct Tally {
    requests: u64,
    hits: u64,
    /// Per active day: hits, and the day's quota.
    days: BTreeMap<NaiveDate, DayTally>,
    refusals: BTreeMap<String, u64>,
    channels: BTreeMap<String, u64>,
    /// The first 128 bits of each distinct digest: a collision needs ~2^64 NIKs.
    niks: HashSet<u128>,
}

#[derive(Default, Clone, Copy)]
struct DayTally {
    hits: u64,
    limit: u64,
}

#[derive(Default)]
struct Folder {
    /// Pengguna (None: unidentified) → User ID → tally.
    tallies: BTreeMap<Option<String>, BTreeMap<Option<String>, Tally>>,
    days_not_read: Vec<NaiveDate>,
    lines_read: u64,
    lines_skipped: u64,
    /// The instances named by the lines read since [`Folder::read`]'s caller last took them.
    instances: BTreeSet<String>,
    /// (Pengguna, PKS) → lookups and data balikan, for [`BalikanReport`].
    balikan: BTreeMap<(String, Option<String>), BalikanTally>,
}

/// Running counters of one Pengguna under one PKS, for [`BalikanCounts`].
#[derive(Default)]
struct BalikanTally {
    counts: BalikanCounts,
    looked_up: HashSet<u128>,
    returned: HashSet<u128>,
}

impl BalikanTally {
    fn counts(&self) -> BalikanCounts {
        BalikanCounts {
            distinct_niks_looked_up: self.looked_up.len() as u64,
            distinct_niks_returned: self.returned.len() as u64,
            ..self.counts.clone()
        }
    }
}

/// The first day of the "behind" rule's window in `semester`.
fn window_first(semester: Semester) -> NaiveDate {
    semester
        .last_day()
        .checked_sub_days(chrono::Days::new(u64::from(BALIKAN_WINDOW_DAYS - 1)))
        .unwrap_or(NaiveDate::MIN)
}

impl Folder {
    /// Folds the semester's lines of one log directory (and its archive) in.
    fn read(
        &mut self,
        log: &LogDir,
        semester: Semester,
        pengguna: Option<&str>,
    ) -> Result<Read, ReportError> {
        let (dir, archive) = (log.dir.as_path(), log.archive.as_deref());
        let unreadable = |path: &Path, source| ReportError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        let first = semester.first_day();
        let last = semester.last_day();
        let in_range = |day: NaiveDate| day >= first && day <= last.succ_opt().unwrap_or(last);
        let mut files_read = 0;
        let files = files::list_with_archive(dir, archive).map_err(|e| unreadable(dir, e))?;
        let manifest = Manifest::read_unchecked(dir).map_err(|e| unreadable(dir, e))?;
        let days_not_read = manifest
            .entries
            .iter()
            .map(|e| e.day)
            .filter(|&day| in_range(day) && files.iter().all(|f| f.day != day))
            .collect();
        for file in files {
            if !file.regular || !in_range(file.day) {
                continue;
            }
            files_read += 1;
            let mut reader = files::open_reader(&file).map_err(|e| unreadable(&file.path, e))?;
            while let Some(line) =
                files::read_line(&mut reader).map_err(|e| unreadable(&file.path, e))?
            {
                self.lines_read += 1;
                if !line.terminated || line.oversized {
                    self.lines_skipped += 1;
                    continue;
                }
                self.fold(&line.bytes, semester, pengguna);
            }
        }
        Ok(Read {
            files_read,
            days_not_read,
        })
    }

    fn fold(&mut self, bytes: &[u8], semester: Semester, only: Option<&str>) {
        let Ok(line) = serde_json::from_slice::<ReportLine<'_>>(bytes) else {
            self.lines_skipped += 1;
            return;
        };
        if let Some(instance) = line.instance.as_deref()
            && !self.instances.contains(instance)
        {
            self.instances.insert(instance.to_owned());
        }
        if line.event.is_some() {
            return; // the writer's own events are not requests
        }
        let (Some(time), Some(decision)) = (line.time.as_deref(), line.decision) else {
            self.lines_skipped += 1;
            return;
        };
        let Ok(time) = DateTime::parse_from_rfc3339(time) else {
            self.lines_skipped += 1;
            return;
        };
        let day = wib_day(time.with_timezone(&Utc));
        if !semester.contains(day) {
            return;
        }
        let pengguna = line.pengguna.as_deref();
        if only.is_some() && pengguna != only {
            return;
        }
        if decision == Decision::Allow
            && let Some(pengguna) = pengguna
        {
            self.fold_balikan(&line, pengguna, day, semester);
        }
        // A caller who was never identified gets no User ID of their own: the name in the
        // request is whatever they typed.
        let user = pengguna.and(line.user_id.as_deref());
        let tally = self
            .tallies
            .entry(pengguna.map(str::to_owned))
            .or_default()
            .entry(user.map(str::to_owned))
            .or_default();
        tally.requests += 1;
        match decision {
            // A data-balikan batch reaches the DWH too, but it is no lookup (Record::is_hit).
            Decision::Allow if line.upstream_status.is_some() && !line.is_balikan() => {
                tally.hits += 1;
                let day_tally = tally.days.entry(day).or_default();
                day_tally.hits += 1;
                day_tally.limit = day_tally.limit.max(line.quota_limit.map_or(0, u64::from));
                if let Some(channel) = line.channel.as_deref() {
                    *tally.channels.entry(channel.to_owned()).or_default() += 1;
                }
                if let Some(digest) = line.nik_digest.as_deref().and_then(digest_prefix) {
                    tally.niks.insert(digest);
                }
            }
            Decision::Allow => {}
            Decision::Deny => {
                let reason = line.reason.as_deref().unwrap_or("unspecified");
                *tally.refusals.entry(reason.to_owned()).or_default() += 1;
            }
        }
    }

    /// Counts an allowed record's lookup or data balikan under its Pengguna and PKS.
    fn fold_balikan(
        &mut self,
        line: &ReportLine<'_>,
        pengguna: &str,
        day: NaiveDate,
        semester: Semester,
    ) {
        let balikan = line.is_balikan();
        let hit = line.upstream_status.is_some() && !balikan;
        if !hit && !balikan {
            return;
        }
        let in_window = day >= window_first(semester);
        let tally = self
            .balikan
            .entry((pengguna.to_owned(), line.pks.as_deref().map(str::to_owned)))
            .or_default();
        if hit {
            tally.counts.lookups += 1;
            tally.counts.lookups_in_window += u64::from(in_window);
            if let Some(digest) = line.nik_digest.as_deref().and_then(digest_prefix) {
                tally.looked_up.insert(digest);
            }
            return;
        }
        tally.counts.batches += 1;
        let Some(batch) = &line.balikan else {
            return;
        };
        tally.counts.accepted += u64::from(batch.accepted);
        tally.counts.refused += u64::from(batch.refused);
        if batch.accepted > 0 {
            if in_window {
                tally.counts.accepted_in_window += u64::from(batch.accepted);
            }
            tally.counts.last_balikan = tally.counts.last_balikan.max(Some(day));
        }
        tally
            .returned
            .extend(batch.nik_digests.iter().filter_map(|d| digest_prefix(d)));
    }

    fn finish(self, semester: Semester, only: Option<&str>, files_read: u64) -> Report {
        let mut all = Tally::default();
        let mut pengguna = Vec::new();
        let mut unidentified = None;
        for (id, users) in self.tallies {
            let mut total = Tally::default();
            let mut user_reports = Vec::new();
            for (user_id, tally) in users {
                user_reports.push(UserReport {
                    user_id,
                    usage: tally.usage(false),
                });
                total.absorb(tally);
            }
            let usage = total.usage(true);
            all.absorb(total);
            let entry = PenggunaReport {
                pengguna: id,
                usage,
                users: user_reports,
            };
            if entry.pengguna.is_some() {
                pengguna.push(entry);
            } else {
                unidentified = Some(entry);
            }
        }
        pengguna.extend(unidentified);
        let mut balikan_totals = BalikanTally::default();
        let mut rows = Vec::with_capacity(self.balikan.len());
        for ((id, pks), tally) in self.balikan {
            let counts = tally.counts();
            let t = &mut balikan_totals.counts;
            t.lookups += counts.lookups;
            t.lookups_in_window += counts.lookups_in_window;
            t.batches += counts.batches;
            t.accepted += counts.accepted;
            t.refused += counts.refused;
            t.accepted_in_window += counts.accepted_in_window;
            t.last_balikan = t.last_balikan.max(counts.last_balikan);
            balikan_totals.looked_up.extend(tally.looked_up);
            balikan_totals.returned.extend(tally.returned);
            rows.push(BalikanRow {
                pengguna: id,
                pks,
                obligated: None,
                counts,
                behind: false,
            });
        }
        let balikan = BalikanReport {
            obligations_checked: false,
            window_first: window_first(semester),
            window_last: semester.last_day(),
            rows,
            totals: balikan_totals.counts(),
            behind: Vec::new(),
        };
        Report {
            semester: semester.to_string(),
            first_day: semester.first_day(),
            last_day: semester.last_day(),
            pengguna_filter: only.map(str::to_owned),
            files_read,
            days_not_read: self.days_not_read,
            lines_read: self.lines_read,
            lines_skipped: self.lines_skipped,
            totals: all.usage(true),
            pengguna,
            balikan,
            chains: Vec::new(),
        }
    }
}

impl Tally {
    /// Adds another User ID's counters: days add up hits and quotas, NIK sets unite.
    fn absorb(&mut self, other: Tally) {
        self.requests += other.requests;
        self.hits += other.hits;
        for (day, t) in other.days {
            let mine = self.days.entry(day).or_default();
            mine.hits += t.hits;
            mine.limit += t.limit;
        }
        for (reason, n) in other.refusals {
            *self.refusals.entry(reason).or_default() += n;
        }
        for (channel, n) in other.channels {
            *self.channels.entry(channel).or_default() += n;
        }
        if self.niks.len() < other.niks.len() {
            let mine = std::mem::replace(&mut self.niks, other.niks);
            self.niks.extend(mine);
        } else {
            self.niks.extend(other.niks);
        }
    }

    fn usage(&self, with_daily: bool) -> Usage {
        let peak_day = self
            .days
            .iter()
            .fold(None::<PeakDay>, |best, (&date, t)| match best {
                Some(b) if b.hits >= t.hits => Some(b),
                _ => Some(PeakDay { date, hits: t.hits }),
            });
        let quota_limit_sum: u64 = self.days.values().map(|t| t.limit).sum();
        let ratio = |n: u64, of: u64| (of > 0).then(|| n as f64 / of as f64);
        Usage {
            requests: self.requests,
            hits: self.hits,
            active_days: self.days.len() as u64,
            peak_day,
            quota_limit_sum,
            quota_utilisation: ratio(self.hits, quota_limit_sum),
            distinct_niks: self.niks.len() as u64,
            refusals_total: self.refusals.values().sum(),
            refusals: self.refusals.clone(),
            channels: self
                .channels
                .iter()
                .map(|(channel, &hits)| {
                    let share = ratio(hits, self.hits).unwrap_or(0.0);
                    (channel.clone(), ChannelShare { hits, share })
                })
                .collect(),
            daily_hits: with_daily.then(|| self.days.iter().map(|(&d, t)| (d, t.hits)).collect()),
        }
    }
}

/// The first 128 bits of a hex digest.
fn digest_prefix(hex_digest: &str) -> Option<u128> {
    let prefix = hex_digest.get(..32)?;
    u128::from_str_radix(prefix, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semesters_parse_and_bound() {
        let s: Semester = "2026-1".parse().expect("semester");
        assert_eq!(s.first_day().to_string(), "2026-01-01");
        assert_eq!(s.last_day().to_string(), "2026-06-30");
        let s: Semester = "2026-2".parse().expect("semester");
        assert_eq!(s.first_day().to_string(), "2026-07-01");
        assert_eq!(s.last_day().to_string(), "2026-12-31");
        assert!(s.contains(NaiveDate::from_ymd_opt(2026, 7, 1).expect("date")));
        assert!(!s.contains(NaiveDate::from_ymd_opt(2026, 6, 30).expect("date")));
        for bad in ["2026", "2026-3", "2026-0", "x-1", "2026-1-1"] {
            let err = bad.parse::<Semester>().expect_err(bad);
            assert!(err.to_string().contains("YYYY-1"), "{err}");
        }
    }
}

//! Sanctions of art. 45 Permendagri 102/2019, kept in one TOML file Ditjen can read and
//! edit (`sanksi.toml`). Each entry overrides the PKS files while it stands: a reduced
//! quota, a deactivated User ID, a cut network, a deactivated SAM, a frozen or ended PKS.
//! Lifting a sanction is removing its entry. The admin API edits the file with
//! [`add_to_text`] and [`remove_from_text`], which keep the operator's comments.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::{ConfigError, ConfigErrors, Source, read_file};
use crate::pks::{PksSet, PksStatus, SamStatus, UserStatus};

/// What a sanction does (art. 45).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SanctionKind {
    /// Reduce a User ID's daily quota (`sasaran`: User ID; `kuota_harian`: the new quota).
    KurangiKuota,
    /// Deactivate a User ID (`sasaran`: User ID).
    NonaktifkanUser,
    /// Cut a network off (`sasaran`: an address or CIDR).
    PutusJaringan,
    /// Deactivate a card reader's SAM (`sasaran`: SAM id).
    NonaktifkanSam,
    /// Freeze a PKS (`sasaran`: PKS number).
    BekukanPks,
    /// End a PKS (`sasaran`: PKS number).
    AkhiriPks,
}

impl SanctionKind {
    /// Every kind, in the order metrics and listings show them.
    pub const ALL: [Self; 6] = [
        Self::KurangiKuota,
        Self::NonaktifkanUser,
        Self::PutusJaringan,
        Self::NonaktifkanSam,
        Self::BekukanPks,
        Self::AkhiriPks,
    ];

    /// The name used in the file and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KurangiKuota => "kurangi_kuota",
            Self::NonaktifkanUser => "nonaktifkan_user",
            Self::PutusJaringan => "putus_jaringan",
            Self::NonaktifkanSam => "nonaktifkan_sam",
            Self::BekukanPks => "bekukan_pks",
            Self::AkhiriPks => "akhiri_pks",
        }
    }

    /// The short label of the `gerbang_sanctions_active{kind}` metric.
    pub fn metric_kind(self) -> &'static str {
        match self {
            Self::KurangiKuota => "quota",
            Self::NonaktifkanUser => "user",
            Self::PutusJaringan => "network",
            Self::NonaktifkanSam => "sam",
            Self::BekukanPks | Self::AkhiriPks => "pks",
        }
    }

    /// Parses the file/API name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One sanction as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sanction {
    /// Stable id (`S-…`), used to lift it.
    pub id: String,
    pub jenis: SanctionKind,
    /// What it applies to: User ID, CIDR, SAM id or PKS number, by `jenis`.
    pub sasaran: String,
    /// The reduced quota, for `kurangi_kuota`.
    pub kuota_harian: Option<u32>,
    /// Why, e.g. the number of the Director General's letter.
    pub alasan: String,
    /// Who applied it.
    pub oleh: String,
    /// When it was applied (RFC 3339).
    pub sejak: String,
    /// Line of the entry, for messages.
    #[serde(skip)]
    pub line: usize,
    /// The network `putus_jaringan` cuts off, parsed once when the file is read.
    #[serde(skip)]
    network: Option<IpNet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SanctionsFile {
    #[serde(default)]
    sanksi: Vec<Spanned<SanctionEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SanctionEntry {
    id: String,
    jenis: SanctionKind,
    sasaran: String,
    #[serde(default)]
    kuota_harian: Option<u32>,
    alasan: String,
    #[serde(default)]
    oleh: String,
    #[serde(default)]
    sejak: String,
}

impl SanctionEntry {
    fn fields(&self) -> SanctionFields {
        SanctionFields {
            jenis: self.jenis,
            sasaran: self.sasaran.clone(),
            kuota_harian: self.kuota_harian,
            alasan: self.alasan.clone(),
            oleh: self.oleh.clone(),
            sejak: self.sejak.clone(),
        }
    }
}

/// A sanction's fields, as a `[[sanksi]]` entry writes them (besides its id) and as the
/// shared store (`gerbang-shared`'s `SanctionStore`) keeps them as JSON.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SanctionFields {
    pub jenis: SanctionKind,
    pub sasaran: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kuota_harian: Option<u32>,
    pub alasan: String,
    #[serde(default)]
    pub oleh: String,
    #[serde(default)]
    pub sejak: String,
}

impl SanctionFields {
    /// The fields of `new`, applied at `now`.
    pub fn new(new: &NewSanction, now: chrono::DateTime<chrono::FixedOffset>) -> Self {
        Self {
            jenis: new.jenis,
            sasaran: new.sasaran.clone(),
            kuota_harian: new.kuota_harian,
            alasan: new.alasan.clone(),
            oleh: new.oleh.clone(),
            sejak: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        }
    }

    /// What is wrong with these fields, as (field, message); empty when they can stand.
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.alasan.trim().is_empty() {
            problems.push((
                "alasan",
                "say why (e.g. the number of the Director General's letter)".into(),
            ));
        }
        match (self.jenis, self.kuota_harian) {
            (SanctionKind::KurangiKuota, None) => problems.push((
                "kuota_harian",
                "required for kurangi_kuota: the reduced daily quota".into(),
            )),
            (SanctionKind::KurangiKuota, Some(0)) => problems.push((
                "kuota_harian",
                "must be at least 1; to stop a User ID use nonaktifkan_user".into(),
            )),
            (SanctionKind::KurangiKuota, Some(_)) | (_, None) => {}
            (_, Some(_)) => problems.push((
                "kuota_harian",
                format!("only used with kurangi_kuota, not {}", self.jenis.as_str()),
            )),
        }
        if self.jenis == SanctionKind::PutusJaringan
            && let Err(msg) = parse_network(&self.sasaran)
        {
            problems.push(("sasaran", msg));
        }
        problems
    }

    /// Whether these fields can stand, and if not, every reason in one line.
    pub fn check(&self) -> Result<(), String> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        let text: Vec<String> = problems
            .into_iter()
            .map(|(field, msg)| format!("{field}: {msg}"))
            .collect();
        Err(text.join("; "))
    }

    /// Whether the User ID, SAM or PKS these fields name is in `agreements` (a network
    /// needs none): a sanction on nothing would silently not apply.
    pub fn target_known(&self, agreements: &[Arc<crate::Pks>]) -> bool {
        let target = self.sasaran.as_str();
        match self.jenis {
            SanctionKind::KurangiKuota | SanctionKind::NonaktifkanUser => agreements
                .iter()
                .any(|p| p.users.iter().any(|u| u.id == target)),
            SanctionKind::NonaktifkanSam => agreements
                .iter()
                .any(|p| p.sams.iter().any(|x| x.id == target)),
            SanctionKind::BekukanPks | SanctionKind::AkhiriPks => {
                agreements.iter().any(|p| p.nomor == target)
            }
            SanctionKind::PutusJaringan => true,
        }
    }

    fn to_sanction(&self, id: &str, line: usize) -> Sanction {
        Sanction {
            id: id.to_string(),
            jenis: self.jenis,
            sasaran: self.sasaran.clone(),
            kuota_harian: self.kuota_harian,
            alasan: self.alasan.clone(),
            oleh: self.oleh.clone(),
            sejak: self.sejak.clone(),
            line,
            network: match self.jenis {
                SanctionKind::PutusJaringan => parse_network(&self.sasaran).ok(),
                _ => None,
            },
        }
    }
}

/// The sanctions in force, in file order.
#[derive(Debug, Clone, Default)]
pub struct Sanctions {
    /// The file they were read from (`None`: no sanctions file configured).
    pub source: Option<PathBuf>,
    pub entries: Vec<Sanction>,
}

impl Sanctions {
    /// Loads and checks the sanctions file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = read_file(path)?;
        Self::parse(path, &text)
    }

    /// Checks a sanctions text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let src = Source::new(path, text);
        let file: SanctionsFile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let mut errors = Vec::new();
        let mut entries: Vec<Sanction> = Vec::with_capacity(file.sanksi.len());
        for (i, spanned) in file.sanksi.iter().enumerate() {
            let span = spanned.span();
            let e = spanned.get_ref();
            let line = src.line_col(span.start).0;
            let fields = e.fields();
            let mut problems = fields.problems();
            if e.id.trim().is_empty() {
                problems.push(("id", "must not be empty".into()));
            } else if let Some(first) = entries.iter().find(|s| s.id == e.id) {
                problems.push((
                    "id",
                    format!("`{}` is also used at line {}", e.id, first.line),
                ));
            }
            for (name, msg) in problems {
                errors.push(src.error(Some(span.clone()), format!("sanksi[{i}].{name}"), msg));
            }
            entries.push(fields.to_sanction(&e.id, line));
        }
        if errors.is_empty() {
            Ok(Self {
                source: Some(path.to_path_buf()),
                entries,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The sanctions kept in the shared store (id → [`SanctionFields`] as JSON). An entry
    /// that does not parse or check is left out and named in the second value: the others
    /// stay in force (one bad entry must not lift them all).
    pub fn shared(entries: &std::collections::BTreeMap<String, String>) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut kept = Vec::with_capacity(entries.len());
        for (id, text) in entries {
            match serde_json::from_str::<SanctionFields>(text) {
                Ok(fields) => match fields.check() {
                    Ok(()) => kept.push(fields.to_sanction(id, 0)),
                    Err(why) => problems.push(format!("shared sanction `{id}`: {why}")),
                },
                Err(e) => problems.push(format!("shared sanction `{id}` does not parse: {e}")),
            }
        }
        (
            Self {
                source: None,
                entries: kept,
            },
            problems,
        )
    }

    /// These sanctions followed by `more`'s.
    #[must_use]
    pub fn with(mut self, more: Self) -> Self {
        self.entries.extend(more.entries);
        self
    }

    /// How many sanctions of `kind` stand.
    pub fn count(&self, kind: SanctionKind) -> usize {
        self.entries.iter().filter(|s| s.jenis == kind).count()
    }

    /// Applies every sanction to the loaded agreements and the block list. A sanction whose
    /// target does not exist is an error naming its line: it would otherwise silently not
    /// apply.
    ///
    /// The agreements are shared with the parsed files (and with the snapshot before a
    /// reload), so only an agreement a sanction actually changes is copied.
    pub fn apply(&self, set: &mut PksSet, blocked: &mut Vec<IpNet>) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        for s in &self.entries {
            let found = match s.jenis {
                SanctionKind::KurangiKuota | SanctionKind::NonaktifkanUser => {
                    let at = set.agreements.iter().enumerate().find_map(|(p, pks)| {
                        let u = pks.users.iter().position(|u| u.id == s.sasaran)?;
                        Some((p, u))
                    });
                    if let Some((p, u)) = at {
                        let user = &set.agreements[p].users[u];
                        let (kuota, status) = match s.kuota_harian.and_then(NonZeroU32::new) {
                            Some(q) if s.jenis == SanctionKind::KurangiKuota => {
                                (user.kuota_harian.min(q), user.status)
                            }
                            _ => (user.kuota_harian, UserStatus::Nonaktif),
                        };
                        if (kuota, status) != (user.kuota_harian, user.status) {
                            let user = &mut Arc::make_mut(&mut set.agreements[p]).users[u];
                            user.kuota_harian = kuota;
                            user.status = status;
                        }
                    }
                    at.is_some()
                }
                SanctionKind::PutusJaringan => {
                    blocked.extend(s.network);
                    true
                }
                SanctionKind::NonaktifkanSam => {
                    let at = set.agreements.iter().enumerate().find_map(|(p, pks)| {
                        let x = pks.sams.iter().position(|x| x.id == s.sasaran)?;
                        Some((p, x))
                    });
                    if let Some((p, x)) = at
                        && set.agreements[p].sams[x].status == SamStatus::Aktif
                    {
                        Arc::make_mut(&mut set.agreements[p]).sams[x].status = SamStatus::Nonaktif;
                    }
                    at.is_some()
                }
                SanctionKind::BekukanPks | SanctionKind::AkhiriPks => {
                    let at = set.agreements.iter().position(|p| p.nomor == s.sasaran);
                    if let Some(p) = at {
                        let status = match (s.jenis, set.agreements[p].status) {
                            (_, PksStatus::Diakhiri) | (SanctionKind::AkhiriPks, _) => {
                                PksStatus::Diakhiri
                            }
                            _ => PksStatus::Dibekukan,
                        };
                        if set.agreements[p].status != status {
                            Arc::make_mut(&mut set.agreements[p]).status = status;
                        }
                    }
                    at.is_some()
                }
            };
            if !found {
                errors.push(ConfigError {
                    file: self.source.clone().unwrap_or_default(),
                    line: Some(s.line),
                    column: None,
                    field: "sasaran".into(),
                    message: format!(
                        "sanction `{}` ({}) names `{}`, which no PKS file has; lift it or fix the target",
                        s.id,
                        s.jenis.as_str(),
                        s.sasaran
                    ),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// A sanction to add, as the admin API or CLI receives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSanction {
    pub jenis: SanctionKind,
    pub sasaran: String,
    #[serde(default)]
    pub kuota_harian: Option<u32>,
    pub alasan: String,
    #[serde(default)]
    pub oleh: String,
}

/// Why an edit of the sanctions file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SanctionEditError {
    #[error("the sanctions file is not valid TOML: {0}")]
    Unreadable(String),
    #[error("no sanction with id `{0}`")]
    NotFound(String),
}

/// Appends `new` to the sanctions text under a fresh id, keeping everything else (comments
/// included) as it was. Returns the new text and the id. The caller checks the result with
/// [`Sanctions::parse`] and [`Sanctions::apply`] before writing it.
pub fn add_to_text(
    text: &str,
    new: &NewSanction,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> Result<(String, String), SanctionEditError> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| SanctionEditError::Unreadable(e.to_string()))?;
    let taken: Vec<String> = doc
        .get("sanksi")
        .and_then(|t| t.as_array_of_tables())
        .map(|a| {
            a.iter()
                .filter_map(|t| t.get("id").and_then(|v| v.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let id = fresh_id(now, |id| taken.iter().any(|t| t == id));
    let mut table = toml_edit::Table::new();
    table.insert("id", toml_edit::value(id.as_str()));
    table.insert("jenis", toml_edit::value(new.jenis.as_str()));
    table.insert("sasaran", toml_edit::value(new.sasaran.as_str()));
    if let Some(q) = new.kuota_harian {
        table.insert("kuota_harian", toml_edit::value(i64::from(q)));
    }
    table.insert("alasan", toml_edit::value(new.alasan.as_str()));
    table.insert("oleh", toml_edit::value(new.oleh.as_str()));
    table.insert(
        "sejak",
        toml_edit::value(SanctionFields::new(new, now).sejak),
    );
    if doc.get("sanksi").is_none() {
        // A file holding only comments keeps them above the first entry, not below it.
        let header = doc.trailing().as_str().unwrap_or("").trim_end().to_string();
        if !header.is_empty() {
            table.decor_mut().set_prefix(format!("{header}\n\n"));
            doc.set_trailing("");
        }
    }
    let entry = doc
        .entry("sanksi")
        .or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    match entry.as_array_of_tables_mut() {
        Some(array) => array.push(table),
        None => {
            return Err(SanctionEditError::Unreadable(
                "`sanksi` must be written as [[sanksi]] tables".into(),
            ));
        }
    }
    Ok((doc.to_string(), id))
}

/// An id for a sanction applied at `now` that `taken` says is free: `S-<date>-<time>`, with
/// `-1`, `-2`… when several are applied within a second.
pub fn fresh_id(
    now: chrono::DateTime<chrono::FixedOffset>,
    taken: impl Fn(&str) -> bool,
) -> String {
    let base = format!("S-{}", now.format("%Y%m%d-%H%M%S"));
    (0..)
        .map(|n| {
            if n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|id| !taken(id))
        .unwrap_or(base)
}

/// Removes the sanction `id` (lifting it), keeping everything else as it was.
pub fn remove_from_text(text: &str, id: &str) -> Result<String, SanctionEditError> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| SanctionEditError::Unreadable(e.to_string()))?;
    let array = doc
        .get_mut("sanksi")
        .and_then(|t| t.as_array_of_tables_mut())
        .ok_or_else(|| SanctionEditError::NotFound(id.to_string()))?;
    let index = array
        .iter()
        .position(|t| t.get("id").and_then(|v| v.as_str()) == Some(id))
        .ok_or_else(|| SanctionEditError::NotFound(id.to_string()))?;
    array.remove(index);
    Ok(doc.to_string())
}

/// A network to cut off: a single address or a CIDR, never everything.
fn parse_network(s: &str) -> Result<IpNet, String> {
    let net = match s.parse::<IpNet>() {
        Ok(n) => n.trunc(),
        Err(_) => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?,
    };
    if net.prefix_len() == 0 {
        return Err(format!("`{s}` would cut off every address"));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# Sanksi pasal 45
[[sanksi]]
id = "S-1"
jenis = "kurangi_kuota"
sasaran = "u1"
kuota_harian = 10
alasan = "surat 1"

[[sanksi]]
id = "S-2"
jenis = "putus_jaringan"
sasaran = "10.9.0.0/16"
alasan = "surat 2"
"#;

    fn at() -> chrono::DateTime<chrono::FixedOffset> {
        chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00+07:00").expect("date")
    }

    #[test]
    fn parses_and_counts() {
        let s = Sanctions::parse(Path::new("sanksi.toml"), FILE).expect("valid");
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.entries[1].line, 9);
        assert_eq!(s.count(SanctionKind::PutusJaringan), 1);
    }

    #[test]
    fn bad_entries_name_line_and_field() {
        let text = FILE.replace("kuota_harian = 10", "kuota_harian = 0");
        let err = Sanctions::parse(Path::new("sanksi.toml"), &text).expect_err("zero");
        let shown = err.to_string();
        assert!(
            shown.contains("sanksi.toml:2") && shown.contains("sanksi[0].kuota_harian"),
            "{shown}"
        );
        let text = FILE.replace("10.9.0.0/16", "0.0.0.0/0");
        let err = Sanctions::parse(Path::new("sanksi.toml"), &text).expect_err("everything");
        assert!(err.to_string().contains("every address"), "{err}");
        let text = FILE.replace("\"S-2\"", "\"S-1\"");
        let err = Sanctions::parse(Path::new("sanksi.toml"), &text).expect_err("dup");
        assert!(err.to_string().contains("also used at line 2"), "{err}");
    }

    #[test]
    fn apply_overrides_the_pks_files_and_refuses_unknown_targets() {
        let text = crate::pks::tests::sample_pks("1/A", "u1", "127.0.0.2");
        let files = vec![(PathBuf::from("a.toml"), text)];
        let vocab = crate::Vocabulary::embedded();
        let mut set = PksSet::parse_all(&files, &vocab).expect("valid");
        let mut blocked = Vec::new();
        let s = Sanctions::parse(Path::new("sanksi.toml"), FILE).expect("valid");
        s.apply(&mut set, &mut blocked).expect("applies");
        assert_eq!(set.agreements[0].users[0].kuota_harian.get(), 10);
        assert_eq!(blocked, vec!["10.9.0.0/16".parse::<IpNet>().expect("net")]);
        let more = format!(
            "{FILE}\n[[sanksi]]\nid = \"S-3\"\njenis = \"akhiri_pks\"\nsasaran = \"1/A\"\nalasan = \"x\"\n"
        );
        let s = Sanctions::parse(Path::new("sanksi.toml"), &more).expect("valid");
        s.apply(&mut set, &mut blocked).expect("applies");
        assert_eq!(set.agreements[0].status, PksStatus::Diakhiri);
        let unknown = FILE.replace("sasaran = \"u1\"", "sasaran = \"nobody\"");
        let s = Sanctions::parse(Path::new("sanksi.toml"), &unknown).expect("valid");
        let err = s.apply(&mut set, &mut blocked).expect_err("unknown user");
        assert!(
            err.to_string().contains("sanksi.toml:2") && err.to_string().contains("nobody"),
            "{err}"
        );
    }

    #[test]
    fn add_and_remove_keep_comments() {
        let new = NewSanction {
            jenis: SanctionKind::NonaktifkanUser,
            sasaran: "u2".into(),
            kuota_harian: None,
            alasan: "surat 3".into(),
            oleh: "ops".into(),
        };
        let (text, id) = add_to_text(FILE, &new, at()).expect("added");
        assert_eq!(id, "S-20261123-100000");
        assert!(text.starts_with("# Sanksi pasal 45"), "{text}");
        let (text, second) = add_to_text(&text, &new, at()).expect("added");
        assert_eq!(second, "S-20261123-100000-1");
        let parsed = Sanctions::parse(Path::new("s.toml"), &text).expect("valid");
        assert_eq!(parsed.entries.len(), 4);
        let text = remove_from_text(&text, &id).expect("removed");
        let parsed = Sanctions::parse(Path::new("s.toml"), &text).expect("valid");
        assert_eq!(parsed.entries.len(), 3);
        assert!(parsed.entries.iter().all(|s| s.id != id));
        assert!(matches!(
            remove_from_text(&text, "S-404"),
            Err(SanctionEditError::NotFound(_))
        ));
        let (commented, _) = add_to_text("# only a comment\n", &new, at()).expect("added");
        assert!(
            commented.starts_with("# only a comment\n\n[[sanksi]]"),
            "{commented}"
        );
        let (empty, _) = add_to_text("", &new, at()).expect("added to empty");
        assert_eq!(
            Sanctions::parse(Path::new("s.toml"), &empty)
                .expect("valid")
                .entries
                .len(),
            1
        );
    }

    #[test]
    fn shared_entries_that_do_not_check_are_left_out_and_named_the_others_stand() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-06-01T10:00:00+07:00").expect("time");
        let good = NewSanction {
            jenis: SanctionKind::KurangiKuota,
            sasaran: "u1".into(),
            kuota_harian: Some(5),
            alasan: "Surat (uji)".into(),
            oleh: "uji".into(),
        };
        let text = serde_json::to_string(&SanctionFields::new(&good, now)).expect("json");
        let entries: std::collections::BTreeMap<String, String> = [
            ("S-1".to_string(), text),
            (
                "S-2".to_string(),
                r#"{"jenis":"kurangi_kuota","sasaran":"u2","alasan":"x"}"#.to_string(),
            ),
            (
                "S-3".to_string(),
                r#"{"jenis":"bakar","sasaran":"u3"}"#.to_string(),
            ),
            (
                "S-4".to_string(),
                r#"{"jenis":"putus_jaringan","sasaran":"0.0.0.0/0","alasan":"x"}"#.to_string(),
            ),
        ]
        .into();
        let (set, problems) = Sanctions::shared(&entries);
        assert_eq!(set.entries.len(), 1, "{problems:?}");
        assert_eq!(set.entries[0].id, "S-1");
        assert_eq!(set.entries[0].kuota_harian, Some(5));
        assert_eq!(set.entries[0].sejak, "2026-06-01T10:00:00+07:00");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("S-2") && problems[0].contains("kuota_harian"));
        assert!(problems[1].contains("S-3") && problems[1].contains("does not parse"));
        assert!(problems[2].contains("S-4") && problems[2].contains("sasaran"));
    }

    #[test]
    fn a_fresh_id_steps_over_the_ones_taken() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-06-01T10:00:00+07:00").expect("time");
        let taken = ["S-20260601-100000", "S-20260601-100000-1"];
        assert_eq!(
            fresh_id(now, |id| taken.contains(&id)),
            "S-20260601-100000-2"
        );
    }
}

//! The TOML files an operator or Ditjen edits: `gerbang.toml`, the PKS files, the
//! sanctions file, the block list and the vocabulary. Random edits of a valid file (lines
//! deleted, repeated, swapped or inserted, values replaced by ones of another type or out
//! of range, the text cut short, a stray character) never panic, and every error names the
//! file and a line that exists in that file.

use std::path::{Path, PathBuf};

use gerbang_core::{Config, ConfigErrors, PksSet, Sanctions, Vocabulary, load_blocklist};
use proptest::prelude::*;

const GERBANG: &str = include_str!("../../../../config/gerbang.toml");
const VOCABULARY: &str = include_str!("../../../../config/elemen.toml");
const BLOCKLIST: &str = "# Networks cut off (synthetic).\nip = [\"10.9.0.0/16\", \"192.0.2.7\"]\n";
const SANCTIONS: &str = r#"# Sanctions in force (synthetic).
[[sanksi]]
id = "S-20260101-000001"
jenis = "kurangi_kuota"
sasaran = "rsud_cth_01"
kuota_harian = 25
alasan = "Surat contoh"
oleh = "operator"
sejak = "2026-01-01T10:00:00+07:00"

[[sanksi]]
id = "S-20260101-000002"
jenis = "putus_jaringan"
sasaran = "10.1.0.0/16"
alasan = "Surat contoh"
"#;
const PKS: [(&str, &str); 6] = [
    (
        "bkd-karanganyar.toml",
        include_str!("../../../../config/pks/bkd-karanganyar.toml"),
    ),
    (
        "disnakertrans-jabar.toml",
        include_str!("../../../../config/pks/disnakertrans-jabar.toml"),
    ),
    (
        "fintek-asing.toml",
        include_str!("../../../../config/pks/fintek-asing.toml"),
    ),
    (
        "koperasi-berakhir.toml",
        include_str!("../../../../config/pks/koperasi-berakhir.toml"),
    ),
    (
        "polda-contoh.toml",
        include_str!("../../../../config/pks/polda-contoh.toml"),
    ),
    (
        "rsud-contoh.toml",
        include_str!("../../../../config/pks/rsud-contoh.toml"),
    ),
];

/// Keys of every file, so an inserted line is often a real field in the wrong place.
const KEYS: &[&str] = &[
    "address",
    "plaintext",
    "tls_cert",
    "tls",
    "sni",
    "timeout_ms",
    "connect_timeout_ms",
    "status_mode",
    "max_body_bytes",
    "max_failures",
    "store",
    "block",
    "redis_url",
    "lease",
    "emergency_share",
    "key_prefix",
    "redis_timeout_ms",
    "burst_per_user",
    "threads",
    "dir",
    "key_file",
    "fsync_interval_ms",
    "token_file",
    "quota_series",
    "upstream_prefix",
    "idle_timeout_secs",
    "absolute_timeout_secs",
    "cookie_name",
    "nomor",
    "pengguna",
    "jenis_pengguna",
    "elemen_data",
    "metode_akses",
    "kunci_akses",
    "mulai",
    "sampai",
    "kepemilikan_asing_mayoritas",
    "penegak_hukum",
    "persetujuan_menteri",
    "kuota_harian_pengguna",
    "status",
    "id",
    "password_hash",
    "ip_lan",
    "kuota_harian",
    "public_key",
    "jenis",
    "sasaran",
    "alasan",
    "ip",
    "nama",
    "label",
    "dilindungi",
    "unknown",
];

/// Values of every type and out of every range. None is a host name with a port (`::1`
/// would be read as host `:`), so no edit makes the test ask DNS.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "4294967296",
    "18446744073709551616",
    "1.5",
    "nan",
    "inf",
    "true",
    "false",
    "\"\"",
    "\"x\"",
    "\"a b\"",
    "\"NIK\"",
    "\"ELEMEN\"",
    "\"nonaktif\"",
    "\"redis\"",
    "\"memory\"",
    "\"rest\"",
    "\"127.0.0.1:0\"",
    "\"10.0.0.5:7443\"",
    "\"[::1]:1\"",
    "\"0.0.0.0/0\"",
    "\"10.0.0.1/8\"",
    "\"unix:\"",
    "\"redis://:pw@127.0.0.1:1/0\"",
    "\"ed25519:AAAA\"",
    "\"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\"",
    "[]",
    "[1, \"a\"]",
    "[\"NIK\", \"NIK\"]",
    "[\"web_service\"]",
    "[\"card_reader\"]",
    "{}",
    "{ a = 1 }",
    "1979-05-27",
    "1979-02-30",
    "2024-02-29",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "\"\"\"\nline\nline\"\"\"",
    "'lit'",
    "\"\\u0000\"",
    "\"é\"",
];

/// Lines that are not `key = value`.
const LINES: &[&str] = &[
    "",
    "# comment",
    "[listen]",
    "[upstream]",
    "[quota]",
    "[portal]",
    "[sam]",
    "[admin]",
    "[audit]",
    "[api]",
    "[auth]",
    "[pks]",
    "[policy]",
    "[server]",
    "[[user]]",
    "[[sam]]",
    "[[sanksi]]",
    "[[elemen]]",
    "[grup]",
    "[listen.extra]",
    "[",
    "]]",
    "= 1",
    "a.b.c = 1",
    "\"quoted key\" = 1",
    "x = \"\"\"",
    "x = [",
    "status = ",
    "\u{feff}",
    "\t",
];

/// Stray characters.
const CHARS: &[char] = &[
    '"', '\'', '[', ']', '{', '}', '=', '#', '\\', '\n', '\r', '\t', ' ', '.', ',', '0', 'x',
    '\u{0}', '\u{7f}', 'é', '\u{feff}',
];

/// One edit of a file's text.
#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(prop::sample::Index),
    RepeatLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
    /// The value of a `key = value` line replaced.
    ReplaceValue(prop::sample::Index, &'static str),
    InsertLine(prop::sample::Index, String),
    CutAt(prop::sample::Index),
    InsertChar(prop::sample::Index, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    use proptest::sample::{Index, select};
    let line = prop_oneof![
        (select(KEYS), select(VALUES)).prop_map(|(k, v)| format!("{k} = {v}")),
        select(LINES).prop_map(str::to_string),
    ];
    prop_oneof![
        2 => any::<Index>().prop_map(Edit::DeleteLine),
        1 => any::<Index>().prop_map(Edit::RepeatLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        4 => (any::<Index>(), select(VALUES)).prop_map(|(i, v)| Edit::ReplaceValue(i, v)),
        3 => (any::<Index>(), line).prop_map(|(i, l)| Edit::InsertLine(i, l)),
        1 => any::<Index>().prop_map(Edit::CutAt),
        2 => (any::<Index>(), select(CHARS)).prop_map(|(i, c)| Edit::InsertChar(i, c)),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(edit(), 1..4)
}

/// Applies the edits in order.
fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_string();
    for e in edits {
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        match e {
            Edit::DeleteLine(i) => {
                lines.remove(i.index(lines.len()));
            }
            Edit::RepeatLine(i) => {
                let at = i.index(lines.len());
                let line = lines[at].clone();
                lines.insert(at, line);
            }
            Edit::SwapLines(a, b) => {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
            }
            Edit::ReplaceValue(i, v) => {
                let fields: Vec<usize> = (0..lines.len())
                    .filter(|&n| {
                        !lines[n].trim_start().starts_with('#') && lines[n].contains(" = ")
                    })
                    .collect();
                if !fields.is_empty() {
                    let n = fields[i.index(fields.len())];
                    if let Some((key, _)) = lines[n].split_once(" = ") {
                        lines[n] = format!("{key} = {v}");
                    }
                }
            }
            Edit::InsertLine(i, line) => {
                let at = i.index(lines.len() + 1);
                lines.insert(at, line.clone());
            }
            Edit::CutAt(i) => {
                let joined = lines.join("\n");
                let bounds: Vec<usize> = (0..=joined.len())
                    .filter(|&b| joined.is_char_boundary(b))
                    .collect();
                text = joined[..bounds[i.index(bounds.len())]].to_string();
                continue;
            }
            Edit::InsertChar(i, c) => {
                // Never inside an address: a changed host with a valid port would be
                // looked up in DNS.
                let joined = lines.join("\n");
                let mut spots = Vec::new();
                let mut start = 0;
                for line in joined.split('\n') {
                    if !line.contains("address") {
                        spots.extend(
                            (start..=start + line.len()).filter(|&b| joined.is_char_boundary(b)),
                        );
                    }
                    start += line.len() + 1;
                }
                if !spots.is_empty() {
                    let at = spots[i.index(spots.len())];
                    text = format!("{}{c}{}", &joined[..at], &joined[at..]);
                    continue;
                }
            }
        }
        text = lines.join("\n");
    }
    text
}

/// Every error names one of `files` and a line that exists in it, and shows both first.
fn located(errors: &ConfigErrors, files: &[(PathBuf, String)]) -> Result<(), TestCaseError> {
    prop_assert!(errors.iter().next().is_some(), "no error in an error");
    for e in errors.iter() {
        let text = files
            .iter()
            .find(|(p, _)| *p == e.file)
            .map(|(_, t)| t)
            .ok_or_else(|| TestCaseError::fail(format!("names another file: {e}")))?;
        let lines = text.split('\n').count();
        let line = e
            .line
            .ok_or_else(|| TestCaseError::fail(format!("no line: {e}")))?;
        prop_assert!(
            (1..=lines).contains(&line),
            "line {} of {}: {}",
            line,
            lines,
            e
        );
        let shown = e.to_string();
        let prefix = format!("{}:{line}", e.file.display());
        prop_assert!(shown.starts_with(&prefix), "{}", shown);
    }
    Ok(())
}

/// Edits `base`, parses it as `path` with `parse`, and checks its errors' locations.
fn edited<T>(
    path: &str,
    base: &str,
    edits: &[Edit],
    parse: impl Fn(&Path, &str) -> Result<T, ConfigErrors>,
) -> Result<(), TestCaseError> {
    let files = [(PathBuf::from(path), apply(base, edits))];
    match parse(&files[0].0, &files[0].1) {
        Ok(_) => Ok(()),
        Err(errors) => located(&errors, &files),
    }
}

proptest! {
    #![proptest_config(crate::cases(160))]

    #[test]
    fn main_config_errors_are_located(edits in edits()) {
        edited("/etc/gerbang/gerbang.toml", GERBANG, &edits, Config::parse)?;
    }

    /// One PKS file edited, checked with another (sometimes a copy of it under another
    /// name, so the set-wide checks complain too).
    #[test]
    fn pks_errors_are_located(
        which in 0..PKS.len(),
        other in 0..PKS.len(),
        edits in edits(),
    ) {
        let (name, text) = PKS[which];
        let (other_name, other_text) = PKS[other];
        let other_name = if other == which { format!("copy-{other_name}") } else { other_name.to_string() };
        let files = vec![
            (Path::new("/etc/gerbang/pks").join(name), apply(text, &edits)),
            (Path::new("/etc/gerbang/pks").join(other_name), other_text.to_string()),
        ];
        if let Err(errors) = PksSet::parse_all(&files, &Vocabulary::embedded()) {
            located(&errors, &files)?;
        }
    }

    #[test]
    fn sanctions_errors_are_located(edits in edits()) {
        edited("/etc/gerbang/sanksi.toml", SANCTIONS, &edits, Sanctions::parse)?;
    }

    #[test]
    fn vocabulary_errors_are_located(edits in edits()) {
        edited("/etc/gerbang/elemen.toml", VOCABULARY, &edits, Vocabulary::parse)?;
    }

    #[test]
    fn blocklist_errors_are_located(edits in edits()) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("blokir.toml");
        let text = apply(BLOCKLIST, &edits);
        std::fs::write(&path, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Err(errors) = load_blocklist(&path) {
            located(&errors, &[(path, text)])?;
        }
    }
}

#[test]
fn the_shipped_files_are_valid() {
    // The bases the edits start from.
    let path = Path::new("/etc/gerbang/gerbang.toml");
    Config::parse(path, GERBANG).expect("gerbang.toml");
    let files: Vec<(PathBuf, String)> = PKS
        .iter()
        .map(|(n, t)| (PathBuf::from(n), t.to_string()))
        .collect();
    PksSet::parse_all(&files, &Vocabulary::embedded()).expect("PKS files");
    Sanctions::parse(Path::new("sanksi.toml"), SANCTIONS).expect("sanctions");
    Vocabulary::parse(Path::new("elemen.toml"), VOCABULARY).expect("vocabulary");
}

/// Found by `pks_errors_are_located` and `main_config_errors_are_located`: an error found
/// after parsing (a value out of range, two fields that contradict each other, a field
/// missing) named the file and the field but no line.
#[test]
fn regression_errors_found_after_parsing_have_a_line() {
    let pks = PKS[5].1.replace(
        "kepemilikan_asing_mayoritas = false",
        "kepemilikan_asing_mayoritas = true",
    );
    let line = pks
        .lines()
        .position(|l| l.starts_with("kepemilikan_asing_mayoritas"))
        .map(|i| i + 1);
    let errors = PksSet::parse_all(&[("p.toml".into(), pks)], &Vocabulary::embedded())
        .expect_err("not a BHI");
    let e = errors.iter().next().expect("one error");
    assert_eq!(
        (e.field.as_str(), e.line),
        ("kepemilikan_asing_mayoritas", line)
    );

    let config = GERBANG.replace("idle_timeout_secs = 900", "idle_timeout_secs = 99999");
    let line = config
        .lines()
        .position(|l| l.starts_with("absolute_timeout_secs"))
        .map(|i| i + 1);
    let errors = Config::parse(Path::new("g.toml"), &config).expect_err("shorter");
    let e = errors.iter().next().expect("one error");
    assert_eq!(
        (e.field.as_str(), e.line),
        ("portal.absolute_timeout_secs", line)
    );
    assert!(
        e.to_string()
            .starts_with(&format!("g.toml:{}:1:", line.unwrap_or(0))),
        "{e}"
    );

    // A field left out points at the table that would hold it.
    let config = GERBANG.replace("store = \"embedded\"", "store = \"redis\"");
    let line = config.lines().position(|l| l == "[quota]").map(|i| i + 1);
    let errors = Config::parse(Path::new("g.toml"), &config).expect_err("no URL");
    let e = errors
        .iter()
        .find(|e| e.field == "quota.redis_url")
        .expect("named");
    assert_eq!(e.line, line);
}

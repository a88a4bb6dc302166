//! `gerbang audit verify` and `gerbang report`: reading the decision log Ditjen keeps.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use gerbang_audit::{AuditKey, Format, LogDir, Semester, Verdict};

/// `audit verify`'s exit codes: a script must never file a missing key as tampering, nor
/// the reverse (issue 18, defect 7).
pub mod exit {
    /// Every record verifies and the chain is whole.
    pub const INTACT: u8 = 0;
    /// A record was edited, removed, inserted or reordered; the first one is named.
    pub const TAMPERED: u8 = 1;
    /// Nothing was verified: no key, an unreadable directory or file, a bad configuration.
    pub const NOT_VERIFIED: u8 = 2;
}

/// Where the decision logs are: their directories with their archive directories, and the
/// key file.
struct Located {
    logs: Vec<LogDir>,
    key_file: Option<PathBuf>,
    /// The configuration, when one was given or found and read.
    config: Option<gerbang_core::Config>,
}

/// The log directories, archive directories and key file: each as given on the command line,
/// else from the configuration's `[audit]`. `--dir` alone does not drop the configuration's
/// key: it is read when `--config` was given or the default configuration exists.
///
/// `--archive-dir` pairs with `--dir` by position (docs/audit.md, "Several instances"). With
/// one `--dir` or none, an `--archive-dir` overrides the configuration's `archive_dir`, as it
/// always did. With several, there is either none, and the configuration's `archive_dir` goes
/// with the configuration's own `dir` if it is among them, or one for each `--dir`, an empty
/// one (`--archive-dir ''`) for a directory without an archive.
fn locate(
    config: Option<&Path>,
    dirs: Vec<PathBuf>,
    archives: Vec<OsString>,
    key_file: Option<PathBuf>,
) -> Result<Located> {
    let default = crate::default_config();
    let path = config.unwrap_or(&default);
    let loaded = if config.is_none() && !dirs.is_empty() && !path.exists() {
        None
    } else {
        Some(gerbang_core::Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    let settings = match &loaded {
        None => None,
        Some(loaded) => match &loaded.audit {
            Some(audit) => Some(audit.clone()),
            None if !dirs.is_empty() => None,
            None => bail!(
                "{} has no [audit] section; give --dir (and --key-file or GERBANG_AUDIT_KEY)",
                loaded.path.display()
            ),
        },
    };
    let (config_dir, config_archive, config_key) = match settings {
        Some(audit) => (
            Some(audit.dir.clone()),
            audit.archive_dir().map(Path::to_path_buf),
            audit.key_file,
        ),
        None => (None, None, None),
    };
    let key_file = key_file.or(config_key);
    let archive = |given: OsString| (!given.is_empty()).then(|| PathBuf::from(given));
    let logs = match dirs.len() {
        0 | 1 => {
            if archives.len() > 1 {
                bail!(
                    "{} --archive-dir for {} log directories: give one --archive-dir per --dir",
                    archives.len(),
                    dirs.len().max(1)
                );
            }
            let Some(dir) = dirs.into_iter().next().or(config_dir) else {
                bail!("no log directory: give --dir or a configuration with [audit] dir");
            };
            let archive = archives.into_iter().next().map(archive);
            vec![LogDir::new(dir, archive.unwrap_or(config_archive))]
        }
        _ if archives.is_empty() => {
            let config_dir = config_dir.map(|d| std::fs::canonicalize(&d).unwrap_or(d));
            let own =
                |dir: &Path| config_dir.is_some() && std::fs::canonicalize(dir).ok() == config_dir;
            dirs.into_iter()
                .map(|dir| {
                    let archive = if own(&dir) {
                        config_archive.clone()
                    } else {
                        None
                    };
                    LogDir::new(dir, archive)
                })
                .collect()
        }
        n if archives.len() == n => dirs
            .into_iter()
            .zip(archives)
            .map(|(dir, given)| LogDir::new(dir, archive(given)))
            .collect(),
        n => bail!(
            "{} --archive-dir for {n} --dir: --archive-dir pairs with --dir by position, so give \
             one per --dir (an empty one, --archive-dir '', for a directory without an archive) \
             or none",
            archives.len()
        ),
    };
    Ok(Located {
        logs,
        key_file,
        config: loaded,
    })
}

/// `gerbang audit verify`: one verdict per chain; exit 0 when all are intact, 1 when any is
/// tampered with (the first bad record of each named), else 2 when any could not be verified.
pub fn verify(
    config: Option<&Path>,
    dirs: Vec<PathBuf>,
    archives: Vec<OsString>,
    key_file: Option<PathBuf>,
) -> ExitCode {
    let located = locate(config, dirs, archives, key_file).and_then(|located| {
        let key =
            AuditKey::load(located.key_file.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok((located.logs, key))
    });
    let (logs, key) = match located {
        Ok(found) => found,
        Err(e) => return not_verified(&e),
    };
    if let [log] = logs.as_slice() {
        // One log directory: the report it always gave.
        return match gerbang_audit::verify_with_archive(&log.dir, log.archive.as_deref(), &key)
            .with_context(|| format!("verifying {}", log.dir.display()))
        {
            Ok(report) => {
                println!("{report}");
                ExitCode::from(if report.is_intact() {
                    exit::INTACT
                } else {
                    exit::TAMPERED
                })
            }
            Err(e) => not_verified(&e),
        };
    }
    match gerbang_audit::verify_fleet(&logs, &key) {
        Ok(fleet) => {
            println!("{fleet}");
            ExitCode::from(match fleet.verdict() {
                Verdict::Intact => exit::INTACT,
                Verdict::Tampered => exit::TAMPERED,
                Verdict::NotVerified => exit::NOT_VERIFIED,
            })
        }
        Err(e) => not_verified(&e.into()),
    }
}

fn not_verified(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}\nnothing was verified");
    ExitCode::from(exit::NOT_VERIFIED)
}

/// `gerbang report`: a semester's use per Pengguna and User ID (art. 40), over the logs of
/// one instance or several.
pub fn report(
    config: Option<&Path>,
    dirs: Vec<PathBuf>,
    archives: Vec<OsString>,
    semester: &str,
    pengguna: Option<&str>,
    format: Format,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    let Located {
        logs,
        config: loaded,
        ..
    } = locate(config, dirs, archives, None)?;
    let semester: Semester = semester
        .parse()
        .map_err(|e| anyhow::anyhow!("--semester: {e}"))?;
    // Without PKS files the report still counts data balikan, and says it checked nobody's
    // obligation: a report from a copy of the logs with a bare configuration stays possible.
    let obligated = match loaded.as_ref().map(obligated) {
        Some(Ok(obligated)) => Some(obligated),
        Some(Err(e)) => {
            eprintln!("warning: {e:#}; data balikan is counted but obligations are not checked");
            None
        }
        None => {
            eprintln!(
                "warning: no configuration, so no PKS files: data balikan is counted but \
                 obligations are not checked (give --config)"
            );
            None
        }
    };
    let shown: Vec<String> = logs.iter().map(|l| l.dir.display().to_string()).collect();
    let mut report = gerbang_audit::report_fleet(&logs, semester, pengguna)
        .with_context(|| format!("reading {}", shown.join(" and ")))?;
    if let Some(obligated) = &obligated {
        report.check_obligations(obligated);
    }
    if !report.days_not_read.is_empty() {
        let days: Vec<String> = report.days_not_read.iter().map(|d| d.to_string()).collect();
        eprintln!(
            "warning: {} archived day(s) of the semester could not be read and are left out: {} \
             (give the directory holding them with --archive-dir)",
            days.len(),
            days.join(", ")
        );
    }
    match out {
        Some(path) => {
            let mut file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            report.render(format, &mut file)?;
            eprintln!("wrote {}", path.display());
        }
        None => report.render(format, &mut std::io::stdout().lock())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The numbers of the PKS that oblige their Pengguna to return data (a `data_balikan` list
/// in the file), for the report's "behind" list. The audit crate takes plain numbers, so
/// that it needs nothing of the PKS model. A PKS set that does not load checks nobody (its
/// error says why), rather than passing for a set where nobody is obligated.
fn obligated(config: &gerbang_core::Config) -> Result<BTreeSet<String>> {
    let (_, set) = config.load_agreements().map_err(|errors| {
        anyhow::anyhow!(
            "the PKS files of {} do not load, so data-balikan obligations cannot be checked:\n{errors}",
            config.path.display()
        )
    })?;
    Ok(obligated_in(&set.agreements))
}

fn obligated_in(agreements: &[Arc<gerbang_core::Pks>]) -> BTreeSet<String> {
    agreements
        .iter()
        .filter(|pks| !pks.data_balikan.is_empty())
        .map(|pks| pks.nomor.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration whose `[audit]` has `dir = "log"` and `archive_dir = "arsip"`.
    fn config_with_archive() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("gerbang.toml");
        std::fs::write(
            &config,
            "[listen]\naddress = \"127.0.0.1:1\"\nplaintext = true\n[upstream]\naddress = \
             \"127.0.0.1:2\"\n[pks]\ndir = \"pks\"\n[policy]\ndir = \"policies\"\n[audit]\n\
             dir = \"log\"\nkey_file = \"audit.key\"\nretention_days = 2\narchive_dir = \"arsip\"\n",
        )
        .expect("write config");
        std::fs::create_dir(dir.path().join("log")).expect("mkdir");
        (dir, config)
    }

    /// The PKS that list `data_balikan` are the obligated ones: of the example files, the
    /// tax office, the hospital and the manpower office, not the others.
    #[test]
    fn obligations_are_the_pks_that_list_data_balikan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/pks");
        let config = dir.path().join("gerbang.toml");
        let write = |pks: &Path| {
            std::fs::write(
                &config,
                format!(
                    "[listen]\naddress = \"127.0.0.1:1\"\nplaintext = true\n[upstream]\n\
                     address = \"127.0.0.1:2\"\n[pks]\ndir = {:?}\n[policy]\n\
                     dir = \"policies\"\n",
                    pks.display().to_string()
                ),
            )
            .expect("write config");
        };
        write(&examples);
        let loaded = locate(Some(&config), vec![dir.path().into()], vec![], None)
            .expect("located")
            .config
            .expect("the configuration was read");
        let found = obligated(&loaded).expect("the example PKS files load");
        assert_eq!(
            found,
            [
                "438/PMD.07.01/CTH/2025",
                "440/017/RSUD-CTH/2025",
                "470/900.1/BKD-CTH/2025"
            ]
            .map(str::to_owned)
            .into()
        );

        // PKS files that do not load: an error (the report then says nothing was checked),
        // never an empty set that would pass for "nobody is obligated".
        write(&dir.path().join("no-such-dir"));
        let loaded = gerbang_core::Config::load(&config).expect("config");
        let err = obligated(&loaded)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("obligations cannot be checked"), "{err}");
    }

    /// The audit crate names the data-balikan action without depending on the policy crate;
    /// the name must stay the one the gateway writes.
    #[test]
    fn the_balikan_action_is_the_policy_crates() {
        assert_eq!(
            gerbang_audit::BALIKAN_ACTION,
            gerbang_policy::Action::SubmitBalikan.as_str()
        );
    }

    fn archives(located: &Located) -> Vec<Option<PathBuf>> {
        located.logs.iter().map(|l| l.archive.clone()).collect()
    }

    /// `--archive-dir` pairs with `--dir` by position; without it, the configuration's
    /// archive goes with the configuration's own directory only; a count that pairs nothing
    /// is refused.
    #[test]
    fn archive_dirs_pair_with_dirs_by_position() {
        let (root, config) = config_with_archive();
        let own = root.path().join("log");
        let other = root.path().join("other");
        let arsip = root.path().join("arsip");

        // One directory (or none): as always, the configuration's archive unless given.
        let one = locate(Some(&config), vec![other.clone()], vec![], None).expect("one");
        assert_eq!(archives(&one), vec![Some(arsip.clone())]);
        let none = locate(Some(&config), vec![], vec![], None).expect("none");
        assert_eq!(none.logs[0].dir, own);

        let both = locate(
            Some(&config),
            vec![other.clone(), own.clone()],
            vec![],
            None,
        )
        .expect("two without archives");
        assert_eq!(archives(&both), vec![None, Some(arsip)]);

        let paired = locate(
            Some(&config),
            vec![own.clone(), other.clone()],
            vec![OsString::new(), "x".into()],
            None,
        )
        .expect("paired");
        assert_eq!(archives(&paired), vec![None, Some(PathBuf::from("x"))]);

        let err = locate(Some(&config), vec![own, other], vec!["x".into()], None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("one per --dir"), "{err}");
        let err = locate(Some(&config), vec![], vec!["x".into(), "y".into()], None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("one --archive-dir per --dir"), "{err}");
    }
}

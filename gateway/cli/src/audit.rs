//! `gerbang audit verify` and `gerbang report`: reading the decision log Ditjen keeps.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use gerbang_audit::{AuditKey, Format, Semester};

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

/// Where a decision log is: its directory, archive directory and key file.
struct Located {
    dir: PathBuf,
    archive: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

/// The log directory, archive directory and key file: each as given on the command line,
/// else from the configuration's `[audit]`. `--dir` alone does not drop the configuration's
/// key: it is read when `--config` was given or the default configuration exists.
fn locate(
    config: Option<&Path>,
    dir: Option<PathBuf>,
    archive: Option<PathBuf>,
    key_file: Option<PathBuf>,
) -> Result<Located> {
    let default = crate::default_config();
    let path = config.unwrap_or(&default);
    let settings = if config.is_none() && dir.is_some() && !path.exists() {
        None
    } else {
        let loaded = gerbang_core::Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        match (loaded.audit, &dir) {
            (Some(audit), _) => Some(audit),
            (None, Some(_)) => None,
            (None, None) => bail!(
                "{} has no [audit] section; give --dir (and --key-file or GERBANG_AUDIT_KEY)",
                loaded.path.display()
            ),
        }
    };
    let (config_dir, config_archive, config_key) = match settings {
        Some(audit) => (
            Some(audit.dir.clone()),
            audit.archive_dir().map(Path::to_path_buf),
            audit.key_file,
        ),
        None => (None, None, None),
    };
    match dir.or(config_dir) {
        Some(dir) => Ok(Located {
            dir,
            archive: archive.or(config_archive),
            key_file: key_file.or(config_key),
        }),
        None => bail!("no log directory: give --dir or a configuration with [audit] dir"),
    }
}

/// `gerbang audit verify`: exit 0 when the chain is intact, 1 naming the first bad record, 2
/// when it could not be verified at all.
pub fn verify(
    config: Option<&Path>,
    dir: Option<PathBuf>,
    archive: Option<PathBuf>,
    key_file: Option<PathBuf>,
) -> ExitCode {
    let verified = locate(config, dir, archive, key_file).and_then(|log| {
        let key = AuditKey::load(log.key_file.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
        gerbang_audit::verify_with_archive(&log.dir, log.archive.as_deref(), &key)
            .with_context(|| format!("verifying {}", log.dir.display()))
    });
    match verified {
        Ok(report) => {
            println!("{report}");
            ExitCode::from(if report.is_intact() {
                exit::INTACT
            } else {
                exit::TAMPERED
            })
        }
        Err(e) => {
            eprintln!("error: {e:#}\nnothing was verified");
            ExitCode::from(exit::NOT_VERIFIED)
        }
    }
}

/// `gerbang report`: a semester's use per Pengguna and User ID (art. 40).
pub fn report(
    config: Option<&Path>,
    dir: Option<PathBuf>,
    archive: Option<PathBuf>,
    semester: &str,
    pengguna: Option<&str>,
    format: Format,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    let Located { dir, archive, .. } = locate(config, dir, archive, None)?;
    let semester: Semester = semester
        .parse()
        .map_err(|e| anyhow::anyhow!("--semester: {e}"))?;
    let report = gerbang_audit::report_with_archive(&dir, archive.as_deref(), semester, pengguna)
        .with_context(|| format!("reading {}", dir.display()))?;
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

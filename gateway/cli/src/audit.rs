//! `gerbang audit verify` and `gerbang report`: reading the decision log Ditjen keeps.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use gerbang_audit::{AuditKey, Format, Semester};

/// The log directory and key file: given, or from the configuration's `[audit]`.
fn locate(
    config: &Path,
    dir: Option<PathBuf>,
    key_file: Option<PathBuf>,
) -> Result<(PathBuf, Option<PathBuf>)> {
    if let Some(dir) = dir {
        return Ok((dir, key_file));
    }
    let config = gerbang_core::Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(audit) = config.audit else {
        bail!(
            "{} has no [audit] section; give --dir (and --key-file or GERBANG_AUDIT_KEY)",
            config.path.display()
        );
    };
    Ok((audit.dir, key_file.or(audit.key_file)))
}

/// `gerbang audit verify`: exit 0 when the chain is intact, 1 naming the first bad record.
pub fn verify(config: &Path, dir: Option<PathBuf>, key_file: Option<PathBuf>) -> Result<ExitCode> {
    let (dir, key_file) = locate(config, dir, key_file)?;
    let key = AuditKey::load(key_file.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = gerbang_audit::verify(&dir, &key)
        .with_context(|| format!("verifying {}", dir.display()))?;
    println!("{report}");
    Ok(if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `gerbang report`: a semester's use per Pengguna and User ID (art. 40).
pub fn report(
    config: &Path,
    dir: Option<PathBuf>,
    semester: &str,
    pengguna: Option<&str>,
    format: &str,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    let (dir, _) = locate(config, dir, None)?;
    let semester: Semester = semester
        .parse()
        .map_err(|e| anyhow::anyhow!("--semester: {e}"))?;
    let format: Format = format
        .parse()
        .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    let report = gerbang_audit::report(&dir, semester, pengguna)
        .with_context(|| format!("reading {}", dir.display()))?;
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

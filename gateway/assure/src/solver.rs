//! Finding the SMT solver. SymCC writes SMT-LIB to a cvc5 process, found as SymCC finds it:
//! the `CVC5` variable, else `cvc5` on `PATH`. The solver is a separate program (Debian's
//! package `cvc5`); without it nothing is proved, and every caller says so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A cvc5 that answered `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solver {
    /// The executable run.
    pub path: PathBuf,
    /// Its version line, such as `cvc5 1.0.3`.
    pub version: String,
}

/// Why no solver can be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoSolver {
    #[error(
        "no cvc5 SMT solver found ({0}): install the Debian package `cvc5` (make test does), or set CVC5 to its path"
    )]
    NotFound(String),
    #[error("{path} does not run as cvc5 ({problem}); set CVC5 to a cvc5 executable")]
    Unusable { path: String, problem: String },
}

impl Solver {
    /// The solver SymCC will run, if it is there and answers.
    pub fn find() -> Result<Self, NoSolver> {
        let (path, from) = match std::env::var_os("CVC5") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), "CVC5"),
            _ => match on_path("cvc5") {
                Some(p) => (p, "PATH"),
                None => {
                    return Err(NoSolver::NotFound(
                        "CVC5 is not set and there is no cvc5 on PATH".into(),
                    ));
                }
            },
        };
        let unusable = |problem: String| NoSolver::Unusable {
            path: format!("{} (from {from})", path.display()),
            problem,
        };
        let out = Command::new(&path)
            .arg("--version")
            .output()
            .map_err(|e| unusable(e.to_string()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("This is cvc5 version "))
            .map(|v| format!("cvc5 {}", v.trim()))
            .ok_or_else(|| unusable(format!("`--version` said {:?}", text.trim())))?;
        Ok(Self { path, version })
    }
}

/// The first `name` in a `PATH` directory.
fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

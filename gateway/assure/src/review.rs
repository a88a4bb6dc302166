//! What a reload (or `gerbang policy diff --running`) learns about a candidate set before
//! it is in force: when the rules changed, the invariants are proved again and the rules'
//! meaning compared; then the semantic diff against the running set. A candidate whose rules
//! break an invariant, or whose invariants cannot be proved, is refused like a broken file.

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use gerbang_core::{ConfigError, ConfigErrors};
use gerbang_policy::Snapshot;

use crate::diff::{Diff, diff};
use crate::equivalence::{RulesChange, equivalence};
use crate::invariant::{INVARIANTS_DIR, load_invariants};
use crate::solver::{NoSolver, Solver};
use crate::verify::{Verdict, verify};

/// How long a reload may spend proving the invariants.
pub const PROOF_BUDGET: Duration = Duration::from_secs(60);
/// How long a reload may spend comparing the old and new rules' meaning.
pub const EQUIVALENCE_BUDGET: Duration = Duration::from_secs(30);
/// How many User IDs a reload decides grants for in its diff (24 decisions each); beyond
/// that the summary says they were not compared.
pub const RELOAD_DIFF_USERS: usize = 2_000;

/// What was proved of the candidate's rules.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Proof {
    /// The rule files did not change: what was proved of them still holds.
    RulesUnchanged,
    /// Every invariant was proved.
    Proved {
        invariants: usize,
        solver: String,
        duration_ms: u64,
    },
    /// Nothing was proved, and why (no solver, no invariants directory).
    Skipped { why: String },
}

impl std::fmt::Display for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RulesUnchanged => write!(f, "rules unchanged"),
            Self::Proved {
                invariants,
                solver,
                duration_ms,
            } => write!(
                f,
                "{invariants} invariants proved ({solver}, {duration_ms} ms)"
            ),
            Self::Skipped { why } => write!(f, "invariants NOT checked: {why}"),
        }
    }
}

/// The review of a candidate set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Review {
    pub proof: Proof,
    pub diff: Diff,
}

/// Reviews `candidate` against `running` on `day`. `Err` when the candidate's rules break an
/// invariant or cannot be shown not to, or when the invariant files are broken: the reload
/// is then refused and the running set stays.
pub fn review(
    running: &Snapshot,
    candidate: &Snapshot,
    policy_dir: &Path,
    day: NaiveDate,
    diff_users: Option<usize>,
) -> Result<Review, ConfigErrors> {
    if running.engine().hash() == candidate.engine().hash() {
        let rules = RulesChange::Unchanged {
            hash: candidate.engine().hash().to_string(),
        };
        return Ok(Review {
            proof: Proof::RulesUnchanged,
            diff: diff(running, candidate, day, rules, diff_users),
        });
    }
    let solver = Solver::find();
    let proof = prove(candidate, policy_dir, solver.as_ref())?;
    let rules = equivalence(
        running.engine(),
        candidate.engine(),
        solver.as_ref().ok(),
        EQUIVALENCE_BUDGET,
    );
    Ok(Review {
        proof,
        diff: diff(running, candidate, day, rules, diff_users),
    })
}

/// Proves every invariant of `policy_dir/invariants` over the candidate's rules.
fn prove(
    candidate: &Snapshot,
    policy_dir: &Path,
    solver: Result<&Solver, &NoSolver>,
) -> Result<Proof, ConfigErrors> {
    let dir = policy_dir.join(INVARIANTS_DIR);
    if !dir.is_dir() {
        return Ok(Proof::Skipped {
            why: format!("no invariants directory {}", dir.display()),
        });
    }
    let engine = candidate.engine();
    let invariants = load_invariants(&dir, engine.schema())?;
    let solver = match solver {
        Ok(s) => s,
        Err(no) => {
            return Ok(Proof::Skipped {
                why: no.to_string(),
            });
        }
    };
    let report = verify(engine, &invariants, solver, PROOF_BUDGET);
    let problems: Vec<ConfigError> = report
        .failures()
        .map(|o| {
            let inv = invariants.iter().find(|i| i.id == o.id);
            let message = match &o.verdict {
                Verdict::Violated(cex) => format!(
                    "the rules break this invariant ({}); counterexample: {cex}",
                    o.article
                ),
                Verdict::NotProved(why) => format!(
                    "this invariant ({}) could not be proved, so the rules are refused: {why}",
                    o.article
                ),
                Verdict::Proved => String::new(),
            };
            ConfigError {
                file: inv.map_or_else(|| dir.clone(), |i| i.file.clone()),
                line: inv.map(|i| i.line),
                column: None,
                field: o.id.clone(),
                message,
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(Proof::Proved {
            invariants: report.outcomes.len(),
            solver: report.solver,
            duration_ms: report.duration_ms,
        })
    } else {
        Err(ConfigErrors(problems))
    }
}

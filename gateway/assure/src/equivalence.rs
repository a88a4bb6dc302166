//! Whether an edit of the rule files changed their meaning: SymCC's equivalence check of
//! the old and the new policy set, for every request and entity store the (new) schema
//! allows. A reformatted file, a reordered rule or a renamed `@id` is "same meaning"; an
//! edit that changes one decision anywhere is "changed", with a request that shows it.

use std::time::Duration;

use cedar_policy::{Authorizer, Decision};
use gerbang_policy::PolicyEngine;

use crate::counterexample::{Counterexample, Expect};
use crate::solver::Solver;
use crate::verify::{Compiled, on_own_runtime, start};

/// What became of the rules.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RulesChange {
    /// The same files (the same hash).
    Unchanged { hash: String },
    /// Different text, proved to decide every request alike.
    SameMeaning { before: String, after: String },
    /// Different decisions for these actions; one request that shows it.
    Changed {
        before: String,
        after: String,
        actions: Vec<String>,
        example: Counterexample,
    },
    /// Not compared, and why (no solver, a schema the old rules do not fit…).
    NotCompared {
        before: String,
        after: String,
        why: String,
    },
}

impl RulesChange {
    /// The part of a reload's summary about the rules; `None` when they did not change.
    pub fn summary(&self) -> Option<String> {
        match self {
            Self::Unchanged { .. } => None,
            Self::SameMeaning { .. } => Some("rules edited, same meaning (proved)".into()),
            Self::Changed { actions, .. } => {
                Some(format!("rules changed meaning for {}", actions.join(", ")))
            }
            Self::NotCompared { .. } => Some("rules edited, meaning not compared".into()),
        }
    }
}

impl std::fmt::Display for RulesChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unchanged { hash } => write!(f, "unchanged (set {hash})"),
            Self::SameMeaning { before, after } => write!(
                f,
                "set {before} → {after}: the same decision for every request the schema allows (proved)"
            ),
            Self::Changed {
                before,
                after,
                actions,
                example,
            } => write!(
                f,
                "set {before} → {after}: decisions differ for {}; for example {example}",
                actions.join(", ")
            ),
            Self::NotCompared { before, after, why } => {
                write!(f, "set {before} → {after}: meaning not compared: {why}")
            }
        }
    }
}

/// Compares two rule sets. Blocking (runs the solver), within `budget`.
pub fn equivalence(
    old: &PolicyEngine,
    new: &PolicyEngine,
    solver: Option<&Solver>,
    budget: Duration,
) -> RulesChange {
    let (before, after) = (old.hash().to_string(), new.hash().to_string());
    if before == after {
        return RulesChange::Unchanged { hash: after };
    }
    let not_compared = |why: String| RulesChange::NotCompared {
        before: before.clone(),
        after: after.clone(),
        why,
    };
    let Some(solver) = solver else {
        return not_compared("no cvc5 solver installed".into());
    };
    let ran =
        on_own_runtime(|| async { tokio::time::timeout(budget, compare(old, new, solver)).await });
    match ran {
        Ok(Ok(Ok(None))) => RulesChange::SameMeaning {
            before: before.clone(),
            after: after.clone(),
        },
        Ok(Ok(Ok(Some((actions, example))))) => RulesChange::Changed {
            before: before.clone(),
            after: after.clone(),
            actions,
            example,
        },
        Ok(Ok(Err(why))) | Err(why) => not_compared(why),
        Ok(Err(_)) => not_compared(format!("no answer within {} s", budget.as_secs())),
    }
}

/// `None` when equivalent; else the actions that differ and the first request found.
async fn compare(
    old: &PolicyEngine,
    new: &PolicyEngine,
    solver: &Solver,
) -> Result<Option<(Vec<String>, Counterexample)>, String> {
    let schema = new.schema();
    let mut compiler = start(solver)?;
    let mut theirs = Compiled::new(schema, old.policies());
    let mut ours = Compiled::new(schema, new.policies());
    let mut actions = Vec::new();
    let mut first = None;
    for env in schema.request_envs() {
        let a = theirs
            .get(&env)
            .map_err(|e| format!("the old rules do not fit the new schema ({e})"))?;
        let b = ours.get(&env)?;
        let found = compiler
            .check_equivalent_with_counterexample_opt(a, b)
            .await
            .map_err(|e| format!("the solver failed on {}: {e}", env.action()))?;
        if let Some(found) = found {
            actions.push(env.action().id().unescaped().to_string());
            if first.is_none() {
                let was = Authorizer::new().is_authorized(
                    &found.request,
                    old.policies(),
                    &found.entities,
                );
                let was = match was.decision() {
                    Decision::Allow => "was permitted, now",
                    Decision::Deny => "was denied, now",
                };
                let mut cex = Counterexample::describe(
                    new,
                    new.policies(),
                    &found.request,
                    &found.entities,
                    Expect::Either,
                );
                let now = cex.outcome.strip_prefix("is ").unwrap_or(&cex.outcome);
                cex.outcome = format!("{was} {now}");
                first = Some(cex);
            }
        }
    }
    Ok(first.map(|example| (actions, example)))
}

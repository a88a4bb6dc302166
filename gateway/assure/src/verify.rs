//! Proving the invariants with Cedar's symbolic compiler (SymCC): the rules and each
//! invariant are compiled to SMT for every request environment of the schema (each action
//! with its principal and resource types), over every entity store the schema allows, not
//! only the loaded agreements; cvc5 then either shows no request breaks the invariant
//! (proved) or gives one (a counterexample). SymCC's encoding is proved correct in Lean.

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{PolicySet, RequestEnv, Schema};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet};
use gerbang_policy::PolicyEngine;

use crate::counterexample::{Counterexample, Expect};
use crate::invariant::{Invariant, Property};
use crate::solver::Solver;

/// What every request the gateway asks looks like, by construction of its entities and
/// requests (`gateway/policy/src/engine.rs`): the resource of an access is the User ID's own
/// agreement, the User ID is in it, and the agreement is in its Pengguna. A `never`
/// invariant speaks of such requests only, so a rule written with `principal.pks` in place
/// of `resource` is judged as the gateway will run it. A test checks this against the
/// entities the engine builds.
pub const REQUEST_SHAPE: &str = r#"
@id("gateway-request-shape")
forbid (principal, action in Gerbang::Action::"Lookup", resource)
unless {
  principal.pks == resource &&
  principal in resource &&
  resource in resource.pengguna
};
"#;

/// How long one solver query may take before it is given up (cvc5's `--tlimit-per`).
const QUERY_LIMIT_MS: u32 = 20_000;

/// One invariant's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub id: String,
    pub article: String,
    /// `file:line` of the invariant.
    pub origin: String,
    pub verdict: Verdict,
}

/// Proved, broken with an example, or not decided (and why).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Proved,
    Violated(Counterexample),
    NotProved(String),
}

/// Every invariant's outcome, and what it took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// The solver's version line.
    pub solver: String,
    pub duration_ms: u64,
}

impl Report {
    /// Whether every invariant was proved.
    pub fn all_proved(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| matches!(o.verdict, Verdict::Proved))
    }

    /// The outcomes that were not proved.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|o| !matches!(o.verdict, Verdict::Proved))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.verdict {
            Verdict::Proved => write!(f, "proved      {}  ({})", self.id, self.article),
            Verdict::Violated(cex) => write!(
                f,
                "VIOLATED    {}  ({}, {})\n  counterexample: {cex}",
                self.id, self.article, self.origin
            ),
            Verdict::NotProved(why) => write!(
                f,
                "NOT PROVED  {}  ({}, {})\n  {why}",
                self.id, self.article, self.origin
            ),
        }
    }
}

/// Proves `invariants` over `engine`'s rules and schema, on the calling thread, within
/// `budget` (what is not answered by then is "not proved"). Blocking: it runs the solver
/// as a child process on a runtime of its own.
pub fn verify(
    engine: &PolicyEngine,
    invariants: &[Invariant],
    solver: &Solver,
    budget: Duration,
) -> Report {
    let started = Instant::now();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let ran = on_own_runtime(|| async {
        let proving = prove_all(engine, invariants, solver, &mut outcomes);
        tokio::time::timeout(budget, proving).await
    });
    let unfinished = match ran {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some(format!(
            "no answer within {} s: not proved (the solver was stopped)",
            budget.as_secs()
        )),
        Err(e) => Some(e),
    };
    if let Some(why) = unfinished {
        for inv in &invariants[outcomes.len().min(invariants.len())..] {
            outcomes.push(outcome(inv, Verdict::NotProved(why.clone())));
        }
    }
    Report {
        outcomes,
        solver: solver.version.clone(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Runs `work` on a current-thread runtime on a thread of its own: callers may be on a
/// runtime's blocking pool, where starting another runtime is refused.
pub(crate) fn on_own_runtime<T: Send, F: std::future::Future<Output = T>>(
    work: impl FnOnce() -> F + Send,
) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the solver's runtime: {e}"))?;
            Ok(runtime.block_on(work()))
        })
        .join()
        .map_err(|_| "the proof's thread panicked (a bug; its message is above)".to_string())?
    })
}

fn outcome(inv: &Invariant, verdict: Verdict) -> Outcome {
    Outcome {
        id: inv.id.clone(),
        article: inv.article.clone(),
        origin: format!("{}:{}", inv.file.display(), inv.line),
        verdict,
    }
}

/// Starts cvc5 as SymCC expects it, killed when the compiler is dropped (a query given up
/// at the budget must not keep a core busy).
pub(crate) fn start(solver: &Solver) -> Result<CedarSymCompiler<LocalSolver>, String> {
    let mut cmd = tokio::process::Command::new(&solver.path);
    cmd.args(["--lang", "smt", &format!("--tlimit-per={QUERY_LIMIT_MS}")])
        .stdin(Stdio::piped())
        .kill_on_drop(true);
    let local = LocalSolver::from_command(&mut cmd)
        .map_err(|e| format!("cannot start {}: {e}", solver.path.display()))?;
    CedarSymCompiler::new(local).map_err(|e| e.to_string())
}

/// The rules compiled for each request environment, compiled when first needed.
pub(crate) struct Compiled<'a> {
    schema: &'a Schema,
    rules: &'a PolicySet,
    sets: HashMap<RequestEnv, CompiledPolicySet>,
}

impl<'a> Compiled<'a> {
    pub(crate) fn new(schema: &'a Schema, rules: &'a PolicySet) -> Self {
        Self {
            schema,
            rules,
            sets: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, env: &RequestEnv) -> Result<&CompiledPolicySet, String> {
        if !self.sets.contains_key(env) {
            let set = CompiledPolicySet::compile(self.rules, env, self.schema)
                .map_err(|e| format!("the rules cannot be compiled for {}: {e}", env.action()))?;
            self.sets.insert(env.clone(), set);
        }
        self.sets
            .get(env)
            .ok_or_else(|| "a compiled set went missing".to_string())
    }
}

async fn prove_all(
    engine: &PolicyEngine,
    invariants: &[Invariant],
    solver: &Solver,
    outcomes: &mut Vec<Outcome>,
) {
    let schema = engine.schema();
    let rules = engine.policies();
    let mut compiler = match start(solver) {
        Ok(c) => c,
        Err(e) => {
            outcomes.extend(
                invariants
                    .iter()
                    .map(|inv| outcome(inv, Verdict::NotProved(e.clone()))),
            );
            return;
        }
    };
    let mut compiled = Compiled::new(schema, rules);
    for inv in invariants {
        let verdict = match &inv.property {
            Property::Never(pattern) => never(&mut compiler, &mut compiled, engine, pattern).await,
            Property::NeverErrors => never_errors(&mut compiler, engine).await,
        };
        outcomes.push(outcome(inv, verdict));
    }
}

/// No request matching `pattern` (and the gateway's request shape) is permitted: the rules
/// and the pattern are disjoint in every request environment the pattern can match.
async fn never(
    compiler: &mut CedarSymCompiler<LocalSolver>,
    compiled: &mut Compiled<'_>,
    engine: &PolicyEngine,
    pattern: &PolicySet,
) -> Verdict {
    let schema = engine.schema();
    let mut shaped = pattern.clone();
    let shape = match PolicySet::from_str(REQUEST_SHAPE) {
        Ok(s) => s,
        Err(e) => return Verdict::NotProved(format!("the request shape does not parse: {e}")),
    };
    for p in shape.policies() {
        if let Err(e) = shaped.add(p.clone()) {
            return Verdict::NotProved(e.to_string());
        }
    }
    let envs: BTreeSet<RequestEnv> = pattern
        .policies()
        .flat_map(|p| p.get_valid_request_envs(schema))
        .collect();
    for env in &envs {
        let theirs = match CompiledPolicySet::compile(&shaped, env, schema) {
            Ok(c) => c,
            Err(e) => {
                return Verdict::NotProved(format!(
                    "the invariant cannot be compiled for {}: {e}",
                    env.action()
                ));
            }
        };
        let ours = match compiled.get(env) {
            Ok(c) => c,
            Err(e) => return Verdict::NotProved(e),
        };
        match compiler
            .check_disjoint_with_counterexample_opt(ours, &theirs)
            .await
        {
            Ok(None) => {}
            Ok(Some(found)) => {
                return Verdict::Violated(Counterexample::describe(
                    engine,
                    engine.policies(),
                    &found.request,
                    &found.entities,
                    Expect::Permit,
                ));
            }
            Err(e) => {
                return Verdict::NotProved(format!("the solver failed on {}: {e}", env.action()));
            }
        }
    }
    Verdict::Proved
}

/// No rule errors: each rule, in every request environment it can apply to.
async fn never_errors(
    compiler: &mut CedarSymCompiler<LocalSolver>,
    engine: &PolicyEngine,
) -> Verdict {
    let schema = engine.schema();
    let mut rules: Vec<_> = engine.policies().policies().collect();
    rules.sort_by_key(|p| p.id().to_string());
    for rule in rules {
        for env in rule.get_valid_request_envs(schema) {
            let one = match CompiledPolicy::compile(rule, &env, schema) {
                Ok(c) => c,
                Err(e) => {
                    return Verdict::NotProved(format!(
                        "rule {} cannot be compiled for {}: {e}",
                        rule.id(),
                        env.action()
                    ));
                }
            };
            match compiler
                .check_never_errors_with_counterexample_opt(&one)
                .await
            {
                Ok(None) => {}
                Ok(Some(found)) => {
                    let mut alone = PolicySet::new();
                    let _ = alone.add(rule.clone());
                    return Verdict::Violated(Counterexample::describe(
                        engine,
                        &alone,
                        &found.request,
                        &found.entities,
                        Expect::Error(rule.id().as_ref()),
                    ));
                }
                Err(e) => {
                    return Verdict::NotProved(format!(
                        "the solver failed on rule {} for {}: {e}",
                        rule.id(),
                        env.action()
                    ));
                }
            }
        }
    }
    Verdict::Proved
}

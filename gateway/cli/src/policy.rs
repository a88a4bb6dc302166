//! `gerbang policy test`, `explain`, `verify` and `diff`: Ditjen's tools to see what the
//! rules decide before and after an edit, to prove the invariants of `policies/invariants/`
//! over every request, and to see whom an edit gives or takes what.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use chrono::NaiveDate;
use serde::Deserialize;

use gerbang_assure::{INVARIANTS_DIR, Solver, Verdict};
use gerbang_core::{Channel, Config};
use gerbang_policy::{Action, Decision, PolicyEngine, Request, Snapshot, decide, load_snapshot};

/// A file of policy test cases (`policies/tests/*.toml`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// The cases, each a request and what the rules must answer.
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What the case shows, in a sentence.
    name: String,
    /// The User ID asking.
    user: String,
    /// A Cedar action name (`CallNik`, `VerifyByElement`, `SearchByElements`, `PortalRead`…).
    action: String,
    /// `web_service` (default), `web_portal` or `card_reader`.
    #[serde(default = "default_channel")]
    channel: String,
    /// The WIB day of the request (a TOML date).
    at: toml::value::Datetime,
    /// The source address (default: the User ID's first registered address).
    ip: Option<IpAddr>,
    /// For card-reader requests: the SAM sidecar validated it.
    #[serde(default)]
    sam_valid: bool,
    /// `allow` or `deny`.
    expect: String,
    /// The deciding rule (`@id`), or `default-deny`.
    rule: Option<String>,
    /// The exact elements an allowed answer may carry.
    elements: Option<Vec<String>>,
}

fn default_channel() -> String {
    "web_service".into()
}

fn parse_channel(s: &str) -> Result<Channel> {
    match s {
        "web_service" => Ok(Channel::WebService),
        "web_portal" => Ok(Channel::WebPortal),
        "card_reader" => Ok(Channel::CardReader),
        other => bail!("unknown channel `{other}` (web_service, web_portal, card_reader)"),
    }
}

fn load(config: &Path) -> Result<Snapshot> {
    let config = Config::load(config).map_err(|e| anyhow!("{e}"))?;
    load_snapshot(&config).map_err(|e| anyhow!("{e}"))
}

/// Evaluates one request without the cache.
fn evaluate(
    snap: &Snapshot,
    user: &str,
    action: &str,
    channel: Channel,
    at: NaiveDate,
    ip: Option<IpAddr>,
    sam_valid: bool,
) -> Result<Decision> {
    let user_ref = snap
        .user_by_id(user)
        .ok_or_else(|| anyhow!("no User ID `{user}` in the PKS files"))?;
    let action = Action::parse(action).ok_or_else(|| anyhow!("unknown action `{action}`"))?;
    let peer = match ip {
        Some(ip) => ip,
        None => snap
            .user(user_ref)
            .ip_lan
            .first()
            .map(|n| n.addr())
            .ok_or_else(|| anyhow!("`{user}` has no IP LAN"))?,
    };
    let req = Request {
        user: user_ref,
        action,
        channel,
        day: at,
        peer,
        sam_valid,
    };
    Ok(decide(snap, &req, snap.ip_blocked(peer)))
}

/// Runs every case of every `*.toml` file in `dir`.
pub fn test(config: &Path, dir: &Path) -> Result<ExitCode> {
    let snap = load(config)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let cases: CaseFile =
            toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        for case in cases.cases {
            let problems = check_case(&snap, &case);
            if problems.is_empty() {
                passed += 1;
                println!("ok    {} :: {}", file.display(), case.name);
            } else {
                failed += 1;
                println!("FAIL  {} :: {}", file.display(), case.name);
                for p in problems {
                    println!("      {p}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check_case(snap: &Snapshot, case: &Case) -> Vec<String> {
    let at = case
        .at
        .to_string()
        .parse::<NaiveDate>()
        .map_err(|_| anyhow!("`at = {}` must be a plain date such as 2026-06-01", case.at));
    let decision = match parse_channel(&case.channel).and_then(|c| {
        evaluate(
            snap,
            &case.user,
            &case.action,
            c,
            at?,
            case.ip,
            case.sam_valid,
        )
    }) {
        Ok(d) => d,
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    let got = if decision.allowed() { "allow" } else { "deny" };
    if got != case.expect {
        problems.push(format!(
            "expected {}, got {got} (rule {}: {})",
            case.expect, decision.rule, decision.reason
        ));
    }
    if let Some(rule) = &case.rule
        && *rule != decision.rule
    {
        problems.push(format!(
            "expected rule `{rule}`, got `{}` (policies {:?})",
            decision.rule, decision.policies
        ));
    }
    if let Some(expected) = &case.elements {
        let mut expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        let mut got = snap.vocabulary().names(decision.elements);
        expected.sort_unstable();
        got.sort_unstable();
        if expected != got {
            problems.push(format!("expected elements {expected:?}, got {got:?}"));
        }
    }
    problems
}

/// Prints what the rules decide for one request and why.
pub fn explain(
    config: &Path,
    user: &str,
    action: Action,
    channel: Channel,
    at: Option<NaiveDate>,
    ip: Option<IpAddr>,
) -> Result<ExitCode> {
    let snap = load(config)?;
    let at = at.unwrap_or_else(|| gerbang_core::wib_day(chrono::Utc::now()));
    let d = evaluate(&snap, user, action.as_str(), channel, at, ip, false)?;
    let engine = snap.engine();
    println!(
        "request:   {user} {} over {} on {at} (WIB)",
        action.as_str(),
        channel.as_str()
    );
    match d.refusal {
        None => println!("decision:  ALLOW"),
        Some(r) => println!(
            "decision:  DENY  → RESPONSE_CODE {} \"{}\"",
            r.code(),
            r.respon()
        ),
    }
    println!("reason:    {}", d.reason);
    println!(
        "rule:      {}{}",
        d.rule,
        engine
            .origin(&d.rule)
            .map(|o| format!("  ({o})"))
            .unwrap_or_default()
    );
    for p in &d.policies {
        println!("policy:    {p}  ({})", engine.origin(p).unwrap_or("?"));
    }
    if d.allowed() {
        println!(
            "elements:  {}",
            snap.vocabulary().names(d.elements).join(", ")
        );
        println!("answer:    {:?}", d.shape);
    }
    println!(
        "policies:  {} rules, set {}",
        engine.policy_count(),
        engine.hash()
    );
    Ok(ExitCode::SUCCESS)
}

/// How long `policy verify`, `check` and `policy diff` let the solver work.
const SOLVER_BUDGET: std::time::Duration = std::time::Duration::from_secs(300);

/// The policy directory: `--policies`, else the configuration's `[policy] dir`.
fn policy_dir(config: &Path, policies: Option<PathBuf>) -> Result<PathBuf> {
    match policies {
        Some(dir) => Ok(dir),
        None => Ok(Config::load(config).map_err(|e| anyhow!("{e}"))?.policy_dir),
    }
}

/// `gerbang policy verify`: proves every invariant over the rules and the schema; exit 1
/// when one is broken or cannot be proved, or when there is no solver.
pub fn verify(
    config: &Path,
    policies: Option<PathBuf>,
    invariants: Option<PathBuf>,
) -> Result<ExitCode> {
    let dir = policy_dir(config, policies)?;
    let engine = PolicyEngine::load(&dir).map_err(|e| anyhow!("{e}"))?;
    let solver = Solver::find()?;
    let ok = prove(&engine, &dir, invariants, &solver)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Proves and prints each invariant; whether all were proved.
fn prove(
    engine: &PolicyEngine,
    dir: &Path,
    invariants: Option<PathBuf>,
    solver: &Solver,
) -> Result<bool> {
    let inv_dir = invariants.unwrap_or_else(|| dir.join(INVARIANTS_DIR));
    let invariants =
        gerbang_assure::load_invariants(&inv_dir, engine.schema()).map_err(|e| anyhow!("{e}"))?;
    let report = gerbang_assure::verify(engine, &invariants, solver, SOLVER_BUDGET);
    for outcome in &report.outcomes {
        println!("{outcome}");
    }
    let count = |f: fn(&Verdict) -> bool| report.outcomes.iter().filter(|o| f(&o.verdict)).count();
    println!(
        "{} proved, {} violated, {} not proved: rules {} in {}, {} ({} ms)",
        count(|v| matches!(v, Verdict::Proved)),
        count(|v| matches!(v, Verdict::Violated(_))),
        count(|v| matches!(v, Verdict::NotProved(_))),
        engine.hash(),
        dir.display(),
        report.solver,
        report.duration_ms
    );
    Ok(report.all_proved())
}

/// The invariants part of `gerbang check`: proved when a solver is installed, else said
/// plainly that (and what) was skipped. Whether the check passes.
pub fn check_invariants(config: &Config, snap: &Snapshot) -> Result<bool> {
    let dir = config.policy_dir.join(INVARIANTS_DIR);
    if !dir.is_dir() {
        println!(
            "invariants: none ({} does not exist): nothing proved",
            dir.display()
        );
        return Ok(true);
    }
    let engine = snap.engine();
    match Solver::find() {
        Ok(solver) => prove(engine, &config.policy_dir, None, &solver),
        Err(no) => {
            let invariants = gerbang_assure::load_invariants(&dir, engine.schema())
                .map_err(|e| anyhow!("{e}"))?;
            let ids: Vec<&str> = invariants.iter().map(|i| i.id.as_str()).collect();
            println!(
                "invariants: NOT checked: {no}\nskipped ({}): {}",
                ids.len(),
                ids.join(", ")
            );
            Ok(true)
        }
    }
}

/// One side of a diff: a configuration file, a directory holding `gerbang.toml`, or a
/// policy directory (holding the schema) taken with `base`'s PKS files.
fn side(path: &Path, base: &Path) -> Result<Config> {
    let load = |p: &Path| Config::load(p).map_err(|e| anyhow!("{e}"));
    if path.is_file() {
        return load(path);
    }
    if path.join("gerbang.toml").is_file() {
        return load(&path.join("gerbang.toml"));
    }
    if path.join(gerbang_policy::SCHEMA_FILE).is_file() {
        let mut config = load(base)?;
        config.policy_dir = path.to_path_buf();
        config.shadow_dir = None;
        return Ok(config);
    }
    bail!(
        "{} is neither a configuration file, a directory with gerbang.toml, nor a policy directory (with {})",
        path.display(),
        gerbang_policy::SCHEMA_FILE
    )
}

/// `gerbang policy diff OLD NEW`: what changes, per Pengguna and User ID, from one set to
/// the other, and whether the rules changed meaning.
pub fn diff(config: &Path, old: &Path, new: &Path, at: Option<NaiveDate>) -> Result<ExitCode> {
    let day = at.unwrap_or_else(|| gerbang_core::wib_day(chrono::Utc::now()));
    let snapshot = |path: &Path| -> Result<Snapshot> {
        let config = side(path, config)?;
        load_snapshot(&config).map_err(|e| anyhow!("{}:\n{e}", path.display()))
    };
    let (before, after) = (snapshot(old)?, snapshot(new)?);
    let solver = Solver::find();
    if let Err(no) = &solver {
        eprintln!("note: the rules' meaning is not compared: {no}");
    }
    let rules = gerbang_assure::equivalence(
        before.engine(),
        after.engine(),
        solver.as_ref().ok(),
        SOLVER_BUDGET,
    );
    let diff = gerbang_assure::diff(&before, &after, day, rules, None);
    println!("{}", diff.render());
    Ok(ExitCode::SUCCESS)
}

/// `gerbang policy diff --running`: the running set against the files on disk, from the
/// gateway's admin API (nothing is reloaded).
pub fn diff_running(config: &Path) -> Result<ExitCode> {
    let client = crate::admin::AdminClient::from_config(config)?;
    let answer = client.call(reqwest::Method::GET, "/reload/diff", None)?;
    println!("{}", answer["text"].as_str().unwrap_or_default());
    if let Some(proof) = answer["review"]["proof"].as_object() {
        println!("invariants: {}", serde_json::Value::Object(proof.clone()));
    }
    Ok(ExitCode::SUCCESS)
}

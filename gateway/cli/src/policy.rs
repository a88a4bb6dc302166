//! `gerbang policy test` and `gerbang policy explain`: Ditjen's tools to see what the rules
//! decide before and after an edit.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use chrono::NaiveDate;
use serde::Deserialize;

use gerbang_core::{Channel, Config};
use gerbang_policy::{Action, Decision, Request, Snapshot, decide, load_snapshot};

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
    action: &str,
    channel: &str,
    at: Option<NaiveDate>,
    ip: Option<IpAddr>,
) -> Result<ExitCode> {
    let snap = load(config)?;
    let at = at.unwrap_or_else(|| gerbang_core::wib_day(chrono::Utc::now()));
    let d = evaluate(&snap, user, action, parse_channel(channel)?, at, ip, false)?;
    let engine = snap.engine();
    println!("request:   {user} {action} over {channel} on {at} (WIB)");
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

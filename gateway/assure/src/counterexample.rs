//! A counterexample in readable terms: the request SymCC found (which User ID, PKS and
//! Pengguna shape, which action, which element, which request facts) and what the rules
//! did with it, replayed through Cedar's own authorizer so the deciding rules are named
//! with the file and line they are written at.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cedar_policy::{Authorizer, Decision, Entities, EntityUid, EvalResult, PolicySet, Request};
use gerbang_policy::PolicyEngine;

/// Attributes that hold WIB days as days since 1970-01-01 (the schema says so); shown as
/// dates beside the number.
const DAY_ATTRIBUTES: [&str; 3] = ["today", "mulai", "sampai"];

/// What the solver said of a request, so its replay through Cedar can be checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect<'a> {
    /// The rules permit it.
    Permit,
    /// This rule errors on it.
    Error(&'a str),
    /// Either decision (two rule sets differ on it).
    Either,
}

/// A request and entities that break an invariant, with what the rules decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Counterexample {
    /// The action asked, such as `CallNik` or `ReadElement`.
    pub action: String,
    /// What the rules did: `permitted by lookup-by-nik (policies/akses.cedar:7)`, or
    /// the error a rule gave.
    pub outcome: String,
    /// The request and every entity it involves, one per line.
    pub lines: Vec<String>,
}

impl std::fmt::Display for Counterexample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.action, self.outcome)?;
        for line in &self.lines {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

impl Counterexample {
    /// Describes a request and what `rules` decide for it, replayed through Cedar:
    /// `expect` says what the solver claimed, so a disagreement is said, not hidden.
    pub(crate) fn describe(
        engine: &PolicyEngine,
        rules: &PolicySet,
        request: &Request,
        entities: &Entities,
        expect: Expect<'_>,
    ) -> Self {
        let action = request
            .action()
            .map_or_else(|| "?".to_string(), |a| a.id().unescaped().to_string());
        let response = Authorizer::new().is_authorized(request, rules, entities);
        let named = |ids: Vec<String>| {
            ids.iter()
                .map(|id| match engine.origin(id) {
                    Some(origin) => format!("{id} ({origin})"),
                    None => id.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        reasons.sort_unstable();
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        let outcome = match (expect, response.decision()) {
            (Expect::Error(rule), _) => format!(
                "makes rule {} fail: {}",
                named(vec![rule.to_string()]),
                if errors.is_empty() {
                    "(Cedar did not fail when replayed: report this, the solver and Cedar disagree)"
                        .to_string()
                } else {
                    errors.join("; ")
                }
            ),
            (_, Decision::Allow) => format!("is PERMITTED by {}", named(reasons)),
            (Expect::Permit, Decision::Deny) => {
                "is denied when Cedar replays it (report this: the solver and Cedar disagree)"
                    .to_string()
            }
            (Expect::Either, Decision::Deny) if reasons.is_empty() => {
                "is denied (nothing permits it)".to_string()
            }
            (Expect::Either, Decision::Deny) => format!("is denied by {}", named(reasons)),
        };
        let mut lines = Vec::new();
        let who = |uid: Option<&EntityUid>| uid.map_or_else(|| "?".to_string(), show_uid);
        let mut asked = format!(
            "request: {action} by {} on {}",
            who(request.principal()),
            who(request.resource())
        );
        if let Some(context) = request.context() {
            let mut facts = Vec::new();
            for key in ["today", "channel", "peer_ip", "ip_blocked", "sam_valid"] {
                if let Some(v) = context.get(key) {
                    facts.push(format!("{key} {}", show_value(key, &v)));
                }
            }
            let _ = write!(asked, "; context: {}", facts.join(", "));
        }
        lines.push(asked);
        // The principal, then the resource, then the rest by type: User ID, PKS, Pengguna,
        // Element.
        let order = |uid: &EntityUid| {
            let rank = if Some(uid) == request.principal() {
                0
            } else if Some(uid) == request.resource() {
                1
            } else {
                2
            };
            (
                rank,
                uid.type_name().basename().to_string(),
                uid.to_string(),
            )
        };
        let mut shown: Vec<&cedar_policy::Entity> = entities
            .iter()
            .filter(|e| e.uid().type_name().basename() != "Action")
            .collect();
        shown.sort_by_key(|e| order(&e.uid()));
        for entity in shown {
            let uid = entity.uid();
            let mut line = show_uid(&uid);
            if let Some(ancestors) = entities.ancestors(&uid) {
                let mut a: Vec<String> = ancestors.map(show_uid).collect();
                a.sort_unstable();
                if !a.is_empty() {
                    let _ = write!(line, " in {}", a.join(", "));
                }
            }
            let attrs: BTreeMap<String, String> = entity
                .attrs()
                .map(|(k, v)| {
                    let shown = v.map_or_else(|_| "?".to_string(), |v| show_value(k, &v));
                    (k.to_string(), shown)
                })
                .collect();
            if !attrs.is_empty() {
                let attrs: Vec<String> =
                    attrs.into_iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = write!(line, ": {}", attrs.join(", "));
            }
            lines.push(line);
        }
        Self {
            action,
            outcome,
            lines,
        }
    }
}

/// `PKS "470/1001"`, `User ID "u"`, `Pengguna ""`, `Element "ALAMAT"`.
fn show_uid(uid: &EntityUid) -> String {
    let kind = match uid.type_name().basename() {
        "User" => "User ID",
        "Pks" => "PKS",
        other => other,
    };
    format!("{kind} {:?}", uid.id().unescaped())
}

/// A value as Cedar prints it; entity references as [`show_uid`]; days as dates too.
fn show_value(attr: &str, v: &EvalResult) -> String {
    match v {
        EvalResult::Long(days) if DAY_ATTRIBUTES.contains(&attr) => {
            let date = chrono::TimeDelta::try_days(*days)
                .and_then(|d| chrono::NaiveDate::default().checked_add_signed(d));
            match date {
                Some(date) => format!("{date} (day {days})"),
                None => format!("day {days}"),
            }
        }
        EvalResult::EntityUid(uid) => show_uid(uid),
        EvalResult::Set(set) => {
            let items: Vec<String> = set.iter().map(|x| show_value("", x)).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

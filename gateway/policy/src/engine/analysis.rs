//! Rule analysis: what the policies read, from their JSON form. It decides whether elements
//! can be decided per agreement or per class, and whether decisions depend on the address.

/// Whether a policy reads nothing of a request but the principal's agreement and the
/// resource: its principal scope is open (or only names the type), it never reads the
/// context, and it reaches the principal only as `principal.pks`. Two User IDs of one
/// agreement then get the same answer from it. Anything else (`principal.status`,
/// `principal in …`, `context.channel`) is assumed to depend on the request.
pub(super) fn reads_only_the_agreement(policy: &cedar_policy::Policy) -> bool {
    fn walk(json: &serde_json::Value) -> bool {
        match json {
            serde_json::Value::Object(map) => {
                if let Some(access) = map.get(".") {
                    let via_pks = access.get("attr").and_then(|a| a.as_str()) == Some("pks")
                        && access.get("left").and_then(|l| l.get("Var"))
                            == Some(&serde_json::Value::from("principal"));
                    if via_pks {
                        return true;
                    }
                }
                match map.get("Var").and_then(|v| v.as_str()) {
                    Some("principal" | "context") => false,
                    _ => map.values().all(walk),
                }
            }
            serde_json::Value::Array(items) => items.iter().all(walk),
            _ => true,
        }
    }
    let open_scope = matches!(
        policy.principal_constraint(),
        cedar_policy::PrincipalConstraint::Any | cedar_policy::PrincipalConstraint::Is(_)
    );
    open_scope
        && policy
            .to_json()
            .is_ok_and(|json| json.get("conditions").is_none_or(walk))
}

/// Whether a policy's JSON form holds an entity literal of type `Gerbang::Element`: in the
/// scope (`{"type": …, "id": …}`) or in a condition (`{"__entity": {"type": …, "id": …}}`).
pub(super) fn names_element(json: &serde_json::Value) -> bool {
    match json {
        serde_json::Value::Object(map) => {
            let literal = map.get("type").and_then(|t| t.as_str()) == Some("Gerbang::Element")
                && map.contains_key("id");
            literal || map.values().any(names_element)
        }
        serde_json::Value::Array(items) => items.iter().any(names_element),
        _ => false,
    }
}

/// Whether a policy's JSON form reads `context.peer_ip`: an attribute access or `has` on
/// `context` naming it, or `context` used whole (compared, or passed on).
pub(super) fn reads_peer(json: &serde_json::Value) -> bool {
    match json {
        serde_json::Value::Object(map) => {
            for op in [".", "has"] {
                if let Some(access) = map.get(op)
                    && access.get("left").and_then(|l| l.get("Var")) == Some(&"context".into())
                {
                    return access.get("attr").and_then(|a| a.as_str()) == Some("peer_ip");
                }
            }
            map.get("Var").and_then(|v| v.as_str()) == Some("context")
                || map.values().any(reads_peer)
        }
        serde_json::Value::Array(items) => items.iter().any(reads_peer),
        _ => false,
    }
}

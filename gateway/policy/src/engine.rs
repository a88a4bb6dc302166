//! The Cedar engine: Ditjen's rules (`policies/*.cedar`) over entities derived from the PKS
//! files, validated against `policies/gerbang.cedarschema` in strict mode at every load.
//!
//! The policy set is the same whatever the number of agreements: rules are generic over
//! entity attributes, so the cost of one decision does not grow with the PKS count.
//!
//! Its parts: `load` (parse, validate, slice the rules per action), `entities` (the Cedar
//! entities of the agreements, built whole or updated), `evaluation` (contexts and the
//! questions put to Cedar) and `analysis` (what the rules read, which decides how decisions
//! may be shared and cached).

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Schema,
};
use dashmap::DashMap;

use gerbang_core::Channel;

/// The schema file inside the policy directory.
pub const SCHEMA_FILE: &str = "gerbang.cedarschema";

/// The validated rules.
#[derive(Debug)]
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    /// Per action, the policies whose scope can match it: Cedar builds and evaluates every
    /// policy of the set it is given, so a `ReadElement` question is put to the two element
    /// rules only, not to all of them. Same answers, a fraction of the work.
    slices: HashMap<EntityUid, PolicySet>,
    authorizer: Authorizer,
    /// `@code` of each policy that has one: the DWH code its refusals are answered with.
    codes: HashMap<PolicyId, String>,
    /// Where each policy was written, for `explain`.
    origins: HashMap<PolicyId, String>,
    hash: String,
    types: Types,
    /// Some rule names an element literally (`Gerbang::Element::"…"`), so elements cannot
    /// be decided by class (see [`PolicyEngine::readable_elements`]).
    names_elements: bool,
    /// The element rules read nothing of the request but the principal's agreement
    /// (`principal.pks…`) and the element: which elements an agreement's User IDs may see is
    /// then worked out once per agreement, when a snapshot is built.
    elements_by_agreement: bool,
    /// Some rule reads `context.peer_ip` (or the whole context): decisions then depend on
    /// the address a request comes from, and are cached per address.
    reads_peer: bool,
    /// The contexts built, by what they hold. Building one is a quarter of a cold decision
    /// (Cedar parses the function name `ip` and evaluates the record each time); there are
    /// few of them a day unless a rule reads the address (see [`PolicyEngine::context`]).
    contexts: DashMap<ContextKey, Context>,
}

/// What a context holds: day, channel, blocked network, SAM validated, and the address
/// when a rule reads it.
type ContextKey = (
    chrono::NaiveDate,
    Channel,
    bool,
    bool,
    Option<std::net::IpAddr>,
);

/// How many contexts `PolicyEngine::contexts` keeps; when full it starts again empty.
const CONTEXTS_KEPT: usize = 20_000;

#[derive(Debug, Clone)]
struct Types {
    user: EntityTypeName,
    pks: EntityTypeName,
    pengguna: EntityTypeName,
    element: EntityTypeName,
    action: EntityTypeName,
}

impl Types {
    fn new() -> Self {
        let t = |s: &str| {
            EntityTypeName::from_str(s).unwrap_or_else(|_| unreachable!("{s} is a valid type name"))
        };
        Self {
            user: t("Gerbang::User"),
            pks: t("Gerbang::Pks"),
            pengguna: t("Gerbang::Pengguna"),
            element: t("Gerbang::Element"),
            action: t("Gerbang::Action"),
        }
    }
}

fn uid(t: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))
}

mod analysis;
mod entities;
mod evaluation;
mod load;

pub(crate) use entities::pengguna_facts;

impl PolicyEngine {
    /// A short hash of the schema and policy texts, logged on every swap.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether the element rules depend only on the principal's agreement (see
    /// [`reads_only_the_agreement`]), so a snapshot can decide elements per agreement.
    pub fn elements_by_agreement(&self) -> bool {
        self.elements_by_agreement
    }

    /// Whether some rule names an element literally, so elements are decided one by one.
    pub fn names_elements(&self) -> bool {
        self.names_elements
    }

    /// Whether some rule reads the peer address, so decisions are cached per address.
    pub fn reads_peer(&self) -> bool {
        self.reads_peer
    }

    /// The validated schema (for the proofs of `gerbang-assure`).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The whole rule set, each policy named by its `@id`.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Number of policies (the same whatever the number of agreements).
    pub fn policy_count(&self) -> usize {
        self.policies.policies().count()
    }

    /// The DWH code a refusal by this policy is answered with.
    pub fn code(&self, id: &str) -> Option<&str> {
        self.codes.get(&PolicyId::new(id)).map(String::as_str)
    }

    /// Where a policy is written (`file:line`).
    pub fn origin(&self, id: &str) -> Option<&str> {
        self.origins.get(&PolicyId::new(id)).map(String::as_str)
    }
}

/// WIB day as days since 1970-01-01.
pub(crate) fn day_number(day: chrono::NaiveDate) -> i64 {
    (day - chrono::NaiveDate::default()).num_days()
}

/// Why a question could not be put to Cedar. Not expected: the gateway's questions were
/// checked against the schema at load (`load::request_shapes`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AskError {
    #[error(transparent)]
    Context(Box<cedar_policy::ContextCreationError>),
    #[error(transparent)]
    Request(Box<cedar_policy::RequestValidationError>),
}

/// The per-request facts that go into the Cedar context.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub day: chrono::NaiveDate,
    pub channel: Channel,
    pub peer: std::net::IpAddr,
    pub ip_blocked: bool,
    pub sam_valid: bool,
}

impl Facts {
    /// Well-typed facts for questions whose answer does not depend on them.
    fn placeholder() -> Self {
        Self {
            day: chrono::NaiveDate::default(),
            channel: Channel::WebService,
            peer: std::net::IpAddr::from([127, 0, 0, 1]),
            ip_blocked: false,
            sam_valid: false,
        }
    }
}

/// Cedar's answer, with the policies that decided it.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub allowed: bool,
    pub policies: Vec<String>,
}

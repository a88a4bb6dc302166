//! The Cedar engine: Ditjen's rules (`policies/*.cedar`) over entities derived from the PKS
//! files, validated against `policies/gerbang.cedarschema` in strict mode at every load.
//!
//! The policy set is the same whatever the number of agreements: rules are generic over
//! entity attributes, so the cost of one decision does not grow with the PKS count.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, PolicyId, PolicySet, Request as CedarRequest, RestrictedExpression,
    Schema, ValidationMode, Validator,
};
use dashmap::DashMap;
use miette::Diagnostic;
use sha2::{Digest, Sha256};

use gerbang_core::{
    Channel, ConfigError, ConfigErrors, ElementSet, JenisPengguna, KunciAkses, Pks, PksStatus,
    Source, UserStatus, Vocabulary,
};

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

/// Turns a Cedar diagnostic into located errors in `src`.
fn located(src: &Source<'_>, field: &str, d: &dyn Diagnostic, message: String) -> ConfigError {
    let span = d
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| l.offset()..l.offset() + l.len());
    let help = d.help().map(|h| format!(" ({h})")).unwrap_or_default();
    src.error(span, field, format!("{message}{help}"))
}

impl PolicyEngine {
    /// Loads `gerbang.cedarschema` and every `*.cedar` file of `dir`.
    pub fn load(dir: &Path) -> Result<Self, ConfigErrors> {
        let read = |path: &Path| gerbang_core::read_config_file(path);
        let schema_path = dir.join(SCHEMA_FILE);
        let schema_text = read(&schema_path)?;
        let entries = std::fs::read_dir(dir).map_err(|e| ConfigError {
            file: dir.to_path_buf(),
            line: None,
            column: None,
            field: String::new(),
            message: format!("cannot read the policy directory: {e}"),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cedar") && p.is_file())
            .collect();
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let text = read(&p)?;
            files.push((p, text));
        }
        Self::parse(&schema_path, &schema_text, &files)
    }

    /// Parses and validates a schema and policy files; every problem is reported.
    pub fn parse(
        schema_path: &Path,
        schema_text: &str,
        files: &[(PathBuf, String)],
    ) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let schema_src = Source::new(schema_path, schema_text);
        let schema = match Schema::from_cedarschema_str(schema_text) {
            Ok((schema, warnings)) => {
                for w in warnings {
                    errors.push(located(&schema_src, "", &w, format!("schema warning: {w}")));
                }
                Some(schema)
            }
            Err(e) => {
                errors.push(located(&schema_src, "", &e, format!("schema: {e}")));
                None
            }
        };

        let mut policies = PolicySet::new();
        let mut codes = HashMap::new();
        let mut origins = HashMap::new();
        let mut sources: HashMap<PolicyId, usize> = HashMap::new();
        for (i, (path, text)) in files.iter().enumerate() {
            let src = Source::new(path, text);
            let parsed = match PolicySet::from_str(text) {
                Ok(p) => p,
                Err(e) => {
                    for d in e.iter() {
                        errors.push(located(&src, "", d, format!("{d}")));
                    }
                    continue;
                }
            };
            // A template (`?principal`, `?resource`) is not a rule until linked, and nothing
            // links them: refuse it rather than load a file whose rule silently does nothing.
            for template in parsed.templates() {
                let line = policy_line(text, template.id());
                errors.push(src.error(
                    None,
                    "",
                    format!("the rule at line {line} is a template (it uses ?principal or ?resource); Gerbang does not link templates: name the entity, or use `principal in …` in a condition"),
                ));
            }
            for policy in parsed.policies() {
                let line = policy_line(text, policy.id());
                let Some(id) = policy.annotation("id") else {
                    errors.push(src.error(None, "", format!("the policy at line {line} has no @id(\"…\") annotation; every rule needs a stable name")));
                    continue;
                };
                let id = PolicyId::new(id);
                if let Some(prev) = origins.get(&id) {
                    errors.push(src.error(
                        None,
                        "",
                        format!("@id(\"{id}\") at line {line} is already used by {prev}"),
                    ));
                    continue;
                }
                if let Some(code) = policy.annotation("code") {
                    codes.insert(id.clone(), code.to_string());
                }
                origins.insert(id.clone(), format!("{}:{line}", path.display()));
                sources.insert(id.clone(), i);
                if let Err(e) = policies.add(policy.new_id(id)) {
                    errors.push(src.error(None, "", format!("{e}")));
                }
            }
        }

        if let Some(schema) = &schema {
            let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
            let diagnostics = result
                .validation_errors()
                .map(|e| (e.policy_id().clone(), e as &dyn Diagnostic, format!("{e}")))
                .chain(result.validation_warnings().map(|w| {
                    (
                        w.policy_id().clone(),
                        w as &dyn Diagnostic,
                        format!("warning: {w}"),
                    )
                }));
            for (policy, d, message) in diagnostics {
                let (path, text) = sources.get(&policy).map_or((schema_path, ""), |&i| {
                    (files[i].0.as_path(), files[i].1.as_str())
                });
                let src = Source::new(path, text);
                errors.push(located(&src, &format!("policy {policy}"), d, message));
            }
        }

        let Some(schema) = schema.filter(|_| errors.is_empty()) else {
            return Err(ConfigErrors(errors));
        };
        let types = Types::new();
        let slices = request_shapes(&schema, &types)
            .and_then(|()| slices(&schema, &policies))
            .map_err(|message| {
                ConfigErrors(vec![ConfigError {
                    file: schema_path.to_path_buf(),
                    line: None,
                    column: None,
                    field: String::new(),
                    message,
                }])
            })?;
        let read_element = uid(&types.action, "ReadElement");
        let elements_by_agreement = slices
            .get(&read_element)
            .is_some_and(|slice| slice.policies().all(reads_only_the_agreement));
        // A policy that cannot be shown as JSON is assumed to name an element and to read
        // the address: the per-element path and per-address decisions are always correct,
        // only slower.
        let names_elements = policies
            .policies()
            .any(|p| p.to_json().map_or(true, |json| names_element(&json)));
        let reads_peer = policies
            .policies()
            .any(|p| p.to_json().map_or(true, |json| reads_peer(&json)));
        let mut hasher = Sha256::new();
        hasher.update(schema_text.as_bytes());
        for (path, text) in files {
            hasher.update(
                path.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
            hasher.update(text.as_bytes());
        }
        let hash = hasher
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            schema,
            policies,
            slices,
            authorizer: Authorizer::new(),
            codes,
            origins,
            hash,
            types,
            names_elements,
            elements_by_agreement,
            reads_peer,
            contexts: DashMap::new(),
        })
    }

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

    /// Builds the Cedar entities of a set of agreements, checked against the schema.
    pub fn entities(
        &self,
        vocab: &Vocabulary,
        agreements: &[Arc<Pks>],
    ) -> Result<Entities, ConfigErrors> {
        let t = &self.types;
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (id, e) in self.element_entities(vocab) {
            push(&mut out, &mut errors, e, id);
        }
        let facts = pengguna_facts(agreements);
        let mut penggunas = HashSet::new();
        for pks in agreements {
            if penggunas.insert(pks.pengguna.as_str())
                && let Some(f) = facts.get(pks.pengguna.as_str())
            {
                push(
                    &mut out,
                    &mut errors,
                    self.pengguna_entity(&pks.pengguna, f),
                    &pks.pengguna,
                );
            }
        }
        // Making an entity has Cedar evaluate each attribute: a fifth of a load at 5,000
        // PKS.
        let halves = in_two_halves(agreements, "building the Cedar entities", |_, part| {
            self.agreements_and_users(vocab, part)
        })?;
        let mut users = Vec::new();
        for (agreements, its_users, its_errors) in halves {
            out.extend(agreements);
            users.extend(its_users);
            errors.extend(its_errors);
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        // Checking 55,000 entities against the schema is a fifth of a reload at 5,000 PKS,
        // and every entity of a type is built alike (the same attributes, of the same
        // types): one of each type stands for all. Sets of elements may be empty, which fits
        // any set type, so the first agreement with Minister's approvals is checked too.
        // The full set is then built without the schema, so the schema's action entities
        // (the `Lookup` group) are added by hand.
        let mut seen: HashSet<EntityTypeName> = HashSet::new();
        let approvals = agreements
            .iter()
            .find(|p| !p.persetujuan_menteri.is_empty())
            .map(|p| uid(&t.pks, &p.nomor));
        let checked = out.iter().chain(users.first()).filter(|e| {
            seen.insert(e.uid().type_name().clone()) || approvals.as_ref() == Some(&e.uid())
        });
        Entities::from_entities(checked.cloned(), Some(&self.schema)).map_err(|e| unfit(&e))?;
        let actions = self.schema.action_entities().map_err(|e| unfit(&e))?;
        // The User IDs are added to the rest rather than built with it: Cedar then repairs
        // the hierarchy around them (each is a leaf under its PKS and Pengguna) instead of
        // computing it for the whole set, which at 5,000 PKS is both faster and leaves far
        // less freed memory behind (RSS after a load 322 → 246 MiB).
        Entities::from_entities(out.into_iter().chain(actions), None)
            .map_err(|e| unfit(&e))?
            .add_entities(users, None)
            .map_err(|e| unfit(&e))
    }

    /// The entities of some agreements and of their User IDs, and what could not be made.
    fn agreements_and_users(
        &self,
        vocab: &Vocabulary,
        agreements: &[Arc<Pks>],
    ) -> (Vec<Entity>, Vec<Entity>, Vec<ConfigError>) {
        let mut out = Vec::with_capacity(agreements.len());
        let mut users = Vec::new();
        let mut errors = Vec::new();
        for pks in agreements {
            let (agreement, its_users) = self.agreement_entities(vocab, pks);
            push(&mut out, &mut errors, agreement, &pks.nomor);
            for (user, e) in pks.users.iter().zip(its_users) {
                push(&mut users, &mut errors, e, &user.id);
            }
        }
        (out, users, errors)
    }

    /// The entities of `new`, made from `previous`, the entities of `old` (built by
    /// [`Self::entities`] or by this, with the same vocabulary and rules): entities that no
    /// longer exist are removed, and entities that are new or differ are put in; everything
    /// else is shared with `previous`. `None` when so much changed that building everything
    /// again is cheaper: Cedar looks at every entity for each one it replaces or removes.
    pub(crate) fn update_entities(
        &self,
        previous: &Entities,
        vocab: &Vocabulary,
        old: &[Arc<Pks>],
        new: &[Arc<Pks>],
    ) -> Result<Option<Entities>, ConfigErrors> {
        let t = &self.types;
        let old_by_nomor: HashMap<&str, &Arc<Pks>> =
            old.iter().map(|p| (p.nomor.as_str(), p)).collect();
        let new_nomors: HashSet<&str> = new.iter().map(|p| p.nomor.as_str()).collect();
        let (old_facts, new_facts) = (pengguna_facts(old), pengguna_facts(new));
        let mut errors = Vec::new();
        let mut put = Vec::new();
        let mut remove = Vec::new();
        // Entities replaced or removed; each costs a pass over all of them.
        let mut costly = 0;
        let limit = UPDATE_PASSES_PER_BUILD;

        for (id, facts) in &new_facts {
            match old_facts.get(id) {
                Some(f) if f == facts => {}
                was => {
                    costly += usize::from(was.is_some());
                    push(&mut put, &mut errors, self.pengguna_entity(id, facts), id);
                }
            }
        }
        remove.extend(
            old_facts
                .keys()
                .filter(|id| !new_facts.contains_key(*id))
                .map(|id| uid(&t.pengguna, id)),
        );
        // User IDs of agreements that changed or went away, and of those that changed or came.
        let mut gone_users: HashSet<&str> = HashSet::new();
        let mut kept_users: HashSet<&str> = HashSet::new();
        for pks in new {
            let before = old_by_nomor.get(pks.nomor.as_str());
            if before.is_some_and(|b| *b == pks) {
                continue;
            }
            if let Some(before) = before {
                gone_users.extend(before.users.iter().map(|u| u.id.as_str()));
            }
            kept_users.extend(pks.users.iter().map(|u| u.id.as_str()));
            let (agreement, users) = self.agreement_entities(vocab, pks);
            let ids =
                std::iter::once(pks.nomor.as_str()).chain(pks.users.iter().map(|u| u.id.as_str()));
            for (id, e) in ids.zip(std::iter::once(agreement).chain(users)) {
                let Ok(e) = e else {
                    push(&mut put, &mut errors, e, id);
                    continue;
                };
                match previous.get(&e.uid()) {
                    Some(was) if was.deep_eq(&e) => {}
                    was => {
                        costly += usize::from(was.is_some());
                        put.push(e);
                    }
                }
            }
            if costly > limit {
                return Ok(None);
            }
        }
        for pks in old
            .iter()
            .filter(|p| !new_nomors.contains(p.nomor.as_str()))
        {
            remove.push(uid(&t.pks, &pks.nomor));
            gone_users.extend(pks.users.iter().map(|u| u.id.as_str()));
        }
        remove.extend(
            gone_users
                .difference(&kept_users)
                .map(|id| uid(&t.user, id)),
        );
        costly += remove.len();
        if costly > limit {
            return Ok(None);
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let mut entities = previous.clone();
        if !remove.is_empty() {
            entities = entities.remove_entities(remove).map_err(|e| unfit(&e))?;
        }
        if !put.is_empty() {
            // Few entities: each is checked against the schema.
            entities = entities
                .upsert_entities(put, Some(&self.schema))
                .map_err(|e| unfit(&e))?;
        }
        Ok(Some(entities))
    }

    /// The entity of each element of the vocabulary, with its name.
    fn element_entities<'v>(
        &self,
        vocab: &'v Vocabulary,
    ) -> Vec<(&'v str, Result<Entity, String>)> {
        vocab
            .all()
            .iter()
            .map(|id| {
                let attrs = HashMap::from([(
                    "dilindungi".to_string(),
                    RestrictedExpression::new_bool(vocab.protected().contains(id)),
                )]);
                let name = vocab.name(id);
                (
                    name,
                    Entity::new(uid(&self.types.element, name), attrs, HashSet::new())
                        .map_err(|e| e.to_string()),
                )
            })
            .collect()
    }

    /// A Pengguna's entity.
    fn pengguna_entity(&self, id: &str, facts: &PenggunaFacts) -> Result<Entity, String> {
        let attrs = HashMap::from([
            (
                "jenis".to_string(),
                RestrictedExpression::new_string(format!("{:?}", facts.jenis).to_lowercase()),
            ),
            (
                "asing_mayoritas".to_string(),
                RestrictedExpression::new_bool(facts.asing_mayoritas),
            ),
            (
                "penegak_hukum".to_string(),
                RestrictedExpression::new_bool(facts.penegak_hukum),
            ),
        ]);
        Entity::new(uid(&self.types.pengguna, id), attrs, HashSet::new()).map_err(|e| e.to_string())
    }

    /// An agreement's entity and those of its User IDs (in order). A User ID's parents are
    /// its PKS and the PKS's Pengguna: the whole of its ancestry, so Cedar has no
    /// transitive edge to add (and no second set to allocate) per User ID.
    #[allow(clippy::type_complexity)]
    fn agreement_entities(
        &self,
        vocab: &Vocabulary,
        pks: &Pks,
    ) -> (Result<Entity, String>, Vec<Result<Entity, String>>) {
        let t = &self.types;
        let pengguna = uid(&t.pengguna, &pks.pengguna);
        let pks_uid = uid(&t.pks, &pks.nomor);
        let elements = |set: ElementSet| {
            RestrictedExpression::new_set(
                set.iter()
                    .map(|e| RestrictedExpression::new_entity_uid(uid(&t.element, vocab.name(e)))),
            )
        };
        let attrs = HashMap::from([
            (
                "nomor".to_string(),
                RestrictedExpression::new_string(pks.nomor.clone()),
            ),
            (
                "pengguna".to_string(),
                RestrictedExpression::new_entity_uid(pengguna.clone()),
            ),
            (
                "status".to_string(),
                RestrictedExpression::new_string(pks_status(pks.status).to_string()),
            ),
            (
                "mulai".to_string(),
                RestrictedExpression::new_long(day_number(pks.mulai)),
            ),
            (
                "sampai".to_string(),
                RestrictedExpression::new_long(day_number(pks.sampai)),
            ),
            (
                "metode_akses".to_string(),
                RestrictedExpression::new_set(
                    pks.metode_akses
                        .iter()
                        .map(|c| RestrictedExpression::new_string(c.as_str().to_string())),
                ),
            ),
            (
                "kunci_akses".to_string(),
                RestrictedExpression::new_set(
                    pks.kunci_akses
                        .iter()
                        .map(|k| RestrictedExpression::new_string(key_name(*k).to_string())),
                ),
            ),
            ("elemen".to_string(), elements(pks.elemen_data)),
            (
                "persetujuan_menteri".to_string(),
                elements(pks.persetujuan_menteri),
            ),
        ]);
        let agreement = Entity::new(pks_uid.clone(), attrs, HashSet::from([pengguna.clone()]))
            .map_err(|e| e.to_string());
        let users = pks
            .users
            .iter()
            .map(|user| {
                let status = match user.status {
                    UserStatus::Aktif => "aktif",
                    UserStatus::Nonaktif => "nonaktif",
                };
                let attrs = HashMap::from([
                    (
                        "pks".to_string(),
                        RestrictedExpression::new_entity_uid(pks_uid.clone()),
                    ),
                    (
                        "status".to_string(),
                        RestrictedExpression::new_string(status.to_string()),
                    ),
                ]);
                Entity::new(
                    uid(&t.user, &user.id),
                    attrs,
                    HashSet::from([pks_uid.clone(), pengguna.clone()]),
                )
                .map_err(|e| e.to_string())
            })
            .collect();
        (agreement, users)
    }

    /// The Cedar context of one request; built once per decision and shared by its
    /// evaluations.
    ///
    /// When no rule reads `peer_ip`, its value cannot change an answer, and the context says
    /// `0.0.0.0` for every request: one context then serves every address, and the decision
    /// cache is not split by address either.
    pub(crate) fn context(&self, facts: &Facts) -> Result<Context, String> {
        let peer = self.reads_peer.then_some(facts.peer);
        let key = (
            facts.day,
            facts.channel,
            facts.ip_blocked,
            facts.sam_valid,
            peer,
        );
        if let Some(context) = self.contexts.get(&key) {
            return Ok(context.clone());
        }
        let shown = peer.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let context = build_context(facts, RestrictedExpression::new_ip(shown.to_string()))?;
        if self.contexts.len() >= CONTEXTS_KEPT {
            self.contexts.clear();
        }
        self.contexts.insert(key, context.clone());
        Ok(context)
    }

    /// One Cedar decision about an agreement (the access itself).
    pub(crate) fn is_authorized(
        &self,
        entities: &Entities,
        principal: &str,
        action: &str,
        pks: &str,
        context: &Context,
    ) -> Result<Answer, String> {
        self.access(entities, principal, action, pks, context, false)
    }

    /// The access question, put to the action's slice of the policies, or (`whole`, to
    /// check the slices against it in the tests) to the whole set.
    pub(crate) fn access(
        &self,
        entities: &Entities,
        principal: &str,
        action: &str,
        pks: &str,
        context: &Context,
        whole: bool,
    ) -> Result<Answer, String> {
        let t = &self.types;
        let action = uid(&t.action, action);
        let policies = match self.slices.get(&action) {
            Some(slice) if !whole => slice,
            _ => &self.policies,
        };
        self.ask_of(
            entities,
            uid(&t.user, principal),
            action,
            uid(&t.pks, pks),
            context,
            policies,
        )
    }

    /// The elements this User ID may see in an answer: `ReadElement` asked of Cedar.
    ///
    /// Elements the rules cannot tell apart get the same answer, so Cedar is asked once per
    /// class rather than once per element. An element entity carries only `dilindungi` and
    /// no parents, and the only sets of elements a rule can reach are the agreement's
    /// `elemen` and `persetujuan_menteri`; Cedar cannot read an entity's id. So unless a
    /// rule names an element literally (then every element is asked about on its own),
    /// (protected, agreed, approved) decides the answer: at most eight evaluations, in
    /// practice two or three, whatever the vocabulary's size.
    pub(crate) fn readable_elements(
        &self,
        entities: &Entities,
        vocab: &Vocabulary,
        principal: &str,
        pks: &Pks,
        context: &Context,
    ) -> ElementSet {
        self.readable(
            entities,
            vocab,
            principal,
            pks,
            context,
            !self.names_elements,
        )
    }

    /// [`Self::readable_elements`] asking Cedar about every element, or once per class.
    pub(crate) fn readable(
        &self,
        entities: &Entities,
        vocab: &Vocabulary,
        principal: &str,
        pks: &Pks,
        context: &Context,
        by_class: bool,
    ) -> ElementSet {
        let t = &self.types;
        let principal = uid(&t.user, principal);
        let action = uid(&t.action, "ReadElement");
        let policies = self.slices.get(&action).unwrap_or(&self.policies);
        let mut answers: [Option<bool>; 8] = [None; 8];
        let mut readable = ElementSet::EMPTY;
        for id in vocab.all().iter() {
            let class = usize::from(vocab.protected().contains(id))
                | usize::from(pks.elemen_data.contains(id)) << 1
                | usize::from(pks.persetujuan_menteri.contains(id)) << 2;
            let cached = answers[class].filter(|_| by_class);
            let allowed = cached.unwrap_or_else(|| {
                let resource = uid(&t.element, vocab.name(id));
                let allowed = match self.ask_of(
                    entities,
                    principal.clone(),
                    action.clone(),
                    resource,
                    context,
                    policies,
                ) {
                    Ok(a) => a.allowed,
                    Err(e) => {
                        tracing::error!(
                            error = e.as_str(),
                            element = vocab.name(id),
                            "cannot ask Cedar about an element; withheld"
                        );
                        false
                    }
                };
                answers[class] = Some(allowed);
                allowed
            });
            if allowed {
                readable.insert(id);
            }
        }
        readable
    }

    /// The elements each agreement's User IDs may see, asked of Cedar for one User ID of the
    /// agreement; only sound when [`Self::elements_by_agreement`] (the rules cannot tell
    /// two User IDs of one agreement, or two requests, apart). An agreement without User
    /// IDs gets nothing: no one can ask under it.
    ///
    /// `known[i]`, when given, is agreement `i`'s answer from before a reload that changed
    /// nothing it depends on; it is taken as it is.
    pub(crate) fn agreement_elements(
        &self,
        entities: &Entities,
        vocab: &Vocabulary,
        agreements: &[Arc<Pks>],
        known: &[Option<ElementSet>],
    ) -> Result<Vec<ElementSet>, ConfigErrors> {
        // The rules do not read the context; any well-typed one will do.
        let facts = Facts::placeholder();
        let Ok(context) = self.context(&facts) else {
            tracing::error!("cannot build a Cedar context; every element withheld");
            return Ok(vec![ElementSet::EMPTY; agreements.len()]);
        };
        // Two or three Cedar evaluations per agreement.
        let halves = in_two_halves(
            agreements,
            "deciding the agreements' elements",
            |from, part| {
                part.iter()
                    .enumerate()
                    .map(|(i, pks)| {
                        match (known.get(from + i).copied().flatten(), pks.users.first()) {
                            (Some(elements), _) => elements,
                            (None, Some(user)) => {
                                self.readable_elements(entities, vocab, &user.id, pks, &context)
                            }
                            (None, None) => ElementSet::EMPTY,
                        }
                    })
                    .collect::<Vec<_>>()
            },
        )?;
        Ok(halves.into_iter().flatten().collect())
    }

    fn ask_of(
        &self,
        entities: &Entities,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: &Context,
        policies: &PolicySet,
    ) -> Result<Answer, String> {
        let request = CedarRequest::new(
            principal,
            action,
            resource,
            context.clone(),
            // The request's shape was checked against the schema at load
            // (`request_shapes`); checking it again per request costs a third of a decision.
            None,
        )
        .map_err(|e| e.to_string())?;
        let response = self.authorizer.is_authorized(&request, policies, entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            // A policy that errors is skipped by Cedar; say so loudly rather than silently.
            tracing::error!(errors = ?errors, "policy evaluation errors");
        }
        // Cedar gives the deciding policies in no fixed order: sorted, the same request
        // always names the same rule, in answers, logs and decision-log records.
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        policies.sort_unstable();
        Ok(Answer {
            allowed: response.decision() == CedarDecision::Allow,
            policies,
        })
    }
}

/// What a Pengguna's entity says, taken across all its agreements: foreign-majority if any
/// says so, law enforcement only if all do, and the kind of institution of its first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PenggunaFacts {
    jenis: JenisPengguna,
    asing_mayoritas: bool,
    penegak_hukum: bool,
}

/// Every Pengguna's facts, in one pass (a search per Pengguna is quadratic).
pub(crate) fn pengguna_facts(agreements: &[Arc<Pks>]) -> HashMap<&str, PenggunaFacts> {
    let mut facts: HashMap<&str, PenggunaFacts> = HashMap::new();
    for p in agreements {
        let f = facts
            .entry(p.pengguna.as_str())
            .or_insert_with(|| PenggunaFacts {
                jenis: p.jenis_pengguna,
                asing_mayoritas: false,
                penegak_hukum: true,
            });
        f.asing_mayoritas |= p.kepemilikan_asing_mayoritas;
        f.penegak_hukum &= p.penegak_hukum;
    }
    facts
}

/// `work(offset, part)` over the first and the second half of `agreements`, on two threads
/// (a load's per-agreement work is independent, and the machine has two cores), in order.
/// A panic in either refuses the load, as any other error would.
fn in_two_halves<T: Send>(
    agreements: &[Arc<Pks>],
    what: &str,
    work: impl Fn(usize, &[Arc<Pks>]) -> T + Sync,
) -> Result<[T; 2], ConfigErrors> {
    let half = agreements.len() / 2;
    let (first, second) = agreements.split_at(half);
    let (mine, theirs) = std::thread::scope(|s| {
        let theirs = s.spawn(|| work(half, second));
        (work(0, first), theirs.join())
    });
    let theirs = theirs.map_err(|_| {
        ConfigErrors(vec![ConfigError {
            file: PathBuf::from(SCHEMA_FILE),
            line: None,
            column: None,
            field: String::new(),
            message: format!("{what} failed: a thread panicked (a bug; its message is above)"),
        }])
    })?;
    Ok([mine, theirs])
}

/// How many passes over all the entities a full build costs, about: an update that would
/// replace or remove more entities than this builds everything instead.
const UPDATE_PASSES_PER_BUILD: usize = 64;

fn unfit(e: &dyn std::fmt::Display) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        file: PathBuf::from(SCHEMA_FILE),
        line: None,
        column: None,
        field: String::new(),
        message: format!("the PKS data do not fit the schema: {e}"),
    }])
}

fn push(
    out: &mut Vec<Entity>,
    errors: &mut Vec<ConfigError>,
    e: Result<Entity, impl std::fmt::Display>,
    what: &str,
) {
    match e {
        Ok(e) => out.push(e),
        Err(err) => errors.push(ConfigError {
            file: PathBuf::from(SCHEMA_FILE),
            line: None,
            column: None,
            field: what.to_string(),
            message: format!("cannot build the Cedar entity: {err}"),
        }),
    }
}

/// The context of one request. `peer_ip` comes ready-made: building it is the costly part
/// (see `PolicyEngine::context`).
fn build_context(facts: &Facts, peer_ip: RestrictedExpression) -> Result<Context, String> {
    Context::from_pairs([
        (
            "today".to_string(),
            RestrictedExpression::new_long(day_number(facts.day)),
        ),
        (
            "channel".to_string(),
            RestrictedExpression::new_string(facts.channel.as_str().to_string()),
        ),
        ("peer_ip".to_string(), peer_ip),
        (
            "ip_blocked".to_string(),
            RestrictedExpression::new_bool(facts.ip_blocked),
        ),
        (
            "sam_valid".to_string(),
            RestrictedExpression::new_bool(facts.sam_valid),
        ),
    ])
    .map_err(|e| e.to_string())
}

/// Checks once, at load, that every question the gateway asks fits the schema: each action
/// exists and applies to a User ID and an agreement (or an element, for `ReadElement`),
/// and the context the gateway builds has the schema's type. Requests are then built
/// without the schema, so a schema edited out of step with the code is refused here rather
/// than failing every request.
fn request_shapes(schema: &Schema, t: &Types) -> Result<(), String> {
    let facts = Facts::placeholder();
    let context = build_context(&facts, RestrictedExpression::new_ip("127.0.0.1"))?;
    let questions = crate::decision::Action::ALL
        .iter()
        .map(|a| (a.as_str(), &t.pks))
        .chain([("ReadElement", &t.element)]);
    for (action, resource) in questions {
        CedarRequest::new(
            uid(&t.user, "u"),
            uid(&t.action, action),
            uid(resource, "r"),
            context.clone(),
            Some(schema),
        )
        .map_err(|e| {
            format!("the schema does not fit the gateway's {action} request: {e}; the schema and the gateway's requests must agree")
        })?;
    }
    Ok(())
}

/// Splits the policy set per action of the schema: a policy goes into an action's slice
/// when its action scope is unconstrained, names the action, or names a group the action
/// is in. A policy outside an action's slice has a scope that is false for that action, so
/// it can neither decide nor err: the slice answers exactly as the whole set.
fn slices(schema: &Schema, policies: &PolicySet) -> Result<HashMap<EntityUid, PolicySet>, String> {
    let actions = schema
        .action_entities()
        .map_err(|e| format!("the schema's actions: {e}"))?;
    let mut slices = HashMap::new();
    for action in schema.actions() {
        let mut within: HashSet<&EntityUid> = actions
            .ancestors(action)
            .map(Iterator::collect)
            .unwrap_or_default();
        within.insert(action);
        let mut slice = PolicySet::new();
        for policy in policies.policies() {
            let applies = match policy.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => within.contains(&a),
                ActionConstraint::In(list) => list.iter().any(|a| within.contains(a)),
            };
            if applies {
                slice
                    .add(policy.clone())
                    .map_err(|e| format!("slicing the policies for {action}: {e}"))?;
            }
        }
        slices.insert(action.clone(), slice);
    }
    Ok(slices)
}

/// Whether a policy reads nothing of a request but the principal's agreement and the
/// resource: its principal scope is open (or only names the type), it never reads the
/// context, and it reaches the principal only as `principal.pks`. Two User IDs of one
/// agreement then get the same answer from it. Anything else (`principal.status`,
/// `principal in …`, `context.channel`) is assumed to depend on the request.
fn reads_only_the_agreement(policy: &cedar_policy::Policy) -> bool {
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
fn names_element(json: &serde_json::Value) -> bool {
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
fn reads_peer(json: &serde_json::Value) -> bool {
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

/// The 1-based line where a policy starts in its file.
fn policy_line(text: &str, id: &PolicyId) -> usize {
    // Policies parsed from a file are numbered policy0, policy1… in order of appearance.
    let n: usize = id
        .to_string()
        .trim_start_matches("policy")
        .parse()
        .unwrap_or(0);
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.starts_with("permit") || l.starts_with("forbid") {
            if count == n {
                return i + 1;
            }
            count += 1;
        }
    }
    0
}

/// WIB day as days since 1970-01-01.
pub(crate) fn day_number(day: chrono::NaiveDate) -> i64 {
    (day - chrono::NaiveDate::default()).num_days()
}

fn pks_status(s: PksStatus) -> &'static str {
    match s {
        PksStatus::Aktif => "aktif",
        PksStatus::Dibekukan => "dibekukan",
        PksStatus::Diakhiri => "diakhiri",
    }
}

fn key_name(k: KunciAkses) -> &'static str {
    match k {
        KunciAkses::Nik => "NIK",
        KunciAkses::NoKk => "NO_KK",
        KunciAkses::Elemen => "ELEMEN",
    }
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

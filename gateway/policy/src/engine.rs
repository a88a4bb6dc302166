//! The Cedar engine: Ditjen's rules (`policies/*.cedar`) over entities derived from the PKS
//! files, validated against `policies/gerbang.cedarschema` in strict mode at every load.
//!
//! The policy set is the same whatever the number of agreements: rules are generic over
//! entity attributes, so the cost of one decision does not grow with the PKS count.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request as CedarRequest, RestrictedExpression, Schema,
    ValidationMode, Validator,
};
use miette::Diagnostic;
use sha2::{Digest, Sha256};

use gerbang_core::{
    Channel, ConfigError, ConfigErrors, KunciAkses, Pks, PksStatus, Source, UserStatus, Vocabulary,
};

/// The schema file inside the policy directory.
pub const SCHEMA_FILE: &str = "gerbang.cedarschema";

/// The validated rules.
#[derive(Debug)]
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    authorizer: Authorizer,
    /// `@code` of each policy that has one: the DWH code its refusals are answered with.
    codes: HashMap<PolicyId, String>,
    /// Where each policy was written, for `explain`.
    origins: HashMap<PolicyId, String>,
    hash: String,
    types: Types,
}

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
            authorizer: Authorizer::new(),
            codes,
            origins,
            hash,
            types: Types::new(),
        })
    }

    /// A short hash of the schema and policy texts, logged on every swap.
    pub fn hash(&self) -> &str {
        &self.hash
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
        agreements: &[Pks],
    ) -> Result<Entities, ConfigErrors> {
        let t = &self.types;
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let element_uid = |name: &str| uid(&t.element, name);
        for id in vocab.all().iter() {
            let attrs = HashMap::from([(
                "dilindungi".to_string(),
                RestrictedExpression::new_bool(vocab.protected().contains(id)),
            )]);
            push(
                &mut out,
                &mut errors,
                Entity::new(element_uid(vocab.name(id)), attrs, HashSet::new()),
                vocab.name(id),
            );
        }
        // Per Pengguna across its agreements: foreign-majority if any says so, law
        // enforcement only if all do. One pass: a search per Pengguna is quadratic.
        let mut flags: HashMap<&str, (bool, bool)> = HashMap::new();
        for p in agreements {
            let f = flags.entry(p.pengguna.as_str()).or_insert((false, true));
            f.0 |= p.kepemilikan_asing_mayoritas;
            f.1 &= p.penegak_hukum;
        }
        let mut penggunas = HashSet::new();
        for pks in agreements {
            let pengguna = uid(&t.pengguna, &pks.pengguna);
            if penggunas.insert(pks.pengguna.clone()) {
                let attrs = HashMap::from([
                    (
                        "jenis".to_string(),
                        RestrictedExpression::new_string(
                            format!("{:?}", pks.jenis_pengguna).to_lowercase(),
                        ),
                    ),
                    (
                        "asing_mayoritas".to_string(),
                        RestrictedExpression::new_bool(
                            flags.get(pks.pengguna.as_str()).is_some_and(|f| f.0),
                        ),
                    ),
                    (
                        "penegak_hukum".to_string(),
                        RestrictedExpression::new_bool(
                            flags.get(pks.pengguna.as_str()).is_some_and(|f| f.1),
                        ),
                    ),
                ]);
                push(
                    &mut out,
                    &mut errors,
                    Entity::new(pengguna.clone(), attrs, HashSet::new()),
                    &pks.pengguna,
                );
            }
            let pks_uid = uid(&t.pks, &pks.nomor);
            let elements = |set: gerbang_core::ElementSet| {
                RestrictedExpression::new_set(
                    set.iter()
                        .map(|e| RestrictedExpression::new_entity_uid(element_uid(vocab.name(e)))),
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
            push(
                &mut out,
                &mut errors,
                Entity::new(pks_uid.clone(), attrs, HashSet::from([pengguna])),
                &pks.nomor,
            );
            for user in &pks.users {
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
                push(
                    &mut out,
                    &mut errors,
                    Entity::new(
                        uid(&t.user, &user.id),
                        attrs,
                        HashSet::from([pks_uid.clone()]),
                    ),
                    &user.id,
                );
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Entities::from_entities(out, Some(&self.schema)).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: PathBuf::from(SCHEMA_FILE),
                line: None,
                column: None,
                field: String::new(),
                message: format!("the PKS data do not fit the schema: {e}"),
            }])
        })
    }

    /// One Cedar decision.
    pub(crate) fn is_authorized(
        &self,
        entities: &Entities,
        principal: &str,
        action: &str,
        resource: Resource<'_>,
        facts: &Facts,
    ) -> Result<Answer, String> {
        let t = &self.types;
        let resource = match resource {
            Resource::Pks(nomor) => uid(&t.pks, nomor),
            Resource::Element(name) => uid(&t.element, name),
        };
        let context = Context::from_pairs([
            (
                "today".to_string(),
                RestrictedExpression::new_long(day_number(facts.day)),
            ),
            (
                "channel".to_string(),
                RestrictedExpression::new_string(facts.channel.as_str().to_string()),
            ),
            (
                "peer_ip".to_string(),
                RestrictedExpression::new_ip(facts.peer.to_string()),
            ),
            (
                "ip_blocked".to_string(),
                RestrictedExpression::new_bool(facts.ip_blocked),
            ),
            (
                "sam_valid".to_string(),
                RestrictedExpression::new_bool(facts.sam_valid),
            ),
        ])
        .map_err(|e| e.to_string())?;
        let request = CedarRequest::new(
            uid(&t.user, principal),
            uid(&t.action, action),
            resource,
            context,
            Some(&self.schema),
        )
        .map_err(|e| e.to_string())?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            // A policy that errors is skipped by Cedar; say so loudly rather than silently.
            tracing::error!(errors = ?errors, "policy evaluation errors");
        }
        Ok(Answer {
            allowed: response.decision() == CedarDecision::Allow,
            policies: response
                .diagnostics()
                .reason()
                .map(ToString::to_string)
                .collect(),
        })
    }
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

/// What a decision is about besides the principal and action.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Resource<'a> {
    Pks(&'a str),
    Element(&'a str),
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

/// Cedar's answer, with the policies that decided it.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub allowed: bool,
    pub policies: Vec<String>,
}

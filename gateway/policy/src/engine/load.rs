//! Loading the rules: parse the schema and the policy files, validate in strict mode, check
//! the gateway's requests against the schema, and slice the set per action.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Authorizer, EntityUid, PolicyId, PolicySet, Request as CedarRequest,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use dashmap::DashMap;
use miette::Diagnostic;
use sha2::{Digest, Sha256};

use gerbang_core::{ConfigError, ConfigErrors, Source};

use super::analysis::{names_element, reads_only_the_agreement, reads_peer};
use super::evaluation::build_context;
use super::{AskError, Facts, PolicyEngine, SCHEMA_FILE, Types, uid};

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
            .map_err(|unfit| {
                ConfigErrors(vec![ConfigError {
                    file: schema_path.to_path_buf(),
                    line: None,
                    column: None,
                    field: String::new(),
                    message: unfit.to_string(),
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
}

/// Checks once, at load, that every question the gateway asks fits the schema: each action
/// exists and applies to a User ID and an agreement (or an element, for `ReadElement`),
/// and the context the gateway builds has the schema's type. Requests are then built
/// without the schema, so a schema edited out of step with the code is refused here rather
/// than failing every request.
fn request_shapes(schema: &Schema, t: &Types) -> Result<(), Unfit> {
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
        .map_err(|e| Unfit::Request {
            action,
            source: Box::new(e),
        })?;
    }
    Ok(())
}

/// Why rules that parsed and validated still cannot serve the gateway.
#[derive(Debug, thiserror::Error)]
enum Unfit {
    #[error(transparent)]
    Context(#[from] AskError),
    #[error(
        "the schema does not fit the gateway's {action} request: {source}; the schema and the gateway's requests must agree"
    )]
    Request {
        action: &'static str,
        source: Box<cedar_policy::RequestValidationError>,
    },
    #[error("the schema's actions: {0}")]
    Actions(Box<cedar_policy::entities_errors::EntitiesError>),
    #[error("slicing the policies for {action}: {source}")]
    Slice {
        action: Box<EntityUid>,
        source: Box<cedar_policy::PolicySetError>,
    },
}

/// Splits the policy set per action of the schema: a policy goes into an action's slice
/// when its action scope is unconstrained, names the action, or names a group the action
/// is in. A policy outside an action's slice has a scope that is false for that action, so
/// it can neither decide nor err: the slice answers exactly as the whole set.
fn slices(schema: &Schema, policies: &PolicySet) -> Result<HashMap<EntityUid, PolicySet>, Unfit> {
    let actions = schema
        .action_entities()
        .map_err(|e| Unfit::Actions(Box::new(e)))?;
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
                slice.add(policy.clone()).map_err(|e| Unfit::Slice {
                    action: Box::new(action.clone()),
                    source: Box::new(e),
                })?;
            }
        }
        slices.insert(action.clone(), slice);
    }
    Ok(slices)
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

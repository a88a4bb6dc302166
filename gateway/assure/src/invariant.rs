//! Ditjen's invariants as data: `policies/invariants/*.toml`, each `[[invariant]]` naming the
//! regulation article it encodes and a property of the rules over every request the schema
//! allows. Either `never`, a Cedar `permit` whose scope and condition describe requests
//! the rules must never permit, or `never_errors = true`: no rule errors on any request.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{Effect, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use gerbang_core::{ConfigError, ConfigErrors, Source};
use miette::Diagnostic;
use serde::Deserialize;

/// The folder of invariant files inside the policy directory.
pub const INVARIANTS_DIR: &str = "invariants";

/// One invariant, checked and ready to prove.
#[derive(Debug, Clone)]
pub struct Invariant {
    /// Its stable name, as `policy verify` and refusals show it.
    pub id: String,
    /// The regulation article it encodes.
    pub article: String,
    /// What it means, in a few sentences.
    pub meaning: String,
    /// What must hold.
    pub property: Property,
    /// Where it is written.
    pub file: PathBuf,
    pub line: usize,
}

/// What an invariant says of the rules.
#[derive(Debug, Clone)]
pub enum Property {
    /// No request matching this permit's scope and condition is ever permitted by the rules.
    Never(Box<PolicySet>),
    /// No rule errors on any request the schema allows.
    NeverErrors,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// The invariants of this file.
    #[serde(rename = "invariant", default)]
    invariants: Vec<toml::Spanned<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Stable name, unique across the files.
    id: toml::Spanned<String>,
    /// The regulation article (or PKS clause) this invariant encodes.
    article: String,
    /// What it means, for the operator reading a refusal.
    meaning: String,
    /// A Cedar permit describing the requests that must never be permitted.
    never: Option<toml::Spanned<String>>,
    /// `true`: no rule errors on any request the schema allows.
    #[serde(default)]
    never_errors: bool,
}

/// Loads every `*.toml` file of `dir`, checking each `never` against the schema in strict
/// mode. Every problem is reported with its file, line and field.
pub fn load_invariants(dir: &Path, schema: &Schema) -> Result<Vec<Invariant>, ConfigErrors> {
    let entries = std::fs::read_dir(dir).map_err(|e| ConfigError {
        file: dir.to_path_buf(),
        line: None,
        column: None,
        field: String::new(),
        message: format!("cannot read the invariants directory: {e}"),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    let mut errors = Vec::new();
    let mut out: Vec<Invariant> = Vec::new();
    for path in paths {
        let text = match gerbang_core::read_config_file(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match parse(&path, &text, schema) {
            Ok(found) => {
                for inv in found {
                    if let Some(prev) = out.iter().find(|p| p.id == inv.id) {
                        errors.push(ConfigError {
                            file: inv.file.clone(),
                            line: Some(inv.line),
                            column: None,
                            field: "id".into(),
                            message: format!(
                                "invariant `{}` is already defined at {}:{}",
                                inv.id,
                                prev.file.display(),
                                prev.line
                            ),
                        });
                    } else {
                        out.push(inv);
                    }
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    if out.is_empty() {
        return Err(ConfigErrors(vec![ConfigError {
            file: dir.to_path_buf(),
            line: None,
            column: None,
            field: String::new(),
            message:
                "no invariant found (no [[invariant]] in any *.toml file): nothing would be proved"
                    .into(),
        }]));
    }
    Ok(out)
}

/// Parses one invariant file.
pub fn parse(path: &Path, text: &str, schema: &Schema) -> Result<Vec<Invariant>, ConfigErrors> {
    let src = Source::new(path, text);
    let file: File = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, spanned) in file.invariants.into_iter().enumerate() {
        let span = spanned.span();
        let entry = spanned.into_inner();
        let field = |name: &str| format!("invariant[{i}].{name}");
        let line = src.line_col(span.start).0;
        let id = entry.id.get_ref().trim().to_string();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push(src.error(
                Some(entry.id.span()),
                field("id"),
                "an invariant's id is letters, digits, `-` and `_`, and not empty",
            ));
            continue;
        }
        let property = match (entry.never, entry.never_errors) {
            (Some(never), false) => match never_policy(&src, &never, schema, &field("never")) {
                Ok(set) => Property::Never(Box::new(set)),
                Err(e) => {
                    errors.extend(e);
                    continue;
                }
            },
            (None, true) => Property::NeverErrors,
            _ => {
                errors.push(src.error(
                    Some(span),
                    field("never"),
                    "give exactly one of `never` (a Cedar permit describing requests that must never be permitted) and `never_errors = true`",
                ));
                continue;
            }
        };
        out.push(Invariant {
            id,
            article: entry.article.trim().to_string(),
            meaning: entry
                .meaning
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            property,
            file: path.to_path_buf(),
            line,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parses and validates the `never` text: exactly one `permit`, no template slots,
/// well-typed in strict mode. Errors point into the file where the text lies.
fn never_policy(
    src: &Source<'_>,
    never: &toml::Spanned<String>,
    schema: &Schema,
    field: &str,
) -> Result<PolicySet, Vec<ConfigError>> {
    let text = never.get_ref();
    let start = content_start(src.text, never.span());
    let at = |offset: Option<usize>| offset.map(|o| start + o..start + o + 1);
    let parsed = PolicySet::from_str(text).map_err(|e| {
        e.iter()
            .map(|d| {
                let offset = d.labels().and_then(|mut l| l.next()).map(|l| l.offset());
                src.error(at(offset).or(Some(never.span())), field, format!("{d}"))
            })
            .collect::<Vec<_>>()
    })?;
    let policies: Vec<_> = parsed.policies().collect();
    let shape_problem = if parsed.templates().next().is_some() {
        Some("must not use ?principal or ?resource")
    } else if policies.len() != 1 {
        Some("must be exactly one Cedar policy")
    } else if policies.iter().any(|p| p.effect() != Effect::Permit) {
        Some(
            "must be a `permit`: its scope and condition describe the requests that must never be permitted",
        )
    } else {
        None
    };
    if let Some(problem) = shape_problem {
        return Err(vec![src.error(Some(never.span()), field, problem)]);
    }
    // One name for the pattern, whatever the text's own annotations say.
    let mut set = PolicySet::new();
    for p in policies {
        set.add(p.new_id(PolicyId::new("invariant")))
            .map_err(|e| vec![src.error(Some(never.span()), field, e.to_string())])?;
    }
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    let problems: Vec<ConfigError> = result
        .validation_errors()
        .map(|e| {
            let offset = e.labels().and_then(|mut l| l.next()).map(|l| l.offset());
            src.error(at(offset).or(Some(never.span())), field, format!("{e}"))
        })
        .collect();
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems)
    }
}

/// Where a TOML string's content starts: after its opening quotes, and after the newline
/// that a multi-line string drops right after them.
fn content_start(text: &str, span: Range<usize>) -> usize {
    let raw = text.get(span.clone()).unwrap_or("");
    let quotes = ["'''", "\"\"\"", "'", "\""]
        .into_iter()
        .find(|q| raw.starts_with(q))
        .map_or(0, str::len);
    let after = raw.get(quotes..).unwrap_or("");
    let newline = if quotes == 3 {
        if after.starts_with("\r\n") {
            2
        } else {
            usize::from(after.starts_with('\n'))
        }
    } else {
        0
    };
    span.start + quotes + newline
}

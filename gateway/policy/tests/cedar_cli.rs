//! The official Cedar command line accepts Ditjen's schema and every policy file: its
//! `validate` subcommand (crate `cedar-policy-cli`, the code behind `cedar validate`), in
//! strict mode with warnings denied, over `policies/`. `gerbang check` applies the same
//! strict validation (see `engine.rs`); this checks that Cedar's own tool agrees.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cedar_policy_cli::{CedarExitCode, Cli, Commands, validate};
use clap::Parser as _;

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// `cedar validate --schema <schema> --policies <file> --deny-warnings`.
fn cedar_validate(schema: &Path, policies: &Path) -> CedarExitCode {
    let args = [
        "cedar",
        "validate",
        "--schema",
        schema.to_str().unwrap(),
        "--policies",
        policies.to_str().unwrap(),
        "--deny-warnings",
    ];
    match Cli::try_parse_from(args).unwrap().command {
        Commands::Validate(args) => validate(&args),
        _ => unreachable!("the arguments name the validate subcommand"),
    }
}

#[test]
fn cedar_validate_accepts_the_schema_and_every_policy_file() {
    let dir = policies_dir();
    let schema = dir.join("gerbang.cedarschema");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        assert_eq!(
            cedar_validate(&schema, &file),
            CedarExitCode::Success,
            "cedar validate refused {}",
            file.display()
        );
    }
}

#[test]
fn cedar_validate_refuses_a_rule_that_does_not_type_check() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("salah.cedar");
    std::fs::write(
        &bad,
        "@id(\"typo\")\nforbid (principal, action in Gerbang::Action::\"Lookup\", resource)\nunless { resource.statuz == \"aktif\" };\n",
    )
    .unwrap();
    assert_eq!(
        cedar_validate(&policies_dir().join("gerbang.cedarschema"), &bad),
        CedarExitCode::ValidationFailure
    );
}

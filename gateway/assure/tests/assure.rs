//! The invariants proved over the shipped rules, each kind of violation found with a
//! counterexample that names its case, and the semantic diff of PKS and rule edits, on
//! copies of the shipped `config/` and `policies/`. The proofs need cvc5 (`make test`
//! installs it); without it these tests fail and say so.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use gerbang_assure::{
    INVARIANTS_DIR, REQUEST_SHAPE, Report, RulesChange, Solver, Verdict, diff, equivalence,
    load_invariants, parse_invariants, verify,
};
use gerbang_core::Config;
use gerbang_policy::{Action, PolicyEngine, Request, Snapshot, decide, load_snapshot};

const BUDGET: Duration = Duration::from_secs(300);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn solver() -> Solver {
    Solver::find().unwrap_or_else(|e| {
        panic!("these tests prove invariants with cvc5: {e} (`make deps` installs it, and `make test` runs it)")
    })
}

/// An edit of one file: in `file`, `from` replaced by `to` (which must be there).
type Edit<'a> = (&'a str, &'a str, &'a str);

/// Copies the files of `from` (not its folders) into a new temporary directory, applying
/// `edits` and adding `extra` files.
fn edited(from: &Path, edits: &[Edit<'_>], extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (file, was, is) in edits.iter().filter(|(f, _, _)| *f == name) {
            assert!(text.contains(was), "{file} has no {was:?}");
            text = text.replacen(was, is, 1);
        }
        std::fs::write(dir.path().join(&name), text).unwrap();
    }
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// Proves the shipped invariants over the shipped rules with `edits` and `extra` files.
fn prove(edits: &[Edit<'_>], extra: &[(&str, &str)]) -> Report {
    let rules = edited(&root().join("policies"), edits, extra);
    let engine = PolicyEngine::load(rules.path()).unwrap();
    let dir = root().join("policies").join(INVARIANTS_DIR);
    let invariants = load_invariants(&dir, engine.schema()).unwrap();
    verify(&engine, &invariants, &solver(), BUDGET)
}

/// The verdict of one invariant.
fn verdict<'a>(report: &'a Report, id: &str) -> &'a Verdict {
    &report
        .outcomes
        .iter()
        .find(|o| o.id == id)
        .unwrap_or_else(|| panic!("no invariant {id}"))
        .verdict
}

/// The counterexample of an invariant that must be broken, as text.
fn broken(report: &Report, id: &str) -> String {
    match verdict(report, id) {
        Verdict::Violated(cex) => cex.to_string(),
        other => panic!("{id} should be violated, is {other:?}"),
    }
}

#[test]
fn every_shipped_invariant_is_proved() {
    let report = prove(&[], &[]);
    for o in &report.outcomes {
        assert!(matches!(o.verdict, Verdict::Proved), "{o}");
    }
    let ids: Vec<&str> = report.outcomes.iter().map(|o| o.id.as_str()).collect();
    for id in [
        "asing-mayoritas-hanya-verifikasi",
        "data-dilindungi-perlu-persetujuan-menteri",
        "pks-di-luar-masa-berlaku",
        "pks-tidak-aktif",
        "user-id-tidak-aktif",
        "jaringan-diputus",
        "metode-akses-di-luar-pks",
        "portal-tanpa-tulis-dan-ekspor",
        "pencarian-elemen-hanya-penegak-hukum",
        "aturan-tidak-pernah-galat",
    ] {
        assert!(ids.contains(&id), "{id} is not among {ids:?}");
    }
}

#[test]
fn a_permit_letting_a_foreign_majority_bhi_call_nik_is_found() {
    // An exception for one BHI: CALL_NIK taken out of `verify-only`, and a permit for it.
    let report = prove(
        &[("larangan.cedar", "    Gerbang::Action::\"CallNik\",\n", "")],
        &[(
            "pengecualian.cedar",
            "@id(\"fintek-call-nik\")\npermit (principal, action == Gerbang::Action::\"CallNik\", resource)\nwhen { principal in resource && resource.pengguna.asing_mayoritas };\n",
        )],
    );
    let cex = broken(&report, "asing-mayoritas-hanya-verifikasi");
    assert!(cex.starts_with("CallNik is PERMITTED by "), "{cex}");
    assert!(cex.contains("asing_mayoritas true"), "{cex}");
    assert!(
        cex.contains("akses.cedar:") || cex.contains("pengecualian.cedar:"),
        "{cex}"
    );
    // The other invariants still hold.
    assert!(matches!(
        verdict(&report, "pks-tidak-aktif"),
        Verdict::Proved
    ));
}

#[test]
fn a_protected_element_without_the_ministers_approval_is_found() {
    // "Approval" taken as given for ministries: the forbid no longer protects their answers.
    let report = prove(
        &[(
            "elemen.cedar",
            "when { resource.dilindungi && !principal.pks.persetujuan_menteri.contains(resource) };",
            "when {\n  resource.dilindungi &&\n  !principal.pks.persetujuan_menteri.contains(resource) &&\n  principal.pks.pengguna.jenis != \"kementerian\"\n};",
        )],
        &[],
    );
    let cex = broken(&report, "data-dilindungi-perlu-persetujuan-menteri");
    assert!(
        cex.starts_with("ReadElement is PERMITTED by elements-agreed"),
        "{cex}"
    );
    assert!(cex.contains("dilindungi true"), "{cex}");
    assert!(cex.contains("jenis \"kementerian\""), "{cex}");
    assert!(cex.contains("persetujuan_menteri []"), "{cex}");
}

#[test]
fn a_portal_export_is_found() {
    let report = prove(
        &[(
            "larangan.cedar",
            "action in [Gerbang::Action::\"PortalWrite\", Gerbang::Action::\"PortalExport\"],",
            "action in [Gerbang::Action::\"PortalWrite\"],",
        )],
        &[(
            "ekspor.cedar",
            "@id(\"portal-export\")\npermit (principal, action == Gerbang::Action::\"PortalExport\", resource)\nwhen { principal in resource };\n",
        )],
    );
    let cex = broken(&report, "portal-tanpa-tulis-dan-ekspor");
    assert!(
        cex.starts_with("PortalExport is PERMITTED by portal-export ("),
        "{cex}"
    );
    assert!(cex.contains("ekspor.cedar:2"), "{cex}");
    // A foreign-majority BHI is still kept from exporting by `verify-only`.
    assert!(matches!(
        verdict(&report, "asing-mayoritas-hanya-verifikasi"),
        Verdict::Proved
    ));
}

#[test]
fn a_rule_that_can_error_is_found() {
    // Overflows for a validity that ends at the largest Long.
    let report = prove(
        &[(
            "larangan.cedar",
            "unless { resource.mulai <= context.today && context.today <= resource.sampai };",
            "unless { resource.mulai <= context.today && context.today <= resource.sampai + 1 };",
        )],
        &[],
    );
    let cex = broken(&report, "aturan-tidak-pernah-galat");
    assert!(cex.contains("makes rule pks-validity"), "{cex}");
    assert!(cex.contains("overflow"), "{cex}");
}

#[test]
fn invariant_files_are_checked_with_file_line_and_field() {
    let engine = PolicyEngine::load(&root().join("policies")).unwrap();
    let path = Path::new("policies/invariants/salah.toml");
    let typo = "[[invariant]]\nid = \"x\"\narticle = \"a\"\nmeaning = \"m\"\nnever = '''\npermit (principal, action == Gerbang::Action::\"CallNik\", resource)\nwhen { resource.state == \"aktif\" };\n'''\n";
    let err = parse_invariants(path, typo, engine.schema())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("policies/invariants/salah.toml:7:"),
        "{err}"
    );
    assert!(
        err.contains("invariant[0].never") && err.contains("state"),
        "{err}"
    );

    let both = "[[invariant]]\nid = \"x\"\narticle = \"a\"\nmeaning = \"m\"\nnever_errors = true\nnever = 'permit (principal, action, resource);'\n";
    let err = parse_invariants(path, both, engine.schema())
        .unwrap_err()
        .to_string();
    assert!(err.contains("exactly one of `never`"), "{err}");

    let unknown =
        "[[invariant]]\nid = \"x\"\narticle = \"a\"\nmeaning = \"m\"\nnever_error = true\n";
    let err = parse_invariants(path, unknown, engine.schema())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("salah.toml:5:") && err.contains("never_error"),
        "{err}"
    );

    let forbid = "[[invariant]]\nid = \"x\"\narticle = \"a\"\nmeaning = \"m\"\nnever = 'forbid (principal, action, resource);'\n";
    let err = parse_invariants(path, forbid, engine.schema())
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be a `permit`"), "{err}");
}

/// The shipped configuration, loaded with `pks` edits of its PKS files and `rules` edits
/// (and `extra` files) of its policies.
fn snapshot(pks: &[Edit<'_>], rules: &[Edit<'_>], extra: &[(&str, &str)]) -> Snapshot {
    let mut config = Config::load(&root().join("config/gerbang.toml")).unwrap();
    let pks_dir = edited(&config.pks_dir, pks, &[]);
    let rules_dir = edited(&config.policy_dir, rules, extra);
    config.pks_dir = pks_dir.path().to_path_buf();
    config.policy_dir = rules_dir.path().to_path_buf();
    load_snapshot(&config).unwrap()
}

/// `REQUEST_SHAPE` is what the proofs assume of every request: checked here on the entities
/// and requests the engine really builds, by adding the shape as a rule of its own and
/// deciding every action of every shipped User ID.
#[test]
fn the_assumed_request_shape_holds_for_every_request_the_gateway_makes() {
    let snap = snapshot(&[], &[], &[("bentuk.cedar", REQUEST_SHAPE)]);
    let mut asked = 0;
    for pks in snap.agreements() {
        for user in &pks.users {
            let r = snap.user_by_id(&user.id).unwrap();
            for action in Action::ALL {
                for channel in gerbang_policy::CHANNELS {
                    let req = Request {
                        user: r,
                        action,
                        channel,
                        day: pks.mulai,
                        peer: user.ip_lan[0].addr(),
                        sam_valid: true,
                    };
                    let d = decide(&snap, &req, false);
                    asked += 1;
                    assert!(
                        !d.policies.contains(&"gateway-request-shape".to_string()),
                        "{} {action:?}: {d:?}",
                        user.id
                    );
                }
            }
        }
    }
    assert!(asked > 100, "{asked}");
}

fn day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
}

/// The diff of the shipped configuration against itself with `pks` edits (same rules).
fn pks_diff(pks: &[Edit<'_>]) -> gerbang_assure::Diff {
    let (before, after) = (snapshot(&[], &[], &[]), snapshot(pks, &[], &[]));
    let rules = equivalence(before.engine(), after.engine(), None, BUDGET);
    diff(&before, &after, day(), rules, None)
}

#[test]
fn a_pks_edit_that_adds_an_element_is_reported_exactly() {
    let d = pks_diff(&[(
        "rsud-contoh.toml",
        "\"STATUS_KAWIN\", \"ALAMAT_SEKARANG\"]",
        "\"STATUS_KAWIN\", \"ALAMAT_SEKARANG\", \"AGAMA\"]",
    )]);
    // rsud_cth_02 is deactivated: it can ask for nothing, so it gains nothing.
    assert_eq!(d.summary, "1 User ID of 1 Pengguna gains AGAMA");
    assert_eq!(d.users.len(), 1, "{}", d.render());
    assert_eq!(d.users[0].user, "rsud_cth_01");
    assert_eq!(d.users[0].elements_gained, ["AGAMA"]);
    assert!(d.users[0].gained.is_empty() && d.users[0].lost.is_empty());
    let report = d.render();
    assert!(
        report.contains("User ID rsud_cth_01 (PKS 440/017/RSUD-CTH/2025, rsud-kota-contoh): gains elements AGAMA\n"),
        "{report}"
    );
    assert!(report.contains("PKS 440/017/RSUD-CTH/2025 (rsud-kota-contoh): elemen_data [NIK, NO_KK, NAMA_LGKP, JENIS_KLMIN, TMPT_LHR, TGL_LHR, STATUS_KAWIN,"), "{report}");
}

#[test]
fn a_pks_edit_that_freezes_an_agreement_is_reported_exactly() {
    let d = pks_diff(&[(
        "rsud-contoh.toml",
        "status = \"aktif\"\n\n[[user]]",
        "status = \"dibekukan\"\n\n[[user]]",
    )]);
    assert_eq!(
        d.summary,
        "PKS 440/017/RSUD-CTH/2025: status aktif → dibekukan; 1 User ID of 1 Pengguna loses all access"
    );
    let u = &d.users[0];
    assert_eq!(u.user, "rsud_cth_01");
    assert_eq!(
        u.lost,
        [
            "CallNik over web_service",
            "VerifyByElement over web_service",
            "SubmitBalikan over web_service"
        ]
    );
    assert!(u.lost_all && u.gained.is_empty());
}

#[test]
fn quota_validity_and_user_changes_are_reported() {
    let d = pks_diff(&[
        (
            "rsud-contoh.toml",
            "sampai = 2027-06-30",
            "sampai = 2028-06-30",
        ),
        (
            "rsud-contoh.toml",
            "kuota_harian = 1000\nstatus = \"aktif\"",
            "kuota_harian = 500\nstatus = \"aktif\"",
        ),
        (
            "rsud-contoh.toml",
            "kuota_harian = 1000\nstatus = \"nonaktif\"",
            "kuota_harian = 1000\nstatus = \"aktif\"",
        ),
    ]);
    assert_eq!(
        d.summary,
        "PKS 440/017/RSUD-CTH/2025: sampai 2027-06-30 → 2028-06-30; \
         1 User ID of 1 Pengguna gains CallNik over web_service, VerifyByElement over web_service, SubmitBalikan over web_service, NIK, NO_KK, NAMA_LGKP, JENIS_KLMIN, TMPT_LHR, TGL_LHR, STATUS_KAWIN, ALAMAT, NO_RT, NO_RW, KODE_POS, NO_PROP, PROP_NAME, NO_KAB, KAB_NAME, NO_KEC, KEC_NAME, NO_KEL, KEL_NAME; \
         1 User ID of 1 Pengguna: kuota_harian 1000 → 500; \
         1 User ID of 1 Pengguna: status nonaktif → aktif"
    );
}

#[test]
fn a_rule_edit_is_compared_by_meaning_and_by_whom_it_touches() {
    let before = snapshot(&[], &[], &[]);
    // Reformatted: the same meaning.
    let same = snapshot(
        &[],
        &[("akses.cedar", "\n\n", "\n\n\n// Dirapikan.\n")],
        &[],
    );
    let rules = equivalence(before.engine(), same.engine(), Some(&solver()), BUDGET);
    assert!(matches!(rules, RulesChange::SameMeaning { .. }), "{rules}");
    let d = diff(&before, &same, day(), rules, None);
    assert_eq!(d.summary, "rules edited, same meaning (proved)");

    // No more lookups by No KK: whoever had them loses them.
    let after = snapshot(
        &[],
        &[(
            "akses.cedar",
            "resource.kunci_akses.contains(\"NO_KK\")",
            "resource.kunci_akses.contains(\"NO_KK_2027\")",
        )],
        &[],
    );
    let rules = equivalence(before.engine(), after.engine(), Some(&solver()), BUDGET);
    match &rules {
        RulesChange::Changed {
            actions, example, ..
        } => {
            assert_eq!(actions, &["CallNoKk"]);
            assert!(
                example
                    .to_string()
                    .starts_with("CallNoKk was permitted, now denied"),
                "{example}"
            );
        }
        other => panic!("{other}"),
    }
    let d = diff(&before, &after, day(), rules, None);
    assert!(
        d.summary.starts_with("rules changed meaning for CallNoKk"),
        "{}",
        d.summary
    );
}

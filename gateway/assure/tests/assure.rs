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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The shipped `config/` and `policies/` side by side in a temporary directory.
fn shipped() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("config"), &dir.path().join("config"));
    copy_dir(&root().join("policies"), &dir.path().join("policies"));
    dir
}

/// Replaces `from` by `to` in a file, which must contain it.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn prove(policies: &Path) -> Report {
    let engine = PolicyEngine::load(policies).unwrap();
    let invariants = load_invariants(&policies.join(INVARIANTS_DIR), engine.schema()).unwrap();
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
    let report = prove(&root().join("policies"));
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
    let dir = shipped();
    let policies = dir.path().join("policies");
    // An exception for one BHI: its agreement's CALL_NIK taken out of `verify-only`, and a
    // permit for it.
    edit(
        &policies.join("larangan.cedar"),
        "    Gerbang::Action::\"CallNik\",\n",
        "",
    );
    std::fs::write(
        policies.join("pengecualian.cedar"),
        "@id(\"fintek-call-nik\")\npermit (principal, action == Gerbang::Action::\"CallNik\", resource)\nwhen { principal in resource && resource.pengguna.asing_mayoritas };\n",
    )
    .unwrap();
    let report = prove(&policies);
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
    let dir = shipped();
    let policies = dir.path().join("policies");
    // "Approval" taken as given for ministries: the forbid no longer protects their answers.
    edit(
        &policies.join("elemen.cedar"),
        "when { resource.dilindungi && !principal.pks.persetujuan_menteri.contains(resource) };",
        "when {\n  resource.dilindungi &&\n  !principal.pks.persetujuan_menteri.contains(resource) &&\n  principal.pks.pengguna.jenis != \"kementerian\"\n};",
    );
    let report = prove(&policies);
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
    let dir = shipped();
    let policies = dir.path().join("policies");
    edit(
        &policies.join("larangan.cedar"),
        "action in [Gerbang::Action::\"PortalWrite\", Gerbang::Action::\"PortalExport\"],",
        "action in [Gerbang::Action::\"PortalWrite\"],",
    );
    std::fs::write(
        policies.join("ekspor.cedar"),
        "@id(\"portal-export\")\npermit (principal, action == Gerbang::Action::\"PortalExport\", resource)\nwhen { principal in resource };\n",
    )
    .unwrap();
    let report = prove(&policies);
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
    let dir = shipped();
    let policies = dir.path().join("policies");
    // Overflows for a validity that ends near the largest Long.
    edit(
        &policies.join("larangan.cedar"),
        "unless { resource.mulai <= context.today && context.today <= resource.sampai };",
        "unless { resource.mulai <= context.today && context.today <= resource.sampai + 1 };",
    );
    let report = prove(&policies);
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

/// `REQUEST_SHAPE` is what the proofs assume of every request: checked here on the entities
/// and requests the engine really builds, by adding the shape as a rule of its own and
/// deciding every action of every shipped User ID.
#[test]
fn the_assumed_request_shape_holds_for_every_request_the_gateway_makes() {
    let dir = shipped();
    std::fs::write(dir.path().join("policies/bentuk.cedar"), REQUEST_SHAPE).unwrap();
    let config = Config::load(&dir.path().join("config/gerbang.toml")).unwrap();
    let snap = load_snapshot(&config).unwrap();
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

fn load(dir: &Path) -> Snapshot {
    load_snapshot(&Config::load(&dir.join("config/gerbang.toml")).unwrap()).unwrap()
}

fn day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
}

fn unchanged(old: &Snapshot, new: &Snapshot) -> RulesChange {
    equivalence(old.engine(), new.engine(), None, BUDGET)
}

#[test]
fn a_pks_edit_that_adds_an_element_is_reported_exactly() {
    let dir = shipped();
    let before = load(dir.path());
    edit(
        &dir.path().join("config/pks/rsud-contoh.toml"),
        "\"STATUS_KAWIN\", \"ALAMAT_SEKARANG\"]",
        "\"STATUS_KAWIN\", \"ALAMAT_SEKARANG\", \"AGAMA\"]",
    );
    let after = load(dir.path());
    let d = diff(&before, &after, day(), unchanged(&before, &after), None);
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
    let dir = shipped();
    let before = load(dir.path());
    edit(
        &dir.path().join("config/pks/rsud-contoh.toml"),
        "status = \"aktif\"\n\n[[user]]",
        "status = \"dibekukan\"\n\n[[user]]",
    );
    let after = load(dir.path());
    let d = diff(&before, &after, day(), unchanged(&before, &after), None);
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
    let dir = shipped();
    let before = load(dir.path());
    let rsud = dir.path().join("config/pks/rsud-contoh.toml");
    edit(&rsud, "sampai = 2027-06-30", "sampai = 2028-06-30");
    edit(
        &rsud,
        "kuota_harian = 1000\nstatus = \"aktif\"",
        "kuota_harian = 500\nstatus = \"aktif\"",
    );
    edit(
        &rsud,
        "kuota_harian = 1000\nstatus = \"nonaktif\"",
        "kuota_harian = 1000\nstatus = \"aktif\"",
    );
    let after = load(dir.path());
    let d = diff(&before, &after, day(), unchanged(&before, &after), None);
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
    let dir = shipped();
    let before = load(dir.path());
    // Reformatted and reordered: the same meaning.
    let akses = dir.path().join("policies/akses.cedar");
    let text = std::fs::read_to_string(&akses).unwrap();
    std::fs::write(
        &akses,
        format!("// reordered\n{}", text.replace("\n\n", "\n\n\n")),
    )
    .unwrap();
    let same = load(dir.path());
    let rules = equivalence(before.engine(), same.engine(), Some(&solver()), BUDGET);
    assert!(matches!(rules, RulesChange::SameMeaning { .. }), "{rules}");
    let d = diff(&before, &same, day(), rules, None);
    assert_eq!(d.summary, "rules edited, same meaning (proved)");

    // No more lookups by No KK: whoever had them loses them.
    edit(
        &akses,
        "resource.kunci_akses.contains(\"NO_KK\")",
        "resource.kunci_akses.contains(\"NO_KK_2027\")",
    );
    let after = load(dir.path());
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

//! The `gerbang` tools as an operator runs them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use gerbang_e2e::*;
use reqwest::Method;

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

/// The shipped `config/` with development certificates, in a temporary directory.
fn shipped_config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    copy_dir(&root.join("config"), &dir.path().join("config"));
    copy_dir(&root.join("policies"), &dir.path().join("policies"));
    let status = Command::new(bin("gerbang"))
        .args(["certs", "dev", "--dir"])
        .arg(dir.path().join("certs/dev"))
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

#[test]
fn check_accepts_the_shipped_configuration() {
    let dir = shipped_config();
    let out = Command::new(bin("gerbang"))
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("config/gerbang.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("6 PKS file(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_names_file_line_and_field_of_every_problem() {
    let dir = shipped_config();
    let pks = dir.path().join("config/pks/rsud-contoh.toml");
    let text = std::fs::read_to_string(&pks).unwrap();
    let broken = text
        .replace("\"TMPT_LHR\"", "\"TEMPAT_LAHIR\"")
        .replace("sampai = 2027-06-30", "sampai = 2024-06-30");
    std::fs::write(&pks, broken).unwrap();
    // A valid file whose User ID claims another User ID's address.
    let polda = dir.path().join("config/pks/polda-contoh.toml");
    let text = std::fs::read_to_string(&polda)
        .unwrap()
        .replace("127.0.0.7/32", "127.0.0.0/29");
    std::fs::write(&polda, text).unwrap();
    let out = Command::new(bin("gerbang"))
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("config/gerbang.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rsud-contoh.toml:9:")
            && err.contains("field `elemen_data`")
            && err.contains("TEMPAT_LAHIR"),
        "{err}"
    );
    assert!(
        err.contains("rsud-contoh.toml:15:")
            && err.contains("field `sampai`")
            && err.contains("before the start date"),
        "{err}"
    );
    assert!(
        err.contains("polda-contoh.toml:")
            && err.contains("127.0.0.0/29")
            && err.contains("overlaps"),
        "{err}"
    );
}

#[test]
fn passwd_prints_an_argon2id_hash() {
    let mut child = Command::new(bin("gerbang"))
        .arg("passwd")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"rahasia\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("$argon2id$v=19$"));
}

#[test]
fn policy_test_runs_the_shipped_cases_and_fails_on_a_wrong_expectation() {
    let dir = shipped_config();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let run = |cases: &Path| {
        Command::new(bin("gerbang"))
            .args(["policy", "test", "--config"])
            .arg(dir.path().join("config/gerbang.toml"))
            .arg("--cases")
            .arg(cases)
            .output()
            .unwrap()
    };
    let out = run(&root.join("policies/tests"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");

    let wrong = dir.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::write(
        wrong.join("c.toml"),
        "[[case]]\nname = \"a foreign-majority BHI gets values\"\nuser = \"fintek_api\"\naction = \"CallNik\"\nat = 2026-06-01\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = run(&wrong);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("expected allow, got deny (rule verify-only"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_a_policy_that_does_not_type_check_naming_file_and_line() {
    let dir = shipped_config();
    let rules = dir.path().join("policies/larangan.cedar");
    let text = std::fs::read_to_string(&rules).unwrap().replace(
        "resource.status == \"aktif\"",
        "resource.state == \"aktif\"",
    );
    std::fs::write(&rules, text).unwrap();
    let out = Command::new(bin("gerbang"))
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("config/gerbang.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("larangan.cedar:7:") && err.contains("state"),
        "{err}"
    );
}

// Policy assurance: `gerbang policy verify`, `check` and `policy diff` as an operator runs
// them, and a running gateway whose reloads say what an edit changes (answer, log line,
// decision log) and refuse rules that break an invariant. The proofs need cvc5 (`make test`
// installs it).

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Runs `gerbang ARGS`; (success, stdout, stderr).
fn gerbang(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("gerbang")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_solver() {
    assert!(
        which("cvc5").is_some() || std::env::var_os("CVC5").is_some(),
        "these tests prove invariants with cvc5: install the Debian package `cvc5` (`make deps` does, and `make test` runs it)"
    );
}

#[test]
fn policy_verify_proves_the_shipped_rules_and_refuses_a_broken_copy() {
    assert_solver();
    let dir = shipped_config();
    let config = dir.path().join("config/gerbang.toml");
    let config = config.to_str().unwrap();
    let (ok, out, err) = gerbang(&["policy", "verify", "--config", config]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(
            "proved      asing-mayoritas-hanya-verifikasi  (Permendagri 102/2019 art. 29(4))"
        ),
        "{out}"
    );
    assert!(out.contains("11 proved, 0 violated, 0 not proved"), "{out}");

    // `check` proves them too.
    let (ok, out, err) = gerbang(&["check", "--config", config]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("11 proved, 0 violated"), "{out}");

    // A foreign-majority BHI allowed CALL_NIK: refused with the case named.
    let larangan = dir.path().join("policies/larangan.cedar");
    edit(&larangan, "    Gerbang::Action::\"CallNik\",\n", "");
    let (ok, out, _) = gerbang(&["policy", "verify", "--config", config]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "VIOLATED    asing-mayoritas-hanya-verifikasi  (Permendagri 102/2019 art. 29(4), "
        ),
        "{out}"
    );
    assert!(
        out.contains("counterexample: CallNik is PERMITTED by lookup-by-nik ("),
        "{out}"
    );
    assert!(out.contains("asing_mayoritas true"), "{out}");
    assert!(out.contains("10 proved, 1 violated, 0 not proved"), "{out}");
    let (ok, out, _) = gerbang(&["check", "--config", config]);
    assert!(!ok && out.contains("VIOLATED"), "{out}");
}

#[test]
fn check_says_plainly_when_no_solver_is_installed() {
    let dir = shipped_config();
    let config = dir.path().join("config/gerbang.toml");
    let out = Command::new(bin("gerbang"))
        .args(["check", "--config"])
        .arg(&config)
        .env("CVC5", dir.path().join("no-such-cvc5"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("invariants: NOT checked: "), "{stdout}");
    assert!(
        stdout.contains("skipped (11): data-dilindungi-perlu-persetujuan-menteri, "),
        "{stdout}"
    );
    assert!(
        stdout.contains("invariants: NOT checked: ")
            && stdout.contains("set CVC5 to a cvc5 executable"),
        "{stdout}"
    );
    // No CVC5 and none on PATH: `policy verify` fails and says how to get one.
    let verify = Command::new(bin("gerbang"))
        .args(["policy", "verify", "--config"])
        .arg(&config)
        .env_remove("CVC5")
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert!(!verify.status.success());
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        stderr.contains("no cvc5 SMT solver found (CVC5 is not set and there is no cvc5 on PATH): install the Debian package `cvc5`"),
        "{stderr}"
    );
}

#[test]
fn policy_diff_reports_an_added_element_and_a_frozen_agreement() {
    let before = shipped_config();
    let after = shipped_config();
    let rsud = after.path().join("config/pks/rsud-contoh.toml");
    edit(
        &rsud,
        "\"ALAMAT_SEKARANG\"]",
        "\"ALAMAT_SEKARANG\", \"AGAMA\"]",
    );
    let bkd = after.path().join("config/pks/bkd-karanganyar.toml");
    edit(&bkd, "status = \"aktif\"\n", "status = \"dibekukan\"\n");
    let (ok, out, err) = gerbang(&[
        "policy",
        "diff",
        before.path().join("config").to_str().unwrap(),
        after.path().join("config/gerbang.toml").to_str().unwrap(),
        "--at",
        "2026-06-01",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("rules: unchanged (set "), "{out}");
    assert!(
        out.contains("User ID rsud_cth_01 (PKS 440/017/RSUD-CTH/2025, rsud-kota-contoh): gains elements AGAMA\n"),
        "{out}"
    );
    assert!(
        out.contains("PKS 470/900.1/BKD-CTH/2025 (bkd-karanganyar): status aktif → dibekukan\n"),
        "{out}"
    );
    assert!(
        out.contains("User ID bkd_kra_01 (PKS 470/900.1/BKD-CTH/2025, bkd-karanganyar): loses all access; loses CallNik over card_reader, VerifyByElement over card_reader, PortalRead over web_portal, SubmitBalikan over web_portal; loses elements NIK, "),
        "{out}"
    );
    assert!(
        out.ends_with("summary: PKS 470/900.1/BKD-CTH/2025: status aktif → dibekukan; 1 User ID of 1 Pengguna gains AGAMA; 2 User IDs of 1 Pengguna lose all access\n"),
        "{out}"
    );

    // A policy directory alone is compared with the PKS files of --config.
    let rules = after.path().join("policies");
    edit(
        &rules.join("akses.cedar"),
        "action in [Gerbang::Action::\"CallNik\", Gerbang::Action::\"VerifyByElement\", Gerbang::Action::\"PortalRead\"],",
        "action in [Gerbang::Action::\"CallNik\", Gerbang::Action::\"PortalRead\"],",
    );
    let (ok, out, err) = gerbang(&[
        "policy",
        "diff",
        "--config",
        before.path().join("config/gerbang.toml").to_str().unwrap(),
        before.path().join("policies").to_str().unwrap(),
        rules.to_str().unwrap(),
        "--at",
        "2026-06-01",
    ]);
    assert!(ok, "{out}{err}");
    if which("cvc5").is_some() {
        assert!(out.contains("decisions differ for VerifyByElement; for example VerifyByElement was permitted, now denied"), "{out}");
    }
    assert!(
        out.contains("User ID rsud_cth_01 (PKS 440/017/RSUD-CTH/2025, rsud-kota-contoh): loses VerifyByElement over web_service\n"),
        "{out}"
    );
}

/// A gateway over three User IDs of one Pengguna, with its own copy of the rules and
/// without the file watcher (each reload here is asked for, so its answer can be read).
fn gateway() -> Gateway {
    let users = vec![
        TestUser::aktif("dinas_01", "127.0.0.2"),
        TestUser::aktif("dinas_02", "127.0.0.3"),
        TestUser::aktif("dinas_03", "127.0.0.4"),
    ];
    let mut pks = TestPks::new("dinas.toml", "1/DINAS/ASSURE", users);
    pks.elemen = r#"["NIK", "NAMA_LGKP", "TGL_LHR"]"#;
    let upstream = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut gw = Gateway::start(GatewayOptions::new(upstream, vec![pks]));
    let policies = gw.dir.path().join("policies");
    copy_dir(&policies_dir(), &policies);
    let config = gw.dir.path().join("gerbang.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let shipped = format!("dir = \"{}\"", policies_dir().display());
    assert!(text.contains(&shipped), "{text}");
    std::fs::write(
        &config,
        text.replace(&shipped, "dir = \"policies\"\nwatch = false"),
    )
    .unwrap();
    gw.restart();
    gw
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The decision log's records of one action.
fn records(dir: &Path, action: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "jsonl") {
            for line in std::fs::read_to_string(path).unwrap().lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && v["action"] == action
                {
                    out.push(v);
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_says_what_an_edit_changes_and_refuses_rules_that_break_an_invariant() {
    assert_solver();
    let gw = gateway();
    let pks = gw.pks_path("dinas.toml");

    // An element added: previewed, then reloaded, logged and recorded with the same words.
    edit(&pks, "\"TGL_LHR\"]", "\"TGL_LHR\", \"ALAMAT\"]");
    let gains = "3 User IDs of 1 Pengguna gain ALAMAT";
    let (status, text) = gw.admin(Method::GET, "/reload/diff", None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["review"]["diff"]["summary"], gains, "{text}");
    let config = gw.dir.path().join("gerbang.toml");
    let (ok, out, err) = gerbang(&[
        "policy",
        "diff",
        "--running",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("User ID dinas_02 (PKS 1/DINAS/ASSURE, dinas): gains elements ALAMAT\n"),
        "{out}"
    );
    assert!(out.contains(&format!("summary: {gains}")), "{out}");

    // `gerbang reload` asks the admin API and prints its answer.
    let (ok, out, err) = gerbang(&["reload", "--config", config.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("\nchanges:  {gains}\nrules:    rules unchanged\n")),
        "{out}"
    );
    gw.proc.stderr_with(&[gains]).await;
    let audit = gw.dir.path().join("audit");
    let recorded = records(&audit, "Reload");
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["reason"], format!("admin API: {gains}"));
    let (_, ready) = gw.admin(Method::GET, "/ready", None).await;
    assert_eq!(recorded[0]["policy_hash"], json(&ready)["policy_hash"]);

    // Nothing changed: no record.
    let (status, text) = gw.admin(Method::POST, "/reload", None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        json(&text)["reloaded"]["changes"],
        "no change in what any User ID may do"
    );
    assert_eq!(records(&audit, "Reload").len(), 1);

    // The agreement frozen.
    edit(&pks, "status = \"aktif\"\n", "status = \"dibekukan\"\n");
    let (status, text) = gw.admin(Method::POST, "/reload", None).await;
    assert_eq!(status, 200, "{text}");
    let reloaded = &json(&text)["reloaded"];
    assert_eq!(
        reloaded["changes"],
        "PKS 1/DINAS/ASSURE: status aktif → dibekukan; 3 User IDs of 1 Pengguna lose all access",
        "{text}"
    );
    assert_eq!(reloaded["proof"], "rules unchanged", "{text}");

    // A rule edit that keeps every invariant: proved, and the same meaning.
    let policies = gw.dir.path().join("policies");
    let akses = policies.join("akses.cedar");
    let text = std::fs::read_to_string(&akses).unwrap();
    std::fs::write(&akses, format!("// Dirapikan.\n{text}")).unwrap();
    let (status, text) = gw.admin(Method::POST, "/reload", None).await;
    assert_eq!(status, 200, "{text}");
    let reloaded = &json(&text)["reloaded"];
    assert_eq!(reloaded["changes"], "rules edited, same meaning (proved)");
    let proof = reloaded["proof"].as_str().unwrap();
    assert!(proof.starts_with("11 invariants proved (cvc5 "), "{proof}");
    let hash = reloaded["policy_hash"].clone();

    // A rule edit that breaks one: refused like a broken file, naming the invariant and its
    // case; the running set stays.
    edit(
        &policies.join("larangan.cedar"),
        "    Gerbang::Action::\"CallNik\",\n",
        "",
    );
    let (status, text) = gw.admin(Method::POST, "/reload", None).await;
    assert_eq!(status, 422, "{text}");
    let error = json(&text)["error"].as_str().unwrap().to_string();
    assert!(error.contains("verifikasi-saja.toml:"), "{error}");
    assert!(
        error.contains("field `asing-mayoritas-hanya-verifikasi`: the rules break this invariant (Permendagri 102/2019 art. 29(4)); counterexample: CallNik is PERMITTED by lookup-by-nik"),
        "{error}"
    );
    let (_, ready) = gw.admin(Method::GET, "/ready", None).await;
    assert_eq!(json(&ready)["policy_hash"], hash, "{ready}");
    gw.metrics_with(&[r#"gerbang_policy_reloads_total{result="error"} 1"#])
        .await;
    // The preview says the same before anyone tries.
    let (status, text) = gw.admin(Method::GET, "/reload/diff", None).await;
    assert_eq!(status, 422, "{text}");
}

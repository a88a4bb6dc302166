//! The `gerbang` tools as an operator runs them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use gerbang_e2e::bin;

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

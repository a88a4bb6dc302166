//! One account of several instances (issue 20): two real `gerbang serve` instances, each
//! writing its own decision-log chain under its own `instance` name, read together by
//! `gerbang audit verify --dir A --dir B` (one verdict per chain, one exit code for the
//! whole) and `gerbang report --dir A --dir B` (one report, nothing counted twice).
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Datelike;
use gerbang_e2e::*;

fn agreements() -> Vec<TestPks> {
    vec![TestPks::new(
        "rsud.toml",
        "1/RSUD/FLEET",
        vec![
            TestUser {
                id: "rsud_01",
                ip: "127.0.0.2",
                status: "aktif",
            },
            TestUser {
                id: "rsud_02",
                ip: "127.0.0.3",
                status: "aktif",
            },
        ],
    )]
}

/// A gateway instance named `name` with a chain of its own, that answered `lookups` (User ID
/// and its address) and was stopped. The harness names every instance `e2e`: the instance is
/// renamed and its first log removed before it serves, so the whole chain is `name`'s.
async fn instance(sim: &Sim, name: &str, lookups: &[(&str, &str)]) -> Gateway {
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    gw.stop();
    let config = gw.dir.path().join("gerbang.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with("instance = \"e2e\"\n"), "{text}");
    std::fs::write(
        &config,
        text.replacen("instance = \"e2e\"", &format!("instance = \"{name}\""), 1),
    )
    .unwrap();
    std::fs::remove_dir_all(gw.dir.path().join("audit")).unwrap();
    gw.restart();
    let niks = sim.sample("alive", lookups.len()).await;
    for ((user, ip), nik) in lookups.iter().zip(&niks) {
        let (_, answer) = post(
            &gw.client(ip),
            &gw.url("CALL_NIK"),
            call_nik(nik, user, PASSWORD),
        )
        .await;
        assert_eq!(respon(&answer), None, "{answer}");
    }
    gw.stop();
    gw
}

/// Instance `gw-a`: 3 lookups by rsud_01. Instance `gw-b`: 2 by rsud_01 and 1 by rsud_02.
async fn two_instances() -> (Sim, Gateway, Gateway) {
    let sim = Sim::start(1_000);
    let a = instance(
        &sim,
        "gw-a",
        &[
            ("rsud_01", "127.0.0.2"),
            ("rsud_01", "127.0.0.2"),
            ("rsud_01", "127.0.0.2"),
        ],
    )
    .await;
    let b = instance(
        &sim,
        "gw-b",
        &[
            ("rsud_01", "127.0.0.2"),
            ("rsud_02", "127.0.0.3"),
            ("rsud_01", "127.0.0.2"),
        ],
    )
    .await;
    (sim, a, b)
}

fn log_dir(gw: &Gateway) -> PathBuf {
    gw.dir.path().join("audit")
}

/// `gerbang <args>` with no configuration and no key in the environment: the exit code and
/// what it printed.
fn gerbang(args: &[&OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(bin("gerbang"))
        .args(args)
        .env_remove("GERBANG_AUDIT_KEY")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `audit verify` over `dirs` with the (one, Ditjen) key file of `gw`.
fn verify(gw: &Gateway, dirs: &[&Path]) -> (Option<i32>, String) {
    let key = gw.dir.path().join("audit.key");
    let mut args: Vec<&OsStr> = vec!["audit".as_ref(), "verify".as_ref()];
    for dir in dirs {
        args.extend(["--dir".as_ref(), dir.as_os_str()]);
    }
    args.extend(["--key-file".as_ref(), key.as_os_str()]);
    let (code, out, err) = gerbang(&args);
    (code, format!("{out}{err}"))
}

/// `report --format json` over `dirs` for this semester: the exit code, the report (when
/// made) and standard error.
fn report(dirs: &[&Path]) -> (Option<i32>, Option<serde_json::Value>, String) {
    let today = gerbang_today();
    let semester = format!(
        "{}-{}",
        today.year(),
        if today.month() <= 6 { 1 } else { 2 }
    );
    let mut args: Vec<&OsStr> = vec![
        "report".as_ref(),
        "--semester".as_ref(),
        semester.as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ];
    for dir in dirs {
        args.extend(["--dir".as_ref(), dir.as_os_str()]);
    }
    let (code, out, err) = gerbang(&args);
    (code, serde_json::from_str(&out).ok(), err)
}

/// Hits per User ID in a JSON report.
fn hits_by_user(report: &serde_json::Value) -> Vec<(String, u64)> {
    report["pengguna"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["users"].as_array().unwrap())
        .map(|u| {
            (
                u["user_id"].as_str().unwrap_or_default().to_owned(),
                u["usage"]["hits"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_gives_one_verdict_per_instance_and_names_the_tampered_one() {
    let (_sim, a, b) = two_instances().await;
    let (dir_a, dir_b) = (log_dir(&a), log_dir(&b));
    let (dir_a, dir_b) = (dir_a.as_path(), dir_b.as_path());

    let (code, shown) = verify(&a, &[dir_a, dir_b]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains(&format!("{} (instance gw-a): INTACT", dir_a.display())),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{} (instance gw-b): INTACT", dir_b.display())),
        "{shown}"
    );
    assert!(shown.contains("all chains intact"), "{shown}");

    // A directory that cannot be read beside an intact one: not verified (2), never intact.
    let absent = a.dir.path().join("absent");
    let absent = absent.as_path();
    let (code, shown) = verify(&a, &[dir_a, absent]);
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("absent"), "{shown}");

    // One record of B edited: exit 1, B named with its file, A still intact; tampering
    // decides the whole even beside a directory that cannot be read.
    let day = std::fs::read_dir(dir_b)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&day).unwrap();
    let edited = text.replacen("\"rsud_02\"", "\"rsud_09\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&day, edited).unwrap();
    for dirs in [&[dir_a, dir_b][..], &[absent, dir_a, dir_b]] {
        let (code, shown) = verify(&a, dirs);
        assert_eq!(code, Some(1), "{shown}");
        assert!(
            shown.contains(&format!("{} (instance gw-a): INTACT", dir_a.display())),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("{} (instance gw-b): TAMPERED", dir_b.display())),
            "{shown}"
        );
        let name = day.file_name().unwrap().to_string_lossy().into_owned();
        assert!(shown.contains(&name), "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_adds_up_the_instances_and_counts_nothing_twice() {
    let (_sim, a, b) = two_instances().await;
    let (dir_a, dir_b) = (log_dir(&a), log_dir(&b));
    let want = vec![("rsud_01".to_owned(), 5), ("rsud_02".to_owned(), 1)];

    let (code, merged, err) = report(&[&dir_a, &dir_b]);
    assert_eq!(code, Some(0), "{err}");
    let merged = merged.unwrap();
    assert_eq!(hits_by_user(&merged), want, "{merged:#}");
    assert_eq!(merged["totals"]["hits"], 6, "{merged:#}");
    let instances: Vec<&serde_json::Value> = merged["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["instances"])
        .collect();
    assert_eq!(
        instances,
        vec![&serde_json::json!(["gw-a"]), &serde_json::json!(["gw-b"])]
    );

    // The same directory twice, once through another path to it: counted once.
    let other_path = a.dir.path().join(".").join("audit");
    let (code, again, err) = report(&[&dir_a, &dir_b, &dir_a, &other_path]);
    assert_eq!(code, Some(0), "{err}");
    let again = again.unwrap();
    assert_eq!(hits_by_user(&again), want, "{again:#}");
    assert_eq!(again["totals"], merged["totals"]);

    // A copy of A under another path: the same chain, refused rather than added twice.
    let copy = b.dir.path().join("copy-of-a");
    copy_dir(&dir_a, &copy);
    let (code, made, err) = report(&[&dir_a, &dir_b, &copy]);
    assert_ne!(code, Some(0), "a copy was added up: {made:?}");
    assert!(made.is_none(), "{made:?}");
    assert!(err.contains("hold the same chain"), "{err}");
    assert!(err.contains("copy-of-a"), "{err}");
}

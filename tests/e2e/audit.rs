//! The decision log end to end: one record per request, no NIK or password in it, verified
//! by `gerbang audit verify`, tampering named, no record of an answered request lost to a
//! `kill -9`, and the semester report made from it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Datelike;
use gerbang_e2e::*;

fn agreements() -> Vec<TestPks> {
    vec![TestPks::new(
        "rsud.toml",
        "1/RSUD/AUDIT",
        vec![TestUser {
            id: "rsud_01",
            ip: "127.0.0.2",
            status: "aktif",
        }],
    )]
}

fn gerbang(args: &[&str], gw: &Gateway) -> (bool, String) {
    let out = Command::new(bin("gerbang"))
        .args(args)
        .arg("--config")
        .arg(gw.dir.path().join("gerbang.toml"))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every record line of the log directory, parsed.
fn records(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The request records (not the log's own events) of a log.
fn requests(dir: &Path) -> Vec<serde_json::Value> {
    records(dir)
        .into_iter()
        .filter(|r| r.get("request_id").is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_recorded_without_nik_or_password_and_verifies() {
    let sim = Sim::start(1_000);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let niks = sim.sample("alive", 3).await;
    let client = gw.client("127.0.0.2");
    for nik in &niks {
        let (_, answer) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(nik, "rsud_01", PASSWORD),
        )
        .await;
        assert_eq!(respon(&answer), None, "{answer}");
    }
    let (_, refused) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik(&niks[0], "rsud_01", "salah-sandi"),
    )
    .await;
    assert_eq!(respon(&refused).as_deref(), Some("Login Gagal"));
    gw.stop();

    let dir = gw.dir.path().join("audit");
    let all = requests(&dir);
    let allowed: Vec<_> = all.iter().filter(|r| r["decision"] == "allow").collect();
    let denied: Vec<_> = all.iter().filter(|r| r["decision"] == "deny").collect();
    assert_eq!((allowed.len(), denied.len()), (3, 1), "{all:#?}");
    for r in &allowed {
        assert_eq!(r["user_id"], "rsud_01");
        assert_eq!(r["pks"], "1/RSUD/AUDIT");
        assert_eq!(r["upstream_status"], 200);
        assert_eq!(r["nik_digest"].as_str().unwrap().len(), 64, "{r}");
        assert!(
            r["elements"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "NAMA_LGKP"),
            "{r}"
        );
        assert!(!r["policy_hash"].as_str().unwrap().is_empty());
    }
    assert_eq!(denied[0]["reason"], "login_failed");
    // Digests of the same NIK match (distinct NIKs can be counted); the NIK never appears.
    assert_eq!(allowed[0]["nik_digest"], denied[0]["nik_digest"]);
    let raw: String = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    for nik in &niks {
        assert!(!raw.contains(nik.as_str()), "a NIK in the decision log");
    }
    assert!(
        !raw.contains(PASSWORD) && !raw.contains("salah-sandi"),
        "a password in the log"
    );

    let (ok, shown) = gerbang(&["audit", "verify"], &gw);
    assert!(ok, "{shown}");

    // The semester report counts the hits of this User ID.
    let today = gerbang_today();
    let semester = format!(
        "{}-{}",
        today.year(),
        if today.month() <= 6 { 1 } else { 2 }
    );
    let (ok, shown) = gerbang(&["report", "--semester", &semester, "--format", "csv"], &gw);
    assert!(ok, "{shown}");
    assert!(shown.contains("rsud_01"), "{shown}");

    // One changed character in a record: verify fails and names the file and line.
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replacen("\"rsud_01\"", "\"rsud_02\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&file, edited).unwrap();
    let (ok, shown) = gerbang(&["audit", "verify"], &gw);
    assert!(!ok, "tampering not detected: {shown}");
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(shown.contains(&name), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_under_load_loses_no_record_of_an_answered_request() {
    let sim = Sim::start(2_000);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let niks = Arc::new(sim.sample("alive", 50).await);
    let answered = Arc::new(AtomicUsize::new(0));
    let url = gw.url("CALL_NIK");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (client, url, niks, answered) = (
            gw.client("127.0.0.2"),
            url.clone(),
            Arc::clone(&niks),
            Arc::clone(&answered),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let nik = &niks[(t * 7 + i) % niks.len()];
                let sent = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(call_nik(nik, "rsud_01", PASSWORD))
                    .send()
                    .await;
                let Ok(resp) = sent else { break };
                let Ok(body) = resp.text().await else { break };
                if respon(&body).is_none() && !record_keys(&body).is_empty() {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Let the load run, then kill -9 in the middle of it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < 200 {
        assert!(std::time::Instant::now() < deadline, "no load");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.proc.kill();
    for t in tasks {
        let _ = t.await;
    }
    let answered = answered.load(Ordering::SeqCst);
    let dir = gw.dir.path().join("audit");
    let with_data = requests(&dir)
        .iter()
        .filter(|r| r["decision"] == "allow" && r["upstream_status"] == 200)
        .count();
    assert!(
        with_data >= answered,
        "{answered} answers with data but only {with_data} records"
    );
    // The log verifies (a torn tail is a note, not tampering), and continues after a restart.
    let (ok, shown) = gerbang(&["audit", "verify"], &gw);
    assert!(ok, "{shown}");
    gw.restart();
    let (_, answer) = post(
        &gw.client("127.0.0.2"),
        &url,
        call_nik(&niks[0], "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&answer), None, "{answer}");
    gw.stop();
    let (ok, shown) = gerbang(&["audit", "verify"], &gw);
    assert!(ok, "{shown}");
}

/// `gerbang audit verify` with `args` (no implied `--config`), without the environment's
/// key; returns its exit code and what it printed.
fn verify_cli(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = Command::new(bin("gerbang"))
        .args(["audit", "verify"])
        .args(args)
        .env_remove("GERBANG_AUDIT_KEY")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A gateway that answered one lookup and was stopped: a small intact log.
async fn stopped_gateway_with_a_record() -> Gateway {
    let sim = Sim::start(1_000);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let niks = sim.sample("alive", 1).await;
    let (_, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&niks[0], "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&answer), None, "{answer}");
    gw.stop();
    gw
}

/// Issue 18, defect 7: `--dir` names the log, the configuration still gives the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_dir_takes_the_key_file_from_the_configuration() {
    let gw = stopped_gateway_with_a_record().await;
    let config = gw.dir.path().join("gerbang.toml");
    // The log copied elsewhere, as an auditor would verify a copy.
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(gw.dir.path().join("audit")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    let (code, shown) = verify_cli(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--dir".as_ref(),
        copy.path().as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("intact"), "{shown}");
}

/// Issue 18, defect 7: "tampered" (1) and "could not verify" (2) are told apart by the exit
/// code, so a script never files a missing key as tampering or the reverse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_exit_codes_tell_tampering_from_not_verifiable() {
    let gw = stopped_gateway_with_a_record().await;
    let config = gw.dir.path().join("gerbang.toml");
    let dir = gw.dir.path().join("audit");
    let (code, shown) = verify_cli(&["--config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(0), "{shown}");

    // Could not verify: no key anywhere, a directory that is not there, a broken config.
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, shown) = verify_cli(&[
        "--config".as_ref(),
        elsewhere.path().join("none.toml").as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{shown}");
    let (code, shown) = verify_cli(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--dir".as_ref(),
        elsewhere.path().join("absent").as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("absent"), "{shown}");
    let (code, shown) = verify_cli(&["--dir".as_ref(), dir.as_os_str()]);
    assert_eq!(code, Some(2), "no key: {shown}");
    assert!(shown.contains("no audit key"), "{shown}");

    // Tampered: one byte changed.
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\"rsud_01\"", "\"rsud_02\"", 1)).unwrap();
    let (code, shown) = verify_cli(&["--config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("FAILED"), "{shown}");
}

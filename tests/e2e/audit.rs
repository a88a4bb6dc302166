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

/// The semester report of this gateway's log, as JSON.
fn report_json(gw: &Gateway) -> serde_json::Value {
    let today = gerbang_today();
    let semester = format!(
        "{}-{}",
        today.year(),
        if today.month() <= 6 { 1 } else { 2 }
    );
    let (ok, shown) = gerbang(&["report", "--semester", &semester, "--format", "json"], gw);
    assert!(ok, "{shown}");
    serde_json::from_str(&shown).unwrap_or_else(|e| panic!("{e}: {shown}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_from_a_user_ids_own_lan_are_its_penggunas_and_portal_searches_carry_the_nik() {
    let sim = Sim::start(1_000);
    let portal = TestPks {
        metode: r#"["web_portal"]"#,
        ..TestPks::new(
            "portal.toml",
            "2/PORTAL/AUDIT",
            vec![TestUser {
                id: "portal_01",
                ip: "127.0.0.4",
                status: "aktif",
            }],
        )
    };
    let mut gw = Gateway::start(GatewayOptions::new(
        sim.addr,
        vec![agreements().remove(0), portal],
    ));
    let nik = sim.sample("alive", 1).await.remove(0);
    let client = gw.client("127.0.0.2");
    let url = gw.url("CALL_NIK");
    // From rsud_01's own LAN: a wrong password, and a malformed NIK with the right one.
    let (_, a) = post(&client, &url, call_nik(&nik, "rsud_01", "salah-sandi")).await;
    assert_eq!(respon(&a).as_deref(), Some("Login Gagal"));
    let (_, a) = post(
        &client,
        &url,
        call_nik("3201019901900001", "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(
        respon(&a).as_deref(),
        Some("NIK Tidak Sesuai Format Dukcapil")
    );
    // Unidentified: a User ID that does not exist, and rsud_01 from no registered LAN.
    let (_, a) = post(&client, &url, call_nik(&nik, "tidak_ada", PASSWORD)).await;
    assert_eq!(respon(&a).as_deref(), Some("Login Gagal"));
    let (_, a) = post(
        &gw.client("127.0.0.9"),
        &url,
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&a).as_deref(), Some("IP Client Tidak Terdaftar"));

    // A portal search, the same NIK.
    let browser = gw.portal_client("127.0.0.4");
    let cookie = gw.portal_login(&browser, "portal_01").await;
    let (_, found) = gw.portal_search(&browser, &cookie, &nik).await;
    assert!(found.contains(&format!("\"NIK\":{nik}")), "{found}");
    gw.stop();

    let records = requests(&gw.dir.path().join("audit"));
    let find = |reason: &str, user: Option<&str>| {
        records
            .iter()
            .find(|r| r["reason"] == reason && r["user_id"].as_str() == user)
            .unwrap_or_else(|| panic!("no {reason} record of {user:?}: {records:#?}"))
    };
    for reason in ["login_failed", "nik_format"] {
        let r = find(reason, Some("rsud_01"));
        assert_eq!(r["pengguna"], "rsud", "{r}");
        assert_eq!(r["pks"], "1/RSUD/AUDIT", "{r}");
    }
    let unknown = find("login_failed", Some("tidak_ada"));
    assert!(unknown.get("pengguna").is_none(), "{unknown}");
    let stranger = find("ip_not_registered", None);
    assert!(stranger.get("pengguna").is_none(), "{stranger}");
    let lookups: Vec<_> = records
        .iter()
        .filter(|r| r["upstream_status"] == 200)
        .collect();
    assert_eq!(lookups.len(), 1, "{records:#?}");
    assert_eq!(lookups[0]["channel"], "web_portal");
    // The portal lookup carries the same digest as the API request naming the NIK.
    assert_eq!(
        lookups[0]["nik_digest"],
        find("login_failed", Some("rsud_01"))["nik_digest"]
    );

    // The report puts the two refusals under rsud's User ID, counts the portal's NIK, and
    // leaves only the unknown User ID and the unregistered address unidentified.
    let report = report_json(&gw);
    let pengguna = report["pengguna"].as_array().unwrap();
    let row = |id: Option<&str>| {
        pengguna
            .iter()
            .find(|p| p["pengguna"].as_str() == id)
            .unwrap_or_else(|| panic!("no row {id:?}: {report:#}"))
    };
    assert_eq!(row(Some("rsud"))["usage"]["refusals"]["login_failed"], 1);
    assert_eq!(row(Some("rsud"))["usage"]["refusals"]["nik_format"], 1);
    assert_eq!(row(Some("portal"))["usage"]["distinct_niks"], 1);
    assert_eq!(row(None)["usage"]["refusals_total"], 2, "{report:#}");
}

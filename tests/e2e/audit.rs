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

/// The plain day file of a log written today.
fn day_file(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap()
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
    let file = day_file(&dir);
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
    let file = day_file(&dir);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\"rsud_01\"", "\"rsud_02\"", 1)).unwrap();
    let (code, shown) = verify_cli(&["--config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("FAILED"), "{shown}");
}

/// Appends `lines` to the configuration's `[audit]` table (the last one the harness writes).
fn add_to_audit_table(gw: &Gateway, lines: &str) {
    let path = gw.dir.path().join("gerbang.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.trim_end().ends_with("key_file = \"audit.key\""),
        "[audit] is not the last table:\n{text}"
    );
    std::fs::write(&path, format!("{text}{lines}\n")).unwrap();
}

/// Issue 17: without the configured minimum of free space on the log's filesystem,
/// `gerbang serve` does not start, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_does_not_start_without_the_minimum_free_space_for_its_log() {
    let gw = stopped_gateway_with_a_record().await;
    // A petabyte: no test machine has it.
    add_to_audit_table(&gw, "min_free_mib = 1000000000");
    let mut child = Command::new(bin("gerbang"))
        .args(["serve", "--config"])
        .arg(gw.dir.path().join("gerbang.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("gerbang serve started without the free space it was told to need");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = read_all(child.stderr.take().unwrap());
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("MiB free") && stderr.contains("audit.min_free_mib"),
        "{stderr}"
    );
}

/// Issue 17: at the edge of the disk, data answers are refused only when a record truly
/// cannot be written, and each such refusal is counted. The gateway runs with a file-size
/// limit just above its day file (`ulimit -f`: writes past it fail as on a full disk), and
/// with an alert threshold above the free space: the alert's condition holds, lookups are
/// still answered, until the first record that cannot be written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_edge_of_the_disk_data_is_refused_only_when_its_record_cannot_be_written() {
    let sim = Sim::start(1_000);
    let mut gw = Gateway::start(GatewayOptions {
        // Nothing but the decision log grows with the requests.
        quota: "store = \"memory\"\n",
        ..GatewayOptions::new(sim.addr, agreements())
    });
    let niks = sim.sample("alive", 20).await;
    gw.stop();
    add_to_audit_table(&gw, "alert_free_mib = 1000000000");
    let dir = gw.dir.path().join("audit");
    let file = day_file(&dir);
    // Room for a dozen more records of about 700 bytes (ulimit -f counts KiB).
    let limit_kib = std::fs::metadata(&file).unwrap().len() / 1024 + 8;
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f \"$2\"; exec \"$0\" serve --config \"$1\"")
        .arg(bin("gerbang"))
        .arg(gw.dir.path().join("gerbang.toml"))
        .arg(limit_kib.to_string())
        .env("RUST_LOG", "warn");
    gw.proc = start_listening("gerbang", cmd, gw.addr, gw.dir.path());

    // The disk counts as low from the start: the gauges say so, nothing is refused for it.
    let metrics = gw.metrics().await;
    let gauge = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .parse()
            .unwrap()
    };
    let free = gauge(&metrics, "gerbang_audit_disk_free_bytes");
    let alert = gauge(&metrics, "gerbang_audit_disk_free_alert_bytes");
    assert!(free > 0.0 && free < alert, "free {free}, alert at {alert}");

    let client = gw.client("127.0.0.2");
    let mut answered = 0;
    let refused = loop {
        let (_, answer) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&niks[answered % niks.len()], "rsud_01", PASSWORD),
        )
        .await;
        match respon(&answer) {
            None => {
                assert!(!record_keys(&answer).is_empty(), "{answer}");
                answered += 1;
            }
            Some(_) => break answer,
        }
        assert!(answered < 200, "the file-size limit was never reached");
    };
    assert!(answered >= 3, "refused before the disk was full: {refused}");
    assert_eq!(
        respon(&refused).as_deref(),
        Some("Log Audit Tidak Dapat Ditulis"),
        "{refused}"
    );
    assert!(
        record_keys(&refused)
            .iter()
            .all(|k| k == "RESPON" || k == "RESPONSE_CODE"),
        "data in a refusal: {refused}"
    );
    // /ready reads the log's live state: no scrape since the failure, and a balancer
    // already stops sending requests here (issue 19).
    let (status, ready) = gw.admin(reqwest::Method::GET, "/ready", None).await;
    assert_eq!(status, 503, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["audit_log"], false, "{ready}");
    assert!(
        ready["reason"]
            .as_str()
            .unwrap()
            .starts_with("the decision log cannot be written"),
        "{ready}"
    );
    let metrics = gw
        .metrics_with(&["reason=\"audit_unavailable\"", "gerbang_audit_healthy 0"])
        .await;
    let refusals: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("gerbang_requests_total{") && l.contains("audit_unavailable"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(refusals, 1.0, "{metrics}");
    assert!(gauge(&metrics, "gerbang_audit_write_failures_total") >= 1.0);
    gw.proc.kill();

    // What was written before the edge verifies: the failed write was cut off again.
    let (code, shown) = verify_cli(&[
        "--config".as_ref(),
        gw.dir.path().join("gerbang.toml").as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{shown}");
    let allowed = requests(&dir)
        .into_iter()
        .filter(|r| r["decision"] == "allow")
        .count();
    // One record per answer with data; none for the withheld one (its write was cut off).
    assert_eq!(allowed, answered);
}

/// Issue 17 through the CLI: `audit verify` and `report` find the archive directory in the
/// configuration; reports over archived days equal those over the plain files, and a
/// tampered archived day is named with exit code 1.
#[test]
fn verify_and_report_read_the_archive_named_in_the_configuration() {
    use gerbang_audit::{
        ArchiveTo, AuditKey, AuditLog, Decision, Keep, Record, Retention, WriterOptions,
    };
    let dir = tempfile::tempdir().unwrap();
    let (log_dir, archive) = (dir.path().join("log"), dir.path().join("arsip"));
    std::fs::write(dir.path().join("audit.key"), AUDIT_KEY).unwrap();
    let key = AuditKey::from_material(AUDIT_KEY.as_bytes(), "e2e").unwrap();
    let config = dir.path().join("gerbang.toml");
    let base = "[listen]\naddress = \"127.0.0.1:1\"\nplaintext = true\n[upstream]\naddress = \"127.0.0.1:2\"\n[pks]\ndir = \"pks\"\n[policy]\ndir = \"policies\"\n[audit]\ndir = \"log\"\nkey_file = \"audit.key\"\n";
    std::fs::write(&config, base).unwrap();

    // Five days of records, written with a clock the test moves.
    let now = Arc::new(std::sync::Mutex::new(chrono::Utc::now()));
    let clock = {
        let now = Arc::clone(&now);
        Arc::new(move || *now.lock().unwrap())
    };
    let set = |at: &str| {
        *now.lock().unwrap() = chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc();
    };
    set("2026-03-01T08:00:00+07:00");
    let log = AuditLog::open(
        &log_dir,
        key.clone(),
        WriterOptions {
            clock,
            background_maintenance: false,
            retention: Some(Retention {
                keep: Keep::Days(2),
                to: ArchiveTo::Dir(archive.clone()),
            }),
            ..WriterOptions::default()
        },
    )
    .unwrap();
    for (d, day) in (1..=5).enumerate() {
        for i in 0..30 {
            set(&format!("2026-03-0{day}T{:02}:00:00+07:00", 8 + i % 12));
            // Read before the append, which reads the clock too.
            let time = *now.lock().unwrap();
            log.append(&Record {
                time,
                instance: "e2e".into(),
                request_id: format!("r-{d}-{i}"),
                user_id: Some("rsud_01".into()),
                pengguna: Some("rsud".into()),
                pks: Some("1/RSUD/AUDIT".into()),
                peer_ip: "127.0.0.2".parse().unwrap(),
                channel: Some("web_service".into()),
                action: Some("CallNik".into()),
                decision: if i % 4 == 0 {
                    Decision::Deny
                } else {
                    Decision::Allow
                },
                reason: (i % 4 == 0).then(|| "login_failed".to_string()),
                policy_ids: vec![],
                policy_hash: String::new(),
                nik_digest: Some(key.nik_digest(&format!("99{i:014}"))),
                elements: vec!["NIK".into()],
                balikan: None,
                upstream_status: (i % 4 != 0).then_some(200),
                latency_us: 100,
                quota_used: Some(i),
                quota_limit: Some(1000),
            })
            .unwrap();
        }
    }
    let report = |extra: &[&str]| {
        let out = Command::new(bin("gerbang"))
            .args([
                "report",
                "--semester",
                "2026-1",
                "--format",
                "json",
                "--config",
            ])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = report(&[]);
    assert!(
        plain.contains("\"hits\": 110") || plain.contains("\"hits\":110"),
        "{plain}"
    );
    let done = log.maintain().unwrap();
    assert_eq!(done.archived.len(), 2, "{done:?}");
    log.close().unwrap();

    // The configuration gains the retention and names the archive.
    std::fs::write(
        &config,
        format!("{base}retention_days = 2\narchive_dir = \"arsip\"\n"),
    )
    .unwrap();
    assert_eq!(report(&[]), plain, "a report over archived days differs");
    let (code, shown) = verify_cli(&["--config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(0), "{shown}");

    // A byte of an archived day changed: named, exit 1.
    let day1 = archive.join("audit-2026-03-01.jsonl.zst");
    let mut bytes = std::fs::read(&day1).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&day1, bytes).unwrap();
    let (code, shown) = verify_cli(&["--config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("audit-2026-03-01.jsonl.zst"), "{shown}");
    // Without the archive (a copy of the log directory alone): not verifiable, exit 2.
    let (code, shown) = verify_cli(&[
        "--dir".as_ref(),
        log_dir.as_os_str(),
        "--key-file".as_ref(),
        dir.path().join("audit.key").as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("--archive-dir"), "{shown}");
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
    // Unidentified: a User ID that does not exist (answered as from a LAN not its own, so
    // that the answer does not tell whether it exists), and rsud_01 from no registered LAN.
    let (_, a) = post(&client, &url, call_nik(&nik, "tidak_ada", PASSWORD)).await;
    assert_eq!(respon(&a).as_deref(), Some("IP Address Tidak Sesuai"));
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
    let unknown = find("ip_mismatch", Some("tidak_ada"));
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

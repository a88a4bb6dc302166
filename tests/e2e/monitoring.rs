//! Monitoring end to end: a real Prometheus (Debian's `prometheus`) scrapes a running
//! gateway and SAM sidecar under traffic, loads `monitoring/alerts.yml`, and every query of
//! every Grafana panel and of every alert returns data, except the alerts whose condition
//! a test cannot create here (named below, with the test that covers their cause).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gerbang_e2e::*;
use gerbang_sam::{Biometric, ReaderKey, SignInput, new_nonce, sign};

/// Alerts whose condition this test cannot create, and why.
const NOT_CREATED: &[(&str, &str)] = &[
    (
        "GerbangQuotaStoreDown",
        "the embedded store cannot be down; e2e/quota_redis.rs stops Redis",
    ),
    (
        "GerbangAuditWriteFailures",
        "root ignores permissions; gateway/audit tests fail writes with /dev/full and RLIMIT_FSIZE",
    ),
    ("GerbangAuditUnhealthy", "as above"),
    (
        "GerbangAuditDiskLow",
        "needs a nearly full disk; alerts_test.yml fires it, e2e/audit.rs shows the gauges",
    ),
    ("GerbangAuditDiskFilling", "as above"),
    (
        "GerbangAuditMaintenanceFailed",
        "needs a day change; gateway/audit tests fail a pass, alerts_test.yml fires it",
    ),
    (
        "GerbangAuditRecordsDropped",
        "needs a stalled disk; gateway/audit's writer test fills the queue, e2e/flood.rs floods",
    ),
    (
        "GerbangPolicyDrift",
        "needs two instances with different PKS sets",
    ),
    (
        "GerbangBalikanOverdue",
        "needs 30 days of lookups without data balikan; alerts_test_30d.yml fires it",
    ),
    (
        "GerbangTlsCertificateExpiring",
        "needs a certificate within 30 days of its end; e2e/tls_reload.rs reads the gauge, alerts_test.yml fires it",
    ),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn prometheus_installed() -> bool {
    Command::new("prometheus").arg("--version").output().is_ok()
}

/// A signed reader lookup, `age` seconds old.
async fn reader_lookup(
    gw: &Gateway,
    key: &ReaderKey,
    user: &str,
    source: &str,
    nik: &str,
    age: i64,
) -> String {
    let body = call_nik(nik, user, PASSWORD);
    let nonce = new_nonce().unwrap();
    let headers = sign(
        &key.signing,
        &SignInput {
            sam_id: "SAM-MON",
            method: "POST",
            path: "/dukcapil/get_json/UJI/CALL_NIK",
            body: body.as_bytes(),
            user_id: user,
            biometric: Biometric::Match,
            timestamp: chrono::Utc::now().timestamp() - age,
            nonce: &nonce,
        },
    );
    let mut req = gw.client(source).post(gw.url("CALL_NIK"));
    for (name, value) in headers.into_pairs() {
        req = req.header(name, value);
    }
    post_with(req, body).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_gets_data_for_every_panel_and_alert() {
    assert!(
        prometheus_installed(),
        "Debian's `prometheus` is not installed: `make deps` (or `make test`) installs it"
    );
    let key = ReaderKey::generate("SAM-MON").unwrap();
    let sim = Sim::start(2_000);
    let sam_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let small = TestPks {
        kuota: 5,
        metode: r#"["web_service", "card_reader"]"#,
        sams: key.pks_block("aktif"),
        ..TestPks::new(
            "kab.toml",
            "1/KAB/MON",
            vec![
                TestUser::aktif("kab_01", "127.0.0.2"),
                TestUser::aktif("kab_02", "127.0.0.3"),
                TestUser::aktif("kab_03", "127.0.0.4"),
            ],
        )
    };
    let big = TestPks {
        extra: r#"data_balikan = ["Nomor rekam medis"]"#,
        ..TestPks::new(
            "dinas.toml",
            "2/DINAS/MON",
            vec![
                TestUser::aktif("dinas_01", "127.0.0.5"),
                TestUser::aktif("dinas_02", "127.0.0.6"),
            ],
        )
    };
    let gw = Gateway::start(GatewayOptions {
        sam: Some(sam_addr),
        timeout_ms: 400,
        ..GatewayOptions::new(sim.addr, vec![small, big])
    });
    let mut sam = SamSidecar::start(&gw.pks_dir(), sam_addr);
    sam.wait_fresh().await;

    // Prometheus: 1 s scrapes and rule evaluation, the repository's alert rules, plus one
    // dead target per job (the "target down" alerts).
    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let dead = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: gerbang\n    static_configs:\n      - targets: [\"{}\", \"127.0.0.1:{dead}\"]\n  - job_name: gerbang-sam\n    static_configs:\n      - targets: [\"{sam_addr}\", \"127.0.0.1:{dead}\"]\n",
            repo().join("monitoring/alerts.yml").display(),
            gw.admin_addr,
        ),
    )
    .unwrap();
    let prom_log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(prom_log)
        .spawn()
        .unwrap();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prometheus = KillOnDrop(prometheus);

    // Traffic starts once Prometheus has scraped the gateway: an error counted before the
    // first scrape would show no increase.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = reqwest::get(format!(
            "http://127.0.0.1:{prom_port}/api/v1/query?query=up%7Bjob%3D%22gerbang%22%7D%3D%3D1"
        ))
        .await
        .ok();
        let text = match up {
            Some(r) => r.text().await.unwrap_or_default(),
            None => String::new(),
        };
        if text.contains(&gw.admin_addr.to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the gateway: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Traffic that gives every panel and alert its data.
    let niks = sim.sample("alive", 20).await;
    let call = |user: &'static str, source: &'static str, nik: String| {
        let gw = &gw;
        async move {
            post(
                &gw.client(source),
                &gw.url("CALL_NIK"),
                call_nik(&nik, user, PASSWORD),
            )
            .await
            .1
        }
    };
    for nik in &niks[..4] {
        call("kab_01", "127.0.0.2", nik.clone()).await; // 80 % of its quota
    }
    // 100 %, then refusals: a few, a pause so Prometheus sees their series, then a spike
    // (a series born in the middle of a burst shows only what came after its first scrape).
    for nik in niks.iter().cycle().take(10) {
        call("kab_02", "127.0.0.3", nik.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for nik in niks.iter().cycle().take(60) {
        call("kab_02", "127.0.0.3", nik.clone()).await; // 100 %, then 60 refusals (a spike)
    }
    for _ in 0..6 {
        // Not the User ID the DWH traffic below uses: these lock it out.
        let (_, body) = post(
            &gw.client("127.0.0.6"),
            &gw.url("CALL_NIK"),
            call_nik(&niks[0], "dinas_02", "salah"),
        )
        .await;
        assert!(respon(&body).is_some());
    }
    // Data balikan: one record about a NIK the Pengguna looked up (accepted), one about a
    // NIK it never did (refused).
    assert_eq!(
        respon(&call("dinas_01", "127.0.0.5", niks[2].clone()).await),
        None
    );
    let batch = serde_json::json!({
        "user_id": "dinas_01", "password": PASSWORD,
        "data": [{"NIK": niks[2], "NO_REKAM_MEDIS": "RM-1"}, {"NIK": niks[19], "NO_REKAM_MEDIS": "RM-2"}],
    });
    let (_, body) = post(
        &gw.client("127.0.0.5"),
        &gw.balikan_url("dinas"),
        batch.to_string(),
    )
    .await;
    assert!(body.contains("\"DITERIMA\":1"), "{body}");
    // Card readers: valid, stale, and one while the sidecar is down.
    assert_eq!(
        respon(&reader_lookup(&gw, &key, "kab_03", "127.0.0.4", &niks[1], 0).await),
        None
    );
    // More than 3 a minute over the alert's 5 minutes.
    for _ in 0..20 {
        let stale = reader_lookup(&gw, &key, "kab_03", "127.0.0.4", &niks[1], 600).await;
        assert!(respon(&stale).is_some(), "{stale}");
    }
    sam.proc.kill();
    let down = reader_lookup(&gw, &key, "kab_03", "127.0.0.4", &niks[1], 0).await;
    assert!(respon(&down).is_some(), "{down}");
    sam.restart();
    sam.wait_fresh().await;
    // The DWH times out on most calls for a moment.
    sim.set_delay(1_000).await;
    // Most calls of the alert's window fail: more timeouts than answers.
    let slow: Vec<_> = (0..60)
        .map(|i| {
            let (url, client, body) = (
                gw.url("CALL_NIK"),
                gw.client("127.0.0.5"),
                call_nik(&niks[i % niks.len()], "dinas_01", PASSWORD),
            );
            tokio::spawn(async move { post(&client, &url, body).await })
        })
        .collect();
    for s in slow {
        s.await.unwrap();
    }
    sim.set_delay(0).await;
    // A reload that works, then a broken PKS edit both the gateway and the sidecar refuse.
    let (status, _) = gw.admin(reqwest::Method::POST, "/reload", None).await;
    assert_eq!(status, 200);
    let path = gw.pks_path("dinas.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"NIK\", ", "\"NIK_RUSAK\", ")).unwrap();

    // Keep a little traffic flowing while Prometheus scrapes, until every query has data.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last;
    let mut i = 0;
    loop {
        i += 1;
        call("dinas_01", "127.0.0.5", niks[i % niks.len()].clone()).await;
        let out = Command::new("python3")
            .arg(repo().join("monitoring/queries.py"))
            .args([
                "live",
                "--prometheus",
                &format!("http://127.0.0.1:{prom_port}"),
                "--rate-interval",
                "10s",
                "--alerts",
            ])
            .output()
            .unwrap();
        last = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let missing: Vec<&str> = last
            .lines()
            .filter(|l| l.starts_with("EMPTY") || l.starts_with("ERROR"))
            .filter(|l| {
                !NOT_CREATED
                    .iter()
                    .any(|(alert, _)| l.ends_with(&format!("alert {alert}")))
            })
            .collect();
        let alerts_loaded = last.contains("alert GerbangDown");
        if alerts_loaded && missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queries without data after 120 s: {missing:#?}\n{last}\nprometheus log:\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!("{last}");

    // The exposition itself passes promtool.
    let exposition = gw.metrics().await;
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), exposition.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

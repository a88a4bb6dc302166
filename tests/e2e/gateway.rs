//! The gateway end to end: real `gerbang serve` and `dwh-sim` processes, clients bound to
//! chosen 127.0.0.x source addresses. Each test starts its own pair on free ports.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gerbang_e2e::*;

fn user(id: &'static str, ip: &'static str) -> TestUser {
    TestUser {
        id,
        ip,
        status: "aktif",
    }
}

fn agreements() -> Vec<TestPks> {
    let rsud = TestPks::new(
        "rsud.toml",
        "1/RSUD/E2E",
        vec![
            user("rsud_01", "127.0.0.2"),
            TestUser {
                id: "rsud_02",
                ip: "127.0.0.3",
                status: "nonaktif",
            },
        ],
    );
    let portal = TestPks {
        metode: r#"["web_portal"]"#,
        ..TestPks::new(
            "portal.toml",
            "2/PORTAL/E2E",
            vec![user("portal_01", "127.0.0.4")],
        )
    };
    let asing = TestPks {
        jenis: "bhi",
        extra: "kepemilikan_asing_mayoritas = true",
        ..TestPks::new(
            "asing.toml",
            "3/ASING/E2E",
            vec![user("asing_01", "127.0.0.6")],
        )
    };
    let polisi = TestPks {
        extra: "penegak_hukum = true",
        kunci: r#"["NIK", "ELEMEN"]"#,
        ..TestPks::new(
            "polisi.toml",
            "4/POLISI/E2E",
            vec![user("polisi_01", "127.0.0.7")],
        )
    };
    let lama = TestPks {
        valid: (800, -400),
        ..TestPks::new(
            "lama.toml",
            "5/LAMA/E2E",
            vec![user("lama_01", "127.0.0.8")],
        )
    };
    vec![rsud, portal, asing, polisi, lama]
}

fn start(sim: &Sim) -> Gateway {
    Gateway::start(GatewayOptions::new(sim.addr, agreements()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_call_returns_exactly_the_pks_elements_digit_exact() {
    let sim = Sim::start(3_000);
    let gw = start(&sim);
    let client = gw.client("127.0.0.2");
    for nik in sim.sample("alive", 3).await {
        let (status, body) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", PASSWORD),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let full: serde_json::Value = serde_json::from_str(&sim.record(&nik).await).unwrap();
        let full = full.as_object().unwrap();
        // The simulator holds protected and other fields; only the PKS's pass.
        assert!(
            full.contains_key("PNYDNG_CACAT") && full.contains_key("AGAMA"),
            "{full:?}"
        );
        let expected: BTreeSet<String> = full
            .keys()
            .filter(|k| DEFAULT_ELEMENTS.contains(&k.as_str()))
            .cloned()
            .collect();
        let got: BTreeSet<String> = record_keys(&body).into_iter().collect();
        assert_eq!(got, expected, "{body}");
        // Values are the DWH's, untouched; the NIK is a JSON number with every digit.
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        for key in &got {
            assert_eq!(answer["content"][0][key], full[key], "{key}");
        }
        assert!(body.contains(&format!("\"NIK\":{nik}")), "{body}");
    }
    assert_eq!(sim.requests().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_use_the_dwh_texts_and_never_reach_the_dwh() {
    let sim = Sim::start(1_000);
    let gw = start(&sim);
    let nik = sim.sample("alive", 1).await.remove(0);
    let ok = |user: &str| call_nik(&nik, user, PASSWORD);
    // (what, source address, body, extra header, expected RESPON)
    type Case<'a> = (
        &'a str,
        &'a str,
        String,
        Option<(&'a str, &'a str)>,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "wrong password",
            "127.0.0.2",
            call_nik(&nik, "rsud_01", "salah"),
            None,
            "Login Gagal",
        ),
        (
            "unknown user",
            "127.0.0.2",
            ok("tidak_ada"),
            None,
            "IP Address Tidak Sesuai",
        ),
        (
            "unregistered source",
            "127.0.0.9",
            ok("rsud_01"),
            None,
            "IP Client Tidak Terdaftar",
        ),
        (
            "another user's address",
            "127.0.0.4",
            ok("rsud_01"),
            None,
            "IP Address Tidak Sesuai",
        ),
        (
            "spoofed X-Forwarded-For",
            "127.0.0.9",
            ok("rsud_01"),
            Some(("X-Forwarded-For", "127.0.0.2")),
            "IP Client Tidak Terdaftar",
        ),
        (
            "ip_user not the peer",
            "127.0.0.2",
            format!(
                r#"{{"nik":"{nik}","user_id":"rsud_01","password":"{PASSWORD}","ip_user":"127.0.0.50"}}"#
            ),
            None,
            "IP Address Tidak Sesuai",
        ),
        (
            "expired PKS",
            "127.0.0.8",
            ok("lama_01"),
            None,
            "Akses di Luar Waktu yang Diizinkan",
        ),
        (
            "suspended user",
            "127.0.0.3",
            ok("rsud_02"),
            None,
            "User ID Tidak Aktif",
        ),
        (
            "channel not granted",
            "127.0.0.4",
            ok("portal_01"),
            None,
            "Akses Tidak Diizinkan oleh PKS",
        ),
        (
            "foreign majority CALL_NIK",
            "127.0.0.6",
            ok("asing_01"),
            None,
            "Akses Tidak Diizinkan oleh PKS",
        ),
        (
            "malformed JSON",
            "127.0.0.2",
            "{\"nik\": ".into(),
            None,
            "Parameter Tidak Lengkap",
        ),
        (
            "duplicate key in another case",
            "127.0.0.2",
            format!(
                r#"{{"nik":"{nik}","NIK":"{nik}","user_id":"rsud_01","password":"{PASSWORD}"}}"#
            ),
            None,
            "Parameter Tidak Lengkap",
        ),
        (
            "invalid NIK",
            "127.0.0.2",
            call_nik("2001011501900001", "rsud_01", PASSWORD),
            None,
            "NIK Tidak Sesuai Format Dukcapil",
        ),
        (
            "missing NIK",
            "127.0.0.2",
            format!(r#"{{"user_id":"rsud_01","password":"{PASSWORD}"}}"#),
            None,
            "Parameter Tidak Lengkap",
        ),
        (
            "empty password",
            "127.0.0.2",
            call_nik(&nik, "rsud_01", ""),
            None,
            "User ID, Password atau IP Kosong",
        ),
        (
            "oversized body",
            "127.0.0.2",
            format!(
                r#"{{"nik":"{nik}","user_id":"rsud_01","password":"{PASSWORD}","pad":"{}"}}"#,
                "x".repeat(5000)
            ),
            None,
            "Permintaan Terlalu Besar",
        ),
        (
            "card reader without sidecar",
            "127.0.0.2",
            ok("rsud_01"),
            Some(("X-SAM-Id", "SAM-1")),
            "Validasi Card Reader Gagal",
        ),
    ];
    for (what, source, body, header, expected) in cases {
        let client = gw.client(source);
        let mut req = client.post(gw.url("CALL_NIK"));
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        let (status, answer) = post_with(req, body).await;
        assert_eq!(status, 200, "{what}: dwh mode answers 200: {answer}");
        assert_eq!(
            respon(&answer).as_deref(),
            Some(expected),
            "{what}: {answer}"
        );
        assert!(
            !answer.contains(&nik),
            "{what}: a refusal must not echo the NIK: {answer}"
        );
    }
    let client = gw.client("127.0.0.2");
    let (_, answer) = post(&client, &gw.url("CALL_NIK_SEMUA"), ok("rsud_01")).await;
    assert_eq!(respon(&answer).as_deref(), Some("Layanan Tidak Dikenal"));
    let answer = client
        .get(gw.url("CALL_NIK"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(respon(&answer).as_deref(), Some("Metode Tidak Diizinkan"));
    assert_eq!(
        sim.requests().await,
        0,
        "no refused request may reach the DWH"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_mode_answers_with_http_statuses() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions {
        status_mode: "rest",
        ..GatewayOptions::new(sim.addr, agreements())
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    let url = gw.url("CALL_NIK");
    let cases = [
        ("127.0.0.2", call_nik(&nik, "rsud_01", PASSWORD), 200),
        ("127.0.0.2", call_nik(&nik, "rsud_01", "salah"), 401),
        ("127.0.0.9", call_nik(&nik, "rsud_01", PASSWORD), 403),
        ("127.0.0.3", call_nik(&nik, "rsud_02", PASSWORD), 403),
        (
            "127.0.0.2",
            call_nik("3201013501900001", "rsud_01", PASSWORD),
            400,
        ),
        ("127.0.0.2", "x".repeat(5000), 413),
    ];
    for (source, body, expected) in cases {
        let (status, answer) = post(&gw.client(source), &url, body).await;
        assert_eq!(status, expected, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dwh_down_gives_a_clear_error() {
    // Nothing listens on this port.
    let dead = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::start(GatewayOptions {
        status_mode: "rest",
        ..GatewayOptions::new(dead, agreements())
    });
    let started = Instant::now();
    let (status, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik("3201011501900001", "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Layanan DWH Tidak Tersedia")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_dwh_is_cut_off_at_the_configured_timeout_and_recovers() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions {
        timeout_ms: 1_000,
        ..GatewayOptions::new(sim.addr, agreements())
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    let client = gw.client("127.0.0.2");
    // Log in once so the timed request does not include the argon2 check.
    let (_, answer) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&answer), None, "{answer}");
    sim.set_delay(6_000).await;
    let started = Instant::now();
    let (_, answer) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Layanan DWH Tidak Merespons"),
        "{answer}"
    );
    // Cut off by the 1 s timeout, not by the DWH's 6 s.
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    sim.set_delay(0).await;
    let (_, answer) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&answer), None, "recovered: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_majority_verification_answers_only_verdicts() {
    let sim = Sim::start(1_000);
    let gw = start(&sim);
    let nik = sim.sample("alive", 1).await.remove(0);
    let full: serde_json::Value = serde_json::from_str(&sim.record(&nik).await).unwrap();
    let name = full["NAMA_LGKP"].as_str().unwrap();
    let body = format!(
        r#"{{"NIK":"{nik}","USER_ID":"asing_01","PASSWORD":"{PASSWORD}","TRESHOLD":"90","NAMA_LGKP":"{name}","ALAMAT":"JALAN LAIN SAMA SEKALI","AGAMA":"ISLAM"}}"#
    );
    let (_, answer) = post(
        &gw.client("127.0.0.6"),
        &gw.url("CALL_VERIFY_BY_ELEMEN"),
        body,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let record = v["content"][0]
        .as_object()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        record["NAMA_LGKP"].as_str().unwrap().starts_with("Sesuai"),
        "{answer}"
    );
    assert!(
        record["ALAMAT"]
            .as_str()
            .unwrap()
            .starts_with("Tidak Sesuai"),
        "{answer}"
    );
    // AGAMA is not an element of the PKS: no verdict on it either.
    assert!(!record.contains_key("AGAMA"), "{answer}");
    for (k, value) in record {
        let s = value
            .as_str()
            .unwrap_or_else(|| panic!("{k} is not a verdict: {answer}"));
        assert!(
            s.starts_with("Sesuai") || s.starts_with("Tidak Sesuai"),
            "{k}: {s}"
        );
    }
    assert!(!answer.contains(name), "no value may pass: {answer}");
    assert!(!answer.contains(&nik), "not even the NIK: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_elements_only_for_law_enforcement() {
    let sim = Sim::start(2_000);
    let gw = start(&sim);
    let nik = sim.sample("alive", 1).await.remove(0);
    let full: serde_json::Value = serde_json::from_str(&sim.record(&nik).await).unwrap();
    let search = |user: &str| {
        format!(
            r#"{{"USER_ID":"{user}","PASSWORD":"{PASSWORD}","NAMA_LGKP":"{}","TGL_LHR":"{}"}}"#,
            full["NAMA_LGKP"].as_str().unwrap(),
            full["TGL_LHR"].as_str().unwrap()
        )
    };
    let (_, answer) = post(
        &gw.client("127.0.0.7"),
        &gw.url("CALL_BY_ELEMEN"),
        search("polisi_01"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let records = v["content"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["NIK"].as_u64().map(|n| n.to_string()) == Some(nik.clone())),
        "{answer}"
    );
    for r in records {
        assert!(
            r.as_object()
                .unwrap()
                .keys()
                .all(|k| DEFAULT_ELEMENTS.contains(&k.as_str())),
            "{answer}"
        );
    }
    let (_, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_BY_ELEMEN"),
        search("rsud_01"),
    )
    .await;
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Akses Tidak Diizinkan oleh PKS")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_lock_out() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions {
        max_failures: 3,
        ..GatewayOptions::new(sim.addr, agreements())
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    let client = gw.client("127.0.0.2");
    for _ in 0..3 {
        let (_, answer) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", "tebakan"),
        )
        .await;
        assert_eq!(respon(&answer).as_deref(), Some("Login Gagal"));
    }
    let (_, answer) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Login Gagal, Akun Dikunci Sementara"),
        "{answer}"
    );
    assert_eq!(sim.requests().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_lookups() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions {
        tls: true,
        ..GatewayOptions::new(sim.addr, agreements())
    });
    let nik = sim.sample("female", 1).await.remove(0);
    let (status, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(status, 200);
    assert!(answer.contains(&format!("\"NIK\":{nik}")), "{answer}");
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::builder()
        .local_address("127.0.0.2".parse().ok())
        .build()
        .unwrap();
    let r = plain
        .post(format!("http://{}/dukcapil/get_json/X/CALL_NIK", gw.addr))
        .body(call_nik(&nik, "rsud_01", PASSWORD))
        .send()
        .await;
    assert!(r.is_err() || !r.unwrap().status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_pks_edit_and_a_broken_edit_keeps_the_running_set() {
    let sim = Sim::start(1_000);
    let gw = start(&sim);
    let nik = sim.sample("alive", 1).await.remove(0);
    let client = gw.client("127.0.0.2");
    let (_, answer) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&answer), None, "{answer}");

    // Deactivate the User ID (an art. 45 sanction) and reload.
    let path = gw.pks_path("rsud.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let deactivated = text.replacen(
        "ip_lan = [\"127.0.0.2\"]\nkuota_harian = 1000\nstatus = \"aktif\"",
        "ip_lan = [\"127.0.0.2\"]\nkuota_harian = 1000\nstatus = \"nonaktif\"",
        1,
    );
    assert_ne!(deactivated, text);
    std::fs::write(&path, &deactivated).unwrap();
    gw.proc.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, answer) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", PASSWORD),
        )
        .await;
        if respon(&answer).as_deref() == Some("User ID Tidak Aktif") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edit did not take effect: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken edit that would reactivate the user: refused, the running set stays.
    let broken = text.replace("\"NAMA_LGKP\"", "\"NAMA_LENGKAP\"");
    std::fs::write(&path, broken).unwrap();
    gw.proc.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.proc.stderr().contains("reload refused") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            gw.proc.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = gw.proc.stderr();
    assert!(
        log.contains("rsud.toml:") && log.contains("NAMA_LENGKAP"),
        "{log}"
    );
    let (_, answer) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&answer).as_deref(), Some("User ID Tidak Aktif"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dwh_status_codes_pass_through_and_logs_hold_no_nik_or_password() {
    let sim = Sim::start(2_000);
    let gw = start(&sim);
    let client = gw.client("127.0.0.2");
    for (kind, code) in [("deceased", "11"), ("duplicate", "12"), ("inactive", "14")] {
        let nik = sim.sample(kind, 1).await.remove(0);
        let (_, answer) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", PASSWORD),
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["content"][0]["RESPONSE_CODE"], code, "{answer}");
    }
    let (_, answer) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik("9601010101010001", "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&answer).as_deref(), Some("Data Tidak Ditemukan"));
    // The four requests' lines, the last one included.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = gw.proc.stderr();
    while log.matches("gerbang::request").count() < 4 {
        assert!(Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = gw.proc.stderr();
    }
    assert!(
        !log.contains("9601010101010001") && !log.contains(PASSWORD),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_to_a_tls_dwh_verified_with_its_ca() {
    let sim = Sim::start_tls(1_000);
    let gw = Gateway::start(GatewayOptions {
        upstream_ca: Some(sim.ca()),
        ..GatewayOptions::new(sim.addr, agreements())
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    let (_, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert!(answer.contains(&format!("\"NIK\":{nik}")), "{answer}");
    assert_eq!(sim.requests().await, 1);

    // A DWH whose certificate the configured CA did not sign is not talked to.
    let other = Sim::start_tls(1_000);
    let gw = Gateway::start(GatewayOptions {
        upstream_ca: Some(sim.ca()),
        ..GatewayOptions::new(other.addr, agreements())
    });
    let (_, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Layanan DWH Tidak Tersedia"),
        "{answer}"
    );
    assert_eq!(other.requests().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_answer_is_framed_so_the_connection_stays_open() {
    use std::io::{BufRead, BufReader, Read, Write};
    let sim = Sim::start(1_000);
    let gw = start(&sim);
    let nik = sim.sample("alive", 1).await.remove(0);
    // A raw connection from rsud_01's registered address.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(gw.addr).await.unwrap().into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    let body = call_nik(&nik, "rsud_01", PASSWORD);
    let answers = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut answers = Vec::new();
        // Two lookups on one connection: the second is answered only if the first was
        // framed (with its length) and the connection stayed open.
        for _ in 0..2 {
            write!(
                writer,
                "POST /dukcapil/get_json/UJI/CALL_NIK HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            let mut length = None;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = Some(n.trim().parse::<usize>().unwrap());
                }
                if line == "\r\n" {
                    break;
                }
            }
            let length =
                length.unwrap_or_else(|| panic!("a forwarded answer must be framed: {status}"));
            let mut text = vec![0; length];
            reader.read_exact(&mut text).unwrap();
            answers.push(String::from_utf8(text).unwrap());
        }
        answers
    })
    .await
    .unwrap();
    for answer in answers {
        assert!(answer.contains(&format!("\"NIK\":{nik}")), "{answer}");
    }
    assert_eq!(sim.requests().await, 2);
}

/// Reads one HTTP/1.1 request (header and `Content-Length` body); `None` at end of stream.
async fn read_request(
    reader: &mut tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> Option<(String, Vec<u8>)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut start = String::new();
    if reader.read_line(&mut start).await.ok()? == 0 {
        return None;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.ok()?;
        if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = n.trim().parse().ok()?;
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    let path = start.split(' ').nth(1)?.to_string();
    Some((path, body))
}

/// A DWH that closes each kept-alive connection when a second request arrives on it, as a
/// DWH does whose idle timeout ends just as the gateway reuses the connection. The first
/// request of each connection is relayed to `sim`. Returns the address and a count of
/// requests dropped that way.
async fn closing_dwh(sim: &Sim) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&dropped);
    let upstream = format!("http://{}", sim.addr);
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let (client, upstream, counted) = (client.clone(), upstream.clone(), counted.clone());
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(read);
                let Some((path, body)) = read_request(&mut reader).await else {
                    return;
                };
                let answer = client
                    .post(format!("{upstream}{path}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    answer.len()
                );
                write.write_all(head.as_bytes()).await.unwrap();
                write.write_all(&answer).await.unwrap();
                if read_request(&mut reader).await.is_some() {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                // Dropping both halves closes the connection without an answer.
            });
        }
    });
    (addr, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_on_a_pooled_connection_the_dwh_closed_is_sent_again_on_a_new_one() {
    let sim = Sim::start(1_000);
    let (dwh, dropped) = closing_dwh(&sim).await;
    let gw = Gateway::start(GatewayOptions::new(dwh, agreements()));
    let niks = sim.sample("alive", 3).await;
    let client = gw.client("127.0.0.2");
    for nik in &niks {
        let (status, answer) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(nik, "rsud_01", PASSWORD),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(respon(&answer), None, "{answer}");
        assert!(answer.contains(&format!("\"NIK\":{nik}")), "{answer}");
    }
    // The second and third lookups met a pooled connection that was then closed.
    assert!(
        dropped.load(Ordering::SeqCst) >= 2,
        "the stale connection was not reused"
    );
    assert_eq!(sim.requests().await, 3, "each lookup reached the DWH once");
}

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

/// A simulator of `people`, a gateway in front of it, and one living person: their NIK and
/// their whole record as the simulator holds it.
async fn one_person(people: usize) -> (Sim, Gateway, String, serde_json::Value) {
    let sim = Sim::start(people);
    let gw = start(&sim);
    let nik = sim.sample("alive", 1).await.remove(0);
    let full = serde_json::from_str(&sim.record(&nik).await).unwrap();
    (sim, gw, nik, full)
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
        (
            "a key the service does not take",
            "127.0.0.2",
            format!(r#"{{"nik":"{nik}","user_id":"rsud_01","password":"{PASSWORD}","debug":"1"}}"#),
            None,
            "Parameter Tidak Dikenal",
        ),
        (
            "a key outside ASCII that folds to nik",
            "127.0.0.2",
            format!(r#"{{"nık":"{nik}","user_id":"rsud_01","password":"{PASSWORD}"}}"#),
            None,
            "Parameter Tidak Dikenal",
        ),
        (
            "a user_id that cannot be a User ID",
            "127.0.0.2",
            call_nik(&nik, &"r".repeat(65), PASSWORD),
            None,
            "User ID Tidak Sesuai Format",
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
    // A body on a GET is ambiguous framing: 400 in both status modes, the connection closed.
    // (`hostile.rs` sends every ambiguous shape, and the body trickled past its deadline, 29.)
    let r = client
        .get(gw.url("CALL_NIK"))
        .body(ok("rsud_01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let answer = r.text().await.unwrap();
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Format Permintaan HTTP Tidak Sah")
    );
    assert_eq!(response_code(&answer).as_deref(), Some("30"));
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
    let (_sim, gw, nik, full) = one_person(1_000).await;
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
    let (sim, gw, nik, full) = one_person(2_000).await;
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
    // A search with nothing to look for (no element, or only empty ones) never reaches
    // the DWH.
    let forwarded = sim.requests().await;
    for body in [
        format!(r#"{{"USER_ID":"polisi_01","PASSWORD":"{PASSWORD}"}}"#),
        format!(
            r#"{{"USER_ID":"polisi_01","PASSWORD":"{PASSWORD}","NAMA_LGKP":" ","TGL_LHR":null}}"#
        ),
    ] {
        let (_, answer) = post(&gw.client("127.0.0.7"), &gw.url("CALL_BY_ELEMEN"), body).await;
        assert_eq!(
            respon(&answer).as_deref(),
            Some("Parameter Tidak Lengkap"),
            "{answer}"
        );
    }
    assert_eq!(
        sim.requests().await,
        forwarded,
        "an empty search reached the DWH"
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
    let niks = sim.sample("alive", 20).await;
    let client = gw.client("127.0.0.2");
    // A lookup finds the previous one's connection in the pool only if the gateway put it
    // back before the client's next request arrived: on a loaded machine it sometimes has
    // not, so lookups go on until two of them met a pooled connection the DWH then closed.
    let mut sent = 0;
    for nik in &niks {
        let (status, answer) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(nik, "rsud_01", PASSWORD),
        )
        .await;
        sent += 1;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(respon(&answer), None, "{answer}");
        assert!(answer.contains(&format!("\"NIK\":{nik}")), "{answer}");
        if dropped.load(Ordering::SeqCst) >= 2 {
            break;
        }
    }
    assert!(
        dropped.load(Ordering::SeqCst) >= 2,
        "the stale connection was not reused in {sent} lookups"
    );
    assert_eq!(
        sim.requests().await,
        sent,
        "each lookup reached the DWH once"
    );
}

/// One request written by hand from `source`, so the target reaches the gateway exactly as
/// written (client libraries resolve `..` and re-encode); returns the answer's body.
async fn raw_post(gw: &Gateway, source: &str, target: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(gw.addr).await.unwrap();
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway answers and closes")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{answer}"));
    body.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_reaches_the_dwh_is_rebuilt_from_what_was_checked() {
    let (sim, gw, nik, full) = one_person(2_000).await;
    let name = full["NAMA_LGKP"].as_str().unwrap();
    let born = full["TGL_LHR"].as_str().unwrap();
    let lookup = format!(
        r#"{{"nik":"{nik}","user_id":"rsud_01","password":"{PASSWORD}","ip_user":"127.0.0.2"}}"#
    );
    // (what, source, target as sent, body as sent, target and body the DWH must receive)
    let cases: Vec<(&str, &str, String, String, &str, String)> = vec![
        (
            "a query string and another institution in the path",
            "127.0.0.2",
            "/dukcapil/get_json/LAIN/CALL_NIK?user_id=admin&debug=1".into(),
            call_nik(&nik, "rsud_01", PASSWORD),
            "/dukcapil/get_json/rsud/CALL_NIK",
            lookup.clone(),
        ),
        (
            "the regional form naming another User ID",
            "127.0.0.2",
            "/dukcapil/get_json/33-13/orang_lain/call_nik".into(),
            call_nik(&nik, "rsud_01", PASSWORD),
            "/dukcapil/get_json/rsud/CALL_NIK",
            lookup.clone(),
        ),
        (
            "keys in other cases and order, escaped, the NIK a number, ip_user the peer",
            "127.0.0.2",
            "/dukcapil/get_json/UJI/call_nik".into(),
            format!(
                r#"{{"Ip_User":"127.0.0.2","PASSWORD":"{PASSWORD}","\u0055SER_ID":"rsud_01","NIK":{nik}}}"#
            ),
            "/dukcapil/get_json/rsud/CALL_NIK",
            lookup.clone(),
        ),
        (
            "a verification: upper-case keys, the threshold as the DWH spells it, null claims dropped",
            "127.0.0.6",
            "/dukcapil/get_json/UJI/CALL_VERIFY_BY_ELEMEN".into(),
            format!(
                r#"{{"nik":{nik},"user_id":"asing_01","password":"{PASSWORD}","threshold":80,"nama_lgkp":"{name}","no_rt":5,"alamat":null}}"#
            ),
            "/dukcapil/get_json/asing/CALL_VERIFY_BY_ELEMEN",
            format!(
                r#"{{"NIK":"{nik}","USER_ID":"asing_01","PASSWORD":"{PASSWORD}","IP_USER":"127.0.0.6","TRESHOLD":"80","NAMA_LGKP":"{name}","NO_RT":5}}"#
            ),
        ),
        (
            "a search by elements",
            "127.0.0.7",
            "/dukcapil/get_json/X/call_by_elemen".into(),
            format!(
                r#"{{"user_id":"polisi_01","password":"{PASSWORD}","tgl_lhr":"{born}","Nama_Lgkp":"{name}"}}"#
            ),
            "/dukcapil/get_json/polisi/CALL_BY_ELEMEN",
            format!(
                r#"{{"USER_ID":"polisi_01","PASSWORD":"{PASSWORD}","IP_USER":"127.0.0.7","TGL_LHR":"{born}","NAMA_LGKP":"{name}"}}"#
            ),
        ),
    ];
    for (what, source, target, body, want_target, want_body) in cases {
        let answer = raw_post(&gw, source, &target, &body).await;
        assert_eq!(respon(&answer), None, "{what}: {answer}");
        let got = sim.last_request().await;
        assert_eq!(got["target"], want_target, "{what}");
        assert_eq!(got["body"], want_body.as_str(), "{what}");
        let headers: BTreeSet<(String, String)> = got["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let names: BTreeSet<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            BTreeSet::from(["host", "content-type", "content-length", "x-forwarded-for"]),
            "{what}: {headers:?}"
        );
        assert!(
            headers.contains(&("x-forwarded-for".to_string(), source.to_string())),
            "{what}: {headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_paths_and_keys_are_refused_before_the_dwh() {
    let sim = Sim::start(1_000);
    let gw = start(&sim);
    let nik = sim.sample("alive", 1).await.remove(0);
    let ok = call_nik(&nik, "rsud_01", PASSWORD);
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "a relative segment",
            "/dukcapil/get_json/../CALL_NIK".into(),
            ok.clone(),
            "22",
        ),
        (
            "an encoded slash",
            "/dukcapil/get_json/UJI%2F..%2Fadmin/CALL_NIK".into(),
            ok.clone(),
            "22",
        ),
        (
            "a path parameter",
            "/dukcapil/get_json/UJI;jsessionid=x/CALL_NIK".into(),
            ok.clone(),
            "22",
        ),
        (
            "a parameter on the service",
            "/dukcapil/get_json/UJI/CALL_NIK;x=1".into(),
            ok.clone(),
            "22",
        ),
        (
            "a relative regional form",
            "/dukcapil/get_json/33-13/../CALL_NIK".into(),
            ok.clone(),
            "22",
        ),
        (
            "a dotless i (Unicode lower case of NIK is nık)",
            "/dukcapil/get_json/UJI/CALL_NIK".into(),
            format!(
                r#"{{"nik":"{nik}","nık":"3201011501900001","user_id":"rsud_01","password":"{PASSWORD}"}}"#
            ),
            "27",
        ),
        (
            "a dotted capital I",
            "/dukcapil/get_json/UJI/CALL_NIK".into(),
            format!(r#"{{"NİK":"{nik}","user_id":"rsud_01","password":"{PASSWORD}"}}"#),
            "27",
        ),
        (
            "a long s (uſer_id)",
            "/dukcapil/get_json/UJI/CALL_NIK".into(),
            format!(
                r#"{{"nik":"{nik}","user_id":"rsud_01","uſer_id":"lain","password":"{PASSWORD}"}}"#
            ),
            "27",
        ),
        (
            "a key with a space",
            "/dukcapil/get_json/UJI/CALL_NIK".into(),
            format!(r#"{{"nik ":"{nik}","user_id":"rsud_01","password":"{PASSWORD}"}}"#),
            "27",
        ),
        (
            "a key CALL_NIK does not take",
            "/dukcapil/get_json/UJI/CALL_NIK".into(),
            format!(
                r#"{{"nik":"{nik}","NAMA_LGKP":"X","user_id":"rsud_01","password":"{PASSWORD}"}}"#
            ),
            "27",
        ),
        (
            "the same key twice in two cases",
            "/dukcapil/get_json/UJI/CALL_NIK".into(),
            format!(
                r#"{{"nik":"{nik}","User_Id":"rsud_01","user_id":"lain","password":"{PASSWORD}"}}"#
            ),
            "07",
        ),
    ];
    for (what, target, body, code) in cases {
        let answer = raw_post(&gw, "127.0.0.2", &target, &body).await;
        assert_eq!(
            response_code(&answer).as_deref(),
            Some(code),
            "{what}: {answer}"
        );
    }
    assert_eq!(sim.requests().await, 0, "nothing smuggled reached the DWH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dwh_answering_about_the_wrong_thing_is_refused_refunded_and_counted() {
    let (sim, gw, nik, full) = one_person(1_000).await;
    let name = full["NAMA_LGKP"].as_str().unwrap();

    // A verification answered with values (art. 29(4)): before, the foreign-majority
    // client got an empty record `{}` and was charged a hit.
    let body = format!(
        r#"{{"NIK":"{nik}","USER_ID":"asing_01","PASSWORD":"{PASSWORD}","TRESHOLD":"90","NAMA_LGKP":"{name}"}}"#
    );
    let client = gw.client("127.0.0.6");
    let (_, verdicts) = post(&client, &gw.url("CALL_VERIFY_BY_ELEMEN"), body.clone()).await;
    assert_eq!(respon(&verdicts), None, "{verdicts}");
    let left = quota_limiter(&verdicts).unwrap();
    sim.misbehave("verify_values").await;
    let (_, answer) = post(&client, &gw.url("CALL_VERIFY_BY_ELEMEN"), body).await;
    assert_eq!(response_code(&answer).as_deref(), Some("31"), "{answer}");
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Jawaban DWH Tidak Dapat Diproses")
    );
    assert_eq!(quota_limiter(&answer), Some(left), "the hit is refunded");
    assert!(!answer.contains(name) && !answer.contains(&nik), "{answer}");

    // A lookup answered with another person's record, through the API and the portal.
    sim.misbehave("none").await;
    let rsud = gw.client("127.0.0.2");
    let (_, found) = post(
        &rsud,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&found), None, "{found}");
    let left = quota_limiter(&found).unwrap();
    sim.misbehave("other_person").await;
    let (_, answer) = post(
        &rsud,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(response_code(&answer).as_deref(), Some("31"), "{answer}");
    assert_eq!(quota_limiter(&answer), Some(left), "the hit is refunded");
    assert!(
        record_keys(&answer).iter().all(|k| k.starts_with("RESPON")),
        "{answer}"
    );
    let browser = gw.portal_client("127.0.0.4");
    let cookie = gw.portal_login(&browser, "portal_01").await;
    let (status, answer) = gw.portal_search(&browser, &cookie, &nik).await;
    assert_eq!(status, 502);
    assert_eq!(response_code(&answer).as_deref(), Some("31"), "{answer}");
    assert!(
        record_keys(&answer).iter().all(|k| k.starts_with("RESPON")),
        "{answer}"
    );

    assert_eq!(sim.requests().await, 4);
    let wanted = [
        "gerbang_upstream_errors_total{kind=\"not_verdicts\"} 1",
        "gerbang_upstream_errors_total{kind=\"other_nik\"} 2",
    ];
    let metrics = gw.metrics_with(&wanted).await;
    for line in wanted {
        assert!(metrics.contains(line), "{line}:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_client_of_a_dual_stack_listener_is_decided_by_its_ipv4_address() {
    let sim = Sim::start(1_000);
    let mut gw = start(&sim);
    // Ditjen's rules plus one that reads the peer address.
    let rules = gw.dir.path().join("policies");
    std::fs::create_dir_all(&rules).unwrap();
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        rules.join("cabang.cedar"),
        "@id(\"not-from-127-0-0-2\")\n@code(\"21\")\nforbid (principal, action in Gerbang::Action::\"Lookup\", resource)\nwhen { context.peer_ip.isInRange(ip(\"127.0.0.2/32\")) };\n",
    )
    .unwrap();
    let config_path = gw.dir.path().join("gerbang.toml");
    let config = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace(
            &format!("address = \"{}\"", gw.addr),
            &format!("address = \"[::]:{}\"", gw.addr.port()),
        )
        .replace(
            &format!("dir = \"{}\"", policies_dir().display()),
            &format!("dir = \"{}\"", rules.display()),
        );
    std::fs::write(&config_path, config).unwrap();
    gw.restart();

    // IPv4 clients reach the dual-stack listener as ::ffff:127.0.0.x.
    let nik = sim.sample("alive", 1).await.remove(0);
    let (_, answer) = post(
        &gw.client("127.0.0.7"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "polisi_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&answer), None, "{answer}");
    let (_, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Akses Tidak Diizinkan oleh PKS"),
        "Cedar must see 127.0.0.2, not ::ffff:127.0.0.2: {answer}"
    );
    let log = gw
        .proc
        .stderr_with(&["not-from-127-0-0-2", "peer=Some(127.0.0.2)"])
        .await;
    assert!(!log.contains("::ffff:"), "{log}");
    assert_eq!(sim.requests().await, 1);
}

//! Daily NIK-hit quotas end to end: exactness under concurrency, crashes and restarts,
//! refunds, mid-day changes, and the answers clients see.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gerbang_e2e::*;

fn hospital(kuota: u32) -> Vec<TestPks> {
    vec![TestPks {
        kuota,
        ..TestPks::new(
            "rsud.toml",
            "1/RSUD/Q",
            vec![TestUser {
                id: "rsud_01",
                ip: "127.0.0.2",
                status: "aktif",
            }],
        )
    }]
}

/// Fires `n` concurrent lookups; returns how many came back with data or a DWH answer.
async fn burst(gw: &Gateway, nik: &str, n: usize) -> (usize, usize) {
    let client = gw.client("127.0.0.2");
    let url = gw.url("CALL_NIK");
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url, body) = (
                client.clone(),
                url.clone(),
                call_nik(nik, "rsud_01", PASSWORD),
            );
            tokio::spawn(async move { post(&client, &url, body).await })
        })
        .collect();
    let (mut served, mut exhausted) = (0, 0);
    for t in tasks {
        let (_, body) = t.await.unwrap();
        match response_code(&body).as_deref() {
            None => served += 1,
            Some("05") => exhausted += 1,
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    (served, exhausted)
}

async fn warm_up(gw: &Gateway, nik: &str) {
    // One lookup logs the User ID in (argon2) so the bursts measure the meter only.
    let (_, body) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(response_code(&body), None, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_against_a_quota_of_75_forward_exactly_75() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions::new(sim.addr, hospital(75)));
    let nik = sim.sample("alive", 1).await.remove(0);
    warm_up(&gw, &nik).await;
    let (served, exhausted) = burst(&gw, &nik, 500).await;
    assert_eq!((served, exhausted), (74, 426));
    assert_eq!(
        sim.requests().await,
        75,
        "exactly the quota reached the DWH"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_answers_say_so_with_headers_and_retry_after_until_wib_midnight() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions {
        status_mode: "rest",
        ..GatewayOptions::new(sim.addr, hospital(2))
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    let client = gw.client("127.0.0.2");
    for remaining in [1, 0] {
        let (status, headers, body) = post_full(
            client.post(gw.url("CALL_NIK")),
            call_nik(&nik, "rsud_01", PASSWORD),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(quota_limiter(&body), Some(remaining), "{body}");
        assert_eq!(headers["x-quota-limit"], "2");
        assert_eq!(headers["x-quota-remaining"], remaining.to_string().as_str());
    }
    let (status, headers, body) = post_full(
        client.post(gw.url("CALL_NIK")),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        respon(&body).as_deref(),
        Some("Kuota Akses Hari ini telah Habis")
    );
    assert_eq!(response_code(&body).as_deref(), Some("05"));
    assert_eq!(quota_limiter(&body), Some(0));
    // Retry-After points at the next 00:00 WIB.
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    let now_wib = chrono::Utc::now() + chrono::Duration::hours(7);
    let midnight = now_wib
        .date_naive()
        .succ_opt()
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let expected = (midnight - now_wib.naive_utc()).num_seconds() as u64;
    assert!(
        retry.abs_diff(expected) <= 5,
        "Retry-After {retry}, expected about {expected}"
    );
    assert_eq!(sim.requests().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dwh_failure_refunds_the_hit() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions {
        timeout_ms: 500,
        ..GatewayOptions::new(sim.addr, hospital(3))
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    warm_up(&gw, &nik).await;
    sim.set_delay(3_000).await;
    let client = gw.client("127.0.0.2");
    for _ in 0..3 {
        let (_, body) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", PASSWORD),
        )
        .await;
        assert_eq!(
            respon(&body).as_deref(),
            Some("Layanan DWH Tidak Merespons"),
            "{body}"
        );
        assert_eq!(
            quota_limiter(&body),
            Some(2),
            "the timed-out hit is given back: {body}"
        );
    }
    sim.set_delay(0).await;
    // 1 used by the warm-up: two lookups left, not zero.
    for remaining in [1, 0] {
        let (_, body) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", PASSWORD),
        )
        .await;
        assert_eq!(quota_limiter(&body), Some(remaining), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_counts_and_refused_requests_do_not() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions::new(sim.addr, hospital(10)));
    let client = gw.client("127.0.0.2");
    let (_, body) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik("9601010101010001", "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(respon(&body).as_deref(), Some("Data Tidak Ditemukan"));
    assert_eq!(
        quota_limiter(&body),
        Some(9),
        "the DWH did the work: {body}"
    );
    let (_, body) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik("2001011501900001", "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(
        respon(&body).as_deref(),
        Some("NIK Tidak Sesuai Format Dukcapil")
    );
    let nik = sim.sample("alive", 1).await.remove(0);
    let (_, body) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(
        quota_limiter(&body),
        Some(8),
        "the refused request took nothing: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_never_lets_the_day_exceed_the_quota() {
    let sim = Sim::start(1_000);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, hospital(75)));
    let nik = sim.sample("alive", 1).await.remove(0);
    warm_up(&gw, &nik).await;
    // Load in flight while the gateway is killed.
    let client = gw.client("127.0.0.2");
    let url = gw.url("CALL_NIK");
    let load: Vec<_> = (0..60)
        .map(|_| {
            let (client, url, body) = (
                client.clone(),
                url.clone(),
                call_nik(&nik, "rsud_01", PASSWORD),
            );
            tokio::spawn(async move { client.post(url).body(body).send().await.is_ok() })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.requests().await < 20 {
        assert!(Instant::now() < deadline, "load did not reach the DWH");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    gw.proc.signal("KILL");
    for t in load {
        let _ = t.await;
    }
    gw.restart();
    warm_up_allowing_exhaustion(&gw, &nik).await;
    let (_, _) = burst(&gw, &nik, 200).await;
    let total = sim.requests().await;
    assert!(
        total <= 75,
        "{total} lookups reached the DWH today with a quota of 75"
    );
    // Hits reserved for requests in flight at the kill, and the rest of the block, are
    // lost for the day: the price of never granting a hit twice. The restarted gateway
    // serves again (data or an honest "exhausted").
    let (_, body) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert!(
        matches!(response_code(&body).as_deref(), None | Some("05")),
        "{body}"
    );
}

async fn warm_up_allowing_exhaustion(gw: &Gateway, nik: &str) {
    let (_, body) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(nik, "rsud_01", PASSWORD),
    )
    .await;
    assert!(
        matches!(response_code(&body).as_deref(), None | Some("05")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_keeps_exact_counts() {
    let sim = Sim::start(1_000);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, hospital(20)));
    let nik = sim.sample("alive", 1).await.remove(0);
    for _ in 0..5 {
        warm_up(&gw, &nik).await;
    }
    gw.stop();
    gw.restart();
    let (served, _) = burst(&gw, &nik, 40).await;
    assert_eq!(
        served, 15,
        "the unused part of the reserved block was released"
    );
    assert_eq!(sim.requests().await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_reduced_mid_day_applies_at_once() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions::new(sim.addr, hospital(50)));
    let nik = sim.sample("alive", 1).await.remove(0);
    for _ in 0..5 {
        warm_up(&gw, &nik).await;
    }
    // Sanction (art. 45): reduce the quota below today's use, then reload.
    let path = gw.pks_path("rsud.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("kuota_harian = 50", "kuota_harian = 3");
    std::fs::write(&path, text).unwrap();
    gw.proc.signal("HUP");
    let client = gw.client("127.0.0.2");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", PASSWORD),
        )
        .await;
        if response_code(&body).as_deref() == Some("05") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reduction did not apply: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_limits_refuse_with_their_own_message() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions {
        quota: "block = 4\nburst_per_user = 3\n",
        ..GatewayOptions::new(sim.addr, hospital(1000))
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    warm_up(&gw, &nik).await;
    let client = gw.client("127.0.0.2");
    let mut limited = 0;
    for _ in 0..10 {
        let (_, body) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", PASSWORD),
        )
        .await;
        if response_code(&body).as_deref() == Some("24") {
            assert_eq!(
                respon(&body).as_deref(),
                Some("Terlalu Banyak Permintaan, Coba Lagi Sebentar")
            );
            limited += 1;
        }
    }
    assert!(
        limited > 0,
        "10 back-to-back requests with a burst of 3 per second"
    );
    assert!(
        sim.requests().await < 11,
        "burst refusals do not reach the DWH"
    );
}

/// A Pengguna with two agreements, a User ID under each (4 hits a day each), and a cap of
/// 5 hits a day across them set in one of its files.
fn clinic_with_cap() -> Vec<TestPks> {
    let user = |id, ip| TestUser {
        id,
        ip,
        status: "aktif",
    };
    vec![
        TestPks {
            kuota: 4,
            pengguna: "klinik",
            extra: "kuota_harian_pengguna = 5",
            ..TestPks::new(
                "klinik-a.toml",
                "1/KLINIK/A",
                vec![user("klinik_a", "127.0.0.2")],
            )
        },
        TestPks {
            kuota: 4,
            pengguna: "klinik",
            ..TestPks::new(
                "klinik-b.toml",
                "1/KLINIK/B",
                vec![user("klinik_b", "127.0.0.3")],
            )
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pengguna_cap_bounds_all_its_user_ids_together() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions::new(sim.addr, clinic_with_cap()));
    let nik = sim.sample("alive", 1).await.remove(0);
    let ask = |user: &'static str, ip: &'static str| {
        let (client, url) = (gw.client(ip), gw.url("CALL_NIK"));
        let body = call_nik(&nik, user, PASSWORD);
        async move { post(&client, &url, body).await.1 }
    };
    // klinik_a: its own 4 hits; the 4th leaves the Pengguna one.
    for left in [3, 2, 1, 0] {
        let body = ask("klinik_a", "127.0.0.2").await;
        assert_eq!(response_code(&body), None, "{body}");
        assert_eq!(quota_limiter(&body), Some(left), "{body}");
    }
    let body = ask("klinik_a", "127.0.0.2").await;
    assert_eq!(response_code(&body).as_deref(), Some("05"), "{body}");
    // klinik_b has 4 of its own, but the Pengguna only 1 left: it is told so.
    let body = ask("klinik_b", "127.0.0.3").await;
    assert_eq!(response_code(&body), None, "{body}");
    assert_eq!(quota_limiter(&body), Some(0), "{body}");
    let body = ask("klinik_b", "127.0.0.3").await;
    assert_eq!(response_code(&body).as_deref(), Some("05"), "{body}");
    assert!(body.contains("lembaga"), "{body}");
    assert_eq!(sim.requests().await, 5, "the cap, not 8, reached the DWH");

    // The admin view shows the Pengguna's use beside each User ID's.
    let (status, view) = gw
        .admin(reqwest::Method::GET, "/quota?pengguna=klinik", None)
        .await;
    assert_eq!(status, 200, "{view}");
    let v: serde_json::Value = serde_json::from_str(&view).unwrap();
    let rows = v["quota"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{view}");
    for row in rows {
        assert_eq!(row["pengguna_cap"]["used"], 5, "{view}");
        assert_eq!(row["pengguna_cap"]["limit"], 5, "{view}");
    }
}

//! Data balikan by web service (`docs/balikan.md`): a Pengguna returns data about the people
//! it looked up, field by field, through the gateway to the DWH. Each record is checked
//! against its PKS's `data_balikan` fields and must name a NIK the same PKS looked up; a
//! PKS without `data_balikan` (a verify-only foreign-majority bank among them) is refused;
//! accepted records reach the DWH exactly as validated, use no NIK hit, are bounded by
//! their own daily limit, and are recorded as digests, never values.
#![allow(clippy::unwrap_used)]

use gerbang_e2e::*;

fn agreements() -> Vec<TestPks> {
    vec![
        TestPks {
            extra: r#"data_balikan = ["Nomor rekam medis"]"#,
            ..TestPks::new(
                "rsud.toml",
                "1/RSUD/BALIKAN",
                vec![TestUser::aktif("rsud_01", "127.0.0.2")],
            )
        },
        TestPks {
            extra: r#"data_balikan = ["NOP PBB-P2", "NPWPD"]"#,
            ..TestPks::new(
                "bkd.toml",
                "2/BKD/BALIKAN",
                vec![TestUser::aktif("bkd_01", "127.0.0.5")],
            )
        },
        TestPks::new(
            "bank.toml",
            "3/BANK/TANPA",
            vec![TestUser::aktif("bank_01", "127.0.0.3")],
        ),
        TestPks {
            jenis: "bhi",
            extra: "kepemilikan_asing_mayoritas = true",
            ..TestPks::new(
                "asing.toml",
                "4/ASING/VERIFIKASI",
                vec![TestUser::aktif("asing_01", "127.0.0.4")],
            )
        },
    ]
}

fn batch(user: &str, records: &[serde_json::Value]) -> String {
    serde_json::json!({"user_id": user, "password": PASSWORD, "data": records}).to_string()
}

fn lookup(user: &str, nik: &str) -> String {
    serde_json::json!({"user_id": user, "password": PASSWORD, "nik": nik}).to_string()
}

fn audit_records(gw: &Gateway) -> Vec<serde_json::Value> {
    let dir = gw.dir.path().join("audit");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "jsonl") {
            out.extend(
                std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok()),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_checked_record_by_record_and_only_valid_records_of_looked_up_niks_reach_the_dwh()
 {
    let sim = Sim::start(100);
    let mut gw = Gateway::start(GatewayOptions {
        quota: "block = 4\n\n[balikan]\ndaily_records = 3\n",
        ..GatewayOptions::new(sim.addr, agreements())
    });
    let niks = sim.sample("alive", 3).await;
    let (looked, never) = (&niks[0], &niks[1]);
    let rsud = gw.client("127.0.0.2");
    let url = gw.balikan_url("rsud");

    // Before any lookup, nothing can be returned about anyone.
    let (status, body) = post(
        &rsud,
        &url,
        batch(
            "rsud_01",
            &[serde_json::json!({"NIK": looked, "NO_REKAM_MEDIS": "RM-0001"})],
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v = answer_json(&body);
    assert_eq!(v["DITERIMA"], 0, "{body}");
    assert!(
        v["content"][0]["ALASAN"]
            .as_str()
            .unwrap()
            .contains("tidak diakses"),
        "{body}"
    );
    assert_eq!(sim.balikan_records().await, 0, "nothing forwarded");

    let (status, body) = post(&rsud, &gw.url("CALL_NIK"), lookup("rsud_01", looked)).await;
    assert_eq!((status, response_code(&body)), (200, None), "{body}");
    let hits_after_lookup = quota_limiter(&body).unwrap();

    let records = [
        serde_json::json!({"nik": looked, "no_rekam_medis": " RM-0001 "}),
        serde_json::json!({"NIK": never, "NO_REKAM_MEDIS": "RM-0002"}),
        serde_json::json!({"NIK": looked, "NO_REKAM_MEDIS": "R".repeat(31)}),
        serde_json::json!({"NIK": looked, "NOP_PBB_P2": "331309000100200010"}),
        serde_json::json!({"NIK": "9901014101900001", "NO_REKAM_MEDIS": "RM-0003"}),
        serde_json::json!({"NIK": looked, "NO_REKAM_MEDIS": "<script>alert(1)</script>", "NAMA_LGKP": "X"}),
    ];
    let (status, body) = post(&rsud, &url, batch("rsud_01", &records)).await;
    assert_eq!(status, 200, "{body}");
    let v = answer_json(&body);
    assert_eq!(
        (v["DITERIMA"].as_u64(), v["DITOLAK"].as_u64()),
        (Some(1), Some(5)),
        "{body}"
    );
    let reason = |i: usize| v["content"][i]["ALASAN"].as_str().unwrap_or("").to_string();
    assert_eq!(v["content"][0]["STATUS"], "Diterima", "{body}");
    assert!(reason(1).contains("tidak diakses oleh PKS ini"), "{body}");
    assert!(reason(2).contains("lebih dari 30 karakter"), "{body}");
    assert!(
        reason(3).contains("NOP_PBB_P2") && reason(3).contains("tidak diatur"),
        "{body}"
    );
    assert!(reason(4).contains("NIK tidak sesuai format"), "{body}");
    assert!(reason(5).contains("NAMA_LGKP"), "{body}");
    // The DWH received the one valid record, as validated (trimmed, in its own spelling).
    let last = sim.last_request().await;
    assert_eq!(last["target"], "/dukcapil/balikan/rsud", "{last}");
    let sent: serde_json::Value = serde_json::from_str(last["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"data": [{"NIK": looked, "NO_REKAM_MEDIS": "RM-0001"}]})
    );
    assert_eq!(sim.balikan_records().await, 1);

    // Another PKS did not look that NIK up: it cannot return data about the person.
    let bkd = gw.client("127.0.0.5");
    let (_, body) = post(
        &bkd,
        &gw.balikan_url("bkd"),
        batch(
            "bkd_01",
            &[serde_json::json!({"NIK": looked, "NOP_PBB_P2": "331309000100200010"})],
        ),
    )
    .await;
    assert!(
        answer_json(&body)["content"][0]["ALASAN"]
            .as_str()
            .unwrap()
            .contains("tidak diakses"),
        "{body}"
    );

    // A PKS that names no data balikan, the verify-only foreign bank's among them.
    for (user, ip, file) in [
        ("bank_01", "127.0.0.3", "bank"),
        ("asing_01", "127.0.0.4", "asing"),
    ] {
        let (_, body) = post(
            &gw.client(ip),
            &gw.balikan_url(file),
            batch(
                user,
                &[serde_json::json!({"NIK": looked, "NO_REKAM_MEDIS": "RM-1"})],
            ),
        )
        .await;
        assert_eq!(
            response_code(&body).as_deref(),
            Some("34"),
            "{user}: {body}"
        );
    }
    // The usual credentials: a wrong password, another User ID's address.
    let wrong =
        serde_json::json!({"user_id": "rsud_01", "password": "salah", "data": [{"NIK": looked}]})
            .to_string();
    let (_, body) = post(&rsud, &url, wrong).await;
    assert_eq!(response_code(&body).as_deref(), Some("03"), "{body}");
    let (_, body) = post(
        &bkd,
        &url,
        batch(
            "rsud_01",
            &[serde_json::json!({"NIK": looked, "NO_REKAM_MEDIS": "RM-1"})],
        ),
    )
    .await;
    assert_eq!(response_code(&body).as_deref(), Some("04"), "{body}");
    // Keys outside the service, and a body that is no batch.
    let (_, body) = post(
        &rsud,
        &url,
        serde_json::json!({"user_id": "rsud_01", "password": PASSWORD, "nik": looked, "data": []})
            .to_string(),
    )
    .await;
    assert_eq!(response_code(&body).as_deref(), Some("27"), "{body}");
    let (_, body) = post(
        &rsud,
        &url,
        serde_json::json!({"user_id": "rsud_01", "password": PASSWORD, "data": "x"}).to_string(),
    )
    .await;
    assert_eq!(response_code(&body).as_deref(), Some("07"), "{body}");
    assert_eq!(
        sim.balikan_records().await,
        1,
        "nothing refused reached the DWH"
    );

    // No NIK hit was used by the balikan.
    let (_, body) = post(&rsud, &gw.url("CALL_NIK"), lookup("rsud_01", looked)).await;
    assert_eq!(quota_limiter(&body), Some(hits_after_lookup - 1), "{body}");

    // Its own daily limit (3 here): one record is used, two more pass, the third not.
    let again = serde_json::json!({"NIK": looked, "NO_REKAM_MEDIS": "RM-0009"});
    let (_, body) = post(
        &rsud,
        &url,
        batch("rsud_01", &[again.clone(), again.clone(), again.clone()]),
    )
    .await;
    let v = answer_json(&body);
    assert_eq!(v["DITERIMA"], 2, "{body}");
    assert!(
        v["content"][2]["ALASAN"]
            .as_str()
            .unwrap()
            .contains("batas harian"),
        "{body}"
    );
    assert_eq!(sim.balikan_records().await, 3);

    // Recorded with digests and field names, never a value or a NIK.
    let records = audit_records(&gw);
    let balikan: Vec<_> = records
        .iter()
        .filter(|r| r["action"] == "SubmitBalikan")
        .collect();
    let accepted: u64 = balikan
        .iter()
        .filter_map(|r| r["balikan"]["accepted"].as_u64())
        .sum();
    assert_eq!(accepted, 3, "{balikan:#?}");
    let with_digest = balikan
        .iter()
        .find(|r| r["balikan"]["accepted"] == 1)
        .unwrap();
    assert_eq!(
        with_digest["balikan"]["nik_digests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        with_digest["elements"],
        serde_json::json!(["Nomor rekam medis"])
    );
    let raw: String = records.iter().map(|r| r.to_string()).collect();
    assert!(
        !raw.contains(looked.as_str()) && !raw.contains("RM-0001"),
        "a NIK or value in the log"
    );

    // Metrics: the records by outcome, the obligated Pengguna.
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("gerbang_balikan_records_total{outcome=\"accepted\",pengguna=\"rsud\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gerbang_balikan_obligated{pengguna=\"bkd\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("gerbang_balikan_obligated{pengguna=\"bank\"} 1"),
        "{metrics}"
    );

    // The looked-up NIKs survive a restart (the embedded store): the next day's limit aside,
    // the NIK is still open, here seen by the limit answering rather than "tidak diakses".
    gw.restart();
    let (_, body) = post(&gw.client("127.0.0.2"), &url, batch("rsud_01", &[again])).await;
    let reason = answer_json(&body)["content"][0]["ALASAN"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(reason.contains("batas harian"), "{body}");
}

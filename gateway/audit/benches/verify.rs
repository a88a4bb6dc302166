//! What `audit verify` and a semester report cost per record, on a log of 200,000 records
//! written by the real writer. `cargo bench -p gerbang-audit --bench verify`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gerbang_audit::{AuditKey, AuditLog, Decision, Record, WriterOptions, report, verify};

/// Records in the log under `cargo bench`; `cargo test` runs each bench once on fewer.
const RECORDS: u64 = 200_000;
const RECORDS_WHEN_TESTED: u64 = 10_000;

fn record(key: &AuditKey, n: u64, time: DateTime<Utc>) -> Record {
    let refused = n.is_multiple_of(20);
    Record {
        time,
        instance: "gw-bench".into(),
        request_id: format!("req-{n}"),
        user_id: Some(format!("dinas_uji_{:02}", n % 50)),
        pengguna: Some(format!("dinas-uji-{}", n % 10)),
        pks: Some("000/0000/TEST/2026".into()),
        peer_ip: "10.99.0.10".parse().expect("ip"),
        channel: Some("web_service".into()),
        action: Some("CallNik".into()),
        decision: if refused {
            Decision::Deny
        } else {
            Decision::Allow
        },
        reason: refused.then(|| "quota_exhausted".to_owned()),
        policy_ids: vec!["pks-elements".into()],
        policy_hash: "0f".repeat(32),
        // Synthetic NIKs.
        nik_digest: Some(key.nik_digest(&format!("99{:014}", n % 50_000))),
        elements: ["NIK", "NAMA_LGKP", "TGL_LHR", "ALAMAT"]
            .map(str::to_owned)
            .to_vec(),
        balikan: None,
        upstream_status: (!refused).then_some(200),
        latency_us: 812,
        quota_used: Some(17),
        quota_limit: Some(1000),
    }
}

fn verify_and_report(c: &mut Criterion) {
    let records = if std::env::args().any(|a| a == "--bench") {
        RECORDS
    } else {
        RECORDS_WHEN_TESTED
    };
    let key = AuditKey::from_material(&[0x5a; 32], "bench key").expect("key");
    let dir = tempfile::tempdir().expect("tempdir");
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().expect("time");
    {
        // The writer's clock stays on the first day: one file, inside the semester.
        let options = WriterOptions {
            clock: std::sync::Arc::new(move || start),
            ..WriterOptions::default()
        };
        let log = AuditLog::open(dir.path(), key.clone(), options).expect("open");
        for n in 0..records {
            // Spread over 100 days of the semester.
            let time = start + chrono::Duration::minutes((n * 72 / 1000) as i64);
            log.append(&record(&key, n, time)).expect("append");
        }
        log.close().expect("close");
    }
    let mut group = c.benchmark_group("log");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(records));
    group.bench_function("verify", |b| {
        b.iter(|| {
            let report = verify(dir.path(), &key).expect("verify");
            assert!(report.is_intact(), "{report}");
        });
    });
    let semester = "2026-1".parse().expect("semester");
    group.bench_function("report", |b| {
        b.iter(|| {
            let report = report(dir.path(), semester, None).expect("report");
            assert_eq!(report.totals.requests, records);
        });
    });
    group.finish();
}

criterion_group!(benches, verify_and_report);
criterion_main!(benches);

//! What one `append` costs the thread that releases an answer: alone, and with four threads
//! contending (group commit). Real files in a temporary directory, the real background fsync
//! every 50 ms. `cargo bench -p gerbang-audit`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gerbang_audit::{AuditKey, AuditLog, Decision, Record, WriterOptions};

fn record(key: &AuditKey) -> Record {
    Record {
        time: Utc::now(),
        instance: "gw-bench".into(),
        request_id: "0190f2c4-6c1e-7b7e-9f3a-1c2d3e4f5a6b".into(),
        user_id: Some("dinas_uji_01".into()),
        pengguna: Some("dinas-uji".into()),
        pks: Some("000/0000/TEST/2026".into()),
        peer_ip: "10.99.0.10".parse().expect("ip"),
        channel: Some("web_service".into()),
        action: Some("CallNik".into()),
        decision: Decision::Allow,
        reason: None,
        policy_ids: vec!["pks-elements".into(), "global-protected".into()],
        policy_hash: "0f".repeat(32),
        // A synthetic NIK.
        nik_digest: Some(key.nik_digest("9901010101900001")),
        elements: [
            "NIK",
            "NO_KK",
            "NAMA_LGKP",
            "JENIS_KLMIN",
            "TMPT_LHR",
            "TGL_LHR",
            "ALAMAT",
        ]
        .map(str::to_owned)
        .to_vec(),
        balikan: None,
        upstream_status: Some(200),
        latency_us: 812,
        quota_used: Some(17),
        quota_limit: Some(1000),
    }
}

fn open(dir: &std::path::Path, key: &AuditKey) -> AuditLog {
    AuditLog::open(
        dir,
        key.clone(),
        WriterOptions {
            instance: "gw-bench".into(),
            ..WriterOptions::default()
        },
    )
    .expect("open")
}

fn append(c: &mut Criterion) {
    let key = AuditKey::from_material(&[0x5a; 32], "bench key").expect("key");
    let record = record(&key);
    let mut group = c.benchmark_group("append");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));

    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), &key);
    group.bench_function("1 thread", |b| {
        b.iter(|| log.append(&record).expect("append"));
    });
    drop(log);

    for threads in [4u64, 16] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(open(dir.path(), &key));
        group.bench_function(format!("{threads} threads"), |b| {
            // Time per append with `threads` callers appending at once.
            b.iter_custom(|iters| {
                let each = iters.div_ceil(threads);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..each {
                                log.append(&record).expect("append");
                            }
                        });
                    }
                });
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (each * threads) as f64)
            });
        });
        let stats = log.stats();
        eprintln!(
            "{threads} threads: {} records in {} writes ({:.1} per write), {} fsyncs",
            stats.records_written,
            stats.batches_written,
            stats.records_written as f64 / stats.batches_written.max(1) as f64,
            stats.fsyncs
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), &key);
    group.bench_function("nowait 1 thread", |b| {
        b.iter(|| log.append_nowait(&record).expect("append_nowait"));
    });
    drop(log);
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);

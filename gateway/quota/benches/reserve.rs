//! The quota reservation on the hot path: one hit reserved for a User ID, per store. The
//! embedded store persists a ceiling a block ahead, so most reservations touch no disk.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use gerbang_quota::Meter;

fn reserve(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = [
        ("memory", Meter::memory()),
        (
            "embedded_block16",
            Meter::embedded(&dir.path().join("q.redb"), 16, day).unwrap(),
        ),
    ];
    for (name, meter) in &stores {
        let mut n = 0u64;
        c.bench_function(&format!("quota/reserve/{name}"), |b| {
            b.iter(|| {
                // Spread over 1,000 User IDs with a limit that is never reached.
                n += 1;
                let user = format!("u{}", n % 1_000);
                runtime
                    .block_on(meter.reserve(black_box(&user), day, u32::MAX))
                    .unwrap()
            })
        });
    }
    for (_, meter) in stores {
        meter.close().unwrap();
    }
}

criterion_group!(benches, reserve);
criterion_main!(benches);

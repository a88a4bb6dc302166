//! Authorization cost as the number of PKS grows (docs/architecture.md, "Targets": ≤ 2 µs median warm, ≤ 20 µs
//! cold at 5,000 PKS, flat from 10 to 5,000). Warm is `authorize` answering from the
//! decision cache; cold is `decide`, the Cedar evaluation the cache is filled from, for
//! each User ID in turn; cold-new-address is the same from an address never seen before.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gerbang_core::{Channel, Config, PksSet, Vocabulary};
use gerbang_policy::{
    Action, PolicyEngine, Request, Snapshot, authorize, decide, load_snapshot, reload_snapshot,
};

#[path = "support/synthetic.rs"]
mod synthetic;
use synthetic::{USERS_PER_PKS, pks_text};

/// `n` agreements of ten User IDs each, every User ID on its own 10.x.y.z address.
fn snapshot(n: usize) -> Snapshot {
    build(&files(n))
}

/// What a reload does after reading the files: parse and check every PKS, load the Cedar
/// rules, build the entities, indexes and per-agreement elements.
fn build(files: &[(PathBuf, String)]) -> Snapshot {
    let vocab = Vocabulary::embedded();
    let set = PksSet::parse_all(files, &vocab).unwrap();
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let engine = Arc::new(PolicyEngine::load(&policies).unwrap());
    Snapshot::build(vocab, set, engine, Vec::new()).unwrap()
}

fn files(n: usize) -> Vec<(PathBuf, String)> {
    (0..n)
        .map(|i| (PathBuf::from(format!("{i}.toml")), pks_text(i)))
        .collect()
}

fn request(snap: &Snapshot, n: usize) -> Request {
    // A User ID in the middle of the set.
    let id = format!("u{}", n * USERS_PER_PKS / 2 + 1);
    let user = snap.user_by_id(&id).unwrap();
    let peer: IpAddr = snap.user(user).ip_lan[0].addr();
    Request {
        user,
        action: Action::CallNik,
        channel: Channel::WebService,
        day: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        peer,
        sam_valid: false,
    }
}

fn decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    for n in [10, 1_000, 5_000] {
        let snap = snapshot(n);
        let req = request(&snap, n);
        assert!(authorize(&snap, &req).allowed());
        group.bench_with_input(BenchmarkId::new("warm", n), &n, |b, _| {
            b.iter(|| authorize(black_box(&snap), black_box(&req)))
        });
        // Cold: a User ID with nothing cached, a different one (and agreement) each time.
        let users: Vec<Request> = (1..=n * USERS_PER_PKS)
            .map(|k| {
                let user = snap.user_by_id(&format!("u{k}")).unwrap();
                Request {
                    user,
                    peer: snap.user(user).ip_lan[0].addr(),
                    ..req
                }
            })
            .collect();
        let mut next = users.iter().cycle();
        group.bench_with_input(BenchmarkId::new("cold", n), &n, |b, _| {
            b.iter(|| {
                let req = next.next().unwrap();
                let d = decide(black_box(&snap), black_box(req), false);
                assert!(d.allowed());
                d
            })
        });
        // The same from an address the engine has not seen before (its `peer_ip` is built).
        let mut fresh = (0u32..).map(|i| IpAddr::from(std::net::Ipv4Addr::from(0xAC10_0000 + i)));
        group.bench_with_input(BenchmarkId::new("cold-new-address", n), &n, |b, _| {
            b.iter(|| {
                let req = Request {
                    peer: fresh.next().unwrap(),
                    ..*next.next().unwrap()
                };
                decide(black_box(&snap), black_box(&req), false)
            })
        });
    }
    group.finish();
}

/// Loading and reloading 5,000 PKS / 50,000 User IDs (docs/architecture.md, "Targets": ≤ 1 s).
///
/// `load/N`: a full build's work after reading the files (parse and check every PKS, load
/// the rules, build the entities, indexes and per-agreement elements). The others go
/// through the files on disk as `gerbang serve` does: `from-disk` is a start (and what a
/// reload did before it reused anything), `reload-unchanged` a reload where nothing
/// changed, `reload-one-edited`/`-added`/`-removed` one where one PKS file did. The old
/// snapshot's drop is left out of every figure, as the gateway drops it on another thread.
fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    for n in [1_000, 5_000] {
        let files = files(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_with_large_drop(|| build(black_box(&files)))
        });
    }
    let n = 5_000;
    let disk = OnDisk::new(&files(n));
    let config = disk.config();
    group.bench_with_input(BenchmarkId::new("from-disk", n), &n, |b, _| {
        b.iter_with_large_drop(|| load_snapshot(black_box(&config)).unwrap())
    });
    let running = load_snapshot(&config).unwrap();
    group.bench_with_input(BenchmarkId::new("reload-unchanged", n), &n, |b, _| {
        b.iter_with_large_drop(|| reload_snapshot(black_box(&config), &running).unwrap())
    });
    // Each iteration reloads from `running`, so each sees the same one change: an agreement
    // frozen and one of its User IDs' quota lowered (its entity and its ten User IDs'
    // ancestry are replaced).
    let edited = disk.pks.join("2500.toml");
    let text = std::fs::read_to_string(&edited).unwrap();
    let frozen = text
        .replacen("status = \"aktif\"", "status = \"dibekukan\"", 1)
        .replacen("kuota_harian = 1000", "kuota_harian = 999", 1);
    assert_ne!(frozen, text);
    std::fs::write(&edited, frozen).unwrap();
    group.bench_with_input(BenchmarkId::new("reload-one-edited", n), &n, |b, _| {
        b.iter_with_large_drop(|| reload_snapshot(black_box(&config), &running).unwrap())
    });
    std::fs::write(&edited, &text).unwrap();
    std::fs::rename(&edited, disk.dir.path().join("2500.toml.away")).unwrap();
    group.bench_with_input(BenchmarkId::new("reload-one-removed", n), &n, |b, _| {
        b.iter_with_large_drop(|| reload_snapshot(black_box(&config), &running).unwrap())
    });
    let without = load_snapshot(&config).unwrap();
    std::fs::rename(disk.dir.path().join("2500.toml.away"), &edited).unwrap();
    group.bench_with_input(BenchmarkId::new("reload-one-added", n), &n, |b, _| {
        b.iter_with_large_drop(|| reload_snapshot(black_box(&config), &without).unwrap())
    });
    group.finish();
}

/// The PKS files in a temporary directory, with a configuration naming them.
struct OnDisk {
    dir: tempfile::TempDir,
    pks: PathBuf,
}

impl OnDisk {
    fn new(files: &[(PathBuf, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pks = dir.path().join("pks");
        std::fs::create_dir(&pks).unwrap();
        for (name, text) in files {
            std::fs::write(pks.join(name), text).unwrap();
        }
        Self { dir, pks }
    }

    fn config(&self) -> Config {
        let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        let text = format!(
            "[listen]\naddress = \"127.0.0.1:8443\"\nplaintext = true\n\n[upstream]\naddress = \"127.0.0.1:9080\"\n\n[pks]\ndir = \"pks\"\n\n[policy]\ndir = \"{}\"\n",
            policies.display()
        );
        Config::parse(&self.dir.path().join("gerbang.toml"), &text).unwrap()
    }
}

criterion_group!(benches, decision, load);
criterion_main!(benches);

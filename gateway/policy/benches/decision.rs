//! Authorization cost as the number of PKS grows (DESIGN §7: ≤ 2 µs median warm, ≤ 20 µs
//! cold at 5,000 PKS, flat from 10 to 5,000). Warm is `authorize` answering from the
//! decision cache; cold is `decide`, the Cedar evaluation the cache is filled from.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gerbang_core::{Channel, PksSet, Vocabulary};
use gerbang_policy::{Action, PolicyEngine, Request, Snapshot, authorize, decide};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZRqpb8Z+dLwDBTqW3nkCw0ZqXYjz6Rqi4AbH5l3eXM";
const USERS_PER_PKS: usize = 10;

/// `n` agreements of ten User IDs each, every User ID on its own 10.x.y.z address.
fn snapshot(n: usize) -> Snapshot {
    let files: Vec<(PathBuf, String)> = (0..n)
        .map(|i| {
            let mut text = format!(
                "nomor = \"{i}/BENCH\"\npengguna = \"p{i}\"\nnama_pengguna = \"Lembaga {i}\"\njenis_pengguna = \"opd\"\ntingkat = \"kabupaten_kota\"\ntujuan = \"bench\"\nelemen_data = [\"NIK\", \"NO_KK\", \"NAMA_LGKP\", \"TGL_LHR\", \"ALAMAT_SEKARANG\"]\nmetode_akses = [\"web_service\"]\nkunci_akses = [\"NIK\"]\nmulai = 2025-01-01\nsampai = 2030-12-31\nstatus = \"aktif\"\n"
            );
            for u in 0..USERS_PER_PKS {
                let k = i * USERS_PER_PKS + u + 1;
                text += &format!(
                    "\n[[user]]\nid = \"u{k}\"\npassword_hash = \"{HASH}\"\nip_lan = [\"10.{}.{}.{}\"]\nkuota_harian = 1000\nstatus = \"aktif\"\n",
                    k >> 16 & 255,
                    k >> 8 & 255,
                    k & 255
                );
            }
            (PathBuf::from(format!("{i}.toml")), text)
        })
        .collect();
    let vocab = Vocabulary::embedded();
    let set = PksSet::parse_all(&files, &vocab).unwrap();
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let engine = Arc::new(PolicyEngine::load(&policies).unwrap());
    Snapshot::build(vocab, set, engine, Vec::new()).unwrap()
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
        group.bench_with_input(BenchmarkId::new("cold", n), &n, |b, _| {
            b.iter(|| decide(black_box(&snap), black_box(&req), false))
        });
    }
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);

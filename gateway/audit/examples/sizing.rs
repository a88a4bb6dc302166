//! What the decision log costs on disk, measured on synthetic records shaped like the
//! bench's (loadtest/README.md: 20 PKS, 200 User IDs, 85 % CALL_NIK, 10 % verification, 5 %
//! refused): bytes per record as written and compacted, compaction and verify speed through
//! the crate's own writer, compactor and verifier, what each field costs plain and
//! compressed, and what a more compact encoding of the hashes would save.
//!
//! ```sh
//! cargo run --release -p gerbang-audit --example sizing -- --records 1000000
//! ```
//!
//! Options: `--records N` (default 1,000,000), `--rate R` requests per second the records'
//! times are spaced at (default 6,000, the soak of issue 17), `--niks N` distinct NIKs (default
//! 0: every lookup a different person; the bench samples 2,000), `--dir PATH` (default: a
//! temporary directory, removed at the end). The records are synthetic: no real NIK or name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gerbang_audit::{AuditKey, AuditLog, Decision, Record, WriterOptions, verify};

struct Args {
    records: u64,
    rate: u64,
    niks: u64,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut args = Args {
        records: 1_000_000,
        rate: 6_000,
        niks: 0,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--records" => args.records = value.parse().expect("--records N"),
            "--rate" => args.rate = value.parse().expect("--rate R"),
            "--niks" => args.niks = value.parse().expect("--niks N"),
            "--dir" => args.dir = Some(PathBuf::from(value)),
            _ => panic!("unknown option {flag}"),
        }
    }
    args
}

/// A small deterministic generator (xorshift), so two runs write the same records.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Element names of the DWH vocabulary (config/elemen.toml), as a PKS grants them.
const ELEMENTS: &[&str] = &[
    "NIK",
    "NO_KK",
    "NAMA_LGKP",
    "TMPT_LHR",
    "TGL_LHR",
    "JENIS_KLMIN",
    "GOL_DARAH",
    "AGAMA",
    "STATUS_KAWIN",
    "PDDK_AKH",
    "JENIS_PKRJN",
    "NAMA_LGKP_IBU",
    "ALAMAT",
    "NO_RT",
    "NO_RW",
    "KEL_NAME",
    "KEC_NAME",
    "KAB_NAME",
    "PROP_NAME",
    "STAT_HBKEL",
];

struct User {
    id: String,
    pengguna: String,
    pks: String,
    ip: String,
    elements: Vec<String>,
    limit: u32,
    used: u32,
}

fn users(rng: &mut Rng) -> Vec<User> {
    (0..200u64)
        .map(|j| {
            let p = j % 20;
            let granted = 6 + (p as usize * 7) % 14;
            User {
                id: format!("dinas_{p:02}_{j:03}"),
                pengguna: format!("dinas-uji-{p:02}"),
                pks: format!("{p}/PKS-UJI/XII/2026"),
                ip: format!("10.{}.{}.{}", 20 + p, j / 200, 10 + j % 200),
                elements: ELEMENTS[..granted]
                    .iter()
                    .map(|e| (*e).to_owned())
                    .collect(),
                limit: [1_000, 5_000, 10_000, 50_000][rng.below(4) as usize],
                used: 0,
            }
        })
        .collect()
}

fn synthetic(
    n: u64,
    at: DateTime<Utc>,
    users: &mut [User],
    rng: &mut Rng,
    key: &AuditKey,
    niks: u64,
) -> Record {
    let user = &mut users[rng.below(users.len() as u64) as usize];
    let kind = rng.below(100);
    let person = if niks == 0 { n } else { rng.below(niks) };
    let nik = format!("99{:014}", person);
    let (action, decision, reason, elements, upstream) = match kind {
        0..85 => (
            "CallNik",
            Decision::Allow,
            None,
            user.elements.clone(),
            Some(200),
        ),
        85..95 => (
            "VerifyByElement",
            Decision::Allow,
            None,
            vec!["NIK".to_owned(), "NAMA_LGKP".to_owned()],
            Some(200),
        ),
        _ => (
            "CallNik",
            Decision::Deny,
            Some("nik_invalid".to_owned()),
            Vec::new(),
            None,
        ),
    };
    if upstream.is_some() {
        user.used += 1;
    }
    Record {
        time: at,
        instance: "gw-1".to_owned(),
        request_id: format!("gw-1-{n}"),
        user_id: Some(user.id.clone()),
        pengguna: Some(user.pengguna.clone()),
        pks: Some(user.pks.clone()),
        peer_ip: user.ip.parse().expect("ip"),
        channel: Some("web_service".to_owned()),
        action: Some(action.to_owned()),
        decision,
        reason,
        policy_ids: if decision == Decision::Allow {
            vec!["pks-berlaku".to_owned(), "elemen-pks".to_owned()]
        } else {
            Vec::new()
        },
        policy_hash: "7d4f0c2a9b1e3f5d6c8a0b2e4d6f8a1c3e5b7d9f0a2c4e6b8d0f1a3c5e7b9d2f".to_owned(),
        nik_digest: Some(key.nik_digest(&nik)),
        elements,
        balikan: None,
        upstream_status: upstream,
        latency_us: 300 + rng.below(1_700),
        quota_used: upstream.map(|_| user.used),
        quota_limit: upstream.map(|_| user.limit),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn per_second(n: f64, took: Duration) -> f64 {
    n / took.as_secs_f64()
}

fn compress(data: &[u8], level: i32) -> (usize, Duration) {
    let started = Instant::now();
    let packed = zstd::bulk::compress(data, level).expect("compress");
    (packed.len(), started.elapsed())
}

fn main() {
    let args = args();
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let key = AuditKey::from_material(&[0xa7; 32], "sizing").expect("key");
    let start: DateTime<Utc> = "2026-03-01T01:00:00Z".parse().expect("time");
    let now = Arc::new(std::sync::Mutex::new(start));
    let clock = {
        let now = now.clone();
        Arc::new(move || *now.lock().expect("clock"))
    };
    let log = AuditLog::open(
        &dir,
        key.clone(),
        WriterOptions {
            instance: "gw-1".into(),
            clock,
            background_maintenance: false,
            ..WriterOptions::default()
        },
    )
    .expect("open");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut users = users(&mut rng);
    let step = 1_000_000 / args.rate.max(1);
    let started = Instant::now();
    for n in 0..args.records {
        let at = start + chrono::Duration::microseconds((n * step) as i64);
        *now.lock().expect("clock") = at;
        let record = synthetic(n, at, &mut users, &mut rng, &key, args.niks);
        log.append_nowait(&record).expect("append");
    }
    log.close().expect("close");
    let wrote = started.elapsed();
    // The next day: the writer moves on, the day is closed and can be compacted.
    *now.lock().expect("clock") = start + chrono::Duration::days(1);
    let log = AuditLog::open(
        &dir,
        key.clone(),
        WriterOptions {
            instance: "gw-1".into(),
            clock: {
                let now = now.clone();
                Arc::new(move || *now.lock().expect("clock"))
            },
            background_maintenance: false,
            ..WriterOptions::default()
        },
    )
    .expect("reopen");
    // Read before the append, which reads the clock too.
    let next_day = *now.lock().expect("clock");
    log.append(&synthetic(
        args.records,
        next_day,
        &mut users,
        &mut rng,
        &key,
        args.niks,
    ))
    .expect("append");
    let plain_path = dir.join("audit-2026-03-01.jsonl");
    let plain = std::fs::read(&plain_path).expect("read the day");
    let records = args.records as f64;

    println!("# Decision log sizing: {} synthetic records", args.records);
    println!(
        "\nRecords spaced at {} req/s, {} NIKs, written with the crate's writer (append_nowait, group commit) in {:.1} s ({:.0} records/s).",
        args.rate,
        if args.niks == 0 {
            "all distinct".to_owned()
        } else {
            args.niks.to_string()
        },
        wrote.as_secs_f64(),
        per_second(records, wrote),
    );

    let started = Instant::now();
    let report = verify(&dir, &key).expect("verify");
    let verify_plain = started.elapsed();
    assert!(report.is_intact(), "{report}");

    let started = Instant::now();
    let done = log.maintain().expect("compact");
    let compacting = started.elapsed();
    assert_eq!(done.compacted.len(), 1);
    let zst_len = std::fs::metadata(dir.join("audit-2026-03-01.jsonl.zst"))
        .expect("compacted")
        .len();
    log.close().expect("close");
    let started = Instant::now();
    let report = verify(&dir, &key).expect("verify");
    let verify_zst = started.elapsed();
    assert!(report.is_intact(), "{report}");

    println!(
        "\n| | plain | compacted (zstd {}) |",
        gerbang_audit::COMPRESSION_LEVEL
    );
    println!("|---|---|---|");
    println!(
        "| day file | {:.1} MiB | {:.1} MiB (ratio {:.1}) |",
        mib(plain.len() as u64),
        mib(zst_len),
        plain.len() as f64 / zst_len as f64
    );
    println!(
        "| bytes per record | {:.0} | {:.1} |",
        plain.len() as f64 / records,
        zst_len as f64 / records
    );
    println!(
        "| verify | {:.2} s, {:.0} records/s, {:.0} MiB/s | {:.2} s, {:.0} records/s |",
        verify_plain.as_secs_f64(),
        per_second(records, verify_plain),
        mib(plain.len() as u64) / verify_plain.as_secs_f64(),
        verify_zst.as_secs_f64(),
        per_second(records, verify_zst)
    );
    println!(
        "| compaction (compress, read back, compare) | | {:.2} s, {:.0} MiB/s of plain |",
        compacting.as_secs_f64(),
        mib(plain.len() as u64) / compacting.as_secs_f64()
    );

    // Compression levels on the same bytes (in memory, one thread).
    println!("\n| zstd level | bytes per record | ratio | compress MiB/s |");
    println!("|---|---|---|---|");
    for level in [1, 3, 9, 15] {
        let (len, took) = compress(&plain, level);
        println!(
            "| {level} | {:.1} | {:.1} | {:.0} |",
            len as f64 / records,
            plain.len() as f64 / len as f64,
            mib(plain.len() as u64) / took.as_secs_f64()
        );
    }

    fields(&plain, records);
    std::fs::remove_file(&plain_path).ok();
    drop(temp);
}

/// What each member costs: bytes as written, and how much smaller the compacted day gets
/// without it (its compressed cost); then the hashes written in base64 instead of hex.
fn fields(plain: &[u8], records: f64) {
    let lines: Vec<serde_json::Map<String, serde_json::Value>> = plain
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    let mut raw: BTreeMap<String, u64> = BTreeMap::new();
    for line in &lines {
        for (name, value) in line {
            let value = serde_json::to_string(value).expect("json");
            // "name":value and its comma.
            *raw.entry(name.clone()).or_default() += (name.len() + 3 + value.len() + 1) as u64;
        }
    }
    let level = gerbang_audit::COMPRESSION_LEVEL;
    // The baseline is the lines re-serialised as parsed (members in name order), so that
    // every comparison below differs from it only by what it changes.
    let same = rewrite(&lines, |_| {});
    let (all, _) = compress(&same, level);
    println!("\n| member | plain bytes/record | compacted bytes/record (the day without it) |");
    println!("|---|---|---|");
    let mut rows: Vec<(String, u64)> = raw.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    // `prev` repeats the line before's `mac`: removing one leaves its entropy in the other,
    // so the pair is measured together too.
    let pair = raw_cost(&rows, "prev") + raw_cost(&rows, "mac");
    rows.push(("prev` + `mac".to_owned(), pair));
    for (name, bytes) in rows {
        if (bytes as f64) < records / 2.0 {
            continue; // members of the writer's open events only
        }
        let without = rewrite(&lines, |map| {
            for member in name.split("` + `") {
                map.remove(member);
            }
        });
        let (len, _) = compress(&without, level);
        println!(
            "| `{name}` | {:.1} | {:.1} |",
            bytes as f64 / records,
            (all as f64 - len as f64) / records
        );
    }
    // The hashes in base64 (43 characters for 32 bytes) instead of hex (64).
    let b64 = rewrite(&lines, |map| {
        for name in ["prev", "mac", "nik_digest", "policy_hash"] {
            if let Some(serde_json::Value::String(hex_text)) = map.get(name)
                && let Ok(bytes) = hex::decode(hex_text)
            {
                map.insert(name.to_owned(), serde_json::Value::String(base64(&bytes)));
            }
        }
    });
    let (b64_len, _) = compress(&b64, level);
    let same_len = all;
    println!(
        "\nHashes (`prev`, `mac`, `nik_digest`, `policy_hash`) in base64 instead of hex: {:.0} → {:.0} plain bytes/record, {:.1} → {:.1} compacted.",
        same.len() as f64 / records,
        b64.len() as f64 / records,
        same_len as f64 / records,
        b64_len as f64 / records
    );
}

fn raw_cost(rows: &[(String, u64)], name: &str) -> u64 {
    rows.iter().find(|(n, _)| n == name).map_or(0, |(_, b)| *b)
}

fn rewrite(
    lines: &[serde_json::Map<String, serde_json::Value>],
    edit: impl Fn(&mut serde_json::Map<String, serde_json::Value>),
) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        let mut map = line.clone();
        edit(&mut map);
        serde_json::to_writer(&mut out, &map).expect("json");
        out.push(b'\n');
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

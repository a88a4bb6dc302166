//! Shared fixtures: a synthetic key, a settable clock, synthetic records.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use gerbang_audit::{
    AuditKey, AuditLog, BALIKAN_ACTION, Balikan, Clock, Decision, Record, WriterOptions,
};

/// A synthetic audit key (tests only).
pub fn key() -> AuditKey {
    AuditKey::from_material(&[0x5a; 32], "test key").expect("key")
}

/// A clock the test sets; clones share the time.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn at(rfc3339: &str) -> Self {
        Self(Arc::new(AtomicI64::new(parse(rfc3339).timestamp_micros())))
    }

    pub fn set(&self, rfc3339: &str) {
        self.0
            .store(parse(rfc3339).timestamp_micros(), Ordering::SeqCst);
    }

    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0.load(Ordering::SeqCst)).expect("time")
    }

    pub fn clock(&self) -> Clock {
        let this = self.clone();
        Arc::new(move || this.now())
    }
}

pub fn parse(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

pub fn open(dir: &Path, clock: &TestClock) -> AuditLog {
    AuditLog::open(
        dir,
        key(),
        WriterOptions {
            instance: "gw-test".into(),
            clock: clock.clock(),
            // The files as written: tests that want them compacted call `maintain()`.
            background_maintenance: false,
            ..WriterOptions::default()
        },
    )
    .expect("open the log")
}

/// An allowed CALL_NIK for a synthetic NIK.
pub fn hit(time: DateTime<Utc>, n: u64) -> Record {
    Record {
        time,
        instance: "gw-test".into(),
        request_id: format!("req-{n}"),
        user_id: Some("dinas_uji_01".into()),
        pengguna: Some("dinas-uji".into()),
        pks: Some("000/0000/TEST/2026".into()),
        peer_ip: "10.99.0.10".parse().expect("ip"),
        channel: Some("web_service".into()),
        action: Some("CallNik".into()),
        decision: Decision::Allow,
        reason: None,
        policy_ids: vec!["pks-elements".into()],
        policy_hash: "0f".repeat(32),
        nik_digest: Some(key().nik_digest(&format!("99{n:014}"))),
        elements: vec!["NIK".into(), "NAMA_LGKP".into()],
        balikan: None,
        upstream_status: Some(200),
        latency_us: 100 + n,
        quota_used: Some(u32::try_from(n % 1000).expect("small")),
        quota_limit: Some(1000),
    }
}

/// A data-balikan batch of `hit`'s Pengguna returning the NIKs `accepted` (as `hit` makes
/// them from `n`), with `refused` more records refused, forwarded to the DWH.
pub fn balikan(time: DateTime<Utc>, n: u64, accepted: &[u64], refused: u32) -> Record {
    Record {
        action: Some(BALIKAN_ACTION.into()),
        nik_digest: None,
        elements: vec!["Nomor rekam medis".into()],
        balikan: Some(Balikan {
            accepted: u32::try_from(accepted.len()).expect("small"),
            refused,
            nik_digests: accepted
                .iter()
                .map(|m| key().nik_digest(&format!("99{m:014}")))
                .collect(),
        }),
        quota_used: None,
        quota_limit: None,
        ..hit(time, n)
    }
}

/// The day files of `dir` and their lines, oldest first.
pub fn files(dir: &Path) -> Vec<(String, Vec<String>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .filter(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).expect("read");
            let lines = text.lines().map(str::to_owned).collect();
            (n, lines)
        })
        .collect()
}

/// Replaces a day file's lines.
pub fn write_lines(dir: &Path, name: &str, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(dir.join(name), text).expect("write");
}

/// This test binary, run as a child that executes only the ignored test `name`, with
/// `env_key` set to `dir` (the child tests return at once when it is not set).
pub fn child(name: &str, env_key: &str, dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env_key, dir);
    command
}

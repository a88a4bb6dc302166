//! Round trips, concurrency with group commit, and rotation across a WIB day boundary.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gerbang_audit::{AuditError, AuditLog, Record, WriterOptions, verify};

use crate::support::{TestClock, balikan, files, hit, key, open};

#[test]
fn records_round_trip_and_the_chain_continues_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-03-01T10:00:00+07:00");
    let log = open(dir.path(), &clock);
    let mut sent = Vec::new();
    for n in 0..100 {
        let record = hit(clock.now(), n);
        let receipt = log.append(&record).expect("append");
        // seq 0 is the writer's open event.
        assert_eq!(receipt.seq, n + 1);
        sent.push(record);
    }
    let stats = log.stats();
    assert!(stats.healthy);
    assert_eq!(stats.records_written, 100);
    assert_eq!(stats.last_seq, Some(100));
    assert_eq!(stats.append_latency.count, 100);
    log.close().expect("close");

    let report = verify(dir.path(), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.records, report.open_events), (100, 1));
    assert_eq!(report.last_seq, Some(100));
    assert_eq!(report.checkpoint, Some(100), "close fsyncs and checkpoints");
    assert!(report.notes.is_empty(), "{report}");

    // Every record reads back as written; the line holds nothing else but the chain.
    let (_, lines) = &files(dir.path())[0];
    assert!(lines[0].contains(r#""event":"open""#), "{}", lines[0]);
    assert!(lines[0].contains(r#""checkpoint":"new""#), "{}", lines[0]);
    for (line, record) in lines[1..].iter().zip(&sent) {
        let back: Record = serde_json::from_str(line).expect("record");
        assert_eq!(&back, record);
        let value: serde_json::Value = serde_json::from_str(line).expect("json");
        let keys: BTreeSet<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert!(keys.contains("seq") && keys.contains("prev") && keys.contains("mac"));
        assert!(!line.contains("9900000000000"), "no raw NIK: {line}");
    }

    // A restart continues the chain, in the same day's file.
    let log = open(dir.path(), &clock);
    let receipt = log.append(&hit(clock.now(), 100)).expect("append");
    assert_eq!(receipt.seq, 102, "101 is the second open event");
    log.close().expect("close");
    let report = verify(dir.path(), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.records, report.open_events), (101, 2));
    assert_eq!(files(dir.path()).len(), 1);
}

/// Data-balikan batches go through the chain like any record: their counts and digests
/// read back as written, the log verifies, and an edited count is named. The lookups
/// between them have no `balikan` member, byte for byte the lines of a writer that
/// predates the field, and verify and parse alongside them.
#[test]
fn balikan_records_round_trip_and_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-03-01T10:00:00+07:00");
    let log = open(dir.path(), &clock);
    let sent = [
        hit(clock.now(), 1),
        hit(clock.now(), 2),
        balikan(clock.now(), 3, &[1, 2], 1),
        hit(clock.now(), 4),
        balikan(clock.now(), 5, &[], 3),
    ];
    for record in &sent {
        log.append(record).expect("append");
    }
    log.close().expect("close");
    let report = verify(dir.path(), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 5);

    let (name, lines) = &files(dir.path())[0];
    for (line, record) in lines[1..].iter().zip(&sent) {
        assert_eq!(
            line.contains(r#""balikan":"#),
            record.balikan.is_some(),
            "{line}"
        );
        let back: Record = serde_json::from_str(line).expect("record");
        assert_eq!(&back, record);
        assert_eq!(back.is_hit(), !back.is_balikan(), "{line}");
        assert!(!line.contains("9900000000000"), "no raw NIK: {line}");
    }
    assert!(lines[3].contains(r#""balikan":{"accepted":2,"refused":1,"nik_digests":["#));
    assert!(lines[5].contains(r#""balikan":{"accepted":0,"refused":3}"#));

    // One more record accepted than the gateway wrote: the seal no longer verifies.
    let mut edited = lines.clone();
    edited[3] = edited[3].replace(r#""accepted":2"#, r#""accepted":3"#);
    std::fs::write(dir.path().join(name), edited.join("\n") + "\n").expect("write");
    let report = verify(dir.path(), &key()).expect("verify");
    assert!(!report.is_intact(), "{report}");
    assert!(
        report
            .problem
            .as_ref()
            .is_some_and(|p| p.detail.contains("record 3 does not verify")),
        "{report}"
    );
}

#[test]
fn eight_threads_and_a_day_change_make_one_whole_chain() {
    const THREADS: u64 = 8;
    const EACH: u64 = 10_000;
    const NOWAIT: u64 = 1_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-06-30T23:59:00+07:00");
    let log = Arc::new(open(dir.path(), &clock));
    let appended = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (log, clock, appended) = (log.clone(), clock.clone(), appended.clone());
        handles.push(std::thread::spawn(move || {
            let mut seqs = Vec::with_capacity(EACH as usize);
            for i in 0..EACH {
                let n = t * EACH + i;
                seqs.push(log.append(&hit(clock.now(), n)).expect("append").seq);
                // Midnight WIB passes halfway through.
                if appended.fetch_add(1, Ordering::SeqCst) + 1 == THREADS * EACH / 2 {
                    clock.set("2026-07-01T00:00:01+07:00");
                }
            }
            seqs
        }));
    }
    // Refusals queued without waiting, interleaved with the rest.
    let nowait = {
        let (log, clock) = (log.clone(), clock.clone());
        std::thread::spawn(move || {
            for n in 0..NOWAIT {
                let mut record = hit(clock.now(), 1_000_000 + n);
                record.decision = gerbang_audit::Decision::Deny;
                record.reason = Some("quota_exhausted".into());
                record.upstream_status = None;
                log.append_nowait(&record).expect("append_nowait");
            }
        })
    };
    let mut seqs = BTreeSet::new();
    for handle in handles {
        for seq in handle.join().expect("thread") {
            assert!(seqs.insert(seq), "seq {seq} handed out twice");
        }
    }
    nowait.join().expect("thread");
    let log = Arc::into_inner(log).expect("last handle");
    let stats = log.stats();
    log.close().expect("close");

    let total = THREADS * EACH + NOWAIT;
    assert_eq!(stats.records_written, total);
    assert_eq!(stats.write_failures, 0);
    assert!(stats.batches_written <= total);
    eprintln!(
        "group commit: {} records in {} writes",
        stats.records_written, stats.batches_written
    );

    let report = verify(dir.path(), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, total);
    assert_eq!(report.last_seq, Some(total));
    let names: Vec<&str> = report.files.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(names, ["audit-2026-06-30.jsonl", "audit-2026-07-01.jsonl"]);
    assert_eq!(
        report.files[1].first_seq.expect("first"),
        report.files[0].last_seq.expect("last") + 1,
        "the new day's file continues the chain"
    );
    // Every receipt names a record in the log.
    assert_eq!(seqs.len() as u64, THREADS * EACH);
    assert!(seqs.iter().all(|&s| (1..=total).contains(&s)));
}

#[test]
fn a_second_writer_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-03-01T10:00:00+07:00");
    let _first = open(dir.path(), &clock);
    let err = AuditLog::open(dir.path(), key(), WriterOptions::default()).expect_err("busy");
    assert!(matches!(err, AuditError::DirectoryBusy { .. }), "{err}");
    assert!(err.to_string().contains("its own audit directory"), "{err}");
}

#[test]
fn a_clock_that_goes_back_never_reopens_an_older_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-03-02T10:00:00+07:00");
    let log = open(dir.path(), &clock);
    log.append(&hit(clock.now(), 1)).expect("append");
    clock.set("2026-03-01T23:00:00+07:00");
    log.append(&hit(clock.now(), 2)).expect("append");
    log.close().expect("close");
    let names: Vec<String> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["audit-2026-03-02.jsonl"]);
    assert!(verify(dir.path(), &key()).expect("verify").is_intact());
}

#[test]
fn awaited_appends_beside_blocking_ones_get_their_own_receipts_in_one_chain() {
    const TASKS: u64 = 64;
    const EACH: u64 = 500;
    const THREADS: u64 = 2;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-03-01T10:00:00+07:00");
    let log = Arc::new(open(dir.path(), &clock));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    // Blocking appends from plain threads compete for the same batches.
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (log, clock) = (log.clone(), clock.clone());
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|i| {
                        let n = 1_000_000 + t * EACH + i;
                        log.append(&hit(clock.now(), n)).expect("append").seq
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let awaited: Vec<(u64, u64)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (log, clock) = (log.clone(), clock.clone());
                tokio::spawn(async move {
                    let mut seqs = Vec::new();
                    for i in 0..EACH {
                        let n = t * EACH + i;
                        let record = hit(clock.now(), n);
                        let receipt = log.append_async(&record).await.expect("append_async");
                        seqs.push((receipt.seq, n));
                    }
                    seqs
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("task"));
        }
        all
    });
    let mut seqs = BTreeSet::new();
    for seq in threads
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .chain(awaited.iter().map(|&(seq, _)| seq))
    {
        assert!(seqs.insert(seq), "seq {seq} handed out twice");
    }
    let log = Arc::into_inner(log).expect("last handle");
    log.close().expect("close");
    let total = (TASKS + THREADS) * EACH;
    let report = verify(dir.path(), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, total);
    // An awaited receipt names its own record: the line with that `seq` carries the
    // request id its task wrote.
    let by_seq: std::collections::HashMap<u64, String> = files(dir.path())
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line).ok()?;
            Some((v["seq"].as_u64()?, v["request_id"].as_str()?.to_owned()))
        })
        .collect();
    for (seq, n) in awaited {
        assert_eq!(by_seq.get(&seq), Some(&format!("req-{n}")), "receipt {seq}");
    }
}

/// The guarantee callers rely on, under contention: `append` returns only once its record
/// is in the day file (a reader opening the file then finds it), the receipt names that
/// record and no other, and in the end every record is there once, in one intact chain.
/// A receipt computed from the wrong place in a batch, or handed out before the batch's
/// write, fails here.
#[test]
fn a_receipt_comes_only_once_its_own_record_is_in_the_file() {
    const THREADS: u64 = 8;
    const EACH: u64 = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-03-01T10:00:00+07:00");
    let log = Arc::new(open(dir.path(), &clock));
    let file = dir.path().join("audit-2026-03-01.jsonl");
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (log, clock, file) = (log.clone(), clock.clone(), file.clone());
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let n = t * EACH + i;
                    let seq = log.append(&hit(clock.now(), n)).expect("append").seq;
                    let text = std::fs::read_to_string(&file).expect("read the day file");
                    let line = text
                        .lines()
                        .rev()
                        .find(|l| l.contains(&format!("\"seq\":{seq},")))
                        .unwrap_or_else(|| panic!("receipt {seq} before its record was written"));
                    assert!(
                        line.contains(&format!("\"request_id\":\"req-{n}\"")),
                        "receipt {seq} of req-{n} names another record: {line}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a writer thread failed");
    }
    let log = Arc::into_inner(log).expect("last handle");
    log.close().expect("close");
    let report = verify(dir.path(), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, THREADS * EACH);
    let ids: BTreeSet<String> = files(dir.path())
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line).ok()?;
            Some(v["request_id"].as_str()?.to_owned())
        })
        .collect();
    assert_eq!(
        ids.len() as u64,
        THREADS * EACH,
        "a record lost or written twice"
    );
}

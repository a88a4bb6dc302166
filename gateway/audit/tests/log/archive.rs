//! Closed days compacted, days past the retention archived (to a directory or handed to a
//! command), the chain verifiable end to end across them, and reports over them equal to
//! reports over the plain files (issue 17).

use std::path::{Path, PathBuf};

use gerbang_audit::{
    ArchiveTo, AuditError, AuditLog, Decision, Keep, MaintenanceError, Note, ProblemKind,
    Retention, Semester, VerifyError, WriterOptions, report_with_archive, verify,
    verify_with_archive,
};

use crate::support::{TestClock, hit, key};

/// Days 1–5 March 2026; the log writes into the 5th.
const DAYS: [&str; 5] = [
    "2026-03-01",
    "2026-03-02",
    "2026-03-03",
    "2026-03-04",
    "2026-03-05",
];

fn options(clock: &TestClock, retention: Option<Retention>) -> WriterOptions {
    WriterOptions {
        instance: "gw-test".into(),
        clock: clock.clock(),
        retention,
        background_maintenance: false,
        ..WriterOptions::default()
    }
}

fn keep_two_days_in(archive: &Path) -> Option<Retention> {
    Some(Retention {
        keep: Keep::Days(2),
        to: ArchiveTo::Dir(archive.to_path_buf()),
    })
}

/// Writes 40 records a day over [`DAYS`], hits and refusals of two User IDs, with the test
/// clock; returns the open log (in the last day).
fn write_days(dir: &Path, clock: &TestClock, retention: Option<Retention>) -> AuditLog {
    let log = AuditLog::open(dir, key(), options(clock, retention)).expect("open");
    let mut n = 0;
    for day in DAYS {
        for i in 0..40u64 {
            clock.set(&format!("{day}T{:02}:{:02}:00+07:00", 8 + i / 10, i % 60));
            let mut record = hit(clock.now(), n);
            if i % 5 == 0 {
                record.decision = Decision::Deny;
                record.reason = Some("quota_exhausted".into());
                record.upstream_status = None;
            }
            if i % 3 == 0 {
                record.user_id = Some("dinas_uji_02".into());
            }
            log.append(&record).expect("append");
            n += 1;
        }
    }
    log
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .filter(|n| n.starts_with("audit-"))
        .collect();
    names.sort();
    names
}

fn semester() -> Semester {
    "2026-1".parse().expect("semester")
}

/// Recompresses an archived day after `edit` changed its plain text, as a forger would.
fn rewrite_compacted(path: &Path, edit: impl FnOnce(String) -> String) {
    let plain = zstd::decode_all(std::fs::File::open(path).expect("open")).expect("decode");
    let text = edit(String::from_utf8(plain).expect("utf8"));
    let packed = zstd::encode_all(text.as_bytes(), 3).expect("encode");
    std::fs::write(path, packed).expect("write");
}

#[test]
fn several_days_are_compacted_and_archived_and_a_tampered_archived_day_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive_dir = tempfile::tempdir().expect("tempdir");
    let (live, archive) = (dir.path(), archive_dir.path());
    let clock = TestClock::at("2026-03-01T08:00:00+07:00");
    let log = write_days(live, &clock, keep_two_days_in(archive));

    // What the plain files say, before anything is compacted or moved.
    let plain = verify(live, &key()).expect("verify");
    assert!(plain.is_intact(), "{plain}");
    let plain_report = report_with_archive(live, None, semester(), None).expect("report");
    assert_eq!(plain_report.totals.requests, 200);

    let done = log.maintain().expect("maintain");
    // Every closed day compacted; the two past the retention (kept: the 3rd on) archived.
    assert_eq!(done.compacted.len(), 4, "{done:?}");
    assert_eq!(done.archived.len(), 2, "{done:?}");
    assert_eq!(
        names(live),
        [
            "audit-2026-03-03.jsonl.zst",
            "audit-2026-03-04.jsonl.zst",
            "audit-2026-03-05.jsonl",
        ]
    );
    assert_eq!(
        names(archive),
        ["audit-2026-03-01.jsonl.zst", "audit-2026-03-02.jsonl.zst"]
    );
    let stats = log.stats();
    assert_eq!((stats.days_compacted, stats.days_archived), (4, 2));
    assert_eq!(stats.maintenance_failures, 0);
    // A second pass has nothing to do.
    let again = log.maintain().expect("maintain");
    assert!(again.compacted.is_empty() && again.archived.is_empty());

    // The chain verifies across the compacted and archived days, as one.
    let report = verify_with_archive(live, Some(archive), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!(
        (report.records, report.last_seq),
        (plain.records, plain.last_seq)
    );
    assert_eq!(report.files.len(), 5);
    assert!(report.files[0].file.ends_with("audit-2026-03-01.jsonl.zst"));
    // Without the archive directory nothing is verified, and it says what is missing.
    let err = verify(live, &key()).expect_err("archive not given");
    assert!(matches!(err, VerifyError::ArchiveNotGiven { .. }), "{err}");
    assert!(
        err.to_string().contains("audit-2026-03-01.jsonl.zst"),
        "{err}"
    );

    // Reports over the archived days are those over the plain files.
    let archived_report =
        report_with_archive(live, Some(archive), semester(), None).expect("report");
    assert_eq!(archived_report, plain_report);

    // The log continues after a restart, and the next day compacts the one before.
    log.close().expect("close");
    clock.set("2026-03-06T09:00:00+07:00");
    let log =
        AuditLog::open(live, key(), options(&clock, keep_two_days_in(archive))).expect("reopen");
    log.append(&hit(clock.now(), 999)).expect("append");
    let done = log.maintain().expect("maintain");
    assert_eq!(
        (done.compacted.len(), done.archived.len()),
        (1, 1),
        "{done:?}"
    );
    log.close().expect("close");
    let report = verify_with_archive(live, Some(archive), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");

    // One record edited in an archived day, recompressed as a forger would: named.
    let day2 = archive.join("audit-2026-03-02.jsonl.zst");
    let original = std::fs::read(&day2).expect("read");
    rewrite_compacted(&day2, |text| {
        text.replacen("\"quota_exhausted\"", "\"login_failed\"", 1)
    });
    let report = verify_with_archive(live, Some(archive), &key()).expect("verify");
    let problem = report.problem.as_ref().expect("tampering found");
    assert_eq!(problem.kind, ProblemKind::Edited, "{report}");
    assert_eq!(problem.at.file, day2.display().to_string(), "{report}");
    // The first refusal of the 2nd is its first line (i = 0).
    assert_eq!(problem.at.line, 1, "{report}");
    assert!(report.to_string().contains("audit-2026-03-02.jsonl.zst"));

    // A byte changed in the compressed stream: it no longer decompresses, and is named.
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    std::fs::write(&day2, &flipped).expect("write");
    let report = verify_with_archive(live, Some(archive), &key()).expect("verify");
    let problem = report.problem.as_ref().expect("damage found");
    assert_eq!(problem.at.file, day2.display().to_string(), "{report}");

    // The archived day removed: named from the manifest.
    std::fs::remove_file(&day2).expect("remove");
    let report = verify_with_archive(live, Some(archive), &key()).expect("verify");
    let problem = report.problem.as_ref().expect("removal found");
    assert_eq!(problem.kind, ProblemKind::Removed, "{report}");
    assert_eq!(problem.at.file, day2.display().to_string(), "{report}");

    // Put back, it verifies again.
    std::fs::write(&day2, &original).expect("restore");
    let report = verify_with_archive(live, Some(archive), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
}

#[test]
fn a_day_that_does_not_verify_is_compacted_but_never_archived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive_dir = tempfile::tempdir().expect("tempdir");
    let (live, archive) = (dir.path(), archive_dir.path());
    let clock = TestClock::at("2026-03-01T08:00:00+07:00");
    let log = write_days(live, &clock, keep_two_days_in(archive));
    let day2 = live.join("audit-2026-03-02.jsonl");
    let text = std::fs::read_to_string(&day2).expect("read");
    std::fs::write(&day2, text.replacen("dinas_uji_01", "dinas_uji_09", 1)).expect("edit");

    let err = log.maintain().expect_err("not archived");
    assert!(
        matches!(err, MaintenanceError::DoesNotVerify { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("audit-2026-03-02.jsonl.zst"),
        "{err}"
    );
    // The 1st (which verifies) went; the 2nd stays, compacted, for an investigator.
    assert_eq!(names(archive), ["audit-2026-03-01.jsonl.zst"]);
    assert!(live.join("audit-2026-03-02.jsonl.zst").is_file());
    assert_eq!(log.stats().maintenance_failures, 1);
    let report = verify_with_archive(live, Some(archive), &key()).expect("verify");
    let problem = report.problem.expect("tampering found");
    assert_eq!(problem.at.file, "audit-2026-03-02.jsonl.zst");
}

#[test]
fn a_compaction_cut_short_is_finished_and_differing_copies_are_both_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path();
    let clock = TestClock::at("2026-03-01T08:00:00+07:00");
    let log = write_days(live, &clock, None);
    // A crash after the compacted copy took its name, before the plain file was removed.
    let plain = live.join("audit-2026-03-01.jsonl");
    let packed = zstd::encode_all(std::fs::File::open(&plain).expect("open"), 3).expect("encode");
    std::fs::write(live.join("audit-2026-03-01.jsonl.zst"), &packed).expect("write");
    // And a day whose two copies differ.
    let day2 = live.join("audit-2026-03-02.jsonl");
    std::fs::write(
        live.join("audit-2026-03-02.jsonl.zst"),
        zstd::encode_all(&b"{}\n"[..], 3).expect("encode"),
    )
    .expect("write");

    let err = log.maintain().expect_err("copies differ");
    assert!(
        matches!(err, MaintenanceError::CopiesDiffer { .. }),
        "{err}"
    );
    assert!(
        !plain.exists(),
        "the finished compaction removed the plain file"
    );
    assert!(
        day2.exists() && live.join("audit-2026-03-02.jsonl.zst").exists(),
        "differing copies are both kept"
    );
    // Verify reads the plain file of a day in both storages: what was written.
    let report = verify(live, &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
}

#[test]
fn an_archive_command_takes_the_days_and_verify_steps_over_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tempfile::tempdir().expect("tempdir");
    let live = dir.path();
    let clock = TestClock::at("2026-03-01T08:00:00+07:00");
    // `sh -c SCRIPT STORE FILE`: the script copies the day file into the store and checks
    // the copy against the SHA-256 the gateway passes.
    let copy = Retention {
        keep: Keep::Days(2),
        to: ArchiveTo::Command(vec![
            "sh".into(),
            "-c".into(),
            r#"cp "$1" "$0"/ && test "$(sha256sum < "$0/${1##*/}" | cut -d' ' -f1)" = "$GERBANG_AUDIT_SHA256""#.into(),
            store.path().display().to_string(),
        ]),
    };
    let log = write_days(live, &clock, Some(copy));
    let plain_report = report_with_archive(live, None, semester(), None).expect("report");

    let done = log.maintain().expect("maintain");
    assert_eq!(done.archived.len(), 2, "{done:?}");
    assert_eq!(
        names(store.path()),
        ["audit-2026-03-01.jsonl.zst", "audit-2026-03-02.jsonl.zst"]
    );
    assert!(!live.join("audit-2026-03-01.jsonl.zst").exists());
    log.close().expect("close");

    // Verify steps over the handed days by their manifest entries and says so.
    let report = verify(live, &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    let handed = report
        .notes
        .iter()
        .filter(|n| matches!(n, Note::HandedOver { .. }))
        .count();
    assert_eq!(handed, 2, "{report}");
    // Given the store as the archive directory, the days are read and verified again.
    let report = verify_with_archive(live, Some(store.path()), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert!(report.notes.is_empty(), "{report}");
    let full = report_with_archive(live, Some(store.path()), semester(), None).expect("report");
    assert_eq!(full, plain_report);
    // Without it, the report names the days it could not read.
    let partial = report_with_archive(live, None, semester(), None).expect("report");
    assert_eq!(partial.days_not_read.len(), 2);
    assert_eq!(partial.totals.requests, 120);

    // An edited manifest entry is named.
    let manifest = live.join("audit.archive");
    let text = std::fs::read_to_string(&manifest).expect("read");
    std::fs::write(&manifest, text.replacen("\"lines\":41", "\"lines\":40", 1)).expect("edit");
    let report = verify(live, &key()).expect("verify");
    let problem = report.problem.as_ref().expect("edited entry found");
    assert_eq!(
        (problem.kind, problem.at.file.as_str(), problem.at.line),
        (ProblemKind::Edited, "audit.archive", 1),
        "{report}"
    );
}

#[test]
fn a_failing_archive_command_keeps_the_day_until_it_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path();
    let clock = TestClock::at("2026-03-01T08:00:00+07:00");
    let failing = Retention {
        keep: Keep::Days(3),
        to: ArchiveTo::Command(vec!["false".into()]),
    };
    let log = write_days(live, &clock, Some(failing));
    let err = log.maintain().expect_err("command fails");
    assert!(
        matches!(err, MaintenanceError::CommandFailed { .. }),
        "{err}"
    );
    assert!(live.join("audit-2026-03-01.jsonl.zst").is_file());
    log.close().expect("close");
    // Entered in the manifest and still here: verify reads the file.
    let report = verify(live, &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert!(report.notes.is_empty(), "{report}");

    let working = Retention {
        keep: Keep::Days(3),
        to: ArchiveTo::Command(vec!["true".into()]),
    };
    let log = AuditLog::open(live, key(), options(&clock, Some(working))).expect("reopen");
    let done = log.maintain().expect("maintain");
    assert_eq!(done.archived.len(), 1, "{done:?}");
    assert!(!live.join("audit-2026-03-01.jsonl.zst").exists());
}

#[test]
fn a_move_to_another_filesystem_copies_checks_then_removes() {
    let shm = Path::new("/dev/shm");
    let dir = tempfile::tempdir().expect("tempdir");
    if !shm.is_dir() || device(shm) == device(dir.path()) {
        eprintln!("no second filesystem here: the rename path of the previous tests applies");
        return;
    }
    let archive_dir = tempfile::tempdir_in(shm).expect("tempdir");
    let clock = TestClock::at("2026-03-01T08:00:00+07:00");
    let log = write_days(dir.path(), &clock, keep_two_days_in(archive_dir.path()));
    let done = log.maintain().expect("maintain");
    assert_eq!(done.archived.len(), 2, "{done:?}");
    assert_eq!(
        names(archive_dir.path()),
        ["audit-2026-03-01.jsonl.zst", "audit-2026-03-02.jsonl.zst"]
    );
    log.close().expect("close");
    let report = verify_with_archive(dir.path(), Some(archive_dir.path()), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
}

fn device(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("metadata").dev()
}

#[test]
fn the_background_thread_compacts_the_day_before_once_a_new_day_begins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-03-01T23:59:00+07:00");
    let log = AuditLog::open(
        dir.path(),
        key(),
        WriterOptions {
            background_maintenance: true,
            ..options(&clock, None)
        },
    )
    .expect("open");
    log.append(&hit(clock.now(), 1)).expect("append");
    clock.set("2026-03-02T00:00:01+07:00");
    log.append(&hit(clock.now(), 2)).expect("append");
    let compacted: PathBuf = dir.path().join("audit-2026-03-01.jsonl.zst");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while log.stats().days_compacted < 1 {
        assert!(std::time::Instant::now() < deadline, "never compacted");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(compacted.is_file());
    assert!(!dir.path().join("audit-2026-03-01.jsonl").exists());
    log.close().expect("close");
    let report = verify(dir.path(), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 2);
}

#[test]
fn the_log_does_not_open_without_its_minimum_free_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-03-01T08:00:00+07:00");
    let err = AuditLog::open(
        dir.path(),
        key(),
        WriterOptions {
            min_free_bytes: u64::MAX,
            ..options(&clock, None)
        },
    )
    .expect_err("no room");
    assert!(matches!(err, AuditError::NotEnoughSpace { .. }), "{err}");
    assert!(err.to_string().contains("audit.min_free_mib"), "{err}");
    assert!(
        !dir.path().join("audit.lock").exists(),
        "refused before anything was written"
    );
    let log = AuditLog::open(
        dir.path(),
        key(),
        WriterOptions {
            min_free_bytes: 1,
            alert_free_bytes: u64::MAX,
            ..options(&clock, None)
        },
    )
    .expect("room enough");
    let stats = log.stats();
    let disk = stats.disk.expect("free space");
    assert!(
        disk.free > 1 && disk.free < stats.alert_free_bytes,
        "{stats:?}"
    );
}

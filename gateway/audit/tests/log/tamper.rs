//! Each kind of tampering is detected and the first bad record named.

use std::path::Path;

use gerbang_audit::{
    AuditError, AuditKey, AuditLog, Note, ProblemKind, VerifyReport, WriterOptions, verify,
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::support::{TestClock, files, hit, key, open, write_lines};

const DAY1: &str = "audit-2026-03-01.jsonl";
const DAY2: &str = "audit-2026-03-02.jsonl";

/// Two day files: DAY1 holds the open event (seq 0, line 1) and records 1–10 (lines 2–11),
/// DAY2 records 11–20 (lines 1–10).
fn fixture() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::at("2026-03-01T22:00:00+07:00");
    let log = open(dir.path(), &clock);
    for n in 1..=20 {
        if n == 11 {
            clock.set("2026-03-02T08:00:00+07:00");
        }
        log.append(&hit(clock.now(), n)).expect("append");
    }
    log.close().expect("close");
    let report = verify(dir.path(), &key()).expect("verify");
    assert!(report.is_intact(), "{report}");
    dir
}

fn lines_of(dir: &Path, name: &str) -> Vec<String> {
    files(dir)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, l)| l)
        .expect("file")
}

fn verified(dir: &Path) -> VerifyReport {
    verify(dir, &key()).expect("verify")
}

/// Asserts the first problem: kind, file, line and stated seq.
fn assert_problem(
    report: &VerifyReport,
    kind: ProblemKind,
    file: &str,
    line: u64,
    seq: Option<u64>,
) {
    let problem = report
        .problem
        .as_ref()
        .unwrap_or_else(|| panic!("not detected:\n{report}"));
    assert_eq!(
        (
            problem.kind,
            problem.at.file.as_str(),
            problem.at.line,
            problem.at.seq
        ),
        (kind, file, line, seq),
        "{report}"
    );
    assert!(report.to_string().contains("FAILED"), "{report}");
}

#[test]
fn an_edited_field_is_named() {
    let dir = fixture();
    let mut lines = lines_of(dir.path(), DAY1);
    lines[4] = lines[4].replace(r#""decision":"allow""#, r#""decision":"deny""#);
    write_lines(dir.path(), DAY1, &lines);
    let report = verified(dir.path());
    assert_problem(&report, ProblemKind::Edited, DAY1, 5, Some(4));
    assert!(
        report
            .problem
            .as_ref()
            .is_some_and(|p| p.detail.contains("record 4 does not verify"))
    );
}

#[test]
fn an_edited_last_record_is_named() {
    let dir = fixture();
    let mut lines = lines_of(dir.path(), DAY2);
    lines[9] = lines[9].replace(r#""upstream_status":200"#, r#""upstream_status":404"#);
    write_lines(dir.path(), DAY2, &lines);
    assert_problem(
        &verified(dir.path()),
        ProblemKind::Edited,
        DAY2,
        10,
        Some(20),
    );
}

#[test]
fn a_deleted_line_is_named() {
    let dir = fixture();
    let mut lines = lines_of(dir.path(), DAY1);
    lines.remove(4);
    write_lines(dir.path(), DAY1, &lines);
    let report = verified(dir.path());
    assert_problem(&report, ProblemKind::Removed, DAY1, 5, Some(5));
    assert!(
        report
            .problem
            .as_ref()
            .is_some_and(|p| p.detail.contains("record 4 is missing"))
    );
}

#[test]
fn a_forged_line_is_named() {
    let dir = fixture();
    let mut lines = lines_of(dir.path(), DAY1);
    let forged = lines[4].replace("req-4", "req-forged");
    lines.insert(5, forged);
    write_lines(dir.path(), DAY1, &lines);
    assert_problem(
        &verified(dir.path()),
        ProblemKind::Inserted,
        DAY1,
        6,
        Some(4),
    );
}

#[test]
fn a_replayed_copy_of_a_record_is_named() {
    let dir = fixture();
    let mut lines = lines_of(dir.path(), DAY1);
    let copy = lines[2].clone();
    lines.insert(5, copy);
    write_lines(dir.path(), DAY1, &lines);
    let report = verified(dir.path());
    assert_problem(&report, ProblemKind::Inserted, DAY1, 6, Some(2));
    assert!(
        report
            .problem
            .as_ref()
            .is_some_and(|p| p.detail.contains("copy of record 2"))
    );
}

#[test]
fn swapped_lines_are_named() {
    let dir = fixture();
    let mut lines = lines_of(dir.path(), DAY1);
    lines.swap(4, 5);
    write_lines(dir.path(), DAY1, &lines);
    let report = verified(dir.path());
    assert_problem(&report, ProblemKind::Reordered, DAY1, 5, Some(5));
    assert!(
        report
            .problem
            .as_ref()
            .is_some_and(|p| p.detail.contains("record 5 stands before record 4"))
    );
}

#[test]
fn a_truncated_tail_is_caught_by_the_checkpoint() {
    let dir = fixture();
    let mut lines = lines_of(dir.path(), DAY2);
    lines.truncate(8);
    write_lines(dir.path(), DAY2, &lines);
    let report = verified(dir.path());
    assert_problem(&report, ProblemKind::HeadMismatch, DAY2, 8, Some(18));
    assert!(
        report
            .problem
            .as_ref()
            .is_some_and(|p| p.detail.contains("record 20"))
    );

    // The writer refuses to continue such a log rather than paper over it.
    let err = AuditLog::open(dir.path(), key(), WriterOptions::default()).expect_err("refused");
    assert!(
        matches!(
            err,
            AuditError::CheckpointAhead {
                checkpoint: 20,
                last: Some(18)
            }
        ),
        "{err}"
    );
}

#[test]
fn a_tail_cut_mid_line_is_caught_by_the_checkpoint() {
    let dir = fixture();
    let path = dir.path().join(DAY2);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 30]).expect("write");
    let report = verified(dir.path());
    assert_problem(&report, ProblemKind::HeadMismatch, DAY2, 9, Some(19));
    assert!(
        matches!(report.notes.as_slice(), [Note::TornTail { .. }]),
        "{report}"
    );
}

#[test]
fn a_file_rewritten_with_a_plain_sha_chain_is_named() {
    let dir = fixture();
    // What someone without the key can do: change a record, then recompute every `prev` and
    // `mac` of the file as plain SHA-256.
    let mut prev = "0".repeat(64);
    let lines: Vec<String> = lines_of(dir.path(), DAY1)
        .iter()
        .map(|line| {
            let line = line.replace("dinas_uji_01", "someone_else");
            let body_end = line.find(r#","mac":""#).expect("mac");
            let prev_at = line.find(r#""prev":""#).expect("prev") + 8;
            let body = format!(
                "{}{}{}",
                &line[..prev_at],
                prev,
                &line[prev_at + 64..body_end]
            );
            let mac = hex::encode(Sha256::digest(body.as_bytes()));
            prev = mac.clone();
            format!(r#"{body},"mac":"{mac}"}}"#)
        })
        .collect();
    write_lines(dir.path(), DAY1, &lines);
    assert_problem(&verified(dir.path()), ProblemKind::Edited, DAY1, 1, Some(0));
}

#[test]
fn a_removed_file_is_named() {
    let dir = fixture();
    std::fs::remove_file(dir.path().join(DAY1)).expect("remove");
    let report = verified(dir.path());
    assert_problem(&report, ProblemKind::Removed, DAY2, 1, Some(11));
    assert!(
        report
            .problem
            .as_ref()
            .is_some_and(|p| p.detail.contains("records 0 to 10 are missing"))
    );
}

#[test]
fn a_removed_or_forged_checkpoint_is_named() {
    let dir = fixture();
    let head = dir.path().join("audit.head");
    let original = std::fs::read_to_string(&head).expect("head");
    std::fs::write(&head, original.replace(r#""seq":20"#, r#""seq":19"#)).expect("write");
    let report = verified(dir.path());
    assert_problem(&report, ProblemKind::HeadMismatch, "audit.head", 1, None);
    std::fs::remove_file(&head).expect("remove");
    let report = verified(dir.path());
    assert_problem(&report, ProblemKind::HeadMismatch, "audit.head", 1, None);
    assert!(
        report
            .problem
            .as_ref()
            .is_some_and(|p| p.detail.contains("missing"))
    );
}

#[test]
fn another_key_verifies_nothing_and_the_writer_refuses_it() {
    let dir = fixture();
    let other = AuditKey::from_material(&[0x11; 32], "other").expect("key");
    let report = verify(dir.path(), &other).expect("verify");
    assert_eq!(
        report.problem.as_ref().map(|p| p.kind),
        Some(ProblemKind::Edited),
        "{report}"
    );
    let err = AuditLog::open(dir.path(), other, WriterOptions::default()).expect_err("refused");
    assert!(
        matches!(err, AuditError::CheckpointDoesNotVerify { .. }),
        "{err}"
    );
}

#[test]
fn a_torn_tail_is_not_tampering_and_the_writer_steps_over_it() {
    let dir = fixture();
    // What a crash in the middle of a write leaves: part of a line, no newline.
    let path = dir.path().join(DAY2);
    let mut bytes = std::fs::read(&path).expect("read");
    let torn = br#"{"seq":21,"prev":"ab12","time":"2026-03-02T"#;
    bytes.extend_from_slice(torn);
    std::fs::write(&path, &bytes).expect("write");
    let report = verified(dir.path());
    assert!(report.is_intact(), "{report}");
    assert!(
        matches!(&report.notes[..], [Note::TornTail { at, bytes }] if at.file == DAY2 && at.line == 11 && *bytes == torn.len() as u64),
        "{report}"
    );

    // The writer starts a new line after it and its open event states the torn bytes.
    let clock = TestClock::at("2026-03-02T09:00:00+07:00");
    let log = open(dir.path(), &clock);
    assert_eq!(log.append(&hit(clock.now(), 21)).expect("append").seq, 22);
    log.close().expect("close");
    let report = verified(dir.path());
    assert!(report.is_intact(), "{report}");
    assert!(
        matches!(&report.notes[..], [Note::RecoveredTornBytes { at, bytes, by }]
            if at.line == 11 && *bytes == torn.len() as u64 + 1 && by.line == 12 && by.seq == Some(21)),
        "{report}"
    );

    // Changing the stepped-over bytes afterwards is no longer a crash.
    let mut lines = lines_of(dir.path(), DAY2);
    lines[10] = lines[10].replace("ab12", "ab13");
    write_lines(dir.path(), DAY2, &lines);
    assert_problem(&verified(dir.path()), ProblemKind::Inserted, DAY2, 11, None);
}

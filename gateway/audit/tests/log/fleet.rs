//! Several instances' logs as one account (docs/audit.md, "Several instances"): one verdict
//! per chain, tampering named by its directory and winning over an unreadable one, and one
//! semester report in which no record is counted twice.

use std::path::{Path, PathBuf};

use gerbang_audit::{
    AuditLog, LogDir, Report, ReportError, Semester, Verdict, WriterOptions, report_fleet,
    verify_fleet,
};

use crate::support::{TestClock, files, hit, key, write_lines};

/// Writes `hits` lookups by `user` on 2 and 3 March 2026 as instance `instance`, opened at
/// 08:`hits` (a writer opened at the same microsecond under the same name would write the
/// same first line: one chain, forked).
fn write_instance(dir: &Path, instance: &str, user: &str, hits: u64) {
    let clock = TestClock::at(&format!("2026-03-02T08:{hits:02}:00+07:00"));
    let log = AuditLog::open(
        dir,
        key(),
        WriterOptions {
            instance: instance.into(),
            clock: clock.clock(),
            background_maintenance: false,
            ..WriterOptions::default()
        },
    )
    .expect("open the log");
    for n in 0..hits {
        let day = 2 + n % 2;
        clock.set(&format!("2026-03-0{day}T10:{:02}:00+07:00", n % 60));
        let mut record = hit(clock.now(), n);
        record.instance = instance.into();
        record.user_id = Some(user.into());
        log.append(&record).expect("append");
    }
    log.close().expect("close");
}

fn semester() -> Semester {
    "2026-1".parse().expect("semester")
}

fn log(dir: &Path) -> LogDir {
    LogDir::new(dir, None)
}

/// Hits per User ID.
fn hits_by_user(report: &Report) -> Vec<(String, u64)> {
    report
        .pengguna
        .iter()
        .flat_map(|p| &p.users)
        .map(|u| (u.user_id.clone().unwrap_or_default(), u.usage.hits))
        .collect()
}

/// Two instances, `gw-a` (7 hits by user_a) and `gw-b` (5 by user_b), under one directory.
fn two_instances() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    write_instance(&a, "gw-a", "user_a", 7);
    write_instance(&b, "gw-b", "user_b", 5);
    (root, a, b)
}

#[test]
fn each_chain_has_its_verdict_and_tampering_wins_over_not_verified() {
    let (root, a, b) = two_instances();
    let missing = root.path().join("never-written");

    let fleet = verify_fleet(&[log(&a), log(&b)], &key()).expect("fleet");
    assert_eq!(fleet.verdict(), Verdict::Intact, "{fleet}");
    let shown = fleet.to_string();
    assert!(shown.contains("(instance gw-a): INTACT"), "{shown}");
    assert!(shown.contains("(instance gw-b): INTACT"), "{shown}");

    // One chain that cannot be read: not intact as a whole, the other still intact.
    let fleet = verify_fleet(&[log(&a), log(&missing)], &key()).expect("fleet");
    assert_eq!(fleet.verdict(), Verdict::NotVerified, "{fleet}");
    assert!(
        fleet.chains[0]
            .outcome
            .as_ref()
            .is_ok_and(|r| r.is_intact())
    );

    // One record of B edited: B is named, A is still intact, and tampering decides the
    // whole even beside a directory that cannot be read.
    let (name, mut lines) = files(&b).into_iter().next().expect("a day file");
    lines[1] = lines[1].replacen("user_b", "user_x", 1);
    write_lines(&b, &name, &lines);
    let fleet = verify_fleet(&[log(&missing), log(&a), log(&b)], &key()).expect("fleet");
    assert_eq!(fleet.verdict(), Verdict::Tampered, "{fleet}");
    let shown = fleet.to_string();
    assert!(shown.contains("(instance gw-a): INTACT"), "{shown}");
    assert!(
        shown.contains(&format!("{} (instance gw-b): TAMPERED", b.display())),
        "{shown}"
    );
    assert!(shown.contains(&name), "{shown}");
    assert!(shown.contains("NOT VERIFIED"), "{shown}");
}

#[test]
fn a_directory_given_twice_is_verified_once() {
    let (root, a, b) = two_instances();
    let link = root.path().join("link-to-a");
    std::os::unix::fs::symlink(&a, &link).expect("symlink");
    let fleet = verify_fleet(&[log(&a), log(&b), log(&a), log(&link)], &key()).expect("fleet");
    assert_eq!(fleet.chains.len(), 2, "{fleet}");
    assert_eq!(fleet.repeated, vec![a.clone(), link]);
    assert_eq!(fleet.verdict(), Verdict::Intact);
}

#[test]
fn a_fleet_report_adds_up_every_chain_once() {
    let (root, a, b) = two_instances();
    let once = report_fleet(&[log(&a), log(&b)], semester(), None).expect("report");
    assert_eq!(
        hits_by_user(&once),
        vec![("user_a".to_owned(), 7), ("user_b".to_owned(), 5)]
    );
    assert_eq!(once.totals.hits, 12);
    assert_eq!(once.totals.requests, 12);
    let instances: Vec<Vec<String>> = once.chains.iter().map(|c| c.instances.clone()).collect();
    assert_eq!(instances, vec![vec!["gw-a"], vec!["gw-b"]]);

    // The same directory again, also through a symbolic link: read once.
    let link = root.path().join("link-to-a");
    std::os::unix::fs::symlink(&a, &link).expect("symlink");
    let again =
        report_fleet(&[log(&a), log(&b), log(&link), log(&a)], semester(), None).expect("report");
    assert_eq!(hits_by_user(&again), hits_by_user(&once));
    assert_eq!(again.totals, once.totals);

    // A day in both the log directory and its archive (an archiving cut short) counts once.
    let archive = root.path().join("a-archive");
    std::fs::create_dir(&archive).expect("mkdir");
    for (name, lines) in files(&a) {
        write_lines(&archive, &name, &lines);
    }
    let with_archive =
        report_fleet(&[LogDir::new(&a, Some(archive)), log(&b)], semester(), None).expect("report");
    assert_eq!(with_archive.totals, once.totals);
}

#[test]
fn a_copy_of_a_chain_and_two_chains_under_one_name_are_refused() {
    let (root, a, b) = two_instances();
    let copy = root.path().join("copy-of-a");
    std::fs::create_dir(&copy).expect("mkdir");
    for entry in std::fs::read_dir(&a).expect("read a") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, copy.join(path.file_name().expect("name"))).expect("copy");
    }
    let err = report_fleet(&[log(&a), log(&b), log(&copy)], semester(), None)
        .expect_err("a copy added up");
    assert!(matches!(err, ReportError::SameChain { .. }), "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains(&a.display().to_string()) && shown.contains("copy-of-a"),
        "{shown}"
    );

    // Another chain that also calls itself gw-a.
    let other = root.path().join("other-a");
    write_instance(&other, "gw-a", "user_c", 3);
    let err = report_fleet(&[log(&a), log(&other)], semester(), None)
        .expect_err("two writers under one name added up");
    assert!(
        matches!(&err, ReportError::InstanceClaimedTwice { instance, .. } if instance == "gw-a"),
        "{err}"
    );
    // verify tells them apart and warns, its verdicts unchanged.
    let fleet = verify_fleet(&[log(&a), log(&copy), log(&other)], &key()).expect("fleet");
    assert_eq!(fleet.verdict(), Verdict::Intact, "{fleet}");
    let shown = fleet.to_string();
    assert!(shown.contains("hold the same chain"), "{shown}");
    assert!(
        shown.contains("different chains name instance gw-a"),
        "{shown}"
    );
}

//! A child started through the supervisor does not outlive a `kill -9` of its parent.
//!
//! This test process makes itself a child subreaper, then starts a copy of itself as the
//! *parent* (the ignored test below), which starts `sleep 600` through the supervisor and
//! prints its pid. The test kills the parent with SIGKILL, so no drop runs; the orphaned
//! `sleep` is adopted by this process, which can then wait for it and see how it ended.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gerbang_supervise::{Output, Process, Wait};
use rustix::process::{Pid, Signal, WaitOptions};

const ROLE: &str = "GERBANG_SUPERVISE_TEST_ROLE";

#[test]
fn a_child_dies_with_a_parent_killed_by_sigkill() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "supervising_parent", "--ignored", "--nocapture"])
        .env(ROLE, "parent")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(parent.stdout.take().unwrap()).lines();
    let child: i32 = loop {
        let line = lines
            .next()
            .expect("the parent printed no child pid")
            .unwrap();
        if let Some(pid) = line.strip_prefix("child pid ") {
            break pid.trim().parse().unwrap();
        }
    };
    let child = Pid::from_raw(child).unwrap();

    rustix::process::kill_process(Pid::from_child(&parent), Signal::KILL).unwrap();
    parent.wait().unwrap();

    // The orphan is ours now: wait for it (without blocking, to bound the wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some((_, status)) =
            rustix::process::waitpid(Some(child), WaitOptions::NOHANG).unwrap()
        {
            break status;
        }
        if Instant::now() > deadline {
            let _ = rustix::process::kill_process(child, Signal::KILL);
            let _ = rustix::process::waitpid(Some(child), WaitOptions::empty());
            panic!("the child outlived its parent's kill -9 by 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.terminating_signal(), Some(Signal::KILL.as_raw()));
}

/// The parent of the test above; does nothing unless started by it.
#[test]
#[ignore = "run by a_child_dies_with_a_parent_killed_by_sigkill"]
fn supervising_parent() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("sleep");
    command.arg("600");
    let mut child =
        Process::spawn("sleep", command, Output::Combined(dir.path().join("log"))).unwrap();
    // Once it runs `sleep` itself, the guard is in place (it is set before the exec).
    let pid = child.pid();
    child
        .wait_for("run sleep", Wait::up_to(Duration::from_secs(10)), |_| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            Ok((comm.trim() == "sleep").then_some(()))
        })
        .unwrap();
    println!("child pid {pid}");
    // Wait to be killed; never linger if the test is gone.
    std::thread::sleep(Duration::from_secs(60));
}

//! A binary upgrade under load (`docs/gateway.md`, "Upgrading the binary"): the gateway
//! runs from a copy of the built binary; the copy is replaced (a rename, as a package
//! upgrade does) and SIGUSR2 is sent. The new process takes the listening sockets over,
//! the old one drains and exits, and through all of it eight clients keep looking up:
//! none fails, every lookup the DWH answered reached its client, the quota counts every one
//! exactly once, and the decision log verifies across the handover. A new process that
//! cannot start (a configuration broken in between) leaves the old one serving.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gerbang_e2e::systemd::{Manager, assert_audit_verifies};
use gerbang_e2e::*;

/// The new process of an upgrade, stopped when the test ends (it is not the harness's
/// child: the old gateway started it).
struct Successor(u32);

impl Successor {
    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.0))
            .is_ok_and(|stat| !stat.contains(") Z "))
    }

    fn signal(&self, name: &str) {
        std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.0.to_string())
            .status()
            .unwrap();
    }
}

impl Drop for Successor {
    fn drop(&mut self) {
        if self.alive() {
            self.signal("KILL");
        }
    }
}

/// The `new.pid` the old gateway logged when it handed its sockets over.
fn successor(log: &str) -> Successor {
    let pid = log
        .split("new.pid=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no new.pid in the log:\n{log}"));
    Successor(pid)
}

/// A copy of the built `gerbang` at `path`, put in place by a rename.
fn install(path: &std::path::Path) {
    let staged = path.with_extension("new");
    std::fs::copy(bin("gerbang"), &staged).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_under_load_fails_no_lookup_and_counts_each_once() {
    let sim = Sim::start(100);
    let nik = sim.sample("alive", 1).await.remove(0);
    let bin_dir = tempfile::tempdir().unwrap();
    let exe = bin_dir.path().join("gerbang");
    install(&exe);
    let manager = Manager::new();
    let mut gw = Gateway::start_with_env(
        GatewayOptions {
            timeout_ms: 20_000,
            binary: Some(exe.clone()),
            pks: vec![TestPks {
                kuota: 100_000,
                ..TestPks::new(
                    "rsud.toml",
                    "1/RSUD/UPGRADE",
                    vec![TestUser::aktif("rsud_01", "127.0.0.2")],
                )
            }],
            ..GatewayOptions::new(sim.addr, vec![])
        },
        &manager.env(),
        true,
    );
    manager.until(&gw.proc, "READY=1").await;
    sim.set_delay(20).await;
    let (client, url, body) = (
        gw.client("127.0.0.2"),
        gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    );
    let lookup = move |client: reqwest::Client| {
        let (url, body) = (url.clone(), body.clone());
        async move {
            let r = client.post(&url).body(body).send().await?;
            let status = r.status().as_u16();
            Ok::<_, reqwest::Error>((status, r.text().await?))
        }
    };

    // A new process that cannot start: the old one goes on serving, and says why.
    let config = gw.dir.path().join("gerbang.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\nbogus = 1\n")).unwrap();
    gw.proc.signal("USR2");
    gw.proc
        .stderr_with(&["upgrade failed; this process goes on serving"])
        .await;
    let (status, text) = lookup(client.clone()).await.unwrap();
    assert_eq!(
        (status, record_keys(&text).is_empty()),
        (200, false),
        "{text}"
    );
    std::fs::write(&config, &good).unwrap();

    let before = sim.requests().await;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, answered, failed) = (
            Arc::clone(&stop),
            Arc::clone(&answered),
            Arc::clone(&failed),
        );
        let one = lookup.clone();
        let client = gw.client("127.0.0.2");
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match one(client.clone()).await {
                    Ok((200, text)) if !record_keys(&text).is_empty() => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failed.lock().unwrap().push(format!("{other:?}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let at_signal = answered.load(Ordering::Relaxed);
    assert!(at_signal > 10, "the load did not run: {at_signal} lookups");

    // The upgrade: a new binary at the same path, then SIGUSR2.
    install(&exe);
    gw.proc.signal("USR2");
    let old_pid = gw.proc.pid();
    let (gw, exited) = tokio::task::spawn_blocking(move || {
        let status = gw.proc.child.wait().unwrap();
        (gw, status)
    })
    .await
    .unwrap();
    assert!(
        exited.success(),
        "the old process did not exit cleanly ({exited}):\n{}",
        gw.proc.stderr()
    );
    let log = gw.proc.stderr();
    let new = successor(&log);
    assert_ne!(new.0, old_pid);
    let (main_pid, _) = manager.until(&gw.proc, &format!("MAINPID={}", new.0)).await;
    assert!(main_pid.contains("STATUS=upgrading"), "{main_pid}");
    manager.until(&gw.proc, "READY=1").await;
    // The new process serves on for a while under the same load.
    let at_exit = answered.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.load(Ordering::Relaxed) < at_exit + 50 {
        assert!(
            Instant::now() < deadline,
            "the new process does not answer:\n{}",
            gw.proc.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} lookups failed across the upgrade, first: {}\n{}",
        failed.len(),
        failed[0],
        gw.proc.stderr()
    );
    let answered = answered.load(Ordering::Relaxed);
    let forwarded = usize::try_from(sim.requests().await - before).unwrap();
    eprintln!("{answered} lookups answered ({at_signal} before SIGUSR2), none failed");
    assert_eq!(
        forwarded, answered,
        "a lookup the DWH answered did not reach its client"
    );
    // One lookup before the load (after the failed upgrade) and every one of the load,
    // each counted once, by whichever process answered it.
    let (_, quota) = gw
        .admin(reqwest::Method::GET, "/quota?user=rsud_01", None)
        .await;
    assert!(
        quota.contains(&format!("\"used\":{}", answered + 1)),
        "{} answered: {quota}",
        answered + 1
    );

    // The new process stops as any gateway does, and the decision log, written by both,
    // is one intact chain.
    new.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(45);
    while new.alive() {
        assert!(Instant::now() < deadline, "the new process did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_audit_verifies(&gw);
}

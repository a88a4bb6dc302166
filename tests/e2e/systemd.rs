//! What the gateway and the SAM sidecar tell systemd under `Type=notify`
//! (`deploy/systemd/`): the test plays the service manager with a datagram socket of its own
//! in `NOTIFY_SOCKET` and `WATCHDOG_USEC`, and checks `READY=1` (only once a lookup is
//! answered), the watchdog's pings, `RELOADING=1` then `READY=1` around SIGHUP, and
//! `STOPPING=1` on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use gerbang_e2e::*;
use tokio::net::UnixDatagram;

/// How long one notification may take to come (a start on a loaded machine included).
const NOTIFICATION_WAIT: Duration = Duration::from_secs(60);

/// The watchdog interval the tests give (`WatchdogSec=300ms`): pings every 150 ms.
const WATCHDOG_USEC: &str = "300000";

/// The service manager's end of `NOTIFY_SOCKET`.
struct Manager {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Manager {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self {
            socket,
            path,
            _dir: dir,
        }
    }

    /// The environment systemd gives a `Type=notify` unit with `WatchdogSec=`.
    fn env(&self) -> [(&'static str, &OsStr); 2] {
        [
            ("NOTIFY_SOCKET", self.path.as_os_str()),
            ("WATCHDOG_USEC", OsStr::new(WATCHDOG_USEC)),
        ]
    }

    /// The next notification; fails with `proc`'s stderr after [`NOTIFICATION_WAIT`].
    async fn next(&self, proc: &Proc) -> String {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(NOTIFICATION_WAIT, self.socket.recv(&mut buf)).await {
            Ok(Ok(n)) => String::from_utf8(buf[..n].to_vec()).unwrap(),
            Ok(Err(e)) => panic!("reading the notify socket: {e}"),
            Err(_) => panic!(
                "{} sent nothing for {NOTIFICATION_WAIT:?}:\n{}",
                proc.name,
                proc.stderr()
            ),
        }
    }

    /// Notifications up to the first with the line `line`: that one, and those before it.
    async fn until(&self, proc: &Proc, line: &str) -> (String, Vec<String>) {
        let mut before = Vec::new();
        loop {
            let message = self.next(proc).await;
            if message.lines().any(|l| l == line) {
                return (message, before);
            }
            before.push(message);
        }
    }

    /// Waits for `n` watchdog pings (other notifications are skipped), at most 10 s.
    async fn pings(&self, proc: &Proc, n: usize) {
        let counted = tokio::time::timeout(Duration::from_secs(10), async {
            for _ in 0..n {
                self.until(proc, "WATCHDOG=1").await;
            }
        })
        .await;
        assert!(
            counted.is_ok(),
            "{} did not ping the watchdog {n} times in 10 s:\n{}",
            proc.name,
            proc.stderr()
        );
    }
}

fn agreements() -> Vec<TestPks> {
    vec![TestPks::new(
        "rsud.toml",
        "1/RSUD/SYSTEMD",
        vec![TestUser::aktif("rsud_01", "127.0.0.2")],
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_tells_systemd_ready_watchdog_reloading_and_stopping() {
    let sim = Sim::start(100);
    let nik = sim.sample("alive", 1).await.remove(0);
    let manager = Manager::new();
    // Not waiting for the port: READY=1 is the only sign of readiness the test takes.
    let mut gw = Gateway::start_with_env(
        GatewayOptions::new(sim.addr, agreements()),
        &manager.env(),
        false,
    );

    let (ready, before) = manager.until(&gw.proc, "READY=1").await;
    assert!(before.is_empty(), "notified before READY=1: {before:?}");
    // Ready means serving: the first lookup after it is answered with the record.
    let (status, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(respon(&answer), None, "{answer}");
    assert!(
        ready.contains("STATUS=serving: 1 PKS, policy set "),
        "READY=1 without the PKS count and policy hash: {ready:?}"
    );

    manager.pings(&gw.proc, 3).await;

    gw.proc.signal("HUP");
    let (reloading, _) = manager.until(&gw.proc, "RELOADING=1").await;
    assert!(
        reloading.contains("MONOTONIC_USEC="),
        "RELOADING=1 without MONOTONIC_USEC (systemd 253 and later want it): {reloading:?}"
    );
    let (ready, _) = manager.until(&gw.proc, "READY=1").await;
    assert!(ready.contains("STATUS=serving: 1 PKS"), "{ready:?}");

    gw.proc.signal("TERM");
    manager.until(&gw.proc, "STOPPING=1").await;
    let exited = gw.proc.child.wait().unwrap();
    assert!(
        exited.success(),
        "gerbang did not stop cleanly ({exited}):\n{}",
        gw.proc.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_tells_systemd_ready_watchdog_reloading_and_stopping() {
    let sim = Sim::start(10);
    let gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let manager = Manager::new();
    let mut sam = SamSidecar::start_with_env(
        &gw.pks_dir(),
        "127.0.0.1:0".parse().unwrap(),
        &manager.env(),
    );

    let (ready, before) = manager.until(&sam.proc, "READY=1").await;
    assert!(before.is_empty(), "notified before READY=1: {before:?}");
    assert!(
        ready.contains("STATUS=serving: 1 PKS, 0 SAM"),
        "READY=1 without what is loaded: {ready:?}"
    );
    assert_eq!(sam.health().await["status"], "ok");

    manager.pings(&sam.proc, 3).await;

    sam.proc.signal("HUP");
    manager.until(&sam.proc, "RELOADING=1").await;
    manager.until(&sam.proc, "READY=1").await;

    sam.proc.signal("TERM");
    manager.until(&sam.proc, "STOPPING=1").await;
    let exited = sam.proc.child.wait().unwrap();
    assert!(
        exited.success(),
        "gerbang-sam did not stop cleanly ({exited}):\n{}",
        sam.proc.stderr()
    );
}

/// Started as the tests always start it (no `NOTIFY_SOCKET`): nothing is sent, so nothing
/// fails, and nothing about systemd is logged through a start, a reload and a stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_notify_socket_nothing_about_systemd_is_logged() {
    let sim = Sim::start(10);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    gw.proc.signal("HUP");
    gw.proc
        .stderr_with(&["reloaded PKS files, policies and sanctions"])
        .await;
    gw.stop();
    let log = gw.proc.stderr();
    assert!(!log.contains("cannot notify systemd"), "{log}");
}

//! The service manager's side of `Type=notify` (`deploy/systemd/`), played by a test: a
//! datagram socket of its own in `NOTIFY_SOCKET`, read notification by notification.
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::UnixDatagram;

use crate::{Gateway, Proc, bin};

/// How long one notification may take to come (a start on a loaded machine included).
pub const NOTIFICATION_WAIT: Duration = Duration::from_secs(60);

/// The watchdog interval the tests give (`WatchdogSec=300ms`): pings every 150 ms.
pub const WATCHDOG_USEC: &str = "300000";

/// The service manager's end of `NOTIFY_SOCKET`.
pub struct Manager {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Default for Manager {
    fn default() -> Self {
        Self::new()
    }
}

impl Manager {
    pub fn new() -> Self {
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
    pub fn env(&self) -> [(&'static str, &OsStr); 2] {
        [
            ("NOTIFY_SOCKET", self.path.as_os_str()),
            ("WATCHDOG_USEC", OsStr::new(WATCHDOG_USEC)),
        ]
    }

    /// The next notification; fails with `proc`'s stderr after [`NOTIFICATION_WAIT`].
    pub async fn next(&self, proc: &Proc) -> String {
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
    pub async fn until(&self, proc: &Proc, line: &str) -> (String, Vec<String>) {
        let mut before = Vec::new();
        loop {
            let message = self.next(proc).await;
            if message.lines().any(|l| l == line) {
                return (message, before);
            }
            before.push(message);
        }
    }

    /// SIGTERM: `STOPPING=1`, then a clean exit.
    pub async fn stops(&self, proc: &mut Proc) {
        proc.signal("TERM");
        self.until(proc, "STOPPING=1").await;
        let exited = proc.child.wait().unwrap();
        assert!(
            exited.success(),
            "{} did not stop cleanly ({exited}):\n{}",
            proc.name,
            proc.stderr()
        );
    }

    /// Waits for `n` watchdog pings (other notifications are skipped), at most 10 s.
    pub async fn pings(&self, proc: &Proc, n: usize) {
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

/// `gerbang audit verify` on the gateway's decision log says it is intact.
pub fn assert_audit_verifies(gw: &Gateway) {
    let verified = std::process::Command::new(bin("gerbang"))
        .args(["audit", "verify", "--config"])
        .arg(gw.dir.path().join("gerbang.toml"))
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}

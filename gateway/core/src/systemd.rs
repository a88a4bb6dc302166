//! What the gateway and the SAM sidecar tell systemd under `Type=notify` (their units in
//! `deploy/systemd/`; `docs/gateway.md`, "Running under systemd"): `READY=1` once they
//! serve, `RELOADING=1` … `READY=1` around a reload, `STOPPING=1` on a stop, `MAINPID=` from
//! a binary upgrade's new process, `WATCHDOG=1`
//! at half of `WatchdogSec`, and `STATUS=` with what is loaded.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) nothing is sent and nothing is logged.
//! A notification that cannot be sent is logged as a warning and never stops the process:
//! systemd then acts on what it did not hear (a start timeout, a watchdog restart).

use std::time::Duration;

use sd_notify::NotifyState;

fn send(what: &str, states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, notification = what, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// `READY=1` with `STATUS=status`: serving (at start, and after a reload).
pub fn ready(status: &str) {
    send("READY", &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic time systemd 253 and later ask for; `ready` follows
/// once the reload is done, whether it was applied or refused.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    // Only a clock that cannot be read leaves it out; the reload goes on.
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send("RELOADING", &states);
}

/// `STOPPING=1` with `STATUS=status`: a stop has begun.
pub fn stopping(status: &str) {
    send(
        "STOPPING",
        &[NotifyState::Stopping, NotifyState::Status(status)],
    );
}

/// `MAINPID=pid` with `STATUS=status`: a binary upgrade's new process holds the listening
/// sockets, and the unit follows it from now on (`NotifyAccess=all` lets it say so).
pub fn main_pid(pid: u32, status: &str) {
    send(
        "MAINPID",
        &[NotifyState::MainPid(pid), NotifyState::Status(status)],
    );
}

/// `WATCHDOG=1`: still serving.
pub fn watchdog() {
    send("WATCHDOG", &[NotifyState::Watchdog]);
}

/// How often to send [`watchdog`]: half of `WATCHDOG_USEC` when systemd set it for this
/// process (`WatchdogSec=`), as sd_watchdog_enabled(3) advises; `None` without a watchdog.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

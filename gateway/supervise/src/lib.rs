//! Child processes as `gerbang demo`, the end-to-end tests and `loadgen bench` run them: one
//! way to start a program with its output in files, wait until it is ready, signal it, and
//! stop it, so the three cannot drift apart.
//!
//! - **Output in files.** Standard output and standard error go to files the caller names
//!   (one file for both, or one each), never to a pipe that could fill up and block the
//!   child. Standard input is closed.
//! - **Readiness by polling, with a deadline.** [`Ready::Announces`]: a line on its output
//!   naming the address it bound (`dwh-sim listening on http://127.0.0.1:40123`, so it can
//!   bind port 0); [`Ready::Listening`]: its port accepts TCP connections; or any probe with
//!   [`Process::wait_for`]. A child that exits first, or a deadline that passes, is an
//!   error naming the program, never a hang.
//! - **Signals** with `kill(2)` through `rustix`, and only while the child has not been
//!   reaped, so a recycled pid is never signalled.
//! - **Killed on drop**: SIGKILL at once, or SIGTERM and SIGKILL after a grace period
//!   ([`Start::stop_on_drop`]), then reaped.
//! - **Never outliving the parent**, even after a `kill -9` of the parent, when nothing
//!   runs a drop: every child starts through util-linux's `setpriv --pdeathsig KILL`, from
//!   one long-lived thread of this process (see `guard.rs` for why both matter, and for
//!   the start-up race it closes).
//!
//! Linux only (`PR_SET_PDEATHSIG`); `setpriv` is in util-linux, which every Debian system
//! has (it is `Essential`).
#![forbid(unsafe_code)]

mod guard;
mod process;
mod ready;

pub use process::{Output, Process, Start, StartError, signal_by_name};
pub use ready::{NotReady, Ready, Wait};
pub use rustix::process::Signal;

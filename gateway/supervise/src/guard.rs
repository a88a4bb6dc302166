//! Children that die with their parent, without `unsafe` (so without `pre_exec`).
//!
//! Linux delivers a parent-death signal (`PR_SET_PDEATHSIG`) to a child when its parent
//! goes away, a `kill -9` included. Setting it needs code running in the child between
//! `fork` and `exec`, which safe Rust cannot add, so the child starts as
//!
//! ```text
//! setpriv --pdeathsig KILL -- /bin/sh -c '[ "$PPID" = "$1" ] || exit 125; shift; exec "$@"' NAME PARENT_PID PROGRAM ARGS…
//! ```
//!
//! `setpriv` sets the signal and executes the shell, which checks that its parent is still
//! this process (the pid it was given) and replaces itself by the program; the pid never
//! changes along the way, and the signal setting survives `exec`. The check closes the
//! race where the parent dies after `fork` but before `setpriv` set the signal: the shell
//! then has another parent (init or a subreaper) and exits with 125 without running the
//! program.
//!
//! The signal fires when the *thread* that forked the child exits, not the process. The
//! threads of a test harness end with each test, and tokio's blocking pool retires idle
//! threads, so a child spawned from either would be killed while its owner still runs.
//! Every child is therefore forked by one thread of our own that lives as long as the
//! process ([`spawn`]).

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;

use crate::StartError;

/// What the shell runs before `exec`: refuse to start if the parent is already gone.
const CHECK_PARENT: &str = r#"[ "$PPID" = "$1" ] || exit 125; shift; exec "$@""#;

/// `command`, to be started through `setpriv` and the parent check for `parent`.
/// Carries the program, its arguments, the environment changes and the working directory;
/// `env_clear` and `CommandExt` settings of `command` are not carried over (none of the
/// callers uses them; `Start` sets what it needs itself).
pub(crate) fn guarded(name: &str, command: &Command, parent: u32) -> Result<Command, StartError> {
    let setpriv = setpriv().ok_or(StartError::NoSetpriv)?;
    let mut guarded = Command::new(setpriv);
    guarded
        .args([
            "--pdeathsig",
            "KILL",
            "--",
            "/bin/sh",
            "-c",
            CHECK_PARENT,
            name,
        ])
        .arg(parent.to_string())
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => guarded.env(key, value),
            None => guarded.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        guarded.current_dir(dir);
    }
    Ok(guarded)
}

/// Where `setpriv` is: on `PATH`, or where Debian installs it.
fn setpriv() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("setpriv"))
                .find(|p| p.is_file())
        });
        on_path.or_else(|| {
            ["/usr/bin/setpriv", "/bin/setpriv"]
                .map(PathBuf::from)
                .into_iter()
                .find(|p| p.is_file())
        })
    })
    .clone()
}

/// A command for the spawning thread, and where its result goes.
struct Job {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Spawns `command` from the one long-lived spawning thread (started on first use), so the
/// parent-death signal is tied to the life of this process, not of the calling thread.
pub(crate) fn spawn(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<io::Result<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("gerbang-supervise-spawner".into())
            .spawn(move || {
                // Lives until the process exits: the channel's sender is in a static.
                for mut job in queue {
                    let _ = job.reply.send(job.command.spawn());
                }
            })
            .map(|_| jobs)
    });
    let spawner = spawner
        .as_ref()
        .map_err(|e| io::Error::new(e.kind(), format!("starting the spawning thread: {e}")))?;
    let (reply, answer) = mpsc::channel();
    spawner
        .send(Job { command, reply })
        .map_err(|_| io::Error::other("the spawning thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawning thread is gone"))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The exit status of a child whose parent died before the guard was in place.
    const PARENT_GONE: i32 = 125;

    #[test]
    fn a_child_whose_parent_is_not_the_expected_one_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let mut command = Command::new("touch");
        command.arg(&marker);
        // Pid 1 is never this test's process: as if the parent had died before `setpriv`
        // set the signal and the child had been adopted.
        let mut child = spawn(guarded("touch", &command, 1).unwrap()).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(PARENT_GONE));
        assert!(
            !marker.exists(),
            "the program ran although its parent was gone"
        );

        let mut child = spawn(guarded("touch", &command, std::process::id()).unwrap()).unwrap();
        assert!(child.wait().unwrap().success());
        assert!(
            marker.exists(),
            "the program did not run under its real parent"
        );
    }

    #[test]
    fn arguments_and_environment_reach_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut command = Command::new("/bin/sh");
        command
            .args([
                "-c",
                r#"printf '%s|%s|%s|%s' "$1" "$2" "$GUARD_SET" "${GUARD_GONE-unset}" > "$3""#,
            ])
            .args(["sh", "one two", "$HOME"])
            .arg(&out)
            .env("GUARD_SET", "set")
            .env("GUARD_GONE", "x")
            .env_remove("GUARD_GONE");
        let mut child = spawn(guarded("sh", &command, std::process::id()).unwrap()).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "one two|$HOME|set|unset"
        );
    }
}

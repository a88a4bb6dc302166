//! Starting, signalling and stopping one child process.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::fd::OwnedFd;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::guard;

/// Where a child's standard output and standard error go.
#[derive(Debug, Clone)]
pub enum Output {
    /// Both into one file, in the order written (the demo's logs).
    Combined(PathBuf),
    /// Each into its own file (the tests read standard error alone).
    Split { stdout: PathBuf, stderr: PathBuf },
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating the log file {path}: {source}")]
    Log { path: PathBuf, source: io::Error },
    #[error("starting {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        source: io::Error,
    },
    #[error(
        "setpriv not found (util-linux): children are started through it so that they never outlive this process; install util-linux"
    )]
    NoSetpriv,
}

/// How to start one child: [`Start::new`], options, then [`Start::spawn`].
#[derive(Debug)]
pub struct Start {
    name: String,
    command: Command,
    output: Output,
    own_group: bool,
    drop_grace: Option<Duration>,
}

impl Start {
    /// `command` under `name` (used in every message about it), its output to `output`.
    pub fn new(name: impl Into<String>, command: Command, output: Output) -> Self {
        Self {
            name: name.into(),
            command,
            output,
            own_group: false,
            drop_grace: None,
        }
    }

    /// Puts the child in a process group of its own, so a terminal's Ctrl-C reaches only
    /// the parent, which then stops its children itself.
    pub fn own_process_group(mut self) -> Self {
        self.own_group = true;
        self
    }

    /// On drop, SIGTERM first and SIGKILL only if it has not exited within `grace` (so a
    /// master process such as nginx's can take its workers down). Without this, a drop
    /// kills at once.
    pub fn stop_on_drop(mut self, grace: Duration) -> Self {
        self.drop_grace = Some(grace);
        self
    }

    /// Starts the child (see the crate documentation for the guard it starts through).
    pub fn spawn(self) -> Result<Process, StartError> {
        let create = |path: &Path| {
            File::create(path).map_err(|source| StartError::Log {
                path: path.to_path_buf(),
                source,
            })
        };
        let (stdout, stderr, stdout_path, stderr_path) = match &self.output {
            Output::Combined(path) => {
                let file = create(path)?;
                let copy = file.try_clone().map_err(|source| StartError::Log {
                    path: path.clone(),
                    source,
                })?;
                (file, copy, path.clone(), path.clone())
            }
            Output::Split { stdout, stderr } => (
                create(stdout)?,
                create(stderr)?,
                stdout.clone(),
                stderr.clone(),
            ),
        };
        let mut command = guard::guarded(&self.name, &self.command, std::process::id())?;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        if self.own_group {
            command.process_group(0);
        }
        let child = guard::spawn(command).map_err(|source| StartError::Spawn {
            name: self.name.clone(),
            program: self.command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        // Opened before anything can reap the child, so it names this child for good.
        let pidfd = rustix::process::pidfd_open(Pid::from_child(&child), PidfdFlags::empty()).ok();
        Ok(Process {
            child,
            pidfd,
            name: self.name,
            stdout: stdout_path,
            stderr: stderr_path,
            drop_grace: self.drop_grace,
        })
    }
}

/// A running (or exited, not yet dropped) child. Dropping it stops it and reaps it.
#[derive(Debug)]
pub struct Process {
    /// The child itself, for `wait`/`try_wait`. Signal it with [`Process::signal`], never
    /// by its pid, which another process may have once this one is reaped.
    pub child: Child,
    /// A pidfd of the child (Linux 5.3+): signals through it reach this child or nothing.
    pidfd: Option<OwnedFd>,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
    drop_grace: Option<Duration>,
}

impl Process {
    /// Starts `command` with the defaults of [`Start`].
    pub fn spawn(
        name: impl Into<String>,
        command: Command,
        output: Output,
    ) -> Result<Self, StartError> {
        Start::new(name, command, output).spawn()
    }

    /// The name it was started under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id (the same from start to exit: the guard `exec`s into the program).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file its standard output goes to.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    /// The file its standard error goes to (the same as stdout's with [`Output::Combined`]).
    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// What it wrote on standard error so far (empty if the file cannot be read).
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// The last `n` lines of its standard error, without terminal colour codes.
    pub fn stderr_tail(&self, n: usize) -> String {
        tail(&read_lossy(&self.stderr), n)
    }

    /// Its exit status if it has exited (reaping it), else `None`.
    pub fn exited(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Sends `signal`. Through the child's pidfd, so once it has been reaped this fails
    /// (`ESRCH`) instead of reaching whatever process has its pid by then; on a kernel
    /// without pidfds, by pid.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        let sent = match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
            None => rustix::process::kill_process(Pid::from_child(&self.child), signal),
        };
        sent.map_err(|e| io::Error::other(format!("signalling {}: {e}", self.name)))
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; waits for it.
    pub fn stop(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if self.signal(Signal::TERM).is_ok() {
            let deadline = Instant::now() + grace;
            let mut pause = Duration::from_millis(1);
            while Instant::now() < deadline {
                if let Some(status) = self.child.try_wait()? {
                    return Ok(status);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
        self.kill()
    }

    /// SIGKILL (if still running) and waits for it.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // Fails only if it exited meanwhile; `wait` then reaps it all the same.
        let _ = self.child.kill();
        self.child.wait()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = match self.drop_grace {
            Some(grace) => self.stop(grace),
            None => self.kill(),
        };
    }
}

/// A signal by its name without `SIG` (`HUP`, `TERM`, `KILL`, `INT`, `QUIT`, `USR1`,
/// `USR2`, `STOP`, `CONT`), as kill(1) takes it.
pub fn signal_by_name(name: &str) -> Option<Signal> {
    Some(match name.trim_start_matches("SIG") {
        "HUP" => Signal::HUP,
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "KILL" => Signal::KILL,
        "TERM" => Signal::TERM,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "STOP" => Signal::STOP,
        "CONT" => Signal::CONT,
        _ => return None,
    })
}

pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `text`, terminal colour codes removed (tracing colours its output
/// even into files unless told otherwise).
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| strip_ansi(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path) -> Start {
        let mut command = Command::new("sleep");
        command.arg("600");
        Start::new("sleep", command, Output::Combined(dir.join("sleep.log")))
    }

    #[test]
    fn signals_reach_the_child_and_a_reaped_child_is_not_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sleeper(dir.path()).spawn().unwrap();
        p.signal(Signal::TERM).unwrap();
        let status = p.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(Signal::TERM.as_raw()));
        assert!(p.signal(Signal::HUP).is_err());
    }

    #[test]
    fn dropping_kills_and_reaps() {
        let dir = tempfile::tempdir().unwrap();
        let p = sleeper(dir.path()).spawn().unwrap();
        let pid = p.pid();
        drop(p);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the child is still there (or not reaped) after the drop"
        );
    }

    #[test]
    fn stop_gives_a_child_that_ignores_sigterm_its_grace_then_kills_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("/bin/sh");
        // An ignored signal stays ignored across `exec`.
        command.args(["-c", "trap '' TERM; echo trapped; exec sleep 600"]);
        let mut p = Process::spawn(
            "stubborn",
            command,
            Output::Combined(dir.path().join("log")),
        )
        .unwrap();
        p.wait_for(
            "set its trap",
            crate::Wait::up_to(Duration::from_secs(10)),
            |p| Ok(p.stderr().contains("trapped").then_some(())),
        )
        .unwrap();
        let status = p.stop(Duration::from_millis(100)).unwrap();
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(Signal::KILL.as_raw()));
    }

    #[test]
    fn output_goes_to_the_files_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "echo out; echo err >&2"]);
        let (stdout, stderr) = (dir.path().join("o"), dir.path().join("e"));
        let mut p = Process::spawn(
            "sh",
            command,
            Output::Split {
                stdout: stdout.clone(),
                stderr: stderr.clone(),
            },
        )
        .unwrap();
        assert!(p.child.wait().unwrap().success());
        assert_eq!(read_lossy(&stdout), "out\n");
        assert_eq!(p.stderr(), "err\n");

        let mut command = Command::new("/bin/sh");
        command.args(["-c", "echo out; echo err >&2"]);
        let mut p =
            Process::spawn("sh", command, Output::Combined(dir.path().join("both"))).unwrap();
        assert!(p.child.wait().unwrap().success());
        assert_eq!(p.stderr(), "out\nerr\n");
    }

    #[test]
    fn tails_are_the_last_lines_without_colours() {
        assert_eq!(tail("a\n\u{1b}[2mb\u{1b}[0m\nc\n", 2), "b\nc");
        assert_eq!(tail("", 3), "");
        assert_eq!(signal_by_name("SIGHUP"), Some(Signal::HUP));
        assert_eq!(signal_by_name("BOGUS"), None);
    }
}

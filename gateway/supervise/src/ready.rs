//! Waiting for a child to be ready: polling with a deadline, failing at once if it exits.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::Process;
use crate::process::read_lossy;

/// What "ready" means for a child.
#[derive(Debug, Clone)]
pub enum Ready {
    /// A complete line of its standard output starts with this text, followed by the
    /// address it listens on, with or without a scheme (`dwh-sim listening on ` then
    /// `http://127.0.0.1:40123`). The way to start a program on port 0 without a race.
    Announces(String),
    /// Its port accepts TCP connections at this address.
    Listening(SocketAddr),
}

impl Ready {
    fn describe(&self) -> String {
        match self {
            Self::Announces(prefix) => format!("print {:?}", format!("{prefix}…")),
            Self::Listening(addr) => format!("listen on {addr}"),
        }
    }
}

/// How long to wait, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    limit: Duration,
    max_pause: Duration,
}

impl Wait {
    /// At most `limit`, looking after 1 ms, then twice as long each time, at most every
    /// 100 ms.
    pub const fn up_to(limit: Duration) -> Self {
        Self {
            limit,
            max_pause: Duration::from_millis(100),
        }
    }

    /// Looks at least every `max_pause` (a caller timing the wait wants it short).
    pub const fn polling_at_least_every(self, max_pause: Duration) -> Self {
        Self { max_pause, ..self }
    }
}

/// Why a child did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("{name} exited ({status}) before it would {what}")]
    Exited {
        name: String,
        what: String,
        status: ExitStatus,
    },
    #[error("{name} did not {what} within {} s", limit.as_secs_f64())]
    Timeout {
        name: String,
        what: String,
        limit: Duration,
    },
    #[error("{name}: {detail}")]
    Unexpected { name: String, detail: String },
    #[error("checking on {name}: {source}")]
    Wait { name: String, source: io::Error },
}

/// One look of a wait: what the caller's check says, after checking that the child lives.
enum Look<T> {
    Done(T),
    Failed(NotReady),
    Again(Duration),
}

/// The state of one wait.
struct Waiting {
    what: String,
    wait: Wait,
    deadline: Instant,
    pause: Duration,
}

impl Waiting {
    fn new(what: &str, wait: Wait) -> Self {
        Self {
            what: what.to_string(),
            wait,
            deadline: Instant::now() + wait.limit,
            pause: Duration::from_millis(1),
        }
    }

    fn look<T>(
        &mut self,
        p: &mut Process,
        check: &mut impl FnMut(&Process) -> Result<Option<T>, String>,
    ) -> Look<T> {
        match check(p) {
            Ok(Some(t)) => return Look::Done(t),
            Ok(None) => {}
            Err(detail) => {
                return Look::Failed(NotReady::Unexpected {
                    name: p.name().to_string(),
                    detail,
                });
            }
        }
        match p.exited() {
            Ok(Some(status)) => {
                return Look::Failed(NotReady::Exited {
                    name: p.name().to_string(),
                    what: self.what.clone(),
                    status,
                });
            }
            Ok(None) => {}
            Err(source) => {
                return Look::Failed(NotReady::Wait {
                    name: p.name().to_string(),
                    source,
                });
            }
        }
        match self.pause(p.name()) {
            Ok(pause) => Look::Again(pause),
            Err(e) => Look::Failed(e),
        }
    }

    /// How long to sleep before the next look, or the timeout once the deadline passed.
    fn pause(&mut self, name: &str) -> Result<Duration, NotReady> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(NotReady::Timeout {
                name: name.to_string(),
                what: self.what.clone(),
                limit: self.wait.limit,
            });
        }
        let pause = self.pause.min(self.deadline - now);
        self.pause = (self.pause * 2).min(self.wait.max_pause);
        Ok(pause)
    }
}

impl Process {
    /// Polls `check` until it gives a value; fails when the child exits first, when `check`
    /// fails, or when `wait`'s limit passes. `what` completes "did not …" in the messages.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        wait: Wait,
        mut check: impl FnMut(&Process) -> Result<Option<T>, String>,
    ) -> Result<T, NotReady> {
        let mut waiting = Waiting::new(what, wait);
        loop {
            match waiting.look(self, &mut check) {
                Look::Done(t) => return Ok(t),
                Look::Failed(e) => return Err(e),
                Look::Again(pause) => std::thread::sleep(pause),
            }
        }
    }

    /// Waits until the child exits by itself; fails when `wait`'s limit passes (it is left
    /// running).
    pub fn wait_exit(&mut self, wait: Wait) -> Result<ExitStatus, NotReady> {
        let mut waiting = Waiting::new("finish", wait);
        loop {
            match self.exited() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => {}
                Err(source) => {
                    return Err(NotReady::Wait {
                        name: self.name().to_string(),
                        source,
                    });
                }
            }
            std::thread::sleep(waiting.pause(self.name())?);
        }
    }

    /// Waits until the child is `ready`; returns the address it announced or listens on.
    pub fn wait_ready(&mut self, ready: &Ready, wait: Wait) -> Result<SocketAddr, NotReady> {
        self.wait_for(&ready.describe(), wait, |p| p.is_ready(ready))
    }

    /// [`Process::wait_ready`] without blocking the thread, for a caller inside a tokio
    /// runtime (a blocking wait would keep that thread from noticing Ctrl-C).
    #[cfg(feature = "tokio")]
    pub async fn wait_ready_async(
        &mut self,
        ready: &Ready,
        wait: Wait,
    ) -> Result<SocketAddr, NotReady> {
        let mut waiting = Waiting::new(&ready.describe(), wait);
        let mut check = |p: &Process| p.is_ready(ready);
        loop {
            match waiting.look(self, &mut check) {
                Look::Done(t) => return Ok(t),
                Look::Failed(e) => return Err(e),
                Look::Again(pause) => tokio::time::sleep(pause).await,
            }
        }
    }

    /// One look: `Some(address)` when ready.
    fn is_ready(&self, ready: &Ready) -> Result<Option<SocketAddr>, String> {
        match ready {
            Ready::Announces(prefix) => announced(&read_lossy(self.stdout_path()), prefix),
            Ready::Listening(addr) => {
                Ok(TcpStream::connect_timeout(addr, Duration::from_millis(200))
                    .ok()
                    .map(|_| *addr))
            }
        }
    }
}

/// The address on the first complete line of `output` that starts with `prefix`.
fn announced(output: &str, prefix: &str) -> Result<Option<SocketAddr>, String> {
    let complete = output.rfind('\n').map_or("", |end| &output[..end]);
    let Some(line) = complete.lines().find(|l| l.starts_with(prefix)) else {
        return Ok(None);
    };
    let rest = line[prefix.len()..].trim();
    let addr = rest.rsplit_once("://").map_or(rest, |(_, a)| a);
    addr.parse()
        .map(Some)
        .map_err(|_| format!("announced {line:?}, which names no address"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Output, Start};
    use std::process::Command;

    #[test]
    fn an_announced_address_is_read_from_a_complete_line_only() {
        let p = "dwh-sim listening on ";
        assert_eq!(announced("", p), Ok(None));
        assert_eq!(
            announced("dwh-sim listening on http://127.0.0.1:4", p),
            Ok(None)
        );
        assert_eq!(
            announced(
                "warming up\ndwh-sim listening on http://127.0.0.1:4000\n",
                p
            ),
            Ok(Some("127.0.0.1:4000".parse().unwrap()))
        );
        assert_eq!(
            announced("dwh-sim listening on 127.0.0.1:4000\n", p),
            Ok(Some("127.0.0.1:4000".parse().unwrap()))
        );
        assert!(announced("dwh-sim listening on nowhere\n", p).is_err());
    }

    fn sh(script: &str, dir: &std::path::Path) -> Process {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", script]);
        Start::new(
            "sh",
            command,
            Output::Split {
                stdout: dir.join("out"),
                stderr: dir.join("err"),
            },
        )
        .spawn()
        .unwrap()
    }

    #[test]
    fn a_child_that_exits_first_fails_the_wait_with_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh("echo nope >&2; exit 3", dir.path());
        let e = p
            .wait_ready(
                &Ready::Announces("x listening on ".into()),
                Wait::up_to(Duration::from_secs(30)),
            )
            .unwrap_err();
        assert!(
            matches!(&e, NotReady::Exited { status, .. } if status.code() == Some(3)),
            "{e}"
        );
        assert_eq!(p.stderr_tail(5), "nope");
    }

    #[test]
    fn a_wait_ends_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh("exec sleep 600", dir.path());
        let e = p
            .wait_for("say hello", Wait::up_to(Duration::from_millis(50)), |_| {
                Ok(None::<()>)
            })
            .unwrap_err();
        assert!(matches!(e, NotReady::Timeout { .. }), "{e}");
        assert_eq!(e.to_string(), "sh did not say hello within 0.05 s");
        let e = p
            .wait_exit(Wait::up_to(Duration::from_millis(50)))
            .unwrap_err();
        assert_eq!(e.to_string(), "sh did not finish within 0.05 s");
        let mut p = sh("exit 4", dir.path());
        let status = p.wait_exit(Wait::up_to(Duration::from_secs(30))).unwrap();
        assert_eq!(status.code(), Some(4));
    }

    #[test]
    fn an_announcement_and_a_listening_port_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut p = sh(
            &format!("sleep 0.05; echo 'x listening on http://{addr}'; exec sleep 600"),
            dir.path(),
        );
        let wait = Wait::up_to(Duration::from_secs(30));
        let got = p
            .wait_ready(&Ready::Announces("x listening on ".into()), wait)
            .unwrap();
        assert_eq!(got, addr);
        assert_eq!(p.wait_ready(&Ready::Listening(addr), wait).unwrap(), addr);
    }
}

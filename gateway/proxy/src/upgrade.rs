//! A binary upgrade with no dropped request (`docs/gateway.md`, "Upgrading the binary").
//!
//! On SIGUSR2 the running gateway (the old process) starts the executable at the path it was
//! started from, which a package upgrade has replaced, as `gerbang serve --upgrade-from
//! SOCKET`. The new process loads and checks everything that can fail (configuration, PKS
//! files, policies, certificate) while the old one keeps serving; a new process that fails
//! there exits and the old one goes on. Once loaded, the new process connects to the
//! old one's handover socket, each side checking the other's process ID, and receives the
//! listening sockets (the client listener and the admin listener) by `SCM_RIGHTS`, so the
//! socket, and every connection waiting in its queue, is never closed. The old process then
//! drains as on SIGTERM, persists its quota counts, closes its decision log and exits; only
//! then does the new process open the quota store and the decision log (only one process
//! may hold them), and start accepting. Connections arriving meanwhile wait in the kernel's
//! queue: none is refused, none is counted twice.
//!
//! The new process learns that the old one has exited when the handover connection closes
//! (the old process keeps it open until its end). Under systemd it says `MAINPID=` with its
//! own process ID as soon as it holds the sockets, so the unit follows it
//! (`NotifyAccess=all`).

use std::io::{IoSlice, IoSliceMut, Read as _};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// What the old process sends with the sockets: a version, then which sockets follow.
const GREETING: &str = "gerbang-upgrade/1";

/// How long the new process may take to load before the old one gives up on it (a debug
/// build loading thousands of PKS files is the slowest case).
const LOAD_DEADLINE: Duration = Duration::from_secs(120);

/// How long the new process waits for the old one to finish its drain and exit: the drain's
/// deadline, then persisting the quota counts and closing the decision log.
pub(crate) const RELEASE_DEADLINE: Duration = Duration::from_secs(60);

/// The listening sockets handed from one process to the next.
#[derive(Debug)]
pub(crate) struct Sockets {
    pub data: std::net::TcpListener,
    pub admin: Option<std::net::TcpListener>,
}

impl Sockets {
    pub(crate) fn duplicate(&self) -> std::io::Result<Self> {
        Ok(Self {
            data: self.data.try_clone()?,
            admin: self.admin.as_ref().map(|a| a.try_clone()).transpose()?,
        })
    }
}

/// Why an upgrade did not happen; the old process goes on serving.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpgradeError {
    #[error("the gateway is stopping")]
    Stopping,
    #[error("this process's executable path could not be read at its start")]
    NoExecutable,
    #[error("cannot prepare the handover socket")]
    Socket(#[source] std::io::Error),
    #[error("cannot start {}", exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the new process exited ({0}) before taking over; its reason is in the log above")]
    Exited(std::process::ExitStatus),
    #[error("the new process did not take over within {}s; it was stopped", LOAD_DEADLINE.as_secs())]
    Timeout,
    #[error("cannot send the listening sockets to the new process")]
    Send(#[source] std::io::Error),
}

/// The old process's side: started on SIGUSR2, hands the sockets over once.
#[derive(Debug)]
pub(crate) struct Upgrader {
    /// Duplicates of the listening sockets, for the next process. Dropped when a stop
    /// begins, so that a drained listener refuses new connections at once.
    sockets: Mutex<Option<Sockets>>,
    /// The executable this process was started from (its path, which a package upgrade
    /// has given a new binary) and the configuration it serves. `None` when it could not
    /// be read at the start (no `/proc`, as in a bare chroot): upgrades are then refused.
    exe: Option<PathBuf>,
    config: PathBuf,
    /// The handover connection, kept until this process exits: its end tells the new
    /// process that the quota store and the decision log are free.
    handed: Mutex<Option<UnixStream>>,
}

impl Upgrader {
    /// `sockets` are duplicates of the listening sockets this process serves on.
    pub(crate) fn new(sockets: Sockets, config: &Path) -> Self {
        let exe = std::env::current_exe()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "cannot read this process's executable path: SIGUSR2 upgrades are unavailable");
            })
            .ok();
        Self {
            sockets: Mutex::new(Some(sockets)),
            exe,
            config: config.to_path_buf(),
            handed: Mutex::new(None),
        }
    }

    /// A stop has begun: no upgrade any more, and the listening sockets are this
    /// process's pingora listener's alone (closed with it).
    pub(crate) fn disable(&self) {
        drop(lock(&self.sockets).take());
    }

    /// Waits for SIGUSR2 and upgrades; returns the new process's ID once it holds the
    /// sockets. A failed attempt is logged and the next SIGUSR2 tries again.
    pub(crate) async fn on_signal(&self) -> u32 {
        let mut signal = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::user_defined2(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGUSR2: binary upgrades are unavailable");
                return std::future::pending().await;
            }
        };
        loop {
            signal.recv().await;
            tracing::info!(exe = ?self.exe, "SIGUSR2: upgrading to the binary at this path");
            // One attempt at a time: the next SIGUSR2 is read only after this one ends.
            match self.hand_over().await {
                Ok(pid) => return pid,
                Err(e) => tracing::error!(
                    error = crate::server::with_causes(&e).as_str(),
                    "upgrade failed; this process goes on serving"
                ),
            }
        }
    }

    async fn hand_over(&self) -> Result<u32, UpgradeError> {
        let exe = self.exe.as_ref().ok_or(UpgradeError::NoExecutable)?;
        let sockets = match lock(&self.sockets).as_ref() {
            Some(s) => s.duplicate().map_err(UpgradeError::Socket)?,
            None => return Err(UpgradeError::Stopping),
        };
        // A directory only this user can enter (0700), removed on return.
        let dir = tempfile::Builder::new()
            .prefix("gerbang-upgrade-")
            .tempdir()
            .map_err(UpgradeError::Socket)?;
        let path = dir.path().join("handover.sock");
        let listener = tokio::net::UnixListener::bind(&path).map_err(UpgradeError::Socket)?;
        let mut child = tokio::process::Command::new(exe)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .arg("--upgrade-from")
            .arg(&path)
            .stdin(std::process::Stdio::null())
            // The watchdog is the new process's own once it takes over.
            .env_remove("WATCHDOG_PID")
            .spawn()
            .map_err(|source| UpgradeError::Spawn {
                exe: exe.clone(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        tracing::info!(
            pid,
            "upgrade: the new process is loading; this one serves until it takes over"
        );
        let deadline = tokio::time::sleep(LOAD_DEADLINE);
        tokio::pin!(deadline);
        let stream = loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = accepted.map_err(UpgradeError::Socket)?;
                    match peer_pid(&stream) {
                        Some(peer) if peer == pid => break stream,
                        peer => tracing::warn!(peer = ?peer, expected = pid, "upgrade: a connection to the handover socket from another process, ignored"),
                    }
                }
                status = child.wait() => {
                    return Err(status.map_or(UpgradeError::Timeout, UpgradeError::Exited));
                }
                () = &mut deadline => {
                    let _ = child.kill().await;
                    return Err(UpgradeError::Timeout);
                }
            }
        };
        let stream = stream
            .into_std()
            .and_then(|s| s.set_nonblocking(false).map(|()| s))
            .map_err(UpgradeError::Socket)?;
        send(&stream, &sockets).map_err(UpgradeError::Send)?;
        *lock(&self.handed) = Some(stream);
        // The new process outlives this one: it is not waited for here.
        drop(child);
        tracing::info!(
            pid,
            "upgrade: the listening sockets are handed over; draining, then exiting"
        );
        Ok(pid)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn peer_pid(stream: &impl std::os::fd::AsFd) -> Option<u32> {
    let cred = rustix::net::sockopt::socket_peercred(stream).ok()?;
    u32::try_from(cred.pid.as_raw_nonzero().get()).ok()
}

fn send(stream: &UnixStream, sockets: &Sockets) -> std::io::Result<()> {
    let mut fds = vec![sockets.data.as_fd()];
    let mut greeting = format!("{GREETING} data");
    if let Some(admin) = &sockets.admin {
        fds.push(admin.as_fd());
        greeting.push_str(" admin");
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("no room for the descriptors"));
    }
    rustix::net::sendmsg(
        stream,
        &[IoSlice::new(greeting.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Why the new process could not take the sockets over; the old one goes on serving.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error("cannot reach the running gateway's handover socket {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the handover socket {} is not held by this process's parent: refused",
        path.display()
    )]
    NotParent { path: PathBuf },
    #[error("cannot receive the listening sockets")]
    Receive(#[source] std::io::Error),
    #[error("the running gateway sent an unexpected handover ({0:?})")]
    Unexpected(String),
    #[error(
        "the running gateway did not exit within {}s after the handover",
        RELEASE_DEADLINE.as_secs()
    )]
    NotReleased,
}

/// The new process's side: the sockets received, and the connection whose end says the
/// old process has exited.
#[derive(Debug)]
pub(crate) struct Takeover {
    stream: UnixStream,
}

impl Takeover {
    /// Connects to the old process (this process's parent) at `path` and receives the
    /// listening sockets.
    pub(crate) fn receive(path: &Path) -> Result<(Self, Sockets), TakeoverError> {
        let stream = UnixStream::connect(path).map_err(|source| TakeoverError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let parent =
            rustix::process::getppid().and_then(|p| u32::try_from(p.as_raw_nonzero().get()).ok());
        if parent.is_none() || peer_pid(&stream) != parent {
            return Err(TakeoverError::NotParent {
                path: path.to_path_buf(),
            });
        }
        let (text, fds) = receive(&stream).map_err(TakeoverError::Receive)?;
        let sockets = sockets_from(&text, fds).ok_or(TakeoverError::Unexpected(text))?;
        Ok((Self { stream }, sockets))
    }

    /// Waits until the old process has exited (its end of the handover connection closes),
    /// so that the quota store and the decision log can be opened.
    pub(crate) fn wait_released(mut self) -> Result<(), TakeoverError> {
        self.stream
            .set_read_timeout(Some(RELEASE_DEADLINE))
            .map_err(TakeoverError::Receive)?;
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(TakeoverError::NotReleased);
                }
                // A reset says the same as an end: the old process is gone.
                Err(_) => return Ok(()),
            }
        }
    }
}

/// One message from the old process: its text and the descriptors sent with it.
fn receive(stream: &UnixStream) -> std::io::Result<(String, Vec<OwnedFd>)> {
    let mut bytes = [0u8; 64];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut bytes)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    let text = String::from_utf8_lossy(bytes.get(..received.bytes).unwrap_or_default());
    Ok((text.into_owned(), fds))
}

/// The sockets named by `greeting`, in the order sent, each a listening TCP socket.
fn sockets_from(greeting: &str, fds: Vec<OwnedFd>) -> Option<Sockets> {
    let mut names = greeting.split(' ');
    if names.next() != Some(GREETING) {
        return None;
    }
    let names: Vec<&str> = names.collect();
    if names.len() != fds.len() {
        return None;
    }
    let mut data = None;
    let mut admin = None;
    for (name, fd) in names.into_iter().zip(fds) {
        let listener = std::net::TcpListener::from(fd);
        listener.local_addr().ok()?;
        match name {
            "data" if data.is_none() => data = Some(listener),
            "admin" if admin.is_none() => admin = Some(listener),
            _ => return None,
        }
    }
    Some(Sockets { data: data?, admin })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn listener() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    }

    #[test]
    fn sockets_sent_arrive_as_the_same_listening_sockets() {
        let (a, b) = UnixStream::pair().unwrap();
        let sent = Sockets {
            data: listener(),
            admin: Some(listener()),
        };
        send(&a, &sent).unwrap();
        let (text, fds) = receive(&b).unwrap();
        let received = sockets_from(&text, fds).unwrap();
        assert_eq!(
            received.data.local_addr().unwrap(),
            sent.data.local_addr().unwrap()
        );
        assert_eq!(
            received.admin.unwrap().local_addr().unwrap(),
            sent.admin.unwrap().local_addr().unwrap()
        );
        // A connection made to the sender's socket is accepted from the received one.
        let address = sent.data.local_addr().unwrap();
        drop(sent.data);
        let _client = std::net::TcpStream::connect(address).unwrap();
        received.data.accept().unwrap();
    }

    #[test]
    fn a_greeting_that_does_not_match_the_sockets_is_refused() {
        assert!(sockets_from("gerbang-upgrade/1 data", vec![]).is_none());
        assert!(sockets_from("other/1 data", vec![listener().into()]).is_none());
        assert!(
            sockets_from(
                "gerbang-upgrade/1 data data",
                vec![listener().into(), listener().into()]
            )
            .is_none()
        );
        assert!(sockets_from("gerbang-upgrade/1 admin", vec![listener().into()]).is_none());
        assert!(sockets_from("gerbang-upgrade/1 data", vec![listener().into()]).is_some());
    }
}

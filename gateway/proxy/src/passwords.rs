//! Where first-login password checks run: argon2id takes tens of milliseconds of CPU per
//! check, so a storm of first logins (every User ID after a restart, or a brute force) would
//! otherwise take the cores from the lookups in flight, whose DWH exchanges would then run
//! past `upstream.timeout_ms` and answer code 32. The checks run on a small pool of their
//! own threads, at most half the cores, lowered to nice `NICE`: when the proxy's threads are
//! busy the scheduler gives them the CPU first, and a login waits instead of a lookup.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The niceness of the password threads: CFS gives a nice-10 thread about a tenth of a
/// nice-0 thread's share when both want the same core.
pub(crate) const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The pool of password-check threads.
pub(crate) struct PasswordChecks {
    jobs: SyncSender<Job>,
}

/// Why a check did not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    #[error("every password thread is busy and the queue is full")]
    Busy,
    #[error("the password threads have stopped")]
    Stopped,
}

impl PasswordChecks {
    /// Starts `threads` (at least one) password threads with room for `queue` waiting
    /// checks. A thread the system refuses to start is logged; with none started every check
    /// fails with [`CheckError::Stopped`] and the login is refused (never let through).
    pub(crate) fn start(threads: usize, queue: usize) -> Self {
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let started = std::thread::Builder::new()
                .name(format!("gerbang-pw-{n}"))
                .spawn(move || work(&rx));
            if let Err(e) = started {
                tracing::error!(error = %e, "a password-check thread could not start");
            }
        }
        Self { jobs }
    }

    /// The pool for this machine: half the cores (at least one thread).
    pub(crate) fn for_this_machine(queue: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::start(cores / 2, queue)
    }

    /// Queues `check` for a password thread now, and gives a future of its result that
    /// waits without holding a proxy thread (and without borrowing the pool).
    pub(crate) fn run<T, F>(
        &self,
        check: F,
    ) -> impl Future<Output = Result<T, CheckError>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(check());
        });
        let queued = self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => CheckError::Busy,
            TrySendError::Disconnected(_) => CheckError::Stopped,
        });
        async move {
            queued?;
            rx.await.map_err(|_| CheckError::Stopped)
        }
    }
}

/// A password thread: lowers its own priority, then runs checks until the pool is dropped.
fn work(rx: &Mutex<Receiver<Job>>) {
    // On Linux a thread's id names the thread alone to setpriority(2).
    let tid = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), now.max(NICE)) {
        tracing::warn!(error = %e, nice = NICE, "password thread keeps the proxy's priority");
    }
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_check_runs_on_a_lowered_thread_and_its_result_comes_back() {
        let before = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let pool = PasswordChecks::start(1, 4);
        let (name, nice) = pool
            .run(|| {
                let me = rustix::thread::gettid();
                (
                    std::thread::current().name().map(str::to_string),
                    rustix::process::getpriority_process(Some(me)).unwrap(),
                )
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("gerbang-pw-0"));
        // At least NICE: a process started niced already (under `nice`) is not raised.
        assert!(nice >= NICE, "password thread at nice {nice}");
        // The caller's own thread keeps its priority.
        let after = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_eq!(after, before);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_piling_up() {
        let pool = PasswordChecks::start(1, 1);
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        // One check runs (held), one waits in the queue, the third is refused.
        let running = pool.run(move || {
            let _ = started_tx.send(());
            let _ = hold_rx.recv();
        });
        let running = tokio::spawn(running);
        started_rx.recv().unwrap();
        let queued = pool.run(|| 2);
        let refused = pool.run(|| 3).await;
        assert!(matches!(refused, Err(CheckError::Busy)), "{refused:?}");
        hold_tx.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap(), 2);
    }
}

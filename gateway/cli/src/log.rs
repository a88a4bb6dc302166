//! The gateway's operational log on stderr, written in batches.
//!
//! Every request logs one line. Written straight to stderr that is one write(2) per request
//! on a proxy worker; `tracing-appender`'s non-blocking writer moves the write to a thread
//! but wakes it for every line, and its channel spins (`sched_yield`) while waiting, which
//! cost as much CPU as the writes it saved. Here a worker appends its line to a shared
//! buffer under a mutex and goes on; a thread writes the buffer out every
//! [`FLUSH_EVERY`], and at once for a warning or an error. Nothing is dropped: past
//! [`MAX_BUFFERED`] bytes the worker that finds the buffer full writes it itself.
//!
//! Under systemd, with stderr going to the journal, lines carry no timestamp of their own
//! (journald stamps each line as it arrives) and begin with their syslog priority as
//! sd-daemon(3) describes, `<3>` for an error to `<7>` for debug, which journald reads into
//! `PRIORITY=`: `journalctl -u gerbang -p warning` then shows warnings and errors only.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Sets up the operational log on stderr, filtered by `RUST_LOG` (default `info`): batched
/// (a proxy worker only appends its line, one per request), lines still buffered written
/// when the returned guard is dropped; for the journal when stderr goes there. The decision
/// log, not this, is the record of requests.
pub fn init() -> Guard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = batched_stderr();
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let journal_stream = std::env::var_os("JOURNAL_STREAM");
    let _ = if is_journal(journal_stream.as_deref(), std::io::stderr().as_fd()) {
        logger
            .with_ansi(false)
            .event_format(Journald(tracing_subscriber::fmt::format().without_time()))
            .try_init()
    } else {
        // Colours only on a terminal: log files and CI output stay plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        logger.with_ansi(ansi).try_init()
    };
    guard
}

/// Whether `fd` is the journal's stream: systemd sets `JOURNAL_STREAM` to `device:inode` of
/// the stream it gives a service (systemd.exec(5)). A process started from the service with
/// its stderr sent elsewhere inherits the variable, so the numbers are compared with the
/// descriptor's own rather than trusting the variable's presence.
fn is_journal(journal_stream: Option<&OsStr>, fd: BorrowedFd<'_>) -> bool {
    let Some((dev, ino)) = journal_stream
        .and_then(OsStr::to_str)
        .and_then(|v| v.split_once(':'))
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
    else {
        return false;
    };
    let Ok(fd) = fd.try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The `<N>` prefix of sd-daemon(3) for a level: error 3, warning 4, info 6, debug and trace 7.
fn priority(level: Level) -> &'static str {
    match level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

/// An event formatted as the inner format does, every line of it prefixed with the event's
/// priority: journald stores each line as an entry of its own and reads the prefix per line.
pub struct Journald<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for Journald<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        thread_local! {
            // One buffer per thread, kept: a request's line costs no allocation.
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            self.0.format_event(ctx, Writer::new(&mut *line), event)?;
            let prefix = priority(*event.metadata().level());
            for part in line.split_inclusive('\n') {
                writer.write_str(prefix)?;
                writer.write_str(part)?;
            }
            Ok(())
        })
    }
}

/// Longest a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Bytes buffered before the writer of a line writes them itself.
const MAX_BUFFERED: usize = 1 << 20;

/// Where batches go: stderr, or a test's buffer.
type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    sink: Sink,
    /// Held while bytes go to the sink, taken while `state` is held: batches reach the sink
    /// in the order they left the buffer, even when the thread writes one outside `state`
    /// and a worker finds the next one full meanwhile.
    writing: Mutex<()>,
    /// Signalled for a line that must not wait (a warning or an error), and at shutdown.
    urgent: Condvar,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    flush_now: bool,
    stopping: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `bytes` to stderr. Nothing else can be done with a failing stderr.
fn to_stderr(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// The `MakeWriter` for the fmt subscriber.
#[derive(Clone)]
pub struct Batched {
    shared: Arc<Shared>,
}

/// Stops the writing thread and writes what is buffered when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A batched writer to stderr and the guard that flushes it at exit.
pub fn batched_stderr() -> (Batched, Guard) {
    batched(Box::new(to_stderr))
}

fn batched(sink: Sink) -> (Batched, Guard) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        sink,
        writing: Mutex::new(()),
        urgent: Condvar::new(),
    });
    let flusher = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("gerbang-log".into())
        .spawn(move || flusher.run())
        .ok();
    (
        Batched {
            shared: Arc::clone(&shared),
        },
        Guard { shared, thread },
    )
}

impl Shared {
    fn run(&self) {
        let mut st = lock(&self.state);
        loop {
            if !st.flush_now && !st.stopping {
                st = self
                    .urgent
                    .wait_timeout(st, FLUSH_EVERY)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            st.flush_now = false;
            let stopping = st.stopping;
            let out = std::mem::take(&mut st.buf);
            let writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
            drop(st);
            if !out.is_empty() {
                (self.sink)(&out);
            }
            drop(writing);
            if stopping {
                return;
            }
            st = lock(&self.state);
            // Keep the allocation for the next batch when it was not grown huge.
            if st.buf.is_empty() && out.capacity() <= MAX_BUFFERED {
                let mut out = out;
                out.clear();
                st.buf = out;
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        lock(&self.shared.state).stopping = true;
        self.shared.urgent.notify_one();
        match self.thread.take() {
            Some(thread) => {
                let _ = thread.join();
            }
            // No thread could be started: lines were written by their writers' flushes.
            None => {
                let out = std::mem::take(&mut lock(&self.shared.state).buf);
                (self.shared.sink)(&out);
            }
        }
    }
}

/// One event's writer: its line goes into the buffer.
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut st = lock(&self.shared.state);
        if st.buf.len() + bytes.len() > MAX_BUFFERED || st.stopping {
            // The thread is behind (or gone): write in place rather than grow or drop.
            // Written under the lock, after any batch the thread is still writing, so that
            // no line can come out before these.
            let out = std::mem::take(&mut st.buf);
            let _writing = self
                .shared
                .writing
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (self.shared.sink)(&out);
            (self.shared.sink)(bytes);
            return Ok(bytes.len());
        }
        st.buf.extend_from_slice(bytes);
        if self.urgent {
            st.flush_now = true;
            drop(st);
            self.shared.urgent.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::format;

    fn capture() -> (Batched, Guard, Arc<Mutex<Vec<u8>>>) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&out);
        let (writer, guard) = batched(Box::new(move |b: &[u8]| {
            sink.lock().expect("sink").extend_from_slice(b);
        }));
        (writer, guard, out)
    }

    #[test]
    fn lines_come_out_in_order_a_warning_at_once_the_rest_at_exit() {
        let (writer, guard, out) = capture();
        let mut line = writer.make_writer();
        line.write_all(b"one\n").expect("write");
        line.write_all(b"two\n").expect("write");
        Line {
            shared: &writer.shared,
            urgent: true,
        }
        .write_all(b"warn\n")
        .expect("write");
        // The warning does not wait for the interval.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.lock().expect("out").len() < 13 {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            std::thread::sleep(Duration::from_millis(1));
        }
        line.write_all(b"last\n").expect("write");
        drop(guard);
        assert_eq!(*out.lock().expect("out"), b"one\ntwo\nwarn\nlast\n");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_writer_of_the_line_in_order() {
        let (writer, guard, out) = capture();
        let mut line = writer.make_writer();
        let big = vec![b'x'; MAX_BUFFERED - 2];
        line.write_all(&big).expect("write");
        line.write_all(b"\nA\n").expect("write");
        // Past the bound: both went out at once, without the thread.
        assert!(lock(&writer.shared.state).buf.is_empty());
        assert_eq!(out.lock().expect("out").len(), MAX_BUFFERED + 1);
        drop(guard);
        assert!(out.lock().expect("out").ends_with(b"x\nA\n"));
    }

    #[test]
    fn journal_lines_carry_their_priority_and_no_timestamp() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&out);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .event_format(Journald(format().without_time()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(pks.count = 3, "boom");
            tracing::warn!("careful");
            tracing::info!("started");
            tracing::debug!("detail");
            tracing::trace!("more detail");
            tracing::error!("first line\nsecond line");
        });
        let text = String::from_utf8(out.lock().expect("out").clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        let expected = [
            ("<3>ERROR ", "boom pks.count=3"),
            ("<4> WARN ", "careful"),
            ("<6> INFO ", "started"),
            ("<7>DEBUG ", "detail"),
            ("<7>TRACE ", "more detail"),
            ("<3>ERROR ", "first line"),
        ];
        for (line, (start, end)) in lines.iter().zip(expected) {
            assert!(line.starts_with(start) && line.ends_with(end), "{line:?}");
        }
        // The second line of an event is an entry of its own: it gets the prefix too.
        assert_eq!(lines[6], "<3>second line");
    }

    #[test]
    fn the_journal_is_recognised_by_its_device_and_inode_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stream = std::fs::File::create(dir.path().join("stream")).expect("file");
        let other = std::fs::File::create(dir.path().join("other")).expect("file");
        let meta = stream.metadata().expect("metadata");
        let var = format!("{}:{}", meta.dev(), meta.ino());
        assert!(is_journal(Some(OsStr::new(&var)), stream.as_fd()));
        // Inherited by a process whose stderr went elsewhere: not the journal.
        assert!(!is_journal(Some(OsStr::new(&var)), other.as_fd()));
        assert!(!is_journal(None, stream.as_fd()));
        for bad in ["", "1", ":", "x:y", "1:2:3"] {
            assert!(!is_journal(Some(OsStr::new(bad)), stream.as_fd()), "{bad}");
        }
    }

    /// A writer into a shared buffer.
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

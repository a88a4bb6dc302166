//! The gateway's operational log on stderr, written in batches.
//!
//! Every request logs one line. Written straight to stderr that is one write(2) per request
//! on a proxy worker; `tracing-appender`'s non-blocking writer moves the write to a thread
//! but wakes it for every line, and its channel spins (`sched_yield`) while waiting, which
//! cost as much CPU as the writes it saved. Here a worker appends its line to a shared
//! buffer under a mutex and goes on; a thread writes the buffer out every
//! [`FLUSH_EVERY`], and at once for a warning or an error. Nothing is dropped: past
//! [`MAX_BUFFERED`] bytes the worker that finds the buffer full writes it itself.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

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
}

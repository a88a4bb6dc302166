//! Client connections around HTTP: the caps on how many a source address and everyone
//! together may hold, the TLS handshake, and the deadlines a slow client meets, all from
//! `[listen]` (see `docs/gateway.md`, "Slow and numerous clients").
//!
//! Pingora bounds each *read* of a request head (60 s, or not at all on a kept-alive
//! connection), each TLS handshake at a fixed 60 s, and each body *write* but not the flush
//! that follows it: one byte every few seconds, or a client that never reads, holds a
//! connection and its task indefinitely. So the gateway runs its own connection loop in
//! front of pingora's HTTP/1 handling ([`Listener`]): it accepts plain TCP from pingora,
//! refuses connections over the caps at once, does the TLS handshake under its own
//! deadline, bounds the whole request head (a request whose head is late is dropped with its
//! connection before pingora has anything to answer or log), and wraps the stream in a
//! [`Guarded`] stream that bounds the total time an answer may wait for the client to read
//! it. The body's deadline is `Gateway::read_body`'s (a total over all of its reads).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use pingora::apps::ReusedHttpStream;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use pingora::proxy::{HttpProxy, Session};
use pingora::server::ShutdownWatch;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use gerbang_core::{ListenLimits, canonical_ip};

use crate::certs::ServedCert;
use crate::gateway::Gateway;
use crate::proxy_protocol::{Balancers, HeaderError, accept_header};

/// Why a connection was refused at accept, for the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The source address holds `max_connections_per_address` already.
    PerAddress,
    /// The gateway holds `max_connections` already.
    Total,
}

impl Refused {
    fn as_str(self) -> &'static str {
        match self {
            Self::PerAddress => "per_address",
            Self::Total => "total",
        }
    }
}

/// Why the gateway closed a connection itself, for the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    None,
    TlsHandshakeTimeout,
    TlsHandshakeFailed,
    HeadTimeout,
    WriteTimeout,
    /// A trusted balancer's connection without a valid PROXY header in time.
    ProxyHeader(HeaderError),
}

impl Closed {
    const LABELS: [Self; 7] = [
        Self::TlsHandshakeTimeout,
        Self::TlsHandshakeFailed,
        Self::HeadTimeout,
        Self::WriteTimeout,
        Self::ProxyHeader(HeaderError::Timeout),
        Self::ProxyHeader(HeaderError::Invalid),
        Self::ProxyHeader(HeaderError::Closed),
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::TlsHandshakeTimeout => "tls_handshake_timeout",
            Self::TlsHandshakeFailed => "tls_handshake_failed",
            Self::HeadTimeout => "head_timeout",
            Self::WriteTimeout => "write_timeout",
            Self::ProxyHeader(HeaderError::Timeout) => "proxy_header_timeout",
            Self::ProxyHeader(HeaderError::Invalid) => "proxy_header_invalid",
            Self::ProxyHeader(HeaderError::Closed) => "proxy_header_incomplete",
        }
    }
}

/// The connection metrics, labelled by reason, never by address.
pub(crate) struct ConnMetrics {
    open: IntGauge,
    refused: IntCounterVec,
    closed: IntCounterVec,
}

impl ConnMetrics {
    /// Registers the connection metrics beside the gateway's others, every reason at 0.
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let open = IntGauge::new("gerbang_connections_open", "Client connections open now.")?;
        let refused = IntCounterVec::new(
            Opts::new(
                "gerbang_connections_refused_total",
                "Client connections closed at accept because a cap was reached, by cap (per_address|total).",
            ),
            &["reason"],
        )?;
        let closed = IntCounterVec::new(
            Opts::new(
                "gerbang_connections_closed_total",
                "Client connections the gateway closed because a deadline passed, TLS failed or a trusted balancer's PROXY header was missing or invalid, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        for r in [Refused::PerAddress, Refused::Total] {
            refused.with_label_values(&[r.as_str()]);
        }
        for c in Closed::LABELS {
            closed.with_label_values(&[c.as_str()]);
        }
        Ok(Self {
            open,
            refused,
            closed,
        })
    }

    fn closed(&self, why: Closed) {
        if why != Closed::None {
            self.closed.with_label_values(&[why.as_str()]).inc();
        }
    }
}

/// Open connections, per source address and in total.
pub(crate) struct Connections {
    per_address: DashMap<IpAddr, u32>,
    total: AtomicU32,
    max_total: u32,
    max_per_address: u32,
}

/// One admitted connection; dropping it gives its place back.
pub(crate) struct Slot<'a> {
    table: &'a Connections,
    peer: Option<IpAddr>,
}

impl Connections {
    pub(crate) fn new(limits: &ListenLimits) -> Self {
        Self {
            per_address: DashMap::new(),
            total: AtomicU32::new(0),
            max_total: limits.max_connections.get(),
            max_per_address: limits.max_connections_per_address.get(),
        }
    }

    /// Takes a place for a connection from `peer`, or says which cap is reached.
    pub(crate) fn admit(&self, peer: Option<IpAddr>) -> Result<Slot<'_>, Refused> {
        let admitted = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_total).then_some(n + 1)
            });
        if admitted.is_err() {
            return Err(Refused::Total);
        }
        if let Some(ip) = peer {
            match self.per_address.entry(ip) {
                Entry::Occupied(e) if *e.get() >= self.max_per_address => {
                    drop(e);
                    self.total.fetch_sub(1, Ordering::AcqRel);
                    return Err(Refused::PerAddress);
                }
                Entry::Occupied(mut e) => *e.get_mut() += 1,
                Entry::Vacant(e) => {
                    e.insert(1);
                }
            }
        }
        Ok(Slot { table: self, peer })
    }

    /// Connections open now from `ip`.
    #[cfg(test)]
    fn from(&self, ip: IpAddr) -> u32 {
        self.per_address.get(&ip).map_or(0, |n| *n)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(ip) = self.peer
            && let Entry::Occupied(mut e) = self.table.per_address.entry(ip)
        {
            if *e.get() <= 1 {
                e.remove();
            } else {
                *e.get_mut() -= 1;
            }
        }
        self.table.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the connection loop, the gateway and a [`Guarded`] stream share about one
/// connection.
#[derive(Debug, Default)]
struct ConnState {
    /// Counts the connection's requests; a change starts a new answer's write budget.
    request: AtomicU64,
    /// The first byte of the current request has arrived.
    head_begun: AtomicBool,
    /// Wakes the connection loop when it has.
    head_begins: Notify,
    /// The current request's head has been read whole (set by the gateway's first hook).
    head_read: AtomicBool,
    /// The stream failed because an answer waited too long for the client.
    write_timed_out: AtomicBool,
}

impl ConnState {
    fn next_request(&self) {
        self.head_read.store(false, Ordering::Release);
        self.head_begun.store(false, Ordering::Release);
        self.request.fetch_add(1, Ordering::AcqRel);
    }

    /// Why the connection ended on its own stream's deadline, if it did.
    fn closed(&self) -> Closed {
        if self.write_timed_out.load(Ordering::Acquire) {
            Closed::WriteTimeout
        } else {
            Closed::None
        }
    }
}

/// Marks the request head of `session` as read whole, ending its deadline. Called first
/// thing in `request_filter`; a session whose stream is not [`Guarded`] has no head
/// deadline to end.
pub(crate) fn head_read(session: &Session) {
    if let Some(stream) = session.as_downstream().stream()
        && let Some(guarded) = (**stream).as_any().downcast_ref::<Guarded>()
    {
        guarded.state.head_read.store(true, Ordering::Release);
    }
}

/// A client stream that tells the connection loop when a request's first byte arrives, and
/// bounds the time one answer may wait for the client to read it: `write_timeout` in total,
/// summed over every write, flush or shutdown that could not proceed. Past it the operation
/// fails with `TimedOut`, and every later one too; pingora then drops the connection.
pub(crate) struct Guarded {
    inner: Stream,
    state: Arc<ConnState>,
    write_timeout: Duration,
    /// The request the fields below belong to.
    request: u64,
    /// Time the current answer has already waited for the client.
    write_waited: Duration,
    /// Since when the current write has been waiting, if it is.
    write_since: Option<Instant>,
    write_sleep: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string())
}

impl Guarded {
    fn new(inner: Stream, state: Arc<ConnState>, limits: &ListenLimits) -> Self {
        Self {
            inner,
            state,
            write_timeout: limits.write_timeout,
            request: 0,
            write_waited: Duration::ZERO,
            write_since: None,
            write_sleep: None,
            failed: false,
        }
    }

    /// Starts the write budget afresh when the connection loop has begun another request.
    fn sync(&mut self) {
        let request = self.state.request.load(Ordering::Acquire);
        if request != self.request {
            self.request = request;
            self.write_waited = Duration::ZERO;
            self.write_since = None;
            self.write_sleep = None;
        }
    }

    fn fail(&mut self) -> std::io::Error {
        self.failed = true;
        self.state.write_timed_out.store(true, Ordering::Release);
        timed_out("the client did not read the answer in time")
    }

    /// After a write, flush or shutdown of the inner stream: counts the time it waited
    /// and fails it once the answer's budget is spent.
    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                if let Some(since) = self.write_since.take() {
                    self.write_waited += since.elapsed();
                }
                self.write_sleep = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let now = Instant::now();
                let since = *self.write_since.get_or_insert(now);
                let left = self.write_timeout.saturating_sub(self.write_waited);
                let deadline = since + left;
                if now >= deadline {
                    return Poll::Ready(Err(self.fail()));
                }
                let sleep = self
                    .write_sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(self.fail())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    /// A write, flush or shutdown of the inner stream, within the answer's write budget.
    fn guard_write<T>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut Stream>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(timed_out("the connection passed a deadline")));
        }
        this.sync();
        let polled = op(Pin::new(&mut this.inner), cx);
        this.after_write(cx, polled)
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(timed_out("the connection passed a deadline")));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && !this.state.head_read.load(Ordering::Acquire)
            && !this.state.head_begun.swap(true, Ordering::AcqRel)
        {
            this.state.head_begins.notify_one();
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.guard_write(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.guard_write(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.guard_write(cx, |inner, cx| inner.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.guard_write(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    /// Closes the stream (TLS: its `close_notify`), within what is left of the answer's
    /// write budget: a client that does not read cannot hold the close either.
    async fn shutdown(&mut self) {
        if self.failed {
            return;
        }
        let left = self.write_timeout.saturating_sub(self.write_waited);
        if tokio::time::timeout(left, Shutdown::shutdown(self.inner.as_mut()))
            .await
            .is_err()
        {
            let _ = self.fail();
        }
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.inner.set_socket_digest(socket_digest);
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// The stop's drain (SIGTERM; `docs/gateway.md`, "Stopping"): once begun, the client
/// listener stops accepting (its socket is closed, so a new connection is refused), kept-alive
/// connections close after their current request, and the stop waits for the open
/// connections to end, each request's quota hit committed or refunded and its decision-log
/// record written, before the process shuts its runtimes down.
#[derive(Debug)]
pub(crate) struct Drain {
    begun: tokio::sync::watch::Sender<bool>,
    /// Client connections open now.
    open: AtomicU32,
}

/// While draining, how long a kept-alive connection waits for its next request before it
/// closes.
const DRAIN_IDLE_SECS: u64 = 1;

/// How often the stop looks whether the drained connections have ended.
const DRAIN_POLL: Duration = Duration::from_millis(20);

impl Drain {
    pub(crate) fn new() -> Self {
        Self {
            begun: tokio::sync::watch::channel(false).0,
            open: AtomicU32::new(0),
        }
    }

    /// Stops taking connections; those open finish their current request.
    pub(crate) fn begin(&self) {
        self.begun.send_replace(true);
    }

    pub(crate) fn is_draining(&self) -> bool {
        *self.begun.borrow()
    }

    /// Client connections open now.
    pub(crate) fn open(&self) -> u32 {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until no client connection is open, or `deadline` has passed; returns how many
    /// are still open.
    pub(crate) async fn ended(&self, deadline: Duration) -> u32 {
        let until = Instant::now() + deadline;
        // A connection accepted just before the listener closed is counted once its task
        // runs: the first look comes a poll later.
        loop {
            tokio::time::sleep(DRAIN_POLL).await;
            if self.open() == 0 || Instant::now() >= until {
                return self.open();
            }
        }
    }

    /// A shutdown watch for the client listener: true once the drain begins or pingora
    /// stops (a fast stop, SIGINT, does not drain).
    pub(crate) fn watch(&self, mut server: ShutdownWatch) -> ShutdownWatch {
        let (tx, rx) = tokio::sync::watch::channel(*server.borrow() || self.is_draining());
        let mut begun = self.begun.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = server.wait_for(|stop| *stop) => {}
                _ = begun.wait_for(|begun| *begun) => {}
            }
            tx.send_replace(true);
            // Kept until the listener is gone, so that its watch never reads as closed.
            tx.closed().await;
        });
        rx
    }
}

/// One open client connection, counted in [`Drain`] until dropped.
struct Open<'a>(&'a Drain);

impl<'a> Open<'a> {
    fn new(drain: &'a Drain) -> Self {
        drain.open.fetch_add(1, Ordering::AcqRel);
        Self(drain)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The gateway's connection loop: pingora accepts plain TCP and hands each connection
/// here; HTTP/1 requests are then served by pingora's proxy one after another, as
/// pingora's own loop does, with the caps and deadlines of `[listen]` around them.
pub(crate) struct Listener {
    proxy: Arc<HttpProxy<Gateway>>,
    tls: Option<Arc<ServedCert>>,
    limits: ListenLimits,
    connections: Connections,
    metrics: ConnMetrics,
    drain: Arc<Drain>,
    /// Balancers whose connections begin with a PROXY header.
    balancers: Balancers,
}

impl Listener {
    pub(crate) fn new(
        proxy: HttpProxy<Gateway>,
        tls: Option<Arc<ServedCert>>,
        limits: ListenLimits,
        metrics: ConnMetrics,
        drain: Arc<Drain>,
    ) -> Self {
        Self {
            proxy: Arc::new(proxy),
            tls,
            connections: Connections::new(&limits),
            limits,
            metrics,
            drain,
            balancers: Balancers::default(),
        }
    }

    /// Trusts these balancers' PROXY headers (`[listen] proxy_protocol_from`).
    pub(crate) fn with_balancers(mut self, balancers: Balancers) -> Self {
        self.balancers = balancers;
        self
    }

    /// The client's address: the TCP peer's, or, on a connection from a trusted balancer,
    /// the one its PROXY header carries (read here, within the head deadline).
    async fn client(&self, stream: Stream) -> Result<(Stream, Option<IpAddr>), Closed> {
        let peer = peer_ip(&stream);
        if !self.balancers.trusts(peer) {
            return Ok((stream, peer));
        }
        let Ok(mut tcp) = stream.into_any().downcast::<L4Stream>() else {
            tracing::error!("an accepted connection is not a TCP stream; closed");
            return Err(Closed::ProxyHeader(HeaderError::Invalid));
        };
        match accept_header(&mut tcp, self.limits.head_timeout).await {
            Ok(client) => {
                let peer = client.map_or(peer, |c| Some(canonical_ip(c.ip())));
                Ok((tcp, peer))
            }
            Err(e) => {
                tracing::debug!(error = %e, balancer = ?peer, "connection from a trusted balancer closed");
                Err(Closed::ProxyHeader(e))
            }
        }
    }

    /// The TLS handshake within `tls_handshake_timeout`, when TLS is configured.
    async fn handshake(&self, stream: Stream) -> Result<Stream, Closed> {
        let Some(cert) = &self.tls else {
            return Ok(stream);
        };
        // The pair in force now: a reload changes it for the connections that follow.
        let acceptor = cert.acceptor();
        // The listener is plain TCP, so the stream is pingora's TCP stream.
        let Ok(tcp) = stream.into_any().downcast::<L4Stream>() else {
            tracing::error!("an accepted connection is not a TCP stream; closed");
            return Err(Closed::TlsHandshakeFailed);
        };
        match tokio::time::timeout(
            self.limits.tls_handshake_timeout,
            acceptor.tls_handshake(*tcp),
        )
        .await
        {
            Ok(Ok(tls)) => Ok(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                Err(Closed::TlsHandshakeFailed)
            }
            Err(_) => Err(Closed::TlsHandshakeTimeout),
        }
    }

    /// Serves the connection's requests until it closes, a deadline passes, or its
    /// request count is used.
    async fn serve(&self, stream: Stream, shutdown: &ShutdownWatch) {
        let state = Arc::new(ConnState::default());
        let stream: Stream = Box::new(Guarded::new(stream, Arc::clone(&state), &self.limits));
        let keepalive = self.limits.keepalive_timeout.as_secs().max(1);
        let mut session = ServerSession::new_http1(stream);
        // Requests left after this one (pingora counts down on each reuse).
        session.set_keepalive_reuses_remaining(Some(
            self.limits.max_requests_per_connection.get() - 1,
        ));
        // The first head counts from the connection's start.
        let mut head_deadline = Some(Instant::now() + self.limits.head_timeout);
        loop {
            // Between requests, pingora waits this long for the next one's first byte. While
            // draining, a kept-alive connection still waits a moment: a client that sent its
            // next request just as the drain began gets it answered (with `Connection:
            // close`, pingora's doing under the shutdown watch) instead of a closed
            // connection it cannot tell from a lost request.
            session.set_keepalive(Some(if *shutdown.borrow() {
                DRAIN_IDLE_SECS
            } else {
                keepalive
            }));
            state.next_request();
            let served = match self
                .one_request(session, shutdown, &state, head_deadline)
                .await
            {
                Ok(served) => served,
                Err(why) => {
                    self.metrics.closed(why);
                    return;
                }
            };
            let Some((stream, persistent)) = served.map(|r| r.consume()) else {
                self.metrics.closed(state.closed());
                return;
            };
            session = ServerSession::new_http1(stream);
            if let Some(persistent) = persistent {
                persistent.apply_to_session(&mut session);
            }
            // A later head counts from its own first byte.
            head_deadline = None;
        }
    }

    /// One request through pingora's proxy, its head bounded: by `deadline`, or, when that
    /// is `None`, by `head_timeout` from its first byte. A head still incomplete then is
    /// dropped with its connection, before pingora has anything to answer or log: the
    /// client sent no request.
    async fn one_request(
        &self,
        session: ServerSession,
        shutdown: &ShutdownWatch,
        state: &ConnState,
        mut deadline: Option<Instant>,
    ) -> Result<Option<ReusedHttpStream>, Closed> {
        let served = self.proxy.process_new_http(session, shutdown);
        tokio::pin!(served);
        loop {
            tokio::select! {
                biased;
                out = &mut served => return Ok(out),
                () = state.head_begins.notified(), if deadline.is_none() => {
                    if state.head_begun.load(Ordering::Acquire) {
                        deadline = Some(Instant::now() + self.limits.head_timeout);
                    }
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    if state.head_read.load(Ordering::Acquire) {
                        return Ok(served.await);
                    }
                    return Err(Closed::HeadTimeout);
                }
            }
        }
    }
}

/// The client's address, for the per-address cap (IPv4-mapped IPv6 counted as IPv4).
fn peer_ip(stream: &Stream) -> Option<IpAddr> {
    let digest = stream.get_socket_digest()?;
    let peer: &SocketAddr = digest.peer_addr()?;
    peer.as_inet().map(|a| canonical_ip(a.ip()))
}

#[async_trait]
impl ServerApp for Listener {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let (stream, peer) = match self.client(stream).await {
            Ok(client) => client,
            Err(why) => {
                self.metrics.closed(why);
                return None;
            }
        };
        let slot = match self.connections.admit(peer) {
            Ok(slot) => slot,
            Err(refused) => {
                // Dropping the stream closes it: nothing is read, nothing answered.
                self.metrics
                    .refused
                    .with_label_values(&[refused.as_str()])
                    .inc();
                tracing::debug!(reason = refused.as_str(), "connection refused at accept");
                return None;
            }
        };
        self.metrics.open.inc();
        let open = Open::new(&self.drain);
        match self.handshake(stream).await {
            Ok(stream) => self.serve(stream, shutdown).await,
            Err(why) => self.metrics.closed(why),
        }
        self.metrics.open.dec();
        drop(open);
        drop(slot);
        None
    }

    async fn cleanup(&self) {
        // Wakes kept-alive connections waiting for their next request, so a stop does not
        // wait for them; in a drain only after a moment, so that a request a client sent
        // just as the drain began is read and answered (with `Connection: close`) rather
        // than cut with its connection.
        if self.drain.is_draining() {
            tokio::time::sleep(Duration::from_secs(DRAIN_IDLE_SECS)).await;
        }
        self.proxy.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_answer_the_client_does_not_read_fails_once_its_write_budget_is_spent() {
        let (near, mut far) = tokio::io::duplex(64);
        let state = Arc::new(ConnState::default());
        state.next_request();
        let limits = ListenLimits {
            write_timeout: Duration::from_millis(50),
            ..ListenLimits::default()
        };
        let mut client = Guarded::new(Box::new(near), Arc::clone(&state), &limits);
        // A request's first byte tells the connection loop.
        far.write_all(b"P").await.expect("write");
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).await.expect("read");
        assert!(state.head_begun.load(Ordering::Acquire));
        // What fits in the pipe is written; the client never reads the rest.
        client.write_all(&[b'a'; 64]).await.expect("fits");
        let stalled = tokio::time::timeout(Duration::from_secs(10), client.write_all(b"b"))
            .await
            .expect("the write budget bounds the wait");
        let err = stalled.expect_err("a write the client never takes fails");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(state.closed(), Closed::WriteTimeout);
        // Everything after fails at once, shutdown included (it would wait on the client).
        assert!(client.flush().await.is_err());
        Shutdown::shutdown(&mut client).await;
        drop(far);
    }

    fn limits(total: u32, per_address: u32) -> ListenLimits {
        ListenLimits {
            max_connections: std::num::NonZeroU32::new(total).expect("nonzero"),
            max_connections_per_address: std::num::NonZeroU32::new(per_address).expect("nonzero"),
            ..ListenLimits::default()
        }
    }

    #[test]
    fn caps_count_per_address_and_in_total_and_give_places_back() {
        let table = Connections::new(&limits(3, 2));
        let a: IpAddr = "10.1.1.1".parse().expect("ip");
        let b: IpAddr = "10.1.1.2".parse().expect("ip");
        let a1 = table.admit(Some(a)).expect("first");
        let a2 = table.admit(Some(a)).expect("second");
        assert_eq!(table.admit(Some(a)).err(), Some(Refused::PerAddress));
        let b1 = table.admit(Some(b)).expect("another address");
        assert_eq!(table.admit(Some(b)).err(), Some(Refused::Total));
        assert_eq!(table.admit(None).err(), Some(Refused::Total));
        // A refusal takes no place.
        assert_eq!(table.total.load(Ordering::Acquire), 3);
        drop(a1);
        assert_eq!(table.from(a), 1);
        let b2 = table.admit(Some(b)).expect("a place was given back");
        drop((a2, b1, b2));
        assert_eq!(table.total.load(Ordering::Acquire), 0);
        assert!(
            table.per_address.is_empty(),
            "no address is kept once closed"
        );
    }
}

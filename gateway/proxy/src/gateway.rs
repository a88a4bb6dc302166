//! The pingora service, and the map of a request's way through it. `request_filter` runs
//! for every request: it checks the framing, sends the Web Portal's requests to
//! `portal.rs`, and runs the API's stages (`stages.rs`: identify, route, read body,
//! authenticate, card reader, decide, meter), answering a refusal itself. An admitted
//! lookup is then forwarded, filtered, recorded and answered there too (`forward.rs`,
//! `record.rs`), in one write with its length. Only portal pages go through pingora's
//! proxying (`upstream_peer` and the response filters), because they are passed on as
//! they come. `logging` records the outcome once (`record.rs`, `metrics.rs`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::NaiveDate;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use gerbang_core::{
    Channel, Clock, Config, ElementSet, Nik, Refusal, Rejection, Shape, StatusMode, canonical_ip,
};
use gerbang_policy::{Action, Authenticator, Decision, Snapshot, UserRef};
use gerbang_quota::{Burst, Meter, Usage};
use gerbang_sam::SamClient;

use crate::forward::{Upstream, upstream_refusal};
use crate::metrics::Metrics;
use crate::passwords::PasswordChecks;
use crate::portal::{Portal, PortalCtx, is_portal};
pub use crate::record::Audit;
use crate::record::Strangers;
use crate::stages::Stop;

/// Most argon2 checks running at once.
const ARGON2_SLOTS: usize = 4;

/// The shared state of the data plane.
pub struct Gateway {
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) meter: Arc<Meter>,
    pub(crate) metrics: Arc<Metrics>,
    /// The decision log, when configured.
    pub(crate) audit: Option<Audit>,
    pub(crate) request_ids: std::sync::atomic::AtomicU64,
    pub(crate) burst: Burst,
    /// The last WIB day a request was metered on, to drop yesterday's counters once.
    pub(crate) last_day: std::sync::Mutex<Option<NaiveDate>>,
    /// Bounds concurrent argon2 checks (each takes ~19 MiB and tens of milliseconds), so a
    /// burst of cold logins cannot exhaust memory or starve the proxy.
    pub(crate) argon2_slots: tokio::sync::Semaphore,
    /// Where those checks run: threads below the proxy's priority (`passwords.rs`).
    pub(crate) passwords: PasswordChecks,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) status_mode: StatusMode,
    pub(crate) max_body_bytes: usize,
    /// How long a client may take to send its whole request body (`listen.request_body_timeout_ms`).
    pub(crate) body_timeout: Duration,
    /// The DWH: its address, connection pool and timeouts.
    pub(crate) upstream: Upstream,
    /// The SAM sidecar's client; `None`: card-reader requests are refused.
    pub(crate) sam: Option<SamClient>,
    /// The Web Portal channel: its sessions and settings.
    pub(crate) portal: Portal,
    /// Portal sessions and login lockouts, in this process or shared through Redis.
    pub(crate) shared: crate::shared::SharedState,
    /// Which refusals of addresses in no registered IP LAN are recorded.
    pub(crate) strangers: Strangers,
    /// The data-balikan channel's settings.
    pub(crate) balikan: gerbang_core::BalikanSettings,
}

/// Per-request state, from the first filter to `logging`.
pub struct GatewayCtx {
    pub(crate) started: Instant,
    /// Numbers requests within this process, for the decision log.
    pub(crate) request_id: u64,
    /// The looked-up NIK as the decision log's keyed digest (never the NIK itself).
    pub(crate) nik_digest: Option<gerbang_audit::NikDigest>,
    /// The NIK a lookup asked for, to check the DWH answered about that person; never
    /// logged (its `Debug` hides the digits).
    pub(crate) nik: Option<Nik>,
    /// The decision-log record was written where the answer was released.
    pub(crate) audited: bool,
    /// The TCP peer, IPv4-mapped addresses as IPv4 (`canonical_ip`): the one form every
    /// decision, record, log line and metric sees.
    pub(crate) peer: Option<IpAddr>,
    pub(crate) action: Option<Action>,
    pub(crate) user_id: Option<String>,
    pub(crate) pks: Option<String>,
    pub(crate) pengguna: Option<String>,
    pub(crate) channel: Channel,
    pub(crate) snapshot: Option<Arc<Snapshot>>,
    pub(crate) decision: Option<Arc<Decision>>,
    /// The request body as forwarded: rebuilt from the checked values (`upstream_body`).
    pub(crate) upstream_body: Bytes,
    pub(crate) upstream_status: Option<u16>,
    /// Which kind of DWH failure a refusal 31 or 32 was, for the metric, when it is not
    /// told by the refusal alone.
    pub(crate) upstream_error: Option<&'static str>,
    /// When the request to the DWH was sent, and how long its whole answer took.
    pub(crate) upstream_started: Option<Instant>,
    pub(crate) upstream_elapsed: Option<Duration>,
    /// Why Gerbang answered itself, if it did.
    pub(crate) refusal: Option<Refusal>,
    pub(crate) released: ElementSet,
    pub(crate) records: usize,
    /// The authenticated User ID's quota: a hit reserved (`reserved`) or its use so far.
    pub(crate) quota: Option<QuotaCtx>,
    /// A Web Portal request: what it is, for the response filters.
    pub(crate) portal: Option<PortalCtx>,
    /// A data balikan's outcome, for its record.
    pub(crate) balikan: Option<crate::balikan::BalikanCtx>,
    /// The authenticated User ID's PKS names `data_balikan`: its released lookups are noted.
    pub(crate) balikan_obligated: bool,
}

/// The quota of the request's User ID.
pub(crate) struct QuotaCtx {
    pub(crate) user: String,
    pub(crate) day: NaiveDate,
    /// The User ID's own use of the day.
    pub(crate) usage: Usage,
    /// When its Pengguna has a daily cap across its User IDs: the meter key and its use.
    pub(crate) pengguna: Option<(String, Usage)>,
    /// A hit was reserved for this request, under the User ID and, with a cap, the
    /// Pengguna (both refunded if the DWH fails).
    pub(crate) reserved: bool,
}

impl QuotaCtx {
    /// What the client is told (`quotaLimiter`, `X-Quota-*`): the User ID's limit, and what
    /// it can still use today, which a Pengguna cap may make less than its own remainder.
    pub(crate) fn shown(&self) -> Usage {
        let remaining = self
            .pengguna
            .as_ref()
            .map_or(self.usage.remaining(), |(_, p)| {
                p.remaining().min(self.usage.remaining())
            });
        Usage {
            used: self.usage.limit - remaining,
            limit: self.usage.limit,
        }
    }
}

impl GatewayCtx {
    /// Notes the PKS and the Pengguna of an authenticated User ID, for the request's record,
    /// log line and metrics.
    pub(crate) fn attribute_to(&mut self, snap: &Snapshot, user: UserRef) {
        let pks = snap.pks(user);
        self.pks = Some(pks.nomor.clone());
        self.pengguna = Some(pks.pengguna.clone());
        self.balikan_obligated = !pks.data_balikan.is_empty();
    }
}

impl Gateway {
    /// Builds the service over a snapshot the caller may later swap (reload).
    pub fn new(
        config: &Config,
        snapshot: Arc<ArcSwap<Snapshot>>,
        meter: Arc<Meter>,
        metrics: Arc<Metrics>,
        audit: Option<Audit>,
        clock: Arc<dyn Clock>,
        shared: crate::shared::SharedState,
    ) -> Self {
        Self {
            snapshot,
            auth: Arc::new(Authenticator::new()),
            meter,
            metrics,
            audit,
            request_ids: std::sync::atomic::AtomicU64::new(1),
            burst: Burst::new(config.quota.burst_per_user, config.quota.burst_per_pengguna),
            last_day: std::sync::Mutex::new(None),
            argon2_slots: tokio::sync::Semaphore::new(ARGON2_SLOTS),
            passwords: PasswordChecks::for_this_machine(ARGON2_SLOTS),
            clock,
            status_mode: config.api.status_mode,
            max_body_bytes: config.api.max_body_bytes,
            body_timeout: config.listen.limits.body_timeout,
            upstream: Upstream::new(&config.upstream, config.threads),
            sam: config
                .sam
                .as_ref()
                .map(|s| SamClient::new(&s.address, s.timeout)),
            portal: Portal::new(&config.portal, Arc::clone(&shared.sessions)),
            shared,
            strangers: Strangers::default(),
            balikan: config.balikan.clone(),
        }
    }

    /// The authenticator, for the reloader to keep the cached credentials still valid.
    pub fn authenticator(&self) -> Arc<Authenticator> {
        Arc::clone(&self.auth)
    }

    /// The Web Portal's sessions, for the reloader to end those a reload invalidates.
    pub fn portal_sessions(&self) -> Arc<dyn gerbang_shared::SessionStore> {
        Arc::clone(&self.portal.sessions)
    }

    fn next_request_id(&self) -> u64 {
        self.request_ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = GatewayCtx;

    fn new_ctx(&self) -> GatewayCtx {
        GatewayCtx {
            started: Instant::now(),
            request_id: self.next_request_id(),
            nik_digest: None,
            nik: None,
            audited: false,
            peer: None,
            action: None,
            user_id: None,
            pks: None,
            pengguna: None,
            channel: Channel::WebService,
            snapshot: None,
            decision: None,
            upstream_body: Bytes::new(),
            upstream_status: None,
            upstream_error: None,
            upstream_started: None,
            upstream_elapsed: None,
            refusal: None,
            released: ElementSet::EMPTY,
            records: 0,
            quota: None,
            portal: None,
            balikan: None,
            balikan_obligated: false,
        }
    }

    /// Runs first for every request: identify, authenticate, authorize. A refusal is
    /// answered here and the request ends.
    async fn request_filter(&self, session: &mut Session, ctx: &mut GatewayCtx) -> Result<bool> {
        crate::listener::head_read(session);
        // The TCP peer address is the only source of the client's address (art. 28). A
        // dual-stack listener sees an IPv4 client as `::ffff:a.b.c.d`: Cedar's
        // `context.peer_ip`, the log and the metrics must see `a.b.c.d`.
        ctx.peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| canonical_ip(a.ip()));
        if let Some(Err(detail)) = session
            .as_downstream()
            .as_http1()
            .map(|h1| crate::framing::check(&h1.get_headers_raw_bytes()))
        {
            // Where the body ends is unknown: nothing of it is read, and the connection closes.
            let reject = Rejection::new(Refusal::BadFraming, detail).body_unread();
            ctx.refusal = Some(reject.refusal);
            self.answer(session, &reject, None).await?;
            return Ok(true);
        }
        if is_portal(session.req_header().uri.path()) {
            return self.portal_request(session, ctx).await;
        }
        if crate::route::is_balikan(session.req_header().uri.path()) {
            return self.balikan_request(session, ctx).await;
        }
        match self.admit(session, ctx).await {
            Ok(()) => self.forward(session, ctx).await?,
            Err(Stop::Refuse(reject)) => {
                ctx.refusal = Some(reject.refusal);
                self.answer(session, &reject, ctx.quota.as_ref().map(QuotaCtx::shown))
                    .await?;
            }
            Err(Stop::Fail(e)) => return Err(e),
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut GatewayCtx,
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.upstream.peer.clone()))
    }

    /// A portal page's request to the DWH (`upstream_request`).
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut GatewayCtx,
    ) -> Result<()> {
        *upstream = self.upstream_request(session, ctx)?;
        ctx.upstream_started = Some(Instant::now());
        Ok(())
    }

    /// Replaces the client's body with the rewritten one. Cloned, not taken: a retried
    /// connection replays it.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GatewayCtx,
    ) -> Result<()> {
        *body = end_of_stream.then(|| ctx.upstream_body.clone());
        Ok(())
    }

    /// A portal page's answer gets Gerbang's headers only; the DWH's are not passed on.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut GatewayCtx,
    ) -> Result<()> {
        let status = upstream.status.as_u16();
        ctx.upstream_status = Some(status);
        if status != 200 {
            self.refund_once(ctx);
        }
        *upstream = self.portal_response_header(upstream, ctx)?;
        Ok(())
    }

    /// A portal page's body: passed on, or replaced when it was blocked. A page still coming
    /// past `upstream.timeout_ms` is cut off: that bounds the whole page, where pingora's
    /// read timeout bounds each read.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GatewayCtx,
    ) -> Result<Option<Duration>> {
        if let (Some(started), Some(whole)) = (
            ctx.upstream_started,
            self.upstream.peer.options.read_timeout,
        ) && !end_of_stream
            && started.elapsed() > whole
        {
            return Err(Error::explain(
                ErrorType::ReadTimedout,
                "the DWH portal's page took longer than upstream.timeout_ms",
            )
            .into_up());
        }
        if end_of_stream {
            ctx.upstream_elapsed = ctx.upstream_started.map(|t| t.elapsed());
        }
        self.portal_page_body(body, end_of_stream, ctx);
        Ok(None)
    }

    /// The DWH could not be reached or did not answer in time.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut GatewayCtx,
    ) -> FailToProxy {
        if client_gone(e) {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let refusal = upstream_refusal(e);
        ctx.refusal = Some(refusal);
        let reject = Rejection::new(refusal, "").body_unread();
        self.refund_once(ctx);
        let quota = ctx.quota.as_ref().map(QuotaCtx::shown);
        let written = if ctx.portal.is_some() {
            self.portal_upstream_failed(session, ctx, refusal).await
        } else {
            self.answer(session, &reject, quota).await
        };
        if let Err(write) = written {
            tracing::debug!(error = %write, "could not write the error answer");
        }
        FailToProxy {
            error_code: refusal.status(self.status_mode),
            can_reuse_downstream: false,
        }
    }

    /// A client that hung up or did not read is not an error of the gateway: its request's
    /// own log line says so, without pingora's `ERROR` line (which a client could otherwise
    /// have written at will).
    fn suppress_error_log(&self, _session: &Session, _ctx: &GatewayCtx, error: &Error) -> bool {
        client_gone(error)
    }

    /// One line per request, allowed or refused. Never a NIK, password or value. Requests
    /// from addresses in no registered IP LAN are counted, and only the first per address
    /// and minute is recorded and logged, without anything the client chose.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut GatewayCtx) {
        // Refunds happened where a DWH failure was decided. A hit whose answer the client
        // did not wait for still counts: the DWH did the work.
        let snap = ctx
            .snapshot
            .clone()
            .unwrap_or_else(|| self.snapshot.load_full());
        if !self.attribute(ctx, &snap) {
            return;
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elements = match (&ctx.snapshot, ctx.released.is_empty()) {
            (Some(snap), false) => snap.vocabulary().names(ctx.released).join(","),
            _ => String::new(),
        };
        let decision = match (ctx.refusal, &ctx.decision) {
            (Some(r), _) => r.name(),
            (None, Some(d)) if d.allowed() => "allow",
            _ => "none",
        };
        self.metrics.count_request(ctx);
        if !ctx.audited {
            self.audit_nowait(ctx);
        }
        tracing::info!(
            target: "gerbang::request",
            request_id = ctx.request_id,
            peer = ?ctx.peer,
            user.id = ctx.user_id.as_deref().unwrap_or(""),
            pks.id = ctx.pks.as_deref().unwrap_or(""),
            action = ctx.action.map_or("", Action::as_str),
            decision,
            rule = ctx.decision.as_ref().map_or("", |d| d.rule.as_str()),
            status,
            upstream.status = ctx.upstream_status.unwrap_or(0),
            records = ctx.records,
            elements = elements.as_str(),
            shape = ?ctx.decision.as_ref().map(|d| d.shape).unwrap_or(Shape::Values),
            quota.used = ctx.quota.as_ref().map_or(0, |q| q.usage.used),
            error = e.map(|e| e.to_string()).unwrap_or_default(),
            duration_us = u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
    }
}

/// Whether an error is the client's connection failing: it hung up, or did not read its
/// answer within `listen.write_timeout_ms`. Never the DWH's (its errors are marked upstream
/// where they happen), never answered, and logged only on the request's own line.
fn client_gone(e: &Error) -> bool {
    !matches!(e.esource(), ErrorSource::Upstream)
        && matches!(
            e.etype(),
            ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::ConnectionClosed
                | ErrorType::WriteTimedout
        )
}

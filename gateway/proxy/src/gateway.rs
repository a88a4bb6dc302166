//! The pingora service. `request_filter` identifies, authenticates and authorizes, answering
//! a refusal itself; an allowed lookup is then forwarded, filtered, recorded and answered
//! there too (`forward`), in one write with its length. Only portal pages go through
//! pingora's proxying (`upstream_peer` and the response filters), because they are passed
//! on as they come. `logging` records the outcome once.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use chrono::NaiveDate;
use gerbang_core::{
    BodyError, Channel, Clock, Config, ElementSet, FilterError, Nik, NikError, Refusal,
    RequestBody, SamReason, Shape, StatusMode, USER_ID_MAX_LEN, append_quota_limiter, canonical_ip,
    filter_answer, filter_lookup_answer, is_user_id,
};
use gerbang_policy::{
    Action, Authenticator, Credentials, Decision, Precheck, Request, Snapshot, authorize_traced,
};
use gerbang_quota::{Burst, Meter, QuotaError, Usage, until_next_wib_midnight};
use gerbang_sam::SamClient;

use crate::forward::{Checked, DwhAnswer, Upstream, unknown_key, upstream_body};
use crate::metrics::Metrics;
use crate::passwords::PasswordChecks;
use crate::portal::{Portal, PortalCtx, PortalRoute, is_portal};
pub use crate::record::Audit;
use crate::record::Strangers;
use crate::route::{route, upstream_path};

/// Largest DWH answer Gerbang buffers for filtering. A lookup answer is a few kilobytes; a
/// search page at most tens of records.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Most argon2 checks running at once.
const ARGON2_SLOTS: usize = 4;

/// The shared state of the data plane.
pub struct Gateway {
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    auth: Arc<Authenticator>,
    meter: Arc<Meter>,
    metrics: Arc<Metrics>,
    /// The decision log, when configured.
    pub(crate) audit: Option<Audit>,
    request_ids: std::sync::atomic::AtomicU64,
    burst: Burst,
    /// The last WIB day a request was metered on, to drop yesterday's counters once.
    last_day: std::sync::Mutex<Option<NaiveDate>>,
    /// Bounds concurrent argon2 checks (each takes ~19 MiB and tens of milliseconds), so a
    /// burst of cold logins cannot exhaust memory or starve the proxy.
    argon2_slots: tokio::sync::Semaphore,
    /// Where those checks run: threads below the proxy's priority (`passwords.rs`).
    passwords: PasswordChecks,
    pub(crate) clock: Arc<dyn Clock>,
    status_mode: StatusMode,
    max_body_bytes: usize,
    /// How long a client may take to send its whole request body (`listen.request_body_timeout_ms`).
    body_timeout: Duration,
    /// The DWH: its address, connection pool and timeouts.
    upstream: Upstream,
    /// The SAM sidecar's client; `None`: card-reader requests are refused.
    sam: Option<SamClient>,
    /// The Web Portal channel: its sessions and settings.
    pub(crate) portal: Portal,
    /// Which refusals of addresses in no registered IP LAN are recorded.
    strangers: Strangers,
}

/// Per-request state, from the first filter to `logging`.
pub struct GatewayCtx {
    started: Instant,
    /// Numbers requests within this process, for the decision log.
    pub(crate) request_id: u64,
    /// The looked-up NIK as the decision log's keyed digest (never the NIK itself).
    pub(crate) nik_digest: Option<gerbang_audit::NikDigest>,
    /// The NIK a lookup asked for, to check the DWH answered about that person; never
    /// logged (its `Debug` hides the digits).
    pub(crate) nik: Option<Nik>,
    /// The decision-log record was written where the answer was released.
    audited: bool,
    /// The TCP peer, IPv4-mapped addresses as IPv4 (`canonical_ip`): the one form every
    /// decision, record, log line and metric sees.
    pub(crate) peer: Option<IpAddr>,
    pub(crate) action: Option<Action>,
    pub(crate) user_id: Option<String>,
    pks: Option<String>,
    pengguna: Option<String>,
    channel: Channel,
    pub(crate) snapshot: Option<Arc<Snapshot>>,
    pub(crate) decision: Option<Arc<Decision>>,
    /// The request body as forwarded: rebuilt from the checked values (`upstream_body`).
    pub(crate) upstream_body: Bytes,
    upstream_status: Option<u16>,
    /// Which kind of DWH failure a refusal 31 or 32 was, for the metric, when it is not
    /// told by the refusal alone.
    upstream_error: Option<&'static str>,
    /// When the request to the DWH was sent, and how long its whole answer took.
    upstream_started: Option<Instant>,
    upstream_elapsed: Option<Duration>,
    /// Why Gerbang answered itself, if it did.
    pub(crate) refusal: Option<Refusal>,
    released: ElementSet,
    records: usize,
    /// The authenticated User ID's quota: a hit reserved (`reserved`) or its use so far.
    pub(crate) quota: Option<QuotaCtx>,
    /// A Web Portal request: what it is, for the response filters.
    pub(crate) portal: Option<PortalCtx>,
}

/// The quota of the request's User ID.
pub(crate) struct QuotaCtx {
    user: String,
    day: NaiveDate,
    /// The User ID's own use of the day.
    pub(crate) usage: Usage,
    /// When its Pengguna has a daily cap across its User IDs: the meter key and its use.
    pengguna: Option<(String, Usage)>,
    /// A hit was reserved for this request, under the User ID and, with a cap, the
    /// Pengguna (both refunded if the DWH fails).
    reserved: bool,
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

/// The meter key of a Pengguna's daily cap: `@` cannot start a User ID, so the two never
/// share a counter.
pub(crate) fn pengguna_key(pengguna: &str) -> String {
    format!("@pengguna/{pengguna}")
}

/// A refusal decided before forwarding.
pub(crate) struct Reject {
    pub(crate) refusal: Refusal,
    pub(crate) detail: String,
    pub(crate) retry_after: Option<Duration>,
    /// Whether the request body was read to its end (so the connection can be reused).
    pub(crate) body_consumed: bool,
}

impl Reject {
    pub(crate) fn new(refusal: Refusal, detail: impl Into<String>) -> Self {
        Self {
            refusal,
            detail: detail.into(),
            retry_after: None,
            body_consumed: true,
        }
    }
}

impl Gateway {
    /// Builds the service over a snapshot the caller may later swap (reload).
    pub fn new(
        config: &Config,
        snapshot: Arc<ArcSwap<Snapshot>>,
        auth: Arc<Authenticator>,
        meter: Arc<Meter>,
        metrics: Arc<Metrics>,
        audit: Option<Audit>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            snapshot,
            auth,
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
            portal: Portal::new(&config.portal),
            strangers: Strangers::default(),
        }
    }

    /// The Web Portal's sessions, for the reloader to end those a reload invalidates.
    pub fn portal_sessions(&self) -> Arc<crate::portal::Sessions> {
        Arc::clone(&self.portal.sessions)
    }

    /// Everything before forwarding. `Ok(None)`: forward; `Ok(Some(reject))`: answer it.
    async fn admit(&self, session: &mut Session, ctx: &mut GatewayCtx) -> Result<Option<Reject>> {
        let Some(peer) = ctx.peer else {
            return Ok(Some(Reject::new(
                Refusal::IpNotRegistered,
                "koneksi tanpa alamat IP",
            )));
        };
        let req = session.req_header();
        let Some(action) = route(req.uri.path()) else {
            return Ok(Some(Reject {
                body_consumed: false,
                ..Reject::new(Refusal::UnknownService, "")
            }));
        };
        ctx.action = Some(action);
        if req.method != http::Method::POST {
            return Ok(Some(Reject {
                body_consumed: false,
                ..Reject::new(Refusal::MethodNotAllowed, "gunakan POST")
            }));
        }
        // Card-reader requests (any `X-SAM-*` header) are validated by the SAM sidecar once
        // authenticated; without a sidecar they are refused, never treated as web-service
        // calls (fail closed, art. 24–25).
        let reader = match crate::sam::reader_request(req, self.sam.is_some()) {
            Ok(r) => r,
            Err((refusal, detail)) => {
                return Ok(Some(Reject {
                    body_consumed: false,
                    ..Reject::new(refusal, detail)
                }));
            }
        };
        let body = match self.read_body(session).await? {
            Ok(b) => b,
            Err(reject) => return Ok(Some(reject)),
        };
        let snap = self.snapshot.load_full();
        let parsed = match RequestBody::parse(&body) {
            Ok(p) => p,
            Err(e) => return Ok(Some(Reject::new(body_refusal(&e), body_reason(&e)))),
        };
        if let Some(key) = unknown_key(&parsed, action, snap.vocabulary()) {
            return Ok(Some(Reject::new(
                Refusal::UnknownParameter,
                format!(
                    "parameter \"{}\" tidak dikenal untuk layanan ini",
                    shown_key(key)
                ),
            )));
        }
        let text = |key: &str| {
            parsed.text(key).map_err(|e| {
                let why = format!("\"{}\" harus berupa teks atau angka", e.key);
                Reject::new(Refusal::IncompleteParameters, why)
            })
        };
        let (user_id, password, ip_user, nik) = match (
            text("user_id"),
            text("password"),
            text("ip_user"),
            text("nik"),
        ) {
            (Ok(u), Ok(p), Ok(i), Ok(n)) => (u.unwrap_or_default(), p.unwrap_or_default(), i, n),
            (Err(r), ..) | (_, Err(r), ..) | (_, _, Err(r), _) | (.., Err(r)) => {
                return Ok(Some(r));
            }
        };
        if user_id.is_empty() || password.is_empty() {
            return Ok(Some(Reject::new(
                Refusal::EmptyCredentials,
                "user_id dan password wajib diisi",
            )));
        }
        // Nothing the client sent is kept (recorded, logged, used as a key) before its shape
        // is known: a User ID is short ASCII, as the PKS loader requires.
        if !is_user_id(&user_id) {
            return Ok(Some(Reject::new(Refusal::UserIdFormat, user_id_reason())));
        }
        ctx.user_id = Some(user_id.clone());
        // The NIK is checked before anything reaches the DWH: a malformed one costs no hit.
        // A search may name one too; it is checked the same way.
        if matches!(action, Action::CallNik | Action::VerifyByElement) && nik.is_none() {
            return Ok(Some(Reject::new(
                Refusal::IncompleteParameters,
                "parameter nik wajib diisi",
            )));
        }
        if let Some(nik) = &nik {
            match Nik::parse(nik) {
                Ok(parsed) => ctx.nik = Some(parsed),
                Err(e) => return Ok(Some(Reject::new(Refusal::NikFormat, nik_reason(&e)))),
            }
            ctx.nik_digest = self.audit.as_ref().map(|a| a.key.nik_digest(nik));
        }
        // A body `ip_user` grants nothing; one that is not the real peer is refused.
        if let Some(claimed) = ip_user.filter(|s| !s.is_empty()) {
            match claimed.parse::<IpAddr>() {
                Ok(ip) if canonical_ip(ip) == peer => {}
                Ok(_) => {
                    return Ok(Some(Reject::new(
                        Refusal::IpMismatch,
                        "ip_user tidak sama dengan alamat asal koneksi",
                    )));
                }
                Err(_) => {
                    return Ok(Some(Reject::new(
                        Refusal::InvalidIp,
                        "ip_user bukan alamat IP",
                    )));
                }
            }
        }
        // What the DWH will be sent, rebuilt from the checked values; refused here, before
        // any password work, if a value is unusable.
        let checked = Checked {
            user_id: &user_id,
            password: &password,
            nik: nik.as_deref(),
            peer,
        };
        let upstream = match upstream_body(&parsed, action, snap.vocabulary(), &checked) {
            Ok(b) => b,
            Err((refusal, why)) => return Ok(Some(Reject::new(refusal, why))),
        };

        let user = match self.authenticate(&snap, &user_id, &password, peer).await {
            Ok(u) => u,
            Err(reject) => return Ok(Some(reject)),
        };
        let pks = snap.pks(user);
        ctx.pks = Some(pks.nomor.clone());
        ctx.pengguna = Some(pks.pengguna.clone());
        let (channel, sam_valid) = match (reader, &self.sam) {
            (Some(reader), Some(client)) => {
                let asked = Instant::now();
                let checked =
                    crate::sam::check(client, &snap, reader, &body, &user_id, action).await;
                self.metrics
                    .sam_duration
                    .observe(asked.elapsed().as_secs_f64());
                match checked {
                    Ok(()) => {
                        self.metrics
                            .sam_validations
                            .with_label_values(&["valid"])
                            .inc();
                        (Channel::CardReader, true)
                    }
                    Err((refusal, detail)) => {
                        // The sidecar not answering is one result for the alert; every
                        // verdict it gives is its own.
                        let result = match refusal {
                            Refusal::CardReader(
                                SamReason::SidecarTimeout | SamReason::SidecarUnavailable,
                            ) => "unavailable",
                            Refusal::CardReader(reason) => reason.code(),
                            _ => "unavailable",
                        };
                        self.metrics
                            .sam_validations
                            .with_label_values(&[result])
                            .inc();
                        ctx.channel = Channel::CardReader;
                        return Ok(Some(Reject::new(refusal, detail)));
                    }
                }
            }
            (Some(_), None) => return Ok(Some(Reject::new(Refusal::CardReaderUnavailable, ""))),
            (None, _) => (Channel::WebService, false),
        };
        let decision = match self.decide(ctx, &snap, user, action, channel, peer, sam_valid) {
            Ok(d) => d,
            Err(reject) => return Ok(Some(reject)),
        };
        if let Err(reject) = self.meter_hit(ctx, &snap, user).await {
            return Ok(Some(reject));
        }
        ctx.upstream_body = upstream;
        ctx.decision = Some(decision);
        ctx.snapshot = Some(snap);
        Ok(None)
    }

    /// Asks the policy whether an authenticated User ID may do `action` over `channel`,
    /// recording the PKS and the User ID's quota use in the context. Shared by the web
    /// service and the portal.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn decide(
        &self,
        ctx: &mut GatewayCtx,
        snap: &Arc<Snapshot>,
        user: gerbang_policy::UserRef,
        action: Action,
        channel: Channel,
        peer: IpAddr,
        sam_valid: bool,
    ) -> std::result::Result<Arc<Decision>, Reject> {
        let pks = snap.pks(user);
        ctx.pks = Some(pks.nomor.clone());
        ctx.pengguna = Some(pks.pengguna.clone());
        ctx.channel = channel;
        let day = self.clock.today();
        let decided = Instant::now();
        let request = Request {
            user,
            action,
            channel,
            day,
            peer,
            sam_valid,
        };
        let (decision, warm) = authorize_traced(snap, &request);
        self.metrics
            .decision_duration
            .with_label_values(&[if warm { "warm" } else { "cold" }])
            .observe(decided.elapsed().as_secs_f64());
        let user_id = snap.user(user).id.clone();
        if let Some(shadow) = snap.shadow() {
            self.compare_shadow(shadow, &request, &decision, &user_id);
        }
        let limit = snap.user(user).kuota_harian.get();
        let pengguna = snap.pengguna_cap(&snap.pks(user).pengguna).map(|cap| {
            let key = pengguna_key(&snap.pks(user).pengguna);
            let used = self.meter.used(&key, day);
            (
                key,
                Usage {
                    used,
                    limit: cap.get(),
                },
            )
        });
        ctx.quota = Some(QuotaCtx {
            usage: Usage {
                used: self.meter.used(&user_id, day),
                limit,
            },
            pengguna,
            user: user_id,
            day,
            reserved: false,
        });
        if let Some(refusal) = decision.refusal {
            let reject = Reject::new(refusal, decision.reason.clone());
            ctx.decision = Some(decision);
            return Err(reject);
        }
        Ok(decision)
    }

    /// Meters one NIK hit: the burst limits, then a hit reserved from the daily quota
    /// (committed in `logging`, refunded if the DWH fails). Shared by the web service and
    /// the portal's search.
    pub(crate) async fn meter_hit(
        &self,
        ctx: &mut GatewayCtx,
        snap: &Snapshot,
        user: gerbang_policy::UserRef,
    ) -> std::result::Result<(), Reject> {
        let user_id = snap.user(user).id.as_str();
        let pengguna = snap.pks(user).pengguna.as_str();
        let limit = snap.user(user).kuota_harian.get();
        let day = self.clock.today();
        if let Err(e) = self.burst.check(user_id, pengguna) {
            let scope = match e.scope {
                gerbang_quota::BurstScope::User => "User ID ini",
                gerbang_quota::BurstScope::Pengguna => "lembaga ini",
            };
            return Err(Reject {
                retry_after: Some(e.retry_after),
                ..Reject::new(
                    Refusal::RateLimited,
                    format!("batas permintaan per detik untuk {scope} terlampaui"),
                )
            });
        }
        self.prune_on_new_day(day);
        let usage = match self.meter.reserve(user_id, day, limit).await {
            Ok(usage) => usage,
            Err(e) => {
                if let QuotaError::Exhausted { used, limit } = e {
                    ctx.quota = Some(QuotaCtx {
                        user: user_id.to_string(),
                        day,
                        usage: Usage { used, limit },
                        pengguna: None,
                        reserved: false,
                    });
                }
                return Err(
                    self.quota_refusal(e, |limit| format!("kuota {limit} hit NIK per hari"))
                );
            }
        };
        let Some(cap) = snap.pengguna_cap(pengguna) else {
            ctx.quota = Some(QuotaCtx {
                user: user_id.to_string(),
                day,
                usage,
                pengguna: None,
                reserved: true,
            });
            return Ok(());
        };
        // The User ID has its hit; its Pengguna must have one too, or the hit goes back.
        let key = pengguna_key(pengguna);
        match self.meter.reserve(&key, day, cap.get()).await {
            Ok(used) => {
                ctx.quota = Some(QuotaCtx {
                    user: user_id.to_string(),
                    day,
                    usage,
                    pengguna: Some((key, used)),
                    reserved: true,
                });
                Ok(())
            }
            Err(e) => {
                self.meter.refund(user_id, day);
                let pengguna_usage = match e {
                    QuotaError::Exhausted { used, limit } => Usage { used, limit },
                    QuotaError::Unavailable(_) => Usage {
                        used: self.meter.used(&key, day),
                        limit: cap.get(),
                    },
                };
                ctx.quota = Some(QuotaCtx {
                    user: user_id.to_string(),
                    day,
                    usage: Usage {
                        used: usage.used.saturating_sub(1),
                        ..usage
                    },
                    pengguna: Some((key, pengguna_usage)),
                    reserved: false,
                });
                Err(self.quota_refusal(e, |limit| {
                    format!("kuota harian lembaga ini ({limit} hit NIK untuk semua User ID-nya)")
                }))
            }
        }
    }

    /// The refusal of a hit the meter did not reserve; `quota` names the used-up quota
    /// from its limit.
    fn quota_refusal(&self, e: QuotaError, quota: impl FnOnce(u32) -> String) -> Reject {
        match e {
            QuotaError::Exhausted { limit, .. } => Reject {
                retry_after: Some(until_next_wib_midnight(self.clock.now())),
                ..Reject::new(
                    Refusal::QuotaExhausted,
                    format!(
                        "{} telah terpakai; berlaku lagi pukul 00.00 WIB",
                        quota(limit)
                    ),
                )
            },
            QuotaError::Unavailable(why) => {
                // The meter logs each change of the store's health once; per request, debug only.
                tracing::debug!(error = why.as_str(), "quota store unavailable; refusing");
                Reject::new(Refusal::QuotaUnavailable, "")
            }
        }
    }

    /// Reads the whole body, refusing it past the configured size or when it has not all
    /// arrived within `listen.request_body_timeout_ms` (a deadline for the whole body, not
    /// for each read: a body trickled a byte at a time meets it too). A malformed chunked
    /// body is refused as bad framing; a client that hung up is an error, answered to no
    /// one. The retry buffer is enabled first so pingora replays the body through
    /// `request_body_filter`, where the rewritten body replaces it.
    pub(crate) async fn read_body(
        &self,
        session: &mut Session,
    ) -> Result<std::result::Result<Bytes, Reject>> {
        let too_large = || Reject {
            body_consumed: false,
            ..Reject::new(
                Refusal::BodyTooLarge,
                format!("badan permintaan melebihi {} byte", self.max_body_bytes),
            )
        };
        let declared = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            return Ok(Err(too_large()));
        }
        session.as_downstream_mut().enable_retry_buffering();
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(512).min(self.max_body_bytes));
        let read = async {
            while let Some(chunk) = session.read_request_body().await? {
                if buf.len() + chunk.len() > self.max_body_bytes {
                    return Ok(false);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok::<_, Box<Error>>(true)
        };
        let unread = |refusal, detail: String| {
            Ok(Err(Reject {
                body_consumed: false,
                ..Reject::new(refusal, detail)
            }))
        };
        let slow = || {
            format!(
                "badan permintaan tidak terkirim utuh dalam {} ms",
                self.body_timeout.as_millis()
            )
        };
        match tokio::time::timeout(self.body_timeout, read).await {
            Ok(Ok(true)) => Ok(Ok(buf.freeze())),
            Ok(Ok(false)) => Ok(Err(too_large())),
            Err(_) => unread(Refusal::BodyTimeout, slow()),
            Ok(Err(e)) => match e.etype() {
                ErrorType::ReadTimedout => unread(Refusal::BodyTimeout, slow()),
                // The chunked decoder's own errors (a malformed chunk size or trailer).
                ErrorType::Custom(_) | ErrorType::InvalidHTTPHeader => unread(
                    Refusal::BadFraming,
                    "badan permintaan chunked tidak sah".to_string(),
                ),
                // The client hung up: nothing to answer, and not the DWH's doing.
                _ => Err(e.into_down()),
            },
        }
    }

    pub(crate) async fn authenticate(
        &self,
        snap: &Arc<Snapshot>,
        user_id: &str,
        password: &str,
        peer: IpAddr,
    ) -> std::result::Result<gerbang_policy::UserRef, Reject> {
        let creds = Credentials {
            user_id,
            password,
            peer,
        };
        let to_reject = |f: gerbang_policy::AuthFailure| Reject {
            retry_after: f.retry_after,
            ..Reject::new(f.refusal, f.detail)
        };
        match self.auth.precheck(snap, creds).map_err(to_reject)? {
            Precheck::Done(user) => Ok(user),
            Precheck::NeedsArgon2(_) => {
                let Ok(_slot) = self.argon2_slots.acquire().await else {
                    return Err(Reject::new(Refusal::LoginFailed, ""));
                };
                // While this request waited, another may have verified the same credentials.
                let slow = match self.auth.precheck(snap, creds).map_err(to_reject)? {
                    Precheck::Done(user) => return Ok(user),
                    Precheck::NeedsArgon2(slow) => slow,
                };
                // argon2 takes tens of milliseconds of CPU: keep it off the proxy's threads,
                // and below their priority, so a login storm cannot delay lookups.
                let (auth, snap) = (Arc::clone(&self.auth), Arc::clone(snap));
                let (user_id, password) = (user_id.to_string(), password.to_string());
                let joined = self
                    .passwords
                    .run(move || {
                        auth.verify_slow(
                            &snap,
                            Credentials {
                                user_id: &user_id,
                                password: &password,
                                peer,
                            },
                            slow,
                        )
                    })
                    .await;
                match joined {
                    Ok(result) => result.map_err(to_reject),
                    Err(e) => {
                        tracing::error!(error = %e, "password not checked; login refused");
                        Err(Reject::new(Refusal::LoginFailed, ""))
                    }
                }
            }
        }
    }

    /// Gives back the reserved hit of a lookup the DWH did not answer. Called where the
    /// failure is known, before the answer is sent, so the client's next request already
    /// sees it; `reserved` makes it happen once.
    fn refund_once(&self, ctx: &mut GatewayCtx) {
        if let Some(q) = ctx.quota.as_mut().filter(|q| q.reserved) {
            self.meter.refund(&q.user, q.day);
            q.usage.used = q.usage.used.saturating_sub(1);
            if let Some((key, p)) = q.pengguna.as_mut() {
                self.meter.refund(key, q.day);
                p.used = p.used.saturating_sub(1);
            }
            q.reserved = false;
        }
    }

    /// Drops the counters of past days the first time a new WIB day is seen.
    fn prune_on_new_day(&self, day: NaiveDate) {
        let Ok(mut last) = self.last_day.lock() else {
            return;
        };
        if last.is_some_and(|d| d >= day) {
            return;
        }
        if last.is_some() {
            self.meter.prune_before(day);
            self.burst.retain_recent();
        }
        *last = Some(day);
    }

    /// Writes a refusal in the DWH envelope.
    async fn answer(
        &self,
        session: &mut Session,
        reject: &Reject,
        quota: Option<Usage>,
    ) -> Result<()> {
        let body = Bytes::from(
            reject
                .refusal
                .body_with_quota(&reject.detail, quota.map(Usage::remaining)),
        );
        let mut resp = self.answer_header(reject.refusal.status(self.status_mode), quota)?;
        resp.set_content_length(body.len())?;
        if let (Some(wait), StatusMode::Rest) = (reject.retry_after, self.status_mode) {
            resp.insert_header(http::header::RETRY_AFTER, wait.as_secs().max(1).to_string())?;
        }
        if !reject.body_consumed {
            // Unread body bytes would be taken for the next request: close instead.
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await
    }

    pub(crate) fn answer_header(
        &self,
        status: u16,
        quota: Option<Usage>,
    ) -> Result<ResponseHeader> {
        let mut resp = ResponseHeader::build(status, Some(6))?;
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        // PKS: the gateway stores no population data, and neither may anything on the way.
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        resp.insert_header("X-Content-Type-Options", "nosniff")?;
        if let Some(q) = quota {
            resp.insert_header("X-Quota-Limit", q.limit.to_string())?;
            resp.insert_header("X-Quota-Remaining", q.remaining().to_string())?;
        }
        Ok(resp)
    }

    /// Turns the DWH's answer into what the Pengguna may see.
    fn finish_answer(&self, ctx: &mut GatewayCtx, answer: &DwhAnswer) -> Bytes {
        let refuse = |ctx: &mut GatewayCtx, refusal: Refusal, detail: &str| {
            ctx.refusal = Some(refusal);
            self.refund_once(ctx);
            let remaining = ctx.quota.as_ref().map(|q| q.shown().remaining());
            Bytes::from(refusal.body_with_quota(detail, remaining))
        };
        if answer.status != 200 {
            return refuse(
                ctx,
                Refusal::UpstreamUnavailable,
                &format!("DWH menjawab HTTP {}", answer.status),
            );
        }
        if answer.too_large {
            return refuse(ctx, Refusal::UpstreamInvalid, "jawaban DWH terlalu besar");
        }
        let (Some(snap), Some(decision)) = (&ctx.snapshot, &ctx.decision) else {
            return refuse(ctx, Refusal::UpstreamInvalid, "");
        };
        // A lookup of one NIK (the API's or the portal's) must be answered about that NIK.
        let filtered = match (ctx.action, &ctx.nik) {
            (Some(Action::CallNik | Action::PortalRead), Some(nik)) => {
                filter_lookup_answer(&answer.body, snap.vocabulary(), decision.elements, nik)
            }
            _ => filter_answer(
                &answer.body,
                snap.vocabulary(),
                decision.elements,
                decision.shape,
            ),
        };
        match filtered {
            Ok(f) => {
                ctx.released = f.released;
                ctx.records = f.records;
                let mut body = f.body;
                if let Some(q) = &ctx.quota {
                    append_quota_limiter(&mut body, q.shown().remaining());
                }
                Bytes::from(body)
            }
            Err(e) => {
                tracing::warn!(error = %e, "DWH answer could not be filtered; nothing of it was passed on");
                // Values where only verdicts were asked for (art. 29(4)), or someone else's
                // record: counted apart so Ditjen sees the DWH misbehaving.
                ctx.upstream_error = match e {
                    FilterError::NotVerdict(_) => Some("not_verdicts"),
                    FilterError::OtherNik => Some("other_nik"),
                    _ => None,
                };
                refuse(ctx, Refusal::UpstreamInvalid, "")
            }
        }
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
            let reject = Reject {
                body_consumed: false,
                ..Reject::new(Refusal::BadFraming, detail)
            };
            ctx.refusal = Some(reject.refusal);
            self.answer(session, &reject, None).await?;
            return Ok(true);
        }
        if is_portal(session.req_header().uri.path()) {
            return self.portal_request(session, ctx).await;
        }
        match self.admit(session, ctx).await? {
            None => {
                self.forward(session, ctx).await?;
                Ok(true)
            }
            Some(reject) => {
                ctx.refusal = Some(reject.refusal);
                self.answer(session, &reject, ctx.quota.as_ref().map(QuotaCtx::shown))
                    .await?;
                Ok(true)
            }
        }
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
        let reject = Reject {
            body_consumed: false,
            ..Reject::new(refusal, "")
        };
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
        self.record_metrics(ctx);
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

impl Gateway {
    /// Says who a request was from, for its record, its log line and its metrics, before
    /// they are written; `false`: it is not to be recorded or logged (counted only).
    ///
    /// A request from an address in no registered IP LAN keeps nothing the client chose
    /// (no User ID, no NIK digest), and only the first per address and minute is recorded
    /// (`Strangers`): any host on the closed network could otherwise fill the disk. One
    /// naming an existing User ID from inside that User ID's IP LAN is its Pengguna's,
    /// whatever refused it (a wrong password, a malformed NIK), so the Pengguna's report
    /// shows it; `(unidentified)` is left for unknown addresses and User IDs.
    fn attribute(&self, ctx: &mut GatewayCtx, snap: &Snapshot) -> bool {
        let registered = ctx.peer.and_then(|p| snap.user_by_ip(p).map(|u| (p, u)));
        let Some((peer, _)) = registered else {
            ctx.user_id = None;
            ctx.nik_digest = None;
            let peer = ctx.peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            let (recorded, ended) = self.strangers.admit(peer, self.clock.now());
            if let Some(minute) = ended {
                tracing::warn!(
                    target: "gerbang::request",
                    unrecorded = minute.requests,
                    addresses = minute.addresses,
                    "requests from addresses in no registered IP LAN were refused; only the first per address and minute was recorded (all are counted in gerbang_unregistered_requests_total)"
                );
            }
            self.metrics
                .unregistered
                .with_label_values(&[if recorded { "true" } else { "false" }])
                .inc();
            if !recorded {
                self.record_metrics(ctx);
            }
            return recorded;
        };
        if ctx.pengguna.is_none()
            && let Some(user) = ctx.user_id.as_deref().and_then(|id| snap.user_by_id(id))
            && snap.user(user).ip_registered(peer)
        {
            let pks = snap.pks(user);
            ctx.pks = Some(pks.nomor.clone());
            ctx.pengguna = Some(pks.pengguna.clone());
        }
        true
    }

    /// Sends the DWH only what it needs: the path rebuilt from the route and the Pengguna
    /// (never the client's), the rebuilt body, and the real peer. Client headers (including
    /// any `X-Forwarded-For`) are not passed on.
    fn upstream_request(&self, session: &Session, ctx: &GatewayCtx) -> Result<RequestHeader> {
        let mut req = match ctx.portal {
            // The portal: the page's method, the upstream prefix, no query, and the User
            // ID the gateway authenticated (a client's own copy is never forwarded).
            Some(portal) => {
                let method = if portal.route == PortalRoute::Search {
                    http::Method::POST
                } else {
                    http::Method::GET
                };
                let path = self.portal.upstream_path(session.req_header().uri.path());
                let mut req = RequestHeader::build(method, path.as_bytes(), Some(6))?;
                if let Some(user) = &ctx.user_id {
                    req.insert_header(crate::portal::IDENTITY_HEADER, user.as_str())?;
                }
                req
            }
            None => {
                let path = ctx
                    .action
                    .zip(ctx.pengguna.as_deref())
                    .and_then(|(action, pengguna)| upstream_path(action, pengguna))
                    .ok_or_else(|| {
                        Error::explain(ErrorType::InternalError, "a lookup without its route")
                    })?;
                RequestHeader::build(http::Method::POST, path.as_bytes(), Some(5))?
            }
        };
        req.insert_header(http::header::HOST, self.upstream.host.as_str())?;
        req.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        req.insert_header(
            http::header::CONTENT_LENGTH,
            ctx.upstream_body.len().to_string(),
        )?;
        if let Some(peer) = ctx.peer {
            req.insert_header("X-Forwarded-For", peer.to_string())?;
        }
        Ok(req)
    }

    /// Forwards an admitted lookup (or portal search) to the DWH and answers the client:
    /// the answer filtered to what the agreement allows, its record written first when it
    /// carries population data, then sent whole with its length.
    pub(crate) async fn forward(&self, session: &mut Session, ctx: &mut GatewayCtx) -> Result<()> {
        let req = self.upstream_request(session, ctx)?;
        let started = Instant::now();
        ctx.upstream_started = Some(started);
        let exchanged = self
            .upstream
            .exchange(&req, &ctx.upstream_body, MAX_ANSWER_BYTES)
            .await;
        ctx.upstream_elapsed = Some(started.elapsed());
        let answer = match exchanged {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, "DWH exchange failed");
                let refusal = upstream_refusal(&e);
                ctx.refusal = Some(refusal);
                self.refund_once(ctx);
                if ctx.portal.is_some() {
                    return self.portal_upstream_failed(session, ctx, refusal).await;
                }
                let quota = ctx.quota.as_ref().map(QuotaCtx::shown);
                return self.answer(session, &Reject::new(refusal, ""), quota).await;
            }
        };
        ctx.upstream_status = Some(answer.status);
        let mut body = self.finish_answer(ctx, &answer);
        if ctx.refusal.is_none() && ctx.records > 0 {
            body = self.audit_release(ctx, body).await;
        }
        let portal = ctx.portal.is_some();
        let status = match ctx.refusal {
            None => 200,
            Some(r) if portal => r.rest_status(),
            Some(r) => r.status(self.status_mode),
        };
        let mut resp = self.answer_header(status, ctx.quota.as_ref().map(QuotaCtx::shown))?;
        if portal {
            crate::portal::secure(&mut resp)?;
        }
        resp.set_content_length(body.len())?;
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await
    }

    /// Writes the record of an answer carrying population data before it is released
    /// (docs/architecture.md, "Targets"). If the log cannot be written, the data is withheld (unless configured
    /// otherwise) and the hit refunded: the Pengguna received nothing.
    async fn audit_release(&self, ctx: &mut GatewayCtx, answer: Bytes) -> Bytes {
        let Some(audit) = &self.audit else {
            return answer;
        };
        ctx.audited = true;
        let record = self.audit_record(audit, ctx);
        let started = Instant::now();
        let written = audit.log.append_async(&record).await;
        self.metrics
            .audit_write_duration
            .observe(started.elapsed().as_secs_f64());
        match written {
            Ok(_) => answer,
            Err(e) if audit.refuse_on_failure => {
                tracing::error!(error = %e, "decision log not written; the answer's data is withheld");
                ctx.refusal = Some(Refusal::AuditUnavailable);
                ctx.released = ElementSet::EMPTY;
                ctx.records = 0;
                self.refund_once(ctx);
                let remaining = ctx.quota.as_ref().map(|q| q.shown().remaining());
                // Recorded as refused, without waiting: the log may be failing.
                let refused = self.audit_record(audit, ctx);
                let _ = audit.log.append_nowait(&refused);
                Bytes::from(Refusal::AuditUnavailable.body_with_quota("", remaining))
            }
            Err(e) => {
                tracing::error!(error = %e, "decision log not written; answer released (audit.refuse_on_failure = false)");
                answer
            }
        }
    }

    /// Records a request that released no population data, off the answer's path.
    fn audit_nowait(&self, ctx: &GatewayCtx) {
        if let Some(audit) = &self.audit {
            let record = self.audit_record(audit, ctx);
            if let Err(e) = audit.log.append_nowait(&record) {
                tracing::debug!(error = %e, "decision log record not queued");
            }
        }
    }

    fn audit_record(&self, audit: &Audit, ctx: &GatewayCtx) -> gerbang_audit::Record {
        let snap = ctx
            .snapshot
            .clone()
            .unwrap_or_else(|| self.snapshot.load_full());
        let allowed = ctx.refusal.is_none() && ctx.decision.as_ref().is_some_and(|d| d.allowed());
        gerbang_audit::Record {
            time: self.clock.now(),
            instance: audit.instance.clone(),
            request_id: format!("{}-{}", audit.instance, ctx.request_id),
            user_id: ctx.user_id.clone(),
            pengguna: ctx.pengguna.clone(),
            pks: ctx.pks.clone(),
            peer_ip: ctx.peer.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            channel: Some(ctx.channel.as_str().to_string()),
            action: ctx.action.map(|a| a.as_str().to_string()),
            decision: if allowed {
                gerbang_audit::Decision::Allow
            } else {
                gerbang_audit::Decision::Deny
            },
            reason: ctx.refusal.map(|r| r.name().to_string()),
            policy_ids: ctx
                .decision
                .as_ref()
                .map(|d| d.policies.clone())
                .unwrap_or_default(),
            policy_hash: snap.engine().hash().to_string(),
            nik_digest: ctx.nik_digest.clone(),
            elements: snap
                .vocabulary()
                .names(ctx.released)
                .into_iter()
                .map(str::to_string)
                .collect(),
            upstream_status: ctx.upstream_status,
            latency_us: u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            quota_used: ctx.quota.as_ref().map(|q| q.usage.used),
            quota_limit: ctx.quota.as_ref().map(|q| q.usage.limit),
        }
    }

    fn next_request_id(&self) -> u64 {
        self.request_ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Shadow mode: decides the request with the candidate policies too and counts (and, the
    /// first time per User ID, action and day, logs) any difference. Never enforced.
    fn compare_shadow(&self, shadow: &Snapshot, req: &Request, active: &Decision, user_id: &str) {
        let (candidate, warm) = authorize_traced(shadow, req);
        let same = candidate.refusal == active.refusal && candidate.elements == active.elements;
        if same {
            return;
        }
        let name = |d: &Decision| d.refusal.map_or("allow", Refusal::name);
        self.metrics
            .shadow_disagreements
            .with_label_values(&[name(active), name(&candidate)])
            .inc();
        if !warm {
            let vocab = shadow.vocabulary();
            tracing::warn!(
                user.id = user_id,
                action = req.action.as_str(),
                active.decision = name(active),
                active.rule = active.rule.as_str(),
                shadow.decision = name(&candidate),
                shadow.rule = candidate.rule.as_str(),
                active.elements = vocab.names(active.elements).join(",").as_str(),
                shadow.elements = vocab.names(candidate.elements).join(",").as_str(),
                "shadow policies disagree (not enforced)"
            );
        }
    }

    /// Counts the request once, when it is logged.
    fn record_metrics(&self, ctx: &GatewayCtx) {
        let m = &self.metrics;
        let allowed = ctx.refusal.is_none() && ctx.decision.as_ref().is_some_and(|d| d.allowed());
        let reason = match ctx.refusal {
            Some(r) => r.name(),
            None if allowed => "ok",
            None => "none",
        };
        m.requests
            .with_label_values(&[
                ctx.pengguna.as_deref().unwrap_or("unknown"),
                ctx.channel.as_str(),
                ctx.action.map_or("none", Action::as_str),
                if allowed { "allow" } else { "deny" },
                reason,
            ])
            .inc();
        m.request_duration
            .with_label_values(&[ctx.channel.as_str()])
            .observe(ctx.started.elapsed().as_secs_f64());
        if let Some(t) = ctx.upstream_elapsed {
            m.upstream_duration.observe(t.as_secs_f64());
        }
        let upstream_error = match ctx.refusal {
            Some(Refusal::UpstreamTimeout) => Some("timeout"),
            Some(Refusal::UpstreamInvalid) => Some(ctx.upstream_error.unwrap_or("invalid")),
            Some(Refusal::UpstreamUnavailable) => Some(match ctx.upstream_status {
                Some(s) if s != 200 => "status",
                _ => "unavailable",
            }),
            _ => None,
        };
        if let Some(kind) = upstream_error {
            m.upstream_errors.with_label_values(&[kind]).inc();
        }
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

/// The refusal for a failed exchange with the DWH.
fn upstream_refusal(e: &Error) -> Refusal {
    match (e.esource(), e.etype()) {
        (
            ErrorSource::Upstream,
            ErrorType::ConnectTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
            | ErrorType::TLSHandshakeTimedout,
        ) => Refusal::UpstreamTimeout,
        _ => Refusal::UpstreamUnavailable,
    }
}

/// The refusal of a body that does not parse: a key that is not printable ASCII names no
/// parameter (27); anything else is a malformed request (07).
fn body_refusal(e: &BodyError) -> Refusal {
    match e {
        BodyError::NonAsciiKey => Refusal::UnknownParameter,
        BodyError::NotJson(_) | BodyError::DuplicateKey(_) => Refusal::IncompleteParameters,
    }
}

/// Why a body was refused, in Indonesian for the Pengguna's operator.
fn body_reason(e: &BodyError) -> String {
    match e {
        BodyError::NotJson(_) => "badan permintaan bukan objek JSON yang sah".into(),
        BodyError::DuplicateKey(k) => format!(
            "kunci \"{}\" muncul lebih dari sekali (huruf besar/kecil tidak dibedakan)",
            shown_key(k)
        ),
        BodyError::NonAsciiKey => {
            "nama parameter hanya boleh berisi huruf, angka dan tanda baca ASCII".into()
        }
    }
}

/// A client's key as quoted back in a refusal: at most 64 characters of it.
fn shown_key(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_string(),
    }
}

/// Why a `user_id` cannot be a User ID, in Indonesian.
pub(crate) fn user_id_reason() -> String {
    format!(
        "user_id harus 1 sampai {USER_ID_MAX_LEN} karakter ASCII: huruf, angka, `_`, `.` atau `-`"
    )
}

/// Which NIK rule failed, in Indonesian.
pub(crate) fn nik_reason(e: &NikError) -> String {
    match e {
        NikError::Length(n) => format!("NIK harus 16 digit, diterima {n} karakter"),
        NikError::NotDigits => "NIK hanya boleh berisi angka 0-9".into(),
        NikError::Province(p) => format!("kode provinsi {p:02} tidak ada"),
        NikError::Regency => "kode kabupaten/kota 00 tidak ada".into(),
        NikError::District => "kode kecamatan 00 tidak ada".into(),
        NikError::Date(d) => format!(
            "bagian tanggal lahir {d} bukan tanggal yang sah (hari 01-31, atau 41-71 untuk perempuan)"
        ),
        NikError::Serial => "nomor urut 0000 tidak diterbitkan".into(),
    }
}

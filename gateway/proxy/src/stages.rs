//! The web service's request path before forwarding, as the stages of `docs/gateway.md`
//! "The request path": identify (step 1), route (2–4), read body (5–9a), authenticate
//! (10–13), card reader (13a), decide (14) and meter (15–16). `Gateway::admit` runs them
//! in that order; each stage either hands the next one its result or stops the request
//! ([`Stop`]). Forwarding, filtering and recording follow in `forward.rs` and `record.rs`.
//!
//! A stage sets in the request's context only what the decision log, the request's log
//! line and the metrics must know if a later stage refuses (the User ID once its shape is
//! known, the NIK once checked, the PKS once authenticated), at the point the single
//! function this replaced set it: which fields a refusal is recorded with is behaviour.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::NaiveDate;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use gerbang_core::{
    BodyError, Channel, Nik, NikError, Refusal, Rejection, RequestBody, USER_ID_MAX_LEN,
    canonical_ip, is_user_id,
};
use gerbang_policy::{
    Action, Credentials, Decision, Precheck, Request, SlowCheck, Snapshot, UserRef,
    authorize_traced, locked_out,
};
use gerbang_quota::{BurstScope, QuotaError, Usage, until_next_wib_midnight};

use crate::forward::{Checked, unknown_key, upstream_body};
use crate::gateway::{Gateway, GatewayCtx, QuotaCtx};
use crate::route::route as route_path;
use crate::sam::ReaderRequest;

/// Why a request does not go on to the next stage.
pub(crate) enum Stop {
    /// Gerbang answers the refusal itself.
    Refuse(Rejection),
    /// The client's connection failed (it hung up): nothing to answer, pingora ends it.
    Fail(Box<Error>),
}

impl From<Rejection> for Stop {
    fn from(reject: Rejection) -> Self {
        Self::Refuse(reject)
    }
}

impl From<Box<Error>> for Stop {
    fn from(e: Box<Error>) -> Self {
        Self::Fail(e)
    }
}

/// What the body of a lookup says, checked up to step 7a.
struct Fields {
    parsed: RequestBody,
    user_id: String,
    password: String,
    ip_user: Option<String>,
    nik: Option<String>,
}

impl Gateway {
    /// Everything before forwarding: the stages in the order of `docs/gateway.md`. `Ok`:
    /// forward, with the rebuilt body, the decision and the snapshot in `ctx`.
    pub(crate) async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut GatewayCtx,
    ) -> std::result::Result<(), Stop> {
        let peer = identify(ctx.peer)?;
        let (action, reader) = route(session.req_header(), self.sam.is_some())?;
        ctx.action = Some(action);
        let body = self.read_body(session).await??;
        let snap = self.snapshot.load_full();
        let fields = body_fields(&body, action, &snap)?;
        ctx.user_id = Some(fields.user_id.clone());
        let nik = check_nik(action, fields.nik.as_deref())?;
        ctx.nik = nik;
        ctx.nik_digest = self
            .audit
            .as_ref()
            .zip(fields.nik.as_deref())
            .map(|(a, nik)| a.key.nik_digest(nik));
        check_ip_user(fields.ip_user.as_deref(), peer)?;
        let checked = Checked {
            user_id: &fields.user_id,
            password: &fields.password,
            nik: fields.nik.as_deref(),
            peer,
        };
        let upstream = upstream_body(&fields.parsed, action, snap.vocabulary(), &checked)?;

        let user = self
            .authenticate(&snap, &fields.user_id, &fields.password, peer)
            .await?;
        ctx.attribute_to(&snap, user);
        let (channel, sam_valid) = match reader {
            Some(reader) => {
                let sam = self.card_reader(ctx, &snap, reader, &body, &fields.user_id, action);
                (Channel::CardReader, sam.await?)
            }
            None => (Channel::WebService, false),
        };
        check_client_cert(session, snap.user(user))?;
        let decision = self.authorize(ctx, &snap, user, action, channel, peer, sam_valid)?;
        self.meter_hit(ctx, &snap, user).await?;
        ctx.upstream_body = upstream;
        ctx.decision = Some(decision);
        ctx.snapshot = Some(snap);
        Ok(())
    }

    /// Step 13a: the SAM sidecar's verdict on a card-reader request, counted. `Ok(true)`:
    /// valid (`sam_valid` in the Cedar context).
    async fn card_reader(
        &self,
        ctx: &mut GatewayCtx,
        snap: &Snapshot,
        reader: ReaderRequest,
        body: &[u8],
        user_id: &str,
        action: Action,
    ) -> std::result::Result<bool, Rejection> {
        let Some(client) = &self.sam else {
            return Err(Rejection::new(Refusal::CardReaderUnavailable, ""));
        };
        let asked = Instant::now();
        let checked = crate::sam::check(client, snap, reader, body, user_id, action).await;
        let m = &self.metrics;
        m.sam_duration.observe(asked.elapsed().as_secs_f64());
        m.sam_validations
            .with_label_values(&[crate::sam::outcome(&checked)])
            .inc();
        match checked {
            Ok(()) => Ok(true),
            Err(rejection) => {
                ctx.channel = Channel::CardReader;
                Err(rejection)
            }
        }
    }

    /// Step 14 and what is recorded with it: asks the policy whether an authenticated User
    /// ID may do `action` over `channel` (timed, and compared with the shadow policies
    /// when there are some), and reads the User ID's quota use for the answer, refused or
    /// not. Shared by the web service and the portal.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn authorize(
        &self,
        ctx: &mut GatewayCtx,
        snap: &Arc<Snapshot>,
        user: UserRef,
        action: Action,
        channel: Channel,
        peer: IpAddr,
        sam_valid: bool,
    ) -> std::result::Result<Arc<Decision>, Rejection> {
        ctx.attribute_to(snap, user);
        ctx.channel = channel;
        let request = Request {
            user,
            action,
            channel,
            day: self.clock.today(),
            peer,
            sam_valid,
        };
        let decided = Instant::now();
        let (decision, warm) = authorize_traced(snap, &request);
        self.metrics.observe_decision(decided, warm);
        let user_id = snap.user(user).id.as_str();
        if let Some(shadow) = snap.shadow() {
            self.compare_shadow(shadow, &request, &decision, user_id);
        }
        ctx.quota = Some(self.quota_in_use(snap, user, request.day));
        match decide(&decision) {
            Ok(()) => Ok(decision),
            Err(reject) => {
                ctx.decision = Some(decision);
                Err(reject)
            }
        }
    }

    /// The User ID's (and its Pengguna's) use of the day, before this request.
    fn quota_in_use(&self, snap: &Snapshot, user: UserRef, day: NaiveDate) -> QuotaCtx {
        let user_id = snap.user(user).id.clone();
        let pengguna = &snap.pks(user).pengguna;
        let pengguna = snap.pengguna_cap(pengguna).map(|cap| {
            let key = pengguna_key(pengguna);
            let used = self.meter.used(&key, day);
            let limit = cap.get();
            (key, Usage { used, limit })
        });
        QuotaCtx {
            usage: Usage {
                used: self.meter.used(&user_id, day),
                limit: snap.user(user).kuota_harian.get(),
            },
            pengguna,
            user: user_id,
            day,
            reserved: false,
        }
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

    /// Steps 15–16: meters one NIK hit: the burst limits, then a hit reserved from the daily
    /// quota (committed in `logging`, refunded if the DWH fails). Shared by the web service
    /// and the portal's search.
    pub(crate) async fn meter_hit(
        &self,
        ctx: &mut GatewayCtx,
        snap: &Snapshot,
        user: UserRef,
    ) -> std::result::Result<(), Rejection> {
        let user_id = snap.user(user).id.as_str();
        let pengguna = snap.pks(user).pengguna.as_str();
        self.burst_limits(user_id, pengguna)?;
        let day = self.clock.today();
        self.prune_on_new_day(day);
        let limit = snap.user(user).kuota_harian.get();
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
        let mut quota = QuotaCtx {
            user: user_id.to_string(),
            day,
            usage,
            pengguna: None,
            reserved: true,
        };
        let capped = self.reserve_pengguna(&mut quota, snap, pengguna).await;
        ctx.quota = Some(quota);
        capped
    }

    /// Step 15: requests per second of the User ID and of its Pengguna.
    pub(crate) fn burst_limits(
        &self,
        user_id: &str,
        pengguna: &str,
    ) -> std::result::Result<(), Rejection> {
        let Err(e) = self.burst.check(user_id, pengguna) else {
            return Ok(());
        };
        let scope = match e.scope {
            BurstScope::User => "User ID ini",
            BurstScope::Pengguna => "lembaga ini",
        };
        let detail = format!("batas permintaan per detik untuk {scope} terlampaui");
        Err(Rejection::new(Refusal::RateLimited, detail).retry_after(e.retry_after))
    }

    /// Step 16's second half: with a daily cap on the Pengguna, a hit under it too. The User
    /// ID has its hit in `quota`; if the Pengguna has none left, that hit goes back.
    async fn reserve_pengguna(
        &self,
        quota: &mut QuotaCtx,
        snap: &Snapshot,
        pengguna: &str,
    ) -> std::result::Result<(), Rejection> {
        let Some(cap) = snap.pengguna_cap(pengguna) else {
            return Ok(());
        };
        let key = pengguna_key(pengguna);
        let day = quota.day;
        match self.meter.reserve(&key, day, cap.get()).await {
            Ok(used) => {
                quota.pengguna = Some((key, used));
                Ok(())
            }
            Err(e) => {
                self.meter.refund(&quota.user, day);
                let pengguna_usage = match e {
                    QuotaError::Exhausted { used, limit } => Usage { used, limit },
                    QuotaError::Unavailable(_) => Usage {
                        used: self.meter.used(&key, day),
                        limit: cap.get(),
                    },
                };
                quota.usage.used = quota.usage.used.saturating_sub(1);
                quota.pengguna = Some((key, pengguna_usage));
                quota.reserved = false;
                Err(self.quota_refusal(e, |limit| {
                    format!("kuota harian lembaga ini ({limit} hit NIK untuk semua User ID-nya)")
                }))
            }
        }
    }

    /// The refusal of a hit the meter did not reserve; `quota` names the used-up quota
    /// from its limit.
    fn quota_refusal(&self, e: QuotaError, quota: impl FnOnce(u32) -> String) -> Rejection {
        match e {
            QuotaError::Exhausted { limit, .. } => {
                let detail = format!(
                    "{} telah terpakai; berlaku lagi pukul 00.00 WIB",
                    quota(limit)
                );
                Rejection::new(Refusal::QuotaExhausted, detail)
                    .retry_after(until_next_wib_midnight(self.clock.now()))
            }
            QuotaError::Unavailable(why) => {
                // The meter logs each change of the store's health once; per request, debug only.
                tracing::debug!(error = %why, "quota store unavailable; refusing");
                Rejection::new(Refusal::QuotaUnavailable, "")
            }
        }
    }

    /// Gives back the reserved hit of a lookup the DWH did not answer. Called where the
    /// failure is known, before the answer is sent, so the client's next request already
    /// sees it; `reserved` makes it happen once.
    pub(crate) fn refund_once(&self, ctx: &mut GatewayCtx) {
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

    /// Step 5: reads the whole body, refusing it past the configured size or when it has not
    /// all arrived within `listen.request_body_timeout_ms` (a deadline for the whole body, not
    /// for each read: a body trickled a byte at a time meets it too). A malformed chunked
    /// body is refused as bad framing; a client that hung up is an error, answered to no
    /// one. The retry buffer is enabled first so pingora replays the body through
    /// `request_body_filter`, where the rewritten body replaces it.
    pub(crate) async fn read_body(
        &self,
        session: &mut Session,
    ) -> Result<std::result::Result<Bytes, Rejection>> {
        self.read_body_within(session, self.max_body_bytes).await
    }

    /// [`Gateway::read_body`] with another size limit (a data balikan's batch).
    pub(crate) async fn read_body_within(
        &self,
        session: &mut Session,
        max_body_bytes: usize,
    ) -> Result<std::result::Result<Bytes, Rejection>> {
        let too_large = || {
            let detail = format!("badan permintaan melebihi {max_body_bytes} byte");
            Rejection::new(Refusal::BodyTooLarge, detail).body_unread()
        };
        let declared = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > max_body_bytes) {
            return Ok(Err(too_large()));
        }
        session.as_downstream_mut().enable_retry_buffering();
        let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(512).min(max_body_bytes));
        let read = async {
            while let Some(chunk) = session.read_request_body().await? {
                if buf.len() + chunk.len() > max_body_bytes {
                    return Ok(false);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok::<_, Box<Error>>(true)
        };
        let unread =
            |refusal, detail: String| Ok(Err(Rejection::new(refusal, detail).body_unread()));
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

    /// Steps 10–13: the peer in a registered IP LAN, no lockout, the User ID of that LAN,
    /// then its password: from the credential cache, or with argon2 on a blocking thread
    /// (at most `ARGON2_SLOTS` at once). Shared by the web service and the portal's login.
    pub(crate) async fn authenticate(
        &self,
        snap: &Arc<Snapshot>,
        user_id: &str,
        password: &str,
        peer: IpAddr,
    ) -> std::result::Result<UserRef, Rejection> {
        let creds = Credentials {
            user_id,
            password,
            peer,
        };
        let attempt = self.auth.attempt(snap, creds)?;
        // Counted in this process or, with `[shared]`, across every instance: a brute
        // force spread over the instances behind a balancer adds up.
        let subjects = crate::shared::subjects(attempt.peer, attempt.own_user_id);
        let lockouts = &self.shared.lockouts;
        if let Some(wait) = lockouts.locked(&subjects).await {
            return Err(locked_out(wait));
        }
        let checked = match self.auth.precheck(snap, creds, &attempt) {
            Ok(Precheck::Done(user)) => Ok(user),
            Err(refused) => Err(refused),
            Ok(Precheck::NeedsArgon2(_)) => {
                let Ok(_slot) = self.argon2_slots.acquire().await else {
                    return Err(Rejection::new(Refusal::LoginFailed, ""));
                };
                // While this request waited, another may have verified the same credentials.
                match self.auth.precheck(snap, creds, &attempt) {
                    Ok(Precheck::Done(user)) => Ok(user),
                    Err(refused) => Err(refused),
                    Ok(Precheck::NeedsArgon2(slow)) => self.verify_slow(snap, creds, slow).await?,
                }
            }
        };
        match &checked {
            Ok(_) => lockouts.success(&subjects).await,
            Err(_) => lockouts.failure(&subjects).await,
        }
        checked
    }

    /// The argon2 check, off the proxy's threads. `Ok` carries the check's outcome (a wrong
    /// password counts as a failed login); `Err` is a login refused without an outcome (the
    /// check did not run), which counts as nothing.
    async fn verify_slow(
        &self,
        snap: &Arc<Snapshot>,
        creds: Credentials<'_>,
        slow: SlowCheck,
    ) -> std::result::Result<std::result::Result<UserRef, Rejection>, Rejection> {
        // argon2 takes tens of milliseconds of CPU: keep it off the proxy's threads, and
        // below their priority, so a login storm cannot delay lookups.
        let (auth, snap) = (Arc::clone(&self.auth), Arc::clone(snap));
        let (user_id, password, peer) = (
            creds.user_id.to_string(),
            creds.password.to_string(),
            creds.peer,
        );
        self.passwords
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
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "password not checked; login refused");
                Rejection::new(Refusal::LoginFailed, "")
            })
    }
}

/// Step 1: the client's address is the TCP peer's (or the one a trusted balancer's PROXY header
/// carried, `proxy_protocol.rs`), never an HTTP header's.
pub(crate) fn identify(peer: Option<IpAddr>) -> std::result::Result<IpAddr, Rejection> {
    peer.ok_or_else(|| Rejection::new(Refusal::IpNotRegistered, "koneksi tanpa alamat IP"))
}

/// Steps 2–4: the DWH service the path names, `POST` only, and whether it is a card
/// reader's request. Refused before any of the body is read (so the connection closes).
fn route(
    req: &RequestHeader,
    sam_configured: bool,
) -> std::result::Result<(Action, Option<ReaderRequest>), Rejection> {
    let Some(action) = route_path(req.uri.path()) else {
        return Err(Rejection::new(Refusal::UnknownService, "").body_unread());
    };
    if req.method != http::Method::POST {
        return Err(Rejection::new(Refusal::MethodNotAllowed, "gunakan POST").body_unread());
    }
    // Card-reader requests (any `X-SAM-*` header) are validated by the SAM sidecar once
    // authenticated; without a sidecar they are refused, never treated as web-service
    // calls (fail closed, art. 24–25).
    let reader = crate::sam::reader_request(req, sam_configured).map_err(Rejection::body_unread)?;
    Ok((action, reader))
}

/// Steps 6–7a: the body is a JSON object with only keys the service takes, non-empty
/// credentials as text, and a User ID's shape.
fn body_fields(
    body: &[u8],
    action: Action,
    snap: &Snapshot,
) -> std::result::Result<Fields, Rejection> {
    let parsed = RequestBody::parse(body).map_err(|e| body_rejection(&e))?;
    if let Some(key) = unknown_key(&parsed, action, snap.vocabulary()) {
        return Err(Rejection::new(
            Refusal::UnknownParameter,
            format!(
                "parameter \"{}\" tidak dikenal untuk layanan ini",
                shown_key(key)
            ),
        ));
    }
    let text = |key: &str| {
        parsed.text(key).map_err(|e| {
            let why = format!("\"{}\" harus berupa teks atau angka", e.key);
            Rejection::new(Refusal::IncompleteParameters, why)
        })
    };
    let (user_id, password, ip_user, nik) = match (
        text("user_id"),
        text("password"),
        text("ip_user"),
        text("nik"),
    ) {
        (Ok(u), Ok(p), Ok(i), Ok(n)) => (u.unwrap_or_default(), p.unwrap_or_default(), i, n),
        (Err(r), ..) | (_, Err(r), ..) | (_, _, Err(r), _) | (.., Err(r)) => return Err(r),
    };
    check_credentials(&user_id, &password)?;
    Ok(Fields {
        parsed,
        user_id,
        password,
        ip_user,
        nik,
    })
}

/// Step 7a: non-empty credentials and a User ID's shape. Nothing the client sent is kept
/// (recorded, logged, used as a key) before its shape is known: a User ID is short ASCII,
/// as the PKS loader requires.
pub(crate) fn check_credentials(
    user_id: &str,
    password: &str,
) -> std::result::Result<(), Rejection> {
    if user_id.is_empty() || password.is_empty() {
        return Err(Rejection::new(
            Refusal::EmptyCredentials,
            "user_id dan password wajib diisi",
        ));
    }
    if !is_user_id(user_id) {
        return Err(Rejection::new(Refusal::UserIdFormat, user_id_reason()));
    }
    Ok(())
}

/// A body that does not parse, as its refusal.
pub(crate) fn body_rejection(e: &BodyError) -> Rejection {
    Rejection::new(body_refusal(e), body_reason(e))
}

/// Step 8: the NIK, checked before anything reaches the DWH, so a malformed one costs no
/// hit. A search may name one too; it is checked the same way.
fn check_nik(action: Action, nik: Option<&str>) -> std::result::Result<Option<Nik>, Rejection> {
    match nik {
        None if matches!(action, Action::CallNik | Action::VerifyByElement) => Err(Rejection::new(
            Refusal::IncompleteParameters,
            "parameter nik wajib diisi",
        )),
        None => Ok(None),
        Some(nik) => Nik::parse(nik)
            .map(Some)
            .map_err(|e| Rejection::new(Refusal::NikFormat, nik_reason(&e))),
    }
}

/// Step 13b: a User ID whose PKS names client certificates (`sertifikat_klien`) must have
/// presented one of them in the TLS handshake (which checked it against `[listen]
/// tls_client_ca`), in addition to its password and IP LAN.
pub(crate) fn check_client_cert(
    session: &Session,
    user: &gerbang_core::User,
) -> std::result::Result<(), Rejection> {
    let presented = session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .map_or(&[][..], |tls| tls.cert_digest.as_slice());
    if user.client_cert_accepted(presented) {
        return Ok(());
    }
    Err(Rejection::new(
        Refusal::ClientCertificate,
        if presented.is_empty() {
            format!("User ID {} wajib memakai sertifikat klien", user.id)
        } else {
            format!(
                "sertifikat klien ini tidak terdaftar untuk User ID {}",
                user.id
            )
        },
    ))
}

/// Step 9: a body `ip_user` grants nothing; one that is not the real peer is refused.
pub(crate) fn check_ip_user(
    claimed: Option<&str>,
    peer: IpAddr,
) -> std::result::Result<(), Rejection> {
    let Some(claimed) = claimed.filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    match claimed.parse::<IpAddr>() {
        Ok(ip) if canonical_ip(ip) == peer => Ok(()),
        Ok(_) => Err(Rejection::new(
            Refusal::IpMismatch,
            "ip_user tidak sama dengan alamat asal koneksi",
        )),
        Err(_) => Err(Rejection::new(
            Refusal::InvalidIp,
            "ip_user bukan alamat IP",
        )),
    }
}

/// Step 14: only the decision: what the policies said, as a refusal when they refused.
fn decide(decision: &Decision) -> std::result::Result<(), Rejection> {
    match decision.refusal {
        Some(refusal) => Err(Rejection::new(refusal, decision.reason.clone())),
        None => Ok(()),
    }
}

/// The meter key of a Pengguna's daily cap: `@` cannot start a User ID, so the two never
/// share a counter.
pub(crate) fn pengguna_key(pengguna: &str) -> String {
    format!("@pengguna/{pengguna}")
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
pub(crate) fn shown_key(key: &str) -> String {
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

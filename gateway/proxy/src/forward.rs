//! The exchange with the DWH for lookups: one request over a pooled keep-alive connection,
//! the whole answer read into memory. Gerbang never streams a lookup's answer: it is
//! filtered and its record written before any byte of it leaves, so the answer is sent to
//! the client afterwards, with its length, in one write.
//!
//! A pooled connection the DWH closed while idle fails before any answer arrives; the
//! request is then sent again on another connection. A connection closed or reset after
//! the DWH read the request looks the same, so a lookup can reach the DWH twice; it is a
//! read, and its hit is counted once. Timeouts and failures on a new connection are not
//! retried: they are the caller's to answer.
//!
//! `upstream.timeout_ms` bounds the whole answer, from the request sent to its last byte,
//! not only each read: a DWH (or something on the way) trickling its answer a byte at a
//! time cannot hold a lookup longer.
//!
//! What the DWH is sent is rebuilt from what was checked, never passed on as the client sent
//! it: the path from the route and the User ID's own institution (`route::upstream_path`),
//! no query, and a body holding only the keys the service takes ([`upstream_body`]), in the
//! DWH's spelling, with the values the gateway read. A DWH that compares keys its own way
//! (a Java service folding case with Unicode rules) can then never read a key the gateway
//! did not.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::protocols::Stream;
use pingora::protocols::http::v1::client::{HttpSession, http_req_header_to_wire};
use pingora::upstreams::peer::{HttpPeer, Peer};
use tokio::io::AsyncWriteExt;

use gerbang_core::{
    Claim, FilterError, JsonObject, Refusal, Rejection, RequestBody, Vocabulary,
    append_quota_limiter, canonical_ip, filter_answer, filter_lookup_answer,
};
use gerbang_policy::Action;

use crate::gateway::{Gateway, GatewayCtx, QuotaCtx};
use crate::portal::PortalRoute;
use crate::route::upstream_path;

/// Connections tried for one request: stale pooled ones, then a fresh one.
const ATTEMPTS: usize = 3;

/// Idle DWH connections kept per proxy thread (pingora's default).
const POOL_PER_THREAD: usize = 128;

/// Credentials and options every web service takes, as lower-cased keys.
const CREDENTIAL_KEYS: [&str; 3] = ["user_id", "password", "ip_user"];

/// How `CALL_VERIFY_BY_ELEMEN` spells its threshold (sic), and the spelling also accepted.
const THRESHOLD_KEYS: [&str; 2] = ["treshold", "threshold"];

/// The first key of `body` that `action` does not take, as sent: the credentials, `nik`
/// for `CALL_NIK`; for `CALL_VERIFY_BY_ELEMEN` also the threshold and element claims; for
/// `CALL_BY_ELEMEN` the element values. Elements are the vocabulary's names, in any ASCII
/// case.
pub(crate) fn unknown_key<'b>(
    body: &'b RequestBody,
    action: Action,
    vocab: &Vocabulary,
) -> Option<&'b str> {
    body.keys()
        .find(|(_, lower)| {
            let element = || vocab.id(&lower.to_ascii_uppercase()).is_some();
            let known = CREDENTIAL_KEYS.contains(lower)
                || match action {
                    Action::CallNik => *lower == "nik",
                    Action::VerifyByElement => THRESHOLD_KEYS.contains(lower) || element(),
                    Action::SearchByElements => element(),
                    _ => false,
                };
            !known
        })
        .map(|(sent, _)| sent)
}

/// The checked parts of a lookup the DWH is sent.
pub(crate) struct Checked<'a> {
    pub(crate) user_id: &'a str,
    pub(crate) password: &'a str,
    /// The NIK, validated (`CALL_NIK` and verification always; a search when it names one).
    pub(crate) nik: Option<&'a str>,
    /// The TCP peer: the DWH's `ip_user`.
    pub(crate) peer: IpAddr,
}

/// The body the DWH is sent for an admitted lookup, rebuilt from the checked values in the
/// DWH's own spelling (`docs/gateway.md` step 17: `CALL_NIK` in lower case, the element
/// services in upper case). The NIK goes as a string of 16 digits and `ip_user` is the real
/// peer; claims and search values keep the client's order, as text or whole numbers. Only
/// keys [`unknown_key`] accepts are read. `Err`: a value the service cannot take, with why.
pub(crate) fn upstream_body(
    body: &RequestBody,
    action: Action,
    vocab: &Vocabulary,
    checked: &Checked<'_>,
) -> Result<Bytes, Rejection> {
    let upper = action != Action::CallNik;
    let key = |k: &str| {
        if upper {
            k.to_ascii_uppercase()
        } else {
            k.to_string()
        }
    };
    let mut out = JsonObject::new();
    if let (Action::CallNik | Action::VerifyByElement, Some(nik)) = (action, checked.nik) {
        out.string(&key("nik"), nik);
    }
    out.string(&key("user_id"), checked.user_id);
    out.string(&key("password"), checked.password);
    out.string(&key("ip_user"), &canonical_ip(checked.peer).to_string());
    if action == Action::VerifyByElement
        && let Some(t) = threshold(body)?
    {
        out.string("TRESHOLD", &t.to_string());
    }
    // What a search looks for: a search with nothing to look for is not sent.
    let mut searched = 0usize;
    if matches!(action, Action::VerifyByElement | Action::SearchByElements) {
        for (_, lower) in body.keys() {
            let name = lower.to_ascii_uppercase();
            if vocab.id(&name).is_none() {
                continue;
            }
            if lower == "nik" {
                // Verification names it first (above); a search value is the checked NIK.
                if let (Action::SearchByElements, Some(nik)) = (action, checked.nik) {
                    out.string("NIK", nik);
                    searched += 1;
                }
                continue;
            }
            match body.claim(lower) {
                Ok(Some(value)) => {
                    if !matches!(&value, Claim::Text(t) if t.trim().is_empty()) {
                        searched += 1;
                    }
                    out.claim(&name, &value);
                }
                Ok(None) => {}
                Err(_) => {
                    return Err(Rejection::new(
                        Refusal::IncompleteParameters,
                        format!("\"{name}\" harus berupa teks atau bilangan bulat"),
                    ));
                }
            }
        }
    }
    if action == Action::SearchByElements && searched == 0 {
        return Err(Rejection::new(
            Refusal::IncompleteParameters,
            "pencarian memerlukan sedikitnya satu elemen yang diisi",
        ));
    }
    Ok(Bytes::from(out.into_bytes()))
}

/// The verification threshold, 1 to 100, as a number or a string; `None` when not given.
fn threshold(body: &RequestBody) -> Result<Option<u8>, Rejection> {
    let refused = |why: &str| Err(Rejection::new(Refusal::IncompleteParameters, why));
    if THRESHOLD_KEYS.iter().all(|k| body.has(k)) {
        return refused("TRESHOLD dan THRESHOLD tidak boleh dikirim bersamaan");
    }
    let value = THRESHOLD_KEYS
        .iter()
        .find(|k| body.has(k))
        .map_or(Ok(None), |k| body.claim(k));
    let text = match value {
        Ok(None) => return Ok(None),
        Ok(Some(Claim::Text(t) | Claim::Integer(t))) => t,
        Err(_) => return refused("TRESHOLD harus bilangan bulat 1-100"),
    };
    match text.trim().parse::<u8>() {
        Ok(t @ 1..=100) => Ok(Some(t)),
        _ => refused("TRESHOLD harus bilangan bulat 1-100"),
    }
}

/// What the DWH answered.
pub(crate) struct DwhAnswer {
    pub(crate) status: u16,
    /// The body, empty when it was larger than the limit.
    pub(crate) body: BytesMut,
    pub(crate) too_large: bool,
}

/// The DWH's address, its connection pool and its timeouts.
pub(crate) struct Upstream {
    transport: TransportConnector,
    pub(crate) peer: HttpPeer,
    pub(crate) host: String,
}

/// A failed attempt, and whether it failed before the DWH could have read the request.
struct Failed {
    error: Box<Error>,
    unanswered: bool,
}

impl Upstream {
    /// The pool holds up to `POOL_PER_THREAD` idle connections per proxy thread, as
    /// pingora's own proxying does by default; its CA is the configured one.
    pub(crate) fn new(up: &gerbang_core::Upstream, threads: usize) -> Self {
        let mut peer = HttpPeer::new(up.address, up.tls, up.sni.clone());
        peer.options.connection_timeout = Some(up.connect_timeout);
        peer.options.total_connection_timeout = Some(up.connect_timeout);
        peer.options.read_timeout = Some(up.timeout);
        peer.options.write_timeout = Some(up.timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        let host = if up.sni.is_empty() {
            up.address.to_string()
        } else {
            up.sni.clone()
        };
        let mut options = ConnectorOptions::new(POOL_PER_THREAD * threads.max(1));
        options.ca_file = up.ca.as_ref().map(|p| p.display().to_string());
        Self {
            transport: TransportConnector::new(Some(options)),
            peer,
            host,
        }
    }

    /// Sends `req` with `body` and reads the whole answer, keeping at most `limit` bytes of
    /// it. The connection goes back to the pool when the answer was read to its end.
    pub(crate) async fn exchange(
        &self,
        req: &RequestHeader,
        body: &Bytes,
        limit: usize,
    ) -> Result<DwhAnswer> {
        // Header and body leave in one write (pingora's client session flushes the header
        // on its own first).
        let mut wire = http_req_header_to_wire(req)
            .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "request to the DWH"))?;
        wire.extend_from_slice(body);
        // Every failure here is the DWH's side (timeouts become "DWH Tidak Merespons").
        self.attempt(&wire, limit).await.map_err(Error::into_up)
    }

    async fn attempt(&self, wire: &[u8], limit: usize) -> Result<DwhAnswer> {
        let mut last = None;
        let mut connect_retried = false;
        for _ in 0..ATTEMPTS {
            let (mut stream, reused) = match self.transport.get_stream(&self.peer).await {
                Ok(got) => got,
                // A connection that never opened carried nothing: the DWH has not seen the
                // request, so one more is tried. A SYN the DWH's full listen queue dropped
                // is sent again by the kernel only after a second, as long as the default
                // connect timeout, while a new connection sends its SYN at once.
                Err(e) if !connect_retried && matches!(e.etype(), ErrorType::ConnectTimedout) => {
                    tracing::debug!(error = %e, "DWH connection not established in time; trying another");
                    connect_retried = true;
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Err(failed) = self.send(&mut stream, wire).await {
                if reused && failed.unanswered {
                    tracing::debug!(error = %failed.error, "pooled DWH connection was closed; sending again on another");
                    last = Some(failed.error);
                    continue;
                }
                return Err(failed.error);
            }
            let mut http = HttpSession::new_with_options(stream, &self.peer);
            http.read_timeout = self.peer.options.read_timeout;
            let received = match self.peer.options.read_timeout {
                Some(whole) => tokio::time::timeout(whole, Self::receive(&mut http, limit))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failed {
                            error: Error::explain(
                                ErrorType::ReadTimedout,
                                "the DWH's whole answer took longer than upstream.timeout_ms",
                            ),
                            unanswered: false,
                        })
                    }),
                None => Self::receive(&mut http, limit).await,
            };
            match received {
                Ok(answer) => {
                    if !answer.too_large {
                        self.release(http).await;
                    }
                    return Ok(answer);
                }
                Err(failed) if reused && failed.unanswered => {
                    tracing::debug!(error = %failed.error, "pooled DWH connection was closed; sending again on another");
                    last = Some(failed.error);
                }
                Err(failed) => return Err(failed.error),
            }
        }
        Err(last.unwrap_or_else(|| Error::explain(ErrorType::ConnectError, "no DWH connection")))
    }

    async fn send(&self, stream: &mut Stream, wire: &[u8]) -> std::result::Result<(), Failed> {
        let write = async {
            stream.write_all(wire).await?;
            stream.flush().await
        };
        let written = match self.peer.options.write_timeout {
            Some(t) => match tokio::time::timeout(t, write).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Failed {
                        error: Error::explain(ErrorType::WriteTimedout, "sending to the DWH"),
                        unanswered: false,
                    });
                }
            },
            None => write.await,
        };
        written.map_err(|e| Failed {
            error: Error::because(ErrorType::WriteError, "sending to the DWH", e),
            unanswered: true,
        })
    }

    /// Puts the connection back in the pool, if its answer was read whole and the DWH did
    /// not ask to close it.
    async fn release(&self, mut http: HttpSession) {
        http.respect_keepalive();
        if let Some(stream) = http.reuse().await {
            self.transport.release_stream(
                stream,
                self.peer.reuse_hash(),
                self.peer.options.idle_timeout,
            );
        }
    }

    async fn receive(
        http: &mut HttpSession,
        limit: usize,
    ) -> std::result::Result<DwhAnswer, Failed> {
        let unanswered = |error: Box<Error>| {
            // A closed or reset idle connection; not a timeout, which may mean a slow DWH.
            let closed = matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::WriteError | ErrorType::ReadError
            );
            Failed {
                error,
                unanswered: closed,
            }
        };
        let answered = |error: Box<Error>| Failed {
            error,
            unanswered: false,
        };
        // Informational answers (100 Continue) come before the real one.
        let status = loop {
            http.read_response().await.map_err(unanswered)?;
            match http.get_status() {
                Some(s) if s.is_informational() => continue,
                s => break s.map_or(0, |s| s.as_u16()),
            }
        };
        let mut answer = BytesMut::new();
        let mut too_large = false;
        while let Some(chunk) = http.read_body_ref().await.map_err(answered)? {
            if answer.len() + chunk.len() > limit {
                // Nothing more is read: the connection is dropped, not pooled.
                too_large = true;
                answer.clear();
                break;
            }
            answer.extend_from_slice(chunk);
        }
        Ok(DwhAnswer {
            status,
            body: answer,
            too_large,
        })
    }
}

/// Largest DWH answer Gerbang buffers for filtering. A lookup answer is a few kilobytes; a
/// search page at most tens of records.
pub(crate) const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

impl Gateway {
    /// Sends the DWH only what it needs: the path rebuilt from the route and the Pengguna
    /// (never the client's), the rebuilt body, and the real peer. Client headers (including
    /// any `X-Forwarded-For`) are not passed on.
    pub(crate) fn upstream_request(
        &self,
        session: &Session,
        ctx: &GatewayCtx,
    ) -> Result<RequestHeader> {
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

    /// Step 17: forwards an admitted lookup (or portal search) to the DWH and answers the client:
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
                return self
                    .answer(session, &Rejection::new(refusal, ""), quota)
                    .await;
            }
        };
        ctx.upstream_status = Some(answer.status);
        let mut body = self.filter(ctx, &answer);
        if ctx.refusal.is_none() && ctx.records > 0 {
            body = self.audit_release(ctx, body).await;
        }
        if ctx.refusal.is_none() && ctx.records > 0 {
            // Released: the PKS may now return data about this NIK.
            self.remember_lookup(ctx);
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

    /// Step 18: turns the DWH's answer into what the Pengguna may see.
    fn filter(&self, ctx: &mut GatewayCtx, answer: &DwhAnswer) -> Bytes {
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

/// The refusal for a failed exchange with the DWH.
pub(crate) fn upstream_refusal(e: &Error) -> Refusal {
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

#[cfg(test)]
mod tests {
    use super::*;

    const NIK: &str = "3201011501900001";

    fn rebuilt(action: Action, body: &str, nik: Option<&str>) -> Result<String, Rejection> {
        let vocab = Vocabulary::embedded();
        let body = RequestBody::parse(body.as_bytes()).expect("parses");
        assert_eq!(unknown_key(&body, action, &vocab), None);
        let checked = Checked {
            user_id: "u_01",
            password: "p\"w",
            nik,
            peer: "::ffff:10.0.0.5".parse().expect("ip"),
        };
        upstream_body(&body, action, &vocab, &checked)
            .map(|b| String::from_utf8(b.to_vec()).expect("utf8"))
    }

    #[test]
    fn each_service_takes_only_its_own_keys() {
        let vocab = Vocabulary::embedded();
        let unknown = |action, body: &str| {
            let body = RequestBody::parse(body.as_bytes()).expect("parses");
            unknown_key(&body, action, &vocab).map(str::to_string)
        };
        let lookup = r#"{"NIK":"1","User_Id":"u","password":"p","IP_USER":"x"}"#;
        assert_eq!(unknown(Action::CallNik, lookup), None);
        assert_eq!(
            unknown(Action::CallNik, r#"{"nik":"1","NAMA_LGKP":"x"}"#).as_deref(),
            Some("NAMA_LGKP")
        );
        assert_eq!(
            unknown(Action::CallNik, r#"{"nik":"1","treshold":90}"#).as_deref(),
            Some("treshold")
        );
        let verify = r#"{"nik":"1","TRESHOLD":90,"nama_lgkp":"x","Alamat":"y","user_id":"u"}"#;
        assert_eq!(unknown(Action::VerifyByElement, verify), None);
        assert_eq!(
            unknown(Action::VerifyByElement, r#"{"nik":"1","NAMA":"x"}"#).as_deref(),
            Some("NAMA")
        );
        assert_eq!(
            unknown(
                Action::SearchByElements,
                r#"{"NAMA_LGKP":"x","TRESHOLD":1}"#
            )
            .as_deref(),
            Some("TRESHOLD")
        );
        assert_eq!(
            unknown(Action::PortalRead, r#"{"user_id":"u"}"#),
            None,
            "credentials are every service's"
        );
    }

    #[test]
    fn a_lookup_is_rebuilt_in_lower_case_with_the_nik_as_a_string_and_the_real_peer() {
        let body = format!(r#"{{"IP_USER":"10.0.0.5","NIK":{NIK},"Password":"x","USER_ID":"y"}}"#);
        assert_eq!(
            rebuilt(Action::CallNik, &body, Some(NIK)).expect("ok"),
            format!(r#"{{"nik":"{NIK}","user_id":"u_01","password":"p\"w","ip_user":"10.0.0.5"}}"#)
        );
    }

    #[test]
    fn a_verification_keeps_its_claims_in_order_in_the_dwhs_spelling() {
        let body = format!(
            r#"{{"no_rt":5,"nik":"{NIK}","threshold":"80","nama_lgkp":"A \"B\"","alamat":null,"user_id":"y"}}"#
        );
        assert_eq!(
            rebuilt(Action::VerifyByElement, &body, Some(NIK)).expect("ok"),
            format!(
                r#"{{"NIK":"{NIK}","USER_ID":"u_01","PASSWORD":"p\"w","IP_USER":"10.0.0.5","TRESHOLD":"80","NO_RT":5,"NAMA_LGKP":"A \"B\""}}"#
            )
        );
        for (threshold, why) in [
            ("0", "1-100"),
            ("101", "1-100"),
            ("\"x\"", "1-100"),
            ("1.5", "1-100"),
        ] {
            let body = format!(r#"{{"nik":"{NIK}","TRESHOLD":{threshold}}}"#);
            let Rejection {
                refusal, detail, ..
            } = rebuilt(Action::VerifyByElement, &body, Some(NIK)).expect_err(threshold);
            assert_eq!(refusal, Refusal::IncompleteParameters);
            assert!(detail.contains(why), "{detail}");
        }
        let both = format!(r#"{{"nik":"{NIK}","TRESHOLD":80,"THRESHOLD":80}}"#);
        assert!(rebuilt(Action::VerifyByElement, &both, Some(NIK)).is_err());
        let object = format!(r#"{{"nik":"{NIK}","NAMA_LGKP":{{"a":1}}}}"#);
        let Rejection { detail, .. } =
            rebuilt(Action::VerifyByElement, &object, Some(NIK)).expect_err("object");
        assert!(detail.contains("NAMA_LGKP"), "{detail}");
    }

    #[test]
    fn a_search_sends_its_elements_and_a_checked_nik() {
        let body = format!(r#"{{"tgl_lhr":"01-01-1990","NIK":{NIK},"Nama_Lgkp":"A"}}"#);
        assert_eq!(
            rebuilt(Action::SearchByElements, &body, Some(NIK)).expect("ok"),
            format!(
                r#"{{"USER_ID":"u_01","PASSWORD":"p\"w","IP_USER":"10.0.0.5","TGL_LHR":"01-01-1990","NIK":"{NIK}","NAMA_LGKP":"A"}}"#
            )
        );
    }
}

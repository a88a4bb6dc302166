//! The flow of a portal request: checks before forwarding (address, origin, session, the
//! User ID as it is now, Cedar's decision) and the login.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use pingora::prelude::*;
use pingora::proxy::Session;

use gerbang_core::{Channel, JsonObject, Nik, Refusal, RequestBody, UserStatus, is_user_id};
use gerbang_policy::Action;

use super::answer::{PortalAnswer, PortalCtx, header};
use super::page::{STYLE, login_page, what};
use super::{PortalRoute, classify, cleared_cookie, cookie, same_origin, session_cookie};
use crate::gateway::{Gateway, GatewayCtx};
use crate::stages::{nik_reason, user_id_reason};
use gerbang_core::Rejection;
use gerbang_shared::{SessionError, StartError};

impl Gateway {
    /// Everything before forwarding a portal request. `Ok(true)`: answered here.
    pub(crate) async fn portal_request(
        &self,
        session: &mut Session,
        ctx: &mut GatewayCtx,
    ) -> Result<bool> {
        let answer = self.portal_admit(session, ctx).await?;
        match answer {
            // A page is passed on as it comes; the search is answered like the API's lookups.
            None if ctx.portal.is_some_and(|p| p.route == PortalRoute::Search) => {
                self.forward(session, ctx).await?;
                Ok(true)
            }
            None => Ok(false),
            Some(answer) => {
                ctx.refusal = answer.refusal;
                self.write_portal(session, answer).await?;
                Ok(true)
            }
        }
    }

    async fn portal_admit(
        &self,
        session: &mut Session,
        ctx: &mut GatewayCtx,
    ) -> Result<Option<PortalAnswer>> {
        let req = session.req_header();
        let path = req.uri.path().to_string();
        if path == "/portal" {
            return Ok(Some(PortalAnswer::redirect("/portal/")));
        }
        let route = classify(&req.method, &path);
        let is_get = req.method == Method::GET;
        ctx.action = route.action();
        let Some(peer) = ctx.peer else {
            return Ok(Some(PortalAnswer::refused(
                403,
                Refusal::IpNotRegistered,
                what(route),
                "koneksi tanpa alamat IP",
            )));
        };
        // HTTP/2 carries the host as `:authority`, HTTP/1.1 as `Host`.
        let host = header(session, "host")
            .map(str::to_string)
            .or_else(|| req.uri.authority().map(|a| a.as_str().to_string()));
        if !is_get
            && !same_origin(
                host.as_deref(),
                header(session, "origin"),
                header(session, "sec-fetch-site"),
            )
        {
            // Explained only for an address in some IP LAN: a stranger's refusals are
            // sampled in the request log (`Gateway::attribute`), and a line for each would
            // let any host on the network fill the disk.
            if self.snapshot.load().user_by_ip(peer).is_some() {
                tracing::warn!(peer = %peer, route = ?route, "portal request from another site refused");
            }
            return Ok(Some(PortalAnswer::refused(
                403,
                Refusal::NotPermitted,
                what(route),
                "permintaan tidak berasal dari halaman portal ini",
            )));
        }
        let token = cookie(
            session
                .req_header()
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
            &self.portal.cookie_name,
        )
        .map(str::to_string);
        let sessions = &self.portal.sessions;
        match route {
            PortalRoute::Style => {
                let mut a = PortalAnswer::html(200, STYLE.to_string());
                a.content_type = "text/css; charset=utf-8";
                return Ok(Some(a));
            }
            PortalRoute::LoginPage => {
                let checked = match token.as_deref() {
                    Some(t) => sessions.check(t, peer).await,
                    None => Err(SessionError::Missing),
                };
                return Ok(Some(match checked {
                    Ok(_) => PortalAnswer::redirect("/portal/"),
                    Err(SessionError::Unavailable(_)) => sessions_unavailable(),
                    Err(_) => PortalAnswer::html(200, login_page(None)),
                }));
            }
            PortalRoute::Login => return self.portal_login(session, ctx, peer).await.map(Some),
            PortalRoute::Logout => {
                // Only from the address the session is bound to: a replayed cookie cannot
                // end someone else's session.
                let mut ended = None;
                if let Some(t) = token.as_deref()
                    && sessions.check(t, peer).await.is_ok()
                {
                    match sessions.end(t).await {
                        Ok(user) => ended = user,
                        // Not ended on the other instances: say so rather than pretend.
                        Err(e) => {
                            tracing::warn!(target: "gerbang::portal", peer = %peer, error = %e, "portal logout not recorded: the session store is unreachable");
                            return Ok(Some(sessions_unavailable()));
                        }
                    }
                }
                if let Some(user) = ended {
                    tracing::info!(target: "gerbang::portal", peer = %peer, user.id = user.as_str(), "portal logout");
                    ctx.user_id = Some(user);
                }
                let mut a = PortalAnswer::redirect("/portal/masuk");
                a.set_cookie = Some(cleared_cookie(&self.portal.cookie_name));
                return Ok(Some(a));
            }
            PortalRoute::Page
            | PortalRoute::Search
            | PortalRoute::Balikan
            | PortalRoute::BalikanPreview
            | PortalRoute::BalikanSend
            | PortalRoute::BalikanForm
            | PortalRoute::Export
            | PortalRoute::Write
            | PortalRoute::Unknown => {}
        }

        let checked = match token.as_deref() {
            Some(t) => sessions.check(t, peer).await,
            None => Err(SessionError::Missing),
        };
        let user_id = match checked {
            Ok(user_id) => user_id,
            Err(e) => {
                match &e {
                    SessionError::OtherAddress => {
                        tracing::warn!(peer = %peer, "portal session cookie presented from another address; refused");
                    }
                    SessionError::Unavailable(why) => {
                        tracing::warn!(target: "gerbang::portal", peer = %peer, error = why.as_str(), "portal session not confirmed: the session store is unreachable; treated as logged out");
                    }
                    _ => {}
                }
                return Ok(Some(self.no_session(route, is_get, &e)));
            }
        };
        ctx.user_id = Some(user_id.clone());
        if route == PortalRoute::Unknown {
            return Ok(Some(PortalAnswer::refused(
                404,
                Refusal::UnknownService,
                what(route),
                "halaman ini tidak ada pada portal; hanya halaman portal dan pencarian NIK yang dapat dibuka",
            )));
        }
        let Some(action) = route.action() else {
            return Ok(Some(PortalAnswer::refused(
                404,
                Refusal::UnknownService,
                what(route),
                "",
            )));
        };
        let snap = self.snapshot.load_full();
        // The PKS files (or a sanction) may have changed since login: a removed User ID, an
        // IP LAN that no longer covers this address or a deactivated User ID ends the
        // session; logging in again is checked afresh. (A changed password ends it at the
        // reload that brings it, `session::changed_users`.)
        let registered = snap
            .user_by_id(&user_id)
            .filter(|u| snap.user(*u).ip_registered(peer));
        let change = match registered {
            None => Some((
                Refusal::IpMismatch,
                403,
                "User ID ini tidak lagi terdaftar untuk alamat ini; silakan masuk lagi",
            )),
            Some(u) if snap.user(u).status != UserStatus::Aktif => Some((
                Refusal::UserInactive,
                403,
                "User ID ini dinonaktifkan; sesi diakhiri",
            )),
            // On every page, not only at login: a session cookie is no client certificate.
            Some(u) if crate::stages::check_client_cert(session, snap.user(u)).is_err() => Some((
                Refusal::ClientCertificate,
                403,
                "sertifikat klien koneksi ini tidak terdaftar untuk User ID ini; sesi diakhiri",
            )),
            Some(_) => None,
        };
        let (Some(user), None) = (registered, change) else {
            let (refusal, status, why) = change.unwrap_or((Refusal::IpMismatch, 403, ""));
            if let Some(t) = token.as_deref()
                && let Err(e) = sessions.end(t).await
            {
                // Refused all the same; the session ends at its timeout or next check.
                tracing::warn!(target: "gerbang::portal", error = %e, "portal session not ended: the session store is unreachable");
            }
            tracing::info!(target: "gerbang::portal", peer = %peer, user.id = user_id.as_str(), reason = refusal.name(), "portal session ended by a change of the User ID");
            let mut a = PortalAnswer::refused(status, refusal, what(route), why);
            a.set_cookie = Some(cleared_cookie(&self.portal.cookie_name));
            return Ok(Some(a));
        };
        let decision =
            match self.authorize(ctx, &snap, user, action, Channel::WebPortal, peer, false) {
                Ok(d) => d,
                Err(reject) => {
                    let quota = ctx.quota.as_ref().map(crate::gateway::QuotaCtx::shown);
                    return Ok(Some(if route == PortalRoute::Search {
                        PortalAnswer::refused_json(
                            &Rejection {
                                body_consumed: false,
                                ..reject
                            },
                            quota,
                        )
                    } else {
                        PortalAnswer::refused(403, reject.refusal, what(route), &reject.detail)
                    }));
                }
            };
        if matches!(route, PortalRoute::Export | PortalRoute::Write) {
            // Cedar's `portal-read-only` forbids these; if an edited policy set ever
            // permitted one, art. 30(2) still does not.
            tracing::error!(
                user.id = user_id.as_str(),
                rule = decision.rule.as_str(),
                "the policies allowed a portal write or export; refused anyway (art. 30(2))"
            );
            return Ok(Some(PortalAnswer::refused(
                403,
                Refusal::NotPermitted,
                what(route),
                "data pada Web Portal hanya dapat dibaca (pasal 30 ayat 2)",
            )));
        }
        if matches!(
            route,
            PortalRoute::Balikan
                | PortalRoute::BalikanPreview
                | PortalRoute::BalikanSend
                | PortalRoute::BalikanForm
        ) {
            // The gateway's own pages: answered here, never forwarded to the DWH portal.
            ctx.decision = Some(decision);
            ctx.snapshot = Some(Arc::clone(&snap));
            return self
                .portal_balikan(session, ctx, route, &snap, user)
                .await
                .map(Some);
        }
        ctx.portal = Some(PortalCtx {
            route,
            blocked: None,
        });
        if route == PortalRoute::Page {
            ctx.upstream_body = Bytes::new();
            ctx.decision = Some(decision);
            ctx.snapshot = Some(snap);
            return Ok(None);
        }

        // The search: one NIK, checked before anything reaches the DWH, then one hit.
        let body = match self.read_body(session).await? {
            Ok(b) => b,
            Err(reject) => return Ok(Some(PortalAnswer::refused_json(&reject, None))),
        };
        let nik = RequestBody::parse(&body)
            .ok()
            .and_then(|b| b.text("nik").ok().flatten());
        let nik = match nik.as_deref().map(Nik::parse) {
            Some(Ok(parsed)) => {
                ctx.nik = Some(parsed);
                parsed.as_str().to_string()
            }
            Some(Err(e)) => {
                let reject = Rejection::new(Refusal::NikFormat, nik_reason(&e));
                return Ok(Some(PortalAnswer::refused_json(&reject, None).consumed()));
            }
            None => {
                let reject = Rejection::new(Refusal::IncompleteParameters, "NIK wajib diisi");
                return Ok(Some(PortalAnswer::refused_json(&reject, None).consumed()));
            }
        };
        // Recorded as the API's lookups are: a person's portal lookups can be found, and
        // the art. 40 report counts distinct NIKs across channels.
        ctx.nik_digest = self.audit.as_ref().map(|a| a.key.nik_digest(&nik));
        if let Err(reject) = self.meter_hit(ctx, &snap, user).await {
            let quota = ctx.quota.as_ref().map(crate::gateway::QuotaCtx::shown);
            return Ok(Some(PortalAnswer::refused_json(&reject, quota).consumed()));
        }
        let mut forwarded = JsonObject::new();
        forwarded.string("nik", &nik);
        ctx.upstream_body = Bytes::from(forwarded.into_bytes());
        ctx.decision = Some(decision);
        ctx.snapshot = Some(snap);
        Ok(None)
    }

    /// The answer to a request without a valid session.
    fn no_session(&self, route: PortalRoute, is_get: bool, e: &SessionError) -> PortalAnswer {
        let why = match e {
            SessionError::Missing => "belum masuk; silakan masuk dengan User ID Anda",
            SessionError::Expired => {
                "sesi telah berakhir (tidak aktif terlalu lama atau melewati batas waktu); silakan masuk lagi"
            }
            SessionError::Replaced | SessionError::Ended => {
                "sesi telah diakhiri (User ID ini masuk lagi, atau diubah atau dinonaktifkan); silakan masuk lagi"
            }
            SessionError::OtherAddress => {
                "sesi ini terikat pada alamat komputer lain; silakan masuk dari komputer Anda"
            }
            SessionError::Unavailable(_) => SESSIONS_UNAVAILABLE,
        };
        let gone = matches!(
            e,
            SessionError::Expired | SessionError::Replaced | SessionError::Ended
        );
        let mut answer = match (route, e) {
            (
                PortalRoute::Page | PortalRoute::Balikan | PortalRoute::Unknown,
                SessionError::Unavailable(_),
            ) if is_get => sessions_unavailable(),
            (
                PortalRoute::Page | PortalRoute::Balikan | PortalRoute::Unknown,
                SessionError::Missing,
            ) if is_get => PortalAnswer::redirect("/portal/masuk"),
            (PortalRoute::Page | PortalRoute::Balikan | PortalRoute::Unknown, _)
                if is_get && gone =>
            {
                PortalAnswer::redirect("/portal/masuk")
            }
            (PortalRoute::Search, SessionError::Unavailable(_)) => PortalAnswer::refused_json(
                &Rejection {
                    body_consumed: false,
                    ..Rejection::new(Refusal::QuotaUnavailable, why)
                },
                None,
            ),
            (PortalRoute::Search, _) => PortalAnswer::refused_json(
                &Rejection {
                    body_consumed: false,
                    ..Rejection::new(Refusal::LoginFailed, why)
                },
                None,
            ),
            (_, SessionError::Unavailable(_)) => sessions_unavailable(),
            _ => PortalAnswer::refused(401, Refusal::LoginFailed, what(route), why),
        };
        if gone {
            answer.set_cookie = Some(cleared_cookie(&self.portal.cookie_name));
        }
        answer
    }

    /// `POST /portal/masuk`: User ID + password + IP LAN, the PKS must grant `web_portal`,
    /// and no other session of the User ID may be active.
    async fn portal_login(
        &self,
        session: &mut Session,
        ctx: &mut GatewayCtx,
        peer: IpAddr,
    ) -> Result<PortalAnswer> {
        let failed = |status: u16, refusal: Refusal, message: String| PortalAnswer {
            refusal: Some(refusal),
            ..PortalAnswer::html(status, login_page(Some(&message)))
        };
        let body = match self.read_body(session).await? {
            Ok(b) => b,
            Err(reject) => {
                // Too large (413), not sent in time (408) or badly framed (400).
                return Ok(failed(
                    reject.refusal.rest_status(),
                    reject.refusal,
                    reject.detail,
                ));
            }
        };
        let mut user_id = String::new();
        let mut password = String::new();
        for (k, v) in form_urlencoded::parse(&body) {
            match k.as_ref() {
                "user_id" => user_id = v.into_owned(),
                "password" => password = v.into_owned(),
                _ => {}
            }
        }
        if user_id.is_empty() || password.is_empty() {
            return Ok(failed(
                400,
                Refusal::EmptyCredentials,
                "User ID dan password wajib diisi".into(),
            )
            .consumed());
        }
        if !is_user_id(&user_id) {
            return Ok(failed(400, Refusal::UserIdFormat, user_id_reason()).consumed());
        }
        ctx.user_id = Some(user_id.clone());
        let snap = self.snapshot.load_full();
        let user = match self.authenticate(&snap, &user_id, &password, peer).await {
            Ok(u) => u,
            Err(reject) => {
                let message = if reject.detail.is_empty() {
                    reject.refusal.respon().to_string()
                } else {
                    format!("{}: {}", reject.refusal.respon(), reject.detail)
                };
                return Ok(failed(401, reject.refusal, message).consumed());
            }
        };
        if let Err(reject) = crate::stages::check_client_cert(session, snap.user(user)) {
            let message = format!("{}: {}", reject.refusal.respon(), reject.detail);
            return Ok(failed(403, reject.refusal, message).consumed());
        }
        if let Err(reject) = self.authorize(
            ctx,
            &snap,
            user,
            Action::PortalRead,
            Channel::WebPortal,
            peer,
            false,
        ) {
            return Ok(PortalAnswer::refused(
                403,
                reject.refusal,
                what(PortalRoute::Login),
                &reject.detail,
            )
            .consumed());
        }
        match self.portal.sessions.start(&user_id, peer).await {
            Ok(token) => {
                tracing::info!(target: "gerbang::portal", peer = %peer, user.id = user_id.as_str(), "portal login");
                let mut a = PortalAnswer::redirect("/portal/").consumed();
                a.set_cookie = Some(session_cookie(&self.portal.cookie_name, &token));
                Ok(a)
            }
            Err(StartError::Unavailable(why)) => {
                tracing::warn!(target: "gerbang::portal", peer = %peer, user.id = user_id.as_str(), error = why.as_str(), "portal login refused: the session store is unreachable");
                Ok(sessions_unavailable().consumed())
            }
            Err(StartError::Active) => {
                tracing::warn!(target: "gerbang::portal", peer = %peer, user.id = user_id.as_str(), "portal login refused: a session is active");
                Ok(PortalAnswer::refused(
                    409,
                    Refusal::NotPermitted,
                    what(PortalRoute::Login),
                    "User ID ini sedang dipakai dalam sesi lain yang masih aktif; satu User ID hanya boleh satu sesi. Keluar dari sesi itu, atau tunggu sampai sesi itu berakhir.",
                )
                .consumed())
            }
        }
    }
}

/// What a browser is told while the session store cannot be asked: the service is
/// unavailable, not a wrong password.
const SESSIONS_UNAVAILABLE: &str =
    "layanan sesi portal sedang tidak tersedia; silakan coba lagi beberapa saat lagi";

/// The login page saying the portal's sessions are unavailable (the shared store, the
/// quota's Redis, is unreachable): 503, refusal 25, never "wrong password".
fn sessions_unavailable() -> PortalAnswer {
    PortalAnswer {
        refusal: Some(Refusal::QuotaUnavailable),
        ..PortalAnswer::html(503, login_page(Some(SESSIONS_UNAVAILABLE)))
    }
}

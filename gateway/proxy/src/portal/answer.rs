//! Answers the gateway writes itself (login, refusals, redirects) and the shaping of the
//! DWH portal's own answers: a download or an error page is replaced by the refusal page.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use gerbang_core::Refusal;
use gerbang_quota::Usage;

use super::page::{refusal_page, what};
use super::{PortalRoute, SECURITY_HEADERS, is_download, is_page_type};
use crate::gateway::{Gateway, GatewayCtx};
use gerbang_core::Rejection;

/// What a portal request in flight is, for the response filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortalCtx {
    pub(crate) route: PortalRoute,
    /// The upstream page was refused (a download): its body is replaced by this page.
    pub(crate) blocked: Option<Blocked>,
}

/// Why an upstream page was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blocked {
    Download,
    Status(u16),
    ContentType,
}

/// An answer the gateway writes itself.
#[derive(Debug)]
pub(crate) struct PortalAnswer {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) body: Bytes,
    pub(super) location: Option<&'static str>,
    pub(super) set_cookie: Option<String>,
    pub(super) quota: Option<Usage>,
    pub(super) refusal: Option<Refusal>,
    /// Whether the request body was read to its end (so the connection can be reused).
    pub(super) body_consumed: bool,
}

impl PortalAnswer {
    pub(super) fn html(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: "text/html; charset=utf-8",
            body: Bytes::from(body),
            location: None,
            set_cookie: None,
            quota: None,
            refusal: None,
            body_consumed: false,
        }
    }

    pub(super) fn redirect(to: &'static str) -> Self {
        Self {
            location: Some(to),
            ..Self::html(303, String::new())
        }
    }

    /// A refusal page: what was refused and why, in Indonesian.
    pub(super) fn refused(status: u16, refusal: Refusal, what: &str, why: &str) -> Self {
        Self {
            refusal: Some(refusal),
            ..Self::html(status, refusal_page(what, why, refusal))
        }
    }

    /// A refusal of the search's JSON call, in the DWH envelope the page's script reads.
    pub(super) fn refused_json(reject: &Rejection, quota: Option<Usage>) -> Self {
        Self {
            status: reject.refusal.rest_status(),
            content_type: "application/json",
            body: Bytes::from(
                reject
                    .refusal
                    .body_with_quota(&reject.detail, quota.map(Usage::remaining)),
            ),
            location: None,
            set_cookie: None,
            quota,
            refusal: Some(reject.refusal),
            body_consumed: reject.body_consumed,
        }
    }

    pub(super) fn consumed(mut self) -> Self {
        self.body_consumed = true;
        self
    }
}

pub(super) fn header<'a>(session: &'a Session, name: &str) -> Option<&'a str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

/// Adds the portal's security headers to an answer.
pub(crate) fn secure(resp: &mut ResponseHeader) -> Result<()> {
    for (name, value) in SECURITY_HEADERS {
        resp.insert_header(name, value)?;
    }
    Ok(())
}

impl Gateway {
    /// Writes an answer the gateway made itself, with the portal's headers.
    pub(super) async fn write_portal(
        &self,
        session: &mut Session,
        answer: PortalAnswer,
    ) -> Result<()> {
        let mut resp = ResponseHeader::build(answer.status, Some(10))?;
        resp.insert_header(http::header::CONTENT_TYPE, answer.content_type)?;
        resp.set_content_length(answer.body.len())?;
        secure(&mut resp)?;
        if let Some(to) = answer.location {
            resp.insert_header(http::header::LOCATION, to)?;
        }
        if let Some(c) = &answer.set_cookie {
            resp.insert_header(http::header::SET_COOKIE, c.as_str())?;
        }
        if let Some(q) = answer.quota {
            resp.insert_header("X-Quota-Limit", q.limit.to_string())?;
            resp.insert_header("X-Quota-Remaining", q.remaining().to_string())?;
        }
        if !answer.body_consumed {
            // Unread body bytes would be taken for the next request: close instead.
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(answer.body), true).await
    }

    /// The header of a proxied portal page: its content type kept unless it is a download.
    /// Upstream headers (its cookies included) are never passed on.
    pub(crate) fn portal_response_header(
        &self,
        upstream: &ResponseHeader,
        ctx: &mut GatewayCtx,
    ) -> Result<ResponseHeader> {
        let status = upstream.status.as_u16();
        let get = |name: http::header::HeaderName| {
            upstream
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = get(http::header::CONTENT_TYPE);
        let disposition = get(http::header::CONTENT_DISPOSITION);
        let Some(portal) = ctx.portal.as_mut() else {
            return ResponseHeader::build(500, None);
        };
        let blocked = if is_download(content_type.as_deref(), disposition.as_deref()) {
            Some(Blocked::Download)
        } else if status != 200 {
            Some(Blocked::Status(status))
        } else if !is_page_type(content_type.as_deref()) {
            Some(Blocked::ContentType)
        } else {
            None
        };
        portal.blocked = blocked;
        let mut resp = match blocked {
            None => {
                let mut r = ResponseHeader::build(200, Some(8))?;
                r.insert_header(
                    http::header::CONTENT_TYPE,
                    content_type.as_deref().unwrap_or("text/html"),
                )?;
                r
            }
            Some(b) => {
                if b == Blocked::Download {
                    tracing::warn!(
                        user.id = ctx.user_id.as_deref().unwrap_or(""),
                        "the DWH portal answered a page with a download; replaced by the refusal page"
                    );
                }
                let mut r =
                    ResponseHeader::build(if b == Blocked::Download { 403 } else { 502 }, Some(8))?;
                r.insert_header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")?;
                r
            }
        };
        secure(&mut resp)?;
        // Framed chunked: the length of a filtered or replaced body is known only at its end.
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        Ok(resp)
    }

    /// The body of a proxied portal page: passed on, or replaced when it was blocked.
    pub(crate) fn portal_page_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GatewayCtx,
    ) {
        let Some(blocked) = ctx.portal.and_then(|p| p.blocked) else {
            return;
        };
        *body = None;
        if end_of_stream {
            let (refusal, why) = match blocked {
                Blocked::Download => (
                    Refusal::NotPermitted,
                    "jawaban portal berupa unduhan berkas; data pada Web Portal hanya dapat dibaca (pasal 30 ayat 2)".to_string(),
                ),
                Blocked::Status(s) => (
                    Refusal::UpstreamUnavailable,
                    format!("portal DWH menjawab HTTP {s}"),
                ),
                Blocked::ContentType => (
                    Refusal::UpstreamInvalid,
                    "portal DWH menjawab dengan jenis isi yang tidak dikenal".to_string(),
                ),
            };
            ctx.refusal = Some(refusal);
            *body = Some(Bytes::from(refusal_page("halaman portal", &why, refusal)));
        }
    }

    /// The answer when the DWH portal could not be reached.
    pub(crate) async fn portal_upstream_failed(
        &self,
        session: &mut Session,
        ctx: &GatewayCtx,
        refusal: Refusal,
    ) -> Result<()> {
        let route = ctx.portal.map_or(PortalRoute::Page, |p| p.route);
        let answer = if route == PortalRoute::Search {
            PortalAnswer::refused_json(
                &Rejection {
                    body_consumed: false,
                    ..Rejection::new(refusal, "")
                },
                ctx.quota.as_ref().map(crate::gateway::QuotaCtx::shown),
            )
        } else {
            PortalAnswer::refused(
                refusal.rest_status(),
                refusal,
                what(route),
                "portal DWH tidak dapat dihubungi",
            )
        };
        self.write_portal(session, answer).await
    }
}

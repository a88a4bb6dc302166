//! The Web Portal channel below `/portal/`: the DWH's browser application, proxied
//! read-only (Permendagri 102/2019 art. 30(2)).
//!
//! The gateway itself serves the login (User ID + password + the registered IP LAN, the
//! same authentication as the web service, with its lockout) and keeps the session: a
//! 256-bit random token in an `HttpOnly; Secure; SameSite=Strict` cookie, stored only as a
//! SHA-256 digest, bound to the User ID, its password hash at login and the client's
//! address, ended by inactivity, by age, by logout, and by a reload that changes the User
//! ID's password, deactivates it, removes it or moves its IP LAN; one active session per
//! User ID. A request with a valid session is
//! classified into a business action: pages and assets are `PortalRead` (not counted), the
//! NIK search is `PortalRead` counted as one hit and filtered exactly like `CALL_NIK`,
//! export/download/bulk endpoints are `PortalExport` and every other write is
//! `PortalWrite`; Cedar refuses the last two (`portal-read-only`), and they are never
//! forwarded. Unknown paths are refused (default deny). An upstream page that turns out to
//! be a download (`Content-Disposition: attachment`, CSV/XLS/PDF) is replaced by the
//! refusal page. Every answer carries `Cache-Control: no-store`, a strict CSP,
//! `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and `nosniff`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use http::Method;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use sha2::{Digest, Sha256};

use gerbang_core::{
    Channel, JsonObject, Nik, Refusal, Rejection, RequestBody, UserStatus, canonical_ip, is_user_id,
};
use gerbang_policy::Action;
use gerbang_quota::Usage;

use crate::gateway::{Gateway, GatewayCtx};
use crate::stages::{nik_reason, user_id_reason};

/// Where the portal lives at the gateway.
pub const PREFIX: &str = "/portal/";

/// The header carrying the authenticated User ID to the DWH portal. Set by the gateway
/// only: client headers are never forwarded, so a client cannot assert one.
pub const IDENTITY_HEADER: &str = "X-Gerbang-Portal-User";

/// The Content-Security-Policy of every portal answer: nothing inline, nothing foreign,
/// no framing, forms post only to the portal.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The security headers every portal answer carries, as (name, value).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    // PKS: no storage of population data anywhere on the way, the browser's cache included.
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
];

const STYLE: &str = include_str!("portal/gerbang.css");

/// What a portal request is, decided from its method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalRoute {
    /// `GET masuk` (or `login`): the gateway's login form.
    LoginPage,
    /// `POST masuk` (or `login`): a login attempt.
    Login,
    /// `POST keluar` (or `logout`): ends the session.
    Logout,
    /// `GET _gerbang.css`: the style of the gateway's own pages.
    Style,
    /// A page or asset of the portal application, read (`PortalRead`, not counted).
    Page,
    /// The NIK search's JSON call (`PortalRead`, one hit, answer filtered).
    Search,
    /// Export, download, print or bulk search (`PortalExport`, always refused).
    Export,
    /// Any other method than GET (`PortalWrite`, always refused).
    Write,
    /// A GET of a path the portal does not have: refused (default deny).
    Unknown,
}

impl PortalRoute {
    /// The business action Cedar decides, for the routes that reach the portal.
    pub fn action(self) -> Option<Action> {
        match self {
            Self::Page | Self::Search | Self::Login => Some(Action::PortalRead),
            Self::Export => Some(Action::PortalExport),
            Self::Write => Some(Action::PortalWrite),
            Self::LoginPage | Self::Logout | Self::Style | Self::Unknown => None,
        }
    }
}

/// Words in a path that mark an export, download, print or bulk endpoint, whatever the
/// method: caught before any other rule so a GET link cannot slip a download through.
const EXPORT_WORDS: &[&str] = &[
    "ekspor", "export", "unduh", "download", "cetak", "print", "pdf", "csv", "xls", "massal",
    "bulk", "batch",
];

/// The portal application's pages and assets (GET only).
const PAGES: &[&str] = &["", "index.html", "app.js", "app.css"];

/// The NIK search's JSON endpoint (POST).
const SEARCH: &str = "api/cari";

/// Classifies a request by its method and its path (without the query string).
pub fn classify(method: &Method, path: &str) -> PortalRoute {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return PortalRoute::Unknown;
    };
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    match rest {
        "masuk" | "login" if get => return PortalRoute::LoginPage,
        "masuk" | "login" if post => return PortalRoute::Login,
        "keluar" | "logout" if post => return PortalRoute::Logout,
        "_gerbang.css" if get => return PortalRoute::Style,
        _ => {}
    }
    let lower = rest.to_ascii_lowercase();
    if EXPORT_WORDS.iter().any(|w| lower.contains(w)) {
        return PortalRoute::Export;
    }
    // Encoded or relative segments could name one path here and another upstream.
    let odd = rest.contains(['%', '\\']) || rest.split('/').any(|s| s == ".." || s == ".");
    if !get {
        return if post && rest == SEARCH && !odd {
            PortalRoute::Search
        } else {
            PortalRoute::Write
        };
    }
    if !odd && PAGES.contains(&rest) {
        PortalRoute::Page
    } else {
        PortalRoute::Unknown
    }
}

/// Whether a request path is the portal's.
pub fn is_portal(path: &str) -> bool {
    path.starts_with(PREFIX) || path == "/portal"
}

/// Whether an upstream answer is a download the portal must not pass on (art. 30(2)):
/// `Content-Disposition: attachment`, or a CSV, spreadsheet or PDF content type.
pub fn is_download(content_type: Option<&str>, disposition: Option<&str>) -> bool {
    if disposition.is_some_and(|d| {
        d.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("attachment"))
    }) {
        return true;
    }
    let Some(mime) = content_type.map(mime) else {
        return false;
    };
    mime == "text/csv"
        || mime == "application/csv"
        || mime == "application/pdf"
        || mime.contains("excel")
        || mime.contains("spreadsheet")
        || mime == "application/octet-stream"
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn mime(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Content types a portal page or asset may have.
pub fn is_page_type(content_type: Option<&str>) -> bool {
    let Some(mime) = content_type.map(mime) else {
        return false;
    };
    matches!(
        mime.as_str(),
        "text/html" | "text/css" | "text/javascript" | "application/javascript" | "image/png"
    )
}

/// Cross-site request check for state-changing requests (login, logout, search): the
/// cookie is `SameSite=Strict` already; a browser must also say the request comes from
/// the portal's own pages. `Sec-Fetch-Site`, which every current browser sends and a page
/// cannot forge, decides when present. Without it `Origin`, when sent, must be this host.
/// (Under `Referrer-Policy: no-referrer` browsers send `Origin: null` on form posts, so
/// `null` passes only with `Sec-Fetch-Site: same-origin`.) Clients that send neither
/// (scripts, tests) still need the session cookie.
pub fn same_origin(host: Option<&str>, origin: Option<&str>, fetch_site: Option<&str>) -> bool {
    if let Some(site) = fetch_site {
        return site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none");
    }
    match origin {
        None => true,
        Some(origin) => {
            let authority = origin.split_once("://").map(|(_, a)| a);
            matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
        }
    }
}

/// The value of cookie `name` in a request's `Cookie` headers, if any.
pub fn cookie<'a>(headers: impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value that hands a browser its session.
pub fn session_cookie(name: &str, token: &str) -> String {
    format!("{name}={token}; Path={PREFIX}; HttpOnly; Secure; SameSite=Strict")
}

/// The `Set-Cookie` value that makes a browser forget its session.
pub fn cleared_cookie(name: &str) -> String {
    format!("{name}=; Path={PREFIX}; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// Why a request's session is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("no session")]
    Missing,
    #[error("the session ended after inactivity or at its maximum age")]
    Expired,
    #[error("the session belongs to another client address")]
    OtherAddress,
}

/// Another session of the same User ID is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the User ID already has an active portal session")]
pub struct SessionActive;

/// A logged-in browser.
#[derive(Debug, Clone)]
struct PortalSession {
    user_id: String,
    /// SHA-256 of the User ID's password hash when it logged in.
    credential: [u8; 32],
    peer: IpAddr,
    created: Instant,
    last_seen: Instant,
}

/// The User ID of a valid session, and what it logged in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOf {
    pub user_id: String,
    credential: [u8; 32],
}

impl SessionOf {
    /// Whether the User ID's password hash is still the one it logged in with: a changed
    /// password (or the same password hashed again) ends the session.
    pub fn same_credential(&self, password_hash: &str) -> bool {
        self.credential == credential(password_hash)
    }
}

fn credential(password_hash: &str) -> [u8; 32] {
    Sha256::digest(password_hash.as_bytes()).into()
}

impl PortalSession {
    fn alive(&self, now: Instant, idle: Duration, absolute: Duration) -> bool {
        now.saturating_duration_since(self.last_seen) < idle
            && now.saturating_duration_since(self.created) < absolute
    }
}

type TokenDigest = [u8; 32];

/// The server-side session store. Tokens are kept only as SHA-256 digests, so the store
/// (or a memory dump of it) cannot be replayed as cookies. At most one session per User
/// ID, so the store holds at most one entry per User ID.
#[derive(Debug)]
pub struct Sessions {
    by_token: DashMap<TokenDigest, PortalSession>,
    by_user: DashMap<String, TokenDigest>,
    idle: Duration,
    absolute: Duration,
}

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A token is 32 random bytes in unpadded base64url: 43 characters.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Sessions {
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Self {
            by_token: DashMap::new(),
            by_user: DashMap::new(),
            idle,
            absolute,
        }
    }

    /// Starts a session for `user_id` at `peer`, which logged in against `password_hash`,
    /// unless one is active; returns the token. An expired session of the same User ID is
    /// replaced.
    pub fn create(
        &self,
        user_id: &str,
        password_hash: &str,
        peer: IpAddr,
        now: Instant,
    ) -> Result<String, SessionActive> {
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let key = digest(&token);
        let session = PortalSession {
            user_id: user_id.to_string(),
            credential: credential(password_hash),
            peer: canonical_ip(peer),
            created: now,
            last_seen: now,
        };
        // Lock order: a `by_user` entry, then `by_token`; `check` never holds a `by_token`
        // guard while it touches `by_user`.
        match self.by_user.entry(user_id.to_string()) {
            Entry::Occupied(mut held) => {
                let old = *held.get();
                let alive = self
                    .by_token
                    .get(&old)
                    .is_some_and(|s| s.alive(now, self.idle, self.absolute));
                if alive {
                    return Err(SessionActive);
                }
                self.by_token.remove(&old);
                self.by_token.insert(key, session);
                held.insert(key);
            }
            Entry::Vacant(free) => {
                self.by_token.insert(key, session);
                free.insert(key);
            }
        }
        Ok(token)
    }

    /// The User ID of a valid session presented from `peer`; records the activity.
    pub fn check(
        &self,
        token: &str,
        peer: IpAddr,
        now: Instant,
    ) -> Result<SessionOf, SessionError> {
        if !well_formed(token) {
            return Err(SessionError::Missing);
        }
        let key = digest(token);
        let expired_user = {
            let Some(mut s) = self.by_token.get_mut(&key) else {
                return Err(SessionError::Missing);
            };
            if s.alive(now, self.idle, self.absolute) {
                if s.peer != canonical_ip(peer) {
                    return Err(SessionError::OtherAddress);
                }
                s.last_seen = s.last_seen.max(now);
                return Ok(SessionOf {
                    user_id: s.user_id.clone(),
                    credential: s.credential,
                });
            }
            s.user_id.clone()
        };
        self.by_token.remove(&key);
        self.by_user.remove_if(&expired_user, |_, k| *k == key);
        Err(SessionError::Expired)
    }

    /// Ends the session of `token`, if it exists; returns its User ID.
    pub fn end(&self, token: &str) -> Option<String> {
        let key = digest(token);
        let (_, s) = self.by_token.remove(&key)?;
        self.by_user.remove_if(&s.user_id, |_, k| *k == key);
        Some(s.user_id)
    }

    /// Ends whatever session `user_id` has (a User ID removed by a reload).
    pub fn end_user(&self, user_id: &str) {
        if let Some((_, key)) = self.by_user.remove(user_id) {
            self.by_token.remove(&key);
        }
    }

    /// After a reload: ends every session whose User ID `snap` no longer has as it logged
    /// in (removed, another password hash, deactivated by its PKS file or a sanction, or
    /// its IP LAN no longer holding the session's address). Run as the new snapshot goes in
    /// force, so a User ID deactivated and reactivated by two reloads does not keep a
    /// session it had before. Returns how many ended.
    pub fn end_changed(&self, snap: &gerbang_policy::Snapshot) -> usize {
        let mut ended = Vec::new();
        self.by_token.retain(|key, s| {
            let valid = snap.user_by_id(&s.user_id).is_some_and(|u| {
                let user = snap.user(u);
                user.status == UserStatus::Aktif
                    && credential(&user.password_hash) == s.credential
                    && user.ip_registered(s.peer)
            });
            if !valid {
                ended.push((s.user_id.clone(), *key));
            }
            valid
        });
        for (user_id, key) in &ended {
            self.by_user.remove_if(user_id, |_, k| k == key);
        }
        ended.len()
    }

    /// Active sessions (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// The portal's settings and sessions, held by the gateway (the sessions shared with the
/// reloader, which ends those a reload invalidates).
#[derive(Debug)]
pub struct Portal {
    pub(crate) sessions: std::sync::Arc<Sessions>,
    pub(crate) upstream_prefix: String,
    pub(crate) cookie_name: String,
}

impl Portal {
    pub fn new(config: &gerbang_core::Portal) -> Self {
        Self {
            sessions: std::sync::Arc::new(Sessions::new(
                config.idle_timeout,
                config.absolute_timeout,
            )),
            upstream_prefix: config.upstream_prefix.clone(),
            cookie_name: config.cookie_name.clone(),
        }
    }

    /// The upstream path of a portal path: the prefix replaced, the query dropped.
    pub fn upstream_path(&self, path: &str) -> String {
        let rest = path.strip_prefix(PREFIX).unwrap_or_default();
        format!("{}{rest}", self.upstream_prefix)
    }
}

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
    status: u16,
    content_type: &'static str,
    body: Bytes,
    location: Option<&'static str>,
    set_cookie: Option<String>,
    quota: Option<Usage>,
    refusal: Option<Refusal>,
    /// Whether the request body was read to its end (so the connection can be reused).
    body_consumed: bool,
}

impl PortalAnswer {
    fn html(status: u16, body: String) -> Self {
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

    fn redirect(to: &'static str) -> Self {
        Self {
            location: Some(to),
            ..Self::html(303, String::new())
        }
    }

    /// A refusal page: what was refused and why, in Indonesian.
    fn refused(status: u16, refusal: Refusal, what: &str, why: &str) -> Self {
        Self {
            refusal: Some(refusal),
            ..Self::html(status, refusal_page(what, why, refusal))
        }
    }

    /// A refusal of the search's JSON call, in the DWH envelope the page's script reads.
    fn refused_json(reject: &Rejection, quota: Option<Usage>) -> Self {
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

    fn consumed(mut self) -> Self {
        self.body_consumed = true;
        self
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"id\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<link rel=\"stylesheet\" href=\"/portal/_gerbang.css\">\n</head>\n<body>\n<header><p class=\"merek\">Gerbang &middot; Portal DWH Dukcapil</p></header>\n<main>\n{main}\n</main>\n</body>\n</html>\n",
        title = escape(title)
    )
}

/// The login form, with a message when a previous attempt failed.
pub fn login_page(message: Option<&str>) -> String {
    let message = message.map_or(String::new(), |m| {
        format!(
            "<p id=\"pesan\" class=\"galat\" role=\"alert\">{}</p>\n",
            escape(m)
        )
    });
    page(
        "Masuk — Portal DWH",
        &format!(
            "<h1>Masuk ke Portal DWH</h1>\n{message}<form method=\"post\" action=\"/portal/masuk\" id=\"masuk\">\n<label for=\"user_id\">User ID</label>\n<input id=\"user_id\" name=\"user_id\" autocomplete=\"username\" required>\n<label for=\"password\">Password</label>\n<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n<button type=\"submit\" id=\"tombol-masuk\">Masuk</button>\n</form>\n<p class=\"catatan\">Akses hanya dari IP LAN yang terdaftar untuk User ID Anda. Data yang ditampilkan hanya dapat dibaca (Permendagri 102/2019 pasal 30 ayat 2).</p>"
        ),
    )
}

/// A refusal page naming what was refused and why.
pub fn refusal_page(what: &str, why: &str, refusal: Refusal) -> String {
    page(
        "Permintaan ditolak — Portal DWH",
        &format!(
            "<h1 id=\"ditolak\">Permintaan ditolak</h1>\n<p><strong>Yang ditolak:</strong> <span id=\"yang-ditolak\">{}</span></p>\n<p><strong>Alasan:</strong> <span id=\"alasan\">{}</span></p>\n<p class=\"kode\">{} (kode {})</p>\n<p><a href=\"/portal/\">Kembali ke portal</a></p>",
            escape(what),
            escape(why),
            escape(refusal.respon()),
            refusal.code()
        ),
    )
}

/// What a refused route was, in words for the person at the browser.
fn what(route: PortalRoute) -> &'static str {
    match route {
        PortalRoute::Export => "ekspor, unduh, cetak atau pencarian massal data",
        PortalRoute::Write => "perubahan data (penulisan)",
        PortalRoute::Search => "pencarian NIK",
        PortalRoute::Login => "masuk ke portal",
        PortalRoute::Unknown => "halaman yang tidak dikenal",
        PortalRoute::Page | PortalRoute::LoginPage | PortalRoute::Logout | PortalRoute::Style => {
            "halaman portal"
        }
    }
}

fn header<'a>(session: &'a Session, name: &str) -> Option<&'a str> {
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
        let now = Instant::now();
        match route {
            PortalRoute::Style => {
                let mut a = PortalAnswer::html(200, STYLE.to_string());
                a.content_type = "text/css; charset=utf-8";
                return Ok(Some(a));
            }
            PortalRoute::LoginPage => {
                let active = token
                    .as_deref()
                    .is_some_and(|t| self.portal.sessions.check(t, peer, now).is_ok());
                return Ok(Some(if active {
                    PortalAnswer::redirect("/portal/")
                } else {
                    PortalAnswer::html(200, login_page(None))
                }));
            }
            PortalRoute::Login => return self.portal_login(session, ctx, peer).await.map(Some),
            PortalRoute::Logout => {
                // Only from the address the session is bound to: a replayed cookie cannot
                // end someone else's session.
                let ended = token.as_deref().and_then(|t| {
                    self.portal.sessions.check(t, peer, now).ok()?;
                    self.portal.sessions.end(t)
                });
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
            | PortalRoute::Export
            | PortalRoute::Write
            | PortalRoute::Unknown => {}
        }

        let checked = match token.as_deref() {
            Some(t) => self.portal.sessions.check(t, peer, now),
            None => Err(SessionError::Missing),
        };
        let logged_in = match checked {
            Ok(s) => s,
            Err(e) => {
                if e == SessionError::OtherAddress {
                    tracing::warn!(peer = %peer, "portal session cookie presented from another address; refused");
                }
                return Ok(Some(self.no_session(route, is_get, e)));
            }
        };
        let user_id = logged_in.user_id.clone();
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
        // IP LAN that no longer covers this address, a changed password or a deactivated
        // User ID ends the session; logging in again is checked afresh.
        let ended = |refusal: Refusal, status: u16, why: &str| {
            if let Some(t) = token.as_deref() {
                self.portal.sessions.end(t);
            }
            tracing::info!(target: "gerbang::portal", peer = %peer, user.id = user_id.as_str(), reason = refusal.name(), "portal session ended by a change of the User ID");
            let mut a = PortalAnswer::refused(status, refusal, what(route), why);
            a.set_cookie = Some(cleared_cookie(&self.portal.cookie_name));
            Ok(Some(a))
        };
        let Some(user) = snap
            .user_by_id(&user_id)
            .filter(|u| snap.user(*u).ip_registered(peer))
        else {
            return ended(
                Refusal::IpMismatch,
                403,
                "User ID ini tidak lagi terdaftar untuk alamat ini; silakan masuk lagi",
            );
        };
        if !logged_in.same_credential(&snap.user(user).password_hash) {
            return ended(
                Refusal::LoginFailed,
                401,
                "password User ID ini telah diubah sejak Anda masuk; sesi diakhiri, silakan masuk lagi",
            );
        }
        if snap.user(user).status != UserStatus::Aktif {
            return ended(
                Refusal::UserInactive,
                403,
                "User ID ini dinonaktifkan; sesi diakhiri",
            );
        }
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
    fn no_session(&self, route: PortalRoute, is_get: bool, e: SessionError) -> PortalAnswer {
        let why = match e {
            SessionError::Missing => "belum masuk; silakan masuk dengan User ID Anda",
            SessionError::Expired => {
                "sesi telah berakhir (tidak aktif terlalu lama atau melewati batas waktu); silakan masuk lagi"
            }
            SessionError::OtherAddress => {
                "sesi ini terikat pada alamat komputer lain; silakan masuk dari komputer Anda"
            }
        };
        let mut answer = match (route, e) {
            (
                PortalRoute::Page | PortalRoute::Unknown,
                SessionError::Missing | SessionError::Expired,
            ) if is_get => PortalAnswer::redirect("/portal/masuk"),
            (PortalRoute::Search, _) => PortalAnswer::refused_json(
                &Rejection {
                    body_consumed: false,
                    ..Rejection::new(Refusal::LoginFailed, why)
                },
                None,
            ),
            _ => PortalAnswer::refused(401, Refusal::LoginFailed, what(route), why),
        };
        if e == SessionError::Expired {
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
        let password_hash = &snap.user(user).password_hash;
        match self
            .portal
            .sessions
            .create(&user_id, password_hash, peer, Instant::now())
        {
            Ok(token) => {
                tracing::info!(target: "gerbang::portal", peer = %peer, user.id = user_id.as_str(), "portal login");
                let mut a = PortalAnswer::redirect("/portal/").consumed();
                a.set_cookie = Some(session_cookie(&self.portal.cookie_name, &token));
                Ok(a)
            }
            Err(SessionActive) => {
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

    /// Writes an answer the gateway made itself, with the portal's headers.
    async fn write_portal(&self, session: &mut Session, answer: PortalAnswer) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn classification_is_by_method_and_path() {
        use PortalRoute::*;
        let cases = [
            (Method::GET, "/portal/", Page),
            (Method::GET, "/portal/app.js", Page),
            (Method::GET, "/portal/app.css", Page),
            (Method::POST, "/portal/api/cari", Search),
            (Method::GET, "/portal/api/cari", Unknown),
            (Method::GET, "/portal/masuk", LoginPage),
            (Method::POST, "/portal/login", Login),
            (Method::POST, "/portal/keluar", Logout),
            (Method::GET, "/portal/keluar", Unknown),
            (Method::POST, "/portal/ekspor/csv", Export),
            (Method::GET, "/portal/ekspor/csv", Export),
            (Method::GET, "/portal/data.CSV", Export),
            (Method::POST, "/portal/ekspor/pdf", Export),
            (Method::GET, "/portal/cetak", Export),
            (Method::POST, "/portal/api/cari-massal", Export),
            (Method::DELETE, "/portal/api/cari-massal", Export),
            (Method::POST, "/portal/ubah-alamat", Write),
            (Method::PUT, "/portal/api/penduduk", Write),
            (Method::PATCH, "/portal/api/cari", Write),
            (Method::DELETE, "/portal/", Write),
            (Method::HEAD, "/portal/", Write),
            (Method::POST, "/portal/api/./cari", Write),
            (Method::GET, "/portal/admin", Unknown),
            (Method::GET, "/portal/%61pp.js", Unknown),
            (Method::GET, "/portal/../dukcapil", Unknown),
        ];
        for (method, path, want) in cases {
            assert_eq!(classify(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn writes_and_exports_are_the_refused_actions() {
        assert_eq!(PortalRoute::Export.action(), Some(Action::PortalExport));
        assert_eq!(PortalRoute::Write.action(), Some(Action::PortalWrite));
        assert_eq!(PortalRoute::Search.action(), Some(Action::PortalRead));
        assert_eq!(PortalRoute::Unknown.action(), None);
    }

    #[test]
    fn downloads_are_recognised() {
        assert!(is_download(
            Some("text/html"),
            Some("attachment; filename=\"a.csv\"")
        ));
        assert!(is_download(Some("text/html"), Some("ATTACHMENT")));
        assert!(is_download(Some("text/csv; charset=utf-8"), None));
        assert!(is_download(Some("application/pdf"), None));
        assert!(is_download(Some("application/vnd.ms-excel"), None));
        assert!(is_download(
            Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            None
        ));
        assert!(!is_download(
            Some("text/html; charset=utf-8"),
            Some("inline")
        ));
        assert!(!is_download(Some("text/javascript"), None));
        assert!(is_page_type(Some("text/css; charset=utf-8")));
        assert!(!is_page_type(Some("application/json")));
        assert!(!is_page_type(None));
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(same_origin(Some("127.0.0.1:8443"), None, None));
        assert!(same_origin(
            Some("127.0.0.1:8443"),
            Some("https://127.0.0.1:8443"),
            Some("same-origin")
        ));
        assert!(!same_origin(
            Some("127.0.0.1:8443"),
            Some("https://evil.example"),
            None
        ));
        assert!(!same_origin(Some("127.0.0.1:8443"), Some("null"), None));
        assert!(same_origin(
            Some("127.0.0.1:8443"),
            Some("null"),
            Some("same-origin")
        ));
        assert!(!same_origin(
            Some("127.0.0.1:8443"),
            Some("https://127.0.0.1:8443"),
            Some("cross-site")
        ));
        assert!(!same_origin(
            Some("127.0.0.1:8443"),
            None,
            Some("cross-site")
        ));
        assert!(!same_origin(
            Some("127.0.0.1:8443"),
            None,
            Some("same-site")
        ));
    }

    #[test]
    fn cookies_are_found_and_set_strictly() {
        let headers = ["a=1; gerbang_portal=abc ; b=2", "c=3"];
        assert_eq!(cookie(headers.into_iter(), "gerbang_portal"), Some("abc"));
        assert_eq!(cookie(headers.into_iter(), "c"), Some("3"));
        assert_eq!(cookie(headers.into_iter(), "gerbang"), None);
        let set = session_cookie("gerbang_portal", "tok");
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/portal/"] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(cleared_cookie("x").contains("Max-Age=0"));
    }

    #[test]
    fn sessions_are_bound_to_user_and_address_and_expire() {
        let idle = Duration::from_secs(60);
        let store = Sessions::new(idle, Duration::from_secs(600));
        let t0 = Instant::now();
        let token = store
            .create("u1", "hash-1", ip("10.0.0.1"), t0)
            .expect("first");
        assert_eq!(token.len(), 43);
        let session = store
            .check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(30))
            .expect("valid");
        assert_eq!(session.user_id, "u1");
        // The password hash it logged in with: another one (a changed password) ends it.
        assert!(session.same_credential("hash-1"));
        assert!(!session.same_credential("hash-2"));
        // IPv4 seen through an IPv4-mapped socket is the same client.
        assert!(store.check(&token, ip("::ffff:10.0.0.1"), t0).is_ok());
        assert_eq!(
            store.check(&token, ip("10.0.0.2"), t0),
            Err(SessionError::OtherAddress)
        );
        // One session per User ID, from anywhere.
        assert_eq!(
            store.create("u1", "hash-1", ip("10.0.0.1"), t0 + Duration::from_secs(31)),
            Err(SessionActive)
        );
        // Activity at 30 s keeps it alive until 90 s; at 91 s it is gone.
        assert!(
            store
                .check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(89))
                .is_ok()
        );
        assert_eq!(
            store.check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(150)),
            Err(SessionError::Expired)
        );
        assert_eq!(
            store.check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(150)),
            Err(SessionError::Missing)
        );
        assert!(store.is_empty());
        let again = store
            .create(
                "u1",
                "hash-1",
                ip("10.0.0.1"),
                t0 + Duration::from_secs(151),
            )
            .expect("after expiry");
        assert_ne!(again, token);
        assert_eq!(
            store.check("not-a-token", ip("10.0.0.1"), t0),
            Err(SessionError::Missing)
        );
    }

    #[test]
    fn sessions_end_at_their_absolute_age_and_on_logout() {
        let store = Sessions::new(Duration::from_secs(60), Duration::from_secs(100));
        let t0 = Instant::now();
        let token = store
            .create("u1", "hash-1", ip("10.0.0.1"), t0)
            .expect("first");
        for s in [50, 95] {
            assert!(
                store
                    .check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(s))
                    .is_ok()
            );
        }
        assert_eq!(
            store.check(&token, ip("10.0.0.1"), t0 + Duration::from_secs(100)),
            Err(SessionError::Expired)
        );
        let token = store
            .create("u1", "hash-1", ip("10.0.0.1"), t0)
            .expect("fresh");
        // A stale session of the same user is replaced, not kept beside the new one.
        let store2 = Sessions::new(Duration::from_secs(1), Duration::from_secs(100));
        let _old = store2
            .create("u2", "hash-1", ip("10.0.0.1"), t0)
            .expect("old");
        let _new = store2
            .create("u2", "hash-1", ip("10.0.0.1"), t0 + Duration::from_secs(5))
            .expect("stale replaced");
        assert_eq!(store2.len(), 1);
        assert_eq!(store.end(&token).as_deref(), Some("u1"));
        assert!(store.is_empty());
        assert!(store.create("u1", "hash-1", ip("10.0.0.1"), t0).is_ok());
        store.end_user("u1");
        assert!(store.is_empty());
    }

    #[test]
    fn pages_escape_and_say_why() {
        let page = refusal_page("ekspor <csv>", "pasal 30 ayat 2", Refusal::NotPermitted);
        assert!(page.contains("ekspor &lt;csv&gt;"));
        assert!(page.contains("pasal 30 ayat 2"));
        assert!(page.contains("Akses Tidak Diizinkan oleh PKS"));
        assert!(!page.contains("<script") && !page.contains("style="));
        let login = login_page(Some("Login Gagal: <x>"));
        assert!(login.contains("Login Gagal: &lt;x&gt;"));
        assert!(login.contains("action=\"/portal/masuk\""));
    }

    #[test]
    fn upstream_paths_swap_the_prefix() {
        let portal = Portal::new(&gerbang_core::Portal {
            upstream_prefix: "/dwh/web/".into(),
            ..gerbang_core::Portal::default()
        });
        assert_eq!(
            portal.upstream_path("/portal/api/cari"),
            "/dwh/web/api/cari"
        );
        assert_eq!(portal.upstream_path("/portal/"), "/dwh/web/");
    }
}

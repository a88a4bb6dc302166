//! The Web Portal channel below `/portal/`: the DWH's browser application, proxied
//! read-only (Permendagri 102/2019 art. 30(2)).
//!
//! The gateway itself serves the login (User ID + password + the registered IP LAN, the
//! same authentication as the web service, with its lockout) and keeps the session: a
//! 256-bit random token in an `HttpOnly; Secure; SameSite=Strict` cookie, stored only as a
//! SHA-256 digest, bound to the User ID and the client's address, ended by inactivity, by
//! age, by logout, and by a reload that changes the User ID's password, deactivates it,
//! removes it or moves its IP LAN; one active session per User ID. The sessions live in
//! this process, or in Redis for every instance behind a balancer (`crate::shared`): a
//! session is then valid on every instance, and with Redis unreachable none is (a browser
//! is logged out, the login page says the service is unavailable). A request with a valid
//! session is
//! classified into a business action: pages and assets are `PortalRead` (not counted), the
//! NIK search is `PortalRead` counted as one hit and filtered exactly like `CALL_NIK`,
//! export/download/bulk endpoints are `PortalExport` and every other write is
//! `PortalWrite`; Cedar refuses the last two (`portal-read-only`), and they are never
//! forwarded. The data balikan pages (`balikan`, its preview, send and form) are the
//! gateway's own, decided as `SubmitBalikan`, and never reach the DWH's portal application
//! (`balikan`). Unknown paths are refused (default deny). An upstream page that turns out to
//! be a download (`Content-Disposition: attachment`, CSV/XLS/PDF) is replaced by the
//! refusal page. Every answer carries `Cache-Control: no-store`, a strict CSP,
//! `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and `nosniff`.

mod answer;
mod balikan;
mod flow;
mod page;
mod route;
mod session;
mod upload;

pub(crate) use answer::{PortalCtx, secure};
pub use route::{PortalRoute, classify, is_download, is_page_type, is_portal, same_origin};
pub use session::{changed_users, cleared_cookie, cookie, session_cookie};

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

/// The portal's settings and sessions, held by the gateway (the sessions shared with the
/// reloader, which ends those a reload invalidates).
#[derive(Debug)]
pub struct Portal {
    pub(crate) sessions: std::sync::Arc<dyn gerbang_shared::SessionStore>,
    pub(crate) upstream_prefix: String,
    pub(crate) cookie_name: String,
}

impl Portal {
    pub fn new(
        config: &gerbang_core::Portal,
        sessions: std::sync::Arc<dyn gerbang_shared::SessionStore>,
    ) -> Self {
        Self {
            sessions,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_paths_swap_the_prefix() {
        let settings = gerbang_core::Portal {
            upstream_prefix: "/dwh/web/".into(),
            ..gerbang_core::Portal::default()
        };
        let shared = crate::shared::SharedState::embedded(
            gerbang_shared::LockoutSettings {
                max_failures: std::num::NonZeroU32::MIN,
                window: settings.idle_timeout,
                lockout: settings.idle_timeout,
            },
            gerbang_shared::SessionSettings {
                idle: settings.idle_timeout,
                absolute: settings.absolute_timeout,
                new_login: gerbang_shared::NewLogin::RefusedWhileActive,
            },
        );
        let portal = Portal::new(&settings, shared.sessions);
        assert_eq!(
            portal.upstream_path("/portal/api/cari"),
            "/dwh/web/api/cari"
        );
        assert_eq!(portal.upstream_path("/portal/"), "/dwh/web/");
    }
}

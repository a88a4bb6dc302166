//! The data plane: a pingora service in front of the DWH Terpusat. For every request it
//! identifies the caller from the TCP peer and the body, authenticates (User ID + password +
//! registered IP LAN), asks the policy for a decision, forwards allowed lookups over pooled
//! keep-alive connections with `ip_user` set to the real peer, and releases the DWH's answer
//! only filtered to the elements the PKS grants. Below `/portal/` it serves the Web Portal
//! channel read-only (art. 30(2)): its own login and sessions, and only reads and the
//! counted, filtered NIK search reach the DWH.
#![forbid(unsafe_code)]

mod admin;
mod answer;
mod balikan;
mod certs;
mod forward;
mod framing;
mod gateway;
mod listener;
mod metrics;
mod passwords;
mod portal;
mod proxy_protocol;
mod record;
mod reload;
mod route;
mod sam;
mod server;
mod shared;
mod stages;
mod upgrade;

pub use gateway::{Gateway, GatewayCtx};
pub use metrics::Metrics;
pub use portal::{
    CSP, IDENTITY_HEADER as PORTAL_IDENTITY_HEADER, PortalRoute, SECURITY_HEADERS,
    classify as classify_portal, is_download,
};
pub use record::AuditOpenError;
pub use reload::{ReloadSummary, Reloader};
pub use route::{is_balikan, route};
pub use server::{ServeError, TlsError, serve};
pub use shared::SharedState;
pub use upgrade::TakeoverError;

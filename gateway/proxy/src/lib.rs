//! The data plane: a pingora service in front of the DWH Terpusat. For every request it
//! identifies the caller from the TCP peer and the body, authenticates (User ID + password +
//! registered IP LAN), asks the policy for a decision, forwards allowed lookups over pooled
//! keep-alive connections with `ip_user` set to the real peer, and releases the DWH's answer
//! only filtered to the elements the PKS grants.
#![forbid(unsafe_code)]

mod admin;
mod gateway;
mod metrics;
mod record;
mod reload;
mod route;
mod sam;
mod server;

pub use gateway::{Gateway, GatewayCtx};
pub use metrics::Metrics;
pub use reload::{ReloadSummary, Reloader};
pub use route::route;
pub use server::{ServeError, serve};

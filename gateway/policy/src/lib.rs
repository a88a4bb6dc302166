//! Who is asking and what they may see. Authentication (User ID + password + registered IP
//! LAN; the lockouts are counted by the caller) and the decision over an immutable [`Snapshot`] of the
//! PKS files. The decision is a plain function over plain data so it is tested without a
//! socket. Cedar decides, over rules Ditjen writes in `policies/`.
#![forbid(unsafe_code)]

mod auth;
mod decision;
mod engine;
mod grant;
mod snapshot;

pub use auth::{
    Attempt, Authenticator, Credentials, Precheck, SlowCheck, hash_password, locked_out,
};
pub use decision::{Action, Decision, Request, authorize, authorize_traced, decide};
pub use engine::{Facts, PolicyEngine, SCHEMA_FILE};
pub use grant::{CHANNELS, Grant, channels_of, grant};
pub use snapshot::{
    Reuse, Snapshot, UserRef, load_snapshot, reload_snapshot, reload_snapshot_with,
};

#[cfg(test)]
mod tests;

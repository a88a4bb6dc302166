//! State that several gateway instances share through Redis, so that behind a balancer
//! they act as one gateway: Web Portal sessions, the card readers' replay nonces, failed
//! logins and lockouts, and sanctions. Each piece has its single-instance equivalent behind
//! the same trait, so one instance without Redis works as before, and a stated behaviour
//! when Redis is unreachable that never widens access.
//!
//! Redis is one server or a master found through Redis Sentinel ([`RedisTarget`]); the
//! [`Redis`] link follows a failover. The quota store (`gerbang-quota`) uses the same link.
//! `docs/gateway.md` ("Several instances") describes the keys, the outage behaviour and
//! what a failover can lose.
#![forbid(unsafe_code)]

mod clock;
mod health;
mod link;
mod lockouts;
mod lookups;
mod nonces;
mod sanctions;
mod sessions;
mod target;

pub use clock::Ticks;
pub use health::{Health, HealthMessages};
pub use link::{Link, Redis, Request, ScriptCall, Unavailable};
pub use lockouts::{
    EmbeddedLockouts, LockoutSettings, LockoutStore, MAX_ADDRESSES, RedisLockouts, Subject,
};
pub use lookups::{EmbeddedLookups, LOOKUP_QUEUE, LookupMemory, LookupStoreError, RedisLookups};
pub use nonces::{DEFAULT_MAX_NONCES_PER_SAM, EmbeddedNonces, NonceStore, RedisNonces, Seen};
pub use sanctions::{EmbeddedSanctions, RedisSanctions, SanctionSet, SanctionStore};
pub use sessions::{
    EmbeddedSessions, NewLogin, RedisSessions, SessionError, SessionSettings, SessionStore,
    StartError,
};
pub use target::{RedisTarget, SENTINEL_PORT, SentinelTarget, TargetError};

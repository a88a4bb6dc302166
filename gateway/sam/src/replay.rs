//! The replay cache: the nonces each SAM used within the skew window. It lives in
//! `gerbang-shared`, beside the Redis one several sidecars share (`RedisNonces`).

pub use gerbang_shared::{DEFAULT_MAX_NONCES_PER_SAM, EmbeddedNonces as ReplayCache, Seen};

//! Card readers (Permendagri 102/2019 art. 24–26; juknis §4): a reader may be used only
//! with a SAM card Ditjen personalised and activated, it checks the fingerprint 1:1
//! locally, it belongs to one Pengguna, and its SAM is active only while the PKS is.
//!
//! This crate is the SAM sidecar (`gerbang-sam`) that validates every reader-originated
//! request for the gateway, and the gateway's client to it: the canonical string a reader
//! signs, the registry of SAM public keys built from the PKS files, the replay cache, the
//! validation as a plain function, the HTTP server with its metrics and reload, the pooled
//! fail-closed client, and the reader's key file.
#![forbid(unsafe_code)]

mod canonical;
mod client;
mod keyfile;
mod metrics;
mod registry;
mod replay;
mod server;
mod settings;
mod validate;

pub use canonical::{
    Biometric, HEADER_BIOMETRIC, HEADER_CONTENT_DIGEST, HEADER_ID, HEADER_NONCE, HEADER_PREFIX,
    HEADER_SIGNATURE, HEADER_TIMESTAMP, HEADERS, MAX_HEADER_VALUE, MAX_READER_PATH, NONCE_LEN,
    SamHeaders, SignInput, body_sha256_hex, canonical_string, content_digest,
    content_digest_sha256_hex, new_nonce, sign,
};
pub use client::{SamClient, SamUnavailable};
pub use keyfile::{KeyFileError, ReaderKey, valid_sam_id};
pub use metrics::Metrics;
pub use registry::{PksEntry, Registry, SamEntry};
pub use replay::{DEFAULT_MAX_NONCES_PER_SAM, Replay, ReplayCache, Seen};
pub use server::{MAX_REQUEST_BYTES, Sidecar, SidecarError, State};
pub use settings::{
    DEFAULT_LISTEN, DEFAULT_POLL, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisUrl,
    Settings, check_key_prefix, check_redis_timeout, check_skew, parse_listen,
};
pub use validate::{
    DEFAULT_SKEW_SECS, Freshness, ValidateRequest, Validator, Verdict, VerdictWire, pks_not_active,
    sam_not_active, unknown_sam, validate,
};

//! What a card reader signs (docs/sam.md, "How a reader signs a request") and how it sends it.
//!
//! A reader sends five headers: `X-SAM-Id`, `X-SAM-Timestamp` (Unix seconds, decimal),
//! `X-SAM-Nonce` (16–64 characters of `[A-Za-z0-9_-]`), `X-SAM-Biometric` (`match` or
//! `no_match`, the result of its local 1:1 fingerprint check) and `X-SAM-Signature` (the
//! standard base64 of the 64-byte Ed25519 signature) over the canonical string
//!
//! ```text
//! METHOD \n PATH \n hex(sha256(body)) \n TIMESTAMP \n NONCE \n USER_ID \n BIOMETRIC
//! ```
//!
//! joined by single newlines, no spaces. `PATH` is the request target as sent (path and
//! query), so nothing the gateway forwards is left unsigned. A reader may add the standard
//! `Content-Digest: sha-256=:…:` header (RFC 9530) of the body it signed: it is never
//! trusted for acceptance, only to tell an altered body from a bad signature.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer as _, SigningKey};
use rand::TryRngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Prefix of every card-reader header: any header with it makes a request a card-reader
/// request.
pub const HEADER_PREFIX: &str = "x-sam-";
/// The SAM's id as personalised by Ditjen.
pub const HEADER_ID: &str = "x-sam-id";
/// Unix seconds, decimal.
pub const HEADER_TIMESTAMP: &str = "x-sam-timestamp";
/// A value used once per SAM.
pub const HEADER_NONCE: &str = "x-sam-nonce";
/// `match` or `no_match`.
pub const HEADER_BIOMETRIC: &str = "x-sam-biometric";
/// Standard base64 of the 64-byte Ed25519 signature.
pub const HEADER_SIGNATURE: &str = "x-sam-signature";
/// The five headers a reader sends, in the order of [`SamHeaders`].
pub const HEADERS: [&str; 5] = [
    HEADER_ID,
    HEADER_TIMESTAMP,
    HEADER_NONCE,
    HEADER_BIOMETRIC,
    HEADER_SIGNATURE,
];
/// The standard body digest header (RFC 9530), optional.
pub const HEADER_CONTENT_DIGEST: &str = "content-digest";

/// Shortest and longest nonce.
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 16..=64;

/// Longest request target (path and query) a reader request may have: a DWH path is under
/// a hundred bytes. The gateway refuses a longer one before asking the sidecar, and the
/// sidecar's question stays far below its own limit.
pub const MAX_READER_PATH: usize = 2048;

/// Longest value of an `X-SAM-*` header: the longest valid one is the 88-character
/// signature. A longer one cannot be in its documented form.
pub const MAX_HEADER_VALUE: usize = 128;

/// The reader's local 1:1 fingerprint result (juknis §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Biometric {
    Match,
    NoMatch,
}

impl Biometric {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::NoMatch => "no_match",
        }
    }

    /// Parses a header value (exactly `match` or `no_match`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "match" => Some(Self::Match),
            "no_match" => Some(Self::NoMatch),
            _ => None,
        }
    }
}

/// The five `X-SAM-*` header values as received, not yet checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamHeaders {
    pub sam_id: String,
    pub timestamp: String,
    pub nonce: String,
    pub biometric: String,
    pub signature: String,
}

impl SamHeaders {
    /// The values in the order of [`HEADERS`].
    pub fn values(&self) -> [&str; 5] {
        [
            &self.sam_id,
            &self.timestamp,
            &self.nonce,
            &self.biometric,
            &self.signature,
        ]
    }

    /// The headers as a reader sends them: `(name, value)` in the order of [`HEADERS`],
    /// names in their usual spelling (`X-SAM-Id`…).
    pub fn into_pairs(self) -> Vec<(&'static str, String)> {
        vec![
            ("X-SAM-Id", self.sam_id),
            ("X-SAM-Timestamp", self.timestamp),
            ("X-SAM-Nonce", self.nonce),
            ("X-SAM-Biometric", self.biometric),
            ("X-SAM-Signature", self.signature),
        ]
    }

    /// Builds the set from the values in the order of [`HEADERS`].
    pub fn from_values([sam_id, timestamp, nonce, biometric, signature]: [String; 5]) -> Self {
        Self {
            sam_id,
            timestamp,
            nonce,
            biometric,
            signature,
        }
    }
}

/// The canonical string (docs/sam.md, "How a reader signs a request").
pub fn canonical_string(
    method: &str,
    path: &str,
    body_sha256_hex: &str,
    timestamp: &str,
    nonce: &str,
    user_id: &str,
    biometric: &str,
) -> String {
    [
        method,
        path,
        body_sha256_hex,
        timestamp,
        nonce,
        user_id,
        biometric,
    ]
    .join("\n")
}

/// Lower-case hex of the SHA-256 of a body.
pub fn body_sha256_hex(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The `Content-Digest` value of a body: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// The SHA-256 a `Content-Digest` value names, as lower-case hex; `None` when it names
/// none (other algorithms only) or is malformed.
pub fn content_digest_sha256_hex(value: &str) -> Option<String> {
    value.split(',').find_map(|member| {
        let (name, rest) = member.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("sha-256") {
            return None;
        }
        let b64 = rest.trim().strip_prefix(':')?.strip_suffix(':')?;
        let bytes = STANDARD.decode(b64).ok()?;
        (bytes.len() == 32).then(|| hex(&bytes))
    })
}

/// A fresh random nonce: 24 characters of base64url (18 random bytes).
pub fn new_nonce() -> Result<String, rand::rand_core::OsError> {
    let mut bytes = [0u8; 18];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What a reader puts into one request besides its body.
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    pub sam_id: &'a str,
    pub method: &'a str,
    /// Path and query, as sent.
    pub path: &'a str,
    pub body: &'a [u8],
    pub user_id: &'a str,
    pub biometric: Biometric,
    /// Unix seconds.
    pub timestamp: i64,
    pub nonce: &'a str,
}

/// Signs a request as a reader does and returns the five header values.
pub fn sign(key: &SigningKey, input: &SignInput<'_>) -> SamHeaders {
    let timestamp = input.timestamp.to_string();
    let message = canonical_string(
        input.method,
        input.path,
        &body_sha256_hex(input.body),
        &timestamp,
        input.nonce,
        input.user_id,
        input.biometric.as_str(),
    );
    let signature = key.sign(message.as_bytes());
    SamHeaders {
        sam_id: input.sam_id.to_string(),
        timestamp,
        nonce: input.nonce.to_string(),
        biometric: input.biometric.as_str().to_string(),
        signature: STANDARD.encode(signature.to_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_string_is_newline_joined() {
        let s = canonical_string("POST", "/a?b=1", "ff", "1700000000", "n", "u", "match");
        assert_eq!(s, "POST\n/a?b=1\nff\n1700000000\nn\nu\nmatch");
    }

    #[test]
    fn sha256_of_empty_body_is_the_known_value() {
        assert_eq!(
            body_sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn content_digest_round_trips_and_ignores_other_algorithms() {
        let body = br#"{"nik":"1"}"#;
        let header = content_digest(body);
        assert_eq!(
            content_digest_sha256_hex(&header).as_deref(),
            Some(body_sha256_hex(body).as_str())
        );
        let both = format!("sha-512=:AAAA:, {header}");
        assert_eq!(
            content_digest_sha256_hex(&both).as_deref(),
            Some(body_sha256_hex(body).as_str())
        );
        assert_eq!(content_digest_sha256_hex("sha-512=:AAAA:"), None);
        assert_eq!(content_digest_sha256_hex("sha-256=:AAAA:"), None);
        assert_eq!(content_digest_sha256_hex("garbage"), None);
    }

    #[test]
    fn nonces_are_fresh_and_in_the_allowed_alphabet() {
        let a = new_nonce().expect("os rng");
        let b = new_nonce().expect("os rng");
        assert_ne!(a, b);
        assert!(NONCE_LEN.contains(&a.len()));
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}

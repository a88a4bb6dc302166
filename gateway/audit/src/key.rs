//! The audit key: the secret that MACs every log line and digests every NIK. It comes from a
//! file or the environment, never from the repository or the configuration, so that whoever
//! can read the config or the log cannot forge records or reverse a NIK digest.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The environment variable read when no key file is given.
pub const AUDIT_KEY_ENV: &str = "GERBANG_AUDIT_KEY";

/// The shortest key accepted, in bytes: HMAC-SHA256's own block of security.
pub const MIN_KEY_BYTES: usize = 32;

/// Labels that derive the two working keys from the operator's key, so a NIK digest can never
/// be mistaken for (or replayed as) a record MAC.
const RECORD_MAC_LABEL: &[u8] = b"gerbang/audit/record-mac/v1";
const NIK_DIGEST_LABEL: &[u8] = b"gerbang/audit/nik-digest/v1";

/// Why the audit key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither a key file nor the environment variable was given.
    #[error(
        "no audit key: give a key file (audit key_file) or set {AUDIT_KEY_ENV}; \
         make one with `openssl rand -hex 32`"
    )]
    Missing,
    /// The key file could not be read.
    #[error("cannot read the audit key file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The key has fewer than [`MIN_KEY_BYTES`] bytes.
    #[error(
        "the audit key from {origin} has {bytes} bytes, at least {MIN_KEY_BYTES} are needed; \
         make one with `openssl rand -hex 32`"
    )]
    TooShort { origin: String, bytes: usize },
}

/// The operator's audit key, kept only as the two HMAC keys derived from it. Its `Debug` shows
/// nothing of it and nothing here logs it.
#[derive(Clone)]
pub struct AuditKey {
    record_mac: HmacSha256,
    nik_digest: HmacSha256,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// Loads the key from `file` when given, else from [`AUDIT_KEY_ENV`].
    ///
    /// The material is hex when, less trailing white space, it is an even number of hex digits
    /// (`openssl rand -hex 32 > key`); otherwise its raw bytes are the key (`head -c 32
    /// /dev/urandom > key`). Either way at least [`MIN_KEY_BYTES`] bytes are required.
    pub fn load(file: Option<&Path>) -> Result<Self, KeyError> {
        match file {
            Some(path) => Self::from_file(path),
            None => match std::env::var_os(AUDIT_KEY_ENV) {
                Some(value) => {
                    Self::from_material(value.as_encoded_bytes(), &format!("${AUDIT_KEY_ENV}"))
                }
                None => Err(KeyError::Missing),
            },
        }
    }

    /// Loads the key from a file (hex or raw, as in [`AuditKey::load`]).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let material = std::fs::read(path).map_err(|source| KeyError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        warn_if_readable_by_others(path);
        Self::from_material(&material, &path.display().to_string())
    }

    /// Builds the key from hex or raw material; `origin` names where it came from in errors.
    pub fn from_material(material: &[u8], origin: &str) -> Result<Self, KeyError> {
        let text = material.trim_ascii_end();
        let bytes = match hex_text(text) {
            Some(decoded) => decoded,
            None => material.to_vec(),
        };
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                origin: origin.to_owned(),
                bytes: bytes.len(),
            });
        }
        Ok(Self {
            record_mac: hmac_with(&derive(&bytes, RECORD_MAC_LABEL)),
            nik_digest: hmac_with(&derive(&bytes, NIK_DIGEST_LABEL)),
        })
    }

    /// The keyed digest of a NIK (or No KK): HMAC-SHA256 under a key derived from the audit
    /// key. Logs and reports hold only this, never the number (PKS: no storage of population
    /// data); with the key an investigator can still find every lookup of one person.
    pub fn nik_digest(&self, nik: &str) -> NikDigest {
        let mut mac = self.nik_digest.clone();
        mac.update(nik.as_bytes());
        NikDigest(hex::encode(mac.finalize().into_bytes()))
    }

    /// A fresh HMAC over record lines.
    pub(crate) fn record_mac(&self) -> HmacSha256 {
        self.record_mac.clone()
    }
}

/// The keyed digest of a NIK: 64 lowercase hex digits. It can only be made by
/// [`AuditKey::nik_digest`] (or read back from a log), so a raw NIK cannot end up in a record
/// by mistake.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NikDigest(String);

impl NikDigest {
    /// The digest as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NikDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `text` decoded when it is an even number of hex digits.
fn hex_text(text: &[u8]) -> Option<Vec<u8>> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    hex::decode(text).ok()
}

/// HMAC-SHA256(master, label): one working key per use of the master key.
fn derive(master: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = hmac_with(master);
    mac.update(label);
    mac.finalize().into_bytes().into()
}

fn hmac_with(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length (long ones are hashed first).
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            key.file = %path.display(),
            "the audit key file is readable by group or others; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn hex_and_raw_material_are_both_accepted() {
        let from_hex =
            AuditKey::from_material(format!("{HEX_KEY}\n").as_bytes(), "test").expect("hex key");
        let raw: Vec<u8> = (0u8..32).collect();
        let from_raw = AuditKey::from_material(&raw, "test").expect("raw key");
        // The same 32 bytes, given as hex or raw, are the same key.
        assert_eq!(
            from_hex.nik_digest("3313010101900001"),
            from_raw.nik_digest("3313010101900001")
        );
    }

    #[test]
    fn short_keys_are_refused_with_their_length() {
        let err = AuditKey::from_material(b"0011223344", "the test").expect_err("short");
        assert!(matches!(err, KeyError::TooShort { bytes: 5, .. }), "{err}");
        assert!(err.to_string().contains("the test"));
        let err = AuditKey::from_material(b"too short raw key", "x").expect_err("short");
        assert!(matches!(err, KeyError::TooShort { bytes: 17, .. }));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err =
            AuditKey::from_file(Path::new("/nonexistent/gerbang/audit.key")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/gerbang/audit.key"));
    }

    #[test]
    fn key_file_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.key");
        std::fs::write(&path, format!("{HEX_KEY}\n")).expect("write");
        let key = AuditKey::from_file(&path).expect("key");
        let again = AuditKey::from_material(HEX_KEY.as_bytes(), "x").expect("key");
        assert_eq!(key.nik_digest("1"), again.nik_digest("1"));
    }

    #[test]
    fn nik_digest_is_keyed_hex_and_debug_hides_the_key() {
        let a = AuditKey::from_material(&[7u8; 32], "a").expect("key");
        let b = AuditKey::from_material(&[8u8; 32], "b").expect("key");
        let da = a.nik_digest("3313010101900001");
        assert_eq!(da.as_str().len(), 64);
        assert!(da.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(da, b.nik_digest("3313010101900001"));
        assert_ne!(da, a.nik_digest("3313010101900002"));
        // Not the plain SHA-256 of the number, which anyone could compute.
        use sha2::Digest;
        assert_ne!(
            da.as_str(),
            hex::encode(Sha256::digest(b"3313010101900001"))
        );
        assert_eq!(format!("{a:?}"), "AuditKey(<redacted>)");
    }
}

//! A card reader's private key file, as `gerbang sam keygen` writes it and the reader
//! simulator reads it. The sidecar never reads one: it holds public keys only, from the
//! PKS files.
//!
//! ```toml
//! sam_id = "SAM-3313-000123"
//! private_key = "ed25519:<standard base64 of the 32-byte seed>"
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use rand::TryRngCore as _;
use serde::Deserialize;

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; choose another file or pass --force to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("{}: not a SAM key file: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("the SAM id `{0}` is not 1 to 64 letters, digits, `_`, `.` or `-`")]
    BadId(String),
    #[error("the system's random number generator failed: {0}")]
    Random(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    sam_id: String,
    private_key: String,
}

/// A reader's SAM: its id and Ed25519 signing key.
pub struct ReaderKey {
    pub sam_id: String,
    pub signing: SigningKey,
}

impl std::fmt::Debug for ReaderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("ReaderKey")
            .field("sam_id", &self.sam_id)
            .finish_non_exhaustive()
    }
}

/// Whether a SAM id is acceptable: 1 to 64 letters, digits, `_`, `.` or `-`.
pub fn valid_sam_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl ReaderKey {
    /// A new key pair from the operating system's random source.
    pub fn generate(sam_id: &str) -> Result<Self, KeyFileError> {
        if !valid_sam_id(sam_id) {
            return Err(KeyFileError::BadId(sam_id.to_string()));
        }
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| KeyFileError::Random(e.to_string()))?;
        Ok(Self {
            sam_id: sam_id.to_string(),
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads a key file; one that other users can read or change is refused (it holds the
    /// reader's private key: whoever reads it can sign as the reader).
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        gerbang_core::check_private(path).map_err(|e| KeyFileError::Invalid {
            path: path.to_path_buf(),
            message: e.message,
        })?;
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| KeyFileError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: KeyFile = toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
        if !valid_sam_id(&file.sam_id) {
            return Err(KeyFileError::BadId(file.sam_id));
        }
        let seed: [u8; 32] = file
            .private_key
            .strip_prefix("ed25519:")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                invalid("private_key must be `ed25519:` and the base64 of 32 bytes".to_string())
            })?;
        Ok(Self {
            sam_id: file.sam_id,
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// Writes the key file readable by its owner only (mode 0600). Refuses to replace an
    /// existing file unless `force`.
    pub fn write(&self, path: &Path, force: bool) -> Result<(), KeyFileError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let io = |source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).mode(0o600);
        if force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                io(e)
            }
        })?;
        // A replaced file keeps its old mode; make sure it is the owner's only.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(io)?;
        let text = format!(
            "# Private key of the card reader SAM {id}: it belongs in the reader only.\n# Never put it in a PKS file or a repository; the PKS holds the public key.\nsam_id = \"{id}\"\nprivate_key = \"ed25519:{key}\"\n",
            id = self.sam_id,
            key = STANDARD.encode(self.signing.to_bytes()),
        );
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// The public key as a PKS file writes it: `ed25519:<base64>`.
    pub fn public_key_pks(&self) -> String {
        format!(
            "ed25519:{}",
            STANDARD.encode(self.signing.verifying_key().to_bytes())
        )
    }

    /// The `[[sam]]` table registering this SAM in a PKS file.
    pub fn pks_block(&self, status: &str) -> String {
        format!(
            "[[sam]]\nid = \"{}\"\npublic_key = \"{}\"\nstatus = \"{status}\"\n",
            self.sam_id,
            self.public_key_pks()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn written_keys_load_back_owner_only_and_are_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("reader.key");
        let key = ReaderKey::generate("SAM-UJI-1").expect("key");
        key.write(&path, false).expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = ReaderKey::load(&path).expect("load");
        assert_eq!(back.sam_id, "SAM-UJI-1");
        assert_eq!(back.signing.to_bytes(), key.signing.to_bytes());
        assert!(matches!(
            key.write(&path, false),
            Err(KeyFileError::Exists { .. })
        ));
        let other = ReaderKey::generate("SAM-UJI-2").expect("key");
        other.write(&path, true).expect("forced");
        assert_eq!(ReaderKey::load(&path).expect("load").sam_id, "SAM-UJI-2");
        assert!(!format!("{key:?}").contains(&STANDARD.encode(key.signing.to_bytes())));
    }

    #[test]
    fn bad_ids_and_bad_files_are_refused() {
        assert!(matches!(
            ReaderKey::generate("SAM 1"),
            Err(KeyFileError::BadId(_))
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "sam_id = \"S\"\nprivate_key = \"ed25519:AAAA\"\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = ReaderKey::load(&path).expect_err("short key");
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("reader.key");
        ReaderKey::generate("SAM-UJI-4")
            .expect("key")
            .write(&path, false)
            .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = ReaderKey::load(&path).expect_err("readable by others");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        ReaderKey::load(&path).expect("owner only");
    }

    #[test]
    fn pks_block_parses_as_a_sam_table() {
        let key = ReaderKey::generate("SAM-UJI-3").expect("key");
        let block = key.pks_block("aktif");
        assert!(block.starts_with("[[sam]]\nid = \"SAM-UJI-3\"\npublic_key = \"ed25519:"));
        let v: toml::Value = toml::from_str(&block).expect("toml");
        assert_eq!(v["sam"][0]["status"].as_str(), Some("aktif"));
    }
}

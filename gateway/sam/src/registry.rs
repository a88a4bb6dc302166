//! The sidecar's registry, built from the PKS files as the sanctions in force leave them
//! (art. 45: a deactivated SAM, a frozen or ended PKS; applied by the same code the gateway
//! uses, `gerbang_core::Sanctions`): every SAM with its public key, status and PKS; every
//! User ID with its PKS; and of each PKS what the checks need (Pengguna, status, validity,
//! whether it grants `card_reader`). Public keys only: no secret is ever loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use ed25519_dalek::VerifyingKey;
use gerbang_core::{
    Channel, ConfigError, ConfigErrors, PksSet, PksStatus, SamStatus, Sanctions, Vocabulary,
};

/// One registered SAM.
#[derive(Debug, Clone)]
pub struct SamEntry {
    pub key: VerifyingKey,
    pub status: SamStatus,
    /// Index of its PKS in the registry.
    pub pks: usize,
}

/// What the checks need of one PKS.
#[derive(Debug, Clone)]
pub struct PksEntry {
    pub nomor: String,
    pub pengguna: String,
    pub status: PksStatus,
    pub mulai: NaiveDate,
    pub sampai: NaiveDate,
    /// `metode_akses` lists `card_reader`.
    pub card_reader: bool,
    pub source: PathBuf,
}

impl PksEntry {
    /// Whether `day` (WIB) is inside the agreement's period.
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.mulai <= day && day <= self.sampai
    }
}

/// SAMs, User IDs and their agreements, immutable once built (a reload builds a new one).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    sams: HashMap<String, SamEntry>,
    users: HashMap<String, usize>,
    pks: Vec<PksEntry>,
    /// Sanctions applied to the agreements.
    sanctions: usize,
}

impl Registry {
    /// Builds the registry from a checked PKS set. Loading the set already refuses an
    /// unusable or weak public key; one that still does not decode is an error naming the
    /// file, the line and the SAM, never a SAM that verifies anything.
    pub fn build(set: &PksSet) -> Result<Self, ConfigErrors> {
        let mut registry = Self::default();
        let mut errors = Vec::new();
        for pks in &set.agreements {
            let index = registry.pks.len();
            registry.pks.push(PksEntry {
                nomor: pks.nomor.clone(),
                pengguna: pks.pengguna.clone(),
                status: pks.status,
                mulai: pks.mulai,
                sampai: pks.sampai,
                card_reader: pks.allows_channel(Channel::CardReader),
                source: pks.source.clone(),
            });
            for user in &pks.users {
                registry.users.insert(user.id.clone(), index);
            }
            for sam in &pks.sams {
                let key = VerifyingKey::from_bytes(&sam.public_key)
                    .ok()
                    .filter(|k| !k.is_weak());
                let Some(key) = key else {
                    errors.push(ConfigError {
                        file: pks.source.clone(),
                        line: Some(sam.line),
                        column: None,
                        field: "sam.public_key".to_string(),
                        message: format!(
                            "the public key of SAM `{}` is not a usable Ed25519 key (`gerbang sam keygen` prints one)",
                            sam.id
                        ),
                    });
                    continue;
                };
                registry.sams.insert(
                    sam.id.clone(),
                    SamEntry {
                        key,
                        status: sam.status,
                        pks: index,
                    },
                );
            }
        }
        if errors.is_empty() {
            Ok(registry)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Loads the vocabulary (or the embedded one) and every PKS file of `pks_dir`, checks
    /// them as `gerbang check` does, applies the sanctions file when one is given (a
    /// sanction naming nothing in the PKS files is an error, as in the gateway), and builds
    /// the registry.
    pub fn load(
        pks_dir: &Path,
        vocabulary: Option<&Path>,
        sanctions: Option<&Path>,
    ) -> Result<Self, ConfigErrors> {
        let vocab = match vocabulary {
            Some(path) => Vocabulary::load(path)?,
            None => Vocabulary::embedded(),
        };
        let mut set = PksSet::load_dir(pks_dir, &vocab)?;
        let sanctions = match sanctions {
            Some(path) => Sanctions::load(path)?,
            None => Sanctions::default(),
        };
        // The blocked networks are the gateway's to enforce: the sidecar never sees the
        // reader's address.
        sanctions.apply(&mut set, &mut Vec::new())?;
        let mut registry = Self::build(&set)?;
        registry.sanctions = sanctions.entries.len();
        Ok(registry)
    }

    /// A SAM by id.
    pub fn sam(&self, id: &str) -> Option<&SamEntry> {
        self.sams.get(id)
    }

    /// The PKS of a User ID.
    pub fn user_pks(&self, user_id: &str) -> Option<&PksEntry> {
        self.users.get(user_id).and_then(|&i| self.pks.get(i))
    }

    /// A PKS by index (from [`SamEntry::pks`]).
    pub fn pks(&self, index: usize) -> Option<&PksEntry> {
        self.pks.get(index)
    }

    /// Number of registered SAMs.
    pub fn sam_count(&self) -> usize {
        self.sams.len()
    }

    /// Number of User IDs.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of agreements.
    pub fn pks_count(&self) -> usize {
        self.pks.len()
    }

    /// Number of sanctions applied.
    pub fn sanction_count(&self) -> usize {
        self.sanctions
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZRqpb8Z+dLwDBTqW3nkCw0ZqXYjz6Rqi4AbH5l3eXM";

    /// A synthetic PKS file text.
    pub(crate) fn pks_text(
        nomor: &str,
        pengguna: &str,
        metode: &str,
        dates: (&str, &str),
        status: &str,
        (user, ip): (&str, &str),
        sams: &str,
    ) -> String {
        format!(
            "nomor = \"{nomor}\"\npengguna = \"{pengguna}\"\nnama_pengguna = \"Lembaga Uji\"\njenis_pengguna = \"opd\"\ntingkat = \"pusat\"\ntujuan = \"uji\"\nelemen_data = [\"NIK\", \"NAMA_LGKP\"]\nmetode_akses = {metode}\nkunci_akses = [\"NIK\"]\nmulai = {}\nsampai = {}\nstatus = \"{status}\"\n\n[[user]]\nid = \"{user}\"\npassword_hash = \"{HASH}\"\nip_lan = [\"{ip}\"]\nkuota_harian = 10\nstatus = \"aktif\"\n\n{sams}",
            dates.0, dates.1
        )
    }

    pub(crate) fn build(files: &[(&str, String)]) -> Result<Registry, ConfigErrors> {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.clone()))
            .collect();
        let set = PksSet::parse_all(&files, &Vocabulary::embedded())?;
        Registry::build(&set)
    }

    #[test]
    fn users_and_sams_find_their_pks() {
        let key = crate::ReaderKey::generate("SAM-A").expect("key");
        let text = pks_text(
            "1/A",
            "a",
            r#"["web_service", "card_reader"]"#,
            ("2025-01-01", "2030-12-31"),
            "aktif",
            ("u1", "127.0.0.2"),
            &key.pks_block("nonaktif"),
        );
        let r = build(&[("a.toml", text)]).expect("valid");
        assert_eq!((r.sam_count(), r.user_count(), r.pks_count()), (1, 1, 1));
        let sam = r.sam("SAM-A").expect("sam");
        assert_eq!(sam.status, SamStatus::Nonaktif);
        let pks = r.pks(sam.pks).expect("pks");
        assert_eq!(pks.pengguna, "a");
        assert!(pks.card_reader);
        assert_eq!(r.user_pks("u1").expect("user").nomor, "1/A");
        assert!(r.user_pks("u2").is_none());
    }

    #[test]
    fn the_sanctions_file_deactivates_sams_and_stops_agreements() {
        let key = crate::ReaderKey::generate("SAM-A").expect("key");
        let dir = tempfile::tempdir().expect("dir");
        let pks_dir = dir.path().join("pks");
        std::fs::create_dir(&pks_dir).expect("pks dir");
        let text = pks_text(
            "1/A",
            "a",
            r#"["card_reader"]"#,
            ("2025-01-01", "2030-12-31"),
            "aktif",
            ("u1", "127.0.0.2"),
            &key.pks_block("aktif"),
        );
        std::fs::write(pks_dir.join("a.toml"), text).expect("pks");
        let sanksi = dir.path().join("sanksi.toml");
        let entry = |id: &str, jenis: &str, sasaran: &str| {
            format!(
                "[[sanksi]]\nid = \"{id}\"\njenis = \"{jenis}\"\nsasaran = \"{sasaran}\"\nalasan = \"uji\"\n"
            )
        };
        let loaded = |text: String| {
            std::fs::write(&sanksi, text).expect("sanksi");
            Registry::load(&pks_dir, None, Some(&sanksi))
        };

        let r = loaded("# none\n".into()).expect("no sanction");
        assert_eq!(r.sam("SAM-A").expect("sam").status, SamStatus::Aktif);
        assert_eq!(r.sanction_count(), 0);
        let r = loaded(entry("S-1", "nonaktifkan_sam", "SAM-A")).expect("sam sanction");
        assert_eq!(r.sam("SAM-A").expect("sam").status, SamStatus::Nonaktif);
        assert_eq!(r.sanction_count(), 1);
        for (jenis, status) in [
            ("bekukan_pks", PksStatus::Dibekukan),
            ("akhiri_pks", PksStatus::Diakhiri),
        ] {
            let r = loaded(entry("S-2", jenis, "1/A")).expect(jenis);
            assert_eq!(r.user_pks("u1").expect("user").status, status, "{jenis}");
        }
        // A sanction naming nothing is refused with its line, as in the gateway.
        let err = loaded(entry("S-3", "nonaktifkan_sam", "SAM-Z")).expect_err("unknown");
        assert!(
            err.to_string().contains("sanksi.toml:1") && err.to_string().contains("SAM-Z"),
            "{err}"
        );
        // And without a sanctions file, the PKS files alone.
        let r = Registry::load(&pks_dir, None, None).expect("no file");
        assert_eq!(r.sam("SAM-A").expect("sam").status, SamStatus::Aktif);
    }
}

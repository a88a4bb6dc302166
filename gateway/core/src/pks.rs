//! The PKS file: one TOML file per cooperation agreement, its fields named as in Ditjen's
//! approval table (docs/architecture.md, "The PKS file"), so the person who reads the signed PKS can check the file line
//! by line. Loading parses every file, validates it and checks the set as a whole (unique
//! numbers, User IDs and SAMs, no IP LAN shared by two User IDs), collecting every error.

mod model;
mod parse;
mod set;

pub use model::{
    CertFingerprint, Channel, JenisPengguna, KunciAkses, Pks, PksStatus, Sam, SamStatus, Tingkat,
    USER_ID_MAX_LEN, User, UserStatus, canonical_ip, is_user_id,
};
pub use parse::load_blocklist;
pub use set::{PksCache, PksSet};

#[cfg(test)]
pub(crate) mod tests {
    use std::num::NonZeroU32;
    use std::path::PathBuf;

    use base64::Engine as _;
    use chrono::NaiveDate;

    use super::*;
    use crate::diag::ConfigErrors;
    use crate::element::Vocabulary;

    /// A valid PKS file with one User ID, for other modules' tests.
    pub(crate) fn sample_pks(nomor: &str, user: &str, ip: &str) -> String {
        pks(nomor, user, ip, "")
    }

    pub(crate) const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZRqpb8Z+dLwDBTqW3nkCw0ZqXYjz6Rqi4AbH5l3eXM";

    fn pks(nomor: &str, user: &str, ip: &str, extra: &str) -> String {
        format!(
            r#"nomor = "{nomor}"
pengguna = "contoh"
nama_pengguna = "Dinas Contoh"
jenis_pengguna = "opd"
tingkat = "kabupaten_kota"
tujuan = "uji"
elemen_data = ["NIK", "NAMA_LGKP", "ALAMAT_SEKARANG"]
metode_akses = ["web_service"]
kunci_akses = ["NIK"]
mulai = 2025-01-01
sampai = 2027-12-31
status = "aktif"
{extra}
[[user]]
id = "{user}"
password_hash = "{HASH}"
ip_lan = ["{ip}"]
kuota_harian = 75
status = "aktif"
"#
        )
    }

    fn load(files: &[(&str, String)]) -> Result<PksSet, ConfigErrors> {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.clone()))
            .collect();
        PksSet::parse_all(&files, &Vocabulary::embedded())
    }

    #[test]
    fn loads_a_valid_file_and_expands_groups() {
        let set = load(&[("a.toml", pks("1/A", "u1", "127.0.0.2", ""))]).expect("valid");
        let p = &set.agreements[0];
        let vocab = Vocabulary::embedded();
        assert!(p.elemen_data.contains(vocab.id("KEL_NAME").expect("known")));
        assert!(!p.elemen_data.contains(vocab.id("AGAMA").expect("known")));
        assert!(p.users[0].ip_registered("127.0.0.2".parse().expect("ip")));
        assert!(p.users[0].ip_registered("::ffff:127.0.0.2".parse().expect("ip")));
        assert!(!p.users[0].ip_registered("127.0.0.3".parse().expect("ip")));
        assert!(p.valid_on(NaiveDate::from_ymd_opt(2027, 12, 31).expect("date")));
        assert!(!p.valid_on(NaiveDate::from_ymd_opt(2028, 1, 1).expect("date")));
    }

    #[test]
    fn client_certificates_of_the_pks_apply_unless_the_user_id_names_its_own() {
        let a = "AB:".repeat(31) + "AB";
        let b = "cd".repeat(32);
        let text = pks(
            "1/A",
            "u1",
            "127.0.0.2",
            &format!("sertifikat_klien = [\"sha256 Fingerprint={a}\"]\n"),
        );
        // The file ends with its [[user]] table: what follows is the User ID's.
        let own = text;
        let set = load(&[("a.toml", own.clone())]).expect("valid");
        let user = &set.agreements[0].users[0];
        assert_eq!(user.client_certs, vec![CertFingerprint([0xab; 32])]);
        assert!(user.client_cert_accepted(&[0xab; 32]));
        assert!(!user.client_cert_accepted(&[]));
        assert!(!user.client_cert_accepted(&[0xcd; 32]));

        let with_own = format!("{own}sertifikat_klien = [\"sha256:{b}\"]\n");
        let set = load(&[("a.toml", with_own)]).expect("valid");
        assert_eq!(
            set.agreements[0].users[0].client_certs,
            vec![CertFingerprint([0xcd; 32])]
        );

        let bad = format!("{own}sertifikat_klien = [\"ab:cd\"]\n");
        let err = load(&[("a.toml", bad)]).expect_err("short").to_string();
        assert!(
            err.contains("user[0].sertifikat_klien") && err.contains("64 hex digits"),
            "{err}"
        );
        // Without any, nothing is required.
        let set = load(&[("a.toml", pks("1/A", "u1", "127.0.0.2", ""))]).expect("valid");
        assert!(set.agreements[0].users[0].client_cert_accepted(&[]));
    }

    #[test]
    fn unknown_element_names_file_line_and_field() {
        let text = pks("1/A", "u1", "127.0.0.2", "").replace("\"NAMA_LGKP\"", "\"NAMA_LENGKAP\"");
        let err = load(&[("config/pks/a.toml", text)]).expect_err("invalid");
        let shown = err.to_string();
        assert!(shown.starts_with("config/pks/a.toml:7:"), "{shown}");
        assert!(shown.contains("field `elemen_data`"), "{shown}");
        assert!(shown.contains("NAMA_LENGKAP"), "{shown}");
    }

    #[test]
    fn data_balikan_names_fields_of_the_vocabulary() {
        let ok = pks(
            "1/A",
            "u1",
            "127.0.0.2",
            "data_balikan = [\"NOP PBB-P2\", \"NPWPD\"]\n",
        );
        let set = load(&[("a.toml", ok)]).expect("valid");
        assert_eq!(set.agreements[0].data_balikan, ["NOP PBB-P2", "NPWPD"]);
        let unknown = pks("1/A", "u1", "127.0.0.2", "data_balikan = [\"NOP PBB\"]\n");
        let shown = load(&[("config/pks/a.toml", unknown)])
            .expect_err("unknown field")
            .to_string();
        assert!(shown.starts_with("config/pks/a.toml:13:"), "{shown}");
        assert!(shown.contains("field `data_balikan`"), "{shown}");
        assert!(
            shown.contains("`NOP PBB`") && shown.contains("NOP PBB-P2"),
            "{shown}"
        );
        let twice = pks(
            "1/A",
            "u1",
            "127.0.0.2",
            "data_balikan = [\"NPWPD\", \"NPWPD\"]\n",
        );
        let shown = load(&[("a.toml", twice)]).expect_err("twice").to_string();
        assert!(shown.contains("listed twice"), "{shown}");
    }

    #[test]
    fn end_before_start_and_bad_hash_and_bad_ip_are_all_reported() {
        let text = pks("1/A", "u1", "10.0.0.1/24", "")
            .replace("sampai = 2027-12-31", "sampai = 2024-12-31")
            .replace(HASH, "$2b$12$notargon");
        let err = load(&[("a.toml", text)]).expect_err("invalid");
        let shown = err.to_string();
        assert!(
            shown.contains("a.toml:11:") && shown.contains("before the start date"),
            "{shown}"
        );
        assert!(shown.contains("password_hash"), "{shown}");
        assert!(shown.contains("did you mean `10.0.0.0/24`"), "{shown}");
        assert_eq!(err.0.len(), 3, "{shown}");
    }

    #[test]
    fn unknown_field_is_refused_with_its_line() {
        let text = pks("1/A", "u1", "127.0.0.2", "kuota = 5\n");
        let err = load(&[("a.toml", text)]).expect_err("invalid");
        let shown = err.to_string();
        assert!(shown.contains("a.toml:13:"), "{shown}");
        // The field itself, not toml's message (which names it too).
        let fields: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["kuota"], "{shown}");
    }

    #[test]
    fn overlapping_ip_lan_between_users_is_refused() {
        let err = load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.0/24", "")),
            ("b.toml", pks("1/B", "u2", "127.0.0.9", "")),
        ])
        .expect_err("overlap");
        let shown = err.to_string();
        assert!(shown.contains("b.toml:17:"), "{shown}");
        assert!(
            shown.contains("overlaps 127.0.0.0/24 of User ID `u1`"),
            "{shown}"
        );
        // Disjoint ranges load.
        load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.0/25", "")),
            ("b.toml", pks("1/B", "u2", "127.0.0.128/25", "")),
        ])
        .expect("disjoint");
    }

    #[test]
    fn duplicate_numbers_and_users_are_refused() {
        let err = load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.2", "")),
            ("b.toml", pks("1/A", "u1", "127.0.0.3", "")),
        ])
        .expect_err("duplicates");
        let shown = err.to_string();
        assert!(
            shown.contains("PKS number `1/A` is also used by a.toml"),
            "{shown}"
        );
        assert!(
            shown.contains("User ID `u1` is also granted by a.toml"),
            "{shown}"
        );
    }

    #[test]
    fn user_ids_outside_the_shape_the_gateway_accepts_are_refused() {
        let longest = "u".repeat(USER_ID_MAX_LEN);
        for good in ["bkd_kra_01", "RSUD.Kota-1", longest.as_str()] {
            assert!(is_user_id(good), "{good}");
            load(&[("a.toml", pks("1/A", good, "127.0.0.2", ""))]).expect(good);
        }
        let too_long = "u".repeat(USER_ID_MAX_LEN + 1);
        for bad in [
            "",
            "nık_01",
            "rsud 01",
            "rsud/01",
            "@pengguna",
            too_long.as_str(),
        ] {
            assert!(!is_user_id(bad), "{bad}");
            let err = load(&[("a.toml", pks("1/A", bad, "127.0.0.2", ""))]).expect_err(bad);
            let shown = err.to_string();
            assert!(
                shown.contains("user[0].id") && shown.contains("is not a valid User ID"),
                "{bad}: {shown}"
            );
        }
    }

    #[test]
    fn a_pengguna_has_one_daily_cap() {
        let with = |cap: u32| format!("kuota_harian_pengguna = {cap}");
        let set = load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.2", &with(100))),
            ("b.toml", pks("1/B", "u2", "127.0.0.3", &with(100))),
            ("c.toml", pks("1/C", "u3", "127.0.0.4", "")),
        ])
        .expect("the same cap twice");
        let caps: Vec<_> = set
            .agreements
            .iter()
            .map(|p| p.kuota_harian_pengguna.map(NonZeroU32::get))
            .collect();
        assert_eq!(caps, [Some(100), Some(100), None]);
        let err = load(&[
            ("a.toml", pks("1/A", "u1", "127.0.0.2", &with(100))),
            ("b.toml", pks("1/B", "u2", "127.0.0.3", &with(80))),
        ])
        .expect_err("two caps");
        let shown = err.to_string();
        assert!(shown.starts_with("b.toml:13:"), "{shown}");
        assert!(
            shown.contains("a.toml sets 100 and this file 80"),
            "{shown}"
        );
        let err = load(&[("a.toml", pks("1/A", "u1", "127.0.0.2", &with(0)))]).expect_err("zero");
        assert!(err.to_string().contains("kuota_harian_pengguna"), "{err}");
    }

    #[test]
    fn protected_elements_need_the_ministers_approval() {
        let text = pks("1/A", "u1", "127.0.0.2", "")
            .replace("\"NIK\", \"NAMA_LGKP\"", "\"NIK\", \"PNYDNG_CACAT\"");
        let err = load(&[("a.toml", text.clone())]).expect_err("unapproved");
        assert!(err.to_string().contains("Minister's approval"), "{err}");
        let approved = text.replace(
            "status = \"aktif\"\n\n",
            "status = \"aktif\"\npersetujuan_menteri = [\"PNYDNG_CACAT\"]\n\n",
        );
        let set = load(&[("a.toml", approved)]).expect("approved");
        assert!(!set.agreements[0].persetujuan_menteri.is_empty());
    }

    #[test]
    fn sam_keys_must_be_usable_ed25519_keys() {
        let with = |key: &str| {
            pks("1/A", "u1", "127.0.0.2", "").replace("[\"web_service\"]", "[\"card_reader\"]")
                + &format!(
                    "[[sam]]\nid = \"SAM-1\"\npublic_key = \"ed25519:{key}\"\nstatus = \"aktif\"\n"
                )
        };
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        // A real public key (of the secret key 1, 2, 3, …).
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap_or(0) + 1;
        }
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let set = load(&[("a.toml", with(&b64(public.as_bytes())))]).expect("valid key");
        assert_eq!(set.agreements[0].sams[0].line, 21);
        // The identity point has small order: anybody could sign for it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for bad in [b64(&identity), b64(&[7u8; 31]), "not base64!".to_string()] {
            let err = load(&[("a.toml", with(&bad))]).expect_err("unusable key");
            let shown = err.to_string();
            assert!(
                shown.contains("a.toml:22:") && shown.contains("valid 32-byte Ed25519"),
                "{shown}"
            );
        }
    }

    #[test]
    fn element_search_needs_law_enforcement() {
        let text = pks("1/A", "u1", "127.0.0.2", "").replace(
            "kunci_akses = [\"NIK\"]",
            "kunci_akses = [\"NIK\", \"ELEMEN\"]",
        );
        let err = load(&[("a.toml", text)]).expect_err("not law enforcement");
        assert!(err.to_string().contains("art. 31"), "{err}");
    }
}

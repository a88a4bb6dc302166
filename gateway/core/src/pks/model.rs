//! What a PKS file describes, once validated: the agreement, its User IDs and SAMs, and the
//! vocabularies of its fields.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use chrono::NaiveDate;
use ipnet::IpNet;
use serde::Deserialize;

use crate::element::ElementSet;

/// Kind of user institution (Permendagri 102/2019 art. 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JenisPengguna {
    LembagaNegara,
    Kementerian,
    Lpnk,
    /// Badan Hukum Indonesia (an Indonesian legal entity).
    Bhi,
    /// Organisasi Perangkat Daerah (a regional office).
    Opd,
}

/// Government level of the agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tingkat {
    Pusat,
    Provinsi,
    KabupatenKota,
}

/// An access method a PKS grants; the gateway calls it the request's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Machine-to-machine JSON API.
    WebService,
    /// The browser application (read-only, art. 30(2)).
    WebPortal,
    /// A KTP-el card reader with an activated SAM (art. 24–26).
    CardReader,
}

impl Channel {
    /// The name used in PKS files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebService => "web_service",
            Self::WebPortal => "web_portal",
            Self::CardReader => "card_reader",
        }
    }
}

/// A key the PKS lets the Pengguna look people up by (art. 29(1), 31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KunciAkses {
    #[serde(rename = "NIK")]
    Nik,
    #[serde(rename = "NO_KK")]
    NoKk,
    /// Search by a combination of elements: law enforcement only (art. 31).
    #[serde(rename = "ELEMEN")]
    Elemen,
}

/// State of an agreement; `dibekukan` (frozen) and `diakhiri` (ended) are art. 45 sanctions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PksStatus {
    Aktif,
    Dibekukan,
    Diakhiri,
}

/// State of a User ID; `nonaktif` is the art. 45 deactivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Aktif,
    Nonaktif,
}

/// State of a card reader's SAM (art. 25, 45 d–e).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamStatus {
    Aktif,
    Nonaktif,
    Dicabut,
}

impl SamStatus {
    /// The name used in PKS files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aktif => "aktif",
            Self::Nonaktif => "nonaktif",
            Self::Dicabut => "dicabut",
        }
    }
}

/// A validated cooperation agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pks {
    /// The file it was loaded from.
    pub source: PathBuf,
    pub nomor: String,
    pub pengguna: String,
    pub nama_pengguna: String,
    pub jenis_pengguna: JenisPengguna,
    pub tingkat: Tingkat,
    pub tujuan: String,
    /// Granted elements, groups expanded.
    pub elemen_data: ElementSet,
    pub metode_akses: Vec<Channel>,
    pub kunci_akses: Vec<KunciAkses>,
    /// The balikan fields the Pengguna returns (names of the vocabulary's `[[balikan]]`
    /// fields, each once); empty: the PKS obliges none and a balikan is refused.
    pub data_balikan: Vec<String>,
    pub mulai: NaiveDate,
    pub sampai: NaiveDate,
    pub kepemilikan_asing_mayoritas: bool,
    pub penegak_hukum: bool,
    /// Protected elements the Minister approved.
    pub persetujuan_menteri: ElementSet,
    /// Cap on the NIK hits per WIB day of all the Pengguna's User IDs together, across
    /// all its agreements (every file of the Pengguna that sets it must agree).
    pub kuota_harian_pengguna: Option<NonZeroU32>,
    pub status: PksStatus,
    pub users: Vec<User>,
    pub sams: Vec<Sam>,
}

impl Pks {
    /// Whether `day` (a WIB calendar day) lies within the agreement's period.
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.mulai <= day && day <= self.sampai
    }

    /// Whether the PKS grants this access method.
    pub fn allows_channel(&self, channel: Channel) -> bool {
        self.metode_akses.contains(&channel)
    }

    /// Whether the PKS grants this lookup key.
    pub fn allows_key(&self, key: KunciAkses) -> bool {
        self.kunci_akses.contains(&key)
    }
}

/// A User ID of a PKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// argon2id PHC string; checked well-formed at load.
    pub password_hash: String,
    pub ip_lan: Vec<IpNet>,
    pub kuota_harian: NonZeroU32,
    pub status: UserStatus,
    /// Client certificates this User ID must present on the client listener, any one of
    /// them (its own `sertifikat_klien`, else its PKS's); empty: none required.
    pub client_certs: Vec<CertFingerprint>,
    /// Line of the `[[user]]` table, for messages.
    pub line: usize,
}

/// A client certificate, named by the SHA-256 of its DER encoding: what
/// `openssl x509 -noout -fingerprint -sha256 -in cert.pem` prints (`AB:CD:…`, 32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

impl CertFingerprint {
    /// Reads `AB:CD:…` or `abcd…`, also with a `sha256:` prefix or as openssl prints it
    /// (`sha256 Fingerprint=AB:CD:…`, `SHA256 Fingerprint=` before OpenSSL 3).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bare = text.trim();
        let bare = match bare.split_once('=') {
            Some((label, value)) if label.to_ascii_lowercase().ends_with("fingerprint") => value,
            _ => bare,
        };
        let bare = match bare.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("sha256:") => &bare[7..],
            _ => bare,
        };
        let hex: Vec<u8> = bare.bytes().filter(|&b| b != b':').collect();
        let invalid = || {
            format!(
                "`{text}` is not a SHA-256 certificate fingerprint: 64 hex digits, colons allowed (`openssl x509 -noout -fingerprint -sha256 -in cert.pem`)"
            )
        };
        if hex.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
            let digits = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(digits, 16).map_err(|_| invalid())?;
        }
        Ok(Self(out))
    }
}

impl User {
    /// Whether the connection's client certificate (`digest`: the SHA-256 of its DER, empty
    /// when none was presented) is one this User ID must use; true when none is required.
    pub fn client_cert_accepted(&self, digest: &[u8]) -> bool {
        self.client_certs.is_empty() || self.client_certs.iter().any(|c| c.0 == digest)
    }
}

impl User {
    /// Whether `ip` is one of the registered LAN addresses.
    pub fn ip_registered(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.ip_lan.iter().any(|net| net.contains(&ip))
    }
}

/// The longest User ID: longer than any a PKS grants, and a bound on what a request's
/// `user_id` may make the gateway store or log.
pub const USER_ID_MAX_LEN: usize = 64;

/// Whether `id` has the shape of a User ID: 1 to [`USER_ID_MAX_LEN`] ASCII letters, digits,
/// `_`, `.` or `-`. The PKS loader refuses any other `[[user]] id`, and the gateway refuses
/// a request naming one before anything keeps it, so the two always agree on what can be a
/// User ID.
pub fn is_user_id(id: &str) -> bool {
    (1..=USER_ID_MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// An IPv4 address seen through an IPv4-mapped IPv6 socket is the IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A card reader's SAM, bound to the Pengguna of its PKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sam {
    pub id: String,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
    pub status: SamStatus,
    /// Line of the `[[sam]]` id, for messages.
    pub line: usize,
}

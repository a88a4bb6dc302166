//! Why a card-reader request was refused (art. 24–26; juknis §4). The SAM sidecar answers
//! each invalid request with one of these reasons, and the gateway adds two of its own for
//! when the sidecar cannot answer; each has a stable snake_case code (the sidecar's wire
//! format and its metrics label) and its own `RESPON` text, so a Pengguna's operator can
//! tell every failure apart.

/// One reason a card-reader request is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamReason {
    /// An `X-SAM-*` header is missing or not in its documented form.
    MalformedHeaders,
    /// No PKS registers this SAM id.
    UnknownSam,
    /// The Ed25519 signature does not verify over the canonical string.
    BadSignature,
    /// The reader signed another body than the one received (its `Content-Digest`
    /// verifies, the received body does not match it).
    BodyAltered,
    /// The timestamp is outside the allowed clock skew, or older than the sidecar's start
    /// (so its nonce may have been seen by a previous run).
    StaleTimestamp,
    /// This SAM already used this nonce within the skew window: a replay.
    ReplayedNonce,
    /// This SAM sent more requests within the skew window than the replay cache holds.
    NonceLimit,
    /// The SAM is registered with `status = "nonaktif"` (art. 45 e).
    SamInactive,
    /// The SAM is registered with `status = "dicabut"` (revoked).
    SamRevoked,
    /// The SAM belongs to another Pengguna than the User ID (art. 26: not transferable).
    SamOtherPengguna,
    /// The User ID is not in the sidecar's registry.
    UnknownUser,
    /// The PKS of the SAM or of the User ID is frozen or ended (art. 45).
    PksInactive,
    /// Today is outside the validity of the PKS of the SAM or of the User ID.
    PksOutsideValidity,
    /// The User ID's PKS does not list `card_reader` in `metode_akses`.
    ChannelNotGranted,
    /// The reader's 1:1 fingerprint check did not match (juknis §4).
    BiometricNotMatched,
    /// Gateway side: the sidecar could not be reached or answered an error (fail closed).
    SidecarUnavailable,
    /// Gateway side: the sidecar did not answer within the configured timeout.
    SidecarTimeout,
}

impl SamReason {
    /// Every reason, in the order the sidecar checks them.
    pub const ALL: [Self; 17] = [
        Self::MalformedHeaders,
        Self::UnknownSam,
        Self::BadSignature,
        Self::BodyAltered,
        Self::StaleTimestamp,
        Self::ReplayedNonce,
        Self::NonceLimit,
        Self::SamInactive,
        Self::SamRevoked,
        Self::UnknownUser,
        Self::SamOtherPengguna,
        Self::PksInactive,
        Self::PksOutsideValidity,
        Self::ChannelNotGranted,
        Self::BiometricNotMatched,
        Self::SidecarUnavailable,
        Self::SidecarTimeout,
    ];

    /// The stable code: the sidecar's `reason` field and metrics label.
    pub fn code(self) -> &'static str {
        match self {
            Self::MalformedHeaders => "malformed_headers",
            Self::UnknownSam => "unknown_sam",
            Self::BadSignature => "bad_signature",
            Self::BodyAltered => "body_altered",
            Self::StaleTimestamp => "stale_timestamp",
            Self::ReplayedNonce => "replayed_nonce",
            Self::NonceLimit => "nonce_limit",
            Self::SamInactive => "sam_inactive",
            Self::SamRevoked => "sam_revoked",
            Self::SamOtherPengguna => "sam_other_pengguna",
            Self::UnknownUser => "unknown_user",
            Self::PksInactive => "pks_inactive",
            Self::PksOutsideValidity => "pks_outside_validity",
            Self::ChannelNotGranted => "channel_not_granted",
            Self::BiometricNotMatched => "biometric_not_matched",
            Self::SidecarUnavailable => "sidecar_unavailable",
            Self::SidecarTimeout => "sidecar_timeout",
        }
    }

    /// The reason a code names.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The `RESPON` text the gateway answers with. Verdicts share the prefix of the
    /// generic card-reader refusal, so clients matching on it keep working.
    pub fn respon(self) -> &'static str {
        match self {
            Self::MalformedHeaders => "Validasi Card Reader Gagal: Header SAM Tidak Sah",
            Self::UnknownSam => "Validasi Card Reader Gagal: SAM Tidak Terdaftar",
            Self::BadSignature => "Validasi Card Reader Gagal: Tanda Tangan SAM Tidak Sah",
            Self::BodyAltered => "Validasi Card Reader Gagal: Isi Permintaan Telah Diubah",
            Self::StaleTimestamp => "Validasi Card Reader Gagal: Waktu Permintaan di Luar Batas",
            Self::ReplayedNonce => "Validasi Card Reader Gagal: Permintaan Ulang Terdeteksi",
            Self::NonceLimit => "Validasi Card Reader Gagal: Batas Permintaan SAM Terlampaui",
            Self::SamInactive => "Validasi Card Reader Gagal: SAM Tidak Aktif",
            Self::SamRevoked => "Validasi Card Reader Gagal: SAM Dicabut",
            Self::SamOtherPengguna => "Validasi Card Reader Gagal: SAM Milik Lembaga Lain",
            Self::UnknownUser => "Validasi Card Reader Gagal: User ID Tidak Dikenal",
            Self::PksInactive => "Validasi Card Reader Gagal: PKS Tidak Aktif",
            Self::PksOutsideValidity => "Validasi Card Reader Gagal: PKS di Luar Masa Berlaku",
            Self::ChannelNotGranted => "Validasi Card Reader Gagal: Card Reader Tidak Ada di PKS",
            Self::BiometricNotMatched => "Validasi Card Reader Gagal: Sidik Jari Tidak Cocok",
            Self::SidecarUnavailable => "Layanan Validasi Card Reader Tidak Tersedia",
            Self::SidecarTimeout => "Layanan Validasi Card Reader Tidak Merespons",
        }
    }

    /// The HTTP status in `rest` mode.
    pub fn rest_status(self) -> u16 {
        match self {
            Self::MalformedHeaders => 400,
            Self::NonceLimit => 429,
            Self::SidecarUnavailable => 503,
            Self::SidecarTimeout => 504,
            _ => 403,
        }
    }

    /// The name of the refusal in the gateway's logs.
    pub fn refusal_name(self) -> &'static str {
        match self {
            Self::MalformedHeaders => "card_reader_malformed_headers",
            Self::UnknownSam => "card_reader_unknown_sam",
            Self::BadSignature => "card_reader_bad_signature",
            Self::BodyAltered => "card_reader_body_altered",
            Self::StaleTimestamp => "card_reader_stale_timestamp",
            Self::ReplayedNonce => "card_reader_replayed_nonce",
            Self::NonceLimit => "card_reader_nonce_limit",
            Self::SamInactive => "card_reader_sam_inactive",
            Self::SamRevoked => "card_reader_sam_revoked",
            Self::SamOtherPengguna => "card_reader_sam_other_pengguna",
            Self::UnknownUser => "card_reader_unknown_user",
            Self::PksInactive => "card_reader_pks_inactive",
            Self::PksOutsideValidity => "card_reader_pks_outside_validity",
            Self::ChannelNotGranted => "card_reader_channel_not_granted",
            Self::BiometricNotMatched => "card_reader_biometric_not_matched",
            Self::SidecarUnavailable => "card_reader_sidecar_unavailable",
            Self::SidecarTimeout => "card_reader_sidecar_timeout",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_texts_and_names_are_distinct_and_round_trip() {
        let mut codes = HashSet::new();
        let mut texts = HashSet::new();
        let mut names = HashSet::new();
        for r in SamReason::ALL {
            assert!(codes.insert(r.code()), "{r:?}");
            assert!(texts.insert(r.respon()), "{r:?}");
            assert!(names.insert(r.refusal_name()), "{r:?}");
            assert_eq!(SamReason::from_code(r.code()), Some(r));
            assert!(r.refusal_name().ends_with(r.code()));
        }
        assert_eq!(SamReason::from_code("valid"), None);
    }
}

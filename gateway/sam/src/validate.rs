//! The validation of one card-reader request (art. 24–26; juknis §4), as a plain function
//! over plain data so every reason is tested without a socket.
//!
//! Checks, in order (the first failure is the reason): the headers' form; the SAM is
//! registered; the signature verifies over the canonical string (an altered body is told
//! apart when the reader sent a `Content-Digest`); the timestamp is within the skew and
//! after the sidecar started; the nonce is fresh (recorded only once the signature and
//! timestamp passed, so nobody can burn a reader's nonces); the SAM is active; the User ID
//! is known and of the SAM's Pengguna (a reader is not transferable, art. 26); the PKS of
//! the SAM and of the User ID are in force today and the User ID's grants `card_reader`;
//! for data lookups, the reader's fingerprint check matched.

use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::Signature;
use gerbang_core::{Clock, PksStatus, SamReason, SamStatus, wib_day};
use serde::{Deserialize, Serialize};

use crate::canonical::{Biometric, MAX_READER_PATH, NONCE_LEN, SamHeaders, canonical_string};
use crate::keyfile::valid_sam_id;
use crate::registry::{PksEntry, Registry, SamEntry};
use crate::replay::{Replay, Seen};
use gerbang_shared::{NonceStore, Unavailable};

/// Default allowed difference between a reader's clock and the sidecar's.
pub const DEFAULT_SKEW_SECS: u32 = 30;

/// What the gateway asks the sidecar about one request (`POST /v1/validate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The HTTP method, as received.
    pub method: String,
    /// The request target (path and query), as received.
    pub path: String,
    /// Lower-case hex SHA-256 of the body as received.
    pub body_sha256: String,
    /// The SHA-256 the reader's `Content-Digest` names, if it sent one (lower-case hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_body_sha256: Option<String>,
    /// The User ID of the body, as the gateway authenticated it.
    pub user_id: String,
    /// The request reads population data (the fingerprint must have matched).
    pub data_lookup: bool,
    /// The five `X-SAM-*` header values.
    pub sam: SamHeaders,
}

/// The sidecar's answer: valid, or the reason it is not, with a detail in Indonesian for
/// the Pengguna's operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `None`: valid.
    pub reason: Option<SamReason>,
    /// Why, in words for the Pengguna's operator; never holds a secret.
    pub detail: String,
}

impl Verdict {
    fn valid() -> Self {
        Self {
            reason: None,
            detail: "SAM sah".to_string(),
        }
    }

    pub(crate) fn invalid(reason: SamReason, detail: impl Into<String>) -> Self {
        Self {
            reason: Some(reason),
            detail: detail.into(),
        }
    }

    /// Whether the request is valid.
    pub fn is_valid(&self) -> bool {
        self.reason.is_none()
    }

    /// The reason's code, or `valid`.
    pub fn code(&self) -> &'static str {
        self.reason.map_or("valid", SamReason::code)
    }

    /// The JSON body the sidecar answers with.
    pub fn to_wire(&self) -> VerdictWire {
        VerdictWire {
            valid: self.is_valid(),
            reason: self.code().to_string(),
            detail: self.detail.clone(),
        }
    }

    /// Reads the sidecar's JSON answer; `None` when it is inconsistent (a `valid: true`
    /// with a reason, or an unknown reason), which the client treats as an error.
    pub fn from_wire(wire: &VerdictWire) -> Option<Self> {
        match (wire.valid, wire.reason.as_str()) {
            (true, "valid") => Some(Self {
                reason: None,
                detail: wire.detail.clone(),
            }),
            (false, code) => SamReason::from_code(code).map(|r| Self {
                reason: Some(r),
                detail: wire.detail.clone(),
            }),
            _ => None,
        }
    }
}

/// The verdict as JSON: `{"valid":false,"reason":"replayed_nonce","detail":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictWire {
    pub valid: bool,
    /// A [`SamReason`] code, or `valid`.
    pub reason: String,
    pub detail: String,
}

/// How fresh a request must be.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// Largest allowed |now − timestamp|, in seconds.
    pub skew_secs: i64,
    /// Timestamps at or before this Unix second are refused: the sidecar started then and
    /// does not know the nonces an earlier run accepted.
    pub not_after_start: i64,
}

/// Validates one request against a registry at `now`, recording its nonce when fresh.
/// `Err` when the replay cache did not answer (Redis unreachable): the request cannot be
/// validated and must be refused.
pub async fn validate(
    registry: &Registry,
    replay: &dyn NonceStore,
    req: &ValidateRequest,
    now: DateTime<Utc>,
    freshness: Freshness,
) -> Result<Verdict, Unavailable> {
    let checked = match authentic(registry, req, now, freshness) {
        Ok(c) => c,
        Err(verdict) => return Ok(verdict),
    };
    let h = &req.sam;
    // 5. Not replayed.
    match replay
        .check_and_record(&h.sam_id, &h.nonce, checked.expires_at, now.timestamp())
        .await?
    {
        Seen::Fresh => {}
        Seen::Replayed => {
            return Ok(Verdict::invalid(
                SamReason::ReplayedNonce,
                format!(
                    "nonce ini sudah dipakai SAM {} dalam {} detik terakhir: permintaan ulang ditolak",
                    h.sam_id, freshness.skew_secs
                ),
            ));
        }
        Seen::Full => {
            return Ok(Verdict::invalid(
                SamReason::NonceLimit,
                format!(
                    "SAM {} mengirim terlalu banyak permintaan dalam {} detik",
                    h.sam_id, freshness.skew_secs
                ),
            ));
        }
    }
    Ok(entitled(registry, req, &checked, now))
}

/// A request the SAM signed, fresh: what steps 6 to 9 check further.
struct Authentic<'a> {
    sam: &'a SamEntry,
    biometric: Biometric,
    /// The Unix second its nonce may be forgotten at (the end of its freshness window).
    expires_at: i64,
}

/// Steps 1 to 4: the form, the SAM registered, its signature, the timestamp fresh.
fn authentic<'a>(
    registry: &'a Registry,
    req: &ValidateRequest,
    now: DateTime<Utc>,
    freshness: Freshness,
) -> Result<Authentic<'a>, Verdict> {
    let h = &req.sam;
    // 1. Form.
    let parsed = match parse(req) {
        Ok(p) => p,
        Err(detail) => return Err(Verdict::invalid(SamReason::MalformedHeaders, detail)),
    };
    // 2. Registered.
    let Some(sam) = registry.sam(&h.sam_id) else {
        return Err(unknown_sam(&h.sam_id));
    };
    // 3. Signature over what was received.
    let signed = |body_sha256: &str| {
        let message = canonical_string(
            &req.method,
            &req.path,
            body_sha256,
            &h.timestamp,
            &h.nonce,
            &req.user_id,
            &h.biometric,
        );
        sam.key
            .verify_strict(message.as_bytes(), &parsed.signature)
            .is_ok()
    };
    if !signed(&req.body_sha256) {
        let claimed = req
            .claimed_body_sha256
            .as_deref()
            .filter(|c| *c != req.body_sha256);
        if claimed.is_some_and(signed) {
            return Err(Verdict::invalid(
                SamReason::BodyAltered,
                "SAM menandatangani isi permintaan yang berbeda dari yang diterima (isi diubah di perjalanan)",
            ));
        }
        return Err(Verdict::invalid(
            SamReason::BadSignature,
            format!(
                "tanda tangan tidak cocok dengan kunci publik SAM {} untuk permintaan ini",
                h.sam_id
            ),
        ));
    }
    // 4. Fresh.
    let now_secs = now.timestamp();
    let age = now_secs - parsed.timestamp;
    if age.abs() > freshness.skew_secs {
        let which = if age > 0 {
            format!("{age} detik yang lalu")
        } else {
            format!("{} detik di masa depan", -age)
        };
        return Err(Verdict::invalid(
            SamReason::StaleTimestamp,
            format!(
                "X-SAM-Timestamp {which}; selisih jam paling banyak {} detik (periksa jam card reader)",
                freshness.skew_secs
            ),
        ));
    }
    if parsed.timestamp <= freshness.not_after_start {
        return Err(Verdict::invalid(
            SamReason::StaleTimestamp,
            "permintaan ditandatangani sebelum layanan validasi SAM dimulai; kirim ulang dengan waktu baru",
        ));
    }
    Ok(Authentic {
        sam,
        biometric: parsed.biometric,
        expires_at: parsed.timestamp + freshness.skew_secs,
    })
}

/// Steps 6 to 9: the SAM active, bound to the User ID's Pengguna, both agreements in force
/// with the channel granted, the fingerprint matched.
fn entitled(
    registry: &Registry,
    req: &ValidateRequest,
    checked: &Authentic<'_>,
    now: DateTime<Utc>,
) -> Verdict {
    let (h, sam) = (&req.sam, checked.sam);
    // 6. Active (art. 25; deactivation is an art. 45 sanction).
    if let Some(verdict) = sam_not_active(&h.sam_id, sam.status) {
        return verdict;
    }
    // 7. Bound to the User ID's Pengguna (art. 26).
    let Some(user_pks) = registry.user_pks(&req.user_id) else {
        return Verdict::invalid(
            SamReason::UnknownUser,
            format!("User ID {} tidak terdaftar pada registri SAM", req.user_id),
        );
    };
    let Some(sam_pks) = registry.pks(sam.pks) else {
        return Verdict::invalid(SamReason::UnknownSam, "registri SAM tidak konsisten");
    };
    if sam_pks.pengguna != user_pks.pengguna {
        return Verdict::invalid(
            SamReason::SamOtherPengguna,
            format!(
                "SAM {} terdaftar untuk lembaga lain, bukan lembaga User ID {} (pasal 26: card reader tidak dapat dipindahtangankan)",
                h.sam_id, req.user_id
            ),
        );
    }
    // 8. The agreements in force today, and the channel granted.
    let today = wib_day(now);
    for pks in [sam_pks, user_pks] {
        if let Some(verdict) = pks_in_force(pks, today) {
            return verdict;
        }
    }
    if !user_pks.card_reader {
        return Verdict::invalid(
            SamReason::ChannelNotGranted,
            format!(
                "metode akses card_reader tidak termasuk dalam PKS {}",
                user_pks.nomor
            ),
        );
    }
    // 9. The fingerprint matched (juknis §4).
    if req.data_lookup && checked.biometric != Biometric::Match {
        return Verdict::invalid(
            SamReason::BiometricNotMatched,
            "verifikasi sidik jari 1:1 pada card reader tidak cocok",
        );
    }
    Verdict::valid()
}

/// The verdict on a SAM no PKS registers. Shared with the gateway, like [`sam_not_active`].
pub fn unknown_sam(sam_id: &str) -> Verdict {
    Verdict::invalid(
        SamReason::UnknownSam,
        format!("SAM {sam_id} tidak terdaftar pada PKS mana pun"),
    )
}

/// Why a SAM of this status may not be used, if it may not: deactivated (art. 45 e) or
/// revoked. Shared with the gateway, which checks its own snapshot after a valid verdict.
pub fn sam_not_active(sam_id: &str, status: SamStatus) -> Option<Verdict> {
    match status {
        SamStatus::Aktif => None,
        SamStatus::Nonaktif => Some(Verdict::invalid(
            SamReason::SamInactive,
            format!("SAM {sam_id} dinonaktifkan (pasal 45)"),
        )),
        SamStatus::Dicabut => Some(Verdict::invalid(
            SamReason::SamRevoked,
            format!("SAM {sam_id} telah dicabut"),
        )),
    }
}

/// Why an agreement of this status stops its readers, if it does: frozen or ended
/// (art. 45). Shared with the gateway, like [`sam_not_active`].
pub fn pks_not_active(nomor: &str, status: PksStatus) -> Option<Verdict> {
    (status != PksStatus::Aktif).then(|| {
        Verdict::invalid(
            SamReason::PksInactive,
            format!("PKS {nomor} tidak aktif (dibekukan atau diakhiri, pasal 45)"),
        )
    })
}

fn pks_in_force(pks: &PksEntry, today: chrono::NaiveDate) -> Option<Verdict> {
    if let Some(verdict) = pks_not_active(&pks.nomor, pks.status) {
        return Some(verdict);
    }
    if !pks.valid_on(today) {
        return Some(Verdict::invalid(
            SamReason::PksOutsideValidity,
            format!(
                "PKS {} berlaku {} s.d. {}; SAM hanya aktif selama PKS berlaku",
                pks.nomor, pks.mulai, pks.sampai
            ),
        ));
    }
    None
}

struct Parsed {
    timestamp: i64,
    biometric: Biometric,
    signature: Signature,
}

/// Checks the form of every field; the error names the header in Indonesian.
fn parse(req: &ValidateRequest) -> Result<Parsed, String> {
    let h = &req.sam;
    let missing = |name: &str| format!("header {name} tidak ada atau kosong");
    for (name, value) in [
        ("X-SAM-Id", &h.sam_id),
        ("X-SAM-Timestamp", &h.timestamp),
        ("X-SAM-Nonce", &h.nonce),
        ("X-SAM-Biometric", &h.biometric),
        ("X-SAM-Signature", &h.signature),
    ] {
        if value.is_empty() {
            return Err(missing(name));
        }
    }
    if !valid_sam_id(&h.sam_id) {
        return Err("X-SAM-Id harus 1-64 huruf, angka, `_`, `.` atau `-`".into());
    }
    let timestamp = (h.timestamp.len() <= 12 && h.timestamp.bytes().all(|b| b.is_ascii_digit()))
        .then(|| h.timestamp.parse::<i64>().ok())
        .flatten()
        .ok_or("X-SAM-Timestamp harus detik Unix dalam angka desimal")?;
    if !NONCE_LEN.contains(&h.nonce.len())
        || !h
            .nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("X-SAM-Nonce harus 16-64 karakter A-Z, a-z, 0-9, `-` atau `_`".into());
    }
    let biometric =
        Biometric::parse(&h.biometric).ok_or("X-SAM-Biometric harus `match` atau `no_match`")?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(&h.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
        .ok_or("X-SAM-Signature harus base64 standar dari tanda tangan Ed25519 64 byte")?;
    let hex64 =
        |s: &str| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex64(&req.body_sha256)
        || req
            .claimed_body_sha256
            .as_deref()
            .is_some_and(|c| !hex64(c))
    {
        return Err("SHA-256 isi permintaan tidak sah".into());
    }
    // A newline in a field would let two different requests share a canonical string.
    let one_line = |s: &str| !s.is_empty() && !s.contains(['\n', '\r']);
    if !one_line(&req.method) || !req.path.starts_with('/') || !one_line(&req.path) {
        return Err("metode atau jalur permintaan tidak sah".into());
    }
    if req.path.len() > MAX_READER_PATH {
        return Err(format!("jalur permintaan melebihi {MAX_READER_PATH} byte"));
    }
    if !one_line(&req.user_id) {
        return Err("user_id kosong atau memuat baris baru".into());
    }
    Ok(Parsed {
        timestamp,
        biometric,
        signature,
    })
}

/// The registry in force, the replay cache and the clock: what the server validates with.
/// A reload swaps the registry atomically; the replay cache stays.
#[derive(Debug)]
pub struct Validator {
    registry: ArcSwap<Registry>,
    replay: Replay,
    clock: Arc<dyn Clock>,
    freshness: Freshness,
}

impl Validator {
    /// A validator over `registry` with the replay cache `replay`, refusing timestamps at or
    /// before the clock's current second (the nonces of an earlier run are unknown; with
    /// a shared cache this also keeps a restarted sidecar from accepting what it missed
    /// while Redis was being failed over).
    pub fn new(registry: Registry, clock: Arc<dyn Clock>, skew_secs: u32, replay: Replay) -> Self {
        let started = clock.now().timestamp();
        Self {
            registry: ArcSwap::from_pointee(registry),
            replay,
            clock,
            freshness: Freshness {
                skew_secs: i64::from(skew_secs),
                not_after_start: started,
            },
        }
    }

    /// Validates one request now; `Err` when the replay cache did not answer.
    pub async fn validate(&self, req: &ValidateRequest) -> Result<Verdict, Unavailable> {
        let registry = self.registry.load_full();
        validate(
            &registry,
            self.replay.store(),
            req,
            self.clock.now(),
            self.freshness,
        )
        .await
    }

    /// Puts a newly loaded registry in force.
    pub fn swap(&self, registry: Registry) {
        self.registry.store(Arc::new(registry));
    }

    /// The registry in force.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// The replay cache.
    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// Forgets expired nonces.
    pub fn prune(&self) {
        self.replay.prune(self.clock.now().timestamp());
    }

    /// Live nonces this process remembers (none when they are in Redis).
    pub fn nonces(&self) -> usize {
        self.replay.remembered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{SignInput, body_sha256_hex, sign};
    use crate::keyfile::ReaderKey;
    use crate::registry::tests::{build, pks_text};
    use gerbang_core::FakeClock;

    const PATH: &str = "/dukcapil/get_json/UJI/CALL_NIK";
    const BODY: &[u8] = br#"{"nik":"3201010101900001","user_id":"kab_01","password":"x"}"#;

    struct World {
        keys: Vec<ReaderKey>,
        validator: Validator,
        clock: FakeClock,
    }

    /// Pengguna `kab`: PKS 1/KAB (card_reader, SAM-A aktif, SAM-N nonaktif, SAM-R dicabut,
    /// user kab_01) and PKS 2/KAB (web_service only, user kab_ws). Pengguna `kota`: PKS
    /// 3/KOTA (SAM-K, user kota_01). Pengguna `lama`: PKS 4/LAMA ended (SAM-L, user lama_01).
    /// Pengguna `beku`: PKS 5/BEKU frozen (SAM-B, user beku_01).
    fn world() -> World {
        let ids = ["SAM-A", "SAM-N", "SAM-R", "SAM-K", "SAM-L", "SAM-B"];
        let keys: Vec<ReaderKey> = ids
            .iter()
            .map(|id| ReaderKey::generate(id).expect("key"))
            .collect();
        let block = |i: usize, status: &str| keys[i].pks_block(status);
        let valid = ("2025-01-01", "2030-12-31");
        let files = [
            (
                "kab1.toml",
                pks_text(
                    "1/KAB",
                    "kab",
                    r#"["card_reader"]"#,
                    valid,
                    "aktif",
                    ("kab_01", "127.0.0.2"),
                    &format!(
                        "{}\n{}\n{}",
                        block(0, "aktif"),
                        block(1, "nonaktif"),
                        block(2, "dicabut")
                    ),
                ),
            ),
            (
                "kab2.toml",
                pks_text(
                    "2/KAB",
                    "kab",
                    r#"["web_service"]"#,
                    valid,
                    "aktif",
                    ("kab_ws", "127.0.0.3"),
                    "",
                ),
            ),
            (
                "kota.toml",
                pks_text(
                    "3/KOTA",
                    "kota",
                    r#"["card_reader"]"#,
                    valid,
                    "aktif",
                    ("kota_01", "127.0.0.4"),
                    &block(3, "aktif"),
                ),
            ),
            (
                "lama.toml",
                pks_text(
                    "4/LAMA",
                    "lama",
                    r#"["card_reader"]"#,
                    ("2020-01-01", "2024-12-31"),
                    "aktif",
                    ("lama_01", "127.0.0.5"),
                    &block(4, "aktif"),
                ),
            ),
            (
                "beku.toml",
                pks_text(
                    "5/BEKU",
                    "beku",
                    r#"["card_reader"]"#,
                    valid,
                    "dibekukan",
                    ("beku_01", "127.0.0.6"),
                    &block(5, "aktif"),
                ),
            ),
        ];
        let registry = build(&files).expect("valid registry");
        let start: DateTime<Utc> = "2026-03-01T03:00:00Z".parse().expect("time");
        let clock = FakeClock::new(start);
        let validator = Validator::new(
            registry,
            Arc::new(clock.clone()),
            30,
            Replay::Embedded(crate::ReplayCache::new(100)),
        );
        // Requests are signed after the start.
        clock.advance(std::time::Duration::from_secs(5));
        World {
            keys,
            validator,
            clock,
        }
    }

    impl World {
        fn key(&self, id: &str) -> &ReaderKey {
            self.keys
                .iter()
                .find(|k| k.sam_id == id)
                .expect("known key")
        }

        fn now(&self) -> i64 {
            self.clock.now().timestamp()
        }

        /// A correctly signed request of `sam` for `user`.
        fn request(&self, sam: &str, user: &str, nonce: &str) -> ValidateRequest {
            self.signed_by(
                self.key(sam),
                sam,
                user,
                nonce,
                self.now(),
                Biometric::Match,
            )
        }

        fn signed_by(
            &self,
            key: &ReaderKey,
            sam: &str,
            user: &str,
            nonce: &str,
            timestamp: i64,
            biometric: Biometric,
        ) -> ValidateRequest {
            let headers = sign(
                &key.signing,
                &SignInput {
                    sam_id: sam,
                    method: "POST",
                    path: PATH,
                    body: BODY,
                    user_id: user,
                    biometric,
                    timestamp,
                    nonce,
                },
            );
            ValidateRequest {
                method: "POST".into(),
                path: PATH.into(),
                body_sha256: body_sha256_hex(BODY),
                claimed_body_sha256: None,
                user_id: user.into(),
                data_lookup: true,
                sam: headers,
            }
        }

        /// SAM-A's request for kab_01 at a chosen time and fingerprint result.
        fn kab(&self, nonce: &str, timestamp: i64, biometric: Biometric) -> ValidateRequest {
            self.signed_by(
                self.key("SAM-A"),
                "SAM-A",
                "kab_01",
                nonce,
                timestamp,
                biometric,
            )
        }

        /// Validates now (the embedded cache answers without waiting).
        fn validate(&self, req: &ValidateRequest) -> Verdict {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
                .block_on(self.validator.validate(req))
                .expect("the embedded cache always answers")
        }

        fn reason(&self, req: &ValidateRequest) -> Option<SamReason> {
            self.validate(req).reason
        }
    }

    const N1: &str = "nonce-0000000001";
    const N2: &str = "nonce-0000000002";

    #[test]
    fn a_correctly_signed_request_is_valid() {
        let w = world();
        let v = w.validate(&w.request("SAM-A", "kab_01", N1));
        assert!(v.is_valid(), "{v:?}");
        assert_eq!(v.code(), "valid");
    }

    #[test]
    fn malformed_headers_name_the_header() {
        let w = world();
        let base = w.request("SAM-A", "kab_01", N1);
        type Mutation = fn(&mut ValidateRequest);
        let cases: [(&str, Mutation); 7] = [
            ("X-SAM-Nonce", |r| r.sam.nonce.clear()),
            ("X-SAM-Nonce", |r| r.sam.nonce = "short".into()),
            ("X-SAM-Nonce", |r| r.sam.nonce = "nonce with spaces!".into()),
            ("X-SAM-Timestamp", |r| r.sam.timestamp = "-5".into()),
            ("X-SAM-Biometric", |r| r.sam.biometric = "MATCH".into()),
            ("X-SAM-Signature", |r| r.sam.signature = "AAAA".into()),
            ("user_id", |r| r.user_id = "kab_01\nx".into()),
        ];
        for (header, mutate) in cases {
            let mut req = base.clone();
            mutate(&mut req);
            let v = w.validate(&req);
            assert_eq!(v.reason, Some(SamReason::MalformedHeaders), "{header}");
            assert!(v.detail.contains(header), "{header}: {}", v.detail);
        }
    }

    #[test]
    fn an_unregistered_sam_is_unknown() {
        let w = world();
        let stranger = ReaderKey::generate("SAM-X").expect("key");
        let req = w.signed_by(&stranger, "SAM-X", "kab_01", N1, w.now(), Biometric::Match);
        assert_eq!(w.reason(&req), Some(SamReason::UnknownSam));
    }

    #[test]
    fn a_signature_by_another_key_is_bad() {
        let w = world();
        // SAM-K's key signing as SAM-A.
        let req = w.signed_by(
            w.key("SAM-K"),
            "SAM-A",
            "kab_01",
            N1,
            w.now(),
            Biometric::Match,
        );
        assert_eq!(w.reason(&req), Some(SamReason::BadSignature));
        // Any signed field changed after signing breaks it too.
        let mut req = w.request("SAM-A", "kab_01", N1);
        req.path = "/dukcapil/get_json/UJI/CALL_BY_ELEMEN".into();
        assert_eq!(w.reason(&req), Some(SamReason::BadSignature));
        let mut req = w.request("SAM-A", "kab_01", N1);
        req.sam.biometric = "no_match".into();
        assert_eq!(w.reason(&req), Some(SamReason::BadSignature));
        // A bad signature does not burn the nonce.
        assert!(w.validate(&w.request("SAM-A", "kab_01", N1)).is_valid());
    }

    #[test]
    fn an_altered_body_is_told_apart_by_the_readers_digest() {
        let w = world();
        let mut req = w.request("SAM-A", "kab_01", N1);
        req.claimed_body_sha256 = Some(req.body_sha256.clone());
        req.body_sha256 = body_sha256_hex(br#"{"nik":"3201010101900002"}"#);
        assert_eq!(w.reason(&req), Some(SamReason::BodyAltered));
        // Without the digest the same request is just a bad signature.
        req.claimed_body_sha256 = None;
        assert_eq!(w.reason(&req), Some(SamReason::BadSignature));
        // A digest that matches the received body but not the signature is no excuse.
        req.claimed_body_sha256 = Some(req.body_sha256.clone());
        assert_eq!(w.reason(&req), Some(SamReason::BadSignature));
    }

    #[test]
    fn timestamps_outside_the_skew_or_before_the_start_are_stale() {
        let w = world();
        let old = w.kab(N1, w.now() - 31, Biometric::Match);
        let v = w.validate(&old);
        assert_eq!(v.reason, Some(SamReason::StaleTimestamp));
        assert!(v.detail.contains("31 detik yang lalu"), "{}", v.detail);
        let future = w.kab(N2, w.now() + 31, Biometric::Match);
        assert_eq!(w.reason(&future), Some(SamReason::StaleTimestamp));
        let edge = w.kab(N2, w.now() - 30, Biometric::Match);
        // 30 s old is allowed, but that is before the sidecar started (5 s ago).
        let v = w.validate(&edge);
        assert_eq!(v.reason, Some(SamReason::StaleTimestamp));
        assert!(v.detail.contains("sebelum layanan"), "{}", v.detail);
        w.clock.advance(std::time::Duration::from_secs(60));
        let edge = w.kab(N2, w.now() - 30, Biometric::Match);
        assert!(w.validate(&edge).is_valid());
    }

    #[test]
    fn a_nonce_is_accepted_once_within_the_window() {
        let w = world();
        let req = w.request("SAM-A", "kab_01", N1);
        assert!(w.validate(&req).is_valid());
        let v = w.validate(&req);
        assert_eq!(v.reason, Some(SamReason::ReplayedNonce));
        // Ten seconds later the replay is still refused; past the skew it is stale.
        w.clock.advance(std::time::Duration::from_secs(10));
        assert_eq!(w.reason(&req), Some(SamReason::ReplayedNonce));
        w.clock.advance(std::time::Duration::from_secs(25));
        w.validator.prune();
        assert_eq!(w.validator.nonces(), 0);
        assert_eq!(w.reason(&req), Some(SamReason::StaleTimestamp));
        // A new nonce is fine.
        assert!(w.validate(&w.request("SAM-A", "kab_01", N2)).is_valid());
    }

    #[test]
    fn a_sam_over_its_nonce_bound_is_refused() {
        let w = world();
        for i in 0..100 {
            let nonce = format!("nonce-bound-{i:06}");
            assert!(w.validate(&w.request("SAM-A", "kab_01", &nonce)).is_valid());
        }
        let req = w.request("SAM-A", "kab_01", "nonce-bound-999999");
        assert_eq!(w.reason(&req), Some(SamReason::NonceLimit));
        // Other SAMs are not affected.
        assert!(w.validate(&w.request("SAM-K", "kota_01", N1)).is_valid());
    }

    #[test]
    fn status_binding_and_agreement_reasons() {
        // (SAM, User ID, reason, a fragment of the detail)
        let cases = [
            ("SAM-N", "kab_01", SamReason::SamInactive, "pasal 45"),
            ("SAM-R", "kab_01", SamReason::SamRevoked, "dicabut"),
            ("SAM-K", "kab_01", SamReason::SamOtherPengguna, "pasal 26"),
            ("SAM-A", "siapa", SamReason::UnknownUser, "siapa"),
            (
                "SAM-L",
                "lama_01",
                SamReason::PksOutsideValidity,
                "2024-12-31",
            ),
            ("SAM-B", "beku_01", SamReason::PksInactive, "5/BEKU"),
            // Same Pengguna, but kab_ws's PKS grants the web service only.
            ("SAM-A", "kab_ws", SamReason::ChannelNotGranted, "2/KAB"),
        ];
        let w = world();
        for (i, (sam, user, reason, fragment)) in cases.into_iter().enumerate() {
            let v = w.validate(&w.request(sam, user, &format!("nonce-case-{i:06}")));
            assert_eq!(v.reason, Some(reason), "{sam} {user}: {v:?}");
            assert!(v.detail.contains(fragment), "{sam} {user}: {}", v.detail);
        }
    }

    #[test]
    fn data_lookups_need_a_matched_fingerprint() {
        let w = world();
        let req = w.kab(N1, w.now(), Biometric::NoMatch);
        assert_eq!(w.reason(&req), Some(SamReason::BiometricNotMatched));
        // Not a data lookup: the fingerprint result does not decide.
        let req = w.kab(N2, w.now(), Biometric::NoMatch);
        let mut not_data = req;
        not_data.data_lookup = false;
        assert!(w.validate(&not_data).is_valid());
    }

    #[test]
    fn a_swapped_registry_takes_effect_and_keeps_the_nonces() {
        let w = world();
        let req = w.request("SAM-A", "kab_01", N1);
        assert!(w.validate(&req).is_valid());
        w.validator.swap(Registry::default());
        assert_eq!(
            w.reason(&w.request("SAM-A", "kab_01", N2)),
            Some(SamReason::UnknownSam)
        );
        assert_eq!(w.validator.registry().sam_count(), 0);
        assert_eq!(w.validator.nonces(), 1);
    }

    #[test]
    fn verdicts_round_trip_on_the_wire_and_inconsistent_ones_are_refused() {
        let w = world();
        let v = w.validate(&w.request("SAM-N", "kab_01", N1));
        let wire = v.to_wire();
        assert_eq!(wire.reason, "sam_inactive");
        assert!(!wire.valid);
        assert_eq!(Verdict::from_wire(&wire), Some(v));
        let bogus = VerdictWire {
            valid: true,
            reason: "sam_inactive".into(),
            detail: String::new(),
        };
        assert_eq!(Verdict::from_wire(&bogus), None);
        let unknown = VerdictWire {
            valid: false,
            reason: "whatever".into(),
            detail: String::new(),
        };
        assert_eq!(Verdict::from_wire(&unknown), None);
    }
}

//! Property tests of what a card reader sends and signs: the canonical string, the
//! `X-SAM-*` and `Content-Digest` headers, and the gateway's question to the sidecar.
//!
//! Properties: the canonical string splits back into its seven fields (so two requests
//! never share one); a correctly signed request verifies, and any change of method, path,
//! body, timestamp, nonce, User ID or fingerprint result after signing is refused as a bad
//! signature; a newline in a signed field is refused before the signature is looked at;
//! header and wire formats round-trip; no input panics.
//!
//! Case counts keep `cargo test -p gerbang-sam` within seconds in the debug build; set
//! `PROPTEST_CASES` for a deeper run.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use gerbang_core::{PksSet, SamReason, Vocabulary};
use gerbang_sam::{
    Biometric, Freshness, HEADERS, ReaderKey, Registry, ReplayCache, SamHeaders, SignInput,
    ValidateRequest, Verdict, body_sha256_hex, canonical_string, content_digest,
    content_digest_sha256_hex, sign, validate,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// `cases` per property, unless `PROPTEST_CASES` asks for another number.
fn cases(cases: u32) -> Config {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default()
    } else {
        Config::with_cases(cases)
    }
}

const SAM: &str = "SAM-UJI-0001";
const USER: &str = "uji_01";
/// Another User ID of the same Pengguna, so a changed User ID is still a known one.
const OTHER_USER: &str = "uji_02";
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZRqpb8Z+dLwDBTqW3nkCw0ZqXYjz6Rqi4AbH5l3eXM";

/// The reader: a fixed synthetic key.
static READER: LazyLock<ReaderKey> = LazyLock::new(|| ReaderKey {
    sam_id: SAM.to_string(),
    signing: SigningKey::from_bytes(&[7; 32]),
});

/// One Pengguna with card readers, two User IDs and the reader's SAM.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let user = |id: &str, ip: &str| {
        format!(
            "[[user]]\nid = \"{id}\"\npassword_hash = \"{HASH}\"\nip_lan = [\"{ip}\"]\nkuota_harian = 10\nstatus = \"aktif\"\n"
        )
    };
    let text = format!(
        "nomor = \"1/UJI\"\npengguna = \"uji\"\nnama_pengguna = \"Lembaga Uji\"\njenis_pengguna = \"opd\"\ntingkat = \"pusat\"\ntujuan = \"uji\"\nelemen_data = [\"NIK\"]\nmetode_akses = [\"card_reader\"]\nkunci_akses = [\"NIK\"]\nmulai = 2025-01-01\nsampai = 2030-12-31\nstatus = \"aktif\"\n\n{}\n{}\n{}",
        user(USER, "127.0.0.2"),
        user(OTHER_USER, "127.0.0.3"),
        READER.pks_block("aktif"),
    );
    let set = PksSet::parse_all(&[("uji.toml".into(), text)], &Vocabulary::embedded())
        .unwrap_or_else(|e| panic!("test PKS: {e}"));
    Registry::build(&set).unwrap_or_else(|e| panic!("test registry: {e}"))
});

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default()
}

const FRESHNESS: Freshness = Freshness {
    skew_secs: 30,
    not_after_start: 1_780_000_000 - 60,
};

/// What a reader signs, in the forms the sidecar accepts.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    timestamp: i64,
    nonce: String,
    user: String,
    biometric: Biometric,
}

impl Request {
    fn signed(&self) -> ValidateRequest {
        let headers = sign(
            &READER.signing,
            &SignInput {
                sam_id: SAM,
                method: &self.method,
                path: &self.path,
                body: &self.body,
                user_id: &self.user,
                biometric: self.biometric,
                timestamp: self.timestamp,
                nonce: &self.nonce,
            },
        );
        ValidateRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            body_sha256: body_sha256_hex(&self.body),
            claimed_body_sha256: None,
            user_id: self.user.clone(),
            data_lookup: true,
            sam: headers,
        }
    }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("POST".to_string()),
        1 => "[A-Z]{1,10}",
        1 => "[!-~]{1,12}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    "/[!-~]{0,80}"
}

fn nonce() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{16,64}"
}

fn request() -> impl Strategy<Value = Request> {
    (
        method(),
        path(),
        proptest::collection::vec(any::<u8>(), 0..512),
        -30i64..=30,
        nonce(),
        prop_oneof![Just(USER.to_string()), Just(OTHER_USER.to_string())],
    )
        .prop_map(|(method, path, body, skew, nonce, user)| Request {
            method,
            path,
            body,
            timestamp: now().timestamp() + skew,
            nonce,
            user,
            biometric: Biometric::Match,
        })
}

/// One signed field changed after signing, the form kept valid.
#[derive(Debug, Clone)]
enum Change {
    Method(String),
    Path(String),
    Body(Vec<u8>),
    /// Another second, or the same second written with a leading zero.
    Timestamp(Option<i64>),
    Nonce(String),
    User,
    Biometric,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        method().prop_map(Change::Method),
        path().prop_map(Change::Path),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Change::Body),
        proptest::option::of(-30i64..=30).prop_map(Change::Timestamp),
        nonce().prop_map(Change::Nonce),
        Just(Change::User),
        Just(Change::Biometric),
    ]
}

fn check(req: &ValidateRequest) -> Verdict {
    // The embedded cache answers without waiting.
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("a runtime: {e}"))
        .block_on(validate(
            &REGISTRY,
            &ReplayCache::new(100),
            req,
            now(),
            FRESHNESS,
        ))
        .unwrap_or_else(|e| panic!("the embedded cache always answers: {e}"))
}

/// The canonical string of a request as received.
fn canonical_of(req: &ValidateRequest) -> String {
    canonical_string(
        &req.method,
        &req.path,
        &req.body_sha256,
        &req.sam.timestamp,
        &req.sam.nonce,
        &req.user_id,
        &req.sam.biometric,
    )
}

proptest! {
    #![proptest_config(cases(256))]

    /// A request signed by the registered reader verifies.
    #[test]
    fn signed_requests_are_valid(r in request()) {
        let v = check(&r.signed());
        prop_assert!(v.is_valid(), "{:?}", v);
    }

    /// Any one signed field changed after signing: a bad signature, and a different
    /// canonical string. With the reader's `Content-Digest` of the original body, a changed
    /// body is told apart as altered.
    #[test]
    fn any_change_after_signing_is_a_bad_signature(r in request(), c in change()) {
        let original = r.signed();
        let mut req = original.clone();
        match c {
            Change::Method(m) => req.method = m,
            Change::Path(p) => req.path = p,
            Change::Body(b) => req.body_sha256 = body_sha256_hex(&b),
            Change::Timestamp(Some(skew)) => req.sam.timestamp = (now().timestamp() + skew).to_string(),
            Change::Timestamp(None) => req.sam.timestamp = format!("0{}", req.sam.timestamp),
            Change::Nonce(n) => req.sam.nonce = n,
            Change::User => req.user_id = if r.user == USER { OTHER_USER } else { USER }.to_string(),
            Change::Biometric => req.sam.biometric = Biometric::NoMatch.as_str().to_string(),
        }
        // A change to the same value is no change.
        prop_assume!(canonical_of(&req) != canonical_of(&original));
        prop_assert_eq!(check(&req).reason, Some(SamReason::BadSignature));
        if req.body_sha256 != original.body_sha256 {
            req.claimed_body_sha256 = Some(original.body_sha256.clone());
            prop_assert_eq!(check(&req).reason, Some(SamReason::BodyAltered));
        }
    }

    /// parse∘print: the canonical string of one-line fields splits back into them, so
    /// distinct requests never share a canonical string.
    #[test]
    fn canonical_string_splits_back(fields in proptest::collection::vec("[^\n]{0,24}", 7)) {
        let s = canonical_string(&fields[0], &fields[1], &fields[2], &fields[3], &fields[4], &fields[5], &fields[6]);
        let back: Vec<&str> = s.split('\n').collect();
        prop_assert_eq!(back, fields.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// A newline or carriage return in the method, the path or the User ID would let two
    /// requests share a canonical string: refused as malformed even when signed.
    #[test]
    fn a_line_break_in_a_signed_field_is_malformed(
        r in request(),
        field in 0usize..3,
        at in any::<prop::sample::Index>(),
        brk in prop_oneof![Just('\n'), Just('\r')],
    ) {
        let mut r = r;
        let target = match field {
            0 => &mut r.method,
            1 => &mut r.path,
            _ => &mut r.user,
        };
        let i = at.index(target.len() + 1);
        // Not before the path's leading `/`, which is a different refusal.
        let i = if field == 1 { i.max(1) } else { i };
        target.insert(i, brk);
        prop_assert_eq!(check(&r.signed()).reason, Some(SamReason::MalformedHeaders));
    }

    /// Anything at all in every field: a verdict, never a panic, and never valid without
    /// the reader's signature.
    #[test]
    fn any_request_gets_a_verdict(
        method in "\\PC{0,8}",
        path in "\\PC{0,24}",
        body_sha256 in prop_oneof!["[0-9a-f]{64}", "\\PC{0,70}"],
        claimed in proptest::option::of(prop_oneof!["[0-9a-f]{64}", "\\PC{0,70}"]),
        user_id in "\\PC{0,12}",
        data_lookup in any::<bool>(),
        sam_id in prop_oneof![Just(SAM.to_string()), "\\PC{0,70}"],
        timestamp in prop_oneof![Just(now().timestamp().to_string()), "[0-9+-]{0,14}", "\\PC{0,8}"],
        nonce in prop_oneof![nonce(), "\\PC{0,70}"],
        biometric in prop_oneof![Just("match".to_string()), "\\PC{0,9}"],
        signature in prop_oneof![
            proptest::collection::vec(any::<u8>(), 64).prop_map(|b| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(b)
            }),
            "\\PC{0,100}",
        ],
    ) {
        let req = ValidateRequest {
            method,
            path,
            body_sha256,
            claimed_body_sha256: claimed,
            user_id,
            data_lookup,
            sam: SamHeaders { sam_id, timestamp, nonce, biometric, signature },
        };
        let v = check(&req);
        prop_assert!(!v.is_valid(), "{:?}", v);
        prop_assert_eq!(Verdict::from_wire(&v.to_wire()), Some(v));
    }

    /// `Content-Digest`: the digest of a body names that body's SHA-256, among other
    /// members, in any case and spacing; any other text names none or a well-formed one.
    #[test]
    fn content_digest_round_trips(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        before in proptest::option::of("sha-512=:[A-Za-z0-9+/]{0,12}={0,2}:"),
        upper in any::<bool>(),
        space in "[ \t]{0,2}",
    ) {
        let mut header = content_digest(&body);
        if upper {
            header = header.replacen("sha-256", "SHA-256", 1);
        }
        let header = match before {
            Some(other) => format!("{other},{space}{header}"),
            None => format!("{space}{header}{space}"),
        };
        prop_assert_eq!(content_digest_sha256_hex(&header), Some(body_sha256_hex(&body)));
    }

    #[test]
    fn any_content_digest_text_is_read_safely(s in prop_oneof!["\\PC{0,80}", "(sha-256=:[A-Za-z0-9+/=]{0,48}:,? ?){0,3}"]) {
        if let Some(hex) = content_digest_sha256_hex(&s) {
            prop_assert_eq!(hex.len(), 64);
            prop_assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        }
    }

    /// The headers as a reader sends them read back as the same five values, under the
    /// names the gateway looks for; the gateway's question to the sidecar and the verdict
    /// survive their JSON encoding.
    #[test]
    fn headers_and_wire_formats_round_trip(
        values in proptest::array::uniform5("\\PC{0,20}"),
        r in request(),
        claimed in proptest::option::of("[0-9a-f]{64}"),
        detail in "\\PC{0,40}",
        reason in proptest::option::of(proptest::sample::select(&SamReason::ALL[..])),
    ) {
        let headers = SamHeaders::from_values(values.clone());
        prop_assert_eq!(headers.values().map(str::to_string), values.clone());
        let pairs = headers.clone().into_pairs();
        for ((name, value), (want_name, want_value)) in pairs.iter().zip(HEADERS.iter().zip(&values)) {
            prop_assert_eq!(name.to_ascii_lowercase(), *want_name);
            prop_assert_eq!(value, want_value);
        }

        let mut req = r.signed();
        req.claimed_body_sha256 = claimed;
        req.sam = headers;
        let wire = serde_json::to_string(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: ValidateRequest = serde_json::from_str(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, req);

        let verdict = Verdict { reason, detail };
        let wire = serde_json::to_string(&verdict.to_wire()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = serde_json::from_str(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Verdict::from_wire(&back), Some(verdict));
    }

    /// The fingerprint result: exactly `match` or `no_match`.
    #[test]
    fn biometric_is_exactly_one_of_two_words(s in "\\PC{0,10}") {
        for b in [Biometric::Match, Biometric::NoMatch] {
            prop_assert_eq!(Biometric::parse(b.as_str()), Some(b));
        }
        let want = match s.as_str() {
            "match" => Some(Biometric::Match),
            "no_match" => Some(Biometric::NoMatch),
            _ => None,
        };
        prop_assert_eq!(Biometric::parse(&s), want);
    }
}

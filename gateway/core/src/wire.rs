//! The DWH wire format: request bodies as integrators send them, the Spring-style answer
//! envelope, and refusals with the DWH's own texts and codes (see `docs/dwh-api.md`).
//!
//! Bodies are parsed into ordered `(key, raw value)` pairs: keys must be printable ASCII
//! and are matched without ASCII case, a key present twice in any case is refused, and
//! values are kept as raw JSON text so 16-digit numbers never pass through `f64`. Nothing
//! of a client's body is forwarded as sent: the gateway writes the DWH a new body
//! ([`JsonObject`]) from the values it checked.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::{self, Write as _};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::card_reader::SamReason;
use crate::config::StatusMode;

/// A JSON object as ordered `(key, raw value)` pairs, borrowed from the text it was parsed
/// from: a key is copied only when it holds an escape. A DWH answer has dozens of fields per
/// record; filtering one was a tenth of the gateway's CPU, most of it copying each key and
/// value.
#[derive(Debug, Default)]
pub struct Pairs<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(PairsVisitor)
    }
}

/// An object key, borrowed when it has no escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Why a request body was refused before anything else looked at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not a JSON object: {0}")]
    NotJson(String),
    #[error("the key \"{0}\" appears more than once (keys are compared without case)")]
    DuplicateKey(String),
    /// A key holding anything but printable ASCII. Unicode case folding makes `"nık"`,
    /// `"NİK"` or `"uſer_id"` read as `nik` or `user_id` to some comparisons and not to
    /// others; such a key names no parameter of the DWH, so it is refused, never guessed.
    #[error("a key holds a character that is not printable ASCII")]
    NonAsciiKey,
}

/// A parsed request body.
#[derive(Debug)]
pub struct RequestBody {
    pairs: Vec<(String, Box<RawValue>)>,
    /// ASCII-lower-cased keys, index-aligned with `pairs`.
    lower: Vec<String>,
}

/// An element claim or search value as the DWH is sent it: text, or a whole number kept
/// digit-exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Text(String),
    /// ASCII digits only.
    Integer(String),
}

/// Why a field's value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{key}\" must be {expected}")]
pub struct ValueError {
    pub key: String,
    pub expected: &'static str,
}

impl RequestBody {
    /// Parses a body, refusing anything but a JSON object with unique keys.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let Pairs(borrowed) =
            serde_json::from_slice(bytes).map_err(|e| BodyError::NotJson(e.to_string()))?;
        let mut lower = Vec::with_capacity(borrowed.len());
        let mut seen = HashSet::with_capacity(borrowed.len());
        let mut pairs = Vec::with_capacity(borrowed.len());
        for (k, v) in borrowed {
            if !k.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(BodyError::NonAsciiKey);
            }
            let l = k.to_ascii_lowercase();
            if !seen.insert(l.clone()) {
                return Err(BodyError::DuplicateKey(k.into_owned()));
            }
            lower.push(l);
            pairs.push((k.into_owned(), v.to_owned()));
        }
        Ok(Self { pairs, lower })
    }

    /// The raw JSON value of a key given in lower case (matched without case), for a value
    /// that is not a single claim (the records of a data balikan).
    pub fn raw(&self, key_lower: &str) -> Option<&RawValue> {
        self.lower
            .iter()
            .position(|k| k == key_lower)
            .map(|i| &*self.pairs[i].1)
    }

    /// Whether the key is present (any case).
    pub fn has(&self, key_lower: &str) -> bool {
        self.raw(key_lower).is_some()
    }

    /// Every key, as sent and lower-cased, in the client's order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .zip(&self.lower)
            .map(|((k, _), l)| (k.as_str(), l.as_str()))
    }

    /// A claim or search value: a string, or a whole number (digits only, kept exact);
    /// `null` and a missing key give `None`; anything else is refused.
    pub fn claim(&self, key_lower: &str) -> Result<Option<Claim>, ValueError> {
        match self.scalar(key_lower) {
            Some(Scalar::Null) => Ok(None),
            Some(Scalar::Text(t)) => Ok(Some(Claim::Text(t))),
            Some(Scalar::Number(n)) if is_json_integer(n) => Ok(Some(Claim::Integer(n.into()))),
            _ => Err(ValueError {
                key: key_lower.to_string(),
                expected: "a string or a whole number",
            }),
        }
    }

    /// A string-or-number field as text: `"123"` and `123` both give `123`; `null` and a
    /// missing key give `None`; objects, arrays and booleans are refused.
    pub fn text(&self, key_lower: &str) -> Result<Option<String>, ValueError> {
        match self.scalar(key_lower) {
            Some(Scalar::Null) => Ok(None),
            Some(Scalar::Text(t)) => Ok(Some(t)),
            Some(Scalar::Number(n)) => Ok(Some(n.to_string())),
            None => Err(ValueError {
                key: key_lower.to_string(),
                expected: "a string or a number",
            }),
        }
    }

    /// A field's value when it is a string, a number (its raw digits) or `null` (also when
    /// the key is missing); `None` for objects, arrays and booleans.
    fn scalar(&self, key_lower: &str) -> Option<Scalar<'_>> {
        let Some(raw) = self.raw(key_lower) else {
            return Some(Scalar::Null);
        };
        let s = raw.get().trim();
        match s.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(s).ok().map(Scalar::Text),
            Some(b'-' | b'0'..=b'9') => Some(Scalar::Number(s)),
            Some(b'n') if s == "null" => Some(Scalar::Null),
            _ => None,
        }
    }
}

/// A JSON value a field may hold.
enum Scalar<'a> {
    Null,
    Text(String),
    /// The number's JSON text.
    Number(&'a str),
}

/// A JSON object written member by member: the body Gerbang sends the DWH, rebuilt from
/// the values it checked, with the keys in the DWH's spelling. Keys are the caller's
/// constants or vocabulary names; values are written as JSON strings (escaped) or as digits
/// checked to be digits, so nothing a client sent reaches the DWH as raw JSON.
#[derive(Debug, Clone)]
pub struct JsonObject(String);

impl Default for JsonObject {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonObject {
    pub fn new() -> Self {
        Self(String::from("{"))
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_json_string(&mut self.0, key);
        self.0.push(':');
    }

    /// `"key":"value"`.
    pub fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_string(&mut self.0, value);
    }

    /// `"key":value` for a claim: a string, or a whole number as its digits.
    pub fn claim(&mut self, key: &str, value: &Claim) {
        match value {
            Claim::Text(t) => self.string(key, t),
            Claim::Integer(digits) if is_json_integer(digits) => {
                self.key(key);
                self.0.push_str(digits);
            }
            // Not digits after all: sent as text rather than as raw JSON.
            Claim::Integer(other) => self.string(key, other),
        }
    }

    /// The object's JSON text.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.0.push('}');
        self.0.into_bytes()
    }
}

/// Digits that JSON reads as a whole number: no sign, no leading zero.
fn is_json_integer(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// Appends `s` as a JSON string literal.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Wraps raw JSON objects in the DWH's page envelope.
pub fn envelope(records: &[String]) -> String {
    let mut out = String::with_capacity(128 + records.iter().map(String::len).sum::<usize>());
    out.push_str("{\"content\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r);
    }
    let n = records.len();
    let _ = write!(
        out,
        "],\"lastPage\":true,\"numberOfElements\":{n},\"sort\":null,\"totalElements\":{n},\"firstPage\":true,\"number\":0,\"size\":{n}}}"
    );
    out
}

/// Adds `"quotaLimiter":N` as the last member of a JSON object text.
pub fn append_quota_limiter(object: &mut String, remaining: u32) {
    if object.ends_with('}') {
        object.pop();
        let _ = write!(object, ",\"quotaLimiter\":{remaining}}}");
    }
}

/// Every reason Gerbang answers a request itself instead of with the DWH's data.
///
/// Codes and texts are the DWH's where the DWH has one (clients compare the texts
/// case-insensitively); Gerbang's own conditions use codes from 20 up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Wrong password or unknown User ID (never says which).
    LoginFailed,
    /// Too many failed logins from this address or for this User ID.
    LoginLocked,
    /// Registered IP LAN of another User ID, or a body `ip_user` that is not the peer.
    IpMismatch,
    /// The connecting address is registered to no User ID.
    IpNotRegistered,
    /// `ip_user` is not an IP address.
    InvalidIp,
    /// Daily NIK hits used up.
    QuotaExhausted,
    /// Too many requests per second for the User ID or the Pengguna.
    RateLimited,
    /// The quota store cannot record the hit: refused rather than counted blindly.
    QuotaUnavailable,
    /// Outside the PKS validity period.
    OutsideValidity,
    /// A required parameter is missing, or the body is not usable JSON.
    IncompleteParameters,
    /// User ID or password empty.
    EmptyCredentials,
    /// A body key the service does not have, or one that is not printable ASCII.
    UnknownParameter,
    /// A `user_id` that cannot be a User ID (not 1 to 64 ASCII letters, digits, `_`, `.`,
    /// `-`): refused before anything keeps it.
    UserIdFormat,
    /// The NIK does not follow the Dukcapil format.
    NikFormat,
    /// The PKS is frozen or ended (art. 45).
    InstitutionInactive,
    /// The User ID is deactivated (art. 45).
    UserInactive,
    /// The User ID must present a client certificate its PKS names (`sertifikat_klien`),
    /// and the connection presented none or another.
    ClientCertificate,
    /// The PKS does not grant this action, channel or lookup key.
    NotPermitted,
    /// A data balikan under a PKS whose `data_balikan` names nothing to return.
    BalikanNotAgreed,
    /// The data balikan cannot be checked now (the store of looked-up NIKs or the decision
    /// log's key is unavailable): refused rather than accepted unchecked.
    BalikanUnavailable,
    /// The body is larger than the configured limit.
    BodyTooLarge,
    /// No such service path.
    UnknownService,
    /// Only POST is served on the API paths.
    MethodNotAllowed,
    /// Card-reader request that could not be validated (fail closed).
    CardReaderUnavailable,
    /// Card-reader request the SAM sidecar refused, or could not answer (fail closed).
    CardReader(SamReason),
    /// The DWH could not be reached or failed.
    UpstreamUnavailable,
    /// The DWH did not answer in time.
    UpstreamTimeout,
    /// The DWH answered something Gerbang cannot filter; nothing of it is passed on.
    UpstreamInvalid,
    /// The answer's decision-log record could not be written, so the data is not released
    /// (docs/architecture.md, "Targets").
    AuditUnavailable,
    /// The client did not send its whole request body within `listen.request_body_timeout_ms`:
    /// the client's slowness, never the DWH's.
    BodyTimeout,
    /// The request's HTTP framing is ambiguous or malformed (both `Content-Length` and
    /// `Transfer-Encoding`, a repeated `Content-Length`, a transfer coding other than
    /// `chunked`, folded header lines, a body on a method without one): where its body ends
    /// is unknown, so nothing of it is read or forwarded and the connection is closed
    /// (RFC 9112 §6.3). HTTP 400 in both status modes.
    BadFraming,
}

impl Refusal {
    /// The `RESPONSE_CODE`.
    pub fn code(self) -> &'static str {
        match self {
            Self::LoginFailed | Self::LoginLocked => "03",
            Self::IpMismatch => "04",
            Self::QuotaExhausted => "05",
            Self::OutsideValidity => "06",
            Self::IncompleteParameters | Self::BodyTooLarge => "07",
            Self::EmptyCredentials => "09",
            Self::IpNotRegistered | Self::InvalidIp => "10",
            Self::NikFormat => "15",
            Self::InstitutionInactive => "16",
            Self::UserInactive => "17",
            Self::NotPermitted => "21",
            Self::ClientCertificate => "33",
            Self::BalikanNotAgreed => "34",
            Self::BalikanUnavailable => "35",
            Self::UnknownService | Self::MethodNotAllowed => "22",
            Self::CardReaderUnavailable | Self::CardReader(_) => "23",
            Self::RateLimited => "24",
            Self::QuotaUnavailable => "25",
            Self::UnknownParameter => "27",
            Self::UserIdFormat => "28",
            Self::UpstreamUnavailable | Self::UpstreamInvalid => "31",
            Self::UpstreamTimeout => "32",
            Self::AuditUnavailable => "26",
            Self::BodyTimeout => "29",
            Self::BadFraming => "30",
        }
    }

    /// The refusal a policy's `@code` names (the codes a policy may use).
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "04" => Self::IpMismatch,
            "06" => Self::OutsideValidity,
            "16" => Self::InstitutionInactive,
            "17" => Self::UserInactive,
            "21" => Self::NotPermitted,
            "23" => Self::CardReaderUnavailable,
            _ => return None,
        })
    }

    /// The `RESPON` text.
    pub fn respon(self) -> &'static str {
        match self {
            Self::LoginFailed => "Login Gagal",
            Self::LoginLocked => "Login Gagal, Akun Dikunci Sementara",
            Self::IpMismatch => "IP Address Tidak Sesuai",
            Self::IpNotRegistered => "IP Client Tidak Terdaftar",
            Self::InvalidIp => "IP Address Tidak Valid",
            Self::QuotaExhausted => "Kuota Akses Hari ini telah Habis",
            Self::RateLimited => "Terlalu Banyak Permintaan, Coba Lagi Sebentar",
            Self::QuotaUnavailable => "Layanan Kuota Tidak Tersedia",
            Self::OutsideValidity => "Akses di Luar Waktu yang Diizinkan",
            Self::IncompleteParameters => "Parameter Tidak Lengkap",
            Self::EmptyCredentials => "User ID, Password atau IP Kosong",
            Self::UnknownParameter => "Parameter Tidak Dikenal",
            Self::UserIdFormat => "User ID Tidak Sesuai Format",
            Self::NikFormat => "NIK Tidak Sesuai Format Dukcapil",
            Self::InstitutionInactive => "Lembaga Tidak Aktif",
            Self::UserInactive => "User ID Tidak Aktif",
            Self::ClientCertificate => "Sertifikat Klien Tidak Sesuai",
            Self::NotPermitted => "Akses Tidak Diizinkan oleh PKS",
            Self::BalikanNotAgreed => "PKS Tidak Mengatur Data Balikan",
            Self::BalikanUnavailable => "Layanan Data Balikan Tidak Tersedia",
            Self::BodyTooLarge => "Permintaan Terlalu Besar",
            Self::UnknownService => "Layanan Tidak Dikenal",
            Self::MethodNotAllowed => "Metode Tidak Diizinkan",
            Self::CardReaderUnavailable => "Validasi Card Reader Gagal",
            Self::CardReader(reason) => reason.respon(),
            Self::UpstreamUnavailable => "Layanan DWH Tidak Tersedia",
            Self::UpstreamTimeout => "Layanan DWH Tidak Merespons",
            Self::UpstreamInvalid => "Jawaban DWH Tidak Dapat Diproses",
            Self::AuditUnavailable => "Log Audit Tidak Dapat Ditulis",
            Self::BodyTimeout => "Waktu Pengiriman Permintaan Habis",
            Self::BadFraming => "Format Permintaan HTTP Tidak Sah",
        }
    }

    /// The HTTP status in `rest` mode.
    pub fn rest_status(self) -> u16 {
        match self {
            Self::LoginFailed | Self::EmptyCredentials => 401,
            Self::IpMismatch
            | Self::IpNotRegistered
            | Self::OutsideValidity
            | Self::InstitutionInactive
            | Self::UserInactive
            | Self::ClientCertificate
            | Self::NotPermitted
            | Self::BalikanNotAgreed
            | Self::CardReaderUnavailable => 403,
            Self::LoginLocked | Self::QuotaExhausted | Self::RateLimited => 429,
            Self::CardReader(reason) => reason.rest_status(),
            Self::QuotaUnavailable | Self::AuditUnavailable | Self::BalikanUnavailable => 503,
            Self::IncompleteParameters
            | Self::NikFormat
            | Self::InvalidIp
            | Self::UnknownParameter
            | Self::UserIdFormat
            | Self::BadFraming => 400,
            Self::BodyTimeout => 408,
            Self::BodyTooLarge => 413,
            Self::UnknownService => 404,
            Self::MethodNotAllowed => 405,
            Self::UpstreamUnavailable | Self::UpstreamInvalid => 502,
            Self::UpstreamTimeout => 504,
        }
    }

    /// The HTTP status in the configured mode. A framing error is HTTP's, not the DWH's:
    /// 400 in both modes, as for a head that does not parse at all.
    pub fn status(self, mode: StatusMode) -> u16 {
        match (mode, self) {
            (StatusMode::Rest, _) | (StatusMode::Dwh, Self::BadFraming) => self.rest_status(),
            (StatusMode::Dwh, _) => 200,
        }
    }

    /// A short stable name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::LoginFailed => "login_failed",
            Self::LoginLocked => "login_locked",
            Self::IpMismatch => "ip_mismatch",
            Self::IpNotRegistered => "ip_not_registered",
            Self::InvalidIp => "invalid_ip",
            Self::QuotaExhausted => "quota_exhausted",
            Self::RateLimited => "rate_limited",
            Self::QuotaUnavailable => "quota_unavailable",
            Self::OutsideValidity => "outside_validity",
            Self::IncompleteParameters => "incomplete_parameters",
            Self::EmptyCredentials => "empty_credentials",
            Self::UnknownParameter => "unknown_parameter",
            Self::UserIdFormat => "user_id_format",
            Self::NikFormat => "nik_format",
            Self::InstitutionInactive => "institution_inactive",
            Self::UserInactive => "user_inactive",
            Self::ClientCertificate => "client_certificate",
            Self::NotPermitted => "not_permitted",
            Self::BalikanNotAgreed => "balikan_not_agreed",
            Self::BalikanUnavailable => "balikan_unavailable",
            Self::BodyTooLarge => "body_too_large",
            Self::UnknownService => "unknown_service",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::CardReaderUnavailable => "card_reader_unavailable",
            Self::CardReader(reason) => reason.refusal_name(),
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamInvalid => "upstream_invalid",
            Self::AuditUnavailable => "audit_unavailable",
            Self::BodyTimeout => "body_timeout",
            Self::BadFraming => "bad_framing",
        }
    }

    /// The answer body: the DWH envelope with `RESPON`, `RESPONSE_CODE` and, when given, a
    /// `RESPONSE_DESC` saying why in more words. The detail must never hold population data.
    pub fn body(self, detail: &str) -> String {
        self.body_with_quota(detail, None)
    }

    /// [`Refusal::body`] with the remaining daily quota as `quotaLimiter`, when the User ID
    /// is known.
    pub fn body_with_quota(self, detail: &str, quota_limiter: Option<u32>) -> String {
        let mut obj = String::with_capacity(96 + detail.len());
        obj.push_str("{\"RESPON\":");
        push_json_string(&mut obj, self.respon());
        obj.push_str(",\"RESPONSE_CODE\":");
        push_json_string(&mut obj, self.code());
        if !detail.is_empty() {
            obj.push_str(",\"RESPONSE_DESC\":");
            push_json_string(&mut obj, detail);
        }
        obj.push('}');
        let mut out = envelope(&[obj]);
        if let Some(q) = quota_limiter {
            append_quota_limiter(&mut out, q);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_without_case_and_duplicates_are_refused() {
        let b = RequestBody::parse(br#"{"NIK":"3201011501900001","User_Id":"u","password":"p"}"#)
            .expect("valid");
        assert_eq!(
            b.text("nik").expect("ok").as_deref(),
            Some("3201011501900001")
        );
        assert_eq!(b.text("user_id").expect("ok").as_deref(), Some("u"));
        assert_eq!(b.text("ip_user").expect("ok"), None);
        let e = RequestBody::parse(br#"{"nik":"1","NIK":"2"}"#).expect_err("dup");
        assert_eq!(e, BodyError::DuplicateKey("NIK".into()));
    }

    #[test]
    fn numbers_stay_digit_exact() {
        // 2^53 + 1 cannot be represented as f64.
        let b = RequestBody::parse(br#"{"nik":9007199254740993}"#).expect("valid");
        assert_eq!(
            b.text("nik").expect("ok").as_deref(),
            Some("9007199254740993")
        );
    }

    #[test]
    fn non_objects_and_wrong_types_are_refused() {
        assert!(matches!(
            RequestBody::parse(b"[1,2]"),
            Err(BodyError::NotJson(_))
        ));
        assert!(matches!(
            RequestBody::parse(b"{\"nik\":"),
            Err(BodyError::NotJson(_))
        ));
        assert!(matches!(
            RequestBody::parse(b""),
            Err(BodyError::NotJson(_))
        ));
        let b = RequestBody::parse(br#"{"nik":{"a":1},"x":true}"#).expect("valid");
        assert!(b.text("nik").is_err());
        assert!(b.text("x").is_err());
    }

    #[test]
    fn keys_outside_printable_ascii_are_refused_before_case_folding() {
        // Unicode lower-casing would keep these apart from `nik` / `user_id`; a DWH that
        // folds case its own way might not.
        for body in [
            r#"{"nık":"1"}"#,
            r#"{"NİK":"1"}"#,
            r#"{"uſer_id":"u"}"#,
            r#"{"user id":"u"}"#,
            "{\"nik\\u0000\":\"1\"}",
        ] {
            assert_eq!(
                RequestBody::parse(body.as_bytes()).err(),
                Some(BodyError::NonAsciiKey),
                "{body}"
            );
        }
        // Escapes that decode to ASCII are the key they spell.
        let b = RequestBody::parse(br#"{"\u004eIK":"1","USER_ID":"u"}"#).expect("valid");
        let keys: Vec<_> = b.keys().collect();
        assert_eq!(keys, vec![("NIK", "nik"), ("USER_ID", "user_id")]);
    }

    #[test]
    fn claims_are_strings_or_whole_numbers() {
        let b = RequestBody::parse(
            br#"{"a":"x\"y","b":9007199254740993,"c":null,"d":1.5,"e":-1,"f":true,"g":[1]}"#,
        )
        .expect("valid");
        assert_eq!(b.claim("a"), Ok(Some(Claim::Text("x\"y".into()))));
        assert_eq!(
            b.claim("b"),
            Ok(Some(Claim::Integer("9007199254740993".into())))
        );
        assert_eq!(b.claim("c"), Ok(None));
        assert_eq!(b.claim("z"), Ok(None));
        for bad in ["d", "e", "f", "g"] {
            assert!(b.claim(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rebuilt_object_escapes_text_and_writes_only_digits_raw() {
        let mut o = JsonObject::new();
        o.string("nik", "3201011501900001");
        o.string("user_id", "a\"b\\c\u{1}");
        o.claim("NO_RT", &Claim::Integer("7".into()));
        o.claim("A", &Claim::Integer("007".into()));
        o.claim("X", &Claim::Integer("1,\"y\":2".into()));
        assert_eq!(
            String::from_utf8(o.into_bytes()).expect("utf8"),
            r#"{"nik":"3201011501900001","user_id":"a\"b\\c\u0001","NO_RT":7,"A":"007","X":"1,\"y\":2"}"#
        );
        assert_eq!(JsonObject::new().into_bytes(), b"{}");
    }

    #[test]
    fn refusal_body_is_a_dwh_envelope() {
        let body = Refusal::LoginFailed.body("");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["content"][0]["RESPON"], "Login Gagal");
        assert_eq!(v["content"][0]["RESPONSE_CODE"], "03");
        assert_eq!(v["numberOfElements"], 1);
        assert!(v["sort"].is_null());
        assert_eq!(Refusal::QuotaExhausted.status(StatusMode::Rest), 429);
        assert_eq!(Refusal::QuotaExhausted.status(StatusMode::Dwh), 200);
        assert_eq!(Refusal::BodyTimeout.status(StatusMode::Rest), 408);
        assert_eq!(Refusal::BodyTimeout.status(StatusMode::Dwh), 200);
        assert_eq!(Refusal::BadFraming.status(StatusMode::Dwh), 400);
        assert_eq!(Refusal::BadFraming.code(), "30");
    }
}

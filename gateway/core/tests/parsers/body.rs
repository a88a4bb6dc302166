//! `RequestBody`: a JSON object from a Pengguna's client, keys matched without case, a key
//! present twice (in any case) refused, fields read as text or number without passing
//! through f64, and written back with one field replaced.

use gerbang_core::{BodyError, Claim, JsonObject, RequestBody};
use proptest::prelude::*;

use crate::json::{Json, Style, is_json, number, style, text, value};

/// Keys clients send, and some they should not.
const KEYS: &[&str] = &[
    "nik",
    "no_kk",
    "user_id",
    "password",
    "ip_user",
    "treshold",
    "threshold",
    "nama_lgkp",
    "tgl_lhr",
    "alamat",
];

/// An ASCII key in random case: a known one or any identifier.
fn key() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        3 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-z_][a-z0-9_]{0,11}",
    ];
    (base, any::<u64>()).prop_map(|(k, case)| {
        k.chars()
            .enumerate()
            .map(|(i, c)| {
                if case >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    })
}

/// A field value: mostly strings and numbers, sometimes what a field must not be.
fn field() -> impl Strategy<Value = Json> {
    prop_oneof![
        4 => text().prop_map(Json::Str),
        3 => number().prop_map(Json::Num),
        1 => Just(Json::Null),
        2 => value(),
    ]
}

/// A body: up to eight fields, keys often repeated in another case.
fn body() -> impl Strategy<Value = (Vec<(String, Json)>, Style)> {
    (proptest::collection::vec((key(), field()), 0..8), style())
}

/// What `text()` must answer for a field.
fn expected_text(v: &Json) -> Result<Option<String>, ()> {
    match v {
        Json::Str(s) => Ok(Some(s.clone())),
        Json::Num(n) => Ok(Some(n.clone())),
        Json::Null => Ok(None),
        Json::Bool(_) | Json::Arr(_) | Json::Obj(_) => Err(()),
    }
}

/// The first key that repeats an earlier one without case, as written.
fn first_duplicate(pairs: &[(String, Json)]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| !seen.insert(k.to_ascii_lowercase()))
}

proptest! {
    #![proptest_config(crate::cases(512))]

    /// Any bytes at all: an answer, never a panic.
    #[test]
    fn any_bytes_are_parsed_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = RequestBody::parse(&bytes);
    }

    /// A valid body cut short or with a byte changed: an answer, never a panic.
    #[test]
    fn damaged_bodies_are_parsed_or_refused(
        (pairs, mut st) in body(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = Json::Obj(pairs).render(&mut st).into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = RequestBody::parse(&bytes);
        bytes.truncate(cut.index(bytes.len()));
        let _ = RequestBody::parse(&bytes);
    }

    /// Every field is found under its key in any case, and reads as the text or number the
    /// client wrote, digit for digit; a key repeated in any case refuses the whole body.
    #[test]
    fn fields_read_back_and_duplicates_are_refused((pairs, mut st) in body()) {
        let text = Json::Obj(pairs.clone()).render(&mut st);
        let parsed = RequestBody::parse(text.as_bytes());
        if let Some(dup) = first_duplicate(&pairs) {
            prop_assert_eq!(parsed.err(), Some(BodyError::DuplicateKey(dup.to_string())));
            return Ok(());
        }
        let body = parsed.map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        for (key, value) in &pairs {
            let lower = key.to_ascii_lowercase();
            prop_assert!(body.has(&lower));
            prop_assert_eq!(body.text(&lower).map_err(|_| ()), expected_text(value), "{}", key);
        }
        for absent in KEYS.iter().filter(|k| !pairs.iter().any(|(p, _)| p.eq_ignore_ascii_case(k))) {
            prop_assert!(!body.has(absent));
            prop_assert_eq!(body.text(absent), Ok(None));
        }
        let keys: Vec<(String, String)> =
            body.keys().map(|(k, l)| (k.to_string(), l.to_string())).collect();
        let want: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, _)| (k.clone(), k.to_ascii_lowercase()))
            .collect();
        prop_assert_eq!(keys, want);
    }

    /// What the gateway writes for the DWH (`JsonObject`) is JSON that reads back, field by
    /// field, as the texts and whole numbers it was given, in the order given.
    #[test]
    fn rebuilt_bodies_read_back(
        fields in proptest::collection::vec((key(), prop_oneof![
            text().prop_map(Claim::Text),
            "[1-9][0-9]{0,30}".prop_map(Claim::Integer),
        ]), 0..8),
    ) {
        let mut seen = std::collections::HashSet::new();
        let fields: Vec<(String, Claim)> = fields
            .into_iter()
            .filter(|(k, _)| seen.insert(k.to_ascii_lowercase()))
            .collect();
        let mut object = JsonObject::new();
        for (k, v) in &fields {
            object.claim(k, v);
        }
        let out = String::from_utf8(object.into_bytes())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(is_json(&out), "{out}");
        let again = RequestBody::parse(out.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
        let keys: Vec<&str> = again.keys().map(|(k, _)| k).collect();
        let want: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        prop_assert_eq!(keys, want);
        for (k, v) in &fields {
            prop_assert_eq!(again.claim(&k.to_ascii_lowercase()), Ok(Some(v.clone())));
        }
    }

    /// A key holding anything but printable ASCII names no parameter: the body is refused,
    /// never case-folded into one it resembles (`nık`, `NİK`, `uſer_id`).
    #[test]
    fn keys_outside_printable_ascii_are_refused(
        (pairs, mut st) in body(),
        odd in "[a-z]{0,4}[\\u{80}-\\u{10FFFF} \\t][a-z]{0,4}",
        at in any::<prop::sample::Index>(),
    ) {
        let mut pairs = pairs;
        let i = at.index(pairs.len() + 1);
        pairs.insert(i, (odd, Json::Null));
        let text = Json::Obj(pairs).render(&mut st);
        prop_assert!(RequestBody::parse(text.as_bytes()).is_err(), "{text}");
    }

    /// A NIK or any number sent as a JSON number keeps every digit (never through f64).
    #[test]
    fn numbers_keep_every_digit(digits in "[1-9][0-9]{15,30}", mut st in style()) {
        let text = Json::Obj(vec![("NIK".into(), Json::Num(digits.clone()))]).render(&mut st);
        let body = RequestBody::parse(text.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert_eq!(body.text("nik"), Ok(Some(digits)));
    }
}

#[test]
fn plain_style_writes_no_escape() {
    let text = Json::Obj(vec![("nik".into(), Json::Str("x/y".into()))]).render(&mut Style::plain());
    assert_eq!(text, r#"{"nik":"x/y"}"#);
}

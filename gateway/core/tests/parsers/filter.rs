//! `filter_answer`: a DWH answer filtered down to a PKS's elements. Random envelopes with
//! nesting, keys written with `\u` escapes, duplicate and case-variant keys, numbers beyond
//! 2^53, huge strings, records that are not objects, and verification answers.
//!
//! Properties: never a panic; the output is JSON; every output key of a record, read with
//! its escapes decoded, is an allowed element or a meta key; a value that passes is
//! byte-identical to the DWH's text; nothing of a value under a key that is not allowed
//! reaches the output (each string of the answer carries a unique marker, and every marker
//! in the output must come from a value that may pass).

use std::collections::HashMap;

use gerbang_core::{ElementSet, FilterError, Pairs, Shape, Vocabulary, filter_answer};
use proptest::prelude::*;
use serde_json::value::RawValue;

use crate::json::{Json, Style, decoded_strings, is_json, style, text, value};

/// Record keys that describe the answer, kept whatever the PKS grants.
const META: &[&str] = &["RESPON", "RESPONSE_CODE", "RESPONSE_DESC"];
/// The page fields of the envelope, the only top-level keys passed on. This list and `META`
/// restate the filter's contract on purpose: a test that imported them would
/// agree with any change to them.
const PAGE: &[&str] = &[
    "lastPage",
    "numberOfElements",
    "sort",
    "totalElements",
    "firstPage",
    "number",
    "size",
];
/// Verification values: (value, whether it is a verdict that may pass).
const VERDICTS: &[(&str, bool)] = &[
    ("Sesuai", true),
    ("Tidak Sesuai", true),
    ("Sesuai (100)", true),
    ("Tidak Sesuai (59)", true),
    ("Sesuai (0)", true),
    ("Sesuai (007)", true),
    ("Sesuai (101)", false),
    ("Sesuai ()", false),
    ("Sesuai (1000)", false),
    ("sesuai", false),
    ("Sesuai  (90)", false),
    ("Tidak Sesuai (-1)", false),
    ("Sesuai (90) ", false),
    ("", false),
];

/// Start and end of a marker: private-use characters no generated text holds.
const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';

fn names() -> Vec<String> {
    let v = Vocabulary::embedded();
    v.names(v.all()).into_iter().map(str::to_string).collect()
}

/// A record key: an element, an element in another case, a meta key, an envelope key in
/// the wrong place, or anything.
fn record_key() -> impl Strategy<Value = String> {
    let names = names();
    prop_oneof![
        6 => proptest::sample::select(names.clone()),
        2 => (proptest::sample::select(names), any::<u64>()).prop_map(|(n, bits)| {
            let variant: String = n
                .chars()
                .enumerate()
                .map(|(i, c)| if bits >> (i % 64) & 1 == 1 { c.to_ascii_lowercase() } else { c })
                .collect();
            if variant == n { n.to_lowercase() } else { variant }
        }),
        2 => proptest::sample::select(META).prop_map(str::to_string),
        1 => proptest::sample::select(&["respon", "Response_Code", "content", "lastPage", "quotaLimiter", "NIK ", " NIK", "NIK\u{0}", "N\u{130}K", "\u{212A}EL_NAME"][..]).prop_map(str::to_string),
        1 => "[A-Z_]{1,12}",
        1 => text(),
    ]
}

/// A record value: anything, or a verification value.
fn record_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        4 => value(),
        2 => proptest::sample::select(VERDICTS).prop_map(|(v, _)| Json::Str(v.to_string())),
    ]
}

/// A record: mostly an object, sometimes what a record must not be.
fn record() -> impl Strategy<Value = Json> {
    prop_oneof![
        12 => proptest::collection::vec((record_key(), record_value()), 0..10).prop_map(Json::Obj),
        1 => value(),
    ]
}

/// A top-level key: `content`, a page field, or one that must be dropped.
fn top_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(PAGE).prop_map(str::to_string),
        1 => proptest::sample::select(&["quotaLimiter", "debug", "Content", "CONTENT", "lastpage", "content "][..]).prop_map(str::to_string),
        1 => text(),
    ]
}

/// An answer: `content` (usually) among page fields and other keys, in any order, rarely
/// twice; sometimes `content` is not a list.
fn answer() -> impl Strategy<Value = Json> {
    let content = prop_oneof![
        12 => proptest::collection::vec(record(), 0..4).prop_map(Json::Arr),
        1 => value(),
    ];
    (
        proptest::collection::vec((top_key(), value()), 0..6),
        proptest::option::weighted(0.95, content),
        proptest::option::weighted(0.05, proptest::collection::vec(record(), 0..2)),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut pairs, content, again, at)| {
            if let Some(c) = content {
                pairs.insert(at.index(pairs.len() + 1), ("content".to_string(), c));
            }
            if let Some(records) = again {
                pairs.push(("content".to_string(), Json::Arr(records)));
            }
            Json::Obj(pairs)
        })
}

/// An allowed set: any subset of the vocabulary.
fn allowed() -> impl Strategy<Value = ElementSet> {
    let v = Vocabulary::embedded();
    let ids: Vec<_> = v.all().iter().collect();
    proptest::sample::subsequence(ids.clone(), 0..=ids.len()).prop_map(|ids| {
        ids.into_iter().fold(ElementSet::EMPTY, |mut s, id| {
            s.insert(id);
            s
        })
    })
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![Just(Shape::Values), Just(Shape::Verdicts)]
}

/// Where a marked string came from.
#[derive(Debug, Clone)]
enum Origin {
    /// A value of a record under this key.
    Record(String),
    /// A value of a top-level key.
    Top(String),
    /// Anywhere else: keys, or values of a `content` that is not used.
    Elsewhere,
}

/// Appends a unique marker to every string value that is not a verification value, and
/// says where each marker is.
fn mark(answer: &mut Json) -> HashMap<usize, (Origin, bool)> {
    fn walk(
        v: &mut Json,
        origin: &Origin,
        nested: bool,
        n: &mut usize,
        out: &mut HashMap<usize, (Origin, bool)>,
    ) {
        match v {
            Json::Str(s) if !VERDICTS.iter().any(|(t, _)| t == s) => {
                s.push(MARK_OPEN);
                s.push_str(&n.to_string());
                s.push(MARK_CLOSE);
                out.insert(*n, (origin.clone(), nested));
                *n += 1;
            }
            Json::Arr(items) => items.iter_mut().for_each(|i| walk(i, origin, true, n, out)),
            Json::Obj(pairs) => pairs
                .iter_mut()
                .for_each(|(_, v)| walk(v, origin, true, n, out)),
            _ => {}
        }
    }
    let mut out = HashMap::new();
    let mut n = 0;
    let Json::Obj(top) = answer else {
        return out;
    };
    let mut content_seen = false;
    for (key, v) in top.iter_mut() {
        if key == "content" && !content_seen {
            content_seen = true;
            if let Json::Arr(records) = v {
                for record in records.iter_mut() {
                    match record {
                        Json::Obj(fields) => {
                            for (k, fv) in fields.iter_mut() {
                                walk(fv, &Origin::Record(k.clone()), false, &mut n, &mut out);
                            }
                        }
                        other => walk(other, &Origin::Elsewhere, true, &mut n, &mut out),
                    }
                }
                continue;
            }
            walk(v, &Origin::Elsewhere, false, &mut n, &mut out);
        } else {
            walk(v, &Origin::Top(key.clone()), false, &mut n, &mut out);
        }
    }
    out
}

/// The markers in a text.
fn markers(s: &str) -> Vec<usize> {
    s.split(MARK_OPEN)
        .skip(1)
        .filter_map(|rest| rest.split_once(MARK_CLOSE))
        .filter_map(|(n, _)| n.parse().ok())
        .collect()
}

/// Whether a raw value is a JSON scalar (not an object or array).
fn scalar(raw: &RawValue) -> bool {
    !matches!(raw.get().as_bytes().first(), Some(b'{' | b'['))
}

/// The verdict rule, written again from its definition: `Sesuai` or `Tidak Sesuai`,
/// optionally followed by ` (N)` with N a 0–100 score of at most three digits.
fn is_verdict(raw: &RawValue) -> bool {
    let Ok(s) = serde_json::from_str::<String>(raw.get()) else {
        return false;
    };
    let rest = s
        .strip_prefix("Tidak Sesuai")
        .or_else(|| s.strip_prefix("Sesuai"));
    match rest {
        Some("") => true,
        Some(r) => r
            .strip_prefix(" (")
            .and_then(|r| r.strip_suffix(')'))
            .is_some_and(|n| {
                (1..=3).contains(&n.len())
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && n.parse::<u32>().is_ok_and(|n| n <= 100)
            }),
        None => false,
    }
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Checks one filtered answer against the input it came from.
fn check(
    input: &str,
    markers_at: &HashMap<usize, (Origin, bool)>,
    allowed: ElementSet,
    shape: Shape,
) -> Result<(), TestCaseError> {
    let vocab = Vocabulary::embedded();
    let allowed_names = vocab.names(allowed);
    let result = filter_answer(input.as_bytes(), &vocab, allowed, shape);

    // What the input holds, read by serde_json alone.
    let Pairs(top) = serde_json::from_str(input).map_err(fail)?;
    let content = top.iter().find(|(k, _)| k == "content").map(|(_, v)| *v);
    let records: Option<Vec<&RawValue>> = content.and_then(|c| serde_json::from_str(c.get()).ok());
    let Some(records) = records else {
        prop_assert_eq!(result.err(), Some(FilterError::NoContent));
        return Ok(());
    };
    // Record by record, as the filter reads them: a record that is not an object refuses the
    // answer, and so does, in a verification answer, a field that is not a verdict (a DWH
    // sending values where verdicts were asked for: nothing of it is used).
    let mut fields: Vec<Pairs<'_>> = Vec::with_capacity(records.len());
    for record in &records {
        let Ok(Pairs(pairs)) = serde_json::from_str::<Pairs<'_>>(record.get()) else {
            prop_assert_eq!(result.err(), Some(FilterError::RecordNotObject));
            return Ok(());
        };
        if shape == Shape::Verdicts
            && let Some((k, _)) = pairs
                .iter()
                .find(|(k, v)| !META.contains(&k.as_ref()) && !is_verdict(v))
        {
            prop_assert_eq!(result.err(), Some(FilterError::NotVerdict(k.to_string())));
            return Ok(());
        }
        fields.push(Pairs(pairs));
    }
    let out = result.map_err(fail)?;
    prop_assert!(is_json(&out.body), "not JSON: {}", out.body);
    prop_assert_eq!(out.records, records.len());

    // Top level: `content`, then the page fields with scalar values, byte for byte.
    let Pairs(out_top) = serde_json::from_str(&out.body).map_err(fail)?;
    prop_assert_eq!(out_top.first().map(|(k, _)| k.as_ref()), Some("content"));
    let want_top: Vec<(&str, &str)> = top
        .iter()
        .filter(|(k, v)| PAGE.contains(&k.as_ref()) && scalar(v))
        .map(|(k, v)| (k.as_ref(), v.get()))
        .collect();
    let got_top: Vec<(&str, &str)> = out_top[1..]
        .iter()
        .map(|(k, v)| (k.as_ref(), v.get()))
        .collect();
    prop_assert_eq!(got_top, want_top);

    // Records: the input's pairs that may pass, in order, byte for byte.
    let out_records: Vec<&RawValue> = serde_json::from_str(out_top[0].1.get()).map_err(fail)?;
    prop_assert_eq!(out_records.len(), records.len());
    let mut released = ElementSet::EMPTY;
    for (i, (Pairs(input_fields), out_record)) in fields.iter().zip(&out_records).enumerate() {
        let Pairs(got) = serde_json::from_str(out_record.get()).map_err(fail)?;
        for (k, _) in &got {
            prop_assert!(
                META.contains(&k.as_ref()) || allowed_names.contains(&k.as_ref()),
                "record {} passes key {:?}",
                i,
                k
            );
        }
        let want: Vec<(&str, &str)> = input_fields
            .iter()
            .filter(|(k, v)| {
                if META.contains(&k.as_ref()) {
                    scalar(v)
                } else if allowed_names.contains(&k.as_ref()) {
                    shape == Shape::Values || is_verdict(v)
                } else {
                    false
                }
            })
            .map(|(k, v)| (k.as_ref(), v.get()))
            .collect();
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_ref(), v.get())).collect();
        for (k, _) in &got {
            if let Some(set) = vocab.resolve(k) {
                released = released.union(set);
            }
        }
        prop_assert_eq!(got, want, "record {}", i);
    }
    prop_assert_eq!(vocab.names(out.released), vocab.names(released));
    if let Some(code) = &out.dwh_code {
        let Pairs(first) = &fields[0];
        prop_assert!(first.iter().any(|(k, v)| k == "RESPONSE_CODE"
            && serde_json::from_str::<String>(v.get()).ok().as_ref() == Some(code)));
    }

    // No marker from a value that may not pass.
    let strings = decoded_strings(&out.body).ok_or_else(|| fail("output unreadable"))?;
    for s in strings {
        for n in markers(&s) {
            let (origin, nested) = &markers_at[&n];
            let may = match origin {
                Origin::Record(k) if META.contains(&k.as_str()) => !nested,
                Origin::Record(k) => shape == Shape::Values && allowed_names.contains(&k.as_str()),
                Origin::Top(k) => PAGE.contains(&k.as_str()) && !nested,
                Origin::Elsewhere => false,
            };
            prop_assert!(
                may,
                "marker {} from {:?} (nested: {}) reached the output: {}",
                n,
                origin,
                nested,
                out.body
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::cases(384))]

    /// Random answers, written in random styles, against random grants, in both shapes.
    #[test]
    fn answers_pass_only_what_is_allowed_byte_for_byte(
        mut answer in answer(),
        mut st in style(),
        allowed in allowed(),
        shape in shape(),
    ) {
        let markers_at = mark(&mut answer);
        let input = answer.render(&mut st);
        check(&input, &markers_at, allowed, shape)?;
    }

    /// The same answers with one byte changed or cut short: an answer, never a panic, and
    /// whatever passes is JSON.
    #[test]
    fn damaged_answers_never_panic(
        answer in answer(),
        mut st in style(),
        allowed in allowed(),
        shape in shape(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let vocab = Vocabulary::embedded();
        let mut bytes = answer.render(&mut st).into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        for input in [&bytes[..], &bytes[..cut.index(bytes.len())]] {
            if let Ok(out) = filter_answer(input, &vocab, allowed, shape) {
                prop_assert!(is_json(&out.body), "{}", out.body);
            }
        }
    }

    /// Any bytes at all.
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), shape in shape()) {
        let vocab = Vocabulary::embedded();
        if let Ok(out) = filter_answer(&bytes, &vocab, vocab.all(), shape) {
            prop_assert!(is_json(&out.body));
        }
    }
}

proptest! {
    // Each case is hundreds of kilobytes: a fixed few, not raised by `PROPTEST_CASES`.
    #![proptest_config(proptest::test_runner::Config::with_cases(4))]

    /// Values of hundreds of kilobytes, allowed or not, and numbers of hundreds of digits.
    #[test]
    fn huge_values_pass_whole_or_not_at_all(
        len in 100_000usize..400_000,
        digits in 300usize..2000,
        mut st in style(),
    ) {
        let big = "A".repeat(len - 7) + "\u{e9}\"\\\n/\u{1F600}";
        let number = format!("9{}", "0".repeat(digits));
        let mut answer = Json::Obj(vec![(
            "content".into(),
            Json::Arr(vec![Json::Obj(vec![
                ("ALAMAT".into(), Json::Str(big.clone())),
                ("NAMA_LGKP".into(), Json::Str(big)),
                ("NIK".into(), Json::Num(number)),
            ])]),
        )]);
        let markers_at = mark(&mut answer);
        let input = answer.render(&mut st);
        let v = Vocabulary::embedded();
        let allowed = v.resolve("ALAMAT").unwrap_or_default().union(v.resolve("NIK").unwrap_or_default());
        check(&input, &markers_at, allowed, Shape::Values)?;
    }

    /// Nesting far beyond any real answer: refused or passed, never a stack overflow.
    #[test]
    fn deep_nesting_is_answered(depth in 1usize..200_000, object in any::<bool>()) {
        let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
        let nested = open.repeat(depth) + "1" + &close.repeat(depth);
        let input = format!("{{\"content\":[{{\"ALAMAT\":{nested},\"AGAMA\":{nested}}}]}}");
        let v = Vocabulary::embedded();
        let allowed = v.resolve("ALAMAT").unwrap_or_default();
        if let Ok(out) = filter_answer(input.as_bytes(), &v, allowed, Shape::Values) {
            prop_assert_eq!(out.body, format!("{{\"content\":[{{\"ALAMAT\":{nested}}}]}}"));
        }
    }
}

#[test]
fn plain_answers_read_as_written() {
    // The checker itself, on an answer whose result is known.
    let mut answer = Json::Obj(vec![
        (
            "content".into(),
            Json::Arr(vec![Json::Obj(vec![
                ("NIK".into(), Json::Num("9007199254740993".into())),
                ("AGAMA".into(), Json::Str("ISLAM".into())),
            ])]),
        ),
        ("size".into(), Json::Num("1".into())),
    ]);
    let markers_at = mark(&mut answer);
    let input = answer.render(&mut Style::plain());
    let v = Vocabulary::embedded();
    let nik = v.resolve("NIK").unwrap_or_default();
    let out = filter_answer(input.as_bytes(), &v, nik, Shape::Values).expect("filters");
    assert_eq!(
        out.body,
        r#"{"content":[{"NIK":9007199254740993}],"size":1}"#
    );
    assert!(check(&input, &markers_at, nik, Shape::Values).is_ok());
    assert!(check(&input, &markers_at, v.all(), Shape::Values).is_ok());
}

/// Found by `answers_pass_only_what_is_allowed_byte_for_byte`: a page field or a meta key
/// passed whatever value it held, so a record nested under one (`"sort":{"NAMA_LGKP":…}`)
/// went out unfiltered.
#[test]
fn regression_a_record_under_a_page_or_meta_key_does_not_pass() {
    let v = Vocabulary::embedded();
    let body = br#"{"content":[{"NIK":1,"RESPON":{"NAMA_LGKP":"SITI CONTOH"},"RESPONSE_DESC":["IBU CONTOH"],"RESPONSE_CODE":"01"}],"sort":{"NAMA_LGKP":"SITI CONTOH"},"lastPage":[],"size":1}"#;
    let out = filter_answer(
        body,
        &v,
        v.resolve("NIK").unwrap_or_default(),
        Shape::Values,
    )
    .expect("filters");
    assert_eq!(
        out.body,
        r#"{"content":[{"NIK":1,"RESPONSE_CODE":"01"}],"size":1}"#
    );
}

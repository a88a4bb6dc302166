//! JSON as the tour sends and shows it: bodies with keys in a chosen order (a repeated key
//! included, which a map cannot hold), and answers re-indented without touching a token,
//! so NIKs above 2^53 print digit-exact. Parsed by serde_json into the gateway's own
//! order-keeping [`Pairs`] and raw values, never through `f64`.

use std::fmt::Write as _;

use gerbang_core::Pairs;
use serde_json::value::RawValue;

use super::LONG_STRING;

/// A JSON object from key/value text pairs, in the given order (duplicates kept).
pub(super) fn body(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        gerbang_core::push_json_string(&mut out, k);
        out.push(':');
        gerbang_core::push_json_string(&mut out, v);
    }
    out.push('}');
    out
}

/// The keys of a JSON object's top level, in their order (none if it is not an object).
pub(super) fn top_level_keys(raw: &str) -> Vec<String> {
    serde_json::from_str::<Pairs<'_>>(raw)
        .map(|pairs| pairs.0.into_iter().map(|(k, _)| k.into_owned()).collect())
        .unwrap_or_default()
}

/// Re-indents a JSON text without touching its tokens (numbers stay digit-exact; NIKs
/// exceed 2^53). Long strings are shortened. Returns the text and whether it shortened
/// anything; text that is not JSON comes back as it is.
pub(super) fn pretty(raw: &str) -> (String, bool) {
    let Ok(value) = serde_json::from_str::<&RawValue>(raw) else {
        return (raw.to_string(), false);
    };
    let mut out = String::with_capacity(raw.len() * 2);
    let mut shortened = false;
    write_value(&mut out, value, 0, &mut shortened);
    (out, shortened)
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// Writes one value at `depth`: objects and arrays one member a line, scalars as they came.
fn write_value(out: &mut String, value: &RawValue, depth: usize, shortened: &mut bool) {
    let text = value.get();
    if let Ok(Pairs(pairs)) = serde_json::from_str::<Pairs<'_>>(text) {
        write_members(
            out,
            '{',
            '}',
            depth,
            &pairs,
            |out, (k, v), shortened| {
                gerbang_core::push_json_string(out, k);
                out.push_str(": ");
                write_value(out, v, depth + 1, shortened);
            },
            shortened,
        );
    } else if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) {
        write_members(
            out,
            '[',
            ']',
            depth,
            &items,
            |out, v, shortened| {
                write_value(out, v, depth + 1, shortened);
            },
            shortened,
        );
    } else if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        // The string's raw text, escapes as sent: long unbroken ones (photos, biometrics
        // in base64) are cut, text with spaces (a refusal's reason) is kept whole.
        let n = inner.chars().count();
        if n > LONG_STRING && !inner.contains(' ') {
            let head: String = inner.chars().take(24).collect();
            let _ = write!(out, "\"{head}… [{n} chars]\"");
            *shortened = true;
        } else {
            out.push_str(text);
        }
    } else {
        out.push_str(text);
    }
}

/// The members of an object or an array, one a line; an empty one as `{}` or `[]`.
fn write_members<T>(
    out: &mut String,
    open: char,
    close: char,
    depth: usize,
    members: &[T],
    mut write: impl FnMut(&mut String, &T, &mut bool),
    shortened: &mut bool,
) {
    out.push(open);
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline(out, depth + 1);
        write(out, member, shortened);
    }
    if !members.is_empty() {
        newline(out, depth);
    }
    out.push(close);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_keeps_numbers_digit_exact() {
        let raw =
            r#"{"content":[{"NIK":9999999999999999999,"A":[],"B":{},"C":"x, y: z"}],"n":1.50}"#;
        let (text, shortened) = pretty(raw);
        assert!(!shortened);
        let want = "{\n  \"content\": [\n    {\n      \"NIK\": 9999999999999999999,\n      \"A\": [],\n      \"B\": {},\n      \"C\": \"x, y: z\"\n    }\n  ],\n  \"n\": 1.50\n}";
        assert_eq!(text, want);
    }

    #[test]
    fn pretty_keeps_repeated_keys_and_escapes_as_sent() {
        let raw = "{ \"a\" : \"q\\\"uote\" , \"a\":\"\\u00e9\" }";
        let (text, _) = pretty(raw);
        assert_eq!(text, "{\n  \"a\": \"q\\\"uote\",\n  \"a\": \"\\u00e9\"\n}");
    }

    #[test]
    fn pretty_shortens_long_strings_and_leaves_non_json() {
        let long = "A".repeat(200);
        let (text, shortened) = pretty(&format!(r#"{{"FOTO":"{long}"}}"#));
        assert!(shortened);
        assert!(text.contains("[200 chars]"));
        let reason = "a reason with spaces ".repeat(5);
        let (text, shortened) = pretty(&format!(r#"{{"RESPONSE_DESC":"{reason}"}}"#));
        assert!(!shortened);
        assert!(text.contains(&reason));
        assert_eq!(pretty("not json").0, "not json");
        assert_eq!(pretty("{\"a\":1").0, "{\"a\":1");
    }

    #[test]
    fn keys_in_order_and_duplicates_kept() {
        assert_eq!(
            top_level_keys(r#"{"b":1,"a":{"x":2},"c":"d:e"}"#),
            ["b", "a", "c"]
        );
        assert!(top_level_keys("[1]").is_empty());
        assert_eq!(
            body(&[("nik", "1"), ("NIK", "2")]),
            r#"{"nik":"1","NIK":"2"}"#
        );
    }
}

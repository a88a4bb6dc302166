//! JSON texts written the many ways a peer may write one: any character of a string or a
//! key as a `\u` escape (upper- or lower-case hex, surrogate pairs), `\/`, whitespace
//! between any two tokens, numbers beyond 2^53 and f64's range, nesting.

use std::fmt::Write as _;

use proptest::prelude::*;

/// A JSON value as a tree, so a test knows what a text it wrote means.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number as written: may exceed 2^53 or f64's range.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    /// Pairs in order; keys may repeat.
    Obj(Vec<(String, Json)>),
}

/// How a text is written: whether each character is escaped and where whitespace goes,
/// decided by a small deterministic generator so a failing case replays exactly.
#[derive(Debug, Clone)]
pub struct Style(u64);

impl Style {
    /// The same decisions every time (none escaped, no whitespace) when `plain`.
    pub fn plain() -> Self {
        Self(0)
    }

    fn next(&mut self) -> u64 {
        if self.0 == 0 {
            // Plain: no escape, no whitespace.
            return 7;
        }
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 8
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

/// A random writing style.
pub fn style() -> impl Strategy<Value = Style> {
    any::<u64>().prop_map(|s| Style(s | 1))
}

impl Json {
    /// The JSON text of the value in `style`.
    pub fn render(&self, style: &mut Style) -> String {
        let mut out = String::new();
        self.write(&mut out, style);
        out
    }

    fn write(&self, out: &mut String, style: &mut Style) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Num(n) => out.push_str(n),
            Self::Str(s) => write_string(out, s, style),
            Self::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    space(out, style);
                    item.write(out, style);
                    space(out, style);
                }
                out.push(']');
            }
            Self::Obj(pairs) => {
                out.push('{');
                for (i, (key, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    space(out, style);
                    write_string(out, key, style);
                    space(out, style);
                    out.push(':');
                    space(out, style);
                    value.write(out, style);
                    space(out, style);
                }
                out.push('}');
            }
        }
    }

    /// Every string in the value, keys included.
    pub fn strings<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Str(s) => out.push(s),
            Self::Arr(items) => items.iter().for_each(|i| i.strings(out)),
            Self::Obj(pairs) => {
                for (k, v) in pairs {
                    out.push(k);
                    v.strings(out);
                }
            }
            Self::Null | Self::Bool(_) | Self::Num(_) => {}
        }
    }
}

/// Writes `s` as a JSON string literal, escaping what must be and, at random, more.
pub fn write_string(out: &mut String, s: &str, style: &mut Style) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' if style.one_in(2) => out.push_str("\\n"),
            '\t' if style.one_in(2) => out.push_str("\\t"),
            c if (c as u32) < 0x20 => escape_u(out, c, style),
            '/' if style.one_in(3) => out.push_str("\\/"),
            c if style.one_in(5) => escape_u(out, c, style),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn escape_u(out: &mut String, c: char, style: &mut Style) {
    let mut units = [0u16; 2];
    for unit in c.encode_utf16(&mut units) {
        let _ = if style.one_in(2) {
            write!(out, "\\u{unit:04X}")
        } else {
            write!(out, "\\u{unit:04x}")
        };
    }
}

fn space(out: &mut String, style: &mut Style) {
    match style.next() % 10 {
        0 => out.push(' '),
        1 => out.push('\n'),
        2 => out.push_str("\t "),
        3 => out.push_str("\r\n"),
        _ => {}
    }
}

/// Short texts: printable ASCII, any Unicode, control characters, quotes and backslashes.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ -~]{0,12}",
        2 => "\\PC{0,8}",
        1 => any::<char>().prop_map(String::from),
        1 => "[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}\u{2029}\u{feff}]{1,4}",
    ]
}

/// Number texts, including integers beyond 2^53 and exponents beyond f64.
pub fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "-?(0|[1-9][0-9]{0,24})",
        1 => "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?",
        1 => Just("9007199254740993".to_string()),
    ]
}

/// Scalars.
pub fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        1 => Just(Json::Null),
        1 => any::<bool>().prop_map(Json::Bool),
        3 => number().prop_map(Json::Num),
        4 => text().prop_map(Json::Str),
    ]
}

/// Any value, nested up to four levels.
pub fn value() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Arr),
            proptest::collection::vec((text(), inner), 0..4).prop_map(Json::Obj),
        ]
    })
}

/// Every string of a JSON text, keys included, decoded; `None` if it is not JSON. Reads
/// duplicate keys one by one (a map would keep only one of them).
pub fn decoded_strings(text: &str) -> Option<Vec<String>> {
    use gerbang_core::Pairs;
    use serde_json::value::RawValue;
    fn walk(raw: &RawValue, out: &mut Vec<String>) -> Option<()> {
        let t = raw.get();
        match t.as_bytes().first()? {
            b'{' => {
                let Pairs(pairs) = serde_json::from_str(t).ok()?;
                for (k, v) in pairs {
                    out.push(k.into_owned());
                    walk(v, out)?;
                }
            }
            b'[' => {
                let items: Vec<&RawValue> = serde_json::from_str(t).ok()?;
                for item in items {
                    walk(item, out)?;
                }
            }
            b'"' => out.push(serde_json::from_str(t).ok()?),
            _ => {}
        }
        Some(())
    }
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    let mut out = Vec::new();
    walk(raw, &mut out)?;
    Some(out)
}

/// Whether `text` is one JSON value and nothing else.
pub fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

proptest! {
    #![proptest_config(crate::cases(256))]

    /// The generator itself: what it writes is JSON and reads back as what it meant.
    #[test]
    fn written_values_read_back(v in value(), mut st in style()) {
        let text = v.render(&mut st);
        prop_assert!(is_json(&text), "{text}");
        let mut want = Vec::new();
        v.strings(&mut want);
        prop_assert_eq!(decoded_strings(&text), Some(want.iter().map(|s| s.to_string()).collect()));
    }
}

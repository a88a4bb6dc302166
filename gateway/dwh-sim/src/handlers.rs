//! The answers, as plain functions from a request body to the response body, so they
//! are tested without a socket. The server adds HTTP around them.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::json::{self, Page};
use crate::nik::parse_nik;
use crate::population::{Person, Population, RecordStatus, SampleKind};
use crate::record::{Field, Scratch};
use crate::score::normalize;

/// The data operations of the DWH web service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    CallNik,
    Verify,
    ByElemen,
}

/// Most records a `CALL_BY_ELEMEN` answer holds.
pub(crate) const SEARCH_LIMIT: usize = 20;

/// Threshold for fuzzy fields when the request names none.
const DEFAULT_THRESHOLD: u8 = 90;

/// The operation a path below `/dukcapil/get_json/` names: `{instansi}/{OP}` or the
/// regional `{PP-KK}/{user}/{OP}`, the operation name in any case.
pub(crate) fn operation(rest: &str) -> Option<Operation> {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let (op, prefix) = segments.split_last()?;
    if !(1..=2).contains(&prefix.len()) || prefix.iter().any(|s| s.is_empty()) {
        return None;
    }
    if op.eq_ignore_ascii_case("CALL_NIK") {
        Some(Operation::CallNik)
    } else if op.eq_ignore_ascii_case("CALL_VERIFY_BY_ELEMEN") {
        Some(Operation::Verify)
    } else if op.eq_ignore_ascii_case("CALL_BY_ELEMEN") {
        Some(Operation::ByElemen)
    } else {
        None
    }
}

/// A DWH response code with its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    Incomplete,
    Deceased,
    Duplicate,
    NotFound,
    Inactive,
    BadFormat,
}

impl Code {
    fn number(self) -> &'static str {
        match self {
            Code::Incomplete => "07",
            Code::Deceased => "11",
            Code::Duplicate => "12",
            Code::NotFound => "13",
            Code::Inactive => "14",
            Code::BadFormat => "15",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Code::Incomplete => "Parameter Tidak Lengkap",
            Code::Deceased => "Data Ditemukan, Status Meninggal Dunia",
            Code::Duplicate => "Data Ditemukan, NIK Ganda",
            Code::NotFound => "Data Tidak Ditemukan",
            Code::Inactive => "Data Ditemukan, Status Tidak Aktif",
            Code::BadFormat => "NIK Tidak Sesuai Format Dukcapil",
        }
    }
}

/// An error page: `RESPON` and `RESPONSE_CODE`, plus `RESPONSE_DESC` in the
/// verification style.
fn error_page(code: Code, with_desc: bool, quota: Option<u64>) -> Vec<u8> {
    error_page_with(code, with_desc.then_some(code.text()), quota)
}

/// An error page whose `RESPONSE_DESC`, if any, is `desc`.
pub(crate) fn error_page_with(code: Code, desc: Option<&str>, quota: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    json::open_page(&mut out);
    out.push(b'{');
    json::push_key(&mut out, "RESPON");
    json::push_str(&mut out, code.text());
    out.push(b',');
    json::push_key(&mut out, "RESPONSE_CODE");
    json::push_str(&mut out, code.number());
    if let Some(desc) = desc {
        out.push(b',');
        json::push_key(&mut out, "RESPONSE_DESC");
        json::push_str(&mut out, desc);
    }
    out.push(b'}');
    json::close_page(&mut out, Page::single(quota));
    out
}

/// A request body's members in the order the client sent them, whatever features
/// `serde_json` was built with (its `Map` sorts keys unless `preserve_order` is on), so
/// verdicts come back in the order of the claims.
#[derive(Debug, Default)]
pub(crate) struct Body(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Body, D::Error> {
        struct Members;

        impl<'de> Visitor<'de> for Members {
            type Value = Body;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Body(members))
            }
        }

        deserializer.deserialize_map(Members)
    }
}

impl Body {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

fn parse_body(bytes: &[u8]) -> Option<Body> {
    serde_json::from_slice(bytes).ok()
}

/// The value of `key`, matched case-insensitively (the first if a client sent two).
fn get<'a>(body: &'a Body, key: &str) -> Option<&'a Value> {
    body.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A scalar as text (numbers keep their exact digits); `None` for null, empty text,
/// arrays and objects.
fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(Cow::Borrowed(s.trim())),
        // Integers print with their exact digits (16-digit NIKs fit a u64), so a NIK
        // sent as a number never passes through f64.
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// Finds the record a request's `nik` names, or the code to answer instead.
fn lookup<'p>(population: &'p Population, body: &Body) -> Result<&'p Person, Code> {
    let nik = get(body, "nik").and_then(text).ok_or(Code::Incomplete)?;
    let nik = parse_nik(&nik).ok_or(Code::BadFormat)?;
    let person = population.find(nik).ok_or(Code::NotFound)?;
    match person.status {
        RecordStatus::Active => Ok(person),
        RecordStatus::Deceased => Err(Code::Deceased),
        RecordStatus::Duplicate => Err(Code::Duplicate),
        RecordStatus::Inactive => Err(Code::Inactive),
    }
}

/// `CALL_NIK`: the full record of the NIK in the body.
pub(crate) fn call_nik(population: &Population, body: &[u8]) -> Vec<u8> {
    let Some(body) = parse_body(body) else {
        return error_page(Code::Incomplete, false, None);
    };
    match lookup(population, &body) {
        Ok(person) => {
            let mut out = Vec::with_capacity(1536);
            json::open_page(&mut out);
            population.write_record(person, &mut out, &mut Scratch::default());
            json::close_page(&mut out, Page::single(None));
            out
        }
        Err(code) => error_page(code, false, None),
    }
}

/// `CALL_NIK` answered wrongly: the record of another living person than the one asked for
/// (a DWH with a bug; `/__sim/misbehave` `other_person`).
pub(crate) fn call_nik_other(population: &Population, body: &[u8]) -> Vec<u8> {
    let asked = parse_body(body)
        .and_then(|b| get(&b, "nik").and_then(text).map(Cow::into_owned))
        .unwrap_or_default();
    let other = population
        .sample(SampleKind::Alive, 2)
        .into_iter()
        .find(|n| *n != asked)
        .unwrap_or_default();
    call_nik(population, format!(r#"{{"nik":"{other}"}}"#).as_bytes())
}

/// `CALL_VERIFY_BY_ELEMEN`: a verdict for every claimed element of the NIK's record.
pub(crate) fn verify(population: &Population, body: &[u8], quota: u64) -> Vec<u8> {
    let quota = Some(quota);
    let Some(body) = parse_body(body) else {
        return error_page(Code::Incomplete, true, quota);
    };
    let threshold = match get(&body, "TRESHOLD").or_else(|| get(&body, "THRESHOLD")) {
        None => DEFAULT_THRESHOLD,
        Some(value) => match text(value).and_then(|t| t.parse::<u8>().ok()) {
            Some(t @ 1..=100) => t,
            _ => return error_page(Code::Incomplete, true, quota),
        },
    };
    let person = match lookup(population, &body) {
        Ok(person) => person,
        Err(code) => return error_page(code, true, quota),
    };
    let mut out = Vec::with_capacity(512);
    let mut scratch = Scratch::default();
    let mut verdict = String::new();
    json::open_page(&mut out);
    out.push(b'{');
    json::push_key(&mut out, "NIK");
    json::push_str(&mut out, "Sesuai");
    for (key, value) in body.iter() {
        let Some(field) = Field::from_key(key) else {
            continue;
        };
        if field == Field::Nik || value.is_null() {
            continue;
        }
        let claim = text(value).unwrap_or_default();
        population
            .judge(person, field, &claim, threshold, &mut scratch)
            .write(&mut verdict);
        out.push(b',');
        json::push_key(&mut out, field.name());
        json::push_str(&mut out, &verdict);
    }
    out.push(b'}');
    json::close_page(&mut out, Page::single(quota));
    out
}

/// `CALL_BY_ELEMEN`: active records matching every given element. The name is required
/// (it is the index), and at least two elements must be given.
pub(crate) fn by_elemen(population: &Population, body: &[u8]) -> Vec<u8> {
    let Some(body) = parse_body(body) else {
        return error_page(Code::Incomplete, false, None);
    };
    let claims: Vec<(Field, Cow<'_, str>)> = body
        .iter()
        .filter_map(|(key, value)| Some((Field::from_key(key)?, text(value)?)))
        .collect();
    let name = claims
        .iter()
        .find(|(field, _)| *field == Field::NamaLgkp)
        .map(|(_, claim)| claim);
    let (Some(name), true) = (name, claims.len() >= 2) else {
        return error_page(Code::Incomplete, false, None);
    };
    let mut normalized = String::new();
    normalize(name, &mut normalized);
    let mut scratch = Scratch::default();
    let mut matches = population
        .by_name(&normalized)
        .filter(|p| p.status == RecordStatus::Active)
        .filter(|p| {
            claims
                .iter()
                .all(|(field, claim)| population.claim_equals(p, *field, claim, &mut scratch))
        })
        .collect::<Vec<_>>();
    if matches.is_empty() {
        return error_page(Code::NotFound, false, None);
    }
    matches.sort_unstable_by_key(|p| p.nik);
    let total = matches.len();
    let mut out = Vec::with_capacity(1536 * total.min(SEARCH_LIMIT));
    json::open_page(&mut out);
    for (i, person) in matches.iter().take(SEARCH_LIMIT).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        population.write_record(person, &mut out, &mut scratch);
    }
    json::close_page(
        &mut out,
        Page {
            elements: total.min(SEARCH_LIMIT),
            total,
            size: SEARCH_LIMIT,
            quota: None,
        },
    );
    out
}

/// The value of `key` in a URL query string (no percent-decoding: the simulator's
/// parameters are words and digits).
pub(crate) fn query_param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Most NIKs one `/__sim/sample` answer lists.
pub(crate) const SAMPLE_LIMIT: usize = 10_000;

/// `/__sim/sample?kind=…&n=…`: `{"nik":["…",…]}`, or an error text.
pub(crate) fn sample(population: &Population, query: Option<&str>) -> Result<Vec<u8>, String> {
    let kind: SampleKind = query_param(query, "kind")
        .unwrap_or("alive")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let n = match query_param(query, "n") {
        None => 5,
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| format!("n must be a number, got {n:?}"))?,
    };
    let niks = population.sample(kind, n.min(SAMPLE_LIMIT));
    let mut out = Vec::with_capacity(20 * niks.len() + 16);
    out.extend_from_slice(b"{\"nik\":[");
    for (i, nik) in niks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::push_str(&mut out, nik);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// `/__sim/record?nik=…`: the full record whatever its status, if it exists.
pub(crate) fn record(population: &Population, query: Option<&str>) -> Option<Vec<u8>> {
    let nik = query_param(query, "nik")?.parse::<u64>().ok()?;
    population.record_json(nik).map(String::into_bytes)
}

/// The `ms` of a `/__sim/delay` body.
pub(crate) fn delay_ms(body: &[u8]) -> Option<u64> {
    let body = parse_body(body)?;
    let ms = get(&body, "ms")?;
    ms.as_u64()
        .or_else(|| ms.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The `mode` of a `/__sim/misbehave` body: `{"mode": "…"}`.
pub(crate) fn mode(body: &[u8]) -> Option<String> {
    get(&parse_body(body)?, "mode")?.as_str().map(str::to_owned)
}

/// A small JSON object `{"error":"…"}` for the simulator's own (non-DWH) errors.
pub(crate) fn error_json(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    out.push(b'{');
    json::push_key(&mut out, "error");
    json::push_str(&mut out, message);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    fn code(bytes: &[u8]) -> String {
        answer(bytes)["content"][0]["RESPONSE_CODE"]
            .as_str()
            .expect("RESPONSE_CODE")
            .to_owned()
    }

    #[test]
    fn routes() {
        assert_eq!(operation("bkd/CALL_NIK"), Some(Operation::CallNik));
        assert_eq!(operation("bkd/call_nik"), Some(Operation::CallNik));
        assert_eq!(operation("33-13/user/call_nik"), Some(Operation::CallNik));
        assert_eq!(
            operation("x/Call_Verify_By_Elemen"),
            Some(Operation::Verify)
        );
        assert_eq!(operation("x/CALL_BY_ELEMEN"), Some(Operation::ByElemen));
        assert_eq!(operation("CALL_NIK"), None);
        assert_eq!(operation("a/b/c/CALL_NIK"), None);
        assert_eq!(operation("a//CALL_NIK"), None);
        assert_eq!(operation("a/CALL_KK"), None);
    }

    #[test]
    fn call_nik_codes() {
        let population = Population::generate(5, 2_000);
        let nik = population.sample(SampleKind::Alive, 1).remove(0);
        let found = call_nik(&population, format!(r#"{{"NIK":"{nik}"}}"#).as_bytes());
        let found = answer(&found);
        assert_eq!(found["content"][0]["NIK"].to_string(), nik);
        assert_eq!(found["numberOfElements"], 1);
        assert_eq!(code(&call_nik(&population, b"{}")), "07");
        assert_eq!(code(&call_nik(&population, b"not json")), "07");
        assert_eq!(code(&call_nik(&population, br#"{"nik":""}"#)), "07");
        assert_eq!(code(&call_nik(&population, br#"{"nik":"12"}"#)), "15");
        assert_eq!(
            code(&call_nik(&population, br#"{"nik":"9601010101010001"}"#)),
            "13"
        );
        for (kind, want) in [
            (SampleKind::Deceased, "11"),
            (SampleKind::Duplicate, "12"),
            (SampleKind::Inactive, "14"),
        ] {
            let nik = population.sample(kind, 1).remove(0);
            let body = format!(r#"{{"nik":{nik}}}"#);
            assert_eq!(code(&call_nik(&population, body.as_bytes())), want);
        }
    }

    #[test]
    fn verify_rejects_bad_threshold() {
        let population = Population::generate(5, 500);
        let nik = population.sample(SampleKind::Alive, 1).remove(0);
        for threshold in ["0", "101", "\"x\"", "-5"] {
            let body = format!(r#"{{"NIK":"{nik}","TRESHOLD":{threshold}}}"#);
            assert_eq!(
                code(&verify(&population, body.as_bytes(), 9)),
                "07",
                "{threshold}"
            );
        }
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param(Some("kind=any&n=3"), "n"), Some("3"));
        assert_eq!(query_param(Some("kind=any&n=3"), "kind"), Some("any"));
        assert_eq!(query_param(Some("kind"), "kind"), None);
        assert_eq!(query_param(None, "kind"), None);
    }
}

//! Filters a DWH answer down to what the PKS allows (art. 5; PKS art. 3).
//!
//! Fail closed: every field of every record that is not an allowed element is removed,
//! including fields the vocabulary does not know; envelope keys Gerbang does not know are
//! dropped, and so is a meta key or page field holding an object or a list; an answer that
//! is not the DWH envelope is refused whole, and so is a verification
//! answer with anything but a verdict in a field (a DWH that sends values where verdicts were
//! asked for is misbehaving: nothing of it is used), and a lookup's answer holding a record
//! of another NIK than the one asked for (one hit, one NIK digest in the log: data of
//! someone else would leave unaccounted). Values are copied as raw JSON text, so NIK and No
//! KK numbers above 2^53 pass digit-exact.

use serde_json::value::RawValue;

use crate::element::{ElementSet, Vocabulary};
use crate::nik::Nik;
use crate::wire::{Pairs, push_json_string};

/// Keys of a record that describe the answer rather than the person; always kept.
const META_KEYS: &[&str] = &["RESPON", "RESPONSE_CODE", "RESPONSE_DESC"];

/// Envelope keys passed through. `quotaLimiter` is not among them: the DWH's count is for
/// Gerbang's own account, not the Pengguna's.
const ENVELOPE_KEYS: &[&str] = &[
    "lastPage",
    "numberOfElements",
    "sort",
    "totalElements",
    "firstPage",
    "number",
    "size",
];

/// What the records of an answer hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Population data values (`CALL_NIK`, `CALL_BY_ELEMEN`).
    Values,
    /// Verdicts per claimed element (`CALL_VERIFY_BY_ELEMEN`): only `Sesuai` /
    /// `Tidak Sesuai`, optionally with a score, ever pass (art. 29(4)).
    Verdicts,
}

/// A filtered answer.
#[derive(Debug)]
pub struct Filtered {
    /// The answer to send to the Pengguna (JSON text).
    pub body: String,
    /// The elements that appeared in at least one record (names only go to logs).
    pub released: ElementSet,
    /// Number of records.
    pub records: usize,
    /// The DWH's `RESPONSE_CODE` of the first record, if it had one.
    pub dwh_code: Option<String>,
}

/// Why an answer could not be filtered; nothing of it may be passed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("the DWH answer is not a JSON object: {0}")]
    NotJson(String),
    #[error("the DWH answer has no `content` list")]
    NoContent,
    #[error("a record of the DWH answer is not a JSON object")]
    RecordNotObject,
    /// A verification answer whose field holds something other than a verdict (the field's
    /// name, never its value).
    #[error("the DWH's verification answer holds a value instead of a verdict in `{0}`")]
    NotVerdict(String),
    /// A lookup of one NIK answered with a record of another NIK.
    #[error("the DWH answered a lookup of one NIK with a record of another")]
    OtherNik,
}

/// Filters a DWH answer to the `allowed` elements.
pub fn filter_answer(
    body: &[u8],
    vocab: &Vocabulary,
    allowed: ElementSet,
    shape: Shape,
) -> Result<Filtered, FilterError> {
    filter(body, vocab, allowed, shape, None)
}

/// [`filter_answer`] for the answer to a lookup of `nik` (`CALL_NIK`, the portal's search):
/// every record that names a NIK must name this one, as a number or a string, whether or
/// not the PKS releases the element.
pub fn filter_lookup_answer(
    body: &[u8],
    vocab: &Vocabulary,
    allowed: ElementSet,
    nik: &Nik,
) -> Result<Filtered, FilterError> {
    filter(body, vocab, allowed, Shape::Values, Some(nik))
}

fn filter(
    body: &[u8],
    vocab: &Vocabulary,
    allowed: ElementSet,
    shape: Shape,
    asked: Option<&Nik>,
) -> Result<Filtered, FilterError> {
    let Pairs(top) =
        serde_json::from_slice(body).map_err(|e| FilterError::NotJson(e.to_string()))?;
    let content = top
        .iter()
        .find(|(k, _)| k == "content")
        .map(|(_, v)| v)
        .ok_or(FilterError::NoContent)?;
    let records: Vec<&RawValue> =
        serde_json::from_str(content.get()).map_err(|_| FilterError::NoContent)?;

    let mut out = String::with_capacity(body.len());
    out.push_str("{\"content\":[");
    let mut released = ElementSet::EMPTY;
    let mut dwh_code = None;
    for (i, record) in records.iter().enumerate() {
        let Pairs(fields) =
            serde_json::from_str(record.get()).map_err(|_| FilterError::RecordNotObject)?;
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        let mut first = true;
        for (key, value) in &fields {
            let keep = if META_KEYS.contains(&key.as_ref()) {
                if key == "RESPONSE_CODE" && i == 0 {
                    dwh_code = serde_json::from_str::<String>(value.get()).ok();
                }
                is_scalar(value)
            } else if shape == Shape::Verdicts && !is_verdict(value) {
                return Err(FilterError::NotVerdict(key.to_string()));
            } else if let Some(nik) = asked.filter(|_| key == "NIK")
                && value.get().trim().trim_matches('"') != nik.as_str()
            {
                return Err(FilterError::OtherNik);
            } else {
                match vocab.id(key) {
                    Some(id) if allowed.contains(id) => {
                        released.insert(id);
                        true
                    }
                    _ => false,
                }
            };
            if keep {
                if !first {
                    out.push(',');
                }
                first = false;
                push_json_string(&mut out, key);
                out.push(':');
                out.push_str(value.get());
            }
        }
        out.push('}');
    }
    out.push(']');
    for (key, value) in &top {
        if ENVELOPE_KEYS.contains(&key.as_ref()) && is_scalar(value) {
            out.push(',');
            push_json_string(&mut out, key);
            out.push(':');
            out.push_str(value.get());
        }
    }
    out.push('}');
    Ok(Filtered {
        body: out,
        released,
        records: records.len(),
        dwh_code,
    })
}

/// Meta and page fields pass unfiltered, so only as text, number, boolean or null: an
/// object or list under one could carry a whole record past the filter.
fn is_scalar(value: &RawValue) -> bool {
    !matches!(value.get().as_bytes().first(), Some(b'{' | b'['))
}

/// `"Sesuai"`, `"Tidak Sesuai"`, either followed by ` (NN)` with a 0–100 score.
fn is_verdict(value: &RawValue) -> bool {
    let Ok(s) = serde_json::from_str::<String>(value.get()) else {
        return false;
    };
    let rest = if let Some(r) = s.strip_prefix("Tidak Sesuai") {
        r
    } else if let Some(r) = s.strip_prefix("Sesuai") {
        r
    } else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(score) = rest.strip_prefix(" (").and_then(|r| r.strip_suffix(')')) else {
        return false;
    };
    !score.is_empty()
        && score.len() <= 3
        && score.bytes().all(|b| b.is_ascii_digit())
        && score.parse::<u8>().is_ok_and(|n| n <= 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(vocab: &Vocabulary, names: &[&str]) -> ElementSet {
        names
            .iter()
            .map(|n| vocab.resolve(n).expect(n))
            .fold(ElementSet::EMPTY, ElementSet::union)
    }

    const RECORD: &str = r#"{"content":[{"NIK":9007199254740993,"NO_KK":3201011502150003,"NAMA_LGKP":"SITI CONTOH","AGAMA":"ISLAM","PNYDNG_CACAT":"TUNA DAKSA","SECRET_NEW_FIELD":"x"}],"lastPage":true,"numberOfElements":1,"sort":null,"totalElements":1,"firstPage":true,"number":0,"size":1,"quotaLimiter":5,"debug":"y"}"#;

    #[test]
    fn keeps_only_allowed_elements_digit_exact() {
        let v = Vocabulary::embedded();
        let f = filter_answer(
            RECORD.as_bytes(),
            &v,
            allowed(&v, &["NIK", "NAMA_LGKP"]),
            Shape::Values,
        )
        .expect("ok");
        let text = f.body;
        assert_eq!(
            text,
            r#"{"content":[{"NIK":9007199254740993,"NAMA_LGKP":"SITI CONTOH"}],"lastPage":true,"numberOfElements":1,"sort":null,"totalElements":1,"firstPage":true,"number":0,"size":1}"#
        );
        assert_eq!(v.names(f.released), vec!["NIK", "NAMA_LGKP"]);
        assert_eq!(f.records, 1);
    }

    #[test]
    fn keys_written_with_escapes_are_read_as_the_element_they_name() {
        // `NAMA\u005fLGKP` is NAMA_LGKP and `AG\u0041MA` is AGAMA: decoded, never passed
        // on unfiltered because their text differs from the vocabulary's.
        let v = Vocabulary::embedded();
        let body = br#"{"content":[{"NIK":"3201011502150003","NAMA\u005fLGKP":"SITI CONTOH","AG\u0041MA":"ISLAM"}],"l\u0061stPage":true}"#;
        let f =
            filter_answer(body, &v, allowed(&v, &["NIK", "NAMA_LGKP"]), Shape::Values).expect("ok");
        assert_eq!(
            f.body,
            r#"{"content":[{"NIK":"3201011502150003","NAMA_LGKP":"SITI CONTOH"}],"lastPage":true}"#
        );
        assert_eq!(v.names(f.released), vec!["NIK", "NAMA_LGKP"]);
    }

    #[test]
    fn unknown_fields_and_envelope_keys_never_pass_even_with_everything_allowed() {
        let v = Vocabulary::embedded();
        let f = filter_answer(RECORD.as_bytes(), &v, v.all(), Shape::Values).expect("ok");
        let text = f.body;
        assert!(!text.contains("SECRET_NEW_FIELD"), "{text}");
        assert!(!text.contains("debug"), "{text}");
        assert!(!text.contains("quotaLimiter"), "{text}");
    }

    #[test]
    fn error_records_keep_their_meta_fields() {
        let v = Vocabulary::embedded();
        let body = br#"{"content":[{"RESPON":"Data Tidak Ditemukan","RESPONSE_CODE":"13"}],"lastPage":true}"#;
        let f = filter_answer(body, &v, ElementSet::EMPTY, Shape::Values).expect("ok");
        assert_eq!(f.dwh_code.as_deref(), Some("13"));
        assert!(f.body.contains("Data Tidak Ditemukan"));
    }

    #[test]
    fn verdicts_pass_only_for_allowed_elements() {
        let v = Vocabulary::embedded();
        let body = br#"{"content":[{"NIK":"Sesuai","NAMA_LGKP":"Sesuai (100)","ALAMAT":"Tidak Sesuai (59)","AGAMA":"Tidak Sesuai","RESPONSE_CODE":"01"}]}"#;
        let all = allowed(&v, &["NIK", "NAMA_LGKP", "ALAMAT", "TGL_LHR"]);
        let f = filter_answer(body, &v, all, Shape::Verdicts).expect("ok");
        assert_eq!(
            f.body,
            r#"{"content":[{"NIK":"Sesuai","NAMA_LGKP":"Sesuai (100)","ALAMAT":"Tidak Sesuai (59)","RESPONSE_CODE":"01"}]}"#
        );
    }

    #[test]
    fn a_verification_answer_holding_a_value_is_refused_whole() {
        // Before, such fields were dropped and a Pengguna that may only verify (art. 29(4))
        // got `{}`, charged as a hit.
        let v = Vocabulary::embedded();
        let all = allowed(&v, &["NIK", "NAMA_LGKP", "TGL_LHR", "TMPT_LHR"]);
        for (field, value) in [
            ("TGL_LHR", r#""1990-01-01""#),
            ("NAMA_LGKP", r#""SITI CONTOH""#),
            ("NIK", "3201011501900001"),
            ("TMPT_LHR", r#""Sesuai (101)""#),
            ("AGAMA", r#""ISLAM""#),
            ("NEW_FIELD", r#""x""#),
            ("NAMA_LGKP", r#"{"v":"Sesuai"}"#),
        ] {
            let body = format!(r#"{{"content":[{{"NIK":"Sesuai","{field}":{value}}}]}}"#);
            assert_eq!(
                filter_answer(body.as_bytes(), &v, all, Shape::Verdicts).err(),
                Some(FilterError::NotVerdict(field.to_string())),
                "{body}"
            );
        }
    }

    #[test]
    fn a_lookup_answered_with_another_nik_is_refused_whole() {
        let v = Vocabulary::embedded();
        let asked = Nik::parse("3201011501900001").expect("nik");
        let nik_only = allowed(&v, &["NAMA_LGKP"]);
        for body in [
            r#"{"content":[{"NIK":3201011501900001,"NAMA_LGKP":"A"}]}"#,
            r#"{"content":[{"NIK":"3201011501900001","NAMA_LGKP":"A"},{"NIK":3201011501900001}]}"#,
            r#"{"content":[{"RESPON":"Data Tidak Ditemukan","RESPONSE_CODE":"13"}]}"#,
        ] {
            filter_lookup_answer(body.as_bytes(), &v, nik_only, &asked).expect(body);
        }
        // Someone else's record, alone or beside the one asked for, even where the PKS does
        // not release the NIK element.
        for body in [
            r#"{"content":[{"NIK":3201011501900002,"NAMA_LGKP":"B"}]}"#,
            r#"{"content":[{"NIK":3201011501900001},{"NIK":"3201011501900002"}]}"#,
            r#"{"content":[{"NIK":"32010115019000011"}]}"#,
            r#"{"content":[{"NIK":null}]}"#,
        ] {
            assert_eq!(
                filter_lookup_answer(body.as_bytes(), &v, nik_only, &asked).err(),
                Some(FilterError::OtherNik),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_answers_are_refused_whole() {
        let v = Vocabulary::embedded();
        assert!(matches!(
            filter_answer(b"<html>", &v, v.all(), Shape::Values),
            Err(FilterError::NotJson(_))
        ));
        assert_eq!(
            filter_answer(b"{}", &v, v.all(), Shape::Values).err(),
            Some(FilterError::NoContent)
        );
        assert_eq!(
            filter_answer(br#"{"content":[1]}"#, &v, v.all(), Shape::Values).err(),
            Some(FilterError::RecordNotObject)
        );
    }
}

//! `POST /dukcapil/balikan/{pengguna}`: the DWH's intake of data balikan, the data a
//! Pengguna must send back to Dukcapil under its PKS (tax object numbers, medical record
//! numbers). The gateway validates a batch against the PKS and forwards the accepted
//! records here as `{"data":[{"NIK":"…","NOP_PBB_P2":"…"},…]}`.
//!
//! The simulator checks the batch's shape only (not which columns a PKS names: that is
//! the gateway's job) and keeps nothing but counts, so no test data outlives the process.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::handlers::{Body, Code, error_page_with};
use crate::json::{self, Page};
use crate::nik::parse_nik;

/// Most records one batch may hold.
pub(crate) const MAX_RECORDS: usize = 1000;

/// Largest batch body accepted: [`MAX_RECORDS`] records of about a kilobyte each. The
/// lookups' 64 KiB would cut a full batch of ordinary records in half.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// Whether a path segment names a Pengguna: lower case letters, digits and `-`.
pub(crate) fn is_pengguna(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Why a batch is refused. Each carries the record's position (from 1) where one is at
/// fault, never a value from it, so the answer echoes no NIK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The body is not a JSON object.
    NotJson,
    /// The object has no `data`, or `data` is not an array.
    NoData,
    /// More than [`MAX_RECORDS`] records.
    TooMany(usize),
    /// A record is not an object.
    NotObject(usize),
    /// A record has a value that is not a string.
    NotString(usize),
    /// A record has a key that is not a column name (upper case letters, digits, `_`).
    BadKey(usize),
    /// A record names the same key twice.
    DuplicateKey(usize),
    /// A record has no `NIK`.
    NoNik(usize),
    /// A record's `NIK` is not a NIK (16 digits in Dukcapil's format).
    BadNik(usize),
}

impl Refusal {
    /// The DWH code the answer carries: a bad NIK is 15 as in a lookup, the rest 07.
    fn code(&self) -> Code {
        match self {
            Refusal::BadNik(_) => Code::BadFormat,
            _ => Code::Incomplete,
        }
    }

    /// The `RESPONSE_DESC`: what is wrong, in Indonesian, for the Pengguna's operator.
    fn desc(&self) -> String {
        match self {
            Refusal::NotJson => "Data balikan bukan objek JSON".to_owned(),
            Refusal::NoData => "Data balikan tidak memiliki larik data".to_owned(),
            Refusal::TooMany(n) => {
                format!("Jumlah data balikan {n} melebihi batas {MAX_RECORDS} per kiriman")
            }
            Refusal::NotObject(i) => format!("Data balikan ke-{i} bukan objek"),
            Refusal::NotString(i) => format!("Data balikan ke-{i} memuat nilai bukan teks"),
            Refusal::BadKey(i) => format!("Data balikan ke-{i} memuat nama kolom tidak sah"),
            Refusal::DuplicateKey(i) => format!("Data balikan ke-{i} memuat kolom ganda"),
            Refusal::NoNik(i) => format!("Data balikan ke-{i} tidak memuat NIK"),
            Refusal::BadNik(i) => format!("NIK data balikan ke-{i} tidak sesuai format"),
        }
    }
}

/// The body's shape: only `data` is read, its records kept raw so each is checked on
/// its own (and a key named twice is seen, which a map would hide).
#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// Checks a batch; the number of records it holds, or why it is refused.
pub(crate) fn check(body: &[u8]) -> Result<usize, Refusal> {
    let batch: Batch<'_> = serde_json::from_slice(body).map_err(|_| Refusal::NotJson)?;
    let data = batch.data.ok_or(Refusal::NoData)?;
    let records: Vec<&RawValue> = serde_json::from_str(data.get()).map_err(|_| Refusal::NoData)?;
    if records.len() > MAX_RECORDS {
        return Err(Refusal::TooMany(records.len()));
    }
    for (i, record) in records.iter().enumerate() {
        check_record(i + 1, record)?;
    }
    Ok(records.len())
}

/// Checks the record at `position` (from 1).
fn check_record(position: usize, record: &RawValue) -> Result<(), Refusal> {
    let record: Body =
        serde_json::from_str(record.get()).map_err(|_| Refusal::NotObject(position))?;
    let mut keys: Vec<&str> = Vec::new();
    let mut nik = None;
    for (key, value) in record.iter() {
        let Value::String(value) = value else {
            return Err(Refusal::NotString(position));
        };
        if !is_column(key) {
            return Err(Refusal::BadKey(position));
        }
        if keys.contains(&key.as_str()) {
            return Err(Refusal::DuplicateKey(position));
        }
        keys.push(key);
        if key == "NIK" {
            nik = Some(value);
        }
    }
    let nik = nik.ok_or(Refusal::NoNik(position))?;
    parse_nik(nik).ok_or(Refusal::BadNik(position))?;
    Ok(())
}

/// Whether a key is a column name: upper case ASCII letters, digits and `_`.
fn is_column(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The answer to an accepted batch of `records` records.
pub(crate) fn accepted(records: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    json::open_page(&mut out);
    out.push(b'{');
    json::push_key(&mut out, "RESPON");
    json::push_str(&mut out, "Data Balikan Diterima");
    out.push(b',');
    json::push_key(&mut out, "JUMLAH");
    json::push_u64(&mut out, records as u64);
    out.push(b'}');
    json::close_page(&mut out, Page::single(None));
    out
}

/// The answer to a refused batch: the DWH's error page with the reason as
/// `RESPONSE_DESC`.
pub(crate) fn refused(refusal: &Refusal) -> Vec<u8> {
    error_page_with(refusal.code(), Some(&refusal.desc()), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NIK: &str = "3201014101900001";

    fn record(extra: &str) -> String {
        format!(r#"{{"NIK":"{NIK}"{extra}}}"#)
    }

    fn batch(records: &[String]) -> String {
        format!(r#"{{"data":[{}]}}"#, records.join(","))
    }

    #[test]
    fn accepts_records_of_strings() {
        let one = record(r#","NOP_PBB_P2":"331309000100200010","NPWPD":"P.2.0001234.33.13""#);
        assert_eq!(check(batch(&[one.clone(), one]).as_bytes()), Ok(2));
        assert_eq!(check(br#"{"data":[]}"#), Ok(0));
        // Other members beside `data` are not the simulator's concern.
        assert_eq!(check(br#"{"data":[],"note":1}"#), Ok(0));
        let full = vec![record(r#","NO_RM":"RM-1""#); MAX_RECORDS];
        assert_eq!(check(batch(&full).as_bytes()), Ok(MAX_RECORDS));
    }

    #[test]
    fn refuses_each_malformed_shape() {
        let too_many = batch(&vec![record(""); MAX_RECORDS + 1]);
        for (body, want) in [
            ("not json".to_owned(), Refusal::NotJson),
            ("[]".to_owned(), Refusal::NotJson),
            ("{}".to_owned(), Refusal::NoData),
            (r#"{"data":{}}"#.to_owned(), Refusal::NoData),
            (r#"{"data":"x"}"#.to_owned(), Refusal::NoData),
            (too_many, Refusal::TooMany(MAX_RECORDS + 1)),
            (batch(&[record(""), "[]".to_owned()]), Refusal::NotObject(2)),
            (batch(&["\"x\"".to_owned()]), Refusal::NotObject(1)),
            (batch(&[record(r#","NO_RM":1"#)]), Refusal::NotString(1)),
            (batch(&[record(r#","NO_RM":null"#)]), Refusal::NotString(1)),
            (
                batch(&[record(r#","NO_RM":{"a":"b"}"#)]),
                Refusal::NotString(1),
            ),
            (
                batch(&[format!(r#"{{"NIK":{NIK}}}"#)]),
                Refusal::NotString(1),
            ),
            (batch(&[record(r#","no_rm":"1""#)]), Refusal::BadKey(1)),
            (batch(&[record(r#","NO-RM":"1""#)]), Refusal::BadKey(1)),
            (batch(&[record(r#","":"1""#)]), Refusal::BadKey(1)),
            (
                batch(&[record(r#","NIK":"3201014101900002""#)]),
                Refusal::DuplicateKey(1),
            ),
            (batch(&[r#"{"NO_RM":"1"}"#.to_owned()]), Refusal::NoNik(1)),
            (
                batch(&[r#"{"NIK":"320101410190"}"#.to_owned()]),
                Refusal::BadNik(1),
            ),
            (
                batch(&[r#"{"NIK":"32010141019000011"}"#.to_owned()]),
                Refusal::BadNik(1),
            ),
            (
                batch(&[r#"{"NIK":"320101410190000x"}"#.to_owned()]),
                Refusal::BadNik(1),
            ),
        ] {
            assert_eq!(check(body.as_bytes()), Err(want), "{body}");
        }
    }

    #[test]
    fn answers_in_the_dwh_envelope() {
        let ok: Value = serde_json::from_slice(&accepted(3)).expect("JSON");
        assert_eq!(
            ok,
            serde_json::json!({"content":[{"RESPON":"Data Balikan Diterima","JUMLAH":3}],
                "lastPage":true,"numberOfElements":1,"sort":null,"totalElements":1,
                "firstPage":true,"number":0,"size":1})
        );
        let bad: Value = serde_json::from_slice(&refused(&Refusal::BadNik(2))).expect("JSON");
        assert_eq!(bad["content"][0]["RESPONSE_CODE"], "15");
        assert_eq!(
            bad["content"][0]["RESPON"],
            "NIK Tidak Sesuai Format Dukcapil"
        );
        assert_eq!(
            bad["content"][0]["RESPONSE_DESC"],
            "NIK data balikan ke-2 tidak sesuai format"
        );
        let bad: Value = serde_json::from_slice(&refused(&Refusal::NoData)).expect("JSON");
        assert_eq!(bad["content"][0]["RESPONSE_CODE"], "07");
    }

    #[test]
    fn pengguna_segments() {
        for ok in ["bkd-karanganyar", "rsud01", "a"] {
            assert!(is_pengguna(ok), "{ok}");
        }
        for bad in ["", "BKD", "bkd_kra", "a/b", "bkd%2F", "bkd.x"] {
            assert!(!is_pengguna(bad), "{bad}");
        }
    }
}

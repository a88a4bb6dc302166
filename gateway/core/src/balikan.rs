//! Data balikan: the data a Pengguna returns to Dukcapil under its PKS (tax object numbers,
//! regional taxpayer numbers, medical record numbers), field by field.
//!
//! The fields a PKS's `data_balikan` may name are defined in the vocabulary file
//! (`config/elemen.toml`, `[[balikan]]`), each with the column it is sent under and its
//! format. A value is checked against that format before anything of it is forwarded; a
//! value that does not fit is refused with a reason in Indonesian that never repeats it.
//! `docs/balikan.md` describes the channel end to end.

use serde::Deserialize;

/// How a balikan field's value must look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalikanFormat {
    /// Exactly this many ASCII digits (a NOP PBB: 18).
    Digits(u8),
    /// A mask: `#` a digit, `@` an upper-case letter, anything else itself (an NPWPD such as
    /// `P.2.#######.##.##`).
    Mask(String),
    /// Free text of 1 to this many characters, no control characters.
    Text(u16),
}

/// One field a Pengguna may return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalikanField {
    /// The name a PKS uses (`NOP PBB-P2`).
    pub nama: String,
    /// The column or JSON key it is sent under (`NOP_PBB_P2`), upper case.
    pub kolom: String,
    /// What it is, in Ditjen's words.
    pub label: String,
    pub format: BalikanFormat,
}

/// Why a value does not fit its field; shown to the Pengguna, so it never holds the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueRefused {
    #[error("kosong")]
    Empty,
    #[error("harus {0} digit angka")]
    Digits(u8),
    #[error("tidak sesuai pola {0} (# angka, @ huruf besar)")]
    Mask(String),
    #[error("lebih dari {0} karakter")]
    TooLong(u16),
    #[error("memuat karakter kendali")]
    Control,
}

impl BalikanField {
    /// Checks `value` (surrounding white space ignored) and returns it as it is forwarded.
    pub fn check<'v>(&self, value: &'v str) -> Result<&'v str, ValueRefused> {
        let v = value.trim();
        if v.is_empty() {
            return Err(ValueRefused::Empty);
        }
        match &self.format {
            BalikanFormat::Digits(n) => {
                if v.len() == usize::from(*n) && v.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(v)
                } else {
                    Err(ValueRefused::Digits(*n))
                }
            }
            BalikanFormat::Mask(mask) => {
                if fits_mask(v, mask) {
                    Ok(v)
                } else {
                    Err(ValueRefused::Mask(mask.clone()))
                }
            }
            BalikanFormat::Text(max) => {
                if v.chars().any(char::is_control) {
                    Err(ValueRefused::Control)
                } else if v.chars().count() > usize::from(*max) {
                    Err(ValueRefused::TooLong(*max))
                } else {
                    Ok(v)
                }
            }
        }
    }

    /// The format in words, for pages and errors (`18 digit angka`).
    pub fn describe(&self) -> String {
        match &self.format {
            BalikanFormat::Digits(n) => format!("{n} digit angka"),
            BalikanFormat::Mask(m) => format!("pola {m} (# angka, @ huruf besar)"),
            BalikanFormat::Text(max) => format!("teks, paling banyak {max} karakter"),
        }
    }
}

fn fits_mask(value: &str, mask: &str) -> bool {
    value.len() == mask.len()
        && value.bytes().zip(mask.bytes()).all(|(v, m)| match m {
            b'#' => v.is_ascii_digit(),
            b'@' => v.is_ascii_uppercase(),
            _ => v == m,
        })
}

/// A `[[balikan]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BalikanFile {
    pub(crate) nama: String,
    pub(crate) kolom: String,
    pub(crate) label: String,
    /// `angka`, `pola` or `teks`.
    pub(crate) jenis: String,
    /// `angka`: the number of digits; `teks`: the most characters.
    #[serde(default)]
    pub(crate) panjang: Option<u32>,
    /// `pola`: the mask.
    #[serde(default)]
    pub(crate) pola: Option<String>,
}

/// Longest value any balikan field may hold, whatever the vocabulary says.
pub const MAX_VALUE_CHARS: u16 = 200;

impl BalikanFile {
    /// The field, or what is wrong with the entry (in the vocabulary's English messages).
    pub(crate) fn field(self) -> Result<BalikanField, String> {
        if self.nama.trim().is_empty() || self.nama.chars().any(char::is_control) {
            return Err("`nama` must be a non-empty name".into());
        }
        if self.kolom.is_empty()
            || self.kolom.eq_ignore_ascii_case("NIK")
            || !self
                .kolom
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "`kolom` `{}` must be A-Z, 0-9 and _, and not NIK (every record carries its NIK)",
                self.kolom
            ));
        }
        let format = match (self.jenis.as_str(), self.panjang, self.pola) {
            ("angka", Some(n @ 1..=64), None) => BalikanFormat::Digits(n as u8),
            ("teks", Some(n), None) if (1..=u32::from(MAX_VALUE_CHARS)).contains(&n) => {
                BalikanFormat::Text(n as u16)
            }
            ("pola", None, Some(mask))
                if !mask.is_empty()
                    && mask.len() <= usize::from(MAX_VALUE_CHARS)
                    && mask.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                BalikanFormat::Mask(mask)
            }
            ("angka", ..) => {
                return Err(
                    "`jenis = \"angka\"` needs `panjang` from 1 to 64 and no `pola`".into(),
                );
            }
            ("teks", ..) => {
                return Err(format!(
                    "`jenis = \"teks\"` needs `panjang` from 1 to {MAX_VALUE_CHARS} and no `pola`"
                ));
            }
            ("pola", ..) => {
                return Err(format!(
                    "`jenis = \"pola\"` needs a `pola` of printable ASCII up to {MAX_VALUE_CHARS} characters and no `panjang`"
                ));
            }
            (other, ..) => {
                return Err(format!("`jenis` `{other}` is not one of angka, pola, teks"));
            }
        };
        Ok(BalikanField {
            nama: self.nama,
            kolom: self.kolom,
            label: self.label,
            format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(format: BalikanFormat) -> BalikanField {
        BalikanField {
            nama: "x".into(),
            kolom: "X".into(),
            label: "x".into(),
            format,
        }
    }

    #[test]
    fn digits_must_be_exactly_that_many() {
        let f = field(BalikanFormat::Digits(18));
        assert_eq!(f.check(" 331309000100200010 "), Ok("331309000100200010"));
        for bad in [
            "33130900010020001",
            "3313090001002000100",
            "33130900010020001a",
            "３３",
        ] {
            assert_eq!(f.check(bad), Err(ValueRefused::Digits(18)), "{bad}");
        }
        assert_eq!(f.check("  "), Err(ValueRefused::Empty));
    }

    #[test]
    fn a_mask_takes_digits_letters_and_itself() {
        let f = field(BalikanFormat::Mask("P.@.#######.##.##".into()));
        assert!(f.check("P.B.0001234.33.13").is_ok());
        for bad in [
            "P.b.0001234.33.13",
            "P.B.000123.33.13",
            "P.B.0001234-33.13",
            "X.B.0001234.33.13",
        ] {
            assert!(f.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_bounded_and_printable() {
        let f = field(BalikanFormat::Text(5));
        assert_eq!(f.check("RM-01"), Ok("RM-01"));
        assert_eq!(f.check("RM-012"), Err(ValueRefused::TooLong(5)));
        assert_eq!(f.check("a\u{0}b"), Err(ValueRefused::Control));
        // Characters, not bytes.
        assert_eq!(f.check("ééééé"), Ok("ééééé"));
    }

    #[test]
    fn a_refusal_never_repeats_the_value() {
        let f = field(BalikanFormat::Mask("##".into()));
        let shown = f.check("secret").expect_err("bad").to_string();
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn entries_are_checked() {
        let entry =
            |jenis: &str, panjang: Option<u32>, pola: Option<&str>, kolom: &str| BalikanFile {
                nama: "N".into(),
                kolom: kolom.into(),
                label: "l".into(),
                jenis: jenis.into(),
                panjang,
                pola: pola.map(str::to_string),
            };
        assert!(entry("angka", Some(18), None, "NOP").field().is_ok());
        assert!(entry("pola", None, Some("P.#"), "NPWPD").field().is_ok());
        assert!(entry("teks", Some(30), None, "RM").field().is_ok());
        assert!(entry("angka", None, None, "NOP").field().is_err());
        assert!(entry("angka", Some(18), Some("#"), "NOP").field().is_err());
        assert!(entry("teks", Some(5000), None, "RM").field().is_err());
        assert!(entry("huruf", Some(1), None, "RM").field().is_err());
        assert!(entry("angka", Some(18), None, "nop").field().is_err());
        assert!(entry("angka", Some(18), None, "NIK").field().is_err());
    }
}

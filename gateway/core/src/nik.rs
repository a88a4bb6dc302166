//! NIK and No KK: the 16-digit numbers every lookup is keyed by.
//!
//! A NIK is `PP KK CC DDMMYY SSSS`: province, regency, district, birth date (day + 40 for
//! women) and a serial from 0001. A No KK is `PPKKCC` + the record date `DDMMYY` (no +40) +
//! a 4-digit serial. Both are validated before anything reaches the DWH so that a malformed
//! number is refused with a reason instead of spending a hit.

use std::fmt;

use chrono::NaiveDate;

/// Province codes in use (Kepmendagri on area codes): 11–19, 21, 31–36, 51–53, 61–65,
/// 71–76, 81–82, 91–96.
const PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65,
    71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96,
];

/// Whether `code` is a province code that a NIK or No KK may start with.
pub fn is_province_code(code: u8) -> bool {
    PROVINCES.contains(&code)
}

/// Why a string is not a valid NIK or No KK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NikError {
    #[error("must be 16 digits, got {0} characters")]
    Length(usize),
    #[error("must contain only digits 0-9")]
    NotDigits,
    #[error("province code {0:02} does not exist")]
    Province(u8),
    #[error("regency code 00 does not exist")]
    Regency,
    #[error("district code 00 does not exist")]
    District,
    #[error("date part {0} is not a real date (day 01-31, or 41-71 for women)")]
    Date(String),
    #[error("serial number 0000 is not issued")]
    Serial,
}

/// Sex encoded in a NIK's day field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

/// A validated NIK. Holds the 16 ASCII digits; cheap to copy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nik([u8; 16]);

/// A validated No KK (family card number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoKk([u8; 16]);

fn digits16(s: &str) -> Result<[u8; 16], NikError> {
    let bytes = s.as_bytes();
    if bytes.len() != 16 {
        return Err(NikError::Length(s.chars().count()));
    }
    if !bytes.iter().all(u8::is_ascii_digit) {
        return Err(NikError::NotDigits);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(bytes);
    Ok(out)
}

fn two(d: &[u8; 16], at: usize) -> u8 {
    (d[at] - b'0') * 10 + (d[at + 1] - b'0')
}

/// Checks the area part `PPKKCC` shared by NIK and No KK.
fn check_area(d: &[u8; 16]) -> Result<(), NikError> {
    let province = two(d, 0);
    if !is_province_code(province) {
        return Err(NikError::Province(province));
    }
    if two(d, 2) == 0 {
        return Err(NikError::Regency);
    }
    if two(d, 4) == 0 {
        return Err(NikError::District);
    }
    if &d[12..16] == b"0000" {
        return Err(NikError::Serial);
    }
    Ok(())
}

/// A `DDMMYY` date is valid when some century makes it a real date; February 29 needs a
/// leap year in 1900s or 2000s.
fn date_exists(day: u8, month: u8, yy: u8) -> bool {
    [1900, 2000].iter().any(|century| {
        NaiveDate::from_ymd_opt(century + i32::from(yy), u32::from(month), u32::from(day)).is_some()
    })
}

fn date_text(d: &[u8; 16]) -> String {
    String::from_utf8_lossy(&d[6..12]).into_owned()
}

impl Nik {
    /// Parses and validates a NIK, saying which rule it breaks.
    pub fn parse(s: &str) -> Result<Self, NikError> {
        let d = digits16(s)?;
        check_area(&d)?;
        let raw_day = two(&d, 6);
        let day = if raw_day > 40 { raw_day - 40 } else { raw_day };
        if !(1..=31).contains(&day) || !date_exists(day, two(&d, 8), two(&d, 10)) {
            return Err(NikError::Date(date_text(&d)));
        }
        Ok(Self(d))
    }

    /// The 16 digits.
    pub fn as_str(&self) -> &str {
        // The bytes are ASCII digits by construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The province code (first two digits).
    pub fn province(&self) -> u8 {
        two(&self.0, 0)
    }

    /// Sex as encoded in the day field (day + 40 for women).
    pub fn sex(&self) -> Sex {
        if two(&self.0, 6) > 40 {
            Sex::Female
        } else {
            Sex::Male
        }
    }
}

impl NoKk {
    /// Parses and validates a No KK (record date without the +40 rule).
    pub fn parse(s: &str) -> Result<Self, NikError> {
        let d = digits16(s)?;
        check_area(&d)?;
        let day = two(&d, 6);
        if !(1..=31).contains(&day) || !date_exists(day, two(&d, 8), two(&d, 10)) {
            return Err(NikError::Date(date_text(&d)));
        }
        Ok(Self(d))
    }

    /// The 16 digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

// Debug output never shows the full number: NIKs are personal data (docs/architecture.md, "Rules and where they come from") and Debug
// ends up in logs.
impl fmt::Debug for Nik {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nik({}…)", &self.as_str()[..6])
    }
}

impl fmt::Debug for NoKk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoKk({}…)", &self.as_str()[..6])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_male_and_female_niks() {
        let male = Nik::parse("3201011501900001").expect("valid");
        assert_eq!(male.sex(), Sex::Male);
        assert_eq!(male.province(), 32);
        let female = Nik::parse("3201015501900002").expect("valid");
        assert_eq!(female.sex(), Sex::Female);
    }

    #[test]
    fn rejects_each_rule_with_its_reason() {
        assert_eq!(Nik::parse("320101150190001"), Err(NikError::Length(15)));
        assert_eq!(Nik::parse("32010115019000011"), Err(NikError::Length(17)));
        assert_eq!(Nik::parse("32010115019000a1"), Err(NikError::NotDigits));
        assert_eq!(Nik::parse("3201011501900000"), Err(NikError::Serial));
        assert_eq!(Nik::parse("2001011501900001"), Err(NikError::Province(20)));
        assert_eq!(Nik::parse("3200011501900001"), Err(NikError::Regency));
        assert_eq!(Nik::parse("3201001501900001"), Err(NikError::District));
        // Day 32..40 is neither a man's nor a woman's day.
        assert!(matches!(
            Nik::parse("3201013501900001"),
            Err(NikError::Date(_))
        ));
        // Day 72 would be the 32nd for a woman.
        assert!(matches!(
            Nik::parse("3201017201900001"),
            Err(NikError::Date(_))
        ));
        // Month 13.
        assert!(matches!(
            Nik::parse("3201011513900001"),
            Err(NikError::Date(_))
        ));
        // 30 February, for a woman (70 = 30 + 40).
        assert!(matches!(
            Nik::parse("3201017002900001"),
            Err(NikError::Date(_))
        ));
        assert!(matches!(
            Nik::parse("3201010000900001"),
            Err(NikError::Date(_))
        ));
    }

    #[test]
    fn leap_day_needs_a_leap_year() {
        // 29-02-00 exists (2000 is a leap year); 29-02-01 does not.
        assert!(Nik::parse("3201012902000001").is_ok());
        assert!(Nik::parse("3201016902000001").is_ok());
        assert!(matches!(
            Nik::parse("3201012902010001"),
            Err(NikError::Date(_))
        ));
    }

    #[test]
    fn every_listed_province_is_accepted_and_neighbours_are_not() {
        for p in PROVINCES {
            let s = format!("{p:02}01011501900001");
            assert!(Nik::parse(&s).is_ok(), "{s}");
        }
        for p in [
            10u8, 20, 22, 30, 37, 50, 54, 60, 66, 70, 77, 80, 83, 90, 97, 99,
        ] {
            let s = format!("{p:02}01011501900001");
            assert_eq!(Nik::parse(&s), Err(NikError::Province(p)));
        }
    }

    #[test]
    fn no_kk_has_no_plus_forty() {
        assert!(NoKk::parse("3201011502150003").is_ok());
        assert!(matches!(
            NoKk::parse("3201015502150003"),
            Err(NikError::Date(_))
        ));
        assert_eq!(NoKk::parse("3201011502150000"), Err(NikError::Serial));
    }

    #[test]
    fn debug_does_not_reveal_the_number() {
        let nik = Nik::parse("3201011501900001").expect("valid");
        let shown = format!("{nik:?}");
        assert!(!shown.contains("1501900001"), "{shown}");
    }
}

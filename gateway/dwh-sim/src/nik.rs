//! The NIK format check behind response code 15 ("NIK Tidak Sesuai Format Dukcapil").

use crate::date::{days_in_month, is_leap};
use crate::vocab::is_province_code;

/// Parses a NIK as sent by a client: 16 ASCII digits `PP KK CC DDMMYY SSSS` with a known
/// province, a real birth date (day + 40 for women) and a serial from 0001.
pub(crate) fn parse_nik(text: &str) -> Option<u64> {
    let digits = text.as_bytes();
    if digits.len() != 16 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let two = |at: usize| (digits[at] - b'0') * 10 + (digits[at + 1] - b'0');
    let (province, regency, district) = (two(0), two(2), two(4));
    let (mut day, month, year) = (two(6), two(8), two(10));
    if day > 40 {
        day -= 40;
    }
    let serial = &digits[12..];
    let valid = is_province_code(province)
        && regency != 0
        && district != 0
        && (1..=12).contains(&month)
        && day >= 1
        && day <= max_day(month, year)
        && serial != b"0000";
    if !valid {
        return None;
    }
    text.parse().ok()
}

/// The last day of a month when only the year's last two digits are known: 29 February
/// is accepted when either 19YY or 20YY is a leap year.
fn max_day(month: u8, yy: u8) -> u8 {
    if month == 2 && (is_leap(1900 + u16::from(yy)) || is_leap(2000 + u16::from(yy))) {
        29
    } else {
        days_in_month(2001, month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_men_and_women() {
        assert_eq!(parse_nik("3201010101900001"), Some(3_201_010_101_900_001));
        assert_eq!(parse_nik("3201014101900001"), Some(3_201_014_101_900_001));
        assert_eq!(parse_nik("3201012902000001"), Some(3_201_012_902_000_001));
        assert_eq!(parse_nik("3201016902960001"), Some(3_201_016_902_960_001));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "320101010190000",
            "32010101019000011",
            "3201010101900000",
            "2001010101900001",
            "3200010101900001",
            "3201000101900001",
            "3201013201900001",
            "3201017201900001",
            "3201010013900001",
            "3201013102900001",
            "3201012902970001",
            "32010101019000a1",
            "+201010101900001",
        ] {
            assert_eq!(parse_nik(bad), None, "{bad}");
        }
    }
}

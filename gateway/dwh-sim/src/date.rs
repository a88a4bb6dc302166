//! Calendar dates without a date library: the simulator needs only civil dates,
//! day arithmetic and two text formats.

use std::fmt::Write as _;

/// A civil (proleptic Gregorian) date. `Date::NONE` marks an absent date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Date {
    pub(crate) year: u16,
    pub(crate) month: u8,
    pub(crate) day: u8,
}

impl Date {
    pub(crate) const NONE: Date = Date {
        year: 0,
        month: 0,
        day: 0,
    };

    /// The simulator's fixed "today": ages and record dates are relative to it so that
    /// a seed gives the same population whatever day it is generated on.
    pub(crate) const TODAY: Date = Date {
        year: 2025,
        month: 6,
        day: 30,
    };

    pub(crate) fn new(year: u16, month: u8, day: u8) -> Option<Date> {
        let valid = (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day);
        valid.then_some(Date { year, month, day })
    }

    pub(crate) fn is_none(self) -> bool {
        self.year == 0
    }

    /// Days since 1970-01-01 (negative before).
    pub(crate) fn to_days(self) -> i32 {
        let y = i32::from(self.year) - i32::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i32::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i32::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    pub(crate) fn from_days(days: i32) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i32::from(month <= 2);
        Date {
            year: u16::try_from(year).unwrap_or(0),
            month: u8::try_from(month).unwrap_or(0),
            day: u8::try_from(day).unwrap_or(0),
        }
    }

    /// Parses a claimed date as clients send it: `dd-MM-yyyy` or `yyyy-MM-dd`
    /// (`/` is accepted in place of `-`).
    pub(crate) fn parse_claim(text: &str) -> Option<Date> {
        let mut parts = text.trim().split(['-', '/']);
        let a = parts.next()?;
        let b = parts.next()?;
        let c = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let (y, m, d) = if a.len() == 4 { (a, b, c) } else { (c, b, a) };
        if y.len() != 4 || m.is_empty() || m.len() > 2 || d.is_empty() || d.len() > 2 {
            return None;
        }
        Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }

    /// Writes `yyyy-MM-dd`.
    pub(crate) fn write_iso(self, out: &mut String) {
        let _ = write!(out, "{:04}-{:02}-{:02}", self.year, self.month, self.day);
    }

    /// `DDMMYY` as a number, with `day_offset` added to the day (40 for women in a NIK).
    pub(crate) fn ddmmyy(self, day_offset: u8) -> u64 {
        u64::from(self.day + day_offset) * 10_000
            + u64::from(self.month) * 100
            + u64::from(self.year % 100)
    }
}

pub(crate) fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

pub(crate) fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        for days in -30_000..30_000 {
            let date = Date::from_days(days);
            assert_eq!(date.to_days(), days, "{date:?}");
            assert!(Date::new(date.year, date.month, date.day).is_some());
        }
        assert_eq!(
            Date::from_days(0),
            Date {
                year: 1970,
                month: 1,
                day: 1
            }
        );
    }

    #[test]
    fn claims_in_both_orders() {
        let want = Date::new(1990, 1, 31);
        assert_eq!(Date::parse_claim("31-01-1990"), want);
        assert_eq!(Date::parse_claim("1990-01-31"), want);
        assert_eq!(Date::parse_claim("31/1/1990"), want);
        assert_eq!(Date::parse_claim("31-02-1990"), None);
        assert_eq!(Date::parse_claim("1990-01"), None);
        assert_eq!(Date::parse_claim("x"), None);
    }
}

//! NIK and No KK: numbers built from the Dukcapil rules are accepted and read back; any
//! change that breaks one rule is refused with that rule's reason; any other string agrees
//! with an independent model of the rules (a table of month lengths, not a calendar).

use gerbang_core::{Nik, NikError, NoKk, Sex};
use proptest::prelude::*;

/// Province codes in use (the DWH's list, written out again here on purpose).
const PROVINCES: [u8; 38] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65,
    71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96,
];

/// Days in `month` of a two-digit year: February has 29 when 19yy or 20yy is a leap year,
/// which is when yy is a multiple of 4 (2000 covers 00; 1900 is not a leap year).
fn days_in_month(month: u8, yy: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if yy.is_multiple_of(4) => 29,
        2 => 28,
        _ => 0,
    }
}

/// The rules, in the order the parser reports them; `female_days`: a NIK (day + 40 for
/// women), not a No KK.
fn model(s: &str, female_days: bool) -> Result<(), NikError> {
    if s.len() != 16 {
        return Err(NikError::Length(s.chars().count()));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NikError::NotDigits);
    }
    let two = |at: usize| s[at..at + 2].parse::<u8>().unwrap_or(0);
    if !PROVINCES.contains(&two(0)) {
        return Err(NikError::Province(two(0)));
    }
    if two(2) == 0 {
        return Err(NikError::Regency);
    }
    if two(4) == 0 {
        return Err(NikError::District);
    }
    if &s[12..] == "0000" {
        return Err(NikError::Serial);
    }
    let raw_day = two(6);
    let day = if female_days && raw_day > 40 {
        raw_day - 40
    } else {
        raw_day
    };
    if day == 0 || day > days_in_month(two(8), two(10)) {
        return Err(NikError::Date(s[6..12].to_string()));
    }
    Ok(())
}

/// The parts of a valid number.
#[derive(Debug, Clone)]
struct Parts {
    province: u8,
    regency: u8,
    district: u8,
    day: u8,
    month: u8,
    yy: u8,
    female: bool,
    serial: u16,
}

impl Parts {
    fn nik(&self) -> String {
        let day = self.day + if self.female { 40 } else { 0 };
        self.text(day)
    }

    fn no_kk(&self) -> String {
        self.text(self.day)
    }

    fn text(&self, day: u8) -> String {
        format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}{:04}",
            self.province, self.regency, self.district, day, self.month, self.yy, self.serial
        )
    }
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        proptest::sample::select(&PROVINCES[..]),
        1u8..=99,
        1u8..=99,
        0u8..=99,
        1u8..=12,
        any::<prop::sample::Index>(),
        any::<bool>(),
        1u16..=9999,
    )
        .prop_map(
            |(province, regency, district, yy, month, day, female, serial)| Parts {
                province,
                regency,
                district,
                day: 1 + day.index(usize::from(days_in_month(month, yy))) as u8,
                month,
                yy,
                female,
                serial,
            },
        )
}

/// One rule broken on purpose, with the reason it must be refused for.
#[derive(Debug, Clone)]
enum Break {
    /// A digit removed or added.
    Length(bool),
    /// A digit replaced by another ASCII character.
    NotDigit(usize, char),
    Province(u8),
    Regency,
    District,
    Serial,
    /// A day 32–40, 0, or 72–99 in the day field.
    DayField(u8),
    /// A month 00 or 13–99.
    Month(u8),
    /// A day after the month's last.
    PastMonthEnd(u8),
}

fn broken() -> impl Strategy<Value = Break> {
    let not_province = (0u8..=99).prop_filter("not a province", |p| !PROVINCES.contains(p));
    prop_oneof![
        any::<bool>().prop_map(Break::Length),
        (0usize..16, "[ -/:-~]")
            .prop_map(|(i, c)| Break::NotDigit(i, c.chars().next().unwrap_or('x'))),
        not_province.prop_map(Break::Province),
        Just(Break::Regency),
        Just(Break::District),
        Just(Break::Serial),
        prop_oneof![Just(0u8), 32u8..=40, 72u8..=99].prop_map(Break::DayField),
        prop_oneof![Just(0u8), 13u8..=99].prop_map(Break::Month),
        (1u8..=9).prop_map(Break::PastMonthEnd),
    ]
}

/// Applies `b` to a valid NIK (`female_days`) or No KK, returning the text and the reason.
fn apply(p: &Parts, b: &Break, female_days: bool) -> (String, NikError) {
    let valid = if female_days { p.nik() } else { p.no_kk() };
    let mut q = p.clone();
    let with_day = |q: &Parts, day: u8| {
        let shown = if female_days && q.female && (1..=31).contains(&day) {
            day + 40
        } else {
            day
        };
        q.text(shown)
    };
    match *b {
        Break::Length(longer) => {
            let s = if longer {
                format!("{valid}1")
            } else {
                valid[..15].to_string()
            };
            let n = s.len();
            (s, NikError::Length(n))
        }
        Break::NotDigit(i, c) => {
            let mut s = valid.into_bytes();
            s[i] = c as u8;
            (
                String::from_utf8_lossy(&s).into_owned(),
                NikError::NotDigits,
            )
        }
        Break::Province(code) => {
            q.province = code;
            (with_day(&q, q.day), NikError::Province(code))
        }
        Break::Regency => {
            q.regency = 0;
            (with_day(&q, q.day), NikError::Regency)
        }
        Break::District => {
            q.district = 0;
            (with_day(&q, q.day), NikError::District)
        }
        Break::Serial => {
            q.serial = 0;
            (with_day(&q, q.day), NikError::Serial)
        }
        Break::DayField(field) => {
            let s = q.text(field);
            let date = s[6..12].to_string();
            (s, NikError::Date(date))
        }
        Break::Month(month) => {
            q.month = month;
            let s = with_day(&q, q.day);
            let date = s[6..12].to_string();
            (s, NikError::Date(date))
        }
        Break::PastMonthEnd(extra) => {
            let last = days_in_month(q.month, q.yy);
            let day = last + extra;
            // Past 31 the day field is no date at all; for a woman's NIK keep it under 72.
            let s = with_day(&q, day.min(31).max(last + 1));
            let date = s[6..12].to_string();
            (s, NikError::Date(date))
        }
    }
}

proptest! {
    #![proptest_config(crate::cases(1024))]

    /// A NIK built from the rules is accepted, reads back as itself, and says its
    /// province and sex; the same parts without the +40 are a valid No KK.
    #[test]
    fn valid_numbers_are_accepted_and_read_back(p in parts()) {
        let text = p.nik();
        let nik = Nik::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(nik.as_str(), text.as_str());
        prop_assert_eq!(nik.province(), p.province);
        prop_assert_eq!(nik.sex(), if p.female { Sex::Female } else { Sex::Male });
        prop_assert_eq!(Nik::parse(nik.as_str()), Ok(nik));
        let shown = format!("{nik:?}");
        prop_assert!(!shown.contains(&text[6..]), "{shown}");

        let kk = p.no_kk();
        let no_kk = NoKk::parse(&kk).map_err(|e| TestCaseError::fail(format!("{kk}: {e}")))?;
        prop_assert_eq!(no_kk.as_str(), kk.as_str());
        let shown = format!("{no_kk:?}");
        prop_assert!(!shown.contains(&kk[6..]), "{}", shown);
    }

    /// Breaking exactly one rule of a valid number is refused with that rule's reason.
    #[test]
    fn one_broken_rule_is_refused_with_its_reason(p in parts(), b in broken()) {
        let (nik, why) = apply(&p, &b, true);
        prop_assert_eq!(Nik::parse(&nik), Err(why), "{}", nik);
        let (kk, why) = apply(&p, &b, false);
        prop_assert_eq!(NoKk::parse(&kk).map(|_| ()), Err(why), "{}", kk);
    }

    /// A No KK's day never has +40: a woman's NIK is no No KK.
    #[test]
    fn a_womans_nik_is_no_no_kk(p in parts()) {
        let female = Parts { female: true, ..p };
        let text = female.nik();
        prop_assert_eq!(NoKk::parse(&text).map(|_| ()), Err(NikError::Date(text[6..12].to_string())));
    }

    /// Any 16 digits: the parser and the model agree, reason included.
    #[test]
    fn any_sixteen_digits_agree_with_the_model(s in "[0-9]{16}") {
        prop_assert_eq!(Nik::parse(&s).map(|_| ()), model(&s, true), "{}", s);
        prop_assert_eq!(NoKk::parse(&s).map(|_| ()), model(&s, false), "{}", s);
    }

    /// Any string at all (Unicode, near-misses in length): no panic, the model's answer.
    #[test]
    fn any_string_agrees_with_the_model(s in prop_oneof!["\\PC{0,20}", "[0-9]{14,18}", "[0-9\u{660}-\u{669}\u{ff10}-\u{ff19}]{15,16}"]) {
        prop_assert_eq!(Nik::parse(&s).map(|_| ()), model(&s, true), "{:?}", s);
        prop_assert_eq!(NoKk::parse(&s).map(|_| ()), model(&s, false), "{:?}", s);
    }
}

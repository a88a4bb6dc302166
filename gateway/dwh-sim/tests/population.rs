//! The generated population: valid and unique numbers, families, spread, determinism.

use std::collections::{HashMap, HashSet};

use gerbang_dwh_sim::{Population, RecordStatus, SampleKind};

const PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65,
    71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96,
];

fn two(digits: &[u8], at: usize) -> u32 {
    u32::from(digits[at] - b'0') * 10 + u32::from(digits[at + 1] - b'0')
}

fn real_date(day: u32, month: u32, yy: u32) -> bool {
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let last = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(1900 + yy) || leap(2000 + yy) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=last).contains(&day)
}

/// The format rules, written independently of the crate's own check.
fn check_number(text: &str, women_plus_40: bool) {
    let d = text.as_bytes();
    assert_eq!(d.len(), 16, "{text}");
    assert!(d.iter().all(u8::is_ascii_digit), "{text}");
    assert!(PROVINCES.contains(&(two(d, 0) as u8)), "province of {text}");
    assert_ne!(two(d, 2), 0, "regency of {text}");
    assert_ne!(two(d, 4), 0, "district of {text}");
    let mut day = two(d, 6);
    if women_plus_40 && day > 40 {
        day -= 40;
    }
    assert!(real_date(day, two(d, 8), two(d, 10)), "date of {text}");
    assert_ne!(&text[12..], "0000", "serial of {text}");
}

#[test]
fn every_nik_and_no_kk_is_valid_and_niks_are_unique() {
    let population = Population::generate(42, 50_000);
    assert_eq!(population.len(), 50_000);
    let mut seen = HashSet::new();
    for nik in population.niks() {
        let text = format!("{nik:016}");
        check_number(&text, true);
        gerbang_core::Nik::parse(&text).expect("gerbang-core accepts the NIK");
        assert!(seen.insert(nik), "duplicate NIK");
    }
    for kk in population.no_kks() {
        let text = format!("{kk:016}");
        check_number(&text, false);
        gerbang_core::NoKk::parse(&text).expect("gerbang-core accepts the No KK");
    }
}

#[test]
fn families_share_a_no_kk_and_an_address() {
    let population = Population::generate(7, 20_000);
    let mut families: HashMap<u64, Vec<u64>> = HashMap::new();
    for (nik, kk) in population.niks().zip(population.no_kks()) {
        families.entry(kk).or_default().push(nik);
    }
    let sizes: Vec<usize> = families.values().map(Vec::len).collect();
    assert!(sizes.iter().all(|&n| (1..=8).contains(&n)), "{sizes:?}");
    let shared = sizes.iter().filter(|&&n| n >= 2).count();
    assert!(
        shared * 2 > families.len(),
        "most families have several members"
    );

    let members = families
        .values()
        .find(|m| m.len() >= 3)
        .expect("a family of three");
    let records: Vec<serde_json::Value> = members
        .iter()
        .map(|&nik| {
            serde_json::from_str(&population.record_json(nik).expect("record")).expect("JSON")
        })
        .collect();
    let heads = records
        .iter()
        .filter(|r| r["STAT_HBKEL"] == "KEPALA KELUARGA")
        .count();
    assert_eq!(heads, 1, "{records:?}");
    for field in ["ALAMAT", "NO_RT", "NO_RW", "KEL_NAME", "NO_KEL", "KODE_POS"] {
        assert!(
            records.iter().all(|r| r[field] == records[0][field]),
            "{field}"
        );
    }
}

#[test]
fn same_seed_same_records_other_seed_other_records() {
    let a = Population::generate(1234, 5_000);
    let b = Population::generate(1234, 5_000);
    assert!(a.niks().eq(b.niks()));
    for nik in a.niks() {
        assert_eq!(a.record_json(nik), b.record_json(nik));
    }
    let c = Population::generate(1235, 5_000);
    let a_niks: HashSet<u64> = a.niks().collect();
    let common = c.niks().filter(|n| a_niks.contains(n)).count();
    assert!(common < 500, "{common} NIKs in common");
    assert_eq!(a.sample(SampleKind::Any, 10), b.sample(SampleKind::Any, 10));
    assert_ne!(a.sample(SampleKind::Any, 10), c.sample(SampleKind::Any, 10));
}

#[test]
fn special_records_are_about_half_a_percent_each() {
    let population = Population::generate(42, 100_000);
    let mut counts: HashMap<RecordStatus, usize> = HashMap::new();
    let mut women = 0;
    for nik in population.niks() {
        *counts
            .entry(population.status(nik).expect("status"))
            .or_default() += 1;
        women += usize::from((nik / 100_000_000) % 100 > 40);
    }
    for status in [
        RecordStatus::Deceased,
        RecordStatus::Duplicate,
        RecordStatus::Inactive,
    ] {
        let n = counts.get(&status).copied().unwrap_or(0);
        assert!((300..=700).contains(&n), "{status:?}: {n}");
    }
    assert!((45_000..=55_000).contains(&women), "{women} women");
}

#[test]
fn samples_have_the_kind_asked_for() {
    let population = Population::generate(9, 20_000);
    let status = |nik: &String| population.status(nik.parse().expect("digits"));
    for (kind, want) in [
        (SampleKind::Alive, RecordStatus::Active),
        (SampleKind::Female, RecordStatus::Active),
        (SampleKind::Deceased, RecordStatus::Deceased),
        (SampleKind::Duplicate, RecordStatus::Duplicate),
        (SampleKind::Inactive, RecordStatus::Inactive),
    ] {
        let niks = population.sample(kind, 20);
        assert_eq!(niks.len(), 20, "{kind:?}");
        assert_eq!(niks.iter().collect::<HashSet<_>>().len(), 20, "distinct");
        assert!(niks.iter().all(|n| status(n) == Some(want)), "{kind:?}");
    }
    let women = population.sample(SampleKind::Female, 50);
    assert!(
        women
            .iter()
            .all(|n| n[6..8].parse::<u8>().expect("day") > 40)
    );
    assert_eq!(
        population.sample(SampleKind::Alive, 3),
        population.sample(SampleKind::Alive, 5)[..3]
    );
    assert_eq!(
        Population::generate(1, 0).sample(SampleKind::Any, 3),
        Vec::<String>::new()
    );
    assert_eq!(
        "Deceased".parse::<SampleKind>().ok(),
        Some(SampleKind::Deceased)
    );
    assert!("nobody".parse::<SampleKind>().is_err());
}

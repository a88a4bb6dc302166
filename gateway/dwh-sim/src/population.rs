//! The synthetic population: generated deterministically from a seed, stored compactly
//! (small indices into the vocabularies), rendered to text only when answered.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;

use crate::date::Date;
use crate::geo::Geography;
use crate::rng::{Rng, mix};
use crate::vocab::{self, name_part};

/// How a record answers `CALL_NIK`: normally, or with one of the DWH's special codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordStatus {
    /// Answered with the record (code 01).
    Active,
    /// "Data Ditemukan, Status Meninggal Dunia" (code 11).
    Deceased,
    /// "Data Ditemukan, NIK Ganda" (code 12).
    Duplicate,
    /// "Data Ditemukan, Status Tidak Aktif" (code 14).
    Inactive,
}

/// Which NIKs `/__sim/sample` and [`Population::sample`] pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleKind {
    /// Records answered normally (status [`RecordStatus::Active`]).
    Alive,
    /// Active records of women (NIK day 41–71).
    Female,
    /// Records answered with code 11.
    Deceased,
    /// Records answered with code 12.
    Duplicate,
    /// Records answered with code 14.
    Inactive,
    /// Any record, whatever its status.
    Any,
}

/// The text is not one of `alive`, `female`, `deceased`, `duplicate`, `inactive`, `any`.
#[derive(Debug, thiserror::Error)]
#[error("unknown sample kind {0:?} (expected alive, female, deceased, duplicate, inactive or any)")]
pub struct UnknownSampleKind(String);

impl FromStr for SampleKind {
    type Err = UnknownSampleKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "alive" => SampleKind::Alive,
            "female" => SampleKind::Female,
            "deceased" => SampleKind::Deceased,
            "duplicate" => SampleKind::Duplicate,
            "inactive" => SampleKind::Inactive,
            "any" => SampleKind::Any,
            _ => return Err(UnknownSampleKind(s.to_owned())),
        })
    }
}

/// A person name as up to three name-part numbers ([`vocab::name_part`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Name([u16; 3]);

impl Name {
    const EMPTY: u16 = u16::MAX;

    pub(crate) fn parts(self) -> impl Iterator<Item = &'static str> {
        self.0
            .into_iter()
            .filter(|&p| p != Self::EMPTY)
            .map(name_part)
    }

    pub(crate) fn write(self, out: &mut String) {
        for (i, part) in self.parts().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(part);
        }
    }

    /// The index key: a hash of the name as written (parts are upper-case letters, so the
    /// written name is already normalised).
    fn key(self) -> u64 {
        let mut hash = Fnv::new();
        for (i, part) in self.parts().enumerate() {
            if i > 0 {
                hash.bytes(b" ");
            }
            hash.bytes(part.as_bytes());
        }
        hash.0
    }
}

/// Key of a normalised name text, equal to [`Name::key`] for the same name.
pub(crate) fn name_key(normalized: &str) -> u64 {
    let mut hash = Fnv::new();
    hash.bytes(normalized.as_bytes());
    hash.0
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// One person, about 72 bytes. Text fields are indices into `vocab` and `Geography`.
#[derive(Clone, Debug)]
pub(crate) struct Person {
    pub(crate) nik: u64,
    pub(crate) no_kk: u64,
    pub(crate) village: u32,
    pub(crate) birth: Date,
    pub(crate) ektp_created: Date,
    pub(crate) last_updated: Date,
    pub(crate) name: Name,
    pub(crate) mother: Name,
    pub(crate) father: Name,
    pub(crate) birth_regency: u16,
    pub(crate) street: u16,
    pub(crate) house_no: u16,
    pub(crate) rt: u8,
    pub(crate) rw: u8,
    pub(crate) dusun: u8,
    /// 0 `JL.`, 1 `GG.`, 2 `KP.` (rural).
    pub(crate) address_style: u8,
    pub(crate) female: bool,
    pub(crate) religion: u8,
    pub(crate) marital: u8,
    pub(crate) occupation: u8,
    pub(crate) education: u8,
    pub(crate) blood: u8,
    pub(crate) relation: u8,
    pub(crate) disability: u8,
    pub(crate) ektp: u8,
    pub(crate) status: RecordStatus,
}

/// The generated population with its lookup structures.
///
/// NIK lookups binary-search the NIK-sorted records; name searches binary-search an index
/// of name hashes. Neither needs a lock, so any number of request tasks can share it.
pub struct Population {
    pub(crate) seed: u64,
    pub(crate) geo: Geography,
    /// Sorted by NIK.
    pub(crate) people: Vec<Person>,
    /// `(name key, index into people)`, sorted.
    name_index: Vec<(u64, u32)>,
    deceased: Vec<u32>,
    duplicate: Vec<u32>,
    inactive: Vec<u32>,
}

impl Population {
    /// Generates `people` persons from `seed`. The same seed and size give the same
    /// records on every machine.
    pub fn generate(seed: u64, people: usize) -> Population {
        let geo = Geography::generate(&mut Rng::new(mix(seed, 0x0067_656f)));
        let mut builder = Builder {
            geo: &geo,
            rng: Rng::new(mix(seed, 0x7065_6f70_6c65)),
            people: Vec::with_capacity(people),
            nik_serials: HashMap::with_capacity_and_hasher(people, Default::default()),
            kk_serials: HashMap::with_capacity_and_hasher(people / 3, Default::default()),
        };
        while builder.people.len() < people {
            builder.family(people - builder.people.len());
        }
        let mut people = builder.people;
        people.sort_unstable_by_key(|p| p.nik);

        let mut name_index: Vec<(u64, u32)> = people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.key(), i as u32))
            .collect();
        name_index.sort_unstable();

        let with_status = |status| {
            people
                .iter()
                .enumerate()
                .filter(|(_, p)| p.status == status)
                .map(|(i, _)| i as u32)
                .collect::<Vec<_>>()
        };
        let deceased = with_status(RecordStatus::Deceased);
        let duplicate = with_status(RecordStatus::Duplicate);
        let inactive = with_status(RecordStatus::Inactive);
        Population {
            seed,
            geo,
            people,
            name_index,
            deceased,
            duplicate,
            inactive,
        }
    }

    /// The seed the population was generated from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.people.len()
    }

    /// True if the population has no records.
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Every NIK, ascending.
    pub fn niks(&self) -> impl Iterator<Item = u64> + '_ {
        self.people.iter().map(|p| p.nik)
    }

    /// Every record's No KK, in NIK order (family members repeat it).
    pub fn no_kks(&self) -> impl Iterator<Item = u64> + '_ {
        self.people.iter().map(|p| p.no_kk)
    }

    /// The status of the record with this NIK, if there is one.
    pub fn status(&self, nik: u64) -> Option<RecordStatus> {
        self.find(nik).map(|p| p.status)
    }

    pub(crate) fn find(&self, nik: u64) -> Option<&Person> {
        self.people
            .binary_search_by_key(&nik, |p| p.nik)
            .ok()
            .map(|i| &self.people[i])
    }

    /// People whose name, normalised, equals `normalized` (see `score::normalize`).
    pub(crate) fn by_name<'a>(
        &'a self,
        normalized: &'a str,
    ) -> impl Iterator<Item = &'a Person> + 'a {
        let key = name_key(normalized);
        let start = self.name_index.partition_point(|&(k, _)| k < key);
        self.name_index[start..]
            .iter()
            .take_while(move |&&(k, _)| k == key)
            .map(|&(_, i)| &self.people[i as usize])
    }

    /// Up to `n` NIKs of the given kind, as 16-digit strings. The same population, kind
    /// and `n` always give the same list (the first `m` of a longer list are the same too).
    pub fn sample(&self, kind: SampleKind, n: usize) -> Vec<String> {
        let mut rng = Rng::new(mix(self.seed, kind as u64 + 0x5a4d));
        let pick_from = |list: &[u32], rng: &mut Rng| -> Vec<String> {
            let mut chosen: Vec<u32> = Vec::with_capacity(n.min(list.len()));
            // A deterministic walk over the list with a stride coprime to its length.
            let len = list.len();
            if len == 0 {
                return Vec::new();
            }
            let start = rng.index(len);
            let stride = coprime_stride(len, rng);
            for k in 0..n.min(len) {
                chosen.push(list[(start + k * stride) % len]);
            }
            chosen
                .into_iter()
                .map(|i| format!("{:016}", self.people[i as usize].nik))
                .collect()
        };
        match kind {
            SampleKind::Deceased => pick_from(&self.deceased, &mut rng),
            SampleKind::Duplicate => pick_from(&self.duplicate, &mut rng),
            SampleKind::Inactive => pick_from(&self.inactive, &mut rng),
            SampleKind::Alive | SampleKind::Female | SampleKind::Any => {
                let len = self.people.len();
                if len == 0 {
                    return Vec::new();
                }
                let wanted = |p: &Person| match kind {
                    SampleKind::Alive => p.status == RecordStatus::Active,
                    SampleKind::Female => p.status == RecordStatus::Active && p.female,
                    _ => true,
                };
                let start = rng.index(len);
                let stride = coprime_stride(len, &mut rng);
                (0..len)
                    .map(|k| &self.people[(start + k * stride) % len])
                    .filter(|p| wanted(p))
                    .take(n)
                    .map(|p| format!("{:016}", p.nik))
                    .collect()
            }
        }
    }
}

// Debug shows the size, never the records: they are (synthetic) population data and
// Debug output ends up in logs.
impl std::fmt::Debug for Population {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Population")
            .field("seed", &self.seed)
            .field("people", &self.people.len())
            .finish_non_exhaustive()
    }
}

/// A stride in `1..len` sharing no factor with `len`, so `start + k * stride` visits
/// every index once.
fn coprime_stride(len: usize, rng: &mut Rng) -> usize {
    if len <= 2 {
        return 1;
    }
    let mut stride = (len / 2 + rng.index(len / 2)).max(1);
    while gcd(stride, len) != 1 {
        stride += 1;
        if stride >= len {
            stride = 1;
        }
    }
    stride
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A hasher for `u64` keys that are already well spread (NIK prefixes).
#[derive(Default)]
struct U64Hasher(u64);

impl Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix(n, 0);
    }
}

type Serials = HashMap<u64, u16, BuildHasherDefault<U64Hasher>>;

struct Builder<'g> {
    geo: &'g Geography,
    rng: Rng,
    people: Vec<Person>,
    /// Last serial used per NIK prefix `PPKKCCDDMMYY`.
    nik_serials: Serials,
    /// Last serial used per No KK prefix.
    kk_serials: Serials,
}

/// A family member before the shared household fields are filled in.
struct Member {
    relation: u8,
    female: bool,
    birth: Date,
    marital: u8,
    name: Name,
    father: Name,
    mother: Name,
}

impl Builder<'_> {
    /// Adds one household (at most `room` people): a head, maybe a spouse, children and
    /// another relative, sharing a No KK and an address.
    fn family(&mut self, room: usize) {
        let mut members: Vec<Member> = Vec::with_capacity(6);
        let rng = &mut self.rng;
        let kind = rng.below(100);
        let head_age = 20 + (rng.below(31) + rng.below(31)) as i32;
        if kind < 10 {
            // A person living alone: young and unmarried, or divorced or widowed.
            let female = rng.chance(450);
            let age = if rng.chance(500) {
                rng.range(18, 34) as i32
            } else {
                head_age
            };
            let marital = if age < 30 {
                vocab::BELUM_KAWIN
            } else {
                [vocab::BELUM_KAWIN, vocab::CERAI_HIDUP, vocab::CERAI_MATI][rng.index(3)]
            };
            members.push(Member::adult(rng, vocab::REL_HEAD, female, age, marital));
        } else {
            let head = Member::adult(rng, vocab::REL_HEAD, false, head_age, vocab::KAWIN);
            let wife_age = (head_age - rng.range(0, 9) as i32 + 2).max(18);
            let wife = Member::adult(rng, vocab::REL_WIFE, true, wife_age, vocab::KAWIN);
            let children = if kind < 28 {
                0
            } else {
                1 + rng.weighted(&[25, 35, 25, 10, 5]) as i32
            };
            for _ in 0..children {
                let age = wife_age - rng.range(19, 40) as i32;
                if age < 0 {
                    continue;
                }
                let female = rng.chance(490);
                let marital = if age >= 25 && rng.chance(250) {
                    vocab::KAWIN
                } else {
                    vocab::BELUM_KAWIN
                };
                members.push(Member {
                    relation: vocab::REL_CHILD,
                    female,
                    birth: birth_date(rng, age),
                    marital,
                    name: person_name(rng, female),
                    father: head.name,
                    mother: wife.name,
                });
            }
            members.insert(0, wife);
            members.insert(0, head);
            if rng.chance(60) {
                let relation = [
                    vocab::REL_PARENT,
                    vocab::REL_PARENT_IN_LAW,
                    vocab::REL_OTHER,
                    vocab::REL_HELPER,
                    vocab::REL_IN_LAW_CHILD,
                    vocab::REL_GRANDCHILD,
                ][rng.index(6)];
                let female = rng.chance(600);
                let (age, marital) = match relation {
                    vocab::REL_PARENT | vocab::REL_PARENT_IN_LAW => (
                        (head_age + rng.range(20, 30) as i32).min(99),
                        vocab::CERAI_MATI,
                    ),
                    vocab::REL_GRANDCHILD => (rng.range(0, 6) as i32, vocab::BELUM_KAWIN),
                    vocab::REL_IN_LAW_CHILD => (rng.range(20, 30) as i32, vocab::KAWIN),
                    _ => (rng.range(16, 60) as i32, vocab::BELUM_KAWIN),
                };
                members.push(Member::adult(rng, relation, female, age, marital));
            }
        }
        members.truncate(room);
        self.settle(members);
    }

    /// Gives a household its address, No KK and per-person details, and stores it.
    fn settle(&mut self, members: Vec<Member>) {
        let geo = self.geo;
        let rng = &mut self.rng;
        let village = geo.pick_village(rng);
        let (v, _, _, province) = geo.village(village);
        let district = v.district;
        let home_regency = geo.districts[district as usize].regency;
        let religion = rng.weighted(province.faith.weights()) as u8;
        let (street, house_no) = (
            rng.index(vocab::STREETS.len()) as u16,
            rng.range(1, 250) as u16,
        );
        let (rt, rw) = (rng.range(1, 15) as u8, rng.range(1, 12) as u8);
        let (dusun, address_style) = if v.urban {
            (0, if rng.chance(700) { 0 } else { 1 })
        } else {
            (
                1 + rng.index(vocab::DUSUN.len() - 1) as u8,
                if rng.chance(400) { 0 } else { 2 },
            )
        };

        // The card was (re)issued after the head came of age, and not before 2005.
        let head_birth = members.first().map_or(Date::TODAY, |m| m.birth);
        let kk_from =
            (head_birth.to_days() + 18 * 365).max(Date::new(2005, 1, 1).map_or(0, Date::to_days));
        let kk_date = random_day(rng, kk_from, Date::TODAY.to_days() - 30);
        let kk_prefix = geo.area_code(district) * 1_000_000 + kk_date.ddmmyy(0);
        let no_kk = next_serial(&mut self.kk_serials, kk_prefix);

        for m in members {
            let rng = &mut self.rng;
            // The NIK's area is where it was first issued, not always today's address.
            let nik_district = if rng.chance(150) {
                geo.pick_district(rng)
            } else {
                district
            };
            let prefix = geo.area_code(nik_district) * 1_000_000
                + m.birth.ddmmyy(if m.female { 40 } else { 0 });
            let nik = next_serial(&mut self.nik_serials, prefix);
            let rng = &mut self.rng;
            let age = age_on(m.birth, Date::TODAY);
            let birth_regency = if rng.chance(800) {
                home_regency
            } else {
                geo.pick_regency(rng)
            };
            let (ektp, ektp_created) = if age < 17 {
                (vocab::EKTP_TOO_YOUNG, Date::NONE)
            } else {
                match rng.weighted(&[85, 8, 7]) {
                    0 => {
                        let from = (m.birth.to_days() + 17 * 365)
                            .max(Date::new(2011, 10, 1).map_or(0, Date::to_days));
                        (
                            vocab::EKTP_PRINTED,
                            random_day(rng, from, Date::TODAY.to_days()),
                        )
                    }
                    1 => (vocab::EKTP_READY, Date::NONE),
                    _ => (vocab::EKTP_NOT_RECORDED, Date::NONE),
                }
            };
            let last_updated = random_day(rng, kk_date.to_days(), Date::TODAY.to_days());
            let status = match rng.below(1000) {
                0..5 => RecordStatus::Deceased,
                5..10 => RecordStatus::Duplicate,
                10..15 => RecordStatus::Inactive,
                _ => RecordStatus::Active,
            };
            self.people.push(Person {
                nik,
                no_kk,
                village,
                birth: m.birth,
                ektp_created,
                last_updated,
                name: m.name,
                mother: m.mother,
                father: m.father,
                birth_regency,
                street,
                house_no,
                rt,
                rw,
                dusun,
                address_style,
                female: m.female,
                religion,
                marital: m.marital,
                occupation: occupation(rng, age, m.female, m.relation),
                education: education(rng, age),
                blood: rng.weighted(vocab::BLOOD_WEIGHTS) as u8,
                relation: m.relation,
                disability: rng.weighted(vocab::DISABILITY_WEIGHTS) as u8,
                ektp,
                status,
            });
        }
    }
}

impl Member {
    fn adult(rng: &mut Rng, relation: u8, female: bool, age: i32, marital: u8) -> Member {
        Member {
            relation,
            female,
            birth: birth_date(rng, age),
            marital,
            name: person_name(rng, female),
            father: person_name(rng, false),
            mother: person_name(rng, true),
        }
    }
}

/// Takes the next serial (from 0001) under a 12-digit prefix and returns the full number.
fn next_serial(serials: &mut Serials, prefix: u64) -> u64 {
    let serial = serials.entry(prefix).or_insert(0);
    // 9,999 people sharing district, birth date and sex would need a population far
    // beyond what the simulator generates; wrap rather than overflow the field.
    *serial = *serial % 9999 + 1;
    prefix * 10_000 + u64::from(*serial)
}

fn birth_date(rng: &mut Rng, age: i32) -> Date {
    let today = Date::TODAY.to_days();
    let latest = today - age * 365 - age / 4;
    random_day(rng, latest - 364, latest)
}

fn random_day(rng: &mut Rng, from: i32, to: i32) -> Date {
    let span = (to - from).max(0) as u32;
    Date::from_days(from + rng.below(span + 1) as i32)
}

pub(crate) fn age_on(birth: Date, day: Date) -> i32 {
    let mut age = i32::from(day.year) - i32::from(birth.year);
    if (day.month, day.day) < (birth.month, birth.day) {
        age -= 1;
    }
    age
}

fn person_name(rng: &mut Rng, female: bool) -> Name {
    let (given, given_at, family, family_at) = if female {
        (
            vocab::FEMALE_GIVEN,
            vocab::FEMALE_GIVEN_AT,
            vocab::FEMALE_FAMILY,
            vocab::FEMALE_FAMILY_AT,
        )
    } else {
        (
            vocab::MALE_GIVEN,
            vocab::MALE_GIVEN_AT,
            vocab::MALE_FAMILY,
            vocab::MALE_FAMILY_AT,
        )
    };
    let first = given_at + rng.index(given.len()) as u16;
    let last = family_at + rng.index(family.len()) as u16;
    match rng.below(100) {
        0..12 => Name([first, Name::EMPTY, Name::EMPTY]),
        12..70 => Name([first, last, Name::EMPTY]),
        _ => {
            let mut middle = given_at + rng.index(given.len()) as u16;
            if middle == first {
                middle = given_at + (middle - given_at + 1) % given.len() as u16;
            }
            Name([first, middle, last])
        }
    }
}

fn occupation(rng: &mut Rng, age: i32, female: bool, relation: u8) -> u8 {
    if age < 5 {
        return vocab::OCC_NONE;
    }
    if age < 18 {
        return if rng.chance(900) {
            vocab::OCC_STUDENT
        } else {
            vocab::OCC_NONE
        };
    }
    if age < 23 && rng.chance(450) {
        return vocab::OCC_STUDENT;
    }
    if age >= 60 {
        match rng.below(10) {
            0..3 => return vocab::OCC_RETIRED,
            3..5 => return vocab::OCC_NONE,
            _ => {}
        }
    }
    if female && (relation == vocab::REL_WIFE || rng.chance(150)) && rng.chance(450) {
        return vocab::OCC_HOUSEHOLD;
    }
    rng.weighted(&vocab::OCCUPATION_WEIGHTS) as u8
}

fn education(rng: &mut Rng, age: i32) -> u8 {
    match age {
        ..7 => 0,
        7..13 => 1,
        13..16 => 2,
        16..19 => 3,
        _ => rng.weighted(vocab::ADULT_EDUCATION_WEIGHTS) as u8,
    }
}

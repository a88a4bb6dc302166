//! The administrative geography people live in: provinces and regencies from the
//! vocabulary, districts (kecamatan) and villages (kelurahan/desa) generated per seed.

use crate::rng::Rng;
use crate::vocab::{PLACE_HEADS, PLACE_TAILS, PROVINCES, Province};

#[derive(Debug)]
pub(crate) struct Regency {
    pub(crate) province: u8,
    pub(crate) code: u8,
    /// `KAB_NAME` as the DWH writes it (`BOGOR`, `KOTA BANDUNG`).
    pub(crate) name: &'static str,
    /// The place name used in `TMPT_LHR` (without `KOTA`).
    pub(crate) place: &'static str,
    pub(crate) districts: (u32, u32),
}

#[derive(Debug)]
pub(crate) struct District {
    pub(crate) regency: u16,
    pub(crate) code: u8,
    pub(crate) name: String,
    pub(crate) villages: (u32, u32),
}

#[derive(Debug)]
pub(crate) struct Village {
    pub(crate) district: u32,
    /// `NO_KEL`: 1001.. for kelurahan (urban), 2001.. for desa.
    pub(crate) code: u16,
    pub(crate) name: String,
    pub(crate) postal: u32,
    pub(crate) urban: bool,
}

#[derive(Debug)]
pub(crate) struct Geography {
    pub(crate) regencies: Vec<Regency>,
    pub(crate) districts: Vec<District>,
    pub(crate) villages: Vec<Village>,
    /// Cumulative population weight per province, for weighted picks.
    province_cumulative: Vec<u32>,
    /// Regency index range per province.
    province_regencies: Vec<(u16, u16)>,
}

impl Geography {
    pub(crate) fn generate(rng: &mut Rng) -> Geography {
        let mut geo = Geography {
            regencies: Vec::new(),
            districts: Vec::new(),
            villages: Vec::new(),
            province_cumulative: Vec::with_capacity(PROVINCES.len()),
            province_regencies: Vec::with_capacity(PROVINCES.len()),
        };
        let mut total = 0;
        for (p, province) in PROVINCES.iter().enumerate() {
            total += u32::from(province.weight);
            geo.province_cumulative.push(total);
            let first = geo.regencies.len() as u16;
            let (mut next_kab, mut next_kota) = (1u8, 71u8);
            for &name in province.regencies {
                let (code, place, city) = match name.strip_prefix("KOTA ") {
                    Some(place) => (next_kota, place, true),
                    None => (next_kab, name, false),
                };
                if city {
                    next_kota += 1;
                } else {
                    next_kab += 1;
                }
                let regency = geo.regencies.len() as u16;
                let first_district = geo.districts.len() as u32;
                let districts = rng.range(6, 14);
                for d in 0..districts {
                    geo.add_district(rng, province, regency, d as u8 + 1, city);
                }
                geo.regencies.push(Regency {
                    province: p as u8,
                    code,
                    name,
                    place,
                    districts: (first_district, geo.districts.len() as u32),
                });
            }
            geo.province_regencies
                .push((first, geo.regencies.len() as u16));
        }
        geo
    }

    fn add_district(
        &mut self,
        rng: &mut Rng,
        province: &Province,
        regency: u16,
        code: u8,
        city: bool,
    ) {
        let district = self.districts.len() as u32;
        let first_village = self.villages.len() as u32;
        // In a regency the first district is the capital town: its villages are kelurahan.
        let urban = city || code == 1;
        let count = rng.range(4, 10);
        for v in 0..count {
            let number = if urban {
                1001 + v as u16
            } else {
                2001 + v as u16
            };
            self.villages.push(Village {
                district,
                code: number,
                name: place_name(rng),
                postal: u32::from(province.postal) * 1000 + rng.below(1000),
                urban,
            });
        }
        self.districts.push(District {
            regency,
            code,
            name: place_name(rng),
            villages: (first_village, self.villages.len() as u32),
        });
    }

    /// A village drawn by province population, then uniformly below it.
    pub(crate) fn pick_village(&self, rng: &mut Rng) -> u32 {
        let district = self.pick_district(rng);
        let (lo, hi) = self.districts[district as usize].villages;
        lo + rng.below(hi - lo)
    }

    /// A district drawn by province population, then uniformly below it.
    pub(crate) fn pick_district(&self, rng: &mut Rng) -> u32 {
        let total = self.province_cumulative.last().copied().unwrap_or(1);
        let roll = rng.below(total);
        let p = self.province_cumulative.partition_point(|&c| c <= roll);
        let (lo, hi) = self.province_regencies[p];
        let regency = &self.regencies[usize::from(lo) + rng.index(usize::from(hi - lo))];
        let (dlo, dhi) = regency.districts;
        dlo + rng.below(dhi - dlo)
    }

    /// A regency drawn by province population.
    pub(crate) fn pick_regency(&self, rng: &mut Rng) -> u16 {
        let district = self.pick_district(rng);
        self.districts[district as usize].regency
    }

    /// The six-digit area code `PPKKCC` of a district.
    pub(crate) fn area_code(&self, district: u32) -> u64 {
        let district = &self.districts[district as usize];
        let regency = &self.regencies[usize::from(district.regency)];
        let province = &PROVINCES[usize::from(regency.province)];
        u64::from(province.code) * 10_000 + u64::from(regency.code) * 100 + u64::from(district.code)
    }

    pub(crate) fn village(
        &self,
        village: u32,
    ) -> (&Village, &District, &Regency, &'static Province) {
        let v = &self.villages[village as usize];
        let d = &self.districts[v.district as usize];
        let r = &self.regencies[usize::from(d.regency)];
        (v, d, r, &PROVINCES[usize::from(r.province)])
    }
}

fn place_name(rng: &mut Rng) -> String {
    let (head, joined) = PLACE_HEADS[rng.index(PLACE_HEADS.len())];
    let tail = PLACE_TAILS[rng.index(PLACE_TAILS.len())];
    let mut name = String::with_capacity(head.len() + tail.len() + 1);
    name.push_str(head);
    if !joined {
        name.push(' ');
    }
    name.push_str(tail);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fit_their_digits() {
        let geo = Geography::generate(&mut Rng::new(3));
        assert!(geo.districts.len() > 1000);
        for d in 0..geo.districts.len() as u32 {
            let area = geo.area_code(d);
            assert!((110_101..=969_999).contains(&area), "{area}");
            assert_ne!(area % 100, 0);
        }
        assert!(
            geo.villages
                .iter()
                .all(|v| (10_000..100_000).contains(&v.postal))
        );
    }
}

//! The record fields as the DWH names them, how each is rendered from a compact
//! [`Person`], and how a claimed value is judged against it.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::date::Date;
use crate::json;
use crate::population::{Person, Population};
use crate::rng::{Rng, mix};
use crate::score::{normalize, similarity};
use crate::vocab;

/// Every field of a full record, in the order the simulator writes them.
pub const RECORD_FIELDS: [&str; 35] = [
    "NIK",
    "NO_KK",
    "NAMA_LGKP",
    "JENIS_KLMIN",
    "TMPT_LHR",
    "TGL_LHR",
    "AGAMA",
    "STATUS_KAWIN",
    "JENIS_PKRJN",
    "PDDK_AKH",
    "GOL_DARAH",
    "NAMA_LGKP_IBU",
    "NAMA_LGKP_AYAH",
    "STAT_HBKEL",
    "ALAMAT",
    "NO_RT",
    "NO_RW",
    "DUSUN",
    "KODE_POS",
    "NO_PROP",
    "PROP_NAME",
    "NO_KAB",
    "KAB_NAME",
    "NO_KEC",
    "KEC_NAME",
    "NO_KEL",
    "KEL_NAME",
    "EKTP_STATUS",
    "EKTP_CREATED",
    "LAST_UPDATED",
    "FOTO",
    "PNYDNG_CACAT",
    "SIDIK_JARI",
    "IRIS_MATA",
    "TANDA_TANGAN",
];

/// Fields written as JSON numbers (NIK and NO_KK may exceed 2^53).
pub const NUMERIC_FIELDS: [&str; 8] = [
    "NIK", "NO_KK", "NO_RT", "NO_RW", "NO_PROP", "NO_KAB", "NO_KEC", "NO_KEL",
];

/// Protected data (UU 24/2013 art. 84: disability, fingerprints, iris, signature) that
/// the gateway must remove unless the Minister approved it; present in every record so
/// that filtering can be proven.
pub const PROTECTED_FIELDS: [&str; 4] = ["PNYDNG_CACAT", "SIDIK_JARI", "IRIS_MATA", "TANDA_TANGAN"];

/// Fields `CALL_VERIFY_BY_ELEMEN` scores by similarity ("Sesuai (NN)").
pub const FUZZY_FIELDS: [&str; 10] = [
    "NAMA_LGKP",
    "TMPT_LHR",
    "ALAMAT",
    "NAMA_LGKP_IBU",
    "NAMA_LGKP_AYAH",
    "KEL_NAME",
    "KEC_NAME",
    "KAB_NAME",
    "PROP_NAME",
    "DUSUN",
];

/// A field, numbered as in [`RECORD_FIELDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Nik,
    NoKk,
    NamaLgkp,
    JenisKlmin,
    TmptLhr,
    TglLhr,
    Agama,
    StatusKawin,
    JenisPkrjn,
    PddkAkh,
    GolDarah,
    NamaLgkpIbu,
    NamaLgkpAyah,
    StatHbkel,
    Alamat,
    NoRt,
    NoRw,
    Dusun,
    KodePos,
    NoProp,
    PropName,
    NoKab,
    KabName,
    NoKec,
    KecName,
    NoKel,
    KelName,
    EktpStatus,
    EktpCreated,
    LastUpdated,
    Foto,
    PnydngCacat,
    SidikJari,
    IrisMata,
    TandaTangan,
}

/// How a claim about a field is compared with the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compare {
    /// Same integer (`"01"` equals 1).
    Number,
    /// Same text after normalisation.
    Exact,
    /// `LAKI-LAKI`/`L`/`PRIA` or `PEREMPUAN`/`P`/`WANITA`.
    Sex,
    /// Same date, claimed as `dd-MM-yyyy` or `yyyy-MM-dd`.
    Date,
    /// Scored 0–100 against the threshold.
    Fuzzy,
    /// Byte-exact (base64 biometrics).
    Raw,
}

impl Field {
    pub(crate) const ALL: [Field; 35] = [
        Field::Nik,
        Field::NoKk,
        Field::NamaLgkp,
        Field::JenisKlmin,
        Field::TmptLhr,
        Field::TglLhr,
        Field::Agama,
        Field::StatusKawin,
        Field::JenisPkrjn,
        Field::PddkAkh,
        Field::GolDarah,
        Field::NamaLgkpIbu,
        Field::NamaLgkpAyah,
        Field::StatHbkel,
        Field::Alamat,
        Field::NoRt,
        Field::NoRw,
        Field::Dusun,
        Field::KodePos,
        Field::NoProp,
        Field::PropName,
        Field::NoKab,
        Field::KabName,
        Field::NoKec,
        Field::KecName,
        Field::NoKel,
        Field::KelName,
        Field::EktpStatus,
        Field::EktpCreated,
        Field::LastUpdated,
        Field::Foto,
        Field::PnydngCacat,
        Field::SidikJari,
        Field::IrisMata,
        Field::TandaTangan,
    ];

    pub(crate) fn name(self) -> &'static str {
        RECORD_FIELDS[self as usize]
    }

    /// The field a request key names, matched case-insensitively.
    pub(crate) fn from_key(key: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(key))
    }

    pub(crate) fn compare(self) -> Compare {
        use Field::*;
        match self {
            Nik | NoKk | NoRt | NoRw | NoProp | NoKab | NoKec | NoKel => Compare::Number,
            NamaLgkp | TmptLhr | Alamat | NamaLgkpIbu | NamaLgkpAyah | KelName | KecName
            | KabName | PropName | Dusun => Compare::Fuzzy,
            JenisKlmin => Compare::Sex,
            TglLhr | EktpCreated => Compare::Date,
            Foto | SidikJari | IrisMata | TandaTangan => Compare::Raw,
            Agama | StatusKawin | JenisPkrjn | PddkAkh | GolDarah | StatHbkel | KodePos
            | EktpStatus | LastUpdated | PnydngCacat => Compare::Exact,
        }
    }
}

/// Reusable text buffers for rendering and comparing, one set per request.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    actual: String,
    claim: String,
    normalized: String,
}

/// The outcome of comparing one claimed element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Match,
    Mismatch,
    Scored { score: u8, pass: bool },
}

impl Verdict {
    /// The DWH's wording: `Sesuai`, `Tidak Sesuai`, `Sesuai (NN)`, `Tidak Sesuai (NN)`.
    pub(crate) fn write(self, out: &mut String) {
        out.clear();
        match self {
            Verdict::Match => out.push_str("Sesuai"),
            Verdict::Mismatch => out.push_str("Tidak Sesuai"),
            Verdict::Scored { score, pass } => {
                let word = if pass { "Sesuai" } else { "Tidak Sesuai" };
                let _ = write!(out, "{word} ({score})");
            }
        }
    }
}

impl Population {
    /// The value of a numeric field.
    pub(crate) fn number(&self, p: &Person, field: Field) -> Option<u64> {
        let (village, district, regency, province) = self.geo.village(p.village);
        Some(match field {
            Field::Nik => p.nik,
            Field::NoKk => p.no_kk,
            Field::NoRt => u64::from(p.rt),
            Field::NoRw => u64::from(p.rw),
            Field::NoProp => u64::from(province.code),
            Field::NoKab => u64::from(regency.code),
            Field::NoKec => u64::from(district.code),
            Field::NoKel => u64::from(village.code),
            _ => return None,
        })
    }

    /// Writes the text of a field (numbers in decimal) after clearing `out`.
    pub(crate) fn write_text(&self, p: &Person, field: Field, out: &mut String) {
        out.clear();
        if let Some(n) = self.number(p, field) {
            let _ = write!(out, "{n}");
            return;
        }
        let (village, district, regency, province) = self.geo.village(p.village);
        let text: &str = match field {
            Field::NamaLgkp => return p.name.write(out),
            Field::NamaLgkpIbu => return p.mother.write(out),
            Field::NamaLgkpAyah => return p.father.write(out),
            Field::TglLhr => return p.birth.write_iso(out),
            Field::EktpCreated if p.ektp_created.is_none() => "-",
            Field::EktpCreated => return p.ektp_created.write_iso(out),
            Field::LastUpdated => {
                p.last_updated.write_iso(out);
                let seconds = mix(p.nik, 0x7469_6d65) % 86_400;
                let _ = write!(
                    out,
                    " {:02}:{:02}:{:02}",
                    seconds / 3600,
                    seconds / 60 % 60,
                    seconds % 60
                );
                return;
            }
            Field::Alamat => {
                let street = vocab::STREETS[usize::from(p.street)];
                let _ = match p.address_style {
                    0 => write!(out, "JL. {street} NO. {}", p.house_no),
                    1 => write!(out, "GG. {street} NO. {}", p.house_no),
                    _ => write!(out, "KP. {}", vocab::DUSUN[usize::from(p.dusun)]),
                };
                return;
            }
            Field::KodePos => {
                let _ = write!(out, "{:05}", village.postal);
                return;
            }
            Field::Foto => {
                return self.biometric(p, 0x666f_746f, &[0xff, 0xd8, 0xff, 0xe0], 48, out);
            }
            Field::SidikJari => return self.biometric(p, 0x6669_6e67, b"FMR\0", 96, out),
            Field::IrisMata => return self.biometric(p, 0x6972_6973, b"IIR\0", 64, out),
            Field::TandaTangan => return self.biometric(p, 0x7369_676e, b"SDI\0", 48, out),
            Field::JenisKlmin => vocab::SEXES[usize::from(p.female)],
            Field::TmptLhr => self.geo.regencies[usize::from(p.birth_regency)].place,
            Field::Agama => vocab::RELIGIONS[usize::from(p.religion)],
            Field::StatusKawin => vocab::MARITAL[usize::from(p.marital)],
            Field::JenisPkrjn => vocab::OCCUPATIONS[usize::from(p.occupation)].0,
            Field::PddkAkh => vocab::EDUCATION[usize::from(p.education)],
            Field::GolDarah => vocab::BLOOD[usize::from(p.blood)],
            Field::StatHbkel => vocab::FAMILY_RELATION[usize::from(p.relation)],
            Field::Dusun => vocab::DUSUN[usize::from(p.dusun)],
            Field::PropName => province.name,
            Field::KabName => regency.name,
            Field::KecName => &district.name,
            Field::KelName => &village.name,
            Field::EktpStatus => vocab::EKTP_STATUS[usize::from(p.ektp)],
            Field::PnydngCacat => vocab::DISABILITY[usize::from(p.disability)],
            Field::Nik
            | Field::NoKk
            | Field::NoRt
            | Field::NoRw
            | Field::NoProp
            | Field::NoKab
            | Field::NoKec
            | Field::NoKel => "",
        };
        out.push_str(text);
    }

    /// A synthetic biometric: `len` deterministic bytes after a format magic, base64.
    fn biometric(&self, p: &Person, salt: u64, magic: &[u8], len: usize, out: &mut String) {
        let mut rng = Rng::new(mix(mix(self.seed, p.nik), salt));
        let mut bytes = [0u8; 96];
        let len = len.min(bytes.len());
        for chunk in bytes[..len].chunks_mut(8) {
            let word = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        bytes[..magic.len()].copy_from_slice(magic);
        STANDARD.encode_string(&bytes[..len], out);
    }

    /// Writes the full record as one JSON object.
    pub(crate) fn write_record(&self, p: &Person, out: &mut Vec<u8>, scratch: &mut Scratch) {
        out.push(b'{');
        for (i, field) in Field::ALL.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::push_key(out, field.name());
            match self.number(p, field) {
                Some(n) => json::push_u64(out, n),
                None => {
                    self.write_text(p, field, &mut scratch.actual);
                    json::push_str(out, &scratch.actual);
                }
            }
        }
        out.push(b'}');
    }

    /// The full record of `nik` as JSON text, whatever its status.
    pub fn record_json(&self, nik: u64) -> Option<String> {
        let p = self.find(nik)?;
        let mut out = Vec::with_capacity(1536);
        self.write_record(p, &mut out, &mut Scratch::default());
        String::from_utf8(out).ok()
    }

    /// Judges a claimed value for `field` against the record.
    pub(crate) fn judge(
        &self,
        p: &Person,
        field: Field,
        claim: &str,
        threshold: u8,
        scratch: &mut Scratch,
    ) -> Verdict {
        let matched = match field.compare() {
            Compare::Number => claim.trim().parse::<u64>().ok() == self.number(p, field),
            Compare::Date => {
                let actual = if field == Field::TglLhr {
                    p.birth
                } else {
                    p.ektp_created
                };
                Date::parse_claim(claim).is_some_and(|d| d == actual)
            }
            Compare::Sex => {
                normalize(claim, &mut scratch.claim);
                let female = match scratch.claim.as_str() {
                    "P" | "PEREMPUAN" | "WANITA" | "2" => Some(true),
                    "L" | "LAKI LAKI" | "LAKI" | "PRIA" | "1" => Some(false),
                    _ => None,
                };
                female == Some(p.female)
            }
            Compare::Raw => {
                self.write_text(p, field, &mut scratch.actual);
                claim.trim() == scratch.actual
            }
            Compare::Exact => self.same_text(p, field, claim, scratch),
            Compare::Fuzzy => {
                self.write_text(p, field, &mut scratch.actual);
                normalize(&scratch.actual, &mut scratch.normalized);
                normalize(claim, &mut scratch.claim);
                let score = similarity(&scratch.claim, &scratch.normalized);
                return Verdict::Scored {
                    score,
                    pass: score >= threshold,
                };
            }
        };
        if matched {
            Verdict::Match
        } else {
            Verdict::Mismatch
        }
    }

    /// True if the claim equals the record's value (fuzzy fields: equal once
    /// normalised). Used to filter searches.
    pub(crate) fn claim_equals(
        &self,
        p: &Person,
        field: Field,
        claim: &str,
        scratch: &mut Scratch,
    ) -> bool {
        match field.compare() {
            Compare::Fuzzy => self.same_text(p, field, claim, scratch),
            _ => self.judge(p, field, claim, 100, scratch) == Verdict::Match,
        }
    }

    fn same_text(&self, p: &Person, field: Field, claim: &str, scratch: &mut Scratch) -> bool {
        self.write_text(p, field, &mut scratch.actual);
        normalize(&scratch.actual, &mut scratch.normalized);
        normalize(claim, &mut scratch.claim);
        scratch.claim == scratch.normalized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_table_is_consistent() {
        for (i, field) in Field::ALL.into_iter().enumerate() {
            assert_eq!(field as usize, i);
            assert_eq!(Field::from_key(&field.name().to_lowercase()), Some(field));
            let numeric = NUMERIC_FIELDS.contains(&field.name());
            assert_eq!(
                field.compare() == Compare::Number,
                numeric,
                "{}",
                field.name()
            );
            let fuzzy = FUZZY_FIELDS.contains(&field.name());
            assert_eq!(field.compare() == Compare::Fuzzy, fuzzy, "{}", field.name());
        }
        assert_eq!(Field::from_key("PASSWORD"), None);
    }

    #[test]
    fn biometrics_are_standard_base64_of_their_format() {
        let population = Population::generate(5, 3);
        let cases: [(Field, &[u8], usize); 4] = [
            (Field::Foto, &[0xff, 0xd8, 0xff, 0xe0], 48),
            (Field::SidikJari, b"FMR\0", 96),
            (Field::IrisMata, b"IIR\0", 64),
            (Field::TandaTangan, b"SDI\0", 48),
        ];
        for p in &population.people {
            for (field, magic, len) in cases {
                let mut text = String::new();
                population.write_text(p, field, &mut text);
                let bytes = STANDARD.decode(&text).expect("standard base64");
                assert_eq!(bytes.len(), len, "{}", field.name());
                assert!(bytes.starts_with(magic), "{}", field.name());
                assert_eq!(text.len(), len.div_ceil(3) * 4, "padded: {text}");
            }
        }
    }
}

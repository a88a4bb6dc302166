//! Vocabularies of the DWH answers and the word lists the synthetic population is made
//! from. Province and regency names are public administrative names; every person name
//! is a random combination of the common given names below, never a real record.

/// Which religion mix a province's families are drawn from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Faith {
    MuslimMajority,
    Hindu,
    Protestant,
    Catholic,
    Mixed,
}

impl Faith {
    /// Relative weights over [`RELIGIONS`].
    pub(crate) fn weights(self) -> &'static [u16] {
        match self {
            Faith::MuslimMajority => &[940, 35, 15, 3, 5, 1, 1],
            Faith::Hindu => &[100, 20, 10, 860, 8, 1, 1],
            Faith::Protestant => &[250, 640, 100, 3, 3, 1, 3],
            Faith::Catholic => &[90, 330, 570, 3, 3, 1, 3],
            Faith::Mixed => &[600, 250, 100, 5, 40, 3, 2],
        }
    }
}

/// A province with the regencies the simulator places people in. Regencies are
/// numbered 01.. in order; names starting with `KOTA ` are cities, numbered 71...
#[derive(Debug)]
pub(crate) struct Province {
    pub(crate) code: u8,
    pub(crate) name: &'static str,
    /// Relative population (hundred thousands, roughly).
    pub(crate) weight: u16,
    /// First two digits of the province's postal codes.
    pub(crate) postal: u8,
    pub(crate) faith: Faith,
    pub(crate) regencies: &'static [&'static str],
}

const fn prov(
    code: u8,
    name: &'static str,
    weight: u16,
    postal: u8,
    faith: Faith,
    regencies: &'static [&'static str],
) -> Province {
    Province {
        code,
        name,
        weight,
        postal,
        faith,
        regencies,
    }
}

use Faith::{Catholic, Hindu, Mixed, MuslimMajority as Muslim, Protestant};

pub(crate) const PROVINCES: &[Province] = &[
    prov(
        11,
        "ACEH",
        54,
        23,
        Muslim,
        &[
            "ACEH BESAR",
            "PIDIE",
            "ACEH UTARA",
            "BIREUEN",
            "KOTA BANDA ACEH",
            "KOTA LHOKSEUMAWE",
        ],
    ),
    prov(
        12,
        "SUMATERA UTARA",
        150,
        20,
        Mixed,
        &[
            "DELI SERDANG",
            "LANGKAT",
            "SIMALUNGUN",
            "ASAHAN",
            "KOTA MEDAN",
            "KOTA PEMATANGSIANTAR",
        ],
    ),
    prov(
        13,
        "SUMATERA BARAT",
        56,
        25,
        Muslim,
        &[
            "AGAM",
            "PADANG PARIAMAN",
            "TANAH DATAR",
            "PESISIR SELATAN",
            "KOTA PADANG",
            "KOTA BUKITTINGGI",
        ],
    ),
    prov(
        14,
        "RIAU",
        66,
        28,
        Muslim,
        &[
            "KAMPAR",
            "BENGKALIS",
            "INDRAGIRI HILIR",
            "ROKAN HILIR",
            "KOTA PEKANBARU",
            "KOTA DUMAI",
        ],
    ),
    prov(
        15,
        "JAMBI",
        36,
        36,
        Muslim,
        &["MUARO JAMBI", "KERINCI", "BUNGO", "MERANGIN", "KOTA JAMBI"],
    ),
    prov(
        16,
        "SUMATERA SELATAN",
        87,
        30,
        Muslim,
        &[
            "OGAN KOMERING ILIR",
            "MUARA ENIM",
            "BANYUASIN",
            "LAHAT",
            "KOTA PALEMBANG",
            "KOTA PRABUMULIH",
        ],
    ),
    prov(
        17,
        "BENGKULU",
        20,
        38,
        Muslim,
        &["BENGKULU UTARA", "REJANG LEBONG", "SELUMA", "KOTA BENGKULU"],
    ),
    prov(
        18,
        "LAMPUNG",
        91,
        34,
        Muslim,
        &[
            "LAMPUNG SELATAN",
            "LAMPUNG TENGAH",
            "LAMPUNG TIMUR",
            "TANGGAMUS",
            "KOTA BANDAR LAMPUNG",
            "KOTA METRO",
        ],
    ),
    prov(
        19,
        "KEPULAUAN BANGKA BELITUNG",
        15,
        33,
        Muslim,
        &["BANGKA", "BELITUNG", "BANGKA BARAT", "KOTA PANGKAL PINANG"],
    ),
    prov(
        21,
        "KEPULAUAN RIAU",
        21,
        29,
        Muslim,
        &[
            "BINTAN",
            "KARIMUN",
            "LINGGA",
            "KOTA BATAM",
            "KOTA TANJUNG PINANG",
        ],
    ),
    prov(
        31,
        "DKI JAKARTA",
        110,
        12,
        Muslim,
        &[
            "KEPULAUAN SERIBU",
            "KOTA JAKARTA SELATAN",
            "KOTA JAKARTA TIMUR",
            "KOTA JAKARTA PUSAT",
            "KOTA JAKARTA BARAT",
            "KOTA JAKARTA UTARA",
        ],
    ),
    prov(
        32,
        "JAWA BARAT",
        500,
        40,
        Muslim,
        &[
            "BOGOR",
            "SUKABUMI",
            "CIANJUR",
            "BANDUNG",
            "GARUT",
            "TASIKMALAYA",
            "CIREBON",
            "KARAWANG",
            "BEKASI",
            "KOTA BANDUNG",
            "KOTA BEKASI",
            "KOTA DEPOK",
            "KOTA BOGOR",
        ],
    ),
    prov(
        33,
        "JAWA TENGAH",
        370,
        50,
        Muslim,
        &[
            "CILACAP",
            "BANYUMAS",
            "PURBALINGGA",
            "KEBUMEN",
            "KLATEN",
            "BOYOLALI",
            "KARANGANYAR",
            "DEMAK",
            "KOTA SEMARANG",
            "KOTA SURAKARTA",
            "KOTA MAGELANG",
        ],
    ),
    prov(
        34,
        "DAERAH ISTIMEWA YOGYAKARTA",
        37,
        55,
        Muslim,
        &[
            "KULON PROGO",
            "BANTUL",
            "GUNUNGKIDUL",
            "SLEMAN",
            "KOTA YOGYAKARTA",
        ],
    ),
    prov(
        35,
        "JAWA TIMUR",
        410,
        60,
        Muslim,
        &[
            "PACITAN",
            "PONOROGO",
            "TRENGGALEK",
            "TULUNGAGUNG",
            "BLITAR",
            "KEDIRI",
            "MALANG",
            "JEMBER",
            "SIDOARJO",
            "KOTA SURABAYA",
            "KOTA MALANG",
            "KOTA KEDIRI",
        ],
    ),
    prov(
        36,
        "BANTEN",
        120,
        42,
        Muslim,
        &[
            "PANDEGLANG",
            "LEBAK",
            "TANGERANG",
            "SERANG",
            "KOTA TANGERANG",
            "KOTA CILEGON",
            "KOTA SERANG",
            "KOTA TANGERANG SELATAN",
        ],
    ),
    prov(
        51,
        "BALI",
        43,
        80,
        Hindu,
        &[
            "JEMBRANA",
            "TABANAN",
            "BADUNG",
            "GIANYAR",
            "BULELENG",
            "KOTA DENPASAR",
        ],
    ),
    prov(
        52,
        "NUSA TENGGARA BARAT",
        55,
        83,
        Muslim,
        &[
            "LOMBOK BARAT",
            "LOMBOK TENGAH",
            "LOMBOK TIMUR",
            "SUMBAWA",
            "BIMA",
            "KOTA MATARAM",
            "KOTA BIMA",
        ],
    ),
    prov(
        53,
        "NUSA TENGGARA TIMUR",
        55,
        85,
        Catholic,
        &[
            "KUPANG",
            "TIMOR TENGAH SELATAN",
            "BELU",
            "SIKKA",
            "MANGGARAI",
            "SUMBA TIMUR",
            "KOTA KUPANG",
        ],
    ),
    prov(
        61,
        "KALIMANTAN BARAT",
        55,
        78,
        Mixed,
        &[
            "SAMBAS",
            "MEMPAWAH",
            "SANGGAU",
            "KETAPANG",
            "KUBU RAYA",
            "KOTA PONTIANAK",
            "KOTA SINGKAWANG",
        ],
    ),
    prov(
        62,
        "KALIMANTAN TENGAH",
        27,
        73,
        Mixed,
        &[
            "KOTAWARINGIN BARAT",
            "KOTAWARINGIN TIMUR",
            "KAPUAS",
            "BARITO SELATAN",
            "KOTA PALANGKA RAYA",
        ],
    ),
    prov(
        63,
        "KALIMANTAN SELATAN",
        41,
        70,
        Muslim,
        &[
            "TANAH LAUT",
            "KOTABARU",
            "BANJAR",
            "BARITO KUALA",
            "TAPIN",
            "KOTA BANJARMASIN",
            "KOTA BANJARBARU",
        ],
    ),
    prov(
        64,
        "KALIMANTAN TIMUR",
        39,
        75,
        Muslim,
        &[
            "PASER",
            "KUTAI BARAT",
            "KUTAI KARTANEGARA",
            "BERAU",
            "KOTA BALIKPAPAN",
            "KOTA SAMARINDA",
            "KOTA BONTANG",
        ],
    ),
    prov(
        65,
        "KALIMANTAN UTARA",
        7,
        77,
        Mixed,
        &["MALINAU", "BULUNGAN", "NUNUKAN", "KOTA TARAKAN"],
    ),
    prov(
        71,
        "SULAWESI UTARA",
        26,
        95,
        Protestant,
        &[
            "BOLAANG MONGONDOW",
            "MINAHASA",
            "KEPULAUAN SANGIHE",
            "MINAHASA UTARA",
            "KOTA MANADO",
            "KOTA BITUNG",
        ],
    ),
    prov(
        72,
        "SULAWESI TENGAH",
        30,
        94,
        Mixed,
        &[
            "BANGGAI",
            "POSO",
            "DONGGALA",
            "TOLI-TOLI",
            "PARIGI MOUTONG",
            "KOTA PALU",
        ],
    ),
    prov(
        73,
        "SULAWESI SELATAN",
        92,
        90,
        Muslim,
        &[
            "GOWA",
            "MAROS",
            "BONE",
            "BULUKUMBA",
            "PINRANG",
            "KOTA MAKASSAR",
            "KOTA PAREPARE",
        ],
    ),
    prov(
        74,
        "SULAWESI TENGGARA",
        27,
        93,
        Muslim,
        &[
            "KOLAKA",
            "KONAWE",
            "MUNA",
            "BUTON",
            "KOTA KENDARI",
            "KOTA BAUBAU",
        ],
    ),
    prov(
        75,
        "GORONTALO",
        12,
        96,
        Muslim,
        &[
            "BOALEMO",
            "GORONTALO",
            "POHUWATO",
            "BONE BOLANGO",
            "KOTA GORONTALO",
        ],
    ),
    prov(
        76,
        "SULAWESI BARAT",
        14,
        91,
        Muslim,
        &["MAJENE", "POLEWALI MANDAR", "MAMASA", "MAMUJU"],
    ),
    prov(
        81,
        "MALUKU",
        19,
        97,
        Mixed,
        &[
            "MALUKU TENGAH",
            "MALUKU TENGGARA",
            "BURU",
            "SERAM BAGIAN BARAT",
            "KOTA AMBON",
            "KOTA TUAL",
        ],
    ),
    prov(
        82,
        "MALUKU UTARA",
        13,
        97,
        Muslim,
        &[
            "HALMAHERA BARAT",
            "HALMAHERA TENGAH",
            "HALMAHERA UTARA",
            "KEPULAUAN SULA",
            "KOTA TERNATE",
            "KOTA TIDORE KEPULAUAN",
        ],
    ),
    prov(
        91,
        "PAPUA",
        10,
        99,
        Protestant,
        &[
            "JAYAPURA",
            "KEPULAUAN YAPEN",
            "BIAK NUMFOR",
            "SARMI",
            "KEEROM",
            "KOTA JAYAPURA",
        ],
    ),
    prov(
        92,
        "PAPUA BARAT",
        6,
        98,
        Protestant,
        &[
            "MANOKWARI",
            "FAKFAK",
            "KAIMANA",
            "TELUK BINTUNI",
            "TELUK WONDAMA",
        ],
    ),
    prov(
        93,
        "PAPUA SELATAN",
        5,
        99,
        Catholic,
        &["MERAUKE", "BOVEN DIGOEL", "MAPPI", "ASMAT"],
    ),
    prov(
        94,
        "PAPUA TENGAH",
        14,
        98,
        Protestant,
        &["NABIRE", "MIMIKA", "PANIAI", "PUNCAK JAYA", "DOGIYAI"],
    ),
    prov(
        95,
        "PAPUA PEGUNUNGAN",
        14,
        99,
        Protestant,
        &[
            "JAYAWIJAYA",
            "LANNY JAYA",
            "TOLIKARA",
            "YAHUKIMO",
            "PEGUNUNGAN BINTANG",
        ],
    ),
    prov(
        96,
        "PAPUA BARAT DAYA",
        6,
        98,
        Protestant,
        &["SORONG", "RAJA AMPAT", "MAYBRAT", "TAMBRAUW", "KOTA SORONG"],
    ),
];

/// Province codes a NIK may start with.
pub(crate) fn is_province_code(code: u8) -> bool {
    matches!(code, 11..=19 | 21 | 31..=36 | 51..=53 | 61..=65 | 71..=76 | 81..=82 | 91..=96)
}

pub(crate) const SEXES: &[&str] = &["LAKI-LAKI", "PEREMPUAN"];

pub(crate) const RELIGIONS: &[&str] = &[
    "ISLAM",
    "KRISTEN",
    "KATHOLIK",
    "HINDU",
    "BUDHA",
    "KHONGHUCU",
    "KEPERCAYAAN TERHADAP TUHAN YME / LAINNYA",
];

pub(crate) const MARITAL: &[&str] = &["BELUM KAWIN", "KAWIN", "CERAI HIDUP", "CERAI MATI"];
pub(crate) const BELUM_KAWIN: u8 = 0;
pub(crate) const KAWIN: u8 = 1;
pub(crate) const CERAI_HIDUP: u8 = 2;
pub(crate) const CERAI_MATI: u8 = 3;

pub(crate) const EDUCATION: &[&str] = &[
    "TIDAK/BELUM SEKOLAH",
    "BELUM TAMAT SD/SEDERAJAT",
    "TAMAT SD/SEDERAJAT",
    "SLTP/SEDERAJAT",
    "SLTA/SEDERAJAT",
    "DIPLOMA I/II",
    "AKADEMI/DIPLOMA III/S. MUDA",
    "DIPLOMA IV/STRATA I",
    "STRATA II",
    "STRATA III",
];
/// Spread of the highest education of adults (per ten thousand).
pub(crate) const ADULT_EDUCATION_WEIGHTS: &[u16] =
    &[800, 1000, 2500, 1700, 2800, 100, 300, 700, 90, 10];

/// The SIAK occupation list with a rough spread among working-age adults.
pub(crate) const OCCUPATIONS: &[(&str, u16)] = &[
    ("BELUM/TIDAK BEKERJA", 60),
    ("MENGURUS RUMAH TANGGA", 0),
    ("PELAJAR/MAHASISWA", 0),
    ("PENSIUNAN", 0),
    ("PEGAWAI NEGERI SIPIL (PNS)", 40),
    ("TENTARA NASIONAL INDONESIA (TNI)", 8),
    ("KEPOLISIAN RI (POLRI)", 8),
    ("PERDAGANGAN", 30),
    ("PETANI/PEKEBUN", 160),
    ("PETERNAK", 8),
    ("NELAYAN/PERIKANAN", 20),
    ("INDUSTRI", 6),
    ("KONSTRUKSI", 4),
    ("TRANSPORTASI", 5),
    ("KARYAWAN SWASTA", 180),
    ("KARYAWAN BUMN", 6),
    ("KARYAWAN BUMD", 2),
    ("KARYAWAN HONORER", 10),
    ("BURUH HARIAN LEPAS", 100),
    ("BURUH TANI/PERKEBUNAN", 40),
    ("BURUH NELAYAN/PERIKANAN", 5),
    ("BURUH PETERNAKAN", 2),
    ("PEMBANTU RUMAH TANGGA", 4),
    ("TUKANG CUKUR", 1),
    ("TUKANG LISTRIK", 2),
    ("TUKANG BATU", 4),
    ("TUKANG KAYU", 3),
    ("TUKANG SOL SEPATU", 1),
    ("TUKANG LAS/PANDAI BESI", 1),
    ("TUKANG JAHIT", 2),
    ("TUKANG GIGI", 1),
    ("PENATA RIAS", 1),
    ("PENATA BUSANA", 1),
    ("PENATA RAMBUT", 1),
    ("MEKANIK", 3),
    ("SENIMAN", 1),
    ("TABIB", 1),
    ("PARAJI", 1),
    ("PERANCANG BUSANA", 1),
    ("PENTERJEMAH", 1),
    ("IMAM MASJID", 1),
    ("PENDETA", 1),
    ("PASTOR", 1),
    ("WARTAWAN", 1),
    ("USTADZ/MUBALIGH", 1),
    ("JURU MASAK", 1),
    ("PROMOTOR ACARA", 1),
    ("ANGGOTA DPR-RI", 0),
    ("ANGGOTA DPD", 0),
    ("ANGGOTA BPK", 0),
    ("PRESIDEN", 0),
    ("WAKIL PRESIDEN", 0),
    ("ANGGOTA MAHKAMAH KONSTITUSI", 0),
    ("ANGGOTA KABINET/KEMENTERIAN", 0),
    ("DUTA BESAR", 0),
    ("GUBERNUR", 0),
    ("WAKIL GUBERNUR", 0),
    ("BUPATI", 0),
    ("WAKIL BUPATI", 0),
    ("WALIKOTA", 0),
    ("WAKIL WALIKOTA", 0),
    ("ANGGOTA DPRD PROVINSI", 0),
    ("ANGGOTA DPRD KABUPATEN/KOTA", 0),
    ("DOSEN", 2),
    ("GURU", 30),
    ("PILOT", 1),
    ("PENGACARA", 1),
    ("NOTARIS", 1),
    ("ARSITEK", 1),
    ("AKUNTAN", 1),
    ("KONSULTAN", 1),
    ("DOKTER", 2),
    ("BIDAN", 2),
    ("PERAWAT", 3),
    ("APOTEKER", 1),
    ("PSIKIATER/PSIKOLOG", 1),
    ("PENYIAR TELEVISI", 1),
    ("PENYIAR RADIO", 1),
    ("PELAUT", 2),
    ("PENELITI", 1),
    ("SOPIR", 20),
    ("PIALANG", 1),
    ("PARANORMAL", 1),
    ("PEDAGANG", 60),
    ("PERANGKAT DESA", 4),
    ("KEPALA DESA", 1),
    ("BIARAWATI", 1),
    ("WIRASWASTA", 200),
    ("LAINNYA", 10),
];
/// The weights of [`OCCUPATIONS`] alone, for [`crate::rng::Rng::weighted`].
pub(crate) const OCCUPATION_WEIGHTS: [u16; OCCUPATIONS.len()] = {
    let mut weights = [0; OCCUPATIONS.len()];
    let mut i = 0;
    while i < OCCUPATIONS.len() {
        weights[i] = OCCUPATIONS[i].1;
        i += 1;
    }
    weights
};
pub(crate) const OCC_NONE: u8 = 0;
pub(crate) const OCC_HOUSEHOLD: u8 = 1;
pub(crate) const OCC_STUDENT: u8 = 2;
pub(crate) const OCC_RETIRED: u8 = 3;

pub(crate) const BLOOD: &[&str] = &[
    "A",
    "B",
    "AB",
    "O",
    "A+",
    "A-",
    "B+",
    "B-",
    "AB+",
    "AB-",
    "O+",
    "O-",
    "TIDAK TAHU",
];
pub(crate) const BLOOD_WEIGHTS: &[u16] = &[110, 120, 40, 160, 15, 2, 15, 2, 5, 1, 20, 2, 508];

pub(crate) const FAMILY_RELATION: &[&str] = &[
    "KEPALA KELUARGA",
    "SUAMI",
    "ISTRI",
    "ANAK",
    "MENANTU",
    "CUCU",
    "ORANGTUA",
    "MERTUA",
    "FAMILI LAIN",
    "PEMBANTU",
];
pub(crate) const REL_HEAD: u8 = 0;
pub(crate) const REL_WIFE: u8 = 2;
pub(crate) const REL_CHILD: u8 = 3;
pub(crate) const REL_IN_LAW_CHILD: u8 = 4;
pub(crate) const REL_GRANDCHILD: u8 = 5;
pub(crate) const REL_PARENT: u8 = 6;
pub(crate) const REL_PARENT_IN_LAW: u8 = 7;
pub(crate) const REL_OTHER: u8 = 8;
pub(crate) const REL_HELPER: u8 = 9;

/// Disability (`PNYDNG_CACAT`), protected by UU 24/2013 art. 84.
pub(crate) const DISABILITY: &[&str] = &[
    "TIDAK ADA",
    "TUNA DAKSA",
    "TUNA NETRA",
    "TUNA RUNGU",
    "TUNA WICARA",
    "TUNA RUNGU-WICARA",
    "TUNA GRAHITA",
    "TUNA LARAS",
    "CACAT GANDA",
];
pub(crate) const DISABILITY_WEIGHTS: &[u16] = &[9700, 90, 50, 40, 20, 30, 40, 10, 20];

pub(crate) const EKTP_STATUS: &[&str] = &[
    "CARD PRINTED",
    "PRINT READY RECORD",
    "BELUM REKAM",
    "BELUM WAJIB KTP",
];
pub(crate) const EKTP_PRINTED: u8 = 0;
pub(crate) const EKTP_READY: u8 = 1;
pub(crate) const EKTP_NOT_RECORDED: u8 = 2;
pub(crate) const EKTP_TOO_YOUNG: u8 = 3;

pub(crate) const MALE_GIVEN: &[&str] = &[
    "AHMAD", "MUHAMMAD", "AGUS", "BUDI", "DEDI", "EKO", "HENDRA", "IWAN", "JOKO", "RUDI",
    "SUTRISNO", "BAMBANG", "SLAMET", "WAHYU", "YOGA", "RIZKY", "ADITYA", "FAJAR", "DIMAS", "ARIF",
    "ANDI", "BAYU", "DANANG", "GILANG", "HERU", "IRFAN", "KURNIA", "LUKMAN", "MUKHLIS", "NANANG",
    "OKTA", "PUTU", "RAHMAT", "SAIFUL", "TAUFIK", "UJANG", "YUSUF", "ZAINAL", "ARYA", "BIMA",
    "CAHYO", "DONI", "EDI", "FIRMAN", "GALIH", "HARIS", "ILHAM", "JAKA", "KADEK", "MADE", "KOMANG",
    "WAYAN", "NYOMAN", "YOHANES", "PETRUS", "MARKUS", "STEVEN", "RICKY", "FRANS", "DANIEL",
    "YOSEF", "MARTINUS", "SAMUEL", "HASAN",
];

pub(crate) const FEMALE_GIVEN: &[&str] = &[
    "SITI",
    "SRI",
    "DEWI",
    "NUR",
    "RINA",
    "ANI",
    "YULI",
    "ENDANG",
    "WATI",
    "PUTRI",
    "AYU",
    "INDAH",
    "RATNA",
    "FITRI",
    "NOVI",
    "DIAN",
    "MEGA",
    "LINDA",
    "MAYA",
    "AISYAH",
    "FATIMAH",
    "ANISA",
    "NURUL",
    "RIRIN",
    "TUTI",
    "YANTI",
    "SUSI",
    "WULAN",
    "EVI",
    "INTAN",
    "KARTIKA",
    "LUSI",
    "MARIA",
    "MARTHA",
    "YOHANA",
    "ELISABETH",
    "AGNES",
    "THERESIA",
    "NENGSIH",
    "ROSITA",
    "HALIMAH",
    "ZAHRA",
    "NABILA",
    "SALSABILA",
    "AMELIA",
    "CITRA",
    "DWI",
    "EKA",
    "FARAH",
    "GITA",
    "HANA",
    "IRMA",
    "JUWITA",
    "KIKI",
    "LAILA",
    "MIRA",
    "NINA",
    "OKTAVIA",
    "PURI",
    "RANI",
    "SARAH",
    "TIARA",
    "UMI",
    "VINA",
];

pub(crate) const MALE_FAMILY: &[&str] = &[
    "SAPUTRA",
    "PRATAMA",
    "WIJAYA",
    "SETIAWAN",
    "HIDAYAT",
    "KURNIAWAN",
    "NUGROHO",
    "SANTOSO",
    "PURNOMO",
    "HARTONO",
    "SUSANTO",
    "GUNAWAN",
    "RAHMAN",
    "HAKIM",
    "FIRMANSYAH",
    "RAMADHAN",
    "SYAHPUTRA",
    "PRASETYO",
    "WIBOWO",
    "SUPRIYADI",
    "HERMAWAN",
    "SURYADI",
    "MULYADI",
    "SUBAGYO",
    "HARYANTO",
    "SUGIHARTO",
    "SETIADI",
    "MAULANA",
    "HIDAYATULLAH",
    "ISKANDAR",
    "SAHPUTRA",
    "ARDIANSYAH",
    "NURDIN",
    "SALIM",
    "HUSAIN",
    "TANJUNG",
    "SIMANJUNTAK",
    "PANJAITAN",
    "GINTING",
    "SITORUS",
    "RUMAPEA",
    "MANOPPO",
    "LATUPEIRISSA",
    "WENDA",
    "KOGOYA",
    "DARMAWAN",
    "EFENDI",
    "SUHERMAN",
];

pub(crate) const FEMALE_FAMILY: &[&str] = &[
    "LESTARI",
    "RAHAYU",
    "WULANDARI",
    "PUSPITASARI",
    "ANGGRAINI",
    "HANDAYANI",
    "KURNIASIH",
    "SURYANI",
    "MAULIDA",
    "FITRIANI",
    "SAFITRI",
    "PERMATASARI",
    "NOVITASARI",
    "PRATIWI",
    "UTAMI",
    "WAHYUNI",
    "SARI",
    "NINGSIH",
    "RAHMAWATI",
    "SUSANTI",
    "ASTUTI",
    "SETYANINGSIH",
    "PURNAMASARI",
    "MARLINA",
    "YULIANTI",
    "OKTAVIANI",
    "KUSUMAWATI",
    "DAMAYANTI",
    "MULYANI",
    "SUPRIHATIN",
    "HASANAH",
    "KHOIRUNNISA",
    "AMALIA",
    "ROHMAH",
    "SUMARNI",
    "SULASTRI",
];

/// Offsets of the name lists in one numbering, so a name part fits in a `u16`.
pub(crate) const MALE_GIVEN_AT: u16 = 0;
pub(crate) const FEMALE_GIVEN_AT: u16 = MALE_GIVEN_AT + MALE_GIVEN.len() as u16;
pub(crate) const MALE_FAMILY_AT: u16 = FEMALE_GIVEN_AT + FEMALE_GIVEN.len() as u16;
pub(crate) const FEMALE_FAMILY_AT: u16 = MALE_FAMILY_AT + MALE_FAMILY.len() as u16;
const NAME_PARTS_END: u16 = FEMALE_FAMILY_AT + FEMALE_FAMILY.len() as u16;

/// The text of a name part by its number in the combined numbering.
pub(crate) fn name_part(index: u16) -> &'static str {
    let i = usize::from(index);
    let lists = [
        (MALE_GIVEN_AT, MALE_GIVEN),
        (FEMALE_GIVEN_AT, FEMALE_GIVEN),
        (MALE_FAMILY_AT, MALE_FAMILY),
        (FEMALE_FAMILY_AT, FEMALE_FAMILY),
    ];
    for (at, list) in lists.iter().rev() {
        if index >= *at && index < NAME_PARTS_END {
            return list.get(i - usize::from(*at)).copied().unwrap_or("");
        }
    }
    ""
}

/// Street names for `JL.` and `GG.` addresses.
pub(crate) const STREETS: &[&str] = &[
    "MERDEKA",
    "PAHLAWAN",
    "PEMUDA",
    "MAWAR",
    "MELATI",
    "KENANGA",
    "ANGGREK",
    "CEMPAKA",
    "FLAMBOYAN",
    "DAHLIA",
    "KAMBOJA",
    "MANGGA",
    "RAMBUTAN",
    "DURIAN",
    "NANGKA",
    "SAWO",
    "JAMBU",
    "DELIMA",
    "RAYA",
    "PERINTIS",
    "KEMERDEKAAN",
    "PENDIDIKAN",
    "KESEHATAN",
    "PERTANIAN",
    "PELITA",
    "BHAYANGKARA",
    "CENDRAWASIH",
    "RAJAWALI",
    "MERPATI",
    "NURI",
    "KUTILANG",
    "GARUDA",
    "SETIABUDI",
    "SUKAJADI",
    "BERINGIN",
    "KELAPA",
    "SAMUDRA",
    "KARYA",
    "SEJAHTERA",
    "MANDIRI",
    "BAKTI",
    "HARAPAN",
    "DAMAI",
    "SENTOSA",
    "BAHAGIA",
    "PURNAMA",
    "BINTANG",
    "MATAHARI",
];

/// Hamlet names (`DUSUN`) for villages; index 0 is the urban "-".
pub(crate) const DUSUN: &[&str] = &[
    "-",
    "KRAJAN",
    "SUKAMAJU",
    "MEKARSARI",
    "KARANGREJO",
    "SIDOMULYO",
    "TEGALSARI",
    "SUMBERSARI",
    "PURWOREJO",
    "CIBODAS",
    "PASIRJAYA",
    "WONOSARI",
    "JATIMULYO",
    "TANJUNGSARI",
    "KEBONAGUNG",
    "SRIMULYO",
    "MARGAHAYU",
    "BANJARSARI",
    "TELAGASARI",
    "GUNUNGSARI",
    "RAWASARI",
    "KALIWUNGU",
    "SUKADAMAI",
    "CIKADU",
    "LEBAKSARI",
];

/// Place-name heads for generated district and village names; `true` joins the tail
/// without a space (`SUKA` + `MAJU` → `SUKAMAJU`).
pub(crate) const PLACE_HEADS: &[(&str, bool)] = &[
    ("SUKA", true),
    ("CI", true),
    ("KARANG", true),
    ("SUMBER", true),
    ("TANJUNG", false),
    ("BATU", false),
    ("MEKAR", true),
    ("SIDO", true),
    ("MARGA", true),
    ("PASIR", false),
    ("TELAGA", false),
    ("WONO", true),
    ("BANJAR", true),
    ("LUBUK", false),
    ("AIR", false),
    ("MUARA", false),
    ("SIMPANG", false),
    ("PADANG", false),
    ("TELUK", false),
    ("KAMPUNG", false),
    ("BUKIT", false),
    ("RAWA", false),
    ("GUNUNG", false),
    ("KEBON", false),
    ("PURWO", true),
    ("TIRTA", true),
    ("JATI", true),
    ("SRI", true),
];

pub(crate) const PLACE_TAILS: &[&str] = &[
    "MAJU",
    "JAYA",
    "MULYA",
    "SARI",
    "REJO",
    "ASIH",
    "HARJO",
    "RAYA",
    "BARU",
    "INDAH",
    "MAKMUR",
    "AGUNG",
    "LESTARI",
    "TIMUR",
    "BARAT",
    "UTARA",
    "SELATAN",
    "TENGAH",
    "KENCANA",
    "WANGI",
    "LAUT",
    "PUTIH",
    "MERAH",
    "HIJAU",
    "KULON",
    "WETAN",
    "KIDUL",
    "LOR",
    "ASRI",
    "DAMAI",
    "SEJAHTERA",
    "MANDIRI",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        assert_eq!(RELIGIONS.len(), Faith::Mixed.weights().len());
        assert_eq!(OCCUPATIONS.len(), 89);
        assert_eq!(BLOOD.len(), BLOOD_WEIGHTS.len());
        assert_eq!(DISABILITY.len(), DISABILITY_WEIGHTS.len());
        assert_eq!(EDUCATION.len(), ADULT_EDUCATION_WEIGHTS.len());
        for p in PROVINCES {
            assert!(is_province_code(p.code), "{}", p.name);
            assert!(p.postal >= 10);
            assert!(!p.regencies.is_empty());
        }
    }

    #[test]
    fn name_parts_cover_every_list() {
        assert_eq!(name_part(MALE_GIVEN_AT), MALE_GIVEN[0]);
        assert_eq!(name_part(FEMALE_GIVEN_AT), FEMALE_GIVEN[0]);
        assert_eq!(name_part(MALE_FAMILY_AT + 1), MALE_FAMILY[1]);
        assert_eq!(
            name_part(NAME_PARTS_END - 1),
            FEMALE_FAMILY[FEMALE_FAMILY.len() - 1]
        );
        assert_eq!(name_part(NAME_PARTS_END), "");
        for i in 0..NAME_PARTS_END {
            assert!(name_part(i).bytes().all(|b| b.is_ascii_uppercase()), "{i}");
        }
    }
}

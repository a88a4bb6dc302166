//! One PKS file from its text: the TOML as written (spans kept for every error's line), then
//! each field checked, every problem collected; and the blocklist of IP LANs.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::Path;

use base64::Engine as _;
use chrono::NaiveDate;
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::diag::{ConfigError, ConfigErrors, Lines, Source, read_file};
use crate::element::{ElementSet, Vocabulary, unknown_element};

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PksFile {
    /// The PKS number, unique.
    nomor: Spanned<String>,
    /// Stable id of the institution (lower case, digits, `-`).
    pengguna: Spanned<String>,
    /// The institution's full name.
    nama_pengguna: String,
    jenis_pengguna: JenisPengguna,
    tingkat: Tingkat,
    /// The purpose of use, as in the PKS.
    tujuan: String,
    /// Allowed data elements or groups (vocabulary names).
    elemen_data: Spanned<Vec<Spanned<String>>>,
    /// Allowed access methods.
    metode_akses: Spanned<Vec<Channel>>,
    /// Allowed lookup keys.
    kunci_akses: Spanned<Vec<KunciAkses>>,
    /// Data the Pengguna sends back: names of the vocabulary's `[[balikan]]` fields.
    #[serde(default)]
    data_balikan: Vec<Spanned<String>>,
    /// First day of validity (inclusive, WIB).
    mulai: Spanned<toml::value::Datetime>,
    /// Last day of validity (inclusive, WIB).
    sampai: Spanned<toml::value::Datetime>,
    /// Foreign-majority BHI: verification only (art. 29(4)).
    #[serde(default)]
    kepemilikan_asing_mayoritas: bool,
    /// Law enforcement: may search by element combination (art. 31).
    #[serde(default)]
    penegak_hukum: bool,
    /// Protected elements the Minister approved (UU 24/2013 art. 84).
    #[serde(default)]
    persetujuan_menteri: Vec<Spanned<String>>,
    /// Optional cap on the NIK hits per WIB day of all the Pengguna's User IDs together.
    #[serde(default)]
    kuota_harian_pengguna: Option<Spanned<u32>>,
    status: PksStatus,
    /// Client certificates (SHA-256 fingerprints) every User ID of the PKS must present,
    /// any one of them, unless the User ID names its own; empty: none required.
    #[serde(default)]
    sertifikat_klien: Vec<Spanned<String>>,
    #[serde(default, rename = "user")]
    users: Vec<Spanned<UserFile>>,
    #[serde(default, rename = "sam")]
    sams: Vec<Spanned<SamFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    /// The User ID the PKS grants.
    id: Spanned<String>,
    /// argon2id PHC string (`gerbang passwd` prints one).
    password_hash: Spanned<String>,
    /// Registered LAN addresses (CIDR or single address).
    ip_lan: Spanned<Vec<Spanned<String>>>,
    /// NIK hits per calendar day (WIB).
    kuota_harian: Spanned<u32>,
    status: UserStatus,
    /// Client certificates (SHA-256 fingerprints) this User ID must present, any one of them.
    #[serde(default)]
    sertifikat_klien: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SamFile {
    /// The SAM's id as personalised by Ditjen.
    id: Spanned<String>,
    /// `ed25519:` followed by the base64 public key.
    public_key: Spanned<String>,
    status: SamStatus,
}

/// A 1-based line and column.
pub(super) type Pos = (usize, usize);

/// Where the fields the set-wide checks can complain about were written, kept from parsing
/// (as lines, so a reused file's text need not be kept).
#[derive(Debug)]
pub(super) struct Positions {
    pub(super) nomor: Pos,
    pub(super) kuota_harian_pengguna: Option<Pos>,
    pub(super) users: Vec<Pos>,
    pub(super) ip_lan: Vec<Vec<Pos>>,
    pub(super) sams: Vec<Pos>,
}

pub(super) fn parse_one(
    src: &Source<'_>,
    vocab: &Vocabulary,
) -> Result<(Pks, Positions), ConfigErrors> {
    let file: PksFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let mut errors = Vec::new();
    let lines = Lines::new(src.text);

    if file.nomor.get_ref().trim().is_empty() {
        errors.push(src.error(Some(file.nomor.span()), "nomor", "the PKS number is empty"));
    }
    let pengguna = file.pengguna.get_ref();
    if pengguna.is_empty()
        || !pengguna
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errors.push(src.error(
            Some(file.pengguna.span()),
            "pengguna",
            format!("`{pengguna}` is not a stable id: use lower-case letters, digits and `-` (e.g. `bkd-karanganyar`)"),
        ));
    }

    let mut elemen_data = ElementSet::EMPTY;
    for name in file.elemen_data.get_ref() {
        match vocab.resolve(name.get_ref()) {
            Some(set) => elemen_data = elemen_data.union(set),
            None => errors.push(unknown_element(
                src,
                name.span(),
                "elemen_data",
                name.get_ref(),
                vocab,
            )),
        }
    }
    if file.elemen_data.get_ref().is_empty() {
        errors.push(src.error(
            Some(file.elemen_data.span()),
            "elemen_data",
            "a PKS grants at least one element",
        ));
    }
    let mut persetujuan = ElementSet::EMPTY;
    for name in &file.persetujuan_menteri {
        match vocab.resolve(name.get_ref()) {
            Some(set) if set.difference(vocab.protected()).is_empty() => {
                persetujuan = persetujuan.union(set)
            }
            Some(_) => errors.push(src.error(
                Some(name.span()),
                "persetujuan_menteri",
                format!(
                    "`{}` is not protected data; list only protected elements here",
                    name.get_ref()
                ),
            )),
            None => errors.push(unknown_element(
                src,
                name.span(),
                "persetujuan_menteri",
                name.get_ref(),
                vocab,
            )),
        }
    }
    let unapproved = elemen_data
        .intersection(vocab.protected())
        .difference(persetujuan);
    if !unapproved.is_empty() {
        errors.push(src.error(
            Some(file.elemen_data.span()),
            "elemen_data",
            format!(
                "{} is protected personal data (UU 24/2013 art. 84) and needs the Minister's approval: add it to `persetujuan_menteri` or remove it",
                vocab.names(unapproved).join(", ")
            ),
        ));
    }

    let mut data_balikan: Vec<String> = Vec::new();
    for name in &file.data_balikan {
        let name_ref = name.get_ref();
        if vocab.balikan(name_ref).is_none() {
            let known: Vec<&str> = vocab
                .balikan_fields()
                .iter()
                .map(|f| f.nama.as_str())
                .collect();
            errors.push(src.error(
                Some(name.span()),
                "data_balikan",
                format!(
                    "`{name_ref}` is not a balikan field of the vocabulary (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        } else if data_balikan.iter().any(|n| n == name_ref) {
            errors.push(src.error(
                Some(name.span()),
                "data_balikan",
                format!("`{name_ref}` is listed twice"),
            ));
        } else {
            data_balikan.push(name_ref.clone());
        }
    }

    if file.metode_akses.get_ref().is_empty() {
        errors.push(src.error(
            Some(file.metode_akses.span()),
            "metode_akses",
            "a PKS grants at least one access method",
        ));
    }
    if file.kunci_akses.get_ref().is_empty() {
        errors.push(src.error(
            Some(file.kunci_akses.span()),
            "kunci_akses",
            "a PKS grants at least one lookup key (usually \"NIK\")",
        ));
    }
    if file.kunci_akses.get_ref().contains(&KunciAkses::Elemen) && !file.penegak_hukum {
        errors.push(src.error(
            Some(file.kunci_akses.span()),
            "kunci_akses",
            "search by element combination (\"ELEMEN\") is given only to law enforcement (art. 31; letter 470/18754): set `penegak_hukum = true` or remove it",
        ));
    }
    if file.kepemilikan_asing_mayoritas && file.jenis_pengguna != JenisPengguna::Bhi {
        errors.push(src.error(
            None,
            "kepemilikan_asing_mayoritas",
            "only a BHI (jenis_pengguna = \"bhi\") can be foreign-majority owned",
        ));
    }

    let mulai = date_field(src, &file.mulai, "mulai", &mut errors);
    let sampai = date_field(src, &file.sampai, "sampai", &mut errors);
    if let (Some(m), Some(s)) = (mulai, sampai)
        && s < m
    {
        errors.push(src.error(
            Some(file.sampai.span()),
            "sampai",
            format!("the end date {s} is before the start date {m}"),
        ));
    }

    let pks_certs = fingerprints(src, &file.sertifikat_klien, "sertifikat_klien", &mut errors);
    let mut users = Vec::with_capacity(file.users.len());
    let mut user_pos = Vec::new();
    let mut ip_pos = Vec::new();
    for (i, u) in file.users.iter().enumerate() {
        let u_span = u.span();
        let u = u.get_ref();
        if let Some(user) = parse_user(src, &lines, i, u, &pks_certs, &mut errors) {
            users.push(user);
            user_pos.push(lines.pos(u.id.span().start));
            ip_pos.push(
                u.ip_lan
                    .get_ref()
                    .iter()
                    .map(|n| lines.pos(n.span().start))
                    .collect(),
            );
        } else {
            let _ = u_span;
        }
    }
    if file.users.is_empty() {
        errors.push(src.error(
            None,
            "user",
            "a PKS grants at least one User ID: add a [[user]] table",
        ));
    }

    let mut sams = Vec::with_capacity(file.sams.len());
    let mut sam_pos = Vec::new();
    for (i, s) in file.sams.iter().enumerate() {
        let s = s.get_ref();
        if let Some(key) = parse_public_key(s.public_key.get_ref()) {
            sams.push(Sam {
                id: s.id.get_ref().clone(),
                public_key: key,
                status: s.status,
                line: lines.pos(s.id.span().start).0,
            });
            sam_pos.push(lines.pos(s.id.span().start));
        } else {
            errors.push(src.error(
                Some(s.public_key.span()),
                format!("sam[{i}].public_key"),
                "must be `ed25519:` followed by the base64 of a valid 32-byte Ed25519 public key (`gerbang sam keygen` prints one)",
            ));
        }
        if s.id.get_ref().trim().is_empty() {
            errors.push(src.error(
                Some(s.id.span()),
                format!("sam[{i}].id"),
                "the SAM id is empty",
            ));
        }
    }
    let kuota_pengguna = file.kuota_harian_pengguna.as_ref().and_then(|k| {
        let cap = NonZeroU32::new(*k.get_ref());
        if cap.is_none() {
            errors.push(src.error(
                Some(k.span()),
                "kuota_harian_pengguna",
                "a daily cap of 0 would refuse every lookup: give a positive number, or leave the field out for no cap",
            ));
        }
        cap
    });
    if !sams.is_empty() && !file.metode_akses.get_ref().contains(&Channel::CardReader) {
        errors.push(src.error(
            Some(file.metode_akses.span()),
            "metode_akses",
            "the file registers SAMs but does not grant \"card_reader\"",
        ));
    }

    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let (Some(mulai), Some(sampai)) = (mulai, sampai) else {
        return Err(ConfigErrors(errors));
    };
    let positions = Positions {
        nomor: lines.pos(file.nomor.span().start),
        kuota_harian_pengguna: file
            .kuota_harian_pengguna
            .as_ref()
            .map(|k| lines.pos(k.span().start)),
        users: user_pos,
        ip_lan: ip_pos,
        sams: sam_pos,
    };
    let pks = Pks {
        source: src.path.to_path_buf(),
        nomor: file.nomor.into_inner(),
        pengguna: file.pengguna.into_inner(),
        nama_pengguna: file.nama_pengguna,
        jenis_pengguna: file.jenis_pengguna,
        tingkat: file.tingkat,
        tujuan: file.tujuan,
        elemen_data,
        metode_akses: file.metode_akses.into_inner(),
        kunci_akses: file.kunci_akses.into_inner(),
        data_balikan,
        mulai,
        sampai,
        kepemilikan_asing_mayoritas: file.kepemilikan_asing_mayoritas,
        penegak_hukum: file.penegak_hukum,
        persetujuan_menteri: persetujuan,
        kuota_harian_pengguna: kuota_pengguna,
        status: file.status,
        users,
        sams,
    };
    Ok((pks, positions))
}

/// The fingerprints of a `sertifikat_klien` list, each bad one an error at its place.
fn fingerprints(
    src: &Source<'_>,
    list: &[Spanned<String>],
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<CertFingerprint> {
    list.iter()
        .filter_map(|f| match CertFingerprint::parse(f.get_ref()) {
            Ok(c) => Some(c),
            Err(msg) => {
                errors.push(src.error(Some(f.span()), field, msg));
                None
            }
        })
        .collect()
}

fn parse_user(
    src: &Source<'_>,
    lines: &Lines,
    i: usize,
    u: &UserFile,
    pks_certs: &[CertFingerprint],
    errors: &mut Vec<ConfigError>,
) -> Option<User> {
    let before = errors.len();
    let id = u.id.get_ref();
    if !is_user_id(id) {
        errors.push(src.error(
            Some(u.id.span()),
            format!("user[{i}].id"),
            format!(
                "`{id}` is not a valid User ID: 1 to {USER_ID_MAX_LEN} ASCII letters, digits, `_`, `.` or `-`"
            ),
        ));
    }
    let hash = u.password_hash.get_ref();
    match argon2::PasswordHash::new(hash) {
        Ok(parsed) if parsed.algorithm.as_str() == "argon2id" && parsed.hash.is_some() => {}
        Ok(parsed) => errors.push(src.error(
            Some(u.password_hash.span()),
            format!("user[{i}].password_hash"),
            format!(
                "is a `{}` hash; Gerbang accepts argon2id only (`gerbang passwd` prints one)",
                parsed.algorithm
            ),
        )),
        Err(e) => errors.push(src.error(
            Some(u.password_hash.span()),
            format!("user[{i}].password_hash"),
            format!("is not an argon2id PHC string ({e}); `gerbang passwd` prints one"),
        )),
    }
    let mut ip_lan = Vec::new();
    for net in u.ip_lan.get_ref() {
        match parse_ip_lan(net.get_ref()) {
            Ok(n) => ip_lan.push(n),
            Err(msg) => errors.push(src.error(Some(net.span()), format!("user[{i}].ip_lan"), msg)),
        }
    }
    if u.ip_lan.get_ref().is_empty() {
        errors.push(src.error(
            Some(u.ip_lan.span()),
            format!("user[{i}].ip_lan"),
            "at least one registered LAN address is needed (art. 28: closed network only)",
        ));
    }
    let kuota = NonZeroU32::new(*u.kuota_harian.get_ref());
    if kuota.is_none() {
        errors.push(src.error(
            Some(u.kuota_harian.span()),
            format!("user[{i}].kuota_harian"),
            "must be at least 1; to stop a User ID set status = \"nonaktif\"",
        ));
    }
    let own_certs = fingerprints(
        src,
        &u.sertifikat_klien,
        &format!("user[{i}].sertifikat_klien"),
        errors,
    );
    if errors.len() != before {
        return None;
    }
    Some(User {
        id: id.clone(),
        password_hash: hash.clone(),
        ip_lan,
        kuota_harian: kuota?,
        status: u.status,
        client_certs: if own_certs.is_empty() {
            pks_certs.to_vec()
        } else {
            own_certs
        },
        line: lines.pos(u.id.span().start).0,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlocklistFile {
    /// Networks cut off as a sanction (art. 45): single addresses or CIDRs.
    #[serde(default)]
    ip: Vec<Spanned<String>>,
}

/// Loads the block list of networks cut off as a sanction (art. 45).
pub fn load_blocklist(path: &Path) -> Result<Vec<IpNet>, ConfigErrors> {
    let text = read_file(path)?;
    let src = Source::new(path, &text);
    let file: BlocklistFile = toml::from_str(&text).map_err(|e| src.toml_error(&e))?;
    let mut nets = Vec::new();
    let mut errors = Vec::new();
    for entry in &file.ip {
        match parse_ip_lan(entry.get_ref()) {
            Ok(n) => nets.push(n),
            Err(msg) => errors.push(src.error(Some(entry.span()), "ip", msg)),
        }
    }
    if errors.is_empty() {
        Ok(nets)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parses one IP LAN entry: a single address or a CIDR without host bits.
fn parse_ip_lan(s: &str) -> Result<IpNet, String> {
    let net = if s.contains('/') {
        let net: IpNet = s
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{s}` has host bits set; did you mean `{}`?",
                net.trunc()
            ));
        }
        net
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
        IpNet::from(ip)
    };
    if net.prefix_len() == 0 {
        return Err(format!(
            "`{s}` would accept every address; register the LAN's own range"
        ));
    }
    Ok(net)
}

/// `ed25519:<base64>` of a usable Ed25519 public key: 32 bytes that decode to a curve
/// point of large order. A weak (small-order) key is refused: signatures under it can be
/// forged without a private key.
fn parse_public_key(s: &str) -> Option<[u8; 32]> {
    let b64 = s.strip_prefix("ed25519:")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let bytes: [u8; 32] = bytes.try_into().ok()?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?;
    (!key.is_weak()).then_some(bytes)
}

fn date_field(
    src: &Source<'_>,
    value: &Spanned<toml::value::Datetime>,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<NaiveDate> {
    let dt = value.get_ref();
    let date = match (dt.date, dt.time, dt.offset) {
        (Some(d), None, None) => {
            NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
        }
        _ => None,
    };
    if date.is_none() {
        errors.push(src.error(
            Some(value.span()),
            field,
            format!("`{dt}` must be a plain date such as 2024-11-09 (a day in WIB, no time)"),
        ));
    }
    date
}

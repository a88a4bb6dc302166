//! Authentication and decision tests over small synthetic PKS sets.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::NaiveDate;
use gerbang_core::{Auth, Channel, FakeClock, PksSet, Refusal, Shape, Vocabulary};

use crate::*;

fn hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("rahasia-uji").expect("hash"))
}

struct Pks<'a> {
    nomor: &'a str,
    extra: &'a str,
    metode: &'a str,
    kunci: &'a str,
    elemen: &'a str,
    users: &'a [(&'a str, &'a str, &'a str)],
}

impl Default for Pks<'_> {
    fn default() -> Self {
        Self {
            nomor: "1/A",
            extra: "",
            metode: r#"["web_service"]"#,
            kunci: r#"["NIK"]"#,
            elemen: r#"["NIK", "NAMA_LGKP", "ALAMAT_SEKARANG"]"#,
            users: &[("u1", "127.0.0.2", "aktif")],
        }
    }
}

impl Pks<'_> {
    fn text(&self) -> String {
        let mut s = format!(
            "nomor = \"{}\"\npengguna = \"p-{}\"\nnama_pengguna = \"Uji\"\njenis_pengguna = \"bhi\"\ntingkat = \"pusat\"\ntujuan = \"uji\"\nelemen_data = {}\nmetode_akses = {}\nkunci_akses = {}\nmulai = 2025-01-01\nsampai = 2027-12-31\nstatus = \"aktif\"\n{}\n",
            self.nomor,
            self.nomor.replace('/', "-").to_lowercase(),
            self.elemen,
            self.metode,
            self.kunci,
            self.extra
        );
        for (id, ip, status) in self.users {
            s += &format!(
                "[[user]]\nid = \"{id}\"\npassword_hash = \"{}\"\nip_lan = [\"{ip}\"]\nkuota_harian = 75\nstatus = \"{status}\"\n",
                hash()
            );
        }
        s
    }
}

fn snapshot(pks: &[Pks<'_>]) -> Snapshot {
    let files: Vec<(PathBuf, String)> = pks
        .iter()
        .enumerate()
        .map(|(i, p)| (PathBuf::from(format!("{i}.toml")), p.text()))
        .collect();
    let vocab = Vocabulary::embedded();
    let set = PksSet::parse_all(&files, &vocab).unwrap_or_else(|e| panic!("{e}"));
    Snapshot::new(vocab, set)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

fn authenticator() -> (Authenticator, FakeClock) {
    let clock = FakeClock::new("2026-06-01T03:00:00Z".parse().expect("time"));
    let settings = Auth {
        max_failures: NonZeroU32::new(3).expect("3"),
        failure_window: Duration::from_secs(60),
        lockout: Duration::from_secs(60),
    };
    (
        Authenticator::new(LoginThrottle::new(settings, Arc::new(clock.clone()))),
        clock,
    )
}

fn login(
    a: &Authenticator,
    snap: &Snapshot,
    user: &str,
    password: &str,
    peer: &str,
) -> Result<UserRef, AuthFailure> {
    let c = Credentials {
        user_id: user,
        password,
        peer: ip(peer),
    };
    match a.precheck(snap, c)? {
        Precheck::Done(r) => Ok(r),
        Precheck::NeedsArgon2(slow) => a.verify_slow(snap, c, slow),
    }
}

#[test]
fn right_credentials_from_the_registered_address_authenticate_and_are_cached() {
    let snap = snapshot(&[Pks::default()]);
    let (a, _) = authenticator();
    let r = login(&a, &snap, "u1", "rahasia-uji", "127.0.0.2").expect("ok");
    assert_eq!(snap.user(r).id, "u1");
    // Second time: no argon2 needed.
    let c = Credentials {
        user_id: "u1",
        password: "rahasia-uji",
        peer: ip("127.0.0.2"),
    };
    assert!(matches!(a.precheck(&snap, c), Ok(Precheck::Done(_))));
    // A wrong password is never served from the cache.
    let c = Credentials {
        user_id: "u1",
        password: "salah",
        peer: ip("127.0.0.2"),
    };
    assert!(matches!(a.precheck(&snap, c), Ok(Precheck::NeedsArgon2(_))));
    // An IPv4-mapped IPv6 peer is the same address.
    login(&a, &snap, "u1", "rahasia-uji", "::ffff:127.0.0.2").expect("mapped");
}

#[test]
fn each_failure_has_its_dwh_refusal() {
    let snap = snapshot(&[
        Pks::default(),
        Pks {
            nomor: "2/B",
            users: &[("u2", "127.0.0.3", "aktif")],
            ..Pks::default()
        },
    ]);
    let (a, _) = authenticator();
    let refusal = |user, pw, peer| {
        login(&a, &snap, user, pw, peer)
            .expect_err("refused")
            .refusal
    };
    assert_eq!(refusal("u1", "salah", "127.0.0.2"), Refusal::LoginFailed);
    assert_eq!(
        refusal("tidak-ada", "rahasia-uji", "127.0.0.2"),
        Refusal::LoginFailed
    );
    assert_eq!(
        refusal("u1", "rahasia-uji", "127.0.0.9"),
        Refusal::IpNotRegistered
    );
    // Right credentials of u1 from u2's registered address.
    assert_eq!(
        refusal("u1", "rahasia-uji", "127.0.0.3"),
        Refusal::IpMismatch
    );
}

#[test]
fn repeated_failures_lock_out_even_the_right_password() {
    let snap = snapshot(&[Pks::default()]);
    let (a, clock) = authenticator();
    for _ in 0..3 {
        assert_eq!(
            login(&a, &snap, "u1", "salah", "127.0.0.2")
                .expect_err("bad")
                .refusal,
            Refusal::LoginFailed
        );
    }
    let locked = login(&a, &snap, "u1", "rahasia-uji", "127.0.0.2").expect_err("locked");
    assert_eq!(locked.refusal, Refusal::LoginLocked);
    assert!(locked.retry_after.is_some());
    clock.advance(Duration::from_secs(61));
    login(&a, &snap, "u1", "rahasia-uji", "127.0.0.2").expect("unlocked");
}

#[test]
fn dummy_hash_is_a_real_argon2id_hash() {
    // Unknown users must pay the same argon2 cost as known ones.
    let snap = snapshot(&[Pks::default()]);
    let (a, _) = authenticator();
    let c = Credentials {
        user_id: "nobody",
        password: "x",
        peer: ip("127.0.0.2"),
    };
    let Ok(Precheck::NeedsArgon2(slow)) = a.precheck(&snap, c) else {
        panic!("expected argon2")
    };
    assert!(argon2::PasswordHash::new(&slow.phc).is_ok());
}

fn decide(snap: &Snapshot, user: &str, action: Action, channel: Channel, on: &str) -> Decision {
    let r = snap.user_by_id(user).expect("user");
    authorize(
        snap,
        &Request {
            user: r,
            action,
            channel,
            day: day(on),
        },
    )
}

#[test]
fn allowed_call_carries_exactly_the_pks_elements() {
    let snap = snapshot(&[Pks::default()]);
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2026-06-01",
    );
    assert!(d.allowed(), "{d:?}");
    let names = snap.vocabulary().names(d.elements);
    assert!(names.contains(&"NIK") && names.contains(&"KEL_NAME") && names.contains(&"NAMA_LGKP"));
    assert!(!names.contains(&"AGAMA"));
    assert_eq!(d.shape, Shape::Values);
}

#[test]
fn validity_period_is_inclusive_and_enforced() {
    let snap = snapshot(&[Pks::default()]);
    assert!(
        decide(
            &snap,
            "u1",
            Action::CallNik,
            Channel::WebService,
            "2025-01-01"
        )
        .allowed()
    );
    assert!(
        decide(
            &snap,
            "u1",
            Action::CallNik,
            Channel::WebService,
            "2027-12-31"
        )
        .allowed()
    );
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2028-01-01",
    );
    assert_eq!(
        (d.refusal, d.rule),
        (Some(Refusal::OutsideValidity), "pks-validity")
    );
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2024-12-31",
    );
    assert_eq!(d.refusal, Some(Refusal::OutsideValidity));
}

#[test]
fn status_sanctions_refuse() {
    let frozen = Pks {
        extra: "",
        ..Pks::default()
    }
    .text()
    .replace("status = \"aktif\"\n\n", "status = \"dibekukan\"\n\n");
    let vocab = Vocabulary::embedded();
    let set = PksSet::parse_all(&[(PathBuf::from("f.toml"), frozen)], &vocab).expect("valid");
    let snap = Snapshot::new(vocab, set);
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2026-06-01",
    );
    assert_eq!(d.refusal, Some(Refusal::InstitutionInactive));

    let snap = snapshot(&[Pks {
        users: &[("u1", "127.0.0.2", "nonaktif")],
        ..Pks::default()
    }]);
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2026-06-01",
    );
    assert_eq!(d.refusal, Some(Refusal::UserInactive));
}

#[test]
fn channel_must_be_granted() {
    let snap = snapshot(&[Pks {
        metode: r#"["web_portal"]"#,
        ..Pks::default()
    }]);
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2026-06-01",
    );
    assert_eq!(
        (d.refusal, d.rule),
        (Some(Refusal::NotPermitted), "channel")
    );
    assert!(
        decide(
            &snap,
            "u1",
            Action::CallNik,
            Channel::WebPortal,
            "2026-06-01"
        )
        .allowed()
    );
}

#[test]
fn foreign_majority_may_only_verify() {
    let snap = snapshot(&[Pks {
        extra: "kepemilikan_asing_mayoritas = true",
        ..Pks::default()
    }]);
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2026-06-01",
    );
    assert_eq!(
        (d.refusal, d.rule),
        (Some(Refusal::NotPermitted), "verify-only")
    );
    let d = decide(
        &snap,
        "u1",
        Action::VerifyByElement,
        Channel::WebService,
        "2026-06-01",
    );
    assert!(d.allowed());
    assert_eq!(d.shape, Shape::Verdicts);
}

#[test]
fn search_by_elements_is_for_law_enforcement_only() {
    let snap = snapshot(&[
        Pks::default(),
        Pks {
            nomor: "2/B",
            extra: "penegak_hukum = true",
            kunci: r#"["NIK", "ELEMEN"]"#,
            users: &[("polisi", "127.0.0.3", "aktif")],
            ..Pks::default()
        },
    ]);
    let d = decide(
        &snap,
        "u1",
        Action::SearchByElements,
        Channel::WebService,
        "2026-06-01",
    );
    assert_eq!(
        (d.refusal, d.rule),
        (Some(Refusal::NotPermitted), "search-law-enforcement")
    );
    assert!(
        decide(
            &snap,
            "polisi",
            Action::SearchByElements,
            Channel::WebService,
            "2026-06-01"
        )
        .allowed()
    );
}

#[test]
fn protected_elements_pass_only_with_approval() {
    let snap = snapshot(&[Pks {
        elemen: r#"["NIK", "PNYDNG_CACAT"]"#,
        extra: "persetujuan_menteri = [\"PNYDNG_CACAT\"]",
        ..Pks::default()
    }]);
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2026-06-01",
    );
    assert_eq!(
        snap.vocabulary().names(d.elements),
        vec!["NIK", "PNYDNG_CACAT"]
    );
}

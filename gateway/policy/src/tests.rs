//! Authentication and decision tests over small synthetic PKS sets.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::NaiveDate;
use gerbang_core::{Channel, PksSet, Refusal, Rejection, Shape, Vocabulary};

use crate::*;

mod reload;

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
    Snapshot::build(vocab, set, engine(), Vec::new()).unwrap_or_else(|e| panic!("{e}"))
}

/// Ditjen's rules as shipped in `policies/`.
fn engine() -> Arc<PolicyEngine> {
    static ENGINE: OnceLock<Arc<PolicyEngine>> = OnceLock::new();
    Arc::clone(ENGINE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        Arc::new(PolicyEngine::load(&dir).unwrap_or_else(|e| panic!("{e}")))
    }))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

/// An authenticator with the lockouts counted as the gateway counts them (in this process,
/// 3 failures within a minute lock for a minute).
#[derive(Debug)]
struct Login {
    auth: Authenticator,
    lockouts: gerbang_shared::EmbeddedLockouts,
}

impl std::ops::Deref for Login {
    type Target = Authenticator;

    fn deref(&self) -> &Authenticator {
        &self.auth
    }
}

impl Login {
    /// The checks before argon2, without the lockouts.
    fn precheck(&self, snap: &Snapshot, c: Credentials<'_>) -> Result<Precheck, Rejection> {
        let attempt = self.auth.attempt(snap, c)?;
        self.auth.precheck(snap, c, &attempt)
    }
}

fn authenticator() -> (Login, ()) {
    let settings = gerbang_shared::LockoutSettings {
        max_failures: NonZeroU32::new(3).expect("3"),
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(60),
    };
    let login = Login {
        auth: Authenticator::new(),
        lockouts: gerbang_shared::EmbeddedLockouts::new(settings, gerbang_shared::Ticks::manual()),
    };
    (login, ())
}

/// A login as the gateway runs it (`gerbang-proxy`'s `stages.rs`): the lockouts of what the
/// attempt counts against, then the checks, a failure counted, a success clearing.
fn login(
    a: &Login,
    snap: &Snapshot,
    user: &str,
    password: &str,
    peer: &str,
) -> Result<UserRef, Rejection> {
    use gerbang_shared::Subject;
    let c = Credentials {
        user_id: user,
        password,
        peer: ip(peer),
    };
    let attempt = a.attempt(snap, c)?;
    let mut subjects = vec![Subject::Address(attempt.peer)];
    subjects.extend(attempt.own_user_id.map(Subject::User));
    if let Some(wait) = a.lockouts.locked_now(&subjects) {
        return Err(locked_out(wait));
    }
    let outcome = match a.auth.precheck(snap, c, &attempt) {
        Ok(Precheck::Done(r)) => Ok(r),
        Ok(Precheck::NeedsArgon2(slow)) => a.verify_slow(snap, c, slow),
        Err(e) => Err(e),
    };
    match &outcome {
        Ok(_) => a.lockouts.success_now(&subjects),
        Err(_) => a.lockouts.failure_now(&subjects),
    }
    outcome
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
fn a_reload_keeps_only_the_cached_credentials_still_valid() {
    let (a, _) = authenticator();
    let two = [("u1", "127.0.0.2", "aktif"), ("u2", "127.0.0.3", "aktif")];
    let snap = snapshot(&[Pks {
        users: &two,
        ..Pks::default()
    }]);
    login(&a, &snap, "u1", "rahasia-uji", "127.0.0.2").expect("u1");
    login(&a, &snap, "u2", "rahasia-uji", "127.0.0.3").expect("u2");
    let cached = |snap: &Snapshot, user: &str, peer: &str| {
        let c = Credentials {
            user_id: user,
            password: "rahasia-uji",
            peer: ip(peer),
        };
        matches!(a.precheck(snap, c), Ok(Precheck::Done(_)))
    };
    // The same agreements loaded again: nobody pays argon2 again.
    let same = snapshot(&[Pks {
        users: &two,
        ..Pks::default()
    }]);
    a.keep_valid(&same);
    assert!(cached(&same, "u1", "127.0.0.2") && cached(&same, "u2", "127.0.0.3"));
    // u2 removed: its credential is forgotten, u1's kept.
    let without_u2 = snapshot(&[Pks::default()]);
    a.keep_valid(&without_u2);
    assert!(cached(&without_u2, "u1", "127.0.0.2"));
    assert!(!cached(&same, "u2", "127.0.0.3"), "forgotten");
}

/// u1 of `1/A` at 127.0.0.2, and u2 of another institution's `2/B` at `u2_lan`.
fn two_agreements(u2_lan: &str) -> Snapshot {
    snapshot(&[
        Pks::default(),
        Pks {
            nomor: "2/B",
            users: &[("u2", u2_lan, "aktif")],
            ..Pks::default()
        },
    ])
}

#[test]
fn each_failure_has_its_dwh_refusal() {
    let snap = two_agreements("127.0.0.3");
    let (a, _) = authenticator();
    let refusal = |user, pw, peer| {
        login(&a, &snap, user, pw, peer)
            .expect_err("refused")
            .refusal
    };
    assert_eq!(refusal("u1", "salah", "127.0.0.2"), Refusal::LoginFailed);
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
fn from_another_lan_the_answer_does_not_depend_on_the_password_or_the_user_id() {
    let snap = two_agreements("127.0.0.3");
    let (a, _) = authenticator();
    // From u2's LAN: u1 with its right password, with a wrong one, and a User ID nobody
    // has, all get the same answer, before any password work (no argon2: the same time).
    let answers: Vec<Rejection> = [
        ("u1", "rahasia-uji"),
        ("u1", "salah"),
        ("tidak-ada", "rahasia-uji"),
    ]
    .into_iter()
    .map(|(user_id, password)| {
        let c = Credentials {
            user_id,
            password,
            peer: ip("127.0.0.3"),
        };
        if let Ok(p) = a.precheck(&snap, c) {
            panic!("{user_id}/{password}: went on to {p:?}");
        }
        // The same login, counted as the gateway counts it.
        login(&a, &snap, user_id, password, "127.0.0.3").expect_err("refused")
    })
    .collect();
    assert_eq!(answers[0].refusal, Refusal::IpMismatch);
    assert!(answers.iter().all(|f| *f == answers[0]), "{answers:?}");
    // The three counted against u2's address (now locked), never against u1.
    assert_eq!(
        login(&a, &snap, "u2", "rahasia-uji", "127.0.0.3")
            .expect_err("the address is locked")
            .refusal,
        Refusal::LoginLocked
    );
    login(&a, &snap, "u1", "rahasia-uji", "127.0.0.2").expect("u1 is not locked");
}

#[test]
fn only_the_user_ids_own_lan_can_lock_it_out() {
    let snap = two_agreements("127.0.1.0/24");
    let (a, _) = authenticator();
    // A host in u2's LAN hammers u1: its own address is locked, u1 never is.
    for _ in 0..10 {
        let refusal = login(&a, &snap, "u1", "salah", "127.0.1.9")
            .expect_err("refused")
            .refusal;
        assert!(
            matches!(refusal, Refusal::IpMismatch | Refusal::LoginLocked),
            "{refusal:?}"
        );
    }
    assert_eq!(
        login(&a, &snap, "u2", "rahasia-uji", "127.0.1.9")
            .expect_err("the hammering address")
            .refusal,
        Refusal::LoginLocked
    );
    login(&a, &snap, "u1", "rahasia-uji", "127.0.0.2").expect("u1 is not locked");
    // Three wrong passwords from u2's own LAN lock u2, on every address of its LAN.
    for _ in 0..3 {
        login(&a, &snap, "u2", "salah", "127.0.1.7").expect_err("wrong");
    }
    let locked = login(&a, &snap, "u2", "rahasia-uji", "127.0.1.8").expect_err("locked");
    assert_eq!(locked.refusal, Refusal::LoginLocked);
}

#[test]
fn an_address_inside_nested_ip_lan_entries_of_one_user_id_is_known() {
    let snap = snapshot(&[Pks {
        users: &[(
            "u1",
            r#"10.0.0.0/16", "10.0.5.0/24", "10.0.4.0/23", "2001:db8::/48", "2001:db8:0:5::/64"#,
            "aktif",
        )],
        ..Pks::default()
    }]);
    let u1 = snap.user_by_id("u1");
    for inside in [
        "10.0.0.1",
        "10.0.4.9",
        "10.0.5.7",
        "10.0.9.1",
        "10.0.255.255",
        "2001:db8::1",
        "2001:db8:0:5::1",
        "2001:db8:0:9::1",
        "::ffff:10.0.9.1",
    ] {
        assert_eq!(snap.user_by_ip(ip(inside)), u1, "{inside}");
    }
    for outside in ["10.1.0.0", "9.255.255.255", "2001:db8:1::1"] {
        assert_eq!(snap.user_by_ip(ip(outside)), None, "{outside}");
    }
    let (a, _) = authenticator();
    login(&a, &snap, "u1", "rahasia-uji", "10.0.9.1").expect("inside the /16");
}

#[test]
fn a_network_cut_off_as_ipv4_mapped_ipv6_is_cut_off() {
    let files = vec![(PathBuf::from("0.toml"), Pks::default().text())];
    let vocab = Vocabulary::embedded();
    let set = PksSet::parse_all(&files, &vocab).unwrap_or_else(|e| panic!("{e}"));
    let blocked = vec!["::ffff:127.0.0.0/120".parse().expect("net")];
    let snap = Snapshot::build(vocab, set, engine(), blocked).unwrap_or_else(|e| panic!("{e}"));
    for peer in ["127.0.0.2", "::ffff:127.0.0.2"] {
        assert!(snap.ip_blocked(ip(peer)), "{peer}");
    }
    assert!(!snap.ip_blocked(ip("127.0.1.2")));
}

#[test]
fn debug_output_never_shows_a_password_a_hash_or_the_process_key() {
    let snap = snapshot(&[Pks::default()]);
    let (a, _) = authenticator();
    let c = Credentials {
        user_id: "u1",
        password: "rahasia-uji",
        peer: ip("127.0.0.2"),
    };
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("rahasia-uji") && shown.contains("u1"),
        "{shown}"
    );
    let Ok(Precheck::NeedsArgon2(slow)) = a.precheck(&snap, c) else {
        panic!("expected argon2")
    };
    let shown = format!("{slow:?}");
    assert!(!shown.contains("argon2"), "{shown}");
    a.verify_slow(&snap, c, slow).expect("logged in");
    let shown = format!("{a:?}");
    assert!(
        !shown.contains("argon2") && !shown.contains("key") && !shown.contains("digest"),
        "{shown}"
    );
}

fn decide(snap: &Snapshot, user: &str, action: Action, channel: Channel, on: &str) -> Decision {
    let r = snap.user_by_id(user).expect("user");
    let peer = snap.user(r).ip_lan[0].addr();
    let req = Request {
        user: r,
        action,
        channel,
        day: day(on),
        peer,
        sam_valid: false,
    };
    let cached = authorize(snap, &req);
    // The cache answers exactly what Cedar answers.
    let fresh = crate::decide(snap, &req, snap.ip_blocked(peer));
    assert_eq!(*cached, fresh);
    assert_eq!(
        whole_set(snap, &req),
        (fresh.allowed(), sorted(fresh.policies.clone())),
        "slice vs whole set"
    );
    if fresh.allowed() {
        assert_eq!(
            fresh.elements,
            each_element(snap, &req),
            "by class vs one by one"
        );
    }
    fresh
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The access decision asked of the whole policy set rather than the action's slice.
fn whole_set(snap: &Snapshot, req: &Request) -> (bool, Vec<String>) {
    let engine = snap.engine();
    let context = engine.context(&facts(snap, req)).expect("context");
    let a = engine
        .access(
            snap.entities(),
            &snap.user(req.user).id,
            req.action.as_str(),
            &snap.pks(req.user).nomor,
            &context,
            true,
        )
        .expect("whole set");
    (a.allowed, sorted(a.policies))
}

fn facts(snap: &Snapshot, req: &Request) -> crate::engine::Facts {
    crate::engine::Facts {
        day: req.day,
        channel: req.channel,
        peer: req.peer,
        ip_blocked: snap.ip_blocked(req.peer),
        sam_valid: req.sam_valid,
    }
}

/// The elements Cedar allows when asked about every element on its own, the slow path the
/// per-class shortcut must agree with.
fn each_element(snap: &Snapshot, req: &Request) -> gerbang_core::ElementSet {
    let engine = snap.engine();
    let context = engine.context(&facts(snap, req)).expect("context");
    engine.readable(
        snap.entities(),
        snap.vocabulary(),
        &snap.user(req.user).id,
        snap.pks(req.user),
        &context,
        false,
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
        (d.refusal, d.rule.as_str()),
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
    let snap = Snapshot::build(vocab, set, engine(), Vec::new()).expect("snapshot");
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
        (d.refusal, d.rule.as_str()),
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
        (d.refusal, d.rule.as_str()),
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
        (d.refusal, d.rule.as_str()),
        (Some(Refusal::NotPermitted), "default-deny")
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

#[test]
fn without_approval_protected_elements_never_pass() {
    let snap = snapshot(&[Pks {
        elemen: r#"["NIK", "NAMA_LGKP"]"#,
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
        vec!["NIK", "NAMA_LGKP"]
    );
    assert_eq!(d.policies, vec!["lookup-by-nik"]);
}

#[test]
fn a_blocked_network_is_refused_by_the_closed_network_rule() {
    let vocab = Vocabulary::embedded();
    let set = PksSet::parse_all(&[(PathBuf::from("a.toml"), Pks::default().text())], &vocab)
        .expect("valid");
    let snap = Snapshot::build(
        vocab,
        set,
        engine(),
        vec!["127.0.0.0/24".parse().expect("net")],
    )
    .expect("snapshot");
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2026-06-01",
    );
    assert_eq!(
        (d.refusal, d.rule.as_str()),
        (Some(Refusal::IpMismatch), "closed-network")
    );
}

#[test]
fn portal_writes_and_exports_are_always_refused() {
    let snap = snapshot(&[Pks {
        metode: r#"["web_portal"]"#,
        ..Pks::default()
    }]);
    assert!(
        decide(
            &snap,
            "u1",
            Action::PortalRead,
            Channel::WebPortal,
            "2026-06-01"
        )
        .allowed()
    );
    for action in [Action::PortalWrite, Action::PortalExport] {
        let d = decide(&snap, "u1", action, Channel::WebPortal, "2026-06-01");
        assert_eq!(d.rule, "portal-read-only", "{action:?}");
    }
}

#[test]
fn card_reader_requests_need_a_validated_sam() {
    let snap = snapshot(&[Pks {
        metode: r#"["card_reader"]"#,
        ..Pks::default()
    }]);
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::CardReader,
        "2026-06-01",
    );
    assert_eq!(
        (d.refusal, d.rule.as_str()),
        (Some(Refusal::CardReaderUnavailable), "card-reader-sam")
    );
    let r = snap.user_by_id("u1").expect("user");
    let req = Request {
        user: r,
        action: Action::CallNik,
        channel: Channel::CardReader,
        day: day("2026-06-01"),
        peer: ip("127.0.0.2"),
        sam_valid: true,
    };
    assert!(authorize(&snap, &req).allowed());
}

#[test]
fn the_number_of_policies_does_not_grow_with_agreements() {
    let nomors: Vec<String> = (0..50).map(|i| format!("{i}/X")).collect();
    let ids: Vec<String> = (0..50).map(|i| format!("u{i}")).collect();
    let ips: Vec<String> = (0..50).map(|i| format!("127.0.1.{i}")).collect();
    let users: Vec<[(&str, &str, &str); 1]> = (0..50)
        .map(|i| [(ids[i].as_str(), ips[i].as_str(), "aktif")])
        .collect();
    let many: Vec<Pks> = (0..50)
        .map(|i| Pks {
            nomor: &nomors[i],
            users: &users[i],
            ..Pks::default()
        })
        .collect();
    // The rules as written: one `@id` per policy in `policies/*.cedar`, counted from the
    // text, not by the engine.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let written: usize = std::fs::read_dir(&dir)
        .expect("policies")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("policy file");
            text.lines()
                .filter(|l| l.trim_start().starts_with("@id("))
                .count()
        })
        .sum();
    assert!(written > 10, "{written} rules in {}", dir.display());
    let snap = snapshot(&many);
    assert_eq!(snap.engine().policy_count(), written);
    assert_eq!(snap.engine().policies().policies().count(), written);
    assert_eq!(snapshot(&many[..1]).engine().policy_count(), written);
    assert!(
        decide(
            &snap,
            "u49",
            Action::CallNik,
            Channel::WebService,
            "2026-06-01"
        )
        .allowed()
    );
}

#[test]
fn a_rule_that_does_not_type_check_is_refused_with_file_and_line() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let schema = std::fs::read_to_string(dir.join(SCHEMA_FILE)).expect("schema");
    let parse = |name: &str, text: &str| {
        PolicyEngine::parse(
            &dir.join(SCHEMA_FILE),
            &schema,
            &[(PathBuf::from(name), text.to_string())],
        )
    };
    let bad = "// a comment\n@id(\"typo\")\npermit (principal, action in Gerbang::Action::\"Lookup\", resource)\nwhen { resource.statuz == \"aktif\" };\n";
    let shown = parse("policies/typo.cedar", bad)
        .expect_err("strict validation")
        .to_string();
    assert!(shown.contains("policies/typo.cedar:4:"), "{shown}");
    assert!(shown.contains("statuz"), "{shown}");
    let shown = parse("x.cedar", "permit (principal, action, resource);\n")
        .expect_err("no id")
        .to_string();
    assert!(shown.contains("@id"), "{shown}");
    let shown = parse(
        "t.cedar",
        "// a template\n@id(\"t\")\npermit (principal == ?principal, action, resource);\n",
    )
    .expect_err("template")
    .to_string();
    assert!(
        shown.contains("t.cedar") && shown.contains("line 3") && shown.contains("template"),
        "{shown}"
    );
    let shown = parse(
        "y.cedar",
        "@id(\"x\")\npermit (principal, action, resource) when { ;\n",
    )
    .expect_err("syntax")
    .to_string();
    assert!(shown.contains("y.cedar:2:"), "{shown}");
}

#[test]
fn a_rule_naming_an_element_is_decided_element_by_element() {
    // Two elements of the same class (agreed, not protected), one named in the scope and
    // one in a condition: the class shortcut would wrongly treat them like NIK.
    let engine = engine_with(
        "@id(\"no-name\")\nforbid (principal, action == Gerbang::Action::\"ReadElement\", resource == Gerbang::Element::\"NAMA_LGKP\");\n\
         @id(\"no-address\")\nforbid (principal, action == Gerbang::Action::\"ReadElement\", resource)\nwhen { resource == Gerbang::Element::\"ALAMAT_SEKARANG\" };\n",
    );
    assert!(engine.names_elements());
    assert!(
        !self::engine().names_elements(),
        "the shipped rules name no element"
    );
    let snap = snapshot_with(engine, &Pks::default());
    let d = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2026-06-01",
    );
    assert!(d.allowed(), "{d:?}");
    let names = snap.vocabulary().names(d.elements);
    assert!(names.contains(&"NIK"), "{names:?}");
    assert!(!names.contains(&"NAMA_LGKP"), "{names:?}");
    assert!(!names.contains(&"ALAMAT_SEKARANG"), "{names:?}");
}

#[test]
fn a_schema_out_of_step_with_the_gateway_requests_is_refused_at_load() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let schema = std::fs::read_to_string(dir.join(SCHEMA_FILE)).expect("schema");
    // A context attribute the gateway does not send.
    let edited = schema.replace("sam_valid: Bool,", "sam_valid: Bool,\n    tier: Long,");
    assert_ne!(edited, schema);
    let shown = PolicyEngine::parse(&dir.join(SCHEMA_FILE), &edited, &[])
        .expect_err("context out of step")
        .to_string();
    assert!(shown.contains("gerbang.cedarschema"), "{shown}");
    assert!(
        shown.contains("does not fit the gateway's CallNik request"),
        "{shown}"
    );
    // An action the gateway asks about, removed.
    let edited = schema.replace("action SubmitBalikan in [Lookup] appliesTo { principal: User, resource: Pks, context: RequestContext };", "");
    assert_ne!(edited, schema);
    let shown = PolicyEngine::parse(&dir.join(SCHEMA_FILE), &edited, &[])
        .expect_err("action missing")
        .to_string();
    assert!(shown.contains("SubmitBalikan"), "{shown}");
    assert!(PolicyEngine::parse(&dir.join(SCHEMA_FILE), &schema, &[]).is_ok());
}

/// The shipped rules plus `extra` as one more policy file.
fn engine_with(extra: &str) -> PolicyEngine {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("policy file");
    let mut files: Vec<(PathBuf, String)> = ["akses.cedar", "elemen.cedar", "larangan.cedar"]
        .iter()
        .map(|n| (dir.join(n), read(n)))
        .collect();
    files.push((PathBuf::from("tambahan.cedar"), extra.to_string()));
    PolicyEngine::parse(&dir.join(SCHEMA_FILE), &read(SCHEMA_FILE), &files)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn snapshot_with(engine: PolicyEngine, pks: &Pks<'_>) -> Snapshot {
    let vocab = Vocabulary::embedded();
    let set = PksSet::parse_all(&[(PathBuf::from("0.toml"), pks.text())], &vocab)
        .unwrap_or_else(|e| panic!("{e}"));
    Snapshot::build(vocab, set, Arc::new(engine), Vec::new()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn element_rules_that_read_the_request_are_decided_per_request() {
    assert!(
        self::engine().elements_by_agreement(),
        "the shipped element rules read only the agreement"
    );
    // No element at all through the portal: the answer now depends on the channel, so it
    // cannot be decided once per agreement.
    let engine = engine_with(
        "@id(\"no-portal-elements\")\nforbid (principal, action == Gerbang::Action::\"ReadElement\", resource)\nwhen { context.channel == \"web_portal\" };\n",
    );
    assert!(!engine.elements_by_agreement());
    let snap = snapshot_with(
        engine,
        &Pks {
            metode: r#"["web_service", "web_portal"]"#,
            ..Pks::default()
        },
    );
    let api = decide(
        &snap,
        "u1",
        Action::CallNik,
        Channel::WebService,
        "2026-06-01",
    );
    assert!(api.allowed() && api.elements.len() > 1, "{api:?}");
    let portal = decide(
        &snap,
        "u1",
        Action::PortalRead,
        Channel::WebPortal,
        "2026-06-01",
    );
    assert!(portal.allowed(), "{portal:?}");
    assert!(portal.elements.is_empty(), "{portal:?}");
    // A rule on the User ID's own status reads more than the agreement too.
    let engine = engine_with(
        "@id(\"by-status\")\nforbid (principal, action == Gerbang::Action::\"ReadElement\", resource)\nwhen { principal.status != \"aktif\" };\n",
    );
    assert!(!engine.elements_by_agreement());
    // And one that reads the agreement through the principal does not.
    let engine = engine_with(
        "@id(\"by-agreement\")\nforbid (principal, action == Gerbang::Action::\"ReadElement\", resource)\nwhen { principal.pks.pengguna.asing_mayoritas && resource.dilindungi };\n",
    );
    assert!(engine.elements_by_agreement());
}

#[test]
fn a_rule_on_the_peer_address_is_decided_per_address() {
    let shipped = self::engine();
    assert!(
        !shipped.reads_peer(),
        "the shipped rules do not read the address"
    );
    let engine = engine_with(
        "@id(\"not-from-branch\")\nforbid (principal, action, resource)\nwhen { context.peer_ip.isInRange(ip(\"10.1.2.0/24\")) };\n",
    );
    assert!(engine.reads_peer());
    let snap = snapshot_with(
        engine,
        &Pks {
            users: &[("u1", "10.1.0.0/16", "aktif")],
            ..Pks::default()
        },
    );
    let user = snap.user_by_id("u1").expect("user");
    let from = |peer: &str| Request {
        user,
        action: Action::CallNik,
        channel: Channel::WebService,
        day: day("2026-06-01"),
        peer: ip(peer),
        sam_valid: false,
    };
    // The first answer is cached; it must not stand for another address.
    assert!(authorize(&snap, &from("10.1.1.5")).allowed());
    let branch = authorize(&snap, &from("10.1.2.5"));
    assert_eq!(branch.rule, "not-from-branch", "{branch:?}");
    assert!(authorize(&snap, &from("10.1.1.6")).allowed());
    assert!(!authorize(&snap, &from("10.1.2.5")).allowed());
    // Reading the context whole counts as reading the address.
    let engine = engine_with(
        "@id(\"whole\")\nforbid (principal, action, resource)\nwhen { context == {\"today\": 1, \"channel\": \"x\", \"peer_ip\": ip(\"10.1.2.5\"), \"ip_blocked\": false, \"sam_valid\": false} };\n",
    );
    assert!(engine.reads_peer());
    let engine = engine_with(
        "@id(\"channel-only\")\nforbid (principal, action, resource)\nwhen { context.channel == \"x\" };\n",
    );
    assert!(!engine.reads_peer());
}

#[test]
fn agreements_that_do_not_fit_the_schema_are_refused() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let schema = std::fs::read_to_string(dir.join(SCHEMA_FILE)).expect("schema");
    let files: Vec<(PathBuf, String)> = ["akses.cedar", "elemen.cedar", "larangan.cedar"]
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(n)).expect("policy file");
            (dir.join(n), text)
        })
        .collect();
    // A User ID attribute the gateway does not provide (the rules do not read it, so they
    // still type-check): every User ID entity is out of step with the schema.
    for (entity, edited) in [
        (
            "User",
            schema.replace(
                "    pks: Pks,\n    // aktif | nonaktif",
                "    pks: Pks,\n    tingkat: Long,\n    // aktif | nonaktif",
            ),
        ),
        (
            "Pks",
            schema.replace("    nomor: String,", "    nomor: String,\n    nilai: Long,"),
        ),
    ] {
        assert_ne!(edited, schema, "{entity}");
        let engine = PolicyEngine::parse(&dir.join(SCHEMA_FILE), &edited, &files)
            .unwrap_or_else(|e| panic!("{e}"));
        let vocab = Vocabulary::embedded();
        let set = PksSet::parse_all(&[(PathBuf::from("0.toml"), Pks::default().text())], &vocab)
            .unwrap_or_else(|e| panic!("{e}"));
        let shown = Snapshot::build(vocab, set, Arc::new(engine), Vec::new())
            .expect_err("out of step with the schema")
            .to_string();
        assert!(shown.contains("do not fit the schema"), "{entity}: {shown}");
    }
}

#[test]
fn password_checks_in_pooled_memory_agree_with_argon2() {
    use argon2::{PasswordHasher, PasswordVerifier, password_hash::SaltString};
    let (a, _) = authenticator();
    let salt = SaltString::encode_b64(b"garam-sintetis-16").expect("salt");
    let small = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(8192, 1, 1, None).expect("params"),
    )
    .hash_password(b"kata-sandi", &salt)
    .expect("hash")
    .to_string();
    let hashes = [hash().to_string(), small];
    // Twice over, so the second round reuses the first round's memory.
    for _ in 0..2 {
        for phc in &hashes {
            for password in ["rahasia-uji", "kata-sandi", "", "salah"] {
                let expected = argon2::Argon2::default()
                    .verify_password(
                        password.as_bytes(),
                        &argon2::PasswordHash::new(phc).expect("phc"),
                    )
                    .is_ok();
                assert_eq!(
                    a.verify(password.as_bytes(), phc),
                    expected,
                    "{phc} {password:?}"
                );
            }
        }
    }
    assert!(!a.verify(b"rahasia-uji", "$argon2id$v=19$bukan-phc"));
    assert!(!a.verify(b"", ""));
}

//! A reload that reuses what did not change must decide exactly as a load from scratch.
//! Each test edits a configuration on disk, reloads it from the running snapshot, loads it
//! again from nothing, and holds the two side by side: the Cedar entities, the agreements,
//! the elements decided per agreement, and every decision for every User ID.

use std::path::PathBuf;
use std::time::SystemTime;

use gerbang_core::{Channel, Config};

use super::{day, hash};
use crate::*;

/// One PKS file. `extra` goes in the file's top table.
#[derive(Clone)]
struct Agreement {
    nomor: String,
    pengguna: String,
    jenis: &'static str,
    elemen: &'static str,
    metode: &'static str,
    kunci: &'static str,
    extra: String,
    users: Vec<(String, String, &'static str)>,
}

impl Agreement {
    fn new(i: usize, users: usize) -> Self {
        Self {
            nomor: format!("{i}/UJI"),
            pengguna: format!("p-{i}"),
            jenis: "opd",
            elemen: r#"["NIK", "NAMA_LGKP", "ALAMAT_SEKARANG"]"#,
            metode: r#"["web_service", "web_portal"]"#,
            kunci: r#"["NIK", "NO_KK"]"#,
            extra: String::new(),
            users: (0..users)
                .map(|u| (format!("u{i}_{u}"), format!("10.0.{i}.{}", u + 1), "aktif"))
                .collect(),
        }
    }

    fn text(&self) -> String {
        let mut s = format!(
            "nomor = \"{}\"\npengguna = \"{}\"\nnama_pengguna = \"Uji\"\njenis_pengguna = \"{}\"\ntingkat = \"pusat\"\ntujuan = \"uji\"\nelemen_data = {}\nmetode_akses = {}\nkunci_akses = {}\nmulai = 2025-01-01\nsampai = 2027-12-31\nstatus = \"aktif\"\n{}\n",
            self.nomor, self.pengguna, self.jenis, self.elemen, self.metode, self.kunci, self.extra
        );
        for (id, ip, status) in &self.users {
            s += &format!(
                "[[user]]\nid = \"{id}\"\npassword_hash = \"{}\"\nip_lan = [\"{ip}\"]\nkuota_harian = 75\nstatus = \"{status}\"\n",
                hash()
            );
        }
        s
    }
}

/// A configuration directory: `pks/`, `sanksi.toml`, the shipped policies copied to
/// `policies/` (so a test can edit them), and a candidate copy in `shadow/`.
struct Setup {
    dir: tempfile::TempDir,
    agreements: Vec<Agreement>,
}

impl Setup {
    /// Twelve agreements of three User IDs, of every kind the rules tell apart: law
    /// enforcement, foreign-majority BHI, Minister's approval, two agreements of one
    /// Pengguna (whose entity is taken across both), a deactivated User ID.
    fn new() -> Self {
        Self::with(12)
    }

    /// `n` (at least 12) agreements, as [`Self::new`].
    fn with(n: usize) -> Self {
        let mut agreements: Vec<Agreement> = (0..n).map(|i| Agreement::new(i, 3)).collect();
        agreements[1].kunci = r#"["NIK", "ELEMEN"]"#;
        agreements[1].extra = "penegak_hukum = true".into();
        agreements[2].jenis = "bhi";
        agreements[2].extra = "kepemilikan_asing_mayoritas = true".into();
        agreements[3].elemen = r#"["NIK", "PNYDNG_CACAT"]"#;
        agreements[3].extra = "persetujuan_menteri = [\"PNYDNG_CACAT\"]".into();
        // Agreements 4 and 5 belong to one Pengguna, both law enforcement.
        for a in &mut agreements[4..6] {
            a.pengguna = "p-bersama".into();
            a.kunci = r#"["NIK", "ELEMEN"]"#;
            a.extra = "penegak_hukum = true".into();
        }
        agreements[6].users[1].2 = "nonaktif";
        let setup = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            agreements,
        };
        let root = setup.dir.path();
        std::fs::create_dir(root.join("pks")).expect("pks dir");
        let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        for copy in ["policies", "shadow"] {
            std::fs::create_dir(root.join(copy)).expect("policy dir");
            for name in [SCHEMA_FILE, "akses.cedar", "elemen.cedar", "larangan.cedar"] {
                std::fs::copy(shipped.join(name), root.join(copy).join(name)).expect("copy");
            }
        }
        setup.write("sanksi.toml", "");
        setup.write(
            "gerbang.toml",
            "[listen]\naddress = \"127.0.0.1:8443\"\nplaintext = true\n\n[upstream]\naddress = \"127.0.0.1:9080\"\n\n[pks]\ndir = \"pks\"\n\n[policy]\ndir = \"policies\"\nsanksi = \"sanksi.toml\"\nshadow_dir = \"shadow\"\n",
        );
        for i in 0..setup.agreements.len() {
            setup.save(i);
        }
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write");
    }

    fn file(i: usize) -> String {
        format!("pks/{i:02}.toml")
    }

    fn save(&self, i: usize) {
        self.write(&Self::file(i), &self.agreements[i].text());
    }

    fn config(&self) -> Config {
        Config::load(&self.path("gerbang.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn load(&self) -> Snapshot {
        load_snapshot(&self.config()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reloads from `running`, checks the result against a load from scratch, and returns it.
    fn reload(&self, running: &Snapshot) -> Snapshot {
        let reloaded = reload_snapshot(&self.config(), running).unwrap_or_else(|e| panic!("{e}"));
        assert_same(&reloaded, &self.load());
        reloaded
    }
}

/// Every decision the two snapshots can make, and what they are built from, are the same.
fn assert_same(a: &Snapshot, b: &Snapshot) {
    same_view(a, b);
    match (a.shadow(), b.shadow()) {
        (Some(a), Some(b)) => same_view(a, b),
        (None, None) => {}
        _ => panic!("one snapshot has shadow policies, the other not"),
    }
    assert_eq!(a.sanctions().entries, b.sanctions().entries);
}

fn same_view(a: &Snapshot, b: &Snapshot) {
    assert_eq!(a.engine().hash(), b.engine().hash());
    assert!(
        a.entities().deep_eq(b.entities()),
        "the Cedar entities differ"
    );
    let nomors =
        |s: &Snapshot| -> Vec<String> { s.agreements().iter().map(|p| p.nomor.clone()).collect() };
    assert_eq!(nomors(a), nomors(b));
    assert_eq!(a.agreements(), b.agreements());
    assert_eq!(a.user_count(), b.user_count());
    for pks in b.agreements() {
        for user in &pks.users {
            let (ra, rb) = (
                a.user_by_id(&user.id).expect("user in a"),
                b.user_by_id(&user.id).expect("user in b"),
            );
            assert_eq!(a.agreement_elements(ra), b.agreement_elements(rb));
            let peer = user.ip_lan[0].addr();
            assert_eq!(a.user_by_ip(peer), Some(ra));
            assert_eq!(b.user_by_ip(peer), Some(rb));
            for action in Action::ALL {
                for channel in [Channel::WebService, Channel::WebPortal, Channel::CardReader] {
                    for on in ["2024-12-31", "2026-06-01"] {
                        let req = |user| Request {
                            user,
                            action,
                            channel,
                            day: day(on),
                            peer,
                            sam_valid: false,
                        };
                        let (da, db) = (
                            normal(crate::decide(a, &req(ra), a.ip_blocked(peer))),
                            normal(crate::decide(b, &req(rb), b.ip_blocked(peer))),
                        );
                        assert_eq!(da, db, "{} {action:?} {channel:?} {on}", user.id);
                    }
                }
            }
        }
    }
}

/// The decision for a User ID's request from its own address, through the web service.
fn call(snap: &Snapshot, user: &str, action: Action) -> Decision {
    let r = snap.user_by_id(user).expect("user");
    let peer = snap.user(r).ip_lan[0].addr();
    let req = Request {
        user: r,
        action,
        channel: Channel::WebService,
        day: day("2026-06-01"),
        peer,
        sam_valid: false,
    };
    crate::decide(snap, &req, snap.ip_blocked(peer))
}

/// Cedar names the deciding policies in no set order (two loads from scratch differ too),
/// and an allowed decision's `rule` is the first of them: both are put in order.
fn normal(mut d: Decision) -> Decision {
    d.policies.sort();
    if d.allowed() {
        d.rule = d.policies.first().cloned().unwrap_or_default();
    }
    d
}

#[test]
fn nothing_changed_parses_nothing_and_shares_everything() {
    let setup = Setup::new();
    let first = setup.load();
    assert_eq!(first.reuse().files_parsed, 12);
    assert!(!first.reuse().entities_updated);
    let second = setup.reload(&first);
    assert_eq!(second.reuse().files_parsed, 0);
    assert!(second.reuse().entities_updated);
    assert!(second.shadow().is_some_and(|s| s.reuse().entities_updated));
    for (a, b) in first.agreements().iter().zip(second.agreements()) {
        assert!(std::sync::Arc::ptr_eq(a, b), "{} was copied", a.nomor);
    }
}

#[test]
fn an_edited_file_is_parsed_again_and_its_entities_replaced() {
    let mut setup = Setup::new();
    let running = setup.load();
    // A User ID deactivated, one added, elements narrowed.
    setup.agreements[7].users[0].2 = "nonaktif";
    setup.agreements[7]
        .users
        .push(("u7_new".into(), "10.0.7.99".into(), "aktif"));
    setup.agreements[7].elemen = r#"["NIK"]"#;
    setup.save(7);
    let reloaded = setup.reload(&running);
    assert_eq!(reloaded.reuse().files_parsed, 1);
    assert!(reloaded.reuse().entities_updated);
    let d = |snap: &Snapshot, user: &str| call(snap, user, Action::CallNik);
    assert!(d(&running, "u7_0").allowed());
    assert!(!d(&reloaded, "u7_0").allowed());
    assert!(d(&reloaded, "u7_new").allowed());
    assert_eq!(
        reloaded.vocabulary().names(d(&reloaded, "u7_1").elements),
        vec!["NIK"]
    );
}

#[test]
fn a_changed_pengguna_changes_its_other_agreements_too() {
    let mut setup = Setup::new();
    let running = setup.load();
    let search = |snap: &Snapshot| call(snap, "u5_0", Action::SearchByElements).allowed();
    assert!(search(&running));
    // Agreement 4 is no longer law enforcement: the Pengguna no longer is, so agreement 5
    // (unchanged on disk) may no longer search either.
    setup.agreements[4].kunci = r#"["NIK"]"#;
    setup.agreements[4].extra = String::new();
    setup.save(4);
    let reloaded = setup.reload(&running);
    assert_eq!(reloaded.reuse().files_parsed, 1);
    assert!(reloaded.reuse().entities_updated);
    assert!(!search(&reloaded));
}

#[test]
fn added_removed_and_moved_agreements_and_user_ids() {
    let mut setup = Setup::new();
    let mut running = setup.load();
    // Added: one file of a new Pengguna, one of an existing one.
    setup.agreements.push(Agreement::new(12, 2));
    let mut more = Agreement::new(13, 1);
    more.pengguna = "p-0".into();
    setup.agreements.push(more);
    setup.save(12);
    setup.save(13);
    running = setup.reload(&running);
    assert_eq!(running.reuse().files_parsed, 2);
    assert!(running.reuse().entities_updated);
    assert!(running.user_by_id("u12_1").is_some());
    // Removed: a whole file, and with it its Pengguna.
    std::fs::remove_file(setup.path(&Setup::file(9))).expect("remove");
    running = setup.reload(&running);
    assert_eq!(running.reuse().files_parsed, 0);
    assert!(running.reuse().entities_updated);
    assert!(running.user_by_id("u9_0").is_none());
    // Moved: a User ID from one agreement to another, both files edited.
    let moved = setup.agreements[10].users.remove(2);
    setup.agreements[11].users.push(moved);
    setup.save(10);
    setup.save(11);
    running = setup.reload(&running);
    assert_eq!(running.reuse().files_parsed, 2);
    let r = running.user_by_id("u10_2").expect("moved user");
    assert_eq!(running.pks(r).nomor, "11/UJI");
    // And renamed: the same content under another name is parsed again.
    std::fs::rename(setup.path(&Setup::file(8)), setup.path("pks/99.toml")).expect("rename");
    running = setup.reload(&running);
    assert_eq!(running.reuse().files_parsed, 1);
}

#[test]
fn a_changed_file_is_parsed_again_even_with_its_old_modification_time() {
    let mut setup = Setup::new();
    let running = setup.load();
    let path = setup.path(&Setup::file(3));
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    setup.agreements[3].users[2].2 = "nonaktif";
    setup.save(3);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(modified))
        .expect("set mtime");
    assert_eq!(
        std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
        Some(modified)
    );
    assert!(modified <= SystemTime::now());
    let reloaded = setup.reload(&running);
    assert_eq!(reloaded.reuse().files_parsed, 1);
    let r = reloaded.user_by_id("u3_2").expect("user");
    assert_eq!(reloaded.user(r).status, gerbang_core::UserStatus::Nonaktif);
}

#[test]
fn sanctions_and_the_block_list_apply_without_parsing_any_file() {
    let setup = Setup::new();
    let running = setup.load();
    let sanction = |id: &str, jenis: &str, sasaran: &str, more: &str| {
        format!(
            "[[sanksi]]\nid = \"{id}\"\njenis = \"{jenis}\"\nsasaran = \"{sasaran}\"\n{more}alasan = \"uji\"\n"
        )
    };
    setup.write(
        "sanksi.toml",
        &[
            sanction("S1", "nonaktifkan_user", "u0_0", ""),
            sanction("S2", "bekukan_pks", "7/UJI", ""),
            sanction("S3", "kurangi_kuota", "u3_1", "kuota_harian = 5\n"),
            sanction("S4", "putus_jaringan", "10.0.11.0/24", ""),
        ]
        .concat(),
    );
    let sanctioned = setup.reload(&running);
    assert_eq!(sanctioned.reuse().files_parsed, 0);
    assert!(sanctioned.reuse().entities_updated);
    let d = |snap: &Snapshot, user: &str| call(snap, user, Action::CallNik);
    assert!(!d(&sanctioned, "u0_0").allowed());
    assert!(d(&sanctioned, "u0_1").allowed());
    assert!(!d(&sanctioned, "u7_0").allowed());
    assert!(!d(&sanctioned, "u11_0").allowed());
    let r = sanctioned.user_by_id("u3_1").expect("user");
    assert_eq!(sanctioned.user(r).kuota_harian.get(), 5);
    // The parsed agreements are kept unsanctioned: lifting the sanctions restores them.
    setup.write("sanksi.toml", "");
    let lifted = setup.reload(&sanctioned);
    assert_eq!(lifted.reuse().files_parsed, 0);
    assert!(d(&lifted, "u0_0").allowed() && d(&lifted, "u7_0").allowed());
    assert_eq!(lifted.agreements(), running.agreements());
}

#[test]
fn changed_rules_or_vocabulary_build_everything_again() {
    let setup = Setup::new();
    let running = setup.load();
    let extra = "@id(\"no-nama\")\nforbid (principal, action == Gerbang::Action::\"ReadElement\", resource == Gerbang::Element::\"NAMA_LGKP\");\n";
    setup.write("policies/tambahan.cedar", extra);
    let reloaded = setup.reload(&running);
    assert_eq!(reloaded.reuse().files_parsed, 0);
    assert!(!reloaded.reuse().entities_updated);
    assert_ne!(reloaded.engine().hash(), running.engine().hash());
    // The shadow rules did not change: their snapshot is still updated in place.
    assert!(
        reloaded
            .shadow()
            .is_some_and(|s| s.reuse().entities_updated)
    );
    // A vocabulary of its own (the embedded one, relabelled): every file parsed again.
    let vocab = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/elemen.toml"),
    )
    .expect("vocabulary");
    let edited = vocab.replacen("label = \"", "label = \"(uji) ", 1);
    assert_ne!(vocab, edited);
    setup.write("elemen.toml", &edited);
    let config = std::fs::read_to_string(setup.path("gerbang.toml")).expect("config");
    setup.write(
        "gerbang.toml",
        &config.replace("[pks]\n", "[pks]\nvocabulary = \"elemen.toml\"\n"),
    );
    let relabelled = setup.reload(&reloaded);
    assert_eq!(relabelled.reuse().files_parsed, 12);
    assert!(!relabelled.reuse().entities_updated);
}

#[test]
fn an_invalid_edit_is_refused_with_file_and_line_and_a_later_fix_loads() {
    let mut setup = Setup::new();
    let running = setup.load();
    // A User ID granted twice: only the set-wide check sees it, on a file not parsed again.
    let twice = setup.agreements[0].users[0].clone();
    setup.agreements[6].users.push(twice);
    setup.save(6);
    let errors = reload_snapshot(&setup.config(), &running)
        .expect_err("duplicate User ID")
        .to_string();
    assert!(
        errors.contains("06.toml:") && errors.contains("u0_0"),
        "{errors}"
    );
    // A typo in a field.
    setup.agreements[6].users.pop();
    setup.agreements[6].extra = "kuota_harian_penguna = 5".into();
    setup.save(6);
    let errors = reload_snapshot(&setup.config(), &running)
        .expect_err("unknown field")
        .to_string();
    assert!(errors.contains("06.toml:13:"), "{errors}");
    // Put back as it was: the content is the running set's, so nothing is parsed.
    setup.agreements[6].extra = String::new();
    setup.save(6);
    let fixed = setup.reload(&running);
    assert_eq!(fixed.reuse().files_parsed, 0);
    assert_eq!(fixed.agreements(), running.agreements());
}

#[test]
fn many_changes_build_the_entities_again() {
    let mut setup = Setup::with(25);
    let running = setup.load();
    // Every User ID deactivated: more entities to replace than an update is worth.
    for i in 0..setup.agreements.len() {
        for u in &mut setup.agreements[i].users {
            u.2 = "nonaktif";
        }
        setup.save(i);
    }
    let reloaded = setup.reload(&running);
    assert_eq!(reloaded.reuse().files_parsed, 25);
    assert!(!reloaded.reuse().entities_updated);
    // A few of them again: within what an update is worth.
    for i in 0..3 {
        for u in &mut setup.agreements[i].users {
            u.2 = "aktif";
        }
        setup.save(i);
    }
    let again = setup.reload(&reloaded);
    assert_eq!(again.reuse().files_parsed, 3);
    assert!(again.reuse().entities_updated);
}

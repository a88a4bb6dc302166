//! The semantic difference between two loaded sets (PKS files, vocabulary, rules, block
//! list and sanctions): per Pengguna and User ID, which actions over which channels and
//! which elements are gained or lost, and which quota, status and validity changed.
//! Computed from what the rules decide over the loaded entities (`gerbang_policy::grant`),
//! not from the text of the files, so an edit of a rule shows whom it touches. Whether the
//! rule files themselves changed meaning is SymCC's equivalence check (`equivalence`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::NaiveDate;
use gerbang_core::{Pks, PksStatus, UserStatus};
use gerbang_policy::{Grant, Snapshot, UserRef, grant};
use ipnet::IpNet;

use crate::equivalence::RulesChange;

/// A value that changed: `field before → after`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

impl std::fmt::Display for FieldChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} → {}", self.field, self.before, self.after)
    }
}

/// Whether something is new, gone, or in both sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Added,
    Removed,
    Kept,
}

/// What changed in one agreement's own terms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgreementChange {
    pub nomor: String,
    pub pengguna: String,
    pub presence: Presence,
    /// Status, validity, access methods, keys, elements, approvals, the Pengguna's facts
    /// and daily cap, as written in the file (after sanctions).
    pub fields: Vec<FieldChange>,
}

/// What changed for one User ID.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserChange {
    pub user: String,
    pub pengguna: String,
    pub pks: String,
    pub presence: Presence,
    /// Actions now permitted, as `CallNik over web_service`.
    pub gained: Vec<String>,
    pub lost: Vec<String>,
    /// Elements its answers may now carry, or no longer.
    pub elements_gained: Vec<String>,
    pub elements_lost: Vec<String>,
    /// It could ask for something before and can ask for nothing now (a frozen or ended
    /// agreement, a deactivated User ID, a channel taken away).
    pub lost_all: bool,
    /// Status, daily quota, IP LAN.
    pub fields: Vec<FieldChange>,
}

impl UserChange {
    fn is_empty(&self) -> bool {
        self.presence == Presence::Kept
            && self.gained.is_empty()
            && self.lost.is_empty()
            && self.elements_gained.is_empty()
            && self.elements_lost.is_empty()
            && self.fields.is_empty()
    }
}

/// A blocked network added or lifted, and the User IDs registered inside it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetworkChange {
    pub network: String,
    /// `true`: now cut off; `false`: reconnected.
    pub blocked: bool,
    pub users: Vec<String>,
}

/// The whole difference.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diff {
    /// The WIB day the grants were decided for.
    pub day: NaiveDate,
    pub rules: RulesChange,
    pub agreements: Vec<AgreementChange>,
    pub users: Vec<UserChange>,
    pub networks: Vec<NetworkChange>,
    /// Why some User IDs' grants were not compared, if so.
    pub not_compared: Option<String>,
    /// One line: "1 PKS: status aktif → dibekukan; 3 User IDs of 1 Pengguna gain ALAMAT".
    pub summary: String,
}

/// Compares two loaded sets on `day`. `limit` caps how many User IDs have their grants
/// decided (each costs 24 Cedar decisions); past it, the field changes are still reported
/// and `not_compared` says what was left out.
pub fn diff(
    old: &Snapshot,
    new: &Snapshot,
    day: NaiveDate,
    rules: RulesChange,
    limit: Option<usize>,
) -> Diff {
    let old_pks: HashMap<&str, &Arc<Pks>> = old
        .agreements()
        .iter()
        .map(|p| (p.nomor.as_str(), p))
        .collect();
    let new_pks: HashMap<&str, &Arc<Pks>> = new
        .agreements()
        .iter()
        .map(|p| (p.nomor.as_str(), p))
        .collect();

    // Agreements in their own terms.
    let mut agreements = Vec::new();
    let nomors: BTreeSet<&str> = old_pks.keys().chain(new_pks.keys()).copied().collect();
    for nomor in &nomors {
        match (old_pks.get(nomor), new_pks.get(nomor)) {
            (Some(a), Some(b)) if same(a, b) => {}
            (Some(a), Some(b)) => {
                let fields = agreement_fields(old, a, new, b);
                if !fields.is_empty() {
                    agreements.push(AgreementChange {
                        nomor: nomor.to_string(),
                        pengguna: b.pengguna.clone(),
                        presence: Presence::Kept,
                        fields,
                    });
                }
            }
            (Some(a), None) => agreements.push(AgreementChange {
                nomor: nomor.to_string(),
                pengguna: a.pengguna.clone(),
                presence: Presence::Removed,
                fields: Vec::new(),
            }),
            (None, Some(b)) => agreements.push(AgreementChange {
                nomor: nomor.to_string(),
                pengguna: b.pengguna.clone(),
                presence: Presence::Added,
                fields: Vec::new(),
            }),
            (None, None) => {}
        }
    }

    // Which User IDs can have changed grants: all, when what decides for everyone changed
    // (rules, vocabulary); else those of Pengguna with an agreement that changed (a
    // Pengguna's facts are taken across its agreements).
    let everyone =
        old.engine().hash() != new.engine().hash() || old.vocabulary() != new.vocabulary();
    let touched: HashSet<&str> = nomors
        .iter()
        .filter(|n| match (old_pks.get(*n), new_pks.get(*n)) {
            (Some(a), Some(b)) => !same(a, b),
            _ => true,
        })
        .filter_map(|n| old_pks.get(n).or_else(|| new_pks.get(n)))
        .map(|p| p.pengguna.as_str())
        .collect();
    let in_scope = |p: &Pks| everyone || touched.contains(p.pengguna.as_str());

    let mut ids: BTreeSet<&str> = BTreeSet::new();
    for snap in [old, new] {
        for pks in snap.agreements().iter().filter(|p| in_scope(p)) {
            ids.extend(pks.users.iter().map(|u| u.id.as_str()));
        }
    }
    let (to_decide, not_compared) = match limit {
        Some(limit) if ids.len() > limit => (
            BTreeSet::new(),
            Some(format!(
                "the actions and elements of {} User IDs were not compared (more than {limit}); run `gerbang policy diff` for them",
                ids.len()
            )),
        ),
        _ => (ids.clone(), None),
    };
    let mut users = Vec::new();
    for id in &ids {
        let before = old.user_by_id(id);
        let after = new.user_by_id(id);
        let decide = to_decide.contains(id);
        let change = user_change(old, before, new, after, day, decide);
        if let Some(change) = change.filter(|c| !c.is_empty()) {
            users.push(change);
        }
    }

    let networks = network_changes(old, new);
    let mut out = Diff {
        day,
        rules,
        agreements,
        users,
        networks,
        not_compared,
        summary: String::new(),
    };
    out.summary = summarise(&out);
    out
}

/// Whether an agreement is the same in both sets: a reload shares the agreements whose file
/// did not change, so most are the same allocation and need no comparison.
fn same(a: &Arc<Pks>, b: &Arc<Pks>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

fn user_change(
    old: &Snapshot,
    before: Option<UserRef>,
    new: &Snapshot,
    after: Option<UserRef>,
    day: NaiveDate,
    decide: bool,
) -> Option<UserChange> {
    let (snap, r) = match (after, before) {
        (Some(r), _) => (new, r),
        (None, Some(r)) => (old, r),
        (None, None) => return None,
    };
    let presence = match (before, after) {
        (None, Some(_)) => Presence::Added,
        (Some(_), None) => Presence::Removed,
        _ => Presence::Kept,
    };
    let empty = Grant {
        access: Vec::new(),
        elements: gerbang_core::ElementSet::EMPTY,
    };
    let (was, is) = if decide {
        (
            before.map_or_else(|| empty.clone(), |b| grant(old, b, day)),
            after.map_or_else(|| empty.clone(), |a| grant(new, a, day)),
        )
    } else {
        (empty.clone(), empty)
    };
    let show = |list: &[(gerbang_policy::Action, gerbang_core::Channel)]| -> Vec<String> {
        list.iter()
            .map(|(a, c)| format!("{} over {}", a.as_str(), c.as_str()))
            .collect()
    };
    let (was_access, is_access) = (show(&was.access), show(&is.access));
    let gained = is_access
        .iter()
        .filter(|a| !was_access.contains(a))
        .cloned()
        .collect();
    let lost = was_access
        .iter()
        .filter(|a| !is_access.contains(a))
        .cloned()
        .collect();
    let names = |s: &Snapshot, set| -> Vec<String> {
        s.vocabulary()
            .names(set)
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    // Elements matter to a User ID that can ask for something: a frozen agreement's User IDs
    // lose their elements with their access, a deactivated one has none to gain.
    let seen = |g: &Grant| {
        if g.access.is_empty() {
            gerbang_core::ElementSet::EMPTY
        } else {
            g.elements
        }
    };
    let (was_el, is_el) = (names(old, seen(&was)), names(new, seen(&is)));
    let lost_all =
        decide && presence == Presence::Kept && !was.access.is_empty() && is.access.is_empty();
    let elements_gained = is_el
        .iter()
        .filter(|e| !was_el.contains(e))
        .cloned()
        .collect();
    let elements_lost = was_el
        .iter()
        .filter(|e| !is_el.contains(e))
        .cloned()
        .collect();
    let mut fields = Vec::new();
    if let (Some(b), Some(a)) = (before, after) {
        let (ub, ua) = (old.user(b), new.user(a));
        let status = |s: UserStatus| match s {
            UserStatus::Aktif => "aktif",
            UserStatus::Nonaktif => "nonaktif",
        };
        push_field(&mut fields, "status", status(ub.status), status(ua.status));
        push_field(
            &mut fields,
            "kuota_harian",
            ub.kuota_harian,
            ua.kuota_harian,
        );
        push_field(&mut fields, "ip_lan", list(&ub.ip_lan), list(&ua.ip_lan));
        push_field(&mut fields, "pks", &old.pks(b).nomor, &new.pks(a).nomor);
    }
    let pks = snap.pks(r);
    Some(UserChange {
        user: snap.user(r).id.clone(),
        pengguna: pks.pengguna.clone(),
        pks: pks.nomor.clone(),
        presence,
        gained,
        lost,
        elements_gained,
        elements_lost,
        lost_all,
        fields,
    })
}

fn agreement_fields(old: &Snapshot, a: &Pks, new: &Snapshot, b: &Pks) -> Vec<FieldChange> {
    let mut f = Vec::new();
    let status = |s: PksStatus| match s {
        PksStatus::Aktif => "aktif",
        PksStatus::Dibekukan => "dibekukan",
        PksStatus::Diakhiri => "diakhiri",
    };
    let elements = |s: &Snapshot, set| s.vocabulary().names(set).join(", ");
    let channels = |p: &Pks| {
        p.metode_akses
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let keys = |p: &Pks| format!("{:?}", p.kunci_akses);
    push_field(&mut f, "status", status(a.status), status(b.status));
    push_field(&mut f, "mulai", a.mulai, b.mulai);
    push_field(&mut f, "sampai", a.sampai, b.sampai);
    push_field(&mut f, "pengguna", &a.pengguna, &b.pengguna);
    push_field(
        &mut f,
        "metode_akses",
        bracket(channels(a)),
        bracket(channels(b)),
    );
    push_field(&mut f, "kunci_akses", keys(a), keys(b));
    push_field(
        &mut f,
        "elemen_data",
        bracket(elements(old, a.elemen_data)),
        bracket(elements(new, b.elemen_data)),
    );
    push_field(
        &mut f,
        "persetujuan_menteri",
        bracket(elements(old, a.persetujuan_menteri)),
        bracket(elements(new, b.persetujuan_menteri)),
    );
    push_field(
        &mut f,
        "kepemilikan_asing_mayoritas",
        a.kepemilikan_asing_mayoritas,
        b.kepemilikan_asing_mayoritas,
    );
    push_field(&mut f, "penegak_hukum", a.penegak_hukum, b.penegak_hukum);
    let cap = |p: &Pks| {
        p.kuota_harian_pengguna
            .map_or("none".to_string(), |c| c.to_string())
    };
    push_field(&mut f, "kuota_harian_pengguna", cap(a), cap(b));
    f
}

fn push_field(
    out: &mut Vec<FieldChange>,
    field: &str,
    before: impl ToString,
    after: impl ToString,
) {
    let (before, after) = (before.to_string(), after.to_string());
    if before != after {
        out.push(FieldChange {
            field: field.to_string(),
            before,
            after,
        });
    }
}

fn bracket(s: String) -> String {
    format!("[{s}]")
}

fn list(nets: &[IpNet]) -> String {
    bracket(
        nets.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn network_changes(old: &Snapshot, new: &Snapshot) -> Vec<NetworkChange> {
    let (was, is): (BTreeSet<IpNet>, BTreeSet<IpNet>) = (
        old.blocked().iter().copied().collect(),
        new.blocked().iter().copied().collect(),
    );
    let inside = |snap: &Snapshot, net: &IpNet| -> Vec<String> {
        let mut ids: Vec<String> = snap
            .agreements()
            .iter()
            .flat_map(|p| p.users.iter())
            .filter(|u| {
                u.ip_lan
                    .iter()
                    .any(|lan| net.contains(lan) || lan.contains(net))
            })
            .map(|u| u.id.clone())
            .collect();
        ids.sort_unstable();
        ids
    };
    let mut out = Vec::new();
    for net in is.difference(&was) {
        out.push(NetworkChange {
            network: net.to_string(),
            blocked: true,
            users: inside(new, net),
        });
    }
    for net in was.difference(&is) {
        out.push(NetworkChange {
            network: net.to_string(),
            blocked: false,
            users: inside(new, net),
        });
    }
    out
}

/// User IDs, each with its Pengguna.
type Who<'a> = BTreeSet<(&'a str, &'a str)>;

/// "1 User ID of 1 Pengguna gains X" / "3 User IDs of 2 Pengguna gain X".
fn who(users: &Who<'_>, verb: Option<(&str, &str)>) -> String {
    let pengguna: BTreeSet<&str> = users.iter().map(|(_, p)| *p).collect();
    let n = users.len();
    let mut s = format!(
        "{n} User ID{} of {} Pengguna",
        if n == 1 { "" } else { "s" },
        pengguna.len()
    );
    if let Some((one, many)) = verb {
        let _ = write!(s, " {}", if n == 1 { one } else { many });
    }
    s
}

/// The one-line summary: agreements' own changes, the rules, then who gains or loses what
/// (items with the same User IDs together), then quota and status, then networks.
fn summarise(d: &Diff) -> String {
    let mut parts: Vec<String> = Vec::new();
    for a in &d.agreements {
        match a.presence {
            Presence::Added => parts.push(format!("PKS {} of {} added", a.nomor, a.pengguna)),
            Presence::Removed => parts.push(format!("PKS {} of {} removed", a.nomor, a.pengguna)),
            Presence::Kept => {
                // Validity and status here; elements and channels show as what User IDs
                // gain or lose.
                let own: Vec<String> = a
                    .fields
                    .iter()
                    .filter(|f| {
                        matches!(
                            f.field.as_str(),
                            "status" | "mulai" | "sampai" | "kuota_harian_pengguna"
                        )
                    })
                    .map(ToString::to_string)
                    .collect();
                if !own.is_empty() {
                    parts.push(format!("PKS {}: {}", a.nomor, own.join(", ")));
                }
            }
        }
    }
    if let Some(rules) = d.rules.summary() {
        parts.push(rules);
    }
    // (verb, item) → the User IDs (with their Pengguna), in the order first met: actions in
    // the order of `Action::ALL`, then elements in the vocabulary's order.
    let mut by_item: Vec<((u8, String), Who<'_>)> = Vec::new();
    for u in &d.users {
        let me = (u.user.as_str(), u.pengguna.as_str());
        let mut add = |rank: u8, item: String| {
            let key = (rank, item);
            match by_item.iter_mut().find(|(k, _)| *k == key) {
                Some((_, users)) => {
                    users.insert(me);
                }
                None => by_item.push((key, BTreeSet::from([me]))),
            }
        };
        match u.presence {
            Presence::Added => add(0, String::new()),
            Presence::Removed => add(1, String::new()),
            Presence::Kept => {}
        }
        // An added User ID's grants are in the full report; the summary says it came.
        if u.presence != Presence::Added {
            for x in u.gained.iter().chain(&u.elements_gained) {
                add(2, x.clone());
            }
        }
        if u.lost_all {
            add(3, "all access".to_string());
        } else {
            for x in u.lost.iter().chain(&u.elements_lost) {
                add(3, x.clone());
            }
        }
        for f in &u.fields {
            add(4, f.to_string());
        }
    }
    by_item.sort_by_key(|((rank, _), _)| *rank);
    // Items shared by exactly the same User IDs are said once.
    let mut grouped: Vec<((u8, &Who<'_>), Vec<&str>)> = Vec::new();
    for ((rank, item), users) in &by_item {
        match grouped
            .iter_mut()
            .find(|((r, u), _)| r == rank && *u == users)
        {
            Some((_, items)) => items.push(item),
            None => grouped.push(((*rank, users), vec![item])),
        }
    }
    for ((rank, users), items) in grouped {
        let items = items.join(", ");
        parts.push(match rank {
            0 => format!("{} added", who(users, None)),
            1 => format!("{} removed", who(users, None)),
            2 => format!("{} {items}", who(users, Some(("gains", "gain")))),
            3 => format!("{} {items}", who(users, Some(("loses", "lose")))),
            _ => format!("{}: {items}", who(users, None)),
        });
    }
    for n in &d.networks {
        let inside = if n.users.is_empty() {
            String::new()
        } else {
            format!(
                " ({} User ID{} inside)",
                n.users.len(),
                if n.users.len() == 1 { "" } else { "s" }
            )
        };
        parts.push(format!(
            "network {} {}{inside}",
            n.network,
            if n.blocked { "cut off" } else { "reconnected" }
        ));
    }
    if let Some(why) = &d.not_compared {
        parts.push(why.clone());
    }
    if parts.is_empty() {
        "no change in what any User ID may do".to_string()
    } else {
        parts.join("; ")
    }
}

impl Diff {
    /// The full report, for `gerbang policy diff`: the rules, each agreement and User ID that
    /// changed, the networks, and the summary last.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "decided for {} (WIB)", self.day);
        let _ = writeln!(out, "rules: {}", self.rules);
        for a in &self.agreements {
            let what = match a.presence {
                Presence::Added => "added".to_string(),
                Presence::Removed => "removed".to_string(),
                Presence::Kept => a
                    .fields
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            let _ = writeln!(out, "PKS {} ({}): {what}", a.nomor, a.pengguna);
        }
        for u in &self.users {
            let mut bits = Vec::new();
            match u.presence {
                Presence::Added => bits.push("added".to_string()),
                Presence::Removed => bits.push("removed".to_string()),
                Presence::Kept => {}
            }
            if u.lost_all {
                bits.push("loses all access".to_string());
            }
            let mut say = |label: &str, items: &[String]| {
                if !items.is_empty() {
                    bits.push(format!("{label} {}", items.join(", ")));
                }
            };
            say("gains", &u.gained);
            say("loses", &u.lost);
            say("gains elements", &u.elements_gained);
            say("loses elements", &u.elements_lost);
            for f in &u.fields {
                bits.push(f.to_string());
            }
            let _ = writeln!(
                out,
                "User ID {} (PKS {}, {}): {}",
                u.user,
                u.pks,
                u.pengguna,
                bits.join("; ")
            );
        }
        for n in &self.networks {
            let _ = writeln!(
                out,
                "network {}: {}; User IDs inside: {}",
                n.network,
                if n.blocked { "cut off" } else { "reconnected" },
                if n.users.is_empty() {
                    "none".to_string()
                } else {
                    n.users.join(", ")
                }
            );
        }
        if let Some(why) = &self.not_compared {
            let _ = writeln!(out, "{why}");
        }
        let _ = write!(out, "summary: {}", self.summary);
        out
    }
}

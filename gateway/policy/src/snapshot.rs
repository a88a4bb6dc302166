//! An immutable view of everything a decision needs: the vocabulary, the agreements, the
//! Cedar rules and entities, the blocked networks, and indexes from User ID and from source
//! address to a user. A reload builds a new snapshot and swaps it in whole, so a request sees
//! one consistent set from start to end, and the decision cache goes with the old set.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use cedar_policy::Entities;
use chrono::NaiveDate;
use dashmap::DashMap;
use gerbang_core::{
    ConfigError, ConfigErrors, ElementSet, Pks, PksCache, PksSet, Sam, Sanctions, User, Vocabulary,
    canonical_ip,
};
use ipnet::IpNet;
use ipnet_index::IpIndex;

use crate::decision::{CacheKey, Decision};
use crate::engine::{PolicyEngine, pengguna_facts};

/// A user of a snapshot: indexes into its agreements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserRef {
    pks: u32,
    user: u32,
}

/// How many decisions a snapshot keeps when they are cached per address.
const PER_ADDRESS_KEPT: usize = 200_000;

/// The loaded agreements with their indexes, rules and decision cache.
pub struct Snapshot {
    vocab: Vocabulary,
    /// After sanctions; shared with the parsed files and, across a reload, with the
    /// snapshot before wherever they did not change.
    agreements: Vec<Arc<Pks>>,
    by_id: HashMap<String, UserRef>,
    by_ip: IpIndex,
    /// Every SAM by id: its agreement and its place in it.
    by_sam: HashMap<String, (u32, u32)>,
    engine: Arc<PolicyEngine>,
    entities: Entities,
    /// Per agreement, the elements its User IDs may see, when the element rules depend on
    /// nothing else (`PolicyEngine::elements_by_agreement`); decided once here, so a cold
    /// decision is one Cedar evaluation.
    agreement_elements: Option<Vec<ElementSet>>,
    /// Daily caps of Pengguna across their User IDs (`kuota_harian_pengguna`).
    pengguna_caps: HashMap<String, NonZeroU32>,
    blocked: Vec<IpNet>,
    cache: DashMap<CacheKey, (NaiveDate, Arc<Decision>)>,
    /// The sanctions applied to `agreements` and `blocked`.
    sanctions: Sanctions,
    /// Candidate policies over the same agreements, evaluated beside these and never
    /// enforced (shadow mode), with their own decision cache.
    shadow: Option<Box<Snapshot>>,
    /// The PKS files as parsed (before sanctions), for the next reload to reuse.
    files: PksCache,
    /// How this snapshot was built from the one before, for the reload's log line.
    reuse: Reuse,
}

/// What a snapshot took over from the one before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reuse {
    /// PKS files parsed (the others' content had not changed).
    pub files_parsed: usize,
    /// Whether the Cedar entities were updated from the previous snapshot's rather than
    /// built again.
    pub entities_updated: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("agreements", &self.agreements.len())
            .field("users", &self.by_id.len())
            .field("policies", &self.engine.hash())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Builds the indexes and the Cedar entities. The PKS set was validated on load (unique
    /// User IDs, no IP LAN shared by two User IDs), so every address maps to one user at most.
    pub fn build(
        vocab: Vocabulary,
        set: PksSet,
        engine: Arc<PolicyEngine>,
        blocked: Vec<IpNet>,
    ) -> Result<Self, ConfigErrors> {
        Self::build_from(None, vocab, set, engine, blocked)
    }

    /// [`Self::build`], taking over from `previous` what the change cannot have touched:
    /// when the vocabulary and the rules are the same, the Cedar entities of the agreements
    /// that did not change, and their elements. The result is the same as a full build
    /// (the tests hold the two side by side).
    pub(crate) fn build_from(
        previous: Option<&Snapshot>,
        vocab: Vocabulary,
        set: PksSet,
        engine: Arc<PolicyEngine>,
        blocked: Vec<IpNet>,
    ) -> Result<Self, ConfigErrors> {
        let agreements = set.agreements;
        let previous = previous.filter(|p| p.engine.hash() == engine.hash() && p.vocab == vocab);
        let updated = match previous {
            Some(p) => engine.update_entities(&p.entities, &vocab, &p.agreements, &agreements)?,
            None => None,
        };
        let entities_updated = updated.is_some();
        let (entities, known) = match (updated, previous) {
            (Some(entities), Some(p)) => (entities, p.known_elements(&agreements)),
            _ => (engine.entities(&vocab, &agreements)?, Vec::new()),
        };
        let agreement_elements = engine
            .elements_by_agreement()
            .then(|| engine.agreement_elements(&entities, &vocab, &agreements, &known))
            .transpose()?;
        let pengguna_caps = agreements
            .iter()
            .filter_map(|p| Some((p.pengguna.clone(), p.kuota_harian_pengguna?)))
            .collect();
        let mut by_id = HashMap::with_capacity(agreements.iter().map(|p| p.users.len()).sum());
        let mut ranges = Vec::new();
        let mut by_sam = HashMap::with_capacity(agreements.iter().map(|p| p.sams.len()).sum());
        for (p, pks) in agreements.iter().enumerate() {
            for (x, sam) in pks.sams.iter().enumerate() {
                by_sam.insert(sam.id.clone(), (p as u32, x as u32));
            }
            for (u, user) in pks.users.iter().enumerate() {
                let r = UserRef {
                    pks: p as u32,
                    user: u as u32,
                };
                by_id.insert(user.id.clone(), r);
                ranges.extend(user.ip_lan.iter().map(|net| (*net, r)));
            }
        }
        Ok(Self {
            vocab,
            agreements,
            by_id,
            by_ip: IpIndex::new(ranges),
            by_sam,
            engine,
            entities,
            agreement_elements,
            pengguna_caps,
            blocked: blocked.into_iter().map(canonical_net).collect(),
            cache: DashMap::new(),
            sanctions: Sanctions::default(),
            shadow: None,
            files: PksCache::default(),
            reuse: Reuse {
                files_parsed: 0,
                entities_updated,
            },
        })
    }

    /// For each of `agreements`, its elements as this snapshot decided them, when nothing
    /// they depend on changed: the same agreement (after sanctions) of the same Pengguna
    /// facts. Only called with the same rules and vocabulary.
    fn known_elements(&self, agreements: &[Arc<Pks>]) -> Vec<Option<ElementSet>> {
        let Some(decided) = &self.agreement_elements else {
            return Vec::new();
        };
        let index: HashMap<&str, usize> = self
            .agreements
            .iter()
            .enumerate()
            .map(|(i, p)| (p.nomor.as_str(), i))
            .collect();
        let (old_facts, new_facts) = (pengguna_facts(&self.agreements), pengguna_facts(agreements));
        agreements
            .iter()
            .map(|pks| {
                let i = *index.get(pks.nomor.as_str())?;
                let same = self.agreements[i] == *pks
                    && old_facts.get(pks.pengguna.as_str()) == new_facts.get(pks.pengguna.as_str());
                same.then(|| decided.get(i).copied()).flatten()
            })
            .collect()
    }

    /// What this snapshot took over from the one before it.
    pub fn reuse(&self) -> Reuse {
        self.reuse
    }

    /// The Cedar rules.
    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    pub(crate) fn entities(&self) -> &Entities {
        &self.entities
    }

    /// The elements this user's agreement lets it see, when decided per agreement.
    pub(crate) fn agreement_elements(&self, r: UserRef) -> Option<ElementSet> {
        self.agreement_elements
            .as_ref()
            .and_then(|all| all.get(r.pks as usize).copied())
    }

    /// The networks cut off as a sanction (the block list and `putus_jaringan` sanctions).
    pub fn blocked(&self) -> &[IpNet] {
        &self.blocked
    }

    /// Whether the address is inside a network cut off as a sanction.
    pub fn ip_blocked(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.blocked.iter().any(|n| n.contains(&ip))
    }

    pub(crate) fn cached(&self, key: &CacheKey, day: NaiveDate) -> Option<Arc<Decision>> {
        self.cache
            .get(key)
            .filter(|e| e.0 == day)
            .map(|e| Arc::clone(&e.1))
    }

    /// Keeps a decision. Per-address decisions (a rule reads the address) stop being kept
    /// at `PER_ADDRESS_KEPT`: a User ID's IP LAN can be a whole network.
    pub(crate) fn cache(&self, key: CacheKey, day: NaiveDate, decision: Arc<Decision>) {
        if key.5.is_some() && self.cache.len() >= PER_ADDRESS_KEPT {
            return;
        }
        self.cache.insert(key, (day, decision));
    }

    /// The element vocabulary.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocab
    }

    /// Every agreement.
    pub fn agreements(&self) -> &[Arc<Pks>] {
        &self.agreements
    }

    /// The user with this User ID.
    pub fn user_by_id(&self, id: &str) -> Option<UserRef> {
        self.by_id.get(id).copied()
    }

    /// The user whose IP LAN holds this address (read from the TCP peer, never from headers).
    pub fn user_by_ip(&self, ip: IpAddr) -> Option<UserRef> {
        self.by_ip.find(canonical_ip(ip))
    }

    pub fn user(&self, r: UserRef) -> &User {
        &self.agreements[r.pks as usize].users[r.user as usize]
    }

    pub fn pks(&self, r: UserRef) -> &Pks {
        &self.agreements[r.pks as usize]
    }

    /// A card reader's SAM by id, with the agreement registering it, as the sanctions in
    /// force leave them (a `nonaktifkan_sam` sanction shows as `SamStatus::Nonaktif`).
    pub fn sam(&self, id: &str) -> Option<(&Sam, &Pks)> {
        let &(p, x) = self.by_sam.get(id)?;
        let pks: &Pks = self.agreements.get(p as usize)?;
        Some((pks.sams.get(x as usize)?, pks))
    }

    /// The daily cap of a Pengguna across all its User IDs, if it has one (set in any of
    /// its PKS files; the files agree, checked at load).
    pub fn pengguna_cap(&self, pengguna: &str) -> Option<NonZeroU32> {
        self.pengguna_caps.get(pengguna).copied()
    }

    /// The candidate (shadow) policies' view of the same agreements, if configured.
    pub fn shadow(&self) -> Option<&Snapshot> {
        self.shadow.as_deref()
    }

    /// The sanctions in force, as loaded with the agreements.
    pub fn sanctions(&self) -> &Sanctions {
        &self.sanctions
    }

    /// How many User IDs the agreements have.
    pub fn user_count(&self) -> usize {
        self.by_id.len()
    }
}

/// A network written as IPv4-mapped IPv6 (`::ffff:10.9.0.0/112`) is the IPv4 network
/// (`10.9.0.0/16`): peers are compared as IPv4 ([`canonical_ip`]), so a cut network
/// written that way would otherwise match nothing, a sanction silently not applied.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(n);
    }
    net
}

mod ipnet_index {
    //! Non-overlapping address ranges, sorted for binary search.
    //!
    //! The PKS set guarantees that two User IDs' IP LANs never overlap, but one User ID
    //! may list nested or overlapping entries (`10.0.0.0/16` and `10.0.5.0/24`). A binary
    //! search finds the last range starting at or before an address, which for `10.0.9.1`
    //! is the /24 that does not hold it, while the /16 that does is never looked at. So the
    //! ranges of one User ID are merged first: the index then holds disjoint ranges only.
    use std::net::IpAddr;

    use super::UserRef;

    #[derive(Debug, Default)]
    pub(super) struct IpIndex {
        v4: Vec<(u32, u32, UserRef)>,
        v6: Vec<(u128, u128, UserRef)>,
    }

    /// Sorts by start and merges each range into the one before when they overlap and
    /// belong to the same User ID. Ranges of different User IDs are left as they are (the
    /// PKS set refuses them overlapping).
    fn disjoint<T: Ord + Copy>(list: &mut Vec<(T, T, UserRef)>) {
        list.sort_unstable_by_key(|e| (e.0, e.1));
        let mut merged: Vec<(T, T, UserRef)> = Vec::with_capacity(list.len());
        for &(start, end, r) in list.iter() {
            match merged.last_mut() {
                Some(last) if last.2 == r && start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end, r)),
            }
        }
        *list = merged;
    }

    impl IpIndex {
        pub(super) fn new(ranges: Vec<(ipnet::IpNet, UserRef)>) -> Self {
            let mut index = Self::default();
            for (net, r) in ranges {
                match net {
                    ipnet::IpNet::V4(n) => {
                        index.v4.push((n.network().into(), n.broadcast().into(), r))
                    }
                    ipnet::IpNet::V6(n) => {
                        index.v6.push((n.network().into(), n.broadcast().into(), r))
                    }
                }
            }
            disjoint(&mut index.v4);
            disjoint(&mut index.v6);
            index
        }

        pub(super) fn find(&self, ip: IpAddr) -> Option<UserRef> {
            fn search<T: Ord + Copy>(list: &[(T, T, UserRef)], x: T) -> Option<UserRef> {
                let i = list.partition_point(|e| e.0 <= x);
                let (start, end, r) = *list.get(i.checked_sub(1)?)?;
                (start <= x && x <= end).then_some(r)
            }
            match ip {
                IpAddr::V4(a) => search(&self.v4, u32::from(a)),
                IpAddr::V6(a) => search(&self.v6, u128::from(a)),
            }
        }
    }
}

/// Loads everything a snapshot needs from a configuration: the vocabulary, every PKS file,
/// the Cedar schema and rules, and the block list, validated together; every problem found
/// is reported at once. Used at start and by `gerbang check`.
pub fn load_snapshot(config: &gerbang_core::Config) -> Result<Snapshot, ConfigErrors> {
    load(config, None, None)
}

/// [`load_snapshot`] for a reload: everything is read and checked again, but PKS files whose
/// content (SHA-256) did not change are not parsed again, and when the vocabulary and the
/// rules are unchanged the Cedar entities and elements of the agreements that did not
/// change are taken from `previous`. Decides exactly as [`load_snapshot`] would; the
/// decision cache starts empty.
pub fn reload_snapshot(
    config: &gerbang_core::Config,
    previous: &Snapshot,
) -> Result<Snapshot, ConfigErrors> {
    load(config, Some(previous), None)
}

/// [`reload_snapshot`] with the sanctions several instances share (`docs/gateway.md`,
/// "Several instances") in force besides the file's. The file's are checked as always (a
/// target no PKS file has refuses the reload); a shared one naming a target this instance
/// does not know is logged and left out, the others applied: another instance applied it,
/// and refusing the whole reload here would keep every newer sanction out of force.
pub fn reload_snapshot_with(
    config: &gerbang_core::Config,
    previous: &Snapshot,
    shared: Sanctions,
) -> Result<Snapshot, ConfigErrors> {
    load(config, Some(previous), Some(shared))
}

fn load(
    config: &gerbang_core::Config,
    previous: Option<&Snapshot>,
    shared: Option<Sanctions>,
) -> Result<Snapshot, ConfigErrors> {
    let mut errors = Vec::new();
    let no_files = PksCache::default();
    let agreements = config
        .reload_agreements(previous.map_or(&no_files, |p| &p.files))
        .map_err(|e| errors.extend(e.0))
        .ok();
    let engine = PolicyEngine::load(&config.policy_dir)
        .map_err(|e| errors.extend(e.0))
        .ok();
    let blocked = config.load_blocklist().map_err(|e| errors.extend(e.0)).ok();
    let sanctions = config.load_sanctions().map_err(|e| errors.extend(e.0)).ok();
    if let Some((_, set, _)) = &agreements {
        errors.extend(unverifiable_client_certs(config, set));
    }
    match (agreements, engine, blocked, sanctions) {
        (Some((vocab, mut set, files)), Some(engine), Some(mut blocked), Some(sanctions))
            if errors.is_empty() =>
        {
            sanctions.apply(&mut set, &mut blocked)?;
            let sanctions = match shared {
                Some(shared) => {
                    if let Err(unknown) = shared.apply(&mut set, &mut blocked) {
                        tracing::error!(
                            "shared sanctions naming what no PKS file here has are not in force on this instance:\n{unknown}"
                        );
                    }
                    sanctions.with(shared)
                }
                None => sanctions,
            };
            let shadow = config.shadow_dir.as_deref().and_then(|dir| {
                shadow_snapshot(
                    dir,
                    &vocab,
                    &set,
                    &blocked,
                    previous.and_then(Snapshot::shadow),
                )
            });
            let parsed = files.parsed();
            let mut snap = Snapshot::build_from(previous, vocab, set, Arc::new(engine), blocked)?;
            snap.sanctions = sanctions;
            snap.shadow = shadow.map(Box::new);
            snap.files = files;
            snap.reuse.files_parsed = parsed;
            Ok(snap)
        }
        _ => Err(ConfigErrors(errors)),
    }
}

/// A User ID that must present a client certificate on a listener that asks for none
/// could never be served: each one is an error at its `[[user]]`.
fn unverifiable_client_certs(config: &gerbang_core::Config, set: &PksSet) -> Vec<ConfigError> {
    if config
        .listen
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_ca.is_some())
    {
        return Vec::new();
    }
    set.agreements
        .iter()
        .flat_map(|pks| {
            pks.users
                .iter()
                .filter(|u| !u.client_certs.is_empty())
                .map(|u| ConfigError {
                    file: pks.source.clone(),
                    line: Some(u.line),
                    column: None,
                    field: "sertifikat_klien".into(),
                    message: format!(
                        "User ID `{}` must present a client certificate, but the listener asks for none: set [listen] tls_client_ca in {}",
                        u.id,
                        config.path.display()
                    ),
                })
        })
        .collect()
}

/// Builds the shadow snapshot from a candidate policy directory. A candidate that does not
/// load is logged and left out: it must never stop the active set from loading.
fn shadow_snapshot(
    dir: &std::path::Path,
    vocab: &Vocabulary,
    set: &PksSet,
    blocked: &[IpNet],
    previous: Option<&Snapshot>,
) -> Option<Snapshot> {
    let built = PolicyEngine::load(dir).and_then(|engine| {
        Snapshot::build_from(
            previous,
            vocab.clone(),
            set.clone(),
            Arc::new(engine),
            blocked.to_vec(),
        )
    });
    match built {
        Ok(snap) => {
            tracing::info!(
                dir = %dir.display(),
                policy.hash = snap.engine().hash(),
                "shadow policies loaded: evaluated beside the active set, never enforced"
            );
            Some(snap)
        }
        Err(errors) => {
            tracing::error!(
                dir = %dir.display(),
                "shadow policies not loaded (the active set is unaffected):\n{errors}"
            );
            None
        }
    }
}

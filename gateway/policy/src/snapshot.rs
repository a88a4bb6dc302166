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
    ConfigErrors, ElementSet, Pks, PksSet, Sanctions, User, Vocabulary, canonical_ip,
};
use ipnet::IpNet;
use ipnet_index::IpIndex;

use crate::decision::{CacheKey, Decision};
use crate::engine::PolicyEngine;

/// A user of a snapshot: indexes into its agreements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserRef {
    pks: u32,
    user: u32,
}

/// The loaded agreements with their indexes, rules and decision cache.
pub struct Snapshot {
    vocab: Vocabulary,
    agreements: Vec<Pks>,
    by_id: HashMap<String, UserRef>,
    by_ip: IpIndex,
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
        let entities = engine.entities(&vocab, &set.agreements)?;
        let agreements = set.agreements;
        let agreement_elements = engine
            .elements_by_agreement()
            .then(|| engine.agreement_elements(&entities, &vocab, &agreements));
        let pengguna_caps = agreements
            .iter()
            .filter_map(|p| Some((p.pengguna.clone(), p.kuota_harian_pengguna?)))
            .collect();
        let mut by_id = HashMap::new();
        let mut ranges = Vec::new();
        for (p, pks) in agreements.iter().enumerate() {
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
            engine,
            entities,
            agreement_elements,
            pengguna_caps,
            blocked,
            cache: DashMap::new(),
            sanctions: Sanctions::default(),
            shadow: None,
        })
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

    pub(crate) fn cache(&self, key: CacheKey, day: NaiveDate, decision: Arc<Decision>) {
        self.cache.insert(key, (day, decision));
    }

    /// The element vocabulary.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocab
    }

    /// Every agreement.
    pub fn agreements(&self) -> &[Pks] {
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

mod ipnet_index {
    //! Non-overlapping address ranges, sorted for binary search.
    use std::net::IpAddr;

    use super::UserRef;

    #[derive(Debug, Default)]
    pub(super) struct IpIndex {
        v4: Vec<(u32, u32, UserRef)>,
        v6: Vec<(u128, u128, UserRef)>,
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
            index.v4.sort_unstable_by_key(|e| e.0);
            index.v6.sort_unstable_by_key(|e| e.0);
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
/// is reported at once. Used at start, on reload, and by `gerbang check`.
pub fn load_snapshot(config: &gerbang_core::Config) -> Result<Snapshot, ConfigErrors> {
    let mut errors = Vec::new();
    let agreements = config
        .load_agreements()
        .map_err(|e| errors.extend(e.0))
        .ok();
    let engine = PolicyEngine::load(&config.policy_dir)
        .map_err(|e| errors.extend(e.0))
        .ok();
    let blocked = config.load_blocklist().map_err(|e| errors.extend(e.0)).ok();
    let sanctions = config.load_sanctions().map_err(|e| errors.extend(e.0)).ok();
    match (agreements, engine, blocked, sanctions) {
        (Some((vocab, mut set)), Some(engine), Some(mut blocked), Some(sanctions))
            if errors.is_empty() =>
        {
            sanctions.apply(&mut set, &mut blocked)?;
            let shadow = config
                .shadow_dir
                .as_deref()
                .and_then(|dir| shadow_snapshot(dir, &vocab, &set, &blocked));
            let mut snap = Snapshot::build(vocab, set, Arc::new(engine), blocked)?;
            snap.sanctions = sanctions;
            snap.shadow = shadow.map(Box::new);
            Ok(snap)
        }
        _ => Err(ConfigErrors(errors)),
    }
}

/// Builds the shadow snapshot from a candidate policy directory. A candidate that does not
/// load is logged and left out: it must never stop the active set from loading.
fn shadow_snapshot(
    dir: &std::path::Path,
    vocab: &Vocabulary,
    set: &PksSet,
    blocked: &[IpNet],
) -> Option<Snapshot> {
    let built = PolicyEngine::load(dir).and_then(|engine| {
        Snapshot::build(
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

//! The Cedar entities of the agreements: elements, Pengguna, PKS and User IDs, built whole
//! or updated from the previous set after a reload.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use cedar_policy::{
    Entities, Entity, EntityAttrEvaluationError, EntityTypeName, RestrictedExpression,
};

use gerbang_core::{
    ConfigError, ConfigErrors, ElementSet, JenisPengguna, KunciAkses, Pks, PksStatus, UserStatus,
    Vocabulary,
};

use super::{PolicyEngine, SCHEMA_FILE, day_number, uid};

impl PolicyEngine {
    /// Builds the Cedar entities of a set of agreements, checked against the schema.
    pub fn entities(
        &self,
        vocab: &Vocabulary,
        agreements: &[Arc<Pks>],
    ) -> Result<Entities, ConfigErrors> {
        let t = &self.types;
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (id, e) in self.element_entities(vocab) {
            push(&mut out, &mut errors, e, id);
        }
        let facts = pengguna_facts(agreements);
        let mut penggunas = HashSet::new();
        for pks in agreements {
            if penggunas.insert(pks.pengguna.as_str())
                && let Some(f) = facts.get(pks.pengguna.as_str())
            {
                push(
                    &mut out,
                    &mut errors,
                    self.pengguna_entity(&pks.pengguna, f),
                    &pks.pengguna,
                );
            }
        }
        // Making an entity has Cedar evaluate each attribute: a fifth of a load at 5,000
        // PKS.
        let halves = in_two_halves(agreements, "building the Cedar entities", |_, part| {
            self.agreements_and_users(vocab, part)
        })?;
        let mut users = Vec::new();
        for (agreements, its_users, its_errors) in halves {
            out.extend(agreements);
            users.extend(its_users);
            errors.extend(its_errors);
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        // Checking 55,000 entities against the schema is a fifth of a reload at 5,000 PKS,
        // and every entity of a type is built alike (the same attributes, of the same
        // types): one of each type stands for all. Sets of elements may be empty, which fits
        // any set type, so the first agreement with Minister's approvals is checked too.
        // The full set is then built without the schema, so the schema's action entities
        // (the `Lookup` group) are added by hand.
        let mut seen: HashSet<EntityTypeName> = HashSet::new();
        let approvals = agreements
            .iter()
            .find(|p| !p.persetujuan_menteri.is_empty())
            .map(|p| uid(&t.pks, &p.nomor));
        let checked = out.iter().chain(users.first()).filter(|e| {
            seen.insert(e.uid().type_name().clone()) || approvals.as_ref() == Some(&e.uid())
        });
        Entities::from_entities(checked.cloned(), Some(&self.schema)).map_err(|e| unfit(&e))?;
        let actions = self.schema.action_entities().map_err(|e| unfit(&e))?;
        // The User IDs are added to the rest rather than built with it: Cedar then repairs
        // the hierarchy around them (each is a leaf under its PKS and Pengguna) instead of
        // computing it for the whole set, which at 5,000 PKS is both faster and leaves far
        // less freed memory behind (RSS after a load 322 → 246 MiB).
        Entities::from_entities(out.into_iter().chain(actions), None)
            .map_err(|e| unfit(&e))?
            .add_entities(users, None)
            .map_err(|e| unfit(&e))
    }

    /// The entities of some agreements and of their User IDs, and what could not be made.
    fn agreements_and_users(
        &self,
        vocab: &Vocabulary,
        agreements: &[Arc<Pks>],
    ) -> (Vec<Entity>, Vec<Entity>, Vec<ConfigError>) {
        let mut out = Vec::with_capacity(agreements.len());
        let mut users = Vec::new();
        let mut errors = Vec::new();
        for pks in agreements {
            let (agreement, its_users) = self.agreement_entities(vocab, pks);
            push(&mut out, &mut errors, agreement, &pks.nomor);
            for (user, e) in pks.users.iter().zip(its_users) {
                push(&mut users, &mut errors, e, &user.id);
            }
        }
        (out, users, errors)
    }

    /// The entities of `new`, made from `previous`, the entities of `old` (built by
    /// [`Self::entities`] or by this, with the same vocabulary and rules): entities that no
    /// longer exist are removed, and entities that are new or differ are put in; everything
    /// else is shared with `previous`. `None` when so much changed that building everything
    /// again is cheaper: Cedar looks at every entity for each one it replaces or removes.
    pub(crate) fn update_entities(
        &self,
        previous: &Entities,
        vocab: &Vocabulary,
        old: &[Arc<Pks>],
        new: &[Arc<Pks>],
    ) -> Result<Option<Entities>, ConfigErrors> {
        let t = &self.types;
        let old_by_nomor: HashMap<&str, &Arc<Pks>> =
            old.iter().map(|p| (p.nomor.as_str(), p)).collect();
        let new_nomors: HashSet<&str> = new.iter().map(|p| p.nomor.as_str()).collect();
        let (old_facts, new_facts) = (pengguna_facts(old), pengguna_facts(new));
        let mut errors = Vec::new();
        let mut put = Vec::new();
        let mut remove = Vec::new();
        // Entities replaced or removed; each costs a pass over all of them.
        let mut costly = 0;
        let limit = UPDATE_PASSES_PER_BUILD;

        for (id, facts) in &new_facts {
            match old_facts.get(id) {
                Some(f) if f == facts => {}
                was => {
                    costly += usize::from(was.is_some());
                    push(&mut put, &mut errors, self.pengguna_entity(id, facts), id);
                }
            }
        }
        remove.extend(
            old_facts
                .keys()
                .filter(|id| !new_facts.contains_key(*id))
                .map(|id| uid(&t.pengguna, id)),
        );
        // User IDs of agreements that changed or went away, and of those that changed or came.
        let mut gone_users: HashSet<&str> = HashSet::new();
        let mut kept_users: HashSet<&str> = HashSet::new();
        for pks in new {
            let before = old_by_nomor.get(pks.nomor.as_str());
            if before.is_some_and(|b| *b == pks) {
                continue;
            }
            if let Some(before) = before {
                gone_users.extend(before.users.iter().map(|u| u.id.as_str()));
            }
            kept_users.extend(pks.users.iter().map(|u| u.id.as_str()));
            let (agreement, users) = self.agreement_entities(vocab, pks);
            let ids =
                std::iter::once(pks.nomor.as_str()).chain(pks.users.iter().map(|u| u.id.as_str()));
            for (id, e) in ids.zip(std::iter::once(agreement).chain(users)) {
                let Ok(e) = e else {
                    push(&mut put, &mut errors, e, id);
                    continue;
                };
                match previous.get(&e.uid()) {
                    Some(was) if was.deep_eq(&e) => {}
                    was => {
                        costly += usize::from(was.is_some());
                        put.push(e);
                    }
                }
            }
            if costly > limit {
                return Ok(None);
            }
        }
        for pks in old
            .iter()
            .filter(|p| !new_nomors.contains(p.nomor.as_str()))
        {
            remove.push(uid(&t.pks, &pks.nomor));
            gone_users.extend(pks.users.iter().map(|u| u.id.as_str()));
        }
        remove.extend(
            gone_users
                .difference(&kept_users)
                .map(|id| uid(&t.user, id)),
        );
        costly += remove.len();
        if costly > limit {
            return Ok(None);
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let mut entities = previous.clone();
        if !remove.is_empty() {
            entities = entities.remove_entities(remove).map_err(|e| unfit(&e))?;
        }
        if !put.is_empty() {
            // Few entities: each is checked against the schema.
            entities = entities
                .upsert_entities(put, Some(&self.schema))
                .map_err(|e| unfit(&e))?;
        }
        Ok(Some(entities))
    }

    /// The entity of each element of the vocabulary, with its name.
    fn element_entities<'v>(
        &self,
        vocab: &'v Vocabulary,
    ) -> Vec<(&'v str, Result<Entity, Box<EntityAttrEvaluationError>>)> {
        vocab
            .all()
            .iter()
            .map(|id| {
                let attrs = HashMap::from([(
                    "dilindungi".to_string(),
                    RestrictedExpression::new_bool(vocab.protected().contains(id)),
                )]);
                let name = vocab.name(id);
                (
                    name,
                    Entity::new(uid(&self.types.element, name), attrs, HashSet::new())
                        .map_err(Box::new),
                )
            })
            .collect()
    }

    /// A Pengguna's entity.
    fn pengguna_entity(
        &self,
        id: &str,
        facts: &PenggunaFacts,
    ) -> Result<Entity, Box<EntityAttrEvaluationError>> {
        let attrs = HashMap::from([
            (
                "jenis".to_string(),
                RestrictedExpression::new_string(format!("{:?}", facts.jenis).to_lowercase()),
            ),
            (
                "asing_mayoritas".to_string(),
                RestrictedExpression::new_bool(facts.asing_mayoritas),
            ),
            (
                "penegak_hukum".to_string(),
                RestrictedExpression::new_bool(facts.penegak_hukum),
            ),
        ]);
        Entity::new(uid(&self.types.pengguna, id), attrs, HashSet::new()).map_err(Box::new)
    }

    /// An agreement's entity and those of its User IDs (in order). A User ID's parents are
    /// its PKS and the PKS's Pengguna: the whole of its ancestry, so Cedar has no
    /// transitive edge to add (and no second set to allocate) per User ID.
    #[allow(clippy::type_complexity)]
    fn agreement_entities(
        &self,
        vocab: &Vocabulary,
        pks: &Pks,
    ) -> (
        Result<Entity, Box<EntityAttrEvaluationError>>,
        Vec<Result<Entity, Box<EntityAttrEvaluationError>>>,
    ) {
        let t = &self.types;
        let pengguna = uid(&t.pengguna, &pks.pengguna);
        let pks_uid = uid(&t.pks, &pks.nomor);
        let elements = |set: ElementSet| {
            RestrictedExpression::new_set(
                set.iter()
                    .map(|e| RestrictedExpression::new_entity_uid(uid(&t.element, vocab.name(e)))),
            )
        };
        let attrs = HashMap::from([
            (
                "nomor".to_string(),
                RestrictedExpression::new_string(pks.nomor.clone()),
            ),
            (
                "pengguna".to_string(),
                RestrictedExpression::new_entity_uid(pengguna.clone()),
            ),
            (
                "status".to_string(),
                RestrictedExpression::new_string(pks_status(pks.status).to_string()),
            ),
            (
                "mulai".to_string(),
                RestrictedExpression::new_long(day_number(pks.mulai)),
            ),
            (
                "sampai".to_string(),
                RestrictedExpression::new_long(day_number(pks.sampai)),
            ),
            (
                "metode_akses".to_string(),
                RestrictedExpression::new_set(
                    pks.metode_akses
                        .iter()
                        .map(|c| RestrictedExpression::new_string(c.as_str().to_string())),
                ),
            ),
            (
                "kunci_akses".to_string(),
                RestrictedExpression::new_set(
                    pks.kunci_akses
                        .iter()
                        .map(|k| RestrictedExpression::new_string(key_name(*k).to_string())),
                ),
            ),
            ("elemen".to_string(), elements(pks.elemen_data)),
            (
                "persetujuan_menteri".to_string(),
                elements(pks.persetujuan_menteri),
            ),
        ]);
        let agreement = Entity::new(pks_uid.clone(), attrs, HashSet::from([pengguna.clone()]))
            .map_err(Box::new);
        let users = pks
            .users
            .iter()
            .map(|user| {
                let status = match user.status {
                    UserStatus::Aktif => "aktif",
                    UserStatus::Nonaktif => "nonaktif",
                };
                let attrs = HashMap::from([
                    (
                        "pks".to_string(),
                        RestrictedExpression::new_entity_uid(pks_uid.clone()),
                    ),
                    (
                        "status".to_string(),
                        RestrictedExpression::new_string(status.to_string()),
                    ),
                ]);
                Entity::new(
                    uid(&t.user, &user.id),
                    attrs,
                    HashSet::from([pks_uid.clone(), pengguna.clone()]),
                )
                .map_err(Box::new)
            })
            .collect();
        (agreement, users)
    }
}

/// What a Pengguna's entity says, taken across all its agreements: foreign-majority if any
/// says so, law enforcement only if all do, and the kind of institution of its first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PenggunaFacts {
    jenis: JenisPengguna,
    asing_mayoritas: bool,
    penegak_hukum: bool,
}

/// Every Pengguna's facts, in one pass (a search per Pengguna is quadratic).
pub(crate) fn pengguna_facts(agreements: &[Arc<Pks>]) -> HashMap<&str, PenggunaFacts> {
    let mut facts: HashMap<&str, PenggunaFacts> = HashMap::new();
    for p in agreements {
        let f = facts
            .entry(p.pengguna.as_str())
            .or_insert_with(|| PenggunaFacts {
                jenis: p.jenis_pengguna,
                asing_mayoritas: false,
                penegak_hukum: true,
            });
        f.asing_mayoritas |= p.kepemilikan_asing_mayoritas;
        f.penegak_hukum &= p.penegak_hukum;
    }
    facts
}

/// `work(offset, part)` over the first and the second half of `agreements`, on two threads
/// (a load's per-agreement work is independent, and the machine has two cores), in order.
/// A panic in either refuses the load, as any other error would.
pub(super) fn in_two_halves<T: Send>(
    agreements: &[Arc<Pks>],
    what: &str,
    work: impl Fn(usize, &[Arc<Pks>]) -> T + Sync,
) -> Result<[T; 2], ConfigErrors> {
    let half = agreements.len() / 2;
    let (first, second) = agreements.split_at(half);
    let (mine, theirs) = std::thread::scope(|s| {
        let theirs = s.spawn(|| work(half, second));
        (work(0, first), theirs.join())
    });
    let theirs = theirs.map_err(|_| {
        ConfigErrors(vec![ConfigError {
            file: PathBuf::from(SCHEMA_FILE),
            line: None,
            column: None,
            field: String::new(),
            message: format!("{what} failed: a thread panicked (a bug; its message is above)"),
        }])
    })?;
    Ok([mine, theirs])
}

/// How many passes over all the entities a full build costs, about: an update that would
/// replace or remove more entities than this builds everything instead.
const UPDATE_PASSES_PER_BUILD: usize = 64;

fn unfit(e: &dyn std::fmt::Display) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        file: PathBuf::from(SCHEMA_FILE),
        line: None,
        column: None,
        field: String::new(),
        message: format!("the PKS data do not fit the schema: {e}"),
    }])
}

fn push(
    out: &mut Vec<Entity>,
    errors: &mut Vec<ConfigError>,
    e: Result<Entity, impl std::fmt::Display>,
    what: &str,
) {
    match e {
        Ok(e) => out.push(e),
        Err(err) => errors.push(ConfigError {
            file: PathBuf::from(SCHEMA_FILE),
            line: None,
            column: None,
            field: what.to_string(),
            message: format!("cannot build the Cedar entity: {err}"),
        }),
    }
}

fn pks_status(s: PksStatus) -> &'static str {
    match s {
        PksStatus::Aktif => "aktif",
        PksStatus::Dibekukan => "dibekukan",
        PksStatus::Diakhiri => "diakhiri",
    }
}

fn key_name(k: KunciAkses) -> &'static str {
    match k {
        KunciAkses::Nik => "NIK",
        KunciAkses::NoKk => "NO_KK",
        KunciAkses::Elemen => "ELEMEN",
    }
}

//! Evaluation: the Cedar context of a request, and the questions put to Cedar (the access
//! itself, and which elements an answer may carry).

use std::sync::Arc;

use cedar_policy::{
    Context, Decision as CedarDecision, Entities, EntityUid, PolicySet, Request as CedarRequest,
    RestrictedExpression,
};

use gerbang_core::{ConfigErrors, ElementSet, Pks, Vocabulary};

use super::entities::in_two_halves;
use super::{Answer, AskError, CONTEXTS_KEPT, Facts, PolicyEngine, day_number, uid};

impl PolicyEngine {
    /// The Cedar context of one request; built once per decision and shared by its
    /// evaluations.
    ///
    /// When no rule reads `peer_ip`, its value cannot change an answer, and the context says
    /// `0.0.0.0` for every request: one context then serves every address, and the decision
    /// cache is not split by address either.
    pub(crate) fn context(&self, facts: &Facts) -> Result<Context, AskError> {
        let peer = self.reads_peer.then_some(facts.peer);
        let key = (
            facts.day,
            facts.channel,
            facts.ip_blocked,
            facts.sam_valid,
            peer,
        );
        if let Some(context) = self.contexts.get(&key) {
            return Ok(context.clone());
        }
        let shown = peer.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let context = build_context(facts, RestrictedExpression::new_ip(shown.to_string()))?;
        if self.contexts.len() >= CONTEXTS_KEPT {
            self.contexts.clear();
        }
        self.contexts.insert(key, context.clone());
        Ok(context)
    }

    /// One Cedar decision about an agreement (the access itself).
    pub(crate) fn is_authorized(
        &self,
        entities: &Entities,
        principal: &str,
        action: &str,
        pks: &str,
        context: &Context,
    ) -> Result<Answer, AskError> {
        self.access(entities, principal, action, pks, context, false)
    }

    /// The access question, put to the action's slice of the policies, or (`whole`, to
    /// check the slices against it in the tests) to the whole set.
    pub(crate) fn access(
        &self,
        entities: &Entities,
        principal: &str,
        action: &str,
        pks: &str,
        context: &Context,
        whole: bool,
    ) -> Result<Answer, AskError> {
        let t = &self.types;
        let action = uid(&t.action, action);
        let policies = match self.slices.get(&action) {
            Some(slice) if !whole => slice,
            _ => &self.policies,
        };
        self.ask_of(
            entities,
            uid(&t.user, principal),
            action,
            uid(&t.pks, pks),
            context,
            policies,
        )
    }

    /// The elements this User ID may see in an answer: `ReadElement` asked of Cedar.
    ///
    /// Elements the rules cannot tell apart get the same answer, so Cedar is asked once per
    /// class rather than once per element. An element entity carries only `dilindungi` and
    /// no parents, and the only sets of elements a rule can reach are the agreement's
    /// `elemen` and `persetujuan_menteri`; Cedar cannot read an entity's id. So unless a
    /// rule names an element literally (then every element is asked about on its own),
    /// (protected, agreed, approved) decides the answer: at most eight evaluations, in
    /// practice two or three, whatever the vocabulary's size.
    pub(crate) fn readable_elements(
        &self,
        entities: &Entities,
        vocab: &Vocabulary,
        principal: &str,
        pks: &Pks,
        context: &Context,
    ) -> ElementSet {
        self.readable(
            entities,
            vocab,
            principal,
            pks,
            context,
            !self.names_elements,
        )
    }

    /// [`Self::readable_elements`] asking Cedar about every element, or once per class.
    pub(crate) fn readable(
        &self,
        entities: &Entities,
        vocab: &Vocabulary,
        principal: &str,
        pks: &Pks,
        context: &Context,
        by_class: bool,
    ) -> ElementSet {
        let t = &self.types;
        let principal = uid(&t.user, principal);
        let action = uid(&t.action, "ReadElement");
        let policies = self.slices.get(&action).unwrap_or(&self.policies);
        let mut answers: [Option<bool>; 8] = [None; 8];
        let mut readable = ElementSet::EMPTY;
        for id in vocab.all().iter() {
            let class = usize::from(vocab.protected().contains(id))
                | usize::from(pks.elemen_data.contains(id)) << 1
                | usize::from(pks.persetujuan_menteri.contains(id)) << 2;
            let cached = answers[class].filter(|_| by_class);
            let allowed = cached.unwrap_or_else(|| {
                let resource = uid(&t.element, vocab.name(id));
                let allowed = match self.ask_of(
                    entities,
                    principal.clone(),
                    action.clone(),
                    resource,
                    context,
                    policies,
                ) {
                    Ok(a) => a.allowed,
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            element = vocab.name(id),
                            "cannot ask Cedar about an element; withheld"
                        );
                        false
                    }
                };
                answers[class] = Some(allowed);
                allowed
            });
            if allowed {
                readable.insert(id);
            }
        }
        readable
    }

    /// The elements each agreement's User IDs may see, asked of Cedar for one User ID of the
    /// agreement; only sound when [`Self::elements_by_agreement`] (the rules cannot tell
    /// two User IDs of one agreement, or two requests, apart). An agreement without User
    /// IDs gets nothing: no one can ask under it.
    ///
    /// `known[i]`, when given, is agreement `i`'s answer from before a reload that changed
    /// nothing it depends on; it is taken as it is.
    pub(crate) fn agreement_elements(
        &self,
        entities: &Entities,
        vocab: &Vocabulary,
        agreements: &[Arc<Pks>],
        known: &[Option<ElementSet>],
    ) -> Result<Vec<ElementSet>, ConfigErrors> {
        // The rules do not read the context; any well-typed one will do.
        let facts = Facts::placeholder();
        let Ok(context) = self.context(&facts) else {
            tracing::error!("cannot build a Cedar context; every element withheld");
            return Ok(vec![ElementSet::EMPTY; agreements.len()]);
        };
        // Two or three Cedar evaluations per agreement.
        let halves = in_two_halves(
            agreements,
            "deciding the agreements' elements",
            |from, part| {
                part.iter()
                    .enumerate()
                    .map(|(i, pks)| {
                        match (known.get(from + i).copied().flatten(), pks.users.first()) {
                            (Some(elements), _) => elements,
                            (None, Some(user)) => {
                                self.readable_elements(entities, vocab, &user.id, pks, &context)
                            }
                            (None, None) => ElementSet::EMPTY,
                        }
                    })
                    .collect::<Vec<_>>()
            },
        )?;
        Ok(halves.into_iter().flatten().collect())
    }

    fn ask_of(
        &self,
        entities: &Entities,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: &Context,
        policies: &PolicySet,
    ) -> Result<Answer, AskError> {
        let request = CedarRequest::new(
            principal,
            action,
            resource,
            context.clone(),
            // The request's shape was checked against the schema at load
            // (`request_shapes`); checking it again per request costs a third of a decision.
            None,
        )
        .map_err(|e| AskError::Request(Box::new(e)))?;
        let response = self.authorizer.is_authorized(&request, policies, entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            // A policy that errors is skipped by Cedar; say so loudly rather than silently.
            tracing::error!(errors = ?errors, "policy evaluation errors");
        }
        // Cedar gives the deciding policies in no fixed order: sorted, the same request
        // always names the same rule, in answers, logs and decision-log records.
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        policies.sort_unstable();
        Ok(Answer {
            allowed: response.decision() == CedarDecision::Allow,
            policies,
        })
    }
}

/// The context of one request. `peer_ip` comes ready-made: building it is the costly part
/// (see `PolicyEngine::context`).
pub(super) fn build_context(
    facts: &Facts,
    peer_ip: RestrictedExpression,
) -> Result<Context, AskError> {
    Context::from_pairs([
        (
            "today".to_string(),
            RestrictedExpression::new_long(day_number(facts.day)),
        ),
        (
            "channel".to_string(),
            RestrictedExpression::new_string(facts.channel.as_str().to_string()),
        ),
        ("peer_ip".to_string(), peer_ip),
        (
            "ip_blocked".to_string(),
            RestrictedExpression::new_bool(facts.ip_blocked),
        ),
        (
            "sam_valid".to_string(),
            RestrictedExpression::new_bool(facts.sam_valid),
        ),
    ])
    .map_err(|e| AskError::Context(Box::new(e)))
}

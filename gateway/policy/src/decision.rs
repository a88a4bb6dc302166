//! The decision: may this authenticated User ID do this action over this channel today, and
//! which elements may the answer carry? Cedar decides (see `engine`); this module asks it,
//! turns its answer into the DWH refusal, and caches the result per (User ID, action,
//! channel, request facts) for the day, so a warm request pays no Cedar evaluation.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::NaiveDate;

use gerbang_core::{Channel, ElementSet, Refusal, Shape};

use crate::engine::Facts;
use crate::snapshot::{Snapshot, UserRef};

/// A business action (not an HTTP verb), as named in the Cedar schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Lookup by NIK (`CALL_NIK`).
    CallNik,
    /// Lookup by No KK.
    CallNoKk,
    /// Verification of claimed elements (`CALL_VERIFY_BY_ELEMEN`).
    VerifyByElement,
    /// Search by a combination of elements (`CALL_BY_ELEMEN`), law enforcement only.
    SearchByElements,
    /// A NIK search in the Web Portal.
    PortalRead,
    /// Any write through the portal (always refused, art. 30(2)).
    PortalWrite,
    /// Export or download through the portal (always refused, art. 30(2)).
    PortalExport,
    /// Sending data back (data balikan).
    SubmitBalikan,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallNik => "CallNik",
            Self::CallNoKk => "CallNoKk",
            Self::VerifyByElement => "VerifyByElement",
            Self::SearchByElements => "SearchByElements",
            Self::PortalRead => "PortalRead",
            Self::PortalWrite => "PortalWrite",
            Self::PortalExport => "PortalExport",
            Self::SubmitBalikan => "SubmitBalikan",
        }
    }

    /// Every action, as the gateway asks about them.
    pub const ALL: [Self; 8] = [
        Self::CallNik,
        Self::CallNoKk,
        Self::VerifyByElement,
        Self::SearchByElements,
        Self::PortalRead,
        Self::PortalWrite,
        Self::PortalExport,
        Self::SubmitBalikan,
    ];

    /// Parses the Cedar action name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

/// What is being decided.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub user: UserRef,
    pub action: Action,
    pub channel: Channel,
    /// Today's WIB calendar day.
    pub day: NaiveDate,
    /// The TCP peer.
    pub peer: IpAddr,
    /// For card-reader requests: the SAM sidecar validated it.
    pub sam_valid: bool,
}

/// The answer: allowed with the elements the answer may carry, or refused with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `None` when allowed.
    pub refusal: Option<Refusal>,
    /// The policy that decided (`default-deny` when nothing permitted it).
    pub rule: String,
    /// Every policy Cedar named as deciding.
    pub policies: Vec<String>,
    /// Why, in words for the Pengguna's operator; never holds population data.
    pub reason: String,
    /// Elements the answer may carry (empty when refused).
    pub elements: ElementSet,
    /// What the answer's records hold.
    pub shape: Shape,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.refusal.is_none()
    }
}

/// The cache key: everything a decision depends on besides the snapshot and the day; the
/// peer address only when a rule reads it.
pub(crate) type CacheKey = (UserRef, Action, Channel, bool, bool, Option<IpAddr>);

/// Decides a request against a snapshot, from the cache when it can.
pub fn authorize(snap: &Snapshot, req: &Request) -> Arc<Decision> {
    authorize_traced(snap, req).0
}

/// Like [`authorize`], also saying whether the decision came from the cache (`true`) or
/// from Cedar, for the decision-time metric.
pub fn authorize_traced(snap: &Snapshot, req: &Request) -> (Arc<Decision>, bool) {
    let ip_blocked = snap.ip_blocked(req.peer);
    let peer = snap.engine().reads_peer().then_some(req.peer);
    let key = (
        req.user,
        req.action,
        req.channel,
        ip_blocked,
        req.sam_valid,
        peer,
    );
    if let Some(hit) = snap.cached(&key, req.day) {
        return (hit, true);
    }
    let decision = Arc::new(decide(snap, req, ip_blocked));
    snap.cache(key, req.day, Arc::clone(&decision));
    (decision, false)
}

/// Decides without the cache: one Cedar evaluation for the access. The elements come from
/// the snapshot when the rules decide them per agreement, and otherwise from one evaluation
/// per class of elements (see `PolicyEngine::readable_elements`).
pub fn decide(snap: &Snapshot, req: &Request, ip_blocked: bool) -> Decision {
    let engine = snap.engine();
    let pks = snap.pks(req.user);
    let user = snap.user(req.user);
    let facts = Facts {
        day: req.day,
        channel: req.channel,
        peer: req.peer,
        ip_blocked,
        sam_valid: req.sam_valid,
    };
    let shape = if req.action == Action::VerifyByElement {
        Shape::Verdicts
    } else {
        Shape::Values
    };
    let answer = match engine.context(&facts).and_then(|context| {
        engine
            .is_authorized(
                snap.entities(),
                &user.id,
                req.action.as_str(),
                &pks.nomor,
                &context,
            )
            .map(|answer| (answer, context))
    }) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot ask Cedar; refusing");
            return refused(
                Refusal::NotPermitted,
                "engine-error".into(),
                Vec::new(),
                "kebijakan tidak dapat dievaluasi".into(),
            );
        }
    };
    let (answer, context) = answer;
    if !answer.allowed {
        // The forbid with the lowest code decides what the client is told, then one without
        // a code (answered as not permitted); with no forbid, nothing permitted the request
        // (default deny).
        let deciding = answer
            .policies
            .iter()
            .map(|id| (engine.code(id), id))
            .min_by_key(|&(code, id)| (code.is_none(), code, id));
        let (refusal, rule) = match deciding {
            Some((code, id)) => (
                code.and_then(Refusal::from_code)
                    .unwrap_or(Refusal::NotPermitted),
                id.clone(),
            ),
            None => (Refusal::NotPermitted, "default-deny".to_string()),
        };
        let reason = reason(snap, req, &rule);
        return refused(refusal, rule, answer.policies, reason);
    }
    let elements = snap.agreement_elements(req.user).unwrap_or_else(|| {
        engine.readable_elements(snap.entities(), snap.vocabulary(), &user.id, pks, &context)
    });
    Decision {
        refusal: None,
        rule: answer.policies.first().cloned().unwrap_or_default(),
        policies: answer.policies,
        reason: format!("diizinkan oleh PKS {}", pks.nomor),
        elements,
        shape,
    }
}

fn refused(refusal: Refusal, rule: String, policies: Vec<String>, reason: String) -> Decision {
    Decision {
        refusal: Some(refusal),
        rule,
        policies,
        reason,
        elements: ElementSet::EMPTY,
        shape: Shape::Values,
    }
}

/// The operator-facing reason for a refusal by a rule, in Indonesian.
fn reason(snap: &Snapshot, req: &Request, rule: &str) -> String {
    let pks = snap.pks(req.user);
    let user = snap.user(req.user);
    match rule {
        "pks-status" => format!("PKS {} tidak aktif (dibekukan atau diakhiri, sanksi pasal 45)", pks.nomor),
        "pks-validity" => format!("PKS {} berlaku {} s.d. {}", pks.nomor, pks.mulai, pks.sampai),
        "user-status" => format!("User ID {} dinonaktifkan", user.id),
        "channel" => format!("metode akses {} tidak termasuk dalam PKS {}", req.channel.as_str(), pks.nomor),
        "verify-only" => "badan hukum dengan kepemilikan asing mayoritas hanya dapat melakukan verifikasi (pasal 29 ayat 4)".into(),
        "closed-network" => "jaringan asal koneksi diputus (sanksi pasal 45)".into(),
        "portal-read-only" => "data pada Web Portal hanya dapat dibaca (pasal 30 ayat 2)".into(),
        "card-reader-sam" => "permintaan card reader tanpa validasi SAM".into(),
        "default-deny" => match req.action {
            Action::SearchByElements => "pencarian berdasarkan kombinasi elemen hanya untuk penegak hukum (pasal 31)".into(),
            Action::CallNik | Action::VerifyByElement | Action::PortalRead => format!("PKS {} tidak memberi akses melalui NIK", pks.nomor),
            Action::CallNoKk => format!("PKS {} tidak memberi akses melalui No KK", pks.nomor),
            _ => format!("tindakan {} tidak diizinkan oleh PKS {}", req.action.as_str(), pks.nomor),
        },
        other => format!("ditolak oleh aturan {other}"),
    }
}

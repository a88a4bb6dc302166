//! The decision: may this authenticated User ID do this action over this channel today, and
//! which elements may the answer carry?
//!
//! This is the seam the Cedar engine replaces: the proxy asks
//! [`authorize`] and enforces the [`Decision`], and knows nothing of how it was reached.
//! Each check names the rule (`rule`) it implements, as Cedar policies will by `@id`.

use chrono::NaiveDate;

use gerbang_core::{Channel, ElementSet, KunciAkses, PksStatus, Refusal, Shape, UserStatus};

use crate::snapshot::{Snapshot, UserRef};

/// A business action (not an HTTP verb).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Lookup by NIK (`CALL_NIK`).
    CallNik,
    /// Verification of claimed elements (`CALL_VERIFY_BY_ELEMEN`).
    VerifyByElement,
    /// Search by a combination of elements (`CALL_BY_ELEMEN`), law enforcement only.
    SearchByElements,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallNik => "CallNik",
            Self::VerifyByElement => "VerifyByElement",
            Self::SearchByElements => "SearchByElements",
        }
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
}

/// The answer: allowed with the elements the answer may carry, or refused with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `None` when allowed.
    pub refusal: Option<Refusal>,
    /// The rule that decided (for the log and for explaining a refusal).
    pub rule: &'static str,
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

    fn deny(refusal: Refusal, rule: &'static str, reason: impl Into<String>) -> Self {
        Self {
            refusal: Some(refusal),
            rule,
            reason: reason.into(),
            elements: ElementSet::EMPTY,
            shape: Shape::Values,
        }
    }
}

/// Decides a request against a snapshot.
pub fn authorize(snap: &Snapshot, req: &Request) -> Decision {
    let pks = snap.pks(req.user);
    let user = snap.user(req.user);

    // art. 45: a frozen or ended agreement stops everything.
    match pks.status {
        PksStatus::Aktif => {}
        PksStatus::Dibekukan => {
            return Decision::deny(
                Refusal::InstitutionInactive,
                "pks-status",
                format!("PKS {} dibekukan (sanksi pasal 45)", pks.nomor),
            );
        }
        PksStatus::Diakhiri => {
            return Decision::deny(
                Refusal::InstitutionInactive,
                "pks-status",
                format!("PKS {} telah diakhiri", pks.nomor),
            );
        }
    }
    // PKS "jangka waktu": outside the period everything is denied.
    if !pks.valid_on(req.day) {
        return Decision::deny(
            Refusal::OutsideValidity,
            "pks-validity",
            format!(
                "PKS {} berlaku {} s.d. {}",
                pks.nomor, pks.mulai, pks.sampai
            ),
        );
    }
    // art. 45: a deactivated User ID.
    if user.status == UserStatus::Nonaktif {
        return Decision::deny(
            Refusal::UserInactive,
            "user-status",
            format!("User ID {} dinonaktifkan", user.id),
        );
    }
    // PKS metode_akses: the channel must be granted.
    if !pks.allows_channel(req.channel) {
        return Decision::deny(
            Refusal::NotPermitted,
            "channel",
            format!(
                "metode akses {} tidak termasuk dalam PKS {}",
                req.channel.as_str(),
                pks.nomor
            ),
        );
    }
    let shape = match req.action {
        Action::CallNik | Action::VerifyByElement if !pks.allows_key(KunciAkses::Nik) => {
            return Decision::deny(
                Refusal::NotPermitted,
                "lookup-key",
                format!("PKS {} tidak memberi akses melalui NIK", pks.nomor),
            );
        }
        // art. 29(4): a foreign-majority BHI may only verify.
        Action::CallNik | Action::SearchByElements if pks.kepemilikan_asing_mayoritas => {
            return Decision::deny(
                Refusal::NotPermitted,
                "verify-only",
                "badan hukum dengan kepemilikan asing mayoritas hanya dapat melakukan verifikasi (pasal 29 ayat 4)",
            );
        }
        // art. 31; letter 470/18754: search by element combination is for law enforcement.
        Action::SearchByElements if !(pks.penegak_hukum && pks.allows_key(KunciAkses::Elemen)) => {
            return Decision::deny(
                Refusal::NotPermitted,
                "search-law-enforcement",
                "pencarian berdasarkan kombinasi elemen hanya untuk penegak hukum (pasal 31)",
            );
        }
        Action::VerifyByElement => Shape::Verdicts,
        Action::CallNik | Action::SearchByElements => Shape::Values,
    };
    // art. 5; PKS art. 3; UU 24/2013 art. 84: the agreed elements, and protected data only
    // with the Minister's approval.
    let vocab = snap.vocabulary();
    let elements = pks
        .elemen_data
        .difference(vocab.protected().difference(pks.persetujuan_menteri));
    Decision {
        refusal: None,
        rule: "elements",
        reason: format!("diizinkan oleh PKS {}", pks.nomor),
        elements,
        shape,
    }
}

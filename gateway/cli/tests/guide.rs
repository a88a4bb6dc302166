//! The operator guide's troubleshooting chapter (docs/id/kode-penolakan.md) covers every
//! refusal the gateway answers: its code, its `RESPON` text and its name in the logs. A new
//! refusal fails this test until the guide says what the Pengguna sees, why, and what to
//! check.

use gerbang_core::{Refusal, SamReason};

/// Every refusal but the card-reader verdicts, which come from [`SamReason::ALL`].
const REFUSALS: [Refusal; 30] = [
    Refusal::LoginFailed,
    Refusal::LoginLocked,
    Refusal::IpMismatch,
    Refusal::IpNotRegistered,
    Refusal::InvalidIp,
    Refusal::QuotaExhausted,
    Refusal::RateLimited,
    Refusal::QuotaUnavailable,
    Refusal::OutsideValidity,
    Refusal::IncompleteParameters,
    Refusal::EmptyCredentials,
    Refusal::NikFormat,
    Refusal::InstitutionInactive,
    Refusal::UserInactive,
    Refusal::NotPermitted,
    Refusal::BodyTooLarge,
    Refusal::UnknownService,
    Refusal::MethodNotAllowed,
    Refusal::CardReaderUnavailable,
    Refusal::UpstreamUnavailable,
    Refusal::UpstreamTimeout,
    Refusal::UpstreamInvalid,
    Refusal::AuditUnavailable,
    Refusal::BodyTimeout,
    Refusal::BadFraming,
    Refusal::UnknownParameter,
    Refusal::UserIdFormat,
    Refusal::ClientCertificate,
    Refusal::BalikanNotAgreed,
    Refusal::BalikanUnavailable,
];

/// Does not compile when `Refusal` gains a variant: add it to [`REFUSALS`] (and the guide).
#[allow(dead_code)]
fn listed(r: Refusal) {
    match r {
        Refusal::LoginFailed
        | Refusal::LoginLocked
        | Refusal::IpMismatch
        | Refusal::IpNotRegistered
        | Refusal::InvalidIp
        | Refusal::QuotaExhausted
        | Refusal::RateLimited
        | Refusal::QuotaUnavailable
        | Refusal::OutsideValidity
        | Refusal::IncompleteParameters
        | Refusal::EmptyCredentials
        | Refusal::NikFormat
        | Refusal::InstitutionInactive
        | Refusal::UserInactive
        | Refusal::NotPermitted
        | Refusal::BodyTooLarge
        | Refusal::UnknownService
        | Refusal::MethodNotAllowed
        | Refusal::CardReaderUnavailable
        | Refusal::CardReader(_)
        | Refusal::UpstreamUnavailable
        | Refusal::UpstreamTimeout
        | Refusal::UpstreamInvalid
        | Refusal::AuditUnavailable
        | Refusal::BodyTimeout
        | Refusal::BadFraming
        | Refusal::UnknownParameter
        | Refusal::UserIdFormat
        | Refusal::ClientCertificate
        | Refusal::BalikanNotAgreed
        | Refusal::BalikanUnavailable => {}
    }
}

#[test]
fn the_troubleshooting_chapter_names_every_refusal() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/id/kode-penolakan.md"
    );
    let guide = std::fs::read_to_string(path).expect("docs/id/kode-penolakan.md");
    let mut missing = Vec::new();
    let all = REFUSALS
        .into_iter()
        .chain(SamReason::ALL.into_iter().map(Refusal::CardReader));
    for r in all {
        // Card-reader verdicts are listed by what follows the common prefix.
        let respon = r.respon();
        let text = respon
            .strip_prefix("Validasi Card Reader Gagal: ")
            .unwrap_or(respon);
        let summary_row = format!("| {} | {text}", r.code());
        let named = guide.contains(&format!("`{}`", r.name()))
            || (matches!(r, Refusal::CardReader(_)) && guide.contains("`card_reader_*`"));
        let explained = guide.contains(&format!("### {} ", r.code()));
        if !(guide.contains(text) && named && explained)
            || (!matches!(r, Refusal::CardReader(_)) && !guide.contains(&summary_row))
        {
            missing.push(format!("{} {respon} ({})", r.code(), r.name()));
        }
    }
    assert!(missing.is_empty(), "not in {path}: {missing:#?}");
}

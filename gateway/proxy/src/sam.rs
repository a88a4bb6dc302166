//! The card-reader channel (art. 24–26; juknis §4). A request carrying any `X-SAM-*`
//! header is a card-reader request: after authentication and before authorization the
//! SAM sidecar validates it, and only a valid verdict lets it reach Cedar with
//! `sam_valid = true`. No sidecar configured, or one that is down, slow or answers
//! nonsense: the request is refused (fail closed), never treated as a web-service call.
//!
//! A valid verdict is also checked against the gateway's own snapshot: the SAM and its
//! agreement must be active there too (art. 45 sanctions are applied to the snapshot
//! before `POST /sanksi` answers), so a sidecar that has not reloaded yet never lets a
//! deactivated reader through.

use std::time::Instant;

use gerbang_core::{Refusal, Rejection, SamReason};
use gerbang_policy::{Action, Snapshot};
use gerbang_sam::{
    HEADER_CONTENT_DIGEST, HEADER_PREFIX, HEADERS, MAX_HEADER_VALUE, MAX_READER_PATH, SamClient,
    SamHeaders, SamUnavailable, ValidateRequest, Verdict, body_sha256_hex,
    content_digest_sha256_hex, pks_not_active, sam_not_active, unknown_sam,
};
use pingora::http::RequestHeader;

/// What a card-reader request brings besides its body.
pub(crate) struct ReaderRequest {
    headers: SamHeaders,
    method: String,
    /// Path and query, as the reader signed them.
    path: String,
    /// The SHA-256 the reader's `Content-Digest` names, if any.
    claimed_body_sha256: Option<String>,
}

/// Whether a request comes from a card reader, and its `X-SAM-*` values. `Ok(None)`: no
/// such header, a web-service request. Refused when no sidecar is configured, when a
/// header is repeated or not text (ambiguous: which one did the reader sign?), or longer
/// than any valid value, and when the request target is longer than
/// [`MAX_READER_PATH`]: such a request is refused for what it is here, rather than sent
/// to the sidecar as a question too big to answer. Missing or malformed values are the
/// sidecar's to name.
pub(crate) fn reader_request(
    req: &RequestHeader,
    configured: bool,
) -> Result<Option<ReaderRequest>, Rejection> {
    if !req
        .headers
        .keys()
        .any(|k| k.as_str().starts_with(HEADER_PREFIX))
    {
        return Ok(None);
    }
    if !configured {
        return Err(Rejection::new(
            Refusal::CardReaderUnavailable,
            "validasi SAM card reader belum dikonfigurasi pada gateway ini",
        ));
    }
    let malformed =
        |detail: String| Rejection::new(Refusal::CardReader(SamReason::MalformedHeaders), detail);
    let mut values: [String; 5] = Default::default();
    for (slot, name) in values.iter_mut().zip(HEADERS) {
        let mut all = req.headers.get_all(name).iter();
        let value = match (all.next(), all.next()) {
            (None, _) => continue,
            (Some(_), Some(_)) => {
                return Err(malformed(format!("header {name} muncul lebih dari sekali")));
            }
            (Some(value), None) => value,
        };
        if value.len() > MAX_HEADER_VALUE {
            return Err(malformed(format!(
                "header {name} melebihi {MAX_HEADER_VALUE} karakter"
            )));
        }
        *slot = value
            .to_str()
            .map_err(|_| malformed(format!("header {name} bukan teks ASCII")))?
            .to_string();
    }
    let path = req
        .uri
        .path_and_query()
        .map_or_else(|| req.uri.path().to_string(), |p| p.as_str().to_string());
    if path.len() > MAX_READER_PATH {
        return Err(Rejection::new(
            Refusal::BodyTooLarge,
            format!("jalur permintaan card reader melebihi {MAX_READER_PATH} byte"),
        ));
    }
    let claimed_body_sha256 = match req.headers.get(HEADER_CONTENT_DIGEST) {
        // An unusable digest only loses the altered-body diagnosis; it grants nothing.
        Some(v) => v.to_str().ok().and_then(content_digest_sha256_hex),
        None => None,
    };
    Ok(Some(ReaderRequest {
        headers: SamHeaders::from_values(values),
        method: req.method.as_str().to_string(),
        path,
        claimed_body_sha256,
    }))
}

/// Whether an action reads population data, so the reader's fingerprint must have matched.
fn reads_data(action: Action) -> bool {
    match action {
        Action::CallNik
        | Action::CallNoKk
        | Action::VerifyByElement
        | Action::SearchByElements
        | Action::PortalRead
        | Action::PortalExport => true,
        Action::PortalWrite | Action::SubmitBalikan => false,
    }
}

/// Asks the sidecar about an authenticated card-reader request, then checks a valid
/// verdict against `snap`. `Ok`: valid.
pub(crate) async fn check(
    client: &SamClient,
    snap: &Snapshot,
    reader: ReaderRequest,
    body: &[u8],
    user_id: &str,
    action: Action,
) -> Result<(), Rejection> {
    let request = ValidateRequest {
        method: reader.method,
        path: reader.path,
        body_sha256: body_sha256_hex(body),
        claimed_body_sha256: reader.claimed_body_sha256,
        user_id: user_id.to_string(),
        data_lookup: reads_data(action),
        sam: reader.headers,
    };
    let started = Instant::now();
    let answer = client.validate(&request).await;
    tracing::debug!(
        sam.id = request.sam.sam_id.as_str(),
        duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "SAM sidecar asked"
    );
    match answer {
        Ok(verdict) => match verdict.reason {
            None => in_force(snap, &request.sam.sam_id),
            Some(reason) => Err(Rejection::new(Refusal::CardReader(reason), verdict.detail)),
        },
        Err(SamUnavailable::Timeout(limit)) => Err(Rejection::new(
            Refusal::CardReader(SamReason::SidecarTimeout),
            format!(
                "layanan validasi SAM tidak menjawab dalam {} ms; permintaan card reader ditolak",
                limit.as_millis()
            ),
        )),
        // The cause is logged by the client (once per change of health), not told to the
        // Pengguna.
        Err(SamUnavailable::Failed(_)) => Err(Rejection::new(
            Refusal::CardReader(SamReason::SidecarUnavailable),
            "layanan validasi SAM tidak dapat dihubungi; permintaan card reader ditolak sampai layanan pulih",
        )),
    }
}

/// The `result` label of `gerbang_sam_validations_total` for what [`check`] found: the
/// sidecar not answering is one result for the alert; every verdict it gives is its own.
pub(crate) fn outcome(checked: &Result<(), Rejection>) -> &'static str {
    match checked.as_ref().map_err(|r| r.refusal) {
        Ok(()) => "valid",
        Err(Refusal::CardReader(SamReason::SidecarTimeout | SamReason::SidecarUnavailable)) => {
            "unavailable"
        }
        Err(Refusal::CardReader(reason)) => reason.code(),
        Err(_) => "unavailable",
    }
}

/// Whether the gateway's own snapshot has the SAM registered, active, and in an active
/// agreement. The sidecar checked the same on its registry; a sidecar still on an older
/// one (it looks at the files every 200 ms) is overruled, never followed.
fn in_force(snap: &Snapshot, sam_id: &str) -> Result<(), Rejection> {
    let refused = |v: Verdict| {
        let reason = v.reason.unwrap_or(SamReason::SamInactive);
        tracing::warn!(
            sam.id = sam_id,
            reason = reason.code(),
            "the SAM sidecar accepted a reader the gateway's PKS set and sanctions refuse (the sidecar has not reloaded yet?)"
        );
        Rejection::new(Refusal::CardReader(reason), v.detail)
    };
    let Some((sam, pks)) = snap.sam(sam_id) else {
        return Err(refused(unknown_sam(sam_id)));
    };
    match sam_not_active(sam_id, sam.status).or_else(|| pks_not_active(&pks.nomor, pks.status)) {
        Some(verdict) => Err(refused(verdict)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pairs: &[(&str, &str)]) -> RequestHeader {
        let mut req =
            RequestHeader::build("POST", b"/dukcapil/get_json/X/CALL_NIK?a=1", None).expect("req");
        for (k, v) in pairs {
            req.append_header(k.to_string(), *v).expect("header");
        }
        req
    }

    #[test]
    fn no_sam_header_is_a_web_service_request() {
        let req = header(&[("x-forwarded-for", "1.2.3.4")]);
        assert!(reader_request(&req, true).expect("ok").is_none());
        assert!(reader_request(&req, false).expect("ok").is_none());
    }

    #[test]
    fn any_sam_header_without_a_sidecar_is_refused() {
        let req = header(&[("X-SAM-Foo", "1")]);
        let Rejection { refusal, .. } = reader_request(&req, false).err().expect("refused");
        assert_eq!(refusal, Refusal::CardReaderUnavailable);
    }

    #[test]
    fn values_path_and_digest_are_taken_as_sent() {
        let req = header(&[
            ("X-SAM-Id", "SAM-1"),
            ("X-SAM-Nonce", "nonce-0000000001"),
            ("Content-Digest", &gerbang_sam::content_digest(b"{}")),
        ]);
        let r = reader_request(&req, true).expect("ok").expect("reader");
        assert_eq!(r.headers.sam_id, "SAM-1");
        assert_eq!(r.headers.nonce, "nonce-0000000001");
        assert_eq!(r.headers.signature, "");
        assert_eq!(r.path, "/dukcapil/get_json/X/CALL_NIK?a=1");
        assert_eq!(r.method, "POST");
        assert_eq!(r.claimed_body_sha256, Some(body_sha256_hex(b"{}")));
    }

    #[test]
    fn an_over_long_header_or_path_is_refused_before_the_sidecar_is_asked() {
        let long = "A".repeat(MAX_HEADER_VALUE + 1);
        let req = header(&[("X-SAM-Id", long.as_str())]);
        let Rejection {
            refusal, detail, ..
        } = reader_request(&req, true).err().expect("refused");
        assert_eq!(refusal, Refusal::CardReader(SamReason::MalformedHeaders));
        assert!(detail.contains("x-sam-id"), "{detail}");
        let path = format!(
            "/dukcapil/get_json/X/CALL_NIK?q={}",
            "a".repeat(MAX_READER_PATH)
        );
        let mut req = RequestHeader::build("POST", path.as_bytes(), None).expect("req");
        req.append_header("X-SAM-Id", "SAM-1").expect("header");
        let Rejection {
            refusal, detail, ..
        } = reader_request(&req, true).err().expect("refused");
        assert_eq!(refusal, Refusal::BodyTooLarge);
        assert!(detail.contains(&MAX_READER_PATH.to_string()), "{detail}");
        // At the limit, it goes on to the sidecar.
        let path = format!("/{}", "a".repeat(MAX_READER_PATH - 1));
        let mut req = RequestHeader::build("POST", path.as_bytes(), None).expect("req");
        req.append_header("X-SAM-Id", "A".repeat(MAX_HEADER_VALUE))
            .expect("header");
        assert!(reader_request(&req, true).expect("ok").is_some());
    }

    #[test]
    fn a_repeated_sam_header_is_malformed() {
        let req = header(&[("X-SAM-Nonce", "a"), ("X-SAM-Nonce", "b")]);
        let Rejection {
            refusal, detail, ..
        } = reader_request(&req, true).err().expect("refused");
        assert_eq!(refusal, Refusal::CardReader(SamReason::MalformedHeaders));
        assert!(detail.contains("x-sam-nonce"), "{detail}");
    }
}

//! The card-reader channel (art. 24–26; juknis §4). A request carrying any `X-SAM-*`
//! header is a card-reader request: after authentication and before authorization the
//! SAM sidecar validates it, and only a valid verdict lets it reach Cedar with
//! `sam_valid = true`. No sidecar configured, or one that is down, slow or answers
//! nonsense: the request is refused (fail closed), never treated as a web-service call.

use std::time::Instant;

use gerbang_core::{Refusal, SamReason};
use gerbang_policy::Action;
use gerbang_sam::{
    HEADER_CONTENT_DIGEST, HEADER_PREFIX, HEADERS, SamClient, SamHeaders, SamUnavailable,
    ValidateRequest, body_sha256_hex, content_digest_sha256_hex,
};
use pingora::http::RequestHeader;

/// A refusal and its detail for the Pengguna's operator.
pub(crate) type Refused = (Refusal, String);

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
/// such header, a web-service request. Refused when no sidecar is configured, or when a
/// header is repeated or not text (ambiguous: which one did the reader sign?). Missing
/// or malformed values are the sidecar's to name.
pub(crate) fn reader_request(
    req: &RequestHeader,
    configured: bool,
) -> Result<Option<ReaderRequest>, Refused> {
    if !req
        .headers
        .keys()
        .any(|k| k.as_str().starts_with(HEADER_PREFIX))
    {
        return Ok(None);
    }
    if !configured {
        return Err((
            Refusal::CardReaderUnavailable,
            "validasi SAM card reader belum dikonfigurasi pada gateway ini".into(),
        ));
    }
    let malformed = |detail: String| (Refusal::CardReader(SamReason::MalformedHeaders), detail);
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
        *slot = value
            .to_str()
            .map_err(|_| malformed(format!("header {name} bukan teks ASCII")))?
            .to_string();
    }
    let claimed_body_sha256 = match req.headers.get(HEADER_CONTENT_DIGEST) {
        // An unusable digest only loses the altered-body diagnosis; it grants nothing.
        Some(v) => v.to_str().ok().and_then(content_digest_sha256_hex),
        None => None,
    };
    Ok(Some(ReaderRequest {
        headers: SamHeaders::from_values(values),
        method: req.method.as_str().to_string(),
        path: req
            .uri
            .path_and_query()
            .map_or_else(|| req.uri.path().to_string(), |p| p.as_str().to_string()),
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

/// Asks the sidecar about an authenticated card-reader request. `Ok`: valid.
pub(crate) async fn check(
    client: &SamClient,
    reader: ReaderRequest,
    body: &[u8],
    user_id: &str,
    action: Action,
) -> Result<(), Refused> {
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
            None => Ok(()),
            Some(reason) => Err((Refusal::CardReader(reason), verdict.detail)),
        },
        Err(SamUnavailable::Timeout(limit)) => Err((
            Refusal::CardReader(SamReason::SidecarTimeout),
            format!(
                "layanan validasi SAM tidak menjawab dalam {} ms; permintaan card reader ditolak",
                limit.as_millis()
            ),
        )),
        // The cause is logged by the client (once per change of health), not told to the
        // Pengguna.
        Err(SamUnavailable::Failed(_)) => Err((
            Refusal::CardReader(SamReason::SidecarUnavailable),
            "layanan validasi SAM tidak dapat dihubungi; permintaan card reader ditolak sampai layanan pulih".into(),
        )),
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
        let (refusal, _) = reader_request(&req, false).err().expect("refused");
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
    fn a_repeated_sam_header_is_malformed() {
        let req = header(&[("X-SAM-Nonce", "a"), ("X-SAM-Nonce", "b")]);
        let (refusal, detail) = reader_request(&req, true).err().expect("refused");
        assert_eq!(refusal, Refusal::CardReader(SamReason::MalformedHeaders));
        assert!(detail.contains("x-sam-nonce"), "{detail}");
    }
}

//! Data balikan: what a Pengguna returns to Dukcapil under its PKS (`docs/balikan.md`).
//!
//! The web service `POST /dukcapil/balikan/{instansi}` goes through the same first stages as
//! a lookup (identify, read body, authenticate, client certificate, burst limits, decide with
//! Cedar's `SubmitBalikan`), then [`Gateway::submit_balikan`], which the Web Portal's upload
//! and form share: the PKS must name `data_balikan`; each record is checked field by field;
//! its NIK must be one the same PKS looked up within `[balikan] window_days`; the User ID's
//! daily record limit applies; the accepted records are forwarded to the DWH's balikan
//! service as validated, recorded in the decision log (NIK digests and field names, never a
//! value), and counted. Each record gets its own verdict; no NIK hit is used.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use serde_json::value::RawValue;

use gerbang_core::{
    BalikanField, Channel, Nik, Refusal, Rejection, RequestBody, envelope, push_json_string,
};
use gerbang_policy::{Action, Snapshot, UserRef};
use gerbang_quota::QuotaError;

use crate::gateway::{Gateway, GatewayCtx};
use crate::stages::{Stop, check_client_cert, check_ip_user, identify};

/// A record as sent: its columns (key, value), or why it could not be read at all.
pub(crate) type Row = Result<Vec<(String, String)>, String>;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted,
    Refused(String),
}

/// A batch's outcome, for the decision log, the metrics and the portal's page.
#[derive(Debug, Default)]
pub(crate) struct BalikanCtx {
    pub(crate) accepted: u32,
    pub(crate) refused: u32,
    /// The accepted records' NIKs as the decision log's keyed digests.
    pub(crate) digests: Vec<gerbang_audit::NikDigest>,
    /// The names (PKS spelling) of the fields the accepted records carried.
    pub(crate) fields: Vec<String>,
}

/// A record's checked values, by field.
pub(crate) type Values<'f> = Vec<(&'f BalikanField, String)>;

/// A record that passed the field checks: its NIK, its digest and its values by field.
struct Valid<'f> {
    nik: Nik,
    digest: gerbang_audit::NikDigest,
    values: Values<'f>,
}

/// Longest key of a record shown back in a refusal (a client chose it).
const SHOWN_KEY_CHARS: usize = 40;

impl Gateway {
    /// The data-balikan web service, answered here whatever happens.
    pub(crate) async fn balikan_request(
        &self,
        session: &mut Session,
        ctx: &mut GatewayCtx,
    ) -> Result<bool> {
        ctx.action = Some(Action::SubmitBalikan);
        match self.balikan_api(session, ctx).await {
            Ok(body) => {
                let mut resp = self.answer_header(200, None)?;
                resp.set_content_length(body.len())?;
                session.write_response_header(Box::new(resp), false).await?;
                session.write_response_body(Some(body), true).await?;
            }
            Err(Stop::Refuse(reject)) => {
                ctx.refusal = Some(reject.refusal);
                self.answer(session, &reject, None).await?;
            }
            Err(Stop::Fail(e)) => return Err(e),
        }
        Ok(true)
    }

    /// The web service's stages up to the decision, then the batch.
    async fn balikan_api(
        &self,
        session: &mut Session,
        ctx: &mut GatewayCtx,
    ) -> std::result::Result<Bytes, Stop> {
        let peer = identify(ctx.peer)?;
        if session.req_header().method != http::Method::POST {
            return Err(Rejection::new(Refusal::MethodNotAllowed, "gunakan POST")
                .body_unread()
                .into());
        }
        let limit = balikan_body_limit(self.balikan.max_records);
        let body = self.read_body_within(session, limit).await??;
        let snap = self.snapshot.load_full();
        let request = BalikanBody::parse(&body, self.balikan.max_records)?;
        ctx.user_id = Some(request.user_id.clone());
        check_ip_user(request.ip_user.as_deref(), peer)?;
        let user = self
            .authenticate(&snap, &request.user_id, &request.password, peer)
            .await?;
        ctx.attribute_to(&snap, user);
        check_client_cert(session, snap.user(user))?;
        self.burst_limits(&snap.user(user).id, &snap.pks(user).pengguna)?;
        let decision = self.authorize(
            ctx,
            &snap,
            user,
            Action::SubmitBalikan,
            Channel::WebService,
            peer,
            false,
        )?;
        ctx.decision = Some(decision);
        ctx.snapshot = Some(Arc::clone(&snap));
        let verdicts = self.submit_balikan(ctx, &snap, user, request.rows).await?;
        Ok(Bytes::from(verdicts_body(&verdicts)))
    }

    /// Checks, forwards and records a batch of records of an authenticated User ID allowed
    /// to return data (the decision is the caller's). `Err`: nothing of the batch was
    /// accepted or forwarded.
    pub(crate) async fn submit_balikan(
        &self,
        ctx: &mut GatewayCtx,
        snap: &Snapshot,
        user: UserRef,
        rows: Vec<Row>,
    ) -> std::result::Result<Vec<Verdict>, Rejection> {
        let pks = snap.pks(user);
        let (audit, fields) = self.balikan_fields(snap, user)?;
        let (mut verdicts, mut valid) = check_rows(audit, &fields, &rows);
        self.looked_up(&mut verdicts, &mut valid, &pks.nomor)
            .await?;
        let reserved = self
            .reserve_records(&mut verdicts, &mut valid, &snap.user(user).id)
            .await?;
        let user_id = snap.user(user).id.clone();
        if !valid.is_empty() {
            let sent = self.forward_balikan(ctx, &pks.pengguna, &valid).await;
            if let Err(reject) = sent {
                self.refund_records(&user_id, reserved);
                return Err(reject);
            }
        }
        let mut outcome = BalikanCtx {
            accepted: u32::try_from(valid.len()).unwrap_or(u32::MAX),
            refused: u32::try_from(verdicts.len() - valid.len()).unwrap_or(u32::MAX),
            digests: valid.iter().map(|(_, v)| v.digest.clone()).collect(),
            fields: Vec::new(),
        };
        for (_, v) in &valid {
            for (f, _) in &v.values {
                if !outcome.fields.contains(&f.nama) {
                    outcome.fields.push(f.nama.clone());
                }
            }
        }
        self.metrics
            .count_balikan(&pks.pengguna, outcome.accepted, outcome.refused);
        ctx.balikan = Some(outcome);
        self.audit_now(ctx).await;
        Ok(verdicts)
    }

    /// The verdicts a batch would get now, for the portal's preview: the field checks and
    /// whether this PKS looked each NIK up (its own lookups, nothing of the DWH's data).
    /// Nothing is sent, counted, reserved or recorded; the send step checks again.
    pub(crate) async fn preview_balikan(
        &self,
        snap: &Snapshot,
        user: UserRef,
        rows: &[Row],
    ) -> std::result::Result<Vec<Verdict>, Rejection> {
        let (audit, fields) = self.balikan_fields(snap, user)?;
        let (mut verdicts, mut valid) = check_rows(audit, &fields, rows);
        self.looked_up(&mut verdicts, &mut valid, &snap.pks(user).nomor)
            .await?;
        Ok(verdicts)
    }

    /// The fields the User ID's PKS returns, and the audit key its NIKs are digested with:
    /// refusal 34 for a PKS that names none, 35 without a decision log.
    fn balikan_fields<'s>(
        &'s self,
        snap: &'s Snapshot,
        user: UserRef,
    ) -> std::result::Result<(&'s crate::record::Audit, Vec<&'s BalikanField>), Rejection> {
        let pks = snap.pks(user);
        if pks.data_balikan.is_empty() {
            return Err(Rejection::new(
                Refusal::BalikanNotAgreed,
                format!("PKS {} tidak menyebut data balikan", pks.nomor),
            ));
        }
        let Some(audit) = &self.audit else {
            return Err(Rejection::new(
                Refusal::BalikanUnavailable,
                "log keputusan tidak dikonfigurasi di gateway ini",
            ));
        };
        Ok((audit, balikan_fields(snap, user)))
    }

    /// Refuses the records whose NIK the PKS did not look up within the window.
    async fn looked_up(
        &self,
        verdicts: &mut [Verdict],
        valid: &mut Vec<(usize, Valid<'_>)>,
        pks: &str,
    ) -> std::result::Result<(), Rejection> {
        if valid.is_empty() {
            return Ok(());
        }
        let digests: Vec<String> = valid
            .iter()
            .map(|(_, v)| v.digest.as_str().to_string())
            .collect();
        let now = self.clock.now().timestamp();
        let seen = self
            .shared
            .lookups
            .looked_up(pks, &digests, now)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "balikan refused: the looked-up NIKs cannot be read");
                Rejection::new(
                    Refusal::BalikanUnavailable,
                    "NIK yang pernah diakses tidak dapat diperiksa saat ini",
                )
            })?;
        let days = self.balikan.window.as_secs() / 86_400;
        let mut seen = seen.into_iter();
        valid.retain(|(i, _)| {
            if seen.next().unwrap_or(false) {
                return true;
            }
            verdicts[*i] = Verdict::Refused(format!(
                "NIK ini tidak diakses oleh PKS ini dalam {days} hari terakhir"
            ));
            false
        });
        Ok(())
    }

    /// Takes one unit of the User ID's daily record limit per record; the records past it
    /// are refused. Returns how many were taken (to give back if the DWH fails).
    async fn reserve_records(
        &self,
        verdicts: &mut [Verdict],
        valid: &mut Vec<(usize, Valid<'_>)>,
        user_id: &str,
    ) -> std::result::Result<u32, Rejection> {
        let key = balikan_key(user_id);
        let day = self.clock.today();
        let limit = self.balikan.daily_records;
        let mut taken = 0u32;
        let mut reserved = Vec::with_capacity(valid.len());
        for (i, _) in valid.iter() {
            match self.meter.reserve(&key, day, limit).await {
                Ok(_) => {
                    taken += 1;
                    reserved.push(true);
                }
                Err(QuotaError::Exhausted { .. }) => {
                    reserved.push(false);
                    verdicts[*i] = Verdict::Refused(format!(
                        "batas harian data balikan User ID ini ({limit} data) sudah tercapai"
                    ));
                }
                Err(e @ QuotaError::Unavailable(_)) => {
                    self.refund_records(user_id, taken);
                    tracing::warn!(error = %e, "balikan refused: the daily record limit cannot be counted");
                    return Err(Rejection::new(
                        Refusal::BalikanUnavailable,
                        "batas harian data balikan tidak dapat dihitung saat ini",
                    ));
                }
            }
        }
        let mut reserved = reserved.into_iter();
        valid.retain(|_| reserved.next().unwrap_or(false));
        Ok(taken)
    }

    fn refund_records(&self, user_id: &str, n: u32) {
        let key = balikan_key(user_id);
        let day = self.clock.today();
        for _ in 0..n {
            self.meter.refund(&key, day);
        }
    }

    /// Sends the accepted records to the DWH's balikan service, as validated.
    async fn forward_balikan(
        &self,
        ctx: &mut GatewayCtx,
        pengguna: &str,
        valid: &[(usize, Valid<'_>)],
    ) -> std::result::Result<(), Rejection> {
        let body = upstream_body(valid);
        let path = crate::route::balikan_upstream_path(pengguna);
        let req = self
            .balikan_upstream_request(&path, body.len(), ctx.peer)
            .map_err(|_| Rejection::new(Refusal::UpstreamUnavailable, ""))?;
        let started = Instant::now();
        ctx.upstream_started = Some(started);
        let exchanged = self
            .upstream
            .exchange(&req, &Bytes::from(body), crate::forward::MAX_ANSWER_BYTES)
            .await;
        ctx.upstream_elapsed = Some(started.elapsed());
        let answer = match exchanged {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, "DWH balikan exchange failed");
                return Err(Rejection::new(crate::forward::upstream_refusal(&e), ""));
            }
        };
        ctx.upstream_status = Some(answer.status);
        if answer.status != 200 {
            return Err(Rejection::new(
                Refusal::UpstreamUnavailable,
                format!("DWH menjawab HTTP {}", answer.status),
            ));
        }
        if !dwh_accepted(&answer.body) {
            ctx.upstream_error = Some("balikan_refused");
            return Err(Rejection::new(
                Refusal::UpstreamInvalid,
                "DWH tidak menerima kiriman data balikan",
            ));
        }
        Ok(())
    }

    fn balikan_upstream_request(
        &self,
        path: &str,
        len: usize,
        peer: Option<IpAddr>,
    ) -> Result<RequestHeader> {
        let mut req = RequestHeader::build(http::Method::POST, path.as_bytes(), Some(5))?;
        req.insert_header(http::header::HOST, self.upstream.host.as_str())?;
        req.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        req.insert_header(http::header::CONTENT_LENGTH, len.to_string())?;
        if let Some(peer) = peer {
            req.insert_header("X-Forwarded-For", peer.to_string())?;
        }
        Ok(req)
    }

    /// Notes a released lookup's NIK for its PKS's data balikan, when the PKS names any.
    pub(crate) fn remember_lookup(&self, ctx: &GatewayCtx) {
        // Decided when the User ID was attributed: no scan of the agreements per request.
        let (true, Some(pks), Some(digest)) = (ctx.balikan_obligated, &ctx.pks, &ctx.nik_digest)
        else {
            return;
        };
        let window = i64::try_from(self.balikan.window.as_secs()).unwrap_or(i64::MAX);
        let until = self.clock.now().timestamp().saturating_add(window);
        self.shared.lookups.remember(pks, digest.as_str(), until);
    }
}

/// The balikan fields of the User ID's PKS, in its order (none when it names none).
pub(crate) fn balikan_fields(snap: &Snapshot, user: UserRef) -> Vec<&BalikanField> {
    snap.pks(user)
        .data_balikan
        .iter()
        .filter_map(|n| snap.vocabulary().balikan(n))
        .collect()
}

/// Each record's field checks: a verdict per record, and the valid ones with their digests.
fn check_rows<'f>(
    audit: &crate::record::Audit,
    fields: &[&'f BalikanField],
    rows: &[Row],
) -> (Vec<Verdict>, Vec<(usize, Valid<'f>)>) {
    let mut verdicts = Vec::with_capacity(rows.len());
    let mut valid = Vec::new();
    for row in rows {
        match row.as_ref().map_err(Clone::clone).and_then(|columns| {
            check_row(columns, fields).map(|(nik, values)| Valid {
                digest: audit.key.nik_digest(nik.as_str()),
                nik,
                values,
            })
        }) {
            Ok(v) => {
                valid.push((verdicts.len(), v));
                verdicts.push(Verdict::Accepted);
            }
            Err(why) => verdicts.push(Verdict::Refused(why)),
        }
    }
    (verdicts, valid)
}

/// The meter key of a User ID's daily balikan records: `@` cannot start a User ID.
pub(crate) fn balikan_key(user_id: &str) -> String {
    format!("@balikan/{user_id}")
}

/// The largest body a balikan request may have: a kilobyte per record, and the credentials.
pub(crate) fn balikan_body_limit(max_records: usize) -> usize {
    max_records.saturating_mul(1024).saturating_add(4096)
}

/// A balikan request's body: the credentials and the records.
struct BalikanBody {
    user_id: String,
    password: String,
    ip_user: Option<String>,
    rows: Vec<Row>,
}

impl BalikanBody {
    /// Steps 6–7a for a balikan: a JSON object with `user_id`, `password`, optionally
    /// `ip_user`, and `data`, a list of at most `max` records; nothing else.
    fn parse(body: &[u8], max: usize) -> std::result::Result<Self, Rejection> {
        let parsed = RequestBody::parse(body).map_err(|e| crate::stages::body_rejection(&e))?;
        if let Some((key, _)) = parsed
            .keys()
            .find(|(_, lower)| !["user_id", "password", "ip_user", "data"].contains(lower))
        {
            return Err(Rejection::new(
                Refusal::UnknownParameter,
                format!(
                    "parameter \"{}\" tidak dikenal untuk data balikan",
                    crate::stages::shown_key(key)
                ),
            ));
        }
        let text = |key: &str| {
            parsed.text(key).map_err(|e| {
                Rejection::new(
                    Refusal::IncompleteParameters,
                    format!("\"{}\" harus berupa teks atau angka", e.key),
                )
            })
        };
        let user_id = text("user_id")?.unwrap_or_default();
        let password = text("password")?.unwrap_or_default();
        let ip_user = text("ip_user")?;
        crate::stages::check_credentials(&user_id, &password)?;
        let Some(data) = parsed.raw("data") else {
            return Err(Rejection::new(
                Refusal::IncompleteParameters,
                "\"data\" wajib berisi daftar data balikan",
            ));
        };
        let records: Vec<&RawValue> = serde_json::from_str(data.get()).map_err(|_| {
            Rejection::new(
                Refusal::IncompleteParameters,
                "\"data\" harus berupa daftar (array JSON) data balikan",
            )
        })?;
        if records.is_empty() {
            return Err(Rejection::new(
                Refusal::IncompleteParameters,
                "\"data\" kosong: kirim paling sedikit satu data balikan",
            ));
        }
        if records.len() > max {
            return Err(Rejection::new(
                Refusal::BodyTooLarge,
                format!("paling banyak {max} data balikan per permintaan"),
            ));
        }
        let rows = records.into_iter().map(json_row).collect();
        Ok(Self {
            user_id,
            password,
            ip_user,
            rows,
        })
    }
}

/// One JSON record as columns: an object whose values are text or whole numbers.
fn json_row(raw: &RawValue) -> Row {
    let parsed = RequestBody::parse(raw.get().as_bytes()).map_err(|e| match e {
        gerbang_core::BodyError::DuplicateKey(k) => {
            format!("kolom {} diulang", shown(&k))
        }
        gerbang_core::BodyError::NonAsciiKey => "nama kolom memuat karakter di luar ASCII".into(),
        gerbang_core::BodyError::NotJson(_) => "data bukan objek JSON".into(),
    })?;
    let mut columns = Vec::new();
    // `text` looks a key up by its lower-case form; the record keeps the client's spelling.
    for (key, lower) in parsed.keys() {
        let value = parsed
            .text(lower)
            .map_err(|_| format!("nilai kolom {} harus berupa teks", shown(key)))?
            .unwrap_or_default();
        columns.push((key.to_string(), value));
    }
    Ok(columns)
}

/// A record that passed [`check_row`]: its NIK and its values by field, trimmed.
pub(crate) type Checked<'f> = (Nik, Values<'f>);

/// Checks one record's columns against the PKS's fields: the NIK in the Dukcapil format,
/// only the PKS's columns, each at most once, each value in its format, at least one.
pub(crate) fn check_row<'f>(
    columns: &[(String, String)],
    fields: &[&'f BalikanField],
) -> std::result::Result<Checked<'f>, String> {
    let mut nik = None;
    let mut values = Vec::new();
    let mut seen = HashSet::new();
    for (key, value) in columns {
        let upper = key.trim().to_ascii_uppercase();
        if !seen.insert(upper.clone()) {
            return Err(format!("kolom {} diulang", shown(key)));
        }
        if upper == "NIK" {
            nik = Some(value.trim());
            continue;
        }
        let Some(field) = fields.iter().find(|f| f.kolom == upper) else {
            return Err(format!(
                "kolom {} tidak diatur dalam data balikan PKS ini",
                shown(key)
            ));
        };
        match field.check(value) {
            Ok(v) => values.push((*field, v.to_string())),
            Err(why) => return Err(format!("{}: {why}", field.kolom)),
        }
    }
    let nik = match nik {
        None | Some("") => return Err("NIK wajib diisi".into()),
        Some(n) => Nik::parse(n).map_err(|_| "NIK tidak sesuai format Dukcapil".to_string())?,
    };
    if values.is_empty() {
        return Err("tidak ada data balikan selain NIK".into());
    }
    Ok((nik, values))
}

/// A key a client chose, made safe to show: printable ASCII, bounded.
fn shown(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .take(SHOWN_KEY_CHARS)
        .collect();
    if key.chars().count() > SHOWN_KEY_CHARS {
        s.push('…');
    }
    s
}

/// The DWH's body: `{"data":[{"NIK":"…","<KOLOM>":"…"},…]}`, the values as checked.
fn upstream_body(valid: &[(usize, Valid<'_>)]) -> Vec<u8> {
    let mut out = String::from("{\"data\":[");
    for (n, (_, v)) in valid.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str("{\"NIK\":");
        push_json_string(&mut out, v.nik.as_str());
        for (field, value) in &v.values {
            out.push(',');
            push_json_string(&mut out, &field.kolom);
            out.push(':');
            push_json_string(&mut out, value);
        }
        out.push('}');
    }
    out.push_str("]}");
    out.into_bytes()
}

/// Whether the DWH's answer says it took the records: its envelope without an error code.
fn dwh_accepted(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Page {
        content: Vec<serde_json::Map<String, serde_json::Value>>,
    }
    serde_json::from_slice::<Page>(body).is_ok_and(|p| {
        p.content
            .first()
            .is_some_and(|c| !c.contains_key("RESPONSE_CODE"))
    })
}

/// The answer: one entry per record (`BARIS` from 1, `STATUS`, `ALASAN` when refused) in
/// the DWH's envelope, with the counts.
pub(crate) fn verdicts_body(verdicts: &[Verdict]) -> String {
    let entries: Vec<String> = verdicts
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut e = format!("{{\"BARIS\":{},\"STATUS\":", i + 1);
            match v {
                Verdict::Accepted => push_json_string(&mut e, "Diterima"),
                Verdict::Refused(why) => {
                    push_json_string(&mut e, "Ditolak");
                    e.push_str(",\"ALASAN\":");
                    push_json_string(&mut e, why);
                }
            }
            e.push('}');
            e
        })
        .collect();
    let accepted = verdicts.iter().filter(|v| **v == Verdict::Accepted).count();
    let mut out = envelope(&entries);
    out.pop();
    out.push_str(&format!(
        ",\"DITERIMA\":{accepted},\"DITOLAK\":{}}}",
        verdicts.len() - accepted
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gerbang_core::Vocabulary;

    fn columns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_record_is_checked_against_the_pks_fields() {
        let vocab = Vocabulary::embedded();
        let fields: Vec<&BalikanField> = ["NOP PBB-P2", "NPWPD"]
            .iter()
            .filter_map(|n| vocab.balikan(n))
            .collect();
        let ok = columns(&[
            ("nik", "3201014101900001"),
            ("NOP_PBB_P2", "331309000100200010"),
            ("npwpd", "P.2.0001234.33.13"),
        ]);
        let (nik, values) = check_row(&ok, &fields).expect("valid");
        assert_eq!(nik.as_str(), "3201014101900001");
        assert_eq!(values.len(), 2);
        let refused =
            |pairs: &[(&str, &str)]| check_row(&columns(pairs), &fields).expect_err("refused");
        assert_eq!(
            refused(&[("NIK", "3201014101900001"), ("NOP_PBB_P2", "12")]),
            "NOP_PBB_P2: harus 18 digit angka"
        );
        assert!(
            refused(&[("NIK", "3201014101900001"), ("NO_REKAM_MEDIS", "RM1")])
                .contains("tidak diatur")
        );
        assert_eq!(
            refused(&[("NOP_PBB_P2", "331309000100200010")]),
            "NIK wajib diisi"
        );
        assert_eq!(
            refused(&[
                ("NIK", "9901014101900001"),
                ("NOP_PBB_P2", "331309000100200010")
            ]),
            "NIK tidak sesuai format Dukcapil"
        );
        assert_eq!(
            refused(&[("NIK", "3201014101900001")]),
            "tidak ada data balikan selain NIK"
        );
        assert!(
            refused(&[
                ("NIK", "3201014101900001"),
                ("NPWPD", "P.2.0001234.33.13"),
                ("npwpd", "P.2.0001234.33.13")
            ])
            .contains("diulang")
        );
    }

    #[test]
    fn a_refusal_shows_a_key_but_never_a_value() {
        let vocab = Vocabulary::embedded();
        let fields: Vec<&BalikanField> = vocab.balikan("NPWPD").into_iter().collect();
        let long_key = "K".repeat(500);
        let why = check_row(
            &columns(&[("NIK", "3201014101900001"), (&long_key, "x")]),
            &fields,
        )
        .expect_err("unknown column");
        assert!(why.len() < 120, "{why}");
        let why = check_row(
            &columns(&[("NIK", "3201014101900001"), ("NPWPD", "rahasia-123")]),
            &fields,
        )
        .expect_err("bad value");
        assert!(!why.contains("rahasia"), "{why}");
    }

    #[test]
    fn the_body_takes_credentials_and_a_bounded_list() {
        let ok = br#"{"user_id":"u1","password":"p","data":[{"NIK":"3201014101900001","NPWPD":"P.2.0001234.33.13"},{"NIK":1},[1]]}"#;
        let b = BalikanBody::parse(ok, 10).expect("valid");
        assert_eq!(b.user_id, "u1");
        assert_eq!(b.rows.len(), 3);
        assert!(b.rows[0].is_ok());
        assert_eq!(b.rows[1].as_ref().expect("object")[0].1, "1");
        assert!(b.rows[2].is_err());
        let refusal = |body: &[u8], max| BalikanBody::parse(body, max).err().map(|r| r.refusal);
        assert_eq!(
            refusal(
                br#"{"user_id":"u1","password":"p","nik":"1","data":[{}]}"#,
                10
            ),
            Some(Refusal::UnknownParameter)
        );
        assert_eq!(
            refusal(br#"{"user_id":"u1","password":"p","data":{}}"#, 10),
            Some(Refusal::IncompleteParameters)
        );
        assert_eq!(
            refusal(br#"{"user_id":"u1","password":"p","data":[]}"#, 10),
            Some(Refusal::IncompleteParameters)
        );
        assert_eq!(
            refusal(br#"{"user_id":"u1","password":"p","data":[{},{}]}"#, 1),
            Some(Refusal::BodyTooLarge)
        );
        assert_eq!(
            refusal(br#"{"user_id":"","password":"p","data":[{}]}"#, 1),
            Some(Refusal::EmptyCredentials)
        );
    }

    #[test]
    fn the_answer_lists_each_record() {
        let body = verdicts_body(&[Verdict::Accepted, Verdict::Refused("NIK \"x\"".into())]);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["content"][0]["STATUS"], "Diterima");
        assert_eq!(v["content"][1]["BARIS"], 2);
        assert_eq!(v["content"][1]["ALASAN"], "NIK \"x\"");
        assert_eq!(v["DITERIMA"], 1);
        assert_eq!(v["DITOLAK"], 1);
    }

    #[test]
    fn the_dwh_must_say_it_took_them() {
        assert!(dwh_accepted(
            br#"{"content":[{"RESPON":"Data Balikan Diterima","JUMLAH":1}]}"#
        ));
        assert!(!dwh_accepted(
            br#"{"content":[{"RESPON":"Parameter Tidak Lengkap","RESPONSE_CODE":"07"}]}"#
        ));
        assert!(!dwh_accepted(b"<html>"));
    }
}

//! Data balikan on the Web Portal (`docs/balikan.md`): the page, the preview of an uploaded
//! CSV or XLSX file, its send, and the online form for one record. The gateway's own pages:
//! they never reach the DWH's portal application and show nothing of the DWH's data, only
//! what the sender uploaded and the verdicts. Sending goes through
//! [`Gateway::submit_balikan`], as the web service does; the preview checks the same way and
//! sends nothing. The caller has checked the session, the origin and Cedar's decision on
//! `SubmitBalikan` over `web_portal`.

use std::sync::Arc;

use pingora::prelude::*;
use pingora::proxy::Session;

use gerbang_core::{Refusal, Rejection};
use gerbang_policy::{Snapshot, UserRef};

use super::PortalRoute;
use super::answer::{PortalAnswer, header};
use super::page::{Shown, balikan_page, preview_page, result_page, what};
use super::upload::{FileRow, carried, carry, multipart_file, read_file};
use crate::balikan::{Verdict, balikan_body_limit, balikan_fields};
use crate::gateway::{Gateway, GatewayCtx};

/// Room for the multipart framing and the file's part headers around its bytes.
const MULTIPART_SLACK: usize = 16 * 1024;

impl Gateway {
    /// Answers one of the balikan routes.
    pub(super) async fn portal_balikan(
        &self,
        session: &mut Session,
        ctx: &mut GatewayCtx,
        route: PortalRoute,
        snap: &Arc<Snapshot>,
        user: UserRef,
    ) -> Result<PortalAnswer> {
        let pks = snap.pks(user);
        let fields = balikan_fields(snap, user);
        let max = self.balikan.max_records;
        let again = |status: u16, refusal: Refusal, message: &str| PortalAnswer {
            refusal: Some(refusal),
            ..PortalAnswer::html(
                status,
                balikan_page(&pks.nomor, &fields, max, Some(message)),
            )
        };
        if route == PortalRoute::Balikan {
            return Ok(PortalAnswer::html(
                200,
                balikan_page(&pks.nomor, &fields, max, None),
            ));
        }
        if fields.is_empty() {
            return Ok(PortalAnswer::refused(
                Refusal::BalikanNotAgreed.rest_status(),
                Refusal::BalikanNotAgreed,
                what(route),
                &format!("PKS {} tidak menyebut data balikan", pks.nomor),
            ));
        }
        // A file is sent as it is; the previewed records come back URL-encoded, which
        // can triple them.
        let limit = match route {
            PortalRoute::BalikanPreview => balikan_body_limit(max).saturating_add(MULTIPART_SLACK),
            _ => balikan_body_limit(max).saturating_mul(3),
        };
        let body = match self.read_body_within(session, limit).await? {
            Ok(b) => b,
            Err(reject) => {
                let message = format!("{}: {}", reject.refusal.respon(), reject.detail);
                return Ok(again(
                    reject.refusal.rest_status(),
                    reject.refusal,
                    &message,
                ));
            }
        };
        let names: Vec<&str> = std::iter::once("NIK")
            .chain(fields.iter().map(|f| f.kolom.as_str()))
            .collect();
        match route {
            PortalRoute::BalikanPreview => {
                let content_type = header(session, "content-type").unwrap_or("");
                let rows = multipart_file(content_type, &body, "berkas")
                    .and_then(|file| read_file(file, &fields, max));
                let rows = match rows {
                    Ok(rows) if rows.is_empty() => {
                        let why = "berkas tidak memuat baris data di bawah nama kolom";
                        return Ok(again(400, Refusal::IncompleteParameters, why).consumed());
                    }
                    Ok(rows) => rows,
                    Err(why) => {
                        return Ok(again(400, Refusal::IncompleteParameters, &why).consumed());
                    }
                };
                let plain: Vec<_> = rows.iter().map(|r| r.row.clone()).collect();
                let verdicts = match self.preview_balikan(snap, user, &plain).await {
                    Ok(v) => v,
                    Err(reject) => return Ok(refused(route, &reject).consumed()),
                };
                let shown = shown(&rows, &verdicts);
                Ok(PortalAnswer::html(200, preview_page(&names, &shown, &carry(&rows))).consumed())
            }
            PortalRoute::BalikanSend | PortalRoute::BalikanForm => {
                let rows = if route == PortalRoute::BalikanSend {
                    let data = form_urlencoded::parse(&body)
                        .find(|(k, _)| k == "data")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    match carried(&data, max) {
                        Ok(rows) => rows,
                        Err(why) => {
                            return Ok(again(400, Refusal::IncompleteParameters, &why).consumed());
                        }
                    }
                } else {
                    vec![form_record(&body, &names)]
                };
                let plain: Vec<_> = rows.iter().map(|r| r.row.clone()).collect();
                let verdicts = match self.submit_balikan(ctx, snap, user, plain).await {
                    Ok(v) => v,
                    Err(reject) => return Ok(refused(route, &reject).consumed()),
                };
                let shown = shown(&rows, &verdicts);
                Ok(PortalAnswer::html(200, result_page(&names, &shown)).consumed())
            }
            PortalRoute::LoginPage
            | PortalRoute::Login
            | PortalRoute::Logout
            | PortalRoute::Style
            | PortalRoute::Page
            | PortalRoute::Search
            | PortalRoute::Export
            | PortalRoute::Write
            | PortalRoute::Unknown
            | PortalRoute::Balikan => Ok(PortalAnswer::refused(
                404,
                Refusal::UnknownService,
                what(route),
                "",
            )),
        }
    }
}

/// A refusal of a whole batch (34, 35, the DWH's 31/32) as the portal's refusal page.
fn refused(route: PortalRoute, reject: &Rejection) -> PortalAnswer {
    PortalAnswer::refused(
        reject.refusal.rest_status(),
        reject.refusal,
        what(route),
        &reject.detail,
    )
}

/// The online form's one record: the NIK and the PKS's columns that were filled in; any
/// other form field is ignored (the form has none).
fn form_record(body: &[u8], names: &[&str]) -> FileRow {
    let mut columns = Vec::new();
    for (key, value) in form_urlencoded::parse(body) {
        let Some(name) = names.iter().find(|n| key.eq_ignore_ascii_case(n)) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        if value.chars().count() > super::upload::CELL_CHARS {
            return FileRow {
                line: 1,
                row: Err(format!("{name}: isian terlalu panjang")),
            };
        }
        columns.push(((*name).to_string(), value.into_owned()));
    }
    FileRow {
        line: 1,
        row: Ok(columns),
    }
}

fn shown<'a>(rows: &'a [FileRow], verdicts: &'a [Verdict]) -> Vec<Shown<'a>> {
    rows.iter()
        .zip(verdicts)
        .map(|(r, v)| Shown {
            line: r.line,
            columns: r.row.as_ref().ok().map(Vec::as_slice),
            verdict: match v {
                Verdict::Accepted => Ok(()),
                Verdict::Refused(why) => Err(why.as_str()),
            },
        })
        .collect()
}

//! Gerbang's own answers: a refusal in the DWH envelope, and the headers every answer of
//! the API carries.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use gerbang_core::{Rejection, StatusMode};
use gerbang_quota::Usage;

use crate::gateway::Gateway;

impl Gateway {
    /// Writes a refusal in the DWH envelope.
    pub(crate) async fn answer(
        &self,
        session: &mut Session,
        reject: &Rejection,
        quota: Option<Usage>,
    ) -> Result<()> {
        let body = Bytes::from(
            reject
                .refusal
                .body_with_quota(&reject.detail, quota.map(Usage::remaining)),
        );
        let mut resp = self.answer_header(reject.refusal.status(self.status_mode), quota)?;
        resp.set_content_length(body.len())?;
        if let (Some(wait), StatusMode::Rest) = (reject.retry_after, self.status_mode) {
            resp.insert_header(http::header::RETRY_AFTER, wait.as_secs().max(1).to_string())?;
        }
        if !reject.body_consumed {
            // Unread body bytes would be taken for the next request: close instead.
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await
    }

    pub(crate) fn answer_header(
        &self,
        status: u16,
        quota: Option<Usage>,
    ) -> Result<ResponseHeader> {
        let mut resp = ResponseHeader::build(status, Some(6))?;
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        // PKS: the gateway stores no population data, and neither may anything on the way.
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        resp.insert_header("X-Content-Type-Options", "nosniff")?;
        if let Some(q) = quota {
            resp.insert_header("X-Quota-Limit", q.limit.to_string())?;
            resp.insert_header("X-Quota-Remaining", q.remaining().to_string())?;
        }
        Ok(resp)
    }
}

//! A refusal with what the client is told about it: the one type every step that refuses
//! returns, from the body checks and the password check to the quota, and that the gateway
//! answers in the DWH envelope.

use std::time::Duration;

use crate::wire::Refusal;

/// A [`Refusal`] with its detail, decided before anything reaches the DWH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub refusal: Refusal,
    /// Said to the client in `RESPONSE_DESC`, in Indonesian, for the Pengguna's operator:
    /// never a NIK, a password or a value, nor whether a User ID exists.
    pub detail: String,
    /// How long until asking again can succeed (a lockout, a burst limit, the day's quota):
    /// `Retry-After` in `api.status_mode = "rest"`.
    pub retry_after: Option<Duration>,
    /// Whether the request body was read to its end. When it was not, the answer closes the
    /// connection: unread body bytes would be taken for the next request.
    pub body_consumed: bool,
}

impl Rejection {
    /// A refusal with its detail (empty: the code's text alone), after the whole body was
    /// read, with no time to wait.
    pub fn new(refusal: Refusal, detail: impl Into<String>) -> Self {
        Self {
            refusal,
            detail: detail.into(),
            retry_after: None,
            body_consumed: true,
        }
    }

    /// The same, decided before the body was read (or while it was): the connection closes.
    #[must_use]
    pub fn body_unread(self) -> Self {
        Self {
            body_consumed: false,
            ..self
        }
    }

    /// The same, answerable again after `wait`.
    #[must_use]
    pub fn retry_after(self, wait: Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..self
        }
    }
}

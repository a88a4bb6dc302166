//! What a User ID may do on a day, as the rules decide it: each action over each channel,
//! and the elements its answers may carry. The semantic diff of an edit (`gerbang policy
//! diff`, the reload's summary) compares two of these, one from each snapshot; nothing on
//! the request path uses them.

use std::net::IpAddr;

use chrono::NaiveDate;
use gerbang_core::{Channel, ElementSet};

use crate::decision::{Action, Request, decide};
use crate::engine::Facts;
use crate::snapshot::{Snapshot, UserRef};

/// Every access method, in the order grants list them.
pub const CHANNELS: [Channel; 3] = [Channel::WebService, Channel::WebPortal, Channel::CardReader];

/// The channels the gateway asks an action over: the portal's actions only from the Web
/// Portal, a data balikan from the web service and the portal's upload and form, the others
/// from the web service and from card readers. What the rules would say of another pair is
/// never asked, so a grant does not list it.
pub fn channels_of(action: Action) -> &'static [Channel] {
    match action {
        Action::PortalRead | Action::PortalWrite | Action::PortalExport => &[Channel::WebPortal],
        Action::CallNik | Action::CallNoKk | Action::VerifyByElement | Action::SearchByElements => {
            &[Channel::WebService, Channel::CardReader]
        }
        Action::SubmitBalikan => &[Channel::WebService, Channel::WebPortal],
    }
}

/// What one User ID may do on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The actions the rules permit, each with the channel it is permitted over, in the
    /// order of [`Action::ALL`] then [`CHANNELS`]; only the pairs of [`channels_of`].
    pub access: Vec<(Action, Channel)>,
    /// The elements an answer to this User ID may carry (`ReadElement`). Decided apart from
    /// the access, as the gateway does: a frozen agreement loses its access, not its
    /// elements.
    pub elements: ElementSet,
}

/// The grant of `user` on `day`: every action over every channel decided as a request from
/// the User ID's first registered address would be, with a validated SAM and outside any
/// blocked network (blocked networks are a change of their own in a diff).
pub fn grant(snap: &Snapshot, user: UserRef, day: NaiveDate) -> Grant {
    let peer = snap
        .user(user)
        .ip_lan
        .first()
        .map_or(IpAddr::from([0, 0, 0, 0]), |net| net.addr());
    let mut access = Vec::new();
    for action in Action::ALL {
        for &channel in channels_of(action) {
            let req = Request {
                user,
                action,
                channel,
                day,
                peer,
                sam_valid: true,
            };
            if decide(snap, &req, false).allowed() {
                access.push((action, channel));
            }
        }
    }
    let elements = snap.agreement_elements(user).unwrap_or_else(|| {
        let pks = snap.pks(user);
        let facts = Facts {
            day,
            channel: pks
                .metode_akses
                .first()
                .copied()
                .unwrap_or(Channel::WebService),
            peer,
            ip_blocked: false,
            sam_valid: true,
        };
        let engine = snap.engine();
        match engine.context(&facts) {
            Ok(context) => engine.readable_elements(
                snap.entities(),
                snap.vocabulary(),
                &snap.user(user).id,
                pks,
                &context,
            ),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "cannot build a Cedar context; no elements"
                );
                ElementSet::EMPTY
            }
        }
    });
    Grant { access, elements }
}

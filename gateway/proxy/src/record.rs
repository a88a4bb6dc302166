//! The decision log as the gateway uses it: the writer, the key for NIK digests, and
//! whether a failed write withholds the data.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use gerbang_audit::{ArchiveTo, AuditKey, AuditLog, Keep, Retention, WriterOptions};
use gerbang_core::{AuditArchive, AuditKeep, AuditSettings, Clock, ElementSet, Refusal};
use gerbang_policy::Snapshot;

use crate::gateway::{Gateway, GatewayCtx};

/// Why the decision log could not be opened: its key, or the log itself.
#[derive(Debug, thiserror::Error)]
pub enum AuditOpenError {
    #[error(transparent)]
    Key(#[from] gerbang_audit::KeyError),
    #[error(transparent)]
    Log(#[from] gerbang_audit::AuditError),
}

/// An open decision log.
#[derive(Clone)]
pub struct Audit {
    pub log: Arc<AuditLog>,
    /// Derives NIK digests; the same key seals the records.
    pub key: AuditKey,
    pub refuse_on_failure: bool,
    pub instance: String,
}

impl Audit {
    /// Loads the key and opens (or continues) the log.
    pub fn open(
        settings: &AuditSettings,
        instance: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuditOpenError> {
        let key = AuditKey::load(settings.key_file.as_deref())?;
        let log = AuditLog::open(
            &settings.dir,
            key.clone(),
            WriterOptions {
                instance: instance.to_string(),
                fsync_interval: settings.fsync_interval,
                clock: Arc::new(move || clock.now()),
                min_free_bytes: settings.min_free_bytes,
                alert_free_bytes: settings.alert_free_bytes,
                retention: settings.retention.as_ref().map(|r| Retention {
                    keep: match r.keep {
                        AuditKeep::Days(n) => Keep::Days(n.get()),
                        AuditKeep::Months(n) => Keep::Months(n.get()),
                    },
                    to: match &r.to {
                        AuditArchive::Dir(dir) => ArchiveTo::Dir(dir.clone()),
                        AuditArchive::Command(command) => ArchiveTo::Command(command.clone()),
                    },
                }),
                ..WriterOptions::default()
            },
        )?;
        Ok(Self {
            log: Arc::new(log),
            key,
            refuse_on_failure: settings.refuse_on_failure,
            instance: instance.to_string(),
        })
    }
}

impl Gateway {
    /// The record stage: writes the record of an answer carrying population data before it is released
    /// (docs/architecture.md, "Targets"). If the log cannot be written, the data is withheld (unless configured
    /// otherwise) and the hit refunded: the Pengguna received nothing.
    pub(crate) async fn audit_release(&self, ctx: &mut GatewayCtx, answer: Bytes) -> Bytes {
        let Some(audit) = &self.audit else {
            return answer;
        };
        ctx.audited = true;
        let record = self.audit_record(audit, ctx);
        let started = Instant::now();
        let written = audit.log.append_async(&record).await;
        self.metrics
            .audit_write_duration
            .observe(started.elapsed().as_secs_f64());
        match written {
            Ok(_) => answer,
            Err(e) if audit.refuse_on_failure => {
                tracing::error!(error = %e, "decision log not written; the answer's data is withheld");
                ctx.refusal = Some(Refusal::AuditUnavailable);
                ctx.released = ElementSet::EMPTY;
                ctx.records = 0;
                self.refund_once(ctx);
                let remaining = ctx.quota.as_ref().map(|q| q.shown().remaining());
                // Recorded as refused, without waiting: the log may be failing.
                let refused = self.audit_record(audit, ctx);
                let _ = audit.log.append_nowait(&refused);
                Bytes::from(Refusal::AuditUnavailable.body_with_quota("", remaining))
            }
            Err(e) => {
                tracing::error!(error = %e, "decision log not written; answer released (audit.refuse_on_failure = false)");
                answer
            }
        }
    }

    /// Writes the request's record before it is answered (a data balikan: the DWH has the
    /// records, the answer says so). A failed write is logged and counted; the answer stands.
    pub(crate) async fn audit_now(&self, ctx: &mut GatewayCtx) {
        let Some(audit) = &self.audit else {
            return;
        };
        ctx.audited = true;
        let record = self.audit_record(audit, ctx);
        if let Err(e) = audit.log.append_async(&record).await {
            tracing::error!(error = %e, "decision log not written for a data balikan the DWH received");
        }
    }

    /// Records a request that released no population data, off the answer's path.
    pub(crate) fn audit_nowait(&self, ctx: &GatewayCtx) {
        if let Some(audit) = &self.audit {
            let record = self.audit_record(audit, ctx);
            if let Err(e) = audit.log.append_nowait(&record) {
                tracing::debug!(error = %e, "decision log record not queued");
            }
        }
    }

    fn audit_record(&self, audit: &Audit, ctx: &GatewayCtx) -> gerbang_audit::Record {
        let snap = ctx
            .snapshot
            .clone()
            .unwrap_or_else(|| self.snapshot.load_full());
        let allowed = ctx.refusal.is_none() && ctx.decision.as_ref().is_some_and(|d| d.allowed());
        gerbang_audit::Record {
            time: self.clock.now(),
            instance: audit.instance.clone(),
            request_id: format!("{}-{}", audit.instance, ctx.request_id),
            user_id: ctx.user_id.clone(),
            pengguna: ctx.pengguna.clone(),
            pks: ctx.pks.clone(),
            peer_ip: ctx.peer.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            channel: Some(ctx.channel.as_str().to_string()),
            action: ctx.action.map(|a| a.as_str().to_string()),
            decision: if allowed {
                gerbang_audit::Decision::Allow
            } else {
                gerbang_audit::Decision::Deny
            },
            reason: ctx.refusal.map(|r| r.name().to_string()),
            policy_ids: ctx
                .decision
                .as_ref()
                .map(|d| d.policies.clone())
                .unwrap_or_default(),
            policy_hash: snap.engine().hash().to_string(),
            nik_digest: ctx.nik_digest.clone(),
            elements: match &ctx.balikan {
                Some(b) => b.fields.clone(),
                None => snap
                    .vocabulary()
                    .names(ctx.released)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            },
            balikan: ctx.balikan.as_ref().map(|b| gerbang_audit::Balikan {
                accepted: b.accepted,
                refused: b.refused,
                nik_digests: b.digests.clone(),
            }),
            upstream_status: ctx.upstream_status,
            latency_us: u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            quota_used: ctx.quota.as_ref().map(|q| q.usage.used),
            quota_limit: ctx.quota.as_ref().map(|q| q.usage.limit),
        }
    }

    /// Says who a request was from, for its record, its log line and its metrics, before
    /// they are written; `false`: it is not to be recorded or logged (counted only).
    ///
    /// A request from an address in no registered IP LAN keeps nothing the client chose
    /// (no User ID, no NIK digest), and only the first per address and minute is recorded
    /// (`Strangers`): any host on the closed network could otherwise fill the disk. One
    /// naming an existing User ID from inside that User ID's IP LAN is its Pengguna's,
    /// whatever refused it (a wrong password, a malformed NIK), so the Pengguna's report
    /// shows it; `(unidentified)` is left for unknown addresses and User IDs.
    pub(crate) fn attribute(&self, ctx: &mut GatewayCtx, snap: &Snapshot) -> bool {
        let registered = ctx.peer.and_then(|p| snap.user_by_ip(p).map(|u| (p, u)));
        let Some((peer, _)) = registered else {
            ctx.user_id = None;
            ctx.nik_digest = None;
            let peer = ctx.peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            let (recorded, ended) = self.strangers.admit(peer, self.clock.now());
            if let Some(minute) = ended {
                tracing::warn!(
                    target: "gerbang::request",
                    unrecorded = minute.requests,
                    addresses = minute.addresses,
                    "requests from addresses in no registered IP LAN were refused; only the first per address and minute was recorded (all are counted in gerbang_unregistered_requests_total)"
                );
            }
            self.metrics
                .unregistered
                .with_label_values(&[if recorded { "true" } else { "false" }])
                .inc();
            if !recorded {
                self.metrics.count_request(ctx);
            }
            return recorded;
        };
        if ctx.pengguna.is_none()
            && let Some(user) = ctx.user_id.as_deref().and_then(|id| snap.user_by_id(id))
            && snap.user(user).ip_registered(peer)
        {
            let pks = snap.pks(user);
            ctx.pks = Some(pks.nomor.clone());
            ctx.pengguna = Some(pks.pengguna.clone());
        }
        true
    }
}

/// Most distinct addresses in no registered IP LAN whose first refusal of a minute is
/// recorded; past it, that minute's refusals of further addresses are only counted.
const STRANGERS_RECORDED_PER_MINUTE: usize = 1024;

/// Which refusals of addresses in no registered IP LAN are written to the decision log and
/// the operational log: the first per address and minute, at most
/// [`STRANGERS_RECORDED_PER_MINUTE`] addresses a minute. Any host on the closed network can
/// send such requests as fast as it likes; recording each would let it fill the disk (and,
/// with `audit.refuse_on_failure`, withhold every Pengguna's answers). They are counted
/// exactly in `gerbang_unregistered_requests_total` instead.
#[derive(Debug, Default)]
pub(crate) struct Strangers {
    window: std::sync::Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// Minutes since the Unix epoch.
    minute: i64,
    recorded: std::collections::HashSet<std::net::IpAddr>,
    requests: u64,
}

/// A minute that ended with requests from unregistered addresses left unrecorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unrecorded {
    pub(crate) requests: u64,
    pub(crate) addresses: usize,
}

impl Strangers {
    /// Whether this refusal of `peer` (an address in no IP LAN) is recorded, and, when a new
    /// minute starts, what the last one left unrecorded.
    pub(crate) fn admit(
        &self,
        peer: std::net::IpAddr,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (bool, Option<Unrecorded>) {
        let minute = now.timestamp().div_euclid(60);
        let mut w = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ended = None;
        if w.minute != minute {
            let unrecorded = w.requests - w.recorded.len() as u64;
            if unrecorded > 0 {
                ended = Some(Unrecorded {
                    requests: unrecorded,
                    addresses: w.recorded.len(),
                });
            }
            *w = Window {
                minute,
                ..Window::default()
            };
        }
        w.requests += 1;
        let record = w.recorded.len() < STRANGERS_RECORDED_PER_MINUTE && w.recorded.insert(peer);
        (record, ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn the_first_refusal_per_address_and_minute_is_recorded() {
        let s = Strangers::default();
        let at = |secs| Utc.timestamp_opt(secs, 0).single().expect("time");
        let (a, b) = (
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        );
        assert_eq!(s.admit(a, at(600)), (true, None));
        assert_eq!(s.admit(a, at(610)), (false, None));
        assert_eq!(s.admit(b, at(620)), (true, None));
        assert_eq!(s.admit(a, at(659)), (false, None));
        // A new minute: recorded again, and the last one's unrecorded requests are told.
        assert_eq!(
            s.admit(a, at(660)),
            (
                true,
                Some(Unrecorded {
                    requests: 2,
                    addresses: 2
                })
            )
        );
        assert_eq!(s.admit(a, at(721)), (true, None));
    }

    #[test]
    fn the_addresses_recorded_per_minute_are_bounded() {
        let s = Strangers::default();
        let now = Utc::now();
        let recorded = (0..STRANGERS_RECORDED_PER_MINUTE as u32 + 100)
            .filter(|i| {
                let ip = std::net::Ipv4Addr::from((10u32 << 24) + i);
                s.admit(ip.into(), now).0
            })
            .count();
        assert_eq!(recorded, STRANGERS_RECORDED_PER_MINUTE);
    }
}

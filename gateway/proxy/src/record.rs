//! The decision log as the gateway uses it: the writer, the key for NIK digests, and
//! whether a failed write withholds the data.

use std::sync::Arc;

use gerbang_audit::{ArchiveTo, AuditKey, AuditLog, Keep, Retention, WriterOptions};
use gerbang_core::{AuditArchive, AuditKeep, AuditSettings, Clock};

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
    ) -> Result<Self, String> {
        let key = AuditKey::load(settings.key_file.as_deref()).map_err(|e| e.to_string())?;
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
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            log: Arc::new(log),
            key,
            refuse_on_failure: settings.refuse_on_failure,
            instance: instance.to_string(),
        })
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

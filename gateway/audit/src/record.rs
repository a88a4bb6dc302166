//! One decision-log record: who asked for what, what was decided and why, and what left.
//! Names only, never values: no population data, password or token ever goes in (PKS: the
//! gateway stores no population data), and the NIK only as a keyed digest.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use gerbang_core::WIB;
use serde::{Deserialize, Serialize};

use crate::key::NikDigest;

/// What was decided for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Served (forwarded, or answered by the gateway itself).
    Allow,
    /// Refused; `reason` says why.
    Deny,
}

impl Decision {
    /// `allow` or `deny`, as in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// One line of the decision log, for one request, allowed or refused (issue 7 part 1).
///
/// Optional fields are left out of the line when empty: a request refused before the User ID
/// was known has no `user_id`, `pengguna` or `pks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the decision was made; written as RFC 3339 in WIB (`+07:00`), microseconds.
    #[serde(with = "wib_rfc3339")]
    pub time: DateTime<Utc>,
    /// The gateway instance that decided (each instance writes its own log directory).
    pub instance: String,
    /// The request id the gateway gave the request (also in its tracing logs).
    pub request_id: String,
    /// The User ID, once authenticated or at least claimed in the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The Pengguna (institution) id of that User ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pengguna: Option<String>,
    /// The PKS number that governed the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pks: Option<String>,
    /// The TCP peer address (the only address the gateway trusts, docs/architecture.md, "Rules and where they come from").
    pub peer_ip: IpAddr,
    /// `web_service`, `web_portal` or `card_reader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The business action (`CallNik`, `VerifyByElement`, …) or an admin action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Allowed or refused.
    pub decision: Decision,
    /// Why it was refused (the refusal's name, e.g. `quota_exhausted`); empty when allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The ids of the policies that decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_ids: Vec<String>,
    /// The hash of the policy set in force, so a decision can be replayed against it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policy_hash: String,
    /// The looked-up NIK as a keyed digest ([`crate::AuditKey::nik_digest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nik_digest: Option<NikDigest>,
    /// The names of the data elements released (never their values); for a data-balikan
    /// batch, the names of the balikan fields it sent (`Nomor rekam medis`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<String>,
    /// A data-balikan batch (action `SubmitBalikan`): how many records, never their values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balikan: Option<Balikan>,
    /// The DWH's HTTP status when the request reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// Time spent in the gateway for this request, in microseconds.
    pub latency_us: u64,
    /// The User ID's hits used today after this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_used: Option<u32>,
    /// The User ID's daily hit quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_limit: Option<u32>,
}

/// The action of a data-balikan batch (`POST /dukcapil/balikan/{instansi}`), as the gateway
/// names it in `action`. The audit crate does not depend on the policy crate that defines the
/// actions, so the name is repeated here; a test of the CLI, which
/// depends on both, holds the two together.
pub const BALIKAN_ACTION: &str = "SubmitBalikan";

/// What a data-balikan batch carried: the data a Pengguna must return to Dukcapil under its
/// PKS (a tax office's tax object numbers, a hospital's medical record numbers). Counts and
/// keyed digests only: the values returned are population data and never enter the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balikan {
    /// Records accepted and forwarded to the DWH.
    pub accepted: u32,
    /// Records refused (a field malformed or unknown, a NIK the Pengguna never looked up, the daily limit).
    pub refused: u32,
    /// The keyed digests of the accepted records' NIKs, in the batch's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nik_digests: Vec<NikDigest>,
}

impl Record {
    /// Whether this record is a NIK hit: an allowed lookup that reached the DWH (it has an
    /// upstream status). Quota and the semester reports count these. A data-balikan batch
    /// also reaches the DWH, but it returns data rather than looking a person up: it is
    /// never a hit, or a Pengguna returning its data would seem to use its quota and its
    /// returned NIKs would count as people it looked up.
    pub fn is_hit(&self) -> bool {
        self.decision == Decision::Allow && self.upstream_status.is_some() && !self.is_balikan()
    }

    /// Whether this record is a data-balikan batch: its action is [`BALIKAN_ACTION`], or it
    /// carries balikan counts. Either is enough, so a batch refused before its records were
    /// read (no counts yet) is still known for one.
    pub fn is_balikan(&self) -> bool {
        self.balikan.is_some() || self.action.as_deref() == Some(BALIKAN_ACTION)
    }

    /// The NIK digests this record is about: the looked-up NIK of a lookup, and the accepted
    /// records' NIKs of a data-balikan batch. A search for one person's records must look at
    /// both, or it misses the data returned about them.
    pub fn nik_digests(&self) -> impl Iterator<Item = &NikDigest> {
        self.nik_digest
            .iter()
            .chain(self.balikan.iter().flat_map(|b| b.nik_digests.iter()))
    }
}

/// The WIB calendar day of an instant (quota days, log files and reports all use it).
pub(crate) use gerbang_core::wib_day;

/// RFC 3339 in WIB, to the microsecond.
pub(crate) fn wib_rfc3339(at: DateTime<Utc>) -> String {
    at.with_timezone(&WIB)
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Serde for `time`: written in WIB, read back from any RFC 3339 offset.
mod wib_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::wib_rfc3339(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditKey;

    fn sample(key: &AuditKey) -> Record {
        Record {
            time: "2026-03-01T16:59:59.123456Z".parse().expect("time"),
            instance: "gw-1".into(),
            request_id: "r-1".into(),
            user_id: Some("bkd_kra_01".into()),
            pengguna: Some("bkd-karanganyar".into()),
            pks: Some("473.3/2741.12/XI/2022".into()),
            peer_ip: "10.33.13.20".parse().expect("ip"),
            channel: Some("web_service".into()),
            action: Some("CallNik".into()),
            decision: Decision::Allow,
            reason: None,
            policy_ids: vec!["pks-elements".into()],
            policy_hash: "ab".repeat(32),
            nik_digest: Some(key.nik_digest("3313010101900001")),
            elements: vec!["NIK".into(), "NAMA_LGKP".into()],
            balikan: None,
            upstream_status: Some(200),
            latency_us: 812,
            quota_used: Some(3),
            quota_limit: Some(1000),
        }
    }

    #[test]
    fn time_is_written_in_wib_and_read_back() {
        let key = AuditKey::from_material(&[1u8; 32], "t").expect("key");
        let record = sample(&key);
        let json = serde_json::to_string(&record).expect("json");
        assert!(
            json.contains(r#""time":"2026-03-01T23:59:59.123456+07:00""#),
            "{json}"
        );
        assert!(
            !json.contains("reason"),
            "empty fields are left out: {json}"
        );
        let back: Record = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, record);
        assert!(back.is_hit());
    }

    /// A data-balikan batch round-trips with its counts and digests, and is not a hit
    /// although it reached the DWH: counted as one, it would use quota and inflate the
    /// Pengguna's lookups in the semester report.
    #[test]
    fn a_balikan_batch_round_trips_and_is_not_a_hit() {
        let key = AuditKey::from_material(&[1u8; 32], "t").expect("key");
        let mut record = sample(&key);
        record.action = Some(BALIKAN_ACTION.into());
        record.nik_digest = None;
        record.elements = vec!["Nomor rekam medis".into()];
        record.quota_used = None;
        record.quota_limit = None;
        record.balikan = Some(Balikan {
            accepted: 2,
            refused: 1,
            nik_digests: vec![
                key.nik_digest("3201014101900001"),
                key.nik_digest("3201014101900002"),
            ],
        });
        let json = serde_json::to_string(&record).expect("json");
        assert!(
            json.contains(r#""balikan":{"accepted":2,"refused":1,"nik_digests":[""#),
            "{json}"
        );
        assert!(!json.contains("3201014101900001"), "no raw NIK: {json}");
        let back: Record = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, record);
        assert!(back.is_balikan());
        assert!(!back.is_hit(), "a balikan batch is not a NIK hit");
        assert_eq!(back.nik_digests().count(), 2);

        // Refused before its records were read: no counts, still a balikan by its action.
        record.balikan = None;
        assert!(record.is_balikan());
        assert!(!record.is_hit());
    }

    /// Lines written before the field existed have no `balikan` member: they still parse,
    /// and a lookup among them is still a hit.
    #[test]
    fn a_record_without_balikan_still_parses() {
        let key = AuditKey::from_material(&[1u8; 32], "t").expect("key");
        let record = sample(&key);
        let json = serde_json::to_string(&record).expect("json");
        assert!(!json.contains("balikan"), "{json}");
        let back: Record = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.balikan, None);
        assert!(back.is_hit() && !back.is_balikan());
        assert_eq!(
            back.nik_digests().collect::<Vec<_>>(),
            [&key.nik_digest("3313010101900001")]
        );
    }

    #[test]
    fn wib_day_turns_at_17_utc() {
        let before: DateTime<Utc> = "2026-06-30T16:59:59Z".parse().expect("time");
        let after: DateTime<Utc> = "2026-06-30T17:00:00Z".parse().expect("time");
        assert_eq!(wib_day(before).to_string(), "2026-06-30");
        assert_eq!(wib_day(after).to_string(), "2026-07-01");
    }
}

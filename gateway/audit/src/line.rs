//! The line format shared by the writer and the verifier.
//!
//! A log line is one JSON object: `{"seq":N,"prev":"<hex>",<payload members>,"mac":"<hex>"}`
//! and a newline. `mac` is HMAC-SHA256, under the record key derived from the audit key, of the
//! line's bytes up to (not including) `,"mac":"`; `prev` is the `mac` of the line before (64
//! zeros for the first line of a log). The MAC covers bytes, not a re-serialisation, so there
//! is no canonical form to get wrong. The checkpoint file `audit.head` is sealed the same way
//! under a domain prefix, so a checkpoint can never pass for a log line or the reverse.

use std::borrow::Cow;
use std::io::Write as _;

use hmac::Mac as _;
use serde::{Deserialize, Serialize};

use crate::key::AuditKey;

/// A line's MAC, also the next line's `prev`.
pub(crate) type Tag = [u8; 32];

/// `prev` of the very first line of a log.
pub(crate) const GENESIS: Tag = [0; 32];

/// The member that closes every sealed line.
const MAC_MEMBER: &[u8] = b",\"mac\":\"";
/// `,"mac":"` + 64 hex digits + `"}`.
const SEAL_LEN: usize = MAC_MEMBER.len() + 64 + 2;

/// The domain prefix of the checkpoint's MAC.
pub(crate) const HEAD_DOMAIN: &[u8] = b"gerbang-audit-head\n";

/// Appends `{"seq":N,"prev":"<hex>",` and the members of `payload` (a serialised JSON object),
/// sealed, with its newline; returns the line's MAC.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    key: &AuditKey,
    seq: u64,
    prev: &Tag,
    payload: &[u8],
) -> Tag {
    let start = out.len();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{{\"seq\":{seq},\"prev\":\"");
    push_hex(out, prev);
    out.push(b'"');
    let members = object_members(payload);
    if !members.is_empty() {
        out.push(b',');
        out.extend_from_slice(members);
    }
    seal(out, start, key, b"")
}

/// Closes the JSON object that starts at `out[start]` with its MAC member and a newline.
pub(crate) fn seal(out: &mut Vec<u8>, start: usize, key: &AuditKey, domain: &[u8]) -> Tag {
    let mut mac = key.record_mac();
    mac.update(domain);
    mac.update(&out[start..]);
    let tag: Tag = mac.finalize().into_bytes().into();
    out.extend_from_slice(MAC_MEMBER);
    push_hex(out, &tag);
    out.extend_from_slice(b"\"}\n");
    tag
}

/// The line's MAC when its seal verifies (constant time), else `None`. `line` has no newline.
pub(crate) fn unseal(line: &[u8], key: &AuditKey, domain: &[u8]) -> Option<Tag> {
    let len = line.len();
    if len < SEAL_LEN + 1 || !line.ends_with(b"\"}") {
        return None;
    }
    let body = &line[..len - SEAL_LEN];
    if &line[len - SEAL_LEN..len - SEAL_LEN + MAC_MEMBER.len()] != MAC_MEMBER {
        return None;
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(&line[len - 66..len - 2], &mut tag).ok()?;
    let mut mac = key.record_mac();
    mac.update(domain);
    mac.update(body);
    mac.verify_slice(&tag).ok()?;
    Some(tag)
}

/// The members of a serialised JSON object: what lies between its braces.
fn object_members(payload: &[u8]) -> &[u8] {
    match payload {
        [b'{', inner @ .., b'}'] => inner,
        // Payloads come from serde serialising a struct; anything else is a bug, and leaving
        // it out keeps the line valid JSON rather than sealing garbage.
        _ => {
            debug_assert!(false, "payload is not a JSON object");
            &[]
        }
    }
}

pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8; 32]) {
    let mut buf = [0u8; 64];
    // 64 bytes is exactly twice 32, so this cannot fail.
    let _ = hex::encode_to_slice(bytes, &mut buf);
    out.extend_from_slice(&buf);
}

/// The chain members of a verified line, and the writer's own `open` event when it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    pub seq: u64,
    pub prev: Tag,
    pub mac: Tag,
    pub open: Option<OpenFacts>,
    /// The gateway instance the line names (records and `open` events both do).
    pub instance: Option<String>,
}

/// What an `open` event line states about the bytes it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenFacts {
    pub torn_bytes: u64,
    pub torn_sha256: Option<String>,
    pub checkpoint: String,
}

/// A line as the verifier sees it.
#[derive(Debug)]
pub(crate) enum Checked {
    /// Sealed with this key and well formed.
    Valid(Verified),
    /// Not sealed with this key; `claimed_seq` is the `seq` it states, if it parses at all.
    Invalid { claimed_seq: Option<u64> },
}

#[derive(Deserialize)]
struct ChainMembers<'a> {
    seq: u64,
    #[serde(borrow)]
    prev: &'a str,
    #[serde(default, borrow)]
    event: Option<&'a str>,
    #[serde(default, borrow)]
    instance: Option<Cow<'a, str>>,
    #[serde(default)]
    torn_bytes: u64,
    #[serde(default)]
    torn_sha256: Option<String>,
    #[serde(default)]
    checkpoint: Option<String>,
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Checks one line (without its newline).
pub(crate) fn check(line: &[u8], key: &AuditKey) -> Checked {
    let invalid = || Checked::Invalid {
        claimed_seq: serde_json::from_slice::<SeqOnly>(line).ok().map(|s| s.seq),
    };
    let Some(mac) = unseal(line, key, b"") else {
        return invalid();
    };
    let Ok(members) = serde_json::from_slice::<ChainMembers<'_>>(line) else {
        return invalid();
    };
    let mut prev = [0u8; 32];
    if hex::decode_to_slice(members.prev, &mut prev).is_err() {
        return invalid();
    }
    let open = (members.event == Some(OPEN_EVENT)).then(|| OpenFacts {
        torn_bytes: members.torn_bytes,
        torn_sha256: members.torn_sha256,
        checkpoint: members.checkpoint.unwrap_or_default(),
    });
    Checked::Valid(Verified {
        seq: members.seq,
        prev,
        mac,
        open,
        instance: members.instance.map(Cow::into_owned),
    })
}

/// The `event` of the line a writer puts first each time it opens the log.
pub(crate) const OPEN_EVENT: &str = "open";

/// The payload of an `open` event: when and where the writer started, and the bytes after the
/// last valid line that it found (a record torn by a crash) and stepped over, by length and
/// SHA-256, so the verifier can tell a recovered crash from an edit.
#[derive(Debug, Serialize)]
pub(crate) struct OpenEvent<'a> {
    pub event: &'static str,
    pub time: String,
    pub instance: &'a str,
    pub torn_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn_sha256: Option<String>,
    /// `ok` (checkpoint found and consistent), `new` (empty log) or `missing` (a log without
    /// its checkpoint: someone removed `audit.head`).
    pub checkpoint: &'static str,
}

/// The checkpoint the writer keeps in `audit.head`: the last record known to be on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Head {
    /// The last fsynced line's `seq`; `None` before the first line.
    pub seq: Option<u64>,
    /// That line's MAC, hex.
    pub last_mac: String,
    /// The file it is in.
    pub file: String,
    /// When the checkpoint was written (RFC 3339, WIB).
    pub time: String,
}

impl Head {
    /// The checkpoint as a sealed line.
    pub fn encode(&self, key: &AuditKey) -> Vec<u8> {
        seal_object(self, key, HEAD_DOMAIN)
    }

    /// Reads a sealed checkpoint; `None` when it does not verify or parse.
    pub fn decode(bytes: &[u8], key: &AuditKey) -> Option<Self> {
        unseal_object(bytes, key, HEAD_DOMAIN)
    }
}

/// `value` (a struct of strings and integers) as one line sealed under `domain`, with its
/// newline: how the writer's own files (checkpoint, archive manifest) are kept.
pub(crate) fn seal_object<T: Serialize>(value: &T, key: &AuditKey, domain: &[u8]) -> Vec<u8> {
    let mut out = match serde_json::to_vec(value) {
        Ok(json) => json,
        // Serialising strings and integers cannot fail.
        Err(_) => unreachable!("a sealed object always serialises"),
    };
    out.pop(); // the closing brace; seal() closes the object
    seal(&mut out, 0, key, domain);
    out
}

/// Reads a line sealed by [`seal_object`]; `None` when it does not verify or parse.
pub(crate) fn unseal_object<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    key: &AuditKey,
    domain: &[u8],
) -> Option<T> {
    let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    unseal(line, key, domain)?;
    serde_json::from_slice(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::from_material(&[3u8; 32], "t").expect("key")
    }

    #[test]
    fn encoded_line_checks_and_chains() {
        let key = key();
        let mut out = Vec::new();
        let first = encode(&mut out, &key, 0, &GENESIS, br#"{"a":1}"#);
        let second = encode(&mut out, &key, 1, &first, br#"{"b":"x"}"#);
        let text = String::from_utf8(out.clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(r#"{"seq":0,"prev":"0000"#), "{text}");
        assert!(lines[0].contains(r#","a":1,"mac":""#), "{text}");
        let Checked::Valid(v) = check(lines[1].as_bytes(), &key) else {
            panic!("line 2 does not verify")
        };
        assert_eq!((v.seq, v.prev, v.mac), (1, first, second));
        // Each line is plain JSON.
        let parsed: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
        assert_eq!(parsed["b"], "x");
    }

    #[test]
    fn any_change_or_other_key_fails() {
        let key = key();
        let mut out = Vec::new();
        encode(&mut out, &key, 7, &GENESIS, br#"{"a":1}"#);
        let line = &out[..out.len() - 1];
        let edited = String::from_utf8(line.to_vec())
            .expect("utf8")
            .replace(r#""a":1"#, r#""a":2"#);
        assert!(matches!(
            check(edited.as_bytes(), &key),
            Checked::Invalid {
                claimed_seq: Some(7)
            }
        ));
        let other = AuditKey::from_material(&[4u8; 32], "o").expect("key");
        assert!(matches!(check(line, &other), Checked::Invalid { .. }));
        assert!(matches!(
            check(b"not json", &key),
            Checked::Invalid { claimed_seq: None }
        ));
    }

    #[test]
    fn a_checkpoint_is_not_a_line_and_a_line_is_not_a_checkpoint() {
        let key = key();
        let head = Head {
            seq: Some(3),
            last_mac: "00".repeat(32),
            file: "audit-2026-01-01.jsonl".into(),
            time: "t".into(),
        };
        let sealed = head.encode(&key);
        assert_eq!(Head::decode(&sealed, &key), Some(head));
        assert!(matches!(
            check(&sealed[..sealed.len() - 1], &key),
            Checked::Invalid { .. }
        ));
        let mut out = Vec::new();
        encode(
            &mut out,
            &key,
            3,
            &GENESIS,
            br#"{"last_mac":"x","file":"f","time":"t"}"#,
        );
        assert_eq!(Head::decode(&out, &key), None);
    }
}

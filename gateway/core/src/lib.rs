//! Gerbang's domain, with no network code: NIK and No KK, the data element vocabulary, the
//! PKS and main configuration files with operator-readable errors, the DWH wire format and
//! the element filter. The proxy, the policy engine and the tools all build on it, and it
//! tests without linking pingora.
#![forbid(unsafe_code)]

mod balikan;
mod card_reader;
mod clock;
mod config;
mod diag;
mod element;
mod filter;
mod nik;
mod pks;
pub mod redis_url;
mod rejection;
mod sanction;
pub mod systemd;
mod wire;

pub use balikan::{BalikanField, BalikanFormat, MAX_VALUE_CHARS, ValueRefused};
pub use card_reader::SamReason;
pub use clock::{Clock, FakeClock, SystemClock, WIB, wib_day};
pub use config::{
    Admin, Api, AuditArchive, AuditKeep, AuditRetention, AuditSettings, Auth, BalikanSettings,
    Config, DEFAULT_MAX_BODY_BYTES, DEFAULT_SAM_TIMEOUT, Listen, ListenLimits, MAX_BALIKAN_RECORDS,
    MAX_BODY_CEILING, Portal, QuotaSettings, QuotaStore, SamSidecar, SharedSettings,
    SidecarAddress, StatusMode, TlsFiles, Upstream, check, check_private, default_config_path,
};
pub use diag::{ConfigError, ConfigErrors, Source, read_file as read_config_file};
pub use element::{ElementId, ElementSet, MAX_ELEMENTS, Vocabulary};
pub use filter::{FilterError, Filtered, Shape, filter_answer, filter_lookup_answer};
pub use nik::{Nik, NikError, NoKk, Sex, is_province_code};
pub use pks::{
    CertFingerprint, Channel, JenisPengguna, KunciAkses, Pks, PksCache, PksSet, PksStatus, Sam,
    SamStatus, Tingkat, USER_ID_MAX_LEN, User, UserStatus, canonical_ip, is_user_id,
    load_blocklist,
};
pub use rejection::Rejection;
pub use sanction::{
    NewSanction, Sanction, SanctionEditError, SanctionFields, SanctionKind, Sanctions,
    add_to_text as add_sanction_to_text, fresh_id as fresh_sanction_id,
    remove_from_text as remove_sanction_from_text,
};
pub use wire::{
    BodyError, Claim, JsonObject, Pairs, Refusal, RequestBody, ValueError, append_quota_limiter,
    envelope, push_json_string,
};

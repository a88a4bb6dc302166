//! `[quota]` (the store of the daily counts, embedded or Redis, and the burst limits) and
//! `[shared]` (the state several instances share through that Redis).

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SharedFile {
    /// Prefix of every shared key other than the quota's (default `gerbang:shared:`): the
    /// same for every instance that acts as one gateway.
    key_prefix: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct QuotaFile {
    /// `embedded` (a redb file; counts survive restarts and crashes), `redis` (shared by
    /// several gateway instances) or `memory` (tests).
    #[serde(default)]
    store: QuotaStore,
    /// The redb file of the embedded store (default: `quota.redb` beside this file).
    path: Option<String>,
    /// Hits persisted ahead per User ID at a time: at most this many can be lost for the
    /// day by a crash, and one fsync covers this many hits.
    block: Option<u32>,
    /// Redis store: `redis://[user:password@]host:port/db`, `redis+unix:///path?db=N`, or
    /// `redis+sentinel://[user:password@]host:port,host:port,…/master/db` (a master found
    /// through Redis Sentinel), the same for every gateway instance sharing the quota.
    redis_url: Option<Spanned<String>>,
    /// Redis store: hits leased to this instance per User ID at a time (default 16). A
    /// crashed instance loses at most this many of a User ID's day, never grants extra.
    lease: Option<u32>,
    /// Redis store: hits per User ID per day this instance may still grant once Redis is
    /// unreachable and its leased hits are used (default 0: refuse). Each can put the day
    /// over the quota by that many, per instance.
    emergency_share: Option<u32>,
    /// Redis store: prefix of every key (default `gerbang:quota:`).
    key_prefix: Option<String>,
    /// Redis store: time limit of connecting and of each call, in milliseconds (default 200).
    redis_timeout_ms: Option<u64>,
    /// Requests per second per User ID (0 or absent: no limit).
    #[serde(default)]
    burst_per_user: u32,
    /// Requests per second per Pengguna, across its User IDs (0 or absent: no limit).
    #[serde(default)]
    burst_per_pengguna: u32,
}

/// Where daily quota counts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaStore {
    /// A redb file owned by one gateway process.
    #[default]
    Embedded,
    /// Redis, shared by several gateway instances (hits leased in chunks).
    Redis,
    /// In memory only: tests.
    Memory,
}

/// Validated quota settings. Its `Debug` (and so the [`Config`]'s) never shows the Redis
/// URL, which may carry a password.
#[derive(Clone)]
pub struct QuotaSettings {
    pub store: QuotaStore,
    pub path: PathBuf,
    pub block: u32,
    /// Redis store: the server's URL (empty for the other stores).
    pub redis_url: String,
    /// Redis store: hits leased per User ID at a time.
    pub lease: u32,
    /// Redis store: hits per User ID per day this instance may grant with Redis down.
    pub emergency_share: u32,
    /// Redis store: prefix of every key.
    pub key_prefix: String,
    /// Redis store: time limit of connecting and of each call.
    pub redis_timeout: Duration,
    pub burst_per_user: Option<NonZeroU32>,
    pub burst_per_pengguna: Option<NonZeroU32>,
}

impl std::fmt::Debug for QuotaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redis_url = if self.redis_url.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("QuotaSettings")
            .field("store", &self.store)
            .field("path", &self.path)
            .field("block", &self.block)
            .field("redis_url", &redis_url)
            .field("lease", &self.lease)
            .field("emergency_share", &self.emergency_share)
            .field("key_prefix", &self.key_prefix)
            .field("redis_timeout", &self.redis_timeout)
            .field("burst_per_user", &self.burst_per_user)
            .field("burst_per_pengguna", &self.burst_per_pengguna)
            .finish()
    }
}

/// `[quota]`: the store and, for Redis, its connection and leases; Redis fields are refused
/// with the local store.
pub(super) fn quota_settings(
    file: QuotaFile,
    base: &Path,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> QuotaSettings {
    let block = file.block.unwrap_or(16);
    if block == 0 {
        errors.push(src.error(None, "quota.block", "must be at least 1"));
    }
    let lease = file.lease.unwrap_or(16);
    let redis_timeout_ms = file.redis_timeout_ms.unwrap_or(200);
    let key_prefix = file
        .key_prefix
        .clone()
        .unwrap_or_else(|| "gerbang:quota:".to_string());
    if file.store == QuotaStore::Redis {
        match &file.redis_url {
            None => errors.push(src.error(
                None,
                "quota.redis_url",
                "required with store = \"redis\" (e.g. `redis://127.0.0.1:6379/0`)",
            )),
            Some(url)
                if !["redis://", "redis+unix://", "unix://", "redis+sentinel://"]
                    .iter()
                    .any(|scheme| url.get_ref().starts_with(scheme)) =>
            {
                // The value is not repeated: it may hold a password.
                errors.push(src.error(
                        Some(url.span()),
                        "quota.redis_url",
                        "not a Redis URL: `redis://host:port/db`, `redis+unix:///path?db=N` or `redis+sentinel://host:port,…/master/db` (TLS to Redis is not supported)",
                    ));
            }
            Some(url) => {
                // A Sentinel URL is parsed whole here, so a malformed one is refused with
                // its line instead of at start; the error never quotes the URL.
                if let Some(rest) = url
                    .get_ref()
                    .strip_prefix(crate::redis_url::SENTINEL_SCHEME)
                    && let Err(e) = crate::redis_url::SentinelTarget::parse(rest)
                {
                    errors.push(src.error(Some(url.span()), "quota.redis_url", e.to_string()));
                }
            }
        }
        if lease == 0 {
            errors.push(src.error(None, "quota.lease", "must be at least 1"));
        }
        if key_prefix.is_empty() {
            errors.push(src.error(None, "quota.key_prefix", "must not be empty"));
        }
        if redis_timeout_ms == 0 {
            errors.push(src.error(
                None,
                "quota.redis_timeout_ms",
                "must be more than 0 milliseconds",
            ));
        }
    } else {
        for (field, set) in [
            ("quota.redis_url", file.redis_url.is_some()),
            ("quota.lease", file.lease.is_some()),
            ("quota.emergency_share", file.emergency_share.is_some()),
            ("quota.key_prefix", file.key_prefix.is_some()),
            ("quota.redis_timeout_ms", file.redis_timeout_ms.is_some()),
        ] {
            if set {
                errors.push(src.error(
                    None,
                    field,
                    "only used with store = \"redis\"; set the store or remove the field",
                ));
            }
        }
    }
    QuotaSettings {
        store: file.store,
        path: base.join(file.path.as_deref().unwrap_or("quota.redb")),
        block,
        redis_url: file.redis_url.map(Spanned::into_inner).unwrap_or_default(),
        lease,
        emergency_share: file.emergency_share.unwrap_or(0),
        key_prefix,
        redis_timeout: Duration::from_millis(redis_timeout_ms),
        burst_per_user: NonZeroU32::new(file.burst_per_user),
        burst_per_pengguna: NonZeroU32::new(file.burst_per_pengguna),
    }
}

/// Where the state shared by several instances lives: the quota's Redis, under its own
/// key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSettings {
    /// Prefix of the shared keys (sessions, lockouts, sanctions).
    pub key_prefix: String,
}

/// `[shared]`: the key prefix of the shared state. The state is shared exactly when the
/// quota is (`store = "redis"`): instances that share the quota run behind one balancer,
/// and per-process sessions, lockouts and sanctions would break there.
pub(super) fn shared_settings(
    file: Option<SharedFile>,
    quota: &QuotaSettings,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<SharedSettings> {
    if quota.store != QuotaStore::Redis {
        if file.is_some() {
            errors.push(src.error(
                None,
                "shared",
                "only used with [quota] store = \"redis\" (the shared state lives in the quota's Redis); set the store or remove the section",
            ));
        }
        return None;
    }
    let key_prefix = file
        .and_then(|f| f.key_prefix)
        .unwrap_or_else(|| "gerbang:shared:".to_string());
    if key_prefix.is_empty() || key_prefix.chars().any(char::is_whitespace) {
        errors.push(src.error(
            None,
            "shared.key_prefix",
            "must not be empty or contain spaces",
        ));
    }
    Some(SharedSettings { key_prefix })
}

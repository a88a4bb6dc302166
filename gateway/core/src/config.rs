//! The main configuration, `gerbang.toml`: where to listen, where the DWH is, how errors
//! are reported, how failed logins are throttled, and where the PKS files live. Relative
//! paths are relative to the directory of `gerbang.toml`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{ConfigError, ConfigErrors, Source, read_file};
use crate::element::Vocabulary;
use crate::pks::{PksCache, PksSet};

mod audit;
mod listen;

use audit::*;
pub use audit::{AuditArchive, AuditKeep, AuditRetention, AuditSettings};
use listen::*;
pub use listen::{Listen, ListenLimits, TlsFiles};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Name of this instance in logs.
    #[serde(default = "default_instance")]
    instance: String,
    listen: ListenFile,
    upstream: UpstreamFile,
    #[serde(default)]
    api: ApiFile,
    #[serde(default)]
    auth: AuthFile,
    pks: PksFile,
    policy: PolicyFile,
    #[serde(default)]
    quota: QuotaFile,
    #[serde(default)]
    server: ServerFile,
    admin: Option<AdminFile>,
    audit: Option<AuditFile>,
    /// The SAM sidecar that validates card-reader requests; absent: they are refused.
    sam: Option<SamFile>,
    #[serde(default)]
    portal: PortalFile,
    /// State shared by several instances through the quota's Redis (portal sessions, login
    /// lockouts, sanctions); only with `[quota] store = "redis"`.
    shared: Option<SharedFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedFile {
    /// Prefix of every shared key other than the quota's (default `gerbang:shared:`): the
    /// same for every instance that acts as one gateway.
    key_prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminFile {
    /// `IP:port` of the admin listener (health, metrics, reload, quota, sanctions). It
    /// speaks plain HTTP, so only a loopback address is accepted unless
    /// `allow_non_loopback` says otherwise.
    address: Spanned<String>,
    /// Accept a non-loopback `address` (default false): the token and the sanctions then
    /// travel unencrypted, so only on a management network no Pengguna can reach.
    #[serde(default)]
    allow_non_loopback: bool,
    /// File holding the bearer token the admin API requires (at least 32 characters).
    /// Without it, only `/health`, `/ready` and `/metrics` answer.
    token_file: Option<String>,
    /// Most User IDs exported as quota series, highest use first (default 1000).
    quota_series: Option<usize>,
}

fn default_instance() -> String {
    "gerbang".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamFile {
    /// `host:port` of the DWH Terpusat (or dwh-sim).
    address: Spanned<String>,
    /// Connect to the DWH over TLS.
    #[serde(default)]
    tls: bool,
    /// Server name to verify when `tls = true`.
    #[serde(default)]
    sni: String,
    /// PEM CA bundle to verify the DWH with (default: system roots).
    ca: Option<String>,
    /// Time to establish a connection, in milliseconds.
    #[serde(default = "default_connect_timeout")]
    connect_timeout_ms: u64,
    /// Time the DWH may take to answer, in milliseconds.
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
}

fn default_connect_timeout() -> u64 {
    1_000
}
fn default_timeout() -> u64 {
    10_000
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApiFile {
    /// `dwh`: errors as HTTP 200 like the DWH; `rest`: 400/401/403/429/502.
    #[serde(default)]
    status_mode: StatusMode,
    /// Largest request body accepted, in bytes.
    max_body_bytes: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    /// Failed logins (per source IP, and per User ID) before a lockout.
    max_failures: Option<u32>,
    /// Window the failures are counted in, in seconds.
    failure_window_secs: Option<u64>,
    /// How long a lockout lasts, in seconds.
    lockout_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PksFile {
    /// Directory of PKS files (`*.toml`).
    dir: String,
    /// Element vocabulary file (default: the embedded one).
    vocabulary: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// Directory of the Cedar schema (`gerbang.cedarschema`) and Ditjen's rules (`*.cedar`).
    dir: String,
    /// Networks cut off as a sanction (art. 45), reloaded with the PKS files.
    blokir: Option<String>,
    /// Sanctions in force (art. 45): the file the admin API edits and Ditjen can read.
    sanksi: Option<String>,
    /// Reload when a PKS, policy, vocabulary, block list or sanctions file changes
    /// (default true). SIGHUP and the admin API reload in any case.
    watch: Option<bool>,
    /// A candidate policy directory evaluated beside the active one on live traffic:
    /// disagreements are counted and logged, never enforced.
    shadow_dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    /// Worker threads (default: number of cores).
    threads: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SamFile {
    /// The SAM sidecar (`gerbang-sam`): `127.0.0.1:PORT` (loopback only: the sidecar
    /// speaks plain HTTP) or `unix:/path/to/socket`.
    address: Spanned<String>,
    /// How long one validation may take, connecting included, in milliseconds (default
    /// 200). Past it the request is refused (fail closed).
    timeout_ms: Option<Spanned<u64>>,
}

/// `[upstream]`: the DWH's address, TLS to it and the timeouts.
fn upstream_settings(
    file: UpstreamFile,
    base: &Path,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<Upstream> {
    let upstream_address = match file
        .address
        .get_ref()
        .to_socket_addrs()
        .map(|mut a| a.next())
    {
        Ok(Some(a)) => Some(a),
        _ => {
            errors.push(src.error(
                Some(file.address.span()),
                "upstream.address",
                format!(
                    "`{}` is not a reachable `host:port`",
                    file.address.get_ref()
                ),
            ));
            None
        }
    };
    if file.tls && file.sni.is_empty() {
        errors.push(src.error(
            None,
            "upstream.sni",
            "with tls = true, set the DWH's server name to verify",
        ));
    }
    for (field, value) in [
        ("upstream.connect_timeout_ms", file.connect_timeout_ms),
        ("upstream.timeout_ms", file.timeout_ms),
    ] {
        if value == 0 {
            errors.push(src.error(None, field, "must be more than 0 milliseconds"));
        }
    }

    Some(Upstream {
        address: upstream_address?,
        tls: file.tls,
        sni: file.sni,
        ca: file.ca.map(|c| base.join(c)),
        connect_timeout: Duration::from_millis(file.connect_timeout_ms),
        timeout: Duration::from_millis(file.timeout_ms),
    })
}

/// `[api]`: the status mode and the largest request body.
fn api_settings(file: &ApiFile, src: &Source<'_>, errors: &mut Vec<ConfigError>) -> Api {
    let max_body_bytes = file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if !(256..=MAX_BODY_CEILING).contains(&max_body_bytes) {
        errors.push(src.error(
            None,
            "api.max_body_bytes",
            format!("must be between 256 and {MAX_BODY_CEILING} bytes"),
        ));
    }

    Api {
        status_mode: file.status_mode,
        max_body_bytes,
    }
}

/// `[auth]`: the login failures before a lockout, their window and the lockout.
fn auth_settings(file: &AuthFile, src: &Source<'_>, errors: &mut Vec<ConfigError>) -> Auth {
    let defaults = Auth::default();
    let max_failures = match file.max_failures.map(NonZeroU32::new) {
        None => defaults.max_failures,
        Some(Some(n)) => n,
        Some(None) => {
            errors.push(src.error(None, "auth.max_failures", "must be at least 1"));
            defaults.max_failures
        }
    };
    Auth {
        max_failures,
        failure_window: file
            .failure_window_secs
            .map_or(defaults.failure_window, Duration::from_secs),
        lockout: file
            .lockout_secs
            .map_or(defaults.lockout, Duration::from_secs),
    }
}

/// `[quota]`: the store and, for Redis, its connection and leases; Redis fields are refused
/// with the local store.
fn quota_settings(
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
fn shared_settings(
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

/// Checks `[admin]`, adding what is wrong to `errors`.
fn admin_settings(
    file: &AdminFile,
    base: &Path,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<Admin> {
    let Ok(address) = file.address.get_ref().parse::<SocketAddr>() else {
        errors.push(src.error(
            Some(file.address.span()),
            "admin.address",
            format!(
                "`{}` is not `IP:port` (e.g. `127.0.0.1:9100`)",
                file.address.get_ref()
            ),
        ));
        return None;
    };
    if !address.ip().is_loopback() && !file.allow_non_loopback {
        errors.push(src.error(
            Some(file.address.span()),
            "admin.address",
            format!(
                "`{address}` is not a loopback address: the admin listener speaks plain HTTP, and its bearer token and sanctions would cross the network unencrypted. Use 127.0.0.1 or ::1 (reach it through SSH), or set `allow_non_loopback = true` in [admin] if only a management network no Pengguna can reach leads to it"
            ),
        ));
        return None;
    }
    Some(Admin {
        address,
        token_file: file.token_file.as_ref().map(|t| base.join(t)),
        quota_series: file.quota_series.unwrap_or(1000),
    })
}

/// Default time the SAM sidecar may take to answer one validation.
pub const DEFAULT_SAM_TIMEOUT: Duration = Duration::from_millis(200);

/// Where the SAM sidecar listens: loopback TCP or a Unix socket, never another host (its
/// answers decide card-reader access and travel unencrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidecarAddress {
    /// A loopback `IP:port`.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl SidecarAddress {
    /// Parses `IP:port` (loopback) or `unix:/path`; a relative socket path is taken
    /// relative to `base`. The error says what is expected, in words for an operator.
    pub fn parse(s: &str, base: &Path) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(
                    "`unix:` needs a socket path, e.g. `unix:/run/gerbang/sam.sock`".into(),
                );
            }
            return Ok(Self::Unix(base.join(path)));
        }
        match s.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Ok(Self::Tcp(a)),
            Ok(a) => Err(format!(
                "`{a}` is not a loopback address: the SAM sidecar runs beside the gateway, on 127.0.0.1, ::1 or a Unix socket"
            )),
            Err(_) => Err(format!(
                "`{s}` is neither `IP:port` (e.g. `127.0.0.1:7443`) nor `unix:/path/to/socket`"
            )),
        }
    }
}

impl std::fmt::Display for SidecarAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Validated `[sam]` settings: the gateway's client to the SAM sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamSidecar {
    pub address: SidecarAddress,
    /// Time limit of one validation, connecting included.
    pub timeout: Duration,
}

/// Checks `[sam]`, adding what is wrong to `errors`.
fn sam_settings(
    file: Option<SamFile>,
    base: &Path,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<SamSidecar> {
    let file = file?;
    let address = match SidecarAddress::parse(file.address.get_ref(), base) {
        Ok(a) => Some(a),
        Err(msg) => {
            errors.push(src.error(Some(file.address.span()), "sam.address", msg));
            None
        }
    };
    let timeout = match &file.timeout_ms {
        None => DEFAULT_SAM_TIMEOUT,
        Some(ms) if (1..=10_000).contains(ms.get_ref()) => Duration::from_millis(*ms.get_ref()),
        Some(ms) => {
            errors.push(src.error(
                Some(ms.span()),
                "sam.timeout_ms",
                "must be between 1 and 10000 milliseconds (a card reader waits on it; 200 is the default)",
            ));
            DEFAULT_SAM_TIMEOUT
        }
    };
    Some(SamSidecar {
        address: address?,
        timeout,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PortalFile {
    /// Path prefix of the DWH's Web Portal application upstream (default `/portal/`):
    /// `/portal/x` at the gateway is forwarded as `{upstream_prefix}x`.
    upstream_prefix: Option<String>,
    /// A portal session ends after this many seconds without a request (default 900).
    idle_timeout_secs: Option<u64>,
    /// A portal session ends this many seconds after login, used or not (default 28800).
    absolute_timeout_secs: Option<u64>,
    /// Name of the session cookie (default `gerbang_portal`).
    cookie_name: Option<String>,
}

/// Validated Web Portal settings (`[portal]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    /// Path prefix of the portal application upstream; starts and ends with `/`.
    pub upstream_prefix: String,
    /// Inactivity after which a session ends.
    pub idle_timeout: Duration,
    /// Time after login at which a session ends whatever its use.
    pub absolute_timeout: Duration,
    /// Name of the session cookie.
    pub cookie_name: String,
}

impl Default for Portal {
    fn default() -> Self {
        Self {
            upstream_prefix: "/portal/".to_string(),
            idle_timeout: Duration::from_secs(15 * 60),
            absolute_timeout: Duration::from_secs(8 * 60 * 60),
            cookie_name: "gerbang_portal".to_string(),
        }
    }
}

/// Checks `[portal]`, adding what is wrong to `errors`.
fn portal_settings(file: PortalFile, src: &Source<'_>, errors: &mut Vec<ConfigError>) -> Portal {
    let defaults = Portal::default();
    let upstream_prefix = file.upstream_prefix.unwrap_or(defaults.upstream_prefix);
    if !upstream_prefix.starts_with('/')
        || !upstream_prefix.ends_with('/')
        || !upstream_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
    {
        errors.push(src.error(
            None,
            "portal.upstream_prefix",
            "must be a path that starts and ends with `/` (e.g. `/portal/`), letters, digits and - _ . ~ only",
        ));
    }
    let idle_timeout = file
        .idle_timeout_secs
        .map_or(defaults.idle_timeout, Duration::from_secs);
    let absolute_timeout = file
        .absolute_timeout_secs
        .map_or(defaults.absolute_timeout, Duration::from_secs);
    if idle_timeout.is_zero() {
        errors.push(src.error(
            None,
            "portal.idle_timeout_secs",
            "must be at least 1 second",
        ));
    }
    if absolute_timeout < idle_timeout {
        errors.push(src.error(
            None,
            "portal.absolute_timeout_secs",
            "must not be shorter than portal.idle_timeout_secs",
        ));
    }
    let cookie_name = file.cookie_name.unwrap_or(defaults.cookie_name);
    // RFC 6265 cookie-name is an HTTP token; keep to the plain subset.
    if cookie_name.is_empty()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        errors.push(src.error(
            None,
            "portal.cookie_name",
            "must be letters, digits, - and _ only",
        ));
    }
    Portal {
        upstream_prefix,
        idle_timeout,
        absolute_timeout,
        cookie_name,
    }
}

/// How refusals map to HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusMode {
    /// HTTP 200 with the error in the body, as the DWH does.
    #[default]
    Dwh,
    /// 400/401/403/404/413/429/502/504 as REST clients expect.
    Rest,
}

/// Validated main configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub path: PathBuf,
    pub instance: String,
    pub listen: Listen,
    pub upstream: Upstream,
    pub api: Api,
    pub auth: Auth,
    pub pks_dir: PathBuf,
    pub vocabulary: Option<PathBuf>,
    /// The Cedar schema and policies.
    pub policy_dir: PathBuf,
    /// The block list of networks cut off as a sanction, if any.
    pub blocklist: Option<PathBuf>,
    /// The sanctions file, if any.
    pub sanctions: Option<PathBuf>,
    /// Reload on file changes.
    pub watch: bool,
    /// Candidate policies evaluated in shadow, if any.
    pub shadow_dir: Option<PathBuf>,
    /// The admin listener, if configured.
    pub admin: Option<Admin>,
    /// The decision log, if configured.
    pub audit: Option<AuditSettings>,
    /// The Web Portal channel (art. 30(2): read-only).
    pub portal: Portal,
    pub quota: QuotaSettings,
    /// Portal sessions, login lockouts and sanctions shared through Redis (`[quota] store =
    /// "redis"`);
    /// `None`: kept in this process, as a single instance needs.
    pub shared: Option<SharedSettings>,
    pub threads: usize,
    /// The SAM sidecar; `None`: card-reader requests are refused (fail closed).
    pub sam: Option<SamSidecar>,
}

/// Free space the log's filesystem must have at start unless configured: a few minutes of
/// records at the bench's peak, enough to tell a full disk from a working one.
const DEFAULT_MIN_FREE_MIB: u64 = 256;
/// Free space under which the disk alert fires unless configured (docs/audit.md "Sizing").
const DEFAULT_ALERT_FREE_MIB: u64 = 10 * 1024;
const MIB: u64 = 1 << 20;

fn positive(
    value: u32,
    field: &str,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<NonZeroU32> {
    let checked = NonZeroU32::new(value);
    if checked.is_none() {
        errors.push(src.error(None, field, "must be at least 1"));
    }
    checked
}

/// The admin listener.
#[derive(Debug, Clone)]
pub struct Admin {
    pub address: SocketAddr,
    pub token_file: Option<PathBuf>,
    pub quota_series: usize,
}

/// Shortest and longest deadline `[listen]` accepts, in milliseconds.
const LISTEN_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=300_000;

#[derive(Debug, Clone)]
pub struct Upstream {
    /// Resolved once at load, so no DNS lookup happens per request.
    pub address: SocketAddr,
    pub tls: bool,
    pub sni: String,
    pub ca: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Api {
    pub status_mode: StatusMode,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub max_failures: NonZeroU32,
    pub failure_window: Duration,
    pub lockout: Duration,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            max_failures: NonZeroU32::MIN.saturating_add(4),
            failure_window: Duration::from_secs(300),
            lockout: Duration::from_secs(300),
        }
    }
}

/// Default largest request body: a lookup is a few hundred bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024;
/// Hard ceiling for `max_body_bytes`: the proxy buffers the body to authenticate it.
pub const MAX_BODY_CEILING: usize = 60 * 1024;

impl Config {
    /// Loads and validates the main configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = read_file(path)?;
        Self::parse(path, &text)
    }

    /// Validates a configuration text; `path` locates relative paths and errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let src = Source::new(path, text);
        let file: ConfigFile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut errors = Vec::new();

        let listen = listen_settings(&file.listen, base, &src, &mut errors);
        let upstream = upstream_settings(file.upstream, base, &src, &mut errors);
        let api = api_settings(&file.api, &src, &mut errors);
        let auth = auth_settings(&file.auth, &src, &mut errors);
        let threads = file.server.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        });
        let quota = quota_settings(file.quota, base, &src, &mut errors);
        let shared = shared_settings(file.shared, &quota, &src, &mut errors);
        if threads == 0 {
            errors.push(src.error(None, "server.threads", "must be at least 1"));
        }
        let audit = audit_settings(file.audit, base, &src, &mut errors);
        let admin = file
            .admin
            .as_ref()
            .and_then(|a| admin_settings(a, base, &src, &mut errors));
        let sam = sam_settings(file.sam, base, &src, &mut errors);
        let portal = portal_settings(file.portal, &src, &mut errors);

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let (Some(listen), Some(upstream)) = (listen, upstream) else {
            return Err(ConfigErrors(errors));
        };
        Ok(Self {
            path: path.to_path_buf(),
            instance: file.instance,
            listen,
            upstream,
            api,
            auth,
            pks_dir: base.join(file.pks.dir),
            vocabulary: file.pks.vocabulary.map(|v| base.join(v)),
            policy_dir: base.join(file.policy.dir),
            blocklist: file.policy.blokir.map(|b| base.join(b)),
            sanctions: file.policy.sanksi.map(|b| base.join(b)),
            watch: file.policy.watch.unwrap_or(true),
            shadow_dir: file.policy.shadow_dir.map(|d| base.join(d)),
            admin,
            audit,
            portal,
            quota,
            shared,
            threads,
            sam,
        })
    }

    /// Loads the vocabulary this configuration names (or the embedded one).
    pub fn load_vocabulary(&self) -> Result<Vocabulary, ConfigErrors> {
        match &self.vocabulary {
            Some(path) => Vocabulary::load(path),
            None => Ok(Vocabulary::embedded()),
        }
    }

    /// Loads the block list this configuration names (empty when none).
    pub fn load_blocklist(&self) -> Result<Vec<ipnet::IpNet>, ConfigErrors> {
        match &self.blocklist {
            Some(path) => crate::pks::load_blocklist(path),
            None => Ok(Vec::new()),
        }
    }

    /// Loads the sanctions file this configuration names (none when not configured).
    pub fn load_sanctions(&self) -> Result<crate::Sanctions, ConfigErrors> {
        match &self.sanctions {
            Some(path) => crate::Sanctions::load(path),
            None => Ok(crate::Sanctions::default()),
        }
    }

    /// Reads the admin token, if one is configured. Too short a token is an error: the admin
    /// API can cut a Pengguna off. So is a token file other users may read or change, as
    /// ssh refuses a private key others can read.
    pub fn load_admin_token(&self) -> Result<Option<String>, ConfigErrors> {
        let Some(path) = self.admin.as_ref().and_then(|a| a.token_file.as_ref()) else {
            return Ok(None);
        };
        check_private(path)?;
        let token = read_file(path)?.trim().to_string();
        if token.len() < 32 {
            return Err(ConfigError {
                file: path.clone(),
                line: None,
                column: None,
                field: String::new(),
                message:
                    "the admin token must be at least 32 characters (e.g. `openssl rand -hex 32`)"
                        .into(),
            }
            .into());
        }
        Ok(Some(token))
    }

    /// Loads the vocabulary and every PKS file this configuration names.
    pub fn load_agreements(&self) -> Result<(Vocabulary, PksSet), ConfigErrors> {
        let vocab = self.load_vocabulary()?;
        let set = PksSet::load_dir(&self.pks_dir, &vocab)?;
        Ok((vocab, set))
    }

    /// [`Self::load_agreements`] for a reload: files whose content is in `previous` are not
    /// parsed again. Also returns the cache for the next reload.
    pub fn reload_agreements(
        &self,
        previous: &PksCache,
    ) -> Result<(Vocabulary, PksSet, PksCache), ConfigErrors> {
        let vocab = self.load_vocabulary()?;
        let (set, cache) = PksSet::reload_dir(&self.pks_dir, &vocab, previous)?;
        Ok((vocab, set, cache))
    }
}

/// Refuses a secret file that its group or other users may read, write or run (mode
/// `& 0o077`), naming the file and the fix. A file that does not exist is left to the
/// reader's own error.
pub fn check_private(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    Err(ConfigError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        field: String::new(),
        message: format!(
            "holds a secret but its mode is {mode:04o}: other users can read or change it. Run `chmod 600 {}` (readable by its owner only) and start again",
            path.display()
        ),
    })
}

/// Loads the main configuration and checks that the files it names for TLS exist. The
/// vocabulary, PKS files and policies are loaded (once) by the policy crate's
/// `load_snapshot`, which `serve` and `gerbang check` call next.
pub fn check(path: &Path) -> Result<Config, ConfigErrors> {
    let config = Config::load(path)?;
    let mut errors = Vec::new();
    if let Some(tls) = &config.listen.tls {
        let files = [
            ("listen.tls_cert", Some(&tls.cert)),
            ("listen.tls_key", Some(&tls.key)),
            ("listen.tls_client_ca", tls.client_ca.as_ref()),
        ];
        for (field, file) in files.into_iter().filter_map(|(f, p)| Some((f, p?))) {
            if !file.is_file() {
                errors.push(ConfigError {
                    file: config.path.clone(),
                    line: None,
                    column: None,
                    field: field.to_string(),
                    message: format!(
                        "{} does not exist (`gerbang certs dev` makes development certificates)",
                        file.display()
                    ),
                });
            }
        }
    }
    // The token itself is read at start (it may not exist yet where the config is checked),
    // but a token file others can read is refused here already.
    if let Some(path) = config.admin.as_ref().and_then(|a| a.token_file.as_ref())
        && let Err(e) = check_private(path)
    {
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The configuration file a tool reads when it is given none: `local`, a path relative to
/// the working directory as in a checkout of the repository, when it is a file there; else
/// `installed`, where the Debian package puts it under `/etc/gerbang/`. An operator on an
/// installed server runs `gerbang check` from anywhere; a developer runs it from the checkout.
pub fn default_config_path(local: &Path, installed: &Path) -> PathBuf {
    if local.is_file() {
        local.to_path_buf()
    } else {
        installed.to_path_buf()
    }
}

#[cfg(test)]
mod tests;

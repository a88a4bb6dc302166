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
mod balikan;
mod listen;
mod portal;
mod quota;
mod sam;

use audit::*;
pub use audit::{AuditArchive, AuditKeep, AuditRetention, AuditSettings};
use balikan::*;
pub use balikan::{BalikanSettings, MAX_BALIKAN_RECORDS};
use listen::*;
pub use listen::{Listen, ListenLimits, TlsFiles};
pub use portal::Portal;
use portal::*;
use quota::*;
pub use quota::{QuotaSettings, QuotaStore, SharedSettings};
use sam::*;
pub use sam::{DEFAULT_SAM_TIMEOUT, SamSidecar, SidecarAddress};

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
    /// The data-balikan channel (what a Pengguna returns under its PKS).
    #[serde(default)]
    balikan: BalikanFile,
    /// State shared by several instances through the quota's Redis (portal sessions, login
    /// lockouts, sanctions); only with `[quota] store = "redis"`.
    shared: Option<SharedFile>,
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
    /// The data-balikan channel.
    pub balikan: BalikanSettings,
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
        let balikan = balikan_settings(file.balikan, base, &quota.path, &src, &mut errors);

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
            balikan,
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

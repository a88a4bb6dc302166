//! The sidecar's settings: `config/sam/sidecar.toml`, each value overridable by a flag.
//! Relative paths are relative to the file's directory. Errors name the file, the line and
//! the field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gerbang_core::{ConfigErrors, SidecarAddress, Source, read_config_file};
use gerbang_shared::RedisTarget;
use serde::Deserialize;
use toml::Spanned;

use crate::replay::DEFAULT_MAX_NONCES_PER_SAM;
use crate::validate::DEFAULT_SKEW_SECS;

/// Default loopback address of the sidecar.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";
/// Default interval between two looks at the PKS directory: with it a deactivated SAM is
/// refused well within a second.
pub const DEFAULT_POLL: Duration = Duration::from_millis(200);
/// Default prefix of the sidecar's Redis keys: nonces are `gerbang:nonce:<sam>:<nonce>`.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "gerbang:";
/// Default time budget of one Redis call (finding the master, connecting and answering), as
/// the quota store's.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SidecarFile {
    #[serde(default)]
    listen: ListenFile,
    pks: PksFile,
    #[serde(default)]
    validation: ValidationFile,
    #[serde(default)]
    reload: ReloadFile,
    #[serde(default)]
    replay: ReplayFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListenFile {
    /// Loopback `IP:port` the gateway calls (`[sam] address` in gerbang.toml); port 0
    /// picks a free port.
    address: Option<Spanned<String>>,
    /// Also serve on this Unix socket (created mode 0660; a stale socket is replaced).
    unix_socket: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PksFile {
    /// Directory of PKS files (`*.toml`), the same the gateway reads.
    dir: String,
    /// Element vocabulary file (default: the embedded one).
    vocabulary: Option<String>,
    /// The sanctions file (art. 45), the gateway's `[policy] sanksi`: a deactivated SAM or
    /// a frozen or ended PKS is refused here too. Absent: the PKS files alone.
    sanksi: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ValidationFile {
    /// Largest allowed difference between a reader's clock and this host's, in seconds
    /// (default 30). Nonces are remembered this long.
    skew_secs: Option<Spanned<u32>>,
    /// Nonces remembered per SAM within the skew window (default 10000); past it the SAM's
    /// requests are refused until older nonces expire.
    max_nonces_per_sam: Option<Spanned<usize>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReloadFile {
    /// How often the PKS directory is looked at for changes, in milliseconds (default
    /// 200; 50 to 800, so a deactivated SAM is refused within a second).
    poll_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayFile {
    /// The Redis deployment every sidecar of the gateway's instances shares its nonces
    /// through (`redis://host:port/db` or `redis+sentinel://host:port,…/master[/db]`), so a
    /// request replayed to any instance is refused. Absent: this process's own cache.
    redis_url: Option<Spanned<String>>,
    /// Prefix of the keys (default `gerbang:`): nonces are `<prefix>nonce:<sam>:<nonce>`.
    key_prefix: Option<Spanned<String>>,
    /// Time budget of one Redis call in milliseconds (default 200; 10 to 5000). Past it the
    /// request is refused.
    redis_timeout_ms: Option<Spanned<u64>>,
}

/// The Redis URL of the shared replay cache. It may hold a password: `Debug` shows only
/// where it points.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Checks the URL as `gerbang_shared::RedisTarget` reads it.
    pub fn parse(url: &str) -> Result<Self, String> {
        RedisTarget::parse(url)
            .map(|_| Self(url.to_string()))
            .map_err(|e| e.to_string())
    }

    /// The deployment it names.
    pub fn target(&self) -> Result<RedisTarget, String> {
        RedisTarget::parse(&self.0).map_err(|e| e.to_string())
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match RedisTarget::parse(&self.0) {
            Ok(t) => write!(f, "RedisUrl({})", t.describe()),
            Err(_) => f.write_str("RedisUrl(<redacted>)"),
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Loopback TCP address.
    pub listen: SocketAddr,
    /// Optional Unix socket.
    pub unix_socket: Option<PathBuf>,
    pub pks_dir: PathBuf,
    pub vocabulary: Option<PathBuf>,
    /// The sanctions file applied over the PKS files, if any.
    pub sanctions: Option<PathBuf>,
    pub skew_secs: u32,
    /// Bound of the embedded replay cache (not of the Redis one).
    pub max_nonces_per_sam: usize,
    pub poll: Duration,
    /// The Redis deployment the replay cache lives in; `None`: in this process.
    pub redis_url: Option<RedisUrl>,
    /// Prefix of the Redis keys.
    pub redis_key_prefix: String,
    /// Time budget of one Redis call.
    pub redis_timeout: Duration,
}

impl Settings {
    /// Settings with defaults for everything but the PKS directory.
    pub fn new(pks_dir: PathBuf) -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7443))),
            unix_socket: None,
            pks_dir,
            vocabulary: None,
            sanctions: None,
            skew_secs: DEFAULT_SKEW_SECS,
            max_nonces_per_sam: DEFAULT_MAX_NONCES_PER_SAM,
            poll: DEFAULT_POLL,
            redis_url: None,
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_string(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
        }
    }

    /// Loads and validates a settings file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = read_config_file(path)?;
        Self::parse(path, &text)
    }

    /// Validates a settings text; `path` locates relative paths and errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let src = Source::new(path, text);
        let file: SidecarFile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut errors = Vec::new();
        let mut settings = Self::new(base.join(&file.pks.dir));
        settings.vocabulary = file.pks.vocabulary.map(|v| base.join(v));
        settings.sanctions = file.pks.sanksi.map(|v| base.join(v));
        settings.unix_socket = file.listen.unix_socket.map(|u| base.join(u));
        if let Some(address) = &file.listen.address {
            match parse_listen(address.get_ref()) {
                Ok(a) => settings.listen = a,
                Err(msg) => errors.push(src.error(Some(address.span()), "listen.address", msg)),
            }
        }
        if let Some(skew) = &file.validation.skew_secs {
            match check_skew(*skew.get_ref()) {
                Ok(s) => settings.skew_secs = s,
                Err(msg) => {
                    errors.push(src.error(Some(skew.span()), "validation.skew_secs", msg));
                }
            }
        }
        if let Some(max) = &file.validation.max_nonces_per_sam {
            if (1..=1_000_000).contains(max.get_ref()) {
                settings.max_nonces_per_sam = *max.get_ref();
            } else {
                errors.push(src.error(
                    Some(max.span()),
                    "validation.max_nonces_per_sam",
                    "must be between 1 and 1000000",
                ));
            }
        }
        if let Some(poll) = &file.reload.poll_ms {
            if (50..=800).contains(poll.get_ref()) {
                settings.poll = Duration::from_millis(*poll.get_ref());
            } else {
                errors.push(src.error(
                    Some(poll.span()),
                    "reload.poll_ms",
                    "must be between 50 and 800 milliseconds, so a deactivated SAM is refused within a second",
                ));
            }
        }
        if let Some(url) = &file.replay.redis_url {
            match RedisUrl::parse(url.get_ref()) {
                Ok(u) => settings.redis_url = Some(u),
                Err(msg) => errors.push(src.error(Some(url.span()), "replay.redis_url", msg)),
            }
        }
        if let Some(prefix) = &file.replay.key_prefix {
            match check_key_prefix(prefix.get_ref()) {
                Ok(p) => settings.redis_key_prefix = p,
                Err(msg) => errors.push(src.error(Some(prefix.span()), "replay.key_prefix", msg)),
            }
        }
        if let Some(ms) = &file.replay.redis_timeout_ms {
            match check_redis_timeout(*ms.get_ref()) {
                Ok(t) => settings.redis_timeout = t,
                Err(msg) => {
                    errors.push(src.error(Some(ms.span()), "replay.redis_timeout_ms", msg));
                }
            }
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// A loopback `IP:port` to listen on: the sidecar speaks plain HTTP and must not be
/// reachable from another host.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    match SidecarAddress::parse(s, Path::new(".")) {
        Ok(SidecarAddress::Tcp(a)) => Ok(a),
        Ok(SidecarAddress::Unix(_)) => {
            Err("a Unix socket goes in `listen.unix_socket` (or --unix-socket)".into())
        }
        Err(msg) => Err(msg),
    }
}

/// The allowed clock skew: 1 to 300 seconds.
pub fn check_skew(secs: u32) -> Result<u32, String> {
    if (1..=300).contains(&secs) {
        Ok(secs)
    } else {
        Err("must be between 1 and 300 seconds (30 is the default)".into())
    }
}

/// A Redis key prefix: 1 to 64 printable ASCII characters, no space.
pub fn check_key_prefix(prefix: &str) -> Result<String, String> {
    if (1..=64).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(prefix.to_string())
    } else {
        Err("must be 1 to 64 printable characters without spaces, e.g. `gerbang:`".into())
    }
}

/// The time budget of one Redis call: 10 to 5000 milliseconds.
pub fn check_redis_timeout(ms: u64) -> Result<Duration, String> {
    if (10..=5000).contains(&ms) {
        Ok(Duration::from_millis(ms))
    } else {
        Err("must be between 10 and 5000 milliseconds (200 is the default)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_relative_paths() {
        let s = Settings::parse(
            Path::new("/etc/g/sam/sidecar.toml"),
            "[pks]\ndir = \"../pks\"\n",
        )
        .expect("valid");
        assert_eq!(s.pks_dir, Path::new("/etc/g/sam/../pks"));
        assert_eq!(s.sanctions, None);
        let s = Settings::parse(
            Path::new("/etc/g/sam/sidecar.toml"),
            "[pks]\ndir = \"../pks\"\nsanksi = \"../sanksi.toml\"\n",
        )
        .expect("valid");
        assert_eq!(
            s.sanctions.as_deref(),
            Some(Path::new("/etc/g/sam/../sanksi.toml"))
        );
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.skew_secs, 30);
        assert_eq!(s.poll, DEFAULT_POLL);
        assert_eq!(s.redis_url, None);
    }

    #[test]
    fn a_redis_replay_cache_is_named_by_url_and_never_shown_with_its_password() {
        let text = "[pks]\ndir = \"p\"\n[replay]\nredis_url = \"redis+sentinel://gerbang:s3cret@10.0.0.11:26379,10.0.0.12/gerbang/1\"\nkey_prefix = \"dc1:\"\nredis_timeout_ms = 500\n";
        let s = Settings::parse(Path::new("s.toml"), text).expect("valid");
        assert!(s.redis_url.is_some());
        assert_eq!(s.redis_key_prefix, "dc1:");
        assert_eq!(s.redis_timeout, Duration::from_millis(500));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("10.0.0.11:26379"),
            "{shown}"
        );
        let text = "[pks]\ndir = \"p\"\n[replay]\nredis_url = \"http://u:s3cret@h/\"\nkey_prefix = \"a b\"\nredis_timeout_ms = 0\n";
        let err = Settings::parse(Path::new("s.toml"), text).expect_err("invalid");
        let shown = err.to_string();
        for (line, field) in [
            (4, "replay.redis_url"),
            (5, "replay.key_prefix"),
            (6, "replay.redis_timeout_ms"),
        ] {
            assert!(
                shown.contains(&format!("s.toml:{line}:")) && shown.contains(field),
                "{shown}"
            );
        }
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn errors_name_line_and_field() {
        let text = "[listen]\naddress = \"0.0.0.0:7443\"\n[pks]\ndir = \"p\"\n[validation]\nskew_secs = 0\n[reload]\npoll_ms = 5000\n";
        let err = Settings::parse(Path::new("s.toml"), text).expect_err("invalid");
        let shown = err.to_string();
        assert!(
            shown.contains("s.toml:2:") && shown.contains("not a loopback"),
            "{shown}"
        );
        assert!(
            shown.contains("s.toml:6:") && shown.contains("validation.skew_secs"),
            "{shown}"
        );
        assert!(
            shown.contains("s.toml:8:") && shown.contains("reload.poll_ms"),
            "{shown}"
        );
        let err = Settings::parse(Path::new("s.toml"), "[pks]\ndir = \"p\"\nfoo = 1\n")
            .expect_err("unknown field");
        let fields: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["foo"], "{err}");
    }
}

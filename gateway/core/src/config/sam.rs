//! `[sam]`: where the SAM-validation sidecar is, and how long it may take.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SamFile {
    /// The SAM sidecar (`gerbang-sam`): `127.0.0.1:PORT` (loopback only: the sidecar
    /// speaks plain HTTP) or `unix:/path/to/socket`.
    address: Spanned<String>,
    /// How long one validation may take, connecting included, in milliseconds (default
    /// 200). Past it the request is refused (fail closed).
    timeout_ms: Option<Spanned<u64>>,
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
pub(super) fn sam_settings(
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

//! `[portal]`: the Web Portal's session timeouts and cookie.

use super::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PortalFile {
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
pub(super) fn portal_settings(
    file: PortalFile,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> Portal {
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

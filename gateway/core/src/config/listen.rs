//! `[listen]`: where Pengguna connect, TLS (and client certificates), the PROXY protocol
//! and the limits a client meets.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::diag::{ConfigError, Source};

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListenFile {
    /// `IP:port` to accept Pengguna connections on.
    address: Spanned<String>,
    /// PEM certificate chain for TLS.
    tls_cert: Option<Spanned<String>>,
    /// PEM private key for TLS.
    tls_key: Option<Spanned<String>>,
    /// PEM certificates of the authorities whose client certificates the listener accepts
    /// (mTLS); required when a PKS file names `sertifikat_klien`.
    tls_client_ca: Option<Spanned<String>>,
    /// Serve without TLS. Must be said explicitly; only for a closed test network.
    #[serde(default)]
    plaintext: bool,
    /// Time a new TLS connection has to finish its handshake, in milliseconds (default
    /// 10000). Only with TLS.
    tls_handshake_timeout_ms: Option<Spanned<u64>>,
    /// Time a request's head (request line and headers) has to arrive whole, in
    /// milliseconds (default 10000): from the connection's start (after TLS), or on a
    /// kept-alive connection from the end of the idle wait.
    request_head_timeout_ms: Option<Spanned<u64>>,
    /// Time a request's body has to arrive whole once its head has, in milliseconds
    /// (default 10000).
    request_body_timeout_ms: Option<Spanned<u64>>,
    /// Longest time one answer may wait in total for the client to read it, in
    /// milliseconds (default 10000); past it the connection is closed.
    write_timeout_ms: Option<Spanned<u64>>,
    /// Seconds a kept-alive connection may stay idle between requests (default 60).
    keepalive_timeout_secs: Option<Spanned<u64>>,
    /// Requests served on one connection before it is closed (default 1000).
    max_requests_per_connection: Option<Spanned<u64>>,
    /// Client connections open at once, all addresses together (default 8192). Each
    /// takes a file descriptor, and a forwarded lookup one more toward the DWH.
    max_connections: Option<Spanned<u64>>,
    /// Client connections open at once from one source address (default 512): one
    /// institution's NAT carries many clients, but no single address may take the
    /// gateway's connections.
    max_connections_per_address: Option<Spanned<u64>>,
    /// Load balancers trusted to send the PROXY protocol (v1 or v2, HAProxy's
    /// `send-proxy`/`send-proxy-v2`): addresses or CIDRs. A connection from one of them must
    /// begin with a PROXY header, and the client address it carries is then the peer for
    /// every check, the decision log and the metrics; a connection from any other address
    /// is never read for one. Empty or absent: no PROXY protocol.
    proxy_protocol_from: Option<Vec<Spanned<String>>>,
}

/// `[listen]`: the address, TLS or an explicit plaintext, and the client connection limits.
pub(super) fn listen_settings(
    file: &ListenFile,
    base: &Path,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<Listen> {
    let listen_address = match file.address.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.push(src.error(
                Some(file.address.span()),
                "listen.address",
                format!(
                    "`{}` is not `IP:port` (e.g. `0.0.0.0:8443`)",
                    file.address.get_ref()
                ),
            ));
            None
        }
    };
    let tls = match (&file.tls_cert, &file.tls_key, file.plaintext) {
        (Some(cert), Some(key), false) => Some(TlsFiles {
            cert: base.join(cert.get_ref()),
            key: base.join(key.get_ref()),
            client_ca: file
                .tls_client_ca
                .as_ref()
                .map(|ca| base.join(ca.get_ref())),
        }),
        (None, None, true) => None,
        (Some(c), _, true) | (_, Some(c), true) => {
            errors.push(src.error(
                Some(c.span()),
                "listen.plaintext",
                "choose one: TLS (tls_cert + tls_key) or plaintext = true, not both",
            ));
            None
        }
        (Some(c), None, false) | (None, Some(c), false) => {
            errors.push(src.error(
                Some(c.span()),
                "listen",
                "TLS needs both tls_cert and tls_key",
            ));
            None
        }
        (None, None, false) => {
            errors.push(src.error(
                    Some(file.address.span()),
                    "listen",
                    "no TLS certificate configured: set tls_cert and tls_key (`gerbang certs dev` makes development ones), or set plaintext = true explicitly for a closed test network",
                ));
            None
        }
    };

    if let (Some(ca), true) = (&file.tls_client_ca, file.plaintext) {
        errors.push(src.error(
            Some(ca.span()),
            "listen.tls_client_ca",
            "client certificates need TLS: remove it or configure tls_cert and tls_key",
        ));
    }
    let limits = listen_limits(file, src, errors);
    let proxy_protocol_from = proxy_protocol_from(file, src, errors);

    Some(Listen {
        address: listen_address?,
        tls,
        limits,
        proxy_protocol_from,
    })
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub address: SocketAddr,
    /// `None` only when `plaintext = true` was configured.
    pub tls: Option<TlsFiles>,
    /// Deadlines and caps of client connections.
    pub limits: ListenLimits,
    /// Balancers whose connections carry the client's address in a PROXY header
    /// (`proxy_protocol_from`); empty: none.
    pub proxy_protocol_from: Vec<IpNet>,
}

/// How long a client may take and how many connections it may hold (`[listen]`): what keeps
/// slow or numerous clients from holding the gateway's connections and workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenLimits {
    /// Whole TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Whole request head.
    pub head_timeout: Duration,
    /// Whole request body.
    pub body_timeout: Duration,
    /// Total time one answer may wait for the client to read it.
    pub write_timeout: Duration,
    /// Idle time between requests on a kept-alive connection.
    pub keepalive_timeout: Duration,
    /// Requests per connection.
    pub max_requests_per_connection: NonZeroU32,
    /// Connections open at once, in total.
    pub max_connections: NonZeroU32,
    /// Connections open at once from one source address.
    pub max_connections_per_address: NonZeroU32,
}

impl Default for ListenLimits {
    fn default() -> Self {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Self {
            tls_handshake_timeout: Duration::from_secs(10),
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            max_requests_per_connection: n(1000),
            max_connections: n(8192),
            max_connections_per_address: n(512),
        }
    }
}

/// Checks the deadlines and caps of `[listen]`, adding what is wrong to `errors`.
/// The trusted balancers of `[listen] proxy_protocol_from`: single addresses or CIDRs,
/// never every address (a PROXY header from anyone would let anyone claim any address).
pub(super) fn proxy_protocol_from(
    file: &ListenFile,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for entry in file.proxy_protocol_from.iter().flatten() {
        let text = entry.get_ref().trim();
        let net = match text.parse::<IpNet>() {
            Ok(n) => Some(n.trunc()),
            Err(_) => text.parse::<IpAddr>().ok().map(IpNet::from),
        };
        match net {
            Some(n) if n.prefix_len() > 0 => nets.push(n),
            Some(_) => errors.push(src.error(
                Some(entry.span()),
                "listen.proxy_protocol_from",
                format!("`{text}` would trust every address to claim any client address; name the balancers"),
            )),
            None => errors.push(src.error(
                Some(entry.span()),
                "listen.proxy_protocol_from",
                format!("`{text}` is not an IP address or CIDR"),
            )),
        }
    }
    nets
}

pub(super) fn listen_limits(
    file: &ListenFile,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> ListenLimits {
    let defaults = ListenLimits::default();
    let mut millis = |value: &Option<Spanned<u64>>, field: &str, default: Duration| {
        let Some(v) = value else {
            return default;
        };
        if LISTEN_TIMEOUT_MS.contains(v.get_ref()) {
            Duration::from_millis(*v.get_ref())
        } else {
            errors.push(src.error(
                Some(v.span()),
                field,
                format!(
                    "must be between {} and {} milliseconds (the default is {})",
                    LISTEN_TIMEOUT_MS.start(),
                    LISTEN_TIMEOUT_MS.end(),
                    default.as_millis()
                ),
            ));
            default
        }
    };
    let tls_handshake_timeout = millis(
        &file.tls_handshake_timeout_ms,
        "listen.tls_handshake_timeout_ms",
        defaults.tls_handshake_timeout,
    );
    let head_timeout = millis(
        &file.request_head_timeout_ms,
        "listen.request_head_timeout_ms",
        defaults.head_timeout,
    );
    let body_timeout = millis(
        &file.request_body_timeout_ms,
        "listen.request_body_timeout_ms",
        defaults.body_timeout,
    );
    let write_timeout = millis(
        &file.write_timeout_ms,
        "listen.write_timeout_ms",
        defaults.write_timeout,
    );
    if file.plaintext
        && let Some(v) = &file.tls_handshake_timeout_ms
    {
        errors.push(src.error(
            Some(v.span()),
            "listen.tls_handshake_timeout_ms",
            "only used with TLS; remove it or configure tls_cert and tls_key",
        ));
    }
    let keepalive_timeout = match &file.keepalive_timeout_secs {
        None => defaults.keepalive_timeout,
        Some(v) if (1..=3600).contains(v.get_ref()) => Duration::from_secs(*v.get_ref()),
        Some(v) => {
            errors.push(src.error(
                Some(v.span()),
                "listen.keepalive_timeout_secs",
                "must be between 1 and 3600 seconds (the default is 60)",
            ));
            defaults.keepalive_timeout
        }
    };
    let mut count = |value: &Option<Spanned<u64>>, field: &str, default: NonZeroU32| {
        let Some(v) = value else {
            return default;
        };
        match u32::try_from(*v.get_ref()).ok().and_then(NonZeroU32::new) {
            Some(n) if n.get() <= 1_000_000 => n,
            _ => {
                errors.push(src.error(
                    Some(v.span()),
                    field,
                    format!("must be between 1 and 1000000 (the default is {default})"),
                ));
                default
            }
        }
    };
    let max_requests_per_connection = count(
        &file.max_requests_per_connection,
        "listen.max_requests_per_connection",
        defaults.max_requests_per_connection,
    );
    let max_connections = count(
        &file.max_connections,
        "listen.max_connections",
        defaults.max_connections,
    );
    let max_connections_per_address = count(
        &file.max_connections_per_address,
        "listen.max_connections_per_address",
        defaults.max_connections_per_address.min(max_connections),
    );
    if max_connections_per_address > max_connections {
        errors.push(src.error(
            file.max_connections_per_address.as_ref().map(Spanned::span),
            "listen.max_connections_per_address",
            "must not be more than listen.max_connections",
        ));
    }
    ListenLimits {
        tls_handshake_timeout,
        head_timeout,
        body_timeout,
        write_timeout,
        keepalive_timeout,
        max_requests_per_connection,
        max_connections,
        max_connections_per_address,
    }
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The authorities whose client certificates are accepted (mTLS); `None`: no client
    /// certificate is asked for.
    pub client_ca: Option<PathBuf>,
}

//! The PROXY protocol (v1 text and v2 binary, as HAProxy's `send-proxy` and
//! `send-proxy-v2` send it) on connections from the balancers `[listen]
//! proxy_protocol_from` trusts: behind a TCP balancer the TCP peer is the balancer, and
//! authentication by IP LAN needs the client's own address. Only a trusted balancer's
//! connection is read for a header, and it must carry one; nobody else can claim an
//! address. The header is parsed by the `ppp` crate.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt as _;

/// The longest header accepted: a v1 header is at most 107 bytes; HAProxy's v2 headers
/// with their usual TLVs stay well below this.
const MAX_HEADER: usize = 1024;

/// Why a trusted balancer's connection was closed before HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error("no complete PROXY header within the head deadline")]
    Timeout,
    #[error("the connection does not begin with a valid PROXY header")]
    Invalid,
    #[error("the connection closed before its PROXY header was complete")]
    Closed,
}

/// The trusted balancers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Balancers(Vec<IpNet>);

impl Balancers {
    pub(crate) fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Whether connections from `peer` must begin with a PROXY header.
    pub(crate) fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.0.iter().any(|net| net.contains(&ip)))
    }
}

/// Reads the PROXY header at the start of `stream` within `deadline`, puts back any bytes
/// after it, and makes the client address it carries the stream's peer address (what
/// every later check reads). A header that carries no client address (v2 `LOCAL`, such as
/// a balancer's own health check, or v1 `UNKNOWN`) leaves the balancer as the peer.
/// Returns the peer from now on.
pub(crate) async fn accept_header(
    stream: &mut L4Stream,
    deadline: Duration,
) -> Result<Option<SocketAddr>, HeaderError> {
    let client = match tokio::time::timeout(deadline, read_header(stream)).await {
        Ok(read) => read?,
        Err(_) => return Err(HeaderError::Timeout),
    };
    if let Some(client) = client {
        let digest = SocketDigest::from_raw_fd(std::os::fd::AsRawFd::as_raw_fd(stream));
        let _ = digest.peer_addr.set(Some(PingoraAddr::Inet(client)));
        stream.set_socket_digest(digest);
    }
    Ok(client)
}

async fn read_header(stream: &mut L4Stream) -> Result<Option<SocketAddr>, HeaderError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| HeaderError::Closed)?;
        if n == 0 {
            return Err(HeaderError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if !may_be_header(&buf) {
            return Err(HeaderError::Invalid);
        }
        let parsed = HeaderResult::parse(&buf);
        if parsed.is_incomplete() {
            // A v1 line that has ended is whole: `ppp` calls a line missing its port
            // "incomplete", but no later byte can complete it.
            if buf.len() >= MAX_HEADER || (buf.starts_with(b"PROXY ") && line_ended(&buf)) {
                return Err(HeaderError::Invalid);
            }
            continue;
        }
        let (len, client) = match parsed {
            HeaderResult::V1(Ok(h)) => (h.header.len(), v1_client(&h.addresses)),
            HeaderResult::V2(Ok(h)) => (h.len(), v2_client(&h)),
            HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => {
                return Err(HeaderError::Invalid);
            }
        };
        let rest = buf.get(len..).unwrap_or_default();
        stream.rewind(rest);
        return Ok(client);
    }
}

/// The v2 header's fixed signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, its CRLF included.
const V1_MAX: usize = 107;

/// Whether `buf` can still become a header: it begins as one of the two versions does, and
/// a v1 line ends within v1's length. So a balancer that sends HTTP straight away, or a
/// text line that never ends, is refused at once instead of at the deadline.
fn may_be_header(buf: &[u8]) -> bool {
    let starts = |sig: &[u8]| buf.iter().zip(sig).all(|(a, b)| a == b);
    if starts(V2_SIGNATURE) {
        return true;
    }
    if !starts(b"PROXY ") {
        return false;
    }
    let line_end = line_end(buf);
    line_end.map_or(buf.len() < V1_MAX, |end| end + 2 <= V1_MAX)
}

fn line_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn line_ended(buf: &[u8]) -> bool {
    line_end(buf).is_some()
}

fn v1_client(addresses: &v1::Addresses) -> Option<SocketAddr> {
    match addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Unknown => None,
    }
}

fn v2_client(header: &v2::Header<'_>) -> Option<SocketAddr> {
    if header.command == v2::Command::Local {
        return None;
    }
    match header.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::may_be_header;

    #[test]
    fn only_the_start_of_a_header_may_be_one() {
        assert!(may_be_header(b"PRO"));
        assert!(may_be_header(
            b"PROXY TCP4 127.0.0.2 127.0.0.1 1 2\r\nGET /"
        ));
        assert!(may_be_header(b"\r\n\r\n\0\r"));
        assert!(may_be_header(b"\r\n\r\n\0\r\nQUIT\n\x21\x11"));
        assert!(!may_be_header(b"POST /dukcapil"));
        assert!(!may_be_header(b"\x16\x03\x01"), "a TLS ClientHello");
        assert!(!may_be_header(
            &[b"PROXY ".as_slice(), &[b'1'; 120]].concat()
        ));
    }
}

//! The exchange with the DWH for lookups: one request over a pooled keep-alive connection,
//! the whole answer read into memory. Gerbang never streams a lookup's answer: it is
//! filtered and its record written before any byte of it leaves, so the answer is sent to
//! the client afterwards, with its length, in one write.
//!
//! A pooled connection the DWH closed while idle fails before any answer arrives; the
//! request is then sent again on another connection. A connection closed or reset after
//! the DWH read the request looks the same, so a lookup can reach the DWH twice; it is a
//! read, and its hit is counted once. Timeouts and failures on a new connection are not
//! retried: they are the caller's to answer.
//!
//! `upstream.timeout_ms` bounds the whole answer, from the request sent to its last byte,
//! not only each read: a DWH (or something on the way) trickling its answer a byte at a
//! time cannot hold a lookup longer.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::protocols::Stream;
use pingora::protocols::http::v1::client::{HttpSession, http_req_header_to_wire};
use pingora::upstreams::peer::{HttpPeer, Peer};
use tokio::io::AsyncWriteExt;

/// Connections tried for one request: stale pooled ones, then a fresh one.
const ATTEMPTS: usize = 3;

/// Idle DWH connections kept per proxy thread (pingora's default).
const POOL_PER_THREAD: usize = 128;

/// What the DWH answered.
pub(crate) struct DwhAnswer {
    pub(crate) status: u16,
    /// The body, empty when it was larger than the limit.
    pub(crate) body: BytesMut,
    pub(crate) too_large: bool,
}

/// The DWH's address, its connection pool and its timeouts.
pub(crate) struct Upstream {
    transport: TransportConnector,
    pub(crate) peer: HttpPeer,
    pub(crate) host: String,
}

/// A failed attempt, and whether it failed before the DWH could have read the request.
struct Failed {
    error: Box<Error>,
    unanswered: bool,
}

impl Upstream {
    /// The pool holds up to `POOL_PER_THREAD` idle connections per proxy thread, as
    /// pingora's own proxying does by default; its CA is the configured one.
    pub(crate) fn new(up: &gerbang_core::Upstream, threads: usize) -> Self {
        let mut peer = HttpPeer::new(up.address, up.tls, up.sni.clone());
        peer.options.connection_timeout = Some(up.connect_timeout);
        peer.options.total_connection_timeout = Some(up.connect_timeout);
        peer.options.read_timeout = Some(up.timeout);
        peer.options.write_timeout = Some(up.timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        let host = if up.sni.is_empty() {
            up.address.to_string()
        } else {
            up.sni.clone()
        };
        let mut options = ConnectorOptions::new(POOL_PER_THREAD * threads.max(1));
        options.ca_file = up.ca.as_ref().map(|p| p.display().to_string());
        Self {
            transport: TransportConnector::new(Some(options)),
            peer,
            host,
        }
    }

    /// Sends `req` with `body` and reads the whole answer, keeping at most `limit` bytes of
    /// it. The connection goes back to the pool when the answer was read to its end.
    pub(crate) async fn exchange(
        &self,
        req: &RequestHeader,
        body: &Bytes,
        limit: usize,
    ) -> Result<DwhAnswer> {
        // Header and body leave in one write (pingora's client session flushes the header
        // on its own first).
        let mut wire = http_req_header_to_wire(req)
            .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "request to the DWH"))?;
        wire.extend_from_slice(body);
        // Every failure here is the DWH's side (timeouts become "DWH Tidak Merespons").
        self.attempt(&wire, limit).await.map_err(Error::into_up)
    }

    async fn attempt(&self, wire: &[u8], limit: usize) -> Result<DwhAnswer> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let (mut stream, reused) = self.transport.get_stream(&self.peer).await?;
            if let Err(failed) = self.send(&mut stream, wire).await {
                if reused && failed.unanswered {
                    tracing::debug!(error = %failed.error, "pooled DWH connection was closed; sending again on another");
                    last = Some(failed.error);
                    continue;
                }
                return Err(failed.error);
            }
            let mut http = HttpSession::new_with_options(stream, &self.peer);
            http.read_timeout = self.peer.options.read_timeout;
            let received = match self.peer.options.read_timeout {
                Some(whole) => tokio::time::timeout(whole, Self::receive(&mut http, limit))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failed {
                            error: Error::explain(
                                ErrorType::ReadTimedout,
                                "the DWH's whole answer took longer than upstream.timeout_ms",
                            ),
                            unanswered: false,
                        })
                    }),
                None => Self::receive(&mut http, limit).await,
            };
            match received {
                Ok(answer) => {
                    if !answer.too_large {
                        self.release(http).await;
                    }
                    return Ok(answer);
                }
                Err(failed) if reused && failed.unanswered => {
                    tracing::debug!(error = %failed.error, "pooled DWH connection was closed; sending again on another");
                    last = Some(failed.error);
                }
                Err(failed) => return Err(failed.error),
            }
        }
        Err(last.unwrap_or_else(|| Error::explain(ErrorType::ConnectError, "no DWH connection")))
    }

    async fn send(&self, stream: &mut Stream, wire: &[u8]) -> std::result::Result<(), Failed> {
        let write = async {
            stream.write_all(wire).await?;
            stream.flush().await
        };
        let written = match self.peer.options.write_timeout {
            Some(t) => match tokio::time::timeout(t, write).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Failed {
                        error: Error::explain(ErrorType::WriteTimedout, "sending to the DWH"),
                        unanswered: false,
                    });
                }
            },
            None => write.await,
        };
        written.map_err(|e| Failed {
            error: Error::because(ErrorType::WriteError, "sending to the DWH", e),
            unanswered: true,
        })
    }

    /// Puts the connection back in the pool, if its answer was read whole and the DWH did
    /// not ask to close it.
    async fn release(&self, mut http: HttpSession) {
        http.respect_keepalive();
        if let Some(stream) = http.reuse().await {
            self.transport.release_stream(
                stream,
                self.peer.reuse_hash(),
                self.peer.options.idle_timeout,
            );
        }
    }

    async fn receive(
        http: &mut HttpSession,
        limit: usize,
    ) -> std::result::Result<DwhAnswer, Failed> {
        let unanswered = |error: Box<Error>| {
            // A closed or reset idle connection; not a timeout, which may mean a slow DWH.
            let closed = matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::WriteError | ErrorType::ReadError
            );
            Failed {
                error,
                unanswered: closed,
            }
        };
        let answered = |error: Box<Error>| Failed {
            error,
            unanswered: false,
        };
        // Informational answers (100 Continue) come before the real one.
        let status = loop {
            http.read_response().await.map_err(unanswered)?;
            match http.get_status() {
                Some(s) if s.is_informational() => continue,
                s => break s.map_or(0, |s| s.as_u16()),
            }
        };
        let mut answer = BytesMut::new();
        let mut too_large = false;
        while let Some(chunk) = http.read_body_ref().await.map_err(answered)? {
            if answer.len() + chunk.len() > limit {
                // Nothing more is read: the connection is dropped, not pooled.
                too_large = true;
                answer.clear();
                break;
            }
            answer.extend_from_slice(chunk);
        }
        Ok(DwhAnswer {
            status,
            body: answer,
            too_large,
        })
    }
}

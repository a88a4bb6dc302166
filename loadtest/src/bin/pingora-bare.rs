//! `pingora-bare`: the framework's floor for `make bench`. A pingora `ProxyHttp` that
//! forwards every request to one upstream with pingora's own keep-alive pool and does
//! nothing else: no checks, no log line, no body handling of its own. Same pingora version,
//! worker threads and stop settings as `gerbang serve`, so the gap between this and Gerbang
//! is Gerbang's work and the gap between this and nginx is the framework's.
//!
//! Usage: `pingora-bare --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--threads N]`.

mod common;

use std::net::SocketAddr;

use async_trait::async_trait;
use clap::Parser;
use common::Args;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = args.threads();
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(2),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Bare {
            upstream: args.upstream,
        },
    );
    proxy.add_tcp(&args.listen.to_string());
    server.add_service(proxy);
    eprintln!(
        "pingora-bare: forwarding {} to {}",
        args.listen, args.upstream
    );
    server.run_forever()
}

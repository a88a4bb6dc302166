//! What the two framework floors (`pingora-bare`, `hyper-bare`) share: their command line,
//! their worker count and their allocator, each the same as `gerbang serve`'s.

use std::net::SocketAddr;

use clap::Parser;

/// The same allocator as `gerbang`, so a floor differs from it only in Gerbang's work.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
pub struct Args {
    /// Where to listen (plaintext HTTP/1.1).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The upstream (dwh-sim).
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Worker threads; Gerbang's default is the number of cores.
    #[arg(long)]
    threads: Option<usize>,
}

impl Args {
    /// The worker threads: as given, else one per core, as Gerbang's default.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

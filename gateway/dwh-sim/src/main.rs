//! The `dwh-sim` binary: generates the population, binds, prints
//! `dwh-sim listening on http://ADDR` (tests read it to learn the port) and serves.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use gerbang_dwh_sim::{Population, ServerTls, SimState, serve};
use tracing::info;
use tracing_subscriber::EnvFilter;

/// A simulator of the DWH Terpusat web service over a synthetic population.
#[derive(Debug, Parser)]
#[command(name = "dwh-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9080")]
    listen: String,
    /// Number of synthetic people.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// Seed of the population: the same seed gives the same records.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Delay before answering each data request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// PEM certificate chain; serve HTTPS (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(ServerTls::from_pem_files(cert, key).context("loading TLS certificate")?)
        }
        _ => None,
    };
    let listener = listen(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;

    let started = Instant::now();
    let population = Population::generate(args.seed, args.people);
    let generated_in = started.elapsed();
    let state = Arc::new(SimState::new(population));
    state.set_delay(Duration::from_millis(args.delay_ms));

    // Printed once the population is ready, so a reader may send requests at once.
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "dwh-sim listening on {scheme}://{addr}").context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);
    info!(
        people = args.people,
        seed = args.seed,
        duration_ms = generated_in.as_millis() as u64,
        "population generated in {:.3} s",
        generated_in.as_secs_f64()
    );

    serve(listener, state, tls).await;
    Ok(())
}

/// Binds `address` with a listen queue of 1,024 connections (as hyper's and tokio's servers
/// usually get, and a DWH's front server would have): with std's 128 a burst of new
/// connections from a gateway filling its pool overflowed the queue, the kernel dropped the
/// SYNs, and lookups failed at the gateway's 1 s connect timeout (the bench's warm-up).
fn listen(address: &str) -> std::io::Result<tokio::net::TcpListener> {
    use std::net::ToSocketAddrs as _;
    let addr = address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_QUEUE)
}

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`).
const LISTEN_QUEUE: u32 = 1024;

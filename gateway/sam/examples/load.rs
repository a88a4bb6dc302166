//! Bounded load on the SAM sidecar over loopback, as the gateway calls it.
//!
//! Writes a synthetic PKS with `--sams` readers into a temporary directory, starts the
//! sidecar (the same `Sidecar` the binary runs, on its own runtime and threads), and has
//! `--concurrency` clients, each one pooled keep-alive `SamClient` exactly as the gateway
//! holds it, send freshly signed validations for `--seconds` (closed loop, or paced to
//! `--rate` requests per second in total). Signing happens in the clients before each
//! timer starts, so the latency is the gateway-side cost of one validation: the HTTP round
//! trip plus the sidecar's work. Every answer must be `valid`.
//!
//! Then, for scale on a shared machine, the same clients with the same pacing time a bare
//! TCP echo of a request-sized message over loopback: the floor any local sidecar call
//! stands on.
//!
//! ```text
//! cargo run --release -p gerbang-sam --example load -- --seconds 10
//! cargo run --release -p gerbang-sam --example load -- --seconds 10 --rate 2000
//! ```
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use gerbang_core::{SidecarAddress, SystemClock};
use gerbang_sam::{
    Biometric, ReaderKey, SamClient, Settings, Sidecar, SignInput, ValidateRequest,
    body_sha256_hex, new_nonce, sign,
};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Debug, Parser)]
struct Args {
    /// Measured duration (after a one-second warm-up), at most 25 s.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients, each with its own keep-alive connection pool.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Total requests per second (0: as fast as the clients go).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Registered readers the requests are spread over.
    #[arg(long, default_value_t = 200)]
    sams: usize,
    /// Sidecar worker threads.
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZRqpb8Z+dLwDBTqW3nkCw0ZqXYjz6Rqi4AbH5l3eXM";
const PATH: &str = "/dukcapil/get_json/BEBAN/CALL_NIK";
const BODY: &[u8] = br#"{"nik":"3201010101900001","user_id":"beban_01","password":"x"}"#;

fn pks_file(keys: &[ReaderKey]) -> String {
    let mut s = format!(
        "nomor = \"1/BEBAN\"\npengguna = \"beban\"\nnama_pengguna = \"Lembaga Uji Beban\"\njenis_pengguna = \"opd\"\ntingkat = \"pusat\"\ntujuan = \"uji beban\"\nelemen_data = [\"NIK\"]\nmetode_akses = [\"card_reader\"]\nkunci_akses = [\"NIK\"]\nmulai = 2025-01-01\nsampai = 2099-12-31\nstatus = \"aktif\"\n\n[[user]]\nid = \"beban_01\"\npassword_hash = \"{HASH}\"\nip_lan = [\"127.0.0.2\"]\nkuota_harian = 1000\nstatus = \"aktif\"\n"
    );
    for key in keys {
        s.push('\n');
        s += &key.pks_block("aktif");
    }
    s
}

fn request(key: &ReaderKey, body_sha256: &str) -> ValidateRequest {
    let nonce = new_nonce().unwrap();
    let sam = sign(
        &key.signing,
        &SignInput {
            sam_id: &key.sam_id,
            method: "POST",
            path: PATH,
            body: BODY,
            user_id: "beban_01",
            biometric: Biometric::Match,
            timestamp: chrono::Utc::now().timestamp(),
            nonce: &nonce,
        },
    );
    ValidateRequest {
        method: "POST".into(),
        path: PATH.into(),
        body_sha256: body_sha256.to_string(),
        claimed_body_sha256: None,
        user_id: "beban_01".into(),
        data_lookup: true,
        sam,
    }
}

/// One client's requests: prepared (signed) outside the timer, then sent.
trait Worker: Send + 'static {
    type Prepared: Send;
    fn prepare(&mut self, n: usize) -> Self::Prepared;
    /// `Ok(())`: the expected answer; `Err`: what was wrong.
    fn call(&mut self, p: Self::Prepared) -> impl Future<Output = Result<(), String>> + Send;
}

/// A pooled `SamClient`, as the gateway holds it.
struct Validations {
    client: SamClient,
    keys: Arc<Vec<ReaderKey>>,
    body_sha256: String,
}

impl Worker for Validations {
    type Prepared = ValidateRequest;
    fn prepare(&mut self, n: usize) -> ValidateRequest {
        request(&self.keys[n % self.keys.len()], &self.body_sha256)
    }
    async fn call(&mut self, req: ValidateRequest) -> Result<(), String> {
        match self.client.validate(&req).await {
            Ok(v) if v.is_valid() => Ok(()),
            Ok(v) => Err(format!("refused: {} {}", v.code(), v.detail)),
            Err(e) => Err(format!("error: {e}")),
        }
    }
}

/// A bare TCP echo of a message the size of a validation request.
struct Echo(tokio::net::TcpStream, Vec<u8>);

impl Worker for Echo {
    type Prepared = ();
    fn prepare(&mut self, _n: usize) {}
    async fn call(&mut self, (): ()) -> Result<(), String> {
        self.0
            .write_all(&[b'x'; 600])
            .await
            .map_err(|e| e.to_string())?;
        let mut got = 0;
        while got < 600 {
            got += match self.0.read(&mut self.1).await {
                Ok(0) => return Err("echo closed".into()),
                Ok(n) => n,
                Err(e) => return Err(e.to_string()),
            };
        }
        Ok(())
    }
}

/// What one timed run gave.
struct Run {
    histogram: Histogram<u64>,
    ok: u64,
    failed: u64,
}

/// Runs one worker per client for a one-second warm-up and `args.seconds`, closed loop or
/// paced, timing each call from after its preparation to its answer.
async fn drive<W: Worker>(args: &Args, workers: Vec<W>) -> Run {
    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + Duration::from_secs(args.seconds);
    let interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64));
    let stride = workers.len();
    let mut tasks = Vec::new();
    for (c, mut worker) in workers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
            let (mut ok, mut failed) = (0, 0);
            let mut tick = interval.map(|d| {
                let mut i = tokio::time::interval(d);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            let mut n = c;
            loop {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                if Instant::now() >= end {
                    break;
                }
                let prepared = worker.prepare(n);
                n += stride;
                let sent = Instant::now();
                let answer = worker.call(prepared).await;
                let took = sent.elapsed();
                match answer {
                    Ok(()) if sent >= warm_until => {
                        ok += 1;
                        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                        hist.saturating_record(us.max(1));
                    }
                    Ok(()) => {}
                    Err(why) => {
                        failed += 1;
                        eprintln!("{why}");
                    }
                }
            }
            (hist, ok, failed)
        }));
    }
    let mut run = Run {
        histogram: Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap(),
        ok: 0,
        failed: 0,
    };
    for t in tasks {
        let (hist, ok, failed) = t.await.unwrap();
        run.histogram.add(hist).unwrap();
        run.ok += ok;
        run.failed += failed;
    }
    run
}

fn percentiles(h: &Histogram<u64>) -> String {
    format!(
        "p50 {} · p90 {} · p99 {} · p99.9 {} · max {}",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    )
}

async fn echo_server(listener: tokio::net::TcpListener) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !(1..=25).contains(&args.seconds) {
        bail!("--seconds must be 1 to 25 (signed timestamps stay fresh for 30 s)");
    }
    if args.concurrency == 0 || args.sams == 0 || args.server_threads == 0 {
        bail!("--concurrency, --sams and --server-threads must be at least 1");
    }
    let keys: Vec<ReaderKey> = (0..args.sams)
        .map(|i| ReaderKey::generate(&format!("SAM-BEBAN-{i:05}")))
        .collect::<Result<_, _>>()?;
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("pks"))?;
    std::fs::write(dir.path().join("pks/beban.toml"), pks_file(&keys))?;
    let mut settings = Settings::new(dir.path().join("pks"));
    settings.listen = "127.0.0.1:0".parse()?;

    // The sidecar (and later the echo) on its own threads, as its own process would be.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("sidecar")
        .enable_all()
        .build()?;
    let sidecar = server_rt
        .block_on(Sidecar::bind(&settings, Arc::new(SystemClock)))
        .context("starting the sidecar")?;
    let addr = sidecar.local_addr()?;
    let state = sidecar.state();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    server_rt.spawn(sidecar.serve(async move {
        let _ = stop_rx.await;
    }));
    let echo = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let echo_addr: SocketAddr = echo.local_addr()?;
    server_rt.spawn(echo_server(echo));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("clients")
        .enable_all()
        .build()?;
    let keys = Arc::new(keys);
    let started_second = chrono::Utc::now().timestamp();
    let (validations, baseline) = client_rt.block_on(async {
        // Timestamps of the sidecar's start second are refused by design.
        while chrono::Utc::now().timestamp() <= started_second {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let workers = (0..args.concurrency)
            .map(|_| Validations {
                client: SamClient::new(&SidecarAddress::Tcp(addr), Duration::from_millis(1_000)),
                keys: Arc::clone(&keys),
                body_sha256: body_sha256_hex(BODY),
            })
            .collect();
        let validations = drive(&args, workers).await;
        let mut echoes = Vec::new();
        for _ in 0..args.concurrency {
            let stream = tokio::net::TcpStream::connect(echo_addr).await?;
            stream.set_nodelay(true)?;
            echoes.push(Echo(stream, vec![0u8; 4096]));
        }
        let baseline = drive(&args, echoes).await;
        anyhow::Ok((validations, baseline))
    })?;
    let metrics = state.metrics().render(
        state.validator().registry().sam_count(),
        state.validator().nonces(),
    )?;
    let _ = stop_tx.send(());
    drop(client_rt);
    drop(server_rt);

    let mode = if args.rate > 0 {
        format!("paced to {} req/s", args.rate)
    } else {
        "closed loop".to_string()
    };
    println!(
        "gerbang-sam load: {} keep-alive clients, {mode}, {} s measured after 1 s warm-up, {} SAMs, sidecar on {addr} with {} thread(s)",
        args.concurrency, args.seconds, args.sams, args.server_threads
    );
    println!(
        "answers: {} valid, {} refused or failed; throughput {:.0} validations/s",
        validations.ok,
        validations.failed,
        validations.ok as f64 / args.seconds as f64
    );
    println!(
        "round trip through SamClient (the gateway's added latency), µs: {}",
        percentiles(&validations.histogram)
    );
    println!(
        "bare loopback TCP echo, same clients and pacing, µs:          {} ({:.0}/s)",
        percentiles(&baseline.histogram),
        baseline.ok as f64 / args.seconds as f64
    );
    let sidecar_value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let count = sidecar_value("gerbang_sam_validation_duration_seconds_count");
    let sum = sidecar_value("gerbang_sam_validation_duration_seconds_sum");
    let within_half_ms =
        sidecar_value("gerbang_sam_validation_duration_seconds_bucket{le=\"0.0005\"}");
    println!(
        "inside the sidecar (its own histogram, warm-up included): {count:.0} validations, mean {:.1} µs, {:.2}% within 0.5 ms",
        if count > 0.0 { sum / count * 1e6 } else { 0.0 },
        if count > 0.0 {
            within_half_ms / count * 100.0
        } else {
            0.0
        }
    );
    if validations.failed + baseline.failed > 0 {
        bail!(
            "{} validations and {} echoes failed: the figures above are not valid",
            validations.failed,
            baseline.failed
        );
    }
    Ok(())
}

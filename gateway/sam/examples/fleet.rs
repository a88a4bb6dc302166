//! The card-reader fleet at national size: the real `gerbang-sam` binary over a synthetic
//! registry of `--sams` readers (59,194, the national count) spread over `--pks` agreements
//! (4,644), measured as an operator would see it.
//!
//! 1. Writes the PKS files into a temporary directory: agreement `n` is Pengguna `fleet-n`
//!    with one User ID and its share of the readers, each a freshly generated Ed25519 key
//!    (synthetic: no real institution, User ID or key).
//! 2. Starts `gerbang-sam` on them and times the start until it prints where it listens
//!    (the files read, checked and indexed); reads its resident memory from `/proc`.
//! 3. Reloads it `--reloads` times with SIGHUP and reads each reload's duration from its log
//!    (`reloaded the PKS files … duration_ms=`), and the memory again (the peak includes the
//!    moment the old and the new registry are both held).
//! 4. Sends `--rate` validations a second from `--concurrency` pooled `SamClient`s (as the
//!    gateway holds them) for `--seconds`, each by a reader picked at random from the whole
//!    fleet, signed before its timer starts; then the same again with a SIGHUP reload every
//!    second. Every answer must be `valid`.
//!
//! ```text
//! make sam-fleet        # cargo build --release -p gerbang-sam --bin gerbang-sam --example fleet,
//!                       # then target/release/examples/fleet
//! ```
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use gerbang_core::SidecarAddress;
use gerbang_sam::{
    Biometric, ReaderKey, SamClient, SignInput, ValidateRequest, body_sha256_hex, new_nonce, sign,
};
use hdrhistogram::Histogram;
use rand::Rng as _;

#[derive(Debug, Parser)]
struct Args {
    /// Readers (SAMs) registered: the national count by default.
    #[arg(long, default_value_t = 59_194)]
    sams: usize,
    /// Agreements (PKS files) they are spread over.
    #[arg(long, default_value_t = 4_644)]
    pks: usize,
    /// Reloads (SIGHUP) timed one after the other.
    #[arg(long, default_value_t = 3)]
    reloads: usize,
    /// Measured seconds of each load run, at most 25 (signed timestamps stay fresh for 30 s).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Validations per second in total.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Concurrent clients, each with its own keep-alive pool.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The sidecar binary (default: `gerbang-sam` beside this example's directory).
    #[arg(long)]
    sidecar: Option<PathBuf>,
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZRqpb8Z+dLwDBTqW3nkCw0ZqXYjz6Rqi4AbH5l3eXM";
const PATH: &str = "/dukcapil/get_json/ARMADA/CALL_NIK";
const BODY: &[u8] = br#"{"nik":"3201010101900001","user_id":"armada_0000","password":"x"}"#;

/// One reader: its key and the User ID of its agreement.
struct Reader {
    key: ReaderKey,
    user: String,
}

/// Writes the agreements; returns the readers.
fn write_fleet(dir: &Path, sams: usize, pks: usize) -> Result<Vec<Reader>> {
    let mut readers = Vec::with_capacity(sams);
    for p in 0..pks {
        let user = format!("armada_{p:04}");
        // 10.(p / 250).(p % 250).1: one LAN per agreement, as the gateway wants them apart.
        let ip = format!("10.{}.{}.1", p / 250, p % 250);
        let mut text = format!(
            "nomor = \"{p}/ARMADA/UJI\"\npengguna = \"armada-{p:04}\"\nnama_pengguna = \"Lembaga Uji Armada {p}\"\njenis_pengguna = \"opd\"\ntingkat = \"kabupaten_kota\"\ntujuan = \"uji kapasitas card reader\"\nelemen_data = [\"NIK\"]\nmetode_akses = [\"card_reader\"]\nkunci_akses = [\"NIK\"]\nmulai = 2025-01-01\nsampai = 2099-12-31\nstatus = \"aktif\"\n\n[[user]]\nid = \"{user}\"\npassword_hash = \"{HASH}\"\nip_lan = [\"{ip}\"]\nkuota_harian = 1000\nstatus = \"aktif\"\n"
        );
        // Reader i belongs to agreement i % pks: the counts differ by at most one.
        for i in (p..sams).step_by(pks) {
            let key = ReaderKey::generate(&format!("SAM-ARMADA-{i:05}"))?;
            text.push('\n');
            text += &key.pks_block("aktif");
            readers.push(Reader {
                key,
                user: user.clone(),
            });
        }
        std::fs::write(dir.join(format!("armada-{p:04}.toml")), text)?;
    }
    Ok(readers)
}

fn request(reader: &Reader, body_sha256: &str) -> ValidateRequest {
    let nonce = new_nonce().unwrap();
    let sam = sign(
        &reader.key.signing,
        &SignInput {
            sam_id: &reader.key.sam_id,
            method: "POST",
            path: PATH,
            body: BODY,
            user_id: &reader.user,
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
        user_id: reader.user.clone(),
        data_lookup: true,
        sam,
    }
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB.
fn memory(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The running sidecar: killed on drop.
struct Sidecar {
    child: Child,
    log: PathBuf,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sidecar {
    fn hup(&self) -> Result<()> {
        let ok = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()?
            .success();
        if !ok {
            bail!("kill -HUP failed");
        }
        Ok(())
    }

    /// The `duration_ms` of every reload logged so far.
    fn reloads(&self) -> Result<Vec<u64>> {
        let log = std::fs::read_to_string(&self.log)?;
        Ok(log
            .lines()
            .filter(|l| l.contains("reloaded the PKS files"))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("duration_ms="))
                    .and_then(|v| v.parse().ok())
            })
            .collect())
    }

    /// Waits (polling, at most 120 s) until `n` reloads are logged.
    fn wait_reloads(&self, n: usize) -> Result<Vec<u64>> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let done = self.reloads()?;
            if done.len() >= n {
                return Ok(done);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} of {n} reloads logged:\n{}",
                    done.len(),
                    std::fs::read_to_string(&self.log)?
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start(binary: &Path, pks: &Path, log: PathBuf) -> Result<(Sidecar, SocketAddr, Duration)> {
    let started = Instant::now();
    let child = Command::new(binary)
        .arg("--pks-dir")
        .arg(pks)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut sidecar = Sidecar { child, log };
    let stdout = sidecar.child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let took = started.elapsed();
    let addr = line
        .trim()
        .strip_prefix("gerbang-sam listening on http://")
        .and_then(|a| a.parse().ok())
        .with_context(|| {
            format!(
                "the sidecar did not start: {line:?}\n{}",
                std::fs::read_to_string(&sidecar.log).unwrap_or_default()
            )
        })?;
    Ok((sidecar, addr, took))
}

/// What one load run gave.
struct Run {
    histogram: Histogram<u64>,
    ok: u64,
    failed: u64,
}

/// `concurrency` clients paced to `rate` in total for one warm-up second and `seconds`,
/// each request by a reader picked at random.
async fn drive(
    addr: SocketAddr,
    readers: &Arc<Vec<Reader>>,
    args: &Args,
    during: impl FnOnce() + Send + 'static,
) -> Run {
    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + Duration::from_secs(args.seconds);
    let interval = Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64);
    let body_sha256 = body_sha256_hex(BODY);
    let background = std::thread::spawn(during);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let readers = Arc::clone(readers);
        let body_sha256 = body_sha256.clone();
        let client = SamClient::new(&SidecarAddress::Tcp(addr), Duration::from_secs(1));
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
            let (mut ok, mut failed) = (0, 0);
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if Instant::now() >= end {
                    break;
                }
                let i = rand::rng().random_range(0..readers.len());
                let req = request(&readers[i], &body_sha256);
                let sent = Instant::now();
                let answer = client.validate(&req).await;
                let took = sent.elapsed();
                match answer {
                    Ok(v) if v.is_valid() => {
                        if sent >= warm_until {
                            ok += 1;
                            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                            hist.saturating_record(us.max(1));
                        }
                    }
                    Ok(v) => {
                        failed += 1;
                        eprintln!("refused: {} {}", v.code(), v.detail);
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e}");
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
    let _ = background.join();
    run
}

fn report(what: &str, run: &Run, seconds: u64) {
    let h = &run.histogram;
    println!(
        "{what}: {} valid, {} refused or failed, {:.0}/s; round trip µs p50 {} · p90 {} · p99 {} · p99.9 {} · max {}",
        run.ok,
        run.failed,
        run.ok as f64 / seconds as f64,
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !(1..=25).contains(&args.seconds) {
        bail!("--seconds must be 1 to 25 (signed timestamps stay fresh for 30 s)");
    }
    if args.sams == 0 || args.pks == 0 || args.pks > 62_500 || args.rate == 0 {
        bail!("--sams, --pks (at most 62500) and --rate must be at least 1");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let binary = match &args.sidecar {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("no directory above this example")?
            .join("gerbang-sam"),
    };
    let dir = tempfile::tempdir()?;
    let pks = dir.path().join("pks");
    std::fs::create_dir(&pks)?;
    let generated = Instant::now();
    let readers = Arc::new(write_fleet(&pks, args.sams, args.pks)?);
    let bytes: u64 = std::fs::read_dir(&pks)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "fleet: {} SAMs in {} PKS files ({:.1} MiB), generated in {:.1} s; sidecar {}",
        readers.len(),
        args.pks,
        bytes as f64 / 1_048_576.0,
        generated.elapsed().as_secs_f64(),
        binary.display()
    );

    let (sidecar, addr, took) = start(&binary, &pks, dir.path().join("sidecar.log"))?;
    let pid = sidecar.child.id();
    let (rss, peak) = memory(pid)?;
    println!(
        "start: listening after {} ms (the files read, checked and indexed); RSS {rss:.1} MiB, peak {peak:.1} MiB",
        took.as_millis()
    );

    let mut durations = Vec::new();
    for n in 1..=args.reloads {
        sidecar.hup()?;
        durations = sidecar.wait_reloads(n)?;
    }
    let (rss, peak) = memory(pid)?;
    println!(
        "reload (SIGHUP, one after the other): {:?} ms; RSS {rss:.1} MiB, peak {peak:.1} MiB",
        durations
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("clients")
        .enable_all()
        .build()?;
    // Timestamps of the sidecar's start second are refused by design; it started earlier.
    let steady = rt.block_on(drive(addr, &readers, &args, || {}));
    report(
        &format!(
            "load, {} req/s from {} clients, {} s",
            args.rate, args.concurrency, args.seconds
        ),
        &steady,
        args.seconds,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let before = sidecar.reloads()?.len();
    let (stop_hups, sent_hups) = (Arc::clone(&stop), Arc::clone(&sent));
    let pid_hup = pid;
    let reloading = rt.block_on(drive(addr, &readers, &args, move || {
        while !stop_hups.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            if stop_hups.load(Ordering::Relaxed) {
                break;
            }
            let sent = Command::new("kill")
                .arg("-HUP")
                .arg(pid_hup.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if sent {
                sent_hups.fetch_add(1, Ordering::Relaxed);
            }
        }
    }));
    stop.store(true, Ordering::Relaxed);
    let hups = usize::try_from(sent.load(Ordering::Relaxed)).unwrap_or(0);
    let during = sidecar.wait_reloads(before + hups)?;
    report(
        &format!(
            "load with a SIGHUP reload every second ({hups} reloads, {:?} ms)",
            &during[before..]
        ),
        &reloading,
        args.seconds,
    );
    let (rss, peak) = memory(pid)?;
    println!("after the load: RSS {rss:.1} MiB, peak {peak:.1} MiB");
    if steady.failed + reloading.failed > 0 {
        bail!(
            "{} validations failed: the figures above are not valid",
            steady.failed + reloading.failed
        );
    }
    Ok(())
}

//! `loadgen run`: C keep-alive connections, each bound to its user's source address,
//! either closed loop (each connection sends its next request as soon as the previous
//! answer is in) or open loop at a constant total rate, with latency measured from the
//! *scheduled* send time so a stalled target cannot hide its queueing (no coordinated
//! omission). Prints one JSON line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;
use tokio::sync::Barrier;
use tokio::time::Instant as TokioInstant;

use crate::client::{self, Sender, Target, Tls};
use crate::mix::{self, Kind, Mix, Rng, User};
use crate::stats::{Counts, Latency};

/// Settings of one load run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Name of the target in the output (e.g. direct, nginx, gerbang, gerbang-tls).
    #[arg(long)]
    pub name: String,
    /// Address to send to (must be on 127.0.0.0/8).
    #[arg(long)]
    pub target: SocketAddr,
    /// Speak TLS, trusting this CA (PEM).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Server name to verify with TLS.
    #[arg(long, default_value = "localhost")]
    pub sni: String,
    /// users.tsv: user_id, password, source address (as `loadgen gen-config` writes it).
    #[arg(long)]
    pub users: PathBuf,
    /// NIKs to look up, one per line.
    #[arg(long)]
    pub niks: PathBuf,
    /// Connections; connection i sends as user i mod (number of users).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unmeasured load before measuring (after every connection's first answer).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Open loop: total requests per second, spread evenly over the connections.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Worker threads of the generator.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Percentages of CALL_NIK, CALL_VERIFY_BY_ELEMEN and refused (invalid NIK) requests.
    #[arg(long, default_value_t = Mix::default())]
    pub mix: Mix,
    /// Path prefix before the service name.
    #[arg(long, default_value = "/dukcapil/get_json/BENCH")]
    pub prefix: String,
    /// Seed of the request choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds one request may take before it counts as a timeout.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
}

/// The result of a run, as printed.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub json: serde_json::Value,
}

struct Shared {
    args: RunArgs,
    target: Target,
    users: Vec<User>,
    niks: Vec<String>,
    barrier: Barrier,
    start: OnceLock<Instant>,
    paths: [String; 3],
}

/// Runs the load and returns its JSON summary.
pub fn run(args: RunArgs) -> anyhow::Result<RunResult> {
    if !args.target.ip().is_loopback() {
        bail!("traffic goes to 127.0.0.0/8 only; {} is not", args.target);
    }
    if args.connections == 0 || args.duration <= 0.0 || args.threads == 0 {
        bail!("connections, duration and threads must be positive");
    }
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate.is_finite())
    {
        bail!("--rate must be a positive number");
    }
    let users = mix::read_users(&args.users)?;
    let niks = mix::read_niks(&args.niks)?;
    let tls = match &args.tls_ca {
        Some(ca) => Some(Tls::new(ca, &args.sni)?),
        None => None,
    };
    let target = Target::new(args.target, tls);
    let paths = Kind::ALL.map(|k| format!("{}/{}", args.prefix, k.service()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let shared = Arc::new(Shared {
        barrier: Barrier::new(args.connections),
        start: OnceLock::new(),
        args,
        target,
        users,
        niks,
        paths,
    });
    let counts = runtime.block_on(drive(Arc::clone(&shared)))?;
    // Connection tasks still finishing their last request are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(summarize(&shared.args, &counts))
}

/// Longest the first request of every connection (argon2 on a cold Gerbang) may take.
const WARM_LIMIT: Duration = Duration::from_secs(120);

async fn drive(shared: Arc<Shared>) -> anyhow::Result<Counts> {
    let a = &shared.args;
    let limit = WARM_LIMIT
        + Duration::from_secs_f64(a.warmup + a.duration + 2.0 * a.timeout)
        + Duration::from_secs(5);
    let tasks: Vec<_> = (0..a.connections)
        .map(|i| tokio::spawn(connection(Arc::clone(&shared), i)))
        .collect();
    let mut total = Counts::default();
    let deadline = TokioInstant::now() + limit;
    for t in tasks {
        match tokio::time::timeout_at(deadline, t).await {
            Ok(Ok(c)) => total.merge(&c),
            Ok(Err(e)) => bail!("a connection task failed: {e}"),
            Err(_) => bail!("the run did not finish within {limit:?}"),
        }
    }
    Ok(total)
}

/// One connection's whole life: a first (unmeasured) request, the barrier, then load.
async fn connection(shared: Arc<Shared>, index: usize) -> Counts {
    let a = &shared.args;
    let user = &shared.users[index % shared.users.len()];
    let mut rng = Rng::new(a.seed.wrapping_mul(0x1000_0001).wrapping_add(index as u64));
    let mut counts = Counts::default();
    let req_timeout = Duration::from_secs_f64(a.timeout);

    // Warm: one valid request, so a cold credential cache pays argon2 outside the measure.
    let mut sender: Option<Sender> = None;
    let warm = async {
        let mut s = client::connect(&shared.target, user.source).await?;
        let nik = &shared.niks[rng.below(shared.niks.len())];
        let req = client::post(
            &shared.target,
            &shared.paths[Kind::CallNik.index()],
            mix::body(Kind::CallNik, nik, user),
        )?;
        client::send(&mut s, req).await?;
        anyhow::Ok(s)
    };
    if let Ok(Ok(s)) = tokio::time::timeout(WARM_LIMIT, warm).await {
        sender = Some(s);
    }
    shared.barrier.wait().await;
    let start = *shared.start.get_or_init(Instant::now);
    let measure_from = start + Duration::from_secs_f64(a.warmup);
    let end = measure_from + Duration::from_secs_f64(a.duration);
    // Nothing is sent after this, whatever the schedule says.
    let hard_end = end + req_timeout;

    let interval = a
        .rate
        .map(|r| Duration::from_secs_f64(a.connections as f64 / r));
    // Open loop: connection i's first send is offset by i/C of an interval.
    let mut next = interval.map(|iv| start + iv.mul_f64(index as f64 / a.connections as f64));

    loop {
        let now = Instant::now();
        let scheduled = match (interval, next) {
            (Some(iv), Some(at)) => {
                if at >= end {
                    break;
                }
                if now >= hard_end {
                    // Behind schedule at the hard stop: count what was never sent.
                    let left = (end - at).as_secs_f64() / iv.as_secs_f64();
                    counts.unsent += left.ceil() as u64;
                    break;
                }
                if at > now {
                    tokio::time::sleep_until(TokioInstant::from_std(at)).await;
                }
                next = Some(at + iv);
                at
            }
            _ => {
                if now >= end {
                    break;
                }
                now
            }
        };
        let measured = scheduled >= measure_from;

        // A connection the target closed is replaced without counting an error: no
        // request was lost on it.
        let until = TokioInstant::from_std(hard_end.min(Instant::now() + req_timeout));
        let Some(mut s) = ready_sender(&mut sender, &shared.target, user, until, &mut counts).await
        else {
            if measured {
                counts.transport_errors += 1;
            }
            // Back off briefly (bounded by the run's end) instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let kind = a.mix.pick(rng.next_u64());
        let nik = &shared.niks[rng.below(shared.niks.len())];
        let Ok(req) = client::post(
            &shared.target,
            &shared.paths[kind.index()],
            mix::body(kind, nik, user),
        ) else {
            counts.transport_errors += 1;
            continue;
        };
        let sent = Instant::now();
        let result = tokio::time::timeout(req_timeout, client::send(&mut s, req)).await;
        let done = Instant::now();
        // Closed loop: from the actual send. Open loop: from the scheduled send.
        let from = if interval.is_some() { scheduled } else { sent };
        // Closed loop counts only what completes inside the window; open loop counts every
        // scheduled request of the window, however late its answer.
        let counted = measured && (interval.is_some() || done <= end);
        match result {
            Ok(Ok((status, body))) => {
                sender = Some(s);
                if counted {
                    counts.record_latency(done.duration_since(from).as_micros() as u64);
                    if status.is_success() {
                        counts.ok += 1;
                    } else {
                        counts.http_errors += 1;
                    }
                    counts.record_answer(kind, &body);
                }
            }
            Ok(Err(_)) => {
                if counted {
                    counts.transport_errors += 1;
                }
            }
            Err(_) => {
                if counted {
                    counts.timeouts += 1;
                }
            }
        }
    }
    counts
}

/// The connection's sender if it is still usable, else a new connection (None if that
/// fails or takes past `until`).
async fn ready_sender(
    sender: &mut Option<Sender>,
    target: &Target,
    user: &User,
    until: TokioInstant,
    counts: &mut Counts,
) -> Option<Sender> {
    if let Some(mut s) = sender.take() {
        if s.ready().await.is_ok() {
            return Some(s);
        }
        // The target closed the connection after its last answer.
        counts.reconnects += 1;
    }
    match tokio::time::timeout_at(until, client::connect(target, user.source)).await {
        Ok(Ok(s)) => Some(s),
        _ => None,
    }
}

fn summarize(a: &RunArgs, c: &Counts) -> RunResult {
    let requests = c.ok + c.http_errors;
    let lat = Latency::of(&c.hist);
    let json = json!({
        "target": a.name,
        "mode": if a.rate.is_some() { "open" } else { "closed" },
        "connections": a.connections,
        "duration_s": a.duration,
        "rate_rps": a.rate,
        "requests": requests,
        "errors": c.errors(),
        "throughput_rps": (requests as f64 / a.duration * 10.0).round() / 10.0,
        "p50_us": lat.p50_us,
        "p99_us": lat.p99_us,
        "p999_us": lat.p999_us,
        "max_us": lat.max_us,
        "mean_us": lat.mean_us,
        "error_detail": {
            "http": c.http_errors,
            "transport": c.transport_errors,
            "timeout": c.timeouts,
            "unsent": c.unsent,
        },
        "reconnects": c.reconnects,
        "codes": c.codes_json(),
        "mix": a.mix.to_string(),
        "threads": a.threads,
    });
    RunResult { json }
}

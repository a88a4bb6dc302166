//! A flood from an address in no registered IP LAN, through the real binaries: 100,000
//! keep-alive requests whose `user_id` is 16 KB. Before, each wrote a decision-log record and
//! a log line of that size (5,000 of them wrote 153.6 MB), so any host on the closed network
//! could fill the disk and, with `audit.refuse_on_failure`, withhold every Pengguna's
//! answers. Now the log and the gateway's memory stay within a stated bound, every request is
//! counted, and a registered User ID's lookups keep being answered. The figures measured are
//! printed (run with `--nocapture`) and recorded in loadtest/RESULTS.md.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gerbang_e2e::*;

/// Requests sent from the unregistered address.
const FLOOD: u64 = 100_000;
/// Keep-alive connections they are sent over.
const CONNECTIONS: u64 = 8;
/// Size of the `user_id` of each.
const USER_ID_BYTES: usize = 16_000;
/// The unregistered address.
const STRANGER: &str = "127.0.0.99";
/// Longest the flood may take on a loaded 2-core machine before the test gives up.
const FLOOD_DEADLINE: Duration = Duration::from_secs(600);

/// What the decision log and the gateway's stderr may grow by while the flood runs, beside
/// a record and a line of under 1 KiB per lookup of the registered User ID: room for a
/// record and a line per address and minute, nothing per request of the flood.
const SLACK_BYTES: u64 = 64 * 1024;
/// Room per lookup of the registered User ID (its record or its line is about 600 bytes).
const PER_LOOKUP_BYTES: u64 = 1024;
/// How far the gateway's peak resident memory may rise above its size before the flood.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// Bytes of the regular files in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The newest stderr file of the gateway in `dir` (a restart starts a new one).
fn stderr_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".stderr"))
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .unwrap()
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// The sum of a counter's series in a Prometheus exposition.
fn counter_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_an_unregistered_address_stays_bounded_and_lookups_still_answer() {
    let sim = Sim::start(1_000);
    let mut gw = Gateway::start(GatewayOptions::new(
        sim.addr,
        vec![TestPks::new(
            "rsud.toml",
            "1/RSUD/FLOOD",
            vec![TestUser::aktif("rsud_01", "127.0.0.2")],
        )],
    ));
    // Bodies as large as a deployment may allow them (the harness's 4 KiB would refuse the
    // flood before its body is read).
    let config = gw.dir.path().join("gerbang.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("max_body_bytes = 4096", "max_body_bytes = 32768"),
    )
    .unwrap();
    gw.restart();

    let nik = sim.sample("alive", 1).await.remove(0);
    let lookup = gw.client("127.0.0.2");
    let url = gw.url("CALL_NIK");
    // The first lookup pays argon2; the flood then measures the steady state.
    let (_, answer) = post(&lookup, &url, call_nik(&nik, "rsud_01", PASSWORD)).await;
    assert_eq!(respon(&answer), None, "{answer}");

    let pid = gw.proc.child.id();
    let audit = gw.dir.path().join("audit");
    let stderr = stderr_file(gw.dir.path());
    let rss_before = status_kib(pid, "VmRSS");
    // Reset the process's peak resident size (VmHWM), so that afterwards it is the flood's.
    let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let log_before = dir_bytes(&audit);
    let stderr_before = std::fs::metadata(&stderr).unwrap().len();

    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let bound = |answered: u64| SLACK_BYTES + PER_LOOKUP_BYTES * (answered + 1);
    let stop = Arc::new(AtomicBool::new(false));
    let body = call_nik(&nik, &"A".repeat(USER_ID_BYTES), "x");
    let started = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, url, body, sent, stop) = (
            gw.client(STRANGER),
            url.clone(),
            body.clone(),
            Arc::clone(&sent),
            Arc::clone(&stop),
        );
        flood.push(tokio::spawn(async move {
            for _ in 0..FLOOD / CONNECTIONS {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let (_, answer) = post(&client, &url, body.clone()).await;
                assert_eq!(response_code(&answer).as_deref(), Some("28"), "{answer}");
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // A registered User ID looks up a NIK four times a second meanwhile.
    let lookups = {
        let (stop, url, nik, answered) = (
            Arc::clone(&stop),
            url.clone(),
            nik.clone(),
            Arc::clone(&answered),
        );
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let (_, answer) = post(&lookup, &url, call_nik(&nik, "rsud_01", PASSWORD)).await;
                assert_eq!(respon(&answer), None, "a lookup during the flood: {answer}");
                slowest = slowest.max(asked.elapsed());
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            slowest
        })
    };
    // Watch the disk while it runs: without the bound the test stops early rather than
    // write gigabytes.
    let mut peak_rss = rss_before;
    while sent.load(Ordering::Relaxed) < FLOOD {
        let log = dir_bytes(&audit) - log_before;
        let err = std::fs::metadata(&stderr).unwrap().len() - stderr_before;
        peak_rss = peak_rss.max(status_kib(pid, "VmRSS"));
        let allowed = bound(answered.load(Ordering::Relaxed));
        if log > allowed || err > allowed || started.elapsed() > FLOOD_DEADLINE {
            stop.store(true, Ordering::Relaxed);
            panic!(
                "after {} requests in {:?}: decision log +{log} bytes, stderr +{err} bytes",
                sent.load(Ordering::Relaxed),
                started.elapsed()
            );
        }
        if flood.iter().all(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for t in flood {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let slowest = lookups.await.unwrap();
    let answered = answered.load(Ordering::Relaxed);
    assert_eq!(sent.load(Ordering::Relaxed), FLOOD);

    // Every request is counted, exactly (counted after its answer: wait for the last).
    let deadline = Instant::now() + Duration::from_secs(10);
    let counted = loop {
        let n = counter_sum(&gw.metrics().await, "gerbang_unregistered_requests_total");
        if n >= FLOOD || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(counted, FLOOD, "gerbang_unregistered_requests_total");
    if hwm_reset {
        peak_rss = peak_rss.max(status_kib(pid, "VmHWM"));
    }
    let rss_after = status_kib(pid, "VmRSS");
    gw.stop();
    let log_grown = dir_bytes(&audit) - log_before;
    let stderr_grown = std::fs::metadata(&stderr).unwrap().len() - stderr_before;

    // The address's records: one per minute at most, with nothing it chose.
    let mut strangers = 0;
    let mut stranger_bytes = 0;
    for file in std::fs::read_dir(&audit).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            if r["peer_ip"] == STRANGER {
                strangers += 1;
                stranger_bytes += line.len() + 1;
                assert!(r.get("user_id").is_none(), "{r}");
                assert!(r.get("nik_digest").is_none(), "{r}");
                assert_eq!(r["reason"], "user_id_format", "{r}");
            }
        }
    }
    let minutes = elapsed.as_secs() / 60 + 2;
    println!(
        "flood: {FLOOD} requests with a {USER_ID_BYTES}-byte user_id from {STRANGER} over {CONNECTIONS} connections in {:.1} s ({:.0}/s); decision log +{log_grown} bytes ({strangers} records of {STRANGER}, {stranger_bytes} bytes); stderr +{stderr_grown} bytes; gateway RSS {rss_before} KiB before, {peak_rss} KiB at most during, {rss_after} KiB after; {answered} lookups of rsud_01 answered meanwhile, the slowest in {} ms",
        elapsed.as_secs_f64(),
        FLOOD as f64 / elapsed.as_secs_f64(),
        slowest.as_millis()
    );
    assert!(
        (1..=minutes).contains(&strangers),
        "{strangers} records of {STRANGER} in {elapsed:?}"
    );
    assert!(
        log_grown <= bound(answered),
        "decision log +{log_grown} bytes"
    );
    assert!(
        stderr_grown <= bound(answered),
        "stderr +{stderr_grown} bytes"
    );
    assert!(
        peak_rss <= rss_before + RSS_BOUND_KIB,
        "RSS {rss_before} KiB before, {peak_rss} KiB during"
    );
    assert!(answered >= 4, "only {answered} lookups during the flood");
}

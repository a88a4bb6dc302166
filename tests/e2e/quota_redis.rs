//! The daily quota shared by several gateway instances through a real `redis-server`:
//! exactness across instances, a clean stop giving its lease back, Redis killed mid-load
//! (no overshoot, clear refusals, recovery when it returns), and the configuration checks.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gerbang_e2e::redis::Redis;
use gerbang_e2e::*;

const USER: &str = "rsud_01";

fn hospital(kuota: u32) -> Vec<TestPks> {
    vec![TestPks {
        kuota,
        ..TestPks::new(
            "rsud.toml",
            "1/RSUD/QR",
            vec![TestUser {
                id: USER,
                ip: "127.0.0.2",
                status: "aktif",
            }],
        )
    }]
}

fn gateway(sim: &Sim, redis: &Redis, kuota: u32, lease: u32) -> Gateway {
    Gateway::start(GatewayOptions {
        quota: redis.quota_config(lease, 0),
        ..GatewayOptions::new(sim.addr, hospital(kuota))
    })
}

/// What a gateway answered to a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Served,
    Exhausted,
    Unavailable,
}

async fn lookup(client: &reqwest::Client, gw: &Gateway, nik: &str) -> Answer {
    let (_, body) = post(client, &gw.url("CALL_NIK"), call_nik(nik, USER, PASSWORD)).await;
    match response_code(&body).as_deref() {
        None => Answer::Served,
        Some("05") => Answer::Exhausted,
        Some("25") => {
            assert_eq!(
                respon(&body).as_deref(),
                Some("Layanan Kuota Tidak Tersedia"),
                "{body}"
            );
            Answer::Unavailable
        }
        other => panic!("unexpected answer {other:?}: {body}"),
    }
}

/// Fires `n` concurrent lookups at each gateway in turn; returns (served, exhausted).
async fn burst(gws: &[&Gateway], nik: &str, n: usize) -> (usize, usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let gw = gws[i % gws.len()];
        let (client, url, body) = (
            gw.client("127.0.0.2"),
            gw.url("CALL_NIK"),
            call_nik(nik, USER, PASSWORD),
        );
        tasks.push(tokio::spawn(async move { post(&client, &url, body).await }));
    }
    let (mut served, mut exhausted) = (0, 0);
    for t in tasks {
        let (_, body) = t.await.unwrap();
        match response_code(&body).as_deref() {
            None => served += 1,
            Some("05") => exhausted += 1,
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    (served, exhausted)
}

/// One lookup, so the User ID is logged in (argon2) before a burst measures the meter.
async fn warm_up(gw: &Gateway, nik: &str) {
    assert_eq!(
        lookup(&gw.client("127.0.0.2"), gw, nik).await,
        Answer::Served
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_forward_exactly_the_quota() {
    let sim = Sim::start(1_000);
    let redis = Redis::start();
    let (a, b) = (gateway(&sim, &redis, 75, 8), gateway(&sim, &redis, 75, 8));
    let nik = sim.sample("alive", 1).await.remove(0);
    warm_up(&a, &nik).await;
    warm_up(&b, &nik).await;
    let (served, exhausted) = burst(&[&a, &b], &nik, 500).await;
    assert_eq!((served, exhausted), (73, 427));
    assert_eq!(
        sim.requests().await,
        75,
        "exactly the quota reached the DWH"
    );
    assert_eq!(redis.total(USER), 75);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_gives_the_unused_lease_back() {
    let sim = Sim::start(1_000);
    let redis = Redis::start();
    let (mut a, b) = (gateway(&sim, &redis, 30, 16), gateway(&sim, &redis, 30, 16));
    let nik = sim.sample("alive", 1).await.remove(0);
    warm_up(&a, &nik).await;
    warm_up(&b, &nik).await;
    assert_eq!(redis.total(USER), 30, "two leases of 16, capped at 30");
    a.stop();
    assert_eq!(redis.total(USER), 1 + 14, "a gave back its 15 unused hits");
    // b holds 13 and leases the 15 a gave back, once its one-second recheck has passed.
    let client = b.client("127.0.0.2");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served = 0;
    while sim.requests().await < 30 {
        match lookup(&client, &b, &nik).await {
            Answer::Served => served += 1,
            Answer::Exhausted => {
                assert!(Instant::now() < deadline, "a's lease never came back");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Answer::Unavailable => panic!("Redis is up"),
        }
    }
    assert_eq!(served, 28);
    assert_eq!(lookup(&client, &b, &nik).await, Answer::Exhausted);
    assert_eq!(sim.requests().await, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_never_overshoots_refuses_clearly_and_recovers() {
    const QUOTA: u32 = 600;
    const LEASE: u32 = 8;
    const WORKERS: usize = 6;
    let sim = Sim::start(1_000);
    // Persistence on, as the docs ask: a Redis restart must not forget the day's counts.
    let mut redis = Redis::start_with_aof();
    let (a, b) = (
        Arc::new(gateway(&sim, &redis, QUOTA, LEASE)),
        Arc::new(gateway(&sim, &redis, QUOTA, LEASE)),
    );
    let nik = sim.sample("alive", 1).await.remove(0);
    warm_up(&a, &nik).await;
    warm_up(&b, &nik).await;
    sim.set_delay(5).await;

    // Load on both instances until told to stop, counting the answers.
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let gw = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let (stop, counts, nik) = (Arc::clone(&stop), Arc::clone(&counts), nik.clone());
            tokio::spawn(async move {
                let client = gw.client("127.0.0.2");
                while !stop.load(Ordering::Relaxed) {
                    let slot = match lookup(&client, &gw, &nik).await {
                        Answer::Served => 0,
                        Answer::Exhausted => 1,
                        Answer::Unavailable => 2,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let wait_for = |what: &'static str, cond: Box<dyn Fn() -> bool + Send>| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let c = Arc::clone(&counts);
    wait_for(
        "the load did not start",
        Box::new(move || c[0].load(Ordering::Relaxed) >= 60),
    )
    .await;

    redis.kill();
    let at_kill = sim.requests().await;
    let c = Arc::clone(&counts);
    wait_for(
        "no refusal while Redis was down",
        Box::new(move || c[2].load(Ordering::Relaxed) >= 20),
    )
    .await;
    let during = sim.requests().await - at_kill;
    assert!(
        during <= u64::from(2 * LEASE) + WORKERS as u64,
        "{during} lookups reached the DWH with Redis down: more than the leased hits"
    );
    assert!(
        sim.requests().await < u64::from(QUOTA),
        "the quota was not used up before the outage"
    );

    redis.restart();
    let c = Arc::clone(&counts);
    let served_before = c[0].load(Ordering::Relaxed);
    wait_for(
        "serving did not resume after Redis returned",
        Box::new(move || c[0].load(Ordering::Relaxed) >= served_before + 40),
    )
    .await;
    // Let the load run into the quota, then stop it.
    let c = Arc::clone(&counts);
    wait_for(
        "the quota was never used up",
        Box::new(move || c[1].load(Ordering::Relaxed) >= 20),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    sim.set_delay(0).await;
    // Whatever either instance still holds is served, and not one hit more.
    let (_, _) = burst(&[&a, &b], &nik, 2 * LEASE as usize + 10).await;
    assert_eq!(
        sim.requests().await,
        u64::from(QUOTA),
        "exactly the quota reached the DWH, outage or not"
    );
    assert_eq!(redis.total(USER), QUOTA);
    for gw in [&a, &b] {
        // Each change is logged once: as many recoveries as outages (one, unless the
        // machine was too busy to answer within the time limit at some other moment).
        let log = gw
            .proc
            .stderr_with(&["quota store unreachable", "quota store reachable again"])
            .await;
        let down = log.matches("quota store unreachable").count();
        let up = log.matches("quota store reachable again").count();
        assert!(
            down >= 1 && up == down,
            "{down} outages, {up} recoveries:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_redis_fields_it_refuses() {
    let sim = Sim::start(10);
    let redis = Redis::start();
    let gw = gateway(&sim, &redis, 10, 8);
    let path = gw.dir.path().join("gerbang.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let check = |text: String| {
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(bin("gerbang"))
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout),
        )
    };
    let (ok, shown) = check(good.clone());
    assert!(ok, "{shown}");
    let url_line = format!("redis_url = \"{}\"\n", redis.url());
    let (ok, shown) = check(good.replace(&url_line, ""));
    assert!(!ok && shown.contains("quota.redis_url"), "{shown}");
    let (ok, shown) = check(good.replace(&redis.url(), "http://127.0.0.1:1"));
    assert!(
        !ok && shown.contains("quota.redis_url") && shown.contains("not a Redis URL"),
        "{shown}"
    );
    let (ok, shown) = check(good.replace("lease = 8", "lease = 0"));
    assert!(!ok && shown.contains("quota.lease"), "{shown}");
    let (ok, shown) = check(good.replace("store = \"redis\"", "store = \"embedded\""));
    assert!(
        !ok && shown.contains("quota.redis_url") && shown.contains("only used with store"),
        "{shown}"
    );
}

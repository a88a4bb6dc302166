//! Two gateways behind HAProxy in TCP mode, as deployed (`docs/gateway.md`, "Behind a load
//! balancer"): HAProxy sends PROXY v2 (`send-proxy-v2`) from its own address, health-checks
//! each gateway's `/ready` on the admin listener, and balances round-robin; the gateways share
//! the daily quota through Redis. Clients on their own 127.0.0.x addresses are authenticated
//! by those addresses through HAProxy; under load one gateway is killed with SIGKILL: only
//! requests in flight on it may fail, the survivor serves the rest, and the quota in Redis
//! stays exact. A portal session started through HAProxy continues on the survivor after
//! one gateway is killed, and a sanction applied on the survivor holds when the killed one
//! comes back. Starts its own haproxy (Debian package) and redis-server on loopback ports.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gerbang_e2e::redis::Redis;
use gerbang_e2e::*;

const USER: &str = "rsud_01";
/// HAProxy's own source address toward the gateways: the one balancer they trust.
const HAPROXY_SOURCE: &str = "127.0.0.60";

/// The portal User ID and its address.
const PORTAL_USER: &str = "portal_01";
const PORTAL_ADDRESS: &str = "127.0.0.9";

fn gateway(sim: &Sim, redis: &Redis) -> Gateway {
    let pks = vec![
        TestPks {
            kuota: 100_000,
            ..TestPks::new(
                "rsud.toml",
                "1/RSUD/HA",
                vec![TestUser::aktif(USER, "127.0.0.2")],
            )
        },
        TestPks {
            metode: r#"["web_portal"]"#,
            kuota: 100,
            ..TestPks::new(
                "portal.toml",
                "6/PORTAL/HA",
                vec![TestUser::aktif(PORTAL_USER, PORTAL_ADDRESS)],
            )
        },
    ];
    Gateway::start(GatewayOptions {
        // A lease of one hit: every served lookup is counted in Redis when it happens.
        quota: redis.quota_config(1, 0),
        listen: "proxy_protocol_from = [\"127.0.0.60\"]\n",
        ..GatewayOptions::new(sim.addr, pks)
    })
}

fn haproxy_config(frontend: SocketAddr, gws: &[&Gateway]) -> String {
    let servers: String = gws
        .iter()
        .enumerate()
        .map(|(i, gw)| {
            format!(
                "  server g{i} {} check port {}\n",
                gw.addr,
                gw.admin_addr.port()
            )
        })
        .collect();
    format!(
        "global\n  maxconn 1000\n\
         defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  retries 3\n  option redispatch\n\
         frontend fe\n  bind {frontend}\n  default_backend gateways\n\
         backend gateways\n  balance roundrobin\n  option httpchk GET /ready\n  \
         default-server inter 200ms fall 1 rise 2 send-proxy-v2 source {HAPROXY_SOURCE}\n{servers}"
    )
}

/// One lookup through HAProxy on a new connection from `client`'s address: `Some(code)`
/// (`None` for a record), or `Err` when no answer came.
async fn lookup(client: &reqwest::Client, url: &str, nik: &str) -> Result<Option<String>, String> {
    let r = client
        .post(url)
        .body(call_nik(nik, USER, PASSWORD))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = r.text().await.map_err(|e| e.to_string())?;
    Ok(response_code(&body))
}

fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        // A new connection per request, so that HAProxy balances every lookup.
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn two_gateways_behind_haproxy_survive_one_killed_and_keep_the_quota_exact() {
    let Some(haproxy) = which("haproxy") else {
        panic!("haproxy is not installed (make test installs it: apt-get install haproxy)");
    };
    let sim = Sim::start(1_000);
    let redis = Redis::start();
    let mut g1 = gateway(&sim, &redis);
    let g2 = gateway(&sim, &redis);
    let nik = sim.sample("alive", 1).await.remove(0);

    let dir = tempfile::tempdir().unwrap();
    let frontend: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_config(frontend, &[&g1, &g2])).unwrap();
    let mut cmd = Command::new(haproxy);
    cmd.arg("-db").arg("-f").arg(&cfg);
    let _haproxy = start_listening("haproxy", cmd, frontend, dir.path());
    let url = format!("http://{frontend}/dukcapil/get_json/UJI/CALL_NIK");

    // Both gateways come up in HAProxy's view (two good checks each) and share the load.
    let client = client_from("127.0.0.2");
    let allowed = |m: &str| metric_sum(m, "gerbang_requests_total", "decision=\"allow\"");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served = 0usize;
    loop {
        for _ in 0..10 {
            if let Ok(None) = lookup(&client, &url, &nik).await {
                served += 1;
            }
        }
        let (m1, m2) = (g1.metrics().await, g2.metrics().await);
        if allowed(&m1) > 0.0 && allowed(&m2) > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lookups through HAProxy did not reach both gateways ({served} served):\n{m1}\n{m2}"
        );
    }

    // The client's own address arrives through HAProxy: 127.0.0.3 is in no LAN.
    let stranger = lookup(&client_from("127.0.0.3"), &url, &nik).await;
    assert_eq!(stranger, Ok(Some("10".to_string())));

    // Load from four clients; one gateway killed mid-load.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
        let (url, nik, client) = (url.clone(), nik.clone(), client_from("127.0.0.2"));
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match lookup(&client, &url, &nik).await {
                    Ok(None) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(Some(code)) => panic!("lookup refused with code {code}"),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_kill = ok.load(Ordering::Relaxed);
    g1.proc.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("under load: {before_kill} served before the kill, {ok} in all, {failed} failed");
    assert!(
        ok > before_kill + 10,
        "the survivor did not carry the load: {before_kill} then {ok}"
    );
    // At most the four requests in flight on the killed gateway fail; HAProxy retries and
    // redispatches new connections the dead one refuses.
    assert!(failed <= 4, "{failed} lookups failed");

    // The quota in Redis: every served lookup counted once; a request the killed gateway had
    // counted but not answered is the only possible excess.
    let counted = usize::try_from(redis.total(USER)).unwrap();
    let total_served = served + ok;
    assert!(
        counted >= total_served && counted <= total_served + failed,
        "Redis counted {counted}, served {total_served}, failed {failed}"
    );
}

/// HAProxy in front of `gws`, its frontend address; the process stops when dropped.
fn start_haproxy(gws: &[&Gateway], dir: &std::path::Path) -> (Proc, SocketAddr) {
    let Some(haproxy) = which("haproxy") else {
        panic!("haproxy is not installed (make test installs it: apt-get install haproxy)");
    };
    let frontend: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_config(frontend, gws)).unwrap();
    let mut cmd = Command::new(haproxy);
    cmd.arg("-db").arg("-f").arg(&cfg);
    (start_listening("haproxy", cmd, frontend, dir), frontend)
}

/// A portal page through HAProxy on a new connection with `cookie`: the HTTP status.
async fn portal_page(client: &reqwest::Client, frontend: SocketAddr, cookie: &str) -> u16 {
    client
        .get(format!("http://{frontend}/portal/"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_portal_session_through_haproxy_continues_on_the_survivor_of_a_kill() {
    let sim = Sim::start(100);
    let redis = Redis::start();
    let mut g1 = gateway(&sim, &redis);
    let g2 = gateway(&sim, &redis);
    let dir = tempfile::tempdir().unwrap();
    let (_haproxy, frontend) = start_haproxy(&[&g1, &g2], dir.path());
    let browser = reqwest::Client::builder()
        .local_address(PORTAL_ADDRESS.parse::<IpAddr>().unwrap())
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Both gateways up in HAProxy's view: the login is answered by either.
    let deadline = Instant::now() + Duration::from_secs(20);
    let cookie = loop {
        let r = browser
            .post(format!("http://{frontend}/portal/masuk"))
            .form(&[("user_id", PORTAL_USER), ("password", PASSWORD)])
            .send()
            .await;
        if let Ok(r) = r
            && r.status().as_u16() == 303
            && let Some(set) = r.headers().get("set-cookie")
        {
            break set.to_str().unwrap().split(';').next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no portal login through HAProxy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let served = |m: &str| metric_sum(m, "gerbang_requests_total", "channel=\"web_portal\"");
    // Pages on new connections, round-robin: the session is valid on both gateways.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert_eq!(portal_page(&browser, frontend, &cookie).await, 200);
        let (m1, m2) = (g1.metrics().await, g2.metrics().await);
        if served(&m1) >= 1.0 && served(&m2) >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "portal pages did not reach both gateways:\n{m1}\n{m2}"
        );
    }

    // One gateway killed: the browser stays logged in on the survivor.
    g1.proc.kill();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        if let Ok(r) = browser
            .get(format!("http://{frontend}/portal/"))
            .header("Cookie", &cookie)
            .send()
            .await
        {
            statuses.push(r.status().as_u16());
        }
    }
    assert!(
        statuses.len() >= 5 && statuses.iter().all(|&s| s == 200),
        "pages after the kill: {statuses:?}"
    );

    // A sanction applied on the survivor holds when the killed gateway comes back: once
    // HAProxy sends it lookups again, it refuses the User ID like the survivor.
    let (status, text) = g2
        .admin(
            reqwest::Method::POST,
            "/sanksi",
            Some(serde_json::json!({"jenis": "nonaktifkan_user", "sasaran": USER, "alasan": "uji HA"})),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    g1.restart();
    let nik = sim.sample("alive", 1).await.remove(0);
    let url = format!("http://{frontend}/dukcapil/get_json/UJI/CALL_NIK");
    let client = client_from("127.0.0.2");
    let refused = |m: &str| metric_sum(m, "gerbang_requests_total", "reason=\"user_inactive\"");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let code = lookup(&client, &url, &nik).await;
        assert_eq!(code, Ok(Some("17".to_string())), "the sanctioned User ID");
        if refused(&g1.metrics().await) > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted gateway got no lookup through HAProxy:\n{}",
            g1.proc.stderr()
        );
    }
}

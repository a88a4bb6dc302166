//! What the gateway and the SAM sidecar tell systemd under `Type=notify`
//! (`deploy/systemd/`): the test plays the service manager with a datagram socket of its own
//! in `NOTIFY_SOCKET` and `WATCHDOG_USEC`, and checks `READY=1` (only once a lookup is
//! answered), the watchdog's pings, `RELOADING=1` then `READY=1` around SIGHUP, and
//! `STOPPING=1` on SIGTERM; and the drain a SIGTERM starts: the lookup in flight gets its
//! answer, a new connection is refused, `/ready` says draining, the exit is clean.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use gerbang_e2e::systemd::{Manager, assert_audit_verifies};
use gerbang_e2e::*;

fn agreements() -> Vec<TestPks> {
    vec![TestPks::new(
        "rsud.toml",
        "1/RSUD/SYSTEMD",
        vec![TestUser::aktif("rsud_01", "127.0.0.2")],
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_tells_systemd_ready_watchdog_reloading_and_stopping() {
    let sim = Sim::start(100);
    let nik = sim.sample("alive", 1).await.remove(0);
    let manager = Manager::new();
    // Not waiting for the port: READY=1 is the only sign of readiness the test takes.
    let mut gw = Gateway::start_with_env(
        GatewayOptions::new(sim.addr, agreements()),
        &manager.env(),
        false,
    );

    let (ready, before) = manager.until(&gw.proc, "READY=1").await;
    assert!(before.is_empty(), "notified before READY=1: {before:?}");
    // Ready means serving: the first lookup after it is answered with the record.
    let (status, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(respon(&answer), None, "{answer}");
    assert!(
        ready.contains("STATUS=serving: 1 PKS, policy set "),
        "READY=1 without the PKS count and policy hash: {ready:?}"
    );
    // /ready agrees at once, from the live state (no /metrics scrape came first).
    let (status, text) = gw.admin(reqwest::Method::GET, "/ready", None).await;
    assert_eq!(status, 200, "{text}");

    manager.pings(&gw.proc, 3).await;

    gw.proc.signal("HUP");
    let (reloading, _) = manager.until(&gw.proc, "RELOADING=1").await;
    assert!(
        reloading.contains("MONOTONIC_USEC="),
        "RELOADING=1 without MONOTONIC_USEC (systemd 253 and later want it): {reloading:?}"
    );
    let (ready, _) = manager.until(&gw.proc, "READY=1").await;
    assert!(ready.contains("STATUS=serving: 1 PKS"), "{ready:?}");

    manager.stops(&mut gw.proc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_tells_systemd_ready_watchdog_reloading_and_stopping() {
    let sim = Sim::start(10);
    let gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let manager = Manager::new();
    let mut sam = SamSidecar::start_with_env(
        &gw.pks_dir(),
        "127.0.0.1:0".parse().unwrap(),
        &manager.env(),
    );

    let (ready, before) = manager.until(&sam.proc, "READY=1").await;
    assert!(before.is_empty(), "notified before READY=1: {before:?}");
    assert!(
        ready.contains("STATUS=serving: 1 PKS, 0 SAM"),
        "READY=1 without what is loaded: {ready:?}"
    );
    assert_eq!(sam.health().await["status"], "ok");

    manager.pings(&sam.proc, 3).await;

    sam.proc.signal("HUP");
    manager.until(&sam.proc, "RELOADING=1").await;
    manager.until(&sam.proc, "READY=1").await;

    manager.stops(&mut sam.proc).await;
}

/// Started as the tests always start it (no `NOTIFY_SOCKET`): nothing is sent, so nothing
/// fails, and nothing about systemd is logged through a start, a reload and a stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_notify_socket_nothing_about_systemd_is_logged() {
    let sim = Sim::start(10);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    gw.proc.signal("HUP");
    gw.proc
        .stderr_with(&["reloaded PKS files, policies and sanctions"])
        .await;
    gw.stop();
    let log = gw.proc.stderr();
    assert!(!log.contains("cannot notify systemd"), "{log}");
}

/// SIGTERM while a lookup waits on a slow DWH: the listener closes at once (a new
/// connection is refused), `/ready` answers 503 "draining" meanwhile, the lookup in flight
/// gets its full answer, the process exits 0, the decision log verifies with the lookup in
/// it, and its quota hit is counted after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_lookup_in_flight_and_refuses_new_connections() {
    let sim = Sim::start(100);
    let nik = sim.sample("alive", 1).await.remove(0);
    let mut gw = Gateway::start(GatewayOptions {
        timeout_ms: 20_000,
        ..GatewayOptions::new(sim.addr, agreements())
    });
    // Long enough for every check below, on a loaded machine too; the lookup waits for it.
    sim.set_delay(3_000).await;
    let client = gw.client("127.0.0.2");
    let url = gw.url("CALL_NIK");
    let in_flight =
        tokio::spawn(async move { post(&client, &url, call_nik(&nik, "rsud_01", PASSWORD)).await });
    // In flight: the DWH has it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.requests().await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lookup never reached the DWH"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    gw.proc.signal("TERM");
    // The listener closes: a new connection is refused (not accepted and then dropped).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpStream::connect(gw.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a new connection is still accepted after SIGTERM: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let (status, ready) = gw.admin(reqwest::Method::GET, "/ready", None).await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("\"draining\":true"), "{ready}");
    assert!(
        !in_flight.is_finished(),
        "the lookup ended before the drain was checked (the DWH delay is too short)"
    );

    let (status, answer) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        respon(&answer),
        None,
        "the lookup in flight was cut: {answer}"
    );
    assert!(!record_keys(&answer).is_empty(), "{answer}");
    let exited = gw.proc.child.wait().unwrap();
    assert!(
        exited.success(),
        "gerbang did not stop cleanly ({exited}):\n{}",
        gw.proc.stderr()
    );
    let log = gw.proc.stderr();
    assert!(log.contains("drained: every connection has ended"), "{log}");

    assert_audit_verifies(&gw);
    let audit = std::fs::read_dir(gw.dir.path().join("audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        audit.contains("\"user_id\":\"rsud_01\""),
        "the lookup has no decision-log record"
    );

    // Its quota hit was kept: one used after a restart.
    gw.restart();
    let (_, quota) = gw
        .admin(reqwest::Method::GET, "/quota?user=rsud_01", None)
        .await;
    assert!(quota.contains("\"used\":1"), "{quota}");
}

/// SIGTERM under sustained load: eight kept-alive clients look up without pause against a
/// DWH taking 150 ms, so several lookups are always in flight. Every lookup the DWH received
/// reaches its client whole (none is cut by the stop); a request the gateway never took
/// fails at the client without reaching the DWH; the process exits 0; after a restart the
/// quota holds exactly the answered lookups, and the decision log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_cuts_no_lookup_and_keeps_the_quota_exact() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let sim = Sim::start(100);
    let nik = sim.sample("alive", 1).await.remove(0);
    let mut gw = Gateway::start(GatewayOptions {
        timeout_ms: 20_000,
        pks: vec![TestPks {
            kuota: 100_000,
            ..agreements().remove(0)
        }],
        ..GatewayOptions::new(sim.addr, vec![])
    });
    sim.set_delay(150).await;
    let before = sim.requests().await;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let not_taken = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, answered, not_taken) = (
            Arc::clone(&stop),
            Arc::clone(&answered),
            Arc::clone(&not_taken),
        );
        let (client, url, body) = (
            gw.client("127.0.0.2"),
            gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", PASSWORD),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.post(&url).body(body.clone()).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let text = r.text().await.unwrap_or_default();
                        assert_eq!(status, 200, "{text}");
                        assert!(!record_keys(&text).is_empty(), "a lookup was cut: {text}");
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        not_taken.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let at_term = answered.load(Ordering::Relaxed);
    assert!(at_term > 10, "the load did not run: {at_term} lookups");
    gw.proc.signal("TERM");
    let exited = tokio::task::spawn_blocking(move || {
        let status = gw.proc.child.wait().unwrap();
        (gw, status)
    })
    .await
    .unwrap();
    let (mut gw, status) = exited;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(
        status.success(),
        "gerbang did not stop cleanly ({status}):\n{}",
        gw.proc.stderr()
    );
    let answered = answered.load(Ordering::Relaxed);
    let forwarded = usize::try_from(sim.requests().await - before).unwrap();
    eprintln!(
        "{answered} lookups answered ({at_term} before SIGTERM), {forwarded} reached the DWH, {} not taken",
        not_taken.load(Ordering::Relaxed)
    );
    assert_eq!(
        forwarded, answered,
        "a lookup the DWH answered did not reach its client"
    );

    assert_audit_verifies(&gw);
    gw.restart();
    let (_, quota) = gw
        .admin(reqwest::Method::GET, "/quota?user=rsud_01", None)
        .await;
    assert!(
        quota.contains(&format!("\"used\":{answered}")),
        "{answered} answered: {quota}"
    );
}

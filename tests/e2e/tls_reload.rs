//! A renewed certificate without a restart (`docs/gateway.md`, "Reloading"): the gateway
//! reads `listen.tls_cert` and `tls_key` again at SIGHUP, new connections get the new pair,
//! and a pair that does not load leaves the running one in force. The served certificate's
//! end of validity is a metric.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gerbang_e2e::*;

/// A client from 127.0.0.2 trusting only the CA in `ca`, on a new connection per request.
fn client_trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .tls_built_in_root_certs(false)
        .https_only(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn served(client: &reqwest::Client, gw: &Gateway, nik: &str) -> bool {
    match client
        .post(gw.url("CALL_NIK"))
        .body(call_nik(nik, "rsud_01", PASSWORD))
        .send()
        .await
    {
        Ok(r) => response_code(&r.text().await.unwrap()).is_none(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_a_reload_and_a_broken_one_is_not() {
    let sim = Sim::start(200);
    let pks = vec![TestPks::new(
        "rsud.toml",
        "1/RSUD/TLS",
        vec![TestUser::aktif("rsud_01", "127.0.0.2")],
    )];
    let gw = Gateway::start(GatewayOptions {
        tls: true,
        ..GatewayOptions::new(sim.addr, pks)
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    let certs = gw.dir.path().join("certs");
    let old_ca = client_trusting(&certs.join("ca.pem"));
    assert!(served(&old_ca, &gw, &nik).await);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expiry = metric(
        &gw.metrics().await,
        "gerbang_tls_certificate_expiry_timestamp_seconds",
    );
    // `gerbang certs dev` makes a server certificate valid for a year (to midnight UTC).
    let year = 365.0 * 86_400.0;
    assert!(
        (expiry - (now + year)).abs() < 2.0 * 86_400.0,
        "expiry {expiry} against now {now}"
    );

    // A renewal from another CA is copied over the files, then SIGHUP.
    let renewed = tempfile::tempdir().unwrap();
    dev_certs(renewed.path());
    for f in ["server.pem", "server.key"] {
        std::fs::copy(renewed.path().join(f), certs.join(f)).unwrap();
    }
    let new_ca = client_trusting(&renewed.path().join("ca.pem"));
    assert!(
        !served(&new_ca, &gw, &nik).await,
        "the new pair before the reload"
    );
    gw.proc.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served(&new_ca, &gw, &nik).await {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !served(&old_ca, &gw, &nik).await,
        "the old certificate is still served to new connections"
    );

    // A broken pair (a renewal copied in half): the running one stays.
    std::fs::write(
        certs.join("server.pem"),
        "-----BEGIN CERTIFICATE-----\nhalf\n",
    )
    .unwrap();
    gw.proc.signal("HUP");
    gw.proc
        .stderr_with(&["TLS certificate NOT reloaded; the running one stays in force"])
        .await;
    assert!(served(&new_ca, &gw, &nik).await);
}

//! The bench's framework floors (`loadtest/src/bin`): `pingora-bare` and `hyper-bare` must
//! forward a lookup to the DWH and its answer back unchanged,
//! or the floor figures in `make bench` would measure something other than forwarding.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use gerbang_e2e::*;

async fn forwards_unchanged(name: &'static str) {
    let sim = Sim::start(200);
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut cmd = Command::new(bin(name));
    cmd.arg("--listen")
        .arg(addr.to_string())
        .arg("--upstream")
        .arg(sim.addr.to_string())
        .args(["--threads", "1"]);
    let _floor = start_listening(name, cmd, addr, dir.path());

    let nik = sim.sample("alive", 1).await.remove(0);
    let body = call_nik(&nik, "uji_01", PASSWORD);
    let path = "/dukcapil/get_json/UJI/CALL_NIK";
    let client = reqwest::Client::new();
    let direct = post(&client, &format!("http://{}{path}", sim.addr), body.clone()).await;
    let before = sim.requests().await;
    for _ in 0..3 {
        let through = post(&client, &format!("http://{addr}{path}"), body.clone()).await;
        assert_eq!(through, direct, "{name} changed the DWH's answer");
    }
    assert_eq!(
        sim.requests().await - before,
        3,
        "{name} did not forward each request once"
    );
    let last = sim.last_request().await;
    assert_eq!(last["target"], path, "{name} changed the path");
    assert_eq!(last["body"], body, "{name} changed the body");
}

#[tokio::test]
async fn pingora_bare_forwards_a_lookup_unchanged() {
    forwards_unchanged("pingora-bare").await;
}

#[tokio::test]
async fn hyper_bare_forwards_a_lookup_unchanged() {
    forwards_unchanged("hyper-bare").await;
}

//! The PROXY protocol end to end (`[listen] proxy_protocol_from`): a trusted balancer's
//! connection carries the client's address in a v1 or v2 header and that address is then
//! the one the IP LAN check sees; the balancer's connection without a valid header, or too
//! slow with it, is closed unanswered; a header from any other peer is never believed.
//! Clients are raw sockets on chosen 127.0.0.x addresses: 127.0.0.9 plays the balancer.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use gerbang_e2e::*;

const API: &str = "/dukcapil/get_json/UJI/CALL_NIK";
const BALANCER: &str = "127.0.0.9";

async fn start() -> (Sim, Gateway, String) {
    let sim = Sim::start(1_000);
    let pks = vec![TestPks::new(
        "rsud.toml",
        "1/RSUD/PROXY",
        vec![TestUser::aktif("rsud_01", "127.0.0.2")],
    )];
    let gw = Gateway::start(GatewayOptions {
        listen: "proxy_protocol_from = [\"127.0.0.9\"]\nrequest_head_timeout_ms = 1000\n",
        ..GatewayOptions::new(sim.addr, pks)
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    (sim, gw, nik)
}

fn lookup(nik: &str) -> Vec<u8> {
    let body = call_nik(nik, "rsud_01", PASSWORD);
    format!(
        "POST {API} HTTP/1.1\r\nHost: gerbang\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn v1(client: Ipv4Addr) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 443\r\n").into_bytes()
}

fn v2(client: Ipv4Addr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client.octets());
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

/// v2 `LOCAL`: the balancer's own connection (a health check), no client address.
fn v2_local() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x20, 0x00, 0, 0]);
    h
}

/// Sends `bytes` from `source` and reads until the gateway closes: the answer, if any.
async fn send(addr: SocketAddr, source: &str, bytes: &[u8]) -> Option<RawAnswer> {
    let mut s = connect_from(addr, source, None).await;
    let _ = s.write_all(bytes).await;
    let (got, closed) = read_to_close(&mut s, Duration::from_secs(10)).await;
    assert!(closed, "the gateway kept the connection open");
    RawAnswer::parse(&got)
}

#[tokio::test]
async fn a_trusted_balancer_passes_the_clients_address_in_v1_and_v2() {
    let (sim, gw, nik) = start().await;
    let registered = Ipv4Addr::new(127, 0, 0, 2);
    for header in [v1(registered), v2(registered)] {
        let answer = send(gw.addr, BALANCER, &[header, lookup(&nik)].concat())
            .await
            .expect("an answer");
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(
            record_keys(&answer.body).contains(&"NIK".to_string()),
            "{}",
            answer.body
        );
    }
    assert_eq!(sim.requests().await, 2);

    // The address in the header is the one checked: one outside the User ID's LAN is
    // refused (10), as is the balancer's own address (v2 LOCAL).
    let stranger = Ipv4Addr::new(127, 0, 0, 5);
    for header in [v1(stranger), v2(stranger), v2_local()] {
        let answer = send(gw.addr, BALANCER, &[header, lookup(&nik)].concat())
            .await
            .expect("an answer");
        assert_eq!(
            response_code(&answer.body).as_deref(),
            Some("10"),
            "{}",
            answer.body
        );
    }
    assert_eq!(sim.requests().await, 2, "a refused lookup reached the DWH");
}

#[tokio::test]
async fn a_balancer_connection_without_a_valid_header_in_time_is_closed_unanswered() {
    let (sim, gw, nik) = start().await;
    // No header: the request itself is not a header.
    assert!(send(gw.addr, BALANCER, &lookup(&nik)).await.is_none());
    // A malformed header.
    let bad = b"PROXY TCP4 127.0.0.2 nonsense\r\n".to_vec();
    assert!(
        send(gw.addr, BALANCER, &[bad, lookup(&nik)].concat())
            .await
            .is_none()
    );
    // A v2 header announcing 65,535 bytes of addresses: refused once past the longest
    // header accepted, not read to its announced end.
    let mut huge = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    huge.extend(std::iter::repeat_n(b'x', 4096));
    assert!(send(gw.addr, BALANCER, &huge).await.is_none());
    // Half a header, then nothing: closed at the head deadline (1 s here).
    let mut s = connect_from(gw.addr, BALANCER, None).await;
    s.write_all(&v2(Ipv4Addr::new(127, 0, 0, 2))[..10])
        .await
        .unwrap();
    let (got, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(closed && got.is_empty(), "{got:?}");
    assert_eq!(sim.requests().await, 0);

    let metrics = gw
        .metrics_with(&["gerbang_connections_closed_total{reason=\"proxy_header_timeout\"} 1"])
        .await;
    assert_eq!(
        metric(
            &metrics,
            "gerbang_connections_closed_total{reason=\"proxy_header_invalid\"}"
        ),
        3.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_header_from_a_peer_that_is_not_a_trusted_balancer_is_never_believed() {
    let (sim, gw, nik) = start().await;
    // 127.0.0.3 claims to forward for the registered 127.0.0.2.
    let registered = Ipv4Addr::new(127, 0, 0, 2);
    for header in [v1(registered), v2(registered)] {
        if let Some(answer) = send(gw.addr, "127.0.0.3", &[header, lookup(&nik)].concat()).await {
            assert_ne!(answer.status, 200, "{}", answer.body);
            assert!(!answer.body.contains(&nik), "{}", answer.body);
        }
    }
    assert_eq!(sim.requests().await, 0);
    // The registered client itself, direct, is served as before.
    let answer = send(gw.addr, "127.0.0.2", &lookup(&nik))
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.body);
}

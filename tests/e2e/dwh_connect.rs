//! A DWH whose listen queue is full for a moment (a burst of new connections, as a gateway
//! filling its pool makes): the kernel drops the gateway's SYN and would send it again only
//! after a second, past the connect timeout (500 ms in these tests). The connection never
//! opened, so the DWH never saw the request: the gateway tries one more connection instead
//! of answering code 32.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use gerbang_e2e::*;

/// A relay to `upstream` on a listen queue of one, filled by two idle connections; it starts
/// accepting (and relaying) `after` a while once told to go. Returns its address, the go
/// signal and its task.
async fn full_relay(
    upstream: SocketAddr,
    after: Duration,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    // Two connections fill a queue of one (Linux keeps backlog + 1); they stay idle.
    let mut fillers = Vec::new();
    for _ in 0..2 {
        fillers.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let (go, gone) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(async move {
        let _ = gone.await;
        tokio::time::sleep(after).await;
        let _fillers = fillers;
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, go, relay)
}

#[tokio::test]
async fn a_dropped_syn_to_the_dwh_is_tried_again_on_a_new_connection() {
    let sim = Sim::start(200);
    let nik = sim.sample("alive", 1).await.remove(0);
    // The queue is drained 300 ms after the lookup leaves: after the first SYN was dropped,
    // before the 500 ms connect timeout; the kernel's own retransmission would come at 1 s.
    let (relay_addr, go, relay) = full_relay(sim.addr, Duration::from_millis(300)).await;
    let gw = Gateway::start(GatewayOptions::new(
        relay_addr,
        vec![TestPks::new(
            "rsud.toml",
            "1/RSUD/SYN",
            vec![TestUser::aktif("rsud_01", "127.0.0.2")],
        )],
    ));
    go.send(()).unwrap();
    let (status, body) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(response_code(&body), None, "{body}");
    assert!(!record_keys(&body).is_empty(), "{body}");
    assert_eq!(
        sim.requests().await,
        1,
        "the DWH got the lookup more than once"
    );
    relay.abort();
}

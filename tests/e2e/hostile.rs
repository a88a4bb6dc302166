//! Hostile clients end to end, through the real `gerbang serve` and `dwh-sim`: requests
//! framed so that where their body ends is ambiguous, heads and bodies trickled a byte at a
//! time, a client that never reads its answer, a TLS handshake that never finishes, kept-alive
//! connections that never end, and more connections than the caps allow. Clients are raw TCP
//! sockets on chosen 127.0.0.x addresses; every deadline is configured short and every wait
//! is bounded, so the file runs in seconds.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use gerbang_e2e::*;

const API: &str = "/dukcapil/get_json/UJI/CALL_NIK";

/// A hospital's User ID at 127.0.0.2 (a large quota: the slowloris test looks up a lot) and
/// a portal User ID at 127.0.0.4.
fn agreements() -> Vec<TestPks> {
    let rsud = TestPks {
        kuota: 100_000,
        ..TestPks::new(
            "rsud.toml",
            "1/RSUD/HOSTILE",
            vec![TestUser::aktif("rsud_01", "127.0.0.2")],
        )
    };
    let portal = TestPks {
        metode: r#"["web_portal"]"#,
        ..TestPks::new(
            "portal.toml",
            "2/PORTAL/HOSTILE",
            vec![TestUser::aktif("portal_01", "127.0.0.4")],
        )
    };
    vec![rsud, portal]
}

/// A simulator and a gateway in front of it with `opts` (the agreements above), and a NIK
/// the simulator knows.
async fn start(opts: impl FnOnce(GatewayOptions) -> GatewayOptions) -> (Sim, Gateway, String) {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(opts(GatewayOptions::new(sim.addr, agreements())));
    let nik = sim.sample("alive", 1).await.remove(0);
    (sim, gw, nik)
}

/// Sends `request` on a new connection from `source` and reads until the gateway closes it.
async fn exchange(addr: SocketAddr, source: &str, request: &[u8]) -> (Vec<u8>, bool) {
    let mut s = connect_from(addr, source, None).await;
    // The gateway may close before the last bytes are written; what it answered is read.
    let _ = s.write_all(request).await;
    read_to_close(&mut s, Duration::from_secs(10)).await
}

/// A lookup framed properly, on a connection closed after it: its status, or `None` when the
/// gateway closed the connection without answering.
async fn raw_lookup(addr: SocketAddr, source: &str, nik: &str) -> Option<u16> {
    let body = call_nik(nik, "rsud_01", PASSWORD);
    let request = format!(
        "POST {API} HTTP/1.1\r\nHost: gerbang\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (bytes, _) = exchange(addr, source, request.as_bytes()).await;
    RawAnswer::parse(&bytes).map(|a| a.status)
}

/// Logs the portal User ID in (the gateway's own login: nothing reaches the DWH) and returns
/// its session cookie.
async fn portal_cookie(gw: &Gateway) -> String {
    let r = gw
        .portal_client("127.0.0.4")
        .post(gw.portal_url("masuk"))
        .form(&[("user_id", "portal_01"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "portal login");
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// Polls the admin metrics until `series` reaches `at_least` (at most `limit`); returns the
/// time it took, or `None`.
async fn until_metric(
    gw: &Gateway,
    series: &str,
    at_least: f64,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if metric(&gw.metrics().await, series) >= at_least {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Waits (at most 5 s) until `gerbang_requests_total` counts `n` requests refused with
/// `reason` (a request is counted when it is logged, just after its answer), asserts it,
/// and returns the exposition.
async fn requests_counted(gw: &Gateway, reason: &str, n: usize) -> String {
    let label = format!("reason=\"{reason}\"");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = gw.metrics().await;
        let counted = metric_sum(&m, "gerbang_requests_total", &label);
        if counted >= n as f64 || Instant::now() > deadline {
            assert_eq!(counted, n as f64, "{m}");
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Who answers a shape with 400: Gerbang, in the DWH envelope with code 30, or pingora's
/// own parser before Gerbang sees the request (a bare 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefusedBy {
    Gerbang,
    Pingora,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_refused_before_anything_is_read_or_forwarded() {
    let (sim, gw, nik) = start(|o| o).await;
    let body = call_nik(&nik, "rsud_01", PASSWORD);
    let n = body.len();
    let chunked = format!("{n:x}\r\n{body}\r\n0\r\n\r\n");
    let api = |target: &str, version: &str, fields: &str, payload: &str| {
        format!(
            "POST {target} HTTP/{version}\r\nHost: gerbang\r\nContent-Type: application/json\r\n{fields}\r\n{payload}"
        )
    };
    // What a front end that framed the request otherwise would take for a second request.
    let smuggled = api(API, "1.1", &format!("Content-Length: {n}\r\n"), &body);

    // Framed properly, the same lookup is served and reaches the DWH.
    let (bytes, closed) = exchange(
        gw.addr,
        "127.0.0.2",
        api(
            API,
            "1.1",
            &format!("Connection: close\r\nContent-Length: {n}\r\n"),
            &body,
        )
        .as_bytes(),
    )
    .await;
    let control = RawAnswer::parse(&bytes).expect("an answer");
    assert_eq!(control.status, 200, "{}", control.body);
    assert!(
        control.body.contains(&format!("\"NIK\":{nik}")),
        "{}",
        control.body
    );
    assert!(closed);
    assert_eq!(sim.requests().await, 1);

    let cookie = portal_cookie(&gw).await;
    let form = format!("nik={nik}");
    let cases: Vec<(&str, String, RefusedBy)> = vec![
        (
            "Content-Length and chunked",
            api(
                API,
                "1.1",
                &format!(
                    "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                    chunked.len()
                ),
                &chunked,
            ) + &smuggled,
            RefusedBy::Gerbang,
        ),
        (
            "chunked and a short Content-Length",
            api(
                API,
                "1.1",
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                &chunked,
            ) + &smuggled,
            RefusedBy::Gerbang,
        ),
        (
            "Content-Length twice with the same value",
            api(
                API,
                "1.1",
                &format!("Content-Length: {n}\r\nContent-Length: {n}\r\n"),
                &body,
            ) + &smuggled,
            RefusedBy::Gerbang,
        ),
        (
            "Content-Length as a list of the same value",
            api(API, "1.1", &format!("Content-Length: {n}, {n}\r\n"), &body) + &smuggled,
            RefusedBy::Gerbang,
        ),
        (
            "Content-Length twice with different values",
            api(
                API,
                "1.1",
                &format!("Content-Length: {n}\r\nContent-Length: {}\r\n", n + 5),
                &body,
            ),
            RefusedBy::Pingora,
        ),
        (
            "a coding list ending in chunked",
            api(API, "1.1", "Transfer-Encoding: gzip, chunked\r\n", &chunked) + &smuggled,
            RefusedBy::Gerbang,
        ),
        (
            "chunked named twice",
            api(
                API,
                "1.1",
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                &chunked,
            ) + &smuggled,
            RefusedBy::Gerbang,
        ),
        (
            "a transfer coding other than chunked",
            api(API, "1.1", "Transfer-Encoding: identity\r\n", &body),
            RefusedBy::Pingora,
        ),
        (
            "chunked not the last coding",
            api(API, "1.1", "Transfer-Encoding: chunked, gzip\r\n", &chunked),
            RefusedBy::Pingora,
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            api(API, "1.0", "Transfer-Encoding: chunked\r\n", &chunked),
            RefusedBy::Pingora,
        ),
        (
            "obsolete line folding",
            api(
                API,
                "1.1",
                &format!("X-Catatan: satu\r\n dua\r\nContent-Length: {n}\r\n"),
                &body,
            ),
            RefusedBy::Pingora,
        ),
        (
            "a space before the colon",
            api(API, "1.1", &format!("Content-Length : {n}\r\n"), &body),
            RefusedBy::Pingora,
        ),
        (
            "bare LF line ends",
            api(API, "1.1", &format!("Content-Length: {n}\r\n"), &body).replace("\r\n", "\n")
                + &smuggled,
            RefusedBy::Gerbang,
        ),
        (
            "a malformed chunk size",
            api(
                API,
                "1.1",
                "Transfer-Encoding: chunked\r\n",
                &format!("zz\r\n{body}\r\n0\r\n\r\n"),
            ) + &smuggled,
            RefusedBy::Gerbang,
        ),
        (
            "a GET with a body",
            api(API, "1.1", &format!("Content-Length: {n}\r\n"), &body).replacen("POST", "GET", 1)
                + &smuggled,
            RefusedBy::Gerbang,
        ),
        (
            "a portal page GET with a body",
            format!(
                "GET /portal/ HTTP/1.1\r\nHost: gerbang\r\nCookie: {cookie}\r\nContent-Length: {}\r\n\r\n{form}",
                form.len()
            ),
            RefusedBy::Gerbang,
        ),
        (
            "a portal search with Content-Length and chunked",
            format!(
                "POST /portal/api/cari HTTP/1.1\r\nHost: gerbang\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{form}\r\n0\r\n\r\n",
                form.len(),
                form.len()
            ),
            RefusedBy::Gerbang,
        ),
    ];
    let ours = cases.iter().filter(|c| c.2 == RefusedBy::Gerbang).count();
    for (what, request, by) in cases {
        let source = if request.contains("/portal/") {
            "127.0.0.4"
        } else {
            "127.0.0.2"
        };
        let (bytes, closed) = exchange(gw.addr, source, request.as_bytes()).await;
        let answer = RawAnswer::parse(&bytes)
            .unwrap_or_else(|| panic!("{what}: no answer: {:?}", String::from_utf8_lossy(&bytes)));
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        assert!(
            closed,
            "{what}: the connection must be closed after the refusal"
        );
        assert!(
            answer.rest.is_empty(),
            "{what}: nothing after the refusal may be taken for another request: {:?}",
            String::from_utf8_lossy(&answer.rest)
        );
        if by == RefusedBy::Gerbang {
            assert_eq!(
                response_code(&answer.body).as_deref(),
                Some("30"),
                "{what}: {}",
                answer.body
            );
            assert_eq!(
                respon(&answer.body).as_deref(),
                Some("Format Permintaan HTTP Tidak Sah"),
                "{what}"
            );
            assert_eq!(answer.header("cache-control"), Some("no-store"), "{what}");
        }
    }
    assert_eq!(
        sim.requests().await,
        1,
        "no ambiguous request may reach the DWH"
    );
    assert_eq!(sim.portal_requests().await, 0, "nor its portal");
    requests_counted(&gw, "bad_framing", ours).await;
}

/// Trickles `body` one byte every 200 ms after `head`, as long as the connection takes it.
fn trickle(mut writer: tokio::net::tcp::OwnedWriteHalf, head: String, body: Vec<Vec<u8>>) {
    tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for piece in body {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(&piece).await.is_err() {
                return;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_refused_at_its_deadline_and_never_blamed_on_the_dwh() {
    const BODY_MS: u64 = 1_500;
    let (sim, gw, nik) = start(|o| GatewayOptions {
        status_mode: "rest",
        listen: "request_body_timeout_ms = 1500\n",
        ..o
    })
    .await;
    // A whole body would take 30 s at this pace.
    let body = format!("{}{}", call_nik(&nik, "rsud_01", PASSWORD), " ".repeat(80));
    let head = |fields: &str| format!("POST {API} HTTP/1.1\r\nHost: gerbang\r\n{fields}\r\n");
    let shapes = [
        (
            "Content-Length",
            head(&format!("Content-Length: {}\r\n", body.len())),
            body.bytes().map(|b| vec![b]).collect::<Vec<_>>(),
        ),
        (
            "chunked",
            head("Transfer-Encoding: chunked\r\n"),
            body.bytes()
                .map(|b| [&b"1\r\n"[..], &[b][..], &b"\r\n"[..]].concat())
                .collect(),
        ),
    ];
    for (what, head, pieces) in shapes {
        let stream = connect_from(gw.addr, "127.0.0.2", None).await;
        let (mut reader, writer) = stream.into_split();
        let sent = Instant::now();
        trickle(writer, head, pieces);
        let (bytes, closed) = read_to_close(&mut reader, Duration::from_secs(20)).await;
        let took = sent.elapsed();
        let answer =
            RawAnswer::parse(&bytes).unwrap_or_else(|| panic!("{what}: no answer after {took:?}"));
        eprintln!("{what}: trickled body refused after {took:?}");
        assert_eq!(answer.status, 408, "{what}: {}", answer.body);
        assert_eq!(response_code(&answer.body).as_deref(), Some("29"), "{what}");
        assert_eq!(
            respon(&answer.body).as_deref(),
            Some("Waktu Pengiriman Permintaan Habis")
        );
        assert!(
            closed,
            "{what}: the rest of the body is never read: the connection closes"
        );
        assert!(
            took >= Duration::from_millis(BODY_MS) && took < Duration::from_millis(BODY_MS + 4_000),
            "{what}: refused after {took:?}, the deadline is {BODY_MS} ms for the whole body"
        );
    }
    // The portal's login form, trickled the same way: its page says why, with 408.
    let form = format!(
        "user_id=portal_01&password={PASSWORD}&catatan={}",
        "x".repeat(80)
    );
    let stream = connect_from(gw.addr, "127.0.0.4", None).await;
    let (mut reader, writer) = stream.into_split();
    let sent = Instant::now();
    trickle(
        writer,
        format!(
            "POST /portal/masuk HTTP/1.1\r\nHost: gerbang\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            form.len()
        ),
        form.bytes().map(|b| vec![b]).collect(),
    );
    let (bytes, closed) = read_to_close(&mut reader, Duration::from_secs(20)).await;
    let took = sent.elapsed();
    let answer = RawAnswer::parse(&bytes).expect("the login page");
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert!(
        answer
            .body
            .contains("badan permintaan tidak terkirim utuh dalam 1500 ms"),
        "{}",
        answer.body
    );
    assert!(
        closed && took < Duration::from_millis(BODY_MS + 4_000),
        "after {took:?}"
    );
    assert_eq!(sim.requests().await, 0);
    // The client's slowness, counted as such: no DWH error for an alert to fire on.
    let m = requests_counted(&gw, "body_timeout", 3).await;
    for kind in ["unavailable", "timeout"] {
        assert_eq!(
            metric(
                &m,
                &format!("gerbang_upstream_errors_total{{kind=\"{kind}\"}}")
            ),
            0.0,
            "{m}"
        );
    }
    gw.proc.stderr_with(&["decision=\"body_timeout\""]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_are_cut_at_their_deadline_while_lookups_go_on() {
    const SLOW: usize = 500;
    const HEAD_MS: u64 = 2_000;
    let (_sim, gw, nik) = start(|o| GatewayOptions {
        listen: "request_head_timeout_ms = 2000\n",
        ..o
    })
    .await;
    let client = gw.client("127.0.0.2");
    let lookup = |client: reqwest::Client, url: String, body: String| async move {
        let asked = Instant::now();
        let (status, answer) = post(&client, &url, body).await;
        (asked, asked.elapsed(), status, answer)
    };
    let body = call_nik(&nik, "rsud_01", PASSWORD);
    // The User ID has logged in once (its argon2 check is behind it).
    let (_, _, status, _) = lookup(client.clone(), gw.url("CALL_NIK"), body.clone()).await;
    assert_eq!(status, 200);

    // A registered User ID keeps looking up while the attack lasts.
    let attack = Arc::new(AtomicBool::new(true));
    let lookups = tokio::spawn({
        let (attack, client, url, body) = (
            Arc::clone(&attack),
            client.clone(),
            gw.url("CALL_NIK"),
            body.clone(),
        );
        async move {
            let mut done = Vec::new();
            while attack.load(Ordering::Acquire) {
                done.push(lookup(client.clone(), url.clone(), body.clone()).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            done
        }
    });

    // 500 connections from five addresses, each sending its head one byte a second.
    let started = Instant::now();
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..SLOW {
        let (addr, source) = (gw.addr, format!("127.0.0.{}", 50 + i % 5));
        slow.spawn(async move {
            let mut s = connect_from(addr, &source, None).await;
            let opened = Instant::now();
            let head = format!("POST {API} HTTP/1.1\r\nHost: gerbang\r\nX-Pelan: ");
            let mut buf = [0u8; 64];
            for byte in head.bytes().cycle() {
                if s.write_all(&[byte]).await.is_err() {
                    return Some(opened.elapsed());
                }
                tokio::select! {
                    read = s.read(&mut buf) => return match read {
                        Ok(0) | Err(_) => Some(opened.elapsed()),
                        // Anything answered instead of a close is a failure.
                        Ok(_) => None,
                    },
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if opened.elapsed() > Duration::from_secs(15) {
                    return None;
                }
            }
            None
        });
    }
    let mut closed_after = Vec::with_capacity(SLOW);
    while let Some(joined) = slow.join_next().await {
        closed_after.push(joined.unwrap());
    }
    attack.store(false, Ordering::Release);
    let lookups = lookups.await.unwrap();
    let attack_lasted = started.elapsed();

    let never_closed = closed_after.iter().filter(|c| c.is_none()).count();
    assert_eq!(never_closed, 0, "slow connections still open after 15 s");
    let mut closed_after: Vec<Duration> = closed_after.into_iter().flatten().collect();
    closed_after.sort_unstable();
    let (first, median, last) = (
        closed_after[0],
        closed_after[SLOW / 2],
        closed_after[SLOW - 1],
    );
    eprintln!(
        "{SLOW} slowloris connections closed after {first:?} (first), {median:?} (median), {last:?} (last); head deadline {HEAD_MS} ms"
    );
    // Measured from the client's side, which starts its clock a little after the gateway
    // (500 connects on a loaded machine): a margin below, none needed above.
    assert!(
        first >= Duration::from_millis(HEAD_MS * 3 / 4),
        "a slow head was cut before its deadline: {first:?}"
    );
    assert!(
        last <= Duration::from_millis(HEAD_MS + 4_000),
        "a slow head outlived its deadline: {last:?}"
    );
    let slowest = lookups.iter().map(|l| l.1).max().unwrap_or_default();
    eprintln!(
        "{} lookups during the {attack_lasted:?} attack, the slowest {slowest:?}",
        lookups.len()
    );
    for (asked, took, status, answer) in &lookups {
        assert_eq!(
            *status,
            200,
            "lookup at {:?}: {answer}",
            asked.duration_since(started)
        );
        assert!(answer.contains(&format!("\"NIK\":{nik}")), "{answer}");
        assert!(
            *took < Duration::from_secs(2),
            "a lookup took {took:?} during the attack"
        );
    }
    assert!(
        lookups.len() >= 10,
        "only {} lookups answered",
        lookups.len()
    );
    // Each is counted; none writes a line of its own (a client could otherwise write the
    // gateway's log at will).
    let log = gw.proc.stderr();
    assert!(!log.contains("ERROR"), "{log}");
    let m = gw.metrics().await;
    assert!(
        metric(
            &m,
            "gerbang_connections_closed_total{reason=\"head_timeout\"}"
        ) >= SLOW as f64,
        "{m}"
    );
}

/// A fake DWH on a free port: for each request it reads the head, then hands it and the
/// connection to `answer`.
async fn fake_dwh<F, A>(answer: F) -> SocketAddr
where
    F: Fn(Vec<u8>, tokio::net::TcpStream) -> A + Send + Sync + 'static,
    A: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                answer(head, s).await;
            });
        }
    });
    addr
}

/// A portal application upstream whose page is 64 MiB, streamed as fast as it is taken.
async fn huge_page_upstream() -> SocketAddr {
    fake_dwh(|_, mut s| async move {
        let chunk = vec![b'a'; 64 * 1024];
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            1024 * chunk.len()
        );
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..1024 {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answer_is_closed_at_the_write_deadline() {
    const WRITE_MS: u64 = 1_500;
    let upstream = huge_page_upstream().await;
    let gw = Gateway::start(GatewayOptions {
        listen: "write_timeout_ms = 1500\n",
        ..GatewayOptions::new(upstream, agreements())
    });
    let cookie = portal_cookie(&gw).await;
    // A small receive buffer, never read: the answer stops moving once the buffers are full.
    let mut s = connect_from(gw.addr, "127.0.0.4", Some(4096)).await;
    s.write_all(
        format!("GET /portal/ HTTP/1.1\r\nHost: gerbang\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let took = until_metric(
        &gw,
        "gerbang_connections_closed_total{reason=\"write_timeout\"}",
        1.0,
        Duration::from_secs(20),
    )
    .await
    .expect("the connection of a client that does not read is never closed");
    eprintln!(
        "a client that did not read was closed after {took:?} (write deadline {WRITE_MS} ms)"
    );
    assert!(
        took >= Duration::from_millis(WRITE_MS),
        "closed after {took:?}"
    );
    assert!(
        took < Duration::from_millis(WRITE_MS + 6_000),
        "closed after {took:?}"
    );
    let (received, closed) = read_to_close(&mut s, Duration::from_secs(20)).await;
    assert!(closed);
    assert!(
        received.len() < 64 << 20,
        "the page was cut: {} bytes of it arrived",
        received.len()
    );
    let m = gw.metrics().await;
    assert_eq!(metric(&m, "gerbang_connections_open"), 0.0, "{m}");
    let log = gw.proc.stderr();
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_finishes_is_cut_at_its_deadline() {
    const TLS_MS: u64 = 1_500;
    let (_sim, gw, nik) = start(|o| GatewayOptions {
        tls: true,
        listen: "tls_handshake_timeout_ms = 1500\n",
        ..o
    })
    .await;
    // Nothing at all, then the first bytes of a ClientHello and nothing more.
    for first in [&b""[..], &b"\x16\x03\x01\x02\x00\x01"[..]] {
        let mut s = connect_from(gw.addr, "127.0.0.2", None).await;
        let opened = Instant::now();
        s.write_all(first).await.unwrap();
        let (_, closed) = read_to_close(&mut s, Duration::from_secs(10)).await;
        let took = opened.elapsed();
        eprintln!(
            "TLS handshake ({} bytes sent) cut after {took:?}",
            first.len()
        );
        assert!(closed, "a stalled TLS handshake was never cut");
        assert!(
            took >= Duration::from_millis(TLS_MS - 250)
                && took < Duration::from_millis(TLS_MS + 4_000),
            "cut after {took:?}, the deadline is {TLS_MS} ms"
        );
    }
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "gerbang_connections_closed_total{reason=\"tls_handshake_timeout\"}"
        ),
        2.0,
        "{m}"
    );
    // A proper client is served over the same listener.
    let (status, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connections_end_after_their_requests_and_idle_time() {
    let (sim, gw, nik) = start(|o| GatewayOptions {
        listen: "max_requests_per_connection = 3\nkeepalive_timeout_secs = 1\n",
        ..o
    })
    .await;
    let body = call_nik(&nik, "rsud_01", PASSWORD);
    let request = format!(
        "POST {API} HTTP/1.1\r\nHost: gerbang\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = connect_from(gw.addr, "127.0.0.2", None).await;
    for i in 1..=3 {
        s.write_all(request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut s)
            .await
            .unwrap_or_else(|| panic!("answer {i}"));
        assert_eq!(answer.status, 200, "request {i}: {}", answer.body);
    }
    // The third request was the connection's last.
    let _ = s.write_all(request.as_bytes()).await;
    let (rest, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(
        closed && rest.is_empty(),
        "a fourth request was served: {rest:?}"
    );
    assert_eq!(sim.requests().await, 3);

    // An idle kept-alive connection ends after keepalive_timeout_secs.
    let mut s = connect_from(gw.addr, "127.0.0.2", None).await;
    s.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut s).await.map(|a| a.status), Some(200));
    let idle = Instant::now();
    let (rest, closed) = read_to_close(&mut s, Duration::from_secs(10)).await;
    let took = idle.elapsed();
    eprintln!("idle kept-alive connection closed after {took:?} (keepalive_timeout_secs = 1)");
    assert!(closed && rest.is_empty());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_closed_at_once_and_counted() {
    let (sim, gw, nik) = start(|o| GatewayOptions {
        listen: "max_connections = 12\nmax_connections_per_address = 5\nrequest_head_timeout_ms = 60000\n",
        ..o
    })
    .await;
    let open = "gerbang_connections_open";
    let until_open = |n: f64| {
        let gw = &gw;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let now = metric(&gw.metrics().await, open);
                if now == n {
                    return;
                }
                assert!(Instant::now() < deadline, "{now} connections open, not {n}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Idle connections (their head deadline is longer than the test).
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from(gw.addr, "127.0.0.60", None).await);
    }
    until_open(5.0).await;
    // One more from the same address is closed at once, before anything is read.
    let mut sixth = connect_from(gw.addr, "127.0.0.60", None).await;
    let opened = Instant::now();
    let (answered, closed) = read_to_close(&mut sixth, Duration::from_secs(5)).await;
    assert!(
        closed && answered.is_empty(),
        "over the per-address cap: {answered:?}"
    );
    assert!(
        opened.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        opened.elapsed()
    );
    // Other addresses are served.
    assert_eq!(raw_lookup(gw.addr, "127.0.0.2", &nik).await, Some(200));
    until_open(5.0).await;

    // Up to the total cap, from other addresses; then nobody else gets in.
    let mut more = Vec::new();
    for source in ["127.0.0.61"; 5].into_iter().chain(["127.0.0.62"; 2]) {
        more.push(connect_from(gw.addr, source, None).await);
    }
    until_open(12.0).await;
    assert_eq!(raw_lookup(gw.addr, "127.0.0.2", &nik).await, None);
    // Places are given back when connections close.
    drop(held);
    until_open(7.0).await;
    assert_eq!(raw_lookup(gw.addr, "127.0.0.2", &nik).await, Some(200));

    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "gerbang_connections_refused_total{reason=\"per_address\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "gerbang_connections_refused_total{reason=\"total\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(sim.requests().await, 2);
    drop(more);
}

/// A DWH that answers every request, lookup or portal page, one byte every 100 ms: a valid
/// answer that would take half a minute to arrive.
async fn trickling_dwh(nik: String) -> SocketAddr {
    fake_dwh(move |head, mut s| {
        let portal = head.starts_with(b"GET /portal/");
        let body = if portal {
            format!("<html><body>{}</body></html>", "halaman ".repeat(40))
        } else {
            let record = format!(r#"{{"NIK":{nik},"NAMA_LGKP":"{}"}}"#, "A".repeat(200));
            format!(
                r#"{{"content":[{record}],"lastPage":true,"numberOfElements":1,"sort":null,"totalElements":1,"firstPage":true,"number":0,"size":1}}"#
            )
        };
        let content_type = if portal { "text/html" } else { "application/json" };
        async move {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for byte in body.bytes() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if s.write_all(&[byte]).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dwh_trickling_its_answer_is_cut_off_at_upstream_timeout() {
    const UPSTREAM_MS: u64 = 1_500;
    let nik = "3201011501900001".to_string();
    let dwh = trickling_dwh(nik.clone()).await;
    let gw = Gateway::start(GatewayOptions {
        timeout_ms: UPSTREAM_MS,
        ..GatewayOptions::new(dwh, agreements())
    });
    // A lookup: refused as the DWH not responding, its hit given back.
    let asked = Instant::now();
    let (status, answer) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    let took = asked.elapsed();
    eprintln!(
        "a trickled DWH answer was cut off after {took:?} (upstream.timeout_ms = {UPSTREAM_MS})"
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Layanan DWH Tidak Merespons"),
        "{answer}"
    );
    assert_eq!(
        quota_limiter(&answer),
        Some(100_000),
        "the hit is given back: {answer}"
    );
    assert!(
        took >= Duration::from_millis(UPSTREAM_MS)
            && took < Duration::from_millis(UPSTREAM_MS + 4_000),
        "answered after {took:?}"
    );
    // A portal page: cut off (its header has already gone; the connection closes early).
    let cookie = portal_cookie(&gw).await;
    let mut s = connect_from(gw.addr, "127.0.0.4", None).await;
    s.write_all(
        format!("GET /portal/ HTTP/1.1\r\nHost: gerbang\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let asked = Instant::now();
    let (page, closed) = read_to_close(&mut s, Duration::from_secs(20)).await;
    let took = asked.elapsed();
    eprintln!("a trickled DWH portal page was cut off after {took:?}");
    assert!(closed, "the page's connection was never closed");
    assert!(
        took < Duration::from_millis(2 * UPSTREAM_MS + 4_000),
        "cut after {took:?}"
    );
    // The DWH's page ends `</body></html>`; only its first bytes arrived (the gateway's
    // refusal page may follow them).
    assert!(
        !String::from_utf8_lossy(&page).contains("</body></html>"),
        "the whole page arrived: {}",
        String::from_utf8_lossy(&page)
    );
}

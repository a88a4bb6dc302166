//! The sidecar's server and the gateway's client together, in one process: TCP and Unix
//! socket, health and metrics, reload on a file change, an invalid edit kept out, and the
//! client's fail-closed errors against a stalled and an absent sidecar.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gerbang_core::{SamReason, SidecarAddress, SystemClock};
use gerbang_sam::{
    Biometric, ReaderKey, SamClient, SamUnavailable, Settings, Sidecar, SignInput, ValidateRequest,
    body_sha256_hex, new_nonce, sign,
};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZRqpb8Z+dLwDBTqW3nkCw0ZqXYjz6Rqi4AbH5l3eXM";
const PATH: &str = "/dukcapil/get_json/UJI/CALL_NIK";
const BODY: &[u8] = br#"{"nik":"3201010101900001","user_id":"uji_01","password":"x"}"#;

fn pks(sam: &ReaderKey, status: &str) -> String {
    format!(
        "nomor = \"1/UJI\"\npengguna = \"uji\"\nnama_pengguna = \"Lembaga Uji\"\njenis_pengguna = \"opd\"\ntingkat = \"pusat\"\ntujuan = \"uji\"\nelemen_data = [\"NIK\"]\nmetode_akses = [\"card_reader\"]\nkunci_akses = [\"NIK\"]\nmulai = 2025-01-01\nsampai = 2099-12-31\nstatus = \"aktif\"\n\n[[user]]\nid = \"uji_01\"\npassword_hash = \"{HASH}\"\nip_lan = [\"127.0.0.2\"]\nkuota_harian = 10\nstatus = \"aktif\"\n\n{}",
        sam.pks_block(status)
    )
}

fn request(key: &ReaderKey) -> ValidateRequest {
    let nonce = new_nonce().unwrap();
    let sam = sign(
        &key.signing,
        &SignInput {
            sam_id: &key.sam_id,
            method: "POST",
            path: PATH,
            body: BODY,
            user_id: "uji_01",
            biometric: Biometric::Match,
            timestamp: chrono::Utc::now().timestamp(),
            nonce: &nonce,
        },
    );
    ValidateRequest {
        method: "POST".into(),
        path: PATH.into(),
        body_sha256: body_sha256_hex(BODY),
        claimed_body_sha256: None,
        user_id: "uji_01".into(),
        data_lookup: true,
        sam,
    }
}

/// Validates fresh requests until one is valid (a request signed in the second the
/// sidecar started is refused by design), with a deadline.
async fn first_valid(client: &SamClient, key: &ReaderKey) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let v = client.validate(&request(key)).await.unwrap();
        if v.is_valid() {
            return;
        }
        assert_eq!(v.reason, Some(SamReason::StaleTimestamp), "{v:?}");
        assert!(Instant::now() < deadline, "never valid: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Running {
    addr: std::net::SocketAddr,
    state: Arc<gerbang_sam::State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(dir: tempfile::TempDir, unix: Option<&Path>) -> Running {
    let mut settings = Settings::new(dir.path().join("pks"));
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.unix_socket = unix.map(Path::to_path_buf);
    let sidecar = Sidecar::bind(&settings, Arc::new(SystemClock))
        .await
        .unwrap();
    let addr = sidecar.local_addr().unwrap();
    let state = sidecar.state();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(sidecar.serve(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        state,
        stop: Some(tx),
        _dir: dir,
    }
}

fn pks_dir_with(key: &ReaderKey, status: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pks")).unwrap();
    std::fs::write(dir.path().join("pks/uji.toml"), pks(key, status)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validates_over_tcp_and_unix_with_health_and_metrics() {
    let key = ReaderKey::generate("SAM-UJI-1").unwrap();
    let dir = pks_dir_with(&key, "aktif");
    let socket = dir.path().join("sam.sock");
    let running = start(dir, Some(&socket)).await;
    let tcp = SamClient::new(
        &SidecarAddress::Tcp(running.addr),
        Duration::from_millis(500),
    );
    let unix = SamClient::new(
        &SidecarAddress::Unix(socket.clone()),
        Duration::from_millis(500),
    );
    tcp.health().await.unwrap();
    unix.health().await.unwrap();
    first_valid(&tcp, &key).await;
    // The same request twice over the two transports: one cache.
    let req = request(&key);
    assert!(unix.validate(&req).await.unwrap().is_valid());
    let replay = tcp.validate(&req).await.unwrap();
    assert_eq!(replay.reason, Some(SamReason::ReplayedNonce));

    let metrics = reqwest::get(format!("http://{}/metrics", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gerbang_sam_validations_total{result=\"replayed_nonce\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("gerbang_sam_registry_sams 1"), "{metrics}");
    assert!(
        metrics.contains("gerbang_sam_validation_duration_seconds_count"),
        "{metrics}"
    );
    // A body that is not a validation request is an HTTP error, never a verdict.
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/validate", running.addr))
        .body("{\"valid\":true}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_in_the_pks_file_is_seen_within_a_second_and_bad_edits_are_kept_out() {
    let key = ReaderKey::generate("SAM-UJI-2").unwrap();
    let dir = pks_dir_with(&key, "aktif");
    let file = dir.path().join("pks/uji.toml");
    let running = start(dir, None).await;
    let client = SamClient::new(
        &SidecarAddress::Tcp(running.addr),
        Duration::from_millis(500),
    );
    first_valid(&client, &key).await;

    // A broken edit: the registry in force stays, the error is counted.
    std::fs::write(
        &file,
        pks(&key, "aktif").replace(
            "status = \"aktif\"\n\n[[user]]",
            "status = \"hidup\"\n\n[[user]]",
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while running
        .state
        .metrics()
        .render(0, 0)
        .unwrap()
        .contains("gerbang_sam_reloads_total{result=\"error\"} 0")
    {
        assert!(Instant::now() < deadline, "the broken edit was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(client.validate(&request(&key)).await.unwrap().is_valid());

    // Deactivation: refused within a second of the write.
    std::fs::write(&file, pks(&key, "nonaktif")).unwrap();
    let written = Instant::now();
    loop {
        let v = client.validate(&request(&key)).await.unwrap();
        if v.reason == Some(SamReason::SamInactive) {
            break;
        }
        assert!(v.is_valid(), "{v:?}");
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "still valid after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(written.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_absent_sidecar_is_an_error_never_a_verdict() {
    let key = ReaderKey::generate("SAM-UJI-3").unwrap();
    // Accepts connections (the kernel does) and never answers.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = SamClient::new(
        &SidecarAddress::Tcp(stalled.local_addr().unwrap()),
        Duration::from_millis(100),
    );
    let started = Instant::now();
    let err = client.validate(&request(&key)).await.unwrap_err();
    assert_eq!(err, SamUnavailable::Timeout(Duration::from_millis(100)));
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    let absent = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = SamClient::new(&SidecarAddress::Tcp(absent), Duration::from_millis(200));
    match client.validate(&request(&key)).await {
        Err(SamUnavailable::Failed(why)) => assert!(why.contains("onnect"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let client = SamClient::new(
        &SidecarAddress::Unix("/nonexistent/gerbang-sam.sock".into()),
        Duration::from_millis(200),
    );
    assert!(matches!(
        client.validate(&request(&key)).await,
        Err(SamUnavailable::Failed(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_question_gets_a_verdict_not_a_transport_error() {
    let key = ReaderKey::generate("SAM-UJI-4").unwrap();
    let running = start(pks_dir_with(&key, "aktif"), None).await;
    let client = SamClient::new(
        &SidecarAddress::Tcp(running.addr),
        Duration::from_millis(2_000),
    );
    first_valid(&client, &key).await;
    // Over the sidecar's 16 KiB, and over the longest path, under it: both a verdict.
    for pad in [20_000, gerbang_sam::MAX_READER_PATH] {
        let mut req = request(&key);
        req.path = format!("{PATH}?pad={}", "a".repeat(pad));
        let verdict = client
            .validate(&req)
            .await
            .expect("a verdict, not an error");
        assert_eq!(
            verdict.reason,
            Some(SamReason::MalformedHeaders),
            "{pad}: {verdict:?}"
        );
    }
    assert!(client.validate(&request(&key)).await.unwrap().is_valid());
    let metrics = running.state.metrics().render(0, 0).unwrap();
    assert!(
        metrics.contains("gerbang_sam_bad_requests_total 0")
            && metrics.contains("gerbang_sam_validations_total{result=\"malformed_headers\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_cut_off() {
    use std::io::{Read as _, Write as _};
    let key = ReaderKey::generate("SAM-UJI-5").unwrap();
    let running = start(pks_dir_with(&key, "aktif"), None).await;
    let addr = running.addr;
    // A client that announces a body and sends one byte of it.
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
            .write_all(b"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            .unwrap();
        // The status line, whether or not the connection is closed after it.
        let mut answer = Vec::new();
        let mut buf = [0u8; 512];
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&answer).to_string()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

//! The card-reader channel end to end: real `dwh-sim`, `gerbang-sam` and `gerbang serve`
//! processes, readers signing as docs/sam.md says, from the User ID's registered address.
//! Every way a reader request can be wrong is refused with its own RESPON; the sidecar
//! killed, stalled or restarted; a SAM deactivated by editing its PKS file.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use gerbang_e2e::*;
use gerbang_sam::{Biometric, ReaderKey};

/// The test readers: SAM-A (active) and SAM-N (deactivated) of Pengguna `kab`; SAM-K of
/// Pengguna `kota`; SAM-L of `lama`, whose PKS ended; SAM-X registered nowhere.
struct Readers {
    a: ReaderKey,
    n: ReaderKey,
    k: ReaderKey,
    l: ReaderKey,
    x: ReaderKey,
}

impl Readers {
    fn new() -> Self {
        let key = |id| ReaderKey::generate(id).unwrap();
        Self {
            a: key("SAM-A"),
            n: key("SAM-N"),
            k: key("SAM-K"),
            l: key("SAM-L"),
            x: key("SAM-X"),
        }
    }

    /// Pengguna `kab` has two agreements: `kab.toml` grants the card reader (kab_01 from
    /// 127.0.0.2), `kab-ws.toml` the web service only (kab_ws from 127.0.0.3).
    fn agreements(&self) -> Vec<TestPks> {
        let reader = r#"["card_reader"]"#;
        let kab = TestPks {
            metode: reader,
            sams: format!(
                "{}\n{}",
                self.a.pks_block("aktif"),
                self.n.pks_block("nonaktif")
            ),
            ..TestPks::new(
                "kab.toml",
                "1/KAB/E2E",
                vec![TestUser::aktif("kab_01", "127.0.0.2")],
            )
        };
        let kab_ws = TestPks {
            pengguna: "kab",
            ..TestPks::new(
                "kab-ws.toml",
                "2/KAB/E2E",
                vec![TestUser::aktif("kab_ws", "127.0.0.3")],
            )
        };
        let kota = TestPks {
            metode: reader,
            sams: self.k.pks_block("aktif"),
            ..TestPks::new(
                "kota.toml",
                "3/KOTA/E2E",
                vec![TestUser::aktif("kota_01", "127.0.0.4")],
            )
        };
        let lama = TestPks {
            metode: reader,
            valid: (800, -400),
            sams: self.l.pks_block("aktif"),
            ..TestPks::new(
                "lama.toml",
                "4/LAMA/E2E",
                vec![TestUser::aktif("lama_01", "127.0.0.5")],
            )
        };
        vec![kab, kab_ws, kota, lama]
    }
}

/// dwh-sim, a gateway whose `[sam]` points at a reserved port, and the sidecar on it,
/// reading the gateway's own PKS directory.
struct Stack {
    sim: Sim,
    gw: Gateway,
    sam: SamSidecar,
}

fn reserved_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

async fn stack(readers: &Readers) -> Stack {
    let sim = Sim::start(1_000);
    let sam_addr = reserved_addr();
    let gw = Gateway::start(GatewayOptions {
        sam: Some(sam_addr),
        ..GatewayOptions::new(sim.addr, readers.agreements())
    });
    let sam = SamSidecar::start_for(&gw, sam_addr);
    sam.wait_fresh().await;
    Stack { sim, gw, sam }
}

const PREFIX: &str = "Validasi Card Reader Gagal: ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_reader_lookup_succeeds_and_every_fault_has_its_own_reason() {
    let r = Readers::new();
    let s = stack(&r).await;
    let niks = s.sim.sample("alive", 2).await;
    let (nik, other_nik) = (&niks[0], &niks[1]);

    // A valid signed lookup gets the PKS's elements.
    let valid = ReaderCall::new(&r.a, "SAM-A", "kab_01", nik);
    let body = valid.send(&s.gw, "127.0.0.2").await;
    assert_eq!(respon(&body), None, "{body}");
    assert!(body.contains(&format!("\"NIK\":{nik}")), "{body}");
    assert_eq!(s.sim.requests().await, 1);

    let mut altered = ReaderCall::new(&r.a, "SAM-A", "kab_01", nik);
    altered.body = call_nik(other_nik, "kab_01", PASSWORD);
    let mut unsigned_alteration = ReaderCall::new(&r.a, "SAM-A", "kab_01", nik);
    unsigned_alteration.body = call_nik(other_nik, "kab_01", PASSWORD);
    unsigned_alteration.headers.pop();
    // (what, request, source address, RESPON after the prefix)
    let cases: Vec<(&str, ReaderCall, &str, &str)> = vec![
        (
            "bad signature",
            ReaderCall::new(&r.k, "SAM-A", "kab_01", nik),
            "127.0.0.2",
            "Tanda Tangan SAM Tidak Sah",
        ),
        (
            "altered body",
            altered,
            "127.0.0.2",
            "Isi Permintaan Telah Diubah",
        ),
        (
            "altered body, no Content-Digest",
            unsigned_alteration,
            "127.0.0.2",
            "Tanda Tangan SAM Tidak Sah",
        ),
        (
            "stale timestamp",
            ReaderCall::signed(&r.a, "SAM-A", "kab_01", nik, 120, Biometric::Match),
            "127.0.0.2",
            "Waktu Permintaan di Luar Batas",
        ),
        (
            "replayed nonce",
            valid,
            "127.0.0.2",
            "Permintaan Ulang Terdeteksi",
        ),
        (
            "unknown SAM",
            ReaderCall::new(&r.x, "SAM-X", "kab_01", nik),
            "127.0.0.2",
            "SAM Tidak Terdaftar",
        ),
        (
            "deactivated SAM",
            ReaderCall::new(&r.n, "SAM-N", "kab_01", nik),
            "127.0.0.2",
            "SAM Tidak Aktif",
        ),
        (
            "SAM of another Pengguna",
            ReaderCall::new(&r.k, "SAM-K", "kab_01", nik),
            "127.0.0.2",
            "SAM Milik Lembaga Lain",
        ),
        (
            "PKS ended",
            ReaderCall::new(&r.l, "SAM-L", "lama_01", nik),
            "127.0.0.5",
            "PKS di Luar Masa Berlaku",
        ),
        (
            "channel not in the PKS",
            ReaderCall::new(&r.a, "SAM-A", "kab_ws", nik),
            "127.0.0.3",
            "Card Reader Tidak Ada di PKS",
        ),
        (
            "biometric not matched",
            ReaderCall::signed(&r.a, "SAM-A", "kab_01", nik, 0, Biometric::NoMatch),
            "127.0.0.2",
            "Sidik Jari Tidak Cocok",
        ),
    ];
    for (what, call, source, want) in &cases {
        let body = call.send(&s.gw, source).await;
        assert_eq!(
            respon(&body).as_deref(),
            Some(format!("{PREFIX}{want}").as_str()),
            "{what}: {body}"
        );
        assert_eq!(response_code(&body).as_deref(), Some("23"), "{what}");
        let desc = answer_json(&body)["content"][0]["RESPONSE_DESC"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!desc.is_empty(), "{what}: no detail: {body}");
    }
    // None of them reached the DWH, and the sidecar counted each reason.
    assert_eq!(s.sim.requests().await, 1);
    let metrics = s.sam.metrics().await;
    for (result, n) in [
        ("valid", 1),
        ("bad_signature", 2),
        ("body_altered", 1),
        ("stale_timestamp", 1),
        ("replayed_nonce", 1),
        ("unknown_sam", 1),
        ("sam_inactive", 1),
        ("sam_other_pengguna", 1),
        ("pks_outside_validity", 1),
        ("channel_not_granted", 1),
        ("biometric_not_matched", 1),
    ] {
        let line = format!("gerbang_sam_validations_total{{result=\"{result}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    // A web-service request of the same User ID is not a reader request: kab_01's PKS
    // grants the card reader only.
    let (_, body) = post(
        &s.gw.client("127.0.0.2"),
        &s.gw.url("CALL_NIK"),
        call_nik(nik, "kab_01", PASSWORD),
    )
    .await;
    assert_eq!(
        respon(&body).as_deref(),
        Some("Akses Tidak Diizinkan oleh PKS"),
        "{body}"
    );
    // Wrong password with a valid signature: authentication comes first.
    let mut wrong = ReaderCall::new(&r.a, "SAM-A", "kab_01", nik);
    wrong.body = call_nik(nik, "kab_01", "salah");
    let body = wrong.send(&s.gw, "127.0.0.2").await;
    assert_eq!(respon(&body).as_deref(), Some("Login Gagal"), "{body}");
}

/// A path far longer than any reader sends is refused for what it is, by the gateway,
/// before the sidecar is asked: not as "the sidecar is unavailable" (a false alert and the
/// wrong reason), which a question over the sidecar's 16 KiB limit used to give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_reader_path_is_refused_with_its_reason_and_no_sidecar_alert() {
    let r = Readers::new();
    let s = stack(&r).await;
    let nik = s.sim.sample("alive", 1).await.remove(0);
    for pad in [3_000, 20_000] {
        let path = format!("{READER_PATH}?pad={}", "a".repeat(pad));
        let call = ReaderCall::at(&r.a, "SAM-A", "kab_01", &nik, 0, Biometric::Match, &path);
        let body = call.send(&s.gw, "127.0.0.2").await;
        assert_eq!(response_code(&body).as_deref(), Some("07"), "{body}");
        assert_eq!(
            respon(&body).as_deref(),
            Some("Permintaan Terlalu Besar"),
            "{body}"
        );
    }
    // The sidecar was never asked, so it counted nothing; the gateway raised no alert.
    let metrics = s.sam.metrics().await;
    assert!(
        metrics
            .lines()
            .filter(|l| l.starts_with("gerbang_sam_validations_total{"))
            .all(|l| l.ends_with(" 0"))
            && metrics.contains("gerbang_sam_bad_requests_total 0"),
        "{metrics}"
    );
    let gw_metrics = s.gw.metrics().await;
    assert!(
        gw_metrics
            .lines()
            .filter(|l| l.starts_with(r#"gerbang_sam_validations_total{result="unavailable"}"#))
            .all(|l| l.ends_with(" 0")),
        "{gw_metrics}"
    );
    assert!(
        !s.gw
            .proc
            .stderr()
            .contains("card-reader requests are refused until it does")
    );
    // A normal request right after is served.
    let body = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik)
        .send(&s.gw, "127.0.0.2")
        .await;
    assert_eq!(respon(&body), None, "{body}");
    assert_eq!(s.sim.requests().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sidecar_refuses_reader_requests_until_it_is_back() {
    let r = Readers::new();
    let mut s = stack(&r).await;
    let nik = s.sim.sample("alive", 1).await.remove(0);
    let body = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik)
        .send(&s.gw, "127.0.0.2")
        .await;
    assert_eq!(respon(&body), None, "{body}");

    s.sam.proc.kill();
    let body = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik)
        .send(&s.gw, "127.0.0.2")
        .await;
    assert_eq!(
        respon(&body).as_deref(),
        Some("Layanan Validasi Card Reader Tidak Tersedia"),
        "{body}"
    );
    assert_eq!(response_code(&body).as_deref(), Some("23"));
    s.gw.proc
        .stderr_with(&["card-reader requests are refused until it does"])
        .await;
    assert_eq!(s.sim.requests().await, 1);

    s.sam.restart();
    s.sam.wait_fresh().await;
    let body = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik)
        .send(&s.gw, "127.0.0.2")
        .await;
    assert_eq!(respon(&body), None, "{body}");
    assert_eq!(s.sim.requests().await, 2);
}

/// One gateway instance with its own sidecar, over the shared dwh-sim; `sidecar_args` name
/// the replay cache (none: the embedded one).
async fn instance(sim: &Sim, readers: &Readers, sidecar_args: &[&str]) -> (Gateway, SamSidecar) {
    let sam_addr = reserved_addr();
    let gw = Gateway::start(GatewayOptions {
        sam: Some(sam_addr),
        ..GatewayOptions::new(sim.addr, readers.agreements())
    });
    let sam = SamSidecar::start_for_with_args(&gw, sam_addr, sidecar_args);
    sam.wait_fresh().await;
    (gw, sam)
}

/// Two instances (each a gateway with its own sidecar) sharing the replay cache through one
/// Redis, as behind a balancer: a reader request accepted through one is a replay through
/// the other. With Redis killed every reader request is refused (fail closed), logged and
/// counted, and nothing reaches the DWH; when Redis is back, requests are accepted again.
/// (With each sidecar's embedded cache the replay through B is accepted: run without
/// `--redis-url` to see this test fail.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_replayed_to_another_instance_is_refused_and_a_dead_redis_refuses_all() {
    let r = Readers::new();
    let mut redis = gerbang_e2e::redis::Redis::start();
    let url = redis.url();
    // 1 s per Redis call, so a busy test machine does not pass for an outage.
    let shared = ["--redis-url", url.as_str(), "--redis-timeout-ms", "1000"];
    let sim = Sim::start(1_000);
    let (gw_a, sam_a) = instance(&sim, &r, &shared).await;
    let (gw_b, sam_b) = instance(&sim, &r, &shared).await;
    sam_a
        .proc
        .stderr_with(&["replay.cache=redis 127.0.0.1:"])
        .await;
    let nik = sim.sample("alive", 1).await.remove(0);

    let call = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik);
    let body = call.send(&gw_a, "127.0.0.2").await;
    assert_eq!(respon(&body), None, "{body}");
    let body = call.send(&gw_b, "127.0.0.2").await;
    assert_eq!(
        respon(&body).as_deref(),
        Some("Validasi Card Reader Gagal: Permintaan Ulang Terdeteksi"),
        "replayed through the other instance: {body}"
    );
    // Both ways round.
    let call = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik);
    assert_eq!(respon(&call.send(&gw_b, "127.0.0.2").await), None);
    let body = call.send(&gw_a, "127.0.0.2").await;
    assert!(
        respon(&body).is_some_and(|t| t.ends_with("Permintaan Ulang Terdeteksi")),
        "{body}"
    );
    assert_eq!(sim.requests().await, 2);
    let key_count: usize = ::redis::cmd("DBSIZE")
        .query(&mut redis.connection())
        .unwrap();
    assert_eq!(key_count, 2, "one key per nonce");

    redis.kill();
    for gw in [&gw_a, &gw_b] {
        let body = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik)
            .send(gw, "127.0.0.2")
            .await;
        assert_eq!(
            respon(&body).as_deref(),
            Some("Layanan Validasi Card Reader Tidak Tersedia"),
            "{body}"
        );
    }
    assert_eq!(sim.requests().await, 2, "nothing reached the DWH");
    for sam in [&sam_a, &sam_b] {
        sam.proc
            .stderr_with(&[
                "the replay cache (Redis) is unreachable: every card-reader request is refused",
            ])
            .await;
        let m = sam.metrics().await;
        assert!(
            metric(&m, "gerbang_sam_replay_store_errors_total") >= 1.0,
            "{m}"
        );
    }
    gw_a.proc
        .stderr_with(&["the replay cache (Redis) did not answer"])
        .await;

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik)
            .send(&gw_a, "127.0.0.2")
            .await;
        if respon(&body).is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused with Redis back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sam_a
        .proc
        .stderr_with(&["the replay cache (Redis) answers again"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sidecar_is_cut_off_at_the_timeout() {
    let r = Readers::new();
    let sim = Sim::start(1_000);
    // Accepts connections (the kernel does) and never answers.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw = Gateway::start(GatewayOptions {
        sam: Some(stalled.local_addr().unwrap()),
        sam_timeout_ms: 200,
        ..GatewayOptions::new(sim.addr, r.agreements())
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    // Warm the password cache, so the timing below is the sidecar's.
    let (_, body) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "kab_01", PASSWORD),
    )
    .await;
    assert_eq!(
        respon(&body).as_deref(),
        Some("Akses Tidak Diizinkan oleh PKS")
    );
    for _ in 0..2 {
        let call = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik);
        let started = Instant::now();
        let body = call.send(&gw, "127.0.0.2").await;
        let took = started.elapsed();
        assert_eq!(
            respon(&body).as_deref(),
            Some("Layanan Validasi Card Reader Tidak Merespons"),
            "{body}"
        );
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(1_000),
            "answered after {took:?}"
        );
    }
    assert_eq!(sim.requests().await, 0);
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_a_sam_in_its_pks_file_takes_effect_within_a_second() {
    let r = Readers::new();
    let mut s = stack(&r).await;
    let nik = s.sim.sample("alive", 1).await.remove(0);
    let body = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik)
        .send(&s.gw, "127.0.0.2")
        .await;
    assert_eq!(respon(&body), None, "{body}");

    // Ditjen sets the SAM to "nonaktif" (art. 45 e); nothing is restarted or signalled.
    let path = s.gw.pks_path("kab.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let active = r.a.pks_block("aktif");
    assert!(text.contains(&active));
    std::fs::write(&path, text.replace(&active, &r.a.pks_block("nonaktif"))).unwrap();
    let written = Instant::now();
    let refused_after = loop {
        let body = ReaderCall::new(&r.a, "SAM-A", "kab_01", &nik)
            .send(&s.gw, "127.0.0.2")
            .await;
        match respon(&body) {
            None => {}
            Some(text) if text == format!("{PREFIX}SAM Tidak Aktif") => break written.elapsed(),
            Some(other) => panic!("unexpected refusal {other}: {body}"),
        }
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "the SAM is still accepted 1 s after the edit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refused_after < Duration::from_secs(1), "{refused_after:?}");
    eprintln!("deactivation in force after {refused_after:?}");
    assert!(s.gw.proc.child.try_wait().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_and_the_reader_simulator_as_an_operator_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("reader.key");
    let out = Command::new(bin("gerbang"))
        .args(["sam", "keygen", "--id", "SAM-CLI-1", "--out"])
        .arg(&key_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let block = String::from_utf8(out.stdout).unwrap();
    assert!(
        block.starts_with("[[sam]]\nid = \"SAM-CLI-1\"\npublic_key = \"ed25519:"),
        "{block}"
    );
    // The PKS gets the public part only.
    let key = ReaderKey::load(&key_path).unwrap();
    assert_eq!(block, key.pks_block("aktif"));
    let again = Command::new(bin("gerbang"))
        .args(["sam", "keygen", "--id", "SAM-CLI-1", "--out"])
        .arg(&key_path)
        .output()
        .unwrap();
    assert!(!again.status.success(), "an existing key file was replaced");

    let sim = Sim::start(1_000);
    let sam_addr = reserved_addr();
    let pks = TestPks {
        metode: r#"["card_reader"]"#,
        sams: block,
        ..TestPks::new(
            "cli.toml",
            "5/CLI/E2E",
            vec![TestUser::aktif("cli_01", "127.0.0.6")],
        )
    };
    let gw = Gateway::start(GatewayOptions {
        sam: Some(sam_addr),
        ..GatewayOptions::new(sim.addr, vec![pks])
    });
    let sam = SamSidecar::start(&gw.pks_dir(), sam_addr);
    sam.wait_fresh().await;
    let nik = sim.sample("alive", 1).await.remove(0);
    let reader = |extra: &[&str]| {
        let mut cmd = Command::new(bin("gerbang"));
        cmd.args(["reader", "lookup", "--gateway"])
            .arg(format!("http://{}", gw.addr))
            .arg("--key")
            .arg(&key_path)
            .args(["--user", "cli_01", "--password", PASSWORD, "--nik", &nik])
            .args(["--source", "127.0.0.6"])
            .args(extra);
        cmd.output().unwrap()
    };
    let first = reader(&[]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr).to_string();
    assert_eq!(first.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("\"NIK\":{nik}")), "{stdout}");
    // Sent again with the nonce and timestamp it printed: a replay.
    let replay_args = stderr
        .split("to replay it: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let args: Vec<&str> = replay_args.iter().map(String::as_str).collect();
    let replay = reader(&args);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(
        replay.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert_eq!(
        respon(&stdout).as_deref(),
        Some("Validasi Card Reader Gagal: Permintaan Ulang Terdeteksi")
    );
    let no_match = reader(&["--biometric", "no_match"]);
    let stdout = String::from_utf8_lossy(&no_match.stdout);
    assert_eq!(
        respon(&stdout).as_deref(),
        Some("Validasi Card Reader Gagal: Sidik Jari Tidak Cocok")
    );
    assert_eq!(sim.requests().await, 1);
}

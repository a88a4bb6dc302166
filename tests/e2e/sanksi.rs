//! Every art. 45 sanction enforced end to end, one test per kind: applied through the
//! admin API (`POST /sanksi`), the very next request is refused with the kind's code on
//! the web service and through the card-reader channel (where the kind applies to it), and
//! lifting it (`DELETE /sanksi/{id}`) restores access. The SAM sidecar runs as deployed,
//! applying the gateway's own sanctions file; and a sidecar that does not know a sanction
//! yet is overruled by the gateway, never followed.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use gerbang_e2e::*;
use gerbang_sam::ReaderKey;
use reqwest::Method;
use serde_json::json;

/// The reader's SAM id.
const SAM_ID: &str = "SAM-SANKSI-1";
/// The User ID under sanction, from its registered address.
const USER: &str = "rs_01";
const SOURCE: &str = "127.0.0.2";
/// Its agreement, granting both the web service and the card reader.
const NOMOR: &str = "1/RS/SANKSI";
/// Another Pengguna's User ID, which no sanction here names.
const OTHER: &str = "pkm_01";
const OTHER_SOURCE: &str = "127.0.0.3";

struct Stack {
    sim: Sim,
    gw: Gateway,
    sam: SamSidecar,
    key: ReaderKey,
    nik: String,
}

/// dwh-sim, a gateway with `[sam]`, and the sidecar beside it; with `sanctions`, the
/// sidecar applies the gateway's sanctions file, as deployed.
async fn stack(sanctions: bool) -> Stack {
    let key = ReaderKey::generate(SAM_ID).unwrap();
    let sim = Sim::start(1_000);
    let sam_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let rs = TestPks {
        metode: r#"["web_service", "card_reader"]"#,
        sams: key.pks_block("aktif"),
        ..TestPks::new("rs.toml", NOMOR, vec![TestUser::aktif(USER, SOURCE)])
    };
    let pkm = TestPks::new(
        "pkm.toml",
        "2/PKM/SANKSI",
        vec![TestUser::aktif(OTHER, OTHER_SOURCE)],
    );
    let gw = Gateway::start(GatewayOptions {
        sam: Some(sam_addr),
        ..GatewayOptions::new(sim.addr, vec![rs, pkm])
    });
    let sam = if sanctions {
        SamSidecar::start_for(&gw, sam_addr)
    } else {
        SamSidecar::start(&gw.pks_dir(), sam_addr)
    };
    sam.wait_fresh().await;
    let nik = sim.sample("alive", 1).await.remove(0);
    Stack {
        sim,
        gw,
        sam,
        key,
        nik,
    }
}

impl Stack {
    async fn web(&self) -> String {
        post(
            &self.gw.client(SOURCE),
            &self.gw.url("CALL_NIK"),
            call_nik(&self.nik, USER, PASSWORD),
        )
        .await
        .1
    }

    async fn reader(&self) -> String {
        ReaderCall::new(&self.key, SAM_ID, USER, &self.nik)
            .send(&self.gw, SOURCE)
            .await
    }

    async fn other(&self) -> String {
        post(
            &self.gw.client(OTHER_SOURCE),
            &self.gw.url("CALL_NIK"),
            call_nik(&self.nik, OTHER, PASSWORD),
        )
        .await
        .1
    }

    /// Applies a sanction through the admin API; returns its id.
    async fn apply(&self, jenis: &str, sasaran: &str, kuota: Option<u32>) -> String {
        let mut body = json!({
            "jenis": jenis,
            "sasaran": sasaran,
            "alasan": "Surat Dirjen 000/0000/Dukcapil (uji e2e)",
            "oleh": "e2e"
        });
        if let Some(k) = kuota {
            body["kuota_harian"] = json!(k);
        }
        let (status, text) = self.gw.admin(Method::POST, "/sanksi", Some(body)).await;
        assert_eq!(status, 201, "{text}");
        answer_json(&text)["id"].as_str().unwrap().to_string()
    }

    async fn lift(&self, id: &str) {
        let (status, text) = self
            .gw
            .admin(Method::DELETE, &format!("/sanksi/{id}"), None)
            .await;
        assert_eq!(status, 200, "{text}");
    }

    /// How many validations the sidecar itself refused for `reason`.
    async fn sidecar_refused(&self, reason: &str) -> u64 {
        let prefix = format!("gerbang_sam_validations_total{{result=\"{reason}\"}} ");
        self.sam
            .metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

/// What a request gets under a sanction: served, or refused with this code and RESPON.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Served,
    Refused(&'static str, &'static str),
}

fn assert_answer(what: &str, answer: &str, expect: Expect) {
    match expect {
        Expect::Served => {
            assert_eq!(respon(answer), None, "{what}: {answer}");
            assert!(answer.contains("\"NIK\":"), "{what}: no data: {answer}");
        }
        Expect::Refused(code, text) => {
            assert_eq!(
                response_code(answer).as_deref(),
                Some(code),
                "{what}: {answer}"
            );
            assert_eq!(respon(answer).as_deref(), Some(text), "{what}: {answer}");
            assert!(
                !answer.contains("\"NIK\":"),
                "{what}: data leaked: {answer}"
            );
        }
    }
}

/// One sanction kind end to end. `sidecar_reason`: the reason the sidecar itself gives
/// once it has loaded the sanction, for the kinds it decides on.
async fn sanction_is_enforced_and_lifted(
    jenis: &str,
    sasaran: &str,
    kuota: Option<u32>,
    web: Expect,
    reader: Expect,
    sidecar_reason: Option<&str>,
) {
    let s = stack(true).await;
    assert_answer("web before", &s.web().await, Expect::Served);
    assert_answer("reader before", &s.reader().await, Expect::Served);
    let forwarded = s.sim.requests().await;
    assert_eq!(forwarded, 2);

    let id = s.apply(jenis, sasaran, kuota).await;
    // The very next requests: the API answered once the sanction was in force.
    assert_answer(&format!("{jenis}: web"), &s.web().await, web);
    assert_answer(&format!("{jenis}: reader"), &s.reader().await, reader);
    // The sidecar applies the same file: once it has reloaded, it refuses by itself.
    s.sam.wait_sanctions(1).await;
    assert_answer(&format!("{jenis}: reader again"), &s.reader().await, reader);
    if let Some(reason) = sidecar_reason {
        assert!(
            s.sidecar_refused(reason).await >= 1,
            "{jenis}: the sidecar never refused with {reason}:\n{}",
            s.sam.metrics().await
        );
    }
    // Another Pengguna is untouched, and nothing refused reached the DWH.
    assert_answer(&format!("{jenis}: other"), &s.other().await, Expect::Served);
    let served = [web, reader, reader]
        .iter()
        .filter(|e| matches!(e, Expect::Served))
        .count() as u64;
    assert_eq!(s.sim.requests().await, forwarded + served + 1);

    // Lifted: the web service at once, the reader once the sidecar has reloaded too.
    s.lift(&id).await;
    assert_answer(
        &format!("{jenis} lifted: web"),
        &s.web().await,
        Expect::Served,
    );
    s.sam.wait_sanctions(0).await;
    assert_answer(
        &format!("{jenis} lifted: reader"),
        &s.reader().await,
        Expect::Served,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurangi_kuota_exhausts_the_day_on_both_channels() {
    // Two hits are used before the sanction; a quota of 2 leaves none.
    let exhausted = Expect::Refused("05", "Kuota Akses Hari ini telah Habis");
    sanction_is_enforced_and_lifted("kurangi_kuota", USER, Some(2), exhausted, exhausted, None)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonaktifkan_user_refuses_the_user_id_on_both_channels() {
    let inactive = Expect::Refused("17", "User ID Tidak Aktif");
    sanction_is_enforced_and_lifted("nonaktifkan_user", USER, None, inactive, inactive, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn putus_jaringan_cuts_the_network_off_on_both_channels() {
    let cut = Expect::Refused("04", "IP Address Tidak Sesuai");
    sanction_is_enforced_and_lifted("putus_jaringan", SOURCE, None, cut, cut, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonaktifkan_sam_refuses_the_reader_and_leaves_the_web_service() {
    sanction_is_enforced_and_lifted(
        "nonaktifkan_sam",
        SAM_ID,
        None,
        Expect::Served,
        Expect::Refused("23", "Validasi Card Reader Gagal: SAM Tidak Aktif"),
        Some("sam_inactive"),
    )
    .await;
}

/// A frozen or ended agreement: Cedar's `Lembaga Tidak Aktif` on the web service; for the
/// reader, the sidecar's (or the gateway's) `PKS Tidak Aktif`, decided before Cedar.
async fn agreement_stopped(jenis: &str) {
    sanction_is_enforced_and_lifted(
        jenis,
        NOMOR,
        None,
        Expect::Refused("16", "Lembaga Tidak Aktif"),
        Expect::Refused("23", "Validasi Card Reader Gagal: PKS Tidak Aktif"),
        Some("pks_inactive"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bekukan_pks_freezes_the_agreement_on_both_channels() {
    agreement_stopped("bekukan_pks").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn akhiri_pks_ends_the_agreement_on_both_channels() {
    agreement_stopped("akhiri_pks").await;
}

/// A sidecar that does not apply the sanctions (an old configuration, or one that has
/// not reloaded yet) says `valid`; the gateway's own snapshot refuses the reader anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_a_sanctioned_reader_the_sidecar_does_not_know_about() {
    let s = stack(false).await;
    assert_answer("reader before", &s.reader().await, Expect::Served);
    let id = s.apply("nonaktifkan_sam", SAM_ID, None).await;
    for _ in 0..3 {
        assert_answer(
            "deactivated SAM",
            &s.reader().await,
            Expect::Refused("23", "Validasi Card Reader Gagal: SAM Tidak Aktif"),
        );
    }
    assert_eq!(s.sidecar_refused("sam_inactive").await, 0);
    s.gw.proc
        .stderr_with(&["the SAM sidecar accepted a reader the gateway"])
        .await;
    s.lift(&id).await;
    assert_answer("lifted", &s.reader().await, Expect::Served);

    let id = s.apply("bekukan_pks", NOMOR, None).await;
    assert_answer(
        "frozen PKS",
        &s.reader().await,
        Expect::Refused("23", "Validasi Card Reader Gagal: PKS Tidak Aktif"),
    );
    s.lift(&id).await;
    assert_answer("lifted", &s.reader().await, Expect::Served);
    assert_eq!(s.sim.requests().await, 3);
}

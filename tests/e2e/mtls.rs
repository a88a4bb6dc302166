//! Client certificates (mTLS) on the Pengguna listener (`docs/gateway.md`, "Client
//! certificates"): a PKS naming `sertifikat_klien` makes its User IDs present one of those
//! certificates, issued by an authority of `[listen] tls_client_ca`, in addition to their
//! password and IP LAN, on the web service and the Web Portal; other User IDs connect with
//! or without one; an authority the listener does not trust fails the handshake; and
//! `gerbang check` refuses such a PKS when the listener asks for no certificate.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gerbang_e2e::*;

/// The SHA-256 fingerprint of a PEM certificate, as an operator gets it.
fn fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl x509 -fingerprint");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_id_bound_to_a_client_certificate_is_served_only_with_that_certificate() {
    let sim = Sim::start(50);
    let certs = tempfile::tempdir().unwrap();
    let [one, two, stranger] = ["one", "two", "stranger"].map(|d| certs.path().join(d));
    for d in [&one, &two, &stranger] {
        dev_certs(d);
    }
    // The listener trusts the authorities of `one` and `two`, not the stranger's.
    let bundle = certs.path().join("client-ca.pem");
    let cas = [&one, &two].map(|d| std::fs::read_to_string(d.join("ca.pem")).unwrap());
    std::fs::write(&bundle, cas.concat()).unwrap();
    let listen = leak(format!("tls_client_ca = \"{}\"\n", bundle.display()));
    // As openssl prints it: the operator pastes that line's value.
    let registered = fingerprint(&one.join("client.pem"));
    let extra = leak(format!("sertifikat_klien = [\"{registered}\"]"));
    let gw = Gateway::start(GatewayOptions {
        tls: true,
        listen,
        ..GatewayOptions::new(
            sim.addr,
            vec![
                TestPks {
                    extra,
                    metode: r#"["web_service", "web_portal"]"#,
                    ..TestPks::new(
                        "rsud.toml",
                        "1/RSUD/MTLS",
                        vec![TestUser::aktif("rsud_01", "127.0.0.2")],
                    )
                },
                TestPks::new(
                    "bkd.toml",
                    "2/BKD/MTLS",
                    vec![TestUser::aktif("bkd_01", "127.0.0.3")],
                ),
            ],
        )
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    let server_ca = std::fs::read(gw.dir.path().join("certs/ca.pem")).unwrap();
    let client = |source: &str, cert: Option<&Path>| {
        let mut b = reqwest::Client::builder()
            .local_address(source.parse::<IpAddr>().unwrap())
            .add_root_certificate(reqwest::Certificate::from_pem(&server_ca).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        if let Some(dir) = cert {
            let mut pem = std::fs::read(dir.join("client.pem")).unwrap();
            pem.extend(std::fs::read(dir.join("client.key")).unwrap());
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    };
    let lookup = async |c: reqwest::Client, user: &str| {
        let (_, body) = post(&c, &gw.url("CALL_NIK"), call_nik(&nik, user, PASSWORD)).await;
        (response_code(&body), body)
    };

    // The registered certificate, with the right password from the IP LAN: served.
    let (code, body) = lookup(client("127.0.0.2", Some(&one)), "rsud_01").await;
    assert_eq!(code, None, "{body}");
    let forwarded = sim.requests().await;
    // No certificate: refused (33), saying one is required.
    let (code, body) = lookup(client("127.0.0.2", None), "rsud_01").await;
    assert_eq!(code.as_deref(), Some("33"), "{body}");
    assert!(
        body.contains("Sertifikat Klien Tidak Sesuai") && body.contains("wajib"),
        "{body}"
    );
    // A valid certificate of an authority the listener trusts, but not the registered one.
    let (code, body) = lookup(client("127.0.0.2", Some(&two)), "rsud_01").await;
    assert_eq!(code.as_deref(), Some("33"), "{body}");
    assert!(body.contains("tidak terdaftar"), "{body}");
    // A certificate of an authority the listener does not trust: no answer at all.
    let answer = client("127.0.0.2", Some(&stranger))
        .post(gw.url("CALL_NIK"))
        .body(call_nik(&nik, "rsud_01", PASSWORD))
        .send()
        .await;
    assert!(
        answer.is_err(),
        "a certificate of an unknown authority got {answer:?}"
    );
    assert_eq!(
        sim.requests().await,
        forwarded,
        "a refused lookup reached the DWH"
    );
    // A User ID whose PKS names no certificate: served with or without one.
    for cert in [None, Some(two.as_path())] {
        let (code, body) = lookup(client("127.0.0.3", cert), "bkd_01").await;
        assert_eq!(code, None, "{body}");
    }

    // The Web Portal: no login without the certificate, a login with it.
    let login = async |c: reqwest::Client| {
        let r = c
            .post(gw.portal_url("masuk"))
            .form(&[("user_id", "rsud_01"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    };
    let (status, page) = login(client("127.0.0.2", None)).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Sertifikat Klien Tidak Sesuai"), "{page}");
    let (status, page) = login(client("127.0.0.2", Some(&one))).await;
    assert_eq!(status, 303, "{page}");

    // The same PKS behind a listener that asks for no certificate: `gerbang check` refuses.
    let config = std::fs::read_to_string(gw.dir.path().join("gerbang.toml")).unwrap();
    let without = gw.dir.path().join("tanpa-mtls.toml");
    std::fs::write(&without, config.replace(listen, "")).unwrap();
    let out = Command::new(bin("gerbang"))
        .arg("--config")
        .arg(&without)
        .arg("check")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check passed:\n{said}");
    assert!(
        said.contains("rsud.toml") && said.contains("tls_client_ca"),
        "{said}"
    );
}

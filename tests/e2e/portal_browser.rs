//! A person at a browser: real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` over WebDriver) uses the Web Portal through a TLS gateway in front of
//! `dwh-sim`. It logs in, searches NIKs, sees only the PKS elements and the quota drop,
//! clicks export and gets the refusal page, and is refused from a second browser and from
//! another address. Screenshots of each step go to `target/e2e-artifacts/portal/`.
//!
//! Chromium is required: without it the test fails and says how to install it
//! (`make deps`, which `make test` runs, installs it).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use gerbang_e2e::*;
use serde_json::json;

/// How long one browser step may take (Chromium starts in a second or two; a debug
/// gateway answers in milliseconds).
const STEP: Duration = Duration::from_secs(30);

/// Where the screenshots go: `target/e2e-artifacts/portal/`.
fn artifacts() -> PathBuf {
    let dir = bin_dir().parent().unwrap().join("e2e-artifacts/portal");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromium and chromedriver, or a failure that says how to get them.
fn browser_binaries() -> (PathBuf, PathBuf) {
    match (which("chromium"), which("chromedriver")) {
        (Some(chromium), Some(driver)) => (chromium, driver),
        (chromium, driver) => panic!(
            "the portal browser test needs Chromium and its driver (missing: {}{}); install the Debian packages `chromium` and `chromium-driver` (`make deps` does, and `make test` runs it)",
            if chromium.is_none() { "chromium " } else { "" },
            if driver.is_none() { "chromedriver" } else { "" },
        ),
    }
}

/// A running chromedriver on a free loopback port.
struct Driver {
    _proc: Proc,
    url: String,
    chromium: PathBuf,
}

impl Driver {
    fn start(dir: &Path) -> Self {
        let (chromium, driver) = browser_binaries();
        let port = free_port();
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let proc = start_listening("chromedriver", cmd, addr, dir);
        Self {
            _proc: proc,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        }
    }

    /// A new browser: its own Chromium process and profile, so its own cookies.
    async fn browser(&self) -> Client {
        let mut caps = Capabilities::new();
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                // Root in a container: no sandbox; the dev CA is not in the system store.
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--ignore-certificate-errors",
                    "--window-size=1100,1000",
                    "--lang=id",
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"))
    }
}

async fn screenshot(browser: &Client, dir: &Path, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}

/// Waits for an element, failing with the page source when it does not come.
async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    match browser
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => panic!(
            "{css} did not appear ({e}); the page was:\n{}",
            browser.source().await.unwrap_or_default()
        ),
    }
}

/// Polls an element's text until it satisfies `ok`, within [`STEP`].
async fn wait_text(browser: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let text = match browser.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&text) {
            return text;
        }
        if Instant::now() >= deadline {
            let url = browser.current_url().await.map(|u| u.to_string());
            panic!(
                "{css} never showed the expected text; last: {text:?}; at {url:?} the page was:\n{}",
                browser.source().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the element `css` names, which must be on the page.
async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn log_in(browser: &Client, base: &str) {
    browser.goto(base).await.unwrap();
    // Without a session the portal sends the browser to the gateway's login page.
    wait_for(browser, "#user_id")
        .await
        .send_keys("portal_01")
        .await
        .unwrap();
    browser
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    browser
        .find(Locator::Css("#tombol-masuk"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn search(browser: &Client, nik: &str) {
    let input = wait_for(browser, "#nik").await;
    input.clear().await.unwrap();
    input.send_keys(nik).await.unwrap();
    browser
        .find(Locator::Css("#tombol-cari"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_person_searches_and_is_refused_export_and_a_second_session_in_chromium() {
    let out = artifacts();
    let sim = Sim::start(2_000);
    let pks = TestPks {
        metode: r#"["web_portal"]"#,
        kuota: 50,
        extra: r#"data_balikan = ["NOP PBB-P2", "NPWPD"]"#,
        // A browser's connection to any 127.x address comes from 127.0.0.1.
        ..TestPks::new(
            "portal.toml",
            "8/PORTAL/BROWSER",
            vec![TestUser {
                id: "portal_01",
                ip: "127.0.0.1/32",
                status: "aktif",
            }],
        )
    };
    let gw = Gateway::start(GatewayOptions {
        tls: true,
        ..GatewayOptions::new(sim.addr, vec![pks])
    });
    let driver = Driver::start(gw.dir.path());
    let base = format!("https://127.0.0.1:{}/portal/", gw.addr.port());
    println!("screenshots under {}", out.display());

    // 1. Login through the gateway.
    let browser = driver.browser().await;
    log_in(&browser, &base).await;
    let who = wait_text(&browser, "#pengguna", |t| !t.is_empty()).await;
    assert_eq!(who, "portal_01");
    screenshot(&browser, &out, "01-setelah-masuk.png").await;

    // 2. A NIK search: the page shows exactly the PKS elements, and the remaining quota.
    let niks = sim.sample("alive", 2).await;
    search(&browser, &niks[0]).await;
    let kuota = wait_text(&browser, "#kuota", |t| !t.is_empty()).await;
    assert_eq!(kuota, "Sisa kuota hari ini: 49");
    let mut shown = BTreeSet::new();
    for th in browser.find_all(Locator::Css("#hasil th")).await.unwrap() {
        shown.insert(th.text().await.unwrap());
    }
    let want: BTreeSet<String> = DEFAULT_ELEMENTS.iter().map(|s| s.to_string()).collect();
    assert_eq!(shown, want, "the page shows only the PKS elements");
    let nik_cell = browser
        .find(Locator::XPath("//th[text()='NIK']/following-sibling::td"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(nik_cell, niks[0], "16 digits shown exactly");
    let page = browser.source().await.unwrap();
    for hidden in ["AGAMA", "NAMA_LGKP_IBU", "JENIS_PKRJN", "GOL_DARAH"] {
        assert!(!page.contains(hidden), "{hidden} is not in the PKS");
    }
    screenshot(&browser, &out, "02-hasil-cari.png").await;

    // 3. Another search: the quota drops by one.
    search(&browser, &niks[1]).await;
    wait_text(&browser, "#kuota", |t| t == "Sisa kuota hari ini: 48").await;
    screenshot(&browser, &out, "03-kuota-turun.png").await;

    // 4. Export: the gateway answers with its refusal page; nothing reaches the DWH.
    let before = sim.portal_requests().await;
    browser
        .find(Locator::Css("#ekspor-csv"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#ditolak").await;
    let what = text_of(&browser, "#yang-ditolak").await;
    let why = text_of(&browser, "#alasan").await;
    assert!(what.contains("ekspor"), "{what}");
    assert!(
        why.contains("hanya dapat dibaca (pasal 30 ayat 2)"),
        "{why}"
    );
    assert_eq!(
        sim.portal_requests().await,
        before,
        "the export never reached the DWH"
    );
    screenshot(&browser, &out, "04-ekspor-ditolak.png").await;

    // 5. A second browser logging in as the same User ID: refused while the first lives.
    let cookie = browser.get_named_cookie("gerbang_portal").await.unwrap();
    assert!(cookie.http_only().unwrap_or(false) && cookie.secure().unwrap_or(false));
    let second = driver.browser().await;
    log_in(&second, &base).await;
    wait_for(&second, "#ditolak").await;
    let why = text_of(&second, "#alasan").await;
    assert!(why.contains("sesi lain yang masih aktif"), "{why}");
    screenshot(&second, &out, "05-sesi-kedua-ditolak.png").await;
    second.close().await.unwrap();

    // 6. The first browser's cookie replayed from another address: refused.
    let other = gw.portal_client("127.0.0.9");
    let replay = other
        .get(gw.portal_url(""))
        .header("Cookie", format!("gerbang_portal={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 401);
    let body = replay.text().await.unwrap();
    assert!(body.contains("terikat pada alamat komputer lain"), "{body}");
    std::fs::write(out.join("06-alamat-lain-ditolak.html"), &body).unwrap();

    // The first browser still works from its own address.
    browser.goto(&base).await.unwrap();
    wait_for(&browser, "#nik").await;

    // 7. Data balikan: a CSV uploaded through the file input is previewed (nothing sent),
    // then sent; only its valid record, about a NIK looked up above, reaches the DWH.
    let csv = gw.dir.path().join("balikan.csv");
    std::fs::write(
        &csv,
        format!(
            "NIK,NOP_PBB_P2,NPWPD\n{},331309000100200010,P.2.0001234.33.13\n{},12,\n",
            niks[0], niks[1]
        ),
    )
    .unwrap();
    browser.goto(&format!("{base}balikan")).await.unwrap();
    wait_for(&browser, "#kolom-balikan").await;
    screenshot(&browser, &out, "07-balikan.png").await;
    browser
        .find(Locator::Css("#berkas"))
        .await
        .unwrap()
        .send_keys(&csv.display().to_string())
        .await
        .unwrap();
    browser
        .find(Locator::Css("#tombol-pratinjau"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#pratinjau").await;
    assert_eq!(text_of(&browser, "#jumlah-valid").await, "1");
    assert_eq!(text_of(&browser, "#jumlah-tidak-valid").await, "1");
    screenshot(&browser, &out, "08-balikan-pratinjau.png").await;
    assert_eq!(sim.balikan_records().await, 0, "a preview sends nothing");
    browser
        .find(Locator::Css("#tombol-kirim"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#hasil").await;
    assert_eq!(text_of(&browser, "#jumlah-diterima").await, "1");
    assert_eq!(text_of(&browser, "#jumlah-ditolak").await, "1");
    screenshot(&browser, &out, "09-balikan-terkirim.png").await;
    assert_eq!(sim.balikan_records().await, 1);
    browser.close().await.unwrap();
}

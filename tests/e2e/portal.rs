//! The Web Portal channel over HTTP: the real `gerbang serve` and `dwh-sim`, clients bound
//! to chosen 127.0.0.x addresses, the session cookie handled by hand so every attribute
//! and every refusal is visible. The browser test is `portal_browser.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use gerbang_e2e::*;
use reqwest::header::HeaderMap;

/// The portal User ID's IP LAN: 127.0.0.8 to 127.0.0.15, so the same User ID can be
/// tried from two of its own addresses.
const PORTAL_LAN: &str = "127.0.0.8/29";

fn portal_pks() -> TestPks {
    TestPks {
        metode: r#"["web_portal"]"#,
        kuota: 5,
        ..TestPks::new(
            "portal.toml",
            "6/PORTAL/E2E",
            vec![TestUser {
                id: "portal_01",
                ip: PORTAL_LAN,
                status: "aktif",
            }],
        )
    }
}

/// A PKS that grants only the web service: its User ID may not log in to the portal.
fn api_only_pks() -> TestPks {
    TestPks::new(
        "api.toml",
        "7/API/E2E",
        vec![TestUser {
            id: "api_01",
            ip: "127.0.0.20",
            status: "aktif",
        }],
    )
}

fn start(portal: &'static str) -> (Sim, Gateway) {
    let sim = Sim::start(2_000);
    let gw = Gateway::start(GatewayOptions {
        portal,
        ..GatewayOptions::new(sim.addr, vec![portal_pks(), api_only_pks()])
    });
    (sim, gw)
}

/// An answer: status, headers, body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Answer {
        status,
        headers,
        body: r.text().await.unwrap(),
    }
}

/// The five security headers every portal answer must carry (art. 30(2); PKS: no storage).
fn assert_secure(what: &str, a: &Answer) {
    assert_eq!(a.header("cache-control"), "no-store", "{what}");
    assert_eq!(
        a.header("content-security-policy"),
        "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        "{what}"
    );
    assert_eq!(a.header("x-frame-options"), "DENY", "{what}");
    assert_eq!(a.header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(a.header("x-content-type-options"), "nosniff", "{what}");
}

/// Adds a form body, on the methods that carry one: a body on GET or DELETE is refused as
/// bad framing before anything else (`hostile.rs`).
fn with_form(
    req: reqwest::RequestBuilder,
    method: &reqwest::Method,
    form: String,
) -> reqwest::RequestBuilder {
    if [reqwest::Method::GET, reqwest::Method::DELETE].contains(method) {
        req
    } else {
        req.header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
    }
}

/// Logs in and returns the login answer.
async fn login(gw: &Gateway, client: &reqwest::Client, user: &str, password: &str) -> Answer {
    send(
        client
            .post(gw.portal_url("masuk"))
            .form(&[("user_id", user), ("password", password)]),
    )
    .await
}

/// The session cookie's `name=value` from a login answer.
fn session_of(a: &Answer) -> String {
    let set = a.header("set-cookie");
    assert!(
        set.starts_with("gerbang_portal="),
        "no session cookie: {set:?} ({})",
        a.status
    );
    set.split(';').next().unwrap().to_string()
}

async fn logged_in(gw: &Gateway, client: &reqwest::Client) -> String {
    let a = login(gw, client, "portal_01", PASSWORD).await;
    assert_eq!(a.status, 303, "{}", a.body);
    session_of(&a)
}

async fn search(gw: &Gateway, client: &reqwest::Client, cookie: &str, nik: &str) -> Answer {
    send(
        client
            .post(gw.portal_url("api/cari"))
            .header("Cookie", cookie)
            .header("Content-Type", "application/json")
            .body(format!(r#"{{"nik":"{nik}"}}"#)),
    )
    .await
}

#[tokio::test]
async fn login_search_and_security_headers_on_every_answer() {
    let (sim, gw) = start("");
    let client = gw.portal_client("127.0.0.9");

    // Without a session the portal sends the browser to the login page.
    let a = send(client.get(gw.portal_url(""))).await;
    assert_eq!((a.status, a.header("location")), (303, "/portal/masuk"));
    assert_secure("redirect to login", &a);
    let a = send(client.get(gw.portal_url("masuk"))).await;
    assert_eq!(a.status, 200);
    assert!(
        a.body
            .contains("<form method=\"post\" action=\"/portal/masuk\"")
    );
    assert_secure("login page", &a);
    let a = send(client.get(gw.portal_url("_gerbang.css"))).await;
    assert_eq!(a.status, 200);
    assert!(a.header("content-type").starts_with("text/css"));
    assert_secure("gateway stylesheet", &a);

    let a = login(&gw, &client, "portal_01", PASSWORD).await;
    assert_eq!((a.status, a.header("location")), (303, "/portal/"));
    assert_secure("login answer", &a);
    let set = a.header("set-cookie").to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/portal/"] {
        assert!(set.split("; ").any(|p| p == attr), "{attr} missing: {set}");
    }
    let cookie = session_of(&a);
    let token = cookie.split_once('=').unwrap().1;
    assert_eq!(token.len(), 43, "256 random bits in base64url");
    assert!(
        !gw.proc
            .stderr_with(&["gerbang::request"])
            .await
            .contains(token),
        "the session token must never be logged"
    );

    // The page and its assets come from the DWH portal, with the gateway's headers.
    let page = send(client.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("portal_01"),
        "the DWH saw the asserted User ID"
    );
    assert!(page.header("content-type").starts_with("text/html"));
    assert_secure("portal page", &page);
    for asset in ["app.js", "app.css"] {
        let a = send(client.get(gw.portal_url(asset)).header("Cookie", &cookie)).await;
        assert_eq!(a.status, 200, "{asset}");
        assert_secure(asset, &a);
    }

    // The search: filtered to the PKS elements exactly like CALL_NIK, one hit each.
    let niks = sim.sample("alive", 2).await;
    let first = search(&gw, &client, &cookie, &niks[0]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_secure("search JSON", &first);
    assert!(first.header("content-type").starts_with("application/json"));
    let keys: BTreeSet<String> = record_keys(&first.body).into_iter().collect();
    let want: BTreeSet<String> = DEFAULT_ELEMENTS.iter().map(|s| s.to_string()).collect();
    assert_eq!(keys, want, "only the PKS elements");
    assert_eq!(quota_limiter(&first.body), Some(4));
    assert_eq!(first.header("x-quota-remaining"), "4");
    assert_eq!(first.header("x-quota-limit"), "5");
    // NIK digits pass through exactly, as in the API.
    assert!(first.body.contains(&niks[0]));

    // Pages are not counted; every search is.
    let a = send(client.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(a.status, 200);
    let second = search(&gw, &client, &cookie, &niks[1]).await;
    assert_eq!(second.header("x-quota-remaining"), "3");
    assert_eq!(quota_limiter(&second.body), Some(3));

    // A malformed NIK costs no hit and never reaches the DWH.
    let before = sim.portal_requests().await;
    let bad = search(&gw, &client, &cookie, "12345").await;
    assert_eq!(bad.status, 400);
    assert_eq!(response_code(&bad.body).as_deref(), Some("15"));
    assert_secure("search refusal", &bad);
    assert_eq!(sim.portal_requests().await, before);
    let third = search(&gw, &client, &cookie, &niks[0]).await;
    assert_eq!(third.header("x-quota-remaining"), "2");

    // The quota ends searches, with the DWH's text.
    for _ in 0..2 {
        assert_eq!(search(&gw, &client, &cookie, &niks[1]).await.status, 200);
    }
    let over = search(&gw, &client, &cookie, &niks[1]).await;
    assert_eq!(over.status, 429);
    assert_eq!(
        respon(&over.body).as_deref(),
        Some("Kuota Akses Hari ini telah Habis")
    );
    assert_eq!(quota_limiter(&over.body), Some(0));

    // An unknown page is refused (default deny) with a readable page.
    let a = send(client.get(gw.portal_url("admin")).header("Cookie", &cookie)).await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("Permintaan ditolak"), "{}", a.body);
    assert_secure("unknown page", &a);
}

#[tokio::test]
async fn every_write_method_and_export_path_is_refused_before_the_dwh() {
    let (sim, gw) = start("");
    let client = gw.portal_client("127.0.0.9");
    let cookie = logged_in(&gw, &client).await;
    let nik = sim.sample("alive", 1).await.remove(0);
    let form = format!("nik={nik}");
    let before = sim.portal_requests().await;

    let exports = [
        ("POST", "ekspor/csv"),
        ("GET", "ekspor/csv"),
        ("POST", "ekspor/pdf"),
        ("GET", "ekspor/pdf"),
        ("POST", "api/cari-massal"),
        ("GET", "unduh/penduduk.xls"),
        ("GET", "cetak"),
    ];
    for (method, path) in exports {
        let method: reqwest::Method = method.parse().unwrap();
        let a = send(with_form(
            client
                .request(method.clone(), gw.portal_url(path))
                .header("Cookie", &cookie),
            &method,
            form.clone(),
        ))
        .await;
        assert_eq!(a.status, 403, "{method} {path}: {}", a.body);
        assert!(a.header("content-type").starts_with("text/html"));
        assert!(a.header("content-disposition").is_empty());
        assert!(a.body.contains("ekspor, unduh, cetak"), "{}", a.body);
        assert!(a.body.contains("pasal 30 ayat 2"), "{}", a.body);
        assert!(!a.body.contains(&nik), "no data in a refusal");
        assert_secure(path, &a);
    }
    let writes = [
        ("POST", "ubah-alamat"),
        ("PUT", "api/penduduk"),
        ("PATCH", "api/penduduk"),
        ("DELETE", "api/penduduk"),
        ("POST", ""),
        ("PUT", "api/cari"),
        ("PATCH", "app.js"),
        ("DELETE", ""),
    ];
    for (method, path) in writes {
        let method: reqwest::Method = method.parse().unwrap();
        let a = send(with_form(
            client
                .request(method.clone(), gw.portal_url(path))
                .header("Cookie", &cookie),
            &method,
            format!("{form}&alamat=JL.+UJI"),
        ))
        .await;
        assert_eq!(a.status, 403, "{method} {path}: {}", a.body);
        assert!(a.body.contains("perubahan data"), "{}", a.body);
        assert!(a.body.contains("pasal 30 ayat 2"), "{}", a.body);
        assert_secure(path, &a);
    }
    assert_eq!(
        sim.portal_requests().await,
        before,
        "no refused request may reach the DWH portal"
    );
    // Refused actions cost no hit.
    let a = search(&gw, &client, &cookie, &nik).await;
    assert_eq!(a.header("x-quota-remaining"), "4");
    assert_eq!(sim.portal_requests().await, before + 1);

    // The refusals are Cedar's `portal-read-only` rule, and are logged as such.
    gw.proc
        .stderr_with(&["PortalExport", "PortalWrite", "portal-read-only"])
        .await;
}

#[tokio::test]
async fn a_session_is_bound_to_its_address_and_single_per_user() {
    let (sim, gw) = start("");
    let here = gw.portal_client("127.0.0.9");
    let there = gw.portal_client("127.0.0.10");
    let cookie = logged_in(&gw, &here).await;

    // The same cookie from another address of the same IP LAN: refused.
    let a = send(there.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(
        a.body.contains("terikat pada alamat komputer lain"),
        "{}",
        a.body
    );
    assert_secure("other address", &a);
    let nik = sim.sample("alive", 1).await.remove(0);
    let a = search(&gw, &there, &cookie, &nik).await;
    assert_eq!(a.status, 401);
    // From an address outside every IP LAN, the same.
    let stranger = gw.portal_client("127.0.0.30");
    let a = send(stranger.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(a.status, 401);

    // A second login of the same User ID while the first session lives: refused.
    let a = login(&gw, &there, "portal_01", PASSWORD).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.body.contains("sesi lain yang masih aktif"), "{}", a.body);
    assert!(a.header("set-cookie").is_empty());
    assert_secure("second session", &a);

    // Logging out with the cookie from another address does not end the session.
    let a = send(
        there
            .post(gw.portal_url("keluar"))
            .header("Cookie", &cookie),
    )
    .await;
    assert_eq!(a.status, 303);

    // The first session still works; after its logout, a new login does.
    let a = send(here.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(a.status, 200);
    let out = send(here.post(gw.portal_url("keluar")).header("Cookie", &cookie)).await;
    assert_eq!((out.status, out.header("location")), (303, "/portal/masuk"));
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    assert_secure("logout", &out);
    let a = send(here.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(a.status, 303, "the old cookie is dead");
    let second = logged_in(&gw, &there).await;
    assert_ne!(second, cookie);
    let a = send(there.get(gw.portal_url("")).header("Cookie", &second)).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn an_idle_session_ends() {
    let (_sim, gw) = start("idle_timeout_secs = 1\nabsolute_timeout_secs = 60\n");
    let client = gw.portal_client("127.0.0.9");
    let cookie = logged_in(&gw, &client).await;
    let a = send(client.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(a.status, 200);
    // The behaviour under test is the passing of time itself: wait out the idle timeout.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let a = send(client.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!((a.status, a.header("location")), (303, "/portal/masuk"));
    assert!(a.header("set-cookie").contains("Max-Age=0"));
    // The expired session no longer blocks a new login.
    logged_in(&gw, &client).await;
}

#[tokio::test]
async fn logins_are_refused_without_the_portal_channel_or_the_password_or_from_another_site() {
    let (_sim, gw) = start("");
    // The PKS grants only the web service (metode_akses), so Cedar's `channel` rule refuses.
    let api = gw.portal_client("127.0.0.20");
    let a = login(&gw, &api, "api_01", PASSWORD).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body.contains("metode akses web_portal tidak termasuk"),
        "{}",
        a.body
    );
    assert!(a.header("set-cookie").is_empty());
    assert_secure("channel refusal", &a);

    let client = gw.portal_client("127.0.0.9");
    let a = login(&gw, &client, "portal_01", "salah").await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("Login Gagal"), "{}", a.body);
    assert!(a.header("set-cookie").is_empty());
    assert_secure("wrong password", &a);

    // A login posted from another site's page is refused before any password check.
    let a = send(
        client
            .post(gw.portal_url("masuk"))
            .header("Origin", "https://situs-lain.example")
            .form(&[("user_id", "portal_01"), ("password", PASSWORD)]),
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(
        a.body.contains("tidak berasal dari halaman portal"),
        "{}",
        a.body
    );

    // The web service's lockout applies: after five failures for the User ID (one above),
    // even the right password is refused for a while.
    let other = gw.portal_client("127.0.0.11");
    for _ in 0..4 {
        assert_eq!(login(&gw, &other, "portal_01", "salah").await.status, 401);
    }
    let a = login(&gw, &other, "portal_01", PASSWORD).await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("Akun Dikunci Sementara"), "{}", a.body);
    assert!(a.header("set-cookie").is_empty());

    // A client-sent identity header grants nothing: without a session, no page.
    let a = send(
        client
            .get(gw.portal_url(""))
            .header("X-Gerbang-Portal-User", "portal_01"),
    )
    .await;
    assert_eq!(a.status, 303);
}

/// A PKS number is written by whoever drafts the PKS file, and Cedar's refusal names it: on
/// the refusal page it is text, never markup.
#[tokio::test]
async fn a_pks_number_with_markup_is_shown_as_text() {
    let sim = Sim::start(2_000);
    let hostile = TestPks::new(
        "hostile.toml",
        r#"8/<script>alert(\"x\")</script>/E2E"#,
        vec![TestUser {
            id: "api_02",
            ip: "127.0.0.21",
            status: "aktif",
        }],
    );
    let gw = Gateway::start(GatewayOptions::new(sim.addr, vec![portal_pks(), hostile]));
    let a = login(&gw, &gw.portal_client("127.0.0.21"), "api_02", PASSWORD).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body.contains(
            "tidak termasuk dalam PKS 8/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;/E2E"
        ),
        "{}",
        a.body
    );
    assert!(!a.body.contains("<script"), "{}", a.body);
    assert_secure("refusal naming a PKS", &a);
}

/// Edits the portal PKS file and waits until the gateway has reloaded it.
async fn edit_portal_pks(gw: &Gateway, from: &str, to: &str) {
    const RELOADED: &str = "reloaded PKS files, policies and sanctions";
    let before = gw.proc.stderr().matches(RELOADED).count();
    let path = gw.pks_path("portal.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.proc.stderr().matches(RELOADED).count() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload:\n{}",
            gw.proc.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_reload_changing_the_password_or_deactivating_the_user_id_ends_its_session() {
    let (_sim, gw) = start("");
    let client = gw.portal_client("127.0.0.9");
    let cookie = logged_in(&gw, &client).await;
    let a = send(client.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(a.status, 200);

    // Ditjen changes the User ID's password: the session ends with the reload.
    let new_password = "sandi-baru-e2e";
    edit_portal_pks(&gw, password_hash(), &hash_password(new_password)).await;
    let a = send(client.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(
        (a.status, a.header("location")),
        (303, "/portal/masuk"),
        "a session of the old password: {}",
        a.body
    );
    assert_eq!(login(&gw, &client, "portal_01", PASSWORD).await.status, 401);
    let a = login(&gw, &client, "portal_01", new_password).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let cookie = session_of(&a);

    // Deactivated and reactivated by two reloads, with no request in between: the
    // session of before does not come back.
    let active = "kuota_harian = 5\nstatus = \"aktif\"";
    let inactive = "kuota_harian = 5\nstatus = \"nonaktif\"";
    edit_portal_pks(&gw, active, inactive).await;
    edit_portal_pks(&gw, inactive, active).await;
    let a = send(client.get(gw.portal_url("")).header("Cookie", &cookie)).await;
    assert_eq!(
        (a.status, a.header("location")),
        (303, "/portal/masuk"),
        "a session from before the deactivation: {}",
        a.body
    );
    // Logging in afresh works, and the reload is logged.
    let a = login(&gw, &client, "portal_01", new_password).await;
    assert_eq!(a.status, 303, "{}", a.body);
    gw.proc.stderr_with(&["portal sessions ended"]).await;
}

#[tokio::test]
async fn cross_site_posts_from_an_unregistered_address_are_counted_not_logged_each() {
    let (_sim, gw) = start("");
    const POSTS: usize = 200;
    const WARNING: &str = "portal request from another site refused";
    let stranger = gw.portal_client("127.0.0.99");
    for _ in 0..POSTS {
        let a = send(
            stranger
                .post(gw.portal_url("masuk"))
                .header("Origin", "https://situs-lain.example")
                .form(&[("user_id", "portal_01"), ("password", "x")]),
        )
        .await;
        assert_eq!(a.status, 403);
    }
    // From the User ID's own LAN the same refusal is still explained in the log.
    let own = gw.portal_client("127.0.0.9");
    let a = send(
        own.post(gw.portal_url("masuk"))
            .header("Origin", "https://situs-lain.example")
            .form(&[("user_id", "portal_01"), ("password", "x")]),
    )
    .await;
    assert_eq!(a.status, 403);
    // Every request counted (after its answer), the first of the minute recorded.
    let recorded = format!(
        "gerbang_unregistered_requests_total{{recorded=\"false\"}} {}",
        POSTS - 1
    );
    gw.metrics_with(&[&recorded]).await;
    let log = gw.proc.stderr_with(&["peer=127.0.0.9 "]).await;
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(
        lines("127.0.0.99"),
        1,
        "one line of the stranger's minute, not one per request:\n{log}"
    );
    assert_eq!(lines(WARNING), 1, "{log}");
}

/// A portal PKS that names data balikan (`docs/balikan.md`).
fn balikan_pks() -> TestPks {
    TestPks {
        metode: r#"["web_portal"]"#,
        extra: r#"data_balikan = ["NOP PBB-P2", "NPWPD"]"#,
        ..TestPks::new(
            "bkd.toml",
            "8/BKD/PORTAL",
            vec![TestUser {
                id: "bkd_portal",
                ip: "127.0.0.24",
                status: "aktif",
            }],
        )
    }
}

/// A `multipart/form-data` body carrying one file in the field `berkas`, as a browser
/// sends the upload form.
fn upload(
    client: &reqwest::Client,
    url: String,
    cookie: &str,
    file: &str,
) -> reqwest::RequestBuilder {
    let boundary = "----gerbang-e2e-7d3f";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"berkas\"; filename=\"balikan.csv\"\r\nContent-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n"
    );
    client
        .post(url)
        .header("Cookie", cookie)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
}

/// The hidden field of the preview's send form, decoded from the page.
fn hidden_data(page: &str) -> String {
    let start = page.find("name=\"data\" value=\"").unwrap() + "name=\"data\" value=\"".len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn data_balikan_by_upload_is_previewed_without_sending_then_sent_and_by_form() {
    let sim = Sim::start(2_000);
    let gw = Gateway::start(GatewayOptions::new(
        sim.addr,
        vec![balikan_pks(), portal_pks()],
    ));
    let niks = sim.sample("alive", 3).await;
    let (looked, never, form_nik) = (&niks[0], &niks[1], &niks[2]);
    let client = gw.portal_client("127.0.0.24");
    let cookie = gw.portal_login(&client, "bkd_portal").await;

    // The page lists the PKS's fields and offers the upload and the form.
    let page = send(
        client
            .get(gw.portal_url("balikan"))
            .header("Cookie", &cookie),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_secure("balikan page", &page);
    for needle in [
        "NOP_PBB_P2",
        "18 digit angka",
        "P.#.#######.##.##",
        "enctype=\"multipart/form-data\"",
        "action=\"/portal/balikan/pratinjau\"",
        "action=\"/portal/balikan/isi\"",
        "type=\"file\"",
    ] {
        assert!(page.body.contains(needle), "{needle}: {}", page.body);
    }
    assert!(!page.body.contains("<script"), "{}", page.body);

    // Looked up through the portal's own search, so the PKS may return data about it.
    for nik in [looked, form_nik] {
        let (status, body) = gw.portal_search(&client, &cookie, nik).await;
        assert_eq!(status, 200, "{body}");
    }
    let portal_before = sim.portal_requests().await;

    let file = format!(
        "NIK,NOP_PBB_P2,NPWPD\r\n{looked},331309000100200010,P.2.0001234.33.13\r\n{never},331309000100200011,\r\n{looked},12,<b>tebal</b>\r\n"
    );
    let preview = send(upload(
        &client,
        gw.portal_url("balikan/pratinjau"),
        &cookie,
        &file,
    ))
    .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert_secure("balikan preview", &preview);
    assert!(
        preview.body.contains("<span id=\"jumlah-valid\">1</span>")
            && preview
                .body
                .contains("<span id=\"jumlah-tidak-valid\">2</span>"),
        "{}",
        preview.body
    );
    assert!(
        preview.body.contains("tidak diakses oleh PKS ini"),
        "{}",
        preview.body
    );
    assert!(
        preview.body.contains("NOP_PBB_P2: harus 18 digit angka"),
        "{}",
        preview.body
    );
    // The sender's own values come back as text, never as markup.
    assert!(
        preview.body.contains("&lt;b&gt;tebal&lt;/b&gt;"),
        "{}",
        preview.body
    );
    assert!(!preview.body.contains("<b>tebal"), "{}", preview.body);
    assert_eq!(sim.balikan_records().await, 0, "a preview sends nothing");

    // Sent: checked again, and only the valid record reaches the DWH, as validated.
    let data = hidden_data(&preview.body);
    let sent = send(
        client
            .post(gw.portal_url("balikan/kirim"))
            .header("Cookie", &cookie)
            .form(&[("data", data.as_str())]),
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_secure("balikan result", &sent);
    assert!(
        sent.body.contains("<span id=\"jumlah-diterima\">1</span>")
            && sent.body.contains("<span id=\"jumlah-ditolak\">2</span>"),
        "{}",
        sent.body
    );
    assert_eq!(sim.balikan_records().await, 1);
    let last = sim.last_request().await;
    assert_eq!(last["target"], "/dukcapil/balikan/bkd", "{last}");
    let body: serde_json::Value = serde_json::from_str(last["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"data": [{"NIK": looked, "NOP_PBB_P2": "331309000100200010", "NPWPD": "P.2.0001234.33.13"}]})
    );

    // A forged hidden field is checked like a file: the never-looked-up NIK stays out.
    let forged =
        format!(r#"[{{"baris":2,"kolom":[["NIK","{never}"],["NPWPD","P.2.0001234.33.13"]]}}]"#);
    let sent = send(
        client
            .post(gw.portal_url("balikan/kirim"))
            .header("Cookie", &cookie)
            .form(&[("data", forged.as_str())]),
    )
    .await;
    assert!(
        sent.body.contains("<span id=\"jumlah-diterima\">0</span>"),
        "{}",
        sent.body
    );
    assert_eq!(sim.balikan_records().await, 1);

    // The online form: one record.
    let sent = send(
        client
            .post(gw.portal_url("balikan/isi"))
            .header("Cookie", &cookie)
            .form(&[
                ("NIK", form_nik.as_str()),
                ("NPWPD", "P.2.0009999.33.13"),
                ("NOP_PBB_P2", ""),
            ]),
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(
        sent.body.contains("<span id=\"jumlah-diterima\">1</span>"),
        "{}",
        sent.body
    );
    assert_eq!(sim.balikan_records().await, 2);
    let last = sim.last_request().await;
    let body: serde_json::Value = serde_json::from_str(last["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"data": [{"NIK": form_nik, "NPWPD": "P.2.0009999.33.13"}]})
    );
    // The balikan pages never reached the DWH's portal application.
    assert_eq!(sim.portal_requests().await, portal_before);

    // A file past the header's rules is refused whole, on the page, sending nothing.
    let refused = send(upload(
        &client,
        gw.portal_url("balikan/pratinjau"),
        &cookie,
        "NIK,NAMA_LGKP\r\n1,x\r\n",
    ))
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("NAMA_LGKP tidak diatur"),
        "{}",
        refused.body
    );

    // Another site cannot post a balikan with the browser's cookie.
    let cross = send(
        client
            .post(gw.portal_url("balikan/isi"))
            .header("Cookie", &cookie)
            .header("Origin", "https://evil.example")
            .form(&[("NIK", form_nik.as_str()), ("NPWPD", "P.2.0009999.33.13")]),
    )
    .await;
    assert_eq!(cross.status, 403, "{}", cross.body);
    assert_eq!(sim.balikan_records().await, 2);

    // Without a session: the page sends to the login, a post is refused.
    let anon = gw.portal_client("127.0.0.24");
    let page = send(anon.get(gw.portal_url("balikan"))).await;
    assert_eq!(
        (page.status, page.header("location")),
        (303, "/portal/masuk")
    );
    let post = send(
        anon.post(gw.portal_url("balikan/isi"))
            .form(&[("NIK", form_nik.as_str())]),
    )
    .await;
    assert_eq!(post.status, 401, "{}", post.body);

    // A portal PKS without data balikan: the page says so, a post is refused with 34.
    let other = gw.portal_client("127.0.0.9");
    let cookie = gw.portal_login(&other, "portal_01").await;
    let page = send(
        other
            .get(gw.portal_url("balikan"))
            .header("Cookie", &cookie),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"tanpa-balikan\""), "{}", page.body);
    let post = send(
        other
            .post(gw.portal_url("balikan/isi"))
            .header("Cookie", &cookie)
            .form(&[("NIK", form_nik.as_str()), ("NPWPD", "P.2.0009999.33.13")]),
    )
    .await;
    assert!(post.body.contains("kode 34"), "{}", post.body);
    assert_eq!(sim.balikan_records().await, 2);
}

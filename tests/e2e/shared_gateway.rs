//! Two real `gerbang serve` instances sharing one redis-server (`[quota] store = "redis"`),
//! as behind a balancer that may send each request to either (`docs/gateway.md`, "Several
//! instances"): a portal session started on one is valid on the other and a logout on one
//! ends it on both; a brute force split across the two locks out at the limit of one
//! instance; with Redis killed, sessions are refused (the login page says the service is
//! unavailable) and failed logins are counted by each instance alone; a sanction applied or
//! lifted through either is in force on both, with no file in common. Every test here fails
//! with per-process state. Starts its own redis-server on a loopback port.
#![allow(clippy::unwrap_used)]

use gerbang_e2e::redis::Redis;
use gerbang_e2e::*;

/// The portal User ID's IP LAN.
const PORTAL_LAN: &str = "127.0.0.8/29";
const PORTAL_ADDRESS: &str = "127.0.0.9";
/// The web-service User ID and its address.
const API_USER: &str = "rsud_01";
const API_ADDRESS: &str = "127.0.0.2";
/// An address in another institution's LAN.
const OTHER_LAN: &str = "127.0.0.20";
/// Failures that lock out, on one instance or across both.
const MAX_FAILURES: u32 = 4;

fn agreements() -> Vec<TestPks> {
    vec![
        TestPks {
            metode: r#"["web_portal"]"#,
            kuota: 50,
            ..TestPks::new(
                "portal.toml",
                "6/PORTAL/SHARED",
                vec![TestUser::aktif("portal_01", PORTAL_LAN)],
            )
        },
        TestPks {
            kuota: 1_000,
            ..TestPks::new(
                "rsud.toml",
                "1/RSUD/SHARED",
                vec![TestUser::aktif(API_USER, API_ADDRESS)],
            )
        },
        TestPks::new(
            "lain.toml",
            "2/LAIN/SHARED",
            vec![TestUser::aktif("lain_01", OTHER_LAN)],
        ),
    ]
}

/// One instance on `redis`. Lookups keep working with Redis down (an emergency share), so
/// that what a login answers is the authentication's doing, not the quota's.
fn instance(sim: &Sim, redis: &Redis) -> Gateway {
    Gateway::start(GatewayOptions {
        quota: redis.quota_config(1, 100),
        max_failures: MAX_FAILURES,
        ..GatewayOptions::new(sim.addr, agreements())
    })
}

struct Answer {
    status: u16,
    location: String,
    set_cookie: String,
    body: String,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map_or("", |v| v.to_str().unwrap())
            .to_string()
    };
    let (location, set_cookie) = (header("location"), header("set-cookie"));
    Answer {
        status: r.status().as_u16(),
        location,
        set_cookie,
        body: r.text().await.unwrap(),
    }
}

async fn portal_login(gw: &Gateway, client: &reqwest::Client) -> Answer {
    send(
        client
            .post(gw.portal_url("masuk"))
            .form(&[("user_id", "portal_01"), ("password", PASSWORD)]),
    )
    .await
}

/// The session cookie's `name=value` of a successful login.
async fn logged_in(gw: &Gateway, client: &reqwest::Client) -> String {
    let a = portal_login(gw, client).await;
    assert_eq!(a.status, 303, "login: {}", a.body);
    assert!(
        a.set_cookie.starts_with("gerbang_portal="),
        "{}",
        a.set_cookie
    );
    a.set_cookie.split(';').next().unwrap().to_string()
}

async fn page(gw: &Gateway, client: &reqwest::Client, cookie: &str) -> Answer {
    send(client.get(gw.portal_url("")).header("Cookie", cookie)).await
}

/// A lookup by `user` with `password` from `client`: its response code, `None` for a
/// record, and whether the answer says the login is locked.
async fn lookup(
    gw: &Gateway,
    client: &reqwest::Client,
    nik: &str,
    user: &str,
    password: &str,
) -> (Option<String>, bool) {
    let (_, body) = post(client, &gw.url("CALL_NIK"), call_nik(nik, user, password)).await;
    (response_code(&body), body.contains("Dikunci Sementara"))
}

#[tokio::test]
async fn a_portal_session_from_one_instance_is_valid_on_the_other_and_one_logout_ends_it() {
    let sim = Sim::start(200);
    let redis = Redis::start();
    let (a, b) = (instance(&sim, &redis), instance(&sim, &redis));
    let browser = a.portal_client(PORTAL_ADDRESS);

    // Logged in on A; the balancer sends the next page to B, then back to A.
    let cookie = logged_in(&a, &browser).await;
    for (name, gw) in [("B", &b), ("A", &a), ("B", &b)] {
        let p = page(gw, &browser, &cookie).await;
        assert_eq!(
            p.status, 200,
            "the page on {name}: {} {}",
            p.location, p.body
        );
    }
    // One session per User ID across the instances: a second login on B is refused.
    let second = portal_login(&b, &b.portal_client("127.0.0.10")).await;
    assert_eq!(second.status, 409, "a second session on B: {}", second.body);
    // The cookie is bound to the address on B too.
    let elsewhere = page(&b, &b.portal_client("127.0.0.10"), &cookie).await;
    assert_ne!(elsewhere.status, 200, "the cookie from another address");

    // Logout on B ends the session on A as well.
    let out = send(
        browser
            .post(b.portal_url("keluar"))
            .header("Cookie", &cookie),
    )
    .await;
    assert_eq!((out.status, out.location.as_str()), (303, "/portal/masuk"));
    for (name, gw) in [("A", &a), ("B", &b)] {
        let p = page(gw, &browser, &cookie).await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (303, "/portal/masuk"),
            "after the logout on B, the page on {name}"
        );
    }
    // And the User ID may log in again, on either.
    let cookie = logged_in(&a, &browser).await;
    assert_eq!(page(&b, &browser, &cookie).await.status, 200);
}

#[tokio::test]
async fn a_brute_force_split_across_two_instances_locks_out_at_one_instances_limit() {
    let sim = Sim::start(200);
    let redis = Redis::start();
    let (a, b) = (instance(&sim, &redis), instance(&sim, &redis));
    let nik = sim.sample("alive", 1).await.remove(0);

    // From another institution's LAN, wrong passwords naming the User ID count against that
    // address only, on both instances together: the User ID stays usable.
    let stranger = a.client(OTHER_LAN);
    for i in 0..MAX_FAILURES {
        let gw = if i % 2 == 0 { &a } else { &b };
        let (code, _) = lookup(gw, &stranger, &nik, API_USER, "salah").await;
        assert_eq!(code.as_deref(), Some("04"), "attempt {i} from another LAN");
    }
    let (_, locked) = lookup(&b, &stranger, &nik, "lain_01", PASSWORD).await;
    assert!(locked, "the address that failed on both is locked on both");
    let client = a.client(API_ADDRESS);
    for gw in [&a, &b] {
        assert_eq!(
            lookup(gw, &client, &nik, API_USER, PASSWORD).await,
            (None, false)
        );
    }

    // Wrong passwords from the User ID's own LAN, alternately on A and on B: each instance
    // sees half of them, and the lockout comes at the limit all the same.
    for i in 0..MAX_FAILURES {
        let gw = if i % 2 == 0 { &a } else { &b };
        let (code, locked) = lookup(gw, &client, &nik, API_USER, "salah").await;
        assert_eq!(
            (code.as_deref(), locked),
            (Some("03"), false),
            "attempt {i}"
        );
    }
    for (name, gw) in [("A", &a), ("B", &b)] {
        let (code, locked) = lookup(gw, &client, &nik, API_USER, PASSWORD).await;
        assert!(
            code.as_deref() == Some("03") && locked,
            "the right password on {name} after {MAX_FAILURES} failures split across both: {code:?}"
        );
    }
}

#[tokio::test]
async fn with_redis_down_sessions_are_refused_and_each_instance_counts_its_own_failures() {
    let sim = Sim::start(200);
    let mut redis = Redis::start();
    let (a, b) = (instance(&sim, &redis), instance(&sim, &redis));
    let nik = sim.sample("alive", 1).await.remove(0);
    let browser = a.portal_client(PORTAL_ADDRESS);
    let cookie = logged_in(&a, &browser).await;
    assert_eq!(page(&b, &browser, &cookie).await.status, 200);

    redis.kill();
    // A session cannot be confirmed: logged out on both (fail closed), and told why.
    for (name, gw) in [("A", &a), ("B", &b)] {
        let p = page(gw, &browser, &cookie).await;
        assert!(
            p.status == 503 && p.body.contains("tidak tersedia"),
            "a session on {name} with Redis down: {} {}",
            p.status,
            p.body
        );
        let login = portal_login(gw, &browser).await;
        assert!(
            login.status == 503
                && login.body.contains("tidak tersedia")
                && login.set_cookie.is_empty(),
            "a login on {name} with Redis down: {} {}",
            login.status,
            login.body
        );
    }

    // Failed logins still lock out, counted by the instance that saw them.
    let client = a.client(API_ADDRESS);
    for i in 0..MAX_FAILURES {
        let (code, _) = lookup(&a, &client, &nik, API_USER, "salah").await;
        assert_eq!(code.as_deref(), Some("03"), "attempt {i} on A");
    }
    assert!(
        lookup(&a, &client, &nik, API_USER, PASSWORD).await.1,
        "locked on A"
    );
    assert_eq!(
        lookup(&b, &client, &nik, API_USER, PASSWORD).await,
        (None, false),
        "B saw none of the failures while Redis was down"
    );

    // Redis back (empty: it had no persistence): sessions and shared counting resume.
    redis.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let cookie = loop {
        let a_login = portal_login(&b, &browser).await;
        if a_login.status == 303 {
            break a_login.set_cookie.split(';').next().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no login after Redis came back: {} {}",
            a_login.status,
            a_login.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(page(&a, &browser, &cookie).await.status, 200);
}

/// Applies `sanction` through `gw`'s admin API; its id.
async fn apply(gw: &Gateway, sanction: serde_json::Value) -> String {
    let (status, text) = gw
        .admin(reqwest::Method::POST, "/sanksi", Some(sanction))
        .await;
    assert_eq!(status, 201, "{text}");
    answer_json(&text)["id"].as_str().unwrap().to_string()
}

/// The ids `gw`'s admin API lists as in force.
async fn listed(gw: &Gateway) -> Vec<String> {
    let (status, text) = gw.admin(reqwest::Method::GET, "/sanksi", None).await;
    assert_eq!(status, 200, "{text}");
    answer_json(&text)["sanksi"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sanction_through_either_instance_holds_on_both_across_restarts_and_a_redis_outage() {
    use std::time::Duration;
    let sim = Sim::start(200);
    let mut redis = Redis::start();
    let (a, mut b) = (instance(&sim, &redis), instance(&sim, &redis));
    let nik = sim.sample("alive", 1).await.remove(0);
    let body = call_nik(&nik, API_USER, PASSWORD);
    let inactive = |a: &str| respon(a).as_deref() == Some("User ID Tidak Aktif");
    let served = |a: &str| respon(a).is_none();
    for gw in [&a, &b] {
        until_answer(gw, API_ADDRESS, &body, Duration::ZERO, served).await;
    }

    // A sanction naming nobody is refused, and stored nowhere.
    let (status, text) = a
        .admin(
            reqwest::Method::POST,
            "/sanksi",
            Some(serde_json::json!({"jenis": "nonaktifkan_user", "sasaran": "nobody", "alasan": "uji"})),
        )
        .await;
    assert_eq!(status, 422, "{text}");

    // Applied through A: in force on A at once, and on B within a second, with no file in
    // common (each instance has its own directory and sanctions file).
    let id = apply(
        &a,
        serde_json::json!({"jenis": "nonaktifkan_user", "sasaran": API_USER, "alasan": "Surat Dirjen (uji)"}),
    )
    .await;
    until_answer(&a, API_ADDRESS, &body, Duration::ZERO, inactive).await;
    let took = until_answer(&b, API_ADDRESS, &body, Duration::from_secs(1), inactive).await;
    eprintln!("a sanction applied on A was in force on B after {took:?}");
    for gw in [&a, &b] {
        let file = std::fs::read_to_string(gw.sanctions_path()).unwrap();
        assert!(!file.contains(API_USER), "written to a file: {file}");
        assert_eq!(listed(gw).await, vec![id.clone()]);
    }

    // B restarted: the sanction is in force from its first request.
    b.restart();
    until_answer(&b, API_ADDRESS, &body, Duration::ZERO, inactive).await;

    // Redis unreachable: nothing can be applied or lifted, and what stands stays in force.
    redis.kill();
    let (status, text) = b
        .admin(reqwest::Method::DELETE, &format!("/sanksi/{id}"), None)
        .await;
    assert_eq!(status, 503, "lifting with Redis down: {text}");
    assert!(text.contains("unreachable"), "{text}");
    for gw in [&a, &b] {
        until_answer(gw, API_ADDRESS, &body, Duration::ZERO, inactive).await;
    }

    // Redis back without its data: the instances write the sanction back, so it can be
    // lifted, through B; then A serves again within a second.
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = b
            .admin(reqwest::Method::DELETE, &format!("/sanksi/{id}"), None)
            .await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not written back to Redis: {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_answer(&b, API_ADDRESS, &body, Duration::ZERO, served).await;
    let took = until_answer(&a, API_ADDRESS, &body, Duration::from_secs(1), served).await;
    eprintln!("a sanction lifted on B was lifted on A after {took:?}");
    assert!(listed(&a).await.is_empty());
}

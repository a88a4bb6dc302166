//! Logins as an attacker on the closed network tries them, through the real gateway: a host
//! in one institution's LAN can neither lock another institution's User ID out nor test
//! its passwords or learn which User IDs exist; the User ID's own LAN still locks it out.
#![allow(clippy::unwrap_used)]

use gerbang_e2e::*;

/// Institution A's User ID and LAN, institution B's, and C's (a third LAN to ask from).
const A: (&str, &str) = ("a_01", "127.0.0.2");
const B: (&str, &str) = ("b_01", "127.0.0.3");
const C: (&str, &str) = ("c_01", "127.0.0.4");

fn start(sim: &Sim, max_failures: u32) -> Gateway {
    let pks = |file, nomor, (id, ip): (&'static str, &'static str)| TestPks {
        metode: r#"["web_service", "web_portal"]"#,
        ..TestPks::new(file, nomor, vec![TestUser::aktif(id, ip)])
    };
    Gateway::start(GatewayOptions {
        max_failures,
        ..GatewayOptions::new(
            sim.addr,
            vec![
                pks("a.toml", "1/A/LOGIN", A),
                pks("b.toml", "2/B/LOGIN", B),
                pks("c.toml", "3/C/LOGIN", C),
            ],
        )
    })
}

async fn lookup(gw: &Gateway, source: &str, user: &str, password: &str, nik: &str) -> String {
    post(
        &gw.client(source),
        &gw.url("CALL_NIK"),
        call_nik(nik, user, password),
    )
    .await
    .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_in_another_institutions_lan_never_locks_a_user_id_out() {
    let sim = Sim::start(1_000);
    let gw = start(&sim, 3);
    let nik = sim.sample("alive", 1).await.remove(0);

    // A host in A's LAN hammers B's User ID with guesses, far past the lockout threshold.
    for i in 0..20 {
        let answer = lookup(&gw, A.1, B.0, &format!("tebakan-{i}"), &nik).await;
        let code = response_code(&answer);
        assert!(
            matches!(code.as_deref(), Some("04" | "03")),
            "guess {i}: {answer}"
        );
    }
    // B, from its own LAN, is not locked out.
    let answer = lookup(&gw, B.1, B.0, PASSWORD, &nik).await;
    assert_eq!(
        respon(&answer),
        None,
        "B was locked out by A's host: {answer}"
    );
    // The hammering address is (it counts against itself), even for A's own User ID.
    let answer = lookup(&gw, A.1, A.0, PASSWORD, &nik).await;
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Login Gagal, Akun Dikunci Sementara"),
        "{answer}"
    );

    // Three wrong passwords from B's own LAN still lock B out, even with the right one.
    for _ in 0..3 {
        let answer = lookup(&gw, B.1, B.0, "salah", &nik).await;
        assert_eq!(respon(&answer).as_deref(), Some("Login Gagal"), "{answer}");
    }
    let answer = lookup(&gw, B.1, B.0, PASSWORD, &nik).await;
    assert_eq!(
        respon(&answer).as_deref(),
        Some("Login Gagal, Akun Dikunci Sementara"),
        "{answer}"
    );
    assert_eq!(sim.requests().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_another_lan_the_answer_tells_nothing_about_the_password_or_the_user_id() {
    let sim = Sim::start(1_000);
    // Six refusals from C's address below: none may be a lockout.
    let gw = start(&sim, 10);
    let nik = sim.sample("alive", 1).await.remove(0);

    // From C's LAN: B's User ID with its right password, with a wrong one, and a User ID
    // nobody has. Same code, same text, same detail.
    let answers = [
        lookup(&gw, C.1, B.0, PASSWORD, &nik).await,
        lookup(&gw, C.1, B.0, "salah", &nik).await,
        lookup(&gw, C.1, "tidak_ada", PASSWORD, &nik).await,
    ];
    assert_eq!(response_code(&answers[0]).as_deref(), Some("04"));
    assert_eq!(
        respon(&answers[0]).as_deref(),
        Some("IP Address Tidak Sesuai")
    );
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "the answers differ: {answers:#?}"
    );

    // The Web Portal's login shares the authenticator: the same there.
    let client = gw.portal_client(C.1);
    let mut pages = Vec::new();
    for (user, password) in [(B.0, PASSWORD), (B.0, "salah"), ("tidak_ada", PASSWORD)] {
        let r = client
            .post(gw.portal_url("masuk"))
            .form(&[("user_id", user), ("password", password)])
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("set-cookie").is_none());
        pages.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    assert!(
        pages[0].1.contains("IP Address Tidak Sesuai"),
        "{}",
        pages[0].1
    );
    assert!(pages.iter().all(|p| *p == pages[0]), "{pages:#?}");
    assert_eq!(sim.requests().await, 0);
}

//! The admin listener and live changes end to end: metrics, the PKS set and quota view,
//! sanctions (art. 45) through the API and the CLI that survive a restart, and PKS edits on
//! disk that take effect without a restart or a signal.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gerbang_e2e::*;
use reqwest::Method;
use serde_json::json;

fn agreements() -> Vec<TestPks> {
    let user = |id, ip| TestUser {
        id,
        ip,
        status: "aktif",
    };
    vec![
        TestPks {
            kuota: 40,
            ..TestPks::new(
                "rsud.toml",
                "1/RSUD/ADMIN",
                vec![user("rsud_01", "127.0.0.2"), user("rsud_02", "127.0.0.3")],
            )
        },
        TestPks::new("bkd.toml", "2/BKD/ADMIN", vec![user("bkd_01", "127.0.0.4")]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_wants_the_token_and_serves_metrics_pks_and_quota() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let nik = sim.sample("alive", 1).await.remove(0);
    let client = gw.client("127.0.0.2");
    for _ in 0..3 {
        let (_, answer) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "rsud_01", PASSWORD),
        )
        .await;
        assert_eq!(respon(&answer), None, "{answer}");
    }
    let (_, refused) = post(
        &client,
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", "salah"),
    )
    .await;
    assert_eq!(respon(&refused).as_deref(), Some("Login Gagal"));

    // Health and metrics are open; everything else wants the token.
    let plain = reqwest::Client::new();
    let health = plain
        .get(format!("http://{}/health", gw.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let anonymous = plain
        .get(format!("http://{}/pks", gw.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = plain
        .get(format!("http://{}/pks", gw.admin_addr))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let expected = [
        r#"gerbang_requests_total{action="CallNik",channel="web_service",decision="allow",pengguna="rsud",reason="ok"} 3"#,
        r#"gerbang_quota_used{pengguna="rsud",user_id="rsud_01"} 3"#,
        r#"gerbang_quota_limit{pengguna="rsud",user_id="rsud_01"} 40"#,
        "gerbang_quota_store_up 1",
        r#"gerbang_decision_duration_seconds_count{cache="cold"} 1"#,
        r#"gerbang_decision_duration_seconds_count{cache="warm"} 2"#,
        "gerbang_upstream_duration_seconds_count 3",
        // Counted when the request is logged, after its answer was written: waited for too.
        // A wrong password from the User ID's own IP LAN is its Pengguna's refusal.
        r#"decision="deny",pengguna="rsud",reason="login_failed"} 1"#,
    ];
    let metrics = gw.metrics_with(&expected).await;
    for line in expected {
        assert!(metrics.contains(line), "missing `{line}` in:\n{metrics}");
    }
    assert!(!metrics.contains(&nik), "a NIK in the metrics");

    let (status, body) = gw.admin(Method::GET, "/pks", None).await;
    assert_eq!(status, 200, "{body}");
    let list = answer_json(&body);
    assert_eq!(list["pks"].as_array().unwrap().len(), 2, "{body}");
    let (status, body) = gw
        .admin(Method::GET, "/pks?nomor=1%2FRSUD%2FADMIN", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("argon2"),
        "a password hash in the PKS detail: {body}"
    );
    assert_eq!(answer_json(&body)["users"][0]["used_today"], 3, "{body}");

    let (status, body) = gw.admin(Method::GET, "/quota?user=rsud_01", None).await;
    assert_eq!(status, 200, "{body}");
    let row = &answer_json(&body)["quota"][0];
    assert_eq!(
        (
            row["used"].as_u64(),
            row["limit"].as_u64(),
            row["remaining"].as_u64()
        ),
        (Some(3), Some(40), Some(37)),
        "{body}"
    );
    assert!(
        row["reset"].as_str().unwrap().ends_with("T00:00:00+07:00"),
        "{body}"
    );
    let (status, _) = gw.admin(Method::GET, "/quota?user=nobody", None).await;
    assert_eq!(status, 404);

    // The CLI asks the same API, with the address and token from gerbang.toml.
    let out = std::process::Command::new(bin("gerbang"))
        .args(["quota", "show", "--pengguna", "rsud", "--config"])
        .arg(gw.dir.path().join("gerbang.toml"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rsud_01 = shown
        .lines()
        .find(|l| l.starts_with("rsud_01"))
        .unwrap_or_else(|| panic!("{shown}"));
    let fields: Vec<&str> = rsud_01.split_whitespace().collect();
    assert_eq!(&fields[2..5], ["3", "40", "37"], "{shown}");
    assert!(shown.contains("rsud_02"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sanction_refuses_the_next_request_survives_a_restart_and_can_be_lifted() {
    let sim = Sim::start(1_000);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let nik = sim.sample("alive", 1).await.remove(0);
    let client = gw.client("127.0.0.2");
    let body = call_nik(&nik, "rsud_01", PASSWORD);
    let (_, answer) = post(&client, &gw.url("CALL_NIK"), body.clone()).await;
    assert_eq!(respon(&answer), None, "{answer}");

    // A sanction naming nobody is refused, and the file keeps its previous content.
    let (status, text) = gw
        .admin(
            Method::POST,
            "/sanksi",
            Some(json!({"jenis": "nonaktifkan_user", "sasaran": "nobody", "alasan": "uji"})),
        )
        .await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("nobody"), "{text}");
    let on_disk = std::fs::read_to_string(gw.dir.path().join("sanksi.toml")).unwrap();
    assert!(!on_disk.contains("nobody"), "{on_disk}");

    let (status, text) = gw
        .admin(
            Method::POST,
            "/sanksi",
            Some(json!({
                "jenis": "nonaktifkan_user",
                "sasaran": "rsud_01",
                "alasan": "Surat Dirjen 470/123 (uji)",
                "oleh": "e2e"
            })),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    let id = answer_json(&text)["id"].as_str().unwrap().to_string();
    // The very next request is refused: the API answers after the set is swapped.
    let (_, answer) = post(&client, &gw.url("CALL_NIK"), body.clone()).await;
    assert_eq!(
        respon(&answer).as_deref(),
        Some("User ID Tidak Aktif"),
        "{answer}"
    );
    // Another User ID of the same PKS is untouched.
    let (_, other) = post(
        &gw.client("127.0.0.3"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_02", PASSWORD),
    )
    .await;
    assert_eq!(respon(&other), None, "{other}");

    // The file Ditjen reads holds it, with its comment kept.
    let on_disk = std::fs::read_to_string(gw.dir.path().join("sanksi.toml")).unwrap();
    assert!(
        on_disk.starts_with("# Sanksi pasal 45") && on_disk.contains("Surat Dirjen 470/123"),
        "{on_disk}"
    );
    assert!(
        gw.metrics()
            .await
            .contains(r#"gerbang_sanctions_active{kind="user"} 1"#),
        "no sanction metric"
    );

    // A quota reduction through the CLI, then a restart: both still in force.
    let config = gw.dir.path().join("gerbang.toml");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(bin("gerbang"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "gerbang {args:?}: {text}");
        text
    };
    cli(&[
        "sanksi",
        "add",
        "--jenis",
        "kurangi_kuota",
        "--sasaran",
        "rsud_02",
        "--kuota-harian",
        "5",
        "--alasan",
        "uji pengurangan",
    ]);
    // A clean stop writes exact counts (a kill -9 would count the reserved block).
    gw.stop();
    gw.restart();
    let (_, answer) = post(&client, &gw.url("CALL_NIK"), body.clone()).await;
    assert_eq!(
        respon(&answer).as_deref(),
        Some("User ID Tidak Aktif"),
        "{answer}"
    );
    let (_, other) = post(
        &gw.client("127.0.0.3"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_02", PASSWORD),
    )
    .await;
    assert_eq!(quota_limiter(&other), Some(3), "5 a day, 2 used: {other}");
    let listed = cli(&["sanksi", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("kurangi_kuota rsud_02 (kuota 5/hari)"),
        "{listed}"
    );

    // Lifted: the User ID works again at once.
    cli(&["sanksi", "lift", &id]);
    let (_, answer) = post(&client, &gw.url("CALL_NIK"), body).await;
    assert_eq!(respon(&answer), None, "{answer}");
    let (status, _) = gw
        .admin(Method::DELETE, &format!("/sanksi/{id}"), None)
        .await;
    assert_eq!(status, 404, "lifting twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pks_edit_on_disk_applies_within_a_second_and_a_broken_one_is_refused_and_counted() {
    let sim = Sim::start(1_000);
    let gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let nik = sim.sample("alive", 1).await.remove(0);
    let body = call_nik(&nik, "bkd_01", PASSWORD);
    let client = gw.client("127.0.0.4");
    let (_, answer) = post(&client, &gw.url("CALL_NIK"), body.clone()).await;
    assert!(
        record_keys(&answer).contains(&"NAMA_LGKP".to_string()),
        "{answer}"
    );

    // Ditjen narrows the elements: written as editors do (new file, renamed over).
    let path = gw.pks_path("bkd.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let narrowed = text.replace("\"NAMA_LGKP\", ", "");
    assert_ne!(narrowed, text);
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &narrowed).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let took = until_answer(&gw, "127.0.0.4", &body, Duration::from_secs(1), |a| {
        respon(a).is_none() && !record_keys(a).contains(&"NAMA_LGKP".to_string())
    })
    .await;
    eprintln!("PKS edit in effect after {took:?}");

    // A broken edit in place: the running set stays, the error names file and line.
    std::fs::write(&path, text.replace("\"NIK\", ", "\"NIK_BARU\", ")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = gw.metrics().await;
        if metrics.contains(r#"gerbang_policy_reloads_total{result="error"} 1"#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed reload counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.proc.stderr_with(&["bkd.toml:", "NIK_BARU"]).await;
    let (_, answer) = post(&client, &gw.url("CALL_NIK"), body.clone()).await;
    assert!(
        respon(&answer).is_none() && !record_keys(&answer).contains(&"NAMA_LGKP".to_string()),
        "{answer}"
    );

    // The admin API's reload says why too.
    let (status, text) = gw.admin(Method::POST, "/reload", None).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("NIK_BARU"), "{text}");
    std::fs::write(&path, &narrowed).unwrap();
    let (status, text) = gw.admin(Method::POST, "/reload", None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(answer_json(&text)["reloaded"]["pks"], 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_policies_are_evaluated_and_counted_but_never_enforced() {
    let sim = Sim::start(1_000);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    // A candidate set that would also forbid the full name.
    let candidate = gw.dir.path().join("candidate");
    std::fs::create_dir_all(&candidate).unwrap();
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, candidate.join(path.file_name().unwrap())).unwrap();
        }
    }
    let rules = std::fs::read_to_string(candidate.join("elemen.cedar")).unwrap();
    std::fs::write(
        candidate.join("elemen.cedar"),
        rules + "\n// Trial: no full names.\n@id(\"trial-no-name\")\nforbid (principal, action == Gerbang::Action::\"ReadElement\", resource == Gerbang::Element::\"NAMA_LGKP\");\n",
    )
    .unwrap();
    let config_path = gw.dir.path().join("gerbang.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        config.replace("[policy]\n", "[policy]\nshadow_dir = \"candidate\"\n"),
    )
    .unwrap();
    gw.stop();
    gw.restart();

    let nik = sim.sample("alive", 1).await.remove(0);
    let client = gw.client("127.0.0.4");
    for _ in 0..3 {
        let (_, answer) = post(
            &client,
            &gw.url("CALL_NIK"),
            call_nik(&nik, "bkd_01", PASSWORD),
        )
        .await;
        // The active set decides: the name is still released.
        assert!(
            record_keys(&answer).contains(&"NAMA_LGKP".to_string()),
            "{answer}"
        );
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"gerbang_shadow_disagreements_total{active="allow",shadow="allow"} 3"#),
        "{metrics}"
    );
    let log = gw.proc.stderr_with(&["shadow policies disagree"]).await;
    assert_eq!(log.matches("shadow policies disagree").count(), 1, "{log}");
    assert!(
        log.contains("trial-no-name") || log.contains("shadow.elements"),
        "{log}"
    );
    // The logged difference names the element the candidate would withhold.
    let line = log
        .lines()
        .find(|l| l.contains("shadow policies disagree"))
        .unwrap();
    let field = |name: &str| {
        let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        line[start..].split('"').next().unwrap().to_string()
    };
    assert!(field("active.elements").contains("NAMA_LGKP"), "{line}");
    assert!(!field("shadow.elements").contains("NAMA_LGKP"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sanction_applied_through_one_instance_is_in_force_on_the_other_within_a_second() {
    let sim = Sim::start(1_000);
    let first = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let second = first.sibling();
    let nik = sim.sample("alive", 1).await.remove(0);
    let body = call_nik(&nik, "rsud_01", PASSWORD);
    for gw in [&first, &second] {
        let (_, answer) = post(&gw.client("127.0.0.2"), &gw.url("CALL_NIK"), body.clone()).await;
        assert_eq!(respon(&answer), None, "{answer}");
    }
    let (status, text) = first
        .admin(
            Method::POST,
            "/sanksi",
            Some(json!({"jenis": "nonaktifkan_user", "sasaran": "rsud_01", "alasan": "uji dua instans"})),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    let took = until_answer(&second, "127.0.0.2", &body, Duration::from_secs(1), |a| {
        respon(a).as_deref() == Some("User ID Tidak Aktif")
    })
    .await;
    eprintln!("sanction in force on the other instance after {took:?}");
    // Lifted through the other instance: both serve again.
    let id = answer_json(&text)["id"].as_str().unwrap().to_string();
    let (status, text) = second
        .admin(Method::DELETE, &format!("/sanksi/{id}"), None)
        .await;
    assert_eq!(status, 200, "{text}");
    until_answer(&first, "127.0.0.2", &body, Duration::from_secs(1), |a| {
        respon(a).is_none()
    })
    .await;
}

/// Sends `request` to `addr` and reads until the status line arrives or the server closes
/// the connection; returns what was read and how long it took. Fails after 30 s.
fn hold(addr: std::net::SocketAddr, request: String) -> (String, Duration) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    stream.write_all(request.as_bytes()).unwrap();
    let mut read = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                read.extend_from_slice(&buf[..n]);
                if read.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the admin listener still holds the connection after 30 s: {e}"),
        }
    }
    (
        String::from_utf8_lossy(&read).to_string(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_cannot_hold_the_admin_listener() {
    let sim = Sim::start(100);
    let gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    let (status, _) = gw.admin(Method::GET, "/health", None).await;
    assert_eq!(status, 200);
    let addr = gw.admin_addr;
    // A head that never ends, and a sanction whose body never comes.
    let head = tokio::task::spawn_blocking(move || {
        hold(addr, "GET /health HTTP/1.1\r\nHost: admin\r\n".to_string())
    });
    let body = tokio::task::spawn_blocking(move || {
        hold(
            addr,
            format!(
                "POST /sanksi HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"jenis\":"
            ),
        )
    });
    // Meanwhile the listener answers others.
    let (status, _) = gw.admin(Method::GET, "/pks", None).await;
    assert_eq!(status, 200);
    let (head, head_took) = head.await.unwrap();
    assert!(
        !head.starts_with("HTTP/1.1 200"),
        "an unfinished head was answered: {head:?}"
    );
    let (body, body_took) = body.await.unwrap();
    assert!(body.starts_with("HTTP/1.1 408"), "{body:?}");
    eprintln!("unfinished head closed after {head_took:?}, unfinished body after {body_took:?}");
    let on_disk = std::fs::read_to_string(gw.sanctions_path()).unwrap();
    assert!(!on_disk.contains("[[sanksi]]"), "{on_disk}");
    // An oversized body is refused whole: a 413, or the connection closed on the rest of it
    // (the server does not read past its limit); never a sanction applied.
    let sent = reqwest::Client::new()
        .post(format!("http://{addr}/sanksi"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"jenis": "nonaktifkan_user", "sasaran": "rsud_01", "alasan": "x".repeat(20_000)}))
        .send()
        .await;
    if let Ok(r) = sent {
        assert_eq!(r.status().as_u16(), 413);
    }
    let on_disk = std::fs::read_to_string(gw.sanctions_path()).unwrap();
    assert!(!on_disk.contains("[[sanksi]]"), "{on_disk}");
}

/// Runs a `gerbang` command to its end (killed after 60 s); returns whether it succeeded
/// and what it printed.
fn run_gerbang(args: &[&str], config: &std::path::Path) -> (bool, String) {
    let mut child = std::process::Command::new(bin("gerbang"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gerbang {args:?} still runs after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = read_all(child.stdout.take().unwrap()) + &read_all(child.stderr.take().unwrap());
    (status.success(), out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_token_file_or_a_remote_plaintext_listener_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let sim = Sim::start(100);
    let mut gw = Gateway::start(GatewayOptions::new(sim.addr, agreements()));
    gw.stop();
    let config = gw.dir.path().join("gerbang.toml");
    let token = gw.dir.path().join("admin.token");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fix = format!("chmod 600 {}", token.display());
    for args in [&["serve"][..], &["check"], &["sanksi", "list"]] {
        let (ok, out) = run_gerbang(args, &config);
        assert!(
            !ok,
            "gerbang {args:?} accepted a token file others can read:\n{out}"
        );
        assert!(
            out.contains("0644") && out.contains(&fix),
            "{args:?}: {out}"
        );
    }
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out) = run_gerbang(&["check"], &config);
    assert!(ok, "{out}");

    // The admin listener on every interface, in plain HTTP: refused unless said.
    let text = std::fs::read_to_string(&config).unwrap();
    let admin = format!("address = \"{}\"", gw.admin_addr);
    assert!(text.contains(&admin));
    let open = format!("address = \"0.0.0.0:{}\"", gw.admin_addr.port());
    std::fs::write(&config, text.replace(&admin, &open)).unwrap();
    for args in [&["serve"][..], &["check"]] {
        let (ok, out) = run_gerbang(args, &config);
        assert!(!ok, "gerbang {args:?} accepted 0.0.0.0:\n{out}");
        assert!(
            out.contains("admin.address")
                && out.contains("not a loopback address")
                && out.contains("allow_non_loopback = true"),
            "{args:?}: {out}"
        );
    }
    std::fs::write(
        &config,
        text.replace(&admin, &format!("{open}\nallow_non_loopback = true")),
    )
    .unwrap();
    let (ok, out) = run_gerbang(&["check"], &config);
    assert!(ok, "{out}");
}

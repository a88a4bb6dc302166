//! The simulator over real HTTP: in-process servers on port 0, a real client.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gerbang_dwh_sim::{
    FUZZY_FIELDS, Misbehaviour, NUMERIC_FIELDS, PROTECTED_FIELDS, Population, RECORD_FIELDS,
    SampleKind, ServerTls, SimState, serve,
};
use serde_json::{Value, json};

/// Starts a server on its own thread and runtime, so it outlives any one test's runtime.
fn start(
    seed: u64,
    people: usize,
    tls: Option<ServerTls>,
) -> (std::net::SocketAddr, Arc<SimState>) {
    let state = Arc::new(SimState::new(Population::generate(seed, people)));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("local addr");
    let served = Arc::clone(&state);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            serve(listener, served, tls).await;
        });
    });
    (addr, state)
}

/// One server of 100,000 people shared by the tests that only read.
fn shared() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let (addr, _) = start(42, 100_000, None);
        format!("http://{addr}")
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// POSTs a body; returns the raw text after checking status and content type.
async fn post(url: &str, body: &str) -> String {
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .expect("content type"),
        "application/json"
    );
    response.text().await.expect("body")
}

async fn post_json(url: &str, body: &str) -> Value {
    serde_json::from_str(&post(url, body).await).expect("JSON answer")
}

async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.expect("request");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

async fn sample(base: &str, kind: &str, n: usize) -> Vec<String> {
    let (status, body) = get(&format!("{base}/__sim/sample?kind={kind}&n={n}")).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    body["nik"]
        .as_array()
        .expect("nik list")
        .iter()
        .map(|n| n.as_str().expect("NIK as a string").to_owned())
        .collect()
}

async fn record(base: &str, nik: &str) -> Value {
    let (status, body) = get(&format!("{base}/__sim/record?nik={nik}")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

fn code(answer: &Value) -> &str {
    answer["content"][0]["RESPONSE_CODE"]
        .as_str()
        .unwrap_or("none")
}

fn assert_single_page(answer: &Value) {
    for (key, want) in [
        ("lastPage", json!(true)),
        ("numberOfElements", json!(1)),
        ("sort", Value::Null),
        ("totalElements", json!(1)),
        ("firstPage", json!(true)),
        ("number", json!(0)),
        ("size", json!(1)),
    ] {
        assert_eq!(answer[key], want, "{key}");
    }
    assert_eq!(answer["content"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn call_nik_answers_the_full_record_with_exact_numbers() {
    let base = shared();
    for nik in sample(base, "alive", 5).await {
        let url = format!("{base}/dukcapil/get_json/bkd_kra/CALL_NIK");
        let raw = post(
            &url,
            &format!(r#"{{"nik":"{nik}","user_id":"u","password":"p","ip_user":"10.0.0.1"}}"#),
        )
        .await;
        // Digit-exact in the raw text, as a number (no quotes), whatever the JSON parser.
        assert!(
            raw.starts_with(&format!(r#"{{"content":[{{"NIK":{nik},"NO_KK":"#)),
            "{raw}"
        );
        let answer: Value = serde_json::from_str(&raw).expect("JSON");
        assert_single_page(&answer);
        let person = answer["content"][0].as_object().expect("record object");
        let keys: Vec<&str> = person.keys().map(String::as_str).collect();
        let mut want: Vec<&str> = RECORD_FIELDS.to_vec();
        let mut got = keys.clone();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
        for field in PROTECTED_FIELDS {
            assert!(
                person[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field}"
            );
        }
        for field in RECORD_FIELDS {
            let numeric = NUMERIC_FIELDS.contains(&field);
            assert_eq!(person[field].is_u64(), numeric, "{field} type");
            assert_eq!(person[field].is_string(), !numeric, "{field} type");
        }
        let kk = person["NO_KK"].as_u64().expect("NO_KK number");
        assert!(raw.contains(&format!(r#""NO_KK":{kk:016},"#)));
        let tgl = person["TGL_LHR"].as_str().expect("TGL_LHR");
        assert!(
            tgl.len() == 10 && tgl.as_bytes()[4] == b'-' && tgl.as_bytes()[7] == b'-',
            "{tgl}"
        );
        // The record hook answers the same record.
        assert_eq!(&record(base, &nik).await, &answer["content"][0]);
    }
}

#[tokio::test]
async fn call_nik_accepts_any_key_case_numbers_and_the_regional_path() {
    let base = shared();
    let nik = sample(base, "female", 1).await.remove(0);
    for (path, body) in [
        (
            "dukcapil/get_json/bkd/call_nik",
            format!(r#"{{"NIK":"{nik}"}}"#),
        ),
        (
            "dukcapil/get_json/bkd/Call_Nik",
            format!(r#"{{"Nik":{nik},"USER_ID":"u"}}"#),
        ),
        (
            "dukcapil/get_json/33-13/bkd_kra/call_nik",
            format!(r#"{{"nik":{nik}}}"#),
        ),
        (
            "dukcapil/get_json/33-13/bkd_kra/CALL_NIK",
            format!(r#"{{"nIk":" {nik} "}}"#),
        ),
    ] {
        let answer = post_json(&format!("{base}/{path}"), &body).await;
        assert_eq!(
            answer["content"][0]["NIK"].to_string(),
            nik,
            "{path} {body}"
        );
        assert_eq!(answer["content"][0]["JENIS_KLMIN"], "PEREMPUAN");
    }
}

#[tokio::test]
async fn call_nik_error_codes() {
    let base = shared();
    let url = format!("{base}/dukcapil/get_json/bkd/CALL_NIK");
    for (body, want, text) in [
        (r#"{"user_id":"u"}"#, "07", "Parameter Tidak Lengkap"),
        (r#"{"nik":null}"#, "07", "Parameter Tidak Lengkap"),
        ("", "07", "Parameter Tidak Lengkap"),
        (
            r#"{"nik":"320101410190"}"#,
            "15",
            "NIK Tidak Sesuai Format Dukcapil",
        ),
        (
            r#"{"nik":"3201013501900001"}"#,
            "15",
            "NIK Tidak Sesuai Format Dukcapil",
        ),
        (
            r#"{"nik":"320101410190000x"}"#,
            "15",
            "NIK Tidak Sesuai Format Dukcapil",
        ),
        (
            r#"{"nik":3.2e15}"#,
            "15",
            "NIK Tidak Sesuai Format Dukcapil",
        ),
        (
            r#"{"nik":"9601010101010001"}"#,
            "13",
            "Data Tidak Ditemukan",
        ),
    ] {
        let answer = post_json(&url, body).await;
        assert_eq!(code(&answer), want, "{body}");
        assert_eq!(answer["content"][0]["RESPON"], text, "{body}");
        assert_single_page(&answer);
    }
    for (kind, want, text) in [
        ("deceased", "11", "Data Ditemukan, Status Meninggal Dunia"),
        ("duplicate", "12", "Data Ditemukan, NIK Ganda"),
        ("inactive", "14", "Data Ditemukan, Status Tidak Aktif"),
    ] {
        for nik in sample(base, kind, 3).await {
            let answer = post_json(&url, &format!(r#"{{"nik":"{nik}"}}"#)).await;
            assert_eq!(code(&answer), want, "{kind}");
            assert_eq!(answer["content"][0]["RESPON"], text);
            // The hook still shows the record behind the code.
            assert_eq!(record(base, &nik).await["NIK"].to_string(), nik);
        }
    }
}

#[tokio::test]
async fn verification_judges_each_claim() {
    let base = shared();
    let url = format!("{base}/dukcapil/get_json/bkd/CALL_VERIFY_BY_ELEMEN");
    let nik = sample(base, "alive", 1).await.remove(0);
    let person = record(base, &nik).await;
    let name = person["NAMA_LGKP"].as_str().expect("name");
    let tgl = person["TGL_LHR"].as_str().expect("date");
    let (y, m, d) = (&tgl[..4], &tgl[5..7], &tgl[8..]);
    let mut typo = name.to_owned();
    typo.replace_range(0..1, if typo.starts_with('X') { "Y" } else { "X" });
    let body = json!({
        "USER_ID": "u", "PASSWORD": "p", "IP_USER": "10.0.0.5", "TRESHOLD": "100",
        "NIK": nik,
        "NAMA_LGKP": name.to_lowercase(),
        "TGL_LHR": format!("{d}-{m}-{y}"),
        "JENIS_KLMIN": person["JENIS_KLMIN"],
        "NO_RT": format!("0{}", person["NO_RT"]),
        "no_kk": person["NO_KK"],
        "ALAMAT": person["ALAMAT"].as_str().expect("address").replace(". ", " ").to_lowercase(),
        "AGAMA": "NO SUCH RELIGION",
        "PNYDNG_CACAT": person["PNYDNG_CACAT"],
    });
    let answer = post_json(&url, &body.to_string()).await;
    assert_single_page(&answer);
    assert!(answer["quotaLimiter"].is_u64(), "{answer}");
    let verdicts = &answer["content"][0];
    assert_eq!(verdicts["NIK"], "Sesuai");
    assert_eq!(verdicts["NAMA_LGKP"], "Sesuai (100)");
    assert_eq!(verdicts["TGL_LHR"], "Sesuai");
    assert_eq!(verdicts["JENIS_KLMIN"], "Sesuai");
    assert_eq!(verdicts["NO_RT"], "Sesuai");
    assert_eq!(verdicts["NO_KK"], "Sesuai");
    assert_eq!(verdicts["ALAMAT"], "Sesuai (100)");
    assert_eq!(verdicts["AGAMA"], "Tidak Sesuai");
    assert_eq!(verdicts["PNYDNG_CACAT"], "Sesuai");
    assert!(verdicts.get("USER_ID").is_none() && verdicts.get("TRESHOLD").is_none());
    // Verdicts come back in the order of the claims (written by hand: `json!` may sort).
    let raw = post(
        &url,
        &format!(r#"{{"TGL_LHR":"{tgl}","NIK":"{nik}","NAMA_LGKP":"{name}","AGAMA":"X"}}"#),
    )
    .await;
    let at = |key: &str| raw.find(&format!("\"{key}\":")).expect(key);
    assert!(
        at("NIK") < at("TGL_LHR")
            && at("TGL_LHR") < at("NAMA_LGKP")
            && at("NAMA_LGKP") < at("AGAMA"),
        "{raw}"
    );

    // A one-letter typo scores below 100: fails at 100, passes at 50, default 90 by length.
    let len = typo.chars().count() as f64;
    let score = ((1.0 - 1.0 / len) * 100.0).round() as u32;
    for (threshold, word) in [
        (json!(100), "Tidak Sesuai"),
        (json!("50"), "Sesuai"),
        (json!(score), "Sesuai"),
    ] {
        let body =
            json!({"NIK": nik, "NAMA_LGKP": typo, "TRESHOLD": threshold, "TGL_LHR": "1900-01-01"});
        let answer = post_json(&url, &body.to_string()).await;
        assert_eq!(
            answer["content"][0]["NAMA_LGKP"],
            format!("{word} ({score})"),
            "{threshold}"
        );
        assert_eq!(answer["content"][0]["TGL_LHR"], "Tidak Sesuai");
    }
    let body = json!({"NIK": nik, "NAMA_LGKP": typo});
    let want = if score >= 90 {
        "Sesuai"
    } else {
        "Tidak Sesuai"
    };
    let answer = post_json(&url, &body.to_string()).await;
    assert_eq!(
        answer["content"][0]["NAMA_LGKP"],
        format!("{want} ({score})")
    );

    // Every fuzzy field answers with a score.
    let mut claims = serde_json::Map::new();
    claims.insert("NIK".into(), json!(nik));
    for field in FUZZY_FIELDS {
        claims.insert(field.into(), person[field].clone());
    }
    let answer = post_json(&url, &Value::Object(claims).to_string()).await;
    for field in FUZZY_FIELDS {
        assert_eq!(answer["content"][0][field], "Sesuai (100)", "{field}");
    }

    for (body, want) in [
        (json!({"NIK": "9601010101010001", "NAMA_LGKP": "X"}), "13"),
        (json!({"NAMA_LGKP": "X"}), "07"),
        (json!({"NIK": "12345"}), "15"),
        (json!({"NIK": nik, "TRESHOLD": 0}), "07"),
    ] {
        let answer = post_json(&url, &body.to_string()).await;
        assert_eq!(code(&answer), want, "{body}");
        assert!(answer["content"][0]["RESPONSE_DESC"].is_string());
        assert!(answer["quotaLimiter"].is_u64());
    }
}

#[tokio::test]
async fn search_by_elements_finds_matching_records() {
    let base = shared();
    let url = format!("{base}/dukcapil/get_json/polri/CALL_BY_ELEMEN");
    let nik = sample(base, "alive", 1).await.remove(0);
    let person = record(base, &nik).await;
    let body = json!({
        "USER_ID": "u", "PASSWORD": "p", "IP_USER": "10.0.0.5",
        "nama_lgkp": person["NAMA_LGKP"].as_str().expect("name").to_lowercase(),
        "TGL_LHR": person["TGL_LHR"],
        "JENIS_KLMIN": person["JENIS_KLMIN"],
    });
    let raw = post(&url, &body.to_string()).await;
    assert!(raw.contains(&format!(r#""NIK":{nik},"#)));
    let answer: Value = serde_json::from_str(&raw).expect("JSON");
    let content = answer["content"].as_array().expect("content");
    assert!(content.iter().any(|r| r == &person));
    assert_eq!(answer["numberOfElements"], json!(content.len()));
    assert_eq!(answer["totalElements"], json!(content.len()));
    for r in content {
        assert_eq!(r["NAMA_LGKP"], person["NAMA_LGKP"]);
        assert_eq!(r["TGL_LHR"], person["TGL_LHR"]);
        assert_eq!(r.as_object().map(|o| o.len()), Some(RECORD_FIELDS.len()));
    }

    // A one-word name and a sex match many people: the page holds 20, the total says more.
    let mut common = None;
    for nik in sample(base, "alive", 200).await {
        let name = record(base, &nik).await["NAMA_LGKP"]
            .as_str()
            .expect("name")
            .to_owned();
        if !name.contains(' ') {
            common = Some((nik, name));
            break;
        }
    }
    let (nik, name) = common.expect("someone with a one-word name");
    let sex = record(base, &nik).await["JENIS_KLMIN"].clone();
    let answer = post_json(
        &url,
        &json!({"NAMA_LGKP": name, "JENIS_KLMIN": sex}).to_string(),
    )
    .await;
    let content = answer["content"].as_array().expect("content");
    let total = answer["totalElements"].as_u64().expect("total");
    assert_eq!(answer["numberOfElements"], json!(content.len()));
    assert!(
        content.len() <= 20 && total >= content.len() as u64,
        "{total}"
    );
    assert_eq!(answer["lastPage"], json!(total <= 20));
    assert!(
        content
            .iter()
            .all(|r| r["NAMA_LGKP"] == name.as_str() && r["JENIS_KLMIN"] == sex)
    );

    for (body, want) in [
        (json!({"NAMA_LGKP": name}), "07"),
        (json!({"TGL_LHR": "1990-01-01", "JENIS_KLMIN": "L"}), "07"),
        (
            json!({"NAMA_LGKP": name, "USER_ID": "u", "PASSWORD": "p"}),
            "07",
        ),
        (json!({"NAMA_LGKP": name, "TGL_LHR": "01-01-1800"}), "13"),
        (
            json!({"NAMA_LGKP": "NOBODY HAS THIS NAME", "NO_PROP": 32}),
            "13",
        ),
    ] {
        assert_eq!(
            code(&post_json(&url, &body.to_string()).await),
            want,
            "{body}"
        );
    }
}

#[tokio::test]
async fn hooks_count_reset_sample_and_delay() {
    let (addr, state) = start(11, 3_000, None);
    let base = format!("http://{addr}");
    assert_eq!(
        get(&format!("{base}/__sim/health")).await,
        (200, "ok".to_owned())
    );
    let reset = client()
        .post(format!("{base}/__sim/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), 200);
    let stats = |body: &str| serde_json::from_str::<Value>(body).expect("stats JSON");
    assert_eq!(
        stats(&get(&format!("{base}/__sim/stats")).await.1),
        json!({
            "requests": 0, "call_nik": 0, "verify": 0, "by_elemen": 0, "portal": 0,
            "balikan": 0, "balikan_records": 0
        })
    );

    let nik = sample(&base, "alive", 1).await.remove(0);
    let data = format!("{base}/dukcapil/get_json/x");
    post(
        &format!("{data}/CALL_NIK"),
        &format!(r#"{{"nik":"{nik}"}}"#),
    )
    .await;
    post(&format!("{data}/call_nik"), "{}").await;
    post(
        &format!("{data}/CALL_VERIFY_BY_ELEMEN"),
        &format!(r#"{{"nik":"{nik}"}}"#),
    )
    .await;
    post(&format!("{data}/CALL_BY_ELEMEN"), r#"{"NAMA_LGKP":"A"}"#).await;
    let unknown = client()
        .post(format!("{data}/CALL_KK"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), 404);
    let want = json!({
        "requests": 5, "call_nik": 2, "verify": 1, "by_elemen": 1, "portal": 0,
        "balikan": 0, "balikan_records": 0
    });
    assert_eq!(stats(&get(&format!("{base}/__sim/stats")).await.1), want);
    assert_eq!(state.stats().requests, 5);
    let reset = client()
        .post(format!("{base}/__sim/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(stats(&reset.text().await.expect("body"))["requests"], 0);

    // Samples are deterministic and follow the library.
    let women = sample(&base, "female", 4).await;
    assert_eq!(women, state.population().sample(SampleKind::Female, 4));
    assert_eq!(sample(&base, "female", 4).await, women);
    assert_eq!(sample(&base, "any", 0).await.len(), 0);
    let (status, _) = get(&format!("{base}/__sim/sample?kind=nobody")).await;
    assert_eq!(status, 400);
    let (status, _) = get(&format!("{base}/__sim/sample?kind=any&n=x")).await;
    assert_eq!(status, 400);
    let (status, _) = get(&format!("{base}/__sim/record?nik=9601010101010001")).await;
    assert_eq!(status, 404);
    let (status, body) = get(&format!("{base}/no/such/path")).await;
    assert_eq!(status, 404);
    assert!(serde_json::from_str::<Value>(&body).is_ok());
    let (status, _) = get(&format!("{base}/__sim/reset")).await;
    assert_eq!(status, 405);

    // A delay slows data requests down, not the hooks.
    let delay = client()
        .post(format!("{base}/__sim/delay"))
        .body(r#"{"ms":300}"#)
        .send()
        .await
        .expect("delay");
    assert_eq!(delay.status(), 200);
    assert_eq!(state.delay(), Duration::from_millis(300));
    let started = Instant::now();
    post(
        &format!("{data}/CALL_NIK"),
        &format!(r#"{{"nik":"{nik}"}}"#),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let bad = client()
        .post(format!("{base}/__sim/delay"))
        .body(r#"{"ms":-1}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), 400);
    client()
        .post(format!("{base}/__sim/delay"))
        .body(r#"{"ms":0}"#)
        .send()
        .await
        .expect("delay");
    assert_eq!(state.delay(), Duration::ZERO);
}

#[tokio::test]
async fn serves_https_with_a_given_certificate() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert_pem = cert.cert.pem();
    let tls = ServerTls::from_pem(
        cert_pem.as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .expect("TLS settings");
    let (addr, _) = start(5, 500, Some(tls));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("root"))
        .resolve("localhost", addr)
        .build()
        .expect("client");
    let url = format!("https://localhost:{}/__sim/health", addr.port());
    let response = client.get(&url).send().await.expect("HTTPS request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "ok");
    assert!(ServerTls::from_pem(b"", b"").is_err());
    assert!(ServerTls::from_pem(cert_pem.as_bytes(), b"not a key").is_err());
}

#[tokio::test]
async fn last_shows_the_request_as_received_and_misbehave_answers_wrongly() {
    let (addr, state) = start(12, 2_000, None);
    let base = format!("http://{addr}");
    assert_eq!(get(&format!("{base}/__sim/last")).await.0, 404);
    let nik = sample(&base, "alive", 1).await.remove(0);
    let body = format!(r#"{{"NIK":"{nik}","NAMA_LGKP":"X"}}"#);
    let verify = format!("{base}/dukcapil/get_json/a%2Fb;c/CALL_VERIFY_BY_ELEMEN?q=1");
    let verdicts = post_json(&verify, &body).await;
    assert_eq!(verdicts["content"][0]["NIK"], "Sesuai");
    let (status, last) = get(&format!("{base}/__sim/last")).await;
    assert_eq!(status, 200);
    let last: Value = serde_json::from_str(&last).expect("JSON");
    assert_eq!(last["method"], "POST");
    assert_eq!(
        last["target"],
        "/dukcapil/get_json/a%2Fb;c/CALL_VERIFY_BY_ELEMEN?q=1"
    );
    assert_eq!(last["body"], body);
    assert!(
        last["headers"]
            .as_array()
            .expect("headers")
            .contains(&json!(["content-type", "application/json"])),
        "{last}"
    );
    assert_eq!(state.last_request().expect("kept").body, body.as_bytes());

    // Misbehaving: a verification is answered with the person's values…
    let misbehave = |mode: &str| {
        let url = format!("{base}/__sim/misbehave");
        let body = format!(r#"{{"mode":"{mode}"}}"#);
        async move { client().post(url).body(body).send().await.expect("switch") }
    };
    assert_eq!(misbehave("verify_values").await.status(), 200);
    let values = post_json(&verify, &body).await;
    assert_eq!(values["content"][0]["NIK"].to_string(), nik);
    assert!(values["content"][0]["NAMA_LGKP"].as_str().is_some());
    assert_eq!(
        get(&format!("{base}/__sim/misbehave")).await,
        (200, r#"{"mode":"verify_values"}"#.to_owned())
    );
    // …and a lookup with another person's record.
    assert_eq!(misbehave("other_person").await.status(), 200);
    let lookup = format!("{base}/dukcapil/get_json/x/CALL_NIK");
    let other = post_json(&lookup, &format!(r#"{{"nik":"{nik}"}}"#)).await;
    let other = other["content"][0]["NIK"].to_string();
    assert_ne!(other, nik);
    assert_eq!(other.len(), 16);
    assert_eq!(state.misbehaviour(), Misbehaviour::OtherPerson);
    state.set_misbehaviour(Misbehaviour::None);
    assert_eq!(
        post_json(&verify, &body).await["content"][0]["NIK"],
        "Sesuai"
    );
    assert_eq!(misbehave("sometimes").await.status(), 400);
}

#[tokio::test]
async fn balikan_batches_are_checked_counted_and_kept_as_last() {
    let (addr, state) = start(13, 1_000, None);
    let base = format!("http://{addr}");
    let stats = || async {
        let (status, body) = get(&format!("{base}/__sim/stats")).await;
        assert_eq!(status, 200);
        serde_json::from_str::<Value>(&body).expect("stats JSON")
    };
    let niks = sample(&base, "alive", 2).await;
    let url = format!("{base}/dukcapil/balikan/bkd-karanganyar");
    let body = format!(
        r#"{{"data":[{{"NIK":"{}","NOP_PBB_P2":"331309000100200010","NPWPD":"P.2.0001234.33.13"}},{{"NIK":"{}","NOP_PBB_P2":"331309000100200011"}}]}}"#,
        niks[0], niks[1]
    );
    assert_eq!(
        post_json(&format!("{url}?x=1"), &body).await,
        json!({"content":[{"RESPON":"Data Balikan Diterima","JUMLAH":2}],"lastPage":true,
            "numberOfElements":1,"sort":null,"totalElements":1,"firstPage":true,"number":0,
            "size":1})
    );
    let (status, last) = get(&format!("{base}/__sim/last")).await;
    assert_eq!(status, 200);
    let last: Value = serde_json::from_str(&last).expect("JSON");
    assert_eq!(last["method"], "POST");
    assert_eq!(last["target"], "/dukcapil/balikan/bkd-karanganyar?x=1");
    assert_eq!(last["body"], body);
    let s = stats().await;
    assert_eq!(
        (s["balikan"].as_u64(), s["balikan_records"].as_u64()),
        (Some(1), Some(2))
    );
    // A batch is not a lookup.
    assert_eq!(s["requests"], 0);

    // Each malformed batch: the DWH's error page, HTTP 200, nothing counted as records.
    let nik = &niks[0];
    let too_many = format!(
        r#"{{"data":[{}]}}"#,
        vec![format!(r#"{{"NIK":"{nik}","NO_RM":"1"}}"#); 1001].join(",")
    );
    let cases = [
        ("not json".to_owned(), "07", "Data balikan bukan objek JSON"),
        (
            r#"{"rows":[]}"#.to_owned(),
            "07",
            "Data balikan tidak memiliki larik data",
        ),
        (
            format!(r#"{{"data":[{{"NIK":"{nik}"}},"x"]}}"#),
            "07",
            "Data balikan ke-2 bukan objek",
        ),
        (
            format!(r#"{{"data":[{{"NIK":"{nik}","NO_RM":7}}]}}"#),
            "07",
            "Data balikan ke-1 memuat nilai bukan teks",
        ),
        (
            format!(r#"{{"data":[{{"NIK":"{nik}","no_rm":"7"}}]}}"#),
            "07",
            "Data balikan ke-1 memuat nama kolom tidak sah",
        ),
        (
            r#"{"data":[{"NIK":"320101410190","NO_RM":"7"}]}"#.to_owned(),
            "15",
            "NIK data balikan ke-1 tidak sesuai format",
        ),
        (
            r#"{"data":[{"NO_RM":"7"}]}"#.to_owned(),
            "07",
            "Data balikan ke-1 tidak memuat NIK",
        ),
        (
            too_many,
            "07",
            "Jumlah data balikan 1001 melebihi batas 1000 per kiriman",
        ),
    ];
    for (body, want, desc) in &cases {
        let answer = post_json(&url, body).await;
        assert_eq!(code(&answer), *want, "{desc}");
        assert_eq!(answer["content"][0]["RESPONSE_DESC"], *desc);
        let respon = answer["content"][0]["RESPON"].as_str().unwrap_or_default();
        assert!(
            [
                "Parameter Tidak Lengkap",
                "NIK Tidak Sesuai Format Dukcapil"
            ]
            .contains(&respon),
            "{respon}"
        );
        assert_single_page(&answer);
        // Refused or not, it reached the DWH as sent.
        let last: Value =
            serde_json::from_str(&get(&format!("{base}/__sim/last")).await.1).expect("JSON");
        assert_eq!(last["body"], *body);
    }
    let s = stats().await;
    assert_eq!(s["balikan"].as_u64(), Some(1 + cases.len() as u64));
    assert_eq!(s["balikan_records"], 2);

    // The path names a Pengguna; only POST; the body is bounded.
    for bad in ["BKD", "a/b", ""] {
        let response = client()
            .post(format!("{base}/dukcapil/balikan/{bad}"))
            .body(body.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 404, "{bad}");
    }
    assert_eq!(get(&url).await.0, 405);
    let huge = format!(r#"{{"data":[],"pad":"{}"}}"#, "x".repeat(1 << 20));
    let response = client().post(&url).body(huge).send().await.expect("send");
    assert_eq!(response.status(), 413);
    assert_eq!(state.stats().balikan_records, 2);

    // The delay slows batches down as it does lookups; reset zeroes the counters.
    state.set_delay(Duration::from_millis(200));
    let started = Instant::now();
    post_json(&url, r#"{"data":[]}"#).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    state.set_delay(Duration::ZERO);
    let reset = client()
        .post(format!("{base}/__sim/reset"))
        .send()
        .await
        .expect("reset");
    let reset: Value = serde_json::from_str(&reset.text().await.expect("body")).expect("JSON");
    assert_eq!(
        (reset["balikan"].as_u64(), reset["balikan_records"].as_u64()),
        (Some(0), Some(0))
    );
}

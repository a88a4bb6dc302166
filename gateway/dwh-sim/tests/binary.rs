//! The `dwh-sim` binary: the readiness line on stdout, then HTTP on the printed address.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use gerbang_dwh_sim::{Population, SampleKind};

/// Kills the child when the test ends, even on panic.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn prints_its_address_then_serves() {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_dwh-sim"))
            .args(["--listen", "127.0.0.1:0", "--people", "2000", "--seed", "3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dwh-sim"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("readiness line");
    let url = line
        .trim_end()
        .strip_prefix("dwh-sim listening on ")
        .expect("the readiness line")
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );

    let body = reqwest::get(format!("{url}/__sim/sample?kind=deceased&n=3"))
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let want = Population::generate(3, 2000).sample(SampleKind::Deceased, 3);
    assert_eq!(answer["nik"], serde_json::json!(want));
}

#[test]
fn refuses_half_a_tls_configuration() {
    let output = Command::new(env!("CARGO_BIN_EXE_dwh-sim"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert", "cert.pem"])
        .output()
        .expect("run dwh-sim");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
}

//! `gerbang reader lookup`: a card-reader simulator. It signs a `CALL_NIK` exactly as a
//! reader does (docs/sam.md: the five `X-SAM-*` headers over the canonical string, plus the
//! body's `Content-Digest`), sends it from a chosen source address, and prints the answer.
//! Passing an earlier `--nonce` and `--timestamp` sends a replay.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::options::BiometricArg;
use anyhow::{Context as _, Result};
use gerbang_sam::{Biometric, ReaderKey, SignInput, content_digest, new_nonce, sign};

/// Exit status when the gateway answered with a refusal instead of data.
const REFUSED: u8 = 3;

/// Options of `gerbang reader lookup`.
#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    /// The gateway's base URL, e.g. https://localhost:8443
    #[arg(long)]
    gateway: String,
    /// The reader's private key file (`gerbang sam keygen` writes one).
    #[arg(long)]
    key: PathBuf,
    /// The SAM id to send (default: the one in the key file).
    #[arg(long)]
    sam_id: Option<String>,
    /// The User ID.
    #[arg(long)]
    user: String,
    /// The User ID's password.
    #[arg(long)]
    password: String,
    /// The NIK to look up.
    #[arg(long)]
    nik: String,
    /// The reader's 1:1 fingerprint result: match or no_match.
    #[arg(long, value_enum, default_value_t = BiometricArg::Match)]
    biometric: BiometricArg,
    /// PEM CA to verify the gateway's certificate with.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Connect from this local address (it must be the User ID's IP LAN).
    #[arg(long)]
    source: Option<IpAddr>,
    /// The {instansi} segment of the path.
    #[arg(long, default_value = "CARD_READER")]
    instansi: String,
    /// Reuse this nonce (with --timestamp: replay an earlier request).
    #[arg(long)]
    nonce: Option<String>,
    /// Unix seconds to sign with (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
}

/// A signed card-reader `CALL_NIK`: where it goes, its headers and its body.
#[derive(Debug, Clone)]
pub struct SignedLookup {
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub timestamp: i64,
    pub nonce: String,
}

/// What one reader request is made of.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    pub instansi: &'a str,
    pub sam_id: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub nik: &'a str,
    pub biometric: Biometric,
    /// Unix seconds; `None`: now.
    pub timestamp: Option<i64>,
    /// `None`: a fresh random nonce.
    pub nonce: Option<&'a str>,
}

/// Builds and signs a `CALL_NIK` as a card reader does.
pub fn sign_lookup(key: &ReaderKey, lookup: &Lookup<'_>) -> Result<SignedLookup> {
    let path = format!("/dukcapil/get_json/{}/CALL_NIK", lookup.instansi);
    let body = serde_json::json!({
        "nik": lookup.nik,
        "user_id": lookup.user,
        "password": lookup.password,
    })
    .to_string();
    let timestamp = lookup
        .timestamp
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let nonce = match lookup.nonce {
        Some(n) => n.to_string(),
        None => new_nonce().context("drawing a random nonce")?,
    };
    let sam = sign(
        &key.signing,
        &SignInput {
            sam_id: lookup.sam_id,
            method: "POST",
            path: &path,
            body: body.as_bytes(),
            user_id: lookup.user,
            biometric: lookup.biometric,
            timestamp,
            nonce: &nonce,
        },
    );
    let mut headers = sam.into_pairs();
    headers.push(("Content-Digest", content_digest(body.as_bytes())));
    Ok(SignedLookup {
        path,
        headers,
        body,
        timestamp,
        nonce,
    })
}

/// Runs `gerbang reader lookup`: 0 when data came back, 3 when the gateway refused.
pub fn lookup(args: &LookupArgs) -> Result<ExitCode> {
    let key = ReaderKey::load(&args.key)?;
    let biometric = Biometric::from(args.biometric);
    let signed = sign_lookup(
        &key,
        &Lookup {
            instansi: &args.instansi,
            sam_id: args.sam_id.as_deref().unwrap_or(&key.sam_id),
            user: &args.user,
            password: &args.password,
            nik: &args.nik,
            biometric,
            timestamp: args.timestamp,
            nonce: args.nonce.as_deref(),
        },
    )?;
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(source) = args.source {
        builder = builder.local_address(source);
    }
    if let Some(ca) = &args.ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    let client = builder.build().context("building the HTTP client")?;
    let url = format!("{}{}", args.gateway.trim_end_matches('/'), signed.path);
    eprintln!(
        "reader: POST {url} as SAM {} (timestamp {}, nonce {}); to replay it: --timestamp {} --nonce {}",
        signed.headers[0].1, signed.timestamp, signed.nonce, signed.timestamp, signed.nonce
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (status, answer) = runtime.block_on(async {
        let mut request = client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(signed.body.clone());
        for (name, value) in &signed.headers {
            request = request.header(*name, value.as_str());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.context("reading the answer")?;
        anyhow::Ok((status, text))
    })?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{answer}").context("writing the answer")?;
    let respon = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v["content"][0]["RESPON"].as_str().map(str::to_string));
    match respon {
        Some(respon) => {
            eprintln!("reader: refused (HTTP {status}): {respon}");
            Ok(ExitCode::from(REFUSED))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

//! `gerbang certs dev`: a development CA and server/client certificates, generated on this
//! machine (private keys are never committed; `certs/` ignores them).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Names the development server certificate is valid for.
const SERVER_NAMES: &[&str] = &[
    "localhost",
    "gerbang.local",
    "dwh.local",
    "127.0.0.1",
    "::1",
];

/// Writes `ca.pem`, `server.pem`/`server.key` and `client.pem`/`client.key` into `dir`.
pub fn dev(dir: &Path, force: bool) -> Result<()> {
    let files = [
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ];
    if !force && files.iter().any(|f| dir.join(f).exists()) {
        bail!(
            "{} already holds certificates; use --force to replace them",
            dir.display()
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Gerbang development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(
        SERVER_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    )?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "gerbang.local");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // A year, as a real certificate lasts, so that renewal and its alert can be tried;
    // from yesterday, so a clock a little behind accepts it.
    let [(y0, m0, d0), (y1, m1, d1)] = one_year_from_yesterday();
    server_params.not_before = rcgen::date_time_ymd(y0, m0, d0);
    server_params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "gerbang-admin");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer)?;

    write(dir, "ca.pem", &ca_cert.pem(), false)?;
    write(dir, "ca.key", &issuer.key().serialize_pem(), true)?;
    write(dir, "server.pem", &server_cert.pem(), false)?;
    write(dir, "server.key", &server_key.serialize_pem(), true)?;
    write(dir, "client.pem", &client_cert.pem(), false)?;
    write(dir, "client.key", &client_key.serialize_pem(), true)?;
    Ok(())
}

/// Yesterday and a year after today (UTC dates), as year, month, day.
fn one_year_from_yesterday() -> [(i32, u8, u8); 2] {
    use chrono::Datelike as _;
    let ymd = |d: chrono::NaiveDate| {
        (
            d.year(),
            u8::try_from(d.month()).unwrap_or(1),
            u8::try_from(d.day()).unwrap_or(1),
        )
    };
    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap_or(today);
    // 29 February has no date a year later: the 28th then.
    let next_year = today
        .with_year(today.year() + 1)
        .or_else(|| today.with_day(28).and_then(|d| d.with_year(d.year() + 1)))
        .unwrap_or(today);
    [ymd(yesterday), ymd(next_year)]
}

fn write(dir: &Path, name: &str, contents: &str, secret: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    let mode = if secret { 0o600 } else { 0o644 };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true).mode(mode);
    let mut file = opts
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

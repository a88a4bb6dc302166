//! What `gerbang check` says beyond errors. A configuration can be valid, so that `serve`
//! starts, and still not be ready for Pengguna: the Debian package installs one like that
//! (no PKS file yet, the DWH address a placeholder, a self-signed certificate made at
//! install), and keys can be missing from a configuration that names them. Each gap is one
//! line saying what to do; `check` still exits 0 for them, as the files are valid.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use gerbang_core::Config;
use x509_parser::pem::parse_x509_pem;

/// Days before a certificate's end from which `check` warns.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// Where operators read how to obtain and install certificates.
const CERTS_HELP: &str =
    "see certs/README.md in the repository or /usr/share/doc/gerbang/certs/README.md";

/// The gaps of a valid configuration with `agreements` PKS loaded, at `now` (Unix seconds).
pub fn gaps(config: &Config, agreements: usize, now: i64) -> Vec<String> {
    let mut gaps = Vec::new();
    if agreements == 0 {
        gaps.push(format!(
            "no PKS file in {}: every request is refused (code 10) until one is added; check it with `gerbang check`",
            config.pks_dir.display()
        ));
    }
    if is_documentation(config.upstream.address) {
        gaps.push(format!(
            "upstream.address {} is a documentation address no host has (the package's placeholder): set the DWH Terpusat's address",
            config.upstream.address
        ));
    }
    if let Some(tls) = &config.listen.tls
        && let Some(gap) = certificate_gap(&tls.cert, now)
    {
        gaps.push(gap);
    }
    if let Some(key_file) = config.audit.as_ref().and_then(|a| a.key_file.as_deref())
        && let Err(e) = gerbang_audit::AuditKey::load(Some(key_file))
    {
        gaps.push(format!("{e}: `gerbang serve` will not start"));
    }
    if let Err(e) = config.load_admin_token() {
        gaps.push(format!("{e}: `gerbang serve` will not start"));
    }
    gaps
}

/// Addresses reserved for documentation (RFC 5737, RFC 3849): the package's placeholder for
/// the DWH, never a real host.
fn is_documentation(address: SocketAddr) -> bool {
    match address.ip() {
        IpAddr::V4(ip) => matches!(
            ip.octets(),
            [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]
        ),
        IpAddr::V6(ip) => ip.segments()[..2] == [0x2001, 0x0db8],
    }
}

/// What is wrong with the certificate Pengguna are shown, if anything: self-signed (as the
/// one the package makes at install), ended, or ending within [`EXPIRY_WARNING_DAYS`].
fn certificate_gap(path: &Path, now: i64) -> Option<String> {
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return Some(format!("cannot read the TLS certificate {shown}: {e}")),
    };
    let pem = match parse_x509_pem(&bytes) {
        Ok((_, pem)) => pem,
        Err(e) => return Some(format!("{shown} is not a PEM certificate: {e}")),
    };
    let cert = match pem.parse_x509() {
        Ok(cert) => cert,
        Err(e) => return Some(format!("{shown} holds no readable certificate: {e}")),
    };
    let ends = cert.validity().not_after;
    let days_left = (ends.timestamp() - now).div_euclid(86_400);
    if days_left < 0 {
        Some(format!(
            "the TLS certificate {shown} ended on {ends}: Pengguna cannot connect; install a renewed one ({CERTS_HELP})"
        ))
    } else if cert.subject().as_raw() == cert.issuer().as_raw() {
        Some(format!(
            "the TLS certificate {shown} is self-signed (the package makes one at install): Pengguna cannot verify it; install one issued by your CA ({CERTS_HELP})"
        ))
    } else if days_left < EXPIRY_WARNING_DAYS {
        Some(format!(
            "the TLS certificate {shown} ends on {ends}, in {days_left} day(s): install a renewed one ({CERTS_HELP})"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    /// 2027-01-15 00:00 UTC.
    const NOW: i64 = 1_799_971_200;

    fn config(dir: &Path, extra: &str) -> Config {
        let text = format!(
            "[listen]\naddress = \"0.0.0.0:8443\"\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n\
             [upstream]\naddress = \"10.20.30.40:8080\"\n[pks]\ndir = \"pks\"\n[policy]\ndir = \"p\"\n{extra}"
        );
        Config::parse(&dir.join("gerbang.toml"), &text).expect("valid")
    }

    /// A certificate for `server.pem` in `dir`, ending `days` after [`NOW`]: self-signed, or
    /// issued by a CA of its own.
    fn certificate(dir: &Path, self_signed: bool, days: i64) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["gerbang.example".to_string()]).expect("params");
        let (y, m, d) = ymd(NOW - 86_400);
        params.not_before = rcgen::date_time_ymd(y, m, d);
        let (y, m, d) = ymd(NOW + days * 86_400);
        params.not_after = rcgen::date_time_ymd(y, m, d);
        let cert = if self_signed {
            params.self_signed(&key).expect("cert")
        } else {
            let ca_key = KeyPair::generate().expect("key");
            let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.distinguished_name
                .push(rcgen::DnType::CommonName, "CA Uji");
            params
                .signed_by(&key, &Issuer::new(ca, ca_key))
                .expect("cert")
        };
        std::fs::write(dir.join("server.pem"), cert.pem()).expect("write");
    }

    /// The UTC day holding `unix`, as rcgen takes dates (at its start).
    fn ymd(unix: i64) -> (i32, u8, u8) {
        use chrono::Datelike as _;
        let d = chrono::DateTime::from_timestamp(unix, 0).expect("time");
        let byte = |n: u32| u8::try_from(n).expect("day or month");
        (d.year(), byte(d.month()), byte(d.day()))
    }

    /// Writes a secret as the package does: readable by its owner only (the gateway refuses
    /// a token file others can read).
    fn secret(path: &std::path::Path, text: &str) {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .expect("open");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
    }

    #[test]
    fn a_first_install_is_told_what_to_add() {
        let dir = tempfile::tempdir().expect("tempdir");
        certificate(dir.path(), true, 365);
        let mut c = config(dir.path(), "");
        c.upstream.address = "192.0.2.1:8080".parse().expect("addr");
        let gaps = gaps(&c, 0, NOW);
        assert_eq!(gaps.len(), 3, "{gaps:#?}");
        assert!(gaps[0].contains("no PKS file in"), "{}", gaps[0]);
        assert!(
            gaps[1].contains("192.0.2.1:8080 is a documentation address"),
            "{}",
            gaps[1]
        );
        assert!(gaps[2].contains("server.pem is self-signed"), "{}", gaps[2]);
    }

    #[test]
    fn a_configured_gateway_has_no_gaps() {
        let dir = tempfile::tempdir().expect("tempdir");
        certificate(dir.path(), false, 365);
        secret(&dir.path().join("audit.key"), &"ab".repeat(32));
        secret(&dir.path().join("admin.token"), &"t".repeat(40));
        let c = config(
            dir.path(),
            "[audit]\ndir = \"audit\"\nkey_file = \"audit.key\"\n[admin]\naddress = \"127.0.0.1:9100\"\ntoken_file = \"admin.token\"\n",
        );
        assert_eq!(gaps(&c, 1, NOW), Vec::<String>::new());
    }

    #[test]
    fn certificates_near_or_past_their_end_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = config(dir.path(), "");
        certificate(dir.path(), false, 10);
        let gaps_now = gaps(&c, 1, NOW);
        assert!(gaps_now[0].contains("in 10 day(s)"), "{gaps_now:?}");
        certificate(dir.path(), false, -2);
        let gaps_now = gaps(&c, 1, NOW);
        assert!(
            gaps_now[0].contains("Pengguna cannot connect"),
            "{gaps_now:?}"
        );
        std::fs::write(dir.path().join("server.pem"), "not a certificate").expect("write");
        assert!(gaps(&c, 1, NOW)[0].contains("is not a PEM certificate"));
    }

    #[test]
    fn missing_keys_say_serve_would_not_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        certificate(dir.path(), false, 365);
        secret(&dir.path().join("admin.token"), "short");
        let c = config(
            dir.path(),
            "[audit]\ndir = \"audit\"\nkey_file = \"audit.key\"\n[admin]\naddress = \"127.0.0.1:9100\"\ntoken_file = \"admin.token\"\n",
        );
        let gaps = gaps(&c, 1, NOW);
        assert_eq!(gaps.len(), 2, "{gaps:#?}");
        assert!(
            gaps[0].contains("cannot read the audit key file"),
            "{}",
            gaps[0]
        );
        assert!(gaps[1].contains("at least 32 characters"), "{}", gaps[1]);
        assert!(
            gaps.iter()
                .all(|g| g.ends_with("`gerbang serve` will not start"))
        );
    }

    #[test]
    fn documentation_addresses_are_recognised() {
        for a in [
            "192.0.2.1:1",
            "198.51.100.7:1",
            "203.0.113.255:1",
            "[2001:db8::1]:1",
        ] {
            assert!(is_documentation(a.parse().expect("addr")), "{a}");
        }
        for a in [
            "10.0.0.1:1",
            "192.0.3.1:1",
            "127.0.0.1:1",
            "[2001:db9::1]:1",
        ] {
            assert!(!is_documentation(a.parse().expect("addr")), "{a}");
        }
    }
}

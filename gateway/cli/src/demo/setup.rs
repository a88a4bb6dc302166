//! What the demo prepares before it starts anything: development certificates and
//! secrets where the configuration expects them, a place for the logs, free ports.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use gerbang_core::Config;

use super::printout::shown;

/// Generates development certificates where the configuration expects them, if missing.
pub(super) fn ensure_certs(config: &Config) -> Result<()> {
    let Some(tls) = &config.listen.tls else {
        return Ok(());
    };
    if tls.cert.is_file() && tls.key.is_file() {
        return Ok(());
    }
    let dir = tls
        .cert
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    println!(
        "no TLS certificate at {}: generating development certificates in {}",
        shown(&tls.cert),
        shown(dir)
    );
    crate::certs::dev(dir, false).with_context(|| {
        format!(
            "generating development certificates (to replace a partial set: `gerbang certs dev --dir {} --force`)",
            shown(dir)
        )
    })?;
    if !(tls.cert.is_file() && tls.key.is_file()) {
        bail!(
            "the configuration names {} and {}, but `gerbang certs dev` writes server.pem and server.key",
            shown(&tls.cert),
            shown(&tls.key)
        );
    }
    Ok(())
}

/// Writes a random secret (the admin token, the audit key) where the configuration expects
/// one, if missing, readable by this user only.
pub(super) fn ensure_secret(path: Option<&PathBuf>, what: &str) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    if path.is_file() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", shown(dir)))?;
    }
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing the {what} {}", shown(path)))?;
    std::io::Write::write_all(&mut file, token.as_bytes())?;
    println!("wrote a random {what} to {}", shown(path));
    Ok(())
}

/// Where the children's logs go: beside the binaries (the target directory), or the
/// temporary directory if that is not writable.
pub(super) fn log_dir(bin_dir: &Path) -> PathBuf {
    let probe = bin_dir.join(".demo-write-test");
    match File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            bin_dir.to_path_buf()
        }
        Err(_) => std::env::temp_dir(),
    }
}

/// Refuses to start when a port the demo needs is taken, naming it.
pub(super) fn port_free(addr: SocketAddr, what: &str) -> Result<()> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "port {} for {what} is already in use: is another demo, dwh-sim or gateway running? (`ss -ltnp 'sport = :{}'` shows which process)",
            addr,
            addr.port()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} for {what}")),
    }
}

//! `loadgen gen-config`: a synthetic Gerbang configuration with N PKS files and M User
//! IDs, each User ID on its own /32 (127.1.0.1, 127.1.0.2, … so the bench can send from
//! them), all sharing one argon2id hash made once with `gerbang passwd`. Also writes
//! `users.tsv` for `loadgen run`, and unless told otherwise the decision log as deployed:
//! an `[audit]` table with its log directory and a random key file beside gerbang.toml.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use chrono::{Days, NaiveDate};
use clap::{ArgAction, Args};

/// The password of every synthetic User ID.
pub const PASSWORD: &str = "bench-rahasia-2026";

/// Elements every synthetic PKS grants (none protected).
const ELEMEN: &str = r#"["NIK", "NO_KK", "NAMA_LGKP", "JENIS_KLMIN", "TMPT_LHR", "TGL_LHR", "STATUS_KAWIN", "JENIS_PKRJN", "ALAMAT"]"#;

/// The first source address; User ID j (from 0) gets this + j.
pub const FIRST_IP: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);

#[derive(Debug, Clone, Args)]
pub struct GenArgs {
    /// Number of PKS files.
    #[arg(long)]
    pub pks: usize,
    /// Number of User IDs, spread evenly over the PKS files (at least one each).
    #[arg(long)]
    pub users: usize,
    /// Directory to write gerbang.toml, pks/ and users.tsv into (created).
    #[arg(long)]
    pub dir: PathBuf,
    /// The DWH (dwh-sim) address.
    #[arg(long, default_value = "127.0.0.1:9080")]
    pub upstream: SocketAddr,
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// TLS certificate (PEM); without it the listener is plaintext.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// argon2id hash of the password; by default made with `<gerbang> passwd`.
    #[arg(long)]
    pub hash: Option<String>,
    /// The gerbang binary (for `passwd`).
    #[arg(long, default_value = "target/release/gerbang")]
    pub gerbang: PathBuf,
    /// Worker threads of the gateway (default: Gerbang's own, the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Directory of the Cedar schema and rules, written as `[policy] dir` (builds of Gerbang
    /// with the Cedar engine need it; older builds refuse the table).
    #[arg(long)]
    pub policy_dir: Option<PathBuf>,
    /// Body of a `[quota]` table (e.g. `store = "redis"` and `redis_url = "…"`); without it
    /// Gerbang's default store (embedded redb beside gerbang.toml).
    #[arg(long)]
    pub quota: Option<String>,
    /// Leave out the `[audit]` table. By default the gateway keeps its decision log as
    /// deployed: `audit/` beside gerbang.toml, sealed with `audit.key` (32 random bytes in
    /// hex, mode 0600, kept if already there), fsync at the gateway's default interval.
    #[arg(long = "no-audit", action = ArgAction::SetFalse)]
    pub audit: bool,
}

/// The decision log's directory, relative to gerbang.toml.
pub const AUDIT_DIR: &str = "audit";

/// The audit key file, relative to gerbang.toml.
const AUDIT_KEY_FILE: &str = "audit.key";

/// Hashes [`PASSWORD`] with `gerbang passwd`.
pub fn hash_password(gerbang: &Path) -> anyhow::Result<String> {
    let mut child = Command::new(gerbang)
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {} passwd", gerbang.display()))?;
    child
        .stdin
        .take()
        .context("stdin of gerbang passwd")?
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .context("writing to gerbang passwd")?;
    let out = child
        .wait_with_output()
        .context("waiting for gerbang passwd")?;
    if !out.status.success() {
        bail!("gerbang passwd failed ({})", out.status);
    }
    let hash = String::from_utf8(out.stdout)
        .context("gerbang passwd output")?
        .trim()
        .to_string();
    if !hash.starts_with("$argon2id$") {
        bail!("gerbang passwd printed no argon2id hash: {hash:?}");
    }
    Ok(hash)
}

/// Writes a random audit key (32 bytes, hex, readable by this user only) to `path`,
/// unless a key is already there: a log written under one key cannot be continued under
/// another, so a second `gen-config` into the same directory keeps it.
fn ensure_audit_key(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if path.is_file() {
        return Ok(());
    }
    let key: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating the audit key {}", path.display()))?;
    writeln!(file, "{key}").with_context(|| format!("writing the audit key {}", path.display()))
}

/// The source address of User ID `j`.
pub fn user_ip(j: usize) -> anyhow::Result<Ipv4Addr> {
    let n = u32::from(FIRST_IP)
        .checked_add(u32::try_from(j).context("too many users")?)
        .context("too many users")?;
    let ip = Ipv4Addr::from(n);
    if ip.octets()[0] != 127 {
        bail!("user {j} would fall outside 127.0.0.0/8");
    }
    Ok(ip)
}

/// Today in WIB (UTC+7), as the gateway counts validity.
fn today_wib() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(7)).date_naive()
}

/// Writes the configuration. Returns the path of gerbang.toml.
pub fn generate(a: &GenArgs) -> anyhow::Result<PathBuf> {
    if a.pks == 0 || a.users < a.pks {
        bail!("need at least one PKS and at least one User ID per PKS");
    }
    let hash = match &a.hash {
        Some(h) => h.clone(),
        None => hash_password(&a.gerbang)?,
    };
    let pks_dir = a.dir.join("pks");
    std::fs::create_dir_all(&pks_dir).with_context(|| format!("creating {}", pks_dir.display()))?;
    let today = today_wib();
    let mulai = today
        .checked_sub_days(Days::new(30))
        .context("date arithmetic")?;
    let sampai = today
        .checked_add_days(Days::new(365))
        .context("date arithmetic")?;
    let mut users_tsv = String::new();
    let mut j = 0usize;
    for i in 0..a.pks {
        // PKS i holds User IDs [i*M/N, (i+1)*M/N).
        let last = (i + 1) * a.users / a.pks;
        let mut text = format!(
            "# Synthetic PKS for make bench.\n\
             nomor = \"BENCH/{i:05}/2026\"\n\
             pengguna = \"bench-{i:05}\"\n\
             nama_pengguna = \"Lembaga Uji Kinerja {i}\"\n\
             jenis_pengguna = \"opd\"\n\
             tingkat = \"pusat\"\n\
             tujuan = \"Pengukuran kinerja gateway\"\n\
             elemen_data = {ELEMEN}\n\
             metode_akses = [\"web_service\"]\n\
             kunci_akses = [\"NIK\"]\n\
             mulai = {mulai}\n\
             sampai = {sampai}\n\
             status = \"aktif\"\n"
        );
        while j < last {
            let ip = user_ip(j)?;
            let id = format!("bench_{j:05}");
            write!(
                text,
                "\n[[user]]\nid = \"{id}\"\npassword_hash = \"{hash}\"\nip_lan = [\"{ip}/32\"]\nkuota_harian = 1000000000\nstatus = \"aktif\"\n"
            )?;
            writeln!(users_tsv, "{id}\t{PASSWORD}\t{ip}")?;
            j += 1;
        }
        let path = pks_dir.join(format!("bench-{i:05}.toml"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let listen = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        _ => "plaintext = true\n".to_string(),
    };
    let server = a
        .threads
        .map_or(String::new(), |t| format!("\n[server]\nthreads = {t}\n"));
    let policy = a.policy_dir.as_ref().map_or(String::new(), |d| {
        format!("\n[policy]\ndir = \"{}\"\n", d.display())
    });
    let quota = a
        .quota
        .as_ref()
        .map_or(String::new(), |q| format!("\n[quota]\n{q}\n"));
    let audit = if a.audit {
        ensure_audit_key(&a.dir.join(AUDIT_KEY_FILE))?;
        format!(
            "\n[audit]\n\
             # The decision log as deployed (docs/audit.md); fsync_interval_ms and\n\
             # refuse_on_failure are the gateway's defaults (50 ms, true).\n\
             dir = \"{AUDIT_DIR}\"\nkey_file = \"{AUDIT_KEY_FILE}\"\n"
        )
    } else {
        String::new()
    };
    let config = format!(
        "# Synthetic configuration for make bench ({} PKS, {} User IDs).\n\
         instance = \"bench\"\n\n\
         [listen]\naddress = \"{}\"\n{listen}\n\
         [upstream]\naddress = \"{}\"\nconnect_timeout_ms = 1000\ntimeout_ms = 5000\n\n\
         [api]\nstatus_mode = \"dwh\"\nmax_body_bytes = 16384\n\n\
         [auth]\nmax_failures = 5\nfailure_window_secs = 300\nlockout_secs = 300\n\n\
         [pks]\ndir = \"pks\"\n{policy}{quota}{audit}{server}",
        a.pks, a.users, a.listen, a.upstream
    );
    let config_path = a.dir.join("gerbang.toml");
    std::fs::write(&config_path, config)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let users_path = a.dir.join("users.tsv");
    std::fs::write(&users_path, users_tsv)
        .with_context(|| format!("writing {}", users_path.display()))?;
    Ok(config_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_addresses_are_distinct_loopback_hosts() {
        assert_eq!(user_ip(0).expect("ip"), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(user_ip(255).expect("ip"), Ipv4Addr::new(127, 1, 1, 0));
        assert_eq!(user_ip(49_999).expect("ip"), Ipv4Addr::new(127, 1, 195, 80));
        assert!(user_ip(20_000_000).is_err());
    }

    #[test]
    fn users_spread_over_every_pks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = GenArgs {
            pks: 3,
            users: 10,
            dir: dir.path().to_path_buf(),
            upstream: "127.0.0.1:9".parse().expect("addr"),
            listen: "127.0.0.1:10".parse().expect("addr"),
            tls_cert: None,
            tls_key: None,
            hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            gerbang: PathBuf::new(),
            threads: None,
            policy_dir: Some(PathBuf::from("/p")),
            quota: Some("store = \"memory\"".into()),
            audit: true,
        };
        generate(&args).expect("generate");
        let users = crate::mix::read_users(&dir.path().join("users.tsv")).expect("users");
        assert_eq!(users.len(), 10);
        let per_file: Vec<usize> = (0..3)
            .map(|i| {
                std::fs::read_to_string(dir.path().join(format!("pks/bench-{i:05}.toml")))
                    .expect("pks file")
                    .matches("[[user]]")
                    .count()
            })
            .collect();
        assert_eq!(per_file, [3, 3, 4]);
        let config = std::fs::read_to_string(dir.path().join("gerbang.toml")).expect("config");
        assert!(config.contains("plaintext = true"));
        assert!(config.contains("[policy]\ndir = \"/p\""));
        assert!(config.contains("[quota]\nstore = \"memory\""));
        assert!(config.contains("[audit]\n"));
        assert!(config.contains("dir = \"audit\"\nkey_file = \"audit.key\""));
        let key_path = dir.path().join("audit.key");
        let key = std::fs::read_to_string(&key_path).expect("audit key");
        assert_eq!(key.trim().len(), 64);
        assert!(key.trim().bytes().all(|b| b.is_ascii_hexdigit()));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_path)
            .expect("key metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // A second run keeps the key (a log cannot change keys); --no-audit drops the table.
        generate(&GenArgs {
            audit: false,
            ..args
        })
        .expect("generate again");
        assert_eq!(std::fs::read_to_string(&key_path).expect("audit key"), key);
        let config = std::fs::read_to_string(dir.path().join("gerbang.toml")).expect("config");
        assert!(!config.contains("[audit]"));
    }
}

//! Harness for Gerbang's end-to-end tests: builds the real binaries once, starts `dwh-sim`,
//! the SAM sidecar `gerbang-sam` and `gerbang serve` on free ports, writes configurations into temporary directories, and
//! gives clients bound to chosen 127.0.0.x source addresses. Processes are started through
//! `gerbang-supervise`: killed on drop, and by the kernel if the test process dies first.
//! Readiness is awaited by polling, never by sleeping a fixed time.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::ffi::OsStr;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use gerbang_supervise::{Output, Process, Ready, Wait, signal_by_name};

/// The demo password of every synthetic User ID the tests create.
pub const PASSWORD: &str = "rahasia-uji-e2e";

/// Directory holding the workspace's debug binaries, built once per test process with the
/// same arguments as `make test`, so nothing is rebuilt when it already built them.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // `cargo test` gives the test its package's CARGO_MANIFEST_*, CARGO_PKG_* and
        // similar variables. Build scripts (ring's) rerun when those change, so passing
        // them on would rebuild ring and everything above it here, and again at the next
        // `cargo build` from a shell: minutes each time.
        let mut cmd = Command::new(cargo);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let per_package = ["CARGO_PKG_", "CARGO_BIN_", "CARGO_MANIFEST_"]
                .iter()
                .any(|p| key.starts_with(p))
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .contains(&key.as_ref());
            if per_package {
                cmd.env_remove(key.as_ref());
            }
        }
        // Naming this test target makes cargo resolve features with the dev-dependencies, as
        // `cargo test --all-targets` does; a plain `--bins` build resolves fewer (syn,
        // zerocopy, rustix…) and rebuilds everything above them, minutes on a fresh clone.
        let this_test = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.file_stem()?.to_str()?.rsplit_once('-')?.0.to_string()))
            .expect("the test binary is named <target>-<hash>");
        let status = cmd
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "--workspace",
                "--bins",
                "--test",
                &this_test,
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        target.join("debug")
    })
}

/// The repository's `policies/` (Ditjen's rules as shipped).
pub fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("policies")
}

/// A path to one of the workspace's binaries.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop: the supervisor's [`Process`] (stderr in a file, never
/// outliving the test process, signals through its pidfd) under the name the tests use.
/// It derefs to the `Process`, so `proc.child`, `pid()` and `stderr()` are its own.
pub struct Proc {
    process: Process,
    pub name: &'static str,
}

impl std::ops::Deref for Proc {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl Proc {
    /// Starts `cmd` with its stdout and stderr in `dir/<file>.stdout|stderr`.
    fn start(name: &'static str, file: &str, cmd: Command, dir: &Path) -> Self {
        let output = Output::Split {
            stdout: dir.join(format!("{file}.stdout")),
            stderr: dir.join(format!("{file}.stderr")),
        };
        let process = Process::spawn(name, cmd, output)
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { process, name }
    }

    /// Waits until it is `ready` (60 s at most); panics with its stderr if it exits first.
    fn wait_ready(&mut self, ready: &Ready) -> SocketAddr {
        self.process
            .wait_ready(ready, Wait::up_to(Duration::from_secs(60)))
            .unwrap_or_else(|e| panic!("{e}:\n{}", self.stderr()))
    }

    /// What the process wrote on stderr, once every one of `needles` is in it. The gateway
    /// logs from a thread of its own, so a line can follow the answer it is about by a few
    /// milliseconds. Fails after 10 s.
    pub async fn stderr_with(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = self.stderr();
            if needles.iter().all(|n| log.contains(n)) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never logged {needles:?}:\n{log}",
                self.name
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`, `KILL`, …) to the process.
    pub fn signal(&self, sig: &str) {
        let signal = signal_by_name(sig).unwrap_or_else(|| panic!("no signal named {sig}"));
        self.process.signal(signal).unwrap();
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        let _ = self.process.kill();
    }
}

/// A running dwh-sim.
pub struct Sim {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// `https` when started with TLS.
    scheme: &'static str,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Writes development certificates (`gerbang certs dev`) into `dir`.
pub fn dev_certs(dir: &Path) {
    let status = Command::new(bin("gerbang"))
        .args(["certs", "dev", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

impl Sim {
    /// Starts dwh-sim on a free port with a small population.
    pub fn start(people: usize) -> Self {
        Self::spawn(people, false)
    }

    /// Starts dwh-sim serving TLS with a development certificate; its CA is at [`Sim::ca`].
    pub fn start_tls(people: usize) -> Self {
        Self::spawn(people, true)
    }

    /// The CA that signed a TLS simulator's certificate.
    pub fn ca(&self) -> PathBuf {
        self._dir.path().join("certs/ca.pem")
    }

    fn spawn(people: usize, tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(bin("dwh-sim"));
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--people",
            &people.to_string(),
            "--seed",
            "7",
        ]);
        let mut client = reqwest::Client::builder();
        if tls {
            let certs = dir.path().join("certs");
            dev_certs(&certs);
            cmd.arg("--tls-cert")
                .arg(certs.join("server.pem"))
                .arg("--tls-key")
                .arg(certs.join("server.key"));
            let pem = std::fs::read(certs.join("ca.pem")).unwrap();
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        let mut proc = Proc::start("dwh-sim", "dwh-sim", cmd, dir.path());
        let addr = proc.wait_ready(&Ready::Announces("dwh-sim listening on ".into()));
        let scheme = if tls { "https" } else { "http" };
        Self {
            proc,
            addr,
            scheme,
            client: client.build().unwrap(),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        if self.scheme == "https" {
            format!("https://localhost:{}{path}", self.addr.port())
        } else {
            format!("http://{}{path}", self.addr)
        }
    }

    async fn get_json(&self, path: &str) -> serde_json::Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Data requests the simulator has received.
    pub async fn requests(&self) -> u64 {
        self.get_json("/__sim/stats").await["requests"]
            .as_u64()
            .unwrap()
    }

    /// Sample NIKs of a kind (`alive`, `female`, `deceased`, `duplicate`, `inactive`).
    pub async fn sample(&self, kind: &str, n: usize) -> Vec<String> {
        let v = self
            .get_json(&format!("/__sim/sample?kind={kind}&n={n}"))
            .await;
        v["nik"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }

    /// The full record the simulator holds for a NIK, as raw JSON text.
    pub async fn record(&self, nik: &str) -> String {
        self.client
            .get(self.url(&format!("/__sim/record?nik={nik}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Requests the simulator's Web Portal (below `/portal/`) has received.
    pub async fn portal_requests(&self) -> u64 {
        self.get_json("/__sim/stats").await["portal"]
            .as_u64()
            .unwrap()
    }

    /// Makes the simulator wait this long before answering data requests.
    pub async fn set_delay(&self, ms: u64) {
        let r = self
            .client
            .post(self.url("/__sim/delay"))
            .body(format!("{{\"ms\":{ms}}}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Data-balikan records the simulator received (batches it refused included).
    pub async fn balikan_records(&self) -> u64 {
        self.get_json("/__sim/stats").await["balikan_records"]
            .as_u64()
            .unwrap()
    }

    /// The last data request the simulator received (a lookup or a data balikan):
    /// `method`, `target` (path and query as sent), `headers` (`[name, value]` pairs) and
    /// `body`.
    pub async fn last_request(&self) -> serde_json::Value {
        self.get_json("/__sim/last").await
    }

    /// Makes the simulator answer as a DWH with a bug would: `verify_values`,
    /// `other_person`, or `none` to stop.
    pub async fn misbehave(&self, mode: &str) {
        let r = self
            .client
            .post(self.url("/__sim/misbehave"))
            .body(format!(r#"{{"mode":"{mode}"}}"#))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "misbehave {mode}");
    }
}

/// The elements a [`TestPks`] grants by default, its `ALAMAT_SEKARANG` group expanded.
pub const DEFAULT_ELEMENTS: &[&str] = &[
    "NIK",
    "NO_KK",
    "NAMA_LGKP",
    "TGL_LHR",
    "ALAMAT",
    "NO_RT",
    "NO_RW",
    "KODE_POS",
    "NO_PROP",
    "PROP_NAME",
    "NO_KAB",
    "KAB_NAME",
    "NO_KEC",
    "KEC_NAME",
    "NO_KEL",
    "KEL_NAME",
];

/// One synthetic User ID of a test PKS.
#[derive(Clone)]
pub struct TestUser {
    pub id: &'static str,
    pub ip: &'static str,
    pub status: &'static str,
}

impl TestUser {
    /// An active User ID registered at `ip`.
    pub fn aktif(id: &'static str, ip: &'static str) -> Self {
        Self {
            id,
            ip,
            status: "aktif",
        }
    }
}

/// One synthetic PKS file for a test configuration.
#[derive(Clone)]
pub struct TestPks {
    pub file: &'static str,
    pub nomor: &'static str,
    pub jenis: &'static str,
    pub elemen: &'static str,
    pub metode: &'static str,
    pub kunci: &'static str,
    pub extra: &'static str,
    /// The Pengguna's id (empty: the file name without `.toml`).
    pub pengguna: &'static str,
    /// `[[sam]]` tables, as `gerbang sam keygen` prints them.
    pub sams: String,
    /// Validity relative to today (WIB): days before, days after.
    pub valid: (i64, i64),
    /// Daily NIK hits of every User ID.
    pub kuota: u32,
    pub users: Vec<TestUser>,
}

impl TestPks {
    pub fn new(file: &'static str, nomor: &'static str, users: Vec<TestUser>) -> Self {
        Self {
            file,
            nomor,
            jenis: "opd",
            elemen: r#"["NIK", "NO_KK", "NAMA_LGKP", "TGL_LHR", "ALAMAT_SEKARANG"]"#,
            metode: r#"["web_service"]"#,
            kunci: r#"["NIK"]"#,
            extra: "",
            pengguna: "",
            sams: String::new(),
            valid: (30, 365),
            kuota: 1000,
            users,
        }
    }

    fn text(&self, hash: &str) -> String {
        let today = gerbang_today();
        let shift = |d: i64| {
            if d >= 0 {
                today.checked_add_days(Days::new(d as u64))
            } else {
                today.checked_sub_days(Days::new((-d) as u64))
            }
            .unwrap()
        };
        let (start, end) = (shift(-self.valid.0), shift(self.valid.1));
        let mut s = format!(
            "nomor = \"{}\"\npengguna = \"{}\"\nnama_pengguna = \"Lembaga Uji\"\njenis_pengguna = \"{}\"\ntingkat = \"pusat\"\ntujuan = \"uji\"\nelemen_data = {}\nmetode_akses = {}\nkunci_akses = {}\nmulai = {start}\nsampai = {end}\nstatus = \"aktif\"\n{}\n",
            self.nomor,
            if self.pengguna.is_empty() {
                self.file.trim_end_matches(".toml")
            } else {
                self.pengguna
            },
            self.jenis,
            self.elemen,
            self.metode,
            self.kunci,
            self.extra
        );
        for u in &self.users {
            s += &format!(
                "\n[[user]]\nid = \"{}\"\npassword_hash = \"{hash}\"\nip_lan = [\"{}\"]\nkuota_harian = {}\nstatus = \"{}\"\n",
                u.id, u.ip, self.kuota, u.status
            );
        }
        if !self.sams.is_empty() {
            s.push('\n');
            s += &self.sams;
        }
        s
    }
}

/// Today's WIB day, as the gateway sees it.
pub fn gerbang_today() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(7)).date_naive()
}

/// An argon2id hash of [`PASSWORD`], made once with the real `gerbang passwd`.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(PASSWORD))
}

/// An argon2id hash of `password`, made with the real `gerbang passwd`.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(bin("gerbang"))
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{password}\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Settings of a test gateway.
pub struct GatewayOptions {
    pub upstream: SocketAddr,
    pub tls: bool,
    pub status_mode: &'static str,
    pub timeout_ms: u64,
    pub max_failures: u32,
    /// TLS to the DWH, verified with this CA for the name `localhost`.
    pub upstream_ca: Option<PathBuf>,
    /// The `[quota]` table's body (store, block, burst limits).
    pub quota: &'static str,
    /// The SAM sidecar's address for `[sam]` (none: no `[sam]` section).
    pub sam: Option<SocketAddr>,
    /// `[sam] timeout_ms`.
    pub sam_timeout_ms: u64,
    /// The `[portal]` table's body (timeouts, cookie name); empty for the defaults.
    pub portal: &'static str,
    /// More lines of the `[listen]` table (deadlines, connection caps); empty for the
    /// defaults.
    pub listen: &'static str,
    pub pks: Vec<TestPks>,
    /// The `gerbang` executable to run (default: the one built, [`bin`]).
    pub binary: Option<PathBuf>,
}

impl GatewayOptions {
    pub fn new(upstream: SocketAddr, pks: Vec<TestPks>) -> Self {
        Self {
            upstream,
            tls: false,
            status_mode: "dwh",
            timeout_ms: 2_000,
            max_failures: 5,
            upstream_ca: None,
            quota: "block = 4\n",
            sam: None,
            sam_timeout_ms: 200,
            portal: "",
            listen: "",
            pks,
            binary: None,
        }
    }
}

/// Writes a secret file readable by its owner only (mode 0600), as the gateway requires of
/// its admin token.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A running `gerbang serve` with its configuration directory.
pub struct Gateway {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// The admin listener (health, metrics, reload, quota, sanctions).
    pub admin_addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub tls: bool,
    starts: u32,
}

/// The decision-log key every test gateway is configured with (synthetic, tests only).
pub const AUDIT_KEY: &str = "e2e-audit-key-not-secret-0123456789abcdef0123456789abcdef";

/// The admin token every test gateway is configured with.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef0123456789";

impl Gateway {
    /// Writes the configuration, starts the gateway and waits until it accepts connections.
    pub fn start(opts: GatewayOptions) -> Self {
        Self::start_with_env(opts, &[], true)
    }

    /// As [`Gateway::start`], with more environment variables (`NOTIFY_SOCKET`, say);
    /// without `wait_listening` it returns once the process is started, and the caller
    /// waits by its own means.
    pub fn start_with_env(
        opts: GatewayOptions,
        env: &[(&str, &OsStr)],
        wait_listening: bool,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Port 0: the gateway binds and announces its ports (no race with another test for
        // a port picked beforehand). A caller that waits by its own means needs the address
        // before the gateway runs, so it gets a free port picked here.
        let (port, admin_port) = if wait_listening {
            (0, 0)
        } else {
            (free_port(), free_port())
        };
        let pks_dir = dir.path().join("pks");
        std::fs::create_dir_all(&pks_dir).unwrap();
        for p in &opts.pks {
            std::fs::write(pks_dir.join(p.file), p.text(password_hash())).unwrap();
        }
        let listen = if opts.tls {
            dev_certs(&dir.path().join("certs"));
            "tls_cert = \"certs/server.pem\"\ntls_key = \"certs/server.key\"\n"
        } else {
            "plaintext = true\n"
        };
        let listen = format!("{listen}{}", opts.listen);
        let config = format!(
            "instance = \"e2e\"\n[listen]\naddress = \"127.0.0.1:{port}\"\n{listen}\n[upstream]\naddress = \"{}\"\n{}connect_timeout_ms = 500\ntimeout_ms = {}\n\n[api]\nstatus_mode = \"{}\"\nmax_body_bytes = 4096\n\n[auth]\nmax_failures = {}\nfailure_window_secs = 300\nlockout_secs = 300\n\n[pks]\ndir = \"pks\"\n\n[policy]\ndir = \"{}\"\n\n[quota]\n{}\n[server]\nthreads = 2\n\n[portal]\n{}\n",
            opts.upstream,
            opts.upstream_ca
                .as_ref()
                .map_or(String::new(), |ca| format!(
                    "tls = true\nsni = \"localhost\"\nca = \"{}\"\n",
                    ca.display()
                )),
            opts.timeout_ms,
            opts.status_mode,
            opts.max_failures,
            policies_dir().display(),
            opts.quota,
            opts.portal
        );
        let config = match opts.sam {
            Some(addr) => format!(
                "{config}\n[sam]\naddress = \"{addr}\"\ntimeout_ms = {}\n",
                opts.sam_timeout_ms
            ),
            None => config,
        };
        // Every test gateway has an admin listener and an (empty) sanctions file.
        let config = config.replace("[policy]\n", "[policy]\nsanksi = \"sanksi.toml\"\n")
            + &format!(
                "\n[admin]\naddress = \"127.0.0.1:{admin_port}\"\ntoken_file = \"admin.token\"\n\n[audit]\ndir = \"audit\"\nkey_file = \"audit.key\"\n"
            );
        std::fs::write(dir.path().join("audit.key"), AUDIT_KEY).unwrap();
        write_private(&dir.path().join("admin.token"), ADMIN_TOKEN);
        std::fs::write(dir.path().join("sanksi.toml"), "# Sanksi pasal 45 (e2e)\n").unwrap();
        std::fs::write(dir.path().join("gerbang.toml"), config).unwrap();
        let mut cmd = gateway_command(dir.path());
        if let Some(binary) = &opts.binary {
            let args: Vec<_> = cmd.get_args().map(OsStr::to_os_string).collect();
            let mut from = Command::new(binary);
            from.args(args).env("RUST_LOG", "info");
            cmd = from;
        }
        cmd.envs(env.iter().copied());
        let mut proc = Proc::start("gerbang", "gerbang.0", cmd, dir.path());
        let (addr, admin_addr) = if wait_listening {
            let bound = announced(&mut proc);
            fix_ports(dir.path(), bound);
            bound
        } else {
            (
                format!("127.0.0.1:{port}").parse().unwrap(),
                format!("127.0.0.1:{admin_port}").parse().unwrap(),
            )
        };
        Self {
            proc,
            addr,
            admin_addr,
            dir,
            tls: opts.tls,
            starts: 1,
        }
    }

    /// A second instance beside this one, as deployed behind a load balancer: its own
    /// ports, decision log and quota file, but this one's PKS directory and sanctions file
    /// (a shared configuration directory), so an edit through either is seen by both.
    pub fn sibling(&self) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config = std::fs::read_to_string(self.dir.path().join("gerbang.toml"))
            .unwrap()
            .replace(
                &format!("address = \"{}\"", self.addr),
                "address = \"127.0.0.1:0\"",
            )
            .replace(
                &format!("address = \"{}\"", self.admin_addr),
                "address = \"127.0.0.1:0\"",
            )
            .replace(
                "dir = \"pks\"",
                &format!("dir = \"{}\"", self.dir.path().join("pks").display()),
            )
            .replace(
                "sanksi = \"sanksi.toml\"",
                &format!(
                    "sanksi = \"{}\"",
                    self.dir.path().join("sanksi.toml").display()
                ),
            );
        if self.tls {
            copy_dir(&self.dir.path().join("certs"), &dir.path().join("certs"));
        }
        std::fs::write(dir.path().join("audit.key"), AUDIT_KEY).unwrap();
        write_private(&dir.path().join("admin.token"), ADMIN_TOKEN);
        std::fs::write(dir.path().join("gerbang.toml"), config).unwrap();
        let mut proc = Proc::start(
            "gerbang",
            "gerbang.0",
            gateway_command(dir.path()),
            dir.path(),
        );
        let (addr, admin_addr) = announced(&mut proc);
        fix_ports(dir.path(), (addr, admin_addr));
        Gateway {
            proc,
            addr,
            admin_addr,
            dir,
            tls: self.tls,
            starts: 1,
        }
    }

    /// Starts the gateway again on the same port and configuration (after it was stopped
    /// or killed). Its stderr goes to a new file.
    pub fn restart(&mut self) {
        self.proc.kill();
        self.proc = spawn_gateway(self.dir.path(), self.addr, self.starts);
        self.starts += 1;
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        self.proc.signal("TERM");
        let status = self.proc.child.wait().unwrap();
        assert!(
            status.success(),
            "gerbang did not stop cleanly ({status}):\n{}",
            self.proc.stderr()
        );
    }

    /// The URL of a DWH service path on this gateway.
    pub fn url(&self, service: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.tls {
            format!("localhost:{}", self.addr.port())
        } else {
            self.addr.to_string()
        };
        format!("{scheme}://{host}/dukcapil/get_json/UJI/{service}")
    }

    /// The URL of the data-balikan web service on this gateway.
    pub fn balikan_url(&self, instansi: &str) -> String {
        self.url("")
            .replace("/get_json/UJI/", &format!("/balikan/{instansi}"))
    }

    /// The URL of a Web Portal path (below `/portal/`) on this gateway.
    pub fn portal_url(&self, path: &str) -> String {
        let base = self.url("");
        let origin = base.split("/dukcapil/").next().unwrap();
        format!("{origin}/portal/{path}")
    }

    /// A client whose connections come from `source` (a 127.0.0.x address).
    pub fn client(&self, source: &str) -> reqwest::Client {
        self.client_builder(source).build().unwrap()
    }

    /// A client from `source` that shows redirects instead of following them, as the
    /// portal tests need to see the login's `303` and its `Set-Cookie`.
    pub fn portal_client(&self, source: &str) -> reqwest::Client {
        self.client_builder(source)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    fn client_builder(&self, source: &str) -> reqwest::ClientBuilder {
        let ip: IpAddr = source.parse().unwrap();
        let mut b = reqwest::Client::builder()
            .local_address(ip)
            .timeout(Duration::from_secs(20));
        if self.tls {
            let pem = std::fs::read(self.dir.path().join("certs/ca.pem")).unwrap();
            b = b
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .https_only(true);
        }
        b
    }

    /// Logs `user` (password [`PASSWORD`]) in to the Web Portal with `client` (a
    /// [`Gateway::portal_client`]); returns the session cookie as `name=value`.
    pub async fn portal_login(&self, client: &reqwest::Client, user: &str) -> String {
        let login = client
            .post(self.portal_url("masuk"))
            .form(&[("user_id", user), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 303, "portal login of {user}");
        let cookie = login.headers()["set-cookie"].to_str().unwrap();
        cookie.split(';').next().unwrap().to_string()
    }

    /// A Web Portal search for `nik` in the session `cookie` (from [`Gateway::portal_login`]);
    /// returns the HTTP status and the answer's body.
    pub async fn portal_search(
        &self,
        client: &reqwest::Client,
        cookie: &str,
        nik: &str,
    ) -> (u16, String) {
        let r = client
            .post(self.portal_url("api/cari"))
            .header("Cookie", cookie)
            .header("Content-Type", "application/json")
            .body(format!(r#"{{"nik":"{nik}"}}"#))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Calls the admin API with the token; returns (status, body as JSON or text).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        let url = format!("http://{}{path}", self.admin_addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut req = reqwest::Client::new()
                .request(method.clone(), &url)
                .bearer_auth(ADMIN_TOKEN);
            if let Some(b) = &body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    return (status, r.text().await.unwrap());
                }
                // The admin listener starts beside the proxy: wait for it briefly.
                Err(e) if e.is_connect() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("admin API at {url}: {e}"),
            }
        }
    }

    /// The Prometheus exposition of the admin listener.
    pub async fn metrics(&self) -> String {
        let (status, text) = self.admin(reqwest::Method::GET, "/metrics", None).await;
        assert_eq!(status, 200, "{text}");
        text
    }

    /// The exposition once it holds every one of `lines` (or after 5 s, whatever it holds):
    /// a request is counted in the gateway's logging phase, which runs after the client
    /// already has its answer.
    pub async fn metrics_with(&self, lines: &[&str]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.metrics().await;
            if lines.iter().all(|l| text.contains(l)) || std::time::Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Path of a PKS file of this gateway's configuration.
    pub fn pks_path(&self, file: &str) -> PathBuf {
        self.dir.path().join("pks").join(file)
    }

    /// The directory of this gateway's PKS files (a sidecar reads the same).
    pub fn pks_dir(&self) -> PathBuf {
        self.dir.path().join("pks")
    }

    /// This gateway's sanctions file (a sidecar applies the same).
    pub fn sanctions_path(&self) -> PathBuf {
        self.dir.path().join("sanksi.toml")
    }
}

/// A running `gerbang-sam` over a PKS directory.
pub struct SamSidecar {
    pub proc: Proc,
    pub addr: SocketAddr,
    pks_dir: PathBuf,
    /// The sanctions file it applies, if any.
    sanctions: Option<PathBuf>,
    /// The Unix second of the last start: the sidecar refuses timestamps up to the second
    /// it started in (an earlier run's nonces are unknown to it).
    ready_at: i64,
    logs: tempfile::TempDir,
    starts: u32,
    /// More command-line arguments (`--redis-url …`), given again on a restart.
    args: Vec<String>,
}

impl SamSidecar {
    /// Starts the sidecar on `addr` (port 0: a free one) over `pks_dir`; returns once it
    /// printed where it listens.
    pub fn start(pks_dir: &Path, addr: SocketAddr) -> Self {
        Self::spawn(pks_dir, None, addr)
    }

    /// Starts the sidecar as deployed beside `gw`: over its PKS directory and its sanctions
    /// file (`--sanksi`), on `addr`.
    pub fn start_for(gw: &Gateway, addr: SocketAddr) -> Self {
        Self::spawn(&gw.pks_dir(), Some(gw.sanctions_path()), addr)
    }

    /// As [`SamSidecar::start`], with more environment variables (`NOTIFY_SOCKET`, say).
    pub fn start_with_env(pks_dir: &Path, addr: SocketAddr, env: &[(&str, &OsStr)]) -> Self {
        Self::spawn_with(pks_dir, None, addr, env)
    }

    /// As [`SamSidecar::start_for`], with more command-line arguments (kept for restarts).
    pub fn start_for_with_args(gw: &Gateway, addr: SocketAddr, args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
        Self::spawn_full(&gw.pks_dir(), Some(gw.sanctions_path()), addr, &[], args)
    }

    fn spawn(pks_dir: &Path, sanctions: Option<PathBuf>, addr: SocketAddr) -> Self {
        Self::spawn_with(pks_dir, sanctions, addr, &[])
    }

    fn spawn_with(
        pks_dir: &Path,
        sanctions: Option<PathBuf>,
        addr: SocketAddr,
        env: &[(&str, &OsStr)],
    ) -> Self {
        Self::spawn_full(pks_dir, sanctions, addr, env, Vec::new())
    }

    fn spawn_full(
        pks_dir: &Path,
        sanctions: Option<PathBuf>,
        addr: SocketAddr,
        env: &[(&str, &OsStr)],
        args: Vec<String>,
    ) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let (proc, addr) = spawn_sidecar(
            pks_dir,
            sanctions.as_deref(),
            addr,
            logs.path(),
            0,
            env,
            &args,
        );
        Self {
            proc,
            addr,
            pks_dir: pks_dir.to_path_buf(),
            sanctions,
            ready_at: chrono::Utc::now().timestamp(),
            logs,
            starts: 1,
            args,
        }
    }

    /// Starts it again on the same address (after it was killed).
    pub fn restart(&mut self) {
        self.proc.kill();
        let (proc, _) = spawn_sidecar(
            &self.pks_dir,
            self.sanctions.as_deref(),
            self.addr,
            self.logs.path(),
            self.starts,
            &[],
            &self.args,
        );
        self.proc = proc;
        self.ready_at = chrono::Utc::now().timestamp();
        self.starts += 1;
    }

    /// Waits (polling the clock, at most a second) until a timestamp signed now is after
    /// the second the sidecar started in.
    pub async fn wait_fresh(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while chrono::Utc::now().timestamp() <= self.ready_at {
            assert!(Instant::now() < deadline, "the clock did not advance");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The sidecar's Prometheus metrics.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// The sidecar's `GET /health` answer.
    pub async fn health(&self) -> serde_json::Value {
        self.get("/health").await.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap()
    }

    /// Waits (polling, at most 10 s: the machine may be loaded) until the sidecar has
    /// loaded `n` sanctions.
    pub async fn wait_sanctions(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let health = self.health().await;
            if health["sanksi"].as_u64() == Some(n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sidecar did not load {n} sanction(s): {health}\n{}",
                self.proc.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn spawn_sidecar(
    pks_dir: &Path,
    sanctions: Option<&Path>,
    addr: SocketAddr,
    logs: &Path,
    n: u32,
    env: &[(&str, &OsStr)],
    args: &[String],
) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(bin("gerbang-sam"));
    cmd.envs(env.iter().copied()).args(args);
    if let Some(path) = sanctions {
        cmd.arg("--sanksi").arg(path);
    }
    cmd.arg("--pks-dir")
        .arg(pks_dir)
        .arg("--listen")
        .arg(addr.to_string())
        .env("RUST_LOG", "info");
    let mut proc = Proc::start("gerbang-sam", &format!("gerbang-sam.{n}"), cmd, logs);
    let addr = proc.wait_ready(&Ready::Announces("gerbang-sam listening on ".into()));
    (proc, addr)
}

/// `gerbang serve` over the configuration in `dir`.
fn gateway_command(dir: &Path) -> Command {
    let mut cmd = Command::new(bin("gerbang"));
    cmd.arg("serve")
        .arg("--config")
        .arg(dir.join("gerbang.toml"))
        .env("RUST_LOG", "info");
    cmd
}

/// The addresses a gateway started on port 0 announces: its listener's and its admin
/// listener's.
fn announced(proc: &mut Proc) -> (SocketAddr, SocketAddr) {
    let addr = proc.wait_ready(&Ready::Announces("gerbang listening on ".into()));
    let admin = proc.wait_ready(&Ready::Announces("gerbang admin listening on ".into()));
    (addr, admin)
}

/// Writes the ports a gateway was given into its configuration, so that a restart (or a
/// sibling's copy) finds the same addresses.
fn fix_ports(dir: &Path, (addr, admin): (SocketAddr, SocketAddr)) {
    let path = dir.join("gerbang.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let config = config
        .replacen(
            "address = \"127.0.0.1:0\"",
            &format!("address = \"{addr}\""),
            1,
        )
        .replacen(
            "address = \"127.0.0.1:0\"",
            &format!("address = \"{admin}\""),
            1,
        );
    std::fs::write(path, config).unwrap();
}

fn spawn_gateway(dir: &Path, addr: SocketAddr, n: u32) -> Proc {
    let cmd = gateway_command(dir);
    let mut proc = Proc::start("gerbang", &format!("gerbang.{n}"), cmd, dir);
    proc.wait_ready(&Ready::Listening(addr));
    proc
}

/// Starts a helper process (a browser driver) that listens on `addr`, its stderr in
/// `dir`, and waits until it accepts connections.
pub fn start_listening(name: &'static str, cmd: Command, addr: SocketAddr, dir: &Path) -> Proc {
    let mut proc = Proc::start(name, name, cmd, dir);
    proc.wait_ready(&Ready::Listening(addr));
    proc
}

/// The full path of a command found on `PATH`, if any.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Posts lookups until `done(answer)` holds, or fails after `limit`; returns the time taken.
pub async fn until_answer(
    gw: &Gateway,
    source: &str,
    body: &str,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> Duration {
    let client = gw.client(source);
    let started = Instant::now();
    loop {
        let (_, answer) = post(&client, &gw.url("CALL_NIK"), body.to_string()).await;
        if done(&answer) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "not in effect after {limit:?}: {answer}\n{}",
            gw.proc.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POSTs a JSON body and returns (HTTP status, body as text).
pub async fn post(client: &reqwest::Client, url: &str, body: impl Into<String>) -> (u16, String) {
    post_with(client.post(url), body).await
}

/// POSTs with a prepared builder (extra headers).
pub async fn post_with(req: reqwest::RequestBuilder, body: impl Into<String>) -> (u16, String) {
    let (status, _, body) = post_full(req, body).await;
    (status, body)
}

/// POSTs and returns (HTTP status, headers, body as text).
pub async fn post_full(
    req: reqwest::RequestBuilder,
    body: impl Into<String>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let r = req
        .header("Content-Type", "application/json")
        .body(body.into())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// An answer as JSON; panics with the body when it is not JSON.
pub fn answer_json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The `RESPONSE_CODE` of the first record of an answer, if any.
pub fn response_code(body: &str) -> Option<String> {
    let v = answer_json(body);
    v["content"][0]["RESPONSE_CODE"]
        .as_str()
        .map(str::to_string)
}

/// The `quotaLimiter` of an answer, if any.
pub fn quota_limiter(body: &str) -> Option<u64> {
    let v = answer_json(body);
    v["quotaLimiter"].as_u64()
}

/// The `RESPON` of the first record of an answer, if any.
pub fn respon(body: &str) -> Option<String> {
    let v = answer_json(body);
    v["content"][0]["RESPON"].as_str().map(str::to_string)
}

/// The keys of the first record of an answer, in order.
pub fn record_keys(body: &str) -> Vec<String> {
    let v = answer_json(body);
    v["content"][0]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// A CALL_NIK body.
pub fn call_nik(nik: &str, user: &str, password: &str) -> String {
    format!(r#"{{"nik":"{nik}","user_id":"{user}","password":"{password}"}}"#)
}

/// A raw TCP connection to `addr` from `source` (a 127.0.0.x address), for requests no
/// HTTP client library would send. `recv_buffer`: a small receive buffer, for a client that
/// does not read.
pub async fn connect_from(
    addr: SocketAddr,
    source: &str,
    recv_buffer: Option<u32>,
) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.connect(addr).await.unwrap()
}

/// Reads from a raw connection until the peer closes it (or it fails), at most `limit`.
/// Returns what was read and whether the peer closed it within the limit.
pub async fn read_to_close(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// One HTTP/1.1 answer parsed from raw bytes: status, lower-cased header lines, body (by
/// `Content-Length`), and the bytes that followed it.
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub rest: Vec<u8>,
}

impl RawAnswer {
    /// Parses the first answer in `bytes`; `None` if there is none whole.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map_or(Some(0), |(_, v)| v.parse().ok())?;
        let body_start = end + 4;
        let body = bytes.get(body_start..body_start + length)?;
        Some(Self {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
            rest: bytes[body_start + length..].to_vec(),
            headers,
        })
    }

    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads from a raw connection until one whole answer has arrived (at most 10 s); `None`
/// if the peer closed it first.
pub async fn read_answer(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<RawAnswer> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(answer) = RawAnswer::parse(&got) {
            return Some(answer);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

/// The sum of every series of `name` whose labels contain `label` (e.g.
/// `reason="body_timeout"`), 0 when there is none.
pub fn metric_sum(exposition: &str, name: &str, label: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of one series in a Prometheus exposition (`name{labels}` exactly as exported),
/// 0 when absent.
pub fn metric(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The request target every test reader signs and sends by default.
pub const READER_PATH: &str = "/dukcapil/get_json/UJI/CALL_NIK";

/// One card-reader request, signed as docs/sam.md says; fields can be spoiled before it is
/// sent.
pub struct ReaderCall {
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    /// The request target (path and query) signed and sent.
    pub path: String,
}

impl ReaderCall {
    /// `key` signs as `sam_id` a CALL_NIK of `nik` by `user`, now.
    pub fn new(key: &gerbang_sam::ReaderKey, sam_id: &str, user: &str, nik: &str) -> Self {
        Self::signed(key, sam_id, user, nik, 0, gerbang_sam::Biometric::Match)
    }

    /// The same, signed `age` seconds ago with the reader's fingerprint result.
    pub fn signed(
        key: &gerbang_sam::ReaderKey,
        sam_id: &str,
        user: &str,
        nik: &str,
        age: i64,
        biometric: gerbang_sam::Biometric,
    ) -> Self {
        Self::at(key, sam_id, user, nik, age, biometric, READER_PATH)
    }

    /// The same, signed over and sent to the request target `path`.
    pub fn at(
        key: &gerbang_sam::ReaderKey,
        sam_id: &str,
        user: &str,
        nik: &str,
        age: i64,
        biometric: gerbang_sam::Biometric,
        path: &str,
    ) -> Self {
        let body = call_nik(nik, user, PASSWORD);
        let nonce = gerbang_sam::new_nonce().unwrap();
        let h = gerbang_sam::sign(
            &key.signing,
            &gerbang_sam::SignInput {
                sam_id,
                method: "POST",
                path,
                body: body.as_bytes(),
                user_id: user,
                biometric,
                timestamp: chrono::Utc::now().timestamp() - age,
                nonce: &nonce,
            },
        );
        let mut headers = h.into_pairs();
        headers.push((
            "Content-Digest",
            gerbang_sam::content_digest(body.as_bytes()),
        ));
        Self {
            body,
            headers,
            path: path.to_string(),
        }
    }

    /// Sends it to `gw` from `source`; returns the answer's body.
    pub async fn send(&self, gw: &Gateway, source: &str) -> String {
        let base = gw.url("");
        let origin = base.split("/dukcapil/").next().unwrap();
        let mut req = gw.client(source).post(format!("{origin}{}", self.path));
        for (name, value) in &self.headers {
            req = req.header(*name, value.as_str());
        }
        post_with(req, self.body.clone()).await.1
    }
}

/// Reads all of a reader, for process output.
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    s
}

pub mod redis;
pub mod systemd;

/// Copies the files of a flat directory.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

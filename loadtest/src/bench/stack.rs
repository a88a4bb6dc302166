//! What the load part measures: its inputs (NIKs, User IDs, certificates, the gateways'
//! configurations) and the running targets (three or four gateways, nginx, dwh-sim itself).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use gerbang_supervise::Process;
use serde_json::Value;

use super::{Common, free_port, runtime, start_gateway};
use crate::client::{self, Target};
use crate::genconf::{self, GenArgs};
use crate::mix;
use crate::procs;

/// A load target: where it listens and which processes do its work.
pub(super) struct Tgt {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub tls_ca: Option<PathBuf>,
    /// The proxy's processes (empty for direct); their CPU time is charged to it.
    pub proxy_pids: Vec<u32>,
    /// The gateway's configuration, when it has a decision log (`[audit]`).
    pub audit_config: Option<PathBuf>,
}

/// The target of this name.
pub(super) fn find<'t>(targets: &'t [Tgt], name: &str) -> anyhow::Result<&'t Tgt> {
    targets
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("no target {name}"))
}

/// A gateway's configuration file and the address it listens on.
pub(super) struct GwConfig {
    pub addr: SocketAddr,
    pub config: PathBuf,
}

/// The inputs of the load part, written into the bench's directory.
pub(super) struct Inputs {
    pub niks_path: PathBuf,
    pub niks: Vec<String>,
    /// `users.tsv` of the generated configuration: User IDs, passwords, source addresses.
    pub users_path: PathBuf,
    pub users: Vec<mix::User>,
    /// Development certificates: the TLS gateway's, and the CA the generator trusts.
    pub certs: PathBuf,
    pub plain: GwConfig,
    pub tls: GwConfig,
    /// The plaintext gateway without its decision log: the log's cost.
    pub nolog: GwConfig,
}

/// Samples NIKs, makes certificates and writes the configurations of the three gateways.
pub(super) fn prepare(c: &Common<'_>) -> anyhow::Result<Inputs> {
    let niks_path = c.dir.join("niks.txt");
    let n = sample_niks(c.sim_addr, &niks_path)?;
    eprintln!("{n} NIKs sampled from dwh-sim");
    let niks = mix::read_niks(&niks_path)?;

    let certs = c.dir.join("certs");
    let status = Command::new(c.a.bin_dir.join("gerbang"))
        .args(["certs", "dev", "--dir"])
        .arg(&certs)
        .stdout(std::process::Stdio::null())
        .status()
        .context("gerbang certs dev")?;
    if !status.success() {
        bail!("gerbang certs dev failed");
    }
    let plain = config(c, &certs, "gw-plain", false, None, true)?;
    let tls = config(c, &certs, "gw-tls", true, None, true)?;
    let nolog = config(c, &certs, "gw-nolog", false, None, false)?;
    let users_path = c.dir.join("gw-plain/users.tsv");
    let users = mix::read_users(&users_path)?;
    Ok(Inputs {
        niks_path,
        niks,
        users_path,
        users,
        certs,
        plain,
        tls,
        nolog,
    })
}

/// NIKs to look up: `alive` and `any` samples of the simulator.
fn sample_niks(sim: SocketAddr, path: &Path) -> anyhow::Result<usize> {
    let rt = runtime()?;
    let target = Target::new(sim, None);
    let mut all = Vec::new();
    for kind in ["alive", "any"] {
        let req = client::get(&target, &format!("/__sim/sample?kind={kind}&n=1000"))?;
        let (status, body) = rt.block_on(client::once(
            &target,
            Ipv4Addr::LOCALHOST,
            req,
            Duration::from_secs(10),
        ))?;
        if !status.is_success() {
            bail!("/__sim/sample?kind={kind} answered {status}");
        }
        let v: Value = serde_json::from_slice(&body).context("sample answer")?;
        let niks = v["nik"].as_array().context("sample answer without nik")?;
        all.extend(niks.iter().filter_map(|n| n.as_str().map(str::to_string)));
    }
    std::fs::write(path, all.join("\n") + "\n").context("writing the NIK list")?;
    Ok(all.len())
}

/// The synthetic configuration of one gateway of the load part, on a free port.
fn config(
    c: &Common<'_>,
    certs: &Path,
    sub: &str,
    tls: bool,
    quota: Option<String>,
    audit: bool,
) -> anyhow::Result<GwConfig> {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let config = genconf::generate(&GenArgs {
        pks: c.a.pks,
        users: c.a.users,
        dir: c.dir.join(sub),
        upstream: c.sim_addr,
        listen: addr,
        tls_cert: tls.then(|| certs.join("server.pem")),
        tls_key: tls.then(|| certs.join("server.key")),
        hash: Some(c.hash.to_string()),
        gerbang: c.a.bin_dir.join("gerbang"),
        threads: None,
        policy_dir: c.policy.map(Path::to_path_buf),
        quota,
        audit,
    })?;
    Ok(GwConfig { addr, config })
}

/// (d) Gerbang with the Redis quota store and its redis-server.
pub(super) struct RedisGateway {
    server: Process,
    gateway: Process,
    addr: SocketAddr,
    config: PathBuf,
}

/// The running processes of the load part and the targets they make, in the order they
/// run within a round (gerbang-nolog right after gerbang, so the two run back to back).
pub(super) struct Stack {
    pub plain: Process,
    pub tls: Process,
    pub nolog: Process,
    nginx: Process,
    /// The framework floors: pingora and hyper forwarding with nothing else.
    floors: Vec<Process>,
    redis: Option<RedisGateway>,
    /// What the report says about (d): how it was measured, or why not.
    pub redis_note: String,
    pub targets: Vec<Tgt>,
}

impl Stack {
    /// Starts the gateways, nginx and, when it can, (d).
    pub fn start(c: &Common<'_>, inputs: &Inputs) -> anyhow::Result<Self> {
        let log = &c.a.gerbang_log;
        let gateway = |name, gw: &GwConfig| {
            start_gateway(c.a, name, &gw.config, gw.addr, c.dir, c.pids, log).map(|(p, _)| p)
        };
        let plain = gateway("gerbang-plain", &inputs.plain)?;
        let tls = gateway("gerbang-tls", &inputs.tls)?;
        let nolog = gateway("gerbang-nolog", &inputs.nolog)?;
        let (nginx, nginx_addr, nginx_workers) = start_nginx(c)?;
        let (pingora_bare, pingora_addr) = start_floor(c, "pingora-bare")?;
        let (hyper_bare, hyper_addr) = start_floor(c, "hyper-bare")?;
        let (redis, redis_note) = if c.a.skip_redis {
            (None, "skipped (--skip-redis)".to_string())
        } else {
            start_redis_gateway(c, &inputs.certs)?
        };
        let tgt = |name, addr, proxy_pids, audit_config| Tgt {
            name,
            addr,
            tls_ca: None,
            proxy_pids,
            audit_config,
        };
        let mut targets = vec![
            tgt("direct", c.sim_addr, vec![], None),
            tgt(
                "nginx",
                nginx_addr,
                [vec![nginx.pid()], nginx_workers].concat(),
                None,
            ),
            tgt(
                "gerbang",
                inputs.plain.addr,
                vec![plain.pid()],
                Some(inputs.plain.config.clone()),
            ),
            tgt("gerbang-nolog", inputs.nolog.addr, vec![nolog.pid()], None),
            tgt("pingora-bare", pingora_addr, vec![pingora_bare.pid()], None),
            tgt("hyper-bare", hyper_addr, vec![hyper_bare.pid()], None),
            Tgt {
                name: "gerbang-tls",
                addr: inputs.tls.addr,
                tls_ca: Some(inputs.certs.join("ca.pem")),
                proxy_pids: vec![tls.pid()],
                audit_config: Some(inputs.tls.config.clone()),
            },
        ];
        if let Some(r) = &redis {
            targets.push(tgt(
                "gerbang-redis",
                r.addr,
                vec![r.gateway.pid(), r.server.pid()],
                Some(r.config.clone()),
            ));
        }
        Ok(Self {
            plain,
            tls,
            nolog,
            nginx,
            floors: vec![pingora_bare, hyper_bare],
            redis,
            redis_note,
            targets,
        })
    }

    /// Resident memory and its peak of the plaintext and the TLS gateway, in KiB.
    pub fn memory(&self) -> [Option<(u64, u64)>; 2] {
        [self.plain.pid(), self.tls.pid()].map(|p| procs::memory_kib(p).ok())
    }

    /// Stops the proxies: the scale part starts its own gateways, and a stopped gateway
    /// has written and fsynced every record it had queued. Returns the targets, for the
    /// decision-log check.
    pub fn stop(self) -> Vec<Tgt> {
        let Self {
            mut nginx,
            floors,
            plain,
            nolog,
            tls,
            redis,
            targets,
            ..
        } = self;
        let _ = nginx.stop(Duration::from_secs(5));
        let mut gateways = vec![plain, nolog, tls];
        gateways.extend(floors);
        if let Some(r) = redis {
            gateways.push(r.gateway);
            gateways.push(r.server);
        }
        for p in &mut gateways {
            let _ = p.stop(Duration::from_secs(5));
        }
        targets
    }
}

/// nginx in the foreground with its own prefix, pid file and logs; returns it, its
/// address and its workers' pids.
fn start_nginx(c: &Common<'_>) -> anyhow::Result<(Process, SocketAddr, Vec<u32>)> {
    let prefix = c.dir.join("nginx");
    std::fs::create_dir_all(&prefix).context("creating the nginx prefix")?;
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&prefix, addr, c.sim_addr)).context("writing nginx.conf")?;
    let mut cmd = Command::new(&c.a.nginx);
    cmd.arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(prefix.join("error.log"));
    let mut nginx = procs::start("nginx", cmd, c.dir, c.pids)?;
    procs::wait_listening(&mut nginx, addr, Instant::now(), Duration::from_secs(30))?;
    let workers = procs::children_of(nginx.pid());
    procs::note_pids(c.pids, &workers)?;
    Ok((nginx, addr, workers))
}

/// A framework floor (`pingora-bare` or `hyper-bare`, built beside loadgen) forwarding to
/// dwh-sim with as many worker threads as the gateways; returns it and its address.
fn start_floor(c: &Common<'_>, name: &'static str) -> anyhow::Result<(Process, SocketAddr)> {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let mut cmd = Command::new(c.a.bin_dir.join(name));
    cmd.arg("--listen")
        .arg(addr.to_string())
        .arg("--upstream")
        .arg(c.sim_addr.to_string());
    let mut p = procs::start(name, cmd, c.dir, c.pids)?;
    procs::wait_listening(&mut p, addr, Instant::now(), Duration::from_secs(30))?;
    Ok((p, addr))
}

/// (d), when this build has the Redis quota store and redis-server is here; else why not.
fn start_redis_gateway(
    c: &Common<'_>,
    certs: &Path,
) -> anyhow::Result<(Option<RedisGateway>, String)> {
    let redis_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let started = (|| -> anyhow::Result<RedisGateway> {
        let rdir = c.dir.join("redis");
        std::fs::create_dir_all(&rdir).context("creating the redis directory")?;
        let mut cmd = Command::new(&c.a.redis_server);
        cmd.arg("--port")
            .arg(redis_addr.port().to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&rdir);
        let mut server = procs::start("redis-server", cmd, c.dir, c.pids)?;
        procs::wait_listening(
            &mut server,
            redis_addr,
            Instant::now(),
            Duration::from_secs(20),
        )?;
        let quota = format!("store = \"redis\"\nredis_url = \"redis://{redis_addr}/0\"");
        let gw = config(c, certs, "gw-redis", false, Some(quota), true)?;
        let mut cmd = Command::new(c.a.bin_dir.join("gerbang"));
        cmd.arg("check").arg("--config").arg(&gw.config);
        let (_, ok, out, err) =
            procs::run_timed(cmd, c.dir, "check-redis", c.pids, Duration::from_secs(60))?;
        if !ok {
            bail!(
                "this gerbang refuses `store = \"redis\"`: {}{}",
                out.trim(),
                err.trim()
            );
        }
        let (gateway, _) = start_gateway(
            c.a,
            "gerbang-redis",
            &gw.config,
            gw.addr,
            c.dir,
            c.pids,
            &c.a.gerbang_log,
        )?;
        Ok(RedisGateway {
            server,
            gateway,
            addr: gw.addr,
            config: gw.config,
        })
    })();
    Ok(match started {
        Ok(r) => (
            Some(r),
            format!(
                "measured as `gerbang-redis`: Gerbang plaintext with `[quota] store = \"redis\"` (default lease), a temporary redis-server on {redis_addr} without persistence; its proxy CPU includes redis-server's"
            ),
        ),
        Err(e) => (None, format!("not measured: {e:#}")),
    })
}

fn nginx_conf(prefix: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let p = prefix.display();
    format!(
        "# Temporary nginx for make bench: a plain keep-alive reverse proxy to dwh-sim.\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes auto;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {p}/body;\n\
         \x20 proxy_temp_path {p}/proxy;\n\
         \x20 fastcgi_temp_path {p}/fastcgi;\n\
         \x20 uwsgi_temp_path {p}/uwsgi;\n\
         \x20 scgi_temp_path {p}/scgi;\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 keepalive_timeout 75s;\n\
         \x20 upstream dwh {{\n\
         \x20   server {upstream};\n\
         \x20   keepalive 256;\n\
         \x20   keepalive_requests 1000000;\n\
         \x20 }}\n\
         \x20 server {{\n\
         \x20   listen {listen};\n\
         \x20   location / {{\n\
         \x20     proxy_pass http://dwh;\n\
         \x20     proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20     proxy_set_header X-Forwarded-For $remote_addr;\n\
         \x20   }}\n\
         \x20 }}\n\
         }}\n"
    )
}

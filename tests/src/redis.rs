//! A `redis-server` of the test's own: a free loopback port, a temporary directory, killed
//! on drop. It can be killed and restarted on the same port. Never a system-wide service.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or killed, to be restarted) `redis-server`.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    aof: bool,
    /// More `redis-server` arguments (`--replicaof`).
    extra: Vec<String>,
    dir: tempfile::TempDir,
    starts: u32,
}

impl Redis {
    /// Without persistence: a restart comes back empty.
    pub fn start() -> Self {
        Self::spawn(false, Vec::new())
    }

    /// A replica of `master`, without persistence.
    pub fn start_replica_of(master: &Redis) -> Self {
        Self::spawn(
            false,
            vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                master.port.to_string(),
            ],
        )
    }

    /// With an append-only file fsynced on every write, as `docs/gateway.md` asks of a
    /// production Redis: a restart keeps every count.
    pub fn start_with_aof() -> Self {
        Self::spawn(true, Vec::new())
    }

    fn spawn(aof: bool, extra: Vec<String>) -> Self {
        // The port is free when picked but another process may take it before redis-server
        // binds it: then try another.
        for _ in 0..5 {
            let port = free_port();
            let mut r = Self {
                child: None,
                port,
                aof,
                extra: extra.clone(),
                dir: tempfile::tempdir().unwrap(),
                starts: 0,
            };
            if r.try_start().is_ok() {
                return r;
            }
        }
        panic!("redis-server could not listen on any of 5 free ports");
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The `[quota]` table body of a gateway sharing this Redis (for `GatewayOptions.quota`).
    /// The call time limit is raised from 200 ms to 1 s so that a test machine busy with
    /// other tests does not pass for a Redis outage; a killed Redis is seen at once anyway
    /// (refused connections).
    pub fn quota_config(&self, lease: u32, emergency_share: u32) -> &'static str {
        Box::leak(
            format!(
                "store = \"redis\"\nredis_url = \"{}\"\nlease = {lease}\nemergency_share = {emergency_share}\nredis_timeout_ms = 1000\n",
                self.url()
            )
            .into_boxed_str(),
        )
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server if it runs, and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(why) = self.try_start() {
            panic!("redis-server did not restart on port {}: {why}", self.port);
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        let log = self.dir.path().join(format!("redis.{}.log", self.starts));
        self.starts += 1;
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): `make deps` installs it (Debian package redis-server)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut pause = Duration::from_millis(5);
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                self.child = None;
                return Err(format!(
                    "exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err("no answer to PING within 20 s".into());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// A plain connection for inspecting keys.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The hits held per instance today for a User ID (`gerbang:quota:<day>:<user>`,
    /// sequence-number fields left out), summed across instances.
    pub fn total(&self, user: &str) -> u32 {
        let key = format!("gerbang:quota:{}:{user}", crate::gerbang_today());
        let fields: std::collections::HashMap<String, u32> = redis::cmd("HGETALL")
            .arg(key)
            .query(&mut self.connection())
            .unwrap();
        fields
            .into_iter()
            .filter(|(f, _)| !f.ends_with("#seq"))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port free when picked (the caller retries if another process takes it first).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The master name the test sentinels monitor.
pub const MASTER_NAME: &str = "gerbang";

/// A Redis Sentinel topology of the test's own: a master, one replica and three
/// `redis-sentinel`s (quorum 2) on free loopback ports, all killed on drop.
pub struct Sentinels {
    pub master: Redis,
    pub replica: Redis,
    sentinels: Vec<(Child, u16, tempfile::TempDir)>,
}

impl Sentinels {
    /// Starts the topology and waits until every sentinel knows the master, the replica
    /// and the two other sentinels (so a failover can happen), and the replica is in sync.
    pub fn start() -> Self {
        let master = Redis::start();
        let replica = Redis::start_replica_of(&master);
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(start_sentinel(master.port));
        }
        let topology = Self {
            master,
            replica,
            sentinels,
        };
        topology.wait("the sentinels know each other and the replica", |t| {
            t.replica_in_sync()
                && t.sentinels.iter().all(|(_, port, _)| {
                    let mut c = sentinel_connection(*port);
                    let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                        .arg("replicas")
                        .arg(MASTER_NAME)
                        .query(&mut c)
                        .unwrap_or_default();
                    let others: Vec<redis::Value> = redis::cmd("SENTINEL")
                        .arg("sentinels")
                        .arg(MASTER_NAME)
                        .query(&mut c)
                        .unwrap_or_default();
                    replicas.len() == 1 && others.len() == 2
                })
        });
        topology
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/gerbang/0`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(_, port, _)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}/0", hosts.join(","))
    }

    /// The port of the master as the first sentinel that answers names it.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|(_, port, _)| {
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER_NAME)
                .query(&mut sentinel_connection(*port))
                .ok()?;
            addr.map(|(_, p)| p)
        })
    }

    /// Whether the replica reports its link to the master up.
    pub fn replica_in_sync(&self) -> bool {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.replica.connection())
            .unwrap_or_default();
        info.contains("master_link_status:up")
    }

    /// Polls `ready` every 50 ms for up to 60 s (sentinels gossip every 2 s and ask the
    /// master for its replicas every 10 s).
    pub fn wait(&self, what: &str, ready: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(self) {
            assert!(Instant::now() < deadline, "not within 60 s: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for (child, _, _) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sentinel_connection(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    client
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap()
}

/// One `redis-sentinel` monitoring the master on `master_port`: down after 1 s without an
/// answer, quorum 2.
fn start_sentinel(master_port: u16) -> (Child, u16, tempfile::TempDir) {
    for _ in 0..5 {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 10000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sentinel.log")).unwrap();
        let mut child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-sentinel ({e}): `make deps` installs it (Debian package redis-sentinel)"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .unwrap()
                .get_connection_with_timeout(Duration::from_secs(1))
                .is_ok_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok());
            if up {
                return (child, port, dir);
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("redis-sentinel could not listen on any of 5 free ports");
}

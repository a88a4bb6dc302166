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
    dir: tempfile::TempDir,
    starts: u32,
}

impl Redis {
    /// Without persistence: a restart comes back empty.
    pub fn start() -> Self {
        Self::spawn(false)
    }

    /// With an append-only file fsynced on every write, as `docs/gateway.md` asks of a
    /// production Redis: a restart keeps every count.
    pub fn start_with_aof() -> Self {
        Self::spawn(true)
    }

    fn spawn(aof: bool) -> Self {
        // The port is free when picked but another process may take it before redis-server
        // binds it: then try another.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut r = Self {
                child: None,
                port,
                aof,
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

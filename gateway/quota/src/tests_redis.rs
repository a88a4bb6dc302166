//! The Redis store against a real `redis-server` started by each test in a temporary
//! directory, listening on a Unix socket there (no port to race for, and a restart finds
//! the same address), and killed at the end. The end-to-end tests use TCP. Waits poll with
//! deadlines.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::*;

fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

const DAY: &str = "2026-03-01";

/// A `redis-server` of the test's own.
struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    aof: bool,
}

impl Server {
    /// Without persistence, as a Redis whose restart loses everything.
    fn start() -> Self {
        Self::spawn(false)
    }

    /// With an append-only file fsynced on every write, as the docs ask for.
    fn start_with_aof() -> Self {
        Self::spawn(true)
    }

    fn spawn(aof: bool) -> Self {
        let mut s = Self {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            aof,
        };
        s.restart();
        s
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn url(&self) -> String {
        format!("redis+unix://{}?db=0", self.socket().display())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server if running, then starts it again on the same socket and directory.
    fn restart(&mut self) {
        self.kill();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--save", ""])
            .arg("--unixsocket")
            .arg(self.socket());
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install it with `make deps` (Debian package redis-server)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.ping() {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("redis-server exited ({status}) before answering");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(self.socket()) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("url")
            .get_connection()
            .expect("connect")
    }

    /// Every field of a (day, user) key except sequence numbers: instance → hits held.
    fn fields(&self, user: &str) -> Vec<(String, u32)> {
        let map: std::collections::HashMap<String, u32> = redis::cmd("HGETALL")
            .arg(format!("gerbang:quota:{DAY}:{user}"))
            .query(&mut self.client())
            .expect("HGETALL");
        let mut v: Vec<_> = map
            .into_iter()
            .filter(|(f, _)| !f.ends_with("#seq"))
            .collect();
        v.sort();
        v
    }

    /// The day's total of a User ID across instances.
    fn total(&self, user: &str) -> u32 {
        self.fields(user).iter().map(|(_, n)| n).sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A meter on `server`. The call time limit is 1 s rather than 200 ms so that a busy test
/// machine does not pass for a Redis outage; a killed Redis refuses connections at once.
fn meter(server: &Server, lease: u32, emergency_share: u32) -> Meter {
    Meter::redis(&RedisOptions {
        lease,
        emergency_share,
        instance: "test".into(),
        timeout: Duration::from_secs(1),
        ..RedisOptions::new(server.url())
    })
    .expect("redis meter")
}

/// Polls `cond` until it holds, failing after `secs` seconds with `what`.
async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reserves until the first refusal; returns the hits granted and the refusal.
async fn drain(m: &Meter, user: &str, limit: u32) -> (u32, QuotaError) {
    let mut n = 0;
    loop {
        match m.reserve(user, day(DAY), limit).await {
            Ok(_) => n += 1,
            Err(e) => return (n, e),
        }
        assert!(n <= limit + 100, "no refusal after {n} hits");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_meters_sharing_redis_grant_exactly_the_quota() {
    let server = Server::start();
    let meters = [
        Arc::new(meter(&server, 8, 0)),
        Arc::new(meter(&server, 8, 0)),
    ];
    // Both connected before the race (another User ID), so that a slow first connection
    // on a busy machine does not leave one meter out of it.
    for m in &meters {
        m.reserve("warm", day(DAY), 75).await.expect("warm-up hit");
    }
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let m = Arc::clone(&meters[i % 2]);
            tokio::spawn(async move { m.reserve("u", day(DAY), 75).await })
        })
        .collect();
    let (mut granted, mut per_meter) = (0, [0, 0]);
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(_) => {
                granted += 1;
                per_meter[i % 2] += 1;
            }
            Err(QuotaError::Exhausted { limit: 75, .. }) => {}
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
    assert_eq!(granted, 75, "granted per meter: {per_meter:?}");
    assert!(
        per_meter.iter().all(|&n| n > 0),
        "both meters served: {per_meter:?}"
    );
    assert_eq!(server.total("u"), 75);
    for m in &meters {
        assert!(m.store_healthy());
        assert_eq!(m.store_health().errors, 0);
        m.close().expect("close");
    }
    assert_eq!(server.total("u"), 75, "every leased hit was used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_close_gives_unused_leases_back() {
    let server = Server::start();
    let a = meter(&server, 16, 0);
    for _ in 0..3 {
        a.reserve("u", day(DAY), 20).await.expect("a");
    }
    assert_eq!(server.total("u"), 16, "a holds one lease of 16");
    let b = meter(&server, 16, 0);
    let (n, refusal) = drain(&b, "u", 20).await;
    assert_eq!(n, 4, "only what a does not hold");
    assert!(
        matches!(
            refusal,
            QuotaError::Exhausted {
                used: 20,
                limit: 20
            }
        ),
        "{refusal:?}"
    );
    a.close().expect("close");
    assert!(
        a.reserve("u", day(DAY), 20).await.is_err(),
        "closed meters refuse"
    );
    assert_eq!(server.total("u"), 3 + 4, "a gave back its 13 unused hits");
    // A new instance (or b, once its one-second recheck passes) gets them.
    let c = meter(&server, 16, 0);
    let (n, _) = drain(&c, "u", 20).await;
    assert_eq!(n, 13);
    assert_eq!(server.total("u"), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instance_loses_its_lease_and_never_overshoots() {
    let server = Server::start();
    {
        let a = meter(&server, 16, 0);
        a.reserve("u", day(DAY), 20).await.expect("a");
        // Dropped without close(), as after kill -9.
    }
    let b = meter(&server, 16, 0);
    let (n, _) = drain(&b, "u", 20).await;
    assert_eq!(
        n, 4,
        "a's unused 15 are lost for the day, never granted twice"
    );
    assert_eq!(server.total("u"), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduced_limit_applies_across_instances() {
    let server = Server::start();
    let (a, b) = (meter(&server, 16, 0), meter(&server, 16, 0));
    for _ in 0..5 {
        a.reserve("u", day(DAY), 50).await.expect("a");
    }
    b.reserve("u", day(DAY), 50).await.expect("b");
    // A sanction reduces the quota to 3: a is already over, b learns it from Redis.
    assert!(matches!(
        a.reserve("u", day(DAY), 3).await,
        Err(QuotaError::Exhausted { limit: 3, .. })
    ));
    assert!(matches!(
        b.reserve("u", day(DAY), 3).await,
        Err(QuotaError::Exhausted { limit: 3, .. })
    ));
    let c = meter(&server, 16, 0);
    assert!(matches!(
        c.reserve("u", day(DAY), 3).await,
        Err(QuotaError::Exhausted { limit: 3, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_only_leased_hits_are_served_then_refused() {
    let mut server = Server::start();
    let a = meter(&server, 8, 0);
    a.reserve("u", day(DAY), 100)
        .await
        .expect("first hit leases 8");
    assert!(a.store_healthy());
    server.kill();
    for i in 2..=8 {
        a.reserve("u", day(DAY), 100)
            .await
            .unwrap_or_else(|e| panic!("hit {i} of the lease: {e}"));
    }
    match a.reserve("u", day(DAY), 100).await {
        Err(QuotaError::Unavailable(why)) => {
            assert!(
                matches!(*why, StoreFailure::NoLease { .. })
                    && why.to_string().contains("no leased hits left"),
                "{why}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A User ID with no lease is refused at once: never unlimited.
    assert!(matches!(
        a.reserve("v", day(DAY), 100).await,
        Err(QuotaError::Unavailable(_))
    ));
    let h = a.store_health();
    assert!(
        !h.healthy && h.errors > 0 && h.refused_unavailable >= 2,
        "{h:?}"
    );
    assert_eq!(h.emergency_hits, 0);
    // A refund gives a hit back to the local lease even while Redis is down.
    a.refund("u", day(DAY));
    a.reserve("u", day(DAY), 100).await.expect("refunded hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_share_is_granted_then_written_into_redis_when_it_returns() {
    let mut server = Server::start();
    let a = meter(&server, 4, 3);
    a.reserve("u", day(DAY), 10).await.expect("leases 4");
    server.kill();
    let (n, refusal) = drain(&a, "u", 10).await;
    assert_eq!(n, 3 + 3, "the rest of the lease, then the emergency share");
    assert!(matches!(refusal, QuotaError::Unavailable(_)), "{refusal:?}");
    assert_eq!(a.store_health().emergency_hits, 3);
    // The share is per day: still refused.
    assert!(a.reserve("u", day(DAY), 10).await.is_err());

    // Redis comes back empty (no persistence): the instance writes back what it holds, its
    // lease and the emergency hits, and leasing resumes.
    server.restart();
    eventually(20, "the meter did not see Redis return", || {
        a.store_healthy()
    })
    .await;
    eventually(20, "the held hits were not written back", || {
        server.total("u") == 7
    })
    .await;
    let (n, refusal) = drain(&a, "u", 10).await;
    assert_eq!(n, 3, "10 - 7");
    assert!(
        matches!(
            refusal,
            QuotaError::Exhausted {
                used: 10,
                limit: 10
            }
        ),
        "{refusal:?}"
    );
    a.close().expect("close");
    assert_eq!(server.total("u"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_is_reseeded_by_live_instances_only() {
    let mut server = Server::start();
    let (a, b) = (meter(&server, 8, 0), meter(&server, 8, 0));
    a.reserve("u", day(DAY), 40).await.expect("a");
    b.reserve("u", day(DAY), 40).await.expect("b");
    // d serves 5 hits and stops cleanly: Redis alone remembers them.
    let d = meter(&server, 8, 0);
    for _ in 0..5 {
        d.reserve("u", day(DAY), 40).await.expect("d");
    }
    d.close().expect("close d");
    assert_eq!(server.total("u"), 8 + 8 + 5);

    server.restart();
    eventually(20, "live instances did not write back their leases", || {
        server.total("u") == 16
    })
    .await;
    // What Redis lost is what the stopped instance used: 5 hits too many can now be
    // granted. This is why Redis must run with persistence (AOF) for exact counts.
    let c = meter(&server, 8, 0);
    let (n, _) = drain(&c, "u", 40).await;
    assert_eq!(n, 40 - 16, "exact would have been {}", 40 - 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_aof_persistence_a_redis_restart_keeps_exact_counts() {
    let mut server = Server::start_with_aof();
    let a = meter(&server, 8, 0);
    a.reserve("u", day(DAY), 30).await.expect("a");
    let d = meter(&server, 8, 0);
    for _ in 0..5 {
        d.reserve("u", day(DAY), 30).await.expect("d");
    }
    d.close().expect("close d");
    server.restart();
    assert_eq!(server.total("u"), 8 + 5, "the counts survived the restart");
    let c = meter(&server, 8, 0);
    let (n, _) = drain(&c, "u", 30).await;
    assert_eq!(n, 30 - 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_at_start_is_an_outage_not_a_startup_failure() {
    let mut server = Server::start();
    server.kill();
    let a = meter(&server, 8, 1);
    assert!(
        a.reserve("u", day(DAY), 10).await.is_ok(),
        "the emergency share"
    );
    assert!(matches!(
        a.reserve("u", day(DAY), 10).await,
        Err(QuotaError::Unavailable(_))
    ));
    server.restart();
    eventually(20, "leasing did not resume", || a.store_healthy()).await;
    eventually(20, "the emergency hit was not written in", || {
        server.total("u") == 1
    })
    .await;
    a.reserve("u", day(DAY), 10).await.expect("leasing resumed");
    assert!(
        Meter::redis(&RedisOptions::new("http://127.0.0.1:1")).is_err(),
        "a malformed URL is refused"
    );
}

#[test]
fn a_write_older_than_the_last_one_applied_is_ignored() {
    let server = Server::start();
    let mut conn = server.client();
    let key = "gerbang:quota:2026-03-01:u";
    let eval = |conn: &mut redis::Connection, seq: u64, held: u32, want: u32| -> (i64, i64) {
        redis::cmd("EVAL")
            .arg(crate::redis_store::LEASE)
            .arg(1)
            .arg(key)
            .arg("p1")
            .arg(seq)
            .arg(held)
            .arg(want)
            .arg(100)
            .arg(60)
            .query(conn)
            .expect("EVAL")
    };
    assert_eq!(eval(&mut conn, 2, 0, 8), (8, 8));
    // A delayed write with an older sequence number changes nothing.
    assert_eq!(eval(&mut conn, 1, 0, 8), (-1, 0));
    assert_eq!(server.total("u"), 8);
    // The value is absolute: a lease whose answer was lost is given back by the next write.
    assert_eq!(eval(&mut conn, 3, 0, 0), (0, 0));
    assert_eq!(server.total("u"), 0);
}

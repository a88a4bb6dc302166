//! The shared-state primitives of `gerbang-shared` (sessions, replay nonces, login lockouts,
//! sanctions) against a real `redis-server`, each used by two links as two gateway
//! instances would: what one instance does, the other sees (per-process state would fail
//! every one of these). Then the server is killed, and each primitive must answer as
//! `docs/gateway.md` ("Several instances") says: sessions and nonces refuse, lockouts fall
//! back to this instance's own counting, sanctions stay in force. Waits poll with deadlines.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gerbang_e2e::redis::Redis as Server;
use gerbang_shared::{
    Health, HealthMessages, LockoutSettings, LockoutStore, LookupMemory, NewLogin, NonceStore,
    Redis, RedisLockouts, RedisLookups, RedisNonces, RedisSanctions, RedisSessions, RedisTarget,
    SanctionStore, Seen, SessionError, SessionSettings, SessionStore, StartError, Subject, Ticks,
};
use serde_json::{Map, Value};

const PREFIX: &str = "gerbang:test:";

/// One "instance": its own link, runtime and health.
fn instance(server: &Server) -> Redis {
    open(&server.url(), Arc::new(health()))
}

fn health() -> Health {
    Health::new(HealthMessages {
        store: "shared",
        down: "test: Redis unreachable",
        up: "test: Redis answers again",
        severe: false,
    })
}

/// A link to `url`. The call budget is 1 s rather than 200 ms: a busy test machine must
/// not pass for an outage; a killed server is seen at once anyway (refused connections).
fn open(url: &str, health: Arc<Health>) -> Redis {
    Redis::open(
        &RedisTarget::parse(url).unwrap(),
        Duration::from_secs(1),
        health,
    )
    .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Polls `f` until it holds, or panics with `what` after `within`.
async fn eventually(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn keys(server: &Server, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut server.connection())
        .unwrap()
}

fn sessions(redis: &Redis, new_login: NewLogin, idle: Duration) -> RedisSessions {
    RedisSessions::new(
        redis,
        PREFIX,
        SessionSettings {
            idle,
            absolute: Duration::from_secs(300),
            new_login,
        },
    )
}

#[tokio::test]
async fn a_session_started_on_one_instance_is_one_session_on_every_instance() {
    let server = Server::start();
    let (one, two) = (instance(&server), instance(&server));
    let (a, b) = (
        sessions(&one, NewLogin::EndsTheOther, Duration::from_secs(60)),
        sessions(&two, NewLogin::EndsTheOther, Duration::from_secs(60)),
    );
    let (here, there) = (ip("127.0.0.2"), ip("127.0.0.3"));

    let first = a.start("rsud_01", here).await.unwrap();
    assert_eq!(b.check(&first, here).await.as_deref(), Ok("rsud_01"));
    assert_eq!(
        b.check(&first, there).await,
        Err(SessionError::OtherAddress),
        "bound to the client address on every instance"
    );
    // The store holds the token's digest, never the token.
    let stored = keys(&server, "*");
    assert!(!stored.is_empty());
    assert!(stored.iter().all(|k| !k.contains(&first)), "{stored:?}");

    // A new login on the other instance ends the first session everywhere.
    let second = b.start("rsud_01", there).await.unwrap();
    assert_eq!(a.check(&first, here).await, Err(SessionError::Replaced));
    assert_eq!(b.check(&first, here).await, Err(SessionError::Replaced));
    assert_eq!(a.check(&second, there).await.as_deref(), Ok("rsud_01"));

    // Logout on one instance is logout on the other.
    assert_eq!(a.end(&second).await, Ok(Some("rsud_01".into())));
    assert_eq!(b.check(&second, there).await, Err(SessionError::Missing));

    // Ending a User ID (deactivated) from the other instance.
    let third = a.start("rsud_01", here).await.unwrap();
    b.end_user("rsud_01").await.unwrap();
    assert_eq!(a.check(&third, here).await, Err(SessionError::Ended));

    // The other rule: a second login is refused, whichever instance it reaches.
    let (a, b) = (
        sessions(&one, NewLogin::RefusedWhileActive, Duration::from_secs(60)),
        sessions(&two, NewLogin::RefusedWhileActive, Duration::from_secs(60)),
    );
    let held = a.start("puskesmas_02", here).await.unwrap();
    assert_eq!(
        b.start("puskesmas_02", there).await,
        Err(StartError::Active)
    );
    assert_eq!(b.end(&held).await, Ok(Some("puskesmas_02".into())));
    b.start("puskesmas_02", there).await.unwrap();
}

#[tokio::test]
async fn the_idle_timeout_is_redis_expiry_seen_by_every_instance() {
    let server = Server::start();
    let (one, two) = (instance(&server), instance(&server));
    let idle = Duration::from_millis(300);
    let (a, b) = (
        sessions(&one, NewLogin::EndsTheOther, idle),
        sessions(&two, NewLogin::EndsTheOther, idle),
    );
    let t = a.start("rsud_01", ip("127.0.0.2")).await.unwrap();
    // Redis removes the session by itself; no instance has to be asked.
    eventually(
        "the session key expires",
        Duration::from_secs(10),
        async || keys(&server, &format!("{PREFIX}session:*")).is_empty(),
    )
    .await;
    assert_eq!(
        b.check(&t, ip("127.0.0.2")).await,
        Err(SessionError::Expired)
    );
}

#[tokio::test]
async fn with_redis_stopped_no_session_is_confirmed_or_started() {
    let mut server = Server::start();
    let one = instance(&server);
    let a = sessions(&one, NewLogin::EndsTheOther, Duration::from_secs(60));
    let t = a.start("rsud_01", ip("127.0.0.2")).await.unwrap();
    server.kill();
    assert!(matches!(
        a.check(&t, ip("127.0.0.2")).await,
        Err(SessionError::Unavailable(_))
    ));
    assert!(matches!(
        a.start("rsud_01", ip("127.0.0.2")).await,
        Err(StartError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_nonce_used_on_one_instance_is_a_replay_on_the_other_and_refused_without_redis() {
    let mut server = Server::start();
    let (one, two) = (instance(&server), instance(&server));
    let margin = Duration::from_secs(5);
    let (a, b) = (
        RedisNonces::new(&one, PREFIX, margin),
        RedisNonces::new(&two, PREFIX, margin),
    );
    let now = 1_800_000_000;
    assert_eq!(
        a.check_and_record("SAM-1", "n-1", now + 30, now).await,
        Ok(Seen::Fresh)
    );
    assert_eq!(
        b.check_and_record("SAM-1", "n-1", now + 30, now + 1).await,
        Ok(Seen::Replayed)
    );
    // Another SAM may use the same nonce; the first SAM a new one.
    assert_eq!(
        b.check_and_record("SAM-2", "n-1", now + 30, now).await,
        Ok(Seen::Fresh)
    );
    assert_eq!(
        b.check_and_record("SAM-1", "n-2", now + 30, now).await,
        Ok(Seen::Fresh)
    );
    // Kept for the window and the clock margin, then forgotten by Redis itself.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{PREFIX}nonce:SAM-1:n-1"))
        .query(&mut server.connection())
        .unwrap();
    assert!((30_000..=35_000).contains(&ttl), "{ttl}");

    server.kill();
    assert!(
        a.check_and_record("SAM-1", "n-3", now + 30, now)
            .await
            .is_err(),
        "an unconfirmed nonce is refused, not accepted"
    );
}

#[tokio::test]
async fn a_lookup_noted_on_one_instance_opens_a_balikan_on_the_other_until_its_window_ends() {
    let mut server = Server::start();
    let (one, two) = (instance(&server), instance(&server));
    let (a, b) = (
        RedisLookups::new(&one, PREFIX),
        RedisLookups::new(&two, PREFIX),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let digests = vec!["d1".to_string(), "d2".to_string()];
    a.remember("1/RSUD", "d1", now + 3);
    // Instance two sees it once written (one pipeline), another PKS never.
    eventually(
        "the note reaches Redis",
        Duration::from_secs(5),
        async || b.looked_up("1/RSUD", &digests, now).await.unwrap() == [true, false],
    )
    .await;
    assert_eq!(
        b.looked_up("2/BKD", &digests, now).await.unwrap(),
        [false, false]
    );
    // Redis itself forgets it when the window ends.
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{PREFIX}lookup:1/RSUD:d1"))
        .query(&mut server.connection())
        .unwrap();
    assert!((1..=3).contains(&ttl), "{ttl}");
    eventually("the window ends", Duration::from_secs(6), async || {
        b.looked_up("1/RSUD", &digests, now).await.unwrap() == [false, false]
    })
    .await;
    // Without Redis nothing can be checked: an error, never "looked up".
    server.kill();
    assert!(b.looked_up("1/RSUD", &digests, now).await.is_err());
}

fn lockouts(redis: &Redis) -> RedisLockouts {
    RedisLockouts::new(
        redis,
        PREFIX,
        LockoutSettings {
            max_failures: NonZeroU32::new(3).unwrap(),
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
        },
        Ticks::default(),
    )
}

#[tokio::test]
async fn failures_on_two_instances_add_up_and_without_redis_each_counts_its_own() {
    let mut server = Server::start();
    let (one, two) = (instance(&server), instance(&server));
    let (a, b) = (lockouts(&one), lockouts(&two));
    let addr = Subject::Address(ip("127.0.0.2"));
    let user = Subject::User("rsud_01");

    a.failure(&[addr, user]).await;
    a.failure(&[addr, user]).await;
    assert_eq!(b.locked(&[addr]).await, None);
    // The third failure reaches the other instance: neither alone has seen three.
    b.failure(&[addr, user]).await;
    for (name, t) in [("first", &a), ("second", &b)] {
        let left = t.locked(&[addr]).await;
        assert!(
            left.is_some_and(|d| d > Duration::from_secs(100)),
            "{name}: {left:?}"
        );
        assert!(t.locked(&[user]).await.is_some(), "{name}");
    }
    // Only the subjects counted are locked (a User ID's failures from outside its LAN are
    // counted on the address only, by the caller).
    assert_eq!(a.locked(&[Subject::User("other")]).await, None);
    assert_eq!(a.locked(&[Subject::Address(ip("127.0.0.9"))]).await, None);

    // Redis down: this instance's own counting answers, never more attempts than one
    // instance alone allows.
    server.kill();
    let (a, b) = (lockouts(&one), lockouts(&two));
    let other = Subject::Address(ip("127.0.0.5"));
    for _ in 0..3 {
        a.failure(&[other]).await;
    }
    assert!(a.locked(&[other]).await.is_some());
    assert_eq!(
        b.locked(&[other]).await,
        None,
        "the other instance never saw them"
    );
}

fn fields(target: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("jenis".into(), "blokir_user".into());
    m.insert("sasaran".into(), target.into());
    m.insert("alasan".into(), "uji".into());
    m
}

async fn in_force(store: &RedisSanctions, id: &str, wanted: bool, within: Duration) {
    let what = format!("sanction {id} in force: {wanted}");
    eventually(&what, within, async || {
        store.current().entries.contains_key(id) == wanted
    })
    .await;
}

#[tokio::test]
async fn a_sanction_added_on_one_instance_is_in_force_on_the_other_and_outlives_an_outage() {
    let mut server = Server::start();
    let (one, two) = (instance(&server), instance(&server));
    let (a, b) = (
        RedisSanctions::start(&one, PREFIX),
        RedisSanctions::start(&two, PREFIX),
    );
    // The message reaches the other instance at once; its check of the count every second
    // is the fallback. 3 s leaves room for a busy test machine.
    let within = Duration::from_secs(3);

    let started = Instant::now();
    assert!(a.add("S-1", &fields("rsud_01")).await.unwrap());
    in_force(&b, "S-1", true, within).await;
    eprintln!(
        "sanction in force on the other instance after {:?}",
        started.elapsed()
    );
    let seen = b.current().fields("S-1").unwrap().unwrap();
    assert_eq!(seen["sasaran"], "rsud_01");
    assert!(
        !b.add("S-1", &fields("rsud_02")).await.unwrap(),
        "an id stands once across instances"
    );
    assert!(b.lift("S-1").await.unwrap());
    in_force(&a, "S-1", false, within).await;

    assert!(a.add("S-2", &fields("rsud_02")).await.unwrap());
    in_force(&b, "S-2", true, within).await;

    // Redis down: the last set read stays in force; adding or lifting is refused.
    server.kill();
    eventually("the outage seen", Duration::from_secs(10), async || {
        b.reconcile().await.is_err()
    })
    .await;
    assert!(b.current().entries.contains_key("S-2"));
    assert!(a.lift("S-2").await.is_err(), "no lift that only some see");

    // Back without its data (no persistence): the instances write back what they had.
    server.restart();
    eventually(
        "S-2 written back to the restarted Redis",
        Duration::from_secs(10),
        async || {
            redis::cmd("HEXISTS")
                .arg(format!("{PREFIX}sanctions"))
                .arg("S-2")
                .query::<bool>(&mut server.connection())
                .unwrap()
        },
    )
    .await;
    assert!(a.current().entries.contains_key("S-2"));
    assert!(b.current().entries.contains_key("S-2"));
}

/// Hits leased to an instance at a time in the failover test.
const LEASE: u32 = 16;

/// Two quota meters (two gateway instances) reserve through Sentinel; the master is killed
/// (SIGKILL) mid-load. The store must follow the failover to the promoted replica, and the
/// hits served beyond the limit (leases acknowledged by the old master but not yet on the
/// replica, granted again from the new one) must stay within the bound `docs/gateway.md`
/// states: one lease per instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_follows_a_sentinel_failover_within_one_lease_per_instance() {
    use gerbang_e2e::redis::Sentinels;
    use gerbang_quota::{Meter, QuotaError, RedisOptions};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    const LIMIT: u32 = 20_000;
    let mut topology = Sentinels::start();
    let old_master = topology.master.port;
    let meter = |instance: &str| {
        let mut o = RedisOptions::new(topology.url());
        o.instance = instance.into();
        o.lease = LEASE;
        o.timeout = Duration::from_secs(1);
        Arc::new(Meter::redis(&o).unwrap())
    };
    let meters = [meter("satu"), meter("dua")];
    let day: chrono::NaiveDate = "2026-03-01".parse().unwrap();
    let served = Arc::new(AtomicU32::new(0));
    let served_after_kill = Arc::new(AtomicU32::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU32::new(0));
    let deadline = Instant::now() + Duration::from_secs(90);

    let mut load = Vec::new();
    for m in &meters {
        let (m, served, after, killed, refused) = (
            Arc::clone(m),
            Arc::clone(&served),
            Arc::clone(&served_after_kill),
            Arc::clone(&killed),
            Arc::clone(&refused),
        );
        load.push(tokio::spawn(async move {
            // Bounded: ends when the day's quota is used up, or at the deadline.
            while Instant::now() < deadline {
                match m.reserve("rsud_01", day, LIMIT).await {
                    Ok(_) => {
                        served.fetch_add(1, Ordering::Relaxed);
                        if killed.load(Ordering::Relaxed) {
                            after.fetch_add(1, Ordering::Relaxed);
                        }
                        // Keep the load going through the failover rather than finishing
                        // the quota before it.
                        if !killed.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_micros(200)).await;
                        }
                    }
                    Err(QuotaError::Exhausted { .. }) => return,
                    Err(QuotaError::Unavailable(_)) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }

    // Mid-load: kill the master once a quarter of the quota is served.
    while served.load(Ordering::Relaxed) < LIMIT / 4 {
        assert!(Instant::now() < deadline, "the load did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    topology.master.kill();
    killed.store(true, Ordering::Relaxed);
    let at_kill = served.load(Ordering::Relaxed);
    let killed_at = Instant::now();

    for task in load {
        task.await.unwrap();
    }
    let total = served.load(Ordering::Relaxed);
    let after = served_after_kill.load(Ordering::Relaxed);
    let promoted = topology.master_port();
    eprintln!(
        "failover: {at_kill} hits served before the kill, {after} after, {total} in all of \
         {LIMIT} (overshoot {}), {} refusals meanwhile, {:?} from the kill to the end; \
         master now on port {promoted:?} (was {old_master})",
        total.saturating_sub(LIMIT),
        refused.load(Ordering::Relaxed),
        killed_at.elapsed(),
    );
    assert_eq!(
        promoted,
        Some(topology.replica.port),
        "the replica was promoted"
    );
    assert!(
        after > LIMIT / 2,
        "the store followed the failover and served the rest: {after}"
    );
    assert!(total >= LIMIT, "the quota was used up, not lost: {total}");
    assert!(
        total <= LIMIT + 2 * LEASE,
        "overshoot beyond one lease per instance: {total} served of {LIMIT}"
    );
    // A clean stop writes the exact counts to the new master: every hit served is there.
    for m in &meters {
        m.close().unwrap();
    }
    let fields: std::collections::HashMap<String, u32> = redis::cmd("HGETALL")
        .arg("gerbang:quota:2026-03-01:rsud_01")
        .query(&mut topology.replica.connection())
        .unwrap();
    let held: u32 = fields
        .iter()
        .filter(|(f, _)| !f.ends_with("#seq"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(held, total, "{fields:?}");
}

/// The real gateway with `quota.redis_url` naming the sentinels: its config is accepted,
/// and its lease is counted on the master they name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_given_the_sentinels_counts_its_quota_on_their_master() {
    use gerbang_e2e::redis::Sentinels;
    use gerbang_e2e::{
        Gateway, GatewayOptions, PASSWORD, Sim, TestPks, TestUser, call_nik, post, response_code,
    };

    let topology = Sentinels::start();
    let sim = Sim::start(10);
    let quota: &'static str = Box::leak(
        format!(
            "store = \"redis\"\nredis_url = \"{}\"\nlease = 4\nredis_timeout_ms = 1000\n",
            topology.url()
        )
        .into_boxed_str(),
    );
    let hospital = vec![TestPks {
        kuota: 10,
        ..TestPks::new(
            "rsud.toml",
            "1/RSUD/QR",
            vec![TestUser {
                id: "rsud_01",
                ip: "127.0.0.2",
                status: "aktif",
            }],
        )
    }];
    let gw = Gateway::start(GatewayOptions {
        quota,
        ..GatewayOptions::new(sim.addr, hospital)
    });
    let nik = sim.sample("alive", 1).await.remove(0);
    let (_, body) = post(
        &gw.client("127.0.0.2"),
        &gw.url("CALL_NIK"),
        call_nik(&nik, "rsud_01", PASSWORD),
    )
    .await;
    assert_eq!(response_code(&body), None, "served: {body}");
    assert_eq!(
        topology.master.total("rsud_01"),
        4,
        "one lease, on the master"
    );
}

/// A change whose message never arrived (written without `PUBLISH`, as if the message were
/// lost) is still read by the check of the change count every second.
#[tokio::test]
async fn a_sanction_whose_message_was_lost_is_read_by_the_count_check() {
    let server = Server::start();
    let one = instance(&server);
    let a = RedisSanctions::start(&one, PREFIX);
    // Once subscribed, the follower reads the set at once; only then is the change made.
    eventually(
        "the follower subscribed",
        Duration::from_secs(10),
        async || {
            let subscribed: (String, u32) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(format!("{PREFIX}sanctions"))
                .query(&mut server.connection())
                .unwrap();
            subscribed.1 == 1
        },
    )
    .await;
    a.reconcile().await.unwrap();
    let text = serde_json::to_string(&fields("rsud_03")).unwrap();
    let () = redis::pipe()
        .hset(format!("{PREFIX}sanctions"), "S-9", text)
        .ignore()
        .hincr(format!("{PREFIX}sanctions:version"), "n", 1)
        .ignore()
        .query(&mut server.connection())
        .unwrap();
    in_force(&a, "S-9", true, Duration::from_secs(5)).await;
}

/// Logins of one User ID racing on two instances leave exactly one live session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_logins_on_two_instances_leave_one_session() {
    let server = Server::start();
    let (one, two) = (instance(&server), instance(&server));
    let stores = [
        Arc::new(sessions(
            &one,
            NewLogin::EndsTheOther,
            Duration::from_secs(60),
        )),
        Arc::new(sessions(
            &two,
            NewLogin::EndsTheOther,
            Duration::from_secs(60),
        )),
    ];
    for round in 0..20 {
        let user = format!("rsud_{round:02}");
        let mut logins = Vec::new();
        for i in 0..8 {
            let (store, user) = (Arc::clone(&stores[i % 2]), user.clone());
            logins.push(tokio::spawn(async move {
                store.start(&user, ip("127.0.0.2")).await
            }));
        }
        let mut tokens = Vec::new();
        for l in logins {
            // A login that kept losing the race is refused, never a second session.
            if let Ok(t) = l.await.unwrap() {
                tokens.push(t);
            }
        }
        let mut live = 0;
        for t in &tokens {
            if stores[0].check(t, ip("127.0.0.2")).await.is_ok() {
                live += 1;
            }
        }
        assert_eq!(live, 1, "round {round}: {} logins succeeded", tokens.len());
    }
}

/// A stand-in for a sentinel: answers `SENTINEL MASTERS` with the master at the port it is
/// told, `ROLE` as a sentinel, `+OK` to anything else (the client's connection set-up). Lets a test demote the
/// master under a live connection without a sentinel racing to repair it.
async fn fake_sentinel(master: Arc<std::sync::atomic::AtomicU16>) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let master = Arc::clone(&master);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                let mut line = String::new();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let n: usize = line.trim_start_matches('*').trim().parse().unwrap_or(0);
                    let mut args = Vec::new();
                    for _ in 0..n {
                        line.clear();
                        read.read_line(&mut line).await.unwrap();
                        let len: usize = line.trim_start_matches('$').trim().parse().unwrap();
                        let mut buf = vec![0; len + 2];
                        read.read_exact(&mut buf).await.unwrap();
                        buf.truncate(len);
                        args.push(String::from_utf8(buf).unwrap().to_ascii_uppercase());
                    }
                    let reply = if args.first().map(String::as_str) == Some("SENTINEL")
                        && args.get(1).map(String::as_str) == Some("MASTERS")
                    {
                        let port = master.load(std::sync::atomic::Ordering::SeqCst).to_string();
                        let fields = [
                            "name",
                            "gerbang",
                            "ip",
                            "127.0.0.1",
                            "port",
                            &port,
                            "flags",
                            "master",
                        ];
                        let mut r = format!("*1\r\n*{}\r\n", fields.len());
                        for f in fields {
                            r.push_str(&format!("${}\r\n{f}\r\n", f.len()));
                        }
                        r
                    } else if args.first().map(String::as_str) == Some("ROLE") {
                        "*2\r\n$8\r\nsentinel\r\n*1\r\n$7\r\ngerbang\r\n".to_string()
                    } else {
                        "+OK\r\n".to_string()
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// The master is demoted to a replica under the link's live connection (a failover it did
/// not see): the write answered `READONLY` is made again, in the same call, on the master
/// the sentinels name now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_answered_readonly_goes_to_the_new_master_in_the_same_call() {
    let old = Server::start();
    let new = Server::start_replica_of(&old);
    let master = Arc::new(std::sync::atomic::AtomicU16::new(old.port));
    let sentinel = fake_sentinel(Arc::clone(&master)).await;
    let health = Arc::new(health());
    let link = open(
        &format!("redis+sentinel://127.0.0.1:{sentinel}/gerbang/0"),
        Arc::clone(&health),
    );
    let set = |v: u32| redis::cmd("SET").arg("gerbang:test:k").arg(v).clone();
    let () = link.query(set(1)).await.unwrap();

    // Swap the roles behind the link's back, then let the "sentinels" name the new master.
    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut new.connection())
        .unwrap();
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(new.port)
        .query(&mut old.connection())
        .unwrap();
    master.store(new.port, std::sync::atomic::Ordering::SeqCst);
    let refused = redis::cmd("SET")
        .arg("x")
        .arg(1)
        .query::<()>(&mut old.connection())
        .unwrap_err();
    assert_eq!(refused.code(), Some("READONLY"), "{refused}");

    link.query::<()>(set(2)).await.unwrap();
    assert!(health.is_healthy(), "not counted as an outage");
    let now: u32 = redis::cmd("GET")
        .arg("gerbang:test:k")
        .query(&mut new.connection())
        .unwrap();
    assert_eq!(now, 2);
}

/// The ACL user and password of a `redis+sentinel://` URL reach the master; without them
/// it refuses, and the call fails rather than hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_credentials_of_a_sentinel_url_are_used() {
    let server = Server::start();
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("gerbang")
        .arg("on")
        .arg(">uji-s3cret")
        .arg("~gerbang:*")
        .arg("+@all")
        .query(&mut server.connection())
        .unwrap();
    let sentinel = fake_sentinel(Arc::new(std::sync::atomic::AtomicU16::new(server.port))).await;
    let open = |userinfo: &str| {
        open(
            &format!("redis+sentinel://{userinfo}127.0.0.1:{sentinel}/gerbang/0"),
            Arc::new(health()),
        )
    };
    let set = redis::cmd("SET").arg("gerbang:test:k").arg(1).clone();
    let () = open("gerbang:uji-s3cret@")
        .query(set.clone())
        .await
        .unwrap();
    // The ACL user may not touch keys outside its prefix: the user really is `gerbang`.
    let outside = redis::cmd("SET").arg("other:k").arg(1).clone();
    assert!(
        open("gerbang:uji-s3cret@")
            .query::<()>(outside)
            .await
            .is_err()
    );
    // Without the default user's password (set now), no connection.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("uji-default")
        .query(&mut server.connection())
        .unwrap();
    assert!(open("").query::<()>(set.clone()).await.is_err());
    let () = open(":uji-default@").query(set).await.unwrap();
}

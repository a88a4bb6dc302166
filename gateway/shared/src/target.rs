//! Which Redis deployment the instances share, named by one URL so that every
//! configuration (the gateway's, the sidecar's) names it the same way:
//!
//! - `redis://[user:password@]host:port/db`, `redis+unix:///path?db=N`: one server;
//! - `redis+sentinel://[user:password@]host:port,host:port,…/master[/db]`: the master that
//!   the Redis Sentinels at those addresses (port 26379 when left out) know by the name
//!   `master`, found again after every failover. The user and password are those of the
//!   master and its replicas; `?sentinel_username=…&sentinel_password=…` authenticate to
//!   the sentinels themselves when they require it. Percent-encode `@ : / , ? & %` in a
//!   password.
//!
//! Errors never repeat the URL or any part of it that may be secret.

use gerbang_core::redis_url::SENTINEL_SCHEME;
pub use gerbang_core::redis_url::{SENTINEL_PORT, SentinelTarget, TargetError};
use redis::IntoConnectionInfo;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};

/// The Redis deployment: one server, or a master found through Sentinel.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server, its URL checked by the Redis client.
    Server(redis::ConnectionInfo),
    /// A master found through Sentinel.
    Sentinel(SentinelTarget),
}

impl RedisTarget {
    /// Parses a `redis://`, `redis+unix://`, `unix://` or `redis+sentinel://` URL.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        if let Some(rest) = url.strip_prefix(SENTINEL_SCHEME) {
            return SentinelTarget::parse(rest).map(Self::Sentinel);
        }
        if !["redis://", "redis+unix://", "unix://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Err(TargetError::new(
                "not a Redis URL: `redis://host:port/db`, `redis+unix:///path?db=N` or `redis+sentinel://host:port,…/master` (TLS to Redis is not supported)",
            ));
        }
        // The client's own message can quote the URL: give the kind of error only.
        url.into_connection_info()
            .map(Self::Server)
            .map_err(|e| TargetError::new(format!("not a valid Redis URL ({})", e.category())))
    }

    /// Where it points, for logs: addresses and names, never credentials.
    pub fn describe(&self) -> String {
        match self {
            Self::Server(info) => format!("redis {}", info.addr()),
            Self::Sentinel(s) => format!(
                "master `{}` of the sentinels {}",
                s.master,
                s.sentinels
                    .iter()
                    .map(|(h, p)| format!("{h}:{p}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server(_) => f
                .debug_tuple("Server")
                .field(&format_args!("{}", self.describe()))
                .finish(),
            Self::Sentinel(s) => f.debug_tuple("Sentinel").field(s).finish(),
        }
    }
}

/// The redis-rs client that asks the sentinels for `target`'s master.
pub(crate) fn sentinel_client(target: &SentinelTarget) -> redis::RedisResult<SentinelClient> {
    let addrs = target
        .sentinels
        .iter()
        .map(|(h, p)| redis::ConnectionAddr::Tcp(h.clone(), *p));
    let mut b = SentinelClientBuilder::new(addrs, &target.master, SentinelServerType::Master)?
        .set_client_to_redis_db(target.db);
    if let Some(u) = &target.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &target.password {
        b = b.set_client_to_redis_password(p);
    }
    if let Some(u) = &target.sentinel_username {
        b = b.set_client_to_sentinel_username(u);
    }
    if let Some(p) = &target.sentinel_password {
        b = b.set_client_to_sentinel_password(p);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel(url: &str) -> SentinelTarget {
        match RedisTarget::parse(url) {
            Ok(RedisTarget::Sentinel(s)) => s,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn refused(url: &str) -> String {
        match RedisTarget::parse(url) {
            Err(e) => e.to_string(),
            Ok(t) => panic!("{url} was accepted: {t:?}"),
        }
    }

    #[test]
    fn a_sentinel_url_names_the_sentinels_the_master_and_the_credentials() {
        let s = sentinel(
            "redis+sentinel://gerbang:p%40ss%3Aw0rd@10.0.0.11:26380,sentinel-b,[fd00::7]:26381/gerbang-quota/2?sentinel_password=s%26p",
        );
        assert_eq!(
            s.sentinels,
            vec![
                ("10.0.0.11".to_string(), 26380),
                ("sentinel-b".to_string(), SENTINEL_PORT),
                ("fd00::7".to_string(), 26381),
            ]
        );
        assert_eq!(s.master, "gerbang-quota");
        assert_eq!(s.db, 2);
        assert_eq!(s.username.as_deref(), Some("gerbang"));
        assert_eq!(s.password.as_deref(), Some("p@ss:w0rd"));
        assert_eq!(s.sentinel_username, None);
        assert_eq!(s.sentinel_password.as_deref(), Some("s&p"));
        let plain = sentinel("redis+sentinel://127.0.0.1:26379/m");
        assert_eq!((plain.db, plain.username, plain.password), (0, None, None));
        // A password without a user is the `default` user's (requirepass).
        let p = sentinel("redis+sentinel://:only-pw@h:1/m");
        assert_eq!((p.username, p.password.as_deref()), (None, Some("only-pw")));
    }

    #[test]
    fn debug_and_errors_never_show_a_password() {
        let url = "redis+sentinel://gerbang:s3cret-pw@10.0.0.11:26379/gerbang?sentinel_password=s3cret-too";
        let shown = format!("{:?}", RedisTarget::parse(url).expect("valid"));
        assert!(
            !shown.contains("s3cret")
                && shown.contains("<redacted>")
                && shown.contains("10.0.0.11"),
            "{shown}"
        );
        let shown = format!(
            "{:?}",
            RedisTarget::parse("redis://gerbang:s3cret-pw@10.0.0.7:6379/0").expect("valid")
        );
        assert!(
            !shown.contains("s3cret") && shown.contains("10.0.0.7:6379"),
            "{shown}"
        );
        for bad in [
            "redis+sentinel://gerbang:s3cret-pw@10.0.0.11:26379",
            "redis+sentinel://gerbang:s3cret-pw@10.0.0.11:99999/m",
            "redis+sentinel://gerbang:s3cret-pw@/m",
            "redis://gerbang:s3cret-pw@10.0.0.7:port/0",
            "http://gerbang:s3cret-pw@10.0.0.7/",
        ] {
            let e = refused(bad);
            assert!(!e.contains("s3cret"), "{bad}: {e}");
        }
    }

    #[test]
    fn malformed_sentinel_urls_say_what_is_wrong() {
        assert!(refused("redis+sentinel://10.0.0.11:26379").contains("no master name"));
        assert!(refused("redis+sentinel://10.0.0.11:26379/").contains("no master name"));
        assert!(refused("redis+sentinel:///m").contains("no sentinel address"));
        assert!(refused("redis+sentinel://a:1,,b:2/m").contains("not a sentinel address"));
        assert!(refused("redis+sentinel://a:0/m").contains("not a sentinel address"));
        assert!(refused("redis+sentinel://[fd00::1/m").contains("not a sentinel address"));
        assert!(refused("redis+sentinel://a b:1/m").contains("not a sentinel address"));
        assert!(refused("redis+sentinel://a:1/m/x").contains("not a database number"));
        assert!(refused("redis+sentinel://a:1/m/0/x").contains("only a master name"));
        assert!(refused("redis+sentinel://a:1/m?tls=yes").contains("unknown parameter `tls`"));
        assert!(refused("rediss://a:6379/0").contains("TLS to Redis is not supported"));
    }

    #[test]
    fn single_server_urls_are_checked_by_the_redis_client() {
        for ok in [
            "redis://127.0.0.1:6379/0",
            "redis://:pw@127.0.0.1/3",
            "redis+unix:///run/redis.sock?db=1",
            "unix:///run/redis.sock",
        ] {
            assert!(
                matches!(RedisTarget::parse(ok), Ok(RedisTarget::Server(_))),
                "{ok}"
            );
        }
        assert!(refused("redis://127.0.0.1:notaport/0").contains("not a valid Redis URL"));
    }
}

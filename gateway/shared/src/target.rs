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

use percent_encoding::percent_decode_str;
use redis::IntoConnectionInfo;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};

/// The port of a sentinel address that gives none.
pub const SENTINEL_PORT: u16 = 26379;

/// The Redis deployment: one server, or a master found through Sentinel.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server, its URL checked by the Redis client.
    Server(redis::ConnectionInfo),
    /// A master found through Sentinel.
    Sentinel(SentinelTarget),
}

/// A master found through Redis Sentinel.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    /// `host:port` of each sentinel, asked in this order.
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor the master by (`sentinel monitor <name> …`).
    pub master: String,
    /// Database number on the master.
    pub db: i64,
    /// ACL user on the master and its replicas.
    pub username: Option<String>,
    /// Password on the master and its replicas.
    pub password: Option<String>,
    /// ACL user on the sentinels.
    pub sentinel_username: Option<String>,
    /// Password on the sentinels.
    pub sentinel_password: Option<String>,
}

/// Why a Redis URL is refused. The message names the problem, never the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(String);

fn fail<T>(why: impl Into<String>) -> Result<T, TargetError> {
    Err(TargetError(why.into()))
}

const SENTINEL_SCHEME: &str = "redis+sentinel://";
const EXAMPLE: &str =
    "e.g. `redis+sentinel://10.0.0.11:26379,10.0.0.12:26379,10.0.0.13:26379/gerbang`";

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
            return fail(
                "not a Redis URL: `redis://host:port/db`, `redis+unix:///path?db=N` or `redis+sentinel://host:port,…/master` (TLS to Redis is not supported)",
            );
        }
        // The client's own message can quote the URL: give the kind of error only.
        url.into_connection_info()
            .map(Self::Server)
            .map_err(|e| TargetError(format!("not a valid Redis URL ({})", e.category())))
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

impl std::fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<redacted>" } else { "none" };
        f.debug_struct("SentinelTarget")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &set(&self.password))
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &set(&self.sentinel_password))
            .finish()
    }
}

fn decode(part: &str, what: &str) -> Result<String, TargetError> {
    match percent_decode_str(part).decode_utf8() {
        Ok(s) => Ok(s.into_owned()),
        Err(_) => fail(format!(
            "the {what} of the `redis+sentinel://` URL is not UTF-8 once percent-decoded"
        )),
    }
}

fn parse_address(addr: &str) -> Result<(String, u16), TargetError> {
    let bad = || {
        TargetError(format!(
            "`{addr}` is not a sentinel address `host:port` ({EXAMPLE})"
        ))
    };
    let (host, port) = if let Some(v6) = addr.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match addr.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (addr, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b))
    {
        return Err(bad());
    }
    let port = match port {
        None => SENTINEL_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad()),
        },
    };
    Ok((host.to_string(), port))
}

impl SentinelTarget {
    /// Parses what follows `redis+sentinel://`.
    fn parse(rest: &str) -> Result<Self, TargetError> {
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (mut username, mut password) = (None, None);
        if let Some(info) = userinfo {
            let (user, pass) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            if !user.is_empty() {
                username = Some(decode(user, "user")?);
            }
            if let Some(p) = pass.filter(|p| !p.is_empty()) {
                password = Some(decode(p, "password")?);
            }
        }
        if hosts.is_empty() {
            return fail(format!("no sentinel address ({EXAMPLE})"));
        }
        let sentinels = hosts
            .split(',')
            .map(parse_address)
            .collect::<Result<Vec<_>, _>>()?;
        let mut segments = path.split('/');
        let master = decode(segments.next().unwrap_or_default(), "master name")?;
        if master.is_empty() {
            return fail(format!(
                "no master name after the sentinel addresses ({EXAMPLE}): the name the sentinels monitor"
            ));
        }
        let db = match segments.next() {
            None | Some("") => 0,
            Some(n) => match n.parse::<i64>() {
                Ok(db) if db >= 0 => db,
                _ => {
                    return fail(format!(
                        "`{n}` after the master name is not a database number"
                    ));
                }
            },
        };
        if segments.next().is_some() {
            return fail(format!(
                "only a master name and a database number may follow the sentinel addresses ({EXAMPLE})"
            ));
        }
        let (mut sentinel_username, mut sentinel_password) = (None, None);
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sentinel_username" => sentinel_username = Some(decode(value, "sentinel user")?),
                "sentinel_password" => {
                    sentinel_password = Some(decode(value, "sentinel password")?);
                }
                other => {
                    return fail(format!(
                        "unknown parameter `{other}` in the `redis+sentinel://` URL (known: sentinel_username, sentinel_password)"
                    ));
                }
            }
        }
        Ok(Self {
            sentinels,
            master,
            db,
            username,
            password,
            sentinel_username,
            sentinel_password,
        })
    }

    /// The redis-rs client that asks the sentinels for the master.
    pub(crate) fn client(&self) -> redis::RedisResult<SentinelClient> {
        let addrs = self
            .sentinels
            .iter()
            .map(|(h, p)| redis::ConnectionAddr::Tcp(h.clone(), *p));
        let mut b = SentinelClientBuilder::new(addrs, &self.master, SentinelServerType::Master)?
            .set_client_to_redis_db(self.db);
        if let Some(u) = &self.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &self.password {
            b = b.set_client_to_redis_password(p);
        }
        if let Some(u) = &self.sentinel_username {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &self.sentinel_password {
            b = b.set_client_to_sentinel_password(p);
        }
        b.build()
    }
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

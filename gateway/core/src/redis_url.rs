//! The Redis Sentinel URL the instances share (`redis+sentinel://…`), parsed without the
//! Redis client so that `gerbang check` can refuse a malformed one with its file and line;
//! `gerbang-shared` connects with it.
//!
//! `redis+sentinel://[user:password@]host:port,host:port,…/master[/db]`: the master that
//! the Redis Sentinels at those addresses (port 26379 when left out) know by the name
//! `master`. `?sentinel_username=…&sentinel_password=…` authenticate to the sentinels
//! themselves. Percent-encode `@ : / , ? & %` in a password. Errors never repeat the URL or
//! any part of it that may be secret.

use percent_encoding::percent_decode_str;

/// The port of a sentinel address that gives none.
pub const SENTINEL_PORT: u16 = 26379;

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

impl TargetError {
    /// A refusal with this explanation (which must not quote the URL).
    pub fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

pub(crate) fn fail<T>(why: impl Into<String>) -> Result<T, TargetError> {
    Err(TargetError(why.into()))
}

pub const SENTINEL_SCHEME: &str = "redis+sentinel://";
const EXAMPLE: &str =
    "e.g. `redis+sentinel://10.0.0.11:26379,10.0.0.12:26379,10.0.0.13:26379/gerbang`";

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
    pub fn parse(rest: &str) -> Result<Self, TargetError> {
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
}

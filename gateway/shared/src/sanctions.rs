//! Sanctions (art. 45) applied through any instance and in force on every one. An entry is
//! its id and its fields as JSON, the fields of a `[[sanksi]]` entry of `sanksi.toml`
//! (`gerbang-core` checks them; this module only carries them).
//!
//! [`EmbeddedSanctions`] holds them in this process. [`RedisSanctions`] keeps them in Redis
//! for every instance:
//!
//! - `<prefix>sanctions`: hash, id → JSON of the fields;
//! - `<prefix>sanctions:version`: hash, `epoch` (set when the version is first written: a
//!   Redis that lost its data starts a new one) and `n` (counts every change);
//! - channel `<prefix>sanctions`: each change publishes the new `n`.
//!
//! Adding or lifting is one Lua script (write, count, publish). Each instance subscribes,
//! then reads the whole set (after every (re)connection, so nothing published while it was
//! away is missed), reads it again on every message, and checks `n` every second in case a
//! message was lost: a change is in force on every instance well within a second.
//!
//! With Redis unreachable the last set read stays in force: a sanction is never dropped
//! because Redis cannot be asked, and adding or lifting one is refused (lifting one on some
//! instances only would widen access). When Redis comes back having lost changes this
//! instance saw (restarted without its data, or a failover that lost the last writes: the
//! epoch changed or `n` went back), the entries it knows and Redis lacks are written back:
//! a lift that was lost is undone (fail closed), a sanction is never lost. After a loss of
//! the data (a new epoch) only the first instance back writes back; the others adopt what
//! Redis then holds, so a lift made after that write-back is not undone by a slower one.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use redis::Script;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::health::Health;
use crate::link::{Link, Redis, ScriptCall, Unavailable};

/// The sanctions in force as an instance knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanctionSet {
    /// Where Redis's count of changes started (`None`: this process's own set, or Redis
    /// not read yet).
    pub epoch: Option<String>,
    /// Changes counted in that epoch.
    pub version: u64,
    /// Id → the entry's fields as JSON text.
    pub entries: BTreeMap<String, String>,
}

impl SanctionSet {
    /// The fields of entry `id`, parsed.
    pub fn fields(&self, id: &str) -> Option<Result<Map<String, Value>, serde_json::Error>> {
        self.entries.get(id).map(|text| serde_json::from_str(text))
    }
}

/// Sanctions, in this process or shared by every instance.
#[async_trait]
pub trait SanctionStore: Send + Sync + std::fmt::Debug {
    /// Puts sanction `id` in force with `fields` (those of a `[[sanksi]]` entry; `null`
    /// fields are left out). False if a sanction with that id already stands.
    async fn add(&self, id: &str, fields: &Map<String, Value>) -> Result<bool, Unavailable>;

    /// Lifts sanction `id`; false if none stood.
    async fn lift(&self, id: &str) -> Result<bool, Unavailable>;

    /// The set in force.
    fn current(&self) -> Arc<SanctionSet>;

    /// Follows the set in force: the receiver sees every new set.
    fn changes(&self) -> watch::Receiver<Arc<SanctionSet>>;
}

fn to_text(fields: &Map<String, Value>) -> String {
    let kept: Map<String, Value> = fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept).to_string()
}

/// Sanctions held in this process only.
#[derive(Debug)]
pub struct EmbeddedSanctions {
    set: watch::Sender<Arc<SanctionSet>>,
}

impl Default for EmbeddedSanctions {
    fn default() -> Self {
        Self {
            set: watch::Sender::new(Arc::default()),
        }
    }
}

impl EmbeddedSanctions {
    /// A store holding `entries` (id → fields JSON), e.g. those of `sanksi.toml`.
    pub fn new(entries: BTreeMap<String, String>) -> Self {
        Self {
            set: watch::Sender::new(Arc::new(SanctionSet {
                entries,
                ..SanctionSet::default()
            })),
        }
    }

    fn change(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> bool) -> bool {
        self.set.send_if_modified(|set| {
            let mut next = (**set).clone();
            if !f(&mut next.entries) {
                return false;
            }
            next.version += 1;
            *set = Arc::new(next);
            true
        })
    }
}

#[async_trait]
impl SanctionStore for EmbeddedSanctions {
    async fn add(&self, id: &str, fields: &Map<String, Value>) -> Result<bool, Unavailable> {
        Ok(self.change(|entries| {
            if entries.contains_key(id) {
                return false;
            }
            entries.insert(id.to_string(), to_text(fields));
            true
        }))
    }

    async fn lift(&self, id: &str) -> Result<bool, Unavailable> {
        Ok(self.change(|entries| entries.remove(id).is_some()))
    }

    fn current(&self) -> Arc<SanctionSet> {
        self.set.borrow().clone()
    }

    fn changes(&self) -> watch::Receiver<Arc<SanctionSet>> {
        self.set.subscribe()
    }
}

/// Counts a change of the set: `KEYS[2]` is the version hash, `ARGV[1]` the channel.
const BUMP: &str = r"
local function bump()
  if redis.call('HEXISTS', KEYS[2], 'epoch') == 0 then
    local t = redis.call('TIME')
    redis.call('HSET', KEYS[2], 'epoch', t[1] .. '.' .. t[2])
  end
  local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
  redis.call('PUBLISH', ARGV[1], n)
  return n
end
";

/// `KEYS`: the set, the version. `ARGV`: channel, id, fields. Answers the new count, or -1
/// if the id stands already.
const ADD: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then
  return -1
end
return bump()
";

/// `KEYS`: the set, the version. `ARGV`: channel, id. Answers the new count, or -1 if no
/// such sanction stood.
const LIFT: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then
  return -1
end
return bump()
";

/// `KEYS`: the set, the version. `ARGV`: channel, the count and the epoch this instance
/// knew, then id and fields of each entry it knows. Writes back those Redis lacks, and
/// counts past what the instance knew. When the epoch changed (Redis lost its data), only
/// the first instance to come back writes back (`restored_from` names the epoch it wrote
/// back from) and the others answer -1 and adopt what Redis has: a sanction lifted after
/// that first write-back stays lifted.
const RESTORE: &str = r"
local changed = redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[3]
if changed and redis.call('HGET', KEYS[2], 'restored_from') == ARGV[3] then
  return -1
end
for i = 4, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
local n = bump()
if changed then
  redis.call('HSET', KEYS[2], 'restored_from', ARGV[3])
end
if n <= tonumber(ARGV[2]) then
  n = tonumber(ARGV[2]) + 1
  redis.call('HSET', KEYS[2], 'n', n)
end
return n
";

/// `KEYS`: the set, the version. Answers `{epoch, n, id, fields, id, fields, …}` as of one
/// moment.
const READ: &str = r"
local v = redis.call('HMGET', KEYS[2], 'epoch', 'n')
local out = {v[1] or '', v[2] or '0'}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do
  out[#out + 1] = all[i]
end
return out
";

/// How often each instance compares its count with Redis's, in case a message was lost.
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Shared {
    link: Link,
    set: watch::Sender<Arc<SanctionSet>>,
    /// One reconciliation at a time, so an older read never replaces a newer set.
    reconciling: tokio::sync::Mutex<()>,
    hash: String,
    version: String,
    channel: String,
    scripts: [Arc<Script>; 4],
}

/// Sanctions shared by every instance through Redis.
#[derive(Debug)]
pub struct RedisSanctions {
    shared: Arc<Shared>,
    _redis: Redis,
}

impl RedisSanctions {
    /// Sanctions under `<prefix>sanctions` of `redis`; starts following them (a background
    /// task on the link's runtime, ended when this store is dropped). Until Redis is first
    /// read the set is empty.
    pub fn start(redis: &Redis, prefix: &str) -> Self {
        let (set, _) = watch::channel(Arc::default());
        let shared = Arc::new(Shared {
            link: redis.link().clone(),
            set,
            reconciling: tokio::sync::Mutex::new(()),
            hash: format!("{prefix}sanctions"),
            version: format!("{prefix}sanctions:version"),
            channel: format!("{prefix}sanctions"),
            scripts: [
                format!("{BUMP}{ADD}"),
                format!("{BUMP}{LIFT}"),
                format!("{BUMP}{RESTORE}"),
                READ.to_string(),
            ]
            .map(|body| Arc::new(Script::new(&body))),
        });
        redis
            .handle()
            .spawn(follow(redis.link().clone(), Arc::downgrade(&shared)));
        Self {
            shared,
            _redis: redis.clone(),
        }
    }

    /// Reads Redis now and brings the set in force up to date (what every message and
    /// every reconnection does).
    pub async fn reconcile(&self) -> Result<(), Unavailable> {
        self.shared.reconcile(&self.shared.link).await
    }

    async fn change(
        &self,
        script: usize,
        id: &str,
        fields: Option<String>,
    ) -> Result<bool, Unavailable> {
        let s = &self.shared;
        let mut call = ScriptCall::new(&s.scripts[script])
            .key(&s.hash)
            .key(&s.version)
            .arg(&s.channel)
            .arg(id);
        if let Some(f) = fields {
            call = call.arg(f);
        }
        let n: i64 = s.link.query(call).await?;
        if n < 0 {
            return Ok(false);
        }
        // In force here at once; the others follow the message.
        if let Err(e) = s.reconcile(&s.link).await {
            tracing::warn!(error = %e, "sanction written to Redis, but reading the set back failed; it takes effect here at the next read");
        }
        Ok(true)
    }
}

#[async_trait]
impl SanctionStore for RedisSanctions {
    async fn add(&self, id: &str, fields: &Map<String, Value>) -> Result<bool, Unavailable> {
        self.change(0, id, Some(to_text(fields))).await
    }

    async fn lift(&self, id: &str) -> Result<bool, Unavailable> {
        self.change(1, id, None).await
    }

    fn current(&self) -> Arc<SanctionSet> {
        self.shared.set.borrow().clone()
    }

    fn changes(&self) -> watch::Receiver<Arc<SanctionSet>> {
        self.shared.set.subscribe()
    }
}

impl Shared {
    async fn read(&self, link: &Link) -> Result<SanctionSet, Unavailable> {
        let mut all: Vec<String> = link
            .query(
                ScriptCall::new(&self.scripts[3])
                    .key(&self.hash)
                    .key(&self.version),
            )
            .await?;
        if all.len() < 2 {
            return Err(Unavailable("Redis answered a short sanctions read".into()));
        }
        let rest = all.split_off(2);
        let epoch = Some(std::mem::take(&mut all[0])).filter(|e| !e.is_empty());
        let version = all[1].parse().unwrap_or(0);
        let mut entries = BTreeMap::new();
        let mut pairs = rest.into_iter();
        while let (Some(id), Some(fields)) = (pairs.next(), pairs.next()) {
            entries.insert(id, fields);
        }
        Ok(SanctionSet {
            epoch,
            version,
            entries,
        })
    }

    /// Reads the set; adopts it, or, if Redis lost entries this instance knows, writes
    /// them back first.
    async fn reconcile(&self, link: &Link) -> Result<(), Unavailable> {
        let _one = self.reconciling.lock().await;
        let known = self.set.borrow().clone();
        let mut read = self.read(link).await?;
        let went_back =
            known.epoch.is_some() && (read.epoch != known.epoch || read.version < known.version);
        let lost: Vec<(&String, &String)> = if went_back {
            known
                .entries
                .iter()
                .filter(|(id, _)| !read.entries.contains_key(*id))
                .collect()
        } else {
            Vec::new()
        };
        if !lost.is_empty() {
            let count = lost.len();
            let mut call = ScriptCall::new(&self.scripts[2])
                .key(&self.hash)
                .key(&self.version)
                .arg(&self.channel)
                .arg(known.version)
                .arg(known.epoch.as_deref().unwrap_or(""));
            for (id, fields) in lost {
                call = call.arg(id).arg(fields);
            }
            let n: i64 = link.query(call).await?;
            if n < 0 {
                tracing::info!(
                    sanctions = count,
                    "Redis lost its sanctions and another instance has written its set back: adopting that set"
                );
            } else {
                tracing::warn!(
                    sanctions = count,
                    "Redis lost sanctions this instance had in force (restarted without its data, or a failover lost the last writes): written back"
                );
            }
            read = self.read(link).await?;
        }
        self.set.send_if_modified(|set| {
            if **set == read {
                return false;
            }
            let added = read
                .entries
                .keys()
                .filter(|id| !set.entries.contains_key(*id))
                .count();
            let lifted = set
                .entries
                .keys()
                .filter(|id| !read.entries.contains_key(*id))
                .count();
            if added + lifted > 0 {
                tracing::info!(
                    sanctions = read.entries.len(),
                    added,
                    lifted,
                    version = read.version,
                    "sanctions in force updated from Redis"
                );
            }
            *set = Arc::new(read);
            true
        });
        Ok(())
    }
}

/// Follows the set: subscribe, read, read again on each message and whenever the count
/// moved; after a lost connection, the same again. Ends when the store is dropped.
async fn follow(link: Link, shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else {
            return;
        };
        let channel = s.channel.clone();
        drop(s);
        let mut pubsub = match subscribe(&link, &channel).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "sanctions channel not subscribed; retrying");
                tokio::time::sleep(Health::RETRY).await;
                continue;
            }
        };
        let mut messages = pubsub.on_message();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once: the read after (re)subscribing.
        loop {
            let connected = tokio::select! {
                m = messages.next() => m.is_some(),
                _ = tick.tick() => true,
            };
            let Some(s) = shared.upgrade() else {
                return;
            };
            if !connected {
                break;
            }
            // Unreachable: the set in force stays (logged by the link's health).
            let _ = s.reconcile(&link).await;
        }
        tokio::time::sleep(Health::RETRY).await;
    }
}

async fn subscribe(link: &Link, channel: &str) -> Result<redis::aio::PubSub, Unavailable> {
    let client = link.master().await?;
    let timeout = link.timeout();
    let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(|_| Unavailable("connecting for the sanctions channel timed out".into()))?
        .map_err(|e| Unavailable(format!("connecting for the sanctions channel: {e}")))?;
    tokio::time::timeout(timeout, pubsub.subscribe(channel))
        .await
        .map_err(|_| Unavailable("subscribing to the sanctions channel timed out".into()))?
        .map_err(|e| Unavailable(format!("subscribing to the sanctions channel: {e}")))?;
    Ok(pubsub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(kuota: Option<u32>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), "S-1".into());
        m.insert("jenis".into(), "kurangi_kuota".into());
        m.insert("sasaran".into(), "user_01".into());
        m.insert(
            "kuota_harian".into(),
            kuota.map_or(Value::Null, Value::from),
        );
        m
    }

    #[tokio::test]
    async fn embedded_add_and_lift_are_seen_by_followers() {
        let store = EmbeddedSanctions::default();
        let mut changes = store.changes();
        assert!(store.add("S-1", &fields(None)).await.expect("add"));
        assert!(
            !store.add("S-1", &fields(Some(5))).await.expect("again"),
            "ids are unique"
        );
        assert!(changes.has_changed().expect("open"));
        let set = changes.borrow_and_update().clone();
        assert_eq!(set.version, 1);
        let f = set.fields("S-1").expect("present").expect("json");
        assert!(
            !f.contains_key("kuota_harian"),
            "null fields are left out: {f:?}"
        );
        assert!(store.lift("S-1").await.expect("lift"));
        assert!(!store.lift("S-1").await.expect("twice"));
        assert!(store.current().entries.is_empty());
        assert_eq!(store.current().version, 2);
    }
}

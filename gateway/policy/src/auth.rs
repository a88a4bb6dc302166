//! Authentication: User ID + password (argon2id) **and** the TCP peer inside that User ID's
//! registered IP LAN (Permendagri 102/2019 art. 28, 32; the juknis).
//!
//! argon2id costs tens of milliseconds by design, far too much for every request of a
//! machine client. After one successful argon2 check the credential is remembered as an
//! HMAC-SHA256 of the password under a key that lives only in this process; later requests
//! compare that digest in constant time. The entry is tied to the exact password hash in the
//! PKS file, so changing the password (or reloading a changed file) forgets it. Failures are
//! never cached: every wrong password pays the full argon2 cost and counts toward a lockout.
//!
//! The lockouts themselves (art. 32) are counted by the caller, in this process or across
//! every instance (`gerbang-shared`'s `LockoutStore`): [`Authenticator::attempt`] says what
//! a login attempt counts against, [`Authenticator::precheck`] and
//! [`Authenticator::verify_slow`] say whether it failed.

use std::net::IpAddr;
use std::sync::Arc;

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use gerbang_core::{Refusal, Rejection, canonical_ip};

use crate::snapshot::{Snapshot, UserRef};

type HmacSha256 = Hmac<Sha256>;

/// How many argon2 working memories are kept for reuse: as many as the gateway lets run
/// at once (its `ARGON2_SLOTS`); a check beyond that allocates and frees its own.
const MEMORY_KEPT: usize = 4;

/// What a request presents. Its `Debug` never shows the password.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub user_id: &'a str,
    pub password: &'a str,
    /// The TCP peer address.
    pub peer: IpAddr,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user_id", &self.user_id)
            .field("password", &"<redacted>")
            .field("peer", &self.peer)
            .finish()
    }
}

/// The outcome of the cheap checks: either an answer, or a password to verify with argon2.
#[derive(Debug)]
pub enum Precheck {
    /// Authenticated from the credential cache.
    Done(UserRef),
    /// Needs [`Authenticator::verify_slow`] (run it on a blocking thread).
    NeedsArgon2(SlowCheck),
}

/// The state carried from [`Authenticator::precheck`] to [`Authenticator::verify_slow`].
/// Its `Debug` leaves the password hash out.
pub struct SlowCheck {
    user: UserRef,
    pub(crate) phc: Arc<str>,
}

impl std::fmt::Debug for SlowCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowCheck")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

struct CachedCredential {
    phc: Arc<str>,
    digest: [u8; 32],
}

/// What a login attempt counts against when it fails (art. 32: repeated failures must not
/// allow guessing): always its source address, and the User ID it names only when the
/// address is inside that User ID's own IP LAN. From anywhere else a failure counts against
/// the address only: otherwise a host in one institution's LAN could keep another
/// institution's User ID locked out for ever.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The source address, IPv4-mapped addresses as IPv4.
    pub peer: IpAddr,
    /// The User ID named, when the address is inside its own IP LAN.
    pub own_user_id: Option<&'a str>,
    own: Option<UserRef>,
}

/// A refusal of an address or User ID locked out for `wait`.
pub fn locked_out(wait: std::time::Duration) -> Rejection {
    let detail = format!(
        "terlalu banyak login gagal; coba lagi dalam {} detik",
        wait.as_secs().max(1)
    );
    Rejection::new(Refusal::LoginLocked, detail).retry_after(wait)
}

/// Authenticates requests against a snapshot; holds the credential cache. Its `Debug`
/// shows neither the process key nor the cached digests.
pub struct Authenticator {
    key: [u8; 32],
    cache: DashMap<String, CachedCredential>,
    /// argon2's working memory (19 MiB at the default cost), reused from check to check.
    /// Allocating it each time made glibc keep one such block per first login (its mmap
    /// threshold rises to the block size, so freed blocks stay in the malloc arenas):
    /// +19 MiB of resident memory per User ID, 1.2 GiB after 200 (loadtest/RESULTS.md).
    memory: std::sync::Mutex<Vec<Vec<Block>>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator {
    pub fn new() -> Self {
        Self {
            key: rand::random(),
            cache: DashMap::new(),
            memory: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn digest(&self, user_id: &str, password: &str) -> [u8; 32] {
        // new_from_slice accepts any key length for HMAC; 32 bytes always works.
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(user_id.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The first check, before any lockout is looked at: the source address must be inside
    /// a registered IP LAN (the closed network rule, art. 28; no argon2 cost and no counting
    /// for strangers). Says what the attempt counts against.
    pub fn attempt<'a>(
        &self,
        snap: &Snapshot,
        c: Credentials<'a>,
    ) -> Result<Attempt<'a>, Rejection> {
        let peer = canonical_ip(c.peer);
        let Some(ip_user) = snap.user_by_ip(peer) else {
            return Err(Rejection::new(
                Refusal::IpNotRegistered,
                "alamat asal koneksi tidak terdaftar sebagai IP LAN User ID mana pun",
            ));
        };
        let own = snap
            .user_by_id(c.user_id)
            .filter(|&r| r == ip_user && snap.user(r).ip_registered(peer));
        Ok(Attempt {
            peer,
            own_user_id: own.map(|_| c.user_id),
            own,
        })
    }

    /// The checks after the lockouts that need no argon2: the User ID's own IP LAN, and the
    /// cache. An `Err` is a failed login (count it against `attempt`); `Done` a successful
    /// one.
    ///
    /// Only the User ID whose IP LAN holds the peer can log in from there, so every other
    /// User ID named from that address is refused before its password is looked at: the
    /// same answer (`IP Address Tidak Sesuai`) and the same time whatever the password and
    /// whether the User ID exists. Anyone in one registered LAN can therefore neither test
    /// another institution's passwords nor learn which User IDs exist.
    pub fn precheck(
        &self,
        snap: &Snapshot,
        c: Credentials<'_>,
        attempt: &Attempt<'_>,
    ) -> Result<Precheck, Rejection> {
        let Some(user) = attempt.own else {
            return Err(not_this_lan());
        };
        let phc: Arc<str> = Arc::from(snap.user(user).password_hash.as_str());
        if let Some(cached) = self.cache.get(c.user_id)
            && cached.phc == phc
            && bool::from(cached.digest.ct_eq(&self.digest(c.user_id, c.password)))
        {
            return Ok(Precheck::Done(user));
        }
        Ok(Precheck::NeedsArgon2(SlowCheck { user, phc }))
    }

    /// The argon2 check; CPU-heavy, so callers run it on a blocking thread. Only reached
    /// from the User ID's own IP LAN, so an `Err` (a failed login) counts against the
    /// address and the User ID. (The snapshot is the one [`Self::precheck`] checked the LAN in; nothing is
    /// left to read from it.)
    pub fn verify_slow(
        &self,
        _snap: &Snapshot,
        c: Credentials<'_>,
        check: SlowCheck,
    ) -> Result<UserRef, Rejection> {
        if !self.verify(c.password.as_bytes(), &check.phc) {
            return Err(Rejection::new(
                Refusal::LoginFailed,
                "User ID atau password salah",
            ));
        }
        self.cache.insert(
            c.user_id.to_string(),
            CachedCredential {
                phc: check.phc,
                digest: self.digest(c.user_id, c.password),
            },
        );
        Ok(check.user)
    }

    /// Whether `password` matches the PHC string `phc`, computed in pooled memory. A PHC
    /// string that does not parse, or names another algorithm, matches nothing.
    pub(crate) fn verify(&self, password: &[u8], phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
            return false;
        };
        let version = match hash.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        let Ok(params) = Params::try_from(&hash) else {
            return false;
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let mut blocks = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        blocks.resize(params.block_count(), Block::default());
        let mut out = vec![0u8; expected.len()];
        let computed = Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..])
            .is_ok();
        let mut pool = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < MEMORY_KEPT {
            pool.push(blocks);
        }
        drop(pool);
        computed && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
    }

    /// After a reload: keeps the cached credentials still valid in the new snapshot (the
    /// User ID is there with the same password hash) and forgets the others. Clearing them
    /// all would make every User ID pay argon2 again after each reload or sanction, 50,000
    /// of them at once at the largest scale. Keeping a stale one would be harmless anyway:
    /// a cached credential only counts when the snapshot's hash for that User ID is the one
    /// it was made with.
    pub fn keep_valid(&self, snap: &Snapshot) {
        self.cache.retain(|id, cached| {
            snap.user_by_id(id)
                .is_some_and(|r| *snap.user(r).password_hash == *cached.phc)
        });
    }
}

/// The answer to a User ID named from an IP LAN that is not its own: the same whether the
/// User ID exists and whatever the password.
fn not_this_lan() -> Rejection {
    Rejection::new(
        Refusal::IpMismatch,
        "User ID ini tidak terdaftar untuk alamat asal koneksi ini",
    )
}

/// Hashes a password as Gerbang expects it in PKS files (argon2id, default parameters).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

//! Daily NIK-hit quotas and burst limits. A hit is reserved before a lookup is forwarded
//! and refunded if the DWH fails; the day is the WIB calendar day; the embedded store keeps
//! counts across restarts and crashes without letting a User ID pass its quota; the Redis
//! store shares them across gateway instances, leasing hits in chunks; burst limits cap
//! requests per second per User ID and per Pengguna.
#![forbid(unsafe_code)]

mod burst;
mod day;
mod embedded;
mod health;
mod meter;
mod redis_store;

pub use burst::{Burst, BurstExceeded, BurstScope};
pub use day::until_next_wib_midnight;
pub use embedded::read_ceilings;
pub use health::StoreHealth;
pub use meter::{Meter, QuotaError, SharedMeter, StoreFailure, Usage};
pub use redis_store::RedisOptions;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_redis;

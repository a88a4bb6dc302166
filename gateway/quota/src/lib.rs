//! Daily NIK-hit quotas and burst limits. A hit is reserved before a lookup is forwarded
//! and refunded if the DWH fails; the day is the WIB calendar day; the embedded store keeps
//! counts across restarts and crashes without letting a User ID pass its quota; burst
//! limits cap requests per second per User ID and per Pengguna.
#![forbid(unsafe_code)]

mod burst;
mod day;
mod embedded;
mod meter;

pub use burst::{Burst, BurstExceeded, BurstScope};
pub use day::until_next_wib_midnight;
pub use embedded::read_ceilings;
pub use meter::{Meter, QuotaError, SharedMeter, Usage};

#[cfg(test)]
mod tests;

//! Time as the rules see it: calendar days in Asia/Jakarta (WIB, UTC+7, no daylight saving),
//! behind a trait so tests can use a fake clock for day changes and PKS ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// WIB: UTC+7 all year, no daylight saving. Quota days, the decision log's files and
/// times, reports and PKS dates all turn at its midnight.
pub const WIB: FixedOffset = match FixedOffset::east_opt(7 * 3600) {
    Some(offset) => offset,
    // Evaluated by the compiler: 7 h is within chrono's ±24 h, or the build fails here.
    None => panic!("+07:00 is a valid offset"),
};

/// The WIB calendar day of an instant.
pub fn wib_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&WIB).date_naive()
}

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Today's WIB calendar day.
    fn today(&self) -> NaiveDate {
        wib_day(self.now())
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests set by hand; clones share the same time.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(AtomicI64::new(at.timestamp_millis())))
    }
    pub fn set(&self, at: DateTime<Utc>) {
        self.0.store(at.timestamp_millis(), Ordering::SeqCst);
    }
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wib_day_changes_at_17_utc() {
        let before: DateTime<Utc> = "2026-03-01T16:59:59Z".parse().expect("time");
        let after: DateTime<Utc> = "2026-03-01T17:00:00Z".parse().expect("time");
        assert_eq!(
            wib_day(before),
            NaiveDate::from_ymd_opt(2026, 3, 1).expect("date")
        );
        assert_eq!(
            wib_day(after),
            NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
        );
        let clock = FakeClock::new(before);
        clock.advance(std::time::Duration::from_secs(1));
        assert_eq!(
            clock.today(),
            NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
        );
    }
}

//! When the quota day ends: 00:00 WIB (UTC+7), not UTC midnight.

use std::time::Duration;

use chrono::{DateTime, Days, Utc};
use gerbang_core::WIB;

/// Time from `now` until the next 00:00 WIB, when every daily quota starts afresh.
pub fn until_next_wib_midnight(now: DateTime<Utc>) -> Duration {
    let local = now.with_timezone(&WIB);
    let next = local
        .date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| t.and_local_timezone(WIB).single());
    next.and_then(|n| (n.with_timezone(&Utc) - now).to_std().ok())
        .unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_at_wib_midnight_not_utc() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        // 16:59:59 UTC is 23:59:59 WIB: one second to go.
        assert_eq!(
            until_next_wib_midnight(t("2026-03-01T16:59:59Z")),
            Duration::from_secs(1)
        );
        // 17:00 UTC is 00:00 WIB of the next day: a whole day to go.
        assert_eq!(
            until_next_wib_midnight(t("2026-03-01T17:00:00Z")),
            Duration::from_secs(86_400)
        );
        // UTC midnight is 07:00 WIB: 17 hours to go.
        assert_eq!(
            until_next_wib_midnight(t("2026-03-02T00:00:00Z")),
            Duration::from_secs(17 * 3600)
        );
    }
}

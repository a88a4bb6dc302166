//! `[balikan]`: the data-balikan channel's window, limits and embedded store.

use super::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct BalikanFile {
    /// Days a lookup keeps its NIK open for a balikan by the same PKS (default 90).
    window_days: Option<u32>,
    /// Records a User ID may return per WIB day (default 5000), apart from its NIK hits.
    daily_records: Option<u32>,
    /// Records one request may carry (default 500, at most 1000).
    max_records: Option<u32>,
    /// The embedded store of looked-up NIK digests (default `balikan.redb` beside the quota
    /// store); with `[quota] store = "redis"` they are kept in Redis instead.
    path: Option<String>,
}

/// Validated data-balikan settings (`[balikan]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalikanSettings {
    /// How long a lookup keeps its NIK open for a balikan.
    pub window: Duration,
    /// Records per User ID per WIB day.
    pub daily_records: u32,
    /// Records per request.
    pub max_records: usize,
    /// The embedded store's file.
    pub path: PathBuf,
}

/// Most records one request may carry, whatever the configuration says.
pub const MAX_BALIKAN_RECORDS: u32 = 1000;

/// Checks `[balikan]`, adding what is wrong to `errors`. `quota_path` is the embedded quota
/// store's file, beside which the default store lives.
pub(super) fn balikan_settings(
    file: BalikanFile,
    base: &Path,
    quota_path: &Path,
    src: &Source<'_>,
    errors: &mut Vec<ConfigError>,
) -> BalikanSettings {
    let window_days = file.window_days.unwrap_or(90);
    if !(1..=731).contains(&window_days) {
        errors.push(src.error(
            None,
            "balikan.window_days",
            "must be from 1 to 731 days (two years, a PKS's usual term)",
        ));
    }
    let daily_records = file.daily_records.unwrap_or(5000);
    if daily_records == 0 {
        errors.push(src.error(None, "balikan.daily_records", "must be at least 1"));
    }
    let max_records = file.max_records.unwrap_or(500);
    if !(1..=MAX_BALIKAN_RECORDS).contains(&max_records) {
        errors.push(src.error(
            None,
            "balikan.max_records",
            format!("must be from 1 to {MAX_BALIKAN_RECORDS}"),
        ));
    }
    let path = match file.path {
        Some(p) => base.join(p),
        None => quota_path.parent().unwrap_or(base).join("balikan.redb"),
    };
    BalikanSettings {
        window: Duration::from_secs(u64::from(window_days) * 86_400),
        daily_records,
        max_records: max_records as usize,
        path,
    }
}

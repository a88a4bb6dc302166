//! Meter semantics with explicit days (the fake clock of the gateway supplies them).

use std::sync::Arc;

use chrono::NaiveDate;

use crate::*;

fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

#[tokio::test]
async fn counts_up_to_the_limit_then_refuses() {
    let m = Meter::memory();
    for i in 1..=3 {
        let u = m
            .reserve("u", day("2026-03-01"), 3)
            .await
            .expect("within quota");
        assert_eq!((u.used, u.remaining()), (i, 3 - i));
    }
    let refused = m.reserve("u", day("2026-03-01"), 3).await;
    assert!(
        matches!(refused, Err(QuotaError::Exhausted { used: 3, limit: 3 })),
        "{refused:?}"
    );
    // Another User ID is untouched.
    m.reserve("v", day("2026-03-01"), 3).await.expect("v");
}

#[tokio::test]
async fn a_new_wib_day_starts_afresh() {
    let m = Meter::memory();
    for _ in 0..2 {
        m.reserve("u", day("2026-03-01"), 2).await.expect("day 1");
    }
    assert!(m.reserve("u", day("2026-03-01"), 2).await.is_err());
    m.reserve("u", day("2026-03-02"), 2)
        .await
        .expect("the next day");
    m.prune_before(day("2026-03-02"));
    assert_eq!(m.used("u", day("2026-03-01")), 0);
    assert_eq!(m.used("u", day("2026-03-02")), 1);
}

#[tokio::test]
async fn refunds_give_the_hit_back() {
    let m = Meter::memory();
    m.reserve("u", day("2026-03-01"), 1).await.expect("first");
    m.refund("u", day("2026-03-01"));
    m.reserve("u", day("2026-03-01"), 1)
        .await
        .expect("refunded hit is available again");
}

#[tokio::test]
async fn a_reduced_limit_applies_at_once() {
    let m = Meter::memory();
    for _ in 0..5 {
        m.reserve("u", day("2026-03-01"), 10)
            .await
            .expect("within 10");
    }
    // A sanction reduces the quota to 3 mid-day: already over, so exhausted.
    let refused = m.reserve("u", day("2026-03-01"), 3).await;
    assert!(
        matches!(refused, Err(QuotaError::Exhausted { used: 5, limit: 3 })),
        "{refused:?}"
    );
    // Raised to 6: one more.
    m.reserve("u", day("2026-03-01"), 6).await.expect("raised");
    assert!(m.reserve("u", day("2026-03-01"), 6).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_never_pass_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m =
        Arc::new(Meter::embedded(&dir.path().join("q.redb"), 4, day("2026-03-01")).expect("open"));
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let m = Arc::clone(&m);
            tokio::spawn(async move { m.reserve("u", day("2026-03-01"), 75).await.is_ok() })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.expect("task"));
    }
    assert_eq!(granted, 75);
}

#[tokio::test]
async fn after_a_crash_the_persisted_ceiling_counts_as_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.redb");
    {
        let m = Meter::embedded(&path, 8, day("2026-03-01")).expect("open");
        for _ in 0..5 {
            m.reserve("u", day("2026-03-01"), 100).await.expect("hit");
        }
        // Dropped without close(): as after kill -9. The block of 8 was persisted, and at
        // half of it the next one was asked for.
    }
    let m = Meter::embedded(&path, 8, day("2026-03-01")).expect("reopen");
    assert_eq!(
        m.used("u", day("2026-03-01")),
        16,
        "both blocks count: never more hits than the quota"
    );
}

/// The ceiling a User ID's next block was asked for ahead, if one is in flight.
fn asked_ahead(m: &Meter, key: &(String, NaiveDate)) -> Option<u32> {
    m.counters
        .get(key)
        .expect("counter")
        .ahead
        .as_ref()
        .map(|a| a.0)
}

#[tokio::test]
async fn the_next_block_is_persisted_ahead_so_a_steady_user_does_not_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.redb");
    let m = Meter::embedded(&path, 8, day("2026-03-01")).expect("open");
    let key = ("u".to_string(), day("2026-03-01"));
    for _ in 0..3 {
        m.reserve("u", day("2026-03-01"), 100).await.expect("hit");
    }
    assert_eq!(asked_ahead(&m, &key), None);
    // The fourth hit leaves half the block: the next one is asked for, not waited for.
    m.reserve("u", day("2026-03-01"), 100).await.expect("hit");
    assert_eq!(asked_ahead(&m, &key), Some(16));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut c = m.counters.get_mut(&key).expect("counter");
        crate::meter::take_ahead(&mut c);
        if c.allocated == 16 {
            break;
        }
        drop(c);
        assert!(
            std::time::Instant::now() < deadline,
            "the next block was never committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Hits 5 to 12 come from memory; the 12th leaves half of the new block and asks for
    // the one after.
    for _ in 4..12 {
        m.reserve("u", day("2026-03-01"), 100).await.expect("hit");
    }
    assert_eq!(asked_ahead(&m, &key), Some(24));
    // Asked ahead at the limit's edge: never past it.
    let m2 = Meter::embedded(&dir.path().join("q2.redb"), 8, day("2026-03-01")).expect("open");
    for _ in 0..10 {
        m2.reserve("u", day("2026-03-01"), 10).await.expect("hit");
    }
    assert!(m2.reserve("u", day("2026-03-01"), 10).await.is_err());
    drop(m2);
    let m2 = Meter::embedded(&dir.path().join("q2.redb"), 8, day("2026-03-01")).expect("reopen");
    assert_eq!(m2.used("u", day("2026-03-01")), 10);
}

#[tokio::test]
async fn a_clean_shutdown_keeps_exact_counts_and_old_days_are_pruned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.redb");
    {
        let m = Meter::embedded(&path, 8, day("2026-03-01")).expect("open");
        for _ in 0..5 {
            m.reserve("u", day("2026-03-01"), 100).await.expect("hit");
        }
        m.close().expect("close");
        assert!(
            m.reserve("u", day("2026-03-01"), 100).await.is_err(),
            "closed meters refuse"
        );
    }
    let m = Meter::embedded(&path, 8, day("2026-03-01")).expect("reopen");
    assert_eq!(m.used("u", day("2026-03-01")), 5);
    drop(m);
    let m = Meter::embedded(&path, 8, day("2026-03-02")).expect("next day");
    assert_eq!(m.used("u", day("2026-03-01")), 0);
    drop(m);
    assert!(read_ceilings(&path).expect("read").is_empty());
}

#[tokio::test]
async fn a_block_never_reaches_past_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.redb");
    {
        let m = Meter::embedded(&path, 64, day("2026-03-01")).expect("open");
        m.reserve("u", day("2026-03-01"), 10).await.expect("hit");
    }
    let m = Meter::embedded(&path, 64, day("2026-03-01")).expect("reopen");
    assert_eq!(m.used("u", day("2026-03-01")), 10);
    assert!(m.reserve("u", day("2026-03-01"), 10).await.is_err());
}

#[test]
fn a_large_daily_quota_gets_a_larger_block() {
    use crate::meter::block_for;
    assert_eq!(block_for(16, 1_000), 16);
    assert_eq!(block_for(16, 6_400), 100);
    assert_eq!(block_for(16, 1_000_000_000), 4096);
    assert_eq!(
        block_for(500, 6_400),
        500,
        "a configured block is never made smaller"
    );
}

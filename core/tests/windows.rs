//! Calendar and rolling windows as verify sees them: daylight-saving days, a wall clock that
//! steps back, anchored months, zones with half- and quarter-hour offsets.

mod common;

use std::time::Duration;

use common::{TestVault, ts};
use jiff::Timestamp;
use nanu::{Code, Minted, Verdict, VerifyRequest};

fn verify_at(tv: &TestVault, m: &Minted, at: Timestamp) -> Verdict {
    let request = VerifyRequest {
        at: Some(at),
        ..VerifyRequest::default()
    };
    tv.vault
        .verify(m.secret.expose(), &request)
        .expect("verify")
}

/// Walks a key with a one-request daily limit in `zone` from `from` to `to` in 15-minute steps
/// and returns the instants of the verifies that were allowed, checking that every denial names
/// the next local midnight as its reset.
fn allowed_instants(zone: &str, from: &str, to: &str, midnights: &[Timestamp]) -> Vec<Timestamp> {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[&format!("requests=1/day@{zone}")]);
    let step = jiff::SignedDuration::from_mins(15);
    let (mut at, end) = (ts(from), ts(to));
    let mut allowed = Vec::new();
    while at < end {
        let v = verify_at(&tv, &m, at);
        if v.allowed {
            allowed.push(at);
        } else {
            assert_eq!(v.code, Code::UsageExceeded);
            let next = midnights.iter().find(|&&mid| mid > at).copied();
            assert_eq!(v.resets_at, next, "denied at {at}");
            let wait = next.map(|n| n.duration_since(at).unsigned_abs());
            assert_eq!(v.retry_after, wait, "denied at {at}");
        }
        at = at.checked_add(step).unwrap();
    }
    allowed
}

#[test]
fn a_daily_limit_resets_exactly_once_on_the_spring_forward_day_in_new_york() {
    // 2025-03-09 is 23 hours long in New York: midnight is 05:00Z, the next one 04:00Z.
    let midnights = [
        ts("2025-03-08T05:00:00Z"),
        ts("2025-03-09T05:00:00Z"),
        ts("2025-03-10T04:00:00Z"),
        ts("2025-03-11T04:00:00Z"),
    ];
    let allowed = allowed_instants(
        "America/New_York",
        "2025-03-08T17:00:00Z",
        "2025-03-10T16:00:00Z",
        &midnights,
    );
    assert_eq!(
        allowed,
        vec![
            ts("2025-03-08T17:00:00Z"),
            ts("2025-03-09T05:00:00Z"),
            ts("2025-03-10T04:00:00Z"),
        ]
    );
}

#[test]
fn a_daily_limit_resets_exactly_once_on_the_fall_back_day_in_new_york() {
    // 2025-11-02 is 25 hours long: midnight is 04:00Z, the next one 05:00Z; the local hour
    // 01:00-02:00 happens twice (05:00Z-06:00Z and 06:00Z-07:00Z) without a reset.
    let midnights = [
        ts("2025-11-01T04:00:00Z"),
        ts("2025-11-02T04:00:00Z"),
        ts("2025-11-03T05:00:00Z"),
        ts("2025-11-04T05:00:00Z"),
    ];
    let allowed = allowed_instants(
        "America/New_York",
        "2025-11-01T16:00:00Z",
        "2025-11-03T17:00:00Z",
        &midnights,
    );
    assert_eq!(
        allowed,
        vec![
            ts("2025-11-01T16:00:00Z"),
            ts("2025-11-02T04:00:00Z"),
            ts("2025-11-03T05:00:00Z"),
        ]
    );
}

#[test]
fn an_hourly_limit_in_new_york_has_one_window_per_real_hour_on_the_fall_back_day() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=1/hour@America/New_York"]);
    let mut allowed = 0;
    let mut at = ts("2025-11-02T04:00:00Z");
    while at < ts("2025-11-02T09:00:00Z") {
        if verify_at(&tv, &m, at).allowed {
            allowed += 1;
        }
        at = at.checked_add(jiff::SignedDuration::from_mins(5)).unwrap();
    }
    // 00:00 EDT, 01:00 EDT and 01:00 EST together (the repeated hour stays one window of two
    // real hours: a boundary already passed is not passed again), 02:00 and 03:00 EST.
    assert_eq!(allowed, 4);
}

#[test]
fn a_wall_clock_that_steps_back_never_reopens_or_resets_a_window_twice() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=2/day"]);
    tv.clock.set("2025-01-01T23:59:59Z");
    assert!(tv.verify(&m).allowed);
    tv.clock.set("2025-01-02T00:00:01Z");
    let v = tv.verify(&m);
    assert!(v.allowed);
    assert_eq!(v.remaining.unwrap().requests, Some(1));

    // Back to the first day: its window, with one request left, does not come back.
    tv.clock.set("2025-01-01T23:59:59Z");
    let v = tv.verify(&m);
    assert!(v.allowed);
    assert_eq!(v.remaining.unwrap().requests, Some(0));
    let v = tv.verify(&m);
    assert_eq!(v.code, Code::UsageExceeded);
    assert_eq!(v.resets_at, Some(ts("2025-01-03T00:00:00Z")));
    // Forward again to the second day: no second reset of the same window.
    tv.clock.set("2025-01-02T00:00:02Z");
    assert_eq!(tv.verify(&m).code, Code::UsageExceeded);
    // An explicit earlier time is treated the same way.
    let v = verify_at(&tv, &m, ts("2024-12-31T12:00:00Z"));
    assert_eq!(v.code, Code::UsageExceeded);
    assert_eq!(v.resets_at, Some(ts("2025-01-03T00:00:00Z")));
    tv.clock.set("2025-01-03T00:00:00Z");
    assert!(tv.verify(&m).allowed);
}

#[test]
fn a_rolling_window_does_not_refill_when_the_clock_steps_back() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=1/10s"]);
    tv.clock.set("2025-01-01T12:00:00Z");
    assert!(tv.verify(&m).allowed);
    tv.clock.set("2025-01-01T11:00:00Z");
    let v = tv.verify(&m);
    assert_eq!(v.code, Code::RateLimited);
    assert_eq!(v.retry_after, Some(Duration::from_secs(10)));
    tv.clock.set("2025-01-01T12:00:10Z");
    assert!(tv.verify(&m).allowed);
}

#[test]
fn a_month_anchored_on_the_31st_is_clamped_in_short_months() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=1/month:31"]);
    let steps = [
        ("2025-01-15T00:00:00Z", "2025-01-31T00:00:00Z"),
        ("2025-01-31T00:00:00Z", "2025-02-28T00:00:00Z"),
        ("2025-02-28T00:00:00Z", "2025-03-31T00:00:00Z"),
        ("2025-03-31T00:00:00Z", "2025-04-30T00:00:00Z"),
        ("2025-04-30T00:00:00Z", "2025-05-31T00:00:00Z"),
        ("2027-12-31T00:00:00Z", "2028-01-31T00:00:00Z"),
        ("2028-02-15T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"),
    ];
    for (at, resets) in steps {
        let v = verify_at(&tv, &m, ts(at));
        assert!(v.allowed, "a new window at {at}");
        let limit = &v.remaining.unwrap().limits[0];
        assert_eq!(limit.resets_at, Some(ts(resets)), "at {at}");
        let v = verify_at(&tv, &m, ts(at));
        assert_eq!(v.code, Code::UsageExceeded, "at {at}");
        assert_eq!(v.resets_at, Some(ts(resets)), "at {at}");
        let just_before = ts(resets).checked_sub(jiff::SignedDuration::from_micros(1));
        assert!(!verify_at(&tv, &m, just_before.unwrap()).allowed);
    }
}

#[test]
fn calendar_windows_follow_their_zone() {
    let tv = TestVault::new();
    let cases = [
        // +05:30: the day starts at 18:30 UTC.
        (
            "requests=1/day@Asia/Kolkata",
            "2025-01-01T18:29:59Z",
            "2025-01-01T18:30:00Z",
        ),
        // +05:45: every local hour starts at a quarter past the UTC hour.
        (
            "requests=1/hour@Asia/Kathmandu",
            "2025-01-01T10:14:00Z",
            "2025-01-01T10:15:00Z",
        ),
        // Weeks start on Monday: 2025-01-01 is a Wednesday.
        (
            "requests=1/week",
            "2025-01-05T23:59:59Z",
            "2025-01-06T00:00:00Z",
        ),
        (
            "requests=1/year@Europe/Berlin",
            "2025-12-31T22:59:59Z",
            "2025-12-31T23:00:00Z",
        ),
    ];
    for (text, before, boundary) in cases {
        let m = tv.mint("acme", &[text]);
        assert!(verify_at(&tv, &m, ts(before)).allowed, "{text}");
        let v = verify_at(&tv, &m, ts(before));
        assert_eq!(v.resets_at, Some(ts(boundary)), "{text}");
        assert!(verify_at(&tv, &m, ts(boundary)).allowed, "{text}");
    }
}

#[test]
fn a_lifetime_limit_never_resets() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=1"]);
    assert!(verify_at(&tv, &m, ts("2025-01-01T00:00:00Z")).allowed);
    for at in [
        "2025-01-02T00:00:00Z",
        "2030-01-01T00:00:00Z",
        "2999-01-01T00:00:00Z",
    ] {
        let v = verify_at(&tv, &m, ts(at));
        assert_eq!(v.code, Code::UsageExceeded);
        assert_eq!(v.resets_at, None);
        assert_eq!(v.retry_after, None);
    }
}

//! Time windows of limits and usage reports. Pure functions, no I/O.
//!
//! Times are `i64` microseconds since the Unix epoch (UTC) throughout.
//!
//! # Calendar windows and report buckets
//!
//! A calendar window is named by its civil start: a local date and time on a grid (every local
//! minute, every local hour, every local midnight, every Monday midnight, the anchored day of
//! every month, every January 1st). A civil time `s` becomes an instant as the *first instant
//! at which the local clock reads `s` or later*:
//!
//! - a civil time that occurs once is that instant;
//! - a civil time that occurs twice (a fold, clocks set back) is the earlier instant;
//! - a civil time that is skipped (a gap, clocks set forward) is the first instant after the
//!   gap, i.e. the instant of the transition.
//!
//! The window boundaries are these instants for every grid point. They are in the same order as
//! the grid, so the windows tile the timeline without gaps or overlaps: the window containing
//! `at` runs from the last boundary at or before `at` to the first boundary after `at`. A window
//! may be longer or shorter than nominal (a 23 or 25 hour day) and, where the clocks skip a
//! whole window (Pacific/Apia skipped 2011-12-30), empty.
//!
//! Normally the window containing `at` is the one whose civil start is the grid point at or
//! before the local time of `at`. Inside a fold the local clock shows times again that it showed
//! before; a boundary that was passed once is not passed again, so the repeated stretch stays in
//! the window that was open when the clocks went back. In Europe/Berlin the local hour 02:00 of
//! the autumn change is one hour window of two real hours (from 02:00 CEST to 03:00 CET), and in
//! a minute report the repeated hour is part of the bucket of the last minute before the change
//! (02:59 CEST), so every bucket keeps a distinct civil start.
//!
//! # Rolling windows
//!
//! [`Rolling`] is a GCRA (a token bucket) in exact integer arithmetic.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

use crate::error::{Error, Result};

const US_PER_SEC: i64 = 1_000_000;
const US_PER_MIN: i64 = 60 * US_PER_SEC;
const US_PER_HOUR: i64 = 60 * US_PER_MIN;
const US_PER_DAY: i64 = 24 * US_PER_HOUR;

/// At most this many grid steps are taken to skip boundaries already passed before a fold. A
/// fold is shorter than 52 hours (offsets are within ±26 h), i.e. fewer than 3,120 minutes.
const MAX_FOLD_STEPS: u32 = 4_096;

/// A calendar period of a limit window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A local hour.
    Hour,
    /// A local day, from midnight to midnight.
    Day,
    /// A week from Monday 00:00 to the next Monday 00:00.
    Week,
    /// A month from the anchor day (default the 1st) at 00:00.
    Month,
    /// A year from January 1st 00:00.
    Year,
}

impl Period {
    /// The stable snake_case name: "hour", "day", "week", "month" or "year".
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = Error;

    /// Parses "hour", "day", "week", "month", "year" or "hourly", "daily", "weekly",
    /// "monthly", "yearly" (ASCII case-insensitive, surrounding whitespace ignored).
    fn from_str(s: &str) -> Result<Period> {
        let name = s.trim().to_ascii_lowercase();
        match name.as_str() {
            "hour" | "hourly" => Ok(Period::Hour),
            "day" | "daily" => Ok(Period::Day),
            "week" | "weekly" => Ok(Period::Week),
            "month" | "monthly" => Ok(Period::Month),
            "year" | "yearly" => Ok(Period::Year),
            _ => Err(Error::invalid(format!(
                "unknown period {s:?}: expected hour, day, week, month or year"
            ))),
        }
    }
}

/// A bucket of a usage report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// A local minute.
    Minute,
    /// A local hour.
    Hour,
    /// A local day.
    Day,
    /// A week from Monday 00:00.
    Week,
    /// A calendar month from the 1st at 00:00.
    Month,
}

impl Bucket {
    /// The stable snake_case name: "minute", "hour", "day", "week" or "month".
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Bucket {
    type Err = Error;

    /// Parses "minute", "hour", "day", "week", "month" or "minutely", "hourly", "daily",
    /// "weekly", "monthly" (ASCII case-insensitive, surrounding whitespace ignored).
    fn from_str(s: &str) -> Result<Bucket> {
        let name = s.trim().to_ascii_lowercase();
        match name.as_str() {
            "minute" | "minutely" => Ok(Bucket::Minute),
            "hour" | "hourly" => Ok(Bucket::Hour),
            "day" | "daily" => Ok(Bucket::Day),
            "week" | "weekly" => Ok(Bucket::Week),
            "month" | "monthly" => Ok(Bucket::Month),
            _ => Err(Error::invalid(format!(
                "unknown bucket {s:?}: expected minute, hour, day, week or month"
            ))),
        }
    }
}

/// The calendar window [start, end) containing `at` in zone `tz`. Weeks start Monday 00:00.
///
/// `anchor` (only for [`Period::Month`], ignored otherwise): the day of month the window starts
/// on, 1..=31 (default 1), clamped to the last day of shorter months (anchor 31: Jan 31,
/// Feb 28/29, Mar 31, Apr 30, ...).
///
/// Windows start at local midnight (or the start of the local hour). On daylight-saving days a
/// day is 23 or 25 hours long; a start time that does not exist that day (a gap) is the first
/// instant after the gap; an ambiguous one (a fold) is the earlier instant. See the module
/// documentation for the exact rule; windows always tile the timeline and `start <= at < end`.
///
/// Errors (invalid argument) if `anchor` is not in 1..=31, or if `at` or the window end is
/// outside jiff's supported range (years -9999..=9999).
pub fn calendar_window(
    at: i64,
    period: Period,
    tz: &TimeZone,
    anchor: Option<u8>,
) -> Result<(i64, i64)> {
    let anchor = match anchor {
        None => 1,
        Some(day @ 1..=31) => day,
        Some(day) => {
            return Err(Error::invalid(format!(
                "month anchor {day} is out of range: expected a day of month 1..=31"
            )));
        }
    };
    let grid = match period {
        Period::Hour => Grid::Hour,
        Period::Day => Grid::Day,
        Period::Week => Grid::Week,
        Period::Month => Grid::Month(i64::from(anchor)),
        Period::Year => Grid::Year,
    };
    window(at, grid, tz)
}

/// The start of the usage-report bucket containing `at` in zone `tz`, by the same rules as
/// [`calendar_window`] (months start on the 1st). Minute buckets start at the local minute,
/// which differs from the UTC minute only in zones with offsets in seconds (Africa/Monrovia
/// before 1972) and in folds; hour buckets start at the local hour, so in +05:30 an hour bucket
/// starts at :30 UTC.
///
/// Errors (invalid argument) if `at` or the end of its bucket is outside jiff's supported range.
pub fn bucket_start(at: i64, bucket: Bucket, tz: &TimeZone) -> Result<i64> {
    let grid = match bucket {
        Bucket::Minute => Grid::Minute,
        Bucket::Hour => Grid::Hour,
        Bucket::Day => Grid::Day,
        Bucket::Week => Grid::Week,
        Bucket::Month => Grid::Month(1),
    };
    window(at, grid, tz).map(|(start, _)| start)
}

/// The civil grid of window starts. Civil times are microseconds since 1970-01-01T00:00 on the
/// local wall clock (as if it were UTC), in the proleptic Gregorian calendar.
#[derive(Clone, Copy, Debug)]
enum Grid {
    Minute,
    Hour,
    Day,
    Week,
    /// Months starting on this day (1..=31), clamped to the month's length.
    Month(i64),
    Year,
}

impl Grid {
    /// The grid point at or before the civil time `local`.
    fn floor(self, local: i64) -> Option<i64> {
        let days = local.div_euclid(US_PER_DAY);
        let start_days = match self {
            Grid::Minute => return Some(local.div_euclid(US_PER_MIN) * US_PER_MIN),
            Grid::Hour => return Some(local.div_euclid(US_PER_HOUR) * US_PER_HOUR),
            Grid::Day => days,
            // 1970-01-01 was a Thursday, three days after a Monday.
            Grid::Week => days - (days + 3).rem_euclid(7),
            Grid::Month(anchor) => {
                let (year, month, day) = civil_from_days(days);
                if day >= anchor.min(days_in_month(year, month)) {
                    anchored_day(year, month, anchor)
                } else {
                    let (year, month) = if month == 1 {
                        (year - 1, 12)
                    } else {
                        (year, month - 1)
                    };
                    anchored_day(year, month, anchor)
                }
            }
            Grid::Year => days_from_civil(civil_from_days(days).0, 1, 1),
        };
        start_days.checked_mul(US_PER_DAY)
    }

    /// The grid point after the grid point `start`.
    fn next(self, start: i64) -> Option<i64> {
        let days = start.div_euclid(US_PER_DAY);
        let next_days = match self {
            Grid::Minute => return start.checked_add(US_PER_MIN),
            Grid::Hour => return start.checked_add(US_PER_HOUR),
            Grid::Day => days.checked_add(1)?,
            Grid::Week => days.checked_add(7)?,
            Grid::Month(anchor) => {
                let (year, month, _) = civil_from_days(days);
                let (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                anchored_day(year, month, anchor)
            }
            Grid::Year => days_from_civil(civil_from_days(days).0 + 1, 1, 1),
        };
        next_days.checked_mul(US_PER_DAY)
    }
}

/// The window of `grid` containing `at`: the last boundary at or before `at` and the first after.
fn window(at: i64, grid: Grid, tz: &TimeZone) -> Result<(i64, i64)> {
    let ts = timestamp(at)
        .ok_or_else(|| Error::invalid(format!("time {at} is outside the supported range")))?;
    let local = at + offset_us(tz.to_offset(ts));
    let mut civil = grid.floor(local).ok_or_else(out_of_range)?;
    let mut start = resolve(tz, civil)?;
    let mut steps = 0;
    loop {
        let next = grid.next(civil).ok_or_else(out_of_range)?;
        let end = resolve(tz, next)?;
        if end > at {
            if start > at {
                // Unreachable with consistent time zone data: the clock read `civil` or later
                // at `at`, so it did so first no later than `at`.
                return Err(Error::invalid(format!(
                    "time zone data is inconsistent around time {at}"
                )));
            }
            return Ok((start, end));
        }
        // `at` is in a fold and the clock already passed the next boundary before it was set
        // back: the window that was open then is still open.
        steps += 1;
        if steps > MAX_FOLD_STEPS {
            return Err(Error::invalid(format!(
                "time zone data is inconsistent around time {at}"
            )));
        }
        civil = next;
        start = end;
    }
}

/// The first instant at which the local clock of `tz` reads the civil time `civil` or later.
fn resolve(tz: &TimeZone, civil: i64) -> Result<i64> {
    let dt = civil_datetime(civil).ok_or_else(out_of_range)?;
    let instant = match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => civil - offset_us(offset),
        // The earlier instant: the clock still on the offset before the fold.
        AmbiguousOffset::Fold { before, .. } => civil - offset_us(before),
        AmbiguousOffset::Gap { before, after } => {
            // On the offset after the gap the clock would read `civil` at `earliest`, on the
            // one before at `latest`; the transition between them is in (earliest, latest].
            let earliest = civil - offset_us(after);
            let latest = civil - offset_us(before);
            let from = timestamp(earliest).ok_or_else(out_of_range)?;
            match tz.following(from).next() {
                Some(transition) => {
                    let t = transition.timestamp().as_microsecond();
                    if t > earliest && t <= latest {
                        t
                    } else {
                        latest
                    }
                }
                None => latest,
            }
        }
    };
    timestamp(instant).ok_or_else(out_of_range)?;
    Ok(instant)
}

fn out_of_range() -> Error {
    Error::invalid("window boundary is outside the supported time range")
}

fn timestamp(us: i64) -> Option<Timestamp> {
    Timestamp::from_microsecond(us).ok()
}

fn offset_us(offset: Offset) -> i64 {
    i64::from(offset.seconds()) * US_PER_SEC
}

/// The civil time `civil` (microseconds on the local clock) as a jiff `DateTime`.
fn civil_datetime(civil: i64) -> Option<DateTime> {
    let (year, month, day) = civil_from_days(civil.div_euclid(US_PER_DAY));
    let time = civil.rem_euclid(US_PER_DAY);
    DateTime::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        i8::try_from(time / US_PER_HOUR).ok()?,
        i8::try_from(time / US_PER_MIN % 60).ok()?,
        i8::try_from(time / US_PER_SEC % 60).ok()?,
        i32::try_from(time % US_PER_SEC * 1_000).ok()?,
    )
    .ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the anchored day of a month, clamped to the month's last day.
fn anchored_day(year: i64, month: i64, anchor: i64) -> i64 {
    days_from_civil(year, month, anchor.min(days_in_month(year, month)))
}

/// A rolling window as a GCRA (a token bucket) with burst = `amount` and a refill of `amount`
/// units per `every_us` microseconds, in exact integer arithmetic.
///
/// `tat` is the theoretical arrival time scaled by `amount`: time is counted in ticks of
/// 1/`amount` µs from `i64::MIN` µs (so times before 1970 work too), and each unit costs exactly
/// `every_us` ticks. At `now` the bucket holds `max(0, tat - now_ticks) / every_us` units, an
/// exact rational. The default (`tat` = 0) is an empty bucket at any time.
///
/// `tat` is only meaningful with the `amount` it was made with: when a limit's `amount` or
/// `every_us` changes, convert the state with [`Rolling::rescaled`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rolling {
    /// The theoretical arrival time, in ticks of 1/`amount` µs since `i64::MIN` µs.
    pub tat: u128,
}

impl Rolling {
    /// `now` in ticks: µs since `i64::MIN` times `amount`. At most (2^64 - 1)^2, which fits.
    fn ticks(now: i64, amount: u64) -> u128 {
        u128::from(now.abs_diff(i64::MIN)) * u128::from(amount)
    }

    /// The exact usage at `now`, in ticks (`every_us` ticks per unit).
    fn backlog(&self, now: i64, amount: u64) -> u128 {
        self.tat.saturating_sub(Rolling::ticks(now, amount))
    }

    /// Units currently in use at `now` (rounded up to a whole unit), never above `amount`
    /// unless overcharged by [`Rolling::force`].
    pub fn used(&self, now: i64, amount: u64, every_us: u64) -> u64 {
        let unit = u128::from(every_us.max(1));
        u64::try_from(self.backlog(now, amount).div_ceil(unit)).unwrap_or(u64::MAX)
    }

    /// Whether `n` more units fit now: exact usage + `n` <= `amount`. On success consumes them
    /// and returns `Ok(())`; on failure changes nothing and returns `Err(retry_after_us)`: the
    /// exact wait (rounded up to the microsecond) after which `n` units fit, or `u64::MAX` if
    /// `n > amount` (never fits). `n` = 0 is always admitted.
    pub fn admit(&mut self, now: i64, amount: u64, every_us: u64, n: u64) -> Result<(), u64> {
        if n == 0 {
            return Ok(());
        }
        if n > amount {
            return Err(u64::MAX);
        }
        let unit = u128::from(every_us.max(1));
        let now_ticks = Rolling::ticks(now, amount);
        let backlog = self.tat.saturating_sub(now_ticks);
        let cost = u128::from(n) * unit;
        let room = u128::from(amount) * unit - cost;
        if backlog <= room {
            // backlog + cost <= amount * unit, which fits.
            self.tat = now_ticks.saturating_add(backlog + cost);
            Ok(())
        } else {
            // The backlog drains by `amount` ticks per µs.
            let wait = (backlog - room).div_ceil(u128::from(amount));
            Err(u64::try_from(wait).unwrap_or(u64::MAX))
        }
    }

    /// Consumes `n` units unconditionally (a charge for usage already delivered may go over
    /// `amount`). Saturates, never wraps.
    pub fn force(&mut self, now: i64, amount: u64, every_us: u64, n: u64) {
        if n == 0 {
            return;
        }
        let cost = u128::from(n) * u128::from(every_us.max(1));
        self.tat = self
            .tat
            .max(Rolling::ticks(now, amount))
            .saturating_add(cost);
    }

    /// Gives back `n` units consumed earlier (a released hold or an over-estimated hold);
    /// never makes the bucket emptier than empty at `now`.
    pub fn refund(&mut self, now: i64, amount: u64, every_us: u64, n: u64) {
        let now_ticks = Rolling::ticks(now, amount);
        if self.tat <= now_ticks {
            return;
        }
        let cost = u128::from(n) * u128::from(every_us.max(1));
        self.tat = self.tat.saturating_sub(cost).max(now_ticks);
    }

    /// The instant (µs) when the bucket is completely refilled (`used` == 0): `now` if it
    /// already is, `i64::MAX` if never (`amount` 0 after a forced charge) or past `i64::MAX`.
    /// The refill time does not depend on `every_us` (the cost of a unit in ticks).
    pub fn full_at(&self, now: i64, amount: u64, _every_us: u64) -> i64 {
        let backlog = self.backlog(now, amount);
        if backlog == 0 {
            return now;
        }
        if amount == 0 {
            return i64::MAX;
        }
        let wait = backlog.div_ceil(u128::from(amount));
        i64::try_from(wait)
            .ok()
            .and_then(|wait| now.checked_add(wait))
            .unwrap_or(i64::MAX)
    }

    /// This state converted from a limit of `old` = (amount, every_us) to `new` = (amount,
    /// every_us) at `now`, keeping the exact number of units in use (rounded up to a tick of the
    /// new scale). Units over the new `amount` stay charged, as after [`Rolling::force`].
    pub fn rescaled(&self, now: i64, old: (u64, u64), new: (u64, u64)) -> Rolling {
        let (old_amount, old_every) = (old.0, u128::from(old.1.max(1)));
        let (new_amount, new_every) = (new.0, u128::from(new.1.max(1)));
        let backlog = self.backlog(now, old_amount);
        if backlog == 0 {
            return Rolling::default();
        }
        let scaled = match backlog.checked_mul(new_every) {
            Some(product) => product.div_ceil(old_every),
            None => backlog.div_ceil(old_every).saturating_mul(new_every),
        };
        Rolling {
            tat: Rolling::ticks(now, new_amount).saturating_add(scaled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use jiff::ToSpan;
    use jiff::civil::{Date, Time, Weekday};
    use proptest::prelude::*;

    const MIN: i64 = US_PER_MIN;
    const HOUR: i64 = US_PER_HOUR;
    const DAY: i64 = US_PER_DAY;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    /// An RFC 3339 instant in µs.
    fn t(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_microsecond()
    }

    fn local_of(tz: &TimeZone, at: i64) -> DateTime {
        tz.to_datetime(Timestamp::from_microsecond(at).unwrap())
    }

    fn day(at: i64, tz: &TimeZone) -> (i64, i64) {
        calendar_window(at, Period::Day, tz, None).unwrap()
    }

    fn hour(at: i64, tz: &TimeZone) -> (i64, i64) {
        calendar_window(at, Period::Hour, tz, None).unwrap()
    }

    /// Every distinct window met walking from `from` (inclusive) to `to` (exclusive) by `step`.
    fn walk(from: i64, to: i64, step: i64, f: impl Fn(i64) -> (i64, i64)) -> Vec<(i64, i64)> {
        let mut seen: Vec<(i64, i64)> = Vec::new();
        let mut at = from;
        while at < to {
            let w = f(at);
            assert!(w.0 <= at && at < w.1, "{at} not in {w:?}");
            if seen.last() != Some(&w) {
                if let Some(prev) = seen.last() {
                    assert_eq!(prev.1, w.0, "windows must be adjacent");
                }
                seen.push(w);
            }
            at += step;
        }
        seen
    }

    #[test]
    fn names_parse_and_print() {
        for p in [
            Period::Hour,
            Period::Day,
            Period::Week,
            Period::Month,
            Period::Year,
        ] {
            assert_eq!(p.as_str().parse::<Period>().unwrap(), p);
            assert_eq!(p.to_string(), p.as_str());
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
        }
        for (s, p) in [
            ("hourly", Period::Hour),
            ("daily", Period::Day),
            ("weekly", Period::Week),
            ("monthly", Period::Month),
            ("yearly", Period::Year),
            (" Month ", Period::Month),
        ] {
            assert_eq!(s.parse::<Period>().unwrap(), p);
        }
        for b in [
            Bucket::Minute,
            Bucket::Hour,
            Bucket::Day,
            Bucket::Week,
            Bucket::Month,
        ] {
            assert_eq!(b.as_str().parse::<Bucket>().unwrap(), b);
            assert_eq!(b.to_string(), b.as_str());
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.as_str()));
            assert_eq!(serde_json::from_str::<Bucket>(&json).unwrap(), b);
        }
        assert_eq!("daily".parse::<Bucket>().unwrap(), Bucket::Day);
        for bad in ["", "fortnight", "minute", "hours"] {
            let err = bad.parse::<Period>().unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
        }
        assert_eq!(
            "year".parse::<Bucket>().unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn civil_day_arithmetic_matches_jiff() {
        let epoch = Date::new(1970, 1, 1).unwrap();
        for days in (-4_300_000..2_900_000).step_by(997).chain(-800..800) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let date = epoch.checked_add(days.days()).unwrap();
            assert_eq!(
                (y, m, d),
                (date.year().into(), date.month().into(), date.day().into())
            );
            assert_eq!(days_in_month(y, m), i64::from(date.days_in_month()));
        }
    }

    #[test]
    fn new_york_dst_days_are_23_and_25_hours() {
        let ny = zone("America/New_York");
        for (at, start, end, hours) in [
            (
                "2025-03-09T12:00:00Z",
                "2025-03-09T05:00:00Z",
                "2025-03-10T04:00:00Z",
                23,
            ),
            (
                "2025-11-02T12:00:00Z",
                "2025-11-02T04:00:00Z",
                "2025-11-03T05:00:00Z",
                25,
            ),
        ] {
            let w = day(t(at), &ny);
            assert_eq!(w, (t(start), t(end)));
            assert_eq!(w.1 - w.0, hours * HOUR);
            // From noon the day before to the DST day's midnight, and from there to noon the
            // day after: exactly one change at each local midnight, none within the day.
            let before = walk(w.0 - 12 * HOUR, w.0 + 12 * HOUR, MIN, |at| day(at, &ny));
            assert_eq!(before.len(), 2);
            assert_eq!(before[1], w);
            let after = walk(w.0 + 12 * HOUR, w.1 + 12 * HOUR, MIN, |at| day(at, &ny));
            assert_eq!(after.len(), 2);
            assert_eq!(after[0], w);
            for change in [w.0, w.1] {
                assert_eq!(local_of(&ny, change).time(), Time::midnight());
            }
        }
    }

    #[test]
    fn berlin_hours_across_dst() {
        let berlin = zone("Europe/Berlin");
        // Spring: 02:00 CET -> 03:00 CEST at 01:00Z; the local hour 02 does not exist.
        let spring = walk(
            t("2025-03-29T23:00:00Z"),
            t("2025-03-30T22:00:00Z"),
            MIN,
            |at| hour(at, &berlin),
        );
        assert_eq!(spring.len(), 23);
        let hours: Vec<i8> = spring
            .iter()
            .map(|w| local_of(&berlin, w.0).hour())
            .collect();
        let expected: Vec<i8> = (0..24).filter(|&h| h != 2).collect();
        assert_eq!(hours, expected);
        for w in &spring {
            assert_eq!(w.1 - w.0, HOUR);
            assert_eq!(local_of(&berlin, w.0).minute(), 0);
        }
        assert_eq!(
            hour(t("2025-03-30T00:59:59.999999Z"), &berlin),
            (t("2025-03-30T00:00:00Z"), t("2025-03-30T01:00:00Z"))
        );
        assert_eq!(
            hour(t("2025-03-30T01:00:00Z"), &berlin),
            (t("2025-03-30T01:00:00Z"), t("2025-03-30T02:00:00Z"))
        );

        // Autumn: 03:00 CEST -> 02:00 CET at 01:00Z; the local hour 02 happens twice and is one
        // window of two hours starting at the earlier 02:00.
        let autumn = walk(
            t("2025-10-25T22:00:00Z"),
            t("2025-10-26T23:00:00Z"),
            MIN,
            |at| hour(at, &berlin),
        );
        assert_eq!(autumn.len(), 24);
        let hours: Vec<i8> = autumn
            .iter()
            .map(|w| local_of(&berlin, w.0).hour())
            .collect();
        assert_eq!(hours, (0..24).collect::<Vec<i8>>());
        let double = (t("2025-10-26T00:00:00Z"), t("2025-10-26T02:00:00Z"));
        for w in &autumn {
            assert_eq!(w.1 - w.0, if *w == double { 2 * HOUR } else { HOUR });
        }
        assert_eq!(hour(t("2025-10-26T00:30:00Z"), &berlin), double); // 02:30 CEST
        assert_eq!(hour(t("2025-10-26T01:30:00Z"), &berlin), double); // 02:30 CET
        assert_eq!(
            day(t("2025-10-26T12:00:00Z"), &berlin).1 - day(t("2025-10-26T12:00:00Z"), &berlin).0,
            25 * HOUR
        );

        // Minute buckets in the repeated hour stay in the bucket of 02:59 CEST, so bucket starts
        // keep increasing and name distinct local minutes.
        let minute = |s: &str| bucket_start(t(s), Bucket::Minute, &berlin).unwrap();
        assert_eq!(minute("2025-10-26T00:30:10Z"), t("2025-10-26T00:30:00Z"));
        assert_eq!(minute("2025-10-26T00:59:10Z"), t("2025-10-26T00:59:00Z"));
        assert_eq!(minute("2025-10-26T01:30:10Z"), t("2025-10-26T00:59:00Z"));
        assert_eq!(minute("2025-10-26T02:00:10Z"), t("2025-10-26T02:00:00Z"));
    }

    #[test]
    fn half_and_quarter_hour_zones() {
        let kolkata = zone("Asia/Kolkata");
        let start = |at: &str, b: Bucket, tz: &TimeZone| bucket_start(t(at), b, tz).unwrap();
        // 2025-06-16 01:30 +05:30
        assert_eq!(
            start("2025-06-15T20:00:00Z", Bucket::Day, &kolkata),
            t("2025-06-15T18:30:00Z")
        );
        assert_eq!(
            start("2025-06-15T20:00:00Z", Bucket::Hour, &kolkata),
            t("2025-06-15T19:30:00Z")
        );
        assert_eq!(
            start("2025-06-15T20:00:59Z", Bucket::Minute, &kolkata),
            t("2025-06-15T20:00:00Z")
        );
        assert_eq!(
            start("2025-06-15T20:00:00Z", Bucket::Week, &kolkata),
            t("2025-06-15T18:30:00Z")
        );
        assert_eq!(
            start("2025-06-15T18:29:59Z", Bucket::Week, &kolkata),
            t("2025-06-08T18:30:00Z")
        );
        assert_eq!(
            start("2025-06-15T20:00:00Z", Bucket::Month, &kolkata),
            t("2025-05-31T18:30:00Z")
        );
        // 15:40 +05:30
        assert_eq!(
            start("2025-06-15T10:10:00Z", Bucket::Hour, &kolkata),
            t("2025-06-15T09:30:00Z")
        );
        assert_eq!(
            start("2025-06-15T09:29:59Z", Bucket::Hour, &kolkata),
            t("2025-06-15T08:30:00Z")
        );
        assert_eq!(
            calendar_window(t("2025-06-15T20:00:00Z"), Period::Day, &kolkata, None).unwrap(),
            (t("2025-06-15T18:30:00Z"), t("2025-06-16T18:30:00Z"))
        );

        let kathmandu = zone("Asia/Kathmandu");
        // 15:55 +05:45
        assert_eq!(
            start("2025-06-15T10:10:00Z", Bucket::Hour, &kathmandu),
            t("2025-06-15T09:15:00Z")
        );
        assert_eq!(
            start("2025-06-15T10:10:00Z", Bucket::Day, &kathmandu),
            t("2025-06-14T18:15:00Z")
        );
        // 2025-06-16 00:05 +05:45
        assert_eq!(
            start("2025-06-15T18:20:00Z", Bucket::Day, &kathmandu),
            t("2025-06-15T18:15:00Z")
        );
        assert_eq!(
            start("2025-06-15T18:14:59Z", Bucket::Day, &kathmandu),
            t("2025-06-14T18:15:00Z")
        );
        assert_eq!(
            start("2025-06-15T10:10:30Z", Bucket::Minute, &kathmandu),
            t("2025-06-15T10:10:00Z")
        );
        assert_eq!(
            calendar_window(t("2025-06-15T10:10:00Z"), Period::Hour, &kathmandu, None).unwrap(),
            (t("2025-06-15T09:15:00Z"), t("2025-06-15T10:15:00Z"))
        );

        // Africa/Monrovia was -00:44:30 until 1972: local minutes start at :30 UTC seconds.
        let monrovia = zone("Africa/Monrovia");
        let at = t("1971-06-01T12:00:00Z");
        assert_eq!(tz_offset_seconds(&monrovia, at), -(44 * 60 + 30));
        assert_eq!(
            bucket_start(at, Bucket::Minute, &monrovia).unwrap(),
            t("1971-06-01T11:59:30Z")
        );
        assert_eq!(
            bucket_start(at, Bucket::Hour, &monrovia).unwrap(),
            t("1971-06-01T11:44:30Z")
        );
    }

    fn tz_offset_seconds(tz: &TimeZone, at: i64) -> i32 {
        tz.to_offset(Timestamp::from_microsecond(at).unwrap())
            .seconds()
    }

    #[test]
    fn weeks_start_monday() {
        let utc = TimeZone::UTC;
        let week = |at: &str| calendar_window(t(at), Period::Week, &utc, None).unwrap();
        let june16 = (t("2025-06-16T00:00:00Z"), t("2025-06-23T00:00:00Z"));
        assert_eq!(week("2025-06-18T12:00:00Z"), june16); // a Wednesday
        assert_eq!(week("2025-06-16T00:00:00Z"), june16); // Monday 00:00
        assert_eq!(week("2025-06-22T23:59:59.999999Z"), june16); // Sunday
        assert_eq!(week("2025-06-15T23:59:59.999999Z").1, june16.0);
        assert_eq!(
            week("1969-12-31T00:00:00Z"),
            (t("1969-12-29T00:00:00Z"), t("1970-01-05T00:00:00Z"))
        );
        for w in [june16, week("1969-12-31T00:00:00Z")] {
            assert_eq!(local_of(&utc, w.0).weekday(), Weekday::Monday);
        }
        // Berlin: Monday local midnight is Sunday 22:00Z in summer.
        let berlin = zone("Europe/Berlin");
        assert_eq!(
            calendar_window(t("2025-06-15T22:30:00Z"), Period::Week, &berlin, None).unwrap(),
            (t("2025-06-15T22:00:00Z"), t("2025-06-22T22:00:00Z"))
        );
        // The week with the spring change has 167 hours.
        let w = calendar_window(t("2025-03-27T12:00:00Z"), Period::Week, &berlin, None).unwrap();
        assert_eq!(w.1 - w.0, 7 * DAY - HOUR);
    }

    #[test]
    fn month_anchors_clamp() {
        let utc = TimeZone::UTC;
        let month = |at: &str, anchor: Option<u8>| {
            calendar_window(t(at), Period::Month, &utc, anchor).unwrap()
        };
        let jan31 = month("2024-01-31T00:00:00Z", Some(31));
        assert_eq!(
            jan31,
            (t("2024-01-31T00:00:00Z"), t("2024-02-29T00:00:00Z"))
        );
        assert_eq!(month("2024-02-10T00:00:00Z", Some(31)), jan31);
        assert_eq!(month("2024-01-30T23:59:59Z", Some(31)).1, jan31.0);
        // The window after Jan 31 starts on Feb 29 2024.
        let feb29 = calendar_window(jan31.1, Period::Month, &utc, Some(31)).unwrap();
        assert_eq!(
            feb29,
            (t("2024-02-29T00:00:00Z"), t("2024-03-31T00:00:00Z"))
        );
        assert_eq!(month("2024-03-05T00:00:00Z", Some(31)), feb29);
        // 2025: Feb 28.
        assert_eq!(
            month("2025-02-15T00:00:00Z", Some(31)),
            (t("2025-01-31T00:00:00Z"), t("2025-02-28T00:00:00Z"))
        );
        assert_eq!(
            month("2025-02-28T00:00:00Z", Some(31)),
            (t("2025-02-28T00:00:00Z"), t("2025-03-31T00:00:00Z"))
        );
        // April: the 30th.
        assert_eq!(
            month("2025-04-15T00:00:00Z", Some(31)),
            (t("2025-03-31T00:00:00Z"), t("2025-04-30T00:00:00Z"))
        );
        assert_eq!(
            month("2025-04-30T00:00:00Z", Some(31)),
            (t("2025-04-30T00:00:00Z"), t("2025-05-31T00:00:00Z"))
        );
        // Anchor 30 in February, anchor 15, the default 1st, across a year.
        assert_eq!(
            month("2024-02-29T12:00:00Z", Some(30)),
            (t("2024-02-29T00:00:00Z"), t("2024-03-30T00:00:00Z"))
        );
        assert_eq!(
            month("2025-02-10T00:00:00Z", Some(15)),
            (t("2025-01-15T00:00:00Z"), t("2025-02-15T00:00:00Z"))
        );
        let first = (t("2025-02-01T00:00:00Z"), t("2025-03-01T00:00:00Z"));
        assert_eq!(month("2025-02-15T00:00:00Z", None), first);
        assert_eq!(month("2025-02-15T00:00:00Z", Some(1)), first);
        assert_eq!(
            month("2025-01-05T00:00:00Z", Some(20)),
            (t("2024-12-20T00:00:00Z"), t("2025-01-20T00:00:00Z"))
        );
        // In a zone: local midnights.
        let ny = zone("America/New_York");
        assert_eq!(
            calendar_window(t("2024-03-01T12:00:00Z"), Period::Month, &ny, Some(31)).unwrap(),
            (t("2024-02-29T05:00:00Z"), t("2024-03-31T04:00:00Z"))
        );
        // The anchor is checked, and ignored for other periods.
        for bad in [0, 32, 255] {
            let err = calendar_window(0, Period::Month, &utc, Some(bad)).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
        }
        assert_eq!(
            calendar_window(t("2025-02-15T10:00:00Z"), Period::Day, &utc, Some(31)).unwrap(),
            (t("2025-02-15T00:00:00Z"), t("2025-02-16T00:00:00Z"))
        );
    }

    #[test]
    fn years() {
        let berlin = zone("Europe/Berlin");
        assert_eq!(
            calendar_window(t("2025-06-15T00:00:00Z"), Period::Year, &berlin, None).unwrap(),
            (t("2024-12-31T23:00:00Z"), t("2025-12-31T23:00:00Z"))
        );
        assert_eq!(
            calendar_window(t("2024-12-31T23:00:00Z"), Period::Year, &berlin, None)
                .unwrap()
                .0,
            t("2024-12-31T23:00:00Z")
        );
        assert_eq!(
            calendar_window(
                t("1969-07-20T20:17:00Z"),
                Period::Year,
                &TimeZone::UTC,
                None
            )
            .unwrap(),
            (t("1969-01-01T00:00:00Z"), t("1970-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn midnight_changes_santiago_and_havana() {
        // America/Santiago: 2024-09-08 00:00 -04 -> 01:00 -03 at 04:00Z; local midnight does
        // not exist and the day starts after the gap, at 01:00.
        let santiago = zone("America/Santiago");
        let sep8 = day(t("2024-09-08T12:00:00Z"), &santiago);
        assert_eq!(sep8, (t("2024-09-08T04:00:00Z"), t("2024-09-09T03:00:00Z")));
        assert_eq!(
            local_of(&santiago, sep8.0).time(),
            Time::new(1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            day(t("2024-09-08T03:59:59Z"), &santiago),
            (t("2024-09-07T04:00:00Z"), sep8.0)
        );
        // 2025-04-06 00:00 -03 -> 2025-04-05 23:00 -04 at 03:00Z: Saturday has 25 hours and the
        // repeated hour belongs to it.
        let apr5 = day(t("2025-04-05T12:00:00Z"), &santiago);
        assert_eq!(apr5, (t("2025-04-05T03:00:00Z"), t("2025-04-06T04:00:00Z")));
        assert_eq!(day(t("2025-04-06T03:30:00Z"), &santiago), apr5);
        assert_eq!(day(t("2025-04-06T04:00:00Z"), &santiago).0, apr5.1);
        let walked = walk(
            t("2025-04-04T12:00:00Z"),
            t("2025-04-07T12:00:00Z"),
            MIN,
            |at| day(at, &santiago),
        );
        assert_eq!(walked.len(), 4);

        // America/Havana: 2025-03-09 00:00 CST -> 01:00 CDT (a gap at midnight) and
        // 2025-11-02 01:00 CDT -> 00:00 CST (midnight happens twice: the earlier one counts).
        let havana = zone("America/Havana");
        let mar9 = day(t("2025-03-09T12:00:00Z"), &havana);
        assert_eq!(mar9, (t("2025-03-09T05:00:00Z"), t("2025-03-10T04:00:00Z")));
        let nov2 = day(t("2025-11-02T12:00:00Z"), &havana);
        assert_eq!(nov2, (t("2025-11-02T04:00:00Z"), t("2025-11-03T05:00:00Z")));
        assert_eq!(day(t("2025-11-02T05:30:00Z"), &havana), nov2); // 00:30 CST, second time
        assert_eq!(day(t("2025-11-02T03:59:59Z"), &havana).1, nov2.0);
    }

    #[test]
    fn lord_howe_half_hour_dst() {
        let lord_howe = zone("Australia/Lord_Howe");
        // 2025-04-06 02:00 +11 -> 01:30 +10:30 at 15:00Z: the local hour 01 lasts 90 minutes.
        let one = hour(t("2025-04-05T14:10:00Z"), &lord_howe);
        assert_eq!(one, (t("2025-04-05T14:00:00Z"), t("2025-04-05T15:30:00Z")));
        assert_eq!(hour(t("2025-04-05T15:15:00Z"), &lord_howe), one); // 01:45 +10:30
        // 2025-10-05 02:00 +10:30 -> 02:30 +11 at 15:30Z: the local hour 02 lasts 30 minutes.
        let two = hour(t("2025-10-04T15:45:00Z"), &lord_howe);
        assert_eq!(two, (t("2025-10-04T15:30:00Z"), t("2025-10-04T16:00:00Z")));
        assert_eq!(
            hour(t("2025-10-04T15:29:59Z"), &lord_howe),
            (t("2025-10-04T14:30:00Z"), two.0)
        );
        let d = day(t("2025-10-05T00:00:00Z"), &lord_howe);
        assert_eq!(d.1 - d.0, 23 * HOUR + 30 * MIN);
    }

    #[test]
    fn chatham_changes_at_a_quarter_to() {
        let chatham = zone("Pacific/Chatham");
        // 2025-09-28 02:45 +12:45 -> 03:45 +13:45 at 14:00Z: the gap contains 03:00, so the
        // local hour 02 ends at the gap and the hour 03 lasts 15 minutes.
        let two = hour(t("2025-09-27T13:45:00Z"), &chatham);
        assert_eq!(two, (t("2025-09-27T13:15:00Z"), t("2025-09-27T14:00:00Z")));
        assert_eq!(
            hour(t("2025-09-27T14:00:00Z"), &chatham),
            (t("2025-09-27T14:00:00Z"), t("2025-09-27T14:15:00Z"))
        );
        // 2025-04-06 03:45 +13:45 -> 02:45 +12:45 at 14:00Z: the fold contains 03:00. The clock
        // passed 03:00 at 13:15Z; the repeated 02:45..03:00 stays in the hour 03 window.
        let three = (t("2025-04-05T13:15:00Z"), t("2025-04-05T15:15:00Z"));
        assert_eq!(hour(t("2025-04-05T13:20:00Z"), &chatham), three); // 03:05 +13:45
        assert_eq!(hour(t("2025-04-05T14:05:00Z"), &chatham), three); // 02:50 +12:45
        assert_eq!(hour(t("2025-04-05T14:20:00Z"), &chatham), three); // 03:05 +12:45
        assert_eq!(hour(t("2025-04-05T13:14:59Z"), &chatham).1, three.0);
    }

    #[test]
    fn out_of_range_is_invalid_argument() {
        let utc = TimeZone::UTC;
        let berlin = zone("Europe/Berlin");
        let max = Timestamp::MAX.as_microsecond();
        let min = Timestamp::MIN.as_microsecond();
        for at in [i64::MAX, i64::MIN, max + 1, min - 1] {
            let err = calendar_window(at, Period::Day, &utc, None).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
            let err = bucket_start(at, Bucket::Minute, &berlin).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
        }
        // The window end would be in year 10000.
        for period in [Period::Day, Period::Year, Period::Month, Period::Week] {
            let err = calendar_window(max, period, &berlin, None).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
        }
        // Windows well inside the range work.
        let at = t("9999-06-01T00:00:00Z");
        let (start, end) = calendar_window(at, Period::Month, &berlin, None).unwrap();
        assert!(start <= at && at < end);
        let at = t("-009998-06-01T00:00:00Z");
        let (start, end) = calendar_window(at, Period::Year, &utc, None).unwrap();
        assert!(start <= at && at < end);
    }

    // ---- property tests of calendar windows against a reference model ----

    const ZONES: &[&str] = &[
        "UTC",
        "America/New_York",
        "Europe/Berlin",
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Pacific/Chatham",
        "America/Havana",
        "America/St_Johns",
        "Asia/Magadan",
        "Pacific/Apia",
        "Africa/Monrovia",
        "Antarctica/Troll",
    ];

    /// The ten kinds of window: five periods, five buckets.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Period(Period),
        Bucket(Bucket),
    }

    const KINDS: [Kind; 10] = [
        Kind::Period(Period::Hour),
        Kind::Period(Period::Day),
        Kind::Period(Period::Week),
        Kind::Period(Period::Month),
        Kind::Period(Period::Year),
        Kind::Bucket(Bucket::Minute),
        Kind::Bucket(Bucket::Hour),
        Kind::Bucket(Bucket::Day),
        Kind::Bucket(Bucket::Week),
        Kind::Bucket(Bucket::Month),
    ];

    /// The window of `kind` containing `at`, through the public functions.
    fn window_of(at: i64, kind: Kind, tz: &TimeZone, anchor: u8) -> Result<(i64, i64)> {
        match kind {
            Kind::Period(period) => calendar_window(at, period, tz, Some(anchor)),
            Kind::Bucket(bucket) => {
                let grid = match bucket {
                    Bucket::Minute => Grid::Minute,
                    Bucket::Hour => Grid::Hour,
                    Bucket::Day => Grid::Day,
                    Bucket::Week => Grid::Week,
                    Bucket::Month => Grid::Month(1),
                };
                let w = window(at, grid, tz)?;
                assert_eq!(bucket_start(at, bucket, tz)?, w.0);
                Ok(w)
            }
        }
    }

    /// Reference: the local clock of `tz` as segments (first instant, offset in µs), listed
    /// from jiff's transitions between `lo` and `hi`.
    fn segments(tz: &TimeZone, lo: i64, hi: i64) -> Vec<(i64, i64)> {
        let lo_ts = Timestamp::from_microsecond(lo).unwrap();
        let mut segs = vec![(
            i64::MIN,
            i64::from(tz.to_offset(lo_ts).seconds()) * US_PER_SEC,
        )];
        for transition in tz.following(lo_ts) {
            let at = transition.timestamp().as_microsecond();
            if at > hi {
                break;
            }
            segs.push((at, i64::from(transition.offset().seconds()) * US_PER_SEC));
        }
        segs
    }

    /// Reference: the first instant whose local reading is `civil` or later, by scanning the
    /// segments in time order.
    fn first_reading(segs: &[(i64, i64)], civil: i64) -> i64 {
        for (i, &(from, offset)) in segs.iter().enumerate() {
            let candidate = (civil - offset).max(from);
            match segs.get(i + 1) {
                Some(&(until, _)) if candidate >= until => continue,
                _ => return candidate,
            }
        }
        unreachable!()
    }

    /// Reference: the civil grid points near the local time `local`, by jiff's calendar
    /// arithmetic, as µs on the local clock.
    fn grid_points(local: DateTime, kind: Kind, anchor: u8) -> Vec<i64> {
        let date = local.date();
        let midnight = |d: Date| d.to_datetime(Time::midnight());
        let points: Vec<DateTime> = match kind {
            Kind::Bucket(Bucket::Minute) => {
                let base = local.with().second(0).subsec_nanosecond(0).build().unwrap();
                (-200..=200)
                    .map(|k: i64| base.checked_add(k.minutes()).unwrap())
                    .collect()
            }
            Kind::Period(Period::Hour) | Kind::Bucket(Bucket::Hour) => {
                let base = local
                    .with()
                    .minute(0)
                    .second(0)
                    .subsec_nanosecond(0)
                    .build()
                    .unwrap();
                (-60..=60)
                    .map(|k: i64| base.checked_add(k.hours()).unwrap())
                    .collect()
            }
            Kind::Period(Period::Day) | Kind::Bucket(Bucket::Day) => (-4..=4)
                .map(|k: i64| midnight(date.checked_add(k.days()).unwrap()))
                .collect(),
            Kind::Period(Period::Week) | Kind::Bucket(Bucket::Week) => {
                let back = i64::from(date.weekday().to_monday_zero_offset());
                let monday = date.checked_sub(back.days()).unwrap();
                (-2..=2)
                    .map(|k: i64| midnight(monday.checked_add(k.weeks()).unwrap()))
                    .collect()
            }
            Kind::Period(Period::Month) | Kind::Bucket(Bucket::Month) => {
                let anchor = if matches!(kind, Kind::Bucket(_)) {
                    1
                } else {
                    anchor
                };
                (-2..=2)
                    .map(|k: i64| {
                        let first = date.first_of_month().checked_add(k.months()).unwrap();
                        let day = (anchor as i8).min(first.days_in_month());
                        midnight(first.with().day(day).build().unwrap())
                    })
                    .collect()
            }
            Kind::Period(Period::Year) => (-1..=1)
                .map(|k: i16| midnight(Date::new(date.year() + k, 1, 1).unwrap()))
                .collect(),
        };
        points
            .into_iter()
            .map(|dt| Offset::UTC.to_timestamp(dt).unwrap().as_microsecond())
            .collect()
    }

    /// Reference window: between the last boundary at or before `at` and the first after it,
    /// where the boundaries are the first readings of the grid points.
    fn reference_window(at: i64, kind: Kind, tz: &TimeZone, anchor: u8) -> (i64, i64) {
        let segs = segments(tz, at - 800 * DAY, at + 800 * DAY);
        let local = local_of(tz, at);
        let bounds: Vec<i64> = grid_points(local, kind, anchor)
            .into_iter()
            .map(|c| first_reading(&segs, c))
            .collect();
        assert!(
            bounds.windows(2).all(|w| w[0] <= w[1]),
            "boundaries out of order: {bounds:?}"
        );
        let start = bounds
            .iter()
            .copied()
            .filter(|&b| b <= at)
            .max()
            .expect("no start");
        let end = bounds
            .iter()
            .copied()
            .filter(|&b| b > at)
            .min()
            .expect("no end");
        (start, end)
    }

    fn is_grid_time(local: DateTime, kind: Kind, anchor: u8) -> bool {
        let midnight = local.time() == Time::midnight();
        match kind {
            Kind::Bucket(Bucket::Minute) => local.second() == 0 && local.subsec_nanosecond() == 0,
            Kind::Period(Period::Hour) | Kind::Bucket(Bucket::Hour) => {
                local.minute() == 0 && local.second() == 0 && local.subsec_nanosecond() == 0
            }
            Kind::Period(Period::Day) | Kind::Bucket(Bucket::Day) => midnight,
            Kind::Period(Period::Week) | Kind::Bucket(Bucket::Week) => {
                midnight && local.weekday() == Weekday::Monday
            }
            Kind::Period(Period::Month) => {
                midnight && local.day() == (anchor as i8).min(local.days_in_month())
            }
            Kind::Bucket(Bucket::Month) => midnight && local.day() == 1,
            Kind::Period(Period::Year) => midnight && local.month() == 1 && local.day() == 1,
        }
    }

    fn arb_instant() -> impl Strategy<Value = (usize, i64, usize, u8)> {
        let lo = t("1971-01-01T00:00:00Z");
        let hi = t("2100-01-01T00:00:00Z");
        let delta = prop_oneof![-6 * HOUR..6 * HOUR, -2 * HOUR..2 * HOUR];
        (
            0..ZONES.len(),
            lo..hi,
            any::<bool>(),
            delta,
            0..KINDS.len(),
            1u8..=31,
        )
            .prop_map(move |(zone_index, at, near, delta, kind, anchor)| {
                // Half the cases are within 6 hours of a time zone transition.
                let at = if near {
                    let tz = zone(ZONES[zone_index]);
                    let ts = Timestamp::from_microsecond(at).unwrap();
                    match tz.following(ts).next() {
                        Some(tr) if tr.timestamp().as_microsecond() < hi => {
                            tr.timestamp().as_microsecond() + delta
                        }
                        _ => at,
                    }
                } else {
                    at
                };
                (zone_index, at, kind, anchor)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        #[test]
        fn windows_tile_and_match_reference((zone_index, at, kind, anchor) in arb_instant()) {
            let tz = zone(ZONES[zone_index]);
            let kind = KINDS[kind];
            let (start, end) = window_of(at, kind, &tz, anchor).unwrap();
            prop_assert!(start <= at && at < end, "{at} not in [{start}, {end})");
            prop_assert_eq!(window_of(start, kind, &tz, anchor).unwrap(), (start, end));
            prop_assert_eq!(window_of(end - 1, kind, &tz, anchor).unwrap(), (start, end));
            let next = window_of(end, kind, &tz, anchor).unwrap();
            prop_assert_eq!(next.0, end);
            prop_assert!(next.1 > end);
            prop_assert_eq!((start, end), reference_window(at, kind, &tz, anchor));
            // A start is a grid time on the local clock, or the end of a gap (a transition).
            let before = tz_offset_seconds(&tz, start - 1);
            let after = tz_offset_seconds(&tz, start);
            prop_assert!(
                is_grid_time(local_of(&tz, start), kind, anchor) || after > before,
                "start {} is not a grid time", local_of(&tz, start)
            );
        }

        #[test]
        fn any_instant_errors_or_tiles(
            at in any::<i64>(),
            zone_index in 0..ZONES.len(),
            kind in 0..KINDS.len(),
            anchor in 1u8..=31,
        ) {
            let tz = zone(ZONES[zone_index]);
            let kind = KINDS[kind];
            // Near the ends of jiff's range too.
            let span = Timestamp::MAX.as_microsecond() / 1_000_000;
            let (max, min) = (Timestamp::MAX.as_microsecond(), Timestamp::MIN.as_microsecond());
            let near_ends = [at, at % max, max - at.rem_euclid(span), min + at.rem_euclid(span)];
            for at in near_ends {
                match window_of(at, kind, &tz, anchor) {
                    Ok((start, end)) => {
                        prop_assert!(start <= at && at < end);
                        if let Ok(next) = window_of(end, kind, &tz, anchor) {
                            prop_assert_eq!(next.0, end);
                        }
                    }
                    Err(err) => prop_assert_eq!(err.code(), ErrorCode::InvalidArgument),
                }
            }
        }
    }

    // ---- the rolling window ----

    const EVERY: u64 = 60_000_000;

    #[test]
    fn burst_then_refill() {
        let now = t("2025-01-01T00:00:00Z");
        let mut r = Rolling::default();
        assert_eq!(r.used(now, 10, EVERY), 0);
        assert_eq!(r.full_at(now, 10, EVERY), now);
        for i in 0..10 {
            assert_eq!(r.admit(now, 10, EVERY, 1), Ok(()), "unit {i}");
        }
        assert_eq!(r.used(now, 10, EVERY), 10);
        assert_eq!(r.admit(now, 10, EVERY, 1), Err(EVERY / 10));
        assert_eq!(
            r.admit(now + 1_000_000, 10, EVERY, 1),
            Err(EVERY / 10 - 1_000_000)
        );
        let later = now + (EVERY / 10) as i64;
        assert_eq!(r.admit(later - 1, 10, EVERY, 1), Err(1));
        assert_eq!(r.used(later - 1, 10, EVERY), 10);
        assert_eq!(r.used(later, 10, EVERY), 9);
        assert_eq!(r.admit(later, 10, EVERY, 1), Ok(()));
        assert_eq!(r.admit(later, 10, EVERY, 1), Err(EVERY / 10));
        assert_eq!(r.full_at(later, 10, EVERY), later + EVERY as i64);
        assert_eq!(r.used(later + EVERY as i64 - 1, 10, EVERY), 1);
        assert_eq!(r.used(later + EVERY as i64, 10, EVERY), 0);

        // All at once, then nothing; more than the burst never fits.
        let mut r = Rolling::default();
        assert_eq!(r.admit(now, 10, EVERY, 11), Err(u64::MAX));
        assert_eq!(r, Rolling::default());
        assert_eq!(r.admit(now, 10, EVERY, 10), Ok(()));
        let full = r;
        assert_eq!(r.admit(now, 10, EVERY, 1), Err(EVERY / 10));
        assert_eq!(r, full, "a denied admit changes nothing");
        assert_eq!(r.admit(now, 10, EVERY, 10), Err(EVERY));
        assert_eq!(r.admit(now, 10, EVERY, 0), Ok(()));

        // A unit cost that does not divide evenly: 7 per second refills one in 142,857.14 µs.
        let mut r = Rolling::default();
        assert_eq!(r.admit(now, 7, 1_000_000, 7), Ok(()));
        assert_eq!(r.admit(now, 7, 1_000_000, 1), Err(142_858));
        assert_eq!(r.admit(now + 142_857, 7, 1_000_000, 1), Err(1));
        assert_eq!(r.admit(now + 142_858, 7, 1_000_000, 1), Ok(()));
        // A second later exactly one unit (the one admitted at 142,858 µs) is still in use:
        // the rounding has not drifted.
        assert_eq!(r.used(now + 1_000_000, 7, 1_000_000), 1);
        assert_eq!(r.admit(now + 1_000_000, 7, 1_000_000, 7), Err(142_858));
        assert_eq!(r.admit(now + 1_142_857, 7, 1_000_000, 7), Err(1));
        assert_eq!(r.full_at(now, 7, 1_000_000), now + 1_142_858);
    }

    #[test]
    fn amount_zero_admits_nothing() {
        let mut r = Rolling::default();
        assert_eq!(r.admit(0, 0, EVERY, 1), Err(u64::MAX));
        assert_eq!(r.admit(0, 0, EVERY, 0), Ok(()));
        assert_eq!(r.used(0, 0, EVERY), 0);
        r.force(0, 0, EVERY, 2);
        assert_eq!(r.used(i64::MAX, 0, EVERY), 2);
        assert_eq!(r.full_at(0, 0, EVERY), i64::MAX);
        r.refund(0, 0, EVERY, 5);
        assert_eq!(r.used(0, 0, EVERY), 0);
    }

    #[test]
    fn force_and_refund() {
        let now = -1_000_000_000_000; // before 1970
        let mut r = Rolling::default();
        r.force(now, 10, EVERY, 15);
        assert_eq!(r.used(now, 10, EVERY), 15);
        assert_eq!(r.admit(now, 10, EVERY, 1), Err(6 * EVERY / 10));
        assert_eq!(r.full_at(now, 10, EVERY), now + (15 * EVERY / 10) as i64);
        r.refund(now, 10, EVERY, 7);
        assert_eq!(r.used(now, 10, EVERY), 8);
        assert_eq!(r.admit(now, 10, EVERY, 2), Ok(()));
        r.refund(now, 10, EVERY, 100);
        assert_eq!(r.used(now, 10, EVERY), 0);
        // A refund never makes the bucket emptier than empty.
        assert_eq!(r.admit(now, 10, EVERY, 10), Ok(()));
        assert_eq!(r.admit(now, 10, EVERY, 1), Err(EVERY / 10));
        // Half refilled, a refund of 8 leaves it empty, not "2 below empty".
        let half = now + (EVERY / 2) as i64;
        r.refund(half, 10, EVERY, 8);
        assert_eq!(r.used(half, 10, EVERY), 0);
        assert_eq!(r.admit(half, 10, EVERY, 10), Ok(()));
        assert_eq!(r.admit(half, 10, EVERY, 1), Err(EVERY / 10));
    }

    #[test]
    fn huge_values_never_panic() {
        let values = [0, 1, 2, 999, 1_000, u64::MAX / 2, u64::MAX - 1, u64::MAX];
        let times = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        for &amount in &values {
            for every in [1_000, 1_000_000, u64::MAX / 2, u64::MAX] {
                let mut r = Rolling::default();
                for &now in &times {
                    for &n in &values {
                        let _ = r.admit(now, amount, every, n);
                        let _ = r.used(now, amount, every);
                        let _ = r.full_at(now, amount, every);
                        r.force(now, amount, every, n);
                        r.refund(now, amount, every, n / 2);
                        let _ = r.rescaled(now, (amount, every), (n, every));
                    }
                    // And backwards.
                    for &now in times.iter().rev() {
                        let _ = r.admit(now, amount, every, amount);
                    }
                }
                let mut r = Rolling { tat: u128::MAX };
                let _ = r.admit(0, amount, every, 1);
                r.force(0, amount, every, u64::MAX);
                assert_eq!(r.tat, u128::MAX);
                assert!(r.used(i64::MIN, amount, every) >= r.used(i64::MAX, amount, every));
            }
        }
        let mut r = Rolling::default();
        assert_eq!(r.admit(0, u64::MAX, u64::MAX, u64::MAX), Ok(()));
        assert!(r.used(0, u64::MAX, u64::MAX) > 0, "saturated, still in use");
        let mut r = Rolling::default();
        assert_eq!(r.admit(0, u64::MAX, 1_000, u64::MAX), Ok(()));
        assert_eq!(r.used(0, u64::MAX, 1_000), u64::MAX);
        assert_eq!(r.admit(0, u64::MAX, 1_000, 1), Err(1));
        assert_eq!(r.admit(1, u64::MAX, 1_000, 1), Ok(()));
    }

    #[test]
    fn rescale_keeps_units_in_use() {
        let now = t("2025-01-01T00:00:00Z");
        let mut r = Rolling::default();
        assert_eq!(r.admit(now, 10, EVERY, 6), Ok(()));
        let doubled = r.rescaled(now, (10, EVERY), (20, 2 * EVERY));
        assert_eq!(doubled.used(now, 20, 2 * EVERY), 6);
        let mut halved = r.rescaled(now, (10, EVERY), (5, EVERY));
        assert_eq!(halved.used(now, 5, EVERY), 6);
        assert_eq!(halved.admit(now, 5, EVERY, 1), Err(2 * EVERY / 5));
        assert_eq!(
            Rolling::default().rescaled(now, (10, EVERY), (5, EVERY)),
            Rolling::default()
        );
        let json = serde_json::to_string(&Rolling { tat: u128::MAX - 7 }).unwrap();
        assert_eq!(
            serde_json::from_str::<Rolling>(&json).unwrap().tat,
            u128::MAX - 7
        );
    }

    /// Reference model: the level of the bucket in units, an exact fraction that drains by
    /// `amount / every` per µs from the time of the last operation.
    #[derive(Clone, Copy, Debug)]
    struct Model {
        num: i128,
        den: i128,
        last: i64,
        amount: u64,
        every: u64,
    }

    fn gcd(mut a: i128, mut b: i128) -> i128 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a.abs()
    }

    impl Model {
        fn new(now: i64, amount: u64, every: u64) -> Model {
            Model {
                num: 0,
                den: 1,
                last: now,
                amount,
                every,
            }
        }

        fn set(&mut self, num: i128, den: i128) {
            let g = gcd(num, den).max(1);
            (self.num, self.den) = (num / g, den / g);
            if self.num < 0 {
                (self.num, self.den) = (0, 1);
            }
        }

        /// level - x/y, floored at 0.
        fn sub(&mut self, x: i128, y: i128) {
            self.set(self.num * y - x * self.den, self.den * y);
        }

        fn drain(&mut self, now: i64) {
            let elapsed = i128::from(now - self.last);
            self.sub(elapsed * i128::from(self.amount), i128::from(self.every));
            self.last = now;
        }

        fn admit(&mut self, now: i64, n: u64) -> Option<u64> {
            self.drain(now);
            let (n, amount) = (i128::from(n), i128::from(self.amount));
            if n == 0 {
                return None;
            }
            if self.num + n * self.den <= amount * self.den {
                self.set(self.num + n * self.den, self.den);
                None
            } else if n > amount {
                Some(u64::MAX)
            } else {
                // Wait w with level - w * amount / every + n <= amount.
                let excess = (self.num + (n - amount) * self.den) * i128::from(self.every);
                let per_us = amount * self.den;
                Some(u64::try_from((excess + per_us - 1) / per_us).unwrap())
            }
        }

        fn force(&mut self, now: i64, n: u64) {
            self.drain(now);
            self.set(self.num + i128::from(n) * self.den, self.den);
        }

        fn refund(&mut self, now: i64, n: u64) {
            self.drain(now);
            self.sub(i128::from(n), 1);
        }

        fn used(&mut self, now: i64) -> u64 {
            self.drain(now);
            u64::try_from((self.num + self.den - 1) / self.den).unwrap()
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Advance(u64),
        Admit(u64),
        Force(u64),
        Refund(u64),
    }

    fn arb_script() -> impl Strategy<Value = (i64, u64, u64, Vec<Op>)> {
        (
            -1_000_000_000_000_000i64..1_000_000_000_000_000,
            0u64..40,
            1_000u64..5_000_000,
        )
            .prop_flat_map(|(start, amount, every)| {
                let op = prop_oneof![
                    3 => (0..=2 * every / amount.max(1)).prop_map(Op::Advance),
                    1 => (0..=2 * every).prop_map(Op::Advance),
                    1 => Just(Op::Advance(0)),
                    5 => (0..=amount + 2).prop_map(Op::Admit),
                    1 => (0..=2 * amount + 1).prop_map(Op::Force),
                    1 => (0..=amount + 1).prop_map(Op::Refund),
                ];
                (
                    Just(start),
                    Just(amount),
                    Just(every),
                    prop::collection::vec(op, 0..100),
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn rolling_matches_exact_model((start, amount, every, script) in arb_script()) {
            let mut r = Rolling::default();
            let mut model = Model::new(start, amount, every);
            let mut now = start;
            let mut forced = false;
            for op in script {
                match op {
                    Op::Advance(us) => now += us as i64,
                    Op::Admit(n) => {
                        let before = r;
                        let got = r.admit(now, amount, every, n);
                        prop_assert_eq!(got.err(), model.admit(now, n), "admit {} at {}", n, now);
                        if let Err(retry) = got {
                            prop_assert_eq!(r, before);
                            if retry != u64::MAX {
                                let retry = retry as i64;
                                let early = before.clone().admit(now + retry - 1, amount, every, n);
                                prop_assert!(early.is_err());
                                let on_time = before.clone().admit(now + retry, amount, every, n);
                                prop_assert!(on_time.is_ok());
                            } else {
                                prop_assert!(n > amount);
                            }
                        }
                    }
                    Op::Force(n) => {
                        forced |= n > 0;
                        r.force(now, amount, every, n);
                        model.force(now, n);
                    }
                    Op::Refund(n) => {
                        r.refund(now, amount, every, n);
                        model.refund(now, n);
                    }
                }
                let used = r.used(now, amount, every);
                prop_assert_eq!(used, model.used(now));
                if !forced {
                    prop_assert!(used <= amount);
                }
                let full = r.full_at(now, amount, every);
                prop_assert!(full >= now);
                if amount == 0 && used > 0 {
                    prop_assert_eq!(full, i64::MAX);
                } else {
                    prop_assert_eq!(r.used(full, amount, every), 0);
                }
                if full > now && amount > 0 {
                    prop_assert!(r.used(full - 1, amount, every) > 0);
                }
            }
        }

        #[test]
        fn rolling_never_panics(
            amount in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()],
            every in prop_oneof![Just(1_000u64), Just(u64::MAX), 1_000u64..],
            calls in prop::collection::vec((any::<i64>(), any::<u64>(), 0u8..5), 0..50),
        ) {
            let mut r = Rolling::default();
            for (now, n, what) in calls {
                match what {
                    0 => { let _ = r.admit(now, amount, every, n % amount.saturating_add(2)); }
                    1 => { let _ = r.admit(now, amount, every, n); }
                    2 => r.force(now, amount, every, n),
                    3 => r.refund(now, amount, every, n),
                    _ => { let _ = r.rescaled(now, (amount, every), (n, every)); }
                }
                let _ = r.used(now, amount, every);
                prop_assert!(r.full_at(now, amount, every) >= now);
            }
        }
    }
}

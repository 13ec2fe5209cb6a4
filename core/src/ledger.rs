//! Counters of limits, and the admission rule.
//!
//! A ledger is the list of counters of one key or one owner, parallel to its limits. All
//! arithmetic is on integers and is checked or saturating. Admission is two-phase: every
//! counter of the key and of its owner is checked first, and only when all pass are they
//! changed, under the locks of both ledgers, so a denied verify changes nothing.

use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::policy::{Limit, Unit, Window};
use crate::verdict::{Code, HoldAmounts, Level, LimitStatus};
use crate::window::{self, Period, Rolling};

/// A limit with its zone and duration resolved once.
#[derive(Debug)]
pub(crate) struct CompiledLimit {
    pub(crate) limit: Arc<Limit>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Lifetime,
    Calendar {
        period: Period,
        tz: TimeZone,
        anchor: Option<u8>,
    },
    Rolling {
        every_us: u64,
    },
}

impl CompiledLimit {
    pub(crate) fn new(limit: &Limit) -> Result<CompiledLimit> {
        limit.validate()?;
        let kind = match &limit.window {
            Window::Lifetime => Kind::Lifetime,
            Window::Calendar { period, tz, anchor } => Kind::Calendar {
                period: *period,
                tz: TimeZone::get(tz)
                    .map_err(|_| Error::invalid(format!("unknown time zone {tz:?}")))?,
                anchor: *anchor,
            },
            Window::Rolling { every } => Kind::Rolling {
                every_us: u64::try_from(every.as_micros())
                    .map_err(|_| Error::invalid("rolling window too long"))?,
            },
        };
        Ok(CompiledLimit {
            limit: Arc::new(limit.clone()),
            kind,
        })
    }

    pub(crate) fn compile_all(limits: &[Limit]) -> Result<Vec<CompiledLimit>> {
        if limits.len() > 32 {
            return Err(Error::invalid("at most 32 limits per key or owner"));
        }
        limits.iter().map(CompiledLimit::new).collect()
    }

    /// The code a denial by this limit carries.
    pub(crate) fn denial_code(&self) -> Code {
        match (&self.kind, self.limit.unit) {
            (Kind::Rolling { .. }, _) => Code::RateLimited,
            (_, Unit::Cost) => Code::BudgetExceeded,
            _ => Code::UsageExceeded,
        }
    }
}

/// The persistent state of one counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counter {
    /// Used in the current window (calendar and lifetime).
    pub(crate) used: u64,
    /// Start of the current calendar window (µs); 0 for others.
    pub(crate) start: i64,
    /// End of the current calendar window (µs); `i64::MAX` before the first use.
    pub(crate) end: i64,
    /// Rolling window state.
    pub(crate) rolling: Rolling,
    /// Bit i set: the i-th alert threshold fired in this window.
    pub(crate) alerted: u8,
    /// The exhausted event fired in this window.
    pub(crate) exhausted: bool,
    /// Reserved by outstanding holds. Not persisted: holds do not survive a restart.
    #[serde(skip)]
    pub(crate) held: u64,
}

/// The counters of one key or owner.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Ledger {
    pub(crate) counters: Vec<Counter>,
    /// The latest time seen: calendar and rolling windows never move backwards.
    pub(crate) last_seen: i64,
    /// Bumped whenever the limits are replaced, so that stale holds settle nothing.
    #[serde(skip)]
    pub(crate) generation: u64,
}

/// A threshold or exhaustion crossing found while applying usage.
#[derive(Debug)]
pub(crate) struct Crossing {
    pub(crate) index: usize,
    pub(crate) percent: Option<u8>,
}

/// A denial by one limit.
#[derive(Debug)]
pub(crate) struct Denial {
    pub(crate) index: usize,
    pub(crate) code: Code,
    pub(crate) retry_after_us: Option<u64>,
    pub(crate) resets_at: Option<i64>,
}

/// What a hold reserved on one ledger, limit by limit.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reservation {
    pub(crate) generation: u64,
    pub(crate) amounts: Vec<(usize, u64)>,
}

fn amount_of(unit: Unit, input: u64, output: u64, cost: u64) -> u64 {
    match unit {
        Unit::Requests => 0,
        Unit::Tokens => input.saturating_add(output),
        Unit::InputTokens => input,
        Unit::OutputTokens => output,
        Unit::Cost => cost,
    }
}

impl Ledger {
    pub(crate) fn new(limits: &[CompiledLimit]) -> Ledger {
        Ledger {
            counters: vec![
                Counter {
                    end: i64::MIN,
                    ..Counter::default()
                };
                limits.len()
            ],
            last_seen: i64::MIN,
            generation: 0,
        }
    }

    /// Replaces the limits, keeping the counters of limits whose unit and window are
    /// unchanged (so changing an amount does not rewrite past usage).
    pub(crate) fn relimit(&mut self, old: &[CompiledLimit], new: &[CompiledLimit]) {
        let now = self.last_seen.max(0);
        let counters = new
            .iter()
            .map(|limit| {
                let kept = old.iter().enumerate().find(|(_, o)| {
                    o.limit.unit == limit.limit.unit && o.limit.window == limit.limit.window
                });
                let Some((i, was)) = kept else {
                    return Counter {
                        end: i64::MIN,
                        ..Counter::default()
                    };
                };
                let mut counter = self.counters.get(i).copied().unwrap_or_default();
                counter.held = 0;
                // A rolling state is scaled by its amount: keep the units in use when the
                // amount changes.
                if let Kind::Rolling { every_us } = limit.kind {
                    let scales = ((was.limit.amount, every_us), (limit.limit.amount, every_us));
                    counter.rolling = counter.rolling.rescaled(now, scales.0, scales.1);
                }
                counter
            })
            .collect();
        self.counters = counters;
        self.generation += 1;
    }

    /// The effective time: never earlier than a time this ledger has already seen.
    pub(crate) fn advance(&mut self, now: i64) -> i64 {
        self.last_seen = self.last_seen.max(now);
        self.last_seen
    }

    /// Starts a new calendar window when `t` has left the current one.
    fn roll(counter: &mut Counter, limit: &CompiledLimit, t: i64) -> Result<()> {
        if let Kind::Calendar { period, tz, anchor } = &limit.kind {
            if t >= counter.end || t < counter.start || counter.end == i64::MIN {
                let (start, end) = window::calendar_window(t, *period, tz, *anchor)?;
                // Only ever move forward: an earlier window is never reopened.
                if counter.end == i64::MIN || start >= counter.end {
                    *counter = Counter {
                        start,
                        end,
                        held: counter.held,
                        ..Counter::default()
                    };
                }
            }
        } else if counter.end == i64::MIN {
            counter.end = i64::MAX;
        }
        Ok(())
    }

    /// Checks whether a request with `hold` fits every limit at `t`; changes nothing but
    /// window roll-overs, which are not observable.
    pub(crate) fn check(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        hold: &HoldAmounts,
    ) -> Result<Option<Denial>> {
        for (index, (counter, limit)) in self.counters.iter_mut().zip(limits).enumerate() {
            Ledger::roll(counter, limit, t)?;
            let unit = limit.limit.unit;
            let amount = limit.limit.amount;
            // Every request needs room for one unit of each limited unit at least: a budget
            // with nothing left denies even a request whose hold is zero.
            let need = match unit {
                Unit::Requests => 1,
                _ => amount_of(unit, hold.input_tokens, hold.output_tokens, hold.cost).max(1),
            };
            let denial = match &limit.kind {
                Kind::Rolling { every_us } => {
                    let mut probe = counter.rolling;
                    probe
                        .admit(t, amount, *every_us, need)
                        .err()
                        .map(|wait| Denial {
                            index,
                            code: limit.denial_code(),
                            retry_after_us: (wait != u64::MAX).then_some(wait),
                            resets_at: Some(counter.rolling.full_at(t, amount, *every_us)),
                        })
                }
                _ => {
                    let fits = counter
                        .used
                        .checked_add(counter.held)
                        .and_then(|n| n.checked_add(need))
                        .is_some_and(|n| n <= amount);
                    (!fits).then(|| {
                        let resets_at = (counter.end != i64::MAX).then_some(counter.end);
                        Denial {
                            index,
                            code: limit.denial_code(),
                            retry_after_us: resets_at
                                .map(|end| u64::try_from(end.saturating_sub(t)).unwrap_or(0)),
                            resets_at,
                        }
                    })
                }
            };
            if denial.is_some() {
                return Ok(denial);
            }
        }
        Ok(None)
    }

    /// Applies an admitted request: one request, and the hold. Call only after `check`
    /// passed at the same `t` for this ledger and the owner's.
    pub(crate) fn admit(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        hold: &HoldAmounts,
    ) -> (Reservation, Vec<Crossing>) {
        let mut reservation = Reservation {
            generation: self.generation,
            amounts: Vec::new(),
        };
        let mut crossings = Vec::new();
        for (index, (counter, limit)) in self.counters.iter_mut().zip(limits).enumerate() {
            let unit = limit.limit.unit;
            let amount = limit.limit.amount;
            let before = Ledger::level(counter, limit, t);
            let take = match unit {
                Unit::Requests => 1,
                _ => amount_of(unit, hold.input_tokens, hold.output_tokens, hold.cost),
            };
            match (&limit.kind, unit) {
                (Kind::Rolling { every_us }, _) => {
                    counter.rolling.force(t, amount, *every_us, take);
                    if unit != Unit::Requests && take > 0 {
                        counter.held = counter.held.saturating_add(take);
                        reservation.amounts.push((index, take));
                    }
                }
                (_, Unit::Requests) => counter.used = counter.used.saturating_add(1),
                _ if take > 0 => {
                    counter.held = counter.held.saturating_add(take);
                    reservation.amounts.push((index, take));
                }
                _ => {}
            }
            if unit == Unit::Requests {
                let after = Ledger::level(counter, limit, t);
                crossings.extend(Ledger::crossings(counter, limit, index, before, after));
            }
        }
        (reservation, crossings)
    }

    /// Releases a hold's reservation without usage.
    pub(crate) fn release(&mut self, limits: &[CompiledLimit], t: i64, held: &Reservation) {
        if held.generation != self.generation {
            return;
        }
        for &(index, take) in &held.amounts {
            let (Some(counter), Some(limit)) = (self.counters.get_mut(index), limits.get(index))
            else {
                continue;
            };
            counter.held = counter.held.saturating_sub(take);
            if let Kind::Rolling { every_us } = limit.kind {
                counter
                    .rolling
                    .refund(t, limit.limit.amount, every_us, take);
            }
        }
    }

    /// Records delivered usage, settling `held` if given. Usage is recorded even past a
    /// limit. Returns the crossings (alerts) it caused.
    pub(crate) fn apply_usage(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        usage: (u64, u64, u64),
        held: Option<&Reservation>,
    ) -> Result<Vec<Crossing>> {
        let (input, output, cost) = usage;
        let held = held.filter(|h| h.generation == self.generation);
        let mut crossings = Vec::new();
        for (index, (counter, limit)) in self.counters.iter_mut().zip(limits).enumerate() {
            Ledger::roll(counter, limit, t)?;
            let unit = limit.limit.unit;
            if unit == Unit::Requests {
                continue;
            }
            let reserved = held
                .and_then(|h| h.amounts.iter().find(|(i, _)| *i == index))
                .map_or(0, |(_, take)| *take);
            let actual = amount_of(unit, input, output, cost);
            let before = Ledger::level(counter, limit, t);
            counter.held = counter.held.saturating_sub(reserved);
            match limit.kind {
                Kind::Rolling { every_us } => {
                    let amount = limit.limit.amount;
                    if actual >= reserved {
                        counter
                            .rolling
                            .force(t, amount, every_us, actual - reserved);
                    } else {
                        counter
                            .rolling
                            .refund(t, amount, every_us, reserved - actual);
                    }
                }
                _ => counter.used = counter.used.saturating_add(actual),
            }
            let after = Ledger::level(counter, limit, t);
            crossings.extend(Ledger::crossings(counter, limit, index, before, after));
        }
        Ok(crossings)
    }

    /// Used amount at `t` (for rolling windows, the bucket's level rounded up).
    fn level(counter: &Counter, limit: &CompiledLimit, t: i64) -> u64 {
        match limit.kind {
            Kind::Rolling { every_us } => counter.rolling.used(t, limit.limit.amount, every_us),
            _ => counter.used,
        }
    }

    fn crossings(
        counter: &mut Counter,
        limit: &CompiledLimit,
        index: usize,
        before: u64,
        after: u64,
    ) -> Vec<Crossing> {
        let amount = u128::from(limit.limit.amount);
        let mut found = Vec::new();
        if amount == 0 || after <= before {
            return found;
        }
        // A rolling bucket drains over time. Its alerts fire once per episode: they re-arm
        // when the bucket has drained completely, not each time it dips under a threshold,
        // so a key held at its rate limit does not alert on every request. (Calendar windows
        // reset their flags when the window rolls over.)
        if before == 0 {
            counter.alerted = 0;
            counter.exhausted = false;
        }
        for (bit, percent) in limit.limit.alert_at.iter().enumerate() {
            let reached = u128::from(after) * 100 >= amount * u128::from(*percent);
            if reached && counter.alerted & (1 << bit) == 0 {
                counter.alerted |= 1 << bit;
                found.push(Crossing {
                    index,
                    percent: Some(*percent),
                });
            }
        }
        if u128::from(after) >= amount && !counter.exhausted {
            counter.exhausted = true;
            found.push(Crossing {
                index,
                percent: None,
            });
        }
        found
    }

    /// The state of every limit at `t`.
    pub(crate) fn statuses(
        &self,
        limits: &[CompiledLimit],
        level: Level,
        t: i64,
        out: &mut Vec<LimitStatus>,
    ) {
        for (index, (counter, limit)) in self.counters.iter().zip(limits).enumerate() {
            out.push(Ledger::status(counter, limit, level, index, t));
        }
    }

    pub(crate) fn status_of(
        &self,
        limits: &[CompiledLimit],
        level: Level,
        index: usize,
        t: i64,
    ) -> Option<LimitStatus> {
        Some(Ledger::status(
            self.counters.get(index)?,
            limits.get(index)?,
            level,
            index,
            t,
        ))
    }

    fn status(
        counter: &Counter,
        limit: &CompiledLimit,
        level: Level,
        index: usize,
        t: i64,
    ) -> LimitStatus {
        let amount = limit.limit.amount;
        let (used, held, resets_at) = match limit.kind {
            Kind::Rolling { every_us } => {
                let level = counter.rolling.used(t, amount, every_us);
                let used = level.saturating_sub(counter.held);
                (
                    used,
                    counter.held.min(level),
                    Some(counter.rolling.full_at(t, amount, every_us)),
                )
            }
            Kind::Calendar {
                period,
                ref tz,
                anchor,
            } if t >= counter.end || counter.end == i64::MIN => {
                // The window has ended since the last use: nothing is used in the new one,
                // which resets at its own end.
                let end = window::calendar_window(t, period, tz, anchor)
                    .ok()
                    .map(|(_, end)| end);
                (0, counter.held, end)
            }
            Kind::Calendar { .. } => (counter.used, counter.held, Some(counter.end)),
            Kind::Lifetime => (counter.used, counter.held, None),
        };
        LimitStatus {
            level,
            index,
            limit: limit.limit.clone(),
            used,
            held,
            remaining: amount.saturating_sub(used).saturating_sub(held),
            resets_at: resets_at.and_then(|us| jiff::Timestamp::from_microsecond(us).ok()),
        }
    }

    /// Whether the limit has no room left at `t`.
    pub(crate) fn is_exceeded(&self, limits: &[CompiledLimit], index: usize, t: i64) -> bool {
        self.status_of(limits, Level::Key, index, t)
            .is_some_and(|s| s.remaining == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(list: &[Limit]) -> Vec<CompiledLimit> {
        CompiledLimit::compile_all(list).unwrap()
    }

    #[test]
    fn a_denied_check_changes_nothing_and_admission_is_strict() {
        let limits = limits(&[
            Limit::new(Unit::Requests, 2, Window::Lifetime),
            Limit::new(Unit::Cost, 100, Window::Lifetime),
        ]);
        let mut ledger = Ledger::new(&limits);
        let hold = HoldAmounts {
            cost: 30,
            ..HoldAmounts::default()
        };
        assert!(ledger.check(&limits, 0, &hold).unwrap().is_none());
        ledger.admit(&limits, 0, &hold);
        assert!(ledger.check(&limits, 0, &hold).unwrap().is_none());
        ledger.admit(&limits, 0, &hold);
        let before = ledger.counters.clone();
        let denial = ledger.check(&limits, 0, &hold).unwrap().unwrap();
        assert_eq!(denial.code, Code::UsageExceeded);
        assert_eq!(ledger.counters, before);
    }

    #[test]
    fn a_spent_budget_denies_a_request_without_a_hold() {
        let limits = limits(&[Limit::new(Unit::Cost, 100, Window::Lifetime)]);
        let mut ledger = Ledger::new(&limits);
        ledger.check(&limits, 0, &HoldAmounts::default()).unwrap();
        ledger.apply_usage(&limits, 0, (0, 0, 100), None).unwrap();
        let denial = ledger
            .check(&limits, 0, &HoldAmounts::default())
            .unwrap()
            .unwrap();
        assert_eq!(denial.code, Code::BudgetExceeded);
    }

    #[test]
    fn a_rolling_threshold_fires_again_after_the_bucket_drained() {
        let every = Duration::from_secs(1);
        let limit = Limit {
            alert_at: vec![50],
            ..Limit::new(Unit::Requests, 2, Window::Rolling { every })
        };
        let limits = limits(&[limit]);
        let mut ledger = Ledger::new(&limits);
        let hold = HoldAmounts::default();
        assert!(ledger.check(&limits, 0, &hold).unwrap().is_none());
        let (_, first) = ledger.admit(&limits, 0, &hold);
        assert_eq!(first.len(), 1, "50% of 2 crossed by the first request");
        assert!(ledger.check(&limits, 5_000_000, &hold).unwrap().is_none());
        let (_, again) = ledger.admit(&limits, 5_000_000, &hold);
        assert_eq!(again.len(), 1, "the drained bucket re-armed its threshold");
        assert_eq!(again[0].percent, Some(50));
    }

    #[test]
    fn rolling_limits_rate_limit() {
        let every = Duration::from_secs(1);
        let limits = limits(&[Limit::new(Unit::Requests, 2, Window::Rolling { every })]);
        let mut ledger = Ledger::new(&limits);
        for _ in 0..2 {
            assert!(
                ledger
                    .check(&limits, 0, &HoldAmounts::default())
                    .unwrap()
                    .is_none()
            );
            ledger.admit(&limits, 0, &HoldAmounts::default());
        }
        let denial = ledger
            .check(&limits, 0, &HoldAmounts::default())
            .unwrap()
            .unwrap();
        assert_eq!(denial.code, Code::RateLimited);
        assert_eq!(denial.retry_after_us, Some(500_000));
    }
}

//! Counters of limits, and the admission rule.
//!
//! A ledger is the list of counters of one key or one owner, parallel to its limits. All
//! arithmetic is on integers and is checked or saturating. Admission is two-phase: every
//! counter of the key and of its owner is checked first, and only when all pass are they
//! changed, under the locks of both ledgers, so a denied verify changes nothing.

use std::collections::BTreeMap;
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
    /// Shared mode: what this process may still admit from the slices it leased in the
    /// current window. Not persisted: a slice lives in one process's memory.
    #[serde(skip)]
    pub(crate) slice: u64,
    /// Shared mode: leased room that charges of this process took (their holds and what
    /// their slices covered) and that their commit has not yet settled in the row.
    #[serde(skip)]
    pub(crate) pending: u64,
    /// Shared mode: until when (µs) a lease refused for this counter is not asked again.
    #[serde(skip)]
    pub(crate) recheck_at: i64,
}

impl Counter {
    /// Shared mode: what this process has leased and not used: its slice, its open holds and
    /// what its uncommitted charges took.
    fn unused(&self) -> u64 {
        self.slice
            .saturating_add(self.held)
            .saturating_add(self.pending)
    }
}

/// Shared mode: one process's part of one counter, as the shared ledger row records it.
///
/// A lease is taken from the counter when granted (the counter's `used`, or its rolling
/// bucket, includes every lease), so the row's counters never admit more than the limit.
/// `unused` is what the process has not used of it yet (its slice and its open holds): what
/// goes back to the counter when the process closes the vault, or when it died and its lease
/// timed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lease {
    /// The start of the calendar window the lease belongs to (0 for other windows).
    pub(crate) window: i64,
    /// Leased and not used.
    pub(crate) unused: u64,
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
    /// Shared mode: the leases of the processes sharing the vault, by session id, parallel to
    /// the counters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) leases: BTreeMap<u64, Vec<Lease>>,
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

/// What a hold reserved on one ledger, limit by limit: (limit index, amount, start of the
/// counter's window when the hold was placed).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Reservation {
    pub(crate) generation: u64,
    pub(crate) amounts: Vec<(usize, u64, i64)>,
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
            leases: BTreeMap::new(),
        }
    }

    /// Replaces the limits, keeping the counters of limits whose unit and window are
    /// unchanged (so changing an amount does not rewrite past usage).
    pub(crate) fn relimit(&mut self, old: &[CompiledLimit], new: &[CompiledLimit]) {
        let now = self.last_seen.max(0);
        let kept: Vec<Option<usize>> = new
            .iter()
            .map(|limit| {
                old.iter().position(|o| {
                    o.limit.unit == limit.limit.unit && o.limit.window == limit.limit.window
                })
            })
            .collect();
        // Shared mode: every process drops its slices and holds of a ledger whose limits
        // change (as below for this process's view), so the row takes all leases back.
        let leases = std::mem::take(&mut self.leases);
        let mut unused = vec![0u64; old.len()];
        for slots in leases.values() {
            for ((total, slot), counter) in unused.iter_mut().zip(slots).zip(&self.counters) {
                if slot.window == counter.start {
                    *total = total.saturating_add(slot.unused);
                }
            }
        }
        for ((counter, limit), total) in self.counters.iter_mut().zip(old).zip(&unused) {
            Ledger::unconsume(counter, limit, now, *total);
        }
        let counters = new
            .iter()
            .zip(&kept)
            .map(|(limit, kept)| {
                let kept = kept.map(|i| (i, &old[i]));
                let Some((i, was)) = kept else {
                    return Counter {
                        end: i64::MIN,
                        ..Counter::default()
                    };
                };
                let mut counter = self.counters.get(i).copied().unwrap_or_default();
                counter.held = 0;
                counter.slice = 0;
                counter.pending = 0;
                counter.recheck_at = 0;
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
                        reservation.amounts.push((index, take, counter.start));
                    }
                }
                (_, Unit::Requests) => counter.used = counter.used.saturating_add(1),
                _ if take > 0 => {
                    counter.held = counter.held.saturating_add(take);
                    reservation.amounts.push((index, take, counter.start));
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
        for &(index, take, start) in &held.amounts {
            let (Some(counter), Some(limit)) = (self.counters.get_mut(index), limits.get(index))
            else {
                continue;
            };
            counter.held = counter.held.saturating_sub(take);
            if counter.start == start {
                counter.slice = counter.slice.saturating_add(take);
            }
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
                .and_then(|h| h.amounts.iter().find(|(i, ..)| *i == index))
                .map_or(0, |(_, take, _)| *take);
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

/// A lease granted on one counter: its index, the amount, and the crossings it caused.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) index: usize,
    pub(crate) amount: u64,
}

/// Shared mode: the counters of a shared ledger row and this process's view of them.
impl Ledger {
    /// The room each counter must have for a request with `hold`, where this process's slices
    /// fall short: (limit index, shortfall). Rolls calendar windows first; a slice of an ended
    /// window is void.
    pub(crate) fn shortfalls(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        hold: &HoldAmounts,
    ) -> Result<Vec<(usize, u64)>> {
        let mut short = Vec::new();
        for (index, (counter, limit)) in self.counters.iter_mut().zip(limits).enumerate() {
            Ledger::roll(counter, limit, t)?;
            let need = Ledger::need(limit.limit.unit, hold);
            if counter.slice < need {
                short.push((index, need - counter.slice));
            }
        }
        Ok(short)
    }

    /// Takes an admitted request out of the slices. Call after `admit`, under the same lock,
    /// once `shortfalls` found none.
    pub(crate) fn take_slices(&mut self, limits: &[CompiledLimit], hold: &HoldAmounts) {
        for (counter, limit) in self.counters.iter_mut().zip(limits) {
            let take = match limit.limit.unit {
                Unit::Requests => 1,
                unit => amount_of(unit, hold.input_tokens, hold.output_tokens, hold.cost),
            };
            counter.slice = counter.slice.saturating_sub(take);
        }
    }

    fn need(unit: Unit, hold: &HoldAmounts) -> u64 {
        match unit {
            Unit::Requests => 1,
            _ => amount_of(unit, hold.input_tokens, hold.output_tokens, hold.cost).max(1),
        }
    }

    /// Room left in a shared counter at `t`: leases count as used.
    fn room(counter: &Counter, limit: &CompiledLimit, t: i64) -> u64 {
        limit
            .limit
            .amount
            .saturating_sub(Ledger::level(counter, limit, t))
    }

    /// On a shared row: grants `session` leases covering `wants` (limit index, shortfall),
    /// all or none. A grant is the shortfall, or more while the counter has plenty of room
    /// (a share of it that shrinks as the room does, so that the last units of a limit are
    /// leased one request at a time and no process sits on room another one needs).
    /// `sessions` is how many processes share the vault. On refusal returns the denial of
    /// the first counter without room, changing nothing but window roll-overs.
    pub(crate) fn grant(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        session: u64,
        wants: &[(usize, u64)],
        sessions: u64,
    ) -> Result<std::result::Result<Vec<Grant>, Denial>> {
        for &(index, want) in wants {
            let (Some(counter), Some(limit)) = (self.counters.get_mut(index), limits.get(index))
            else {
                continue;
            };
            Ledger::roll(counter, limit, t)?;
            if Ledger::room(counter, limit, t) < want {
                return Ok(Err(Ledger::denial(counter, limit, index, t, want)));
            }
        }
        let mut grants = Vec::with_capacity(wants.len());
        for &(index, want) in wants {
            let (Some(counter), Some(limit)) = (self.counters.get_mut(index), limits.get(index))
            else {
                continue;
            };
            let room = Ledger::room(counter, limit, t);
            let share = room / (2 * (sessions.max(1) + 1));
            let amount = if share >= 4 * want { share } else { want };
            Ledger::consume(counter, limit, t, amount);
            let slots = self.leases.entry(session).or_default();
            slots.resize(limits.len(), Lease::default());
            let slot = &mut slots[index];
            if slot.window != counter.start {
                *slot = Lease {
                    window: counter.start,
                    unused: 0,
                };
            }
            slot.unused = slot.unused.saturating_add(amount);
            grants.push(Grant { index, amount });
        }
        Ok(Ok(grants))
    }

    fn denial(counter: &Counter, limit: &CompiledLimit, index: usize, t: i64, want: u64) -> Denial {
        match limit.kind {
            Kind::Rolling { every_us } => {
                let mut probe = counter.rolling;
                let wait = probe.admit(t, limit.limit.amount, every_us, want).err();
                Denial {
                    index,
                    code: limit.denial_code(),
                    retry_after_us: wait.filter(|&w| w != u64::MAX),
                    resets_at: Some(counter.rolling.full_at(t, limit.limit.amount, every_us)),
                }
            }
            _ => {
                let resets_at = (counter.end != i64::MAX).then_some(counter.end);
                Denial {
                    index,
                    code: limit.denial_code(),
                    retry_after_us: resets_at
                        .map(|end| u64::try_from(end.saturating_sub(t)).unwrap_or(0)),
                    resets_at,
                }
            }
        }
    }

    fn consume(counter: &mut Counter, limit: &CompiledLimit, t: i64, amount: u64) {
        match limit.kind {
            Kind::Rolling { every_us } => {
                counter
                    .rolling
                    .force(t, limit.limit.amount, every_us, amount);
            }
            _ => counter.used = counter.used.saturating_add(amount),
        }
    }

    fn unconsume(counter: &mut Counter, limit: &CompiledLimit, t: i64, amount: u64) {
        match limit.kind {
            Kind::Rolling { every_us } => {
                counter
                    .rolling
                    .refund(t, limit.limit.amount, every_us, amount);
            }
            _ => counter.used = counter.used.saturating_sub(amount),
        }
    }

    /// On a shared row: gives back what `session` leased and did not use, and forgets its
    /// leases. A lease of an ended calendar window gives nothing back: that room is gone.
    pub(crate) fn give_back(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        session: u64,
    ) -> Result<()> {
        let Some(slots) = self.leases.remove(&session) else {
            return Ok(());
        };
        for ((counter, limit), slot) in self.counters.iter_mut().zip(limits).zip(slots) {
            Ledger::roll(counter, limit, t)?;
            if slot.unused > 0 && slot.window == counter.start {
                Ledger::unconsume(counter, limit, t, slot.unused);
            }
        }
        Ok(())
    }

    /// On a shared row: takes `amount` of `session`'s unused lease on counter `index` back
    /// into the counter (a slice this process gives up).
    pub(crate) fn return_slice(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        session: u64,
        index: usize,
        amount: u64,
    ) {
        let (Some(counter), Some(limit)) = (self.counters.get_mut(index), limits.get(index)) else {
            return;
        };
        let Some(slot) = self
            .leases
            .get_mut(&session)
            .and_then(|slots| slots.get_mut(index))
            .filter(|slot| slot.window == counter.start)
        else {
            return;
        };
        let amount = amount.min(slot.unused);
        slot.unused -= amount;
        Ledger::unconsume(counter, limit, t, amount);
    }

    /// On a shared row: records what `session` has not used of its leases (`local` is its
    /// view of this row, whose slices and holds are that part).
    pub(crate) fn record_unused(&mut self, session: u64, local: &Ledger) {
        let slots = self.leases.entry(session).or_default();
        slots.resize(self.counters.len(), Lease::default());
        for ((slot, global), mine) in slots.iter_mut().zip(&self.counters).zip(&local.counters) {
            *slot = if mine.start == global.start {
                Lease {
                    window: global.start,
                    unused: mine.unused(),
                }
            } else {
                Lease::default()
            };
        }
        if slots.iter().all(|s| s.unused == 0) {
            self.leases.remove(&session);
        }
    }

    /// On a shared row: settles a charge made by this process. The hold's reservation was
    /// taken from the counter with the lease; the counter now gets the difference between
    /// the usage and that reservation. Returns the crossings.
    pub(crate) fn settle(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        usage: (u64, u64, u64),
        held: &[(usize, u64, i64)],
    ) -> Result<Vec<Crossing>> {
        let (input, output, cost) = usage;
        let mut crossings = Vec::new();
        for (index, (counter, limit)) in self.counters.iter_mut().zip(limits).enumerate() {
            Ledger::roll(counter, limit, t)?;
            let unit = limit.limit.unit;
            if unit == Unit::Requests {
                continue;
            }
            let reserved = held
                .iter()
                .find(|(i, _, start)| *i == index && *start == counter.start)
                .map_or(0, |(_, take, _)| *take);
            let actual = amount_of(unit, input, output, cost);
            let before = Ledger::level(counter, limit, t);
            if actual >= reserved {
                Ledger::consume(counter, limit, t, actual - reserved);
            } else {
                Ledger::unconsume(counter, limit, t, reserved - actual);
            }
            let after = Ledger::level(counter, limit, t);
            crossings.extend(Ledger::crossings(counter, limit, index, before, after));
        }
        Ok(crossings)
    }

    /// On a shared row: the crossings of a lease just granted (the lease counts as used).
    pub(crate) fn lease_crossings(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        grants: &[Grant],
    ) -> Vec<Crossing> {
        let mut crossings = Vec::new();
        for grant in grants {
            let (Some(counter), Some(limit)) =
                (self.counters.get_mut(grant.index), limits.get(grant.index))
            else {
                continue;
            };
            let after = Ledger::level(counter, limit, t);
            let before = after.saturating_sub(grant.amount);
            crossings.extend(Ledger::crossings(
                counter,
                limit,
                grant.index,
                before,
                after,
            ));
        }
        crossings
    }

    /// Makes this process's view of a row agree with the shared row: the row's counters less
    /// this process's unused leases (which its slices and holds account for), keeping the
    /// slices and holds.
    pub(crate) fn sync_view(
        &mut self,
        limits: &[CompiledLimit],
        t: i64,
        row: &Ledger,
        session: u64,
    ) {
        let slots = row.leases.get(&session);
        for (index, (mine, (global, limit))) in self
            .counters
            .iter_mut()
            .zip(row.counters.iter().zip(limits))
            .enumerate()
        {
            let unused = slots
                .and_then(|s| s.get(index))
                .filter(|s| s.window == global.start)
                .map_or(0, |s| s.unused);
            let kept = *mine;
            *mine = *global;
            mine.held = kept.held;
            if kept.start == global.start {
                mine.slice = kept.slice;
                mine.pending = kept.pending;
                mine.recheck_at = kept.recheck_at;
            }
            Ledger::unconsume(mine, limit, t, unused);
        }
        self.last_seen = self.last_seen.max(row.last_seen);
    }

    /// Shared mode: a charge's usage beyond its hold is taken from this process's slices as
    /// far as they cover it (that room was leased already). Returns what the shared counter
    /// settles the charge against: the hold's reservation plus what the slices covered. Call
    /// after `apply_usage`, under the same lock.
    pub(crate) fn charge_slices(
        &mut self,
        limits: &[CompiledLimit],
        usage: (u64, u64, u64),
        held: Option<&Reservation>,
    ) -> Reservation {
        let (input, output, cost) = usage;
        let held = held.filter(|h| h.generation == self.generation);
        let mut covered = Reservation {
            generation: self.generation,
            amounts: Vec::new(),
        };
        for (index, (counter, limit)) in self.counters.iter_mut().zip(limits).enumerate() {
            let unit = limit.limit.unit;
            if unit == Unit::Requests {
                continue;
            }
            let reserved = held
                .and_then(|h| h.amounts.iter().find(|(i, ..)| *i == index))
                .filter(|(.., start)| *start == counter.start)
                .map_or(0, |(_, take, _)| *take);
            let actual = amount_of(unit, input, output, cost);
            let from_slice = actual.saturating_sub(reserved).min(counter.slice);
            counter.slice -= from_slice;
            let total = reserved.saturating_add(from_slice);
            counter.pending = counter.pending.saturating_add(total);
            if total > 0 {
                covered.amounts.push((index, total, counter.start));
            }
        }
        covered
    }

    /// Shared mode: a charge's commit settled what it took (`covered`, from
    /// `charge_slices`); with `returned`, the commit dropped the charge (another process had
    /// recorded its request id) and what it took goes back to the slices.
    pub(crate) fn settle_pending(&mut self, covered: &Reservation, returned: bool) {
        for &(index, amount, start) in &covered.amounts {
            let Some(counter) = self.counters.get_mut(index) else {
                continue;
            };
            if counter.start != start {
                continue;
            }
            counter.pending = counter.pending.saturating_sub(amount);
            if returned {
                counter.slice = counter.slice.saturating_add(amount);
            }
        }
    }

    /// Shared mode: a denial remembered from a refused lease, for the first of `short` whose
    /// counter is not due for another try at `t`.
    pub(crate) fn cached_denial(
        &self,
        limits: &[CompiledLimit],
        t: i64,
        short: &[(usize, u64)],
    ) -> Option<Denial> {
        short.iter().find_map(|&(index, want)| {
            let counter = self.counters.get(index)?;
            let limit = limits.get(index)?;
            (counter.recheck_at > t).then(|| Ledger::denial(counter, limit, index, t, want))
        })
    }

    /// Shared mode: a lease for counter `index` was refused at `t`; not asked again before
    /// `until`.
    pub(crate) fn refused(&mut self, index: usize, until: i64) {
        if let Some(counter) = self.counters.get_mut(index) {
            counter.recheck_at = until;
        }
    }

    /// Shared mode: this process's unused leases as its view has them (for a row whose
    /// limits are about to change).
    pub(crate) fn own_leases(&self) -> Vec<Lease> {
        self.counters
            .iter()
            .map(|c| Lease {
                window: c.start,
                unused: c.unused(),
            })
            .collect()
    }

    /// On a row of a vault opened exclusively: gives back the leases of processes that shared
    /// it before (none is still running).
    pub(crate) fn give_back_all(&mut self, limits: &[CompiledLimit], t: i64) -> Result<()> {
        let sessions: Vec<u64> = self.leases.keys().copied().collect();
        for session in sessions {
            self.give_back(limits, t, session)?;
        }
        Ok(())
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

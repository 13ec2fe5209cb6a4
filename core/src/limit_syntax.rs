//! Limits written the way people say them, for the CLI, configuration files and the admin API:
//!
//! ```text
//! <unit>=<amount>[/<window>][@<tz>][;alert=<percent>,<percent>,...]
//! ```
//!
//! - `requests=100/min`: 100 requests, refilled continuously at 100 per minute.
//! - `tokens=1M/day@Europe/Berlin`: a million tokens per calendar day in Berlin.
//! - `tokens=30B`: thirty billion tokens, ever.
//! - `cost=$0.25/month:31@America/New_York;alert=50,90`: a quarter per month, the month
//!   starting on the 31st (clamped in short months), alerts at 50% and 90%.
//!
//! Whitespace around each part is allowed, and unit and window words are case-insensitive.
//!
//! **Units**: `requests` (or `req`), `tokens`, `input_tokens` (or `input`), `output_tokens`
//! (or `output`), `cost`.
//!
//! **Amounts**: an integer, with optional `_` or `,` separators between groups of three digits,
//! and an optional suffix `k` (10^3), `M` (10^6), `B` or `G` (10^9), `T` (10^12). A decimal
//! point is allowed when the result is whole (`2.5k` is 2500, `2.5` is an error). A `cost` is
//! either money, `$10`, `10usd`, `0.25eur`, `$1.5k` (any three-letter currency word, all of
//! them meaning the vault's one currency, at most six fraction digits), or integer micro-units
//! of that currency with the suffix `u` (`1500000u` is 1.50). A bare number is an error for a
//! cost, since it could mean either.
//!
//! **Windows**: absent or `lifetime` never resets. `hour`, `day`, `week`, `month`, `year`
//! (or `hourly`, `daily`, ...) are calendar windows that reset on the boundaries of that period
//! in the zone given by `@<tz>` (an IANA name, UTC when absent); `month:15` starts each month
//! on the 15th. `sec` (or `s`, `second`), `min` (or `minute`), and durations such as `10s`,
//! `5m`, `1h`, `2h30m` are rolling windows: a token bucket holding at most the amount and
//! refilled at the amount per duration.
//!
//! So `1h` and `hour` differ: `requests=100/1h` allows 100 in any 60 minutes, while
//! `requests=100/hour` allows 100 between 14:00 and 15:00, and 100 more from 15:00. A person
//! saying "100 per minute" means the first (a rate); one saying "a million a day" means the
//! second (a quota). Durations use the lowercase unit letters of `policy::parse_duration`;
//! days are not among them, so a rolling day is written `24h`.
//!
//! [`Limit`]'s `Display` writes this syntax back, and parsing it gives the same limit:
//! defaults (lifetime window, UTC, the default alert thresholds) are left out; counts use the
//! largest suffix that leaves a whole number (`1500k`, `30B`, `1234`); costs are written as
//! `$<decimal>` (`$10`, `$0.25`, `$0.000001`) because a limit does not store its currency and
//! every currency word reads back as the same micro-units; rolling windows of one second or one
//! minute are written `sec` and `min`, others as `policy::format_duration` writes them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::policy::{DEFAULT_ALERT_AT, Limit, Unit, Window, format_duration, parse_duration};
use crate::window::Period;

/// The grammar, for error messages.
const GRAMMAR: &str = "<unit>=<amount>[/<window>][@<tz>][;alert=<percent>,...]";

/// Micro-units per currency unit, as a power of ten.
const MICRO_DIGITS: u32 = 6;

/// Count suffixes, largest first: the letter `Display` writes and its power of ten.
const SUFFIXES: [(char, u32); 4] = [('T', 12), ('B', 9), ('M', 6), ('k', 3)];

/// Most alert thresholds per limit, as `Limit::validate` allows.
const MAX_ALERTS: usize = 8;

/// Longest piece of input quoted in an error message.
const MAX_QUOTED_CHARS: usize = 48;

impl FromStr for Limit {
    type Err = Error;

    /// Parses `<unit>=<amount>[/<window>][@<tz>][;alert=<percent>,...]`; see the module
    /// documentation for every form. The result has passed [`Limit::validate`].
    fn from_str(text: &str) -> Result<Limit> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid(format!(
                "empty limit: expected {GRAMMAR}, e.g. \"requests=100/min\""
            )));
        }

        let (main, options) = match text.split_once(';') {
            Some((main, options)) => (main, Some(options)),
            None => (text, None),
        };
        let (unit_text, rest) = main.split_once('=').ok_or_else(|| {
            Error::invalid(format!(
                "limit {} has no \"=\": expected {GRAMMAR}, e.g. \"requests=100/min\"",
                quote(text)
            ))
        })?;
        // Zone names contain '/', so the zone is cut off before amount and window are split.
        let (rest, tz) = match rest.split_once('@') {
            Some((rest, tz)) => (rest, Some(tz.trim())),
            None => (rest, None),
        };
        let (amount_text, window_text) = match rest.split_once('/') {
            Some((amount, window)) => (amount, Some(window.trim())),
            None => (rest, None),
        };

        let unit = parse_unit(unit_text.trim())?;
        let amount = parse_amount(unit, amount_text.trim())?;
        let window = parse_window(window_text, tz)?;
        let alert_at = match options {
            Some(options) => parse_options(options)?,
            None => DEFAULT_ALERT_AT.to_vec(),
        };
        let limit = Limit {
            unit,
            amount,
            window,
            alert_at,
        };
        limit.validate()?;
        Ok(limit)
    }
}

impl fmt::Display for Limit {
    /// Writes the syntax [`FromStr`] reads, leaving out defaults; see the module documentation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=", self.unit)?;
        if self.unit == Unit::Cost {
            write_money(f, self.amount)?;
        } else {
            write_count(f, self.amount)?;
        }

        match &self.window {
            Window::Lifetime => {}
            Window::Calendar { period, tz, anchor } => {
                write!(f, "/{}", period.as_str())?;
                if let Some(day) = anchor {
                    write!(f, ":{day}")?;
                }
                if tz != "UTC" {
                    write!(f, "@{tz}")?;
                }
            }
            Window::Rolling { every } => {
                if *every == Duration::from_secs(1) {
                    f.write_str("/sec")?;
                } else if *every == Duration::from_secs(60) {
                    f.write_str("/min")?;
                } else {
                    write!(f, "/{}", format_duration(*every))?;
                }
            }
        }

        if self.alert_at != DEFAULT_ALERT_AT {
            f.write_str(";alert=")?;
            if self.alert_at.is_empty() {
                f.write_str("none")?;
            }
            for (i, percent) in self.alert_at.iter().enumerate() {
                let comma = if i == 0 { "" } else { "," };
                write!(f, "{comma}{percent}")?;
            }
        }
        Ok(())
    }
}

fn write_count(f: &mut fmt::Formatter<'_>, amount: u64) -> fmt::Result {
    for (letter, power) in SUFFIXES {
        let scale = 10u64.pow(power);
        if amount != 0 && amount.is_multiple_of(scale) {
            return write!(f, "{}{letter}", amount / scale);
        }
    }
    write!(f, "{amount}")
}

fn write_money(f: &mut fmt::Formatter<'_>, micros: u64) -> fmt::Result {
    let scale = 10u64.pow(MICRO_DIGITS);
    let (whole, fraction) = (micros / scale, micros % scale);
    if fraction == 0 {
        return write!(f, "${whole}");
    }
    let digits = format!("{fraction:06}");
    write!(f, "${whole}.{}", digits.trim_end_matches('0'))
}

fn parse_unit(text: &str) -> Result<Unit> {
    match text.to_ascii_lowercase().as_str() {
        "requests" | "req" => Ok(Unit::Requests),
        "tokens" => Ok(Unit::Tokens),
        "input_tokens" | "input" => Ok(Unit::InputTokens),
        "output_tokens" | "output" => Ok(Unit::OutputTokens),
        "cost" => Ok(Unit::Cost),
        _ => Err(Error::invalid(format!(
            "unknown unit {}: expected requests, tokens, input_tokens, output_tokens or cost",
            quote(text)
        ))),
    }
}

fn parse_amount(unit: Unit, text: &str) -> Result<u64> {
    if text.is_empty() {
        return Err(Error::invalid(format!(
            "missing amount for {unit}: expected a number after \"=\", e.g. \"{unit}=1M\""
        )));
    }
    if text.trim_start_matches('$').trim_start().starts_with('-') {
        return Err(Error::invalid(format!(
            "negative amount {} for {unit}: a limit is zero or more",
            quote(text)
        )));
    }
    if unit == Unit::Cost {
        parse_cost(text)
    } else {
        parse_count(unit, text)
    }
}

/// A count with an optional magnitude suffix: `100`, `1,000`, `1M`, `2.5k`.
fn parse_count(unit: Unit, text: &str) -> Result<u64> {
    let (number, power) = split_suffix(text);
    decimal(number, power).map_err(|problem| match problem {
        NumberProblem::Malformed => Error::invalid(format!(
            "amount {} for {unit} is not a number: expected digits with optional \"_\" or \",\" \
             between groups of three and a k, M, B or T suffix, e.g. \"1M\" or \"30_000\"",
            quote(text)
        )),
        NumberProblem::TooPrecise => Error::invalid(format!(
            "amount {} for {unit} is not a whole number",
            quote(text)
        )),
        NumberProblem::Overflow => too_large(unit, text),
    })
}

/// Money (`$10`, `0.25usd`, `1.5keur`) or micro-units (`1500000u`), as micro-units.
fn parse_cost(text: &str) -> Result<u64> {
    if let Some(number) = text.strip_prefix('$') {
        return parse_money(text, number.trim_start());
    }

    let letters_at = text
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .len();
    let letters = &text[letters_at..];
    if letters.len() >= 3 {
        // The currency word is the last three letters; any letter before it is a suffix.
        let number = text[..text.len() - 3].trim_end();
        if letters.len() > 4 || number.is_empty() {
            return Err(Error::invalid(format!(
                "cost {} has an unknown currency: expected a three-letter word such as usd or \
                 eur after the number, or \"$\" before it",
                quote(text)
            )));
        }
        return parse_money(text, number);
    }
    if let Some(number) = text.strip_suffix(['u', 'U']) {
        return parse_count(Unit::Cost, number.trim_end()).map_err(|err| {
            Error::invalid(format!(
                "{} (a cost in micro-units, written like \"1500000u\")",
                err.message()
            ))
        });
    }

    let (number, _) = split_suffix(text);
    if decimal(number, 0) != Err(NumberProblem::Malformed) {
        return Err(Error::invalid(format!(
            "cost {} has no currency: write \"{n}usd\" or \"${n}\" for currency units, or \
             \"{n}u\" for micro-units",
            quote(text),
            n = text
        )));
    }
    Err(Error::invalid(format!(
        "cost {} is not understood: expected money such as \"$10\", \"0.25usd\" or \"10eur\", \
         or micro-units such as \"1500000u\"",
        quote(text)
    )))
}

/// `number` (from `text`) in currency units, with an optional magnitude suffix.
fn parse_money(text: &str, number: &str) -> Result<u64> {
    let (digits, power) = split_suffix(number);
    decimal(digits, power.saturating_add(MICRO_DIGITS)).map_err(|problem| match problem {
        NumberProblem::Malformed => Error::invalid(format!(
            "cost {} is not a number: expected money such as \"$10\", \"0.25usd\" or \"10eur\"",
            quote(text)
        )),
        NumberProblem::TooPrecise => Error::invalid(format!(
            "cost {} has more than {MICRO_DIGITS} fraction digits: the smallest cost is \
             0.000001",
            quote(text)
        )),
        NumberProblem::Overflow => too_large(Unit::Cost, text),
    })
}

fn too_large(unit: Unit, text: &str) -> Error {
    let most = if unit == Unit::Cost {
        format!("{} micro-units", u64::MAX)
    } else {
        u64::MAX.to_string()
    };
    Error::invalid(format!(
        "amount {} for {unit} is too large: the most is {most}",
        quote(text)
    ))
}

/// Splits off a trailing magnitude letter: the number before it and its power of ten.
fn split_suffix(text: &str) -> (&str, u32) {
    let power = match text.chars().next_back() {
        Some('k' | 'K') => 3,
        Some('m' | 'M') => 6,
        Some('b' | 'B' | 'g' | 'G') => 9,
        Some('t' | 'T') => 12,
        _ => return (text, 0),
    };
    (text[..text.len() - 1].trim_end(), power)
}

#[derive(Debug, PartialEq)]
enum NumberProblem {
    /// Not digits, separators and at most one decimal point.
    Malformed,
    /// Nonzero digits below 10^-power.
    TooPrecise,
    /// More than `u64::MAX`.
    Overflow,
}

/// Reads `123`, `1_000`, `1,000,000` or `2.5` and multiplies it by 10^`power`, exactly.
fn decimal(text: &str, power: u32) -> std::result::Result<u64, NumberProblem> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let fraction = fraction.map(|f| f.trim_end_matches('0'));
    if (whole.is_empty() && fraction.is_none_or(str::is_empty)) || text.ends_with('.') {
        return Err(NumberProblem::Malformed);
    }
    if !fraction.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit())) {
        return Err(NumberProblem::Malformed);
    }

    // Separators must cut the digits into groups of three, so that "2,5" (a decimal comma)
    // is refused instead of read as 25.
    let mut groups = whole.split(['_', ',']);
    let first = groups.next().unwrap_or("");
    let digits_only = |group: &str| group.bytes().all(|b| b.is_ascii_digit());
    if !digits_only(first)
        || (whole.len() > first.len() && (first.is_empty() || first.len() > 3))
        || !groups.all(|group| group.len() == 3 && digits_only(group))
    {
        return Err(NumberProblem::Malformed);
    }

    let scale = 10u64.checked_pow(power).ok_or(NumberProblem::Overflow)?;
    let mut value: u64 = 0;
    for b in whole.bytes().filter(u8::is_ascii_digit) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(NumberProblem::Overflow)?;
    }
    value = value.checked_mul(scale).ok_or(NumberProblem::Overflow)?;

    let fraction = fraction.unwrap_or("");
    let places = u32::try_from(fraction.len()).map_err(|_| NumberProblem::TooPrecise)?;
    if places > power {
        return Err(NumberProblem::TooPrecise);
    }
    let mut part: u64 = 0;
    for b in fraction.bytes() {
        // At most `power` digits below a `scale` that fits in u64, so this cannot overflow.
        part = part * 10 + u64::from(b - b'0');
    }
    let part = part
        .checked_mul(10u64.pow(power - places))
        .ok_or(NumberProblem::Overflow)?;
    value.checked_add(part).ok_or(NumberProblem::Overflow)
}

fn parse_window(text: Option<&str>, tz: Option<&str>) -> Result<Window> {
    let window = match text {
        None => Window::Lifetime,
        Some("") => {
            return Err(Error::invalid(format!(
                "missing window after \"/\": expected {}",
                WINDOWS
            )));
        }
        Some(text) if text.starts_with(|c: char| c.is_ascii_digit()) => {
            let every = parse_duration(text).map_err(|err| {
                Error::invalid(format!(
                    "window {} is not a duration ({}): expected e.g. \"10s\", \"5m\", \"1h\", \
                     \"2h30m\"",
                    quote(text),
                    err.message()
                ))
            })?;
            // Limit::validate checks these too, but cannot quote the input.
            if every < Duration::from_millis(1) || every.as_micros() > i64::MAX as u128 {
                return Err(Error::invalid(format!(
                    "rolling window {} is out of range: expected at least 1ms and at most \
                     {} hours",
                    quote(text),
                    i64::MAX as u128 / 3_600_000_000
                )));
            }
            Window::Rolling { every }
        }
        Some(text) => parse_window_word(text)?,
    };

    let Some(tz) = tz else {
        return Ok(window);
    };
    let Window::Calendar { period, anchor, .. } = window else {
        return Err(Error::invalid(format!(
            "time zone {} applies only to calendar windows (hour, day, week, month, year), not \
             to {}",
            quote(tz),
            match text {
                Some(text) => quote(text),
                None => "a lifetime limit".to_owned(),
            }
        )));
    };
    if jiff::tz::TimeZone::get(tz).is_err() {
        return Err(Error::invalid(format!(
            "unknown time zone {}: expected an IANA name such as \"Europe/Berlin\", \
             \"America/New_York\" or \"UTC\"",
            quote(tz)
        )));
    }
    Ok(Window::Calendar {
        period,
        tz: tz.to_owned(),
        anchor,
    })
}

/// What a window can be, for error messages.
const WINDOWS: &str = "lifetime, hour, day, week, month, month:<day>, year, sec, min, or a \
                       duration such as \"10s\", \"5m\" or \"1h\"";

/// `lifetime`, a calendar word with an optional `:<day>` anchor, `sec` or `min`.
fn parse_window_word(text: &str) -> Result<Window> {
    let lower = text.to_ascii_lowercase();
    let (word, anchor_text) = match lower.split_once(':') {
        Some((word, anchor)) => (word.trim_end(), Some(anchor.trim_start())),
        None => (lower.as_str(), None),
    };

    let period = match word {
        "lifetime" => None,
        "hour" | "hourly" => Some(Period::Hour),
        "day" | "daily" => Some(Period::Day),
        "week" | "weekly" => Some(Period::Week),
        "month" | "monthly" => Some(Period::Month),
        "year" | "yearly" => Some(Period::Year),
        "s" | "sec" | "second" if anchor_text.is_none() => {
            return Ok(Window::Rolling {
                every: Duration::from_secs(1),
            });
        }
        "min" | "minute" if anchor_text.is_none() => {
            return Ok(Window::Rolling {
                every: Duration::from_secs(60),
            });
        }
        "s" | "sec" | "second" | "min" | "minute" => None,
        _ => {
            return Err(Error::invalid(format!(
                "unknown window {}: expected {WINDOWS}",
                quote(text)
            )));
        }
    };

    let anchor = match anchor_text {
        None => None,
        Some(_) if period != Some(Period::Month) => {
            return Err(Error::invalid(format!(
                "window {} has an anchor day, which only month windows take (e.g. \"month:15\")",
                quote(text)
            )));
        }
        Some(day) => match day.parse::<u8>() {
            Ok(number @ 1..=31) if day.bytes().all(|b| b.is_ascii_digit()) => Some(number),
            _ => {
                return Err(Error::invalid(format!(
                    "anchor {} of window {} is not a day of the month: expected 1 to 31",
                    quote(day),
                    quote(text)
                )));
            }
        },
    };
    Ok(match period {
        None => Window::Lifetime,
        Some(period) => Window::Calendar {
            period,
            tz: "UTC".to_owned(),
            anchor,
        },
    })
}

/// `alert=50,80,100` or `alert=none`, the only option.
fn parse_options(text: &str) -> Result<Vec<u8>> {
    let mut alert_at = None;
    for option in text.split(';') {
        let (key, value) = option.split_once('=').ok_or_else(|| {
            Error::invalid(format!(
                "option {} is not understood: expected \"alert=<percent>,<percent>,...\"",
                quote(option.trim())
            ))
        })?;
        if !key.trim().eq_ignore_ascii_case("alert") {
            return Err(Error::invalid(format!(
                "unknown option {}: the only option is \"alert=<percent>,<percent>,...\"",
                quote(key.trim())
            )));
        }
        if alert_at.is_some() {
            return Err(Error::invalid("option \"alert\" is given twice"));
        }
        alert_at = Some(parse_alerts(value.trim())?);
    }
    Ok(alert_at.unwrap_or_else(|| DEFAULT_ALERT_AT.to_vec()))
}

fn parse_alerts(text: &str) -> Result<Vec<u8>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut percents: Vec<u8> = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let digits = item.strip_suffix('%').unwrap_or(item).trim_end();
        let percent = match digits.parse::<u8>() {
            Ok(p @ 1..=100) if digits.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => {
                return Err(Error::invalid(format!(
                    "alert threshold {} is not a percent from 1 to 100: expected e.g. \
                     \"alert=50,80,100\" or \"alert=none\"",
                    quote(item)
                )));
            }
        };
        if let Some(&last) = percents.last()
            && last >= percent
        {
            return Err(Error::invalid(format!(
                "alert threshold {} does not come after {last}: thresholds must rise",
                quote(item)
            )));
        }
        percents.push(percent);
    }
    if percents.len() > MAX_ALERTS {
        return Err(Error::invalid(format!(
            "alert thresholds {} are too many: at most {MAX_ALERTS} per limit",
            quote(text)
        )));
    }
    Ok(percents)
}

/// Quotes a piece of the input for an error message, cut short if it is long.
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::error::ErrorCode;

    fn parse(text: &str) -> Limit {
        match text.parse::<Limit>() {
            Ok(limit) => limit,
            Err(err) => panic!("{text:?} failed: {err}"),
        }
    }

    fn calendar(period: Period, tz: &str, anchor: Option<u8>) -> Window {
        Window::Calendar {
            period,
            tz: tz.to_owned(),
            anchor,
        }
    }

    fn rolling(secs: u64) -> Window {
        Window::Rolling {
            every: Duration::from_secs(secs),
        }
    }

    #[test]
    fn documented_examples() {
        assert_eq!(
            parse("cost=10usd/month"),
            Limit::new(Unit::Cost, 10_000_000, calendar(Period::Month, "UTC", None))
        );
        assert_eq!(
            parse("requests=100/min"),
            Limit::new(Unit::Requests, 100, rolling(60))
        );
        assert_eq!(
            parse("tokens=1M/day@Europe/Berlin"),
            Limit::new(
                Unit::Tokens,
                1_000_000,
                calendar(Period::Day, "Europe/Berlin", None)
            )
        );
        assert_eq!(
            parse("tokens=30B"),
            Limit::new(Unit::Tokens, 30_000_000_000, Window::Lifetime)
        );
        assert_eq!(
            parse("cost=$0.25/month:31@America/New_York;alert=50,90"),
            Limit {
                unit: Unit::Cost,
                amount: 250_000,
                window: calendar(Period::Month, "America/New_York", Some(31)),
                alert_at: vec![50, 90],
            }
        );
    }

    #[test]
    fn units_and_aliases() {
        for (word, unit) in [
            ("requests", Unit::Requests),
            ("req", Unit::Requests),
            ("REQUESTS", Unit::Requests),
            ("tokens", Unit::Tokens),
            ("input_tokens", Unit::InputTokens),
            ("input", Unit::InputTokens),
            ("Output_Tokens", Unit::OutputTokens),
            ("output", Unit::OutputTokens),
        ] {
            assert_eq!(parse(&format!("{word}=5")).unit, unit, "{word}");
        }
        assert_eq!(parse("cost=5u").unit, Unit::Cost);
    }

    #[test]
    fn counts() {
        for (text, amount) in [
            ("0", 0),
            ("100", 100),
            ("1_000", 1_000),
            ("1,000,000", 1_000_000),
            ("12,345", 12_345),
            ("1k", 1_000),
            ("1K", 1_000),
            ("2.5k", 2_500),
            ("2.50k", 2_500),
            ("1M", 1_000_000),
            ("1.5m", 1_500_000),
            ("30B", 30_000_000_000),
            ("30G", 30_000_000_000),
            ("2T", 2_000_000_000_000),
            ("0.001T", 1_000_000_000),
            ("3.0", 3),
            ("18446744073709551615", u64::MAX),
            ("18,446,744,073,709,551,615", u64::MAX),
            (" 7 ", 7),
            ("1 M", 1_000_000),
        ] {
            assert_eq!(parse(&format!("tokens={text}")).amount, amount, "{text}");
        }
    }

    #[test]
    fn money_is_exact_micro_units() {
        for (text, micros) in [
            ("10usd", 10_000_000),
            ("$10", 10_000_000),
            ("$ 10", 10_000_000),
            ("10 USD", 10_000_000),
            ("10eur", 10_000_000),
            ("0.25usd", 250_000),
            ("$0.25", 250_000),
            ("$.5", 500_000),
            ("$0.000001", 1),
            ("$0.0000010", 1),
            ("$1.5k", 1_500_000_000),
            ("2kusd", 2_000_000_000),
            ("$1,000", 1_000_000_000),
            ("1500000u", 1_500_000),
            ("1.5Mu", 1_500_000),
            ("7U", 7),
            ("0u", 0),
            ("18446744073709551615u", u64::MAX),
            ("$18446744073709.551615", u64::MAX),
        ] {
            assert_eq!(parse(&format!("cost={text}")).amount, micros, "{text}");
        }
    }

    #[test]
    fn windows() {
        for (text, window) in [
            ("tokens=1", Window::Lifetime),
            ("tokens=1/lifetime", Window::Lifetime),
            ("tokens=1/LIFETIME", Window::Lifetime),
            ("tokens=1/hour", calendar(Period::Hour, "UTC", None)),
            ("tokens=1/hourly", calendar(Period::Hour, "UTC", None)),
            ("tokens=1/Day", calendar(Period::Day, "UTC", None)),
            ("tokens=1/daily", calendar(Period::Day, "UTC", None)),
            ("tokens=1/week", calendar(Period::Week, "UTC", None)),
            ("tokens=1/weekly", calendar(Period::Week, "UTC", None)),
            ("tokens=1/month", calendar(Period::Month, "UTC", None)),
            (
                "tokens=1/monthly:1",
                calendar(Period::Month, "UTC", Some(1)),
            ),
            (
                "tokens=1/month:15",
                calendar(Period::Month, "UTC", Some(15)),
            ),
            ("tokens=1/year", calendar(Period::Year, "UTC", None)),
            (
                "tokens=1/yearly@Asia/Kolkata",
                calendar(Period::Year, "Asia/Kolkata", None),
            ),
            ("tokens=1/day@UTC", calendar(Period::Day, "UTC", None)),
            ("tokens=1/s", rolling(1)),
            ("tokens=1/sec", rolling(1)),
            ("tokens=1/second", rolling(1)),
            ("tokens=1/min", rolling(60)),
            ("tokens=1/Minute", rolling(60)),
            ("tokens=1/10s", rolling(10)),
            ("tokens=1/5m", rolling(300)),
            ("tokens=1/1h", rolling(3600)),
            ("tokens=1/90s", rolling(90)),
            ("tokens=1/2h30m", rolling(9000)),
            ("tokens=1/24h", rolling(86_400)),
            (
                "tokens=1/250ms",
                Window::Rolling {
                    every: Duration::from_millis(250),
                },
            ),
        ] {
            assert_eq!(parse(text).window, window, "{text}");
        }
        // The distinction the module documentation explains: a duration is a rate, a
        // calendar word a quota.
        assert_ne!(
            parse("requests=100/1h").window,
            parse("requests=100/hour").window
        );
    }

    #[test]
    fn whitespace_and_options() {
        let spaced = parse("  cost = $0.25 / month:31 @ America/New_York ; alert = 50 , 90  ");
        assert_eq!(
            spaced,
            parse("cost=$0.25/month:31@America/New_York;alert=50,90")
        );
        assert_eq!(parse("tokens=1;alert=none").alert_at, Vec::<u8>::new());
        assert_eq!(parse("tokens=1;ALERT=25%,75%").alert_at, vec![25, 75]);
        assert_eq!(parse("tokens=1;alert=100").alert_at, vec![100]);
        assert_eq!(parse("tokens=1").alert_at, DEFAULT_ALERT_AT.to_vec());
    }

    /// Each bad input, and a piece its error message must quote or say.
    const BAD: &[(&str, &str)] = &[
        ("", "empty limit"),
        ("   ", "empty limit"),
        ("tokens", "has no \"=\""),
        ("=5", "unknown unit \"\""),
        ("calls=5", "unknown unit \"calls\""),
        ("tokens=", "missing amount for tokens"),
        ("tokens=-5", "negative amount \"-5\""),
        ("cost=-$5", "negative amount \"-$5\""),
        ("cost=$-5", "negative amount \"$-5\""),
        (
            "tokens=99999999999999999999",
            "\"99999999999999999999\" for tokens is too large",
        ),
        ("tokens=18446744073709551616", "too large"),
        ("tokens=18446744073709552k", "too large"),
        ("cost=18446744073709551616u", "too large"),
        ("cost=$18446744073710", "too large"),
        ("tokens=2.5", "\"2.5\" for tokens is not a whole number"),
        ("tokens=1.0001k", "not a whole number"),
        ("tokens=2,5k", "\"2,5k\" for tokens is not a number"),
        ("tokens=1000,000", "not a number"),
        ("tokens=,100", "not a number"),
        ("tokens=1__000", "not a number"),
        ("tokens=1.", "not a number"),
        ("tokens=.", "not a number"),
        ("tokens=1.2.3", "not a number"),
        ("tokens=1e6", "not a number"),
        ("tokens=+5", "not a number"),
        ("tokens=5x", "not a number"),
        ("tokens=１０", "not a number"),
        ("tokens=10usd", "not a number"),
        (
            "cost=10/day",
            "cost \"10\" has no currency: write \"10usd\" or \"$10\"",
        ),
        ("cost=10k", "has no currency"),
        ("cost=$0.0000001", "more than 6 fraction digits"),
        ("cost=0.1234567usd", "more than 6 fraction digits"),
        ("cost=10dollars", "unknown currency"),
        ("cost=usd", "unknown currency"),
        ("cost=$10usd", "not a number"),
        ("cost=1.5u", "not a whole number"),
        ("cost=10x", "not understood"),
        (
            "requests=100/min@UTC",
            "time zone \"UTC\" applies only to calendar windows",
        ),
        ("requests=100/1h@Europe/Berlin", "not to \"1h\""),
        ("requests=100@UTC", "not to a lifetime limit"),
        ("tokens=1/day:15", "window \"day:15\" has an anchor day"),
        ("tokens=1/min:15", "anchor day"),
        (
            "tokens=1/month:0",
            "anchor \"0\" of window \"month:0\" is not a day of the month",
        ),
        ("tokens=1/month:32", "anchor \"32\""),
        ("tokens=1/month:+5", "anchor \"+5\""),
        ("tokens=1/month:", "anchor \"\""),
        (
            "tokens=1/day@Mars/Olympus",
            "unknown time zone \"Mars/Olympus\"",
        ),
        ("tokens=1/day@", "unknown time zone \"\""),
        ("tokens=1/day@+05:30", "unknown time zone \"+05:30\""),
        ("tokens=1/fortnight", "unknown window \"fortnight\""),
        ("tokens=1/", "missing window"),
        (
            "tokens=1/0s",
            "rolling window \"0s\" is out of range: expected at least 1ms",
        ),
        ("tokens=1/999us", "\"999us\" is out of range"),
        ("tokens=1/9000000000000000s", "at most 2562047788 hours"),
        ("tokens=1/99999999999999999999s", "not a duration"),
        ("tokens=1/1d", "window \"1d\" is not a duration"),
        ("tokens=1/5 parsecs", "not a duration"),
        ("tokens=1;alert=0", "alert threshold \"0\" is not a percent"),
        ("tokens=1;alert=101", "\"101\""),
        ("tokens=1;alert=50,50", "\"50\" does not come after 50"),
        ("tokens=1;alert=90,50", "\"50\" does not come after 90"),
        ("tokens=1;alert=", "alert threshold \"\""),
        (
            "tokens=1;alert=1,2,3,4,5,6,7,8,9",
            "\"1,2,3,4,5,6,7,8,9\" are too many: at most 8",
        ),
        ("tokens=1;alert=50;alert=60", "given twice"),
        ("tokens=1;burst=5", "unknown option \"burst\""),
        ("tokens=1;", "option \"\" is not understood"),
    ];

    #[test]
    fn bad_inputs_are_invalid_arguments_that_say_what_is_wrong() {
        for (text, expected) in BAD {
            let err = match text.parse::<Limit>() {
                Ok(limit) => panic!("{text:?} parsed as {limit:?}"),
                Err(err) => err,
            };
            assert_eq!(err.code(), ErrorCode::InvalidArgument, "{text:?}");
            assert!(err.message().contains(expected), "{text:?} gave {err}");
            assert!(
                err.message().starts_with(|c: char| c.is_ascii_lowercase()),
                "{err}"
            );
        }
    }

    #[test]
    fn long_input_is_quoted_briefly() {
        let long = format!("tokens={}", "9".repeat(10_000));
        let err = long.parse::<Limit>().unwrap_err();
        assert!(err.message().len() < 200, "{err}");
        assert!(err.message().contains("…"));
    }

    #[test]
    fn display_writes_the_shortest_form() {
        for (limit, text) in [
            (
                Limit::new(Unit::Tokens, 30_000_000_000, Window::Lifetime),
                "tokens=30B",
            ),
            (
                Limit::new(Unit::Tokens, 1_500_000, Window::Lifetime),
                "tokens=1500k",
            ),
            (
                Limit::new(Unit::Tokens, 1_234, Window::Lifetime),
                "tokens=1234",
            ),
            (Limit::new(Unit::Tokens, 0, Window::Lifetime), "tokens=0"),
            (
                Limit::new(Unit::Tokens, 5_000_000_000_000, Window::Lifetime),
                "tokens=5T",
            ),
            (
                Limit::new(Unit::Requests, 100, rolling(60)),
                "requests=100/min",
            ),
            (
                Limit::new(Unit::Requests, 100, rolling(1)),
                "requests=100/sec",
            ),
            (
                Limit::new(Unit::Requests, 100, rolling(3600)),
                "requests=100/1h",
            ),
            (
                Limit::new(Unit::Requests, 100, rolling(5400)),
                "requests=100/1h 30m",
            ),
            (
                Limit::new(
                    Unit::InputTokens,
                    1_000_000,
                    calendar(Period::Day, "UTC", None),
                ),
                "input_tokens=1M/day",
            ),
            (
                Limit::new(Unit::Cost, 10_000_000, calendar(Period::Month, "UTC", None)),
                "cost=$10/month",
            ),
            (
                Limit::new(Unit::Cost, 1, Window::Lifetime),
                "cost=$0.000001",
            ),
            (
                Limit::new(Unit::Cost, 1_234_500, Window::Lifetime),
                "cost=$1.2345",
            ),
            (
                Limit::new(Unit::Cost, u64::MAX, Window::Lifetime),
                "cost=$18446744073709.551615",
            ),
            (
                Limit {
                    unit: Unit::Cost,
                    amount: 250_000,
                    window: calendar(Period::Month, "America/New_York", Some(31)),
                    alert_at: vec![50, 90],
                },
                "cost=$0.25/month:31@America/New_York;alert=50,90",
            ),
            (
                Limit {
                    alert_at: Vec::new(),
                    ..Limit::new(Unit::Tokens, 1, Window::Lifetime)
                },
                "tokens=1;alert=none",
            ),
        ] {
            assert_eq!(limit.to_string(), text);
            assert_eq!(parse(text), limit);
        }
    }

    const ZONES: &[&str] = &[
        "UTC",
        "utc",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        "Etc/GMT+5",
        "America/Argentina/Buenos_Aires",
    ];

    fn arb_window() -> impl Strategy<Value = Window> {
        let period = prop::sample::select(vec![
            Period::Hour,
            Period::Day,
            Period::Week,
            Period::Month,
            Period::Year,
        ]);
        let calendar = (period, prop::sample::select(ZONES), 1u8..=31, any::<bool>()).prop_map(
            |(period, tz, day, anchored)| {
                let anchor = (period == Period::Month && anchored).then_some(day);
                Window::Calendar {
                    period,
                    tz: tz.to_owned(),
                    anchor,
                }
            },
        );
        let every = prop_oneof![
            (1u64..=100_000).prop_map(Duration::from_secs),
            (1u64..=10_000_000).prop_map(Duration::from_millis),
            (1_000_000u64..=u64::MAX / 2).prop_map(Duration::from_nanos),
            (0u64..=9_000_000_000_000, 0u32..1_000_000_000)
                .prop_map(|(secs, nanos)| Duration::new(secs, nanos))
                .prop_filter("at least 1ms", |d| *d >= Duration::from_millis(1)),
        ];
        prop_oneof![
            Just(Window::Lifetime),
            calendar,
            every.prop_map(|every| Window::Rolling { every }),
        ]
    }

    fn arb_amount() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            0u64..10_000,
            (0u64..100_000, 0u32..=14).prop_map(|(n, p)| n.saturating_mul(10u64.pow(p))),
        ]
    }

    fn arb_limit() -> impl Strategy<Value = Limit> {
        let alert_at = prop_oneof![
            Just(DEFAULT_ALERT_AT.to_vec()),
            prop::collection::btree_set(1u8..=100, 0..=8).prop_map(|s| s.into_iter().collect()),
        ];
        (
            prop::sample::select(Unit::ALL.to_vec()),
            arb_amount(),
            arb_window(),
            alert_at,
        )
            .prop_map(|(unit, amount, window, alert_at)| Limit {
                unit,
                amount,
                window,
                alert_at,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn display_round_trips(limit in arb_limit()) {
            prop_assert_eq!(limit.validate(), Ok(()));
            let text = limit.to_string();
            prop_assert_eq!(text.parse::<Limit>(), Ok(limit), "{}", text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            if let Ok(limit) = text.parse::<Limit>() {
                prop_assert_eq!(limit.to_string().parse::<Limit>(), Ok(limit));
            }
        }

        #[test]
        fn near_grammar_text_never_panics(
            text in "[a-z_]{0,14}= ?[-$0-9.,_]{0,12}[kMBTu]?(usd|eur)?\
                     (/[0-9a-z:]{0,8})?(@[A-Za-z/_]{0,16})?(;alert=[0-9,%]{0,10})?"
        ) {
            if let Ok(limit) = text.parse::<Limit>() {
                prop_assert_eq!(limit.to_string().parse::<Limit>(), Ok(limit));
            }
        }
    }
}

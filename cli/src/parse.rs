//! Command-line values that clap leaves as text: times, limits, metadata, pairs.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use nanu::Limit;

use crate::failure::{Failure, Outcome};

/// Parses an instant: RFC 3339 (`2026-05-01T12:00:00Z`, `...+02:00`), or a civil date or
/// date-time without an offset, taken as UTC (`2026-05-01`, `2026-05-01 12:00:00.5`).
pub fn time(what: &str, text: &str) -> Outcome<Timestamp> {
    let trimmed = text.trim();
    instant(trimmed).map_err(|problem| match problem {
        TimeProblem::Malformed => Failure::invalid(format!(
            "invalid {what} {trimmed:?}: expected RFC 3339 like 2026-05-01T12:00:00Z, or a \
             date like 2026-05-01 (UTC)"
        )),
        TimeProblem::OutOfRange => {
            Failure::invalid(format!("{what} {trimmed:?} is {}", out_of_range()))
        }
    })
}

/// Why a text is not an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeProblem {
    /// It is not written as a date and time.
    Malformed,
    /// It is a well-written date and time outside the range nanu can represent.
    OutOfRange,
}

/// Reads an instant as [`time`] does, telling a malformed text from one out of range.
pub fn instant(text: &str) -> Result<Timestamp, TimeProblem> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    if let Ok(civil) = text.parse::<jiff::civil::DateTime>()
        && let Ok(at) = civil.to_zoned_datetime(jiff::tz::TimeZone::UTC)
    {
        return Ok(at.timestamp());
    }
    // A text that reads as a date and time yet converts to no instant lies beyond the
    // range of times (a day or so short of the years -9999 and 9999).
    if jiff::fmt::temporal::Pieces::parse(text).is_ok() {
        Err(TimeProblem::OutOfRange)
    } else {
        Err(TimeProblem::Malformed)
    }
}

/// The end of an out-of-range message: `is <this>`.
pub fn out_of_range() -> String {
    format!(
        "out of range: times must lie from {} to {}",
        Timestamp::MIN,
        Timestamp::MAX
    )
}

/// Parses an optional instant.
pub fn time_opt(what: &str, text: Option<&str>) -> Outcome<Option<Timestamp>> {
    text.map(|t| time(what, t)).transpose()
}

/// Parses limits written as `cost=10usd/month`.
pub fn limits(texts: &[String]) -> Outcome<Vec<Limit>> {
    texts
        .iter()
        .map(|text| {
            rolling_window(text)?;
            text.parse::<Limit>()
                .map_err(|e| Failure::invalid(format!("--limit: {}", e.message())))
        })
        .collect()
}

/// Checks a rolling window written as a duration (`/90s`, `/2h30m`) before the core reads it,
/// so that a bad one (`/7d`) gets a plain message rather than the date library's.
fn rolling_window(text: &str) -> Outcome {
    let main = text.split(';').next().unwrap_or_default();
    let Some((_, window)) = main.split('@').next().unwrap_or_default().split_once('/') else {
        return Ok(());
    };
    let window = window.trim();
    if !window.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(());
    }
    match nanu::parse_duration(window) {
        Ok(_) => Ok(()),
        Err(_) => Err(Failure::invalid(format!(
            "--limit {:?}: window {window:?} is not a duration: expected a calendar period \
             (hour, day, week, month, year), or hours, minutes and seconds such as 10s, 5m or \
             2h30m for a rolling window (days are not accepted: write 24h)",
            text.trim()
        ))),
    }
}

/// Refuses a cost limit written in a currency other than the vault's. The core reads any
/// three-letter word as the vault's one currency (a limit stores micro-units, not a
/// currency), so `cost=10eur/month` in a usd vault would silently mean ten dollars.
/// `$` and micro-units (`1500000u`) name no currency and are always taken as the vault's.
pub fn limits_in_currency(texts: &[String], currency: &str) -> Outcome {
    for text in texts {
        if let Some(word) = currency_word(text)
            && !word.eq_ignore_ascii_case(currency)
        {
            return Err(Failure::invalid(format!(
                "--limit {:?}: the cost is in {}, but this vault counts money in {}",
                text.trim(),
                word.to_ascii_lowercase(),
                currency.to_ascii_lowercase()
            )));
        }
    }
    Ok(())
}

/// The currency word of a cost limit's amount (`eur` in `cost=1.5keur/day`), read as the
/// core's limit syntax reads it: the last three letters of the amount.
fn currency_word(text: &str) -> Option<&str> {
    let main = text.split(';').next()?;
    let (unit, rest) = main.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("cost") {
        return None;
    }
    let amount = rest.split(['@', '/']).next()?.trim();
    if amount.starts_with('$') {
        return None;
    }
    let letters = amount.len()
        - amount
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len();
    (letters >= 3).then(|| &amount[amount.len() - 3..])
}

/// Parses a duration such as `10m`, `1h`, `0s`. The core's message quotes its date library's
/// own advice (which names Rust types), so the CLI says what it expects in its own words.
pub fn duration(what: &str, text: &str) -> Outcome<Duration> {
    nanu::parse_duration(text).map_err(|_| {
        if text.trim().starts_with('-') {
            Failure::invalid(format!(
                "{what} {text:?} is negative: a duration is 0s or more"
            ))
        } else {
            Failure::invalid(format!(
                "{what} {text:?} is not a duration: {DURATION_FORMS}"
            ))
        }
    })
}

/// What a duration looks like, for error messages.
const DURATION_FORMS: &str = "expected hours, minutes and seconds such as 90s, 10m or 1h30m \
                              (days are not accepted, as a calendar day can be 23 or 25 hours: \
                              write 24h)";

/// Splits `name=value` pairs.
pub fn pairs(what: &str, texts: &[String]) -> Outcome<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for text in texts {
        let (name, value) = text
            .split_once('=')
            .filter(|(name, _)| !name.trim().is_empty())
            .ok_or_else(|| Failure::invalid(format!("{what} {text:?}: expected NAME=VALUE")))?;
        out.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(out)
}

/// Builds a metadata object from `--meta-json` (first) and `--meta k=v` pairs (string values).
pub fn metadata(
    pairs_text: &[String],
    json: Option<&str>,
) -> Outcome<serde_json::Map<String, serde_json::Value>> {
    let mut map = match json {
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err(Failure::invalid("--meta-json must be a json object")),
            Err(e) => return Err(Failure::invalid(format!("--meta-json: {e}"))),
        },
        None => serde_json::Map::new(),
    };
    for (name, value) in pairs("--meta", pairs_text)? {
        map.insert(name, serde_json::Value::String(value));
    }
    Ok(map)
}

/// Parses an IP address given on the command line.
pub fn ip(text: &str) -> Outcome<std::net::IpAddr> {
    text.trim()
        .parse()
        .map_err(|_| Failure::invalid(format!("--ip {text:?} is not an ip address")))
}

/// Parses money (`0.05`, `$0.05`) exactly into micro-units.
pub fn money(what: &str, text: &str) -> Outcome<u64> {
    nanu::parse_money(text).map_err(|e| Failure::invalid(format!("{what}: {}", e.message())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_accepted_form() {
        let at = time("t", "2023-11-16T18:15:46Z").unwrap();
        assert_eq!(at.to_string(), "2023-11-16T18:15:46Z");
        let civil = time("t", "2023-11-16 18:15:46.6805900").unwrap();
        assert_eq!(civil.as_microsecond() % 1_000_000, 680_590);
        assert_eq!(
            time("t", "2023-11-16").unwrap().to_string(),
            "2023-11-16T00:00:00Z"
        );
        assert_eq!(
            time("t", "2023-11-16T20:00:00+02:00").unwrap().to_string(),
            "2023-11-16T18:00:00Z"
        );
        assert!(time("t", "yesterday").is_err());
        assert!(time("t", "2023-13-01").is_err());
    }

    #[test]
    fn pairs_need_a_name() {
        assert!(pairs("--alias", &["=x".to_owned()]).is_err());
        assert!(pairs("--alias", &["x".to_owned()]).is_err());
        let p = pairs("--alias", &["fast=gpt-4o-mini".to_owned()]).unwrap();
        assert_eq!(p["fast"], "gpt-4o-mini");
    }

    #[test]
    fn metadata_merges_pairs_over_json() {
        let m = metadata(&["tier=gold".to_owned()], Some(r#"{"tier":1,"n":2}"#)).unwrap();
        assert_eq!(m["tier"], "gold");
        assert_eq!(m["n"], 2);
        assert!(metadata(&[], Some("[1]")).is_err());
    }
}

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
    if let Ok(at) = trimmed.parse::<Timestamp>() {
        return Ok(at);
    }
    if let Ok(civil) = trimmed.parse::<jiff::civil::DateTime>()
        && let Ok(at) = civil.to_zoned_datetime(jiff::tz::TimeZone::UTC)
    {
        return Ok(at.timestamp());
    }
    Err(Failure::invalid(format!(
        "invalid {what} {trimmed:?}: expected RFC 3339 like 2026-05-01T12:00:00Z, or a date \
         like 2026-05-01 (UTC)"
    )))
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
            text.parse::<Limit>()
                .map_err(|e| Failure::invalid(format!("--limit: {}", e.message())))
        })
        .collect()
}

/// Parses a duration such as `10m`, `1h`, `0s`.
pub fn duration(what: &str, text: &str) -> Outcome<Duration> {
    nanu::parse_duration(text).map_err(|e| Failure::invalid(format!("{what}: {}", e.message())))
}

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

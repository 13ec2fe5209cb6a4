//! Keys as the vault's callers see them: what to mint, what to change, what is stored.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::policy::Limit;

/// The lifecycle state of a key. `Expired` is derived from `expires_at`, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Verifies, subject to its policy.
    Active,
    /// Temporarily refused; can be enabled again.
    Disabled,
    /// Permanently refused.
    Revoked,
    /// Past its `expires_at`.
    Expired,
}

impl Status {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to mint. Only `owner` is required; the JSON form uses these field names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct KeySpec {
    /// The user, team or account the key belongs to.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub owner: String,
    /// A human label.
    pub name: String,
    /// `live`, `test` or another short lowercase word; `live` when empty.
    pub env: String,
    /// Scopes the key holds; a verify that asks for a scope not listed is denied.
    pub scopes: Vec<String>,
    /// Allowed models (`*` as a whole trailing segment: `openai/*`). `None` allows every model;
    /// an empty list allows none.
    pub models: Option<Vec<String>>,
    /// Model aliases resolved before the model check: `{"fast": "openai/gpt-4o-mini"}`.
    pub aliases: BTreeMap<String, String>,
    /// Allowed client networks, CIDR or single addresses, v4 and v6. `None` allows every
    /// address; an empty list allows none.
    pub ips: Option<Vec<String>>,
    /// When the key expires; `None` never.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// Alternatively, how long after mint the key expires (`"12h"`, `"30 days"`, `"1 month"`).
    pub ttl: Option<String>,
    /// The key's own limits.
    pub limits: Vec<Limit>,
    /// `rotate_due` rotates the key when its secret is this old (`"90 days"`).
    pub rotate_every: Option<String>,
    /// Free-form JSON object stored with the key.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl KeySpec {
    /// A spec for `owner` with everything else at its default.
    pub fn new(owner: impl Into<String>) -> KeySpec {
        KeySpec {
            owner: owner.into(),
            ..KeySpec::default()
        }
    }
}

/// A change to a key. Absent fields stay as they are; in JSON, `null` clears an optional
/// field (models, ips, expires_at, rotate_every).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct KeyPatch {
    /// New label.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// New model allowlist; `Some(None)` allows every model.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    #[serde(
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub models: Option<Option<Vec<String>>>,
    /// New aliases.
    pub aliases: Option<BTreeMap<String, String>>,
    /// New IP allowlist; `Some(None)` allows every address.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    #[serde(
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ips: Option<Option<Vec<String>>>,
    /// New expiry; `Some(None)` removes it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<Option<Timestamp>>,
    /// Disable (`true`) or enable (`false`). A revoked key cannot be enabled.
    pub disabled: Option<bool>,
    /// Replaces the metadata object.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Replaces the key's limits. Usage already counted is kept for limits whose unit and
    /// window are unchanged.
    pub limits: Option<Vec<Limit>>,
    /// New rotation period; `Some(None)` removes it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub rotate_every: Option<Option<String>>,
}

fn double_option<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A key as stored, without its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    /// Public, stable id (`key_...`).
    pub key_id: String,
    /// The owner.
    pub owner: String,
    /// The label.
    pub name: String,
    /// The environment fixed at mint.
    pub env: String,
    /// Current status, with expiry derived at the time of the call.
    pub status: Status,
    /// When minted.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When last changed by an administrative call.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    /// When the current secret was issued (mint or last rotation).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub rotated_at: Timestamp,
    /// Until when the previous secret still works, if a rotation grace period is running.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub grace_until: Option<Timestamp>,
    /// Expiry instant.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Model allowlist.
    pub models: Option<Vec<String>>,
    /// Model aliases.
    pub aliases: BTreeMap<String, String>,
    /// IP allowlist as given.
    pub ips: Option<Vec<String>>,
    /// The key's own limits.
    pub limits: Vec<Limit>,
    /// Rotation period, in the friendly form.
    pub rotate_every: Option<String>,
    /// Metadata object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Which keys `list` returns, and how many.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyFilter {
    /// Only this owner's keys.
    pub owner: Option<String>,
    /// Only keys of this environment.
    pub env: Option<String>,
    /// Only keys in this status (expiry derived at the time of the call).
    pub status: Option<Status>,
    /// Paging cursor: only keys whose id sorts after this one.
    pub after: Option<String>,
    /// At most this many keys (default 100, at most 10,000).
    pub limit: Option<usize>,
}

/// One page of `list`, in key id order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyPage {
    /// The keys.
    pub keys: Vec<KeyInfo>,
    /// Pass as `after` to read the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A freshly minted or rotated key: the only time its secret is seen.
#[derive(Debug)]
pub struct Minted {
    /// The public key id.
    pub key_id: String,
    /// The secret to hand to the user; zeroed on drop, redacted in `Debug`.
    pub secret: crate::secret::Secret,
}

pub(crate) const MAX_NAME_LEN: usize = 200;
pub(crate) const MAX_OWNER_LEN: usize = 200;
pub(crate) const MAX_LIST_LEN: usize = 1000;

/// Checks an owner name: 1 to 200 bytes, no control characters.
pub(crate) fn validate_owner(owner: &str) -> Result<()> {
    if owner.is_empty() || owner.len() > MAX_OWNER_LEN {
        return Err(Error::invalid(format!(
            "owner must be 1 to {MAX_OWNER_LEN} bytes"
        )));
    }
    if owner.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "owner {owner:?} contains a control character"
        )));
    }
    Ok(())
}

/// Checks a short free-text field (name, scope, model, alias, endpoint, request id).
pub(crate) fn validate_text(what: &str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(Error::invalid(format!("{what} is longer than {max} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} {text:?} contains a control character"
        )));
    }
    Ok(())
}

/// Parses an IP allowlist: CIDR (`10.0.0.0/8`, `2001:db8::/32`) or single addresses. A range
/// written in IPv4-mapped form (`::ffff:10.0.0.0/104`) is kept as the IPv4 range it names,
/// since verify compares an IPv4-mapped client as the IPv4 address it carries.
pub(crate) fn parse_ips(ips: &[String]) -> Result<Vec<IpNet>> {
    if ips.len() > MAX_LIST_LEN {
        return Err(Error::invalid(format!(
            "at most {MAX_LIST_LEN} ip ranges per key"
        )));
    }
    ips.iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|net| unmap(net.trunc()))
                .map_err(|_| Error::invalid(format!("invalid ip range {text:?}")))
        })
        .collect()
}

/// An IPv4-mapped IPv6 range (`::ffff:a.b.c.d/96+n`) as the IPv4 range `a.b.c.d/n`.
fn unmap(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        other => other,
    }
}

/// Checks a model allowlist entry: `*` only as a whole trailing segment, no empty, `.` or `..`
/// segments.
pub(crate) fn validate_model_pattern(pattern: &str) -> Result<()> {
    validate_text("model", pattern, 200)?;
    let segments: Vec<&str> = pattern.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let bad = segment.is_empty()
            || *segment == "."
            || *segment == ".."
            || (segment.contains('*') && !(last && *segment == "*" && i > 0));
        if bad {
            return Err(Error::invalid(format!(
                "invalid model pattern {pattern:?}: `*` is allowed only as a whole last segment \
                 after a prefix, and empty, `.` and `..` segments are not allowed"
            )));
        }
    }
    Ok(())
}

/// Whether `model` (already alias-resolved) is allowed by `pattern`.
pub(crate) fn model_matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix("/*") {
        Some(prefix) => model
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty()),
        None => pattern == model,
    }
}

/// Whether a requested model name is acceptable at all: no empty, `.` or `..` segments.
pub(crate) fn model_is_well_formed(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= 200
        && model
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && !model.chars().any(char::is_control)
}

/// Adds a span (possibly in calendar units) to an instant, in UTC.
pub(crate) fn add_span(at: Timestamp, span: jiff::Span) -> Result<Timestamp> {
    at.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .checked_add(span)
        .map(|z| z.timestamp())
        .map_err(|e| Error::invalid(format!("time out of range: {e}")))
}

/// Parses a span written as `12h`, `30 days`, `1 month` or ISO 8601 (`P1M`).
pub(crate) fn parse_span(what: &str, text: &str) -> Result<jiff::Span> {
    let span: jiff::Span = text
        .trim()
        .parse()
        .map_err(|e| Error::invalid(format!("invalid {what} {text:?}: {e}")))?;
    if span.is_negative() || span.is_zero() {
        return Err(Error::invalid(format!("{what} {text:?} must be positive")));
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_patterns() {
        assert!(model_matches("bedrock/*", "bedrock/claude"));
        assert!(model_matches("bedrock/*", "bedrock/claude/v2"));
        assert!(!model_matches("bedrock/*", "bedrockz/claude"));
        assert!(!model_matches("bedrock/*", "bedrock"));
        assert!(!model_matches("bedrock/*", "bedrock/"));
        assert!(model_matches("gpt-4o", "gpt-4o"));
        assert!(!model_matches("gpt-4o", "GPT-4o"));
        assert!(validate_model_pattern("bedrock/*").is_ok());
        for bad in ["*", "a*", "a/*/b", "a/./b", "a/../b", "", "a//b", "a/b*"] {
            assert!(validate_model_pattern(bad).is_err(), "{bad}");
        }
        assert!(!model_is_well_formed("bedrock/../x"));
        assert!(!model_is_well_formed("bedrock/./x"));
        assert!(!model_is_well_formed("bedrock/"));
    }

    #[test]
    fn ips_parse_v4_v6_and_single_addresses() {
        let nets =
            parse_ips(&["10.1.2.3/8".into(), "2001:db8::/32".into(), "::1".into()]).expect("valid");
        assert!(nets[0].contains(&"10.200.0.1".parse::<std::net::IpAddr>().unwrap()));
        assert!(nets[1].contains(&"2001:db8::5".parse::<std::net::IpAddr>().unwrap()));
        assert!(nets[2].contains(&"::1".parse::<std::net::IpAddr>().unwrap()));
        assert!(parse_ips(&["10.0.0.0/33".into()]).is_err());
        assert!(parse_ips(&["example.com".into()]).is_err());
    }

    #[test]
    fn a_month_after_january_31_is_the_end_of_february() {
        let at: Timestamp = "2025-01-31T10:00:00Z".parse().unwrap();
        let end = add_span(at, parse_span("ttl", "1 month").unwrap()).unwrap();
        assert_eq!(end, "2025-02-28T10:00:00Z".parse::<Timestamp>().unwrap());
        let end = add_span(at, parse_span("ttl", "12h").unwrap()).unwrap();
        assert_eq!(end, "2025-01-31T22:00:00Z".parse::<Timestamp>().unwrap());
    }
}

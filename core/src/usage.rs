//! Charges, the usage log and usage reports.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::verdict::LimitStatus;
use crate::window::{self, Bucket};

/// What one request really used, as given to `charge`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Usage {
    /// The model used (an alias of the key is resolved).
    pub model: Option<String>,
    /// The endpoint or route, for reports.
    pub endpoint: Option<String>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in micro-units; computed from the price table when `None`.
    pub cost: Option<u64>,
    /// Makes the charge idempotent: the same id again returns the first outcome.
    pub request_id: Option<String>,
    /// The hold placed by the request's verify, settled by this charge.
    pub hold_id: Option<u64>,
    /// When the usage happened; the vault's clock when `None`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub at: Option<Timestamp>,
}

/// What a charge did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChargeOutcome {
    /// The key charged.
    pub key_id: String,
    /// The cost recorded, in micro-units.
    pub cost: u64,
    /// Whether the cost came from the price table or the caller (`false` when the model had
    /// no price and no cost was given: the cost is then recorded as zero).
    pub priced: bool,
    /// Limits now at or past their amount; the next verify they govern is denied.
    pub exceeded: Vec<LimitStatus>,
    /// This request id was charged before: this is the first outcome, nothing was recorded.
    pub replayed: bool,
}

/// One row of the usage log: a charge, or a denied verify of a known key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// When.
    pub at: Timestamp,
    /// The key.
    pub key_id: String,
    /// The key's owner.
    pub owner: String,
    /// The key's environment.
    pub env: String,
    /// The model, if known.
    pub model: Option<String>,
    /// The endpoint, if given.
    pub endpoint: Option<String>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in micro-units.
    pub cost: u64,
    /// The charge's request id.
    pub request_id: Option<String>,
    /// `charged`, or the code of the denied verify.
    pub outcome: String,
}

/// A dimension to filter or group usage by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// The key id.
    Key,
    /// The owner.
    Owner,
    /// The environment.
    Env,
    /// The model.
    Model,
    /// The endpoint.
    Endpoint,
    /// The outcome (`charged` or a denial code).
    Outcome,
}

impl std::str::FromStr for Dim {
    type Err = Error;

    fn from_str(s: &str) -> Result<Dim> {
        Ok(match s {
            "key" | "key_id" => Dim::Key,
            "owner" => Dim::Owner,
            "env" => Dim::Env,
            "model" => Dim::Model,
            "endpoint" => Dim::Endpoint,
            "outcome" => Dim::Outcome,
            _ => return Err(Error::invalid(format!("unknown dimension {s:?}"))),
        })
    }
}

/// A usage report request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageQuery {
    /// Records at or after this instant.
    pub from: Option<Timestamp>,
    /// Records before this instant.
    pub to: Option<Timestamp>,
    /// Only this key.
    pub key_id: Option<String>,
    /// Only this owner.
    pub owner: Option<String>,
    /// Only this environment.
    pub env: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// Group rows by these dimensions (in this order).
    pub group_by: Vec<Dim>,
    /// Bucket rows by time.
    pub bucket: Option<Bucket>,
    /// IANA zone for buckets (default UTC).
    pub tz: Option<String>,
}

/// One row of a usage report. Sums are exact (saturating at `u64::MAX`, which a real ledger
/// does not reach).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRow {
    /// The bucket's start, when bucketed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub bucket: Option<Timestamp>,
    /// Group values, by dimension name (`key`, `owner`, ...); a missing model or endpoint is
    /// the empty string.
    pub group: BTreeMap<String, String>,
    /// Charges.
    pub requests: u64,
    /// Denied verifies of known keys (they carry no tokens or cost).
    pub denied: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input plus output tokens.
    pub tokens: u64,
    /// Cost in micro-units.
    pub cost: u64,
}

impl UsageQuery {
    pub(crate) fn validate(&self) -> Result<Option<jiff::tz::TimeZone>> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(Error::invalid("usage query: from is after to"));
        }
        let mut seen = Vec::new();
        for dim in &self.group_by {
            if seen.contains(dim) {
                let name = format!("{dim:?}").to_lowercase();
                return Err(Error::invalid(format!(
                    "usage query: {name:?} is grouped by twice"
                )));
            }
            seen.push(*dim);
        }
        let tz = self.tz.as_deref().unwrap_or("UTC");
        let zone = jiff::tz::TimeZone::get(tz)
            .map_err(|_| Error::invalid(format!("unknown time zone {tz:?}")))?;
        Ok(self.bucket.map(|_| zone))
    }

    pub(crate) fn matches(&self, record: &UsageRecord) -> bool {
        fn eq(want: &Option<String>, have: &str) -> bool {
            want.as_deref().is_none_or(|w| w == have)
        }
        fn eq_opt(want: &Option<String>, have: &Option<String>) -> bool {
            want.as_deref().is_none_or(|w| have.as_deref() == Some(w))
        }
        eq(&self.key_id, &record.key_id)
            && eq(&self.owner, &record.owner)
            && eq(&self.env, &record.env)
            && eq_opt(&self.model, &record.model)
            && eq_opt(&self.endpoint, &record.endpoint)
    }
}

/// The outcome of a usage record written by a charge.
pub const CHARGED: &str = "charged";

/// Accumulates usage records into report rows.
#[derive(Debug)]
pub(crate) struct Report<'q> {
    query: &'q UsageQuery,
    zone: Option<jiff::tz::TimeZone>,
    rows: BTreeMap<(Option<i64>, Vec<String>), UsageRow>,
}

impl<'q> Report<'q> {
    pub(crate) fn new(query: &'q UsageQuery) -> Result<Report<'q>> {
        let zone = query.validate()?;
        Ok(Report {
            query,
            zone,
            rows: BTreeMap::new(),
        })
    }

    pub(crate) fn add(&mut self, at_us: i64, record: &UsageRecord) -> Result<()> {
        if !self.query.matches(record) {
            return Ok(());
        }
        let denied = record.outcome != CHARGED;
        let bucket = match (&self.zone, self.query.bucket) {
            (Some(zone), Some(bucket)) => Some(window::bucket_start(at_us, bucket, zone)?),
            _ => None,
        };
        let group: Vec<String> = self
            .query
            .group_by
            .iter()
            .map(|dim| match dim {
                Dim::Key => record.key_id.clone(),
                Dim::Owner => record.owner.clone(),
                Dim::Env => record.env.clone(),
                Dim::Model => record.model.clone().unwrap_or_default(),
                Dim::Endpoint => record.endpoint.clone().unwrap_or_default(),
                Dim::Outcome => record.outcome.clone(),
            })
            .collect();
        let row = self.rows.entry((bucket, group)).or_default();
        if denied {
            row.denied = row.denied.saturating_add(1);
        } else {
            row.requests = row.requests.saturating_add(1);
        }
        row.input_tokens = row.input_tokens.saturating_add(record.input_tokens);
        row.output_tokens = row.output_tokens.saturating_add(record.output_tokens);
        row.tokens = row
            .tokens
            .saturating_add(record.input_tokens.saturating_add(record.output_tokens));
        row.cost = row.cost.saturating_add(record.cost);
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<UsageRow> {
        let dims = &self.query.group_by;
        self.rows
            .into_iter()
            .map(|((bucket, group), mut row)| {
                row.bucket = bucket.and_then(|us| Timestamp::from_microsecond(us).ok());
                row.group = dims
                    .iter()
                    .map(|d| dim_name(*d).to_owned())
                    .zip(group)
                    .collect();
                row
            })
            .collect()
    }
}

fn dim_name(dim: Dim) -> &'static str {
    match dim {
        Dim::Key => "key",
        Dim::Owner => "owner",
        Dim::Env => "env",
        Dim::Model => "model",
        Dim::Endpoint => "endpoint",
        Dim::Outcome => "outcome",
    }
}

//! Events: thresholds crossed, limits exhausted, keys expiring, rotated and revoked.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::verdict::LimitStatus;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A limit's usage crossed one of its `alert_at` percents (once per percent per window).
    Threshold,
    /// A limit's usage reached its amount (once per window).
    Exhausted,
    /// A key expires within the configured lead time (once per key).
    Expiring,
    /// A key passed its expiry (once per key).
    Expired,
    /// A key was rotated.
    Rotated,
    /// A key was revoked.
    Revoked,
    /// A charge named a model with no price and gave no cost.
    Unpriced,
}

impl EventKind {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Threshold => "threshold",
            EventKind::Exhausted => "exhausted",
            EventKind::Expiring => "expiring",
            EventKind::Expired => "expired",
            EventKind::Rotated => "rotated",
            EventKind::Revoked => "revoked",
            EventKind::Unpriced => "unpriced",
        }
    }
}

/// One event, ordered by `seq` (starting at 1, without gaps).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Sequence number.
    pub seq: u64,
    /// When it happened (the time of the call that caused it).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The key concerned.
    pub key_id: Option<String>,
    /// The owner concerned.
    pub owner: Option<String>,
    /// For threshold events, the percent crossed.
    pub percent: Option<u8>,
    /// For limit events, the limit's state right after the crossing.
    pub limit: Option<LimitStatus>,
    /// For unpriced events, the model.
    pub model: Option<String>,
}

//! What verify is asked and what it answers.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::policy::{Limit, Unit};

/// The stable reason of a verdict, the same name in every language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Allowed.
    Valid,
    /// Not shaped like a key, or its checksum is wrong.
    Malformed,
    /// Well formed, but no key has this secret (or a rotated-out secret past its grace).
    NotFound,
    /// The key was revoked.
    Revoked,
    /// The key is disabled.
    Disabled,
    /// The key is past its expiry.
    Expired,
    /// The request required another environment.
    EnvMismatch,
    /// The client address is outside the key's allowlist.
    IpDenied,
    /// The key lacks the requested scope.
    ScopeDenied,
    /// The key may not use the requested model.
    ModelDenied,
    /// The key has a cost limit and the model has no price.
    ModelUnpriced,
    /// A request or token limit (lifetime or calendar window) is used up.
    UsageExceeded,
    /// A cost limit is used up.
    BudgetExceeded,
    /// A rolling (rate) limit is used up for now.
    RateLimited,
}

impl Code {
    /// Every code, in the order of their numbers in the C ABI.
    pub const ALL: [Code; 14] = [
        Code::Valid,
        Code::Malformed,
        Code::NotFound,
        Code::Revoked,
        Code::Disabled,
        Code::Expired,
        Code::EnvMismatch,
        Code::IpDenied,
        Code::ScopeDenied,
        Code::ModelDenied,
        Code::ModelUnpriced,
        Code::UsageExceeded,
        Code::BudgetExceeded,
        Code::RateLimited,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Valid => "valid",
            Code::Malformed => "malformed",
            Code::NotFound => "not_found",
            Code::Revoked => "revoked",
            Code::Disabled => "disabled",
            Code::Expired => "expired",
            Code::EnvMismatch => "env_mismatch",
            Code::IpDenied => "ip_denied",
            Code::ScopeDenied => "scope_denied",
            Code::ModelDenied => "model_denied",
            Code::ModelUnpriced => "model_unpriced",
            Code::UsageExceeded => "usage_exceeded",
            Code::BudgetExceeded => "budget_exceeded",
            Code::RateLimited => "rate_limited",
        }
    }

    /// The HTTP status a gateway would answer with: 200, 401, 403 or 429.
    pub fn http_status(self) -> u16 {
        match self {
            Code::Valid => 200,
            Code::Malformed | Code::NotFound | Code::Revoked | Code::Expired => 401,
            Code::Disabled
            | Code::EnvMismatch
            | Code::IpDenied
            | Code::ScopeDenied
            | Code::ModelDenied
            | Code::ModelUnpriced => 403,
            Code::UsageExceeded | Code::BudgetExceeded | Code::RateLimited => 429,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Code {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Code, Self::Err> {
        Code::ALL
            .into_iter()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| crate::error::Error::invalid(format!("unknown code {s:?}")))
    }
}

/// Amounts a verify reserves until the request's charge settles them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct HoldAmounts {
    /// Estimated input tokens.
    pub input_tokens: u64,
    /// Estimated output tokens.
    pub output_tokens: u64,
    /// Estimated cost in micro-units.
    pub cost: u64,
}

impl HoldAmounts {
    /// Whether nothing is held.
    pub fn is_zero(&self) -> bool {
        self.input_tokens == 0 && self.output_tokens == 0 && self.cost == 0
    }
}

/// What a verify checks the key against. Every field is optional.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyRequest<'a> {
    /// The client address, checked against the key's IP allowlist.
    pub ip: Option<IpAddr>,
    /// A scope the key must hold.
    pub scope: Option<&'a str>,
    /// The model the request uses (an alias is resolved first).
    pub model: Option<&'a str>,
    /// The environment the key must belong to.
    pub env: Option<&'a str>,
    /// Amounts to reserve until the charge.
    pub hold: HoldAmounts,
    /// The time of the request; the vault's clock when `None`.
    pub at: Option<Timestamp>,
}

/// Whether a limit belongs to the key itself or to its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The key's own limit.
    Key,
    /// A limit of the key's owner, shared by all the owner's keys.
    Owner,
}

/// The state of one limit at a moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitStatus {
    /// Key or owner.
    pub level: Level,
    /// Position of the limit in the key's or owner's list.
    pub index: usize,
    /// The limit.
    #[cfg_attr(feature = "openapi", schema(value_type = Limit))]
    pub limit: Arc<Limit>,
    /// Used in the current window (for rolling windows: the bucket's level, rounded up).
    pub used: u64,
    /// Reserved by outstanding holds.
    pub held: u64,
    /// `amount - used - held`, never below zero.
    pub remaining: u64,
    /// When the current window ends (calendar), the bucket is full again (rolling), or `None`
    /// (lifetime).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub resets_at: Option<Timestamp>,
}

/// The least remaining per unit over the key's and the owner's limits, with the breakdown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Remaining {
    /// Requests left, if any limit counts requests.
    pub requests: Option<u64>,
    /// Tokens left.
    pub tokens: Option<u64>,
    /// Input tokens left.
    pub input_tokens: Option<u64>,
    /// Output tokens left.
    pub output_tokens: Option<u64>,
    /// Money left, in micro-units.
    pub cost: Option<u64>,
    /// Every limit of the key and its owner.
    pub limits: Vec<LimitStatus>,
}

impl Remaining {
    /// The least remaining for `unit`, if any limit counts it.
    pub fn get(&self, unit: Unit) -> Option<u64> {
        match unit {
            Unit::Requests => self.requests,
            Unit::Tokens => self.tokens,
            Unit::InputTokens => self.input_tokens,
            Unit::OutputTokens => self.output_tokens,
            Unit::Cost => self.cost,
        }
    }

    pub(crate) fn add(&mut self, status: LimitStatus) {
        self.lower(&status);
        self.limits.push(status);
    }

    /// Lowers the least remaining of the status's unit to the status's remaining.
    pub(crate) fn lower(&mut self, status: &LimitStatus) {
        let slot = match status.limit.unit {
            Unit::Requests => &mut self.requests,
            Unit::Tokens => &mut self.tokens,
            Unit::InputTokens => &mut self.input_tokens,
            Unit::OutputTokens => &mut self.output_tokens,
            Unit::Cost => &mut self.cost,
        };
        *slot = Some(slot.map_or(status.remaining, |r| r.min(status.remaining)));
    }
}

/// The answer of a verify. A denial is a verdict, never an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The stable reason.
    pub code: Code,
    /// The key, once the secret was found.
    pub key_id: Option<Arc<str>>,
    /// The key's owner.
    pub owner: Option<Arc<str>>,
    /// The key's stored environment.
    pub env: Option<Arc<str>>,
    /// The model after alias resolution.
    pub model: Option<String>,
    /// The limit that denied the request.
    pub denied_by: Option<LimitStatus>,
    /// How long to wait before the same request could pass (rate and window limits).
    pub retry_after: Option<Duration>,
    /// When the denying limit resets.
    pub resets_at: Option<Timestamp>,
    /// What is left after this request, when the key was found.
    pub remaining: Option<Remaining>,
    /// The hold placed by this verify, to pass to `charge` or `release`.
    pub hold_id: Option<u64>,
    /// The secret is a previous one still inside its rotation grace period.
    pub grace: bool,
}

impl Verdict {
    pub(crate) fn denied(code: Code) -> Verdict {
        Verdict {
            allowed: false,
            code,
            key_id: None,
            owner: None,
            env: None,
            model: None,
            denied_by: None,
            retry_after: None,
            resets_at: None,
            remaining: None,
            hold_id: None,
            grace: false,
        }
    }
}

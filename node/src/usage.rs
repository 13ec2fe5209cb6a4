//! Charges, usage reports and usage records.

use std::collections::BTreeMap;

use napi_derive::napi;

use crate::arg::Arg;
use crate::error::Result;
use crate::shape::{Fields, js_object};
use crate::value::{U64, millis};
use crate::verdict::LimitStatus;

/// Reads what a request used: `{ model, endpoint, inputTokens, outputTokens, cost, requestId,
/// holdId, at }` (an object, every field optional). Read field by field rather than through
/// JSON, since it is on the path of every request.
pub fn parse_usage(arg: Arg<'_>) -> Result<nanu::Usage> {
    static FIELDS: Fields = Fields::new(&[
        "model",
        "endpoint",
        "inputTokens",
        "outputTokens",
        "cost",
        "requestId",
        "holdId",
        "at",
    ]);
    let mut usage = nanu::Usage::default();
    let [
        model,
        endpoint,
        input,
        output,
        cost,
        request_id,
        hold_id,
        at,
    ] = arg.fields_of(&FIELDS, "usage")?;
    let text = |value: Option<Arg<'_>>, what: &str| -> Result<Option<String>> {
        Ok(value.map(|v| v.opt_string(what)).transpose()?.flatten())
    };
    let number = |value: Option<Arg<'_>>, what: &str| -> Result<Option<u64>> {
        Ok(value.map(|v| v.opt_u64(what)).transpose()?.flatten())
    };
    usage.model = text(model, "usage.model")?;
    usage.endpoint = text(endpoint, "usage.endpoint")?;
    usage.input_tokens = number(input, "usage.inputTokens")?.unwrap_or(0);
    usage.output_tokens = number(output, "usage.outputTokens")?.unwrap_or(0);
    usage.cost = number(cost, "usage.cost")?;
    usage.request_id = text(request_id, "usage.requestId")?;
    usage.hold_id = number(hold_id, "usage.holdId")?;
    usage.at = at.map(|v| v.opt_time("usage.at")).transpose()?.flatten();
    Ok(usage)
}

/// What a charge did.
#[derive(Debug)]
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct ChargeOutcome {
    /// The key charged.
    pub key_id: String,
    /// The cost recorded, in micro-units.
    #[napi(ts_type = "number | bigint")]
    pub cost: U64,
    /// Whether the cost came from the price table or the caller (`false` when the model had
    /// no price and no cost was given: the cost is then recorded as zero).
    pub priced: bool,
    /// Limits now at or past their amount; the next verify they govern is denied.
    pub exceeded: Vec<LimitStatus>,
    /// This request id was charged before: this is the first outcome, nothing was recorded.
    pub replayed: bool,
}

js_object!(ChargeOutcome {
    key_id,
    cost,
    priced,
    exceeded,
    replayed
});

impl From<nanu::ChargeOutcome> for ChargeOutcome {
    fn from(o: nanu::ChargeOutcome) -> ChargeOutcome {
        ChargeOutcome {
            key_id: o.key_id,
            cost: U64(o.cost),
            priced: o.priced,
            exceeded: o.exceeded.into_iter().map(LimitStatus::from).collect(),
            replayed: o.replayed,
        }
    }
}

/// One row of a usage report. Sums are exact.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct UsageRow {
    /// The bucket's start in epoch milliseconds, when bucketed.
    pub bucket: Option<i64>,
    /// Group values by dimension name (`key`, `owner`, `env`, `model`, `endpoint`,
    /// `outcome`); a missing model or endpoint is the empty string.
    pub group: BTreeMap<String, String>,
    /// Charges.
    #[napi(ts_type = "number | bigint")]
    pub requests: U64,
    /// Denied verifies of known keys.
    #[napi(ts_type = "number | bigint")]
    pub denied: U64,
    /// Input tokens.
    #[napi(ts_type = "number | bigint")]
    pub input_tokens: U64,
    /// Output tokens.
    #[napi(ts_type = "number | bigint")]
    pub output_tokens: U64,
    /// Input plus output tokens.
    #[napi(ts_type = "number | bigint")]
    pub tokens: U64,
    /// Cost in micro-units.
    #[napi(ts_type = "number | bigint")]
    pub cost: U64,
}

js_object!(UsageRow {
    bucket,
    group,
    requests,
    denied,
    input_tokens,
    output_tokens,
    tokens,
    cost
});

impl From<nanu::UsageRow> for UsageRow {
    fn from(r: nanu::UsageRow) -> UsageRow {
        UsageRow {
            bucket: r.bucket.map(millis),
            group: r.group,
            requests: U64(r.requests),
            denied: U64(r.denied),
            input_tokens: U64(r.input_tokens),
            output_tokens: U64(r.output_tokens),
            tokens: U64(r.tokens),
            cost: U64(r.cost),
        }
    }
}

/// One record of the usage log: a charge, or a denied verify of a known key.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct UsageRecord {
    /// When, in epoch milliseconds.
    pub at: i64,
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
    #[napi(ts_type = "number | bigint")]
    pub input_tokens: U64,
    /// Output tokens.
    #[napi(ts_type = "number | bigint")]
    pub output_tokens: U64,
    /// Cost in micro-units.
    #[napi(ts_type = "number | bigint")]
    pub cost: U64,
    /// The charge's request id.
    pub request_id: Option<String>,
    /// `charged`, or the code of the denied verify.
    pub outcome: String,
}

js_object!(UsageRecord {
    at,
    key_id,
    owner,
    env,
    model,
    endpoint,
    input_tokens,
    output_tokens,
    cost,
    request_id,
    outcome
});

impl From<nanu::UsageRecord> for UsageRecord {
    fn from(r: nanu::UsageRecord) -> UsageRecord {
        UsageRecord {
            at: millis(r.at),
            key_id: r.key_id,
            owner: r.owner,
            env: r.env,
            model: r.model,
            endpoint: r.endpoint,
            input_tokens: U64(r.input_tokens),
            output_tokens: U64(r.output_tokens),
            cost: U64(r.cost),
            request_id: r.request_id,
            outcome: r.outcome,
        }
    }
}

//! What verify is asked and what it answers, on the hot path of every request.

use std::net::IpAddr;
use std::sync::Arc;

use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{ValueType, sys};
use napi_derive::napi;

use crate::arg::Arg;
use crate::codes::VerdictCode;
use crate::error::{Result, invalid};
use crate::keys::Limit;
use crate::shape::{Fields, Shape, js_object};
use crate::value::{U64, millis, millis_ceil};

/// The request fields verify reads, parsed from `{ ip, scope, model, env, hold, at }`.
#[derive(Debug, Default)]
pub struct Request {
    ip: Option<IpAddr>,
    scope: Option<String>,
    model: Option<String>,
    env: Option<String>,
    hold: nanu::HoldAmounts,
    at: Option<jiff::Timestamp>,
}

impl Request {
    /// Reads a verify request; `undefined` and `null` are the empty request.
    pub fn parse(arg: Arg<'_>) -> Result<Request> {
        static FIELDS: Fields = Fields::new(&["ip", "scope", "model", "env", "hold", "at"]);
        let mut request = Request::default();
        let Some(arg) = arg.present() else {
            return Ok(request);
        };
        let [ip, scope, model, env, hold, at] = arg.fields_of(&FIELDS, "request")?;
        if let Some(ip) = ip.and_then(Arg::present) {
            request.ip = Some(parse_ip(ip)?);
        }
        if let Some(scope) = scope {
            request.scope = scope.opt_string("request.scope")?;
        }
        if let Some(model) = model {
            request.model = model.opt_string("request.model")?;
        }
        if let Some(env) = env {
            request.env = env.opt_string("request.env")?;
        }
        if let Some(hold) = hold.and_then(Arg::present) {
            request.hold = parse_hold(hold)?;
        }
        if let Some(at) = at {
            request.at = at.opt_time("request.at")?;
        }
        Ok(request)
    }

    /// The core's view of this request.
    pub fn as_core(&self) -> nanu::VerifyRequest<'_> {
        nanu::VerifyRequest {
            ip: self.ip,
            scope: self.scope.as_deref(),
            model: self.model.as_deref(),
            env: self.env.as_deref(),
            hold: self.hold,
            at: self.at,
        }
    }
}

fn parse_ip(arg: Arg<'_>) -> Result<IpAddr> {
    let mut buf = [0u8; 64];
    let text = arg.str_in("request.ip", &mut buf)?;
    text.trim()
        .parse()
        .map_err(|_| invalid(format!("request.ip {:?} is not an ip address", &*text)))
}

fn parse_hold(arg: Arg<'_>) -> Result<nanu::HoldAmounts> {
    static FIELDS: Fields = Fields::new(&["inputTokens", "outputTokens", "cost"]);
    let [input, output, cost] = arg.fields_of(&FIELDS, "request.hold")?;
    let amount = |value: Option<Arg<'_>>, what: &str| -> Result<u64> {
        Ok(value
            .map(|v| v.opt_u64(what))
            .transpose()?
            .flatten()
            .unwrap_or(0))
    };
    Ok(nanu::HoldAmounts {
        input_tokens: amount(input, "request.hold.inputTokens")?,
        output_tokens: amount(output, "request.hold.outputTokens")?,
        cost: amount(cost, "request.hold.cost")?,
    })
}

/// A string the vault already holds (key id, owner, env), handed to JavaScript without an
/// intermediate copy.
#[derive(Debug)]
pub struct Shared(Arc<str>);

impl TypeName for Shared {
    fn type_name() -> &'static str {
        "string"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl ToNapiValue for Shared {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        // SAFETY: forwards to the `&str` conversion with the caller's environment.
        unsafe { <&str as ToNapiValue>::to_napi_value(env, &val.0) }
    }
}

/// The answer of a verify. A denial is a verdict, never an exception.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The stable reason: `valid`, `malformed`, `not_found`, `revoked`, `disabled`, `expired`,
    /// `env_mismatch`, `ip_denied`, `scope_denied`, `model_denied`, `model_unpriced`,
    /// `usage_exceeded`, `budget_exceeded` or `rate_limited`.
    pub code: VerdictCode,
    /// The HTTP status a gateway answers with: 200, 401, 403 or 429.
    pub http_status: u32,
    /// The key, once the secret was found.
    #[napi(ts_type = "string")]
    pub key_id: Option<Shared>,
    /// The key's owner.
    #[napi(ts_type = "string")]
    pub owner: Option<Shared>,
    /// The key's stored environment.
    #[napi(ts_type = "string")]
    pub env: Option<Shared>,
    /// The model after alias resolution.
    pub model: Option<String>,
    /// The limit that denied the request.
    pub denied_by: Option<LimitStatus>,
    /// Milliseconds to wait before the same request could pass (rounded up; at most
    /// `Number.MAX_SAFE_INTEGER`).
    pub retry_after_ms: Option<i64>,
    /// When the denying limit resets, in epoch milliseconds.
    pub resets_at: Option<i64>,
    /// The least remaining per unit after this request, when the key was found. The
    /// breakdown by limit is left out here, to keep verify fast: `remaining(keyId)` has it,
    /// and `deniedBy` is the limit that denied.
    pub remaining: Option<RemainingSummary>,
    /// The hold placed by this verify, for `charge({ holdId })` or `release`.
    #[napi(ts_type = "number | bigint")]
    pub hold_id: Option<U64>,
    /// The secret is a previous one still inside its rotation grace period.
    pub grace: bool,
}

/// The verdict's function: one flat call (a nested `remaining` would cost a second one), with
/// the code's name and HTTP status looked up in tables rather than created as strings.
fn verdict_source() -> String {
    let codes: Vec<String> = nanu::Code::ALL
        .iter()
        .map(|c| format!("{:?}", c.as_str()))
        .collect();
    let statuses: Vec<String> = nanu::Code::ALL
        .iter()
        .map(|c| c.http_status().to_string())
        .collect();
    format!(
        "(function () {{ \
           const codes = [{}]; \
           const statuses = [{}]; \
           return function (allowed, code, keyId, owner, env, model, deniedBy, retryAfterMs, \
                            resetsAt, summed, requests, tokens, inputTokens, outputTokens, cost, \
                            holdId, grace) {{ \
             return {{ allowed, code: codes[code], httpStatus: statuses[code], keyId, owner, \
                      env, model, deniedBy, retryAfterMs, resetsAt, \
                      remaining: summed ? {{ requests, tokens, inputTokens, outputTokens, \
                                             cost }} : null, \
                      holdId, grace }}; \
           }}; \
         }})()",
        codes.join(", "),
        statuses.join(", ")
    )
}

impl ToNapiValue for Verdict {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        static SHAPE: Shape = Shape::custom(verdict_source);
        let Verdict {
            allowed,
            code,
            http_status: _,
            key_id,
            owner,
            env: key_env,
            model,
            denied_by,
            retry_after_ms,
            resets_at,
            remaining,
            hold_id,
            grace,
        } = val;
        let index = code.index();
        let summed = remaining.is_some();
        let r = remaining.unwrap_or(RemainingSummary {
            requests: None,
            tokens: None,
            input_tokens: None,
            output_tokens: None,
            cost: None,
        });
        // SAFETY: converts each field in the caller's environment, then calls the function
        // with as many values as it names.
        unsafe {
            let values = [
                ToNapiValue::to_napi_value(env, allowed)?,
                ToNapiValue::to_napi_value(env, index)?,
                ToNapiValue::to_napi_value(env, key_id)?,
                ToNapiValue::to_napi_value(env, owner)?,
                ToNapiValue::to_napi_value(env, key_env)?,
                ToNapiValue::to_napi_value(env, model)?,
                ToNapiValue::to_napi_value(env, denied_by)?,
                ToNapiValue::to_napi_value(env, retry_after_ms)?,
                ToNapiValue::to_napi_value(env, resets_at)?,
                ToNapiValue::to_napi_value(env, summed)?,
                ToNapiValue::to_napi_value(env, r.requests)?,
                ToNapiValue::to_napi_value(env, r.tokens)?,
                ToNapiValue::to_napi_value(env, r.input_tokens)?,
                ToNapiValue::to_napi_value(env, r.output_tokens)?,
                ToNapiValue::to_napi_value(env, r.cost)?,
                ToNapiValue::to_napi_value(env, hold_id)?,
                ToNapiValue::to_napi_value(env, grace)?,
            ];
            SHAPE.build(env, &values)
        }
    }
}

impl From<nanu::Verdict> for Verdict {
    fn from(v: nanu::Verdict) -> Verdict {
        Verdict {
            allowed: v.allowed,
            code: VerdictCode::from(v.code),
            http_status: u32::from(v.code.http_status()),
            key_id: v.key_id.map(Shared),
            owner: v.owner.map(Shared),
            env: v.env.map(Shared),
            model: v.model,
            denied_by: v.denied_by.map(LimitStatus::from),
            retry_after_ms: v.retry_after.map(millis_ceil),
            resets_at: v.resets_at.map(millis),
            remaining: v.remaining.map(RemainingSummary::from),
            hold_id: v.hold_id.map(U64),
            grace: v.grace,
        }
    }
}

/// The state of one limit of a key or of its owner.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct LimitStatus {
    /// `key` or `owner`.
    #[napi(ts_type = "'key' | 'owner'")]
    pub level: &'static str,
    /// Position of the limit in the key's or the owner's list.
    pub index: u32,
    /// The limit.
    pub limit: Limit,
    /// Used in the current window.
    #[napi(ts_type = "number | bigint")]
    pub used: U64,
    /// Reserved by outstanding holds.
    #[napi(ts_type = "number | bigint")]
    pub held: U64,
    /// `amount - used - held`, never below zero.
    #[napi(ts_type = "number | bigint")]
    pub remaining: U64,
    /// When the window ends or the bucket is full again, in epoch milliseconds; `null` for a
    /// lifetime limit.
    pub resets_at: Option<i64>,
}

js_object!(LimitStatus {
    level,
    index,
    limit,
    used,
    held,
    remaining,
    resets_at
});

impl From<nanu::LimitStatus> for LimitStatus {
    fn from(s: nanu::LimitStatus) -> LimitStatus {
        LimitStatus {
            level: match s.level {
                nanu::Level::Key => "key",
                nanu::Level::Owner => "owner",
            },
            index: u32::try_from(s.index).unwrap_or(u32::MAX),
            limit: Limit::from(&*s.limit),
            used: U64(s.used),
            held: U64(s.held),
            remaining: U64(s.remaining),
            resets_at: s.resets_at.map(millis),
        }
    }
}

/// The least remaining per unit over the key's and its owner's limits (`null` when no limit
/// counts that unit), with every limit's state.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct Remaining {
    /// Requests left.
    #[napi(ts_type = "number | bigint")]
    pub requests: Option<U64>,
    /// Tokens left.
    #[napi(ts_type = "number | bigint")]
    pub tokens: Option<U64>,
    /// Input tokens left.
    #[napi(ts_type = "number | bigint")]
    pub input_tokens: Option<U64>,
    /// Output tokens left.
    #[napi(ts_type = "number | bigint")]
    pub output_tokens: Option<U64>,
    /// Money left, in micro-units.
    #[napi(ts_type = "number | bigint")]
    pub cost: Option<U64>,
    /// Every limit of the key and its owner.
    pub limits: Vec<LimitStatus>,
}

js_object!(Remaining {
    requests,
    tokens,
    input_tokens,
    output_tokens,
    cost,
    limits
});

impl From<nanu::Remaining> for Remaining {
    fn from(r: nanu::Remaining) -> Remaining {
        Remaining {
            requests: r.requests.map(U64),
            tokens: r.tokens.map(U64),
            input_tokens: r.input_tokens.map(U64),
            output_tokens: r.output_tokens.map(U64),
            cost: r.cost.map(U64),
            limits: r.limits.into_iter().map(LimitStatus::from).collect(),
        }
    }
}

/// The least remaining per unit over the key's and its owner's limits (`null` when no limit
/// counts that unit).
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct RemainingSummary {
    /// Requests left.
    #[napi(ts_type = "number | bigint")]
    pub requests: Option<U64>,
    /// Tokens left.
    #[napi(ts_type = "number | bigint")]
    pub tokens: Option<U64>,
    /// Input tokens left.
    #[napi(ts_type = "number | bigint")]
    pub input_tokens: Option<U64>,
    /// Output tokens left.
    #[napi(ts_type = "number | bigint")]
    pub output_tokens: Option<U64>,
    /// Money left, in micro-units.
    #[napi(ts_type = "number | bigint")]
    pub cost: Option<U64>,
}

js_object!(RemainingSummary {
    requests,
    tokens,
    input_tokens,
    output_tokens,
    cost
});

impl From<nanu::Remaining> for RemainingSummary {
    fn from(r: nanu::Remaining) -> RemainingSummary {
        RemainingSummary {
            requests: r.requests.map(U64),
            tokens: r.tokens.map(U64),
            input_tokens: r.input_tokens.map(U64),
            output_tokens: r.output_tokens.map(U64),
            cost: r.cost.map(U64),
        }
    }
}

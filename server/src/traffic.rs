//! The request path of a gateway over HTTP: verify, charge and release.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use nanu::{
    ChargeOutcome, Code, HoldAmounts, LimitStatus, Remaining, Usage, Verdict, VerifyRequest,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Admin, ChargeScope, VerifyScope};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, NoQuery};
use crate::state::{AppState, blocking};

/// What to verify: a user's secret and what its request wants.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The secret the user sent.
    pub secret: String,
    /// The user's client address, checked against the key's IP allowlist.
    #[serde(default)]
    #[schema(example = "203.0.113.7")]
    pub ip: Option<String>,
    /// A scope the key must hold.
    #[serde(default)]
    pub scope: Option<String>,
    /// The model the request uses (an alias of the key is resolved first).
    #[serde(default)]
    pub model: Option<String>,
    /// The environment the key must belong to.
    #[serde(default)]
    pub env: Option<String>,
    /// Amounts to reserve until the request's charge settles them (or `release` gives them
    /// back, or they expire).
    #[serde(default)]
    pub hold: Option<HoldAmounts>,
}

/// The answer of a verify: allowed or denied, always with status 200.
#[derive(Serialize, ToSchema)]
pub struct VerdictView {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The stable reason.
    pub code: Code,
    /// The HTTP status a gateway would answer its user with: 200, 401, 403 or 429.
    pub http_status: u16,
    /// The key, once the secret was found.
    pub key_id: Option<String>,
    /// The key's owner.
    pub owner: Option<String>,
    /// The key's stored environment.
    pub env: Option<String>,
    /// The model after alias resolution.
    pub model: Option<String>,
    /// The secret is a previous one still inside its rotation grace period.
    pub grace: bool,
    /// The hold placed by this verify: pass it to `/v1/charge` or `/v1/release`.
    pub hold_id: Option<u64>,
    /// How long to wait before the same request could pass, in milliseconds (rounded up).
    pub retry_after_ms: Option<u64>,
    /// When the denying limit resets.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resets_at: Option<jiff::Timestamp>,
    /// The limit that denied the request.
    pub denied_by: Option<LimitStatus>,
    /// What is left after this request, when the key was found.
    pub remaining: Option<Remaining>,
}

impl From<Verdict> for VerdictView {
    fn from(verdict: Verdict) -> VerdictView {
        VerdictView {
            allowed: verdict.allowed,
            code: verdict.code,
            http_status: verdict.code.http_status(),
            key_id: verdict.key_id.map(|s| s.to_string()),
            owner: verdict.owner.map(|s| s.to_string()),
            env: verdict.env.map(|s| s.to_string()),
            model: verdict.model,
            grace: verdict.grace,
            hold_id: verdict.hold_id,
            retry_after_ms: verdict.retry_after.map(|d| {
                let ms = d.as_micros().div_ceil(1000);
                u64::try_from(ms).unwrap_or(u64::MAX)
            }),
            resets_at: verdict.resets_at,
            denied_by: verdict.denied_by,
            remaining: verdict.remaining,
        }
    }
}

/// What a request really used.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeBody {
    /// The key to charge.
    pub key_id: String,
    /// Makes the charge idempotent: the same id again returns the first outcome; the same id
    /// with other amounts is a conflict (409). Required over HTTP, so that a retried request
    /// never charges twice.
    #[schema(min_length = 1, max_length = 200)]
    pub request_id: String,
    /// The model used (an alias of the key is resolved); priced from the price table when no
    /// cost is given.
    #[serde(default)]
    pub model: Option<String>,
    /// The endpoint or route, for reports.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Cost in micro-units; computed from the price table when absent.
    #[serde(default)]
    pub cost: Option<u64>,
    /// The hold placed by the request's verify, settled by this charge.
    #[serde(default)]
    pub hold_id: Option<u64>,
}

/// A hold to give back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The hold id from the verdict.
    pub hold_id: u64,
}

/// Whether a hold was given back.
#[derive(Serialize, ToSchema)]
pub struct Released {
    /// `true` when the hold was still outstanding; `false` when it was settled, released or
    /// expired before.
    pub released: bool,
}

/// Verify a user's secret and request.
///
/// Atomically over the key and its owner: status, expiry, env, IP allowlist, scope, model,
/// then every limit. An allowed verify consumes one request and places the hold; a denied one
/// changes nothing. Denials are verdicts (status 200), not errors.
#[utoipa::path(
    post, path = "/v1/verify", operation_id = "verify", tag = "traffic",
    request_body = VerifyBody,
    responses((status = 200, description = "the verdict, allowed or denied", body = VerdictView)),
    security(("admin_key" = ["verify"])),
)]
pub async fn verify(
    State(state): State<AppState>,
    _admin: Admin<VerifyScope>,
    _query: NoQuery,
    JsonBody(body): JsonBody<VerifyBody>,
) -> ApiResult<Json<VerdictView>> {
    let ip = body
        .ip
        .as_deref()
        .map(|text| {
            text.trim().parse::<IpAddr>().map_err(|_| {
                ApiError::invalid(format!("ip must be an IPv4 or IPv6 address, not {text:?}"))
            })
        })
        .transpose()?;
    let vault = state.vault.clone();
    blocking(move || {
        let request = VerifyRequest {
            ip,
            scope: body.scope.as_deref(),
            model: body.model.as_deref(),
            env: body.env.as_deref(),
            hold: body.hold.unwrap_or_default(),
            at: None,
        };
        Ok(vault.verify(&body.secret, &request)?.into())
    })
    .await
    .map(Json)
}

/// Record what a request really used and settle its hold.
///
/// Delivered usage is always recorded, even past a limit; the outcome lists the limits now
/// exceeded, and the next verify they govern is denied.
#[utoipa::path(
    post, path = "/v1/charge", operation_id = "charge", tag = "traffic",
    request_body = ChargeBody,
    responses(
        (status = 200, description = "what the charge did", body = ChargeOutcome),
        (
            status = 409,
            description = "the request id was charged before with other amounts",
            body = crate::error::ErrorBody
        ),
    ),
    security(("admin_key" = ["charge"])),
)]
pub async fn charge(
    State(state): State<AppState>,
    _admin: Admin<ChargeScope>,
    _query: NoQuery,
    JsonBody(body): JsonBody<ChargeBody>,
) -> ApiResult<Json<ChargeOutcome>> {
    let usage = Usage {
        model: body.model,
        endpoint: body.endpoint,
        input_tokens: body.input_tokens,
        output_tokens: body.output_tokens,
        cost: body.cost,
        request_id: Some(body.request_id),
        hold_id: body.hold_id,
        at: None,
    };
    let key_id = body.key_id;
    let vault = state.vault.clone();
    blocking(move || Ok(vault.charge(&key_id, &usage)?))
        .await
        .map(Json)
}

/// Give a hold back: the request failed and used nothing.
#[utoipa::path(
    post, path = "/v1/release", operation_id = "release", tag = "traffic",
    request_body = ReleaseBody,
    responses((status = 200, description = "whether the hold was outstanding", body = Released)),
    security(("admin_key" = ["charge"])),
)]
pub async fn release(
    State(state): State<AppState>,
    _admin: Admin<ChargeScope>,
    _query: NoQuery,
    JsonBody(body): JsonBody<ReleaseBody>,
) -> ApiResult<Json<Released>> {
    let vault = state.vault.clone();
    blocking(move || {
        Ok(Released {
            released: vault.release(body.hold_id)?,
        })
    })
    .await
    .map(Json)
}

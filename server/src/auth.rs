//! Admin keys: who may call the API, and for what.
//!
//! An admin key is an ordinary key of the served vault whose env is `admin`; its scopes name
//! what it may do. Each call verifies the bearer token as a key (so revocation, expiry, the IP
//! allowlist and any limits of the admin key apply at once), then checks the scope.

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use nanu::{Code, Context, VerifyRequest};

use crate::error::{ApiCode, ApiError};
use crate::state::AppState;

/// The env of admin keys.
pub const ADMIN_ENV: &str = "admin";

/// What an admin key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Read keys and what they have left.
    KeysRead,
    /// Mint, change, rotate and revoke keys.
    KeysWrite,
    /// Read owners.
    OwnersRead,
    /// Set owners' limits.
    OwnersWrite,
    /// Read prices.
    PricesRead,
    /// Set, remove and import prices.
    PricesWrite,
    /// Read usage reports and counts.
    UsageRead,
    /// Read events.
    EventsRead,
    /// Read and check the audit trail.
    AuditRead,
    /// Read webhook delivery status.
    WebhooksRead,
    /// Verify secrets (the request path of a gateway).
    Verify,
    /// Charge and release (the request path of a gateway).
    Charge,
    /// Everything, including minting and changing admin keys.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 13] = [
        Scope::KeysRead,
        Scope::KeysWrite,
        Scope::OwnersRead,
        Scope::OwnersWrite,
        Scope::PricesRead,
        Scope::PricesWrite,
        Scope::UsageRead,
        Scope::EventsRead,
        Scope::AuditRead,
        Scope::WebhooksRead,
        Scope::Verify,
        Scope::Charge,
        Scope::Admin,
    ];

    /// The scope's name as a key holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::KeysRead => "keys:read",
            Scope::KeysWrite => "keys:write",
            Scope::OwnersRead => "owners:read",
            Scope::OwnersWrite => "owners:write",
            Scope::PricesRead => "prices:read",
            Scope::PricesWrite => "prices:write",
            Scope::UsageRead => "usage:read",
            Scope::EventsRead => "events:read",
            Scope::AuditRead => "audit:read",
            Scope::WebhooksRead => "webhooks:read",
            Scope::Verify => "verify",
            Scope::Charge => "charge",
            Scope::Admin => "admin",
        }
    }
}

/// The scope a route needs, as a type, so that the extractor checks it before the body is read.
pub trait Required: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

macro_rules! scope_markers {
    ($($(#[$doc:meta])* $name:ident => $scope:ident,)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl Required for $name {
            const SCOPE: Scope = Scope::$scope;
        }
    )*};
}

scope_markers! {
    /// Needs `keys:read`.
    KeysRead => KeysRead,
    /// Needs `keys:write`.
    KeysWrite => KeysWrite,
    /// Needs `owners:read`.
    OwnersRead => OwnersRead,
    /// Needs `owners:write`.
    OwnersWrite => OwnersWrite,
    /// Needs `prices:read`.
    PricesRead => PricesRead,
    /// Needs `prices:write`.
    PricesWrite => PricesWrite,
    /// Needs `usage:read`.
    UsageRead => UsageRead,
    /// Needs `events:read`.
    EventsRead => EventsRead,
    /// Needs `audit:read`.
    AuditRead => AuditRead,
    /// Needs `webhooks:read`.
    WebhooksRead => WebhooksRead,
    /// Needs `verify`.
    VerifyScope => Verify,
    /// Needs `charge`.
    ChargeScope => Charge,
}

/// An authenticated admin key that holds the scope `S`.
#[derive(Debug)]
pub struct Admin<S> {
    key_id: String,
    scopes: Vec<String>,
    scope: PhantomData<S>,
}

impl<S> Admin<S> {
    /// Whether the key holds `scope` (or `admin`, which holds every scope).
    pub fn holds(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| s == scope.as_str() || s == Scope::Admin.as_str())
    }

    /// Fails with 403 unless the key holds `scope`; `why` says what needs it.
    pub fn require(&self, scope: Scope, why: &str) -> Result<(), ApiError> {
        if self.holds(scope) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "admin key {} lacks the scope {:?} needed to {why}",
            self.key_id,
            scope.as_str()
        )))
    }

    /// The audit context of calls made with this key: the key id is the actor.
    pub fn context(&self) -> Context {
        Context::actor(self.key_id.clone())
    }
}

impl<S: Required> FromRequestParts<AppState> for Admin<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let vault = state.vault.clone();
        let (key_id, scopes) = crate::state::blocking(move || {
            let request = VerifyRequest {
                ip,
                env: Some(ADMIN_ENV),
                ..VerifyRequest::default()
            };
            let verdict = vault.verify(&token, &request)?;
            if !verdict.allowed {
                return Err(refused(&verdict));
            }
            let key_id = verdict
                .key_id
                .as_deref()
                .ok_or_else(|| ApiError::internal("an allowed verdict names no key"))?
                .to_owned();
            let scopes = vault.get(&key_id)?.scopes;
            Ok((key_id, scopes))
        })
        .await?;
        let admin = Admin {
            key_id,
            scopes,
            scope: PhantomData,
        };
        admin.require(S::SCOPE, "call this route")?;
        Ok(admin)
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer_token(parts: &Parts) -> Result<String, ApiError> {
    let value = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing admin key: send `Authorization: Bearer <secret>`")
    })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the authorization header is not ascii text"))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(|| {
        ApiError::unauthorized("the authorization header must be `Bearer <secret>`")
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            "the authorization header must be `Bearer <secret>`",
        ));
    }
    Ok(token.trim().to_owned())
}

/// The error for a bearer token whose verify was denied. Limits of the admin key itself give
/// 429; a client address outside its allowlist gives 403; anything else is not a usable admin
/// key (401).
fn refused(verdict: &nanu::Verdict) -> ApiError {
    match verdict.code {
        Code::RateLimited | Code::UsageExceeded | Code::BudgetExceeded => {
            let secs = verdict
                .retry_after
                .map_or(1, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
            ApiError::new(
                ApiCode::RateLimited,
                format!(
                    "the admin key's own limits refuse this call ({})",
                    verdict.code
                ),
            )
            .retry_after(secs)
        }
        Code::IpDenied => {
            ApiError::forbidden("the admin key's ip allowlist does not include this client address")
        }
        Code::EnvMismatch => ApiError::unauthorized(format!(
            "the bearer token is a key of env {:?}, not an admin key (mint one with `nanu mint \
             --owner ops --env admin --scope admin`)",
            verdict.env.as_deref().unwrap_or_default()
        )),
        code => ApiError::unauthorized(format!(
            "the bearer token is not a usable admin key ({code})"
        )),
    }
}

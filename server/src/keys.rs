//! `/v1/keys`: mint, list, read, change, rotate and revoke keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use nanu::{KeyFilter, KeyInfo, KeyPage, KeyPatch, KeySpec, Remaining, Status, Vault};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{ADMIN_ENV, Admin, KeysRead, KeysWrite, Scope};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery, JsonBody, NoQuery, OptionalJsonBody, param};
use crate::state::{AppState, blocking};

/// A freshly minted key: the only time its secret is shown.
#[derive(Serialize, ToSchema)]
pub struct MintedKey {
    /// The public key id.
    pub key_id: String,
    /// The secret to hand to the user; shown once, never stored.
    pub secret: String,
    /// The key as stored.
    pub key: KeyInfo,
}

/// The body of a rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old secret keeps working (`0s`, `10m`, `1h`); `0s` (the default) ends it at
    /// once.
    #[schema(example = "1h")]
    pub grace: Option<String>,
}

/// A rotated key: the only time the new secret is shown.
#[derive(Serialize, ToSchema)]
pub struct RotatedKey {
    /// The key id (unchanged).
    pub key_id: String,
    /// The new secret.
    pub secret: String,
    /// Until when the previous secret still works; `null` when the grace was zero.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub grace_until: Option<jiff::Timestamp>,
}

/// The filters and paging of the key list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeysQuery {
    /// Only this owner's keys.
    owner: Option<String>,
    /// Only keys of this environment.
    env: Option<String>,
    /// Only keys in this status (`active`, `disabled`, `revoked`, `expired`).
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    /// Only keys with exactly this name.
    name: Option<String>,
    /// Paging: only keys whose id sorts after this one (the `next` of the previous page).
    after: Option<String>,
    /// At most this many keys (1 to 10000, default 100).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

/// Mint a key.
///
/// Minting a key of env `admin` (an admin key) needs the `admin` scope.
#[utoipa::path(
    post, path = "/v1/keys", operation_id = "mint_key", tag = "keys",
    request_body = KeySpec,
    responses((status = 201, description = "minted", body = MintedKey)),
    security(("admin_key" = ["keys:write"])),
)]
pub async fn mint(
    State(state): State<AppState>,
    admin: Admin<KeysWrite>,
    _query: NoQuery,
    JsonBody(spec): JsonBody<KeySpec>,
) -> ApiResult<(StatusCode, Json<MintedKey>)> {
    if spec.env == ADMIN_ENV {
        admin.require(Scope::Admin, "mint an admin key")?;
    }
    let ctx = admin.context();
    let vault = state.vault.clone();
    let minted = blocking(move || {
        let minted = vault.mint(&spec, &ctx)?;
        let key = vault.get(&minted.key_id)?;
        Ok(MintedKey {
            key_id: minted.key_id.clone(),
            secret: minted.secret.expose().to_owned(),
            key,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(minted)))
}

/// List keys, in key id order, one page at a time.
#[utoipa::path(
    get, path = "/v1/keys", operation_id = "list_keys", tag = "keys",
    params(KeysQuery),
    responses((status = 200, description = "one page of keys", body = KeyPage)),
    security(("admin_key" = ["keys:read"])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin<KeysRead>,
    ApiQuery(query): ApiQuery<KeysQuery>,
) -> ApiResult<Json<KeyPage>> {
    let status = match param::text("status", query.status)?.as_deref() {
        None => None,
        Some("active") => Some(Status::Active),
        Some("disabled") => Some(Status::Disabled),
        Some("revoked") => Some(Status::Revoked),
        Some("expired") => Some(Status::Expired),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "query parameter status must be active, disabled, revoked or expired, not \
                 {other:?}"
            )));
        }
    };
    let limit = param::number("limit", query.limit.as_deref(), 1, 10_000)?.unwrap_or(100);
    let filter = KeyFilter {
        owner: param::text("owner", query.owner)?,
        env: param::text("env", query.env)?,
        status,
        after: param::text("after", query.after)?,
        limit: Some(limit as usize),
    };
    let name = param::text("name", query.name)?;
    let vault = state.vault.clone();
    let page = blocking(move || match name {
        None => Ok(vault.list(&filter)?),
        Some(name) => Ok(list_named(&vault, filter, &name)?),
    })
    .await?;
    Ok(Json(page))
}

/// A page of keys that also match a name. The vault filters by owner, env and status; the name
/// is matched here, reading further pages until this one is full or the keys run out.
fn list_named(vault: &Vault, mut filter: KeyFilter, name: &str) -> nanu::Result<KeyPage> {
    let limit = filter.limit.unwrap_or(100);
    let mut keys = Vec::new();
    loop {
        let page = vault.list(&filter)?;
        let mut last_seen = None;
        for key in page.keys {
            last_seen = Some(key.key_id.clone());
            if key.name == name {
                keys.push(key);
                if keys.len() == limit {
                    let next = keys.last().map(|k: &KeyInfo| k.key_id.clone());
                    return Ok(KeyPage { keys, next });
                }
            }
        }
        match (page.next, last_seen) {
            (Some(_), Some(last)) => filter.after = Some(last),
            _ => return Ok(KeyPage { keys, next: None }),
        }
    }
}

/// Read a key (never its secret).
#[utoipa::path(
    get, path = "/v1/keys/{key_id}", operation_id = "get_key", tag = "keys",
    params(("key_id" = String, Path, description = "the key id (`key_...`)")),
    responses((status = 200, description = "the key", body = KeyInfo)),
    security(("admin_key" = ["keys:read"])),
)]
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin<KeysRead>,
    _query: NoQuery,
    ApiPath(key_id): ApiPath<String>,
) -> ApiResult<Json<KeyInfo>> {
    let vault = state.vault.clone();
    blocking(move || Ok(vault.get(&key_id)?)).await.map(Json)
}

/// Checks that the admin may act on this key: changing an admin key needs the `admin` scope.
fn check_target(vault: &Vault, admin_holds_admin: bool, key_id: &str) -> ApiResult<()> {
    let key = vault.get(key_id)?;
    if key.env == ADMIN_ENV && !admin_holds_admin {
        return Err(ApiError::forbidden(format!(
            "key {key_id} is an admin key: changing it needs the scope \"admin\""
        )));
    }
    Ok(())
}

/// Change a key's policy, labels or state.
///
/// Absent fields stay as they are; `null` clears an optional field (models, ips, expires_at,
/// rotate_every). Changing an admin key needs the `admin` scope.
#[utoipa::path(
    patch, path = "/v1/keys/{key_id}", operation_id = "update_key", tag = "keys",
    params(("key_id" = String, Path, description = "the key id")),
    request_body = KeyPatch,
    responses((status = 200, description = "the key after the change", body = KeyInfo)),
    security(("admin_key" = ["keys:write"])),
)]
pub async fn update(
    State(state): State<AppState>,
    admin: Admin<KeysWrite>,
    _query: NoQuery,
    ApiPath(key_id): ApiPath<String>,
    JsonBody(patch): JsonBody<KeyPatch>,
) -> ApiResult<Json<KeyInfo>> {
    let ctx = admin.context();
    let holds_admin = admin.holds(Scope::Admin);
    let vault = state.vault.clone();
    blocking(move || {
        check_target(&vault, holds_admin, &key_id)?;
        Ok(vault.update(&key_id, &patch, &ctx)?)
    })
    .await
    .map(Json)
}

/// Issue a new secret for the same key id, ledger and windows.
///
/// The old secret keeps working until `now + grace`. Rotating an admin key needs the `admin`
/// scope.
#[utoipa::path(
    post, path = "/v1/keys/{key_id}/rotate", operation_id = "rotate_key", tag = "keys",
    params(("key_id" = String, Path, description = "the key id")),
    request_body(content = RotateBody, description = "optional; an empty body means a grace of 0s"),
    responses((status = 200, description = "the new secret", body = RotatedKey)),
    security(("admin_key" = ["keys:write"])),
)]
pub async fn rotate(
    State(state): State<AppState>,
    admin: Admin<KeysWrite>,
    _query: NoQuery,
    ApiPath(key_id): ApiPath<String>,
    OptionalJsonBody(body): OptionalJsonBody<RotateBody>,
) -> ApiResult<Json<RotatedKey>> {
    let grace = match body.grace.as_deref() {
        Some(text) => nanu::parse_duration(text)?,
        None => std::time::Duration::ZERO,
    };
    let ctx = admin.context();
    let holds_admin = admin.holds(Scope::Admin);
    let vault = state.vault.clone();
    blocking(move || {
        check_target(&vault, holds_admin, &key_id)?;
        let minted = vault.rotate(&key_id, grace, &ctx)?;
        let key = vault.get(&key_id)?;
        Ok(RotatedKey {
            key_id: minted.key_id.clone(),
            secret: minted.secret.expose().to_owned(),
            grace_until: key.grace_until,
        })
    })
    .await
    .map(Json)
}

/// Revoke a key at once; the next verify of its secret is denied.
///
/// Revoking a revoked key changes nothing more. Revoking an admin key needs the `admin` scope.
#[utoipa::path(
    post, path = "/v1/keys/{key_id}/revoke", operation_id = "revoke_key", tag = "keys",
    params(("key_id" = String, Path, description = "the key id")),
    responses((status = 200, description = "the key, revoked", body = KeyInfo)),
    security(("admin_key" = ["keys:write"])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    admin: Admin<KeysWrite>,
    _query: NoQuery,
    ApiPath(key_id): ApiPath<String>,
) -> ApiResult<Json<KeyInfo>> {
    let ctx = admin.context();
    let holds_admin = admin.holds(Scope::Admin);
    let vault = state.vault.clone();
    blocking(move || {
        check_target(&vault, holds_admin, &key_id)?;
        vault.revoke(&key_id, &ctx)?;
        Ok(vault.get(&key_id)?)
    })
    .await
    .map(Json)
}

/// What a key has left: every limit of the key and of its owner, and the least remaining per
/// unit.
#[utoipa::path(
    get, path = "/v1/keys/{key_id}/remaining", operation_id = "key_remaining", tag = "keys",
    params(("key_id" = String, Path, description = "the key id")),
    responses((
        status = 200,
        description = "the state of the key's and its owner's limits",
        body = Remaining
    )),
    security(("admin_key" = ["keys:read"])),
)]
pub async fn remaining(
    State(state): State<AppState>,
    _admin: Admin<KeysRead>,
    _query: NoQuery,
    ApiPath(key_id): ApiPath<String>,
) -> ApiResult<Json<Remaining>> {
    let vault = state.vault.clone();
    blocking(move || Ok(vault.remaining(&key_id, None)?))
        .await
        .map(Json)
}

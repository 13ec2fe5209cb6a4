//! `/v1/owners`: owners, their shared limits, and revoking all their keys.

use axum::Json;
use axum::extract::State;
use nanu::{KeyFilter, Limit, Remaining};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{ADMIN_ENV, Admin, KeysWrite, OwnersRead, OwnersWrite, Scope};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery, JsonBody, NoQuery, param};
use crate::state::{AppState, blocking};

/// An owner, its limits (shared by all its keys) and their state (the core's `OwnerInfo`).
#[derive(Serialize, ToSchema)]
#[schema(as = OwnerInfo)]
pub struct OwnerView {
    /// The owner.
    pub owner: String,
    /// Its limits.
    pub limits: Vec<Limit>,
    /// How many keys it has (all statuses).
    pub keys: u64,
    /// The state of its limits.
    pub remaining: Remaining,
}

impl From<nanu::OwnerInfo> for OwnerView {
    fn from(info: nanu::OwnerInfo) -> OwnerView {
        OwnerView {
            owner: info.owner,
            limits: info.limits,
            keys: info.keys,
            remaining: info.remaining,
        }
    }
}

/// One page of owners, in name order.
#[derive(Serialize, ToSchema)]
pub struct OwnerPage {
    /// The owners.
    pub owners: Vec<OwnerView>,
    /// Pass as `after` to read the next page; `null` on the last page.
    pub next: Option<String>,
}

/// Paging of the owner list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OwnersQuery {
    /// Only owners whose name sorts after this one (the `next` of the previous page).
    after: Option<String>,
    /// At most this many owners (1 to 1000, default 100).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// The new limits of an owner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerLimits {
    /// The owner's limits, replacing the previous ones; `[]` removes them all.
    pub limits: Vec<Limit>,
}

/// How many keys a revocation reached.
#[derive(Serialize, ToSchema)]
pub struct Revoked {
    /// Keys revoked by this call (keys revoked before are not counted).
    pub revoked: u64,
}

/// Whether any key of `owner` is an admin key.
fn holds_admin_keys(vault: &nanu::Vault, owner: &str) -> nanu::Result<bool> {
    let page = vault.list(&KeyFilter {
        owner: Some(owner.to_owned()),
        env: Some(ADMIN_ENV.to_owned()),
        limit: Some(1),
        ..KeyFilter::default()
    })?;
    Ok(!page.keys.is_empty())
}

/// List owners, one page at a time.
#[utoipa::path(
    get, path = "/v1/owners", operation_id = "list_owners", tag = "owners",
    params(OwnersQuery),
    responses((status = 200, description = "one page of owners", body = OwnerPage)),
    security(("admin_key" = ["owners:read"])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin<OwnersRead>,
    ApiQuery(query): ApiQuery<OwnersQuery>,
) -> ApiResult<Json<OwnerPage>> {
    let limit = param::number("limit", query.limit.as_deref(), 1, 1000)?.unwrap_or(100) as usize;
    let after = param::text("after", query.after)?;
    let vault = state.vault.clone();
    blocking(move || {
        let names = vault.owners();
        let start = match &after {
            Some(after) => names.partition_point(|name| name <= after),
            None => 0,
        };
        let mut owners = Vec::new();
        let mut next = None;
        for name in &names[start..] {
            if owners.len() == limit {
                next = owners.last().map(|o: &OwnerView| o.owner.clone());
                break;
            }
            match vault.owner(name) {
                Ok(info) => owners.push(info.into()),
                // An owner listed a moment ago cannot disappear today; if one ever does, the
                // page leaves it out rather than failing whole.
                Err(err) if err.code() == nanu::ErrorCode::NotFound => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(OwnerPage { owners, next })
    })
    .await
    .map(Json)
}

/// Read an owner.
#[utoipa::path(
    get, path = "/v1/owners/{owner}", operation_id = "get_owner", tag = "owners",
    params(("owner" = String, Path, description = "the owner")),
    responses((status = 200, description = "the owner", body = OwnerView)),
    security(("admin_key" = ["owners:read"])),
)]
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin<OwnersRead>,
    _query: NoQuery,
    ApiPath(owner): ApiPath<String>,
) -> ApiResult<Json<OwnerView>> {
    let vault = state.vault.clone();
    blocking(move || Ok(vault.owner(&owner)?.into()))
        .await
        .map(Json)
}

/// Set an owner's limits, shared by all its keys (creating the owner if needed).
///
/// An owner that holds admin keys can be limited only with the `admin` scope.
#[utoipa::path(
    put, path = "/v1/owners/{owner}/limits", operation_id = "set_owner_limits", tag = "owners",
    params(("owner" = String, Path, description = "the owner")),
    request_body = OwnerLimits,
    responses((status = 200, description = "the owner after the change", body = OwnerView)),
    security(("admin_key" = ["owners:write"])),
)]
pub async fn set_limits(
    State(state): State<AppState>,
    admin: Admin<OwnersWrite>,
    _query: NoQuery,
    ApiPath(owner): ApiPath<String>,
    JsonBody(body): JsonBody<OwnerLimits>,
) -> ApiResult<Json<OwnerView>> {
    let ctx = admin.context();
    let holds_admin = admin.holds(Scope::Admin);
    let vault = state.vault.clone();
    blocking(move || {
        // An owner's limits bind its admin keys too: limiting them could lock every admin out.
        if !holds_admin && holds_admin_keys(&vault, &owner)? {
            return Err(ApiError::forbidden(format!(
                "owner {owner:?} holds admin keys: limiting them needs the scope \"admin\""
            )));
        }
        vault.set_owner_policy(&owner, &body.limits, &ctx)?;
        Ok(vault.owner(&owner)?.into())
    })
    .await
    .map(Json)
}

/// Revoke every key of an owner.
///
/// An owner that holds admin keys can be revoked only with the `admin` scope.
#[utoipa::path(
    post, path = "/v1/owners/{owner}/revoke", operation_id = "revoke_owner", tag = "owners",
    params(("owner" = String, Path, description = "the owner")),
    responses((status = 200, description = "how many keys were revoked", body = Revoked)),
    security(("admin_key" = ["keys:write"])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    admin: Admin<KeysWrite>,
    _query: NoQuery,
    ApiPath(owner): ApiPath<String>,
) -> ApiResult<Json<Revoked>> {
    let ctx = admin.context();
    let holds_admin = admin.holds(Scope::Admin);
    let vault = state.vault.clone();
    blocking(move || {
        // Unknown owners are a 404 like unknown keys, rather than "0 revoked".
        vault.owner(&owner)?;
        if !holds_admin && holds_admin_keys(&vault, &owner)? {
            return Err(ApiError::forbidden(format!(
                "owner {owner:?} holds admin keys: revoking them needs the scope \"admin\""
            )));
        }
        let revoked = vault.revoke_owner(&owner, &ctx)?;
        Ok(Revoked { revoked })
    })
    .await
    .map(Json)
}

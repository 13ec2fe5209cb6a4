//! `/v1/prices`: the price table, by model.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use nanu::Price;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Admin, PricesRead, PricesWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ImportBody, JsonBody, NoQuery};
use crate::state::{AppState, blocking};

/// Every price, by model.
#[derive(Serialize, ToSchema)]
pub struct PriceTable {
    /// Prices in micro-units, by model name.
    pub prices: BTreeMap<String, Price>,
}

/// What an import of prices did (the core's `PriceImport`).
#[derive(Serialize, ToSchema)]
#[schema(as = PriceImport)]
pub struct PriceImportView {
    /// Models priced.
    pub imported: u64,
    /// Entries without a token or request price, with the reason: `[model, reason]`.
    #[schema(value_type = Vec<Vec<String>>)]
    pub skipped: Vec<(String, String)>,
    /// Prices rounded up to a whole micro-unit per million tokens: `[model, field]`.
    #[schema(value_type = Vec<Vec<String>>)]
    pub rounded: Vec<(String, String)>,
}

impl From<nanu::PriceImport> for PriceImportView {
    fn from(import: nanu::PriceImport) -> PriceImportView {
        PriceImportView {
            imported: import.imported,
            skipped: import.skipped,
            rounded: import.rounded,
        }
    }
}

/// List every price.
#[utoipa::path(
    get, path = "/v1/prices", operation_id = "list_prices", tag = "prices",
    responses((status = 200, description = "the price table", body = PriceTable)),
    security(("admin_key" = ["prices:read"])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin<PricesRead>,
    _query: NoQuery,
) -> ApiResult<Json<PriceTable>> {
    let vault = state.vault.clone();
    blocking(move || {
        Ok(PriceTable {
            prices: vault.prices(),
        })
    })
    .await
    .map(Json)
}

/// Set a model's price.
///
/// A model name holding `/` is sent with it percent-encoded (`openai%2Fgpt-4o`) or as is.
#[utoipa::path(
    put, path = "/v1/prices/{model}", operation_id = "set_price", tag = "prices",
    params(("model" = String, Path, description = "the model")),
    request_body = Price,
    responses((status = 200, description = "the price set", body = Price)),
    security(("admin_key" = ["prices:write"])),
)]
pub async fn set(
    State(state): State<AppState>,
    admin: Admin<PricesWrite>,
    _query: NoQuery,
    ApiPath(model): ApiPath<String>,
    JsonBody(price): JsonBody<Price>,
) -> ApiResult<Json<Price>> {
    set_price(state, admin, model, price).await
}

/// `PUT /v1/prices/import`: the import route shadows a model named `import`, so it is routed
/// here explicitly.
pub async fn set_model_named_import(
    State(state): State<AppState>,
    admin: Admin<PricesWrite>,
    _query: NoQuery,
    JsonBody(price): JsonBody<Price>,
) -> ApiResult<Json<Price>> {
    set_price(state, admin, "import".to_owned(), price).await
}

async fn set_price(
    state: AppState,
    admin: Admin<PricesWrite>,
    model: String,
    price: Price,
) -> ApiResult<Json<Price>> {
    let ctx = admin.context();
    let vault = state.vault.clone();
    blocking(move || {
        vault.set_price(&model, Some(price), &ctx)?;
        Ok(price)
    })
    .await
    .map(Json)
}

/// Remove a model's price.
#[utoipa::path(
    delete, path = "/v1/prices/{model}", operation_id = "remove_price", tag = "prices",
    params(("model" = String, Path, description = "the model")),
    responses((status = 204, description = "removed")),
    security(("admin_key" = ["prices:write"])),
)]
pub async fn remove(
    State(state): State<AppState>,
    admin: Admin<PricesWrite>,
    _query: NoQuery,
    ApiPath(model): ApiPath<String>,
) -> ApiResult<StatusCode> {
    remove_price(state, admin, model).await
}

/// `DELETE /v1/prices/import`: see [`set_model_named_import`].
pub async fn remove_model_named_import(
    State(state): State<AppState>,
    admin: Admin<PricesWrite>,
    _query: NoQuery,
) -> ApiResult<StatusCode> {
    remove_price(state, admin, "import".to_owned()).await
}

async fn remove_price(
    state: AppState,
    admin: Admin<PricesWrite>,
    model: String,
) -> ApiResult<StatusCode> {
    let ctx = admin.context();
    let vault = state.vault.clone();
    blocking(move || {
        if vault.price(&model).is_none() {
            return Err(ApiError::not_found(format!("no price for model {model:?}")));
        }
        vault.set_price(&model, None, &ctx)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Import LiteLLM's price JSON (`model_prices_and_context_window.json`).
///
/// Each price is converted once, exactly, to integer micro-units per million tokens. The body
/// may be up to 32 MiB (or the server's body limit, if larger).
#[utoipa::path(
    post, path = "/v1/prices/import", operation_id = "import_prices", tag = "prices",
    request_body(
        content = Object,
        description = "LiteLLM's price JSON, as published",
        content_type = "application/json"
    ),
    responses((status = 200, description = "what the import did", body = PriceImportView)),
    security(("admin_key" = ["prices:write"])),
)]
pub async fn import(
    State(state): State<AppState>,
    admin: Admin<PricesWrite>,
    _query: NoQuery,
    ImportBody(json): ImportBody,
) -> ApiResult<Json<PriceImportView>> {
    let ctx = admin.context();
    let vault = state.vault.clone();
    blocking(move || Ok(vault.import_prices(&json, &ctx)?.into()))
        .await
        .map(Json)
}

//! Routes about the server itself: health, the OpenAPI document and webhook delivery status.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Admin, WebhooksRead};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::NoQuery;
use crate::state::AppState;
use crate::webhooks::EndpointStatus;

/// The answer of the health check.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the server answers.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The delivery state of each configured webhook endpoint.
#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    /// One entry per endpoint, in the configuration's order; empty when the server runs
    /// without `--webhooks`. Never holds a secret.
    pub endpoints: Vec<EndpointStatus>,
}

/// Whether the server answers. Needs no admin key.
#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz", tag = "server",
    responses(
        (status = 200, description = "the server answers", body = Health),
        (
            status = 400,
            description = "a query parameter was given: this route takes none",
            body = ErrorBody
        ),
    ),
    security(()),
)]
pub async fn healthz(_query: NoQuery) -> Json<Health> {
    Json(Health { status: "ok" })
}

/// This document. Needs no admin key.
#[utoipa::path(
    get, path = "/openapi.json", operation_id = "openapi", tag = "server",
    responses(
        (
            status = 200,
            description = "the OpenAPI 3.1 document of this API",
            content_type = "application/json",
            body = Object
        ),
        (
            status = 400,
            description = "a query parameter was given: this route takes none",
            body = ErrorBody
        ),
    ),
    security(()),
)]
pub async fn openapi(_query: NoQuery) -> Response {
    let mut response = crate::openapi::json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The delivery state of each webhook endpoint.
#[utoipa::path(
    get, path = "/v1/webhooks", operation_id = "webhooks", tag = "server",
    responses((status = 200, description = "one entry per endpoint", body = WebhookList)),
    security(("admin_key" = ["webhooks:read"])),
)]
pub async fn webhooks(
    State(state): State<AppState>,
    _admin: Admin<WebhooksRead>,
    _query: NoQuery,
) -> ApiResult<Json<WebhookList>> {
    let endpoints = state
        .webhooks
        .as_ref()
        .map(|webhooks| webhooks.status())
        .unwrap_or_default();
    Ok(Json(WebhookList { endpoints }))
}

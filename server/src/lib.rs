//! The admin server of nanu (`nanu serve`): a REST API over one vault file, the dashboard and
//! alert webhooks.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let vault = nanu::Vault::open("keys.vault", &nanu::Options::passphrase("correct horse"))?;
//! nanu_server::run(vault, nanu_server::Config::default(), |addr| {
//!     println!("listening on http://{addr}");
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! Dependencies, and why: `axum` (on `tokio` and `hyper`) routes and serves HTTP and is the
//! most used Rust web framework, maintained by the tokio project; `utoipa` derives the OpenAPI
//! document from the handlers and the core's types, so that the document cannot drift from the
//! code; `http-body-util` (already under axum) tells a body over the size limit from other read
//! errors. The server serves each connection with `hyper` and `hyper-util` directly (both
//! already under axum) rather than through `axum::serve`, which takes no settings, so that
//! headers have a read timeout (hyper's, on hyper-util's tokio timer) and a stop has a deadline;
//! `tower-service` is the trait the router is called through. The webhook deliverer adds its
//! own (see `webhooks`).

mod auth;
mod dashboard;
mod error;
mod extract;
mod keys;
mod meta;
mod openapi;
mod owners;
mod prices;
mod reports;
mod serve;
mod state;
mod traffic;
pub mod webhooks;

use axum::Router;
use axum::routing::{get, post, put};

pub use auth::{ADMIN_ENV, Scope};
pub use error::{ApiCode, ApiError};
pub use extract::IMPORT_MAX_BODY;
pub use serve::{
    Config, DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_BODY,
    DEFAULT_SHUTDOWN_TIMEOUT, ServeError, Server, WebhookSetup, exposure_warning, run,
    shutdown_signal,
};
pub use state::AppState;

/// The OpenAPI 3.1 document of the API, as pretty JSON (what `/openapi.json` serves).
pub fn openapi_json() -> &'static str {
    openapi::json()
}

/// The routes of the API and the dashboard.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/openapi.json", get(meta::openapi))
        .route("/v1/keys", post(keys::mint).get(keys::list))
        .route("/v1/keys/{key_id}", get(keys::get).patch(keys::update))
        .route("/v1/keys/{key_id}/rotate", post(keys::rotate))
        .route("/v1/keys/{key_id}/revoke", post(keys::revoke))
        .route("/v1/keys/{key_id}/remaining", get(keys::remaining))
        .route("/v1/owners", get(owners::list))
        .route("/v1/owners/{owner}", get(owners::get))
        .route("/v1/owners/{owner}/limits", put(owners::set_limits))
        .route("/v1/owners/{owner}/revoke", post(owners::revoke))
        .route("/v1/prices", get(prices::list))
        .route(
            "/v1/prices/import",
            post(prices::import)
                .put(prices::set_model_named_import)
                .delete(prices::remove_model_named_import),
        )
        .route(
            "/v1/prices/{*model}",
            put(prices::set).delete(prices::remove),
        )
        .route("/v1/usage", get(reports::usage))
        .route("/v1/stats", get(reports::stats))
        .route("/v1/events", get(reports::events))
        .route("/v1/audit", get(reports::audit))
        .route("/v1/audit/verify", get(reports::audit_verify))
        .route("/v1/webhooks", get(meta::webhooks))
        .route("/v1/verify", post(traffic::verify))
        .route("/v1/charge", post(traffic::charge))
        .route("/v1/release", post(traffic::release))
        .fallback(dashboard::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ApiCode::MethodNotAllowed,
        format!("{} does not take {method}", uri.path()),
    )
}

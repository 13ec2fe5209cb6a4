//! What every handler shares: the vault, the body limit and timeout, and the webhook deliverer.

use std::sync::Arc;

use nanu::Vault;

use crate::error::{ApiError, ApiResult};
use crate::webhooks::Webhooks;

/// The state of a running server.
#[derive(Clone)]
pub struct AppState {
    /// The served vault.
    pub vault: Arc<Vault>,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// How long a client may take to send a request's body, counted from its headers.
    pub body_timeout: std::time::Duration,
    /// The webhook deliverer, when webhooks are configured.
    pub webhooks: Option<Arc<Webhooks>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("vault", &self.vault)
            .field("max_body", &self.max_body)
            .field("body_timeout", &self.body_timeout)
            .field("webhooks", &self.webhooks.is_some())
            .finish()
    }
}

/// Runs a vault call on tokio's blocking pool: commits wait for an fsync, and a shared vault
/// may take a write transaction inside verify, so no vault call runs on an async worker.
pub async fn blocking<T, F>(call: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => Err(ApiError::internal(
            "a vault call panicked (a bug in nanu); the vault file may be damaged",
        )),
        Err(_) => Err(ApiError::new(
            crate::error::ApiCode::Closed,
            "the server is shutting down",
        )),
    }
}

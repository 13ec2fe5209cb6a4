//! Running the server: bind, serve until told to stop, stop the webhooks, close the vault.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::serve::ListenerExt;
use nanu::Vault;

use crate::state::AppState;
use crate::webhooks::{RetryPolicy, WebhookConfig, WebhookError, Webhooks};

/// The default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on (default `127.0.0.1:7878`).
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes (default 1 MiB). The price import accepts
    /// up to 32 MiB whatever this says.
    pub max_body: usize,
    /// Alert webhooks, if any.
    pub webhooks: Option<WebhookSetup>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            max_body: DEFAULT_MAX_BODY,
            webhooks: None,
        }
    }
}

/// Where the webhook configuration and delivery state live.
#[derive(Clone, Debug)]
pub struct WebhookSetup {
    /// The JSON list of endpoints (`--webhooks`).
    pub config: PathBuf,
    /// The delivery state file (`--webhook-state`, default `<vault>.webhooks.state`).
    pub state: PathBuf,
    /// Retry and poll timing.
    pub retry: RetryPolicy,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// A setting is out of range.
    Config(String),
    /// The listening socket could not be opened.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The webhook configuration or state could not be loaded.
    Webhooks(WebhookError),
    /// Serving failed.
    Io(std::io::Error),
    /// Closing the vault failed (its last changes may not have been flushed).
    Vault(nanu::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config(message) => f.write_str(message),
            ServeError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServeError::Webhooks(err) => write!(f, "webhooks: {err}"),
            ServeError::Io(err) => write!(f, "serving failed: {err}"),
            ServeError::Vault(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Bind { source, .. } => Some(source),
            ServeError::Webhooks(err) => Some(err),
            ServeError::Io(err) => Some(err),
            ServeError::Vault(err) => Some(err),
            ServeError::Config(_) => None,
        }
    }
}

/// A server bound to its address, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    state: AppState,
}

impl Server {
    /// Binds the listening socket and starts the webhook deliverer (on the current tokio
    /// runtime).
    pub async fn bind(vault: Arc<Vault>, config: Config) -> Result<Server, ServeError> {
        if config.max_body == 0 {
            return Err(ServeError::Config(
                "the body limit must be at least 1 byte".to_owned(),
            ));
        }
        let webhooks = match config.webhooks {
            Some(setup) => {
                let endpoints = WebhookConfig::load(&setup.config).map_err(ServeError::Webhooks)?;
                let started = Webhooks::start(vault.clone(), endpoints, setup.state, setup.retry)
                    .map_err(ServeError::Webhooks)?;
                Some(Arc::new(started))
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(ServeError::Io)?;
        Ok(Server {
            listener,
            local_addr,
            state: AppState {
                vault,
                max_body: config.max_body,
                webhooks,
            },
        })
    }

    /// The address the server listens on (with the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, lets requests in flight finish, then stops the
    /// webhook deliverer (saving its state). The vault is left open: its owner closes it.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let webhooks = self.state.webhooks.clone();
        let app = crate::router(self.state);
        // Small JSON answers written at once gain nothing from Nagle's algorithm, and a client
        // on keep-alive would pay its delay.
        let listener = self.listener.tap_io(|stream| {
            if let Err(err) = stream.set_nodelay(true) {
                log::debug!("cannot set TCP_NODELAY: {err}");
            }
        });
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;

        if let Some(webhooks) = webhooks {
            match Arc::try_unwrap(webhooks) {
                Ok(webhooks) => webhooks.shutdown().await,
                // Every handler is done once serving returns, so this is not expected; dropping
                // the deliverer still stops it, and its state was saved after each delivery.
                Err(_) => log::warn!("webhook deliverer still shared at shutdown; stopped"),
            }
        }
        served.map_err(ServeError::Io)
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            log::warn!("cannot listen for ctrl-c: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                log::warn!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Serves `vault` until SIGINT or SIGTERM, then closes it (which flushes). `on_listening` is
/// called once the socket is bound, with its address. Blocks the calling thread; builds its
/// own tokio runtime.
pub fn run(
    vault: Vault,
    config: Config,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let vault = Arc::new(vault);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nanu-serve")
        .build()
        .map_err(ServeError::Io)?;
    let served = runtime.block_on(async {
        let server = Server::bind(vault.clone(), config).await?;
        on_listening(server.local_addr());
        server.run(shutdown_signal()).await
    });
    // Blocking threads still finishing a vault call are waited for by the runtime's drop.
    drop(runtime);
    let closed = vault.close().map_err(ServeError::Vault);
    served.and(closed)
}

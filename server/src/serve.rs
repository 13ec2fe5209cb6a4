//! Running the server: bind, serve until told to stop, stop the webhooks, close the vault.
//!
//! Connections are served here rather than by `axum::serve`, which takes no settings: every
//! phase a client drives has a bound. Its headers must arrive within the header timeout (hyper
//! counts it from the connection's opening, or from the end of the previous answer on a
//! kept-alive connection); its body within the body timeout of the headers (see
//! `extract::read_body`); and after the stop signal, the requests in flight get the shutdown
//! timeout before their connections are dropped. Handlers themselves have no deadline, so a
//! change the vault made is answered however long it took; only the shutdown timeout drops a
//! connection whose handler is still running, and its vault call still completes before the
//! vault is closed.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use nanu::Vault;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service as _;

use crate::extract::HeadersReceived;
use crate::state::AppState;
use crate::webhooks::{RetryPolicy, WebhookConfig, WebhookError, Webhooks};

/// The default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The default time a client has to send a request's headers: 10 s.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time a client has to send a request's body once its headers are in: 30 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The default time requests in flight get to finish after the stop signal: 10 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the accept loop waits before trying again when the system refuses a connection
/// for want of resources (file descriptors, memory); retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on (default `127.0.0.1:7878`).
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes (default 1 MiB). The price import accepts
    /// up to 32 MiB whatever this says.
    pub max_body: usize,
    /// How long a client may take to send a request's headers, counted from the connection's
    /// opening or from the end of the previous answer on it; so it is also how long an idle
    /// kept-alive connection stays open (default 10 s). The connection is closed when it
    /// passes.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body, counted from its headers (default
    /// 30 s); the request is then answered 408 and the connection closed.
    pub body_timeout: Duration,
    /// After the stop signal, how long requests in flight may take before their connections are
    /// dropped and the server returns anyway (default 10 s).
    pub shutdown_timeout: Duration,
    /// Alert webhooks, if any.
    pub webhooks: Option<WebhookSetup>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            max_body: DEFAULT_MAX_BODY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
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
            ServeError::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {}", io_reason(source))
            }
            ServeError::Webhooks(err) => write!(f, "{err}"),
            ServeError::Io(err) => write!(f, "serving failed: {}", io_reason(err)),
            ServeError::Vault(err) => f.write_str(err.message()),
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

/// An I/O error's reason as a message of ours: lowercase at the start, without the
/// `(os error N)` that the standard library adds.
pub(crate) fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error ") {
        Some(end) => &text[..end],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The warning to give when the server listens where other hosts can reach it, or `None` for
/// a loopback address. The server speaks plain HTTP, so admin keys would cross the network in
/// clear text.
pub fn exposure_warning(addr: SocketAddr) -> Option<String> {
    // `::ffff:127.0.0.1` is loopback too, seen through IPv6.
    if addr.ip().to_canonical().is_loopback() {
        return None;
    }
    let reach = if addr.ip().is_unspecified() {
        "every network interface of this host"
    } else {
        "a network interface other than loopback"
    };
    Some(format!(
        "listening on {addr}, {reach}: other hosts can reach the server, and it speaks plain \
         HTTP without TLS, so admin keys and secrets cross the network readable by anyone on \
         the path; listen on 127.0.0.1 and put a reverse proxy that terminates TLS in front"
    ))
}

/// A server bound to its address, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    header_timeout: Duration,
    shutdown_timeout: Duration,
}

impl Server {
    /// Binds the listening socket and starts the webhook deliverer (on the current tokio
    /// runtime). Logs a warning when the address is reachable from other hosts.
    pub async fn bind(vault: Arc<Vault>, config: Config) -> Result<Server, ServeError> {
        if config.max_body == 0 {
            return Err(ServeError::Config(
                "the body limit must be at least 1 byte".to_owned(),
            ));
        }
        if config.header_timeout.is_zero() || config.body_timeout.is_zero() {
            return Err(ServeError::Config(
                "the header and body timeouts must be more than zero".to_owned(),
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
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(ServeError::Io)?;
        if let Some(warning) = exposure_warning(local_addr) {
            log::warn!("{warning}");
        }
        Ok(Server {
            listener,
            local_addr,
            state: AppState {
                vault,
                max_body: config.max_body,
                body_timeout: config.body_timeout,
                webhooks,
            },
            header_timeout: config.header_timeout,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// The address the server listens on (with the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight finish
    /// for at most the shutdown timeout (dropping the connections still open after it), and
    /// stops the webhook deliverer (saving its state). The vault is left open: its owner
    /// closes it.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            listener,
            state,
            header_timeout,
            shutdown_timeout,
            ..
        } = self;
        let webhooks = state.webhooks.clone();
        let app = crate::router(state);
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let (stopping, _) = watch::channel(false);
        let mut connections = JoinSet::new();

        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let stop = stopping.subscribe();
                        let connection = serve_connection(&http, stream, peer, app.clone(), stop);
                        connections.spawn(connection);
                    }
                    Err(err) if is_connection_error(&err) => {}
                    Err(err) => {
                        log::warn!(
                            "cannot accept a connection: {}; trying again in {}",
                            io_reason(&err),
                            nanu::format_duration(ACCEPT_BACKOFF)
                        );
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                },
                // Finished connections are reaped as they go, so the set holds open ones only.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }

        drop(listener);
        stopping.send_replace(true);
        let drained = tokio::time::timeout(shutdown_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            log::warn!(
                "{} connection(s) still open {} after the stop; closing them",
                connections.len(),
                nanu::format_duration(shutdown_timeout)
            );
            // Aborted handlers drop their answers; a vault call already running on the blocking
            // pool still completes, and the runtime waits for it before the vault is closed.
            connections.shutdown().await;
        }

        if let Some(webhooks) = webhooks {
            match Arc::try_unwrap(webhooks) {
                Ok(webhooks) => webhooks.shutdown().await,
                // Every connection is gone by now, so this is not expected; dropping the
                // deliverer still stops it, and its state was saved after each delivery.
                Err(_) => log::warn!("webhook deliverer still shared at shutdown; stopped"),
            }
        }
        Ok(())
    }
}

/// Serves one connection until it ends, or until the stop, after which the request in flight
/// (if any) is answered and the connection closed.
fn serve_connection(
    http: &http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    mut stopping: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    // Small JSON answers written at once gain nothing from Nagle's algorithm, and a client on
    // keep-alive would pay its delay.
    if let Err(err) = stream.set_nodelay(true) {
        log::debug!("cannot set TCP_NODELAY: {}", io_reason(&err));
    }
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(peer));
        extensions.insert(HeadersReceived(tokio::time::Instant::now()));
        // A router is always ready: its `poll_ready` returns at once, so calling it directly
        // is what `ServiceExt::oneshot` would do.
        app.clone().call(request)
    });
    let connection = http.serve_connection(TokioIo::new(stream), service);
    async move {
        let mut connection = std::pin::pin!(connection);
        // An error means the server is gone, which stops this connection all the same.
        let stop = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            () = stop => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        // Clients that hang up, time out or send garbage end here; that is theirs to see.
        if let Err(err) = ended {
            log::debug!("connection from {peer} ended: {err}");
        }
    }
}

/// Whether an accept error concerns only the connection being accepted (the client left
/// before it was accepted), rather than the listener or the system.
fn is_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::Interrupted
    )
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
///
/// The signals are taken over when this is called, not when the future is first polled: a
/// signal sent as soon as the server says it listens then stops it cleanly, rather than
/// killing the process with the vault still open. Call it inside a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| -> Option<Signal> {
            signal(kind)
                .inspect_err(|err| log::warn!("cannot listen for {name}: {}", io_reason(err)))
                .ok()
        };
        let interrupt = listen(SignalKind::interrupt(), "SIGINT");
        let terminate = listen(SignalKind::terminate(), "SIGTERM");
        async move {
            let received = |signal: Option<Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            log::warn!("cannot listen for ctrl-c: {}", io_reason(&err));
            std::future::pending::<()>().await;
        }
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
        let stop = shutdown_signal();
        let server = Server::bind(vault.clone(), config).await?;
        on_listening(server.local_addr());
        server.run(stop).await
    });
    // Blocking threads still finishing a vault call are waited for by the runtime's drop.
    drop(runtime);
    let closed = vault.close().map_err(ServeError::Vault);
    served.and(closed)
}

//! `nanu serve`: the admin server over the vault, until SIGINT or SIGTERM.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use nanu::{Concurrency, Options, Vault};
use nanu_server::{Config, ServeError, WebhookSetup};

use crate::access;
use crate::args::{Global, ServeArgs};
use crate::failure::{Exit, Failure, Outcome};
use crate::output;

/// `nanu serve`.
pub fn command(global: &Global, args: &ServeArgs) -> Outcome {
    let listen = listen_address(&args.listen)?;
    let max_body = parse_size(&args.max_body)?;
    // The server runs beside the application processes unless told it is alone.
    let concurrency = global
        .concurrency
        .map_or(Concurrency::Shared, Concurrency::from);
    let (path, unlock) = access::locate(global)?;
    let webhooks = args.webhooks.as_ref().map(|config| WebhookSetup {
        config: config.clone(),
        state: args
            .webhook_state
            .clone()
            .unwrap_or_else(|| sibling(&path, ".webhooks.state")),
        retry: nanu_server::webhooks::RetryPolicy::default(),
    });
    let config = Config {
        listen,
        max_body,
        webhooks,
    };

    let options = Options::new(unlock).concurrency(concurrency);
    let vault = Vault::open(&path, &options)?;
    let vault_shown = path.display().to_string();
    nanu_server::run(vault, config, |addr| {
        // Scripts wait for this line; it goes out at once, before the first request.
        let _ = output::print(&format!(
            "nanu: serving {vault_shown} on http://{addr} ({concurrency})"
        ));
    })
    .map_err(serve_failure)
}

/// The listen address: `IP:PORT`, or `localhost:PORT`.
fn listen_address(text: &str) -> Outcome<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = || {
        Failure::invalid(format!(
            "--listen {text:?} is not an address such as 127.0.0.1:7878 or localhost:7878"
        ))
    };
    match text.rsplit_once(':') {
        Some(("localhost", _)) => text
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// A size: bytes, or a whole number of `KiB` or `MiB`.
fn parse_size(text: &str) -> Outcome<usize> {
    let trimmed = text.trim();
    let (digits, scale) = if let Some(n) = trimmed.strip_suffix("MiB") {
        (n, 1usize << 20)
    } else if let Some(n) = trimmed.strip_suffix("KiB") {
        (n, 1 << 10)
    } else {
        (trimmed, 1)
    };
    digits
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            Failure::invalid(format!(
                "--max-body {text:?} must be a positive size in bytes, KiB or MiB (e.g. 1MiB)"
            ))
        })
}

/// `path` with `suffix` added to its file name: `keys.vault` -> `keys.vault.webhooks.state`.
fn sibling(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn serve_failure(err: ServeError) -> Failure {
    match err {
        ServeError::Vault(err) => err.into(),
        ServeError::Bind { .. } | ServeError::Config(_) | ServeError::Webhooks(_) => {
            Failure::invalid(err.to_string())
        }
        other => Failure::new(Exit::Storage, other.to_string()),
    }
}

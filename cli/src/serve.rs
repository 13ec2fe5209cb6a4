//! `nanu serve`: the admin server over the vault, until SIGINT or SIGTERM.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use nanu::{Concurrency, Options, Vault};
use nanu_server::webhooks::WebhookError;
use nanu_server::{Config, ServeError, WebhookSetup};

use crate::access;
use crate::args::{Global, ServeArgs};
use crate::failure::{Exit, Failure, Outcome};
use crate::output;

/// `nanu serve`.
pub fn command(global: &Global, args: &ServeArgs) -> Outcome {
    let listen = listen_address(&args.listen)?;
    let max_body = parse_size(&args.max_body)?;
    let header_timeout = parse_timeout("--header-timeout", &args.header_timeout, false)?;
    let body_timeout = parse_timeout("--body-timeout", &args.body_timeout, false)?;
    let shutdown_timeout = parse_timeout("--shutdown-timeout", &args.shutdown_timeout, true)?;
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
        header_timeout,
        body_timeout,
        shutdown_timeout,
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

/// The longest timeout a flag may set: beyond it, a timeout no longer protects anything.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A timeout flag: a duration such as `10s` or `2m`, at most an hour; zero only where
/// `zero_allowed` (a zero shutdown timeout closes every connection at once).
fn parse_timeout(flag: &str, text: &str, zero_allowed: bool) -> Outcome<Duration> {
    let timeout = nanu::parse_duration(text)
        .map_err(|err| Failure::invalid(format!("{flag}: {}", err.message())))?;
    if (timeout.is_zero() && !zero_allowed) || timeout > MAX_TIMEOUT {
        let least = if zero_allowed { "0s" } else { "more than 0s" };
        return Err(Failure::invalid(format!(
            "{flag} {text:?} must be {least} and at most 1h"
        )));
    }
    Ok(timeout)
}

/// `path` with `suffix` added to its file name: `keys.vault` -> `keys.vault.webhooks.state`.
fn sibling(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The exit code of a failure to serve: a bad setting or webhook configuration is the user's
/// to fix (1), a webhooks file that is not there is 2, and what the system refused (the address
/// in use, the webhook state locked, damaged or unwritable) is a storage failure (4).
fn serve_failure(err: ServeError) -> Failure {
    let message = err.to_string();
    match err {
        ServeError::Vault(err) => err.into(),
        ServeError::Config(_) => Failure::invalid(message),
        ServeError::Webhooks(WebhookError::Config { .. }) => Failure::invalid(message),
        ServeError::Webhooks(WebhookError::Read { source, .. }) => {
            let exit = match source.kind() {
                std::io::ErrorKind::NotFound => Exit::NotFound,
                _ => Exit::Invalid,
            };
            Failure::new(exit, message)
        }
        ServeError::Webhooks(WebhookError::Vault(err)) => Failure {
            message,
            ..Failure::from(err)
        },
        _ => Failure::new(Exit::Storage, message),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use nanu::{Options, Vault};

    use super::*;

    /// Serves a fresh vault with `config` and returns how `nanu serve` would fail.
    fn serve_fails(dir: &Path, config: Config) -> Failure {
        let vault = Vault::create(dir.join("test.vault"), &Options::key([7; 32])).unwrap();
        let err = nanu_server::run(vault, config, |addr| panic!("served on {addr}"))
            .expect_err("the server cannot start");
        serve_failure(err)
    }

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[test]
    fn an_address_in_use_is_a_storage_failure_with_a_lowercase_message() {
        let dir = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind(loopback()).unwrap();
        let addr = taken.local_addr().unwrap();
        let config = Config {
            listen: addr,
            ..Config::default()
        };
        let failure = serve_fails(dir.path(), config);
        assert_eq!(failure.exit, Exit::Storage);
        assert_eq!(
            failure.to_string(),
            format!("storage: cannot listen on {addr}: address already in use")
        );
    }

    #[test]
    fn webhook_failures_exit_by_whose_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let setup = |config: &Path| WebhookSetup {
            config: config.to_owned(),
            state: dir.path().join("hooks.state"),
            retry: nanu_server::webhooks::RetryPolicy::default(),
        };
        let serve = |name: &str, config: &Path| {
            let folder = dir.path().join(name);
            std::fs::create_dir(&folder).unwrap();
            let config = Config {
                listen: loopback(),
                webhooks: Some(setup(config)),
                ..Config::default()
            };
            serve_fails(&folder, config)
        };

        let missing = serve("missing", &dir.path().join("nowhere.json"));
        assert_eq!(missing.exit, Exit::NotFound, "{missing}");

        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{").unwrap();
        let failure = serve("broken", &broken);
        assert_eq!(failure.exit, Exit::Invalid, "{failure}");
        assert!(failure.message.contains("not valid json"), "{failure}");

        let bad_timeout = dir.path().join("timeout.json");
        std::fs::write(
            &bad_timeout,
            r#"[{"id": "a", "url": "https://x.example", "secret_env": "PATH", "timeout": "soon"}]"#,
        )
        .unwrap();
        let failure = serve("timeout", &bad_timeout);
        assert_eq!(failure.exit, Exit::Invalid, "{failure}");
        assert_eq!(
            failure.to_string().matches("invalid_argument").count(),
            1,
            "the code once, in front: {failure}"
        );

        // Another deliverer holds the state file's lock.
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, "[]").unwrap();
        let lock = std::fs::File::create(dir.path().join("hooks.state.lock")).unwrap();
        lock.try_lock().unwrap();
        let failure = serve("locked", &empty);
        assert_eq!(failure.exit, Exit::Storage, "{failure}");
        assert!(failure.message.contains("in use by another"), "{failure}");
    }

    #[test]
    fn timeouts_are_durations_within_an_hour() {
        assert_eq!(
            parse_timeout("--header-timeout", "10s", false).unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            parse_timeout("--shutdown-timeout", "0s", true).unwrap(),
            Duration::ZERO
        );
        for (text, zero_allowed) in [("0s", false), ("2h", true), ("soon", true), ("-1s", true)] {
            let failure = parse_timeout("--body-timeout", text, zero_allowed).unwrap_err();
            assert_eq!(failure.exit, Exit::Invalid);
            assert!(failure.message.starts_with("--body-timeout"), "{failure}");
            assert!(!failure.message.contains("invalid_argument"), "{failure}");
        }
    }
}

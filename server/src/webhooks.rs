//! Alert webhooks: every vault event of an endpoint's kinds, POSTed to it in sequence order,
//! signed, at least once.
//!
//! Each endpoint has its own task. The task reads the vault's events after its cursor (polling
//! every [`RetryPolicy::poll`], woken early by a vault subscription), and sends each event of
//! its kinds until the endpoint answers 2xx, retrying with exponential backoff, forever: an
//! event is never skipped, so a failing endpoint holds back its own later events (and nobody
//! else's). Polling stays because other processes sharing the vault write events that this
//! process's subscription never sees.
//!
//! Where each endpoint stands lives in a small JSON state file, replaced atomically after every
//! delivery and every failure, so that a restart resumes where the last run stopped: the event
//! that was in flight may arrive twice (receivers tell by `Nanu-Event-Seq`), and no event is
//! lost or skipped. A lock on `<state file>.lock` keeps a second deliverer (another server on
//! the same vault) off the state file.
//!
//! Each request carries the event's JSON as its body and these headers:
//! - `Nanu-Event-Seq`: the event's sequence number;
//! - `Nanu-Timestamp`: when the request was signed, in Unix seconds;
//! - `Nanu-Signature`: `v1=` and the hex HMAC-SHA256, keyed with the endpoint's secret, of the
//!   timestamp, a `.` and the body. A receiver recomputes it over the raw body, compares in
//!   constant time, and refuses timestamps too far from its own clock to stop replays.
//!
//! Dependencies, and why: `reqwest` (0.12, the version the server's tests already use) as the
//! HTTP client, since it gives per-request timeouts, connection pooling, proxies from the
//! environment and redirect control on top of `hyper` without hand-written connection
//! plumbing; its default features are off and TLS is rustls on `ring` (no OpenSSL, no C
//! toolchain beyond what `ring` needs) trusting both the bundled Mozilla roots and the
//! system's store, so that an endpoint behind a private CA works. `hmac` and `sha2` sign;
//! `zeroize` wipes secrets when they are dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use nanu::{Event, EventKind, Vault};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::serve::io_reason;

/// The kinds an endpoint receives when its configuration names none: the alerts, not the
/// routine administrative events (rotated, revoked).
pub const ALERT_KINDS: [EventKind; 5] = [
    EventKind::Threshold,
    EventKind::Exhausted,
    EventKind::Expiring,
    EventKind::Expired,
    EventKind::Unpriced,
];

/// How long one request may take, connection included, unless the endpoint says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest per-request timeout a configuration may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest endpoint id, in bytes.
const MAX_ID_LEN: usize = 64;

/// Events read from the vault at a time.
const BATCH: usize = 100;

/// The largest configuration file read. Each endpoint takes a few hundred bytes; the bound is
/// there because the path may name something endless (`/dev/zero`).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The largest `secret_file` read: a signing secret is a short text.
const MAX_SECRET_BYTES: u64 = 4 << 10;

/// The largest state file read: far beyond what the largest configuration's state takes.
const MAX_STATE_BYTES: u64 = 16 << 20;

/// The format of the state file; a file of another version is refused, not guessed at.
const STATE_VERSION: u32 = 1;

/// How long [`Webhooks::start`] waits for a deliverer of this process that was just dropped to
/// let go of the state file.
const LOCK_WAIT: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------------------------------
// Errors

/// Why webhooks could not be configured or started.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebhookError {
    /// The configuration file could not be read.
    Read {
        /// The configuration file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The configuration is not valid: bad JSON, an unknown field, a bad URL, a missing
    /// secret, a duplicate id.
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, naming the endpoint.
        message: String,
    },
    /// The state file could not be read, understood, locked or written.
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The vault could not be read.
    Vault(nanu::Error),
    /// Delivery cannot start: a bad retry policy, no tokio runtime, no HTTP client.
    Start(String),
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookError::Read { path, source } => {
                write!(
                    f,
                    "cannot read webhooks config {}: {}",
                    path.display(),
                    io_reason(source)
                )
            }
            WebhookError::Config { path, message } => {
                write!(f, "webhooks config {}: {message}", path.display())
            }
            WebhookError::State { path, message } => {
                write!(f, "webhook state {}: {message}", path.display())
            }
            WebhookError::Vault(err) => {
                write!(
                    f,
                    "webhooks cannot read the vault's events: {}",
                    err.message()
                )
            }
            WebhookError::Start(message) => write!(f, "webhooks cannot start: {message}"),
        }
    }
}

impl std::error::Error for WebhookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WebhookError::Read { source, .. } => Some(source),
            WebhookError::Vault(err) => Some(err),
            _ => None,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Configuration

/// The endpoints to deliver to, parsed from the `--webhooks` JSON file: a list of
/// `{"id", "url", "secret_env" or "secret_file", "events" (optional), "timeout" (optional)}`.
///
/// `id` names the endpoint in the state file and the status (up to 64 letters, digits, `.`,
/// `_`, `-`); `url` is http or https; the secret comes from an environment variable or a file
/// (a relative path is taken from the config file's folder; one trailing newline is dropped);
/// `events` lists kinds (default: [`ALERT_KINDS`]); `timeout` bounds each request (default
/// 10s, such as `"30s"`).
#[derive(Debug)]
pub struct WebhookConfig {
    endpoints: Vec<Endpoint>,
}

/// One configured endpoint.
struct Endpoint {
    id: String,
    /// The whole URL, with any `user:password@` (sent as Basic auth by the HTTP client), path
    /// and query: shown nowhere but in the request itself.
    url: Url,
    secret: SigningSecret,
    kinds: Vec<EventKind>,
    timeout: Duration,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("origin", &self.url.origin().ascii_serialization())
            .field("kinds", &self.kinds)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An endpoint's signing secret: zeroed on drop, never shown.
struct SigningSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

/// One endpoint as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointEntry {
    id: String,
    url: String,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    timeout: Option<String>,
}

impl WebhookConfig {
    /// Reads and checks a configuration file, and reads every endpoint's secret.
    pub fn load(path: &Path) -> Result<WebhookConfig, WebhookError> {
        let invalid = |message: String| WebhookError::Config {
            path: path.to_owned(),
            message,
        };
        let mut text = Vec::new();
        let whole = read_at_most(path, MAX_CONFIG_BYTES, &mut text).map_err(|source| {
            WebhookError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
        if !whole {
            return Err(invalid(format!(
                "the file is larger than {} MiB; is it the right file?",
                MAX_CONFIG_BYTES >> 20
            )));
        }
        // The syntax is checked first: for a file cut short after `{`, serde would otherwise
        // complain of a map where a list belongs before it noticed the missing end.
        if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(&text) {
            return Err(invalid(format!("not valid json: {err}")));
        }
        let entries: Vec<EndpointEntry> = serde_json::from_slice(&text).map_err(|err| {
            invalid(format!(
                "{err} (expected a list of endpoints: [{{\"id\", \"url\", \"secret_env\" or \
                 \"secret_file\", \"events\"}}])"
            ))
        })?;
        let folder = path.parent().unwrap_or(Path::new("."));

        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(entries.len());
        for entry in entries {
            let endpoint = Endpoint::from_entry(entry, folder).map_err(invalid)?;
            if endpoints.iter().any(|e| e.id == endpoint.id) {
                return Err(invalid(format!("duplicate endpoint id {:?}", endpoint.id)));
            }
            endpoints.push(endpoint);
        }
        Ok(WebhookConfig { endpoints })
    }

    /// The endpoint ids, in the file's order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(|e| e.id.as_str())
    }

    /// Whether no endpoint is configured.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

impl Endpoint {
    /// Checks one entry; the error names the endpoint and never holds its secret or its URL
    /// (whose path or query may be a credential of its own).
    fn from_entry(entry: EndpointEntry, folder: &Path) -> Result<Endpoint, String> {
        let id = entry.id;
        check_id(&id)?;
        let fail = |what: String| format!("endpoint {id:?}: {what}");

        let url = Url::parse(&entry.url).map_err(|err| fail(format!("invalid url: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail(format!(
                "url must be http or https, not {:?}",
                url.scheme()
            )));
        }
        if url.host().is_none() {
            return Err(fail("url has no host".to_owned()));
        }

        let secret = match (entry.secret_env, entry.secret_file) {
            (Some(_), Some(_)) => {
                return Err(fail("give secret_env or secret_file, not both".to_owned()));
            }
            (None, None) => {
                return Err(fail(
                    "a secret is required: give secret_env (an environment variable) or \
                     secret_file"
                        .to_owned(),
                ));
            }
            (Some(name), None) => secret_from_env(&name).map_err(&fail)?,
            (None, Some(file)) => secret_from_file(&folder.join(file)).map_err(&fail)?,
        };

        let kinds = match entry.events {
            None => ALERT_KINDS.to_vec(),
            Some(names) if names.is_empty() => {
                return Err(fail(
                    "events is empty; leave it out to receive the alert kinds".to_owned(),
                ));
            }
            Some(names) => {
                // Parsed by the core's own names, so that a kind added there is accepted here and
                // the error lists every kind there is.
                let mut kinds = Vec::new();
                for name in names {
                    let kind: EventKind = serde_json::from_value(serde_json::Value::String(name))
                        .map_err(|err| fail(format!("events: {err}")))?;
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                kinds
            }
        };

        let timeout = match entry.timeout {
            None => DEFAULT_TIMEOUT,
            Some(text) => {
                let timeout =
                    nanu::parse_duration(&text).map_err(|err| fail(err.message().to_owned()))?;
                if timeout.is_zero() || timeout > MAX_TIMEOUT {
                    return Err(fail(format!(
                        "timeout {text:?} is not within 1ms and {}",
                        nanu::format_duration(MAX_TIMEOUT)
                    )));
                }
                timeout
            }
        };

        Ok(Endpoint {
            id,
            url,
            secret,
            kinds,
            timeout,
        })
    }
}

fn check_id(id: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(allowed) {
        return Err(format!(
            "endpoint id {id:?} must be 1 to {MAX_ID_LEN} letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

fn secret_from_env(name: &str) -> Result<SigningSecret, String> {
    let value = std::env::var_os(name)
        .ok_or_else(|| format!("environment variable {name} (secret_env) is not set"))?;
    let value = Zeroizing::new(value.into_encoded_bytes());
    if value.is_empty() {
        return Err(format!("environment variable {name} (secret_env) is empty"));
    }
    Ok(SigningSecret(value))
}

fn secret_from_file(path: &Path) -> Result<SigningSecret, String> {
    // Room for the whole bound up front, so that the secret is never copied by a reallocation
    // into memory that is freed without being wiped.
    let capacity = usize::try_from(MAX_SECRET_BYTES + 1).unwrap_or(usize::MAX);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    let whole = read_at_most(path, MAX_SECRET_BYTES, &mut bytes).map_err(|err| {
        format!(
            "cannot read secret_file {}: {}",
            path.display(),
            io_reason(&err)
        )
    })?;
    if !whole {
        return Err(format!(
            "secret_file {} is larger than {} KiB; a signing secret is a short text",
            path.display(),
            MAX_SECRET_BYTES >> 10
        ));
    }
    // Files written by editors and `echo` end in a newline that is no part of the secret.
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(format!("secret_file {} is empty", path.display()));
    }
    Ok(SigningSecret(bytes))
}

/// Reads the file at `path` into `buffer`, stopping after `limit` bytes; says whether it was
/// read whole. A bound is needed because a path can name a device or a pipe that never ends.
fn read_at_most(path: &Path, limit: u64, buffer: &mut Vec<u8>) -> io::Result<bool> {
    let file = File::open(path)?;
    let read = file.take(limit.saturating_add(1)).read_to_end(buffer)?;
    Ok(read as u64 <= limit)
}

// ------------------------------------------------------------------------------------------
// Retry policy

/// How deliveries are retried and how often the vault is polled for new events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure of an event; each further failure doubles it.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub cap: Duration,
    /// How often the vault is read for new events when nothing wakes the deliverer earlier.
    pub poll: Duration,
}

impl Default for RetryPolicy {
    /// 1s doubling to 10 minutes; a poll every second.
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
            poll: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    fn check(&self) -> Result<(), WebhookError> {
        if self.base.is_zero() || self.poll.is_zero() {
            return Err(WebhookError::Start(
                "the retry base and the poll interval must be more than zero".to_owned(),
            ));
        }
        if self.cap < self.base {
            return Err(WebhookError::Start(format!(
                "the retry cap ({}) is below the retry base ({})",
                nanu::format_duration(self.cap),
                nanu::format_duration(self.base)
            )));
        }
        Ok(())
    }

    /// The wait after the `failures`-th failure in a row of one event (counting from 1).
    fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

// ------------------------------------------------------------------------------------------
// State

/// The state file: where each endpoint stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    endpoints: BTreeMap<String, EndpointState>,
}

/// Where one endpoint stands. Fields added later must default, so that older files load.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct EndpointState {
    /// When the endpoint first appeared in the configuration; it receives only later events.
    configured_at: Timestamp,
    /// Every event up to this seq has been delivered, or is not of the endpoint's kinds, or
    /// came before the endpoint was configured.
    last_seq: u64,
    #[serde(default)]
    last_delivered_seq: Option<u64>,
    #[serde(default)]
    last_delivered_at: Option<Timestamp>,
    /// Events delivered since the endpoint was configured.
    #[serde(default)]
    delivered: u64,
    /// Failed attempts since the endpoint was configured.
    #[serde(default)]
    failures: u64,
    /// The event being retried.
    #[serde(default)]
    pending_seq: Option<u64>,
    /// Failed attempts of the pending event.
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    next_attempt_at: Option<Timestamp>,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    last_error_at: Option<Timestamp>,
}

impl EndpointState {
    fn new(configured_at: Timestamp, last_seq: u64) -> EndpointState {
        EndpointState {
            configured_at,
            last_seq,
            last_delivered_seq: None,
            last_delivered_at: None,
            delivered: 0,
            failures: 0,
            pending_seq: None,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            last_error_at: None,
        }
    }
}

fn read_state(path: &Path) -> Result<StateFile, WebhookError> {
    let fail = |message: String| WebhookError::State {
        path: path.to_owned(),
        message,
    };
    let mut text = Vec::new();
    match read_at_most(path, MAX_STATE_BYTES, &mut text) {
        Ok(true) => {}
        Ok(false) => {
            return Err(fail(format!(
                "it is larger than {} MiB, so it is not a webhook state file",
                MAX_STATE_BYTES >> 20
            )));
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(StateFile {
                version: STATE_VERSION,
                endpoints: BTreeMap::new(),
            });
        }
        Err(err) => return Err(fail(format!("cannot read it: {}", io_reason(&err)))),
    }
    // A state file that does not parse is refused rather than started over: starting over
    // would either send every endpoint's history again or skip what it has not received yet.
    let state: StateFile = serde_json::from_slice(&text).map_err(|err| {
        fail(format!(
            "cannot parse it ({err}); repair it, or remove it to start every endpoint from the \
             newest event"
        ))
    })?;
    if state.version != STATE_VERSION {
        return Err(fail(format!(
            "it has version {}, this nanu reads version {STATE_VERSION}",
            state.version
        )));
    }
    Ok(state)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old file or the new one:
/// a temporary file beside it, fsynced, renamed over it, and the folder fsynced.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    File::open(folder)?.sync_all()
}

/// Takes the lock file beside the state file, so that two deliverers never share a state
/// file (each would send every event, and each would overwrite the other's progress).
fn lock_state(state_path: &Path) -> Result<File, WebhookError> {
    let mut lock_path = state_path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let fail = |message: String| WebhookError::State {
        path: state_path.to_owned(),
        message,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| {
            fail(format!(
                "cannot open {}: {}",
                lock_path.display(),
                io_reason(&err)
            ))
        })?;

    // A deliverer dropped without `shutdown` lets go once its tasks have stopped, a moment
    // later; so wait briefly before calling the file taken.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(fail(
                    "it is in use by another webhook deliverer (another `nanu serve` on this \
                     vault?); give each server its own state file"
                        .to_owned(),
                ));
            }
            Err(fs::TryLockError::Error(err)) => {
                return Err(fail(format!(
                    "cannot lock {}: {}",
                    lock_path.display(),
                    io_reason(&err)
                )));
            }
        }
    }
}

/// Brings the state in line with the configuration: a new endpoint starts after the vault's
/// newest event, a known one goes on from where it stands, a removed one is forgotten.
fn reconcile(
    state: &mut StateFile,
    endpoints: &[Endpoint],
    vault: &Vault,
    now: Timestamp,
) -> Result<(), WebhookError> {
    let mut newest = None;
    for endpoint in endpoints {
        let Some(known) = state.endpoints.get_mut(&endpoint.id) else {
            let seq = match newest {
                Some(seq) => seq,
                None => *newest.insert(newest_seq(vault)?),
            };
            state
                .endpoints
                .insert(endpoint.id.clone(), EndpointState::new(now, seq));
            continue;
        };
        // A state file ahead of the vault belongs to another vault, or to this one before
        // it was restored from a backup. Going on from there would skip the next events;
        // going on from the vault's newest event skips nothing the vault has.
        if known.last_seq > 0 && !has_event(vault, known.last_seq)? {
            let seq = match newest {
                Some(seq) => seq,
                None => *newest.insert(newest_seq(vault)?),
            };
            log::warn!(
                "webhook endpoint {}: the state file has reached event {} but the vault's \
                 newest is {seq}; going on from {seq}",
                endpoint.id,
                known.last_seq
            );
            known.last_seq = seq;
            known.pending_seq = None;
            known.attempts = 0;
            known.next_attempt_at = None;
        }
    }
    state
        .endpoints
        .retain(|id, _| endpoints.iter().any(|e| &e.id == id));
    Ok(())
}

/// Whether the vault holds the event `seq`.
fn has_event(vault: &Vault, seq: u64) -> Result<bool, WebhookError> {
    let found = vault
        .events(seq.saturating_sub(1), 1)
        .map_err(WebhookError::Vault)?;
    Ok(found.first().is_some_and(|e| e.seq == seq))
}

/// The sequence number of the newest event in the vault (0 when there is none).
fn newest_seq(vault: &Vault) -> Result<u64, WebhookError> {
    vault.last_event_seq().map_err(WebhookError::Vault)
}

// ------------------------------------------------------------------------------------------
// Status

/// Where one endpoint stands, as `GET /v1/webhooks` shows it. Holds no secret, and of the URL
/// only its origin, since a URL's path or query is often a credential of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndpointStatus {
    /// The endpoint's id in the configuration.
    pub id: String,
    /// The scheme, host and port the endpoint is reached at.
    pub origin: String,
    /// The event kinds it receives.
    #[schema(value_type = Vec<String>)]
    pub events: Vec<EventKind>,
    /// When it first appeared in the configuration; it receives only events after that.
    #[schema(value_type = String, format = DateTime)]
    pub configured_at: Timestamp,
    /// Every event up to this sequence number has been delivered or is not for this endpoint.
    pub last_seq: u64,
    /// The last event delivered.
    pub last_delivered_seq: Option<u64>,
    /// When the last event was delivered.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_delivered_at: Option<Timestamp>,
    /// Events delivered since the endpoint was configured.
    pub delivered: u64,
    /// Failed attempts since the endpoint was configured.
    pub failures: u64,
    /// The event being retried, if the last attempt failed.
    pub pending_seq: Option<u64>,
    /// Failed attempts of the pending event (0 when nothing is pending).
    pub attempts: u32,
    /// When the pending event is tried again.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    /// What went wrong last (kept after later successes; compare `last_error_at`).
    pub last_error: Option<String>,
    /// When it went wrong.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_error_at: Option<Timestamp>,
}

// ------------------------------------------------------------------------------------------
// The deliverer

/// A running deliverer: one task per endpoint on the tokio runtime it was started on.
///
/// Dropping it stops delivery as [`Webhooks::shutdown`] does, without the final save and
/// without waiting; what was saved after the last delivery or failure still holds.
pub struct Webhooks {
    shared: Arc<Shared>,
    vault: Arc<Vault>,
    subscription: Option<u64>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the endpoint tasks and the status share.
struct Shared {
    state_path: PathBuf,
    state: Mutex<StateFile>,
    /// Held while the state file is written, so that writes land in the order their
    /// snapshots were taken.
    writer: Mutex<()>,
    /// The endpoints as configured, in the configuration's order, for the status.
    shown: Vec<Shown>,
    /// The lock on the state file, released when the last task lets go of `Shared`.
    _lock: File,
}

/// What the status shows of an endpoint's configuration.
struct Shown {
    id: String,
    origin: String,
    kinds: Vec<EventKind>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.shared.shown.iter().map(|e| e.id.as_str()).collect();
        f.debug_struct("Webhooks")
            .field("endpoints", &ids)
            .field("state_path", &self.shared.state_path)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Starts delivery on the current tokio runtime.
    ///
    /// An endpoint that the state file does not know yet starts after the newest event in
    /// the vault now; the state of endpoints no longer configured is dropped. Fails on a bad
    /// retry policy, outside a tokio runtime, on a state file that cannot be read or is used
    /// by another deliverer, or when the vault cannot be read.
    pub fn start(
        vault: Arc<Vault>,
        config: WebhookConfig,
        state_path: PathBuf,
        retry: RetryPolicy,
    ) -> Result<Webhooks, WebhookError> {
        retry.check()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| WebhookError::Start("not inside a tokio runtime".to_owned()))?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("nanu-webhooks/", env!("CARGO_PKG_VERSION")))
            // A redirected POST turns into a GET in most clients; a webhook URL that moved is
            // a configuration error the operator should see as a failing endpoint.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| WebhookError::Start(format!("cannot build the http client: {err}")))?;

        let lock = lock_state(&state_path)?;
        let mut state = read_state(&state_path)?;
        let now = Timestamp::now();
        reconcile(&mut state, &config.endpoints, &vault, now)?;
        let shared = Arc::new(Shared {
            state_path,
            state: Mutex::new(state),
            writer: Mutex::new(()),
            shown: config
                .endpoints
                .iter()
                .map(|e| Shown {
                    id: e.id.clone(),
                    origin: e.url.origin().ascii_serialization(),
                    kinds: e.kinds.clone(),
                })
                .collect(),
            _lock: lock,
        });
        // Saved now so that the moment each new endpoint was configured survives a restart
        // that comes before its first event.
        shared.save().map_err(|err| WebhookError::State {
            path: shared.state_path.clone(),
            message: format!("cannot write it: {}", io_reason(&err)),
        })?;

        let (stop, _) = watch::channel(false);
        let wakes: Vec<Arc<Notify>> = config
            .endpoints
            .iter()
            .map(|_| Arc::new(Notify::new()))
            .collect();
        let tasks = config
            .endpoints
            .into_iter()
            .zip(&wakes)
            .map(|(endpoint, wake)| {
                let delivery = Delivery {
                    endpoint,
                    shared: shared.clone(),
                    vault: vault.clone(),
                    client: client.clone(),
                    retry,
                    wake: wake.clone(),
                    stop: stop.subscribe(),
                };
                runtime.spawn(delivery.run())
            })
            .collect();
        // Wakes the tasks as soon as this process commits an event; events from other
        // processes wait for the next poll.
        let subscription = (!wakes.is_empty()).then(|| {
            vault.subscribe(move |_event| {
                for wake in &wakes {
                    wake.notify_one();
                }
            })
        });

        Ok(Webhooks {
            shared,
            vault,
            subscription,
            stop,
            tasks,
        })
    }

    /// What `GET /v1/webhooks` returns: each endpoint, in the configuration's order.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let state = self.shared.lock_state();
        self.shared
            .shown
            .iter()
            .filter_map(|shown| {
                let s = state.endpoints.get(&shown.id)?;
                Some(EndpointStatus {
                    id: shown.id.clone(),
                    origin: shown.origin.clone(),
                    events: shown.kinds.clone(),
                    configured_at: s.configured_at,
                    last_seq: s.last_seq,
                    last_delivered_seq: s.last_delivered_seq,
                    last_delivered_at: s.last_delivered_at,
                    delivered: s.delivered,
                    failures: s.failures,
                    pending_seq: s.pending_seq,
                    attempts: s.attempts,
                    next_attempt_at: s.next_attempt_at,
                    last_error: s.last_error.clone(),
                    last_error_at: s.last_error_at,
                })
            })
            .collect()
    }

    /// Stops delivery, saving state. A request in flight is abandoned; its event is sent
    /// again by the next run.
    pub async fn shutdown(mut self) {
        self.stop_tasks();
        for task in std::mem::take(&mut self.tasks) {
            if let Err(err) = task.await {
                log::error!("webhook delivery task failed: {err}");
            }
        }
        let shared = self.shared.clone();
        match tokio::task::spawn_blocking(move || shared.save()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => log::warn!(
                "cannot save webhook state {}: {}",
                self.shared.state_path.display(),
                io_reason(&err)
            ),
            Err(err) => log::error!("webhook state save failed: {err}"),
        }
    }

    fn stop_tasks(&mut self) {
        if let Some(id) = self.subscription.take() {
            self.vault.unsubscribe(id);
        }
        self.stop.send_replace(true);
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        self.stop_tasks();
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, StateFile> {
        // The state is plain data that every writer leaves consistent between statements; a
        // panic elsewhere while it was held does not make it wrong.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut EndpointState)) {
        if let Some(entry) = self.lock_state().endpoints.get_mut(id) {
            change(entry);
        }
    }

    fn save(&self) -> io::Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = serde_json::to_vec_pretty(&*self.lock_state()).map_err(io::Error::other)?;
        write_atomically(&self.state_path, &bytes)
    }
}

/// One endpoint's delivery task.
struct Delivery {
    endpoint: Endpoint,
    shared: Arc<Shared>,
    vault: Arc<Vault>,
    client: reqwest::Client,
    retry: RetryPolicy,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
}

/// How an event's delivery ended.
enum Sent {
    Delivered,
    Stopped,
}

impl Delivery {
    async fn run(mut self) {
        let id = self.endpoint.id.clone();
        let mut cursor = match self.shared.lock_state().endpoints.get(&id) {
            Some(state) => state.last_seq,
            None => return,
        };

        while !*self.stop.borrow() {
            let events = match self.read_events(cursor).await {
                Ok(events) => events,
                Err(err) => {
                    // A vault that cannot be read (closed, a damaged event record) is retried
                    // at the poll interval; skipping would lose the event.
                    log::warn!("webhook endpoint {id}: {err}");
                    self.record_failure(None, err, self.retry.poll).await;
                    self.pause(self.retry.poll).await;
                    continue;
                }
            };
            if events.is_empty() {
                self.pause(self.retry.poll).await;
                continue;
            }
            let full = events.len() == BATCH;
            for event in events {
                if self.endpoint.kinds.contains(&event.kind) {
                    match self.send_until_delivered(&event).await {
                        Sent::Delivered => {}
                        Sent::Stopped => return,
                    }
                }
                cursor = event.seq;
            }
            // The cursor also moves past events of other kinds; saving it spares the next run
            // reading them again.
            let moved = {
                let mut state = self.shared.lock_state();
                match state.endpoints.get_mut(&id) {
                    Some(entry) if entry.last_seq < cursor => {
                        entry.last_seq = cursor;
                        true
                    }
                    _ => false,
                }
            };
            if moved {
                self.save().await;
            }
            if !full {
                self.pause(self.retry.poll).await;
            }
        }
    }

    async fn read_events(&self, after: u64) -> Result<Vec<Event>, String> {
        let vault = self.vault.clone();
        match tokio::task::spawn_blocking(move || vault.events(after, BATCH)).await {
            Ok(Ok(events)) => Ok(events),
            Ok(Err(err)) => Err(format!(
                "cannot read events after {after}: {}",
                err.message()
            )),
            Err(err) => Err(format!("reading events after {after} failed: {err}")),
        }
    }

    /// Sends `event` until the endpoint takes it or the deliverer stops.
    async fn send_until_delivered(&self, event: &Event) -> Sent {
        // An event always encodes; were one ever not to, it is retried like a refused
        // delivery rather than skipped, and the error says why.
        let body = serde_json::to_vec(event)
            .map_err(|err| format!("cannot encode event {} as json: {err}", event.seq));
        let mut stop = self.stop.clone();

        // A retry scheduled by an earlier run for this very event keeps its count and time.
        let (mut attempts, mut next_at) = {
            let state = self.shared.lock_state();
            match state.endpoints.get(&self.endpoint.id) {
                Some(s) if s.pending_seq == Some(event.seq) => (s.attempts, s.next_attempt_at),
                _ => (0, None),
            }
        };
        loop {
            if let Some(at) = next_at {
                let wait = Timestamp::now()
                    .duration_until(at)
                    .try_into()
                    .unwrap_or(Duration::ZERO);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return Sent::Stopped,
                }
            }
            let outcome = match &body {
                Ok(body) => tokio::select! {
                    outcome = self.post(event.seq, body) => outcome,
                    _ = stop.wait_for(|stopped| *stopped) => return Sent::Stopped,
                },
                Err(message) => Err(message.clone()),
            };
            match outcome {
                Ok(()) => {
                    let now = Timestamp::now();
                    self.shared.update(&self.endpoint.id, |s| {
                        s.last_seq = s.last_seq.max(event.seq);
                        s.last_delivered_seq = Some(event.seq);
                        s.last_delivered_at = Some(now);
                        s.delivered = s.delivered.saturating_add(1);
                        s.pending_seq = None;
                        s.attempts = 0;
                        s.next_attempt_at = None;
                    });
                    self.save().await;
                    log::debug!(
                        "webhook endpoint {}: delivered event {}",
                        self.endpoint.id,
                        event.seq
                    );
                    return Sent::Delivered;
                }
                Err(message) => {
                    attempts = attempts.saturating_add(1);
                    let delay = self.retry.delay(attempts);
                    log::warn!(
                        "webhook endpoint {}: event {} attempt {attempts} failed ({message}); \
                         next try in {}",
                        self.endpoint.id,
                        event.seq,
                        nanu::format_duration(delay)
                    );
                    let failed = Some((event.seq, attempts));
                    next_at = Some(self.record_failure(failed, message, delay).await);
                }
            }
        }
    }

    /// Records a failure, of attempt `n` at the event `seq` or of reading the vault, and saves
    /// it; returns when the next attempt is due.
    async fn record_failure(
        &self,
        failed: Option<(u64, u32)>,
        message: String,
        delay: Duration,
    ) -> Timestamp {
        let now = Timestamp::now();
        let next = jiff::SignedDuration::try_from(delay)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX);
        self.shared.update(&self.endpoint.id, |s| {
            if let Some((seq, attempts)) = failed {
                s.pending_seq = Some(seq);
                s.attempts = attempts;
                s.failures = s.failures.saturating_add(1);
                s.next_attempt_at = Some(next);
            }
            s.last_error = Some(message);
            s.last_error_at = Some(now);
        });
        self.save().await;
        next
    }

    /// One signed POST; `Err` says why it did not count as delivered.
    async fn post(&self, seq: u64, body: &[u8]) -> Result<(), String> {
        let timestamp = Timestamp::now().as_second();
        let signature = sign(&self.endpoint.secret, timestamp, body);
        let response = self
            .client
            .post(self.endpoint.url.clone())
            .timeout(self.endpoint.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Nanu-Event-Seq", seq)
            .header("Nanu-Timestamp", timestamp)
            .header("Nanu-Signature", format!("v1={signature}"))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|err| describe(err, self.endpoint.timeout))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the endpoint answered {status}"))
        }
    }

    async fn save(&self) {
        let shared = self.shared.clone();
        match tokio::task::spawn_blocking(move || shared.save()).await {
            Ok(Ok(())) => {}
            // Delivery goes on: the file is only behind, which costs repeats after a restart,
            // never a lost event.
            Ok(Err(err)) => log::warn!(
                "cannot save webhook state {}: {}",
                self.shared.state_path.display(),
                io_reason(&err)
            ),
            Err(err) => log::error!("webhook state save failed: {err}"),
        }
    }

    /// Waits for the poll interval, an event committed in this process, or the stop.
    async fn pause(&mut self, wait: Duration) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = self.stop.wait_for(|stopped| *stopped) => {}
        }
    }
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` under the endpoint's secret.
fn sign(secret: &SigningSecret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret.0)
        .expect("hmac takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Says why a request failed, without its URL (whose path or query may be a credential).
fn describe(err: reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("no answer within {}", nanu::format_duration(timeout));
    }
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_timestamp_a_dot_and_the_body() {
        // Computed independently: Python's hmac.new(key, msg, hashlib.sha256).hexdigest().
        let secret = SigningSecret(Zeroizing::new(b"whsec_test".to_vec()));
        assert_eq!(
            sign(&secret, 1_700_000_000, br#"{"seq":1}"#),
            "926c3c48823e4dc937cdb0992313bcbbc472579d779ab54f0d4e09e4049838aa"
        );
    }

    #[test]
    fn the_wait_doubles_from_the_base_up_to_the_cap() {
        let retry = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            poll: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (1..=6).map(|n| retry.delay(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(retry.delay(u32::MAX), retry.cap);
        let default = RetryPolicy::default();
        assert_eq!(default.delay(40), default.cap);
    }

    #[test]
    fn a_state_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"], "no temporary file is left behind");
    }
}

//! How a vault is opened.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::crypto::{KdfParams, Unlock};
use crate::pipeline::Durability;

/// A source of the current time, for tests and replays that drive time themselves.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Options for `Vault::create` and `Vault::open`.
#[derive(Clone)]
pub struct Options {
    /// How the vault is unlocked.
    pub unlock: Unlock,
    /// What a crash may lose (default `durable`).
    pub durability: Durability,
    /// How often counters touched only by verify, and everything at the `process` and
    /// `relaxed` levels, are committed (default 100 ms).
    pub flush_interval: Duration,
    /// How long a hold lives before it is given back if never settled (default 10 minutes).
    pub hold_timeout: Duration,
    /// How long before a key's expiry the `expiring` event fires (default 7 days).
    pub expiring_lead: Duration,
    /// How long a charge's request id is remembered for idempotency (default 7 days).
    pub idempotency_window: Duration,
    /// Argon2id parameters for a new vault or a rekey (ignored by `open`).
    pub kdf: KdfParams,
    /// The key prefix of a new vault (default `nanu`; ignored by `open`).
    pub prefix: String,
    /// The currency name of a new vault (default `usd`; ignored by `open`).
    pub currency: String,
    /// The clock; the system clock when `None`.
    pub clock: Option<Clock>,
    /// Whether other processes may open the vault file at the same time (default
    /// `exclusive`).
    pub concurrency: Concurrency,
    /// In the `shared` mode: how long the slices of limits leased by a process that stopped
    /// without closing the vault (killed, crashed) stay reserved before other processes take
    /// them back (default 10 s). A live process renews its lease well within this time.
    pub lease_timeout: Duration,
}

/// How processes share a vault file. Chosen when opening; the same names in every language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Concurrency {
    /// One process has the file open; another process that tries gets a `locked` error. The
    /// fastest mode: every counter lives in this process's memory.
    #[default]
    Exclusive,
    /// Any number of processes on one machine open the file at once (workers of a web
    /// server). Each process leases slices of every limit from the shared counters and admits
    /// from its slices in memory, so limits hold exactly across processes; changes to keys,
    /// owners and prices made in one process are seen by the next verify in every other.
    /// Every commit is durable (fsynced), so only the `durable` level is accepted.
    Shared,
}

impl Concurrency {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Concurrency::Exclusive => "exclusive",
            Concurrency::Shared => "shared",
        }
    }
}

impl std::str::FromStr for Concurrency {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> crate::error::Result<Concurrency> {
        match s {
            "exclusive" => Ok(Concurrency::Exclusive),
            "shared" => Ok(Concurrency::Shared),
            _ => Err(crate::error::Error::invalid(format!(
                "unknown concurrency {s:?} (exclusive or shared)"
            ))),
        }
    }
}

impl fmt::Display for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Options {
    /// Options with a passphrase and every default.
    pub fn passphrase(passphrase: impl Into<String>) -> Options {
        Options::new(Unlock::passphrase(passphrase))
    }

    /// Options with a raw 32-byte key and every default.
    pub fn key(key: [u8; 32]) -> Options {
        Options::new(Unlock::key(key))
    }

    /// Options with an unlock method and every default.
    pub fn new(unlock: Unlock) -> Options {
        Options {
            unlock,
            durability: Durability::Durable,
            flush_interval: Duration::from_millis(100),
            hold_timeout: Duration::from_secs(600),
            expiring_lead: Duration::from_secs(7 * 86_400),
            idempotency_window: Duration::from_secs(7 * 86_400),
            kdf: KdfParams::DEFAULT,
            prefix: "nanu".to_owned(),
            currency: "usd".to_owned(),
            clock: None,
            concurrency: Concurrency::Exclusive,
            lease_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the durability level.
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// Sets the KDF parameters.
    pub fn kdf(mut self, kdf: KdfParams) -> Options {
        self.kdf = kdf;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Clock) -> Options {
        self.clock = Some(clock);
        self
    }

    /// Sets how processes share the file.
    pub fn concurrency(mut self, concurrency: Concurrency) -> Options {
        self.concurrency = concurrency;
        self
    }

    /// Sets how long a dead process's leased slices stay reserved (`shared` mode).
    pub fn lease_timeout(mut self, timeout: Duration) -> Options {
        self.lease_timeout = timeout;
        self
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("unlock", &self.unlock)
            .field("durability", &self.durability)
            .field("flush_interval", &self.flush_interval)
            .field("hold_timeout", &self.hold_timeout)
            .field("expiring_lead", &self.expiring_lead)
            .field("idempotency_window", &self.idempotency_window)
            .field("kdf", &self.kdf)
            .field("prefix", &self.prefix)
            .field("currency", &self.currency)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .field("concurrency", &self.concurrency)
            .field("lease_timeout", &self.lease_timeout)
            .finish()
    }
}

/// Per-call context of administrative calls: the time (for replays and tests) and who acts
/// (recorded in the audit trail).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The time of the call; the vault's clock when `None`.
    pub at: Option<Timestamp>,
    /// Who acts, e.g. an admin key id or a user name.
    pub actor: Option<String>,
}

impl Context {
    /// A context at a given time.
    pub fn at(at: Timestamp) -> Context {
        Context {
            at: Some(at),
            actor: None,
        }
    }

    /// A context naming the actor.
    pub fn actor(actor: impl Into<String>) -> Context {
        Context {
            at: None,
            actor: Some(actor.into()),
        }
    }
}

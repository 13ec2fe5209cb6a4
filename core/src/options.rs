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

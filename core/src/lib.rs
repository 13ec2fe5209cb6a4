//! nanu: an embedded API-key vault.
//!
//! A [`Vault`] keeps API keys, their policies and their usage in one encrypted redb file, and
//! enforces keys, scopes, IP allowlists, expiry, rate limits, token limits and money budgets
//! in the calling process: [`Vault::verify`] on every request, [`Vault::charge`] with what the
//! request really used.
//!
//! ```no_run
//! use nanu::{Context, KeySpec, Limit, Options, Usage, Vault, VerifyRequest};
//!
//! # fn main() -> nanu::Result<()> {
//! let vault = Vault::create("keys.vault", &Options::passphrase("correct horse"))?;
//! let mut spec = KeySpec::new("acme");
//! spec.limits.push("cost=$10/month".parse::<Limit>()?);
//! spec.limits.push("requests=100/min".parse::<Limit>()?);
//! let minted = vault.mint(&spec, &Context::default())?;
//!
//! let verdict = vault.verify(minted.secret.expose(), &VerifyRequest::default())?;
//! assert!(verdict.allowed);
//! let usage =
//!     Usage { input_tokens: 1200, output_tokens: 300, cost: Some(4_500), ..Usage::default() };
//! vault.charge(&minted.key_id, &usage)?;
//! vault.close()?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod crypto;
mod error;
mod events;
mod key;
mod ledger;
mod limit_syntax;
mod options;
mod pipeline;
mod policy;
mod prices;
mod secret;
mod store;
mod usage;
mod vault;
mod verdict;
mod window;

pub use audit::{AuditCheck, AuditRecord};
pub use crypto::{KdfParams, Unlock};
pub use error::{Error, ErrorCode, Result};
pub use events::{Event, EventKind};
pub use key::{KeyFilter, KeyInfo, KeyPage, KeyPatch, KeySpec, Minted, Status};
pub use options::{Clock, Concurrency, Context, Options};
pub use pipeline::Durability;
pub use policy::{DEFAULT_ALERT_AT, Limit, Unit, Window, format_duration, parse_duration};
pub use prices::{Price, format_money, parse_money};
pub use secret::{MAX_SECRET_LEN, SECRET_REGEX, Secret};
pub use usage::{ChargeOutcome, Dim, Usage, UsageQuery, UsageRecord, UsageRow};
pub use vault::{OwnerInfo, PriceImport, Stats, Vault};
pub use verdict::{Code, HoldAmounts, Level, LimitStatus, Remaining, Verdict, VerifyRequest};
pub use window::{Bucket, Period};

/// The README's Rust quick start, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeQuickStart;

//! The C ABI of nanu, the embedded API-key vault.
//!
//! `include/nanu.h` is generated from this crate by cbindgen (see `cbindgen.toml`); the doc
//! comments here are the header's documentation. The conventions every export follows:
//!
//! - Handles are opaque: `nanu_vault` (`nanu_vault_create`/`nanu_vault_open`, then
//!   `nanu_vault_close`), `nanu_options`, `nanu_secret`, `nanu_secrets` and `nanu_string`
//!   (each with its `_free`). Freeing or closing NULL does nothing.
//! - Every fallible call returns a `nanu_status`; `NANU_STATUS_OK` is 0. On failure
//!   `nanu_last_error()` describes what went wrong, and no output was written.
//! - Text arguments are `(const char *ptr, size_t len)` pairs of UTF-8, never needing a
//!   terminating NUL. Richer inputs are JSON documents passed the same way.
//! - A verify or charge reads and writes plain C structs; richer outputs are JSON documents in
//!   a library-owned `nanu_string`. Secrets come back in a `nanu_secret`, zeroed when freed.
//! - Times given to nanu are microseconds since the Unix epoch (UTC), the vault's own
//!   precision, so that replays are exact; `0` means "now, by the vault's clock". Times and
//!   waits that nanu reports (`resets_at_ms`, `retry_after_ms`) are milliseconds, rounded up.
//! - No panic crosses the boundary: every export runs inside one guard (`guard.rs`), which
//!   turns a panic into `NANU_STATUS_PANIC`.

mod charge;
mod guard;
mod keys;
mod options;
mod owners;
mod prices;
mod reports;
mod secret;
mod status;
mod text;
mod vault;
mod verify;

pub use charge::*;
pub use keys::*;
pub use options::*;
pub use owners::*;
pub use prices::*;
pub use reports::*;
pub use secret::*;
pub use status::*;
pub use text::*;
pub use vault::*;
pub use verify::*;

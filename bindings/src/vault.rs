//! `nanu_vault`: creating, opening and closing a vault, and its housekeeping calls.

use std::ffi::c_char;

use nanu_core::{Error, Vault};

use crate::guard::guard;
use crate::options::{nanu_options, options_ref};
use crate::status::nanu_status;
use crate::text::{at, context, give, invalid, nanu_context, out, put, text};

/// An open vault: one encrypted file with keys, policies, counters and the usage log.
/// Opened by `nanu_vault_create` or `nanu_vault_open`, closed (and released) by
/// `nanu_vault_close`.
///
/// Thread safety: every call that takes a `const nanu_vault *` may run on any thread,
/// concurrently with any other such call on the same vault; limits hold exactly under
/// concurrent verifies and charges. `nanu_vault_close` must be the last call on a vault,
/// made once no other thread uses it.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct nanu_vault {
    pub(crate) vault: Vault,
}

impl nanu_vault {
    /// Wraps a vault opened from Rust, for Rust code that also drives the C ABI (benchmarks,
    /// tests). Hand it to C as `Box::into_raw(Box::new(handle))`; `nanu_vault_close` frees it.
    pub fn new(vault: Vault) -> nanu_vault {
        nanu_vault { vault }
    }

    /// The vault behind the handle.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }
}

/// Reads a vault handle.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault` that is not being closed.
pub(crate) unsafe fn vault_ref<'a>(vault: *const nanu_vault) -> Result<&'a Vault, Error> {
    // SAFETY: the caller passes NULL or a live vault; nanu_vault_close is documented to run
    // only after every other call on it has returned.
    match unsafe { vault.as_ref() } {
        Some(handle) => Ok(&handle.vault),
        None => Err(invalid("vault is NULL")),
    }
}

/// Creates a new vault file at `path` (UTF-8, `path_len` bytes), which must not exist yet.
/// `options` must carry a passphrase or key; the KDF parameters, prefix and currency apply.
///
/// On success `*out_vault` receives the open vault, owned by the caller until
/// `nanu_vault_close`. On failure nothing is written to `*out_vault`.
///
/// # Safety
///
/// `path` is NULL or valid for reads of `path_len` bytes; `options` is NULL or a live
/// `nanu_options`; `out_vault` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_create(
    path: *const c_char,
    path_len: usize,
    options: *const nanu_options,
    out_vault: *mut *mut nanu_vault,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let path = unsafe { text("path", path, path_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_ref(options) }?.options()?;
        let slot = out("out_vault", out_vault)?;

        let vault = Vault::create(path, &options)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, Box::new(nanu_vault { vault })) };
        Ok(())
    })
}

/// Opens an existing vault file. `options` must carry the passphrase or key the vault was
/// created or last rekeyed with (`NANU_STATUS_WRONG_PASSPHRASE` otherwise); its durability,
/// timings and clock apply to this handle.
///
/// On success `*out_vault` receives the open vault, owned by the caller until
/// `nanu_vault_close`.
///
/// # Safety
///
/// `path` is NULL or valid for reads of `path_len` bytes; `options` is NULL or a live
/// `nanu_options`; `out_vault` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_open(
    path: *const c_char,
    path_len: usize,
    options: *const nanu_options,
    out_vault: *mut *mut nanu_vault,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let path = unsafe { text("path", path, path_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_ref(options) }?.options()?;
        let slot = out("out_vault", out_vault)?;

        let vault = Vault::open(path, &options)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, Box::new(nanu_vault { vault })) };
        Ok(())
    })
}

/// Commits everything outstanding, closes the file and releases the handle. NULL does
/// nothing and returns `NANU_STATUS_OK`. The handle is released even when the final commit
/// fails (the status then says why); never use it again.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`, closed once, after every other call on it (from
/// every thread) has returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_close(vault: *mut nanu_vault) -> nanu_status {
    guard(|| {
        if vault.is_null() {
            return Ok(());
        }
        // SAFETY: a non-NULL vault came from Box::into_raw in create or open, and the caller
        // guarantees this is its last use.
        let handle = unsafe { Box::from_raw(vault) };
        handle.vault.close()
    })
}

/// Waits until everything done so far is committed to the file.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_flush(vault: *const nanu_vault) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        unsafe { vault_ref(vault) }?.flush()
    })
}

/// Runs the periodic work now, at `at_us` (0: the vault's clock): gives back expired holds
/// and fires expiring and expired events. The vault does this by itself; replays and tests
/// that drive time call it.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_tick(vault: *const nanu_vault, at_us: i64) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        vault.tick(at("at_us", at_us)?)
    })
}

/// Counts a vault keeps (`nanu_vault_stats`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct nanu_stats {
    /// Keys in the vault (all statuses).
    pub keys: u64,
    /// Owners known.
    pub owners: u64,
    /// Verifies refused as malformed since the vault was created.
    pub malformed: u64,
    /// Verifies of well-formed secrets that match no key.
    pub not_found: u64,
    /// Outstanding holds.
    pub holds: u64,
    /// Key records that failed to open (corrupt).
    pub corrupt_keys: u64,
}

/// Writes the vault's counts to `*out_stats`.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `out_stats` is NULL or valid for writing a
/// `nanu_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_stats(
    vault: *const nanu_vault,
    out_stats: *mut nanu_stats,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        let slot = out("out_stats", out_stats)?;

        let stats = vault.stats();
        let stats = nanu_stats {
            keys: stats.keys,
            owners: stats.owners,
            malformed: stats.malformed,
            not_found: stats.not_found,
            holds: stats.holds,
            corrupt_keys: stats.corrupt_keys,
        };
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { put(slot, stats) };
        Ok(())
    })
}

/// Re-seals the vault's data key under the passphrase or key of `options`, with its KDF
/// parameters and a fresh salt. Only the file header changes; the next open needs the new
/// passphrase or key.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `options` is NULL or a live `nanu_options`; `ctx`
/// is NULL or a valid `nanu_context`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_rekey(
    vault: *const nanu_vault,
    options: *const nanu_options,
    ctx: *const nanu_context,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let (unlock, kdf) = unsafe { options_ref(options) }?.unlock()?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;
        vault.rekey(&unlock, kdf, &ctx)
    })
}

//! `nanu_options`: how a vault is created or opened (unlock, durability, concurrency, timings,
//! clock).

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use nanu_core::{Concurrency, Durability, Error, KdfParams, Options, Unlock};

use crate::guard::guard;
use crate::text::{give, invalid, out, text};

/// What a crash may lose, chosen when a vault is opened (`nanu_options_set_durability`).
/// The same names in every nanu language binding.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nanu_durability {
    /// The default. A charge or administrative call that returned survives power loss:
    /// the caller waits for the fsync of the commit holding its change (shared with
    /// concurrent callers).
    Durable = 0,
    /// A charge that returned survives the process being killed, not power loss: it reached
    /// the operating system (a journal file) before returning, and is committed to the vault
    /// every flush interval.
    Process = 1,
    /// Charges are committed every flush interval; a crash loses at most that interval.
    Relaxed = 2,
}

/// How processes share a vault file, chosen when a vault is opened
/// (`nanu_options_set_concurrency`). The same names in every nanu language binding.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nanu_concurrency {
    /// The default. One process has the file open; another process that opens it gets
    /// `NANU_STATUS_LOCKED`.
    Exclusive = 0,
    /// Any number of processes on one machine open the file at once (the workers of a web
    /// server). Each process leases slices of every limit from the shared counters and admits
    /// from them in memory, so limits hold exactly across processes; a mint, revoke, rotate or
    /// update made in one process is seen by the next verify in every other. Only the
    /// `NANU_DURABILITY_DURABLE` level is accepted. A hold is settled only by a charge made in
    /// the process that placed it. The slices of a process that stopped without closing the
    /// vault return after the lease timeout (`NANU_TIMING_LEASE_TIMEOUT`).
    Shared = 1,
}

/// The vault's clock, for replays and tests that drive time themselves: returns the current
/// time in microseconds since the Unix epoch. nanu calls it from any thread (the caller's
/// and its own commit thread) until the vault is closed, so it must be thread-safe, must not
/// call into nanu, and must not unwind (no C++ exception may escape it).
#[allow(non_camel_case_types)]
pub type nanu_clock_fn = Option<unsafe extern "C" fn(userdata: *mut c_void) -> i64>;

/// Options for `nanu_vault_create`, `nanu_vault_open` and `nanu_vault_rekey`: created by
/// `nanu_options_new` with every default and no unlock method, changed by the
/// `nanu_options_set_*` calls, released by `nanu_options_free`.
///
/// Thread safety: setting options is not thread-safe; once set, the same options may be
/// passed to calls on several threads at once. The options are copied by the calls that
/// use them, so they may be freed right after.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct nanu_options {
    unlock: Option<Unlock>,
    /// Every other option; its unlock method is a placeholder until `unlock` is set.
    rest: Options,
}

impl nanu_options {
    /// The core options, or an error when no passphrase or key was set.
    pub(crate) fn options(&self) -> Result<Options, Error> {
        let unlock = self
            .unlock
            .clone()
            .ok_or_else(|| invalid("the options have no passphrase or key"))?;
        Ok(Options {
            unlock,
            ..self.rest.clone()
        })
    }

    /// The unlock method and KDF parameters, for a rekey.
    pub(crate) fn unlock(&self) -> Result<(Unlock, KdfParams), Error> {
        let options = self.options()?;
        Ok((options.unlock, options.kdf))
    }
}

/// Reads an options handle.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options`.
pub(crate) unsafe fn options_ref<'a>(
    options: *const nanu_options,
) -> Result<&'a nanu_options, Error> {
    // SAFETY: the caller passes NULL or a live nanu_options not mutated concurrently.
    unsafe { options.as_ref() }.ok_or_else(|| invalid("options is NULL"))
}

/// Borrows an options handle for a change.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` not used by another thread.
unsafe fn options_mut<'a>(options: *mut nanu_options) -> Result<&'a mut nanu_options, Error> {
    // SAFETY: the caller passes NULL or a live nanu_options it uses exclusively.
    unsafe { options.as_mut() }.ok_or_else(|| invalid("options is NULL"))
}

/// Creates options with every default (durability `durable`, concurrency `exclusive`, KDF
/// Argon2id 64 MiB / 3 passes, prefix `nanu`, currency `usd`, flush interval 100 ms, hold
/// timeout 10 minutes, expiring lead 7 days, idempotency window 7 days, lease timeout 10 s,
/// the system clock) and no unlock method: set a passphrase or a key before creating or
/// opening a vault.
///
/// On success `*out_options` receives a new `nanu_options` that the caller owns and releases
/// with `nanu_options_free`.
///
/// # Safety
///
/// `out_options` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_new(
    out_options: *mut *mut nanu_options,
) -> crate::nanu_status {
    guard(|| {
        let slot = out("out_options", out_options)?;
        let options = Box::new(nanu_options {
            unlock: None,
            rest: Options::passphrase(String::new()),
        });
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, options) };
        Ok(())
    })
}

/// Releases options. NULL does nothing. Vaults opened with them are not affected.
///
/// # Safety
///
/// `options` is NULL or a `nanu_options` from `nanu_options_new`, not freed before and not in
/// use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_free(options: *mut nanu_options) {
    guard(|| {
        if !options.is_null() {
            // SAFETY: a non-NULL options pointer came from Box::into_raw in nanu_options_new
            // and is freed once; dropping it zeroes the passphrase or key.
            drop(unsafe { Box::from_raw(options) });
        }
    })
}

/// Sets the passphrase (UTF-8, `len` bytes, not empty), replacing any key set before. nanu
/// keeps its own copy, zeroed when the options are freed; the caller may wipe its buffer
/// right after the call.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` used by no other thread; `passphrase` is NULL or
/// valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_set_passphrase(
    options: *mut nanu_options,
    passphrase: *const c_char,
    len: usize,
) -> crate::nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_mut(options) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let passphrase = unsafe { text("passphrase", passphrase, len) }?;
        if passphrase.is_empty() {
            return Err(invalid("the passphrase is empty"));
        }
        options.unlock = Some(Unlock::passphrase(passphrase));
        Ok(())
    })
}

/// Sets a raw 32-byte key (from a file, an environment variable or a KMS) instead of a
/// passphrase. `len` must be 32. nanu keeps its own copy, zeroed when the options are freed.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` used by no other thread; `key` is NULL or valid
/// for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_set_key(
    options: *mut nanu_options,
    key: *const u8,
    len: usize,
) -> crate::nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_mut(options) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let bytes = unsafe { crate::text::opt_bytes("key", key, len) }?
            .ok_or_else(|| invalid("key is NULL"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| invalid(format!("a raw vault key must be 32 bytes, not {len}")))?;
        options.unlock = Some(Unlock::key(key));
        Ok(())
    })
}

/// Sets the durability level: one of the `NANU_DURABILITY_*` numbers.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_set_durability(
    options: *mut nanu_options,
    durability: u32,
) -> crate::nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_mut(options) }?;
        options.rest.durability = match durability {
            n if n == nanu_durability::Durable as u32 => Durability::Durable,
            n if n == nanu_durability::Process as u32 => Durability::Process,
            n if n == nanu_durability::Relaxed as u32 => Durability::Relaxed,
            n => return Err(invalid(format!("unknown durability {n}"))),
        };
        Ok(())
    })
}

/// Sets how processes share the vault file: one of the `NANU_CONCURRENCY_*` numbers. With
/// `NANU_CONCURRENCY_SHARED` the durability must be `NANU_DURABILITY_DURABLE` (checked when the
/// vault is opened).
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_set_concurrency(
    options: *mut nanu_options,
    concurrency: u32,
) -> crate::nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_mut(options) }?;
        options.rest.concurrency = match concurrency {
            n if n == nanu_concurrency::Exclusive as u32 => Concurrency::Exclusive,
            n if n == nanu_concurrency::Shared as u32 => Concurrency::Shared,
            n => return Err(invalid(format!("unknown concurrency {n}"))),
        };
        Ok(())
    })
}

/// Sets the Argon2id parameters used when creating a vault or rekeying it (ignored by
/// `nanu_vault_open`, which reads them from the file). Argon2 checks them when they are used
/// (at least 1 pass, 1 lane and 8 KiB per lane). The cheapest accepted values (8 KiB,
/// 1 pass, 1 lane) are for tests only.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_set_kdf(
    options: *mut nanu_options,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
) -> crate::nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_mut(options) }?;
        options.rest.kdf = KdfParams {
            m_cost_kib,
            t_cost,
            p_cost,
        };
        Ok(())
    })
}

/// Sets the key prefix of a new vault (`[a-z][a-z0-9]{0,15}`, default `nanu`; ignored by
/// `nanu_vault_open`). Checked when the vault is created.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` used by no other thread; `prefix` is NULL or
/// valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_set_prefix(
    options: *mut nanu_options,
    prefix: *const c_char,
    len: usize,
) -> crate::nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_mut(options) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let prefix = unsafe { text("prefix", prefix, len) }?;
        options.rest.prefix = prefix.to_owned();
        Ok(())
    })
}

/// Sets the currency name of a new vault's money amounts (1 to 16 ASCII letters or digits,
/// default `usd`; ignored by `nanu_vault_open`). Checked when the vault is created.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` used by no other thread; `currency` is NULL or
/// valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_set_currency(
    options: *mut nanu_options,
    currency: *const c_char,
    len: usize,
) -> crate::nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_mut(options) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let currency = unsafe { text("currency", currency, len) }?;
        options.rest.currency = currency.to_owned();
        Ok(())
    })
}

/// Which timing `nanu_options_set_duration_ms` sets.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nanu_timing {
    /// How often verify-only counters, and everything at the `process` and `relaxed`
    /// levels, are committed (default 100 ms).
    FlushInterval = 0,
    /// How long a hold lives before it is given back if never settled (default 10 minutes).
    HoldTimeout = 1,
    /// How long before a key's expiry the `expiring` event fires (default 7 days).
    ExpiringLead = 2,
    /// How long a charge's request id is remembered for idempotency (default 7 days).
    IdempotencyWindow = 3,
    /// In the `NANU_CONCURRENCY_SHARED` mode: how long the slices of limits leased by a
    /// process that stopped without closing the vault (killed, crashed) stay reserved before
    /// the other processes take them back (default 10 s). A live process renews its lease well
    /// within this time.
    LeaseTimeout = 4,
}

/// Sets one of the vault's timings (a `NANU_TIMING_*` number) in milliseconds. The flush
/// interval must be at least 1 ms; the lease timeout must be at least 10 ms, which the open
/// checks.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_set_duration_ms(
    options: *mut nanu_options,
    timing: u32,
    ms: u64,
) -> crate::nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_mut(options) }?;
        let duration = Duration::from_millis(ms);
        let rest = &mut options.rest;
        match timing {
            n if n == nanu_timing::FlushInterval as u32 => {
                if ms == 0 {
                    return Err(invalid("the flush interval must be at least 1 ms"));
                }
                rest.flush_interval = duration;
            }
            n if n == nanu_timing::HoldTimeout as u32 => rest.hold_timeout = duration,
            n if n == nanu_timing::ExpiringLead as u32 => rest.expiring_lead = duration,
            n if n == nanu_timing::IdempotencyWindow as u32 => {
                rest.idempotency_window = duration;
            }
            n if n == nanu_timing::LeaseTimeout as u32 => rest.lease_timeout = duration,
            n => return Err(invalid(format!("unknown timing {n}"))),
        }
        Ok(())
    })
}

/// A C clock and its userdata, callable from any thread.
struct CClock {
    clock: unsafe extern "C" fn(*mut c_void) -> i64,
    userdata: *mut c_void,
}

// SAFETY: `nanu_options_set_clock` requires the clock to be callable from any thread with
// this userdata for as long as a vault uses it; nanu never dereferences the userdata itself.
unsafe impl Send for CClock {}
// SAFETY: as above: concurrent calls are the clock's documented contract.
unsafe impl Sync for CClock {}

impl CClock {
    fn now(&self) -> Timestamp {
        // SAFETY: the caller of nanu_options_set_clock guaranteed that the function may be
        // called with this userdata from any thread until every vault using it is closed.
        let us = unsafe { (self.clock)(self.userdata) };
        Timestamp::from_microsecond(us).unwrap_or(if us < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
    }
}

/// Sets the vault's clock (see `nanu_clock_fn`), or with NULL goes back to the system
/// clock. Times outside the supported range (years -9999 to 9999) are clamped.
///
/// Lifetime: `userdata` is passed to every call of `clock` and must stay valid until every
/// vault created or opened with these options is closed.
///
/// # Safety
///
/// `options` is NULL or a live `nanu_options` used by no other thread; `clock` is NULL or a
/// function that honours the `nanu_clock_fn` contract for this `userdata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_options_set_clock(
    options: *mut nanu_options,
    clock: nanu_clock_fn,
    userdata: *mut c_void,
) -> crate::nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let options = unsafe { options_mut(options) }?;
        options.rest.clock = clock.map(|clock| {
            let clock = CClock { clock, userdata };
            Arc::new(move || clock.now()) as nanu_core::Clock
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;
    use crate::nanu_status;

    fn new_options() -> *mut nanu_options {
        let mut options = ptr::null_mut();
        // SAFETY: `options` is a valid place for the out pointer.
        assert_eq!(unsafe { nanu_options_new(&mut options) }, nanu_status::Ok);
        options
    }

    fn rest(options: *mut nanu_options) -> Options {
        // SAFETY: `options` came from nanu_options_new and is not freed yet.
        unsafe { &*options }.rest.clone()
    }

    #[test]
    fn the_concurrency_numbers_select_the_modes_and_others_are_refused() {
        let options = new_options();
        assert_eq!(rest(options).concurrency, Concurrency::Exclusive);
        // SAFETY: `options` is live and used by this thread only, here and below.
        let set = |n: u32| unsafe { nanu_options_set_concurrency(options, n) };

        assert_eq!(set(nanu_concurrency::Shared as u32), nanu_status::Ok);
        assert_eq!(rest(options).concurrency, Concurrency::Shared);
        assert_eq!(set(2), nanu_status::InvalidArgument);
        assert_eq!(rest(options).concurrency, Concurrency::Shared);
        assert_eq!(set(nanu_concurrency::Exclusive as u32), nanu_status::Ok);
        assert_eq!(rest(options).concurrency, Concurrency::Exclusive);
        // SAFETY: NULL options are refused before any use.
        let null = unsafe { nanu_options_set_concurrency(ptr::null_mut(), 1) };
        assert_eq!(null, nanu_status::InvalidArgument);
        // SAFETY: freed once.
        unsafe { nanu_options_free(options) };
    }

    #[test]
    fn the_lease_timeout_is_a_timing_that_the_open_checks() {
        let options = new_options();
        assert_eq!(rest(options).lease_timeout, Duration::from_secs(10));
        let lease = nanu_timing::LeaseTimeout as u32;
        // SAFETY: `options` is live and used by this thread only, here and below.
        let set = |ms: u64| unsafe { nanu_options_set_duration_ms(options, lease, ms) };
        assert_eq!(set(1_500), nanu_status::Ok);
        assert_eq!(rest(options).lease_timeout, Duration::from_millis(1_500));

        // Too short a timeout is refused by the create, which makes nothing.
        assert_eq!(set(5), nanu_status::Ok);
        let passphrase = "p";
        // SAFETY: as above; the passphrase is valid for its length.
        let status = unsafe { nanu_options_set_passphrase(options, passphrase.as_ptr().cast(), 1) };
        assert_eq!(status, nanu_status::Ok);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("short.vault");
        let path_text = path.to_str().expect("utf-8 path");
        let mut vault = ptr::null_mut();
        // SAFETY: the path is valid for its length, `options` is live, `vault` is writable.
        let status = unsafe {
            crate::nanu_vault_create(
                path_text.as_ptr().cast(),
                path_text.len(),
                options,
                &mut vault,
            )
        };
        assert_eq!(status, nanu_status::InvalidArgument);
        assert!(vault.is_null());
        assert!(!path.exists());
        // SAFETY: freed once.
        unsafe { nanu_options_free(options) };
    }
}

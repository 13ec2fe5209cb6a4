//! What a vault reports: remaining figures, usage, events and the audit trail.

use std::ffi::{c_char, c_void};
use std::ptr::NonNull;

use nanu_core::{Event, UsageQuery};

use crate::guard::guard;
use crate::status::nanu_status;
use crate::text::{at, give, json_or_default, nanu_string, out, put, text};
use crate::vault::{nanu_vault, vault_ref};
use crate::verify::nanu_remaining;

/// The state of every limit of a key and of its owner at `at_us` (0: the vault's clock).
/// `NANU_STATUS_NOT_FOUND` when no key has this id.
///
/// On success, when `out_units` is not NULL, `*out_units` receives the least remaining per
/// unit; when `out_json` is not NULL, `*out_json` receives the same figures and the
/// per-limit breakdown as JSON (`{"requests": n or null, ..., "limits": [{"level", "index",
/// "limit", "used", "held", "remaining", "resets_at"}, ...]}`), owned by the caller
/// (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `key_id` is NULL or valid for reads of
/// `key_id_len` bytes; `out_units` is NULL or valid for writing a `nanu_remaining`;
/// `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_remaining(
    vault: *const nanu_vault,
    key_id: *const c_char,
    key_id_len: usize,
    at_us: i64,
    out_units: *mut nanu_remaining,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let key_id = unsafe { text("key_id", key_id, key_id_len) }?;
        let at = at("at_us", at_us)?;

        let remaining = vault.remaining(key_id, at)?;
        let text = match NonNull::new(out_json) {
            Some(slot) => Some((slot, nanu_string::json(&remaining)?)),
            None => None,
        };
        if let Some(slot) = NonNull::new(out_units) {
            // SAFETY: slot is non-NULL and the caller guarantees it is writable.
            unsafe { put(slot, nanu_remaining::of(Some(&remaining))) };
        }
        if let Some((slot, text)) = text {
            // SAFETY: slot is non-NULL and the caller guarantees it is writable.
            unsafe { give(slot, text) };
        }
        Ok(())
    })
}

/// A usage report as a JSON array of rows `{"bucket", "group", "requests", "denied",
/// "input_tokens", "output_tokens", "tokens", "cost"}`, ordered by bucket, then by group
/// values. `query_json` (NULL: everything in one row) may hold `from`, `to`, `key_id`,
/// `owner`, `env`, `model`, `endpoint`, `group_by` (`["key", "owner", "env", "model",
/// "endpoint", "outcome"]`), `bucket` (`minute`, `hour`, `day`, `week`, `month`) and `tz`
/// (an IANA zone, default UTC). Sums are exact.
///
/// On success `*out_json` receives a `nanu_string` owned by the caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `query_json` is NULL or valid for reads of
/// `query_len` bytes; `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_usage(
    vault: *const nanu_vault,
    query_json: *const c_char,
    query_len: usize,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let query: UsageQuery =
            unsafe { json_or_default("usage query json", query_json, query_len) }?;
        let slot = out("out_json", out_json)?;

        let rows = nanu_string::json(&vault.usage(&query)?)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, rows) };
        Ok(())
    })
}

/// The usage log's records matching `query_json` (as for `nanu_vault_usage`; grouping and
/// buckets are ignored), oldest first, at most `limit` of them, as a JSON array of `{"at",
/// "key_id", "owner", "env", "model", "endpoint", "input_tokens", "output_tokens", "cost",
/// "request_id", "outcome"}`.
///
/// On success `*out_json` receives a `nanu_string` owned by the caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `query_json` is NULL or valid for reads of
/// `query_len` bytes; `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_usage_records(
    vault: *const nanu_vault,
    query_json: *const c_char,
    query_len: usize,
    limit: usize,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let query: UsageQuery =
            unsafe { json_or_default("usage query json", query_json, query_len) }?;
        let slot = out("out_json", out_json)?;

        let records = nanu_string::json(&vault.usage_records(&query, limit)?)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, records) };
        Ok(())
    })
}

/// Events with a sequence number above `after_seq` (0: from the first), oldest first, at
/// most `limit`, as a JSON array of `{"seq", "at", "kind", "key_id", "owner", "percent",
/// "limit", "model"}`. Kinds: `threshold`, `exhausted`, `expiring`, `expired`, `rotated`,
/// `revoked`, `unpriced`.
///
/// On success `*out_json` receives a `nanu_string` owned by the caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_events(
    vault: *const nanu_vault,
    after_seq: u64,
    limit: usize,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        let slot = out("out_json", out_json)?;

        let events = nanu_string::json(&vault.events(after_seq, limit)?)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, events) };
        Ok(())
    })
}

/// Receives each event committed after `nanu_vault_subscribe`, as a NUL-terminated JSON
/// object (`event_json`, `len` bytes without the NUL) that is valid only during the call.
/// It runs on the vault's commit thread: keep it short, and do not call nanu's writing
/// calls (mint, charge, ...) on the same vault from inside it. It must not unwind.
#[allow(non_camel_case_types)]
pub type nanu_event_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event_json: *const c_char, len: usize)>;

/// A C event callback and its userdata, callable from the commit thread.
struct CSubscriber {
    callback: unsafe extern "C" fn(*mut c_void, *const c_char, usize),
    userdata: *mut c_void,
}

// SAFETY: `nanu_vault_subscribe` requires the callback to be callable from the vault's
// commit thread with this userdata until it is unsubscribed or the vault is closed; nanu
// never dereferences the userdata itself.
unsafe impl Send for CSubscriber {}
// SAFETY: the commit thread is the only caller, so calls never overlap.
unsafe impl Sync for CSubscriber {}

impl CSubscriber {
    fn deliver(&self, event: &Event) {
        let Ok(mut text) = serde_json::to_vec(event) else {
            log::warn!(
                "event {} could not be encoded for a c subscriber",
                event.seq
            );
            return;
        };
        let len = text.len();
        text.push(0);
        // SAFETY: the subscriber's contract (see nanu_vault_subscribe) makes the call valid;
        // the text outlives the call.
        unsafe { (self.callback)(self.userdata, text.as_ptr().cast(), len) }
    }
}

/// Calls `callback` with every event committed from now on (see `nanu_event_fn`).
///
/// On success `*out_id` receives the subscription's id, for `nanu_vault_unsubscribe`.
///
/// Lifetime: `userdata` is passed to every call and must stay valid until
/// `nanu_vault_unsubscribe` returns or the vault is closed.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `callback` is NULL or a function honouring the
/// `nanu_event_fn` contract for this `userdata`; `out_id` is NULL or valid for writing a
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_subscribe(
    vault: *const nanu_vault,
    callback: nanu_event_fn,
    userdata: *mut c_void,
    out_id: *mut u64,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        let callback = callback.ok_or_else(|| crate::text::invalid("callback is NULL"))?;
        let slot = out("out_id", out_id)?;

        let subscriber = CSubscriber { callback, userdata };
        let id = vault.subscribe(move |event| subscriber.deliver(event));
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { put(slot, id) };
        Ok(())
    })
}

/// Stops a subscription. An event being delivered while this runs may still reach the
/// callback; none is delivered after it returns. On success, when `out_existed` is not
/// NULL, `*out_existed` says whether the subscription existed.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `out_existed` is NULL or valid for writing a
/// `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_unsubscribe(
    vault: *const nanu_vault,
    id: u64,
    out_existed: *mut bool,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;

        let existed = vault.unsubscribe(id);
        if let Some(slot) = NonNull::new(out_existed) {
            // SAFETY: slot is non-NULL and the caller guarantees it is writable.
            unsafe { put(slot, existed) };
        }
        Ok(())
    })
}

/// Audit records (every administrative change, hash-chained) with a sequence number above
/// `after_seq`, oldest first, at most `limit`, as a JSON array of `{"seq", "at", "action",
/// "target", "actor", "detail", "hash"}`.
///
/// On success `*out_json` receives a `nanu_string` owned by the caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_audit(
    vault: *const nanu_vault,
    after_seq: u64,
    limit: usize,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        let slot = out("out_json", out_json)?;

        let records = nanu_string::json(&vault.audit(after_seq, limit)?)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, records) };
        Ok(())
    })
}

/// Checks the audit chain: every record present, each chained to the one before, the last
/// matching the head kept in the file header.
///
/// On success `*out_ok` says whether the chain is intact, and when `out_json` is not NULL,
/// `*out_json` receives `{"records": n, "ok": bool, "first_bad": [seq, "what is wrong"] or
/// null}`, owned by the caller (`nanu_string_free`). A broken chain is a successful call
/// with `*out_ok` false.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `out_ok` is NULL or valid for writing a `bool`;
/// `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_verify_audit(
    vault: *const nanu_vault,
    out_ok: *mut bool,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        let ok_slot = out("out_ok", out_ok)?;

        let check = vault.verify_audit()?;
        let text = match NonNull::new(out_json) {
            Some(slot) => Some((slot, nanu_string::json(&check)?)),
            None => None,
        };
        // SAFETY: ok_slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { put(ok_slot, check.ok) };
        if let Some((slot, text)) = text {
            // SAFETY: slot is non-NULL and the caller guarantees it is writable.
            unsafe { give(slot, text) };
        }
        Ok(())
    })
}

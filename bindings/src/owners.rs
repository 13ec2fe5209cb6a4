//! Owners and their limits, shared by all their keys.

use std::ffi::c_char;

use nanu_core::Limit;

use crate::guard::guard;
use crate::status::nanu_status;
use crate::text::{context, give, json, nanu_context, nanu_string, out, text};
use crate::vault::{nanu_vault, vault_ref};

/// Sets an owner's limits (shared by all its keys), creating the owner if needed.
/// `limits_json` is a JSON array of limits, objects or text (`["cost=$100/month",
/// "requests=1000/min"]`); `[]` removes them. Usage already counted is kept for limits whose
/// unit and window are unchanged.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `owner` and `limits_json` are NULL or valid for
/// reads of their lengths; `ctx` is NULL or a valid `nanu_context`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_set_owner_policy(
    vault: *const nanu_vault,
    owner: *const c_char,
    owner_len: usize,
    limits_json: *const c_char,
    limits_len: usize,
    ctx: *const nanu_context,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let owner = unsafe { text("owner", owner, owner_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let limits: Vec<Limit> = unsafe { json("limits json", limits_json, limits_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;
        vault.set_owner_policy(owner, &limits, &ctx)
    })
}

/// Sets the limits an owner gets when it first appears (existing owners keep theirs).
/// `limits_json` is a JSON array of limits.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `limits_json` is NULL or valid for reads of
/// `limits_len` bytes; `ctx` is NULL or a valid `nanu_context`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_set_default_owner_policy(
    vault: *const nanu_vault,
    limits_json: *const c_char,
    limits_len: usize,
    ctx: *const nanu_context,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let limits: Vec<Limit> = unsafe { json("limits json", limits_json, limits_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;
        vault.set_default_owner_policy(&limits, &ctx)
    })
}

/// An owner's limits and their state as JSON: `{"owner", "limits", "keys", "remaining"}`.
/// `NANU_STATUS_NOT_FOUND` for an unknown owner.
///
/// On success `*out_json` receives a `nanu_string` owned by the caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `owner` is NULL or valid for reads of `owner_len`
/// bytes; `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_owner(
    vault: *const nanu_vault,
    owner: *const c_char,
    owner_len: usize,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let owner = unsafe { text("owner", owner, owner_len) }?;
        let slot = out("out_json", out_json)?;

        let info = nanu_string::json(&vault.owner(owner)?)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, info) };
        Ok(())
    })
}

/// Every owner's name as a sorted JSON array of strings.
///
/// On success `*out_json` receives a `nanu_string` owned by the caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_owners(
    vault: *const nanu_vault,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        let slot = out("out_json", out_json)?;

        let owners = nanu_string::json(&vault.owners())?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, owners) };
        Ok(())
    })
}

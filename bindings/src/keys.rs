//! Keys: mint, read, list, change, rotate and revoke.

use std::ffi::c_char;
use std::time::Duration;

use nanu_core::{KeyFilter, KeyPatch, KeySpec};

use crate::guard::guard;
use crate::secret::{nanu_secret, nanu_secrets};
use crate::status::nanu_status;
use crate::text::{
    context, give, json, json_or_default, nanu_context, nanu_string, out, put, text,
};
use crate::vault::{nanu_vault, vault_ref};

/// Mints a key from a JSON key spec (`spec_json`, `spec_len` bytes), e.g.
/// `{"owner": "acme", "env": "live", "scopes": ["chat"], "limits": ["requests=100/min",
/// "cost=$10/month"]}`. Only `owner` is required; unknown fields are rejected.
///
/// On success `*out_secret` receives the key id and its secret, owned by the caller and
/// released with `nanu_secret_free`. The secret is shown this once and never stored.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `spec_json` is NULL or valid for reads of
/// `spec_len` bytes; `ctx` is NULL or a valid `nanu_context`; `out_secret` is NULL or valid
/// for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_mint(
    vault: *const nanu_vault,
    spec_json: *const c_char,
    spec_len: usize,
    ctx: *const nanu_context,
    out_secret: *mut *mut nanu_secret,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let spec: KeySpec = unsafe { json("key spec json", spec_json, spec_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;
        let slot = out("out_secret", out_secret)?;

        let minted = vault.mint(&spec, &ctx)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, Box::new(nanu_secret::new(&minted))) };
        Ok(())
    })
}

/// Mints many keys in one commit from a JSON array of key specs. Every spec is checked
/// first: one bad spec mints nothing (the error names its index).
///
/// On success `*out_secrets` receives the keys in the order of the specs, owned by the
/// caller and released with `nanu_secrets_free`.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `specs_json` is NULL or valid for reads of
/// `specs_len` bytes; `ctx` is NULL or a valid `nanu_context`; `out_secrets` is NULL or valid
/// for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_mint_many(
    vault: *const nanu_vault,
    specs_json: *const c_char,
    specs_len: usize,
    ctx: *const nanu_context,
    out_secrets: *mut *mut nanu_secrets,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let specs: Vec<KeySpec> = unsafe { json("key specs json", specs_json, specs_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;
        let slot = out("out_secrets", out_secrets)?;

        let minted = vault.mint_many(&specs, &ctx)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, Box::new(nanu_secrets::new(&minted))) };
        Ok(())
    })
}

/// A key's stored details as JSON (key_id, owner, name, env, status, times, scopes, models,
/// aliases, ips, limits, rotate_every, metadata), never its secret.
/// `NANU_STATUS_NOT_FOUND` when no key has this id.
///
/// On success `*out_json` receives a `nanu_string` owned by the caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `key_id` is NULL or valid for reads of
/// `key_id_len` bytes; `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_get(
    vault: *const nanu_vault,
    key_id: *const c_char,
    key_id_len: usize,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let key_id = unsafe { text("key_id", key_id, key_id_len) }?;
        let slot = out("out_json", out_json)?;

        let info = nanu_string::json(&vault.get(key_id)?)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, info) };
        Ok(())
    })
}

/// One page of keys in key id order, as JSON `{"keys": [...], "next": "key_..." or null}`.
/// `filter_json` (NULL for everything) may hold `owner`, `env`, `status`, `after` (the
/// previous page's `next`) and `limit` (default 100, at most 10000).
///
/// On success `*out_json` receives a `nanu_string` owned by the caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `filter_json` is NULL or valid for reads of
/// `filter_len` bytes; `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_list(
    vault: *const nanu_vault,
    filter_json: *const c_char,
    filter_len: usize,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let filter: KeyFilter =
            unsafe { json_or_default("key filter json", filter_json, filter_len) }?;
        let slot = out("out_json", out_json)?;

        let page = nanu_string::json(&vault.list(&filter)?)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, page) };
        Ok(())
    })
}

/// Changes a key with a JSON patch: absent fields stay, `null` clears an optional field
/// (models, ips, expires_at, rotate_every). Fields: name, scopes, models, aliases, ips,
/// expires_at, disabled, metadata, limits, rotate_every.
///
/// On success, when `out_json` is not NULL, `*out_json` receives the key's new details as
/// JSON (as `nanu_vault_get`), owned by the caller.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `key_id` and `patch_json` are NULL or valid for
/// reads of their lengths; `ctx` is NULL or a valid `nanu_context`; `out_json` is NULL or
/// valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_update(
    vault: *const nanu_vault,
    key_id: *const c_char,
    key_id_len: usize,
    patch_json: *const c_char,
    patch_len: usize,
    ctx: *const nanu_context,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let key_id = unsafe { text("key_id", key_id, key_id_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let patch: KeyPatch = unsafe { json("key patch json", patch_json, patch_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;

        let info = vault.update(key_id, &patch, &ctx)?;
        if let Some(slot) = std::ptr::NonNull::new(out_json) {
            let info = nanu_string::json(&info)?;
            // SAFETY: slot is non-NULL and the caller guarantees it is writable.
            unsafe { give(slot, info) };
        }
        Ok(())
    })
}

/// Revokes a key at once; revoking a revoked key does nothing more.
/// `NANU_STATUS_NOT_FOUND` when no key has this id.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `key_id` is NULL or valid for reads of
/// `key_id_len` bytes; `ctx` is NULL or a valid `nanu_context`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_revoke(
    vault: *const nanu_vault,
    key_id: *const c_char,
    key_id_len: usize,
    ctx: *const nanu_context,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let key_id = unsafe { text("key_id", key_id, key_id_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;
        vault.revoke(key_id, &ctx)
    })
}

/// Revokes every key of an owner. On success, when `out_count` is not NULL, `*out_count`
/// receives how many keys were not revoked before.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `owner` is NULL or valid for reads of `owner_len`
/// bytes; `ctx` is NULL or a valid `nanu_context`; `out_count` is NULL or valid for writing a
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_revoke_owner(
    vault: *const nanu_vault,
    owner: *const c_char,
    owner_len: usize,
    ctx: *const nanu_context,
    out_count: *mut u64,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let owner = unsafe { text("owner", owner, owner_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;

        let count = vault.revoke_owner(owner, &ctx)?;
        if let Some(slot) = std::ptr::NonNull::new(out_count) {
            // SAFETY: slot is non-NULL and the caller guarantees it is writable.
            unsafe { put(slot, count) };
        }
        Ok(())
    })
}

/// Issues a new secret for the same key id, ledger and windows. The previous secret keeps
/// working for `grace_ms` more milliseconds (0 ends it at once); a later rotation never
/// extends an earlier secret's deadline.
///
/// On success `*out_secret` receives the key id and its new secret, owned by the caller and
/// released with `nanu_secret_free`.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `key_id` is NULL or valid for reads of
/// `key_id_len` bytes; `ctx` is NULL or a valid `nanu_context`; `out_secret` is NULL or valid
/// for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_rotate(
    vault: *const nanu_vault,
    key_id: *const c_char,
    key_id_len: usize,
    grace_ms: u64,
    ctx: *const nanu_context,
    out_secret: *mut *mut nanu_secret,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let key_id = unsafe { text("key_id", key_id, key_id_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;
        let slot = out("out_secret", out_secret)?;

        let minted = vault.rotate(key_id, Duration::from_millis(grace_ms), &ctx)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, Box::new(nanu_secret::new(&minted))) };
        Ok(())
    })
}

/// Rotates every active key whose policy has `rotate_every` and whose secret is at least
/// that old, each with `grace_ms` of grace.
///
/// On success `*out_secrets` receives the new secrets (possibly none), owned by the caller
/// and released with `nanu_secrets_free`.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `ctx` is NULL or a valid `nanu_context`;
/// `out_secrets` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_rotate_due(
    vault: *const nanu_vault,
    grace_ms: u64,
    ctx: *const nanu_context,
    out_secrets: *mut *mut nanu_secrets,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;
        let slot = out("out_secrets", out_secrets)?;

        let minted = vault.rotate_due(Duration::from_millis(grace_ms), &ctx)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, Box::new(nanu_secrets::new(&minted))) };
        Ok(())
    })
}

//! Model prices: set by hand or imported from LiteLLM's price JSON.

use std::ffi::c_char;

use nanu_core::Price;

use crate::guard::guard;
use crate::status::nanu_status;
use crate::text::{context, give, json, nanu_context, nanu_string, out, text};
use crate::vault::{nanu_vault, vault_ref};

/// Sets a model's price from JSON `{"input_per_mtok": 2500000, "output_per_mtok": 10000000,
/// "per_request": 0}` (integer micro-units per million tokens and per request; absent
/// fields are 0), or removes it when `price_json` is NULL.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `model` and `price_json` are NULL or valid for
/// reads of their lengths; `ctx` is NULL or a valid `nanu_context`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_set_price(
    vault: *const nanu_vault,
    model: *const c_char,
    model_len: usize,
    price_json: *const c_char,
    price_len: usize,
    ctx: *const nanu_context,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let model = unsafe { text("model", model, model_len) }?;
        let price: Option<Price> = if price_json.is_null() {
            None
        } else {
            // SAFETY: forwarded from the caller's guarantees.
            Some(unsafe { json("price json", price_json, price_len) }?)
        };
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;
        vault.set_price(model, price, &ctx)
    })
}

/// Imports LiteLLM's price JSON (`model_prices_and_context_window.json`), converting each
/// price once, exactly, to integer micro-units.
///
/// On success, when `out_report` is not NULL, `*out_report` receives JSON `{"imported": n,
/// "skipped": [[model, reason], ...], "rounded": [[model, field], ...]}`, owned by the
/// caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `litellm_json` is NULL or valid for reads of
/// `litellm_len` bytes; `ctx` is NULL or a valid `nanu_context`; `out_report` is NULL or
/// valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_import_prices(
    vault: *const nanu_vault,
    litellm_json: *const c_char,
    litellm_len: usize,
    ctx: *const nanu_context,
    out_report: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let litellm = unsafe { text("litellm_json", litellm_json, litellm_len) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let ctx = unsafe { context(ctx) }?;

        let report = vault.import_prices(litellm, &ctx)?;
        if let Some(slot) = std::ptr::NonNull::new(out_report) {
            let report = nanu_string::json(&report)?;
            // SAFETY: slot is non-NULL and the caller guarantees it is writable.
            unsafe { give(slot, report) };
        }
        Ok(())
    })
}

/// Every price, as a JSON object from model to price.
///
/// On success `*out_json` receives a `nanu_string` owned by the caller (`nanu_string_free`).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `out_json` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_prices(
    vault: *const nanu_vault,
    out_json: *mut *mut nanu_string,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        let slot = out("out_json", out_json)?;

        let prices = nanu_string::json(&vault.prices())?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { give(slot, prices) };
        Ok(())
    })
}

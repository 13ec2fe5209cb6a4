//! charge and release on plain C structs.

use std::ffi::c_char;

use nanu_core::Usage;

use crate::guard::guard;
use crate::status::nanu_status;
use crate::text::{at, opt_text, out, put, text};
use crate::vault::{nanu_vault, vault_ref};
use crate::verify::nanu_limit_state;

/// How many exceeded limits a `nanu_charge_outcome` describes in full.
pub const NANU_EXCEEDED_CAP: usize = 8;

/// What one request really used, given to `nanu_vault_charge`. Zero-initialise it and set
/// what you know: a NULL text is "not given". Texts are UTF-8 with explicit lengths. The
/// struct and its texts are only read during the call.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanu_usage {
    /// The model used (a key's alias is resolved); prices the tokens when `has_cost` is
    /// false.
    pub model: *const c_char,
    /// Length of `model` in bytes.
    pub model_len: usize,
    /// The endpoint or route, for reports.
    pub endpoint: *const c_char,
    /// Length of `endpoint` in bytes.
    pub endpoint_len: usize,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Whether `cost` is given; otherwise the cost comes from the model's price.
    pub has_cost: bool,
    /// Cost in micro-units.
    pub cost: u64,
    /// Makes the charge idempotent: the same id again returns the first outcome; the same id
    /// with other amounts is `NANU_STATUS_CONFLICT`.
    pub request_id: *const c_char,
    /// Length of `request_id` in bytes.
    pub request_id_len: usize,
    /// The hold placed by the request's verify (`nanu_verdict.hold_id`), settled by this
    /// charge; 0 for none.
    pub hold_id: u64,
    /// When the usage happened, in microseconds since the epoch; 0 for the vault's clock.
    pub at_us: i64,
}

/// What a charge did.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanu_charge_outcome {
    /// The cost recorded, in micro-units.
    pub cost: u64,
    /// Whether the cost came from the price table or the caller (false when the model had no
    /// price and no cost was given: the cost is then recorded as zero).
    pub priced: bool,
    /// This request id was charged before: this is the first outcome, nothing was recorded.
    pub replayed: bool,
    /// How many limits are now at or past their amount (the next verify they govern is
    /// denied). May exceed `NANU_EXCEEDED_CAP`.
    pub exceeded_len: usize,
    /// The first `min(exceeded_len, NANU_EXCEEDED_CAP)` of those limits; the rest of the
    /// array is zeroed.
    pub exceeded: [nanu_limit_state; NANU_EXCEEDED_CAP],
}

/// Records what a request really used against key `key_id`, settles its hold, and returns
/// what happened. Usage that was delivered is always recorded, even past a limit. Idempotent
/// by `usage->request_id`.
///
/// On success `*out_outcome` is filled. At the `durable` level the call returns once the
/// charge is on disk. The C layer allocates only for the texts the core's `Usage` owns
/// (model, endpoint, request id), when given.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `key_id` is NULL or valid for reads of
/// `key_id_len` bytes; `usage` is NULL or a valid `nanu_usage` whose texts are NULL or valid
/// for their lengths; `out_outcome` is NULL or valid for writing a `nanu_charge_outcome`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_charge(
    vault: *const nanu_vault,
    key_id: *const c_char,
    key_id_len: usize,
    usage: *const nanu_usage,
    out_outcome: *mut nanu_charge_outcome,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let key_id = unsafe { text("key_id", key_id, key_id_len) }?;
        // SAFETY: the caller passes NULL or a valid nanu_usage.
        let usage =
            unsafe { usage.as_ref() }.ok_or_else(|| crate::text::invalid("usage is NULL"))?;
        // SAFETY: the usage's texts are NULL or valid for their lengths.
        let usage = unsafe { usage_of(usage) }?;
        let slot = out("out_outcome", out_outcome)?;

        let outcome = vault.charge(key_id, &usage)?;
        let mut exceeded = [nanu_limit_state::none(); NANU_EXCEEDED_CAP];
        for (slot, status) in exceeded.iter_mut().zip(&outcome.exceeded) {
            *slot = nanu_limit_state::of(status);
        }
        let outcome = nanu_charge_outcome {
            cost: outcome.cost,
            priced: outcome.priced,
            replayed: outcome.replayed,
            exceeded_len: outcome.exceeded.len(),
            exceeded,
        };
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { put(slot, outcome) };
        Ok(())
    })
}

/// Reads a C usage into the core's form.
///
/// # Safety
///
/// The usage's texts are NULL or valid for reads of their lengths.
unsafe fn usage_of(usage: &nanu_usage) -> Result<Usage, nanu_core::Error> {
    // SAFETY: forwarded from the caller's guarantees (all three texts below).
    let model = unsafe { opt_text("usage.model", usage.model, usage.model_len) }?;
    // SAFETY: as above.
    let endpoint = unsafe { opt_text("usage.endpoint", usage.endpoint, usage.endpoint_len) }?;
    // SAFETY: as above.
    let request_id =
        unsafe { opt_text("usage.request_id", usage.request_id, usage.request_id_len) }?;
    Ok(Usage {
        model: model.map(str::to_owned),
        endpoint: endpoint.map(str::to_owned),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cost: usage.has_cost.then_some(usage.cost),
        request_id: request_id.map(str::to_owned),
        hold_id: (usage.hold_id != 0).then_some(usage.hold_id),
        at: at("usage.at_us", usage.at_us)?,
    })
}

/// Gives a hold back because its request failed, at `at_us` (0: the vault's clock). On
/// success, when `out_released` is not NULL, `*out_released` says whether the hold was still
/// outstanding (false when it was already charged, released or expired, or never existed).
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `out_released` is NULL or valid for writing a
/// `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_release(
    vault: *const nanu_vault,
    hold_id: u64,
    at_us: i64,
    out_released: *mut bool,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        let at = at("at_us", at_us)?;

        let released = vault.release_at(hold_id, at)?;
        if let Some(slot) = std::ptr::NonNull::new(out_released) {
            // SAFETY: slot is non-NULL and the caller guarantees it is writable.
            unsafe { put(slot, released) };
        }
        Ok(())
    })
}

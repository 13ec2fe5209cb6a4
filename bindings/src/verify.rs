//! verify on plain C structs: `nanu_verify_request` in, `nanu_verdict` out, no allocation
//! by this layer on the way.

use std::ffi::c_char;
use std::net::IpAddr;

use nanu_core::{Code, HoldAmounts, Level, LimitStatus, Remaining, Unit, Verdict, VerifyRequest};

use crate::guard::guard;
use crate::status::nanu_status;
use crate::text::{at, epoch_ms_ceil, invalid, opt_text, out};
use crate::vault::{nanu_vault, vault_ref};

/// Room for a key id and its NUL in `nanu_verdict.key_id`.
pub const NANU_KEY_ID_CAP: usize = 32;
/// Room for an owner (at most 200 bytes) and its NUL in `nanu_verdict.owner`.
pub const NANU_OWNER_CAP: usize = 201;
/// Room for an environment (at most 16 bytes) and its NUL in `nanu_verdict.env`.
pub const NANU_ENV_CAP: usize = 17;
/// Room for a model name (at most 200 bytes) and its NUL in `nanu_verdict.model`.
pub const NANU_MODEL_CAP: usize = 201;
/// The figure of a unit that no limit counts: there is no bound.
pub const NANU_UNLIMITED: u64 = 0xFFFF_FFFF_FFFF_FFFF;

/// The stable reason of a verdict, numbered in the order of the core's `Code::ALL`. The names
/// after `NANU_CODE_` are the codes of every nanu language binding (`nanu_code_name`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nanu_code {
    /// Allowed.
    Valid = 0,
    /// Not shaped like a key, or its checksum is wrong (also: not UTF-8).
    Malformed = 1,
    /// Well formed, but no key has this secret (or a rotated-out secret past its grace).
    NotFound = 2,
    /// The key was revoked.
    Revoked = 3,
    /// The key is disabled.
    Disabled = 4,
    /// The key is past its expiry.
    Expired = 5,
    /// The request required another environment.
    EnvMismatch = 6,
    /// The client address is outside the key's allowlist.
    IpDenied = 7,
    /// The key lacks the requested scope.
    ScopeDenied = 8,
    /// The key may not use the requested model.
    ModelDenied = 9,
    /// The key has a cost limit and the model has no price.
    ModelUnpriced = 10,
    /// A request or token limit (lifetime or calendar window) is used up.
    UsageExceeded = 11,
    /// A cost limit is used up.
    BudgetExceeded = 12,
    /// A rolling (rate) limit is used up for now.
    RateLimited = 13,
}

impl nanu_code {
    /// The C number of a core code.
    pub fn of(code: Code) -> nanu_code {
        match code {
            Code::Valid => nanu_code::Valid,
            Code::Malformed => nanu_code::Malformed,
            Code::NotFound => nanu_code::NotFound,
            Code::Revoked => nanu_code::Revoked,
            Code::Disabled => nanu_code::Disabled,
            Code::Expired => nanu_code::Expired,
            Code::EnvMismatch => nanu_code::EnvMismatch,
            Code::IpDenied => nanu_code::IpDenied,
            Code::ScopeDenied => nanu_code::ScopeDenied,
            Code::ModelDenied => nanu_code::ModelDenied,
            Code::ModelUnpriced => nanu_code::ModelUnpriced,
            Code::UsageExceeded => nanu_code::UsageExceeded,
            Code::BudgetExceeded => nanu_code::BudgetExceeded,
            Code::RateLimited => nanu_code::RateLimited,
        }
    }
}

/// What a limit counts.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nanu_unit {
    /// Admitted requests.
    Requests = 0,
    /// Input plus output tokens.
    Tokens = 1,
    /// Input (prompt) tokens.
    InputTokens = 2,
    /// Output (completion) tokens.
    OutputTokens = 3,
    /// Money, in integer micro-units of the vault's currency.
    Cost = 4,
}

impl nanu_unit {
    fn of(unit: Unit) -> nanu_unit {
        match unit {
            Unit::Requests => nanu_unit::Requests,
            Unit::Tokens => nanu_unit::Tokens,
            Unit::InputTokens => nanu_unit::InputTokens,
            Unit::OutputTokens => nanu_unit::OutputTokens,
            Unit::Cost => nanu_unit::Cost,
        }
    }
}

/// Whose limit a `nanu_limit_state` describes.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nanu_level {
    /// No limit: the struct is empty.
    None = 0,
    /// The key's own limit.
    Key = 1,
    /// A limit of the key's owner, shared by all the owner's keys.
    Owner = 2,
}

/// The least remaining per unit over a key's and its owner's limits. A unit that no limit
/// counts is `NANU_UNLIMITED` (UINT64_MAX); so is every unit of a verdict whose secret
/// matched no key.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct nanu_remaining {
    /// Requests left.
    pub requests: u64,
    /// Tokens (input plus output) left.
    pub tokens: u64,
    /// Input tokens left.
    pub input_tokens: u64,
    /// Output tokens left.
    pub output_tokens: u64,
    /// Money left, in micro-units.
    pub cost: u64,
}

impl nanu_remaining {
    pub(crate) fn of(remaining: Option<&Remaining>) -> nanu_remaining {
        let figure = |unit| {
            remaining
                .and_then(|r| r.get(unit))
                .unwrap_or(NANU_UNLIMITED)
        };
        nanu_remaining {
            requests: figure(Unit::Requests),
            tokens: figure(Unit::Tokens),
            input_tokens: figure(Unit::InputTokens),
            output_tokens: figure(Unit::OutputTokens),
            cost: figure(Unit::Cost),
        }
    }
}

/// The state of one limit of a key or its owner.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct nanu_limit_state {
    /// Key or owner; `NANU_LEVEL_NONE` when the struct describes no limit (all else 0).
    pub level: nanu_level,
    /// Position of the limit in the key's or owner's list of limits.
    pub index: u32,
    /// What the limit counts.
    pub unit: nanu_unit,
    /// The most that may be used in one window.
    pub amount: u64,
    /// Used in the current window (for rolling windows: the bucket's level, rounded up).
    pub used: u64,
    /// Reserved by outstanding holds.
    pub held: u64,
    /// `amount - used - held`, never below zero.
    pub remaining: u64,
    /// Whether `resets_at_ms` is set (false for lifetime limits).
    pub has_resets_at: bool,
    /// When the window ends or the bucket is full again, in milliseconds since the epoch,
    /// rounded up.
    pub resets_at_ms: i64,
}

impl nanu_limit_state {
    pub(crate) fn none() -> nanu_limit_state {
        nanu_limit_state {
            level: nanu_level::None,
            index: 0,
            unit: nanu_unit::Requests,
            amount: 0,
            used: 0,
            held: 0,
            remaining: 0,
            has_resets_at: false,
            resets_at_ms: 0,
        }
    }

    pub(crate) fn of(status: &LimitStatus) -> nanu_limit_state {
        nanu_limit_state {
            level: match status.level {
                Level::Key => nanu_level::Key,
                Level::Owner => nanu_level::Owner,
            },
            index: u32::try_from(status.index).unwrap_or(u32::MAX),
            unit: nanu_unit::of(status.limit.unit),
            amount: status.limit.amount,
            used: status.used,
            held: status.held,
            remaining: status.remaining,
            has_resets_at: status.resets_at.is_some(),
            resets_at_ms: status.resets_at.map_or(0, epoch_ms_ceil),
        }
    }
}

/// What a verify checks the key against. Zero-initialise it (`nanu_verify_request req =
/// {0};`) and set what the request carries: a NULL text field is "not given". Texts are
/// UTF-8 with explicit lengths (no NUL needed). The struct and its texts are only read
/// during the call.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanu_verify_request {
    /// The client address (`203.0.113.7`, `2001:db8::1`), checked against the key's IP
    /// allowlist; a key with an allowlist denies a request without one.
    pub ip: *const c_char,
    /// Length of `ip` in bytes.
    pub ip_len: usize,
    /// A scope the key must hold.
    pub scope: *const c_char,
    /// Length of `scope` in bytes.
    pub scope_len: usize,
    /// The model the request uses (a key's alias is resolved first).
    pub model: *const c_char,
    /// Length of `model` in bytes.
    pub model_len: usize,
    /// The environment the key must belong to (`live`, `test`, ...).
    pub env: *const c_char,
    /// Length of `env` in bytes.
    pub env_len: usize,
    /// Input tokens to reserve until the charge.
    pub hold_input_tokens: u64,
    /// Output tokens to reserve until the charge.
    pub hold_output_tokens: u64,
    /// Money to reserve until the charge, in micro-units.
    pub hold_cost: u64,
    /// The time of the request in microseconds since the epoch; 0 for the vault's clock.
    pub at_us: i64,
}

/// The answer of a verify. A denial is a verdict (`NANU_STATUS_OK` with `allowed` false),
/// never an error. Texts are NUL-terminated copies inside the struct, empty when unknown.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanu_verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The stable reason (`NANU_CODE_VALID` when allowed).
    pub code: nanu_code,
    /// The secret is a previous one still inside its rotation grace period.
    pub grace: bool,
    /// The hold placed by this verify, to pass to `nanu_vault_charge` or
    /// `nanu_vault_release`; 0 when none was placed (hold ids start at 1).
    pub hold_id: u64,
    /// Whether `retry_after_ms` is set.
    pub has_retry_after: bool,
    /// How long to wait before the same request could pass, in milliseconds, rounded up.
    pub retry_after_ms: u64,
    /// Whether `resets_at_ms` is set.
    pub has_resets_at: bool,
    /// When the denying limit resets, in milliseconds since the epoch, rounded up.
    pub resets_at_ms: i64,
    /// What is left after this request (the least over key and owner, per unit). The
    /// per-limit breakdown is in `nanu_vault_remaining`.
    pub remaining: nanu_remaining,
    /// The limit that denied the request (`level` is `NANU_LEVEL_NONE` otherwise).
    pub denied_by: nanu_limit_state,
    /// The key's id, once the secret was found.
    pub key_id: [c_char; NANU_KEY_ID_CAP],
    /// The key's owner.
    pub owner: [c_char; NANU_OWNER_CAP],
    /// The key's stored environment.
    pub env: [c_char; NANU_ENV_CAP],
    /// The model after alias resolution, when the request named one and the check got that
    /// far.
    pub model: [c_char; NANU_MODEL_CAP],
}

impl nanu_verdict {
    /// Writes a verdict into C memory in place, copying only the bytes of its texts (the
    /// struct is large, and building it whole and copying it costs a verify measurably).
    ///
    /// # Safety
    ///
    /// `out` is valid for writes of one `nanu_verdict`.
    pub(crate) unsafe fn write(out: *mut nanu_verdict, verdict: &Verdict) {
        let retry_after_ms = verdict.retry_after.map_or(0, |d| {
            u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
        });
        let denied_by = verdict
            .denied_by
            .as_ref()
            .map_or(nanu_limit_state::none(), nanu_limit_state::of);
        // SAFETY: the caller guarantees `out` is valid for writes. Every field is written
        // through a raw pointer and never read, so its old, possibly uninitialised, content
        // does not matter; after these writes every field is initialised.
        unsafe {
            (&raw mut (*out).allowed).write(verdict.allowed);
            (&raw mut (*out).code).write(nanu_code::of(verdict.code));
            (&raw mut (*out).grace).write(verdict.grace);
            (&raw mut (*out).hold_id).write(verdict.hold_id.unwrap_or(0));
            (&raw mut (*out).has_retry_after).write(verdict.retry_after.is_some());
            (&raw mut (*out).retry_after_ms).write(retry_after_ms);
            (&raw mut (*out).has_resets_at).write(verdict.resets_at.is_some());
            (&raw mut (*out).resets_at_ms).write(verdict.resets_at.map_or(0, epoch_ms_ceil));
            (&raw mut (*out).remaining).write(nanu_remaining::of(verdict.remaining.as_ref()));
            (&raw mut (*out).denied_by).write(denied_by);
            write_text(&raw mut (*out).key_id, verdict.key_id.as_deref());
            write_text(&raw mut (*out).owner, verdict.owner.as_deref());
            write_text(&raw mut (*out).env, verdict.env.as_deref());
            write_text(&raw mut (*out).model, verdict.model.as_deref());
        }
    }
}

/// Writes `text` (empty for `None`) and a NUL into a fixed C array, cut at a character
/// boundary if it does not fit (the arrays are sized so that the core's limits always fit).
/// Bytes after the NUL are left as they were.
///
/// # Safety
///
/// `array` is valid for writes of `N` bytes, and `N >= 1`.
unsafe fn write_text<const N: usize>(array: *mut [c_char; N], text: Option<&str>) {
    let text = text.unwrap_or("");
    let len = fitting_len(text, N);
    let dst = array.cast::<u8>();
    // SAFETY: `len < N`, so the copy and the NUL stay inside the array the caller vouches
    // for; a Rust string never overlaps C's output memory.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), dst, len);
        dst.add(len).write(0);
    }
}

/// The longest prefix of `text` that leaves room for a NUL in `cap` bytes and ends at a
/// character boundary.
fn fitting_len(text: &str, cap: usize) -> usize {
    let mut end = text.len().min(cap.saturating_sub(1));
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Checks a secret and a request against the key and its owner: status, expiry,
/// environment, IP allowlist, scope, model, price, then every limit. When every check
/// passes it consumes one request and places the hold, atomically; a denial changes no
/// counter. `request` may be NULL (nothing to check beyond the key and its limits).
///
/// The secret is untrusted input: any bytes are accepted, and anything that is not a
/// well-formed key (including text that is not UTF-8) is a `NANU_CODE_MALFORMED` verdict.
/// On success (`NANU_STATUS_OK`, allowed or not) `*out_verdict` is filled; errors are for
/// bad arguments and a closed vault. This call allocates nothing in the C layer.
///
/// # Safety
///
/// `vault` is NULL or a live `nanu_vault`; `secret` is NULL or valid for reads of
/// `secret_len` bytes; `request` is NULL or a valid `nanu_verify_request` whose texts are
/// NULL or valid for their lengths; `out_verdict` is NULL or valid for writing a
/// `nanu_verdict`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_vault_verify(
    vault: *const nanu_vault,
    secret: *const c_char,
    secret_len: usize,
    request: *const nanu_verify_request,
    out_verdict: *mut nanu_verdict,
) -> nanu_status {
    guard(|| {
        // SAFETY: forwarded from the caller's guarantees.
        let vault = unsafe { vault_ref(vault) }?;
        // SAFETY: forwarded from the caller's guarantees.
        let secret = match unsafe { crate::text::opt_bytes("secret", secret.cast(), secret_len) }? {
            // Text that is not UTF-8 cannot be a key: verify it as the empty string, which
            // the vault counts and answers as malformed.
            Some(bytes) => crate::text::utf8(bytes).unwrap_or(""),
            None if secret_len == 0 => "",
            None => return Err(invalid("secret is NULL")),
        };
        // SAFETY: forwarded from the caller's guarantees.
        let request = match unsafe { request.as_ref() } {
            // SAFETY: forwarded from the caller's guarantees.
            Some(request) => unsafe { verify_request(request) }?,
            None => VerifyRequest::default(),
        };
        let slot = out("out_verdict", out_verdict)?;

        let verdict = vault.verify(secret, &request)?;
        // SAFETY: slot was checked non-NULL and the caller guarantees it is writable.
        unsafe { nanu_verdict::write(slot.as_ptr(), &verdict) };
        Ok(())
    })
}

/// Reads a C request into the core's form, borrowing its texts.
///
/// # Safety
///
/// The request's texts are NULL or valid for reads of their lengths for `'a`.
unsafe fn verify_request<'a>(
    request: &nanu_verify_request,
) -> Result<VerifyRequest<'a>, nanu_core::Error> {
    // SAFETY: forwarded from the caller's guarantees (all four texts below).
    let ip = unsafe { opt_text("request.ip", request.ip, request.ip_len) }?;
    // SAFETY: as above.
    let scope = unsafe { opt_text("request.scope", request.scope, request.scope_len) }?;
    // SAFETY: as above.
    let model = unsafe { opt_text("request.model", request.model, request.model_len) }?;
    // SAFETY: as above.
    let env = unsafe { opt_text("request.env", request.env, request.env_len) }?;
    let ip = ip
        .map(|text| {
            text.trim_ascii()
                .parse::<IpAddr>()
                .map_err(|_| invalid(format!("request.ip {text:?} is not an ip address")))
        })
        .transpose()?;
    Ok(VerifyRequest {
        ip,
        scope,
        model,
        env,
        hold: HoldAmounts {
            input_tokens: request.hold_input_tokens,
            output_tokens: request.hold_output_tokens,
            cost: request.hold_cost,
        },
        at: at("request.at_us", request.at_us)?,
    })
}

/// The stable lowercase name of a verdict code (`"valid"`, `"malformed"`, `"not_found"`,
/// ... `"rate_limited"`), or `"unknown"` for a number that is not a code.
///
/// Ownership and lifetime: a static string; never NULL, never freed. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn nanu_code_name(code: u32) -> *const c_char {
    guard(|| match code_of(code) {
        Some(code) => code_name(code).as_ptr(),
        None => c"unknown".as_ptr(),
    })
}

/// The HTTP status a gateway would answer a verdict code with: 200, 401, 403 or 429; 0 for
/// a number that is not a code. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn nanu_code_http_status(code: u32) -> u32 {
    guard(|| code_of(code).map_or(0, |code| u32::from(code.http_status())))
}

fn code_of(number: u32) -> Option<Code> {
    usize::try_from(number)
        .ok()
        .and_then(|i| Code::ALL.get(i))
        .copied()
}

fn code_name(code: Code) -> &'static std::ffi::CStr {
    match code {
        Code::Valid => c"valid",
        Code::Malformed => c"malformed",
        Code::NotFound => c"not_found",
        Code::Revoked => c"revoked",
        Code::Disabled => c"disabled",
        Code::Expired => c"expired",
        Code::EnvMismatch => c"env_mismatch",
        Code::IpDenied => c"ip_denied",
        Code::ScopeDenied => c"scope_denied",
        Code::ModelDenied => c"model_denied",
        Code::ModelUnpriced => c"model_unpriced",
        Code::UsageExceeded => c"usage_exceeded",
        Code::BudgetExceeded => c"budget_exceeded",
        Code::RateLimited => c"rate_limited",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_numbers_follow_the_core_order() {
        for (i, code) in Code::ALL.into_iter().enumerate() {
            assert_eq!(nanu_code::of(code) as usize, i, "{code}");
            assert_eq!(code_name(code).to_str().unwrap(), code.as_str());
            assert_eq!(code_of(i as u32), Some(code));
        }
        assert_eq!(code_of(Code::ALL.len() as u32), None);
    }

    #[test]
    fn texts_are_cut_at_a_character_boundary() {
        assert_eq!(fitting_len("abc", 4), 3);
        assert_eq!(fitting_len("abcd", 4), 3);
        assert_eq!(fitting_len("aé", 4), 3);
        assert_eq!(fitting_len("aéz", 4), 3);
        assert_eq!(fitting_len("éé", 4), 2);
        assert_eq!(fitting_len("", 1), 0);

        let mut array = [1 as c_char; 4];
        // SAFETY: `array` is a live local of 4 bytes.
        unsafe { write_text(&raw mut array, Some("éé")) };
        assert_eq!(array, [0xc3_u8 as c_char, 0xa9_u8 as c_char, 0, 1]);
    }
}

//! Text, JSON and time crossing the boundary: borrowed `(ptr, len)` inputs, library-owned
//! `nanu_string` outputs, and the per-call `nanu_context`.

use std::ffi::c_char;
use std::ptr::NonNull;

use jiff::Timestamp;
use nanu_core::{Context, Error, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::guard::guard;

/// A NUL-terminated text owned by nanu, usually a JSON document. Read it with
/// `nanu_string_ptr` and `nanu_string_len`; release it with `nanu_string_free`.
///
/// Thread safety: a `nanu_string` is immutable; it may be read from any thread, and freed
/// once by whoever owns it.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct nanu_string {
    /// The text and a terminating NUL.
    bytes: Box<[u8]>,
}

impl nanu_string {
    /// A string holding `text`, which must contain no NUL.
    pub(crate) fn new(mut text: Vec<u8>) -> Box<nanu_string> {
        text.push(0);
        Box::new(nanu_string {
            bytes: text.into_boxed_slice(),
        })
    }

    /// A string holding the JSON form of `value`.
    pub(crate) fn json(value: &impl Serialize) -> Result<Box<nanu_string>, Error> {
        // serde_json escapes control characters, so the document contains no NUL.
        let text = serde_json::to_vec(value)
            .map_err(|e| Error::new(ErrorCode::InvalidArgument, format!("cannot encode: {e}")))?;
        Ok(nanu_string::new(text))
    }

    /// The text without its NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - 1]
    }
}

/// The text of a `nanu_string`, NUL-terminated (`nanu_string_len` gives its length without
/// the NUL). Returns `""` for NULL.
///
/// Lifetime: the pointer is valid until `nanu_string_free(string)`. Thread-safe.
///
/// # Safety
///
/// `string` is NULL or a live `nanu_string` from nanu.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_string_ptr(string: *const nanu_string) -> *const c_char {
    guard(|| {
        // SAFETY: the caller passes NULL or a live nanu_string, never freed concurrently.
        match unsafe { string.as_ref() } {
            Some(string) => string.bytes.as_ptr().cast(),
            None => c"".as_ptr(),
        }
    })
}

/// The length in bytes of a `nanu_string`'s text, without the terminating NUL; 0 for NULL.
/// Thread-safe.
///
/// # Safety
///
/// `string` is NULL or a live `nanu_string` from nanu.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_string_len(string: *const nanu_string) -> usize {
    guard(|| {
        // SAFETY: the caller passes NULL or a live nanu_string, never freed concurrently.
        unsafe { string.as_ref() }.map_or(0, |s| s.as_bytes().len())
    })
}

/// Releases a `nanu_string`. NULL does nothing. After this call the string and every
/// pointer from `nanu_string_ptr` are invalid.
///
/// # Safety
///
/// `string` is NULL or a `nanu_string` from nanu that was not freed before and is not in
/// use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_string_free(string: *mut nanu_string) {
    guard(|| {
        if !string.is_null() {
            // SAFETY: a non-NULL string came from Box::into_raw in `give` and is freed once.
            drop(unsafe { Box::from_raw(string) });
        }
    })
}

/// Who acts and when, for administrative calls (mint, update, rotate, revoke, policies,
/// prices, rekey). Pass NULL for "now, anonymous".
///
/// Zero-initialise it (`nanu_context ctx = {0};`) and set what you need. The struct is only
/// read during the call.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nanu_context {
    /// The time of the call in microseconds since the Unix epoch; 0 for the vault's clock.
    pub at_us: i64,
    /// Who acts (an admin key id, a user name), recorded in the audit trail; NULL for nobody.
    /// UTF-8, `actor_len` bytes, no NUL needed.
    pub actor: *const c_char,
    /// Length of `actor` in bytes.
    pub actor_len: usize,
}

/// Borrows `len` bytes at `ptr` as UTF-8 text; `what` names the argument in errors.
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn text<'a>(
    what: &str,
    ptr: *const c_char,
    len: usize,
) -> Result<&'a str, Error> {
    // SAFETY: forwarded from the caller.
    match unsafe { opt_text(what, ptr, len) }? {
        Some(text) => Ok(text),
        None => Err(invalid(format!("{what} is NULL"))),
    }
}

/// Like [`text`], but NULL means "not given".
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn opt_text<'a>(
    what: &str,
    ptr: *const c_char,
    len: usize,
) -> Result<Option<&'a str>, Error> {
    // SAFETY: forwarded from the caller.
    let Some(bytes) = unsafe { opt_bytes(what, ptr.cast(), len) }? else {
        return Ok(None);
    };
    utf8(bytes)
        .map(Some)
        .ok_or_else(|| invalid(format!("{what} is not valid utf-8")))
}

/// Reads bytes as UTF-8. The texts of a verify are short and nearly always ASCII, where a
/// plain ASCII scan costs a fraction of the general validation.
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// Borrows `len` bytes at `ptr`; NULL means "not given".
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn opt_bytes<'a>(
    what: &str,
    ptr: *const u8,
    len: usize,
) -> Result<Option<&'a [u8]>, Error> {
    if ptr.is_null() {
        return Ok(None);
    }
    if len > isize::MAX as usize {
        return Err(invalid(format!("{what} length {len} is too large")));
    }
    // SAFETY: `ptr` is non-NULL and, as the caller guarantees, valid for `len` bytes; the
    // length fits in isize as checked above.
    Ok(Some(unsafe { std::slice::from_raw_parts(ptr, len) }))
}

/// Parses a JSON document given as `(ptr, len)`; `what` names it in errors.
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` bytes.
pub(crate) unsafe fn json<T: DeserializeOwned>(
    what: &str,
    ptr: *const c_char,
    len: usize,
) -> Result<T, Error> {
    // SAFETY: forwarded from the caller.
    let Some(bytes) = unsafe { opt_bytes(what, ptr.cast(), len) }? else {
        return Err(invalid(format!("{what} is NULL")));
    };
    serde_json::from_slice(bytes).map_err(|e| invalid(format!("invalid {what}: {e}")))
}

/// Like [`json`], but NULL means the type's default.
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` bytes.
pub(crate) unsafe fn json_or_default<T: DeserializeOwned + Default>(
    what: &str,
    ptr: *const c_char,
    len: usize,
) -> Result<T, Error> {
    if ptr.is_null() {
        return Ok(T::default());
    }
    // SAFETY: forwarded from the caller.
    unsafe { json(what, ptr, len) }
}

/// Checks that an output pointer is not NULL, before any work is done, so that a call with
/// nowhere to put its result changes nothing.
pub(crate) fn out<T>(what: &str, ptr: *mut T) -> Result<NonNull<T>, Error> {
    NonNull::new(ptr).ok_or_else(|| invalid(format!("{what} is NULL")))
}

/// Hands a boxed value to C through an output pointer checked by [`out`].
///
/// # Safety
///
/// `slot` is valid for a write of one pointer.
pub(crate) unsafe fn give<T>(slot: NonNull<*mut T>, value: Box<T>) {
    // SAFETY: the caller guarantees `slot` is valid for writes; the previous content is a
    // plain pointer (or garbage) with nothing to drop.
    unsafe { slot.as_ptr().write(Box::into_raw(value)) }
}

/// Writes a plain value through an output pointer checked by [`out`].
///
/// # Safety
///
/// `slot` is valid for a write of one `T`.
pub(crate) unsafe fn put<T: Copy>(slot: NonNull<T>, value: T) {
    // SAFETY: the caller guarantees `slot` is valid for writes; `T: Copy` has nothing to drop
    // in the old content.
    unsafe { slot.as_ptr().write(value) }
}

/// The time of an input `at_us` field: `None` (the vault's clock) for 0.
pub(crate) fn at(what: &str, at_us: i64) -> Result<Option<Timestamp>, Error> {
    if at_us == 0 {
        return Ok(None);
    }
    Timestamp::from_microsecond(at_us)
        .map(Some)
        .map_err(|_| invalid(format!("{what} {at_us} is out of range")))
}

/// Milliseconds since the epoch, rounded up so that a reset is never announced early.
pub(crate) fn epoch_ms_ceil(at: Timestamp) -> i64 {
    let us = at.as_microsecond();
    us.div_euclid(1000) + i64::from(us.rem_euclid(1000) != 0)
}

/// Reads a context; NULL is "now, anonymous".
///
/// # Safety
///
/// `ctx` is NULL or points to a valid `nanu_context` whose `actor` is NULL or valid for
/// `actor_len` bytes.
pub(crate) unsafe fn context(ctx: *const nanu_context) -> Result<Context, Error> {
    // SAFETY: the caller guarantees ctx is NULL or valid for reads.
    let Some(ctx) = (unsafe { ctx.as_ref() }) else {
        return Ok(Context::default());
    };
    // SAFETY: the caller guarantees actor is NULL or valid for actor_len bytes.
    let actor = unsafe { opt_text("ctx.actor", ctx.actor, ctx.actor_len) }?;
    Ok(Context {
        at: at("ctx.at_us", ctx.at_us)?,
        actor: actor.map(str::to_owned),
    })
}

/// An invalid-argument error.
pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidArgument, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_times_round_up_to_the_millisecond() {
        let t = |us| Timestamp::from_microsecond(us).unwrap();
        assert_eq!(epoch_ms_ceil(t(1_000)), 1);
        assert_eq!(epoch_ms_ceil(t(1_001)), 2);
        assert_eq!(epoch_ms_ceil(t(-1_500)), -1);
        assert_eq!(epoch_ms_ceil(t(0)), 0);
    }
}

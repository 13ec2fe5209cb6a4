//! Status numbers, the per-thread last error message, and the version.

use std::cell::RefCell;
use std::ffi::c_char;

use nanu_core::{Error, ErrorCode};

use crate::guard::guard;

/// The result of a call. The numbers are stable and grouped by kind; a number is never
/// reused, and a retired one stays listed here as a comment.
///
/// - 0: success.
/// - 1xx: a bad argument (NULL where a value is required, text that is not UTF-8, JSON that
///   does not parse or does not fit, a value out of range).
/// - 2xx: an administrative call named something that does not exist.
/// - 3xx: the vault cannot be unlocked or is not a vault.
/// - 4xx: the file or a record in it cannot be read or written.
/// - 5xx: the call conflicts with earlier calls or with the vault's state.
/// - 9xx: a bug inside nanu.
///
/// The names after `NANU_STATUS_` are the error codes of every nanu language binding
/// (`nanu_status_name` returns them in lowercase).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nanu_status {
    /// Success.
    Ok = 0,
    /// An argument is NULL where a value is required, is not valid UTF-8 or JSON, or is
    /// malformed, out of range or inconsistent.
    InvalidArgument = 100,
    /// An administrative call named a key id or owner that does not exist.
    NotFound = 200,
    /// The passphrase or raw key does not unseal the vault.
    WrongPassphrase = 300,
    /// The vault file is open in another process (or handle) in a mode that excludes this
    /// open: one of them asked for `exclusive` concurrency.
    Locked = 301,
    /// The file is not a nanu vault, or was written by a newer nanu.
    NotAVault = 302,
    /// Reading or writing the file failed.
    Storage = 400,
    /// A stored record failed authentication or could not be decoded.
    Corrupt = 401,
    /// The same request id was charged before with other amounts.
    Conflict = 500,
    /// The vault was closed.
    Closed = 501,
    /// nanu panicked inside the call. The call did not complete; the vault stays usable but
    /// this is a bug worth reporting with the `nanu_last_error()` message.
    Panic = 900,
    /// The core reported an error kind this version of the C ABI has no number for.
    Internal = 901,
}

impl nanu_status {
    /// Every status, in the order of their numbers.
    pub const ALL: [nanu_status; 12] = [
        nanu_status::Ok,
        nanu_status::InvalidArgument,
        nanu_status::NotFound,
        nanu_status::WrongPassphrase,
        nanu_status::Locked,
        nanu_status::NotAVault,
        nanu_status::Storage,
        nanu_status::Corrupt,
        nanu_status::Conflict,
        nanu_status::Closed,
        nanu_status::Panic,
        nanu_status::Internal,
    ];

    /// The status of a core error code.
    pub fn of(code: ErrorCode) -> nanu_status {
        match code {
            ErrorCode::InvalidArgument => nanu_status::InvalidArgument,
            ErrorCode::NotFound => nanu_status::NotFound,
            ErrorCode::WrongPassphrase => nanu_status::WrongPassphrase,
            ErrorCode::Locked => nanu_status::Locked,
            ErrorCode::NotAVault => nanu_status::NotAVault,
            ErrorCode::Corrupt => nanu_status::Corrupt,
            ErrorCode::Storage => nanu_status::Storage,
            ErrorCode::Conflict => nanu_status::Conflict,
            ErrorCode::Closed => nanu_status::Closed,
            _ => nanu_status::Internal,
        }
    }

    /// The stable lowercase name, NUL-terminated.
    pub fn name(self) -> &'static std::ffi::CStr {
        match self {
            nanu_status::Ok => c"ok",
            nanu_status::InvalidArgument => c"invalid_argument",
            nanu_status::NotFound => c"not_found",
            nanu_status::WrongPassphrase => c"wrong_passphrase",
            nanu_status::Locked => c"locked",
            nanu_status::NotAVault => c"not_a_vault",
            nanu_status::Storage => c"storage",
            nanu_status::Corrupt => c"corrupt",
            nanu_status::Conflict => c"conflict",
            nanu_status::Closed => c"closed",
            nanu_status::Panic => c"panic",
            nanu_status::Internal => c"internal",
        }
    }
}

thread_local! {
    /// The message of the last failed call on this thread, NUL-terminated (empty: none yet).
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    LAST_ERROR.with_borrow_mut(|buffer| {
        buffer.clear();
        // A NUL inside the message would cut it short in C.
        buffer.extend(message.bytes().map(|b| if b == 0 { b'?' } else { b }));
        buffer.push(0);
    });
}

/// Records a failure as this thread's last error and returns its status.
pub(crate) fn fail(err: &Error) -> nanu_status {
    set_last_error(err.message());
    nanu_status::of(err.code())
}

/// The message of the most recent call on this thread that did not return
/// `NANU_STATUS_OK`: lowercase, naming the key id, owner, path or field involved, never a
/// secret. An empty string when no call on this thread has failed yet.
///
/// Ownership and lifetime: the text belongs to nanu; it stays valid and unchanged until the
/// next nanu call on the same thread (copy it to keep it). Never NULL.
///
/// Thread safety: each thread has its own message.
#[unsafe(no_mangle)]
pub extern "C" fn nanu_last_error() -> *const c_char {
    guard(|| {
        LAST_ERROR.with_borrow(|buffer| {
            if buffer.is_empty() {
                c"".as_ptr()
            } else {
                buffer.as_ptr().cast()
            }
        })
    })
}

/// The stable lowercase name of a status number: `"ok"`, `"invalid_argument"`,
/// `"not_found"`, `"wrong_passphrase"`, `"locked"`, `"not_a_vault"`, `"storage"`,
/// `"corrupt"`, `"conflict"`, `"closed"`, `"panic"` or `"internal"`; `"unknown"` for a
/// number that is not a status.
///
/// Ownership and lifetime: a static string; never NULL, never freed. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn nanu_status_name(status: u32) -> *const c_char {
    guard(|| {
        nanu_status::ALL
            .into_iter()
            .find(|s| *s as u32 == status)
            .map_or(c"unknown", nanu_status::name)
            .as_ptr()
    })
}

/// The version of this library, e.g. `"0.1.0"`.
///
/// Ownership and lifetime: a static string; never NULL, never freed. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn nanu_version() -> *const c_char {
    guard(|| {
        concat!(env!("CARGO_PKG_VERSION"), "\0")
            .as_ptr()
            .cast::<c_char>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_banded_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for status in nanu_status::ALL {
            assert!(seen.insert(status as u32), "{status:?} reuses a number");
            let band = status as u32 / 100;
            let expected = match status {
                nanu_status::Ok => 0,
                nanu_status::InvalidArgument => 1,
                nanu_status::NotFound => 2,
                nanu_status::WrongPassphrase | nanu_status::Locked | nanu_status::NotAVault => 3,
                nanu_status::Storage | nanu_status::Corrupt => 4,
                nanu_status::Conflict | nanu_status::Closed => 5,
                nanu_status::Panic | nanu_status::Internal => 9,
            };
            assert_eq!(band, expected, "{status:?}");
        }
    }

    #[test]
    fn names_match_the_core_error_codes() {
        let codes = [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::WrongPassphrase,
            ErrorCode::Locked,
            ErrorCode::NotAVault,
            ErrorCode::Corrupt,
            ErrorCode::Storage,
            ErrorCode::Conflict,
            ErrorCode::Closed,
        ];
        for code in codes {
            let name = nanu_status::of(code).name().to_str().unwrap();
            assert_eq!(name, code.as_str());
        }
    }
}

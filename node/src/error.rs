//! Errors as JavaScript sees them: an `Error` whose `code` is the stable name shared with Rust,
//! C and Python (`invalid_argument`, `not_found`, `wrong_passphrase`, `locked`, `not_a_vault`,
//! `corrupt`, `storage`, `conflict`, `closed`).

use napi::bindgen_prelude::JsError;
use napi::{Env, Unknown};

/// The stable code a thrown error carries in `err.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code(&'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl Code {
    /// A bad argument; every other code comes from the vault's `nanu::ErrorCode`.
    pub const INVALID_ARGUMENT: Code = Code("invalid_argument");
}

/// A failure of a binding call, thrown as a JavaScript `Error` with `code` set.
pub type Error = napi::Error<Code>;

/// Shorthand for the results of binding calls.
pub type Result<T> = std::result::Result<T, Error>;

/// A bad argument: wrong type, out of range, unknown field.
pub fn invalid(message: impl Into<String>) -> Error {
    Error::new(Code::INVALID_ARGUMENT, message.into())
}

/// A vault error, with its code and its message (which never holds a secret).
pub fn from_core(err: nanu::Error) -> Error {
    Error::new(Code(err.code().as_str()), err.message().to_owned())
}

/// A failure of the Node-API call itself (for example a value of the wrong type where a
/// string was read), reported as a bad argument of `what`.
pub fn from_napi(what: &str, err: napi::Error) -> Error {
    invalid(format!("{what}: {}", err.reason))
}

/// Turns an error into the `napi::Error` a promise of async work rejects with, holding the
/// JavaScript `Error` object so that its `code` survives the trip.
pub fn into_rejection(env: &Env, err: Error) -> napi::Error {
    let value: Unknown<'_> = JsError::from(err).into_unknown(*env);
    napi::Error::from(value)
}

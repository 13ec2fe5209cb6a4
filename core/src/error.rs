//! Errors: operational failures. A denied request is a `Verdict`, never an error.

use std::fmt;

/// The stable code of an error, the same name in Rust, C, Python and Node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// An argument is malformed, out of range or inconsistent.
    InvalidArgument,
    /// An administrative call named a key id or owner that does not exist.
    NotFound,
    /// The passphrase or raw key does not unseal the vault.
    WrongPassphrase,
    /// The vault file is open in another process (or handle) in a mode that excludes this
    /// open: one of them asked for `exclusive` concurrency.
    Locked,
    /// The file is not a nanu vault, or was written by a newer nanu.
    NotAVault,
    /// A stored record failed authentication or could not be decoded.
    Corrupt,
    /// Reading or writing the file failed.
    Storage,
    /// The same request id was charged before with other amounts.
    Conflict,
    /// The vault was closed.
    Closed,
}

impl ErrorCode {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::WrongPassphrase => "wrong_passphrase",
            ErrorCode::Locked => "locked",
            ErrorCode::NotAVault => "not_a_vault",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::Storage => "storage",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Closed => "closed",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of a vault operation: a stable code and a lowercase message that names what was
/// involved (key id, owner, path, limit) and never contains a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidArgument, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::NotFound, message)
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Corrupt, message)
    }

    pub(crate) fn storage(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Storage, message)
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// Shorthand for results of vault operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! storage_from {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(err: $ty) -> Error {
                Error::storage(err.to_string())
            }
        }
    )*};
}

storage_from!(
    std::io::Error,
    redb::Error,
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
);

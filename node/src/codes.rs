//! The stable names shared by every language, as TypeScript string unions.

use napi_derive::napi;

/// The reason of a verdict (`verdict.code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[napi(string_enum = "snake_case")]
pub enum VerdictCode {
    /// Allowed.
    Valid,
    /// Not shaped like a key, or its checksum is wrong.
    Malformed,
    /// Well formed, but no key has this secret.
    NotFound,
    /// The key was revoked.
    Revoked,
    /// The key is disabled.
    Disabled,
    /// The key is past its expiry.
    Expired,
    /// The request required another environment.
    EnvMismatch,
    /// The client address is outside the key's allowlist.
    IpDenied,
    /// The key lacks the requested scope.
    ScopeDenied,
    /// The key may not use the requested model.
    ModelDenied,
    /// The key has a cost limit and the model has no price.
    ModelUnpriced,
    /// A request or token limit is used up.
    UsageExceeded,
    /// A cost limit is used up.
    BudgetExceeded,
    /// A rolling (rate) limit is used up for now.
    RateLimited,
}

impl From<nanu::Code> for VerdictCode {
    fn from(code: nanu::Code) -> VerdictCode {
        match code {
            nanu::Code::Valid => VerdictCode::Valid,
            nanu::Code::Malformed => VerdictCode::Malformed,
            nanu::Code::NotFound => VerdictCode::NotFound,
            nanu::Code::Revoked => VerdictCode::Revoked,
            nanu::Code::Disabled => VerdictCode::Disabled,
            nanu::Code::Expired => VerdictCode::Expired,
            nanu::Code::EnvMismatch => VerdictCode::EnvMismatch,
            nanu::Code::IpDenied => VerdictCode::IpDenied,
            nanu::Code::ScopeDenied => VerdictCode::ScopeDenied,
            nanu::Code::ModelDenied => VerdictCode::ModelDenied,
            nanu::Code::ModelUnpriced => VerdictCode::ModelUnpriced,
            nanu::Code::UsageExceeded => VerdictCode::UsageExceeded,
            nanu::Code::BudgetExceeded => VerdictCode::BudgetExceeded,
            nanu::Code::RateLimited => VerdictCode::RateLimited,
        }
    }
}

impl VerdictCode {
    /// The position of this code in `nanu::Code::ALL`.
    pub fn index(self) -> u32 {
        let position = nanu::Code::ALL
            .iter()
            .position(|&c| VerdictCode::from(c) == self);
        // Every variant comes from a core code, so the position exists.
        position.unwrap_or(0) as u32
    }
}

/// The `code` of a thrown `Error`.
#[napi(string_enum = "snake_case")]
#[derive(Debug)]
pub enum ErrorCode {
    /// An argument is malformed, out of range, of the wrong type or has an unknown field.
    InvalidArgument,
    /// An administrative call named a key id or owner that does not exist.
    NotFound,
    /// The passphrase or raw key does not unseal the vault.
    WrongPassphrase,
    /// Another process holds the vault file.
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

/// What a crash may lose, chosen when opening a vault.
#[napi(string_enum = "snake_case")]
#[derive(Debug)]
pub enum Durability {
    /// A charge or administrative call that returned survives power loss.
    Durable,
    /// A charge that returned survives the process being killed, not power loss.
    Process,
    /// Charges are committed every flush interval; a crash loses at most that interval.
    Relaxed,
}

impl From<nanu::Durability> for Durability {
    fn from(d: nanu::Durability) -> Durability {
        match d {
            nanu::Durability::Durable => Durability::Durable,
            nanu::Durability::Process => Durability::Process,
            nanu::Durability::Relaxed => Durability::Relaxed,
        }
    }
}

/// How processes share a vault file, chosen when opening a vault.
#[napi(string_enum = "snake_case")]
#[derive(Debug)]
pub enum Concurrency {
    /// One process has the file open; another process that opens it gets `locked`.
    Exclusive,
    /// Any number of processes on one machine open the file at once (cluster workers); limits
    /// hold exactly across them.
    Shared,
}

impl From<nanu::Concurrency> for Concurrency {
    fn from(c: nanu::Concurrency) -> Concurrency {
        match c {
            nanu::Concurrency::Exclusive => Concurrency::Exclusive,
            nanu::Concurrency::Shared => Concurrency::Shared,
        }
    }
}

//! Why a command failed, and the exit code a script sees for it.

use std::fmt;
use std::path::Path;

use nanu::ErrorCode;

/// The exit codes scripts can rely on. `nanu --help` and the README list the same table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what was asked (for `verify`: the request is allowed).
    Ok,
    /// 1: bad usage or an invalid argument.
    Invalid,
    /// 2: a key id, owner, vault file or input file does not exist.
    NotFound,
    /// 3: wrong passphrase or key, the vault is locked by another process, or the file is
    /// not a vault.
    Access,
    /// 4: reading or writing failed, or a record is corrupt.
    Storage,
    /// 5: a request id was charged before with other amounts.
    Conflict,
    /// 10: `verify` denied the request (the reason code is printed).
    Denied,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Invalid => 1,
            Exit::NotFound => 2,
            Exit::Access => 3,
            Exit::Storage => 4,
            Exit::Conflict => 5,
            Exit::Denied => 10,
        }
    }

    fn of(code: ErrorCode) -> Exit {
        match code {
            ErrorCode::InvalidArgument => Exit::Invalid,
            ErrorCode::NotFound => Exit::NotFound,
            ErrorCode::WrongPassphrase | ErrorCode::Locked | ErrorCode::NotAVault => Exit::Access,
            ErrorCode::Conflict => Exit::Conflict,
            // `Corrupt`, `Storage` and `Closed` (which a one-shot command cannot cause) all
            // mean the file could not be used as asked; the enum is non-exhaustive, and a code
            // added later is treated the same way until it gets its own exit code.
            _ => Exit::Storage,
        }
    }
}

/// A failed command: one line for stderr, `nanu: error: <code>: <message>`, and an exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// The stable error code name (`invalid_argument`, `not_found`, ... as the core names
    /// them, and `usage` for command-line mistakes).
    pub code: &'static str,
    /// The message, lowercase; never a secret.
    pub message: String,
    /// Set when stdout was closed by the reader (`nanu ls | head`): exit quietly.
    pub broken_pipe: bool,
}

impl Failure {
    /// A failure with an exit code, its usual code name, and a message.
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        let code = match exit {
            Exit::Ok | Exit::Denied | Exit::Invalid => "invalid_argument",
            Exit::NotFound => "not_found",
            Exit::Access => "wrong_passphrase",
            Exit::Storage => "storage",
            Exit::Conflict => "conflict",
        };
        Failure::with_code(exit, code, message)
    }

    /// A failure with an explicit code name.
    pub fn with_code(exit: Exit, code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            code,
            message: message.into(),
            broken_pipe: false,
        }
    }

    /// An invalid argument (exit 1).
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Invalid, message)
    }

    /// A failure reading an input file the user named (a trace, a price file, a key file).
    pub fn input(path: &Path, err: &std::io::Error) -> Failure {
        let exit = match err.kind() {
            std::io::ErrorKind::NotFound => Exit::NotFound,
            _ => Exit::Invalid,
        };
        Failure::new(
            exit,
            format!("cannot read {}: {}", path.display(), io_reason(err)),
        )
    }
}

/// An I/O error's reason without the `(os error N)` tail, lowercased at the start.
fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    };
    lowercase_first(&text)
}

/// Lowercases the first character, so that messages from other libraries read like ours.
pub fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<nanu::Error> for Failure {
    fn from(err: nanu::Error) -> Failure {
        Failure::with_code(Exit::of(err.code()), err.code().as_str(), err.message())
    }
}

impl From<std::io::Error> for Failure {
    /// Only writing to stdout and stderr goes through here: input files use
    /// [`Failure::input`], which names the path.
    fn from(err: std::io::Error) -> Failure {
        let broken_pipe = err.kind() == std::io::ErrorKind::BrokenPipe;
        Failure {
            exit: Exit::Storage,
            code: "storage",
            message: format!("cannot write the output: {}", io_reason(&err)),
            broken_pipe,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The result of a command.
pub type Outcome<T = ()> = Result<T, Failure>;

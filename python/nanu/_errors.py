"""The exceptions of nanu: one root class, one subclass per stable error code.

A denied request is never an exception: ``Vault.verify`` answers it with a ``Verdict``.
Exceptions are for operational failures. Their codes are the same strings in Rust, C, Python
and Node. Messages never contain a secret.
"""

from __future__ import annotations


class Error(Exception):
    """A failure of a vault operation; ``code`` is its stable code."""

    code: str = "error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message)
        if code is not None and code != type(self).code:
            self.code = code

    @property
    def message(self) -> str:
        """The message, without the code."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message


class InvalidArgument(Error, ValueError):
    """An argument is malformed, of the wrong type, out of range or inconsistent."""

    code = "invalid_argument"


class NotFound(Error, LookupError):
    """An administrative call named a key id or owner that does not exist."""

    code = "not_found"


class WrongPassphrase(Error):
    """The passphrase or raw key does not unseal the vault."""

    code = "wrong_passphrase"


class Locked(Error):
    """Another process holds the vault file."""

    code = "locked"


class NotAVault(Error):
    """The file is not a nanu vault, or was written by a newer nanu."""

    code = "not_a_vault"


class Corrupt(Error):
    """A stored record failed authentication or could not be decoded."""

    code = "corrupt"


class Storage(Error):
    """Reading or writing the file failed."""

    code = "storage"


class Conflict(Error):
    """The same request id was charged before with other amounts."""

    code = "conflict"


class Closed(Error):
    """The vault was closed."""

    code = "closed"


_BY_CODE: dict[str, type[Error]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        WrongPassphrase,
        Locked,
        NotAVault,
        Corrupt,
        Storage,
        Conflict,
        Closed,
    )
}
